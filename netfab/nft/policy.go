package nft

import (
	"net"
	"net/netip"
)

// Protocol numbers as the EC2 API carries them; -1 means every protocol.
const (
	ProtoAll  = -1
	ProtoICMP = 1
	ProtoTCP  = 6
	ProtoUDP  = 17
)

// Policy is everything the filter of one VPC namespace enforces. Apply
// replaces whatever the namespace had with exactly this.
type Policy struct {
	// VPCCIDR is the VPC's primary CIDR block.
	VPCCIDR netip.Prefix
	// Subnets with their bridges and network ACLs.
	Subnets []Subnet
	// ENIs are the instances' network interfaces (taps on the subnets'
	// bridges).
	ENIs []ENI
	// Groups are the security groups the ENIs name, and the groups
	// their rules reference.
	Groups []Group
	// Gateway is the VPC end of the internet gateway's veth, nil while
	// no internet gateway is attached.
	Gateway *Gateway
}

// Subnet is one subnet: its bridge in the VPC namespace, its CIDR and the
// entries of its network ACL.
type Subnet struct {
	ID     string
	Bridge string
	CIDR   netip.Prefix
	// Inbound and Outbound are the NACL's entries (any order; the filter
	// evaluates them by ascending RuleNumber, first match wins, and
	// denies what none matches: AWS's final "*" rule).
	Inbound, Outbound []ACLEntry
}

// ACLEntry is one numbered NACL rule.
type ACLEntry struct {
	RuleNumber int // 1-32766
	Protocol   int // ProtoAll or an IP protocol number
	// FromPort-ToPort for TCP and UDP (both 0 or the full range mean
	// every port).
	FromPort, ToPort int
	// ICMPType and ICMPCode for ICMP, -1 meaning any.
	ICMPType, ICMPCode int
	CIDR               netip.Prefix
	Allow              bool
}

// ENI is an instance network interface: a tap on its subnet's bridge.
type ENI struct {
	ID       string
	SubnetID string
	Tap      string
	MAC      net.HardwareAddr
	IP       netip.Addr
	// Groups are the IDs of its security groups (1-5); the ENI gets the
	// union of their rules.
	Groups []string
	// PublicIP is its public or Elastic IP (1:1 NAT at the gateway),
	// invalid when it has none.
	PublicIP netip.Addr
	// NoSourceDestCheck is EC2's SourceDestCheck=false (a NAT instance,
	// a router appliance). With the check on (false here, the default)
	// the ENI may send IPv4 only from IP and receives only what is
	// addressed to IP. Off, it may send from any source address and
	// receives whatever a route table routes to it (IP as the next hop),
	// whatever the destination; its MAC stays tied to its tap and its
	// security groups and its subnet's NACL still see every packet.
	NoSourceDestCheck bool
}

// Group is a security group: allow-only rules, stateful.
type Group struct {
	ID              string
	Ingress, Egress []Rule
}

// Rule is one security group permission.
type Rule struct {
	Protocol int // ProtoAll or an IP protocol number
	// FromPort-ToPort for TCP and UDP; for ICMP FromPort is the type and
	// ToPort the code, -1 meaning any.
	FromPort, ToPort int
	// CIDRs are the peer address ranges.
	CIDRs []netip.Prefix
	// Groups are peer security group IDs: the rule matches the current
	// private IPs of the ENIs in those groups.
	Groups []string
}

// Gateway is the internet gateway as the VPC router sees it: a veth to
// the host's public bridge.
type Gateway struct {
	// Link is the veth's name inside the VPC namespace.
	Link string
	// NATs are the NAT gateways: traffic from Sources leaving through
	// Link is source-NATed to PublicIP (port-translating), before any
	// 1:1 mapping of an ENI's public IP.
	NATs []NAT
}

// NAT is one NAT gateway.
type NAT struct {
	ID       string
	PublicIP netip.Addr
	// SubnetID is the subnet the NAT gateway's interface is in. Traffic
	// through the gateway crosses that subnet's network ACL as in AWS:
	// inbound and outbound entries, on the way out and on the way back.
	// Empty: no subnet's NACL is added.
	SubnetID string
	// Sources are the CIDRs of the subnets whose route tables send
	// internet traffic to this NAT gateway.
	Sources []netip.Prefix
}
