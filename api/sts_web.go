package api

import (
	"context"
	"errors"
	"fmt"
	"net/url"
	"time"

	"github.com/labcloud/labcloud/api/sigv4"
	"github.com/labcloud/labcloud/iamd"
	"github.com/labcloud/labcloud/iamd/policy"
	"github.com/labcloud/labcloud/internal/errdefs"
)

// anonymousActions are the only actions served without a SigV4 signature.
// Their caller has no AWS credentials yet: the identity token (or SAML
// assertion) in the request is the proof of identity, and the role's
// trust policy decides, so the IAM authorizer, which judges a signing
// principal, does not run for them either. The STS API model marks
// exactly these two operations noAuth, and the aws CLI and SDKs send them
// unsigned.
var anonymousActions = map[string]bool{
	ServiceSTS + ":AssumeRoleWithWebIdentity": true,
	ServiceSTS + ":AssumeRoleWithSAML":        true,
}

// unsignedAllowed reports whether a request that failed to yield a SigV4
// scope may go on without one: only when it carries no signature at all
// (a malformed signature is still an error) and asks for an anonymous
// action.
func unsignedAllowed(c *Call, scopeErr error) bool {
	var se *sigv4.Error
	return anonymousActions[c.Service+":"+c.Action] && errors.As(scopeErr, &se) && se.Code == sigv4.CodeMissingAuthenticationToken
}

func (s *Server) registerWebIdentity() {
	s.handle(ServiceSTS, "AssumeRoleWithWebIdentity", queryOp(s.assumeRoleWithWebIdentity))
	s.handle(ServiceSTS, "AssumeRoleWithSAML", queryOp(s.assumeRoleWithSAML))
}

// webIdentityActionTable adds the authorization entries of the anonymous
// actions. serve never passes them to the Authorizer (see
// anonymousActions); the entries name the resource, the role, for the
// table's completeness test and for anyone reading the table.
func webIdentityActionTable() {
	role := func(_ *Call, p url.Values) []string { return []string{p.Get("RoleArn")} }
	actionTable["sts:AssumeRoleWithWebIdentity"] = actionSpec{resources: role}
	actionTable["sts:AssumeRoleWithSAML"] = actionSpec{resources: role}
}

// AssumeRoleWithWebIdentityInput is the STS AssumeRoleWithWebIdentity
// request.
type AssumeRoleWithWebIdentityInput struct {
	RoleArn          string `required:"true"`
	RoleSessionName  string `required:"true"`
	WebIdentityToken string `required:"true"`
	// ProviderId is for OAuth 2.0 access tokens of Amazon and Facebook,
	// which labcloud does not support; OpenID Connect ID tokens name their
	// provider in iss.
	ProviderID      *string `locationName:"ProviderId"`
	PolicyArns      []PolicyDescriptorType
	Policy          *string
	DurationSeconds *int32
}

// AssumeRoleWithWebIdentityOutput carries the role session's credentials.
type AssumeRoleWithWebIdentityOutput struct {
	Credentials                 *Credentials
	SubjectFromWebIdentityToken string
	AssumedRoleUser             *AssumedRoleUser
	PackedPolicySize            *int32
	Provider                    string
	Audience                    string
}

func (s *Server) assumeRoleWithWebIdentity(ctx context.Context, c *Call, in *AssumeRoleWithWebIdentityInput) (*AssumeRoleWithWebIdentityOutput, error) {
	account, name, err := parseRoleARN(in.RoleArn)
	if err != nil {
		return nil, err
	}
	if !sessionNameRe.MatchString(in.RoleSessionName) {
		return nil, validationError("roleSessionName", in.RoleSessionName, `Member must have length between 2 and 64 and satisfy regular expression pattern: [\w+=,.@-]*`)
	}
	if n := len(in.WebIdentityToken); n < 4 || n > 20000 {
		return nil, validationError("webIdentityToken", "*** (sensitive)", "Member must have length between 4 and 20000")
	}
	if in.ProviderID != nil && *in.ProviderID != "" {
		return nil, errdefs.InvalidParameter("InvalidParameterValue",
			"ProviderId %s is for OAuth 2.0 access tokens of www.amazon.com and graph.facebook.com, which labcloud does not accept: leave it out and pass an OpenID Connect ID token, whose iss names its provider", *in.ProviderID)
	}
	d := int32(3600)
	if in.DurationSeconds != nil {
		d = *in.DurationSeconds
	}
	if d < 900 || d > 43200 {
		return nil, validationError("durationSeconds", fmt.Sprint(d), "Member must have value between 900 and 43200")
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

	now := s.opts.Now()
	wi, err := s.opts.IAM.AuthorizeWebIdentity(ctx, iamd.WebIdentityInput{
		Account: account, RoleName: name, Token: in.WebIdentityToken,
		RoleSessionName: in.RoleSessionName, SourceIP: c.SourceIP, Now: now,
	})
	if err != nil {
		return nil, err
	}
	if int(d) > wi.Role.MaxSessionDuration {
		return nil, errdefs.InvalidParameter("ValidationError",
			"The requested DurationSeconds exceeds the MaxSessionDuration set for this role (%d seconds): ask for less or raise it with aws iam update-role --max-session-duration", wi.Role.MaxSessionDuration)
	}
	for _, pa := range in.PolicyArns {
		_, raw, err := s.opts.IAM.GetManagedPolicyDocument(ctx, account, pa.Arn)
		if err != nil {
			return nil, err
		}
		sessionPolicies = append(sessionPolicies, iamd.SessionPolicy{ARN: pa.Arn, Document: raw})
	}
	sess, err := s.opts.Sessions.Issue(ctx, iamd.Session{
		AccountID: account, RoleName: wi.Role.RoleName, RoleARN: wi.Role.ARN, RoleID: wi.Role.RoleID,
		SessionName: in.RoleSessionName, SessionPolicies: sessionPolicies,
	}, time.Duration(d)*time.Second)
	if err != nil {
		return nil, err
	}
	pr := sess.Principal()
	out := &AssumeRoleWithWebIdentityOutput{
		Credentials:                 credentialsOf(sess),
		SubjectFromWebIdentityToken: wi.Subject,
		AssumedRoleUser:             &AssumedRoleUser{AssumedRoleID: pr.UserID, Arn: pr.ARN},
		Provider:                    wi.Issuer,
		Audience:                    wi.Audience,
	}
	if len(sessionPolicies) > 0 {
		size := 0
		for _, sp := range sessionPolicies {
			size += len(sp.Document)
		}
		pct := int32(size * 100 / 2048)
		out.PackedPolicySize = &pct
	}
	return out, nil
}

// AssumeRoleWithSAMLInput is the STS AssumeRoleWithSAML request.
type AssumeRoleWithSAMLInput struct {
	RoleArn         string `required:"true"`
	PrincipalArn    string `required:"true"`
	SAMLAssertion   string `required:"true"`
	PolicyArns      []PolicyDescriptorType
	Policy          *string
	DurationSeconds *int32
}

// AssumeRoleWithSAMLOutput would carry the session; labcloud never
// returns it.
type AssumeRoleWithSAMLOutput struct {
	Credentials     *Credentials
	AssumedRoleUser *AssumedRoleUser
}

// assumeRoleWithSAML refuses: verifying a SAML assertion needs XML
// signature verification over canonicalized XML (with its history of
// signature-wrapping attacks) and SAML providers with metadata documents,
// which labcloud does not implement (docs/federation.md says why).
func (s *Server) assumeRoleWithSAML(context.Context, *Call, *AssumeRoleWithSAMLInput) (*AssumeRoleWithSAMLOutput, error) {
	return nil, errdefs.New(errdefs.ClassNotImplemented, "NotImplemented",
		"labcloud does not support SAML federation (AssumeRoleWithSAML): use OpenID Connect instead, with an OIDC provider (aws iam create-open-id-connect-provider) and aws sts assume-role-with-web-identity")
}
