package qemu_test

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/labcloud/labcloud/hypervisor"
	"github.com/labcloud/labcloud/hypervisor/hvtest"
	"github.com/labcloud/labcloud/hypervisor/hvtest/testguest"
	"github.com/labcloud/labcloud/hypervisor/qemu"
	"github.com/labcloud/labcloud/internal/errdefs"
)

// guestTimeout bounds every wait for the TCG guest. A boot takes 3–5 s on
// an idle machine, but these 2-core machines are shared with builds.
const guestTimeout = 3 * time.Minute

// requireQEMU fails (never skips) the test when QEMU is missing: CI must
// run these tests.
func requireQEMU(t *testing.T) {
	t.Helper()
	for _, bin := range []string{qemu.DefaultBinary, "qemu-img"} {
		if _, err := exec.LookPath(bin); err != nil {
			t.Fatalf("%s is not installed (%v): run `make deps` (Debian packages qemu-system-x86 qemu-utils busybox-static)", bin, err)
		}
	}
}

// newDriver makes a driver over runDir whose VMs are all destroyed at the
// end of the test, whatever happened.
func newDriver(t *testing.T, runDir string, opts qemu.Options) *qemu.Driver {
	t.Helper()
	opts.RunDir = runDir
	if opts.StopTimeout == 0 {
		opts.StopTimeout = guestTimeout
	}
	if opts.DetachTimeout == 0 {
		opts.DetachTimeout = guestTimeout
	}
	d, err := qemu.New(opts)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		defer cancel()
		ids, _ := d.List(ctx)
		for _, id := range ids {
			if err := d.Destroy(ctx, id); err != nil {
				t.Errorf("cleanup: destroying %s: %v", id, err)
			}
		}
		d.Close()
	})
	return d
}

// guest is the booted test guest's kernel and initramfs, made once per
// test (the kernel comes from the cache after the first download).
type guest struct {
	kernel, initrd string
}

func newGuest(t *testing.T) guest {
	t.Helper()
	k := testguest.GetKernel(t)
	return guest{kernel: k.Vmlinuz, initrd: testguest.Initramfs(t, k, t.TempDir())}
}

func (g guest) spec(id string, ignorePowerButton bool) hypervisor.Spec {
	return hypervisor.Spec{
		ID: id, VCPUs: 1, MemoryMiB: 256,
		Kernel: g.kernel, Initrd: g.initrd, Append: testguest.Append(ignorePowerButton),
		SMBIOS: hypervisor.EC2Identity(id, "t3.micro"),
	}
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

// guestDevices parses the newest device listing into name=value pairs.
func guestDevices(t *testing.T, d hypervisor.Driver, id string) map[string]bool {
	seen := map[string]bool{}
	for _, f := range strings.Fields(testguest.LastDevices(consoleLog(t, d, id))) {
		if _, v, ok := strings.Cut(f, "="); ok {
			seen[v] = true
		}
	}
	return seen
}

// guestDiskBytes asks the guest (console command "size vdX") for the
// size of the disk with this serial; -1 while the guest has no such disk.
func guestDiskBytes(t *testing.T, d hypervisor.Driver, id, serial string) int64 {
	name := ""
	for _, f := range strings.Fields(testguest.LastDevices(consoleLog(t, d, id))) {
		if n, v, ok := strings.Cut(f, "="); ok && v == serial {
			name = n
		}
	}
	if name == "" {
		return -1
	}
	answer := []byte(testguest.SizePrefix + name + "=")
	seen := bytes.Count(consoleLog(t, d, id), answer)
	var sectors int64 = -1
	askConsole(t, d, id, "size "+name, "the guest's answer to size "+name, func(log []byte) bool {
		if bytes.Count(log, answer) <= seen {
			return false
		}
		rest := log[bytes.LastIndex(log, answer)+len(answer):]
		end := bytes.IndexByte(rest, '\n')
		if end < 0 {
			return false
		}
		if n, err := strconv.ParseInt(strings.TrimSpace(string(rest[:end])), 10, 64); err == nil {
			sectors = n
		}
		return true
	})
	return sectors * 512
}

func newDisk(t *testing.T, id string) hypervisor.Disk {
	t.Helper()
	p := filepath.Join(t.TempDir(), id+".qcow2")
	if out, err := exec.Command("qemu-img", "create", "-q", "-f", "qcow2", p, "64M").CombinedOutput(); err != nil {
		t.Fatalf("qemu-img create: %v: %s", err, out)
	}
	return hypervisor.Disk{ID: id, Path: p, Format: hypervisor.FormatQCOW2, Serial: id}
}

func randomHex(n int) string {
	b := make([]byte, n)
	rand.Read(b)
	return hex.EncodeToString(b)
}

// newTap creates a tap of the test's own (never bridged, never up on any
// host network) and deletes it at the end.
func newTap(t *testing.T) string {
	t.Helper()
	name := "lct" + randomHex(4)
	if out, err := exec.Command("ip", "tuntap", "add", "dev", name, "mode", "tap").CombinedOutput(); err != nil {
		t.Fatalf("creating tap %s: %v: %s", name, err, out)
	}
	t.Cleanup(func() { exec.Command("ip", "link", "del", name).Run() })
	return name
}

// processes counts live processes whose command line holds VM id's QMP
// socket under d's run dir.
func processes(t *testing.T, runDir, id string) int {
	t.Helper()
	needle := []byte(filepath.Join(runDir, id, "qmp.sock"))
	dirs, _ := filepath.Glob("/proc/[0-9]*")
	n := 0
	for _, p := range dirs {
		cmd, err := os.ReadFile(p + "/cmdline")
		if err != nil || !bytes.Contains(cmd, needle) {
			continue
		}
		stat, _ := os.ReadFile(p + "/stat")
		if i := bytes.LastIndexByte(stat, ')'); i > 0 && i+2 < len(stat) && stat[i+2] != 'Z' {
			n++
		}
	}
	return n
}

// typeOnConsole writes one line to the guest's serial console and keeps
// the connection open until the console log shows until: QEMU drops input
// the guest has not read yet when the client hangs up.
func typeOnConsole(t *testing.T, d hypervisor.Driver, id, line, until string) {
	t.Helper()
	askConsole(t, d, id, line, fmt.Sprintf("the guest answers %q with %q", line, until), func(log []byte) bool {
		return bytes.Contains(log, []byte(until))
	})
}

// askConsole types line on the guest's serial console and keeps the
// connection open until answered says the console log holds the answer
// (closing at once could drop the line).
func askConsole(t *testing.T, d hypervisor.Driver, id, line, what string, answered func(log []byte) bool) {
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
	go io.Copy(io.Discard, conn) // the output is in the log
	if _, err := conn.Write([]byte(line + "\n")); err != nil {
		t.Fatalf("typing on the console: %v", err)
	}
	waitFor(t, what, func() bool { return answered(consoleLog(t, d, id)) })
}

func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(guestTimeout)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %s waiting until %s", guestTimeout, what)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

func waitBoots(t *testing.T, d hypervisor.Driver, id string, n int) {
	t.Helper()
	waitFor(t, fmt.Sprintf("VM %s has booted %d time(s)", id, n), func() bool {
		return bytes.Count(consoleLog(t, d, id), []byte(testguest.BootMarker)) >= n
	})
}

// TestConformance runs the hypervisor conformance suite against real QEMU
// (TCG here) booting Debian's cloud kernel with a busybox initramfs.
func TestConformance(t *testing.T) {
	requireQEMU(t)
	t.Parallel()
	g := newGuest(t)
	runDirOf := func(d hypervisor.Driver) string { return d.(*qemu.Driver).RunDir() }
	h := hvtest.Harness{
		NewDriver: func(t *testing.T) hypervisor.Driver {
			return newDriver(t, filepath.Join(t.TempDir(), "vms"), qemu.Options{})
		},
		Reopen: func(t *testing.T, d hypervisor.Driver) hypervisor.Driver {
			return newDriver(t, runDirOf(d), qemu.Options{})
		},
		Spec:    func(t *testing.T, id string) hypervisor.Spec { return g.spec(id, false) },
		NewDisk: newDisk,
		Boots: func(t *testing.T, d hypervisor.Driver, id string) int {
			return bytes.Count(consoleLog(t, d, id), []byte(testguest.BootMarker))
		},
		SeesDisk:       func(t *testing.T, d hypervisor.Driver, id, serial string) bool { return guestDevices(t, d, id)[serial] },
		SeesNIC:        func(t *testing.T, d hypervisor.Driver, id, mac string) bool { return guestDevices(t, d, id)[mac] },
		GuestDiskBytes: guestDiskBytes,
		PowerOffFromGuest: func(t *testing.T, d hypervisor.Driver, id string) {
			typeOnConsole(t, d, id, "poweroff", testguest.PowerOffMarker)
		},
		Crash: func(t *testing.T, d hypervisor.Driver, id string) {
			st, err := d.Status(context.Background(), id)
			if err != nil || st.PID == 0 {
				t.Fatalf("Status before crash: %+v, %v", st, err)
			}
			if err := syscall.Kill(st.PID, syscall.SIGKILL); err != nil {
				t.Fatal(err)
			}
		},
		Processes: func(t *testing.T, d hypervisor.Driver, id string) int { return processes(t, runDirOf(d), id) },
		HasPID:    true,
		Timeout:   guestTimeout,
	}
	if os.Geteuid() == 0 {
		h.NewNIC = func(t *testing.T, id string) hypervisor.NIC {
			return hypervisor.NIC{ID: id, Tap: newTap(t), MAC: "02:00:00:" + randomHex(1) + ":" + randomHex(1) + ":" + randomHex(1)}
		}
	} else {
		t.Log("not root: the NIC hot-plug checks are skipped (creating a tap needs root)")
	}
	hvtest.Run(t, h)
}

// TestGracefulStopFallsBackToQuit boots a guest that ignores the ACPI
// power button: a graceful Stop waits its timeout, then quits QEMU, and
// the exit reason says so.
func TestGracefulStopFallsBackToQuit(t *testing.T) {
	requireQEMU(t)
	t.Parallel()
	g := newGuest(t)
	ctx := context.Background()
	d := newDriver(t, filepath.Join(t.TempDir(), "vms"), qemu.Options{})
	spec := g.spec("i-deaf", true)
	if err := d.Create(ctx, spec); err != nil {
		t.Fatal(err)
	}
	if err := d.Start(ctx, spec.ID); err != nil {
		t.Fatal(err)
	}
	waitBoots(t, d, spec.ID, 1)
	const timeout = 2 * time.Second
	start := time.Now()
	if err := d.Stop(ctx, spec.ID, hypervisor.StopOptions{Graceful: true, Timeout: timeout}); err != nil {
		t.Fatal(err)
	}
	if took := time.Since(start); took < timeout {
		t.Fatalf("Stop returned after %s, before the %s graceful timeout", took, timeout)
	}
	st, err := d.Status(ctx, spec.ID)
	if err != nil {
		t.Fatal(err)
	}
	if st.State != hypervisor.StateStopped || st.ExitReason != hypervisor.ExitForced || !strings.Contains(st.Detail, "did not power off") {
		t.Fatalf("Status = %+v, want stopped/forced with a detail saying the guest did not power off", st)
	}
	if bytes.Contains(consoleLog(t, d, spec.ID), []byte(testguest.PowerButtonMarker)) {
		t.Fatal("the guest reacted to the power button it was told to ignore")
	}
	if n := processes(t, d.RunDir(), spec.ID); n != 0 {
		t.Fatalf("%d QEMU processes left", n)
	}
}

const helperEnv = "LABCLOUD_QEMU_TEST_HELPER"

// TestMain lets TestVMOutlivesDaemon run this test binary as a stand-in
// labcloudd that starts a VM and exits.
func TestMain(m *testing.M) {
	if os.Getenv(helperEnv) != "" {
		if err := helperStartVM(); err != nil {
			fmt.Fprintln(os.Stderr, "helper:", err)
			os.Exit(1)
		}
		os.Exit(0)
	}
	os.Exit(m.Run())
}

func helperStartVM() error {
	ctx := context.Background()
	d, err := qemu.New(qemu.Options{RunDir: os.Getenv("HELPER_RUN_DIR")})
	if err != nil {
		return err
	}
	id := os.Getenv("HELPER_ID")
	spec := hypervisor.Spec{
		ID: id, VCPUs: 1, MemoryMiB: 256,
		Kernel: os.Getenv("HELPER_KERNEL"), Initrd: os.Getenv("HELPER_INITRD"), Append: testguest.Append(false),
		SMBIOS: hypervisor.EC2Identity(id, "t3.micro"),
		Disks: []hypervisor.Disk{{ID: "vol-root", Path: os.Getenv("HELPER_DISK"), Format: hypervisor.FormatQCOW2,
			Serial: "vol-root", Throttle: &hypervisor.Throttle{IOPSTotal: 100, BPSTotal: 1 << 20}}},
	}
	if tap := os.Getenv("HELPER_TAP"); tap != "" {
		spec.NICs = []hypervisor.NIC{{ID: "eni-boot", Tap: tap, MAC: os.Getenv("HELPER_MAC")}}
	}
	if err := d.Create(ctx, spec); err != nil {
		return err
	}
	// Exit right after Start, without Close or Stop, as a crashing or
	// restarting daemon would.
	return d.Start(ctx, id)
}

// TestVMOutlivesDaemon starts a VM from a separate process that then
// exits (a labcloudd going away), and checks that a new driver over the
// same run directory finds the running VM, never starts a second QEMU,
// reaches its console and QMP, stops it, and also learns about a guest
// power-off that happened while no driver was attached.
func TestVMOutlivesDaemon(t *testing.T) {
	requireQEMU(t)
	t.Parallel()
	g := newGuest(t)
	ctx := context.Background()
	runDir := filepath.Join(t.TempDir(), "vms")
	const id = "i-outlive"
	disk := newDisk(t, "vol-root")
	d := newDriver(t, runDir, qemu.Options{}) // also destroys the VM at the end

	helper := exec.Command(os.Args[0])
	helper.Env = append(os.Environ(), helperEnv+"=1", "HELPER_RUN_DIR="+runDir, "HELPER_ID="+id,
		"HELPER_KERNEL="+g.kernel, "HELPER_INITRD="+g.initrd, "HELPER_DISK="+disk.Path)
	const bootMAC = "02:00:00:0b:00:01"
	if os.Geteuid() == 0 {
		helper.Env = append(helper.Env, "HELPER_TAP="+newTap(t), "HELPER_MAC="+bootMAC)
	} else {
		t.Log("not root: no boot-time NIC (creating a tap needs root)")
	}
	if out, err := helper.CombinedOutput(); err != nil {
		t.Fatalf("helper process: %v\n%s", err, out)
	}

	st, err := d.Reattach(ctx, id)
	if err != nil {
		t.Fatal(err)
	}
	if st.State != hypervisor.StateRunning || st.PID == 0 {
		t.Fatalf("after the launching process exited: %+v, want running", st)
	}
	pid := st.PID
	if ppid := parentPID(t, pid); ppid == os.Getpid() {
		t.Fatalf("QEMU (pid %d) is a child of the test process; it should have detached", pid)
	}
	if err := d.Start(ctx, id); err != nil {
		t.Fatal(err)
	}
	if n := processes(t, runDir, id); n != 1 {
		t.Fatalf("%d QEMU processes for %s, want exactly 1", n, id)
	}

	t.Run("InteractiveConsole", func(t *testing.T) {
		waitBoots(t, d, id, 1)
		typeOnConsole(t, d, id, "ping hello-from-test", testguest.PongPrefix+"hello-from-test")
	})

	t.Run("GuestSeesBootTimeDevices", func(t *testing.T) {
		waitBoots(t, d, id, 1)
		seen := guestDevices(t, d, id)
		if !seen["vol-root"] {
			t.Errorf("the guest does not see the boot-time disk vol-root: %v", seen)
		}
		if os.Geteuid() == 0 && !seen[bootMAC] {
			t.Errorf("the guest does not see the boot-time NIC %s: %v", bootMAC, seen)
		}
	})

	t.Run("GuestSeesEC2Identity", func(t *testing.T) {
		u := hypervisor.EC2UUID(id)
		want := fmt.Sprintf("%svendor=Amazon EC2 product=t3.micro serial=%s uuid=%s asset=%s", testguest.DMIPrefix, u, u, id)
		if log := consoleLog(t, d, id); !bytes.Contains(log, []byte(want)) {
			t.Fatalf("console log lacks %q:\n%s", want, log)
		}
	})

	t.Run("ThrottleGroups", func(t *testing.T) {
		mon, err := d.Monitor(ctx, id)
		if err != nil {
			t.Fatal(err)
		}
		limits := func(diskID string) map[string]int64 {
			var l map[string]int64
			if err := mon.QOMGet(ctx, "/objects/tg-"+diskID, "limits", &l); err != nil {
				t.Fatal(err)
			}
			return l
		}
		if l := limits("vol-root"); l["iops-total"] != 100 || l["bps-total"] != 1<<20 {
			t.Fatalf("boot-time limits of vol-root = %v, want iops-total 100, bps-total 1MiB", l)
		}
		if err := d.SetDiskThrottle(ctx, id, "vol-root", hypervisor.Throttle{IOPSRead: 300, IOPSWrite: 200}); err != nil {
			t.Fatal(err)
		}
		if l := limits("vol-root"); l["iops-total"] != 0 || l["bps-total"] != 0 || l["iops-read"] != 300 || l["iops-write"] != 200 {
			t.Fatalf("limits after SetDiskThrottle = %v, want only iops-read 300 and iops-write 200", l)
		}
		hot := newDisk(t, "vol-hot")
		hot.Throttle = &hypervisor.Throttle{BPSWrite: 4 << 20}
		if err := d.AttachDisk(ctx, id, hot); err != nil {
			t.Fatal(err)
		}
		if l := limits("vol-hot"); l["bps-write"] != 4<<20 {
			t.Fatalf("limits of the hot-plugged disk = %v, want bps-write 4MiB", l)
		}
		// EBS ModifyVolume of an attached volume: block_resize grows the
		// image under the running guest.
		if err := d.ResizeDisk(ctx, id, "vol-hot", 96<<20); err != nil {
			t.Fatal(err)
		}
		out, err := exec.Command("qemu-img", "info", "-U", "--output=json", hot.Path).Output()
		if err != nil {
			t.Fatal(err)
		}
		var info struct {
			VirtualSize int64 `json:"virtual-size"`
		}
		if err := json.Unmarshal(out, &info); err != nil || info.VirtualSize != 96<<20 {
			t.Fatalf("after ResizeDisk the image is %d bytes (%v), want %d", info.VirtualSize, err, 96<<20)
		}
		if err := d.ResizeDisk(ctx, id, "vol-none", 96<<20); !errdefs.Is(err, errdefs.ClassNotFound) {
			t.Fatalf("ResizeDisk of an unknown disk: %v, want NotFound", err)
		}
		blocks, err := mon.QueryBlock(ctx)
		if err != nil {
			t.Fatal(err)
		}
		var qdevs []string
		for _, b := range blocks {
			qdevs = append(qdevs, b.QDev)
		}
		if s := strings.Join(qdevs, " "); !strings.Contains(s, "blk-vol-root") || !strings.Contains(s, "blk-vol-hot") {
			t.Fatalf("query-block lists devices %q, want blk-vol-root and blk-vol-hot", s)
		}
		if err := d.DetachDisk(ctx, id, hot.ID); err != nil {
			t.Fatal(err)
		}
	})

	t.Run("PowerOffWhileNoDriverAttached", func(t *testing.T) {
		if err := d.Close(); err != nil {
			t.Fatal(err)
		}
		typeOnConsole(t, d, id, "poweroff", testguest.PowerOffMarker)
		waitFor(t, "the guest powers off", func() bool {
			return bytes.Contains(consoleLog(t, d, id), []byte("reboot: Power down"))
		})
		// -no-shutdown keeps QEMU around until someone looks.
		if n := processes(t, runDir, id); n != 1 {
			t.Fatalf("%d QEMU processes after the unattended power-off, want 1 (kept by -no-shutdown)", n)
		}
		d2 := newDriver(t, runDir, qemu.Options{})
		st, err := d2.Reattach(ctx, id)
		if err != nil {
			t.Fatal(err)
		}
		if st.State != hypervisor.StateStopped || st.ExitReason != hypervisor.ExitGuestShutdown {
			t.Fatalf("Reattach after an unattended power-off = %+v, want stopped/guest-shutdown", st)
		}
		waitFor(t, "QEMU has exited", func() bool { return processes(t, runDir, id) == 0 })
		if st, _ := d2.Status(ctx, id); st.State != hypervisor.StateStopped || st.PID != 0 || st.ExitReason != hypervisor.ExitGuestShutdown {
			t.Fatalf("Status = %+v, want stopped/guest-shutdown without a pid", st)
		}
	})
}

func parentPID(t *testing.T, pid int) int {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		t.Fatal(err)
	}
	i := bytes.LastIndexByte(b, ')')
	var state string
	var ppid int
	fmt.Sscanf(string(b[i+2:]), "%s %d", &state, &ppid)
	return ppid
}

// TestStartErrors checks that failures to start say what is wrong.
func TestStartErrors(t *testing.T) {
	requireQEMU(t)
	t.Parallel()
	ctx := context.Background()
	dir := t.TempDir()
	kernel := filepath.Join(dir, "vmlinuz")
	os.WriteFile(kernel, []byte("not a kernel"), 0o644)
	notQcow2 := filepath.Join(dir, "raw.img")
	os.WriteFile(notQcow2, make([]byte, 1<<20), 0o644)

	t.Run("MissingBinary", func(t *testing.T) {
		d := newDriver(t, filepath.Join(t.TempDir(), "vms"), qemu.Options{Binary: "/nonexistent/qemu-system-x86_64"})
		d.Create(ctx, hypervisor.Spec{ID: "i-nobin", VCPUs: 1, MemoryMiB: 128, Kernel: kernel})
		err := d.Start(ctx, "i-nobin")
		if !errdefs.Is(err, errdefs.ClassUnavailable) || !strings.Contains(err.Error(), "make deps") {
			t.Fatalf("Start without QEMU = %v, want Unavailable saying to run make deps", err)
		}
	})
	t.Run("MissingKernel", func(t *testing.T) {
		d := newDriver(t, filepath.Join(t.TempDir(), "vms"), qemu.Options{})
		d.Create(ctx, hypervisor.Spec{ID: "i-nokernel", VCPUs: 1, MemoryMiB: 128, Kernel: filepath.Join(dir, "missing")})
		if err := d.Start(ctx, "i-nokernel"); !errdefs.Is(err, errdefs.ClassInvalidParameter) {
			t.Fatalf("Start with a missing kernel = %v, want InvalidParameter", err)
		}
	})
	t.Run("QEMURefuses", func(t *testing.T) {
		d := newDriver(t, filepath.Join(t.TempDir(), "vms"), qemu.Options{})
		d.Create(ctx, hypervisor.Spec{ID: "i-badimg", VCPUs: 1, MemoryMiB: 128, Kernel: kernel,
			Disks: []hypervisor.Disk{{ID: "vol-1", Path: notQcow2, Format: hypervisor.FormatQCOW2}}})
		err := d.Start(ctx, "i-badimg")
		if err == nil || !strings.Contains(err.Error(), "qcow2") {
			t.Fatalf("Start with a raw file declared qcow2 = %v, want QEMU's complaint about the format", err)
		}
		if st, _ := d.Status(ctx, "i-badimg"); st.State != hypervisor.StateStopped || st.ExitReason != hypervisor.ExitNone {
			t.Fatalf("Status after a failed start = %+v, want stopped without exit reason", st)
		}
	})
}

// TestKVM boots with -accel kvm where KVM is usable; elsewhere it skips
// and says why (on these build machines /dev/kvm may be a nested PVM
// hypervisor where guests hang).
func TestKVM(t *testing.T) {
	requireQEMU(t)
	accel, why := hypervisor.DetectAccel()
	if accel != string(hypervisor.AccelKVM) {
		t.Skipf("KVM checks skipped: %s", why)
	}
	t.Parallel()
	g := newGuest(t)
	ctx := context.Background()
	d := newDriver(t, filepath.Join(t.TempDir(), "vms"), qemu.Options{})
	spec := g.spec("i-kvm", false)
	spec.Accel = hypervisor.AccelKVM
	if err := d.Create(ctx, spec); err != nil {
		t.Fatal(err)
	}
	if err := d.Start(ctx, spec.ID); err != nil {
		t.Fatal(err)
	}
	mon, err := d.Monitor(ctx, spec.ID)
	if err != nil {
		t.Fatal(err)
	}
	var kvm struct{ Enabled, Present bool }
	if err := mon.Run(ctx, "query-kvm", nil, &kvm); err != nil {
		t.Fatal(err)
	}
	if !kvm.Enabled {
		t.Fatalf("query-kvm = %+v, want enabled", kvm)
	}
	waitBoots(t, d, spec.ID, 1)
	if err := d.Stop(ctx, spec.ID, hypervisor.StopOptions{Graceful: true, Timeout: guestTimeout}); err != nil {
		t.Fatal(err)
	}
}
