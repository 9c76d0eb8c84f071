package netfab

import (
	"context"
	"errors"
	"log/slog"
	"net"
	"net/netip"
	"sync"
	"syscall"
	"time"

	"github.com/insomniacslk/dhcp/dhcpv4"
	"golang.org/x/sys/unix"
)

// dhcpLeaseTime is the lease every instance gets. Leases are static (one
// address per MAC for the ENI's life), so the time only bounds how long a
// guest keeps an address after its ENI is gone.
const dhcpLeaseTime = time.Hour

// dhcpConfig is what a subnet's DHCP server tells its clients.
type dhcpConfig struct {
	Prefix netip.Prefix // the subnet
	Router netip.Addr   // base+1, the bridge in the VPC namespace
	DNS    netip.Addr   // base+2 (see dnsNote)
	Domain string       // e.g. lab-1.compute.internal
	MTU    uint16
}

func newDHCPConfig(cidr, region string) (dhcpConfig, error) {
	p, err := netip.ParsePrefix(cidr)
	if err != nil {
		return dhcpConfig{}, err
	}
	return dhcpConfig{Prefix: p.Masked(), Router: addrN(p, 1), DNS: addrN(p, 2), Domain: region + ".compute.internal", MTU: 1500}, nil
}

// dhcpReply answers one request from the static lease table (lookup by the
// client's MAC). It returns nil when the request deserves no answer: an
// unknown client (another server, or none, is responsible), a message for
// another server, a RELEASE or DECLINE (static leases do not change).
func dhcpReply(cfg dhcpConfig, lookup func(mac string) (netip.Addr, bool), req *dhcpv4.DHCPv4) *dhcpv4.DHCPv4 {
	if req.OpCode != dhcpv4.OpcodeBootRequest {
		return nil
	}
	ip, ok := lookup(req.ClientHWAddr.String())
	if !ok {
		return nil
	}
	var typ dhcpv4.MessageType
	switch req.MessageType() {
	case dhcpv4.MessageTypeDiscover:
		typ = dhcpv4.MessageTypeOffer
	case dhcpv4.MessageTypeRequest:
		if sid := req.ServerIdentifier(); sid != nil && !sid.IsUnspecified() && !sid.Equal(cfg.Router.AsSlice()) {
			return nil // the client chose another server
		}
		want := req.RequestedIPAddress()
		if want == nil || want.IsUnspecified() {
			want = req.ClientIPAddr // RENEWING / REBINDING
		}
		if want != nil && !want.IsUnspecified() && !want.Equal(ip.AsSlice()) {
			typ = dhcpv4.MessageTypeNak
		} else {
			typ = dhcpv4.MessageTypeAck
		}
	case dhcpv4.MessageTypeInform:
		typ = dhcpv4.MessageTypeAck
	default:
		return nil
	}
	router := net.IP(cfg.Router.AsSlice())
	mods := []dhcpv4.Modifier{
		dhcpv4.WithMessageType(typ),
		dhcpv4.WithOption(dhcpv4.OptServerIdentifier(router)),
	}
	if typ == dhcpv4.MessageTypeNak {
		resp, err := dhcpv4.NewReplyFromRequest(req, mods...)
		if err != nil {
			return nil
		}
		return resp
	}
	bcast := addrN(cfg.Prefix, size(cfg.Prefix)-1)
	mtu := []byte{byte(cfg.MTU >> 8), byte(cfg.MTU)}
	mods = append(mods,
		dhcpv4.WithNetmask(maskOf(cfg.Prefix)),
		dhcpv4.WithRouter(router),
		dhcpv4.WithDNS(net.IP(cfg.DNS.AsSlice())),
		dhcpv4.WithOption(dhcpv4.OptHostName(hostname(ip.String()))),
		dhcpv4.WithOption(dhcpv4.OptDomainName(cfg.Domain)),
		dhcpv4.WithOption(dhcpv4.OptBroadcastAddress(net.IP(bcast.AsSlice()))),
		dhcpv4.WithGeneric(dhcpv4.OptionInterfaceMTU, mtu),
	)
	if req.MessageType() != dhcpv4.MessageTypeInform {
		mods = append(mods,
			dhcpv4.WithYourIP(net.IP(ip.AsSlice())),
			dhcpv4.WithOption(dhcpv4.OptIPAddressLeaseTime(dhcpLeaseTime)),
			dhcpv4.WithOption(dhcpv4.OptRenewTimeValue(dhcpLeaseTime/2)),
			dhcpv4.WithOption(dhcpv4.OptRebindingTimeValue(dhcpLeaseTime*7/8)),
		)
	}
	resp, err := dhcpv4.NewReplyFromRequest(req, mods...)
	if err != nil {
		return nil
	}
	return resp
}

// dhcpDest is where a reply goes (RFC 2131 4.1): to a relay, to the
// client's configured address when it has one, else to the limited
// broadcast address. We never unicast to yiaddr before the client has it
// (that would need a hand-made ARP entry); every client we know accepts a
// broadcast reply, and a broadcast stays on the subnet's bridge.
func dhcpDest(req, resp *dhcpv4.DHCPv4) *net.UDPAddr {
	if req.GatewayIPAddr != nil && !req.GatewayIPAddr.IsUnspecified() {
		return &net.UDPAddr{IP: req.GatewayIPAddr, Port: 67}
	}
	if resp.MessageType() != dhcpv4.MessageTypeNak && req.ClientIPAddr != nil && !req.ClientIPAddr.IsUnspecified() {
		return &net.UDPAddr{IP: req.ClientIPAddr, Port: 68}
	}
	return &net.UDPAddr{IP: net.IPv4bcast, Port: 68}
}

// dhcpServer serves one subnet: its socket lives in the VPC namespace,
// bound to 0.0.0.0:67 and to the subnet's bridge (SO_BINDTODEVICE), so
// the servers of several subnets share the port and each hears only its
// own bridge.
type dhcpServer struct {
	cfg    dhcpConfig
	bridge string
	conn   net.PacketConn
	log    *slog.Logger
	done   chan struct{}

	mu     sync.Mutex
	leases map[string]netip.Addr // MAC -> address
}

func startDHCP(ns, bridge string, cfg dhcpConfig, log *slog.Logger) (*dhcpServer, error) {
	s := &dhcpServer{cfg: cfg, bridge: bridge, log: log, done: make(chan struct{}), leases: map[string]netip.Addr{}}
	lc := net.ListenConfig{Control: func(_, _ string, c syscall.RawConn) error {
		var serr error
		err := c.Control(func(fd uintptr) {
			if serr = unix.SetsockoptInt(int(fd), unix.SOL_SOCKET, unix.SO_REUSEADDR, 1); serr != nil {
				return
			}
			if serr = unix.SetsockoptInt(int(fd), unix.SOL_SOCKET, unix.SO_BROADCAST, 1); serr != nil {
				return
			}
			serr = unix.BindToDevice(int(fd), bridge)
		})
		return errors.Join(err, serr)
	}}
	err := inNamespace(ns, func() error {
		c, err := lc.ListenPacket(context.Background(), "udp4", "0.0.0.0:67")
		s.conn = c
		return err
	})
	if err != nil {
		return nil, err
	}
	go s.serve()
	return s, nil
}

func (s *dhcpServer) setLease(mac string, ip netip.Addr) {
	s.mu.Lock()
	s.leases[mac] = ip
	s.mu.Unlock()
}

func (s *dhcpServer) removeLease(mac string) {
	s.mu.Lock()
	delete(s.leases, mac)
	s.mu.Unlock()
}

func (s *dhcpServer) lookup(mac string) (netip.Addr, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	ip, ok := s.leases[mac]
	return ip, ok
}

func (s *dhcpServer) serve() {
	defer close(s.done)
	buf := make([]byte, 1500)
	for {
		n, _, err := s.conn.ReadFrom(buf)
		if err != nil {
			if !errors.Is(err, net.ErrClosed) {
				s.log.Error("dhcp read failed; server stops", "bridge", s.bridge, "err", err)
			}
			return
		}
		req, err := dhcpv4.FromBytes(buf[:n])
		if err != nil {
			s.log.Debug("dhcp: ignoring malformed packet", "bridge", s.bridge, "err", err)
			continue
		}
		resp := dhcpReply(s.cfg, s.lookup, req)
		if resp == nil {
			continue
		}
		if _, err := s.conn.WriteTo(resp.ToBytes(), dhcpDest(req, resp)); err != nil {
			s.log.Warn("dhcp reply failed", "bridge", s.bridge, "mac", req.ClientHWAddr.String(), "err", err)
		}
	}
}

func (s *dhcpServer) close() {
	s.conn.Close()
	<-s.done
}
