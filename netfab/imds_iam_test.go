package netfab

import (
	"context"
	"encoding/json"
	"strings"
	"testing"
	"time"
)

// fakeCreds is a MetadataSource with a CredentialSource: credentials per
// instance id.
type fakeCreds struct {
	*fakeMetadata
	creds map[string]InstanceCredentials
	calls int
}

func (f *fakeCreds) InstanceCredentials(_ context.Context, md Metadata) (InstanceCredentials, bool) {
	f.calls++
	c, ok := f.creds[md.InstanceID]
	return c, ok
}

func TestIMDSIAM(t *testing.T) {
	const ip, other, bare = "172.31.0.4", "172.31.0.6", "172.31.0.7"
	issued := time.Date(2026, 11, 27, 10, 0, 0, 0, time.UTC)
	src := &fakeCreds{fakeMetadata: &fakeMetadata{}, creds: map[string]InstanceCredentials{
		"i-0123456789abcdef0": {Code: "Success", RoleName: "app-role", AccessKeyID: "ASIAEXAMPLEEXAMPLE01", SecretAccessKey: "secret",
			Token: "IQoJtoken", LastUpdated: issued, Expiration: issued.Add(6 * time.Hour)},
		"i-0000000000000000b": {Code: "AssumeRoleUnauthorizedAccess", Message: "EC2 cannot assume the role untrusting.", RoleName: "untrusting", LastUpdated: issued},
	}}
	md := testMetadata(ip, "02:11:22:33:44:55")
	md.IAMInstanceProfileARN = "arn:aws:iam::123456789012:instance-profile/lab/app-profile"
	md.IAMInstanceProfileID = "AIPAEXAMPLEEXAMPLE012"
	src.set("vpc-1", ip, md)
	mdOther := testMetadata(other, "02:11:22:33:44:66")
	mdOther.InstanceID = "i-0000000000000000b"
	mdOther.IAMInstanceProfileARN = "arn:aws:iam::123456789012:instance-profile/untrusting"
	mdOther.IAMInstanceProfileID = "AIPAEXAMPLEEXAMPLE999"
	src.set("vpc-1", other, mdOther)
	mdBare := testMetadata(bare, "02:11:22:33:44:77")
	mdBare.InstanceID = "i-0000000000000000c"
	src.set("vpc-1", bare, mdBare)
	now := issued.Add(time.Minute)
	h := newTestIMDS(src, &now)

	get := func(from, path string) (int, string) { return do(t, h, "GET", path, from, nil) }

	if code, body := get(ip, "/latest/meta-data/"); code != 200 || !strings.Contains(body, "\niam/\n") {
		t.Errorf("listing with a profile lacks iam/: %d %q", code, body)
	}
	if code, body := get(ip, "/latest/meta-data/iam/"); code != 200 || body != "info\nsecurity-credentials/" {
		t.Errorf("iam/: %d %q", code, body)
	}
	code, body := get(ip, "/latest/meta-data/iam/info")
	var info map[string]string
	if err := json.Unmarshal([]byte(body), &info); code != 200 || err != nil {
		t.Fatalf("iam/info: %d %q %v", code, body, err)
	}
	want := map[string]string{"Code": "Success", "LastUpdated": "2026-11-27T10:00:00Z",
		"InstanceProfileArn": md.IAMInstanceProfileARN, "InstanceProfileId": md.IAMInstanceProfileID}
	if len(info) != len(want) {
		t.Errorf("iam/info keys %v, want %v", info, want)
	}
	for k, v := range want {
		if info[k] != v {
			t.Errorf("iam/info %s = %q, want %q", k, info[k], v)
		}
	}
	for _, p := range []string{"/latest/meta-data/iam/security-credentials/", "/latest/meta-data/iam/security-credentials"} {
		if code, body := get(ip, p); code != 200 || body != "app-role" {
			t.Errorf("%s: %d %q, want the role name", p, code, body)
		}
	}
	code, body = get(ip, "/latest/meta-data/iam/security-credentials/app-role")
	var creds map[string]string
	if err := json.Unmarshal([]byte(body), &creds); code != 200 || err != nil {
		t.Fatalf("credentials: %d %q %v", code, body, err)
	}
	want = map[string]string{"Code": "Success", "LastUpdated": "2026-11-27T10:00:00Z", "Type": "AWS-HMAC",
		"AccessKeyId": "ASIAEXAMPLEEXAMPLE01", "SecretAccessKey": "secret", "Token": "IQoJtoken", "Expiration": "2026-11-27T16:00:00Z"}
	if len(creds) != len(want) {
		t.Errorf("credential keys %v, want %v", creds, want)
	}
	for k, v := range want {
		if creds[k] != v {
			t.Errorf("credentials %s = %q, want %q", k, creds[k], v)
		}
	}
	for _, p := range []string{"/latest/meta-data/iam/security-credentials/other-role", "/latest/meta-data/iam/security-credentials/App-Role",
		"/latest/meta-data/iam/nope", "/latest/meta-data/iam/info/"} {
		if code, _ := get(ip, p); code != 404 {
			t.Errorf("%s: %d, want 404", p, code)
		}
	}
	// Dated versions serve the same (botocore asks /latest, others not).
	if code, body := get(ip, "/2021-03-23/meta-data/iam/security-credentials/"); code != 200 || body != "app-role" {
		t.Errorf("dated: %d %q", code, body)
	}

	// The credentials follow the caller's address: another instance gets
	// its own profile's answer, never the first one's keys.
	code, body = get(other, "/latest/meta-data/iam/security-credentials/app-role")
	if code != 404 {
		t.Errorf("another instance read app-role: %d %q", code, body)
	}
	code, body = get(other, "/latest/meta-data/iam/security-credentials/untrusting")
	if code != 200 || !strings.Contains(body, `"Code": "AssumeRoleUnauthorizedAccess"`) || strings.Contains(body, "AccessKeyId") {
		t.Errorf("untrusting role: %d %q", code, body)
	}
	if _, body := get(other, "/latest/meta-data/iam/info"); !strings.Contains(body, "AssumeRoleUnauthorizedAccess") {
		t.Errorf("iam/info of an untrusting role: %q", body)
	}

	// Without a profile there is no iam/ at all.
	if _, body := get(bare, "/latest/meta-data/"); strings.Contains(body, "iam") {
		t.Errorf("listing without a profile shows iam: %q", body)
	}
	calls := src.calls
	for _, p := range []string{"/latest/meta-data/iam/", "/latest/meta-data/iam/info", "/latest/meta-data/iam/security-credentials/"} {
		if code, _ := get(bare, p); code != 404 {
			t.Errorf("no profile, %s: %d, want 404", p, code)
		}
	}
	if src.calls != calls {
		t.Errorf("credentials were asked for an instance without a profile")
	}

	// A profile whose role is gone: info still names it, no credentials.
	delete(src.creds, md.InstanceID)
	if code, _ := get(ip, "/latest/meta-data/iam/info"); code != 200 {
		t.Errorf("info without role: %d", code)
	}
	if code, _ := get(ip, "/latest/meta-data/iam/security-credentials/"); code != 404 {
		t.Errorf("security-credentials/ without role: %d, want 404", code)
	}

	// IMDSv2 rules hold under iam/ too.
	md.HTTPTokens = "required"
	src.set("vpc-1", ip, md)
	if code, _ := get(ip, "/latest/meta-data/iam/info"); code != 401 {
		t.Errorf("required tokens, no token: %d, want 401", code)
	}
}
