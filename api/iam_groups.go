package api

import (
	"context"

	"github.com/labcloud/labcloud/iamd"
)

// CreateGroupInput is the IAM CreateGroup request.
type CreateGroupInput struct {
	Path      *string
	GroupName string `required:"true"`
}

// CreateGroupOutput is the IAM CreateGroup response.
type CreateGroupOutput struct {
	Group IAMGroup
}

func (s *Server) createGroup(ctx context.Context, c *Call, in *CreateGroupInput) (*CreateGroupOutput, error) {
	g, err := s.opts.IAM.CreateGroup(ctx, c.Principal.AccountID, in.GroupName, str(in.Path))
	if err != nil {
		return nil, err
	}
	return &CreateGroupOutput{Group: groupOut(g)}, nil
}

// GetGroupInput is the IAM GetGroup request; the page is over the members.
type GetGroupInput struct {
	GroupName string `required:"true"`
	PageInput
}

// GetGroupOutput is the IAM GetGroup response: the group and its users.
type GetGroupOutput struct {
	Group IAMGroup
	Users []IAMUser
	PageOutput
}

func (s *Server) getGroup(ctx context.Context, c *Call, in *GetGroupInput) (*GetGroupOutput, error) {
	g, members, err := s.opts.IAM.GetGroup(ctx, c.Principal.AccountID, in.GroupName)
	if err != nil {
		return nil, err
	}
	page, po, err := paginate(members, func(u iamd.User) string { return lowerKey(u.UserName) }, in.PageInput)
	if err != nil {
		return nil, err
	}
	out := &GetGroupOutput{Group: groupOut(g), Users: []IAMUser{}, PageOutput: po}
	for _, u := range page {
		out.Users = append(out.Users, userListOut(u))
	}
	return out, nil
}

// ListGroupsInput is the IAM ListGroups request.
type ListGroupsInput struct {
	PathPrefix *string
	PageInput
}

// ListGroupsOutput is the IAM ListGroups and ListGroupsForUser response.
type ListGroupsOutput struct {
	Groups []IAMGroup
	PageOutput
}

func (s *Server) listGroups(ctx context.Context, c *Call, in *ListGroupsInput) (*ListGroupsOutput, error) {
	groups, err := s.opts.IAM.ListGroups(ctx, c.Principal.AccountID, str(in.PathPrefix))
	if err != nil {
		return nil, err
	}
	return groupPage(groups, in.PageInput)
}

func groupPage(groups []iamd.Group, pi PageInput) (*ListGroupsOutput, error) {
	page, po, err := paginate(groups, func(g iamd.Group) string { return lowerKey(g.GroupName) }, pi)
	if err != nil {
		return nil, err
	}
	out := &ListGroupsOutput{Groups: []IAMGroup{}, PageOutput: po}
	for _, g := range page {
		out.Groups = append(out.Groups, groupOut(g))
	}
	return out, nil
}

// DeleteGroupInput is the IAM DeleteGroup request.
type DeleteGroupInput struct {
	GroupName string `required:"true"`
}

func (s *Server) deleteGroup(ctx context.Context, c *Call, in *DeleteGroupInput) (*NoOutput, error) {
	return noOutput, s.opts.IAM.DeleteGroup(ctx, c.Principal.AccountID, in.GroupName)
}

// GroupMembershipInput is the IAM AddUserToGroup and RemoveUserFromGroup
// request.
type GroupMembershipInput struct {
	GroupName string `required:"true"`
	UserName  string `required:"true"`
}

func (s *Server) addUserToGroup(ctx context.Context, c *Call, in *GroupMembershipInput) (*NoOutput, error) {
	return noOutput, s.opts.IAM.AddUserToGroup(ctx, c.Principal.AccountID, in.GroupName, in.UserName)
}

func (s *Server) removeUserFromGroup(ctx context.Context, c *Call, in *GroupMembershipInput) (*NoOutput, error) {
	return noOutput, s.opts.IAM.RemoveUserFromGroup(ctx, c.Principal.AccountID, in.GroupName, in.UserName)
}

// ListGroupsForUserInput is the IAM ListGroupsForUser request.
type ListGroupsForUserInput struct {
	UserName string `required:"true"`
	PageInput
}

func (s *Server) listGroupsForUser(ctx context.Context, c *Call, in *ListGroupsForUserInput) (*ListGroupsOutput, error) {
	groups, err := s.opts.IAM.ListGroupsForUser(ctx, c.Principal.AccountID, in.UserName)
	if err != nil {
		return nil, err
	}
	return groupPage(groups, in.PageInput)
}
