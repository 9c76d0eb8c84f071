package api

import (
	"context"
	"time"

	"github.com/labcloud/labcloud/internal/errdefs"
	"github.com/labcloud/labcloud/internal/keypairs"
	"github.com/labcloud/labcloud/internal/tags"
)

func (s *Server) registerKeyPairs() {
	s.handle(ServiceEC2, "CreateKeyPair", ec2Op(s.createKeyPair))
	s.handle(ServiceEC2, "ImportKeyPair", ec2Op(s.importKeyPair))
	s.handle(ServiceEC2, "DescribeKeyPairs", ec2Op(s.describeKeyPairs))
	s.handle(ServiceEC2, "DeleteKeyPair", ec2Op(s.deleteKeyPair))
}

// CreateKeyPairInput is the EC2 CreateKeyPair request.
type CreateKeyPairInput struct {
	KeyName           string             `required:"true"`
	KeyType           string             `enumValues:"rsa,ed25519"`
	KeyFormat         string             `enumValues:"pem,ppk"`
	TagSpecifications []TagSpecification `locationName:"TagSpecification" locationNameList:"item"`
}

// CreateKeyPairOutput is the EC2 CreateKeyPair response.
type CreateKeyPairOutput struct {
	KeyPairID      string    `locationName:"keyPairId"`
	KeyName        string    `locationName:"keyName"`
	KeyFingerprint string    `locationName:"keyFingerprint"`
	KeyMaterial    string    `locationName:"keyMaterial"`
	Tags           []TagItem `locationName:"tagSet" locationNameList:"item"`
}

func (s *Server) createKeyPair(ctx context.Context, c *Call, in *CreateKeyPairInput) (*CreateKeyPairOutput, error) {
	tg, err := specTags(in.TagSpecifications, "key-pair")
	if err != nil {
		return nil, err
	}
	acct := c.Principal.AccountID
	kp, private, err := s.opts.KeyPairs.Create(ctx, acct, in.KeyName, in.KeyType, in.KeyFormat)
	if err != nil {
		return nil, err
	}
	m, err := s.applySpecTags(ctx, acct, kp.ID, tg)
	if err != nil {
		return nil, err
	}
	return &CreateKeyPairOutput{KeyPairID: kp.ID, KeyName: kp.Name, KeyFingerprint: kp.Fingerprint, KeyMaterial: private, Tags: tagSet(m)}, nil
}

// applySpecTags stores TagSpecification tags on a new resource and returns
// its tags.
func (s *Server) applySpecTags(ctx context.Context, acct, id string, tg []tags.Tag) (map[string]string, error) {
	if len(tg) == 0 {
		return map[string]string{}, nil
	}
	if err := s.opts.Tags.Apply(ctx, acct, id, tg); err != nil {
		return nil, err
	}
	return s.opts.Tags.Of(ctx, acct, id)
}

// ImportKeyPairInput is the EC2 ImportKeyPair request.
type ImportKeyPairInput struct {
	KeyName           string             `locationName:"keyName" required:"true"`
	PublicKeyMaterial []byte             `locationName:"publicKeyMaterial" required:"true"`
	TagSpecifications []TagSpecification `locationName:"TagSpecification" locationNameList:"item"`
}

// ImportKeyPairOutput is the EC2 ImportKeyPair response.
type ImportKeyPairOutput struct {
	KeyPairID      string    `locationName:"keyPairId"`
	KeyName        string    `locationName:"keyName"`
	KeyFingerprint string    `locationName:"keyFingerprint"`
	Tags           []TagItem `locationName:"tagSet" locationNameList:"item"`
}

func (s *Server) importKeyPair(ctx context.Context, c *Call, in *ImportKeyPairInput) (*ImportKeyPairOutput, error) {
	tg, err := specTags(in.TagSpecifications, "key-pair")
	if err != nil {
		return nil, err
	}
	acct := c.Principal.AccountID
	kp, err := s.opts.KeyPairs.Import(ctx, acct, in.KeyName, in.PublicKeyMaterial)
	if err != nil {
		return nil, err
	}
	m, err := s.applySpecTags(ctx, acct, kp.ID, tg)
	if err != nil {
		return nil, err
	}
	return &ImportKeyPairOutput{KeyPairID: kp.ID, KeyName: kp.Name, KeyFingerprint: kp.Fingerprint, Tags: tagSet(m)}, nil
}

// DescribeKeyPairsInput is the EC2 DescribeKeyPairs request.
type DescribeKeyPairsInput struct {
	Filters          []Filter `locationName:"Filter"`
	KeyNames         []string `locationName:"KeyName"`
	KeyPairIDs       []string `locationName:"KeyPairId"`
	IncludePublicKey *bool
}

// DescribeKeyPairsOutput is the EC2 DescribeKeyPairs response.
type DescribeKeyPairsOutput struct {
	KeyPairs []KeyPairInfo `locationName:"keySet" locationNameList:"item"`
}

// KeyPairInfo is one key pair in DescribeKeyPairs.
type KeyPairInfo struct {
	KeyPairID      string    `locationName:"keyPairId"`
	KeyType        string    `locationName:"keyType"`
	Tags           []TagItem `locationName:"tagSet" locationNameList:"item"`
	PublicKey      *string   `locationName:"publicKey"`
	CreateTime     time.Time `locationName:"createTime" timestampFormat:"iso8601"`
	KeyName        string    `locationName:"keyName"`
	KeyFingerprint string    `locationName:"keyFingerprint"`
}

type keyPairWithTags struct {
	keypairs.KeyPair
	tags map[string]string
}

var keyPairFilters = filterFields[keyPairWithTags]{
	"key-name":    func(k keyPairWithTags) []string { return []string{k.Name} },
	"key-pair-id": func(k keyPairWithTags) []string { return []string{k.ID} },
	"fingerprint": func(k keyPairWithTags) []string { return []string{k.Fingerprint} },
	"key-type":    func(k keyPairWithTags) []string { return []string{k.Type} },
}

func (s *Server) describeKeyPairs(ctx context.Context, c *Call, in *DescribeKeyPairsInput) (*DescribeKeyPairsOutput, error) {
	acct := c.Principal.AccountID
	kps, err := s.opts.KeyPairs.List(ctx, acct)
	if err != nil {
		return nil, err
	}
	kps, err = selectByName(kps, in.KeyNames, func(k keypairs.KeyPair) string { return k.Name }, func(n string) error {
		return errdefs.NotFound("InvalidKeyPair.NotFound", "The key pair '%s' does not exist", n)
	})
	if err != nil {
		return nil, err
	}
	kps, err = selectByName(kps, in.KeyPairIDs, func(k keypairs.KeyPair) string { return k.ID }, func(n string) error {
		return errdefs.NotFound("InvalidKeyPair.NotFound", "The key pair ID '%s' does not exist", n)
	})
	if err != nil {
		return nil, err
	}
	items := make([]keyPairWithTags, 0, len(kps))
	for _, k := range kps {
		m, err := s.opts.Tags.Of(ctx, acct, k.ID)
		if err != nil {
			return nil, err
		}
		items = append(items, keyPairWithTags{KeyPair: k, tags: m})
	}
	items, err = applyFiltersWithTags(items, in.Filters, keyPairFilters, func(k keyPairWithTags) map[string]string { return k.tags })
	if err != nil {
		return nil, err
	}
	out := &DescribeKeyPairsOutput{KeyPairs: []KeyPairInfo{}}
	for _, k := range items {
		info := KeyPairInfo{KeyPairID: k.ID, KeyType: k.Type, Tags: tagSet(k.tags), CreateTime: k.CreateTime,
			KeyName: k.Name, KeyFingerprint: k.Fingerprint}
		if in.IncludePublicKey != nil && *in.IncludePublicKey {
			pk := k.PublicKey
			info.PublicKey = &pk
		}
		out.KeyPairs = append(out.KeyPairs, info)
	}
	return out, nil
}

// DeleteKeyPairInput is the EC2 DeleteKeyPair request.
type DeleteKeyPairInput struct {
	KeyName   string
	KeyPairID string `locationName:"KeyPairId"`
}

// DeleteKeyPairOutput is the EC2 DeleteKeyPair response.
type DeleteKeyPairOutput struct {
	Return    bool    `locationName:"return"`
	KeyPairID *string `locationName:"keyPairId"`
}

func (s *Server) deleteKeyPair(ctx context.Context, c *Call, in *DeleteKeyPairInput) (*DeleteKeyPairOutput, error) {
	acct := c.Principal.AccountID
	kp, found, err := s.opts.KeyPairs.Delete(ctx, acct, in.KeyName, in.KeyPairID)
	if err != nil {
		return nil, err
	}
	out := &DeleteKeyPairOutput{Return: true}
	if found {
		if err := s.opts.Tags.Forget(ctx, acct, kp.ID); err != nil {
			return nil, err
		}
		id := kp.ID
		out.KeyPairID = &id
	}
	return out, nil
}
