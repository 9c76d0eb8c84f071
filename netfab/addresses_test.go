package netfab

import (
	"context"
	"errors"
	"sync"
	"testing"
	"time"

	"github.com/labcloud/labcloud/internal/store"
)

func TestAddressesAndPublicIPs(t *testing.T) {
	f, st := newVPCFabric(t, "vp4")
	ctx := context.Background()
	vpc, err := f.CreateVPC(ctx, CreateVPCInput{AccountID: vpcTestAcct, CIDR: "10.0.0.0/16"})
	mustVPC(t, "CreateVPC", err)
	sn, err := f.CreateSubnet(ctx, CreateSubnetInput{AccountID: vpcTestAcct, VPCID: vpc.ID, CIDR: "10.0.0.0/24"})
	mustVPC(t, "CreateSubnet", err)
	e1, err := f.CreateENI(ctx, ENIRequest{AccountID: vpcTestAcct, SubnetID: sn.ID, InstanceID: "i-00000000000000001", AssociatePublicIP: vpcPtr(true)})
	mustVPC(t, "CreateENI", err)
	e2, err := f.CreateENI(ctx, ENIRequest{AccountID: vpcTestAcct, SubnetID: sn.ID, InstanceID: "i-00000000000000002"})
	mustVPC(t, "CreateENI", err)
	if e1.PublicIP == "" || e2.PublicIP != "" {
		t.Fatalf("public IPs: asked %q, subnet default (off) %q", e1.PublicIP, e2.PublicIP)
	}

	// Eight concurrent allocations: exactly five get distinct addresses,
	// three are refused (the quota holds under concurrency).
	var wg sync.WaitGroup
	got8 := make([]Address, 8)
	errs := make([]error, 8)
	for i := range 8 {
		wg.Add(1)
		go func() { defer wg.Done(); got8[i], errs[i] = f.AllocateAddress(ctx, vpcTestAcct) }()
	}
	wg.Wait()
	seen := map[string]bool{e1.PublicIP: true}
	var addrs []Address
	for i := range 8 {
		if errs[i] != nil {
			wantVPCCode(t, "concurrent allocation over the quota", errs[i], "AddressLimitExceeded")
			continue
		}
		if seen[got8[i].PublicIP] {
			t.Fatalf("address %s handed out twice", got8[i].PublicIP)
		}
		seen[got8[i].PublicIP] = true
		addrs = append(addrs, got8[i])
	}
	if len(addrs) != 5 {
		t.Fatalf("%d of 8 concurrent allocations succeeded, want 5", len(addrs))
	}
	_, err = f.AllocateAddress(ctx, vpcTestAcct)
	wantVPCCode(t, "6th Elastic IP", err, "AddressLimitExceeded")
	if n, p := countKeys(t, st, "eips/"), countKeys(t, st, "public-ips/"); n != 5 || p != 6 {
		t.Fatalf("after the refused 6th: %d Elastic IPs, %d pool addresses held; want 5 and 6", n, p)
	}
	a := addrs[0]

	// No internet gateway yet.
	_, err = f.AssociateAddress(ctx, AssociateAddressInput{AccountID: vpcTestAcct, AllocationID: a.AllocationID, InstanceID: e1.InstanceID})
	wantVPCCode(t, "associate without gateway", err, "Gateway.NotAttached")
	igw, err := f.CreateInternetGateway(ctx, vpcTestAcct)
	mustVPC(t, "CreateInternetGateway", err)
	mustVPC(t, "Attach", f.AttachInternetGateway(ctx, vpcTestAcct, igw.ID, vpc.ID))

	for _, c := range []struct {
		name string
		in   AssociateAddressInput
		code string
	}{
		{"missing allocation", AssociateAddressInput{AllocationID: "eipalloc-00000000000000000", InstanceID: e1.InstanceID}, "InvalidAllocationID.NotFound"},
		{"missing instance", AssociateAddressInput{AllocationID: a.AllocationID, InstanceID: "i-0000000000000000f"}, "InvalidInstanceID.NotFound"},
		{"missing interface", AssociateAddressInput{AllocationID: a.AllocationID, NetworkInterfaceID: "eni-00000000000000000"}, "InvalidNetworkInterfaceID.NotFound"},
		{"wrong private IP", AssociateAddressInput{AllocationID: a.AllocationID, NetworkInterfaceID: e1.ID, PrivateIP: "10.0.0.200"}, "InvalidParameterValue"},
		{"no target", AssociateAddressInput{AllocationID: a.AllocationID}, "MissingParameter"},
	} {
		c.in.AccountID = vpcTestAcct
		_, err := f.AssociateAddress(ctx, c.in)
		wantVPCCode(t, c.name, err, c.code)
	}

	// Associating replaces e1's auto-assigned public IP, which goes back
	// to the pool.
	assoc, err := f.AssociateAddress(ctx, AssociateAddressInput{AccountID: vpcTestAcct, AllocationID: a.AllocationID, InstanceID: e1.InstanceID})
	mustVPC(t, "AssociateAddress", err)
	got, _, _ := store.Load[ENI](ctx, st, eniKey(vpcTestAcct, e1.ID))
	if got.PublicIP != "" || got.EIPAllocationID != a.AllocationID {
		t.Fatalf("ENI after association: %+v", got)
	}
	var held publicIPIndex
	if _, err := st.Get(ctx, publicIPKey(e1.PublicIP), &held); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("replaced public IP %s still held: %+v %v", e1.PublicIP, held, err)
	}
	again, err := f.AssociateAddress(ctx, AssociateAddressInput{AccountID: vpcTestAcct, AllocationID: a.AllocationID, NetworkInterfaceID: e1.ID})
	if err != nil || again != assoc {
		t.Fatalf("associating to the same interface again: %s, %v; want %s", again, err, assoc)
	}
	_, err = f.AssociateAddress(ctx, AssociateAddressInput{AccountID: vpcTestAcct, AllocationID: a.AllocationID, NetworkInterfaceID: e2.ID})
	wantVPCCode(t, "reassociate without AllowReassociation", err, "Resource.AlreadyAssociated")
	wantVPCCode(t, "release associated", f.ReleaseAddress(ctx, vpcTestAcct, a.AllocationID, ""), "InvalidIPAddress.InUse")
	wantVPCCode(t, "detach with an Elastic IP mapped", f.DetachInternetGateway(ctx, vpcTestAcct, igw.ID, vpc.ID), "DependencyViolation")

	// AllowReassociation moves it, by public IP.
	assoc2, err := f.AssociateAddress(ctx, AssociateAddressInput{AccountID: vpcTestAcct, PublicIP: a.PublicIP, NetworkInterfaceID: e2.ID, AllowReassociation: true})
	mustVPC(t, "reassociate", err)
	got1, _, _ := store.Load[ENI](ctx, st, eniKey(vpcTestAcct, e1.ID))
	got2, _, _ := store.Load[ENI](ctx, st, eniKey(vpcTestAcct, e2.ID))
	ga, _, _ := store.Load[Address](ctx, st, eipKey(vpcTestAcct, a.AllocationID))
	if got1.EIPAllocationID != "" || got2.EIPAllocationID != a.AllocationID || ga.NetworkInterfaceID != e2.ID ||
		ga.InstanceID != e2.InstanceID || ga.PrivateIP != e2.PrivateIP || ga.AssociationID != assoc2 {
		t.Fatalf("after the move: e1 %+v, e2 %+v, address %+v", got1, got2, ga)
	}
	views, err := f.NetworkInterfaces(ctx, vpcTestAcct)
	mustVPC(t, "NetworkInterfaces", err)
	for _, v := range views {
		if v.ID == e2.ID && (v.PublicIP != a.PublicIP || v.AllocationID != a.AllocationID || v.AssociationID != assoc2 ||
			len(v.Groups) != 1 || v.Groups[0].ID != vpc.DefaultSecurityGroupID || v.Groups[0].Name != "default") {
			t.Fatalf("interface view: %+v", v)
		}
	}

	wantVPCCode(t, "disassociate unknown", f.DisassociateAddress(ctx, vpcTestAcct, "eipassoc-00000000000000000", ""), "InvalidAssociationID.NotFound")
	mustVPC(t, "DisassociateAddress", f.DisassociateAddress(ctx, vpcTestAcct, assoc2, ""))
	got2, _, _ = store.Load[ENI](ctx, st, eniKey(vpcTestAcct, e2.ID))
	if got2.EIPAllocationID != "" {
		t.Fatalf("interface still maps the address: %+v", got2)
	}
	mustVPC(t, "ReleaseAddress", f.ReleaseAddress(ctx, vpcTestAcct, "", a.PublicIP))
	wantVPCCode(t, "release again", f.ReleaseAddress(ctx, vpcTestAcct, a.AllocationID, ""), "InvalidAllocationID.NotFound")
	if _, err := st.Get(ctx, publicIPKey(a.PublicIP), &held); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("released address still held: %v", err)
	}

	// Stop/start: the auto-assigned public IP changes hands, an Elastic IP
	// stays.
	ip, err := f.AssignPublicIP(ctx, vpcTestAcct, e1.ID)
	mustVPC(t, "AssignPublicIP", err)
	mustVPC(t, "ReleasePublicIP", f.ReleasePublicIP(ctx, vpcTestAcct, e1.ID))
	if got, _, _ := store.Load[ENI](ctx, st, eniKey(vpcTestAcct, e1.ID)); got.PublicIP != "" {
		t.Fatalf("public IP %s kept after release", ip)
	}
	if _, err := st.Get(ctx, publicIPKey(ip), &held); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("released public IP still held: %v", err)
	}
	b := addrs[1]
	_, err = f.AssociateAddress(ctx, AssociateAddressInput{AccountID: vpcTestAcct, AllocationID: b.AllocationID, NetworkInterfaceID: e1.ID})
	mustVPC(t, "associate b", err)
	ip, err = f.AssignPublicIP(ctx, vpcTestAcct, e1.ID)
	if err != nil || ip != b.PublicIP {
		t.Fatalf("AssignPublicIP with an Elastic IP: %s, %v; want %s", ip, err, b.PublicIP)
	}
	// Deleting the interface disassociates (never releases) its Elastic IP.
	mustVPC(t, "DeleteENI", f.DeleteENI(ctx, vpcTestAcct, e1.ID))
	if gb, _, err := store.Load[Address](ctx, st, eipKey(vpcTestAcct, b.AllocationID)); err != nil || gb.AssociationID != "" {
		t.Fatalf("Elastic IP after its interface was deleted: %+v, %v", gb, err)
	}
	mustVPC(t, "DeleteENI", f.DeleteENI(ctx, vpcTestAcct, e2.ID))
	mustVPC(t, "DeleteSubnet", f.DeleteSubnet(ctx, vpcTestAcct, sn.ID))
	mustVPC(t, "Detach", f.DetachInternetGateway(ctx, vpcTestAcct, igw.ID, vpc.ID))
	mustVPC(t, "DeleteVPC", f.DeleteVPC(ctx, vpcTestAcct, vpc.ID))
}

func TestNatGateways(t *testing.T) {
	f, st := newVPCFabric(t, "vp5")
	ctx := context.Background()
	vpc, err := f.CreateVPC(ctx, CreateVPCInput{AccountID: vpcTestAcct, CIDR: "10.0.0.0/16"})
	mustVPC(t, "CreateVPC", err)
	pub, err := f.CreateSubnet(ctx, CreateSubnetInput{AccountID: vpcTestAcct, VPCID: vpc.ID, CIDR: "10.0.0.0/28"})
	mustVPC(t, "CreateSubnet", err)
	priv, err := f.CreateSubnet(ctx, CreateSubnetInput{AccountID: vpcTestAcct, VPCID: vpc.ID, CIDR: "10.0.1.0/24"})
	mustVPC(t, "CreateSubnet", err)
	igw, err := f.CreateInternetGateway(ctx, vpcTestAcct)
	mustVPC(t, "CreateInternetGateway", err)
	mustVPC(t, "Attach", f.AttachInternetGateway(ctx, vpcTestAcct, igw.ID, vpc.ID))
	a, err := f.AllocateAddress(ctx, vpcTestAcct)
	mustVPC(t, "AllocateAddress", err)
	used, err := f.AllocateAddress(ctx, vpcTestAcct)
	mustVPC(t, "AllocateAddress", err)
	// Without an internet gateway the gateway fails, as in AWS, and
	// holds nothing.
	mustVPC(t, "Detach", f.DetachInternetGateway(ctx, vpcTestAcct, igw.ID, vpc.ID))
	failed, err := f.CreateNatGateway(ctx, CreateNatGatewayInput{AccountID: vpcTestAcct, SubnetID: pub.ID, AllocationID: a.AllocationID})
	mustVPC(t, "CreateNatGateway without gateway", err)
	if failed.State != "failed" || failed.FailureCode != "Gateway.NotAttached" || failed.NetworkInterfaceID != "" {
		t.Fatalf("NAT gateway in a VPC without internet gateway: %+v", failed)
	}
	if ga, _, _ := store.Load[Address](ctx, st, eipKey(vpcTestAcct, a.AllocationID)); ga.AssociationID != "" {
		t.Fatalf("a failed NAT gateway took the Elastic IP: %+v", ga)
	}
	mustVPC(t, "Attach", f.AttachInternetGateway(ctx, vpcTestAcct, igw.ID, vpc.ID))
	e, err := f.CreateENI(ctx, ENIRequest{AccountID: vpcTestAcct, SubnetID: pub.ID, InstanceID: "i-00000000000000003"})
	mustVPC(t, "CreateENI", err)
	_, err = f.AssociateAddress(ctx, AssociateAddressInput{AccountID: vpcTestAcct, AllocationID: used.AllocationID, NetworkInterfaceID: e.ID})
	mustVPC(t, "AssociateAddress", err)

	for _, c := range []struct {
		name string
		in   CreateNatGatewayInput
		code string
	}{
		{"associated address", CreateNatGatewayInput{SubnetID: pub.ID, AllocationID: used.AllocationID}, "Resource.AlreadyAssociated"},
		{"no allocation", CreateNatGatewayInput{SubnetID: pub.ID}, "MissingParameter"},
		{"missing allocation", CreateNatGatewayInput{SubnetID: pub.ID, AllocationID: "eipalloc-00000000000000000"}, "InvalidAllocationID.NotFound"},
		{"missing subnet", CreateNatGatewayInput{SubnetID: "subnet-00000000000000000", AllocationID: a.AllocationID}, "InvalidSubnetID.NotFound"},
		{"private", CreateNatGatewayInput{SubnetID: pub.ID, AllocationID: a.AllocationID, ConnectivityType: "private"}, "Unsupported"},
		{"bogus type", CreateNatGatewayInput{SubnetID: pub.ID, AllocationID: a.AllocationID, ConnectivityType: "bogus"}, "InvalidParameterValue"},
	} {
		c.in.AccountID = vpcTestAcct
		_, err := f.CreateNatGateway(ctx, c.in)
		wantVPCCode(t, c.name, err, c.code)
	}
	if n := countKeys(t, st, "natgws/"); n != 1 {
		t.Fatalf("%d NAT gateway records after refused creates, want the failed one only", n)
	}

	n, err := f.CreateNatGateway(ctx, CreateNatGatewayInput{AccountID: vpcTestAcct, SubnetID: pub.ID, AllocationID: a.AllocationID})
	mustVPC(t, "CreateNatGateway", err)
	if n.State != "available" || n.PublicIP != a.PublicIP || n.VPCID != vpc.ID || n.PrivateIP == "" || n.PrivateIP == e.PrivateIP {
		t.Fatalf("NAT gateway: %+v (instance has %s)", n, e.PrivateIP)
	}
	ne, _, err := store.Load[ENI](ctx, st, eniKey(vpcTestAcct, n.NetworkInterfaceID))
	if err != nil || ne.InterfaceType != "nat_gateway" || ne.Tap != "" || ne.PrivateIP != n.PrivateIP {
		t.Fatalf("NAT gateway's interface: %+v, %v", ne, err)
	}
	ga, _, _ := store.Load[Address](ctx, st, eipKey(vpcTestAcct, a.AllocationID))
	if ga.NetworkInterfaceID != ne.ID || ga.AssociationID == "" {
		t.Fatalf("Elastic IP of the NAT gateway: %+v", ga)
	}
	list, _ := f.ListSubnets(ctx, vpcTestAcct)
	for _, s := range list {
		if s.ID == pub.ID && s.AvailableIPAddressCount != 11-2 {
			t.Fatalf("/28 with an instance and a NAT gateway: %d available, want 9", s.AvailableIPAddressCount)
		}
	}
	wantVPCCode(t, "release the NAT's address", f.ReleaseAddress(ctx, vpcTestAcct, a.AllocationID, ""), "InvalidIPAddress.InUse")
	wantVPCCode(t, "disassociate the NAT's address", f.DisassociateAddress(ctx, vpcTestAcct, ga.AssociationID, ""), "InvalidIPAddress.InUse")
	_, err = f.AssociateAddress(ctx, AssociateAddressInput{AccountID: vpcTestAcct, AllocationID: a.AllocationID, NetworkInterfaceID: e.ID, AllowReassociation: true})
	wantVPCCode(t, "steal the NAT's address", err, "Resource.AlreadyAssociated")

	rt, err := f.CreateRouteTable(ctx, vpcTestAcct, vpc.ID)
	mustVPC(t, "CreateRouteTable", err)
	mustVPC(t, "route to NAT", f.CreateRoute(ctx, RouteInput{AccountID: vpcTestAcct, RouteTableID: rt.ID, DestinationCIDR: "0.0.0.0/0", NatGatewayID: n.ID}))
	_, err = f.AssociateRouteTable(ctx, vpcTestAcct, rt.ID, priv.ID)
	mustVPC(t, "associate", err)
	eff, _ := f.EffectiveRoutes(ctx, vpcTestAcct, vpc.ID)
	if r := eff[priv.ID]; len(r) != 2 || r[1].Kind != TargetNAT || r[1].NatPublicIP != a.PublicIP || r[1].NatSubnetID != pub.ID {
		t.Fatalf("private subnet routes: %+v", r)
	}

	wantVPCCode(t, "delete subnet with NAT", f.DeleteSubnet(ctx, vpcTestAcct, pub.ID), "DependencyViolation")
	wantVPCCode(t, "delete VPC with NAT", f.DeleteVPC(ctx, vpcTestAcct, vpc.ID), "DependencyViolation")
	_, err = f.DeleteNatGateway(ctx, vpcTestAcct, "nat-00000000000000000")
	wantVPCCode(t, "delete missing NAT", err, "NatGatewayNotFound")
	d, err := f.DeleteNatGateway(ctx, vpcTestAcct, n.ID)
	mustVPC(t, "DeleteNatGateway", err)
	if d.State != "deleted" || d.DeleteTime == "" {
		t.Fatalf("deleted NAT gateway: %+v", d)
	}
	if _, _, err := store.Load[ENI](ctx, st, eniKey(vpcTestAcct, n.NetworkInterfaceID)); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("NAT interface left: %v", err)
	}
	if ga, _, _ := store.Load[Address](ctx, st, eipKey(vpcTestAcct, a.AllocationID)); ga.AssociationID != "" {
		t.Fatalf("Elastic IP still associated after the NAT gateway's deletion: %+v", ga)
	}
	nats, _ := f.ListNatGateways(ctx, vpcTestAcct)
	if len(nats) != 2 || nats[0].State == "available" || nats[1].State == "available" {
		t.Fatalf("deleted NAT gateway should stay visible for a while: %+v", nats)
	}
	tables, _ := f.RouteTables(ctx, vpcTestAcct)
	for _, tb := range tables {
		if tb.ID == rt.ID && tb.RouteViews[1].State != "blackhole" {
			t.Fatalf("route to a deleted NAT gateway: %+v", tb.RouteViews)
		}
	}
	// After an hour it is hidden.
	_, err = store.Update(ctx, st, natKey(vpcTestAcct, n.ID), func(x *NatGateway) error {
		x.DeleteTime = time.Now().Add(-NatDeletedVisibleFor - time.Minute).UTC().Format(time.RFC3339)
		return nil
	})
	mustVPC(t, "age the record", err)
	if nats, _ := f.ListNatGateways(ctx, vpcTestAcct); len(nats) != 1 || nats[0].ID != failed.ID {
		t.Fatalf("NAT gateway deleted over an hour ago still listed: %+v", nats)
	}
	d, err = f.DeleteNatGateway(ctx, vpcTestAcct, failed.ID)
	if err != nil || d.State != "deleted" {
		t.Fatalf("deleting the failed NAT gateway: %+v, %v", d, err)
	}
	mustVPC(t, "ReleaseAddress", f.ReleaseAddress(ctx, vpcTestAcct, a.AllocationID, ""))
}
