package api

import (
	"context"
	"net/url"
	"strconv"
	"strings"

	"github.com/labcloud/labcloud/internal/errdefs"
	"github.com/labcloud/labcloud/netfab"
)

func (s *Server) registerVPCs() {
	s.handle(ServiceEC2, "CreateVpc", ec2Op(s.createVpc))
	s.handle(ServiceEC2, "DescribeVpcs", ec2Op(s.describeVpcs))
	s.handle(ServiceEC2, "DeleteVpc", ec2Op(s.deleteVpc))
	s.handle(ServiceEC2, "ModifyVpcAttribute", ec2Op(s.modifyVpcAttribute))
	s.handle(ServiceEC2, "DescribeVpcAttribute", ec2Op(s.describeVpcAttribute))
	s.handle(ServiceEC2, "CreateSubnet", ec2Op(s.createSubnet))
	s.handle(ServiceEC2, "DescribeSubnets", ec2Op(s.describeSubnets))
	s.handle(ServiceEC2, "ModifySubnetAttribute", ec2Op(s.modifySubnetAttribute))
	s.handle(ServiceEC2, "DeleteSubnet", ec2Op(s.deleteSubnet))
	s.handle(ServiceEC2, "DescribeNetworkInterfaces", ec2Op(s.describeNetworkInterfaces))
	s.registerRoutes()
	s.registerAddresses()
}

// vpcTables adds the VPC, subnet, route table, gateway, address and
// network interface actions. Create/modify/delete actions name the
// resource they act on (resource/* for a new one), as the EC2 service
// authorization reference does; Describe* are on "*".
func vpcTables(all func(*Call, url.Values) []string) {
	for _, a := range []string{"DescribeVpcs", "DescribeVpcAttribute", "DescribeSubnets", "DescribeNetworkInterfaces",
		"DescribeRouteTables", "DescribeInternetGateways", "DescribeAddresses", "DescribeNatGateways",
		"AllocateAddress", "CreateInternetGateway"} {
		actionTable["ec2:"+a] = actionSpec{resources: all}
	}
	on := func(kind string, params ...string) actionSpec {
		return actionSpec{resources: func(c *Call, p url.Values) []string {
			var out []string
			for _, param := range params {
				if v := p.Get(param); v != "" {
					out = append(out, ec2ARN(c, c.Principal.AccountID, kind+"/"+v))
				}
			}
			if len(out) == 0 {
				out = []string{ec2ARN(c, c.Principal.AccountID, kind+"/*")}
			}
			return out
		}}
	}
	actionTable["ec2:CreateVpc"] = on("vpc")
	actionTable["ec2:DeleteVpc"] = on("vpc", "VpcId")
	actionTable["ec2:ModifyVpcAttribute"] = on("vpc", "VpcId")
	actionTable["ec2:CreateSubnet"] = on("vpc", "VpcId")
	actionTable["ec2:DeleteSubnet"] = on("subnet", "SubnetId")
	actionTable["ec2:ModifySubnetAttribute"] = on("subnet", "SubnetId")
	actionTable["ec2:CreateRouteTable"] = on("vpc", "VpcId")
	for _, a := range []string{"DeleteRouteTable", "CreateRoute", "ReplaceRoute", "DeleteRoute", "AssociateRouteTable", "ReplaceRouteTableAssociation"} {
		actionTable["ec2:"+a] = on("route-table", "RouteTableId")
	}
	actionTable["ec2:DisassociateRouteTable"] = on("route-table")
	for _, a := range []string{"AttachInternetGateway", "DetachInternetGateway", "DeleteInternetGateway"} {
		actionTable["ec2:"+a] = on("internet-gateway", "InternetGatewayId")
	}
	for _, a := range []string{"AssociateAddress", "DisassociateAddress", "ReleaseAddress"} {
		actionTable["ec2:"+a] = on("elastic-ip", "AllocationId")
	}
	actionTable["ec2:CreateNatGateway"] = on("subnet", "SubnetId")
	actionTable["ec2:DeleteNatGateway"] = on("natgateway", "NatGatewayId")
}

func (s *Server) vpcForgetTags(ctx context.Context, acct, id string) error {
	if s.opts.Tags == nil {
		return nil
	}
	return s.opts.Tags.Forget(ctx, acct, id)
}

func (s *Server) vpcSpecTags(ctx context.Context, acct, id string, specs []TagSpecification, resourceType string) (map[string]string, error) {
	tg, err := specTags(specs, resourceType)
	if err != nil {
		return nil, err
	}
	if len(tg) > 0 && s.opts.Tags == nil {
		return nil, errdefs.New(errdefs.ClassUnavailable, "Unavailable", "this labcloudd has no tag store")
	}
	return s.applySpecTags(ctx, acct, id, tg)
}

// tagged pairs an item with its tags for filtering.
type vpcTagged[T any] struct {
	v    T
	tags map[string]string
}

// withTags reads the tags of every item.
func vpcWithTags[T any](ctx context.Context, s *Server, acct string, items []T, id func(T) string) ([]vpcTagged[T], error) {
	out := make([]vpcTagged[T], 0, len(items))
	for _, it := range items {
		m, err := s.tagsOf(ctx, acct, id(it))
		if err != nil {
			return nil, err
		}
		out = append(out, vpcTagged[T]{v: it, tags: m})
	}
	return out, nil
}

// describe is the common body of the Describe* actions: select by IDs
// (unknown IDs give notFound), filter (with tag filters), page.
func vpcDescribe[T any](ctx context.Context, s *Server, acct string, items []T, id func(T) string, ids []string,
	notFound func(string) error, filters []Filter, fields filterFields[T], maxResults *int32, nextToken *string) ([]vpcTagged[T], *string, error) {
	items, err := selectByName(items, ids, id, notFound)
	if err != nil {
		return nil, nil, err
	}
	tw, err := vpcWithTags(ctx, s, acct, items, id)
	if err != nil {
		return nil, nil, err
	}
	tf := filterFields[vpcTagged[T]]{}
	for k, fn := range fields {
		tf[k] = func(t vpcTagged[T]) []string { return fn(t.v) }
	}
	tw, err = applyFiltersWithTags(tw, filters, tf, func(t vpcTagged[T]) map[string]string { return t.tags })
	if err != nil {
		return nil, nil, err
	}
	return vpcPage(tw, func(t vpcTagged[T]) string { return id(t.v) }, maxResults, nextToken)
}

// pageTagged cuts one page of MaxResults (5-1000) from list; the token is
// the ID of the first item of the next page.
func vpcPage[T any](list []T, id func(T) string, maxResults *int32, nextToken *string) ([]T, *string, error) {
	return pageByID(list, id, maxResults, nextToken, 5, 1000)
}

func vpcOne(s string) []string { return []string{s} }

func vpcBool(b bool) []string { return []string{strconv.FormatBool(b)} }

// BoolAttribute is EC2's AttributeBooleanValue: {Value: bool}.
type BoolAttribute struct {
	Value *bool `locationName:"value"`
}

// ---- VPCs ----

// CreateVpcInput is the EC2 CreateVpc request.
type CreateVpcInput struct {
	CidrBlock                   string             `locationName:"CidrBlock"`
	InstanceTenancy             string             `locationName:"instanceTenancy"`
	AmazonProvidedIpv6CidrBlock *bool              `locationName:"amazonProvidedIpv6CidrBlock"`
	Ipv4IpamPoolID              string             `locationName:"Ipv4IpamPoolId"`
	TagSpecifications           []TagSpecification `locationName:"TagSpecification" locationNameList:"item"`
	DryRun                      *bool              `locationName:"dryRun"`
}

// CreateVpcOutput is the EC2 CreateVpc response.
type CreateVpcOutput struct {
	Vpc VpcItem `locationName:"vpc"`
}

// VpcItem is an EC2 Vpc.
type VpcItem struct {
	VpcID                   string                `locationName:"vpcId"`
	OwnerID                 string                `locationName:"ownerId"`
	State                   string                `locationName:"state"`
	CidrBlock               string                `locationName:"cidrBlock"`
	DhcpOptionsID           string                `locationName:"dhcpOptionsId"`
	InstanceTenancy         string                `locationName:"instanceTenancy"`
	IsDefault               bool                  `locationName:"isDefault"`
	CidrBlockAssociationSet []VpcCidrAssociation  `locationName:"cidrBlockAssociationSet" locationNameList:"item"`
	Ipv6CidrBlockAssocSet   []VpcCidrAssociation6 `locationName:"ipv6CidrBlockAssociationSet" locationNameList:"item"`
	Tags                    []TagItem             `locationName:"tagSet" locationNameList:"item"`
}

// VpcCidrAssociation is a VpcCidrBlockAssociation.
type VpcCidrAssociation struct {
	AssociationID  string `locationName:"associationId"`
	CidrBlock      string `locationName:"cidrBlock"`
	CidrBlockState struct {
		State string `locationName:"state"`
	} `locationName:"cidrBlockState"`
}

// VpcCidrAssociation6 is a VpcIpv6CidrBlockAssociation (always empty: no
// IPv6 here).
type VpcCidrAssociation6 struct {
	AssociationID string `locationName:"associationId"`
}

func vpcItem(v netfab.VPC, tg map[string]string) VpcItem {
	a := VpcCidrAssociation{AssociationID: "vpc-cidr-assoc-" + strings.TrimPrefix(v.ID, "vpc-"), CidrBlock: v.CIDR}
	a.CidrBlockState.State = "associated"
	ten := v.InstanceTenancy
	if ten == "" {
		ten = "default"
	}
	return VpcItem{VpcID: v.ID, OwnerID: v.AccountID, State: "available", CidrBlock: v.CIDR, DhcpOptionsID: "default",
		InstanceTenancy: ten, IsDefault: v.IsDefault, CidrBlockAssociationSet: []VpcCidrAssociation{a},
		Ipv6CidrBlockAssocSet: []VpcCidrAssociation6{}, Tags: tagSet(tg)}
}

func (s *Server) createVpc(ctx context.Context, c *Call, in *CreateVpcInput) (*CreateVpcOutput, error) {
	f, err := s.vpcFabric()
	if err != nil {
		return nil, err
	}
	if in.AmazonProvidedIpv6CidrBlock != nil && *in.AmazonProvidedIpv6CidrBlock || in.Ipv4IpamPoolID != "" {
		return nil, errdefs.New(errdefs.ClassNotImplemented, "Unsupported", "labcloud VPCs are IPv4 with a CidrBlock you give; IPv6 and IPAM pools are not supported")
	}
	if _, err := specTags(in.TagSpecifications, "vpc"); err != nil {
		return nil, err
	}
	acct := c.Principal.AccountID
	v, err := f.CreateVPC(ctx, netfab.CreateVPCInput{AccountID: acct, CIDR: in.CidrBlock, InstanceTenancy: in.InstanceTenancy})
	if err != nil {
		return nil, err
	}
	tg, err := s.vpcSpecTags(ctx, acct, v.ID, in.TagSpecifications, "vpc")
	if err != nil {
		return nil, err
	}
	return &CreateVpcOutput{Vpc: vpcItem(v, tg)}, nil
}

// DescribeVpcsInput is the EC2 DescribeVpcs request.
type DescribeVpcsInput struct {
	Filters    []Filter `locationName:"Filter"`
	VpcIDs     []string `locationName:"VpcId"`
	MaxResults *int32   `locationName:"MaxResults"`
	NextToken  *string  `locationName:"NextToken"`
	DryRun     *bool    `locationName:"dryRun"`
}

// DescribeVpcsOutput is the EC2 DescribeVpcs response.
type DescribeVpcsOutput struct {
	Vpcs      []VpcItem `locationName:"vpcSet" locationNameList:"item"`
	NextToken *string   `locationName:"nextToken"`
}

var vpcFilters = filterFields[netfab.VPC]{
	"vpc-id":                            func(v netfab.VPC) []string { return vpcOne(v.ID) },
	"cidr":                              func(v netfab.VPC) []string { return vpcOne(v.CIDR) },
	"cidr-block":                        func(v netfab.VPC) []string { return vpcOne(v.CIDR) },
	"cidr-block-association.cidr-block": func(v netfab.VPC) []string { return vpcOne(v.CIDR) },
	"cidr-block-association.state":      func(netfab.VPC) []string { return vpcOne("associated") },
	"is-default":                        func(v netfab.VPC) []string { return vpcBool(v.IsDefault) },
	"state":                             func(netfab.VPC) []string { return vpcOne("available") },
	"owner-id":                          func(v netfab.VPC) []string { return vpcOne(v.AccountID) },
	"dhcp-options-id":                   func(netfab.VPC) []string { return vpcOne("default") },
	"instance-tenancy":                  func(v netfab.VPC) []string { return vpcOne(vpcOr(v.InstanceTenancy, "default")) },
	"cidr-block-association.association-id": func(v netfab.VPC) []string {
		return vpcOne("vpc-cidr-assoc-" + strings.TrimPrefix(v.ID, "vpc-"))
	},
}

func vpcOr(s, d string) string {
	if s == "" {
		return d
	}
	return s
}

func (s *Server) describeVpcs(ctx context.Context, c *Call, in *DescribeVpcsInput) (*DescribeVpcsOutput, error) {
	f, err := s.vpcFabric()
	if err != nil {
		return nil, err
	}
	acct := c.Principal.AccountID
	vpcs, err := f.ListVPCs(ctx, acct)
	if err != nil {
		return nil, err
	}
	page, tok, err := vpcDescribe(ctx, s, acct, vpcs, func(v netfab.VPC) string { return v.ID }, in.VpcIDs,
		func(ids string) error {
			return errdefs.NotFound("InvalidVpcID.NotFound", "The vpc ID '%s' does not exist", ids)
		}, in.Filters, vpcFilters, in.MaxResults, in.NextToken)
	if err != nil {
		return nil, err
	}
	out := &DescribeVpcsOutput{Vpcs: []VpcItem{}, NextToken: tok}
	for _, t := range page {
		out.Vpcs = append(out.Vpcs, vpcItem(t.v, t.tags))
	}
	return out, nil
}

// DeleteVpcInput is the EC2 DeleteVpc request.
type DeleteVpcInput struct {
	VpcID  string `locationName:"VpcId"`
	DryRun *bool  `locationName:"dryRun"`
}

func (s *Server) deleteVpc(ctx context.Context, c *Call, in *DeleteVpcInput) (*ReturnOutput, error) {
	f, err := s.vpcFabric()
	if err != nil {
		return nil, err
	}
	if in.VpcID == "" {
		return nil, errdefs.New(errdefs.ClassMissingParameter, "MissingParameter", "The request must contain the parameter VpcId")
	}
	acct := c.Principal.AccountID
	if err := f.DeleteVPC(ctx, acct, in.VpcID); err != nil {
		return nil, err
	}
	return &ReturnOutput{Return: true}, s.vpcForgetTags(ctx, acct, in.VpcID)
}

// ModifyVpcAttributeInput is the EC2 ModifyVpcAttribute request.
type ModifyVpcAttributeInput struct {
	VpcID              string         `locationName:"vpcId"`
	EnableDNSHostnames *BoolAttribute `locationName:"EnableDnsHostnames"`
	EnableDNSSupport   *BoolAttribute `locationName:"EnableDnsSupport"`
	EnableNAUMetrics   *BoolAttribute `locationName:"EnableNetworkAddressUsageMetrics"`
}

func (s *Server) modifyVpcAttribute(ctx context.Context, c *Call, in *ModifyVpcAttributeInput) (*ReturnOutput, error) {
	f, err := s.vpcFabric()
	if err != nil {
		return nil, err
	}
	if in.VpcID == "" {
		return nil, errdefs.New(errdefs.ClassMissingParameter, "MissingParameter", "The request must contain the parameter vpcId")
	}
	var attr string
	var val *BoolAttribute
	n := 0
	if in.EnableDNSHostnames != nil {
		attr, val = netfab.AttrEnableDNSHostnames, in.EnableDNSHostnames
		n++
	}
	if in.EnableDNSSupport != nil {
		attr, val = netfab.AttrEnableDNSSupport, in.EnableDNSSupport
		n++
	}
	if in.EnableNAUMetrics != nil {
		return nil, errdefs.New(errdefs.ClassNotImplemented, "Unsupported", "EnableNetworkAddressUsageMetrics is not supported by labcloud")
	}
	if n != 1 {
		// AWS: only one attribute can be modified at a time.
		return nil, errdefs.InvalidParameter("InvalidParameterCombination", "Fields for multiple attribute types specified: give exactly one of EnableDnsSupport or EnableDnsHostnames per call.")
	}
	if val.Value == nil {
		return nil, errdefs.New(errdefs.ClassMissingParameter, "MissingParameter", "The request must contain the parameter %s.Value", attr)
	}
	if _, err := f.SetVPCAttribute(ctx, c.Principal.AccountID, in.VpcID, attr, *val.Value); err != nil {
		return nil, err
	}
	return &ReturnOutput{Return: true}, nil
}

// DescribeVpcAttributeInput is the EC2 DescribeVpcAttribute request.
type DescribeVpcAttributeInput struct {
	Attribute string `locationName:"Attribute"`
	VpcID     string `locationName:"VpcId"`
}

// DescribeVpcAttributeOutput is the EC2 DescribeVpcAttribute response.
type DescribeVpcAttributeOutput struct {
	VpcID              string         `locationName:"vpcId"`
	EnableDNSHostnames *BoolAttribute `locationName:"enableDnsHostnames"`
	EnableDNSSupport   *BoolAttribute `locationName:"enableDnsSupport"`
	EnableNAUMetrics   *BoolAttribute `locationName:"enableNetworkAddressUsageMetrics"`
}

func (s *Server) describeVpcAttribute(ctx context.Context, c *Call, in *DescribeVpcAttributeInput) (*DescribeVpcAttributeOutput, error) {
	f, err := s.vpcFabric()
	if err != nil {
		return nil, err
	}
	if in.VpcID == "" {
		return nil, errdefs.New(errdefs.ClassMissingParameter, "MissingParameter", "The request must contain the parameter VpcId")
	}
	v, err := f.GetVPC(ctx, c.Principal.AccountID, in.VpcID)
	if err != nil {
		return nil, err
	}
	out := &DescribeVpcAttributeOutput{VpcID: v.ID}
	b := func(x bool) *BoolAttribute { return &BoolAttribute{Value: &x} }
	switch in.Attribute {
	case netfab.AttrEnableDNSSupport:
		out.EnableDNSSupport = b(v.EnableDNSSupport)
	case netfab.AttrEnableDNSHostnames:
		out.EnableDNSHostnames = b(v.EnableDNSHostnames)
	case "enableNetworkAddressUsageMetrics":
		out.EnableNAUMetrics = b(false)
	case "":
		return nil, errdefs.New(errdefs.ClassMissingParameter, "MissingParameter", "The request must contain the parameter Attribute")
	default:
		return nil, errdefs.InvalidParameter("InvalidParameterValue", "Value (%s) for parameter attribute is invalid: use enableDnsSupport, enableDnsHostnames or enableNetworkAddressUsageMetrics.", in.Attribute)
	}
	return out, nil
}

// ---- subnets ----

// CreateSubnetInput is the EC2 CreateSubnet request.
type CreateSubnetInput struct {
	VpcID              string             `locationName:"VpcId"`
	CidrBlock          string             `locationName:"CidrBlock"`
	AvailabilityZone   string             `locationName:"AvailabilityZone"`
	AvailabilityZoneID string             `locationName:"AvailabilityZoneId"`
	Ipv6CidrBlock      string             `locationName:"Ipv6CidrBlock"`
	TagSpecifications  []TagSpecification `locationName:"TagSpecification" locationNameList:"item"`
	DryRun             *bool              `locationName:"dryRun"`
}

// CreateSubnetOutput is the EC2 CreateSubnet response.
type CreateSubnetOutput struct {
	Subnet SubnetItem `locationName:"subnet"`
}

// SubnetItem is an EC2 Subnet.
type SubnetItem struct {
	SubnetID                    string     `locationName:"subnetId"`
	SubnetArn                   string     `locationName:"subnetArn"`
	VpcID                       string     `locationName:"vpcId"`
	OwnerID                     string     `locationName:"ownerId"`
	State                       string     `locationName:"state"`
	CidrBlock                   string     `locationName:"cidrBlock"`
	AvailabilityZone            string     `locationName:"availabilityZone"`
	AvailabilityZoneID          string     `locationName:"availabilityZoneId"`
	AvailableIPAddressCount     int32      `locationName:"availableIpAddressCount"`
	DefaultForAz                bool       `locationName:"defaultForAz"`
	MapPublicIPOnLaunch         bool       `locationName:"mapPublicIpOnLaunch"`
	AssignIpv6AddressOnCreation bool       `locationName:"assignIpv6AddressOnCreation"`
	Ipv6CidrBlockAssocSet       []struct{} `locationName:"ipv6CidrBlockAssociationSet" locationNameList:"item"`
	Tags                        []TagItem  `locationName:"tagSet" locationNameList:"item"`
}

func subnetItem(c *Call, v netfab.SubnetView, tg map[string]string) SubnetItem {
	return SubnetItem{SubnetID: v.ID, SubnetArn: ec2ARN(c, v.AccountID, "subnet/"+v.ID), VpcID: v.VPCID, OwnerID: v.AccountID,
		State: "available", CidrBlock: v.CIDR, AvailabilityZone: v.AvailabilityZone, AvailabilityZoneID: v.AvailabilityZoneID,
		AvailableIPAddressCount: int32(v.AvailableIPAddressCount), DefaultForAz: v.DefaultForAz,
		MapPublicIPOnLaunch: v.MapPublicIPOnLaunch, Ipv6CidrBlockAssocSet: []struct{}{}, Tags: tagSet(tg)}
}

func (s *Server) createSubnet(ctx context.Context, c *Call, in *CreateSubnetInput) (*CreateSubnetOutput, error) {
	f, err := s.vpcFabric()
	if err != nil {
		return nil, err
	}
	if in.Ipv6CidrBlock != "" {
		return nil, errdefs.New(errdefs.ClassNotImplemented, "Unsupported", "labcloud subnets are IPv4 only")
	}
	if _, err := specTags(in.TagSpecifications, "subnet"); err != nil {
		return nil, err
	}
	acct := c.Principal.AccountID
	v, err := f.CreateSubnet(ctx, netfab.CreateSubnetInput{AccountID: acct, VPCID: in.VpcID, CIDR: in.CidrBlock,
		AvailabilityZone: in.AvailabilityZone, AvailabilityZoneID: in.AvailabilityZoneID})
	if err != nil {
		return nil, err
	}
	tg, err := s.vpcSpecTags(ctx, acct, v.ID, in.TagSpecifications, "subnet")
	if err != nil {
		return nil, err
	}
	return &CreateSubnetOutput{Subnet: subnetItem(c, v, tg)}, nil
}

// DescribeSubnetsInput is the EC2 DescribeSubnets request.
type DescribeSubnetsInput struct {
	Filters    []Filter `locationName:"Filter"`
	SubnetIDs  []string `locationName:"SubnetId"`
	MaxResults *int32   `locationName:"MaxResults"`
	NextToken  *string  `locationName:"NextToken"`
	DryRun     *bool    `locationName:"dryRun"`
}

// DescribeSubnetsOutput is the EC2 DescribeSubnets response.
type DescribeSubnetsOutput struct {
	Subnets   []SubnetItem `locationName:"subnetSet" locationNameList:"item"`
	NextToken *string      `locationName:"nextToken"`
}

var subnetFilters = filterFields[netfab.SubnetView]{
	"subnet-id":               func(v netfab.SubnetView) []string { return vpcOne(v.ID) },
	"vpc-id":                  func(v netfab.SubnetView) []string { return vpcOne(v.VPCID) },
	"availability-zone":       func(v netfab.SubnetView) []string { return vpcOne(v.AvailabilityZone) },
	"availability-zone-id":    func(v netfab.SubnetView) []string { return vpcOne(v.AvailabilityZoneID) },
	"cidr-block":              func(v netfab.SubnetView) []string { return vpcOne(v.CIDR) },
	"cidr":                    func(v netfab.SubnetView) []string { return vpcOne(v.CIDR) },
	"cidrBlock":               func(v netfab.SubnetView) []string { return vpcOne(v.CIDR) },
	"default-for-az":          func(v netfab.SubnetView) []string { return vpcBool(v.DefaultForAz) },
	"defaultForAz":            func(v netfab.SubnetView) []string { return vpcBool(v.DefaultForAz) },
	"map-public-ip-on-launch": func(v netfab.SubnetView) []string { return vpcBool(v.MapPublicIPOnLaunch) },
	"state":                   func(netfab.SubnetView) []string { return vpcOne("available") },
	"owner-id":                func(v netfab.SubnetView) []string { return vpcOne(v.AccountID) },
	"available-ip-address-count": func(v netfab.SubnetView) []string {
		return vpcOne(strconv.Itoa(v.AvailableIPAddressCount))
	},
}

func (s *Server) describeSubnets(ctx context.Context, c *Call, in *DescribeSubnetsInput) (*DescribeSubnetsOutput, error) {
	f, err := s.vpcFabric()
	if err != nil {
		return nil, err
	}
	acct := c.Principal.AccountID
	list, err := f.ListSubnets(ctx, acct)
	if err != nil {
		return nil, err
	}
	page, tok, err := vpcDescribe(ctx, s, acct, list, func(v netfab.SubnetView) string { return v.ID }, in.SubnetIDs,
		func(ids string) error {
			return errdefs.NotFound("InvalidSubnetID.NotFound", "The subnet ID '%s' does not exist", ids)
		}, in.Filters, subnetFilters, in.MaxResults, in.NextToken)
	if err != nil {
		return nil, err
	}
	out := &DescribeSubnetsOutput{Subnets: []SubnetItem{}, NextToken: tok}
	for _, t := range page {
		out.Subnets = append(out.Subnets, subnetItem(c, t.v, t.tags))
	}
	return out, nil
}

// ModifySubnetAttributeInput is the EC2 ModifySubnetAttribute request.
type ModifySubnetAttributeInput struct {
	SubnetID                    string         `locationName:"subnetId"`
	MapPublicIPOnLaunch         *BoolAttribute `locationName:"MapPublicIpOnLaunch"`
	AssignIpv6AddressOnCreation *BoolAttribute `locationName:"AssignIpv6AddressOnCreation"`
	EnableDNS64                 *BoolAttribute `locationName:"EnableDns64"`
}

func (s *Server) modifySubnetAttribute(ctx context.Context, c *Call, in *ModifySubnetAttributeInput) (*ReturnOutput, error) {
	f, err := s.vpcFabric()
	if err != nil {
		return nil, err
	}
	if in.SubnetID == "" {
		return nil, errdefs.New(errdefs.ClassMissingParameter, "MissingParameter", "The request must contain the parameter subnetId")
	}
	if in.AssignIpv6AddressOnCreation != nil || in.EnableDNS64 != nil {
		return nil, errdefs.New(errdefs.ClassNotImplemented, "Unsupported", "labcloud subnets are IPv4 only; only MapPublicIpOnLaunch can be modified")
	}
	if in.MapPublicIPOnLaunch == nil || in.MapPublicIPOnLaunch.Value == nil {
		return nil, errdefs.New(errdefs.ClassMissingParameter, "MissingParameter", "The request must contain the parameter MapPublicIpOnLaunch.Value")
	}
	if err := f.SetMapPublicIPOnLaunch(ctx, c.Principal.AccountID, in.SubnetID, *in.MapPublicIPOnLaunch.Value); err != nil {
		return nil, err
	}
	return &ReturnOutput{Return: true}, nil
}

// DeleteSubnetInput is the EC2 DeleteSubnet request.
type DeleteSubnetInput struct {
	SubnetID string `locationName:"SubnetId"`
	DryRun   *bool  `locationName:"dryRun"`
}

func (s *Server) deleteSubnet(ctx context.Context, c *Call, in *DeleteSubnetInput) (*ReturnOutput, error) {
	f, err := s.vpcFabric()
	if err != nil {
		return nil, err
	}
	if in.SubnetID == "" {
		return nil, errdefs.New(errdefs.ClassMissingParameter, "MissingParameter", "The request must contain the parameter SubnetId")
	}
	acct := c.Principal.AccountID
	if err := f.DeleteSubnet(ctx, acct, in.SubnetID); err != nil {
		return nil, err
	}
	return &ReturnOutput{Return: true}, s.vpcForgetTags(ctx, acct, in.SubnetID)
}

// ---- network interfaces ----

// DescribeNetworkInterfacesInput is the EC2 DescribeNetworkInterfaces request.
type DescribeNetworkInterfacesInput struct {
	Filters             []Filter `locationName:"filter"`
	NetworkInterfaceIDs []string `locationName:"NetworkInterfaceId"`
	MaxResults          *int32   `locationName:"MaxResults"`
	NextToken           *string  `locationName:"NextToken"`
	DryRun              *bool    `locationName:"dryRun"`
}

// DescribeNetworkInterfacesOutput is the EC2 DescribeNetworkInterfaces response.
type DescribeNetworkInterfacesOutput struct {
	NetworkInterfaces []NetworkInterfaceItem `locationName:"networkInterfaceSet" locationNameList:"item"`
	NextToken         *string                `locationName:"nextToken"`
}

// NetworkInterfaceItem is an EC2 NetworkInterface.
type NetworkInterfaceItem struct {
	NetworkInterfaceID string                `locationName:"networkInterfaceId"`
	SubnetID           string                `locationName:"subnetId"`
	VpcID              string                `locationName:"vpcId"`
	AvailabilityZone   string                `locationName:"availabilityZone"`
	Description        string                `locationName:"description"`
	OwnerID            string                `locationName:"ownerId"`
	RequesterManaged   bool                  `locationName:"requesterManaged"`
	Status             string                `locationName:"status"`
	MacAddress         string                `locationName:"macAddress"`
	PrivateIPAddress   string                `locationName:"privateIpAddress"`
	PrivateDNSName     string                `locationName:"privateDnsName"`
	SourceDestCheck    bool                  `locationName:"sourceDestCheck"`
	InterfaceType      string                `locationName:"interfaceType"`
	Groups             []ENIGroupItem        `locationName:"groupSet" locationNameList:"item"`
	Attachment         *ENIAttachment        `locationName:"attachment"`
	Association        *ENIAssociation       `locationName:"association"`
	PrivateIPAddresses []ENIPrivateIPAddress `locationName:"privateIpAddressesSet" locationNameList:"item"`
	Ipv6Addresses      []struct{}            `locationName:"ipv6AddressesSet" locationNameList:"item"`
	Tags               []TagItem             `locationName:"tagSet" locationNameList:"item"`
}

// ENIGroupItem is a GroupIdentifier: a security group's ID and name.
type ENIGroupItem struct {
	GroupID   string `locationName:"groupId"`
	GroupName string `locationName:"groupName"`
}

// ENIAttachment is a NetworkInterfaceAttachment.
type ENIAttachment struct {
	AttachmentID        string `locationName:"attachmentId"`
	InstanceID          string `locationName:"instanceId"`
	InstanceOwnerID     string `locationName:"instanceOwnerId"`
	DeviceIndex         int32  `locationName:"deviceIndex"`
	NetworkCardIndex    int32  `locationName:"networkCardIndex"`
	Status              string `locationName:"status"`
	DeleteOnTermination bool   `locationName:"deleteOnTermination"`
}

// ENIAssociation is a NetworkInterfaceAssociation (a public IP).
type ENIAssociation struct {
	PublicIP      string `locationName:"publicIp"`
	PublicDNSName string `locationName:"publicDnsName"`
	IPOwnerID     string `locationName:"ipOwnerId"`
	AllocationID  string `locationName:"allocationId" omitempty:"true"`
	AssociationID string `locationName:"associationId" omitempty:"true"`
}

// ENIPrivateIPAddress is a NetworkInterfacePrivateIpAddress.
type ENIPrivateIPAddress struct {
	PrivateIPAddress string          `locationName:"privateIpAddress"`
	PrivateDNSName   string          `locationName:"privateDnsName"`
	Primary          bool            `locationName:"primary"`
	Association      *ENIAssociation `locationName:"association"`
}

func vpcENIStatus(v netfab.NetworkInterfaceView) string {
	if v.InstanceID == "" && v.InterfaceType == "" {
		return "available"
	}
	return "in-use"
}

var eniFilters = filterFields[netfab.NetworkInterfaceView]{
	"network-interface-id":         func(v netfab.NetworkInterfaceView) []string { return vpcOne(v.ID) },
	"subnet-id":                    func(v netfab.NetworkInterfaceView) []string { return vpcOne(v.SubnetID) },
	"vpc-id":                       func(v netfab.NetworkInterfaceView) []string { return vpcOne(v.VPCID) },
	"availability-zone":            func(v netfab.NetworkInterfaceView) []string { return vpcOne(v.AvailabilityZone) },
	"attachment.instance-id":       func(v netfab.NetworkInterfaceView) []string { return vpcOne(v.InstanceID) },
	"private-ip-address":           func(v netfab.NetworkInterfaceView) []string { return vpcOne(v.PrivateIP) },
	"addresses.private-ip-address": func(v netfab.NetworkInterfaceView) []string { return vpcOne(v.PrivateIP) },
	"mac-address":                  func(v netfab.NetworkInterfaceView) []string { return vpcOne(v.MAC) },
	"status":                       func(v netfab.NetworkInterfaceView) []string { return vpcOne(vpcENIStatus(v)) },
	"owner-id":                     func(v netfab.NetworkInterfaceView) []string { return vpcOne(v.AccountID) },
	"description":                  func(v netfab.NetworkInterfaceView) []string { return vpcOne(v.Description) },
	"interface-type":               func(v netfab.NetworkInterfaceView) []string { return vpcOne(vpcENIType(v)) },
	"association.public-ip":        func(v netfab.NetworkInterfaceView) []string { return vpcOne(v.PublicIP) },
	"association.allocation-id":    func(v netfab.NetworkInterfaceView) []string { return vpcOne(v.AllocationID) },
	"association.association-id":   func(v netfab.NetworkInterfaceView) []string { return vpcOne(v.AssociationID) },
	"source-dest-check":            func(v netfab.NetworkInterfaceView) []string { return vpcBool(!v.NoSourceDestCheck) },
	"attachment.status":            func(v netfab.NetworkInterfaceView) []string { return vpcOne(vpcAttachStatus(v)) },
	"attachment.device-index":      func(netfab.NetworkInterfaceView) []string { return vpcOne("0") },
	"group-id": func(v netfab.NetworkInterfaceView) []string {
		var out []string
		for _, g := range v.Groups {
			out = append(out, g.ID)
		}
		return out
	},
	"group-name": func(v netfab.NetworkInterfaceView) []string {
		var out []string
		for _, g := range v.Groups {
			out = append(out, g.Name)
		}
		return out
	},
}

func vpcENIType(v netfab.NetworkInterfaceView) string { return vpcOr(v.InterfaceType, "interface") }

func vpcAttachStatus(v netfab.NetworkInterfaceView) string {
	if v.InstanceID != "" {
		return "attached"
	}
	return ""
}

func (s *Server) describeNetworkInterfaces(ctx context.Context, c *Call, in *DescribeNetworkInterfacesInput) (*DescribeNetworkInterfacesOutput, error) {
	f, err := s.vpcFabric()
	if err != nil {
		return nil, err
	}
	acct := c.Principal.AccountID
	list, err := f.NetworkInterfaces(ctx, acct)
	if err != nil {
		return nil, err
	}
	page, tok, err := vpcDescribe(ctx, s, acct, list, func(v netfab.NetworkInterfaceView) string { return v.ID }, in.NetworkInterfaceIDs,
		func(ids string) error {
			return errdefs.NotFound("InvalidNetworkInterfaceID.NotFound", "The networkInterface ID '%s' does not exist", ids)
		}, in.Filters, eniFilters, in.MaxResults, in.NextToken)
	if err != nil {
		return nil, err
	}
	out := &DescribeNetworkInterfacesOutput{NetworkInterfaces: []NetworkInterfaceItem{}, NextToken: tok}
	for _, t := range page {
		out.NetworkInterfaces = append(out.NetworkInterfaces, s.eniItem(f, t.v, t.tags))
	}
	return out, nil
}

func (s *Server) eniItem(f *netfab.Fabric, v netfab.NetworkInterfaceView, tg map[string]string) NetworkInterfaceItem {
	dns := "ip-" + strings.ReplaceAll(v.PrivateIP, ".", "-") + "." + f.Region() + ".compute.internal"
	it := NetworkInterfaceItem{NetworkInterfaceID: v.ID, SubnetID: v.SubnetID, VpcID: v.VPCID, AvailabilityZone: v.AvailabilityZone,
		Description: v.Description, OwnerID: v.AccountID, RequesterManaged: v.InterfaceType == "nat_gateway", Status: vpcENIStatus(v),
		MacAddress: v.MAC, PrivateIPAddress: v.PrivateIP, PrivateDNSName: dns, SourceDestCheck: !v.NoSourceDestCheck,
		InterfaceType: vpcENIType(v), Groups: []ENIGroupItem{}, Ipv6Addresses: []struct{}{}, Tags: tagSet(tg)}
	for _, g := range v.Groups {
		it.Groups = append(it.Groups, ENIGroupItem{GroupID: g.ID, GroupName: g.Name})
	}
	if v.InstanceID != "" {
		it.Attachment = &ENIAttachment{AttachmentID: "eni-attach-" + strings.TrimPrefix(v.ID, "eni-"), InstanceID: v.InstanceID,
			InstanceOwnerID: v.AccountID, Status: "attached", DeleteOnTermination: true}
	}
	if v.PublicIP != "" {
		a := &ENIAssociation{PublicIP: v.PublicIP, IPOwnerID: "amazon", AllocationID: v.AllocationID, AssociationID: v.AssociationID}
		if v.AllocationID != "" {
			a.IPOwnerID = v.AccountID
		}
		it.Association = a
	}
	it.PrivateIPAddresses = []ENIPrivateIPAddress{{PrivateIPAddress: v.PrivateIP, PrivateDNSName: dns, Primary: true, Association: it.Association}}
	return it
}
