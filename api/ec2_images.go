package api

import (
	"context"
	"strconv"

	"github.com/labcloud/labcloud/imagestore"
	"github.com/labcloud/labcloud/internal/errdefs"
	"github.com/labcloud/labcloud/internal/volumes"
)

func (s *Server) registerImages() {
	s.handle(ServiceEC2, "RegisterImage", ec2Op(s.registerImage))
	s.handle(ServiceEC2, "DescribeImages", ec2Op(s.describeImages))
	s.handle(ServiceEC2, "DeregisterImage", ec2Op(s.deregisterImage))
	s.registerCreateImage()
}

// RegisterImageInput is the EC2 RegisterImage request, in two forms: an
// EBS-backed image from one of the caller's snapshots (a root
// BlockDeviceMapping with SnapshotId), for any account; or, for the root
// user of the admin account only, an image from ImageLocation, a file on
// the lab server. Architecture (x86_64) and VirtualizationType (hvm) are
// checked.
type RegisterImageInput struct {
	ImageLocation       string
	Name                string                  `locationName:"name" required:"true"`
	Description         string                  `locationName:"description"`
	Architecture        string                  `locationName:"architecture"`
	RootDeviceName      string                  `locationName:"rootDeviceName"`
	VirtualizationType  string                  `locationName:"virtualizationType"`
	EnaSupport          *bool                   `locationName:"enaSupport"`
	BootMode            string                  `locationName:"BootMode"`
	ImdsSupport         string                  `locationName:"ImdsSupport"`
	BlockDeviceMappings []RunBlockDeviceMapping `locationName:"BlockDeviceMapping"`
	TagSpecifications   []TagSpecification      `locationName:"TagSpecification" locationNameList:"item"`
}

// RegisterImageOutput is the EC2 RegisterImage response.
type RegisterImageOutput struct {
	ImageID string `locationName:"imageId"`
}

// hasSnapshotMapping reports whether a mapping names an EBS snapshot.
func hasSnapshotMapping(ms []RunBlockDeviceMapping) bool {
	for _, m := range ms {
		if m.Ebs != nil && m.Ebs.SnapshotID != "" {
			return true
		}
	}
	return false
}

func (s *Server) registerImage(ctx context.Context, c *Call, in *RegisterImageInput) (*RegisterImageOutput, error) {
	if in.ImageLocation != "" && hasSnapshotMapping(in.BlockDeviceMappings) {
		return nil, errdefs.InvalidParameter("InvalidParameterCombination",
			"ImageLocation and a block device mapping with a SnapshotId cannot be used together: register an EBS-backed image from a snapshot (no ImageLocation) or, as the admin, an image from a file on the lab server (no SnapshotId)")
	}
	if in.Architecture != "" && in.Architecture != "x86_64" {
		return nil, errdefs.InvalidParameter("InvalidParameterValue", "Architecture %s is not supported: labcloud runs x86_64", in.Architecture)
	}
	if in.VirtualizationType != "" && in.VirtualizationType != "hvm" {
		return nil, errdefs.InvalidParameter("InvalidParameterValue", "VirtualizationType %s is not supported: labcloud runs hvm", in.VirtualizationType)
	}
	if in.ImageLocation == "" && len(in.BlockDeviceMappings) > 0 {
		return s.registerImageFromSnapshot(ctx, c, in)
	}
	admin, err := s.opts.Accounts.AdminAccountID(ctx)
	if err != nil {
		return nil, err
	}
	if in.ImageLocation == "" {
		return nil, errdefs.New(errdefs.ClassMissingParameter, "MissingParameter",
			"The request must contain the parameter BlockDeviceMapping: register an EBS-backed image from one of your snapshots with --root-device-name /dev/xvda --block-device-mappings DeviceName=/dev/xvda,Ebs={SnapshotId=snap-...} "+
				"(the admin may instead give ImageLocation: /abs/path/manifest.json from labcloud image build, or /abs/path/disk.qcow2, on the lab server)")
	}
	if !c.Principal.IsRoot() || c.Principal.AccountID != admin {
		return nil, errdefs.New(errdefs.ClassAccessDenied, "UnauthorizedOperation",
			"You are not authorized to perform this operation: in labcloud only the root user of the admin account (%s) registers images from files on the lab server (ImageLocation); register yours from a snapshot (BlockDeviceMapping with SnapshotId) or launch the public images", admin)
	}
	tg, err := specTags(in.TagSpecifications, "image")
	if err != nil {
		return nil, err
	}
	im, err := s.opts.Images.Register(ctx, imagestore.RegisterInput{
		OwnerID: c.Principal.AccountID, OwnerAlias: imagestore.OwnerAlias, Name: in.Name, Description: in.Description,
		Location: in.ImageLocation, Public: true,
	})
	if err != nil {
		return nil, err
	}
	if _, err := s.applySpecTags(ctx, c.Principal.AccountID, im.ID, tg); err != nil {
		return nil, err
	}
	return &RegisterImageOutput{ImageID: im.ID}, nil
}

// registerImageFromSnapshot makes a private EBS-backed AMI of the caller
// from one of its completed snapshots. The AMI's disk is written into
// the image store from the snapshot (instances layer on it as on any
// AMI's disk); the boot material (kernel, initrd, command line) comes
// from the snapshot when CreateImage took it, else the image boots its
// disk's own loader. labcloud images have a root volume only.
func (s *Server) registerImageFromSnapshot(ctx context.Context, c *Call, in *RegisterImageInput) (*RegisterImageOutput, error) {
	vols, err := s.volumesService()
	if err != nil {
		return nil, err
	}
	acct := c.Principal.AccountID
	rootDev := in.RootDeviceName
	if rootDev == "" {
		rootDev = "/dev/xvda"
	}
	var root *RunBlockDeviceMapping
	for i, m := range in.BlockDeviceMappings {
		if m.DeviceName == rootDev {
			root = &in.BlockDeviceMappings[i]
		}
	}
	if root == nil {
		return nil, errdefs.InvalidParameter("InvalidBlockDeviceMapping",
			"The root device %s has no block device mapping: give DeviceName=%s,Ebs={SnapshotId=snap-...} (or set --root-device-name to the mapping's device)", rootDev, rootDev)
	}
	for _, m := range in.BlockDeviceMappings {
		if m.DeviceName != rootDev {
			return nil, errdefs.New(errdefs.ClassNotImplemented, "Unsupported",
				"labcloud images have the root volume (%s) only; leave out the mapping for %s and attach volumes after launch", rootDev, m.DeviceName)
		}
	}
	if root.Ebs == nil || root.Ebs.SnapshotID == "" {
		if root.Ebs == nil || root.Ebs.VolumeSize == nil {
			return nil, errdefs.InvalidParameter("InvalidBlockDeviceMapping", "Either snapshot ID or volume size must be provided for: %s", rootDev)
		}
		return nil, errdefs.InvalidParameter("InvalidBlockDeviceMapping",
			"The root device %s needs a SnapshotId: an EBS-backed image's root volume is made from a snapshot (aws ec2 create-snapshot, or the one create-image made)", rootDev)
	}
	ebs := root.Ebs
	sn, err := vols.GetSnapshot(ctx, acct, ebs.SnapshotID)
	if err != nil {
		return nil, err
	}
	if sn.State != "completed" {
		return nil, errdefs.Conflict("IncorrectState", "Snapshot '%s' is %s; register images from completed snapshots only (aws ec2 wait snapshot-completed)", sn.ID, sn.State)
	}
	size := sn.VolumeSize
	if ebs.VolumeSize != nil {
		size = int(*ebs.VolumeSize)
		if size < sn.VolumeSize {
			return nil, errdefs.InvalidParameter("InvalidBlockDeviceMapping", "Volume of size %d GiB is smaller than snapshot '%s', expect size >= %d", size, sn.ID, sn.VolumeSize)
		}
	}
	vt := "gp3"
	if ebs.VolumeType != "" {
		if !knownVolumeType(ebs.VolumeType) {
			return nil, errdefs.InvalidParameter("InvalidBlockDeviceMapping", "Volume type %s is not valid: use gp2, gp3, io1, io2, st1, sc1 or standard", ebs.VolumeType)
		}
		vt = ebs.VolumeType
	}
	if ebs.Encrypted != nil && *ebs.Encrypted && !sn.Encrypted {
		return nil, errdefs.InvalidParameter("InvalidBlockDeviceMapping", "Snapshot '%s' is not encrypted and labcloud images are not: leave out Encrypted", sn.ID)
	}
	dot := true
	if ebs.DeleteOnTermination != nil {
		dot = *ebs.DeleteOnTermination
	}
	tg, err := specTags(in.TagSpecifications, "image")
	if err != nil {
		return nil, err
	}
	rin := imagestore.RegisterSnapshotInput{
		OwnerID: acct, Name: in.Name, Description: in.Description, Architecture: in.Architecture, RootDeviceName: rootDev,
		Root: imagestore.Ebs{SnapshotID: sn.ID, VolumeSize: size, VolumeType: vt, DeleteOnTermination: dot},
		CopyDisk: func(ctx context.Context, dst string) error {
			_, err := vols.WriteSnapshotDisk(ctx, acct, sn.ID, dst)
			return err
		},
	}
	if b := sn.Boot; b != nil {
		rin.Kernel, rin.Initrd, rin.KernelCmdline = b.Kernel, b.Initrd, b.KernelCmdline
		if rin.Architecture == "" {
			rin.Architecture = b.Architecture
		}
	}
	im, err := s.opts.Images.RegisterSnapshot(ctx, rin)
	if err != nil {
		return nil, err
	}
	if _, err := s.applySpecTags(ctx, acct, im.ID, tg); err != nil {
		return nil, err
	}
	return &RegisterImageOutput{ImageID: im.ID}, nil
}

// knownVolumeType reports whether t is an EBS volume type.
func knownVolumeType(t string) bool {
	switch volumes.VolumeType(t) {
	case volumes.GP2, volumes.GP3, volumes.IO1, volumes.IO2, volumes.ST1, volumes.SC1, volumes.Standard:
		return true
	}
	return false
}

// DescribeImagesInput is the EC2 DescribeImages request.
type DescribeImagesInput struct {
	ExecutableUsers   []string `locationName:"ExecutableBy"`
	Filters           []Filter `locationName:"Filter"`
	ImageIDs          []string `locationName:"ImageId"`
	Owners            []string `locationName:"Owner"`
	IncludeDeprecated *bool
	IncludeDisabled   *bool
	MaxResults        *int32
	NextToken         *string
}

// DescribeImagesOutput is the EC2 DescribeImages response.
type DescribeImagesOutput struct {
	Images []ImageItem `locationName:"imagesSet" locationNameList:"item"`
}

// ImageItem is one image in DescribeImages.
type ImageItem struct {
	ImageID             string            `locationName:"imageId"`
	ImageLocation       string            `locationName:"imageLocation"`
	State               string            `locationName:"imageState"`
	OwnerID             string            `locationName:"imageOwnerId"`
	CreationDate        string            `locationName:"creationDate"`
	Public              bool              `locationName:"isPublic"`
	Architecture        string            `locationName:"architecture"`
	ImageType           string            `locationName:"imageType"`
	PlatformDetails     string            `locationName:"platformDetails"`
	UsageOperation      string            `locationName:"usageOperation"`
	EnaSupport          bool              `locationName:"enaSupport"`
	Hypervisor          string            `locationName:"hypervisor"`
	ImageOwnerAlias     *string           `locationName:"imageOwnerAlias"`
	Name                string            `locationName:"name"`
	Description         *string           `locationName:"description"`
	RootDeviceName      string            `locationName:"rootDeviceName"`
	RootDeviceType      string            `locationName:"rootDeviceType"`
	BlockDeviceMappings []BlockDeviceItem `locationName:"blockDeviceMapping" locationNameList:"item"`
	VirtualizationType  string            `locationName:"virtualizationType"`
	Tags                []TagItem         `locationName:"tagSet" locationNameList:"item"`
	BootMode            string            `locationName:"bootMode"`
	ImdsSupport         string            `locationName:"imdsSupport"`
}

// BlockDeviceItem is a block device mapping of an image.
type BlockDeviceItem struct {
	DeviceName string   `locationName:"deviceName"`
	Ebs        *EbsItem `locationName:"ebs"`
}

// EbsItem is the EBS part of a block device mapping.
type EbsItem struct {
	DeleteOnTermination bool   `locationName:"deleteOnTermination"`
	SnapshotID          string `locationName:"snapshotId"`
	VolumeSize          int32  `locationName:"volumeSize"`
	VolumeType          string `locationName:"volumeType"`
	Encrypted           bool   `locationName:"encrypted"`
}

type imageWithTags struct {
	imagestore.Image
	tags map[string]string
}

var imageFilters = filterFields[imageWithTags]{
	"name":                func(i imageWithTags) []string { return []string{i.Name} },
	"description":         func(i imageWithTags) []string { return []string{i.Description} },
	"architecture":        func(i imageWithTags) []string { return []string{i.Architecture} },
	"state":               func(i imageWithTags) []string { return []string{i.State} },
	"image-id":            func(i imageWithTags) []string { return []string{i.ID} },
	"image-type":          func(i imageWithTags) []string { return []string{i.ImageType} },
	"owner-id":            func(i imageWithTags) []string { return []string{i.OwnerID} },
	"owner-alias":         func(i imageWithTags) []string { return []string{i.OwnerAlias} },
	"is-public":           func(i imageWithTags) []string { return []string{strconv.FormatBool(i.Public)} },
	"root-device-type":    func(i imageWithTags) []string { return []string{i.RootDeviceType} },
	"root-device-name":    func(i imageWithTags) []string { return []string{i.RootDeviceName} },
	"virtualization-type": func(i imageWithTags) []string { return []string{i.VirtualizationType} },
	"hypervisor":          func(i imageWithTags) []string { return []string{i.Hypervisor} },
	"ena-support":         func(i imageWithTags) []string { return []string{strconv.FormatBool(i.EnaSupport)} },
	"platform-details":    func(i imageWithTags) []string { return []string{"Linux/UNIX"} },
	"block-device-mapping.volume-type": func(i imageWithTags) []string {
		var out []string
		for _, m := range i.BlockDeviceMappings {
			if m.Ebs != nil {
				out = append(out, m.Ebs.VolumeType)
			}
		}
		return out
	},
}

// ownedBy reports whether the image matches one Owner value of
// DescribeImages: self, an owner alias (amazon, labcloud), an account id,
// or all.
func ownedBy(im imagestore.Image, owner, caller string) bool {
	switch owner {
	case "all":
		return true
	case "self":
		return im.OwnerID == caller
	}
	return im.OwnerID == owner || (im.OwnerAlias != "" && im.OwnerAlias == owner)
}

// executableBy reports whether an ExecutableBy value lets this account
// launch the image: all → public; self or an id → explicit launch
// permission (or ownership) for that account.
func executableBy(im imagestore.Image, who, caller string) bool {
	switch who {
	case "all":
		return im.Public
	case "self":
		who = caller
	}
	if im.OwnerID == who {
		return true
	}
	for _, a := range im.LaunchAccountIDs {
		if a == who {
			return true
		}
	}
	return false
}

func (s *Server) describeImages(ctx context.Context, c *Call, in *DescribeImagesInput) (*DescribeImagesOutput, error) {
	acct := c.Principal.AccountID
	for _, id := range in.ImageIDs {
		if err := imagestore.ValidateID(id); err != nil {
			return nil, err
		}
	}
	all, err := s.opts.Images.List(ctx)
	if err != nil {
		return nil, err
	}
	var visible []imagestore.Image
	for _, im := range all {
		if im.VisibleTo(acct) {
			visible = append(visible, im)
		}
	}
	visible, err = selectByName(visible, in.ImageIDs, func(im imagestore.Image) string { return im.ID }, func(ids string) error {
		return errdefs.NotFound("InvalidAMIID.NotFound", "The image id '[%s]' does not exist", ids)
	})
	if err != nil {
		return nil, err
	}
	items := []imageWithTags{}
	for _, im := range visible {
		if len(in.Owners) > 0 && !anyOf(in.Owners, func(o string) bool { return ownedBy(im, o, acct) }) {
			continue
		}
		if len(in.ExecutableUsers) > 0 && !anyOf(in.ExecutableUsers, func(u string) bool { return executableBy(im, u, acct) }) {
			continue
		}
		m, err := s.opts.Tags.Of(ctx, acct, im.ID)
		if err != nil {
			return nil, err
		}
		items = append(items, imageWithTags{Image: im, tags: m})
	}
	items, err = applyFiltersWithTags(items, in.Filters, imageFilters, func(i imageWithTags) map[string]string { return i.tags })
	if err != nil {
		return nil, err
	}
	out := &DescribeImagesOutput{Images: []ImageItem{}}
	for _, i := range items {
		out.Images = append(out.Images, imageItem(i))
	}
	return out, nil
}

func anyOf(vs []string, f func(string) bool) bool {
	for _, v := range vs {
		if f(v) {
			return true
		}
	}
	return false
}

func imageItem(i imageWithTags) ImageItem {
	it := ImageItem{
		ImageID: i.ID, ImageLocation: i.Location, State: i.State, OwnerID: i.OwnerID,
		CreationDate: i.CreationDate.UTC().Format("2006-01-02T15:04:05.000Z"), Public: i.Public,
		Architecture: i.Architecture, ImageType: i.ImageType, PlatformDetails: "Linux/UNIX", UsageOperation: "RunInstances",
		EnaSupport: i.EnaSupport, Hypervisor: i.Hypervisor, Name: i.Name, RootDeviceName: i.RootDeviceName,
		RootDeviceType: i.RootDeviceType, VirtualizationType: i.VirtualizationType, Tags: tagSet(i.tags),
		BootMode: "legacy-bios", ImdsSupport: "v2.0", BlockDeviceMappings: []BlockDeviceItem{},
	}
	if i.OwnerAlias != "" {
		a := i.OwnerAlias
		it.ImageOwnerAlias = &a
	}
	if i.Description != "" {
		d := i.Description
		it.Description = &d
	}
	for _, m := range i.BlockDeviceMappings {
		b := BlockDeviceItem{DeviceName: m.DeviceName}
		if m.Ebs != nil {
			b.Ebs = &EbsItem{DeleteOnTermination: m.Ebs.DeleteOnTermination, SnapshotID: m.Ebs.SnapshotID,
				VolumeSize: int32(m.Ebs.VolumeSize), VolumeType: m.Ebs.VolumeType, Encrypted: m.Ebs.Encrypted}
		}
		it.BlockDeviceMappings = append(it.BlockDeviceMappings, b)
	}
	return it
}

// DeregisterImageInput is the EC2 DeregisterImage request.
type DeregisterImageInput struct {
	ImageID                   string `locationName:"ImageId" required:"true"`
	DeleteAssociatedSnapshots *bool
}

// DeleteSnapshotReturnCode is one snapshot's outcome in DeregisterImage
// with DeleteAssociatedSnapshots.
type DeleteSnapshotReturnCode struct {
	SnapshotID string `locationName:"snapshotId"`
	ReturnCode string `locationName:"returnCode"`
}

// DeregisterImageOutput is the EC2 DeregisterImage response.
type DeregisterImageOutput struct {
	Return                bool                       `locationName:"return"`
	DeleteSnapshotResults []DeleteSnapshotReturnCode `locationName:"deleteSnapshotResultSet" locationNameList:"item"`
}

// deregisterImage removes an image from the catalogue. Its snapshots
// stay, as on AWS, unless DeleteAssociatedSnapshots is true: then each
// snapshot of the caller that no other registered image uses is deleted
// (success), and the others are left (skipped: another image uses it;
// client-error: not the caller's or gone).
func (s *Server) deregisterImage(ctx context.Context, c *Call, in *DeregisterImageInput) (*DeregisterImageOutput, error) {
	acct := c.Principal.AccountID
	im, err := s.opts.Images.Deregister(ctx, acct, in.ImageID)
	if err != nil {
		return nil, err
	}
	if err := s.opts.Tags.Forget(ctx, acct, im.ID); err != nil {
		return nil, err
	}
	out := &DeregisterImageOutput{Return: true}
	if in.DeleteAssociatedSnapshots == nil || !*in.DeleteAssociatedSnapshots {
		return out, nil
	}
	vols, err := s.volumesService()
	if err != nil {
		return nil, err
	}
	for _, m := range im.BlockDeviceMappings {
		if m.Ebs == nil || m.Ebs.SnapshotID == "" {
			continue
		}
		id := m.Ebs.SnapshotID
		code := "success"
		if user, err := s.opts.Images.SnapshotUser(ctx, id); err != nil {
			return nil, err
		} else if user != "" {
			code = "skipped"
		} else if err := vols.DeleteSnapshot(ctx, acct, id); err != nil {
			if errdefs.ClassOf(err) == errdefs.ClassUnknown || errdefs.Is(err, errdefs.ClassInternal) {
				s.opts.Logger.Error("deleting an image's snapshot", "image", im.ID, "snapshot", id, "err", err)
				code = "internal-error"
			} else {
				code = "client-error"
			}
		} else {
			_ = s.opts.Tags.Forget(ctx, acct, id)
		}
		out.DeleteSnapshotResults = append(out.DeleteSnapshotResults, DeleteSnapshotReturnCode{SnapshotID: id, ReturnCode: code})
	}
	return out, nil
}
