package nft

import (
	"context"
	"net"
	"sync"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// sendPreDHCP sends a UDP datagram the way a DHCP client without an
// address does: from 0.0.0.0:68 to 255.255.255.255:67 out of eth0.
func sendPreDHCP(ns, payload string) error {
	return inNS(ns, func() error {
		lc := net.ListenConfig{Control: func(_, _ string, c syscall.RawConn) error {
			var serr error
			err := c.Control(func(fd uintptr) {
				serr = unix.SetsockoptInt(int(fd), unix.SOL_SOCKET, unix.SO_BROADCAST, 1)
				if serr == nil {
					serr = unix.BindToDevice(int(fd), "eth0")
				}
			})
			if err != nil {
				return err
			}
			return serr
		}}
		pc, err := lc.ListenPacket(context.Background(), "udp4", "0.0.0.0:68")
		if err != nil {
			return err
		}
		defer pc.Close()
		_, err = pc.WriteTo([]byte(payload), &net.UDPAddr{IP: net.IPv4bcast, Port: 67})
		return err
	})
}

// TestDHCPBeforeAnAddress: an ENI without an address yet may send
// DHCP from 0.0.0.0 and the router gets it; a tap the Policy does not
// know may not, not even DHCP.
func TestDHCPBeforeAnAddress(t *testing.T) {
	sa, sb := subnetsAB()
	l := newLab(t, sa, sb)
	d := l.addInstance("d", sa, addr("10.77.1.20"))
	u := l.addInstance("u", sa, addr("10.77.1.21"))
	for _, in := range []*inst{d, u} {
		nh := handleFor(t, in.name)
		eth, err := nh.LinkByName("eth0")
		if err != nil {
			t.Fatal(err)
		}
		addrs, err := nh.AddrList(eth, unix.AF_INET)
		if err != nil {
			t.Fatal(err)
		}
		for _, a := range addrs {
			if err := nh.AddrDel(eth, &a); err != nil {
				t.Fatal(err)
			}
		}
	}
	l.apply(Policy{Subnets: []Subnet{sa, sb}, ENIs: []ENI{d.eni("eni-d", sa)}})

	var mu sync.Mutex
	got := map[string]string{}
	var pc net.PacketConn
	if err := inNS(l.router, func() (err error) { pc, err = net.ListenPacket("udp4", "0.0.0.0:67"); return }); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { pc.Close() })
	go func() {
		buf := make([]byte, 1500)
		for {
			n, from, err := pc.ReadFrom(buf)
			if err != nil {
				return
			}
			mu.Lock()
			got[string(buf[:n])] = from.String()
			mu.Unlock()
		}
	}()
	seen := func(p string) (string, bool) {
		mu.Lock()
		defer mu.Unlock()
		f, ok := got[p]
		return f, ok
	}
	if err := sendPreDHCP(u.name, "from-unknown"); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(okWithin)
	for {
		if err := sendPreDHCP(d.name, "from-eni"); err != nil {
			t.Fatal(err)
		}
		if _, ok := seen("from-eni"); ok || time.Now().After(deadline) {
			break
		}
		time.Sleep(50 * time.Millisecond) // retry pacing
	}
	if from, ok := seen("from-eni"); !ok || from != "0.0.0.0:68" {
		t.Errorf("DHCP from the ENI before it has an address: seen=%v from %q, want from 0.0.0.0:68", ok, from)
	}
	if _, ok := seen("from-unknown"); ok {
		t.Error("the router got DHCP from a tap the Policy does not know")
	}
}
