// Package sigv4 verifies AWS Signature Version 4 on incoming requests, in
// both the Authorization header form and the presigned query form, as the
// aws CLI, boto3 and aws-sdk-go-v2 send them to EC2, IAM and STS. It also
// signs requests, for tests and for labcloud's own tools.
//
// Verification follows AWS: the request's own description of its signature
// is parsed first (ParseScope exposes the scope for routing), then the
// signing time is checked against the clock, then the key is looked up and
// the signature recomputed and compared in constant time. Failures are
// *Error values carrying the AWS error code.
package sigv4

import (
	"context"
	"crypto/subtle"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"time"
)

// AWS error codes returned in Error.Code. They are exported so the server
// can map them to its wire format without repeating string literals.
const (
	// CodeMissingAuthenticationToken means the request carries no SigV4
	// authentication at all.
	CodeMissingAuthenticationToken = "MissingAuthenticationToken"
	// CodeIncompleteSignature means the authentication data is present but
	// malformed, incomplete or uses an algorithm we do not support.
	CodeIncompleteSignature = "IncompleteSignature"
	// CodeInvalidClientTokenID means the access key id is unknown or the
	// session token does not belong to it.
	CodeInvalidClientTokenID = "InvalidClientTokenId"
	// CodeSignatureDoesNotMatch means the signature, or a value bound into
	// it such as the scope date, is wrong.
	CodeSignatureDoesNotMatch = "SignatureDoesNotMatch"
	// CodeRequestExpired means the signing time is too far from the server
	// clock, or a presigned URL has passed its expiry.
	CodeRequestExpired = "RequestExpired"
)

// ErrUnknownKey is what a Lookup returns (possibly wrapped) when it has no
// such access key id; Verify turns it into InvalidClientTokenId, while any
// other Lookup error is passed through as an internal failure.
var ErrUnknownKey = errors.New("sigv4: unknown access key id")

// Error is an authentication failure that should reach the client as an AWS
// error response. Code is the AWS error code; Message says what is wrong and
// what to do about it.
type Error struct {
	Code    string
	Message string
}

// Error implements the error interface.
func (e *Error) Error() string { return e.Code + ": " + e.Message }

// fail builds an *Error typed as error, so callers never return a typed nil.
func fail(code, format string, args ...any) error {
	return &Error{Code: code, Message: fmt.Sprintf(format, args...)}
}

// Key is what the server knows about an access key.
type Key struct {
	AccessKeyID     string
	SecretAccessKey string
	// SessionToken is non-empty for temporary credentials; requests signed
	// with them must carry exactly this X-Amz-Security-Token.
	SessionToken string
}

// Lookup returns the key for an access key id, or an error wrapping
// ErrUnknownKey when there is none.
type Lookup func(ctx context.Context, accessKeyID string) (Key, error)

// Verifier checks SigV4 signatures. The zero value is not usable: Lookup is
// required.
type Verifier struct {
	Lookup Lookup
	// Now is the server clock; nil means time.Now. Tests pin it.
	Now func() time.Time
	// MaxSkew is how far the signing time may be from Now, in either
	// direction; 0 means 15 minutes, as AWS allows.
	MaxSkew time.Duration
}

// Result describes a request whose signature checked out.
type Result struct {
	Scope     Scope
	Key       Key
	SignedAt  time.Time
	Presigned bool
}

// Verify checks the signature on r. body is the full request body, already
// read by the caller; r.Body is not touched. A failure the client should see
// is an *Error; any other error comes from Lookup and is an internal
// failure, not the client's fault.
func (v *Verifier) Verify(ctx context.Context, r *http.Request, body []byte) (*Result, error) {
	a, err := parseAuth(r)
	if err != nil {
		return nil, err
	}
	signedAt, err := parseSignedTime(a)
	if err != nil {
		return nil, err
	}
	if day := signedAt.Format(dateFormat); a.scope.Date != day {
		return nil, fail(CodeSignatureDoesNotMatch,
			"Date in Credential scope does not match YYYYMMDD from ISO-8601 version of date from HTTP: "+
				"'%s' != '%s', from '%s'. Use the signing day in the credential scope.",
			a.scope.Date, day, a.rawDate)
	}
	if err := v.checkTime(a, signedAt); err != nil {
		return nil, err
	}

	key, err := v.Lookup(ctx, a.scope.AccessKeyID)
	if errors.Is(err, ErrUnknownKey) {
		return nil, fail(CodeInvalidClientTokenID,
			"The AWS Access Key Id you provided does not exist in our records. "+
				"Check the access key id (%s) in your credentials.", a.scope.AccessKeyID)
	}
	if err != nil {
		return nil, fmt.Errorf("looking up access key %s: %w", a.scope.AccessKeyID, err)
	}
	if err := checkToken(key, a.token); err != nil {
		return nil, err
	}

	payload, err := payloadHash(r, body)
	if err != nil {
		return nil, err
	}
	creq := CanonicalRequest(r, a.signedHeaders, payload)
	sk := SigningKey(key.SecretAccessKey, a.scope.Date, a.scope.Region, a.scope.Service)
	want := signature(sk, StringToSign(signedAt, a.scope, creq))
	if subtle.ConstantTimeCompare([]byte(want), []byte(a.signature)) != 1 {
		return nil, fail(CodeSignatureDoesNotMatch,
			"The request signature we calculated does not match the signature you provided. "+
				"Check your AWS Secret Access Key and signing method.")
	}
	return &Result{Scope: a.scope, Key: key, SignedAt: signedAt, Presigned: a.presigned}, nil
}

// checkTime bounds replay: header-signed requests must be within MaxSkew of
// the server clock both ways; presigned URLs are good from signing until
// X-Amz-Expires later, but may not be signed in the future beyond MaxSkew.
// A presigned URL without X-Amz-Expires is held to the header rule.
func (v *Verifier) checkTime(a *authInfo, signedAt time.Time) error {
	now := time.Now
	if v.Now != nil {
		now = v.Now
	}
	skew := v.MaxSkew
	if skew == 0 {
		skew = 15 * time.Minute
	}
	t := now().UTC()
	fmtT := func(t time.Time) string { return t.UTC().Format(timeFormat) }

	if signedAt.After(t.Add(skew)) {
		return fail(CodeRequestExpired,
			"Signature not yet current: signed at %s, which is more than %v after the server time %s. "+
				"Check the client's clock (for example enable NTP) and sign again.",
			fmtT(signedAt), skew, fmtT(t))
	}
	if a.hasExpires {
		if deadline := signedAt.Add(a.expires); t.After(deadline) {
			return fail(CodeRequestExpired,
				"Request has expired: the presigned URL was signed at %s with X-Amz-Expires=%d, so it expired at %s; "+
					"the server time is %s. Presign a new URL.",
				fmtT(signedAt), int64(a.expires/time.Second), fmtT(deadline), fmtT(t))
		}
		return nil
	}
	if t.Sub(signedAt) > skew {
		return fail(CodeRequestExpired,
			"Signature expired: signed at %s, which is more than %v before the server time %s. "+
				"Check the client's clock (for example enable NTP) and sign again.",
			fmtT(signedAt), skew, fmtT(t))
	}
	return nil
}

// checkToken ties a temporary key to its session token. The token need not
// be signed (post-sts-header-after), so it is compared here, in constant time.
func checkToken(key Key, token string) error {
	const invalid = "The security token included in the request is invalid"
	switch {
	case key.SessionToken == "" && token != "":
		return fail(CodeInvalidClientTokenID,
			"%s: access key %s is a long-term key and takes no X-Amz-Security-Token. "+
				"Remove the token, or use the access key that was issued with it.", invalid, key.AccessKeyID)
	case key.SessionToken != "" && token == "":
		return fail(CodeInvalidClientTokenID,
			"%s: access key %s is a temporary credential; send its session token in X-Amz-Security-Token.",
			invalid, key.AccessKeyID)
	case subtle.ConstantTimeCompare([]byte(key.SessionToken), []byte(token)) != 1:
		return fail(CodeInvalidClientTokenID,
			"%s. Use the session token that was issued with access key %s.", invalid, key.AccessKeyID)
	}
	return nil
}

// payloadHash is the hash the client put in the canonical request. Clients
// that send X-Amz-Content-Sha256 hash that header value, so it is used as
// sent, but it must then describe the body we actually received; otherwise
// the body would be unauthenticated. ec2, iam and sts carry the whole
// request in the body, so UNSIGNED-PAYLOAD is only accepted with no body.
func payloadHash(r *http.Request, body []byte) (string, error) {
	sum := hashHex(body)
	h := r.Header.Get(headerContentSHA256)
	switch {
	case h == "":
		return sum, nil
	case h == unsignedPayload:
		if len(body) > 0 {
			return "", fail(CodeIncompleteSignature,
				"X-Amz-Content-Sha256 is UNSIGNED-PAYLOAD but the request has a body; this service needs the body signed. "+
					"Leave the header out or send the hex SHA-256 of the body.")
		}
		return h, nil
	case len(h) == 64 && isHex(h):
		if !strings.EqualFold(h, sum) {
			return "", fail(CodeSignatureDoesNotMatch,
				"The X-Amz-Content-Sha256 header does not match the SHA-256 of the request body; "+
					"the body changed after signing or the header is wrong.")
		}
		return h, nil
	default:
		return "", fail(CodeIncompleteSignature,
			"X-Amz-Content-Sha256 value '%s' is not supported; send the hex SHA-256 of the body "+
				"(streaming and chunked payloads are not supported here).", h)
	}
}

func isHex(s string) bool {
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !('0' <= c && c <= '9' || 'a' <= c && c <= 'f' || 'A' <= c && c <= 'F') {
			return false
		}
	}
	return true
}
