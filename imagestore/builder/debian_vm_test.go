//go:build linux && amd64

package builder

import (
	"context"
	"encoding/json"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"
)

// debianSMBIOSID is the instance's SMBIOS system serial and UUID: starting
// with "ec2" (and equal) they make cloud-init take the platform for AWS,
// which then uses IMDSv2 tokens.
const debianSMBIOSID = "ec2a0c1d-5a1e-4b1a-9c1d-000000000010"

// debianBootDeadline bounds each boot wait (ssh, cloud-init done): a
// systemd and cloud-init guest under TCG takes 1–3 minutes on a loaded
// 2-core machine.
const debianBootDeadline = 8 * time.Minute

// debianIMDS adds to the test metadata service what cloud-init's Ec2
// datasource reads: a versioned API (it checks
// /2021-03-23/meta-data/instance-id, else falls back to 2009-04-04),
// directory listings, and on AWS the instance identity document.
func debianIMDS(n *labNet) {
	doc, _ := json.Marshal(map[string]string{
		"instanceId": testInstance, "region": "us-east-1", "availabilityZone": "us-east-1a",
		"privateIp": testGuestIP, "architecture": "x86_64", "imageId": "ami-0labcloud0debian12",
		"instanceType": "t3.micro", "accountId": "000000000000",
	})
	s := n.imds
	s.mu.Lock()
	defer s.mu.Unlock()
	entries := map[string]string{
		"meta-data":                             "instance-id\nlocal-hostname\nlocal-ipv4\nhostname\nplacement/\npublic-keys/",
		"meta-data/placement/":                  "availability-zone\nregion",
		"meta-data/placement/availability-zone": "us-east-1a",
		"meta-data/placement/region":            "us-east-1",
		"meta-data/hostname":                    testHostname,
		"dynamic/instance-identity":             "document",
		"dynamic/instance-identity/document":    string(doc),
	}
	for k, v := range s.meta {
		entries[k] = v
	}
	entries["meta-data/"] = entries["meta-data"]
	for k, v := range entries {
		for _, ver := range []string{"/2021-03-23/", "/2009-04-04/"} {
			s.meta[ver+k] = v
		}
		s.meta[k] = v
	}
}

// debianDNS answers DNS queries at testDNS:53 inside the namespace with
// NXDOMAIN, as a VPC resolver does for a name it does not know. Without a
// server there, cloud-init's DNS-redirection probe (three lookups, each
// time it checks the metadata URLs) waits for timeouts.
func debianDNS(t *testing.T, n *labNet) {
	t.Helper()
	run1(t, "ip", "-n", n.ns, "addr", "add", testDNS+"/32", "dev", "br0")
	var pc net.PacketConn
	var lerr error
	if err := inNetns(n.ns, func() { pc, lerr = net.ListenPacket("udp4", testDNS+":53") }); err != nil {
		t.Fatal(err)
	}
	if lerr != nil {
		t.Fatalf("listening on %s:53: %v", testDNS, lerr)
	}
	t.Cleanup(func() { pc.Close() })
	go func() {
		buf := make([]byte, 4096)
		for {
			k, addr, err := pc.ReadFrom(buf)
			if err != nil {
				return
			}
			if k < 12 || buf[2]&0x80 != 0 {
				continue
			}
			// Header and the one question, nothing else.
			end := 12
			if buf[4] == 0 && buf[5] == 1 {
				for end < k && buf[end] != 0 {
					end += int(buf[end]) + 1
				}
				end += 5
				if end > k {
					end = 12
				}
			}
			resp := append([]byte{}, buf[:end]...)
			resp[2] = 0x80 | buf[2]&0x79 // QR, same opcode and RD
			resp[3] = 0x80 | 3           // RA, NXDOMAIN
			if end == 12 {
				resp[4], resp[5] = 0, 0
			}
			for i := 6; i < 12; i++ {
				resp[i] = 0
			}
			pc.WriteTo(resp, addr)
		}
	}()
}

// startDebianVM boots a debian-12 image like startVM, with the memory a
// systemd/cloud-init guest wants and the EC2-style SMBIOS serial and
// UUID; it returns the same *vm.
func startDebianVM(t *testing.T, c vmConfig) *vm {
	t.Helper()
	v := &vm{
		t:       t,
		console: filepath.Join(c.dir, c.name+".console.log"),
		qmp:     filepath.Join(c.dir, c.name+".qmp"),
		done:    make(chan struct{}),
	}
	qemu, err := LookTool("qemu-system-x86_64")
	if err != nil {
		t.Fatal(err)
	}
	args := []string{"netns", "exec", c.netns, qemu,
		"-name", "labcloud-debian-" + c.name,
		"-accel", "tcg,thread=multi", "-machine", "q35", "-m", "512", "-smp", "1",
		"-nodefaults", "-no-user-config", "-display", "none",
		"-smbios", "type=1,serial=" + debianSMBIOSID + ",uuid=" + debianSMBIOSID,
		"-serial", "file:" + v.console,
		"-qmp", "unix:" + v.qmp + ",server=on,wait=off",
		"-kernel", c.res.Kernel, "-initrd", c.res.Initrd, "-append", c.res.KernelCmdline,
		"-drive", "file=" + c.overlay + ",if=virtio,format=qcow2",
		"-object", "rng-random,id=rng0,filename=/dev/urandom", "-device", "virtio-rng-pci,rng=rng0",
		"-netdev", "tap,id=n0,ifname=" + c.tap + ",script=no,downscript=no",
		"-device", "virtio-net-pci,netdev=n0,mac=" + testGuestMAC,
	}
	v.cmd = exec.Command("ip", args...)
	logFile := filepath.Join(c.dir, c.name+".qemu.log")
	stderr, err := os.Create(logFile)
	if err != nil {
		t.Fatal(err)
	}
	v.cmd.Stdout, v.cmd.Stderr = stderr, stderr
	v.start = time.Now()
	if err := v.cmd.Start(); err != nil {
		t.Fatalf("starting QEMU: %v", err)
	}
	go func() {
		v.exitErr = v.cmd.Wait()
		stderr.Close()
		close(v.done)
	}()
	t.Cleanup(func() {
		select {
		case <-v.done:
		default:
			v.cmd.Process.Kill()
			<-v.done
		}
		if t.Failed() || os.Getenv("LABCLOUD_TEST_CONSOLE") != "" {
			t.Logf("console of %s:\n%s", c.name, v.consoleText())
			if b, _ := os.ReadFile(logFile); len(b) > 0 {
				t.Logf("QEMU output of %s:\n%s", c.name, b)
			}
		}
	})
	return v
}

func TestDebian12BootsWithCloudInit(t *testing.T) {
	requireTools(t, DebianBuildTools...)
	requireTools(t, vmTools...)
	requireRoot(t)
	// The test network's DHCP server is the tiny build's cached busybox.
	builtTiny(t)

	dir := t.TempDir()
	start := time.Now()
	res, err := BuildDebian12(context.Background(), BuildInput{
		OutDir:   filepath.Join(dir, "image"),
		CacheDir: testCacheDir(),
		Logf:     func(f string, a ...any) { t.Logf("build: "+f, a...) },
	})
	if err != nil {
		t.Fatalf("BuildDebian12: %v", err)
	}
	t.Logf("build of %s (kernel %s, %d packages): %s", res.Manifest.Name, res.Manifest.KernelVersion, len(res.Manifest.Packages), time.Since(start).Round(time.Millisecond))
	m := res.Manifest
	if m.Name != Debian12Name || m.DefaultUser != "admin" || m.KernelCmdline != "console=ttyS0,115200n8 root=/dev/vda rw" ||
		res.KernelCmdline != m.KernelCmdline || m.RootDevice != "/dev/vda" || len(m.Files) != 3 {
		t.Errorf("manifest: %+v", m)
	}
	var onDisk Manifest
	if data, err := os.ReadFile(res.ManifestPath); err != nil || json.Unmarshal(data, &onDisk) != nil || onDisk.Name != Debian12Name {
		t.Errorf("manifest.json: %v %+v", err, onDisk)
	}
	havePkg := map[string]bool{}
	for _, p := range m.Packages {
		havePkg[p.Name] = true
	}
	for _, p := range []string{"cloud-init", "openssh-server", "systemd-sysv", "ifupdown", "isc-dhcp-client", "locales", "linux-image-" + m.KernelVersion} {
		if !havePkg[p] {
			t.Errorf("manifest lacks the package %s", p)
		}
	}
	for _, f := range m.Files {
		t.Logf("%s: %.1f MiB", f.Name, float64(f.Size)/(1<<20))
	}

	n := newLabNet(t, dir)
	debianIMDS(n)
	debianDNS(t, n)
	// A 3 GiB root volume on the 2 GiB image: cloud-init grows the file
	// system.
	overlay := filepath.Join(dir, "root-volume.qcow2")
	run1(t, "qemu-img", "create", "-q", "-f", "qcow2", "-b", res.Disk, "-F", "qcow2", overlay, "3G")
	knownHosts := filepath.Join(dir, "known_hosts")

	v := startDebianVM(t, vmConfig{res: res, overlay: overlay, dir: dir, name: "debian1", netns: n.ns, tap: n.tap})
	var toBanner time.Duration
	waitFor(t, "ssh server of the guest", debianBootDeadline, func() (bool, error) {
		if v.exited() {
			t.Fatalf("QEMU exited (%v) before ssh worked", v.exitErr)
		}
		banner, err := sshBanner(n.ns, testGuestIP, 250*time.Millisecond)
		if err != nil {
			return false, err
		}
		toBanner = time.Since(v.start)
		return strings.HasPrefix(banner, "SSH-2.0-OpenSSH"), fmt.Errorf("banner %q", banner)
	})
	waitFor(t, "ssh login as admin", time.Minute, func() (bool, error) {
		out, err := n.ssh("admin", knownHosts, "accept-new", "id -un")
		return err == nil && out == "admin", fmt.Errorf("%v: %s", err, out)
	})
	toLogin := time.Since(v.start)
	var toDone time.Duration
	waitFor(t, "cloud-init boot-finished", debianBootDeadline, func() (bool, error) {
		out, err := n.ssh("admin", knownHosts, "yes", "test -e /var/lib/cloud/instance/boot-finished && echo yes")
		toDone = time.Since(v.start)
		return err == nil && out == "yes", fmt.Errorf("%v: %s", err, out)
	})
	t.Logf("QEMU start to ssh banner %s, to admin login %s, to cloud-init done %s",
		toBanner.Round(time.Millisecond), toLogin.Round(time.Millisecond), toDone.Round(time.Millisecond))
	if out, err := n.ssh("admin", knownHosts, "yes", "systemd-analyze; systemd-analyze blame | head -8"); err == nil {
		t.Logf("systemd-analyze (guest clock):\n%s", out)
	}

	if out := n.mustSSH("admin", knownHosts, "cloud-init status --wait --long"); !strings.Contains(out, "status: done") {
		t.Errorf("cloud-init status --wait:\n%s", out)
	}
	if out := n.mustSSH("admin", knownHosts, "cat /var/lib/cloud/data/result.json"); !strings.Contains(out, `"errors": []`) {
		t.Errorf("cloud-init result.json:\n%s", out)
	}
	// user-data (#!/bin/sh) ran once, as root, by cloud-init's scripts-user.
	if out := n.mustSSH("admin", knownHosts, "cat /tmp/marker"); out != "user-data ran as uid 0 on ip-172-31-0-10" {
		t.Errorf("/tmp/marker = %q", out)
	}
	if out := n.mustSSH("admin", knownHosts, "sudo -n cat /var/log/cloud-init-output.log"); !strings.Contains(out, userDataShown) {
		t.Errorf("cloud-init-output.log lacks the user-data output:\n%s", out)
	}
	if !strings.Contains(v.consoleText(), userDataShown) {
		t.Errorf("console lacks the user-data output %q", userDataShown)
	}

	for _, c := range []struct{ cmd, want string }{
		{"hostname", "ip-172-31-0-10"},
		{"sudo -n id -u", "0"},
		{"cat /proc/1/comm", "systemd"},
		{"systemctl is-active serial-getty@ttyS0.service ssh.service", "active\nactive"},
		{"ip -4 -o addr show | awk '{print $4}' | grep 172.31", testGuestIP + "/20"},
		{"ip route | grep ^default | cut -d' ' -f1-3", "default via " + testRouter},
		{"grep -c iface /etc/network/interfaces.d/50-cloud-init", "2"},
		{"grep -c '^deb ' /etc/apt/sources.list", "3"},
		{"findmnt -n -o SOURCE,FSTYPE /", "/dev/vda ext4"},
		{"grep -c ^ /etc/ssh/ssh_host_ed25519_key.pub", "1"},
		{"cat /etc/default/locale", "LANG=en_US.UTF-8"},
	} {
		if out := n.mustSSH("admin", knownHosts, c.cmd); out != c.want {
			t.Errorf("%s = %q, want %q", c.cmd, out, c.want)
		}
	}
	// The 3 GiB volume is larger than the 2 GiB image: cloud-init grew it.
	if got := n.mustSSH("admin", knownHosts, "df -k / | awk 'NR==2 {print $2}'"); func() bool { kb, _ := strconv.Atoi(got); return kb < 2600*1024 }() {
		t.Errorf("root file system is %s KiB; want it grown to the 3 GiB volume", got)
	}
	// The host key ssh accepted is one cloud-init printed on the console.
	fp, err := exec.Command("ssh-keygen", "-l", "-f", knownHosts).Output()
	if err != nil {
		t.Fatalf("ssh-keygen -l: %v", err)
	}
	if f := strings.Fields(string(fp)); len(f) < 2 || !strings.Contains(v.consoleText(), f[1]) {
		t.Errorf("host key %q is not among the console's fingerprints", strings.TrimSpace(string(fp)))
	}
	puts, v1, v2, fetches := n.imds.stats()
	t.Logf("IMDS: %d token PUTs, %d GETs with a token, %d without", puts, v2, v1)
	if puts == 0 || v2 == 0 {
		t.Errorf("IMDS: %d token PUTs, %d GETs with a token; want IMDSv2 (SMBIOS serial %s)", puts, v2, debianSMBIOSID)
	}
	if fetches["/2021-03-23/meta-data/public-keys/0/openssh-key"] == 0 {
		t.Errorf("cloud-init did not read the key pair: %v", fetches)
	}

	// StopInstances presses the ACPI power button: systemd shuts down.
	if err := v.qmpCommand("system_powerdown"); err != nil {
		t.Fatalf("QMP system_powerdown: %v", err)
	}
	d := v.waitPoweredOff(shutdownDeadline)
	t.Logf("power button to power off: %s", d.Round(time.Millisecond))
}

func TestBuildDebian12RejectsBadInput(t *testing.T) {
	for _, tc := range []struct {
		name string
		in   BuildInput
		want string
	}{
		{"no output directory", BuildInput{}, "OutDir"},
		{"root too small", BuildInput{OutDir: t.TempDir(), RootSizeMiB: 512}, "RootSizeMiB"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := BuildDebian12(context.Background(), tc.in)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("err = %v, want an error naming %s", err, tc.want)
			}
		})
	}
}

func TestDebian12CacheKey(t *testing.T) {
	k := debianCacheKey()
	if len(k) != 16 || k != debianCacheKey() {
		t.Fatalf("cache key %q is not a stable 16-hex-digit key", k)
	}
	saved := debianPackages
	debianPackages = append(append([]string{}, saved...), "vim-tiny")
	defer func() { debianPackages = saved }()
	if debianCacheKey() == k {
		t.Errorf("the cache key does not change with the package set")
	}
}
