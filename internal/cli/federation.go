package cli

import (
	"context"
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"encoding/json"
	"encoding/pem"
	"encoding/xml"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"strings"
	"time"

	"github.com/golang-jwt/jwt/v5"
	ucli "github.com/urfave/cli/v2"

	"github.com/labcloud/labcloud/api"
	"github.com/labcloud/labcloud/api/sigv4"
	"github.com/labcloud/labcloud/iamd"
)

// federationCommands are the admin verbs of web-identity federation: load
// a provider's signing keys (labcloud cannot fetch them, labs have no
// internet), and a tiny built-in issuer that makes a key and mints tokens
// with it, so labs and tests need no external identity provider.
func federationCommands() []*ucli.Command {
	return []*ucli.Command{
		{
			Name:  "set-oidc-keys",
			Usage: "load the signing keys (JWKS) of an OpenID Connect provider",
			Description: `AWS fetches an OIDC provider's signing keys from the issuer's jwks_uri;
labcloud has no internet, so the admin loads them from a file. The file is
the issuer's JWKS document, {"keys":[...]}, with RSA (RS256) or EC P-256
(ES256) public keys that have a kid. Loading replaces the provider's keys.

   aws iam create-open-id-connect-provider --url https://issuer.lab --client-id-list lab-app
   labcloud admin set-oidc-keys --provider-arn arn:aws:iam::ACCOUNT:oidc-provider/issuer.lab --jwks-file jwks.json

The provider may be in any account; only the admin account's root may load keys.`,
			Flags: []ucli.Flag{
				&ucli.StringFlag{Name: "provider-arn", Required: true, Usage: "ARN of the provider, arn:aws:iam::ACCOUNT:oidc-provider/HOST[/PATH]"},
				&ucli.StringFlag{Name: "jwks-file", Required: true, Usage: "the issuer's JWKS document (issuer-keygen writes one)"},
			},
			Action: setOIDCKeys,
		},
		{
			Name:  "issuer-keygen",
			Usage: "make a signing key for the built-in token issuer, and its JWKS",
			Description: `Writes a private key (PKCS#8 PEM, mode 0600) and the JWKS that holds its
public key, with kid set to the key's RFC 7638 thumbprint. Load the JWKS
into a provider with set-oidc-keys; mint tokens with issue-token.

   labcloud admin issuer-keygen --out issuer.pem --jwks-out jwks.json`,
			Flags: []ucli.Flag{
				&ucli.StringFlag{Name: "out", Required: true, Usage: "where to write the private key (PEM)"},
				&ucli.StringFlag{Name: "jwks-out", Required: true, Usage: "where to write the JWKS with the public key"},
				&ucli.StringFlag{Name: "alg", Value: "RS256", Usage: "RS256 (RSA 2048) or ES256 (EC P-256)"},
			},
			Action: issuerKeygen,
		},
		{
			Name:      "issue-token",
			Usage:     "mint a web-identity token (JWT) with a local issuer key",
			ArgsUsage: " ",
			Description: `Prints a signed JWT for aws sts assume-role-with-web-identity: RS256 for an
RSA key, ES256 for an EC key, kid = the key's RFC 7638 thumbprint. Claims
iss, aud, sub, iat and exp (now + --ttl) are set; --claim adds more (the
value is read as JSON when it parses, e.g. amr='["mfa"]', else as a string).
A negative --ttl mints an already expired token, to try the error.

   TOKEN=$(labcloud admin issue-token --issuer-key issuer.pem --issuer https://issuer.lab \
           --audience lab-app --subject student-7)
   aws sts assume-role-with-web-identity --role-arn arn:aws:iam::ACCOUNT:role/ROLE \
       --role-session-name s1 --web-identity-token "$TOKEN"`,
			Flags: []ucli.Flag{
				&ucli.StringFlag{Name: "issuer-key", Required: true, Usage: "private key file (PEM) from issuer-keygen"},
				&ucli.StringFlag{Name: "issuer", Required: true, Usage: "the iss claim: the provider URL, https://HOST[/PATH]"},
				&ucli.StringSliceFlag{Name: "audience", Required: true, Usage: "the aud claim, a client ID of the provider (repeat for several)"},
				&ucli.StringFlag{Name: "subject", Required: true, Usage: "the sub claim"},
				&ucli.DurationFlag{Name: "ttl", Value: time.Hour, Usage: "lifetime; exp = now + ttl"},
				&ucli.StringSliceFlag{Name: "claim", Usage: "extra claim KEY=VALUE (repeatable)"},
			},
			Action: issueToken,
		},
	}
}

func setOIDCKeys(c *ucli.Context) error {
	jwks, err := os.ReadFile(c.String("jwks-file"))
	if err != nil {
		return fmt.Errorf("reading the JWKS: %w", err)
	}
	data, err := adminCall(c, "SetOpenIDConnectProviderKeys", url.Values{
		"OpenIDConnectProviderArn": {c.String("provider-arn")}, "Jwks": {string(jwks)}})
	if err != nil {
		return err
	}
	var out struct {
		Result struct {
			Arn  string   `xml:"OpenIDConnectProviderArn"`
			Kids []string `xml:"KeyIds>member"`
		} `xml:"SetOpenIDConnectProviderKeysResult"`
	}
	if err := xml.Unmarshal(data, &out); err != nil {
		return fmt.Errorf("parsing response: %w", err)
	}
	if c.String("output") == "json" {
		return render(c, out.Result, nil, nil)
	}
	fmt.Fprintf(c.App.Writer, "loaded %d signing key(s) into %s: %s\n", len(out.Result.Kids), out.Result.Arn, strings.Join(out.Result.Kids, ", "))
	return nil
}

// adminCall sends a labcloud admin action signed with the configured
// credentials and returns the response body of a success.
func adminCall(c *ucli.Context, action string, params url.Values) ([]byte, error) {
	cfg, err := awsConfig(c)
	if err != nil {
		return nil, err
	}
	ctx, cancel := context.WithTimeout(c.Context, 30*time.Second)
	defer cancel()
	creds, err := cfg.Credentials.Retrieve(ctx)
	if err != nil {
		return nil, fmt.Errorf("reading credentials: %w", err)
	}
	form := url.Values{"Action": {action}, "Version": {api.AdminVersion}}
	for k, v := range params {
		form[k] = v
	}
	body := form.Encode()
	endpoint := strings.TrimRight(*cfg.BaseEndpoint, "/")
	req, err := http.NewRequestWithContext(ctx, "POST", endpoint+"/", strings.NewReader(body))
	if err != nil {
		return nil, err
	}
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded; charset=utf-8")
	key := sigv4.Key{AccessKeyID: creds.AccessKeyID, SecretAccessKey: creds.SecretAccessKey, SessionToken: creds.SessionToken}
	if err := sigv4.Sign(req, []byte(body), key, cfg.Region, api.ServiceLabcloud, time.Now()); err != nil {
		return nil, err
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return nil, fmt.Errorf("calling %s: %w", endpoint, err)
	}
	defer resp.Body.Close()
	data, err := io.ReadAll(resp.Body)
	if err != nil {
		return nil, err
	}
	if resp.StatusCode != http.StatusOK {
		var e struct {
			Error struct{ Code, Message string }
		}
		if xml.Unmarshal(data, &e) == nil && e.Error.Code != "" {
			return nil, fmt.Errorf("%s: %s", e.Error.Code, e.Error.Message)
		}
		return nil, fmt.Errorf("HTTP %d: %s", resp.StatusCode, data)
	}
	return data, nil
}

func issuerKeygen(c *ucli.Context) error {
	var (
		priv crypto.Signer
		err  error
	)
	switch alg := c.String("alg"); alg {
	case "RS256":
		priv, err = rsa.GenerateKey(rand.Reader, 2048)
	case "ES256":
		priv, err = ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	default:
		return fmt.Errorf("--alg %q: use RS256 or ES256", alg)
	}
	if err != nil {
		return err
	}
	der, err := x509.MarshalPKCS8PrivateKey(priv)
	if err != nil {
		return err
	}
	jwk, err := iamd.PublicJWK(priv.Public())
	if err != nil {
		return err
	}
	jwks, err := json.MarshalIndent(iamd.JWKS{Keys: []iamd.JWK{jwk}}, "", "  ")
	if err != nil {
		return err
	}
	if err := os.WriteFile(c.String("out"), pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der}), 0o600); err != nil {
		return fmt.Errorf("writing the key: %w", err)
	}
	if err := os.WriteFile(c.String("jwks-out"), append(jwks, '\n'), 0o644); err != nil {
		return fmt.Errorf("writing the JWKS: %w", err)
	}
	fmt.Fprintf(c.App.Writer, "wrote %s key %s to %s and its JWKS to %s\n", jwk.Alg, jwk.Kid, c.String("out"), c.String("jwks-out"))
	return nil
}

// loadIssuerKey reads a PEM private key (PKCS#8, PKCS#1 RSA or SEC 1 EC).
func loadIssuerKey(path string) (crypto.Signer, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("reading the issuer key: %w", err)
	}
	block, _ := pem.Decode(data)
	if block == nil {
		return nil, fmt.Errorf("%s is not a PEM file: make one with labcloud admin issuer-keygen", path)
	}
	var key any
	switch block.Type {
	case "RSA PRIVATE KEY":
		key, err = x509.ParsePKCS1PrivateKey(block.Bytes)
	case "EC PRIVATE KEY":
		key, err = x509.ParseECPrivateKey(block.Bytes)
	default:
		key, err = x509.ParsePKCS8PrivateKey(block.Bytes)
	}
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	signer, ok := key.(crypto.Signer)
	if !ok {
		return nil, fmt.Errorf("%s holds a %T, not a signing key", path, key)
	}
	return signer, nil
}

func issueToken(c *ucli.Context) error {
	key, err := loadIssuerKey(c.String("issuer-key"))
	if err != nil {
		return err
	}
	jwk, err := iamd.PublicJWK(key.Public())
	if err != nil {
		return err
	}
	now := time.Now()
	claims := jwt.MapClaims{
		"iss": c.String("issuer"), "sub": c.String("subject"),
		"iat": now.Unix(), "exp": now.Add(c.Duration("ttl")).Unix(),
	}
	if auds := c.StringSlice("audience"); len(auds) == 1 {
		claims["aud"] = auds[0]
	} else {
		claims["aud"] = auds
	}
	for _, kv := range c.StringSlice("claim") {
		k, v, ok := strings.Cut(kv, "=")
		if !ok || k == "" {
			return fmt.Errorf("--claim %q: use KEY=VALUE", kv)
		}
		var parsed any
		if json.Unmarshal([]byte(v), &parsed) == nil {
			claims[k] = parsed
		} else {
			claims[k] = v
		}
	}
	tok := jwt.NewWithClaims(jwt.GetSigningMethod(jwk.Alg), claims)
	tok.Header["kid"] = jwk.Kid
	signed, err := tok.SignedString(key)
	if err != nil {
		return errors.New("signing the token: " + err.Error())
	}
	fmt.Fprintln(c.App.Writer, signed)
	return nil
}
