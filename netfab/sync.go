package netfab

import (
	"context"
	"fmt"
	"net/netip"
	"sort"

	"github.com/labcloud/labcloud/internal/store"
)

// vpcState is every record of one VPC, as the kernel sync needs them.
type vpcState struct {
	VPC       VPC
	Subnets   []subnetRecord // sorted by CIDR
	ENIs      []ENI
	Groups    []SecurityGroup
	ACLs      []NetworkACL
	Tables    []RouteTable
	Gateway   *InternetGateway // attached to this VPC, nil if none
	NATs      []NatGateway     // not deleted
	Addresses []Address        // the account's Elastic IPs
}

// loadVPCState reads a VPC's records.
func (f *Fabric) loadVPCState(ctx context.Context, acct, vpcID string) (vpcState, error) {
	var s vpcState
	var err error
	if s.VPC, s.Subnets, err = f.loadVPC(ctx, acct, vpcID); err != nil {
		return s, err
	}
	enis, err := store.ListAs[ENI](ctx, f.st, "enis/"+acct+"/")
	if err != nil {
		return s, err
	}
	for _, e := range enis {
		if e.VPCID == vpcID {
			s.ENIs = append(s.ENIs, e)
		}
	}
	sort.Slice(s.ENIs, func(i, j int) bool { return s.ENIs[i].ID < s.ENIs[j].ID })
	groups, err := store.ListAs[SecurityGroup](ctx, f.st, "sgs/"+acct+"/")
	if err != nil {
		return s, err
	}
	for _, g := range groups {
		if g.VPCID == vpcID {
			s.Groups = append(s.Groups, g)
		}
	}
	acls, err := store.ListAs[NetworkACL](ctx, f.st, "nacls/"+acct+"/")
	if err != nil {
		return s, err
	}
	for _, a := range acls {
		if a.VPCID == vpcID {
			s.ACLs = append(s.ACLs, a)
		}
	}
	tables, err := store.ListAs[RouteTable](ctx, f.st, "rtbs/"+acct+"/")
	if err != nil {
		return s, err
	}
	for _, t := range tables {
		if t.VPCID == vpcID {
			s.Tables = append(s.Tables, t)
		}
	}
	igws, err := store.ListAs[InternetGateway](ctx, f.st, "igws/"+acct+"/")
	if err != nil {
		return s, err
	}
	for _, g := range igws {
		if g.VPCID == vpcID {
			g := g
			s.Gateway = &g
		}
	}
	nats, err := store.ListAs[NatGateway](ctx, f.st, "natgws/"+acct+"/")
	if err != nil {
		return s, err
	}
	for _, n := range nats {
		if n.VPCID == vpcID && n.State != "deleted" && n.State != "deleting" && n.State != "failed" {
			s.NATs = append(s.NATs, n)
		}
	}
	if s.Addresses, err = store.ListAs[Address](ctx, f.st, "eips/"+acct+"/"); err != nil {
		return s, err
	}
	return s, nil
}

// publicIPOf is the public address an ENI is reached at: its Elastic IP
// if one is associated, else its auto-assigned public IP.
func (s vpcState) publicIPOf(e ENI) netip.Addr {
	for _, a := range s.Addresses {
		if a.NetworkInterfaceID == e.ID && a.PublicIP != "" {
			ip, _ := netip.ParseAddr(a.PublicIP)
			return ip
		}
	}
	ip, _ := netip.ParseAddr(e.PublicIP)
	return ip
}

// publicAddrs are the addresses the gateway link must answer for.
func (s vpcState) publicAddrs() []netip.Addr {
	var out []netip.Addr
	for _, e := range s.ENIs {
		out = append(out, s.publicIPOf(e))
	}
	for _, n := range s.NATs {
		ip, _ := netip.ParseAddr(n.PublicIP)
		out = append(out, ip)
	}
	return sortedAddrs(out)
}

// syncEdge builds or removes the VPC's internet gateway plumbing: the
// public bridge, the veth and the public addresses on it.
func (f *Fabric) syncEdge(s vpcState) (gwLink string, err error) {
	host, inside := f.gatewayHostName(s.VPC.ID), f.gatewayVPCName(s.VPC.ID)
	f.kmu.Lock()
	defer f.kmu.Unlock()
	if s.Gateway == nil {
		if err := deleteLink(host); err != nil { // its peer in the VPC namespace goes with it
			return "", fmt.Errorf("detaching the internet gateway of %s: %w", s.VPC.ID, err)
		}
		return "", nil
	}
	if err := ensurePublicBridge(f.publicBridgeName(), f.edge.PublicCIDR); err != nil {
		return "", err
	}
	if err := ensureGatewayVeth(host, inside, f.publicBridgeName(), s.VPC.Namespace); err != nil {
		return "", err
	}
	addrs := s.publicAddrs()
	if err := inNamespace(s.VPC.Namespace, func() error { return configureGatewayLink(inside, addrs) }); err != nil {
		return "", fmt.Errorf("configuring the internet gateway of %s: %w", s.VPC.ID, err)
	}
	return inside, nil
}
