package api

import (
	"context"
	"errors"
	"net/http/httptest"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/service/ec2"
	ec2types "github.com/aws/aws-sdk-go-v2/service/ec2/types"
	"github.com/labcloud/labcloud/hypervisor/fake"
	"github.com/labcloud/labcloud/iamd"
	"github.com/labcloud/labcloud/imagestore"
	"github.com/labcloud/labcloud/internal/instances"
	"github.com/labcloud/labcloud/internal/store"
	"github.com/labcloud/labcloud/internal/store/embedded"
	"github.com/labcloud/labcloud/internal/tags"
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
	tg := tags.New(st)
	tg.Register("ami-", cat.Exists, "image")
	hs := httptest.NewServer(New(Options{Accounts: accounts, Region: "lab-1", Instances: svc, Images: cat, Tags: tg}))
	t.Cleanup(hs.Close)
	client := func(k iamd.AccessKey) *ec2.Client {
		return ec2.New(ec2.Options{Region: "lab-1", BaseEndpoint: aws.String(hs.URL),
			Credentials: credentials.NewStaticCredentialsProvider(k.AccessKeyID, k.SecretAccessKey, "")})
	}
	return createImageEnv{admin: client(admin), other: client(other), otherID: other.AccountID, drv: drv, ami: im.ID, cat: cat}
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
