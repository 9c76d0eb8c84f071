package iamd

import (
	"context"
	"fmt"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/labcloud/labcloud/iamd/policy"
	"github.com/labcloud/labcloud/internal/store"
)

// Managed policy quotas, AWS's defaults.
const (
	maxPolicyVersions    = 5
	maxManagedPolicySize = 6144
	maxAttachedPolicies  = 10
)

// ManagedPolicy is a customer-managed policy of an account, stored under
// iam/<account>/policies/<lower-case name>, or one of the built-in
// AWS-managed policies (arn:aws:iam::aws:policy/…).
type ManagedPolicy struct {
	PolicyName       string    `json:"policyName"`
	PolicyID         string    `json:"policyId"`
	ARN              string    `json:"arn"`
	Path             string    `json:"path"`
	Description      string    `json:"description,omitempty"`
	DefaultVersionID string    `json:"defaultVersionId"`
	CreateDate       time.Time `json:"createDate"`
	UpdateDate       time.Time `json:"updateDate"`
	Tags             []Tag     `json:"tags,omitempty"`
	// Versions, oldest first; exactly one is DefaultVersionID.
	Versions []PolicyVersion `json:"versions"`
	// NextVersion is the number of the next version: AWS never reuses a
	// version id, even after the version is deleted.
	NextVersion int `json:"nextVersion"`

	// AWSManaged is true for the built-in policies.
	AWSManaged bool `json:"-"`
	// AttachmentCount and PermissionsBoundaryUsageCount are counted in the
	// caller's account when the policy is read; they are not stored.
	AttachmentCount               int `json:"-"`
	PermissionsBoundaryUsageCount int `json:"-"`
}

// IsAttachable is always true: labcloud has no service-linked policies.
func (p ManagedPolicy) IsAttachable() bool { return true }

// DefaultVersion returns the version that is in force.
func (p ManagedPolicy) DefaultVersion() PolicyVersion {
	for _, v := range p.Versions {
		if v.VersionID == p.DefaultVersionID {
			v.IsDefaultVersion = true
			return v
		}
	}
	return PolicyVersion{}
}

// PolicyVersion is one version of a managed policy's document.
type PolicyVersion struct {
	VersionID  string    `json:"versionId"`
	Document   string    `json:"document"`
	CreateDate time.Time `json:"createDate"`
	// IsDefaultVersion is filled in when versions are read.
	IsDefaultVersion bool `json:"-"`
}

// PolicyARN is a parsed managed policy ARN.
type PolicyARN struct {
	// Account is the 12-digit account, or "aws" for AWS-managed policies.
	Account string
	Path    string
	Name    string
}

// ParsePolicyARN splits arn:aws:iam::<account>:policy<path><name>.
func ParsePolicyARN(arn string) (PolicyARN, error) {
	bad := invalidInput("ARN %s is not valid: a managed policy ARN looks like arn:aws:iam::123456789012:policy/Name or arn:aws:iam::aws:policy/ReadOnlyAccess.", arn)
	rest, ok := strings.CutPrefix(arn, "arn:aws:iam::")
	if !ok {
		return PolicyARN{}, bad
	}
	account, res, ok := strings.Cut(rest, ":")
	if !ok || (account != awsManagedAccount && !isAccountID(account)) {
		return PolicyARN{}, bad
	}
	pathName, ok := strings.CutPrefix(res, "policy/")
	if !ok {
		return PolicyARN{}, bad
	}
	slash := strings.LastIndex(pathName, "/")
	p := PolicyARN{Account: account, Path: "/" + pathName[:slash+1], Name: pathName[slash+1:]}
	if p.Name == "" {
		return PolicyARN{}, bad
	}
	return p, nil
}

func isAccountID(s string) bool {
	if len(s) != 12 {
		return false
	}
	for _, c := range s {
		if c < '0' || c > '9' {
			return false
		}
	}
	return true
}

// CreatePolicyInput is what CreatePolicy takes.
type CreatePolicyInput struct {
	PolicyName  string
	Path        string
	Document    string
	Description string
	Tags        []Tag
}

// CreatePolicy creates a customer-managed policy with version v1 as its
// default. Policy names are unique in the account whatever their path.
func (i *IAM) CreatePolicy(ctx context.Context, account string, in CreatePolicyInput) (ManagedPolicy, error) {
	var v validator
	v.name("policyName", in.PolicyName, maxPolicyName)
	if in.Path != "" {
		v.str("path", in.Path, 1, maxPath, patPolicyPath)
	}
	v.document("policyDocument", in.Document)
	v.str("description", in.Description, 0, maxDescription, pattern{})
	v.tags("tags", in.Tags)
	if err := v.err(); err != nil {
		return ManagedPolicy{}, err
	}
	if err := checkTags(in.Tags); err != nil {
		return ManagedPolicy{}, err
	}
	if err := checkManagedDocument(in.Document); err != nil {
		return ManagedPolicy{}, err
	}
	now := i.stamp()
	path := defaultPath(in.Path)
	p := ManagedPolicy{
		PolicyName: in.PolicyName, PolicyID: newID(prefixPolicy),
		ARN: iamARN(account, "policy", path, in.PolicyName), Path: path, Description: in.Description,
		DefaultVersionID: "v1", CreateDate: now, UpdateDate: now, Tags: in.Tags,
		Versions:    []PolicyVersion{{VersionID: "v1", Document: in.Document, CreateDate: now}},
		NextVersion: 2,
	}
	key := objKey(account, folderPolicies, in.PolicyName)
	err := i.atomically(ctx, func() ([]store.Op, error) {
		if _, err := i.st.Get(ctx, key, nil); err == nil {
			return nil, alreadyExists("A policy called %s already exists. Duplicate names are not allowed.", in.PolicyName)
		} else if !isNotFound(err) {
			return nil, err
		}
		return []store.Op{store.OpCreate(key, p)}, nil
	})
	if err != nil {
		return ManagedPolicy{}, err
	}
	return p, nil
}

// checkManagedDocument validates a managed policy document: grammar, then
// the size quota.
func checkManagedDocument(doc string) error {
	if _, err := parseDocument(doc, policy.KindIdentity); err != nil {
		return err
	}
	if n := policySize(doc); n > maxManagedPolicySize {
		return limitExceeded("Cannot exceed quota for PolicySize: %d (this document has %d characters besides white space).", maxManagedPolicySize, n)
	}
	return nil
}

// policyRef is a managed policy as found by its ARN: its value and, for a
// customer-managed one, its store key and revision (key is "" for the
// AWS-managed policies, which are not stored).
type policyRef struct {
	p   ManagedPolicy
	key string
	rev int64
}

// notFoundStyle picks AWS's wording for a policy ARN that names nothing:
// reads say "was not found", attachments "does not exist or is not
// attachable".
type notFoundStyle int

const (
	policyNotFound notFoundStyle = iota
	policyNotAttachable
)

func policyMissing(arn string, style notFoundStyle) error {
	if style == policyNotAttachable {
		return noSuchEntity("Policy %s does not exist or is not attachable.", arn)
	}
	return noSuchEntity("Policy %s was not found.", arn)
}

// findPolicy resolves a managed policy ARN in the caller's account. The
// AWS-managed ones are visible to every account; another account's
// customer-managed policies are not.
func (i *IAM) findPolicy(ctx context.Context, account, arn string, style notFoundStyle) (policyRef, error) {
	pa, err := ParsePolicyARN(arn)
	if err != nil {
		return policyRef{}, err
	}
	switch pa.Account {
	case awsManagedAccount:
		p, ok := awsManaged[strings.ToLower(pa.Name)]
		if !ok || p.Path != pa.Path {
			return policyRef{}, policyMissing(arn, style)
		}
		return policyRef{p: p}, nil
	case account:
	default:
		return policyRef{}, policyMissing(arn, style)
	}
	key := objKey(account, folderPolicies, pa.Name)
	p, rev, err := load[ManagedPolicy](ctx, i.st, key, func() error { return policyMissing(arn, style) })
	if err != nil {
		return policyRef{}, err
	}
	if !strings.EqualFold(p.ARN, arn) {
		return policyRef{}, policyMissing(arn, style)
	}
	return policyRef{p: p, key: key, rev: rev}, nil
}

// touchOp is the op that makes a transaction depend on the policy not
// changing meanwhile (none for AWS-managed policies, which cannot).
func (r policyRef) touchOp() []store.Op {
	if r.key == "" {
		return nil
	}
	return []store.Op{touch(r.key, r.p, r.rev)}
}

// policyUsage counts, for each managed policy ARN, the users, groups and
// roles of the account it is attached to and the users and roles that use
// it as permissions boundary.
type policyUsage struct{ attached, boundary int }

func (i *IAM) policyUsage(ctx context.Context, account string) (map[string]*policyUsage, error) {
	m := map[string]*policyUsage{}
	get := func(arn string) *policyUsage {
		u := m[arn]
		if u == nil {
			u = &policyUsage{}
			m[arn] = u
		}
		return u
	}
	err := i.eachEntity(ctx, account, func(e entity) {
		for _, a := range e.policies().Attached {
			get(a).attached++
		}
		if b := e.boundary(); b != nil && *b != "" {
			get(*b).boundary++
		}
	})
	return m, err
}

// eachEntity calls fn for every user, group and role of the account.
func (i *IAM) eachEntity(ctx context.Context, account string, fn func(entity)) error {
	users, err := store.ListAs[User](ctx, i.st, folderKey(account, folderUsers))
	if err != nil {
		return err
	}
	for n := range users {
		fn(&users[n])
	}
	groups, err := store.ListAs[Group](ctx, i.st, folderKey(account, folderGroups))
	if err != nil {
		return err
	}
	for n := range groups {
		fn(&groups[n])
	}
	roles, err := store.ListAs[Role](ctx, i.st, folderKey(account, folderRoles))
	if err != nil {
		return err
	}
	for n := range roles {
		fn(&roles[n])
	}
	return nil
}

// withUsage fills in the attachment counts of p.
func withUsage(p ManagedPolicy, usage map[string]*policyUsage) ManagedPolicy {
	if u := usage[p.ARN]; u != nil {
		p.AttachmentCount, p.PermissionsBoundaryUsageCount = u.attached, u.boundary
	}
	return p
}

// GetPolicy returns a managed policy with its attachment counts in the
// account.
func (i *IAM) GetPolicy(ctx context.Context, account, arn string) (ManagedPolicy, error) {
	ref, err := i.findPolicy(ctx, account, arn, policyNotFound)
	if err != nil {
		return ManagedPolicy{}, err
	}
	usage, err := i.policyUsage(ctx, account)
	if err != nil {
		return ManagedPolicy{}, err
	}
	return withUsage(ref.p, usage), nil
}

// Policy scopes of ListPolicies.
const (
	ScopeAll   = "All"
	ScopeAWS   = "AWS"
	ScopeLocal = "Local"
)

// Policy usage filters of ListPolicies.
const (
	UsagePermissionsPolicy   = "PermissionsPolicy"
	UsagePermissionsBoundary = "PermissionsBoundary"
)

// ListPoliciesInput selects the policies ListPolicies returns.
type ListPoliciesInput struct {
	// Scope is ScopeAll (the default), ScopeAWS or ScopeLocal.
	Scope string
	// OnlyAttached keeps the policies in use in the account.
	OnlyAttached bool
	PathPrefix   string
	// UsageFilter is "", UsagePermissionsPolicy or
	// UsagePermissionsBoundary: with OnlyAttached, which use counts.
	UsageFilter string
}

// ListPolicies returns the managed policies visible to the account, sorted
// by ARN, with their attachment counts.
func (i *IAM) ListPolicies(ctx context.Context, account string, in ListPoliciesInput) ([]ManagedPolicy, error) {
	var v validator
	if in.PathPrefix != "" {
		v.str("pathPrefix", in.PathPrefix, 1, maxPath, patPolicyPath)
	}
	if err := v.err(); err != nil {
		return nil, err
	}
	usage, err := i.policyUsage(ctx, account)
	if err != nil {
		return nil, err
	}
	var all []ManagedPolicy
	if in.Scope != ScopeLocal {
		for _, p := range awsManaged {
			all = append(all, p)
		}
	}
	if in.Scope != ScopeAWS {
		local, err := store.ListAs[ManagedPolicy](ctx, i.st, folderKey(account, folderPolicies))
		if err != nil {
			return nil, err
		}
		all = append(all, local...)
	}
	out := all[:0]
	for _, p := range all {
		p = withUsage(p, usage)
		if !strings.HasPrefix(p.Path, in.PathPrefix) {
			continue
		}
		if in.OnlyAttached {
			used := p.AttachmentCount > 0 || p.PermissionsBoundaryUsageCount > 0
			switch in.UsageFilter {
			case UsagePermissionsPolicy:
				used = p.AttachmentCount > 0
			case UsagePermissionsBoundary:
				used = p.PermissionsBoundaryUsageCount > 0
			}
			if !used {
				continue
			}
		}
		out = append(out, p)
	}
	sort.Slice(out, func(a, b int) bool { return out[a].ARN < out[b].ARN })
	return out, nil
}

// DeletePolicy deletes a customer-managed policy. As in AWS it must be
// detached from every user, group and role (and be no one's permissions
// boundary), and have only its default version left.
func (i *IAM) DeletePolicy(ctx context.Context, account, arn string) error {
	return i.atomically(ctx, func() ([]store.Op, error) {
		ref, err := i.findPolicy(ctx, account, arn, policyNotFound)
		if err != nil {
			return nil, err
		}
		if ref.key == "" {
			return nil, invalidInput("Policy %s is an AWS managed policy: AWS managed policies cannot be deleted.", arn)
		}
		usage, err := i.policyUsage(ctx, account)
		if err != nil {
			return nil, err
		}
		if u := usage[ref.p.ARN]; u != nil && (u.attached > 0 || u.boundary > 0) {
			return nil, deleteConflict("Cannot delete a policy attached to entities. Detach %s from its users, groups and roles (and remove it as permissions boundary) first.", ref.p.ARN)
		}
		if len(ref.p.Versions) > 1 {
			return nil, deleteConflict("This policy has more than one version. Before you delete a policy, you must delete the policy's versions. The default version is deleted with the policy.")
		}
		return []store.Op{store.OpDeleteIf(ref.key, ref.rev)}, nil
	})
}

// customerPolicy finds a customer-managed policy for a change to its
// versions; AWS-managed policies cannot be changed.
func (i *IAM) customerPolicy(ctx context.Context, account, arn string) (policyRef, error) {
	ref, err := i.findPolicy(ctx, account, arn, policyNotFound)
	if err != nil {
		return policyRef{}, err
	}
	if ref.key == "" {
		return policyRef{}, invalidInput("Policy %s is an AWS managed policy: its versions cannot be changed. Create a customer managed policy from its document instead.", arn)
	}
	return ref, nil
}

// CreatePolicyVersion adds a version to a customer-managed policy, making
// it the default when setDefault is true. A policy has at most five
// versions.
func (i *IAM) CreatePolicyVersion(ctx context.Context, account, arn, document string, setDefault bool) (PolicyVersion, error) {
	var v validator
	v.arn("policyArn", arn)
	v.document("policyDocument", document)
	if err := v.err(); err != nil {
		return PolicyVersion{}, err
	}
	if _, err := i.customerPolicy(ctx, account, arn); err != nil {
		return PolicyVersion{}, err
	}
	if err := checkManagedDocument(document); err != nil {
		return PolicyVersion{}, err
	}
	var created PolicyVersion
	err := i.atomically(ctx, func() ([]store.Op, error) {
		ref, err := i.customerPolicy(ctx, account, arn)
		if err != nil {
			return nil, err
		}
		p := ref.p
		if len(p.Versions) >= maxPolicyVersions {
			return nil, limitExceeded("A managed policy can have up to %d versions. Before you create a new version, you must delete an existing version.", maxPolicyVersions)
		}
		now := i.stamp()
		created = PolicyVersion{VersionID: "v" + strconv.Itoa(p.NextVersion), Document: document, CreateDate: now}
		p.Versions = append(p.Versions, created)
		p.NextVersion++
		p.UpdateDate = now
		if setDefault {
			p.DefaultVersionID = created.VersionID
		}
		created.IsDefaultVersion = setDefault
		return []store.Op{store.OpCompareAndSwap(ref.key, p, ref.rev)}, nil
	})
	return created, err
}

// versionMissing is AWS's NoSuchEntity for an unknown version id.
func versionMissing(arn, id string) error {
	return noSuchEntity("Policy %s version %s does not exist or is not attachable.", arn, id)
}

func checkVersionID(id string) error {
	var v validator
	v.str("versionId", id, 1, 0, patVersionID)
	return v.err()
}

// GetPolicyVersion returns one version of a managed policy.
func (i *IAM) GetPolicyVersion(ctx context.Context, account, arn, versionID string) (PolicyVersion, error) {
	if err := checkVersionID(versionID); err != nil {
		return PolicyVersion{}, err
	}
	ref, err := i.findPolicy(ctx, account, arn, policyNotFound)
	if err != nil {
		return PolicyVersion{}, err
	}
	for _, v := range ref.p.Versions {
		if v.VersionID == versionID {
			v.IsDefaultVersion = v.VersionID == ref.p.DefaultVersionID
			return v, nil
		}
	}
	return PolicyVersion{}, versionMissing(arn, versionID)
}

// ListPolicyVersions returns the versions of a managed policy, newest
// first, as AWS lists them.
func (i *IAM) ListPolicyVersions(ctx context.Context, account, arn string) ([]PolicyVersion, error) {
	ref, err := i.findPolicy(ctx, account, arn, policyNotFound)
	if err != nil {
		return nil, err
	}
	out := make([]PolicyVersion, 0, len(ref.p.Versions))
	for n := len(ref.p.Versions) - 1; n >= 0; n-- {
		v := ref.p.Versions[n]
		v.IsDefaultVersion = v.VersionID == ref.p.DefaultVersionID
		out = append(out, v)
	}
	return out, nil
}

// SetDefaultPolicyVersion makes a version the one in force.
func (i *IAM) SetDefaultPolicyVersion(ctx context.Context, account, arn, versionID string) error {
	if err := checkVersionID(versionID); err != nil {
		return err
	}
	return i.atomically(ctx, func() ([]store.Op, error) {
		ref, err := i.customerPolicy(ctx, account, arn)
		if err != nil {
			return nil, err
		}
		p := ref.p
		if !hasVersion(p, versionID) {
			return nil, versionMissing(arn, versionID)
		}
		if p.DefaultVersionID == versionID {
			return nil, nil
		}
		p.DefaultVersionID = versionID
		p.UpdateDate = i.stamp()
		return []store.Op{store.OpCompareAndSwap(ref.key, p, ref.rev)}, nil
	})
}

func hasVersion(p ManagedPolicy, id string) bool {
	for _, v := range p.Versions {
		if v.VersionID == id {
			return true
		}
	}
	return false
}

// DeletePolicyVersion deletes a version that is not the default.
func (i *IAM) DeletePolicyVersion(ctx context.Context, account, arn, versionID string) error {
	if err := checkVersionID(versionID); err != nil {
		return err
	}
	return i.atomically(ctx, func() ([]store.Op, error) {
		ref, err := i.customerPolicy(ctx, account, arn)
		if err != nil {
			return nil, err
		}
		p := ref.p
		if !hasVersion(p, versionID) {
			return nil, versionMissing(arn, versionID)
		}
		if p.DefaultVersionID == versionID {
			return nil, deleteConflict("Cannot delete the default version of a policy. Make another version the default with SetDefaultPolicyVersion first, or delete the whole policy.")
		}
		kept := p.Versions[:0:0]
		for _, v := range p.Versions {
			if v.VersionID != versionID {
				kept = append(kept, v)
			}
		}
		p.Versions = kept
		return []store.Op{store.OpCompareAndSwap(ref.key, p, ref.rev)}, nil
	})
}

// GetManagedPolicyDocument returns the default version of a managed policy
// of the account, or of an AWS-managed one, parsed as an identity policy,
// with the raw document (callers that need another kind, such as session
// policies, parse the raw document themselves).
func (i *IAM) GetManagedPolicyDocument(ctx context.Context, accountID, arn string) (*policy.Policy, string, error) {
	ref, err := i.findPolicy(ctx, accountID, arn, policyNotFound)
	if err != nil {
		return nil, "", err
	}
	doc := ref.p.DefaultVersion().Document
	if ref.p.AWSManaged {
		p, err := awsManagedPolicy(ref.p.PolicyName)
		return p, doc, err
	}
	p, err := parseDocument(doc, policy.KindIdentity)
	if err != nil {
		return nil, "", fmt.Errorf("stored policy %s: %w", ref.p.ARN, err)
	}
	return p, doc, nil
}

// PolicyEntities returns the users, groups and roles of the account that
// use a managed policy, each sorted by name: as a permissions policy when
// usage is UsagePermissionsPolicy, as permissions boundary when it is
// UsagePermissionsBoundary, either way when it is "".
func (i *IAM) PolicyEntities(ctx context.Context, account, arn, usage string) ([]User, []Group, []Role, error) {
	ref, err := i.findPolicy(ctx, account, arn, policyNotFound)
	if err != nil {
		return nil, nil, nil, err
	}
	uses := func(e entity) bool {
		if usage != UsagePermissionsBoundary {
			for _, a := range e.policies().Attached {
				if a == ref.p.ARN {
					return true
				}
			}
		}
		if usage != UsagePermissionsPolicy {
			if b := e.boundary(); b != nil && *b == ref.p.ARN {
				return true
			}
		}
		return false
	}
	var (
		users  []User
		groups []Group
		roles  []Role
	)
	err = i.eachEntity(ctx, account, func(e entity) {
		if !uses(e) {
			return
		}
		switch v := e.(type) {
		case *User:
			users = append(users, *v)
		case *Group:
			groups = append(groups, *v)
		case *Role:
			roles = append(roles, *v)
		}
	})
	return users, groups, roles, err
}
