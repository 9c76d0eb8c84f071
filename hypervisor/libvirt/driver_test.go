package libvirt_test

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"flag"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/labcloud/labcloud/hypervisor"
	"github.com/labcloud/labcloud/hypervisor/hvtest"
	"github.com/labcloud/labcloud/hypervisor/hvtest/testguest"
	"github.com/labcloud/labcloud/hypervisor/libvirt"
	"github.com/labcloud/labcloud/internal/errdefs"
)

var update = flag.Bool("update", false, "rewrite the golden files in testdata")

// guestTimeout bounds every wait for the TCG guest on these shared 2-core
// machines.
const guestTimeout = 3 * time.Minute

func TestDomainXML(t *testing.T) {
	t.Parallel()
	base := hypervisor.Spec{
		ID: "i-0123456789abcdef0", VCPUs: 2, MemoryMiB: 512,
		Kernel: "/boot/vmlinuz", Initrd: "/boot/initrd.img", Append: "console=ttyS0",
	}
	tests := []struct {
		name  string
		accel hypervisor.Accel
		edit  func(s *hypervisor.Spec)
	}{
		{"direct-kernel-boot", hypervisor.AccelTCG, func(s *hypervisor.Spec) {}},
		{"kvm", hypervisor.AccelKVM, func(s *hypervisor.Spec) {}},
		{"smbios-ec2", hypervisor.AccelTCG, func(s *hypervisor.Spec) { s.SMBIOS = hypervisor.EC2Identity(s.ID, "t3.micro") }},
		{"disks-throttled", hypervisor.AccelTCG, func(s *hypervisor.Spec) {
			s.Kernel, s.Initrd, s.Append = "", "", ""
			s.Disks = []hypervisor.Disk{
				{ID: "vol-root", Path: "/var/lib/labcloud/vol-root.qcow2", Format: hypervisor.FormatQCOW2, Serial: "vol0123",
					Throttle: &hypervisor.Throttle{IOPSTotal: 3000, BPSTotal: 125 << 20}},
				{ID: "vol-data", Path: "/dev/vg0/vol-data", Format: hypervisor.FormatRaw, Cache: "none", AIO: "native", ReadOnly: true,
					Throttle: &hypervisor.Throttle{IOPSRead: 100, IOPSWrite: 50, BPSRead: 1 << 20, BPSWrite: 2 << 20}},
			}
		}},
		{"two-nics", hypervisor.AccelTCG, func(s *hypervisor.Spec) {
			s.NICs = []hypervisor.NIC{
				{ID: "eni-1", Tap: "lctap1", MAC: "02:00:0a:00:01:05"},
				{ID: "eni-2", Tap: "lctap2", MAC: "02:00:0a:00:02:05"},
			}
		}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			s := base
			tc.edit(&s)
			if err := s.Validate(); err != nil {
				t.Fatal(err)
			}
			got, err := libvirt.BuildDomainXML(libvirt.DomainConfig{
				Name: "labcloud-" + s.ID, Spec: s, Accel: tc.accel,
				ConsoleLog: "/run/labcloud/vms/" + s.ID + "/console.log", ConsoleSocket: "/run/labcloud/vms/" + s.ID + "/console.sock",
				HotplugPorts: 2,
			})
			if err != nil {
				t.Fatal(err)
			}
			golden := filepath.Join("testdata", tc.name+".xml")
			if *update {
				if err := os.WriteFile(golden, []byte(got+"\n"), 0o644); err != nil {
					t.Fatal(err)
				}
			}
			want, err := os.ReadFile(golden)
			if err != nil {
				t.Fatalf("%v (run go test -update to create it)", err)
			}
			if got+"\n" != string(want) {
				t.Fatalf("domain XML differs from %s (go test -update rewrites it):\n%s", golden, got)
			}
		})
	}
}

// libvirtd is a private libvirtd for one test.
type libvirtd struct {
	dir, bin, script string
	cmd              *exec.Cmd
	exited           chan error

	socket string
	// prefix starts every domain name of this test, so stray QEMUs can be
	// found and killed.
	prefix string
}

// startLibvirtd runs libvirtd in the foreground in a private mount
// namespace in which /etc/libvirt, /run/libvirt, /var/lib/libvirt,
// /var/cache/libvirt and /var/log/libvirt (and, to give libvirt the
// libvirt-qemu user it insists on, /etc/passwd and /etc/group) are the
// test's own: the host's libvirt configuration and state are neither used
// nor touched. QEMU runs as root without security drivers, cgroups or
// per-VM mount namespaces, and writes the console log itself (no
// virtlogd). Missing libvirtd fails the test: CI must run it.
func startLibvirtd(t *testing.T) *libvirtd {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("the libvirt driver's conformance test runs its own libvirtd, which needs root")
	}
	bin, err := exec.LookPath("libvirtd")
	if err != nil {
		for _, p := range []string{"/usr/sbin/libvirtd", "/sbin/libvirtd"} {
			if _, err2 := os.Stat(p); err2 == nil {
				bin, err = p, nil
			}
		}
	}
	if err != nil {
		t.Fatalf("libvirtd is not installed (%v): run make deps (libvirt-daemon libvirt-daemon-driver-qemu)", err)
	}
	for _, b := range []string{"unshare", "qemu-system-x86_64", "qemu-img"} {
		if _, err := exec.LookPath(b); err != nil {
			t.Fatalf("%s is not installed (%v): run make deps (util-linux qemu-system-x86 qemu-utils)", b, err)
		}
	}
	dir, err := os.MkdirTemp("", "lvd")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	for _, sub := range []string{"etc", "run", "lib", "cache", "log", "sock"} {
		os.MkdirAll(filepath.Join(dir, sub), 0o755)
	}
	write := func(name, content string) {
		if err := os.WriteFile(filepath.Join(dir, name), []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	write("etc/libvirtd.conf", fmt.Sprintf(`unix_sock_dir = %q
unix_sock_rw_perms = "0700"
auth_unix_rw = "none"
auth_unix_ro = "none"
log_outputs = "3:file:%s/libvirtd.log"
`, filepath.Join(dir, "sock"), dir))
	write("etc/qemu.conf", `user = "root"
group = "root"
dynamic_ownership = 0
remember_owner = 0
security_driver = "none"
namespaces = [ ]
cgroup_controllers = [ ]
stdio_handler = "file"
`)
	passwd, _ := os.ReadFile("/etc/passwd")
	group, _ := os.ReadFile("/etc/group")
	if !bytes.Contains(passwd, []byte("\nlibvirt-qemu:")) {
		passwd = append(passwd, "libvirt-qemu:x:64055:64055:Libvirt Qemu:/var/lib/libvirt:/usr/sbin/nologin\n"...)
	}
	for _, g := range []string{"libvirt-qemu:x:64055:", "kvm:x:64054:", "libvirt:x:64056:"} {
		if name, _, _ := strings.Cut(g, ":"); !bytes.Contains(append([]byte("\n"), group...), []byte("\n"+name+":")) {
			group = append(group, g+"\n"...)
		}
	}
	write("passwd", string(passwd))
	write("group", string(group))
	script := `set -e
D=$1
mount --make-rprivate /
for m in etc:/etc/libvirt run:/run/libvirt lib:/var/lib/libvirt cache:/var/cache/libvirt log:/var/log/libvirt; do
	mkdir -p "${m#*:}"
	mount --bind "$D/${m%%:*}" "${m#*:}"
done
mount --bind "$D/passwd" /etc/passwd
mount --bind "$D/group" /etc/group
exec "$2" --config "$D/etc/libvirtd.conf" --pid-file "$D/libvirtd.pid"
`
	lv := &libvirtd{dir: dir, bin: bin, script: script, socket: filepath.Join(dir, "sock", "libvirt-sock"), prefix: "lct" + randomHex(3) + "-"}
	t.Cleanup(func() {
		lv.stop(t)
		// A backstop: no QEMU of this test outlives it.
		for _, pid := range qemuPIDs(lv.prefix) {
			syscall.Kill(pid, syscall.SIGKILL)
		}
	})
	lv.start(t)
	return lv
}

// start runs libvirtd and waits until its socket answers.
func (lv *libvirtd) start(t *testing.T) {
	t.Helper()
	os.Remove(lv.socket)
	cmd := exec.Command("unshare", "--mount", "sh", "-c", lv.script, "sh", lv.dir, lv.bin)
	out, err := os.OpenFile(filepath.Join(lv.dir, "libvirtd.out"), os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		t.Fatal(err)
	}
	defer out.Close()
	cmd.Stdout, cmd.Stderr = out, out
	if err := cmd.Start(); err != nil {
		t.Fatalf("starting libvirtd: %v", err)
	}
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait() }()
	lv.cmd, lv.exited = cmd, exited
	deadline := time.Now().Add(30 * time.Second)
	for {
		if c, err := net.Dial("unix", lv.socket); err == nil {
			c.Close()
			return
		}
		select {
		case err := <-exited:
			lv.cmd = nil
			b, _ := os.ReadFile(filepath.Join(lv.dir, "libvirtd.out"))
			l, _ := os.ReadFile(filepath.Join(lv.dir, "libvirtd.log"))
			t.Fatalf("libvirtd exited (%v):\n%s\n%s", err, b, l)
		default:
		}
		if time.Now().After(deadline) {
			t.Fatalf("libvirtd did not answer on %s within 30s", lv.socket)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// stop ends libvirtd (SIGTERM, then SIGKILL); its QEMUs keep running.
func (lv *libvirtd) stop(t *testing.T) {
	if lv.cmd == nil {
		return
	}
	lv.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-lv.exited:
	case <-time.After(15 * time.Second):
		t.Log("libvirtd ignored SIGTERM for 15s; killing it")
		lv.cmd.Process.Kill()
		<-lv.exited
	}
	lv.cmd = nil
}

// newDriver makes a driver whose VMs are all destroyed at the end of the
// test.
func newDriver(t *testing.T, opts libvirt.Options) *libvirt.Driver {
	t.Helper()
	d, err := libvirt.New(context.Background(), opts)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		defer cancel()
		d2, err := libvirt.New(ctx, opts) // d may have been closed by the suite
		if err != nil {
			t.Errorf("cleanup: %v", err)
			return
		}
		defer d2.Close()
		ids, _ := d2.List(ctx)
		for _, id := range ids {
			if err := d2.Destroy(ctx, id); err != nil {
				t.Errorf("cleanup: destroying %s: %v", id, err)
			}
		}
		d.Close()
	})
	return d
}

func randomHex(n int) string {
	b := make([]byte, n)
	rand.Read(b)
	return hex.EncodeToString(b)
}

// qemuPIDs lists live QEMU processes whose domain name starts with prefix.
func qemuPIDs(prefix string) []int {
	needle := []byte("guest=" + prefix)
	dirs, _ := filepath.Glob("/proc/[0-9]*")
	var pids []int
	for _, p := range dirs {
		cmd, err := os.ReadFile(p + "/cmdline")
		if err != nil || !bytes.Contains(cmd, needle) {
			continue
		}
		stat, _ := os.ReadFile(p + "/stat")
		if i := bytes.LastIndexByte(stat, ')'); i > 0 && i+2 < len(stat) && stat[i+2] != 'Z' {
			var pid int
			fmt.Sscanf(filepath.Base(p), "%d", &pid)
			pids = append(pids, pid)
		}
	}
	return pids
}

func vmPIDs(d hypervisor.Driver, id string) []int {
	name := d.(*libvirt.Driver).DomainName(id)
	var out []int
	for _, pid := range qemuPIDs(name + ",") {
		out = append(out, pid)
	}
	return out
}

func consoleLog(t *testing.T, d hypervisor.Driver, id string) []byte {
	t.Helper()
	c, err := d.Console(context.Background(), id)
	if err != nil {
		t.Fatalf("Console(%s): %v", id, err)
	}
	b, _ := os.ReadFile(c.LogPath)
	return b
}

func guestDevices(t *testing.T, d hypervisor.Driver, id string) map[string]bool {
	seen := map[string]bool{}
	for _, f := range strings.Fields(testguest.LastDevices(consoleLog(t, d, id))) {
		if _, v, ok := strings.Cut(f, "="); ok {
			seen[v] = true
		}
	}
	return seen
}

func newDisk(t *testing.T, id string) hypervisor.Disk {
	t.Helper()
	p := filepath.Join(t.TempDir(), id+".qcow2")
	if out, err := exec.Command("qemu-img", "create", "-q", "-f", "qcow2", p, "64M").CombinedOutput(); err != nil {
		t.Fatalf("qemu-img create: %v: %s", err, out)
	}
	return hypervisor.Disk{ID: id, Path: p, Format: hypervisor.FormatQCOW2, Serial: id}
}

func newTap(t *testing.T) string {
	t.Helper()
	name := "lvt" + randomHex(4)
	if out, err := exec.Command("ip", "tuntap", "add", "dev", name, "mode", "tap").CombinedOutput(); err != nil {
		t.Fatalf("creating tap %s: %v: %s", name, err, out)
	}
	t.Cleanup(func() { exec.Command("ip", "link", "del", name).Run() })
	return name
}

// typeOnConsole writes a line on the serial console and stays connected
// until the log shows until.
func typeOnConsole(t *testing.T, d hypervisor.Driver, id, line, until string) {
	t.Helper()
	c, err := d.Console(context.Background(), id)
	if err != nil {
		t.Fatal(err)
	}
	conn, err := net.DialTimeout("unix", c.SocketPath, 5*time.Second)
	if err != nil {
		t.Fatalf("console socket: %v", err)
	}
	defer conn.Close()
	go func() {
		buf := make([]byte, 4096)
		for {
			if _, err := conn.Read(buf); err != nil {
				return
			}
		}
	}()
	if _, err := conn.Write([]byte(line + "\n")); err != nil {
		t.Fatalf("typing on the console: %v", err)
	}
	deadline := time.Now().Add(guestTimeout)
	for !bytes.Contains(consoleLog(t, d, id), []byte(until)) {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for the guest to answer %q with %q", line, until)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// TestConformance runs the hypervisor conformance suite against a private
// libvirtd booting the test guest with TCG.
func TestConformance(t *testing.T) {
	t.Parallel()
	lv := startLibvirtd(t)
	k := testguest.GetKernel(t)
	initrd := testguest.Initramfs(t, k, t.TempDir())
	h := hvtest.Harness{
		NewDriver: func(t *testing.T) hypervisor.Driver {
			o := libvirt.Options{
				Socket: lv.socket, NamePrefix: lv.prefix + randomHex(2) + "-",
				RunDir: filepath.Join(t.TempDir(), "vms"), StopTimeout: guestTimeout, DetachTimeout: guestTimeout,
			}
			return newDriver(t, o)
		},
		Reopen: func(t *testing.T, d hypervisor.Driver) hypervisor.Driver {
			return newDriver(t, d.(*libvirt.Driver).Options())
		},
		Spec: func(t *testing.T, id string) hypervisor.Spec {
			return hypervisor.Spec{
				ID: id, VCPUs: 1, MemoryMiB: 256,
				Kernel: k.Vmlinuz, Initrd: initrd, Append: testguest.Append(false),
				SMBIOS: hypervisor.EC2Identity(id, "t3.micro"),
			}
		},
		NewDisk: newDisk,
		NewNIC: func(t *testing.T, id string) hypervisor.NIC {
			return hypervisor.NIC{ID: id, Tap: newTap(t), MAC: "02:00:00:" + randomHex(1) + ":" + randomHex(1) + ":" + randomHex(1)}
		},
		Boots: func(t *testing.T, d hypervisor.Driver, id string) int {
			return bytes.Count(consoleLog(t, d, id), []byte(testguest.BootMarker))
		},
		SeesDisk: func(t *testing.T, d hypervisor.Driver, id, serial string) bool { return guestDevices(t, d, id)[serial] },
		SeesNIC:  func(t *testing.T, d hypervisor.Driver, id, mac string) bool { return guestDevices(t, d, id)[mac] },
		PowerOffFromGuest: func(t *testing.T, d hypervisor.Driver, id string) {
			typeOnConsole(t, d, id, "poweroff", testguest.PowerOffMarker)
		},
		Crash: func(t *testing.T, d hypervisor.Driver, id string) {
			pids := vmPIDs(d, id)
			if len(pids) != 1 {
				t.Fatalf("found %d QEMU processes for VM %s, want 1", len(pids), id)
			}
			if err := syscall.Kill(pids[0], syscall.SIGKILL); err != nil {
				t.Fatal(err)
			}
		},
		Processes: func(t *testing.T, d hypervisor.Driver, id string) int { return len(vmPIDs(d, id)) },
		Timeout:   guestTimeout,
	}
	t.Run("NetNSUnsupported", func(t *testing.T) {
		d := newDriver(t, libvirt.Options{Socket: lv.socket, NamePrefix: lv.prefix + "ns-", RunDir: filepath.Join(t.TempDir(), "vms")})
		s := h.Spec(t, "i-netns")
		s.NetNS = "/var/run/netns/vpc-1"
		err := d.Create(context.Background(), s)
		if !errdefs.Is(err, errdefs.ClassInvalidParameter) || !strings.Contains(err.Error(), "NetNS") {
			t.Fatalf("Create with NetNS = %v, want InvalidParameter naming NetNS", err)
		}
	})
	t.Run("IdentityThrottleAndStopFallback", func(t *testing.T) {
		t.Parallel()
		testIdentityThrottleAndStopFallback(t, h.NewDriver(t), k.Vmlinuz, initrd)
	})
	hvtest.Run(t, h)
}

// testIdentityThrottleAndStopFallback boots a guest that ignores the
// power button, with a throttled boot disk, and checks what the suite
// cannot: the guest sees the EC2 SMBIOS identity, I/O limits reach
// libvirt (boot-time and SetDiskThrottle), and a graceful Stop that runs
// out of time destroys the domain and says so.
func testIdentityThrottleAndStopFallback(t *testing.T, hd hypervisor.Driver, kernel, initrd string) {
	d := hd.(*libvirt.Driver)
	ctx := context.Background()
	const id = "i-deaf"
	disk := newDisk(t, "vol-root")
	disk.Throttle = &hypervisor.Throttle{IOPSTotal: 100, BPSTotal: 1 << 20}
	spec := hypervisor.Spec{
		ID: id, VCPUs: 1, MemoryMiB: 256, Kernel: kernel, Initrd: initrd, Append: testguest.Append(true),
		SMBIOS: hypervisor.EC2Identity(id, "t3.micro"), Disks: []hypervisor.Disk{disk},
	}
	if err := d.Create(ctx, spec); err != nil {
		t.Fatal(err)
	}
	if err := d.Start(ctx, id); err != nil {
		t.Fatal(err)
	}
	waitLog(t, d, id, testguest.BootMarker)
	u := hypervisor.EC2UUID(id)
	waitLog(t, d, id, fmt.Sprintf("%svendor=Amazon EC2 product=t3.micro serial=%s uuid=%s asset=%s", testguest.DMIPrefix, u, u, id))
	if !guestDevices(t, d, id)["vol-root"] {
		t.Errorf("the guest does not see the boot-time disk vol-root")
	}

	liveXML := func() string {
		x, err := d.DomainXML(ctx, id, true)
		if err != nil {
			t.Fatal(err)
		}
		return x
	}
	if x := liveXML(); !strings.Contains(x, "<total_iops_sec>100</total_iops_sec>") || !strings.Contains(x, "<total_bytes_sec>1048576</total_bytes_sec>") {
		t.Fatalf("live XML lacks the boot-time limits:\n%s", x)
	}
	if err := d.SetDiskThrottle(ctx, id, "vol-root", hypervisor.Throttle{IOPSRead: 300, IOPSWrite: 200}); err != nil {
		t.Fatal(err)
	}
	for _, x := range []string{liveXML(), must(d.DomainXML(ctx, id, false))} {
		if strings.Contains(x, "total_iops_sec") || !strings.Contains(x, "<read_iops_sec>300</read_iops_sec>") || !strings.Contains(x, "<write_iops_sec>200</write_iops_sec>") {
			t.Fatalf("XML after SetDiskThrottle lacks read 300/write 200 or still has totals:\n%s", x)
		}
	}

	const timeout = 2 * time.Second
	start := time.Now()
	if err := d.Stop(ctx, id, hypervisor.StopOptions{Graceful: true, Timeout: timeout}); err != nil {
		t.Fatal(err)
	}
	if took := time.Since(start); took < timeout {
		t.Fatalf("Stop returned after %s, before the %s graceful timeout", took, timeout)
	}
	st, err := d.Status(ctx, id)
	if err != nil {
		t.Fatal(err)
	}
	if st.State != hypervisor.StateStopped || st.ExitReason != hypervisor.ExitForced || !strings.Contains(st.Detail, "did not power off") {
		t.Fatalf("Status = %+v, want stopped/forced with a detail saying the guest did not power off", st)
	}
	if n := len(vmPIDs(d, id)); n != 0 {
		t.Fatalf("%d QEMU processes left", n)
	}
}

func must[T any](v T, err error) T {
	if err != nil {
		panic(err)
	}
	return v
}

func waitLog(t *testing.T, d hypervisor.Driver, id, what string) {
	t.Helper()
	deadline := time.Now().Add(guestTimeout)
	for !bytes.Contains(consoleLog(t, d, id), []byte(what)) {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %s waiting for %q on the console of %s", guestTimeout, what, id)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// TestNoLibvirtd: New says what to do when the socket does not answer.
func TestNoLibvirtd(t *testing.T) {
	t.Parallel()
	_, err := libvirt.New(context.Background(), libvirt.Options{Socket: filepath.Join(t.TempDir(), "none"), RunDir: t.TempDir()})
	if !errdefs.Is(err, errdefs.ClassUnavailable) || !strings.Contains(err.Error(), "libvirt-daemon") {
		t.Fatalf("New without libvirtd = %v, want Unavailable naming the package", err)
	}
}

// TestSurvivesLibvirtdRestart restarts libvirtd under a running VM: the
// domain keeps running in the same QEMU, the same Driver reconnects on its
// own, a new one finds the VM by name, and how the VM later stopped is
// still known after another libvirtd restart.
func TestSurvivesLibvirtdRestart(t *testing.T) {
	t.Parallel()
	lv := startLibvirtd(t)
	k := testguest.GetKernel(t)
	initrd := testguest.Initramfs(t, k, t.TempDir())
	ctx := context.Background()
	opts := libvirt.Options{Socket: lv.socket, NamePrefix: lv.prefix, RunDir: filepath.Join(t.TempDir(), "vms"), StopTimeout: guestTimeout}
	d := newDriver(t, opts)
	const id = "i-restart"
	spec := hypervisor.Spec{ID: id, VCPUs: 1, MemoryMiB: 256, Kernel: k.Vmlinuz, Initrd: initrd, Append: testguest.Append(false),
		SMBIOS: hypervisor.EC2Identity(id, "t3.micro")}
	if err := d.Create(ctx, spec); err != nil {
		t.Fatal(err)
	}
	if err := d.Start(ctx, id); err != nil {
		t.Fatal(err)
	}
	waitLog(t, d, id, testguest.BootMarker)
	pids := vmPIDs(d, id)
	if len(pids) != 1 {
		t.Fatalf("%d QEMU processes for %s, want 1", len(pids), id)
	}

	lv.stop(t)
	lv.start(t)
	if st, err := d.Status(ctx, id); err != nil || st.State != hypervisor.StateRunning {
		t.Fatalf("Status on the old driver after a libvirtd restart = %+v, %v; want running", st, err)
	}
	d2 := newDriver(t, opts)
	if st, err := d2.Reattach(ctx, id); err != nil || st.State != hypervisor.StateRunning {
		t.Fatalf("Reattach after a libvirtd restart = %+v, %v; want running", st, err)
	}
	if err := d2.Start(ctx, id); err != nil {
		t.Fatal(err)
	}
	if got := vmPIDs(d, id); len(got) != 1 || got[0] != pids[0] {
		t.Fatalf("QEMU processes after the restart: %v, want the same one %v", got, pids)
	}
	typeOnConsole(t, d2, id, "ping hello", testguest.PongPrefix+"hello")

	typeOnConsole(t, d2, id, "poweroff", testguest.PowerOffMarker)
	deadline := time.Now().Add(guestTimeout)
	for {
		st, err := d2.Status(ctx, id)
		if err != nil {
			t.Fatal(err)
		}
		if st.State == hypervisor.StateStopped && st.ExitReason == hypervisor.ExitGuestShutdown {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("Status after the guest's power-off = %+v, want stopped/guest-shutdown", st)
		}
		time.Sleep(100 * time.Millisecond)
	}
	lv.stop(t)
	lv.start(t)
	if st, err := d2.Status(ctx, id); err != nil || st.State != hypervisor.StateStopped || st.ExitReason != hypervisor.ExitGuestShutdown {
		t.Fatalf("Status after another libvirtd restart = %+v, %v; want stopped/guest-shutdown", st, err)
	}
}
