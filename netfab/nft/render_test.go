package nft

import (
	"flag"
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

var update = flag.Bool("update", false, "rewrite testdata/*.golden from Render")

type goldenCase struct {
	name string
	p    Policy
}

func mac(s string) net.HardwareAddr {
	m, err := net.ParseMAC(s)
	if err != nil {
		panic(err)
	}
	return m
}

// goldenCases are Policies covering every construct the builder emits.
func goldenCases() []goldenCase {
	sa := Subnet{ID: "subnet-0a1", Bridge: "lcb000000a1", CIDR: pfx("10.0.1.0/24"),
		Inbound: []ACLEntry{
			{RuleNumber: 100, Protocol: ProtoAll, CIDR: any4, Allow: true},
			{RuleNumber: 90, Protocol: ProtoTCP, FromPort: 22, ToPort: 22, CIDR: pfx("192.0.2.0/24")},
			{RuleNumber: 95, Protocol: ProtoICMP, ICMPType: 8, ICMPCode: -1, CIDR: pfx("10.0.0.0/16"), Allow: true},
		},
		Outbound: []ACLEntry{
			{RuleNumber: 100, Protocol: ProtoTCP, FromPort: 1024, ToPort: 65535, CIDR: any4, Allow: true},
			{RuleNumber: 110, Protocol: ProtoUDP, FromPort: 53, ToPort: 53, CIDR: pfx("10.0.0.2/32"), Allow: true},
			{RuleNumber: 120, Protocol: 47, CIDR: any4, Allow: true},
		}}
	sb := Subnet{ID: "subnet-0b2", Bridge: "lcb000000b2", CIDR: pfx("10.0.2.0/24"), Inbound: allowAll, Outbound: allowAll}
	web := Group{ID: "sg-web", Egress: defaultEgress, Ingress: []Rule{
		{Protocol: ProtoTCP, FromPort: 80, ToPort: 80, CIDRs: cidrs("0.0.0.0/0")},
		{Protocol: ProtoTCP, FromPort: 8000, ToPort: 9000, CIDRs: cidrs("10.0.0.0/16", "192.0.2.7/32")},
		{Protocol: ProtoTCP, FromPort: 22, ToPort: 22, Groups: []string{"sg-admin"}},
		{Protocol: ProtoICMP, FromPort: -1, ToPort: -1, CIDRs: cidrs("10.0.0.0/16")},
	}}
	admin := Group{ID: "sg-admin", Egress: []Rule{{Protocol: ProtoTCP, FromPort: 22, ToPort: 22, Groups: []string{"sg-web"}}, {Protocol: ProtoUDP, FromPort: 0, ToPort: 65535, CIDRs: cidrs("10.0.0.2/32")}}}
	db := Group{ID: "sg-db", Egress: defaultEgress, Ingress: []Rule{
		{Protocol: ProtoTCP, FromPort: 5432, ToPort: 5432, Groups: []string{"sg-web", "sg-db"}},
		{Protocol: ProtoICMP, FromPort: 3, ToPort: 4, CIDRs: cidrs("0.0.0.0/0")},
		{Protocol: 50, CIDRs: cidrs("10.0.2.0/24")},
	}}
	enis := []ENI{
		{ID: "eni-01", SubnetID: "subnet-0a1", Tap: "lct00000001", MAC: mac("02:00:00:00:00:01"), IP: addr("10.0.1.10"), Groups: []string{"sg-web"}, PublicIP: addr("203.0.113.10")},
		{ID: "eni-02", SubnetID: "subnet-0a1", Tap: "lct00000002", MAC: mac("02:00:00:00:00:02"), IP: addr("10.0.1.11"), Groups: []string{"sg-web", "sg-admin"}},
		{ID: "eni-03", SubnetID: "subnet-0b2", Tap: "lct00000003", MAC: mac("02:00:00:00:00:03"), IP: addr("10.0.2.10"), Groups: []string{"sg-db"}},
		{ID: "eni-04", SubnetID: "subnet-0b2", Tap: "lct00000004", MAC: mac("02:00:00:00:00:04"), IP: addr("10.0.2.11"), Groups: []string{"sg-db"}},
	}
	return []goldenCase{
		{name: "empty", p: Policy{}},
		{name: "one_subnet_no_enis", p: Policy{VPCCIDR: pfx("10.0.0.0/16"), Subnets: []Subnet{sb}}},
		{name: "vpc", p: Policy{VPCCIDR: pfx("10.0.0.0/16"), Subnets: []Subnet{sa, sb}, ENIs: enis, Groups: []Group{web, admin, db}}},
		{name: "vpc_with_gateways", p: Policy{VPCCIDR: pfx("10.0.0.0/16"), Subnets: []Subnet{sa, sb}, ENIs: enis, Groups: []Group{web, admin, db},
			Gateway: &Gateway{Link: "lcg0000vpc", NATs: []NAT{
				{ID: "nat-2", PublicIP: addr("203.0.113.21"), Sources: cidrs("10.0.3.0/24")},
				{ID: "nat-1", PublicIP: addr("203.0.113.20"), Sources: cidrs("10.0.2.0/24"), SubnetID: "subnet-0a1"},
			}}}},
		// eni-01 is a NAT instance: source/dest check off.
		{name: "vpc_source_dest_check_off", p: Policy{VPCCIDR: pfx("10.0.0.0/16"), Subnets: []Subnet{sa, sb}, ENIs: forwarder(enis, "eni-01"), Groups: []Group{web, admin, db},
			Gateway: &Gateway{Link: "lcg0000vpc"}}},
	}
}

// forwarder returns a copy of enis with the source/dest check of id off.
func forwarder(enis []ENI, id string) []ENI {
	out := append([]ENI(nil), enis...)
	for i := range out {
		if out[i].ID == id {
			out[i].NoSourceDestCheck = true
		}
	}
	return out
}

func TestRenderGolden(t *testing.T) {
	for _, tc := range goldenCases() {
		t.Run(tc.name, func(t *testing.T) {
			got := Render(tc.p)
			path := filepath.Join("testdata", tc.name+".golden")
			if *update {
				if err := os.WriteFile(path, []byte(got), 0o644); err != nil {
					t.Fatal(err)
				}
			}
			want, err := os.ReadFile(path)
			if err != nil {
				t.Fatalf("%v (run go test -run TestRenderGolden -update)", err)
			}
			if got != string(want) {
				t.Errorf("Render differs from %s (go test -run TestRenderGolden -update rewrites it):\n%s", path, got)
			}
			// Policy order must not matter.
			rev := tc.p
			rev.ENIs = reversed(tc.p.ENIs)
			rev.Subnets = reversed(tc.p.Subnets)
			rev.Groups = reversed(tc.p.Groups)
			if Render(rev) != got {
				t.Error("Render depends on the order of ENIs, subnets or groups")
			}
		})
	}
}

func reversed[T any](s []T) []T {
	out := make([]T, len(s))
	for i, v := range s {
		out[len(s)-1-i] = v
	}
	return out
}

func TestValidate(t *testing.T) {
	sa, _ := subnetsAB()
	ok := ENI{ID: "eni-1", SubnetID: sa.ID, Tap: "nft1", MAC: mac("02:00:00:00:00:01"), IP: addr("10.77.1.5")}
	for _, tc := range []struct {
		name string
		p    Policy
		want string // substring of the error, "" for valid
	}{
		{name: "valid", p: Policy{Subnets: []Subnet{sa}, ENIs: []ENI{ok}}},
		{name: "unknown subnet", p: Policy{ENIs: []ENI{ok}}, want: "names subnet"},
		{name: "tap name too long", p: Policy{Subnets: []Subnet{sa}, ENIs: []ENI{func() ENI { e := ok; e.Tap = "nft0123456789abc"; return e }()}}, want: "1-15 characters"},
		{name: "IPv6 ENI", p: Policy{Subnets: []Subnet{sa}, ENIs: []ENI{func() ENI { e := ok; e.IP = addr("2001:db8::1"); return e }()}}, want: "not IPv4"},
		{name: "no MAC", p: Policy{Subnets: []Subnet{sa}, ENIs: []ENI{func() ENI { e := ok; e.MAC = nil; return e }()}}, want: "MAC"},
		{name: "duplicate IP", p: Policy{Subnets: []Subnet{sa}, ENIs: []ENI{ok, func() ENI { e := ok; e.ID, e.Tap = "eni-2", "nft2"; return e }()}}, want: "both have IP"},
		{name: "tap is the bridge", p: Policy{Subnets: []Subnet{sa}, ENIs: []ENI{func() ENI { e := ok; e.Tap = sa.Bridge; return e }()}}, want: "used by both"},
		{name: "repeated NACL number", p: Policy{Subnets: []Subnet{func() Subnet { s := sa; s.Inbound = append(allowAll, allowAll...); return s }()}}, want: "repeated"},
		{name: "invalid SG CIDR", p: Policy{Groups: []Group{{ID: "sg-1", Ingress: []Rule{{Protocol: ProtoAll, CIDRs: []netip.Prefix{{}}}}}}}, want: "not an IPv4 CIDR"},
		{name: "group ID with a space", p: Policy{ENIs: []ENI{func() ENI { e := ok; e.Groups = []string{"sg 1"}; return e }()}, Subnets: []Subnet{sa}}, want: "security group ID"},
		{name: "subnet ID with a quote", p: Policy{Subnets: []Subnet{func() Subnet { s := sa; s.ID = `a"b`; return s }()}}, want: "subnet ID"},
		{name: "NAT without public IP", p: Policy{Gateway: &Gateway{Link: "gw", NATs: []NAT{{ID: "nat-1"}}}}, want: "NAT gateway nat-1"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			err := validate(tc.p)
			switch {
			case tc.want == "" && err != nil:
				t.Fatalf("want valid, got %v", err)
			case tc.want != "" && (err == nil || !strings.Contains(err.Error(), tc.want)):
				t.Fatalf("want an error containing %q, got %v", tc.want, err)
			}
			if tc.want != "" && !strings.HasPrefix(Render(tc.p), "# invalid policy") {
				t.Error("Render of an invalid policy is not the error comment")
			}
		})
	}
}
