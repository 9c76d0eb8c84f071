package api

import (
	"errors"
	"fmt"
	"net/http"

	"github.com/labcloud/labcloud/api/protocol"
	"github.com/labcloud/labcloud/api/sigv4"
	"github.com/labcloud/labcloud/internal/errdefs"
)

// WireError is an error as the client will see it.
type WireError struct {
	Status  int
	Code    string
	Message string
}

func (e *WireError) Error() string { return e.Code + ": " + e.Message }

// wireErr makes an error that api/ itself raises with a fixed code.
func wireErr(status int, code, format string, args ...any) *WireError {
	return &WireError{Status: status, Code: code, Message: fmt.Sprintf(format, args...)}
}

// classDefaults is the AWS code and HTTP status for each error class, per
// protocol family, when a domain error names no specific code.
var classDefaults = map[errdefs.Class]struct {
	status        int
	ec2, iam, sts string
}{
	errdefs.ClassNotFound:         {http.StatusNotFound, "InvalidParameterValue", "NoSuchEntity", "ValidationError"},
	errdefs.ClassAlreadyExists:    {http.StatusConflict, "InvalidParameterValue", "EntityAlreadyExists", "ValidationError"},
	errdefs.ClassInvalidParameter: {http.StatusBadRequest, "InvalidParameterValue", "InvalidInput", "ValidationError"},
	errdefs.ClassMissingParameter: {http.StatusBadRequest, "MissingParameter", "MissingParameter", "MissingParameter"},
	errdefs.ClassConflict:         {http.StatusConflict, "IncorrectState", "DeleteConflict", "ValidationError"},
	errdefs.ClassLimitExceeded:    {http.StatusConflict, "ResourceLimitExceeded", "LimitExceeded", "LimitExceeded"},
	errdefs.ClassAccessDenied:     {http.StatusForbidden, "UnauthorizedOperation", "AccessDenied", "AccessDenied"},
	errdefs.ClassUnauthenticated:  {http.StatusForbidden, "AuthFailure", "InvalidClientTokenId", "InvalidClientTokenId"},
	errdefs.ClassUnavailable:      {http.StatusServiceUnavailable, "Unavailable", "ServiceUnavailable", "ServiceUnavailable"},
	errdefs.ClassNotImplemented:   {http.StatusNotImplemented, "Unsupported", "NotImplemented", "NotImplemented"},
}

// sigv4Status is the HTTP status AWS answers each signature error with.
var sigv4Status = map[string]int{
	"MissingAuthenticationToken": http.StatusForbidden,
	"IncompleteSignature":        http.StatusBadRequest,
	"SignatureDoesNotMatch":      http.StatusForbidden,
	"InvalidClientTokenId":       http.StatusForbidden,
	"RequestExpired":             http.StatusBadRequest,
	"ExpiredToken":               http.StatusForbidden,
}

// wireError is the one place where any error becomes an AWS error code,
// message and HTTP status for the given service.
func wireError(service string, err error) WireError {
	var (
		we *WireError
		se *sigv4.Error
		pe *protocol.ParamError
		de *errdefs.Error
	)
	switch {
	case errors.As(err, &we):
		return *we
	case errors.As(err, &se):
		status, ok := sigv4Status[se.Code]
		if !ok {
			status = http.StatusBadRequest
		}
		code := se.Code
		// EC2 reports an unknown access key as AuthFailure; IAM and STS
		// as InvalidClientTokenId.
		if service == ServiceEC2 && code == "InvalidClientTokenId" {
			code, status = "AuthFailure", http.StatusUnauthorized
		}
		// EC2 reports expired temporary credentials as RequestExpired.
		if service == ServiceEC2 && code == "ExpiredToken" {
			code, status = "RequestExpired", http.StatusBadRequest
		}
		return WireError{Status: status, Code: code, Message: se.Message}
	case errors.As(err, &pe):
		return WireError{Status: http.StatusBadRequest, Code: pe.Code, Message: pe.Message}
	case errors.As(err, &de):
		d, ok := classDefaults[de.Class]
		if !ok {
			break
		}
		code := de.Code
		if code == "" {
			switch service {
			case ServiceEC2:
				code = d.ec2
			case ServiceIAM:
				code = d.iam
			default:
				code = d.sts
			}
		}
		status := d.status
		if service == ServiceEC2 && status != http.StatusForbidden && status < 500 {
			// EC2 answers every client error with 400.
			status = http.StatusBadRequest
		}
		return WireError{Status: status, Code: code, Message: de.Message}
	}
	code := "InternalFailure"
	if service == ServiceEC2 {
		code = "InternalError"
	}
	return WireError{Status: http.StatusInternalServerError, Code: code,
		Message: "labcloud hit an internal error; the daemon log has the details (look for this request id)"}
}
