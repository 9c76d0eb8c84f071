package instances

import (
	"context"
	"fmt"

	"github.com/labcloud/labcloud/hypervisor"
	"github.com/labcloud/labcloud/internal/errdefs"
	"github.com/labcloud/labcloud/internal/volumes"
)

// Root volumes.
//
// With the volume service (Options.Volumes, always set in labcloudd) an
// instance's root disk is an EBS volume, as on AWS: a gp3 volume of the
// AMI's root size made as a copy-on-write overlay of the AMI's disk in
// the block store, attached at the root device name from launch on. It
// shows in DescribeVolumes, can be snapshotted, grown and retyped with
// ModifyVolume, is never detached, and goes with the instance at
// terminate when DeleteOnTermination says so (else it stays, available).
// Its hypervisor disk id is the volume id, so the volume hooks
// (volumeHooks) and the daemon's live snapshots find its QEMU nodes as
// they find a data volume's. Instances launched before this (a root
// overlay file in the instance's directory, OverlayPath set and no
// RootVolumeID) keep that overlay, and so do services without volumes.

// usesRootVolume reports whether i's root disk is (or is to be) a volume.
func (s *Service) usesRootVolume(i Instance) bool {
	if i.Status.RootVolumeID != "" {
		return true
	}
	return s.opts.Volumes != nil && i.Status.OverlayPath == ""
}

// ensureRootVolume makes i's root volume and attaches it (each part
// idempotent, so a retried step carries on where the last one stopped),
// and records the disk the VM gets from it.
func (s *Service) ensureRootVolume(ctx context.Context, key string, i Instance) (Instance, error) {
	vols, err := s.volumesService()
	if err != nil {
		return i, err
	}
	if i.Status.RootVolumeID == "" {
		// Name it first: a terminate that arrives meanwhile finds it.
		id := volumes.NewVolumeID()
		if i, err = s.saveNames(ctx, key, func(x *Instance) {
			if x.Status.RootVolumeID == "" {
				x.Status.RootVolumeID = id
			}
		}); err != nil {
			return i, err
		}
	}
	id := i.Status.RootVolumeID
	v, err := vols.Get(ctx, i.AccountID, id)
	switch {
	case errdefs.Is(err, errdefs.ClassNotFound) && i.Status.EverRan:
		return i, fmt.Errorf("the root volume %s of %s is gone; the instance cannot start without it", id, i.ID)
	case errdefs.Is(err, errdefs.ClassNotFound):
		size := i.Boot.RootSizeGiB
		v, err = vols.Create(ctx, i.AccountID, volumes.CreateInput{ID: id, AvailabilityZone: i.AvailabilityZone,
			SizeGiB: &size, Type: volumes.GP3, BaseImage: i.Boot.Disk})
		if err != nil {
			return i, fmt.Errorf("creating the root volume: %w", err)
		}
	case err != nil:
		return i, fmt.Errorf("reading the root volume %s: %w", id, err)
	}
	switch v.State {
	case volumes.StateError:
		if !i.Status.EverRan {
			// Nothing of the guest's is in it yet: drop it, so the
			// next try makes it again under the same id.
			if derr := vols.Delete(ctx, i.AccountID, id); derr != nil {
				s.log.Warn("removing a root volume that failed", "volume", id, "err", derr)
			}
		}
		return i, fmt.Errorf("creating the root volume %s: %s", id, v.StatusMessage)
	case volumes.StateAvailable, volumes.StateInUse:
	default:
		return i, fmt.Errorf("the root volume %s is %s", id, v.State)
	}
	if len(v.Attachments) == 0 || v.Attachments[0].InstanceID != i.ID {
		if v, err = vols.AttachRoot(ctx, i.AccountID, id, i.ID, i.AvailabilityZone, i.Boot.RootDeviceName, i.Boot.DeleteOnTermination); err != nil {
			return i, fmt.Errorf("attaching the root volume: %w", err)
		}
	}
	if a := v.Attachments[0]; a.DeleteOnTermination != i.Boot.DeleteOnTermination {
		// ModifyInstanceAttribute changed it before the attachment
		// existed; the instance's choice is the one terminate follows.
		if v, err = vols.SetDeleteOnTermination(ctx, i.AccountID, id, i.Boot.DeleteOnTermination); err != nil {
			return i, fmt.Errorf("recording DeleteOnTermination of the root volume: %w", err)
		}
	}
	bv, err := vols.Backend().Volume(ctx, id)
	if err != nil {
		return i, fmt.Errorf("finding the storage of the root volume %s: %w", id, err)
	}
	d := volumeDisk(id, bv.Path, string(bv.Format), volumes.ThrottleFor(v.Spec()))
	// The guest images find their root at the first virtio disk
	// (root=/dev/vda); the serial stays "root" as before root volumes.
	d.Serial = "root"
	if bv.Encrypted {
		d.KeyFile = bv.KeyFile
		for _, l := range bv.Chain {
			d.Backing = append(d.Backing, hypervisor.DiskLayer{Path: l.Path, Format: hypervisor.DiskFormat(l.Format), Encrypted: l.Encrypted})
		}
	}
	if err := d.Validate(); err != nil {
		return i, err
	}
	if i.Status.OverlayPath != d.Path || !sameDisk(i.Status.RootDisk, d) {
		if i, err = s.saveNames(ctx, key, func(x *Instance) { x.Status.OverlayPath, x.Status.RootDisk = d.Path, &d }); err != nil {
			return i, err
		}
	}
	return i, nil
}

// volumeDisk is the VM disk of volume id: its id and virtio serial
// name the volume, its limits are the volume type's.
func volumeDisk(id, path, format string, t volumes.Throttle) hypervisor.Disk {
	return hypervisor.Disk{ID: id, Path: path, Format: hypervisor.DiskFormat(format), Serial: DiskSerial(id), Throttle: VolumeThrottle(t)}
}

func sameDisk(a *hypervisor.Disk, b hypervisor.Disk) bool {
	if a == nil || a.ID != b.ID || a.Path != b.Path || a.Format != b.Format || a.Serial != b.Serial || a.KeyFile != b.KeyFile || len(a.Backing) != len(b.Backing) {
		return false
	}
	if (a.Throttle == nil) != (b.Throttle == nil) || a.Throttle != nil && *a.Throttle != *b.Throttle {
		return false
	}
	for k := range a.Backing {
		if a.Backing[k] != b.Backing[k] {
			return false
		}
	}
	return true
}

// releaseRootVolume gives back the root volume of a terminated instance
// (its VM is gone): deleted when DeleteOnTermination, else available. A
// volume attached elsewhere by now (a retried step after the user
// attached the kept volume to another instance) is left alone.
func (s *Service) releaseRootVolume(ctx context.Context, i Instance) error {
	vols := s.opts.Volumes
	id := i.Status.RootVolumeID
	if vols == nil || id == "" {
		return nil
	}
	v, err := vols.Get(ctx, i.AccountID, id)
	if errdefs.Is(err, errdefs.ClassNotFound) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("reading the root volume %s: %w", id, err)
	}
	if len(v.Attachments) > 0 && v.Attachments[0].InstanceID != i.ID {
		return nil
	}
	if _, err := vols.Release(ctx, i.AccountID, id, i.ID); err != nil && !errdefs.Is(err, errdefs.ClassNotFound) {
		return fmt.Errorf("detaching the root volume %s: %w", id, err)
	}
	if !i.Boot.DeleteOnTermination {
		return nil
	}
	if err := vols.Delete(ctx, i.AccountID, id); err != nil && !errdefs.Is(err, errdefs.ClassNotFound) {
		return fmt.Errorf("deleting the root volume %s (DeleteOnTermination): %w", id, err)
	}
	return nil
}
