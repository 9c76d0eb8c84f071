package e2e

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"
)

// kill -9 labcloudd in the middle of a snapshot of a volume a running VM
// writes: after the freeze, while the snapshot is copied, so the guest's
// writes go to the live-snapshot overlay. The VM keeps running and
// writing; after the restart its writes since the freeze are merged into
// the volume (none lost), the volume passes qemu-img check, the snapshot
// is completed or error, and a new live snapshot works.
func TestLiveSnapshotSurvivesDaemonKill(t *testing.T) {
	lookTool(t, "qemu-img")
	qemuIO := lookTool(t, "qemu-io")
	d, e, ami := startVMLab(t)
	stateDir := d.stateDir
	keyPath := e.keyFile("live")
	var launched struct {
		Instances []struct {
			InstanceId string
			Placement  struct{ AvailabilityZone string }
		}
	}
	e.ok(&launched, "labcloud", "ec2", "run-instances", "--image-id", ami, "--instance-type", "t3.micro", "--key-name", "live")
	id, zone := launched.Instances[0].InstanceId, launched.Instances[0].Placement.AvailabilityZone

	// A volume with enough data that copying it for the snapshot takes
	// a while: the window to kill labcloudd in.
	var v volumeJSON
	e.ok(&v, "labcloud", "ec2", "create-volume", "--availability-zone", zone, "--size", "2")
	volFile := filepath.Join(stateDir, "volumes", "volumes", v.VolumeId+".qcow2")
	if out, err := exec.Command(qemuIO, "-f", "qcow2", "-c", "write -P 0x11 0 1536M", volFile).CombinedOutput(); err != nil {
		t.Fatalf("writing the volume: %v: %s", err, out)
	}
	in := e.waitState(id, "running", 3*time.Minute)
	ns := netPrefix(stateDir) + "-" + in.VpcId
	ssh := func(cmd string, within time.Duration) string {
		t.Helper()
		return sshRun(t, ns, keyPath, in.PrivateIpAddress, cmd, within)
	}
	ssh("true", 3*time.Minute)
	e.ok(nil, "labcloud", "ec2", "attach-volume", "--volume-id", v.VolumeId, "--instance-id", id, "--device", "/dev/sdf")
	e.volumeState(v.VolumeId, "in-use", "attached", time.Minute)
	ssh(diskOf(v.VolumeId)+`echo before-freeze | dd of=/dev/$d bs=512 seek=4194000 count=1 conv=sync 2>/dev/null && sync`, time.Minute)

	var s snapshotJSON
	e.ok(&s, "labcloud", "ec2", "create-snapshot", "--volume-id", v.VolumeId)
	overlay := filepath.Join(stateDir, "volumes", "volumes", v.VolumeId+".live-overlay.qcow2")
	copying := filepath.Join(stateDir, "volumes", "snapshots", s.SnapshotId+".qcow2.tmp")
	for deadline := time.Now().Add(20 * time.Second); time.Now().Before(deadline); time.Sleep(5 * time.Millisecond) {
		if _, err := os.Stat(copying); err == nil {
			break
		}
	}
	// The whole process group: labcloudd and its qemu-img; QEMU runs in
	// a session of its own and survives.
	syscall.Kill(-d.cmd.Process.Pid, syscall.SIGKILL)
	<-d.exited
	if _, err := os.Stat(overlay); err != nil {
		t.Fatalf("labcloudd was killed outside the freeze (the overlay %s is not there: %v); the copy of 1.5 GiB ended too fast to hit", overlay, err)
	}

	// The guest goes on writing: into the overlay only, for now.
	ssh(diskOf(v.VolumeId)+`echo after-freeze | dd of=/dev/$d bs=512 seek=4194100 count=1 conv=sync 2>/dev/null && sync`, time.Minute)

	d2 := startDaemon(t, stateDir)
	e = newAWSEnv(t, d2)
	for deadline := time.Now().Add(2 * time.Minute); ; time.Sleep(200 * time.Millisecond) {
		if _, err := os.Stat(overlay); os.IsNotExist(err) {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the overlay is still there 2 minutes after the restart\n%s", d2.log())
		}
	}
	if !strings.Contains(d2.log(), "merged the overlay of a live snapshot that a restart interrupted") {
		t.Fatalf("the restarted daemon did not merge the overlay in the running VM\n%s", d2.log())
	}
	var ds struct{ Snapshots []snapshotJSON }
	e.ok(&ds, "labcloud", "ec2", "describe-snapshots", "--snapshot-ids", s.SnapshotId)
	t.Logf("after the restart the snapshot is %s", ds.Snapshots[0].State)
	if st := ds.Snapshots[0].State; st != "completed" && st != "error" {
		t.Fatalf("snapshot state after the restart: %s, want completed or error", st)
	}
	// The guest still reads both, and so does the volume file once the
	// VM lets go of it.
	if got := ssh(diskOf(v.VolumeId)+`dd if=/dev/$d bs=512 skip=4194100 count=1 2>/dev/null | head -c 12`, time.Minute); !strings.HasSuffix(got, "after-freeze") {
		t.Fatalf("the guest reads %q after the merge", got)
	}
	e.ok(nil, "labcloud", "ec2", "detach-volume", "--volume-id", v.VolumeId)
	e.volumeState(v.VolumeId, "available", "", 2*time.Minute)
	if out, err := exec.Command("qemu-img", "check", "-f", "qcow2", volFile).CombinedOutput(); err != nil {
		t.Fatalf("qemu-img check of the volume: %v: %s", err, out)
	}
	for _, c := range []struct {
		sector int64
		text   string
	}{{4194000, "before-freeze"}, {4194100, "after-freeze"}} {
		out, err := exec.Command(qemuIO, "-r", "-f", "qcow2", "-c", fmt.Sprintf("read -v %d 16", c.sector*512), volFile).CombinedOutput()
		if err != nil {
			t.Fatalf("reading the volume: %v: %s", err, out)
		}
		if !strings.Contains(string(out), fmt.Sprintf("% x", c.text)) {
			t.Fatalf("sector %d of the volume holds %q, want %q: a write was lost", c.sector, out, c.text)
		}
	}

	// Live snapshots work again.
	e.ok(nil, "labcloud", "ec2", "attach-volume", "--volume-id", v.VolumeId, "--instance-id", id, "--device", "/dev/sdg")
	e.volumeState(v.VolumeId, "in-use", "attached", time.Minute)
	var s2 snapshotJSON
	e.ok(&s2, "labcloud", "ec2", "create-snapshot", "--volume-id", v.VolumeId)
	e.ok(nil, "labcloud", "ec2", "wait", "snapshot-completed", "--snapshot-ids", s2.SnapshotId)
	if _, err := os.Stat(overlay); !os.IsNotExist(err) {
		t.Fatalf("a live snapshot left its overlay behind: %v", err)
	}
	e.ok(nil, "labcloud", "ec2", "terminate-instances", "--instance-ids", id)
	e.waitState(id, "terminated", 3*time.Minute)
}
