package qcow2_test

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/labcloud/labcloud/blockdev"
	"github.com/labcloud/labcloud/blockdev/blockdevtest"
	"github.com/labcloud/labcloud/blockdev/qcow2"
	"github.com/labcloud/labcloud/hypervisor/qemu"
	"github.com/labcloud/labcloud/internal/errdefs"
)

// TestLiveSnapshot runs PlanLiveSnapshot against a real QEMU process
// (no guest: -machine none) that holds the volume open the way the
// hypervisor driver does, and writes to it through HMP's qemu-io while
// the snapshot is taken.
func TestLiveSnapshot(t *testing.T) {
	// Subtest names become directory names, which must not contain '='
	// or ',' (QEMU's -qmp option syntax).
	t.Run("plain", func(t *testing.T) { testLive(t, false) })
	t.Run("encrypted", func(t *testing.T) { testLive(t, true) })
}

// TestLiveOverlayAfterACrash: labcloudd dies after the freeze, the guest
// goes on writing into the overlay, then the VM stops. The overlay alone
// holds those writes: a second live snapshot must not throw it away, and
// MergeLiveOverlay puts them into the volume.
func TestLiveOverlayAfterACrash(t *testing.T) {
	t.Run("plain", func(t *testing.T) { testLiveCrash(t, false) })
	t.Run("encrypted", func(t *testing.T) { testLiveCrash(t, true) })
}

func testLiveCrash(t *testing.T, encrypted bool) {
	rig := newLiveRig(t, encrypted)
	rig.hmpIO("write -P 0x22 1M 64k")
	_, overlay := rig.freeze(t, encrypted)
	rig.hmpIO("write -P 0x55 5M 64k") // after the freeze: in the overlay only
	if ids, err := rig.b.LiveOverlays(); err != nil || len(ids) != 1 || ids[0] != rig.v.ID {
		t.Fatalf("LiveOverlays = %v, %v; want [%s]", ids, err, rig.v.ID)
	}
	if _, err := rig.b.CreateLiveOverlay(rig.ctx, rig.v.ID); !errdefs.Is(err, errdefs.ClassConflict) {
		t.Fatalf("a second live overlay over an unmerged one: %v, want Conflict", err)
	}
	// The VM goes away (stopped, or QEMU died) before anyone merged.
	rig.mon.Run(rig.ctx, "quit", nil, nil)
	rig.qemu.Wait()

	if err := rig.b.MergeLiveOverlay(rig.ctx, rig.v.ID); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(overlay); !os.IsNotExist(err) {
		t.Fatalf("the overlay is still there after the merge: %v", err)
	}
	if ids, _ := rig.b.LiveOverlays(); len(ids) != 0 {
		t.Fatalf("LiveOverlays after the merge = %v", ids)
	}
	if r, err := rig.b.Check(rig.ctx, rig.v.ID); err != nil || !r.OK {
		t.Fatalf("volume check: %+v %v", r, err)
	}
	if err := blockdevtest.QemuIO(t, rig.v, "read -P 0x11 0 1M", "read -P 0x22 1M 64k", "read -P 0x55 5M 64k"); err != nil {
		t.Fatalf("the volume lacks what the guest wrote before or after the freeze: %v", err)
	}
	// Merging again is a no-op; a new live snapshot can start.
	if err := rig.b.MergeLiveOverlay(rig.ctx, rig.v.ID); err != nil {
		t.Fatal(err)
	}
	if _, err := rig.b.CreateLiveOverlay(rig.ctx, rig.v.ID); err != nil {
		t.Fatal(err)
	}
}

// liveRig is a volume held open by a real QEMU process (no guest:
// -machine none) the way the hypervisor driver holds it, with HMP's
// qemu-io standing in for the guest.
type liveRig struct {
	b     *qcow2.Backend
	v     blockdev.Volume
	mon   *qemu.Monitor
	qemu  *exec.Cmd
	ctx   context.Context
	hmpIO func(c string)
}

func newLiveRig(t *testing.T, encrypted bool) liveRig {
	if _, err := exec.LookPath(qemu.DefaultBinary); err != nil {
		t.Skipf("%s not installed", qemu.DefaultBinary)
	}
	dir := t.TempDir()
	b := newBackendIn(t, dir)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	t.Cleanup(cancel)
	v, err := b.CreateVolume(ctx, blockdev.CreateVolumeInput{ID: "vol-src", SizeBytes: 64 << 20, Encrypted: encrypted})
	if err != nil {
		t.Fatal(err)
	}
	if err := blockdevtest.QemuIO(t, v, "write -P 0x11 0 4M"); err != nil {
		t.Fatal(err)
	}
	// The VM's volume is a clone of a snapshot, so QEMU opens a backing
	// chain (with a key at each layer when encrypted).
	if _, err := b.CreateSnapshot(ctx, blockdev.CreateSnapshotInput{ID: "snap-base", VolumeID: v.ID}); err != nil {
		t.Fatal(err)
	}
	if v, err = b.CreateVolume(ctx, blockdev.CreateVolumeInput{ID: "vol-live", SnapshotID: "snap-base"}); err != nil {
		t.Fatal(err)
	}
	if len(v.Chain) != 1 || v.Encrypted != encrypted {
		t.Fatalf("clone %+v, want one backing layer, encrypted %v", v, encrypted)
	}
	sock := filepath.Join(dir, "qmp.sock")
	cmd := exec.Command(qemu.DefaultBinary, "-machine", "none", "-nodefaults", "-display", "none",
		"-qmp", "unix:"+sock+",server=on,wait=off")
	if encrypted {
		cmd.Args = append(cmd.Args, "-object", "secret,id=vsec,file="+v.KeyFile+",format=raw")
	}
	var stderr strings.Builder
	cmd.Stderr, cmd.Stdout = &stderr, &stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cmd.Process.Kill(); cmd.Wait() })
	var mon *qemu.Monitor
	for deadline := time.Now().Add(20 * time.Second); ; {
		if mon, err = qemu.Dial(ctx, sock); err == nil {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("QMP: %v (qemu: %s)", err, stderr.String())
		}
		time.Sleep(50 * time.Millisecond)
	}
	t.Cleanup(func() { mon.Close() })
	// The driver's node graph: file node, format node (with the chain).
	if err := mon.Run(ctx, "blockdev-add", map[string]any{"driver": "file", "node-name": "file-vol-live", "filename": v.Path}, nil); err != nil {
		t.Fatal(err)
	}
	if err := mon.Run(ctx, "blockdev-add", qcow2.FormatNodeOptions(v, "fmt-vol-live", "file-vol-live", "vsec"), nil); err != nil {
		t.Fatal(err)
	}
	// The guest's device sits on a throttle node, as in hypervisor/qemu:
	// blockdev-snapshot moves that parent onto the overlay.
	if err := mon.Run(ctx, "object-add", map[string]any{"qom-type": "throttle-group", "id": "tg-vol-live"}, nil); err != nil {
		t.Fatal(err)
	}
	if err := mon.Run(ctx, "blockdev-add", map[string]any{"driver": "throttle", "node-name": "thr-vol-live",
		"throttle-group": "tg-vol-live", "file": "fmt-vol-live"}, nil); err != nil {
		t.Fatal(err)
	}
	hmpIO := func(c string) {
		t.Helper()
		var out string
		if err := mon.Run(ctx, "human-monitor-command", map[string]any{"command-line": "qemu-io thr-vol-live \"" + c + "\""}, &out); err != nil {
			t.Fatal(err)
		}
		if strings.Contains(out, "fail") || strings.Contains(out, "rror") || strings.Contains(out, "ermission") {
			t.Fatalf("qemu-io %s: %s", c, out)
		}
	}
	return liveRig{b: b, v: v, mon: mon, qemu: cmd, ctx: ctx, hmpIO: hmpIO}
}

// freeze runs steps 1 and 2 of LiveSnapshotPlan.
func (r liveRig) freeze(t *testing.T, encrypted bool) (qcow2.LiveSnapshotPlan, string) {
	t.Helper()
	overlay, err := r.b.CreateLiveOverlay(r.ctx, r.v.ID)
	if err != nil {
		t.Fatal(err)
	}
	in := qcow2.LiveSnapshotInput{FormatNode: "fmt-vol-live", RootNode: "thr-vol-live", OverlayPath: overlay, OverlayNode: "snapov-vol-live", JobID: "commit-vol-live"}
	if encrypted {
		in.SecretID = "vsec"
	}
	plan := qcow2.PlanLiveSnapshot(in)
	for _, c := range plan.Freeze {
		if err := r.mon.Run(r.ctx, c.Execute, c.Arguments, nil); err != nil {
			t.Fatalf("%s: %v", c.Execute, err)
		}
	}
	return plan, overlay
}

func testLive(t *testing.T, encrypted bool) {
	rig := newLiveRig(t, encrypted)
	b, v, mon, ctx, hmpIO := rig.b, rig.v, rig.mon, rig.ctx, rig.hmpIO
	hmpIO("write -P 0x22 1M 64k")
	plan, overlay := rig.freeze(t, encrypted)
	// The guest writes while the snapshot is copied: the snapshot must
	// not see it, the volume must keep it.
	hmpIO("write -P 0x33 2M 64k")
	s, err := b.CreateSnapshot(ctx, blockdev.CreateSnapshotInput{ID: "snap-live", VolumeID: v.ID})
	if err != nil {
		t.Fatal(err)
	}
	hmpIO("write -P 0x44 3M 64k")
	events, unsub := mon.Subscribe()
	defer unsub()
	if err := mon.Run(ctx, plan.Commit.Execute, plan.Commit.Arguments, nil); err != nil {
		t.Fatalf("block-commit: %v", err)
	}
	if _, err := qemu.WaitEvent(ctx, events, func(e qemu.Event) bool { return e.Event == "BLOCK_JOB_READY" }); err != nil {
		t.Fatal(err)
	}
	if err := mon.Run(ctx, plan.Complete.Execute, plan.Complete.Arguments, nil); err != nil {
		t.Fatal(err)
	}
	if _, err := qemu.WaitEvent(ctx, events, func(e qemu.Event) bool { return e.Event == "BLOCK_JOB_COMPLETED" }); err != nil {
		t.Fatal(err)
	}
	for _, c := range plan.Cleanup {
		if err := mon.Run(ctx, c.Execute, c.Arguments, nil); err != nil {
			t.Fatalf("%s: %v", c.Execute, err)
		}
	}
	os.Remove(overlay)
	// The VM's node is the volume again and sees every write.
	hmpIO("read -P 0x22 1M 64k")
	hmpIO("read -P 0x33 2M 64k")
	hmpIO("read -P 0x44 3M 64k")
	for _, n := range []string{"thr-vol-live", "fmt-vol-live", "file-vol-live"} {
		if err := mon.Run(ctx, "blockdev-del", map[string]any{"node-name": n}, nil); err != nil {
			t.Fatalf("blockdev-del %s: %v", n, err)
		}
	}
	if r, err := b.Check(ctx, v.ID); err != nil || !r.OK {
		t.Fatalf("volume check: %+v %v", r, err)
	}
	if err := blockdevtest.QemuIO(t, v, "read -P 0x33 2M 64k", "read -P 0x44 3M 64k"); err != nil {
		t.Fatalf("volume lost writes made during the snapshot: %v", err)
	}
	r, err := b.CreateVolume(ctx, blockdev.CreateVolumeInput{ID: "vol-r", SnapshotID: s.ID})
	if err != nil {
		t.Fatal(err)
	}
	if err := blockdevtest.QemuIO(t, r, "read -P 0x11 0 1M", "read -P 0x22 1M 64k", "read -P 0x11 2M 64k", "read -P 0x11 3M 64k"); err != nil {
		t.Fatalf("snapshot is not the state at freeze time: %v", err)
	}
}
