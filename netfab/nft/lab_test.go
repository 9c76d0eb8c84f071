package nft

import (
	"crypto/rand"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/vishvananda/netlink"
	"github.com/vishvananda/netns"
	"golang.org/x/sys/unix"
)

// A lab is a VPC-like router namespace with subnet bridges (isolated
// ports, proxy_arp_pvlan, ip_forward, bridge-nf-call-* off, as netfab's
// setupRouter and ensureBridge make them), "instances" that are
// namespaces behind veth pairs whose bridge end plays the tap, and an
// optional "internet" namespace behind a gateway veth.

func needRoot(t testing.TB) {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("needs root: creates network namespaces, bridges and nftables tables")
	}
}

type lab struct {
	t      testing.TB
	id     string // random, in every name
	router string
	rh     *netlink.Handle
	insts  map[string]*inst
	inet   string // internet namespace, once addGateway ran
}

type inst struct {
	name string // namespace
	tap  string
	mac  net.HardwareAddr
	ip   netip.Addr
}

func randHex(n int) string {
	b := make([]byte, (n+1)/2)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)[:n]
}

// inNS runs fn on a thread in the named namespace.
func inNS(ns string, fn func() error) error {
	errc := make(chan error, 1)
	go func() {
		runtime.LockOSThread()
		orig, err := netns.Get()
		if err != nil {
			errc <- err
			return
		}
		defer orig.Close()
		h, err := netns.GetFromName(ns)
		if err != nil {
			runtime.UnlockOSThread()
			errc <- err
			return
		}
		defer h.Close()
		if err := netns.Set(h); err != nil {
			runtime.UnlockOSThread()
			errc <- err
			return
		}
		ferr := fn()
		if err := netns.Set(orig); err != nil {
			errc <- errors.Join(ferr, err) // thread stays locked and dies
			return
		}
		runtime.UnlockOSThread()
		errc <- ferr
	}()
	return <-errc
}

// newNamedNS creates a named namespace and removes it at cleanup.
func newNamedNS(t testing.TB, name string) {
	t.Helper()
	errc := make(chan error, 1)
	go func() {
		runtime.LockOSThread()
		orig, err := netns.Get()
		if err != nil {
			errc <- err
			return
		}
		h, err := netns.NewNamed(name)
		if err != nil {
			errc <- err
			return // thread stays locked; it may be in a new namespace
		}
		h.Close()
		if err := netns.Set(orig); err != nil {
			errc <- err
			return
		}
		orig.Close()
		runtime.UnlockOSThread()
		errc <- nil
	}()
	if err := <-errc; err != nil {
		t.Fatalf("creating namespace %s: %v", name, err)
	}
	t.Cleanup(func() {
		if err := netns.DeleteNamed(name); err != nil {
			t.Errorf("deleting namespace %s: %v", name, err)
		}
	})
	if err := inNS(name, func() error {
		lo, err := netlink.LinkByName("lo")
		if err != nil {
			return err
		}
		return netlink.LinkSetUp(lo)
	}); err != nil {
		t.Fatal(err)
	}
}

func handleFor(t testing.TB, ns string) *netlink.Handle {
	t.Helper()
	h, err := netns.GetFromName(ns)
	if err != nil {
		t.Fatal(err)
	}
	defer h.Close()
	nh, err := netlink.NewHandleAt(h)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(nh.Close)
	return nh
}

func sysctl(path, v string) error {
	return os.WriteFile(filepath.Join("/proc/sys", path), []byte(v), 0o644)
}

// newLab makes the router namespace with one bridge per subnet. The
// empty Policy is applied first, as netfab must, so nothing passes until
// a Policy says so.
func newLab(t testing.TB, subnets ...Subnet) *lab {
	t.Helper()
	needRoot(t)
	l := &lab{t: t, id: randHex(4), insts: map[string]*inst{}}
	l.router = "nf" + l.id + "r"
	newNamedNS(t, l.router)
	l.rh = handleFor(t, l.router)
	if err := Apply(l.router, Policy{}); err != nil {
		t.Fatalf("applying the empty policy: %v", err)
	}
	err := inNS(l.router, func() error {
		for _, s := range [][2]string{
			{"net/ipv4/ip_forward", "1"},
			{"net/ipv4/conf/all/send_redirects", "0"},
			{"net/ipv4/conf/default/send_redirects", "0"},
			{"net/bridge/bridge-nf-call-iptables", "0"},
			{"net/bridge/bridge-nf-call-ip6tables", "0"},
			{"net/bridge/bridge-nf-call-arptables", "0"},
		} {
			if err := sysctl(s[0], s[1]); err != nil && !errors.Is(err, os.ErrNotExist) {
				return err
			}
		}
		for _, s := range subnets {
			br := &netlink.Bridge{LinkAttrs: netlink.LinkAttrs{Name: s.Bridge, MTU: 1500,
				HardwareAddr: net.HardwareAddr{0x02, 0xbb, 0, 0, 0, byte(len(s.Bridge) + int(s.CIDR.Addr().As4()[2]))}}}
			if err := netlink.LinkAdd(br); err != nil {
				return fmt.Errorf("bridge %s: %w", s.Bridge, err)
			}
			for _, n := range []uint32{1, 2} {
				a := &netlink.Addr{IPNet: &net.IPNet{IP: subnetBase(s, n).AsSlice(), Mask: net.CIDRMask(s.CIDR.Bits(), 32)}}
				if err := netlink.AddrAdd(br, a); err != nil {
					return err
				}
			}
			if err := sysctl("net/ipv4/conf/"+s.Bridge+"/proxy_arp_pvlan", "1"); err != nil {
				return err
			}
			if err := sysctl("net/ipv4/conf/"+s.Bridge+"/send_redirects", "0"); err != nil {
				return err
			}
			if err := netlink.LinkSetUp(br); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		t.Fatalf("setting up router: %v", err)
	}
	return l
}

// addInstance makes an instance namespace whose eth0 (MAC, IP) sits
// behind a veth whose router end is the tap on the subnet's bridge.
func (l *lab) addInstance(name string, s Subnet, ip netip.Addr) *inst {
	t := l.t
	t.Helper()
	in := &inst{name: "nf" + l.id + name, tap: "nft" + randHex(8), ip: ip,
		mac: net.HardwareAddr{0x02, 0xaa, 0, 0, ip.As4()[2], ip.As4()[3]}}
	newNamedNS(t, in.name)
	ih, err := netns.GetFromName(in.name)
	if err != nil {
		t.Fatal(err)
	}
	defer ih.Close()
	veth := &netlink.Veth{LinkAttrs: netlink.LinkAttrs{Name: in.tap, MTU: 1500}, PeerName: "eth0", PeerNamespace: netlink.NsFd(int(ih))}
	if err := l.rh.LinkAdd(veth); err != nil {
		t.Fatalf("veth %s: %v", in.tap, err)
	}
	tap, err := l.rh.LinkByName(in.tap)
	if err != nil {
		t.Fatal(err)
	}
	br, err := l.rh.LinkByName(s.Bridge)
	if err != nil {
		t.Fatal(err)
	}
	if err := l.rh.LinkSetMaster(tap, br); err != nil {
		t.Fatal(err)
	}
	if err := l.rh.LinkSetIsolated(tap, true); err != nil {
		t.Fatal(err)
	}
	if err := l.rh.LinkSetUp(tap); err != nil {
		t.Fatal(err)
	}
	nh := handleFor(t, in.name)
	eth, err := nh.LinkByName("eth0")
	if err != nil {
		t.Fatal(err)
	}
	if err := nh.LinkSetHardwareAddr(eth, in.mac); err != nil {
		t.Fatal(err)
	}
	if err := nh.AddrAdd(eth, &netlink.Addr{IPNet: &net.IPNet{IP: ip.AsSlice(), Mask: net.CIDRMask(s.CIDR.Bits(), 32)}}); err != nil {
		t.Fatal(err)
	}
	if err := nh.LinkSetUp(eth); err != nil {
		t.Fatal(err)
	}
	if err := nh.RouteAdd(&netlink.Route{Gw: subnetBase(s, 1).AsSlice(), LinkIndex: eth.Attrs().Index}); err != nil {
		t.Fatalf("default route: %v", err)
	}
	l.insts[name] = in
	return in
}

// eni is the ENI record of an instance.
func (in *inst) eni(id string, s Subnet, groups ...string) ENI {
	return ENI{ID: id, SubnetID: s.ID, Tap: in.tap, MAC: in.mac, IP: in.ip, Groups: groups}
}

// Public addresses of the test's "internet".
var (
	gwAddr     = netip.MustParseAddr("203.0.113.1")
	inetGWAddr = netip.MustParseAddr("203.0.113.254")
	inetHost   = netip.MustParseAddr("198.51.100.1")
)

// addGateway makes the "internet" namespace holding 198.51.100.1 behind
// a veth whose router end (link) holds 203.0.113.1; publicIPs are routed
// from the internet to the router.
func (l *lab) addGateway(link string, publicIPs ...netip.Addr) {
	t := l.t
	t.Helper()
	l.inet = "nf" + l.id + "net"
	newNamedNS(t, l.inet)
	ih, err := netns.GetFromName(l.inet)
	if err != nil {
		t.Fatal(err)
	}
	defer ih.Close()
	if err := l.rh.LinkAdd(&netlink.Veth{LinkAttrs: netlink.LinkAttrs{Name: link}, PeerName: "eth0", PeerNamespace: netlink.NsFd(int(ih))}); err != nil {
		t.Fatal(err)
	}
	gw, err := l.rh.LinkByName(link)
	if err != nil {
		t.Fatal(err)
	}
	if err := l.rh.AddrAdd(gw, &netlink.Addr{IPNet: &net.IPNet{IP: gwAddr.AsSlice(), Mask: net.CIDRMask(24, 32)}}); err != nil {
		t.Fatal(err)
	}
	if err := l.rh.LinkSetUp(gw); err != nil {
		t.Fatal(err)
	}
	if err := l.rh.RouteAdd(&netlink.Route{Gw: inetGWAddr.AsSlice(), LinkIndex: gw.Attrs().Index}); err != nil {
		t.Fatal(err)
	}
	nh := handleFor(t, l.inet)
	eth, err := nh.LinkByName("eth0")
	if err != nil {
		t.Fatal(err)
	}
	for _, a := range []string{inetGWAddr.String() + "/24", inetHost.String() + "/24"} {
		addr, _ := netlink.ParseAddr(a)
		if err := nh.AddrAdd(eth, addr); err != nil {
			t.Fatal(err)
		}
	}
	if err := nh.LinkSetUp(eth); err != nil {
		t.Fatal(err)
	}
	for _, p := range publicIPs {
		// The internet's own host (not the link address) talks to them.
		if err := nh.RouteAdd(&netlink.Route{Dst: &net.IPNet{IP: p.AsSlice(), Mask: net.CIDRMask(32, 32)}, Gw: gwAddr.AsSlice(), Src: inetHost.AsSlice(), LinkIndex: eth.Attrs().Index}); err != nil {
			t.Fatal(err)
		}
	}
}

func (l *lab) apply(p Policy) {
	l.t.Helper()
	if err := Apply(l.router, p); err != nil {
		l.t.Fatalf("Apply: %v", err)
	}
}

// Servers. Each records the peer address it saw last, so tests can tell
// NAT happened.

type server struct {
	mu   sync.Mutex
	seen []string
	ln   io.Closer
}

func (s *server) peers() []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]string(nil), s.seen...)
}

func (s *server) note(a net.Addr) {
	s.mu.Lock()
	s.seen = append(s.seen, a.String())
	s.mu.Unlock()
}

// serveTCP listens in ns on addr and echoes every connection.
func serveTCP(t testing.TB, ns, addr string) *server {
	t.Helper()
	s := &server{}
	var ln net.Listener
	if err := inNS(ns, func() (err error) { ln, err = net.Listen("tcp4", addr); return }); err != nil {
		t.Fatalf("listen %s in %s: %v", addr, ns, err)
	}
	s.ln = ln
	t.Cleanup(func() { ln.Close() })
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			s.note(c.RemoteAddr())
			go func() { defer c.Close(); _, _ = io.Copy(c, c) }()
		}
	}()
	return s
}

// serveUDP echoes datagrams in ns on addr.
func serveUDP(t testing.TB, ns, addr string) *server {
	t.Helper()
	s := &server{}
	var pc net.PacketConn
	if err := inNS(ns, func() (err error) { pc, err = net.ListenPacket("udp4", addr); return }); err != nil {
		t.Fatalf("listen udp %s in %s: %v", addr, ns, err)
	}
	t.Cleanup(func() { pc.Close() })
	go func() {
		buf := make([]byte, 2048)
		for {
			n, a, err := pc.ReadFrom(buf)
			if err != nil {
				return
			}
			s.note(a)
			_, _ = pc.WriteTo(buf[:n], a)
		}
	}()
	return s
}

// dialTCP connects from ns to addr and checks one echo round trip.
func dialTCP(ns, addr string, timeout time.Duration) error {
	var c net.Conn
	if err := inNS(ns, func() (err error) { c, err = net.DialTimeout("tcp4", addr, timeout); return }); err != nil {
		return err
	}
	defer c.Close()
	return echo(c, timeout)
}

func echo(c net.Conn, timeout time.Duration) error {
	_ = c.SetDeadline(time.Now().Add(timeout))
	msg := []byte("labcloud " + randHex(6))
	if _, err := c.Write(msg); err != nil {
		return err
	}
	got := make([]byte, len(msg))
	if _, err := io.ReadFull(c, got); err != nil {
		return err
	}
	if string(got) != string(msg) {
		return fmt.Errorf("echo returned %q", got)
	}
	return nil
}

// dialUDP sends a datagram from ns to addr and waits for its echo.
func dialUDP(ns, addr string, timeout time.Duration) error {
	var c net.Conn
	if err := inNS(ns, func() (err error) { c, err = net.Dial("udp4", addr); return }); err != nil {
		return err
	}
	defer c.Close()
	return echo(c, timeout)
}

// ping sends one ICMP echo request from ns to dst on a raw socket and
// waits for the reply.
func ping(ns string, dst netip.Addr, timeout time.Duration) error {
	var pc net.PacketConn
	if err := inNS(ns, func() (err error) { pc, err = net.ListenPacket("ip4:icmp", "0.0.0.0"); return }); err != nil {
		return err
	}
	defer pc.Close()
	id := uint16(time.Now().UnixNano())
	req := []byte{8, 0, 0, 0, byte(id >> 8), byte(id), 0, 1, 'l', 'c'}
	cs := icmpChecksum(req)
	req[2], req[3] = byte(cs>>8), byte(cs)
	if _, err := pc.WriteTo(req, &net.IPAddr{IP: dst.AsSlice()}); err != nil {
		return err
	}
	_ = pc.SetReadDeadline(time.Now().Add(timeout))
	buf := make([]byte, 1500)
	for {
		n, from, err := pc.ReadFrom(buf)
		if err != nil {
			return err
		}
		if n >= 8 && buf[0] == 0 && binary.BigEndian.Uint16(buf[4:]) == id && from.String() == dst.String() {
			return nil
		}
	}
}

func icmpChecksum(b []byte) uint16 {
	var s uint32
	for i := 0; i+1 < len(b); i += 2 {
		s += uint32(b[i])<<8 | uint32(b[i+1])
	}
	if len(b)%2 == 1 {
		s += uint32(b[len(b)-1]) << 8
	}
	for s > 0xffff {
		s = s>>16 + s&0xffff
	}
	return ^uint16(s)
}

// Expectations. A reachable check polls (the first ARP resolution may
// take a moment); an unreachable one waits one short timeout, which is
// the only way to observe a drop.

const (
	okWithin   = 3 * time.Second
	denyWithin = 400 * time.Millisecond
)

func eventually(fn func(time.Duration) error) error {
	deadline := time.Now().Add(okWithin)
	for {
		err := fn(time.Second)
		if err == nil || time.Now().After(deadline) {
			return err
		}
		time.Sleep(50 * time.Millisecond) // retry pacing, not synchronisation
	}
}

func wantTCP(t testing.TB, ns, addr string, ok bool) {
	t.Helper()
	if ok {
		if err := eventually(func(d time.Duration) error { return dialTCP(ns, addr, d) }); err != nil {
			t.Errorf("tcp %s -> %s: want reachable, got %v", short(ns), addr, err)
		}
		return
	}
	if err := dialTCP(ns, addr, denyWithin); err == nil {
		t.Errorf("tcp %s -> %s: want blocked, but it connected", short(ns), addr)
	}
}

func wantUDP(t testing.TB, ns, addr string, ok bool) {
	t.Helper()
	if ok {
		if err := eventually(func(d time.Duration) error { return dialUDP(ns, addr, d) }); err != nil {
			t.Errorf("udp %s -> %s: want reachable, got %v", short(ns), addr, err)
		}
		return
	}
	if err := dialUDP(ns, addr, denyWithin); err == nil {
		t.Errorf("udp %s -> %s: want blocked, but got the echo", short(ns), addr)
	}
}

func wantPing(t testing.TB, ns string, dst netip.Addr, ok bool) {
	t.Helper()
	if ok {
		if err := eventually(func(d time.Duration) error { return ping(ns, dst, d) }); err != nil {
			t.Errorf("ping %s -> %s: want reply, got %v", short(ns), dst, err)
		}
		return
	}
	if err := ping(ns, dst, denyWithin); err == nil {
		t.Errorf("ping %s -> %s: want blocked, but got a reply", short(ns), dst)
	}
}

func short(ns string) string {
	if i := strings.LastIndexAny(ns, "0123456789abcdef"); i >= 0 && len(ns) > 6 {
		return ns[6:]
	}
	return ns
}

func hostport(a netip.Addr, port int) string {
	return netip.AddrPortFrom(a, uint16(port)).String()
}

type netlinkAddr = netlink.Addr

func netlinkLinkByName(n string) (netlink.Link, error) { return netlink.LinkByName(n) }

func netlinkAddrAdd(l netlink.Link, cidr string) error {
	a, err := netlink.ParseAddr(cidr)
	if err != nil {
		return err
	}
	return netlink.AddrAdd(l, a)
}

type netlinkRoute = netlink.Route
type netipAddr = netip.Addr

// rawDelivered sends IP packets of protocol proto from ns to dst and
// reports whether a raw socket in dstNS received one. When want is true
// it keeps sending until one arrives or okWithin passes; otherwise it
// waits denyWithin.
func rawDelivered(t testing.TB, ns, dstNS string, dst netip.Addr, proto int, want bool) bool {
	t.Helper()
	network := fmt.Sprintf("ip4:%d", proto)
	var rx net.PacketConn
	if err := inNS(dstNS, func() (err error) { rx, err = net.ListenPacket(network, "0.0.0.0"); return }); err != nil {
		t.Fatal(err)
	}
	defer rx.Close()
	var tx net.PacketConn
	if err := inNS(ns, func() (err error) { tx, err = net.ListenPacket(network, "0.0.0.0"); return }); err != nil {
		t.Fatal(err)
	}
	defer tx.Close()
	wait, tries := denyWithin, 1
	if want {
		wait, tries = okWithin/10, 10
	}
	tag := "labcloud-raw-" + randHex(6)
	buf := make([]byte, 1500)
	for range tries {
		msg := []byte(tag)
		if proto == 47 {
			// A minimal GRE header (version 0, IPv4 payload): conntrack
			// parses GRE and would call anything else invalid.
			msg = append([]byte{0, 0, 0x08, 0}, msg...)
		}
		if _, err := tx.WriteTo(msg, &net.IPAddr{IP: dst.AsSlice()}); err != nil {
			t.Fatal(err)
		}
		_ = rx.SetReadDeadline(time.Now().Add(wait))
		for {
			n, _, err := rx.ReadFrom(buf)
			if err != nil {
				break
			}
			if strings.Contains(string(buf[:n]), tag) {
				return true
			}
		}
	}
	return false
}

// sendARP sends one ARP reply out of eth0 of ns claiming that ip is at
// the MAC of eth0 (gratuitous, broadcast).
func sendARP(ns string, mac net.HardwareAddr, ip netip.Addr, to netip.Addr) error {
	return inNS(ns, func() error {
		eth, err := net.InterfaceByName("eth0")
		if err != nil {
			return err
		}
		fd, err := unix.Socket(unix.AF_PACKET, unix.SOCK_RAW, int(htons(unix.ETH_P_ARP)))
		if err != nil {
			return err
		}
		defer unix.Close(fd)
		bcast := net.HardwareAddr{0xff, 0xff, 0xff, 0xff, 0xff, 0xff}
		f := append(append(append([]byte{}, bcast...), mac...), 0x08, 0x06)
		f = append(f, 0, 1, 8, 0, 6, 4, 0, 2) // Ethernet/IPv4, reply
		f = append(f, mac...)
		f = append(f, ip.AsSlice()...)
		f = append(f, bcast...)
		f = append(f, to.AsSlice()...)
		sa := &unix.SockaddrLinklayer{Protocol: htons(unix.ETH_P_ARP), Ifindex: eth.Index, Halen: 6}
		copy(sa.Addr[:], bcast)
		return unix.Sendto(fd, f, 0, sa)
	})
}

func htons(v uint16) uint16 { return v<<8 | v>>8 }
