package netfab

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/labcloud/labcloud/imagestore/builder"
)

// TestTinyVMBootsOnDefaultVPC is the fabric's reason to exist: a real
// labcloud-tiny VM, launched by QEMU inside the VPC namespace on the ENI's
// tap, gets its lease, reads its metadata with IMDSv2 and installs the key,
// and another machine on the subnet logs in with ssh.
func TestTinyVMBootsOnDefaultVPC(t *testing.T) {
	requireNet(t)
	for _, tool := range []string{"qemu-system-x86_64", "qemu-img", "ssh", "ssh-keygen"} {
		if _, err := exec.LookPath(tool); err != nil {
			t.Fatalf("%s is needed (apt-get install qemu-system-x86 qemu-utils openssh-client): %v", tool, err)
		}
	}
	ctx := context.Background()
	dir := t.TempDir()
	cache := os.Getenv("LABCLOUD_BUILDER_CACHE")
	res, err := builder.BuildTiny(ctx, builder.BuildInput{OutDir: filepath.Join(dir, "img"), CacheDir: cache})
	if err != nil {
		t.Fatalf("building labcloud-tiny: %v", err)
	}
	key := filepath.Join(dir, "id_ed25519")
	mustRun(t, "ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", "netfab-test", "-f", key)
	pub, err := os.ReadFile(key + ".pub")
	if err != nil {
		t.Fatal(err)
	}

	prefix := testPrefix(t)
	t.Cleanup(func() {
		if out, _ := run(t, "ip", "netns", "list"); strings.Contains(out, prefix) {
			t.Errorf("namespaces left behind:\n%s", out)
		}
	})
	md := &fakeMetadata{}
	f, err := New(ctx, Options{Store: testStore(t), Zones: []string{"lab-1a"}, NamePrefix: prefix, Metadata: md})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = f.Teardown(context.Background()) })
	vpc, err := f.EnsureDefaultVPC(ctx, "123456789012")
	if err != nil {
		t.Fatal(err)
	}
	e, err := f.CreateENI(ctx, ENIRequest{AccountID: "123456789012", SubnetID: vpc.Subnets[0].ID, InstanceID: "i-0aaaaaaaaaaaaaaa1"})
	if err != nil {
		t.Fatal(err)
	}
	md.set(vpc.ID, e.PrivateIP, Metadata{
		InstanceID: e.InstanceID, ImageID: "ami-0aaaaaaaaaaaaaaa1", InstanceType: "t3.micro",
		AvailabilityZone: "lab-1a", Region: "lab-1", LocalIPv4: e.PrivateIP, MAC: e.MAC,
		PublicKeyName: "netfab-test", PublicKey: strings.TrimSpace(string(pub)),
		UserData: []byte("#!/bin/sh\necho netfab-user-data-ran\n"), SecurityGroups: []string{"default"},
		HTTPTokens: "required", HTTPEndpoint: "enabled", HopLimit: 1, AccountID: "123456789012",
	})

	overlay := filepath.Join(dir, "root.qcow2")
	mustRun(t, "qemu-img", "create", "-q", "-f", "qcow2", "-b", res.Disk, "-F", "qcow2", overlay, "1G")
	console := filepath.Join(dir, "console.log")
	qemu, _ := exec.LookPath("qemu-system-x86_64")
	// The instance layer does setns itself; the test uses ip netns exec.
	cmd := exec.Command("ip", "netns", "exec", e.Namespace, qemu,
		"-accel", "tcg,thread=multi", "-machine", "q35", "-m", "256",
		"-nodefaults", "-no-user-config", "-display", "none",
		"-serial", "file:"+console,
		"-kernel", res.Kernel, "-initrd", res.Initrd, "-append", res.KernelCmdline,
		"-drive", "file="+overlay+",if=virtio,format=qcow2",
		"-object", "rng-random,id=rng0,filename=/dev/urandom", "-device", "virtio-rng-pci,rng=rng0",
		"-netdev", "tap,id=n0,ifname="+e.Tap+",script=no,downscript=no",
		"-device", "virtio-net-pci,netdev=n0,mac="+e.MAC)
	qlog, err := os.Create(filepath.Join(dir, "qemu.log"))
	if err != nil {
		t.Fatal(err)
	}
	cmd.Stdout, cmd.Stderr = qlog, qlog
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	done := make(chan struct{})
	go func() { _ = cmd.Wait(); close(done) }()
	t.Cleanup(func() {
		_ = cmd.Process.Kill()
		<-done
	})
	readConsole := func() string { b, _ := os.ReadFile(console); return string(b) }
	eventually(t, 3*time.Minute, "VM boot finished", func() error {
		select {
		case <-done:
			q, _ := os.ReadFile(qlog.Name())
			t.Fatalf("QEMU exited: %s\nconsole:\n%s", q, readConsole())
		default:
		}
		if !strings.Contains(readConsole(), "boot finished") {
			return errString("console has no \"boot finished\" yet")
		}
		return nil
	})
	// user-data runs in the background once sshd is up.
	eventually(t, time.Minute, "user-data run", func() error {
		if !strings.Contains(readConsole(), "user-data finished") {
			return errString("console has no \"user-data finished\" yet")
		}
		return nil
	})
	con := readConsole()
	for _, want := range []string{
		"eth0: " + e.PrivateIP,
		"first boot of instance " + e.InstanceID + " (IMDSv2)",
		"installed 1 ssh public key(s)",
		"netfab-user-data-ran",
		"user-data finished with exit status 0",
	} {
		if !strings.Contains(con, want) {
			t.Errorf("console lacks %q", want)
		}
	}
	if t.Failed() {
		t.Logf("console:\n%s", con)
	}

	// ssh from another machine on the subnet (through the router: the
	// ports are isolated).
	client, err := f.CreateENI(ctx, ENIRequest{AccountID: "123456789012", SubnetID: vpc.Subnets[0].ID, InstanceID: "i-0aaaaaaaaaaaaaaa2"})
	if err != nil {
		t.Fatal(err)
	}
	g := attachTestGuest(t, f, client, 0)
	if _, err := udhcpc(t, g); err != nil {
		t.Fatal(err)
	}
	var out string
	eventually(t, time.Minute, "ssh ec2-user@"+e.PrivateIP, func() error {
		var err error
		out, err = run(t, "ip", "netns", "exec", g, "ssh", "-i", key, "-o", "StrictHostKeyChecking=no",
			"-o", "UserKnownHostsFile=/dev/null", "-o", "BatchMode=yes", "-o", "ConnectTimeout=5",
			"ec2-user@"+e.PrivateIP, "hostname; cat /sys/class/net/eth0/address")
		if err != nil {
			return errString(err.Error() + ": " + out)
		}
		return nil
	})
	if !strings.Contains(out, hostname(e.PrivateIP)) || !strings.Contains(out, e.MAC) {
		t.Errorf("ssh output %q; want the hostname %s and the MAC %s", out, hostname(e.PrivateIP), e.MAC)
	}
}

type errString string

func (e errString) Error() string { return string(e) }
