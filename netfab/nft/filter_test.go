package nft

import (
	"fmt"
	"net"
	"net/netip"
	"strings"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

var (
	pfx  = netip.MustParsePrefix
	addr = netip.MustParseAddr
	any4 = pfx("0.0.0.0/0")
)

// allowAll is a default NACL direction: rule 100 allows everything.
var allowAll = []ACLEntry{{RuleNumber: 100, Protocol: ProtoAll, CIDR: any4, Allow: true}}

func subnetsAB() (Subnet, Subnet) {
	return Subnet{ID: "subnet-a", Bridge: "nfba", CIDR: pfx("10.77.1.0/24"), Inbound: allowAll, Outbound: allowAll},
		Subnet{ID: "subnet-b", Bridge: "nfbb", CIDR: pfx("10.77.2.0/24"), Inbound: allowAll, Outbound: allowAll}
}

// defaultEgress is a new group's egress: everything to everywhere.
var defaultEgress = []Rule{{Protocol: ProtoAll, CIDRs: []netip.Prefix{any4}}}

func cidrs(s ...string) []netip.Prefix {
	out := make([]netip.Prefix, len(s))
	for i, c := range s {
		out[i] = pfx(c)
	}
	return out
}

// sgLab: subnet A holds a1 and a2, subnet B holds b1; b1 serves tcp 22,
// 8080, 9000 and udp 5353, a2 serves tcp 22.
type sgLab struct {
	*lab
	sa, sb     Subnet
	a1, a2, b1 *inst
}

func newSGLab(t *testing.T) *sgLab {
	sa, sb := subnetsAB()
	l := newLab(t, sa, sb)
	s := &sgLab{lab: l, sa: sa, sb: sb,
		a1: l.addInstance("a1", sa, addr("10.77.1.10")),
		a2: l.addInstance("a2", sa, addr("10.77.1.11")),
		b1: l.addInstance("b1", sb, addr("10.77.2.10"))}
	for _, port := range []string{":22", ":8080", ":9000"} {
		serveTCP(t, s.b1.name, port)
	}
	serveUDP(t, s.b1.name, ":5353")
	serveTCP(t, s.a2.name, ":22")
	return s
}

// policy puts a1, a2 and b1 into the given groups.
func (s *sgLab) policy(a1, a2, b1 []string, groups ...Group) Policy {
	return Policy{VPCCIDR: pfx("10.77.0.0/16"), Subnets: []Subnet{s.sa, s.sb},
		ENIs:   []ENI{s.a1.eni("eni-a1", s.sa, a1...), s.a2.eni("eni-a2", s.sa, a2...), s.b1.eni("eni-b1", s.sb, b1...)},
		Groups: groups}
}

func TestSecurityGroups(t *testing.T) {
	s := newSGLab(t)
	b1 := func(port int) string { return hostport(s.b1.ip, port) }
	dflt := Group{ID: "sg-default", Egress: defaultEgress}
	all := []string{"sg-default"}

	t.Run("inbound denied by default, egress allowed", func(t *testing.T) {
		s.apply(s.policy(all, all, all, dflt))
		wantTCP(t, s.a1.name, b1(22), false)
		wantUDP(t, s.a1.name, b1(5353), false)
		wantPing(t, s.a1.name, s.b1.ip, false)
		wantTCP(t, s.a1.name, hostport(s.a2.ip, 22), false) // same subnet too
	})
	t.Run("allowed by CIDR, replies of the allowed flow pass", func(t *testing.T) {
		ssh := Group{ID: "sg-ssh", Egress: defaultEgress, Ingress: []Rule{{Protocol: ProtoTCP, FromPort: 22, ToPort: 22, CIDRs: cidrs("10.77.1.10/32")}}}
		s.apply(s.policy(all, all, []string{"sg-ssh"}, dflt, ssh))
		wantTCP(t, s.a1.name, b1(22), true) // the echo is the reply
		wantTCP(t, s.a2.name, b1(22), false)
		wantTCP(t, s.a1.name, b1(8080), false)
		wantUDP(t, s.a1.name, b1(22), false)
	})
	t.Run("port range", func(t *testing.T) {
		web := Group{ID: "sg-web", Egress: defaultEgress, Ingress: []Rule{{Protocol: ProtoTCP, FromPort: 8000, ToPort: 9000, CIDRs: cidrs("0.0.0.0/0")}}}
		s.apply(s.policy(all, all, []string{"sg-web"}, dflt, web))
		wantTCP(t, s.a1.name, b1(8080), true)
		wantTCP(t, s.a2.name, b1(9000), true)
		wantTCP(t, s.a1.name, b1(22), false)
	})
	t.Run("source group, membership change", func(t *testing.T) {
		srv := Group{ID: "sg-srv", Egress: defaultEgress, Ingress: []Rule{{Protocol: ProtoTCP, FromPort: 22, ToPort: 22, Groups: []string{"sg-client"}}}}
		cl := Group{ID: "sg-client", Egress: defaultEgress}
		s.apply(s.policy([]string{"sg-client"}, all, []string{"sg-srv"}, dflt, srv, cl))
		wantTCP(t, s.a1.name, b1(22), true)
		wantTCP(t, s.a2.name, b1(22), false)
		s.apply(s.policy([]string{"sg-client"}, []string{"sg-client"}, []string{"sg-srv"}, dflt, srv, cl))
		wantTCP(t, s.a2.name, b1(22), true)
	})
	t.Run("union of two groups", func(t *testing.T) {
		ssh := Group{ID: "sg-ssh", Ingress: []Rule{{Protocol: ProtoTCP, FromPort: 22, ToPort: 22, CIDRs: cidrs("0.0.0.0/0")}}}
		web := Group{ID: "sg-web", Egress: defaultEgress, Ingress: []Rule{{Protocol: ProtoTCP, FromPort: 8080, ToPort: 8080, CIDRs: cidrs("10.77.0.0/16")}}}
		s.apply(s.policy(all, all, []string{"sg-ssh", "sg-web"}, dflt, ssh, web))
		wantTCP(t, s.a1.name, b1(22), true)
		wantTCP(t, s.a1.name, b1(8080), true)
		wantTCP(t, s.a1.name, b1(9000), false)
	})
	t.Run("icmp and udp", func(t *testing.T) {
		g := Group{ID: "sg-misc", Egress: defaultEgress, Ingress: []Rule{
			{Protocol: ProtoICMP, FromPort: 8, ToPort: -1, CIDRs: cidrs("10.77.1.0/24")},
			{Protocol: ProtoUDP, FromPort: 5353, ToPort: 5353, CIDRs: cidrs("10.77.1.10/32")},
		}}
		s.apply(s.policy(all, all, []string{"sg-misc"}, dflt, g))
		wantPing(t, s.a1.name, s.b1.ip, true)
		wantUDP(t, s.a1.name, b1(5353), true)
		wantUDP(t, s.a2.name, b1(5353), false)
		wantTCP(t, s.a1.name, b1(22), false)
	})
	t.Run("other protocols match by number", func(t *testing.T) {
		gre := Group{ID: "sg-gre", Egress: defaultEgress, Ingress: []Rule{{Protocol: 47, CIDRs: cidrs("10.77.1.0/24")}}}
		esp := Group{ID: "sg-esp", Egress: defaultEgress, Ingress: []Rule{{Protocol: 50, CIDRs: cidrs("10.77.1.0/24")}}}
		s.apply(s.policy(all, all, []string{"sg-gre"}, dflt, gre))
		if !rawDelivered(t, s.a1.name, s.b1.name, s.b1.ip, 47, true) {
			t.Error("protocol 47 allowed by number did not arrive")
		}
		s.apply(s.policy(all, all, []string{"sg-esp"}, dflt, esp))
		if rawDelivered(t, s.a1.name, s.b1.name, s.b1.ip, 47, false) {
			t.Error("protocol 47 arrived where only 50 is allowed")
		}
	})
	t.Run("egress of the sender is checked too", func(t *testing.T) {
		open := Group{ID: "sg-open", Ingress: []Rule{{Protocol: ProtoAll, CIDRs: cidrs("0.0.0.0/0")}}}
		only22 := Group{ID: "sg-only22", Egress: []Rule{{Protocol: ProtoTCP, FromPort: 22, ToPort: 22, CIDRs: cidrs("10.77.2.0/24")}}}
		noEgress := Group{ID: "sg-noegress"}
		s.apply(s.policy([]string{"sg-only22"}, []string{"sg-noegress"}, []string{"sg-open"}, open, only22, noEgress))
		wantTCP(t, s.a1.name, b1(22), true)
		wantTCP(t, s.a1.name, b1(8080), false)
		wantTCP(t, s.a2.name, b1(22), false)
	})
	t.Run("same subnet is hairpinned through the groups", func(t *testing.T) {
		g := Group{ID: "sg-peer", Egress: defaultEgress, Ingress: []Rule{{Protocol: ProtoTCP, FromPort: 22, ToPort: 22, CIDRs: cidrs("10.77.1.10/32")}}}
		s.apply(s.policy(all, []string{"sg-peer"}, all, dflt, g))
		wantTCP(t, s.a1.name, hostport(s.a2.ip, 22), true)
		wantTCP(t, s.b1.name, hostport(s.a2.ip, 22), false)
	})
	t.Run("rule change: new connections follow, established ones keep flowing", func(t *testing.T) {
		ssh := Group{ID: "sg-ssh", Egress: defaultEgress, Ingress: []Rule{{Protocol: ProtoTCP, FromPort: 22, ToPort: 22, CIDRs: cidrs("0.0.0.0/0")}}}
		s.apply(s.policy(all, all, []string{"sg-ssh"}, dflt, ssh))
		var c net.Conn
		if err := eventually(func(d time.Duration) error {
			return inNS(s.a1.name, func() (err error) { c, err = net.DialTimeout("tcp4", b1(22), d); return })
		}); err != nil {
			t.Fatalf("connecting: %v", err)
		}
		defer c.Close()
		if err := echo(c, time.Second); err != nil {
			t.Fatal(err)
		}
		s.apply(s.policy(all, all, []string{"sg-default"}, dflt))
		wantTCP(t, s.a1.name, b1(22), false)
		// Conntrack accepts the established flow before the groups are
		// looked at, as AWS keeps tracked connections after a rule is
		// removed.
		if err := echo(c, time.Second); err != nil {
			t.Errorf("established connection after the rule was removed: %v", err)
		}
	})
}

func TestNACL(t *testing.T) {
	s := newSGLab(t)
	b1 := func(port int) string { return hostport(s.b1.ip, port) }
	open := Group{ID: "sg-open", Egress: defaultEgress, Ingress: []Rule{{Protocol: ProtoAll, CIDRs: cidrs("0.0.0.0/0")}}}
	g := []string{"sg-open"}
	with := func(in, out []ACLEntry) Policy {
		p := s.policy(g, g, g, open)
		p.Subnets[1].Inbound, p.Subnets[1].Outbound = in, out
		return p
	}
	t.Run("deny 90 before allow 100", func(t *testing.T) {
		s.apply(with([]ACLEntry{
			{RuleNumber: 100, Protocol: ProtoAll, CIDR: any4, Allow: true},
			{RuleNumber: 90, Protocol: ProtoTCP, FromPort: 22, ToPort: 22, CIDR: any4},
		}, allowAll))
		wantTCP(t, s.a1.name, b1(22), false)
		wantTCP(t, s.a1.name, b1(8080), true)
	})
	t.Run("swapped: allow 90 before deny 100", func(t *testing.T) {
		s.apply(with([]ACLEntry{
			{RuleNumber: 90, Protocol: ProtoAll, CIDR: any4, Allow: true},
			{RuleNumber: 100, Protocol: ProtoTCP, FromPort: 22, ToPort: 22, CIDR: any4},
		}, allowAll))
		wantTCP(t, s.a1.name, b1(22), true)
	})
	t.Run("outbound without ephemeral ports breaks replies", func(t *testing.T) {
		in := []ACLEntry{{RuleNumber: 100, Protocol: ProtoTCP, FromPort: 22, ToPort: 22, CIDR: pfx("10.77.1.0/24"), Allow: true}}
		s.apply(with(in, []ACLEntry{{RuleNumber: 100, Protocol: ProtoTCP, FromPort: 22, ToPort: 22, CIDR: pfx("10.77.1.0/24"), Allow: true}}))
		wantTCP(t, s.a1.name, b1(22), false)
		s.apply(with(in, []ACLEntry{
			{RuleNumber: 100, Protocol: ProtoTCP, FromPort: 22, ToPort: 22, CIDR: pfx("10.77.1.0/24"), Allow: true},
			{RuleNumber: 110, Protocol: ProtoTCP, FromPort: 1024, ToPort: 65535, CIDR: pfx("10.77.1.0/24"), Allow: true},
		}))
		wantTCP(t, s.a1.name, b1(22), true)
		wantTCP(t, s.a1.name, b1(8080), false) // inbound only allows 22
	})
	t.Run("a NACL change cuts established connections too", func(t *testing.T) {
		s.apply(with(allowAll, allowAll))
		var c net.Conn
		if err := eventually(func(d time.Duration) error {
			return inNS(s.a1.name, func() (err error) { c, err = net.DialTimeout("tcp4", b1(22), d); return })
		}); err != nil {
			t.Fatalf("connecting: %v", err)
		}
		defer c.Close()
		if err := echo(c, time.Second); err != nil {
			t.Fatal(err)
		}
		s.apply(with([]ACLEntry{{RuleNumber: 100, Protocol: ProtoTCP, FromPort: 22, ToPort: 22, CIDR: any4}}, allowAll))
		if err := echo(c, denyWithin); err == nil {
			t.Error("the established connection still flows after its NACL entry became a deny")
		}
	})
	t.Run("same subnet is not subject to NACLs", func(t *testing.T) {
		p := s.policy(g, g, g, open)
		p.Subnets[0].Inbound, p.Subnets[0].Outbound = nil, nil // only the final deny
		s.apply(p)
		wantTCP(t, s.a1.name, hostport(s.a2.ip, 22), true)
		wantTCP(t, s.a1.name, b1(22), false)
		wantTCP(t, s.b1.name, hostport(s.a2.ip, 22), false)
	})
}

func TestAntiSpoofing(t *testing.T) {
	s := newSGLab(t)
	open := Group{ID: "sg-open", Egress: defaultEgress, Ingress: []Rule{{Protocol: ProtoAll, CIDRs: cidrs("10.77.0.0/16")}}}
	g := []string{"sg-open"}
	p := s.policy(g, g, g, open)
	s.apply(p)
	b1 := hostport(s.b1.ip, 22)
	wantTCP(t, s.a1.name, b1, true)

	t.Run("spoofed source IP reaches no one", func(t *testing.T) {
		// a1 claims a2's address (an ENI the groups would let through)
		// and an unassigned one, and sends UDP: no reply is needed for
		// the datagram to arrive, so the receiver is what tells.
		srv := serveUDP(t, s.b1.name, ":5454")
		wantUDP(t, s.a1.name, hostport(s.b1.ip, 5454), true)
		nh := handleFor(t, s.a1.name)
		eth, err := nh.LinkByName("eth0")
		if err != nil {
			t.Fatal(err)
		}
		for _, fake := range []string{s.a2.ip.String(), "10.77.1.99"} {
			a := &netlinkAddr{IPNet: &net.IPNet{IP: net.ParseIP(fake).To4(), Mask: net.CIDRMask(32, 32)}}
			if err := nh.AddrAdd(eth, a); err != nil {
				t.Fatal(err)
			}
			err := inNS(s.a1.name, func() error {
				c, err := net.DialUDP("udp4", &net.UDPAddr{IP: a.IP}, &net.UDPAddr{IP: s.b1.ip.AsSlice(), Port: 5454})
				if err != nil {
					return err
				}
				defer c.Close()
				for range 3 {
					if _, err := c.Write([]byte("spoofed")); err != nil {
						return err
					}
				}
				return nil
			})
			if err != nil {
				t.Fatal(err)
			}
			// The honest datagram after the spoofed ones arrives, so the
			// spoofed ones had their chance.
			if err := nh.AddrDel(eth, a); err != nil {
				t.Fatal(err)
			}
			wantUDP(t, s.a1.name, hostport(s.b1.ip, 5454), true)
			for _, p := range srv.peers() {
				if strings.HasPrefix(p, fake+":") {
					t.Errorf("b1 received a datagram from spoofed %s", fake)
					break
				}
			}
		}
	})
	t.Run("ARP claiming another ENI's address poisons no one", func(t *testing.T) {
		// The router knows a2 (it forwarded to it above, or does now).
		wantTCP(t, s.b1.name, hostport(s.a2.ip, 22), true)
		// Let any ARP update override at once (the default locktime of
		// 1 s would hide a lie sent right after a2's own answer).
		if err := inNS(s.router, func() error { return sysctl("net/ipv4/neigh/"+s.sa.Bridge+"/locktime", "0") }); err != nil {
			t.Fatal(err)
		}
		br, err := s.rh.LinkByName(s.sa.Bridge)
		if err != nil {
			t.Fatal(err)
		}
		neighMAC := func(ip netip.Addr) string {
			ns, err := s.rh.NeighList(br.Attrs().Index, unix.AF_INET)
			if err != nil {
				t.Fatal(err)
			}
			for _, n := range ns {
				if n.IP.Equal(ip.AsSlice()) {
					return n.HardwareAddr.String()
				}
			}
			return ""
		}
		// Lie repeatedly and look after each lie: the router may correct
		// a poisoned entry later, so only a look right after counts.
		for range 10 {
			if err := sendARP(s.a1.name, s.a1.mac, s.a2.ip, s.a2.ip); err != nil { // gratuitous
				t.Fatal(err)
			}
			time.Sleep(20 * time.Millisecond) // give the router time to process the lie
			if got := neighMAC(s.a2.ip); got == s.a1.mac.String() {
				t.Fatalf("router's neighbour entry for a2 now has a1's MAC %s", got)
			}
		}
		// The honest announcement of a1's own address does get through,
		// so the lies did reach the bridge.
		if err := sendARP(s.a1.name, s.a1.mac, s.a1.ip, s.a1.ip); err != nil {
			t.Fatal(err)
		}
		if err := eventually(func(time.Duration) error {
			if neighMAC(s.a1.ip) != s.a1.mac.String() {
				return fmt.Errorf("router has no entry for a1")
			}
			return nil
		}); err != nil {
			t.Fatal(err)
		}
	})
	t.Run("spoofed MAC reaches no one", func(t *testing.T) {
		nh := handleFor(t, s.a1.name)
		eth, err := nh.LinkByName("eth0")
		if err != nil {
			t.Fatal(err)
		}
		if err := nh.LinkSetHardwareAddr(eth, net.HardwareAddr{0x02, 0xaa, 0, 0, 9, 9}); err != nil {
			t.Fatal(err)
		}
		wantTCP(t, s.a1.name, b1, false)
		wantPing(t, s.a1.name, subnetBase(s.sa, 1), false)
		if err := nh.LinkSetHardwareAddr(eth, s.a1.mac); err != nil {
			t.Fatal(err)
		}
		wantTCP(t, s.a1.name, b1, true)
	})
	t.Run("unknown tap gets nothing, even when its Apply fails", func(t *testing.T) {
		x := s.addInstance("x", s.sa, addr("10.77.1.50"))
		wantPing(t, x.name, subnetBase(s.sa, 1), false)
		wantTCP(t, x.name, b1, false)
		// A Policy naming x that the kernel rejects (a group ID too long
		// for a chain name): the transaction is void, x stays cut off and
		// everyone else keeps what they had.
		bad := p
		long := "sg-" + strings.Repeat("f", 300)
		bad.ENIs = append(append([]ENI(nil), p.ENIs...), x.eni("eni-x", s.sa, long))
		bad.Groups = append(append([]Group(nil), p.Groups...), Group{ID: long, Egress: defaultEgress, Ingress: open.Ingress})
		if err := Apply(s.router, bad); err == nil {
			t.Fatal("Apply with a 300-character group ID succeeded; want the kernel to reject it")
		} else {
			t.Logf("Apply failed as intended: %v", err)
		}
		wantTCP(t, x.name, b1, false)
		wantTCP(t, s.a1.name, b1, true)
		// Fixed, it works.
		good := p
		good.ENIs = append(append([]ENI(nil), p.ENIs...), x.eni("eni-x", s.sa, "sg-open"))
		s.apply(good)
		wantTCP(t, x.name, b1, true)
	})
}

func TestRouterServices(t *testing.T) {
	sa, sb := subnetsAB()
	l := newLab(t, sa, sb)
	a := l.addInstance("a", sa, addr("10.77.1.10"))
	l.addGateway("nfgw")
	g := Group{ID: "sg-none"} // groups do not apply to the router
	p := Policy{Subnets: []Subnet{sa, sb}, ENIs: []ENI{a.eni("eni-a", sa, "sg-none")}, Groups: []Group{g}, Gateway: &Gateway{Link: "nfgw"}}
	p.Subnets[0].Inbound, p.Subnets[0].Outbound = nil, nil // nor do NACLs
	l.apply(p)
	if err := inNS(l.router, func() error {
		lo, err := netlinkLinkByName("lo")
		if err != nil {
			return err
		}
		return netlinkAddrAdd(lo, "169.254.169.254/32")
	}); err != nil {
		t.Fatal(err)
	}
	serveTCP(t, l.router, "169.254.169.254:80")
	serveUDP(t, l.router, hostport(subnetBase(sa, 2), 53))
	serveTCP(t, l.router, hostport(subnetBase(sa, 2), 53))
	serveTCP(t, l.router, ":2222")
	wantTCP(t, a.name, "169.254.169.254:80", true)
	wantUDP(t, a.name, hostport(subnetBase(sa, 2), 53), true)
	wantTCP(t, a.name, hostport(subnetBase(sa, 2), 53), true)
	wantPing(t, a.name, subnetBase(sa, 1), true)
	wantTCP(t, a.name, hostport(subnetBase(sa, 1), 2222), false)
	wantPing(t, l.inet, gwAddr, false)
	wantTCP(t, l.inet, hostport(gwAddr, 2222), false)
}
