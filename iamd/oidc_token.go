package iamd

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/golang-jwt/jwt/v5"

	"github.com/labcloud/labcloud/iamd/policy"
	"github.com/labcloud/labcloud/internal/errdefs"
	"github.com/labcloud/labcloud/internal/store"
)

// tokenLeeway is the clock skew tolerated on exp, nbf and iat: issuers'
// clocks are not ours, and a minute is what AWS's own SDKs allow.
const tokenLeeway = time.Minute

// Web-identity errors, with STS's codes (the AssumeRoleWithWebIdentity
// errors of the STS API model).
func invalidIdentityToken(format string, args ...any) error {
	return errdefs.InvalidParameter("InvalidIdentityToken", format, args...)
}

func expiredIdentityToken(format string, args ...any) error {
	return errdefs.InvalidParameter("ExpiredTokenException", format, args...)
}

func webIdentityDenied(format string, args ...any) error {
	return errdefs.New(errdefs.ClassAccessDenied, "AccessDenied", format, args...)
}

// WebIdentityInput is what AssumeRoleWithWebIdentity asks: to assume the
// role RoleName of Account with the token.
type WebIdentityInput struct {
	Account         string
	RoleName        string
	Token           string
	RoleSessionName string
	// SourceIP fills aws:SourceIp for the trust policy.
	SourceIP string
	// Now is the time the token's exp, nbf and iat are checked against
	// (the daemon's clock, which tests move).
	Now time.Time
}

// WebIdentity is a verified token and the role it may assume.
type WebIdentity struct {
	Role     Role
	Provider OIDCProvider
	// Subject is the token's sub claim.
	Subject string
	// Audience is the aud value that matched one of the provider's client
	// IDs.
	Audience string
	// Issuer is the token's iss claim as sent.
	Issuer string
}

// tokenHeader is the part of a JOSE header that matters here.
type tokenHeader struct {
	Alg string `json:"alg"`
	Kid string `json:"kid"`
}

// AuthorizeWebIdentity verifies a web-identity token and decides whether
// its holder may assume the role, as STS AssumeRoleWithWebIdentity does:
//
//  1. the token is a JWS signed with RS256 or ES256 (never "none" or an
//     HMAC, whose key would be the provider's public key) and names its
//     key by kid;
//  2. its iss is the URL of an OIDC provider registered in the role's
//     account, and the signature verifies with that provider's key of that
//     kid;
//  3. exp is in the future, nbf and iat are not (a minute of leeway);
//  4. one of its aud values is among the provider's client IDs;
//  5. the role's trust policy allows the principal {"Federated": provider
//     ARN} the action sts:AssumeRoleWithWebIdentity, with the token's
//     claims as the condition keys <host/path>:aud, :sub and :amr.
//
// Failures are InvalidIdentityToken (1, 2, 4), ExpiredTokenException (3),
// IDPCommunicationError (a provider without loaded keys) and AccessDenied
// (5, and a role that does not exist, so tokens cannot probe for role
// names).
func (i *IAM) AuthorizeWebIdentity(ctx context.Context, in WebIdentityInput) (WebIdentity, error) {
	raw := strings.TrimSpace(in.Token)
	parts := strings.Split(raw, ".")
	if len(parts) != 3 {
		return WebIdentity{}, invalidIdentityToken("The web identity token is not a JWT: it must be three base64url parts separated by dots (header.payload.signature); pass the id token itself, not a file name or a JSON wrapper.")
	}
	var hdr tokenHeader
	hb, err := base64.RawURLEncoding.DecodeString(parts[0])
	if err != nil || json.Unmarshal(hb, &hdr) != nil {
		return WebIdentity{}, invalidIdentityToken("The web identity token's header is not base64url-encoded JSON: pass the JWT exactly as the issuer produced it.")
	}
	switch hdr.Alg {
	case "RS256", "ES256":
	default:
		return WebIdentity{}, invalidIdentityToken("The web identity token is signed with algorithm %q, which is not accepted: sign it with RS256 or ES256.", hdr.Alg)
	}
	if hdr.Kid == "" {
		return WebIdentity{}, invalidIdentityToken("The web identity token's header has no kid: the issuer must name the key it signed with, so it can be found in the provider's JWKS.")
	}
	var unverified jwt.MapClaims
	if _, _, err := jwt.NewParser().ParseUnverified(raw, &unverified); err != nil {
		return WebIdentity{}, invalidIdentityToken("The web identity token's payload is not a JSON object of claims: pass the JWT exactly as the issuer produced it.")
	}
	iss, _ := unverified["iss"].(string)
	if iss == "" {
		return WebIdentity{}, invalidIdentityToken("The web identity token has no iss claim: it must name its issuer, the URL of an OpenID Connect provider of the role's account.")
	}
	hostPath := strings.TrimSuffix(strings.TrimPrefix(iss, "https://"), "/")
	prov, _, err := store.Load[OIDCProvider](ctx, i.st, oidcKey(in.Account, hostPath))
	if isNotFound(err) {
		return WebIdentity{}, invalidIdentityToken("No OpenIDConnect provider found in your account for %s: register it in account %s with aws iam create-open-id-connect-provider --url %s.", iss, in.Account, "https://"+hostPath)
	}
	if err != nil {
		return WebIdentity{}, err
	}
	keys, err := ParseJWKS([]byte(prov.JWKS))
	if prov.JWKS == "" || err != nil || len(keys) == 0 {
		return WebIdentity{}, errdefs.InvalidParameter("IDPCommunicationError",
			"No signing keys are loaded for OpenID Connect provider %s (labcloud cannot fetch them from the issuer): load its JWKS with labcloud admin set-oidc-keys --provider-arn %s --jwks-file FILE.", prov.ARN, prov.ARN)
	}
	key, ok := keys[hdr.Kid]
	if !ok {
		return WebIdentity{}, invalidIdentityToken("The web identity token is signed with key %q, which is not in the JWKS of provider %s: load the issuer's current keys with labcloud admin set-oidc-keys.", hdr.Kid, prov.ARN)
	}
	if key.Alg != hdr.Alg {
		return WebIdentity{}, invalidIdentityToken("The web identity token says algorithm %s but key %q of provider %s is a %s key.", hdr.Alg, hdr.Kid, prov.ARN, key.Alg)
	}

	now := in.Now
	if now.IsZero() {
		now = i.now()
	}
	parser := jwt.NewParser(jwt.WithValidMethods([]string{hdr.Alg}), jwt.WithLeeway(tokenLeeway),
		jwt.WithTimeFunc(func() time.Time { return now }), jwt.WithIssuedAt(), jwt.WithExpirationRequired())
	var claims jwt.MapClaims
	_, err = parser.ParseWithClaims(raw, &claims, func(*jwt.Token) (any, error) { return key.Key, nil })
	switch {
	case err == nil:
	case errors.Is(err, jwt.ErrTokenSignatureInvalid):
		return WebIdentity{}, invalidIdentityToken("The web identity token's signature does not verify with key %q of provider %s: the token was altered or signed with another key.", hdr.Kid, prov.ARN)
	case errors.Is(err, jwt.ErrTokenExpired):
		exp, _ := claims.GetExpirationTime()
		return WebIdentity{}, expiredIdentityToken("Token expired: current date/time %s must be before the expiration date/time %s. Get a new token from the issuer.", now.UTC().Format(time.RFC3339), timeOf(exp))
	case errors.Is(err, jwt.ErrTokenRequiredClaimMissing):
		return WebIdentity{}, invalidIdentityToken("The web identity token has no exp claim: it must say when it expires.")
	case errors.Is(err, jwt.ErrTokenNotValidYet):
		nbf, _ := claims.GetNotBefore()
		return WebIdentity{}, invalidIdentityToken("The web identity token is not valid yet: its nbf is %s and it is %s now. Check the issuer's clock.", timeOf(nbf), now.UTC().Format(time.RFC3339))
	case errors.Is(err, jwt.ErrTokenUsedBeforeIssued):
		iat, _ := claims.GetIssuedAt()
		return WebIdentity{}, invalidIdentityToken("The web identity token was issued in the future: its iat is %s and it is %s now. Check the issuer's clock.", timeOf(iat), now.UTC().Format(time.RFC3339))
	default:
		return WebIdentity{}, invalidIdentityToken("The web identity token could not be validated: %v.", err)
	}

	auds, err := claims.GetAudience()
	if err != nil {
		return WebIdentity{}, invalidIdentityToken("The web identity token's aud claim is neither a string nor a list of strings.")
	}
	aud := ""
	for _, a := range auds {
		for _, c := range prov.ClientIDs {
			if a == c {
				aud = a
				break
			}
		}
		if aud != "" {
			break
		}
	}
	if aud == "" {
		return WebIdentity{}, invalidIdentityToken("Incorrect token audience: the token's aud %v is not a client ID of provider %s; add it with aws iam add-client-id-to-open-id-connect-provider or request the token for one of %v.", auds, prov.ARN, prov.ClientIDs)
	}
	sub, _ := claims["sub"].(string)
	if sub == "" {
		return WebIdentity{}, invalidIdentityToken("The web identity token has no sub claim: it must name its subject.")
	}

	wi := WebIdentity{Provider: prov, Subject: sub, Audience: aud, Issuer: iss}
	notAllowed := fmt.Sprintf("Not authorized to perform sts:AssumeRoleWithWebIdentity: the trust policy of role %s in account %s does not allow the federated principal %s with this token (check its Principal, Action and the conditions on %s:aud and %s:sub; this token has aud %q and sub %q).",
		in.RoleName, in.Account, prov.ARN, prov.HostPath(), prov.HostPath(), aud, sub)
	role, err := i.GetRole(ctx, in.Account, in.RoleName)
	if errdefs.Is(err, errdefs.ClassNotFound) {
		return WebIdentity{}, webIdentityDenied("%s", notAllowed)
	}
	if err != nil {
		return WebIdentity{}, err
	}
	wi.Role = role
	trust, err := policy.Parse(role.AssumeRolePolicyDocument, policy.KindTrust)
	if err != nil {
		return WebIdentity{}, fmt.Errorf("trust policy of role %s: %w", role.RoleName, err)
	}
	d := policy.Decide(policy.Input{
		Request: policy.Request{
			Action: "sts:AssumeRoleWithWebIdentity", Resource: role.ARN,
			Principal: policy.PrincipalInfo{Federated: prov.ARN},
			Context:   webIdentityContext(prov, claims, aud, sub, in, now),
		},
		ResourceAccount: in.Account,
		Resource:        &policy.NamedPolicy{Source: policy.Source{Type: policy.SourceResourcePolicy, ID: role.ARN, Name: role.RoleName}, Policy: trust},
	})
	if d.Effect != policy.Allowed {
		return WebIdentity{}, webIdentityDenied("%s", notAllowed)
	}
	return wi, nil
}

// webIdentityContext is the request context the trust policy sees: the
// provider-specific keys AWS documents for OIDC federation
// (<host/path>:aud, :sub, :amr, plus :iss and :azp when present), the
// provider as aws:FederatedProvider and the usual global keys.
func webIdentityContext(prov OIDCProvider, claims jwt.MapClaims, aud, sub string, in WebIdentityInput, now time.Time) *policy.Context {
	rc := policy.NewContext()
	hp := prov.HostPath()
	rc.Set(hp+":aud", aud)
	rc.Set(hp+":sub", sub)
	if amr := stringsOf(claims["amr"]); len(amr) > 0 {
		rc.Set(hp+":amr", amr...)
	}
	if azp, ok := claims["azp"].(string); ok && azp != "" {
		rc.Set(hp+":azp", azp)
	}
	rc.Set("aws:FederatedProvider", prov.ARN)
	rc.Set("aws:PrincipalType", "WebIdentityUser")
	if in.RoleSessionName != "" {
		rc.Set("sts:RoleSessionName", in.RoleSessionName)
	}
	if in.SourceIP != "" {
		rc.Set("aws:SourceIp", in.SourceIP)
	}
	t := now.UTC()
	rc.Set("aws:CurrentTime", t.Format(time.RFC3339))
	rc.Set("aws:EpochTime", strconv.FormatInt(t.Unix(), 10))
	rc.Set("aws:SecureTransport", "false")
	return rc
}

// stringsOf reads a claim that is a string or a list of strings.
func stringsOf(v any) []string {
	switch x := v.(type) {
	case string:
		return []string{x}
	case []any:
		var out []string
		for _, e := range x {
			if s, ok := e.(string); ok {
				out = append(out, s)
			}
		}
		sort.Strings(out)
		return out
	}
	return nil
}

func timeOf(t *jwt.NumericDate) string {
	if t == nil {
		return "(none)"
	}
	return t.UTC().Format(time.RFC3339)
}
