package e2e

import (
	"os"
	"os/exec"
	"strconv"
	"strings"
	"testing"
)

type sgJSON struct {
	SecurityGroups []struct {
		GroupId, GroupName, Description, VpcId string
		IpPermissions, IpPermissionsEgress     []struct {
			IpProtocol       string
			FromPort, ToPort *int
			IpRanges         []struct{ CidrIp, Description string }
			UserIdGroupPairs []struct{ GroupId, UserId string }
		}
	}
}

type aclJSON struct {
	NetworkAcls []struct {
		NetworkAclId, VpcId string
		IsDefault           bool
		Entries             []struct {
			RuleNumber           int
			Egress               bool
			Protocol, RuleAction string
			CidrBlock            string
			PortRange            *struct{ From, To int }
		}
		Associations []struct{ NetworkAclAssociationId, NetworkAclId, SubnetId string }
	}
}

// requireRoot skips where the daemon cannot build network namespaces.
func requireRoot(t *testing.T) {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("needs root: VPC actions build network namespaces (CI runs as root)")
	}
}

// removeNetnsAfter removes, after the daemon has stopped (call it before
// startDaemon: cleanups run last-in first-out), the VPC namespaces named
// with prefix that labcloudd leaves on purpose so running VMs keep their
// network.
func removeNetnsAfter(t *testing.T, prefix string) {
	t.Cleanup(func() {
		out, _ := exec.Command("ip", "netns", "list").Output()
		for _, line := range strings.Split(string(out), "\n") {
			f := strings.Fields(line)
			if len(f) > 0 && strings.HasPrefix(f[0], prefix+"-") {
				if err := exec.Command("ip", "netns", "del", f[0]).Run(); err != nil {
					t.Errorf("removing netns %s: %v", f[0], err)
				}
			}
		}
	})
}

// Security groups through the aws CLI against a real labcloudd (no VMs).
func TestSecurityGroupsWithTheAWSCLI(t *testing.T) {
	requireRoot(t)
	removeNetnsAfter(t, "sg6")
	d := startDaemon(t, "", "--net-prefix", "sg6")
	e := newAWSEnv(t, d)

	var web, admins struct{ GroupId string }
	e.ok(&web, "labcloud", "ec2", "create-security-group", "--group-name", "web", "--description", "web servers")
	e.ok(&admins, "labcloud", "ec2", "create-security-group", "--group-name", "admins", "--description", "bastion hosts")
	e.fails("InvalidGroup.Duplicate", "labcloud", "ec2", "create-security-group", "--group-name", "web", "--description", "again")
	e.fails("InvalidParameterValue", "labcloud", "ec2", "create-security-group", "--group-name", "sg-nope", "--description", "x")

	var auth struct {
		Return             bool
		SecurityGroupRules []struct{ SecurityGroupRuleId, CidrIpv4 string }
	}
	e.ok(&auth, "labcloud", "ec2", "authorize-security-group-ingress", "--group-id", web.GroupId,
		"--protocol", "tcp", "--port", "22", "--cidr", "198.51.100.0/24")
	if !auth.Return || len(auth.SecurityGroupRules) != 1 || auth.SecurityGroupRules[0].CidrIpv4 != "198.51.100.0/24" {
		t.Fatalf("authorize from a CIDR: %+v", auth)
	}
	cidrRule := auth.SecurityGroupRules[0].SecurityGroupRuleId
	e.ok(&auth, "labcloud", "ec2", "authorize-security-group-ingress", "--group-id", web.GroupId,
		"--protocol", "tcp", "--port", "22", "--source-group", admins.GroupId)
	e.ok(nil, "labcloud", "ec2", "authorize-security-group-ingress", "--group-id", web.GroupId, "--ip-permissions",
		`IpProtocol=tcp,FromPort=8000,ToPort=8080,IpRanges=[{CidrIp=10.0.0.0/8,Description=app}]`)
	e.fails("InvalidPermission.Duplicate", "labcloud", "ec2", "authorize-security-group-ingress", "--group-id", web.GroupId,
		"--protocol", "tcp", "--port", "22", "--cidr", "198.51.100.0/24")
	e.fails("InvalidParameterValue", "labcloud", "ec2", "authorize-security-group-ingress", "--group-id", web.GroupId,
		"--ip-permissions", "IpProtocol=sctp,FromPort=22,ToPort=22,IpRanges=[{CidrIp=198.51.100.0/24}]")
	e.fails("InvalidParameterValue", "labcloud", "ec2", "authorize-security-group-ingress", "--group-id", web.GroupId,
		"--protocol", "tcp", "--port", "30-20", "--cidr", "198.51.100.0/24")
	e.fails("InvalidGroup.NotFound", "labcloud", "ec2", "authorize-security-group-ingress", "--group-id", web.GroupId,
		"--protocol", "tcp", "--port", "22", "--source-group", "sg-00000000000000000")

	var sgs sgJSON
	e.ok(&sgs, "labcloud", "ec2", "describe-security-groups", "--group-ids", web.GroupId)
	if len(sgs.SecurityGroups) != 1 {
		t.Fatalf("describe: %+v", sgs)
	}
	g := sgs.SecurityGroups[0]
	if g.GroupName != "web" || g.Description != "web servers" || len(g.IpPermissions) != 2 {
		t.Fatalf("described group: %+v", g)
	}
	ssh := g.IpPermissions[0]
	if ssh.IpProtocol != "tcp" || *ssh.FromPort != 22 || len(ssh.IpRanges) != 1 || len(ssh.UserIdGroupPairs) != 1 ||
		ssh.UserIdGroupPairs[0].GroupId != admins.GroupId {
		t.Fatalf("ssh permission (one CIDR and one group): %+v", ssh)
	}
	if len(g.IpPermissionsEgress) != 1 || g.IpPermissionsEgress[0].IpProtocol != "-1" || g.IpPermissionsEgress[0].FromPort != nil {
		t.Fatalf("a new group allows all outbound: %+v", g.IpPermissionsEgress)
	}
	e.ok(&sgs, "labcloud", "ec2", "describe-security-groups", "--filters", "Name=group-name,Values=default")
	if len(sgs.SecurityGroups) != 1 || sgs.SecurityGroups[0].VpcId != g.VpcId {
		t.Fatalf("default group: %+v", sgs)
	}
	var rules struct {
		SecurityGroupRules []struct{ SecurityGroupRuleId string }
	}
	e.ok(&rules, "labcloud", "ec2", "describe-security-group-rules", "--filters", "Name=group-id,Values="+web.GroupId)
	if len(rules.SecurityGroupRules) != 4 {
		t.Fatalf("rules of web: %+v", rules)
	}

	// admins is referenced by web's rule: in use.
	e.fails("DependencyViolation", "labcloud", "ec2", "delete-security-group", "--group-id", admins.GroupId)
	e.ok(nil, "labcloud", "ec2", "revoke-security-group-ingress", "--group-id", web.GroupId,
		"--protocol", "tcp", "--port", "22", "--source-group", admins.GroupId)
	e.ok(nil, "labcloud", "ec2", "revoke-security-group-ingress", "--group-id", web.GroupId,
		"--security-group-rule-ids", cidrRule)
	e.fails("InvalidSecurityGroupRuleId.NotFound", "labcloud", "ec2", "revoke-security-group-ingress", "--group-id", web.GroupId,
		"--security-group-rule-ids", "sgr-00000000000000000")
	e.ok(nil, "labcloud", "ec2", "delete-security-group", "--group-id", admins.GroupId)
	e.ok(&sgs, "labcloud", "ec2", "describe-security-groups", "--group-ids", web.GroupId)
	if n := len(sgs.SecurityGroups[0].IpPermissions); n != 1 {
		t.Fatalf("%d permissions after revoking both ssh rules, want 1 (8000-8080)", n)
	}
	e.fails("CannotDelete", "labcloud", "ec2", "delete-security-group", "--group-name", "default")
	e.ok(nil, "labcloud", "ec2", "delete-security-group", "--group-name", "web")
	e.fails("InvalidGroup.NotFound", "labcloud", "ec2", "describe-security-groups", "--group-ids", web.GroupId)
}

// Network ACLs through the aws CLI against a real labcloudd (no VMs).
func TestNetworkAclsWithTheAWSCLI(t *testing.T) {
	requireRoot(t)
	removeNetnsAfter(t, "sg7")
	d := startDaemon(t, "", "--net-prefix", "sg7")
	e := newAWSEnv(t, d)

	var acls aclJSON
	// The default VPC comes into being with the first VPC call that needs it.
	var sg struct{ GroupId string }
	e.ok(&sg, "labcloud", "ec2", "create-security-group", "--group-name", "probe", "--description", "makes the default VPC")
	e.ok(&acls, "labcloud", "ec2", "describe-network-acls", "--filters", "Name=default,Values=true")
	if len(acls.NetworkAcls) != 1 || len(acls.NetworkAcls[0].Associations) == 0 {
		t.Fatalf("default ACL: %+v", acls)
	}
	def := acls.NetworkAcls[0]
	var rules []string
	for _, en := range def.Entries {
		rules = append(rules, strings.Join([]string{strconv.Itoa(en.RuleNumber), en.Protocol, en.RuleAction, en.CidrBlock}, "/"))
	}
	if got := strings.Join(rules, " "); got != "100/-1/allow/0.0.0.0/0 32767/-1/deny/0.0.0.0/0 100/-1/allow/0.0.0.0/0 32767/-1/deny/0.0.0.0/0" {
		t.Fatalf("default entries: %s", got)
	}

	var created struct {
		NetworkAcl struct {
			NetworkAclId string
			Entries      []struct{ RuleNumber int }
		}
	}
	e.ok(&created, "labcloud", "ec2", "create-network-acl", "--vpc-id", def.VpcId)
	acl := created.NetworkAcl.NetworkAclId
	if len(created.NetworkAcl.Entries) != 2 || created.NetworkAcl.Entries[0].RuleNumber != 32767 {
		t.Fatalf("a new ACL has only the * rules: %+v", created)
	}
	e.ok(nil, "labcloud", "ec2", "create-network-acl-entry", "--network-acl-id", acl, "--ingress", "--rule-number", "90",
		"--protocol", "tcp", "--port-range", "From=22,To=22", "--cidr-block", "0.0.0.0/0", "--rule-action", "deny")
	e.ok(nil, "labcloud", "ec2", "create-network-acl-entry", "--network-acl-id", acl, "--ingress", "--rule-number", "100",
		"--protocol", "-1", "--cidr-block", "0.0.0.0/0", "--rule-action", "allow")
	e.ok(nil, "labcloud", "ec2", "create-network-acl-entry", "--network-acl-id", acl, "--egress", "--rule-number", "100",
		"--protocol", "udp", "--port-range", "From=1024,To=65535", "--cidr-block", "10.0.0.0/8", "--rule-action", "allow")
	e.fails("NetworkAclEntryAlreadyExists", "labcloud", "ec2", "create-network-acl-entry", "--network-acl-id", acl, "--ingress",
		"--rule-number", "100", "--protocol", "-1", "--cidr-block", "0.0.0.0/0", "--rule-action", "allow")
	e.fails("InvalidParameterValue", "labcloud", "ec2", "create-network-acl-entry", "--network-acl-id", acl, "--ingress",
		"--rule-number", "32767", "--protocol", "-1", "--cidr-block", "0.0.0.0/0", "--rule-action", "allow")
	e.fails("InvalidParameterValue", "labcloud", "ec2", "create-network-acl-entry", "--network-acl-id", acl, "--ingress",
		"--rule-number", "0", "--protocol", "-1", "--cidr-block", "0.0.0.0/0", "--rule-action", "allow")
	e.fails("InvalidParameterValue", "labcloud", "ec2", "create-network-acl-entry", "--network-acl-id", acl, "--ingress",
		"--rule-number", "110", "--protocol", "gre", "--cidr-block", "0.0.0.0/0", "--rule-action", "allow")
	e.fails("MissingParameter", "labcloud", "ec2", "create-network-acl-entry", "--network-acl-id", acl, "--ingress",
		"--rule-number", "110", "--protocol", "tcp", "--cidr-block", "0.0.0.0/0", "--rule-action", "allow")
	e.ok(nil, "labcloud", "ec2", "replace-network-acl-entry", "--network-acl-id", acl, "--ingress", "--rule-number", "90",
		"--protocol", "tcp", "--port-range", "From=22,To=22", "--cidr-block", "0.0.0.0/0", "--rule-action", "allow")
	e.fails("InvalidNetworkAclEntry.NotFound", "labcloud", "ec2", "delete-network-acl-entry", "--network-acl-id", acl, "--egress", "--rule-number", "90")

	e.ok(&acls, "labcloud", "ec2", "describe-network-acls", "--network-acl-ids", acl)
	rules = nil
	for _, en := range acls.NetworkAcls[0].Entries {
		r := strings.Join([]string{strconv.Itoa(en.RuleNumber), en.Protocol, en.RuleAction}, "/")
		if en.PortRange != nil {
			r += "/" + strconv.Itoa(en.PortRange.From) + "-" + strconv.Itoa(en.PortRange.To)
		}
		rules = append(rules, r)
	}
	if got := strings.Join(rules, " "); got != "100/17/allow/1024-65535 32767/-1/deny 90/6/allow/22-22 100/-1/allow 32767/-1/deny" {
		t.Fatalf("entries: %s", got)
	}

	var moved struct{ NewAssociationId string }
	assoc := def.Associations[0]
	e.ok(&moved, "labcloud", "ec2", "replace-network-acl-association", "--association-id", assoc.NetworkAclAssociationId, "--network-acl-id", acl)
	if !strings.HasPrefix(moved.NewAssociationId, "aclassoc-") {
		t.Fatalf("new association %q", moved.NewAssociationId)
	}
	e.ok(&acls, "labcloud", "ec2", "describe-network-acls", "--filters", "Name=association.subnet-id,Values="+assoc.SubnetId)
	if len(acls.NetworkAcls) != 1 || acls.NetworkAcls[0].NetworkAclId != acl {
		t.Fatalf("subnet %s after the association: %+v", assoc.SubnetId, acls)
	}
	e.fails("DependencyViolation", "labcloud", "ec2", "delete-network-acl", "--network-acl-id", acl)
	e.fails("InvalidParameterValue", "labcloud", "ec2", "delete-network-acl", "--network-acl-id", def.NetworkAclId)
	e.ok(nil, "labcloud", "ec2", "replace-network-acl-association", "--association-id", moved.NewAssociationId, "--network-acl-id", def.NetworkAclId)
	e.ok(nil, "labcloud", "ec2", "delete-network-acl", "--network-acl-id", acl)
	e.fails("InvalidNetworkAclID.NotFound", "labcloud", "ec2", "describe-network-acls", "--network-acl-ids", acl)
}
