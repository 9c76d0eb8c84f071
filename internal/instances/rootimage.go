package instances

import (
	"context"
	"fmt"
	"os/exec"

	"github.com/labcloud/labcloud/hypervisor"
	"github.com/labcloud/labcloud/internal/errdefs"
)

// RootDisk is an instance's root disk as CreateImage needs it.
type RootDisk struct {
	InstanceID string
	ImageID    string
	Boot       BootSource
	// VolumeID is the root EBS volume (empty for an instance from
	// before root volumes, whose root is an overlay file).
	VolumeID string
}

// RootDisk returns the root disk of a running or stopped instance of the
// account (IncorrectInstanceState otherwise), for CreateImage.
func (s *Service) RootDisk(ctx context.Context, account, id string) (RootDisk, error) {
	i, err := s.Get(ctx, account, id)
	if err != nil {
		return RootDisk{}, err
	}
	if i.Status.State != StateRunning && i.Status.State != StateStopped {
		return RootDisk{}, errdefs.Conflict("IncorrectInstanceState", "The instance '%s' is not in a state from which it can be imaged (it is %s): wait until it is running or stopped", id, i.Status.State)
	}
	if i.Status.OverlayPath == "" {
		return RootDisk{}, errdefs.Conflict("IncorrectInstanceState", "The instance '%s' has no root disk yet: wait until it is running or stopped", id)
	}
	return RootDisk{InstanceID: i.ID, ImageID: i.ImageID, Boot: i.Boot, VolumeID: i.Status.RootVolumeID}, nil
}

// CopyRootDisk writes the instance's root disk, its overlay chain
// flattened, as a standalone qcow2 file at dst (qemu-img convert
// --force-share, since QEMU holds the overlay's lock while the VM runs).
//
// Unless noReboot, a running VM is paused (QMP stop) for the copy and
// resumed after it, so the copy is crash-consistent: AWS reboots the
// instance instead, and pausing gives the same consistency without the
// guest noticing more than a stall. With noReboot the copy is taken from
// the live disk, and writes in flight may be torn, as on AWS.
func (s *Service) CopyRootDisk(ctx context.Context, account, id, dst string, noReboot bool) error {
	i, err := s.Get(ctx, account, id)
	if err != nil {
		return err
	}
	if i.Status.OverlayPath == "" {
		return errdefs.Conflict("IncorrectInstanceState", "The instance '%s' has no root disk yet: wait until it is running or stopped", id)
	}
	if !noReboot {
		if p, ok := s.opts.Driver.(hypervisor.Pauser); ok {
			st, err := s.opts.Driver.Status(ctx, i.ID)
			if err == nil && st.State == hypervisor.StateRunning {
				if err := p.Pause(ctx, i.ID); err != nil {
					return fmt.Errorf("pausing %s for a consistent copy: %w", i.ID, err)
				}
				defer func() {
					// Resume even when the request was cancelled: a VM
					// must not stay frozen.
					_ = p.Resume(context.WithoutCancel(ctx), i.ID)
				}()
			}
		}
	}
	out, err := exec.CommandContext(ctx, "qemu-img", "convert", "-U", "-O", "qcow2", i.Status.OverlayPath, dst).CombinedOutput()
	if err != nil {
		return fmt.Errorf("copying the root disk of %s: %v: %s", i.ID, err, out)
	}
	return nil
}
