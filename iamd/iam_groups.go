package iamd

import (
	"context"
	"strings"
	"time"

	"github.com/labcloud/labcloud/internal/store"
)

// Group is an IAM group, stored under iam/<account>/groups/<lower-case
// name>. Its members are the users whose Groups name it.
type Group struct {
	GroupName  string         `json:"groupName"`
	Path       string         `json:"path"`
	GroupID    string         `json:"groupId"`
	ARN        string         `json:"arn"`
	CreateDate time.Time      `json:"createDate"`
	Policies   EntityPolicies `json:"policies"`
}

func (g *Group) policies() *EntityPolicies { return &g.Policies }
func (g *Group) boundary() *string         { return nil }
func (g *Group) displayName() string       { return g.GroupName }

func groupMissing(name string) error {
	return noSuchEntity("The group with name %s cannot be found.", name)
}

// CreateGroup creates a group (id AGPA…, ARN arn:aws:iam::<account>:group<path><name>).
func (i *IAM) CreateGroup(ctx context.Context, account, name, path string) (Group, error) {
	var v validator
	v.path("path", path)
	v.name("groupName", name, maxGroupName)
	if err := v.err(); err != nil {
		return Group{}, err
	}
	path = defaultPath(path)
	g := Group{GroupName: name, Path: path, GroupID: newID(prefixGroup),
		ARN: iamARN(account, "group", path, name), CreateDate: i.stamp()}
	key := objKey(account, folderGroups, name)
	err := i.atomically(ctx, func() ([]store.Op, error) {
		if existing, _, err := store.Load[Group](ctx, i.st, key); err == nil {
			return nil, alreadyExists("Group with name %s already exists.", existing.GroupName)
		} else if !isNotFound(err) {
			return nil, err
		}
		return []store.Op{store.OpCreate(key, g)}, nil
	})
	if err != nil {
		return Group{}, err
	}
	return g, nil
}

// GetGroup returns a group and its members, sorted by name.
func (i *IAM) GetGroup(ctx context.Context, account, name string) (Group, []User, error) {
	var v validator
	v.name("groupName", name, maxGroupName)
	if err := v.err(); err != nil {
		return Group{}, nil, err
	}
	g, _, err := load[Group](ctx, i.st, objKey(account, folderGroups, name), func() error { return groupMissing(name) })
	if err != nil {
		return Group{}, nil, err
	}
	members, err := i.groupMembers(ctx, account, g.GroupName)
	return g, members, err
}

// groupMembers lists the users that belong to a group.
func (i *IAM) groupMembers(ctx context.Context, account, group string) ([]User, error) {
	users, err := store.ListAs[User](ctx, i.st, folderKey(account, folderUsers))
	if err != nil {
		return nil, err
	}
	out := []User{}
	for _, u := range users {
		if memberOf(u, group) {
			out = append(out, u)
		}
	}
	return out, nil
}

func memberOf(u User, group string) bool {
	for _, g := range u.Groups {
		if strings.EqualFold(g, group) {
			return true
		}
	}
	return false
}

// ListGroups returns the account's groups whose path starts with
// pathPrefix, sorted by name.
func (i *IAM) ListGroups(ctx context.Context, account, pathPrefix string) ([]Group, error) {
	var v validator
	v.pathPrefix("pathPrefix", pathPrefix)
	if err := v.err(); err != nil {
		return nil, err
	}
	groups, err := store.ListAs[Group](ctx, i.st, folderKey(account, folderGroups))
	if err != nil {
		return nil, err
	}
	out := groups[:0]
	for _, g := range groups {
		if strings.HasPrefix(g.Path, pathPrefix) {
			out = append(out, g)
		}
	}
	return out, nil
}

// DeleteGroup deletes a group without members or policies.
func (i *IAM) DeleteGroup(ctx context.Context, account, name string) error {
	var v validator
	v.name("groupName", name, maxGroupName)
	if err := v.err(); err != nil {
		return err
	}
	key := objKey(account, folderGroups, name)
	return i.atomically(ctx, func() ([]store.Op, error) {
		g, rev, err := load[Group](ctx, i.st, key, func() error { return groupMissing(name) })
		if err != nil {
			return nil, err
		}
		members, err := i.groupMembers(ctx, account, g.GroupName)
		if err != nil {
			return nil, err
		}
		switch {
		case len(members) > 0:
			return nil, deleteConflict("Cannot delete entity, must remove users from group first. Group %s has %d member(s), e.g. %s.", g.GroupName, len(members), members[0].UserName)
		case len(g.Policies.Inline) > 0:
			return nil, deleteConflict("Cannot delete entity, must delete policies first. Group %s has inline policies (list them with ListGroupPolicies).", g.GroupName)
		case len(g.Policies.Attached) > 0:
			return nil, deleteConflict("Cannot delete entity, must detach all policies first. Group %s has attached policies (list them with ListAttachedGroupPolicies).", g.GroupName)
		}
		// A member added after the listing above touched the group, so
		// this delete then fails and the check runs again.
		return []store.Op{store.OpDeleteIf(key, rev)}, nil
	})
}

// AddUserToGroup makes a user a member of a group; adding a member again
// does nothing. A user belongs to at most ten groups.
func (i *IAM) AddUserToGroup(ctx context.Context, account, group, user string) error {
	var v validator
	v.name("groupName", group, maxGroupName)
	v.name("userName", user, 128)
	if err := v.err(); err != nil {
		return err
	}
	gkey, ukey := objKey(account, folderGroups, group), objKey(account, folderUsers, user)
	return i.atomically(ctx, func() ([]store.Op, error) {
		g, grev, err := load[Group](ctx, i.st, gkey, func() error { return groupMissing(group) })
		if err != nil {
			return nil, err
		}
		u, urev, err := load[User](ctx, i.st, ukey, func() error { return userMissing(user) })
		if err != nil {
			return nil, err
		}
		if memberOf(u, g.GroupName) {
			return nil, nil
		}
		if len(u.Groups) >= maxGroupsPerUser {
			return nil, limitExceeded("Cannot exceed quota for GroupsPerUser: %d. Remove %s from a group first.", maxGroupsPerUser, u.UserName)
		}
		u.Groups = append(u.Groups, g.GroupName)
		return []store.Op{store.OpCompareAndSwap(ukey, u, urev), touch(gkey, g, grev)}, nil
	})
}

// RemoveUserFromGroup ends a user's membership of a group.
func (i *IAM) RemoveUserFromGroup(ctx context.Context, account, group, user string) error {
	var v validator
	v.name("groupName", group, maxGroupName)
	v.name("userName", user, 128)
	if err := v.err(); err != nil {
		return err
	}
	gkey, ukey := objKey(account, folderGroups, group), objKey(account, folderUsers, user)
	return i.atomically(ctx, func() ([]store.Op, error) {
		if _, err := i.st.Get(ctx, gkey, nil); isNotFound(err) {
			return nil, groupMissing(group)
		} else if err != nil {
			return nil, err
		}
		u, urev, err := load[User](ctx, i.st, ukey, func() error { return userMissing(user) })
		if err != nil {
			return nil, err
		}
		for n, g := range u.Groups {
			if strings.EqualFold(g, group) {
				u.Groups = append(u.Groups[:n:n], u.Groups[n+1:]...)
				return []store.Op{store.OpCompareAndSwap(ukey, u, urev)}, nil
			}
		}
		return nil, noSuchEntity("The user with name %s cannot be found in group %s.", user, group)
	})
}

// ListGroupsForUser returns the groups a user belongs to, sorted by name.
func (i *IAM) ListGroupsForUser(ctx context.Context, account, user string) ([]Group, error) {
	u, err := i.GetUser(ctx, account, user)
	if err != nil {
		return nil, err
	}
	groups, err := store.ListAs[Group](ctx, i.st, folderKey(account, folderGroups))
	if err != nil {
		return nil, err
	}
	out := []Group{}
	for _, g := range groups {
		if memberOf(u, g.GroupName) {
			out = append(out, g)
		}
	}
	return out, nil
}
