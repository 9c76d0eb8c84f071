package iamd

import (
	"context"
	"strings"
	"time"

	"github.com/labcloud/labcloud/iamd/policy"
	"github.com/labcloud/labcloud/internal/store"
)

// Role is an IAM role, stored under iam/<account>/roles/<lower-case name>.
type Role struct {
	RoleName   string    `json:"roleName"`
	Path       string    `json:"path"`
	RoleID     string    `json:"roleId"`
	ARN        string    `json:"arn"`
	CreateDate time.Time `json:"createDate"`
	// AssumeRolePolicyDocument is the trust policy, as the caller sent it
	// (a valid policy.KindTrust document).
	AssumeRolePolicyDocument string `json:"assumeRolePolicyDocument"`
	Description              string `json:"description,omitempty"`
	// MaxSessionDuration is the longest session AssumeRole may grant, in
	// seconds (3600 to 43200).
	MaxSessionDuration int   `json:"maxSessionDuration"`
	Tags               []Tag `json:"tags,omitempty"`
	// PermissionsBoundary is a managed policy ARN, "" for none.
	PermissionsBoundary string         `json:"permissionsBoundary,omitempty"`
	Policies            EntityPolicies `json:"policies"`
}

func (r *Role) policies() *EntityPolicies { return &r.Policies }
func (r *Role) boundary() *string         { return &r.PermissionsBoundary }
func (r *Role) tags() *[]Tag              { return &r.Tags }
func (r *Role) displayName() string       { return r.RoleName }

// maxTrustPolicySize is AWS's ACLSizePerRole quota.
const maxTrustPolicySize = 2048

func roleMissing(name string) error {
	return noSuchEntity("The role with name %s cannot be found.", name)
}

// CreateRoleInput is what CreateRole takes.
type CreateRoleInput struct {
	RoleName                 string
	Path                     string
	AssumeRolePolicyDocument string
	Description              string
	// MaxSessionDuration in seconds; 0 means the default, 3600.
	MaxSessionDuration  int
	PermissionsBoundary string
	Tags                []Tag
}

// checkTrustPolicy validates a role's trust policy.
func checkTrustPolicy(doc string) error {
	if _, err := parseDocument(doc, policy.KindTrust); err != nil {
		return err
	}
	if n := policySize(doc); n > maxTrustPolicySize {
		return limitExceeded("Cannot exceed quota for ACLSizePerRole: %d (this trust policy has %d characters besides white space).", maxTrustPolicySize, n)
	}
	return nil
}

// CreateRole creates a role (id AROA…, ARN arn:aws:iam::<account>:role<path><name>)
// with a trust policy saying who may assume it.
func (i *IAM) CreateRole(ctx context.Context, account string, in CreateRoleInput) (Role, error) {
	var v validator
	v.path("path", in.Path)
	v.name("roleName", in.RoleName, maxRoleName)
	v.document("assumeRolePolicyDocument", in.AssumeRolePolicyDocument)
	v.str("description", in.Description, 0, maxDescription, patDescription)
	if in.MaxSessionDuration != 0 {
		v.intRange("maxSessionDuration", in.MaxSessionDuration, minSessionDuration, maxSessionDuration)
	}
	if in.PermissionsBoundary != "" {
		v.arn("permissionsBoundary", in.PermissionsBoundary)
	}
	v.tags("tags", in.Tags)
	if err := v.err(); err != nil {
		return Role{}, err
	}
	if err := checkTags(in.Tags); err != nil {
		return Role{}, err
	}
	if err := checkTrustPolicy(in.AssumeRolePolicyDocument); err != nil {
		return Role{}, err
	}
	path := defaultPath(in.Path)
	r := Role{
		RoleName: in.RoleName, Path: path, RoleID: newID(prefixRole),
		ARN: iamARN(account, "role", path, in.RoleName), CreateDate: i.stamp(),
		AssumeRolePolicyDocument: in.AssumeRolePolicyDocument, Description: in.Description,
		MaxSessionDuration: in.MaxSessionDuration, Tags: in.Tags,
	}
	if r.MaxSessionDuration == 0 {
		r.MaxSessionDuration = defaultSessionDuration
	}
	key := objKey(account, folderRoles, in.RoleName)
	err := i.atomically(ctx, func() ([]store.Op, error) {
		if existing, _, err := store.Load[Role](ctx, i.st, key); err == nil {
			return nil, alreadyExists("Role with name %s already exists.", existing.RoleName)
		} else if !isNotFound(err) {
			return nil, err
		}
		var ops []store.Op
		if in.PermissionsBoundary != "" {
			ref, err := i.findPolicy(ctx, account, in.PermissionsBoundary, policyNotAttachable)
			if err != nil {
				return nil, err
			}
			r.PermissionsBoundary = ref.p.ARN
			ops = ref.touchOp()
		}
		return append(ops, store.OpCreate(key, r)), nil
	})
	if err != nil {
		return Role{}, err
	}
	return r, nil
}

// GetRole returns a role; the name is matched without regard to case.
func (i *IAM) GetRole(ctx context.Context, accountID, roleName string) (Role, error) {
	var v validator
	v.name("roleName", roleName, maxRoleName)
	if err := v.err(); err != nil {
		return Role{}, err
	}
	r, _, err := load[Role](ctx, i.st, objKey(accountID, folderRoles, roleName), func() error { return roleMissing(roleName) })
	return r, err
}

// ListRoles returns the account's roles whose path starts with
// pathPrefix, sorted by name.
func (i *IAM) ListRoles(ctx context.Context, account, pathPrefix string) ([]Role, error) {
	var v validator
	v.pathPrefix("pathPrefix", pathPrefix)
	if err := v.err(); err != nil {
		return nil, err
	}
	roles, err := store.ListAs[Role](ctx, i.st, folderKey(account, folderRoles))
	if err != nil {
		return nil, err
	}
	out := roles[:0]
	for _, r := range roles {
		if strings.HasPrefix(r.Path, pathPrefix) {
			out = append(out, r)
		}
	}
	return out, nil
}

// DeleteRole deletes a role that is in no instance profile and has no
// policies.
func (i *IAM) DeleteRole(ctx context.Context, account, name string) error {
	var v validator
	v.name("roleName", name, maxRoleName)
	if err := v.err(); err != nil {
		return err
	}
	key := objKey(account, folderRoles, name)
	return i.atomically(ctx, func() ([]store.Op, error) {
		r, rev, err := load[Role](ctx, i.st, key, func() error { return roleMissing(name) })
		if err != nil {
			return nil, err
		}
		profiles, err := i.profilesWithRole(ctx, account, r.RoleName)
		if err != nil {
			return nil, err
		}
		switch {
		case len(profiles) > 0:
			return nil, deleteConflict("Cannot delete entity, must remove roles from instance profile first. Role %s is in instance profile %s.", r.RoleName, profiles[0].InstanceProfileName)
		case len(r.Policies.Inline) > 0:
			return nil, deleteConflict("Cannot delete entity, must delete policies first. Role %s has inline policies (list them with ListRolePolicies).", r.RoleName)
		case len(r.Policies.Attached) > 0:
			return nil, deleteConflict("Cannot delete entity, must detach all policies first. Role %s has attached policies (list them with ListAttachedRolePolicies).", r.RoleName)
		}
		return []store.Op{store.OpDeleteIf(key, rev)}, nil
	})
}

// UpdateAssumeRolePolicy replaces a role's trust policy.
func (i *IAM) UpdateAssumeRolePolicy(ctx context.Context, account, name, document string) error {
	var v validator
	v.name("roleName", name, maxRoleName)
	v.document("policyDocument", document)
	if err := v.err(); err != nil {
		return err
	}
	if err := checkTrustPolicy(document); err != nil {
		return err
	}
	return i.updateEntity(ctx, account, RoleEntity(name), func(ent entity) ([]store.Op, error) {
		ent.(*Role).AssumeRolePolicyDocument = document
		return nil, nil
	})
}

// UpdateRole changes a role's description and maximum session duration
// (nil leaves a field as it is).
func (i *IAM) UpdateRole(ctx context.Context, account, name string, description *string, maxSession *int) error {
	var v validator
	v.name("roleName", name, maxRoleName)
	if description != nil {
		v.str("description", *description, 0, maxDescription, patDescription)
	}
	if maxSession != nil {
		v.intRange("maxSessionDuration", *maxSession, minSessionDuration, maxSessionDuration)
	}
	if err := v.err(); err != nil {
		return err
	}
	return i.updateEntity(ctx, account, RoleEntity(name), func(ent entity) ([]store.Op, error) {
		r := ent.(*Role)
		if description != nil {
			r.Description = *description
		}
		if maxSession != nil {
			r.MaxSessionDuration = *maxSession
		}
		return nil, nil
	})
}
