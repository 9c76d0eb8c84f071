package nft

import (
	"errors"
	"fmt"
	"path/filepath"
	"strings"

	"github.com/google/nftables"
	"github.com/google/nftables/binaryutil"
	"github.com/google/nftables/expr"
	"github.com/google/nftables/userdata"
	"github.com/mdlayher/netlink"
	"github.com/vishvananda/netns"
	"golang.org/x/sys/unix"
)

// netnsDir is where named namespaces are bind-mounted, as iproute2 does.
const netnsDir = "/var/run/netns"

// nsPath turns a namespace name (under /var/run/netns) into its path; a
// name containing a slash is taken as a path already (e.g.
// /proc/<pid>/ns/net).
func nsPath(ns string) string {
	if strings.Contains(ns, "/") {
		return ns
	}
	return filepath.Join(netnsDir, ns)
}

// conn opens an nftables connection whose netlink socket lives in the
// namespace ns ("" means the caller's own namespace). No thread switching
// is needed: the socket is created in the target namespace.
func conn(ns string) (*nftables.Conn, func(), error) {
	if ns == "" {
		c, err := nftables.New(nftables.WithSockOptions(bigBuffers))
		return c, func() {}, err
	}
	h, err := netns.GetFromPath(nsPath(ns))
	if err != nil {
		return nil, nil, fmt.Errorf("nft: opening network namespace %s: %w", ns, err)
	}
	c, err := nftables.New(nftables.WithNetNSFd(int(h)), nftables.WithSockOptions(bigBuffers))
	if err != nil {
		h.Close()
		return nil, nil, fmt.Errorf("nft: connecting to nftables in %s: %w", ns, err)
	}
	return c, func() { h.Close() }, nil
}

// Apply replaces labcloud's tables in the network namespace ns with the
// ruleset of p: table inet "labcloud" and table bridge "labcloud_bridge"
// are deleted and recreated in one nftables transaction. ns is a name
// under /var/run/netns (what netfab passes), or a path when it contains a
// slash, or "" for the caller's namespace.
//
// The transaction is atomic: if the kernel rejects any part of it, the
// namespace keeps exactly the ruleset it had and Apply returns the error.
// Because every allow rule is keyed on a known tap, bridge or ENI address,
// an ENI that the installed ruleset does not know (a new tap whose Apply
// failed, or has not happened yet) gets nothing through: call Apply with
// the VPC's current Policy (even an empty one) before creating its first
// tap, so the base chains with policy drop are in place.
//
// Apply holds no state and takes no lock: calls for one namespace must be
// serialised by the caller (netfab's per-VPC reconcile), or the last
// transaction to commit wins.
func Apply(ns string, p Policy) error {
	ts, err := build(p)
	if err != nil {
		return err
	}
	c, done, err := conn(ns)
	if err != nil {
		return err
	}
	defer done()
	for _, t := range ts {
		if err := queueTable(c, t); err != nil {
			return err
		}
	}
	if err := c.Flush(); err != nil {
		return fmt.Errorf("nft: applying the ruleset in %s (nothing changed): %w", ns, err)
	}
	return nil
}

// Delete removes labcloud's tables from the namespace ns (same naming as
// Apply), in one transaction; missing tables are not an error. Without
// them the namespace filters nothing, so call it only when the namespace
// itself is going away.
func Delete(ns string) error {
	c, done, err := conn(ns)
	if err != nil {
		return err
	}
	defer done()
	for _, t := range []*nftables.Table{
		{Family: nftables.TableFamilyINet, Name: InetTable},
		{Family: nftables.TableFamilyBridge, Name: BridgeTable},
	} {
		c.AddTable(t) // so that deleting never fails on a missing table
		c.DelTable(t)
	}
	if err := c.Flush(); err != nil {
		return fmt.Errorf("nft: deleting labcloud's tables in %s: %w", ns, err)
	}
	return nil
}

// queueTable adds to c's batch: (re)create the table, its chains, sets
// with elements, then rules (in that order, since map elements jump to
// chains and rules look up sets).
func queueTable(c *nftables.Conn, t *table) error {
	nt := &nftables.Table{Family: t.family, Name: t.name}
	c.AddTable(nt)
	c.DelTable(nt)
	c.AddTable(nt)
	chains := map[string]*nftables.Chain{}
	for _, ch := range t.chains {
		nc := &nftables.Chain{Name: ch.name, Table: nt}
		if b := ch.base; b != nil {
			prio := nftables.ChainPriority(b.prio)
			pol := b.policy
			nc.Type, nc.Hooknum, nc.Priority, nc.Policy = b.typ, b.hook, &prio, &pol
		}
		chains[ch.name] = c.AddChain(nc)
	}
	ids := map[string]uint32{}
	for _, s := range t.sets {
		ns := &nftables.Set{Table: nt, Name: s.name}
		if len(s.keys) == 1 {
			ns.KeyType = s.keys[0]
			// Tells nft how to print the elements (interface names are
			// host-order strings to it); the kernel does not care.
			ns.KeyByteOrder = binaryutil.BigEndian
			if s.keys[0].Name == nftables.TypeIFName.Name {
				ns.KeyByteOrder = binaryutil.NativeEndian
			}
		} else {
			kt, err := nftables.ConcatSetType(s.keys...)
			if err != nil {
				return fmt.Errorf("nft: set %s: %w", s.name, err)
			}
			ns.KeyType = kt
		}
		if s.data != nil {
			ns.IsMap = true
			ns.DataType = *s.data
		}
		els := make([]nftables.SetElement, len(s.elems))
		for i, e := range s.elems {
			els[i] = nftables.SetElement{Key: concatKey(e.key), VerdictData: e.verdict, Val: e.val}
		}
		if err := c.AddSet(ns, nil); err != nil {
			return fmt.Errorf("nft: set %s: %w", s.name, err)
		}
		// google/nftables puts all elements of a call in one netlink
		// attribute, whose length is 16 bits: send them in chunks.
		for len(els) > 0 {
			n := min(len(els), elemChunk)
			if err := c.SetAddElements(ns, els[:n]); err != nil {
				return fmt.Errorf("nft: set %s: %w", s.name, err)
			}
			els = els[n:]
		}
		ids[s.name] = ns.ID
	}
	for _, ch := range t.chains {
		for _, r := range ch.rules {
			var ex []expr.Any
			for _, tm := range r.terms {
				ex = append(ex, tm.exprs()...)
			}
			for _, e := range ex {
				if l, ok := e.(*expr.Lookup); ok {
					id, found := ids[l.SetName]
					if !found {
						return fmt.Errorf("nft: rule in chain %s looks up unknown set %s", ch.name, l.SetName)
					}
					l.SetID = id
				}
			}
			nr := &nftables.Rule{Table: nt, Chain: chains[ch.name], Exprs: ex}
			if r.comment != "" {
				nr.UserData = ruleComment(r.comment)
			}
			c.AddRule(nr)
		}
	}
	return nil
}

// elemChunk elements fit one netlink attribute (64 KiB) with room to
// spare: the largest element (ifname . ipv4_addr : jump <chain name up
// to 256 bytes>) marshals to under 320 bytes.
const elemChunk = 128

// bigBuffers lets one batch be as large as a VPC's ruleset: the whole
// transaction goes out in one sendmsg (so the socket's send buffer must
// hold it, or sendmsg fails with EMSGSIZE), and the kernel queues an ack
// per message before Flush reads any (so the receive buffer must hold
// them all, or acks are lost with ENOBUFS after the commit). The FORCE
// variants lift the sysctl caps, as nft itself does; they need
// CAP_NET_ADMIN, which changing nftables needs anyway. The sizes are
// limits, not allocations.
func bigBuffers(nc *netlink.Conn) error {
	raw, err := nc.SyscallConn()
	if err != nil {
		return err
	}
	var serr error
	if err := raw.Control(func(fd uintptr) {
		serr = errors.Join(
			unix.SetsockoptInt(int(fd), unix.SOL_SOCKET, unix.SO_SNDBUFFORCE, 256<<20),
			unix.SetsockoptInt(int(fd), unix.SOL_SOCKET, unix.SO_RCVBUFFORCE, 256<<20))
	}); err != nil {
		return err
	}
	if serr != nil {
		return fmt.Errorf("nft: enlarging the netlink socket buffers: %w", serr)
	}
	return nil
}

// ruleComment encodes a rule comment as nft does, so `nft list` shows it.
func ruleComment(s string) []byte { return userdata.AppendString(nil, userdata.TypeComment, s) }
