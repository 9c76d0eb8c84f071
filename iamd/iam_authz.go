package iamd

import (
	"context"
	"fmt"

	"github.com/labcloud/labcloud/iamd/policy"
)

// PrincipalPolicies is everything the authorizer needs about a user or
// role: its identity policies (for a user, its own and its groups'),
// parsed, with where each came from; its permissions boundary; its tags
// (aws:PrincipalTag/*); and the id, ARN and path that name it.
type PrincipalPolicies struct {
	Identity []policy.NamedPolicy
	// Boundary is nil when the principal has no permissions boundary.
	Boundary *policy.NamedPolicy
	Tags     map[string]string
	// ID is the user's AIDA… or the role's AROA… id.
	ID   string
	ARN  string
	Path string
}

// UserPolicies collects a user's policies: its inline policies, the
// default versions of its attached managed policies, and the same for
// every group it belongs to, plus its permissions boundary. Inline
// policies have Source.ID "user/<user>/<policy>" (or "group/<group>/<policy>"),
// managed ones their ARN.
func (i *IAM) UserPolicies(ctx context.Context, accountID, userName string) (PrincipalPolicies, error) {
	u, err := i.GetUser(ctx, accountID, userName)
	if err != nil {
		return PrincipalPolicies{}, err
	}
	pp := PrincipalPolicies{ID: u.UserID, ARN: u.ARN, Path: u.Path, Tags: TagMap(u.Tags), Identity: []policy.NamedPolicy{}}
	if err := i.addEntityPolicies(ctx, accountID, &pp, "user/"+u.UserName, u.Policies); err != nil {
		return PrincipalPolicies{}, err
	}
	for _, gname := range u.Groups {
		g, _, err := load[Group](ctx, i.st, objKey(accountID, folderGroups, gname), func() error { return groupMissing(gname) })
		if err != nil {
			return PrincipalPolicies{}, fmt.Errorf("group %s of user %s: %w", gname, u.UserName, err)
		}
		if err := i.addEntityPolicies(ctx, accountID, &pp, "group/"+g.GroupName, g.Policies); err != nil {
			return PrincipalPolicies{}, err
		}
	}
	if pp.Boundary, err = i.boundaryPolicy(ctx, accountID, u.PermissionsBoundary); err != nil {
		return PrincipalPolicies{}, err
	}
	return pp, nil
}

// RolePolicies collects a role's inline and attached policies and its
// permissions boundary. Inline policies have Source.ID "role/<role>/<policy>".
func (i *IAM) RolePolicies(ctx context.Context, accountID, roleName string) (PrincipalPolicies, error) {
	r, err := i.GetRole(ctx, accountID, roleName)
	if err != nil {
		return PrincipalPolicies{}, err
	}
	pp := PrincipalPolicies{ID: r.RoleID, ARN: r.ARN, Path: r.Path, Tags: TagMap(r.Tags), Identity: []policy.NamedPolicy{}}
	if err := i.addEntityPolicies(ctx, accountID, &pp, "role/"+r.RoleName, r.Policies); err != nil {
		return PrincipalPolicies{}, err
	}
	if pp.Boundary, err = i.boundaryPolicy(ctx, accountID, r.PermissionsBoundary); err != nil {
		return PrincipalPolicies{}, err
	}
	return pp, nil
}

// GroupPolicies collects a group's inline and attached policies (for
// SimulatePrincipalPolicy on a group). ID, ARN and Path name the group;
// groups have no tags and no boundary.
func (i *IAM) GroupPolicies(ctx context.Context, accountID, groupName string) (PrincipalPolicies, error) {
	var v validator
	v.name("groupName", groupName, maxGroupName)
	if err := v.err(); err != nil {
		return PrincipalPolicies{}, err
	}
	g, _, err := load[Group](ctx, i.st, objKey(accountID, folderGroups, groupName), func() error { return groupMissing(groupName) })
	if err != nil {
		return PrincipalPolicies{}, err
	}
	pp := PrincipalPolicies{ID: g.GroupID, ARN: g.ARN, Path: g.Path, Tags: map[string]string{}, Identity: []policy.NamedPolicy{}}
	if err := i.addEntityPolicies(ctx, accountID, &pp, "group/"+g.GroupName, g.Policies); err != nil {
		return PrincipalPolicies{}, err
	}
	return pp, nil
}

// addEntityPolicies parses an entity's inline and attached policies into
// pp.Identity. owner is "user/<name>", "group/<name>" or "role/<name>".
func (i *IAM) addEntityPolicies(ctx context.Context, account string, pp *PrincipalPolicies, owner string, ep EntityPolicies) error {
	for _, ip := range ep.Inline {
		p, err := parseDocument(ip.Document, policy.KindIdentity)
		if err != nil {
			return fmt.Errorf("inline policy %s of %s: %w", ip.Name, owner, err)
		}
		pp.Identity = append(pp.Identity, policy.NamedPolicy{
			Source: policy.Source{Type: policy.SourceIAMPolicy, ID: owner + "/" + ip.Name, Name: ip.Name},
			Policy: p,
		})
	}
	for _, arn := range ep.Attached {
		p, _, err := i.GetManagedPolicyDocument(ctx, account, arn)
		if err != nil {
			return fmt.Errorf("managed policy %s attached to %s: %w", arn, owner, err)
		}
		pp.Identity = append(pp.Identity, policy.NamedPolicy{
			Source: policy.Source{Type: policy.SourceIAMPolicy, ID: arn, Name: attachedFromARN(arn).PolicyName},
			Policy: p,
		})
	}
	return nil
}

// boundaryPolicy parses the permissions boundary with the given ARN, nil
// for "".
func (i *IAM) boundaryPolicy(ctx context.Context, account, arn string) (*policy.NamedPolicy, error) {
	if arn == "" {
		return nil, nil
	}
	_, doc, err := i.GetManagedPolicyDocument(ctx, account, arn)
	if err != nil {
		return nil, fmt.Errorf("permissions boundary %s: %w", arn, err)
	}
	p, err := parseDocument(doc, policy.KindBoundary)
	if err != nil {
		return nil, fmt.Errorf("permissions boundary %s: %w", arn, err)
	}
	return &policy.NamedPolicy{
		Source: policy.Source{Type: policy.SourceBoundary, ID: arn, Name: attachedFromARN(arn).PolicyName},
		Policy: p,
	}, nil
}
