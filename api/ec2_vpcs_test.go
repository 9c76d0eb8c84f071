package api

import (
	"context"
	"net/http/httptest"
	"os"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/service/ec2"
	ec2types "github.com/aws/aws-sdk-go-v2/service/ec2/types"

	"github.com/labcloud/labcloud/iamd"
	"github.com/labcloud/labcloud/internal/store/storetest"
	"github.com/labcloud/labcloud/internal/tags"
	"github.com/labcloud/labcloud/netfab"
)

type vpcNoMetadata struct{}

func (vpcNoMetadata) Lookup(context.Context, string, string) (netfab.Metadata, bool) {
	return netfab.Metadata{}, false
}

// newVPCClient serves the VPC actions over a real etcd and a real network
// fabric (namespaces named vp6-…, removed in cleanup) and returns an
// aws-sdk-go-v2 EC2 client of the admin account, so a real AWS SDK parses
// every response.
func newVPCClient(t *testing.T) (*ec2.Client, *netfab.Fabric, string) {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("needs root: the VPC fabric creates network namespaces and bridges (CI runs as root)")
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	t.Cleanup(cancel)
	st := storetest.NewEmbedded(t)
	accounts := iamd.NewAccounts(st)
	acct, admin, err := accounts.Bootstrap(ctx, "admin")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if out, _ := exec.Command("ip", "netns", "list").CombinedOutput(); strings.Contains(string(out), "vp6-") {
			t.Errorf("namespaces left behind:\n%s", out)
		}
	})
	f, err := netfab.New(ctx, netfab.Options{Store: st, Zones: []string{"lab-1a", "lab-1b"}, NamePrefix: "vp6", Metadata: vpcNoMetadata{}})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = f.Teardown(context.Background()) })
	tg := tags.New(st)
	// What the daemon must wire up so that CreateTags accepts these ids.
	for prefix, kind := range map[string]string{"vpc-": "vpc", "subnet-": "subnet", "rtb-": "route-table", "igw-": "internet-gateway",
		"eipalloc-": "elastic-ip", "nat-": "natgateway", "eni-": "network-interface"} {
		tg.Register(prefix, f.Exists, kind)
	}
	hs := httptest.NewServer(New(Options{Accounts: accounts, Region: "lab-1", Tags: tg, Network: f}))
	t.Cleanup(hs.Close)
	return ec2.New(ec2.Options{Region: "lab-1", BaseEndpoint: aws.String(hs.URL),
		Credentials: credentials.NewStaticCredentialsProvider(admin.AccessKeyID, admin.SecretAccessKey, "")}), f, acct.ID
}

func wantVPCAPICode(t *testing.T, what string, err error, code string) {
	t.Helper()
	if got := apiCode(err); got != code {
		t.Fatalf("%s: got %v, want %s", what, err, code)
	}
}

func TestVPCAPI(t *testing.T) {
	c, f, acct := newVPCClient(t)
	ctx := context.Background()

	_, err := c.CreateVpc(ctx, &ec2.CreateVpcInput{CidrBlock: aws.String("10.0.0.0/8")})
	wantVPCAPICode(t, "CreateVpc /8", err, "InvalidVpc.Range")
	vout, err := c.CreateVpc(ctx, &ec2.CreateVpcInput{CidrBlock: aws.String("10.0.0.0/16"), TagSpecifications: []ec2types.TagSpecification{
		{ResourceType: ec2types.ResourceTypeVpc, Tags: []ec2types.Tag{{Key: aws.String("Name"), Value: aws.String("lab")}}}}})
	if err != nil {
		t.Fatal(err)
	}
	vpc := vout.Vpc
	if aws.ToString(vpc.CidrBlock) != "10.0.0.0/16" || vpc.State != ec2types.VpcStateAvailable || aws.ToString(vpc.DhcpOptionsId) != "default" ||
		vpc.InstanceTenancy != ec2types.TenancyDefault || aws.ToBool(vpc.IsDefault) || len(vpc.CidrBlockAssociationSet) != 1 ||
		aws.ToString(vpc.CidrBlockAssociationSet[0].CidrBlock) != "10.0.0.0/16" || len(vpc.Tags) != 1 || aws.ToString(vpc.OwnerId) != acct {
		t.Fatalf("CreateVpc: %+v", vpc)
	}
	vpcID := aws.ToString(vpc.VpcId)
	dv, err := c.DescribeVpcs(ctx, &ec2.DescribeVpcsInput{Filters: []ec2types.Filter{{Name: aws.String("tag:Name"), Values: []string{"lab"}},
		{Name: aws.String("cidr-block-association.cidr-block"), Values: []string{"10.0.*"}}}})
	if err != nil || len(dv.Vpcs) != 1 || aws.ToString(dv.Vpcs[0].VpcId) != vpcID {
		t.Fatalf("DescribeVpcs by filters: %+v, %v", dv, err)
	}
	_, err = c.DescribeVpcs(ctx, &ec2.DescribeVpcsInput{VpcIds: []string{"vpc-00000000000000000"}})
	wantVPCAPICode(t, "DescribeVpcs missing", err, "InvalidVpcID.NotFound")
	_, err = c.ModifyVpcAttribute(ctx, &ec2.ModifyVpcAttributeInput{VpcId: &vpcID, EnableDnsHostnames: &ec2types.AttributeBooleanValue{Value: aws.Bool(true)}})
	if err != nil {
		t.Fatal(err)
	}
	_, err = c.ModifyVpcAttribute(ctx, &ec2.ModifyVpcAttributeInput{VpcId: &vpcID, EnableDnsHostnames: &ec2types.AttributeBooleanValue{Value: aws.Bool(true)},
		EnableDnsSupport: &ec2types.AttributeBooleanValue{Value: aws.Bool(true)}})
	wantVPCAPICode(t, "two attributes at once", err, "InvalidParameterCombination")
	da, err := c.DescribeVpcAttribute(ctx, &ec2.DescribeVpcAttributeInput{VpcId: &vpcID, Attribute: ec2types.VpcAttributeNameEnableDnsHostnames})
	if err != nil || da.EnableDnsHostnames == nil || !aws.ToBool(da.EnableDnsHostnames.Value) {
		t.Fatalf("DescribeVpcAttribute: %+v, %v", da, err)
	}

	sout, err := c.CreateSubnet(ctx, &ec2.CreateSubnetInput{VpcId: &vpcID, CidrBlock: aws.String("10.0.0.0/28"), AvailabilityZone: aws.String("lab-1b")})
	if err != nil {
		t.Fatal(err)
	}
	sub := sout.Subnet
	subID := aws.ToString(sub.SubnetId)
	if aws.ToInt32(sub.AvailableIpAddressCount) != 11 || aws.ToString(sub.AvailabilityZoneId) != "lab1-az2" || aws.ToBool(sub.MapPublicIpOnLaunch) {
		t.Fatalf("CreateSubnet: %+v", sub)
	}
	_, err = c.CreateSubnet(ctx, &ec2.CreateSubnetInput{VpcId: &vpcID, CidrBlock: aws.String("10.0.0.0/24")})
	wantVPCAPICode(t, "overlap", err, "InvalidSubnet.Conflict")
	_, err = c.CreateSubnet(ctx, &ec2.CreateSubnetInput{VpcId: &vpcID, CidrBlock: aws.String("10.9.0.0/24")})
	wantVPCAPICode(t, "outside", err, "InvalidSubnet.Range")
	_, err = c.ModifySubnetAttribute(ctx, &ec2.ModifySubnetAttributeInput{SubnetId: &subID, MapPublicIpOnLaunch: &ec2types.AttributeBooleanValue{Value: aws.Bool(true)}})
	if err != nil {
		t.Fatal(err)
	}
	ds, err := c.DescribeSubnets(ctx, &ec2.DescribeSubnetsInput{Filters: []ec2types.Filter{{Name: aws.String("vpc-id"), Values: []string{vpcID}},
		{Name: aws.String("map-public-ip-on-launch"), Values: []string{"true"}}}})
	if err != nil || len(ds.Subnets) != 1 || aws.ToString(ds.Subnets[0].SubnetId) != subID {
		t.Fatalf("DescribeSubnets: %+v, %v", ds, err)
	}

	// Internet gateway and route table.
	gout, err := c.CreateInternetGateway(ctx, &ec2.CreateInternetGatewayInput{})
	if err != nil {
		t.Fatal(err)
	}
	igwID := aws.ToString(gout.InternetGateway.InternetGatewayId)
	if _, err := c.AttachInternetGateway(ctx, &ec2.AttachInternetGatewayInput{InternetGatewayId: &igwID, VpcId: &vpcID}); err != nil {
		t.Fatal(err)
	}
	dg, err := c.DescribeInternetGateways(ctx, &ec2.DescribeInternetGatewaysInput{Filters: []ec2types.Filter{{Name: aws.String("attachment.vpc-id"), Values: []string{vpcID}}}})
	if err != nil || len(dg.InternetGateways) != 1 || len(dg.InternetGateways[0].Attachments) != 1 ||
		dg.InternetGateways[0].Attachments[0].State != ec2types.AttachmentStatus("available") {
		t.Fatalf("DescribeInternetGateways: %+v, %v", dg, err)
	}
	rout, err := c.CreateRouteTable(ctx, &ec2.CreateRouteTableInput{VpcId: &vpcID})
	if err != nil {
		t.Fatal(err)
	}
	rtID := aws.ToString(rout.RouteTable.RouteTableId)
	if _, err := c.CreateRoute(ctx, &ec2.CreateRouteInput{RouteTableId: &rtID, DestinationCidrBlock: aws.String("0.0.0.0/0"), GatewayId: &igwID}); err != nil {
		t.Fatal(err)
	}
	_, err = c.CreateRoute(ctx, &ec2.CreateRouteInput{RouteTableId: &rtID, DestinationCidrBlock: aws.String("0.0.0.0/0"), GatewayId: &igwID})
	wantVPCAPICode(t, "duplicate route", err, "RouteAlreadyExists")
	aout, err := c.AssociateRouteTable(ctx, &ec2.AssociateRouteTableInput{RouteTableId: &rtID, SubnetId: &subID})
	if err != nil || aout.AssociationState.State != ec2types.RouteTableAssociationStateCodeAssociated {
		t.Fatalf("AssociateRouteTable: %+v, %v", aout, err)
	}
	drt, err := c.DescribeRouteTables(ctx, &ec2.DescribeRouteTablesInput{Filters: []ec2types.Filter{{Name: aws.String("vpc-id"), Values: []string{vpcID}}}})
	if err != nil || len(drt.RouteTables) != 2 {
		t.Fatalf("DescribeRouteTables: %+v, %v", drt, err)
	}
	for _, rt := range drt.RouteTables {
		r0 := rt.Routes[0]
		if aws.ToString(r0.GatewayId) != "local" || r0.Origin != ec2types.RouteOriginCreateRouteTable || r0.State != ec2types.RouteStateActive {
			t.Fatalf("first route of %s: %+v", aws.ToString(rt.RouteTableId), r0)
		}
		if aws.ToString(rt.RouteTableId) == rtID {
			if len(rt.Routes) != 2 || aws.ToString(rt.Routes[1].GatewayId) != igwID || len(rt.Associations) != 1 || aws.ToString(rt.Associations[0].SubnetId) != subID {
				t.Fatalf("custom table: %+v", rt)
			}
		} else if len(rt.Associations) != 1 || !aws.ToBool(rt.Associations[0].Main) {
			t.Fatalf("main table: %+v", rt)
		}
	}
	dm, err := c.DescribeRouteTables(ctx, &ec2.DescribeRouteTablesInput{Filters: []ec2types.Filter{{Name: aws.String("association.main"), Values: []string{"true"}},
		{Name: aws.String("vpc-id"), Values: []string{vpcID}}}})
	if err != nil || len(dm.RouteTables) != 1 || aws.ToString(dm.RouteTables[0].RouteTableId) == rtID {
		t.Fatalf("main table by filter: %+v, %v", dm, err)
	}

	// ID lists and pages as the SDK sends them.
	dgi, err := c.DescribeInternetGateways(ctx, &ec2.DescribeInternetGatewaysInput{InternetGatewayIds: []string{igwID}})
	if err != nil || len(dgi.InternetGateways) != 1 {
		t.Fatalf("DescribeInternetGateways by id: %+v, %v", dgi, err)
	}
	for _, cidr := range []string{"10.0.2.0/24", "10.0.3.0/24", "10.0.4.0/24", "10.0.5.0/24", "10.0.6.0/24"} {
		if _, err := c.CreateSubnet(ctx, &ec2.CreateSubnetInput{VpcId: &vpcID, CidrBlock: aws.String(cidr)}); err != nil {
			t.Fatal(err)
		}
	}
	var paged []string
	var tok *string
	for range 3 {
		page, err := c.DescribeSubnets(ctx, &ec2.DescribeSubnetsInput{MaxResults: aws.Int32(5), NextToken: tok})
		if err != nil {
			t.Fatal(err)
		}
		for _, sn := range page.Subnets {
			paged = append(paged, aws.ToString(sn.SubnetId))
		}
		if tok = page.NextToken; tok == nil {
			break
		}
	}
	if len(paged) != 6 || tok != nil {
		t.Fatalf("6 subnets in pages of 5: %v (next %v)", paged, tok)
	}
	_, err = c.DescribeSubnets(ctx, &ec2.DescribeSubnetsInput{MaxResults: aws.Int32(4)})
	wantVPCAPICode(t, "MaxResults 4", err, "InvalidParameterValue")
	for _, id := range paged {
		if id != subID {
			if _, err := c.DeleteSubnet(ctx, &ec2.DeleteSubnetInput{SubnetId: aws.String(id)}); err != nil {
				t.Fatal(err)
			}
		}
	}
	if _, err := c.CreateTags(ctx, &ec2.CreateTagsInput{Resources: []string{subID, igwID}, Tags: []ec2types.Tag{{Key: aws.String("tier"), Value: aws.String("web")}}}); err != nil {
		t.Fatal(err)
	}
	dt, err := c.DescribeSubnets(ctx, &ec2.DescribeSubnetsInput{Filters: []ec2types.Filter{{Name: aws.String("tag-key"), Values: []string{"tier"}}}})
	if err != nil || len(dt.Subnets) != 1 || len(dt.Subnets[0].Tags) != 1 {
		t.Fatalf("DescribeSubnets by tag-key: %+v, %v", dt, err)
	}

	// Elastic IPs, an interface, NAT gateway.
	eni, err := f.CreateENI(ctx, netfab.ENIRequest{AccountID: acct, SubnetID: subID, InstanceID: "i-0123456789abcdef0"})
	if err != nil {
		t.Fatal(err)
	}
	var allocs []string
	for range 5 {
		a, err := c.AllocateAddress(ctx, &ec2.AllocateAddressInput{Domain: ec2types.DomainTypeVpc})
		if err != nil {
			t.Fatal(err)
		}
		allocs = append(allocs, aws.ToString(a.AllocationId))
	}
	_, err = c.AllocateAddress(ctx, &ec2.AllocateAddressInput{Domain: ec2types.DomainTypeVpc})
	wantVPCAPICode(t, "6th address", err, "AddressLimitExceeded")
	as, err := c.AssociateAddress(ctx, &ec2.AssociateAddressInput{AllocationId: &allocs[0], InstanceId: aws.String("i-0123456789abcdef0")})
	if err != nil || !strings.HasPrefix(aws.ToString(as.AssociationId), "eipassoc-") {
		t.Fatalf("AssociateAddress: %+v, %v", as, err)
	}
	_, err = c.AssociateAddress(ctx, &ec2.AssociateAddressInput{AllocationId: &allocs[0], NetworkInterfaceId: aws.String(eni.ID + "x")})
	wantVPCAPICode(t, "associate to a missing interface", err, "InvalidNetworkInterfaceID.NotFound")
	da2, err := c.DescribeAddresses(ctx, &ec2.DescribeAddressesInput{Filters: []ec2types.Filter{{Name: aws.String("instance-id"), Values: []string{"i-0123456789abcdef0"}}}})
	if err != nil || len(da2.Addresses) != 1 || aws.ToString(da2.Addresses[0].AllocationId) != allocs[0] ||
		aws.ToString(da2.Addresses[0].NetworkInterfaceId) != eni.ID || aws.ToString(da2.Addresses[0].PrivateIpAddress) != eni.PrivateIP {
		t.Fatalf("DescribeAddresses: %+v, %v", da2, err)
	}
	dpi, err := c.DescribeAddresses(ctx, &ec2.DescribeAddressesInput{PublicIps: []string{aws.ToString(da2.Addresses[0].PublicIp)}, AllocationIds: []string{allocs[0]}})
	if err != nil || len(dpi.Addresses) != 1 {
		t.Fatalf("DescribeAddresses by ip and id: %+v, %v", dpi, err)
	}
	_, err = c.DescribeAddresses(ctx, &ec2.DescribeAddressesInput{PublicIps: []string{"198.51.100.7"}})
	wantVPCAPICode(t, "unknown public IP", err, "InvalidAddress.NotFound")
	_, err = c.ReleaseAddress(ctx, &ec2.ReleaseAddressInput{AllocationId: &allocs[0]})
	wantVPCAPICode(t, "release associated", err, "InvalidIPAddress.InUse")

	dn, err := c.DescribeNetworkInterfaces(ctx, &ec2.DescribeNetworkInterfacesInput{Filters: []ec2types.Filter{{Name: aws.String("attachment.instance-id"), Values: []string{"i-0123456789abcdef0"}}}})
	if err != nil || len(dn.NetworkInterfaces) != 1 {
		t.Fatalf("DescribeNetworkInterfaces: %+v, %v", dn, err)
	}
	ni := dn.NetworkInterfaces[0]
	if aws.ToString(ni.NetworkInterfaceId) != eni.ID || ni.Status != ec2types.NetworkInterfaceStatusInUse || aws.ToString(ni.MacAddress) != eni.MAC ||
		aws.ToString(ni.PrivateDnsName) != "ip-"+strings.ReplaceAll(eni.PrivateIP, ".", "-")+".lab-1.compute.internal" ||
		ni.Attachment == nil || aws.ToString(ni.Attachment.InstanceId) != "i-0123456789abcdef0" || aws.ToInt32(ni.Attachment.DeviceIndex) != 0 ||
		ni.Association == nil || aws.ToString(ni.Association.AllocationId) != allocs[0] || aws.ToString(ni.Association.IpOwnerId) != acct ||
		len(ni.Groups) != 1 || aws.ToString(ni.Groups[0].GroupName) != "default" || ni.InterfaceType != ec2types.NetworkInterfaceTypeInterface ||
		!aws.ToBool(ni.SourceDestCheck) {
		t.Fatalf("network interface: %+v", ni)
	}

	nout, err := c.CreateNatGateway(ctx, &ec2.CreateNatGatewayInput{SubnetId: &subID, AllocationId: &allocs[1]})
	if err != nil {
		t.Fatal(err)
	}
	natID := aws.ToString(nout.NatGateway.NatGatewayId)
	if nout.NatGateway.State != ec2types.NatGatewayStateAvailable || len(nout.NatGateway.NatGatewayAddresses) != 1 ||
		aws.ToString(nout.NatGateway.NatGatewayAddresses[0].AllocationId) != allocs[1] {
		t.Fatalf("CreateNatGateway: %+v", nout.NatGateway)
	}
	_, err = c.CreateNatGateway(ctx, &ec2.CreateNatGatewayInput{SubnetId: &subID, AllocationId: &allocs[0]})
	wantVPCAPICode(t, "NAT with an associated address", err, "Resource.AlreadyAssociated")
	dng, err := c.DescribeNatGateways(ctx, &ec2.DescribeNatGatewaysInput{Filter: []ec2types.Filter{{Name: aws.String("vpc-id"), Values: []string{vpcID}}}})
	if err != nil || len(dng.NatGateways) != 1 || aws.ToString(dng.NatGateways[0].NatGatewayId) != natID {
		t.Fatalf("DescribeNatGateways: %+v, %v", dng, err)
	}
	_, err = c.DeleteSubnet(ctx, &ec2.DeleteSubnetInput{SubnetId: &subID})
	wantVPCAPICode(t, "DeleteSubnet in use", err, "DependencyViolation")
	_, err = c.DeleteVpc(ctx, &ec2.DeleteVpcInput{VpcId: &vpcID})
	wantVPCAPICode(t, "DeleteVpc in use", err, "DependencyViolation")

	// Clean up in order; DeleteVpc then succeeds.
	if _, err := c.DeleteNatGateway(ctx, &ec2.DeleteNatGatewayInput{NatGatewayId: &natID}); err != nil {
		t.Fatal(err)
	}
	if _, err := c.DisassociateAddress(ctx, &ec2.DisassociateAddressInput{AssociationId: as.AssociationId}); err != nil {
		t.Fatal(err)
	}
	for _, a := range allocs {
		if _, err := c.ReleaseAddress(ctx, &ec2.ReleaseAddressInput{AllocationId: aws.String(a)}); err != nil {
			t.Fatal(err)
		}
	}
	if err := f.DeleteENI(ctx, acct, eni.ID); err != nil {
		t.Fatal(err)
	}
	if _, err := c.DisassociateRouteTable(ctx, &ec2.DisassociateRouteTableInput{AssociationId: aout.AssociationId}); err != nil {
		t.Fatal(err)
	}
	if _, err := c.DeleteRouteTable(ctx, &ec2.DeleteRouteTableInput{RouteTableId: &rtID}); err != nil {
		t.Fatal(err)
	}
	if _, err := c.DeleteSubnet(ctx, &ec2.DeleteSubnetInput{SubnetId: &subID}); err != nil {
		t.Fatal(err)
	}
	if _, err := c.DetachInternetGateway(ctx, &ec2.DetachInternetGatewayInput{InternetGatewayId: &igwID, VpcId: &vpcID}); err != nil {
		t.Fatal(err)
	}
	if _, err := c.DeleteInternetGateway(ctx, &ec2.DeleteInternetGatewayInput{InternetGatewayId: &igwID}); err != nil {
		t.Fatal(err)
	}
	if _, err := c.DeleteVpc(ctx, &ec2.DeleteVpcInput{VpcId: &vpcID}); err != nil {
		t.Fatal(err)
	}
	dv, err = c.DescribeVpcs(ctx, &ec2.DescribeVpcsInput{})
	if err != nil || len(dv.Vpcs) != 0 {
		t.Fatalf("VPCs after delete: %+v, %v", dv, err)
	}
}

func TestVPCActionsUnavailableWithoutFabric(t *testing.T) {
	s := New(Options{})
	_, err := s.vpcFabric()
	if wireError(ServiceEC2, err).Code != "Unavailable" {
		t.Fatalf("no fabric: %v", err)
	}
}
