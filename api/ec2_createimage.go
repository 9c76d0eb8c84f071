package api

import (
	"context"
	"slices"

	"github.com/labcloud/labcloud/imagestore"
	"github.com/labcloud/labcloud/internal/errdefs"
	"github.com/labcloud/labcloud/internal/volumes"
)

func (s *Server) registerCreateImage() {
	s.handle(ServiceEC2, "CreateImage", ec2Op(s.createImage))
	s.handle(ServiceEC2, "ModifyImageAttribute", ec2Op(s.modifyImageAttribute))
	s.handle(ServiceEC2, "DescribeImageAttribute", ec2Op(s.describeImageAttribute))
	s.handle(ServiceEC2, "ResetImageAttribute", ec2Op(s.resetImageAttribute))
}

// CreateImageInput is the EC2 CreateImage request. BlockDeviceMappings
// beyond the root volume are not supported and refused.
type CreateImageInput struct {
	InstanceID          string `locationName:"instanceId" required:"true"`
	Name                string `locationName:"name" required:"true"`
	Description         string `locationName:"description"`
	NoReboot            *bool  `locationName:"noReboot"`
	BlockDeviceMappings []struct {
		DeviceName string `locationName:"DeviceName"`
	} `locationName:"BlockDeviceMapping"`
	TagSpecifications []TagSpecification `locationName:"TagSpecification" locationNameList:"item"`
}

// CreateImageOutput is the EC2 CreateImage response.
type CreateImageOutput struct {
	ImageID string `locationName:"imageId"`
}

// createImage makes a private AMI of the caller from an instance's root
// disk, synchronously: the copy of a lab-sized root disk takes seconds,
// so the image is available when the call returns (a client polling for
// "available", as the aws CLI's image-available waiter does, sees it at
// once). The root disk is also recorded as an EBS snapshot of the caller
// that the image's root mapping names (listed by DescribeSnapshots; kept
// by DeregisterImage); a labcloudd without the EBS service leaves the
// mapping without a SnapshotId. Without NoReboot the VM is paused for the copy rather than
// rebooted as on AWS; see instances.Service.CopyRootDisk.
func (s *Server) createImage(ctx context.Context, c *Call, in *CreateImageInput) (*CreateImageOutput, error) {
	svc, err := s.instancesService()
	if err != nil {
		return nil, err
	}
	if len(in.BlockDeviceMappings) > 0 {
		return nil, errdefs.InvalidParameter("InvalidParameterCombination", "labcloud's CreateImage images the root volume only: leave out BlockDeviceMappings")
	}
	acct := c.Principal.AccountID
	tg, err := specTags(in.TagSpecifications, "image")
	if err != nil {
		return nil, err
	}
	if err := imagestore.ValidateName(in.Name); err != nil {
		return nil, err
	}
	root, err := svc.RootDisk(ctx, acct, in.InstanceID)
	if err != nil {
		return nil, err
	}
	// The source AMI may be deregistered by now; the instance kept its
	// boot material, which is what the new image needs.
	src := imagestore.Image{Architecture: root.Boot.Architecture, Kernel: root.Boot.Kernel, Initrd: root.Boot.Initrd, KernelCmdline: root.Boot.KernelCmdline}
	noReboot := in.NoReboot != nil && *in.NoReboot
	cin := imagestore.CreateInput{
		OwnerID: acct, Name: in.Name, Description: in.Description, Source: src,
		RootDeviceName: root.Boot.RootDeviceName, SizeGiB: root.Boot.RootSizeGiB,
		CopyRoot: func(ctx context.Context, dst string) error {
			return svc.CopyRootDisk(ctx, acct, in.InstanceID, dst, noReboot)
		},
	}
	// The root disk becomes a real EBS snapshot of the caller, which the
	// root mapping names and which carries the boot material, so that
	// RegisterImage from it gives an image that boots the same way.
	var snapID string
	vols := s.opts.Volumes
	if vols != nil {
		cin.Snapshot = func(ctx context.Context, im imagestore.Image) (string, error) {
			sn, err := vols.SnapshotImage(ctx, volumes.ImageSnapshotInput{OwnerID: acct, ImageID: im.ID, InstanceID: in.InstanceID, VolumeID: root.VolumeID,
				Disk: im.Disk, SizeGiB: root.Boot.RootSizeGiB, Boot: volumes.Boot{Kernel: im.Kernel, Initrd: im.Initrd,
					KernelCmdline: im.KernelCmdline, Architecture: im.Architecture, RootDeviceName: im.RootDeviceName}})
			snapID = sn.ID
			return sn.ID, err
		}
	}
	im, err := s.opts.Images.Create(ctx, cin)
	if err != nil {
		// The image is gone; a snapshot made for it before the failure
		// would be an orphan.
		if snapID != "" {
			if derr := vols.DeleteSnapshot(context.WithoutCancel(ctx), acct, snapID); derr != nil {
				s.opts.Logger.Error("removing the snapshot of a failed CreateImage", "snapshot", snapID, "err", derr)
			}
		}
		return nil, err
	}
	if _, err := s.applySpecTags(ctx, acct, im.ID, tg); err != nil {
		return nil, err
	}
	return &CreateImageOutput{ImageID: im.ID}, nil
}

// LaunchPermissionItem is one launch permission: an account or the group
// "all".
type LaunchPermissionItem struct {
	Group  string `locationName:"group"`
	UserID string `locationName:"userId"`
}

// LaunchPermissionModifications is the LaunchPermission parameter of
// ModifyImageAttribute.
type LaunchPermissionModifications struct {
	Add    []LaunchPermissionItem `locationName:"Add"`
	Remove []LaunchPermissionItem `locationName:"Remove"`
}

// ModifyImageAttributeInput is the EC2 ModifyImageAttribute request, in
// both its forms: LaunchPermission.Add/Remove, or Attribute with
// OperationType, UserId.N and UserGroup.N.
type ModifyImageAttributeInput struct {
	ImageID          string                         `locationName:"ImageId" required:"true"`
	Attribute        string                         `locationName:"Attribute"`
	OperationType    string                         `locationName:"OperationType"`
	UserIDs          []string                       `locationName:"UserId"`
	UserGroups       []string                       `locationName:"UserGroup"`
	Value            *string                        `locationName:"Value"`
	Description      *AttributeValueInput           `locationName:"Description"`
	LaunchPermission *LaunchPermissionModifications `locationName:"LaunchPermission"`
	ProductCodes     []string                       `locationName:"ProductCode"`
}

func groupAll(g string) (bool, error) {
	if g == "" {
		return false, nil
	}
	if g != "all" {
		return false, errdefs.InvalidParameter("InvalidAMIAttributeItemValue", "Invalid attribute item value \"%s\" for group item type: the only group is all", g)
	}
	return true, nil
}

func (s *Server) modifyImageAttribute(ctx context.Context, c *Call, in *ModifyImageAttributeInput) (*ReturnOutput, error) {
	acct := c.Principal.AccountID
	if len(in.ProductCodes) > 0 {
		return nil, errdefs.InvalidParameter("InvalidParameter", "labcloud images have no product codes")
	}
	attr := in.Attribute
	if attr == "" {
		switch {
		case in.LaunchPermission != nil:
			attr = "launchPermission"
		case in.Description != nil:
			attr = "description"
		case len(in.UserIDs) > 0 || len(in.UserGroups) > 0:
			attr = "launchPermission"
		}
	}
	switch attr {
	case "description":
		d := in.Value
		if in.Description != nil && in.Description.Value != nil {
			d = in.Description.Value
		}
		if d == nil {
			return nil, errdefs.New(errdefs.ClassMissingParameter, "MissingParameter", "Give the new description as Description.Value (--description Value=...)")
		}
		if _, err := s.opts.Images.SetDescription(ctx, acct, in.ImageID, *d); err != nil {
			return nil, err
		}
	case "launchPermission":
		var ch imagestore.LaunchPermissionChange
		add := func(items []LaunchPermissionItem, remove bool) error {
			for _, it := range items {
				all, err := groupAll(it.Group)
				if err != nil {
					return err
				}
				switch {
				case all && remove:
					ch.RemovePublic = true
				case all:
					ch.AddPublic = true
				case it.UserID != "" && remove:
					ch.RemoveAccounts = append(ch.RemoveAccounts, it.UserID)
				case it.UserID != "":
					ch.AddAccounts = append(ch.AddAccounts, it.UserID)
				}
			}
			return nil
		}
		if in.LaunchPermission != nil {
			if err := add(in.LaunchPermission.Add, false); err != nil {
				return nil, err
			}
			if err := add(in.LaunchPermission.Remove, true); err != nil {
				return nil, err
			}
		}
		if len(in.UserIDs) > 0 || len(in.UserGroups) > 0 {
			if in.OperationType != "add" && in.OperationType != "remove" {
				return nil, errdefs.InvalidParameter("InvalidParameterValue", "OperationType must be add or remove with UserId or UserGroup")
			}
			var items []LaunchPermissionItem
			for _, u := range in.UserIDs {
				items = append(items, LaunchPermissionItem{UserID: u})
			}
			for _, g := range in.UserGroups {
				items = append(items, LaunchPermissionItem{Group: g})
			}
			if err := add(items, in.OperationType == "remove"); err != nil {
				return nil, err
			}
		}
		if len(ch.AddAccounts)+len(ch.RemoveAccounts) == 0 && !ch.AddPublic && !ch.RemovePublic {
			return nil, errdefs.New(errdefs.ClassMissingParameter, "MissingParameter", "Give the launch permissions to change: LaunchPermission.Add/Remove with UserId or Group=all")
		}
		if _, err := s.opts.Images.ModifyLaunchPermission(ctx, acct, in.ImageID, ch); err != nil {
			return nil, err
		}
	case "":
		return nil, errdefs.New(errdefs.ClassMissingParameter, "MissingParameter", "Say what to change: LaunchPermission or Description")
	default:
		return nil, errdefs.InvalidParameter("InvalidParameter", "Attribute %s cannot be modified in labcloud: use launchPermission or description", attr)
	}
	return &ReturnOutput{Return: true}, nil
}

// DescribeImageAttributeInput is the EC2 DescribeImageAttribute request.
type DescribeImageAttributeInput struct {
	ImageID   string `locationName:"ImageId" required:"true"`
	Attribute string `locationName:"Attribute" required:"true"`
}

// ImageAttributeValue is an EC2 AttributeValue in a response.
type ImageAttributeValue struct {
	Value string `locationName:"value"`
}

// DescribeImageAttributeOutput is the EC2 DescribeImageAttribute response:
// one of its attribute elements is set (nil lists are left out).
type DescribeImageAttributeOutput struct {
	ImageID             string                 `locationName:"imageId"`
	LaunchPermissions   []LaunchPermissionItem `locationName:"launchPermission" locationNameList:"item"`
	Description         *ImageAttributeValue   `locationName:"description"`
	BlockDeviceMappings []BlockDeviceItem      `locationName:"blockDeviceMapping" locationNameList:"item"`
}

func (s *Server) describeImageAttribute(ctx context.Context, c *Call, in *DescribeImageAttributeInput) (*DescribeImageAttributeOutput, error) {
	acct := c.Principal.AccountID
	im, err := s.opts.Images.Get(ctx, acct, in.ImageID)
	if err != nil {
		return nil, err
	}
	out := &DescribeImageAttributeOutput{ImageID: im.ID}
	switch in.Attribute {
	case "description":
		out.Description = &ImageAttributeValue{Value: im.Description}
	case "launchPermission":
		// Like AWS, only the owner learns who else may launch the image.
		if im.OwnerID != acct {
			return nil, errdefs.New(errdefs.ClassAccessDenied, "AuthFailure", "Not authorized for image:%s: only its owner (%s) sees its launch permissions", im.ID, im.OwnerID)
		}
		lp := []LaunchPermissionItem{}
		if im.Public {
			lp = append(lp, LaunchPermissionItem{Group: "all"})
		}
		ids := slices.Clone(im.LaunchAccountIDs)
		slices.Sort(ids)
		for _, a := range ids {
			lp = append(lp, LaunchPermissionItem{UserID: a})
		}
		out.LaunchPermissions = lp
	case "blockDeviceMapping":
		bd := imageItem(imageWithTags{Image: im}).BlockDeviceMappings
		out.BlockDeviceMappings = bd
	default:
		return nil, errdefs.InvalidParameter("InvalidParameterValue", "Value (%s) for parameter attribute is invalid: labcloud describes description, launchPermission and blockDeviceMapping", in.Attribute)
	}
	return out, nil
}

// ResetImageAttributeInput is the EC2 ResetImageAttribute request.
type ResetImageAttributeInput struct {
	ImageID   string `locationName:"ImageId" required:"true"`
	Attribute string `locationName:"Attribute" required:"true"`
}

func (s *Server) resetImageAttribute(ctx context.Context, c *Call, in *ResetImageAttributeInput) (*ReturnOutput, error) {
	if in.Attribute != "launchPermission" {
		return nil, errdefs.InvalidParameter("InvalidParameterValue", "Value (%s) for parameter attribute is invalid: only launchPermission can be reset", in.Attribute)
	}
	if _, err := s.opts.Images.ResetLaunchPermission(ctx, c.Principal.AccountID, in.ImageID); err != nil {
		return nil, err
	}
	return &ReturnOutput{Return: true}, nil
}
