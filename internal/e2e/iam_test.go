package e2e

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"

	"github.com/labcloud/labcloud/iamd/policy"
)

// iamCLI runs the real aws CLI against a daemon, with the daemon's admin
// credentials plus profiles added by the test.
type iamCLI struct {
	t     *testing.T
	d     *daemon
	aws   string
	creds string
}

func newIAMCLI(t *testing.T, d *daemon) *iamCLI {
	c := &iamCLI{t: t, d: d, aws: lookTool(t, "aws"), creds: filepath.Join(t.TempDir(), "credentials")}
	admin, err := os.ReadFile(d.credsFile())
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(c.creds, admin, 0o600); err != nil {
		t.Fatal(err)
	}
	return c
}

// profile adds a profile for an access key.
func (c *iamCLI) profile(name, id, secret string) {
	f, err := os.OpenFile(c.creds, os.O_APPEND|os.O_WRONLY, 0o600)
	if err != nil {
		c.t.Fatal(err)
	}
	defer f.Close()
	fmt.Fprintf(f, "\n[%s]\naws_access_key_id = %s\naws_secret_access_key = %s\nregion = lab-1\nendpoint_url = %s\n", name, id, secret, c.d.Endpoint)
}

func (c *iamCLI) exec(profile string, args ...string) (string, string, int) {
	c.t.Helper()
	env := []string{"AWS_SHARED_CREDENTIALS_FILE=" + c.creds, "AWS_CONFIG_FILE=/dev/null"}
	return run(c.t, env, c.aws, append([]string{"--profile", profile, "--output", "json"}, args...)...)
}

// ok runs `aws <args>` as the admin (root) profile, requires success and
// decodes the JSON output into v unless v is nil.
func (c *iamCLI) ok(v any, args ...string) { c.t.Helper(); c.okAs("labcloud", v, args...) }

func (c *iamCLI) okAs(profile string, v any, args ...string) {
	c.t.Helper()
	out, errOut, code := c.exec(profile, args...)
	if code != 0 {
		c.t.Fatalf("aws %s: exit %d: %s", strings.Join(args, " "), code, errOut)
	}
	if v != nil {
		mustJSON(c.t, out, v)
	}
}

// fails runs `aws <args>` as the admin profile and requires a failure
// whose stderr has every one of want; it returns stderr.
func (c *iamCLI) fails(args []string, want ...string) string {
	c.t.Helper()
	return c.failsAs("labcloud", args, want...)
}

func (c *iamCLI) failsAs(profile string, args []string, want ...string) string {
	c.t.Helper()
	_, errOut, code := c.exec(profile, args...)
	if code == 0 {
		c.t.Fatalf("aws %s succeeded; want failure with %q", strings.Join(args, " "), want)
	}
	for _, w := range want {
		if !strings.Contains(errOut, w) {
			c.t.Fatalf("aws %s: stderr %q does not contain %q", strings.Join(args, " "), errOut, w)
		}
	}
	return errOut
}

// sameJSON reports whether two JSON texts (or decoded values) are equal as
// values.
func sameJSON(t *testing.T, got any, want string) bool {
	t.Helper()
	var w any
	if err := json.Unmarshal([]byte(want), &w); err != nil {
		t.Fatal(err)
	}
	return reflect.DeepEqual(got, w)
}

const (
	e2eInline = `{"Version": "2012-10-17", "Statement": [{"Sid": "Describe", "Effect": "Allow", "Action": ["ec2:Describe*"], "Resource": "*", "Condition": {"StringLike": {"aws:PrincipalTag/team": "red+blue *"}}}]}`
	e2eTrust  = `{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Principal":{"Service":"ec2.amazonaws.com"},"Action":"sts:AssumeRole"}]}`
	e2eV1     = `{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Action":"ec2:DescribeInstances","Resource":"*"}]}`
)

// The IAM API through the unmodified aws CLI: users, keys, groups,
// AWS-managed and customer-managed policies with versions, inline
// policies, roles and instance profiles, the AWS error codes for conflicts
// and limits, and a created user's key signing requests.
func TestIAMWithAWSCLI(t *testing.T) {
	d := startDaemon(t, "")
	c := newIAMCLI(t, d)

	var who struct{ Account, Arn string }
	c.ok(&who, "sts", "get-caller-identity")
	acct := who.Account

	// A user, its key and the key authenticating.
	var cu struct {
		User struct{ UserName, UserId, Arn, Path string }
	}
	c.ok(&cu, "iam", "create-user", "--user-name", "alice", "--tags", "Key=team,Value=red")
	if cu.User.Arn != "arn:aws:iam::"+acct+":user/alice" || !strings.HasPrefix(cu.User.UserId, "AIDA") || cu.User.Path != "/" {
		t.Fatalf("create-user: %+v", cu.User)
	}
	c.fails([]string{"iam", "create-user", "--user-name", "ALICE"}, "EntityAlreadyExists", "User with name alice already exists.")
	c.fails([]string{"iam", "create-user", "--user-name", "x y"}, "ValidationError",
		`Value 'x y' at 'userName' failed to satisfy constraint: Member must satisfy regular expression pattern: [\w+=,.@-]+`)
	c.fails([]string{"iam", "get-user", "--user-name", "nobody"}, "NoSuchEntity", "The user with name nobody cannot be found.")

	var ck struct {
		AccessKey struct{ UserName, AccessKeyId, SecretAccessKey, Status string }
	}
	c.ok(&ck, "iam", "create-access-key", "--user-name", "alice")
	if ck.AccessKey.UserName != "alice" || !strings.HasPrefix(ck.AccessKey.AccessKeyId, "AKIA") || ck.AccessKey.Status != "Active" {
		t.Fatalf("create-access-key: %+v", ck.AccessKey)
	}
	c.profile("alice", ck.AccessKey.AccessKeyId, ck.AccessKey.SecretAccessKey)
	var aliceWho struct{ Account, Arn, UserId string }
	c.okAs("alice", &aliceWho, "sts", "get-caller-identity")
	if aliceWho.Arn != "arn:aws:iam::"+acct+":user/alice" || aliceWho.Account != acct {
		t.Fatalf("alice's key authenticates as %+v", aliceWho)
	}

	// A group with an AWS-managed policy; alice joins it.
	var cg struct {
		Group struct{ GroupName, GroupId, Arn string }
	}
	c.ok(&cg, "iam", "create-group", "--group-name", "devs")
	if cg.Group.Arn != "arn:aws:iam::"+acct+":group/devs" || !strings.HasPrefix(cg.Group.GroupId, "AGPA") {
		t.Fatalf("create-group: %+v", cg.Group)
	}
	c.ok(nil, "iam", "add-user-to-group", "--group-name", "devs", "--user-name", "alice")
	c.ok(nil, "iam", "attach-group-policy", "--group-name", "devs", "--policy-arn", "arn:aws:iam::aws:policy/AdministratorAccess")
	c.ok(nil, "iam", "attach-user-policy", "--user-name", "alice", "--policy-arn", "arn:aws:iam::aws:policy/ReadOnlyAccess")
	c.fails([]string{"iam", "attach-user-policy", "--user-name", "alice", "--policy-arn", "arn:aws:iam::aws:policy/NoSuchPolicy"},
		"NoSuchEntity", "arn:aws:iam::aws:policy/NoSuchPolicy does not exist or is not attachable")

	// An inline policy comes back as the same document (the CLI decodes
	// the URL-encoded document IAM sends into JSON).
	c.ok(nil, "iam", "put-user-policy", "--user-name", "alice", "--policy-name", "describe", "--policy-document", e2eInline)
	var gp struct {
		UserName, PolicyName string
		PolicyDocument       any
	}
	c.ok(&gp, "iam", "get-user-policy", "--user-name", "alice", "--policy-name", "describe")
	if gp.UserName != "alice" || gp.PolicyName != "describe" || !sameJSON(t, gp.PolicyDocument, e2eInline) {
		t.Fatalf("get-user-policy: %+v", gp)
	}
	// A malformed document is refused with the policy language's message.
	bad := `{"Version":"2012-10-17","Statement":[{"Effect":"Permit","Action":"ec2:*","Resource":"*"}]}`
	_, perr := policy.Parse(bad, policy.KindIdentity)
	var me *policy.MalformedError
	if !errors.As(perr, &me) {
		t.Fatalf("policy.Parse accepted %s: %v", bad, perr)
	}
	c.fails([]string{"iam", "put-user-policy", "--user-name", "alice", "--policy-name", "bad", "--policy-document", bad},
		"MalformedPolicyDocument", me.Message)

	// Lists and gets.
	c.ok(nil, "iam", "create-user", "--user-name", "bob", "--path", "/ops/")
	c.ok(nil, "iam", "create-user", "--user-name", "Carol")
	var lu struct {
		Users []struct{ UserName, Arn string }
	}
	c.ok(&lu, "iam", "list-users", "--page-size", "1") // the CLI follows the markers
	var names []string
	for _, u := range lu.Users {
		names = append(names, u.UserName)
	}
	if strings.Join(names, ",") != "alice,bob,Carol" {
		t.Fatalf("list-users: %v", names)
	}
	lu.Users = nil
	c.ok(&lu, "iam", "list-users", "--path-prefix", "/ops/")
	if len(lu.Users) != 1 || lu.Users[0].Arn != "arn:aws:iam::"+acct+":user/ops/bob" {
		t.Fatalf("list-users /ops/: %+v", lu.Users)
	}
	var gu struct {
		User struct {
			UserName string
			Tags     []struct{ Key, Value string }
		}
	}
	c.ok(&gu, "iam", "get-user", "--user-name", "alice")
	if len(gu.User.Tags) != 1 || gu.User.Tags[0].Value != "red" {
		t.Fatalf("get-user: %+v", gu.User)
	}
	var gfu struct{ Groups []struct{ GroupName string } }
	c.ok(&gfu, "iam", "list-groups-for-user", "--user-name", "alice")
	if len(gfu.Groups) != 1 || gfu.Groups[0].GroupName != "devs" {
		t.Fatalf("list-groups-for-user: %+v", gfu)
	}
	var gg struct {
		Group struct{ GroupName string }
		Users []struct{ UserName string }
	}
	c.ok(&gg, "iam", "get-group", "--group-name", "devs")
	if len(gg.Users) != 1 || gg.Users[0].UserName != "alice" {
		t.Fatalf("get-group: %+v", gg)
	}
	var lap struct {
		AttachedPolicies []struct{ PolicyName, PolicyArn string }
	}
	c.ok(&lap, "iam", "list-attached-group-policies", "--group-name", "devs")
	if len(lap.AttachedPolicies) != 1 || lap.AttachedPolicies[0].PolicyName != "AdministratorAccess" {
		t.Fatalf("list-attached-group-policies: %+v", lap)
	}
	var lup struct{ PolicyNames []string }
	c.ok(&lup, "iam", "list-user-policies", "--user-name", "alice")
	if strings.Join(lup.PolicyNames, ",") != "describe" {
		t.Fatalf("list-user-policies: %+v", lup)
	}
	var lak struct {
		AccessKeyMetadata []struct{ AccessKeyId, Status string }
	}
	c.ok(&lak, "iam", "list-access-keys", "--user-name", "alice")
	if len(lak.AccessKeyMetadata) != 1 || lak.AccessKeyMetadata[0].AccessKeyId != ck.AccessKey.AccessKeyId {
		t.Fatalf("list-access-keys: %+v", lak)
	}
	var lp struct {
		Policies []struct {
			PolicyName, Arn string
			AttachmentCount int
		}
	}
	c.ok(&lp, "iam", "list-policies", "--scope", "AWS")
	counts := map[string]int{}
	for _, p := range lp.Policies {
		counts[p.PolicyName] = p.AttachmentCount
	}
	if len(lp.Policies) != 8 || counts["AdministratorAccess"] != 1 || counts["ReadOnlyAccess"] != 1 || counts["IAMFullAccess"] != 0 {
		t.Fatalf("list-policies --scope AWS: %+v", lp.Policies)
	}
	var gad struct {
		UserDetailList []struct {
			UserName       string
			UserPolicyList []struct {
				PolicyName     string
				PolicyDocument any
			}
			GroupList []string
		}
		GroupDetailList []struct{ GroupName string }
		Policies        []struct{ PolicyName string }
	}
	c.ok(&gad, "iam", "get-account-authorization-details")
	if len(gad.UserDetailList) != 3 || len(gad.GroupDetailList) != 1 || len(gad.Policies) != 2 {
		t.Fatalf("get-account-authorization-details: %+v", gad)
	}
	if a := gad.UserDetailList[0]; a.UserName != "alice" || len(a.UserPolicyList) != 1 || !sameJSON(t, a.UserPolicyList[0].PolicyDocument, e2eInline) || strings.Join(a.GroupList, ",") != "devs" {
		t.Fatalf("alice's details: %+v", a)
	}

	// A customer-managed policy: five versions at most, one default.
	var cp struct {
		Policy struct{ Arn, PolicyId, DefaultVersionId string }
	}
	c.ok(&cp, "iam", "create-policy", "--policy-name", "lab-read", "--path", "/lab/", "--policy-document", e2eV1)
	arn := "arn:aws:iam::" + acct + ":policy/lab/lab-read"
	if cp.Policy.Arn != arn || cp.Policy.DefaultVersionId != "v1" || !strings.HasPrefix(cp.Policy.PolicyId, "ANPA") {
		t.Fatalf("create-policy: %+v", cp.Policy)
	}
	for n := 2; n <= 5; n++ {
		var cv struct{ PolicyVersion struct{ VersionId string } }
		c.ok(&cv, "iam", "create-policy-version", "--policy-arn", arn, "--policy-document", e2eInline)
		if cv.PolicyVersion.VersionId != fmt.Sprint("v", n) {
			t.Fatalf("create-policy-version %d: %+v", n, cv)
		}
	}
	c.fails([]string{"iam", "create-policy-version", "--policy-arn", arn, "--policy-document", e2eV1}, "LimitExceeded", "up to 5 versions")
	c.ok(nil, "iam", "set-default-policy-version", "--policy-arn", arn, "--version-id", "v4")
	c.fails([]string{"iam", "delete-policy-version", "--policy-arn", arn, "--version-id", "v4"}, "DeleteConflict", "Cannot delete the default version of a policy.")
	var lv struct {
		Versions []struct {
			VersionId        string
			IsDefaultVersion bool
		}
	}
	c.ok(&lv, "iam", "list-policy-versions", "--policy-arn", arn)
	if len(lv.Versions) != 5 || lv.Versions[0].VersionId != "v5" || !lv.Versions[1].IsDefaultVersion {
		t.Fatalf("list-policy-versions: %+v", lv)
	}
	var gv struct {
		PolicyVersion struct {
			Document         any
			IsDefaultVersion bool
		}
	}
	c.ok(&gv, "iam", "get-policy-version", "--policy-arn", arn, "--version-id", "v1")
	if gv.PolicyVersion.IsDefaultVersion || !sameJSON(t, gv.PolicyVersion.Document, e2eV1) {
		t.Fatalf("get-policy-version v1: %+v", gv)
	}
	c.ok(nil, "iam", "attach-user-policy", "--user-name", "bob", "--policy-arn", arn)
	var gpol struct {
		Policy struct {
			DefaultVersionId string
			AttachmentCount  int
		}
	}
	c.ok(&gpol, "iam", "get-policy", "--policy-arn", arn)
	if gpol.Policy.DefaultVersionId != "v4" || gpol.Policy.AttachmentCount != 1 {
		t.Fatalf("get-policy: %+v", gpol)
	}
	c.fails([]string{"iam", "delete-policy", "--policy-arn", arn}, "DeleteConflict", "Cannot delete a policy attached to entities.")
	c.ok(nil, "iam", "detach-user-policy", "--user-name", "bob", "--policy-arn", arn)
	c.fails([]string{"iam", "delete-policy", "--policy-arn", arn}, "DeleteConflict", "more than one version")
	for _, v := range []string{"v1", "v2", "v3", "v5"} {
		c.ok(nil, "iam", "delete-policy-version", "--policy-arn", arn, "--version-id", v)
	}
	c.ok(nil, "iam", "delete-policy", "--policy-arn", arn)

	// A role in an instance profile.
	var cr struct {
		Role struct {
			RoleName, RoleId, Arn    string
			AssumeRolePolicyDocument any
			MaxSessionDuration       int
		}
	}
	c.ok(&cr, "iam", "create-role", "--role-name", "web", "--assume-role-policy-document", e2eTrust)
	if cr.Role.Arn != "arn:aws:iam::"+acct+":role/web" || !strings.HasPrefix(cr.Role.RoleId, "AROA") ||
		cr.Role.MaxSessionDuration != 3600 || !sameJSON(t, cr.Role.AssumeRolePolicyDocument, e2eTrust) {
		t.Fatalf("create-role: %+v", cr.Role)
	}
	c.fails([]string{"iam", "create-role", "--role-name", "bad", "--assume-role-policy-document", e2eV1}, "MalformedPolicyDocument")
	c.ok(nil, "iam", "create-instance-profile", "--instance-profile-name", "web")
	c.ok(nil, "iam", "add-role-to-instance-profile", "--instance-profile-name", "web", "--role-name", "web")
	var gip struct {
		InstanceProfile struct {
			InstanceProfileId string
			Roles             []struct{ RoleName string }
		}
	}
	c.ok(&gip, "iam", "get-instance-profile", "--instance-profile-name", "web")
	if !strings.HasPrefix(gip.InstanceProfile.InstanceProfileId, "AIPA") || len(gip.InstanceProfile.Roles) != 1 || gip.InstanceProfile.Roles[0].RoleName != "web" {
		t.Fatalf("get-instance-profile: %+v", gip)
	}
	c.ok(nil, "iam", "create-role", "--role-name", "db", "--assume-role-policy-document", e2eTrust)
	c.fails([]string{"iam", "add-role-to-instance-profile", "--instance-profile-name", "web", "--role-name", "db"}, "LimitExceeded")
	c.fails([]string{"iam", "delete-role", "--role-name", "web"}, "DeleteConflict", "must remove roles from instance profile first")
	c.ok(nil, "iam", "remove-role-from-instance-profile", "--instance-profile-name", "web", "--role-name", "web")
	c.ok(nil, "iam", "delete-instance-profile", "--instance-profile-name", "web")
	c.ok(nil, "iam", "delete-role", "--role-name", "web")

	// Deleting alice: everything attached must go first, named in order.
	steps := []struct {
		want string
		undo []string
	}{
		{"must delete access keys first", []string{"iam", "delete-access-key", "--user-name", "alice", "--access-key-id", ck.AccessKey.AccessKeyId}},
		{"must delete policies first", []string{"iam", "delete-user-policy", "--user-name", "alice", "--policy-name", "describe"}},
		{"must detach all policies first", []string{"iam", "detach-user-policy", "--user-name", "alice", "--policy-arn", "arn:aws:iam::aws:policy/ReadOnlyAccess"}},
		{"must remove user from all groups first", []string{"iam", "remove-user-from-group", "--group-name", "devs", "--user-name", "alice"}},
	}
	// First, an inactive key stops authenticating.
	c.ok(nil, "iam", "update-access-key", "--user-name", "alice", "--access-key-id", ck.AccessKey.AccessKeyId, "--status", "Inactive")
	c.failsAs("alice", []string{"sts", "get-caller-identity"}, "InvalidClientTokenId")
	for _, s := range steps {
		c.fails([]string{"iam", "delete-user", "--user-name", "alice"}, "DeleteConflict", "Cannot delete entity, "+s.want)
		c.ok(nil, s.undo...)
	}
	c.ok(nil, "iam", "delete-user", "--user-name", "alice")
	c.fails([]string{"iam", "delete-group", "--group-name", "devs"}, "DeleteConflict", "must detach all policies first")
	c.ok(nil, "iam", "detach-group-policy", "--group-name", "devs", "--policy-arn", "arn:aws:iam::aws:policy/AdministratorAccess")
	c.ok(nil, "iam", "delete-group", "--group-name", "devs")
	c.fails([]string{"iam", "get-group", "--group-name", "devs"}, "NoSuchEntity")
}

// IAM state survives a daemon restart, and a user key created before the
// restart still signs requests after it.
func TestIAMSurvivesRestart(t *testing.T) {
	dir := t.TempDir()
	d := startDaemon(t, dir)
	c := newIAMCLI(t, d)
	c.ok(nil, "iam", "create-user", "--user-name", "alice")
	var ck struct {
		AccessKey struct{ AccessKeyId, SecretAccessKey string }
	}
	c.ok(&ck, "iam", "create-access-key", "--user-name", "alice")
	d.stop()

	d = startDaemon(t, dir)
	c = newIAMCLI(t, d)
	c.profile("alice", ck.AccessKey.AccessKeyId, ck.AccessKey.SecretAccessKey)
	var who struct{ Arn string }
	c.okAs("alice", &who, "sts", "get-caller-identity")
	if !strings.HasSuffix(who.Arn, ":user/alice") {
		t.Fatalf("after restart alice is %q", who.Arn)
	}
}

// The IAM actions TestIAMWithAWSCLI does not call, through boto3 in one
// process: every response must parse with botocore's IAM model and carry
// what was set.
func TestIAMBoto3(t *testing.T) {
	python := lookTool(t, "python3")
	d := startDaemon(t, "")
	script := `
import boto3, json, sys
s = boto3.session.Session(profile_name="labcloud")
iam = s.client("iam", endpoint_url=sys.argv[1])
trust = json.dumps({"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Principal": {"Service": "ec2.amazonaws.com"}, "Action": "sts:AssumeRole"}]})
doc = {"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Action": "ec2:Describe*", "Resource": "*"}]}
out = {}
def code(f, **kw):
    try:
        f(**kw)
        return None
    except iam.exceptions.ClientError as e:
        return e.response["Error"]["Code"]

iam.create_user(UserName="u1")
iam.update_user(UserName="u1", NewUserName="u2", NewPath="/moved/")
out["renamed"] = iam.get_user(UserName="U2")["User"]["Arn"]
iam.tag_user(UserName="u2", Tags=[{"Key": "a", "Value": "1"}, {"Key": "b", "Value": "2"}])
iam.untag_user(UserName="u2", TagKeys=["A"])
out["userTags"] = iam.list_user_tags(UserName="u2")["Tags"]
iam.create_policy(PolicyName="bound", PolicyDocument=json.dumps(doc))
acct = iam.get_user(UserName="u2")["User"]["Arn"].split(":")[4]
bound = "arn:aws:iam::%s:policy/bound" % acct
iam.put_user_permissions_boundary(UserName="u2", PermissionsBoundary=bound)
out["userBoundary"] = iam.get_user(UserName="u2")["User"]["PermissionsBoundary"]
out["boundaryUsers"] = [u["UserName"] for u in iam.list_entities_for_policy(PolicyArn=bound, PolicyUsageFilter="PermissionsBoundary")["PolicyUsers"]]
iam.delete_user_permissions_boundary(UserName="u2")
out["userBoundaryAfter"] = "PermissionsBoundary" in iam.get_user(UserName="u2")["User"]

iam.create_role(RoleName="r1", Path="/svc/", AssumeRolePolicyDocument=trust, MaxSessionDuration=7200, Tags=[{"Key": "env", "Value": "lab"}])
iam.update_role(RoleName="r1", Description="a role", MaxSessionDuration=10800)
iam.update_assume_role_policy(RoleName="r1", PolicyDocument=trust)
iam.tag_role(RoleName="r1", Tags=[{"Key": "owner", "Value": "me"}])
iam.untag_role(RoleName="r1", TagKeys=["env"])
out["roleTags"] = iam.list_role_tags(RoleName="r1")["Tags"]
role = iam.get_role(RoleName="r1")["Role"]
out["role"] = {"Description": role["Description"], "MaxSessionDuration": role["MaxSessionDuration"], "Trust": role["AssumeRolePolicyDocument"]}
out["roles"] = [r["RoleName"] for r in iam.list_roles(PathPrefix="/svc/")["Roles"]]
iam.put_role_permissions_boundary(RoleName="r1", PermissionsBoundary="arn:aws:iam::aws:policy/PowerUserAccess")
out["roleBoundary"] = iam.get_role(RoleName="r1")["Role"]["PermissionsBoundary"]["PermissionsBoundaryArn"]
iam.delete_role_permissions_boundary(RoleName="r1")
iam.put_role_policy(RoleName="r1", PolicyName="inline", PolicyDocument=json.dumps(doc))
out["rolePolicy"] = iam.get_role_policy(RoleName="r1", PolicyName="inline")["PolicyDocument"]
out["rolePolicies"] = iam.list_role_policies(RoleName="r1")["PolicyNames"]
iam.attach_role_policy(RoleName="r1", PolicyArn="arn:aws:iam::aws:policy/AmazonEC2ReadOnlyAccess")
out["roleAttached"] = iam.list_attached_role_policies(RoleName="r1")["AttachedPolicies"]
out["policyRoles"] = [r["RoleName"] for r in iam.list_entities_for_policy(PolicyArn="arn:aws:iam::aws:policy/AmazonEC2ReadOnlyAccess")["PolicyRoles"]]
iam.detach_role_policy(RoleName="r1", PolicyArn="arn:aws:iam::aws:policy/AmazonEC2ReadOnlyAccess")
iam.delete_role_policy(RoleName="r1", PolicyName="inline")

iam.create_instance_profile(InstanceProfileName="p1", Path="/svc/")
iam.add_role_to_instance_profile(InstanceProfileName="p1", RoleName="r1")
out["profiles"] = [p["InstanceProfileName"] for p in iam.list_instance_profiles()["InstanceProfiles"]]
out["profilesForRole"] = [p["Arn"] for p in iam.list_instance_profiles_for_role(RoleName="r1")["InstanceProfiles"]]
out["deleteRole"] = code(iam.delete_role, RoleName="r1")

iam.create_group(GroupName="g1")
iam.put_group_policy(GroupName="g1", PolicyName="gp", PolicyDocument=json.dumps(doc))
out["groupPolicy"] = iam.get_group_policy(GroupName="g1", PolicyName="gp")["PolicyDocument"]
out["groupPolicies"] = iam.list_group_policies(GroupName="g1")["PolicyNames"]
out["groups"] = [g["GroupName"] for g in iam.list_groups()["Groups"]]
iam.delete_group_policy(GroupName="g1", PolicyName="gp")
iam.delete_group(GroupName="g1")

out["badMaxSession"] = code(iam.create_role, RoleName="r2", AssumeRolePolicyDocument=trust, MaxSessionDuration=50000)
out["noRole"] = code(iam.get_role, RoleName="nope")
out["malformedTrust"] = code(iam.create_role, RoleName="r3", AssumeRolePolicyDocument=json.dumps(doc))
out["pagedPolicies"] = len(list(p for page in iam.get_paginator("list_policies").paginate(Scope="AWS", PaginationConfig={"PageSize": 3}) for p in page["Policies"]))
print(json.dumps(out, default=str))
`
	env := []string{"AWS_SHARED_CREDENTIALS_FILE=" + d.credsFile(), "AWS_CONFIG_FILE=/dev/null"}
	stdout, stderr, code := run(t, env, python, "-c", script, d.Endpoint)
	if code != 0 {
		t.Fatalf("boto3 exit %d: %s", code, stderr)
	}
	var got struct {
		Renamed           string
		UserTags          []struct{ Key, Value string }
		UserBoundary      struct{ PermissionsBoundaryType, PermissionsBoundaryArn string }
		UserBoundaryAfter bool
		BoundaryUsers     []string
		PolicyRoles       []string
		RoleTags          []struct{ Key, Value string }
		Role              struct {
			Description        string
			MaxSessionDuration int
			Trust              any
		}
		Roles           []string
		RoleBoundary    string
		RolePolicy      any
		RolePolicies    []string
		RoleAttached    []struct{ PolicyName, PolicyArn string }
		Profiles        []string
		ProfilesForRole []string
		DeleteRole      string
		GroupPolicy     any
		GroupPolicies   []string
		Groups          []string
		BadMaxSession   string
		NoRole          string
		MalformedTrust  string
		PagedPolicies   int
	}
	if err := json.Unmarshal([]byte(stdout), &got); err != nil {
		t.Fatalf("parsing %q: %v", stdout, err)
	}
	doc := `{"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Action": "ec2:Describe*", "Resource": "*"}]}`
	checks := []struct {
		name string
		ok   bool
	}{
		{"renamed user ARN", strings.HasSuffix(got.Renamed, ":user/moved/u2")},
		{"user tags", len(got.UserTags) == 1 && got.UserTags[0].Key == "b"},
		{"user boundary", got.UserBoundary.PermissionsBoundaryType == "PermissionsBoundaryPolicy" && strings.HasSuffix(got.UserBoundary.PermissionsBoundaryArn, ":policy/bound")},
		{"user boundary removed", !got.UserBoundaryAfter},
		{"entities using the boundary", strings.Join(got.BoundaryUsers, ",") == "u2"},
		{"entities the policy is attached to", strings.Join(got.PolicyRoles, ",") == "r1"},
		{"role tags", len(got.RoleTags) == 1 && got.RoleTags[0].Key == "owner"},
		{"role updated", got.Role.Description == "a role" && got.Role.MaxSessionDuration == 10800 && sameJSON(t, got.Role.Trust, e2eTrust)},
		{"roles by path", strings.Join(got.Roles, ",") == "r1"},
		{"role boundary", got.RoleBoundary == "arn:aws:iam::aws:policy/PowerUserAccess"},
		{"role inline policy", sameJSON(t, got.RolePolicy, doc) && strings.Join(got.RolePolicies, ",") == "inline"},
		{"role attached", len(got.RoleAttached) == 1 && got.RoleAttached[0].PolicyName == "AmazonEC2ReadOnlyAccess"},
		{"instance profiles", strings.Join(got.Profiles, ",") == "p1" && len(got.ProfilesForRole) == 1 && strings.HasSuffix(got.ProfilesForRole[0], ":instance-profile/svc/p1")},
		{"delete role in profile", got.DeleteRole == "DeleteConflict"},
		{"group inline policy", sameJSON(t, got.GroupPolicy, doc) && strings.Join(got.GroupPolicies, ",") == "gp"},
		{"groups", strings.Join(got.Groups, ",") == "g1"},
		{"max session out of range", got.BadMaxSession == "ValidationError"},
		{"no such role", got.NoRole == "NoSuchEntity"},
		{"identity policy as trust policy", got.MalformedTrust == "MalformedPolicyDocument"},
		{"paginated AWS policies", got.PagedPolicies == 8},
	}
	for _, c := range checks {
		if !c.ok {
			t.Errorf("%s: got %+v", c.name, got)
		}
	}
}
