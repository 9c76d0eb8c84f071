package netfab

import (
	"context"
	"errors"
	"fmt"
	"net/netip"
	"path/filepath"
	"sort"
	"strings"
	"time"

	"github.com/labcloud/labcloud/internal/errdefs"
	"github.com/labcloud/labcloud/internal/store"
)

// NatDeletedVisibleFor is how long a deleted (or failed) NAT gateway
// stays visible to DescribeNatGateways, as in AWS (about an hour).
const NatDeletedVisibleFor = time.Hour

// natHolds reports whether a NAT gateway still holds its subnet, address
// and VPC (deleted and failed ones hold nothing).
func natHolds(n NatGateway) bool { return n.State != "deleted" && n.State != "failed" }

func igwNotFound(id string) error {
	return errdefs.NotFound("InvalidInternetGatewayID.NotFound", "The internetGateway ID '%s' does not exist", id)
}

// CreateInternetGateway makes a detached internet gateway.
func (f *Fabric) CreateInternetGateway(ctx context.Context, acct string) (InternetGateway, error) {
	g := InternetGateway{ID: newID("igw"), AccountID: acct}
	if _, err := f.st.Create(ctx, igwKey(acct, g.ID), g); err != nil {
		return InternetGateway{}, fmt.Errorf("recording internet gateway: %w", err)
	}
	return g, nil
}

// ListInternetGateways returns the account's internet gateways by ID.
func (f *Fabric) ListInternetGateways(ctx context.Context, acct string) ([]InternetGateway, error) {
	all, err := store.ListAs[InternetGateway](ctx, f.st, "igws/"+acct+"/")
	if err != nil {
		return nil, err
	}
	sort.Slice(all, func(i, j int) bool { return all[i].ID < all[j].ID })
	return all, nil
}

func (f *Fabric) getIGW(ctx context.Context, acct, id string) (InternetGateway, int64, error) {
	g, rev, err := store.Load[InternetGateway](ctx, f.st, igwKey(acct, id))
	if errors.Is(err, store.ErrNotFound) {
		return InternetGateway{}, 0, igwNotFound(id)
	}
	return g, rev, err
}

// AttachInternetGateway attaches a detached gateway to a VPC that has
// none (one gateway per VPC, enforced by the igw-by-vpc index).
func (f *Fabric) AttachInternetGateway(ctx context.Context, acct, igwID, vpcID string) error {
	g, rev, err := f.getIGW(ctx, acct, igwID)
	if err != nil {
		return err
	}
	if _, _, err := f.getVPC(ctx, acct, vpcID); err != nil {
		return err
	}
	if g.VPCID != "" {
		return errdefs.Conflict("Resource.AlreadyAssociated", "resource %s is already attached to network %s", igwID, g.VPCID)
	}
	g.VPCID = vpcID
	_, err = f.st.Txn(ctx, store.OpCompareAndSwap(igwKey(acct, igwID), g, rev), store.OpCreate(igwVPCKey(vpcID), igwVPCIndex{InternetGatewayID: igwID}))
	if errors.Is(err, store.ErrExists) {
		var idx igwVPCIndex
		_, _ = f.st.Get(ctx, igwVPCKey(vpcID), &idx)
		return errdefs.InvalidParameter("InvalidParameterValue", "Network %s already has an internet gateway attached (%s); detach it first.", vpcID, idx.InternetGatewayID)
	}
	if errors.Is(err, store.ErrConflict) || errors.Is(err, store.ErrNotFound) {
		return errdefs.Conflict("IncorrectState", "internet gateway %s changed meanwhile; try again", igwID)
	}
	if err != nil {
		return err
	}
	return f.changed(ctx, acct, vpcID)
}

// DetachInternetGateway detaches a gateway from its VPC, unless public or
// Elastic IPs are still mapped in that VPC (DependencyViolation, as AWS).
func (f *Fabric) DetachInternetGateway(ctx context.Context, acct, igwID, vpcID string) error {
	g, rev, err := f.getIGW(ctx, acct, igwID)
	if err != nil {
		return err
	}
	if g.VPCID == "" || g.VPCID != vpcID {
		return errdefs.InvalidParameter("Gateway.NotAttached", "resource %s is not attached to network %s", igwID, vpcID)
	}
	enis, err := store.ListAs[ENI](ctx, f.st, "enis/"+acct+"/")
	if err != nil {
		return err
	}
	for _, e := range enis {
		if e.VPCID == vpcID && (e.PublicIP != "" || e.EIPAllocationID != "") {
			return vpcDependency("Network %s has some mapped public address(es). Please unmap those public address(es) before detaching the gateway.", vpcID)
		}
	}
	g.VPCID = ""
	_, err = f.st.Txn(ctx, store.OpCompareAndSwap(igwKey(acct, igwID), g, rev), store.OpDelete(igwVPCKey(vpcID)))
	if errors.Is(err, store.ErrConflict) || errors.Is(err, store.ErrNotFound) {
		return errdefs.Conflict("IncorrectState", "internet gateway %s changed meanwhile; try again", igwID)
	}
	if err != nil {
		return err
	}
	return f.changed(ctx, acct, vpcID)
}

// DeleteInternetGateway removes a detached gateway.
func (f *Fabric) DeleteInternetGateway(ctx context.Context, acct, igwID string) error {
	g, rev, err := f.getIGW(ctx, acct, igwID)
	if err != nil {
		return err
	}
	if g.VPCID != "" {
		return vpcDependency("The internetGateway '%s' has dependencies and cannot be deleted: detach it from %s first.", igwID, g.VPCID)
	}
	if _, err := f.st.Txn(ctx, store.OpDeleteIf(igwKey(acct, igwID), rev)); err != nil {
		if errors.Is(err, store.ErrConflict) || errors.Is(err, store.ErrNotFound) {
			return errdefs.Conflict("IncorrectState", "internet gateway %s changed meanwhile; try again", igwID)
		}
		return err
	}
	return nil
}

// CreateNatGatewayInput asks for a public NAT gateway.
type CreateNatGatewayInput struct {
	AccountID, SubnetID, AllocationID string
	// ConnectivityType is "public" (when empty); "private" is not
	// supported.
	ConnectivityType string
}

func natNotFound(id string) error {
	return errdefs.NotFound("NatGatewayNotFound", "NAT gateway %s was not found", id)
}

// CreateNatGateway records a NAT gateway in a subnet with an unassociated
// Elastic IP: its own private address (an interface record of type
// nat_gateway, without tap), the gateway and the Elastic IP's association
// in one transaction. Its state is available as soon as the records are
// written and the VPC is synced: there is no appliance to boot.
func (f *Fabric) CreateNatGateway(ctx context.Context, in CreateNatGatewayInput) (NatGateway, error) {
	acct := in.AccountID
	switch in.ConnectivityType {
	case "", "public":
	case "private":
		return NatGateway{}, errdefs.New(errdefs.ClassNotImplemented, "Unsupported", "labcloud has only public NAT gateways: give an AllocationId and ConnectivityType public")
	default:
		return NatGateway{}, errdefs.InvalidParameter("InvalidParameterValue", "Value (%s) for parameter ConnectivityType is invalid: use public.", in.ConnectivityType)
	}
	if in.SubnetID == "" {
		return NatGateway{}, errdefs.New(errdefs.ClassMissingParameter, "MissingParameter", "The request must contain the parameter SubnetId")
	}
	if in.AllocationID == "" {
		return NatGateway{}, errdefs.New(errdefs.ClassMissingParameter, "MissingParameter", "A public NAT gateway needs an AllocationId (an Elastic IP from AllocateAddress)")
	}
	sn, _, err := f.getSubnet(ctx, acct, in.SubnetID)
	if err != nil {
		return NatGateway{}, err
	}
	vpc, err := f.GetVPC(ctx, acct, sn.VPCID)
	if err != nil {
		return NatGateway{}, err
	}
	p := netip.MustParsePrefix(sn.CIDR)
	for try := 0; ; try++ {
		a, arev, err := f.findAddress(ctx, acct, in.AllocationID, "")
		if err != nil {
			return NatGateway{}, err
		}
		if a.AssociationID != "" {
			return NatGateway{}, errdefs.Conflict("Resource.AlreadyAssociated", "Elastic IP address [%s] is already associated (%s); disassociate it or allocate another.", in.AllocationID, a.AssociationID)
		}
		var igw igwVPCIndex
		if _, err := f.st.Get(ctx, igwVPCKey(vpc.ID), &igw); errors.Is(err, store.ErrNotFound) {
			// AWS accepts the request and the gateway fails: it is
			// visible, state failed, for an hour, and holds nothing.
			n := NatGateway{ID: newID("nat"), AccountID: acct, VPCID: vpc.ID, SubnetID: sn.ID, AllocationID: a.AllocationID,
				PublicIP: a.PublicIP, State: "failed", CreateTime: time.Now().UTC().Format(time.RFC3339),
				FailureCode: "Gateway.NotAttached", FailureMessage: "Network " + vpc.ID + " has no Internet gateway attached"}
			if _, err := f.st.Create(ctx, natKey(acct, n.ID), n); err != nil {
				return NatGateway{}, fmt.Errorf("recording NAT gateway: %w", err)
			}
			return n, nil
		} else if err != nil {
			return NatGateway{}, err
		}
		used, err := f.st.List(ctx, "enis-by-ip/"+vpc.ID+"/")
		if err != nil {
			return NatGateway{}, err
		}
		taken := map[string]bool{}
		for _, kv := range used {
			taken[kv.Key[strings.LastIndexByte(kv.Key, '/')+1:]] = true
		}
		var ip netip.Addr
		for n := uint32(4); n < size(p)-1; n++ {
			if x := addrN(p, n); !taken[x.String()] {
				ip = x
				break
			}
		}
		if !ip.IsValid() {
			return NatGateway{}, errdefs.New(errdefs.ClassLimitExceeded, "InsufficientFreeAddressesInSubnet", "subnet %s (%s) has no free address left for the NAT gateway", sn.ID, sn.CIDR)
		}
		e := ENI{ID: newID("eni"), AccountID: acct, VPCID: vpc.ID, SubnetID: sn.ID, AvailabilityZone: sn.AvailabilityZone,
			MAC: newMAC(), PrivateIP: ip.String(), Namespace: vpc.Namespace, NetNSPath: filepath.Join(netnsDir, vpc.Namespace),
			InterfaceType: "nat_gateway", EIPAllocationID: a.AllocationID, NoSourceDestCheck: true}
		n := NatGateway{ID: newID("nat"), AccountID: acct, VPCID: vpc.ID, SubnetID: sn.ID, AllocationID: a.AllocationID,
			PublicIP: a.PublicIP, NetworkInterfaceID: e.ID, PrivateIP: e.PrivateIP, State: "available",
			CreateTime: time.Now().UTC().Format(time.RFC3339)}
		e.Description = "Interface for NAT Gateway " + n.ID
		a.AssociationID, a.NetworkInterfaceID, a.PrivateIP = newID("eipassoc"), e.ID, e.PrivateIP
		_, err = f.st.Txn(ctx,
			store.OpCreate(ipKey(vpc.ID, e.PrivateIP), ipIndex{AccountID: acct, ENIID: e.ID}),
			store.OpCreate(eniKey(acct, e.ID), e),
			store.OpCompareAndSwap(eipKey(acct, a.AllocationID), a, arev),
			store.OpCreate(natKey(acct, n.ID), n))
		if (errors.Is(err, store.ErrExists) || errors.Is(err, store.ErrConflict)) && try < 8 {
			continue
		}
		if err != nil {
			return NatGateway{}, fmt.Errorf("recording NAT gateway: %w", err)
		}
		f.log.Info("created NAT gateway", "nat", n.ID, "subnet", sn.ID, "public", n.PublicIP, "private", n.PrivateIP)
		return n, f.changed(ctx, acct, vpc.ID)
	}
}

// ListNatGateways returns the account's NAT gateways by ID, deleted ones
// only for NatDeletedVisibleFor after their deletion.
func (f *Fabric) ListNatGateways(ctx context.Context, acct string) ([]NatGateway, error) {
	all, err := store.ListAs[NatGateway](ctx, f.st, "natgws/"+acct+"/")
	if err != nil {
		return nil, err
	}
	out := []NatGateway{}
	for _, n := range all {
		since := ""
		switch n.State {
		case "deleted":
			since = n.DeleteTime
		case "failed":
			since = n.CreateTime
		}
		if t, err := time.Parse(time.RFC3339, since); err == nil && time.Since(t) > NatDeletedVisibleFor {
			continue
		}
		out = append(out, n)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].ID < out[j].ID })
	return out, nil
}

// DeleteNatGateway marks a NAT gateway deleted and frees its private
// address and its Elastic IP's association in one transaction; the
// record stays (state deleted) for NatDeletedVisibleFor.
func (f *Fabric) DeleteNatGateway(ctx context.Context, acct, id string) (NatGateway, error) {
	for try := 0; ; try++ {
		n, rev, err := store.Load[NatGateway](ctx, f.st, natKey(acct, id))
		if errors.Is(err, store.ErrNotFound) {
			return NatGateway{}, natNotFound(id)
		}
		if err != nil {
			return NatGateway{}, err
		}
		if n.State == "deleted" {
			return n, nil
		}
		// A failed gateway never held an address or an interface.
		ops, err := f.natReleaseOps(ctx, n)
		if err != nil {
			return NatGateway{}, err
		}
		n.State, n.DeleteTime = "deleted", time.Now().UTC().Format(time.RFC3339)
		ops = append(ops, store.OpCompareAndSwap(natKey(acct, id), n, rev))
		_, err = f.st.Txn(ctx, ops...)
		if (errors.Is(err, store.ErrConflict) || errors.Is(err, store.ErrNotFound)) && try < 8 {
			continue
		}
		if err != nil {
			return NatGateway{}, fmt.Errorf("deleting NAT gateway %s: %w", id, err)
		}
		f.log.Info("deleted NAT gateway", "nat", id)
		return n, f.changed(ctx, acct, n.VPCID)
	}
}

// NetworkInterfaceView is an interface as DescribeNetworkInterfaces
// shows it.
type NetworkInterfaceView struct {
	ENI
	// Groups pairs each security group ID with its name.
	Groups []ENIGroup
	// PublicIP is the auto-assigned or Elastic IP; with an Elastic IP,
	// AllocationID and AssociationID are set.
	PublicIP, AllocationID, AssociationID string
}

// ENIGroup is a security group's ID and name.
type ENIGroup struct{ ID, Name string }

// NetworkInterfaces returns the account's interfaces (instances' and NAT
// gateways'), sorted by ID.
func (f *Fabric) NetworkInterfaces(ctx context.Context, acct string) ([]NetworkInterfaceView, error) {
	enis, err := store.ListAs[ENI](ctx, f.st, "enis/"+acct+"/")
	if err != nil {
		return nil, err
	}
	sgs, err := store.ListAs[SecurityGroup](ctx, f.st, "sgs/"+acct+"/")
	if err != nil {
		return nil, err
	}
	eips, err := f.ListAddresses(ctx, acct)
	if err != nil {
		return nil, err
	}
	vpcs, err := f.ListVPCs(ctx, acct)
	if err != nil {
		return nil, err
	}
	names, defaults := map[string]string{}, map[string]string{}
	for _, g := range sgs {
		names[g.ID] = g.Name
	}
	for _, v := range vpcs {
		defaults[v.ID] = v.DefaultSecurityGroupID
	}
	byAlloc := map[string]Address{}
	for _, a := range eips {
		byAlloc[a.AllocationID] = a
	}
	out := make([]NetworkInterfaceView, 0, len(enis))
	for _, e := range enis {
		v := NetworkInterfaceView{ENI: e, PublicIP: e.PublicIP, Groups: []ENIGroup{}}
		if a, ok := byAlloc[e.EIPAllocationID]; ok && e.EIPAllocationID != "" {
			v.PublicIP, v.AllocationID, v.AssociationID = a.PublicIP, a.AllocationID, a.AssociationID
		}
		groups := e.Groups
		if len(groups) == 0 && e.InterfaceType == "" && defaults[e.VPCID] != "" {
			// Interfaces made before security groups were recorded
			// are in their VPC's default group, as CreateENI's callers
			// ask.
			groups = []string{defaults[e.VPCID]}
		}
		for _, g := range groups {
			v.Groups = append(v.Groups, ENIGroup{ID: g, Name: names[g]})
		}
		out = append(out, v)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].ID < out[j].ID })
	return out, nil
}

// natReleaseOps are the ops that free a NAT gateway's Elastic IP
// association and its interface (none for a failed gateway).
func (f *Fabric) natReleaseOps(ctx context.Context, n NatGateway) ([]store.Op, error) {
	acct := n.AccountID
	ops := []store.Op{}
	if n.NetworkInterfaceID == "" {
		return ops, nil
	}
	a, arev, err := store.Load[Address](ctx, f.st, eipKey(acct, n.AllocationID))
	switch {
	case err == nil && a.NetworkInterfaceID == n.NetworkInterfaceID:
		a.AssociationID, a.NetworkInterfaceID, a.PrivateIP, a.InstanceID = "", "", "", ""
		ops = append(ops, store.OpCompareAndSwap(eipKey(acct, a.AllocationID), a, arev))
	case err != nil && !errors.Is(err, store.ErrNotFound):
		return nil, err
	}
	_, erev, err := store.Load[ENI](ctx, f.st, eniKey(acct, n.NetworkInterfaceID))
	switch {
	case err == nil:
		ops = append(ops, store.OpDeleteIf(eniKey(acct, n.NetworkInterfaceID), erev), store.OpDelete(ipKey(n.VPCID, n.PrivateIP)))
	case !errors.Is(err, store.ErrNotFound):
		return nil, err
	}
	return ops, nil
}
