package api

import (
	"context"
	"errors"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/service/ec2"
	ec2types "github.com/aws/aws-sdk-go-v2/service/ec2/types"
	"github.com/labcloud/labcloud/blockdev/qcow2"
	"github.com/labcloud/labcloud/hypervisor/fake"
	"github.com/labcloud/labcloud/iamd"
	"github.com/labcloud/labcloud/imagestore"
	"github.com/labcloud/labcloud/internal/instances"
	"github.com/labcloud/labcloud/internal/store"
	"github.com/labcloud/labcloud/internal/store/embedded"
	"github.com/labcloud/labcloud/internal/tags"
	"github.com/labcloud/labcloud/internal/volumes"
)

// catImages is what the daemon's imagesAdapter does: instances launch
// from the real catalogue, with its visibility rules.
type catImages struct{ c *imagestore.Catalogue }

func (a catImages) Get(ctx context.Context, caller, id string) (instances.Image, error) {
	im, err := a.c.Get(ctx, caller, id)
	if err != nil {
		return instances.Image{}, err
	}
	return instances.Image{ID: im.ID, Name: im.Name, Architecture: im.Architecture, RootDeviceName: im.RootDeviceName,
		RootSizeGiB: im.RootVolumeSize(), Disk: im.Disk, Kernel: im.Kernel, Initrd: im.Initrd, KernelCmdline: im.KernelCmdline}, nil
}

type createImageEnv struct {
	admin, other *ec2.Client
	otherID      string
	drv          *fake.Driver
	ami          string
	cat          *imagestore.Catalogue
	vols         *volumes.Service
	bootDir      string
}

// newCreateImageEnv serves EC2 over real etcd, the real image catalogue
// with a registered qcow2, real qemu-img overlays and the fake hypervisor.
func newCreateImageEnv(t *testing.T) createImageEnv {
	t.Helper()
	if _, err := exec.LookPath("qemu-img"); err != nil {
		t.Fatal("qemu-img not found: run `make deps` (qemu-utils)")
	}
	ctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(cancel)
	srv, err := embedded.Start(ctx, embedded.Config{DataDir: t.TempDir()})
	if err != nil {
		t.Fatalf("starting embedded etcd: %v", err)
	}
	t.Cleanup(func() { srv.Close() })
	cli, err := store.Dial(ctx, srv.Endpoints())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cli.Close() })
	st := store.New(cli, "/labcloud/")
	accounts := iamd.NewAccounts(st)
	_, admin, err := accounts.Bootstrap(ctx, "admin")
	if err != nil {
		t.Fatal(err)
	}
	_, other, err := accounts.CreateAccount(ctx, "other")
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	base := filepath.Join(dir, "base.qcow2")
	if out, err := exec.Command("qemu-img", "create", "-q", "-f", "qcow2", base, "1G").CombinedOutput(); err != nil {
		t.Fatalf("qemu-img create: %v: %s", err, out)
	}
	cat := imagestore.New(st, filepath.Join(dir, "images"))
	im, err := cat.Register(ctx, imagestore.RegisterInput{OwnerID: admin.AccountID, Name: "base", Location: base})
	if err != nil {
		t.Fatal(err)
	}
	drv := fake.New(filepath.Join(dir, "vms"))
	svc, err := instances.New(instances.Options{Store: st, Driver: drv, Network: &instNet{}, Images: catImages{cat},
		KeyPairs: instKeys{}, Region: "lab-1", StateDir: filepath.Join(dir, "state"), NodeVCPUs: 4, NodeMemoryMiB: 16384,
		ResyncInterval: 20 * time.Millisecond, Backoff: 5 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan struct{})
	go func() { svc.RunController(ctx); close(done) }()
	t.Cleanup(func() { cancel(); <-done })
	// The EBS service over a real qcow2 block store: CreateImage records
	// the root disk as a snapshot there.
	be, err := qcow2.New(qcow2.Options{Dir: filepath.Join(dir, "blocks")})
	if err != nil {
		t.Fatal(err)
	}
	bootDir := filepath.Join(dir, "snapshot-boot")
	vols := volumes.New(volumes.Options{Store: st, Backend: be, Region: "lab-1", BootDir: bootDir,
		Zones: func(context.Context) ([]string, error) { return []string{"lab-1a"}, nil }})
	t.Cleanup(vols.Close)
	tg := tags.New(st)
	tg.Register("ami-", cat.Exists, "image")
	tg.Register("snap-", vols.SnapshotExists, "snapshot")
	hs := httptest.NewServer(New(Options{Accounts: accounts, Region: "lab-1", Instances: svc, Images: cat, Tags: tg, Volumes: vols}))
	t.Cleanup(hs.Close)
	client := func(k iamd.AccessKey) *ec2.Client {
		return ec2.New(ec2.Options{Region: "lab-1", BaseEndpoint: aws.String(hs.URL),
			Credentials: credentials.NewStaticCredentialsProvider(k.AccessKeyID, k.SecretAccessKey, "")})
	}
	return createImageEnv{admin: client(admin), other: client(other), otherID: other.AccountID, drv: drv, ami: im.ID, cat: cat, vols: vols, bootDir: bootDir}
}

func runOne(t *testing.T, c *ec2.Client, ami string) (string, error) {
	t.Helper()
	out, err := c.RunInstances(context.Background(), &ec2.RunInstancesInput{ImageId: aws.String(ami), InstanceType: ec2types.InstanceTypeT3Micro,
		MinCount: aws.Int32(1), MaxCount: aws.Int32(1)})
	if err != nil {
		return "", err
	}
	return aws.ToString(out.Instances[0].InstanceId), nil
}

func TestCreateImageAndLaunchPermissionsWire(t *testing.T) {
	env := newCreateImageEnv(t)
	ctx := context.Background()
	id, err := runOne(t, env.admin, env.ami)
	if err != nil {
		t.Fatal(err)
	}
	waitInstanceState(t, env.admin, id, ec2types.InstanceStateNameRunning)

	// Without NoReboot the VM is paused for the copy: a failing pause
	// fails the request (no SDK retry, which would hide it) and leaves no
	// image behind. NoReboot does not pause: the injected failure is still
	// pending after it.
	noRetry := func(o *ec2.Options) { o.Retryer = aws.NopRetryer{} }
	env.drv.InjectError("Pause", errors.New("injected pause failure"))
	if _, err := env.admin.CreateImage(ctx, &ec2.CreateImageInput{InstanceId: aws.String(id), Name: aws.String("no reboot"), NoReboot: aws.Bool(true)}, noRetry); err != nil {
		t.Fatalf("CreateImage NoReboot: %v", err)
	}
	if _, err := env.admin.CreateImage(ctx, &ec2.CreateImageInput{InstanceId: aws.String(id), Name: aws.String("snap one")}, noRetry); apiCode(err) != "InternalError" {
		t.Fatalf("CreateImage with a failing pause: %v", err)
	}
	ci, err := env.admin.CreateImage(ctx, &ec2.CreateImageInput{InstanceId: aws.String(id), Name: aws.String("snap one"), Description: aws.String("first"),
		TagSpecifications: []ec2types.TagSpecification{{ResourceType: ec2types.ResourceTypeImage, Tags: []ec2types.Tag{{Key: aws.String("k"), Value: aws.String("v")}}}}})
	if err != nil {
		t.Fatalf("CreateImage after the failed one (its name must be free again): %v", err)
	}
	if st, _ := env.drv.Status(ctx, id); st.State != "running" {
		t.Fatalf("VM after CreateImage: %+v, want resumed", st)
	}
	if _, err := env.admin.CreateImage(ctx, &ec2.CreateImageInput{InstanceId: aws.String(id), Name: aws.String("snap one")}); apiCode(err) != "InvalidAMIName.Duplicate" {
		t.Fatalf("duplicate name: %v", err)
	}
	if _, err := env.admin.CreateImage(ctx, &ec2.CreateImageInput{InstanceId: aws.String("i-0123456789abcdef0"), Name: aws.String("none")}); apiCode(err) != "InvalidInstanceID.NotFound" {
		t.Fatalf("unknown instance: %v", err)
	}
	if _, err := env.other.CreateImage(ctx, &ec2.CreateImageInput{InstanceId: aws.String(id), Name: aws.String("theirs")}); apiCode(err) != "InvalidInstanceID.NotFound" {
		t.Fatalf("another account's instance: %v", err)
	}

	d, err := env.admin.DescribeImages(ctx, &ec2.DescribeImagesInput{ImageIds: []string{aws.ToString(ci.ImageId)}})
	if err != nil || len(d.Images) != 1 {
		t.Fatalf("DescribeImages: %v %+v", err, d)
	}
	im := d.Images[0]
	if im.State != ec2types.ImageStateAvailable || aws.ToBool(im.Public) || aws.ToString(im.Description) != "first" || len(im.Tags) != 1 ||
		len(im.BlockDeviceMappings) != 1 || !strings.HasPrefix(aws.ToString(im.BlockDeviceMappings[0].Ebs.SnapshotId), "snap-") ||
		aws.ToString(im.RootDeviceName) != "/dev/xvda" || aws.ToInt32(im.BlockDeviceMappings[0].Ebs.VolumeSize) != 1 {
		t.Fatalf("created image: %+v", im)
	}
	// Its disk is a standalone qcow2 (the overlay chain flattened).
	full, err := env.cat.Get(ctx, aws.ToString(im.OwnerId), aws.ToString(ci.ImageId))
	if err != nil {
		t.Fatal(err)
	}
	info, err := exec.Command("qemu-img", "info", "--output=json", full.Disk).CombinedOutput()
	if err != nil || !strings.Contains(string(info), `"format": "qcow2"`) || strings.Contains(string(info), "backing-filename") {
		t.Fatalf("qemu-img info %s: %v\n%s", full.Disk, err, info)
	}
	// The new AMI launches.
	second, err := runOne(t, env.admin, aws.ToString(ci.ImageId))
	if err != nil {
		t.Fatalf("RunInstances from the new image: %v", err)
	}
	waitInstanceState(t, env.admin, second, ec2types.InstanceStateNameRunning)

	// Another account: invisible, then shared, then reset.
	amiID := aws.ToString(ci.ImageId)
	if _, err := env.other.DescribeImages(ctx, &ec2.DescribeImagesInput{ImageIds: []string{amiID}}); apiCode(err) != "InvalidAMIID.NotFound" {
		t.Fatalf("other describes a private image: %v", err)
	}
	if _, err := runOne(t, env.other, amiID); apiCode(err) != "InvalidAMIID.NotFound" {
		t.Fatalf("other launches a private image: %v", err)
	}
	if _, err := env.other.ModifyImageAttribute(ctx, &ec2.ModifyImageAttributeInput{ImageId: aws.String(amiID),
		LaunchPermission: &ec2types.LaunchPermissionModifications{Add: []ec2types.LaunchPermission{{UserId: aws.String(env.otherID)}}}}); apiCode(err) != "InvalidAMIID.NotFound" {
		t.Fatalf("other shares the image with itself: %v", err)
	}
	if _, err := env.admin.ModifyImageAttribute(ctx, &ec2.ModifyImageAttributeInput{ImageId: aws.String(amiID),
		LaunchPermission: &ec2types.LaunchPermissionModifications{Add: []ec2types.LaunchPermission{{UserId: aws.String(env.otherID)}}}}); err != nil {
		t.Fatalf("share: %v", err)
	}
	attr, err := env.admin.DescribeImageAttribute(ctx, &ec2.DescribeImageAttributeInput{ImageId: aws.String(amiID), Attribute: ec2types.ImageAttributeNameLaunchPermission})
	if err != nil || len(attr.LaunchPermissions) != 1 || aws.ToString(attr.LaunchPermissions[0].UserId) != env.otherID {
		t.Fatalf("DescribeImageAttribute launchPermission: %v %+v", err, attr)
	}
	ex, err := env.other.DescribeImages(ctx, &ec2.DescribeImagesInput{ExecutableUsers: []string{"self"}})
	if err != nil || len(ex.Images) != 1 || aws.ToString(ex.Images[0].ImageId) != amiID {
		t.Fatalf("other: DescribeImages ExecutableBy self: %v %+v", err, ex)
	}
	if own, err := env.other.DescribeImages(ctx, &ec2.DescribeImagesInput{Owners: []string{"self"}}); err != nil || len(own.Images) != 0 {
		t.Fatalf("other: Owners self: %v %+v", err, own)
	}
	if _, err := runOne(t, env.other, amiID); err != nil {
		t.Fatalf("other launches the shared image: %v", err)
	}
	if _, err := env.other.DescribeImageAttribute(ctx, &ec2.DescribeImageAttributeInput{ImageId: aws.String(amiID), Attribute: ec2types.ImageAttributeNameLaunchPermission}); apiCode(err) != "AuthFailure" {
		t.Fatalf("other reads the launch permissions: %v", err)
	}

	if _, err := env.admin.ModifyImageAttribute(ctx, &ec2.ModifyImageAttributeInput{ImageId: aws.String(amiID),
		Description: &ec2types.AttributeValue{Value: aws.String("second words")}}); err != nil {
		t.Fatalf("description: %v", err)
	}
	da, err := env.other.DescribeImageAttribute(ctx, &ec2.DescribeImageAttributeInput{ImageId: aws.String(amiID), Attribute: ec2types.ImageAttributeNameDescription})
	if err != nil || aws.ToString(da.Description.Value) != "second words" {
		t.Fatalf("DescribeImageAttribute description: %v %+v", err, da)
	}
	// Group all makes it public; reset makes it private again.
	if _, err := env.admin.ModifyImageAttribute(ctx, &ec2.ModifyImageAttributeInput{ImageId: aws.String(amiID),
		LaunchPermission: &ec2types.LaunchPermissionModifications{Add: []ec2types.LaunchPermission{{Group: ec2types.PermissionGroupAll}}}}); err != nil {
		t.Fatal(err)
	}
	if pub, err := env.other.DescribeImages(ctx, &ec2.DescribeImagesInput{ExecutableUsers: []string{"all"}}); err != nil || len(pub.Images) != 1 || aws.ToString(pub.Images[0].ImageId) != amiID {
		t.Fatalf("public images: %v %+v", err, pub)
	}
	if _, err := env.admin.ResetImageAttribute(ctx, &ec2.ResetImageAttributeInput{ImageId: aws.String(amiID), Attribute: ec2types.ResetImageAttributeNameLaunchPermission}); err != nil {
		t.Fatal(err)
	}
	if _, err := runOne(t, env.other, amiID); apiCode(err) != "InvalidAMIID.NotFound" {
		t.Fatalf("other launches after reset: %v", err)
	}
}

// registerFromSnap is RegisterImage with a root mapping on /dev/xvda.
func registerFromSnap(ctx context.Context, c *ec2.Client, name string, ebs *ec2types.EbsBlockDevice) (*ec2.RegisterImageOutput, error) {
	return c.RegisterImage(ctx, &ec2.RegisterImageInput{Name: aws.String(name), RootDeviceName: aws.String("/dev/xvda"),
		Architecture: ec2types.ArchitectureValuesX8664, VirtualizationType: aws.String("hvm"),
		BlockDeviceMappings: []ec2types.BlockDeviceMapping{{DeviceName: aws.String("/dev/xvda"), Ebs: ebs}}})
}

func TestImageSnapshotsWire(t *testing.T) {
	env := newCreateImageEnv(t)
	ctx := context.Background()
	id, err := runOne(t, env.admin, env.ami)
	if err != nil {
		t.Fatal(err)
	}
	waitInstanceState(t, env.admin, id, ec2types.InstanceStateNameRunning)
	ci, err := env.admin.CreateImage(ctx, &ec2.CreateImageInput{InstanceId: aws.String(id), Name: aws.String("with snap")})
	if err != nil {
		t.Fatal(err)
	}
	amiID := aws.ToString(ci.ImageId)
	d, err := env.admin.DescribeImages(ctx, &ec2.DescribeImagesInput{ImageIds: []string{amiID}})
	if err != nil || len(d.Images) != 1 || len(d.Images[0].BlockDeviceMappings) != 1 {
		t.Fatalf("DescribeImages: %v %+v", err, d)
	}
	snapID := aws.ToString(d.Images[0].BlockDeviceMappings[0].Ebs.SnapshotId)

	// The mapping names a real snapshot of the caller.
	ds, err := env.admin.DescribeSnapshots(ctx, &ec2.DescribeSnapshotsInput{SnapshotIds: []string{snapID}})
	if err != nil || len(ds.Snapshots) != 1 {
		t.Fatalf("DescribeSnapshots %s: %v %+v", snapID, err, ds)
	}
	sn := ds.Snapshots[0]
	// Its VolumeId is the root volume it was copied from (vol-ffffffff
	// for an instance whose root is not a volume).
	wantVol := "vol-ffffffff"
	if di, err := env.admin.DescribeInstances(ctx, &ec2.DescribeInstancesInput{InstanceIds: []string{id}}); err == nil {
		for _, m := range di.Reservations[0].Instances[0].BlockDeviceMappings {
			if v := aws.ToString(m.Ebs.VolumeId); aws.ToString(m.DeviceName) == "/dev/xvda" && v != "" {
				wantVol = v
			}
		}
	}
	if sn.State != ec2types.SnapshotStateCompleted || aws.ToString(sn.VolumeId) != wantVol || aws.ToInt32(sn.VolumeSize) != 1 ||
		aws.ToString(sn.Description) != "Created by CreateImage("+id+") for "+amiID || aws.ToString(sn.OwnerId) == env.otherID {
		t.Fatalf("CreateImage's snapshot: %+v", sn)
	}
	if own, err := env.other.DescribeSnapshots(ctx, &ec2.DescribeSnapshotsInput{}); err != nil || len(own.Snapshots) != 0 {
		t.Fatalf("another account sees snapshots: %v %+v", err, own)
	}

	// In use while an image names it; not the other account's business.
	_, err = env.admin.DeleteSnapshot(ctx, &ec2.DeleteSnapshotInput{SnapshotId: aws.String(snapID)})
	if apiCode(err) != "InvalidSnapshot.InUse" || !strings.Contains(err.Error(), "The snapshot "+snapID+" is currently in use by "+amiID) {
		t.Fatalf("DeleteSnapshot of an image's snapshot: %v", err)
	}
	if _, err := env.other.DeleteSnapshot(ctx, &ec2.DeleteSnapshotInput{SnapshotId: aws.String(snapID)}); apiCode(err) != "InvalidSnapshot.NotFound" {
		t.Fatalf("another account deletes it: %v", err)
	}

	// Deregistering keeps the snapshot.
	if _, err := env.admin.DeregisterImage(ctx, &ec2.DeregisterImageInput{ImageId: aws.String(amiID)}); err != nil {
		t.Fatal(err)
	}
	if ds, err := env.admin.DescribeSnapshots(ctx, &ec2.DescribeSnapshotsInput{SnapshotIds: []string{snapID}}); err != nil || len(ds.Snapshots) != 1 {
		t.Fatalf("snapshot after DeregisterImage: %v %+v", err, ds)
	}

	// Register it again: a private image whose mapping names the snapshot,
	// launched like any other.
	reg, err := registerFromSnap(ctx, env.admin, "again", &ec2types.EbsBlockDevice{SnapshotId: aws.String(snapID), VolumeSize: aws.Int32(2),
		VolumeType: ec2types.VolumeTypeGp2, DeleteOnTermination: aws.Bool(false)})
	if err != nil {
		t.Fatalf("RegisterImage from %s: %v", snapID, err)
	}
	again := aws.ToString(reg.ImageId)
	d, err = env.admin.DescribeImages(ctx, &ec2.DescribeImagesInput{ImageIds: []string{again}})
	if err != nil || len(d.Images) != 1 {
		t.Fatalf("DescribeImages: %v %+v", err, d)
	}
	im := d.Images[0]
	if im.State != ec2types.ImageStateAvailable || aws.ToBool(im.Public) || aws.ToString(im.RootDeviceName) != "/dev/xvda" || len(im.BlockDeviceMappings) != 1 {
		t.Fatalf("registered image: %+v", im)
	}
	if e := im.BlockDeviceMappings[0].Ebs; aws.ToString(e.SnapshotId) != snapID || aws.ToInt32(e.VolumeSize) != 2 || e.VolumeType != ec2types.VolumeTypeGp2 || aws.ToBool(e.DeleteOnTermination) {
		t.Fatalf("registered image's mapping: %+v", e)
	}
	full, err := env.cat.Get(ctx, aws.ToString(im.OwnerId), again)
	if err != nil {
		t.Fatal(err)
	}
	info, err := exec.Command("qemu-img", "info", "--output=json", full.Disk).CombinedOutput()
	if err != nil || strings.Contains(string(info), "backing-filename") {
		t.Fatalf("registered image's disk is not standalone: %v\n%s", err, info)
	}
	if _, err := env.other.DescribeImages(ctx, &ec2.DescribeImagesInput{ImageIds: []string{again}}); apiCode(err) != "InvalidAMIID.NotFound" {
		t.Fatalf("another account sees the registered image: %v", err)
	}
	second, err := runOne(t, env.admin, again)
	if err != nil {
		t.Fatalf("RunInstances from the registered image: %v", err)
	}
	waitInstanceState(t, env.admin, second, ec2types.InstanceStateNameRunning)
	if _, err := env.admin.DeleteSnapshot(ctx, &ec2.DeleteSnapshotInput{SnapshotId: aws.String(snapID)}); apiCode(err) != "InvalidSnapshot.InUse" {
		t.Fatalf("DeleteSnapshot while the registered image uses it: %v", err)
	}

	// Refusals.
	good := func() *ec2types.EbsBlockDevice { return &ec2types.EbsBlockDevice{SnapshotId: aws.String(snapID)} }
	for _, tc := range []struct {
		name string
		call func() error
		code string
	}{
		{"ImageLocation with a snapshot", func() error {
			_, err := env.admin.RegisterImage(ctx, &ec2.RegisterImageInput{Name: aws.String("both"), ImageLocation: aws.String("/tmp/x.qcow2"),
				BlockDeviceMappings: []ec2types.BlockDeviceMapping{{DeviceName: aws.String("/dev/xvda"), Ebs: good()}}})
			return err
		}, "InvalidParameterCombination"},
		{"root mapping with a size and no snapshot", func() error {
			_, err := registerFromSnap(ctx, env.admin, "nosnap", &ec2types.EbsBlockDevice{VolumeSize: aws.Int32(8)})
			return err
		}, "InvalidBlockDeviceMapping"},
		{"root mapping with neither", func() error {
			_, err := registerFromSnap(ctx, env.admin, "empty", &ec2types.EbsBlockDevice{VolumeType: ec2types.VolumeTypeGp3})
			return err
		}, "InvalidBlockDeviceMapping"},
		{"no mapping for the root device", func() error {
			_, err := env.admin.RegisterImage(ctx, &ec2.RegisterImageInput{Name: aws.String("noroot"), RootDeviceName: aws.String("/dev/sda1"),
				BlockDeviceMappings: []ec2types.BlockDeviceMapping{{DeviceName: aws.String("/dev/xvda"), Ebs: good()}}})
			return err
		}, "InvalidBlockDeviceMapping"},
		{"a second mapping", func() error {
			_, err := env.admin.RegisterImage(ctx, &ec2.RegisterImageInput{Name: aws.String("two"), RootDeviceName: aws.String("/dev/xvda"),
				BlockDeviceMappings: []ec2types.BlockDeviceMapping{{DeviceName: aws.String("/dev/xvda"), Ebs: good()}, {DeviceName: aws.String("/dev/sdf"), Ebs: good()}}})
			return err
		}, "Unsupported"},
		{"smaller than the snapshot", func() error {
			_, err := registerFromSnap(ctx, env.admin, "small", &ec2types.EbsBlockDevice{SnapshotId: aws.String(snapID), VolumeSize: aws.Int32(0)})
			return err
		}, "InvalidBlockDeviceMapping"},
		{"unknown volume type", func() error {
			_, err := registerFromSnap(ctx, env.admin, "badtype", &ec2types.EbsBlockDevice{SnapshotId: aws.String(snapID), VolumeType: "gp9"})
			return err
		}, "InvalidBlockDeviceMapping"},
		{"encrypted mapping of a plain snapshot", func() error {
			_, err := registerFromSnap(ctx, env.admin, "enc", &ec2types.EbsBlockDevice{SnapshotId: aws.String(snapID), Encrypted: aws.Bool(true)})
			return err
		}, "InvalidBlockDeviceMapping"},
		{"unknown snapshot", func() error {
			_, err := registerFromSnap(ctx, env.admin, "unknown", &ec2types.EbsBlockDevice{SnapshotId: aws.String("snap-0123456789abcdef0")})
			return err
		}, "InvalidSnapshot.NotFound"},
		{"another account's snapshot", func() error {
			_, err := registerFromSnap(ctx, env.other, "theirs", good())
			return err
		}, "InvalidSnapshot.NotFound"},
		{"duplicate name", func() error {
			_, err := registerFromSnap(ctx, env.admin, "again", good())
			return err
		}, "InvalidAMIName.Duplicate"},
		{"arm64", func() error {
			_, err := env.admin.RegisterImage(ctx, &ec2.RegisterImageInput{Name: aws.String("arm"), RootDeviceName: aws.String("/dev/xvda"), Architecture: ec2types.ArchitectureValuesArm64,
				BlockDeviceMappings: []ec2types.BlockDeviceMapping{{DeviceName: aws.String("/dev/xvda"), Ebs: good()}}})
			return err
		}, "InvalidParameterValue"},
		{"neither mapping nor location", func() error {
			_, err := env.other.RegisterImage(ctx, &ec2.RegisterImageInput{Name: aws.String("nothing")})
			return err
		}, "MissingParameter"},
		{"a non-admin with ImageLocation", func() error {
			_, err := env.other.RegisterImage(ctx, &ec2.RegisterImageInput{Name: aws.String("file"), ImageLocation: aws.String("/tmp/x.qcow2")})
			return err
		}, "UnauthorizedOperation"},
	} {
		if err := tc.call(); apiCode(err) != tc.code {
			t.Errorf("%s: %v, want %s", tc.name, err, tc.code)
		}
	}

	// Any account registers from its own snapshot; one without boot
	// material gives an image that boots its disk's own loader.
	v, err := env.other.CreateVolume(ctx, &ec2.CreateVolumeInput{AvailabilityZone: aws.String("lab-1a"), Size: aws.Int32(1)})
	if err != nil {
		t.Fatal(err)
	}
	osn, err := env.other.CreateSnapshot(ctx, &ec2.CreateSnapshotInput{VolumeId: v.VolumeId})
	if err != nil {
		t.Fatal(err)
	}
	waitSnapshotCompleted(t, env.other, aws.ToString(osn.SnapshotId))
	oreg, err := registerFromSnap(ctx, env.other, "mine", &ec2types.EbsBlockDevice{SnapshotId: osn.SnapshotId})
	if err != nil {
		t.Fatalf("a non-admin account registers from its snapshot: %v", err)
	}
	oim, err := env.cat.Get(ctx, env.otherID, aws.ToString(oreg.ImageId))
	if err != nil || oim.Kernel != "" || oim.Initrd != "" || oim.OwnerID != env.otherID || oim.Public || oim.RootVolumeSize() != 1 {
		t.Fatalf("non-admin's image: %+v %v", oim, err)
	}
	// An encrypted snapshot is refused, saying why.
	ev, err := env.other.CreateVolume(ctx, &ec2.CreateVolumeInput{AvailabilityZone: aws.String("lab-1a"), Size: aws.Int32(1), Encrypted: aws.Bool(true)})
	if err != nil {
		t.Fatal(err)
	}
	esn, err := env.other.CreateSnapshot(ctx, &ec2.CreateSnapshotInput{VolumeId: ev.VolumeId})
	if err != nil {
		t.Fatal(err)
	}
	waitSnapshotCompleted(t, env.other, aws.ToString(esn.SnapshotId))
	if _, err := registerFromSnap(ctx, env.other, "encrypted", &ec2types.EbsBlockDevice{SnapshotId: esn.SnapshotId}); apiCode(err) != "InvalidParameterValue" || !strings.Contains(err.Error(), "encrypted") {
		t.Fatalf("RegisterImage from an encrypted snapshot: %v", err)
	}
	if _, err := env.cat.Get(ctx, env.otherID, "ami-00000000"); err == nil {
		t.Fatal("unexpected image")
	}

	// DeleteAssociatedSnapshots: skipped while another image uses the
	// snapshot, deleted once none does.
	twin, err := registerFromSnap(ctx, env.admin, "twin", good())
	if err != nil {
		t.Fatal(err)
	}
	dr, err := env.admin.DeregisterImage(ctx, &ec2.DeregisterImageInput{ImageId: aws.String(again), DeleteAssociatedSnapshots: aws.Bool(true)})
	if err != nil || len(dr.DeleteSnapshotResults) != 1 || dr.DeleteSnapshotResults[0].ReturnCode != ec2types.SnapshotReturnCodesWarnSkipped {
		t.Fatalf("DeregisterImage while a twin uses the snapshot: %v %+v", err, dr)
	}
	dr, err = env.admin.DeregisterImage(ctx, &ec2.DeregisterImageInput{ImageId: twin.ImageId, DeleteAssociatedSnapshots: aws.Bool(true)})
	if err != nil || len(dr.DeleteSnapshotResults) != 1 || aws.ToString(dr.DeleteSnapshotResults[0].SnapshotId) != snapID ||
		dr.DeleteSnapshotResults[0].ReturnCode != ec2types.SnapshotReturnCodesSuccess {
		t.Fatalf("DeregisterImage DeleteAssociatedSnapshots: %v %+v", err, dr)
	}
	if _, err := env.admin.DescribeSnapshots(ctx, &ec2.DescribeSnapshotsInput{SnapshotIds: []string{snapID}}); apiCode(err) != "InvalidSnapshot.NotFound" {
		t.Fatalf("snapshot after DeleteAssociatedSnapshots: %v", err)
	}
	if _, err := os.Stat(filepath.Join(env.bootDir, snapID)); !os.IsNotExist(err) {
		t.Fatalf("boot files of the deleted snapshot left: %v", err)
	}
	// The instance launched from the deregistered image keeps running.
	waitInstanceState(t, env.admin, second, ec2types.InstanceStateNameRunning)
}

// waitSnapshotCompleted polls DescribeSnapshots until the snapshot is
// completed.
func waitSnapshotCompleted(t *testing.T, c *ec2.Client, id string) {
	t.Helper()
	deadline := time.Now().Add(time.Minute)
	for {
		ds, err := c.DescribeSnapshots(context.Background(), &ec2.DescribeSnapshotsInput{SnapshotIds: []string{id}})
		if err != nil {
			t.Fatal(err)
		}
		if st := ds.Snapshots[0].State; st == ec2types.SnapshotStateCompleted {
			return
		} else if st == ec2types.SnapshotStateError {
			t.Fatalf("snapshot %s failed: %s", id, aws.ToString(ds.Snapshots[0].StateMessage))
		}
		if time.Now().After(deadline) {
			t.Fatalf("snapshot %s not completed after a minute", id)
		}
		time.Sleep(20 * time.Millisecond)
	}
}
