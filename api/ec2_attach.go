package api

import (
	"context"
	"net/url"

	"github.com/labcloud/labcloud/internal/instances"

	"github.com/labcloud/labcloud/internal/errdefs"
	"github.com/labcloud/labcloud/internal/volumes"
)

// registerAttach serves AttachVolume and DetachVolume: the instance layer
// (instances.Service.AttachVolume/DetachVolume) records the change and
// its controller hot-plugs the disk; the answer is the attachment as it
// is then, attaching or detaching, as on EC2.
func (s *Server) registerAttach() {
	s.handle(ServiceEC2, "AttachVolume", ec2Op(s.attachVolume))
	s.handle(ServiceEC2, "DetachVolume", ec2Op(s.detachVolume))
}

// Authorization entries: both actions are checked on the volume and on
// the instance, as the EC2 service authorization reference lists them.
func init() {
	res := func(c *Call, p url.Values) []string {
		vol, inst := p.Get("VolumeId"), p.Get("InstanceId")
		if vol == "" {
			vol = "*"
		}
		if inst == "" {
			inst = "*"
		}
		return []string{instanceARN(c, inst), ec2ARN(c, c.Principal.AccountID, "volume/"+vol)}
	}
	actionTable["ec2:AttachVolume"] = actionSpec{resources: res}
	actionTable["ec2:DetachVolume"] = actionSpec{resources: res}
}

// AttachVolumeInput is the EC2 AttachVolume request.
type AttachVolumeInput struct {
	VolumeID   string `locationName:"VolumeId"`
	InstanceID string `locationName:"InstanceId"`
	Device     string `locationName:"Device"`
}

// DetachVolumeInput is the EC2 DetachVolume request.
type DetachVolumeInput struct {
	VolumeID   string `locationName:"VolumeId"`
	InstanceID string `locationName:"InstanceId"`
	Device     string `locationName:"Device"`
	Force      *bool  `locationName:"Force"`
}

// attachmentItem is the VolumeAttachment shape AttachVolume and
// DetachVolume answer with.
func attachmentItem(v volumes.Volume) *VolumeAttachmentItem {
	a := v.Attachments[0]
	return &VolumeAttachmentItem{VolumeID: v.ID, InstanceID: a.InstanceID, Device: a.Device, State: a.State,
		AttachTime: a.AttachTime, DeleteOnTermination: a.DeleteOnTermination}
}

func (s *Server) attachVolume(ctx context.Context, c *Call, in *AttachVolumeInput) (*VolumeAttachmentItem, error) {
	svc, err := s.instancesService()
	if err != nil {
		return nil, err
	}
	for name, v := range map[string]string{"VolumeId": in.VolumeID, "InstanceId": in.InstanceID, "Device": in.Device} {
		if v == "" {
			return nil, errdefs.New(errdefs.ClassMissingParameter, "MissingParameter", "The request must contain the parameter %s", name)
		}
	}
	v, err := svc.AttachVolume(ctx, c.Principal.AccountID, in.VolumeID, in.InstanceID, in.Device)
	if err != nil {
		return nil, err
	}
	return attachmentItem(v), nil
}

func (s *Server) detachVolume(ctx context.Context, c *Call, in *DetachVolumeInput) (*VolumeAttachmentItem, error) {
	svc, err := s.instancesService()
	if err != nil {
		return nil, err
	}
	if in.VolumeID == "" {
		return nil, errdefs.New(errdefs.ClassMissingParameter, "MissingParameter", "The request must contain the parameter VolumeId")
	}
	if in.Device != "" {
		if vols, err := s.volumesService(); err == nil {
			v, err := vols.Get(ctx, c.Principal.AccountID, in.VolumeID)
			if err != nil {
				return nil, err
			}
			if len(v.Attachments) > 0 && v.Attachments[0].Device != in.Device {
				return nil, errdefs.NotFound("InvalidAttachment.NotFound", "Volume '%s' is attached at %s, not at %s", in.VolumeID, v.Attachments[0].Device, in.Device)
			}
		}
	}
	v, err := svc.DetachVolume(ctx, c.Principal.AccountID, in.VolumeID, in.InstanceID, in.Force != nil && *in.Force)
	if err != nil {
		return nil, err
	}
	return attachmentItem(v), nil
}

// InstanceBlockDeviceMappingSpec is ModifyInstanceAttribute's
// BlockDeviceMapping.N.
type InstanceBlockDeviceMappingSpec struct {
	DeviceName string `locationName:"DeviceName"`
	Ebs        *struct {
		VolumeID            string `locationName:"VolumeId"`
		DeleteOnTermination *bool  `locationName:"DeleteOnTermination"`
	} `locationName:"Ebs"`
	NoDevice    *string `locationName:"NoDevice"`
	VirtualName string  `locationName:"VirtualName"`
}

// modifyInstanceBlockDevices changes DeleteOnTermination of the volumes
// at the named devices (volumes attached with AttachVolume start with
// false, the root volume with true, as on EC2).
func (s *Server) modifyInstanceBlockDevices(ctx context.Context, c *Call, svc *instances.Service, in *ModifyInstanceAttributeInput) (*InstanceReturnOutput, error) {
	for _, m := range in.BlockDeviceMappings {
		if m.DeviceName == "" {
			return nil, errdefs.New(errdefs.ClassMissingParameter, "MissingParameter", "BlockDeviceMapping needs DeviceName")
		}
		if m.Ebs == nil || m.Ebs.DeleteOnTermination == nil {
			return nil, errdefs.InvalidParameter("InvalidParameterCombination", "labcloud can change only Ebs.DeleteOnTermination of a block device mapping (device %s)", m.DeviceName)
		}
		if err := svc.SetVolumeDeleteOnTermination(ctx, c.Principal.AccountID, in.InstanceID, m.DeviceName, *m.Ebs.DeleteOnTermination); err != nil {
			return nil, err
		}
	}
	return &InstanceReturnOutput{Return: true}, nil
}
