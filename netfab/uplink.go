package netfab

import (
	"fmt"
	"strings"
	"testing"

	"github.com/labcloud/labcloud/netfab/nft"
	"github.com/vishvananda/netlink"
)

// The optional uplink (Options.Uplink, network.uplink): on a real lab
// server, instances with public IPs reach the real network through one of
// the host's interfaces. The VPCs' internet gateways then send the
// internet to the public bridge's own address (pool base+1) unless
// Options.PublicGateway names another next hop; the host forwards it out
// of the uplink, masquerading the pool behind the uplink's address. Only
// outbound works by itself: for inbound connections to public IPs the
// network must route the pool to this host (no DNAT of the uplink's
// address is done). It is the one place labcloud changes the host's own
// forwarding, so it is off unless configured, and never on in tests.

// uplinkPlan is what enabling the uplink changes on the host: the sysctls
// (paths under /proc/sys, values) and labcloud's nft table. It is pure,
// so tests check it without touching the host.
func uplinkPlan(prefix, uplink string, edge edgeConfig) (sysctls [][2]string, table nft.Uplink) {
	sysctls = [][2]string{{"net/ipv4/ip_forward", "1"}}
	table = nft.Uplink{Table: uplinkTableName(prefix), Bridge: prefix + publicBridgeS, Link: uplink, Pool: edge.PublicCIDR}
	return sysctls, table
}

// uplinkTableName is this install's table: labcloud_<prefix>_uplink.
func uplinkTableName(prefix string) string { return "labcloud_" + prefix + "_uplink" }

// checkUplink rejects an uplink name that cannot be a real host interface
// outside labcloud's own.
func checkUplink(prefix, uplink string) error {
	if uplink == "" {
		return nil
	}
	if len(uplink) > 15 || strings.ContainsAny(uplink, "/ \"\x00") {
		return fmt.Errorf("netfab: uplink %q is not an interface name (1-15 characters, no spaces or slashes)", uplink)
	}
	if strings.HasPrefix(uplink, prefix) {
		return fmt.Errorf("netfab: uplink %q starts with the name prefix %q: it must be a real interface of the host, not one of labcloud's", uplink, prefix)
	}
	return nil
}

// syncUplink applies the uplink plan in the host namespace. It refuses to
// run inside a test binary: the uplink changes the host's forwarding and
// must never be enabled by a test, whatever options it builds.
func (f *Fabric) syncUplink() error {
	if f.uplink == "" {
		return nil
	}
	if testing.Testing() {
		return fmt.Errorf("netfab: refusing to enable the uplink %s from a test binary: it changes the host's forwarding", f.uplink)
	}
	if _, err := netlink.LinkByName(f.uplink); err != nil {
		return fmt.Errorf("netfab: uplink %s: %w (network.uplink must name an interface of this host; `ip link` lists them)", f.uplink, err)
	}
	sysctls, table := uplinkPlan(f.prefix, f.uplink, f.edge)
	f.kmu.Lock()
	defer f.kmu.Unlock()
	for _, s := range sysctls {
		if err := writeSysctl(s[0], s[1]); err != nil {
			return fmt.Errorf("netfab: uplink: %w", err)
		}
	}
	if err := nft.ApplyUplink("", table); err != nil {
		return fmt.Errorf("netfab: uplink: %w", err)
	}
	f.log.Info("uplink enabled", "uplink", f.uplink, "bridge", table.Bridge, "pool", table.Pool, "table", table.Table)
	return nil
}

// removeUplink deletes the uplink table (Teardown). ip_forward stays as
// it is: other software on the host may rely on it.
func (f *Fabric) removeUplink() error {
	if f.uplink == "" || testing.Testing() {
		return nil
	}
	return nft.DeleteUplink("", uplinkTableName(f.prefix))
}
