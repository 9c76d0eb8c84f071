package qemu_test

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"syscall"
	"testing"

	"github.com/labcloud/labcloud/hypervisor"
	"github.com/labcloud/labcloud/hypervisor/qemu"
)

// TestStartInNetNS starts a VM whose only NIC is a tap that exists solely
// inside a network namespace of the test's own, with Spec.NetNS naming
// it, and checks that QEMU runs in that namespace (same namespace inode)
// while the test process itself stays in its own.
func TestStartInNetNS(t *testing.T) {
	requireQEMU(t)
	if os.Geteuid() != 0 {
		t.Fatal("TestStartInNetNS needs root (CI runs as root) to create a network namespace")
	}
	t.Parallel()
	ctx := context.Background()
	ns := "lcns" + randomHex(4)
	if out, err := exec.Command("ip", "netns", "add", ns).CombinedOutput(); err != nil {
		t.Fatalf("ip netns add %s: %v: %s", ns, err, out)
	}
	t.Cleanup(func() { exec.Command("ip", "netns", "del", ns).Run() })
	nsPath := filepath.Join("/var/run/netns", ns)
	tap := "lct" + randomHex(4)
	if out, err := exec.Command("ip", "netns", "exec", ns, "ip", "tuntap", "add", "dev", tap, "mode", "tap").CombinedOutput(); err != nil {
		t.Fatalf("creating tap %s in %s: %v: %s", tap, ns, err, out)
	}

	g := newGuest(t)
	d := newDriver(t, filepath.Join(t.TempDir(), "vms"), qemu.Options{})
	spec := g.spec("i-netns", false)
	spec.NetNS = nsPath
	spec.NICs = []hypervisor.NIC{{ID: "eni-ns", Tap: tap, MAC: "02:00:00:0c:00:01"}}
	if err := d.Create(ctx, spec); err != nil {
		t.Fatal(err)
	}
	if err := d.Start(ctx, spec.ID); err != nil {
		t.Fatalf("Start in %s: %v", nsPath, err)
	}
	st, err := d.Status(ctx, spec.ID)
	if err != nil || st.State != hypervisor.StateRunning || st.PID == 0 {
		t.Fatalf("Status = %+v, %v; want running with a pid", st, err)
	}
	want := inode(t, nsPath)
	if got := inode(t, fmt.Sprintf("/proc/%d/ns/net", st.PID)); got != want {
		t.Fatalf("QEMU (pid %d) runs in network namespace inode %d, want %d (%s)", st.PID, got, want, nsPath)
	}
	if self := inode(t, "/proc/self/ns/net"); self == want {
		t.Fatalf("the test process itself ended up in %s", nsPath)
	}
	if err := d.Stop(ctx, spec.ID, hypervisor.StopOptions{}); err != nil {
		t.Fatal(err)
	}
}

func inode(t *testing.T, path string) uint64 {
	t.Helper()
	var st syscall.Stat_t
	if err := syscall.Stat(path, &st); err != nil {
		t.Fatalf("stat %s: %v", path, err)
	}
	return st.Ino
}
