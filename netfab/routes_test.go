package netfab

import (
	"context"
	"reflect"
	"testing"

	"github.com/labcloud/labcloud/internal/store"
)

func TestRouteTablesAndInternetGateways(t *testing.T) {
	f, st := newVPCFabric(t, "vp3")
	ctx := context.Background()
	vpc, err := f.CreateVPC(ctx, CreateVPCInput{AccountID: vpcTestAcct, CIDR: "10.0.0.0/16"})
	mustVPC(t, "CreateVPC", err)
	vpc2, err := f.CreateVPC(ctx, CreateVPCInput{AccountID: vpcTestAcct, CIDR: "10.1.0.0/16"})
	mustVPC(t, "CreateVPC", err)
	pub, err := f.CreateSubnet(ctx, CreateSubnetInput{AccountID: vpcTestAcct, VPCID: vpc.ID, CIDR: "10.0.0.0/24"})
	mustVPC(t, "CreateSubnet", err)
	priv, err := f.CreateSubnet(ctx, CreateSubnetInput{AccountID: vpcTestAcct, VPCID: vpc.ID, CIDR: "10.0.1.0/24"})
	mustVPC(t, "CreateSubnet", err)
	other, err := f.CreateSubnet(ctx, CreateSubnetInput{AccountID: vpcTestAcct, VPCID: vpc2.ID, CIDR: "10.1.0.0/24"})
	mustVPC(t, "CreateSubnet", err)

	// Internet gateways: one per VPC, one VPC per gateway.
	igw, err := f.CreateInternetGateway(ctx, vpcTestAcct)
	mustVPC(t, "CreateInternetGateway", err)
	igw2, err := f.CreateInternetGateway(ctx, vpcTestAcct)
	mustVPC(t, "CreateInternetGateway", err)
	mustVPC(t, "Attach", f.AttachInternetGateway(ctx, vpcTestAcct, igw.ID, vpc.ID))
	wantVPCCode(t, "second gateway on a VPC", f.AttachInternetGateway(ctx, vpcTestAcct, igw2.ID, vpc.ID), "InvalidParameterValue")
	wantVPCCode(t, "gateway on a second VPC", f.AttachInternetGateway(ctx, vpcTestAcct, igw.ID, vpc2.ID), "Resource.AlreadyAssociated")
	wantVPCCode(t, "missing gateway", f.AttachInternetGateway(ctx, vpcTestAcct, "igw-00000000000000000", vpc2.ID), "InvalidInternetGatewayID.NotFound")
	wantVPCCode(t, "missing VPC", f.AttachInternetGateway(ctx, vpcTestAcct, igw2.ID, "vpc-00000000000000000"), "InvalidVpcID.NotFound")
	if g, _, _ := store.Load[InternetGateway](ctx, st, igwKey(vpcTestAcct, igw2.ID)); g.VPCID != "" {
		t.Fatalf("refused attach left %s attached to %s", igw2.ID, g.VPCID)
	}
	wantVPCCode(t, "delete attached", f.DeleteInternetGateway(ctx, vpcTestAcct, igw.ID), "DependencyViolation")
	wantVPCCode(t, "detach from the wrong VPC", f.DetachInternetGateway(ctx, vpcTestAcct, igw.ID, vpc2.ID), "Gateway.NotAttached")

	// Route tables.
	rt, err := f.CreateRouteTable(ctx, vpcTestAcct, vpc.ID)
	mustVPC(t, "CreateRouteTable", err)
	if len(rt.RouteViews) != 1 || rt.RouteViews[0].GatewayID != "local" || rt.RouteViews[0].DestinationCIDR != "10.0.0.0/16" || rt.Main {
		t.Fatalf("new route table: %+v", rt)
	}
	_, err = f.CreateRouteTable(ctx, vpcTestAcct, "vpc-00000000000000000")
	wantVPCCode(t, "route table in a missing VPC", err, "InvalidVpcID.NotFound")
	route := func(dest, gw string) RouteInput {
		return RouteInput{AccountID: vpcTestAcct, RouteTableID: rt.ID, DestinationCIDR: dest, GatewayID: gw}
	}
	mustVPC(t, "CreateRoute", f.CreateRoute(ctx, route("0.0.0.0/0", igw.ID)))
	wantVPCCode(t, "duplicate", f.CreateRoute(ctx, route("0.0.0.0/0", igw.ID)), "RouteAlreadyExists")
	wantVPCCode(t, "local route", f.CreateRoute(ctx, route("10.0.0.0/16", igw.ID)), "InvalidParameterValue")
	wantVPCCode(t, "local target", f.CreateRoute(ctx, route("192.0.2.0/24", "local")), "InvalidParameterValue")
	wantVPCCode(t, "detached gateway", f.CreateRoute(ctx, route("192.0.2.0/24", igw2.ID)), "InvalidParameterValue")
	wantVPCCode(t, "missing gateway", f.CreateRoute(ctx, route("192.0.2.0/24", "igw-00000000000000000")), "InvalidGatewayID.NotFound")
	wantVPCCode(t, "missing NAT", f.CreateRoute(ctx, RouteInput{AccountID: vpcTestAcct, RouteTableID: rt.ID, DestinationCIDR: "192.0.2.0/24", NatGatewayID: "nat-00000000000000000"}), "InvalidNatGatewayID.NotFound")
	wantVPCCode(t, "two targets", f.CreateRoute(ctx, RouteInput{AccountID: vpcTestAcct, RouteTableID: rt.ID, DestinationCIDR: "192.0.2.0/24", GatewayID: igw.ID, NatGatewayID: "nat-1"}), "InvalidParameterCombination")
	wantVPCCode(t, "bad destination", f.CreateRoute(ctx, route("192.0.2.0/33", igw.ID)), "InvalidParameterValue")
	wantVPCCode(t, "missing table", f.CreateRoute(ctx, RouteInput{AccountID: vpcTestAcct, RouteTableID: "rtb-00000000000000000", DestinationCIDR: "0.0.0.0/0", GatewayID: igw.ID}), "InvalidRouteTableID.NotFound")
	wantVPCCode(t, "replace missing", f.ReplaceRoute(ctx, route("192.0.2.0/24", igw.ID)), "InvalidRoute.NotFound")
	wantVPCCode(t, "delete missing", f.DeleteRoute(ctx, vpcTestAcct, rt.ID, "192.0.2.0/24"), "InvalidRoute.NotFound")
	wantVPCCode(t, "delete local", f.DeleteRoute(ctx, vpcTestAcct, rt.ID, "10.0.0.0/16"), "InvalidParameterValue")

	assoc, err := f.AssociateRouteTable(ctx, vpcTestAcct, rt.ID, pub.ID)
	mustVPC(t, "AssociateRouteTable", err)
	_, err = f.AssociateRouteTable(ctx, vpcTestAcct, rt.ID, pub.ID)
	wantVPCCode(t, "second association", err, "Resource.AlreadyAssociated")
	_, err = f.AssociateRouteTable(ctx, vpcTestAcct, rt.ID, other.ID)
	wantVPCCode(t, "subnet of another VPC", err, "InvalidParameterValue")
	wantVPCCode(t, "delete associated", f.DeleteRouteTable(ctx, vpcTestAcct, rt.ID), "DependencyViolation")
	wantVPCCode(t, "delete main", f.DeleteRouteTable(ctx, vpcTestAcct, vpc.MainRouteTableID), "DependencyViolation")

	eff, err := f.EffectiveRoutes(ctx, vpcTestAcct, vpc.ID)
	mustVPC(t, "EffectiveRoutes", err)
	if r := eff[pub.ID]; len(r) != 2 || r[1].Kind != TargetIGW || r[1].TargetID != igw.ID || r[1].RouteTableID != rt.ID {
		t.Fatalf("public subnet routes: %+v", r)
	}
	if r := eff[priv.ID]; len(r) != 1 || r[0].Kind != TargetLocal || r[0].RouteTableID != vpc.MainRouteTableID {
		t.Fatalf("private subnet routes (main table): %+v", r)
	}

	// A mapped public address blocks the detach.
	e, err := f.CreateENI(ctx, ENIRequest{AccountID: vpcTestAcct, SubnetID: pub.ID, InstanceID: "i-0000000000000000b", AssociatePublicIP: vpcPtr(true)})
	mustVPC(t, "CreateENI", err)
	wantVPCCode(t, "detach with public IPs", f.DetachInternetGateway(ctx, vpcTestAcct, igw.ID, vpc.ID), "DependencyViolation")
	mustVPC(t, "ReleasePublicIP", f.ReleasePublicIP(ctx, vpcTestAcct, e.ID))
	mustVPC(t, "Detach", f.DetachInternetGateway(ctx, vpcTestAcct, igw.ID, vpc.ID))
	tables, err := f.RouteTables(ctx, vpcTestAcct)
	mustVPC(t, "RouteTables", err)
	for _, tb := range tables {
		if tb.ID == rt.ID && (len(tb.RouteViews) != 2 || tb.RouteViews[1].State != "blackhole") {
			t.Fatalf("route to a detached gateway: %+v", tb.RouteViews)
		}
	}
	mustVPC(t, "Attach again", f.AttachInternetGateway(ctx, vpcTestAcct, igw.ID, vpc.ID))
	// Route to the instance, replaced to its interface.
	mustVPC(t, "route to instance", f.CreateRoute(ctx, RouteInput{AccountID: vpcTestAcct, RouteTableID: rt.ID, DestinationCIDR: "192.168.0.0/16", InstanceID: e.InstanceID}))
	mustVPC(t, "replace to ENI", f.ReplaceRoute(ctx, RouteInput{AccountID: vpcTestAcct, RouteTableID: rt.ID, DestinationCIDR: "192.168.0.0/16", NetworkInterfaceID: e.ID}))
	eff, _ = f.EffectiveRoutes(ctx, vpcTestAcct, vpc.ID)
	if r := eff[pub.ID]; len(r) != 3 || r[1].Kind != TargetENI || r[1].NextHop != e.PrivateIP || r[2].Kind != TargetIGW {
		t.Fatalf("routes after the ENI route: %+v", r)
	}
	mustVPC(t, "DeleteRoute", f.DeleteRoute(ctx, vpcTestAcct, rt.ID, "192.168.0.0/16"))

	// The main association moves: rt becomes main, the old main table can
	// then be deleted.
	wantVPCCode(t, "disassociate main", f.DisassociateRouteTable(ctx, vpcTestAcct, vpc.MainRouteTableID), "InvalidAssociationID.NotFound")
	oldMain, _, _ := store.Load[RouteTable](ctx, st, rtbKey(vpcTestAcct, vpc.MainRouteTableID))
	wantVPCCode(t, "disassociate main assoc", f.DisassociateRouteTable(ctx, vpcTestAcct, oldMain.MainAssociationID), "InvalidParameterValue")
	newMain, err := f.ReplaceRouteTableAssociation(ctx, vpcTestAcct, oldMain.MainAssociationID, rt.ID)
	mustVPC(t, "replace main", err)
	v, _ := f.GetVPC(ctx, vpcTestAcct, vpc.ID)
	nrt, _, _ := store.Load[RouteTable](ctx, st, rtbKey(vpcTestAcct, rt.ID))
	if v.MainRouteTableID != rt.ID || !nrt.Main || nrt.MainAssociationID != newMain {
		t.Fatalf("after replacing main: vpc main %s, table %+v", v.MainRouteTableID, nrt)
	}
	eff, _ = f.EffectiveRoutes(ctx, vpcTestAcct, vpc.ID)
	if r := eff[priv.ID]; len(r) != 2 || r[1].Kind != TargetIGW {
		t.Fatalf("private subnet after rt became main: %+v", r)
	}
	mustVPC(t, "delete former main", f.DeleteRouteTable(ctx, vpcTestAcct, oldMain.ID))

	// Explicit association: replace, then disassociate.
	rt2, err := f.CreateRouteTable(ctx, vpcTestAcct, vpc.ID)
	mustVPC(t, "CreateRouteTable", err)
	assoc2, err := f.ReplaceRouteTableAssociation(ctx, vpcTestAcct, assoc, rt2.ID)
	mustVPC(t, "replace association", err)
	var idx rtbSubnetIndex
	if _, err := st.Get(ctx, rtbSubnetKey(pub.ID), &idx); err != nil || idx.RouteTableID != rt2.ID || idx.AssociationID != assoc2 {
		t.Fatalf("rtb-by-subnet after replace: %+v, %v", idx, err)
	}
	mustVPC(t, "disassociate", f.DisassociateRouteTable(ctx, vpcTestAcct, assoc2))
	wantVPCCode(t, "disassociate again", f.DisassociateRouteTable(ctx, vpcTestAcct, assoc2), "InvalidAssociationID.NotFound")
	mustVPC(t, "DeleteRouteTable", f.DeleteRouteTable(ctx, vpcTestAcct, rt2.ID))
	// An association goes with its subnet.
	_, err = f.AssociateRouteTable(ctx, vpcTestAcct, rt.ID, priv.ID)
	mustVPC(t, "associate priv", err)
	mustVPC(t, "DeleteSubnet", f.DeleteSubnet(ctx, vpcTestAcct, priv.ID))
	nrt, _, _ = store.Load[RouteTable](ctx, st, rtbKey(vpcTestAcct, rt.ID))
	if len(nrt.Associations) != 0 || countKeys(t, st, "rtb-by-subnet/") != 0 {
		t.Fatalf("association of a deleted subnet left: %+v", nrt.Associations)
	}

	// Clean up in AWS's order.
	wantVPCCode(t, "DeleteVPC with gateway and subnets", f.DeleteVPC(ctx, vpcTestAcct, vpc.ID), "DependencyViolation")
	mustVPC(t, "DeleteENI", f.DeleteENI(ctx, vpcTestAcct, e.ID))
	mustVPC(t, "DeleteSubnet", f.DeleteSubnet(ctx, vpcTestAcct, pub.ID))
	mustVPC(t, "Detach", f.DetachInternetGateway(ctx, vpcTestAcct, igw.ID, vpc.ID))
	mustVPC(t, "DeleteInternetGateway", f.DeleteInternetGateway(ctx, vpcTestAcct, igw.ID))
	mustVPC(t, "DeleteVPC", f.DeleteVPC(ctx, vpcTestAcct, vpc.ID)) // rt is main now: goes with it
	if n := countKeys(t, st, "rtbs/"+vpcTestAcct+"/"); n != 1 {
		t.Fatalf("%d route tables left, want only vpc2's main", n)
	}
}

func vpcPtr[T any](v T) *T { return &v }

func TestEffectiveRoutes(t *testing.T) {
	vpc := VPC{ID: "vpc-1", CIDR: "10.0.0.0/16"}
	subnets := []subnetRecord{
		{Subnet: Subnet{ID: "subnet-pub", VPCID: "vpc-1", CIDR: "10.0.0.0/24"}},
		{Subnet: Subnet{ID: "subnet-priv", VPCID: "vpc-1", CIDR: "10.0.1.0/24"}},
		{Subnet: Subnet{ID: "subnet-other", VPCID: "vpc-2", CIDR: "10.1.0.0/24"}},
	}
	igwOK := InternetGateway{ID: "igw-1", VPCID: "vpc-1"}
	igwDetached := InternetGateway{ID: "igw-1"}
	nat := NatGateway{ID: "nat-1", VPCID: "vpc-1", SubnetID: "subnet-pub", PublicIP: "203.0.113.10", PrivateIP: "10.0.0.4", State: "available"}
	natGone := nat
	natGone.State = "deleted"
	eni := ENI{ID: "eni-1", VPCID: "vpc-1", InstanceID: "i-1", PrivateIP: "10.0.0.5"}
	main := RouteTable{ID: "rtb-main", VPCID: "vpc-1", Main: true, Routes: []Route{{DestinationCIDR: "0.0.0.0/0", NatGatewayID: "nat-1"}}}
	pubRT := RouteTable{ID: "rtb-pub", VPCID: "vpc-1", Routes: []Route{
		{DestinationCIDR: "0.0.0.0/0", GatewayID: "igw-1"},
		{DestinationCIDR: "192.168.0.0/16", InstanceID: "i-1"},
		{DestinationCIDR: "172.16.0.0/12", NetworkInterfaceID: "eni-gone"},
	}, Associations: []RouteTableAssociation{{ID: "rtbassoc-1", SubnetID: "subnet-pub"}}}
	local := func(rt string) ResolvedRoute {
		return ResolvedRoute{DestinationCIDR: "10.0.0.0/16", Kind: TargetLocal, TargetID: "local", RouteTableID: rt}
	}
	tests := []struct {
		name string
		igws []InternetGateway
		nats []NatGateway
		rtbs []RouteTable
		want map[string][]ResolvedRoute
	}{
		{
			name: "explicit association and main table",
			igws: []InternetGateway{igwOK}, nats: []NatGateway{nat}, rtbs: []RouteTable{main, pubRT},
			want: map[string][]ResolvedRoute{
				"subnet-pub": {local("rtb-pub"),
					{DestinationCIDR: "192.168.0.0/16", Kind: TargetENI, TargetID: "eni-1", NextHop: "10.0.0.5", RouteTableID: "rtb-pub"},
					{DestinationCIDR: "172.16.0.0/12", Kind: TargetBlackhole, TargetID: "eni-gone", RouteTableID: "rtb-pub"},
					{DestinationCIDR: "0.0.0.0/0", Kind: TargetIGW, TargetID: "igw-1", RouteTableID: "rtb-pub"}},
				"subnet-priv": {local("rtb-main"),
					{DestinationCIDR: "0.0.0.0/0", Kind: TargetNAT, TargetID: "nat-1", NatPublicIP: "203.0.113.10", NatPrivateIP: "10.0.0.4", NatSubnetID: "subnet-pub", RouteTableID: "rtb-main"}},
			},
		},
		{
			name: "detached gateway and deleted NAT are blackholes",
			igws: []InternetGateway{igwDetached}, nats: []NatGateway{natGone}, rtbs: []RouteTable{main, pubRT},
			want: map[string][]ResolvedRoute{
				"subnet-pub": {local("rtb-pub"),
					{DestinationCIDR: "192.168.0.0/16", Kind: TargetENI, TargetID: "eni-1", NextHop: "10.0.0.5", RouteTableID: "rtb-pub"},
					{DestinationCIDR: "172.16.0.0/12", Kind: TargetBlackhole, TargetID: "eni-gone", RouteTableID: "rtb-pub"},
					{DestinationCIDR: "0.0.0.0/0", Kind: TargetBlackhole, TargetID: "igw-1", RouteTableID: "rtb-pub"}},
				"subnet-priv": {local("rtb-main"),
					{DestinationCIDR: "0.0.0.0/0", Kind: TargetBlackhole, TargetID: "nat-1", RouteTableID: "rtb-main"}},
			},
		},
		{
			name: "no table at all: local only",
			want: map[string][]ResolvedRoute{
				"subnet-pub":  {{DestinationCIDR: "10.0.0.0/16", Kind: TargetLocal, TargetID: "local"}},
				"subnet-priv": {{DestinationCIDR: "10.0.0.0/16", Kind: TargetLocal, TargetID: "local"}},
			},
		},
		{
			name: "a gateway attached to another VPC does not count",
			igws: []InternetGateway{{ID: "igw-1", VPCID: "vpc-2"}}, rtbs: []RouteTable{pubRT},
			want: map[string][]ResolvedRoute{
				"subnet-pub": {local("rtb-pub"),
					{DestinationCIDR: "192.168.0.0/16", Kind: TargetENI, TargetID: "eni-1", NextHop: "10.0.0.5", RouteTableID: "rtb-pub"},
					{DestinationCIDR: "172.16.0.0/12", Kind: TargetBlackhole, TargetID: "eni-gone", RouteTableID: "rtb-pub"},
					{DestinationCIDR: "0.0.0.0/0", Kind: TargetBlackhole, TargetID: "igw-1", RouteTableID: "rtb-pub"}},
				"subnet-priv": {{DestinationCIDR: "10.0.0.0/16", Kind: TargetLocal, TargetID: "local"}},
			},
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got := effectiveRoutes(vpc, subnets, tc.rtbs, tc.igws, tc.nats, []ENI{eni})
			if !reflect.DeepEqual(got, tc.want) {
				t.Fatalf("got  %+v\nwant %+v", got, tc.want)
			}
		})
	}
}
