package iamd_test

import (
	"errors"
	"fmt"
	"strings"
	"sync"
	"testing"

	"github.com/labcloud/labcloud/iamd"
	"github.com/labcloud/labcloud/iamd/policy"
)

func TestIAMUsers(t *testing.T) {
	t.Parallel()
	e := newIAMEnv(t)
	ctx, i := e.ctx, e.iam

	u, err := i.CreateUser(ctx, e.acct, iamd.CreateUserInput{UserName: "Alice", Path: "/eng/", Tags: []iamd.Tag{{Key: "team", Value: "red"}}})
	must(t, "CreateUser", err)
	if u.ARN != "arn:aws:iam::"+e.acct+":user/eng/Alice" || !strings.HasPrefix(u.UserID, "AIDA") || len(u.UserID) != 21 || u.Path != "/eng/" {
		t.Fatalf("created %+v", u)
	}

	// Names are unique without regard to case and found without regard
	// to case, but keep the case they were created with.
	_, err = i.CreateUser(ctx, e.acct, iamd.CreateUserInput{UserName: "alice"})
	wantErr(t, "duplicate in other case", err, "EntityAlreadyExists", "User with name Alice already exists.")
	got, err := i.GetUser(ctx, e.acct, "ALICE")
	must(t, "GetUser", err)
	if got.UserName != "Alice" || got.UserID != u.UserID {
		t.Fatalf("GetUser(ALICE) = %+v", got)
	}
	_, err = i.GetUser(ctx, e.acct, "bob")
	wantErr(t, "missing user", err, "NoSuchEntity", "The user with name bob cannot be found.")

	_, err = i.CreateUser(ctx, e.acct, iamd.CreateUserInput{UserName: "bob"})
	must(t, "CreateUser bob", err)
	all, err := i.ListUsers(ctx, e.acct, "")
	must(t, "ListUsers", err)
	if len(all) != 2 || all[0].UserName != "Alice" || all[1].UserName != "bob" {
		t.Fatalf("ListUsers = %+v", all)
	}
	eng, err := i.ListUsers(ctx, e.acct, "/eng/")
	must(t, "ListUsers /eng/", err)
	if len(eng) != 1 || eng[0].UserName != "Alice" {
		t.Fatalf("ListUsers(/eng/) = %+v", eng)
	}

	// Rename and move; the old name is free again.
	must(t, "UpdateUser", i.UpdateUser(ctx, e.acct, "bob", "Robert", "/ops/"))
	r, err := i.GetUser(ctx, e.acct, "robert")
	must(t, "GetUser renamed", err)
	if r.ARN != "arn:aws:iam::"+e.acct+":user/ops/Robert" {
		t.Fatalf("renamed ARN %s", r.ARN)
	}
	_, err = i.GetUser(ctx, e.acct, "bob")
	wantErr(t, "old name", err, "NoSuchEntity")
	err = i.UpdateUser(ctx, e.acct, "Robert", "alice", "")
	wantErr(t, "rename onto existing", err, "EntityAlreadyExists")

	must(t, "DeleteUser", i.DeleteUser(ctx, e.acct, "robert"))
	wantErr(t, "delete again", i.DeleteUser(ctx, e.acct, "robert"), "NoSuchEntity")
}

func TestIAMValidationMessages(t *testing.T) {
	t.Parallel()
	e := newIAMEnv(t)
	ctx, i := e.ctx, e.iam
	tests := []struct {
		name string
		in   iamd.CreateUserInput
		want string
	}{
		{"space in name", iamd.CreateUserInput{UserName: "x y"},
			`1 validation error detected: Value 'x y' at 'userName' failed to satisfy constraint: Member must satisfy regular expression pattern: [\w+=,.@-]+`},
		{"too long", iamd.CreateUserInput{UserName: strings.Repeat("a", 65)},
			"at 'userName' failed to satisfy constraint: Member must have length less than or equal to 64"},
		{"empty", iamd.CreateUserInput{UserName: ""},
			"Value '' at 'userName' failed to satisfy constraint: Member must have length greater than or equal to 1"},
		{"path without slash", iamd.CreateUserInput{UserName: "ok", Path: "eng"},
			`Value 'eng' at 'path' failed to satisfy constraint: Member must satisfy regular expression pattern: (\u002F)|(\u002F[\u0021-\u007E]+\u002F)`},
		{"two errors", iamd.CreateUserInput{UserName: "a b", Path: "x"},
			"2 validation errors detected: Value 'x' at 'path'"},
		{"tag key", iamd.CreateUserInput{UserName: "ok", Tags: []iamd.Tag{{Key: "a*b", Value: "v"}}},
			"Value 'a*b' at 'tags.1.member.key'"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := i.CreateUser(ctx, e.acct, tt.in)
			wantErr(t, "CreateUser", err, "ValidationError", tt.want)
		})
	}
	_, err := i.CreateUser(ctx, e.acct, iamd.CreateUserInput{UserName: "ok", Tags: []iamd.Tag{{Key: "Team", Value: "a"}, {Key: "team", Value: "b"}}})
	wantErr(t, "duplicate tag keys", err, "InvalidInput", "Tag keys are case insensitive")
	_, err = i.CreateUser(ctx, e.acct, iamd.CreateUserInput{UserName: "ok", Tags: []iamd.Tag{{Key: "aws:x", Value: "a"}}})
	wantErr(t, "reserved tag key", err, "InvalidInput", "aws:")
}

func TestIAMTags(t *testing.T) {
	t.Parallel()
	e := newIAMEnv(t)
	ctx, i := e.ctx, e.iam
	_, err := i.CreateUser(ctx, e.acct, iamd.CreateUserInput{UserName: "alice", Tags: []iamd.Tag{{Key: "Team", Value: "red"}}})
	must(t, "CreateUser", err)
	u := iamd.UserEntity("alice")
	must(t, "TagEntity", i.TagEntity(ctx, e.acct, u, []iamd.Tag{{Key: "team", Value: "blue"}, {Key: "cost", Value: "1"}}))
	tags, err := i.EntityTags(ctx, e.acct, u)
	must(t, "EntityTags", err)
	if fmt.Sprint(tags) != "[{team blue} {cost 1}]" {
		t.Fatalf("tags = %v; want the key matched without regard to case and replaced", tags)
	}
	must(t, "UntagEntity", i.UntagEntity(ctx, e.acct, u, []string{"TEAM", "absent"}))
	tags, _ = i.EntityTags(ctx, e.acct, u)
	if fmt.Sprint(tags) != "[{cost 1}]" {
		t.Fatalf("after untag = %v", tags)
	}
	var many []iamd.Tag
	for n := range 50 {
		many = append(many, iamd.Tag{Key: fmt.Sprint("k", n), Value: "v"})
	}
	wantErr(t, "51 tags", i.TagEntity(ctx, e.acct, u, many), "LimitExceeded", "maximum limit")
	wantErr(t, "group tags", i.TagEntity(ctx, e.acct, iamd.GroupEntity("g"), []iamd.Tag{{Key: "a", Value: "b"}}), "NoSuchEntity")
}

func TestIAMAccessKeys(t *testing.T) {
	t.Parallel()
	e := newIAMEnv(t)
	ctx, i := e.ctx, e.iam
	_, err := i.CreateUser(ctx, e.acct, iamd.CreateUserInput{UserName: "alice"})
	must(t, "CreateUser", err)
	k1, err := i.CreateAccessKey(ctx, e.acct, "alice")
	must(t, "CreateAccessKey", err)
	if !strings.HasPrefix(k1.AccessKeyID, "AKIA") || len(k1.SecretAccessKey) != 40 || k1.Status != "Active" || k1.UserName != "alice" {
		t.Fatalf("key %+v", k1)
	}
	// SigV4 verification finds user keys where it finds root keys.
	found, err := e.accounts.LookupAccessKey(ctx, k1.AccessKeyID)
	must(t, "LookupAccessKey", err)
	if found.UserName != "alice" || found.AccountID != e.acct || found.SecretAccessKey != k1.SecretAccessKey {
		t.Fatalf("looked up %+v", found)
	}
	_, err = i.CreateAccessKey(ctx, e.acct, "alice")
	must(t, "second key", err)
	_, err = i.CreateAccessKey(ctx, e.acct, "alice")
	wantErr(t, "third key", err, "LimitExceeded", "AccessKeysPerUser: 2")

	keys, err := i.ListAccessKeys(ctx, e.acct, "alice")
	must(t, "ListAccessKeys", err)
	if len(keys) != 2 || keys[0].SecretAccessKey != "" {
		t.Fatalf("ListAccessKeys = %+v (secrets must not be listed)", keys)
	}

	// An inactive key no longer authenticates.
	must(t, "deactivate", i.UpdateAccessKey(ctx, e.acct, "alice", k1.AccessKeyID, "Inactive"))
	if _, err := e.accounts.LookupAccessKey(ctx, k1.AccessKeyID); !errors.Is(err, iamd.ErrNoSuchKey) {
		t.Fatalf("inactive key lookup: %v, want ErrNoSuchKey", err)
	}
	must(t, "reactivate", i.UpdateAccessKey(ctx, e.acct, "alice", k1.AccessKeyID, "Active"))
	if _, err := e.accounts.LookupAccessKey(ctx, k1.AccessKeyID); err != nil {
		t.Fatalf("reactivated key lookup: %v", err)
	}
	wantErr(t, "bad status", i.UpdateAccessKey(ctx, e.acct, "alice", k1.AccessKeyID, "Expired"), "ValidationError")

	// Another user's key is not this user's.
	_, err = i.CreateUser(ctx, e.acct, iamd.CreateUserInput{UserName: "bob"})
	must(t, "CreateUser bob", err)
	wantErr(t, "foreign key", i.DeleteAccessKey(ctx, e.acct, "bob", k1.AccessKeyID), "NoSuchEntity", k1.AccessKeyID)

	// Renaming the user renames its keys' owner.
	must(t, "rename", i.UpdateUser(ctx, e.acct, "alice", "alicia", ""))
	found, err = e.accounts.LookupAccessKey(ctx, k1.AccessKeyID)
	must(t, "lookup after rename", err)
	if found.UserName != "alicia" {
		t.Fatalf("key owner after rename = %q", found.UserName)
	}

	must(t, "DeleteAccessKey", i.DeleteAccessKey(ctx, e.acct, "alicia", k1.AccessKeyID))
	if _, err := e.accounts.LookupAccessKey(ctx, k1.AccessKeyID); !errors.Is(err, iamd.ErrNoSuchKey) {
		t.Fatalf("deleted key lookup: %v", err)
	}
}

func TestIAMDeleteUserConflicts(t *testing.T) {
	t.Parallel()
	e := newIAMEnv(t)
	ctx, i := e.ctx, e.iam
	_, err := i.CreateUser(ctx, e.acct, iamd.CreateUserInput{UserName: "alice"})
	must(t, "CreateUser", err)
	_, err = i.CreateGroup(ctx, e.acct, "devs", "")
	must(t, "CreateGroup", err)
	k, err := i.CreateAccessKey(ctx, e.acct, "alice")
	must(t, "CreateAccessKey", err)
	must(t, "PutInlinePolicy", i.PutInlinePolicy(ctx, e.acct, iamd.UserEntity("alice"), "inline", allowEC2))
	must(t, "AttachPolicy", i.AttachPolicy(ctx, e.acct, iamd.UserEntity("alice"), "arn:aws:iam::aws:policy/ReadOnlyAccess"))
	must(t, "AddUserToGroup", i.AddUserToGroup(ctx, e.acct, "devs", "alice"))

	steps := []struct {
		want   string
		remove func() error
	}{
		{"must delete access keys first", func() error { return i.DeleteAccessKey(ctx, e.acct, "alice", k.AccessKeyID) }},
		{"must delete policies first", func() error { return i.DeleteInlinePolicy(ctx, e.acct, iamd.UserEntity("alice"), "inline") }},
		{"must detach all policies first", func() error {
			return i.DetachPolicy(ctx, e.acct, iamd.UserEntity("alice"), "arn:aws:iam::aws:policy/ReadOnlyAccess")
		}},
		{"must remove user from all groups first", func() error { return i.RemoveUserFromGroup(ctx, e.acct, "devs", "alice") }},
	}
	for _, s := range steps {
		wantErr(t, "DeleteUser", i.DeleteUser(ctx, e.acct, "alice"), "DeleteConflict", "Cannot delete entity, "+s.want)
		must(t, "removing for "+s.want, s.remove())
	}
	must(t, "DeleteUser", i.DeleteUser(ctx, e.acct, "alice"))
}

func TestIAMGroups(t *testing.T) {
	t.Parallel()
	e := newIAMEnv(t)
	ctx, i := e.ctx, e.iam
	g, err := i.CreateGroup(ctx, e.acct, "Devs", "/eng/")
	must(t, "CreateGroup", err)
	if !strings.HasPrefix(g.GroupID, "AGPA") || g.ARN != "arn:aws:iam::"+e.acct+":group/eng/Devs" {
		t.Fatalf("group %+v", g)
	}
	_, err = i.CreateGroup(ctx, e.acct, "DEVS", "")
	wantErr(t, "duplicate", err, "EntityAlreadyExists", "Group with name Devs already exists.")
	for _, u := range []string{"bob", "alice"} {
		_, err := i.CreateUser(ctx, e.acct, iamd.CreateUserInput{UserName: u})
		must(t, "CreateUser", err)
		must(t, "AddUserToGroup", i.AddUserToGroup(ctx, e.acct, "devs", u))
	}
	must(t, "AddUserToGroup again", i.AddUserToGroup(ctx, e.acct, "Devs", "alice"))
	wantErr(t, "add unknown user", i.AddUserToGroup(ctx, e.acct, "devs", "carol"), "NoSuchEntity", "The user with name carol cannot be found.")
	wantErr(t, "add to unknown group", i.AddUserToGroup(ctx, e.acct, "ops", "alice"), "NoSuchEntity", "The group with name ops cannot be found.")

	_, members, err := i.GetGroup(ctx, e.acct, "devs")
	must(t, "GetGroup", err)
	if len(members) != 2 || members[0].UserName != "alice" || members[1].UserName != "bob" {
		t.Fatalf("members = %+v", members)
	}
	groups, err := i.ListGroupsForUser(ctx, e.acct, "alice")
	must(t, "ListGroupsForUser", err)
	if len(groups) != 1 || groups[0].GroupName != "Devs" {
		t.Fatalf("groups of alice = %+v", groups)
	}

	wantErr(t, "DeleteGroup with members", i.DeleteGroup(ctx, e.acct, "devs"), "DeleteConflict", "must remove users from group first")
	must(t, "remove alice", i.RemoveUserFromGroup(ctx, e.acct, "devs", "alice"))
	must(t, "remove bob", i.RemoveUserFromGroup(ctx, e.acct, "devs", "bob"))
	wantErr(t, "remove non-member", i.RemoveUserFromGroup(ctx, e.acct, "devs", "bob"), "NoSuchEntity")
	must(t, "PutGroupPolicy", i.PutInlinePolicy(ctx, e.acct, iamd.GroupEntity("devs"), "p", allowEC2))
	wantErr(t, "DeleteGroup with policy", i.DeleteGroup(ctx, e.acct, "devs"), "DeleteConflict", "must delete policies first")
	must(t, "DeleteGroupPolicy", i.DeleteInlinePolicy(ctx, e.acct, iamd.GroupEntity("devs"), "P"))
	must(t, "AttachGroupPolicy", i.AttachPolicy(ctx, e.acct, iamd.GroupEntity("devs"), "arn:aws:iam::aws:policy/IAMReadOnlyAccess"))
	wantErr(t, "DeleteGroup with attached", i.DeleteGroup(ctx, e.acct, "devs"), "DeleteConflict", "must detach all policies first")
	must(t, "DetachGroupPolicy", i.DetachPolicy(ctx, e.acct, iamd.GroupEntity("devs"), "arn:aws:iam::aws:policy/IAMReadOnlyAccess"))
	must(t, "DeleteGroup", i.DeleteGroup(ctx, e.acct, "devs"))

	// A user belongs to at most ten groups.
	for n := range 10 {
		name := fmt.Sprint("g", n)
		_, err := i.CreateGroup(ctx, e.acct, name, "")
		must(t, "CreateGroup", err)
		must(t, "AddUserToGroup", i.AddUserToGroup(ctx, e.acct, name, "alice"))
	}
	_, err = i.CreateGroup(ctx, e.acct, "g10", "")
	must(t, "CreateGroup g10", err)
	wantErr(t, "eleventh group", i.AddUserToGroup(ctx, e.acct, "g10", "alice"), "LimitExceeded", "GroupsPerUser: 10")
}

func TestIAMRoles(t *testing.T) {
	t.Parallel()
	e := newIAMEnv(t)
	ctx, i := e.ctx, e.iam
	r, err := i.CreateRole(ctx, e.acct, iamd.CreateRoleInput{RoleName: "web", Path: "/app/", AssumeRolePolicyDocument: trustEC2, Description: "web servers"})
	must(t, "CreateRole", err)
	if !strings.HasPrefix(r.RoleID, "AROA") || r.ARN != "arn:aws:iam::"+e.acct+":role/app/web" || r.MaxSessionDuration != 3600 {
		t.Fatalf("role %+v", r)
	}
	got, err := i.GetRole(ctx, e.acct, "WEB")
	must(t, "GetRole", err)
	if got.AssumeRolePolicyDocument != trustEC2 || got.Description != "web servers" {
		t.Fatalf("GetRole = %+v", got)
	}

	_, err = i.CreateRole(ctx, e.acct, iamd.CreateRoleInput{RoleName: "bad", AssumeRolePolicyDocument: `{"Version":"2012-10-17","Statement":[{"Effect":"Permit","Principal":"*","Action":"sts:AssumeRole"}]}`})
	var pe *policy.MalformedError
	if !errors.As(err, &pe) {
		t.Fatalf("malformed trust policy: %v, want the policy package's MalformedError inside", err)
	}
	wantErr(t, "malformed trust policy", err, "MalformedPolicyDocument", pe.Message)
	_, err = i.CreateRole(ctx, e.acct, iamd.CreateRoleInput{RoleName: "id", AssumeRolePolicyDocument: allowAll})
	wantErr(t, "identity policy as trust policy", err, "MalformedPolicyDocument")
	_, err = i.CreateRole(ctx, e.acct, iamd.CreateRoleInput{RoleName: "long", AssumeRolePolicyDocument: trustEC2, MaxSessionDuration: 43201})
	wantErr(t, "session too long", err, "ValidationError", "Value '43201' at 'maxSessionDuration' failed to satisfy constraint: Member must have value less than or equal to 43200")

	must(t, "UpdateRole", i.UpdateRole(ctx, e.acct, "web", nil, ptr(7200)))
	got, _ = i.GetRole(ctx, e.acct, "web")
	if got.MaxSessionDuration != 7200 || got.Description != "web servers" {
		t.Fatalf("after UpdateRole: %+v", got)
	}
	wantErr(t, "UpdateRole too short", i.UpdateRole(ctx, e.acct, "web", nil, ptr(60)), "ValidationError", "greater than or equal to 3600")
	wantErr(t, "UpdateAssumeRolePolicy malformed", i.UpdateAssumeRolePolicy(ctx, e.acct, "web", "{"), "MalformedPolicyDocument")
	must(t, "TagEntity role", i.TagEntity(ctx, e.acct, iamd.RoleEntity("web"), []iamd.Tag{{Key: "env", Value: "prod"}}))

	// Instance profiles hold one role, and a role in one cannot be deleted.
	p, err := i.CreateInstanceProfile(ctx, e.acct, "web-profile", "", nil)
	must(t, "CreateInstanceProfile", err)
	if !strings.HasPrefix(p.InstanceProfileID, "AIPA") || p.ARN != "arn:aws:iam::"+e.acct+":instance-profile/web-profile" {
		t.Fatalf("profile %+v", p)
	}
	must(t, "AddRoleToInstanceProfile", i.AddRoleToInstanceProfile(ctx, e.acct, "web-profile", "web"))
	_, err = i.CreateRole(ctx, e.acct, iamd.CreateRoleInput{RoleName: "db", AssumeRolePolicyDocument: trustEC2})
	must(t, "CreateRole db", err)
	wantErr(t, "second role", i.AddRoleToInstanceProfile(ctx, e.acct, "web-profile", "db"), "LimitExceeded", "InstanceSessionsPerInstanceProfile: 1")
	wantErr(t, "DeleteRole in profile", i.DeleteRole(ctx, e.acct, "web"), "DeleteConflict", "must remove roles from instance profile first")
	wantErr(t, "DeleteInstanceProfile with role", i.DeleteInstanceProfile(ctx, e.acct, "web-profile"), "DeleteConflict", "must remove roles from instance profile first")
	profiles, err := i.ListInstanceProfilesForRole(ctx, e.acct, "web")
	must(t, "ListInstanceProfilesForRole", err)
	if len(profiles) != 1 || profiles[0].InstanceProfileName != "web-profile" {
		t.Fatalf("profiles of web = %+v", profiles)
	}
	must(t, "RemoveRoleFromInstanceProfile", i.RemoveRoleFromInstanceProfile(ctx, e.acct, "web-profile", "web"))
	must(t, "PutRolePolicy", i.PutInlinePolicy(ctx, e.acct, iamd.RoleEntity("web"), "p", allowEC2))
	wantErr(t, "DeleteRole with policy", i.DeleteRole(ctx, e.acct, "web"), "DeleteConflict", "must delete policies first")
	must(t, "DeleteRolePolicy", i.DeleteInlinePolicy(ctx, e.acct, iamd.RoleEntity("web"), "p"))
	must(t, "DeleteRole", i.DeleteRole(ctx, e.acct, "web"))
	must(t, "DeleteInstanceProfile", i.DeleteInstanceProfile(ctx, e.acct, "web-profile"))
	_, err = i.GetInstanceProfile(ctx, e.acct, "web-profile")
	wantErr(t, "deleted profile", err, "NoSuchEntity", "Instance Profile web-profile cannot be found.")
}

func ptr[T any](v T) *T { return &v }

func TestIAMManagedPolicies(t *testing.T) {
	t.Parallel()
	e := newIAMEnv(t)
	ctx, i := e.ctx, e.iam
	p, err := i.CreatePolicy(ctx, e.acct, iamd.CreatePolicyInput{PolicyName: "ec2-read", Path: "/lab/", Document: allowEC2, Description: "reads"})
	must(t, "CreatePolicy", err)
	arn := "arn:aws:iam::" + e.acct + ":policy/lab/ec2-read"
	if p.ARN != arn || !strings.HasPrefix(p.PolicyID, "ANPA") || p.DefaultVersionID != "v1" {
		t.Fatalf("policy %+v", p)
	}
	_, err = i.CreatePolicy(ctx, e.acct, iamd.CreatePolicyInput{PolicyName: "EC2-READ", Document: allowEC2})
	wantErr(t, "duplicate name on another path", err, "EntityAlreadyExists", "A policy called EC2-READ already exists.")
	_, err = i.CreatePolicy(ctx, e.acct, iamd.CreatePolicyInput{PolicyName: "bad", Document: `{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Action":"ec2:*"}]}`})
	wantErr(t, "malformed", err, "MalformedPolicyDocument")

	// Versions: at most five, exactly one default.
	for n := 2; n <= 5; n++ {
		v, err := i.CreatePolicyVersion(ctx, e.acct, arn, allowAll, n == 3)
		must(t, "CreatePolicyVersion", err)
		if v.VersionID != fmt.Sprint("v", n) {
			t.Fatalf("version %d is %s", n, v.VersionID)
		}
	}
	_, err = i.CreatePolicyVersion(ctx, e.acct, arn, allowAll, false)
	wantErr(t, "sixth version", err, "LimitExceeded", "up to 5 versions")
	got, err := i.GetPolicy(ctx, e.acct, arn)
	must(t, "GetPolicy", err)
	if got.DefaultVersionID != "v3" {
		t.Fatalf("default = %s, want v3", got.DefaultVersionID)
	}
	wantErr(t, "delete default version", i.DeletePolicyVersion(ctx, e.acct, arn, "v3"), "DeleteConflict", "Cannot delete the default version of a policy.")
	must(t, "DeletePolicyVersion v2", i.DeletePolicyVersion(ctx, e.acct, arn, "v2"))
	v6, err := i.CreatePolicyVersion(ctx, e.acct, arn, allowEC2, false)
	must(t, "CreatePolicyVersion after delete", err)
	if v6.VersionID != "v6" {
		t.Fatalf("version ids are never reused: got %s, want v6", v6.VersionID)
	}
	versions, err := i.ListPolicyVersions(ctx, e.acct, arn)
	must(t, "ListPolicyVersions", err)
	var ids []string
	defaults := 0
	for _, v := range versions {
		ids = append(ids, v.VersionID)
		if v.IsDefaultVersion {
			defaults++
		}
	}
	if strings.Join(ids, ",") != "v6,v5,v4,v3,v1" || defaults != 1 {
		t.Fatalf("versions = %v with %d defaults", ids, defaults)
	}
	must(t, "SetDefaultPolicyVersion", i.SetDefaultPolicyVersion(ctx, e.acct, arn, "v1"))
	wantErr(t, "SetDefault unknown", i.SetDefaultPolicyVersion(ctx, e.acct, arn, "v2"), "NoSuchEntity", "version v2 does not exist")
	v1, err := i.GetPolicyVersion(ctx, e.acct, arn, "v1")
	must(t, "GetPolicyVersion", err)
	if !v1.IsDefaultVersion || v1.Document != allowEC2 {
		t.Fatalf("v1 = %+v", v1)
	}
	_, doc, err := i.GetManagedPolicyDocument(ctx, e.acct, arn)
	must(t, "GetManagedPolicyDocument", err)
	if doc != allowEC2 {
		t.Fatalf("document in force = %s", doc)
	}

	// Attachment counts, and no deleting while attached or versioned.
	_, err = i.CreateUser(ctx, e.acct, iamd.CreateUserInput{UserName: "alice"})
	must(t, "CreateUser", err)
	must(t, "AttachPolicy", i.AttachPolicy(ctx, e.acct, iamd.UserEntity("alice"), arn))
	must(t, "AttachPolicy again", i.AttachPolicy(ctx, e.acct, iamd.UserEntity("alice"), arn))
	got, _ = i.GetPolicy(ctx, e.acct, arn)
	if got.AttachmentCount != 1 {
		t.Fatalf("AttachmentCount = %d", got.AttachmentCount)
	}
	wantErr(t, "DeletePolicy attached", i.DeletePolicy(ctx, e.acct, arn), "DeleteConflict", "Cannot delete a policy attached to entities.")
	must(t, "DetachPolicy", i.DetachPolicy(ctx, e.acct, iamd.UserEntity("alice"), arn))
	wantErr(t, "DetachPolicy again", i.DetachPolicy(ctx, e.acct, iamd.UserEntity("alice"), arn), "NoSuchEntity")
	wantErr(t, "DeletePolicy with versions", i.DeletePolicy(ctx, e.acct, arn), "DeleteConflict", "more than one version")
	for _, v := range []string{"v3", "v4", "v5", "v6"} {
		must(t, "DeletePolicyVersion "+v, i.DeletePolicyVersion(ctx, e.acct, arn, v))
	}
	must(t, "DeletePolicy", i.DeletePolicy(ctx, e.acct, arn))
	_, err = i.GetPolicy(ctx, e.acct, arn)
	wantErr(t, "deleted policy", err, "NoSuchEntity", "was not found")
	wantErr(t, "attach deleted", i.AttachPolicy(ctx, e.acct, iamd.UserEntity("alice"), arn), "NoSuchEntity", "does not exist or is not attachable")
	wantErr(t, "bad ARN", i.AttachPolicy(ctx, e.acct, iamd.UserEntity("alice"), "arn:aws:iam::123:nopolicy/x"), "InvalidInput", "is not valid")
}

func TestIAMAWSManagedPolicies(t *testing.T) {
	t.Parallel()
	e := newIAMEnv(t)
	ctx, i := e.ctx, e.iam
	names := iamd.AWSManagedPolicyNames()
	want := []string{"AdministratorAccess", "AmazonEC2FullAccess", "AmazonEC2ReadOnlyAccess", "AmazonVPCFullAccess",
		"IAMFullAccess", "IAMReadOnlyAccess", "PowerUserAccess", "ReadOnlyAccess"}
	if strings.Join(names, ",") != strings.Join(want, ",") {
		t.Fatalf("AWS-managed policies = %v", names)
	}
	// Every built-in document is a valid identity policy.
	for _, n := range names {
		p, doc, err := i.GetManagedPolicyDocument(ctx, e.acct, "arn:aws:iam::aws:policy/"+n)
		must(t, "GetManagedPolicyDocument "+n, err)
		if p == nil || doc == "" || len(p.Statements) == 0 {
			t.Fatalf("%s: empty policy", n)
		}
	}
	_, err := i.GetPolicy(ctx, e.acct, "arn:aws:iam::aws:policy/NoSuchThing")
	wantErr(t, "unknown AWS policy", err, "NoSuchEntity", "arn:aws:iam::aws:policy/NoSuchThing was not found")
	wantErr(t, "delete AWS policy", i.DeletePolicy(ctx, e.acct, "arn:aws:iam::aws:policy/ReadOnlyAccess"), "InvalidInput")
	_, err = i.CreatePolicyVersion(ctx, e.acct, "arn:aws:iam::aws:policy/ReadOnlyAccess", allowAll, true)
	wantErr(t, "version AWS policy", err, "InvalidInput")

	_, err = i.CreateRole(ctx, e.acct, iamd.CreateRoleInput{RoleName: "r", AssumeRolePolicyDocument: trustEC2})
	must(t, "CreateRole", err)
	must(t, "attach", i.AttachPolicy(ctx, e.acct, iamd.RoleEntity("r"), "arn:aws:iam::aws:policy/ReadOnlyAccess"))
	_, err = i.CreatePolicy(ctx, e.acct, iamd.CreatePolicyInput{PolicyName: "mine", Document: allowEC2})
	must(t, "CreatePolicy", err)

	count := func(in iamd.ListPoliciesInput) []string {
		t.Helper()
		ps, err := i.ListPolicies(ctx, e.acct, in)
		must(t, "ListPolicies", err)
		var out []string
		for _, p := range ps {
			out = append(out, p.PolicyName)
		}
		return out
	}
	if got := count(iamd.ListPoliciesInput{}); len(got) != 9 {
		t.Errorf("scope All = %v", got)
	}
	if got := count(iamd.ListPoliciesInput{Scope: iamd.ScopeLocal}); fmt.Sprint(got) != "[mine]" {
		t.Errorf("scope Local = %v", got)
	}
	if got := count(iamd.ListPoliciesInput{Scope: iamd.ScopeAWS, OnlyAttached: true}); fmt.Sprint(got) != "[ReadOnlyAccess]" {
		t.Errorf("AWS attached = %v", got)
	}
	// Counts are per account: another account sees the policy unattached.
	other := e.newAccount(t)
	p, err := i.GetPolicy(ctx, other, "arn:aws:iam::aws:policy/ReadOnlyAccess")
	must(t, "GetPolicy other account", err)
	if p.AttachmentCount != 0 {
		t.Errorf("other account sees AttachmentCount %d", p.AttachmentCount)
	}
	p, _ = i.GetPolicy(ctx, e.acct, "arn:aws:iam::aws:policy/ReadOnlyAccess")
	if p.AttachmentCount != 1 {
		t.Errorf("AttachmentCount = %d, want 1", p.AttachmentCount)
	}
	users, groups, roles, err := i.PolicyEntities(ctx, e.acct, "arn:aws:iam::aws:policy/ReadOnlyAccess", "")
	must(t, "PolicyEntities", err)
	if len(users) != 0 || len(groups) != 0 || len(roles) != 1 || roles[0].RoleName != "r" {
		t.Errorf("PolicyEntities = %v %v %v", users, groups, roles)
	}
	_, _, roles, _ = i.PolicyEntities(ctx, e.acct, "arn:aws:iam::aws:policy/ReadOnlyAccess", iamd.UsagePermissionsBoundary)
	if len(roles) != 0 {
		t.Errorf("boundary users of ReadOnlyAccess = %v", roles)
	}

	// At most ten policies per entity.
	for n := range 9 {
		_, err := i.CreatePolicy(ctx, e.acct, iamd.CreatePolicyInput{PolicyName: fmt.Sprint("p", n), Document: allowEC2})
		must(t, "CreatePolicy", err)
		must(t, "AttachPolicy", i.AttachPolicy(ctx, e.acct, iamd.RoleEntity("r"), fmt.Sprintf("arn:aws:iam::%s:policy/p%d", e.acct, n)))
	}
	wantErr(t, "eleventh policy", i.AttachPolicy(ctx, e.acct, iamd.RoleEntity("r"), "arn:aws:iam::"+e.acct+":policy/mine"), "LimitExceeded", "PoliciesPerRole: 10")
}

func TestIAMInlinePolicies(t *testing.T) {
	t.Parallel()
	e := newIAMEnv(t)
	ctx, i := e.ctx, e.iam
	_, err := i.CreateUser(ctx, e.acct, iamd.CreateUserInput{UserName: "alice"})
	must(t, "CreateUser", err)
	u := iamd.UserEntity("alice")
	must(t, "put b", i.PutInlinePolicy(ctx, e.acct, u, "b", allowEC2))
	must(t, "put a", i.PutInlinePolicy(ctx, e.acct, u, "a", allowAll))
	must(t, "replace B", i.PutInlinePolicy(ctx, e.acct, u, "B", allowAll))
	names, err := i.ListInlinePolicies(ctx, e.acct, u)
	must(t, "ListInlinePolicies", err)
	if fmt.Sprint(names) != "[a B]" {
		t.Fatalf("inline policies = %v", names)
	}
	ip, owner, err := i.GetInlinePolicy(ctx, e.acct, iamd.UserEntity("ALICE"), "b")
	must(t, "GetInlinePolicy", err)
	if ip.Document != allowAll || owner != "alice" {
		t.Fatalf("GetInlinePolicy = %+v of %s", ip, owner)
	}
	_, _, err = i.GetInlinePolicy(ctx, e.acct, u, "c")
	wantErr(t, "missing inline", err, "NoSuchEntity", "The user policy with name c cannot be found.")
	err = i.PutInlinePolicy(ctx, e.acct, u, "bad", `{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Principal":"*","Action":"*","Resource":"*"}]}`)
	wantErr(t, "Principal in identity policy", err, "MalformedPolicyDocument")

	// The inline policies of a user total at most 2048 characters.
	var actions []string
	for n := range 120 {
		actions = append(actions, fmt.Sprintf(`"ec2:DescribeThing%03d"`, n))
	}
	big := `{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Action":[` + strings.Join(actions, ",") + `],"Resource":"*"}]}`
	wantErr(t, "too big", i.PutInlinePolicy(ctx, e.acct, u, "big", big), "LimitExceeded", "Maximum policy size of 2048 bytes exceeded for user alice")
	// A role allows 10240.
	_, err = i.CreateRole(ctx, e.acct, iamd.CreateRoleInput{RoleName: "r", AssumeRolePolicyDocument: trustEC2})
	must(t, "CreateRole", err)
	must(t, "big role policy", i.PutInlinePolicy(ctx, e.acct, iamd.RoleEntity("r"), "big", big))
}

func TestIAMPrincipalPolicies(t *testing.T) {
	t.Parallel()
	e := newIAMEnv(t)
	ctx, i := e.ctx, e.iam
	_, err := i.CreatePolicy(ctx, e.acct, iamd.CreatePolicyInput{PolicyName: "bound", Document: allowEC2})
	must(t, "CreatePolicy", err)
	boundARN := "arn:aws:iam::" + e.acct + ":policy/bound"
	_, err = i.CreateUser(ctx, e.acct, iamd.CreateUserInput{UserName: "alice", Path: "/eng/", PermissionsBoundary: boundARN,
		Tags: []iamd.Tag{{Key: "team", Value: "red"}}})
	must(t, "CreateUser", err)
	_, err = i.CreateUser(ctx, e.acct, iamd.CreateUserInput{UserName: "bob", PermissionsBoundary: "arn:aws:iam::" + e.acct + ":policy/none"})
	wantErr(t, "boundary that does not exist", err, "NoSuchEntity", "does not exist or is not attachable")
	_, err = i.CreateGroup(ctx, e.acct, "devs", "")
	must(t, "CreateGroup", err)
	must(t, "AddUserToGroup", i.AddUserToGroup(ctx, e.acct, "devs", "alice"))
	must(t, "user inline", i.PutInlinePolicy(ctx, e.acct, iamd.UserEntity("alice"), "mine", allowEC2))
	must(t, "user attached", i.AttachPolicy(ctx, e.acct, iamd.UserEntity("alice"), "arn:aws:iam::aws:policy/IAMReadOnlyAccess"))
	must(t, "group inline", i.PutInlinePolicy(ctx, e.acct, iamd.GroupEntity("devs"), "team", allowAll))
	must(t, "group attached", i.AttachPolicy(ctx, e.acct, iamd.GroupEntity("devs"), "arn:aws:iam::aws:policy/ReadOnlyAccess"))

	pp, err := i.UserPolicies(ctx, e.acct, "alice")
	must(t, "UserPolicies", err)
	var ids []string
	for _, np := range pp.Identity {
		if np.Source.Type != policy.SourceIAMPolicy || np.Policy == nil {
			t.Errorf("source %+v", np.Source)
		}
		ids = append(ids, np.Source.ID)
	}
	want := "user/alice/mine arn:aws:iam::aws:policy/IAMReadOnlyAccess group/devs/team arn:aws:iam::aws:policy/ReadOnlyAccess"
	if strings.Join(ids, " ") != want {
		t.Fatalf("identity sources = %v, want %s", ids, want)
	}
	if pp.Boundary == nil || pp.Boundary.Source.Type != policy.SourceBoundary || pp.Boundary.Source.ID != boundARN {
		t.Fatalf("boundary = %+v", pp.Boundary)
	}
	if pp.ARN != "arn:aws:iam::"+e.acct+":user/eng/alice" || pp.Path != "/eng/" || !strings.HasPrefix(pp.ID, "AIDA") || pp.Tags["team"] != "red" {
		t.Fatalf("principal = %+v", pp)
	}
	// A boundary in use blocks the policy's deletion.
	wantErr(t, "delete boundary policy", i.DeletePolicy(ctx, e.acct, boundARN), "DeleteConflict")
	must(t, "DeletePermissionsBoundary", i.DeletePermissionsBoundary(ctx, e.acct, iamd.UserEntity("alice")))
	pp, _ = i.UserPolicies(ctx, e.acct, "alice")
	if pp.Boundary != nil {
		t.Fatalf("boundary after delete = %+v", pp.Boundary)
	}

	_, err = i.CreateRole(ctx, e.acct, iamd.CreateRoleInput{RoleName: "r", AssumeRolePolicyDocument: trustEC2})
	must(t, "CreateRole", err)
	must(t, "role inline", i.PutInlinePolicy(ctx, e.acct, iamd.RoleEntity("r"), "x", allowEC2))
	must(t, "role boundary", i.PutPermissionsBoundary(ctx, e.acct, iamd.RoleEntity("r"), "arn:aws:iam::aws:policy/PowerUserAccess"))
	rp, err := i.RolePolicies(ctx, e.acct, "R")
	must(t, "RolePolicies", err)
	if len(rp.Identity) != 1 || rp.Identity[0].Source.ID != "role/r/x" || rp.Boundary == nil || rp.Boundary.Source.ID != "arn:aws:iam::aws:policy/PowerUserAccess" || !strings.HasPrefix(rp.ID, "AROA") {
		t.Fatalf("role policies = %+v", rp)
	}
	wantErr(t, "group boundary", i.PutPermissionsBoundary(ctx, e.acct, iamd.GroupEntity("devs"), boundARN), "InvalidInput")
}

// Accounts do not see each other's entities or policies.
func TestIAMAccountIsolation(t *testing.T) {
	t.Parallel()
	e := newIAMEnv(t)
	ctx, i := e.ctx, e.iam
	other := e.newAccount(t)
	_, err := i.CreateUser(ctx, e.acct, iamd.CreateUserInput{UserName: "alice"})
	must(t, "CreateUser", err)
	_, err = i.CreatePolicy(ctx, e.acct, iamd.CreatePolicyInput{PolicyName: "p", Document: allowEC2})
	must(t, "CreatePolicy", err)

	_, err = i.GetUser(ctx, other, "alice")
	wantErr(t, "other account's user", err, "NoSuchEntity")
	_, err = i.CreateUser(ctx, other, iamd.CreateUserInput{UserName: "alice"})
	must(t, "same name in another account", err)
	arn := "arn:aws:iam::" + e.acct + ":policy/p"
	wantErr(t, "attach other account's policy", i.AttachPolicy(ctx, other, iamd.UserEntity("alice"), arn), "NoSuchEntity")
	_, err = i.GetPolicy(ctx, other, arn)
	wantErr(t, "get other account's policy", err, "NoSuchEntity")
	users, err := i.ListUsers(ctx, other, "")
	must(t, "ListUsers", err)
	if len(users) != 1 || users[0].ARN != "arn:aws:iam::"+other+":user/alice" {
		t.Fatalf("other account's users = %+v", users)
	}
}

// A policy is never deleted while attached, however attach and delete
// interleave: the transaction that loses the race fails and re-checks.
func TestIAMConcurrentAttachAndDelete(t *testing.T) {
	t.Parallel()
	e := newIAMEnv(t)
	ctx, i := e.ctx, e.iam
	_, err := i.CreateUser(ctx, e.acct, iamd.CreateUserInput{UserName: "alice"})
	must(t, "CreateUser", err)
	for round := range 15 {
		name := fmt.Sprint("p", round)
		arn := "arn:aws:iam::" + e.acct + ":policy/" + name
		_, err := i.CreatePolicy(ctx, e.acct, iamd.CreatePolicyInput{PolicyName: name, Document: allowEC2})
		must(t, "CreatePolicy", err)
		var wg sync.WaitGroup
		var attachErr, deleteErr error
		wg.Add(2)
		go func() { defer wg.Done(); attachErr = i.AttachPolicy(ctx, e.acct, iamd.UserEntity("alice"), arn) }()
		go func() { defer wg.Done(); deleteErr = i.DeletePolicy(ctx, e.acct, arn) }()
		wg.Wait()
		switch {
		case attachErr == nil && deleteErr == nil:
			t.Fatalf("round %d: both attach and delete succeeded: alice holds a deleted policy", round)
		case attachErr == nil:
			wantErr(t, "delete after attach", deleteErr, "DeleteConflict")
			must(t, "DetachPolicy", i.DetachPolicy(ctx, e.acct, iamd.UserEntity("alice"), arn))
		case deleteErr == nil:
			wantErr(t, "attach after delete", attachErr, "NoSuchEntity")
		default:
			t.Fatalf("round %d: attach %v, delete %v", round, attachErr, deleteErr)
		}
	}
	u, err := i.GetUser(ctx, e.acct, "alice")
	must(t, "GetUser", err)
	if len(u.Policies.Attached) != 0 {
		t.Fatalf("alice still has %v attached", u.Policies.Attached)
	}
}
