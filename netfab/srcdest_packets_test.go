package netfab

import (
	"bufio"
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"net"
	"net/netip"
	"strings"
	"testing"
	"time"
)

// natLab is a VPC with a public subnet (route 0.0.0.0/0 to its internet
// gateway) and a private one, a private host B in the private subnet, the
// "internet" (198.51.100.1:80 in a namespace on the public bridge), and
// B's route table, still without routes.
type natLab struct {
	f                *Fabric
	acct             string
	vpc              VPC
	pub, priv        SubnetView
	privRT           RouteTableView
	eB               ENI
	gB, inet, prefix string
}

const labInternet = "198.51.100.1:80"

func newNATLab(t *testing.T) *natLab {
	t.Helper()
	requireNet(t)
	ctx := context.Background()
	b := make([]byte, 1)
	_, _ = rand.Read(b)
	prefix := "lsd" + hex.EncodeToString(b)
	pool := netip.MustParsePrefix("203.0.113.64/27")
	inetGW := addrN(pool, 2)
	f, err := New(ctx, Options{Store: testStore(t), Zones: []string{"lab-1a"}, NamePrefix: prefix,
		Metadata: &fakeMetadata{}, PublicCIDR: pool, PublicGateway: inetGW})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = f.Teardown(context.Background()) })
	l := &natLab{f: f, acct: "123456789012", prefix: prefix}
	must := func(err error) {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
	}
	l.vpc, err = f.CreateVPC(ctx, CreateVPCInput{AccountID: l.acct, CIDR: "10.31.0.0/16"})
	must(err)
	l.pub, err = f.CreateSubnet(ctx, CreateSubnetInput{AccountID: l.acct, VPCID: l.vpc.ID, CIDR: "10.31.1.0/24"})
	must(err)
	l.priv, err = f.CreateSubnet(ctx, CreateSubnetInput{AccountID: l.acct, VPCID: l.vpc.ID, CIDR: "10.31.2.0/24"})
	must(err)
	igw, err := f.CreateInternetGateway(ctx, l.acct)
	must(err)
	must(f.AttachInternetGateway(ctx, l.acct, igw.ID, l.vpc.ID))
	pubRT, err := f.CreateRouteTable(ctx, l.acct, l.vpc.ID)
	must(err)
	must(f.CreateRoute(ctx, RouteInput{AccountID: l.acct, RouteTableID: pubRT.ID, DestinationCIDR: "0.0.0.0/0", GatewayID: igw.ID}))
	_, err = f.AssociateRouteTable(ctx, l.acct, pubRT.ID, l.pub.ID)
	must(err)
	l.privRT, err = f.CreateRouteTable(ctx, l.acct, l.vpc.ID)
	must(err)
	_, err = f.AssociateRouteTable(ctx, l.acct, l.privRT.ID, l.priv.ID)
	must(err)
	l.eB, err = f.CreateENI(ctx, ENIRequest{AccountID: l.acct, SubnetID: l.priv.ID, InstanceID: "i-00000000000000b0b"})
	must(err)
	l.gB = guestAsTap(t, f, l.eB, "gb")

	l.inet = prefix + "-inet"
	mustRun(t, "ip", "netns", "add", l.inet)
	t.Cleanup(func() { _ = deleteNetns(l.inet) })
	mustRun(t, "ip", "link", "add", prefix+"x0", "type", "veth", "peer", "name", "eth0", "netns", l.inet)
	t.Cleanup(func() { _ = deleteLink(prefix + "x0") })
	mustRun(t, "ip", "link", "set", prefix+"x0", "master", f.publicBridgeName(), "up")
	mustRun(t, "ip", "-n", l.inet, "addr", "add", fmt.Sprintf("%s/%d", inetGW, pool.Bits()), "dev", "eth0")
	mustRun(t, "ip", "-n", l.inet, "addr", "add", "198.51.100.1/24", "dev", "lo")
	mustRun(t, "ip", "-n", l.inet, "link", "set", "eth0", "up")
	mustRun(t, "ip", "-n", l.inet, "link", "set", "lo", "up")
	serveName(t, l.inet, 80, "internet")
	return l
}

// TestSourceDestCheckWithPackets: a NAT instance (a namespace in the
// public subnet with a public IP, ip_forward and a masquerade of its own)
// and a private host whose route table sends 0.0.0.0/0 to the NAT
// instance's ENI. With the source/destination check on (the default) the
// VPC router hands the NAT instance nothing that is not addressed to it
// and the private host reaches no internet; off (ModifyENI, what
// ModifyNetworkInterfaceAttribute and ModifyInstanceAttribute call) it
// does, under the NAT instance's public IP; the NAT instance's security
// group still filters the forwarded packets; on again cuts it.
func TestSourceDestCheckWithPackets(t *testing.T) {
	l := newNATLab(t)
	ctx := context.Background()
	f := l.f
	natSG, err := f.CreateSecurityGroup(ctx, SGRequest{AccountID: l.acct, VPCID: l.vpc.ID, Name: "nat", Description: "nat instance"})
	if err != nil {
		t.Fatal(err)
	}
	fromPrivate := []Permission{{Protocol: "-1", Peers: []Peer{{CIDR: l.priv.CIDR}}}}
	if _, err := f.AuthorizeSecurityGroup(ctx, l.acct, natSG.ID, false, fromPrivate); err != nil {
		t.Fatal(err)
	}
	yes := true
	eN, err := f.CreateENI(ctx, ENIRequest{AccountID: l.acct, SubnetID: l.pub.ID, InstanceID: "i-00000000000000a0a", Groups: []string{natSG.ID}, AssociatePublicIP: &yes})
	if err != nil {
		t.Fatal(err)
	}
	if eN.NoSourceDestCheck {
		t.Fatal("a new ENI has its source/dest check off; AWS's default is on")
	}
	gN := guestAsTap(t, f, eN, "gn")
	mustRun(t, "ip", "netns", "exec", gN, "sysctl", "-q", "-w", "net.ipv4.ip_forward=1", "net.ipv4.conf.all.send_redirects=0", "net.ipv4.conf.eth0.send_redirects=0")
	mustRun(t, "ip", "netns", "exec", gN, "nft", "add table ip nati; add chain ip nati post { type nat hook postrouting priority 100; }; add rule ip nati post oifname eth0 ip saddr "+l.priv.CIDR+" masquerade")
	if err := f.CreateRoute(ctx, RouteInput{AccountID: l.acct, RouteTableID: l.privRT.ID, DestinationCIDR: "0.0.0.0/0", NetworkInterfaceID: eN.ID}); err != nil {
		t.Fatal(err)
	}
	// The NAT instance itself reaches the internet under its public IP.
	if got := expectReach(t, gN, labInternet, "internet"); !strings.HasSuffix(got, eN.PublicIP) {
		t.Fatalf("the internet saw the NAT instance as %q, want its public IP %s", got, eN.PublicIP)
	}
	// Check on: the route points at the NAT instance, but the router
	// hands it nothing addressed elsewhere.
	cutOff(t, l.gB, labInternet)

	off, on := false, true
	if _, err := f.ModifyENI(ctx, l.acct, eN.ID, ENIChange{SourceDestCheck: &off}); err != nil {
		t.Fatal(err)
	}
	if got := expectReach(t, l.gB, labInternet, "internet"); !strings.HasSuffix(got, eN.PublicIP) {
		t.Errorf("the internet saw the private host as %q, want the NAT instance's public IP %s", got, eN.PublicIP)
	}
	// The NAT instance's security group sees the forwarded packets.
	if _, err := f.RevokeSecurityGroup(ctx, l.acct, natSG.ID, false, fromPrivate, nil); err != nil {
		t.Fatal(err)
	}
	cutOff(t, l.gB, labInternet)
	if _, err := f.AuthorizeSecurityGroup(ctx, l.acct, natSG.ID, false, fromPrivate); err != nil {
		t.Fatal(err)
	}
	expectReach(t, l.gB, labInternet, "internet")

	if _, err := f.ModifyENI(ctx, l.acct, eN.ID, ENIChange{SourceDestCheck: &on}); err != nil {
		t.Fatal(err)
	}
	cutOff(t, l.gB, labInternet)

	// The private host lets the "internet" in, so only the check stands
	// between it and a packet the NAT instance forwards unchanged (no
	// masquerade: a router appliance).
	if _, err := f.AuthorizeSecurityGroup(ctx, l.acct, defaultSGOf(t, l), false, []Permission{{Protocol: "-1", Peers: []Peer{{CIDR: "198.51.100.0/24"}}}}); err != nil {
		t.Fatal(err)
	}
	serveName(t, l.gB, 8080, "B")
	const foreign = "198.51.100.77"
	mustRun(t, "ip", "-n", gN, "addr", "add", foreign+"/32", "dev", "eth0")
	toB := l.eB.PrivateIP + ":8080"
	// Check on: the bridge drops the NAT instance's packets from the
	// foreign source.
	if got, err := dialFromAddr(gN, foreign, toB); err == nil {
		t.Errorf("with the check on, the NAT instance reached the private host from the foreign source %s (%q)", foreign, got)
	}
	// Off: they reach the private host, whose replies its route table
	// sends back through the NAT instance.
	if _, err := f.ModifyENI(ctx, l.acct, eN.ID, ENIChange{SourceDestCheck: &off}); err != nil {
		t.Fatal(err)
	}
	eventually(t, 5*time.Second, "a foreign source through an ENI with the check off", func() error {
		got, err := dialFromAddr(gN, foreign, toB)
		if err == nil && !strings.HasSuffix(got, foreign) {
			return fmt.Errorf("the private host saw %q, want the foreign source %s", got, foreign)
		}
		return err
	})
}

// dialFromAddr connects from namespace ns, bound to the local address
// src, to addr and returns the first line the server says.
func dialFromAddr(ns, src, addr string) (string, error) {
	var c net.Conn
	err := inNamespace(ns, func() error {
		d := net.Dialer{Timeout: 700 * time.Millisecond, LocalAddr: &net.TCPAddr{IP: net.ParseIP(src)}}
		var err error
		c, err = d.Dial("tcp4", addr)
		return err
	})
	if err != nil {
		return "", err
	}
	defer c.Close()
	_ = c.SetDeadline(time.Now().Add(2 * time.Second))
	line, err := bufio.NewReader(c).ReadString('\n')
	return strings.TrimSpace(line), err
}

// cutOff fails the test unless a new connection from ns to addr fails
// now: every fabric change is in the kernel when its call returns, so
// there is nothing to wait for.
func cutOff(t *testing.T, ns, addr string) {
	t.Helper()
	if got, err := dialFrom(ns, addr); err == nil {
		t.Fatalf("from %s, %s answered %q; want no connection", ns, addr, got)
	}
}

// defaultSGOf is the VPC's default security group (the private host's).
func defaultSGOf(t *testing.T, l *natLab) string {
	t.Helper()
	v, err := l.f.GetVPC(context.Background(), l.acct, l.vpc.ID)
	if err != nil {
		t.Fatal(err)
	}
	return v.DefaultSecurityGroupID
}

// TestNATGatewaySubnetNACLWithPackets: traffic from a private subnet
// through a NAT gateway crosses the NACL of the gateway's subnet, as in
// AWS: an inbound deny of the private subnet or an outbound deny of the
// internet in the public subnet's NACL breaks the private host's NAT
// path, and removing it restores it.
func TestNATGatewaySubnetNACLWithPackets(t *testing.T) {
	l := newNATLab(t)
	ctx := context.Background()
	f := l.f
	eip, err := f.AllocateAddress(ctx, l.acct)
	if err != nil {
		t.Fatal(err)
	}
	nat, err := f.CreateNatGateway(ctx, CreateNatGatewayInput{AccountID: l.acct, SubnetID: l.pub.ID, AllocationID: eip.AllocationID})
	if err != nil {
		t.Fatal(err)
	}
	if err := f.CreateRoute(ctx, RouteInput{AccountID: l.acct, RouteTableID: l.privRT.ID, DestinationCIDR: "0.0.0.0/0", NatGatewayID: nat.ID}); err != nil {
		t.Fatal(err)
	}
	if got := expectReach(t, l.gB, labInternet, "internet"); !strings.HasSuffix(got, eip.PublicIP) {
		t.Fatalf("the internet saw the private host as %q, want the NAT gateway's %s", got, eip.PublicIP)
	}
	// A NACL of the public subnet's own, allowing everything.
	acl, err := f.CreateNetworkACL(ctx, l.acct, l.vpc.ID)
	if err != nil {
		t.Fatal(err)
	}
	entry := func(n int, egress bool, action, cidr string) ACLEntryRequest {
		return ACLEntryRequest{RuleNumber: n, Egress: egress, Protocol: "-1", RuleAction: action, CIDR: cidr}
	}
	for _, egress := range []bool{false, true} {
		if err := f.CreateNetworkACLEntry(ctx, l.acct, acl.ID, entry(100, egress, "allow", "0.0.0.0/0")); err != nil {
			t.Fatal(err)
		}
	}
	_, assocs, err := f.NetworkACLs(ctx, l.acct)
	if err != nil {
		t.Fatal(err)
	}
	for _, a := range assocs {
		if a.SubnetID == l.pub.ID {
			if _, err := f.ReplaceNetworkACLAssociation(ctx, l.acct, a.ID, acl.ID); err != nil {
				t.Fatal(err)
			}
		}
	}
	expectReach(t, l.gB, labInternet, "internet")
	for _, tc := range []struct {
		name   string
		egress bool
		cidr   string
	}{
		{"inbound deny of the private subnet", false, l.priv.CIDR},
		{"outbound deny of the internet", true, "198.51.100.0/24"},
		{"inbound deny of the internet (the replies)", false, "198.51.100.0/24"},
		{"outbound deny of the private subnet (the replies)", true, l.priv.CIDR},
	} {
		if err := f.CreateNetworkACLEntry(ctx, l.acct, acl.ID, entry(50, tc.egress, "deny", tc.cidr)); err != nil {
			t.Fatal(err)
		}
		if got, err := dialFrom(l.gB, labInternet); err == nil {
			t.Errorf("%s in the NAT gateway's subnet: the private host still reaches the internet (%q)", tc.name, got)
		}
		if err := f.DeleteNetworkACLEntry(ctx, l.acct, acl.ID, 50, tc.egress); err != nil {
			t.Fatal(err)
		}
		expectReach(t, l.gB, labInternet, "internet")
	}
}
