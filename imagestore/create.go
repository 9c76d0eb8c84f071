package imagestore

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"time"

	"github.com/labcloud/labcloud/imagestore/builder"
	"github.com/labcloud/labcloud/internal/errdefs"
	"github.com/labcloud/labcloud/internal/store"
)

// CreateInput says how to make an AMI from an instance (EC2 CreateImage).
type CreateInput struct {
	OwnerID     string
	Name        string
	Description string
	// Source is the AMI the instance was launched from: its kernel,
	// initrd, command line and architecture carry over.
	Source Image
	// RootDeviceName and SizeGiB describe the instance's root volume.
	RootDeviceName string
	SizeGiB        int
	// CopyRoot writes the instance's root disk, flattened, as a standalone
	// qcow2 file at dst.
	CopyRoot func(ctx context.Context, dst string) error
	// Snapshot records the new AMI's disk (im.Disk, written) as an EBS
	// snapshot and returns its id, which the root mapping names, as on
	// AWS. It runs before the image turns available; its failure fails
	// Create. Nil leaves the mapping without a SnapshotId (a labcloudd
	// without the EBS service).
	Snapshot func(ctx context.Context, im Image) (string, error)
}

// Create makes a private AMI of the caller's account from an instance's
// root disk. The record is stored first as pending (which also reserves
// the name: InvalidAMIName.Duplicate), the disk is copied within the call,
// recorded as an EBS snapshot (CreateInput.Snapshot), and the image then
// turns available; a failure removes the record and the files.
//
// The AMI keeps its own standalone disk file for instances to layer on;
// the snapshot is the EBS view of the same content, which outlives the
// AMI (DeregisterImage keeps it) and can be registered again
// (RegisterSnapshot) or restored as a volume.
func (c *Catalogue) Create(ctx context.Context, in CreateInput) (Image, error) {
	if in.CopyRoot == nil {
		return Image{}, errors.New("imagestore: CreateInput.CopyRoot is required")
	}
	arch := in.Source.Architecture
	if arch == "" {
		arch = "x86_64"
	}
	return c.build(ctx, buildInput{
		OwnerID: in.OwnerID, Name: in.Name, Description: in.Description, Architecture: arch,
		RootDeviceName: in.RootDeviceName, KernelCmdline: in.Source.KernelCmdline,
		Kernel: in.Source.Kernel, Initrd: in.Source.Initrd,
		Root:     Ebs{VolumeSize: in.SizeGiB, VolumeType: "gp3", DeleteOnTermination: true},
		CopyDisk: in.CopyRoot, Snapshot: in.Snapshot,
	})
}

// RegisterSnapshotInput says how to make an AMI from an EBS snapshot
// (EC2 RegisterImage with a root mapping that names a SnapshotId).
type RegisterSnapshotInput struct {
	OwnerID        string
	Name           string
	Description    string
	Architecture   string
	RootDeviceName string
	// Root is the root mapping: its SnapshotID, size (GiB), type and
	// DeleteOnTermination.
	Root Ebs
	// Kernel, Initrd and KernelCmdline are the snapshot's boot material
	// (empty: the disk boots with its own loader).
	Kernel, Initrd, KernelCmdline string
	// CopyDisk writes the snapshot's content, flattened, as a standalone
	// qcow2 file at dst.
	CopyDisk func(ctx context.Context, dst string) error
}

// RegisterSnapshot makes a private AMI of the caller from one of its
// snapshots: the disk is materialised in the image store (instances
// layer on a standalone qcow2 file there, as for every AMI) and the
// root mapping names the snapshot. Like Create, the record is pending
// until the files are in place.
func (c *Catalogue) RegisterSnapshot(ctx context.Context, in RegisterSnapshotInput) (Image, error) {
	if in.CopyDisk == nil {
		return Image{}, errors.New("imagestore: RegisterSnapshotInput.CopyDisk is required")
	}
	if in.Root.SnapshotID == "" {
		return Image{}, errors.New("imagestore: RegisterSnapshotInput.Root.SnapshotID is required")
	}
	arch := in.Architecture
	if arch == "" {
		arch = "x86_64"
	}
	if in.Root.VolumeType == "" {
		in.Root.VolumeType = "gp3"
	}
	return c.build(ctx, buildInput{
		OwnerID: in.OwnerID, Name: in.Name, Description: in.Description, Architecture: arch,
		RootDeviceName: in.RootDeviceName, KernelCmdline: in.KernelCmdline, Kernel: in.Kernel, Initrd: in.Initrd,
		Root: in.Root, CopyDisk: in.CopyDisk,
	})
}

// buildInput is what Create and RegisterSnapshot have in common.
type buildInput struct {
	OwnerID, Name, Description, Architecture, RootDeviceName string
	Kernel, Initrd, KernelCmdline                            string
	Root                                                     Ebs
	CopyDisk                                                 func(ctx context.Context, dst string) error
	Snapshot                                                 func(ctx context.Context, im Image) (string, error)
}

// build stores a pending private image, writes its files and makes it
// available; any failure removes the record, the name and the files.
func (c *Catalogue) build(ctx context.Context, in buildInput) (im Image, err error) {
	if err := ValidateName(in.Name); err != nil {
		return Image{}, err
	}
	if len(in.Description) > 255 {
		return Image{}, errdefs.InvalidParameter("InvalidParameterValue", "The description is longer than 255 characters")
	}
	rootDev := in.RootDeviceName
	if rootDev == "" {
		rootDev = "/dev/xvda"
	}
	root := in.Root
	im = Image{
		ID: newID(), OwnerID: in.OwnerID, Name: in.Name, Description: in.Description,
		Architecture: in.Architecture, State: StatePending, RootDeviceName: rootDev, RootDeviceType: "ebs",
		VirtualizationType: "hvm", Hypervisor: "xen", ImageType: "machine",
		CreationDate: c.now().UTC().Truncate(time.Millisecond), EnaSupport: true,
		KernelCmdline:       in.KernelCmdline,
		BlockDeviceMappings: []Mapping{{DeviceName: rootDev, Ebs: &root}},
	}
	im.Location = in.OwnerID + "/" + in.Name
	dir := filepath.Join(c.dir, im.ID)
	_, err = c.st.Txn(ctx, store.OpCreate(nameKey(im.OwnerID, im.Name), im.ID), store.OpCreate(imageKey(im.ID), im))
	if errors.Is(err, store.ErrExists) {
		return Image{}, errdefs.AlreadyExists("InvalidAMIName.Duplicate", "AMI name %s is already in use by AMI of account %s: choose another name or deregister that one", in.Name, in.OwnerID)
	}
	if err != nil {
		return Image{}, fmt.Errorf("storing image %s: %w", im.ID, err)
	}
	// The named result im is zeroed by a failing return: keep the keys.
	idKey, nKey := imageKey(im.ID), nameKey(im.OwnerID, im.Name)
	defer func() {
		if err != nil {
			os.RemoveAll(dir)
			// A fresh context: the request's may be what failed.
			dctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			defer cancel()
			_, _ = c.st.Txn(dctx, store.OpDelete(idKey), store.OpDelete(nKey))
		}
	}()
	if err = os.MkdirAll(dir, 0o755); err != nil {
		return Image{}, fmt.Errorf("creating %s: %w", dir, err)
	}
	disk := filepath.Join(dir, builder.DiskFileName)
	if err = in.CopyDisk(ctx, disk); err != nil {
		return Image{}, err
	}
	if err = os.Chmod(disk, 0o444); err != nil {
		return Image{}, err
	}
	// Kernel and initrd are linked in so the new AMI stays whole even
	// when the source's files are collected.
	for _, f := range []struct {
		from string
		dst  *string
		name string
	}{{in.Kernel, &im.Kernel, builder.KernelFileName}, {in.Initrd, &im.Initrd, builder.InitrdFileName}} {
		if f.from == "" {
			continue
		}
		to := filepath.Join(dir, f.name)
		if err = copyReadOnly(f.from, to, ""); err != nil {
			return Image{}, err
		}
		*f.dst = to
	}
	im.Disk = disk
	if in.Snapshot != nil {
		var snap string
		if snap, err = in.Snapshot(ctx, im); err != nil {
			return Image{}, err
		}
		im.BlockDeviceMappings[0].Ebs.SnapshotID = snap
	}
	im.State = StateAvailable
	if _, err = c.st.Put(ctx, imageKey(im.ID), im); err != nil {
		return Image{}, fmt.Errorf("storing image %s: %w", im.ID, err)
	}
	return im, nil
}

// SnapshotUser returns the id of a registered image (pending or
// available; deregistered ones are gone from the catalogue) whose block
// device mappings name snapshot snapID, or "" when none does: such a
// snapshot cannot be deleted (InvalidSnapshot.InUse), as on AWS.
func (c *Catalogue) SnapshotUser(ctx context.Context, snapID string) (string, error) {
	ims, err := c.List(ctx)
	if err != nil {
		return "", err
	}
	for _, im := range ims {
		for _, m := range im.BlockDeviceMappings {
			if m.Ebs != nil && m.Ebs.SnapshotID == snapID {
				return im.ID, nil
			}
		}
	}
	return "", nil
}

// LaunchPermissionChange is a ModifyImageAttribute launchPermission
// change: account ids and the group "all" (public) to add and remove.
type LaunchPermissionChange struct {
	AddAccounts, RemoveAccounts []string
	AddPublic, RemovePublic     bool
}

// modifyOwned applies fn to an image the caller owns: others get
// InvalidAMIID.NotFound when they cannot see it and AuthFailure when they
// can (a public or shared image of another account).
func (c *Catalogue) modifyOwned(ctx context.Context, caller, amiID string, fn func(*Image) error) (Image, error) {
	im, err := c.Get(ctx, caller, amiID)
	if err != nil {
		return Image{}, err
	}
	if im.OwnerID != caller {
		return Image{}, errdefs.New(errdefs.ClassAccessDenied, "AuthFailure", "Not authorized for image:%s: only its owner (%s) can change its attributes", amiID, im.OwnerID)
	}
	out, err := store.Update(ctx, c.st, imageKey(amiID), fn)
	if errors.Is(err, store.ErrNotFound) {
		return Image{}, errdefs.NotFound("InvalidAMIID.NotFound", "The image id '[%s]' does not exist", amiID)
	}
	return out, err
}

var accountRE = func(s string) bool {
	if len(s) != 12 {
		return false
	}
	for _, r := range s {
		if r < '0' || r > '9' {
			return false
		}
	}
	return true
}

// ModifyLaunchPermission changes who may launch an image the caller owns.
func (c *Catalogue) ModifyLaunchPermission(ctx context.Context, caller, amiID string, ch LaunchPermissionChange) (Image, error) {
	for _, a := range append(slices.Clone(ch.AddAccounts), ch.RemoveAccounts...) {
		if !accountRE(a) {
			return Image{}, errdefs.InvalidParameter("InvalidAMIAttributeItemValue", "Invalid attribute item value \"%s\" for userId item type: give a 12-digit account id", a)
		}
	}
	return c.modifyOwned(ctx, caller, amiID, func(im *Image) error {
		for _, a := range ch.RemoveAccounts {
			im.LaunchAccountIDs = slices.DeleteFunc(im.LaunchAccountIDs, func(x string) bool { return x == a })
		}
		for _, a := range ch.AddAccounts {
			if a != im.OwnerID && !slices.Contains(im.LaunchAccountIDs, a) {
				im.LaunchAccountIDs = append(im.LaunchAccountIDs, a)
			}
		}
		if ch.RemovePublic {
			im.Public = false
		}
		if ch.AddPublic {
			im.Public = true
		}
		return nil
	})
}

// ResetLaunchPermission makes an image private again: no shared accounts,
// not public (ResetImageAttribute launchPermission).
func (c *Catalogue) ResetLaunchPermission(ctx context.Context, caller, amiID string) (Image, error) {
	return c.modifyOwned(ctx, caller, amiID, func(im *Image) error {
		im.LaunchAccountIDs, im.Public = nil, false
		return nil
	})
}

// SetDescription changes the description of an image the caller owns.
func (c *Catalogue) SetDescription(ctx context.Context, caller, amiID, desc string) (Image, error) {
	if len(desc) > 255 {
		return Image{}, errdefs.InvalidParameter("InvalidParameterValue", "The description is longer than 255 characters")
	}
	return c.modifyOwned(ctx, caller, amiID, func(im *Image) error {
		im.Description = desc
		return nil
	})
}
