// Package tools pins command-line tools that tests use (grpcurl) in a module of
// their own, so that they do not drag quotad's dependencies forward.
package tools
