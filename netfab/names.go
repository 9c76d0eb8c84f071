package netfab

import (
	"crypto/rand"
	"encoding/binary"
	"encoding/hex"
	"fmt"
	"net"
	"net/netip"
	"regexp"
	"strings"
)

// newID returns an AWS-style resource ID: kind, a dash and 17 hex digits.
func newID(kind string) string {
	var b [9]byte
	if _, err := rand.Read(b[:]); err != nil {
		panic(err) // crypto/rand never fails on Linux
	}
	return kind + "-" + hex.EncodeToString(b[:])[:17]
}

// newMAC returns a random locally administered unicast MAC, 02:xx:xx:xx:xx:xx.
func newMAC() string {
	var b [5]byte
	if _, err := rand.Read(b[:]); err != nil {
		panic(err)
	}
	return net.HardwareAddr{0x02, b[0], b[1], b[2], b[3], b[4]}.String()
}

var prefixRE = regexp.MustCompile(`^[a-z][a-z0-9]{0,5}$`)

// checkPrefix keeps interface names (prefix + 1 letter + 8 hex) within
// Linux's 15-character limit.
func checkPrefix(p string) error {
	if !prefixRE.MatchString(p) {
		return fmt.Errorf("netfab: NamePrefix %q must be 1-6 lower-case letters or digits, starting with a letter", p)
	}
	return nil
}

// idTail is the last 8 hex digits of an ID, enough to tell apart the
// bridges or taps of one VPC namespace.
func idTail(id string) string {
	if len(id) < 8 {
		return id
	}
	return id[len(id)-8:]
}

func (f *Fabric) nsName(vpcID string) string        { return f.prefix + "-" + vpcID }
func (f *Fabric) bridgeName(subnetID string) string { return f.prefix + "b" + idTail(subnetID) }
func (f *Fabric) tapName(eniID string) string       { return f.prefix + "t" + idTail(eniID) }

// ourLink reports whether an interface name follows one of the patterns
// this Fabric generates (so that Reconcile may remove it when unowned).
func (f *Fabric) ourLink(name string) bool {
	rest, ok := strings.CutPrefix(name, f.prefix)
	if !ok || len(rest) != 9 || (rest[0] != 'b' && rest[0] != 't') {
		return false
	}
	_, err := hex.DecodeString(rest[1:])
	return err == nil
}

// ourHostLink reports whether a host-namespace interface name is one of
// this Fabric's internet-gateway veths (prefix, "g", 8 hex digits).
func (f *Fabric) ourHostLink(name string) bool {
	rest, ok := strings.CutPrefix(name, f.prefix+"g")
	if !ok || len(rest) != 8 {
		return false
	}
	_, err := hex.DecodeString(rest)
	return err == nil
}

// netnsDir is where named namespaces are bind-mounted, as iproute2 does.
const netnsDir = "/var/run/netns"

// addrN returns the n-th address of prefix p (base + n).
func addrN(p netip.Prefix, n uint32) netip.Addr {
	b := p.Masked().Addr().As4()
	v := binary.BigEndian.Uint32(b[:]) + n
	var o [4]byte
	binary.BigEndian.PutUint32(o[:], v)
	return netip.AddrFrom4(o)
}

// size is the number of addresses in an IPv4 prefix.
func size(p netip.Prefix) uint32 { return 1 << (32 - p.Bits()) }

// hostname is the AWS private DNS host label of an address: ip-a-b-c-d.
func hostname(ip string) string { return "ip-" + strings.ReplaceAll(ip, ".", "-") }

// regionOf derives the region from an AZ name ("lab-1a" -> "lab-1").
func regionOf(zone string) string {
	if n := len(zone); n > 1 && zone[n-1] >= 'a' && zone[n-1] <= 'z' {
		return zone[:n-1]
	}
	return zone
}

// defaultSubnetCIDR numbers the default subnets as AWS does:
// 172.31.0.0/20, 172.31.16.0/20, 172.31.32.0/20, ...
func defaultSubnetCIDR(i int) string { return fmt.Sprintf("172.31.%d.0/20", 16*i) }

// maskString renders a prefix length as a dotted mask.
func maskOf(p netip.Prefix) net.IPMask { return net.CIDRMask(p.Bits(), 32) }
