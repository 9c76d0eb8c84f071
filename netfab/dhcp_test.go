package netfab

import (
	"net"
	"net/netip"
	"testing"
	"time"

	"github.com/insomniacslk/dhcp/dhcpv4"
)

func testDHCPConfig(t *testing.T) dhcpConfig {
	t.Helper()
	cfg, err := newDHCPConfig("172.31.16.0/20", "lab-1")
	if err != nil {
		t.Fatal(err)
	}
	return cfg
}

func newReq(t *testing.T, mac string, typ dhcpv4.MessageType, mods ...dhcpv4.Modifier) *dhcpv4.DHCPv4 {
	t.Helper()
	hw, _ := net.ParseMAC(mac)
	req, err := dhcpv4.New(append([]dhcpv4.Modifier{dhcpv4.WithHwAddr(hw), dhcpv4.WithMessageType(typ)}, mods...)...)
	if err != nil {
		t.Fatal(err)
	}
	// Round-trip through the wire format, as the server sees it.
	req, err = dhcpv4.FromBytes(req.ToBytes())
	if err != nil {
		t.Fatal(err)
	}
	return req
}

func TestDHCPReply(t *testing.T) {
	cfg := testDHCPConfig(t)
	leaseIP := netip.MustParseAddr("172.31.16.4")
	const mac = "02:aa:bb:cc:dd:ee"
	lookup := func(m string) (netip.Addr, bool) { return leaseIP, m == mac }
	router := net.ParseIP("172.31.16.1").To4()

	tests := []struct {
		name     string
		mac      string
		typ      dhcpv4.MessageType
		mods     []dhcpv4.Modifier
		want     dhcpv4.MessageType // 0: no reply
		wantDest string
	}{
		{name: "discover gets offer", mac: mac, typ: dhcpv4.MessageTypeDiscover, want: dhcpv4.MessageTypeOffer, wantDest: "255.255.255.255:68"},
		{name: "unknown mac is ignored", mac: "02:00:00:00:00:01", typ: dhcpv4.MessageTypeDiscover},
		{name: "request for lease gets ack", mac: mac, typ: dhcpv4.MessageTypeRequest,
			mods: []dhcpv4.Modifier{dhcpv4.WithOption(dhcpv4.OptRequestedIPAddress(net.ParseIP("172.31.16.4"))), dhcpv4.WithOption(dhcpv4.OptServerIdentifier(router))},
			want: dhcpv4.MessageTypeAck, wantDest: "255.255.255.255:68"},
		{name: "request for another address gets nak", mac: mac, typ: dhcpv4.MessageTypeRequest,
			mods: []dhcpv4.Modifier{dhcpv4.WithOption(dhcpv4.OptRequestedIPAddress(net.ParseIP("172.31.16.9")))},
			want: dhcpv4.MessageTypeNak, wantDest: "255.255.255.255:68"},
		{name: "request to another server is ignored", mac: mac, typ: dhcpv4.MessageTypeRequest,
			mods: []dhcpv4.Modifier{dhcpv4.WithOption(dhcpv4.OptServerIdentifier(net.ParseIP("10.0.0.1")))}},
		{name: "renew is unicast to the client", mac: mac, typ: dhcpv4.MessageTypeRequest,
			mods: []dhcpv4.Modifier{dhcpv4.WithClientIP(net.ParseIP("172.31.16.4"))},
			want: dhcpv4.MessageTypeAck, wantDest: "172.31.16.4:68"},
		{name: "release is ignored", mac: mac, typ: dhcpv4.MessageTypeRelease},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			req := newReq(t, tt.mac, tt.typ, tt.mods...)
			resp := dhcpReply(cfg, lookup, req)
			if tt.want == 0 {
				if resp != nil {
					t.Fatalf("got %s, want no reply", resp.MessageType())
				}
				return
			}
			if resp == nil {
				t.Fatalf("no reply, want %s", tt.want)
			}
			// Decode the wire form, as a client would.
			resp, err := dhcpv4.FromBytes(resp.ToBytes())
			if err != nil {
				t.Fatal(err)
			}
			if resp.MessageType() != tt.want {
				t.Fatalf("reply %s, want %s", resp.MessageType(), tt.want)
			}
			if resp.TransactionID != req.TransactionID || resp.OpCode != dhcpv4.OpcodeBootReply {
				t.Errorf("xid %v op %v, want xid %v and a BOOTREPLY", resp.TransactionID, resp.OpCode, req.TransactionID)
			}
			if got := dhcpDest(req, resp).String(); got != tt.wantDest {
				t.Errorf("destination %s, want %s", got, tt.wantDest)
			}
			if !resp.ServerIdentifier().Equal(router) {
				t.Errorf("server id %v, want %v", resp.ServerIdentifier(), router)
			}
			if tt.want == dhcpv4.MessageTypeNak {
				return
			}
			checks := map[string][2]string{
				"yiaddr":    {resp.YourIPAddr.String(), "172.31.16.4"},
				"mask":      {net.IP(resp.SubnetMask()).String(), "255.255.240.0"},
				"router":    {resp.Router()[0].String(), "172.31.16.1"},
				"dns":       {resp.DNS()[0].String(), "172.31.16.2"},
				"hostname":  {resp.HostName(), "ip-172-31-16-4"},
				"domain":    {resp.DomainName(), "lab-1.compute.internal"},
				"broadcast": {dhcpv4.GetIP(dhcpv4.OptionBroadcastAddress, resp.Options).String(), "172.31.31.255"},
				"lease":     {resp.IPAddressLeaseTime(0).String(), time.Hour.String()},
			}
			for k, v := range checks {
				if v[0] != v[1] {
					t.Errorf("%s = %s, want %s", k, v[0], v[1])
				}
			}
			if mtu := resp.Options.Get(dhcpv4.OptionInterfaceMTU); len(mtu) != 2 || int(mtu[0])<<8|int(mtu[1]) != 1500 {
				t.Errorf("MTU option %v, want 1500", mtu)
			}
		})
	}
}

func TestAddressMath(t *testing.T) {
	tests := []struct {
		name string
		i    int
		want string
	}{
		{name: "first AZ", i: 0, want: "172.31.0.0/20"},
		{name: "second AZ", i: 1, want: "172.31.16.0/20"},
		{name: "third AZ", i: 2, want: "172.31.32.0/20"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := defaultSubnetCIDR(tt.i); got != tt.want {
				t.Errorf("defaultSubnetCIDR(%d) = %s, want %s", tt.i, got, tt.want)
			}
		})
	}
	p := netip.MustParsePrefix("172.31.16.0/20")
	if got := addrN(p, size(p)-1).String(); got != "172.31.31.255" {
		t.Errorf("broadcast = %s", got)
	}
	if got := regionOf("lab-1b"); got != "lab-1" {
		t.Errorf("regionOf = %s", got)
	}
	if id := newID("vpc"); len(id) != 21 {
		t.Errorf("newID = %q, want vpc- and 17 hex digits", id)
	}
	if m := newMAC(); len(m) != 17 || m[:3] != "02:" {
		t.Errorf("newMAC = %q", m)
	}
}

func TestNames(t *testing.T) {
	f := &Fabric{prefix: "lc"}
	tests := []struct {
		name string
		link string
		ours bool
	}{
		{name: "bridge", link: f.bridgeName("subnet-0123456789abcdef0"), ours: true},
		{name: "tap", link: f.tapName("eni-0123456789abcdef0"), ours: true},
		{name: "other prefix", link: "lxt89abcdef0", ours: false},
		{name: "test veth", link: "gv0", ours: false},
		{name: "not hex", link: "lctzzzzzzzz", ours: false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if len(tt.link) > 15 {
				t.Errorf("%s is longer than IFNAMSIZ-1", tt.link)
			}
			if got := f.ourLink(tt.link); got != tt.ours {
				t.Errorf("ourLink(%s) = %v, want %v", tt.link, got, tt.ours)
			}
		})
	}
	if f.tapName("eni-0123456789abcdef0") != "lct9abcdef0" {
		t.Errorf("tapName = %s", f.tapName("eni-0123456789abcdef0"))
	}
	for _, p := range []string{"", "LC", "toolong1", "1a", "a-b"} {
		if checkPrefix(p) == nil {
			t.Errorf("checkPrefix(%q) accepted", p)
		}
	}
	if checkPrefix("abcdef") != nil {
		t.Error("checkPrefix rejected a 6-character prefix")
	}
}
