package netfab

import (
	"context"
	"errors"
	"fmt"
	"net/netip"
	"sort"

	"github.com/labcloud/labcloud/internal/errdefs"
	"github.com/labcloud/labcloud/internal/store"
)

// RouteView is a route as DescribeRouteTables shows it.
type RouteView struct {
	Route
	// GatewayID is "local" for the implicit VPC route.
	// State is "active", or "blackhole" when the target is gone (a
	// detached internet gateway, a deleted NAT gateway or interface).
	State string
}

// RouteTableView is a route table with its routes resolved: the local
// route first, then the stored routes in destination order.
type RouteTableView struct {
	RouteTable
	RouteViews []RouteView
}

func rtbNotFound(id string) error {
	return errdefs.NotFound("InvalidRouteTableID.NotFound", "The routeTable ID '%s' does not exist", id)
}

func (f *Fabric) getRouteTable(ctx context.Context, acct, id string) (RouteTable, int64, error) {
	t, rev, err := store.Load[RouteTable](ctx, f.st, rtbKey(acct, id))
	if errors.Is(err, store.ErrNotFound) {
		return RouteTable{}, 0, rtbNotFound(id)
	}
	return t, rev, err
}

// CreateRouteTable makes a route table in a VPC with only the local route.
func (f *Fabric) CreateRouteTable(ctx context.Context, acct, vpcID string) (RouteTableView, error) {
	if vpcID == "" {
		return RouteTableView{}, errdefs.New(errdefs.ClassMissingParameter, "MissingParameter", "The request must contain the parameter VpcId")
	}
	vpc, rev, err := f.getVPC(ctx, acct, vpcID)
	if err != nil {
		return RouteTableView{}, err
	}
	t := RouteTable{ID: newID("rtb"), AccountID: acct, VPCID: vpcID, Routes: []Route{}, Associations: []RouteTableAssociation{}}
	if _, err := f.st.Txn(ctx, store.OpCompareAndSwap(vpcKey(acct, vpcID), vpc, rev), store.OpCreate(rtbKey(acct, t.ID), t)); err != nil {
		if errors.Is(err, store.ErrConflict) || errors.Is(err, store.ErrNotFound) {
			return RouteTableView{}, errdefs.Conflict("IncorrectState", "VPC %s changed meanwhile; try again", vpcID)
		}
		return RouteTableView{}, err
	}
	return RouteTableView{RouteTable: t, RouteViews: []RouteView{localRoute(vpc)}}, nil
}

func localRoute(vpc VPC) RouteView {
	return RouteView{Route: Route{DestinationCIDR: vpc.CIDR, GatewayID: "local", Origin: "CreateRouteTable"}, State: "active"}
}

// DeleteRouteTable removes a route table that is neither main nor
// associated with a subnet.
func (f *Fabric) DeleteRouteTable(ctx context.Context, acct, id string) error {
	t, rev, err := f.getRouteTable(ctx, acct, id)
	if err != nil {
		return err
	}
	if t.Main {
		return vpcDependency("The routeTable '%s' has dependencies and cannot be deleted: it is the main route table of %s; make another table main first.", id, t.VPCID)
	}
	if len(t.Associations) > 0 {
		return vpcDependency("The routeTable '%s' has dependencies and cannot be deleted: disassociate subnet %s first.", id, t.Associations[0].SubnetID)
	}
	if _, err := f.st.Txn(ctx, store.OpDeleteIf(rtbKey(acct, id), rev)); err != nil {
		if errors.Is(err, store.ErrConflict) || errors.Is(err, store.ErrNotFound) {
			return errdefs.Conflict("IncorrectState", "route table %s changed meanwhile; try again", id)
		}
		return err
	}
	return f.changed(ctx, acct, t.VPCID)
}

// vpcObjects are the records that decide the state of routes.
type vpcObjects struct {
	vpcs    map[string]VPC
	subnets []subnetRecord
	rtbs    []RouteTable
	igws    []InternetGateway
	nats    []NatGateway
	enis    []ENI
}

func (f *Fabric) loadVPCObjects(ctx context.Context, acct string) (vpcObjects, error) {
	var o vpcObjects
	vpcs, err := f.ListVPCs(ctx, acct)
	if err != nil {
		return o, err
	}
	o.vpcs = map[string]VPC{}
	for _, v := range vpcs {
		o.vpcs[v.ID] = v
	}
	if o.subnets, err = store.ListAs[subnetRecord](ctx, f.st, "subnets/"+acct+"/"); err != nil {
		return o, err
	}
	if o.rtbs, err = store.ListAs[RouteTable](ctx, f.st, "rtbs/"+acct+"/"); err != nil {
		return o, err
	}
	if o.igws, err = store.ListAs[InternetGateway](ctx, f.st, "igws/"+acct+"/"); err != nil {
		return o, err
	}
	if o.nats, err = store.ListAs[NatGateway](ctx, f.st, "natgws/"+acct+"/"); err != nil {
		return o, err
	}
	if o.enis, err = store.ListAs[ENI](ctx, f.st, "enis/"+acct+"/"); err != nil {
		return o, err
	}
	return o, nil
}

// RouteTables returns the account's route tables with resolved routes,
// sorted by ID.
func (f *Fabric) RouteTables(ctx context.Context, acct string) ([]RouteTableView, error) {
	o, err := f.loadVPCObjects(ctx, acct)
	if err != nil {
		return nil, err
	}
	out := make([]RouteTableView, 0, len(o.rtbs))
	for _, t := range o.rtbs {
		v := RouteTableView{RouteTable: t, RouteViews: []RouteView{localRoute(o.vpcs[t.VPCID])}}
		routes := append([]Route(nil), t.Routes...)
		sortRoutes(routes)
		for _, r := range routes {
			st := "active"
			if resolveRoute(o.vpcs[t.VPCID], r, o.igws, o.nats, o.enis).Kind == TargetBlackhole {
				st = "blackhole"
			}
			v.RouteViews = append(v.RouteViews, RouteView{Route: r, State: st})
		}
		out = append(out, v)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].ID < out[j].ID })
	return out, nil
}

func sortRoutes(rs []Route) {
	sort.Slice(rs, func(i, j int) bool {
		a, b := netip.MustParsePrefix(rs[i].DestinationCIDR), netip.MustParsePrefix(rs[j].DestinationCIDR)
		if a.Bits() != b.Bits() {
			return a.Bits() > b.Bits()
		}
		return a.Addr().Less(b.Addr())
	})
}

// RouteInput is CreateRoute's and ReplaceRoute's request: a destination
// and exactly one target.
type RouteInput struct {
	AccountID, RouteTableID, DestinationCIDR                string
	GatewayID, NatGatewayID, InstanceID, NetworkInterfaceID string
}

// checkTarget validates a route's target against the records and returns
// the stored route.
func (f *Fabric) checkTarget(ctx context.Context, in RouteInput, t RouteTable) (Route, error) {
	n := 0
	for _, s := range []string{in.GatewayID, in.NatGatewayID, in.InstanceID, in.NetworkInterfaceID} {
		if s != "" {
			n++
		}
	}
	if n != 1 {
		return Route{}, errdefs.InvalidParameter("InvalidParameterCombination", "Give exactly one route target: GatewayId, NatGatewayId, InstanceId or NetworkInterfaceId.")
	}
	r := Route{DestinationCIDR: in.DestinationCIDR, Origin: "CreateRoute"}
	switch {
	case in.GatewayID != "":
		if in.GatewayID == "local" {
			return Route{}, errdefs.InvalidParameter("InvalidParameterValue", "Only the implicit route for the VPC's own block can target 'local'.")
		}
		igw, _, err := store.Load[InternetGateway](ctx, f.st, igwKey(in.AccountID, in.GatewayID))
		if errors.Is(err, store.ErrNotFound) {
			return Route{}, errdefs.NotFound("InvalidGatewayID.NotFound", "The gateway ID '%s' does not exist", in.GatewayID)
		} else if err != nil {
			return Route{}, err
		}
		if igw.VPCID != t.VPCID {
			return Route{}, errdefs.InvalidParameter("InvalidParameterValue", "route table %s and network gateway %s belong to different networks; attach the gateway to %s first.", t.ID, in.GatewayID, t.VPCID)
		}
		r.GatewayID = in.GatewayID
	case in.NatGatewayID != "":
		nat, _, err := store.Load[NatGateway](ctx, f.st, natKey(in.AccountID, in.NatGatewayID))
		if errors.Is(err, store.ErrNotFound) || err == nil && !natHolds(nat) {
			return Route{}, errdefs.NotFound("InvalidNatGatewayID.NotFound", "The natGateway ID '%s' does not exist", in.NatGatewayID)
		} else if err != nil {
			return Route{}, err
		}
		if nat.VPCID != t.VPCID {
			return Route{}, errdefs.InvalidParameter("InvalidParameterValue", "route table %s and NAT gateway %s belong to different networks", t.ID, in.NatGatewayID)
		}
		r.NatGatewayID = in.NatGatewayID
	case in.InstanceID != "":
		var idx instIndex
		if _, err := f.st.Get(ctx, instKey(in.AccountID, in.InstanceID), &idx); errors.Is(err, store.ErrNotFound) {
			return Route{}, errdefs.NotFound("InvalidInstanceID.NotFound", "The instance ID '%s' does not exist", in.InstanceID)
		} else if err != nil {
			return Route{}, err
		}
		e, _, err := store.Load[ENI](ctx, f.st, eniKey(in.AccountID, idx.ENIID))
		if err != nil {
			return Route{}, err
		}
		if e.VPCID != t.VPCID {
			return Route{}, errdefs.InvalidParameter("InvalidParameterValue", "route table %s and instance %s belong to different networks", t.ID, in.InstanceID)
		}
		r.InstanceID, r.NetworkInterfaceID = in.InstanceID, e.ID
	default:
		e, _, err := store.Load[ENI](ctx, f.st, eniKey(in.AccountID, in.NetworkInterfaceID))
		if errors.Is(err, store.ErrNotFound) {
			return Route{}, errdefs.NotFound("InvalidNetworkInterfaceID.NotFound", "The networkInterface ID '%s' does not exist", in.NetworkInterfaceID)
		} else if err != nil {
			return Route{}, err
		}
		if e.VPCID != t.VPCID {
			return Route{}, errdefs.InvalidParameter("InvalidParameterValue", "route table %s and network interface %s belong to different networks", t.ID, in.NetworkInterfaceID)
		}
		r.NetworkInterfaceID, r.InstanceID = e.ID, e.InstanceID
	}
	return r, nil
}

// routeDest validates a destination and refuses the VPC's own block,
// which only the implicit local route may cover.
func routeDest(vpc VPC, dest string) (string, error) {
	if dest == "" {
		return "", errdefs.New(errdefs.ClassMissingParameter, "MissingParameter", "The request must contain the parameter destinationCidrBlock")
	}
	p, err := netip.ParsePrefix(dest)
	if err != nil || !p.Addr().Is4() {
		return "", errdefs.InvalidParameter("InvalidParameterValue", "Value (%s) for parameter destinationCidrBlock is invalid. This is not a valid CIDR block.", dest)
	}
	p = p.Masked()
	if p.String() == vpc.CIDR {
		return "", errdefs.InvalidParameter("InvalidParameterValue", "The route %s is the VPC's local route; it cannot be created, replaced or deleted.", dest)
	}
	return p.String(), nil
}

// CreateRoute adds a route (RouteAlreadyExists for a taken destination).
func (f *Fabric) CreateRoute(ctx context.Context, in RouteInput) error {
	return f.editRoutes(ctx, in.AccountID, in.RouteTableID, func(t *RouteTable, vpc VPC) error {
		dest, err := routeDest(vpc, in.DestinationCIDR)
		if err != nil {
			return err
		}
		for _, r := range t.Routes {
			if r.DestinationCIDR == dest {
				return errdefs.AlreadyExists("RouteAlreadyExists", "The route identified by %s already exists; use ReplaceRoute to change its target.", dest)
			}
		}
		in.DestinationCIDR = dest
		r, err := f.checkTarget(ctx, in, *t)
		if err != nil {
			return err
		}
		t.Routes = append(t.Routes, r)
		return nil
	})
}

// ReplaceRoute changes the target of an existing route.
func (f *Fabric) ReplaceRoute(ctx context.Context, in RouteInput) error {
	return f.editRoutes(ctx, in.AccountID, in.RouteTableID, func(t *RouteTable, vpc VPC) error {
		dest, err := routeDest(vpc, in.DestinationCIDR)
		if err != nil {
			return err
		}
		in.DestinationCIDR = dest
		r, err := f.checkTarget(ctx, in, *t)
		if err != nil {
			return err
		}
		for i := range t.Routes {
			if t.Routes[i].DestinationCIDR == dest {
				r.Origin = t.Routes[i].Origin
				t.Routes[i] = r
				return nil
			}
		}
		return errdefs.NotFound("InvalidRoute.NotFound", "no route with destination-cidr-block %s in route table %s", dest, t.ID)
	})
}

// DeleteRoute removes a route.
func (f *Fabric) DeleteRoute(ctx context.Context, acct, rtbID, dest string) error {
	return f.editRoutes(ctx, acct, rtbID, func(t *RouteTable, vpc VPC) error {
		d, err := routeDest(vpc, dest)
		if err != nil {
			return err
		}
		for i := range t.Routes {
			if t.Routes[i].DestinationCIDR == d {
				t.Routes = append(t.Routes[:i], t.Routes[i+1:]...)
				return nil
			}
		}
		return errdefs.NotFound("InvalidRoute.NotFound", "no route with destination-cidr-block %s in route table %s", d, t.ID)
	})
}

func (f *Fabric) editRoutes(ctx context.Context, acct, rtbID string, fn func(*RouteTable, VPC) error) error {
	if rtbID == "" {
		return errdefs.New(errdefs.ClassMissingParameter, "MissingParameter", "The request must contain the parameter routeTableId")
	}
	t, _, err := f.getRouteTable(ctx, acct, rtbID)
	if err != nil {
		return err
	}
	vpc, err := f.GetVPC(ctx, acct, t.VPCID)
	if err != nil {
		return err
	}
	_, err = store.Update(ctx, f.st, rtbKey(acct, rtbID), func(t *RouteTable) error { return fn(t, vpc) })
	if errors.Is(err, store.ErrNotFound) {
		return rtbNotFound(rtbID)
	}
	if err != nil {
		return err
	}
	return f.changed(ctx, acct, t.VPCID)
}

// AssociateRouteTable ties a subnet of the table's VPC to the table; a
// subnet has at most one explicit association (Resource.AlreadyAssociated).
func (f *Fabric) AssociateRouteTable(ctx context.Context, acct, rtbID, subnetID string) (string, error) {
	if subnetID == "" {
		return "", errdefs.New(errdefs.ClassMissingParameter, "MissingParameter", "The request must contain the parameter SubnetId")
	}
	s, _, err := f.getSubnet(ctx, acct, subnetID)
	if err != nil {
		return "", err
	}
	for try := 0; ; try++ {
		t, rev, err := f.getRouteTable(ctx, acct, rtbID)
		if err != nil {
			return "", err
		}
		if t.VPCID != s.VPCID {
			return "", errdefs.InvalidParameter("InvalidParameterValue", "route table %s and subnet %s belong to different networks", rtbID, subnetID)
		}
		a := RouteTableAssociation{ID: newID("rtbassoc"), SubnetID: subnetID}
		t.Associations = append(t.Associations, a)
		_, err = f.st.Txn(ctx, store.OpCompareAndSwap(rtbKey(acct, t.ID), t, rev),
			store.OpCreate(rtbSubnetKey(subnetID), rtbSubnetIndex{RouteTableID: t.ID, AssociationID: a.ID}))
		if errors.Is(err, store.ErrExists) {
			var idx rtbSubnetIndex
			_, _ = f.st.Get(ctx, rtbSubnetKey(subnetID), &idx)
			return "", errdefs.Conflict("Resource.AlreadyAssociated", "the specified association for route table %s conflicts with an existing association (%s of subnet %s); use ReplaceRouteTableAssociation", rtbID, idx.AssociationID, subnetID)
		}
		if errors.Is(err, store.ErrConflict) && try < 8 {
			continue
		}
		if err != nil {
			return "", err
		}
		return a.ID, f.changed(ctx, acct, t.VPCID)
	}
}

// findAssociation finds the route table holding an association ID
// (explicit or main).
func (f *Fabric) findAssociation(ctx context.Context, acct, assocID string) (RouteTable, int64, *RouteTableAssociation, error) {
	kvs, err := f.st.List(ctx, "rtbs/"+acct+"/")
	if err != nil {
		return RouteTable{}, 0, nil, err
	}
	for _, kv := range kvs {
		var t RouteTable
		if err := kv.Decode(&t); err != nil {
			return RouteTable{}, 0, nil, err
		}
		if t.Main && t.MainAssociationID == assocID {
			return t, kv.ModRevision, nil, nil
		}
		for i := range t.Associations {
			if t.Associations[i].ID == assocID {
				return t, kv.ModRevision, &t.Associations[i], nil
			}
		}
	}
	return RouteTable{}, 0, nil, errdefs.NotFound("InvalidAssociationID.NotFound", "The association ID '%s' does not exist", assocID)
}

// DisassociateRouteTable removes an explicit association: the subnet
// falls back to the main table. The main association cannot be removed.
func (f *Fabric) DisassociateRouteTable(ctx context.Context, acct, assocID string) error {
	for try := 0; ; try++ {
		t, rev, a, err := f.findAssociation(ctx, acct, assocID)
		if err != nil {
			return err
		}
		if a == nil {
			return errdefs.InvalidParameter("InvalidParameterValue", "%s is the main route table association of %s; it cannot be disassociated, only replaced (ReplaceRouteTableAssociation).", assocID, t.VPCID)
		}
		subnet := a.SubnetID
		t.Associations = removeAssoc(t.Associations, assocID)
		_, err = f.st.Txn(ctx, store.OpCompareAndSwap(rtbKey(acct, t.ID), t, rev), store.OpDelete(rtbSubnetKey(subnet)))
		if (errors.Is(err, store.ErrConflict) || errors.Is(err, store.ErrNotFound)) && try < 8 {
			continue
		}
		if err != nil {
			return err
		}
		return f.changed(ctx, acct, t.VPCID)
	}
}

// ReplaceRouteTableAssociation moves an association to another table of
// the same VPC and returns the new association ID. Replacing the main
// association makes rtbID the VPC's main route table.
func (f *Fabric) ReplaceRouteTableAssociation(ctx context.Context, acct, assocID, rtbID string) (string, error) {
	for try := 0; ; try++ {
		old, orev, a, err := f.findAssociation(ctx, acct, assocID)
		if err != nil {
			return "", err
		}
		nt, nrev, err := f.getRouteTable(ctx, acct, rtbID)
		if err != nil {
			return "", err
		}
		if nt.VPCID != old.VPCID {
			return "", errdefs.InvalidParameter("InvalidParameterValue", "route table %s belongs to %s, not to %s of association %s", rtbID, nt.VPCID, old.VPCID, assocID)
		}
		newAssoc := newID("rtbassoc")
		var ops []store.Op
		if a == nil { // the main association
			if nt.ID == old.ID {
				return old.MainAssociationID, nil
			}
			vpc, vrev, err := f.getVPC(ctx, acct, old.VPCID)
			if err != nil {
				return "", err
			}
			old.Main, old.MainAssociationID = false, ""
			nt.Main, nt.MainAssociationID = true, newAssoc
			vpc.MainRouteTableID = nt.ID
			ops = append(ops, store.OpCompareAndSwap(vpcKey(acct, vpc.ID), vpc, vrev))
		} else {
			subnet := a.SubnetID
			if nt.ID == old.ID {
				old.Associations = removeAssoc(old.Associations, assocID)
				old.Associations = append(old.Associations, RouteTableAssociation{ID: newAssoc, SubnetID: subnet})
				nt = old
			} else {
				old.Associations = removeAssoc(old.Associations, assocID)
				nt.Associations = append(nt.Associations, RouteTableAssociation{ID: newAssoc, SubnetID: subnet})
			}
			ops = append(ops, store.OpPut(rtbSubnetKey(subnet), rtbSubnetIndex{RouteTableID: nt.ID, AssociationID: newAssoc}))
		}
		ops = append(ops, store.OpCompareAndSwap(rtbKey(acct, nt.ID), nt, nrev))
		if nt.ID != old.ID {
			ops = append(ops, store.OpCompareAndSwap(rtbKey(acct, old.ID), old, orev))
		}
		_, err = f.st.Txn(ctx, ops...)
		if (errors.Is(err, store.ErrConflict) || errors.Is(err, store.ErrNotFound)) && try < 8 {
			continue
		}
		if err != nil {
			return "", fmt.Errorf("replacing association %s: %w", assocID, err)
		}
		return newAssoc, f.changed(ctx, acct, nt.VPCID)
	}
}
