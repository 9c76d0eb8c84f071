package api

import (
	"context"
	"net/url"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/labcloud/labcloud/internal/errdefs"
	"github.com/labcloud/labcloud/internal/volumes"
)

func (s *Server) registerVolumes() {
	s.handle(ServiceEC2, "CreateVolume", ec2Op(s.createVolume))
	s.handle(ServiceEC2, "DescribeVolumes", ec2Op(s.describeVolumes))
	s.handle(ServiceEC2, "DeleteVolume", ec2Op(s.deleteVolume))
	s.handle(ServiceEC2, "ModifyVolume", ec2Op(s.modifyVolume))
	s.handle(ServiceEC2, "DescribeVolumesModifications", ec2Op(s.describeVolumesModifications))
	s.registerSnapshots()
}

// ebsTables adds the EBS actions to the authorization table: volume and
// snapshot ARNs as the EC2 service authorization reference names them.
func ebsTables(all func(*Call, url.Values) []string) {
	for _, a := range []string{"DescribeVolumes", "DescribeVolumesModifications", "DescribeSnapshots"} {
		actionTable["ec2:"+a] = actionSpec{resources: all}
	}
	param := func(name, kind string) func(*Call, url.Values) []string {
		return func(c *Call, p url.Values) []string {
			id := p.Get(name)
			if id == "" {
				id = "*"
			}
			return []string{ec2ARN(c, c.Principal.AccountID, kind+"/"+id)}
		}
	}
	actionTable["ec2:CreateVolume"] = actionSpec{resources: func(c *Call, p url.Values) []string {
		out := []string{ec2ARN(c, c.Principal.AccountID, "volume/*")}
		if id := p.Get("SnapshotId"); id != "" {
			out = append(out, ec2ARN(c, "", "snapshot/"+id))
		}
		return out
	}}
	actionTable["ec2:DeleteVolume"] = actionSpec{resources: param("VolumeId", "volume")}
	actionTable["ec2:ModifyVolume"] = actionSpec{resources: param("VolumeId", "volume")}
	actionTable["ec2:CreateSnapshot"] = actionSpec{resources: func(c *Call, p url.Values) []string {
		return []string{ec2ARN(c, c.Principal.AccountID, "volume/"+p.Get("VolumeId")), ec2ARN(c, "", "snapshot/*")}
	}}
	actionTable["ec2:DeleteSnapshot"] = actionSpec{resources: func(c *Call, p url.Values) []string {
		return []string{ec2ARN(c, "", "snapshot/"+p.Get("SnapshotId"))}
	}}
	actionTable["ec2:CopySnapshot"] = actionSpec{resources: func(c *Call, p url.Values) []string {
		return []string{ec2ARN(c, "", "snapshot/"+p.Get("SourceSnapshotId")), ec2ARN(c, "", "snapshot/*")}
	}}
}

func (s *Server) volumesService() (*volumes.Service, error) {
	if s.opts.Volumes == nil {
		return nil, errdefs.New(errdefs.ClassUnavailable, "Unavailable", "this labcloudd runs without the volume service (EBS); check its log for why the block store did not start")
	}
	return s.opts.Volumes, nil
}

// CreateVolumeInput is the EC2 CreateVolume request.
type CreateVolumeInput struct {
	AvailabilityZone   string             `locationName:"AvailabilityZone"`
	AvailabilityZoneID string             `locationName:"AvailabilityZoneId"`
	Encrypted          *bool              `locationName:"encrypted"`
	Iops               *int32             `locationName:"Iops"`
	KmsKeyID           string             `locationName:"KmsKeyId"`
	Size               *int32             `locationName:"Size"`
	SnapshotID         string             `locationName:"SnapshotId"`
	VolumeType         string             `locationName:"VolumeType"`
	TagSpecifications  []TagSpecification `locationName:"TagSpecification" locationNameList:"item"`
	MultiAttachEnabled *bool              `locationName:"MultiAttachEnabled"`
	Throughput         *int32             `locationName:"Throughput"`
	ClientToken        string             `locationName:"ClientToken"`
}

// VolumeAttachmentItem is an EC2 VolumeAttachment.
type VolumeAttachmentItem struct {
	VolumeID            string    `locationName:"volumeId"`
	InstanceID          string    `locationName:"instanceId"`
	Device              string    `locationName:"device"`
	State               string    `locationName:"status"`
	AttachTime          time.Time `locationName:"attachTime" timestampFormat:"iso8601"`
	DeleteOnTermination bool      `locationName:"deleteOnTermination"`
}

// VolumeItem is an EC2 Volume (also the CreateVolume response).
type VolumeItem struct {
	VolumeID           string                 `locationName:"volumeId"`
	Size               int32                  `locationName:"size"`
	SnapshotID         string                 `locationName:"snapshotId"`
	AvailabilityZone   string                 `locationName:"availabilityZone"`
	State              string                 `locationName:"status"`
	CreateTime         time.Time              `locationName:"createTime" timestampFormat:"iso8601"`
	Attachments        []VolumeAttachmentItem `locationName:"attachmentSet" locationNameList:"item"`
	VolumeType         string                 `locationName:"volumeType"`
	Iops               *int32                 `locationName:"iops"`
	Throughput         *int32                 `locationName:"throughput"`
	Encrypted          bool                   `locationName:"encrypted"`
	MultiAttachEnabled bool                   `locationName:"multiAttachEnabled"`
	Tags               []TagItem              `locationName:"tagSet" locationNameList:"item"`
}

func i32(n int) *int32 {
	v := int32(n)
	return &v
}

func ptrInt(p *int32) *int {
	if p == nil {
		return nil
	}
	v := int(*p)
	return &v
}

// volumeItem renders a volume. gp2 reports its baseline IOPS, as EC2
// does; st1, sc1 and standard report none.
func volumeItem(v volumes.Volume, tg map[string]string) VolumeItem {
	it := VolumeItem{VolumeID: v.ID, Size: int32(v.SizeGiB), SnapshotID: v.SnapshotID, AvailabilityZone: v.AvailabilityZone,
		State: v.State, CreateTime: v.CreateTime, VolumeType: string(v.Type), Encrypted: v.Encrypted,
		Attachments: []VolumeAttachmentItem{}, Tags: tagSet(tg)}
	switch v.Type {
	case volumes.GP2:
		it.Iops = i32(int(volumes.ThrottleFor(v.Spec()).IOPSTotal))
	case volumes.GP3:
		it.Iops, it.Throughput = i32(v.IOPS), i32(v.Throughput)
	case volumes.IO1, volumes.IO2:
		it.Iops = i32(v.IOPS)
	}
	for _, a := range v.Attachments {
		it.Attachments = append(it.Attachments, VolumeAttachmentItem{VolumeID: v.ID, InstanceID: a.InstanceID, Device: a.Device,
			State: a.State, AttachTime: a.AttachTime, DeleteOnTermination: a.DeleteOnTermination})
	}
	return it
}

func (s *Server) createVolume(ctx context.Context, c *Call, in *CreateVolumeInput) (*VolumeItem, error) {
	svc, err := s.volumesService()
	if err != nil {
		return nil, err
	}
	if in.MultiAttachEnabled != nil && *in.MultiAttachEnabled {
		return nil, errdefs.InvalidParameter("InvalidParameterCombination", "Multi-Attach is not supported by labcloud; leave out --multi-attach-enabled")
	}
	if in.KmsKeyID != "" {
		return nil, errdefs.InvalidParameter("InvalidParameterValue", "KmsKeyId is not supported: labcloud encrypts each volume with its own key; pass only --encrypted")
	}
	if in.AvailabilityZone == "" && in.AvailabilityZoneID != "" {
		zones, err := s.opts.Cloud.Zones(ctx)
		if err != nil {
			return nil, err
		}
		for _, z := range zones {
			if z.ID == in.AvailabilityZoneID {
				in.AvailabilityZone = z.Name
			}
		}
		if in.AvailabilityZone == "" {
			return nil, errdefs.InvalidParameter("InvalidZone.NotFound", "The zone ID '%s' does not exist", in.AvailabilityZoneID)
		}
	}
	tg, err := specTags(in.TagSpecifications, "volume")
	if err != nil {
		return nil, err
	}
	acct := c.Principal.AccountID
	v, err := svc.Create(ctx, acct, volumes.CreateInput{AvailabilityZone: in.AvailabilityZone, SizeGiB: ptrInt(in.Size),
		Type: volumes.VolumeType(in.VolumeType), IOPS: ptrInt(in.Iops), Throughput: ptrInt(in.Throughput),
		SnapshotID: in.SnapshotID, Encrypted: in.Encrypted, ClientToken: in.ClientToken})
	if err != nil {
		return nil, err
	}
	m, err := s.applySpecTags(ctx, acct, v.ID, tg)
	if err != nil {
		return nil, err
	}
	it := volumeItem(v, m)
	return &it, nil
}

// DescribeVolumesInput is the EC2 DescribeVolumes request.
type DescribeVolumesInput struct {
	VolumeIDs  []string `locationName:"VolumeId"`
	Filters    []Filter `locationName:"Filter"`
	MaxResults *int32   `locationName:"maxResults"`
	NextToken  *string  `locationName:"nextToken"`
}

// DescribeVolumesOutput is the EC2 DescribeVolumes response.
type DescribeVolumesOutput struct {
	Volumes   []VolumeItem `locationName:"volumeSet" locationNameList:"item"`
	NextToken *string      `locationName:"nextToken"`
}

type volumeWithTags struct {
	volumes.Volume
	tags map[string]string
}

func attachmentValues(v volumeWithTags, f func(volumes.Attachment) string) []string {
	var out []string
	for _, a := range v.Attachments {
		out = append(out, f(a))
	}
	return out
}

var volumeFilters = filterFields[volumeWithTags]{
	"volume-id":            func(v volumeWithTags) []string { return []string{v.ID} },
	"status":               func(v volumeWithTags) []string { return []string{v.State} },
	"availability-zone":    func(v volumeWithTags) []string { return []string{v.AvailabilityZone} },
	"volume-type":          func(v volumeWithTags) []string { return []string{string(v.Type)} },
	"size":                 func(v volumeWithTags) []string { return []string{strconv.Itoa(v.SizeGiB)} },
	"snapshot-id":          func(v volumeWithTags) []string { return nonEmpty(v.SnapshotID) },
	"encrypted":            func(v volumeWithTags) []string { return []string{strconv.FormatBool(v.Encrypted)} },
	"create-time":          func(v volumeWithTags) []string { return []string{v.CreateTime.Format(time.RFC3339)} },
	"multi-attach-enabled": func(v volumeWithTags) []string { return []string{"false"} },
	"attachment.instance-id": func(v volumeWithTags) []string {
		return attachmentValues(v, func(a volumes.Attachment) string { return a.InstanceID })
	},
	"attachment.device": func(v volumeWithTags) []string {
		return attachmentValues(v, func(a volumes.Attachment) string { return a.Device })
	},
	"attachment.status": func(v volumeWithTags) []string {
		return attachmentValues(v, func(a volumes.Attachment) string { return a.State })
	},
	"attachment.attach-time": func(v volumeWithTags) []string {
		return attachmentValues(v, func(a volumes.Attachment) string { return a.AttachTime.Format(time.RFC3339) })
	},
	"attachment.delete-on-termination": func(v volumeWithTags) []string {
		return attachmentValues(v, func(a volumes.Attachment) string { return strconv.FormatBool(a.DeleteOnTermination) })
	},
}

func (s *Server) describeVolumes(ctx context.Context, c *Call, in *DescribeVolumesInput) (*DescribeVolumesOutput, error) {
	svc, err := s.volumesService()
	if err != nil {
		return nil, err
	}
	if in.MaxResults != nil && len(in.VolumeIDs) > 0 {
		return nil, errdefs.InvalidParameter("InvalidParameterCombination", "The parameter volumeSet cannot be used with the parameter maxResults")
	}
	acct := c.Principal.AccountID
	for _, id := range in.VolumeIDs {
		if err := volumes.CheckVolumeID(id); err != nil {
			return nil, err
		}
	}
	list, err := svc.List(ctx, acct)
	if err != nil {
		return nil, err
	}
	list, err = selectByName(list, in.VolumeIDs, func(v volumes.Volume) string { return v.ID }, func(id string) error {
		return errdefs.NotFound("InvalidVolume.NotFound", "The volume '%s' does not exist.", id)
	})
	if err != nil {
		return nil, err
	}
	withTags := make([]volumeWithTags, 0, len(list))
	for _, v := range list {
		m, err := s.opts.Tags.Of(ctx, acct, v.ID)
		if err != nil {
			return nil, err
		}
		withTags = append(withTags, volumeWithTags{v, m})
	}
	withTags, err = applyFiltersWithTags(withTags, in.Filters, volumeFilters, func(v volumeWithTags) map[string]string { return v.tags })
	if err != nil {
		return nil, err
	}
	sort.Slice(withTags, func(i, j int) bool { return withTags[i].ID < withTags[j].ID })
	page, tok, err := pageByID(withTags, func(v volumeWithTags) string { return v.ID }, in.MaxResults, in.NextToken, 5, 500)
	if err != nil {
		return nil, err
	}
	out := &DescribeVolumesOutput{Volumes: []VolumeItem{}, NextToken: tok}
	for _, v := range page {
		out.Volumes = append(out.Volumes, volumeItem(v.Volume, v.tags))
	}
	return out, nil
}

// DeleteVolumeInput is the EC2 DeleteVolume request.
type DeleteVolumeInput struct {
	VolumeID string `locationName:"VolumeId" required:"true"`
}

func (s *Server) deleteVolume(ctx context.Context, c *Call, in *DeleteVolumeInput) (*ReturnOutput, error) {
	svc, err := s.volumesService()
	if err != nil {
		return nil, err
	}
	if err := svc.Delete(ctx, c.Principal.AccountID, in.VolumeID); err != nil {
		return nil, err
	}
	_ = s.opts.Tags.Forget(ctx, c.Principal.AccountID, in.VolumeID)
	return &ReturnOutput{Return: true}, nil
}

// ModifyVolumeInput is the EC2 ModifyVolume request.
type ModifyVolumeInput struct {
	VolumeID           string `locationName:"VolumeId" required:"true"`
	Size               *int32 `locationName:"Size"`
	VolumeType         string `locationName:"VolumeType"`
	Iops               *int32 `locationName:"Iops"`
	Throughput         *int32 `locationName:"Throughput"`
	MultiAttachEnabled *bool  `locationName:"MultiAttachEnabled"`
}

// VolumeModificationItem is an EC2 VolumeModification.
type VolumeModificationItem struct {
	VolumeID            string     `locationName:"volumeId"`
	ModificationState   string     `locationName:"modificationState"`
	StatusMessage       string     `locationName:"statusMessage" omitempty:"true"`
	TargetSize          int32      `locationName:"targetSize"`
	TargetIops          *int32     `locationName:"targetIops"`
	TargetVolumeType    string     `locationName:"targetVolumeType"`
	TargetThroughput    *int32     `locationName:"targetThroughput"`
	OriginalSize        int32      `locationName:"originalSize"`
	OriginalIops        *int32     `locationName:"originalIops"`
	OriginalVolumeType  string     `locationName:"originalVolumeType"`
	OriginalThroughput  *int32     `locationName:"originalThroughput"`
	TargetMultiAttach   bool       `locationName:"targetMultiAttachEnabled"`
	OriginalMultiAttach bool       `locationName:"originalMultiAttachEnabled"`
	Progress            int64      `locationName:"progress"`
	StartTime           time.Time  `locationName:"startTime" timestampFormat:"iso8601"`
	EndTime             *time.Time `locationName:"endTime" timestampFormat:"iso8601"`
}

func nonZero(n int) *int32 {
	if n == 0 {
		return nil
	}
	return i32(n)
}

func modificationItem(m volumes.Modification) VolumeModificationItem {
	it := VolumeModificationItem{VolumeID: m.VolumeID, ModificationState: m.State, StatusMessage: m.StatusMessage,
		TargetSize: int32(m.TargetSize), TargetIops: nonZero(m.TargetIOPS), TargetVolumeType: string(m.TargetVolumeType),
		TargetThroughput: nonZero(m.TargetThroughput), OriginalSize: int32(m.OriginalSize), OriginalIops: nonZero(m.OriginalIOPS),
		OriginalVolumeType: string(m.OriginalVolumeType), OriginalThroughput: nonZero(m.OriginalThroughput),
		Progress: int64(m.Progress), StartTime: m.StartTime}
	if !m.EndTime.IsZero() {
		t := m.EndTime
		it.EndTime = &t
	}
	return it
}

// ModifyVolumeOutput is the EC2 ModifyVolume response.
type ModifyVolumeOutput struct {
	VolumeModification VolumeModificationItem `locationName:"volumeModification"`
}

func (s *Server) modifyVolume(ctx context.Context, c *Call, in *ModifyVolumeInput) (*ModifyVolumeOutput, error) {
	svc, err := s.volumesService()
	if err != nil {
		return nil, err
	}
	if in.MultiAttachEnabled != nil && *in.MultiAttachEnabled {
		return nil, errdefs.InvalidParameter("InvalidParameterCombination", "Multi-Attach is not supported by labcloud")
	}
	mi := volumes.ModifyInput{SizeGiB: ptrInt(in.Size), IOPS: ptrInt(in.Iops), Throughput: ptrInt(in.Throughput)}
	if in.VolumeType != "" {
		t := volumes.VolumeType(in.VolumeType)
		mi.Type = &t
	}
	m, err := svc.Modify(ctx, c.Principal.AccountID, in.VolumeID, mi)
	if err != nil {
		return nil, err
	}
	return &ModifyVolumeOutput{VolumeModification: modificationItem(m)}, nil
}

// DescribeVolumesModificationsInput is the EC2
// DescribeVolumesModifications request.
type DescribeVolumesModificationsInput struct {
	VolumeIDs  []string `locationName:"VolumeId"`
	Filters    []Filter `locationName:"Filter"`
	MaxResults *int32   `locationName:"MaxResults"`
	NextToken  *string  `locationName:"NextToken"`
}

// DescribeVolumesModificationsOutput is its response.
type DescribeVolumesModificationsOutput struct {
	VolumesModifications []VolumeModificationItem `locationName:"volumeModificationSet" locationNameList:"item"`
	NextToken            *string                  `locationName:"nextToken"`
}

var modificationFilters = filterFields[volumes.Modification]{
	"volume-id":            func(m volumes.Modification) []string { return []string{m.VolumeID} },
	"modification-state":   func(m volumes.Modification) []string { return []string{m.State} },
	"target-volume-type":   func(m volumes.Modification) []string { return []string{string(m.TargetVolumeType)} },
	"original-volume-type": func(m volumes.Modification) []string { return []string{string(m.OriginalVolumeType)} },
	"target-size":          func(m volumes.Modification) []string { return []string{strconv.Itoa(m.TargetSize)} },
	"original-size":        func(m volumes.Modification) []string { return []string{strconv.Itoa(m.OriginalSize)} },
	"target-iops":          func(m volumes.Modification) []string { return []string{strconv.Itoa(m.TargetIOPS)} },
	"original-iops":        func(m volumes.Modification) []string { return []string{strconv.Itoa(m.OriginalIOPS)} },
	"start-time":           func(m volumes.Modification) []string { return []string{m.StartTime.Format(time.RFC3339)} },
}

func (s *Server) describeVolumesModifications(ctx context.Context, c *Call, in *DescribeVolumesModificationsInput) (*DescribeVolumesModificationsOutput, error) {
	svc, err := s.volumesService()
	if err != nil {
		return nil, err
	}
	acct := c.Principal.AccountID
	for _, id := range in.VolumeIDs {
		if _, err := svc.Get(ctx, acct, id); err != nil {
			return nil, err
		}
	}
	list, err := svc.Modifications(ctx, acct)
	if err != nil {
		return nil, err
	}
	if len(in.VolumeIDs) > 0 {
		want := strings.Join(in.VolumeIDs, " ")
		var sel []volumes.Modification
		for _, m := range list {
			if strings.Contains(" "+want+" ", " "+m.VolumeID+" ") {
				sel = append(sel, m)
			}
		}
		list = sel
	}
	if list, err = applyFilters(list, in.Filters, modificationFilters); err != nil {
		return nil, err
	}
	page, tok, err := pageByID(list, func(m volumes.Modification) string { return m.VolumeID }, in.MaxResults, in.NextToken, 5, 500)
	if err != nil {
		return nil, err
	}
	out := &DescribeVolumesModificationsOutput{VolumesModifications: []VolumeModificationItem{}, NextToken: tok}
	for _, m := range page {
		out.VolumesModifications = append(out.VolumesModifications, modificationItem(m))
	}
	return out, nil
}
