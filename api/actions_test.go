package api

import (
	"net/url"
	"testing"

	"github.com/labcloud/labcloud/iamd"
)

// Every action a client can call must say how IAM authorizes it; an action
// without an entry would otherwise be refused (or worse, slip through).
func TestEveryActionIsInTheAuthorizationTable(t *testing.T) {
	s := New(Options{})
	n := 0
	for service, ops := range s.ops {
		if service == ServiceLabcloud {
			continue // authorized by authorizeAdmin: admin account root only
		}
		for action := range ops {
			n++
			key := service + ":" + action
			if alwaysAllowed[key] {
				continue
			}
			spec, ok := actionTable[key]
			if !ok {
				t.Errorf("%s is registered but has no entry in actionTable", key)
				continue
			}
			c := &Call{Service: service, Action: action, Principal: iamd.Principal{AccountID: "123456789012", Type: iamd.PrincipalUser, UserName: "alice"}}
			p := url.Values{"UserName": {"bob"}, "GroupName": {"g"}, "RoleName": {"r"}, "PolicyArn": {"arn:aws:iam::123456789012:policy/p"},
				"PolicyName": {"p"}, "InstanceProfileName": {"ip"}, "RoleArn": {"arn:aws:iam::123456789012:role/r"},
				"PolicySourceArn": {"arn:aws:iam::123456789012:user/bob"}}
			for _, r := range spec.resources(c, p) {
				if r == "" {
					t.Errorf("%s yields an empty resource", key)
				}
			}
		}
	}
	if n < 10 {
		t.Fatalf("only %d actions registered; the table test is not seeing the server", n)
	}
}

func TestIAMResourceARNs(t *testing.T) {
	tests := []struct {
		name, action string
		params       url.Values
		want         string
	}{
		{"user by name", "iam:GetUser", url.Values{"UserName": {"bob"}}, "arn:aws:iam::123456789012:user/bob"},
		{"own user", "iam:ListAccessKeys", url.Values{}, "arn:aws:iam::123456789012:user/alice"},
		{"create with path", "iam:CreateUser", url.Values{"UserName": {"bob"}, "Path": {"/eng/"}}, "arn:aws:iam::123456789012:user/eng/bob"},
		{"group", "iam:AddUserToGroup", url.Values{"GroupName": {"devs"}, "UserName": {"bob"}}, "arn:aws:iam::123456789012:group/devs"},
		{"policy arn", "iam:GetPolicy", url.Values{"PolicyArn": {"arn:aws:iam::aws:policy/ReadOnlyAccess"}}, "arn:aws:iam::aws:policy/ReadOnlyAccess"},
		{"list users", "iam:ListUsers", url.Values{}, "arn:aws:iam::123456789012:user/"},
		{"assume role", "sts:AssumeRole", url.Values{"RoleArn": {"arn:aws:iam::210987654321:role/r"}}, "arn:aws:iam::210987654321:role/r"},
		{"ec2 describe", "ec2:DescribeRegions", url.Values{}, "*"},
	}
	c := &Call{Principal: iamd.Principal{AccountID: "123456789012", Type: iamd.PrincipalUser, UserName: "alice"}}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := actionTable[tt.action].resources(c, tt.params)
			if len(got) != 1 || got[0] != tt.want {
				t.Fatalf("resources = %v, want [%s]", got, tt.want)
			}
		})
	}
}

func TestRequestTags(t *testing.T) {
	p := url.Values{
		"Tags.member.1.Key": {"Department"}, "Tags.member.1.Value": {"DBAdmins"},
		"TagSpecification.1.Tag.1.Key": {"Env"}, "TagSpecification.1.Tag.1.Value": {"Prod"},
	}
	if got := requestTags(ServiceIAM, p); len(got) != 1 || got["Department"] != "DBAdmins" {
		t.Fatalf("iam tags = %v", got)
	}
	if got := requestTags(ServiceEC2, p); len(got) != 1 || got["Env"] != "Prod" {
		t.Fatalf("ec2 tags = %v", got)
	}
}
