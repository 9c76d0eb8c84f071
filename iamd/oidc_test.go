package iamd_test

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"

	"github.com/labcloud/labcloud/iamd"
)

const (
	testIssuer   = "https://issuer.lab.test/realm"
	testHostPath = "issuer.lab.test/realm"
	testClient   = "lab-app"
	testThumb    = "9e99a48a9960b14926bb7f3b02e22da2b0ab7280"
)

func TestOIDCProviderLifecycle(t *testing.T) {
	e := newIAMEnv(t)
	p, err := e.iam.CreateOIDCProvider(e.ctx, e.acct, iamd.CreateOIDCProviderInput{
		URL: testIssuer, ClientIDs: []string{testClient, testClient}, Thumbprints: []string{testThumb},
		Tags: []iamd.Tag{{Key: "team", Value: "blue"}},
	})
	must(t, "create", err)
	wantARN := "arn:aws:iam::" + e.acct + ":oidc-provider/" + testHostPath
	if p.ARN != wantARN || len(p.ClientIDs) != 1 {
		t.Fatalf("created %+v, want ARN %s and one client ID", p, wantARN)
	}
	_, err = e.iam.CreateOIDCProvider(e.ctx, e.acct, iamd.CreateOIDCProviderInput{URL: testIssuer})
	wantErr(t, "duplicate", err, "EntityAlreadyExists", testIssuer)

	must(t, "add client", e.iam.AddOIDCClientID(e.ctx, e.acct, p.ARN, "other-app"))
	must(t, "remove client", e.iam.RemoveOIDCClientID(e.ctx, e.acct, p.ARN, testClient))
	must(t, "thumbprints", e.iam.UpdateOIDCThumbprints(e.ctx, e.acct, p.ARN, []string{strings.ToUpper(testThumb)}))
	must(t, "untag", e.iam.UntagOIDCProvider(e.ctx, e.acct, p.ARN, []string{"team"}))
	got, err := e.iam.GetOIDCProvider(e.ctx, e.acct, p.ARN)
	must(t, "get", err)
	if len(got.ClientIDs) != 1 || got.ClientIDs[0] != "other-app" || got.Thumbprints[0] != strings.ToUpper(testThumb) || len(got.Tags) != 0 {
		t.Fatalf("after updates: %+v", got)
	}
	list, err := e.iam.ListOIDCProviders(e.ctx, e.acct)
	must(t, "list", err)
	if len(list) != 1 || list[0].ARN != p.ARN {
		t.Fatalf("list = %+v", list)
	}
	// Another account sees nothing.
	other := e.newAccount(t)
	_, err = e.iam.GetOIDCProvider(e.ctx, other, p.ARN)
	wantErr(t, "other account", err, "NoSuchEntity")

	must(t, "delete", e.iam.DeleteOIDCProvider(e.ctx, e.acct, p.ARN))
	_, err = e.iam.GetOIDCProvider(e.ctx, e.acct, p.ARN)
	wantErr(t, "get deleted", err, "NoSuchEntity", p.ARN)
	wantErr(t, "delete again", e.iam.DeleteOIDCProvider(e.ctx, e.acct, p.ARN), "NoSuchEntity")
}

func TestOIDCProviderValidation(t *testing.T) {
	e := newIAMEnv(t)
	many := func(n int, s string) []string {
		out := make([]string, n)
		for i := range out {
			out[i] = s
		}
		return out
	}
	hundredOne := make([]string, 101)
	for i := range hundredOne {
		hundredOne[i] = "client-" + strings.Repeat("x", i+1)
	}
	tests := []struct {
		name string
		in   iamd.CreateOIDCProviderInput
		code string
		msg  string
	}{
		{"http url", iamd.CreateOIDCProviderInput{URL: "http://issuer.lab.test"}, "InvalidInput", "https://"},
		{"no scheme", iamd.CreateOIDCProviderInput{URL: "issuer.lab.test"}, "InvalidInput", "https://"},
		{"query", iamd.CreateOIDCProviderInput{URL: "https://issuer.lab.test/?x=1"}, "InvalidInput", "query"},
		{"fragment", iamd.CreateOIDCProviderInput{URL: "https://issuer.lab.test/#f"}, "InvalidInput", "fragment"},
		{"no host", iamd.CreateOIDCProviderInput{URL: "https:///path"}, "InvalidInput", "HOST"},
		{"long url", iamd.CreateOIDCProviderInput{URL: "https://" + strings.Repeat("a", 250)}, "ValidationError", "255"},
		{"short thumbprint", iamd.CreateOIDCProviderInput{URL: testIssuer, Thumbprints: []string{"abc"}}, "InvalidInput", "40 hexadecimal"},
		{"non-hex thumbprint", iamd.CreateOIDCProviderInput{URL: testIssuer, Thumbprints: []string{strings.Repeat("g", 40)}}, "InvalidInput", "40 hexadecimal"},
		{"six thumbprints", iamd.CreateOIDCProviderInput{URL: testIssuer, Thumbprints: many(6, testThumb)}, "LimitExceeded", "fewer than 6"},
		{"101 client ids", iamd.CreateOIDCProviderInput{URL: testIssuer, ClientIDs: hundredOne}, "LimitExceeded", "ClientIdsPerOpenIdConnectProvider"},
		{"empty client id", iamd.CreateOIDCProviderInput{URL: testIssuer, ClientIDs: []string{""}}, "ValidationError", "clientIDList.1.member"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := e.iam.CreateOIDCProvider(e.ctx, e.acct, tt.in)
			wantErr(t, tt.name, err, tt.code, tt.msg)
		})
	}
	_, err := e.iam.GetOIDCProvider(e.ctx, e.acct, "arn:aws:iam::"+e.acct+":role/not-a-provider")
	wantErr(t, "role ARN", err, "InvalidInput", "oidc-provider/")
}

// issuer is a signing key of a test issuer.
type issuer struct {
	alg string
	key any // *rsa.PrivateKey or *ecdsa.PrivateKey
	jwk iamd.JWK
}

func newIssuer(t *testing.T, alg string) issuer {
	t.Helper()
	var (
		priv any
		pub  any
	)
	switch alg {
	case "RS256":
		k, err := rsa.GenerateKey(rand.Reader, 2048)
		must(t, "rsa key", err)
		priv, pub = k, &k.PublicKey
	case "ES256":
		k, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
		must(t, "ec key", err)
		priv, pub = k, &k.PublicKey
	}
	jwk, err := iamd.PublicJWK(pub)
	must(t, "jwk", err)
	return issuer{alg: alg, key: priv, jwk: jwk}
}

// sign mints a token; header overrides (alg, kid) let tests forge.
func (is issuer) sign(t *testing.T, claims jwt.MapClaims) string {
	t.Helper()
	tok := jwt.NewWithClaims(jwt.GetSigningMethod(is.alg), claims)
	tok.Header["kid"] = is.jwk.Kid
	s, err := tok.SignedString(is.key)
	must(t, "sign", err)
	return s
}

func jwksOf(t *testing.T, keys ...iamd.JWK) string {
	b, err := json.Marshal(iamd.JWKS{Keys: keys})
	must(t, "jwks", err)
	return string(b)
}

func TestJWKThumbprintRFC7638(t *testing.T) {
	// The example key and thumbprint of RFC 7638 section 3.1.
	k := iamd.JWK{Kty: "RSA", E: "AQAB", N: "0vx7agoebGcQSuuPiLJXZptN9nndrQmbXEps2aiAFbWhM78LhWx4cbbfAAtVT86zwu1RK7aPFFxuhDR1L6tSoc_BJECPebWKRXjBZCiFV4n3oknjhMstn64tZ_2W-5JsGY4Hc5n9yBXArwl93lqt7_RN5w6Cf0h4QyQ5v-65YGjQR0_FDW2QvzqY368QQMicAtaSqzs8KJZgnYb9c7d0zgdAZHzu6qMQvRL5hajrn1n91CbOpbISD08qNLyrdkt-bFTWhAI4vMQFh6WeZu0fM4lFd2NcRwr3XPksINHaQ-G_xBniIqbw0Ls1jF44-csFCur-kEgU8awapJzKnqDKgw"}
	if got, want := k.Thumbprint(), "NzbLsXh8uDCcd-6MNwXF4W_7noWXFZAfHkxZsRGC9Xs"; got != want {
		t.Fatalf("thumbprint = %s, want %s", got, want)
	}
}

// webIdentityEnv is an account with a provider, its keys and a role that
// trusts it for aud lab-app and subjects repo:lab/*.
type webIdentityEnv struct {
	*iamEnv
	rsa, ec  issuer
	provider iamd.OIDCProvider
	now      time.Time
}

func newWebIdentityEnv(t *testing.T) *webIdentityEnv {
	t.Helper()
	e := &webIdentityEnv{iamEnv: newIAMEnv(t), rsa: newIssuer(t, "RS256"), ec: newIssuer(t, "ES256"), now: time.Now().UTC()}
	p, err := e.iam.CreateOIDCProvider(e.ctx, e.acct, iamd.CreateOIDCProviderInput{URL: testIssuer, ClientIDs: []string{testClient}})
	must(t, "provider", err)
	p, err = e.iam.SetOIDCProviderKeys(e.ctx, p.ARN, jwksOf(t, e.rsa.jwk, e.ec.jwk))
	must(t, "keys", err)
	e.provider = p
	trust := `{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Principal":{"Federated":"` + p.ARN + `"},
		"Action":"sts:AssumeRoleWithWebIdentity",
		"Condition":{"StringEquals":{"` + testHostPath + `:aud":"` + testClient + `"},"StringLike":{"` + testHostPath + `:sub":"repo:lab/*"}}}]}`
	_, err = e.iam.CreateRole(e.ctx, e.acct, iamd.CreateRoleInput{RoleName: "ci", AssumeRolePolicyDocument: trust})
	must(t, "role", err)
	return e
}

func (e *webIdentityEnv) claims(mod func(jwt.MapClaims)) jwt.MapClaims {
	c := jwt.MapClaims{"iss": testIssuer, "aud": testClient, "sub": "repo:lab/app", "iat": e.now.Unix(), "exp": e.now.Add(time.Hour).Unix()}
	if mod != nil {
		mod(c)
	}
	return c
}

func (e *webIdentityEnv) assume(token string) (iamd.WebIdentity, error) {
	return e.iam.AuthorizeWebIdentity(e.ctx, iamd.WebIdentityInput{Account: e.acct, RoleName: "ci", Token: token, RoleSessionName: "s1", Now: e.now})
}

func TestAuthorizeWebIdentityTokenChecks(t *testing.T) {
	e := newWebIdentityEnv(t)
	stranger := newIssuer(t, "RS256")
	hs256, err := jwt.NewWithClaims(jwt.SigningMethodHS256, e.claims(nil)).SignedString([]byte(e.rsa.jwk.N))
	must(t, "hs256", err)
	none, err := jwt.NewWithClaims(jwt.SigningMethodNone, e.claims(nil)).SignedString(jwt.UnsafeAllowNoneSignatureType)
	must(t, "none", err)
	valid := e.rsa.sign(t, e.claims(nil))
	parts := strings.Split(valid, ".")
	tampered := parts[0] + "." + strings.Split(e.rsa.sign(t, e.claims(func(c jwt.MapClaims) { c["sub"] = "repo:lab/admin" })), ".")[1] + "." + parts[2]
	noKid := func() string {
		tok := jwt.NewWithClaims(jwt.SigningMethodRS256, e.claims(nil))
		s, err := tok.SignedString(e.rsa.key)
		must(t, "no kid", err)
		return s
	}()
	// A stranger's key presented under a kid the provider knows.
	forged := func() string {
		tok := jwt.NewWithClaims(jwt.SigningMethodRS256, e.claims(nil))
		tok.Header["kid"] = e.rsa.jwk.Kid
		s, err := tok.SignedString(stranger.key)
		must(t, "forged", err)
		return s
	}()

	tests := []struct {
		name  string
		token string
		code  string // "" for success
		msg   string
	}{
		{"valid RS256", valid, "", ""},
		{"valid ES256", e.ec.sign(t, e.claims(nil)), "", ""},
		{"aud list with a match", e.rsa.sign(t, e.claims(func(c jwt.MapClaims) { c["aud"] = []string{"x", testClient} })), "", ""},
		{"iss with trailing slash", e.rsa.sign(t, e.claims(func(c jwt.MapClaims) { c["iss"] = testIssuer + "/" })), "", ""},
		{"expiry within leeway", e.rsa.sign(t, e.claims(func(c jwt.MapClaims) { c["exp"] = e.now.Add(-30 * time.Second).Unix() })), "", ""},
		{"wrong aud", e.rsa.sign(t, e.claims(func(c jwt.MapClaims) { c["aud"] = "someone-else" })), "InvalidIdentityToken", "Incorrect token audience"},
		{"expired", e.rsa.sign(t, e.claims(func(c jwt.MapClaims) { c["exp"] = e.now.Add(-time.Hour).Unix() })), "ExpiredTokenException", "Token expired"},
		{"no exp", e.rsa.sign(t, e.claims(func(c jwt.MapClaims) { delete(c, "exp") })), "InvalidIdentityToken", "no exp"},
		{"nbf in the future", e.rsa.sign(t, e.claims(func(c jwt.MapClaims) { c["nbf"] = e.now.Add(time.Hour).Unix() })), "InvalidIdentityToken", "not valid yet"},
		{"iat in the future", e.rsa.sign(t, e.claims(func(c jwt.MapClaims) { c["iat"] = e.now.Add(time.Hour).Unix() })), "InvalidIdentityToken", "issued in the future"},
		{"bad signature", forged, "InvalidIdentityToken", "does not verify"},
		{"tampered payload", tampered, "InvalidIdentityToken", "does not verify"},
		{"alg none", none, "InvalidIdentityToken", `"none"`},
		{"HS256", hs256, "InvalidIdentityToken", `"HS256"`},
		{"unknown kid", stranger.sign(t, e.claims(nil)), "InvalidIdentityToken", stranger.jwk.Kid},
		{"missing kid", noKid, "InvalidIdentityToken", "no kid"},
		{"untrusted issuer", e.rsa.sign(t, e.claims(func(c jwt.MapClaims) { c["iss"] = "https://evil.lab.test" })), "InvalidIdentityToken", "No OpenIDConnect provider found"},
		{"no iss", e.rsa.sign(t, e.claims(func(c jwt.MapClaims) { delete(c, "iss") })), "InvalidIdentityToken", "no iss"},
		{"not a jwt", "hello", "InvalidIdentityToken", "not a JWT"},
		{"garbage header", "!!!.e30.sig", "InvalidIdentityToken", "header"},
		{"sub not trusted", e.rsa.sign(t, e.claims(func(c jwt.MapClaims) { c["sub"] = "repo:other/app" })), "AccessDenied", "repo:other/app"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			wi, err := e.assume(tt.token)
			if tt.code == "" {
				must(t, tt.name, err)
				if wi.Role.RoleName != "ci" || wi.Subject != "repo:lab/app" || wi.Audience != testClient || wi.Provider.ARN != e.provider.ARN {
					t.Fatalf("granted %+v", wi)
				}
				return
			}
			wantErr(t, tt.name, err, tt.code, tt.msg)
		})
	}
}

func TestAuthorizeWebIdentityTrustPolicy(t *testing.T) {
	e := newWebIdentityEnv(t)
	p := e.provider.ARN
	stmt := func(principal, action, cond string) string {
		s := `{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Principal":` + principal + `,"Action":"` + action + `"`
		if cond != "" {
			s += `,"Condition":` + cond
		}
		return s + `}]}`
	}
	tests := []struct {
		name  string
		trust string
		mod   func(jwt.MapClaims)
		allow bool
	}{
		{"provider, no conditions", stmt(`{"Federated":"`+p+`"}`, "sts:AssumeRoleWithWebIdentity", ""), nil, true},
		{"aud condition matches", stmt(`{"Federated":"`+p+`"}`, "sts:AssumeRoleWithWebIdentity", `{"StringEquals":{"`+testHostPath+`:aud":"`+testClient+`"}}`), nil, true},
		{"sub condition fails", stmt(`{"Federated":"`+p+`"}`, "sts:AssumeRoleWithWebIdentity", `{"StringEquals":{"`+testHostPath+`:sub":"someone"}}`), nil, false},
		{"amr condition matches", stmt(`{"Federated":"`+p+`"}`, "sts:AssumeRoleWithWebIdentity", `{"ForAnyValue:StringEquals":{"`+testHostPath+`:amr":"mfa"}}`),
			func(c jwt.MapClaims) { c["amr"] = []string{"pwd", "mfa"} }, true},
		{"amr condition without amr claim", stmt(`{"Federated":"`+p+`"}`, "sts:AssumeRoleWithWebIdentity", `{"ForAnyValue:StringEquals":{"`+testHostPath+`:amr":"mfa"}}`), nil, false},
		{"federated provider key", stmt(`{"Federated":"`+p+`"}`, "sts:AssumeRoleWithWebIdentity", `{"StringEquals":{"aws:FederatedProvider":"`+p+`"}}`), nil, true},
		{"only sts:AssumeRole", stmt(`{"Federated":"`+p+`"}`, "sts:AssumeRole", ""), nil, false},
		{"another provider", stmt(`{"Federated":"arn:aws:iam::`+e.acct+`:oidc-provider/other.lab.test"}`, "sts:AssumeRoleWithWebIdentity", ""), nil, false},
		{"the account, not the provider", stmt(`{"AWS":"arn:aws:iam::`+e.acct+`:root"}`, "sts:AssumeRoleWithWebIdentity", ""), nil, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			must(t, "trust", e.iam.UpdateAssumeRolePolicy(e.ctx, e.acct, "ci", tt.trust))
			_, err := e.assume(e.rsa.sign(t, e.claims(tt.mod)))
			if tt.allow {
				must(t, tt.name, err)
			} else {
				wantErr(t, tt.name, err, "AccessDenied", "sts:AssumeRoleWithWebIdentity")
			}
		})
	}
	// A role that does not exist is a plain denial too.
	_, err := e.iam.AuthorizeWebIdentity(e.ctx, iamd.WebIdentityInput{Account: e.acct, RoleName: "nope", Token: e.rsa.sign(t, e.claims(nil)), Now: e.now})
	wantErr(t, "missing role", err, "AccessDenied")
}

func TestOIDCKeysAndAudiences(t *testing.T) {
	e := newWebIdentityEnv(t)
	token := e.rsa.sign(t, e.claims(func(c jwt.MapClaims) { c["aud"] = "late-app" }))
	_, err := e.assume(token)
	wantErr(t, "before adding", err, "InvalidIdentityToken", "Incorrect token audience")
	must(t, "add", e.iam.AddOIDCClientID(e.ctx, e.acct, e.provider.ARN, "late-app"))
	// The role's condition still wants lab-app: now it is the trust policy
	// that refuses.
	_, err = e.assume(token)
	wantErr(t, "after adding", err, "AccessDenied")

	// Replacing the keys with only the EC key retires the RSA kid.
	_, err = e.iam.SetOIDCProviderKeys(e.ctx, e.provider.ARN, jwksOf(t, e.ec.jwk))
	must(t, "rotate", err)
	_, err = e.assume(e.rsa.sign(t, e.claims(nil)))
	wantErr(t, "retired kid", err, "InvalidIdentityToken", e.rsa.jwk.Kid)
	_, err = e.assume(e.ec.sign(t, e.claims(nil)))
	must(t, "ec after rotation", err)

	for _, bad := range []struct{ name, jwks, msg string }{
		{"not json", "{", "not valid JSON"},
		{"no keys", `{"keys":[]}`, "no usable key"},
		{"short rsa", `{"keys":[{"kty":"RSA","kid":"k","n":"AQAB","e":"AQAB"}]}`, "2048"},
	} {
		_, err := e.iam.SetOIDCProviderKeys(e.ctx, e.provider.ARN, bad.jwks)
		wantErr(t, bad.name, err, "InvalidInput", bad.msg)
	}
	_, err = e.iam.SetOIDCProviderKeys(e.ctx, "arn:aws:iam::"+e.acct+":oidc-provider/nowhere.lab.test", jwksOf(t, e.ec.jwk))
	wantErr(t, "unknown provider", err, "NoSuchEntity")

	// A provider without keys cannot verify anything.
	p2, err := e.iam.CreateOIDCProvider(e.ctx, e.acct, iamd.CreateOIDCProviderInput{URL: "https://keyless.lab.test", ClientIDs: []string{testClient}})
	must(t, "keyless", err)
	_, err = e.assume(e.rsa.sign(t, e.claims(func(c jwt.MapClaims) { c["iss"] = p2.URL })))
	wantErr(t, "keyless", err, "IDPCommunicationError", "set-oidc-keys")
}
