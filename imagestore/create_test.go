package imagestore_test

import (
	"context"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"testing"

	"github.com/labcloud/labcloud/imagestore"
)

const (
	ownerA = "111111111111"
	ownerB = "222222222222"
)

// createFrom registers the fake build as the source and creates an AMI
// of ownerA whose root disk is a real qcow2 written by qemu-img.
func createFrom(t *testing.T, c *imagestore.Catalogue, name string) (imagestore.Image, imagestore.Image) {
	t.Helper()
	ctx := context.Background()
	src, err := c.Register(ctx, imagestore.RegisterInput{OwnerID: "999999999999", Name: "src " + name, Location: fakeBuild(t), Public: true})
	if err != nil {
		t.Fatal(err)
	}
	im, err := c.Create(ctx, imagestore.CreateInput{OwnerID: ownerA, Name: name, Description: "d", Source: src, SizeGiB: 1,
		CopyRoot: func(ctx context.Context, dst string) error {
			out, err := exec.CommandContext(ctx, "qemu-img", "convert", "-O", "qcow2", src.Disk, dst).CombinedOutput()
			if err != nil {
				t.Logf("%s", out)
			}
			return err
		},
		Snapshot: func(ctx context.Context, im imagestore.Image) (string, error) {
			if im.State != imagestore.StatePending || im.Disk == "" {
				t.Errorf("Snapshot called with %+v, want a pending image with its disk written", im)
			}
			if _, err := os.Stat(im.Disk); err != nil {
				t.Errorf("Snapshot called before the disk exists: %v", err)
			}
			return "snap-0123456789abcdef0", nil
		}})
	if err != nil {
		t.Fatalf("Create: %v", err)
	}
	return src, im
}

func TestCreateMakesAPrivateAvailableImageWithItsOwnFiles(t *testing.T) {
	needQemuImg(t)
	c := newCatalogue(t)
	ctx := context.Background()
	src, im := createFrom(t, c, "my image")
	if im.State != imagestore.StateAvailable || im.Public || im.OwnerID != ownerA || im.KernelCmdline != src.KernelCmdline ||
		im.Architecture != "x86_64" || im.RootDeviceName != "/dev/xvda" || len(im.BlockDeviceMappings) != 1 ||
		im.BlockDeviceMappings[0].Ebs.SnapshotID != "snap-0123456789abcdef0" || im.BlockDeviceMappings[0].Ebs.VolumeSize != 1 {
		t.Fatalf("created image: %+v", im)
	}
	for _, f := range []string{im.Disk, im.Kernel, im.Initrd} {
		st, err := os.Stat(f)
		if err != nil || st.Mode().Perm() != 0o444 || filepath.Dir(f) != filepath.Join(c.Dir(), im.ID) {
			t.Fatalf("file %s: %v %v, want a 0444 file under the image's directory", f, err, st)
		}
	}
	got, err := c.Get(ctx, ownerA, im.ID)
	if err != nil || got.State != imagestore.StateAvailable {
		t.Fatalf("Get as owner: %+v %v", got, err)
	}
	if _, err := c.Get(ctx, ownerB, im.ID); code(err) != "InvalidAMIID.NotFound" {
		t.Fatalf("Get as another account: %v, want InvalidAMIID.NotFound", err)
	}
	_, err = c.Create(ctx, imagestore.CreateInput{OwnerID: ownerA, Name: "my image", Source: src,
		CopyRoot: func(context.Context, string) error { t.Fatal("copied for a duplicate name"); return nil }})
	if code(err) != "InvalidAMIName.Duplicate" {
		t.Fatalf("duplicate name: %v", err)
	}
	if _, err := c.Create(ctx, imagestore.CreateInput{OwnerID: ownerA, Name: "x", Source: src, CopyRoot: func(context.Context, string) error { return nil }}); code(err) != "InvalidAMIName.Malformed" {
		t.Fatalf("short name: %v", err)
	}
}

func TestCreateFailureLeavesNoRecordAndFreesTheName(t *testing.T) {
	c := newCatalogue(t)
	ctx := context.Background()
	boom := errors.New("copy failed")
	var dir string
	_, err := c.Create(ctx, imagestore.CreateInput{OwnerID: ownerA, Name: "broken", CopyRoot: func(_ context.Context, dst string) error {
		dir = filepath.Dir(dst)
		ims, _ := c.List(ctx)
		if len(ims) != 1 || ims[0].State != imagestore.StatePending {
			t.Errorf("during the copy the image is %+v, want one pending", ims)
		}
		return boom
	}})
	if !errors.Is(err, boom) {
		t.Fatalf("Create: %v, want the copy's error", err)
	}
	if ims, _ := c.List(ctx); len(ims) != 0 {
		t.Fatalf("after a failed copy: %+v", ims)
	}
	if _, err := os.Stat(dir); !os.IsNotExist(err) {
		t.Fatalf("directory %s left behind: %v", dir, err)
	}
	if _, err := c.Create(ctx, imagestore.CreateInput{OwnerID: ownerA, Name: "broken", CopyRoot: func(_ context.Context, dst string) error {
		return os.WriteFile(dst, []byte("disk"), 0o644)
	}}); err != nil {
		t.Fatalf("the name is still taken: %v", err)
	}
}

func TestLaunchPermissions(t *testing.T) {
	needQemuImg(t)
	c := newCatalogue(t)
	ctx := context.Background()
	_, im := createFrom(t, c, "shared")
	if _, err := c.ModifyLaunchPermission(ctx, ownerB, im.ID, imagestore.LaunchPermissionChange{AddAccounts: []string{ownerB}}); code(err) != "InvalidAMIID.NotFound" {
		t.Fatalf("another account sharing it with itself: %v", err)
	}
	if _, err := c.ModifyLaunchPermission(ctx, ownerA, im.ID, imagestore.LaunchPermissionChange{AddAccounts: []string{"bob"}}); code(err) != "InvalidAMIAttributeItemValue" {
		t.Fatalf("bad account id: %v", err)
	}
	got, err := c.ModifyLaunchPermission(ctx, ownerA, im.ID, imagestore.LaunchPermissionChange{AddAccounts: []string{ownerB, ownerB}})
	if err != nil || len(got.LaunchAccountIDs) != 1 {
		t.Fatalf("share: %+v %v", got.LaunchAccountIDs, err)
	}
	if _, err := c.Get(ctx, ownerB, im.ID); err != nil {
		t.Fatalf("shared account cannot see it: %v", err)
	}
	if _, err := c.SetDescription(ctx, ownerB, im.ID, "mine now"); code(err) != "AuthFailure" {
		t.Fatalf("a shared account changing the description: %v", err)
	}
	if _, err := c.ModifyLaunchPermission(ctx, ownerA, im.ID, imagestore.LaunchPermissionChange{RemoveAccounts: []string{ownerB}}); err != nil {
		t.Fatal(err)
	}
	if _, err := c.Get(ctx, ownerB, im.ID); code(err) != "InvalidAMIID.NotFound" {
		t.Fatalf("after removal: %v", err)
	}
	if got, err := c.ModifyLaunchPermission(ctx, ownerA, im.ID, imagestore.LaunchPermissionChange{AddPublic: true, AddAccounts: []string{ownerB}}); err != nil || !got.Public {
		t.Fatalf("make public: %+v %v", got, err)
	}
	if got, err := c.ResetLaunchPermission(ctx, ownerA, im.ID); err != nil || got.Public || len(got.LaunchAccountIDs) != 0 {
		t.Fatalf("reset: %+v %v", got, err)
	}
	if got, err := c.SetDescription(ctx, ownerA, im.ID, "new words"); err != nil || got.Description != "new words" {
		t.Fatalf("description: %+v %v", got, err)
	}
	// Deregistering keeps the files (instances may still read them).
	if _, err := c.Deregister(ctx, ownerA, im.ID); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(im.Disk); err != nil {
		t.Fatalf("disk gone after deregister: %v", err)
	}
}

func TestCreateSnapshotFailureLeavesNothing(t *testing.T) {
	c := newCatalogue(t)
	ctx := context.Background()
	boom := errors.New("snapshot failed")
	var dir string
	_, err := c.Create(ctx, imagestore.CreateInput{OwnerID: ownerA, Name: "no snap",
		CopyRoot: func(_ context.Context, dst string) error {
			dir = filepath.Dir(dst)
			return os.WriteFile(dst, []byte("disk"), 0o644)
		},
		Snapshot: func(context.Context, imagestore.Image) (string, error) { return "", boom }})
	if !errors.Is(err, boom) {
		t.Fatalf("Create: %v, want the snapshot's error", err)
	}
	if ims, _ := c.List(ctx); len(ims) != 0 {
		t.Fatalf("after a failed snapshot: %+v", ims)
	}
	if _, err := os.Stat(dir); !os.IsNotExist(err) {
		t.Fatalf("directory %s left behind: %v", dir, err)
	}
}

func TestRegisterSnapshotAndSnapshotUser(t *testing.T) {
	needQemuImg(t)
	c := newCatalogue(t)
	ctx := context.Background()
	src, err := c.Register(ctx, imagestore.RegisterInput{OwnerID: "999999999999", Name: "src", Location: fakeBuild(t), Public: true})
	if err != nil {
		t.Fatal(err)
	}
	const snap = "snap-0123456789abcdef0"
	if id, err := c.SnapshotUser(ctx, snap); err != nil || id != "" {
		t.Fatalf("SnapshotUser before: %q %v", id, err)
	}
	copyDisk := func(ctx context.Context, dst string) error {
		out, err := exec.CommandContext(ctx, "qemu-img", "convert", "-O", "qcow2", src.Disk, dst).CombinedOutput()
		if err != nil {
			t.Logf("%s", out)
		}
		return err
	}
	im, err := c.RegisterSnapshot(ctx, imagestore.RegisterSnapshotInput{OwnerID: ownerB, Name: "from snap", Description: "d",
		RootDeviceName: "/dev/xvda", Root: imagestore.Ebs{SnapshotID: snap, VolumeSize: 3, DeleteOnTermination: true},
		Kernel: src.Kernel, Initrd: src.Initrd, KernelCmdline: "console=ttyS0", CopyDisk: copyDisk})
	if err != nil {
		t.Fatal(err)
	}
	if im.State != imagestore.StateAvailable || im.Public || im.OwnerID != ownerB || im.KernelCmdline != "console=ttyS0" ||
		im.Architecture != "x86_64" || len(im.BlockDeviceMappings) != 1 || *im.BlockDeviceMappings[0].Ebs != (imagestore.Ebs{SnapshotID: snap, VolumeSize: 3, VolumeType: "gp3", DeleteOnTermination: true}) ||
		im.RootVolumeSize() != 3 {
		t.Fatalf("registered image: %+v %+v", im, im.BlockDeviceMappings[0].Ebs)
	}
	for _, f := range []string{im.Disk, im.Kernel, im.Initrd} {
		if filepath.Dir(f) != filepath.Join(c.Dir(), im.ID) {
			t.Fatalf("file %s is not under the image's directory", f)
		}
	}
	if id, err := c.SnapshotUser(ctx, snap); err != nil || id != im.ID {
		t.Fatalf("SnapshotUser: %q %v, want %s", id, err, im.ID)
	}
	// Without boot material the image boots its disk's own loader.
	plain, err := c.RegisterSnapshot(ctx, imagestore.RegisterSnapshotInput{OwnerID: ownerB, Name: "plain",
		Root: imagestore.Ebs{SnapshotID: snap, VolumeSize: 1}, CopyDisk: copyDisk})
	if err != nil || plain.Kernel != "" || plain.Initrd != "" || plain.RootDeviceName != "/dev/xvda" {
		t.Fatalf("plain image: %+v %v", plain, err)
	}
	if _, err := c.RegisterSnapshot(ctx, imagestore.RegisterSnapshotInput{OwnerID: ownerB, Name: "plain",
		Root: imagestore.Ebs{SnapshotID: snap, VolumeSize: 1}, CopyDisk: copyDisk}); code(err) != "InvalidAMIName.Duplicate" {
		t.Fatalf("duplicate name: %v", err)
	}
	for _, id := range []string{im.ID, plain.ID} {
		if _, err := c.Deregister(ctx, ownerB, id); err != nil {
			t.Fatal(err)
		}
	}
	if id, err := c.SnapshotUser(ctx, snap); err != nil || id != "" {
		t.Fatalf("SnapshotUser after deregistering: %q %v", id, err)
	}
}
