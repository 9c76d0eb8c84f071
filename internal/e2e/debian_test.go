package e2e

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/labcloud/labcloud/imagestore/builder"
)

// The instances issue's realistic image on labcloud's own fabric: the
// debian-12 AMI launched with run-instances boots, cloud-init's Ec2
// datasource reads labcloud's metadata service (DHCP, the VPC resolver at
// base+2 and IMDS of the default VPC), installs the key pair and runs the
// user data; ssh as the image's default user proves it.
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

	keyPath := filepath.Join(t.TempDir(), "k.pem")
	out, errOut, code := e.run("labcloud", "ec2", "create-key-pair", "--key-name", "deb", "--key-type", "ed25519", "--query", "KeyMaterial", "--output", "text")
	if code != 0 {
		t.Fatalf("create-key-pair: %s", errOut)
	}
	if err := os.WriteFile(keyPath, []byte(strings.TrimSpace(out)+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	var launched struct{ Instances []instanceView }
	e.ok(&launched, "labcloud", "ec2", "run-instances", "--image-id", reg.ImageId, "--instance-type", "t3.micro", "--key-name", "deb",
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
	e.ok(nil, "labcloud", "ec2", "terminate-instances", "--instance-ids", id)
	e.waitState(id, "terminated", 3*time.Minute)
}
