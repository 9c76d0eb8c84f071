package netfab

import (
	"context"
	"fmt"
	"net"
	"net/netip"
	"sync"

	"github.com/labcloud/labcloud/netfab/nft"
)

// changed brings the host in line with a VPC's records after a mutation:
// namespace, bridges and servers, the internet gateway's veth and public
// addresses, the subnets' policy routing, and the nftables ruleset (one
// transaction). Every mutation of a VPC's objects calls it after writing
// its records; CreateENI calls it before making the tap, so a new tap is
// already known to the filter (an unknown one gets nothing through). It
// is idempotent; calls for one VPC run one at a time.
func (f *Fabric) changed(ctx context.Context, acct, vpcID string) error {
	unlock := f.lockVPC(vpcID)
	defer unlock()
	s, err := f.loadVPCState(ctx, acct, vpcID)
	if err != nil {
		return err
	}
	if err := f.SetDNSSupport(vpcID, s.VPC.EnableDNSSupport); err != nil {
		return err
	}
	if err := f.ensureVPC(ctx, s.VPC, s.Subnets); err != nil {
		return err
	}
	gw, err := f.syncEdge(s)
	if err != nil {
		return err
	}
	eff := s.routesOf()
	if err := f.syncRoutes(s, eff, gw); err != nil {
		return err
	}
	if err := nft.Apply(s.VPC.Namespace, f.policyOf(s, eff, gw)); err != nil {
		return fmt.Errorf("applying the packet filter of %s: %w", vpcID, err)
	}
	return nil
}

// lockVPC serialises the syncs of one VPC.
func (f *Fabric) lockVPC(vpcID string) func() {
	m, _ := f.syncMu.LoadOrStore(vpcID, &sync.Mutex{})
	mu := m.(*sync.Mutex)
	mu.Lock()
	return mu.Unlock
}

func mustPrefix(s string) netip.Prefix {
	p, _ := netip.ParsePrefix(s)
	return p.Masked()
}

// routesOf resolves every subnet's route table.
func (s vpcState) routesOf() map[string][]ResolvedRoute {
	var igws []InternetGateway
	if s.Gateway != nil {
		igws = append(igws, *s.Gateway)
	}
	return effectiveRoutes(s.VPC, s.Subnets, s.Tables, igws, s.NATs, s.ENIs)
}

// syncRoutes installs the subnets' policy routing from their resolved
// route tables.
func (f *Fabric) syncRoutes(s vpcState, eff map[string][]ResolvedRoute, gw string) error {
	bridgeOfSubnet := map[string]string{}
	for _, sn := range s.Subnets {
		bridgeOfSubnet[sn.ID] = sn.Bridge
	}
	bridgeOfIP := map[string]string{}
	for _, e := range s.ENIs {
		bridgeOfIP[e.PrivateIP] = bridgeOfSubnet[e.SubnetID]
	}
	var tables []subnetRouting
	for _, sn := range s.Subnets {
		sr := subnetRouting{CIDR: mustPrefix(sn.CIDR)}
		for _, r := range eff[sn.ID] {
			dst := mustPrefix(r.DestinationCIDR)
			switch r.Kind {
			case TargetLocal:
				continue
			case TargetIGW, TargetNAT:
				sr.Routes = append(sr.Routes, kernelRoute{Dst: dst, Kind: toGateway})
			case TargetENI:
				via, _ := netip.ParseAddr(r.NextHop)
				sr.Routes = append(sr.Routes, kernelRoute{Dst: dst, Kind: toENI, Via: via, Bridge: bridgeOfIP[r.NextHop]})
			default:
				sr.Routes = append(sr.Routes, kernelRoute{Dst: dst, Kind: toNowhere})
			}
		}
		tables = append(tables, sr)
	}
	f.kmu.Lock()
	defer f.kmu.Unlock()
	if err := inNamespace(s.VPC.Namespace, func() error { return syncRouting(tables, gw, f.edge) }); err != nil {
		return fmt.Errorf("routing of %s: %w", s.VPC.ID, err)
	}
	return nil
}

// policyOf derives the VPC's packet filter from its records.
func (f *Fabric) policyOf(s vpcState, eff map[string][]ResolvedRoute, gw string) nft.Policy {
	p := nft.Policy{VPCCIDR: mustPrefix(s.VPC.CIDR)}
	acls := map[string]NetworkACL{}
	for _, a := range s.ACLs {
		acls[a.ID] = a
	}
	for _, sn := range s.Subnets {
		id := sn.NetworkACLID
		if id == "" {
			id = s.VPC.DefaultNetworkACLID
		}
		in, out := nftACL(acls[id]) // a missing ACL has no entries: deny all
		p.Subnets = append(p.Subnets, nft.Subnet{ID: sn.ID, Bridge: sn.Bridge, CIDR: mustPrefix(sn.CIDR), Inbound: in, Outbound: out})
	}
	var withTaps []ENI
	for _, e := range s.ENIs {
		if e.Tap == "" {
			continue // a NAT gateway's address: no port
		}
		if len(e.Groups) == 0 && s.VPC.DefaultSecurityGroupID != "" {
			e.Groups = []string{s.VPC.DefaultSecurityGroupID} // recorded before groups existed
		}
		withTaps = append(withTaps, e)
		mac, _ := net.ParseMAC(e.MAC)
		ip, _ := netip.ParseAddr(e.PrivateIP)
		p.ENIs = append(p.ENIs, nft.ENI{ID: e.ID, SubnetID: e.SubnetID, Tap: e.Tap, MAC: mac, IP: ip,
			Groups: e.Groups, PublicIP: s.publicIPOf(e), NoSourceDestCheck: e.NoSourceDestCheck})
	}
	p.Groups = nftGroups(s.Groups, withTaps)
	if gw != "" {
		p.Gateway = &nft.Gateway{Link: gw}
		for _, n := range s.NATs {
			pub, err := netip.ParseAddr(n.PublicIP)
			if err != nil {
				continue
			}
			nat := nft.NAT{ID: n.ID, PublicIP: pub, SubnetID: n.SubnetID}
			for _, sn := range s.Subnets {
				for _, r := range eff[sn.ID] {
					if r.Kind == TargetNAT && r.TargetID == n.ID {
						nat.Sources = append(nat.Sources, mustPrefix(sn.CIDR))
						break
					}
				}
			}
			if len(nat.Sources) > 0 {
				p.Gateway.NATs = append(p.Gateway.NATs, nat)
			}
		}
	}
	return p
}
