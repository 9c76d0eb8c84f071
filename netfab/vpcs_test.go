package netfab

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"testing"

	"github.com/labcloud/labcloud/internal/errdefs"
	"github.com/labcloud/labcloud/internal/store"
	"github.com/labcloud/labcloud/internal/store/storetest"
)

const vpcTestAcct = "111122223333"

// newVPCFabric is a Fabric on a real etcd with its own name prefix; every
// namespace and link it makes is gone after the test (checked).
func newVPCFabric(t *testing.T, prefix string) (*Fabric, *store.Store) {
	t.Helper()
	requireNet(t)
	st := storetest.NewEmbedded(t)
	t.Cleanup(func() {
		if out, _ := run(t, "ip", "netns", "list"); strings.Contains(out, prefix+"-") {
			t.Errorf("namespaces left behind:\n%s", out)
		}
	})
	f, err := New(context.Background(), Options{Store: st, Zones: []string{"lab-1a", "lab-1b", "lab-1c"}, NamePrefix: prefix, Metadata: &fakeMetadata{}})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = f.Teardown(context.Background()) })
	return f, st
}

// wantCode fails unless err carries the AWS code want.
func wantVPCCode(t *testing.T, what string, err error, want string) {
	t.Helper()
	var de *errdefs.Error
	if !errors.As(err, &de) || de.Code != want {
		t.Fatalf("%s: got %v, want code %s", what, err, want)
	}
	if de.Message == "" {
		t.Fatalf("%s: %s without a message", what, want)
	}
}

func mustVPC(t *testing.T, what string, err error) {
	t.Helper()
	if err != nil {
		t.Fatalf("%s: %v", what, err)
	}
}

// count is the number of keys under prefix.
func countKeys(t *testing.T, st *store.Store, prefix string) int {
	t.Helper()
	kvs, err := st.List(context.Background(), prefix)
	if err != nil {
		t.Fatal(err)
	}
	return len(kvs)
}

func TestVPCCreateValidateLimitDelete(t *testing.T) {
	f, st := newVPCFabric(t, "vp1")
	ctx := context.Background()
	for _, c := range []struct{ cidr, code string }{
		{"10.0.0.0/8", "InvalidVpc.Range"},
		{"10.0.0.0/15", "InvalidVpc.Range"},
		{"10.0.0.0/29", "InvalidVpc.Range"},
		{"10.0.0.1/16", "InvalidParameterValue"},
		{"bogus", "InvalidParameterValue"},
		{"127.0.0.0/16", "InvalidVpc.Range"},
		{"169.254.0.0/16", "InvalidVpc.Range"},
		{"224.0.0.0/16", "InvalidVpc.Range"},
		{"203.0.113.0/24", "InvalidVpc.Range"}, // the public pool
	} {
		_, err := f.CreateVPC(ctx, CreateVPCInput{AccountID: vpcTestAcct, CIDR: c.cidr})
		wantVPCCode(t, "CreateVPC "+c.cidr, err, c.code)
	}
	if n := countKeys(t, st, "vpcs/"); n != 0 {
		t.Fatalf("%d VPC records after refused creates", n)
	}
	_, err := f.CreateVPC(ctx, CreateVPCInput{AccountID: vpcTestAcct, CIDR: "10.0.0.0/16", InstanceTenancy: "host"})
	wantVPCCode(t, "tenancy host", err, "InvalidParameterValue")

	vpc, err := f.CreateVPC(ctx, CreateVPCInput{AccountID: vpcTestAcct, CIDR: "10.0.0.0/16"})
	mustVPC(t, "CreateVPC", err)
	if !netnsExists(vpc.Namespace) || vpc.Namespace != "vp1-"+vpc.ID {
		t.Fatalf("namespace %q of %s not built", vpc.Namespace, vpc.ID)
	}
	if vpc.InstanceTenancy != "default" || !vpc.EnableDNSSupport || vpc.EnableDNSHostnames || vpc.IsDefault {
		t.Fatalf("new VPC attributes: %+v", vpc)
	}
	// Born with its main route table, default NACL and default SG, and no
	// internet gateway.
	rt, _, err := store.Load[RouteTable](ctx, st, rtbKey(vpcTestAcct, vpc.MainRouteTableID))
	if err != nil || !rt.Main || len(rt.Routes) != 0 {
		t.Fatalf("main route table: %+v, %v", rt, err)
	}
	if _, _, err := store.Load[NetworkACL](ctx, st, naclKey(vpcTestAcct, vpc.DefaultNetworkACLID)); err != nil {
		t.Fatal(err)
	}
	if _, _, err := store.Load[SecurityGroup](ctx, st, sgKey(vpcTestAcct, vpc.DefaultSecurityGroupID)); err != nil {
		t.Fatal(err)
	}
	if n := countKeys(t, st, "igws/"); n != 0 {
		t.Fatalf("a new non-default VPC got %d internet gateways", n)
	}

	v, err := f.SetVPCAttribute(ctx, vpcTestAcct, vpc.ID, AttrEnableDNSHostnames, true)
	mustVPC(t, "SetVPCAttribute", err)
	if !v.EnableDNSHostnames || !v.EnableDNSSupport {
		t.Fatalf("attributes after set: %+v", v)
	}
	_, err = f.SetVPCAttribute(ctx, vpcTestAcct, "vpc-00000000000000000", AttrEnableDNSSupport, true)
	wantVPCCode(t, "attribute of a missing VPC", err, "InvalidVpcID.NotFound")

	// The limit counts the default VPC: default + 4 = 5, the 6th fails.
	def, err := f.EnsureDefaultVPC(ctx, vpcTestAcct)
	mustVPC(t, "EnsureDefaultVPC", err)
	// Six concurrent creates for the three places left: three succeed.
	errs := make(chan error, 6)
	for range 6 {
		go func() {
			_, err := f.CreateVPC(ctx, CreateVPCInput{AccountID: vpcTestAcct, CIDR: "10.1.0.0/16"})
			errs <- err
		}()
	}
	created := 0
	for range 6 {
		if err := <-errs; err == nil {
			created++
		} else {
			wantVPCCode(t, "concurrent CreateVPC over the quota", err, "VpcLimitExceeded")
		}
	}
	if created != 3 {
		t.Fatalf("%d of 6 concurrent CreateVPC succeeded with 3 places left", created)
	}
	_, err = f.CreateVPC(ctx, CreateVPCInput{AccountID: vpcTestAcct, CIDR: "10.9.0.0/16"})
	wantVPCCode(t, "6th VPC", err, "VpcLimitExceeded")
	if n := countKeys(t, st, "vpcs/"+vpcTestAcct+"/"); n != 5 {
		t.Fatalf("%d VPCs after the refused 6th", n)
	}
	// Another account has its own quota.
	other, err := f.CreateVPC(ctx, CreateVPCInput{AccountID: "444455556666", CIDR: "10.0.0.0/16"})
	mustVPC(t, "other account", err)
	mustVPC(t, "DeleteVPC other", f.DeleteVPC(ctx, "444455556666", other.ID))

	// The default VPC cannot go while its default subnets are there.
	wantVPCCode(t, "DeleteVPC default", f.DeleteVPC(ctx, vpcTestAcct, def.ID), "DependencyViolation")

	mustVPC(t, "DeleteVPC", f.DeleteVPC(ctx, vpcTestAcct, vpc.ID))
	if netnsExists(vpc.Namespace) {
		t.Fatalf("namespace %s left after DeleteVPC", vpc.Namespace)
	}
	for _, k := range []string{vpcKey(vpcTestAcct, vpc.ID), rtbKey(vpcTestAcct, vpc.MainRouteTableID),
		naclKey(vpcTestAcct, vpc.DefaultNetworkACLID), sgKey(vpcTestAcct, vpc.DefaultSecurityGroupID), sgNameKey(vpc.ID, "default")} {
		var raw map[string]any
		if _, err := st.Get(ctx, k, &raw); !errors.Is(err, store.ErrNotFound) {
			t.Fatalf("%s after DeleteVPC: %v", k, err)
		}
	}
	wantVPCCode(t, "DeleteVPC again", f.DeleteVPC(ctx, vpcTestAcct, vpc.ID), "InvalidVpcID.NotFound")
}

// The default VPC, made at an account's first launch, counts against the
// VPC quota even before it exists, and its creation racing CreateVPCs
// never takes the account past the limit.
func TestVPCQuotaKeepsAPlaceForTheDefaultVPC(t *testing.T) {
	f, st := newVPCFabric(t, "vpq")
	ctx := context.Background()
	const acct = "777788889999"
	// No default VPC yet: four of five concurrent creates fit, one
	// place stays for it; the default VPC, made meanwhile, takes it.
	errs := make(chan error, MaxVPCsPerAccount+1)
	for i := range MaxVPCsPerAccount {
		go func() {
			_, err := f.CreateVPC(ctx, CreateVPCInput{AccountID: acct, CIDR: fmt.Sprintf("10.%d.0.0/16", i)})
			errs <- err
		}()
	}
	go func() {
		_, err := f.EnsureDefaultVPC(ctx, acct)
		errs <- err
	}()
	failed := 0
	for range MaxVPCsPerAccount + 1 {
		if err := <-errs; err != nil {
			wantVPCCode(t, "CreateVPC racing the default VPC", err, "VpcLimitExceeded")
			failed++
		}
	}
	if n := countKeys(t, st, "vpcs/"+acct+"/"); n != MaxVPCsPerAccount || failed != 1 {
		t.Fatalf("%d VPCs and %d refused creates after 5 creates raced the default VPC, want %d and 1", n, failed, MaxVPCsPerAccount)
	}
	vpcs, err := f.ListVPCs(ctx, acct)
	mustVPC(t, "ListVPCs", err)
	if !slices.ContainsFunc(vpcs, func(v VPC) bool { return v.IsDefault }) {
		t.Fatalf("no default VPC among %+v", vpcs)
	}
	for _, v := range vpcs {
		if !v.IsDefault {
			mustVPC(t, "DeleteVPC", f.DeleteVPC(ctx, acct, v.ID))
		}
	}

	// One after the other: the fifth create is refused while the default
	// VPC is still to come, and the default VPC then fits.
	const acct2 = "777788880000"
	for i := range MaxVPCsPerAccount - 1 {
		_, err := f.CreateVPC(ctx, CreateVPCInput{AccountID: acct2, CIDR: fmt.Sprintf("10.%d.0.0/16", i)})
		mustVPC(t, "CreateVPC", err)
	}
	_, err = f.CreateVPC(ctx, CreateVPCInput{AccountID: acct2, CIDR: "10.9.0.0/16"})
	wantVPCCode(t, "5th VPC before the default VPC", err, "VpcLimitExceeded")
	_, err = f.EnsureDefaultVPC(ctx, acct2)
	mustVPC(t, "EnsureDefaultVPC", err)
	if n := countKeys(t, st, "vpcs/"+acct2+"/"); n != MaxVPCsPerAccount {
		t.Fatalf("%d VPCs, want %d", n, MaxVPCsPerAccount)
	}
}

func TestSubnetCreateDescribeDelete(t *testing.T) {
	f, st := newVPCFabric(t, "vp2")
	ctx := context.Background()
	vpc, err := f.CreateVPC(ctx, CreateVPCInput{AccountID: vpcTestAcct, CIDR: "10.0.0.0/16"})
	mustVPC(t, "CreateVPC", err)

	sn, err := f.CreateSubnet(ctx, CreateSubnetInput{AccountID: vpcTestAcct, VPCID: vpc.ID, CIDR: "10.0.1.0/24", AvailabilityZone: "lab-1b"})
	mustVPC(t, "CreateSubnet", err)
	if sn.AvailabilityZone != "lab-1b" || sn.AvailabilityZoneID != "lab1-az2" || sn.RouterIP != "10.0.1.1" ||
		sn.NetworkACLID != vpc.DefaultNetworkACLID || sn.MapPublicIPOnLaunch || sn.DefaultForAz || sn.AvailableIPAddressCount != 251 {
		t.Fatalf("subnet: %+v", sn)
	}
	if names := linkNames(t, vpc.Namespace); !contains(names, sn.Bridge) {
		t.Fatalf("bridge %s not in %s: %v", sn.Bridge, vpc.Namespace, names)
	}
	for _, c := range []struct {
		in   CreateSubnetInput
		code string
	}{
		{CreateSubnetInput{CIDR: "10.0.1.128/25"}, "InvalidSubnet.Conflict"},
		{CreateSubnetInput{CIDR: "10.0.0.0/16"}, "InvalidSubnet.Conflict"},
		{CreateSubnetInput{CIDR: "10.1.0.0/24"}, "InvalidSubnet.Range"},
		{CreateSubnetInput{CIDR: "10.0.2.0/29"}, "InvalidSubnet.Range"},
		{CreateSubnetInput{CIDR: "10.0.2.1/24"}, "InvalidParameterValue"},
		{CreateSubnetInput{CIDR: "10.0.2.0/24", AvailabilityZone: "lab-1z"}, "InvalidParameterValue"},
		{CreateSubnetInput{CIDR: "10.0.2.0/24", AvailabilityZoneID: "use1-az9"}, "InvalidParameterValue"},
		{CreateSubnetInput{CIDR: "10.0.2.0/24", VPCID: "vpc-00000000000000000"}, "InvalidVpcID.NotFound"},
	} {
		in := c.in
		in.AccountID = vpcTestAcct
		if in.VPCID == "" {
			in.VPCID = vpc.ID
		}
		_, err := f.CreateSubnet(ctx, in)
		wantVPCCode(t, "CreateSubnet "+in.CIDR, err, c.code)
	}
	if n := countKeys(t, st, "subnets/"); n != 1 {
		t.Fatalf("%d subnet records after refused creates", n)
	}
	small, err := f.CreateSubnet(ctx, CreateSubnetInput{AccountID: vpcTestAcct, VPCID: vpc.ID, CIDR: "10.0.2.0/28", AvailabilityZoneID: "lab1-az3"})
	mustVPC(t, "CreateSubnet /28", err)
	if small.AvailabilityZone != "lab-1c" || small.AvailableIPAddressCount != 11 {
		t.Fatalf("/28 subnet: %+v", small)
	}
	mustVPC(t, "SetMapPublicIPOnLaunch", f.SetMapPublicIPOnLaunch(ctx, vpcTestAcct, small.ID, true))
	// MapPublicIpOnLaunch gives a public IP from the pool; it needs no
	// internet gateway to be assigned (AWS assigns it regardless).
	e, err := f.CreateENI(ctx, ENIRequest{AccountID: vpcTestAcct, SubnetID: small.ID, InstanceID: "i-0000000000000000a"})
	mustVPC(t, "CreateENI", err)
	if e.PublicIP != "203.0.113.10" {
		t.Fatalf("auto-assigned public IP %q, want the pool's first, 203.0.113.10", e.PublicIP)
	}
	list, err := f.ListSubnets(ctx, vpcTestAcct)
	mustVPC(t, "ListSubnets", err)
	for _, s := range list {
		if s.ID == small.ID && (s.AvailableIPAddressCount != 10 || !s.MapPublicIPOnLaunch) {
			t.Fatalf("/28 with one ENI: %+v", s)
		}
	}

	wantVPCCode(t, "DeleteVPC with subnets", f.DeleteVPC(ctx, vpcTestAcct, vpc.ID), "DependencyViolation")
	wantVPCCode(t, "DeleteSubnet with ENI", f.DeleteSubnet(ctx, vpcTestAcct, small.ID), "DependencyViolation")
	mustVPC(t, "DeleteENI", f.DeleteENI(ctx, vpcTestAcct, e.ID))
	if n := countKeys(t, st, "public-ips/"); n != 0 {
		t.Fatalf("public IP not released with its ENI: %d held", n)
	}
	mustVPC(t, "DeleteSubnet", f.DeleteSubnet(ctx, vpcTestAcct, small.ID))
	mustVPC(t, "DeleteSubnet", f.DeleteSubnet(ctx, vpcTestAcct, sn.ID))
	if names := linkNames(t, vpc.Namespace); contains(names, sn.Bridge) || contains(names, small.Bridge) {
		t.Fatalf("bridges left after DeleteSubnet: %v", names)
	}
	f.mu.Lock()
	dhcp := len(f.vpcs[vpc.ID].dhcp)
	f.mu.Unlock()
	if dhcp != 0 {
		t.Fatalf("%d DHCP servers left after deleting every subnet", dhcp)
	}
	wantVPCCode(t, "DeleteSubnet again", f.DeleteSubnet(ctx, vpcTestAcct, sn.ID), "InvalidSubnetID.NotFound")
	mustVPC(t, "DeleteVPC", f.DeleteVPC(ctx, vpcTestAcct, vpc.ID))
}
