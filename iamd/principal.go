package iamd

import "time"

// Principal types, as aws:PrincipalType reports them.
const (
	PrincipalAccount     = "Account" // the account's root user
	PrincipalUser        = "User"
	PrincipalAssumedRole = "AssumedRole"
)

// Principal is who a request authenticated as: the account root, an IAM
// user (long-term key or GetSessionToken credentials) or a role session.
type Principal struct {
	Type      string
	AccountID string
	// ARN is the caller's ARN: arn:aws:iam::A:root, arn:aws:iam::A:user/N,
	// or arn:aws:sts::A:assumed-role/R/S for role sessions.
	ARN string
	// UserID is what GetCallerIdentity returns as UserId: the account id
	// for root, AIDA… for users, "AROA…:session" for role sessions.
	UserID      string
	AccessKeyID string
	UserName    string // IAM user name (users and their session tokens)

	// Role sessions.
	RoleName    string
	RoleARN     string
	RoleID      string
	SessionName string

	// Temporary credentials (ASIA… keys).
	Temporary      bool
	TokenIssueTime time.Time
	Expiration     time.Time
	// SessionPolicies are the inline and managed session policy documents
	// passed to AssumeRole; they intersect with the role's policies.
	SessionPolicies []SessionPolicy
	// SessionTags become aws:PrincipalTag/* and override the role's tags.
	SessionTags       map[string]string
	TransitiveTagKeys []string
	SourceIdentity    string
	// Chained is true for a role session created by another role session
	// (AWS limits those to one hour).
	Chained bool
	// Source is the EC2 instance whose profile credentials signed the
	// request (nil otherwise); it fills ec2:SourceInstanceARN and friends.
	Source *InstanceSource
}

// SessionPolicy is a session policy document and where it came from.
type SessionPolicy struct {
	// ARN is set for a managed policy passed in PolicyArns.
	ARN      string `json:"arn,omitempty"`
	Document string `json:"document"`
}

// IsRoot reports whether the principal is the account's root user.
func (p Principal) IsRoot() bool { return p.Type == PrincipalAccount }

// PrincipalFor describes who signs with the long-term key k.
func PrincipalFor(k AccessKey) Principal {
	p := Principal{AccountID: k.AccountID, AccessKeyID: k.AccessKeyID, UserName: k.UserName}
	if k.UserName == "" {
		p.Type = PrincipalAccount
		p.ARN = "arn:aws:iam::" + k.AccountID + ":root"
		p.UserID = k.AccountID
	} else {
		p.Type = PrincipalUser
		p.ARN = "arn:aws:iam::" + k.AccountID + ":user/" + k.UserName
		p.UserID = k.AccessKeyID
	}
	return p
}
