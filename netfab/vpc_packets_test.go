package netfab

import (
	"bufio"
	"context"
	"fmt"
	"net"
	"net/netip"
	"strings"
	"testing"
	"time"

	"github.com/vishvananda/netlink"
	"github.com/vishvananda/netns"
)

// guestAsTap replaces an ENI's tap by a veth of the same name whose peer
// is eth0 of a new namespace standing in for the instance (MAC, address
// and default route as DHCP would give them), so the filter's per-tap
// rules apply to it exactly as to a VM. It returns the namespace.
func guestAsTap(t *testing.T, f *Fabric, e ENI, name string) string {
	t.Helper()
	guest := f.prefix + name
	if err := ensureNetns(guest); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = deleteNetns(guest) })
	gh, err := netns.GetFromName(guest)
	if err != nil {
		t.Fatal(err)
	}
	defer gh.Close()
	var sn subnetRecord
	if _, err := f.st.Get(context.Background(), subnetKey(e.AccountID, e.SubnetID), &sn); err != nil {
		t.Fatal(err)
	}
	peer := "p" + idTail(e.ID)
	err = inNamespace(e.Namespace, func() error {
		if err := deleteLink(e.Tap); err != nil {
			return err
		}
		if err := netlink.LinkAdd(&netlink.Veth{LinkAttrs: netlink.LinkAttrs{Name: e.Tap, MTU: 1500}, PeerName: peer}); err != nil {
			return err
		}
		l, err := netlink.LinkByName(e.Tap)
		if err != nil {
			return err
		}
		if err := attachPort(l, sn.Bridge); err != nil {
			return err
		}
		p, err := netlink.LinkByName(peer)
		if err != nil {
			return err
		}
		return netlink.LinkSetNsFd(p, int(gh))
	})
	if err != nil {
		t.Fatal(err)
	}
	p := netip.MustParsePrefix(sn.CIDR)
	mustRun(t, "ip", "-n", guest, "link", "set", peer, "name", "eth0")
	mustRun(t, "ip", "-n", guest, "link", "set", "eth0", "address", e.MAC, "up")
	mustRun(t, "ip", "-n", guest, "link", "set", "lo", "up")
	mustRun(t, "ip", "-n", guest, "addr", "add", fmt.Sprintf("%s/%d", e.PrivateIP, p.Bits()), "dev", "eth0")
	mustRun(t, "ip", "-n", guest, "route", "add", "default", "via", addrN(p, 1).String())
	return guest
}

// serveName answers every TCP connection to port in namespace ns with
// name and the caller's address, until the test ends.
func serveName(t *testing.T, ns string, port int, name string) {
	t.Helper()
	var ln net.Listener
	err := inNamespace(ns, func() error {
		var err error
		ln, err = net.Listen("tcp4", fmt.Sprintf("0.0.0.0:%d", port))
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			fmt.Fprintf(c, "%s %s\n", name, c.RemoteAddr().(*net.TCPAddr).IP)
			c.Close()
		}
	}()
}

// dialFrom connects from namespace ns ("" for the host) to addr and
// returns the first line the server says, or an error.
func dialFrom(ns, addr string) (string, error) {
	var c net.Conn
	dial := func() error {
		var err error
		c, err = net.DialTimeout("tcp4", addr, 700*time.Millisecond)
		return err
	}
	var err error
	if ns == "" {
		err = dial()
	} else {
		err = inNamespace(ns, dial)
	}
	if err != nil {
		return "", err
	}
	defer c.Close()
	_ = c.SetDeadline(time.Now().Add(2 * time.Second))
	line, err := bufio.NewReader(c).ReadString('\n')
	return strings.TrimSpace(line), err
}

// expectReach polls until dialing addr from ns answers with a line
// starting with want ("" means: must not connect).
func expectReach(t *testing.T, ns, addr, want string) string {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for {
		got, err := dialFrom(ns, addr)
		switch {
		case want == "" && err != nil:
			return ""
		case want != "" && err == nil && strings.HasPrefix(got, want):
			return got
		}
		if time.Now().After(deadline) {
			t.Fatalf("from %q to %s: got %q, %v; want %q", ns, addr, got, err, want)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// TestVPCScenarioWithPackets drives the fabric through its API methods
// and checks each lesson with real TCP connections between namespaces
// standing in for instances: a custom VPC with a public and a private
// subnet, an internet gateway, route tables, security groups (allow by
// CIDR, removal cuts new connections), a public IP reached from the lab
// server, an Elastic IP moved between interfaces moving the traffic, and a
// NAT gateway giving the private subnet the internet (an "internet"
// namespace of the test's own on the public bridge, 198.51.100.1) while
// nothing reaches the private instance.
func TestVPCScenarioWithPackets(t *testing.T) {
	requireNet(t)
	ctx := context.Background()
	prefix := testPrefix(t)
	pool := netip.MustParsePrefix("203.0.113.192/26")
	inetGW := addrN(pool, 2) // base+2: free for the host's own uses
	f, err := New(ctx, Options{Store: testStore(t), Zones: []string{"lab-1a", "lab-1b"}, NamePrefix: prefix,
		Metadata: &fakeMetadata{}, PublicCIDR: pool, PublicGateway: inetGW})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = f.Teardown(context.Background()) })
	const acct = "123456789012"

	vpc, err := f.CreateVPC(ctx, CreateVPCInput{AccountID: acct, CIDR: "10.30.0.0/16"})
	if err != nil {
		t.Fatal(err)
	}
	pub, err := f.CreateSubnet(ctx, CreateSubnetInput{AccountID: acct, VPCID: vpc.ID, CIDR: "10.30.1.0/24"})
	if err != nil {
		t.Fatal(err)
	}
	priv, err := f.CreateSubnet(ctx, CreateSubnetInput{AccountID: acct, VPCID: vpc.ID, CIDR: "10.30.2.0/24"})
	if err != nil {
		t.Fatal(err)
	}
	igw, err := f.CreateInternetGateway(ctx, acct)
	if err != nil {
		t.Fatal(err)
	}
	if err := f.AttachInternetGateway(ctx, acct, igw.ID, vpc.ID); err != nil {
		t.Fatal(err)
	}
	pubRT, err := f.CreateRouteTable(ctx, acct, vpc.ID)
	if err != nil {
		t.Fatal(err)
	}
	if err := f.CreateRoute(ctx, RouteInput{AccountID: acct, RouteTableID: pubRT.ID, DestinationCIDR: "0.0.0.0/0", GatewayID: igw.ID}); err != nil {
		t.Fatal(err)
	}
	if _, err := f.AssociateRouteTable(ctx, acct, pubRT.ID, pub.ID); err != nil {
		t.Fatal(err)
	}
	web, err := f.CreateSecurityGroup(ctx, SGRequest{AccountID: acct, VPCID: vpc.ID, Name: "web", Description: "web"})
	if err != nil {
		t.Fatal(err)
	}
	port := 8080
	allow := []Permission{{Protocol: "tcp", FromPort: &port, ToPort: &port, Peers: []Peer{{CIDR: "0.0.0.0/0"}}}}
	yes := true
	eA, err := f.CreateENI(ctx, ENIRequest{AccountID: acct, SubnetID: pub.ID, InstanceID: "i-0000000000000000a", Groups: []string{web.ID}, AssociatePublicIP: &yes})
	if err != nil {
		t.Fatal(err)
	}
	eC, err := f.CreateENI(ctx, ENIRequest{AccountID: acct, SubnetID: pub.ID, InstanceID: "i-0000000000000000c", Groups: []string{web.ID}})
	if err != nil {
		t.Fatal(err)
	}
	eB, err := f.CreateENI(ctx, ENIRequest{AccountID: acct, SubnetID: priv.ID, InstanceID: "i-0000000000000000b", Groups: []string{web.ID}})
	if err != nil {
		t.Fatal(err)
	}
	if eA.PublicIP == "" || eC.PublicIP != "" || eB.PublicIP != "" {
		t.Fatalf("public IPs: A %q (want one), C %q, B %q (want none)", eA.PublicIP, eC.PublicIP, eB.PublicIP)
	}
	gA, gB, gC := guestAsTap(t, f, eA, "ga"), guestAsTap(t, f, eB, "gb"), guestAsTap(t, f, eC, "gc")
	for ns, name := range map[string]string{gA: "A", gB: "B", gC: "C"} {
		serveName(t, ns, port, name)
	}
	// The "internet": a namespace on the public bridge at the configured
	// next hop, holding 198.51.100.1.
	inet := prefix + "-inet"
	mustRun(t, "ip", "netns", "add", inet)
	t.Cleanup(func() { _ = deleteNetns(inet) })
	mustRun(t, "ip", "link", "add", prefix+"x0", "type", "veth", "peer", "name", "eth0", "netns", inet)
	t.Cleanup(func() { _ = deleteLink(prefix + "x0") })
	mustRun(t, "ip", "link", "set", prefix+"x0", "master", f.publicBridgeName(), "up")
	mustRun(t, "ip", "-n", inet, "addr", "add", fmt.Sprintf("%s/%d", inetGW, pool.Bits()), "dev", "eth0")
	mustRun(t, "ip", "-n", inet, "addr", "add", "198.51.100.1/24", "dev", "lo")
	mustRun(t, "ip", "-n", inet, "link", "set", "eth0", "up")
	mustRun(t, "ip", "-n", inet, "link", "set", "lo", "up")
	serveName(t, inet, 80, "internet")
	at := func(ip string) string { return fmt.Sprintf("%s:%d", ip, port) }

	// Security groups: a new group lets nothing in.
	expectReach(t, gC, at(eA.PrivateIP), "")
	expectReach(t, "", at(eA.PublicIP), "")
	if _, err := f.AuthorizeSecurityGroup(ctx, acct, web.ID, false, allow); err != nil {
		t.Fatal(err)
	}
	// Allowed by CIDR: from C in the same subnet, and from the lab
	// server at A's public IP (the host bridge's address is the source).
	expectReach(t, gC, at(eA.PrivateIP), "A")
	if got := expectReach(t, "", at(eA.PublicIP), "A"); !strings.HasSuffix(got, addrN(pool, 1).String()) {
		t.Errorf("A saw the lab server as %q, want the public bridge's %s", got, addrN(pool, 1))
	}
	// A reaches the internet with its public IP; C (no public IP) not.
	if got := expectReach(t, gA, "198.51.100.1:80", "internet"); !strings.HasSuffix(got, eA.PublicIP) {
		t.Errorf("the internet saw A as %q, want its public IP %s", got, eA.PublicIP)
	}
	expectReach(t, gC, "198.51.100.1:80", "")
	// The private subnet has no route out, and nothing reaches it.
	expectReach(t, gB, "198.51.100.1:80", "")
	expectReach(t, inet, at(eB.PrivateIP), "")

	// A NAT gateway in the public subnet gives the private one the
	// internet, under the gateway's Elastic IP.
	natIP, err := f.AllocateAddress(ctx, acct)
	if err != nil {
		t.Fatal(err)
	}
	nat, err := f.CreateNatGateway(ctx, CreateNatGatewayInput{AccountID: acct, SubnetID: pub.ID, AllocationID: natIP.AllocationID})
	if err != nil || nat.State != "available" {
		t.Fatalf("CreateNatGateway: %+v, %v", nat, err)
	}
	privRT, err := f.CreateRouteTable(ctx, acct, vpc.ID)
	if err != nil {
		t.Fatal(err)
	}
	if err := f.CreateRoute(ctx, RouteInput{AccountID: acct, RouteTableID: privRT.ID, DestinationCIDR: "0.0.0.0/0", NatGatewayID: nat.ID}); err != nil {
		t.Fatal(err)
	}
	if _, err := f.AssociateRouteTable(ctx, acct, privRT.ID, priv.ID); err != nil {
		t.Fatal(err)
	}
	if got := expectReach(t, gB, "198.51.100.1:80", "internet"); !strings.HasSuffix(got, natIP.PublicIP) {
		t.Errorf("the internet saw B as %q, want the NAT gateway's %s", got, natIP.PublicIP)
	}
	expectReach(t, inet, at(natIP.PublicIP), "")

	// An Elastic IP moved from A to C moves the traffic.
	eip, err := f.AllocateAddress(ctx, acct)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := f.AssociateAddress(ctx, AssociateAddressInput{AccountID: acct, AllocationID: eip.AllocationID, NetworkInterfaceID: eA.ID}); err != nil {
		t.Fatal(err)
	}
	expectReach(t, inet, at(eip.PublicIP), "A")
	expectReach(t, "", at(eA.PublicIP), "") // the auto-assigned one went back to the pool
	if _, err := f.AssociateAddress(ctx, AssociateAddressInput{AccountID: acct, AllocationID: eip.AllocationID, NetworkInterfaceID: eC.ID, AllowReassociation: true}); err != nil {
		t.Fatal(err)
	}
	expectReach(t, inet, at(eip.PublicIP), "C")

	// Anti-spoofing: C claiming an unassigned address of its subnet (it
	// would answer the router's ARP for it, so without the bridge table's
	// checks the replies would come back) reaches nothing, not even the
	// metadata service, which would take it for whoever gets that
	// address; with its own address it does.
	const unassigned = "10.30.1.200"
	mustRun(t, "ip", "-n", gC, "addr", "add", unassigned+"/32", "dev", "eth0")
	imdsFrom := func(src string) error {
		return inNamespace(gC, func() error {
			d := net.Dialer{Timeout: 700 * time.Millisecond, LocalAddr: &net.TCPAddr{IP: net.ParseIP(src)}}
			c, err := d.Dial("tcp4", imdsAddr+":80")
			if err == nil {
				c.Close()
			}
			return err
		})
	}
	if err := imdsFrom(unassigned); err == nil {
		t.Errorf("C reached the metadata service from the unassigned address %s", unassigned)
	}
	if err := imdsFrom(eC.PrivateIP); err != nil {
		t.Errorf("C cannot reach the metadata service with its own address: %v", err)
	}

	// Revoking the rule closes the door again, at once.
	start := time.Now()
	if _, err := f.RevokeSecurityGroup(ctx, acct, web.ID, false, allow, nil); err != nil {
		t.Fatal(err)
	}
	if _, err := dialFrom(inet, at(eip.PublicIP)); err == nil {
		t.Errorf("still reachable right after the revoke returned (%v)", time.Since(start))
	}
	expectReach(t, gA, at(eC.PrivateIP), "")
}
