package netfab

import (
	"context"
	"net/netip"
	"strings"
	"testing"

	"github.com/labcloud/labcloud/netfab/nft"
)

func TestUplinkPlan(t *testing.T) {
	edge := edgeConfig{PublicCIDR: netip.MustParsePrefix("198.18.0.0/24")}
	sysctls, table := uplinkPlan("lc", "eno1", edge)
	if len(sysctls) != 1 || sysctls[0] != [2]string{"net/ipv4/ip_forward", "1"} {
		t.Errorf("sysctls = %v, want only ip_forward=1", sysctls)
	}
	want := nft.Uplink{Table: "labcloud_lc_uplink", Bridge: "lcpub", Link: "eno1", Pool: edge.PublicCIDR}
	if table != want {
		t.Errorf("table = %+v, want %+v", table, want)
	}
	// The nft side is golden-tested in netfab/nft; here: it renders.
	if r := nft.RenderUplink(table); !strings.Contains(r, `oifname "eno1" ip saddr 198.18.0.0/24 masquerade`) {
		t.Errorf("rendered uplink:\n%s", r)
	}
}

func TestUplinkOptions(t *testing.T) {
	ctx := context.Background()
	st := testStore(t)
	pool := netip.MustParsePrefix("203.0.113.64/27")
	for _, tc := range []struct {
		name    string
		uplink  string
		gw      netip.Addr
		err     string
		nextHop netip.Addr
	}{
		{name: "off", nextHop: netip.Addr{}},
		{name: "off with a gateway", gw: addrN(pool, 2), nextHop: addrN(pool, 2)},
		{name: "uplink: the host is the next hop", uplink: "eno1", nextHop: addrN(pool, 1)},
		{name: "both", uplink: "eno1", gw: addrN(pool, 2), err: "set one"},
		{name: "one of ours", uplink: "lsdpub", err: "name prefix"},
		{name: "not a name", uplink: "a/b", err: "not an interface name"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			f, err := New(ctx, Options{Store: st, Zones: []string{"lab-1a"}, NamePrefix: "lsd", Metadata: &fakeMetadata{},
				PublicCIDR: pool, PublicGateway: tc.gw, Uplink: tc.uplink})
			if tc.err != "" {
				if err == nil || !strings.Contains(err.Error(), tc.err) {
					t.Fatalf("New: %v, want an error about %q", err, tc.err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if f.edge.Gateway != tc.nextHop {
				t.Errorf("internet next hop %v, want %v", f.edge.Gateway, tc.nextHop)
			}
			// The guard: a test binary never enables an uplink.
			if err := f.syncUplink(); tc.uplink != "" && (err == nil || !strings.Contains(err.Error(), "test binary")) {
				t.Errorf("syncUplink in a test: %v, want a refusal", err)
			} else if tc.uplink == "" && err != nil {
				t.Errorf("syncUplink without an uplink: %v", err)
			}
		})
	}
}
