package api

import (
	"context"
	"sort"
	"strconv"

	"github.com/labcloud/labcloud/internal/errdefs"
	"github.com/labcloud/labcloud/netfab"
)

func (s *Server) registerNetworkACLs() {
	s.handle(ServiceEC2, "CreateNetworkAcl", ec2Op(s.createNetworkACL))
	s.handle(ServiceEC2, "DeleteNetworkAcl", ec2Op(s.deleteNetworkACL))
	s.handle(ServiceEC2, "CreateNetworkAclEntry", ec2Op(s.createNetworkACLEntry))
	s.handle(ServiceEC2, "ReplaceNetworkAclEntry", ec2Op(s.replaceNetworkACLEntry))
	s.handle(ServiceEC2, "DeleteNetworkAclEntry", ec2Op(s.deleteNetworkACLEntry))
	s.handle(ServiceEC2, "ReplaceNetworkAclAssociation", ec2Op(s.replaceNetworkACLAssociation))
	s.handle(ServiceEC2, "DescribeNetworkAcls", ec2Op(s.describeNetworkACLs))
}

// CreateNetworkACLInput is the EC2 CreateNetworkAcl request.
type CreateNetworkACLInput struct {
	VpcID             string             `locationName:"vpcId" required:"true"`
	ClientToken       *string            `locationName:"ClientToken"`
	TagSpecifications []TagSpecification `locationName:"TagSpecification" locationNameList:"item"`
}

// CreateNetworkACLOutput is the EC2 CreateNetworkAcl response.
type CreateNetworkACLOutput struct {
	NetworkACL  NetworkACLInfo `locationName:"networkAcl"`
	ClientToken *string        `locationName:"clientToken"`
}

// NetworkACLInfo is an EC2 NetworkAcl.
type NetworkACLInfo struct {
	Associations []NetworkACLAssociation `locationName:"associationSet" locationNameList:"item"`
	Entries      []NetworkACLEntry       `locationName:"entrySet" locationNameList:"item"`
	IsDefault    bool                    `locationName:"default"`
	NetworkACLID string                  `locationName:"networkAclId"`
	Tags         []TagItem               `locationName:"tagSet" locationNameList:"item"`
	VpcID        string                  `locationName:"vpcId"`
	OwnerID      string                  `locationName:"ownerId"`
}

// NetworkACLAssociation ties a subnet to a network ACL.
type NetworkACLAssociation struct {
	NetworkACLAssociationID string `locationName:"networkAclAssociationId"`
	NetworkACLID            string `locationName:"networkAclId"`
	SubnetID                string `locationName:"subnetId"`
}

// NetworkACLEntry is one entry of a network ACL.
type NetworkACLEntry struct {
	CidrBlock    string        `locationName:"cidrBlock"`
	Egress       bool          `locationName:"egress"`
	IcmpTypeCode *IcmpTypeCode `locationName:"icmpTypeCode"`
	PortRange    *PortRange    `locationName:"portRange"`
	Protocol     string        `locationName:"protocol"`
	RuleAction   string        `locationName:"ruleAction"`
	RuleNumber   int32         `locationName:"ruleNumber"`
}

// IcmpTypeCode is an ICMP type and code (-1 any).
type IcmpTypeCode struct {
	Code *int32 `locationName:"code"`
	Type *int32 `locationName:"type"`
}

// PortRange is a port range.
type PortRange struct {
	From *int32 `locationName:"from"`
	To   *int32 `locationName:"to"`
}

func (s *Server) createNetworkACL(ctx context.Context, c *Call, in *CreateNetworkACLInput) (*CreateNetworkACLOutput, error) {
	nf, err := s.vpcFabric()
	if err != nil {
		return nil, err
	}
	tg, err := specTags(in.TagSpecifications, "network-acl")
	if err != nil {
		return nil, err
	}
	if err := s.checkTaggable(len(tg), "acl-"); err != nil {
		return nil, err
	}
	acct := c.Principal.AccountID
	a, err := nf.CreateNetworkACL(ctx, acct, in.VpcID)
	if err != nil {
		return nil, err
	}
	m, err := s.applySpecTags(ctx, acct, a.ID, tg)
	if err != nil {
		return nil, err
	}
	return &CreateNetworkACLOutput{NetworkACL: aclInfo(acct, a, nil, m), ClientToken: in.ClientToken}, nil
}

// aclInfo shows an ACL as AWS does: its entries, egress first, each
// direction by rule number and closed by the implicit "*" deny (rule
// 32767), and its subnet associations.
func aclInfo(acct string, a netfab.NetworkACL, assocs []netfab.ACLAssociation, tags map[string]string) NetworkACLInfo {
	out := NetworkACLInfo{Associations: []NetworkACLAssociation{}, Entries: []NetworkACLEntry{}, IsDefault: a.IsDefault,
		NetworkACLID: a.ID, Tags: tagSet(tags), VpcID: a.VPCID, OwnerID: acct}
	for _, as := range assocs {
		if as.NetworkACLID == a.ID {
			out.Associations = append(out.Associations, NetworkACLAssociation{NetworkACLAssociationID: as.ID, NetworkACLID: a.ID, SubnetID: as.SubnetID})
		}
	}
	entries := append([]netfab.ACLRule{}, a.Entries...)
	sort.SliceStable(entries, func(i, j int) bool { return entries[i].RuleNumber < entries[j].RuleNumber })
	for _, egress := range []bool{true, false} {
		for _, e := range entries {
			if e.Egress != egress {
				continue
			}
			ne := NetworkACLEntry{CidrBlock: e.CIDR, Egress: e.Egress, Protocol: e.Protocol, RuleAction: e.RuleAction, RuleNumber: int32(e.RuleNumber)}
			switch e.Protocol {
			case "6", "17":
				from, to := int32(e.FromPort), int32(e.ToPort)
				ne.PortRange = &PortRange{From: &from, To: &to}
			case "1", "58":
				t, code := int32(e.ICMPType), int32(e.ICMPCode)
				ne.IcmpTypeCode = &IcmpTypeCode{Type: &t, Code: &code}
			}
			out.Entries = append(out.Entries, ne)
		}
		out.Entries = append(out.Entries, NetworkACLEntry{CidrBlock: "0.0.0.0/0", Egress: egress, Protocol: "-1", RuleAction: "deny", RuleNumber: 32767})
	}
	return out
}

// DeleteNetworkACLInput is the EC2 DeleteNetworkAcl request.
type DeleteNetworkACLInput struct {
	NetworkACLID string `locationName:"networkAclId" required:"true"`
}

func (s *Server) deleteNetworkACL(ctx context.Context, c *Call, in *DeleteNetworkACLInput) (*ReturnOutput, error) {
	nf, err := s.vpcFabric()
	if err != nil {
		return nil, err
	}
	acct := c.Principal.AccountID
	if err := nf.DeleteNetworkACL(ctx, acct, in.NetworkACLID); err != nil {
		return nil, err
	}
	if s.opts.Tags != nil {
		if err := s.opts.Tags.Forget(ctx, acct, in.NetworkACLID); err != nil {
			return nil, err
		}
	}
	return &ReturnOutput{Return: true}, nil
}

// NetworkACLEntryInput is the EC2 CreateNetworkAclEntry and
// ReplaceNetworkAclEntry request.
type NetworkACLEntryInput struct {
	NetworkACLID  string        `locationName:"networkAclId" required:"true"`
	RuleNumber    *int32        `locationName:"ruleNumber" required:"true"`
	Protocol      string        `locationName:"protocol" required:"true"`
	RuleAction    string        `locationName:"ruleAction" required:"true"`
	Egress        *bool         `locationName:"egress" required:"true"`
	CidrBlock     string        `locationName:"cidrBlock"`
	IPv6CidrBlock string        `locationName:"ipv6CidrBlock"`
	IcmpTypeCode  *IcmpTypeCode `locationName:"Icmp"`
	PortRange     *PortRange    `locationName:"portRange"`
}

func (in *NetworkACLEntryInput) request() netfab.ACLEntryRequest {
	r := netfab.ACLEntryRequest{RuleNumber: int(*in.RuleNumber), Egress: *in.Egress, Protocol: in.Protocol,
		RuleAction: in.RuleAction, CIDR: in.CidrBlock, IPv6CIDR: in.IPv6CidrBlock}
	if in.PortRange != nil {
		r.FromPort, r.ToPort = optInt(in.PortRange.From), optInt(in.PortRange.To)
	}
	if in.IcmpTypeCode != nil {
		r.ICMPType, r.ICMPCode = optInt(in.IcmpTypeCode.Type), optInt(in.IcmpTypeCode.Code)
	}
	return r
}

func (s *Server) createNetworkACLEntry(ctx context.Context, c *Call, in *NetworkACLEntryInput) (*ReturnOutput, error) {
	nf, err := s.vpcFabric()
	if err != nil {
		return nil, err
	}
	if err := nf.CreateNetworkACLEntry(ctx, c.Principal.AccountID, in.NetworkACLID, in.request()); err != nil {
		return nil, err
	}
	return &ReturnOutput{Return: true}, nil
}

func (s *Server) replaceNetworkACLEntry(ctx context.Context, c *Call, in *NetworkACLEntryInput) (*ReturnOutput, error) {
	nf, err := s.vpcFabric()
	if err != nil {
		return nil, err
	}
	if err := nf.ReplaceNetworkACLEntry(ctx, c.Principal.AccountID, in.NetworkACLID, in.request()); err != nil {
		return nil, err
	}
	return &ReturnOutput{Return: true}, nil
}

// DeleteNetworkACLEntryInput is the EC2 DeleteNetworkAclEntry request.
type DeleteNetworkACLEntryInput struct {
	NetworkACLID string `locationName:"networkAclId" required:"true"`
	RuleNumber   *int32 `locationName:"ruleNumber" required:"true"`
	Egress       *bool  `locationName:"egress" required:"true"`
}

func (s *Server) deleteNetworkACLEntry(ctx context.Context, c *Call, in *DeleteNetworkACLEntryInput) (*ReturnOutput, error) {
	nf, err := s.vpcFabric()
	if err != nil {
		return nil, err
	}
	if err := nf.DeleteNetworkACLEntry(ctx, c.Principal.AccountID, in.NetworkACLID, int(*in.RuleNumber), *in.Egress); err != nil {
		return nil, err
	}
	return &ReturnOutput{Return: true}, nil
}

// ReplaceNetworkACLAssociationInput is the EC2 ReplaceNetworkAclAssociation request.
type ReplaceNetworkACLAssociationInput struct {
	AssociationID string `locationName:"associationId" required:"true"`
	NetworkACLID  string `locationName:"networkAclId" required:"true"`
}

// ReplaceNetworkACLAssociationOutput is the EC2 ReplaceNetworkAclAssociation response.
type ReplaceNetworkACLAssociationOutput struct {
	NewAssociationID string `locationName:"newAssociationId"`
}

func (s *Server) replaceNetworkACLAssociation(ctx context.Context, c *Call, in *ReplaceNetworkACLAssociationInput) (*ReplaceNetworkACLAssociationOutput, error) {
	nf, err := s.vpcFabric()
	if err != nil {
		return nil, err
	}
	id, err := nf.ReplaceNetworkACLAssociation(ctx, c.Principal.AccountID, in.AssociationID, in.NetworkACLID)
	if err != nil {
		return nil, err
	}
	return &ReplaceNetworkACLAssociationOutput{NewAssociationID: id}, nil
}

// DescribeNetworkACLsInput is the EC2 DescribeNetworkAcls request.
type DescribeNetworkACLsInput struct {
	NextToken     *string
	MaxResults    *int32
	NetworkACLIDs []string `locationName:"NetworkAclId" locationNameList:"item"`
	Filters       []Filter `locationName:"Filter"`
}

// DescribeNetworkACLsOutput is the EC2 DescribeNetworkAcls response.
type DescribeNetworkACLsOutput struct {
	NetworkACLs []NetworkACLInfo `locationName:"networkAclSet" locationNameList:"item"`
	NextToken   *string          `locationName:"nextToken"`
}

type aclWithTags struct {
	netfab.NetworkACL
	assocs []netfab.ACLAssociation
	tags   map[string]string
}

func aclEntryField(fn func(netfab.ACLRule) string, implicit string) func(aclWithTags) []string {
	return func(a aclWithTags) []string {
		var out []string
		for _, e := range a.Entries {
			out = append(out, fn(e))
		}
		if implicit != "" {
			out = append(out, implicit)
		}
		return out
	}
}

var aclFilters = filterFields[aclWithTags]{
	"vpc-id":         func(a aclWithTags) []string { return []string{a.VPCID} },
	"network-acl-id": func(a aclWithTags) []string { return []string{a.ID} },
	"owner-id":       func(a aclWithTags) []string { return []string{a.AccountID} },
	"default":        func(a aclWithTags) []string { return []string{strconv.FormatBool(a.IsDefault)} },
	"association.subnet-id": func(a aclWithTags) []string {
		var out []string
		for _, as := range a.assocs {
			out = append(out, as.SubnetID)
		}
		return out
	},
	"association.association-id": func(a aclWithTags) []string {
		var out []string
		for _, as := range a.assocs {
			out = append(out, as.ID)
		}
		return out
	},
	"association.network-acl-id": func(a aclWithTags) []string {
		if len(a.assocs) == 0 {
			return nil
		}
		return []string{a.ID}
	},
	"entry.rule-number": aclEntryField(func(e netfab.ACLRule) string { return strconv.Itoa(e.RuleNumber) }, "32767"),
	"entry.protocol":    aclEntryField(func(e netfab.ACLRule) string { return e.Protocol }, "-1"),
	"entry.rule-action": aclEntryField(func(e netfab.ACLRule) string { return e.RuleAction }, "deny"),
	"entry.cidr":        aclEntryField(func(e netfab.ACLRule) string { return e.CIDR }, "0.0.0.0/0"),
	"entry.egress":      aclEntryField(func(e netfab.ACLRule) string { return strconv.FormatBool(e.Egress) }, ""),
}

func (s *Server) describeNetworkACLs(ctx context.Context, c *Call, in *DescribeNetworkACLsInput) (*DescribeNetworkACLsOutput, error) {
	nf, err := s.vpcFabric()
	if err != nil {
		return nil, err
	}
	acct := c.Principal.AccountID
	acls, assocs, err := nf.NetworkACLs(ctx, acct)
	if err != nil {
		return nil, err
	}
	acls, err = selectByName(acls, in.NetworkACLIDs, func(a netfab.NetworkACL) string { return a.ID }, func(n string) error {
		return errdefs.NotFound("InvalidNetworkAclID.NotFound", "The network ACL ID '%s' does not exist", n)
	})
	if err != nil {
		return nil, err
	}
	items := make([]aclWithTags, 0, len(acls))
	for _, a := range acls {
		m, err := s.tagsOf(ctx, acct, a.ID)
		if err != nil {
			return nil, err
		}
		var mine []netfab.ACLAssociation
		for _, as := range assocs {
			if as.NetworkACLID == a.ID {
				mine = append(mine, as)
			}
		}
		items = append(items, aclWithTags{NetworkACL: a, assocs: mine, tags: m})
	}
	items, err = applyFiltersWithTags(items, in.Filters, aclFilters, func(a aclWithTags) map[string]string { return a.tags })
	if err != nil {
		return nil, err
	}
	items, next, err := pageByID(items, func(a aclWithTags) string { return a.ID }, in.MaxResults, in.NextToken, 5, 1000)
	if err != nil {
		return nil, err
	}
	out := &DescribeNetworkACLsOutput{NetworkACLs: []NetworkACLInfo{}, NextToken: next}
	for _, a := range items {
		out.NetworkACLs = append(out.NetworkACLs, aclInfo(acct, a.NetworkACL, a.assocs, a.tags))
	}
	return out, nil
}
