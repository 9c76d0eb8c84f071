package instances

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"

	"github.com/labcloud/labcloud/hypervisor"
	"github.com/labcloud/labcloud/internal/errdefs"
	"github.com/labcloud/labcloud/internal/store"
	"github.com/labcloud/labcloud/internal/volumes"
)

// EBS attachments.
//
// AttachVolume and DetachVolume only check and record, as every instance
// call does: the volume record (internal/volumes) goes attaching or
// detaching, the instance record gets the entry in Instance.Volumes with
// the same state, and the controller, which already serialises all work
// on one instance, brings the VM in line (reconcileVolumes): it hot-plugs
// or unplugs the disk when the hypervisor holds a definition of the VM
// (running: live; stopped: only the definition), then settles both
// records. An instance whose VM is not defined yet gets its volumes from
// vmSpec when the controller defines it, which is also how a stopped
// instance gets them at its next start (the VM is redefined from the
// record at every start). Terminating an instance releases its volumes
// and deletes those marked DeleteOnTermination.

// Attachment states of Instance.Volumes entries (the EC2 names).
const (
	VolumeAttaching = volumes.AttachAttaching
	VolumeAttached  = volumes.AttachAttached
	VolumeDetaching = volumes.AttachDetaching
)

func (s *Service) volumesService() (*volumes.Service, error) {
	if s.opts.Volumes == nil {
		return nil, errdefs.New(errdefs.ClassUnavailable, "Unavailable", "this labcloudd runs without the volume service (EBS); check its log for why the block store did not start")
	}
	return s.opts.Volumes, nil
}

// deviceLetter is the letter that names a device slot: /dev/sdf and
// /dev/xvdf are the same slot (the guest sees xvdf for sdf on EC2 Xen).
func deviceLetter(dev string) string {
	for _, p := range []string{"/dev/xvd", "/dev/sd", "/dev/hd", "/dev/vd", "/dev/nvme"} {
		if strings.HasPrefix(dev, p) {
			return strings.TrimPrefix(dev, p)
		}
	}
	return dev
}

// DiskSerial is the virtio serial of a volume's disk: the volume id
// without its dash, what EC2 Nitro guests see in /dev/disk/by-id
// (nvme-Amazon_Elastic_Block_Store_vol0123…).
func DiskSerial(volumeID string) string { return strings.ReplaceAll(volumeID, "-", "") }

// VolumeThrottle maps an EBS throttle onto the VM's disk limits. It
// applies the sustained (baseline) rate only: QEMU's burst (iops-total-max
// for iops-total-max-length seconds) would let a short benchmark on a
// fresh gp2 volume see 3000 IOPS, and the lab shows the baseline (300
// IOPS at 100 GiB), as a volume whose credits are spent does on AWS.
func VolumeThrottle(t volumes.Throttle) *hypervisor.Throttle {
	t = t.Sustained()
	if t.IOPSTotal == 0 && t.BPSTotal == 0 {
		return nil
	}
	return &hypervisor.Throttle{IOPSTotal: t.IOPSTotal, BPSTotal: t.BPSTotal}
}

// AttachVolume attaches volume volID of account acct to instance instID
// at device: it checks the instance (not terminated, device free), the
// volume (same zone, available: volumes.Service.Attach), records the
// attachment as attaching and lets the controller plug the disk in. The
// volume as it is now (attaching) is returned.
func (s *Service) AttachVolume(ctx context.Context, acct, volID, instID, device string) (volumes.Volume, error) {
	vols, err := s.volumesService()
	if err != nil {
		return volumes.Volume{}, err
	}
	if err := volumes.CheckVolumeID(volID); err != nil {
		return volumes.Volume{}, err
	}
	inst, err := s.Get(ctx, acct, instID)
	if err != nil {
		return volumes.Volume{}, err
	}
	check := func(i Instance) error {
		if i.Spec.Desired == DesiredTerminated || i.Status.State == StateTerminated || i.Status.State == StateShuttingDown {
			return errdefs.Conflict("IncorrectInstanceState", "The instance '%s' is not in a state from which a volume can be attached (it is %s); attach volumes to pending, running or stopped instances", i.ID, i.Status.State)
		}
		if deviceLetter(device) == deviceLetter(i.Boot.RootDeviceName) {
			return errdefs.InvalidParameter("InvalidParameterValue", "Invalid value '%s' for unixDevice. Attachment point %s is already in use by the root volume; use /dev/sdf through /dev/sdp", device, device)
		}
		for _, a := range i.Volumes {
			if a.VolumeID == volID {
				return errdefs.Conflict("VolumeInUse", "%s is already attached to an instance (%s)", volID, i.ID)
			}
			if deviceLetter(a.Device) == deviceLetter(device) {
				return errdefs.InvalidParameter("InvalidParameterValue", "Invalid value '%s' for unixDevice. Attachment point %s is already in use by %s; pick another of /dev/sdf through /dev/sdp", device, device, a.VolumeID)
			}
		}
		return nil
	}
	if err := check(inst); err != nil {
		return volumes.Volume{}, err
	}
	v, err := vols.Get(ctx, acct, volID)
	if err != nil {
		return volumes.Volume{}, err
	}
	if v, err = vols.Attach(ctx, acct, volID, instID, inst.AvailabilityZone, device); err != nil {
		return volumes.Volume{}, err
	}
	// From here on a failure gives the volume back (available).
	revert := func(cause error) (volumes.Volume, error) {
		if _, err := vols.Release(context.WithoutCancel(ctx), acct, volID, instID); err != nil {
			s.log.Warn("reverting a failed attach", "volume", volID, "instance", instID, "err", err)
		}
		return volumes.Volume{}, cause
	}
	bv, err := vols.Backend().Volume(ctx, volID)
	if err != nil {
		return revert(fmt.Errorf("finding the storage of %s: %w", volID, err))
	}
	a := VolumeAttachment{VolumeID: volID, Device: device, State: VolumeAttaching, AttachTime: v.Attachments[0].AttachTime,
		Disk: hypervisor.Disk{ID: volID, Path: bv.Path, Format: hypervisor.DiskFormat(bv.Format), Serial: DiskSerial(volID),
			Throttle: VolumeThrottle(volumes.ThrottleFor(v.Spec()))}}
	if bv.Encrypted {
		// The key at the volume and at each encrypted layer, every layer
		// opened explicitly (as blockdev/qcow2.FormatNodeOptions does).
		a.Disk.KeyFile = bv.KeyFile
		for _, l := range bv.Chain {
			a.Disk.Backing = append(a.Disk.Backing, hypervisor.DiskLayer{Path: l.Path, Format: hypervisor.DiskFormat(l.Format), Encrypted: l.Encrypted})
		}
	}
	if err := a.Disk.Validate(); err != nil {
		return revert(err)
	}
	key := instanceKey(acct, instID)
	if _, err := store.Update(ctx, s.opts.Store, key, func(i *Instance) error {
		if err := check(*i); err != nil {
			return err
		}
		i.Volumes = append(i.Volumes, a)
		return nil
	}); err != nil {
		return revert(err)
	}
	s.queue.add(key)
	return v, nil
}

// DetachVolume starts detaching volume volID (from instID when given;
// InvalidAttachment.NotFound when it is attached elsewhere) and returns
// the volume as it is now (detaching). The controller unplugs the disk;
// a running guest must release it. With force, a guest that does not
// release it within moments has the disk's storage cut from under it
// (hypervisor.DiskForceDetacher): the volume becomes available, and
// writes the guest had not flushed are lost, as AWS warns.
func (s *Service) DetachVolume(ctx context.Context, acct, volID, instID string, force bool) (volumes.Volume, error) {
	vols, err := s.volumesService()
	if err != nil {
		return volumes.Volume{}, err
	}
	if err := volumes.CheckVolumeID(volID); err != nil {
		return volumes.Volume{}, err
	}
	if instID != "" {
		if err := checkIDs([]string{instID}); err != nil {
			return volumes.Volume{}, err
		}
	}
	before, err := vols.Get(ctx, acct, volID)
	if err != nil {
		return volumes.Volume{}, err
	}
	v, err := vols.Detach(ctx, acct, volID, instID)
	if err != nil {
		return volumes.Volume{}, err
	}
	owner := v.Attachments[0].InstanceID
	key := instanceKey(acct, owner)
	_, err = store.Update(ctx, s.opts.Store, key, func(i *Instance) error {
		k := slices.IndexFunc(i.Volumes, func(a VolumeAttachment) bool { return a.VolumeID == volID })
		if k < 0 {
			return errNoEntry
		}
		i.Volumes[k].State, i.Volumes[k].Force = VolumeDetaching, i.Volumes[k].Force || force
		return nil
	})
	switch {
	case errors.Is(err, errNoEntry), errors.Is(err, store.ErrNotFound):
		// The instance does not hold it (gone, or an attach that never
		// reached its record): nothing to unplug.
		if _, err := vols.Release(ctx, acct, volID, owner); err != nil {
			return volumes.Volume{}, err
		}
	case err != nil:
		// Put the attachment back as it was.
		if before.Attachments[0].State == VolumeAttached {
			vols.AttachDone(context.WithoutCancel(ctx), acct, volID, nil)
		}
		return volumes.Volume{}, err
	default:
		s.queue.add(key)
	}
	return v, nil
}

var errNoEntry = errors.New("the instance holds no such volume")

// SetVolumeDeleteOnTermination changes DeleteOnTermination of the volume
// at device (ModifyInstanceAttribute BlockDeviceMapping). For the root
// device it changes the instance's choice, which terminate follows, and
// the root volume's attachment record when the root is a volume (an
// old-style root overlay goes with the instance whatever it says).
func (s *Service) SetVolumeDeleteOnTermination(ctx context.Context, acct, instID, device string, on bool) error {
	if _, err := s.Get(ctx, acct, instID); err != nil {
		return err
	}
	var volID string
	_, err := store.Update(ctx, s.opts.Store, instanceKey(acct, instID), func(i *Instance) error {
		volID = ""
		if device == i.Boot.RootDeviceName {
			i.Boot.DeleteOnTermination, volID = on, i.Status.RootVolumeID
			return nil
		}
		for k, a := range i.Volumes {
			if a.Device == device || deviceLetter(a.Device) == deviceLetter(device) {
				i.Volumes[k].DeleteOnTermination, volID = on, a.VolumeID
				return nil
			}
		}
		return errdefs.InvalidParameter("InvalidInstanceAttributeValue", "No device is currently mapped at %s on %s; list the instance's BlockDeviceMappings with DescribeInstances", device, instID)
	})
	if err != nil || volID == "" {
		return err
	}
	if s.opts.Volumes == nil {
		return nil
	}
	_, err = s.opts.Volumes.SetDeleteOnTermination(ctx, acct, volID, on)
	if volID != "" && errdefs.Is(err, errdefs.ClassConflict) {
		return nil // a root volume not attached yet: AttachRoot takes the instance's choice
	}
	return err
}

// volumeDisks are the disks of the volumes an instance's VM should have
// when it is (re)defined.
func volumeDisks(i Instance) []hypervisor.Disk {
	var out []hypervisor.Disk
	for _, a := range i.Volumes {
		if a.State != VolumeDetaching {
			out = append(out, a.Disk)
		}
	}
	return out
}

// reconcileVolumes plugs in and takes out the disks of i's attachments
// that are attaching or detaching, and settles the volume records. It
// reports whether it changed the instance record. A failed unplug (the
// guest did not release the disk) stays detaching with LastError and is
// tried again at the next resync; a failed hot-plug ends the attachment
// and gives the volume back.
func (s *Service) reconcileVolumes(ctx context.Context, key string, i Instance) (bool, error) {
	vols := s.opts.Volumes
	if vols == nil || len(i.Volumes) == 0 {
		return false, nil
	}
	changed := false
	for _, a := range i.Volumes {
		switch a.State {
		case VolumeAttaching:
			var plugErr error
			if i.Status.VMDefined {
				plugErr = s.opts.Driver.AttachDisk(ctx, i.ID, a.Disk)
				if errdefs.Is(plugErr, errdefs.ClassAlreadyExists) || errdefs.Is(plugErr, errdefs.ClassNotFound) {
					plugErr = nil // already in the definition, or none to change: vmSpec has it
				}
			}
			if plugErr != nil {
				s.log.Warn("attaching a volume failed", "instance", i.ID, "volume", a.VolumeID, "err", plugErr)
				if _, err := vols.AttachDone(ctx, i.AccountID, a.VolumeID, plugErr); err != nil && !errdefs.Is(err, errdefs.ClassNotFound) {
					return changed, err
				}
				if err := s.dropVolume(ctx, key, a.VolumeID); err != nil {
					return changed, err
				}
				changed = true
				continue
			}
			if _, err := vols.AttachDone(ctx, i.AccountID, a.VolumeID, nil); err != nil && !errdefs.Is(err, errdefs.ClassNotFound) {
				return changed, err
			}
			if err := s.setVolume(ctx, key, a.VolumeID, func(x *VolumeAttachment) { x.State, x.LastError = VolumeAttached, "" }); err != nil {
				return changed, err
			}
			changed = true
		case VolumeDetaching:
			if i.Status.VMDefined {
				detach := s.opts.Driver.DetachDisk
				if fd, ok := s.opts.Driver.(hypervisor.DiskForceDetacher); ok && a.Force {
					// DetachVolume --force: a guest that does not let go
					// has the disk cut from under it, as on AWS.
					detach = fd.ForceDetachDisk
				}
				err := detach(ctx, i.ID, a.VolumeID)
				if err != nil && !errdefs.Is(err, errdefs.ClassNotFound) {
					s.log.Warn("detaching a volume failed; trying again", "instance", i.ID, "volume", a.VolumeID, "err", err)
					if a.LastError != err.Error() {
						if err := s.setVolume(ctx, key, a.VolumeID, func(x *VolumeAttachment) { x.LastError = err.Error() }); err != nil {
							return changed, err
						}
						changed = true
					}
					continue
				}
			}
			if _, err := vols.Release(ctx, i.AccountID, a.VolumeID, i.ID); err != nil && !errdefs.Is(err, errdefs.ClassNotFound) {
				return changed, err
			}
			if err := s.dropVolume(ctx, key, a.VolumeID); err != nil {
				return changed, err
			}
			changed = true
		}
	}
	return changed, nil
}

// releaseVolumes gives back the volumes of a terminated instance (its VM
// is gone): each becomes available, and those marked DeleteOnTermination
// are deleted.
func (s *Service) releaseVolumes(ctx context.Context, key string, i Instance) error {
	vols := s.opts.Volumes
	if vols == nil {
		return nil
	}
	for _, a := range i.Volumes {
		if _, err := vols.Release(ctx, i.AccountID, a.VolumeID, i.ID); err != nil && !errdefs.Is(err, errdefs.ClassNotFound) {
			return fmt.Errorf("detaching volume %s: %w", a.VolumeID, err)
		}
		if a.DeleteOnTermination {
			if err := vols.Delete(ctx, i.AccountID, a.VolumeID); err != nil && !errdefs.Is(err, errdefs.ClassNotFound) {
				return fmt.Errorf("deleting volume %s (DeleteOnTermination): %w", a.VolumeID, err)
			}
		}
		if err := s.dropVolume(ctx, key, a.VolumeID); err != nil {
			return err
		}
	}
	return nil
}

func (s *Service) setVolume(ctx context.Context, key, volID string, fn func(*VolumeAttachment)) error {
	_, err := s.saveNames(ctx, key, func(i *Instance) {
		for k := range i.Volumes {
			if i.Volumes[k].VolumeID == volID {
				fn(&i.Volumes[k])
			}
		}
	})
	return err
}

func (s *Service) dropVolume(ctx context.Context, key, volID string) error {
	_, err := s.saveNames(ctx, key, func(i *Instance) {
		i.Volumes = slices.DeleteFunc(i.Volumes, func(a VolumeAttachment) bool { return a.VolumeID == volID })
	})
	return err
}

// VolumeHooks is what the volume service calls when an attached volume
// changes (volumes.Service.SetAttached): new I/O limits and a bigger size
// reach the VM at once, a snapshot of a volume whose VM is not running
// just reads the file.
func (s *Service) VolumeHooks() volumes.Attached { return volumeHooks{s} }

type volumeHooks struct{ s *Service }

// owner finds the instance a volume is attached to.
func (h volumeHooks) owner(ctx context.Context, v volumes.Volume) (Instance, error) {
	if len(v.Attachments) == 0 {
		return Instance{}, errdefs.Conflict("IncorrectState", "Volume %s is not attached", v.ID)
	}
	i, _, err := store.Load[Instance](ctx, h.s.opts.Store, instanceKey(v.OwnerID, v.Attachments[0].InstanceID))
	return i, err
}

func (h volumeHooks) running(ctx context.Context, i Instance) bool {
	if !i.Status.VMDefined {
		return false
	}
	st, err := h.s.opts.Driver.Status(ctx, i.ID)
	return err == nil && st.State != hypervisor.StateStopped
}

// Throttle records the volume's new limits for the next definition of
// the VM and applies them to the defined VM (live when it runs).
func (h volumeHooks) Throttle(ctx context.Context, v volumes.Volume, t volumes.Throttle) error {
	i, err := h.owner(ctx, v)
	if err != nil {
		return err
	}
	limits := VolumeThrottle(t)
	if err := h.s.setVolume(ctx, instanceKey(i.AccountID, i.ID), v.ID, func(x *VolumeAttachment) { x.Disk.Throttle = limits }); err != nil {
		return err
	}
	if v.ID == i.Status.RootVolumeID {
		// The root volume's disk is in the status (rootvolume.go); the
		// controller refreshes it from the volume record too.
		if _, err := h.s.saveNames(ctx, instanceKey(i.AccountID, i.ID), func(x *Instance) {
			if x.Status.RootDisk != nil && x.Status.RootDisk.ID == v.ID {
				x.Status.RootDisk.Throttle = limits
			}
		}); err != nil {
			return err
		}
	}
	if !i.Status.VMDefined {
		return nil
	}
	dt, ok := h.s.opts.Driver.(hypervisor.DiskThrottler)
	if !ok {
		return errdefs.New(errdefs.ClassUnavailable, "IncorrectState", "this hypervisor cannot change the I/O limits of an attached volume; stop instance %s and modify the volume again", i.ID)
	}
	var l hypervisor.Throttle
	if limits != nil {
		l = *limits
	}
	if err := dt.SetDiskThrottle(ctx, i.ID, v.ID, l); err != nil && !errdefs.Is(err, errdefs.ClassNotFound) {
		return err
	}
	return nil
}

// Resize tells a running VM that the volume grew (QMP block_resize);
// a VM that is not running sees the new size when it boots.
func (h volumeHooks) Resize(ctx context.Context, v volumes.Volume, sizeBytes int64) error {
	i, err := h.owner(ctx, v)
	if err != nil {
		return err
	}
	if !h.running(ctx, i) {
		return nil
	}
	r, ok := h.s.opts.Driver.(hypervisor.DiskResizer)
	if !ok {
		return errdefs.New(errdefs.ClassUnavailable, "IncorrectState", "this hypervisor cannot grow a disk of a running VM; stop instance %s and modify the volume again", i.ID)
	}
	return r.ResizeDisk(ctx, i.ID, v.ID, sizeBytes)
}

// Snapshot takes the snapshot directly when the VM is not running
// (nothing writes the file). Snapshots of a volume a running VM writes
// need QEMU's live-snapshot sequence (blockdev/qcow2.PlanLiveSnapshot):
// the daemon wraps these hooks with it (internal/daemon liveVolumes);
// used alone (tests with the fake driver) they end in error saying so.
func (h volumeHooks) Snapshot(ctx context.Context, v volumes.Volume, take func(context.Context) error) error {
	i, err := h.owner(ctx, v)
	if err != nil {
		return err
	}
	if h.running(ctx, i) {
		return errdefs.Conflict("IncorrectState", "volume %s is attached to running instance %s and labcloud cannot yet snapshot a volume while a VM writes it; stop the instance (or detach the volume) and snapshot again", v.ID, i.ID)
	}
	return take(ctx)
}
