package api

import (
	"context"
	"time"

	"github.com/labcloud/labcloud/iamd"
)

// CreateUserInput is the IAM CreateUser request.
type CreateUserInput struct {
	Path                *string
	UserName            string `required:"true"`
	PermissionsBoundary *string
	Tags                []Tag
}

// CreateUserOutput is the IAM CreateUser response.
type CreateUserOutput struct {
	User IAMUser
}

func (s *Server) createUser(ctx context.Context, c *Call, in *CreateUserInput) (*CreateUserOutput, error) {
	u, err := s.opts.IAM.CreateUser(ctx, c.Principal.AccountID, iamd.CreateUserInput{
		UserName: in.UserName, Path: str(in.Path), PermissionsBoundary: str(in.PermissionsBoundary), Tags: tagsIn(in.Tags),
	})
	if err != nil {
		return nil, err
	}
	return &CreateUserOutput{User: userOut(u)}, nil
}

// GetUserInput is the IAM GetUser request; without UserName it describes
// the caller.
type GetUserInput struct {
	UserName *string
}

// GetUserOutput is the IAM GetUser response.
type GetUserOutput struct {
	User IAMUser
}

func (s *Server) getUser(ctx context.Context, c *Call, in *GetUserInput) (*GetUserOutput, error) {
	if str(in.UserName) == "" && c.Principal.IsRoot() {
		// AWS describes the root user: its id is the account id.
		a, err := s.opts.Accounts.GetAccount(ctx, c.Principal.AccountID)
		if err != nil {
			return nil, err
		}
		return &GetUserOutput{User: IAMUser{UserID: a.ID, Arn: a.RootARN(), CreateDate: a.CreatedAt}}, nil
	}
	name, err := callerUserName(c, in.UserName)
	if err != nil {
		return nil, err
	}
	u, err := s.opts.IAM.GetUser(ctx, c.Principal.AccountID, name)
	if err != nil {
		return nil, err
	}
	return &GetUserOutput{User: userOut(u)}, nil
}

// ListUsersInput is the IAM ListUsers request.
type ListUsersInput struct {
	PathPrefix *string
	PageInput
}

// ListUsersOutput is the IAM ListUsers response.
type ListUsersOutput struct {
	Users []IAMUser
	PageOutput
}

func (s *Server) listUsers(ctx context.Context, c *Call, in *ListUsersInput) (*ListUsersOutput, error) {
	users, err := s.opts.IAM.ListUsers(ctx, c.Principal.AccountID, str(in.PathPrefix))
	if err != nil {
		return nil, err
	}
	page, po, err := paginate(users, func(u iamd.User) string { return lowerKey(u.UserName) }, in.PageInput)
	if err != nil {
		return nil, err
	}
	out := &ListUsersOutput{Users: []IAMUser{}, PageOutput: po}
	for _, u := range page {
		out.Users = append(out.Users, userListOut(u))
	}
	return out, nil
}

// DeleteUserInput is the IAM DeleteUser request.
type DeleteUserInput struct {
	UserName string `required:"true"`
}

func (s *Server) deleteUser(ctx context.Context, c *Call, in *DeleteUserInput) (*NoOutput, error) {
	return noOutput, s.opts.IAM.DeleteUser(ctx, c.Principal.AccountID, in.UserName)
}

// UpdateUserInput is the IAM UpdateUser request.
type UpdateUserInput struct {
	UserName    string `required:"true"`
	NewPath     *string
	NewUserName *string
}

func (s *Server) updateUser(ctx context.Context, c *Call, in *UpdateUserInput) (*NoOutput, error) {
	return noOutput, s.opts.IAM.UpdateUser(ctx, c.Principal.AccountID, in.UserName, str(in.NewUserName), str(in.NewPath))
}

// TagUserInput is the IAM TagUser request.
type TagUserInput struct {
	UserName string `required:"true"`
	Tags     []Tag  `required:"true"`
}

func (s *Server) tagUser(ctx context.Context, c *Call, in *TagUserInput) (*NoOutput, error) {
	return noOutput, s.opts.IAM.TagEntity(ctx, c.Principal.AccountID, iamd.UserEntity(in.UserName), tagsIn(in.Tags))
}

// UntagUserInput is the IAM UntagUser request.
type UntagUserInput struct {
	UserName string   `required:"true"`
	TagKeys  []string `required:"true"`
}

func (s *Server) untagUser(ctx context.Context, c *Call, in *UntagUserInput) (*NoOutput, error) {
	return noOutput, s.opts.IAM.UntagEntity(ctx, c.Principal.AccountID, iamd.UserEntity(in.UserName), in.TagKeys)
}

// ListUserTagsInput is the IAM ListUserTags request.
type ListUserTagsInput struct {
	UserName string `required:"true"`
	PageInput
}

// ListTagsOutput is the IAM ListUserTags and ListRoleTags response.
type ListTagsOutput struct {
	Tags []Tag
	PageOutput
}

func (s *Server) listUserTags(ctx context.Context, c *Call, in *ListUserTagsInput) (*ListTagsOutput, error) {
	return s.listTags(ctx, c, iamd.UserEntity(in.UserName), in.PageInput)
}

func (s *Server) listTags(ctx context.Context, c *Call, e iamd.Entity, pi PageInput) (*ListTagsOutput, error) {
	tags, err := s.opts.IAM.EntityTags(ctx, c.Principal.AccountID, e)
	if err != nil {
		return nil, err
	}
	page, po, err := paginate(tags, func(t iamd.Tag) string { return lowerKey(t.Key) }, pi)
	if err != nil {
		return nil, err
	}
	out := &ListTagsOutput{Tags: []Tag{}, PageOutput: po}
	out.Tags = append(out.Tags, tagsOut(page)...)
	return out, nil
}

// CreateAccessKeyInput is the IAM CreateAccessKey request; without
// UserName it is for the calling user.
type CreateAccessKeyInput struct {
	UserName *string
}

// CreateAccessKeyOutput is the IAM CreateAccessKey response, the only one
// that carries the secret.
type CreateAccessKeyOutput struct {
	AccessKey AccessKeyOut
}

// AccessKeyOut is the IAM AccessKey shape.
type AccessKeyOut struct {
	UserName        string
	AccessKeyID     string `locationName:"AccessKeyId"`
	Status          string
	SecretAccessKey string
	CreateDate      time.Time
}

func (s *Server) createAccessKey(ctx context.Context, c *Call, in *CreateAccessKeyInput) (*CreateAccessKeyOutput, error) {
	name, err := callerUserName(c, in.UserName)
	if err != nil {
		return nil, err
	}
	k, err := s.opts.IAM.CreateAccessKey(ctx, c.Principal.AccountID, name)
	if err != nil {
		return nil, err
	}
	return &CreateAccessKeyOutput{AccessKey: AccessKeyOut{
		UserName: k.UserName, AccessKeyID: k.AccessKeyID, Status: k.Status,
		SecretAccessKey: k.SecretAccessKey, CreateDate: k.CreatedAt,
	}}, nil
}

// ListAccessKeysInput is the IAM ListAccessKeys request.
type ListAccessKeysInput struct {
	UserName *string
	PageInput
}

// ListAccessKeysOutput is the IAM ListAccessKeys response.
type ListAccessKeysOutput struct {
	AccessKeyMetadata []AccessKeyMetadata
	PageOutput
}

// AccessKeyMetadata is an access key without its secret.
type AccessKeyMetadata struct {
	UserName    string
	AccessKeyID string `locationName:"AccessKeyId"`
	Status      string
	CreateDate  time.Time
}

func (s *Server) listAccessKeys(ctx context.Context, c *Call, in *ListAccessKeysInput) (*ListAccessKeysOutput, error) {
	name, err := callerUserName(c, in.UserName)
	if err != nil {
		return nil, err
	}
	keys, err := s.opts.IAM.ListAccessKeys(ctx, c.Principal.AccountID, name)
	if err != nil {
		return nil, err
	}
	page, po, err := paginate(keys, func(k iamd.AccessKey) string { return k.AccessKeyID }, in.PageInput)
	if err != nil {
		return nil, err
	}
	out := &ListAccessKeysOutput{AccessKeyMetadata: []AccessKeyMetadata{}, PageOutput: po}
	for _, k := range page {
		out.AccessKeyMetadata = append(out.AccessKeyMetadata, AccessKeyMetadata{
			UserName: k.UserName, AccessKeyID: k.AccessKeyID, Status: k.Status, CreateDate: k.CreatedAt})
	}
	return out, nil
}

// UpdateAccessKeyInput is the IAM UpdateAccessKey request.
type UpdateAccessKeyInput struct {
	UserName    *string
	AccessKeyID string `locationName:"AccessKeyId" required:"true"`
	Status      string `required:"true" enumValues:"Active,Inactive,Expired"`
}

func (s *Server) updateAccessKey(ctx context.Context, c *Call, in *UpdateAccessKeyInput) (*NoOutput, error) {
	name, err := callerUserName(c, in.UserName)
	if err != nil {
		return nil, err
	}
	return noOutput, s.opts.IAM.UpdateAccessKey(ctx, c.Principal.AccountID, name, in.AccessKeyID, in.Status)
}

// DeleteAccessKeyInput is the IAM DeleteAccessKey request.
type DeleteAccessKeyInput struct {
	UserName    *string
	AccessKeyID string `locationName:"AccessKeyId" required:"true"`
}

func (s *Server) deleteAccessKey(ctx context.Context, c *Call, in *DeleteAccessKeyInput) (*NoOutput, error) {
	name, err := callerUserName(c, in.UserName)
	if err != nil {
		return nil, err
	}
	return noOutput, s.opts.IAM.DeleteAccessKey(ctx, c.Principal.AccountID, name, in.AccessKeyID)
}
