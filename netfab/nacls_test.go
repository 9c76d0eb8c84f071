package netfab

import (
	"context"
	"fmt"
	"strings"
	"testing"

	"github.com/labcloud/labcloud/internal/store"
)

func TestNetworkACLEntriesAndAssociations(t *testing.T) {
	f := sgFabric(t, "sg4")
	ctx := context.Background()
	const acct = "111111111111"
	dvpc, err := f.EnsureDefaultVPC(ctx, acct)
	if err != nil {
		t.Fatal(err)
	}
	vpc, sn := testVPC(t, f, acct, "10.50.0.0/16")

	// Defaults: rule 100 allows all in and out; every subnet associated.
	acls, assocs, err := f.NetworkACLs(ctx, acct)
	if err != nil || len(acls) != 2 {
		t.Fatalf("ACLs: %+v, %v", acls, err)
	}
	for _, a := range acls {
		if !a.IsDefault || len(a.Entries) != 2 || a.Entries[0].RuleNumber != 100 || a.Entries[0].RuleAction != "allow" {
			t.Fatalf("default ACL: %+v", a)
		}
	}
	if len(assocs) != len(dvpc.Subnets)+1 {
		t.Fatalf("associations: %+v", assocs)
	}

	_, err = f.CreateNetworkACL(ctx, acct, "vpc-00000000000000000")
	wantCode(t, err, "InvalidVpcID.NotFound")
	_, err = f.CreateNetworkACL(ctx, acct, "")
	wantCode(t, err, "MissingParameter")
	acl, err := f.CreateNetworkACL(ctx, acct, vpc.ID)
	if err != nil {
		t.Fatal(err)
	}
	if acl.IsDefault || len(acl.Entries) != 0 || acl.VPCID != vpc.ID {
		t.Fatalf("new ACL: %+v", acl)
	}
	if ok, err := f.NetworkACLExists(ctx, acct, acl.ID); !ok || err != nil {
		t.Fatalf("NetworkACLExists: %v, %v", ok, err)
	}

	entry := func(n int, egress bool, proto, action string) ACLEntryRequest {
		r := ACLEntryRequest{RuleNumber: n, Egress: egress, Protocol: proto, RuleAction: action, CIDR: "0.0.0.0/0"}
		if proto == "tcp" || proto == "6" || proto == "udp" {
			r.FromPort, r.ToPort = ip(22), ip(22)
		}
		return r
	}
	if err := f.CreateNetworkACLEntry(ctx, acct, acl.ID, entry(100, false, "-1", "allow")); err != nil {
		t.Fatal(err)
	}
	if err := f.CreateNetworkACLEntry(ctx, acct, acl.ID, entry(90, false, "tcp", "deny")); err != nil {
		t.Fatal(err)
	}
	if err := f.CreateNetworkACLEntry(ctx, acct, acl.ID, entry(100, true, "-1", "allow")); err != nil {
		t.Fatalf("the same number in the other direction: %v", err)
	}
	icmp := entry(110, false, "icmp", "allow")
	icmp.ICMPType, icmp.ICMPCode = ip(8), ip(-1)
	if err := f.CreateNetworkACLEntry(ctx, acct, acl.ID, icmp); err != nil {
		t.Fatal(err)
	}
	entries := func() []ACLRule {
		a, _, err := f.loadACL(ctx, acct, acl.ID)
		if err != nil {
			t.Fatal(err)
		}
		return a.Entries
	}
	got := entries()
	if fmt.Sprint(got) != fmt.Sprint([]ACLRule{
		{RuleNumber: 90, Protocol: "6", RuleAction: "deny", CIDR: "0.0.0.0/0", FromPort: 22, ToPort: 22},
		{RuleNumber: 100, Protocol: "-1", RuleAction: "allow", CIDR: "0.0.0.0/0"},
		{RuleNumber: 110, Protocol: "1", RuleAction: "allow", CIDR: "0.0.0.0/0", ICMPType: 8, ICMPCode: -1},
		{RuleNumber: 100, Egress: true, Protocol: "-1", RuleAction: "allow", CIDR: "0.0.0.0/0"},
	}) {
		t.Fatalf("entries: %+v", got)
	}

	noPorts := entry(120, false, "udp", "allow")
	noPorts.FromPort, noPorts.ToPort = nil, nil
	noICMP := entry(120, false, "icmp", "allow")
	noCIDR := entry(120, false, "-1", "allow")
	noCIDR.CIDR = ""
	v6 := entry(120, false, "-1", "allow")
	v6.CIDR, v6.IPv6CIDR = "", "::/0"
	badRange := entry(120, false, "tcp", "allow")
	badRange.FromPort, badRange.ToPort = ip(100), ip(10)
	for _, c := range []struct {
		name string
		r    ACLEntryRequest
		code string
	}{
		{"duplicate number", entry(90, false, "-1", "allow"), "NetworkAclEntryAlreadyExists"},
		{"rule number 0", entry(0, false, "-1", "allow"), "InvalidParameterValue"},
		{"rule number 32767", entry(32767, false, "-1", "allow"), "InvalidParameterValue"},
		{"unknown protocol name", entry(120, false, "gre", "allow"), "InvalidParameterValue"},
		{"protocol 300", entry(120, false, "300", "allow"), "InvalidParameterValue"},
		{"action reject", entry(120, false, "-1", "reject"), "InvalidParameterValue"},
		{"udp without ports", noPorts, "MissingParameter"},
		{"icmp without type", noICMP, "MissingParameter"},
		{"no CIDR", noCIDR, "MissingParameter"},
		{"IPv6", v6, "InvalidParameterValue"},
		{"from > to", badRange, "InvalidParameterValue"},
	} {
		t.Run(c.name, func(t *testing.T) {
			wantCode(t, f.CreateNetworkACLEntry(ctx, acct, acl.ID, c.r), c.code)
		})
	}
	wantCode(t, f.CreateNetworkACLEntry(ctx, acct, "acl-00000000000000000", entry(1, false, "-1", "allow")), "InvalidNetworkAclID.NotFound")

	// Replace and delete.
	wantCode(t, f.ReplaceNetworkACLEntry(ctx, acct, acl.ID, entry(91, false, "-1", "allow")), "InvalidNetworkAclEntry.NotFound")
	if err := f.ReplaceNetworkACLEntry(ctx, acct, acl.ID, entry(90, false, "tcp", "allow")); err != nil {
		t.Fatal(err)
	}
	if e := entries()[0]; e.RuleNumber != 90 || e.RuleAction != "allow" {
		t.Fatalf("after replace: %+v", e)
	}
	wantCode(t, f.DeleteNetworkACLEntry(ctx, acct, acl.ID, 90, true), "InvalidNetworkAclEntry.NotFound")
	wantCode(t, f.DeleteNetworkACLEntry(ctx, acct, acl.ID, 0, false), "InvalidParameterValue")
	if err := f.DeleteNetworkACLEntry(ctx, acct, acl.ID, 110, false); err != nil {
		t.Fatal(err)
	}
	if n := len(entries()); n != 3 {
		t.Fatalf("%d entries after delete", n)
	}

	// 20 per direction.
	for n := 1; len(entries()) < MaxACLEntries+1; n++ { // 2 inbound + 1 outbound → fill inbound to 20
		if err := f.CreateNetworkACLEntry(ctx, acct, acl.ID, entry(200+n, false, "-1", "deny")); err != nil {
			t.Fatal(err)
		}
	}
	wantCode(t, f.CreateNetworkACLEntry(ctx, acct, acl.ID, entry(999, false, "-1", "deny")), "NetworkAclEntryLimitExceeded")
	if err := f.CreateNetworkACLEntry(ctx, acct, acl.ID, entry(999, true, "-1", "deny")); err != nil {
		t.Fatalf("egress has its own limit: %v", err)
	}

	// Associations: move the subnet to the new ACL, then back.
	_, err = f.ReplaceNetworkACLAssociation(ctx, acct, "aclassoc-00000000000000000", acl.ID)
	wantCode(t, err, "InvalidAssociationID.NotFound")
	_, err = f.ReplaceNetworkACLAssociation(ctx, acct, dvpc.Subnets[0].NetworkACLAssociationID, acl.ID)
	wantCode(t, err, "InvalidParameterValue") // subnet of another VPC
	_, err = f.ReplaceNetworkACLAssociation(ctx, acct, sn.NetworkACLAssociationID, "acl-00000000000000000")
	wantCode(t, err, "InvalidNetworkAclID.NotFound")
	newAssoc, err := f.ReplaceNetworkACLAssociation(ctx, acct, sn.NetworkACLAssociationID, acl.ID)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(newAssoc, "aclassoc-") || newAssoc == sn.NetworkACLAssociationID {
		t.Fatalf("new association id %q", newAssoc)
	}
	rec, _, err := store.Load[subnetRecord](ctx, f.st, subnetKey(acct, sn.ID))
	if err != nil || rec.NetworkACLID != acl.ID || rec.NetworkACLAssociationID != newAssoc {
		t.Fatalf("subnet after association: %+v, %v", rec, err)
	}
	_, err = f.ReplaceNetworkACLAssociation(ctx, acct, sn.NetworkACLAssociationID, acl.ID)
	wantCode(t, err, "InvalidAssociationID.NotFound") // the old id is gone

	// Delete: not while associated; never the default.
	wantCode(t, f.DeleteNetworkACL(ctx, acct, acl.ID), "DependencyViolation")
	wantCode(t, f.DeleteNetworkACL(ctx, acct, vpc.DefaultNetworkACLID), "InvalidParameterValue")
	if _, err := f.ReplaceNetworkACLAssociation(ctx, acct, newAssoc, vpc.DefaultNetworkACLID); err != nil {
		t.Fatal(err)
	}
	if err := f.DeleteNetworkACL(ctx, acct, acl.ID); err != nil {
		t.Fatal(err)
	}
	wantCode(t, f.DeleteNetworkACL(ctx, acct, acl.ID), "InvalidNetworkAclID.NotFound")

	// A subnet recorded without an ACL belongs to its VPC's default.
	rec, rev, _ := store.Load[subnetRecord](ctx, f.st, subnetKey(acct, sn.ID))
	rec.NetworkACLID = ""
	if _, err := f.st.CompareAndSwap(ctx, subnetKey(acct, sn.ID), rec, rev); err != nil {
		t.Fatal(err)
	}
	_, assocs, err = f.NetworkACLs(ctx, acct)
	if err != nil {
		t.Fatal(err)
	}
	found := false
	for _, a := range assocs {
		if a.SubnetID == sn.ID {
			found = a.NetworkACLID == vpc.DefaultNetworkACLID
		}
	}
	if !found {
		t.Fatalf("subnet without a recorded ACL is not with the default: %+v", assocs)
	}
}
