package quotadv1

import (
	"google.golang.org/genproto/googleapis/rpc/errdetails"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
)

// The one place, in Go, where ErrorReason meets google.rpc.ErrorInfo: the server,
// the cluster's forwarder and the Go client build and read error reasons only
// through these two functions (errors.proto declares the reasons).

// ErrorDomain is the domain of every ErrorInfo quotad sends.
const ErrorDomain = "quotad"

// Error returns a status error with code c and message msg, carrying r as its
// ErrorInfo reason.
func (r ErrorReason) Error(c codes.Code, msg string) error {
	st := status.New(c, msg)
	if d, err := st.WithDetails(&errdetails.ErrorInfo{Reason: r.String(), Domain: ErrorDomain}); err == nil {
		st = d
	}
	return st.Err()
}

// ReasonOf returns the ErrorReason of a status error from quotad, or
// ERROR_REASON_UNSPECIFIED when it carries none (or one this build does not know).
func ReasonOf(err error) ErrorReason {
	if err == nil {
		return ErrorReason_ERROR_REASON_UNSPECIFIED
	}
	for _, d := range status.Convert(err).Details() {
		if info, ok := d.(*errdetails.ErrorInfo); ok && info.GetDomain() == ErrorDomain {
			return ErrorReason(ErrorReason_value[info.GetReason()])
		}
	}
	return ErrorReason_ERROR_REASON_UNSPECIFIED
}
