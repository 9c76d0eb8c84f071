package volumes_test

import (
	"bytes"
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/labcloud/labcloud/blockdev/qcow2"
	"github.com/labcloud/labcloud/internal/store/storetest"
	"github.com/labcloud/labcloud/internal/volumes"
)

// newServiceWithBootDir is newService with Options.BootDir set.
func newServiceWithBootDir(t *testing.T, bootDir string) *volumes.Service {
	t.Helper()
	if _, err := exec.LookPath("qemu-img"); err != nil {
		t.Skip("qemu-img not installed (qemu-utils)")
	}
	be, err := qcow2.New(qcow2.Options{Dir: t.TempDir()})
	if err != nil {
		t.Fatal(err)
	}
	s := volumes.New(volumes.Options{
		Store: storetest.NewEmbedded(t), Backend: be, Region: "lab-1", BootDir: bootDir,
		Zones: func(context.Context) ([]string, error) { return []string{"lab-1a"}, nil },
	})
	t.Cleanup(s.Close)
	if err := s.Recover(context.Background()); err != nil {
		t.Fatal(err)
	}
	return s
}

func run(t *testing.T, name string, args ...string) string {
	t.Helper()
	out, err := exec.Command(name, args...).CombinedOutput()
	if err != nil {
		t.Fatalf("%s %s: %v\n%s", name, strings.Join(args, " "), err, out)
	}
	return string(out)
}

// amiFiles makes what an AMI directory holds: a 1 GiB qcow2 disk with a
// known pattern in its first MiB, a kernel and an initrd.
func amiFiles(t *testing.T) (dir, disk, kernel, initrd string) {
	t.Helper()
	dir = t.TempDir()
	disk = filepath.Join(dir, "disk.qcow2")
	run(t, "qemu-img", "create", "-q", "-f", "qcow2", disk, "1G")
	run(t, "qemu-io", "-c", "write -P 0xab 0 1M", disk)
	kernel, initrd = filepath.Join(dir, "vmlinuz"), filepath.Join(dir, "initrd.img")
	for _, f := range []string{kernel, initrd} {
		if err := os.WriteFile(f, []byte("boot "+filepath.Base(f)), 0o444); err != nil {
			t.Fatal(err)
		}
	}
	return dir, disk, kernel, initrd
}

func TestSnapshotImageIsARealSnapshotWithBootMaterial(t *testing.T) {
	bootDir := t.TempDir()
	s := newServiceWithBootDir(t, bootDir)
	ctx := context.Background()
	amiDir, disk, kernel, initrd := amiFiles(t)
	sn, err := s.SnapshotImage(ctx, volumes.ImageSnapshotInput{OwnerID: acct, ImageID: "ami-0123456789abcdef0", InstanceID: "i-0123456789abcdef0",
		Disk: disk, SizeGiB: 1, Boot: volumes.Boot{Kernel: kernel, Initrd: initrd, KernelCmdline: "console=ttyS0", Architecture: "x86_64", RootDeviceName: "/dev/xvda"}})
	if err != nil {
		t.Fatal(err)
	}
	if sn.State != "completed" || sn.Progress != 100 || sn.VolumeID != volumes.NoSourceVolume || sn.VolumeSize != 1 || sn.OwnerID != acct ||
		sn.Description != "Created by CreateImage(i-0123456789abcdef0) for ami-0123456789abcdef0" || sn.Boot == nil {
		t.Fatalf("snapshot %+v", sn)
	}
	b := *sn.Boot
	if b.KernelCmdline != "console=ttyS0" || b.Architecture != "x86_64" || b.RootDeviceName != "/dev/xvda" ||
		filepath.Dir(b.Kernel) != filepath.Join(bootDir, sn.ID) || filepath.Dir(b.Initrd) != filepath.Join(bootDir, sn.ID) {
		t.Fatalf("boot material %+v", b)
	}
	list, err := s.Snapshots(ctx, acct)
	if err != nil || len(list) != 1 || list[0].ID != sn.ID || list[0].Boot == nil {
		t.Fatalf("Snapshots: %+v %v", list, err)
	}
	// The AMI's directory goes (a collected image): the boot files stay.
	if err := os.RemoveAll(amiDir); err != nil {
		t.Fatal(err)
	}
	if data, err := os.ReadFile(b.Kernel); err != nil || string(data) != "boot vmlinuz" {
		t.Fatalf("kernel after the AMI's files went: %q %v", data, err)
	}

	// The snapshot's content, written out, is the disk's, standalone.
	out := filepath.Join(t.TempDir(), "out.qcow2")
	if _, err := s.WriteSnapshotDisk(ctx, acct, sn.ID, out); err != nil {
		t.Fatal(err)
	}
	info := run(t, "qemu-img", "info", "--output=json", out)
	if strings.Contains(info, "backing-filename") || !strings.Contains(info, `"virtual-size": 1073741824`) {
		t.Fatalf("written disk is not a standalone 1 GiB qcow2:\n%s", info)
	}
	if got := run(t, "qemu-io", "-c", "read -P 0xab 0 1M", out); !strings.Contains(got, "read 1048576/1048576") {
		t.Fatalf("pattern not found in the written disk: %s", got)
	}
	if got, _ := exec.Command("qemu-io", "-c", "read -P 0 1M 1M", out).CombinedOutput(); bytes.Contains(got, []byte("Pattern verification failed")) {
		t.Fatalf("data after the pattern: %s", got)
	}
	// A volume restores from it.
	v, err := s.Create(ctx, acct, volumes.CreateInput{AvailabilityZone: "lab-1a", SnapshotID: sn.ID})
	if err != nil || v.State != volumes.StateAvailable || v.SizeGiB != 1 {
		t.Fatalf("volume from the image snapshot: %+v %v", v, err)
	}
	// Another account sees nothing.
	if _, err := s.WriteSnapshotDisk(ctx, "999999999999", sn.ID, filepath.Join(t.TempDir(), "x")); err == nil {
		t.Fatal("another account wrote out the snapshot")
	} else {
		wantCode(t, err, "InvalidSnapshot.NotFound")
	}
	// A copy carries the boot material in its own directory.
	cp, err := s.CopySnapshot(ctx, acct, "", sn.ID, "", false)
	if err != nil {
		t.Fatal(err)
	}
	cp, err = s.GetSnapshot(ctx, acct, cp.ID)
	if err != nil || cp.State != "completed" || cp.Boot == nil || cp.Boot.KernelCmdline != "console=ttyS0" ||
		filepath.Dir(cp.Boot.Kernel) != filepath.Join(bootDir, cp.ID) {
		t.Fatalf("copy of the image snapshot: %+v %v", cp, err)
	}
	// Deleting the snapshot removes its boot files, not the copy's.
	if err := s.DeleteSnapshot(ctx, acct, sn.ID); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(filepath.Join(bootDir, sn.ID)); !os.IsNotExist(err) {
		t.Fatalf("boot files left after DeleteSnapshot: %v", err)
	}
	if data, err := os.ReadFile(cp.Boot.Initrd); err != nil || string(data) != "boot initrd.img" {
		t.Fatalf("the copy's initrd after the source's delete: %q %v", data, err)
	}
}

func TestSnapshotImageFailuresLeaveNothing(t *testing.T) {
	ctx := context.Background()
	_, disk, kernel, _ := amiFiles(t)
	// Boot files but nowhere to keep them.
	s := newServiceWithBootDir(t, "")
	if _, err := s.SnapshotImage(ctx, volumes.ImageSnapshotInput{OwnerID: acct, ImageID: "ami-0123456789abcdef0", Disk: disk, Boot: volumes.Boot{Kernel: kernel}}); err == nil || !strings.Contains(err.Error(), "BootDir") {
		t.Fatalf("SnapshotImage without BootDir: %v", err)
	}
	// A disk that is not there.
	if _, err := s.SnapshotImage(ctx, volumes.ImageSnapshotInput{OwnerID: acct, ImageID: "ami-0123456789abcdef0", Disk: filepath.Join(t.TempDir(), "none.qcow2")}); err == nil {
		t.Fatal("SnapshotImage of a missing disk succeeded")
	}
	if list, err := s.Snapshots(ctx, acct); err != nil || len(list) != 0 {
		t.Fatalf("records left by failed SnapshotImage: %+v %v", list, err)
	}
	// Without boot material no BootDir is needed; the snapshot has none.
	sn, err := s.SnapshotImage(ctx, volumes.ImageSnapshotInput{OwnerID: acct, ImageID: "ami-0123456789abcdef0", Disk: disk})
	if err != nil || sn.Boot == nil || sn.Boot.Kernel != "" || sn.VolumeSize != 1 {
		t.Fatalf("plain SnapshotImage: %+v %v", sn, err)
	}
}

func TestWriteSnapshotDiskRefusals(t *testing.T) {
	s := newServiceWithBootDir(t, t.TempDir())
	ctx := context.Background()
	dst := filepath.Join(t.TempDir(), "out.qcow2")
	_, err := s.WriteSnapshotDisk(ctx, acct, "snap-0123456789abcdef0", dst)
	wantCode(t, err, "InvalidSnapshot.NotFound")
	_, err = s.WriteSnapshotDisk(ctx, acct, "snap-bad", dst)
	wantCode(t, err, "InvalidSnapshotID.Malformed")

	v, err := s.Create(ctx, acct, volumes.CreateInput{AvailabilityZone: "lab-1a", SizeGiB: ptr(1), Encrypted: ptr(true)})
	if err != nil {
		t.Fatal(err)
	}
	sn, err := s.CreateSnapshot(ctx, acct, v.ID, "")
	if err != nil {
		t.Fatal(err)
	}
	if got := waitSnapshot(t, s, sn.ID); got.State != "completed" {
		t.Fatalf("encrypted snapshot: %+v", got)
	}
	_, err = s.WriteSnapshotDisk(ctx, acct, sn.ID, dst)
	wantCode(t, err, "InvalidParameterValue")
	if !strings.Contains(err.Error(), "encrypted") {
		t.Fatalf("message does not say why: %v", err)
	}
	if err := s.ForceState(ctx, acct, sn.ID, "pending"); err != nil {
		t.Fatal(err)
	}
	_, err = s.WriteSnapshotDisk(ctx, acct, sn.ID, dst)
	wantCode(t, err, "IncorrectState")
	if _, err := os.Stat(dst); !os.IsNotExist(err) {
		t.Fatalf("refused writes left %s: %v", dst, err)
	}
}
