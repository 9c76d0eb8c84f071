package iamd

import (
	"context"
	"strings"
	"time"

	"github.com/labcloud/labcloud/internal/store"
)

// InstanceProfile is the container that passes a role to an EC2 instance,
// stored under iam/<account>/instanceprofiles/<lower-case name>.
type InstanceProfile struct {
	InstanceProfileName string    `json:"instanceProfileName"`
	Path                string    `json:"path"`
	InstanceProfileID   string    `json:"instanceProfileId"`
	ARN                 string    `json:"arn"`
	CreateDate          time.Time `json:"createDate"`
	Tags                []Tag     `json:"tags,omitempty"`
	// Roles names the profile's role: at most one, as in AWS.
	Roles []string `json:"roles,omitempty"`
}

// maxRolesPerProfile is AWS's InstanceSessionsPerInstanceProfile quota.
const maxRolesPerProfile = 1

func profileMissing(name string) error {
	return noSuchEntity("Instance Profile %s cannot be found.", name)
}

// CreateInstanceProfile creates an empty instance profile (id AIPA…, ARN
// arn:aws:iam::<account>:instance-profile<path><name>).
func (i *IAM) CreateInstanceProfile(ctx context.Context, account, name, path string, tags []Tag) (InstanceProfile, error) {
	var v validator
	v.name("instanceProfileName", name, maxInstanceProfileName)
	v.path("path", path)
	v.tags("tags", tags)
	if err := v.err(); err != nil {
		return InstanceProfile{}, err
	}
	if err := checkTags(tags); err != nil {
		return InstanceProfile{}, err
	}
	path = defaultPath(path)
	p := InstanceProfile{InstanceProfileName: name, Path: path, InstanceProfileID: newID(prefixInstanceProfile),
		ARN: iamARN(account, "instance-profile", path, name), CreateDate: i.stamp(), Tags: tags}
	key := objKey(account, folderInstanceProfiles, name)
	err := i.atomically(ctx, func() ([]store.Op, error) {
		if existing, _, err := store.Load[InstanceProfile](ctx, i.st, key); err == nil {
			return nil, alreadyExists("Instance Profile %s already exists.", existing.InstanceProfileName)
		} else if !isNotFound(err) {
			return nil, err
		}
		return []store.Op{store.OpCreate(key, p)}, nil
	})
	if err != nil {
		return InstanceProfile{}, err
	}
	return p, nil
}

// GetInstanceProfile returns an instance profile.
func (i *IAM) GetInstanceProfile(ctx context.Context, account, name string) (InstanceProfile, error) {
	var v validator
	v.name("instanceProfileName", name, maxInstanceProfileName)
	if err := v.err(); err != nil {
		return InstanceProfile{}, err
	}
	p, _, err := load[InstanceProfile](ctx, i.st, objKey(account, folderInstanceProfiles, name), func() error { return profileMissing(name) })
	return p, err
}

// ListInstanceProfiles returns the account's instance profiles whose path
// starts with pathPrefix, sorted by name.
func (i *IAM) ListInstanceProfiles(ctx context.Context, account, pathPrefix string) ([]InstanceProfile, error) {
	var v validator
	v.pathPrefix("pathPrefix", pathPrefix)
	if err := v.err(); err != nil {
		return nil, err
	}
	all, err := store.ListAs[InstanceProfile](ctx, i.st, folderKey(account, folderInstanceProfiles))
	if err != nil {
		return nil, err
	}
	out := all[:0]
	for _, p := range all {
		if strings.HasPrefix(p.Path, pathPrefix) {
			out = append(out, p)
		}
	}
	return out, nil
}

// profilesWithRole lists the instance profiles that hold a role.
func (i *IAM) profilesWithRole(ctx context.Context, account, role string) ([]InstanceProfile, error) {
	all, err := store.ListAs[InstanceProfile](ctx, i.st, folderKey(account, folderInstanceProfiles))
	if err != nil {
		return nil, err
	}
	out := []InstanceProfile{}
	for _, p := range all {
		for _, r := range p.Roles {
			if strings.EqualFold(r, role) {
				out = append(out, p)
				break
			}
		}
	}
	return out, nil
}

// ListInstanceProfilesForRole returns the instance profiles holding a role.
func (i *IAM) ListInstanceProfilesForRole(ctx context.Context, account, role string) ([]InstanceProfile, error) {
	r, err := i.GetRole(ctx, account, role)
	if err != nil {
		return nil, err
	}
	return i.profilesWithRole(ctx, account, r.RoleName)
}

// ProfileRoles returns the roles of an instance profile.
func (i *IAM) ProfileRoles(ctx context.Context, account string, p InstanceProfile) ([]Role, error) {
	out := []Role{}
	for _, name := range p.Roles {
		r, err := i.GetRole(ctx, account, name)
		if err != nil {
			return nil, err
		}
		out = append(out, r)
	}
	return out, nil
}

// DeleteInstanceProfile deletes an instance profile without a role.
func (i *IAM) DeleteInstanceProfile(ctx context.Context, account, name string) error {
	var v validator
	v.name("instanceProfileName", name, maxInstanceProfileName)
	if err := v.err(); err != nil {
		return err
	}
	key := objKey(account, folderInstanceProfiles, name)
	return i.atomically(ctx, func() ([]store.Op, error) {
		p, rev, err := load[InstanceProfile](ctx, i.st, key, func() error { return profileMissing(name) })
		if err != nil {
			return nil, err
		}
		if len(p.Roles) > 0 {
			return nil, deleteConflict("Cannot delete entity, must remove roles from instance profile first. Instance profile %s holds role %s.", p.InstanceProfileName, p.Roles[0])
		}
		return []store.Op{store.OpDeleteIf(key, rev)}, nil
	})
}

// AddRoleToInstanceProfile puts a role in an instance profile, which holds
// at most one.
func (i *IAM) AddRoleToInstanceProfile(ctx context.Context, account, profile, role string) error {
	var v validator
	v.name("instanceProfileName", profile, maxInstanceProfileName)
	v.name("roleName", role, maxRoleName)
	if err := v.err(); err != nil {
		return err
	}
	pkey, rkey := objKey(account, folderInstanceProfiles, profile), objKey(account, folderRoles, role)
	return i.atomically(ctx, func() ([]store.Op, error) {
		p, prev, err := load[InstanceProfile](ctx, i.st, pkey, func() error { return profileMissing(profile) })
		if err != nil {
			return nil, err
		}
		r, rrev, err := load[Role](ctx, i.st, rkey, func() error { return roleMissing(role) })
		if err != nil {
			return nil, err
		}
		for _, have := range p.Roles {
			if strings.EqualFold(have, r.RoleName) {
				return nil, alreadyExists("Role %s is already in instance profile %s.", r.RoleName, p.InstanceProfileName)
			}
		}
		if len(p.Roles) >= maxRolesPerProfile {
			return nil, limitExceeded("Cannot exceed quota for InstanceSessionsPerInstanceProfile: %d. Instance profile %s already holds role %s; remove it first.", maxRolesPerProfile, p.InstanceProfileName, p.Roles[0])
		}
		p.Roles = append(p.Roles, r.RoleName)
		// Touching the role makes a concurrent DeleteRole, which checked
		// for profiles before this, fail and check again.
		return []store.Op{store.OpCompareAndSwap(pkey, p, prev), touch(rkey, r, rrev)}, nil
	})
}

// RemoveRoleFromInstanceProfile takes a role out of an instance profile.
func (i *IAM) RemoveRoleFromInstanceProfile(ctx context.Context, account, profile, role string) error {
	var v validator
	v.name("instanceProfileName", profile, maxInstanceProfileName)
	v.name("roleName", role, maxRoleName)
	if err := v.err(); err != nil {
		return err
	}
	pkey := objKey(account, folderInstanceProfiles, profile)
	return i.atomically(ctx, func() ([]store.Op, error) {
		p, prev, err := load[InstanceProfile](ctx, i.st, pkey, func() error { return profileMissing(profile) })
		if err != nil {
			return nil, err
		}
		for n, have := range p.Roles {
			if strings.EqualFold(have, role) {
				p.Roles = append(p.Roles[:n:n], p.Roles[n+1:]...)
				return []store.Op{store.OpCompareAndSwap(pkey, p, prev)}, nil
			}
		}
		return nil, roleMissing(role)
	})
}
