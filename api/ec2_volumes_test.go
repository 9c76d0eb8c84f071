package api

import (
	"context"
	"net/http/httptest"
	"os/exec"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/service/ec2"
	ec2types "github.com/aws/aws-sdk-go-v2/service/ec2/types"

	"github.com/labcloud/labcloud/blockdev/qcow2"
	"github.com/labcloud/labcloud/iamd"
	"github.com/labcloud/labcloud/internal/cloud"
	"github.com/labcloud/labcloud/internal/store/storetest"
	"github.com/labcloud/labcloud/internal/tags"
	"github.com/labcloud/labcloud/internal/volumes"
)

// newVolumesClient is an aws-sdk-go-v2 EC2 client against a Server with
// the EBS service on a real etcd and a real qcow2 block store.
func newVolumesClient(t *testing.T) *ec2.Client {
	t.Helper()
	if _, err := exec.LookPath("qemu-img"); err != nil {
		t.Skip("qemu-img not installed (qemu-utils)")
	}
	ctx := context.Background()
	st := storetest.NewEmbedded(t)
	accounts := iamd.NewAccounts(st)
	_, admin, err := accounts.Bootstrap(ctx, "admin")
	if err != nil {
		t.Fatal(err)
	}
	cl := cloud.New(st)
	if err := cl.Seed(ctx, "lab-1", "http://localhost", []string{"lab-1a", "lab-1b"}); err != nil {
		t.Fatal(err)
	}
	be, err := qcow2.New(qcow2.Options{Dir: t.TempDir()})
	if err != nil {
		t.Fatal(err)
	}
	svc := volumes.New(volumes.Options{Store: st, Backend: be, Region: "lab-1", Zones: func(ctx context.Context) ([]string, error) {
		zs, err := cl.Zones(ctx)
		var names []string
		for _, z := range zs {
			names = append(names, z.Name)
		}
		return names, err
	}})
	t.Cleanup(svc.Close)
	tg := tags.New(st)
	tg.Register("vol-", svc.Exists, "volume")
	tg.Register("snap-", svc.SnapshotExists, "snapshot")
	hs := httptest.NewServer(New(Options{Accounts: accounts, Cloud: cl, Region: "lab-1", Volumes: svc, Tags: tg}))
	t.Cleanup(hs.Close)
	return ec2.New(ec2.Options{Region: "lab-1", BaseEndpoint: aws.String(hs.URL),
		Credentials: credentials.NewStaticCredentialsProvider(admin.AccessKeyID, admin.SecretAccessKey, "")})
}

func TestVolumesAPI(t *testing.T) {
	c := newVolumesClient(t)
	ctx := context.Background()
	v, err := c.CreateVolume(ctx, &ec2.CreateVolumeInput{AvailabilityZone: aws.String("lab-1a"), Size: aws.Int32(2),
		VolumeType: ec2types.VolumeTypeGp3, Throughput: aws.Int32(200),
		TagSpecifications: []ec2types.TagSpecification{{ResourceType: ec2types.ResourceTypeVolume,
			Tags: []ec2types.Tag{{Key: aws.String("lab"), Value: aws.String("ebs")}}}}})
	if err != nil {
		t.Fatal(err)
	}
	if aws.ToInt32(v.Size) != 2 || aws.ToInt32(v.Iops) != 3000 || aws.ToInt32(v.Throughput) != 200 || v.State != ec2types.VolumeStateAvailable ||
		aws.ToString(v.AvailabilityZone) != "lab-1a" || v.CreateTime == nil || len(v.Tags) != 1 {
		t.Fatalf("CreateVolume: %+v", v)
	}
	id := aws.ToString(v.VolumeId)
	v2, err := c.CreateVolume(ctx, &ec2.CreateVolumeInput{AvailabilityZone: aws.String("lab-1b"), Size: aws.Int32(100)})
	if err != nil {
		t.Fatal(err)
	}
	if v2.VolumeType != ec2types.VolumeTypeGp2 || aws.ToInt32(v2.Iops) != 300 {
		t.Errorf("default volume: type %s iops %d, want gp2 with 300", v2.VolumeType, aws.ToInt32(v2.Iops))
	}

	for _, tc := range []struct {
		name string
		in   *ec2.CreateVolumeInput
		code string
	}{
		{"bad zone", &ec2.CreateVolumeInput{AvailabilityZone: aws.String("us-east-1a"), Size: aws.Int32(1)}, "InvalidZone.NotFound"},
		{"io1 without iops", &ec2.CreateVolumeInput{AvailabilityZone: aws.String("lab-1a"), Size: aws.Int32(10), VolumeType: ec2types.VolumeTypeIo1}, "MissingParameter"},
		{"too big", &ec2.CreateVolumeInput{AvailabilityZone: aws.String("lab-1a"), Size: aws.Int32(16385)}, "InvalidParameterValue"},
		{"gp2 iops", &ec2.CreateVolumeInput{AvailabilityZone: aws.String("lab-1a"), Size: aws.Int32(10), Iops: aws.Int32(300)}, "InvalidParameterCombination"},
		{"bad snapshot", &ec2.CreateVolumeInput{AvailabilityZone: aws.String("lab-1a"), SnapshotId: aws.String("snap-0123456789abcdef0")}, "InvalidSnapshot.NotFound"},
		{"bad type", &ec2.CreateVolumeInput{AvailabilityZone: aws.String("lab-1a"), Size: aws.Int32(1), VolumeType: "gp9"}, "InvalidParameterValue"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if _, err := c.CreateVolume(ctx, tc.in); apiCode(err) != tc.code {
				t.Fatalf("err %v, want %s", err, tc.code)
			}
		})
	}

	// Describe: ids, filters, pagination.
	d, err := c.DescribeVolumes(ctx, &ec2.DescribeVolumesInput{Filters: []ec2types.Filter{{Name: aws.String("tag:lab"), Values: []string{"ebs"}}}})
	if err != nil || len(d.Volumes) != 1 || aws.ToString(d.Volumes[0].VolumeId) != id {
		t.Fatalf("DescribeVolumes tag filter: %+v %v", d, err)
	}
	d, err = c.DescribeVolumes(ctx, &ec2.DescribeVolumesInput{Filters: []ec2types.Filter{
		{Name: aws.String("availability-zone"), Values: []string{"lab-1b"}}, {Name: aws.String("status"), Values: []string{"available"}}}})
	if err != nil || len(d.Volumes) != 1 || aws.ToString(d.Volumes[0].VolumeId) != aws.ToString(v2.VolumeId) {
		t.Fatalf("DescribeVolumes zone filter: %+v %v", d, err)
	}
	d, err = c.DescribeVolumes(ctx, &ec2.DescribeVolumesInput{Filters: []ec2types.Filter{{Name: aws.String("attachment.instance-id"), Values: []string{"i-0123456789abcdef0"}}}})
	if err != nil || len(d.Volumes) != 0 {
		t.Fatalf("DescribeVolumes attachment filter: %+v %v", d, err)
	}
	for i := 0; i < 5; i++ {
		if _, err := c.CreateVolume(ctx, &ec2.CreateVolumeInput{AvailabilityZone: aws.String("lab-1a"), Size: aws.Int32(1), VolumeType: ec2types.VolumeTypeStandard}); err != nil {
			t.Fatal(err)
		}
	}
	seen := map[string]bool{}
	pages := 0
	for p := ec2.NewDescribeVolumesPaginator(c, &ec2.DescribeVolumesInput{MaxResults: aws.Int32(5)}); p.HasMorePages(); pages++ {
		out, err := p.NextPage(ctx)
		if err != nil {
			t.Fatal(err)
		}
		for _, v := range out.Volumes {
			seen[aws.ToString(v.VolumeId)] = true
		}
	}
	if len(seen) != 7 || pages != 2 {
		t.Fatalf("paginated DescribeVolumes saw %d volumes in %d pages, want 7 in 2", len(seen), pages)
	}
	if _, err := c.DescribeVolumes(ctx, &ec2.DescribeVolumesInput{VolumeIds: []string{"vol-123"}}); apiCode(err) != "InvalidVolumeID.Malformed" {
		t.Fatalf("malformed id: %v", err)
	}
	if _, err := c.DescribeVolumes(ctx, &ec2.DescribeVolumesInput{VolumeIds: []string{"vol-0123456789abcdef0"}}); apiCode(err) != "InvalidVolume.NotFound" {
		t.Fatalf("unknown id: %v", err)
	}

	// Modify and its record.
	m, err := c.ModifyVolume(ctx, &ec2.ModifyVolumeInput{VolumeId: aws.String(id), Size: aws.Int32(4), VolumeType: ec2types.VolumeTypeIo1, Iops: aws.Int32(200)})
	if err != nil {
		t.Fatal(err)
	}
	if mm := m.VolumeModification; mm.ModificationState != ec2types.VolumeModificationStateCompleted || aws.ToInt32(mm.TargetSize) != 4 ||
		aws.ToInt32(mm.OriginalSize) != 2 || mm.TargetVolumeType != ec2types.VolumeTypeIo1 || mm.OriginalVolumeType != ec2types.VolumeTypeGp3 {
		t.Fatalf("ModifyVolume: %+v", mm)
	}
	if _, err := c.ModifyVolume(ctx, &ec2.ModifyVolumeInput{VolumeId: aws.String(id), Size: aws.Int32(3)}); apiCode(err) != "InvalidParameterValue" {
		t.Fatalf("shrink: %v", err)
	}
	dm, err := c.DescribeVolumesModifications(ctx, &ec2.DescribeVolumesModificationsInput{VolumeIds: []string{id}})
	if err != nil || len(dm.VolumesModifications) != 1 || aws.ToInt32(dm.VolumesModifications[0].TargetIops) != 200 {
		t.Fatalf("DescribeVolumesModifications: %+v %v", dm, err)
	}

	// Snapshots.
	sn, err := c.CreateSnapshot(ctx, &ec2.CreateSnapshotInput{VolumeId: aws.String(id), Description: aws.String("first")})
	if err != nil {
		t.Fatal(err)
	}
	if sn.State != ec2types.SnapshotStatePending || aws.ToInt32(sn.VolumeSize) != 4 || aws.ToString(sn.VolumeId) != id {
		t.Fatalf("CreateSnapshot: %+v", sn)
	}
	w := ec2.NewSnapshotCompletedWaiter(c)
	if err := w.Wait(ctx, &ec2.DescribeSnapshotsInput{SnapshotIds: []string{aws.ToString(sn.SnapshotId)}}, time.Minute,
		func(o *ec2.SnapshotCompletedWaiterOptions) {
			o.MinDelay, o.MaxDelay = 50*time.Millisecond, 200*time.Millisecond
		}); err != nil {
		t.Fatalf("waiting for the snapshot: %v", err)
	}
	ds, err := c.DescribeSnapshots(ctx, &ec2.DescribeSnapshotsInput{OwnerIds: []string{"self"}})
	if err != nil || len(ds.Snapshots) != 1 || aws.ToString(ds.Snapshots[0].Progress) != "100%" || aws.ToString(ds.Snapshots[0].Description) != "first" {
		t.Fatalf("DescribeSnapshots: %+v %v", ds, err)
	}
	if ds, _ := c.DescribeSnapshots(ctx, &ec2.DescribeSnapshotsInput{OwnerIds: []string{"amazon"}}); len(ds.Snapshots) != 0 {
		t.Errorf("Owner amazon lists %d snapshots", len(ds.Snapshots))
	}
	cp, err := c.CopySnapshot(ctx, &ec2.CopySnapshotInput{SourceRegion: aws.String("lab-1"), SourceSnapshotId: sn.SnapshotId})
	if err != nil {
		t.Fatal(err)
	}
	r, err := c.CreateVolume(ctx, &ec2.CreateVolumeInput{AvailabilityZone: aws.String("lab-1b"), SnapshotId: cp.SnapshotId})
	if err != nil || aws.ToInt32(r.Size) != 4 || aws.ToString(r.SnapshotId) != aws.ToString(cp.SnapshotId) {
		t.Fatalf("volume from the copy: %+v %v", r, err)
	}
	if _, err := c.DeleteSnapshot(ctx, &ec2.DeleteSnapshotInput{SnapshotId: sn.SnapshotId}); err != nil {
		t.Fatal(err)
	}
	if _, err := c.DeleteSnapshot(ctx, &ec2.DeleteSnapshotInput{SnapshotId: sn.SnapshotId}); apiCode(err) != "InvalidSnapshot.NotFound" {
		t.Fatalf("second DeleteSnapshot: %v", err)
	}
	if _, err := c.DeleteVolume(ctx, &ec2.DeleteVolumeInput{VolumeId: aws.String(id)}); err != nil {
		t.Fatal(err)
	}
	if _, err := c.DeleteVolume(ctx, &ec2.DeleteVolumeInput{VolumeId: aws.String(id)}); apiCode(err) != "InvalidVolume.NotFound" {
		t.Fatalf("second DeleteVolume: %v", err)
	}
}
