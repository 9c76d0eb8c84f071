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

// reservedPerSubnet is how many addresses AWS keeps in every subnet:
// network, router, DNS, future use and broadcast.
const reservedPerSubnet = 5

// CreateSubnetInput asks for a subnet in a VPC.
type CreateSubnetInput struct {
	AccountID, VPCID, CIDR string
	// AvailabilityZone or AvailabilityZoneID picks the zone; neither
	// picks the first one.
	AvailabilityZone, AvailabilityZoneID string
}

// SubnetView is a subnet as DescribeSubnets shows it.
type SubnetView struct {
	Subnet
	AccountID          string
	AvailabilityZoneID string
	// AvailableIPAddressCount is the size less the 5 reserved addresses
	// and those network interfaces use.
	AvailableIPAddressCount int
}

// CreateSubnet records a subnet inside its VPC's block, on a bridge of its
// own, and builds the bridge. The VPC record is compared-and-swapped in
// the same transaction, so two concurrent creates cannot both pass the
// overlap check, nor a create pass a concurrent DeleteVPC.
func (f *Fabric) CreateSubnet(ctx context.Context, in CreateSubnetInput) (SubnetView, error) {
	if in.VPCID == "" {
		return SubnetView{}, errdefs.New(errdefs.ClassMissingParameter, "MissingParameter", "The request must contain the parameter VpcId")
	}
	if in.CIDR == "" {
		return SubnetView{}, errdefs.New(errdefs.ClassMissingParameter, "MissingParameter", "The request must contain the parameter CidrBlock")
	}
	zone, err := f.pickZone(in.AvailabilityZone, in.AvailabilityZoneID)
	if err != nil {
		return SubnetView{}, err
	}
	p, err := vpcParseNetwork("cidrBlock", in.CIDR)
	if err != nil {
		return SubnetView{}, err
	}
	for try := 0; ; try++ {
		vpc, rev, err := f.getVPC(ctx, in.AccountID, in.VPCID)
		if err != nil {
			return SubnetView{}, err
		}
		vp := netip.MustParsePrefix(vpc.CIDR)
		if p.Bits() < 16 || p.Bits() > 28 || p.Bits() < vp.Bits() || !vp.Contains(p.Addr()) {
			return SubnetView{}, errdefs.InvalidParameter("InvalidSubnet.Range",
				"The CIDR '%s' is invalid: a subnet's block must lie inside its VPC's %s and be between /16 and /28.", in.CIDR, vpc.CIDR)
		}
		all, err := store.ListAs[subnetRecord](ctx, f.st, "subnets/"+in.AccountID+"/")
		if err != nil {
			return SubnetView{}, err
		}
		for _, s := range all {
			if s.VPCID == vpc.ID && netip.MustParsePrefix(s.CIDR).Overlaps(p) {
				return SubnetView{}, errdefs.Conflict("InvalidSubnet.Conflict",
					"The CIDR '%s' conflicts with another subnet (%s, %s); pick a block that overlaps no subnet of %s.", in.CIDR, s.ID, s.CIDR, vpc.ID)
			}
		}
		s := subnetRecord{
			Subnet: Subnet{ID: newID("subnet"), VPCID: vpc.ID, AvailabilityZone: zone, CIDR: p.String(),
				RouterIP: addrN(p, 1).String(), NetworkACLID: vpc.DefaultNetworkACLID, NetworkACLAssociationID: newID("aclassoc")},
			AccountID: in.AccountID, BridgeMAC: newMAC(),
		}
		s.Bridge = f.bridgeName(s.ID)
		clash := false
		for _, o := range all {
			clash = clash || (o.VPCID == vpc.ID && o.Bridge == s.Bridge)
		}
		if clash {
			continue // 8 hex digits of the ID collided: draw another
		}
		_, err = f.st.Txn(ctx, store.OpCompareAndSwap(vpcKey(in.AccountID, vpc.ID), vpc, rev), store.OpCreate(subnetKey(in.AccountID, s.ID), s))
		if err != nil {
			if (errors.Is(err, store.ErrConflict) || errors.Is(err, store.ErrExists)) && try < 8 {
				continue
			}
			return SubnetView{}, fmt.Errorf("recording subnet in %s: %w", vpc.ID, err)
		}
		f.log.Info("created subnet", "vpc", vpc.ID, "subnet", s.ID, "cidr", s.CIDR, "zone", zone)
		if err := f.changed(ctx, in.AccountID, vpc.ID); err != nil {
			return SubnetView{}, err
		}
		return f.subnetView(s, nil), nil
	}
}

// pickZone resolves a zone name or ID to a zone name; neither given picks
// the first zone (AWS picks one for you).
func (f *Fabric) pickZone(name, id string) (string, error) {
	if name != "" && id != "" {
		return "", errdefs.InvalidParameter("InvalidParameterCombination", "Give AvailabilityZone or AvailabilityZoneId, not both.")
	}
	for _, z := range f.zones {
		if name == z || (id != "" && f.zoneID(z) == id) {
			return z, nil
		}
	}
	if name != "" {
		return "", errdefs.InvalidParameter("InvalidParameterValue", "Value (%s) for parameter availabilityZone is invalid. Subnets can currently only be created in the following availability zones: %s.", name, vpcJoin(f.zones))
	}
	if id != "" {
		var ids []string
		for _, z := range f.zones {
			ids = append(ids, f.zoneID(z))
		}
		return "", errdefs.InvalidParameter("InvalidParameterValue", "Value (%s) for parameter availabilityZoneId is invalid. Subnets can currently only be created in the following availability zone ids: %s.", id, vpcJoin(ids))
	}
	return f.zones[0], nil
}

func vpcJoin(ss []string) string {
	out := ""
	for i, s := range ss {
		if i > 0 {
			out += ", "
		}
		out += s
	}
	return out
}

func (f *Fabric) subnetView(s subnetRecord, enis []ENI) SubnetView {
	used := 0
	for _, e := range enis {
		if e.SubnetID == s.ID {
			used++
		}
	}
	return SubnetView{Subnet: s.Subnet, AccountID: s.AccountID, AvailabilityZoneID: f.zoneID(s.AvailabilityZone),
		AvailableIPAddressCount: int(size(netip.MustParsePrefix(s.CIDR))) - reservedPerSubnet - used}
}

// ListSubnets returns the account's subnets, sorted by ID.
func (f *Fabric) ListSubnets(ctx context.Context, acct string) ([]SubnetView, error) {
	all, err := store.ListAs[subnetRecord](ctx, f.st, "subnets/"+acct+"/")
	if err != nil {
		return nil, err
	}
	enis, err := store.ListAs[ENI](ctx, f.st, "enis/"+acct+"/")
	if err != nil {
		return nil, err
	}
	out := make([]SubnetView, 0, len(all))
	for _, s := range all {
		out = append(out, f.subnetView(s, enis))
	}
	sort.Slice(out, func(i, j int) bool { return out[i].ID < out[j].ID })
	return out, nil
}

func (f *Fabric) getSubnet(ctx context.Context, acct, id string) (subnetRecord, int64, error) {
	s, rev, err := store.Load[subnetRecord](ctx, f.st, subnetKey(acct, id))
	if errors.Is(err, store.ErrNotFound) {
		return subnetRecord{}, 0, errdefs.NotFound("InvalidSubnetID.NotFound", "The subnet ID '%s' does not exist", id)
	}
	return s, rev, err
}

// SetMapPublicIPOnLaunch sets a subnet's MapPublicIpOnLaunch attribute.
func (f *Fabric) SetMapPublicIPOnLaunch(ctx context.Context, acct, id string, value bool) error {
	_, err := store.Update(ctx, f.st, subnetKey(acct, id), func(s *subnetRecord) error {
		s.MapPublicIPOnLaunch = value
		return nil
	})
	if errors.Is(err, store.ErrNotFound) {
		return errdefs.NotFound("InvalidSubnetID.NotFound", "The subnet ID '%s' does not exist", id)
	}
	return err
}

// DeleteSubnet removes a subnet without network interfaces or NAT
// gateways (DependencyViolation otherwise), its route table association
// and its bridge.
func (f *Fabric) DeleteSubnet(ctx context.Context, acct, id string) error {
	for try := 0; ; try++ {
		s, rev, err := f.getSubnet(ctx, acct, id)
		if err != nil {
			return err
		}
		enis, err := store.ListAs[ENI](ctx, f.st, "enis/"+acct+"/")
		if err != nil {
			return err
		}
		for _, e := range enis {
			if e.SubnetID == id {
				return vpcDependency("The subnet '%s' has dependencies and cannot be deleted: network interface %s is in it.", id, e.ID)
			}
		}
		nats, err := store.ListAs[NatGateway](ctx, f.st, "natgws/"+acct+"/")
		if err != nil {
			return err
		}
		for _, n := range nats {
			if n.SubnetID == id && natHolds(n) {
				return vpcDependency("The subnet '%s' has dependencies and cannot be deleted: delete NAT gateway %s first.", id, n.ID)
			}
		}
		ops := []store.Op{store.OpDeleteIf(subnetKey(acct, id), rev)}
		var idx rtbSubnetIndex
		irev, err := f.st.Get(ctx, rtbSubnetKey(id), &idx)
		switch {
		case err == nil:
			t, trev, err := store.Load[RouteTable](ctx, f.st, rtbKey(acct, idx.RouteTableID))
			if err == nil {
				t.Associations = removeAssoc(t.Associations, idx.AssociationID)
				ops = append(ops, store.OpCompareAndSwap(rtbKey(acct, t.ID), t, trev))
			} else if !errors.Is(err, store.ErrNotFound) {
				return err
			}
			ops = append(ops, store.OpDeleteIf(rtbSubnetKey(id), irev))
		case !errors.Is(err, store.ErrNotFound):
			return err
		}
		if _, err := f.st.Txn(ctx, ops...); err != nil {
			if (errors.Is(err, store.ErrConflict) || errors.Is(err, store.ErrNotFound)) && try < 8 {
				continue
			}
			return fmt.Errorf("deleting the records of subnet %s: %w", id, err)
		}
		f.log.Info("deleted subnet", "subnet", id, "vpc", s.VPCID)
		if err := f.removeSubnetLinks(ctx, s); err != nil {
			return err
		}
		return f.changed(ctx, acct, s.VPCID)
	}
}

func removeAssoc(as []RouteTableAssociation, id string) []RouteTableAssociation {
	out := []RouteTableAssociation{}
	for _, a := range as {
		if a.ID != id {
			out = append(out, a)
		}
	}
	return out
}

// removeSubnetLinks stops a deleted subnet's DHCP server and removes its
// bridge from the VPC namespace.
func (f *Fabric) removeSubnetLinks(_ context.Context, s subnetRecord) error {
	f.mu.Lock()
	var ns string
	if rt := f.vpcs[s.VPCID]; rt != nil {
		ns = rt.vpc.Namespace
		if d := rt.dhcp[s.ID]; d != nil {
			d.close()
			delete(rt.dhcp, s.ID)
		}
		delete(rt.subnets, s.ID)
	}
	f.mu.Unlock()
	if ns == "" {
		ns = f.nsName(s.VPCID)
	}
	f.kmu.Lock()
	defer f.kmu.Unlock()
	if !netnsExists(ns) {
		return nil
	}
	return inNamespace(ns, func() error { return deleteLink(s.Bridge) })
}
