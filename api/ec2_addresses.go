package api

import (
	"context"
	"time"

	"github.com/labcloud/labcloud/internal/errdefs"
	"github.com/labcloud/labcloud/netfab"
)

func (s *Server) registerAddresses() {
	s.handle(ServiceEC2, "AllocateAddress", ec2Op(s.allocateAddress))
	s.handle(ServiceEC2, "DescribeAddresses", ec2Op(s.describeAddresses))
	s.handle(ServiceEC2, "AssociateAddress", ec2Op(s.associateAddress))
	s.handle(ServiceEC2, "DisassociateAddress", ec2Op(s.disassociateAddress))
	s.handle(ServiceEC2, "ReleaseAddress", ec2Op(s.releaseAddress))
	s.handle(ServiceEC2, "CreateNatGateway", ec2Op(s.createNatGateway))
	s.handle(ServiceEC2, "DescribeNatGateways", ec2Op(s.describeNatGateways))
	s.handle(ServiceEC2, "DeleteNatGateway", ec2Op(s.deleteNatGateway))
}

// ---- Elastic IPs ----

// AllocateAddressInput is the EC2 AllocateAddress request.
type AllocateAddressInput struct {
	Domain            string             `locationName:"Domain"`
	Address           string             `locationName:"Address"`
	PublicIpv4Pool    string             `locationName:"PublicIpv4Pool"`
	TagSpecifications []TagSpecification `locationName:"TagSpecification" locationNameList:"item"`
	DryRun            *bool              `locationName:"dryRun"`
}

// AllocateAddressOutput is the EC2 AllocateAddress response.
type AllocateAddressOutput struct {
	AllocationID       string `locationName:"allocationId"`
	PublicIP           string `locationName:"publicIp"`
	Domain             string `locationName:"domain"`
	PublicIpv4Pool     string `locationName:"publicIpv4Pool"`
	NetworkBorderGroup string `locationName:"networkBorderGroup"`
}

func (s *Server) allocateAddress(ctx context.Context, c *Call, in *AllocateAddressInput) (*AllocateAddressOutput, error) {
	f, err := s.vpcFabric()
	if err != nil {
		return nil, err
	}
	if in.Domain != "" && in.Domain != "vpc" {
		return nil, errdefs.InvalidParameter("InvalidParameterValue", "Value (%s) for parameter domain is invalid: EC2-Classic is gone; use vpc.", in.Domain)
	}
	if in.Address != "" || in.PublicIpv4Pool != "" && in.PublicIpv4Pool != "amazon" {
		return nil, errdefs.New(errdefs.ClassNotImplemented, "Unsupported", "labcloud allocates Elastic IPs from its own pool only (no BYOIP address or pool)")
	}
	if _, err := specTags(in.TagSpecifications, "elastic-ip"); err != nil {
		return nil, err
	}
	acct := c.Principal.AccountID
	a, err := f.AllocateAddress(ctx, acct)
	if err != nil {
		return nil, err
	}
	if _, err := s.vpcSpecTags(ctx, acct, a.AllocationID, in.TagSpecifications, "elastic-ip"); err != nil {
		return nil, err
	}
	return &AllocateAddressOutput{AllocationID: a.AllocationID, PublicIP: a.PublicIP, Domain: "vpc", PublicIpv4Pool: "amazon",
		NetworkBorderGroup: f.Region()}, nil
}

// DescribeAddressesInput is the EC2 DescribeAddresses request.
type DescribeAddressesInput struct {
	Filters       []Filter `locationName:"Filter"`
	PublicIPs     []string `locationName:"PublicIp"`
	AllocationIDs []string `locationName:"AllocationId"`
	DryRun        *bool    `locationName:"dryRun"`
}

// DescribeAddressesOutput is the EC2 DescribeAddresses response.
type DescribeAddressesOutput struct {
	Addresses []AddressItem `locationName:"addressesSet" locationNameList:"item"`
}

// AddressItem is an EC2 Address.
type AddressItem struct {
	AllocationID            string    `locationName:"allocationId"`
	PublicIP                string    `locationName:"publicIp"`
	Domain                  string    `locationName:"domain"`
	PublicIpv4Pool          string    `locationName:"publicIpv4Pool"`
	NetworkBorderGroup      string    `locationName:"networkBorderGroup"`
	AssociationID           string    `locationName:"associationId" omitempty:"true"`
	InstanceID              string    `locationName:"instanceId" omitempty:"true"`
	NetworkInterfaceID      string    `locationName:"networkInterfaceId" omitempty:"true"`
	NetworkInterfaceOwnerID string    `locationName:"networkInterfaceOwnerId" omitempty:"true"`
	PrivateIPAddress        string    `locationName:"privateIpAddress" omitempty:"true"`
	Tags                    []TagItem `locationName:"tagSet" locationNameList:"item"`
}

var addressFilters = filterFields[netfab.Address]{
	"allocation-id":        func(a netfab.Address) []string { return vpcOne(a.AllocationID) },
	"association-id":       func(a netfab.Address) []string { return vpcOne(a.AssociationID) },
	"instance-id":          func(a netfab.Address) []string { return vpcOne(a.InstanceID) },
	"network-interface-id": func(a netfab.Address) []string { return vpcOne(a.NetworkInterfaceID) },
	"network-interface-owner-id": func(a netfab.Address) []string {
		if a.NetworkInterfaceID == "" {
			return nil
		}
		return vpcOne(a.AccountID)
	},
	"private-ip-address": func(a netfab.Address) []string { return vpcOne(a.PrivateIP) },
	"public-ip":          func(a netfab.Address) []string { return vpcOne(a.PublicIP) },
	"domain":             func(netfab.Address) []string { return vpcOne("vpc") },
	"public-ipv4-pool":   func(netfab.Address) []string { return vpcOne("amazon") },
}

func (s *Server) describeAddresses(ctx context.Context, c *Call, in *DescribeAddressesInput) (*DescribeAddressesOutput, error) {
	f, err := s.vpcFabric()
	if err != nil {
		return nil, err
	}
	acct := c.Principal.AccountID
	list, err := f.ListAddresses(ctx, acct)
	if err != nil {
		return nil, err
	}
	list, err = selectByName(list, in.PublicIPs, func(a netfab.Address) string { return a.PublicIP }, func(ips string) error {
		return errdefs.NotFound("InvalidAddress.NotFound", "Address '%s' not found.", ips)
	})
	if err != nil {
		return nil, err
	}
	page, _, err := vpcDescribe(ctx, s, acct, list, func(a netfab.Address) string { return a.AllocationID }, in.AllocationIDs,
		func(ids string) error {
			return errdefs.NotFound("InvalidAllocationID.NotFound", "The allocation ID '%s' does not exist", ids)
		}, in.Filters, addressFilters, nil, nil)
	if err != nil {
		return nil, err
	}
	out := &DescribeAddressesOutput{Addresses: []AddressItem{}}
	for _, t := range page {
		a := t.v
		it := AddressItem{AllocationID: a.AllocationID, PublicIP: a.PublicIP, Domain: "vpc", PublicIpv4Pool: "amazon",
			NetworkBorderGroup: f.Region(), AssociationID: a.AssociationID, InstanceID: a.InstanceID,
			NetworkInterfaceID: a.NetworkInterfaceID, PrivateIPAddress: a.PrivateIP, Tags: tagSet(t.tags)}
		if a.NetworkInterfaceID != "" {
			it.NetworkInterfaceOwnerID = a.AccountID
		}
		out.Addresses = append(out.Addresses, it)
	}
	return out, nil
}

// AssociateAddressInput is the EC2 AssociateAddress request.
type AssociateAddressInput struct {
	AllocationID       string `locationName:"AllocationId"`
	PublicIP           string `locationName:"PublicIp"`
	InstanceID         string `locationName:"InstanceId"`
	NetworkInterfaceID string `locationName:"networkInterfaceId"`
	PrivateIPAddress   string `locationName:"privateIpAddress"`
	AllowReassociation *bool  `locationName:"allowReassociation"`
	DryRun             *bool  `locationName:"dryRun"`
}

// AssociateAddressOutput is the EC2 AssociateAddress response.
type AssociateAddressOutput struct {
	AssociationID string `locationName:"associationId"`
}

func (s *Server) associateAddress(ctx context.Context, c *Call, in *AssociateAddressInput) (*AssociateAddressOutput, error) {
	f, err := s.vpcFabric()
	if err != nil {
		return nil, err
	}
	if in.AllocationID == "" && in.PublicIP == "" {
		return nil, errdefs.New(errdefs.ClassMissingParameter, "MissingParameter", "Either AllocationId or PublicIp must be given")
	}
	id, err := f.AssociateAddress(ctx, netfab.AssociateAddressInput{AccountID: c.Principal.AccountID, AllocationID: in.AllocationID,
		PublicIP: in.PublicIP, InstanceID: in.InstanceID, NetworkInterfaceID: in.NetworkInterfaceID, PrivateIP: in.PrivateIPAddress,
		AllowReassociation: in.AllowReassociation != nil && *in.AllowReassociation})
	if err != nil {
		return nil, err
	}
	return &AssociateAddressOutput{AssociationID: id}, nil
}

// DisassociateAddressInput is the EC2 DisassociateAddress request.
type DisassociateAddressInput struct {
	AssociationID string `locationName:"AssociationId"`
	PublicIP      string `locationName:"PublicIp"`
	DryRun        *bool  `locationName:"dryRun"`
}

func (s *Server) disassociateAddress(ctx context.Context, c *Call, in *DisassociateAddressInput) (*VpcEmptyOutput, error) {
	f, err := s.vpcFabric()
	if err != nil {
		return nil, err
	}
	if in.AssociationID == "" && in.PublicIP == "" {
		return nil, errdefs.New(errdefs.ClassMissingParameter, "MissingParameter", "Either AssociationId or PublicIp must be given")
	}
	return &VpcEmptyOutput{}, f.DisassociateAddress(ctx, c.Principal.AccountID, in.AssociationID, in.PublicIP)
}

// ReleaseAddressInput is the EC2 ReleaseAddress request.
type ReleaseAddressInput struct {
	AllocationID       string `locationName:"AllocationId"`
	PublicIP           string `locationName:"PublicIp"`
	NetworkBorderGroup string `locationName:"NetworkBorderGroup"`
	DryRun             *bool  `locationName:"dryRun"`
}

func (s *Server) releaseAddress(ctx context.Context, c *Call, in *ReleaseAddressInput) (*VpcEmptyOutput, error) {
	f, err := s.vpcFabric()
	if err != nil {
		return nil, err
	}
	if in.AllocationID == "" && in.PublicIP == "" {
		return nil, errdefs.New(errdefs.ClassMissingParameter, "MissingParameter", "Either AllocationId or PublicIp must be given")
	}
	acct := c.Principal.AccountID
	if err := f.ReleaseAddress(ctx, acct, in.AllocationID, in.PublicIP); err != nil {
		return nil, err
	}
	if in.AllocationID != "" {
		return &VpcEmptyOutput{}, s.vpcForgetTags(ctx, acct, in.AllocationID)
	}
	return &VpcEmptyOutput{}, nil
}

// ---- NAT gateways ----

// CreateNatGatewayInput is the EC2 CreateNatGateway request.
type CreateNatGatewayInput struct {
	SubnetID          string             `locationName:"SubnetId"`
	AllocationID      string             `locationName:"AllocationId"`
	ConnectivityType  string             `locationName:"ConnectivityType"`
	PrivateIPAddress  string             `locationName:"PrivateIpAddress"`
	ClientToken       string             `locationName:"ClientToken"`
	TagSpecifications []TagSpecification `locationName:"TagSpecification" locationNameList:"item"`
	DryRun            *bool              `locationName:"DryRun"`
}

// CreateNatGatewayOutput is the EC2 CreateNatGateway response.
type CreateNatGatewayOutput struct {
	NatGateway  NatGatewayItem `locationName:"natGateway"`
	ClientToken *string        `locationName:"clientToken"`
}

// NatGatewayItem is an EC2 NatGateway.
type NatGatewayItem struct {
	NatGatewayID        string               `locationName:"natGatewayId"`
	SubnetID            string               `locationName:"subnetId"`
	VpcID               string               `locationName:"vpcId"`
	State               string               `locationName:"state"`
	ConnectivityType    string               `locationName:"connectivityType"`
	CreateTime          time.Time            `locationName:"createTime" timestampFormat:"iso8601"`
	DeleteTime          *time.Time           `locationName:"deleteTime" timestampFormat:"iso8601"`
	FailureCode         string               `locationName:"failureCode" omitempty:"true"`
	FailureMessage      string               `locationName:"failureMessage" omitempty:"true"`
	NatGatewayAddresses []NatGatewayAddrItem `locationName:"natGatewayAddressSet" locationNameList:"item"`
	Tags                []TagItem            `locationName:"tagSet" locationNameList:"item"`
}

// NatGatewayAddrItem is a NatGatewayAddress.
type NatGatewayAddrItem struct {
	AllocationID       string `locationName:"allocationId"`
	NetworkInterfaceID string `locationName:"networkInterfaceId"`
	PrivateIP          string `locationName:"privateIp"`
	PublicIP           string `locationName:"publicIp"`
	IsPrimary          bool   `locationName:"isPrimary"`
	Status             string `locationName:"status"`
}

func vpcNatItem(n netfab.NatGateway, tg map[string]string) NatGatewayItem {
	it := NatGatewayItem{NatGatewayID: n.ID, SubnetID: n.SubnetID, VpcID: n.VPCID, State: n.State, ConnectivityType: "public",
		FailureCode: n.FailureCode, FailureMessage: n.FailureMessage, Tags: tagSet(tg)}
	if t, err := time.Parse(time.RFC3339, n.CreateTime); err == nil {
		it.CreateTime = t
	}
	if t, err := time.Parse(time.RFC3339, n.DeleteTime); err == nil {
		it.DeleteTime = &t
	}
	status := "succeeded"
	if n.State == "deleted" {
		status = "disassociated"
	}
	it.NatGatewayAddresses = []NatGatewayAddrItem{{AllocationID: n.AllocationID, NetworkInterfaceID: n.NetworkInterfaceID,
		PrivateIP: n.PrivateIP, PublicIP: n.PublicIP, IsPrimary: true, Status: status}}
	return it
}

func (s *Server) createNatGateway(ctx context.Context, c *Call, in *CreateNatGatewayInput) (*CreateNatGatewayOutput, error) {
	f, err := s.vpcFabric()
	if err != nil {
		return nil, err
	}
	if in.PrivateIPAddress != "" {
		return nil, errdefs.New(errdefs.ClassNotImplemented, "Unsupported", "labcloud picks the NAT gateway's private address itself; leave PrivateIpAddress out")
	}
	if _, err := specTags(in.TagSpecifications, "natgateway"); err != nil {
		return nil, err
	}
	acct := c.Principal.AccountID
	n, err := f.CreateNatGateway(ctx, netfab.CreateNatGatewayInput{AccountID: acct, SubnetID: in.SubnetID,
		AllocationID: in.AllocationID, ConnectivityType: in.ConnectivityType})
	if err != nil {
		return nil, err
	}
	tg, err := s.vpcSpecTags(ctx, acct, n.ID, in.TagSpecifications, "natgateway")
	if err != nil {
		return nil, err
	}
	out := &CreateNatGatewayOutput{NatGateway: vpcNatItem(n, tg)}
	if in.ClientToken != "" {
		out.ClientToken = &in.ClientToken
	}
	return out, nil
}

// DescribeNatGatewaysInput is the EC2 DescribeNatGateways request.
type DescribeNatGatewaysInput struct {
	Filters       []Filter `locationName:"Filter"`
	NatGatewayIDs []string `locationName:"NatGatewayId"`
	MaxResults    *int32   `locationName:"MaxResults"`
	NextToken     *string  `locationName:"NextToken"`
	DryRun        *bool    `locationName:"DryRun"`
}

// DescribeNatGatewaysOutput is the EC2 DescribeNatGateways response.
type DescribeNatGatewaysOutput struct {
	NatGateways []NatGatewayItem `locationName:"natGatewaySet" locationNameList:"item"`
	NextToken   *string          `locationName:"nextToken"`
}

var natFilters = filterFields[netfab.NatGateway]{
	"nat-gateway-id": func(n netfab.NatGateway) []string { return vpcOne(n.ID) },
	"state":          func(n netfab.NatGateway) []string { return vpcOne(n.State) },
	"subnet-id":      func(n netfab.NatGateway) []string { return vpcOne(n.SubnetID) },
	"vpc-id":         func(n netfab.NatGateway) []string { return vpcOne(n.VPCID) },
}

func (s *Server) describeNatGateways(ctx context.Context, c *Call, in *DescribeNatGatewaysInput) (*DescribeNatGatewaysOutput, error) {
	f, err := s.vpcFabric()
	if err != nil {
		return nil, err
	}
	acct := c.Principal.AccountID
	list, err := f.ListNatGateways(ctx, acct)
	if err != nil {
		return nil, err
	}
	page, tok, err := vpcDescribe(ctx, s, acct, list, func(n netfab.NatGateway) string { return n.ID }, in.NatGatewayIDs,
		func(ids string) error {
			return errdefs.NotFound("NatGatewayNotFound", "NAT gateway %s was not found", ids)
		},
		in.Filters, natFilters, in.MaxResults, in.NextToken)
	if err != nil {
		return nil, err
	}
	out := &DescribeNatGatewaysOutput{NatGateways: []NatGatewayItem{}, NextToken: tok}
	for _, t := range page {
		out.NatGateways = append(out.NatGateways, vpcNatItem(t.v, t.tags))
	}
	return out, nil
}

// DeleteNatGatewayInput is the EC2 DeleteNatGateway request.
type DeleteNatGatewayInput struct {
	NatGatewayID string `locationName:"NatGatewayId"`
	DryRun       *bool  `locationName:"DryRun"`
}

// DeleteNatGatewayOutput is the EC2 DeleteNatGateway response.
type DeleteNatGatewayOutput struct {
	NatGatewayID string `locationName:"natGatewayId"`
}

func (s *Server) deleteNatGateway(ctx context.Context, c *Call, in *DeleteNatGatewayInput) (*DeleteNatGatewayOutput, error) {
	f, err := s.vpcFabric()
	if err != nil {
		return nil, err
	}
	if in.NatGatewayID == "" {
		return nil, errdefs.New(errdefs.ClassMissingParameter, "MissingParameter", "The request must contain the parameter NatGatewayId")
	}
	n, err := f.DeleteNatGateway(ctx, c.Principal.AccountID, in.NatGatewayID)
	if err != nil {
		return nil, err
	}
	return &DeleteNatGatewayOutput{NatGatewayID: n.ID}, nil
}
