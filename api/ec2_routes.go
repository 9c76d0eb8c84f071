package api

import (
	"context"

	"github.com/labcloud/labcloud/internal/errdefs"
	"github.com/labcloud/labcloud/netfab"
)

func (s *Server) registerRoutes() {
	s.handle(ServiceEC2, "CreateRouteTable", ec2Op(s.createRouteTable))
	s.handle(ServiceEC2, "DeleteRouteTable", ec2Op(s.deleteRouteTable))
	s.handle(ServiceEC2, "DescribeRouteTables", ec2Op(s.describeRouteTables))
	s.handle(ServiceEC2, "CreateRoute", ec2Op(s.createRoute))
	s.handle(ServiceEC2, "ReplaceRoute", ec2Op(s.replaceRoute))
	s.handle(ServiceEC2, "DeleteRoute", ec2Op(s.deleteRoute))
	s.handle(ServiceEC2, "AssociateRouteTable", ec2Op(s.associateRouteTable))
	s.handle(ServiceEC2, "DisassociateRouteTable", ec2Op(s.disassociateRouteTable))
	s.handle(ServiceEC2, "ReplaceRouteTableAssociation", ec2Op(s.replaceRouteTableAssociation))
	s.handle(ServiceEC2, "CreateInternetGateway", ec2Op(s.createInternetGateway))
	s.handle(ServiceEC2, "AttachInternetGateway", ec2Op(s.attachInternetGateway))
	s.handle(ServiceEC2, "DetachInternetGateway", ec2Op(s.detachInternetGateway))
	s.handle(ServiceEC2, "DeleteInternetGateway", ec2Op(s.deleteInternetGateway))
	s.handle(ServiceEC2, "DescribeInternetGateways", ec2Op(s.describeInternetGateways))
}

// ---- route tables ----

// CreateRouteTableInput is the EC2 CreateRouteTable request.
type CreateRouteTableInput struct {
	VpcID             string             `locationName:"vpcId"`
	ClientToken       string             `locationName:"ClientToken"`
	TagSpecifications []TagSpecification `locationName:"TagSpecification" locationNameList:"item"`
	DryRun            *bool              `locationName:"dryRun"`
}

// CreateRouteTableOutput is the EC2 CreateRouteTable response.
type CreateRouteTableOutput struct {
	RouteTable  RouteTableItem `locationName:"routeTable"`
	ClientToken *string        `locationName:"clientToken"`
}

// RouteTableItem is an EC2 RouteTable.
type RouteTableItem struct {
	RouteTableID    string            `locationName:"routeTableId"`
	VpcID           string            `locationName:"vpcId"`
	OwnerID         string            `locationName:"ownerId"`
	Routes          []RouteItem       `locationName:"routeSet" locationNameList:"item"`
	Associations    []RouteTableAssoc `locationName:"associationSet" locationNameList:"item"`
	PropagatingVgws []struct{}        `locationName:"propagatingVgwSet" locationNameList:"item"`
	Tags            []TagItem         `locationName:"tagSet" locationNameList:"item"`
}

// RouteItem is an EC2 Route.
type RouteItem struct {
	DestinationCidrBlock string `locationName:"destinationCidrBlock"`
	GatewayID            string `locationName:"gatewayId" omitempty:"true"`
	NatGatewayID         string `locationName:"natGatewayId" omitempty:"true"`
	InstanceID           string `locationName:"instanceId" omitempty:"true"`
	InstanceOwnerID      string `locationName:"instanceOwnerId" omitempty:"true"`
	NetworkInterfaceID   string `locationName:"networkInterfaceId" omitempty:"true"`
	Origin               string `locationName:"origin"`
	State                string `locationName:"state"`
}

// RouteTableAssoc is an EC2 RouteTableAssociation.
type RouteTableAssoc struct {
	RouteTableAssociationID string           `locationName:"routeTableAssociationId"`
	RouteTableID            string           `locationName:"routeTableId"`
	SubnetID                string           `locationName:"subnetId" omitempty:"true"`
	Main                    bool             `locationName:"main"`
	AssociationState        AssociationState `locationName:"associationState"`
}

// AssociationState is a RouteTableAssociationState.
type AssociationState struct {
	State string `locationName:"state"`
}

func routeTableItem(t netfab.RouteTableView, tg map[string]string) RouteTableItem {
	it := RouteTableItem{RouteTableID: t.ID, VpcID: t.VPCID, OwnerID: t.AccountID, Routes: []RouteItem{},
		Associations: []RouteTableAssoc{}, PropagatingVgws: []struct{}{}, Tags: tagSet(tg)}
	for _, r := range t.RouteViews {
		ri := RouteItem{DestinationCidrBlock: r.DestinationCIDR, GatewayID: r.GatewayID, NatGatewayID: r.NatGatewayID,
			InstanceID: r.InstanceID, NetworkInterfaceID: r.NetworkInterfaceID, Origin: r.Origin, State: r.State}
		if r.InstanceID != "" {
			ri.InstanceOwnerID = t.AccountID
		}
		it.Routes = append(it.Routes, ri)
	}
	if t.Main {
		it.Associations = append(it.Associations, RouteTableAssoc{RouteTableAssociationID: t.MainAssociationID, RouteTableID: t.ID,
			Main: true, AssociationState: AssociationState{State: "associated"}})
	}
	for _, a := range t.Associations {
		it.Associations = append(it.Associations, RouteTableAssoc{RouteTableAssociationID: a.ID, RouteTableID: t.ID,
			SubnetID: a.SubnetID, AssociationState: AssociationState{State: "associated"}})
	}
	return it
}

func (s *Server) createRouteTable(ctx context.Context, c *Call, in *CreateRouteTableInput) (*CreateRouteTableOutput, error) {
	f, err := s.vpcFabric()
	if err != nil {
		return nil, err
	}
	if _, err := specTags(in.TagSpecifications, "route-table"); err != nil {
		return nil, err
	}
	acct := c.Principal.AccountID
	t, err := f.CreateRouteTable(ctx, acct, in.VpcID)
	if err != nil {
		return nil, err
	}
	tg, err := s.vpcSpecTags(ctx, acct, t.ID, in.TagSpecifications, "route-table")
	if err != nil {
		return nil, err
	}
	out := &CreateRouteTableOutput{RouteTable: routeTableItem(t, tg)}
	if in.ClientToken != "" {
		out.ClientToken = &in.ClientToken
	}
	return out, nil
}

// RouteTableIDInput is a request naming one route table.
type RouteTableIDInput struct {
	RouteTableID string `locationName:"routeTableId"`
	DryRun       *bool  `locationName:"dryRun"`
}

func (s *Server) deleteRouteTable(ctx context.Context, c *Call, in *RouteTableIDInput) (*ReturnOutput, error) {
	f, err := s.vpcFabric()
	if err != nil {
		return nil, err
	}
	if in.RouteTableID == "" {
		return nil, errdefs.New(errdefs.ClassMissingParameter, "MissingParameter", "The request must contain the parameter routeTableId")
	}
	acct := c.Principal.AccountID
	if err := f.DeleteRouteTable(ctx, acct, in.RouteTableID); err != nil {
		return nil, err
	}
	return &ReturnOutput{Return: true}, s.vpcForgetTags(ctx, acct, in.RouteTableID)
}

// DescribeRouteTablesInput is the EC2 DescribeRouteTables request.
type DescribeRouteTablesInput struct {
	Filters       []Filter `locationName:"Filter"`
	RouteTableIDs []string `locationName:"RouteTableId"`
	MaxResults    *int32   `locationName:"MaxResults"`
	NextToken     *string  `locationName:"NextToken"`
	DryRun        *bool    `locationName:"dryRun"`
}

// DescribeRouteTablesOutput is the EC2 DescribeRouteTables response.
type DescribeRouteTablesOutput struct {
	RouteTables []RouteTableItem `locationName:"routeTableSet" locationNameList:"item"`
	NextToken   *string          `locationName:"nextToken"`
}

func vpcRouteField(get func(netfab.RouteView) string) func(netfab.RouteTableView) []string {
	return func(t netfab.RouteTableView) []string {
		var out []string
		for _, r := range t.RouteViews {
			if v := get(r); v != "" {
				out = append(out, v)
			}
		}
		return out
	}
}

var routeTableFilters = filterFields[netfab.RouteTableView]{
	"route-table-id": func(t netfab.RouteTableView) []string { return vpcOne(t.ID) },
	"vpc-id":         func(t netfab.RouteTableView) []string { return vpcOne(t.VPCID) },
	"owner-id":       func(t netfab.RouteTableView) []string { return vpcOne(t.AccountID) },
	"association.subnet-id": func(t netfab.RouteTableView) []string {
		var out []string
		for _, a := range t.Associations {
			out = append(out, a.SubnetID)
		}
		return out
	},
	"association.route-table-association-id": func(t netfab.RouteTableView) []string {
		out := []string{}
		if t.Main {
			out = append(out, t.MainAssociationID)
		}
		for _, a := range t.Associations {
			out = append(out, a.ID)
		}
		return out
	},
	"association.route-table-id": func(t netfab.RouteTableView) []string {
		if t.Main || len(t.Associations) > 0 {
			return vpcOne(t.ID)
		}
		return nil
	},
	"association.main": func(t netfab.RouteTableView) []string {
		// AWS matches association.main=false for tables with an explicit
		// (non-main) association.
		var out []string
		if t.Main {
			out = append(out, "true")
		}
		if len(t.Associations) > 0 {
			out = append(out, "false")
		}
		return out
	},
	"route.destination-cidr-block": vpcRouteField(func(r netfab.RouteView) string { return r.DestinationCIDR }),
	"route.gateway-id":             vpcRouteField(func(r netfab.RouteView) string { return r.GatewayID }),
	"route.nat-gateway-id":         vpcRouteField(func(r netfab.RouteView) string { return r.NatGatewayID }),
	"route.instance-id":            vpcRouteField(func(r netfab.RouteView) string { return r.InstanceID }),
	"route.network-interface-id":   vpcRouteField(func(r netfab.RouteView) string { return r.NetworkInterfaceID }),
	"route.origin":                 vpcRouteField(func(r netfab.RouteView) string { return r.Origin }),
	"route.state":                  vpcRouteField(func(r netfab.RouteView) string { return r.State }),
}

func (s *Server) describeRouteTables(ctx context.Context, c *Call, in *DescribeRouteTablesInput) (*DescribeRouteTablesOutput, error) {
	f, err := s.vpcFabric()
	if err != nil {
		return nil, err
	}
	acct := c.Principal.AccountID
	list, err := f.RouteTables(ctx, acct)
	if err != nil {
		return nil, err
	}
	page, tok, err := vpcDescribe(ctx, s, acct, list, func(t netfab.RouteTableView) string { return t.ID }, in.RouteTableIDs,
		func(ids string) error {
			return errdefs.NotFound("InvalidRouteTableID.NotFound", "The routeTable ID '%s' does not exist", ids)
		}, in.Filters, routeTableFilters, in.MaxResults, in.NextToken)
	if err != nil {
		return nil, err
	}
	out := &DescribeRouteTablesOutput{RouteTables: []RouteTableItem{}, NextToken: tok}
	for _, t := range page {
		out.RouteTables = append(out.RouteTables, routeTableItem(t.v, t.tags))
	}
	return out, nil
}

// RouteInput is the EC2 CreateRoute and ReplaceRoute request.
type RouteInput struct {
	RouteTableID                string `locationName:"routeTableId"`
	DestinationCidrBlock        string `locationName:"destinationCidrBlock"`
	DestinationIpv6CidrBlock    string `locationName:"destinationIpv6CidrBlock"`
	DestinationPrefixListID     string `locationName:"DestinationPrefixListId"`
	GatewayID                   string `locationName:"gatewayId"`
	NatGatewayID                string `locationName:"natGatewayId"`
	InstanceID                  string `locationName:"instanceId"`
	NetworkInterfaceID          string `locationName:"networkInterfaceId"`
	VpcPeeringConnectionID      string `locationName:"vpcPeeringConnectionId"`
	EgressOnlyInternetGatewayID string `locationName:"egressOnlyInternetGatewayId"`
	TransitGatewayID            string `locationName:"TransitGatewayId"`
	LocalTarget                 *bool  `locationName:"LocalTarget"`
	DryRun                      *bool  `locationName:"dryRun"`
}

func (in *RouteInput) domain(acct string) (netfab.RouteInput, error) {
	if in.DestinationIpv6CidrBlock != "" || in.DestinationPrefixListID != "" {
		return netfab.RouteInput{}, errdefs.New(errdefs.ClassNotImplemented, "Unsupported", "labcloud routes take an IPv4 DestinationCidrBlock only")
	}
	if in.VpcPeeringConnectionID != "" || in.EgressOnlyInternetGatewayID != "" || in.TransitGatewayID != "" {
		return netfab.RouteInput{}, errdefs.New(errdefs.ClassNotImplemented, "Unsupported", "labcloud routes target an internet gateway, a NAT gateway, an instance or a network interface")
	}
	if in.LocalTarget != nil && *in.LocalTarget {
		return netfab.RouteInput{}, errdefs.InvalidParameter("InvalidParameterValue", "The local route cannot be created, replaced or deleted.")
	}
	return netfab.RouteInput{AccountID: acct, RouteTableID: in.RouteTableID, DestinationCIDR: in.DestinationCidrBlock,
		GatewayID: in.GatewayID, NatGatewayID: in.NatGatewayID, InstanceID: in.InstanceID, NetworkInterfaceID: in.NetworkInterfaceID}, nil
}

func (s *Server) createRoute(ctx context.Context, c *Call, in *RouteInput) (*ReturnOutput, error) {
	f, err := s.vpcFabric()
	if err != nil {
		return nil, err
	}
	r, err := in.domain(c.Principal.AccountID)
	if err != nil {
		return nil, err
	}
	if err := f.CreateRoute(ctx, r); err != nil {
		return nil, err
	}
	return &ReturnOutput{Return: true}, nil
}

// ReplaceRouteOutput is the EC2 ReplaceRoute response (no members).
type ReplaceRouteOutput struct{}

func (s *Server) replaceRoute(ctx context.Context, c *Call, in *RouteInput) (*ReplaceRouteOutput, error) {
	f, err := s.vpcFabric()
	if err != nil {
		return nil, err
	}
	r, err := in.domain(c.Principal.AccountID)
	if err != nil {
		return nil, err
	}
	if err := f.ReplaceRoute(ctx, r); err != nil {
		return nil, err
	}
	return &ReplaceRouteOutput{}, nil
}

// DeleteRouteInput is the EC2 DeleteRoute request.
type DeleteRouteInput struct {
	RouteTableID             string `locationName:"routeTableId"`
	DestinationCidrBlock     string `locationName:"destinationCidrBlock"`
	DestinationIpv6CidrBlock string `locationName:"destinationIpv6CidrBlock"`
	DryRun                   *bool  `locationName:"dryRun"`
}

// DeleteRouteOutput is the EC2 DeleteRoute response (no members).
type DeleteRouteOutput struct{}

func (s *Server) deleteRoute(ctx context.Context, c *Call, in *DeleteRouteInput) (*DeleteRouteOutput, error) {
	f, err := s.vpcFabric()
	if err != nil {
		return nil, err
	}
	if err := f.DeleteRoute(ctx, c.Principal.AccountID, in.RouteTableID, in.DestinationCidrBlock); err != nil {
		return nil, err
	}
	return &DeleteRouteOutput{}, nil
}

// AssociateRouteTableInput is the EC2 AssociateRouteTable request.
type AssociateRouteTableInput struct {
	RouteTableID string `locationName:"routeTableId"`
	SubnetID     string `locationName:"subnetId"`
	GatewayID    string `locationName:"GatewayId"`
	DryRun       *bool  `locationName:"dryRun"`
}

// AssociateRouteTableOutput is the EC2 AssociateRouteTable response.
type AssociateRouteTableOutput struct {
	AssociationID    string           `locationName:"associationId"`
	AssociationState AssociationState `locationName:"associationState"`
}

func (s *Server) associateRouteTable(ctx context.Context, c *Call, in *AssociateRouteTableInput) (*AssociateRouteTableOutput, error) {
	f, err := s.vpcFabric()
	if err != nil {
		return nil, err
	}
	if in.GatewayID != "" {
		return nil, errdefs.New(errdefs.ClassNotImplemented, "Unsupported", "labcloud associates route tables with subnets only (no gateway route tables)")
	}
	if in.RouteTableID == "" {
		return nil, errdefs.New(errdefs.ClassMissingParameter, "MissingParameter", "The request must contain the parameter routeTableId")
	}
	id, err := f.AssociateRouteTable(ctx, c.Principal.AccountID, in.RouteTableID, in.SubnetID)
	if err != nil {
		return nil, err
	}
	return &AssociateRouteTableOutput{AssociationID: id, AssociationState: AssociationState{State: "associated"}}, nil
}

// DisassociateRouteTableInput is the EC2 DisassociateRouteTable request.
type DisassociateRouteTableInput struct {
	AssociationID string `locationName:"associationId"`
	DryRun        *bool  `locationName:"dryRun"`
}

// DisassociateRouteTableOutput is the EC2 DisassociateRouteTable response.
type DisassociateRouteTableOutput struct{}

func (s *Server) disassociateRouteTable(ctx context.Context, c *Call, in *DisassociateRouteTableInput) (*DisassociateRouteTableOutput, error) {
	f, err := s.vpcFabric()
	if err != nil {
		return nil, err
	}
	if in.AssociationID == "" {
		return nil, errdefs.New(errdefs.ClassMissingParameter, "MissingParameter", "The request must contain the parameter associationId")
	}
	if err := f.DisassociateRouteTable(ctx, c.Principal.AccountID, in.AssociationID); err != nil {
		return nil, err
	}
	return &DisassociateRouteTableOutput{}, nil
}

// ReplaceRouteTableAssociationInput is the EC2 ReplaceRouteTableAssociation request.
type ReplaceRouteTableAssociationInput struct {
	AssociationID string `locationName:"associationId"`
	RouteTableID  string `locationName:"routeTableId"`
	DryRun        *bool  `locationName:"dryRun"`
}

// ReplaceRouteTableAssociationOutput is the EC2 ReplaceRouteTableAssociation response.
type ReplaceRouteTableAssociationOutput struct {
	NewAssociationID string           `locationName:"newAssociationId"`
	AssociationState AssociationState `locationName:"associationState"`
}

func (s *Server) replaceRouteTableAssociation(ctx context.Context, c *Call, in *ReplaceRouteTableAssociationInput) (*ReplaceRouteTableAssociationOutput, error) {
	f, err := s.vpcFabric()
	if err != nil {
		return nil, err
	}
	if in.AssociationID == "" || in.RouteTableID == "" {
		return nil, errdefs.New(errdefs.ClassMissingParameter, "MissingParameter", "The request must contain the parameters associationId and routeTableId")
	}
	id, err := f.ReplaceRouteTableAssociation(ctx, c.Principal.AccountID, in.AssociationID, in.RouteTableID)
	if err != nil {
		return nil, err
	}
	return &ReplaceRouteTableAssociationOutput{NewAssociationID: id, AssociationState: AssociationState{State: "associated"}}, nil
}

// ---- internet gateways ----

// CreateInternetGatewayInput is the EC2 CreateInternetGateway request.
type CreateInternetGatewayInput struct {
	TagSpecifications []TagSpecification `locationName:"TagSpecification" locationNameList:"item"`
	DryRun            *bool              `locationName:"dryRun"`
}

// CreateInternetGatewayOutput is the EC2 CreateInternetGateway response.
type CreateInternetGatewayOutput struct {
	InternetGateway InternetGatewayItem `locationName:"internetGateway"`
}

// InternetGatewayItem is an EC2 InternetGateway.
type InternetGatewayItem struct {
	InternetGatewayID string              `locationName:"internetGatewayId"`
	OwnerID           string              `locationName:"ownerId"`
	Attachments       []IGWAttachmentItem `locationName:"attachmentSet" locationNameList:"item"`
	Tags              []TagItem           `locationName:"tagSet" locationNameList:"item"`
}

// IGWAttachmentItem is an InternetGatewayAttachment.
type IGWAttachmentItem struct {
	State string `locationName:"state"`
	VpcID string `locationName:"vpcId"`
}

func vpcIGWItem(g netfab.InternetGateway, tg map[string]string) InternetGatewayItem {
	it := InternetGatewayItem{InternetGatewayID: g.ID, OwnerID: g.AccountID, Attachments: []IGWAttachmentItem{}, Tags: tagSet(tg)}
	if g.VPCID != "" {
		// AWS reports an attached internet gateway as "available".
		it.Attachments = append(it.Attachments, IGWAttachmentItem{State: "available", VpcID: g.VPCID})
	}
	return it
}

func (s *Server) createInternetGateway(ctx context.Context, c *Call, in *CreateInternetGatewayInput) (*CreateInternetGatewayOutput, error) {
	f, err := s.vpcFabric()
	if err != nil {
		return nil, err
	}
	if _, err := specTags(in.TagSpecifications, "internet-gateway"); err != nil {
		return nil, err
	}
	acct := c.Principal.AccountID
	g, err := f.CreateInternetGateway(ctx, acct)
	if err != nil {
		return nil, err
	}
	tg, err := s.vpcSpecTags(ctx, acct, g.ID, in.TagSpecifications, "internet-gateway")
	if err != nil {
		return nil, err
	}
	return &CreateInternetGatewayOutput{InternetGateway: vpcIGWItem(g, tg)}, nil
}

// IGWVpcInput is the EC2 AttachInternetGateway / DetachInternetGateway request.
type IGWVpcInput struct {
	InternetGatewayID string `locationName:"internetGatewayId"`
	VpcID             string `locationName:"vpcId"`
	DryRun            *bool  `locationName:"dryRun"`
}

func (in *IGWVpcInput) check() error {
	if in.InternetGatewayID == "" || in.VpcID == "" {
		return errdefs.New(errdefs.ClassMissingParameter, "MissingParameter", "The request must contain the parameters internetGatewayId and vpcId")
	}
	return nil
}

// VpcEmptyOutput is the reply of EC2 actions that return nothing but a
// request ID.
type VpcEmptyOutput struct{}

func (s *Server) attachInternetGateway(ctx context.Context, c *Call, in *IGWVpcInput) (*VpcEmptyOutput, error) {
	f, err := s.vpcFabric()
	if err != nil {
		return nil, err
	}
	if err := in.check(); err != nil {
		return nil, err
	}
	return &VpcEmptyOutput{}, f.AttachInternetGateway(ctx, c.Principal.AccountID, in.InternetGatewayID, in.VpcID)
}

func (s *Server) detachInternetGateway(ctx context.Context, c *Call, in *IGWVpcInput) (*VpcEmptyOutput, error) {
	f, err := s.vpcFabric()
	if err != nil {
		return nil, err
	}
	if err := in.check(); err != nil {
		return nil, err
	}
	return &VpcEmptyOutput{}, f.DetachInternetGateway(ctx, c.Principal.AccountID, in.InternetGatewayID, in.VpcID)
}

// DeleteInternetGatewayInput is the EC2 DeleteInternetGateway request.
type DeleteInternetGatewayInput struct {
	InternetGatewayID string `locationName:"internetGatewayId"`
	DryRun            *bool  `locationName:"dryRun"`
}

func (s *Server) deleteInternetGateway(ctx context.Context, c *Call, in *DeleteInternetGatewayInput) (*VpcEmptyOutput, error) {
	f, err := s.vpcFabric()
	if err != nil {
		return nil, err
	}
	if in.InternetGatewayID == "" {
		return nil, errdefs.New(errdefs.ClassMissingParameter, "MissingParameter", "The request must contain the parameter internetGatewayId")
	}
	acct := c.Principal.AccountID
	if err := f.DeleteInternetGateway(ctx, acct, in.InternetGatewayID); err != nil {
		return nil, err
	}
	return &VpcEmptyOutput{}, s.vpcForgetTags(ctx, acct, in.InternetGatewayID)
}

// DescribeInternetGatewaysInput is the EC2 DescribeInternetGateways request.
type DescribeInternetGatewaysInput struct {
	Filters            []Filter `locationName:"Filter"`
	InternetGatewayIDs []string `locationName:"internetGatewayId" locationNameList:"item"`
	MaxResults         *int32   `locationName:"MaxResults"`
	NextToken          *string  `locationName:"NextToken"`
	DryRun             *bool    `locationName:"dryRun"`
}

// DescribeInternetGatewaysOutput is the EC2 DescribeInternetGateways response.
type DescribeInternetGatewaysOutput struct {
	InternetGateways []InternetGatewayItem `locationName:"internetGatewaySet" locationNameList:"item"`
	NextToken        *string               `locationName:"nextToken"`
}

var igwFilters = filterFields[netfab.InternetGateway]{
	"internet-gateway-id": func(g netfab.InternetGateway) []string { return vpcOne(g.ID) },
	"owner-id":            func(g netfab.InternetGateway) []string { return vpcOne(g.AccountID) },
	"attachment.vpc-id": func(g netfab.InternetGateway) []string {
		if g.VPCID == "" {
			return nil
		}
		return vpcOne(g.VPCID)
	},
	"attachment.state": func(g netfab.InternetGateway) []string {
		if g.VPCID == "" {
			return nil
		}
		return vpcOne("available")
	},
}

func (s *Server) describeInternetGateways(ctx context.Context, c *Call, in *DescribeInternetGatewaysInput) (*DescribeInternetGatewaysOutput, error) {
	f, err := s.vpcFabric()
	if err != nil {
		return nil, err
	}
	acct := c.Principal.AccountID
	list, err := f.ListInternetGateways(ctx, acct)
	if err != nil {
		return nil, err
	}
	page, tok, err := vpcDescribe(ctx, s, acct, list, func(g netfab.InternetGateway) string { return g.ID }, in.InternetGatewayIDs,
		func(ids string) error {
			return errdefs.NotFound("InvalidInternetGatewayID.NotFound", "The internetGateway ID '%s' does not exist", ids)
		}, in.Filters, igwFilters, in.MaxResults, in.NextToken)
	if err != nil {
		return nil, err
	}
	out := &DescribeInternetGatewaysOutput{InternetGateways: []InternetGatewayItem{}, NextToken: tok}
	for _, t := range page {
		out.InternetGateways = append(out.InternetGateways, vpcIGWItem(t.v, t.tags))
	}
	return out, nil
}
