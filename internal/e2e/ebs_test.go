package e2e

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"
)

type volumeJSON struct {
	VolumeId, State, VolumeType, AvailabilityZone, SnapshotId string
	Size, Iops, Throughput                                    int
	Encrypted                                                 bool
	Tags                                                      []struct{ Key, Value string }
}

type snapshotJSON struct {
	SnapshotId, VolumeId, State, Progress, OwnerId, Description string
	VolumeSize                                                  int
	Encrypted                                                   bool
}

// EBS through the aws CLI against a real labcloudd (no VMs): volumes,
// modifications, snapshots, volumes from snapshots and the error codes a
// student meets, with the data checked on the block store's files.
func TestEBSWithTheAWSCLI(t *testing.T) {
	lookTool(t, "qemu-img")
	qemuIO := lookTool(t, "qemu-io")
	d := startDaemon(t, "")
	e := newAWSEnv(t, d)

	var v volumeJSON
	e.ok(&v, "labcloud", "ec2", "create-volume", "--availability-zone", "lab-1a", "--size", "1", "--volume-type", "gp3",
		"--tag-specifications", "ResourceType=volume,Tags=[{Key=course,Value=storage101}]")
	if v.State != "available" || v.Size != 1 || v.Iops != 3000 || v.Throughput != 125 || len(v.Tags) != 1 {
		t.Fatalf("create-volume: %+v", v)
	}
	// Write data into the volume as a VM would (the file is the
	// backing store labcloudd reports to the hypervisor).
	volFile := filepath.Join(d.stateDir, "volumes", "volumes", v.VolumeId+".qcow2")
	if out, err := exec.Command(qemuIO, "-f", "qcow2", "-c", "write -P 0x11 0 4M", volFile).CombinedOutput(); err != nil {
		t.Fatalf("writing the volume: %v: %s", err, out)
	}

	var dv struct{ Volumes []volumeJSON }
	e.ok(&dv, "labcloud", "ec2", "describe-volumes", "--filters", "Name=tag:course,Values=storage101", "Name=status,Values=available")
	if len(dv.Volumes) != 1 || dv.Volumes[0].VolumeId != v.VolumeId {
		t.Fatalf("describe-volumes by tag: %+v", dv)
	}
	e.ok(&dv, "labcloud", "ec2", "describe-volumes", "--filters", "Name=availability-zone,Values=lab-1b")
	if len(dv.Volumes) != 0 {
		t.Fatalf("describe-volumes in lab-1b: %+v", dv)
	}

	var mod struct {
		VolumeModification struct {
			ModificationState, TargetVolumeType string
			TargetSize, TargetIops              int
		}
	}
	e.ok(&mod, "labcloud", "ec2", "modify-volume", "--volume-id", v.VolumeId, "--size", "4", "--volume-type", "io1", "--iops", "100")
	if m := mod.VolumeModification; m.ModificationState != "completed" || m.TargetSize != 4 || m.TargetVolumeType != "io1" || m.TargetIops != 100 {
		t.Fatalf("modify-volume: %+v", m)
	}
	var mods struct{ VolumesModifications []struct{ VolumeId string } }
	e.ok(&mods, "labcloud", "ec2", "describe-volumes-modifications", "--volume-ids", v.VolumeId)
	if len(mods.VolumesModifications) != 1 {
		t.Fatalf("describe-volumes-modifications: %+v", mods)
	}

	var s1 snapshotJSON
	e.ok(&s1, "labcloud", "ec2", "create-snapshot", "--volume-id", v.VolumeId, "--description", "before")
	e.ok(nil, "labcloud", "ec2", "wait", "snapshot-completed", "--snapshot-ids", s1.SnapshotId)
	// Change 64 KiB, snapshot again: the second stores about that much.
	if out, err := exec.Command(qemuIO, "-f", "qcow2", "-c", "write -P 0x22 0 64k", volFile).CombinedOutput(); err != nil {
		t.Fatalf("writing the volume: %v: %s", err, out)
	}
	var s2 snapshotJSON
	e.ok(&s2, "labcloud", "ec2", "create-snapshot", "--volume-id", v.VolumeId, "--description", "after")
	e.ok(nil, "labcloud", "ec2", "wait", "snapshot-completed", "--snapshot-ids", s2.SnapshotId)
	size := func(id string) int64 {
		st, err := os.Stat(filepath.Join(d.stateDir, "volumes", "snapshots", id+".qcow2"))
		if err != nil {
			t.Fatal(err)
		}
		return st.Size()
	}
	t.Logf("snapshot sizes: first %d bytes, second (64 KiB changed) %d bytes", size(s1.SnapshotId), size(s2.SnapshotId))
	if size(s2.SnapshotId) >= size(s1.SnapshotId) {
		t.Errorf("second snapshot is not smaller than the first")
	}
	var ds struct{ Snapshots []snapshotJSON }
	e.ok(&ds, "labcloud", "ec2", "describe-snapshots", "--owner-ids", "self", "--filters", "Name=volume-id,Values="+v.VolumeId)
	if len(ds.Snapshots) != 2 || ds.Snapshots[0].Progress != "100%" || ds.Snapshots[0].VolumeSize != 4 {
		t.Fatalf("describe-snapshots: %+v", ds)
	}

	// Delete the first snapshot; a volume from the second still has all
	// of the data.
	e.ok(nil, "labcloud", "ec2", "delete-snapshot", "--snapshot-id", s1.SnapshotId)
	var r volumeJSON
	start := time.Now()
	e.ok(&r, "labcloud", "ec2", "create-volume", "--availability-zone", "lab-1b", "--snapshot-id", s2.SnapshotId)
	t.Logf("create-volume --snapshot-id took %v (CLI round trip included)", time.Since(start))
	if r.Size != 4 || r.SnapshotId != s2.SnapshotId || r.State != "available" {
		t.Fatalf("volume from snapshot: %+v", r)
	}
	rFile := filepath.Join(d.stateDir, "volumes", "volumes", r.VolumeId+".qcow2")
	if out, err := exec.Command(qemuIO, "-r", "-f", "qcow2", "-c", "read -P 0x22 0 64k", "-c", "read -P 0x11 64k 4032k", rFile).CombinedOutput(); err != nil || strings.Contains(string(out), "fail") {
		t.Fatalf("volume from the second snapshot after deleting the first: %v: %s", err, out)
	}
	var cp struct{ SnapshotId string }
	e.ok(&cp, "labcloud", "ec2", "copy-snapshot", "--source-region", "lab-1", "--source-snapshot-id", s2.SnapshotId)
	e.ok(nil, "labcloud", "ec2", "wait", "snapshot-completed", "--snapshot-ids", cp.SnapshotId)

	// The errors a student meets.
	e.fails("InvalidZone.NotFound", "labcloud", "ec2", "create-volume", "--availability-zone", "us-east-1a", "--size", "1")
	e.fails("InvalidParameterValue", "labcloud", "ec2", "create-volume", "--availability-zone", "lab-1a", "--size", "100", "--volume-type", "io1", "--iops", "6000")
	e.fails("MissingParameter", "labcloud", "ec2", "create-volume", "--availability-zone", "lab-1a", "--size", "10", "--volume-type", "io2")
	e.fails("InvalidParameterValue", "labcloud", "ec2", "create-volume", "--availability-zone", "lab-1a", "--size", "10", "--volume-type", "st1")
	e.fails("InvalidParameterValue", "labcloud", "ec2", "modify-volume", "--volume-id", v.VolumeId, "--size", "1")
	e.fails("InvalidVolumeID.Malformed", "labcloud", "ec2", "delete-volume", "--volume-id", "vol-xyz")
	e.fails("InvalidVolume.NotFound", "labcloud", "ec2", "describe-volumes", "--volume-ids", "vol-0123456789abcdef0")
	e.fails("InvalidSnapshot.NotFound", "labcloud", "ec2", "delete-snapshot", "--snapshot-id", s1.SnapshotId)
	e.fails("InvalidSnapshot.NotFound", "labcloud", "ec2", "create-volume", "--availability-zone", "lab-1a", "--snapshot-id", s1.SnapshotId)

	for _, id := range []string{r.VolumeId, v.VolumeId} {
		e.ok(nil, "labcloud", "ec2", "delete-volume", "--volume-id", id)
	}
	e.ok(&dv, "labcloud", "ec2", "describe-volumes")
	if len(dv.Volumes) != 0 {
		t.Fatalf("volumes left after delete: %+v", dv)
	}
	// Snapshots outlive their volume, as on AWS.
	e.ok(&ds, "labcloud", "ec2", "describe-snapshots", "--owner-ids", "self")
	if len(ds.Snapshots) != 2 {
		t.Fatalf("snapshots after deleting the volumes: %+v", ds)
	}
}

// kill -9 of labcloudd (and its qemu-img) during a snapshot: after a
// restart the snapshot is completed or error, never pending or silently
// corrupt, and the volume passes qemu-img check.
func TestEBSKill9DuringSnapshot(t *testing.T) {
	lookTool(t, "qemu-img")
	qemuIO := lookTool(t, "qemu-io")
	d := startDaemon(t, "")
	e := newAWSEnv(t, d)
	var v volumeJSON
	e.ok(&v, "labcloud", "ec2", "create-volume", "--availability-zone", "lab-1a", "--size", "1")
	volFile := filepath.Join(d.stateDir, "volumes", "volumes", v.VolumeId+".qcow2")
	if out, err := exec.Command(qemuIO, "-f", "qcow2", "-c", "write -P 0x11 0 768M", volFile).CombinedOutput(); err != nil {
		t.Fatalf("writing the volume: %v: %s", err, out)
	}
	var s snapshotJSON
	e.ok(&s, "labcloud", "ec2", "create-snapshot", "--volume-id", v.VolumeId)
	// Kill while the copy runs (its temporary file exists), or at once if
	// it is already done.
	tmp := filepath.Join(d.stateDir, "volumes", "snapshots", s.SnapshotId+".qcow2.tmp")
	for deadline := time.Now().Add(10 * time.Second); time.Now().Before(deadline); time.Sleep(5 * time.Millisecond) {
		if _, err := os.Stat(tmp); err == nil {
			break
		}
	}
	_, tmpErr := os.Stat(tmp)
	syscall.Kill(-d.cmd.Process.Pid, syscall.SIGKILL)
	<-d.exited
	t.Logf("killed labcloudd; snapshot copy in progress: %v", tmpErr == nil)

	d2 := startDaemon(t, d.stateDir)
	e2 := newAWSEnv(t, d2)
	var ds struct{ Snapshots []snapshotJSON }
	e2.ok(&ds, "labcloud", "ec2", "describe-snapshots", "--snapshot-ids", s.SnapshotId)
	if len(ds.Snapshots) != 1 {
		t.Fatalf("describe-snapshots after restart: %+v", ds)
	}
	got := ds.Snapshots[0]
	t.Logf("after restart the snapshot is %s", got.State)
	switch got.State {
	case "completed":
		var r volumeJSON
		e2.ok(&r, "labcloud", "ec2", "create-volume", "--availability-zone", "lab-1a", "--snapshot-id", s.SnapshotId)
		rFile := filepath.Join(d.stateDir, "volumes", "volumes", r.VolumeId+".qcow2")
		if out, err := exec.Command(qemuIO, "-r", "-f", "qcow2", "-c", "read -P 0x11 0 768M", rFile).CombinedOutput(); err != nil || strings.Contains(string(out), "fail") {
			t.Fatalf("the completed snapshot does not hold the volume's data: %v: %s", err, out)
		}
	case "error":
		e2.ok(nil, "labcloud", "ec2", "delete-snapshot", "--snapshot-id", s.SnapshotId)
	default:
		t.Fatalf("snapshot %s after restart, want completed or error", got.State)
	}
	if out, err := exec.Command("qemu-img", "check", "-f", "qcow2", volFile).CombinedOutput(); err != nil {
		t.Fatalf("qemu-img check of the volume: %v: %s", err, out)
	}
	// The volume still snapshots fine.
	var s2 snapshotJSON
	e2.ok(&s2, "labcloud", "ec2", "create-snapshot", "--volume-id", v.VolumeId)
	e2.ok(nil, "labcloud", "ec2", "wait", "snapshot-completed", "--snapshot-ids", s2.SnapshotId)
}
