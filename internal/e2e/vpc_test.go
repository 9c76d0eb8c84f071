package e2e

import (
	"os"
	"os/exec"
	"strings"
	"testing"
)

// The VPC API through the real aws CLI against a real labcloudd (root:
// the daemon builds namespaces and bridges; no VMs): create, describe,
// the AWS error codes of bad input and limits, and a clean teardown.
func TestVPCWithTheAWSCLI(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("needs root: labcloudd builds VPC namespaces and bridges (CI runs as root)")
	}
	// Registered before the daemon, so it runs after the daemon stopped:
	// whatever a failure left behind goes.
	t.Cleanup(func() {
		out, _ := exec.Command("ip", "netns", "list").Output()
		for _, l := range strings.Split(string(out), "\n") {
			if f := strings.Fields(l); len(f) > 0 && strings.HasPrefix(f[0], "vp7-") {
				t.Errorf("namespace %s left behind", f[0])
				_ = exec.Command("ip", "netns", "delete", f[0]).Run()
			}
		}
	})
	d := startDaemon(t, "", "--net-prefix", "vp7")
	e := newAWSEnv(t, d)
	const p = "labcloud"

	e.fails("InvalidVpc.Range", p, "ec2", "create-vpc", "--cidr-block", "10.0.0.0/8")
	var vpc struct {
		Vpc struct {
			VpcId, CidrBlock, State, DhcpOptionsId, InstanceTenancy string
			IsDefault                                               bool
			CidrBlockAssociationSet                                 []struct{ CidrBlock string }
			Tags                                                    []struct{ Key, Value string }
		}
	}
	e.ok(&vpc, p, "ec2", "create-vpc", "--cidr-block", "10.0.0.0/16",
		"--tag-specifications", "ResourceType=vpc,Tags=[{Key=Name,Value=lab}]")
	v := vpc.Vpc
	if v.CidrBlock != "10.0.0.0/16" || v.State != "available" || v.IsDefault || len(v.CidrBlockAssociationSet) != 1 ||
		len(v.Tags) != 1 || v.Tags[0].Value != "lab" {
		t.Fatalf("create-vpc: %+v", v)
	}
	if out := sh(t, "ip netns list"); !strings.Contains(out, "vp7-"+v.VpcId) {
		t.Fatalf("no namespace vp7-%s:\n%s", v.VpcId, out)
	}
	var vpcs struct{ Vpcs []struct{ VpcId string } }
	e.ok(&vpcs, p, "ec2", "describe-vpcs", "--filters", "Name=tag:Name,Values=lab")
	if len(vpcs.Vpcs) != 1 || vpcs.Vpcs[0].VpcId != v.VpcId {
		t.Fatalf("describe-vpcs by tag: %+v", vpcs)
	}
	e.ok(nil, p, "ec2", "modify-vpc-attribute", "--vpc-id", v.VpcId, "--enable-dns-hostnames", `{"Value":true}`)
	var attr struct{ EnableDnsHostnames struct{ Value bool } }
	e.ok(&attr, p, "ec2", "describe-vpc-attribute", "--vpc-id", v.VpcId, "--attribute", "enableDnsHostnames")
	if !attr.EnableDnsHostnames.Value {
		t.Fatalf("describe-vpc-attribute: %+v", attr)
	}

	type subnetJSON struct {
		SubnetId, CidrBlock, AvailabilityZone, VpcId string
		AvailableIpAddressCount                      int
		MapPublicIpOnLaunch                          bool
	}
	var sn struct{ Subnet subnetJSON }
	e.ok(&sn, p, "ec2", "create-subnet", "--vpc-id", v.VpcId, "--cidr-block", "10.0.0.0/28", "--availability-zone", "lab-1a")
	pub := sn.Subnet.SubnetId
	e.fails("InvalidSubnet.Conflict", p, "ec2", "create-subnet", "--vpc-id", v.VpcId, "--cidr-block", "10.0.0.0/24")
	e.fails("InvalidSubnet.Range", p, "ec2", "create-subnet", "--vpc-id", v.VpcId, "--cidr-block", "10.1.0.0/24")
	e.ok(&sn, p, "ec2", "create-subnet", "--vpc-id", v.VpcId, "--cidr-block", "10.0.1.0/24")
	priv := sn.Subnet.SubnetId
	var subnets struct{ Subnets []subnetJSON }
	e.ok(&subnets, p, "ec2", "describe-subnets", "--subnet-ids", pub)
	if len(subnets.Subnets) != 1 || subnets.Subnets[0].AvailableIpAddressCount != 11 || subnets.Subnets[0].AvailabilityZone != "lab-1a" {
		t.Fatalf("describe-subnets of a /28: %+v", subnets)
	}
	e.ok(nil, p, "ec2", "modify-subnet-attribute", "--subnet-id", pub, "--map-public-ip-on-launch")
	e.ok(&subnets, p, "ec2", "describe-subnets", "--filters", "Name=vpc-id,Values="+v.VpcId, "Name=map-public-ip-on-launch,Values=true")
	if len(subnets.Subnets) != 1 || subnets.Subnets[0].SubnetId != pub {
		t.Fatalf("describe-subnets by map-public-ip-on-launch: %+v", subnets)
	}
	e.fails("DependencyViolation", p, "ec2", "delete-vpc", "--vpc-id", v.VpcId)

	// Internet gateway.
	var igw struct {
		InternetGateway struct{ InternetGatewayId string }
	}
	e.ok(&igw, p, "ec2", "create-internet-gateway")
	igwID := igw.InternetGateway.InternetGatewayId
	e.ok(nil, p, "ec2", "attach-internet-gateway", "--internet-gateway-id", igwID, "--vpc-id", v.VpcId)
	var igws struct {
		InternetGateways []struct {
			InternetGatewayId string
			Attachments       []struct{ State, VpcId string }
		}
	}
	e.ok(&igws, p, "ec2", "describe-internet-gateways", "--filters", "Name=attachment.vpc-id,Values="+v.VpcId)
	if len(igws.InternetGateways) != 1 || len(igws.InternetGateways[0].Attachments) != 1 || igws.InternetGateways[0].Attachments[0].State != "available" {
		t.Fatalf("describe-internet-gateways: %+v", igws)
	}

	// Route table, route, association.
	var rt struct{ RouteTable struct{ RouteTableId string } }
	e.ok(&rt, p, "ec2", "create-route-table", "--vpc-id", v.VpcId)
	rtID := rt.RouteTable.RouteTableId
	e.ok(nil, p, "ec2", "create-route", "--route-table-id", rtID, "--destination-cidr-block", "0.0.0.0/0", "--gateway-id", igwID)
	e.fails("RouteAlreadyExists", p, "ec2", "create-route", "--route-table-id", rtID, "--destination-cidr-block", "0.0.0.0/0", "--gateway-id", igwID)
	var assoc struct{ AssociationId string }
	e.ok(&assoc, p, "ec2", "associate-route-table", "--route-table-id", rtID, "--subnet-id", pub)
	var rts struct {
		RouteTables []struct {
			RouteTableId string
			Routes       []struct{ DestinationCidrBlock, GatewayId, NatGatewayId, State, Origin string }
			Associations []struct {
				Main     bool
				SubnetId string
			}
		}
	}
	e.ok(&rts, p, "ec2", "describe-route-tables", "--route-table-ids", rtID)
	if len(rts.RouteTables) != 1 || len(rts.RouteTables[0].Routes) != 2 || rts.RouteTables[0].Routes[0].GatewayId != "local" ||
		rts.RouteTables[0].Routes[1].GatewayId != igwID || rts.RouteTables[0].Routes[1].State != "active" ||
		len(rts.RouteTables[0].Associations) != 1 || rts.RouteTables[0].Associations[0].SubnetId != pub {
		t.Fatalf("describe-route-tables: %+v", rts)
	}

	// Five Elastic IPs, then AddressLimitExceeded.
	var allocs []string
	for range 5 {
		var a struct{ AllocationId, PublicIp, Domain string }
		e.ok(&a, p, "ec2", "allocate-address", "--domain", "vpc")
		if !strings.HasPrefix(a.PublicIp, "203.0.113.") || a.Domain != "vpc" {
			t.Fatalf("allocate-address: %+v", a)
		}
		allocs = append(allocs, a.AllocationId)
	}
	e.fails("AddressLimitExceeded", p, "ec2", "allocate-address", "--domain", "vpc")
	var addrs struct {
		Addresses []struct{ AllocationId, PublicIp string }
	}
	e.ok(&addrs, p, "ec2", "describe-addresses")
	if len(addrs.Addresses) != 5 {
		t.Fatalf("describe-addresses: %+v", addrs)
	}

	// NAT gateway in the public subnet, the private subnet routes to it.
	var nat struct {
		NatGateway struct {
			NatGatewayId, State, SubnetId, VpcId string
			NatGatewayAddresses                  []struct{ AllocationId, PublicIp, PrivateIp, NetworkInterfaceId string }
		}
	}
	e.ok(&nat, p, "ec2", "create-nat-gateway", "--subnet-id", pub, "--allocation-id", allocs[0])
	n := nat.NatGateway
	if n.State != "available" || n.VpcId != v.VpcId || len(n.NatGatewayAddresses) != 1 || n.NatGatewayAddresses[0].AllocationId != allocs[0] ||
		n.NatGatewayAddresses[0].PrivateIp == "" || n.NatGatewayAddresses[0].NetworkInterfaceId == "" {
		t.Fatalf("create-nat-gateway: %+v", n)
	}
	e.fails("Resource.AlreadyAssociated", p, "ec2", "create-nat-gateway", "--subnet-id", pub, "--allocation-id", allocs[0])
	var rt2 struct{ RouteTable struct{ RouteTableId string } }
	e.ok(&rt2, p, "ec2", "create-route-table", "--vpc-id", v.VpcId)
	e.ok(nil, p, "ec2", "create-route", "--route-table-id", rt2.RouteTable.RouteTableId, "--destination-cidr-block", "0.0.0.0/0", "--nat-gateway-id", n.NatGatewayId)
	var assoc2 struct{ AssociationId string }
	e.ok(&assoc2, p, "ec2", "associate-route-table", "--route-table-id", rt2.RouteTable.RouteTableId, "--subnet-id", priv)
	var nats struct {
		NatGateways []struct{ NatGatewayId, State string }
	}
	e.ok(&nats, p, "ec2", "describe-nat-gateways", "--filter", "Name=vpc-id,Values="+v.VpcId)
	if len(nats.NatGateways) != 1 || nats.NatGateways[0].State != "available" {
		t.Fatalf("describe-nat-gateways: %+v", nats)
	}
	var enis struct {
		NetworkInterfaces []struct {
			NetworkInterfaceId, InterfaceType, PrivateIpAddress, Status string
			Association                                                 struct{ PublicIp, AllocationId string }
		}
	}
	e.ok(&enis, p, "ec2", "describe-network-interfaces", "--filters", "Name=vpc-id,Values="+v.VpcId)
	if len(enis.NetworkInterfaces) != 1 || enis.NetworkInterfaces[0].InterfaceType != "nat_gateway" ||
		enis.NetworkInterfaces[0].Association.AllocationId != allocs[0] || enis.NetworkInterfaces[0].PrivateIpAddress != n.NatGatewayAddresses[0].PrivateIp {
		t.Fatalf("describe-network-interfaces: %+v", enis)
	}
	e.fails("DependencyViolation", p, "ec2", "delete-subnet", "--subnet-id", pub)
	e.fails("DependencyViolation", p, "ec2", "detach-internet-gateway", "--internet-gateway-id", igwID, "--vpc-id", v.VpcId)
	var del struct{ NatGatewayId string }
	e.ok(&del, p, "ec2", "delete-nat-gateway", "--nat-gateway-id", n.NatGatewayId)
	e.ok(&nats, p, "ec2", "describe-nat-gateways", "--nat-gateway-ids", n.NatGatewayId)
	if del.NatGatewayId != n.NatGatewayId || len(nats.NatGateways) != 1 || nats.NatGateways[0].State != "deleted" {
		t.Fatalf("after delete-nat-gateway: %+v", nats)
	}
	e.ok(&rts, p, "ec2", "describe-route-tables", "--route-table-ids", rt2.RouteTable.RouteTableId)
	if r := rts.RouteTables[0].Routes; len(r) != 2 || r[1].NatGatewayId != n.NatGatewayId || r[1].State != "blackhole" {
		t.Fatalf("route to a deleted NAT gateway: %+v", r)
	}

	// Clean up in AWS's order; delete-vpc then succeeds and the namespace goes.
	e.fails("DependencyViolation", p, "ec2", "delete-vpc", "--vpc-id", v.VpcId)
	for _, a := range allocs {
		e.ok(nil, p, "ec2", "release-address", "--allocation-id", a)
	}
	e.ok(nil, p, "ec2", "disassociate-route-table", "--association-id", assoc.AssociationId)
	e.ok(nil, p, "ec2", "disassociate-route-table", "--association-id", assoc2.AssociationId)
	e.ok(nil, p, "ec2", "delete-route-table", "--route-table-id", rtID)
	e.ok(nil, p, "ec2", "delete-route-table", "--route-table-id", rt2.RouteTable.RouteTableId)
	e.ok(nil, p, "ec2", "delete-subnet", "--subnet-id", pub)
	e.ok(nil, p, "ec2", "delete-subnet", "--subnet-id", priv)
	e.fails("DependencyViolation", p, "ec2", "delete-vpc", "--vpc-id", v.VpcId)
	e.ok(nil, p, "ec2", "detach-internet-gateway", "--internet-gateway-id", igwID, "--vpc-id", v.VpcId)
	e.ok(nil, p, "ec2", "delete-internet-gateway", "--internet-gateway-id", igwID)
	e.ok(nil, p, "ec2", "delete-vpc", "--vpc-id", v.VpcId)
	e.fails("InvalidVpcID.NotFound", p, "ec2", "describe-vpcs", "--vpc-ids", v.VpcId)
	if out := sh(t, "ip netns list"); strings.Contains(out, "vp7-"+v.VpcId) {
		t.Fatalf("namespace of the deleted VPC left:\n%s", out)
	}
}
