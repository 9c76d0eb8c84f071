package cli

import (
	"bytes"
	"context"
	"encoding/xml"
	"fmt"
	"io"
	"net/http"
	"strings"
	"sync"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/ec2"
	ec2types "github.com/aws/aws-sdk-go-v2/service/ec2/types"
	ucli "github.com/urfave/cli/v2"
)

func snapshotsCommand() *ucli.Command {
	return &ucli.Command{
		Name:      "snapshots",
		Usage:     "list your EBS snapshots with what each one stores (ec2 DescribeSnapshots)",
		ArgsUsage: "[SNAPSHOT-ID...]",
		Description: `Lists your snapshots: id, volume, state, the volume's size in GiB and
STORED, the bytes the snapshot itself takes on the lab server. Snapshots
are incremental: a second snapshot of a volume stores only the blocks
that changed since the first, so STORED is about what was written in
between, not the volume's size. EC2 has no field for this (describe-
snapshots' VolumeSize is the volume's size); labcloudd sends it as its own
element, labcloudStoredBytes, which the aws CLI ignores. --output json
prints StoredBytes exactly.

   labcloud snapshots
   labcloud snapshots --volume-id vol-0123456789abcdef0
   labcloud --output json snapshots snap-0123456789abcdef0`,
		Flags: []ucli.Flag{
			&ucli.StringFlag{Name: "volume-id", Usage: "only the snapshots of this volume"},
		},
		Action: snapshots,
	}
}

// snapshotRow is one snapshot as `labcloud snapshots` shows it.
type snapshotRow struct {
	SnapshotId  string
	VolumeId    string
	State       string
	Progress    string
	VolumeSize  int32 // GiB
	StoredBytes int64 // what the snapshot's own data takes on disk
	StartTime   time.Time
	Description string
}

// bodyTap is an HTTP client that keeps a copy of every response body:
// the SDK's decoder, built from the EC2 model, drops labcloud's own
// elements, so they are read from the copy.
type bodyTap struct {
	next   aws.HTTPClient
	mu     sync.Mutex
	bodies [][]byte
}

// Do sends the request and keeps the response body.
func (b *bodyTap) Do(r *http.Request) (*http.Response, error) {
	resp, err := b.next.Do(r)
	if err != nil || resp.Body == nil {
		return resp, err
	}
	data, err := io.ReadAll(resp.Body)
	resp.Body.Close()
	if err != nil {
		return nil, err
	}
	resp.Body = io.NopCloser(bytes.NewReader(data))
	b.mu.Lock()
	b.bodies = append(b.bodies, data)
	b.mu.Unlock()
	return resp, nil
}

// storedBytes reads labcloudStoredBytes by snapshot id from the kept
// DescribeSnapshots responses.
func (b *bodyTap) storedBytes() map[string]int64 {
	b.mu.Lock()
	defer b.mu.Unlock()
	m := map[string]int64{}
	for _, body := range b.bodies {
		var doc struct {
			Items []struct {
				ID     string `xml:"snapshotId"`
				Stored int64  `xml:"labcloudStoredBytes"`
			} `xml:"snapshotSet>item"`
		}
		if xml.Unmarshal(body, &doc) != nil {
			continue // an error response: the SDK reports it
		}
		for _, it := range doc.Items {
			m[it.ID] = it.Stored
		}
	}
	return m
}

func snapshots(c *ucli.Context) error {
	cfg, err := awsConfig(c)
	if err != nil {
		return err
	}
	next := cfg.HTTPClient
	if next == nil {
		next = http.DefaultClient
	}
	tap := &bodyTap{next: next}
	cfg.HTTPClient = tap
	cl := ec2.NewFromConfig(cfg)
	ctx, cancel := context.WithTimeout(c.Context, 60*time.Second)
	defer cancel()
	in := &ec2.DescribeSnapshotsInput{OwnerIds: []string{"self"}, SnapshotIds: c.Args().Slice()}
	if v := c.String("volume-id"); v != "" {
		in.Filters = []ec2types.Filter{{Name: aws.String("volume-id"), Values: []string{v}}}
	}
	var list []ec2types.Snapshot
	for p := ec2.NewDescribeSnapshotsPaginator(cl, in); p.HasMorePages(); {
		out, err := p.NextPage(ctx)
		if err != nil {
			return apiError(err)
		}
		list = append(list, out.Snapshots...)
	}
	stored := tap.storedBytes()
	rows := []snapshotRow{}
	cells := [][]string{}
	for _, s := range list {
		r := snapshotRow{SnapshotId: aws.ToString(s.SnapshotId), VolumeId: aws.ToString(s.VolumeId), State: string(s.State),
			Progress: aws.ToString(s.Progress), VolumeSize: aws.ToInt32(s.VolumeSize), StoredBytes: stored[aws.ToString(s.SnapshotId)],
			StartTime: aws.ToTime(s.StartTime), Description: aws.ToString(s.Description)}
		rows = append(rows, r)
		st := "-"
		if r.State == "completed" {
			st = humanBytes(r.StoredBytes)
		}
		cells = append(cells, []string{r.SnapshotId, r.VolumeId, r.State, r.Progress, fmt.Sprintf("%d GiB", r.VolumeSize), st,
			r.StartTime.UTC().Format(time.RFC3339), r.Description})
	}
	return render(c, rows, []string{"SNAPSHOT-ID", "VOLUME-ID", "STATE", "PROGRESS", "SIZE", "STORED", "STARTED", "DESCRIPTION"}, cells)
}

// humanBytes prints n in the largest binary unit that keeps it at least 1.
func humanBytes(n int64) string {
	units := []string{"B", "KiB", "MiB", "GiB", "TiB"}
	f, i := float64(n), 0
	for f >= 1024 && i < len(units)-1 {
		f /= 1024
		i++
	}
	if i == 0 {
		return fmt.Sprintf("%d B", n)
	}
	return strings.TrimSuffix(fmt.Sprintf("%.1f", f), ".0") + " " + units[i]
}
