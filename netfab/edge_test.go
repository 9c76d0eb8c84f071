package netfab

import (
	"net/netip"
	"strings"
	"testing"
	"time"
)

// TestEdgeRoutingAndGateway builds a VPC namespace with one subnet, the
// public bridge on the host and an internet gateway veth, then checks with
// the kernel's own route lookups and real pings that each subnet's table
// sends traffic where its route table says, that the pool is reached
// directly and the "internet" only through the configured next hop.
func TestEdgeRoutingAndGateway(t *testing.T) {
	requireNet(t)
	p := testPrefix(t)
	ns := p + "-edge"
	if err := ensureNetns(ns); err != nil {
		t.Fatal(err)
	}
	f := &Fabric{prefix: p}
	vpcID := "vpc-0000000000abc1234"
	hostVeth, vpcVeth, pub := f.gatewayHostName(vpcID), f.gatewayVPCName(vpcID), f.publicBridgeName()
	t.Cleanup(func() {
		_ = deleteLink(hostVeth)
		_ = deleteLink(pub)
		_ = deleteNetns(ns)
		_ = deleteNetns(p + "-inet")
	})
	pool := netip.MustParsePrefix("203.0.113.128/26")
	subnet := netip.MustParsePrefix("10.9.0.0/24")
	subnet2 := netip.MustParsePrefix("10.9.1.0/24")
	if err := inNamespace(ns, func() error {
		if err := setupRouter(); err != nil {
			return err
		}
		if err := ensureBridge(p+"b00000001", newMAC(), "10.9.0.1/24", "10.9.0.2/24"); err != nil {
			return err
		}
		return ensureBridge(p+"b00000002", newMAC(), "10.9.1.1/24", "10.9.1.2/24")
	}); err != nil {
		t.Fatal(err)
	}
	if err := ensurePublicBridge(pub, pool); err != nil {
		t.Fatal(err)
	}
	if err := ensureGatewayVeth(hostVeth, vpcVeth, pub, ns); err != nil {
		t.Fatal(err)
	}
	public := netip.MustParseAddr("203.0.113.140")
	if err := inNamespace(ns, func() error { return configureGatewayLink(vpcVeth, []netip.Addr{public}) }); err != nil {
		t.Fatal(err)
	}
	// The "internet": a namespace of the test's own on the public bridge.
	inet := p + "-inet"
	mustRun(t, "ip", "netns", "add", inet)
	mustRun(t, "ip", "link", "add", p+"x0", "type", "veth", "peer", "name", "eth0", "netns", inet)
	mustRun(t, "ip", "link", "set", p+"x0", "master", pub, "up")
	mustRun(t, "ip", "-n", inet, "addr", "add", "203.0.113.190/26", "dev", "eth0")
	mustRun(t, "ip", "-n", inet, "addr", "add", "198.51.100.1/24", "dev", "lo")
	mustRun(t, "ip", "-n", inet, "link", "set", "eth0", "up")
	mustRun(t, "ip", "-n", inet, "link", "set", "lo", "up")
	t.Cleanup(func() { _ = deleteLink(p + "x0") })

	cfg := edgeConfig{PublicCIDR: pool}
	all := netip.MustParsePrefix("0.0.0.0/0")
	tables := []subnetRouting{
		{CIDR: subnet, Routes: []kernelRoute{{Dst: all, Kind: toGateway}}},
		{CIDR: subnet2}, // private: local route only
	}
	sync := func(cfg edgeConfig, gw string) {
		t.Helper()
		if err := inNamespace(ns, func() error { return syncRouting(tables, gw, cfg) }); err != nil {
			t.Fatal(err)
		}
	}
	routeGet := func(dst, from, iif string) string {
		t.Helper()
		out, _ := run(t, "ip", "-n", ns, "route", "get", dst, "from", from, "iif", iif)
		return out
	}
	sync(cfg, vpcVeth)
	sync(cfg, vpcVeth) // idempotent
	if got := routeGet("203.0.113.129", "10.9.0.10", p+"b00000001"); !strings.Contains(got, "dev "+vpcVeth) {
		t.Errorf("public subnet to the lab server: want dev %s, got %q", vpcVeth, got)
	}
	if got := routeGet("198.51.100.1", "10.9.0.10", p+"b00000001"); !strings.Contains(got, "unreachable") && !strings.Contains(got, "No route to host") {
		t.Errorf("no publicGateway configured: the internet must be unreachable, got %q", got)
	}
	if got := routeGet("203.0.113.129", "10.9.1.10", p+"b00000002"); strings.Contains(got, "dev "+vpcVeth) {
		t.Errorf("private subnet must not reach the gateway, got %q", got)
	}
	if got := routeGet("10.9.1.10", "10.9.0.10", p+"b00000001"); !strings.Contains(got, "dev "+p+"b00000002") {
		t.Errorf("the local route must win between subnets, got %q", got)
	}

	cfg.Gateway = netip.MustParseAddr("203.0.113.190")
	sync(cfg, vpcVeth)
	if got := routeGet("198.51.100.1", "10.9.0.10", p+"b00000001"); !strings.Contains(got, "via 203.0.113.190 dev "+vpcVeth) {
		t.Errorf("with a publicGateway the internet goes via it, got %q", got)
	}
	// Real packets: the lab server reaches the VPC's public address
	// through the public bridge, and so does the "internet".
	deadline := time.Now().Add(10 * time.Second)
	for {
		_, err1 := run(t, "ping", "-c1", "-W1", public.String())
		_, err2 := run(t, "ip", "netns", "exec", inet, "ping", "-c1", "-W1", public.String())
		if err1 == nil && err2 == nil {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("public address %s unreachable: host %v, internet %v", public, err1, err2)
		}
		time.Sleep(200 * time.Millisecond)
	}
	// The route table loses its gateway route: blackhole-free, nothing left.
	tables[0].Routes = []kernelRoute{{Dst: netip.MustParsePrefix("198.51.100.0/24"), Kind: toNowhere}}
	sync(cfg, vpcVeth)
	if got := routeGet("198.51.100.1", "10.9.0.10", p+"b00000001"); strings.Contains(got, "via") {
		t.Errorf("blackhole route expected, got %q", got)
	}
	if out := mustRun(t, "ip", "-n", ns, "route", "show", "table", "1000"); strings.Contains(out, "0.0.0.0") || strings.Contains(out, "default") {
		t.Errorf("the old default route stayed:\n%s", out)
	}
	// Addresses follow the list.
	if err := inNamespace(ns, func() error { return configureGatewayLink(vpcVeth, nil) }); err != nil {
		t.Fatal(err)
	}
	if out := mustRun(t, "ip", "-n", ns, "addr", "show", vpcVeth); strings.Contains(out, public.String()) {
		t.Errorf("released public address still on the gateway link:\n%s", out)
	}
}
