package instances

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/labcloud/labcloud/blockdev/qcow2"
	"github.com/labcloud/labcloud/hypervisor/fake"
	"github.com/labcloud/labcloud/internal/errdefs"
	"github.com/labcloud/labcloud/internal/volumes"
)

// newVolumesFor makes a volume service over e's store with a real qcow2
// block store, and a real qcow2 AMI disk for root volumes to layer on.
func newVolumesFor(t *testing.T, e *env) (*volumes.Service, string) {
	t.Helper()
	if _, err := exec.LookPath("qemu-img"); err != nil {
		t.Skip("qemu-img not installed (qemu-utils)")
	}
	dir := t.TempDir()
	base := filepath.Join(dir, "ami.qcow2")
	if out, err := exec.Command("qemu-img", "create", "-q", "-f", "qcow2", base, "1G").CombinedOutput(); err != nil {
		t.Fatalf("qemu-img create: %v: %s", err, out)
	}
	be, err := qcow2.New(qcow2.Options{Dir: filepath.Join(dir, "ebs")})
	if err != nil {
		t.Fatal(err)
	}
	vols := volumes.New(volumes.Options{Store: e.st, Backend: be, Region: "lab-1",
		Zones: func(context.Context) ([]string, error) { return []string{"lab-1a", "lab-1b"}, nil }})
	t.Cleanup(vols.Close)
	return vols, base
}

// An instance launched before root volumes (its root an overlay in its
// own directory) keeps that overlay when the daemon comes back with the
// volume service, and terminates as before.
func TestRootOverlayFromBeforeRootVolumes(t *testing.T) {
	e := newEnv(t, nil)
	e.start(t)
	id := e.run(t, RunInput{MinCount: 1, MaxCount: 1})[0].ID
	i := e.waitState(t, id, StateRunning)
	dir := filepath.Join(e.opts.StateDir, "instances", id)
	if i.Status.RootVolumeID != "" || !strings.HasPrefix(i.Status.OverlayPath, dir+"/") {
		t.Fatalf("without volumes: root volume %q, overlay %q", i.Status.RootVolumeID, i.Status.OverlayPath)
	}
	ctx := context.Background()
	if _, err := e.svc.StopInstances(ctx, acct, []string{id}, false); err != nil {
		t.Fatal(err)
	}
	e.waitState(t, id, StateStopped)

	vols, _ := newVolumesFor(t, e)
	e.opts.Volumes = vols
	e.restart(t)
	if _, err := e.svc.StartInstances(ctx, acct, []string{id}); err != nil {
		t.Fatal(err)
	}
	i = e.waitState(t, id, StateRunning)
	if i.Status.RootVolumeID != "" || i.Status.RootDisk != nil || !strings.HasPrefix(i.Status.OverlayPath, dir+"/") {
		t.Fatalf("an old instance got a root volume: %q, overlay %q", i.Status.RootVolumeID, i.Status.OverlayPath)
	}
	spec, _ := e.drv.Spec(id)
	if spec.Disks[0].ID != "root" || spec.Disks[0].Path != i.Status.OverlayPath {
		t.Fatalf("root disk %+v", spec.Disks[0])
	}
	if list, _ := vols.List(ctx, acct); len(list) != 0 {
		t.Fatalf("volumes made for an old instance: %+v", list)
	}
	if _, err := e.svc.TerminateInstances(ctx, acct, []string{id}); err != nil {
		t.Fatal(err)
	}
	e.waitState(t, id, StateTerminated)
	if exists(dir) {
		t.Errorf("the old instance's directory %s is left after terminate", dir)
	}
}

// A new instance's root is a volume: made once (a step retried after a
// failure finds the same one), attached at the root device with the
// instance's DeleteOnTermination, which ModifyInstanceAttribute changes
// on the volume too; kept available at terminate when false.
func TestRootVolumeLifecycle(t *testing.T) {
	e := newEnv(t, nil)
	vols, base := newVolumesFor(t, e)
	e.opts.Volumes, e.opts.Images = vols, fakeImages{disk: base}
	var err error
	if e.svc, err = New(e.opts); err != nil {
		t.Fatal(err)
	}
	vols.SetAttached(e.svc.VolumeHooks())
	// The first definition fails: the retry must reuse the root volume.
	e.drv.InjectError("Create", fake.ErrInjected)
	e.start(t)
	ctx := context.Background()
	id := e.run(t, RunInput{MinCount: 1, MaxCount: 1})[0].ID
	i := e.waitState(t, id, StateRunning)
	root := i.Status.RootVolumeID
	if !strings.HasPrefix(root, "vol-") || i.Status.RootDisk == nil || i.Status.RootDisk.ID != root {
		t.Fatalf("status: root volume %q, disk %+v", root, i.Status.RootDisk)
	}
	list, err := vols.List(ctx, acct)
	if err != nil || len(list) != 1 || list[0].ID != root {
		t.Fatalf("volumes after a retried launch: %+v, %v; want only %s", list, err, root)
	}
	v := list[0]
	if v.State != volumes.StateInUse || v.Type != volumes.GP3 || v.SizeGiB != 2 || len(v.Attachments) != 1 ||
		v.Attachments[0].Device != "/dev/xvda" || !v.Attachments[0].Root || !v.Attachments[0].DeleteOnTermination ||
		v.Attachments[0].State != volumes.AttachAttached || v.AvailabilityZone != i.AvailabilityZone {
		t.Fatalf("root volume %+v", v)
	}
	bv, err := vols.Backend().Volume(ctx, root)
	if err != nil || i.Status.OverlayPath != bv.Path {
		t.Fatalf("OverlayPath %q, the volume's file %q (%v)", i.Status.OverlayPath, bv.Path, err)
	}
	if _, err := e.svc.DetachVolume(ctx, acct, root, "", true); !errdefs.Is(err, errdefs.ClassConflict) {
		t.Errorf("DetachVolume of the root: %v", err)
	}
	if err := e.svc.SetVolumeDeleteOnTermination(ctx, acct, id, "/dev/xvda", false); err != nil {
		t.Fatal(err)
	}
	if v, _ := vols.Get(ctx, acct, root); len(v.Attachments) != 1 || v.Attachments[0].DeleteOnTermination {
		t.Fatalf("DeleteOnTermination false did not reach the volume: %+v", v.Attachments)
	}
	if _, err := e.svc.TerminateInstances(ctx, acct, []string{id}); err != nil {
		t.Fatal(err)
	}
	e.waitState(t, id, StateTerminated)
	v, err = vols.Get(ctx, acct, root)
	if err != nil || v.State != volumes.StateAvailable || len(v.Attachments) != 0 {
		t.Fatalf("kept root volume after terminate: %+v, %v", v, err)
	}
	if _, err := os.Stat(bv.Path); err != nil {
		t.Errorf("the kept root volume's file: %v", err)
	}
}
