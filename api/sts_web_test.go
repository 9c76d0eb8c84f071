package api

import (
	"context"
	"crypto/rand"
	"crypto/rsa"
	"encoding/json"
	"encoding/xml"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"

	"github.com/labcloud/labcloud/api/sigv4"
	"github.com/labcloud/labcloud/iamd"
	"github.com/labcloud/labcloud/internal/store"
	"github.com/labcloud/labcloud/internal/store/embedded"
)

// fedServer is an API server with IAM authorization and sessions over a
// real embedded etcd, for the federation path end to end.
type fedServer struct {
	url  string
	acct string
	root sigv4.Key
}

func newFedServer(t *testing.T) *fedServer {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	t.Cleanup(cancel)
	srv, err := embedded.Start(ctx, embedded.Config{DataDir: t.TempDir()})
	if err != nil {
		t.Fatalf("starting embedded etcd: %v", err)
	}
	t.Cleanup(func() { srv.Close() })
	cli, err := store.Dial(ctx, srv.Endpoints())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cli.Close() })
	st := store.New(cli, "/labcloud/")
	accounts := iamd.NewAccounts(st)
	a, k, err := accounts.Bootstrap(ctx, "admin")
	if err != nil {
		t.Fatal(err)
	}
	i := iamd.NewIAM(st, accounts)
	authz := &IAMAuthorizer{IAM: i, Accounts: accounts, Region: "lab-1", MessageKey: make([]byte, 32)}
	hs := httptest.NewServer(New(Options{Accounts: accounts, IAM: i, Sessions: iamd.NewSessions(st, nil), Authorizer: authz, Region: "lab-1"}))
	t.Cleanup(hs.Close)
	return &fedServer{url: hs.URL, acct: a.ID, root: sigv4.Key{AccessKeyID: k.AccessKeyID, SecretAccessKey: k.SecretAccessKey}}
}

// send posts a Query request, signed with k for service unless k is nil.
func (s *fedServer) send(t *testing.T, k *sigv4.Key, service, version, action string, params url.Values, header ...string) (int, string) {
	t.Helper()
	form := url.Values{"Action": {action}, "Version": {version}}
	for n, vs := range params {
		form[n] = vs
	}
	body := form.Encode()
	req, err := http.NewRequest("POST", s.url+"/", strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded; charset=utf-8")
	for n := 0; n+1 < len(header); n += 2 {
		req.Header.Set(header[n], header[n+1])
	}
	if k != nil {
		if err := sigv4.Sign(req, []byte(body), *k, "lab-1", service, time.Now()); err != nil {
			t.Fatal(err)
		}
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

func (s *fedServer) iam(t *testing.T, action string, params url.Values, out any) {
	t.Helper()
	status, body := s.send(t, &s.root, ServiceIAM, "2010-05-08", action, params)
	if status != 200 {
		t.Fatalf("%s: HTTP %d: %s", action, status, body)
	}
	decodeResult(t, action, body, out)
}

func decodeResult(t *testing.T, action, body string, out any) {
	t.Helper()
	if out == nil {
		return
	}
	d := xml.NewDecoder(strings.NewReader(body))
	for {
		tok, err := d.Token()
		if err != nil {
			t.Fatalf("%s: no %sResult in %s", action, action, body)
		}
		if se, ok := tok.(xml.StartElement); ok && se.Name.Local == action+"Result" {
			if err := d.DecodeElement(out, &se); err != nil {
				t.Fatalf("%s: decoding %s: %v", action, body, err)
			}
			return
		}
	}
}

// wantError checks an error response's status and code and that it
// carries no credentials.
func wantError(t *testing.T, what string, status int, body string, wantStatus int, wantCode, wantMsg string) {
	t.Helper()
	var e struct {
		Error struct{ Code, Message string }
	}
	if err := xml.Unmarshal([]byte(body), &e); err != nil {
		t.Fatalf("%s: HTTP %d, not an error document: %s", what, status, body)
	}
	if status != wantStatus || e.Error.Code != wantCode || !strings.Contains(e.Error.Message, wantMsg) {
		t.Fatalf("%s: HTTP %d %s (%s), want %d %s containing %q", what, status, e.Error.Code, e.Error.Message, wantStatus, wantCode, wantMsg)
	}
	if strings.Contains(body, "ASIA") || strings.Contains(body, "SecretAccessKey") {
		t.Fatalf("%s: error response carries credentials: %s", what, body)
	}
}

func TestAssumeRoleWithWebIdentityWire(t *testing.T) {
	s := newFedServer(t)
	const issuerURL, hostPath, client = "https://idp.lab.test", "idp.lab.test", "lab-app"

	// The provider, through the IAM API.
	var created struct{ OpenIDConnectProviderArn string }
	s.iam(t, "CreateOpenIDConnectProvider", url.Values{"Url": {issuerURL}, "ClientIDList.member.1": {client},
		"ThumbprintList.member.1": {"9e99a48a9960b14926bb7f3b02e22da2b0ab7280"}, "Tags.member.1.Key": {"env"}, "Tags.member.1.Value": {"lab"}}, &created)
	arn := created.OpenIDConnectProviderArn
	if arn != "arn:aws:iam::"+s.acct+":oidc-provider/"+hostPath {
		t.Fatalf("provider ARN %q", arn)
	}
	var got struct {
		Url          string
		ClientIDList struct {
			Member []string `xml:"member"`
		}
		ThumbprintList struct {
			Member []string `xml:"member"`
		}
		CreateDate string
	}
	s.iam(t, "GetOpenIDConnectProvider", url.Values{"OpenIDConnectProviderArn": {arn}}, &got)
	if got.Url != hostPath || len(got.ClientIDList.Member) != 1 || got.ClientIDList.Member[0] != client || len(got.ThumbprintList.Member) != 1 || got.CreateDate == "" {
		t.Fatalf("GetOpenIDConnectProvider = %+v", got)
	}
	var list struct {
		OpenIDConnectProviderList struct {
			Member []struct{ Arn string } `xml:"member"`
		}
	}
	s.iam(t, "ListOpenIDConnectProviders", nil, &list)
	if len(list.OpenIDConnectProviderList.Member) != 1 || list.OpenIDConnectProviderList.Member[0].Arn != arn {
		t.Fatalf("ListOpenIDConnectProviders = %+v", list)
	}
	var tags struct {
		Tags struct {
			Member []struct{ Key, Value string } `xml:"member"`
		}
	}
	s.iam(t, "ListOpenIDConnectProviderTags", url.Values{"OpenIDConnectProviderArn": {arn}}, &tags)
	if len(tags.Tags.Member) != 1 || tags.Tags.Member[0].Key != "env" {
		t.Fatalf("ListOpenIDConnectProviderTags = %+v", tags)
	}
	status, body := s.send(t, &s.root, ServiceIAM, "2010-05-08", "CreateOpenIDConnectProvider", url.Values{"Url": {issuerURL}})
	wantError(t, "duplicate provider", status, body, 409, "EntityAlreadyExists", issuerURL)

	// Its keys, through the admin API.
	key, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	jwk, err := iamd.PublicJWK(&key.PublicKey)
	if err != nil {
		t.Fatal(err)
	}
	jwks, _ := json.Marshal(iamd.JWKS{Keys: []iamd.JWK{jwk}})
	status, body = s.send(t, &s.root, ServiceLabcloud, AdminVersion, "SetOpenIDConnectProviderKeys", url.Values{"OpenIDConnectProviderArn": {arn}, "Jwks": {string(jwks)}})
	if status != 200 || !strings.Contains(body, jwk.Kid) {
		t.Fatalf("SetOpenIDConnectProviderKeys: HTTP %d: %s", status, body)
	}

	// A role that trusts the provider for the lab-app audience, allowed
	// to list roles and nothing else.
	trust := `{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Principal":{"Federated":"` + arn + `"},"Action":"sts:AssumeRoleWithWebIdentity","Condition":{"StringEquals":{"` + hostPath + `:aud":"` + client + `"}}}]}`
	s.iam(t, "CreateRole", url.Values{"RoleName": {"ci"}, "AssumeRolePolicyDocument": {trust}}, nil)
	s.iam(t, "PutRolePolicy", url.Values{"RoleName": {"ci"}, "PolicyName": {"list"}, "PolicyDocument": {`{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Action":"iam:ListRoles","Resource":"*"}]}`}}, nil)
	roleARN := "arn:aws:iam::" + s.acct + ":role/ci"

	mint := func(mod func(jwt.MapClaims)) string {
		now := time.Now()
		c := jwt.MapClaims{"iss": issuerURL, "aud": client, "sub": "student-7", "iat": now.Unix(), "exp": now.Add(time.Hour).Unix()}
		if mod != nil {
			mod(c)
		}
		tok := jwt.NewWithClaims(jwt.SigningMethodRS256, c)
		tok.Header["kid"] = jwk.Kid
		out, err := tok.SignedString(key)
		if err != nil {
			t.Fatal(err)
		}
		return out
	}
	assume := func(token string, extra ...string) (int, string) {
		p := url.Values{"RoleArn": {roleARN}, "RoleSessionName": {"s1"}, "WebIdentityToken": {token}}
		for n := 0; n+1 < len(extra); n += 2 {
			p.Set(extra[n], extra[n+1])
		}
		return s.send(t, nil, ServiceSTS, "2011-06-15", "AssumeRoleWithWebIdentity", p)
	}

	status, body = assume(mint(nil))
	if status != 200 {
		t.Fatalf("AssumeRoleWithWebIdentity: HTTP %d: %s", status, body)
	}
	var res struct {
		Credentials                 struct{ AccessKeyId, SecretAccessKey, SessionToken, Expiration string }
		SubjectFromWebIdentityToken string
		AssumedRoleUser             struct{ AssumedRoleId, Arn string }
		Provider, Audience          string
	}
	decodeResult(t, "AssumeRoleWithWebIdentity", body, &res)
	if !strings.HasPrefix(res.Credentials.AccessKeyId, "ASIA") || res.SubjectFromWebIdentityToken != "student-7" ||
		res.AssumedRoleUser.Arn != "arn:aws:sts::"+s.acct+":assumed-role/ci/s1" || res.Provider != issuerURL || res.Audience != client {
		t.Fatalf("AssumeRoleWithWebIdentity = %+v", res)
	}

	// Signed is fine too (some SDKs sign it): the signature is checked, the
	// signer's permissions play no part.
	status, body = s.send(t, &s.root, ServiceSTS, "2011-06-15", "AssumeRoleWithWebIdentity",
		url.Values{"RoleArn": {roleARN}, "RoleSessionName": {"s2"}, "WebIdentityToken": {mint(nil)}})
	if status != 200 || !strings.Contains(body, "assumed-role/ci/s2") {
		t.Fatalf("signed AssumeRoleWithWebIdentity: HTTP %d: %s", status, body)
	}
	bad := s.root
	bad.SecretAccessKey = "wrong" + bad.SecretAccessKey[5:]
	status, body = s.send(t, &bad, ServiceSTS, "2011-06-15", "AssumeRoleWithWebIdentity",
		url.Values{"RoleArn": {roleARN}, "RoleSessionName": {"s2"}, "WebIdentityToken": {mint(nil)}})
	wantError(t, "wrongly signed", status, body, 403, "SignatureDoesNotMatch", "")

	// The session works and has exactly the role's permissions.
	sess := sigv4.Key{AccessKeyID: res.Credentials.AccessKeyId, SecretAccessKey: res.Credentials.SecretAccessKey, SessionToken: res.Credentials.SessionToken}
	status, body = s.send(t, &sess, ServiceSTS, "2011-06-15", "GetCallerIdentity", nil)
	if status != 200 || !strings.Contains(body, "assumed-role/ci/s1") {
		t.Fatalf("GetCallerIdentity with the session: HTTP %d: %s", status, body)
	}
	if status, body = s.send(t, &sess, ServiceIAM, "2010-05-08", "ListRoles", nil); status != 200 {
		t.Fatalf("ListRoles with the session: HTTP %d: %s", status, body)
	}
	status, body = s.send(t, &sess, ServiceIAM, "2010-05-08", "ListUsers", nil)
	wantError(t, "ListUsers with the session", status, body, 403, "AccessDenied", "iam:ListUsers")

	// Failures: the codes AWS uses, and never credentials.
	tests := []struct {
		name   string
		token  string
		extra  []string
		status int
		code   string
		msg    string
	}{
		{"wrong audience", mint(func(c jwt.MapClaims) { c["aud"] = "other" }), nil, 400, "InvalidIdentityToken", "Incorrect token audience"},
		{"expired", mint(func(c jwt.MapClaims) { c["exp"] = time.Now().Add(-time.Hour).Unix() }), nil, 400, "ExpiredTokenException", "Token expired"},
		{"untrusted issuer", mint(func(c jwt.MapClaims) { c["iss"] = "https://elsewhere.lab.test" }), nil, 400, "InvalidIdentityToken", "No OpenIDConnect provider"},
		{"bad signature", mint(nil)[:len(mint(nil))-4] + "AAAA", nil, 400, "InvalidIdentityToken", "signature"},
		{"aud list without a match", mint(func(c jwt.MapClaims) { c["aud"] = []string{"x"} }), nil, 400, "InvalidIdentityToken", "Incorrect token audience"},
		{"too long", mint(nil), []string{"DurationSeconds", "7200"}, 400, "ValidationError", "MaxSessionDuration"},
		{"bad session name", mint(nil), []string{"RoleSessionName", "a b"}, 400, "ValidationError", "roleSessionName"},
		{"short duration", mint(nil), []string{"DurationSeconds", "60"}, 400, "ValidationError", "900"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			status, body := assume(tt.token, tt.extra...)
			wantError(t, tt.name, status, body, tt.status, tt.code, tt.msg)
		})
	}
	s.iam(t, "UpdateAssumeRolePolicy", url.Values{"RoleName": {"ci"}, "PolicyDocument": {strings.Replace(trust, client, "someone-else", 1)}}, nil)
	status, body = assume(mint(nil))
	wantError(t, "trust policy condition", status, body, 403, "AccessDenied", "sts:AssumeRoleWithWebIdentity")

	// Only these two actions may come unsigned.
	status, body = s.send(t, nil, ServiceSTS, "2011-06-15", "GetCallerIdentity", nil)
	wantError(t, "unsigned GetCallerIdentity", status, body, 403, "MissingAuthenticationToken", "")
	status, body = s.send(t, nil, ServiceSTS, "2011-06-15", "AssumeRole", url.Values{"RoleArn": {roleARN}, "RoleSessionName": {"x1"}})
	wantError(t, "unsigned AssumeRole", status, body, 403, "MissingAuthenticationToken", "")
	status, body = s.send(t, nil, ServiceIAM, "2010-05-08", "ListRoles", nil)
	wantError(t, "unsigned ListRoles", status, body, 403, "MissingAuthenticationToken", "")
	// A broken signature on an anonymous action is still an error.
	status, body = s.send(t, nil, ServiceSTS, "2011-06-15", "AssumeRoleWithWebIdentity",
		url.Values{"RoleArn": {roleARN}, "RoleSessionName": {"s1"}, "WebIdentityToken": {mint(nil)}}, "Authorization", "AWS4-HMAC-SHA256 garbage")
	if status == 200 {
		t.Fatalf("a malformed Authorization header was ignored: %s", body)
	}
	status, body = s.send(t, nil, ServiceSTS, "2011-06-15", "AssumeRoleWithSAML",
		url.Values{"RoleArn": {roleARN}, "PrincipalArn": {arn}, "SAMLAssertion": {"PHNhbWw+"}})
	wantError(t, "SAML", status, body, 501, "NotImplemented", "OpenID Connect")
}

func TestOIDCProviderActionsNeedPermission(t *testing.T) {
	s := newFedServer(t)
	// A user without policies may not create providers or load keys.
	s.iam(t, "CreateUser", url.Values{"UserName": {"bob"}}, nil)
	var ak struct {
		AccessKey struct{ AccessKeyId, SecretAccessKey string }
	}
	s.iam(t, "CreateAccessKey", url.Values{"UserName": {"bob"}}, &ak)
	bob := sigv4.Key{AccessKeyID: ak.AccessKey.AccessKeyId, SecretAccessKey: ak.AccessKey.SecretAccessKey}
	status, body := s.send(t, &bob, ServiceIAM, "2010-05-08", "CreateOpenIDConnectProvider", url.Values{"Url": {"https://idp.lab.test"}})
	wantError(t, "bob creates", status, body, 403, "AccessDenied", "oidc-provider/idp.lab.test")
	status, body = s.send(t, &bob, ServiceLabcloud, AdminVersion, "SetOpenIDConnectProviderKeys",
		url.Values{"OpenIDConnectProviderArn": {"arn:aws:iam::" + s.acct + ":oidc-provider/idp.lab.test"}, "Jwks": {`{"keys":[]}`}})
	wantError(t, "bob loads keys", status, body, 403, "AccessDenied", "admin")
}
