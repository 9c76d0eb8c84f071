package instances

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"syscall"
	"testing"
	"time"

	"github.com/labcloud/labcloud/hypervisor"
	"github.com/labcloud/labcloud/hypervisor/hvtest/testguest"
	"github.com/labcloud/labcloud/hypervisor/qemu"
	"github.com/labcloud/labcloud/internal/store"
)

// TestRealQEMU runs one instance through launch, stop, start and terminate
// on the real qemu driver, with a real qcow2 overlay made by qemu-img and
// the test guest's kernel. As root, its ENI is a tap inside a network
// namespace of the test's own, so QEMU must start inside that namespace.
func TestRealQEMU(t *testing.T) {
	for _, bin := range []string{qemu.DefaultBinary, "qemu-img"} {
		if _, err := exec.LookPath(bin); err != nil {
			t.Fatalf("%s is not installed (%v): run `make deps`", bin, err)
		}
	}
	ctx := context.Background()
	dir := t.TempDir()
	k := testguest.GetKernel(t)
	initrd := testguest.Initramfs(t, k, t.TempDir())
	base := filepath.Join(dir, "ami.qcow2")
	if out, err := exec.Command("qemu-img", "create", "-q", "-f", "qcow2", base, "64M").CombinedOutput(); err != nil {
		t.Fatalf("qemu-img: %v: %s", err, out)
	}
	net := newFakeNet()
	var nsPath, tap string
	if os.Geteuid() == 0 {
		b := make([]byte, 4)
		rand.Read(b)
		ns := "lcins" + hex.EncodeToString(b)
		if out, err := exec.Command("ip", "netns", "add", ns).CombinedOutput(); err != nil {
			t.Fatalf("ip netns add: %v: %s", err, out)
		}
		t.Cleanup(func() { exec.Command("ip", "netns", "del", ns).Run() })
		nsPath, tap = "/var/run/netns/"+ns, "lcit"+hex.EncodeToString(b)
		if out, err := exec.Command("ip", "netns", "exec", ns, "ip", "tuntap", "add", "dev", tap, "mode", "tap").CombinedOutput(); err != nil {
			t.Fatalf("creating tap: %v: %s", err, out)
		}
	}
	drv, err := qemu.New(qemu.Options{RunDir: filepath.Join(dir, "vms")})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		ids, _ := drv.List(context.Background())
		for _, id := range ids {
			drv.Destroy(context.Background(), id)
		}
		drv.Close()
	})
	st := store.New(etcdClient, fmt.Sprintf("/test/%d/", prefixes.Add(1)))
	img := realImage{Image{ID: testAMI, Architecture: "x86_64", RootDeviceName: "/dev/xvda", RootSizeGiB: 1,
		Disk: base, Kernel: k.Vmlinuz, Initrd: initrd, KernelCmdline: testguest.Append(false)}}
	svc, err := New(Options{Store: st, Driver: drv, Network: &tapNet{fakeNet: net, tap: tap, ns: nsPath}, Images: img, KeyPairs: fakeKeys{},
		Region: "lab-1", StateDir: filepath.Join(dir, "state"), MaxGuestMemoryMiB: 256, ResyncInterval: 200 * time.Millisecond,
		StopTimeout: 2 * time.Minute})
	if err != nil {
		t.Fatal(err)
	}
	cctx, cancel := context.WithCancel(ctx)
	done := make(chan struct{})
	go func() { svc.RunController(cctx); close(done) }()
	t.Cleanup(func() { cancel(); <-done })

	res, err := svc.RunInstances(ctx, RunInput{AccountID: acct, ImageID: testAMI, InstanceType: "t3.micro"})
	if err != nil {
		t.Fatal(err)
	}
	id := res.Instances[0].ID
	waitReal := func(what string, cond func(Instance) bool) Instance {
		t.Helper()
		deadline := time.Now().Add(3 * time.Minute)
		var last Instance
		for time.Now().Before(deadline) {
			i, _, err := store.Load[Instance](ctx, st, instanceKey(acct, id))
			if err == nil {
				last = i
				if cond(i) {
					return i
				}
			}
			time.Sleep(100 * time.Millisecond)
		}
		t.Fatalf("%s never became %s: %+v", id, what, last.Status)
		return last
	}
	state := func(s string) func(Instance) bool { return func(i Instance) bool { return i.Status.State == s } }
	i := waitReal("running", state(StateRunning))
	if out, err := exec.Command("qemu-img", "info", "-U", i.Status.OverlayPath).CombinedOutput(); err != nil || !bytes.Contains(out, []byte(base)) {
		t.Fatalf("root disk is not an overlay of the image: %v: %s", err, out)
	}
	waitConsole := func() {
		t.Helper()
		deadline := time.Now().Add(3 * time.Minute)
		for time.Now().Before(deadline) {
			if out, _, _ := svc.ConsoleOutput(ctx, acct, id); bytes.Contains(out, []byte(testguest.BootMarker)) {
				return
			}
			time.Sleep(200 * time.Millisecond)
		}
		out, _, _ := svc.ConsoleOutput(ctx, acct, id)
		t.Fatalf("the guest never booted; console:\n%s", out)
	}
	waitConsole()
	if nsPath != "" {
		vmst, err := drv.Status(ctx, id)
		if err != nil {
			t.Fatal(err)
		}
		if a, b := ino(t, nsPath), ino(t, fmt.Sprintf("/proc/%d/ns/net", vmst.PID)); a != b {
			t.Fatalf("QEMU runs in netns inode %d, want %s (%d)", b, nsPath, a)
		}
	}
	if _, err := svc.StopInstances(ctx, acct, []string{id}, false); err != nil {
		t.Fatal(err)
	}
	waitReal("stopped", state(StateStopped))
	if vmst, _ := drv.Status(ctx, id); vmst.State != hypervisor.StateStopped {
		t.Fatalf("VM %+v after stop", vmst)
	}
	if _, err := svc.StartInstances(ctx, acct, []string{id}); err != nil {
		t.Fatal(err)
	}
	waitReal("running again", state(StateRunning))
	waitConsole()
	if _, err := svc.TerminateInstances(ctx, acct, []string{id}); err != nil {
		t.Fatal(err)
	}
	waitReal("terminated", state(StateTerminated))
	if ids, _ := drv.List(ctx); len(ids) != 0 {
		t.Fatalf("VMs left after terminate: %v", ids)
	}
	if _, err := os.Stat(filepath.Join(dir, "state", "instances", id)); !os.IsNotExist(err) {
		t.Fatalf("instance directory left after terminate: %v", err)
	}
}

type realImage struct{ img Image }

func (r realImage) Get(ctx context.Context, caller, id string) (Image, error) {
	if id != r.img.ID {
		return fakeImages{}.Get(ctx, caller, id)
	}
	return r.img, nil
}

// tapNet hands out ENIs on one real tap (or none, when not root).
type tapNet struct {
	*fakeNet
	tap, ns string
}

func (n *tapNet) CreateENI(ctx context.Context, account, subnet, instanceID string) (ENI, error) {
	e, err := n.fakeNet.CreateENI(ctx, account, subnet, instanceID)
	e.Tap, e.NetNSPath = n.tap, n.ns
	return e, err
}

func ino(t *testing.T, path string) uint64 {
	t.Helper()
	var st syscall.Stat_t
	if err := syscall.Stat(path, &st); err != nil {
		t.Fatal(err)
	}
	return st.Ino
}
