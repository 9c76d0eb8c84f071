package api

import (
	"context"
	"net/url"
	"sort"
	"time"

	"github.com/labcloud/labcloud/iamd"
)

// registerOIDC registers the IAM OpenID Connect provider actions.
func (s *Server) registerOIDC() {
	s.handle(ServiceIAM, "CreateOpenIDConnectProvider", queryOp(s.createOIDCProvider))
	s.handle(ServiceIAM, "GetOpenIDConnectProvider", queryOp(s.getOIDCProvider))
	s.handle(ServiceIAM, "ListOpenIDConnectProviders", queryOp(s.listOIDCProviders))
	s.handle(ServiceIAM, "DeleteOpenIDConnectProvider", queryOp(s.deleteOIDCProvider))
	s.handle(ServiceIAM, "AddClientIDToOpenIDConnectProvider", queryOp(s.addOIDCClientID))
	s.handle(ServiceIAM, "RemoveClientIDFromOpenIDConnectProvider", queryOp(s.removeOIDCClientID))
	s.handle(ServiceIAM, "UpdateOpenIDConnectProviderThumbprint", queryOp(s.updateOIDCThumbprint))
	s.handle(ServiceIAM, "TagOpenIDConnectProvider", queryOp(s.tagOIDCProvider))
	s.handle(ServiceIAM, "UntagOpenIDConnectProvider", queryOp(s.untagOIDCProvider))
	s.handle(ServiceIAM, "ListOpenIDConnectProviderTags", queryOp(s.listOIDCProviderTags))
}

// oidcActionTable adds the authorization entries of the provider actions:
// each acts on the provider's ARN (for Create, the ARN it will have), the
// list on every provider of the account, as the IAM service authorization
// reference says.
func oidcActionTable() {
	byARN := func(c *Call, p url.Values) []string {
		if arn := p.Get("OpenIDConnectProviderArn"); arn != "" {
			return []string{arn}
		}
		// Missing: the handler will say so; authorize on the account's
		// providers as a whole meanwhile.
		return []string{"arn:aws:iam::" + c.Principal.AccountID + ":oidc-provider/"}
	}
	for _, a := range []string{"GetOpenIDConnectProvider", "DeleteOpenIDConnectProvider", "AddClientIDToOpenIDConnectProvider",
		"RemoveClientIDFromOpenIDConnectProvider", "UpdateOpenIDConnectProviderThumbprint", "TagOpenIDConnectProvider",
		"UntagOpenIDConnectProvider", "ListOpenIDConnectProviderTags"} {
		actionTable["iam:"+a] = actionSpec{resources: byARN}
	}
	actionTable["iam:CreateOpenIDConnectProvider"] = actionSpec{resources: func(c *Call, p url.Values) []string {
		hostPath := p.Get("Url")
		if u, err := url.Parse(hostPath); err == nil && u.Host != "" {
			hostPath = u.Host + u.Path
		}
		return []string{"arn:aws:iam::" + c.Principal.AccountID + ":oidc-provider/" + hostPath}
	}}
	actionTable["iam:ListOpenIDConnectProviders"] = actionSpec{resources: func(c *Call, _ url.Values) []string {
		return []string{"arn:aws:iam::" + c.Principal.AccountID + ":oidc-provider/*"}
	}}
}

// CreateOpenIDConnectProviderInput is the IAM CreateOpenIDConnectProvider
// request.
type CreateOpenIDConnectProviderInput struct {
	URL            string `locationName:"Url" required:"true"`
	ClientIDList   []string
	ThumbprintList []string
	Tags           []Tag
}

// CreateOpenIDConnectProviderOutput is its response.
type CreateOpenIDConnectProviderOutput struct {
	OpenIDConnectProviderArn string
	Tags                     []Tag
}

func (s *Server) createOIDCProvider(ctx context.Context, c *Call, in *CreateOpenIDConnectProviderInput) (*CreateOpenIDConnectProviderOutput, error) {
	p, err := s.opts.IAM.CreateOIDCProvider(ctx, c.Principal.AccountID, iamd.CreateOIDCProviderInput{
		URL: in.URL, ClientIDs: in.ClientIDList, Thumbprints: in.ThumbprintList, Tags: tagsIn(in.Tags),
	})
	if err != nil {
		return nil, err
	}
	return &CreateOpenIDConnectProviderOutput{OpenIDConnectProviderArn: p.ARN, Tags: tagsOut(p.Tags)}, nil
}

// OIDCProviderArnInput is the request of the provider actions that take
// only its ARN.
type OIDCProviderArnInput struct {
	OpenIDConnectProviderArn string `required:"true"`
}

// GetOpenIDConnectProviderOutput is the IAM GetOpenIDConnectProvider
// response. Url is the issuer without "https://", as AWS returns it.
type GetOpenIDConnectProviderOutput struct {
	URL            string `locationName:"Url"`
	ClientIDList   []string
	ThumbprintList []string
	CreateDate     time.Time
	Tags           []Tag
}

func (s *Server) getOIDCProvider(ctx context.Context, c *Call, in *OIDCProviderArnInput) (*GetOpenIDConnectProviderOutput, error) {
	p, err := s.opts.IAM.GetOIDCProvider(ctx, c.Principal.AccountID, in.OpenIDConnectProviderArn)
	if err != nil {
		return nil, err
	}
	out := &GetOpenIDConnectProviderOutput{URL: p.HostPath(), ClientIDList: p.ClientIDs, ThumbprintList: p.Thumbprints,
		CreateDate: p.CreateDate, Tags: tagsOut(p.Tags)}
	if out.ClientIDList == nil {
		out.ClientIDList = []string{}
	}
	if out.ThumbprintList == nil {
		out.ThumbprintList = []string{}
	}
	return out, nil
}

// ListOpenIDConnectProvidersInput is the IAM ListOpenIDConnectProviders
// request (no members).
type ListOpenIDConnectProvidersInput struct{}

// OIDCProviderListEntry is the OpenIDConnectProviderListEntry shape.
type OIDCProviderListEntry struct {
	Arn string
}

// ListOpenIDConnectProvidersOutput is its response.
type ListOpenIDConnectProvidersOutput struct {
	OpenIDConnectProviderList []OIDCProviderListEntry
}

func (s *Server) listOIDCProviders(ctx context.Context, c *Call, _ *ListOpenIDConnectProvidersInput) (*ListOpenIDConnectProvidersOutput, error) {
	ps, err := s.opts.IAM.ListOIDCProviders(ctx, c.Principal.AccountID)
	if err != nil {
		return nil, err
	}
	out := &ListOpenIDConnectProvidersOutput{OpenIDConnectProviderList: []OIDCProviderListEntry{}}
	for _, p := range ps {
		out.OpenIDConnectProviderList = append(out.OpenIDConnectProviderList, OIDCProviderListEntry{Arn: p.ARN})
	}
	return out, nil
}

func (s *Server) deleteOIDCProvider(ctx context.Context, c *Call, in *OIDCProviderArnInput) (*NoOutput, error) {
	return noOutput, s.opts.IAM.DeleteOIDCProvider(ctx, c.Principal.AccountID, in.OpenIDConnectProviderArn)
}

// OIDCClientIDInput is the IAM AddClientIDToOpenIDConnectProvider and
// RemoveClientIDFromOpenIDConnectProvider request.
type OIDCClientIDInput struct {
	OpenIDConnectProviderArn string `required:"true"`
	ClientID                 string `required:"true"`
}

func (s *Server) addOIDCClientID(ctx context.Context, c *Call, in *OIDCClientIDInput) (*NoOutput, error) {
	return noOutput, s.opts.IAM.AddOIDCClientID(ctx, c.Principal.AccountID, in.OpenIDConnectProviderArn, in.ClientID)
}

func (s *Server) removeOIDCClientID(ctx context.Context, c *Call, in *OIDCClientIDInput) (*NoOutput, error) {
	return noOutput, s.opts.IAM.RemoveOIDCClientID(ctx, c.Principal.AccountID, in.OpenIDConnectProviderArn, in.ClientID)
}

// UpdateOpenIDConnectProviderThumbprintInput is the IAM
// UpdateOpenIDConnectProviderThumbprint request.
type UpdateOpenIDConnectProviderThumbprintInput struct {
	OpenIDConnectProviderArn string   `required:"true"`
	ThumbprintList           []string `required:"true"`
}

func (s *Server) updateOIDCThumbprint(ctx context.Context, c *Call, in *UpdateOpenIDConnectProviderThumbprintInput) (*NoOutput, error) {
	return noOutput, s.opts.IAM.UpdateOIDCThumbprints(ctx, c.Principal.AccountID, in.OpenIDConnectProviderArn, in.ThumbprintList)
}

// TagOpenIDConnectProviderInput is the IAM TagOpenIDConnectProvider request.
type TagOpenIDConnectProviderInput struct {
	OpenIDConnectProviderArn string `required:"true"`
	Tags                     []Tag  `required:"true"`
}

func (s *Server) tagOIDCProvider(ctx context.Context, c *Call, in *TagOpenIDConnectProviderInput) (*NoOutput, error) {
	return noOutput, s.opts.IAM.TagOIDCProvider(ctx, c.Principal.AccountID, in.OpenIDConnectProviderArn, tagsIn(in.Tags))
}

// UntagOpenIDConnectProviderInput is the IAM UntagOpenIDConnectProvider
// request.
type UntagOpenIDConnectProviderInput struct {
	OpenIDConnectProviderArn string   `required:"true"`
	TagKeys                  []string `required:"true"`
}

func (s *Server) untagOIDCProvider(ctx context.Context, c *Call, in *UntagOpenIDConnectProviderInput) (*NoOutput, error) {
	return noOutput, s.opts.IAM.UntagOIDCProvider(ctx, c.Principal.AccountID, in.OpenIDConnectProviderArn, in.TagKeys)
}

// ListOpenIDConnectProviderTagsInput is the IAM
// ListOpenIDConnectProviderTags request.
type ListOpenIDConnectProviderTagsInput struct {
	OpenIDConnectProviderArn string `required:"true"`
	PageInput
}

func (s *Server) listOIDCProviderTags(ctx context.Context, c *Call, in *ListOpenIDConnectProviderTagsInput) (*ListTagsOutput, error) {
	p, err := s.opts.IAM.GetOIDCProvider(ctx, c.Principal.AccountID, in.OpenIDConnectProviderArn)
	if err != nil {
		return nil, err
	}
	page, po, err := paginate(p.Tags, func(t iamd.Tag) string { return lowerKey(t.Key) }, in.PageInput)
	if err != nil {
		return nil, err
	}
	return &ListTagsOutput{Tags: append([]Tag{}, tagsOut(page)...), PageOutput: po}, nil
}

// SetOpenIDConnectProviderKeysInput is the labcloud admin action that
// loads an OIDC provider's signing keys. AWS fetches them from the
// issuer's jwks_uri; labcloud machines have no internet, so the admin
// hands them over (labcloud admin set-oidc-keys). The provider may be in
// any account: its ARN names the account.
type SetOpenIDConnectProviderKeysInput struct {
	OpenIDConnectProviderArn string `required:"true"`
	// Jwks is the JWKS document, {"keys":[...]}.
	Jwks string `required:"true"`
}

// SetOpenIDConnectProviderKeysOutput lists the key ids now loaded.
type SetOpenIDConnectProviderKeysOutput struct {
	OpenIDConnectProviderArn string
	KeyIds                   []string
	KeysUpdateDate           time.Time
}

func (s *Server) setOIDCProviderKeys(ctx context.Context, _ *Call, in *SetOpenIDConnectProviderKeysInput) (*SetOpenIDConnectProviderKeysOutput, error) {
	p, err := s.opts.IAM.SetOIDCProviderKeys(ctx, in.OpenIDConnectProviderArn, in.Jwks)
	if err != nil {
		return nil, err
	}
	keys, err := iamd.ParseJWKS([]byte(p.JWKS))
	if err != nil {
		return nil, err
	}
	out := &SetOpenIDConnectProviderKeysOutput{OpenIDConnectProviderArn: p.ARN, KeyIds: []string{}, KeysUpdateDate: p.KeysUpdateDate}
	for kid := range keys {
		out.KeyIds = append(out.KeyIds, kid)
	}
	sort.Strings(out.KeyIds)
	return out, nil
}
