package e2e

import (
	"path/filepath"
	"strings"
	"testing"
)

// Web-identity federation with no external identity provider: the
// built-in issuer makes a key and mints tokens, the admin loads its JWKS
// into an IAM OIDC provider, and the aws CLI, with no credentials at all,
// trades a token for a role session. No VMs.
func TestFederationWebIdentity(t *testing.T) {
	d := startDaemon(t, "")
	e := newAWSEnv(t, d)
	cli := filepath.Join(binDir, "labcloud")
	dir := t.TempDir()
	const issuer, hostPath, client = "https://issuer.lab.test/realm", "issuer.lab.test/realm", "lab-app"

	labcloud := func(args ...string) string {
		t.Helper()
		out, errOut, code := run(t, nil, cli, append([]string{"--state-dir", d.stateDir}, args...)...)
		if code != 0 {
			t.Fatalf("labcloud %s: exit %d: %s", strings.Join(args, " "), code, errOut)
		}
		return strings.TrimSpace(out)
	}
	var me struct{ Account string }
	e.ok(&me, "labcloud", "sts", "get-caller-identity")

	// Issuer key and provider.
	labcloud("admin", "issuer-keygen", "--out", filepath.Join(dir, "issuer.pem"), "--jwks-out", filepath.Join(dir, "jwks.json"))
	labcloud("admin", "issuer-keygen", "--alg", "ES256", "--out", filepath.Join(dir, "stranger.pem"), "--jwks-out", filepath.Join(dir, "stranger.json"))
	var prov struct{ OpenIDConnectProviderArn string }
	e.ok(&prov, "labcloud", "iam", "create-open-id-connect-provider", "--url", issuer,
		"--client-id-list", client, "--thumbprint-list", "9e99a48a9960b14926bb7f3b02e22da2b0ab7280")
	arn := prov.OpenIDConnectProviderArn
	if arn != "arn:aws:iam::"+me.Account+":oidc-provider/"+hostPath {
		t.Fatalf("provider ARN %q", arn)
	}
	e.fails("EntityAlreadyExists", "labcloud", "iam", "create-open-id-connect-provider", "--url", issuer)
	e.fails("InvalidInput", "labcloud", "iam", "create-open-id-connect-provider", "--url", "http://issuer.lab.test")
	var got struct {
		Url          string
		ClientIDList []string
	}
	e.ok(&got, "labcloud", "iam", "get-open-id-connect-provider", "--open-id-connect-provider-arn", arn)
	if got.Url != hostPath || len(got.ClientIDList) != 1 || got.ClientIDList[0] != client {
		t.Fatalf("get-open-id-connect-provider = %+v", got)
	}
	if out := labcloud("admin", "set-oidc-keys", "--provider-arn", arn, "--jwks-file", filepath.Join(dir, "jwks.json")); !strings.Contains(out, "loaded 1 signing key") {
		t.Fatalf("set-oidc-keys said %q", out)
	}

	// A role for the provider's lab-app tokens of students, allowed to
	// list roles.
	trust := `{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Principal":{"Federated":"` + arn + `"},
	  "Action":"sts:AssumeRoleWithWebIdentity",
	  "Condition":{"StringEquals":{"` + hostPath + `:aud":"` + client + `"},"StringLike":{"` + hostPath + `:sub":"student-*"}}}]}`
	e.ok(nil, "labcloud", "iam", "create-role", "--role-name", "students", "--assume-role-policy-document", trust)
	e.ok(nil, "labcloud", "iam", "put-role-policy", "--role-name", "students", "--policy-name", "list-roles",
		"--policy-document", `{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Action":"iam:ListRoles","Resource":"*"}]}`)
	roleARN := "arn:aws:iam::" + me.Account + ":role/students"

	// token mints a token; later --issuer and --subject flags override the
	// defaults, and an --audience in args replaces lab-app (audiences add up).
	token := func(key string, args ...string) string {
		base := []string{"admin", "issue-token", "--issuer-key", filepath.Join(dir, key), "--issuer", issuer, "--subject", "student-7"}
		if !strings.Contains(strings.Join(args, " "), "--audience") {
			base = append(base, "--audience", client)
		}
		return labcloud(append(base, args...)...)
	}
	// The caller has no AWS credentials at all: no profile, no keys.
	anon := []string{"AWS_SHARED_CREDENTIALS_FILE=" + filepath.Join(dir, "none"), "AWS_CONFIG_FILE=" + filepath.Join(dir, "none")}
	assume := func(tok string) (string, string, int) {
		t.Helper()
		return run(t, anon, e.aws, "--endpoint-url", d.Endpoint, "--region", "lab-1", "--output", "json",
			"sts", "assume-role-with-web-identity", "--role-arn", roleARN, "--role-session-name", "student-7", "--web-identity-token", tok)
	}

	out, errOut, code := assume(token("issuer.pem"))
	if code != 0 {
		t.Fatalf("assume-role-with-web-identity: exit %d: %s\n%s", code, errOut, d.log())
	}
	var res struct {
		Credentials                 struct{ AccessKeyId, SecretAccessKey, SessionToken string }
		SubjectFromWebIdentityToken string
		AssumedRoleUser             struct{ Arn string }
		Provider, Audience          string
	}
	mustJSON(t, out, &res)
	if !strings.HasPrefix(res.Credentials.AccessKeyId, "ASIA") || res.SubjectFromWebIdentityToken != "student-7" ||
		res.AssumedRoleUser.Arn != "arn:aws:sts::"+me.Account+":assumed-role/students/student-7" || res.Audience != client || res.Provider != issuer {
		t.Fatalf("assume-role-with-web-identity = %+v", res)
	}
	e.withSession("student", res.Credentials)
	var who struct{ Arn, Account string }
	e.ok(&who, "student", "sts", "get-caller-identity")
	if who.Arn != res.AssumedRoleUser.Arn || who.Account != me.Account {
		t.Fatalf("get-caller-identity as the student = %+v", who)
	}
	e.ok(nil, "student", "iam", "list-roles")
	e.fails("AccessDenied", "student", "iam", "list-users")

	// Unsigned requests for anything else are still refused.
	_, errOut, code = run(t, anon, e.aws, "--endpoint-url", d.Endpoint, "--region", "lab-1", "--no-sign-request", "sts", "get-caller-identity")
	if code == 0 || !strings.Contains(errOut, "MissingAuthenticationToken") {
		t.Fatalf("unsigned get-caller-identity: exit %d: %s", code, errOut)
	}

	// A valid token whose payload is swapped for another's: its signature
	// no longer matches.
	good, other := strings.Split(token("issuer.pem"), "."), strings.Split(token("issuer.pem", "--subject", "student-8"), ".")
	tampered := good[0] + "." + other[1] + "." + good[2]

	failures := []struct {
		name, token, code, msg string
	}{
		{"wrong audience", token("issuer.pem", "--audience", "other-app"), "InvalidIdentityToken", "Incorrect token audience"},
		{"expired", token("issuer.pem", "--ttl", "-10m"), "ExpiredTokenException", "Token expired"},
		{"bad signature", tampered, "InvalidIdentityToken", "does not verify"},
		{"unknown key", token("stranger.pem"), "InvalidIdentityToken", "not in the JWKS"},
		{"untrusted issuer", token("issuer.pem", "--issuer", "https://elsewhere.lab.test"), "InvalidIdentityToken", "No OpenIDConnect provider found"},
		{"subject not trusted", token("issuer.pem", "--subject", "teacher-1"), "AccessDenied", "sts:AssumeRoleWithWebIdentity"},
	}
	for _, f := range failures {
		t.Run(f.name, func(t *testing.T) {
			out, errOut, code := assume(f.token)
			if code == 0 || !strings.Contains(errOut, f.code) || !strings.Contains(errOut, f.msg) {
				t.Fatalf("exit %d, stderr %q, want %s (%s)", code, errOut, f.code, f.msg)
			}
			if strings.Contains(out, "ASIA") {
				t.Fatalf("credentials printed on failure: %s", out)
			}
		})
	}

	// Deleting the provider ends federation through it.
	e.ok(nil, "labcloud", "iam", "delete-open-id-connect-provider", "--open-id-connect-provider-arn", arn)
	if _, errOut, code := assume(token("issuer.pem")); code == 0 || !strings.Contains(errOut, "InvalidIdentityToken") {
		t.Fatalf("after deleting the provider: exit %d: %s", code, errOut)
	}
}
