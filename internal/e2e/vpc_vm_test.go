package e2e

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// sshRefused checks that ssh to ip from the lab server does not get
// through (a filter drops it): one try with a short connect timeout.
func sshRefused(t *testing.T, key, ip, why string) {
	t.Helper()
	out, err := exec.Command("ssh", "-i", key, "-o", "StrictHostKeyChecking=no", "-o", "UserKnownHostsFile=/dev/null",
		"-o", "ConnectTimeout=3", "-o", "BatchMode=yes", "root@"+ip, "true").CombinedOutput()
	if err == nil {
		t.Fatalf("ssh to %s got through, but %s", ip, why)
	}
	t.Logf("ssh to %s refused as expected (%s): %s", ip, why, strings.TrimSpace(string(out)))
}

// The VPC issue's real-VM scenario, with the aws CLI: a custom VPC with a
// public subnet (internet gateway, route table, map-public-ip-on-launch);
// an instance there is reached by ssh at its public IP from the lab
// server only while its security group allows port 22 and its subnet's
// network ACL lets it through (deny 90 before allow 100 refuses; the deny
// moved to 110 lets it through); stop/start gives it a new public IP; an
// Elastic IP then reaches it too.
func TestVPCPublicSubnetWithVM(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("needs root (network namespaces, taps, nftables); CI runs as root")
	}
	stateDir := t.TempDir()
	cleanupNetns(t, stateDir)
	d := startDaemon(t, stateDir)
	e := newAWSEnv(t, d)
	ami := registerTiny(t, e)

	var vpc struct{ Vpc struct{ VpcId string } }
	e.ok(&vpc, "labcloud", "ec2", "create-vpc", "--cidr-block", "10.40.0.0/16")
	vpcID := vpc.Vpc.VpcId
	var sn struct{ Subnet struct{ SubnetId string } }
	e.ok(&sn, "labcloud", "ec2", "create-subnet", "--vpc-id", vpcID, "--cidr-block", "10.40.1.0/24")
	subnet := sn.Subnet.SubnetId
	e.ok(nil, "labcloud", "ec2", "modify-subnet-attribute", "--subnet-id", subnet, "--map-public-ip-on-launch")
	var igw struct {
		InternetGateway struct{ InternetGatewayId string }
	}
	e.ok(&igw, "labcloud", "ec2", "create-internet-gateway")
	e.ok(nil, "labcloud", "ec2", "attach-internet-gateway", "--internet-gateway-id", igw.InternetGateway.InternetGatewayId, "--vpc-id", vpcID)
	var rt struct{ RouteTable struct{ RouteTableId string } }
	e.ok(&rt, "labcloud", "ec2", "create-route-table", "--vpc-id", vpcID)
	e.ok(nil, "labcloud", "ec2", "create-route", "--route-table-id", rt.RouteTable.RouteTableId, "--destination-cidr-block", "0.0.0.0/0",
		"--gateway-id", igw.InternetGateway.InternetGatewayId)
	e.ok(nil, "labcloud", "ec2", "associate-route-table", "--route-table-id", rt.RouteTable.RouteTableId, "--subnet-id", subnet)
	var sg struct{ GroupId string }
	e.ok(&sg, "labcloud", "ec2", "create-security-group", "--group-name", "ssh", "--description", "ssh from anywhere", "--vpc-id", vpcID)
	ssh22 := []string{"--group-id", sg.GroupId, "--protocol", "tcp", "--port", "22", "--cidr", "0.0.0.0/0"}
	e.ok(nil, "labcloud", append([]string{"ec2", "authorize-security-group-ingress"}, ssh22...)...)

	keyPath := filepath.Join(t.TempDir(), "k.pem")
	out, errOut, code := e.run("labcloud", "ec2", "create-key-pair", "--key-name", "vpc", "--query", "KeyMaterial", "--output", "text")
	if code != 0 {
		t.Fatalf("create-key-pair: %s", errOut)
	}
	if err := os.WriteFile(keyPath, []byte(strings.TrimSpace(out)+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	var launched struct{ Instances []instanceView }
	e.ok(&launched, "labcloud", "ec2", "run-instances", "--image-id", ami, "--key-name", "vpc", "--subnet-id", subnet,
		"--security-group-ids", sg.GroupId)
	id := launched.Instances[0].InstanceId
	e.waitState(id, "running", 3*time.Minute)
	publicIP := func() string {
		out, errOut, code := e.run("labcloud", "ec2", "describe-instances", "--instance-ids", id,
			"--query", "Reservations[0].Instances[0].PublicIpAddress", "--output", "text")
		if code != 0 {
			t.Fatalf("describe-instances: %s", errOut)
		}
		return strings.TrimSpace(out)
	}
	ip := publicIP()
	if !strings.HasPrefix(ip, "203.0.113.") {
		t.Fatalf("instance in a map-public-ip subnet has public IP %q", ip)
	}
	// From the lab server, at the public IP: the host namespace, no VPC
	// namespace involved.
	got := sshRunAs(t, "", keyPath, "root", ip, "wget -qO- http://169.254.169.254/latest/meta-data/public-ipv4; echo; wget -qO- http://169.254.169.254/latest/meta-data/security-groups; echo; hostname", 3*time.Minute)
	if !strings.Contains(got, "ip-10-40-1-") || !strings.Contains(got, ip+"\n") || !strings.Contains(got, "ssh\n") {
		t.Fatalf("ssh at the public IP: %q (want the hostname, the public IP %s and the group name from the metadata service)", got, ip)
	}

	// Network ACL: deny 90 before allow 100 refuses ssh.
	var acl struct{ NetworkAcl struct{ NetworkAclId string } }
	e.ok(&acl, "labcloud", "ec2", "create-network-acl", "--vpc-id", vpcID)
	aclID := acl.NetworkAcl.NetworkAclId
	entry := func(verb string, egress bool, rule, proto, ports, action string) {
		args := []string{"ec2", verb + "-network-acl-entry", "--network-acl-id", aclID, "--rule-number", rule,
			"--protocol", proto, "--cidr-block", "0.0.0.0/0", "--rule-action", action}
		if egress {
			args = append(args, "--egress")
		} else {
			args = append(args, "--ingress")
		}
		if ports != "" {
			args = append(args, "--port-range", ports)
		}
		e.ok(nil, "labcloud", args...)
	}
	entry("create", false, "90", "tcp", "From=22,To=22", "deny")
	entry("create", false, "100", "-1", "", "allow")
	entry("create", true, "100", "-1", "", "allow")
	var acls struct {
		NetworkAcls []struct {
			Associations []struct{ NetworkAclAssociationId, SubnetId string }
		}
	}
	e.ok(&acls, "labcloud", "ec2", "describe-network-acls", "--filters", "Name=association.subnet-id,Values="+subnet)
	if len(acls.NetworkAcls) != 1 || len(acls.NetworkAcls[0].Associations) == 0 {
		t.Fatalf("the subnet's ACL association: %+v", acls)
	}
	assoc := ""
	for _, a := range acls.NetworkAcls[0].Associations {
		if a.SubnetId == subnet {
			assoc = a.NetworkAclAssociationId
		}
	}
	e.ok(nil, "labcloud", "ec2", "replace-network-acl-association", "--association-id", assoc, "--network-acl-id", aclID)
	sshRefused(t, keyPath, ip, "NACL rule 90 denies tcp/22 before rule 100 allows all")
	// Swap the order: the deny moves behind the allow.
	e.ok(nil, "labcloud", "ec2", "delete-network-acl-entry", "--network-acl-id", aclID, "--ingress", "--rule-number", "90")
	entry("create", false, "110", "tcp", "From=22,To=22", "deny")
	sshRunAs(t, "", keyPath, "root", ip, "true", 30*time.Second)

	// Security group: without the rule, no ssh; with it again, ssh.
	e.ok(nil, "labcloud", append([]string{"ec2", "revoke-security-group-ingress"}, ssh22...)...)
	sshRefused(t, keyPath, ip, "the security group no longer allows tcp/22")
	e.ok(nil, "labcloud", append([]string{"ec2", "authorize-security-group-ingress"}, ssh22...)...)
	sshRunAs(t, "", keyPath, "root", ip, "true", 30*time.Second)

	// Changing the running instance's groups takes effect: the VPC's
	// default group lets in only its own members.
	var def struct{ SecurityGroups []struct{ GroupId string } }
	e.ok(&def, "labcloud", "ec2", "describe-security-groups", "--filters", "Name=vpc-id,Values="+vpcID, "Name=group-name,Values=default")
	if len(def.SecurityGroups) != 1 {
		t.Fatalf("default group of %s: %+v", vpcID, def)
	}
	e.ok(nil, "labcloud", "ec2", "modify-instance-attribute", "--instance-id", id, "--groups", def.SecurityGroups[0].GroupId)
	sshRefused(t, keyPath, ip, "the instance now has only the VPC's default group")
	e.ok(nil, "labcloud", "ec2", "modify-instance-attribute", "--instance-id", id, "--groups", def.SecurityGroups[0].GroupId, sg.GroupId)
	sshRunAs(t, "", keyPath, "root", ip, "true", 30*time.Second)

	// Stop/start: a new public IP, which works.
	e.ok(nil, "labcloud", "ec2", "stop-instances", "--instance-ids", id)
	e.waitState(id, "stopped", 3*time.Minute)
	if got := publicIP(); got != "None" && got != "" {
		t.Errorf("a stopped instance keeps public IP %q", got)
	}
	e.ok(nil, "labcloud", "ec2", "start-instances", "--instance-ids", id)
	e.waitState(id, "running", 3*time.Minute)
	ip2 := publicIP()
	if !strings.HasPrefix(ip2, "203.0.113.") {
		t.Fatalf("after start: public IP %q", ip2)
	}
	sshRunAs(t, "", keyPath, "root", ip2, "true", 3*time.Minute)

	// An Elastic IP reaches the instance.
	var eip struct{ AllocationId, PublicIp string }
	e.ok(&eip, "labcloud", "ec2", "allocate-address", "--domain", "vpc")
	e.ok(nil, "labcloud", "ec2", "associate-address", "--allocation-id", eip.AllocationId, "--instance-id", id)
	if got := publicIP(); got != eip.PublicIp {
		t.Errorf("after associate-address the instance's public IP is %q, want the Elastic IP %s", got, eip.PublicIp)
	}
	sshRunAs(t, "", keyPath, "root", eip.PublicIp, "true", 30*time.Second)

	e.ok(nil, "labcloud", "ec2", "terminate-instances", "--instance-ids", id)
	e.waitState(id, "terminated", 3*time.Minute)
}
