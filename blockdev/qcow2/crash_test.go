package qcow2_test

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"syscall"
	"testing"
	"time"

	"github.com/labcloud/labcloud/blockdev"
	"github.com/labcloud/labcloud/blockdev/blockdevtest"
	"github.com/labcloud/labcloud/blockdev/qcow2"
)

// TestHelperSnapshot is not a test: TestKill9DuringSnapshot runs the test
// binary with LABCLOUD_HELPER_DIR set, and this takes a snapshot there
// until it is killed.
func TestHelperSnapshot(t *testing.T) {
	dir := os.Getenv("LABCLOUD_HELPER_DIR")
	if dir == "" {
		t.Skip("helper process for TestKill9DuringSnapshot")
	}
	b, err := qcow2.New(qcow2.Options{Dir: dir})
	if err != nil {
		t.Fatal(err)
	}
	b.CreateSnapshot(context.Background(), blockdev.CreateSnapshotInput{ID: os.Getenv("LABCLOUD_HELPER_SNAP"), VolumeID: "vol-a"})
}

// TestKill9DuringSnapshot kills (SIGKILL, whole process group: labcloudd
// and its qemu-img) a process taking a snapshot at several moments, then
// recovers: the volume passes qemu-img check, the snapshot is completed
// or error, and a completed one restores the volume's content.
func TestKill9DuringSnapshot(t *testing.T) {
	dir := t.TempDir()
	b := newBackendIn(t, dir)
	ctx := context.Background()
	v, err := b.CreateVolume(ctx, blockdev.CreateVolumeInput{ID: "vol-a", SizeBytes: 256 << 20})
	if err != nil {
		t.Fatal(err)
	}
	if err := blockdevtest.QemuIO(t, v, "write -P 0x11 0 128M"); err != nil {
		t.Fatal(err)
	}
	seen := map[blockdev.SnapshotState]int{}
	// Kill when the pending metadata appears, when the temporary file
	// appears, and after a growing delay, so both outcomes happen.
	for i, when := range []string{"meta", "tmp", "10ms", "200ms", "800ms", "3s"} {
		id := "snap-" + when
		cmd := exec.Command(os.Args[0], "-test.run=^TestHelperSnapshot$")
		cmd.Env = append(os.Environ(), "LABCLOUD_HELPER_DIR="+dir, "LABCLOUD_HELPER_SNAP="+id)
		cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		start := time.Now()
		deadline := start.Add(30 * time.Second)
		for time.Now().Before(deadline) {
			var hit bool
			switch when {
			case "meta":
				_, err := os.Stat(filepath.Join(dir, "snapshots", id+".json"))
				hit = err == nil
			case "tmp":
				_, err := os.Stat(filepath.Join(dir, "snapshots", id+".qcow2.tmp"))
				hit = err == nil
			default:
				d, _ := time.ParseDuration(when)
				hit = time.Since(start) >= d
			}
			if hit {
				break
			}
			time.Sleep(time.Millisecond) // polling a file system state, not synchronising
		}
		syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
		cmd.Wait()

		b := newBackendIn(t, dir) // a restarted labcloudd
		res, err := b.Recover(ctx)
		if err != nil {
			t.Fatalf("kill %d (%s): Recover: %v", i, when, err)
		}
		if r, err := b.Check(ctx, "vol-a"); err != nil || !r.OK {
			t.Fatalf("kill %d (%s): volume check %+v %v", i, when, r, err)
		}
		s, err := b.Snapshot(ctx, id)
		if err != nil {
			t.Logf("kill %s: snapshot never recorded (%v); recover %+v", when, err, res)
			seen["absent"]++
			continue
		}
		t.Logf("kill %s: snapshot %s (%s); recover %+v", when, s.State, s.Reason, res)
		seen[s.State]++
		switch s.State {
		case blockdev.SnapshotCompleted:
			r, err := b.CreateVolume(ctx, blockdev.CreateVolumeInput{ID: "vol-r" + when, SnapshotID: id})
			if err != nil {
				t.Fatal(err)
			}
			if err := blockdevtest.QemuIO(t, r, "read -P 0x11 0 128M", "read -P 0 128M 128M"); err != nil {
				t.Fatalf("kill %s: completed snapshot restores wrong data: %v", when, err)
			}
		case blockdev.SnapshotError:
			if err := b.DeleteSnapshot(ctx, id); err != nil {
				t.Fatalf("deleting the failed snapshot: %v", err)
			}
		default:
			t.Fatalf("kill %s: snapshot %s after Recover, want completed or error", when, s.State)
		}
		if _, err := os.Stat(filepath.Join(dir, "snapshots", id+".qcow2.tmp")); err == nil {
			t.Errorf("kill %s: temporary file left after Recover", when)
		}
	}
	t.Logf("outcomes: %v", seen)
	if seen[blockdev.SnapshotError] == 0 {
		t.Errorf("no kill landed during a snapshot (outcomes %v); the test did not test anything", seen)
	}
}

func newBackendIn(t testing.TB, dir string) *qcow2.Backend {
	needQemuImg(t)
	b, err := qcow2.New(qcow2.Options{Dir: dir})
	if err != nil {
		t.Fatal(err)
	}
	return b
}
