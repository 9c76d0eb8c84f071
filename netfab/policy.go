package netfab

import (
	"net/netip"
	"sort"
	"strconv"

	"github.com/labcloud/labcloud/netfab/nft"
)

// Conversions from the EC2 records to the packet filter's contract
// (netfab/nft.Policy). They are pure: the integrator's sync loads the
// records and hands the result to nft.

// nftProto maps a stored protocol ("-1", "tcp", "udp", "icmp",
// "icmpv6" or a decimal number) to nft's: nft.ProtoAll or an IP protocol
// number. An unparsable value (never stored by the API) matches nothing
// rather than everything: -2 is no protocol, which fails closed.
func nftProto(p string) int {
	switch p {
	case "-1", "all", "":
		return nft.ProtoAll
	case "tcp":
		return nft.ProtoTCP
	case "udp":
		return nft.ProtoUDP
	case "icmp":
		return nft.ProtoICMP
	case "icmpv6":
		return 58
	}
	n, err := strconv.Atoi(p)
	if err != nil || n < -1 || n > 255 {
		return -2
	}
	return n
}

// nftGroups converts the security groups that the ENIs name, and the
// groups those groups' rules reference, into nft.Groups (sorted by ID).
// Rules with the same protocol and ports are merged into one nft.Rule
// with all their peers, as DescribeSecurityGroups groups them.
func nftGroups(groups []SecurityGroup, enis []ENI) []nft.Group {
	byID := map[string]SecurityGroup{}
	for _, g := range groups {
		byID[g.ID] = g
	}
	want := map[string]bool{}
	for _, e := range enis {
		for _, id := range e.Groups {
			want[id] = true
		}
	}
	for id := range want {
		g := byID[id]
		for _, r := range append(append([]SGRule{}, g.Ingress...), g.Egress...) {
			if r.GroupID != "" {
				want[r.GroupID] = true
			}
		}
	}
	var out []nft.Group
	for id := range want {
		g, ok := byID[id]
		if !ok {
			continue // a group being deleted: its ENIs get no rules from it
		}
		out = append(out, nft.Group{ID: g.ID, Ingress: nftRules(g.Ingress), Egress: nftRules(g.Egress)})
	}
	sort.Slice(out, func(i, j int) bool { return out[i].ID < out[j].ID })
	return out
}

func nftRules(rules []SGRule) []nft.Rule {
	type key struct{ proto, from, to int }
	out := []nft.Rule{}
	at := map[key]int{}
	for _, r := range rules {
		p := nftProto(r.Protocol)
		if p == -2 {
			continue
		}
		from, to := r.FromPort, r.ToPort
		switch p {
		case nft.ProtoTCP, nft.ProtoUDP, nft.ProtoICMP, 58:
		default:
			from, to = -1, -1 // every port: the protocol has none
		}
		k := key{p, from, to}
		i, ok := at[k]
		if !ok {
			i = len(out)
			at[k] = i
			out = append(out, nft.Rule{Protocol: p, FromPort: from, ToPort: to})
		}
		if r.CIDR != "" {
			if pfx, err := netip.ParsePrefix(r.CIDR); err == nil {
				out[i].CIDRs = append(out[i].CIDRs, pfx.Masked())
			}
		}
		if r.GroupID != "" {
			out[i].Groups = append(out[i].Groups, r.GroupID)
		}
	}
	// A rule whose peers all failed to parse must not stay as a peerless
	// (and so ambiguous) rule.
	kept := out[:0]
	for _, r := range out {
		if len(r.CIDRs) > 0 || len(r.Groups) > 0 {
			kept = append(kept, r)
		}
	}
	return kept
}

// nftACL converts a network ACL's entries into nft's inbound and outbound
// entries (sorted by rule number). tcp/udp entries carry their port
// range; icmp entries their type and code (-1 any); other protocols match
// every port (0-0) and any ICMP type (-1). Entries that cannot be parsed
// (never stored by the API) fail closed: an allow is dropped (the final
// deny catches its traffic), a deny becomes a deny of everything.
func nftACL(acl NetworkACL) (in, out []nft.ACLEntry) {
	in, out = []nft.ACLEntry{}, []nft.ACLEntry{}
	for _, e := range acl.Entries {
		p := nftProto(e.Protocol)
		cidr, err := netip.ParsePrefix(e.CIDR)
		if p == -2 || err != nil {
			if e.RuleAction == "allow" {
				continue
			}
			p, cidr = nft.ProtoAll, netip.MustParsePrefix("0.0.0.0/0")
		}
		n := nft.ACLEntry{RuleNumber: e.RuleNumber, Protocol: p, CIDR: cidr.Masked(), Allow: e.RuleAction == "allow",
			ICMPType: -1, ICMPCode: -1}
		switch p {
		case nft.ProtoTCP, nft.ProtoUDP:
			n.FromPort, n.ToPort = e.FromPort, e.ToPort
		case nft.ProtoICMP, 58:
			n.ICMPType, n.ICMPCode = e.ICMPType, e.ICMPCode
		}
		if e.Egress {
			out = append(out, n)
		} else {
			in = append(in, n)
		}
	}
	byNumber := func(s []nft.ACLEntry) {
		sort.Slice(s, func(i, j int) bool { return s[i].RuleNumber < s[j].RuleNumber })
	}
	byNumber(in)
	byNumber(out)
	return in, out
}
