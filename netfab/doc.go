// Package netfab is the VPC network fabric: per VPC a network namespace
// acting as the router, per subnet a bridge, per ENI a tap; stateless NACLs
// and stateful security groups in one nftables table per VPC; DHCP, DNS and
// the instance metadata service inside the VPC namespace; internet and NAT
// gateways towards a host bridge holding the public address pool.
package netfab
