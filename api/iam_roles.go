package api

import (
	"context"
	"time"

	"github.com/labcloud/labcloud/iamd"
)

// CreateRoleInput is the IAM CreateRole request.
type CreateRoleInput struct {
	Path                     *string
	RoleName                 string `required:"true"`
	AssumeRolePolicyDocument string `required:"true"`
	Description              *string
	MaxSessionDuration       *int32
	PermissionsBoundary      *string
	Tags                     []Tag
}

// RoleOutput is the IAM CreateRole and GetRole response.
type RoleOutput struct {
	Role IAMRole
}

func (s *Server) createRole(ctx context.Context, c *Call, in *CreateRoleInput) (*RoleOutput, error) {
	rin := iamd.CreateRoleInput{
		RoleName: in.RoleName, Path: str(in.Path), AssumeRolePolicyDocument: in.AssumeRolePolicyDocument,
		Description: str(in.Description), PermissionsBoundary: str(in.PermissionsBoundary), Tags: tagsIn(in.Tags),
	}
	if in.MaxSessionDuration != nil {
		if *in.MaxSessionDuration == 0 {
			// iamd reads 0 as "the default"; sent explicitly it is out of range.
			return nil, validationError("maxSessionDuration", "0", "Member must have value greater than or equal to 3600")
		}
		rin.MaxSessionDuration = int(*in.MaxSessionDuration)
	}
	r, err := s.opts.IAM.CreateRole(ctx, c.Principal.AccountID, rin)
	if err != nil {
		return nil, err
	}
	return &RoleOutput{Role: roleOut(r)}, nil
}

// RoleNameInput is the request of the IAM actions that take only a role
// name (GetRole, DeleteRole, DeleteRolePermissionsBoundary).
type RoleNameInput struct {
	RoleName string `required:"true"`
}

func (s *Server) getRole(ctx context.Context, c *Call, in *RoleNameInput) (*RoleOutput, error) {
	r, err := s.opts.IAM.GetRole(ctx, c.Principal.AccountID, in.RoleName)
	if err != nil {
		return nil, err
	}
	return &RoleOutput{Role: roleOut(r)}, nil
}

// ListRolesInput is the IAM ListRoles request.
type ListRolesInput struct {
	PathPrefix *string
	PageInput
}

// ListRolesOutput is the IAM ListRoles response.
type ListRolesOutput struct {
	Roles []IAMRole
	PageOutput
}

func (s *Server) listRoles(ctx context.Context, c *Call, in *ListRolesInput) (*ListRolesOutput, error) {
	roles, err := s.opts.IAM.ListRoles(ctx, c.Principal.AccountID, str(in.PathPrefix))
	if err != nil {
		return nil, err
	}
	page, po, err := paginate(roles, func(r iamd.Role) string { return lowerKey(r.RoleName) }, in.PageInput)
	if err != nil {
		return nil, err
	}
	out := &ListRolesOutput{Roles: []IAMRole{}, PageOutput: po}
	for _, r := range page {
		out.Roles = append(out.Roles, roleListOut(r))
	}
	return out, nil
}

func (s *Server) deleteRole(ctx context.Context, c *Call, in *RoleNameInput) (*NoOutput, error) {
	return noOutput, s.opts.IAM.DeleteRole(ctx, c.Principal.AccountID, in.RoleName)
}

// UpdateAssumeRolePolicyInput is the IAM UpdateAssumeRolePolicy request.
type UpdateAssumeRolePolicyInput struct {
	RoleName       string `required:"true"`
	PolicyDocument string `required:"true"`
}

func (s *Server) updateAssumeRolePolicy(ctx context.Context, c *Call, in *UpdateAssumeRolePolicyInput) (*NoOutput, error) {
	return noOutput, s.opts.IAM.UpdateAssumeRolePolicy(ctx, c.Principal.AccountID, in.RoleName, in.PolicyDocument)
}

// UpdateRoleInput is the IAM UpdateRole request.
type UpdateRoleInput struct {
	RoleName           string `required:"true"`
	Description        *string
	MaxSessionDuration *int32
}

// UpdateRoleOutput is the (empty) IAM UpdateRole response; unlike most
// IAM actions without output, AWS sends an empty Result element.
type UpdateRoleOutput struct{}

func (s *Server) updateRole(ctx context.Context, c *Call, in *UpdateRoleInput) (*UpdateRoleOutput, error) {
	var maxSession *int
	if in.MaxSessionDuration != nil {
		n := int(*in.MaxSessionDuration)
		maxSession = &n
	}
	if err := s.opts.IAM.UpdateRole(ctx, c.Principal.AccountID, in.RoleName, in.Description, maxSession); err != nil {
		return nil, err
	}
	return &UpdateRoleOutput{}, nil
}

// TagRoleInput is the IAM TagRole request.
type TagRoleInput struct {
	RoleName string `required:"true"`
	Tags     []Tag  `required:"true"`
}

func (s *Server) tagRole(ctx context.Context, c *Call, in *TagRoleInput) (*NoOutput, error) {
	return noOutput, s.opts.IAM.TagEntity(ctx, c.Principal.AccountID, iamd.RoleEntity(in.RoleName), tagsIn(in.Tags))
}

// UntagRoleInput is the IAM UntagRole request.
type UntagRoleInput struct {
	RoleName string   `required:"true"`
	TagKeys  []string `required:"true"`
}

func (s *Server) untagRole(ctx context.Context, c *Call, in *UntagRoleInput) (*NoOutput, error) {
	return noOutput, s.opts.IAM.UntagEntity(ctx, c.Principal.AccountID, iamd.RoleEntity(in.RoleName), in.TagKeys)
}

// ListRoleTagsInput is the IAM ListRoleTags request.
type ListRoleTagsInput struct {
	RoleName string `required:"true"`
	PageInput
}

func (s *Server) listRoleTags(ctx context.Context, c *Call, in *ListRoleTagsInput) (*ListTagsOutput, error) {
	return s.listTags(ctx, c, iamd.RoleEntity(in.RoleName), in.PageInput)
}

// IAMInstanceProfile is the IAM InstanceProfile shape.
type IAMInstanceProfile struct {
	Path                string
	InstanceProfileName string
	InstanceProfileID   string `locationName:"InstanceProfileId"`
	Arn                 string
	CreateDate          time.Time
	Roles               []IAMRole
	Tags                []Tag
}

// profileOut converts a profile with its roles (whole Role shapes, as AWS
// returns them in instance profiles).
func (s *Server) profileOut(ctx context.Context, account string, p iamd.InstanceProfile, withTags bool) (IAMInstanceProfile, error) {
	roles, err := s.opts.IAM.ProfileRoles(ctx, account, p)
	if err != nil {
		return IAMInstanceProfile{}, err
	}
	out := IAMInstanceProfile{Path: p.Path, InstanceProfileName: p.InstanceProfileName, InstanceProfileID: p.InstanceProfileID,
		Arn: p.ARN, CreateDate: p.CreateDate, Roles: []IAMRole{}}
	for _, r := range roles {
		out.Roles = append(out.Roles, roleListOut(r))
	}
	if withTags {
		out.Tags = tagsOut(p.Tags)
	}
	return out, nil
}

// CreateInstanceProfileInput is the IAM CreateInstanceProfile request.
type CreateInstanceProfileInput struct {
	InstanceProfileName string `required:"true"`
	Path                *string
	Tags                []Tag
}

// InstanceProfileOutput is the IAM CreateInstanceProfile and
// GetInstanceProfile response.
type InstanceProfileOutput struct {
	InstanceProfile IAMInstanceProfile
}

func (s *Server) createInstanceProfile(ctx context.Context, c *Call, in *CreateInstanceProfileInput) (*InstanceProfileOutput, error) {
	p, err := s.opts.IAM.CreateInstanceProfile(ctx, c.Principal.AccountID, in.InstanceProfileName, str(in.Path), tagsIn(in.Tags))
	if err != nil {
		return nil, err
	}
	out, err := s.profileOut(ctx, c.Principal.AccountID, p, true)
	if err != nil {
		return nil, err
	}
	return &InstanceProfileOutput{InstanceProfile: out}, nil
}

// InstanceProfileNameInput is the IAM GetInstanceProfile and
// DeleteInstanceProfile request.
type InstanceProfileNameInput struct {
	InstanceProfileName string `required:"true"`
}

func (s *Server) getInstanceProfile(ctx context.Context, c *Call, in *InstanceProfileNameInput) (*InstanceProfileOutput, error) {
	p, err := s.opts.IAM.GetInstanceProfile(ctx, c.Principal.AccountID, in.InstanceProfileName)
	if err != nil {
		return nil, err
	}
	out, err := s.profileOut(ctx, c.Principal.AccountID, p, true)
	if err != nil {
		return nil, err
	}
	return &InstanceProfileOutput{InstanceProfile: out}, nil
}

// ListInstanceProfilesInput is the IAM ListInstanceProfiles request.
type ListInstanceProfilesInput struct {
	PathPrefix *string
	PageInput
}

// ListInstanceProfilesOutput is the IAM ListInstanceProfiles and
// ListInstanceProfilesForRole response.
type ListInstanceProfilesOutput struct {
	InstanceProfiles []IAMInstanceProfile
	PageOutput
}

func (s *Server) listInstanceProfiles(ctx context.Context, c *Call, in *ListInstanceProfilesInput) (*ListInstanceProfilesOutput, error) {
	ps, err := s.opts.IAM.ListInstanceProfiles(ctx, c.Principal.AccountID, str(in.PathPrefix))
	if err != nil {
		return nil, err
	}
	return s.profilePage(ctx, c, ps, in.PageInput)
}

func (s *Server) profilePage(ctx context.Context, c *Call, ps []iamd.InstanceProfile, pi PageInput) (*ListInstanceProfilesOutput, error) {
	page, po, err := paginate(ps, func(p iamd.InstanceProfile) string { return lowerKey(p.InstanceProfileName) }, pi)
	if err != nil {
		return nil, err
	}
	out := &ListInstanceProfilesOutput{InstanceProfiles: []IAMInstanceProfile{}, PageOutput: po}
	for _, p := range page {
		po, err := s.profileOut(ctx, c.Principal.AccountID, p, false)
		if err != nil {
			return nil, err
		}
		out.InstanceProfiles = append(out.InstanceProfiles, po)
	}
	return out, nil
}

func (s *Server) deleteInstanceProfile(ctx context.Context, c *Call, in *InstanceProfileNameInput) (*NoOutput, error) {
	return noOutput, s.opts.IAM.DeleteInstanceProfile(ctx, c.Principal.AccountID, in.InstanceProfileName)
}

// InstanceProfileRoleInput is the IAM AddRoleToInstanceProfile and
// RemoveRoleFromInstanceProfile request.
type InstanceProfileRoleInput struct {
	InstanceProfileName string `required:"true"`
	RoleName            string `required:"true"`
}

func (s *Server) addRoleToInstanceProfile(ctx context.Context, c *Call, in *InstanceProfileRoleInput) (*NoOutput, error) {
	return noOutput, s.opts.IAM.AddRoleToInstanceProfile(ctx, c.Principal.AccountID, in.InstanceProfileName, in.RoleName)
}

func (s *Server) removeRoleFromInstanceProfile(ctx context.Context, c *Call, in *InstanceProfileRoleInput) (*NoOutput, error) {
	return noOutput, s.opts.IAM.RemoveRoleFromInstanceProfile(ctx, c.Principal.AccountID, in.InstanceProfileName, in.RoleName)
}

// ListInstanceProfilesForRoleInput is the IAM ListInstanceProfilesForRole
// request.
type ListInstanceProfilesForRoleInput struct {
	RoleName string `required:"true"`
	PageInput
}

func (s *Server) listInstanceProfilesForRole(ctx context.Context, c *Call, in *ListInstanceProfilesForRoleInput) (*ListInstanceProfilesOutput, error) {
	ps, err := s.opts.IAM.ListInstanceProfilesForRole(ctx, c.Principal.AccountID, in.RoleName)
	if err != nil {
		return nil, err
	}
	return s.profilePage(ctx, c, ps, in.PageInput)
}
