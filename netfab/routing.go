package netfab

import (
	"context"
	"sort"
)

// TargetKind is what a route resolves to on the host.
type TargetKind string

// Route target kinds.
const (
	// TargetLocal is the VPC's own block: delivered on the subnet bridges.
	TargetLocal TargetKind = "local"
	// TargetIGW goes out through the internet gateway (the veth to the
	// host's public bridge).
	TargetIGW TargetKind = "igw"
	// TargetNAT goes to a NAT gateway, which masquerades to its public IP.
	TargetNAT TargetKind = "nat"
	// TargetENI goes to an interface's private IP (a NAT instance,
	// an appliance).
	TargetENI TargetKind = "eni"
	// TargetBlackhole drops: the target is detached, deleted or gone.
	TargetBlackhole TargetKind = "blackhole"
)

// ResolvedRoute is one route of a subnet's effective table with its
// target resolved against the current records.
type ResolvedRoute struct {
	DestinationCIDR string
	Kind            TargetKind
	// TargetID is the igw-, nat- or eni- ID ("local" for the local route).
	TargetID string
	// NAT: the gateway's public IP, its own private IP and subnet.
	NatPublicIP, NatPrivateIP, NatSubnetID string
	// ENI: the interface's private IP (the next hop).
	NextHop string
	// RouteTableID is the table the route came from.
	RouteTableID string
}

// effectiveRoutes computes, per subnet ID of vpc, the routes in force: the
// route table explicitly associated with the subnet, else the VPC's main
// table; the local route first, then the others from the most specific
// destination, each resolved to a target kind. It reads nothing but its
// arguments, so the kernel sync and its tests share it.
func effectiveRoutes(vpc VPC, subnets []subnetRecord, rtbs []RouteTable, igws []InternetGateway, nats []NatGateway, enis []ENI) map[string][]ResolvedRoute {
	var main *RouteTable
	bySubnet := map[string]*RouteTable{}
	for i := range rtbs {
		t := &rtbs[i]
		if t.VPCID != vpc.ID {
			continue
		}
		if t.Main {
			main = t
		}
		for _, a := range t.Associations {
			bySubnet[a.SubnetID] = t
		}
	}
	out := map[string][]ResolvedRoute{}
	for _, s := range subnets {
		if s.VPCID != vpc.ID {
			continue
		}
		t := bySubnet[s.ID]
		if t == nil {
			t = main
		}
		rs := []ResolvedRoute{{DestinationCIDR: vpc.CIDR, Kind: TargetLocal, TargetID: "local"}}
		if t != nil {
			rs[0].RouteTableID = t.ID
			routes := append([]Route(nil), t.Routes...)
			sortRoutes(routes)
			for _, r := range routes {
				rr := resolveRoute(vpc, r, igws, nats, enis)
				rr.RouteTableID = t.ID
				rs = append(rs, rr)
			}
		}
		out[s.ID] = rs
	}
	return out
}

// resolveRoute resolves one stored route.
func resolveRoute(vpc VPC, r Route, igws []InternetGateway, nats []NatGateway, enis []ENI) ResolvedRoute {
	rr := ResolvedRoute{DestinationCIDR: r.DestinationCIDR, Kind: TargetBlackhole}
	switch {
	case r.GatewayID != "":
		rr.TargetID = r.GatewayID
		for _, g := range igws {
			if g.ID == r.GatewayID && g.VPCID == vpc.ID {
				rr.Kind = TargetIGW
			}
		}
	case r.NatGatewayID != "":
		rr.TargetID = r.NatGatewayID
		for _, n := range nats {
			if n.ID == r.NatGatewayID && n.VPCID == vpc.ID && (n.State == "available" || n.State == "pending") {
				rr.Kind, rr.NatPublicIP, rr.NatPrivateIP, rr.NatSubnetID = TargetNAT, n.PublicIP, n.PrivateIP, n.SubnetID
			}
		}
	case r.NetworkInterfaceID != "":
		rr.TargetID = r.NetworkInterfaceID
		for _, e := range enis {
			if e.ID == r.NetworkInterfaceID && e.VPCID == vpc.ID {
				rr.Kind, rr.NextHop = TargetENI, e.PrivateIP
			}
		}
	case r.InstanceID != "":
		rr.TargetID = r.InstanceID
		var found []ENI
		for _, e := range enis {
			if e.InstanceID == r.InstanceID && e.VPCID == vpc.ID {
				found = append(found, e)
			}
		}
		sort.Slice(found, func(i, j int) bool { return found[i].ID < found[j].ID })
		if len(found) > 0 {
			rr.Kind, rr.TargetID, rr.NextHop = TargetENI, found[0].ID, found[0].PrivateIP
		}
	}
	return rr
}

// EffectiveRoutes is effectiveRoutes over the records of one VPC: the
// routes the kernel sync turns into policy routing, per subnet ID.
func (f *Fabric) EffectiveRoutes(ctx context.Context, acct, vpcID string) (map[string][]ResolvedRoute, error) {
	o, err := f.loadVPCObjects(ctx, acct)
	if err != nil {
		return nil, err
	}
	vpc, ok := o.vpcs[vpcID]
	if !ok {
		_, err := f.GetVPC(ctx, acct, vpcID)
		return nil, err
	}
	return effectiveRoutes(vpc, o.subnets, o.rtbs, o.igws, o.nats, o.enis), nil
}
