package iamd

import (
	"context"
	"strings"
	"time"

	"github.com/labcloud/labcloud/internal/store"
)

// User is an IAM user, stored under iam/<account>/users/<lower-case name>.
// Its group memberships and access keys are listed here, so that the
// checks DeleteUser makes and the quotas on both are one read.
type User struct {
	UserName   string    `json:"userName"`
	Path       string    `json:"path"`
	UserID     string    `json:"userId"`
	ARN        string    `json:"arn"`
	CreateDate time.Time `json:"createDate"`
	Tags       []Tag     `json:"tags,omitempty"`
	// PermissionsBoundary is the ARN of the managed policy that bounds
	// the user's permissions, "" for none.
	PermissionsBoundary string `json:"permissionsBoundary,omitempty"`
	// Groups are the names of the groups the user belongs to, in the order
	// it was added to them.
	Groups []string `json:"groups,omitempty"`
	// AccessKeys are the ids of the user's access keys (records under
	// accesskeys/<id>, where SigV4 verification finds them).
	AccessKeys []string       `json:"accessKeys,omitempty"`
	Policies   EntityPolicies `json:"policies"`
}

func (u *User) policies() *EntityPolicies { return &u.Policies }
func (u *User) boundary() *string         { return &u.PermissionsBoundary }
func (u *User) tags() *[]Tag              { return &u.Tags }
func (u *User) displayName() string       { return u.UserName }

// Quotas on users, AWS's defaults.
const (
	maxGroupsPerUser     = 10
	maxAccessKeysPerUser = 2
)

func userMissing(name string) error {
	return noSuchEntity("The user with name %s cannot be found.", name)
}

// CreateUserInput is what CreateUser takes.
type CreateUserInput struct {
	UserName string
	// Path defaults to "/".
	Path string
	// PermissionsBoundary is a managed policy ARN, or "".
	PermissionsBoundary string
	Tags                []Tag
}

// CreateUser creates an IAM user. Its id starts with AIDA and its ARN is
// arn:aws:iam::<account>:user<path><name>.
func (i *IAM) CreateUser(ctx context.Context, account string, in CreateUserInput) (User, error) {
	var v validator
	v.path("path", in.Path)
	v.name("userName", in.UserName, maxUserName)
	if in.PermissionsBoundary != "" {
		v.arn("permissionsBoundary", in.PermissionsBoundary)
	}
	v.tags("tags", in.Tags)
	if err := v.err(); err != nil {
		return User{}, err
	}
	if err := checkTags(in.Tags); err != nil {
		return User{}, err
	}
	path := defaultPath(in.Path)
	u := User{
		UserName: in.UserName, Path: path, UserID: newID(prefixUser),
		ARN: iamARN(account, "user", path, in.UserName), CreateDate: i.stamp(), Tags: in.Tags,
	}
	key := objKey(account, folderUsers, in.UserName)
	err := i.atomically(ctx, func() ([]store.Op, error) {
		if existing, _, err := store.Load[User](ctx, i.st, key); err == nil {
			return nil, alreadyExists("User with name %s already exists.", existing.UserName)
		} else if !isNotFound(err) {
			return nil, err
		}
		var ops []store.Op
		if in.PermissionsBoundary != "" {
			ref, err := i.findPolicy(ctx, account, in.PermissionsBoundary, policyNotAttachable)
			if err != nil {
				return nil, err
			}
			u.PermissionsBoundary = ref.p.ARN
			ops = ref.touchOp()
		}
		return append(ops, store.OpCreate(key, u)), nil
	})
	if err != nil {
		return User{}, err
	}
	return u, nil
}

// GetUser returns a user; the name is matched without regard to case.
func (i *IAM) GetUser(ctx context.Context, account, name string) (User, error) {
	var v validator
	v.name("userName", name, 128)
	if err := v.err(); err != nil {
		return User{}, err
	}
	u, _, err := load[User](ctx, i.st, objKey(account, folderUsers, name), func() error { return userMissing(name) })
	return u, err
}

// ListUsers returns the account's users whose path starts with
// pathPrefix, sorted by name.
func (i *IAM) ListUsers(ctx context.Context, account, pathPrefix string) ([]User, error) {
	var v validator
	v.pathPrefix("pathPrefix", pathPrefix)
	if err := v.err(); err != nil {
		return nil, err
	}
	users, err := store.ListAs[User](ctx, i.st, folderKey(account, folderUsers))
	if err != nil {
		return nil, err
	}
	out := users[:0]
	for _, u := range users {
		if strings.HasPrefix(u.Path, pathPrefix) {
			out = append(out, u)
		}
	}
	return out, nil
}

// DeleteUser deletes a user that has nothing left attached, as AWS
// requires: no access keys, no inline or attached policies, no groups.
func (i *IAM) DeleteUser(ctx context.Context, account, name string) error {
	if _, err := i.GetUser(ctx, account, name); err != nil {
		return err
	}
	key := objKey(account, folderUsers, name)
	return i.atomically(ctx, func() ([]store.Op, error) {
		u, rev, err := load[User](ctx, i.st, key, func() error { return userMissing(name) })
		if err != nil {
			return nil, err
		}
		switch {
		case len(u.AccessKeys) > 0:
			return nil, deleteConflict("Cannot delete entity, must delete access keys first. User %s has %d (list them with ListAccessKeys).", u.UserName, len(u.AccessKeys))
		case len(u.Policies.Inline) > 0:
			return nil, deleteConflict("Cannot delete entity, must delete policies first. User %s has inline policies (list them with ListUserPolicies).", u.UserName)
		case len(u.Policies.Attached) > 0:
			return nil, deleteConflict("Cannot delete entity, must detach all policies first. User %s has attached policies (list them with ListAttachedUserPolicies).", u.UserName)
		case len(u.Groups) > 0:
			return nil, deleteConflict("Cannot delete entity, must remove user from all groups first. User %s is in %s.", u.UserName, strings.Join(u.Groups, ", "))
		}
		return []store.Op{store.OpDeleteIf(key, rev)}, nil
	})
}

// UpdateUser renames a user or moves it to another path (either may be
// ""). The user's access key records follow in the same transaction, so
// its keys keep working under the new name.
func (i *IAM) UpdateUser(ctx context.Context, account, name, newName, newPath string) error {
	var v validator
	v.name("userName", name, 128)
	if newName != "" {
		v.name("newUserName", newName, maxUserName)
	}
	v.path("newPath", newPath)
	if err := v.err(); err != nil {
		return err
	}
	oldKey := objKey(account, folderUsers, name)
	return i.atomically(ctx, func() ([]store.Op, error) {
		u, rev, err := load[User](ctx, i.st, oldKey, func() error { return userMissing(name) })
		if err != nil {
			return nil, err
		}
		if newName == "" {
			newName = u.UserName
		}
		if newPath == "" {
			newPath = u.Path
		}
		u.UserName, u.Path = newName, newPath
		u.ARN = iamARN(account, "user", u.Path, u.UserName)
		newKey := objKey(account, folderUsers, newName)
		var ops []store.Op
		if newKey == oldKey {
			ops = append(ops, store.OpCompareAndSwap(oldKey, u, rev))
		} else {
			if other, _, err := store.Load[User](ctx, i.st, newKey); err == nil {
				return nil, alreadyExists("User with name %s already exists.", other.UserName)
			} else if !isNotFound(err) {
				return nil, err
			}
			ops = append(ops, store.OpDeleteIf(oldKey, rev), store.OpCreate(newKey, u))
		}
		for _, id := range u.AccessKeys {
			k, krev, err := store.Load[AccessKey](ctx, i.st, accessKeyKey(id))
			if err != nil {
				return nil, err
			}
			k.UserName = u.UserName
			ops = append(ops, store.OpCompareAndSwap(accessKeyKey(id), k, krev))
		}
		return ops, nil
	})
}

// taggable is an entity with tags: users and roles.
type taggable interface {
	entity
	tags() *[]Tag
}

// TagEntity adds tags to a user or role, replacing the values of keys it
// already has.
func (i *IAM) TagEntity(ctx context.Context, account string, e Entity, tags []Tag) error {
	var v validator
	v.name(e.field(), e.Name, e.lookupMax())
	v.tags("tags", tags)
	if err := v.err(); err != nil {
		return err
	}
	if err := checkTags(tags); err != nil {
		return err
	}
	return i.updateEntity(ctx, account, e, func(ent entity) ([]store.Op, error) {
		t, ok := ent.(taggable)
		if !ok {
			return nil, invalidInput("A %s cannot be tagged.", e.Type)
		}
		merged, err := mergeTags(*t.tags(), tags)
		if err != nil {
			return nil, err
		}
		*t.tags() = merged
		return nil, nil
	})
}

// UntagEntity removes tags from a user or role; keys it does not have are
// ignored.
func (i *IAM) UntagEntity(ctx context.Context, account string, e Entity, keys []string) error {
	var v validator
	v.name(e.field(), e.Name, e.lookupMax())
	v.tagKeys("tagKeys", keys)
	if err := v.err(); err != nil {
		return err
	}
	return i.updateEntity(ctx, account, e, func(ent entity) ([]store.Op, error) {
		t, ok := ent.(taggable)
		if !ok {
			return nil, invalidInput("A %s cannot be tagged.", e.Type)
		}
		*t.tags() = removeTags(*t.tags(), keys)
		return nil, nil
	})
}

// EntityTags returns the tags of a user or role.
func (i *IAM) EntityTags(ctx context.Context, account string, e Entity) ([]Tag, error) {
	ent, _, _, err := i.loadEntity(ctx, account, e)
	if err != nil {
		return nil, err
	}
	t, ok := ent.(taggable)
	if !ok {
		return nil, invalidInput("A %s cannot be tagged.", e.Type)
	}
	return *t.tags(), nil
}
