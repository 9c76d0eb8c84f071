package iamd

import (
	"context"
	"errors"
	"net/url"
	"regexp"
	"strconv"
	"strings"
	"time"

	"github.com/labcloud/labcloud/internal/store"
)

// OIDCProvider is an IAM OpenID Connect identity provider: an issuer whose
// tokens AssumeRoleWithWebIdentity accepts for the roles whose trust
// policy names it. It is stored under
// iam/<account>/oidcproviders/<escaped host/path>.
//
// AWS fetches the issuer's signing keys from its JWKS endpoint over the
// internet; labcloud machines and labs have none, so the admin loads the
// JWKS from a file (labcloud admin set-oidc-keys) and it is kept here,
// with the provider. Thumbprints are stored and returned as AWS does, but
// nothing checks them: they pin the TLS certificate of the JWKS endpoint,
// which labcloud never contacts.
type OIDCProvider struct {
	// URL is the issuer as registered, "https://host[/path]".
	URL            string    `json:"url"`
	ARN            string    `json:"arn"`
	ClientIDs      []string  `json:"clientIds,omitempty"`
	Thumbprints    []string  `json:"thumbprints,omitempty"`
	CreateDate     time.Time `json:"createDate"`
	Tags           []Tag     `json:"tags,omitempty"`
	JWKS           string    `json:"jwks,omitempty"`
	KeysUpdateDate time.Time `json:"keysUpdateDate,omitempty"`
}

// HostPath is the provider's URL without "https://": the part of its ARN
// after "oidc-provider/", and the prefix of its trust policy condition
// keys ("<host/path>:aud", ":sub", ":amr").
func (p OIDCProvider) HostPath() string { return strings.TrimPrefix(p.URL, "https://") }

// Limits of OIDC providers, from the IAM quotas page.
const (
	maxOIDCProviders   = 100 // OpenIdConnectProvidersPerAccount
	maxOIDCClientIDs   = 100 // client IDs (audiences) per provider
	maxOIDCThumbprints = 5   // thumbprints per provider
	maxOIDCURL         = 255
	maxOIDCClientID    = 255
	folderOIDC         = "oidcproviders"
)

var patThumbprint = regexp.MustCompile(`^[0-9A-Fa-f]{40}$`)

// oidcKey is the store key of a provider: its host/path, escaped so that
// the slashes of the path stay inside one key segment. Case is kept: the
// path of an issuer URL is case-sensitive.
func oidcKey(account, hostPath string) string {
	return folderKey(account, folderOIDC) + url.PathEscape(strings.TrimSuffix(hostPath, "/"))
}

// oidcMissing is NoSuchEntity for a provider ARN.
func oidcMissing(arn string) error {
	return noSuchEntity("OpenIDConnect Provider not found for arn %s", arn)
}

// checkOIDCURL validates a provider URL as IAM does and returns its
// host/path.
func checkOIDCURL(raw string) (string, error) {
	var v validator
	v.str("url", raw, 1, maxOIDCURL, pattern{})
	if err := v.err(); err != nil {
		return "", err
	}
	if !strings.HasPrefix(raw, "https://") {
		return "", invalidInput("Invalid Url %s: an OpenID Connect provider URL must begin with https:// (it is the token's iss claim).", raw)
	}
	u, err := url.Parse(raw)
	if err != nil || u.Host == "" || u.User != nil {
		return "", invalidInput("Invalid Url %s: it must be https://HOST[/PATH], the issuer exactly as the token's iss claim names it.", raw)
	}
	if u.RawQuery != "" || u.ForceQuery || u.Fragment != "" || strings.ContainsAny(raw, "?#") {
		return "", invalidInput("Invalid Url %s: an OpenID Connect provider URL cannot have a query or a fragment; drop everything from ? or #.", raw)
	}
	return strings.TrimSuffix(strings.TrimPrefix(raw, "https://"), "/"), nil
}

// checkClientIDs validates a client ID (audience) list.
func checkClientIDs(v *validator, field string, ids []string) {
	for n, id := range ids {
		v.str(field+"."+strconv.Itoa(n+1)+".member", id, 1, maxOIDCClientID, pattern{})
	}
}

// checkThumbprints validates a thumbprint list: at most five, each the
// 40 hex digits of a SHA-1 certificate fingerprint.
func checkThumbprints(list []string) error {
	if len(list) > maxOIDCThumbprints {
		return limitExceeded("Thumbprint list must contain fewer than %d entries; this one has %d. Keep the thumbprints of the certificates in use.", maxOIDCThumbprints+1, len(list))
	}
	for _, t := range list {
		if !patThumbprint.MatchString(t) {
			return invalidInput("Thumbprint %q is not valid: a thumbprint is the 40 hexadecimal digits of the SHA-1 fingerprint of the issuer's certificate.", t)
		}
	}
	return nil
}

// dedupe drops repeated strings, keeping the first of each.
func dedupe(list []string) []string {
	out := []string{}
	seen := map[string]bool{}
	for _, s := range list {
		if !seen[s] {
			seen[s] = true
			out = append(out, s)
		}
	}
	return out
}

// CreateOIDCProviderInput is what CreateOpenIDConnectProvider takes.
type CreateOIDCProviderInput struct {
	URL         string
	ClientIDs   []string
	Thumbprints []string
	Tags        []Tag
}

// CreateOIDCProvider registers an OpenID Connect provider (ARN
// arn:aws:iam::<account>:oidc-provider/<host/path>). A URL can be
// registered once per account.
func (i *IAM) CreateOIDCProvider(ctx context.Context, account string, in CreateOIDCProviderInput) (OIDCProvider, error) {
	var v validator
	checkClientIDs(&v, "clientIDList", in.ClientIDs)
	v.tags("tags", in.Tags)
	if err := v.err(); err != nil {
		return OIDCProvider{}, err
	}
	hostPath, err := checkOIDCURL(in.URL)
	if err != nil {
		return OIDCProvider{}, err
	}
	clients := dedupe(in.ClientIDs)
	if len(clients) > maxOIDCClientIDs {
		return OIDCProvider{}, limitExceeded("Cannot exceed quota for ClientIdsPerOpenIdConnectProvider: %d.", maxOIDCClientIDs)
	}
	if err := checkThumbprints(in.Thumbprints); err != nil {
		return OIDCProvider{}, err
	}
	if err := checkTags(in.Tags); err != nil {
		return OIDCProvider{}, err
	}
	p := OIDCProvider{
		URL: "https://" + hostPath, ARN: iamARN(account, "oidc-provider/", "", hostPath),
		ClientIDs: clients, Thumbprints: dedupe(in.Thumbprints), CreateDate: i.stamp(), Tags: in.Tags,
	}
	key := oidcKey(account, hostPath)
	err = i.atomically(ctx, func() ([]store.Op, error) {
		if _, _, err := store.Load[OIDCProvider](ctx, i.st, key); err == nil {
			return nil, alreadyExists("Provider with url %s already exists.", p.URL)
		} else if !isNotFound(err) {
			return nil, err
		}
		all, err := store.ListAs[OIDCProvider](ctx, i.st, folderKey(account, folderOIDC))
		if err != nil {
			return nil, err
		}
		if len(all) >= maxOIDCProviders {
			return nil, limitExceeded("Cannot exceed quota for OpenIdConnectProvidersPerAccount: %d. Delete a provider you no longer use.", maxOIDCProviders)
		}
		return []store.Op{store.OpCreate(key, p)}, nil
	})
	if err != nil {
		return OIDCProvider{}, err
	}
	return p, nil
}

// oidcKeyOf parses a provider ARN of the account into its store key.
func oidcKeyOf(account, arn string) (string, error) {
	var v validator
	v.arn("openIDConnectProviderArn", arn)
	if err := v.err(); err != nil {
		return "", err
	}
	prefix := "arn:aws:iam::" + account + ":oidc-provider/"
	if !strings.HasPrefix(arn, prefix) {
		if strings.Contains(arn, ":oidc-provider/") && strings.HasPrefix(arn, "arn:aws:iam::") {
			// Another account's provider: as AWS, simply not found here.
			return "", oidcMissing(arn)
		}
		return "", invalidInput("ARN %s is not valid: an OpenID Connect provider ARN looks like arn:aws:iam::%s:oidc-provider/HOST[/PATH] (list them with aws iam list-open-id-connect-providers).", arn, account)
	}
	return oidcKey(account, strings.TrimPrefix(arn, prefix)), nil
}

// GetOIDCProvider returns a provider by ARN.
func (i *IAM) GetOIDCProvider(ctx context.Context, account, arn string) (OIDCProvider, error) {
	key, err := oidcKeyOf(account, arn)
	if err != nil {
		return OIDCProvider{}, err
	}
	p, _, err := load[OIDCProvider](ctx, i.st, key, func() error { return oidcMissing(arn) })
	return p, err
}

// ListOIDCProviders returns the account's providers, sorted by key.
func (i *IAM) ListOIDCProviders(ctx context.Context, account string) ([]OIDCProvider, error) {
	return store.ListAs[OIDCProvider](ctx, i.st, folderKey(account, folderOIDC))
}

// DeleteOIDCProvider deletes a provider. Roles that trust it stay as they
// are (as in AWS) and simply cannot be assumed through it any more.
func (i *IAM) DeleteOIDCProvider(ctx context.Context, account, arn string) error {
	key, err := oidcKeyOf(account, arn)
	if err != nil {
		return err
	}
	return i.atomically(ctx, func() ([]store.Op, error) {
		_, rev, err := load[OIDCProvider](ctx, i.st, key, func() error { return oidcMissing(arn) })
		if err != nil {
			return nil, err
		}
		return []store.Op{store.OpDeleteIf(key, rev)}, nil
	})
}

// updateOIDC is a read-modify-write of one provider; fn returning
// errNoChange commits nothing.
func (i *IAM) updateOIDC(ctx context.Context, account, arn string, fn func(*OIDCProvider) error) error {
	key, err := oidcKeyOf(account, arn)
	if err != nil {
		return err
	}
	return i.atomically(ctx, func() ([]store.Op, error) {
		p, rev, err := load[OIDCProvider](ctx, i.st, key, func() error { return oidcMissing(arn) })
		if err != nil {
			return nil, err
		}
		if err := fn(&p); err != nil {
			if errors.Is(err, errNoChange) {
				return nil, nil
			}
			return nil, err
		}
		return []store.Op{store.OpCompareAndSwap(key, p, rev)}, nil
	})
}

// AddOIDCClientID adds an audience to a provider; adding one it has does
// nothing.
func (i *IAM) AddOIDCClientID(ctx context.Context, account, arn, clientID string) error {
	var v validator
	v.str("clientID", clientID, 1, maxOIDCClientID, pattern{})
	if err := v.err(); err != nil {
		return err
	}
	return i.updateOIDC(ctx, account, arn, func(p *OIDCProvider) error {
		for _, have := range p.ClientIDs {
			if have == clientID {
				return errNoChange
			}
		}
		if len(p.ClientIDs) >= maxOIDCClientIDs {
			return limitExceeded("Cannot exceed quota for ClientIdsPerOpenIdConnectProvider: %d. Remove a client ID first.", maxOIDCClientIDs)
		}
		p.ClientIDs = append(p.ClientIDs, clientID)
		return nil
	})
}

// RemoveOIDCClientID removes an audience from a provider; removing one it
// does not have does nothing, as in AWS.
func (i *IAM) RemoveOIDCClientID(ctx context.Context, account, arn, clientID string) error {
	var v validator
	v.str("clientID", clientID, 1, maxOIDCClientID, pattern{})
	if err := v.err(); err != nil {
		return err
	}
	return i.updateOIDC(ctx, account, arn, func(p *OIDCProvider) error {
		for n, have := range p.ClientIDs {
			if have == clientID {
				p.ClientIDs = append(p.ClientIDs[:n:n], p.ClientIDs[n+1:]...)
				return nil
			}
		}
		return errNoChange
	})
}

// UpdateOIDCThumbprints replaces a provider's thumbprint list.
func (i *IAM) UpdateOIDCThumbprints(ctx context.Context, account, arn string, thumbprints []string) error {
	if err := checkThumbprints(thumbprints); err != nil {
		return err
	}
	return i.updateOIDC(ctx, account, arn, func(p *OIDCProvider) error {
		p.Thumbprints = dedupe(thumbprints)
		return nil
	})
}

// TagOIDCProvider adds or replaces tags of a provider.
func (i *IAM) TagOIDCProvider(ctx context.Context, account, arn string, tags []Tag) error {
	var v validator
	v.tags("tags", tags)
	if err := v.err(); err != nil {
		return err
	}
	if err := checkTags(tags); err != nil {
		return err
	}
	return i.updateOIDC(ctx, account, arn, func(p *OIDCProvider) error {
		merged, err := mergeTags(p.Tags, tags)
		if err != nil {
			return err
		}
		p.Tags = merged
		return nil
	})
}

// UntagOIDCProvider removes tags of a provider; keys it does not have are
// ignored.
func (i *IAM) UntagOIDCProvider(ctx context.Context, account, arn string, keys []string) error {
	var v validator
	v.tagKeys("tagKeys", keys)
	if err := v.err(); err != nil {
		return err
	}
	return i.updateOIDC(ctx, account, arn, func(p *OIDCProvider) error {
		p.Tags = removeTags(p.Tags, keys)
		return nil
	})
}

// SetOIDCProviderKeys stores the issuer's signing keys (a JWKS document,
// as served at its jwks_uri) with the provider, replacing any keys it had.
// The provider's account is the one in its ARN. The document must hold at
// least one RSA or EC P-256 public key with a kid, so that a typo is
// caught here rather than as a failed AssumeRoleWithWebIdentity later.
func (i *IAM) SetOIDCProviderKeys(ctx context.Context, arn, jwks string) (OIDCProvider, error) {
	account := ""
	if parts := strings.SplitN(arn, ":", 6); len(parts) == 6 {
		account = parts[4]
	}
	if !accountIDRe.MatchString(account) {
		return OIDCProvider{}, invalidInput("ARN %s is not valid: an OpenID Connect provider ARN looks like arn:aws:iam::123456789012:oidc-provider/HOST[/PATH].", arn)
	}
	set, err := ParseJWKS([]byte(jwks))
	if err != nil {
		return OIDCProvider{}, err
	}
	if len(set) == 0 {
		return OIDCProvider{}, invalidInput("The JWKS has no usable key: it needs at least one RSA (RS256) or EC P-256 (ES256) public key with a kid.")
	}
	var out OIDCProvider
	err = i.updateOIDC(ctx, account, arn, func(p *OIDCProvider) error {
		p.JWKS = jwks
		p.KeysUpdateDate = i.stamp()
		out = *p
		return nil
	})
	return out, err
}

var accountIDRe = regexp.MustCompile(`^\d{12}$`)
