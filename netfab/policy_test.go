package netfab

import (
	"net/netip"
	"reflect"
	"testing"

	"github.com/labcloud/labcloud/netfab/nft"
)

func pfx(s string) netip.Prefix { return netip.MustParsePrefix(s) }

func TestPolicyGroups(t *testing.T) {
	def := SecurityGroup{ID: "sg-def", Ingress: []SGRule{{ID: "r1", Protocol: "-1", FromPort: -1, ToPort: -1, GroupID: "sg-def"}},
		Egress: []SGRule{{ID: "r2", Protocol: "-1", FromPort: -1, ToPort: -1, CIDR: "0.0.0.0/0"}}}
	web := SecurityGroup{ID: "sg-web", Ingress: []SGRule{
		{ID: "a", Protocol: "tcp", FromPort: 22, ToPort: 22, CIDR: "10.0.0.0/8"},
		{ID: "b", Protocol: "tcp", FromPort: 22, ToPort: 22, GroupID: "sg-admin"},
		{ID: "c", Protocol: "tcp", FromPort: 22, ToPort: 22, CIDR: "192.0.2.0/24"},
		{ID: "d", Protocol: "udp", FromPort: 53, ToPort: 53, CIDR: "0.0.0.0/0"},
		{ID: "e", Protocol: "icmp", FromPort: 8, ToPort: -1, CIDR: "0.0.0.0/0"},
		{ID: "f", Protocol: "50", FromPort: -1, ToPort: -1, CIDR: "0.0.0.0/0"},
		{ID: "g", Protocol: "bogus", CIDR: "0.0.0.0/0"},
	}, Egress: []SGRule{}}
	admin := SecurityGroup{ID: "sg-admin", Egress: []SGRule{{ID: "x", Protocol: "-1", FromPort: -1, ToPort: -1, CIDR: "0.0.0.0/0"}}}
	unused := SecurityGroup{ID: "sg-unused", Ingress: []SGRule{{ID: "u", Protocol: "-1", FromPort: -1, ToPort: -1, CIDR: "0.0.0.0/0"}}}
	all := []SecurityGroup{unused, web, def, admin}

	tests := []struct {
		name string
		enis []ENI
		want []nft.Group
	}{
		{name: "no interfaces, no groups", enis: nil, want: nil},
		{name: "default group and its self reference", enis: []ENI{{ID: "eni-1", Groups: []string{"sg-def"}}},
			want: []nft.Group{{ID: "sg-def",
				Ingress: []nft.Rule{{Protocol: nft.ProtoAll, FromPort: -1, ToPort: -1, Groups: []string{"sg-def"}}},
				Egress:  []nft.Rule{{Protocol: nft.ProtoAll, FromPort: -1, ToPort: -1, CIDRs: []netip.Prefix{pfx("0.0.0.0/0")}}}}}},
		{name: "rules merged by protocol and ports; referenced group included; unparsable dropped",
			enis: []ENI{{ID: "eni-2", Groups: []string{"sg-web"}}, {ID: "eni-3", Groups: []string{"sg-web", "sg-missing"}}},
			want: []nft.Group{
				{ID: "sg-admin", Ingress: []nft.Rule{}, Egress: []nft.Rule{{Protocol: nft.ProtoAll, FromPort: -1, ToPort: -1, CIDRs: []netip.Prefix{pfx("0.0.0.0/0")}}}},
				{ID: "sg-web", Ingress: []nft.Rule{
					{Protocol: nft.ProtoTCP, FromPort: 22, ToPort: 22, CIDRs: []netip.Prefix{pfx("10.0.0.0/8"), pfx("192.0.2.0/24")}, Groups: []string{"sg-admin"}},
					{Protocol: nft.ProtoUDP, FromPort: 53, ToPort: 53, CIDRs: []netip.Prefix{pfx("0.0.0.0/0")}},
					{Protocol: nft.ProtoICMP, FromPort: 8, ToPort: -1, CIDRs: []netip.Prefix{pfx("0.0.0.0/0")}},
					{Protocol: 50, FromPort: -1, ToPort: -1, CIDRs: []netip.Prefix{pfx("0.0.0.0/0")}},
				}, Egress: []nft.Rule{}},
			}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got := nftGroups(all, tc.enis)
			if !reflect.DeepEqual(got, tc.want) {
				t.Fatalf("nftGroups:\n got %+v\nwant %+v", got, tc.want)
			}
		})
	}
}

func TestPolicyACL(t *testing.T) {
	tests := []struct {
		name    string
		acl     NetworkACL
		in, out []nft.ACLEntry
	}{
		{name: "default ACL", acl: NetworkACL{Entries: []ACLRule{
			{RuleNumber: 100, Protocol: "-1", RuleAction: "allow", CIDR: "0.0.0.0/0"},
			{RuleNumber: 100, Egress: true, Protocol: "-1", RuleAction: "allow", CIDR: "0.0.0.0/0"},
		}},
			in:  []nft.ACLEntry{{RuleNumber: 100, Protocol: nft.ProtoAll, ICMPType: -1, ICMPCode: -1, CIDR: pfx("0.0.0.0/0"), Allow: true}},
			out: []nft.ACLEntry{{RuleNumber: 100, Protocol: nft.ProtoAll, ICMPType: -1, ICMPCode: -1, CIDR: pfx("0.0.0.0/0"), Allow: true}}},
		{name: "new ACL denies all", acl: NetworkACL{}, in: []nft.ACLEntry{}, out: []nft.ACLEntry{}},
		{name: "sorted by number; ports for tcp/udp, type/code for icmp", acl: NetworkACL{Entries: []ACLRule{
			{RuleNumber: 100, Protocol: "-1", RuleAction: "allow", CIDR: "0.0.0.0/0"},
			{RuleNumber: 90, Protocol: "6", RuleAction: "deny", CIDR: "198.51.100.0/24", FromPort: 22, ToPort: 22},
			{RuleNumber: 80, Protocol: "1", RuleAction: "allow", CIDR: "0.0.0.0/0", ICMPType: 8, ICMPCode: -1},
			{RuleNumber: 100, Egress: true, Protocol: "17", RuleAction: "allow", CIDR: "10.0.0.0/8", FromPort: 1024, ToPort: 65535},
			{RuleNumber: 110, Egress: true, Protocol: "47", RuleAction: "allow", CIDR: "10.0.0.0/8"},
		}},
			in: []nft.ACLEntry{
				{RuleNumber: 80, Protocol: nft.ProtoICMP, ICMPType: 8, ICMPCode: -1, CIDR: pfx("0.0.0.0/0"), Allow: true},
				{RuleNumber: 90, Protocol: nft.ProtoTCP, FromPort: 22, ToPort: 22, ICMPType: -1, ICMPCode: -1, CIDR: pfx("198.51.100.0/24")},
				{RuleNumber: 100, Protocol: nft.ProtoAll, ICMPType: -1, ICMPCode: -1, CIDR: pfx("0.0.0.0/0"), Allow: true},
			},
			out: []nft.ACLEntry{
				{RuleNumber: 100, Protocol: nft.ProtoUDP, FromPort: 1024, ToPort: 65535, ICMPType: -1, ICMPCode: -1, CIDR: pfx("10.0.0.0/8"), Allow: true},
				{RuleNumber: 110, Protocol: 47, ICMPType: -1, ICMPCode: -1, CIDR: pfx("10.0.0.0/8"), Allow: true},
			}},
		{name: "unparsable entries fail closed", acl: NetworkACL{Entries: []ACLRule{
			{RuleNumber: 10, Protocol: "bogus", RuleAction: "deny", CIDR: "10.0.0.0/8"},
			{RuleNumber: 20, Protocol: "-1", RuleAction: "allow", CIDR: "not-a-cidr"},
		}},
			in:  []nft.ACLEntry{{RuleNumber: 10, Protocol: nft.ProtoAll, ICMPType: -1, ICMPCode: -1, CIDR: pfx("0.0.0.0/0")}},
			out: []nft.ACLEntry{}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			in, out := nftACL(tc.acl)
			if !reflect.DeepEqual(in, tc.in) || !reflect.DeepEqual(out, tc.out) {
				t.Fatalf("nftACL:\n got in %+v\n    out %+v\nwant in %+v\n    out %+v", in, out, tc.in, tc.out)
			}
		})
	}
}
