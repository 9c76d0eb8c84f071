package api

import (
	"context"
	"strings"

	"github.com/labcloud/labcloud/iamd"
)

// CreatePolicyInput is the IAM CreatePolicy request.
type CreatePolicyInput struct {
	PolicyName     string `required:"true"`
	Path           *string
	PolicyDocument string `required:"true"`
	Description    *string
	Tags           []Tag
}

// PolicyOutput is the IAM CreatePolicy and GetPolicy response.
type PolicyOutput struct {
	Policy IAMPolicy
}

func (s *Server) createPolicy(ctx context.Context, c *Call, in *CreatePolicyInput) (*PolicyOutput, error) {
	p, err := s.opts.IAM.CreatePolicy(ctx, c.Principal.AccountID, iamd.CreatePolicyInput{
		PolicyName: in.PolicyName, Path: str(in.Path), Document: in.PolicyDocument,
		Description: str(in.Description), Tags: tagsIn(in.Tags),
	})
	if err != nil {
		return nil, err
	}
	return &PolicyOutput{Policy: policyOut(p, true)}, nil
}

// PolicyArnInput is the request of the IAM actions that take only a
// policy ARN (GetPolicy, DeletePolicy).
type PolicyArnInput struct {
	PolicyArn string `required:"true"`
}

func (s *Server) getPolicy(ctx context.Context, c *Call, in *PolicyArnInput) (*PolicyOutput, error) {
	p, err := s.opts.IAM.GetPolicy(ctx, c.Principal.AccountID, in.PolicyArn)
	if err != nil {
		return nil, err
	}
	return &PolicyOutput{Policy: policyOut(p, true)}, nil
}

// ListPoliciesInput is the IAM ListPolicies request.
type ListPoliciesInput struct {
	Scope             *string `enumValues:"All,AWS,Local"`
	OnlyAttached      *bool
	PathPrefix        *string
	PolicyUsageFilter *string `enumValues:"PermissionsPolicy,PermissionsBoundary"`
	PageInput
}

// ListPoliciesOutput is the IAM ListPolicies response.
type ListPoliciesOutput struct {
	Policies []IAMPolicy
	PageOutput
}

func (s *Server) listPolicies(ctx context.Context, c *Call, in *ListPoliciesInput) (*ListPoliciesOutput, error) {
	ps, err := s.opts.IAM.ListPolicies(ctx, c.Principal.AccountID, iamd.ListPoliciesInput{
		Scope: str(in.Scope), OnlyAttached: in.OnlyAttached != nil && *in.OnlyAttached,
		PathPrefix: str(in.PathPrefix), UsageFilter: str(in.PolicyUsageFilter),
	})
	if err != nil {
		return nil, err
	}
	page, po, err := paginate(ps, func(p iamd.ManagedPolicy) string { return p.ARN }, in.PageInput)
	if err != nil {
		return nil, err
	}
	out := &ListPoliciesOutput{Policies: []IAMPolicy{}, PageOutput: po}
	for _, p := range page {
		out.Policies = append(out.Policies, policyOut(p, false))
	}
	return out, nil
}

func (s *Server) deletePolicy(ctx context.Context, c *Call, in *PolicyArnInput) (*NoOutput, error) {
	return noOutput, s.opts.IAM.DeletePolicy(ctx, c.Principal.AccountID, in.PolicyArn)
}

// CreatePolicyVersionInput is the IAM CreatePolicyVersion request.
type CreatePolicyVersionInput struct {
	PolicyArn      string `required:"true"`
	PolicyDocument string `required:"true"`
	SetAsDefault   *bool
}

// PolicyVersionOutput is the IAM CreatePolicyVersion and GetPolicyVersion
// response.
type PolicyVersionOutput struct {
	PolicyVersion IAMPolicyVersion
}

func (s *Server) createPolicyVersion(ctx context.Context, c *Call, in *CreatePolicyVersionInput) (*PolicyVersionOutput, error) {
	v, err := s.opts.IAM.CreatePolicyVersion(ctx, c.Principal.AccountID, in.PolicyArn, in.PolicyDocument,
		in.SetAsDefault != nil && *in.SetAsDefault)
	if err != nil {
		return nil, err
	}
	// AWS leaves the document out of CreatePolicyVersion's answer.
	return &PolicyVersionOutput{PolicyVersion: versionOut(v, false)}, nil
}

// PolicyVersionInput is the request of GetPolicyVersion,
// SetDefaultPolicyVersion and DeletePolicyVersion.
type PolicyVersionInput struct {
	PolicyArn string `required:"true"`
	VersionID string `locationName:"VersionId" required:"true"`
}

func (s *Server) getPolicyVersion(ctx context.Context, c *Call, in *PolicyVersionInput) (*PolicyVersionOutput, error) {
	v, err := s.opts.IAM.GetPolicyVersion(ctx, c.Principal.AccountID, in.PolicyArn, in.VersionID)
	if err != nil {
		return nil, err
	}
	return &PolicyVersionOutput{PolicyVersion: versionOut(v, true)}, nil
}

// ListPolicyVersionsInput is the IAM ListPolicyVersions request.
type ListPolicyVersionsInput struct {
	PolicyArn string `required:"true"`
	PageInput
}

// ListPolicyVersionsOutput is the IAM ListPolicyVersions response.
type ListPolicyVersionsOutput struct {
	Versions []IAMPolicyVersion
	PageOutput
}

func (s *Server) listPolicyVersions(ctx context.Context, c *Call, in *ListPolicyVersionsInput) (*ListPolicyVersionsOutput, error) {
	vs, err := s.opts.IAM.ListPolicyVersions(ctx, c.Principal.AccountID, in.PolicyArn)
	if err != nil {
		return nil, err
	}
	page, po, err := paginate(vs, func(v iamd.PolicyVersion) string { return v.VersionID }, in.PageInput)
	if err != nil {
		return nil, err
	}
	out := &ListPolicyVersionsOutput{Versions: []IAMPolicyVersion{}, PageOutput: po}
	for _, v := range page {
		out.Versions = append(out.Versions, versionOut(v, false))
	}
	return out, nil
}

func (s *Server) setDefaultPolicyVersion(ctx context.Context, c *Call, in *PolicyVersionInput) (*NoOutput, error) {
	return noOutput, s.opts.IAM.SetDefaultPolicyVersion(ctx, c.Principal.AccountID, in.PolicyArn, in.VersionID)
}

func (s *Server) deletePolicyVersion(ctx context.Context, c *Call, in *PolicyVersionInput) (*NoOutput, error) {
	return noOutput, s.opts.IAM.DeletePolicyVersion(ctx, c.Principal.AccountID, in.PolicyArn, in.VersionID)
}

// Attached managed policies. The User, Group and Role actions differ only
// in the entity they name.

// UserPolicyArnInput is the IAM AttachUserPolicy and DetachUserPolicy request.
type UserPolicyArnInput struct {
	UserName  string `required:"true"`
	PolicyArn string `required:"true"`
}

// GroupPolicyArnInput is the IAM AttachGroupPolicy and DetachGroupPolicy request.
type GroupPolicyArnInput struct {
	GroupName string `required:"true"`
	PolicyArn string `required:"true"`
}

// RolePolicyArnInput is the IAM AttachRolePolicy and DetachRolePolicy request.
type RolePolicyArnInput struct {
	RoleName  string `required:"true"`
	PolicyArn string `required:"true"`
}

func (s *Server) attachUserPolicy(ctx context.Context, c *Call, in *UserPolicyArnInput) (*NoOutput, error) {
	return noOutput, s.opts.IAM.AttachPolicy(ctx, c.Principal.AccountID, iamd.UserEntity(in.UserName), in.PolicyArn)
}

func (s *Server) detachUserPolicy(ctx context.Context, c *Call, in *UserPolicyArnInput) (*NoOutput, error) {
	return noOutput, s.opts.IAM.DetachPolicy(ctx, c.Principal.AccountID, iamd.UserEntity(in.UserName), in.PolicyArn)
}

func (s *Server) attachGroupPolicy(ctx context.Context, c *Call, in *GroupPolicyArnInput) (*NoOutput, error) {
	return noOutput, s.opts.IAM.AttachPolicy(ctx, c.Principal.AccountID, iamd.GroupEntity(in.GroupName), in.PolicyArn)
}

func (s *Server) detachGroupPolicy(ctx context.Context, c *Call, in *GroupPolicyArnInput) (*NoOutput, error) {
	return noOutput, s.opts.IAM.DetachPolicy(ctx, c.Principal.AccountID, iamd.GroupEntity(in.GroupName), in.PolicyArn)
}

func (s *Server) attachRolePolicy(ctx context.Context, c *Call, in *RolePolicyArnInput) (*NoOutput, error) {
	return noOutput, s.opts.IAM.AttachPolicy(ctx, c.Principal.AccountID, iamd.RoleEntity(in.RoleName), in.PolicyArn)
}

func (s *Server) detachRolePolicy(ctx context.Context, c *Call, in *RolePolicyArnInput) (*NoOutput, error) {
	return noOutput, s.opts.IAM.DetachPolicy(ctx, c.Principal.AccountID, iamd.RoleEntity(in.RoleName), in.PolicyArn)
}

// ListAttachedUserPoliciesInput is the IAM ListAttachedUserPolicies request.
type ListAttachedUserPoliciesInput struct {
	UserName   string `required:"true"`
	PathPrefix *string
	PageInput
}

// ListAttachedGroupPoliciesInput is the IAM ListAttachedGroupPolicies request.
type ListAttachedGroupPoliciesInput struct {
	GroupName  string `required:"true"`
	PathPrefix *string
	PageInput
}

// ListAttachedRolePoliciesInput is the IAM ListAttachedRolePolicies request.
type ListAttachedRolePoliciesInput struct {
	RoleName   string `required:"true"`
	PathPrefix *string
	PageInput
}

// ListAttachedPoliciesOutput is the response of the ListAttached*Policies
// actions.
type ListAttachedPoliciesOutput struct {
	AttachedPolicies []AttachedPolicy
	PageOutput
}

func (s *Server) listAttached(ctx context.Context, c *Call, e iamd.Entity, prefix *string, pi PageInput) (*ListAttachedPoliciesOutput, error) {
	ps, err := s.opts.IAM.ListAttachedPolicies(ctx, c.Principal.AccountID, e, str(prefix))
	if err != nil {
		return nil, err
	}
	page, po, err := paginate(ps, func(p iamd.AttachedPolicy) string { return p.PolicyARN }, pi)
	if err != nil {
		return nil, err
	}
	return &ListAttachedPoliciesOutput{AttachedPolicies: attachedOut(page), PageOutput: po}, nil
}

func (s *Server) listAttachedUserPolicies(ctx context.Context, c *Call, in *ListAttachedUserPoliciesInput) (*ListAttachedPoliciesOutput, error) {
	return s.listAttached(ctx, c, iamd.UserEntity(in.UserName), in.PathPrefix, in.PageInput)
}

func (s *Server) listAttachedGroupPolicies(ctx context.Context, c *Call, in *ListAttachedGroupPoliciesInput) (*ListAttachedPoliciesOutput, error) {
	return s.listAttached(ctx, c, iamd.GroupEntity(in.GroupName), in.PathPrefix, in.PageInput)
}

func (s *Server) listAttachedRolePolicies(ctx context.Context, c *Call, in *ListAttachedRolePoliciesInput) (*ListAttachedPoliciesOutput, error) {
	return s.listAttached(ctx, c, iamd.RoleEntity(in.RoleName), in.PathPrefix, in.PageInput)
}

// Inline policies.

// PutUserPolicyInput is the IAM PutUserPolicy request.
type PutUserPolicyInput struct {
	UserName       string `required:"true"`
	PolicyName     string `required:"true"`
	PolicyDocument string `required:"true"`
}

// PutGroupPolicyInput is the IAM PutGroupPolicy request.
type PutGroupPolicyInput struct {
	GroupName      string `required:"true"`
	PolicyName     string `required:"true"`
	PolicyDocument string `required:"true"`
}

// PutRolePolicyInput is the IAM PutRolePolicy request.
type PutRolePolicyInput struct {
	RoleName       string `required:"true"`
	PolicyName     string `required:"true"`
	PolicyDocument string `required:"true"`
}

func (s *Server) putUserPolicy(ctx context.Context, c *Call, in *PutUserPolicyInput) (*NoOutput, error) {
	return noOutput, s.opts.IAM.PutInlinePolicy(ctx, c.Principal.AccountID, iamd.UserEntity(in.UserName), in.PolicyName, in.PolicyDocument)
}

func (s *Server) putGroupPolicy(ctx context.Context, c *Call, in *PutGroupPolicyInput) (*NoOutput, error) {
	return noOutput, s.opts.IAM.PutInlinePolicy(ctx, c.Principal.AccountID, iamd.GroupEntity(in.GroupName), in.PolicyName, in.PolicyDocument)
}

func (s *Server) putRolePolicy(ctx context.Context, c *Call, in *PutRolePolicyInput) (*NoOutput, error) {
	return noOutput, s.opts.IAM.PutInlinePolicy(ctx, c.Principal.AccountID, iamd.RoleEntity(in.RoleName), in.PolicyName, in.PolicyDocument)
}

// UserPolicyNameInput is the IAM GetUserPolicy and DeleteUserPolicy request.
type UserPolicyNameInput struct {
	UserName   string `required:"true"`
	PolicyName string `required:"true"`
}

// GroupPolicyNameInput is the IAM GetGroupPolicy and DeleteGroupPolicy request.
type GroupPolicyNameInput struct {
	GroupName  string `required:"true"`
	PolicyName string `required:"true"`
}

// RolePolicyNameInput is the IAM GetRolePolicy and DeleteRolePolicy request.
type RolePolicyNameInput struct {
	RoleName   string `required:"true"`
	PolicyName string `required:"true"`
}

// GetUserPolicyOutput is the IAM GetUserPolicy response.
type GetUserPolicyOutput struct {
	UserName       string
	PolicyName     string
	PolicyDocument string
}

// GetGroupPolicyOutput is the IAM GetGroupPolicy response.
type GetGroupPolicyOutput struct {
	GroupName      string
	PolicyName     string
	PolicyDocument string
}

// GetRolePolicyOutput is the IAM GetRolePolicy response.
type GetRolePolicyOutput struct {
	RoleName       string
	PolicyName     string
	PolicyDocument string
}

func (s *Server) getUserPolicy(ctx context.Context, c *Call, in *UserPolicyNameInput) (*GetUserPolicyOutput, error) {
	ip, owner, err := s.inline(ctx, c, iamd.UserEntity(in.UserName), in.PolicyName)
	if err != nil {
		return nil, err
	}
	return &GetUserPolicyOutput{UserName: owner, PolicyName: ip.Name, PolicyDocument: encodeDocument(ip.Document)}, nil
}

func (s *Server) getGroupPolicy(ctx context.Context, c *Call, in *GroupPolicyNameInput) (*GetGroupPolicyOutput, error) {
	ip, owner, err := s.inline(ctx, c, iamd.GroupEntity(in.GroupName), in.PolicyName)
	if err != nil {
		return nil, err
	}
	return &GetGroupPolicyOutput{GroupName: owner, PolicyName: ip.Name, PolicyDocument: encodeDocument(ip.Document)}, nil
}

func (s *Server) getRolePolicy(ctx context.Context, c *Call, in *RolePolicyNameInput) (*GetRolePolicyOutput, error) {
	ip, owner, err := s.inline(ctx, c, iamd.RoleEntity(in.RoleName), in.PolicyName)
	if err != nil {
		return nil, err
	}
	return &GetRolePolicyOutput{RoleName: owner, PolicyName: ip.Name, PolicyDocument: encodeDocument(ip.Document)}, nil
}

// inline reads an inline policy and the entity's name as stored.
func (s *Server) inline(ctx context.Context, c *Call, e iamd.Entity, name string) (iamd.InlinePolicy, string, error) {
	return s.opts.IAM.GetInlinePolicy(ctx, c.Principal.AccountID, e, name)
}

func (s *Server) deleteUserPolicy(ctx context.Context, c *Call, in *UserPolicyNameInput) (*NoOutput, error) {
	return noOutput, s.opts.IAM.DeleteInlinePolicy(ctx, c.Principal.AccountID, iamd.UserEntity(in.UserName), in.PolicyName)
}

func (s *Server) deleteGroupPolicy(ctx context.Context, c *Call, in *GroupPolicyNameInput) (*NoOutput, error) {
	return noOutput, s.opts.IAM.DeleteInlinePolicy(ctx, c.Principal.AccountID, iamd.GroupEntity(in.GroupName), in.PolicyName)
}

func (s *Server) deleteRolePolicy(ctx context.Context, c *Call, in *RolePolicyNameInput) (*NoOutput, error) {
	return noOutput, s.opts.IAM.DeleteInlinePolicy(ctx, c.Principal.AccountID, iamd.RoleEntity(in.RoleName), in.PolicyName)
}

// ListUserPoliciesInput is the IAM ListUserPolicies request.
type ListUserPoliciesInput struct {
	UserName string `required:"true"`
	PageInput
}

// ListGroupPoliciesInput is the IAM ListGroupPolicies request.
type ListGroupPoliciesInput struct {
	GroupName string `required:"true"`
	PageInput
}

// ListRolePoliciesInput is the IAM ListRolePolicies request.
type ListRolePoliciesInput struct {
	RoleName string `required:"true"`
	PageInput
}

// ListInlinePoliciesOutput is the response of List{User,Group,Role}Policies.
type ListInlinePoliciesOutput struct {
	PolicyNames []string
	PageOutput
}

func (s *Server) listInline(ctx context.Context, c *Call, e iamd.Entity, pi PageInput) (*ListInlinePoliciesOutput, error) {
	names, err := s.opts.IAM.ListInlinePolicies(ctx, c.Principal.AccountID, e)
	if err != nil {
		return nil, err
	}
	page, po, err := paginate(names, lowerKey, pi)
	if err != nil {
		return nil, err
	}
	return &ListInlinePoliciesOutput{PolicyNames: append([]string{}, page...), PageOutput: po}, nil
}

func (s *Server) listUserPolicies(ctx context.Context, c *Call, in *ListUserPoliciesInput) (*ListInlinePoliciesOutput, error) {
	return s.listInline(ctx, c, iamd.UserEntity(in.UserName), in.PageInput)
}

func (s *Server) listGroupPolicies(ctx context.Context, c *Call, in *ListGroupPoliciesInput) (*ListInlinePoliciesOutput, error) {
	return s.listInline(ctx, c, iamd.GroupEntity(in.GroupName), in.PageInput)
}

func (s *Server) listRolePolicies(ctx context.Context, c *Call, in *ListRolePoliciesInput) (*ListInlinePoliciesOutput, error) {
	return s.listInline(ctx, c, iamd.RoleEntity(in.RoleName), in.PageInput)
}

// Permissions boundaries.

// PutUserPermissionsBoundaryInput is the IAM PutUserPermissionsBoundary request.
type PutUserPermissionsBoundaryInput struct {
	UserName            string `required:"true"`
	PermissionsBoundary string `required:"true"`
}

// PutRolePermissionsBoundaryInput is the IAM PutRolePermissionsBoundary request.
type PutRolePermissionsBoundaryInput struct {
	RoleName            string `required:"true"`
	PermissionsBoundary string `required:"true"`
}

// UserNameInput is the request of IAM actions that take only a user name.
type UserNameInput struct {
	UserName string `required:"true"`
}

func (s *Server) putUserPermissionsBoundary(ctx context.Context, c *Call, in *PutUserPermissionsBoundaryInput) (*NoOutput, error) {
	return noOutput, s.opts.IAM.PutPermissionsBoundary(ctx, c.Principal.AccountID, iamd.UserEntity(in.UserName), in.PermissionsBoundary)
}

func (s *Server) deleteUserPermissionsBoundary(ctx context.Context, c *Call, in *UserNameInput) (*NoOutput, error) {
	return noOutput, s.opts.IAM.DeletePermissionsBoundary(ctx, c.Principal.AccountID, iamd.UserEntity(in.UserName))
}

func (s *Server) putRolePermissionsBoundary(ctx context.Context, c *Call, in *PutRolePermissionsBoundaryInput) (*NoOutput, error) {
	return noOutput, s.opts.IAM.PutPermissionsBoundary(ctx, c.Principal.AccountID, iamd.RoleEntity(in.RoleName), in.PermissionsBoundary)
}

func (s *Server) deleteRolePermissionsBoundary(ctx context.Context, c *Call, in *RoleNameInput) (*NoOutput, error) {
	return noOutput, s.opts.IAM.DeletePermissionsBoundary(ctx, c.Principal.AccountID, iamd.RoleEntity(in.RoleName))
}

// ListEntitiesForPolicyInput is the IAM ListEntitiesForPolicy request.
type ListEntitiesForPolicyInput struct {
	PolicyArn         string  `required:"true"`
	EntityFilter      *string `enumValues:"User,Role,Group,LocalManagedPolicy,AWSManagedPolicy"`
	PathPrefix        *string
	PolicyUsageFilter *string `enumValues:"PermissionsPolicy,PermissionsBoundary"`
	PageInput
}

// ListEntitiesForPolicyOutput is the IAM ListEntitiesForPolicy response; a
// page runs over the three lists together.
type ListEntitiesForPolicyOutput struct {
	PolicyGroups []PolicyGroup
	PolicyUsers  []PolicyUser
	PolicyRoles  []PolicyRole
	PageOutput
}

// PolicyGroup is a group a policy is attached to.
type PolicyGroup struct {
	GroupName string
	GroupID   string `locationName:"GroupId"`
}

// PolicyUser is a user a policy is attached to.
type PolicyUser struct {
	UserName string
	UserID   string `locationName:"UserId"`
}

// PolicyRole is a role a policy is attached to.
type PolicyRole struct {
	RoleName string
	RoleID   string `locationName:"RoleId"`
}

func (s *Server) listEntitiesForPolicy(ctx context.Context, c *Call, in *ListEntitiesForPolicyInput) (*ListEntitiesForPolicyOutput, error) {
	users, groups, roles, err := s.opts.IAM.PolicyEntities(ctx, c.Principal.AccountID, in.PolicyArn, str(in.PolicyUsageFilter))
	if err != nil {
		return nil, err
	}
	filter, prefix := str(in.EntityFilter), str(in.PathPrefix)
	want := func(kind, path string) bool {
		return (filter == "" || filter == kind) && strings.HasPrefix(path, prefix)
	}
	type item struct {
		key string
		out any
	}
	var items []item
	for _, u := range users {
		if want("User", u.Path) {
			items = append(items, item{"1/" + lowerKey(u.UserName), PolicyUser{UserName: u.UserName, UserID: u.UserID}})
		}
	}
	for _, g := range groups {
		if want("Group", g.Path) {
			items = append(items, item{"2/" + lowerKey(g.GroupName), PolicyGroup{GroupName: g.GroupName, GroupID: g.GroupID}})
		}
	}
	for _, r := range roles {
		if want("Role", r.Path) {
			items = append(items, item{"3/" + lowerKey(r.RoleName), PolicyRole{RoleName: r.RoleName, RoleID: r.RoleID}})
		}
	}
	page, po, err := paginate(items, func(it item) string { return it.key }, in.PageInput)
	if err != nil {
		return nil, err
	}
	out := &ListEntitiesForPolicyOutput{PolicyGroups: []PolicyGroup{}, PolicyUsers: []PolicyUser{}, PolicyRoles: []PolicyRole{}, PageOutput: po}
	for _, it := range page {
		switch v := it.out.(type) {
		case PolicyUser:
			out.PolicyUsers = append(out.PolicyUsers, v)
		case PolicyGroup:
			out.PolicyGroups = append(out.PolicyGroups, v)
		case PolicyRole:
			out.PolicyRoles = append(out.PolicyRoles, v)
		}
	}
	return out, nil
}
