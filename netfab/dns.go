package netfab

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/netip"
	"strconv"
	"strings"
	"sync/atomic"
	"time"

	"github.com/miekg/dns"
	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"
)

// The VPC resolver ("Amazon-provided DNS", AmazonProvidedDNS in a DHCP
// options set): one per VPC, answering on the addresses AWS gives it.
//
// Names it answers itself (authoritatively, TTL dnsTTL):
//
//	ip-a-b-c-d.<region>.compute.internal   A a.b.c.d, for every a.b.c.d in
//	                                       the VPC's CIDR blocks (by pattern,
//	                                       as AWS does: no ENI needed)
//	d.c.b.a.in-addr.arpa                   PTR back to that name, same range
//	ec2-w-x-y-z.<region>.compute.amazonaws.com
//	                                       for w.x.y.z the public IPv4 of an
//	                                       ENI of this Fabric (Options.PublicIPv4):
//	                                       that ENI's private address when it
//	                                       is in the asking VPC (AWS's split
//	                                       horizon), else w.x.y.z
//	z.y.x.w.in-addr.arpa                   PTR to the public name, same ENIs
//
// Other names in the two domains get NXDOMAIN (with an SOA, so that caches
// keep the answer only dnsTTL). Every other name is forwarded to
// Options.DNSUpstream when one is set, else REFUSED at once (see
// dnsRefuse for why REFUSED).

// dnsTTL is the TTL of every answer, AWS's for EC2 host names: short
// enough that an Elastic IP moved to another instance is seen within a
// minute.
const dnsTTL = 60

// dnsLinkLocal is the resolver's link-local address on Nitro instances;
// AWS answers there too, and guests configured for it keep working.
var dnsLinkLocal = netip.MustParseAddr("169.254.169.253")

// dnsUpstreamTimeout bounds one forwarded query; a resolver that is down
// must not hold the guest for its full retry cycle.
const dnsUpstreamTimeout = 2 * time.Second

// PrivateDNSName is the private DNS name AWS gives an address, e.g.
// ip-172-31-0-4.lab-1.compute.internal: the name the VPC resolver answers
// and DescribeInstances reports as PrivateDnsName. (AWS's us-east-1 uses
// ec2.internal; labcloud regions all use <region>.compute.internal, the
// domain its DHCP hands out.)
func (f *Fabric) PrivateDNSName(ip string) string {
	return hostname(ip) + "." + privateDomain(f.region)
}

// PublicDNSName is the public DNS name AWS gives a public IPv4 address,
// e.g. ec2-203-0-113-5.lab-1.compute.amazonaws.com (DescribeInstances'
// PublicDnsName).
func (f *Fabric) PublicDNSName(ip string) string { return publicName(ip, f.region) }

// privateDomain must stay the domain newDHCPConfig hands out, so that the
// guests' search list makes a bare ip-a-b-c-d resolve.
func privateDomain(region string) string { return region + ".compute.internal" }
func publicDomain(region string) string  { return region + ".compute.amazonaws.com" }

// SetDNSSupport switches the resolver of a VPC on or off: the VPC
// attribute enableDnsSupport. Off closes its sockets, so queries get ICMP
// port unreachable (UDP) or a reset (TCP) and guests fail at once; on
// opens them again. The setting is kept for VPCs not (yet) running and
// applies when they start; it lives in memory, so whoever records the
// attribute applies it again after a daemon restart (before or after
// Reconcile).
func (f *Fabric) SetDNSSupport(vpcID string, on bool) error {
	if vpcID == "" {
		return errors.New("netfab: SetDNSSupport needs a VPC ID")
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.dnsOff == nil {
		f.dnsOff = map[string]bool{}
	}
	if on {
		delete(f.dnsOff, vpcID)
	} else {
		f.dnsOff[vpcID] = true
	}
	rt := f.vpcs[vpcID]
	if rt == nil {
		return nil
	}
	if !on {
		if rt.dns != nil {
			rt.dns.close()
			rt.dns = nil
		}
		f.log.Info("VPC resolver switched off", "vpc", vpcID)
		return nil
	}
	return f.ensureDNS(rt)
}

// ensureDNS (f.mu held) makes the VPC's resolver listen on every address
// it should, and on no other, unless the VPC's DNS support is off.
//
// It binds each address separately rather than 0.0.0.0:53, so that it
// answers exactly where AWS does: base+2 of every subnet, base+2 of the
// VPC's CIDR and 169.254.169.253. Not on the router's base+1, not on
// 169.254.169.254, and not on whatever address the namespace holds
// towards the public bridge, so that the "internet" never sees an open
// resolver. The price is two sockets per subnet; a subnet added later
// gets its own when ensureServers sees it.
func (f *Fabric) ensureDNS(rt *vpcRuntime) error {
	if f.dnsOff[rt.vpc.ID] {
		return nil
	}
	if rt.dns == nil {
		vpcID := rt.vpc.ID
		rt.dns = &dnsServer{
			ns:        rt.vpc.Namespace,
			log:       f.log.With("vpc", vpcID),
			answer:    func(req *dns.Msg, src netip.Addr, tcp bool) *dns.Msg { return f.answerDNS(vpcID, req, src, tcp) },
			listeners: map[netip.Addr]*dnsListener{},
		}
	}
	want := map[netip.Addr]bool{dnsLinkLocal: true}
	if p, err := netip.ParsePrefix(rt.vpc.CIDR); err == nil {
		want[addrN(p, 2)] = true
	}
	for _, sn := range rt.subnets {
		if p, err := netip.ParsePrefix(sn.CIDR); err == nil {
			want[addrN(p, 2)] = true
		}
	}
	return rt.dns.listenOn(want)
}

// dnsServer is a VPC's resolver: one UDP and one TCP socket per address,
// all opened inside the VPC namespace, one answer function.
type dnsServer struct {
	ns        string
	log       *slog.Logger
	answer    func(req *dns.Msg, src netip.Addr, tcp bool) *dns.Msg
	listeners map[netip.Addr]*dnsListener // guarded by Fabric.mu
}

type dnsListener struct {
	udp, tcp *dns.Server
	pc       net.PacketConn
	ln       net.Listener
	closed   atomic.Bool
}

// listenOn opens sockets for the addresses in want that have none and
// closes those for addresses no longer wanted.
func (s *dnsServer) listenOn(want map[netip.Addr]bool) error {
	var errs []error
	for a, l := range s.listeners {
		if !want[a] {
			l.close()
			delete(s.listeners, a)
		}
	}
	for a := range want {
		if s.listeners[a] != nil {
			continue
		}
		l, err := s.listen(a)
		if err != nil {
			errs = append(errs, fmt.Errorf("starting the VPC resolver on %s:53 in netns %s: %w", a, s.ns, err))
			continue
		}
		s.listeners[a] = l
	}
	return errors.Join(errs...)
}

// listen opens the UDP and TCP sockets for one address in the VPC
// namespace. An address that no interface holds yet (169.254.169.253, or
// the VPC's base+2 when no subnet starts at the VPC's base) is put on lo
// as a /32 first, as 169.254.169.254 is for the metadata service.
func (s *dnsServer) listen(a netip.Addr) (*dnsListener, error) {
	l := &dnsListener{}
	hp := netip.AddrPortFrom(a, 53).String()
	err := inNamespace(s.ns, func() error {
		pc, err := net.ListenPacket("udp4", hp)
		if err != nil && errors.Is(err, unix.EADDRNOTAVAIL) {
			if err = addLoopbackAddr(a); err == nil {
				pc, err = net.ListenPacket("udp4", hp)
			}
		}
		if err != nil {
			return err
		}
		ln, err := net.Listen("tcp4", hp)
		if err != nil {
			pc.Close()
			return err
		}
		l.pc, l.ln = pc, ln
		return nil
	})
	if err != nil {
		return nil, err
	}
	h := dns.HandlerFunc(func(w dns.ResponseWriter, req *dns.Msg) {
		if l.closed.Load() {
			// DNS support switched off while a TCP connection stayed
			// open: no answer.
			_ = w.Close()
			return
		}
		var src netip.Addr
		tcp := false
		switch ra := w.RemoteAddr().(type) {
		case *net.UDPAddr:
			src = ra.AddrPort().Addr().Unmap()
		case *net.TCPAddr:
			src, tcp = ra.AddrPort().Addr().Unmap(), true
		}
		if m := s.answer(req, src, tcp); m != nil {
			_ = w.WriteMsg(m)
		}
	})
	l.udp = &dns.Server{PacketConn: l.pc, Handler: h}
	// Idle TCP connections are closed after 10 s (miekg's default 8 s
	// read timeout is per message); plenty for a resolver's retry.
	l.tcp = &dns.Server{Listener: l.ln, Handler: h, IdleTimeout: func() time.Duration { return 10 * time.Second }}
	for _, srv := range []*dns.Server{l.udp, l.tcp} {
		go func() {
			if err := srv.ActivateAndServe(); err != nil && !l.closed.Load() {
				s.log.Error("VPC resolver stopped", "addr", a, "err", err)
			}
		}()
	}
	return l, nil
}

// addLoopbackAddr puts a/32 on lo of the current namespace.
func addLoopbackAddr(a netip.Addr) error {
	lo, err := netlink.LinkByName("lo")
	if err != nil {
		return err
	}
	ipn := &net.IPNet{IP: net.IP(a.AsSlice()), Mask: net.CIDRMask(32, 32)}
	if err := netlink.AddrAdd(lo, &netlink.Addr{IPNet: ipn}); err != nil && !errors.Is(err, unix.EEXIST) {
		return fmt.Errorf("adding %s/32 to lo: %w", a, err)
	}
	return nil
}

// close closes the sockets at once, so that the kernel refuses the next
// query, and lets the serving goroutines wind down in the background:
// waiting for them here could deadlock with a handler that waits for
// Fabric.mu, which the caller holds.
func (l *dnsListener) close() {
	l.closed.Store(true)
	_ = l.pc.Close()
	_ = l.ln.Close()
	go func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		_ = l.tcp.ShutdownContext(ctx) // also ends open TCP connections
		_ = l.udp.ShutdownContext(ctx)
	}()
}

func (s *dnsServer) close() {
	for a, l := range s.listeners {
		l.close()
		delete(s.listeners, a)
	}
}

// answerDNS answers one query that reached the resolver of vpcID from src.
// It returns nil (no answer) only when the VPC is gone.
func (f *Fabric) answerDNS(vpcID string, req *dns.Msg, src netip.Addr, tcp bool) *dns.Msg {
	z, ok := f.dnsZoneOf(vpcID)
	if !ok {
		return nil
	}
	if !z.inVPC(src) {
		// AWS's resolver serves its VPC only.
		return dnsRefuse(req)
	}
	if m := z.reply(req); m != nil {
		return m
	}
	if f.upstream != "" {
		return f.forwardDNS(req, tcp)
	}
	return dnsRefuse(req)
}

// dnsZoneOf gathers what the resolver of vpcID needs to answer.
func (f *Fabric) dnsZoneOf(vpcID string) (*dnsZone, bool) {
	f.mu.Lock()
	defer f.mu.Unlock()
	rt := f.vpcs[vpcID]
	if rt == nil {
		return nil, false
	}
	z := &dnsZone{
		domain:    dns.Fqdn(privateDomain(f.region)),
		pubDomain: dns.Fqdn(publicDomain(f.region)),
		byPublic:  func(pub netip.Addr) (netip.Addr, bool, bool) { return f.eniByPublicIP(vpcID, pub) },
	}
	if p, err := netip.ParsePrefix(rt.vpc.CIDR); err == nil {
		z.cidrs = append(z.cidrs, p.Masked())
	}
	for _, sn := range rt.subnets {
		// Subnets lie in the VPC's CIDR blocks: this covers secondary
		// blocks too.
		if p, err := netip.ParsePrefix(sn.CIDR); err == nil {
			z.cidrs = append(z.cidrs, p.Masked())
		}
	}
	return z, true
}

// eniByPublicIP finds the ENI of this Fabric whose public IPv4 is pub:
// its private address and whether it is in vpcID. The hook runs without
// f.mu held, so it may take its own locks.
func (f *Fabric) eniByPublicIP(vpcID string, pub netip.Addr) (private netip.Addr, sameVPC, ok bool) {
	if f.publicIP == nil {
		return netip.Addr{}, false, false
	}
	f.mu.Lock()
	var all []ENI
	for _, rt := range f.vpcs {
		for _, e := range rt.enis {
			all = append(all, e)
		}
	}
	f.mu.Unlock()
	for _, e := range all {
		if p := f.publicIP(e); p.IsValid() && p == pub {
			priv, err := netip.ParseAddr(e.PrivateIP)
			if err != nil {
				continue
			}
			return priv, e.VPCID == vpcID, true
		}
	}
	return netip.Addr{}, false, false
}

// forwardDNS passes a query it does not answer itself to the configured
// upstream, over the transport the client used (a truncated UDP answer
// makes the client retry over TCP, which is then forwarded over TCP). The
// socket is opened from the daemon's own namespace, where the upstream is
// reachable; the VPC namespace has no route to it.
func (f *Fabric) forwardDNS(req *dns.Msg, tcp bool) *dns.Msg {
	// Read whole datagrams: the reply is cut to the client's size below.
	c := &dns.Client{Net: "udp", Timeout: dnsUpstreamTimeout, UDPSize: dns.MaxMsgSize}
	if tcp {
		c.Net = "tcp"
	}
	resp, _, err := c.Exchange(req.Copy(), f.upstream)
	if err != nil {
		f.log.Debug("dns: upstream failed", "upstream", f.upstream, "err", err)
		m := new(dns.Msg)
		m.SetRcode(req, dns.RcodeServerFailure)
		m.RecursionAvailable = true
		return m
	}
	resp.Id = req.Id
	if !tcp {
		size := dns.MinMsgSize
		if o := req.IsEdns0(); o != nil && int(o.UDPSize()) > size {
			size = int(o.UDPSize())
		}
		resp.Truncate(size)
	}
	return resp
}

// dnsRefuse answers a name that is not the resolver's with REFUSED. There
// is no upstream on a lab host, so an answer must come at once: REFUSED
// and SERVFAIL both make glibc's stub resolver move on immediately (no
// timeout wait), but SERVFAIL also makes glibc keep walking the search
// list and systemd-resolved downgrade its feature level for the server
// (sticky: it then stops using EDNS0), and RFC 2308 lets resolvers cache
// it as a server failure. REFUSED says what is true: this server does not
// resolve that name for policy reasons. (musl ignores both and waits for
// its timeout; NXDOMAIN would be fast there too but would claim that
// internet names do not exist.)
func dnsRefuse(req *dns.Msg) *dns.Msg {
	m := new(dns.Msg)
	m.SetRcode(req, dns.RcodeRefused)
	m.RecursionAvailable = true
	return m
}

// dnsZone is what a VPC's resolver knows when answering one query.
type dnsZone struct {
	domain, pubDomain string         // fully qualified, lower case
	cidrs             []netip.Prefix // the VPC's blocks
	// byPublic finds the ENI holding a public address (nil: none known).
	byPublic func(pub netip.Addr) (private netip.Addr, sameVPC, ok bool)
}

func (z *dnsZone) inVPC(a netip.Addr) bool {
	for _, p := range z.cidrs {
		if p.Contains(a) {
			return true
		}
	}
	return false
}

// reply answers req if its name is one the resolver owns, else returns
// nil (the caller refuses or forwards it).
func (z *dnsZone) reply(req *dns.Msg) *dns.Msg {
	if req.Opcode != dns.OpcodeQuery {
		m := new(dns.Msg)
		m.SetRcode(req, dns.RcodeNotImplemented)
		return m
	}
	if len(req.Question) != 1 {
		m := new(dns.Msg)
		m.SetRcode(req, dns.RcodeFormatError)
		return m
	}
	q := req.Question[0]
	if q.Qclass != dns.ClassINET && q.Qclass != dns.ClassANY {
		return nil
	}
	name := dns.CanonicalName(q.Name)
	m := new(dns.Msg)
	m.SetReply(req)
	m.Authoritative, m.RecursionAvailable = true, true
	if o := req.IsEdns0(); o != nil {
		m.SetEdns0(1232, false)
	}
	hdr := func(t uint16) dns.RR_Header {
		// The owner name is echoed as asked: clients using 0x20 case
		// randomisation compare it byte for byte.
		return dns.RR_Header{Name: q.Name, Rrtype: t, Class: dns.ClassINET, Ttl: dnsTTL}
	}
	wants := func(t uint16) bool { return q.Qtype == t || q.Qtype == dns.TypeANY }
	negative := func(domain string, rcode int) *dns.Msg {
		m.Rcode = rcode
		m.Ns = []dns.RR{z.soa(domain)}
		return m
	}
	switch {
	case dns.IsSubDomain(z.domain, name):
		if name == z.domain {
			if wants(dns.TypeSOA) {
				m.Answer = []dns.RR{z.soa(z.domain)}
				return m
			}
			return negative(z.domain, dns.RcodeSuccess)
		}
		a, ok := parseDashedName(name, "ip-", z.domain)
		if !ok || !z.inVPC(a) {
			return negative(z.domain, dns.RcodeNameError)
		}
		if wants(dns.TypeA) {
			m.Answer = []dns.RR{&dns.A{Hdr: hdr(dns.TypeA), A: net.IP(a.AsSlice())}}
			return m
		}
		return negative(z.domain, dns.RcodeSuccess) // NODATA, e.g. AAAA
	case dns.IsSubDomain(z.pubDomain, name):
		if name == z.pubDomain {
			if wants(dns.TypeSOA) {
				m.Answer = []dns.RR{z.soa(z.pubDomain)}
				return m
			}
			return negative(z.pubDomain, dns.RcodeSuccess)
		}
		pub, ok := parseDashedName(name, "ec2-", z.pubDomain)
		if !ok || z.byPublic == nil {
			return negative(z.pubDomain, dns.RcodeNameError)
		}
		priv, same, ok := z.byPublic(pub)
		if !ok {
			return negative(z.pubDomain, dns.RcodeNameError)
		}
		if wants(dns.TypeA) {
			a := pub
			if same {
				a = priv // AWS: inside the VPC the public name gives the private address
			}
			m.Answer = []dns.RR{&dns.A{Hdr: hdr(dns.TypeA), A: net.IP(a.AsSlice())}}
			return m
		}
		return negative(z.pubDomain, dns.RcodeSuccess)
	case strings.HasSuffix(name, ".in-addr.arpa."):
		a, ok := parseReverse(name)
		if !ok {
			return nil
		}
		var target string
		switch {
		case z.inVPC(a):
			target = hostname(a.String()) + "." + z.domain
		case z.byPublic != nil:
			if _, _, ok := z.byPublic(a); ok {
				target = "ec2-" + strings.ReplaceAll(a.String(), ".", "-") + "." + z.pubDomain
			}
		}
		if target == "" {
			return nil // not ours: refuse or forward
		}
		if wants(dns.TypePTR) {
			m.Answer = []dns.RR{&dns.PTR{Hdr: hdr(dns.TypePTR), Ptr: target}}
		}
		return m
	}
	return nil
}

func (z *dnsZone) soa(domain string) dns.RR {
	return &dns.SOA{
		Hdr:     dns.RR_Header{Name: domain, Rrtype: dns.TypeSOA, Class: dns.ClassINET, Ttl: dnsTTL},
		Ns:      "ns." + domain,
		Mbox:    "hostmaster." + domain,
		Serial:  1,
		Refresh: 7200, Retry: 900, Expire: 1209600,
		Minttl: dnsTTL, // negative answers are cached this long
	}
}

// parseDashedName reads a.b.c.d from "<prefix>a-b-c-d.<domain>" (name and
// domain fully qualified, lower case). Octets are decimal without leading
// zeros, as AWS writes them.
func parseDashedName(name, prefix, domain string) (netip.Addr, bool) {
	label, ok := strings.CutSuffix(name, "."+domain)
	if !ok {
		return netip.Addr{}, false
	}
	rest, ok := strings.CutPrefix(label, prefix)
	if !ok {
		return netip.Addr{}, false
	}
	return parseOctets(strings.Split(rest, "-"), false)
}

// parseReverse reads the address of "d.c.b.a.in-addr.arpa.".
func parseReverse(name string) (netip.Addr, bool) {
	rest := strings.TrimSuffix(name, ".in-addr.arpa.")
	return parseOctets(strings.Split(rest, "."), true)
}

func parseOctets(parts []string, reversed bool) (netip.Addr, bool) {
	if len(parts) != 4 {
		return netip.Addr{}, false
	}
	var b [4]byte
	for i, s := range parts {
		n, err := strconv.Atoi(s)
		if err != nil || n < 0 || n > 255 || strconv.Itoa(n) != s {
			return netip.Addr{}, false
		}
		if reversed {
			b[3-i] = byte(n)
		} else {
			b[i] = byte(n)
		}
	}
	return netip.AddrFrom4(b), true
}

// publicName is EC2's public DNS name of a public address in a region.
func publicName(ip, region string) string {
	return "ec2-" + strings.ReplaceAll(ip, ".", "-") + "." + publicDomain(region)
}
