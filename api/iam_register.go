package api

import (
	"encoding/base64"
	"strconv"
	"strings"
	"time"

	"github.com/labcloud/labcloud/iamd"
	"github.com/labcloud/labcloud/internal/errdefs"
)

// registerIAM registers the IAM Query API: users, groups, roles, managed
// and inline policies, permissions boundaries, access keys, instance
// profiles and GetAccountAuthorizationDetails. Every handler works in the
// caller's account (c.Principal.AccountID) and nowhere else.
func (s *Server) registerIAM() {
	// Users and their tags.
	s.handle(ServiceIAM, "CreateUser", queryOp(s.createUser))
	s.handle(ServiceIAM, "GetUser", queryOp(s.getUser))
	s.handle(ServiceIAM, "ListUsers", queryOp(s.listUsers))
	s.handle(ServiceIAM, "DeleteUser", queryOp(s.deleteUser))
	s.handle(ServiceIAM, "UpdateUser", queryOp(s.updateUser))
	s.handle(ServiceIAM, "TagUser", queryOp(s.tagUser))
	s.handle(ServiceIAM, "UntagUser", queryOp(s.untagUser))
	s.handle(ServiceIAM, "ListUserTags", queryOp(s.listUserTags))

	// Groups.
	s.handle(ServiceIAM, "CreateGroup", queryOp(s.createGroup))
	s.handle(ServiceIAM, "GetGroup", queryOp(s.getGroup))
	s.handle(ServiceIAM, "ListGroups", queryOp(s.listGroups))
	s.handle(ServiceIAM, "DeleteGroup", queryOp(s.deleteGroup))
	s.handle(ServiceIAM, "AddUserToGroup", queryOp(s.addUserToGroup))
	s.handle(ServiceIAM, "RemoveUserFromGroup", queryOp(s.removeUserFromGroup))
	s.handle(ServiceIAM, "ListGroupsForUser", queryOp(s.listGroupsForUser))

	// Roles and their tags.
	s.handle(ServiceIAM, "CreateRole", queryOp(s.createRole))
	s.handle(ServiceIAM, "GetRole", queryOp(s.getRole))
	s.handle(ServiceIAM, "ListRoles", queryOp(s.listRoles))
	s.handle(ServiceIAM, "DeleteRole", queryOp(s.deleteRole))
	s.handle(ServiceIAM, "UpdateAssumeRolePolicy", queryOp(s.updateAssumeRolePolicy))
	s.handle(ServiceIAM, "UpdateRole", queryOp(s.updateRole))
	s.handle(ServiceIAM, "TagRole", queryOp(s.tagRole))
	s.handle(ServiceIAM, "UntagRole", queryOp(s.untagRole))
	s.handle(ServiceIAM, "ListRoleTags", queryOp(s.listRoleTags))

	// Managed policies and their versions.
	s.handle(ServiceIAM, "CreatePolicy", queryOp(s.createPolicy))
	s.handle(ServiceIAM, "GetPolicy", queryOp(s.getPolicy))
	s.handle(ServiceIAM, "ListPolicies", queryOp(s.listPolicies))
	s.handle(ServiceIAM, "DeletePolicy", queryOp(s.deletePolicy))
	s.handle(ServiceIAM, "CreatePolicyVersion", queryOp(s.createPolicyVersion))
	s.handle(ServiceIAM, "GetPolicyVersion", queryOp(s.getPolicyVersion))
	s.handle(ServiceIAM, "ListPolicyVersions", queryOp(s.listPolicyVersions))
	s.handle(ServiceIAM, "SetDefaultPolicyVersion", queryOp(s.setDefaultPolicyVersion))
	s.handle(ServiceIAM, "DeletePolicyVersion", queryOp(s.deletePolicyVersion))
	s.handle(ServiceIAM, "ListEntitiesForPolicy", queryOp(s.listEntitiesForPolicy))

	// Attached managed policies, inline policies, permissions boundaries.
	s.handle(ServiceIAM, "AttachUserPolicy", queryOp(s.attachUserPolicy))
	s.handle(ServiceIAM, "DetachUserPolicy", queryOp(s.detachUserPolicy))
	s.handle(ServiceIAM, "ListAttachedUserPolicies", queryOp(s.listAttachedUserPolicies))
	s.handle(ServiceIAM, "AttachGroupPolicy", queryOp(s.attachGroupPolicy))
	s.handle(ServiceIAM, "DetachGroupPolicy", queryOp(s.detachGroupPolicy))
	s.handle(ServiceIAM, "ListAttachedGroupPolicies", queryOp(s.listAttachedGroupPolicies))
	s.handle(ServiceIAM, "AttachRolePolicy", queryOp(s.attachRolePolicy))
	s.handle(ServiceIAM, "DetachRolePolicy", queryOp(s.detachRolePolicy))
	s.handle(ServiceIAM, "ListAttachedRolePolicies", queryOp(s.listAttachedRolePolicies))
	s.handle(ServiceIAM, "PutUserPolicy", queryOp(s.putUserPolicy))
	s.handle(ServiceIAM, "GetUserPolicy", queryOp(s.getUserPolicy))
	s.handle(ServiceIAM, "DeleteUserPolicy", queryOp(s.deleteUserPolicy))
	s.handle(ServiceIAM, "ListUserPolicies", queryOp(s.listUserPolicies))
	s.handle(ServiceIAM, "PutGroupPolicy", queryOp(s.putGroupPolicy))
	s.handle(ServiceIAM, "GetGroupPolicy", queryOp(s.getGroupPolicy))
	s.handle(ServiceIAM, "DeleteGroupPolicy", queryOp(s.deleteGroupPolicy))
	s.handle(ServiceIAM, "ListGroupPolicies", queryOp(s.listGroupPolicies))
	s.handle(ServiceIAM, "PutRolePolicy", queryOp(s.putRolePolicy))
	s.handle(ServiceIAM, "GetRolePolicy", queryOp(s.getRolePolicy))
	s.handle(ServiceIAM, "DeleteRolePolicy", queryOp(s.deleteRolePolicy))
	s.handle(ServiceIAM, "ListRolePolicies", queryOp(s.listRolePolicies))
	s.handle(ServiceIAM, "PutUserPermissionsBoundary", queryOp(s.putUserPermissionsBoundary))
	s.handle(ServiceIAM, "DeleteUserPermissionsBoundary", queryOp(s.deleteUserPermissionsBoundary))
	s.handle(ServiceIAM, "PutRolePermissionsBoundary", queryOp(s.putRolePermissionsBoundary))
	s.handle(ServiceIAM, "DeleteRolePermissionsBoundary", queryOp(s.deleteRolePermissionsBoundary))

	// Access keys of IAM users.
	s.handle(ServiceIAM, "CreateAccessKey", queryOp(s.createAccessKey))
	s.handle(ServiceIAM, "ListAccessKeys", queryOp(s.listAccessKeys))
	s.handle(ServiceIAM, "UpdateAccessKey", queryOp(s.updateAccessKey))
	s.handle(ServiceIAM, "DeleteAccessKey", queryOp(s.deleteAccessKey))

	// Instance profiles.
	s.handle(ServiceIAM, "CreateInstanceProfile", queryOp(s.createInstanceProfile))
	s.handle(ServiceIAM, "GetInstanceProfile", queryOp(s.getInstanceProfile))
	s.handle(ServiceIAM, "ListInstanceProfiles", queryOp(s.listInstanceProfiles))
	s.handle(ServiceIAM, "DeleteInstanceProfile", queryOp(s.deleteInstanceProfile))
	s.handle(ServiceIAM, "AddRoleToInstanceProfile", queryOp(s.addRoleToInstanceProfile))
	s.handle(ServiceIAM, "RemoveRoleFromInstanceProfile", queryOp(s.removeRoleFromInstanceProfile))
	s.handle(ServiceIAM, "ListInstanceProfilesForRole", queryOp(s.listInstanceProfilesForRole))

	s.handle(ServiceIAM, "GetAccountAuthorizationDetails", queryOp(s.getAccountAuthorizationDetails))
}

// NoOutput is the result of IAM actions that return nothing but the
// request id.
type NoOutput struct{}

// noOutput is what handlers of such actions return: a nil *NoOutput makes
// the encoder drop the Result element, as AWS does.
var noOutput *NoOutput

// Shapes shared by several IAM actions, with the member names and order of
// the IAM API model.

// IAMUser is the IAM User shape.
type IAMUser struct {
	Path                string `omitempty:"true"`
	UserName            string `omitempty:"true"`
	UserID              string `locationName:"UserId"`
	Arn                 string
	CreateDate          time.Time
	PermissionsBoundary *AttachedPermissionsBoundary
	Tags                []Tag
}

// IAMGroup is the IAM Group shape.
type IAMGroup struct {
	Path       string
	GroupName  string
	GroupID    string `locationName:"GroupId"`
	Arn        string
	CreateDate time.Time
}

// IAMRole is the IAM Role shape. AssumeRolePolicyDocument is URL-encoded,
// as AWS sends policy documents (botocore decodes it).
type IAMRole struct {
	Path                     string
	RoleName                 string
	RoleID                   string `locationName:"RoleId"`
	Arn                      string
	CreateDate               time.Time
	AssumeRolePolicyDocument string
	Description              string `omitempty:"true"`
	MaxSessionDuration       int32
	PermissionsBoundary      *AttachedPermissionsBoundary
	Tags                     []Tag
}

// IAMPolicy is the IAM Policy shape (a managed policy).
type IAMPolicy struct {
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
	Tags                          []Tag
}

// IAMPolicyVersion is the IAM PolicyVersion shape; Document is URL-encoded
// and absent from ListPolicyVersions.
type IAMPolicyVersion struct {
	Document         *string
	VersionID        string `locationName:"VersionId"`
	IsDefaultVersion bool
	CreateDate       time.Time
}

// AttachedPermissionsBoundary is a user's or role's permissions boundary.
type AttachedPermissionsBoundary struct {
	PermissionsBoundaryType string
	PermissionsBoundaryArn  string
}

// AttachedPolicy is a managed policy attached to an entity.
type AttachedPolicy struct {
	PolicyName string
	PolicyArn  string
}

// PageInput is the Marker/MaxItems pair of every IAM List action.
type PageInput struct {
	Marker   *string
	MaxItems *int32
}

// PageOutput is the IsTruncated/Marker pair of every IAM List result.
type PageOutput struct {
	IsTruncated bool
	Marker      *string
}

// Pagination defaults of IAM.
const (
	defaultMaxItems = 100
	maxMaxItems     = 1000
)

// paginate returns one page of items, which are ordered and each have a
// unique key. The marker is the (encoded) key of the first item of the
// next page, so a page boundary survives items being added or removed
// before it.
func paginate[T any](items []T, key func(T) string, in PageInput) ([]T, PageOutput, error) {
	limit := defaultMaxItems
	if in.MaxItems != nil {
		n := int(*in.MaxItems)
		if n < 1 {
			return nil, PageOutput{}, validationError("maxItems", strconv.Itoa(n), "Member must have value greater than or equal to 1")
		}
		if n > maxMaxItems {
			return nil, PageOutput{}, validationError("maxItems", strconv.Itoa(n), "Member must have value less than or equal to 1000")
		}
		limit = n
	}
	start := 0
	if in.Marker != nil && *in.Marker != "" {
		raw, err := base64.RawURLEncoding.DecodeString(*in.Marker)
		if err != nil {
			return nil, PageOutput{}, errdefs.InvalidParameter("InvalidInput",
				"Invalid Marker %q: pass the Marker of the previous response unchanged", *in.Marker)
		}
		want := string(raw)
		start = len(items)
		for n, it := range items {
			if key(it) == want {
				start = n
				break
			}
		}
		if start == len(items) {
			// The item the marker names is gone; in a sorted list the page
			// starts at the next key.
			for n, it := range items {
				if key(it) > want {
					start = n
					break
				}
			}
		}
	}
	rest := items[start:]
	if len(rest) <= limit {
		return rest, PageOutput{}, nil
	}
	next := base64.RawURLEncoding.EncodeToString([]byte(key(rest[limit])))
	return rest[:limit], PageOutput{IsTruncated: true, Marker: &next}, nil
}

// encodeDocument URL-encodes a policy document the way IAM returns
// documents: every byte but the RFC 3986 unreserved characters is %XX
// (space is %20, never "+"), so botocore's unquote and Go's
// url.QueryUnescape both give back the document unchanged.
func encodeDocument(doc string) string {
	const hexDigits = "0123456789ABCDEF"
	var b strings.Builder
	b.Grow(len(doc) * 2)
	for n := 0; n < len(doc); n++ {
		c := doc[n]
		switch {
		case 'A' <= c && c <= 'Z', 'a' <= c && c <= 'z', '0' <= c && c <= '9', c == '-', c == '_', c == '.', c == '~':
			b.WriteByte(c)
		default:
			b.WriteByte('%')
			b.WriteByte(hexDigits[c>>4])
			b.WriteByte(hexDigits[c&15])
		}
	}
	return b.String()
}

// Conversions from iamd to the wire shapes.

func boundaryOut(arn string) *AttachedPermissionsBoundary {
	if arn == "" {
		return nil
	}
	return &AttachedPermissionsBoundary{PermissionsBoundaryType: "PermissionsBoundaryPolicy", PermissionsBoundaryArn: arn}
}

func tagsOut(tags []iamd.Tag) []Tag {
	if len(tags) == 0 {
		return nil
	}
	out := make([]Tag, len(tags))
	for n, t := range tags {
		out[n] = Tag{Key: t.Key, Value: t.Value}
	}
	return out
}

func tagsIn(tags []Tag) []iamd.Tag {
	out := make([]iamd.Tag, len(tags))
	for n, t := range tags {
		out[n] = iamd.Tag{Key: t.Key, Value: t.Value}
	}
	return out
}

// userOut is the full User shape (GetUser, CreateUser). List actions use
// userListOut: AWS leaves the boundary and tags out of lists.
func userOut(u iamd.User) IAMUser {
	out := userListOut(u)
	out.PermissionsBoundary = boundaryOut(u.PermissionsBoundary)
	out.Tags = tagsOut(u.Tags)
	return out
}

func userListOut(u iamd.User) IAMUser {
	return IAMUser{Path: u.Path, UserName: u.UserName, UserID: u.UserID, Arn: u.ARN, CreateDate: u.CreateDate}
}

func groupOut(g iamd.Group) IAMGroup {
	return IAMGroup{Path: g.Path, GroupName: g.GroupName, GroupID: g.GroupID, Arn: g.ARN, CreateDate: g.CreateDate}
}

// roleOut is the full Role shape; roleListOut leaves out what AWS leaves
// out of ListRoles (boundary and tags).
func roleOut(r iamd.Role) IAMRole {
	out := roleListOut(r)
	out.PermissionsBoundary = boundaryOut(r.PermissionsBoundary)
	out.Tags = tagsOut(r.Tags)
	return out
}

func roleListOut(r iamd.Role) IAMRole {
	return IAMRole{
		Path: r.Path, RoleName: r.RoleName, RoleID: r.RoleID, Arn: r.ARN, CreateDate: r.CreateDate,
		AssumeRolePolicyDocument: encodeDocument(r.AssumeRolePolicyDocument),
		Description:              r.Description, MaxSessionDuration: int32(r.MaxSessionDuration),
	}
}

// policyOut is the full Policy shape (GetPolicy, CreatePolicy);
// ListPolicies leaves out the description and tags, as AWS does.
func policyOut(p iamd.ManagedPolicy, full bool) IAMPolicy {
	out := IAMPolicy{
		PolicyName: p.PolicyName, PolicyID: p.PolicyID, Arn: p.ARN, Path: p.Path,
		DefaultVersionID: p.DefaultVersionID, AttachmentCount: int32(p.AttachmentCount),
		PermissionsBoundaryUsageCount: int32(p.PermissionsBoundaryUsageCount), IsAttachable: p.IsAttachable(),
		CreateDate: p.CreateDate, UpdateDate: p.UpdateDate,
	}
	if full {
		out.Description = p.Description
		out.Tags = tagsOut(p.Tags)
	}
	return out
}

func versionOut(v iamd.PolicyVersion, withDocument bool) IAMPolicyVersion {
	out := IAMPolicyVersion{VersionID: v.VersionID, IsDefaultVersion: v.IsDefaultVersion, CreateDate: v.CreateDate}
	if withDocument {
		doc := encodeDocument(v.Document)
		out.Document = &doc
	}
	return out
}

func attachedOut(ps []iamd.AttachedPolicy) []AttachedPolicy {
	out := make([]AttachedPolicy, len(ps))
	for n, p := range ps {
		out[n] = AttachedPolicy{PolicyName: p.PolicyName, PolicyArn: p.PolicyARN}
	}
	return out
}

// str dereferences an optional string parameter.
func str(p *string) string {
	if p == nil {
		return ""
	}
	return *p
}

// lowerKey is the pagination key of objects named case-insensitively.
func lowerKey(s string) string { return strings.ToLower(s) }

// callerUserName resolves the optional UserName of the actions that
// default to the caller (GetUser, the access key actions): an IAM user
// means itself. Other callers must name the user, as in AWS; labcloud does
// not manage the root user's keys through IAM (they are in the
// admin-credentials file, and deleting them would lock the install out).
func callerUserName(c *Call, name *string) (string, error) {
	if n := str(name); n != "" {
		return n, nil
	}
	switch {
	case c.Principal.Type == iamd.PrincipalUser && c.Principal.UserName != "":
		return c.Principal.UserName, nil
	case c.Principal.IsRoot():
		return "", errdefs.InvalidParameter("ValidationError",
			"Must specify userName when calling with non-User credentials: labcloud does not manage the root user's access keys through IAM (they are in admin-credentials); pass UserName (--user-name) to manage an IAM user's keys")
	}
	return "", errdefs.InvalidParameter("ValidationError", "Must specify userName when calling with non-User credentials")
}
