package iamd

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"strings"
	"time"

	"github.com/labcloud/labcloud/iamd/policy"
	"github.com/labcloud/labcloud/internal/errdefs"
	"github.com/labcloud/labcloud/internal/store"
)

// IAM is the IAM service of every account: users, groups, roles,
// customer-managed and AWS-managed policies, inline policies, permissions
// boundaries, access keys of users and instance profiles.
//
// Every method takes the account it works in and touches nothing outside
// it; the AWS-managed policies are the only objects shared by all accounts,
// and they are built in, read-only.
//
// Objects live in etcd under iam/<account>/<kind>/<lower-case name>. AWS
// IAM names are unique without regard to case ("Alice" and "alice" cannot
// both exist) but keep the case they were created with; keying by the
// lower-cased name makes etcd's create-if-absent enforce that uniqueness,
// so there is no separate name index that could disagree with the object.
// Relations are stored on one side only (a user lists its groups and keys,
// an entity its inline and attached policies, an instance profile its
// role); the other side is found by listing the account's objects. Every
// change that involves two objects is one store.Txn conditioned on the
// revisions it read of both, so a concurrent delete and attach cannot
// leave an attachment to nothing: the loser's transaction fails and is
// retried against the new state.
type IAM struct {
	st       *store.Store
	accounts *Accounts
	// now is the clock for CreateDate and friends.
	now func() time.Time
}

// NewIAM returns the IAM service over st. accounts creates and looks up
// the access key records that SigV4 verification reads.
func NewIAM(st *store.Store, accounts *Accounts) *IAM {
	return &IAM{st: st, accounts: accounts, now: time.Now}
}

// Tag is a key/value label on a user, role, policy or instance profile.
// Keys are unique without regard to case.
type Tag struct {
	Key   string `json:"key"`
	Value string `json:"value"`
}

// TagMap returns tags as a map, as policy conditions see them
// (aws:PrincipalTag/<key>).
func TagMap(tags []Tag) map[string]string {
	m := make(map[string]string, len(tags))
	for _, t := range tags {
		m[t.Key] = t.Value
	}
	return m
}

// InlinePolicy is a policy document embedded in one user, group or role.
type InlinePolicy struct {
	Name     string `json:"name"`
	Document string `json:"document"`
}

// EntityPolicies are the permissions policies of a user, group or role.
type EntityPolicies struct {
	// Inline policies, sorted by lower-cased name.
	Inline []InlinePolicy `json:"inline,omitempty"`
	// Attached are managed policy ARNs in the order they were attached.
	Attached []string `json:"attached,omitempty"`
}

// EntityType names the kind of IAM identity that policies attach to.
type EntityType string

// The entity types.
const (
	EntityUser  EntityType = "user"
	EntityGroup EntityType = "group"
	EntityRole  EntityType = "role"
)

// Entity names one user, group or role of an account.
type Entity struct {
	Type EntityType
	Name string
}

// UserEntity names a user.
func UserEntity(name string) Entity { return Entity{EntityUser, name} }

// GroupEntity names a group.
func GroupEntity(name string) Entity { return Entity{EntityGroup, name} }

// RoleEntity names a role.
func RoleEntity(name string) Entity { return Entity{EntityRole, name} }

// entity is what the three identity kinds share in the store.
type entity interface {
	policies() *EntityPolicies
	// boundary is the permissions boundary ARN field, nil for groups,
	// which cannot have one.
	boundary() *string
	displayName() string
}

// Prefixes of the unique ids AWS gives each kind of object.
const (
	prefixUser            = "AIDA"
	prefixGroup           = "AGPA"
	prefixRole            = "AROA"
	prefixPolicy          = "ANPA"
	prefixInstanceProfile = "AIPA"
)

// newID returns a unique id in AWS's form: a four-letter kind prefix and
// 17 base-32 characters.
func newID(prefix string) string { return prefix + randomString(17, keyIDAlphabet) }

// Key layout under iam/<account>/.
const (
	folderUsers            = "users"
	folderGroups           = "groups"
	folderRoles            = "roles"
	folderPolicies         = "policies"
	folderInstanceProfiles = "instanceprofiles"
)

// objKey is the store key of a named object of an account.
func objKey(account, folder, name string) string {
	return "iam/" + account + "/" + folder + "/" + strings.ToLower(name)
}

// folderKey is the store prefix of all objects of a kind in an account.
func folderKey(account, folder string) string {
	return "iam/" + account + "/" + folder + "/"
}

// iamARN builds arn:aws:iam::<account>:<kind><path><name>.
func iamARN(account, kind, path, name string) string {
	return "arn:aws:iam::" + account + ":" + kind + path + name
}

// stamp is the current time as IAM reports it (whole seconds, UTC).
func (i *IAM) stamp() time.Time { return i.now().UTC().Truncate(time.Second) }

// Transaction retries: a conflict means a concurrent change to one of the
// objects read; reading again resolves it, so the bound is only a guard
// against a bug that builds a transaction that can never succeed.
const (
	txnAttempts   = 50
	txnBackoffMax = 20 * time.Millisecond
)

// atomically runs build (which reads what it needs and returns the writes
// to make, conditioned on what it read) and commits the writes in one
// transaction, retrying from the read when a condition no longer holds.
// An error from build is returned as it is. No writes means success.
func (i *IAM) atomically(ctx context.Context, build func() ([]store.Op, error)) error {
	for attempt := 0; ; attempt++ {
		ops, err := build()
		if err != nil {
			return err
		}
		if len(ops) == 0 {
			return nil
		}
		_, err = i.st.Txn(ctx, ops...)
		if err == nil {
			return nil
		}
		retry := errors.Is(err, store.ErrConflict) || errors.Is(err, store.ErrExists) || errors.Is(err, store.ErrNotFound)
		if !retry || attempt+1 >= txnAttempts {
			return err
		}
		d := time.Duration(rand.Int64N(int64(txnBackoffMax) * int64(attempt+1) / txnAttempts))
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(d):
		}
	}
}

// load reads an object of type T, turning a missing key into notFound.
func load[T any](ctx context.Context, st *store.Store, key string, notFound func() error) (T, int64, error) {
	v, rev, err := store.Load[T](ctx, st, key)
	if errors.Is(err, store.ErrNotFound) {
		return v, 0, notFound()
	}
	return v, rev, err
}

// touch rewrites an object unchanged, conditioned on the revision read, so
// that a transaction fails if the object changed or vanished meanwhile and
// so that concurrent transactions that read it fail in turn.
func touch(key string, v any, rev int64) store.Op { return store.OpCompareAndSwap(key, v, rev) }

// Error constructors with AWS's codes and wording.

func noSuchEntity(format string, args ...any) error {
	return errdefs.NotFound("NoSuchEntity", format, args...)
}

func alreadyExists(format string, args ...any) error {
	return errdefs.AlreadyExists("EntityAlreadyExists", format, args...)
}

func deleteConflict(format string, args ...any) error {
	return errdefs.Conflict("DeleteConflict", format, args...)
}

func limitExceeded(format string, args ...any) error {
	return errdefs.LimitExceeded("LimitExceeded", format, args...)
}

func invalidInput(format string, args ...any) error {
	return errdefs.InvalidParameter("InvalidInput", format, args...)
}

// parseDocument validates a policy document as the given kind. A document
// that fails validation becomes MalformedPolicyDocument with the policy
// package's message, which names what is wrong and where.
func parseDocument(doc string, kind policy.Kind) (*policy.Policy, error) {
	p, err := policy.Parse(doc, kind)
	if err != nil {
		var me *policy.MalformedError
		if errors.As(err, &me) {
			return nil, &errdefs.Error{Class: errdefs.ClassInvalidParameter, Code: "MalformedPolicyDocument", Message: me.Message, Err: err}
		}
		return nil, fmt.Errorf("validating policy document: %w", err)
	}
	return p, nil
}

// policySize counts a document's characters the way IAM's size quotas do:
// white space does not count.
func policySize(doc string) int {
	n := 0
	for _, r := range doc {
		switch r {
		case ' ', '\t', '\n', '\r':
		default:
			n++
		}
	}
	return n
}

func isNotFound(err error) bool { return errors.Is(err, store.ErrNotFound) }
