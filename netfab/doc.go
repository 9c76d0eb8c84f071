// Package netfab is the VPC network fabric: per VPC a network namespace
// acting as the router, per subnet a bridge, per ENI a tap; stateless NACLs
// and stateful security groups in one nftables table per VPC; DHCP, DNS and
// the instance metadata service inside the VPC namespace; internet and NAT
// gateways towards a host bridge holding the public address pool.
//
// # What is built
//
// Default and custom VPCs with subnets, route tables, internet and NAT
// gateways, public and Elastic IPs, security groups and network ACLs (the
// EC2 VPC API's records, in etcd), and their enforcement: after every
// mutation changed() re-derives a VPC's kernel state from its records
// (sync_kernel.go): namespace and bridges, DHCP, the metadata service, the
// resolver and the API endpoint proxy, the internet gateway's veth to the
// host's public bridge (edge.go), policy routing per subnet, and one
// nftables transaction for the filter (package nft). docs/architecture.md
// has the picture.
//
// # Names
//
// With NamePrefix p (1-6 characters, default "lc"):
//
//	netns  p-<vpc-id>          mounted at /var/run/netns/p-<vpc-id>
//	bridge pb<last 8 hex of the subnet ID>, inside the VPC namespace
//	tap    pt<last 8 hex of the ENI ID>, inside the VPC namespace
//	veth   pg<last 8 hex of the VPC ID> on the host's public bridge ppub,
//	       its peer pi<last 8 hex of the VPC ID> inside the VPC namespace
//	       (the internet gateway)
//
// Interface names live inside the VPC namespace only, so they need to be
// unique per VPC; all fit IFNAMSIZ. Reconcile removes namespaces named p-*
// and interfaces named pb<8 hex>/pt<8 hex> that no record owns, and nothing
// else.
//
// # Addresses and kernel settings
//
// In a VPC namespace: lo is up and holds 169.254.169.254/32 (and, once
// the resolver runs, 169.254.169.253/32; see DNS); ip_forward=1,
// send_redirects=0 (all, default and every bridge), the three
// net.bridge.bridge-nf-call-* sysctls 0. Each subnet bridge has a fixed
// random MAC (so that adding ports never changes the router's MAC), holds
// base+1 (router) and base+2 (DNS) with the subnet's prefix length, and has
// proxy_arp_pvlan=1. Taps are persistent, single-queue (QEMU must not ask
// for multi_queue), IFF_NO_PI|IFF_VNET_HDR, owned by root, isolated bridge
// ports: guests of one subnet reach each other only through the router,
// which answers their ARP with the bridge MAC and forwards.
//
// Instances reach the metadata service through their default route (the
// router, base+1), which delivers 169.254.169.254 locally; a guest that
// puts 169.254.0.0/16 on its link also works, as the router answers ARP for
// its local addresses.
//
// # DHCP
//
// One server per subnet, in Go (the packet codec is
// github.com/insomniacslk/dhcp/dhcpv4). Its UDP socket is created inside
// the VPC namespace, bound to 0.0.0.0:67 with SO_BINDTODEVICE=<bridge>
// (and SO_REUSEADDR, so the servers of all subnets share the port). Leases
// are static, by MAC, for the ENI's life: DISCOVER gets OFFER, REQUEST gets
// ACK (NAK for another address), INFORM gets ACK, RELEASE and DECLINE are
// ignored, unknown MACs get no answer. Options: mask, router base+1, DNS
// base+2, hostname ip-a-b-c-d, domain <region>.compute.internal, broadcast
// address, MTU 1500 (the bridges' MTU; AWS's 9001 would need jumbo
// bridges), lease 1 h, T1 30 min, T2 52.5 min. Replies go to the limited
// broadcast address unless the client already has its address (renewal:
// unicast to ciaddr); a broadcast stays on the subnet's bridge.
//
// # DNS (the Amazon-provided resolver)
//
// One resolver per VPC, in Go (github.com/miekg/dns; dns.go). Its UDP and
// TCP sockets are opened inside the VPC namespace, one pair per address:
// base+2 of every subnet (the address the DHCP lease names and the bridge
// holds), base+2 of the VPC's CIDR and 169.254.169.253 (both put on lo as
// /32 when no bridge holds them). Binding each address rather than
// 0.0.0.0:53 answers exactly where AWS does and nowhere else: not on the
// router's base+1 or 169.254.169.254, and never on the address the
// namespace will hold towards the public bridge (no open resolver for the
// "internet"). Queries from outside the VPC's CIDR blocks get REFUSED.
//
// It answers, with TTL 60:
//
//	ip-a-b-c-d.<region>.compute.internal  A a.b.c.d for every address of
//	                                      the VPC's blocks, ENI or not (AWS
//	                                      resolves these by pattern)
//	d.c.b.a.in-addr.arpa                  PTR to that name, same addresses
//	ec2-w-x-y-z.<region>.compute.amazonaws.com
//	                                      when w.x.y.z is the public IPv4 of
//	                                      an ENI (Options.PublicIPv4): its
//	                                      private address if the ENI is in
//	                                      the asking VPC (AWS's split
//	                                      horizon), else w.x.y.z; and the
//	                                      PTR of w.x.y.z back to that name
//
// The domain is the one DHCP hands out, so a guest's search list makes a
// bare ip-a-b-c-d resolve. Other names under the two domains get NXDOMAIN
// with an SOA (negative TTL 60), AAAA and other types NODATA. Every other
// name (the internet) is REFUSED at once: there is no upstream on a lab
// host, and REFUSED makes glibc fail at once without walking the search
// list or waiting for a timeout (SERVFAIL would also make
// systemd-resolved degrade the server and invites caching as a failure).
// With Options.DNSUpstream set, such names are forwarded instead (from
// the daemon's namespace, over the client's transport; SERVFAIL if the
// upstream fails).
//
// Fabric.SetDNSSupport(vpc, false) is enableDnsSupport=false: the
// resolver's sockets close, so queries get ICMP port unreachable (UDP, as
// the kernel's rate limit allows) or a reset (TCP). The switch is kept in
// memory across ensureServers/Close/Reconcile; whoever records the VPC
// attribute applies it again after a daemon restart.
//
// # Instance metadata service
//
// One HTTP server per VPC, listening on 169.254.169.254:80 inside the VPC
// namespace (the listener is opened there; the serving goroutines may run
// on any thread). The caller is identified by (VPC, source IP) through
// MetadataSource. IMDSv1 GET and IMDSv2: PUT /latest/api/token with
// X-aws-ec2-metadata-token-ttl-seconds 1-21600 (else 400; a request with
// X-Forwarded-For gets 403, GET on the token path 405) returns a token that
// is an HMAC over (VPC, caller IP, expiry) with a per-process key: no
// state, not usable by another instance, invalid after a daemon restart
// (clients then fetch a new one, as after expiry). A present but invalid
// token gives 401, as does a missing one when HttpTokens is "required".
// HttpEndpoint "disabled" gives 403 for every path. The token response
// leaves with IP TTL = HopLimit (AWS's HttpPutResponseHopLimit); other
// responses use the system default. HTTP/1.0 requests (busybox nc) are
// answered and the connection closed.
//
// # Threads and namespaces
//
// Everything that creates a kernel object or a socket inside a VPC
// namespace runs through InNamespace: a fresh goroutine locked to its OS
// thread, setns, fn, setns back (a thread that cannot go back is left
// locked and dies with the goroutine). Taps must be created there because
// TUNSETIFF creates the device in the calling thread's namespace; QEMU
// joins the same namespace (ENI.NetNSPath) before opening the tap by name.
//
// # Records
//
// etcd keys: vpcs/<acct>/<vpc-id>, subnets/<acct>/<subnet-id>,
// enis/<acct>/<eni-id>, enis-by-ip/<vpc-id>/<ip> (created in the same Txn
// as the ENI, which is what allocates the address: a concurrent allocation
// of the same address fails with ErrExists and retries),
// enis-by-instance/<acct>/<instance-id> (same Txn; makes CreateENI
// idempotent per instance), and default-vpcs/<acct> (created in the same Txn as the default VPC, so two
// concurrent EnsureDefaultVPC calls agree on one VPC). Generated names (tap,
// MAC, bridge, bridge MAC, namespace) are recorded before the kernel
// objects are made, so Reconcile can finish an interrupted create.
package netfab
