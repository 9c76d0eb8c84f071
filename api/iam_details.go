package api

import (
	"context"
	"slices"
	"strings"
	"time"

	"github.com/labcloud/labcloud/iamd"
)

// GetAccountAuthorizationDetailsInput is the IAM
// GetAccountAuthorizationDetails request. Filter picks entity kinds (all
// when empty).
type GetAccountAuthorizationDetailsInput struct {
	Filter []string `enumValues:"User,Role,Group,LocalManagedPolicy,AWSManagedPolicy"`
	PageInput
}

// GetAccountAuthorizationDetailsOutput is the IAM
// GetAccountAuthorizationDetails response: every user, group, role and
// managed policy of the account with their policies, documents
// URL-encoded. A page is over all four lists together.
type GetAccountAuthorizationDetailsOutput struct {
	UserDetailList  []UserDetail
	GroupDetailList []GroupDetail
	RoleDetailList  []RoleDetail
	Policies        []ManagedPolicyDetail
	PageOutput
}

// PolicyDetail is an inline policy with its (URL-encoded) document.
type PolicyDetail struct {
	PolicyName     string
	PolicyDocument string
}

// UserDetail is a user with everything attached to it.
type UserDetail struct {
	Path                    string
	UserName                string
	UserID                  string `locationName:"UserId"`
	Arn                     string
	CreateDate              time.Time
	UserPolicyList          []PolicyDetail
	GroupList               []string
	AttachedManagedPolicies []AttachedPolicy
	PermissionsBoundary     *AttachedPermissionsBoundary
	Tags                    []Tag
}

// GroupDetail is a group with its policies.
type GroupDetail struct {
	Path                    string
	GroupName               string
	GroupID                 string `locationName:"GroupId"`
	Arn                     string
	CreateDate              time.Time
	GroupPolicyList         []PolicyDetail
	AttachedManagedPolicies []AttachedPolicy
}

// RoleDetail is a role with its policies and instance profiles.
type RoleDetail struct {
	Path                     string
	RoleName                 string
	RoleID                   string `locationName:"RoleId"`
	Arn                      string
	CreateDate               time.Time
	AssumeRolePolicyDocument string
	InstanceProfileList      []IAMInstanceProfile
	RolePolicyList           []PolicyDetail
	AttachedManagedPolicies  []AttachedPolicy
	PermissionsBoundary      *AttachedPermissionsBoundary
	Tags                     []Tag
}

// ManagedPolicyDetail is a managed policy with all its versions.
type ManagedPolicyDetail struct {
	PolicyName                    string
	PolicyID                      string `locationName:"PolicyId"`
	Arn                           string
	Path                          string
	DefaultVersionID              string `locationName:"DefaultVersionId"`
	AttachmentCount               int32
	PermissionsBoundaryUsageCount int32
	IsAttachable                  bool
	Description                   string `omitempty:"true"`
	CreateDate                    time.Time
	UpdateDate                    time.Time
	PolicyVersionList             []IAMPolicyVersion
}

// detailItem is one entry of the combined list that a page runs over.
type detailItem struct {
	key    string
	user   *iamd.User
	group  *iamd.Group
	role   *iamd.Role
	policy *iamd.ManagedPolicy
}

func (s *Server) getAccountAuthorizationDetails(ctx context.Context, c *Call, in *GetAccountAuthorizationDetailsInput) (*GetAccountAuthorizationDetailsOutput, error) {
	acct := c.Principal.AccountID
	want := func(kind string) bool { return len(in.Filter) == 0 || slices.Contains(in.Filter, kind) }
	var items []detailItem
	if want("User") {
		users, err := s.opts.IAM.ListUsers(ctx, acct, "")
		if err != nil {
			return nil, err
		}
		for n := range users {
			items = append(items, detailItem{key: "1/" + lowerKey(users[n].UserName), user: &users[n]})
		}
	}
	if want("Group") {
		groups, err := s.opts.IAM.ListGroups(ctx, acct, "")
		if err != nil {
			return nil, err
		}
		for n := range groups {
			items = append(items, detailItem{key: "2/" + lowerKey(groups[n].GroupName), group: &groups[n]})
		}
	}
	var profiles []iamd.InstanceProfile
	if want("Role") {
		roles, err := s.opts.IAM.ListRoles(ctx, acct, "")
		if err != nil {
			return nil, err
		}
		for n := range roles {
			items = append(items, detailItem{key: "3/" + lowerKey(roles[n].RoleName), role: &roles[n]})
		}
		if profiles, err = s.opts.IAM.ListInstanceProfiles(ctx, acct, ""); err != nil {
			return nil, err
		}
	}
	var policies []iamd.ManagedPolicy
	if want("LocalManagedPolicy") {
		local, err := s.opts.IAM.ListPolicies(ctx, acct, iamd.ListPoliciesInput{Scope: iamd.ScopeLocal})
		if err != nil {
			return nil, err
		}
		policies = append(policies, local...)
	}
	if want("AWSManagedPolicy") {
		// AWS lists the AWS-managed policies the account uses, not all.
		used, err := s.opts.IAM.ListPolicies(ctx, acct, iamd.ListPoliciesInput{Scope: iamd.ScopeAWS, OnlyAttached: true})
		if err != nil {
			return nil, err
		}
		policies = append(policies, used...)
	}
	slices.SortFunc(policies, func(a, b iamd.ManagedPolicy) int { return strings.Compare(a.ARN, b.ARN) })
	for n := range policies {
		items = append(items, detailItem{key: "4/" + policies[n].ARN, policy: &policies[n]})
	}

	page, po, err := paginate(items, func(d detailItem) string { return d.key }, in.PageInput)
	if err != nil {
		return nil, err
	}
	out := &GetAccountAuthorizationDetailsOutput{
		UserDetailList: []UserDetail{}, GroupDetailList: []GroupDetail{}, RoleDetailList: []RoleDetail{},
		Policies: []ManagedPolicyDetail{}, PageOutput: po,
	}
	for _, d := range page {
		switch {
		case d.user != nil:
			u := d.user
			out.UserDetailList = append(out.UserDetailList, UserDetail{
				Path: u.Path, UserName: u.UserName, UserID: u.UserID, Arn: u.ARN, CreateDate: u.CreateDate,
				UserPolicyList: inlineDetails(u.Policies), GroupList: append([]string{}, u.Groups...),
				AttachedManagedPolicies: attachedDetails(u.Policies), PermissionsBoundary: boundaryOut(u.PermissionsBoundary),
				Tags: tagsOut(u.Tags),
			})
		case d.group != nil:
			g := d.group
			out.GroupDetailList = append(out.GroupDetailList, GroupDetail{
				Path: g.Path, GroupName: g.GroupName, GroupID: g.GroupID, Arn: g.ARN, CreateDate: g.CreateDate,
				GroupPolicyList: inlineDetails(g.Policies), AttachedManagedPolicies: attachedDetails(g.Policies),
			})
		case d.role != nil:
			r := d.role
			rd := RoleDetail{
				Path: r.Path, RoleName: r.RoleName, RoleID: r.RoleID, Arn: r.ARN, CreateDate: r.CreateDate,
				AssumeRolePolicyDocument: encodeDocument(r.AssumeRolePolicyDocument), InstanceProfileList: []IAMInstanceProfile{},
				RolePolicyList: inlineDetails(r.Policies), AttachedManagedPolicies: attachedDetails(r.Policies),
				PermissionsBoundary: boundaryOut(r.PermissionsBoundary), Tags: tagsOut(r.Tags),
			}
			for _, p := range profiles {
				if slices.ContainsFunc(p.Roles, func(n string) bool { return strings.EqualFold(n, r.RoleName) }) {
					po, err := s.profileOut(ctx, acct, p, false)
					if err != nil {
						return nil, err
					}
					rd.InstanceProfileList = append(rd.InstanceProfileList, po)
				}
			}
			out.RoleDetailList = append(out.RoleDetailList, rd)
		case d.policy != nil:
			p := d.policy
			md := ManagedPolicyDetail{
				PolicyName: p.PolicyName, PolicyID: p.PolicyID, Arn: p.ARN, Path: p.Path,
				DefaultVersionID: p.DefaultVersionID, AttachmentCount: int32(p.AttachmentCount),
				PermissionsBoundaryUsageCount: int32(p.PermissionsBoundaryUsageCount), IsAttachable: p.IsAttachable(),
				Description: p.Description, CreateDate: p.CreateDate, UpdateDate: p.UpdateDate,
				PolicyVersionList: []IAMPolicyVersion{},
			}
			for _, v := range p.Versions {
				v.IsDefaultVersion = v.VersionID == p.DefaultVersionID
				md.PolicyVersionList = append(md.PolicyVersionList, versionOut(v, true))
			}
			out.Policies = append(out.Policies, md)
		}
	}
	return out, nil
}

func inlineDetails(ep iamd.EntityPolicies) []PolicyDetail {
	out := []PolicyDetail{}
	for _, ip := range ep.Inline {
		out = append(out, PolicyDetail{PolicyName: ip.Name, PolicyDocument: encodeDocument(ip.Document)})
	}
	return out
}

func attachedDetails(ep iamd.EntityPolicies) []AttachedPolicy {
	ps := make([]iamd.AttachedPolicy, 0, len(ep.Attached))
	for _, arn := range ep.Attached {
		ps = append(ps, iamd.AttachedPolicy{PolicyName: arn[strings.LastIndex(arn, "/")+1:], PolicyARN: arn})
	}
	return attachedOut(ps)
}
