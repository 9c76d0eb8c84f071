package nft

import (
	"fmt"
	"net"
	"net/netip"
	"sort"
	"strings"

	"github.com/google/nftables"
	"github.com/google/nftables/binaryutil"
	"github.com/google/nftables/expr"
	"golang.org/x/sys/unix"
)

// The intermediate representation: tables, sets, chains and rules whose
// every match knows both its nft text and its netlink expressions. Render
// prints it and Apply sends it, so the golden files show exactly what the
// kernel gets.

type table struct {
	family nftables.TableFamily
	name   string
	sets   []*set
	chains []*chain
}

type set struct {
	name string
	// keys are the concatenated key types (one for a plain set).
	keys []nftables.SetDatatype
	// data is the map's value type; TypeVerdict for a verdict map; zero
	// for a set.
	data  *nftables.SetDatatype
	elems []elem
}

type elem struct {
	key     [][]byte // one per key component
	keyText []string
	verdict *expr.Verdict
	val     []byte
	valText string
}

type chain struct {
	name  string
	base  *baseChain
	rules []rule
}

type baseChain struct {
	typ    nftables.ChainType
	hook   *nftables.ChainHook
	hookNm string
	prio   int32
	policy nftables.ChainPolicy
}

type rule struct {
	terms   []term
	comment string
}

// term is one match or statement of a rule.
type term interface {
	text() string
	exprs() []expr.Any
}

// field is something a rule loads into a register.
type field struct {
	name string
	len  uint32
	load func(reg uint32) expr.Any
}

func metaField(name string, key expr.MetaKey, n uint32) field {
	return field{name, n, func(r uint32) expr.Any { return &expr.Meta{Key: key, Register: r} }}
}

func payloadField(name string, base expr.PayloadBase, off, n uint32) field {
	return field{name, n, func(r uint32) expr.Any {
		return &expr.Payload{DestRegister: r, Base: base, Offset: off, Len: n}
	}}
}

var (
	fIIFName  = metaField("iifname", expr.MetaKeyIIFNAME, unix.IFNAMSIZ)
	fOIFName  = metaField("oifname", expr.MetaKeyOIFNAME, unix.IFNAMSIZ)
	fNFProto  = metaField("meta nfproto", expr.MetaKeyNFPROTO, 1)
	fL4Proto  = metaField("meta l4proto", expr.MetaKeyL4PROTO, 1)
	fIPSaddr  = payloadField("ip saddr", expr.PayloadBaseNetworkHeader, 12, 4)
	fIPDaddr  = payloadField("ip daddr", expr.PayloadBaseNetworkHeader, 16, 4)
	fSport    = payloadField("th sport", expr.PayloadBaseTransportHeader, 0, 2)
	fDport    = payloadField("th dport", expr.PayloadBaseTransportHeader, 2, 2)
	fICMPType = payloadField("icmp type", expr.PayloadBaseTransportHeader, 0, 1)
	fICMPCode = payloadField("icmp code", expr.PayloadBaseTransportHeader, 1, 1)
	fEthSaddr = payloadField("ether saddr", expr.PayloadBaseLLHeader, 6, 6)
	// fNexthop is the routing decision's next hop: the gateway of the
	// route (an ENI a route table names) or, on a connected route, the
	// destination itself.
	fNexthop = field{"rt ip nexthop", 4, func(r uint32) expr.Any { return &expr.Rt{Register: r, Key: expr.RtNexthop4} }}
	fEthType = payloadField("ether type", expr.PayloadBaseLLHeader, 12, 2)
	// ARP header fields for Ethernet/IPv4 ARP (checked by arpShape).
	fARPHead = payloadField("arp htype . ptype . hlen . plen", expr.PayloadBaseNetworkHeader, 0, 6)
	fARPSHA  = payloadField("arp saddr ether", expr.PayloadBaseNetworkHeader, 8, 6)
	fARPSPA  = payloadField("arp saddr ip", expr.PayloadBaseNetworkHeader, 14, 4)
)

// cmpTerm compares one field with a constant.
type cmpTerm struct {
	f    field
	neq  bool
	val  []byte
	show string
}

func (c cmpTerm) text() string {
	op := ""
	if c.neq {
		op = "!= "
	}
	return fmt.Sprintf("%s %s%s", c.f.name, op, c.show)
}

func (c cmpTerm) exprs() []expr.Any {
	op := expr.CmpOpEq
	if c.neq {
		op = expr.CmpOpNeq
	}
	return []expr.Any{c.f.load(1), &expr.Cmp{Op: op, Register: 1, Data: c.val}}
}

// prefixTerm matches an IPv4 field against a prefix (/0 matches all and
// is left out by the builders).
type prefixTerm struct {
	f field
	p netip.Prefix
}

func (p prefixTerm) text() string {
	if p.p.Bits() == 32 {
		return fmt.Sprintf("%s %s", p.f.name, p.p.Addr())
	}
	return fmt.Sprintf("%s %s", p.f.name, p.p.Masked())
}

func (p prefixTerm) exprs() []expr.Any {
	a := p.p.Masked().Addr().As4()
	if p.p.Bits() == 32 {
		return []expr.Any{p.f.load(1), &expr.Cmp{Op: expr.CmpOpEq, Register: 1, Data: a[:]}}
	}
	mask := net.CIDRMask(p.p.Bits(), 32)
	return []expr.Any{
		p.f.load(1),
		&expr.Bitwise{SourceRegister: 1, DestRegister: 1, Len: 4, Mask: mask, Xor: []byte{0, 0, 0, 0}},
		&expr.Cmp{Op: expr.CmpOpEq, Register: 1, Data: a[:]},
	}
}

// rangeTerm matches a 16-bit field (a port) in [lo, hi].
type rangeTerm struct {
	f      field
	lo, hi uint16
}

func (r rangeTerm) text() string {
	if r.lo == r.hi {
		return fmt.Sprintf("%s %d", r.f.name, r.lo)
	}
	return fmt.Sprintf("%s %d-%d", r.f.name, r.lo, r.hi)
}

func (r rangeTerm) exprs() []expr.Any {
	if r.lo == r.hi {
		return []expr.Any{r.f.load(1), &expr.Cmp{Op: expr.CmpOpEq, Register: 1, Data: binaryutil.BigEndian.PutUint16(r.lo)}}
	}
	return []expr.Any{r.f.load(1), &expr.Range{Op: expr.CmpOpEq, Register: 1,
		FromData: binaryutil.BigEndian.PutUint16(r.lo), ToData: binaryutil.BigEndian.PutUint16(r.hi)}}
}

// ctTerm matches conntrack state or status bits (any of them set).
type ctTerm struct {
	key  expr.CtKey
	bits uint32
	show string
}

func (c ctTerm) text() string {
	k := "state"
	if c.key == expr.CtKeySTATUS {
		k = "status"
	}
	return "ct " + k + " " + c.show
}

func (c ctTerm) exprs() []expr.Any {
	return []expr.Any{
		&expr.Ct{Register: 1, Key: c.key},
		&expr.Bitwise{SourceRegister: 1, DestRegister: 1, Len: 4,
			Mask: binaryutil.NativeEndian.PutUint32(c.bits), Xor: binaryutil.NativeEndian.PutUint32(0)},
		&expr.Cmp{Op: expr.CmpOpNeq, Register: 1, Data: binaryutil.NativeEndian.PutUint32(0)},
	}
}

const (
	ctEstablished = expr.CtStateBitESTABLISHED
	ctRelated     = expr.CtStateBitRELATED
	ctInvalid     = expr.CtStateBitINVALID
	ctStatusDNAT  = 1 << 5 // IPS_DST_NAT
)

// loadConcat loads fields into consecutive 32-bit registers starting at
// NFT_REG32_00, each padded to 4 bytes as the kernel expects of a
// concatenation, and returns the first register. A single field uses
// register 1 (the 16-byte NFT_REG_1).
func loadConcat(fs []field) ([]expr.Any, uint32) {
	if len(fs) == 1 {
		return []expr.Any{fs[0].load(1)}, 1
	}
	const reg32 = 8 // NFT_REG32_00
	var out []expr.Any
	r := uint32(reg32)
	for _, f := range fs {
		out = append(out, f.load(r))
		r += (f.len + 3) / 4
	}
	return out, reg32
}

func fieldNames(fs []field) string {
	names := make([]string, len(fs))
	for i, f := range fs {
		names[i] = f.name
	}
	return strings.Join(names, " . ")
}

// lookupTerm matches when the (concatenated) fields are in a named set.
type lookupTerm struct {
	fs     []field
	set    string
	invert bool
}

func (l lookupTerm) text() string {
	op := ""
	if l.invert {
		op = "!= "
	}
	return fmt.Sprintf("%s %s@%s", fieldNames(l.fs), op, l.set)
}

func (l lookupTerm) exprs() []expr.Any {
	out, reg := loadConcat(l.fs)
	return append(out, &expr.Lookup{SourceRegister: reg, SetName: l.set, Invert: l.invert})
}

// vmapTerm looks the fields up in a verdict map and applies the verdict;
// no element means no verdict and the rule falls through.
type vmapTerm struct {
	fs  []field
	set string
}

func (v vmapTerm) text() string { return fmt.Sprintf("%s vmap @%s", fieldNames(v.fs), v.set) }

func (v vmapTerm) exprs() []expr.Any {
	out, reg := loadConcat(v.fs)
	return append(out, &expr.Lookup{SourceRegister: reg, SetName: v.set, DestRegister: 0, IsDestRegSet: true})
}

// verdictTerm ends a rule.
type verdictTerm expr.Verdict

func (v verdictTerm) text() string { return verdictText(expr.Verdict(v)) }

func (v verdictTerm) exprs() []expr.Any {
	e := expr.Verdict(v)
	return []expr.Any{&e}
}

func verdictText(v expr.Verdict) string {
	switch v.Kind {
	case expr.VerdictAccept:
		return "accept"
	case expr.VerdictDrop:
		return "drop"
	case expr.VerdictReturn:
		return "return"
	case expr.VerdictJump:
		return "jump " + v.Chain
	case expr.VerdictGoto:
		return "goto " + v.Chain
	}
	return fmt.Sprintf("verdict(%d)", v.Kind)
}

var (
	accept = verdictTerm{Kind: expr.VerdictAccept}
	drop   = verdictTerm{Kind: expr.VerdictDrop}
	ret    = verdictTerm{Kind: expr.VerdictReturn}
)

func jump(c string) verdictTerm { return verdictTerm{Kind: expr.VerdictJump, Chain: c} }

// natTerm source- or destination-NATs to a fixed IPv4 address.
type natTerm struct {
	dnat bool
	to   netip.Addr
}

func (n natTerm) text() string {
	k := "snat"
	if n.dnat {
		k = "dnat"
	}
	return fmt.Sprintf("%s ip to %s", k, n.to)
}

func (n natTerm) exprs() []expr.Any {
	a := n.to.As4()
	t := expr.NATTypeSourceNAT
	if n.dnat {
		t = expr.NATTypeDestNAT
	}
	return []expr.Any{
		&expr.Immediate{Register: 1, Data: a[:]},
		&expr.NAT{Type: t, Family: unix.NFPROTO_IPV4, RegAddrMin: 1},
	}
}

// natMapTerm NATs to the address a map gives for a field.
type natMapTerm struct {
	dnat bool
	f    field
	m    string
}

func (n natMapTerm) text() string {
	k := "snat"
	if n.dnat {
		k = "dnat"
	}
	return fmt.Sprintf("%s ip to %s map @%s", k, n.f.name, n.m)
}

func (n natMapTerm) exprs() []expr.Any {
	t := expr.NATTypeSourceNAT
	if n.dnat {
		t = expr.NATTypeDestNAT
	}
	return []expr.Any{
		n.f.load(1),
		&expr.Lookup{SourceRegister: 1, SetName: n.m, DestRegister: 1, IsDestRegSet: true},
		&expr.NAT{Type: t, Family: unix.NFPROTO_IPV4, RegAddrMin: 1},
	}
}

// etherDep is the check nft puts before an "ether" match in an inet
// table (the input interface is Ethernet, so the link-layer offsets are
// right). nft adds it itself when it parses the rule and hides it when it
// lists one, so its text is empty: Render's text loads the same
// expressions as Apply sends.
var etherDep = rawTerm{ex: []expr.Any{
	&expr.Meta{Key: expr.MetaKeyIIFTYPE, Register: 1},
	&expr.Cmp{Op: expr.CmpOpEq, Register: 1, Data: binaryutil.NativeEndian.PutUint16(unix.ARPHRD_ETHER)},
}}

// Helpers building terms.

func ifname(name string) []byte { return append([]byte(name), 0) }

// ifnameKey is an interface name as a set key: IFNAMSIZ bytes, zero padded.
func ifnameKey(name string) []byte {
	b := make([]byte, unix.IFNAMSIZ)
	copy(b, name)
	return b
}

func iif(name string) term {
	return cmpTerm{f: fIIFName, val: ifname(name), show: fmt.Sprintf("%q", name)}
}

func oif(name string) term {
	return cmpTerm{f: fOIFName, val: ifname(name), show: fmt.Sprintf("%q", name)}
}

var protoNames = map[int]string{ProtoICMP: "icmp", ProtoTCP: "tcp", ProtoUDP: "udp"}

func protoText(p int) string {
	if n, ok := protoNames[p]; ok {
		return n
	}
	return fmt.Sprint(p)
}

func l4proto(p int) term {
	return cmpTerm{f: fL4Proto, val: []byte{byte(p)}, show: protoText(p)}
}

func nfproto(ipv4, neq bool) term {
	v, s := byte(unix.NFPROTO_IPV4), "ipv4"
	if !ipv4 {
		v, s = unix.NFPROTO_IPV6, "ipv6"
	}
	return cmpTerm{f: fNFProto, neq: neq, val: []byte{v}, show: s}
}

func ipAddr(f field, a netip.Addr) term {
	b := a.As4()
	return cmpTerm{f: f, val: b[:], show: a.String()}
}

func etherType(t uint16, show string) term {
	return cmpTerm{f: fEthType, val: binaryutil.BigEndian.PutUint16(t), show: show}
}

func u8(f field, v int) term { return cmpTerm{f: f, val: []byte{byte(v)}, show: fmt.Sprint(v)} }

func ctState(bits uint32) term {
	var names []string
	for _, b := range []struct {
		bit  uint32
		name string
	}{{ctInvalid, "invalid"}, {ctEstablished, "established"}, {ctRelated, "related"}} {
		if bits&b.bit != 0 {
			names = append(names, b.name)
		}
	}
	return ctTerm{key: expr.CtKeySTATE, bits: bits, show: strings.Join(names, ",")}
}

// Set key helpers.

func addrKey(a netip.Addr) []byte {
	b := a.As4()
	return b[:]
}

func sortElems(es []elem) {
	sort.Slice(es, func(i, j int) bool {
		return strings.Join(es[i].keyText, " . ") < strings.Join(es[j].keyText, " . ")
	})
}

// concatKey joins key components, padding each to 4 bytes as the
// kernel lays out a concatenation.
func concatKey(parts [][]byte) []byte {
	var out []byte
	for _, p := range parts {
		out = append(out, p...)
		if r := len(p) % 4; r != 0 {
			out = append(out, make([]byte, 4-r)...)
		}
	}
	return out
}

// rawTerm is a match whose text and expressions are written out by hand
// (used where nft's syntax names several fields checked at once).
type rawTerm struct {
	show string
	ex   []expr.Any
}

func (r rawTerm) text() string      { return r.show }
func (r rawTerm) exprs() []expr.Any { return r.ex }

// arpShape matches Ethernet/IPv4 ARP (htype 1, ptype 0x0800, hlen 6,
// plen 4), so the fixed offsets of the sender fields are the right ones.
var arpShape = rawTerm{
	show: "arp htype 1 arp ptype ip arp hlen 6 arp plen 4",
	ex: []expr.Any{
		fARPHead.load(1),
		&expr.Cmp{Op: expr.CmpOpEq, Register: 1, Data: []byte{0, 1, 8, 0, 6, 4}},
	},
}
