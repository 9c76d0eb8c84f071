package api

import (
	"context"
	"fmt"
	"net/http/httptest"
	"os"
	"os/exec"
	"strings"
	"testing"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/service/ec2"
	ec2types "github.com/aws/aws-sdk-go-v2/service/ec2/types"

	"github.com/labcloud/labcloud/iamd"
	"github.com/labcloud/labcloud/internal/store/storetest"
	"github.com/labcloud/labcloud/internal/tags"
	"github.com/labcloud/labcloud/netfab"
)

type nullMetadata struct{}

func (nullMetadata) Lookup(context.Context, string, string) (netfab.Metadata, bool) {
	return netfab.Metadata{}, false
}

// newNetworkClient serves the VPC security actions over a real etcd and a
// real Fabric (network namespaces named sg5-…, removed after the test) and
// returns an aws-sdk-go-v2 EC2 client, so a real SDK parses the responses.
func newNetworkClient(t *testing.T) (*ec2.Client, *netfab.Fabric, string) {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("needs root: the fabric builds a network namespace per VPC (CI runs as root)")
	}
	ctx := context.Background()
	st := storetest.NewEmbedded(t)
	accounts := iamd.NewAccounts(st)
	acct, admin, err := accounts.Bootstrap(ctx, "admin")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if out, _ := exec.Command("ip", "netns", "list").CombinedOutput(); strings.Contains(string(out), "sg5-") {
			t.Errorf("namespaces left behind:\n%s", out)
		}
	})
	nf, err := netfab.New(ctx, netfab.Options{Store: st, Zones: []string{"lab-1a", "lab-1b"}, NamePrefix: "sg5", Metadata: nullMetadata{}})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = nf.Teardown(context.Background()) })
	tg := tags.New(st)
	tg.Register("sg-", nf.SecurityGroupExists, "security-group")
	tg.Register("sgr-", nf.SecurityGroupRuleExists, "security-group-rule")
	tg.Register("acl-", nf.NetworkACLExists, "network-acl")
	hs := httptest.NewServer(New(Options{Accounts: accounts, Region: "lab-1", Tags: tg, Network: nf}))
	t.Cleanup(hs.Close)
	return ec2.New(ec2.Options{Region: "lab-1", BaseEndpoint: aws.String(hs.URL),
		Credentials: credentials.NewStaticCredentialsProvider(admin.AccessKeyID, admin.SecretAccessKey, "")}), nf, acct.ID
}

func wantAPICode(t *testing.T, err error, code string) {
	t.Helper()
	if got := apiCode(err); got != code {
		t.Fatalf("got %v (code %q), want %s", err, got, code)
	}
}

func TestSecurityGroupsAPI(t *testing.T) {
	c, nf, acct := newNetworkClient(t)
	ctx := context.Background()
	web, err := c.CreateSecurityGroup(ctx, &ec2.CreateSecurityGroupInput{GroupName: aws.String("web"), Description: aws.String("web servers"),
		TagSpecifications: []ec2types.TagSpecification{{ResourceType: ec2types.ResourceTypeSecurityGroup, Tags: []ec2types.Tag{{Key: aws.String("tier"), Value: aws.String("front")}}}}})
	if err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(*web.GroupId, "sg-") || len(web.Tags) != 1 || !strings.HasSuffix(*web.SecurityGroupArn, ":security-group/"+*web.GroupId) {
		t.Fatalf("create: %+v", web)
	}
	_, err = c.CreateSecurityGroup(ctx, &ec2.CreateSecurityGroupInput{GroupName: aws.String("web"), Description: aws.String("again")})
	wantAPICode(t, err, "InvalidGroup.Duplicate")
	_, err = c.CreateSecurityGroup(ctx, &ec2.CreateSecurityGroupInput{GroupName: aws.String("x"), Description: aws.String("<b>")})
	wantAPICode(t, err, "InvalidParameterValue")

	groups, err := c.DescribeSecurityGroups(ctx, &ec2.DescribeSecurityGroupsInput{GroupNames: []string{"default"}})
	if err != nil || len(groups.SecurityGroups) != 1 {
		t.Fatalf("default group: %+v, %v", groups, err)
	}
	def := groups.SecurityGroups[0]
	if len(def.IpPermissions) != 1 || *def.IpPermissions[0].IpProtocol != "-1" || def.IpPermissions[0].FromPort != nil ||
		len(def.IpPermissions[0].UserIdGroupPairs) != 1 || *def.IpPermissions[0].UserIdGroupPairs[0].GroupId != *def.GroupId {
		t.Fatalf("default group's inbound rule: %+v", def.IpPermissions)
	}

	auth, err := c.AuthorizeSecurityGroupIngress(ctx, &ec2.AuthorizeSecurityGroupIngressInput{GroupId: web.GroupId, IpPermissions: []ec2types.IpPermission{{
		IpProtocol: aws.String("tcp"), FromPort: aws.Int32(22), ToPort: aws.Int32(22),
		IpRanges:         []ec2types.IpRange{{CidrIp: aws.String("198.51.100.0/24"), Description: aws.String("lab")}},
		UserIdGroupPairs: []ec2types.UserIdGroupPair{{GroupId: def.GroupId}},
	}}})
	if err != nil {
		t.Fatal(err)
	}
	if !*auth.Return || len(auth.SecurityGroupRules) != 2 || *auth.SecurityGroupRules[0].CidrIpv4 != "198.51.100.0/24" ||
		*auth.SecurityGroupRules[1].ReferencedGroupInfo.GroupId != *def.GroupId || *auth.SecurityGroupRules[0].IsEgress {
		t.Fatalf("authorize: %+v", auth)
	}
	_, err = c.AuthorizeSecurityGroupIngress(ctx, &ec2.AuthorizeSecurityGroupIngressInput{GroupId: web.GroupId, IpPermissions: []ec2types.IpPermission{{
		IpProtocol: aws.String("tcp"), FromPort: aws.Int32(22), ToPort: aws.Int32(22), IpRanges: []ec2types.IpRange{{CidrIp: aws.String("198.51.100.0/24")}}}}})
	wantAPICode(t, err, "InvalidPermission.Duplicate")
	_, err = c.AuthorizeSecurityGroupIngress(ctx, &ec2.AuthorizeSecurityGroupIngressInput{GroupId: web.GroupId, IpPermissions: []ec2types.IpPermission{{
		IpProtocol: aws.String("tcp"), FromPort: aws.Int32(22), ToPort: aws.Int32(22), Ipv6Ranges: []ec2types.Ipv6Range{{CidrIpv6: aws.String("::/0")}}}}})
	wantAPICode(t, err, "InvalidParameterValue")
	_, err = c.AuthorizeSecurityGroupIngress(ctx, &ec2.AuthorizeSecurityGroupIngressInput{GroupId: web.GroupId, IpPermissions: []ec2types.IpPermission{{
		IpProtocol: aws.String("tcp"), FromPort: aws.Int32(22), ToPort: aws.Int32(22), UserIdGroupPairs: []ec2types.UserIdGroupPair{{GroupId: aws.String("sg-00000000000000000")}}}}})
	wantAPICode(t, err, "InvalidGroup.NotFound")
	// The older flat parameters, by group name.
	if _, err := c.AuthorizeSecurityGroupIngress(ctx, &ec2.AuthorizeSecurityGroupIngressInput{GroupName: aws.String("web"),
		IpProtocol: aws.String("udp"), FromPort: aws.Int32(53), ToPort: aws.Int32(53), CidrIp: aws.String("10.0.0.0/8")}); err != nil {
		t.Fatal(err)
	}
	_, err = c.AuthorizeSecurityGroupIngress(ctx, &ec2.AuthorizeSecurityGroupIngressInput{GroupId: web.GroupId,
		IpProtocol: aws.String("gre"), CidrIp: aws.String("10.0.0.0/8")})
	wantAPICode(t, err, "InvalidParameterValue")
	eg, err := c.AuthorizeSecurityGroupEgress(ctx, &ec2.AuthorizeSecurityGroupEgressInput{GroupId: web.GroupId, IpPermissions: []ec2types.IpPermission{{
		IpProtocol: aws.String("icmp"), FromPort: aws.Int32(8), ToPort: aws.Int32(-1), IpRanges: []ec2types.IpRange{{CidrIp: aws.String("10.0.0.0/8")}}}}})
	if err != nil || !*eg.SecurityGroupRules[0].IsEgress {
		t.Fatalf("egress: %+v, %v", eg, err)
	}

	d, err := c.DescribeSecurityGroups(ctx, &ec2.DescribeSecurityGroupsInput{GroupIds: []string{*web.GroupId}})
	if err != nil || len(d.SecurityGroups) != 1 {
		t.Fatalf("describe: %+v, %v", d, err)
	}
	g := d.SecurityGroups[0]
	if *g.GroupName != "web" || *g.Description != "web servers" || *g.OwnerId != acct || len(g.Tags) != 1 || len(g.IpPermissions) != 2 {
		t.Fatalf("described group: %+v", g)
	}
	ssh := g.IpPermissions[0]
	if *ssh.IpProtocol != "tcp" || *ssh.FromPort != 22 || *ssh.ToPort != 22 || len(ssh.IpRanges) != 1 || *ssh.IpRanges[0].Description != "lab" ||
		len(ssh.UserIdGroupPairs) != 1 || *ssh.UserIdGroupPairs[0].UserId != acct {
		t.Fatalf("grouped permission: %+v", ssh)
	}
	if len(g.IpPermissionsEgress) != 2 || *g.IpPermissionsEgress[0].IpProtocol != "-1" || g.IpPermissionsEgress[0].FromPort != nil {
		t.Fatalf("egress permissions: %+v", g.IpPermissionsEgress)
	}
	_, err = c.DescribeSecurityGroups(ctx, &ec2.DescribeSecurityGroupsInput{GroupIds: []string{"sg-00000000000000000"}})
	wantAPICode(t, err, "InvalidGroup.NotFound")

	for _, fc := range []struct {
		name, value string
		want        int
	}{
		{"group-name", "web", 1},
		{"tag:tier", "front", 1},
		{"tag-key", "tier", 1},
		{"description", "default VPC*", 1},
		{"ip-permission.from-port", "22", 1},
		{"ip-permission.cidr", "10.0.0.0/8", 1},
		{"egress.ip-permission.protocol", "icmp", 1},
		{"vpc-id", *g.VpcId, 2},
	} {
		out, err := c.DescribeSecurityGroups(ctx, &ec2.DescribeSecurityGroupsInput{Filters: []ec2types.Filter{{Name: aws.String(fc.name), Values: []string{fc.value}}}})
		if err != nil || len(out.SecurityGroups) != fc.want {
			t.Fatalf("filter %s=%s: %d groups, %v; want %d", fc.name, fc.value, len(out.SecurityGroups), err, fc.want)
		}
	}
	// Pages.
	for i := range 5 {
		if _, err := c.CreateSecurityGroup(ctx, &ec2.CreateSecurityGroupInput{GroupName: aws.String(fmt.Sprintf("p%d", i)), Description: aws.String("p")}); err != nil {
			t.Fatal(err)
		}
	}
	var seen []string
	pg := ec2.NewDescribeSecurityGroupsPaginator(c, &ec2.DescribeSecurityGroupsInput{MaxResults: aws.Int32(5)})
	pages := 0
	for pg.HasMorePages() {
		out, err := pg.NextPage(ctx)
		if err != nil {
			t.Fatal(err)
		}
		pages++
		for _, g := range out.SecurityGroups {
			seen = append(seen, *g.GroupId)
		}
	}
	if pages != 2 || len(seen) != 7 {
		t.Fatalf("%d pages with %d groups, want 2 with 7", pages, len(seen))
	}

	rules, err := c.DescribeSecurityGroupRules(ctx, &ec2.DescribeSecurityGroupRulesInput{Filters: []ec2types.Filter{{Name: aws.String("group-id"), Values: []string{*web.GroupId}}}})
	if err != nil || len(rules.SecurityGroupRules) != 5 { // 3 in, 2 out
		t.Fatalf("rules: %+v, %v", rules, err)
	}

	// Modify a rule in place: same ID, new port and CIDR.
	if _, err := c.ModifySecurityGroupRules(ctx, &ec2.ModifySecurityGroupRulesInput{GroupId: web.GroupId,
		SecurityGroupRules: []ec2types.SecurityGroupRuleUpdate{{SecurityGroupRuleId: auth.SecurityGroupRules[0].SecurityGroupRuleId,
			SecurityGroupRule: &ec2types.SecurityGroupRuleRequest{IpProtocol: aws.String("tcp"), FromPort: aws.Int32(2222), ToPort: aws.Int32(2222),
				CidrIpv4: aws.String("203.0.113.0/24")}}}}); err != nil {
		t.Fatal(err)
	}
	one, err := c.DescribeSecurityGroupRules(ctx, &ec2.DescribeSecurityGroupRulesInput{SecurityGroupRuleIds: []string{*auth.SecurityGroupRules[0].SecurityGroupRuleId}})
	if err != nil || len(one.SecurityGroupRules) != 1 || *one.SecurityGroupRules[0].FromPort != 2222 || *one.SecurityGroupRules[0].CidrIpv4 != "203.0.113.0/24" {
		t.Fatalf("modified rule: %+v, %v", one, err)
	}
	_, err = c.DescribeSecurityGroupRules(ctx, &ec2.DescribeSecurityGroupRulesInput{SecurityGroupRuleIds: []string{"sgr-00000000000000000"}})
	wantAPICode(t, err, "InvalidSecurityGroupRuleId.NotFound")

	// Revoke: by ID, and an unknown permission in the default VPC.
	rv, err := c.RevokeSecurityGroupIngress(ctx, &ec2.RevokeSecurityGroupIngressInput{GroupId: web.GroupId,
		SecurityGroupRuleIds: []string{*auth.SecurityGroupRules[1].SecurityGroupRuleId}})
	if err != nil || len(rv.RevokedSecurityGroupRules) != 1 || *rv.RevokedSecurityGroupRules[0].ReferencedGroupId != *def.GroupId {
		t.Fatalf("revoke by id: %+v, %v", rv, err)
	}
	rv, err = c.RevokeSecurityGroupIngress(ctx, &ec2.RevokeSecurityGroupIngressInput{GroupId: web.GroupId, IpPermissions: []ec2types.IpPermission{{
		IpProtocol: aws.String("tcp"), FromPort: aws.Int32(23), ToPort: aws.Int32(23), IpRanges: []ec2types.IpRange{{CidrIp: aws.String("198.51.100.0/24")}}}}})
	if err != nil || len(rv.UnknownIpPermissions) != 1 || *rv.UnknownIpPermissions[0].FromPort != 23 {
		t.Fatalf("revoke of an unknown rule in the default VPC: %+v, %v", rv, err)
	}

	// In use by an interface, then moved off it.
	vpc, err := nf.EnsureDefaultVPC(ctx, acct)
	if err != nil {
		t.Fatal(err)
	}
	eni, err := nf.CreateENI(ctx, netfab.ENIRequest{AccountID: acct, SubnetID: vpc.Subnets[0].ID, Groups: []string{*web.GroupId}})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = nf.DeleteENI(context.Background(), acct, eni.ID) })
	_, err = c.DeleteSecurityGroup(ctx, &ec2.DeleteSecurityGroupInput{GroupId: web.GroupId})
	wantAPICode(t, err, "DependencyViolation")
	_, err = c.DeleteSecurityGroup(ctx, &ec2.DeleteSecurityGroupInput{GroupId: def.GroupId})
	wantAPICode(t, err, "CannotDelete")
	_, err = c.ModifyNetworkInterfaceAttribute(ctx, &ec2.ModifyNetworkInterfaceAttributeInput{NetworkInterfaceId: aws.String(eni.ID),
		Groups: []string{"sg-00000000000000000"}})
	wantAPICode(t, err, "InvalidGroup.NotFound")
	if _, err := c.ModifyNetworkInterfaceAttribute(ctx, &ec2.ModifyNetworkInterfaceAttributeInput{NetworkInterfaceId: aws.String(eni.ID),
		Groups: []string{*def.GroupId}}); err != nil {
		t.Fatal(err)
	}
	if _, err := c.ModifyNetworkInterfaceAttribute(ctx, &ec2.ModifyNetworkInterfaceAttributeInput{NetworkInterfaceId: aws.String(eni.ID),
		SourceDestCheck: &ec2types.AttributeBooleanValue{Value: aws.Bool(false)}}); err != nil {
		t.Fatal(err)
	}
	_, err = c.ModifyNetworkInterfaceAttribute(ctx, &ec2.ModifyNetworkInterfaceAttributeInput{NetworkInterfaceId: aws.String("eni-00000000000000000"),
		Description: &ec2types.AttributeValue{Value: aws.String("x")}})
	wantAPICode(t, err, "InvalidNetworkInterfaceID.NotFound")
	del, err := c.DeleteSecurityGroup(ctx, &ec2.DeleteSecurityGroupInput{GroupId: web.GroupId})
	if err != nil || *del.GroupId != *web.GroupId {
		t.Fatalf("delete: %+v, %v", del, err)
	}
}

func TestNetworkAclsAPI(t *testing.T) {
	c, nf, acct := newNetworkClient(t)
	ctx := context.Background()
	vpc, err := nf.EnsureDefaultVPC(ctx, acct)
	if err != nil {
		t.Fatal(err)
	}
	d, err := c.DescribeNetworkAcls(ctx, &ec2.DescribeNetworkAclsInput{Filters: []ec2types.Filter{{Name: aws.String("default"), Values: []string{"true"}}}})
	if err != nil || len(d.NetworkAcls) != 1 {
		t.Fatalf("default ACL: %+v, %v", d, err)
	}
	def := d.NetworkAcls[0]
	if len(def.Associations) != len(vpc.Subnets) || len(def.Entries) != 4 {
		t.Fatalf("default ACL: %+v", def)
	}
	var shape []string
	for _, e := range def.Entries {
		shape = append(shape, fmt.Sprintf("%v/%d/%s/%s/%s", *e.Egress, *e.RuleNumber, *e.Protocol, e.RuleAction, *e.CidrBlock))
	}
	if got := strings.Join(shape, " "); got != "true/100/-1/allow/0.0.0.0/0 true/32767/-1/deny/0.0.0.0/0 false/100/-1/allow/0.0.0.0/0 false/32767/-1/deny/0.0.0.0/0" {
		t.Fatalf("default entries: %s", got)
	}

	created, err := c.CreateNetworkAcl(ctx, &ec2.CreateNetworkAclInput{VpcId: aws.String(vpc.ID),
		TagSpecifications: []ec2types.TagSpecification{{ResourceType: ec2types.ResourceTypeNetworkAcl, Tags: []ec2types.Tag{{Key: aws.String("Name"), Value: aws.String("locked")}}}}})
	if err != nil {
		t.Fatal(err)
	}
	acl := created.NetworkAcl
	if *acl.IsDefault || len(acl.Entries) != 2 || acl.Entries[0].RuleAction != ec2types.RuleActionDeny || len(acl.Tags) != 1 {
		t.Fatalf("new ACL: %+v", acl)
	}
	entry := func(n int32, egress bool, proto string, action ec2types.RuleAction, ports *ec2types.PortRange) *ec2.CreateNetworkAclEntryInput {
		return &ec2.CreateNetworkAclEntryInput{NetworkAclId: acl.NetworkAclId, RuleNumber: aws.Int32(n), Egress: aws.Bool(egress),
			Protocol: aws.String(proto), RuleAction: action, CidrBlock: aws.String("0.0.0.0/0"), PortRange: ports}
	}
	ssh := &ec2types.PortRange{From: aws.Int32(22), To: aws.Int32(22)}
	for _, in := range []*ec2.CreateNetworkAclEntryInput{
		entry(90, false, "6", ec2types.RuleActionDeny, ssh),
		entry(100, false, "-1", ec2types.RuleActionAllow, nil),
		entry(100, true, "-1", ec2types.RuleActionAllow, nil),
	} {
		if _, err := c.CreateNetworkAclEntry(ctx, in); err != nil {
			t.Fatal(err)
		}
	}
	icmp := entry(110, false, "1", ec2types.RuleActionAllow, nil)
	icmp.IcmpTypeCode = &ec2types.IcmpTypeCode{Type: aws.Int32(8), Code: aws.Int32(-1)}
	if _, err := c.CreateNetworkAclEntry(ctx, icmp); err != nil {
		t.Fatal(err)
	}
	_, err = c.CreateNetworkAclEntry(ctx, entry(90, false, "-1", ec2types.RuleActionAllow, nil))
	wantAPICode(t, err, "NetworkAclEntryAlreadyExists")
	_, err = c.CreateNetworkAclEntry(ctx, entry(32767, false, "-1", ec2types.RuleActionAllow, nil))
	wantAPICode(t, err, "InvalidParameterValue")
	_, err = c.CreateNetworkAclEntry(ctx, entry(95, false, "sctp", ec2types.RuleActionAllow, nil))
	wantAPICode(t, err, "InvalidParameterValue")
	_, err = c.CreateNetworkAclEntry(ctx, entry(95, false, "17", ec2types.RuleActionAllow, nil))
	wantAPICode(t, err, "MissingParameter")
	_, err = c.ReplaceNetworkAclEntry(ctx, &ec2.ReplaceNetworkAclEntryInput{NetworkAclId: acl.NetworkAclId, RuleNumber: aws.Int32(91), Egress: aws.Bool(false),
		Protocol: aws.String("-1"), RuleAction: ec2types.RuleActionAllow, CidrBlock: aws.String("0.0.0.0/0")})
	wantAPICode(t, err, "InvalidNetworkAclEntry.NotFound")
	_, err = c.DeleteNetworkAclEntry(ctx, &ec2.DeleteNetworkAclEntryInput{NetworkAclId: acl.NetworkAclId, RuleNumber: aws.Int32(91), Egress: aws.Bool(false)})
	wantAPICode(t, err, "InvalidNetworkAclEntry.NotFound")

	d, err = c.DescribeNetworkAcls(ctx, &ec2.DescribeNetworkAclsInput{NetworkAclIds: []string{*acl.NetworkAclId}})
	if err != nil || len(d.NetworkAcls) != 1 {
		t.Fatalf("describe: %+v, %v", d, err)
	}
	shape = nil
	for _, e := range d.NetworkAcls[0].Entries {
		s := fmt.Sprintf("%v/%d/%s/%s", *e.Egress, *e.RuleNumber, *e.Protocol, e.RuleAction)
		if e.PortRange != nil {
			s += fmt.Sprintf("/%d-%d", *e.PortRange.From, *e.PortRange.To)
		}
		if e.IcmpTypeCode != nil {
			s += fmt.Sprintf("/icmp%d:%d", *e.IcmpTypeCode.Type, *e.IcmpTypeCode.Code)
		}
		shape = append(shape, s)
	}
	if got := strings.Join(shape, " "); got != "true/100/-1/allow true/32767/-1/deny false/90/6/deny/22-22 false/100/-1/allow false/110/1/allow/icmp8:-1 false/32767/-1/deny" {
		t.Fatalf("entries: %s", got)
	}
	_, err = c.DescribeNetworkAcls(ctx, &ec2.DescribeNetworkAclsInput{NetworkAclIds: []string{"acl-00000000000000000"}})
	wantAPICode(t, err, "InvalidNetworkAclID.NotFound")

	// Move a subnet onto the new ACL; filters find it by association.
	assoc := def.Associations[0]
	moved, err := c.ReplaceNetworkAclAssociation(ctx, &ec2.ReplaceNetworkAclAssociationInput{AssociationId: assoc.NetworkAclAssociationId, NetworkAclId: acl.NetworkAclId})
	if err != nil {
		t.Fatal(err)
	}
	d, err = c.DescribeNetworkAcls(ctx, &ec2.DescribeNetworkAclsInput{Filters: []ec2types.Filter{{Name: aws.String("association.subnet-id"), Values: []string{*assoc.SubnetId}}}})
	if err != nil || len(d.NetworkAcls) != 1 || *d.NetworkAcls[0].NetworkAclId != *acl.NetworkAclId ||
		*d.NetworkAcls[0].Associations[0].NetworkAclAssociationId != *moved.NewAssociationId {
		t.Fatalf("after association: %+v, %v", d, err)
	}
	_, err = c.DeleteNetworkAcl(ctx, &ec2.DeleteNetworkAclInput{NetworkAclId: acl.NetworkAclId})
	wantAPICode(t, err, "DependencyViolation")
	_, err = c.DeleteNetworkAcl(ctx, &ec2.DeleteNetworkAclInput{NetworkAclId: def.NetworkAclId})
	wantAPICode(t, err, "InvalidParameterValue")
	if _, err := c.ReplaceNetworkAclAssociation(ctx, &ec2.ReplaceNetworkAclAssociationInput{AssociationId: moved.NewAssociationId, NetworkAclId: def.NetworkAclId}); err != nil {
		t.Fatal(err)
	}
	if _, err := c.DeleteNetworkAcl(ctx, &ec2.DeleteNetworkAclInput{NetworkAclId: acl.NetworkAclId}); err != nil {
		t.Fatal(err)
	}
}

func TestVPCSecurityActionsWithoutFabric(t *testing.T) {
	c, _ := newInstancesClient(t)
	_, err := c.DescribeSecurityGroups(context.Background(), &ec2.DescribeSecurityGroupsInput{})
	wantAPICode(t, err, "Unavailable")
	_, err = c.DescribeNetworkAcls(context.Background(), &ec2.DescribeNetworkAclsInput{})
	wantAPICode(t, err, "Unavailable")
}
