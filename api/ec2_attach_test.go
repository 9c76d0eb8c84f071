package api

import (
	"context"
	"errors"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/service/ec2"
	ec2types "github.com/aws/aws-sdk-go-v2/service/ec2/types"

	"github.com/labcloud/labcloud/blockdev/qcow2"
	"github.com/labcloud/labcloud/hypervisor"
	"github.com/labcloud/labcloud/hypervisor/fake"
	"github.com/labcloud/labcloud/iamd"
	"github.com/labcloud/labcloud/internal/cloud"
	"github.com/labcloud/labcloud/internal/instances"
	"github.com/labcloud/labcloud/internal/store/storetest"
	"github.com/labcloud/labcloud/internal/tags"
	"github.com/labcloud/labcloud/internal/volumes"
)

// newAttachClient serves instances and EBS together, as labcloudd does:
// real etcd, a real qcow2 block store, the fake hypervisor, and the
// volume service's hooks wired to the instance layer.
func newAttachClient(t *testing.T) (*ec2.Client, *fake.Driver) {
	t.Helper()
	if _, err := exec.LookPath("qemu-img"); err != nil {
		t.Skip("qemu-img not installed (qemu-utils)")
	}
	ctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(cancel)
	st := storetest.NewEmbedded(t)
	accounts := iamd.NewAccounts(st)
	_, admin, err := accounts.Bootstrap(ctx, "admin")
	if err != nil {
		t.Fatal(err)
	}
	cl := cloud.New(st)
	if err := cl.Seed(ctx, "lab-1", "http://localhost", []string{"lab-1a", "lab-1b"}); err != nil {
		t.Fatal(err)
	}
	be, err := qcow2.New(qcow2.Options{Dir: t.TempDir()})
	if err != nil {
		t.Fatal(err)
	}
	vols := volumes.New(volumes.Options{Store: st, Backend: be, Region: "lab-1", Zones: func(context.Context) ([]string, error) {
		return []string{"lab-1a", "lab-1b"}, nil
	}})
	t.Cleanup(vols.Close)
	dir := t.TempDir()
	// A real qcow2 disk: root volumes are overlays of it in the block store.
	base := filepath.Join(dir, "base.qcow2")
	if out, err := exec.Command("qemu-img", "create", "-q", "-f", "qcow2", base, "1G").CombinedOutput(); err != nil {
		t.Fatalf("qemu-img create: %v: %s", err, out)
	}
	drv := fake.New(filepath.Join(dir, "vms"))
	svc, err := instances.New(instances.Options{Store: st, Driver: drv, Network: &instNet{}, Images: instImages{disk: base},
		KeyPairs: instKeys{}, Volumes: vols, Region: "lab-1", StateDir: filepath.Join(dir, "state"), NodeVCPUs: 2, NodeMemoryMiB: 8192,
		ResyncInterval: 20 * time.Millisecond, Backoff: 5 * time.Millisecond,
		CreateOverlay: func(_ context.Context, _, path string, _ int) error { return os.WriteFile(path, nil, 0o644) }})
	if err != nil {
		t.Fatal(err)
	}
	vols.SetAttached(svc.VolumeHooks())
	done := make(chan struct{})
	go func() { svc.RunController(ctx); close(done) }()
	t.Cleanup(func() { cancel(); <-done })
	tg := tags.New(st)
	tg.Register("vol-", vols.Exists, "volume")
	hs := httptest.NewServer(New(Options{Accounts: accounts, Cloud: cl, Region: "lab-1", Instances: svc, Volumes: vols, Tags: tg}))
	t.Cleanup(hs.Close)
	return ec2.New(ec2.Options{Region: "lab-1", BaseEndpoint: aws.String(hs.URL),
		Credentials: credentials.NewStaticCredentialsProvider(admin.AccessKeyID, admin.SecretAccessKey, "")}), drv
}

func newVolume(t *testing.T, c *ec2.Client, zone string, gib int32) string {
	t.Helper()
	v, err := c.CreateVolume(context.Background(), &ec2.CreateVolumeInput{AvailabilityZone: aws.String(zone), Size: aws.Int32(gib)})
	if err != nil {
		t.Fatal(err)
	}
	return *v.VolumeId
}

// waitVolume polls DescribeVolumes until the volume is in state (and,
// when attach is given, its attachment too).
func waitVolume(t *testing.T, c *ec2.Client, id string, state ec2types.VolumeState, attach ec2types.VolumeAttachmentState) ec2types.Volume {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		out, err := c.DescribeVolumes(context.Background(), &ec2.DescribeVolumesInput{VolumeIds: []string{id}})
		if err != nil {
			t.Fatal(err)
		}
		v := out.Volumes[0]
		if v.State == state && (attach == "" || len(v.Attachments) == 1 && v.Attachments[0].State == attach) {
			return v
		}
		if time.Now().After(deadline) {
			t.Fatalf("volume %s is %s with %+v; want %s %s", id, v.State, v.Attachments, state, attach)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func guestDisk(drv *fake.Driver, inst, vol string) (hypervisor.Disk, bool) {
	g, _ := drv.Guest(inst)
	i := slices.IndexFunc(g.Disks, func(d hypervisor.Disk) bool { return d.ID == vol })
	if i < 0 {
		return hypervisor.Disk{}, false
	}
	return g.Disks[i], true
}

func TestAttachVolumeAPI(t *testing.T) {
	c, drv := newAttachClient(t)
	ctx := context.Background()
	run, err := c.RunInstances(ctx, &ec2.RunInstancesInput{ImageId: aws.String("ami-0123456789abcdef0"), MinCount: aws.Int32(1), MaxCount: aws.Int32(1)})
	if err != nil {
		t.Fatal(err)
	}
	inst := *run.Instances[0].InstanceId
	waitInstanceState(t, c, inst, ec2types.InstanceStateNameRunning)

	// Attach: the answer says attaching, the volume becomes in-use and
	// attached, the running guest sees a disk with the volume's serial
	// and gp2's baseline as its limit.
	vol := newVolume(t, c, "lab-1a", 2)
	att, err := c.AttachVolume(ctx, &ec2.AttachVolumeInput{VolumeId: aws.String(vol), InstanceId: aws.String(inst), Device: aws.String("/dev/sdf")})
	if err != nil {
		t.Fatal(err)
	}
	if att.State != ec2types.VolumeAttachmentStateAttaching || *att.Device != "/dev/sdf" || *att.InstanceId != inst || *att.VolumeId != vol {
		t.Fatalf("AttachVolume answered %+v", att)
	}
	v := waitVolume(t, c, vol, ec2types.VolumeStateInUse, ec2types.VolumeAttachmentStateAttached)
	if *v.Attachments[0].DeleteOnTermination {
		t.Errorf("a volume attached after launch has DeleteOnTermination true")
	}
	d, ok := guestDisk(drv, inst, vol)
	if !ok {
		t.Fatalf("the guest does not see %s", vol)
	}
	if d.Serial != instances.DiskSerial(vol) || d.Format != hypervisor.FormatQCOW2 || d.Throttle == nil ||
		d.Throttle.IOPSTotal != 100 || d.Throttle.BPSTotal != 250<<20 {
		t.Errorf("hot-plugged disk %+v (throttle %+v)", d, d.Throttle)
	}
	if _, err := os.Stat(d.Path); err != nil {
		t.Errorf("the disk's file: %v", err)
	}
	// The controller settles the volume record, then the instance's:
	// DescribeInstances may say attaching for a moment after the volume
	// says attached.
	var di ec2types.Instance
	var sdf *ec2types.InstanceBlockDeviceMapping
	for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(20 * time.Millisecond) {
		di, sdf = waitInstanceState(t, c, inst, ec2types.InstanceStateNameRunning), nil
		for k := range di.BlockDeviceMappings {
			if *di.BlockDeviceMappings[k].DeviceName == "/dev/sdf" {
				sdf = &di.BlockDeviceMappings[k]
			}
		}
		if sdf == nil || sdf.Ebs.Status == ec2types.AttachmentStatusAttached || time.Now().After(deadline) {
			break
		}
	}
	if sdf == nil || *sdf.Ebs.VolumeId != vol || sdf.Ebs.Status != ec2types.AttachmentStatusAttached || *sdf.Ebs.DeleteOnTermination {
		for _, m := range di.BlockDeviceMappings {
			t.Logf("mapping %s %+v", *m.DeviceName, *m.Ebs)
		}
		t.Fatalf("DescribeInstances block devices: %+v", di.BlockDeviceMappings)
	}

	// What EC2 refuses.
	other := newVolume(t, c, "lab-1a", 1)
	far := newVolume(t, c, "lab-1b", 1)
	for _, tc := range []struct {
		name, vol, inst, dev, code string
	}{
		{"AttachedAgain", vol, inst, "/dev/sdg", "VolumeInUse"},
		{"DeviceTaken", other, inst, "/dev/xvdf", "InvalidParameterValue"},
		{"RootDevice", other, inst, "/dev/xvda", "InvalidParameterValue"},
		{"BadDevice", other, inst, "/dev/sdz", "InvalidParameterValue"},
		{"OtherZone", far, inst, "/dev/sdg", "InvalidVolume.ZoneMismatch"},
		{"UnknownInstance", other, "i-0123456789abcdef0", "/dev/sdg", "InvalidInstanceID.NotFound"},
		{"MalformedInstance", other, "i-xyz", "/dev/sdg", "InvalidInstanceID.Malformed"},
		{"UnknownVolume", "vol-0123456789abcdef0", inst, "/dev/sdg", "InvalidVolume.NotFound"},
		{"MalformedVolume", "vol-xyz", inst, "/dev/sdg", "InvalidVolumeID.Malformed"},
	} {
		_, err := c.AttachVolume(ctx, &ec2.AttachVolumeInput{VolumeId: aws.String(tc.vol), InstanceId: aws.String(tc.inst), Device: aws.String(tc.dev)})
		if apiCode(err) != tc.code {
			t.Errorf("%s: got %v, want %s", tc.name, err, tc.code)
		}
	}
	waitVolume(t, c, other, ec2types.VolumeStateAvailable, "")
	waitVolume(t, c, far, ec2types.VolumeStateAvailable, "")
	if _, err := c.DeleteVolume(ctx, &ec2.DeleteVolumeInput{VolumeId: aws.String(vol)}); apiCode(err) != "VolumeInUse" {
		t.Errorf("DeleteVolume of an attached volume: %v, want VolumeInUse", err)
	}
	if _, err := c.DetachVolume(ctx, &ec2.DetachVolumeInput{VolumeId: aws.String(other)}); apiCode(err) != "IncorrectState" {
		t.Errorf("DetachVolume of an available volume: %v, want IncorrectState", err)
	}
	if _, err := c.DetachVolume(ctx, &ec2.DetachVolumeInput{VolumeId: aws.String(vol), InstanceId: aws.String("i-0123456789abcdef0")}); apiCode(err) != "InvalidAttachment.NotFound" {
		t.Errorf("DetachVolume from another instance: %v, want InvalidAttachment.NotFound", err)
	}

	// Modify while attached: the guest is told the new size, the disk
	// gets the new type's limits at once.
	if _, err := c.ModifyVolume(ctx, &ec2.ModifyVolumeInput{VolumeId: aws.String(vol), Size: aws.Int32(3)}); err != nil {
		t.Fatal(err)
	}
	if got := drv.DiskSize(inst, vol); got != 3<<30 {
		t.Errorf("the guest was told size %d, want %d", got, 3<<30)
	}
	if _, err := c.ModifyVolume(ctx, &ec2.ModifyVolumeInput{VolumeId: aws.String(vol), VolumeType: ec2types.VolumeTypeGp3}); err != nil {
		t.Fatal(err)
	}
	if spec, _ := drv.Spec(inst); !slices.ContainsFunc(spec.Disks, func(d hypervisor.Disk) bool {
		return d.ID == vol && d.Throttle != nil && d.Throttle.IOPSTotal == 3000 && d.Throttle.BPSTotal == 125<<20
	}) {
		t.Errorf("after ModifyVolume to gp3 the VM's disks are %+v", spec.Disks)
	}

	// A snapshot of a volume a running VM writes is refused with a reason.
	sn, err := c.CreateSnapshot(ctx, &ec2.CreateSnapshotInput{VolumeId: aws.String(vol)})
	if err != nil {
		t.Fatal(err)
	}
	snapState(t, c, *sn.SnapshotId, ec2types.SnapshotStateError)

	// Detach: detaching, then available, and the guest no longer has it.
	det, err := c.DetachVolume(ctx, &ec2.DetachVolumeInput{VolumeId: aws.String(vol), InstanceId: aws.String(inst)})
	if err != nil {
		t.Fatal(err)
	}
	if det.State != ec2types.VolumeAttachmentStateDetaching || *det.Device != "/dev/sdf" {
		t.Fatalf("DetachVolume answered %+v", det)
	}
	waitVolume(t, c, vol, ec2types.VolumeStateAvailable, "")
	if _, ok := guestDisk(drv, inst, vol); ok {
		t.Errorf("the guest still sees %s after the detach", vol)
	}

	// A guest that does not release the disk: the detach waits (and is
	// retried), until DetachVolume with Force takes the disk away.
	if err := drv.HoldDisks(inst, true); err != nil {
		t.Fatal(err)
	}
	if _, err := c.AttachVolume(ctx, &ec2.AttachVolumeInput{VolumeId: aws.String(vol), InstanceId: aws.String(inst), Device: aws.String("/dev/sdf")}); err != nil {
		t.Fatal(err)
	}
	waitVolume(t, c, vol, ec2types.VolumeStateInUse, ec2types.VolumeAttachmentStateAttached)
	if _, err := c.DetachVolume(ctx, &ec2.DetachVolumeInput{VolumeId: aws.String(vol)}); err != nil {
		t.Fatal(err)
	}
	waitVolume(t, c, vol, ec2types.VolumeStateInUse, ec2types.VolumeAttachmentStateDetaching)
	if _, ok := guestDisk(drv, inst, vol); !ok {
		t.Fatalf("the guest that holds its disks lost %s without force", vol)
	}
	if _, err := c.DetachVolume(ctx, &ec2.DetachVolumeInput{VolumeId: aws.String(vol), Force: aws.Bool(true)}); err != nil {
		t.Fatal(err)
	}
	waitVolume(t, c, vol, ec2types.VolumeStateAvailable, "")
	if spec, _ := drv.Spec(inst); slices.ContainsFunc(spec.Disks, func(d hypervisor.Disk) bool { return d.ID == vol }) {
		t.Errorf("the VM's definition still has %s after a forced detach", vol)
	}
	// The guest keeps a dead device until it answers the unplug.
	drv.HoldDisks(inst, false)
	if _, ok := guestDisk(drv, inst, vol); ok {
		t.Errorf("the guest still has %s after it let go", vol)
	}

	// An encrypted volume goes in with its key file (never the key).
	ev, err := c.CreateVolume(ctx, &ec2.CreateVolumeInput{AvailabilityZone: aws.String("lab-1a"), Size: aws.Int32(1), Encrypted: aws.Bool(true)})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := c.AttachVolume(ctx, &ec2.AttachVolumeInput{VolumeId: ev.VolumeId, InstanceId: aws.String(inst), Device: aws.String("/dev/sdi")}); err != nil {
		t.Fatal(err)
	}
	waitVolume(t, c, *ev.VolumeId, ec2types.VolumeStateInUse, ec2types.VolumeAttachmentStateAttached)
	if d, ok := guestDisk(drv, inst, *ev.VolumeId); !ok || d.KeyFile == "" {
		t.Errorf("encrypted volume in the guest: %+v, %v; want a key file", d, ok)
	}
	if _, err := c.DetachVolume(ctx, &ec2.DetachVolumeInput{VolumeId: ev.VolumeId}); err != nil {
		t.Fatal(err)
	}
	waitVolume(t, c, *ev.VolumeId, ec2types.VolumeStateAvailable, "")

	// A hot-plug that fails gives the volume back.
	drv.InjectError("AttachDisk", errors.New("no free slot"))
	if _, err := c.AttachVolume(ctx, &ec2.AttachVolumeInput{VolumeId: aws.String(vol), InstanceId: aws.String(inst), Device: aws.String("/dev/sdf")}); err != nil {
		t.Fatal(err)
	}
	waitVolume(t, c, vol, ec2types.VolumeStateAvailable, "")

	// A stopped instance: the attach goes into the definition and the
	// guest has the disk when it boots; a snapshot reads the file.
	if _, err := c.StopInstances(ctx, &ec2.StopInstancesInput{InstanceIds: []string{inst}}); err != nil {
		t.Fatal(err)
	}
	waitInstanceState(t, c, inst, ec2types.InstanceStateNameStopped)
	if _, err := c.AttachVolume(ctx, &ec2.AttachVolumeInput{VolumeId: aws.String(vol), InstanceId: aws.String(inst), Device: aws.String("/dev/sdf")}); err != nil {
		t.Fatal(err)
	}
	waitVolume(t, c, vol, ec2types.VolumeStateInUse, ec2types.VolumeAttachmentStateAttached)
	sn, err = c.CreateSnapshot(ctx, &ec2.CreateSnapshotInput{VolumeId: aws.String(vol)})
	if err != nil {
		t.Fatal(err)
	}
	snapState(t, c, *sn.SnapshotId, ec2types.SnapshotStateCompleted)
	if _, err := c.StartInstances(ctx, &ec2.StartInstancesInput{InstanceIds: []string{inst}}); err != nil {
		t.Fatal(err)
	}
	waitInstanceState(t, c, inst, ec2types.InstanceStateNameRunning)
	if d, ok := guestDisk(drv, inst, vol); !ok || d.Throttle == nil || d.Throttle.IOPSTotal != 3000 {
		t.Errorf("after start the guest has %+v, %v; want %s with gp3 limits", d, ok, vol)
	}

	// DeleteOnTermination: set on one volume, not the other; terminate
	// deletes the first and leaves the second available.
	if _, err := c.AttachVolume(ctx, &ec2.AttachVolumeInput{VolumeId: aws.String(other), InstanceId: aws.String(inst), Device: aws.String("/dev/sdg")}); err != nil {
		t.Fatal(err)
	}
	waitVolume(t, c, other, ec2types.VolumeStateInUse, ec2types.VolumeAttachmentStateAttached)
	if _, err := c.ModifyInstanceAttribute(ctx, &ec2.ModifyInstanceAttributeInput{InstanceId: aws.String(inst),
		BlockDeviceMappings: []ec2types.InstanceBlockDeviceMappingSpecification{{DeviceName: aws.String("/dev/sdg"),
			Ebs: &ec2types.EbsInstanceBlockDeviceSpecification{DeleteOnTermination: aws.Bool(true)}}}}); err != nil {
		t.Fatal(err)
	}
	if v := waitVolume(t, c, other, ec2types.VolumeStateInUse, ec2types.VolumeAttachmentStateAttached); !*v.Attachments[0].DeleteOnTermination {
		t.Errorf("DeleteOnTermination not shown on the volume: %+v", v.Attachments[0])
	}
	if _, err := c.TerminateInstances(ctx, &ec2.TerminateInstancesInput{InstanceIds: []string{inst}}); err != nil {
		t.Fatal(err)
	}
	waitInstanceState(t, c, inst, ec2types.InstanceStateNameTerminated)
	waitVolume(t, c, vol, ec2types.VolumeStateAvailable, "")
	if _, err := c.DescribeVolumes(ctx, &ec2.DescribeVolumesInput{VolumeIds: []string{other}}); apiCode(err) != "InvalidVolume.NotFound" {
		t.Errorf("the DeleteOnTermination volume after terminate: %v, want InvalidVolume.NotFound", err)
	}
	if _, err := c.AttachVolume(ctx, &ec2.AttachVolumeInput{VolumeId: aws.String(vol), InstanceId: aws.String(inst), Device: aws.String("/dev/sdf")}); apiCode(err) != "IncorrectInstanceState" {
		t.Errorf("attach to a terminated instance: %v, want IncorrectInstanceState", err)
	}
}

func snapState(t *testing.T, c *ec2.Client, id string, want ec2types.SnapshotState) {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for {
		out, err := c.DescribeSnapshots(context.Background(), &ec2.DescribeSnapshotsInput{SnapshotIds: []string{id}})
		if err != nil {
			t.Fatal(err)
		}
		s := out.Snapshots[0]
		if s.State == want {
			return
		}
		if s.State != ec2types.SnapshotStatePending || time.Now().After(deadline) {
			t.Fatalf("snapshot %s is %s (%s), want %s", id, s.State, aws.ToString(s.StateMessage), want)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// rootMapping is the root device's BlockDeviceMapping of DescribeInstances.
func rootMapping(t *testing.T, i ec2types.Instance) ec2types.InstanceBlockDeviceMapping {
	t.Helper()
	for _, m := range i.BlockDeviceMappings {
		if aws.ToString(m.DeviceName) == aws.ToString(i.RootDeviceName) {
			return m
		}
	}
	t.Fatalf("%s has no mapping at its root device %s: %+v", aws.ToString(i.InstanceId), aws.ToString(i.RootDeviceName), i.BlockDeviceMappings)
	return ec2types.InstanceBlockDeviceMapping{}
}

// The root disk is an EBS volume: listed, attached at the root device,
// the VM's disk named after it, never detached, modified and snapshotted
// like any volume, deleted or kept at terminate per DeleteOnTermination.
func TestRootVolumeAPI(t *testing.T) {
	c, drv := newAttachClient(t)
	ctx := context.Background()
	run, err := c.RunInstances(ctx, &ec2.RunInstancesInput{ImageId: aws.String("ami-0123456789abcdef0"), MinCount: aws.Int32(1), MaxCount: aws.Int32(1)})
	if err != nil {
		t.Fatal(err)
	}
	inst := *run.Instances[0].InstanceId
	di := waitInstanceState(t, c, inst, ec2types.InstanceStateNameRunning)
	rm := rootMapping(t, di)
	root := aws.ToString(rm.Ebs.VolumeId)
	if !strings.HasPrefix(root, "vol-") || !aws.ToBool(rm.Ebs.DeleteOnTermination) || rm.Ebs.Status != ec2types.AttachmentStatusAttached {
		t.Fatalf("root mapping %s %+v", aws.ToString(rm.DeviceName), *rm.Ebs)
	}
	v := waitVolume(t, c, root, ec2types.VolumeStateInUse, ec2types.VolumeAttachmentStateAttached)
	a := v.Attachments[0]
	if aws.ToString(a.Device) != "/dev/xvda" || aws.ToString(a.InstanceId) != inst || !aws.ToBool(a.DeleteOnTermination) ||
		aws.ToInt32(v.Size) != 2 || v.VolumeType != ec2types.VolumeTypeGp3 || aws.ToString(v.AvailabilityZone) != aws.ToString(di.Placement.AvailabilityZone) {
		t.Fatalf("root volume %+v attachment %+v", v, a)
	}
	spec, _ := drv.Spec(inst)
	if len(spec.Disks) == 0 || spec.Disks[0].ID != root || spec.Disks[0].Throttle == nil || spec.Disks[0].Throttle.IOPSTotal != 3000 {
		t.Fatalf("the VM's first disk is %+v; want the root volume %s with gp3's limits", spec.Disks, root)
	}

	// Not detachable, not deletable while attached.
	if _, err := c.DetachVolume(ctx, &ec2.DetachVolumeInput{VolumeId: aws.String(root)}); apiCode(err) != "OperationNotPermitted" {
		t.Errorf("DetachVolume of the root volume: %v, want OperationNotPermitted", err)
	}
	if _, err := c.DeleteVolume(ctx, &ec2.DeleteVolumeInput{VolumeId: aws.String(root)}); apiCode(err) != "VolumeInUse" {
		t.Errorf("DeleteVolume of the root volume: %v, want VolumeInUse", err)
	}
	waitVolume(t, c, root, ec2types.VolumeStateInUse, ec2types.VolumeAttachmentStateAttached)

	// ModifyVolume of the running root: the guest is told the new size,
	// the VM gets the new type's limits.
	if _, err := c.ModifyVolume(ctx, &ec2.ModifyVolumeInput{VolumeId: aws.String(root), Size: aws.Int32(3), VolumeType: ec2types.VolumeTypeGp2}); err != nil {
		t.Fatal(err)
	}
	if got := drv.DiskSize(inst, root); got != 3<<30 {
		t.Errorf("the guest sees the root at %d bytes, want %d", got, 3<<30)
	}
	if spec, _ := drv.Spec(inst); spec.Disks[0].Throttle == nil || spec.Disks[0].Throttle.IOPSTotal != 100 {
		t.Errorf("root disk after ModifyVolume to gp2: %+v", spec.Disks[0])
	}

	// A snapshot of the stopped instance's root; the next start keeps
	// the modified volume.
	if _, err := c.StopInstances(ctx, &ec2.StopInstancesInput{InstanceIds: []string{inst}}); err != nil {
		t.Fatal(err)
	}
	waitInstanceState(t, c, inst, ec2types.InstanceStateNameStopped)
	snap, err := c.CreateSnapshot(ctx, &ec2.CreateSnapshotInput{VolumeId: aws.String(root)})
	if err != nil {
		t.Fatal(err)
	}
	waitSnapshotCompleted(t, c, *snap.SnapshotId)
	if _, err := c.StartInstances(ctx, &ec2.StartInstancesInput{InstanceIds: []string{inst}}); err != nil {
		t.Fatal(err)
	}
	di = waitInstanceState(t, c, inst, ec2types.InstanceStateNameRunning)
	if got := aws.ToString(rootMapping(t, di).Ebs.VolumeId); got != root {
		t.Fatalf("after a restart the root is %s, want %s", got, root)
	}
	if spec, _ := drv.Spec(inst); spec.Disks[0].ID != root || spec.Disks[0].Throttle == nil || spec.Disks[0].Throttle.IOPSTotal != 100 {
		t.Errorf("redefined root disk %+v, want %s with gp2's limits", spec.Disks[0], root)
	}
	v = waitVolume(t, c, root, ec2types.VolumeStateInUse, ec2types.VolumeAttachmentStateAttached)
	if aws.ToInt32(v.Size) != 3 || v.VolumeType != ec2types.VolumeTypeGp2 {
		t.Errorf("root volume after ModifyVolume: %d GiB %s", aws.ToInt32(v.Size), v.VolumeType)
	}

	// A second instance keeps its root (DeleteOnTermination false at
	// launch); the first one's goes with it.
	run2, err := c.RunInstances(ctx, &ec2.RunInstancesInput{ImageId: aws.String("ami-0123456789abcdef0"), MinCount: aws.Int32(1), MaxCount: aws.Int32(1),
		BlockDeviceMappings: []ec2types.BlockDeviceMapping{{DeviceName: aws.String("/dev/xvda"), Ebs: &ec2types.EbsBlockDevice{DeleteOnTermination: aws.Bool(false)}}}})
	if err != nil {
		t.Fatal(err)
	}
	inst2 := *run2.Instances[0].InstanceId
	kept := aws.ToString(rootMapping(t, waitInstanceState(t, c, inst2, ec2types.InstanceStateNameRunning)).Ebs.VolumeId)
	v = waitVolume(t, c, kept, ec2types.VolumeStateInUse, ec2types.VolumeAttachmentStateAttached)
	if aws.ToBool(v.Attachments[0].DeleteOnTermination) {
		t.Errorf("root volume of an instance launched with DeleteOnTermination false: %+v", v.Attachments[0])
	}
	if _, err := c.TerminateInstances(ctx, &ec2.TerminateInstancesInput{InstanceIds: []string{inst, inst2}}); err != nil {
		t.Fatal(err)
	}
	waitInstanceState(t, c, inst, ec2types.InstanceStateNameTerminated)
	waitInstanceState(t, c, inst2, ec2types.InstanceStateNameTerminated)
	if _, err := c.DescribeVolumes(ctx, &ec2.DescribeVolumesInput{VolumeIds: []string{root}}); apiCode(err) != "InvalidVolume.NotFound" {
		t.Errorf("DescribeVolumes of the terminated instance's root: %v, want InvalidVolume.NotFound", err)
	}
	waitVolume(t, c, kept, ec2types.VolumeStateAvailable, "")
	// The kept root is an ordinary volume now: it can be deleted.
	if _, err := c.DeleteVolume(ctx, &ec2.DeleteVolumeInput{VolumeId: aws.String(kept)}); err != nil {
		t.Errorf("DeleteVolume of a kept root volume: %v", err)
	}
}
