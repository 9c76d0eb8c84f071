package netfab

import (
	"errors"
	"fmt"
	"net"
	"net/netip"
	"slices"

	"github.com/vishvananda/netlink"
	"github.com/vishvananda/netns"
	"golang.org/x/sys/unix"
)

// The edge of a VPC: its internet gateway (a veth from the VPC namespace to
// the host's public bridge, holding the VPC's public and Elastic IPs as
// /32 addresses so that it answers ARP for them) and the policy routing
// that sends each subnet's traffic by its route table.
//
// Routing inside a VPC namespace:
//
//	rule pref 90    iif lo lookup 999   (the router's own packets: table 999
//	                reaches the public pool on the gateway link)
//	rule pref 100   lookup main suppress_prefixlength 0   (the "local" route:
//	                connected subnets always win, as in AWS)
//	rule pref 1000+i from <subnet i CIDR> lookup 1000+i
//	table 1000+i    the subnet's route table's non-local routes
//
// The main table never has a default route, so a subnet without a route
// to a gateway reaches nothing outside the VPC.

const (
	// routerRulePref sends the router's own packets (iif lo: replies of
	// its public addresses) to routerTable, which reaches the pool.
	routerRulePref = 90
	routerTable    = 999
	mainRulePref   = 100
	firstRuleTab   = 1000
	lastRuleTab    = 1999
	publicBridgeS  = "pub"
)

// routeKind says where a kernel route sends packets.
type routeKind int

const (
	// toGateway: out of the internet gateway's veth.
	toGateway routeKind = iota + 1
	// toENI: to an instance's private IP (a NAT instance, an appliance).
	toENI
	// toNowhere: a blackhole route (target gone or detached).
	toNowhere
)

// kernelRoute is one non-local route of a subnet's table.
type kernelRoute struct {
	Dst  netip.Prefix
	Kind routeKind
	// Via is the ENI's address for toENI; Bridge the subnet bridge it is on.
	Via    netip.Addr
	Bridge string
}

// subnetRouting is the policy-routing table of one subnet.
type subnetRouting struct {
	CIDR   netip.Prefix
	Routes []kernelRoute
}

// edgeConfig is what the host-facing side of the fabric is configured with.
type edgeConfig struct {
	// PublicCIDR is the pool; its first address sits on the host bridge.
	PublicCIDR netip.Prefix
	// Gateway is the internet's next hop on the public bridge, invalid
	// when there is no internet.
	Gateway netip.Addr
}

func (f *Fabric) publicBridgeName() string            { return f.prefix + publicBridgeS }
func (f *Fabric) gatewayHostName(vpcID string) string { return f.prefix + "g" + idTail(vpcID) }
func (f *Fabric) gatewayVPCName(vpcID string) string  { return f.prefix + "i" + idTail(vpcID) }

// ensurePublicBridge makes the host bridge of the public pool, holding the
// pool's first address. Runs in the host namespace.
func ensurePublicBridge(name string, pool netip.Prefix) error {
	link, err := netlink.LinkByName(name)
	if err != nil {
		br := &netlink.Bridge{LinkAttrs: netlink.LinkAttrs{Name: name, MTU: 1500}}
		if err := netlink.LinkAdd(br); err != nil && !errors.Is(err, unix.EEXIST) {
			return fmt.Errorf("creating public bridge %s: %w", name, err)
		}
		if link, err = netlink.LinkByName(name); err != nil {
			return fmt.Errorf("finding public bridge %s: %w", name, err)
		}
	}
	if err := addAddr(link, netip.PrefixFrom(addrN(pool, 1), pool.Bits()).String()); err != nil {
		return err
	}
	if err := netlink.LinkSetUp(link); err != nil {
		return fmt.Errorf("bringing public bridge %s up: %w", name, err)
	}
	return nil
}

// ensureGatewayVeth creates the veth of a VPC's internet gateway: hostName
// on the public bridge in the host namespace, vpcName inside the VPC
// namespace ns. Runs in the host namespace.
func ensureGatewayVeth(hostName, vpcName, bridge, ns string) error {
	host, err := netlink.LinkByName(hostName)
	if err != nil {
		nsh, err := netns.GetFromPath(netnsDir + "/" + ns)
		if err != nil {
			return fmt.Errorf("opening network namespace %s: %w", ns, err)
		}
		defer nsh.Close()
		veth := &netlink.Veth{LinkAttrs: netlink.LinkAttrs{Name: hostName, MTU: 1500}, PeerName: vpcName,
			PeerNamespace: netlink.NsFd(int(nsh))}
		if err := netlink.LinkAdd(veth); err != nil && !errors.Is(err, unix.EEXIST) {
			return fmt.Errorf("creating internet gateway veth %s: %w", hostName, err)
		}
		if host, err = netlink.LinkByName(hostName); err != nil {
			return fmt.Errorf("finding %s: %w", hostName, err)
		}
	}
	br, err := netlink.LinkByName(bridge)
	if err != nil {
		return fmt.Errorf("finding public bridge %s: %w", bridge, err)
	}
	if host.Attrs().MasterIndex != br.Attrs().Index {
		if err := netlink.LinkSetMaster(host, br); err != nil {
			return fmt.Errorf("attaching %s to %s: %w", hostName, bridge, err)
		}
	}
	if err := netlink.LinkSetUp(host); err != nil {
		return fmt.Errorf("bringing %s up: %w", hostName, err)
	}
	return nil
}

// configureGatewayLink brings the VPC end of the gateway veth up with
// exactly addrs as /32 addresses. Runs inside the VPC namespace.
func configureGatewayLink(name string, addrs []netip.Addr) error {
	link, err := netlink.LinkByName(name)
	if err != nil {
		return fmt.Errorf("finding %s: %w", name, err)
	}
	if err := writeSysctl("net/ipv4/conf/"+name+"/rp_filter", "0"); err != nil {
		return err
	}
	if err := writeSysctl("net/ipv4/conf/all/rp_filter", "0"); err != nil {
		return err
	}
	have, err := netlink.AddrList(link, unix.AF_INET)
	if err != nil {
		return fmt.Errorf("listing addresses of %s: %w", name, err)
	}
	want := map[netip.Addr]bool{}
	for _, a := range addrs {
		want[a] = true
	}
	for _, a := range have {
		ip, _ := netip.AddrFromSlice(a.IP.To4())
		if ones, _ := a.Mask.Size(); ones == 32 && want[ip] {
			delete(want, ip)
			continue
		}
		if err := netlink.AddrDel(link, &a); err != nil {
			return fmt.Errorf("removing %s from %s: %w", a.IPNet, name, err)
		}
	}
	for a := range want {
		if err := addAddr(link, netip.PrefixFrom(a, 32).String()); err != nil {
			return err
		}
	}
	if err := netlink.LinkSetUp(link); err != nil {
		return fmt.Errorf("bringing %s up: %w", name, err)
	}
	return nil
}

// kroute is a route to install and the name of its output link ("" for
// blackhole and unreachable routes).
type kroute struct {
	r    *netlink.Route
	link string
}

// gatewayRoutes expands a route to the internet gateway: the public pool is
// always reachable directly on the link (the lab server and other VPCs'
// public IPs); anything else goes via the internet's next hop if there is
// one, and is unreachable otherwise.
func gatewayRoutes(dst netip.Prefix, link string, cfg edgeConfig) []kroute {
	var out []kroute
	pool := cfg.PublicCIDR
	overlap := dst.Bits() <= pool.Bits() && dst.Contains(pool.Addr()) || pool.Bits() <= dst.Bits() && pool.Contains(dst.Addr())
	if overlap {
		narrow := dst
		if pool.Bits() > dst.Bits() {
			narrow = pool
		}
		out = append(out, kroute{&netlink.Route{Dst: prefixNet(narrow), Scope: netlink.SCOPE_LINK}, link})
		if narrow == dst {
			return out
		}
	}
	if cfg.Gateway.IsValid() {
		out = append(out, kroute{&netlink.Route{Dst: prefixNet(dst), Gw: cfg.Gateway.AsSlice(), Flags: int(netlink.FLAG_ONLINK)}, link})
	} else {
		out = append(out, kroute{&netlink.Route{Dst: prefixNet(dst), Type: unix.RTN_UNREACHABLE}, ""})
	}
	return out
}

// syncRouting makes the namespace's policy rules and subnet tables exactly
// match subnets (in the order given: the i-th subnet gets table 1000+i).
// gwLink is the gateway veth inside the namespace, "" when no internet
// gateway is attached. Runs inside the VPC namespace.
func syncRouting(subnets []subnetRouting, gwLink string, cfg edgeConfig) error {
	if len(subnets) > lastRuleTab-firstRuleTab {
		return fmt.Errorf("too many subnets (%d) for one VPC", len(subnets))
	}
	rules, err := netlink.RuleList(unix.AF_INET)
	if err != nil {
		return fmt.Errorf("listing rules: %w", err)
	}
	haveMain, haveRouter := false, false
	for _, r := range rules {
		switch {
		case r.Priority == mainRulePref:
			haveMain = true
		case r.Priority == routerRulePref:
			haveRouter = true
		case r.Priority >= firstRuleTab && r.Priority <= lastRuleTab:
			i := r.Priority - firstRuleTab
			if i < len(subnets) && r.Table == r.Priority && r.Src != nil && r.Src.String() == subnets[i].CIDR.String() {
				continue
			}
			rr := r
			if err := netlink.RuleDel(&rr); err != nil && !errors.Is(err, unix.ENOENT) {
				return fmt.Errorf("removing rule %d: %w", r.Priority, err)
			}
		}
	}
	if !haveMain {
		r := netlink.NewRule()
		r.Priority, r.Table, r.SuppressPrefixlen = mainRulePref, unix.RT_TABLE_MAIN, 0
		if err := netlink.RuleAdd(r); err != nil && !errors.Is(err, unix.EEXIST) {
			return fmt.Errorf("adding the local-route rule: %w", err)
		}
	}
	if !haveRouter {
		r := netlink.NewRule()
		r.Priority, r.Table, r.IifName = routerRulePref, routerTable, "lo"
		if err := netlink.RuleAdd(r); err != nil && !errors.Is(err, unix.EEXIST) {
			return fmt.Errorf("adding the router's own rule: %w", err)
		}
	}
	var own []kroute
	if gwLink != "" {
		own = []kroute{{&netlink.Route{Dst: prefixNet(cfg.PublicCIDR), Scope: netlink.SCOPE_LINK}, gwLink}}
	}
	if err := syncTable(routerTable, own); err != nil {
		return err
	}
	for i, sn := range subnets {
		table := firstRuleTab + i
		var want []kroute
		for _, kr := range sn.Routes {
			switch {
			case kr.Kind == toGateway && gwLink != "":
				want = append(want, gatewayRoutes(kr.Dst, gwLink, cfg)...)
			case kr.Kind == toENI && kr.Via.IsValid():
				want = append(want, kroute{&netlink.Route{Dst: prefixNet(kr.Dst), Gw: kr.Via.AsSlice(), Flags: int(netlink.FLAG_ONLINK)}, kr.Bridge})
			default:
				want = append(want, kroute{&netlink.Route{Dst: prefixNet(kr.Dst), Type: unix.RTN_BLACKHOLE}, ""})
			}
		}
		if err := syncTable(table, want); err != nil {
			return err
		}
		r := netlink.NewRule()
		r.Priority, r.Table, r.Src = table, table, prefixNet(sn.CIDR)
		if err := netlink.RuleAdd(r); err != nil && !errors.Is(err, unix.EEXIST) {
			return fmt.Errorf("adding the rule of %s: %w", sn.CIDR, err)
		}
	}
	for t := firstRuleTab + len(subnets); t <= lastRuleTab; t++ {
		if err := syncTable(t, nil); err != nil {
			return err
		}
	}
	return nil
}

// syncTable replaces the routes of table t with want.
func syncTable(t int, want []kroute) error {
	have, err := netlink.RouteListFiltered(unix.AF_INET, &netlink.Route{Table: t}, netlink.RT_FILTER_TABLE)
	if err != nil {
		return fmt.Errorf("listing table %d: %w", t, err)
	}
	keep := map[string]bool{}
	for _, k := range want {
		r := k.r
		r.Table = t
		if k.link != "" {
			l, err := netlink.LinkByName(k.link)
			if err != nil {
				return fmt.Errorf("route %s: finding %s: %w", r.Dst, k.link, err)
			}
			r.LinkIndex = l.Attrs().Index
		}
		if err := netlink.RouteReplace(r); err != nil {
			return fmt.Errorf("setting route %s in table %d: %w", r.Dst, t, err)
		}
		keep[r.Dst.String()] = true
	}
	for _, r := range have {
		if r.Dst != nil && keep[r.Dst.String()] {
			continue
		}
		rr := r
		if err := netlink.RouteDel(&rr); err != nil && !errors.Is(err, unix.ESRCH) {
			return fmt.Errorf("removing route %v from table %d: %w", r.Dst, t, err)
		}
	}
	return nil
}

// sortedAddrs returns the distinct valid addresses, sorted.
func sortedAddrs(in []netip.Addr) []netip.Addr {
	var out []netip.Addr
	for _, a := range in {
		if a.IsValid() && !slices.Contains(out, a) {
			out = append(out, a)
		}
	}
	slices.SortFunc(out, func(a, b netip.Addr) int { return a.Compare(b) })
	return out
}

// prefixNet converts a netip.Prefix to the *net.IPNet netlink wants.
func prefixNet(p netip.Prefix) *net.IPNet {
	p = p.Masked()
	return &net.IPNet{IP: p.Addr().AsSlice(), Mask: net.CIDRMask(p.Bits(), p.Addr().BitLen())}
}
