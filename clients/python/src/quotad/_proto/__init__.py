"""Generated gRPC stubs of proto/quotad/v1/quotad.proto (``make generate``)."""
