package netfab

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/miekg/dns"
)

func testDNSZone() *dnsZone {
	return &dnsZone{
		domain:    "lab-1.compute.internal.",
		pubDomain: "lab-1.compute.amazonaws.com.",
		cidrs:     []netip.Prefix{netip.MustParsePrefix("172.31.0.0/16")},
		byPublic: func(pub netip.Addr) (netip.Addr, bool, bool) {
			switch pub.String() {
			case "203.0.113.5": // an ENI of this VPC
				return netip.MustParseAddr("172.31.0.4"), true, true
			case "203.0.113.6": // an ENI of another VPC
				return netip.MustParseAddr("10.0.0.4"), false, true
			}
			return netip.Addr{}, false, false
		},
	}
}

func TestDNSReply(t *testing.T) {
	z := testDNSZone()
	tests := []struct {
		name   string
		qname  string
		qtype  uint16
		ours   bool   // false: the zone leaves it to refuse/forward
		rcode  int    // when ours
		answer string // the answer's rdata, "" for none
		soa    bool   // an SOA in the authority section
	}{
		{"private name", "ip-172-31-0-4.lab-1.compute.internal.", dns.TypeA, true, dns.RcodeSuccess, "172.31.0.4", false},
		{"private name of an unused VPC address (AWS answers by pattern)", "ip-172-31-200-9.lab-1.compute.internal.", dns.TypeA, true, dns.RcodeSuccess, "172.31.200.9", false},
		{"case does not matter", "IP-172-31-0-4.Lab-1.Compute.Internal.", dns.TypeA, true, dns.RcodeSuccess, "172.31.0.4", false},
		{"ANY gives the A record", "ip-172-31-0-4.lab-1.compute.internal.", dns.TypeANY, true, dns.RcodeSuccess, "172.31.0.4", false},
		{"AAAA of a private name is NODATA", "ip-172-31-0-4.lab-1.compute.internal.", dns.TypeAAAA, true, dns.RcodeSuccess, "", true},
		{"address outside the VPC", "ip-10-0-0-4.lab-1.compute.internal.", dns.TypeA, true, dns.RcodeNameError, "", true},
		{"not an address pattern", "db.lab-1.compute.internal.", dns.TypeA, true, dns.RcodeNameError, "", true},
		{"leading zero", "ip-172-031-0-4.lab-1.compute.internal.", dns.TypeA, true, dns.RcodeNameError, "", true},
		{"octet too large", "ip-172-31-0-256.lab-1.compute.internal.", dns.TypeA, true, dns.RcodeNameError, "", true},
		{"deeper name", "x.ip-172-31-0-4.lab-1.compute.internal.", dns.TypeA, true, dns.RcodeNameError, "", true},
		{"domain apex SOA", "lab-1.compute.internal.", dns.TypeSOA, true, dns.RcodeSuccess, "ns.lab-1.compute.internal.", false},
		{"domain apex A is NODATA", "lab-1.compute.internal.", dns.TypeA, true, dns.RcodeSuccess, "", true},
		{"PTR of a VPC address", "4.0.31.172.in-addr.arpa.", dns.TypePTR, true, dns.RcodeSuccess, "ip-172-31-0-4.lab-1.compute.internal.", false},
		{"PTR outside the VPC", "8.8.8.8.in-addr.arpa.", dns.TypePTR, false, 0, "", false},
		{"partial reverse name", "31.172.in-addr.arpa.", dns.TypePTR, false, 0, "", false},
		{"public name inside its VPC gives the private address", "ec2-203-0-113-5.lab-1.compute.amazonaws.com.", dns.TypeA, true, dns.RcodeSuccess, "172.31.0.4", false},
		{"public name of another VPC's ENI", "ec2-203-0-113-6.lab-1.compute.amazonaws.com.", dns.TypeA, true, dns.RcodeSuccess, "203.0.113.6", false},
		{"public name nobody holds", "ec2-203-0-113-7.lab-1.compute.amazonaws.com.", dns.TypeA, true, dns.RcodeNameError, "", true},
		{"PTR of a public address", "5.113.0.203.in-addr.arpa.", dns.TypePTR, true, dns.RcodeSuccess, "ec2-203-0-113-5.lab-1.compute.amazonaws.com.", false},
		{"another region's domain", "ip-172-31-0-4.lab-2.compute.internal.", dns.TypeA, false, 0, "", false},
		{"internet name", "www.example.com.", dns.TypeA, false, 0, "", false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			req := new(dns.Msg)
			req.SetQuestion(tt.qname, tt.qtype)
			m := z.reply(req)
			if !tt.ours {
				if m != nil {
					t.Fatalf("answered a name it does not own: %v", m)
				}
				return
			}
			if m == nil {
				t.Fatal("no answer")
			}
			if m.Id != req.Id || !m.Response || m.Rcode != tt.rcode {
				t.Fatalf("id %d/%d response %v rcode %s, want rcode %s:\n%v", m.Id, req.Id, m.Response, dns.RcodeToString[m.Rcode], dns.RcodeToString[tt.rcode], m)
			}
			var got string
			if len(m.Answer) > 0 {
				if len(m.Answer) != 1 || m.Answer[0].Header().Name != tt.qname || m.Answer[0].Header().Ttl != dnsTTL {
					t.Fatalf("answer section: %v", m.Answer)
				}
				switch rr := m.Answer[0].(type) {
				case *dns.A:
					got = rr.A.String()
				case *dns.PTR:
					got = rr.Ptr
				case *dns.SOA:
					got = rr.Ns
				}
			}
			if got != tt.answer {
				t.Errorf("answer %q, want %q:\n%v", got, tt.answer, m)
			}
			if hasSOA := len(m.Ns) == 1 && m.Ns[0].Header().Rrtype == dns.TypeSOA; hasSOA != tt.soa {
				t.Errorf("authority %v, want SOA %v", m.Ns, tt.soa)
			}
		})
	}
	t.Run("no public names without the hook", func(t *testing.T) {
		z := testDNSZone()
		z.byPublic = nil
		req := new(dns.Msg)
		req.SetQuestion("ec2-203-0-113-5.lab-1.compute.amazonaws.com.", dns.TypeA)
		if m := z.reply(req); m == nil || m.Rcode != dns.RcodeNameError {
			t.Errorf("got %v, want NXDOMAIN", m)
		}
	})
	t.Run("EDNS0 query gets an OPT back", func(t *testing.T) {
		req := new(dns.Msg)
		req.SetQuestion("ip-172-31-0-4.lab-1.compute.internal.", dns.TypeA)
		req.SetEdns0(4096, false)
		if m := z.reply(req); m == nil || m.IsEdns0() == nil {
			t.Errorf("got %v, want an OPT record", m)
		}
	})
	t.Run("refusal", func(t *testing.T) {
		req := new(dns.Msg)
		req.SetQuestion("www.example.com.", dns.TypeA)
		m := dnsRefuse(req)
		if m.Rcode != dns.RcodeRefused || m.Id != req.Id || len(m.Question) != 1 {
			t.Errorf("refusal: %v", m)
		}
	})
}

func TestDNSDomainMatchesDHCP(t *testing.T) {
	cfg, err := newDHCPConfig("172.31.0.0/20", "lab-1")
	if err != nil {
		t.Fatal(err)
	}
	// The guests' search list (DHCP domain) must be the resolver's
	// domain, or a bare ip-a-b-c-d would not resolve.
	if cfg.Domain != privateDomain("lab-1") {
		t.Errorf("DHCP domain %q, resolver domain %q", cfg.Domain, privateDomain("lab-1"))
	}
	f := &Fabric{region: "lab-1"}
	if got := f.PrivateDNSName("172.31.0.4"); got != "ip-172-31-0-4.lab-1.compute.internal" {
		t.Errorf("PrivateDNSName = %s", got)
	}
	if got := f.PublicDNSName("203.0.113.5"); got != "ec2-203-0-113-5.lab-1.compute.amazonaws.com" {
		t.Errorf("PublicDNSName = %s", got)
	}
}

// dnsQuery sends one query from inside namespace ns (the client dials on
// the calling goroutine, which inNamespace keeps in ns).
func dnsQuery(ns, server, netw, name string, qtype uint16) (*dns.Msg, time.Duration, error) {
	var m *dns.Msg
	var rtt time.Duration
	err := inNamespace(ns, func() error {
		c := &dns.Client{Net: netw, Timeout: 2 * time.Second}
		req := new(dns.Msg)
		req.SetQuestion(dns.Fqdn(name), qtype)
		start := time.Now()
		var err error
		m, _, err = c.Exchange(req, server+":53")
		rtt = time.Since(start)
		return err
	})
	return m, rtt, err
}

func isTimeout(err error) bool {
	var ne net.Error
	return errors.As(err, &ne) && ne.Timeout()
}

// glibcResolve runs glibc's resolver (getent ahostsv4) in the guest with a
// resolv.conf made from the DHCP lease, bind-mounted in a private mount
// namespace so the host's /etc is untouched.
func glibcResolve(t *testing.T, guest, resolvConf, name string) (string, time.Duration, error) {
	t.Helper()
	start := time.Now()
	out, err := run(t, "unshare", "--mount", "--propagation", "private", "sh", "-c",
		`mount --bind "$1" /etc/resolv.conf && exec ip netns exec "$2" getent ahostsv4 "$3"`, "sh", resolvConf, guest, name)
	return out, time.Since(start), err
}

func TestDNSResolverInVPC(t *testing.T) {
	requireNet(t)
	ctx := context.Background()
	st := testStore(t)
	const prefix = "dn1"
	t.Cleanup(func() {
		if out, _ := run(t, "ip", "netns", "list"); strings.Contains(out, prefix) {
			t.Errorf("namespaces left behind:\n%s", out)
		}
	})
	var pubMu sync.Mutex
	public := map[string]netip.Addr{} // ENI ID -> public IP
	opts := Options{
		Store: st, Zones: []string{"lab-1a", "lab-1b", "lab-1c"}, NamePrefix: prefix, Metadata: &fakeMetadata{},
		PublicIPv4: func(e ENI) netip.Addr {
			pubMu.Lock()
			defer pubMu.Unlock()
			return public[e.ID]
		},
	}
	f, err := New(ctx, opts)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = f.Teardown(context.Background()) })
	const acct = "123456789012"
	vpc, err := f.EnsureDefaultVPC(ctx, acct)
	if err != nil {
		t.Fatal(err)
	}
	e, err := f.CreateENI(ctx, ENIRequest{AccountID: acct, SubnetID: vpc.Subnets[0].ID, InstanceID: "i-00000000000000d51"})
	if err != nil {
		t.Fatal(err)
	}
	pubMu.Lock()
	public[e.ID] = netip.MustParseAddr("203.0.113.5")
	pubMu.Unlock()
	guest := attachTestGuest(t, f, e, 0)
	lease, err := udhcpc(t, guest)
	if err != nil {
		t.Fatal(err)
	}
	if lease["dns"] != "172.31.0.2" || lease["domain"] != "lab-1.compute.internal" || lease["ip"] != e.PrivateIP {
		t.Fatalf("lease %v", lease)
	}
	dnsIP := lease["dns"]
	name := f.PrivateDNSName(e.PrivateIP)

	for _, netw := range []string{"udp", "tcp"} {
		t.Run("answers over "+netw, func(t *testing.T) {
			m, _, err := dnsQuery(guest, dnsIP, netw, name, dns.TypeA)
			if err != nil {
				t.Fatal(err)
			}
			if m.Rcode != dns.RcodeSuccess || len(m.Answer) != 1 || m.Answer[0].(*dns.A).A.String() != e.PrivateIP {
				t.Errorf("A %s: %v", name, m)
			}
			rev, _ := dns.ReverseAddr(e.PrivateIP)
			m, _, err = dnsQuery(guest, dnsIP, netw, rev, dns.TypePTR)
			if err != nil {
				t.Fatal(err)
			}
			if len(m.Answer) != 1 || m.Answer[0].(*dns.PTR).Ptr != name+"." {
				t.Errorf("PTR %s: %v", rev, m)
			}
			m, _, err = dnsQuery(guest, dnsIP, netw, "no-such-host.lab-1.compute.internal", dns.TypeA)
			if err != nil {
				t.Fatal(err)
			}
			if m.Rcode != dns.RcodeNameError {
				t.Errorf("no-such-host: %v, want NXDOMAIN", m)
			}
			m, _, err = dnsQuery(guest, dnsIP, netw, f.PublicDNSName("203.0.113.5"), dns.TypeA)
			if err != nil {
				t.Fatal(err)
			}
			if len(m.Answer) != 1 || m.Answer[0].(*dns.A).A.String() != e.PrivateIP {
				t.Errorf("public name inside the VPC: %v, want the private address %s", m, e.PrivateIP)
			}
			for range 3 {
				m, rtt, err := dnsQuery(guest, dnsIP, netw, "www.example.com", dns.TypeA)
				if err != nil {
					t.Fatal(err)
				}
				if m.Rcode != dns.RcodeRefused {
					t.Errorf("internet name: %v, want REFUSED", m)
				}
				if rtt >= 100*time.Millisecond {
					t.Errorf("internet name took %v, want < 100 ms", rtt)
				}
			}
		})
	}

	t.Run("answers on every subnet's base+2 and 169.254.169.253, not on the router address", func(t *testing.T) {
		for _, server := range []string{"172.31.16.2", "172.31.32.2", "169.254.169.253"} {
			m, _, err := dnsQuery(guest, server, "udp", name, dns.TypeA)
			if err != nil || len(m.Answer) != 1 {
				t.Errorf("query to %s: %v %v", server, m, err)
			}
		}
		// TCP: a reset is not rate-limited as ICMP errors are.
		_, _, err := dnsQuery(guest, "172.31.0.1", "tcp", name, dns.TypeA)
		if !errors.Is(err, syscall.ECONNREFUSED) {
			t.Errorf("query to the router address: %v, want connection refused", err)
		}
	})

	t.Run("glibc in the guest: search domain and fast failure", func(t *testing.T) {
		rc := filepath.Join(t.TempDir(), "resolv.conf")
		body := fmt.Sprintf("nameserver %s\nsearch %s\n", lease["dns"], lease["domain"])
		if err := os.WriteFile(rc, []byte(body), 0o644); err != nil {
			t.Fatal(err)
		}
		out, _, err := glibcResolve(t, guest, rc, hostname(e.PrivateIP))
		if err != nil || !strings.HasPrefix(out, e.PrivateIP+" ") {
			t.Errorf("getent ahostsv4 %s (bare, via the search domain): %v\n%s", hostname(e.PrivateIP), err, out)
		}
		out, took, err := glibcResolve(t, guest, rc, "www.example.com")
		if err == nil {
			t.Errorf("getent ahostsv4 www.example.com succeeded:\n%s", out)
		}
		// unshare + ip netns exec + getent cost a few ms; glibc's own
		// timeout would be 5 s per try.
		if took > time.Second {
			t.Errorf("getent for an internet name took %v, want well under glibc's 5 s timeout", took)
		}
	})

	off := func(t *testing.T) {
		t.Helper()
		// The kernel answers with ICMP port unreachable, but rate-limits
		// it per peer (burst 6, then 1/s), so "no answer" passes too;
		// an answer never does.
		m, _, err := dnsQuery(guest, dnsIP, "udp", name, dns.TypeA)
		if err == nil || !(errors.Is(err, syscall.ECONNREFUSED) || isTimeout(err)) {
			t.Errorf("UDP query with DNS support off: %v %v, want connection refused (ICMP port unreachable) or no answer", m, err)
		}
		_, _, err = dnsQuery(guest, dnsIP, "tcp", name, dns.TypeA)
		if !errors.Is(err, syscall.ECONNREFUSED) {
			t.Errorf("TCP query with DNS support off: %v, want connection refused", err)
		}
	}
	on := func(t *testing.T) {
		t.Helper()
		for _, netw := range []string{"udp", "tcp"} {
			m, _, err := dnsQuery(guest, dnsIP, netw, name, dns.TypeA)
			if err != nil || len(m.Answer) != 1 {
				t.Errorf("%s query with DNS support on: %v %v", netw, m, err)
			}
		}
	}
	// ModifyVpcAttribute enableDnsSupport: the record is the truth, which
	// every sync (a new ENI, Reconcile) applies again.
	setDNS := func(on bool) error {
		_, err := f.SetVPCAttribute(ctx, vpc.AccountID, vpc.ID, AttrEnableDNSSupport, on)
		return err
	}
	t.Run("enableDnsSupport off and on", func(t *testing.T) {
		if err := setDNS(false); err != nil {
			t.Fatal(err)
		}
		off(t)
		// Another ENI makes ensureServers run again: DNS must stay off.
		e2, err := f.CreateENI(ctx, ENIRequest{AccountID: acct, SubnetID: vpc.Subnets[1].ID, InstanceID: "i-00000000000000d52"})
		if err != nil {
			t.Fatal(err)
		}
		off(t)
		if err := f.DeleteENI(ctx, acct, e2.ID); err != nil {
			t.Fatal(err)
		}
		if err := setDNS(true); err != nil {
			t.Fatal(err)
		}
		on(t)
	})

	t.Run("restart: Close and Reconcile bring the resolver back, the off switch survives", func(t *testing.T) {
		if err := f.Close(); err != nil {
			t.Fatal(err)
		}
		off(t)
		if err := f.Reconcile(ctx); err != nil {
			t.Fatal(err)
		}
		on(t)
		if err := setDNS(false); err != nil {
			t.Fatal(err)
		}
		_ = f.Close()
		if err := f.Reconcile(ctx); err != nil {
			t.Fatal(err)
		}
		off(t)
	})
}

// TestDNSForwarder checks the optional upstream path against a fake
// upstream on loopback (no real resolver is ever used in tests): the
// answer comes back with the client's ID, a UDP answer too large for the
// client is truncated, and a dead upstream gives SERVFAIL.
func TestDNSForwarder(t *testing.T) {
	pc, err := net.ListenPacket("udp4", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	big := 0
	srv := &dns.Server{PacketConn: pc, Handler: dns.HandlerFunc(func(w dns.ResponseWriter, req *dns.Msg) {
		m := new(dns.Msg)
		m.SetReply(req)
		n := 1
		if req.Question[0].Name == "big.example.com." {
			n = 60
			big++
		}
		for i := range n {
			m.Answer = append(m.Answer, &dns.A{Hdr: dns.RR_Header{Name: req.Question[0].Name, Rrtype: dns.TypeA, Class: dns.ClassINET, Ttl: 5}, A: net.IPv4(198, 51, 100, byte(i+1))})
		}
		_ = w.WriteMsg(m)
	})}
	go func() { _ = srv.ActivateAndServe() }()
	t.Cleanup(func() { _ = srv.Shutdown() })

	f := &Fabric{upstream: pc.LocalAddr().String(), log: slog.New(slog.DiscardHandler)}
	req := new(dns.Msg)
	req.SetQuestion("www.example.com.", dns.TypeA)
	m := f.forwardDNS(req, false)
	if m.Id != req.Id || m.Rcode != dns.RcodeSuccess || len(m.Answer) != 1 || m.Answer[0].(*dns.A).A.String() != "198.51.100.1" {
		t.Errorf("forwarded answer: %v", m)
	}
	req.SetQuestion("big.example.com.", dns.TypeA)
	m = f.forwardDNS(req, false)
	if big != 1 || !m.Truncated || m.Len() > dns.MinMsgSize {
		t.Errorf("a %d-byte answer to a 512-byte client: truncated %v (upstream asked %d times)", m.Len(), m.Truncated, big)
	}

	dead, err := net.ListenPacket("udp4", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	f.upstream = dead.LocalAddr().String()
	dead.Close() // ICMP port unreachable on loopback: fails at once
	req.SetQuestion("www.example.com.", dns.TypeA)
	if m := f.forwardDNS(req, false); m.Rcode != dns.RcodeServerFailure || m.Id != req.Id {
		t.Errorf("dead upstream: %v, want SERVFAIL", m)
	}
}
