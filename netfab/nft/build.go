package nft

import (
	"encoding/binary"
	"fmt"
	"net/netip"
	"regexp"
	"sort"
	"strings"

	"github.com/google/nftables"
	"github.com/google/nftables/expr"
)

// Table names, in every VPC namespace.
const (
	// InetTable filters and NATs routed traffic.
	InetTable = "labcloud"
	// BridgeTable is the per-port anti-spoofing.
	BridgeTable = "labcloud_bridge"
)

// imds is the metadata service's address on the router's loopback.
var imds = netip.AddrFrom4([4]byte{169, 254, 169, 254})

// amazonDNS is the resolver's link-local address (169.254.169.253).
var amazonDNS = netip.AddrFrom4([4]byte{169, 254, 169, 253})

// APIPort is the port of labcloud's API endpoint on 169.254.169.254
// (netfab.APIPort), open to instances like the metadata service.
const APIPort = 7420

// Chain priorities (nft's named priorities as numbers).
const (
	prioFilter  = 0
	prioDstNAT  = -100
	prioSrcNAT  = 100
	prioBrFirst = -300 // before anything else on the bridge
)

var idRE = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9_.-]*$`)

// validate rejects a Policy the builder cannot express faithfully, before
// anything reaches the kernel.
func validate(p Policy) error {
	ifok := func(kind, name string) error {
		if name == "" || len(name) > 15 || strings.ContainsAny(name, "\x00/ ") {
			return fmt.Errorf("nft: %s name %q must be 1-15 characters without spaces or slashes", kind, name)
		}
		return nil
	}
	v4 := func(what string, pr netip.Prefix) error {
		if !pr.IsValid() || !pr.Addr().Is4() {
			return fmt.Errorf("nft: %s %v is not an IPv4 CIDR", what, pr)
		}
		return nil
	}
	// IDs become parts of chain and set names and comments; their
	// length is left to the kernel (a name over 255 bytes fails the
	// transaction, which then changes nothing).
	idok := func(kind, id string) error {
		if !idRE.MatchString(id) {
			return fmt.Errorf("nft: %s ID %q must be letters, digits, '-', '_' or '.'", kind, id)
		}
		return nil
	}
	for _, g := range p.Groups {
		if err := idok("security group", g.ID); err != nil {
			return err
		}
		for _, rs := range [][]Rule{g.Ingress, g.Egress} {
			for _, r := range rs {
				for _, pg := range r.Groups {
					if err := idok("security group", pg); err != nil {
						return err
					}
				}
			}
		}
	}
	for _, e := range p.ENIs {
		for _, g := range e.Groups {
			if err := idok("security group", g); err != nil {
				return err
			}
		}
	}
	subnets := map[string]bool{}
	links := map[string]string{}
	for _, s := range p.Subnets {
		if err := idok("subnet", s.ID); err != nil {
			return err
		}
		if subnets[s.ID] {
			return fmt.Errorf("nft: subnet ID %q is repeated", s.ID)
		}
		subnets[s.ID] = true
		if err := ifok("bridge", s.Bridge); err != nil {
			return err
		}
		if o, dup := links[s.Bridge]; dup {
			return fmt.Errorf("nft: interface %s is used by both %s and %s", s.Bridge, o, s.ID)
		}
		links[s.Bridge] = s.ID
		if err := v4("subnet "+s.ID+" CIDR", s.CIDR); err != nil {
			return err
		}
		for _, list := range [][]ACLEntry{s.Inbound, s.Outbound} {
			seen := map[int]bool{}
			for _, e := range list {
				if e.RuleNumber < 1 || e.RuleNumber > 32766 || seen[e.RuleNumber] {
					return fmt.Errorf("nft: subnet %s: NACL rule number %d is out of 1-32766 or repeated", s.ID, e.RuleNumber)
				}
				seen[e.RuleNumber] = true
				if err := v4(fmt.Sprintf("subnet %s NACL rule %d CIDR", s.ID, e.RuleNumber), e.CIDR); err != nil {
					return err
				}
			}
		}
	}
	enis := map[string]bool{}
	ips := map[netip.Addr]string{}
	for _, e := range p.ENIs {
		if err := idok("ENI", e.ID); err != nil {
			return err
		}
		if enis[e.ID] {
			return fmt.Errorf("nft: ENI ID %q is repeated", e.ID)
		}
		enis[e.ID] = true
		if !subnets[e.SubnetID] {
			return fmt.Errorf("nft: ENI %s names subnet %q, which the policy does not have", e.ID, e.SubnetID)
		}
		if err := ifok("tap", e.Tap); err != nil {
			return err
		}
		if o, dup := links[e.Tap]; dup {
			return fmt.Errorf("nft: interface %s is used by both %s and %s", e.Tap, o, e.ID)
		}
		links[e.Tap] = e.ID
		if len(e.MAC) != 6 {
			return fmt.Errorf("nft: ENI %s has no Ethernet MAC (%v)", e.ID, e.MAC)
		}
		if !e.IP.Is4() {
			return fmt.Errorf("nft: ENI %s IP %v is not IPv4", e.ID, e.IP)
		}
		if o, dup := ips[e.IP]; dup {
			return fmt.Errorf("nft: ENIs %s and %s both have IP %s", o, e.ID, e.IP)
		}
		ips[e.IP] = e.ID
		if e.PublicIP.IsValid() && !e.PublicIP.Is4() {
			return fmt.Errorf("nft: ENI %s public IP %v is not IPv4", e.ID, e.PublicIP)
		}
	}
	for _, g := range p.Groups {
		for _, rs := range [][]Rule{g.Ingress, g.Egress} {
			for _, r := range rs {
				for _, c := range r.CIDRs {
					if err := v4("security group "+g.ID+" rule CIDR", c); err != nil {
						return err
					}
				}
			}
		}
	}
	if gw := p.Gateway; gw != nil {
		if err := ifok("gateway link", gw.Link); err != nil {
			return err
		}
		if o, dup := links[gw.Link]; dup {
			return fmt.Errorf("nft: interface %s is used by both %s and the gateway", gw.Link, o)
		}
		for _, n := range gw.NATs {
			if err := idok("NAT gateway", n.ID); err != nil {
				return err
			}
			if !n.PublicIP.Is4() {
				return fmt.Errorf("nft: NAT gateway %s public IP %v is not IPv4", n.ID, n.PublicIP)
			}
			if n.SubnetID != "" && !subnets[n.SubnetID] {
				return fmt.Errorf("nft: NAT gateway %s names subnet %q, which the policy does not have", n.ID, n.SubnetID)
			}
			for _, s := range n.Sources {
				if err := v4("NAT gateway "+n.ID+" source", s); err != nil {
					return err
				}
			}
		}
	}
	return nil
}

// build turns a Policy into the two tables.
func build(p Policy) ([]*table, error) {
	if err := validate(p); err != nil {
		return nil, err
	}
	return []*table{buildInet(p), buildBridge(p)}, nil
}

func newSet(name string, data *nftables.SetDatatype, keys ...nftables.SetDatatype) *set {
	return &set{name: name, keys: keys, data: data}
}

func (s *set) add(e elem) { s.elems = append(s.elems, e) }

func ifElem(name string) ([]byte, string) { return ifnameKey(name), fmt.Sprintf("%q", name) }

func addrElem(a netip.Addr) ([]byte, string) { return addrKey(a), a.String() }

func key(parts ...func() ([]byte, string)) ([][]byte, []string) {
	var k [][]byte
	var t []string
	for _, p := range parts {
		b, s := p()
		k = append(k, b)
		t = append(t, s)
	}
	return k, t
}

func kIf(n string) func() ([]byte, string) { return func() ([]byte, string) { return ifElem(n) } }
func kAddr(a netip.Addr) func() ([]byte, string) {
	return func() ([]byte, string) { return addrElem(a) }
}

func jumpElem(c string) *expr.Verdict { return &expr.Verdict{Kind: expr.VerdictJump, Chain: c} }

var (
	tVerdict = nftables.TypeVerdict
	tAddr    = nftables.TypeIPAddr
)

// groupSetKey names the union of an ENI's groups: its sorted, unique IDs.
func groupSetKey(ids []string) []string {
	u := map[string]bool{}
	for _, g := range ids {
		u[g] = true
	}
	out := make([]string, 0, len(u))
	for g := range u {
		out = append(out, g)
	}
	sort.Strings(out)
	return out
}

func groupChainName(dir string, ids []string) string {
	if len(ids) == 0 {
		return dir + "__none"
	}
	return dir + "_" + strings.Join(ids, "_")
}

func subnetBase(s Subnet, n uint32) netip.Addr {
	b := s.CIDR.Masked().Addr().As4()
	v := binary.BigEndian.Uint32(b[:]) + n
	var o [4]byte
	binary.BigEndian.PutUint32(o[:], v)
	return netip.AddrFrom4(o)
}

func buildInet(p Policy) *table {
	t := &table{family: nftables.TableFamilyINet, name: InetTable}
	subnetByID := map[string]Subnet{}
	for _, s := range p.Subnets {
		subnetByID[s.ID] = s
	}
	subnets := append([]Subnet(nil), p.Subnets...)
	sort.Slice(subnets, func(i, j int) bool { return subnets[i].ID < subnets[j].ID })
	enis := append([]ENI(nil), p.ENIs...)
	sort.Slice(enis, func(i, j int) bool { return enis[i].ID < enis[j].ID })

	// Sets and maps.
	bridges := newSet("bridges", nil, nftables.TypeIFName)
	routerAddrs := newSet("router_addrs", nil, tAddr)
	hairpin := newSet("hairpin", nil, nftables.TypeIFName, nftables.TypeIFName)
	naclOut := newSet("nacl_out", &tVerdict, nftables.TypeIFName)
	naclIn := newSet("nacl_in", &tVerdict, nftables.TypeIFName)
	eniSet := newSet("enis", nil, nftables.TypeIFName, tAddr)
	sgOut := newSet("sg_out", &tVerdict, nftables.TypeIFName, tAddr)
	sgIn := newSet("sg_in", &tVerdict, nftables.TypeIFName, tAddr)
	public := newSet("public_enis", nil, tAddr)
	dnatMap := newSet("dnat_public", &tAddr, tAddr)
	snatMap := newSet("snat_private", &tAddr, tAddr)
	// ENIs with the source/destination check off: found as senders by
	// their bridge and MAC (any source address), as receivers by their
	// bridge and the route's next hop (any destination address).
	fwdSenders := newSet("fwd_senders", nil, nftables.TypeIFName, nftables.TypeEtherAddr)
	fwdReceivers := newSet("fwd_receivers", nil, nftables.TypeIFName, tAddr)
	sgOutFwd := newSet("sg_out_fwd", &tVerdict, nftables.TypeIFName, nftables.TypeEtherAddr)
	sgInFwd := newSet("sg_in_fwd", &tVerdict, nftables.TypeIFName, tAddr)

	// The router's own addresses: each subnet's base+1 and base+2, the
	// VPC block's base+2 and 169.254.169.253 (where the resolver also
	// answers, as Amazon's DNS does).
	seenRouter := map[netip.Addr]bool{}
	addRouter := func(a netip.Addr) {
		if !a.IsValid() || seenRouter[a] {
			return
		}
		seenRouter[a] = true
		k, kt := key(kAddr(a))
		routerAddrs.add(elem{key: k, keyText: kt})
	}
	var naclChains []*chain
	for _, s := range subnets {
		k, kt := key(kIf(s.Bridge))
		bridges.add(elem{key: k, keyText: kt})
		for _, n := range []uint32{1, 2} {
			addRouter(subnetBase(s, n))
		}
		k, kt = key(kIf(s.Bridge), kIf(s.Bridge))
		hairpin.add(elem{key: k, keyText: kt})
		out, in := "nacl_out_"+s.ID, "nacl_in_"+s.ID
		k, kt = key(kIf(s.Bridge))
		naclOut.add(elem{key: k, keyText: kt, verdict: jumpElem(out)})
		naclIn.add(elem{key: k, keyText: kt, verdict: jumpElem(in)})
		naclChains = append(naclChains,
			&chain{name: out, rules: naclRules(s.Outbound, fIPDaddr)},
			&chain{name: in, rules: naclRules(s.Inbound, fIPSaddr)})
	}

	// Security groups: one chain pair per distinct set of groups.
	groups := map[string]Group{}
	for _, g := range p.Groups {
		groups[g.ID] = g
	}
	members := map[string][]netip.Addr{}
	for _, e := range enis {
		for _, g := range groupSetKey(e.Groups) {
			members[g] = append(members[g], e.IP)
		}
	}
	referenced := map[string]bool{}
	sgChains := map[string]*chain{}
	var sgChainOrder []string
	for _, e := range enis {
		br := subnetByID[e.SubnetID].Bridge
		ids := groupSetKey(e.Groups)
		outName, inName := groupChainName("sgo", ids), groupChainName("sgi", ids)
		if _, ok := sgChains[outName]; !ok {
			sgChains[outName] = &chain{name: outName, rules: sgRules(ids, groups, true, referenced)}
			sgChains[inName] = &chain{name: inName, rules: sgRules(ids, groups, false, referenced)}
			sgChainOrder = append(sgChainOrder, outName, inName)
		}
		k, kt := key(kIf(br), kAddr(e.IP))
		eniSet.add(elem{key: k, keyText: kt})
		if e.NoSourceDestCheck {
			// Only in the _fwd maps, which also match its own
			// address (the next hop of a connected route is the
			// destination), so its groups are evaluated once.
			fwdReceivers.add(elem{key: k, keyText: kt})
			sgInFwd.add(elem{key: k, keyText: kt, verdict: jumpElem(inName)})
			m := e.MAC
			k, kt := key(kIf(br), func() ([]byte, string) { return []byte(m), m.String() })
			fwdSenders.add(elem{key: k, keyText: kt})
			sgOutFwd.add(elem{key: k, keyText: kt, verdict: jumpElem(outName)})
		} else {
			sgOut.add(elem{key: k, keyText: kt, verdict: jumpElem(outName)})
			sgIn.add(elem{key: k, keyText: kt, verdict: jumpElem(inName)})
		}
		if e.PublicIP.IsValid() {
			k, kt := key(kAddr(e.IP))
			public.add(elem{key: k, keyText: kt})
			dnatMap.add(elem{key: [][]byte{addrKey(e.PublicIP)}, keyText: []string{e.PublicIP.String()}, val: addrKey(e.IP), valText: e.IP.String()})
			snatMap.add(elem{key: [][]byte{addrKey(e.IP)}, keyText: []string{e.IP.String()}, val: addrKey(e.PublicIP), valText: e.PublicIP.String()})
		}
	}
	sort.Strings(sgChainOrder)
	var memberSets []*set
	refs := make([]string, 0, len(referenced))
	for g := range referenced {
		refs = append(refs, g)
	}
	sort.Strings(refs)
	for _, g := range refs {
		s := newSet(memberSetName(g), nil, tAddr)
		for _, a := range members[g] {
			k, kt := key(kAddr(a))
			s.add(elem{key: k, keyText: kt})
		}
		memberSets = append(memberSets, s)
	}

	forwarders := len(fwdSenders.elems) > 0
	t.sets = []*set{bridges, routerAddrs, hairpin, naclOut, naclIn, eniSet, sgOut, sgIn, public, dnatMap, snatMap}
	if forwarders {
		t.sets = append(t.sets, fwdSenders, fwdReceivers, sgOutFwd, sgInFwd)
	}
	t.sets = append(t.sets, memberSets...)
	for _, s := range t.sets {
		sortElems(s.elems)
	}

	// forward: DESIGN's order. With source/destination check off an ENI
	// is found by its MAC when it sends and by the route's next hop when
	// it receives, instead of by its address: it may send from any source
	// and receive for any destination a route table sends to it. A route
	// naming an ENI with the check on delivers to it nothing but its own
	// address: the rest finds no accept and is dropped, as in AWS.
	fromENI := lookupTerm{fs: []field{fIIFName, fIPSaddr}, set: "enis"}
	toENI := lookupTerm{fs: []field{fOIFName, fIPDaddr}, set: "enis"}
	fromFwd := lookupTerm{fs: []field{fIIFName, fEthSaddr}, set: "fwd_senders"}
	toFwd := lookupTerm{fs: []field{fOIFName, fNexthop}, set: "fwd_receivers"}
	fwd := &chain{name: "forward", base: &baseChain{typ: nftables.ChainTypeFilter, hook: nftables.ChainHookForward, hookNm: "forward", prio: prioFilter, policy: nftables.ChainPolicyDrop}}
	fwd.rules = []rule{
		{terms: []term{nfproto(true, true), drop}, comment: "VPCs are IPv4-only"},
		{terms: []term{jump("nacl")}, comment: "stateless NACLs where a packet crosses a subnet boundary"},
		{terms: []term{ctState(ctEstablished | ctRelated), accept}},
		{terms: []term{ctState(ctInvalid), drop}},
		{terms: []term{vmapTerm{fs: []field{fIIFName, fIPSaddr}, set: "sg_out"}}, comment: "egress groups of the sending ENI"},
		{terms: []term{vmapTerm{fs: []field{fOIFName, fIPDaddr}, set: "sg_in"}}, comment: "ingress groups of the receiving ENI"},
	}
	if forwarders {
		fwd.rules = append(fwd.rules,
			rule{terms: []term{etherDep, vmapTerm{fs: []field{fIIFName, fEthSaddr}, set: "sg_out_fwd"}}, comment: "egress groups of a sending ENI without source/dest check"},
			rule{terms: []term{vmapTerm{fs: []field{fOIFName, fNexthop}, set: "sg_in_fwd"}}, comment: "ingress groups of the ENI without source/dest check a route sends to"})
	}
	fwd.rules = append(fwd.rules, rule{terms: []term{fromENI, toENI, accept}, comment: "ENI to ENI"})
	if forwarders {
		fwd.rules = append(fwd.rules,
			rule{terms: []term{fromENI, toFwd, accept}, comment: "ENI to an ENI without source/dest check"},
			rule{terms: []term{etherDep, fromFwd, toENI, accept}, comment: "ENI without source/dest check to ENI"},
			rule{terms: []term{etherDep, fromFwd, toFwd, accept}, comment: "between ENIs without source/dest check"})
	}
	if gw := p.Gateway; gw != nil {
		fwd.rules = append(fwd.rules,
			rule{terms: []term{iif(gw.Link), ctTerm{key: expr.CtKeySTATUS, bits: ctStatusDNAT, show: "dnat"}, lookupTerm{fs: []field{fOIFName, fIPDaddr}, set: "enis"}, accept}, comment: "internet to a public IP"},
			rule{terms: []term{lookupTerm{fs: []field{fIIFName, fIPSaddr}, set: "enis"}, oif(gw.Link), lookupTerm{fs: []field{fIPSaddr}, set: "public_enis"}, accept}, comment: "ENI with a public IP to the internet"})
		for _, n := range sortedNATs(gw.NATs) {
			for _, src := range n.Sources {
				r := rule{terms: []term{lookupTerm{fs: []field{fIIFName, fIPSaddr}, set: "enis"}, oif(gw.Link)}, comment: "through " + n.ID}
				if src.Bits() > 0 {
					r.terms = append(r.terms, prefixTerm{f: fIPSaddr, p: src})
				}
				r.terms = append(r.terms, accept)
				fwd.rules = append(fwd.rules, r)
			}
		}
	}

	if p.VPCCIDR.IsValid() {
		addRouter(subnetBase(Subnet{CIDR: p.VPCCIDR}, 2))
	}
	addRouter(amazonDNS)

	nacl := &chain{name: "nacl", rules: []rule{
		{terms: []term{lookupTerm{fs: []field{fIIFName, fOIFName}, set: "hairpin"}, ret}, comment: "same subnet: no NACL"},
		{terms: []term{vmapTerm{fs: []field{fIIFName}, set: "nacl_out"}}, comment: "outbound entries of the source subnet"},
		{terms: []term{vmapTerm{fs: []field{fOIFName}, set: "nacl_in"}}, comment: "inbound entries of the destination subnet"},
	}}
	if gw := p.Gateway; gw != nil {
		nacl.rules = append(nacl.rules, natGatewayNACLRules(gw, subnetByID)...)
	}

	input := &chain{name: "input", base: &baseChain{typ: nftables.ChainTypeFilter, hook: nftables.ChainHookInput, hookNm: "input", prio: prioFilter, policy: nftables.ChainPolicyDrop}}
	fromBridge := lookupTerm{fs: []field{fIIFName}, set: "bridges"}
	toRouter := lookupTerm{fs: []field{fIPDaddr}, set: "router_addrs"}
	input.rules = []rule{
		{terms: []term{iif("lo"), accept}},
		{terms: []term{ctState(ctEstablished | ctRelated), accept}},
		{terms: []term{ctState(ctInvalid), drop}},
		{terms: []term{nfproto(true, true), drop}},
		{terms: []term{fromBridge, l4proto(ProtoUDP), rangeTerm{f: fDport, lo: 67, hi: 67}, accept}, comment: "DHCP"},
		{terms: []term{fromBridge, toRouter, l4proto(ProtoUDP), rangeTerm{f: fDport, lo: 53, hi: 53}, accept}, comment: "DNS"},
		{terms: []term{fromBridge, toRouter, l4proto(ProtoTCP), rangeTerm{f: fDport, lo: 53, hi: 53}, accept}, comment: "DNS"},
		{terms: []term{fromBridge, ipAddr(fIPDaddr, imds), l4proto(ProtoTCP), rangeTerm{f: fDport, lo: 80, hi: 80}, accept}, comment: "instance metadata"},
		{terms: []term{fromBridge, ipAddr(fIPDaddr, imds), l4proto(ProtoTCP), rangeTerm{f: fDport, lo: APIPort, hi: APIPort}, accept}, comment: "labcloud API endpoint"},
		{terms: []term{fromBridge, toRouter, l4proto(ProtoICMP), u8(fICMPType, 8), accept}, comment: "ping the router"},
	}

	pre := &chain{name: "prerouting", base: &baseChain{typ: nftables.ChainTypeNAT, hook: nftables.ChainHookPrerouting, hookNm: "prerouting", prio: prioDstNAT, policy: nftables.ChainPolicyAccept}}
	post := &chain{name: "postrouting", base: &baseChain{typ: nftables.ChainTypeNAT, hook: nftables.ChainHookPostrouting, hookNm: "postrouting", prio: prioSrcNAT, policy: nftables.ChainPolicyAccept}}
	if gw := p.Gateway; gw != nil {
		pre.rules = []rule{{terms: []term{iif(gw.Link), nfproto(true, false), natMapTerm{dnat: true, f: fIPDaddr, m: "dnat_public"}}, comment: "public and elastic IPs"}}
		for _, n := range sortedNATs(gw.NATs) {
			for _, src := range n.Sources {
				r := rule{terms: []term{oif(gw.Link), nfproto(true, false)}, comment: n.ID}
				if src.Bits() > 0 {
					r.terms = append(r.terms, prefixTerm{f: fIPSaddr, p: src})
				}
				r.terms = append(r.terms, natTerm{to: n.PublicIP})
				post.rules = append(post.rules, r)
			}
		}
		post.rules = append(post.rules, rule{terms: []term{oif(gw.Link), nfproto(true, false), natMapTerm{f: fIPSaddr, m: "snat_private"}}, comment: "public and elastic IPs"})
	}

	t.chains = []*chain{fwd, input, pre, post, nacl}
	t.chains = append(t.chains, naclChains...)
	for _, n := range sgChainOrder {
		t.chains = append(t.chains, sgChains[n])
	}
	addIPv4Dependency(t)
	return t
}

// natGatewayNACLRules make traffic through a NAT gateway cross the NACL
// of the gateway's subnet, as it does in AWS where the gateway is an
// interface in that subnet: a private instance's packet enters the
// subnet (inbound entries, peer: the instance) and leaves it for the
// internet (outbound entries, peer: the internet address); the reply
// enters from the internet (inbound, peer: the internet address) and
// leaves for the instance (outbound, peer: the instance). The chains
// already take the peer from ip saddr (inbound) and ip daddr (outbound),
// so jumping to both in each direction makes exactly these four checks.
// Replies are matched after the kernel has undone the NAT (ip daddr is
// the instance again).
func natGatewayNACLRules(gw *Gateway, subnetByID map[string]Subnet) []rule {
	var rs []rule
	for _, n := range sortedNATs(gw.NATs) {
		if _, ok := subnetByID[n.SubnetID]; !ok {
			continue
		}
		in, out := "nacl_in_"+n.SubnetID, "nacl_out_"+n.SubnetID
		for _, src := range n.Sources {
			for _, dir := range []struct {
				link term
				peer field
				what string
			}{{oif(gw.Link), fIPSaddr, "to the internet"}, {iif(gw.Link), fIPDaddr, "back from the internet"}} {
				for _, c := range []string{in, out} {
					r := rule{terms: []term{dir.link}, comment: n.ID + "'s subnet " + dir.what}
					if src.Bits() > 0 {
						r.terms = append(r.terms, prefixTerm{f: dir.peer, p: src})
					}
					r.terms = append(r.terms, jump(c))
					rs = append(rs, r)
				}
			}
		}
	}
	return rs
}

func sortedNATs(ns []NAT) []NAT {
	out := append([]NAT(nil), ns...)
	sort.Slice(out, func(i, j int) bool { return out[i].ID < out[j].ID })
	return out
}

func memberSetName(g string) string { return "members_" + g }

// protoTerms matches a protocol with TCP/UDP ports or ICMP type/code.
// lo/hi < 0 or the full port range mean any port; icmpType/icmpCode -1
// mean any.
func protoTerms(proto, lo, hi, icmpType, icmpCode int) []term {
	if proto == ProtoAll {
		return nil
	}
	ts := []term{l4proto(proto)}
	switch proto {
	case ProtoTCP, ProtoUDP:
		if lo < 0 || hi < 0 || (lo == 0 && hi == 0) || (lo <= 0 && hi >= 65535) {
			break
		}
		if hi < lo {
			hi = lo
		}
		ts = append(ts, rangeTerm{f: fDport, lo: uint16(lo), hi: uint16(min(hi, 65535))})
	case ProtoICMP:
		if icmpType >= 0 {
			ts = append(ts, u8(fICMPType, icmpType))
			if icmpCode >= 0 {
				ts = append(ts, u8(fICMPCode, icmpCode))
			}
		}
	}
	return ts
}

// naclRules renders one direction of a subnet's NACL: peer is the field
// holding the entry's CIDR (ip daddr outbound, ip saddr inbound).
func naclRules(entries []ACLEntry, peer field) []rule {
	es := append([]ACLEntry(nil), entries...)
	sort.Slice(es, func(i, j int) bool { return es[i].RuleNumber < es[j].RuleNumber })
	var rs []rule
	for _, e := range es {
		var ts []term
		ts = append(ts, protoTerms(e.Protocol, e.FromPort, e.ToPort, e.ICMPType, e.ICMPCode)...)
		if e.CIDR.Bits() > 0 {
			ts = append(ts, prefixTerm{f: peer, p: e.CIDR})
		}
		v, what := ret, "allow"
		if !e.Allow {
			v, what = drop, "deny"
		}
		ts = append(ts, v)
		rs = append(rs, rule{terms: ts, comment: fmt.Sprintf("rule %d %s", e.RuleNumber, what)})
	}
	return append(rs, rule{terms: []term{drop}, comment: "rule * deny"})
}

// sgRules renders the union of the groups' egress (out) or ingress rules:
// a matching packet returns to forward, anything else is dropped.
func sgRules(ids []string, groups map[string]Group, out bool, referenced map[string]bool) []rule {
	peer := fIPSaddr
	if out {
		peer = fIPDaddr
	}
	seen := map[string]bool{}
	var rs []rule
	for _, id := range ids {
		g := groups[id]
		list := g.Ingress
		if out {
			list = g.Egress
		}
		for _, r := range list {
			base := protoTerms(r.Protocol, r.FromPort, r.ToPort, r.FromPort, r.ToPort)
			var peers [][]term
			for _, c := range r.CIDRs {
				if c.Bits() == 0 {
					peers = append(peers, nil)
				} else {
					peers = append(peers, []term{prefixTerm{f: peer, p: c}})
				}
			}
			for _, pg := range r.Groups {
				referenced[pg] = true
				peers = append(peers, []term{lookupTerm{fs: []field{peer}, set: memberSetName(pg)}})
			}
			for _, pt := range peers {
				ts := append(append(append([]term(nil), base...), pt...), ret)
				rl := rule{terms: ts, comment: id}
				if len(ts) == 1 {
					// Everything is allowed (AWS's default egress): the
					// union needs no other rule and no final drop.
					return []rule{rl}
				}
				k := ruleKey(rl)
				if seen[k] {
					continue
				}
				seen[k] = true
				rs = append(rs, rl)
			}
		}
	}
	return append(rs, rule{terms: []term{drop}})
}

func ruleKey(r rule) string {
	var parts []string
	for _, t := range r.terms {
		parts = append(parts, t.text())
	}
	return strings.Join(parts, " ")
}

// buildBridge renders the anti-spoofing: sets of what each known tap may
// send, and a handful of rules that look frames up in them, so the rule
// count stays flat however many ENIs there are.
func buildBridge(p Policy) *table {
	t := &table{family: nftables.TableFamilyBridge, name: BridgeTable}
	tEther := nftables.TypeEtherAddr
	ipOK := newSet("tap_mac_ip", nil, nftables.TypeIFName, tEther, tAddr)
	macOK := newSet("tap_mac", nil, nftables.TypeIFName, tEther)
	anyIP := newSet("tap_mac_any_ip", nil, nftables.TypeIFName, tEther)
	for _, e := range p.ENIs {
		mac := func() ([]byte, string) { return []byte(e.MAC), e.MAC.String() }
		k, kt := key(kIf(e.Tap), mac, kAddr(e.IP))
		ipOK.add(elem{key: k, keyText: kt})
		k, kt = key(kIf(e.Tap), mac)
		macOK.add(elem{key: k, keyText: kt})
		if e.NoSourceDestCheck {
			anyIP.add(elem{key: k, keyText: kt})
		}
	}
	sortElems(ipOK.elems)
	sortElems(macOK.elems)
	sortElems(anyIP.elems)
	t.sets = []*set{ipOK, macOK}
	zero := netip.AddrFrom4([4]byte{})
	ip := etherType(0x0800, "ip")
	arp := etherType(0x0806, "arp")
	tapMAC := lookupTerm{fs: []field{fIIFName, fEthSaddr}, set: "tap_mac"}
	pre := &chain{name: "prerouting", base: &baseChain{typ: nftables.ChainTypeFilter, hook: nftables.ChainHookPrerouting, hookNm: "prerouting", prio: prioBrFirst, policy: nftables.ChainPolicyDrop}}
	pre.rules = []rule{
		{terms: []term{ip, lookupTerm{fs: []field{fIIFName, fEthSaddr, fIPSaddr}, set: "tap_mac_ip"}, accept}, comment: "IPv4 from the tap's own MAC and address"},
		{terms: []term{ip, ipAddr(fIPSaddr, zero), l4proto(ProtoUDP), rangeTerm{f: fSport, lo: 68, hi: 68}, rangeTerm{f: fDport, lo: 67, hi: 67}, tapMAC, accept}, comment: "DHCP before it has an address"},
		{terms: []term{arp, arpShape, tapMAC, lookupTerm{fs: []field{fIIFName, fARPSHA, fARPSPA}, set: "tap_mac_ip"}, accept}, comment: "ARP for its own address"},
		{terms: []term{arp, arpShape, ipAddr(fARPSPA, zero), tapMAC, lookupTerm{fs: []field{fIIFName, fARPSHA}, set: "tap_mac"}, accept}, comment: "ARP probe"},
	}
	if len(anyIP.elems) > 0 {
		t.sets = append(t.sets, anyIP)
		pre.rules = append(pre.rules[:1:1], append([]rule{
			{terms: []term{ip, lookupTerm{fs: []field{fIIFName, fEthSaddr}, set: "tap_mac_any_ip"}, accept}, comment: "IPv4 from the tap's own MAC, any source: source/dest check off"},
		}, pre.rules[1:]...)...)
	}
	t.chains = []*chain{pre}
	return t
}

// usesIP reports whether a term reads an IPv4 header field.
func usesIP(t term) bool {
	isIP := func(f field) bool { return f.name == fIPSaddr.name || f.name == fIPDaddr.name }
	switch v := t.(type) {
	case cmpTerm:
		return isIP(v.f)
	case prefixTerm:
		return isIP(v.f)
	case natMapTerm:
		return isIP(v.f)
	case lookupTerm:
		for _, f := range v.fs {
			if isIP(f) {
				return true
			}
		}
	case vmapTerm:
		for _, f := range v.fs {
			if isIP(f) {
				return true
			}
		}
	}
	return false
}

// addIPv4Dependency puts "meta nfproto ipv4" before the first IPv4
// header match of every rule of an inet table that lacks it, as nft does
// when it parses such a rule: the loaded ruleset then reads back as
// plain "ip saddr" and is identical to the one nft -f would load from
// Render's text.
func addIPv4Dependency(t *table) {
	for _, c := range t.chains {
		for i, r := range c.rules {
			for j, tm := range r.terms {
				if ct, ok := tm.(cmpTerm); ok && ct.f.name == fNFProto.name {
					break
				}
				if usesIP(tm) {
					ts := append(append(append([]term(nil), r.terms[:j]...), nfproto(true, false)), r.terms[j:]...)
					c.rules[i].terms = ts
					break
				}
			}
		}
	}
}
