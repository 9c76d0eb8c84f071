package api

import (
	"context"
	"fmt"
	"regexp"
	"strings"
	"time"

	"github.com/labcloud/labcloud/iamd"
	"github.com/labcloud/labcloud/iamd/policy"
	"github.com/labcloud/labcloud/internal/errdefs"
)

func (s *Server) registerSTS() {
	s.handle(ServiceSTS, "GetCallerIdentity", queryOp(s.getCallerIdentity))
	s.handle(ServiceSTS, "GetSessionToken", queryOp(s.getSessionToken))
	s.handle(ServiceSTS, "AssumeRole", queryOp(s.assumeRole))
	s.handle(ServiceSTS, "DecodeAuthorizationMessage", queryOp(s.decodeAuthorizationMessage))
}

// GetCallerIdentityInput is the STS GetCallerIdentity request (no members).
type GetCallerIdentityInput struct{}

// GetCallerIdentityOutput says who signed the request.
type GetCallerIdentityOutput struct {
	UserID  string `locationName:"UserId"`
	Account string
	Arn     string
}

func (s *Server) getCallerIdentity(_ context.Context, c *Call, _ *GetCallerIdentityInput) (*GetCallerIdentityOutput, error) {
	p := c.Principal
	return &GetCallerIdentityOutput{UserID: p.UserID, Account: p.AccountID, Arn: p.ARN}, nil
}

// Credentials are temporary security credentials.
type Credentials struct {
	AccessKeyID     string `locationName:"AccessKeyId"`
	SecretAccessKey string
	SessionToken    string
	Expiration      time.Time
}

func credentialsOf(sess iamd.Session) *Credentials {
	return &Credentials{AccessKeyID: sess.AccessKeyID, SecretAccessKey: sess.SecretAccessKey, SessionToken: sess.SessionToken, Expiration: sess.Expiration}
}

// GetSessionTokenInput is the STS GetSessionToken request.
type GetSessionTokenInput struct {
	DurationSeconds *int32
	SerialNumber    *string
	TokenCode       *string
}

// GetSessionTokenOutput carries the temporary credentials.
type GetSessionTokenOutput struct {
	Credentials *Credentials
}

func (s *Server) getSessionToken(ctx context.Context, c *Call, in *GetSessionTokenInput) (*GetSessionTokenOutput, error) {
	p := c.Principal
	if p.Temporary {
		return nil, errdefs.New(errdefs.ClassAccessDenied, "AccessDenied",
			"Cannot call GetSessionToken with session credentials: sign with the long-term access key of the user")
	}
	lo, hi := int32(900), int32(129600)
	if p.IsRoot() {
		hi = 3600 // AWS limits the root user's session tokens to one hour
	}
	d := int32(43200)
	if p.IsRoot() {
		d = 3600
	}
	if in.DurationSeconds != nil {
		d = *in.DurationSeconds
	}
	if d < lo || d > hi {
		return nil, validationError("durationSeconds", fmt.Sprint(d), fmt.Sprintf("Member must have value between %d and %d", lo, hi))
	}
	sess, err := s.opts.Sessions.Issue(ctx, iamd.Session{AccountID: p.AccountID, UserName: p.UserName}, time.Duration(d)*time.Second)
	if err != nil {
		return nil, err
	}
	return &GetSessionTokenOutput{Credentials: credentialsOf(sess)}, nil
}

// Tag is an IAM/STS key-value tag.
type Tag struct {
	Key   string
	Value string
}

// PolicyDescriptorType names a managed session policy.
type PolicyDescriptorType struct {
	Arn string `locationName:"arn"`
}

// AssumeRoleInput is the STS AssumeRole request.
type AssumeRoleInput struct {
	RoleArn           string `required:"true"`
	RoleSessionName   string `required:"true"`
	DurationSeconds   *int32
	Policy            *string
	PolicyArns        []PolicyDescriptorType
	Tags              []Tag
	TransitiveTagKeys []string
	ExternalID        *string `locationName:"ExternalId"`
	SerialNumber      *string
	TokenCode         *string
	SourceIdentity    *string
}

// AssumedRoleUser identifies the role session.
type AssumedRoleUser struct {
	AssumedRoleID string `locationName:"AssumedRoleId"`
	Arn           string
}

// AssumeRoleOutput carries the role session's credentials.
type AssumeRoleOutput struct {
	Credentials      *Credentials
	AssumedRoleUser  *AssumedRoleUser
	PackedPolicySize *int32
	SourceIdentity   *string
}

var (
	roleARNRe     = regexp.MustCompile(`^arn:aws:iam::(\d{12}):role(/|/[\x21-\x7e]*/)([\w+=,.@-]{1,64})$`)
	sessionNameRe = regexp.MustCompile(`^[\w+=,.@-]{2,64}$`)
)

// parseRoleARN splits a role ARN into account and role name.
func parseRoleARN(arn string) (account, name string, err error) {
	m := roleARNRe.FindStringSubmatch(arn)
	if m == nil {
		return "", "", validationError("roleArn", arn, "Member must be a role ARN like arn:aws:iam::123456789012:role/NAME")
	}
	return m[1], m[3], nil
}

// validationError words a parameter problem the way AWS's request
// validation does.
func validationError(member, value, constraint string) error {
	return errdefs.InvalidParameter("ValidationError",
		"1 validation error detected: Value '%s' at '%s' failed to satisfy constraint: %s", value, member, constraint)
}

func (s *Server) assumeRole(ctx context.Context, c *Call, in *AssumeRoleInput) (*AssumeRoleOutput, error) {
	p := c.Principal
	if p.IsRoot() {
		return nil, errdefs.New(errdefs.ClassAccessDenied, "AccessDenied",
			"Roles may not be assumed by root accounts: create an IAM user (or use a role session) and assume the role with its keys")
	}
	account, name, err := parseRoleARN(in.RoleArn)
	if err != nil {
		return nil, err
	}
	if !sessionNameRe.MatchString(in.RoleSessionName) {
		return nil, validationError("roleSessionName", in.RoleSessionName, `Member must have length between 2 and 64 and satisfy regular expression pattern: [\w+=,.@-]*`)
	}
	role, err := s.opts.IAM.GetRole(ctx, account, name)
	if err != nil {
		return nil, err
	}
	d := int32(3600)
	if in.DurationSeconds != nil {
		d = *in.DurationSeconds
	}
	if d < 900 {
		return nil, validationError("durationSeconds", fmt.Sprint(d), "Member must have value greater than or equal to 900")
	}
	chained := p.Type == iamd.PrincipalAssumedRole
	if chained && d > 3600 {
		return nil, errdefs.InvalidParameter("ValidationError",
			"The requested DurationSeconds exceeds the 1 hour session limit for roles assumed by role chaining.")
	}
	if int(d) > role.MaxSessionDuration {
		return nil, errdefs.InvalidParameter("ValidationError",
			"The requested DurationSeconds exceeds the MaxSessionDuration set for this role (%d seconds): ask for less or raise it with aws iam update-role --max-session-duration", role.MaxSessionDuration)
	}

	var sessionPolicies []iamd.SessionPolicy
	if in.Policy != nil {
		if _, err := policy.Parse(*in.Policy, policy.KindSession); err != nil {
			return nil, malformed(err)
		}
		sessionPolicies = append(sessionPolicies, iamd.SessionPolicy{Document: *in.Policy})
	}
	if len(in.PolicyArns) > 10 {
		return nil, validationError("policyArns", fmt.Sprint(len(in.PolicyArns), " ARNs"), "Member must have length less than or equal to 10")
	}
	for _, pa := range in.PolicyArns {
		_, raw, err := s.opts.IAM.GetManagedPolicyDocument(ctx, account, pa.Arn)
		if err != nil {
			return nil, err
		}
		sessionPolicies = append(sessionPolicies, iamd.SessionPolicy{ARN: pa.Arn, Document: raw})
	}

	tags := map[string]string{}
	var transitive []string
	// Transitive tags of the calling session pass on to the chained one.
	if chained {
		for _, k := range p.TransitiveTagKeys {
			if v, ok := p.SessionTags[k]; ok {
				tags[k] = v
				transitive = append(transitive, k)
			}
		}
	}
	if len(in.Tags) > 50 {
		return nil, validationError("tags", fmt.Sprint(len(in.Tags), " tags"), "Member must have length less than or equal to 50")
	}
	for _, t := range in.Tags {
		if _, inherited := tags[t.Key]; inherited && contains(transitive, t.Key) {
			return nil, errdefs.InvalidParameter("InvalidParameterValue",
				"One or more of the specified transitive tag keys can't be set because it conflicts with a transitive tag from the calling session: %s", t.Key)
		}
		tags[t.Key] = t.Value
	}
	for _, k := range in.TransitiveTagKeys {
		if _, ok := tags[k]; !ok {
			return nil, errdefs.InvalidParameter("InvalidParameterValue",
				"Transitive tag key %s is not among the session tags: every TransitiveTagKeys entry must also be passed in Tags", k)
		}
		if !contains(transitive, k) {
			transitive = append(transitive, k)
		}
	}
	source := ""
	if in.SourceIdentity != nil {
		source = *in.SourceIdentity
	} else if p.SourceIdentity != "" {
		source = p.SourceIdentity // a source identity sticks through role chaining
	}

	sess, err := s.opts.Sessions.Issue(ctx, iamd.Session{
		AccountID: account, RoleName: name, RoleARN: role.ARN, RoleID: role.RoleID,
		SessionName: in.RoleSessionName, SessionPolicies: sessionPolicies,
		SessionTags: tags, TransitiveTagKeys: transitive, SourceIdentity: source, Chained: chained,
	}, time.Duration(d)*time.Second)
	if err != nil {
		return nil, err
	}
	pr := sess.Principal()
	out := &AssumeRoleOutput{
		Credentials:     credentialsOf(sess),
		AssumedRoleUser: &AssumedRoleUser{AssumedRoleID: pr.UserID, Arn: pr.ARN},
	}
	if len(sessionPolicies) > 0 || len(tags) > 0 {
		// AWS reports how full the packed policy/tag blob is, in percent.
		size := 0
		for _, sp := range sessionPolicies {
			size += len(sp.Document)
		}
		for k, v := range tags {
			size += len(k) + len(v)
		}
		pct := int32(size * 100 / 2048)
		out.PackedPolicySize = &pct
	}
	if source != "" {
		out.SourceIdentity = &source
	}
	return out, nil
}

func contains(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}

// malformed turns a policy parse error into MalformedPolicyDocument.
func malformed(err error) error {
	return errdefs.Wrap(errdefs.ClassInvalidParameter, "MalformedPolicyDocument", err, "%s", strings.TrimSpace(err.Error()))
}

// DecodeAuthorizationMessageInput is the STS DecodeAuthorizationMessage request.
type DecodeAuthorizationMessageInput struct {
	EncodedMessage string `required:"true"`
}

// DecodeAuthorizationMessageOutput carries the decoded JSON.
type DecodeAuthorizationMessageOutput struct {
	DecodedMessage string
}

func (s *Server) decodeAuthorizationMessage(_ context.Context, _ *Call, in *DecodeAuthorizationMessageInput) (*DecodeAuthorizationMessageOutput, error) {
	a, ok := s.opts.Authorizer.(*IAMAuthorizer)
	if !ok {
		return nil, errdefs.New(errdefs.ClassNotImplemented, "", "this labcloud runs without IAM authorization, so there are no encoded messages to decode")
	}
	msg, err := a.DecodeMessage(in.EncodedMessage)
	if err != nil {
		return nil, err
	}
	return &DecodeAuthorizationMessageOutput{DecodedMessage: msg}, nil
}
