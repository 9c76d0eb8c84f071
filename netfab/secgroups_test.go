package netfab

import (
	"context"
	"errors"
	"fmt"
	"net/netip"
	"strings"
	"testing"

	"github.com/labcloud/labcloud/internal/errdefs"
	"github.com/labcloud/labcloud/internal/store"
	"github.com/labcloud/labcloud/internal/store/storetest"
)

// sgFabric is a Fabric over a real etcd whose kernel objects are named
// with prefix (the security group tests use sg1..sg9) and torn down, and
// checked gone, after the test.
func sgFabric(t *testing.T, prefix string) *Fabric {
	t.Helper()
	requireNet(t)
	t.Cleanup(func() {
		if out, _ := run(t, "ip", "netns", "list"); strings.Contains(out, prefix+"-") {
			t.Errorf("namespaces left behind:\n%s", out)
		}
	})
	f, err := New(context.Background(), Options{Store: storetest.NewEmbedded(t), Zones: []string{"lab-1a", "lab-1b"},
		NamePrefix: prefix, Metadata: &fakeMetadata{}})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = f.Teardown(context.Background()) })
	return f
}

// testVPC records a non-default VPC with its default objects and one
// subnet, as CreateVpc and CreateSubnet will, and builds it.
func testVPC(t *testing.T, f *Fabric, acct, cidr string) (VPC, subnetRecord) {
	t.Helper()
	ctx := context.Background()
	vpc := VPC{ID: newID("vpc"), AccountID: acct, CIDR: cidr, EnableDNSSupport: true}
	vpc.Namespace = f.nsName(vpc.ID)
	d, ops := newVPCDefaults(acct, vpc.ID, false)
	vpc.MainRouteTableID, vpc.DefaultNetworkACLID, vpc.DefaultSecurityGroupID = d.RouteTable.ID, d.NetworkACL.ID, d.SecurityGroup.ID
	p := netip.MustParsePrefix(cidr)
	sub := netip.PrefixFrom(p.Addr(), 24)
	sn := subnetRecord{Subnet: Subnet{ID: newID("subnet"), VPCID: vpc.ID, AvailabilityZone: "lab-1a", CIDR: sub.String(),
		RouterIP: addrN(sub, 1).String(), NetworkACLID: d.NetworkACL.ID, NetworkACLAssociationID: newID("aclassoc")},
		AccountID: acct, BridgeMAC: newMAC()}
	sn.Bridge = f.bridgeName(sn.ID)
	ops = append(ops, store.OpCreate(vpcKey(acct, vpc.ID), vpc), store.OpCreate(subnetKey(acct, sn.ID), sn))
	if _, err := f.st.Txn(ctx, ops...); err != nil {
		t.Fatal(err)
	}
	if err := f.changed(ctx, acct, vpc.ID); err != nil {
		t.Fatal(err)
	}
	return vpc, sn
}

// wantCode fails unless err carries the AWS code.
func wantCode(t *testing.T, err error, code string) {
	t.Helper()
	var e *errdefs.Error
	if !errors.As(err, &e) || e.Code != code {
		t.Fatalf("got error %v, want code %s", err, code)
	}
	if e.Message == "" {
		t.Fatalf("%s without a message", code)
	}
}

func ip(n int) *int { return &n }

func tcp(port int, peers ...Peer) Permission {
	return Permission{Protocol: "tcp", FromPort: ip(port), ToPort: ip(port), Peers: peers}
}

func cidr(c string) Peer { return Peer{CIDR: c} }

func TestSecurityGroupDefaultsAndCreate(t *testing.T) {
	f := sgFabric(t, "sg1")
	ctx := context.Background()
	const acct = "111111111111"
	vpc, err := f.EnsureDefaultVPC(ctx, acct)
	if err != nil {
		t.Fatal(err)
	}
	gs, err := f.SecurityGroups(ctx, acct)
	if err != nil || len(gs) != 1 {
		t.Fatalf("groups of a new default VPC: %+v, %v", gs, err)
	}
	def := gs[0]
	if def.ID != vpc.DefaultSecurityGroupID || def.Name != "default" || !def.IsDefault ||
		len(def.Ingress) != 1 || def.Ingress[0].GroupID != def.ID || def.Ingress[0].Protocol != "-1" ||
		len(def.Egress) != 1 || def.Egress[0].CIDR != "0.0.0.0/0" {
		t.Fatalf("default group: %+v", def)
	}

	web, err := f.CreateSecurityGroup(ctx, SGRequest{AccountID: acct, Name: "web", Description: "web servers (public)"})
	if err != nil {
		t.Fatal(err)
	}
	if web.VPCID != vpc.ID || len(web.Ingress) != 0 || len(web.Egress) != 1 || web.Egress[0].Protocol != "-1" || web.Egress[0].CIDR != "0.0.0.0/0" {
		t.Fatalf("new group: %+v", web)
	}
	if ok, err := f.SecurityGroupExists(ctx, acct, web.ID); !ok || err != nil {
		t.Fatalf("SecurityGroupExists(%s) = %v, %v", web.ID, ok, err)
	}
	if ok, _ := f.SecurityGroupExists(ctx, "222222222222", web.ID); ok {
		t.Fatal("another account sees the group")
	}
	for _, c := range []struct {
		name string
		r    SGRequest
		code string
	}{
		{"duplicate", SGRequest{Name: "web", Description: "x"}, "InvalidGroup.Duplicate"},
		{"sg- name", SGRequest{Name: "sg-123", Description: "x"}, "InvalidParameterValue"},
		{"no name", SGRequest{Description: "x"}, "MissingParameter"},
		{"no description", SGRequest{Name: "x"}, "MissingParameter"},
		{"bad character", SGRequest{Name: "x", Description: "<script>"}, "InvalidParameterValue"},
		{"long name", SGRequest{Name: strings.Repeat("n", 256), Description: "x"}, "InvalidParameterValue"},
		{"unknown VPC", SGRequest{Name: "x", Description: "x", VPCID: "vpc-00000000000000000"}, "InvalidVpcID.NotFound"},
	} {
		t.Run(c.name, func(t *testing.T) {
			c.r.AccountID = acct
			_, err := f.CreateSecurityGroup(ctx, c.r)
			wantCode(t, err, c.code)
		})
	}
	// The same name in another VPC is fine.
	other, _ := testVPC(t, f, acct, "10.20.0.0/16")
	if _, err := f.CreateSecurityGroup(ctx, SGRequest{AccountID: acct, VPCID: other.ID, Name: "web", Description: "x"}); err != nil {
		t.Fatal(err)
	}
	// By name in the default VPC.
	g, err := f.SecurityGroup(ctx, acct, "", "web")
	if err != nil || g.ID != web.ID {
		t.Fatalf("by name: %+v, %v", g, err)
	}
	_, err = f.SecurityGroup(ctx, acct, "", "nope")
	wantCode(t, err, "InvalidGroup.NotFound")
}

func TestSecurityGroupAuthorizeRevoke(t *testing.T) {
	f := sgFabric(t, "sg2")
	ctx := context.Background()
	const acct = "111111111111"
	vpc, err := f.EnsureDefaultVPC(ctx, acct)
	if err != nil {
		t.Fatal(err)
	}
	web, err := f.CreateSecurityGroup(ctx, SGRequest{AccountID: acct, Name: "web", Description: "web"})
	if err != nil {
		t.Fatal(err)
	}
	added, err := f.AuthorizeSecurityGroup(ctx, acct, web.ID, false, []Permission{
		tcp(22, Peer{CIDR: "10.0.0.1/8", Description: "admins"}, Peer{GroupID: vpc.DefaultSecurityGroupID}),
		{Protocol: "6", FromPort: ip(80), ToPort: ip(81), Peers: []Peer{cidr("0.0.0.0/0")}},
		{Protocol: "all", FromPort: ip(5), ToPort: ip(1), Peers: []Peer{cidr("192.0.2.0/24")}},
		{Protocol: "icmp", FromPort: ip(8), ToPort: ip(-1), Peers: []Peer{cidr("192.0.2.0/24")}},
		{Protocol: "50", Peers: []Peer{cidr("192.0.2.0/24")}},
	})
	if err != nil {
		t.Fatal(err)
	}
	want := []SGRule{
		{Protocol: "tcp", FromPort: 22, ToPort: 22, CIDR: "10.0.0.0/8", Description: "admins"},
		{Protocol: "tcp", FromPort: 22, ToPort: 22, GroupID: vpc.DefaultSecurityGroupID},
		{Protocol: "tcp", FromPort: 80, ToPort: 81, CIDR: "0.0.0.0/0"},
		{Protocol: "-1", FromPort: -1, ToPort: -1, CIDR: "192.0.2.0/24"},
		{Protocol: "icmp", FromPort: 8, ToPort: -1, CIDR: "192.0.2.0/24"},
		{Protocol: "50", FromPort: -1, ToPort: -1, CIDR: "192.0.2.0/24"},
	}
	if len(added) != len(want) {
		t.Fatalf("added %+v", added)
	}
	for i, r := range added {
		if !strings.HasPrefix(r.ID, "sgr-") || !sameRule(r, want[i]) || r.Description != want[i].Description {
			t.Errorf("rule %d = %+v, want %+v", i, r, want[i])
		}
	}
	count := func() int {
		g, err := f.SecurityGroup(ctx, acct, web.ID, "")
		if err != nil {
			t.Fatal(err)
		}
		return len(g.Ingress)
	}

	otherVPC, _ := testVPC(t, f, acct, "10.30.0.0/16")
	foreign, err := f.CreateSecurityGroup(ctx, SGRequest{AccountID: acct, VPCID: otherVPC.ID, Name: "foreign", Description: "x"})
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct {
		name  string
		perms []Permission
		code  string
	}{
		{"duplicate (nothing half-applied)", []Permission{tcp(23, cidr("10.0.0.0/8")), tcp(22, cidr("10.0.0.0/8"))}, "InvalidPermission.Duplicate"},
		{"duplicate within the request", []Permission{tcp(24, cidr("10.0.0.0/8")), tcp(24, cidr("10.0.0.0/8"))}, "InvalidPermission.Duplicate"},
		{"unknown protocol name", []Permission{{Protocol: "sctp", FromPort: ip(1), ToPort: ip(1), Peers: []Peer{cidr("10.0.0.0/8")}}}, "InvalidParameterValue"},
		{"protocol 256", []Permission{{Protocol: "256", Peers: []Peer{cidr("10.0.0.0/8")}}}, "InvalidParameterValue"},
		{"no protocol", []Permission{{Peers: []Peer{cidr("10.0.0.0/8")}}}, "MissingParameter"},
		{"tcp without ports", []Permission{{Protocol: "tcp", Peers: []Peer{cidr("10.0.0.0/8")}}}, "InvalidParameterValue"},
		{"from > to", []Permission{{Protocol: "udp", FromPort: ip(100), ToPort: ip(10), Peers: []Peer{cidr("10.0.0.0/8")}}}, "InvalidParameterValue"},
		{"port 65536", []Permission{{Protocol: "udp", FromPort: ip(1), ToPort: ip(65536), Peers: []Peer{cidr("10.0.0.0/8")}}}, "InvalidParameterValue"},
		{"icmp any type, one code", []Permission{{Protocol: "icmp", FromPort: ip(-1), ToPort: ip(3), Peers: []Peer{cidr("10.0.0.0/8")}}}, "InvalidParameterValue"},
		{"icmp type 256", []Permission{{Protocol: "icmp", FromPort: ip(256), ToPort: ip(-1), Peers: []Peer{cidr("10.0.0.0/8")}}}, "InvalidParameterValue"},
		{"bad CIDR", []Permission{tcp(25, cidr("10.0.0.0/33"))}, "InvalidParameterValue"},
		{"IPv6", []Permission{tcp(25, Peer{IPv6CIDR: "::/0"})}, "InvalidParameterValue"},
		{"no peer", []Permission{tcp(25)}, "MissingParameter"},
		{"unknown group", []Permission{tcp(25, Peer{GroupID: "sg-00000000000000000"})}, "InvalidGroup.NotFound"},
		{"group of another VPC", []Permission{tcp(25, Peer{GroupID: foreign.ID})}, "InvalidGroup.NotFound"},
		{"bad description", []Permission{tcp(25, Peer{CIDR: "10.0.0.0/8", Description: "ü"})}, "InvalidParameterValue"},
	} {
		t.Run(c.name, func(t *testing.T) {
			before := count()
			_, err := f.AuthorizeSecurityGroup(ctx, acct, web.ID, false, c.perms)
			wantCode(t, err, c.code)
			if after := count(); after != before {
				t.Fatalf("a failed request changed the rules: %d → %d", before, after)
			}
		})
	}
	_, err = f.AuthorizeSecurityGroup(ctx, acct, "sg-00000000000000000", false, []Permission{tcp(1, cidr("10.0.0.0/8"))})
	wantCode(t, err, "InvalidGroup.NotFound")

	// The limit: 60 inbound rules; the request that would pass it adds
	// nothing. Egress has its own 60.
	var fill []Permission
	for i := count(); i < MaxRulesPerGroup; i++ {
		fill = append(fill, tcp(1000+i, cidr("10.1.0.0/16")))
	}
	if _, err := f.AuthorizeSecurityGroup(ctx, acct, web.ID, false, fill); err != nil {
		t.Fatal(err)
	}
	_, err = f.AuthorizeSecurityGroup(ctx, acct, web.ID, false, []Permission{tcp(9999, cidr("10.1.0.0/16"))})
	wantCode(t, err, "RulesPerSecurityGroupLimitExceeded")
	if n := count(); n != MaxRulesPerGroup {
		t.Fatalf("%d rules after the limit", n)
	}
	if _, err := f.AuthorizeSecurityGroup(ctx, acct, web.ID, true, []Permission{tcp(9999, cidr("10.1.0.0/16"))}); err != nil {
		t.Fatalf("egress has its own limit: %v", err)
	}

	// Revoke in the default VPC: an unknown permission is reported, not
	// an error, and the known ones go.
	res, err := f.RevokeSecurityGroup(ctx, acct, web.ID, false, []Permission{tcp(22, cidr("10.0.0.0/8")), tcp(4444, cidr("10.0.0.0/8"))}, nil)
	if err != nil {
		t.Fatal(err)
	}
	if len(res.Revoked) != 1 || res.Revoked[0].ID != added[0].ID || len(res.Unknown) != 1 || res.Unknown[0].FromPort != 4444 {
		t.Fatalf("revoke: %+v", res)
	}
	// By rule ID; an unknown ID fails the whole request.
	_, err = f.RevokeSecurityGroup(ctx, acct, web.ID, false, nil, []string{added[1].ID, "sgr-00000000000000000"})
	wantCode(t, err, "InvalidSecurityGroupRuleId.NotFound")
	res, err = f.RevokeSecurityGroup(ctx, acct, web.ID, false, nil, []string{added[1].ID})
	if err != nil || len(res.Revoked) != 1 {
		t.Fatalf("revoke by ID: %+v, %v", res, err)
	}
	if n := count(); n != MaxRulesPerGroup-2 {
		t.Fatalf("%d rules after two revokes", n)
	}
	_, err = f.RevokeSecurityGroup(ctx, acct, web.ID, false, nil, nil)
	wantCode(t, err, "MissingParameter")

	// Revoke in another VPC: a permission that matches nothing fails
	// the request and revokes nothing.
	if _, err := f.AuthorizeSecurityGroup(ctx, acct, foreign.ID, false, []Permission{tcp(22, cidr("10.0.0.0/8"))}); err != nil {
		t.Fatal(err)
	}
	_, err = f.RevokeSecurityGroup(ctx, acct, foreign.ID, false, []Permission{tcp(22, cidr("10.0.0.0/8")), tcp(23, cidr("10.0.0.0/8"))}, nil)
	wantCode(t, err, "InvalidPermission.NotFound")
	g, _ := f.SecurityGroup(ctx, acct, foreign.ID, "")
	if len(g.Ingress) != 1 {
		t.Fatalf("a failed revoke removed rules: %+v", g.Ingress)
	}
	// The default egress rule can be revoked like any other.
	res, err = f.RevokeSecurityGroup(ctx, acct, foreign.ID, true, []Permission{{Protocol: "-1", Peers: []Peer{cidr("0.0.0.0/0")}}}, nil)
	if err != nil || len(res.Revoked) != 1 {
		t.Fatalf("revoking the all-egress rule: %+v, %v", res, err)
	}
}

func TestSecurityGroupDeleteAndENIGroups(t *testing.T) {
	f := sgFabric(t, "sg3")
	ctx := context.Background()
	const acct = "111111111111"
	vpc, err := f.EnsureDefaultVPC(ctx, acct)
	if err != nil {
		t.Fatal(err)
	}
	mk := func(name string) SecurityGroup {
		t.Helper()
		g, err := f.CreateSecurityGroup(ctx, SGRequest{AccountID: acct, Name: name, Description: name})
		if err != nil {
			t.Fatal(err)
		}
		return g
	}
	app, db := mk("app"), mk("db")
	_, err = f.DeleteSecurityGroup(ctx, acct, vpc.DefaultSecurityGroupID, "")
	wantCode(t, err, "CannotDelete")
	_, err = f.DeleteSecurityGroup(ctx, acct, "", "default")
	wantCode(t, err, "CannotDelete")
	_, err = f.DeleteSecurityGroup(ctx, acct, "sg-00000000000000000", "")
	wantCode(t, err, "InvalidGroup.NotFound")
	_, err = f.DeleteSecurityGroup(ctx, acct, "", "")
	wantCode(t, err, "MissingParameter")

	// Referenced by another group's rule.
	if _, err := f.AuthorizeSecurityGroup(ctx, acct, db.ID, false, []Permission{tcp(5432, Peer{GroupName: "app"})}); err != nil {
		t.Fatal(err)
	}
	_, err = f.DeleteSecurityGroup(ctx, acct, app.ID, "")
	wantCode(t, err, "DependencyViolation")
	if _, err := f.RevokeSecurityGroup(ctx, acct, db.ID, false, []Permission{tcp(5432, Peer{GroupID: app.ID})}, nil); err != nil {
		t.Fatal(err)
	}

	// Interfaces: default group when none is asked; 1-5 groups of the VPC.
	subnet := vpc.Subnets[0].ID
	e, err := f.CreateENI(ctx, ENIRequest{AccountID: acct, SubnetID: subnet})
	if err != nil {
		t.Fatal(err)
	}
	if len(e.Groups) != 1 || e.Groups[0] != vpc.DefaultSecurityGroupID {
		t.Fatalf("ENI groups without a request: %v", e.Groups)
	}
	e2, err := f.CreateENI(ctx, ENIRequest{AccountID: acct, SubnetID: subnet, Groups: []string{app.ID, db.ID, app.ID}})
	if err != nil {
		t.Fatal(err)
	}
	if fmt.Sprint(e2.Groups) != fmt.Sprint([]string{app.ID, db.ID}) {
		t.Fatalf("ENI groups: %v", e2.Groups)
	}
	_, err = f.CreateENI(ctx, ENIRequest{AccountID: acct, SubnetID: subnet, Groups: []string{"sg-00000000000000000"}})
	wantCode(t, err, "InvalidGroup.NotFound")
	_, err = f.DeleteSecurityGroup(ctx, acct, app.ID, "")
	wantCode(t, err, "DependencyViolation")

	other, _ := testVPC(t, f, acct, "10.40.0.0/16")
	foreign, err := f.CreateSecurityGroup(ctx, SGRequest{AccountID: acct, VPCID: other.ID, Name: "x", Description: "x"})
	if err != nil {
		t.Fatal(err)
	}
	var six []string
	for i := range 6 {
		six = append(six, mk(fmt.Sprintf("g%d", i)).ID)
	}
	for _, c := range []struct {
		name   string
		groups []string
		code   string
	}{
		{"six groups", six, "SecurityGroupsPerInterfaceLimitExceeded"},
		{"unknown group", []string{"sg-00000000000000000"}, "InvalidGroup.NotFound"},
		{"group of another VPC", []string{foreign.ID}, "InvalidParameterValue"},
	} {
		t.Run(c.name, func(t *testing.T) {
			_, err := f.ValidateGroups(ctx, acct, vpc.ID, c.groups)
			wantCode(t, err, c.code)
			err = f.SetENIGroups(ctx, acct, e2.ID, c.groups)
			wantCode(t, err, c.code)
		})
	}
	if got, err := f.ValidateGroups(ctx, acct, vpc.ID, nil); err != nil || fmt.Sprint(got) != fmt.Sprint([]string{vpc.DefaultSecurityGroupID}) {
		t.Fatalf("ValidateGroups(nil) = %v, %v", got, err)
	}
	if got, err := f.ValidateGroups(ctx, acct, vpc.ID, six[:5]); err != nil || len(got) != 5 {
		t.Fatalf("five groups: %v, %v", got, err)
	}
	if err := f.SetENIGroups(ctx, acct, e2.ID, []string{db.ID}); err != nil {
		t.Fatal(err)
	}
	off := false
	desc := "nat box"
	got, err := f.ModifyENI(ctx, acct, e2.ID, ENIChange{SourceDestCheck: &off, Description: &desc})
	if err != nil || !got.NoSourceDestCheck || got.Description != desc || fmt.Sprint(got.Groups) != fmt.Sprint([]string{db.ID}) {
		t.Fatalf("ModifyENI: %+v, %v", got, err)
	}
	err = f.SetENIGroups(ctx, acct, "eni-00000000000000000", []string{db.ID})
	wantCode(t, err, "InvalidNetworkInterfaceID.NotFound")

	// app is free now: delete it by name; the name can be used again.
	if _, err := f.DeleteSecurityGroup(ctx, acct, "", "app"); err != nil {
		t.Fatal(err)
	}
	_, err = f.DeleteSecurityGroup(ctx, acct, app.ID, "")
	wantCode(t, err, "InvalidGroup.NotFound")
	if _, err := f.CreateSecurityGroup(ctx, SGRequest{AccountID: acct, Name: "app", Description: "again"}); err != nil {
		t.Fatalf("reusing a deleted group's name: %v", err)
	}
	// db is used by e2: in use until the interface goes.
	_, err = f.DeleteSecurityGroup(ctx, acct, db.ID, "")
	wantCode(t, err, "DependencyViolation")
	if err := f.DeleteENI(ctx, acct, e2.ID); err != nil {
		t.Fatal(err)
	}
	if _, err := f.DeleteSecurityGroup(ctx, acct, db.ID, ""); err != nil {
		t.Fatal(err)
	}
	_ = f.DeleteENI(ctx, acct, e.ID)
}

func TestSecurityGroupModifyRules(t *testing.T) {
	f := sgFabric(t, "sg8")
	ctx := context.Background()
	const acct = "111111111111"
	if _, err := f.EnsureDefaultVPC(ctx, acct); err != nil {
		t.Fatal(err)
	}
	g, err := f.CreateSecurityGroup(ctx, SGRequest{AccountID: acct, Name: "g", Description: "g"})
	if err != nil {
		t.Fatal(err)
	}
	rules, err := f.AuthorizeSecurityGroup(ctx, acct, g.ID, false, []Permission{tcp(22, cidr("10.0.0.0/8")), tcp(80, cidr("10.0.0.0/8"))})
	if err != nil {
		t.Fatal(err)
	}
	// One bad update fails them all.
	err = f.ModifySecurityGroupRules(ctx, acct, g.ID, []RuleUpdate{
		{RuleID: rules[0].ID, Rule: tcp(2222, cidr("10.0.0.0/8"))},
		{RuleID: "sgr-00000000000000000", Rule: tcp(1, cidr("10.0.0.0/8"))},
	})
	wantCode(t, err, "InvalidSecurityGroupRuleId.NotFound")
	err = f.ModifySecurityGroupRules(ctx, acct, g.ID, []RuleUpdate{{RuleID: rules[0].ID, Rule: tcp(80, cidr("10.0.0.0/8"))}})
	wantCode(t, err, "InvalidPermission.Duplicate")
	err = f.ModifySecurityGroupRules(ctx, acct, g.ID, []RuleUpdate{{RuleID: rules[0].ID, Rule: Permission{Protocol: "tcp", Peers: []Peer{cidr("10.0.0.0/8")}}}})
	wantCode(t, err, "InvalidParameterValue")
	cur, _ := f.SecurityGroup(ctx, acct, g.ID, "")
	if cur.Ingress[0].FromPort != 22 {
		t.Fatalf("a failed modify changed a rule: %+v", cur.Ingress[0])
	}
	if err := f.ModifySecurityGroupRules(ctx, acct, g.ID, []RuleUpdate{{RuleID: rules[0].ID, Rule: tcp(2222, Peer{CIDR: "192.0.2.0/24", Description: "moved"})}}); err != nil {
		t.Fatal(err)
	}
	cur, _ = f.SecurityGroup(ctx, acct, g.ID, "")
	if r := cur.Ingress[0]; r.ID != rules[0].ID || r.FromPort != 2222 || r.CIDR != "192.0.2.0/24" || r.Description != "moved" {
		t.Fatalf("modified rule: %+v", r)
	}
}
