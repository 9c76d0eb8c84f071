package volumes

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"time"

	"github.com/labcloud/labcloud/blockdev"
	"github.com/labcloud/labcloud/internal/errdefs"
	"github.com/labcloud/labcloud/internal/store"
)

// NoSourceVolume is the VolumeId of snapshots that were not taken of an
// EBS volume record, as AWS writes it for snapshots without a source
// volume (CopySnapshot's and CreateImage's in some regions): CreateImage
// of an instance from before root volumes, whose root is an overlay file
// of the instance layer.
const NoSourceVolume = "vol-ffffffff"

// Boot is what an AMI boots with besides its disk. A snapshot taken by
// CreateImage keeps it in its stored record (never in API output) so
// that RegisterImage from the snapshot gives an AMI that boots the same
// way; a snapshot without it gives an AMI that boots the disk's own
// loader, as a real HVM AMI does.
type Boot struct {
	// Kernel and Initrd are files under Options.BootDir/<snap-id>/ that
	// the volumes service owns: they go with the snapshot.
	Kernel         string `json:"kernel,omitempty"`
	Initrd         string `json:"initrd,omitempty"`
	KernelCmdline  string `json:"kernelCmdline,omitempty"`
	Architecture   string `json:"architecture,omitempty"`
	RootDeviceName string `json:"rootDeviceName,omitempty"`
}

// ImageSnapshotInput says which AMI disk to record as a snapshot.
type ImageSnapshotInput struct {
	OwnerID    string
	ImageID    string
	InstanceID string
	// VolumeID is the root volume the disk was copied from, shown as the
	// snapshot's VolumeId; empty: NoSourceVolume.
	VolumeID string
	// Disk is the AMI's standalone, read-only qcow2 disk.
	Disk string
	// SizeGiB is the root volume's size; 0 means the disk's own size.
	SizeGiB int
	// Boot is the AMI's boot material; its Kernel and Initrd are linked
	// (or copied) into Options.BootDir, so they outlive the AMI's files.
	Boot Boot
}

// Boot file names under Options.BootDir/<snap-id>/.
const (
	bootKernelFile = "vmlinuz"
	bootInitrdFile = "initrd.img"
)

func (s *Service) bootDir(id string) string {
	if s.opts.BootDir == "" {
		return ""
	}
	return filepath.Join(s.opts.BootDir, id)
}

// SnapshotImage records an AMI's disk as a completed EBS snapshot of
// in.OwnerID (EC2 CreateImage makes one per EBS mapping). The backend
// has no import of a foreign qcow2, so a scratch volume is made as a
// copy-on-write overlay of the disk, snapshotted (a full snapshot: the
// scratch volume has no earlier one) and removed. The call returns once
// the snapshot is completed; a failure removes everything it made.
func (s *Service) SnapshotImage(ctx context.Context, in ImageSnapshotInput) (sn Snapshot, err error) {
	if in.Disk == "" {
		return Snapshot{}, errors.New("volumes: ImageSnapshotInput.Disk is required")
	}
	src := in.VolumeID
	if src == "" {
		src = NoSourceVolume
	}
	sn = Snapshot{ID: newID("snap-"), OwnerID: in.OwnerID, VolumeID: src, VolumeSize: in.SizeGiB, State: "pending",
		StartTime:   s.opts.Now().UTC().Truncate(time.Millisecond),
		Description: fmt.Sprintf("Created by CreateImage(%s) for %s", in.InstanceID, in.ImageID)}
	if _, err := s.opts.Store.Create(ctx, snapKey(in.OwnerID, sn.ID), sn); err != nil {
		return Snapshot{}, err
	}
	id, acct := sn.ID, in.OwnerID
	defer func() {
		if err == nil {
			return
		}
		// A fresh context: the request's may be what failed.
		dctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		if derr := s.opts.Backend.DeleteSnapshot(dctx, id); derr != nil {
			s.log.Error("removing the data of a failed image snapshot", "snapshot", id, "err", derr)
		}
		if d := s.bootDir(id); d != "" {
			os.RemoveAll(d)
		}
		_ = s.opts.Store.Delete(dctx, snapKey(acct, id))
	}()
	boot, err := s.keepBoot(id, in.Boot)
	if err != nil {
		return Snapshot{}, err
	}
	scratch := "image-" + id
	var size int64
	if in.SizeGiB > 0 {
		size = int64(in.SizeGiB) << 30
	}
	if _, err := s.opts.Backend.CreateVolume(ctx, blockdev.CreateVolumeInput{ID: scratch, BaseImage: in.Disk, SizeBytes: size}); err != nil {
		return Snapshot{}, fmt.Errorf("reading the disk of %s: %w", in.ImageID, err)
	}
	_, terr := s.opts.Backend.CreateSnapshot(ctx, blockdev.CreateSnapshotInput{ID: id, VolumeID: scratch})
	if derr := s.opts.Backend.DeleteVolume(ctx, scratch); derr != nil && terr == nil {
		terr = derr
	}
	if terr != nil {
		return Snapshot{}, fmt.Errorf("snapshotting the disk of %s: %w", in.ImageID, terr)
	}
	b, err := s.opts.Backend.Snapshot(ctx, id)
	if err != nil {
		return Snapshot{}, err
	}
	if b.State != blockdev.SnapshotCompleted {
		return Snapshot{}, fmt.Errorf("snapshot of the disk of %s is %s: %s", in.ImageID, b.State, b.Reason)
	}
	return store.Update(ctx, s.opts.Store, snapKey(acct, id), func(x *Snapshot) error {
		x.State, x.Progress, x.StoredBytes, x.StateMessage = "completed", 100, b.StoredBytes, ""
		x.VolumeSize = int((b.SizeBytes + (1<<30 - 1)) >> 30)
		x.Boot = &boot
		return nil
	})
}

// keepBoot links (or copies) b's kernel and initrd into snapshot id's
// boot directory and returns b with the new paths.
func (s *Service) keepBoot(id string, b Boot) (Boot, error) {
	if b.Kernel == "" && b.Initrd == "" {
		return b, nil
	}
	dir := s.bootDir(id)
	if dir == "" {
		return Boot{}, errors.New("volumes: Options.BootDir is not set; it is needed to keep the boot files of image snapshots")
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return Boot{}, err
	}
	for _, f := range []struct {
		path *string
		name string
	}{{&b.Kernel, bootKernelFile}, {&b.Initrd, bootInitrdFile}} {
		if *f.path == "" {
			continue
		}
		to := filepath.Join(dir, f.name)
		if err := linkOrCopy(*f.path, to); err != nil {
			return Boot{}, fmt.Errorf("keeping %s with snapshot %s: %w", *f.path, id, err)
		}
		*f.path = to
	}
	return b, nil
}

// copyBoot gives snapshot id (a copy) its own links to b's files and
// records them.
func (s *Service) copyBoot(ctx context.Context, acct, id string, b Boot) error {
	kept, err := s.keepBoot(id, b)
	if err != nil {
		return err
	}
	_, err = store.Update(ctx, s.opts.Store, snapKey(acct, id), func(x *Snapshot) error {
		x.Boot = &kept
		return nil
	})
	return err
}

// linkOrCopy hard-links from to to (the same inode: no copy, and the
// file stays when from's directory goes), copying when from is on
// another file system.
func linkOrCopy(from, to string) error {
	_ = os.Remove(to)
	if err := os.Link(from, to); err == nil {
		return nil
	}
	in, err := os.Open(from)
	if err != nil {
		return err
	}
	defer in.Close()
	out, err := os.OpenFile(to, os.O_CREATE|os.O_EXCL|os.O_WRONLY, 0o444)
	if err != nil {
		return err
	}
	if _, err := io.Copy(out, in); err != nil {
		out.Close()
		os.Remove(to)
		return err
	}
	return out.Close()
}

// WriteSnapshotDisk writes the content of the caller's completed
// snapshot id, flattened, as a standalone qcow2 file at dst (the disk of
// an AMI that RegisterImage makes from the snapshot). The data is read
// through a scratch copy-on-write volume made from the snapshot, which
// gives the backend's path and format of the chain; it is removed after.
//
// Encrypted snapshots are refused: an AMI's disk is the shared, unencrypted
// backing file of every instance launched from it, so converting would
// leave the snapshot's data in the clear.
func (s *Service) WriteSnapshotDisk(ctx context.Context, acct, id, dst string) (Snapshot, error) {
	sn, err := s.GetSnapshot(ctx, acct, id)
	if err != nil {
		return Snapshot{}, err
	}
	if sn.State != "completed" {
		return Snapshot{}, errdefs.Conflict("IncorrectState", "Snapshot '%s' is %s; register images from completed snapshots only (aws ec2 wait snapshot-completed)", id, sn.State)
	}
	if sn.Encrypted {
		return Snapshot{}, errdefs.InvalidParameter("InvalidParameterValue", "Snapshot '%s' is encrypted; labcloud registers images only from unencrypted snapshots (an AMI's disk is stored unencrypted and shared by every instance launched from it): create a volume from the snapshot instead", id)
	}
	scratch := "export-" + newID("")
	v, err := s.opts.Backend.CreateVolume(ctx, blockdev.CreateVolumeInput{ID: scratch, SnapshotID: id})
	if err != nil {
		return Snapshot{}, fmt.Errorf("reading snapshot %s: %w", id, err)
	}
	defer func() {
		if derr := s.opts.Backend.DeleteVolume(context.WithoutCancel(ctx), scratch); derr != nil {
			s.log.Error("removing a scratch volume", "volume", scratch, "err", derr)
		}
	}()
	format := string(v.Format)
	if format == "" {
		format = string(blockdev.FormatQCOW2)
	}
	out, err := exec.CommandContext(ctx, "qemu-img", "convert", "-q", "-f", format, "-O", "qcow2", v.Path, dst).CombinedOutput()
	if err != nil {
		os.Remove(dst)
		return Snapshot{}, fmt.Errorf("copying snapshot %s to %s: %v: %s", id, dst, err, out)
	}
	return sn, nil
}
