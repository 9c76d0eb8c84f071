package volumes_test

import (
	"bytes"
	"context"
	"errors"
	"os/exec"
	"testing"
	"time"

	"github.com/labcloud/labcloud/blockdev/blockdevtest"
	"github.com/labcloud/labcloud/blockdev/qcow2"
	"github.com/labcloud/labcloud/internal/errdefs"
	"github.com/labcloud/labcloud/internal/store/storetest"
	"github.com/labcloud/labcloud/internal/volumes"
)

const acct = "123456789012"

func newService(t *testing.T) *volumes.Service {
	t.Helper()
	for _, bin := range []string{"qemu-img", "qemu-io"} {
		if _, err := exec.LookPath(bin); err != nil {
			t.Skipf("%s not installed (qemu-utils)", bin)
		}
	}
	be, err := qcow2.New(qcow2.Options{Dir: t.TempDir()})
	if err != nil {
		t.Fatal(err)
	}
	s := volumes.New(volumes.Options{
		Store: storetest.NewEmbedded(t), Backend: be, Region: "lab-1",
		Zones: func(context.Context) ([]string, error) { return []string{"lab-1a", "lab-1b"}, nil },
	})
	t.Cleanup(s.Close)
	if err := s.Recover(context.Background()); err != nil {
		t.Fatal(err)
	}
	return s
}

func wantCode(t *testing.T, err error, code string) {
	t.Helper()
	var e *errdefs.Error
	if !errors.As(err, &e) || e.Code != code {
		t.Fatalf("error %v, want code %s", err, code)
	}
}

func ptr[T any](v T) *T { return &v }

// waitSnapshot polls a snapshot until it is no longer pending.
func waitSnapshot(t *testing.T, s *volumes.Service, id string) volumes.Snapshot {
	t.Helper()
	deadline := time.Now().Add(time.Minute)
	for {
		sn, err := s.GetSnapshot(context.Background(), acct, id)
		if err != nil {
			t.Fatal(err)
		}
		if sn.State != "pending" {
			return sn
		}
		if time.Now().After(deadline) {
			t.Fatalf("snapshot %s still pending after a minute", id)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func TestVolumeLifecycle(t *testing.T) {
	s := newService(t)
	ctx := context.Background()
	v, err := s.Create(ctx, acct, volumes.CreateInput{AvailabilityZone: "lab-1a", SizeGiB: ptr(1), Type: volumes.GP3})
	if err != nil {
		t.Fatal(err)
	}
	if v.State != volumes.StateAvailable || v.IOPS != 3000 || v.Throughput != 125 || len(v.ID) != 21 {
		t.Fatalf("volume %+v", v)
	}
	// Errors a client expects.
	_, err = s.Create(ctx, acct, volumes.CreateInput{AvailabilityZone: "lab-9z", SizeGiB: ptr(1)})
	wantCode(t, err, "InvalidZone.NotFound")
	_, err = s.Create(ctx, acct, volumes.CreateInput{AvailabilityZone: "lab-1a", SizeGiB: ptr(10), Type: volumes.IO1})
	wantCode(t, err, "MissingParameter")
	_, err = s.Create(ctx, acct, volumes.CreateInput{AvailabilityZone: "lab-1a", SnapshotID: "snap-0123456789abcdef0"})
	wantCode(t, err, "InvalidSnapshot.NotFound")
	_, err = s.Get(ctx, acct, "vol-nothex")
	wantCode(t, err, "InvalidVolumeID.Malformed")
	_, err = s.Get(ctx, acct, "vol-0123456789abcdef0")
	wantCode(t, err, "InvalidVolume.NotFound")
	if _, err := s.Get(ctx, "999999999999", v.ID); err == nil {
		t.Fatal("another account sees the volume")
	}

	// Attach state machine (the instance layer's part).
	_, err = s.Attach(ctx, acct, v.ID, "i-0123456789abcdef0", "lab-1b", "/dev/sdf")
	wantCode(t, err, "InvalidVolume.ZoneMismatch")
	_, err = s.Attach(ctx, acct, v.ID, "i-0123456789abcdef0", "lab-1a", "/dev/sda1")
	wantCode(t, err, "InvalidParameterValue")
	if v, err = s.Attach(ctx, acct, v.ID, "i-0123456789abcdef0", "lab-1a", "/dev/sdf"); err != nil || v.State != volumes.StateInUse {
		t.Fatalf("Attach: %+v %v", v, err)
	}
	_, err = s.Attach(ctx, acct, v.ID, "i-0123456789abcdef1", "lab-1a", "/dev/sdg")
	wantCode(t, err, "VolumeInUse")
	if v, err = s.AttachDone(ctx, acct, v.ID, nil); err != nil || v.Attachments[0].State != volumes.AttachAttached {
		t.Fatalf("AttachDone: %+v %v", v, err)
	}
	wantCode(t, s.Delete(ctx, acct, v.ID), "VolumeInUse")
	_, err = s.Modify(ctx, acct, v.ID, volumes.ModifyInput{SizeGiB: ptr(2)})
	wantCode(t, err, "IncorrectState") // no instance layer wired
	_, err = s.Detach(ctx, acct, v.ID, "i-0123456789abcdef1")
	wantCode(t, err, "InvalidAttachment.NotFound")
	if _, err = s.Detach(ctx, acct, v.ID, ""); err != nil {
		t.Fatal(err)
	}
	if v, err = s.DetachDone(ctx, acct, v.ID); err != nil || v.State != volumes.StateAvailable {
		t.Fatalf("DetachDone: %+v %v", v, err)
	}

	// Modify: grow, change type; shrink refused.
	m, err := s.Modify(ctx, acct, v.ID, volumes.ModifyInput{SizeGiB: ptr(4), Type: ptr(volumes.IO1), IOPS: ptr(200)})
	if err != nil || m.State != "completed" || m.TargetSize != 4 || m.OriginalSize != 1 || m.TargetVolumeType != volumes.IO1 {
		t.Fatalf("Modify: %+v %v", m, err)
	}
	_, err = s.Modify(ctx, acct, v.ID, volumes.ModifyInput{SizeGiB: ptr(2)})
	wantCode(t, err, "InvalidParameterValue")
	_, err = s.Modify(ctx, acct, v.ID, volumes.ModifyInput{IOPS: ptr(201)}) // 50:1 on 4 GiB
	wantCode(t, err, "InvalidParameterValue")
	bv, err := s.Backend().Volume(ctx, v.ID)
	if err != nil || bv.SizeBytes != 4<<30 {
		t.Fatalf("backend volume %+v %v, want 4 GiB", bv, err)
	}
	mods, err := s.Modifications(ctx, acct)
	if err != nil || len(mods) != 1 {
		t.Fatalf("Modifications: %+v %v", mods, err)
	}
	if err := s.Delete(ctx, acct, v.ID); err != nil {
		t.Fatal(err)
	}
	_, err = s.Get(ctx, acct, v.ID)
	wantCode(t, err, "InvalidVolume.NotFound")
	if _, err := s.Backend().Volume(ctx, v.ID); !errdefs.Is(err, errdefs.ClassNotFound) {
		t.Fatalf("backend still has the volume: %v", err)
	}
}

func TestSnapshots(t *testing.T) {
	s := newService(t)
	ctx := context.Background()
	v, err := s.Create(ctx, acct, volumes.CreateInput{AvailabilityZone: "lab-1a", SizeGiB: ptr(1), Encrypted: ptr(true)})
	if err != nil {
		t.Fatal(err)
	}
	bv, _ := s.Backend().Volume(ctx, v.ID)
	if err := blockdevtest.QemuIO(t, bv, "write -P 0x11 0 8M"); err != nil {
		t.Fatal(err)
	}
	s1, err := s.CreateSnapshot(ctx, acct, v.ID, "first")
	if err != nil || s1.State != "pending" {
		t.Fatalf("CreateSnapshot: %+v %v", s1, err)
	}
	s1 = waitSnapshot(t, s, s1.ID)
	if s1.State != "completed" || s1.Progress != 100 || !s1.Encrypted || s1.VolumeSize != 1 {
		t.Fatalf("snapshot %+v", s1)
	}
	if err := blockdevtest.QemuIO(t, bv, "write -P 0x22 0 64k"); err != nil {
		t.Fatal(err)
	}
	s2, _ := s.CreateSnapshot(ctx, acct, v.ID, "second")
	s2 = waitSnapshot(t, s, s2.ID)
	if s2.StoredBytes >= s1.StoredBytes {
		t.Errorf("second snapshot stores %d bytes, first %d: not incremental", s2.StoredBytes, s1.StoredBytes)
	}
	cp, err := s.CopySnapshot(ctx, acct, "lab-1", s2.ID, "", false)
	if err != nil {
		t.Fatal(err)
	}
	_, err = s.CopySnapshot(ctx, acct, "other-1", s2.ID, "", false)
	wantCode(t, err, "InvalidParameterValue")
	if err := s.DeleteSnapshot(ctx, acct, s2.ID); err != nil {
		t.Fatal(err)
	}
	_, err = s.GetSnapshot(ctx, acct, s2.ID)
	wantCode(t, err, "InvalidSnapshot.NotFound")
	// A volume from the copy reads the second snapshot's content; one
	// from the first reads the first's; both are encrypted.
	_, err = s.Create(ctx, acct, volumes.CreateInput{AvailabilityZone: "lab-1a", SnapshotID: cp.ID, Encrypted: ptr(false)})
	wantCode(t, err, "InvalidParameterCombination")
	_, err = s.Create(ctx, acct, volumes.CreateInput{AvailabilityZone: "lab-1a", SnapshotID: cp.ID, SizeGiB: ptr(0)})
	wantCode(t, err, "InvalidParameterValue")
	for _, tc := range []struct {
		snap string
		read string
	}{{waitSnapshot(t, s, cp.ID).ID, "read -P 0x22 0 64k"}, {s1.ID, "read -P 0x11 0 64k"}} {
		r, err := s.Create(ctx, acct, volumes.CreateInput{AvailabilityZone: "lab-1b", SnapshotID: tc.snap, Type: volumes.GP2})
		if err != nil || r.SizeGiB != 1 || !r.Encrypted || r.SnapshotID != tc.snap {
			t.Fatalf("volume from %s: %+v %v", tc.snap, r, err)
		}
		rb, _ := s.Backend().Volume(ctx, r.ID)
		if err := blockdevtest.QemuIO(t, rb, tc.read, "read -P 0x11 64k 1M"); err != nil {
			t.Fatal(err)
		}
	}
}

// TestRecoverSettlesPending: records a crash left half-way (a pending
// snapshot, a volume creating or deleting) are settled by Recover.
func TestRecoverSettlesPending(t *testing.T) {
	s := newService(t)
	ctx := context.Background()
	v, err := s.Create(ctx, acct, volumes.CreateInput{AvailabilityZone: "lab-1a", SizeGiB: ptr(1)})
	if err != nil {
		t.Fatal(err)
	}
	sn, err := s.CreateSnapshot(ctx, acct, v.ID, "")
	if err != nil {
		t.Fatal(err)
	}
	waitSnapshot(t, s, sn.ID)
	// Simulate the crash: the backend lost the snapshot, the record says
	// pending.
	if err := s.Backend().DeleteSnapshot(ctx, sn.ID); err != nil {
		t.Fatal(err)
	}
	if err := s.ForceState(ctx, acct, sn.ID, "pending"); err != nil {
		t.Fatal(err)
	}
	if err := s.Recover(ctx); err != nil {
		t.Fatal(err)
	}
	got, _ := s.GetSnapshot(ctx, acct, sn.ID)
	if got.State != "error" || got.StateMessage == "" {
		t.Fatalf("after Recover: %+v, want error with a message", got)
	}

	// Volumes: one cut short while creating (its storage exists), one
	// whose storage never came, one cut short while deleting.
	made, _ := s.Create(ctx, acct, volumes.CreateInput{AvailabilityZone: "lab-1a", SizeGiB: ptr(1)})
	lost, _ := s.Create(ctx, acct, volumes.CreateInput{AvailabilityZone: "lab-1a", SizeGiB: ptr(1)})
	gone, _ := s.Create(ctx, acct, volumes.CreateInput{AvailabilityZone: "lab-1a", SizeGiB: ptr(1)})
	if err := s.Backend().DeleteVolume(ctx, lost.ID); err != nil {
		t.Fatal(err)
	}
	for id, st := range map[string]string{made.ID: "creating", lost.ID: "creating", gone.ID: "deleting"} {
		if err := s.ForceVolumeState(ctx, acct, id, st); err != nil {
			t.Fatal(err)
		}
	}
	if err := s.Recover(ctx); err != nil {
		t.Fatal(err)
	}
	if v, _ := s.Get(ctx, acct, made.ID); v.State != volumes.StateAvailable {
		t.Errorf("volume with storage: %s, want available", v.State)
	}
	if v, _ := s.Get(ctx, acct, lost.ID); v.State != volumes.StateError || v.StatusMessage == "" {
		t.Errorf("volume without storage: %+v, want error with a message", v)
	}
	_, err = s.Get(ctx, acct, gone.ID)
	wantCode(t, err, "InvalidVolume.NotFound")
	if _, err := s.Backend().Volume(ctx, gone.ID); !errdefs.Is(err, errdefs.ClassNotFound) {
		t.Errorf("deleted volume's storage still there: %v", err)
	}
}

// TestRootVolumeFromImage: the instance layer's root volumes are
// copy-on-write overlays of an AMI's base disk.
func TestRootVolumeFromImage(t *testing.T) {
	s := newService(t)
	ctx := context.Background()
	base := t.TempDir() + "/ami.qcow2"
	if out, err := exec.Command("qemu-img", "create", "-q", "-f", "qcow2", base, "1G").CombinedOutput(); err != nil {
		t.Fatalf("%v: %s", err, out)
	}
	if out, err := exec.Command("qemu-io", "-f", "qcow2", "-c", "write -P 0x42 0 1M", base).CombinedOutput(); err != nil {
		t.Fatalf("%v: %s", err, out)
	}
	v, err := s.Create(ctx, acct, volumes.CreateInput{AvailabilityZone: "lab-1a", SizeGiB: ptr(8), BaseImage: base})
	if err != nil || v.State != volumes.StateAvailable {
		t.Fatalf("root volume: %+v %v", v, err)
	}
	bv, _ := s.Backend().Volume(ctx, v.ID)
	if len(bv.Chain) != 1 || bv.Chain[0].Path != base || bv.SizeBytes != 8<<30 {
		t.Fatalf("backend volume %+v, want an 8 GiB overlay of %s", bv, base)
	}
	if err := blockdevtest.QemuIO(t, bv, "read -P 0x42 0 1M", "write -P 0x43 0 4k"); err != nil {
		t.Fatal(err)
	}
	if out, err := exec.Command("qemu-io", "-r", "-f", "qcow2", "-c", "read -P 0x42 0 1M", base).CombinedOutput(); err != nil || bytes.Contains(out, []byte("fail")) {
		t.Fatalf("the AMI changed: %v: %s", err, out)
	}
}

// A root volume: made under the id the instance layer recorded (again
// under that id: the same volume), attached at the root device without
// the /dev/sdf–sdp rule, never detached.
func TestRootAttachment(t *testing.T) {
	s := newService(t)
	ctx := context.Background()
	base := t.TempDir() + "/ami.qcow2"
	if out, err := exec.Command("qemu-img", "create", "-q", "-f", "qcow2", base, "1G").CombinedOutput(); err != nil {
		t.Fatalf("%v: %s", err, out)
	}
	id := volumes.NewVolumeID()
	in := volumes.CreateInput{ID: id, AvailabilityZone: "lab-1a", SizeGiB: ptr(2), Type: volumes.GP3, BaseImage: base}
	v, err := s.Create(ctx, acct, in)
	if err != nil || v.ID != id || v.State != volumes.StateAvailable {
		t.Fatalf("Create with an id: %+v %v", v, err)
	}
	if again, err := s.Create(ctx, acct, in); err != nil || again.ID != id {
		t.Fatalf("Create again with the id: %+v %v", again, err)
	}
	if list, _ := s.List(ctx, acct); len(list) != 1 {
		t.Fatalf("%d volumes, want 1", len(list))
	}
	const inst = "i-0123456789abcdef0"
	if _, err := s.AttachRoot(ctx, acct, id, inst, "lab-1b", "/dev/xvda", true); err == nil {
		t.Fatal("AttachRoot across zones worked")
	}
	for range 2 {
		if v, err = s.AttachRoot(ctx, acct, id, inst, "lab-1a", "/dev/xvda", true); err != nil {
			t.Fatal(err)
		}
	}
	if a := v.Attachments; v.State != volumes.StateInUse || len(a) != 1 || a[0].Device != "/dev/xvda" || a[0].State != volumes.AttachAttached || !a[0].Root || !a[0].DeleteOnTermination {
		t.Fatalf("root attachment %+v", v)
	}
	_, err = s.AttachRoot(ctx, acct, id, "i-0123456789abcdef1", "lab-1a", "/dev/xvda", true)
	wantCode(t, err, "VolumeInUse")
	_, err = s.Detach(ctx, acct, id, "")
	wantCode(t, err, "OperationNotPermitted")
	wantCode(t, s.Delete(ctx, acct, id), "VolumeInUse")
	if v, err = s.Release(ctx, acct, id, inst); err != nil || v.State != volumes.StateAvailable {
		t.Fatalf("Release: %+v %v", v, err)
	}
	if err := s.Delete(ctx, acct, id); err != nil {
		t.Fatal(err)
	}
}

func TestClientToken(t *testing.T) {
	s := newService(t)
	ctx := context.Background()
	in := volumes.CreateInput{AvailabilityZone: "lab-1a", SizeGiB: ptr(1), ClientToken: "retry-1"}
	a, err := s.Create(ctx, acct, in)
	if err != nil {
		t.Fatal(err)
	}
	b, err := s.Create(ctx, acct, in)
	if err != nil || b.ID != a.ID {
		t.Fatalf("retry made %+v (%v), want %s again", b, err, a.ID)
	}
	in.SizeGiB = ptr(2)
	_, err = s.Create(ctx, acct, in)
	wantCode(t, err, "IdempotentParameterMismatch")
	if list, _ := s.List(ctx, acct); len(list) != 1 {
		t.Fatalf("%d volumes, want 1", len(list))
	}
}

// recordingVM stands in for the instance layer: it records what the
// volume service asks a running VM to do.
type recordingVM struct {
	snapshots int
	resized   int64
	throttle  volumes.Throttle
}

func (r *recordingVM) Snapshot(ctx context.Context, v volumes.Volume, take func(context.Context) error) error {
	r.snapshots++
	return take(ctx)
}

func (r *recordingVM) Resize(_ context.Context, _ volumes.Volume, size int64) error {
	r.resized = size
	return nil
}

func (r *recordingVM) Throttle(_ context.Context, _ volumes.Volume, t volumes.Throttle) error {
	r.throttle = t
	return nil
}

// TestAttachedVolumeGoesThroughTheVM: snapshots, growth and type changes
// of an attached volume are handed to the instance layer's hooks.
func TestAttachedVolumeGoesThroughTheVM(t *testing.T) {
	s := newService(t)
	vm := &recordingVM{}
	s.SetAttached(vm)
	ctx := context.Background()
	v, err := s.Create(ctx, acct, volumes.CreateInput{AvailabilityZone: "lab-1a", SizeGiB: ptr(100)})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := s.Attach(ctx, acct, v.ID, "i-0123456789abcdef0", "lab-1a", "/dev/sdf"); err != nil {
		t.Fatal(err)
	}
	if _, err := s.AttachDone(ctx, acct, v.ID, nil); err != nil {
		t.Fatal(err)
	}
	sn, err := s.CreateSnapshot(ctx, acct, v.ID, "")
	if err != nil {
		t.Fatal(err)
	}
	if got := waitSnapshot(t, s, sn.ID); got.State != "completed" || vm.snapshots != 1 {
		t.Fatalf("snapshot %+v after %d VM snapshots, want completed through the VM", got, vm.snapshots)
	}
	if _, err := s.Modify(ctx, acct, v.ID, volumes.ModifyInput{SizeGiB: ptr(200), Type: ptr(volumes.IO1), IOPS: ptr(1000)}); err != nil {
		t.Fatal(err)
	}
	if vm.resized != 200<<30 || vm.throttle != volumes.ThrottleFor(volumes.Spec{Type: volumes.IO1, SizeGiB: 200, IOPS: 1000}) {
		t.Fatalf("VM resized to %d with throttle %+v", vm.resized, vm.throttle)
	}
	_, err = s.Attach(ctx, acct, v.ID, "i-0123456789abcdef1", "lab-1a", "/dev/sdg")
	wantCode(t, err, "VolumeInUse")
}
