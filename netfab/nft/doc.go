// Package nft renders the packet filter of one VPC namespace from a Policy
// and applies it in one nftables transaction: stateless network ACLs at
// subnet boundaries, conntrack, stateful allow-only security groups, per
// port anti-spoofing, and the 1:1 and port-translating NAT of the internet
// and NAT gateways. It knows nothing of etcd or the EC2 API: netfab derives
// a Policy from its records and hands it over whole on every change.
//
// # API
//
//	Apply(ns string, p Policy) error  // replace labcloud's tables in ns
//	Delete(ns string) error           // remove them (namespace going away)
//	Render(p Policy) string           // the same ruleset as nft text
//
// ns is a namespace name under /var/run/netns (netfab's p-<vpc-id>), a path
// when it contains a slash, or "" for the caller's own namespace. The
// netlink socket is opened inside the namespace (WithNetNSFd), so no
// thread has to switch namespaces.
//
// # One transaction, fail closed
//
// Apply builds the whole ruleset, then sends in one batch, for each of
// table inet "labcloud" and table bridge "labcloud_bridge": add table
// (so the delete never fails), delete table, add table, chains, sets and
// maps with their elements, rules. nftables commits a batch atomically: if
// the kernel rejects any message, nothing changes and Apply returns the
// error. Applying the same Policy twice yields the same ruleset; whatever
// a Policy no longer names is gone.
//
// Every base chain that filters has policy drop and every allow rule is
// keyed on something the Policy names: a tap (bridge table), a bridge and
// an ENI address (forward), a bridge (input). So an ENI the installed
// ruleset does not know has no access at all: a tap created before its
// Apply, or whose Apply failed, has its frames dropped at the bridge, and
// even a frame that got past would find no security group chain. netfab
// must Apply a Policy (an empty one will do) to a new VPC namespace before
// it creates the first tap; a namespace without labcloud's tables filters
// nothing, which is why Delete is for namespaces that are going away.
//
// # table bridge labcloud_bridge: anti-spoofing
//
//	set tap_mac_ip  tap . MAC . IP of every ENI
//	set tap_mac     tap . MAC
//	chain prerouting (filter, prerouting, priority -300, policy drop):
//	    ether type ip  iifname . ether saddr . ip saddr @tap_mac_ip accept
//	    ether type ip  ip saddr 0.0.0.0 udp 68 -> 67,
//	                   iifname . ether saddr @tap_mac accept   (DHCP before an address)
//	    ether type arp (Ethernet/IPv4) iifname . ether saddr @tap_mac,
//	                   iifname . arp sha . arp spa @tap_mac_ip accept
//	    ether type arp (Ethernet/IPv4) arp spa 0.0.0.0, sender MACs @tap_mac
//	                   accept                                  (RFC 5227 probe)
//	    (policy drop: other MACs or addresses, IPv6, VLAN tags, unknown ports)
//
// An ENI whose source/destination check is off (ENI.NoSourceDestCheck, a
// NAT instance) is also in set tap_mac_any_ip (tap . MAC), and a second
// rule accepts IPv4 from its tap and MAC with any source address. Its ARP
// stays bound to its own address, and both are emitted only when some ENI
// has the check off.
//
// The checks are set lookups, so the rule count is the same for one ENI
// or thousands (a chain per tap made Apply of 5000 ENIs take seconds).
// Frames the router itself sends leave through the bridge's output hook
// and are not filtered here. Any port of any bridge in the namespace that
// is not a known tap gets nothing through, not even DHCP; labcloud puts
// only its own bridges in a VPC namespace. After this table the router
// can trust an ENI's source address, which the security groups and the
// metadata service key on, and its ARP cache cannot be poisoned.
//
// # table inet labcloud
//
// The forward chain follows DESIGN's order:
//
//	chain forward (filter, forward, priority 0, policy drop):
//	    meta nfproto != ipv4 drop      VPCs are IPv4-only
//	    jump nacl                      1. NACLs, stateless
//	    ct state established,related accept   2. conntrack
//	    ct state invalid drop
//	    iifname . ip saddr vmap @sg_out    3. egress groups of the sender
//	    oifname . ip daddr vmap @sg_in     3. ingress groups of the receiver
//	    iifname . ip saddr @enis oifname . ip daddr @enis accept
//	    iifname GW ct status dnat oifname . ip daddr @enis accept
//	    iifname . ip saddr @enis oifname GW ip saddr @public_enis accept  4.
//	    iifname . ip saddr @enis oifname GW ip saddr <NAT source> accept  4.
//
// With ENIs whose source/destination check is off, two lookups follow the
// group maps and three accepts the ENI-to-ENI one:
//
//	iifname . ether saddr vmap @sg_out_fwd       egress of such a sender
//	oifname . rt ip nexthop vmap @sg_in_fwd      ingress of such a receiver
//	iifname . ip saddr @enis oifname . rt ip nexthop @fwd_receivers accept
//	iifname . ether saddr @fwd_senders oifname . ip daddr @enis accept
//	iifname . ether saddr @fwd_senders oifname . rt ip nexthop @fwd_receivers accept
//
// Such an ENI is found as a sender by bridge . MAC (the bridge table ties
// the MAC to its tap), whatever the source address, and as a receiver by
// bridge . the routing decision's next hop (rt ip nexthop: the ENI a
// route table names, or the destination itself on a connected route),
// whatever the destination. It is in the _fwd maps instead of @sg_out and
// @sg_in, so its groups are evaluated once per packet. An ENI with the
// check on that a route names receives only what is addressed to it: the
// rest finds no accept, as on AWS.
//
// Routed traffic enters and leaves through the subnet bridges (the taps
// are isolated ports, proxy_arp_pvlan makes the router answer every ARP,
// so even same-subnet traffic is hairpinned through here), so
// iifname/oifname is a bridge or the gateway link.
//
// NACLs: chain nacl returns at once when iifname . oifname is in @hairpin
// (same bridge: same subnet, not subject to NACLs); otherwise it jumps,
// through the verdict maps @nacl_out (by iifname) and @nacl_in (by
// oifname), to nacl_out_<subnet> of the source subnet, then nacl_in_<subnet>
// of the destination. The gateway link is in neither map, so traffic to
// or from the internet meets the subnet side's list, and, through a NAT
// gateway, the list of the gateway's subnet (NAT.SubnetID): rules of
// chain nacl match the gateway link and the NAT gateway's source subnets
// and jump to that subnet's nacl_in_ and nacl_out_ chains in both
// directions. Those take the peer from ip saddr (inbound) and ip daddr
// (outbound), which are the four checks AWS makes at the gateway's
// interface (private host in, internet out; internet in, private host
// out); replies are seen after the kernel undid the NAT. A NACL chain
// has the entries by ascending rule number, allow = return (on to the
// next stage), deny = drop, and a final drop (AWS's "*" rule). NACLs come
// before conntrack, so replies get no free pass: an outbound list without
// the ephemeral ports breaks the return traffic of inbound connections,
// which is the lesson AWS's NACLs teach.
//
// Security groups: the key of @sg_out and @sg_in is bridge . ENI address
// (so an address arriving on the wrong link, e.g. a private address
// spoofed from the internet, is no ENI). Their verdict jumps to one chain
// per distinct set of groups, sgo_<ids> / sgi_<ids>, holding the union of
// those groups' rules (each rule = return, then drop; an unconditional
// rule, such as the default egress, makes the chain a bare return). So
// an ENI pays one hash lookup however many ENIs there are, and ENIs with
// the same groups share chains. A rule naming a group matches
// ip saddr/daddr @members_<group>, a set of the current private IPs of
// that group's ENIs: membership changes touch set elements only. A
// packet between two ENIs must pass the sender's egress and the
// receiver's ingress; to or from the gateway only the ENI's side. After
// the group chains, the accept rules admit only what has an ENI at an
// end that was checked: ENI to ENI; from the internet only connections
// that were DNATed to a public IP; to the internet only from ENIs with a
// public IP or in a NAT gateway's source subnets (AWS's internet gateway
// drops traffic of private-only addresses).
//
// Rule changes apply to new connections. Conntrack accepts packets of an
// established connection before the groups are consulted, so a
// connection admitted by a rule that is later removed keeps flowing, as
// it does on AWS for tracked connections. NACL changes, being stateless,
// apply to every packet at once.
//
// The router's own services, chain input (filter, input, policy drop):
// lo; established/related; from the subnet bridges DHCP (udp/67), DNS
// (udp and tcp/53 to a router address, base+1 or base+2), the metadata
// service (tcp 169.254.169.254:80) and ping to a router address.
// Nothing else, and from the gateway link only replies. Security groups
// and NACLs do not apply, as on AWS.
//
// NAT: prerouting (nat, priority -100) DNATs what arrives on the gateway
// link through @dnat_public (public IP -> private IP); postrouting (nat,
// priority 100) first SNATs each NAT gateway's source subnets to its
// public IP (port translation comes with SNAT to one address), then
// 1:1 through @snat_private (private -> public). The maps keep the rule
// count flat however many public IPs there are.
//
// Every rule that reads an IPv4 header field carries an explicit "meta
// nfproto ipv4", as nft adds when it parses such a rule, so that `nft
// list ruleset` prints "ip saddr" and the ruleset Apply loads is
// identical to the one `nft -f` loads from Render's text (a test checks
// both load the same).
//
// # Limits
//
// IPv4 only. No hairpin NAT (an ENI reaching another's public IP goes out
// and back through the gateway's peer). NAT gateways are modelled at the
// gateway link, not as an ENI in a public subnet; their subnet's NACL is
// applied there (see NACLs), with the ports of the private side (AWS
// checks the translated port on the way back). Rules of thousands are evaluated
// linearly per new connection inside the ENI's chain; established traffic
// never reaches them.
package nft
