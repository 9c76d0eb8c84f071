package e2e

import (
	"context"
	"fmt"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/labcloud/labcloud/imagestore/builder"
	"github.com/labcloud/labcloud/netfab"
)

// The instances issue's realistic image on labcloud's own fabric: the
// debian-12 AMI launched with run-instances boots, cloud-init's Ec2
// datasource reads labcloud's metadata service (DHCP, the VPC resolver at
// base+2 and IMDS of the default VPC), installs the key pair and runs the
// user data; ssh as the image's default user proves it.
//
// The same VM carries an instance profile (the roles issue): the aws CLI
// inside it, given only the VPC's API endpoint and a region, finds the
// role's credentials in the metadata service, is the assumed role, may
// describe instances and may not terminate them. A second instance
// without a profile gets no credentials.
func TestDebian12OnLabcloud(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("needs root (debootstrap, network namespaces, taps); CI runs as root")
	}
	if err := builder.CheckTools(builder.DebianBuildTools...); err != nil {
		t.Fatalf("%v (run `make deps`)", err)
	}
	start := time.Now()
	res, err := builder.BuildDebian12(context.Background(), builder.BuildInput{OutDir: t.TempDir(),
		Logf: func(f string, a ...any) { t.Logf("build: "+f, a...) }})
	if err != nil {
		t.Fatalf("building debian-12: %v", err)
	}
	t.Logf("debian-12 built in %s", time.Since(start).Round(time.Second))

	stateDir := t.TempDir()
	cleanupNetns(t, stateDir)
	d := startDaemon(t, stateDir)
	e := newAWSEnv(t, d)
	var reg struct{ ImageId string }
	e.ok(&reg, "labcloud", "ec2", "register-image", "--name", "debian-12", "--image-location", res.ManifestPath)

	keyPath := e.keyFile("deb", "--key-type", "ed25519")
	e.ok(nil, "labcloud", "iam", "create-role", "--role-name", "reader", "--assume-role-policy-document",
		`{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Principal":{"Service":"ec2.amazonaws.com"},"Action":"sts:AssumeRole"}]}`)
	e.ok(nil, "labcloud", "iam", "put-role-policy", "--role-name", "reader", "--policy-name", "describe", "--policy-document",
		`{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Action":"ec2:Describe*","Resource":"*"}]}`)
	e.ok(nil, "labcloud", "iam", "create-instance-profile", "--instance-profile-name", "reader")
	e.ok(nil, "labcloud", "iam", "add-role-to-instance-profile", "--instance-profile-name", "reader", "--role-name", "reader")

	var launched struct{ Instances []instanceView }
	e.ok(&launched, "labcloud", "ec2", "run-instances", "--image-id", reg.ImageId, "--instance-type", "t3.micro", "--key-name", "deb",
		"--iam-instance-profile", "Name=reader",
		"--user-data", "#!/bin/sh\necho from-user-data > /var/tmp/ud.txt\n")
	id := launched.Instances[0].InstanceId
	in := e.waitState(id, "running", 3*time.Minute)
	ns := netPrefix(d.stateDir) + "-" + in.VpcId
	booted := time.Now()
	user := res.Manifest.DefaultUser
	got := sshRunAs(t, ns, keyPath, user, in.PrivateIpAddress,
		"cloud-init status --wait >/dev/null; cloud-init status; cat /var/tmp/ud.txt; cat /run/cloud-init/instance-data.json | grep -o '\"instance-id\": \"[^\"]*\"' | head -1",
		10*time.Minute)
	t.Logf("debian-12 reached ssh and cloud-init done %s after running", time.Since(booted).Round(time.Second))
	for _, want := range []string{"status: done", "from-user-data", id} {
		if !strings.Contains(got, want) {
			t.Errorf("inside the debian-12 VM: %q lacks %q", got, want)
		}
	}

	// The instance profile, used by the aws CLI inside the VM.
	awsIn := fmt.Sprintf("aws --endpoint-url http://169.254.169.254:%d --region lab-1 --output text ", netfab.APIPort)
	got = sshRunAs(t, ns, keyPath, user, in.PrivateIpAddress,
		awsIn+"sts get-caller-identity --query Arn; "+
			awsIn+"ec2 describe-instances --instance-ids "+id+" --query Reservations[0].Instances[0].InstanceId; "+
			awsIn+"ec2 terminate-instances --instance-ids "+id+" 2>&1; echo exit=$?", 5*time.Minute)
	for _, want := range []string{":assumed-role/reader/" + id, "\n" + id + "\n", "UnauthorizedOperation", "exit=25"} {
		if !strings.Contains(got, want) {
			t.Errorf("aws CLI inside the VM with the instance profile: %q lacks %q", got, want)
		}
	}
	if st := e.instance(id).State.Name; st != "running" {
		t.Errorf("the role may not terminate, yet the instance is %s", st)
	}

	// An instance without a profile gets no credentials.
	ami := registerTiny(t, e)
	tinyKey := e.keyFile("tiny")
	var other struct{ Instances []instanceView }
	e.ok(&other, "labcloud", "ec2", "run-instances", "--image-id", ami, "--key-name", "tiny")
	oid := other.Instances[0].InstanceId
	oin := e.waitState(oid, "running", 3*time.Minute)
	got = sshRun(t, ns, tinyKey, oin.PrivateIpAddress,
		"wget -qO- http://169.254.169.254/latest/meta-data/iam/security-credentials/reader; echo exit=$?", 3*time.Minute)
	if strings.Contains(got, "AccessKeyId") || !strings.Contains(got, "exit=1") {
		t.Errorf("an instance without a profile read credentials: %q", got)
	}

	e.ok(nil, "labcloud", "ec2", "terminate-instances", "--instance-ids", id, oid)
	e.waitState(id, "terminated", 3*time.Minute)
	e.waitState(oid, "terminated", 3*time.Minute)
}
