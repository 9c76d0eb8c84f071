package api

import (
	"context"
	"sort"
	"strconv"
	"time"

	"github.com/labcloud/labcloud/internal/errdefs"
	"github.com/labcloud/labcloud/internal/volumes"
)

func (s *Server) registerSnapshots() {
	s.handle(ServiceEC2, "CreateSnapshot", ec2Op(s.createSnapshot))
	s.handle(ServiceEC2, "DescribeSnapshots", ec2Op(s.describeSnapshots))
	s.handle(ServiceEC2, "DeleteSnapshot", ec2Op(s.deleteSnapshot))
	s.handle(ServiceEC2, "CopySnapshot", ec2Op(s.copySnapshot))
}

// CreateSnapshotInput is the EC2 CreateSnapshot request.
type CreateSnapshotInput struct {
	VolumeID          string             `locationName:"VolumeId" required:"true"`
	Description       string             `locationName:"Description"`
	TagSpecifications []TagSpecification `locationName:"TagSpecification" locationNameList:"item"`
	Location          string             `locationName:"Location"`
}

// SnapshotItem is an EC2 Snapshot (also the CreateSnapshot response).
type SnapshotItem struct {
	SnapshotID   string    `locationName:"snapshotId"`
	VolumeID     string    `locationName:"volumeId"`
	State        string    `locationName:"status"`
	StateMessage string    `locationName:"statusMessage" omitempty:"true"`
	StartTime    time.Time `locationName:"startTime" timestampFormat:"iso8601"`
	Progress     string    `locationName:"progress"`
	OwnerID      string    `locationName:"ownerId"`
	Description  string    `locationName:"description"`
	VolumeSize   int32     `locationName:"volumeSize"`
	Encrypted    bool      `locationName:"encrypted"`
	StorageTier  string    `locationName:"storageTier"`
	Tags         []TagItem `locationName:"tagSet" locationNameList:"item"`
	// StoredBytes is labcloud's own element, not EC2's: what the snapshot's
	// delta takes on disk (its incremental cost), which EC2 has no field
	// for (FullSnapshotSizeInBytes is the whole volume's). Clients built
	// from the EC2 model ignore unknown elements; `labcloud snapshots`
	// reads it. Absent until the snapshot is completed.
	StoredBytes int64 `locationName:"labcloudStoredBytes" omitempty:"true"`
}

func snapshotItem(sn volumes.Snapshot, tg map[string]string) SnapshotItem {
	return SnapshotItem{SnapshotID: sn.ID, VolumeID: sn.VolumeID, State: sn.State, StateMessage: sn.StateMessage,
		StartTime: sn.StartTime, Progress: strconv.Itoa(sn.Progress) + "%", OwnerID: sn.OwnerID, Description: sn.Description,
		VolumeSize: int32(sn.VolumeSize), Encrypted: sn.Encrypted, StorageTier: "standard", Tags: tagSet(tg),
		StoredBytes: sn.StoredBytes}
}

func (s *Server) createSnapshot(ctx context.Context, c *Call, in *CreateSnapshotInput) (*SnapshotItem, error) {
	svc, err := s.volumesService()
	if err != nil {
		return nil, err
	}
	if in.Location != "" && in.Location != "regional" {
		return nil, errdefs.InvalidParameter("InvalidParameterValue", "Location %s is not supported: labcloud keeps snapshots in the region", in.Location)
	}
	tg, err := specTags(in.TagSpecifications, "snapshot")
	if err != nil {
		return nil, err
	}
	acct := c.Principal.AccountID
	sn, err := svc.CreateSnapshot(ctx, acct, in.VolumeID, in.Description)
	if err != nil {
		return nil, err
	}
	m, err := s.applySpecTags(ctx, acct, sn.ID, tg)
	if err != nil {
		return nil, err
	}
	it := snapshotItem(sn, m)
	return &it, nil
}

// DescribeSnapshotsInput is the EC2 DescribeSnapshots request.
type DescribeSnapshotsInput struct {
	SnapshotIDs  []string `locationName:"SnapshotId"`
	OwnerIDs     []string `locationName:"Owner"`
	RestorableBy []string `locationName:"RestorableBy"`
	Filters      []Filter `locationName:"Filter"`
	MaxResults   *int32   `locationName:"MaxResults"`
	NextToken    *string  `locationName:"NextToken"`
}

// DescribeSnapshotsOutput is the EC2 DescribeSnapshots response.
type DescribeSnapshotsOutput struct {
	Snapshots []SnapshotItem `locationName:"snapshotSet" locationNameList:"item"`
	NextToken *string        `locationName:"nextToken"`
}

type snapshotWithTags struct {
	volumes.Snapshot
	tags map[string]string
}

var snapshotFilters = filterFields[snapshotWithTags]{
	"snapshot-id":  func(s snapshotWithTags) []string { return []string{s.ID} },
	"volume-id":    func(s snapshotWithTags) []string { return []string{s.VolumeID} },
	"status":       func(s snapshotWithTags) []string { return []string{s.State} },
	"owner-id":     func(s snapshotWithTags) []string { return []string{s.OwnerID} },
	"description":  func(s snapshotWithTags) []string { return []string{s.Description} },
	"encrypted":    func(s snapshotWithTags) []string { return []string{strconv.FormatBool(s.Encrypted)} },
	"volume-size":  func(s snapshotWithTags) []string { return []string{strconv.Itoa(s.VolumeSize)} },
	"progress":     func(s snapshotWithTags) []string { return []string{strconv.Itoa(s.Progress) + "%"} },
	"start-time":   func(s snapshotWithTags) []string { return []string{s.StartTime.Format(time.RFC3339)} },
	"storage-tier": func(s snapshotWithTags) []string { return []string{"standard"} },
}

// describeSnapshots lists the caller's own snapshots. Owner "self" or the
// caller's account selects them; snapshots are not shared between
// accounts yet, so other owners ("amazon", another id) select none.
func (s *Server) describeSnapshots(ctx context.Context, c *Call, in *DescribeSnapshotsInput) (*DescribeSnapshotsOutput, error) {
	svc, err := s.volumesService()
	if err != nil {
		return nil, err
	}
	if in.MaxResults != nil && len(in.SnapshotIDs) > 0 {
		return nil, errdefs.InvalidParameter("InvalidParameterCombination", "The parameter snapshotSet cannot be used with the parameter maxResults")
	}
	acct := c.Principal.AccountID
	for _, id := range in.SnapshotIDs {
		if err := volumes.CheckSnapshotID(id); err != nil {
			return nil, err
		}
	}
	own := len(in.OwnerIDs) == 0
	for _, o := range in.OwnerIDs {
		if o == "self" || o == acct {
			own = true
		}
	}
	var list []volumes.Snapshot
	if own {
		if list, err = svc.Snapshots(ctx, acct); err != nil {
			return nil, err
		}
	}
	list, err = selectByName(list, in.SnapshotIDs, func(s volumes.Snapshot) string { return s.ID }, func(id string) error {
		return errdefs.NotFound("InvalidSnapshot.NotFound", "The snapshot '%s' does not exist.", id)
	})
	if err != nil {
		return nil, err
	}
	withTags := make([]snapshotWithTags, 0, len(list))
	for _, sn := range list {
		m, err := s.opts.Tags.Of(ctx, acct, sn.ID)
		if err != nil {
			return nil, err
		}
		withTags = append(withTags, snapshotWithTags{sn, m})
	}
	withTags, err = applyFiltersWithTags(withTags, in.Filters, snapshotFilters, func(s snapshotWithTags) map[string]string { return s.tags })
	if err != nil {
		return nil, err
	}
	sort.Slice(withTags, func(i, j int) bool { return withTags[i].ID < withTags[j].ID })
	page, tok, err := pageByID(withTags, func(s snapshotWithTags) string { return s.ID }, in.MaxResults, in.NextToken, 5, 1000)
	if err != nil {
		return nil, err
	}
	out := &DescribeSnapshotsOutput{Snapshots: []SnapshotItem{}, NextToken: tok}
	for _, sn := range page {
		out.Snapshots = append(out.Snapshots, snapshotItem(sn.Snapshot, sn.tags))
	}
	return out, nil
}

// DeleteSnapshotInput is the EC2 DeleteSnapshot request.
type DeleteSnapshotInput struct {
	SnapshotID string `locationName:"SnapshotId" required:"true"`
}

// deleteSnapshot deletes one of the caller's snapshots, unless a
// registered image's block device mapping names it (InvalidSnapshot.InUse,
// as on AWS: deregister the image first).
func (s *Server) deleteSnapshot(ctx context.Context, c *Call, in *DeleteSnapshotInput) (*ReturnOutput, error) {
	svc, err := s.volumesService()
	if err != nil {
		return nil, err
	}
	if _, err := svc.GetSnapshot(ctx, c.Principal.AccountID, in.SnapshotID); err != nil {
		return nil, err
	}
	if s.opts.Images != nil {
		ami, err := s.opts.Images.SnapshotUser(ctx, in.SnapshotID)
		if err != nil {
			return nil, err
		}
		if ami != "" {
			return nil, errdefs.Conflict("InvalidSnapshot.InUse", "The snapshot %s is currently in use by %s", in.SnapshotID, ami)
		}
	}
	if err := svc.DeleteSnapshot(ctx, c.Principal.AccountID, in.SnapshotID); err != nil {
		return nil, err
	}
	_ = s.opts.Tags.Forget(ctx, c.Principal.AccountID, in.SnapshotID)
	return &ReturnOutput{Return: true}, nil
}

// CopySnapshotInput is the EC2 CopySnapshot request.
type CopySnapshotInput struct {
	SourceRegion      string             `locationName:"SourceRegion" required:"true"`
	SourceSnapshotID  string             `locationName:"SourceSnapshotId" required:"true"`
	Description       string             `locationName:"Description"`
	DestinationRegion string             `locationName:"destinationRegion"`
	Encrypted         *bool              `locationName:"encrypted"`
	KmsKeyID          string             `locationName:"kmsKeyId"`
	PresignedURL      string             `locationName:"presignedUrl"`
	TagSpecifications []TagSpecification `locationName:"TagSpecification" locationNameList:"item"`
}

// CopySnapshotOutput is the EC2 CopySnapshot response.
type CopySnapshotOutput struct {
	SnapshotID string    `locationName:"snapshotId"`
	Tags       []TagItem `locationName:"tagSet" locationNameList:"item"`
}

func (s *Server) copySnapshot(ctx context.Context, c *Call, in *CopySnapshotInput) (*CopySnapshotOutput, error) {
	svc, err := s.volumesService()
	if err != nil {
		return nil, err
	}
	if in.KmsKeyID != "" {
		return nil, errdefs.InvalidParameter("InvalidParameterValue", "KmsKeyId is not supported: labcloud encrypts with a key per volume lineage; pass only --encrypted")
	}
	tg, err := specTags(in.TagSpecifications, "snapshot")
	if err != nil {
		return nil, err
	}
	acct := c.Principal.AccountID
	sn, err := svc.CopySnapshot(ctx, acct, in.SourceRegion, in.SourceSnapshotID, in.Description, in.Encrypted != nil && *in.Encrypted)
	if err != nil {
		return nil, err
	}
	m, err := s.applySpecTags(ctx, acct, sn.ID, tg)
	if err != nil {
		return nil, err
	}
	return &CopySnapshotOutput{SnapshotID: sn.ID, Tags: tagSet(m)}, nil
}
