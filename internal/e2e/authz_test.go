package e2e

import (
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// awsEnv runs the aws CLI against a daemon with a credentials file that
// holds several profiles.
type awsEnv struct {
	t     *testing.T
	d     *daemon
	aws   string
	creds string // credentials file path
}

func newAWSEnv(t *testing.T, d *daemon) *awsEnv {
	e := &awsEnv{t: t, d: d, aws: lookTool(t, "aws"), creds: filepath.Join(t.TempDir(), "credentials")}
	admin, err := os.ReadFile(d.credsFile())
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(e.creds, admin, 0o600); err != nil {
		t.Fatal(err)
	}
	return e
}

// addProfile appends a profile with a long-term key.
func (e *awsEnv) addProfile(name, id, secret string) {
	f, err := os.OpenFile(e.creds, os.O_APPEND|os.O_WRONLY, 0o600)
	if err != nil {
		e.t.Fatal(err)
	}
	defer f.Close()
	fmt.Fprintf(f, "\n[%s]\naws_access_key_id = %s\naws_secret_access_key = %s\nregion = lab-1\nendpoint_url = %s\n", name, id, secret, e.d.Endpoint)
}

// run runs `aws --profile P args...` and returns stdout, stderr, exit code.
func (e *awsEnv) run(profile string, args ...string) (string, string, int) {
	e.t.Helper()
	env := []string{"AWS_SHARED_CREDENTIALS_FILE=" + e.creds, "AWS_CONFIG_FILE=/dev/null"}
	return run(e.t, env, e.aws, append([]string{"--profile", profile, "--output", "json"}, args...)...)
}

// ok runs and requires success, decoding JSON output into v (if not nil).
func (e *awsEnv) ok(v any, profile string, args ...string) {
	e.t.Helper()
	out, errOut, code := e.run(profile, args...)
	if code != 0 {
		e.t.Fatalf("aws %s as %s: exit %d: %s", strings.Join(args, " "), profile, code, errOut)
	}
	if v != nil {
		mustJSON(e.t, out, v)
	}
}

// fails runs and requires a failure whose stderr names code.
func (e *awsEnv) fails(code, profile string, args ...string) string {
	e.t.Helper()
	_, errOut, rc := e.run(profile, args...)
	if rc == 0 || !strings.Contains(errOut, code) {
		e.t.Fatalf("aws %s as %s: exit %d, stderr %q; want a %s error", strings.Join(args, " "), profile, rc, errOut, code)
	}
	return errOut
}

// withSession adds a profile for temporary credentials.
func (e *awsEnv) withSession(name string, c struct{ AccessKeyId, SecretAccessKey, SessionToken string }) {
	f, err := os.OpenFile(e.creds, os.O_APPEND|os.O_WRONLY, 0o600)
	if err != nil {
		e.t.Fatal(err)
	}
	defer f.Close()
	fmt.Fprintf(f, "\n[%s]\naws_access_key_id = %s\naws_secret_access_key = %s\naws_session_token = %s\nregion = lab-1\nendpoint_url = %s\n",
		name, c.AccessKeyId, c.SecretAccessKey, c.SessionToken, e.d.Endpoint)
}

func (e *awsEnv) createUserWithKey(admin, name string) string {
	e.t.Helper()
	var u struct{ User struct{ Arn string } }
	e.ok(&u, admin, "iam", "create-user", "--user-name", name)
	var k struct {
		AccessKey struct{ AccessKeyId, SecretAccessKey string }
	}
	e.ok(&k, admin, "iam", "create-access-key", "--user-name", name)
	e.addProfile(name, k.AccessKey.AccessKeyId, k.AccessKey.SecretAccessKey)
	return u.User.Arn
}

const denyZones = `{"Version":"2012-10-17","Statement":[{"Sid":"NoZones","Effect":"Deny","Action":"ec2:DescribeAvailabilityZones","Resource":"*"}]}`

// The course's IAM story on a real labcloudd through the aws CLI.
func TestIAMAuthorizesEveryCall(t *testing.T) {
	d := startDaemon(t, "", "--test-clock")
	e := newAWSEnv(t, d)
	aliceARN := e.createUserWithKey("labcloud", "alice")

	// No policy: implicit deny, with AWS's message and an encoded reason.
	msg := e.fails("UnauthorizedOperation", "alice", "ec2", "describe-availability-zones")
	if !strings.Contains(msg, "is not authorized to perform: ec2:DescribeAvailabilityZones because no identity-based policy allows") {
		t.Fatalf("denial message: %s", msg)
	}
	e.fails("AccessDenied", "alice", "iam", "list-users")
	// GetCallerIdentity is never denied.
	var who struct{ Arn string }
	e.ok(&who, "alice", "sts", "get-caller-identity")
	if who.Arn != aliceARN {
		t.Fatalf("alice is %s, want %s", who.Arn, aliceARN)
	}

	// A group with an AWS-managed policy allows it.
	e.ok(nil, "labcloud", "iam", "create-group", "--group-name", "readers")
	e.ok(nil, "labcloud", "iam", "add-user-to-group", "--group-name", "readers", "--user-name", "alice")
	e.ok(nil, "labcloud", "iam", "attach-group-policy", "--group-name", "readers", "--policy-arn", "arn:aws:iam::aws:policy/AmazonEC2ReadOnlyAccess")
	var zones struct{ AvailabilityZones []struct{ ZoneName string } }
	e.ok(&zones, "alice", "ec2", "describe-availability-zones")
	if len(zones.AvailabilityZones) != 3 {
		t.Fatalf("zones = %+v", zones)
	}
	e.fails("AccessDenied", "alice", "iam", "create-user", "--user-name", "mallory")

	// An explicit inline deny wins over the group's allow.
	e.ok(nil, "labcloud", "iam", "put-user-policy", "--user-name", "alice", "--policy-name", "deny-zones", "--policy-document", denyZones)
	msg = e.fails("UnauthorizedOperation", "alice", "ec2", "describe-availability-zones")
	if !strings.Contains(msg, "with an explicit deny in an identity-based policy") {
		t.Fatalf("explicit deny message: %s", msg)
	}
	e.ok(&zones, "alice", "ec2", "describe-regions") // other EC2 reads still allowed

	// The encoded message decodes (for someone allowed to decode).
	i := strings.Index(msg, "Encoded authorization failure message: ")
	if i < 0 {
		t.Fatalf("no encoded message in %s", msg)
	}
	encoded := strings.TrimSpace(msg[i+len("Encoded authorization failure message: "):])
	var dec struct{ DecodedMessage string }
	e.ok(&dec, "labcloud", "sts", "decode-authorization-message", "--encoded-message", encoded)
	var decoded struct {
		ExplicitDeny bool `json:"explicitDeny"`
		Context      struct {
			Action string `json:"action"`
		} `json:"context"`
	}
	mustJSON(t, dec.DecodedMessage, &decoded)
	if !decoded.ExplicitDeny || decoded.Context.Action != "ec2:DescribeAvailabilityZones" {
		t.Fatalf("decoded = %s", dec.DecodedMessage)
	}
	e.fails("UnauthorizedOperation", "alice", "ec2", "describe-availability-zones") // sanity: still denied
	e.fails("AccessDenied", "alice", "sts", "decode-authorization-message", "--encoded-message", encoded)

	// The simulator explains both decisions with the matching statement.
	var sim struct {
		EvaluationResults []struct {
			EvalActionName, EvalDecision string
			MatchedStatements            []struct{ SourcePolicyId, SourcePolicyType string }
		}
	}
	e.ok(&sim, "labcloud", "iam", "simulate-principal-policy", "--policy-source-arn", aliceARN,
		"--action-names", "ec2:DescribeAvailabilityZones", "ec2:DescribeRegions", "iam:CreateUser")
	got := map[string]string{}
	for _, r := range sim.EvaluationResults {
		got[r.EvalActionName] = r.EvalDecision
		if r.EvalActionName == "ec2:DescribeAvailabilityZones" && (len(r.MatchedStatements) == 0 || r.MatchedStatements[0].SourcePolicyId != "deny-zones" || r.MatchedStatements[0].SourcePolicyType != "user") {
			t.Errorf("deny matched %+v, want the inline user policy deny-zones", r.MatchedStatements)
		}
		if r.EvalActionName == "ec2:DescribeRegions" && (len(r.MatchedStatements) == 0 || r.MatchedStatements[0].SourcePolicyType != "aws-managed") {
			t.Errorf("allow matched %+v, want the AWS-managed policy", r.MatchedStatements)
		}
	}
	want := map[string]string{"ec2:DescribeAvailabilityZones": "explicitDeny", "ec2:DescribeRegions": "allowed", "iam:CreateUser": "implicitDeny"}
	for k, v := range want {
		if got[k] != v {
			t.Errorf("simulate %s = %q, want %q", k, got[k], v)
		}
	}

	// Even an explicit deny of everything leaves GetCallerIdentity.
	e.ok(nil, "labcloud", "iam", "put-user-policy", "--user-name", "alice", "--policy-name", "deny-all", "--policy-document",
		`{"Version":"2012-10-17","Statement":[{"Effect":"Deny","Action":"*","Resource":"*"}]}`)
	e.ok(&who, "alice", "sts", "get-caller-identity")
}

func TestAssumeRoleAndExpiry(t *testing.T) {
	d := startDaemon(t, "", "--test-clock")
	e := newAWSEnv(t, d)
	aliceARN := e.createUserWithKey("labcloud", "alice")
	var acct struct{ Account string }
	e.ok(&acct, "labcloud", "sts", "get-caller-identity")

	trust := fmt.Sprintf(`{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Principal":{"AWS":"%s"},"Action":"sts:AssumeRole"}]}`, aliceARN)
	var role struct{ Role struct{ Arn string } }
	e.ok(&role, "labcloud", "iam", "create-role", "--role-name", "zone-reader", "--assume-role-policy-document", trust)
	e.ok(nil, "labcloud", "iam", "attach-role-policy", "--role-name", "zone-reader", "--policy-arn", "arn:aws:iam::aws:policy/AmazonEC2ReadOnlyAccess")

	// The trust policy names alice herself: no identity policy needed.
	var ar struct {
		Credentials     struct{ AccessKeyId, SecretAccessKey, SessionToken, Expiration string }
		AssumedRoleUser struct{ Arn, AssumedRoleId string }
	}
	e.ok(&ar, "alice", "sts", "assume-role", "--role-arn", role.Role.Arn, "--role-session-name", "lab", "--duration-seconds", "900")
	if !strings.HasPrefix(ar.Credentials.AccessKeyId, "ASIA") || ar.Credentials.SessionToken == "" {
		t.Fatalf("credentials = %+v", ar.Credentials)
	}
	wantARN := "arn:aws:sts::" + acct.Account + ":assumed-role/zone-reader/lab"
	if ar.AssumedRoleUser.Arn != wantARN {
		t.Fatalf("assumed role ARN %s, want %s", ar.AssumedRoleUser.Arn, wantARN)
	}
	e.withSession("session", struct{ AccessKeyId, SecretAccessKey, SessionToken string }{ar.Credentials.AccessKeyId, ar.Credentials.SecretAccessKey, ar.Credentials.SessionToken})
	var who struct{ Arn, UserId string }
	e.ok(&who, "session", "sts", "get-caller-identity")
	if who.Arn != wantARN || !strings.HasSuffix(who.UserId, ":lab") {
		t.Fatalf("session identity = %+v", who)
	}
	e.ok(nil, "session", "ec2", "describe-availability-zones") // the role's policy applies
	e.fails("AccessDenied", "session", "iam", "list-users")    // and only it

	// A wrong session token is refused.
	bad := ar.Credentials
	e.withSession("badtoken", struct{ AccessKeyId, SecretAccessKey, SessionToken string }{bad.AccessKeyId, bad.SecretAccessKey, bad.SessionToken + "x"})
	e.fails("InvalidClientTokenId", "badtoken", "sts", "get-caller-identity")

	// 901 seconds later the credentials are expired.
	advance(t, d, "901s")
	e.fails("ExpiredToken", "session", "sts", "get-caller-identity")
	e.fails("RequestExpired", "session", "ec2", "describe-availability-zones")
	e.ok(nil, "alice", "sts", "get-caller-identity") // long-term keys are unaffected

	// GetSessionToken gives a user temporary credentials that act as the user.
	var st struct {
		Credentials struct{ AccessKeyId, SecretAccessKey, SessionToken string }
	}
	e.ok(&st, "alice", "sts", "get-session-token", "--duration-seconds", "900")
	e.withSession("alice-session", st.Credentials)
	e.ok(&who, "alice-session", "sts", "get-caller-identity")
	if who.Arn != aliceARN {
		t.Fatalf("GetSessionToken identity %s, want %s", who.Arn, aliceARN)
	}
	e.fails("AccessDenied", "alice-session", "sts", "get-session-token")

	// Root may not assume roles; too long a session is refused.
	e.fails("AccessDenied", "labcloud", "sts", "assume-role", "--role-arn", role.Role.Arn, "--role-session-name", "root")
	e.fails("ValidationError", "alice", "sts", "assume-role", "--role-arn", role.Role.Arn, "--role-session-name", "long", "--duration-seconds", "7200")

	// A user the trust policy does not name is refused.
	e.createUserWithKey("labcloud", "bob")
	e.ok(nil, "labcloud", "iam", "put-user-policy", "--user-name", "bob", "--policy-name", "assume", "--policy-document",
		`{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Action":"sts:AssumeRole","Resource":"*"}]}`)
	e.fails("AccessDenied", "bob", "sts", "assume-role", "--role-arn", role.Role.Arn, "--role-session-name", "bob")
}

// A role in account B trusting account A: A's user needs sts:AssumeRole in
// an identity policy as well.
func TestCrossAccountAssumeRole(t *testing.T) {
	d := startDaemon(t, "", "--test-clock")
	e := newAWSEnv(t, d)
	var a struct{ Account string }
	e.ok(&a, "labcloud", "sts", "get-caller-identity")
	e.createUserWithKey("labcloud", "alice")

	out, errOut, code := run(t, nil, filepath.Join(binDir, "labcloud"), "--state-dir", d.stateDir, "admin", "create-account", "team-b")
	if code != 0 {
		t.Fatalf("labcloud admin create-account: %d %s", code, errOut)
	}
	f, err := os.OpenFile(e.creds, os.O_APPEND|os.O_WRONLY, 0o600)
	if err != nil {
		t.Fatal(err)
	}
	fmt.Fprint(f, "\n"+out)
	f.Close()
	var b struct{ Account, Arn string }
	e.ok(&b, "team-b", "sts", "get-caller-identity")
	if b.Account == a.Account || len(b.Account) != 12 || b.Arn != "arn:aws:iam::"+b.Account+":root" {
		t.Fatalf("new account identity %+v (admin account %s)", b, a.Account)
	}
	// Only the admin account's root may create accounts.
	_, errOut, code = run(t, nil, filepath.Join(binDir, "labcloud"), "--state-dir", t.TempDir(), "--credentials-file", e.creds, "--profile", "team-b", "admin", "create-account", "team-c")
	if code == 0 || !strings.Contains(errOut, "AccessDenied") {
		t.Fatalf("team-b created an account: %d %s", code, errOut)
	}

	trust := fmt.Sprintf(`{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Principal":{"AWS":"arn:aws:iam::%s:root"},"Action":"sts:AssumeRole"}]}`, a.Account)
	var role struct{ Role struct{ Arn string } }
	e.ok(&role, "team-b", "iam", "create-role", "--role-name", "partner", "--assume-role-policy-document", trust)

	// Trust alone is not enough across accounts.
	e.fails("AccessDenied", "alice", "sts", "assume-role", "--role-arn", role.Role.Arn, "--role-session-name", "xa")
	e.ok(nil, "labcloud", "iam", "put-user-policy", "--user-name", "alice", "--policy-name", "assume-partner", "--policy-document",
		fmt.Sprintf(`{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Action":"sts:AssumeRole","Resource":"%s"}]}`, role.Role.Arn))
	var ar struct{ AssumedRoleUser struct{ Arn string } }
	e.ok(&ar, "alice", "sts", "assume-role", "--role-arn", role.Role.Arn, "--role-session-name", "xa")
	if ar.AssumedRoleUser.Arn != "arn:aws:sts::"+b.Account+":assumed-role/partner/xa" {
		t.Fatalf("cross-account session %s, want one in account %s", ar.AssumedRoleUser.Arn, b.Account)
	}
	// Accounts stay isolated: B does not see A's users.
	var users struct{ Users []struct{ UserName string } }
	e.ok(&users, "team-b", "iam", "list-users")
	if len(users.Users) != 0 {
		t.Fatalf("account B lists users %+v", users.Users)
	}
}

// advance moves the daemon's test clock.
func advance(t *testing.T, d *daemon, by string) {
	t.Helper()
	resp, err := http.Post(d.Endpoint+"/_labcloud/test/clock?advance="+by, "text/plain", nil)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 200 {
		t.Fatalf("advancing the clock: HTTP %d", resp.StatusCode)
	}
}
