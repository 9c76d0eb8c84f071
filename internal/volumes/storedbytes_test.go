package volumes_test

import (
	"context"
	"testing"

	"github.com/labcloud/labcloud/blockdev/blockdevtest"
	"github.com/labcloud/labcloud/internal/volumes"
)

// Deleting a snapshot moves the data a later one still needs into it: the
// later one's StoredBytes says so afterwards, not what it took when made.
func TestStoredBytesAfterDeletingTheParent(t *testing.T) {
	s := newService(t)
	ctx := context.Background()
	v, err := s.Create(ctx, acct, volumes.CreateInput{AvailabilityZone: "lab-1a", SizeGiB: ptr(1)})
	if err != nil {
		t.Fatal(err)
	}
	bv, _ := s.Backend().Volume(ctx, v.ID)
	if err := blockdevtest.QemuIO(t, bv, "write -P 0x11 0 8M"); err != nil {
		t.Fatal(err)
	}
	s1, _ := s.CreateSnapshot(ctx, acct, v.ID, "first")
	s1 = waitSnapshot(t, s, s1.ID)
	if err := blockdevtest.QemuIO(t, bv, "write -P 0x22 0 64k"); err != nil {
		t.Fatal(err)
	}
	s2, _ := s.CreateSnapshot(ctx, acct, v.ID, "second")
	s2 = waitSnapshot(t, s, s2.ID)
	if s2.StoredBytes >= 1<<20 {
		t.Fatalf("the second snapshot stores %d bytes after a 64 KiB change", s2.StoredBytes)
	}
	if err := s.DeleteSnapshot(ctx, acct, s1.ID); err != nil {
		t.Fatal(err)
	}
	got, err := s.GetSnapshot(ctx, acct, s2.ID)
	if err != nil {
		t.Fatal(err)
	}
	b, err := s.Backend().Snapshot(ctx, s2.ID)
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("second snapshot: %d bytes when made, %d after deleting the first (backend: %d)", s2.StoredBytes, got.StoredBytes, b.StoredBytes)
	if got.StoredBytes < 8<<20 || got.StoredBytes != b.StoredBytes {
		t.Errorf("after deleting the first snapshot the second's record says %d bytes; it takes %d (the first's 8 MiB moved into it)", got.StoredBytes, b.StoredBytes)
	}
}
