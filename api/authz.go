package api

import (
	"context"
	"crypto/aes"
	"crypto/cipher"
	"crypto/rand"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"net/url"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/labcloud/labcloud/iamd"
	"github.com/labcloud/labcloud/iamd/policy"
	"github.com/labcloud/labcloud/internal/errdefs"
)

// Authorizer decides whether the authenticated principal of c may run
// c.Action with these parameters. It returns an errdefs.ClassAccessDenied
// error to refuse. It may complete c.Principal (the user's id and path-
// qualified ARN) as it loads the principal's policies.
//
// Every action passes through it after SigV4 and before the handler
// touches any state.
type Authorizer interface {
	Authorize(ctx context.Context, c *Call, params url.Values) error
}

// AccountAdmin lets every authenticated principal do anything inside its
// own account. Tests of layers below IAM use it; labcloudd uses
// IAMAuthorizer.
type AccountAdmin struct{}

// Authorize always allows.
func (AccountAdmin) Authorize(context.Context, *Call, url.Values) error { return nil }

// IAMAuthorizer evaluates IAM policies for every call, deny by default, as
// AWS does: the account root may do everything in its account; users and
// role sessions need an allow from their identity policies (within their
// permissions boundary and session policies) or, for AssumeRole, from the
// role's trust policy; an explicit deny anywhere wins.
type IAMAuthorizer struct {
	IAM      *iamd.IAM
	Accounts *iamd.Accounts
	// Now is the clock for aws:CurrentTime and aws:EpochTime.
	Now func() time.Time
	// Region fills aws:RequestedRegion.
	Region string
	// MessageKey encrypts EC2's encoded authorization failure messages
	// (32 bytes, AES-256-GCM); DecodeAuthorizationMessage reverses them.
	MessageKey []byte
}

// alwaysAllowed are actions that need no permission, as AWS documents:
// GetCallerIdentity works even under an explicit deny of sts:*, and
// GetSessionToken is an authentication step policies cannot control (it
// refuses session credentials itself).
var alwaysAllowed = map[string]bool{"sts:GetCallerIdentity": true, "sts:GetSessionToken": true}

// Authorize implements Authorizer.
func (a *IAMAuthorizer) Authorize(ctx context.Context, c *Call, params url.Values) error {
	action := c.Service + ":" + c.Action
	if c.Service == ServiceLabcloud {
		return a.authorizeAdmin(ctx, c)
	}
	if alwaysAllowed[action] {
		return nil
	}
	spec, ok := actionTable[action]
	if !ok {
		return fmt.Errorf("action %s has no entry in the authorization table", action)
	}
	subject, err := a.subject(ctx, c)
	if err != nil {
		return err
	}
	rctx := a.requestContext(c, params, subject)
	actions := []string{action}
	if spec.alsoNeeds != nil {
		actions = append(actions, spec.alsoNeeds(c, params)...)
	}
	for _, action := range actions {
		if err := a.authorizeAction(ctx, c, params, spec, action, subject, rctx); err != nil {
			return err
		}
	}
	if spec.alsoOn != nil {
		more, err := spec.alsoOn(ctx, a, c, params)
		if err != nil {
			return err
		}
		for _, m := range more {
			mctx := rctx
			if len(m.context) > 0 {
				mctx = policy.NewContext()
				for _, k := range rctx.Keys() {
					v, _ := rctx.Get(k)
					mctx.Set(k, v...)
				}
				for k, v := range m.context {
					mctx.Set(k, v)
				}
			}
			res := m.resources
			sub := actionSpec{resources: func(*Call, url.Values) []string { return res }}
			if err := a.authorizeAction(ctx, c, params, sub, m.action, subject, mctx); err != nil {
				return err
			}
		}
	}
	return nil
}

// authorizeAction checks one action on each of the spec's resources.
func (a *IAMAuthorizer) authorizeAction(ctx context.Context, c *Call, params url.Values, spec actionSpec, action string, subject *subject, rctx *policy.Context) error {
	for _, res := range spec.resources(c, params) {
		res, resCtx := a.resourceContext(ctx, c, res, rctx)
		in := policy.Input{
			Request: policy.Request{
				Action: action, Resource: res, Context: resCtx,
				Principal: subject.info,
			},
			PrincipalAccount: c.Principal.AccountID,
			ResourceAccount:  arnAccount(res, c.Principal.AccountID),
			Identity:         subject.identity,
			Boundary:         subject.boundary,
			Session:          subject.session,
		}
		if spec.resourcePolicy != nil {
			rp, account, err := spec.resourcePolicy(ctx, a, c, params)
			if err != nil {
				return err
			}
			in.Resource, in.ResourceAccount = rp, account
		}
		if subject.root && in.ResourceAccount == c.Principal.AccountID && in.Resource == nil {
			continue // the root user may do anything in its own account
		}
		d := policy.Decide(in)
		if d.Effect != policy.Allowed {
			return a.denied(c, action, res, d, rctx)
		}
	}
	return nil
}

// subject is the principal with the policies that apply to it.
type subject struct {
	root     bool
	info     policy.PrincipalInfo
	identity []policy.NamedPolicy
	boundary *policy.NamedPolicy
	session  []policy.NamedPolicy
	tags     map[string]string
}

// rootPolicy stands for the root user's unlimited identity-side
// permissions when root's request also needs a resource-side allow
// (cross-account AssumeRole).
var rootPolicy = func() *policy.Policy {
	p, err := policy.Parse(`{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Action":"*","Resource":"*"}]}`, policy.KindIdentity)
	if err != nil {
		panic(err)
	}
	return p
}()

func (a *IAMAuthorizer) subject(ctx context.Context, c *Call) (*subject, error) {
	p := &c.Principal
	s := &subject{info: policy.PrincipalInfo{AccountID: p.AccountID}}
	switch p.Type {
	case iamd.PrincipalAccount:
		s.root = true
		s.identity = []policy.NamedPolicy{{Source: policy.Source{Type: policy.SourceIAMPolicy, ID: "root", Name: "root"}, Policy: rootPolicy}}
	case iamd.PrincipalUser:
		pp, err := a.IAM.UserPolicies(ctx, p.AccountID, p.UserName)
		if err != nil {
			return nil, fmt.Errorf("loading policies of user %s: %w", p.UserName, err)
		}
		// The key record knows the name; the user record knows the id and
		// the path that belongs in the ARN.
		p.ARN, p.UserID = pp.ARN, pp.ID
		s.identity, s.boundary, s.tags = pp.Identity, pp.Boundary, pp.Tags
	case iamd.PrincipalAssumedRole:
		pp, err := a.IAM.RolePolicies(ctx, p.AccountID, p.RoleName)
		if err != nil {
			return nil, fmt.Errorf("loading policies of role %s: %w", p.RoleName, err)
		}
		s.identity, s.boundary = pp.Identity, pp.Boundary
		s.tags = map[string]string{}
		for k, v := range pp.Tags {
			s.tags[k] = v
		}
		for k, v := range p.SessionTags {
			s.tags[k] = v // session tags override the role's tags
		}
		s.session = []policy.NamedPolicy{}
		for i, sp := range p.SessionPolicies {
			doc, err := policy.Parse(sp.Document, policy.KindSession)
			if err != nil {
				return nil, fmt.Errorf("session policy %d of %s: %w", i, p.ARN, err)
			}
			id := sp.ARN
			if id == "" {
				id = "session-policy-" + strconv.Itoa(i+1)
			}
			s.session = append(s.session, policy.NamedPolicy{Source: policy.Source{Type: policy.SourceSessionPolicy, ID: id, Name: id}, Policy: doc})
		}
		if len(p.SessionPolicies) == 0 {
			s.session = nil // no session policies: nothing further limits the role
		}
	default:
		return nil, fmt.Errorf("unknown principal type %q", p.Type)
	}
	s.info.ARNs = []string{p.ARN}
	if p.RoleARN != "" {
		s.info.ARNs = append(s.info.ARNs, p.RoleARN)
	}
	return s, nil
}

// resourceContext completes what is known about an existing IAM user or
// role the call acts on: its path-qualified ARN (policies may name paths)
// and its tags as aws:ResourceTag/* and iam:ResourceTag/*. Other resources
// pass through unchanged; EC2 resources add their tags as they land.
func (a *IAMAuthorizer) resourceContext(ctx context.Context, c *Call, res string, rctx *policy.Context) (string, *policy.Context) {
	parts := strings.SplitN(res, ":", 6)
	if c.Service != ServiceIAM || len(parts) != 6 || parts[2] != "iam" || parts[4] != c.Principal.AccountID {
		return res, rctx
	}
	kind, rest, _ := strings.Cut(parts[5], "/")
	name := rest[strings.LastIndex(rest, "/")+1:]
	if name == "" {
		return res, rctx
	}
	var arn string
	var tags []iamd.Tag
	switch kind {
	case "user":
		u, err := a.IAM.GetUser(ctx, c.Principal.AccountID, name)
		if err != nil {
			return res, rctx // not there (yet): CreateUser, or NoSuchEntity later
		}
		arn, tags = u.ARN, u.Tags
	case "role":
		r, err := a.IAM.GetRole(ctx, c.Principal.AccountID, name)
		if err != nil {
			return res, rctx
		}
		arn, tags = r.ARN, r.Tags
	default:
		return res, rctx
	}
	if len(tags) == 0 {
		return arn, rctx
	}
	out := policy.NewContext()
	for _, k := range rctx.Keys() {
		v, _ := rctx.Get(k)
		out.Set(k, v...)
	}
	for _, t := range tags {
		out.Set("aws:ResourceTag/"+t.Key, t.Value)
		out.Set("iam:ResourceTag/"+t.Key, t.Value)
	}
	return arn, out
}

// requestContext builds the global condition keys AWS sets for a call.
func (a *IAMAuthorizer) requestContext(c *Call, params url.Values, s *subject) *policy.Context {
	now := time.Now
	if a.Now != nil {
		now = a.Now
	}
	t := now().UTC()
	p := c.Principal
	rc := policy.NewContext()
	rc.Set("aws:PrincipalArn", principalARNForContext(p))
	rc.Set("aws:PrincipalAccount", p.AccountID)
	rc.Set("aws:PrincipalType", p.Type)
	rc.Set("aws:userid", p.UserID)
	if p.Type == iamd.PrincipalUser {
		rc.Set("aws:username", p.UserName)
	}
	for k, v := range s.tags {
		rc.Set("aws:PrincipalTag/"+k, v)
	}
	rc.Set("aws:SourceIp", c.SourceIP)
	rc.Set("aws:CurrentTime", t.Format(time.RFC3339))
	rc.Set("aws:EpochTime", strconv.FormatInt(t.Unix(), 10))
	rc.Set("aws:SecureTransport", "false")
	rc.Set("aws:RequestedRegion", a.Region)
	if p.Temporary {
		rc.Set("aws:MultiFactorAuthPresent", "false")
		rc.Set("aws:TokenIssueTime", p.TokenIssueTime.UTC().Format(time.RFC3339))
		if p.SourceIdentity != "" {
			rc.Set("aws:SourceIdentity", p.SourceIdentity)
		}
		if src := p.Source; src != nil {
			// Role credentials of an instance profile: AWS names the
			// instance they were delivered to.
			rc.Set("ec2:SourceInstanceARN", src.InstanceARN)
			rc.Set("aws:SourceInstanceARN", src.InstanceARN)
			if src.VPCID != "" {
				rc.Set("aws:Ec2InstanceSourceVpc", src.VPCID)
			}
			if src.PrivateIP != "" {
				rc.Set("aws:Ec2InstanceSourcePrivateIPv4", src.PrivateIP)
			}
		}
	}
	if c.Service == ServiceEC2 {
		rc.Set("ec2:Region", a.Region)
	}
	tags := requestTags(c.Service, params)
	if len(tags) > 0 {
		keys := make([]string, 0, len(tags))
		for k, v := range tags {
			rc.Set("aws:RequestTag/"+k, v)
			keys = append(keys, k)
		}
		sort.Strings(keys)
		rc.Set("aws:TagKeys", keys...)
	}
	switch c.Service + ":" + c.Action {
	case "sts:AssumeRole":
		if v := params.Get("ExternalId"); v != "" {
			rc.Set("sts:ExternalId", v)
		}
		if v := params.Get("RoleSessionName"); v != "" {
			rc.Set("sts:RoleSessionName", v)
		}
		if v := params.Get("SourceIdentity"); v != "" {
			rc.Set("sts:SourceIdentity", v)
		}
		if keys := memberList(params, "TransitiveTagKeys"); len(keys) > 0 {
			rc.Set("sts:TransitiveTagKeys", keys...)
		}
	}
	for _, k := range []string{"PolicyArn", "PermissionsBoundary"} {
		if v := params.Get(k); v != "" && c.Service == ServiceIAM {
			rc.Set("iam:"+map[string]string{"PolicyArn": "PolicyARN", "PermissionsBoundary": "PermissionsBoundary"}[k], v)
		}
	}
	return rc
}

// principalARNForContext is aws:PrincipalArn: for a role session AWS puts
// the role's ARN there, not the session's.
func principalARNForContext(p iamd.Principal) string {
	if p.RoleARN != "" {
		return p.RoleARN
	}
	return p.ARN
}

// memberList reads an awsQuery list parameter Name.member.N in order.
func memberList(params url.Values, name string) []string {
	var out []string
	for i := 1; ; i++ {
		v, ok := params[name+".member."+strconv.Itoa(i)]
		if !ok || len(v) == 0 {
			return out
		}
		out = append(out, v[0])
	}
}

// requestTags reads the tags a request attaches: IAM/STS Tags.member.N.Key
// and Value, EC2 TagSpecification.N.Tag.M.Key and Value.
func requestTags(service string, params url.Values) map[string]string {
	tags := map[string]string{}
	for k, vs := range params {
		if !strings.HasSuffix(k, ".Key") || len(vs) == 0 {
			continue
		}
		prefix := strings.TrimSuffix(k, ".Key")
		switch {
		case service != ServiceEC2 && strings.HasPrefix(k, "Tags.member."):
		case service == ServiceEC2 && strings.HasPrefix(k, "TagSpecification.") && strings.Contains(k, ".Tag."):
		default:
			continue
		}
		tags[vs[0]] = params.Get(prefix + ".Value")
	}
	return tags
}

// arnAccount is the account field of an ARN, or def for "*" and ARNs
// without one.
func arnAccount(arn, def string) string {
	parts := strings.SplitN(arn, ":", 6)
	if len(parts) == 6 && parts[4] != "" && parts[4] != "aws" && parts[4] != "*" {
		return parts[4]
	}
	return def
}

// denied builds the AWS error for a refused call.
func (a *IAMAuthorizer) denied(c *Call, action, resource string, d policy.Decision, rctx *policy.Context) error {
	why := "because " + d.DenyReason + " the " + action + " action"
	if strings.HasPrefix(d.DenyReason, "explicit deny") {
		why = "with an " + d.DenyReason
	}
	on := ""
	if resource != "*" {
		on = " on resource: " + resource
	}
	msg := fmt.Sprintf("User: %s is not authorized to perform: %s%s %s", c.Principal.ARN, action, on, why)
	if c.Service == ServiceEC2 {
		enc, err := a.encodeMessage(c, action, resource, d, rctx)
		if err != nil {
			return err
		}
		return errdefs.New(errdefs.ClassAccessDenied, "UnauthorizedOperation",
			"You are not authorized to perform this operation. %s. Encoded authorization failure message: %s", msg, enc)
	}
	return errdefs.New(errdefs.ClassAccessDenied, "AccessDenied", "%s", msg)
}

// authzMessage is the decoded form of an encoded authorization failure
// message, in the JSON shape AWS's DecodeAuthorizationMessage returns.
type authzMessage struct {
	Allowed           bool `json:"allowed"`
	ExplicitDeny      bool `json:"explicitDeny"`
	MatchedStatements struct {
		Items []matchedStatement `json:"items"`
	} `json:"matchedStatements"`
	Failures struct {
		Items []string `json:"items"`
	} `json:"failures"`
	Context struct {
		Principal struct {
			ID  string `json:"id"`
			ARN string `json:"arn"`
		} `json:"principal"`
		Action     string `json:"action"`
		Resource   string `json:"resource"`
		Conditions struct {
			Items []conditionItem `json:"items"`
		} `json:"conditions"`
	} `json:"context"`
}

type matchedStatement struct {
	StatementID string `json:"statementId"`
	Effect      string `json:"effect"`
	Source      string `json:"source"`
	Index       int    `json:"index"`
}

type conditionItem struct {
	Key    string `json:"key"`
	Values struct {
		Items []struct {
			Value string `json:"value"`
		} `json:"items"`
	} `json:"values"`
}

func (a *IAMAuthorizer) encodeMessage(c *Call, action, resource string, d policy.Decision, rctx *policy.Context) (string, error) {
	var m authzMessage
	m.ExplicitDeny = d.Effect == policy.ExplicitDeny
	m.MatchedStatements.Items = []matchedStatement{}
	for _, ms := range d.Matched {
		m.MatchedStatements.Items = append(m.MatchedStatements.Items, matchedStatement{StatementID: ms.Sid, Effect: ms.Effect, Source: ms.Source.ID, Index: ms.StatementIndex})
	}
	m.Failures.Items = []string{d.DenyReason}
	m.Context.Principal.ID = c.Principal.UserID
	m.Context.Principal.ARN = c.Principal.ARN
	m.Context.Action = action
	m.Context.Resource = resource
	m.Context.Conditions.Items = []conditionItem{}
	for _, k := range []string{"aws:PrincipalArn", "aws:PrincipalAccount", "aws:PrincipalType", "aws:userid", "aws:username", "aws:SourceIp", "aws:CurrentTime", "aws:RequestedRegion", "ec2:Region", "ec2:SourceInstanceARN", "iam:PassedToService"} {
		if vs, ok := rctx.Get(k); ok {
			var ci conditionItem
			ci.Key = k
			for _, v := range vs {
				ci.Values.Items = append(ci.Values.Items, struct {
					Value string `json:"value"`
				}{v})
			}
			m.Context.Conditions.Items = append(m.Context.Conditions.Items, ci)
		}
	}
	plain, err := json.Marshal(m)
	if err != nil {
		return "", err
	}
	gcm, err := a.gcm()
	if err != nil {
		return "", err
	}
	nonce := make([]byte, gcm.NonceSize())
	if _, err := rand.Read(nonce); err != nil {
		return "", err
	}
	return base64.RawURLEncoding.EncodeToString(gcm.Seal(nonce, nonce, plain, nil)), nil
}

// DecodeMessage reverses an encoded authorization failure message.
func (a *IAMAuthorizer) DecodeMessage(enc string) (string, error) {
	raw, err := base64.RawURLEncoding.DecodeString(strings.TrimSpace(enc))
	if err != nil {
		return "", errDecode
	}
	gcm, err := a.gcm()
	if err != nil {
		return "", err
	}
	if len(raw) < gcm.NonceSize() {
		return "", errDecode
	}
	plain, err := gcm.Open(nil, raw[:gcm.NonceSize()], raw[gcm.NonceSize():], nil)
	if err != nil {
		return "", errDecode
	}
	return string(plain), nil
}

var errDecode = errdefs.InvalidParameter("InvalidAuthorizationMessageException",
	"the message is not an encoded authorization failure message of this labcloud install: copy it whole from the UnauthorizedOperation error")

func (a *IAMAuthorizer) gcm() (cipher.AEAD, error) {
	if len(a.MessageKey) != 32 {
		return nil, errors.New("authorization message key is not 32 bytes")
	}
	block, err := aes.NewCipher(a.MessageKey)
	if err != nil {
		return nil, err
	}
	return cipher.NewGCM(block)
}

// authorizeAdmin allows labcloud's own admin actions only to the root user
// of the install's first account (the holder of admin-credentials).
func (a *IAMAuthorizer) authorizeAdmin(ctx context.Context, c *Call) error {
	admin, err := a.Accounts.AdminAccountID(ctx)
	if err != nil {
		return err
	}
	if !c.Principal.IsRoot() || c.Principal.AccountID != admin {
		return errdefs.New(errdefs.ClassAccessDenied, "AccessDenied",
			"User: %s is not authorized to perform: labcloud:%s: only the root user of the admin account (the keys in admin-credentials) may", c.Principal.ARN, c.Action)
	}
	return nil
}
