package api

import (
	"context"
	"net/url"
	"sort"
	"strings"

	"github.com/labcloud/labcloud/iamd/policy"
)

// actionSpec says how IAM authorizes one action: the resource ARNs AWS
// checks it on (each must be allowed) and, for actions governed by a
// resource-based policy, how to load that policy.
type actionSpec struct {
	resources func(c *Call, p url.Values) []string
	// alsoNeeds lists further actions the same call must be allowed, e.g.
	// sts:TagSession when AssumeRole passes session tags.
	alsoNeeds      func(c *Call, p url.Values) []string
	resourcePolicy func(ctx context.Context, a *IAMAuthorizer, c *Call, p url.Values) (*policy.NamedPolicy, string, error)
	// alsoOn lists further actions on other resources that need state to
	// find, each checked with its own extra condition keys: iam:PassRole
	// on the role of the instance profile RunInstances names.
	alsoOn func(ctx context.Context, a *IAMAuthorizer, c *Call, p url.Values) ([]actionOn, error)
}

// actionOn is one further action a call needs, on its own resources.
type actionOn struct {
	action    string
	resources []string
	// context adds condition keys for this check only
	// (iam:PassedToService for iam:PassRole).
	context map[string]string
}

// actionTable maps every implemented action ("service:Action") to its
// authorization spec. TestEveryActionIsInTheAuthorizationTable fails when
// an action is registered without an entry here.
var actionTable = map[string]actionSpec{}

func init() {
	all := func(*Call, url.Values) []string { return []string{"*"} }
	for _, a := range []string{"DescribeRegions", "DescribeAvailabilityZones", "DescribeAccountAttributes"} {
		actionTable["ec2:"+a] = actionSpec{resources: all}
	}

	ec2Tables(all)
	ec2IAMProfileTables(all)
	oidcActionTable()
	webIdentityActionTable()
	vpcSecurityTables(all)
	vpcTables(all)
	ebsTables(all)

	actionTable["sts:DecodeAuthorizationMessage"] = actionSpec{resources: all}
	actionTable["sts:AssumeRole"] = actionSpec{
		resources:      func(_ *Call, p url.Values) []string { return []string{p.Get("RoleArn")} },
		resourcePolicy: trustPolicyOf,
		alsoNeeds: func(c *Call, p url.Values) []string {
			var more []string
			if len(requestTags(ServiceSTS, p)) > 0 {
				more = append(more, "sts:TagSession") // AWS requires it for session tags
			}
			if p.Get("SourceIdentity") != "" {
				more = append(more, "sts:SetSourceIdentity")
			}
			return more
		},
	}

	iam := func(kind, nameParam string, actions ...string) {
		for _, a := range actions {
			actionTable["iam:"+a] = actionSpec{resources: func(c *Call, p url.Values) []string {
				name := p.Get(nameParam)
				if name == "" && kind == "user" && c.Principal.UserName != "" {
					name = c.Principal.UserName // "my own user" actions
				}
				return []string{iamARN(c.Principal.AccountID, kind, p.Get("Path"), name)}
			}}
		}
	}
	iam("user", "UserName", "CreateUser", "GetUser", "DeleteUser", "UpdateUser", "TagUser", "UntagUser",
		"ListUserTags", "ListGroupsForUser", "AttachUserPolicy", "DetachUserPolicy", "ListAttachedUserPolicies",
		"PutUserPolicy", "GetUserPolicy", "DeleteUserPolicy", "ListUserPolicies", "CreateAccessKey",
		"ListAccessKeys", "UpdateAccessKey", "DeleteAccessKey", "PutUserPermissionsBoundary",
		"DeleteUserPermissionsBoundary")
	iam("group", "GroupName", "CreateGroup", "GetGroup", "DeleteGroup", "AddUserToGroup", "RemoveUserFromGroup",
		"AttachGroupPolicy", "DetachGroupPolicy", "ListAttachedGroupPolicies", "PutGroupPolicy", "GetGroupPolicy",
		"DeleteGroupPolicy", "ListGroupPolicies")
	iam("role", "RoleName", "CreateRole", "GetRole", "DeleteRole", "UpdateAssumeRolePolicy", "UpdateRole",
		"TagRole", "UntagRole", "ListRoleTags", "AttachRolePolicy", "DetachRolePolicy", "ListAttachedRolePolicies",
		"PutRolePolicy", "GetRolePolicy", "DeleteRolePolicy", "ListRolePolicies", "PutRolePermissionsBoundary",
		"DeleteRolePermissionsBoundary", "ListInstanceProfilesForRole")
	iam("instance-profile", "InstanceProfileName", "CreateInstanceProfile", "GetInstanceProfile",
		"DeleteInstanceProfile", "AddRoleToInstanceProfile", "RemoveRoleFromInstanceProfile")
	iam("policy", "PolicyName", "CreatePolicy")
	for _, a := range []string{"GetPolicy", "DeletePolicy", "CreatePolicyVersion", "GetPolicyVersion",
		"ListPolicyVersions", "SetDefaultPolicyVersion", "DeletePolicyVersion", "ListEntitiesForPolicy"} {
		actionTable["iam:"+a] = actionSpec{resources: func(_ *Call, p url.Values) []string { return []string{p.Get("PolicyArn")} }}
	}
	list := func(action, kind string) {
		actionTable["iam:"+action] = actionSpec{resources: func(c *Call, p url.Values) []string {
			return []string{"arn:aws:iam::" + c.Principal.AccountID + ":" + kind + "/"}
		}}
	}
	list("ListUsers", "user")
	list("ListGroups", "group")
	list("ListRoles", "role")
	list("ListPolicies", "policy")
	list("ListInstanceProfiles", "instance-profile")
	actionTable["iam:GetAccountAuthorizationDetails"] = actionSpec{resources: all}
	actionTable["iam:SimulateCustomPolicy"] = actionSpec{resources: all}
	actionTable["iam:SimulatePrincipalPolicy"] = actionSpec{resources: func(_ *Call, p url.Values) []string {
		return []string{p.Get("PolicySourceArn")}
	}}
}

// iamARN is the ARN of an IAM entity; path defaults to "/".
func iamARN(account, kind, path, name string) string {
	if path == "" {
		path = "/"
	}
	if !strings.HasPrefix(path, "/") {
		path = "/" + path
	}
	if !strings.HasSuffix(path, "/") {
		path += "/"
	}
	return "arn:aws:iam::" + account + ":" + kind + path + name
}

// trustPolicyOf loads the trust policy of the role that AssumeRole names,
// which may live in another account.
func trustPolicyOf(ctx context.Context, a *IAMAuthorizer, c *Call, p url.Values) (*policy.NamedPolicy, string, error) {
	account, name, err := parseRoleARN(p.Get("RoleArn"))
	if err != nil {
		return nil, "", err
	}
	role, err := a.IAM.GetRole(ctx, account, name)
	if err != nil {
		// An unknown role is reported as a plain denial, as AWS does, so
		// callers cannot probe other accounts for role names.
		return &policy.NamedPolicy{Source: policy.Source{Type: policy.SourceResourcePolicy, ID: p.Get("RoleArn")}, Policy: trustsNobody}, account, nil
	}
	doc, err := policy.Parse(role.AssumeRolePolicyDocument, policy.KindTrust)
	if err != nil {
		return nil, "", err
	}
	return &policy.NamedPolicy{Source: policy.Source{Type: policy.SourceResourcePolicy, ID: role.ARN, Name: name}, Policy: doc}, account, nil
}

// trustsNobody stands in for the trust policy of a role that does not
// exist: it allows only a service principal that no caller can be.
var trustsNobody = func() *policy.Policy {
	p, err := policy.Parse(`{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Principal":{"Service":"nobody.labcloud.invalid"},"Action":"sts:AssumeRole"}]}`, policy.KindTrust)
	if err != nil {
		panic(err)
	}
	return p
}()

// ec2Tables adds the key pair, image and tag actions: resources as the EC2
// service authorization reference names them.
func ec2Tables(all func(*Call, url.Values) []string) {
	for _, a := range []string{"DescribeKeyPairs", "DescribeImages", "DescribeTags"} {
		actionTable["ec2:"+a] = actionSpec{resources: all}
	}
	keyPair := func(c *Call, p url.Values) []string {
		name := p.Get("KeyName")
		if name == "" {
			name = p.Get("KeyPairId")
		}
		if name == "" {
			name = "*"
		}
		return []string{ec2ARN(c, c.Principal.AccountID, "key-pair/"+name)}
	}
	for _, a := range []string{"CreateKeyPair", "ImportKeyPair", "DeleteKeyPair"} {
		actionTable["ec2:"+a] = actionSpec{resources: keyPair}
	}
	image := func(c *Call, p url.Values) []string {
		id := p.Get("ImageId")
		if id == "" {
			id = "*"
		}
		return []string{ec2ARN(c, "", "image/"+id)}
	}
	actionTable["ec2:RegisterImage"] = actionSpec{resources: image}
	actionTable["ec2:DeregisterImage"] = actionSpec{resources: image}
	for _, a := range []string{"CreateImage", "ModifyImageAttribute", "DescribeImageAttribute", "ResetImageAttribute"} {
		actionTable["ec2:"+a] = actionSpec{resources: image}
	}
	tagged := func(c *Call, p url.Values) []string {
		var out []string
		for k, vs := range p {
			if !strings.HasPrefix(strings.ToLower(k), "resourceid.") {
				continue
			}
			for _, id := range vs {
				out = append(out, ec2ResourceARN(c, id))
			}
		}
		if len(out) == 0 {
			out = []string{ec2ARN(c, c.Principal.AccountID, "*")}
		}
		sort.Strings(out)
		return out
	}
	actionTable["ec2:CreateTags"] = actionSpec{resources: tagged}
	actionTable["ec2:DeleteTags"] = actionSpec{resources: tagged}
}

// ec2ARN is arn:aws:ec2:<region>:<account>:<resource>; images have no
// account in their ARN.
func ec2ARN(c *Call, account, resource string) string {
	region := c.Region
	if region == "" {
		region = "*"
	}
	return "arn:aws:ec2:" + region + ":" + account + ":" + resource
}

// ec2ResourceARN is the ARN of a resource named by its id, with the
// resource type its id prefix stands for.
func ec2ResourceARN(c *Call, id string) string {
	kind, _, _ := strings.Cut(id, "-")
	types := map[string]string{"ami": "image", "key": "key-pair", "i": "instance", "vol": "volume", "snap": "snapshot",
		"vpc": "vpc", "subnet": "subnet", "sg": "security-group", "eni": "network-interface", "igw": "internet-gateway",
		"rtb": "route-table", "eipalloc": "elastic-ip", "acl": "network-acl", "sgr": "security-group-rule", "nat": "natgateway"}
	if t, ok := types[kind]; ok {
		if t == "image" {
			return ec2ARN(c, "", "image/"+id)
		}
		return ec2ARN(c, c.Principal.AccountID, t+"/"+id)
	}
	return ec2ARN(c, c.Principal.AccountID, "*/"+id)
}
