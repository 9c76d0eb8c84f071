package e2e

import (
	"encoding/xml"
	"io"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/labcloud/labcloud/api/sigv4"
)

// awsErr is an error body of either protocol family.
type awsErr struct {
	Code, Message string
}

func parseErr(t *testing.T, body []byte) awsErr {
	t.Helper()
	var ec2 struct {
		Errors    struct{ Error awsErr }
		RequestID string
	}
	if err := xml.Unmarshal(body, &ec2); err == nil && ec2.Errors.Error.Code != "" {
		if ec2.RequestID == "" {
			t.Errorf("EC2 error without RequestID: %s", body)
		}
		return ec2.Errors.Error
	}
	var q struct {
		Error     struct{ Type, Code, Message string }
		RequestID string `xml:"RequestId"`
	}
	if err := xml.Unmarshal(body, &q); err == nil && q.Error.Code != "" {
		if q.RequestID == "" || q.Error.Type == "" {
			t.Errorf("query error without RequestId or Type: %s", body)
		}
		return awsErr{q.Error.Code, q.Error.Message}
	}
	t.Fatalf("not an AWS error body: %s", body)
	return awsErr{}
}

type rawReq struct {
	service, body, secret, keyID, region, contentType string
	at                                                time.Time
	unsigned                                          bool
}

func (d *daemon) send(t *testing.T, r rawReq) (int, []byte) {
	t.Helper()
	req, err := http.NewRequest("POST", d.Endpoint+"/", strings.NewReader(r.body))
	if err != nil {
		t.Fatal(err)
	}
	ct := r.contentType
	if ct == "" {
		ct = "application/x-www-form-urlencoded; charset=utf-8"
	}
	req.Header.Set("Content-Type", ct)
	if !r.unsigned {
		id, secret := d.creds()
		if r.keyID != "" {
			id = r.keyID
		}
		if r.secret != "" {
			secret = r.secret
		}
		region := r.region
		if region == "" {
			region = "lab-1"
		}
		at := r.at
		if at.IsZero() {
			at = time.Now()
		}
		if err := sigv4.Sign(req, []byte(r.body), sigv4.Key{AccessKeyID: id, SecretAccessKey: secret}, region, r.service, at); err != nil {
			t.Fatal(err)
		}
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, b
}

const describeRegions = "Action=DescribeRegions&Version=2016-11-15"

func TestAuthAndInputErrors(t *testing.T) {
	d := startDaemon(t, "")
	tests := []struct {
		name       string
		req        rawReq
		wantStatus int
		wantCode   string
		wantMsg    string
	}{
		{"wrong secret ec2", rawReq{service: "ec2", body: describeRegions, secret: "wrongwrongwrongwrongwrongwrongwrongwrong"}, 403, "SignatureDoesNotMatch", "signature"},
		{"wrong secret sts", rawReq{service: "sts", body: "Action=GetCallerIdentity&Version=2011-06-15", secret: "nope"}, 403, "SignatureDoesNotMatch", "signature"},
		{"unknown key ec2", rawReq{service: "ec2", body: describeRegions, keyID: "AKIAUNKNOWNUNKNOWN00"}, 401, "AuthFailure", ""},
		{"unknown key sts", rawReq{service: "sts", body: "Action=GetCallerIdentity&Version=2011-06-15", keyID: "AKIAUNKNOWNUNKNOWN00"}, 403, "InvalidClientTokenId", ""},
		{"unknown key iam", rawReq{service: "iam", region: "us-east-1", body: "Action=ListUsers&Version=2010-05-08", keyID: "AKIAUNKNOWNUNKNOWN00"}, 403, "InvalidClientTokenId", ""},
		{"no auth ec2", rawReq{service: "ec2", body: describeRegions, unsigned: true}, 403, "MissingAuthenticationToken", ""},
		{"no auth sts", rawReq{service: "sts", body: "Action=GetCallerIdentity&Version=2011-06-15", unsigned: true}, 403, "MissingAuthenticationToken", ""},
		{"20 minutes old", rawReq{service: "ec2", body: describeRegions, at: time.Now().Add(-20 * time.Minute)}, 400, "RequestExpired", ""},
		{"20 minutes ahead", rawReq{service: "ec2", body: describeRegions, at: time.Now().Add(20 * time.Minute)}, 400, "RequestExpired", ""},
		{"unknown action", rawReq{service: "ec2", body: "Action=LaunchRocket&Version=2016-11-15"}, 400, "InvalidAction", "LaunchRocket"},
		{"unknown action sts", rawReq{service: "sts", body: "Action=LaunchRocket&Version=2011-06-15"}, 400, "InvalidAction", "LaunchRocket"},
		{"missing action", rawReq{service: "ec2", body: "Version=2016-11-15"}, 400, "MissingAction", "Action"},
		{"garbage body", rawReq{service: "ec2", body: "Action=%zz&&&=%%%"}, 400, "MalformedQueryString", "form"},
		{"binary body", rawReq{service: "ec2", body: "\x00\x01\x02\xff", contentType: "application/octet-stream"}, 400, "InvalidParameterValue", "Content-Type"},
		{"unknown parameter", rawReq{service: "ec2", body: describeRegions + "&Colour=blue"}, 400, "UnknownParameter", "Colour"},
		{"bad filter", rawReq{service: "ec2", body: describeRegions + "&Filter.1.Name=colour&Filter.1.Value.1=x"}, 400, "InvalidParameterValue", "colour"},
		{"bad attribute", rawReq{service: "ec2", body: "Action=DescribeAccountAttributes&Version=2016-11-15&AttributeName.1=max-dragons"}, 400, "InvalidParameterValue", "max-dragons"},
		{"session token too short", rawReq{service: "sts", body: "Action=GetSessionToken&Version=2011-06-15&DurationSeconds=60"}, 400, "ValidationError", "between 900 and 3600"},
		{"dry run", rawReq{service: "ec2", body: describeRegions + "&DryRun=true"}, 412, "DryRunOperation", "DryRun"},
		{"wrong region", rawReq{service: "ec2", body: describeRegions, region: "us-east-1"}, 400, "SignatureDoesNotMatch", "lab-1"},
		{"unknown service", rawReq{service: "s3", body: describeRegions}, 400, "InvalidClientTokenId", "s3"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			status, body := d.send(t, tt.req)
			e := parseErr(t, body)
			if status != tt.wantStatus || e.Code != tt.wantCode {
				t.Fatalf("got %d %s (%s), want %d %s", status, e.Code, e.Message, tt.wantStatus, tt.wantCode)
			}
			if e.Message == "" || !strings.Contains(e.Message, tt.wantMsg) {
				t.Fatalf("message %q should mention %q", e.Message, tt.wantMsg)
			}
			// The daemon keeps serving after every bad request.
			status, body = d.send(t, rawReq{service: "ec2", body: describeRegions})
			if status != 200 || !strings.Contains(string(body), "<regionName>lab-1</regionName>") {
				t.Fatalf("follow-up request failed: %d %s", status, body)
			}
		})
	}
}

// Presigned GET requests (query-string auth) work as the SDKs make them.
func TestPresignedGet(t *testing.T) {
	d := startDaemon(t, "")
	id, secret := d.creds()
	q := url.Values{"Action": {"GetCallerIdentity"}, "Version": {"2011-06-15"}}
	req, _ := http.NewRequest("GET", d.Endpoint+"/?"+q.Encode(), nil)
	u, err := sigv4.Presign(req, sigv4.Key{AccessKeyID: id, SecretAccessKey: secret}, "lab-1", "sts", time.Now(), 5*time.Minute)
	if err != nil {
		t.Fatal(err)
	}
	resp, err := http.Get(u)
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 200 || !strings.Contains(string(b), ":root</Arn>") {
		t.Fatalf("presigned GetCallerIdentity: %d %s", resp.StatusCode, b)
	}
	resp, err = http.Get(strings.Replace(u, "X-Amz-Signature=", "X-Amz-Signature=0", 1))
	if err != nil {
		t.Fatal(err)
	}
	b, _ = io.ReadAll(resp.Body)
	resp.Body.Close()
	if e := parseErr(t, b); e.Code != "SignatureDoesNotMatch" && e.Code != "IncompleteSignature" {
		t.Fatalf("tampered presigned URL: %d %s", resp.StatusCode, b)
	}
}
