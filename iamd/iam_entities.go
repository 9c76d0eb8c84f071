package iamd

import (
	"context"
	"errors"
	"fmt"
	"sort"
	"strings"

	"github.com/labcloud/labcloud/iamd/policy"
	"github.com/labcloud/labcloud/internal/store"
)

// What differs between users, groups and roles when policies attach.
var entityKinds = map[EntityType]struct {
	folder    string
	field     string // the request parameter, as ValidationError names it
	lookupMax int    // longest name a lookup accepts
	quota     string // AWS's quota name for attached policies
	inlineMax int    // aggregate inline policy size, without white space
}{
	EntityUser:  {folderUsers, "userName", 128, "PoliciesPerUser", 2048},
	EntityGroup: {folderGroups, "groupName", maxGroupName, "PoliciesPerGroup", 5120},
	EntityRole:  {folderRoles, "roleName", maxRoleName, "PoliciesPerRole", 10240},
}

func (e Entity) field() string  { return entityKinds[e.Type].field }
func (e Entity) lookupMax() int { return entityKinds[e.Type].lookupMax }
func (e Entity) key(account string) string {
	return objKey(account, entityKinds[e.Type].folder, e.Name)
}

// missing is AWS's NoSuchEntity for the entity.
func (e Entity) missing() error {
	return noSuchEntity("The %s with name %s cannot be found.", e.Type, e.Name)
}

// validate checks the entity's name.
func (e Entity) validate(v *validator) {
	if _, ok := entityKinds[e.Type]; !ok {
		v.msgs = append(v.msgs, fmt.Sprintf("unknown entity type %q", e.Type))
		return
	}
	v.name(e.field(), e.Name, e.lookupMax())
}

// loadEntity reads a user, group or role with its store key and revision.
func (i *IAM) loadEntity(ctx context.Context, account string, e Entity) (entity, string, int64, error) {
	var v validator
	e.validate(&v)
	if err := v.err(); err != nil {
		return nil, "", 0, err
	}
	key := e.key(account)
	var (
		ent entity
		rev int64
		err error
	)
	switch e.Type {
	case EntityUser:
		var u User
		u, rev, err = load[User](ctx, i.st, key, e.missing)
		ent = &u
	case EntityGroup:
		var g Group
		g, rev, err = load[Group](ctx, i.st, key, e.missing)
		ent = &g
	case EntityRole:
		var r Role
		r, rev, err = load[Role](ctx, i.st, key, e.missing)
		ent = &r
	}
	if err != nil {
		return nil, "", 0, err
	}
	return ent, key, rev, nil
}

// updateEntity is a read-modify-write of one entity: fn changes it in
// place and may return more writes for the same transaction. fn returning
// errNoChange commits nothing.
func (i *IAM) updateEntity(ctx context.Context, account string, e Entity, fn func(entity) ([]store.Op, error)) error {
	return i.atomically(ctx, func() ([]store.Op, error) {
		ent, key, rev, err := i.loadEntity(ctx, account, e)
		if err != nil {
			return nil, err
		}
		extra, err := fn(ent)
		if errors.Is(err, errNoChange) {
			return nil, nil
		}
		if err != nil {
			return nil, err
		}
		return append([]store.Op{store.OpCompareAndSwap(key, ent, rev)}, extra...), nil
	})
}

// errNoChange tells updateEntity that there is nothing to write.
var errNoChange = errors.New("no change")

// inlineMissing is AWS's NoSuchEntity for an inline policy.
func inlineMissing(e Entity, name string) error {
	return noSuchEntity("The %s policy with name %s cannot be found.", e.Type, name)
}

// PutInlinePolicy adds or replaces an inline policy of a user, group or
// role. The document must be a valid identity policy, and the entity's
// inline policies together must stay within AWS's size quota (2048
// characters for a user, 5120 for a group, 10240 for a role, white space
// not counted).
func (i *IAM) PutInlinePolicy(ctx context.Context, account string, e Entity, name, document string) error {
	var v validator
	e.validate(&v)
	v.name("policyName", name, maxPolicyName)
	v.document("policyDocument", document)
	if err := v.err(); err != nil {
		return err
	}
	if _, err := parseDocument(document, policy.KindIdentity); err != nil {
		return err
	}
	return i.updateEntity(ctx, account, e, func(ent entity) ([]store.Op, error) {
		p := ent.policies()
		kept := p.Inline[:0:0]
		size := policySize(document)
		for _, ip := range p.Inline {
			if !strings.EqualFold(ip.Name, name) {
				kept = append(kept, ip)
				size += policySize(ip.Document)
			}
		}
		if max := entityKinds[e.Type].inlineMax; size > max {
			return nil, limitExceeded("Maximum policy size of %d bytes exceeded for %s %s. Move some permissions into a managed policy and attach it instead.", max, e.Type, ent.displayName())
		}
		kept = append(kept, InlinePolicy{Name: name, Document: document})
		sort.Slice(kept, func(a, b int) bool { return strings.ToLower(kept[a].Name) < strings.ToLower(kept[b].Name) })
		p.Inline = kept
		return nil, nil
	})
}

// GetInlinePolicy returns one inline policy of a user, group or role, and
// the entity's name as it was created (lookups ignore case).
func (i *IAM) GetInlinePolicy(ctx context.Context, account string, e Entity, name string) (InlinePolicy, string, error) {
	var v validator
	v.name("policyName", name, maxPolicyName)
	if err := v.err(); err != nil {
		return InlinePolicy{}, "", err
	}
	ent, _, _, err := i.loadEntity(ctx, account, e)
	if err != nil {
		return InlinePolicy{}, "", err
	}
	for _, ip := range ent.policies().Inline {
		if strings.EqualFold(ip.Name, name) {
			return ip, ent.displayName(), nil
		}
	}
	return InlinePolicy{}, "", inlineMissing(e, name)
}

// DeleteInlinePolicy removes an inline policy.
func (i *IAM) DeleteInlinePolicy(ctx context.Context, account string, e Entity, name string) error {
	var v validator
	v.name("policyName", name, maxPolicyName)
	if err := v.err(); err != nil {
		return err
	}
	return i.updateEntity(ctx, account, e, func(ent entity) ([]store.Op, error) {
		p := ent.policies()
		for n, ip := range p.Inline {
			if strings.EqualFold(ip.Name, name) {
				p.Inline = append(p.Inline[:n:n], p.Inline[n+1:]...)
				return nil, nil
			}
		}
		return nil, inlineMissing(e, name)
	})
}

// ListInlinePolicies returns the names of an entity's inline policies.
func (i *IAM) ListInlinePolicies(ctx context.Context, account string, e Entity) ([]string, error) {
	ent, _, _, err := i.loadEntity(ctx, account, e)
	if err != nil {
		return nil, err
	}
	names := []string{}
	for _, ip := range ent.policies().Inline {
		names = append(names, ip.Name)
	}
	return names, nil
}

// AttachedPolicy is a managed policy attached to an entity.
type AttachedPolicy struct {
	PolicyName string
	PolicyARN  string
}

// attachedFromARN names an attached policy by its ARN's last segment.
func attachedFromARN(arn string) AttachedPolicy {
	return AttachedPolicy{PolicyName: arn[strings.LastIndex(arn, "/")+1:], PolicyARN: arn}
}

// AttachPolicy attaches a managed policy (customer-managed in the account,
// or AWS-managed) to a user, group or role; attaching it again does
// nothing. An entity has at most ten attached policies.
func (i *IAM) AttachPolicy(ctx context.Context, account string, e Entity, arn string) error {
	var v validator
	e.validate(&v)
	v.arn("policyArn", arn)
	if err := v.err(); err != nil {
		return err
	}
	return i.updateEntity(ctx, account, e, func(ent entity) ([]store.Op, error) {
		ref, err := i.findPolicy(ctx, account, arn, policyNotAttachable)
		if err != nil {
			return nil, err
		}
		p := ent.policies()
		for _, a := range p.Attached {
			if a == ref.p.ARN {
				return nil, errNoChange
			}
		}
		if len(p.Attached) >= maxAttachedPolicies {
			return nil, limitExceeded("Cannot exceed quota for %s: %d. Detach a policy from %s %s first.", entityKinds[e.Type].quota, maxAttachedPolicies, e.Type, ent.displayName())
		}
		p.Attached = append(p.Attached, ref.p.ARN)
		return ref.touchOp(), nil
	})
}

// DetachPolicy detaches a managed policy from a user, group or role.
func (i *IAM) DetachPolicy(ctx context.Context, account string, e Entity, arn string) error {
	var v validator
	e.validate(&v)
	v.arn("policyArn", arn)
	if err := v.err(); err != nil {
		return err
	}
	if _, err := ParsePolicyARN(arn); err != nil {
		return err
	}
	return i.updateEntity(ctx, account, e, func(ent entity) ([]store.Op, error) {
		p := ent.policies()
		for n, a := range p.Attached {
			if strings.EqualFold(a, arn) {
				p.Attached = append(p.Attached[:n:n], p.Attached[n+1:]...)
				return nil, nil
			}
		}
		return nil, noSuchEntity("Policy %s was not found.", arn)
	})
}

// ListAttachedPolicies returns the managed policies attached to a user,
// group or role whose path starts with pathPrefix, in attach order.
func (i *IAM) ListAttachedPolicies(ctx context.Context, account string, e Entity, pathPrefix string) ([]AttachedPolicy, error) {
	var v validator
	if pathPrefix != "" {
		v.str("pathPrefix", pathPrefix, 1, maxPath, patPolicyPath)
	}
	if err := v.err(); err != nil {
		return nil, err
	}
	ent, _, _, err := i.loadEntity(ctx, account, e)
	if err != nil {
		return nil, err
	}
	out := []AttachedPolicy{}
	for _, a := range ent.policies().Attached {
		pa, err := ParsePolicyARN(a)
		if err == nil && strings.HasPrefix(pa.Path, pathPrefix) {
			out = append(out, attachedFromARN(a))
		}
	}
	return out, nil
}

// PutPermissionsBoundary sets the managed policy that bounds a user's or
// role's permissions.
func (i *IAM) PutPermissionsBoundary(ctx context.Context, account string, e Entity, arn string) error {
	var v validator
	e.validate(&v)
	v.arn("permissionsBoundary", arn)
	if err := v.err(); err != nil {
		return err
	}
	return i.updateEntity(ctx, account, e, func(ent entity) ([]store.Op, error) {
		b := ent.boundary()
		if b == nil {
			return nil, invalidInput("A %s cannot have a permissions boundary; only users and roles can.", e.Type)
		}
		ref, err := i.findPolicy(ctx, account, arn, policyNotAttachable)
		if err != nil {
			return nil, err
		}
		if *b == ref.p.ARN {
			return nil, errNoChange
		}
		*b = ref.p.ARN
		return ref.touchOp(), nil
	})
}

// DeletePermissionsBoundary removes a user's or role's permissions
// boundary; without one it does nothing.
func (i *IAM) DeletePermissionsBoundary(ctx context.Context, account string, e Entity) error {
	return i.updateEntity(ctx, account, e, func(ent entity) ([]store.Op, error) {
		b := ent.boundary()
		if b == nil {
			return nil, invalidInput("A %s cannot have a permissions boundary; only users and roles can.", e.Type)
		}
		if *b == "" {
			return nil, errNoChange
		}
		*b = ""
		return nil, nil
	})
}
