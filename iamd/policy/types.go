// Package policy is labcloud's IAM policy language: it parses and validates
// policy documents (identity, resource-based, trust, permissions boundary and
// session policies) and evaluates requests against them following the AWS
// IAM policy evaluation logic, for one account and across accounts.
//
// The package is pure: it stores nothing and knows nothing about users or
// roles. iamd collects the policies that apply to a request, fills an Input
// and calls Decide.
package policy

import "strings"

// Kind says which kind of policy a document is, because AWS validates the
// kinds differently (Principal is required in resource-based policies and
// forbidden in identity-based ones, trust policies only allow STS actions).
type Kind int

const (
	// KindIdentity is an inline or managed policy attached to a user, group
	// or role; Principal and NotPrincipal are forbidden.
	KindIdentity Kind = iota
	// KindResource is a resource-based policy; Principal or NotPrincipal is
	// required.
	KindResource
	// KindTrust is a role's trust policy: resource-based, with actions
	// limited to the STS assume/tag actions and no Resource element.
	KindTrust
	// KindBoundary is a permissions boundary; validated like an identity
	// policy.
	KindBoundary
	// KindSession is a session policy passed to AssumeRole or
	// GetFederationToken; validated like an identity policy.
	KindSession
)

// String names the kind for messages.
func (k Kind) String() string {
	switch k {
	case KindIdentity:
		return "identity"
	case KindResource:
		return "resource"
	case KindTrust:
		return "trust"
	case KindBoundary:
		return "boundary"
	case KindSession:
		return "session"
	}
	return "unknown"
}

// MalformedError is a policy document that fails validation. IAM returns it
// as MalformedPolicyDocument, so Message names the problem and where it is,
// e.g. `Statement[1] (Sid "DenyAll"): Effect must be "Allow" or "Deny", got "Permit"`.
type MalformedError struct {
	Message string
	// Line and Column locate the offending element when known (1-based,
	// 0 when the problem is the document as a whole).
	Line, Column int
}

// Error returns the message; it is what the user sees.
func (e *MalformedError) Error() string { return e.Message }

// Policy is a parsed, validated policy document. Build it with Parse: the
// statements carry compiled matchers that a hand-made Policy lacks.
type Policy struct {
	// Version is the document's Version, "" when absent (which AWS treats
	// as 2008-10-17: no policy variables).
	Version string
	// ID is the optional Id element.
	ID string
	// Statements in document order.
	Statements []Statement
	// Kind the document was validated as.
	Kind Kind
}

// Statement is one parsed statement. Exactly one of Action/NotAction and at
// most one of Resource/NotResource is non-nil.
type Statement struct {
	Sid       string
	Effect    string // "Allow" or "Deny"
	Action    []string
	NotAction []string
	// Resource and NotResource are nil in trust policies that omit them.
	Resource    []string
	NotResource []string
	// Principal and NotPrincipal map a principal type ("AWS", "Service",
	// "Federated", "CanonicalUser") to its values; the bare "*" principal
	// is stored as {"*": {"*"}}.
	Principal    map[string][]string
	NotPrincipal map[string][]string
	Conditions   []Condition
	// Index is the statement's position in the document (0-based).
	Index int
	// Start and End locate the statement object in the document, its
	// opening and its closing brace, for the MatchedStatements positions
	// SimulatePrincipalPolicy returns.
	Start, End Position

	actions   []string // lower-cased patterns of Action or NotAction
	resources []resPattern
}

// resPattern is a compiled Resource or NotResource entry.
type resPattern struct {
	glob string    // internal pattern form when tmpl is nil
	tmpl *template // policy variables to substitute first
}

// Position is a 1-based line and column in a policy document, the shape of
// the SimulatePrincipalPolicy StartPosition/EndPosition fields.
type Position struct {
	Line, Column int
}

// Condition is one operator/key pair of a Condition block with its values.
// A block with several operators or several keys becomes several
// Conditions, all of which must hold.
type Condition struct {
	// Operator as written, e.g. "ForAnyValue:StringLikeIfExists".
	Operator string
	// Key is the condition key as written, e.g. "aws:PrincipalTag/Dept".
	Key    string
	Values []string

	lkey     string // Key lower-cased: context keys are case-insensitive
	op       baseOp
	negated  bool
	set      setQualifier
	ifExists bool
	values   []condValue
	hasVars  bool
}

// Context holds the request context keys. Keys are case-insensitive, as in
// AWS; values are multi-valued because keys like aws:TagKeys are lists.
type Context struct {
	m map[string][]string
}

// NewContext returns an empty context.
func NewContext() *Context { return &Context{m: map[string][]string{}} }

// Set replaces the values of key. Set with no values records the key as
// present but empty, which matters to ForAllValues and Null.
func (c *Context) Set(key string, values ...string) {
	if c.m == nil {
		c.m = map[string][]string{}
	}
	c.m[strings.ToLower(key)] = append([]string{}, values...)
}

// Get returns the values of key and whether it is present.
func (c *Context) Get(key string) ([]string, bool) {
	return c.get(strings.ToLower(key))
}

// Keys returns the keys present, lower-cased, in no particular order.
func (c *Context) Keys() []string {
	if c == nil {
		return nil
	}
	keys := make([]string, 0, len(c.m))
	for k := range c.m {
		keys = append(keys, k)
	}
	return keys
}

// get looks up an already lower-cased key; evaluation lower-cases policy
// keys once at Parse so the hot path does not.
func (c *Context) get(lkey string) ([]string, bool) {
	if c == nil || c.m == nil {
		return nil, false
	}
	v, ok := c.m[lkey]
	return v, ok
}

// PrincipalInfo identifies the caller for Principal matching in resource and
// trust policies.
type PrincipalInfo struct {
	// AccountID is the caller's account.
	AccountID string
	// ARNs is every ARN that names the caller: a user ARN; for a role
	// session both the role ARN and the session ARN
	// arn:aws:sts::A:assumed-role/R/S.
	ARNs []string
	// Service is set when an AWS service is the caller, e.g.
	// "ec2.amazonaws.com" assuming an instance role.
	Service string
	// Federated is the OIDC/SAML provider ARN or host for web-identity and
	// SAML federation.
	Federated string
}

// Request is what the caller asks to do.
type Request struct {
	// Action is "service:Action", e.g. "ec2:DescribeInstances".
	Action string
	// Resource is an ARN or "*".
	Resource  string
	Principal PrincipalInfo
	// Context may be nil, which is the same as an empty context.
	Context *Context
}

// Source says where a policy came from, for Decision.Matched.
type Source struct {
	// Type is a SimulatePrincipalPolicy SourcePolicyType: "IAM Policy",
	// "Resource Policy", "Permissions Boundary Policy", "Session Policy".
	Type string
	// ID is the policy ARN or the inline policy name.
	ID   string
	Name string
}

// Source types, the strings SimulatePrincipalPolicy uses.
const (
	SourceIAMPolicy      = "IAM Policy"
	SourceResourcePolicy = "Resource Policy"
	SourceBoundary       = "Permissions Boundary Policy"
	SourceSessionPolicy  = "Session Policy"
)

// NamedPolicy is a parsed policy with its origin.
type NamedPolicy struct {
	Source Source
	Policy *Policy
}

// Match is one statement that applied to the request.
type Match struct {
	Source         Source
	StatementIndex int
	Sid            string
	Effect         string
	// Start and End locate the statement in the document.
	Start, End Position
	// ViaAccount is set when a resource policy matched the caller only
	// through its account (root ARN or account id) rather than naming it;
	// such a match delegates to the caller's identity policies instead of
	// granting by itself.
	ViaAccount bool
}

// Input is everything Decide needs for one request. Input.Resource (the
// resource-based policy) shadows the embedded Request.Resource (the ARN);
// write in.Request.Resource for the latter.
type Input struct {
	Request
	PrincipalAccount, ResourceAccount string
	// Identity holds the principal's identity-based policies: the user's
	// and its groups', or the role's.
	Identity []NamedPolicy
	// Resource is the resource-based policy (for sts:AssumeRole, the role's
	// trust policy), nil when the resource has none.
	Resource *NamedPolicy
	// Boundary is the principal's permissions boundary, nil when none.
	Boundary *NamedPolicy
	// Session holds the session policies of a role or federated session.
	// nil means no session policy was passed and the session is not
	// limited by one. A non-nil empty slice is read as "session policies
	// apply and none allows", so it allows nothing; iamd should pass nil
	// rather than an empty slice for sessions created without policies.
	Session []NamedPolicy
}

// Decision values, the SimulatePrincipalPolicy EvalDecision strings.
const (
	Allowed      = "allowed"
	ExplicitDeny = "explicitDeny"
	ImplicitDeny = "implicitDeny"
)

// Deny reasons, the phrases AWS uses in its AccessDenied messages.
const (
	ReasonNoIdentityAllow = "no identity-based policy allows"
	ReasonIdentityDeny    = "explicit deny in an identity-based policy"
	ReasonResourceDeny    = "explicit deny in a resource-based policy"
	ReasonNoResourceAllow = "no resource-based policy allows"
	ReasonNoBoundaryAllow = "no permissions boundary allows"
	ReasonBoundaryDeny    = "explicit deny in a permissions boundary"
	ReasonNoSessionAllow  = "no session policy allows"
	ReasonSessionDeny     = "explicit deny in a session policy"
)

// Decision is the outcome of Decide.
type Decision struct {
	// Effect is Allowed, ExplicitDeny or ImplicitDeny.
	Effect string
	// Matched lists the statements that decided the result, like the
	// SimulatePrincipalPolicy MatchedStatements: for explicitDeny the Deny
	// statements that applied; otherwise the Allow statements that applied,
	// which for implicitDeny shows the partial grants (say, a boundary that
	// allows while no identity-based policy does).
	Matched []Match
	// MissingContextValues lists the context keys a condition needed and
	// the request did not carry.
	MissingContextValues []string
	// DenyReason is one of the Reason constants when Effect is not
	// Allowed.
	DenyReason string
}
