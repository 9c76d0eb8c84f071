// Package blockdevtest is the conformance suite every blockdev.Backend must
// pass (as containerd's snapshots/testsuite is for snapshotters). It reads
// and writes volumes the way a VM would, through qemu-io on the path,
// format and key the backend reports.
package blockdevtest

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"os/exec"
	"strings"
	"testing"

	"github.com/labcloud/labcloud/blockdev"
	"github.com/labcloud/labcloud/internal/errdefs"
)

// Factory makes a fresh, empty backend for one test.
type Factory func(t *testing.T) blockdev.Backend

// Size of the volumes the suite makes: large enough for a meaningful
// incremental ratio, small enough to be quick.
const volSize = 64 << 20

// Run runs the whole suite against backends from f.
func Run(t *testing.T, f Factory) {
	if _, err := exec.LookPath("qemu-io"); err != nil {
		t.Skip("qemu-io not installed (Debian: qemu-utils); the suite reads and writes volumes with it")
	}
	for _, tc := range []struct {
		name string
		fn   func(*testing.T, blockdev.Backend)
	}{
		{"CreateDeleteVolume", testCreateDelete},
		{"SnapshotRestore", testSnapshotRestore},
		{"Incremental", testIncremental},
		{"DeleteAnySnapshot", testDeleteAny},
		{"DeleteSnapshotUsedByVolume", testDeleteUsed},
		{"Encrypted", testEncrypted},
		{"Resize", testResize},
		{"Idempotent", testIdempotent},
	} {
		t.Run(tc.name, func(t *testing.T) { tc.fn(t, f(t)) })
	}
}

// ImageOpts is the qemu-io --image-opts string and --object arguments that
// open v as a VM would: a key at every encrypted layer.
func ImageOpts(v blockdev.Volume) (objects []string, opts string) {
	esc := func(s string) string { return strings.ReplaceAll(s, ",", ",,") }
	fileDriver := "file"
	if st, err := os.Stat(v.Path); err == nil && st.Mode()&os.ModeDevice != 0 {
		fileDriver = "host_device"
	}
	kv := []string{"driver=" + string(v.Format), "file.driver=" + fileDriver, "file.filename=" + esc(v.Path)}
	if v.Encrypted {
		objects = []string{"--object", "secret,id=k0,file=" + esc(v.KeyFile) + ",format=raw"}
		kv = append(kv, "encrypt.key-secret=k0")
		if v.Format == blockdev.FormatLUKS {
			kv[len(kv)-1] = "key-secret=k0"
		}
	}
	prefix := "backing."
	for _, l := range v.Chain {
		if l.Encrypted {
			kv = append(kv, prefix+"encrypt.key-secret=k0")
		}
		prefix += "backing."
	}
	return objects, strings.Join(kv, ",")
}

// QemuIO runs qemu-io commands (e.g. "write -P 0x11 0 1M") on volume v.
func QemuIO(t testing.TB, v blockdev.Volume, cmds ...string) error {
	t.Helper()
	obj, opts := ImageOpts(v)
	args := append(obj, "--image-opts", opts)
	for _, c := range cmds {
		args = append(args, "-c", c)
	}
	out, err := exec.Command("qemu-io", args...).CombinedOutput()
	if err != nil || bytes.Contains(out, []byte("Pattern verification failed")) || bytes.Contains(out, []byte("error")) {
		return fmt.Errorf("qemu-io %v: %v: %s", cmds, err, out)
	}
	return nil
}

func mustIO(t *testing.T, v blockdev.Volume, cmds ...string) {
	t.Helper()
	if err := QemuIO(t, v, cmds...); err != nil {
		t.Fatal(err)
	}
}

func mustVol(t *testing.T, b blockdev.Backend, in blockdev.CreateVolumeInput) blockdev.Volume {
	t.Helper()
	v, err := b.CreateVolume(context.Background(), in)
	if err != nil {
		t.Fatalf("CreateVolume(%+v): %v", in, err)
	}
	return v
}

func mustSnap(t *testing.T, b blockdev.Backend, vol, id string) blockdev.Snapshot {
	t.Helper()
	s, err := b.CreateSnapshot(context.Background(), blockdev.CreateSnapshotInput{ID: id, VolumeID: vol})
	if err != nil {
		t.Fatalf("CreateSnapshot %s of %s: %v", id, vol, err)
	}
	if s.State != blockdev.SnapshotCompleted {
		t.Fatalf("snapshot %s is %s, want completed", id, s.State)
	}
	return s
}

func mustCheck(t *testing.T, b blockdev.Backend, id string) {
	t.Helper()
	r, err := b.Check(context.Background(), id)
	if err != nil || !r.OK {
		t.Fatalf("Check %s: %+v, %v", id, r, err)
	}
}

func testCreateDelete(t *testing.T, b blockdev.Backend) {
	ctx := context.Background()
	v := mustVol(t, b, blockdev.CreateVolumeInput{ID: "vol-a", SizeBytes: volSize})
	if v.SizeBytes != volSize || v.Path == "" {
		t.Fatalf("volume %+v, want %d bytes with a path", v, volSize)
	}
	mustIO(t, v, "read -P 0 0 1M", "write -P 0x5a 0 1M", "read -P 0x5a 0 1M")
	mustCheck(t, b, v.ID)
	if err := b.DeleteVolume(ctx, v.ID); err != nil {
		t.Fatal(err)
	}
	if _, err := b.Volume(ctx, v.ID); !errdefs.Is(err, errdefs.ClassNotFound) {
		t.Fatalf("Volume after delete: %v, want NotFound", err)
	}
	if err := b.DeleteVolume(ctx, v.ID); err != nil {
		t.Fatalf("second delete: %v, want nil", err)
	}
	if _, err := b.Snapshot(ctx, "snap-none"); !errdefs.Is(err, errdefs.ClassNotFound) {
		t.Fatalf("Snapshot of unknown id: %v, want NotFound", err)
	}
}

func testSnapshotRestore(t *testing.T, b blockdev.Backend) {
	v := mustVol(t, b, blockdev.CreateVolumeInput{ID: "vol-a", SizeBytes: volSize})
	mustIO(t, v, "write -P 0x11 0 4M")
	mustSnap(t, b, v.ID, "snap-1")
	mustIO(t, v, "write -P 0x22 1M 64k")
	s2 := mustSnap(t, b, v.ID, "snap-2")
	if s2.ParentID != "snap-1" && s2.ParentID != "" {
		t.Errorf("snap-2 parent %q", s2.ParentID)
	}
	r1 := mustVol(t, b, blockdev.CreateVolumeInput{ID: "vol-r1", SnapshotID: "snap-1"})
	if r1.SizeBytes != volSize {
		t.Errorf("restored size %d, want %d", r1.SizeBytes, volSize)
	}
	mustIO(t, r1, "read -P 0x11 0 4M")
	r2 := mustVol(t, b, blockdev.CreateVolumeInput{ID: "vol-r2", SnapshotID: "snap-2", SizeBytes: 2 * volSize})
	mustIO(t, r2, "read -P 0x11 0 1M", "read -P 0x22 1M 64k", "read -P 0x11 1088k 2944k", "read -P 0 100M 1M")
	// Writes to a restored volume touch neither the snapshot nor the
	// original volume.
	mustIO(t, r1, "write -P 0x33 0 1M")
	mustIO(t, mustVol(t, b, blockdev.CreateVolumeInput{ID: "vol-r3", SnapshotID: "snap-1"}), "read -P 0x11 0 4M")
	mustIO(t, v, "read -P 0x11 0 1M")
	for _, id := range []string{"vol-a", "vol-r1", "vol-r2", "snap-1", "snap-2"} {
		mustCheck(t, b, id)
	}
}

func testIncremental(t *testing.T, b blockdev.Backend) {
	v := mustVol(t, b, blockdev.CreateVolumeInput{ID: "vol-a", SizeBytes: volSize})
	mustIO(t, v, "write -P 0x11 0 32M")
	s1 := mustSnap(t, b, v.ID, "snap-1")
	// 1 % of the written data, in ten places.
	var cmds []string
	for i := 0; i < 10; i++ {
		cmds = append(cmds, fmt.Sprintf("write -P 0x22 %d 32k", i*3<<20))
	}
	mustIO(t, v, cmds...)
	s2 := mustSnap(t, b, v.ID, "snap-2")
	if s1.StoredBytes == 0 {
		t.Logf("backend does not report stored bytes; incremental size not checked")
		return
	}
	t.Logf("first snapshot %d bytes, second (1%% changed) %d bytes", s1.StoredBytes, s2.StoredBytes)
	if s1.StoredBytes < 32<<20 {
		t.Errorf("first snapshot stores %d bytes, want the 32 MiB written", s1.StoredBytes)
	}
	if s2.StoredBytes > s1.StoredBytes/10 {
		t.Errorf("second snapshot stores %d bytes after a 1%% change, want under a tenth of the first (%d)", s2.StoredBytes, s1.StoredBytes)
	}
}

func testDeleteAny(t *testing.T, b blockdev.Backend) {
	ctx := context.Background()
	v := mustVol(t, b, blockdev.CreateVolumeInput{ID: "vol-a", SizeBytes: volSize})
	mustIO(t, v, "write -P 0x11 0 1M")
	mustSnap(t, b, v.ID, "snap-1")
	mustIO(t, v, "write -P 0x22 1M 1M")
	mustSnap(t, b, v.ID, "snap-2")
	mustIO(t, v, "write -P 0x33 2M 1M")
	mustSnap(t, b, v.ID, "snap-3")
	mustIO(t, v, "write -P 0x44 3M 1M")
	mustSnap(t, b, v.ID, "snap-4")
	// Middle, then oldest, then newest.
	if err := b.DeleteSnapshot(ctx, "snap-2"); err != nil {
		t.Fatal(err)
	}
	if _, err := b.Snapshot(ctx, "snap-2"); !errdefs.Is(err, errdefs.ClassNotFound) {
		t.Fatalf("deleted snapshot: %v, want NotFound", err)
	}
	r3 := mustVol(t, b, blockdev.CreateVolumeInput{ID: "vol-r3", SnapshotID: "snap-3"})
	mustIO(t, r3, "read -P 0x11 0 1M", "read -P 0x22 1M 1M", "read -P 0x33 2M 1M", "read -P 0 3M 1M")
	if err := b.DeleteSnapshot(ctx, "snap-1"); err != nil {
		t.Fatal(err)
	}
	mustIO(t, r3, "read -P 0x11 0 1M", "read -P 0x22 1M 1M", "read -P 0x33 2M 1M")
	r4 := mustVol(t, b, blockdev.CreateVolumeInput{ID: "vol-r4", SnapshotID: "snap-4"})
	mustIO(t, r4, "read -P 0x11 0 1M", "read -P 0x22 1M 1M", "read -P 0x33 2M 1M", "read -P 0x44 3M 1M")
	if err := b.DeleteSnapshot(ctx, "snap-4"); err != nil {
		t.Fatal(err)
	}
	mustIO(t, r4, "read -P 0x44 3M 1M")
	// A new snapshot after deleting the newest one still restores fully.
	mustIO(t, v, "write -P 0x55 4M 1M")
	mustSnap(t, b, v.ID, "snap-5")
	mustIO(t, mustVol(t, b, blockdev.CreateVolumeInput{ID: "vol-r5", SnapshotID: "snap-5"}),
		"read -P 0x11 0 1M", "read -P 0x22 1M 1M", "read -P 0x33 2M 1M", "read -P 0x44 3M 1M", "read -P 0x55 4M 1M")
	for _, id := range []string{"snap-3", "snap-5", "vol-r3", "vol-r4"} {
		mustCheck(t, b, id)
	}
}

func testDeleteUsed(t *testing.T, b blockdev.Backend) {
	ctx := context.Background()
	v := mustVol(t, b, blockdev.CreateVolumeInput{ID: "vol-a", SizeBytes: volSize})
	mustIO(t, v, "write -P 0x11 0 1M")
	mustSnap(t, b, v.ID, "snap-1")
	r := mustVol(t, b, blockdev.CreateVolumeInput{ID: "vol-r", SnapshotID: "snap-1"})
	if err := b.DeleteSnapshot(ctx, "snap-1"); err != nil {
		t.Fatal(err)
	}
	if _, err := b.CreateVolume(ctx, blockdev.CreateVolumeInput{ID: "vol-x", SnapshotID: "snap-1"}); err == nil {
		t.Fatal("CreateVolume from a deleted snapshot succeeded")
	}
	mustIO(t, r, "read -P 0x11 0 1M")
	// The restored volume's own snapshots stay restorable after it goes.
	mustIO(t, r, "write -P 0x22 0 64k")
	mustSnap(t, b, r.ID, "snap-r")
	if err := b.DeleteVolume(ctx, r.ID); err != nil {
		t.Fatal(err)
	}
	mustIO(t, mustVol(t, b, blockdev.CreateVolumeInput{ID: "vol-rr", SnapshotID: "snap-r"}), "read -P 0x22 0 64k", "read -P 0x11 64k 960k")
}

func testEncrypted(t *testing.T, b blockdev.Backend) {
	v := mustVol(t, b, blockdev.CreateVolumeInput{ID: "vol-e", SizeBytes: volSize, Encrypted: true})
	if !v.Encrypted || v.KeyFile == "" {
		t.Fatalf("volume %+v, want encrypted with a key file", v)
	}
	st, err := os.Stat(v.KeyFile)
	if err != nil || st.Mode().Perm() != 0o600 {
		t.Fatalf("key file %s: %v %v, want mode 0600", v.KeyFile, st, err)
	}
	mustIO(t, v, "write -P 0x61 0 2M")
	s1 := mustSnap(t, b, v.ID, "snap-e1")
	if !s1.Encrypted {
		t.Errorf("snapshot of an encrypted volume is not encrypted")
	}
	mustIO(t, v, "write -P 0x62 1M 64k")
	mustSnap(t, b, v.ID, "snap-e2")
	r := mustVol(t, b, blockdev.CreateVolumeInput{ID: "vol-er", SnapshotID: "snap-e2"})
	if !r.Encrypted {
		t.Errorf("volume from an encrypted snapshot is not encrypted")
	}
	mustIO(t, r, "read -P 0x61 0 1M", "read -P 0x62 1M 64k")
	if err := b.DeleteSnapshot(context.Background(), "snap-e1"); err != nil {
		t.Fatal(err)
	}
	mustIO(t, mustVol(t, b, blockdev.CreateVolumeInput{ID: "vol-er2", SnapshotID: "snap-e2"}), "read -P 0x61 0 1M", "read -P 0x62 1M 64k")
	// The bytes at rest do not contain the plaintext: write a marker
	// and look for it in the file. A plain volume shows it.
	marker := "labcloud-plaintext-marker"
	p := mustVol(t, b, blockdev.CreateVolumeInput{ID: "vol-p", SizeBytes: volSize})
	for _, vol := range []blockdev.Volume{v, p} {
		f := t.TempDir() + "/m"
		os.WriteFile(f, bytes.Repeat([]byte(marker), 4096/len(marker)+1)[:4096], 0o600)
		obj, opts := ImageOpts(vol)
		if out, err := exec.Command("qemu-io", append(obj, "--image-opts", opts, "-c", "write -s "+f+" 8M 4k")...).CombinedOutput(); err != nil {
			t.Fatalf("qemu-io: %v: %s", err, out)
		}
		raw, err := os.ReadFile(vol.Path)
		if err != nil {
			t.Skipf("cannot read %s to look for plaintext: %v", vol.Path, err)
		}
		if got := bytes.Contains(raw, []byte(marker)); got == vol.Encrypted {
			t.Errorf("volume %s (encrypted %v): plaintext on disk %v", vol.ID, vol.Encrypted, got)
		}
	}
	mustCheck(t, b, "vol-e")
	mustCheck(t, b, "snap-e2")
}

func testResize(t *testing.T, b blockdev.Backend) {
	ctx := context.Background()
	v := mustVol(t, b, blockdev.CreateVolumeInput{ID: "vol-a", SizeBytes: volSize})
	mustIO(t, v, "write -P 0x11 0 1M")
	v, err := b.ResizeVolume(ctx, v.ID, 2*volSize)
	if err != nil || v.SizeBytes != 2*volSize {
		t.Fatalf("ResizeVolume: %+v %v", v, err)
	}
	mustIO(t, v, "read -P 0x11 0 1M", "write -P 0x22 100M 1M", "read -P 0x22 100M 1M")
	if _, err := b.ResizeVolume(ctx, v.ID, volSize); !errdefs.Is(err, errdefs.ClassInvalidParameter) {
		t.Fatalf("shrinking: %v, want InvalidParameter", err)
	}
	s := mustSnap(t, b, v.ID, "snap-big")
	if s.SizeBytes != 2*volSize {
		t.Errorf("snapshot size %d, want %d", s.SizeBytes, 2*volSize)
	}
}

func testIdempotent(t *testing.T, b blockdev.Backend) {
	ctx := context.Background()
	in := blockdev.CreateVolumeInput{ID: "vol-a", SizeBytes: volSize}
	v1 := mustVol(t, b, in)
	mustIO(t, v1, "write -P 0x11 0 1M")
	v2 := mustVol(t, b, in)
	if v1.Path != v2.Path {
		t.Fatalf("second create moved the volume: %s vs %s", v1.Path, v2.Path)
	}
	mustIO(t, v2, "read -P 0x11 0 1M")
	mustSnap(t, b, v1.ID, "snap-1")
	mustSnap(t, b, v1.ID, "snap-1")
	if err := b.DeleteSnapshot(ctx, "snap-1"); err != nil {
		t.Fatal(err)
	}
	if err := b.DeleteSnapshot(ctx, "snap-1"); err != nil {
		t.Fatalf("second delete: %v", err)
	}
}
