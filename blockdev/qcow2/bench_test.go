package qcow2_test

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/labcloud/labcloud/blockdev"
	"github.com/labcloud/labcloud/blockdev/blockdevtest"
)

// BenchmarkSnapshot measures, on a 1 GiB volume with 512 MiB written: the
// time of a first (full) snapshot, the time and the stored size of a
// second one after 1 % of the volume changed (the incremental ratio is
// second/first stored bytes), and the time to create a volume from a
// snapshot.
func BenchmarkSnapshot(b *testing.B) {
	ctx := context.Background()
	for i := 0; i < b.N; i++ {
		be := newBackend(b)
		v, err := be.CreateVolume(ctx, blockdev.CreateVolumeInput{ID: "vol-b", SizeBytes: 1 << 30})
		if err != nil {
			b.Fatal(err)
		}
		if err := blockdevtest.QemuIO(b, v, "write -P 0x11 0 512M"); err != nil {
			b.Fatal(err)
		}
		t0 := time.Now()
		s1, err := be.CreateSnapshot(ctx, blockdev.CreateSnapshotInput{ID: "snap-1", VolumeID: v.ID})
		if err != nil {
			b.Fatal(err)
		}
		first := time.Since(t0)
		// 1 % of 1 GiB, in 64 KiB writes spread over the volume.
		var cmds []string
		for off := int64(0); off < 1<<30; off += 6400 << 10 {
			cmds = append(cmds, fmt.Sprintf("write -P 0x22 %d 64k", off))
		}
		if err := blockdevtest.QemuIO(b, v, cmds...); err != nil {
			b.Fatal(err)
		}
		t0 = time.Now()
		s2, err := be.CreateSnapshot(ctx, blockdev.CreateSnapshotInput{ID: "snap-2", VolumeID: v.ID})
		if err != nil {
			b.Fatal(err)
		}
		second := time.Since(t0)
		t0 = time.Now()
		if _, err := be.CreateVolume(ctx, blockdev.CreateVolumeInput{ID: "vol-r", SnapshotID: s2.ID}); err != nil {
			b.Fatal(err)
		}
		restore := time.Since(t0)
		b.ReportMetric(first.Seconds(), "s/first-snapshot")
		b.ReportMetric(second.Seconds(), "s/incremental-snapshot")
		b.ReportMetric(float64(s1.StoredBytes)/(1<<20), "MiB/first-snapshot")
		b.ReportMetric(float64(s2.StoredBytes)/(1<<20), "MiB/incremental-snapshot")
		b.ReportMetric(float64(s2.StoredBytes)/float64(s1.StoredBytes), "incremental-ratio")
		b.ReportMetric(restore.Seconds()*1000, "ms/volume-from-snapshot")
	}
}
