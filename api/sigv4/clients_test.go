package sigv4

import (
	"bufio"
	"context"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"
)

// clientVector is a request exactly as a real AWS client put it on the
// wire, with the key it was signed with and the time it was signed at.
type clientVector struct {
	name string
	raw  string
	key  Key
	now  string // X-Amz-Date of the signature, used as the server clock
}

// botocoreVectors were produced by botocore 1.43.11 (the library under the
// aws CLI v1 and boto3), with its clock pinned to 2026-01-15T10:00:00Z:
//
//	python3 api/sigv4/testdata/botocore_vectors.py
//
// The first three come from botocore.auth.SigV4Auth / SigV4QueryAuth called
// directly; the last two from real botocore clients, captured at
// before-send. Regenerating changes at most the unsigned User-Agent.
var botocoreVectors = []clientVector{
	{
		name: "botocore SigV4Auth ec2 DescribeRegions",
		raw:  "POST / HTTP/1.1\r\nHost: ec2.lab-1.labcloud.test\r\nContent-Type: application/x-www-form-urlencoded; charset=utf-8\r\nX-Amz-Date: 20260115T100000Z\r\nAuthorization: AWS4-HMAC-SHA256 Credential=AKIDLABCLOUDTEST0001/20260115/lab-1/ec2/aws4_request, SignedHeaders=content-type;host;x-amz-date, Signature=822de179454801553102fe222f7cfb7711a1fcf1633264e6a449eaa5cec8b00f\r\nContent-Length: 41\r\n\r\nAction=DescribeRegions&Version=2016-11-15",
		key:  Key{AccessKeyID: "AKIDLABCLOUDTEST0001", SecretAccessKey: "labcloudSecretKeyForBotocoreVectors0001", SessionToken: ""},
		now:  "20260115T100000Z",
	},
	{
		name: "botocore SigV4QueryAuth sts presigned GetCallerIdentity",
		raw:  "GET /?Action=GetCallerIdentity&Version=2011-06-15&X-Amz-Algorithm=AWS4-HMAC-SHA256&X-Amz-Credential=AKIDLABCLOUDTEST0001%2F20260115%2Flab-1%2Fsts%2Faws4_request&X-Amz-Date=20260115T100000Z&X-Amz-Expires=900&X-Amz-SignedHeaders=host&X-Amz-Signature=bd3be81f3f2f34dab7a7a167d6a9696ebf62c243868e42e6ed9c33fa493ed1f1 HTTP/1.1\r\nHost: sts.lab-1.labcloud.test\r\n\r\n",
		key:  Key{AccessKeyID: "AKIDLABCLOUDTEST0001", SecretAccessKey: "labcloudSecretKeyForBotocoreVectors0001", SessionToken: ""},
		now:  "20260115T100000Z",
	},
	{
		name: "botocore SigV4QueryAuth sts presigned with session token",
		raw:  "GET /?Action=GetCallerIdentity&Version=2011-06-15&X-Amz-Algorithm=AWS4-HMAC-SHA256&X-Amz-Credential=ASIALABCLOUDTEST0002%2F20260115%2Flab-1%2Fsts%2Faws4_request&X-Amz-Date=20260115T100000Z&X-Amz-Expires=3600&X-Amz-SignedHeaders=host&X-Amz-Security-Token=FwoGZXIvYXdzEXAMPLEsessiontoken%2F%2F%2B%2Flabcloud%3D%3D&X-Amz-Signature=1ea211dbb549ad936bd85fe28e35046f9600288f5d774de386adf9b11ebf0569 HTTP/1.1\r\nHost: sts.lab-1.labcloud.test\r\n\r\n",
		key:  Key{AccessKeyID: "ASIALABCLOUDTEST0002", SecretAccessKey: "labcloudTemporarySecretForVectors00002", SessionToken: "FwoGZXIvYXdzEXAMPLEsessiontoken//+/labcloud=="},
		now:  "20260115T100000Z",
	},
	{
		name: "botocore client ec2 DescribeRegions",
		raw:  "POST / HTTP/1.1\r\nHost: 127.0.0.1:8787\r\nContent-Type: application/x-www-form-urlencoded; charset=utf-8\r\nUser-Agent: Botocore/1.43.11 ua/2.1 os/linux#6.18.44-fc-v782 md/arch#x86_64 lang/python#3.11.7 md/pyimpl#CPython m/b,D,e,Z,N cfg/retry-mode#legacy\r\nX-Amz-Date: 20260115T100000Z\r\nAuthorization: AWS4-HMAC-SHA256 Credential=AKIDLABCLOUDTEST0001/20260115/lab-1/ec2/aws4_request, SignedHeaders=content-type;host;x-amz-date, Signature=7a688b94a0399b2124d8b695e890b1715fe8ea2a0a2b397679df9cf3e4f68b18\r\namz-sdk-invocation-id: 00000000-0000-0000-0000-000001abc10d\r\namz-sdk-request: attempt=1\r\nContent-Length: 41\r\n\r\nAction=DescribeRegions&Version=2016-11-15",
		key:  Key{AccessKeyID: "AKIDLABCLOUDTEST0001", SecretAccessKey: "labcloudSecretKeyForBotocoreVectors0001", SessionToken: ""},
		now:  "20260115T100000Z",
	},
	{
		name: "botocore client iam GetUser with session token",
		raw:  "POST / HTTP/1.1\r\nHost: 127.0.0.1:8787\r\nContent-Type: application/x-www-form-urlencoded; charset=utf-8\r\nUser-Agent: Botocore/1.43.11 ua/2.1 os/linux#6.18.44-fc-v782 md/arch#x86_64 lang/python#3.11.7 md/pyimpl#CPython m/b,D,e,Z,N cfg/retry-mode#legacy\r\nX-Amz-Date: 20260115T100000Z\r\nX-Amz-Security-Token: FwoGZXIvYXdzEXAMPLEsessiontoken//+/labcloud==\r\nAuthorization: AWS4-HMAC-SHA256 Credential=ASIALABCLOUDTEST0002/20260115/lab-1/iam/aws4_request, SignedHeaders=content-type;host;x-amz-date;x-amz-security-token, Signature=8f37d57f098436c2f7529f59fa8e4e4e178561fb1ae1c89656e616080e15b70b\r\namz-sdk-invocation-id: 00000000-0000-0000-0000-000001abc10d\r\namz-sdk-request: attempt=1\r\nContent-Length: 33\r\n\r\nAction=GetUser&Version=2010-05-08",
		key:  Key{AccessKeyID: "ASIALABCLOUDTEST0002", SecretAccessKey: "labcloudTemporarySecretForVectors00002", SessionToken: "FwoGZXIvYXdzEXAMPLEsessiontoken//+/labcloud=="},
		now:  "20260115T100000Z",
	},
}

// goSDKVectors were produced by aws-sdk-go-v2 v1.48.0's real ec2 and sts
// clients and its STS presign client, with the signer's clock pinned:
//
//	cd /work/main && GOPROXY=off go run ./api/sigv4/testdata/gov2vectors
//
// Regenerating changes amz-sdk-invocation-id, which is signed, and so the
// signatures; any regenerated set must verify just the same.
var goSDKVectors = []clientVector{
	{
		name: "aws-sdk-go-v2 ec2 DescribeRegions",
		raw:  "POST / HTTP/1.1\r\nHost: 127.0.0.1:8787\r\nUser-Agent: aws-sdk-go-v2/1.48.0 ua/2.1 os/linux lang/go#1.26.8 md/GOOS#linux md/GOARCH#amd64 api/ec2#1.346.0 m/e\r\nContent-Length: 41\r\nAmz-Sdk-Invocation-Id: 9adc2fd4-799b-4ce5-9382-68204257f2f7\r\nAmz-Sdk-Request: attempt=1; max=1\r\nAuthorization: AWS4-HMAC-SHA256 Credential=AKIDLABCLOUDTEST0001/20260115/lab-1/ec2/aws4_request, SignedHeaders=amz-sdk-invocation-id;amz-sdk-request;content-length;content-type;host;x-amz-date, Signature=54e40ab277f2a587ce7348b2a8a3d0d04ddf7150437c32cba7b0928453158684\r\nContent-Type: application/x-www-form-urlencoded\r\nX-Amz-Date: 20260115T100000Z\r\nAccept-Encoding: gzip\r\n\r\nAction=DescribeRegions&Version=2016-11-15",
		key:  Key{AccessKeyID: "AKIDLABCLOUDTEST0001", SecretAccessKey: "labcloudSecretKeyForBotocoreVectors0001", SessionToken: ""},
		now:  "20260115T100000Z",
	},
	{
		name: "aws-sdk-go-v2 sts GetCallerIdentity with session token",
		raw:  "POST / HTTP/1.1\r\nHost: 127.0.0.1:8787\r\nUser-Agent: aws-sdk-go-v2/1.48.0 ua/2.1 os/linux lang/go#1.26.8 md/GOOS#linux md/GOARCH#amd64 api/sts#1.52.0 m/e\r\nContent-Length: 43\r\nAmz-Sdk-Invocation-Id: 6fccd2e7-e0c1-4184-a0e8-19ed07e1dc55\r\nAmz-Sdk-Request: attempt=1; max=1\r\nAuthorization: AWS4-HMAC-SHA256 Credential=ASIALABCLOUDTEST0002/20260115/lab-1/sts/aws4_request, SignedHeaders=amz-sdk-invocation-id;amz-sdk-request;content-length;content-type;host;x-amz-date;x-amz-security-token, Signature=c15821826f9d761040cef5ef4f0ee4a6567bc1e05853ed583ae6cd9494ebbaee\r\nContent-Type: application/x-www-form-urlencoded\r\nX-Amz-Date: 20260115T100000Z\r\nX-Amz-Security-Token: FwoGZXIvYXdzEXAMPLEsessiontoken//+/labcloud==\r\nAccept-Encoding: gzip\r\n\r\nAction=GetCallerIdentity&Version=2011-06-15",
		key:  Key{AccessKeyID: "ASIALABCLOUDTEST0002", SecretAccessKey: "labcloudTemporarySecretForVectors00002", SessionToken: "FwoGZXIvYXdzEXAMPLEsessiontoken//+/labcloud=="},
		now:  "20260115T100000Z",
	},
	{
		name: "aws-sdk-go-v2 sts presigned GetCallerIdentity",
		raw:  "GET /?Action=GetCallerIdentity&Version=2011-06-15&X-Amz-Algorithm=AWS4-HMAC-SHA256&X-Amz-Credential=AKIDLABCLOUDTEST0001%2F20260115%2Flab-1%2Fsts%2Faws4_request&X-Amz-Date=20260115T100000Z&X-Amz-SignedHeaders=host&X-Amz-Signature=624bc32f2938002f7372e2817fc32d86ab6d87c8ee4e67477086708f2eb83e38 HTTP/1.1\r\nHost: 127.0.0.1:8787\r\nUser-Agent: Go-http-client/1.1\r\nAccept-Encoding: gzip\r\n\r\n",
		key:  Key{AccessKeyID: "AKIDLABCLOUDTEST0001", SecretAccessKey: "labcloudSecretKeyForBotocoreVectors0001", SessionToken: ""},
		now:  "20260115T100000Z",
	},
}

// parseWire reads a vector with net/http, as the labcloud server would.
func parseWire(t *testing.T, raw string) (*http.Request, []byte) {
	t.Helper()
	r, err := http.ReadRequest(bufio.NewReader(strings.NewReader(raw)))
	if err != nil {
		t.Fatal(err)
	}
	body, err := io.ReadAll(r.Body)
	if err != nil {
		t.Fatal(err)
	}
	return r, body
}

func vectorVerifier(vec clientVector, now time.Time) *Verifier {
	return &Verifier{
		Lookup: func(_ context.Context, id string) (Key, error) {
			if id != vec.key.AccessKeyID {
				return Key{}, ErrUnknownKey
			}
			return vec.key, nil
		},
		Now: func() time.Time { return now },
	}
}

// TestRealClientSignatures checks that requests signed by botocore and
// aws-sdk-go-v2 verify, and stop verifying when the body or the signature
// changes.
func TestRealClientSignatures(t *testing.T) {
	for _, vec := range append(append([]clientVector{}, botocoreVectors...), goSDKVectors...) {
		t.Run(vec.name, func(t *testing.T) {
			now, err := time.Parse(timeFormat, vec.now)
			if err != nil {
				t.Fatal(err)
			}
			v := vectorVerifier(vec, now.Add(time.Minute))

			r, body := parseWire(t, vec.raw)
			scope, err := ParseScope(r)
			if err != nil {
				t.Fatalf("ParseScope: %v", err)
			}
			res, err := v.Verify(context.Background(), r, body)
			if err != nil {
				t.Fatalf("Verify: %v", err)
			}
			if res.Scope != scope || res.Key != vec.key || !res.SignedAt.Equal(now) {
				t.Fatalf("result %+v, want scope %+v, key %s, signed at %v", res, scope, vec.key.AccessKeyID, now)
			}
			if want := strings.Contains(vec.raw, "X-Amz-Signature="); res.Presigned != want {
				t.Fatalf("Presigned = %v, want %v", res.Presigned, want)
			}

			// Change the API version: in the body of a POST, in the query of
			// a presigned GET.
			r, body = parseWire(t, vec.raw)
			if len(body) > 0 {
				body = []byte(strings.Replace(string(body), "Version=", "Version=9", 1))
			} else {
				r, body = parseWire(t, strings.Replace(vec.raw, "Version=", "Version=9", 1))
			}
			_, err = v.Verify(context.Background(), r, body)
			wantCode(t, err, CodeSignatureDoesNotMatch)
		})
	}
}

// aws-sdk-go-v2's STS presign client sends no X-Amz-Expires; such a URL is
// held to the same 15-minute window as a signed header.
func TestPresignWithoutExpiresUsesSkew(t *testing.T) {
	vec := goSDKVectors[len(goSDKVectors)-1]
	if strings.Contains(vec.raw, "X-Amz-Expires") {
		t.Fatalf("vector %q has X-Amz-Expires; pick one without", vec.name)
	}
	signedAt, err := time.Parse(timeFormat, vec.now)
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name     string
		now      time.Duration
		wantCode string
	}{
		{name: "14 minutes later", now: 14 * time.Minute},
		{name: "16 minutes later", now: 16 * time.Minute, wantCode: CodeRequestExpired},
		{name: "16 minutes earlier", now: -16 * time.Minute, wantCode: CodeRequestExpired},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r, body := parseWire(t, vec.raw)
			_, err := vectorVerifier(vec, signedAt.Add(tt.now)).Verify(context.Background(), r, body)
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
