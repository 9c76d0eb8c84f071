package e2e

import (
	"strings"
	"testing"
)

// Session policies, session tags, ExternalId and resource tags, driven by
// boto3 (one Python process keeps the test fast).
func TestSTSSessionFeaturesBoto3(t *testing.T) {
	python := lookTool(t, "python3")
	d := startDaemon(t, "")
	script := `
import boto3, json, sys
ep = sys.argv[1]
admin = boto3.session.Session(profile_name="labcloud")
iam = admin.client("iam", endpoint_url=ep)
def err(fn, **kw):
    try:
        fn(**kw)
        return "ok"
    except Exception as e:
        return e.response["Error"]["Code"]
out = {}
carol = iam.create_user(UserName="carol")["User"]["Arn"]
k = iam.create_access_key(UserName="carol")["AccessKey"]
iam.create_user(UserName="bluey", Tags=[{"Key": "team", "Value": "blue"}])
iam.create_user(UserName="reddy", Tags=[{"Key": "team", "Value": "red"}])
trust = {"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Principal": {"AWS": carol},
         "Action": ["sts:AssumeRole", "sts:TagSession"], "Condition": {"StringEquals": {"sts:ExternalId": "lab-42"}}}]}
role = iam.create_role(RoleName="tagged", AssumeRolePolicyDocument=json.dumps(trust))["Role"]["Arn"]
iam.attach_role_policy(RoleName="tagged", PolicyArn="arn:aws:iam::aws:policy/AmazonEC2ReadOnlyAccess")
iam.put_role_policy(RoleName="tagged", PolicyName="same-team", PolicyDocument=json.dumps({"Version": "2012-10-17", "Statement": [
    {"Effect": "Allow", "Action": "iam:GetUser", "Resource": "*",
     "Condition": {"StringEquals": {"aws:ResourceTag/team": "${aws:PrincipalTag/team}"}}}]}))
c = boto3.session.Session(aws_access_key_id=k["AccessKeyId"], aws_secret_access_key=k["SecretAccessKey"], region_name="lab-1")
sts = c.client("sts", endpoint_url=ep)
out["no_external_id"] = err(sts.assume_role, RoleArn=role, RoleSessionName="s1")
out["wrong_external_id"] = err(sts.assume_role, RoleArn=role, RoleSessionName="s1", ExternalId="nope")
session_policy = {"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Action": ["ec2:DescribeRegions", "iam:GetUser"], "Resource": "*"}]}
r = sts.assume_role(RoleArn=role, RoleSessionName="s1", ExternalId="lab-42", Tags=[{"Key": "team", "Value": "blue"}],
                    Policy=json.dumps(session_policy))
cr = r["Credentials"]
s = boto3.session.Session(aws_access_key_id=cr["AccessKeyId"], aws_secret_access_key=cr["SecretAccessKey"],
                          aws_session_token=cr["SessionToken"], region_name="lab-1")
ec2 = s.client("ec2", endpoint_url=ep)
siam = s.client("iam", endpoint_url=ep)
out["regions"] = err(ec2.describe_regions)
out["zones"] = err(ec2.describe_availability_zones)          # role allows, session policy does not
out["get_bluey"] = err(siam.get_user, UserName="bluey")       # principal tag blue = resource tag blue
out["get_reddy"] = err(siam.get_user, UserName="reddy")
out["arn"] = s.client("sts", endpoint_url=ep).get_caller_identity()["Arn"]
# Without sts:TagSession in the trust policy, session tags are refused.
trust["Statement"][0]["Action"] = "sts:AssumeRole"
iam.update_assume_role_policy(RoleName="tagged", PolicyDocument=json.dumps(trust))
out["tags_without_tagsession"] = err(sts.assume_role, RoleArn=role, RoleSessionName="s2", ExternalId="lab-42", Tags=[{"Key": "team", "Value": "blue"}])
out["no_tags"] = err(sts.assume_role, RoleArn=role, RoleSessionName="s2", ExternalId="lab-42")
print(json.dumps(out))
`
	env := []string{"AWS_SHARED_CREDENTIALS_FILE=" + d.credsFile(), "AWS_CONFIG_FILE=/dev/null"}
	out, errOut, code := run(t, env, python, "-c", script, d.Endpoint)
	if code != 0 {
		t.Fatalf("boto3 exit %d: %s", code, errOut)
	}
	var got map[string]string
	mustJSON(t, out, &got)
	want := map[string]string{
		"no_external_id": "AccessDenied", "wrong_external_id": "AccessDenied",
		"regions": "ok", "zones": "UnauthorizedOperation",
		"get_bluey": "ok", "get_reddy": "AccessDenied",
		"tags_without_tagsession": "AccessDenied", "no_tags": "ok",
	}
	for k, v := range want {
		if got[k] != v {
			t.Errorf("%s = %q, want %q", k, got[k], v)
		}
	}
	if !strings.HasSuffix(got["arn"], ":assumed-role/tagged/s1") {
		t.Errorf("session ARN %q", got["arn"])
	}
}
