package netfab

import (
	"context"
	"errors"
	"fmt"

	"github.com/labcloud/labcloud/internal/errdefs"
	"github.com/labcloud/labcloud/internal/store"
)

// The records of the VPC API beyond VPCs, subnets and ENIs (fabric.go).
// Every mutation writes records first (in one store.Txn where several
// objects change together) and then calls Fabric.changed, which re-derives
// the VPC's kernel state (bridges, taps, routes, nftables) from the records.
//
// etcd keys:
//
//	sgs/<acct>/<sg-id>                 SecurityGroup
//	sg-names/<vpc-id>/<group-name>     sgNameIndex (unique names per VPC)
//	nacls/<acct>/<acl-id>              NetworkACL
//	rtbs/<acct>/<rtb-id>               RouteTable
//	rtb-by-subnet/<subnet-id>          rtbSubnetIndex (one explicit association per subnet)
//	igws/<acct>/<igw-id>               InternetGateway
//	igw-by-vpc/<vpc-id>                igwVPCIndex (one internet gateway per VPC)
//	eips/<acct>/<eipalloc-id>          Address
//	public-ips/<ip>                    publicIPIndex (allocates pool addresses)
//	natgws/<acct>/<nat-id>             NatGateway

// SecurityGroup is a VPC security group: allow-only, stateful rules.
type SecurityGroup struct {
	ID, AccountID, VPCID, Name, Description string
	Ingress, Egress                         []SGRule
	// IsDefault marks the VPC's "default" group, which cannot be deleted.
	IsDefault bool `json:",omitempty"`
}

// SGRule is one security group rule as DescribeSecurityGroupRules shows
// it: one peer (a CIDR or a group) per rule.
type SGRule struct {
	ID string // sgr-<17 hex>
	// Protocol is "-1" (all), "tcp", "udp", "icmp" or a protocol number
	// as a decimal string, as the EC2 API carries IpProtocol.
	Protocol string
	// FromPort and ToPort: the port range for tcp/udp (-1 for all
	// protocols); for icmp the type and code (-1 any).
	FromPort, ToPort int
	CIDR             string `json:",omitempty"`
	// GroupID is the peer security group for group-referencing rules.
	GroupID     string `json:",omitempty"`
	Description string `json:",omitempty"`
}

// NetworkACL is a stateless subnet filter with numbered entries.
type NetworkACL struct {
	ID, AccountID, VPCID string
	IsDefault            bool
	Entries              []ACLRule
}

// ACLRule is one numbered entry of a network ACL. The final "*" deny
// (rule number 32767) is implicit and shown by Describe, not stored.
type ACLRule struct {
	RuleNumber int
	Egress     bool
	// Protocol is "-1" or a protocol number as a decimal string ("6",
	// "17", "1"), as DescribeNetworkAcls shows it.
	Protocol string
	// RuleAction is "allow" or "deny".
	RuleAction string
	CIDR       string
	// FromPort-ToPort for tcp/udp; ICMPType/ICMPCode for icmp (-1 any).
	FromPort, ToPort   int `json:",omitempty"`
	ICMPType, ICMPCode int `json:",omitempty"`
}

// RouteTable is a VPC route table. The local route (the VPC CIDR) is
// implicit: always first, never stored, shown by Describe.
type RouteTable struct {
	ID, AccountID, VPCID string
	// Main marks the VPC's main route table: subnets without an explicit
	// association use it. MainAssociationID is its rtbassoc- id.
	Main              bool
	MainAssociationID string `json:",omitempty"`
	Routes            []Route
	Associations      []RouteTableAssociation
}

// Route is one non-local route.
type Route struct {
	DestinationCIDR string
	// Exactly one target.
	GatewayID          string `json:",omitempty"` // igw-...
	NatGatewayID       string `json:",omitempty"`
	InstanceID         string `json:",omitempty"`
	NetworkInterfaceID string `json:",omitempty"`
	// Origin is CreateRoute or CreateRouteTable, as AWS reports.
	Origin string
}

// RouteTableAssociation ties a subnet to a route table explicitly.
type RouteTableAssociation struct {
	ID, SubnetID string
}

// InternetGateway connects a VPC to the host's public bridge.
type InternetGateway struct {
	ID, AccountID string
	// VPCID is the attached VPC, empty while detached.
	VPCID string `json:",omitempty"`
}

// Address is an Elastic IP allocation from the public pool.
type Address struct {
	AllocationID, AccountID, PublicIP string
	// Association, empty while not associated.
	AssociationID      string `json:",omitempty"`
	InstanceID         string `json:",omitempty"`
	NetworkInterfaceID string `json:",omitempty"`
	PrivateIP          string `json:",omitempty"`
}

// NatGateway masquerades the traffic of the subnets that route to it.
type NatGateway struct {
	ID, AccountID, VPCID, SubnetID string
	AllocationID, PublicIP         string
	// NetworkInterfaceID and PrivateIP: the gateway's own address in its
	// subnet (an ENI without a tap).
	NetworkInterfaceID, PrivateIP string
	// State: pending, available, deleting, deleted, failed.
	State      string
	CreateTime string
	DeleteTime string `json:",omitempty"`
	// FailureCode/FailureMessage when State is failed.
	FailureCode    string `json:",omitempty"`
	FailureMessage string `json:",omitempty"`
}

type sgNameIndex struct{ GroupID string }
type rtbSubnetIndex struct{ RouteTableID, AssociationID string }
type igwVPCIndex struct{ InternetGatewayID string }

// publicIPIndex records who holds a pool address: an Elastic IP
// allocation or an ENI's auto-assigned public IP.
type publicIPIndex struct {
	AccountID    string
	AllocationID string `json:",omitempty"`
	ENIID        string `json:",omitempty"`
}

func sgKey(acct, id string) string      { return "sgs/" + acct + "/" + id }
func sgNameKey(vpc, name string) string { return "sg-names/" + vpc + "/" + name }
func naclKey(acct, id string) string    { return "nacls/" + acct + "/" + id }
func rtbKey(acct, id string) string     { return "rtbs/" + acct + "/" + id }
func rtbSubnetKey(subnet string) string { return "rtb-by-subnet/" + subnet }
func igwKey(acct, id string) string     { return "igws/" + acct + "/" + id }
func igwVPCKey(vpc string) string       { return "igw-by-vpc/" + vpc }
func eipKey(acct, id string) string     { return "eips/" + acct + "/" + id }
func publicIPKey(ip string) string      { return "public-ips/" + ip }
func natKey(acct, id string) string     { return "natgws/" + acct + "/" + id }

// vpcDefaults are the objects every VPC is born with, as in AWS: a main
// route table (local route only), a default network ACL (rule 100 allows
// all in and out) and a default security group (all from its own members,
// all egress).
type vpcDefaults struct {
	RouteTable    RouteTable
	NetworkACL    NetworkACL
	SecurityGroup SecurityGroup
}

// newVPCDefaults makes the default objects of a new VPC and returns them
// with the store ops that create them; the caller adds the ops to the
// transaction that creates the VPC and records the IDs in it. A default
// VPC also gets what AWS gives it: an internet gateway, attached, and the
// main route table's 0.0.0.0/0 route to it.
func newVPCDefaults(acct, vpcID string, isDefault bool) (vpcDefaults, []store.Op) {
	d := vpcDefaults{
		RouteTable: RouteTable{ID: newID("rtb"), AccountID: acct, VPCID: vpcID, Main: true,
			MainAssociationID: newID("rtbassoc"), Routes: []Route{}, Associations: []RouteTableAssociation{}},
		NetworkACL: NetworkACL{ID: newID("acl"), AccountID: acct, VPCID: vpcID, IsDefault: true, Entries: []ACLRule{
			{RuleNumber: 100, Egress: false, Protocol: "-1", RuleAction: "allow", CIDR: "0.0.0.0/0"},
			{RuleNumber: 100, Egress: true, Protocol: "-1", RuleAction: "allow", CIDR: "0.0.0.0/0"},
		}},
	}
	sg := SecurityGroup{ID: newID("sg"), AccountID: acct, VPCID: vpcID, Name: "default",
		Description: "default VPC security group", IsDefault: true}
	sg.Ingress = []SGRule{{ID: newID("sgr"), Protocol: "-1", FromPort: -1, ToPort: -1, GroupID: sg.ID}}
	sg.Egress = []SGRule{{ID: newID("sgr"), Protocol: "-1", FromPort: -1, ToPort: -1, CIDR: "0.0.0.0/0"}}
	d.SecurityGroup = sg
	var ops []store.Op
	if isDefault {
		igw := InternetGateway{ID: newID("igw"), AccountID: acct, VPCID: vpcID}
		d.RouteTable.Routes = append(d.RouteTable.Routes, Route{DestinationCIDR: "0.0.0.0/0", GatewayID: igw.ID, Origin: "CreateRoute"})
		ops = append(ops, store.OpCreate(igwKey(acct, igw.ID), igw), store.OpCreate(igwVPCKey(vpcID), igwVPCIndex{InternetGatewayID: igw.ID}))
	}
	ops = append(ops,
		store.OpCreate(rtbKey(acct, d.RouteTable.ID), d.RouteTable),
		store.OpCreate(naclKey(acct, d.NetworkACL.ID), d.NetworkACL),
		store.OpCreate(sgKey(acct, sg.ID), sg),
		store.OpCreate(sgNameKey(vpcID, sg.Name), sgNameIndex{GroupID: sg.ID}),
	)
	return d, ops
}

// ensureVPCDefaults gives a VPC recorded before the VPC API existed (a
// default VPC of an earlier version) its default objects, once: the VPC
// record and the new objects change in one transaction.
func (f *Fabric) ensureVPCDefaults(ctx context.Context, vpc VPC) (VPC, error) {
	for try := 0; ; try++ {
		v, rev, err := store.Load[VPC](ctx, f.st, vpcKey(vpc.AccountID, vpc.ID))
		if err != nil {
			return VPC{}, err
		}
		if v.MainRouteTableID != "" {
			return v, nil
		}
		d, ops := newVPCDefaults(v.AccountID, v.ID, v.IsDefault)
		subnets, err := store.ListAs[subnetRecord](ctx, f.st, "subnets/"+v.AccountID+"/")
		if err != nil {
			return VPC{}, err
		}
		for _, sn := range subnets {
			if sn.VPCID == v.ID && sn.NetworkACLID == "" {
				sn.NetworkACLID, sn.NetworkACLAssociationID = d.NetworkACL.ID, newID("aclassoc")
				sn.MapPublicIPOnLaunch = sn.DefaultForAz
				ops = append(ops, store.OpPut(subnetKey(v.AccountID, sn.ID), sn))
			}
		}
		v.MainRouteTableID, v.DefaultNetworkACLID, v.DefaultSecurityGroupID = d.RouteTable.ID, d.NetworkACL.ID, d.SecurityGroup.ID
		v.EnableDNSSupport, v.EnableDNSHostnames = true, v.IsDefault
		ops = append(ops, store.OpCompareAndSwap(vpcKey(v.AccountID, v.ID), v, rev))
		_, err = f.st.Txn(ctx, ops...)
		if err == nil {
			return v, nil
		}
		if !(errors.Is(err, store.ErrConflict) || errors.Is(err, store.ErrExists)) || try > 5 {
			return VPC{}, fmt.Errorf("creating the default objects of %s: %w", v.ID, err)
		}
	}
}

// Region is the region the fabric serves (for DNS names and ARNs).
func (f *Fabric) Region() string { return f.region }

// Subnet returns one of the account's subnets (of any VPC).
func (f *Fabric) Subnet(ctx context.Context, acct, id string) (Subnet, error) {
	var sn subnetRecord
	if _, err := f.st.Get(ctx, subnetKey(acct, id), &sn); err != nil {
		if errors.Is(err, store.ErrNotFound) {
			return Subnet{}, errdefs.NotFound("InvalidSubnetID.NotFound", "The subnet ID '%s' does not exist; list your subnets with DescribeSubnets", id)
		}
		return Subnet{}, err
	}
	return sn.Subnet, nil
}

// AutoPublicIP is an ENI's auto-assigned public IP ("" for none; an
// Elastic IP is not one).
func (f *Fabric) AutoPublicIP(ctx context.Context, acct, eniID string) (string, error) {
	var e ENI
	if _, err := f.st.Get(ctx, eniKey(acct, eniID), &e); err != nil {
		if errors.Is(err, store.ErrNotFound) {
			return "", errdefs.NotFound("InvalidNetworkInterfaceID.NotFound", "The networkInterface ID '%s' does not exist", eniID)
		}
		return "", err
	}
	return e.PublicIP, nil
}

// InterfaceInfo is what DescribeInstances and the metadata service show of
// an instance's ENI beyond the instance record.
type InterfaceInfo struct {
	// PublicIP is the Elastic IP if one is associated, else the
	// auto-assigned public IP, "" for none; IPOwner is "amazon" for an
	// auto-assigned one and the account for an Elastic IP.
	PublicIP, IPOwner string
	Groups            []GroupRef
	SourceDestCheck   bool
}

// GroupRef names a security group.
type GroupRef struct{ ID, Name string }

// InterfaceInfo reads an ENI's public address and security groups.
func (f *Fabric) InterfaceInfo(ctx context.Context, acct, eniID string) (InterfaceInfo, error) {
	var e ENI
	if _, err := f.st.Get(ctx, eniKey(acct, eniID), &e); err != nil {
		if errors.Is(err, store.ErrNotFound) {
			return InterfaceInfo{}, errdefs.NotFound("InvalidNetworkInterfaceID.NotFound", "The networkInterface ID '%s' does not exist", eniID)
		}
		return InterfaceInfo{}, err
	}
	info := InterfaceInfo{PublicIP: e.PublicIP, SourceDestCheck: !e.NoSourceDestCheck}
	if info.PublicIP != "" {
		info.IPOwner = "amazon"
	}
	if e.EIPAllocationID != "" {
		var a Address
		if _, err := f.st.Get(ctx, eipKey(acct, e.EIPAllocationID), &a); err == nil {
			info.PublicIP, info.IPOwner = a.PublicIP, acct
		}
	}
	for _, id := range e.Groups {
		var g SecurityGroup
		if _, err := f.st.Get(ctx, sgKey(acct, id), &g); err == nil {
			info.Groups = append(info.Groups, GroupRef{ID: id, Name: g.Name})
		} else {
			info.Groups = append(info.Groups, GroupRef{ID: id})
		}
	}
	return info, nil
}
