package netfab

import (
	"context"
	"errors"
	"fmt"
	"net/netip"
	"slices"
	"sort"

	"github.com/labcloud/labcloud/internal/errdefs"
	"github.com/labcloud/labcloud/internal/store"
	"github.com/vishvananda/netlink"
)

// MaxVPCsPerAccount is AWS's default quota of VPCs per region; the
// default VPC counts.
const MaxVPCsPerAccount = 5

// reservedRanges are IPv4 blocks AWS refuses as VPC CIDRs.
var reservedRanges = []netip.Prefix{
	netip.MustParsePrefix("0.0.0.0/8"),
	netip.MustParsePrefix("127.0.0.0/8"),
	netip.MustParsePrefix("169.254.0.0/16"),
	netip.MustParsePrefix("224.0.0.0/4"),
	netip.MustParsePrefix("240.0.0.0/4"),
}

// CreateVPCInput asks for a new VPC.
type CreateVPCInput struct {
	AccountID string
	// CIDR is an IPv4 network address with a /16 to /28 prefix.
	CIDR string
	// InstanceTenancy is "default" (when empty) or "dedicated".
	InstanceTenancy string
}

// parseNetwork parses an IPv4 CIDR block that must be its own network
// address (10.0.0.0/16, not 10.0.0.1/16), as EC2 requires.
func vpcParseNetwork(param, s string) (netip.Prefix, error) {
	p, err := netip.ParsePrefix(s)
	if err != nil || !p.Addr().Is4() || p.Masked() != p {
		return netip.Prefix{}, errdefs.InvalidParameter("InvalidParameterValue",
			"Value (%s) for parameter %s is invalid. This is not a valid CIDR block: give an IPv4 network address such as 10.0.0.0/16.", s, param)
	}
	return p, nil
}

// CreateVPC records a VPC and the objects it is born with (main route
// table, default network ACL, default security group) in one
// transaction, then builds its namespace.
func (f *Fabric) CreateVPC(ctx context.Context, in CreateVPCInput) (VPC, error) {
	if in.AccountID == "" {
		return VPC{}, errdefs.InvalidParameter("", "an account ID is required")
	}
	if in.CIDR == "" {
		return VPC{}, errdefs.New(errdefs.ClassMissingParameter, "MissingParameter", "The request must contain the parameter CidrBlock")
	}
	p, err := vpcParseNetwork("cidrBlock", in.CIDR)
	if err != nil {
		return VPC{}, err
	}
	if p.Bits() < 16 || p.Bits() > 28 {
		return VPC{}, errdefs.InvalidParameter("InvalidVpc.Range",
			"The CIDR '%s' is invalid: a VPC's block must be between /16 and /28.", in.CIDR)
	}
	for _, r := range reservedRanges {
		if r.Overlaps(p) {
			return VPC{}, errdefs.InvalidParameter("InvalidVpc.Range", "The CIDR '%s' is invalid: it lies in the reserved range %s; use an RFC 1918 block such as 10.0.0.0/16.", in.CIDR, r)
		}
	}
	if f.pub.Overlaps(p) {
		return VPC{}, errdefs.InvalidParameter("InvalidVpc.Range", "The CIDR '%s' is invalid: it overlaps this lab's public address pool %s; use an RFC 1918 block such as 10.0.0.0/16.", in.CIDR, f.pub)
	}
	switch in.InstanceTenancy {
	case "":
		in.InstanceTenancy = "default"
	case "default", "dedicated":
	default:
		return VPC{}, errdefs.InvalidParameter("InvalidParameterValue", "Value (%s) for parameter instanceTenancy is invalid: use default or dedicated.", in.InstanceTenancy)
	}
	var vpc VPC
	for try := 0; ; try++ {
		guard, err := f.quotaGuard(ctx, "vpc", in.AccountID)
		if err != nil {
			return VPC{}, err
		}
		vpcs, err := f.ListVPCs(ctx, in.AccountID)
		if err != nil {
			return VPC{}, err
		}
		// The default VPC counts, made yet or not: it is made at the
		// account's first launch, and must then still fit.
		reserved := 1
		if slices.ContainsFunc(vpcs, func(v VPC) bool { return v.IsDefault }) {
			reserved = 0
		}
		if len(vpcs)+reserved >= MaxVPCsPerAccount {
			return VPC{}, errdefs.LimitExceeded("VpcLimitExceeded", "The maximum number of VPCs has been reached (%d per region, the default VPC included); delete a VPC first.", MaxVPCsPerAccount)
		}
		vpc = VPC{ID: newID("vpc"), AccountID: in.AccountID, CIDR: p.String(), InstanceTenancy: in.InstanceTenancy,
			EnableDNSSupport: true}
		vpc.Namespace = f.nsName(vpc.ID)
		d, ops := newVPCDefaults(in.AccountID, vpc.ID, false)
		vpc.MainRouteTableID, vpc.DefaultNetworkACLID, vpc.DefaultSecurityGroupID = d.RouteTable.ID, d.NetworkACL.ID, d.SecurityGroup.ID
		ops = append(ops, guard, store.OpCreate(vpcKey(in.AccountID, vpc.ID), vpc))
		_, err = f.st.Txn(ctx, ops...)
		if err == nil {
			break
		}
		if !errors.Is(err, store.ErrConflict) || try > 16 {
			return VPC{}, fmt.Errorf("recording VPC %s: %w", vpc.ID, err)
		}
	}
	f.log.Info("created VPC", "account", in.AccountID, "vpc", vpc.ID, "cidr", vpc.CIDR)
	if err := f.changed(ctx, in.AccountID, vpc.ID); err != nil {
		return VPC{}, err
	}
	return vpc, nil
}

// ListVPCs returns the account's VPCs, sorted by ID.
func (f *Fabric) ListVPCs(ctx context.Context, acct string) ([]VPC, error) {
	vpcs, err := store.ListAs[VPC](ctx, f.st, "vpcs/"+acct+"/")
	if err != nil {
		return nil, err
	}
	sort.Slice(vpcs, func(i, j int) bool { return vpcs[i].ID < vpcs[j].ID })
	return vpcs, nil
}

// GetVPC returns one VPC of the account.
func (f *Fabric) GetVPC(ctx context.Context, acct, id string) (VPC, error) {
	v, _, err := f.getVPC(ctx, acct, id)
	return v, err
}

func (f *Fabric) getVPC(ctx context.Context, acct, id string) (VPC, int64, error) {
	v, rev, err := store.Load[VPC](ctx, f.st, vpcKey(acct, id))
	if errors.Is(err, store.ErrNotFound) {
		return VPC{}, 0, errdefs.NotFound("InvalidVpcID.NotFound", "The vpc ID '%s' does not exist", id)
	}
	return v, rev, err
}

func vpcDependency(format string, args ...any) error {
	return errdefs.New(errdefs.ClassConflict, "DependencyViolation", format, args...)
}

// DeleteVPC removes a VPC that holds nothing but its default objects, as
// AWS requires (DependencyViolation otherwise), then its namespace.
func (f *Fabric) DeleteVPC(ctx context.Context, acct, id string) error {
	vpc, rev, err := f.getVPC(ctx, acct, id)
	if err != nil {
		return err
	}
	dep := func(what string) error {
		return vpcDependency("The vpc '%s' has dependencies and cannot be deleted: %s", id, what)
	}
	subnets, err := store.ListAs[subnetRecord](ctx, f.st, "subnets/"+acct+"/")
	if err != nil {
		return err
	}
	for _, s := range subnets {
		if s.VPCID == id {
			return dep("delete subnet " + s.ID + " first")
		}
	}
	var igw igwVPCIndex
	if _, err := f.st.Get(ctx, igwVPCKey(id), &igw); err == nil {
		return dep("detach internet gateway " + igw.InternetGatewayID + " first")
	} else if !errors.Is(err, store.ErrNotFound) {
		return err
	}
	nats, err := store.ListAs[NatGateway](ctx, f.st, "natgws/"+acct+"/")
	if err != nil {
		return err
	}
	for _, n := range nats {
		if n.VPCID == id && natHolds(n) {
			return dep("delete NAT gateway " + n.ID + " first")
		}
	}
	enis, err := store.ListAs[ENI](ctx, f.st, "enis/"+acct+"/")
	if err != nil {
		return err
	}
	for _, e := range enis {
		if e.VPCID == id {
			return dep("network interface " + e.ID + " is still in it")
		}
	}
	ops := []store.Op{store.OpDeleteIf(vpcKey(acct, id), rev)}
	rtbs, err := store.ListAs[RouteTable](ctx, f.st, "rtbs/"+acct+"/")
	if err != nil {
		return err
	}
	for _, t := range rtbs {
		if t.VPCID != id {
			continue
		}
		if !t.Main {
			return dep("delete route table " + t.ID + " first")
		}
		ops = append(ops, store.OpDelete(rtbKey(acct, t.ID)))
	}
	sgs, err := store.ListAs[SecurityGroup](ctx, f.st, "sgs/"+acct+"/")
	if err != nil {
		return err
	}
	for _, g := range sgs {
		if g.VPCID != id {
			continue
		}
		if !g.IsDefault {
			return dep("delete security group " + g.ID + " first")
		}
		ops = append(ops, store.OpDelete(sgKey(acct, g.ID)), store.OpDelete(sgNameKey(id, g.Name)))
	}
	acls, err := store.ListAs[NetworkACL](ctx, f.st, "nacls/"+acct+"/")
	if err != nil {
		return err
	}
	for _, a := range acls {
		if a.VPCID != id {
			continue
		}
		// AWS deletes a VPC's custom network ACLs along with it.
		ops = append(ops, store.OpDelete(naclKey(acct, a.ID)))
	}
	if vpc.IsDefault {
		ops = append(ops, store.OpDelete(defaultKey(acct)))
	}
	if _, err := f.st.Txn(ctx, ops...); err != nil {
		if errors.Is(err, store.ErrConflict) || errors.Is(err, store.ErrNotFound) {
			return errdefs.Conflict("IncorrectState", "VPC %s changed while it was being deleted; try again", id)
		}
		return fmt.Errorf("deleting the records of VPC %s: %w", id, err)
	}
	f.log.Info("deleted VPC", "account", acct, "vpc", id)
	return f.removeVPC(ctx, vpc)
}

// removeVPC stops a deleted VPC's servers and removes its namespace (and
// with it every bridge, tap and veth inside).
func (f *Fabric) removeVPC(_ context.Context, vpc VPC) error {
	f.mu.Lock()
	if rt := f.vpcs[vpc.ID]; rt != nil {
		rt.stop()
		delete(f.vpcs, vpc.ID)
	}
	f.mu.Unlock()
	f.kmu.Lock()
	defer f.kmu.Unlock()
	if !netnsExists(vpc.Namespace) {
		return nil
	}
	_ = inNamespace(vpc.Namespace, func() error {
		links, err := netlink.LinkList()
		if err != nil {
			return err
		}
		for _, l := range links {
			if f.ourLink(l.Attrs().Name) {
				_ = netlink.LinkDel(l)
			}
		}
		return nil
	})
	return deleteNetns(vpc.Namespace)
}

// VPC attribute names as ModifyVpcAttribute and DescribeVpcAttribute
// spell them.
const (
	AttrEnableDNSSupport   = "enableDnsSupport"
	AttrEnableDNSHostnames = "enableDnsHostnames"
)

// SetVPCAttribute sets one boolean attribute (AttrEnableDNSSupport or
// AttrEnableDNSHostnames) of a VPC.
func (f *Fabric) SetVPCAttribute(ctx context.Context, acct, id, attr string, value bool) (VPC, error) {
	if attr != AttrEnableDNSSupport && attr != AttrEnableDNSHostnames {
		return VPC{}, errdefs.InvalidParameter("InvalidParameterValue", "Value (%s) for parameter attribute is invalid: use enableDnsSupport or enableDnsHostnames.", attr)
	}
	v, err := store.Update(ctx, f.st, vpcKey(acct, id), func(v *VPC) error {
		if attr == AttrEnableDNSSupport {
			v.EnableDNSSupport = value
		} else {
			v.EnableDNSHostnames = value
		}
		return nil
	})
	if errors.Is(err, store.ErrNotFound) {
		return VPC{}, errdefs.NotFound("InvalidVpcID.NotFound", "The vpc ID '%s' does not exist", id)
	}
	if err != nil {
		return VPC{}, err
	}
	return v, f.changed(ctx, acct, id)
}

// Exists reports whether id names a VPC-fabric resource of the account
// (vpc-, subnet-, rtb-, igw-, eipalloc-, nat-, eni-, sg-, acl-): what the
// tag store's Register needs to make those taggable.
func (f *Fabric) Exists(ctx context.Context, acct, id string) (bool, error) {
	var key string
	switch kind, _, _ := vpcCutKind(id); kind {
	case "vpc":
		key = vpcKey(acct, id)
	case "subnet":
		key = subnetKey(acct, id)
	case "rtb":
		key = rtbKey(acct, id)
	case "igw":
		key = igwKey(acct, id)
	case "eipalloc":
		key = eipKey(acct, id)
	case "nat":
		key = natKey(acct, id)
	case "eni":
		key = eniKey(acct, id)
	case "sg":
		key = sgKey(acct, id)
	case "acl":
		key = naclKey(acct, id)
	default:
		return false, nil
	}
	var raw map[string]any
	_, err := f.st.Get(ctx, key, &raw)
	if errors.Is(err, store.ErrNotFound) {
		return false, nil
	}
	return err == nil, err
}

func vpcCutKind(id string) (kind, rest string, ok bool) {
	for i := len(id) - 1; i >= 0; i-- {
		if id[i] == '-' {
			return id[:i], id[i+1:], true
		}
	}
	return "", id, false
}

// zoneID is the AZ ID of a zone, numbered as internal/cloud does
// ("lab1-az1" for the first zone of lab-1).
func (f *Fabric) zoneID(zone string) string {
	for i, z := range f.zones {
		if z == zone {
			return fmt.Sprintf("%s-az%d", vpcRemoveDashes(f.region), i+1)
		}
	}
	return ""
}

func vpcRemoveDashes(s string) string {
	out := make([]byte, 0, len(s))
	for i := 0; i < len(s); i++ {
		if s[i] != '-' {
			out = append(out, s[i])
		}
	}
	return string(out)
}

// quotaSeq is the value at quota-seq/<kind>/<acct>: a counter that no
// record reads, bumped (compare-and-swap) in the transaction of every
// create an account quota counts. Two concurrent creates that both
// counted room for one more thus conflict, and the loser counts again:
// the quota holds under concurrency without a lock.
type quotaSeq struct{ N int64 }

func quotaSeqKey(kind, acct string) string { return "quota-seq/" + kind + "/" + acct }

// quotaGuard reads the counter (call it before counting) and returns the
// op that bumps it.
func (f *Fabric) quotaGuard(ctx context.Context, kind, acct string) (store.Op, error) {
	var q quotaSeq
	rev, err := f.st.Get(ctx, quotaSeqKey(kind, acct), &q)
	if err != nil && !errors.Is(err, store.ErrNotFound) {
		return store.Op{}, err
	}
	q.N++
	return store.OpCompareAndSwap(quotaSeqKey(kind, acct), q, rev), nil
}
