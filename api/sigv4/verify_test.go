package sigv4

import (
	"bufio"
	"bytes"
	"context"
	"encoding/hex"
	"errors"
	"io"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"
)

var (
	testNow  = time.Date(2026, 1, 15, 10, 0, 0, 0, time.UTC)
	permKey  = Key{AccessKeyID: "AKIDPERMANENT0000001", SecretAccessKey: "permanent/secret+key"}
	tempKey  = Key{AccessKeyID: "ASIATEMPORARY0000002", SecretAccessKey: "temporary/secret+key", SessionToken: "FwoGZXIvYXdz//session+token=="}
	errStore = errors.New("key store unavailable")
	formBody = []byte("Action=DescribeRegions&Version=2016-11-15")
)

const brokenStoreKey = "AKIDBROKENSTORE00003"

func testVerifier(now time.Time) *Verifier {
	return &Verifier{
		Lookup: func(_ context.Context, id string) (Key, error) {
			switch id {
			case permKey.AccessKeyID:
				return permKey, nil
			case tempKey.AccessKeyID:
				return tempKey, nil
			case brokenStoreKey:
				return Key{}, errStore
			}
			return Key{}, ErrUnknownKey
		},
		Now: func() time.Time { return now },
	}
}

// wire writes r with net/http and reads it back, so each test sees the
// request exactly as a labcloud server would: Host moved to r.Host,
// RequestURI set, headers canonicalized.
func wire(t *testing.T, r *http.Request, body []byte) (*http.Request, []byte) {
	t.Helper()
	r.Body = io.NopCloser(bytes.NewReader(body))
	r.ContentLength = int64(len(body))
	var buf bytes.Buffer
	if err := r.Write(&buf); err != nil {
		t.Fatal(err)
	}
	sr, err := http.ReadRequest(bufio.NewReader(&buf))
	if err != nil {
		t.Fatal(err)
	}
	got, err := io.ReadAll(sr.Body)
	if err != nil {
		t.Fatal(err)
	}
	return sr, got
}

// ec2Request is an unsigned EC2 Query-protocol POST.
func ec2Request(t *testing.T) *http.Request {
	t.Helper()
	r, err := http.NewRequest(http.MethodPost, "https://ec2.lab-1.labcloud.test/", nil)
	if err != nil {
		t.Fatal(err)
	}
	r.Header.Set("Content-Type", "application/x-www-form-urlencoded; charset=utf-8")
	return r
}

// signed returns an EC2 request signed with key at time at, as the server
// receives it. before runs ahead of signing, after between signing and
// sending (the place to tamper).
func signed(t *testing.T, key Key, at time.Time, before, after func(*http.Request)) (*http.Request, []byte) {
	t.Helper()
	r := ec2Request(t)
	if before != nil {
		before(r)
	}
	if err := Sign(r, formBody, key, "lab-1", "ec2", at); err != nil {
		t.Fatal(err)
	}
	if after != nil {
		after(r)
	}
	return wire(t, r, formBody)
}

func mustVerify(t *testing.T, v *Verifier, r *http.Request, body []byte) *Result {
	t.Helper()
	res, err := v.Verify(context.Background(), r, body)
	if err != nil {
		t.Fatalf("Verify: %v", err)
	}
	return res
}

func TestVerifyAcceptsSignedRequest(t *testing.T) {
	r, body := signed(t, permKey, testNow, nil, nil)
	res := mustVerify(t, testVerifier(testNow), r, body)
	want := Scope{AccessKeyID: permKey.AccessKeyID, Date: "20260115", Region: "lab-1", Service: "ec2"}
	if res.Scope != want || res.Key != permKey || !res.SignedAt.Equal(testNow) || res.Presigned {
		t.Fatalf("result %+v, want scope %+v, key %s, signed at %v", res, want, permKey.AccessKeyID, testNow)
	}
}

// TestVerifyErrors covers each AWS error code Verify produces. setAuthz
// edits the Authorization header after signing.
func TestVerifyErrors(t *testing.T) {
	setAuthz := func(f func(string) string) func(*http.Request) {
		return func(r *http.Request) { r.Header.Set(headerAuthorization, f(r.Header.Get(headerAuthorization))) }
	}
	replace := func(old, new string) func(*http.Request) {
		return setAuthz(func(a string) string { return strings.Replace(a, old, new, 1) })
	}
	dropParam := func(prefix string) func(*http.Request) {
		return setAuthz(func(a string) string {
			alg, rest, _ := strings.Cut(a, " ")
			var kept []string
			for _, p := range strings.Split(rest, ", ") {
				if !strings.HasPrefix(p, prefix) {
					kept = append(kept, p)
				}
			}
			return alg + " " + strings.Join(kept, ", ")
		})
	}
	tests := []struct {
		name        string
		key         Key
		before      func(*http.Request)
		after       func(*http.Request)
		body        []byte // nil means the signed body
		wantCode    string
		wantMessage string
	}{
		{
			name:        "no authentication",
			after:       func(r *http.Request) { r.Header.Del(headerAuthorization) },
			wantCode:    CodeMissingAuthenticationToken,
			wantMessage: "Request is missing Authentication Token",
		},
		{
			name:        "missing Signature",
			after:       dropParam("Signature="),
			wantCode:    CodeIncompleteSignature,
			wantMessage: "Authorization header requires 'Signature' parameter",
		},
		{
			name:        "missing Credential",
			after:       dropParam("Credential="),
			wantCode:    CodeIncompleteSignature,
			wantMessage: "Authorization header requires 'Credential' parameter",
		},
		{
			name:        "missing SignedHeaders",
			after:       dropParam("SignedHeaders="),
			wantCode:    CodeIncompleteSignature,
			wantMessage: "Authorization header requires 'SignedHeaders' parameter",
		},
		{
			name:        "component without equals sign",
			after:       replace("Signature=", "Signature"),
			wantCode:    CodeIncompleteSignature,
			wantMessage: "is malformed; expected Name=value",
		},
		{
			name:        "credential with four parts",
			after:       replace("/lab-1/ec2/", "/lab-1/"),
			wantCode:    CodeIncompleteSignature,
			wantMessage: "is malformed",
		},
		{
			name:        "credential with empty region",
			after:       replace("/lab-1/", "//"),
			wantCode:    CodeIncompleteSignature,
			wantMessage: "is malformed",
		},
		{
			name:        "unsupported algorithm",
			after:       replace("AWS4-HMAC-SHA256", "AWS4-HMAC-SHA512"),
			wantCode:    CodeIncompleteSignature,
			wantMessage: "Unsupported AWS 'algorithm': 'AWS4-HMAC-SHA512'",
		},
		{
			name:        "signature version 2 header",
			after:       func(r *http.Request) { r.Header.Set(headerAuthorization, "AWS AKIDPERMANENT0000001:c2lnbmF0dXJl") },
			wantCode:    CodeIncompleteSignature,
			wantMessage: "Unsupported AWS 'algorithm': 'AWS'",
		},
		{
			name:        "host not signed",
			after:       replace("content-type;host;x-amz-date", "content-type;x-amz-date"),
			wantCode:    CodeIncompleteSignature,
			wantMessage: "'Host' must be a 'SignedHeader'",
		},
		{
			name:        "no date header",
			after:       func(r *http.Request) { r.Header.Del(headerDate) },
			wantCode:    CodeIncompleteSignature,
			wantMessage: "requires existence of either a 'X-Amz-Date' or a 'Date' header",
		},
		{
			name:        "malformed date",
			after:       func(r *http.Request) { r.Header.Set(headerDate, "2026-01-15T10:00:00Z") },
			wantCode:    CodeIncompleteSignature,
			wantMessage: "is not a valid date",
		},
		{
			name:        "two authorization headers",
			after:       func(r *http.Request) { r.Header.Add(headerAuthorization, r.Header.Get(headerAuthorization)) },
			wantCode:    CodeIncompleteSignature,
			wantMessage: "2 Authorization headers",
		},
		{
			name:        "header and query authentication together",
			after:       func(r *http.Request) { r.URL.RawQuery = "X-Amz-Algorithm=AWS4-HMAC-SHA256" },
			wantCode:    CodeIncompleteSignature,
			wantMessage: "Only one auth mechanism allowed",
		},
		{
			name:        "scope date is not the signing day",
			after:       replace("/20260115/", "/20260114/"),
			wantCode:    CodeSignatureDoesNotMatch,
			wantMessage: "'20260114' != '20260115'",
		},
		{
			name:        "scope terminator",
			after:       replace("/aws4_request", "/aws5_request"),
			wantCode:    CodeSignatureDoesNotMatch,
			wantMessage: "valid terminator: 'aws4_request', not 'aws5_request'",
		},
		{
			name:        "unknown access key",
			key:         Key{AccessKeyID: "AKIDNOBODY0000000000", SecretAccessKey: "x"},
			wantCode:    CodeInvalidClientTokenID,
			wantMessage: "The AWS Access Key Id you provided does not exist in our records.",
		},
		{
			name:        "wrong secret",
			key:         Key{AccessKeyID: permKey.AccessKeyID, SecretAccessKey: "not the secret"},
			wantCode:    CodeSignatureDoesNotMatch,
			wantMessage: "The request signature we calculated does not match the signature you provided. Check your AWS Secret Access Key and signing method.",
		},
		{
			name:     "signature one digit off",
			after:    setAuthz(flipHex),
			wantCode: CodeSignatureDoesNotMatch,
		},
		{
			name:     "signature upper-case hex",
			after:    setAuthz(func(a string) string { i := strings.LastIndex(a, "=") + 1; return a[:i] + strings.ToUpper(a[i:]) }),
			wantCode: CodeSignatureDoesNotMatch,
		},
		{
			name:     "body changed",
			body:     []byte("Action=TerminateInstances&Version=2016-11-15"),
			wantCode: CodeSignatureDoesNotMatch,
		},
		{
			name:     "signed header changed",
			after:    func(r *http.Request) { r.Header.Set("Content-Type", "text/plain") },
			wantCode: CodeSignatureDoesNotMatch,
		},
		{
			name:     "query parameter added",
			after:    func(r *http.Request) { r.URL.RawQuery = "Action=TerminateInstances" },
			wantCode: CodeSignatureDoesNotMatch,
		},
		{
			name:        "content sha256 header does not match body",
			before:      func(r *http.Request) { r.Header.Set(headerContentSHA256, hashHex([]byte("other"))) },
			wantCode:    CodeSignatureDoesNotMatch,
			wantMessage: "X-Amz-Content-Sha256 header does not match",
		},
		{
			name:        "unsigned payload with a body",
			before:      func(r *http.Request) { r.Header.Set(headerContentSHA256, unsignedPayload) },
			wantCode:    CodeIncompleteSignature,
			wantMessage: "UNSIGNED-PAYLOAD but the request has a body",
		},
		{
			name:        "streaming payload",
			before:      func(r *http.Request) { r.Header.Set(headerContentSHA256, "STREAMING-AWS4-HMAC-SHA256-PAYLOAD") },
			wantCode:    CodeIncompleteSignature,
			wantMessage: "is not supported",
		},
		{
			name:        "token sent with a permanent key",
			key:         Key{AccessKeyID: permKey.AccessKeyID, SecretAccessKey: permKey.SecretAccessKey, SessionToken: "stolen"},
			wantCode:    CodeInvalidClientTokenID,
			wantMessage: "The security token included in the request is invalid",
		},
		{
			name:        "temporary key without its token",
			key:         Key{AccessKeyID: tempKey.AccessKeyID, SecretAccessKey: tempKey.SecretAccessKey},
			wantCode:    CodeInvalidClientTokenID,
			wantMessage: "The security token included in the request is invalid",
		},
		{
			name:        "temporary key with the wrong token",
			key:         Key{AccessKeyID: tempKey.AccessKeyID, SecretAccessKey: tempKey.SecretAccessKey, SessionToken: tempKey.SessionToken + "x"},
			wantCode:    CodeInvalidClientTokenID,
			wantMessage: "The security token included in the request is invalid",
		},
		{
			name:        "token sent twice",
			key:         tempKey,
			after:       func(r *http.Request) { r.Header.Add(headerToken, tempKey.SessionToken) },
			wantCode:    CodeInvalidClientTokenID,
			wantMessage: "sent 2 times",
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			key := tt.key
			if key.AccessKeyID == "" {
				key = permKey
			}
			r, body := signed(t, key, testNow, tt.before, tt.after)
			if tt.body != nil {
				body = tt.body
			}
			res, err := testVerifier(testNow).Verify(context.Background(), r, body)
			if res != nil {
				t.Fatalf("Verify accepted the request: %+v", res)
			}
			wantCode(t, err, tt.wantCode)
			if msg := err.(*Error).Message; !strings.Contains(msg, tt.wantMessage) {
				t.Fatalf("message %q does not contain %q", msg, tt.wantMessage)
			}
		})
	}
}

// A Lookup failure other than ErrUnknownKey is the server's problem, so it
// must not be dressed up as an AWS client error.
func TestVerifyLookupFailureIsInternal(t *testing.T) {
	r, body := signed(t, Key{AccessKeyID: brokenStoreKey, SecretAccessKey: "x"}, testNow, nil, nil)
	_, err := testVerifier(testNow).Verify(context.Background(), r, body)
	var e *Error
	if !errors.Is(err, errStore) || errors.As(err, &e) {
		t.Fatalf("got %v, want the wrapped store error and no *Error", err)
	}
}

func TestVerifyWrappedUnknownKey(t *testing.T) {
	v := testVerifier(testNow)
	v.Lookup = func(context.Context, string) (Key, error) {
		return Key{}, errors.Join(errors.New("iamd: no such key"), ErrUnknownKey)
	}
	r, body := signed(t, permKey, testNow, nil, nil)
	_, err := v.Verify(context.Background(), r, body)
	wantCode(t, err, CodeInvalidClientTokenID)
}

// Clients disagree on spacing in the Authorization header; botocore writes
// ", " between components, others write "," or add stray blanks.
func TestVerifyAuthorizationWhitespace(t *testing.T) {
	tests := []struct {
		name   string
		format func(cred, signed, sig string) string
	}{
		{"botocore", func(c, h, s string) string {
			return "AWS4-HMAC-SHA256 Credential=" + c + ", SignedHeaders=" + h + ", Signature=" + s
		}},
		{"no spaces", func(c, h, s string) string {
			return "AWS4-HMAC-SHA256 Credential=" + c + ",SignedHeaders=" + h + ",Signature=" + s
		}},
		{"extra blanks and tab", func(c, h, s string) string {
			return "  AWS4-HMAC-SHA256   Credential=" + c + " ,  SignedHeaders=" + h + ",\tSignature=" + s + " "
		}},
		{"other order", func(c, h, s string) string {
			return "AWS4-HMAC-SHA256 Signature=" + s + ", Credential=" + c + ", SignedHeaders=" + h
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r, body := signed(t, permKey, testNow, nil, func(r *http.Request) {
				a := r.Header.Get(headerAuthorization)
				var cred, sh, sig string
				for _, p := range strings.Split(strings.TrimPrefix(a, "AWS4-HMAC-SHA256 "), ", ") {
					k, v, _ := strings.Cut(p, "=")
					switch k {
					case "Credential":
						cred = v
					case "SignedHeaders":
						sh = v
					case "Signature":
						sig = v
					}
				}
				r.Header.Set(headerAuthorization, tt.format(cred, sh, sig))
			})
			mustVerify(t, testVerifier(testNow), r, body)
		})
	}
}

// botocore falls back to a Date header (in RFC 2822 form) when the caller
// set one; the signing time in the string to sign is still ISO 8601.
func TestVerifyDateHeader(t *testing.T) {
	tests := []struct {
		name, date string
	}{
		{"RFC 1123 GMT", "Thu, 15 Jan 2026 10:00:00 GMT"},
		{"RFC 2822 as botocore writes it", "Thu, 15 Jan 2026 10:00:00 -0000"},
		{"ISO 8601 basic", "20260115T100000Z"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := ec2Request(t)
			r.Header.Set("Date", tt.date)
			sr, body := wire(t, r, formBody)
			scope := Scope{AccessKeyID: permKey.AccessKeyID, Date: "20260115", Region: "lab-1", Service: "ec2"}
			signedHeaders := []string{"content-type", "date", "host"}
			creq := CanonicalRequest(sr, signedHeaders, hashHex(body))
			sig := signature(SigningKey(permKey.SecretAccessKey, scope.Date, scope.Region, scope.Service),
				StringToSign(testNow, scope, creq))
			sr.Header.Set(headerAuthorization, "AWS4-HMAC-SHA256 Credential="+permKey.AccessKeyID+"/"+
				scope.credentialScope()+", SignedHeaders=content-type;date;host, Signature="+sig)
			res := mustVerify(t, testVerifier(testNow), sr, body)
			if !res.SignedAt.Equal(testNow) {
				t.Fatalf("SignedAt %v, want %v", res.SignedAt, testNow)
			}
		})
	}
}

func TestVerifyClockSkew(t *testing.T) {
	tests := []struct {
		name     string
		offset   time.Duration // signing time minus server time
		maxSkew  time.Duration
		wantCode string // "" means accepted
	}{
		{name: "in sync", offset: 0},
		{name: "signed 14 minutes ago", offset: -14 * time.Minute},
		{name: "signed 14 minutes ahead", offset: 14 * time.Minute},
		{name: "signed exactly 15 minutes ago", offset: -15 * time.Minute},
		{name: "signed 16 minutes ago", offset: -16 * time.Minute, wantCode: CodeRequestExpired},
		{name: "signed 16 minutes ahead", offset: 16 * time.Minute, wantCode: CodeRequestExpired},
		{name: "custom skew allows 16 minutes", offset: -16 * time.Minute, maxSkew: time.Hour},
		{name: "custom skew rejects 2 minutes", offset: 2 * time.Minute, maxSkew: time.Minute, wantCode: CodeRequestExpired},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r, body := signed(t, permKey, testNow.Add(tt.offset), nil, nil)
			v := testVerifier(testNow)
			v.MaxSkew = tt.maxSkew
			_, err := v.Verify(context.Background(), r, body)
			if tt.wantCode == "" {
				if err != nil {
					t.Fatalf("Verify: %v", err)
				}
				return
			}
			wantCode(t, err, tt.wantCode)
			// The message must let the user see both clocks.
			msg := err.(*Error).Message
			for _, ts := range []string{testNow.Add(tt.offset).Format(timeFormat), testNow.Format(timeFormat)} {
				if !strings.Contains(msg, ts) {
					t.Fatalf("message %q does not name %s", msg, ts)
				}
			}
		})
	}
}

func TestSessionToken(t *testing.T) {
	t.Run("signed before", func(t *testing.T) {
		r, body := signed(t, tempKey, testNow, nil, nil)
		if !strings.Contains(r.Header.Get(headerAuthorization), "x-amz-security-token") {
			t.Fatal("Sign did not sign the session token")
		}
		if res := mustVerify(t, testVerifier(testNow), r, body); res.Key != tempKey {
			t.Fatalf("key %+v, want %+v", res.Key, tempKey)
		}
	})
	t.Run("added after signing", func(t *testing.T) {
		noToken := Key{AccessKeyID: tempKey.AccessKeyID, SecretAccessKey: tempKey.SecretAccessKey}
		r, body := signed(t, noToken, testNow, nil, func(r *http.Request) {
			r.Header.Set(headerToken, tempKey.SessionToken)
		})
		mustVerify(t, testVerifier(testNow), r, body)
	})
}

// stsPresignRequest is the unsigned GET that Presign turns into a URL.
func stsPresignRequest(t *testing.T) *http.Request {
	t.Helper()
	r, err := http.NewRequest(http.MethodGet, "https://sts.lab-1.labcloud.test/?Action=GetCallerIdentity&Version=2011-06-15", nil)
	if err != nil {
		t.Fatal(err)
	}
	return r
}

// presigned returns the server's view of a GET to a presigned URL, after
// edit has had a chance to change the URL's query.
func presigned(t *testing.T, key Key, expires time.Duration, edit func(url.Values)) (*http.Request, []byte) {
	t.Helper()
	raw, err := Presign(stsPresignRequest(t), key, "lab-1", "sts", testNow, expires)
	if err != nil {
		t.Fatal(err)
	}
	u, err := url.Parse(raw)
	if err != nil {
		t.Fatal(err)
	}
	if edit != nil {
		q := u.Query()
		edit(q)
		u.RawQuery = q.Encode()
	}
	r, err := http.NewRequest(http.MethodGet, u.String(), nil)
	if err != nil {
		t.Fatal(err)
	}
	return wire(t, r, nil)
}

func TestPresignRoundTrip(t *testing.T) {
	r, body := presigned(t, permKey, 15*time.Minute, nil)
	for _, p := range []string{"X-Amz-Algorithm=AWS4-HMAC-SHA256", "X-Amz-Credential=AKIDPERMANENT0000001%2F20260115%2Flab-1%2Fsts%2Faws4_request",
		"X-Amz-Date=20260115T100000Z", "X-Amz-Expires=900", "X-Amz-SignedHeaders=host", "X-Amz-Signature="} {
		if !strings.Contains(r.RequestURI, p) {
			t.Fatalf("presigned URL %s lacks %s", r.RequestURI, p)
		}
	}
	res := mustVerify(t, testVerifier(testNow.Add(time.Minute)), r, body)
	want := Scope{AccessKeyID: permKey.AccessKeyID, Date: "20260115", Region: "lab-1", Service: "sts"}
	if !res.Presigned || res.Scope != want {
		t.Fatalf("result %+v, want presigned with scope %+v", res, want)
	}
}

func TestPresignExpiry(t *testing.T) {
	tests := []struct {
		name     string
		now      time.Duration // server time minus signing time
		wantCode string
	}{
		{name: "just signed", now: 0},
		{name: "at the deadline", now: 15 * time.Minute},
		{name: "one second late", now: 15*time.Minute + time.Second, wantCode: CodeRequestExpired},
		{name: "a day late", now: 24 * time.Hour, wantCode: CodeRequestExpired},
		{name: "signed 14 minutes in the future", now: -14 * time.Minute},
		{name: "signed 16 minutes in the future", now: -16 * time.Minute, wantCode: CodeRequestExpired},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r, body := presigned(t, permKey, 15*time.Minute, nil)
			_, err := testVerifier(testNow.Add(tt.now)).Verify(context.Background(), r, body)
			if tt.wantCode == "" {
				if err != nil {
					t.Fatalf("Verify: %v", err)
				}
				return
			}
			wantCode(t, err, tt.wantCode)
		})
	}
}

func TestPresignErrors(t *testing.T) {
	tests := []struct {
		name        string
		key         Key
		edit        func(url.Values)
		wantCode    string
		wantMessage string
	}{
		{
			name:     "operation changed",
			edit:     func(q url.Values) { q.Set("Action", "GetSessionToken") },
			wantCode: CodeSignatureDoesNotMatch,
		},
		{
			name:     "signature changed",
			edit:     func(q url.Values) { q.Set(querySignature, flipHex(q.Get(querySignature))) },
			wantCode: CodeSignatureDoesNotMatch,
		},
		{
			name:        "signature missing",
			edit:        func(q url.Values) { q.Del(querySignature) },
			wantCode:    CodeIncompleteSignature,
			wantMessage: "'X-Amz-Signature'",
		},
		{
			name:        "date missing",
			edit:        func(q url.Values) { q.Del(queryDate) },
			wantCode:    CodeIncompleteSignature,
			wantMessage: "'X-Amz-Date'",
		},
		{
			name:        "expires twice",
			edit:        func(q url.Values) { q.Add(queryExpires, "60") },
			wantCode:    CodeIncompleteSignature,
			wantMessage: "appears 2 times",
		},
		{
			name:        "expires over a week",
			edit:        func(q url.Values) { q.Set(queryExpires, "604801") },
			wantCode:    CodeIncompleteSignature,
			wantMessage: "less than a week",
		},
		{
			name:        "expires not a number",
			edit:        func(q url.Values) { q.Set(queryExpires, "soon") },
			wantCode:    CodeIncompleteSignature,
			wantMessage: "whole number of seconds",
		},
		{
			name:        "unsupported algorithm",
			edit:        func(q url.Values) { q.Set(queryAlgorithm, "AWS4-ECDSA-P256-SHA256") },
			wantCode:    CodeIncompleteSignature,
			wantMessage: "Unsupported AWS 'algorithm'",
		},
		{
			name:     "temporary key with token",
			key:      tempKey,
			wantCode: "",
		},
		{
			name:     "temporary key with token removed",
			key:      tempKey,
			edit:     func(q url.Values) { q.Del(queryToken) },
			wantCode: CodeInvalidClientTokenID,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			key := tt.key
			if key.AccessKeyID == "" {
				key = permKey
			}
			r, body := presigned(t, key, 15*time.Minute, tt.edit)
			_, err := testVerifier(testNow).Verify(context.Background(), r, body)
			if tt.wantCode == "" {
				if err != nil {
					t.Fatalf("Verify: %v", err)
				}
				return
			}
			wantCode(t, err, tt.wantCode)
			if msg := err.(*Error).Message; !strings.Contains(msg, tt.wantMessage) {
				t.Fatalf("message %q does not contain %q", msg, tt.wantMessage)
			}
		})
	}
}

func TestPresignRejectsBadExpiry(t *testing.T) {
	for _, d := range []time.Duration{0, -time.Second, 1500 * time.Millisecond, 7*24*time.Hour + time.Second} {
		if _, err := Presign(stsPresignRequest(t), permKey, "lab-1", "sts", testNow, d); err == nil {
			t.Errorf("Presign accepted expiry %v", d)
		}
	}
	if _, err := Presign(stsPresignRequest(t), permKey, "lab-1", "sts", testNow, 7*24*time.Hour); err != nil {
		t.Errorf("Presign rejected the 7-day maximum: %v", err)
	}
}

func TestParseScope(t *testing.T) {
	header, _ := signed(t, permKey, testNow, nil, nil)
	query, _ := presigned(t, permKey, time.Minute, nil)
	bare, _ := wire(t, ec2Request(t), nil)
	badTerminator, _ := signed(t, permKey, testNow, nil, func(r *http.Request) {
		r.Header.Set(headerAuthorization, strings.Replace(r.Header.Get(headerAuthorization), "aws4_request", "aws4_reqest", 1))
	})
	tests := []struct {
		name      string
		r         *http.Request
		wantScope Scope
		wantCode  string
	}{
		{"authorization header", header, Scope{permKey.AccessKeyID, "20260115", "lab-1", "ec2"}, ""},
		{"presigned query", query, Scope{permKey.AccessKeyID, "20260115", "lab-1", "sts"}, ""},
		{"no authentication", bare, Scope{}, CodeMissingAuthenticationToken},
		// The service is still reported so the server can format the error.
		{"bad terminator", badTerminator, Scope{permKey.AccessKeyID, "20260115", "lab-1", "ec2"}, CodeSignatureDoesNotMatch},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s, err := ParseScope(tt.r)
			if s != tt.wantScope {
				t.Fatalf("scope %+v, want %+v", s, tt.wantScope)
			}
			if tt.wantCode == "" {
				if err != nil {
					t.Fatalf("ParseScope: %v", err)
				}
				return
			}
			wantCode(t, err, tt.wantCode)
		})
	}
}

func TestSigningKey(t *testing.T) {
	// The worked example from the AWS documentation ("Examples of how to
	// derive a signing key for Signature Version 4").
	got := SigningKey("wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY", "20120215", "us-east-1", "iam")
	const want = "f4780e2d9f65fa895f9c67b32ce1baf0b0d8a43505a000a1a9e090d414db404d"
	if h := hex.EncodeToString(got); h != want {
		t.Fatalf("signing key %s, want %s", h, want)
	}
}

func TestCanonicalURI(t *testing.T) {
	tests := []struct {
		name, path, want string
	}{
		{"empty", "", "/"},
		{"root", "/", "/"},
		{"already escaped space is escaped again", "/a%20b", "/a%2520b"},
		{"dot segments", "/a/./b/../c", "/a/c"},
		{"dot-dot above root", "/../a", "/a"},
		{"double slashes", "//a//b//", "/a/b/"},
		{"trailing slash kept", "/a/", "/a/"},
		{"reserved characters", "/a$b:c@d", "/a%24b%3Ac%40d"},
		{"escaped slash is not a separator", "/a%2Fb", "/a%252Fb"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := canonicalURI(tt.path); got != tt.want {
				t.Fatalf("canonicalURI(%q) = %q, want %q", tt.path, got, tt.want)
			}
		})
	}
}

func TestCanonicalQuery(t *testing.T) {
	tests := []struct {
		name, raw, want string
	}{
		{"empty", "", ""},
		{"sorted by key then value", "b=2&a=2&a=1", "a=1&a=2&b=2"},
		{"key without value keeps equals", "flag&a=1", "a=1&flag="},
		{"plus is a space", "q=a+b", "q=a%20b"},
		{"re-encodes reserved characters", "k=a%2Fb%3D%7E", "k=a%2Fb%3D~"},
		{"sorted by encoded key", "a.=1&a%2F=2", "a%2F=2&a.=1"},
		{"signature left out", "Action=X&X-Amz-Signature=abc", "Action=X"},
		{"empty parts ignored", "a=1&&b=2&", "a=1&b=2"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := canonicalQuery(tt.raw); got != tt.want {
				t.Fatalf("canonicalQuery(%q) = %q, want %q", tt.raw, got, tt.want)
			}
		})
	}
}

func TestTrimAll(t *testing.T) {
	tests := []struct {
		name, in, want string
	}{
		{"plain", "value", "value"},
		{"outer spaces", "  value  ", "value"},
		{"inner runs", `"a   b   c"`, `"a b c"`},
		{"folded lines", "value1\n  value2\n     value3", "value1 value2 value3"},
		{"tabs", "a\t\tb", "a b"},
		{"only spaces", "   ", ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := trimAll(tt.in); got != tt.want {
				t.Fatalf("trimAll(%q) = %q, want %q", tt.in, got, tt.want)
			}
		})
	}
}
