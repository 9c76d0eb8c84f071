package netfab

import (
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"log/slog"
	"net/netip"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/labcloud/labcloud/internal/errdefs"
	"github.com/labcloud/labcloud/internal/store"
	"github.com/vishvananda/netlink"
)

// Options configure a Fabric.
type Options struct {
	// Store holds the records: vpcs/<acct>/<vpc-id>,
	// subnets/<acct>/<subnet-id>, enis/<acct>/<eni-id>, the indexes
	// enis-by-ip/<vpc-id>/<ip>, enis-by-instance/<acct>/<instance-id> and
	// default-vpcs/<acct>.
	Store *store.Store
	// Zones are the AZ names, e.g. lab-1a, lab-1b, lab-1c; the region is
	// the first zone's name without its last letter.
	Zones []string
	// NamePrefix starts every netns and interface name this Fabric makes,
	// so that two daemons or tests never collide: 1-6 lower-case letters
	// or digits, default "lc".
	NamePrefix string
	// Metadata tells the metadata service who a caller is.
	Metadata MetadataSource
	// APIAddr is the daemon's API listener (host:port in the host
	// namespace); when set, every VPC proxies 169.254.169.254:APIPort to
	// it so that instances can call the API.
	APIAddr string
	// PublicGateway is the internet's next hop on the public bridge;
	// invalid (the zero Addr) means there is no internet.
	PublicGateway netip.Addr
	Logger        *slog.Logger
	// DNSUpstream, "host:port", is where the VPC resolvers forward names
	// they do not own. Empty (the default): such names get REFUSED at
	// once, since a lab host usually has no resolver to offer.
	DNSUpstream string
	// PublicIPv4 returns the public IPv4 address of an ENI (the invalid
	// netip.Addr for none), so that the VPC resolvers answer its public
	// DNS name. It must be cheap (in memory): it runs for every ENI on a
	// public-name query. Nil: no public names. Return none when the
	// VPC's enableDnsHostnames is false.
	PublicIPv4 func(ENI) netip.Addr
	// PublicCIDR is the pool of public and Elastic IPs (an IPv4 prefix
	// of /16 to /29), default 203.0.113.0/24. base+1 is the host end of
	// the public bridge; addresses base+10 to broadcast-1 are handed
	// out, so base+2..9 stay free for the host's own uses (an "internet"
	// gateway in tests).
	PublicCIDR netip.Prefix
	// Uplink names a real interface of the host (e.g. eno1) through
	// which instances with public IPs reach the real network: the pool is
	// masqueraded out of it and the internet gateways' next hop becomes
	// the public bridge's own address (netfab/uplink.go). Empty (the
	// default and in every test): nothing leaves the host. It cannot be
	// combined with PublicGateway.
	Uplink string
}

// VPC is a virtual network: a network namespace acting as its router.
type VPC struct {
	ID, AccountID, CIDR, Namespace string
	IsDefault                      bool
	// InstanceTenancy is "default" or "dedicated" (recorded only: all
	// instances of a lab host share it).
	InstanceTenancy string `json:",omitempty"`
	// The objects every VPC is born with (records.go).
	MainRouteTableID, DefaultNetworkACLID, DefaultSecurityGroupID string `json:",omitempty"`
	// EnableDNSSupport and EnableDNSHostnames are the VPC attributes of
	// the same names (both true in a default VPC; a new VPC has support
	// only).
	EnableDNSSupport, EnableDNSHostnames bool     `json:",omitempty"`
	Subnets                              []Subnet `json:",omitempty"`
}

// Subnet is a bridge in the VPC namespace holding RouterIP (base+1).
type Subnet struct {
	ID, VPCID, AvailabilityZone, CIDR, Bridge, RouterIP string
	DefaultForAz                                        bool
	// MapPublicIPOnLaunch gives instances launched here a public IP
	// (true in default subnets).
	MapPublicIPOnLaunch bool `json:",omitempty"`
	// NetworkACLID and NetworkACLAssociationID: the subnet's network ACL
	// (every subnet has exactly one; the VPC's default until replaced).
	NetworkACLID, NetworkACLAssociationID string `json:",omitempty"`
}

// ENIRequest asks for a network interface in a subnet.
type ENIRequest struct {
	AccountID, SubnetID, InstanceID, Description string
	// Groups are its security groups (1-5 of the subnet's VPC); none
	// means the VPC's default group.
	Groups []string
	// AssociatePublicIP asks for an auto-assigned public IP from the
	// pool; nil follows the subnet's MapPublicIpOnLaunch, as
	// RunInstances' AssociatePublicIpAddress does.
	AssociatePublicIP *bool
}

// ENI is an instance's network interface: a tap named Tap inside the VPC
// namespace Namespace (mounted at NetNSPath), on the subnet's bridge. QEMU
// joins that namespace and opens the tap by name.
type ENI struct {
	ID, AccountID, VPCID, SubnetID, AvailabilityZone, InstanceID, MAC, PrivateIP, Tap, Namespace, NetNSPath string
	Description                                                                                             string `json:",omitempty"`
	// Groups are its security groups (1-5).
	Groups []string `json:",omitempty"`
	// PublicIP is the auto-assigned public IP (released on stop and
	// termination); an Elastic IP association replaces it and is kept in
	// EIPAllocationID.
	PublicIP        string `json:",omitempty"`
	EIPAllocationID string `json:",omitempty"`
	// NoSourceDestCheck is EC2's SourceDestCheck=false (NAT instances,
	// appliances): the filter lets the ENI send from any source address
	// and gives it what routes send to it (nft.ENI.NoSourceDestCheck).
	NoSourceDestCheck bool `json:",omitempty"`
	// InterfaceType is "" for an instance's interface and "nat_gateway"
	// for a NAT gateway's address, which has no tap.
	InterfaceType string `json:",omitempty"`
}

// subnetRecord is a Subnet as stored, with its owner.
type subnetRecord struct {
	Subnet
	AccountID string
	BridgeMAC string
}

// ipIndex is an enis-by-ip/<vpc-id>/<ip> entry.
type ipIndex struct{ AccountID, ENIID string }

// defaultVPCIndex is a default-vpcs/<acct> entry; creating it in the same
// transaction as the VPC makes EnsureDefaultVPC race-free.
type defaultVPCIndex struct{ VPCID string }

// Fabric builds VPCs onto this host and runs their DHCP and metadata
// servers. It is safe for concurrent use.
type Fabric struct {
	st     *store.Store
	zones  []string
	region string
	prefix string
	md     MetadataSource
	edge   edgeConfig
	api    string // APIAddr
	log    *slog.Logger
	key    []byte
	pub    netip.Prefix

	upstream string               // Options.DNSUpstream
	publicIP func(ENI) netip.Addr // Options.PublicIPv4
	uplink   string               // Options.Uplink

	// kmu serialises changes to kernel objects (namespaces, links), so
	// that two calls never race to create or remove the same one.
	kmu sync.Mutex

	// syncMu holds a *sync.Mutex per VPC ID: one kernel sync at a time.
	syncMu sync.Map

	mu   sync.Mutex
	vpcs map[string]*vpcRuntime // by VPC ID

	// dnsOff holds the VPC IDs whose enableDnsSupport is false (guarded
	// by mu); see SetDNSSupport.
	dnsOff map[string]bool
}

// vpcRuntime is what runs for one VPC.
type vpcRuntime struct {
	vpc     VPC
	subnets map[string]subnetRecord
	enis    map[string]ENI // by private IP
	imds    *imdsServer
	api     *apiProxy              // nil without Options.APIAddr
	dhcp    map[string]*dhcpServer // by subnet ID
	dns     *dnsServer             // nil while DNS support is off
}

// New returns a Fabric. It touches no kernel object: call Reconcile after
// a (re)start to rebuild what the records describe.
func New(ctx context.Context, o Options) (*Fabric, error) {
	if o.Store == nil {
		return nil, errors.New("netfab: Options.Store is required")
	}
	if len(o.Zones) == 0 || len(o.Zones) > 16 {
		return nil, fmt.Errorf("netfab: need 1-16 availability zones, got %d", len(o.Zones))
	}
	if o.Metadata == nil {
		return nil, errors.New("netfab: Options.Metadata is required")
	}
	if o.NamePrefix == "" {
		o.NamePrefix = "lc"
	}
	if err := checkPrefix(o.NamePrefix); err != nil {
		return nil, err
	}
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	if !o.PublicCIDR.IsValid() {
		o.PublicCIDR = netip.MustParsePrefix("203.0.113.0/24")
	}
	if !o.PublicCIDR.Addr().Is4() || o.PublicCIDR.Bits() < 16 || o.PublicCIDR.Bits() > 29 {
		return nil, fmt.Errorf("netfab: PublicCIDR %s must be an IPv4 prefix of /16 to /29", o.PublicCIDR)
	}
	if err := checkUplink(o.NamePrefix, o.Uplink); err != nil {
		return nil, err
	}
	edge := edgeConfig{PublicCIDR: o.PublicCIDR.Masked(), Gateway: o.PublicGateway}
	if o.Uplink != "" {
		if o.PublicGateway.IsValid() {
			return nil, fmt.Errorf("netfab: Uplink %s and PublicGateway %s are two ways to the internet: set one", o.Uplink, o.PublicGateway)
		}
		edge.Gateway = addrN(edge.PublicCIDR, 1) // the host, which forwards to the uplink
	}
	key := make([]byte, 32)
	if _, err := rand.Read(key); err != nil {
		return nil, err
	}
	return &Fabric{
		st: o.Store, zones: o.Zones, region: regionOf(o.Zones[0]), prefix: o.NamePrefix,
		md: o.Metadata, log: o.Logger.With("component", "netfab"), key: key, pub: o.PublicCIDR.Masked(),
		api: o.APIAddr, edge: edge, uplink: o.Uplink,
		vpcs: map[string]*vpcRuntime{}, upstream: o.DNSUpstream, publicIP: o.PublicIPv4,
	}, nil
}

func vpcKey(acct, id string) string    { return "vpcs/" + acct + "/" + id }
func subnetKey(acct, id string) string { return "subnets/" + acct + "/" + id }
func eniKey(acct, id string) string    { return "enis/" + acct + "/" + id }
func ipKey(vpc, ip string) string      { return "enis-by-ip/" + vpc + "/" + ip }
func defaultKey(acct string) string    { return "default-vpcs/" + acct }
func instKey(acct, inst string) string { return "enis-by-instance/" + acct + "/" + inst }

// instIndex is an enis-by-instance/<acct>/<instance-id> entry: it makes
// CreateENI idempotent per instance (a controller retrying after a crash
// gets the same ENI back).
type instIndex struct{ ENIID string }

// EnsureDefaultVPC creates, idempotently, the account's default VPC:
// 172.31.0.0/16 with one default /20 subnet per AZ, and builds its
// namespace, bridges, DHCP and metadata servers.
func (f *Fabric) EnsureDefaultVPC(ctx context.Context, accountID string) (VPC, error) {
	if accountID == "" {
		return VPC{}, errdefs.InvalidParameter("", "an account ID is required")
	}
	for try := 0; ; try++ {
		var idx defaultVPCIndex
		_, err := f.st.Get(ctx, defaultKey(accountID), &idx)
		if err == nil {
			vpc, _, err := f.loadVPC(ctx, accountID, idx.VPCID)
			if err != nil {
				return VPC{}, err
			}
			if vpc.MainRouteTableID == "" { // recorded by an earlier version
				if _, err := f.ensureVPCDefaults(ctx, vpc); err != nil {
					return VPC{}, err
				}
			}
			vpc, subnets, err := f.loadVPC(ctx, accountID, idx.VPCID)
			if err != nil {
				return VPC{}, err
			}
			if err := f.ensureVPC(ctx, vpc, subnets); err != nil {
				return VPC{}, err
			}
			return withSubnets(vpc, subnets), nil
		}
		if !errors.Is(err, store.ErrNotFound) {
			return VPC{}, fmt.Errorf("reading default VPC of %s: %w", accountID, err)
		}
		if try > 16 {
			return VPC{}, errdefs.New(errdefs.ClassConflict, "", "default VPC of account %s keeps changing; try again", accountID)
		}
		// The VPC quota's sequence moves too, so a CreateVPC counting at
		// the same moment counts again (CreateVPC keeps a place for it).
		guard, err := f.quotaGuard(ctx, "vpc", accountID)
		if err != nil {
			return VPC{}, err
		}
		vpc := VPC{ID: newID("vpc"), AccountID: accountID, CIDR: "172.31.0.0/16", IsDefault: true,
			EnableDNSSupport: true, EnableDNSHostnames: true}
		vpc.Namespace = f.nsName(vpc.ID)
		d, ops := newVPCDefaults(accountID, vpc.ID, true)
		vpc.MainRouteTableID, vpc.DefaultNetworkACLID, vpc.DefaultSecurityGroupID = d.RouteTable.ID, d.NetworkACL.ID, d.SecurityGroup.ID
		ops = append(ops, guard, store.OpCreate(defaultKey(accountID), defaultVPCIndex{VPCID: vpc.ID}), store.OpCreate(vpcKey(accountID, vpc.ID), vpc))
		var subnets []subnetRecord
		for i, z := range f.zones {
			cidr := defaultSubnetCIDR(i)
			p := netip.MustParsePrefix(cidr)
			s := subnetRecord{
				Subnet: Subnet{
					ID: newID("subnet"), VPCID: vpc.ID, AvailabilityZone: z, CIDR: cidr,
					RouterIP: addrN(p, 1).String(), DefaultForAz: true, MapPublicIPOnLaunch: true,
					NetworkACLID: d.NetworkACL.ID, NetworkACLAssociationID: newID("aclassoc"),
				},
				AccountID: accountID, BridgeMAC: newMAC(),
			}
			s.Bridge = f.bridgeName(s.ID)
			subnets = append(subnets, s)
			ops = append(ops, store.OpCreate(subnetKey(accountID, s.ID), s))
		}
		if _, err := f.st.Txn(ctx, ops...); err != nil {
			if errors.Is(err, store.ErrExists) || errors.Is(err, store.ErrConflict) {
				continue // someone else made it (use theirs), or a VPC count moved
			}
			return VPC{}, fmt.Errorf("recording default VPC of %s: %w", accountID, err)
		}
		f.log.Info("created default VPC", "account", accountID, "vpc", vpc.ID, "netns", vpc.Namespace)
		if err := f.ensureVPC(ctx, vpc, subnets); err != nil {
			return VPC{}, err
		}
		return withSubnets(vpc, subnets), nil
	}
}

func withSubnets(v VPC, subnets []subnetRecord) VPC {
	v.Subnets = nil
	for _, s := range subnets {
		v.Subnets = append(v.Subnets, s.Subnet)
	}
	return v
}

// loadVPC reads a VPC record and its subnets (sorted by CIDR).
func (f *Fabric) loadVPC(ctx context.Context, acct, id string) (VPC, []subnetRecord, error) {
	var vpc VPC
	if _, err := f.st.Get(ctx, vpcKey(acct, id), &vpc); err != nil {
		if errors.Is(err, store.ErrNotFound) {
			return VPC{}, nil, errdefs.NotFound("InvalidVpcID.NotFound", "VPC %s does not exist", id)
		}
		return VPC{}, nil, err
	}
	all, err := store.ListAs[subnetRecord](ctx, f.st, "subnets/"+acct+"/")
	if err != nil {
		return VPC{}, nil, err
	}
	var subnets []subnetRecord
	for _, s := range all {
		if s.VPCID == id {
			subnets = append(subnets, s)
		}
	}
	sort.Slice(subnets, func(i, j int) bool {
		return netip.MustParsePrefix(subnets[i].CIDR).Addr().Less(netip.MustParsePrefix(subnets[j].CIDR).Addr())
	})
	return vpc, subnets, nil
}

// ensureVPC builds the VPC's namespace and bridges if missing and starts
// its servers if not running. Taps are ensured by the callers that know
// the ENIs.
func (f *Fabric) ensureVPC(ctx context.Context, vpc VPC, subnets []subnetRecord) error {
	f.kmu.Lock()
	defer f.kmu.Unlock()
	if err := ensureNetns(vpc.Namespace); err != nil {
		return err
	}
	err := inNamespace(vpc.Namespace, func() error {
		if err := setupRouter(); err != nil {
			return err
		}
		for _, s := range subnets {
			p := netip.MustParsePrefix(s.CIDR)
			router := fmt.Sprintf("%s/%d", addrN(p, 1), p.Bits())
			dns := fmt.Sprintf("%s/%d", addrN(p, 2), p.Bits())
			if err := ensureBridge(s.Bridge, s.BridgeMAC, router, dns); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("building VPC %s in netns %s: %w", vpc.ID, vpc.Namespace, err)
	}
	return f.ensureServers(vpc, subnets)
}

// ensureServers starts the metadata server of the VPC, the DHCP server
// of every subnet and the VPC resolver (dns.go), unless running.
func (f *Fabric) ensureServers(vpc VPC, subnets []subnetRecord) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	rt := f.vpcs[vpc.ID]
	if rt == nil {
		rt = &vpcRuntime{vpc: vpc, subnets: map[string]subnetRecord{}, enis: map[string]ENI{}, dhcp: map[string]*dhcpServer{}}
		f.vpcs[vpc.ID] = rt
	}
	if rt.imds == nil {
		vpcID := vpc.ID
		h := &imdsHandler{vpcID: vpcID, src: f.md, key: f.key, now: time.Now, eni: func(ip string) (eniInfo, bool) { return f.eniInfo(vpcID, ip) }}
		s, err := startIMDS(vpc.Namespace, h)
		if err != nil {
			return fmt.Errorf("starting metadata service of %s: %w", vpc.ID, err)
		}
		rt.imds = s
	}
	if rt.api == nil && f.api != "" {
		p, err := startAPIProxy(vpc.Namespace, f.api)
		if err != nil {
			return fmt.Errorf("starting the API endpoint of %s: %w", vpc.ID, err)
		}
		rt.api = p
	}
	for _, sn := range subnets {
		rt.subnets[sn.ID] = sn
		if rt.dhcp[sn.ID] != nil {
			continue
		}
		cfg, err := newDHCPConfig(sn.CIDR, f.region)
		if err != nil {
			return err
		}
		d, err := startDHCP(vpc.Namespace, sn.Bridge, cfg, f.log)
		if err != nil {
			return fmt.Errorf("starting DHCP on %s (subnet %s): %w", sn.Bridge, sn.ID, err)
		}
		for _, e := range rt.enis {
			if e.SubnetID == sn.ID {
				d.setLease(e.MAC, netip.MustParseAddr(e.PrivateIP))
			}
		}
		rt.dhcp[sn.ID] = d
	}
	return f.ensureDNS(rt)
}

func (f *Fabric) eniInfo(vpcID, ip string) (eniInfo, bool) {
	f.mu.Lock()
	defer f.mu.Unlock()
	rt := f.vpcs[vpcID]
	if rt == nil {
		return eniInfo{}, false
	}
	e, ok := rt.enis[ip]
	if !ok {
		return eniInfo{}, false
	}
	return eniInfo{ENI: e, SubnetCIDR: rt.subnets[e.SubnetID].CIDR, VPCCIDR: rt.vpc.CIDR}, true
}

// addLease makes an ENI known to its subnet's DHCP server and to the
// metadata service.
func (f *Fabric) addLease(e ENI) {
	f.mu.Lock()
	defer f.mu.Unlock()
	rt := f.vpcs[e.VPCID]
	if rt == nil {
		return
	}
	rt.enis[e.PrivateIP] = e
	if d := rt.dhcp[e.SubnetID]; d != nil {
		d.setLease(e.MAC, netip.MustParseAddr(e.PrivateIP))
	}
}

func (f *Fabric) removeLease(e ENI) {
	f.mu.Lock()
	defer f.mu.Unlock()
	rt := f.vpcs[e.VPCID]
	if rt == nil {
		return
	}
	delete(rt.enis, e.PrivateIP)
	if d := rt.dhcp[e.SubnetID]; d != nil {
		d.removeLease(e.MAC)
	}
}

// CreateENI allocates the subnet's lowest free address (AWS reserves
// base+0..3 and the broadcast address), a MAC 02:xx:xx:xx:xx:xx and a tap,
// records them, then creates the tap in the VPC namespace as an isolated
// port of the subnet bridge and adds the static DHCP lease.
//
// With an InstanceID it is idempotent per (account, instance): asked again,
// it returns the ENI already made for the instance (re-creating its tap if
// missing), so a controller that crashed after the call can simply retry.
func (f *Fabric) CreateENI(ctx context.Context, r ENIRequest) (ENI, error) {
	if r.AccountID == "" || r.SubnetID == "" {
		return ENI{}, errdefs.New(errdefs.ClassMissingParameter, "", "an account ID and a subnet ID are required to create a network interface")
	}
	var sn subnetRecord
	if _, err := f.st.Get(ctx, subnetKey(r.AccountID, r.SubnetID), &sn); err != nil {
		if errors.Is(err, store.ErrNotFound) {
			return ENI{}, errdefs.NotFound("InvalidSubnetID.NotFound", "subnet %s does not exist in account %s", r.SubnetID, r.AccountID)
		}
		return ENI{}, err
	}
	vpc, subnets, err := f.loadVPC(ctx, r.AccountID, sn.VPCID)
	if err != nil {
		return ENI{}, err
	}
	// The VPC must be built (and its servers running) before its ENIs.
	if err := f.ensureVPC(ctx, vpc, subnets); err != nil {
		return ENI{}, err
	}
	p := netip.MustParsePrefix(sn.CIDR)
	var e ENI
	for try := 0; ; try++ {
		if r.InstanceID != "" {
			old, found, err := f.existingENI(ctx, r)
			if err != nil {
				return ENI{}, err
			}
			if found {
				return old, nil
			}
		}
		used, err := f.st.List(ctx, "enis-by-ip/"+vpc.ID+"/")
		if err != nil {
			return ENI{}, err
		}
		taken := map[string]bool{}
		for _, kv := range used {
			taken[kv.Key[strings.LastIndexByte(kv.Key, '/')+1:]] = true
		}
		var ip netip.Addr
		for n := uint32(4); n < size(p)-1; n++ {
			if a := addrN(p, n); !taken[a.String()] {
				ip = a
				break
			}
		}
		if !ip.IsValid() {
			return ENI{}, errdefs.New(errdefs.ClassLimitExceeded, "InsufficientFreeAddressesInSubnet", "subnet %s (%s) has no free address left; delete an interface or use another subnet", sn.ID, sn.CIDR)
		}
		// Validated on every try: the Txn compare-and-swaps the groups, so
		// that none is deleted while the interface joins it.
		groups, groupIDs, err := f.validateGroups(ctx, r.AccountID, vpc.ID, r.Groups)
		if err != nil {
			return ENI{}, err
		}
		e = ENI{
			ID: newID("eni"), AccountID: r.AccountID, VPCID: vpc.ID, SubnetID: sn.ID,
			AvailabilityZone: sn.AvailabilityZone, InstanceID: r.InstanceID, MAC: newMAC(),
			PrivateIP: ip.String(), Namespace: vpc.Namespace, NetNSPath: filepath.Join(netnsDir, vpc.Namespace),
			Description: r.Description, Groups: groupIDs,
		}
		e.Tap = f.tapName(e.ID)
		if clash, err := f.tapInUse(ctx, e); err != nil {
			return ENI{}, err
		} else if clash {
			continue // 8 hex digits of the ID collided: draw another
		}
		var ops []store.Op
		if wantPublic := sn.MapPublicIPOnLaunch; r.AssociatePublicIP != nil && *r.AssociatePublicIP || r.AssociatePublicIP == nil && wantPublic {
			pip, err := f.freePublicIP(ctx)
			if err != nil {
				return ENI{}, err
			}
			e.PublicIP = pip
			ops = append(ops, store.OpCreate(publicIPKey(pip), publicIPIndex{AccountID: r.AccountID, ENIID: e.ID}))
		}
		ops = append(ops,
			store.OpCreate(ipKey(vpc.ID, e.PrivateIP), ipIndex{AccountID: r.AccountID, ENIID: e.ID}),
			store.OpCreate(eniKey(r.AccountID, e.ID), e),
		)
		if r.InstanceID != "" {
			ops = append(ops, store.OpCreate(instKey(r.AccountID, r.InstanceID), instIndex{ENIID: e.ID}))
		}
		for _, g := range groups {
			ops = append(ops, store.OpCompareAndSwap(sgKey(r.AccountID, g.ID), g.SecurityGroup, g.rev))
		}
		_, err = f.st.Txn(ctx, ops...)
		if err == nil {
			break
		}
		if !(errors.Is(err, store.ErrExists) || errors.Is(err, store.ErrConflict)) || try > 8 {
			return ENI{}, fmt.Errorf("recording network interface in subnet %s: %w", sn.ID, err)
		}
	}
	// The filter learns the ENI (its tap, MAC, address, groups) before
	// the tap exists: a tap the ruleset does not know gets nothing
	// through, so there is no moment when it is open.
	err = f.changed(ctx, r.AccountID, vpc.ID)
	if err == nil {
		f.kmu.Lock()
		err = inNamespace(e.Namespace, func() error { return ensureTap(e.Tap, sn.Bridge) })
		f.kmu.Unlock()
	}
	if err != nil {
		// Revert: nothing of this ENI may stay behind.
		_ = inNamespace(e.Namespace, func() error { return deleteLink(e.Tap) })
		if derr := f.deleteRecords(context.WithoutCancel(ctx), e); derr != nil {
			f.log.Error("could not remove the record of a failed network interface; Reconcile will rebuild it", "eni", e.ID, "err", derr)
		}
		return ENI{}, fmt.Errorf("creating tap for %s: %w", e.ID, err)
	}
	f.addLease(e)
	f.log.Info("created network interface", "eni", e.ID, "ip", e.PrivateIP, "mac", e.MAC, "tap", e.Tap, "netns", e.Namespace)
	return e, nil
}

// existingENI finds the ENI already made for r.InstanceID, if any, and
// makes sure its tap and lease exist.
func (f *Fabric) existingENI(ctx context.Context, r ENIRequest) (ENI, bool, error) {
	var idx instIndex
	if _, err := f.st.Get(ctx, instKey(r.AccountID, r.InstanceID), &idx); err != nil {
		if errors.Is(err, store.ErrNotFound) {
			return ENI{}, false, nil
		}
		return ENI{}, false, err
	}
	var e ENI
	if _, err := f.st.Get(ctx, eniKey(r.AccountID, idx.ENIID), &e); err != nil {
		if errors.Is(err, store.ErrNotFound) {
			// A stale index entry (interrupted delete): drop it.
			if err := f.st.Delete(ctx, instKey(r.AccountID, r.InstanceID)); err != nil && !errors.Is(err, store.ErrNotFound) {
				return ENI{}, false, err
			}
			return ENI{}, false, nil
		}
		return ENI{}, false, err
	}
	if e.SubnetID != r.SubnetID {
		return ENI{}, false, errdefs.Conflict("", "instance %s already has network interface %s in subnet %s, not in %s", r.InstanceID, e.ID, e.SubnetID, r.SubnetID)
	}
	var bridge string
	var sn subnetRecord
	if _, err := f.st.Get(ctx, subnetKey(r.AccountID, e.SubnetID), &sn); err != nil {
		return ENI{}, false, err
	}
	bridge = sn.Bridge
	if err := f.changed(ctx, r.AccountID, e.VPCID); err != nil {
		return ENI{}, false, err
	}
	f.kmu.Lock()
	err := inNamespace(e.Namespace, func() error { return ensureTap(e.Tap, bridge) })
	f.kmu.Unlock()
	if err != nil {
		return ENI{}, false, fmt.Errorf("creating tap for %s: %w", e.ID, err)
	}
	f.addLease(e)
	return e, true, nil
}

// deleteRecords removes an ENI's record and index entries in one Txn, or,
// when some are already gone (an interrupted delete), whichever are left.
func (f *Fabric) deleteRecords(ctx context.Context, e ENI) error {
	keys := []string{ipKey(e.VPCID, e.PrivateIP), eniKey(e.AccountID, e.ID)}
	if e.InstanceID != "" {
		keys = append(keys, instKey(e.AccountID, e.InstanceID))
	}
	if e.PublicIP != "" {
		keys = append(keys, publicIPKey(e.PublicIP))
	}
	var ops []store.Op
	for _, k := range keys {
		ops = append(ops, store.OpDelete(k))
	}
	_, err := f.st.Txn(ctx, ops...)
	if err == nil || !errors.Is(err, store.ErrNotFound) {
		return err
	}
	for _, k := range keys {
		if err := f.st.Delete(ctx, k); err != nil && !errors.Is(err, store.ErrNotFound) {
			return fmt.Errorf("removing %s: %w", k, err)
		}
	}
	return nil
}

// tapInUse reports whether another ENI of e's VPC already has e's tap name.
func (f *Fabric) tapInUse(ctx context.Context, e ENI) (bool, error) {
	all, err := store.ListAs[ENI](ctx, f.st, "enis/"+e.AccountID+"/")
	if err != nil {
		return false, err
	}
	for _, o := range all {
		if o.VPCID == e.VPCID && o.Tap == e.Tap {
			return true, nil
		}
	}
	return false, nil
}

// DeleteENI removes the interface's tap, lease and records.
func (f *Fabric) DeleteENI(ctx context.Context, accountID, eniID string) error {
	var e ENI
	if _, err := f.st.Get(ctx, eniKey(accountID, eniID), &e); err != nil {
		if errors.Is(err, store.ErrNotFound) {
			return errdefs.NotFound("InvalidNetworkInterfaceID.NotFound", "network interface %s does not exist", eniID)
		}
		return err
	}
	if e.EIPAllocationID != "" {
		// AWS disassociates (never releases) an Elastic IP when its
		// interface goes away.
		if err := f.disassociateEIP(ctx, e.AccountID, e.EIPAllocationID); err != nil {
			return fmt.Errorf("disassociating the Elastic IP of %s: %w", eniID, err)
		}
		if _, err := f.st.Get(ctx, eniKey(accountID, eniID), &e); err != nil {
			return err
		}
	}
	f.removeLease(e)
	f.kmu.Lock()
	var err error
	if netnsExists(e.Namespace) && e.Tap != "" {
		err = inNamespace(e.Namespace, func() error { return deleteLink(e.Tap) })
	}
	f.kmu.Unlock()
	if err != nil {
		return err
	}
	if err := f.deleteRecords(ctx, e); err != nil {
		return fmt.Errorf("removing the record of %s: %w", eniID, err)
	}
	if netnsExists(e.Namespace) {
		// Its rules, public address and NAT go with it.
		if err := f.changed(ctx, accountID, e.VPCID); err != nil && !errdefs.Is(err, errdefs.ClassNotFound) {
			return err
		}
	}
	f.log.Info("deleted network interface", "eni", eniID)
	return nil
}

// Reconcile makes the host match the records after a restart: it rebuilds
// missing namespaces, bridges and taps, (re)starts DHCP and metadata
// servers, and removes namespaces and interfaces named with this Fabric's
// prefix that no record owns. It is idempotent.
func (f *Fabric) Reconcile(ctx context.Context) error {
	if err := f.syncUplink(); err != nil {
		return err
	}
	vpcs, err := store.ListAs[VPC](ctx, f.st, "vpcs/")
	if err != nil {
		return err
	}
	subnets, err := store.ListAs[subnetRecord](ctx, f.st, "subnets/")
	if err != nil {
		return err
	}
	enis, err := store.ListAs[ENI](ctx, f.st, "enis/")
	if err != nil {
		return err
	}
	var errs []error
	ownedNS := map[string]bool{}
	for _, vpc := range vpcs {
		if !strings.HasPrefix(vpc.Namespace, f.prefix+"-") {
			continue // another daemon's (other prefix)
		}
		ownedNS[vpc.Namespace] = true
		var sns []subnetRecord
		owned := map[string]bool{}
		for _, s := range subnets {
			if s.VPCID == vpc.ID {
				sns = append(sns, s)
				owned[s.Bridge] = true
			}
		}
		bridgeOf := map[string]string{}
		for _, s := range sns {
			bridgeOf[s.ID] = s.Bridge
		}
		// The whole VPC (namespace, bridges, servers, gateway, routes and
		// the filter) before any tap, so no tap is ever unfiltered.
		if err := f.changed(ctx, vpc.AccountID, vpc.ID); err != nil {
			errs = append(errs, err)
			continue
		}
		var mine []ENI
		for _, e := range enis {
			if e.VPCID == vpc.ID {
				mine = append(mine, e)
				owned[e.Tap] = true
			}
		}
		f.kmu.Lock()
		err := inNamespace(vpc.Namespace, func() error {
			var errs []error
			for _, e := range mine {
				if e.Tap == "" {
					continue // a NAT gateway's address: no tap
				}
				if err := ensureTap(e.Tap, bridgeOf[e.SubnetID]); err != nil {
					errs = append(errs, err)
				}
			}
			links, err := netlink.LinkList()
			if err != nil {
				return errors.Join(append(errs, err)...)
			}
			for _, l := range links {
				if n := l.Attrs().Name; f.ourLink(n) && !owned[n] {
					f.log.Info("removing unowned interface", "netns", vpc.Namespace, "link", n)
					if err := netlink.LinkDel(l); err != nil {
						errs = append(errs, fmt.Errorf("deleting %s: %w", n, err))
					}
				}
			}
			return errors.Join(errs...)
		})
		f.kmu.Unlock()
		if err != nil {
			errs = append(errs, fmt.Errorf("reconciling VPC %s: %w", vpc.ID, err))
		}
		for _, e := range mine {
			if e.Tap != "" {
				f.addLease(e)
			}
		}
	}
	igws, err := store.ListAs[InternetGateway](ctx, f.st, "igws/")
	if err != nil {
		errs = append(errs, err)
	} else {
		keep := map[string]bool{}
		for _, g := range igws {
			if g.VPCID != "" {
				keep[f.gatewayHostName(g.VPCID)] = true
			}
		}
		f.kmu.Lock()
		errs = append(errs, f.removeHostLinks(func(n string) bool { return keep[n] }))
		f.kmu.Unlock()
	}
	names, err := listNetns(f.prefix + "-")
	if err != nil {
		errs = append(errs, err)
	}
	for _, n := range names {
		if !ownedNS[n] {
			f.log.Info("removing unowned network namespace", "netns", n)
			f.stopVPCByNamespace(n)
			f.kmu.Lock()
			err := deleteNetns(n)
			f.kmu.Unlock()
			if err != nil {
				errs = append(errs, err)
			}
		}
	}
	return errors.Join(errs...)
}

func (f *Fabric) stopVPCByNamespace(ns string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	for id, rt := range f.vpcs {
		if rt.vpc.Namespace == ns {
			rt.stop()
			delete(f.vpcs, id)
		}
	}
}

func (rt *vpcRuntime) stop() {
	if rt.imds != nil {
		rt.imds.close()
		rt.imds = nil
	}
	for id, d := range rt.dhcp {
		d.close()
		delete(rt.dhcp, id)
	}
	if rt.api != nil {
		rt.api.close()
		rt.api = nil
	}
	if rt.dns != nil {
		rt.dns.close()
		rt.dns = nil
	}
}

// Close stops the DHCP and metadata servers. Namespaces, bridges and taps
// stay, so running VMs keep their network; Reconcile in the next Fabric
// restarts the servers.
func (f *Fabric) Close() error {
	f.mu.Lock()
	defer f.mu.Unlock()
	for id, rt := range f.vpcs {
		rt.stop()
		delete(f.vpcs, id)
	}
	return nil
}

// Teardown stops the servers and removes every network namespace named
// with this Fabric's prefix, and with them their bridges and taps. The
// records stay in the store. For tests and uninstall.
func (f *Fabric) Teardown(ctx context.Context) error {
	_ = f.Close()
	f.kmu.Lock()
	defer f.kmu.Unlock()
	names, err := listNetns(f.prefix + "-")
	if err != nil {
		return err
	}
	var errs []error
	for _, n := range names {
		// Delete the links first: a namespace some process still holds
		// would otherwise keep them.
		_ = inNamespace(n, func() error {
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
		if err := deleteNetns(n); err != nil {
			errs = append(errs, err)
		}
	}
	errs = append(errs, f.removeHostLinks(func(string) bool { return false }), f.removeUplink())
	return errors.Join(errs...)
}

// removeHostLinks deletes, in the host namespace, the internet-gateway
// veths this Fabric made whose name keep does not claim, and the public
// bridge when no gateway veth is left on it.
func (f *Fabric) removeHostLinks(keep func(name string) bool) error {
	links, err := netlink.LinkList()
	if err != nil {
		return fmt.Errorf("listing host interfaces: %w", err)
	}
	var errs []error
	left := 0
	for _, l := range links {
		n := l.Attrs().Name
		if !f.ourHostLink(n) {
			continue
		}
		if keep(n) {
			left++
			continue
		}
		f.log.Info("removing internet gateway link", "link", n)
		if err := netlink.LinkDel(l); err != nil {
			errs = append(errs, fmt.Errorf("deleting %s: %w", n, err))
		}
	}
	if left == 0 {
		errs = append(errs, deleteLink(f.publicBridgeName()))
	}
	return errors.Join(errs...)
}
