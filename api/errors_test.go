package api

import (
	"errors"
	"fmt"
	"strings"
	"testing"

	"github.com/labcloud/labcloud/api/protocol"
	"github.com/labcloud/labcloud/api/sigv4"
	"github.com/labcloud/labcloud/internal/errdefs"
)

func TestWireError(t *testing.T) {
	tests := []struct {
		name       string
		service    string
		err        error
		wantStatus int
		wantCode   string
	}{
		{"sigv4 unknown key on ec2", ServiceEC2, &sigv4.Error{Code: "InvalidClientTokenId", Message: "x"}, 401, "AuthFailure"},
		{"sigv4 unknown key on iam", ServiceIAM, &sigv4.Error{Code: "InvalidClientTokenId", Message: "x"}, 403, "InvalidClientTokenId"},
		{"sigv4 expired", ServiceSTS, &sigv4.Error{Code: "RequestExpired", Message: "x"}, 400, "RequestExpired"},
		{"wrapped sigv4", ServiceEC2, fmt.Errorf("verify: %w", &sigv4.Error{Code: "SignatureDoesNotMatch", Message: "x"}), 403, "SignatureDoesNotMatch"},
		{"param error", ServiceEC2, &protocol.ParamError{Code: "UnknownParameter", Message: "x"}, 400, "UnknownParameter"},
		{"domain code kept", ServiceEC2, errdefs.NotFound("InvalidVpcID.NotFound", "x"), 400, "InvalidVpcID.NotFound"},
		{"not found default iam", ServiceIAM, errdefs.NotFound("", "x"), 404, "NoSuchEntity"},
		{"exists default iam", ServiceIAM, errdefs.AlreadyExists("", "x"), 409, "EntityAlreadyExists"},
		{"conflict default iam", ServiceIAM, errdefs.Conflict("", "x"), 409, "DeleteConflict"},
		{"invalid default ec2", ServiceEC2, errdefs.InvalidParameter("", "x"), 400, "InvalidParameterValue"},
		{"invalid default sts", ServiceSTS, errdefs.InvalidParameter("", "x"), 400, "ValidationError"},
		{"access denied ec2", ServiceEC2, errdefs.New(errdefs.ClassAccessDenied, "", "x"), 403, "UnauthorizedOperation"},
		{"access denied iam", ServiceIAM, errdefs.New(errdefs.ClassAccessDenied, "", "x"), 403, "AccessDenied"},
		{"limit ec2", ServiceEC2, errdefs.LimitExceeded("AddressLimitExceeded", "x"), 400, "AddressLimitExceeded"},
		{"unclassified is internal ec2", ServiceEC2, errors.New("etcd down"), 500, "InternalError"},
		{"unclassified is internal iam", ServiceIAM, errors.New("etcd down"), 500, "InternalFailure"},
		{"api error", ServiceSTS, wireErr(400, "InvalidAction", "x"), 400, "InvalidAction"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := wireError(tt.service, tt.err)
			if got.Status != tt.wantStatus || got.Code != tt.wantCode {
				t.Fatalf("wireError = %d %s, want %d %s", got.Status, got.Code, tt.wantStatus, tt.wantCode)
			}
			if got.Message == "" {
				t.Fatal("empty message")
			}
		})
	}
}

// Internal errors must not leak their cause (it may name keys or paths).
func TestWireErrorHidesInternalCause(t *testing.T) {
	got := wireError(ServiceEC2, errors.New("secret path /var/lib/labcloud/etcd"))
	if got.Message == "" || strings.Contains(got.Message, "secret path") {
		t.Fatalf("message %q", got.Message)
	}
}
