// Command gov2vectors prints SigV4 test vectors signed by aws-sdk-go-v2's
// real service clients, for api/sigv4/clients_test.go. The HTTP client
// captures the request instead of sending it, and the signers are wrapped
// only to pin the signing time, so the output is stable apart from the
// random amz-sdk-invocation-id.
//
//	cd /work/main && GOPROXY=off go run ./api/sigv4/testdata/gov2vectors
//
// It lives under testdata so it is never part of the sigv4 package build.
package main

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httputil"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	v4 "github.com/aws/aws-sdk-go-v2/aws/signer/v4"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/service/ec2"
	"github.com/aws/aws-sdk-go-v2/service/sts"
)

var signingTime = time.Date(2026, 1, 15, 10, 0, 0, 0, time.UTC)

const (
	akid, secret       = "AKIDLABCLOUDTEST0001", "labcloudSecretKeyForBotocoreVectors0001"
	tempID, tempSecret = "ASIALABCLOUDTEST0002", "labcloudTemporarySecretForVectors00002"
	sessionToken       = "FwoGZXIvYXdzEXAMPLEsessiontoken//+/labcloud=="
	endpoint           = "http://127.0.0.1:8787"
	errCaptured        = "captured"
)

// capture records the request as it would go on the wire and fails it.
type capture struct{ raw string }

func (c *capture) Do(r *http.Request) (*http.Response, error) {
	if r.Body != nil {
		body, _ := io.ReadAll(r.Body)
		r.Body = io.NopCloser(bytes.NewReader(body))
	}
	b, err := httputil.DumpRequestOut(r, true)
	if err != nil {
		return nil, err
	}
	c.raw = string(b)
	return nil, errors.New(errCaptured)
}

type fixedSigner struct{ *v4.Signer }

func (s fixedSigner) SignHTTP(ctx context.Context, c aws.Credentials, r *http.Request, payloadHash, service, region string, _ time.Time, opts ...func(*v4.SignerOptions)) error {
	return s.Signer.SignHTTP(ctx, c, r, payloadHash, service, region, signingTime, opts...)
}

func (s fixedSigner) PresignHTTP(ctx context.Context, c aws.Credentials, r *http.Request, payloadHash, service, region string, _ time.Time, opts ...func(*v4.SignerOptions)) (string, http.Header, error) {
	return s.Signer.PresignHTTP(ctx, c, r, payloadHash, service, region, signingTime, opts...)
}

func config(c *capture, id, sec, token string) aws.Config {
	return aws.Config{
		Region:       "lab-1",
		Credentials:  credentials.NewStaticCredentialsProvider(id, sec, token),
		HTTPClient:   c,
		BaseEndpoint: aws.String(endpoint),
		Retryer:      func() aws.Retryer { return aws.NopRetryer{} },
	}
}

func emit(name, raw, id, sec, token string) {
	fmt.Printf("\t{\n\t\tname: %q,\n\t\traw:  %q,\n\t\tkey:  Key{AccessKeyID: %q, SecretAccessKey: %q, SessionToken: %q},\n\t\tnow:  %q,\n\t},\n",
		name, raw, id, sec, token, signingTime.Format("20060102T150405Z"))
}

func main() {
	ctx := context.Background()
	signer := fixedSigner{v4.NewSigner()}

	c := &capture{}
	ec2c := ec2.NewFromConfig(config(c, akid, secret, ""), func(o *ec2.Options) { o.HTTPSignerV4 = signer })
	_, _ = ec2c.DescribeRegions(ctx, &ec2.DescribeRegionsInput{})
	emit("aws-sdk-go-v2 ec2 DescribeRegions", c.raw, akid, secret, "")

	c = &capture{}
	stsc := sts.NewFromConfig(config(c, tempID, tempSecret, sessionToken), func(o *sts.Options) { o.HTTPSignerV4 = signer })
	_, _ = stsc.GetCallerIdentity(ctx, &sts.GetCallerIdentityInput{})
	emit("aws-sdk-go-v2 sts GetCallerIdentity with session token", c.raw, tempID, tempSecret, sessionToken)

	// The STS presign client is what EKS-style tokens use; note that it
	// sends no X-Amz-Expires.
	pc := sts.NewPresignClient(sts.NewFromConfig(config(&capture{}, akid, secret, "")), func(o *sts.PresignOptions) { o.Presigner = signer })
	p, err := pc.PresignGetCallerIdentity(ctx, &sts.GetCallerIdentityInput{})
	if err != nil {
		panic(err)
	}
	r, err := http.NewRequest(p.Method, p.URL, nil)
	if err != nil {
		panic(err)
	}
	for k, v := range p.SignedHeader {
		r.Header[k] = v
	}
	b, err := httputil.DumpRequestOut(r, false)
	if err != nil {
		panic(err)
	}
	emit("aws-sdk-go-v2 sts presigned GetCallerIdentity", string(b), akid, secret, "")
}
