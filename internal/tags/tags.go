// Package tags keeps the EC2 tags of every resource, whatever its kind, one
// object per account and resource: tags/<account>/<resource-id>.
//
// Tags belong to the account that set them, as in AWS, where tags put on a
// public or shared resource (a public AMI) are visible only to the account
// that put them. Resource kinds register how to tell whether an id exists
// (and is visible to the account), by id prefix, so CreateTags can refuse an
// unknown id with the resource's own NotFound code.
package tags

import (
	"context"
	"errors"
	"fmt"
	"sort"
	"strings"
	"sync"
	"unicode/utf8"

	"github.com/labcloud/labcloud/internal/errdefs"
	"github.com/labcloud/labcloud/internal/store"
)

// Limits of AWS EC2 tags.
const (
	MaxTagsPerResource = 50
	MaxKeyLength       = 128
	MaxValueLength     = 256
)

// Tag is one key and value.
type Tag struct {
	Key   string
	Value string
}

// DeleteTag names a tag to delete: by key alone (Value nil), or by key and
// value (deleted only when the value matches, as in AWS; an empty value
// matches only an empty value).
type DeleteTag struct {
	Key   string
	Value *string
}

// ResourceTag is one tag of one resource, as DescribeTags lists it.
type ResourceTag struct {
	ResourceID   string
	ResourceType string
	Key          string
	Value        string
}

// ExistsFunc reports whether the resource id exists and is visible to the
// account.
type ExistsFunc func(ctx context.Context, accountID, id string) (bool, error)

type resolver struct {
	exists       ExistsFunc
	resourceType string
}

// Tags stores tags and knows the taggable resource kinds.
type Tags struct {
	st        *store.Store
	mu        sync.RWMutex
	resolvers map[string]resolver // id prefix ("ami-") → resolver
}

// New returns a Tags over st with no resource kinds registered.
func New(st *store.Store) *Tags {
	return &Tags{st: st, resolvers: map[string]resolver{}}
}

// Register makes ids starting with prefix (e.g. "ami-", "key-") taggable;
// resourceType is the EC2 resource type DescribeTags reports ("image",
// "key-pair"). Register before serving requests.
func (t *Tags) Register(prefix string, exists ExistsFunc, resourceType string) {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.resolvers[prefix] = resolver{exists: exists, resourceType: resourceType}
}

// ResourceType is the EC2 resource type of an id from its registered
// prefix, or "" when no kind claims it.
func (t *Tags) ResourceType(id string) string {
	r, ok := t.resolverFor(id)
	if !ok {
		return ""
	}
	return r.resourceType
}

func (t *Tags) resolverFor(id string) (resolver, bool) {
	t.mu.RLock()
	defer t.mu.RUnlock()
	best, bestLen := resolver{}, 0
	for p, r := range t.resolvers {
		if strings.HasPrefix(id, p) && len(p) > bestLen {
			best, bestLen = r, len(p)
		}
	}
	return best, bestLen > 0
}

// notFoundCodes are the AWS codes for an unknown id of each resource type.
var notFoundCodes = map[string]string{
	"image":               "InvalidAMIID.NotFound",
	"key-pair":            "InvalidKeyPair.NotFound",
	"instance":            "InvalidInstanceID.NotFound",
	"volume":              "InvalidVolume.NotFound",
	"snapshot":            "InvalidSnapshot.NotFound",
	"vpc":                 "InvalidVpcID.NotFound",
	"subnet":              "InvalidSubnetID.NotFound",
	"security-group":      "InvalidGroup.NotFound",
	"security-group-rule": "InvalidSecurityGroupRuleId.NotFound",
	"network-acl":         "InvalidNetworkAclID.NotFound",
	"route-table":         "InvalidRouteTableID.NotFound",
	"internet-gateway":    "InvalidInternetGatewayID.NotFound",
	"elastic-ip":          "InvalidAllocationID.NotFound",
	"natgateway":          "NatGatewayNotFound",
	"network-interface":   "InvalidNetworkInterfaceID.NotFound",
}

// check makes sure id names a resource the account can see.
func (t *Tags) check(ctx context.Context, acct, id string) error {
	r, ok := t.resolverFor(id)
	if !ok {
		return errdefs.InvalidParameter("InvalidID", "The ID '%s' is not valid: labcloud tags only resources of the kinds it knows (ids such as ami-…, key-…)", id)
	}
	found, err := r.exists(ctx, acct, id)
	if err != nil {
		return err
	}
	if !found {
		code := notFoundCodes[r.resourceType]
		if code == "" {
			code = "InvalidID"
		}
		return errdefs.NotFound(code, "The %s ID '%s' does not exist (or is not visible to account %s)", r.resourceType, id, acct)
	}
	return nil
}

// ValidateTag checks a tag's key and value as AWS does.
func ValidateTag(k, v string) error {
	switch {
	case k == "":
		return errdefs.InvalidParameter("InvalidParameterValue", "Tag keys must not be empty")
	case utf8.RuneCountInString(k) > MaxKeyLength:
		return errdefs.InvalidParameter("InvalidParameterValue", "Tag key '%s' is longer than %d characters", k, MaxKeyLength)
	case utf8.RuneCountInString(v) > MaxValueLength:
		return errdefs.InvalidParameter("InvalidParameterValue", "The value of tag '%s' is longer than %d characters", k, MaxValueLength)
	case strings.HasPrefix(strings.ToLower(k), "aws:"):
		return errdefs.InvalidParameter("InvalidParameterValue", "Tag keys starting with 'aws:' are reserved for AWS use (key '%s'): choose another key", k)
	}
	return nil
}

func key(acct, id string) string { return "tags/" + acct + "/" + id }

// Of returns the account's tags on resource id (an empty map when none).
func (t *Tags) Of(ctx context.Context, acct, id string) (map[string]string, error) {
	m := map[string]string{}
	if _, err := t.st.Get(ctx, key(acct, id), &m); err != nil && !errors.Is(err, store.ErrNotFound) {
		return nil, fmt.Errorf("reading tags of %s: %w", id, err)
	}
	return m, nil
}

// Apply sets tags on resource id without checking that it exists: the
// caller has just created it (TagSpecifications of a Create* action).
func (t *Tags) Apply(ctx context.Context, acct, id string, tags []Tag) error {
	if len(tags) == 0 {
		return nil
	}
	for _, tg := range tags {
		if err := ValidateTag(tg.Key, tg.Value); err != nil {
			return err
		}
	}
	return t.modify(ctx, acct, id, func(m map[string]string) error {
		for _, tg := range tags {
			m[tg.Key] = tg.Value
		}
		if len(m) > MaxTagsPerResource {
			return errdefs.LimitExceeded("TagLimitExceeded", "The maximum number of tags per resource is %d; %s would have %d", MaxTagsPerResource, id, len(m))
		}
		return nil
	})
}

// modify runs fn on the tag map of id and stores the result (deleting the
// object when no tag is left), without losing concurrent changes.
func (t *Tags) modify(ctx context.Context, acct, id string, fn func(map[string]string) error) error {
	k := key(acct, id)
	for range 10 {
		m := map[string]string{}
		rev, err := t.st.Get(ctx, k, &m)
		if errors.Is(err, store.ErrNotFound) {
			rev, err = 0, nil
		}
		if err != nil {
			return fmt.Errorf("reading tags of %s: %w", id, err)
		}
		if err := fn(m); err != nil {
			return err
		}
		switch {
		case len(m) == 0 && rev == 0:
			return nil
		case len(m) == 0:
			err = t.st.DeleteIf(ctx, k, rev)
		case rev == 0:
			_, err = t.st.Create(ctx, k, m)
		default:
			_, err = t.st.CompareAndSwap(ctx, k, m, rev)
		}
		if errors.Is(err, store.ErrConflict) || errors.Is(err, store.ErrExists) || errors.Is(err, store.ErrNotFound) {
			continue
		}
		if err != nil {
			return fmt.Errorf("writing tags of %s: %w", id, err)
		}
		return nil
	}
	return errdefs.New(errdefs.ClassUnavailable, "", "the tags of %s keep changing concurrently; retry", id)
}

// Create adds or overwrites tags on every resource (CreateTags). Every id
// must exist and be visible to the account; nothing is written otherwise.
func (t *Tags) Create(ctx context.Context, acct string, ids []string, tags []Tag) error {
	if len(ids) == 0 {
		return errdefs.New(errdefs.ClassMissingParameter, "MissingParameter", "The request must contain the parameter ResourceId")
	}
	for _, tg := range tags {
		if err := ValidateTag(tg.Key, tg.Value); err != nil {
			return err
		}
	}
	for _, id := range ids {
		if err := t.check(ctx, acct, id); err != nil {
			return err
		}
	}
	for _, id := range ids {
		if err := t.Apply(ctx, acct, id, tags); err != nil {
			return err
		}
	}
	return nil
}

// Delete removes tags from every resource (DeleteTags); no tags means all
// of them. Tags that are not there are ignored, as in AWS.
func (t *Tags) Delete(ctx context.Context, acct string, ids []string, tags []DeleteTag) error {
	if len(ids) == 0 {
		return errdefs.New(errdefs.ClassMissingParameter, "MissingParameter", "The request must contain the parameter resourceId")
	}
	for _, tg := range tags {
		if strings.HasPrefix(strings.ToLower(tg.Key), "aws:") {
			return errdefs.InvalidParameter("InvalidParameterValue", "Tag keys starting with 'aws:' are reserved for AWS use (key '%s')", tg.Key)
		}
	}
	for _, id := range ids {
		if err := t.check(ctx, acct, id); err != nil {
			return err
		}
	}
	for _, id := range ids {
		err := t.modify(ctx, acct, id, func(m map[string]string) error {
			if len(tags) == 0 {
				clear(m)
			}
			for _, tg := range tags {
				if v, ok := m[tg.Key]; ok && (tg.Value == nil || *tg.Value == v) {
					delete(m, tg.Key)
				}
			}
			return nil
		})
		if err != nil {
			return err
		}
	}
	return nil
}

// Forget removes the account's tags of a deleted resource.
func (t *Tags) Forget(ctx context.Context, acct, id string) error {
	err := t.st.Delete(ctx, key(acct, id))
	if err != nil && !errors.Is(err, store.ErrNotFound) {
		return fmt.Errorf("removing tags of %s: %w", id, err)
	}
	return nil
}

// List returns every tag the account has set, sorted by resource id and
// key (DescribeTags).
func (t *Tags) List(ctx context.Context, acct string) ([]ResourceTag, error) {
	prefix := "tags/" + acct + "/"
	kvs, err := t.st.List(ctx, prefix)
	if err != nil {
		return nil, fmt.Errorf("listing tags: %w", err)
	}
	var out []ResourceTag
	for _, kv := range kvs {
		id := strings.TrimPrefix(kv.Key, prefix)
		m := map[string]string{}
		if err := kv.Decode(&m); err != nil {
			return nil, err
		}
		keys := make([]string, 0, len(m))
		for k := range m {
			keys = append(keys, k)
		}
		sort.Strings(keys)
		rt := t.ResourceType(id)
		for _, k := range keys {
			out = append(out, ResourceTag{ResourceID: id, ResourceType: rt, Key: k, Value: m[k]})
		}
	}
	return out, nil
}

// FilterValues gives the values a resource with these tags has for an EC2
// tag filter: "tag:<key>" (the value of key, none when absent), "tag-key"
// (every key) and "tag-value" (every value). ok is false when name is not
// a tag filter, so a Describe* handler can treat it as its own filter.
func FilterValues(tags map[string]string, name string) (values []string, ok bool) {
	switch {
	case strings.HasPrefix(name, "tag:"):
		if v, has := tags[strings.TrimPrefix(name, "tag:")]; has {
			return []string{v}, true
		}
		return nil, true
	case name == "tag-key":
		for k := range tags {
			values = append(values, k)
		}
		return values, true
	case name == "tag-value":
		for _, v := range tags {
			values = append(values, v)
		}
		return values, true
	}
	return nil, false
}

// IsFilter reports whether an EC2 filter name is a tag filter.
func IsFilter(name string) bool {
	_, ok := FilterValues(nil, name)
	return ok
}

// Sorted returns tags as a list sorted by key, the order labcloud answers
// tagSet in.
func Sorted(m map[string]string) []Tag {
	out := make([]Tag, 0, len(m))
	for k, v := range m {
		out = append(out, Tag{Key: k, Value: v})
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Key < out[j].Key })
	return out
}
