package netfab

import (
	"bufio"
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/labcloud/labcloud/internal/errdefs"
	"github.com/labcloud/labcloud/internal/store"
	"github.com/labcloud/labcloud/internal/store/embedded"
	"github.com/miekg/dns"
	"github.com/vishvananda/netlink"
	"github.com/vishvananda/netns"
)

// requireNet skips only where root is missing (CI is root); missing tools
// fail, since make deps installs them.
func requireNet(t *testing.T) {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("needs root to create network namespaces, bridges and taps (CI runs as root)")
	}
	for _, p := range []string{"/bin/busybox", "/dev/net/tun"} {
		if _, err := os.Stat(p); err != nil {
			t.Fatalf("needs %s: %v (run `make deps`: busybox-static, a kernel with tun)", p, err)
		}
	}
	if _, err := exec.LookPath("ip"); err != nil {
		t.Fatal("needs iproute2's ip to inspect namespaces (run `make deps`)")
	}
}

func testPrefix(t *testing.T) string {
	b := make([]byte, 2)
	_, _ = rand.Read(b)
	return "t" + hex.EncodeToString(b)
}

func testStore(t *testing.T) *store.Store {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	srv, err := embedded.Start(ctx, embedded.Config{DataDir: t.TempDir()})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = srv.Close() })
	cli, err := store.Dial(ctx, srv.Endpoints())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = cli.Close() })
	return store.New(cli, "/labcloud/")
}

func run(t *testing.T, args ...string) (string, error) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	out, err := exec.CommandContext(ctx, args[0], args[1:]...).CombinedOutput()
	return string(out), err
}

func mustRun(t *testing.T, args ...string) string {
	t.Helper()
	out, err := run(t, args...)
	if err != nil {
		t.Fatalf("%s: %v\n%s", strings.Join(args, " "), err, out)
	}
	return out
}

// eventually retries fn until it succeeds or the deadline passes.
func eventually(t *testing.T, d time.Duration, what string, fn func() error) {
	t.Helper()
	end := time.Now().Add(d)
	for {
		err := fn()
		if err == nil {
			return
		}
		if time.Now().After(end) {
			t.Fatalf("%s: %v", what, err)
		}
		time.Sleep(200 * time.Millisecond)
	}
}

// attachTestGuest stands in for a VM: a network namespace of its own
// (named without the Fabric's prefix-dash, so Reconcile leaves it alone)
// whose eth0 carries the ENI's MAC and is joined to the ENI's subnet
// bridge by a veth, as an isolated port like the ENI's tap. It returns the
// guest namespace's name.
func attachTestGuest(t *testing.T, f *Fabric, e ENI, n int) string {
	t.Helper()
	guest := fmt.Sprintf("%sg%d", f.prefix, n)
	if err := ensureNetns(guest); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = deleteNetns(guest) })
	gh, err := netns.GetFromName(guest)
	if err != nil {
		t.Fatal(err)
	}
	defer gh.Close()
	var bridge string
	f.mu.Lock()
	bridge = f.vpcs[e.VPCID].subnets[e.SubnetID].Bridge
	f.mu.Unlock()
	// The guest's veth takes the ENI's tap name (the tap goes): the VPC's
	// filter only lets known taps through, with their MAC and address.
	host, peer := e.Tap, fmt.Sprintf("gp%d", n)
	err = inNamespace(e.Namespace, func() error {
		if err := deleteLink(e.Tap); err != nil {
			return err
		}
		if err := netlink.LinkAdd(&netlink.Veth{LinkAttrs: netlink.LinkAttrs{Name: host, MTU: 1500}, PeerName: peer}); err != nil {
			return err
		}
		l, err := netlink.LinkByName(host)
		if err != nil {
			return err
		}
		if err := attachPort(l, bridge); err != nil {
			return err
		}
		p, err := netlink.LinkByName(peer)
		if err != nil {
			return err
		}
		return netlink.LinkSetNsFd(p, int(gh))
	})
	if err != nil {
		t.Fatalf("attaching guest %s: %v", guest, err)
	}
	err = inNamespace(guest, func() error {
		p, err := netlink.LinkByName(peer)
		if err != nil {
			return err
		}
		hw, _ := net.ParseMAC(e.MAC)
		if err := netlink.LinkSetName(p, "eth0"); err != nil {
			return err
		}
		if err := netlink.LinkSetHardwareAddr(p, hw); err != nil {
			return err
		}
		if err := netlink.LinkSetUp(p); err != nil {
			return err
		}
		lo, err := netlink.LinkByName("lo")
		if err != nil {
			return err
		}
		return netlink.LinkSetUp(lo)
	})
	if err != nil {
		t.Fatalf("configuring guest %s: %v", guest, err)
	}
	return guest
}

// udhcpc runs busybox udhcpc once in the guest and returns the variables
// its script saw (ip, router, hostname, ...). The script configures eth0.
func udhcpc(t *testing.T, guest string) (map[string]string, error) {
	t.Helper()
	dir := t.TempDir()
	out := filepath.Join(dir, "lease")
	script := filepath.Join(dir, "script")
	body := `#!/bin/busybox sh
B=/bin/busybox
case "$1" in
deconfig) $B ip addr flush dev "$interface" ;;
bound|renew)
	$B ip addr flush dev "$interface"
	$B ip addr add "$ip/$mask" dev "$interface"
	$B ip route add default via "$router" dev "$interface"
	for v in ip mask subnet router dns hostname domain mtu lease serverid broadcast; do
		eval "echo $v=\$$v"
	done > ` + out + `
	;;
esac
`
	if err := os.WriteFile(script, []byte(body), 0o755); err != nil {
		t.Fatal(err)
	}
	o, err := run(t, "ip", "netns", "exec", guest, "/bin/busybox", "udhcpc", "-i", "eth0", "-n", "-q", "-f", "-t", "5", "-T", "1", "-s", script)
	if err != nil {
		return nil, fmt.Errorf("udhcpc in %s: %v\n%s", guest, err, o)
	}
	f, err := os.Open(out)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	vars := map[string]string{}
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		k, v, _ := strings.Cut(sc.Text(), "=")
		vars[k] = v
	}
	return vars, nil
}

// rawHTTP sends one request from inside a namespace (Go's http.Client dials
// on other goroutines, which would not be in the namespace) and returns
// the status code and body.
func rawHTTP(t *testing.T, ns, req string) (int, string, error) {
	t.Helper()
	var code int
	var body string
	err := inNamespace(ns, func() error {
		c, err := net.DialTimeout("tcp4", imdsAddr+":80", 3*time.Second)
		if err != nil {
			return err
		}
		defer c.Close()
		_ = c.SetDeadline(time.Now().Add(5 * time.Second))
		if _, err := c.Write([]byte(req)); err != nil {
			return err
		}
		resp, err := http.ReadResponse(bufio.NewReader(c), nil)
		if err != nil {
			return err
		}
		defer resp.Body.Close()
		b := new(strings.Builder)
		_, err = bufioCopy(b, resp)
		code, body = resp.StatusCode, b.String()
		return err
	})
	return code, body, err
}

func bufioCopy(b *strings.Builder, resp *http.Response) (int64, error) {
	buf := make([]byte, 4096)
	var n int64
	for {
		k, err := resp.Body.Read(buf)
		b.Write(buf[:k])
		n += int64(k)
		if err != nil {
			if err.Error() == "EOF" {
				return n, nil
			}
			return n, err
		}
	}
}

func linkNames(t *testing.T, ns string) []string {
	t.Helper()
	var names []string
	err := inNamespace(ns, func() error {
		links, err := netlink.LinkList()
		for _, l := range links {
			names = append(names, l.Attrs().Name)
		}
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	return names
}

func TestFabricDefaultVPCEndToEnd(t *testing.T) {
	requireNet(t)
	ctx := context.Background()
	st := testStore(t)
	md := &fakeMetadata{}
	prefix := testPrefix(t)
	// Registered first, so it runs last: after every Teardown and guest
	// cleanup, nothing named with the prefix may be left on the host.
	t.Cleanup(func() {
		if out, _ := run(t, "ip", "netns", "list"); strings.Contains(out, prefix) {
			t.Errorf("namespaces left behind:\n%s", out)
		}
		if out, _ := run(t, "ip", "link", "show"); strings.Contains(out, prefix) {
			t.Errorf("links left behind:\n%s", out)
		}
	})
	opts := Options{Store: st, Zones: []string{"lab-1a", "lab-1b", "lab-1c"}, NamePrefix: prefix, Metadata: md}
	f, err := New(ctx, opts)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = f.Teardown(context.Background()) })
	outer := t

	const acct = "123456789012"
	// Two concurrent calls agree on one default VPC.
	type result struct {
		vpc VPC
		err error
	}
	results := make(chan result, 2)
	for range 2 {
		go func() {
			v, err := f.EnsureDefaultVPC(ctx, acct)
			results <- result{v, err}
		}()
	}
	r1, r2 := <-results, <-results
	if r1.err != nil || r2.err != nil {
		t.Fatalf("EnsureDefaultVPC: %v, %v", r1.err, r2.err)
	}
	if r1.vpc.ID != r2.vpc.ID {
		t.Fatalf("concurrent EnsureDefaultVPC made two VPCs: %s and %s", r1.vpc.ID, r2.vpc.ID)
	}
	vpc := r1.vpc
	if vpc.CIDR != "172.31.0.0/16" || !vpc.IsDefault || len(vpc.Subnets) != 3 || len(vpc.ID) != 21 {
		t.Fatalf("default VPC: %+v", vpc)
	}
	for i, s := range vpc.Subnets {
		if s.CIDR != defaultSubnetCIDR(i) || s.AvailabilityZone != opts.Zones[i] || !s.DefaultForAz || s.RouterIP != fmt.Sprintf("172.31.%d.1", 16*i) {
			t.Errorf("subnet %d: %+v", i, s)
		}
	}
	again, err := f.EnsureDefaultVPC(ctx, acct)
	if err != nil || again.ID != vpc.ID {
		t.Fatalf("second EnsureDefaultVPC: %v, %s want %s", err, again.ID, vpc.ID)
	}

	t.Run("router namespace sysctls", func(t *testing.T) {
		for path, want := range map[string]string{
			"net/ipv4/ip_forward":                                         "1",
			"net/ipv4/conf/all/send_redirects":                            "0",
			"net/bridge/bridge-nf-call-iptables":                          "0",
			"net/bridge/bridge-nf-call-ip6tables":                         "0",
			"net/bridge/bridge-nf-call-arptables":                         "0",
			"net/ipv4/conf/" + vpc.Subnets[0].Bridge + "/proxy_arp_pvlan": "1",
			"net/ipv4/conf/" + vpc.Subnets[0].Bridge + "/send_redirects":  "0",
		} {
			got := strings.TrimSpace(mustRun(t, "ip", "netns", "exec", vpc.Namespace, "cat", "/proc/sys/"+path))
			if got != want {
				t.Errorf("%s = %s, want %s", path, got, want)
			}
		}
	})

	sub := vpc.Subnets[0]
	if _, err := f.CreateENI(ctx, ENIRequest{AccountID: acct, SubnetID: "subnet-00000000000000000"}); !errdefs.Is(err, errdefs.ClassNotFound) {
		t.Errorf("CreateENI in an unknown subnet: %v, want a NotFound error", err)
	}
	if _, err := f.CreateENI(ctx, ENIRequest{AccountID: "999999999999", SubnetID: sub.ID}); !errdefs.Is(err, errdefs.ClassNotFound) {
		t.Errorf("CreateENI in another account's subnet: %v, want a NotFound error", err)
	}
	var enis []ENI
	for i := 0; i < 2; i++ {
		e, err := f.CreateENI(ctx, ENIRequest{AccountID: acct, SubnetID: sub.ID, InstanceID: fmt.Sprintf("i-%017d", i+1)})
		if err != nil {
			t.Fatalf("CreateENI: %v", err)
		}
		enis = append(enis, e)
		md.set(vpc.ID, e.PrivateIP, Metadata{
			InstanceID: e.InstanceID, ImageID: "ami-00000000000000001", InstanceType: "t3.micro",
			AvailabilityZone: e.AvailabilityZone, Region: "lab-1", LocalIPv4: e.PrivateIP, MAC: e.MAC,
			HTTPTokens: "optional", HTTPEndpoint: "enabled", HopLimit: 1, AccountID: acct,
		})
	}
	if again, err := f.CreateENI(ctx, ENIRequest{AccountID: acct, SubnetID: sub.ID, InstanceID: enis[0].InstanceID}); err != nil || again.ID != enis[0].ID {
		t.Errorf("CreateENI again for %s: %v %v, want the same ENI %s", enis[0].InstanceID, again.ID, err, enis[0].ID)
	}
	if _, err := f.CreateENI(ctx, ENIRequest{AccountID: acct, SubnetID: vpc.Subnets[2].ID, InstanceID: enis[0].InstanceID}); !errdefs.Is(err, errdefs.ClassConflict) {
		t.Errorf("CreateENI for %s in another subnet: %v, want a Conflict error", enis[0].InstanceID, err)
	}
	if enis[0].PrivateIP != "172.31.0.4" || enis[1].PrivateIP != "172.31.0.5" {
		t.Fatalf("addresses %s, %s; want 172.31.0.4 and .5", enis[0].PrivateIP, enis[1].PrivateIP)
	}
	if enis[0].NetNSPath != "/var/run/netns/"+vpc.Namespace || !strings.HasPrefix(enis[0].MAC, "02:") || !strings.HasPrefix(enis[0].ID, "eni-") {
		t.Errorf("ENI %+v", enis[0])
	}

	t.Run("tap is a persistent single-queue isolated port", func(t *testing.T) {
		out := mustRun(t, "ip", "-n", vpc.Namespace, "-d", "link", "show", enis[0].Tap)
		for _, want := range []string{"tap", "persist on", "isolated on", "master " + sub.Bridge} {
			if !strings.Contains(out, want) {
				t.Errorf("tap lacks %q:\n%s", want, out)
			}
		}
		if strings.Contains(out, "multi_queue") {
			t.Errorf("tap is multi-queue:\n%s", out)
		}
	})

	guests := make([]string, len(enis))
	for i, e := range enis {
		guests[i] = attachTestGuest(t, f, e, i)
	}

	t.Run("DHCP", func(t *testing.T) {
		for i, e := range enis {
			lease, err := udhcpc(t, guests[i])
			if err != nil {
				t.Fatal(err)
			}
			want := map[string]string{"ip": e.PrivateIP, "mask": "20", "router": "172.31.0.1", "dns": "172.31.0.2",
				"hostname": hostname(e.PrivateIP), "domain": "lab-1.compute.internal", "mtu": "1500", "lease": "3600", "serverid": "172.31.0.1"}
			for k, v := range want {
				if strings.TrimSpace(lease[k]) != v {
					t.Errorf("guest %d: %s = %q, want %q (lease %v)", i, k, lease[k], v, lease)
				}
			}
		}
	})

	t.Run("second subnet: own DHCP server, routed between subnets", func(t *testing.T) {
		sub2 := vpc.Subnets[1]
		e, err := f.CreateENI(ctx, ENIRequest{AccountID: acct, SubnetID: sub2.ID, InstanceID: "i-00000000000000009"})
		if err != nil {
			t.Fatal(err)
		}
		if e.PrivateIP != "172.31.16.4" || e.AvailabilityZone != "lab-1b" {
			t.Fatalf("ENI in second subnet: %+v", e)
		}
		g := attachTestGuest(t, f, e, 9)
		lease, err := udhcpc(t, g)
		if err != nil {
			t.Fatal(err)
		}
		if lease["ip"] != e.PrivateIP || lease["router"] != "172.31.16.1" || lease["mask"] != "20" {
			t.Errorf("lease in second subnet: %v", lease)
		}
		eventually(t, 10*time.Second, "ping across subnets", func() error {
			out, err := run(t, "ip", "netns", "exec", guests[0], "/bin/busybox", "ping", "-c", "1", "-W", "1", e.PrivateIP)
			if err != nil {
				return fmt.Errorf("%v: %s", err, out)
			}
			return nil
		})
		if err := f.DeleteENI(ctx, acct, e.ID); err != nil {
			t.Fatal(err)
		}
	})

	t.Run("DNS address base+2 answers (the resolver, dns.go)", func(t *testing.T) {
		m, _, err := dnsQuery(guests[0], "172.31.0.2", "udp", f.PrivateDNSName(enis[0].PrivateIP), dns.TypeA)
		if err != nil || len(m.Answer) != 1 || m.Answer[0].(*dns.A).A.String() != enis[0].PrivateIP {
			t.Errorf("query to 172.31.0.2:53: %v %v, want %s", m, err, enis[0].PrivateIP)
		}
	})

	t.Run("same-subnet traffic hairpins through the router", func(t *testing.T) {
		eventually(t, 10*time.Second, "ping guest 1 -> guest 2", func() error {
			out, err := run(t, "ip", "netns", "exec", guests[0], "/bin/busybox", "ping", "-c", "1", "-W", "1", enis[1].PrivateIP)
			if err != nil {
				return fmt.Errorf("%v: %s", err, out)
			}
			return nil
		})
		// Isolated ports: guest 1 learned guest 2's address at the
		// router's MAC (proxy_arp_pvlan), not at guest 2's own.
		var brMAC string
		_ = inNamespace(vpc.Namespace, func() error {
			l, err := netlink.LinkByName(sub.Bridge)
			if err == nil {
				brMAC = l.Attrs().HardwareAddr.String()
			}
			return err
		})
		neigh := mustRun(t, "ip", "-n", guests[0], "neigh", "show", enis[1].PrivateIP)
		if !strings.Contains(neigh, brMAC) || strings.Contains(neigh, enis[1].MAC) {
			t.Errorf("guest 1's neighbour entry for guest 2 is %q; want the router's MAC %s", neigh, brMAC)
		}
	})

	t.Run("IMDSv1 with busybox wget", func(t *testing.T) {
		for i, e := range enis {
			out := mustRun(t, "ip", "netns", "exec", guests[i], "/bin/busybox", "wget", "-q", "-O", "-", "http://169.254.169.254/latest/meta-data/instance-id")
			if out != e.InstanceID {
				t.Errorf("guest %d: instance-id %q, want %s", i, out, e.InstanceID)
			}
		}
		out := mustRun(t, "ip", "netns", "exec", guests[0], "/bin/busybox", "wget", "-q", "-O", "-",
			"http://169.254.169.254/latest/meta-data/network/interfaces/macs/"+enis[0].MAC+"/subnet-id")
		if out != sub.ID {
			t.Errorf("subnet-id %q, want %s", out, sub.ID)
		}
	})

	t.Run("IMDSv2 with a Go client in the guest", func(t *testing.T) {
		code, tok, err := rawHTTP(t, guests[1], "PUT /latest/api/token HTTP/1.1\r\nHost: 169.254.169.254\r\nX-aws-ec2-metadata-token-ttl-seconds: 60\r\nContent-Length: 0\r\nConnection: close\r\n\r\n")
		if err != nil || code != 200 || tok == "" {
			t.Fatalf("PUT token: %d %q %v", code, tok, err)
		}
		code, body, err := rawHTTP(t, guests[1], "GET /latest/meta-data/instance-id HTTP/1.1\r\nHost: 169.254.169.254\r\nX-aws-ec2-metadata-token: "+tok+"\r\nConnection: close\r\n\r\n")
		if err != nil || code != 200 || body != enis[1].InstanceID {
			t.Errorf("GET with token: %d %q %v", code, body, err)
		}
		code, _, err = rawHTTP(t, guests[1], "GET /latest/meta-data/instance-id HTTP/1.1\r\nHost: 169.254.169.254\r\nX-aws-ec2-metadata-token: bogus\r\nConnection: close\r\n\r\n")
		if err != nil || code != 401 {
			t.Errorf("GET with a bad token: %d %v, want 401", code, err)
		}
	})

	t.Run("IMDSv2 HTTP/1.0 PUT from busybox nc, as labcloud-tiny sends it", func(t *testing.T) {
		script := `printf 'PUT /latest/api/token HTTP/1.0\r\nHost: 169.254.169.254\r\nX-aws-ec2-metadata-token-ttl-seconds: 21600\r\nContent-Length: 0\r\n\r\n' | /bin/busybox timeout 5 /bin/busybox nc -w 2 169.254.169.254 80`
		start := time.Now()
		out := mustRun(t, "ip", "netns", "exec", guests[0], "/bin/busybox", "sh", "-c", script)
		if time.Since(start) > 4*time.Second {
			t.Errorf("nc took %v: the server did not close the connection after answering", time.Since(start))
		}
		head, tok, _ := strings.Cut(out, "\r\n\r\n")
		if !strings.HasPrefix(head, "HTTP/1.") || !strings.Contains(head, " 200 ") || tok == "" {
			t.Fatalf("response %q", out)
		}
		got := mustRun(t, "ip", "netns", "exec", guests[0], "/bin/busybox", "wget", "-q", "-O", "-",
			"--header", "X-aws-ec2-metadata-token: "+tok, "http://169.254.169.254/latest/meta-data/local-ipv4")
		if got != enis[0].PrivateIP {
			t.Errorf("local-ipv4 with the nc token: %q", got)
		}
	})

	t.Run("Reconcile after Close rebuilds servers and missing taps, removes strays", func(t *testing.T) {
		if err := f.Close(); err != nil {
			t.Fatal(err)
		}
		if _, err := run(t, "ip", "netns", "exec", guests[0], "/bin/busybox", "wget", "-q", "-T", "2", "-O", "-", "http://169.254.169.254/latest/meta-data/instance-id"); err == nil {
			t.Error("IMDS still answers after Close")
		}
		// The links stay: running VMs keep their network.
		if !contains(linkNames(t, vpc.Namespace), enis[0].Tap) {
			t.Fatal("Close removed a tap")
		}
		// Simulate damage while the daemon is down: a lost tap and a
		// stray tap no record owns.
		_ = inNamespace(vpc.Namespace, func() error { return deleteLink(enis[1].Tap) })
		stray := prefix + "bdeadbeef"
		if err := inNamespace(vpc.Namespace, func() error {
			return netlink.LinkAdd(&netlink.Bridge{LinkAttrs: netlink.LinkAttrs{Name: stray}})
		}); err != nil {
			t.Fatal(err)
		}
		f2, err := New(ctx, opts)
		if err != nil {
			t.Fatal(err)
		}
		f = f2
		outer.Cleanup(func() { _ = f2.Teardown(context.Background()) })
		if err := f2.Reconcile(ctx); err != nil {
			t.Fatalf("Reconcile: %v", err)
		}
		if err := f2.Reconcile(ctx); err != nil {
			t.Fatalf("second Reconcile: %v", err)
		}
		names := linkNames(t, vpc.Namespace)
		if !contains(names, enis[1].Tap) || contains(names, stray) {
			t.Errorf("links after Reconcile: %v; want %s back and %s gone", names, enis[1].Tap, stray)
		}
		out := mustRun(t, "ip", "-n", vpc.Namespace, "-d", "link", "show", enis[1].Tap)
		if !strings.Contains(out, "isolated on") {
			t.Errorf("rebuilt tap is not isolated:\n%s", out)
		}
		again, err := f2.EnsureDefaultVPC(ctx, acct)
		if err != nil || again.ID != vpc.ID {
			t.Errorf("default VPC after restart: %v %s, want %s", err, again.ID, vpc.ID)
		}
		lease, err := udhcpc(t, guests[0])
		if err != nil || lease["ip"] != enis[0].PrivateIP {
			t.Errorf("DHCP after Reconcile: %v %v", lease, err)
		}
		eventually(t, 10*time.Second, "IMDS after Reconcile", func() error {
			out, err := run(t, "ip", "netns", "exec", guests[0], "/bin/busybox", "wget", "-q", "-O", "-", "http://169.254.169.254/latest/meta-data/instance-id")
			if err != nil || out != enis[0].InstanceID {
				return fmt.Errorf("%q %v", out, err)
			}
			return nil
		})
	})

	t.Run("DeleteENI removes tap, lease and records", func(t *testing.T) {
		if err := f.DeleteENI(ctx, acct, enis[1].ID); err != nil {
			t.Fatal(err)
		}
		if contains(linkNames(t, vpc.Namespace), enis[1].Tap) {
			t.Error("tap still there")
		}
		if _, err := st.Get(ctx, eniKey(acct, enis[1].ID), nil); err == nil {
			t.Error("ENI record still there")
		}
		if _, err := st.Get(ctx, ipKey(vpc.ID, enis[1].PrivateIP), nil); err == nil {
			t.Error("IP index entry still there")
		}
		if _, err := st.Get(ctx, instKey(acct, enis[1].InstanceID), nil); err == nil {
			t.Error("instance index entry still there")
		}
		if _, err := udhcpc(t, guests[1]); err == nil {
			t.Error("the deleted ENI's MAC still gets a lease")
		}
		// Its address is free again.
		e, err := f.CreateENI(ctx, ENIRequest{AccountID: acct, SubnetID: sub.ID, InstanceID: "i-00000000000000003"})
		if err != nil || e.PrivateIP != enis[1].PrivateIP {
			t.Errorf("reuse: %+v %v", e, err)
		}
		if err := f.DeleteENI(ctx, acct, "eni-00000000000000000"); err == nil {
			t.Error("deleting an unknown ENI succeeded")
		}
	})

	t.Run("Teardown leaves nothing", func(t *testing.T) {
		if err := f.Teardown(ctx); err != nil {
			t.Fatal(err)
		}
		out := mustRun(t, "ip", "netns", "list")
		if strings.Contains(out, prefix+"-") {
			t.Errorf("namespaces left:\n%s", out)
		}
		out = mustRun(t, "ip", "link", "show")
		if strings.Contains(out, prefix) {
			t.Errorf("host links left:\n%s", out)
		}
	})
}

func contains(ss []string, s string) bool {
	for _, x := range ss {
		if x == s {
			return true
		}
	}
	return false
}
