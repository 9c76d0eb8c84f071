package nft

import (
	"fmt"
	"net/netip"
	"strings"

	"github.com/google/nftables"
	"github.com/google/nftables/expr"
)

// Uplink is the optional path from the host's public bridge to a real
// network interface of a lab server (network.uplink): the public pool is
// masqueraded behind the uplink's address on the way out, and forwarding
// between the bridge and the uplink is limited to the pool. It lives in
// one table of labcloud's own in the host namespace; no other table is
// read or changed. An accept there does not override a drop in another
// table (the host's own firewall): if the host filters forwarding, the
// operator allows the bridge there.
type Uplink struct {
	// Table is the name of labcloud's table (family ip); Apply and
	// Delete replace and remove only it.
	Table string
	// Bridge is the host's public bridge (<prefix>pub).
	Bridge string
	// Link is the uplink interface (e.g. eno1).
	Link string
	// Pool is the public pool (network.publicCidr).
	Pool netip.Prefix
}

// masqTerm masquerades behind the output interface's address.
type masqTerm struct{}

func (masqTerm) text() string      { return "masquerade" }
func (masqTerm) exprs() []expr.Any { return []expr.Any{&expr.Masq{}} }

func validateUplink(u Uplink) error {
	if !idRE.MatchString(u.Table) || strings.ContainsAny(u.Table, ".-") {
		return fmt.Errorf("nft: uplink table name %q must be letters, digits or '_'", u.Table)
	}
	for kind, n := range map[string]string{"public bridge": u.Bridge, "uplink": u.Link} {
		if n == "" || len(n) > 15 || strings.ContainsAny(n, "\x00/ \"") {
			return fmt.Errorf("nft: %s name %q must be 1-15 characters without spaces, quotes or slashes", kind, n)
		}
	}
	if u.Bridge == u.Link {
		return fmt.Errorf("nft: the uplink %s cannot be the public bridge itself", u.Link)
	}
	if !u.Pool.IsValid() || !u.Pool.Addr().Is4() || u.Pool.Bits() == 0 {
		return fmt.Errorf("nft: uplink pool %v is not an IPv4 network", u.Pool)
	}
	return nil
}

// buildUplink is the uplink's table: what Apply loads and Render shows.
func buildUplink(u Uplink) (*table, error) {
	if err := validateUplink(u); err != nil {
		return nil, err
	}
	pool := u.Pool.Masked()
	t := &table{family: nftables.TableFamilyIPv4, name: u.Table}
	fwd := &chain{name: "forward", base: &baseChain{typ: nftables.ChainTypeFilter, hook: nftables.ChainHookForward, hookNm: "forward", prio: prioFilter, policy: nftables.ChainPolicyAccept}}
	fromBr, toBr := iif(u.Bridge), oif(u.Bridge)
	fromUp, toUp := iif(u.Link), oif(u.Link)
	fwd.rules = []rule{
		{terms: []term{fromBr, toUp, prefixTerm{f: fIPSaddr, p: pool}, accept}, comment: "the public pool out of the uplink"},
		{terms: []term{fromUp, toBr, ctState(ctEstablished | ctRelated), accept}, comment: "replies"},
		{terms: []term{fromUp, toBr, prefixTerm{f: fIPDaddr, p: pool}, accept}, comment: "to public IPs, where the network routes the pool to this host"},
		{terms: []term{fromBr, toUp, drop}, comment: "nothing else between the public bridge and the uplink"},
		{terms: []term{fromUp, toBr, drop}, comment: "nothing else between the public bridge and the uplink"},
	}
	post := &chain{name: "postrouting", base: &baseChain{typ: nftables.ChainTypeNAT, hook: nftables.ChainHookPostrouting, hookNm: "postrouting", prio: prioSrcNAT, policy: nftables.ChainPolicyAccept}}
	post.rules = []rule{
		{terms: []term{toUp, prefixTerm{f: fIPSaddr, p: pool}, masqTerm{}}, comment: "the public pool behind the uplink's address"},
	}
	t.chains = []*chain{fwd, post}
	return t, nil
}

// RenderUplink returns the table ApplyUplink loads, in nft syntax (a
// comment naming the error for an Uplink it would reject).
func RenderUplink(u Uplink) string {
	t, err := buildUplink(u)
	if err != nil {
		return fmt.Sprintf("# invalid uplink: %v\n", err)
	}
	var b strings.Builder
	renderTable(&b, t)
	return b.String()
}

// ApplyUplink replaces the uplink table in the namespace ns ("" for the
// caller's, which is the host for labcloudd) in one transaction.
func ApplyUplink(ns string, u Uplink) error {
	t, err := buildUplink(u)
	if err != nil {
		return err
	}
	c, done, err := conn(ns)
	if err != nil {
		return err
	}
	defer done()
	if err := queueTable(c, t); err != nil {
		return err
	}
	if err := c.Flush(); err != nil {
		return fmt.Errorf("nft: applying the uplink table %s (nothing changed): %w", u.Table, err)
	}
	return nil
}

// DeleteUplink removes the uplink table named table from the namespace
// ns; a missing table is not an error.
func DeleteUplink(ns, table string) error {
	c, done, err := conn(ns)
	if err != nil {
		return err
	}
	defer done()
	t := &nftables.Table{Family: nftables.TableFamilyIPv4, Name: table}
	c.AddTable(t)
	c.DelTable(t)
	if err := c.Flush(); err != nil {
		return fmt.Errorf("nft: deleting the uplink table %s: %w", table, err)
	}
	return nil
}
