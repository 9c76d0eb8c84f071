package blockdev

import (
	"context"
	"time"
)

// Backend stores EBS volumes and their snapshots on one host. The volumes
// service (internal/volumes) owns the records users see; a Backend owns the
// bytes. Callers choose the ids (vol-…, snap-…), so a retried step finds
// the thing an earlier try made: every method is idempotent on its id.
//
// Lifecycle of a volume:
//
//	CreateVolume ──► present ──DeleteVolume──► gone
//	   │  (empty, or copy-on-write over a snapshot or an image base)
//	   └─ ResizeVolume grows it; CreateSnapshot reads it
//
// Lifecycle of a snapshot:
//
//		CreateSnapshot ──► pending ──► completed ──DeleteSnapshot──► gone
//		                      └── (crash, failed copy) ──► error ──DeleteSnapshot──► gone
//
//	  - A snapshot is a point-in-time copy of a volume that stores only what
//	    differs from Parent (by default the volume's previous snapshot), so a
//	    series of snapshots costs about the data changed between them.
//	  - Deleting any snapshot keeps every other one restorable: its data
//	    moves into the snapshots that depended on it. Volumes made from a
//	    deleted snapshot keep reading it; the backend frees its space when the
//	    last such volume goes.
//	  - CreateVolume with SnapshotID is copy-on-write and near-instant: the
//	    new volume reads the snapshot's content and stores only its own
//	    writes.
//	  - CreateSnapshot of a volume that a running VM writes is only
//	    crash-consistent when the VM's block layer takes part (QEMU:
//	    blockdev-snapshot, see blockdev/qcow2.PlanLiveSnapshot); the Backend
//	    itself reads a volume that nothing writes.
//	  - Encrypted volumes stay encrypted in every snapshot and every volume
//	    made from them; keys never leave the host's key store except into
//	    the VM process that opens the volume (Volume.KeyFile).
//	  - After a crash, Recover settles half-done work: a pending snapshot
//	    becomes completed (its data is complete) or error, an interrupted
//	    delete finishes, and no volume is left unreadable.
//
// Errors are errdefs errors: NotFound for an unknown id, AlreadyExists when
// an id is taken by something different, InvalidParameter for bad sizes,
// Conflict for an operation the object's state forbids (deleting a volume
// with snapshots in progress).
type Backend interface {
	// CreateVolume makes a volume; creating an existing id with the same
	// input returns it again.
	CreateVolume(ctx context.Context, in CreateVolumeInput) (Volume, error)
	// DeleteVolume removes a volume; a missing id is not an error.
	DeleteVolume(ctx context.Context, id string) error
	// ResizeVolume grows a detached volume to SizeBytes (never shrinks).
	ResizeVolume(ctx context.Context, id string, sizeBytes int64) (Volume, error)
	// Volume reports a volume and what a hypervisor opens for it.
	Volume(ctx context.Context, id string) (Volume, error)
	// CreateSnapshot takes an incremental snapshot of a volume.
	CreateSnapshot(ctx context.Context, in CreateSnapshotInput) (Snapshot, error)
	// DeleteSnapshot removes a snapshot; a missing id is not an error.
	DeleteSnapshot(ctx context.Context, id string) error
	// Snapshot reports a snapshot.
	Snapshot(ctx context.Context, id string) (Snapshot, error)
	// Check verifies a volume's on-disk consistency (qemu-img check for
	// qcow2).
	Check(ctx context.Context, id string) (CheckResult, error)
	// Recover settles work a crash interrupted; call it once at start-up
	// before any other method.
	Recover(ctx context.Context) (RecoverResult, error)
}

// Format is the on-disk format of what a hypervisor opens.
type Format string

// Formats.
const (
	FormatQCOW2 Format = "qcow2"
	FormatRaw   Format = "raw"
	// FormatLUKS is a raw LUKS container (QEMU's luks driver), used by
	// backends whose volumes are block devices.
	FormatLUKS Format = "luks"
)

// CreateVolumeInput describes a new volume. At most one of SnapshotID and
// BaseImage is set.
type CreateVolumeInput struct {
	// ID names the volume, e.g. "vol-0123456789abcdef0".
	ID string
	// SizeBytes is the virtual size; 0 means the source's size. It may
	// not be smaller than the source.
	SizeBytes int64
	// SnapshotID makes the volume a copy-on-write clone of a completed
	// snapshot.
	SnapshotID string
	// BaseImage makes the volume a copy-on-write overlay of a read-only
	// qcow2 image file (an AMI's disk), as root volumes are.
	BaseImage string
	// Encrypted asks for encryption at rest. A volume from an encrypted
	// snapshot is always encrypted, whatever this says.
	Encrypted bool
}

// Volume is a volume as the backend holds it.
type Volume struct {
	ID        string
	SizeBytes int64
	Encrypted bool
	// SnapshotID and BaseImage are what the volume was created from.
	SnapshotID string
	BaseImage  string
	// LastSnapshotID is the newest live snapshot of this volume, the
	// default parent of the next one.
	LastSnapshotID string
	// Path is the file or block device a hypervisor opens, in Format.
	Path   string
	Format Format
	// Chain lists the read-only layers under Path, nearest first, for
	// hypervisors that must open each layer explicitly (an encrypted
	// qcow2 chain needs its key at every layer).
	Chain []Layer
	// KeyFile holds the volume's encryption passphrase (ASCII, mode
	// 0600) when Encrypted; pass it to QEMU as
	// secret,id=…,file=KeyFile,format=raw. Never put it in API output.
	KeyFile string `json:"-"`
}

// Layer is one read-only backing file of a volume.
type Layer struct {
	Path      string
	Format    Format
	Encrypted bool
}

// CreateSnapshotInput describes a new snapshot.
type CreateSnapshotInput struct {
	// ID names the snapshot, e.g. "snap-0123456789abcdef0".
	ID string
	// VolumeID is the volume to copy; nothing may write it meanwhile:
	// it is detached, or a running VM's writes go elsewhere for the time
	// (blockdev/qcow2.PlanLiveSnapshot).
	VolumeID string
	// ParentID is the snapshot the new one stores differences from;
	// empty means the volume's newest live snapshot, or the snapshot it
	// was created from, or none (a full copy).
	ParentID string
}

// SnapshotState is where a snapshot is in its lifecycle.
type SnapshotState string

// Snapshot states; they match EC2's.
const (
	SnapshotPending   SnapshotState = "pending"
	SnapshotCompleted SnapshotState = "completed"
	SnapshotError     SnapshotState = "error"
)

// Snapshot is a snapshot as the backend holds it.
type Snapshot struct {
	ID       string
	VolumeID string
	// ParentID is the snapshot this one stores differences from (empty
	// for a full copy). It changes when the parent is deleted.
	ParentID  string
	SizeBytes int64
	Encrypted bool
	State     SnapshotState
	// StoredBytes is what the snapshot's own data takes on disk: the
	// incremental cost.
	StoredBytes int64
	// Reason says why a snapshot is in error.
	Reason  string
	Created time.Time
}

// CheckResult is the outcome of Check.
type CheckResult struct {
	// OK is true when no corruption was found (leaked clusters are not
	// corruption).
	OK bool
	// Corruptions and Leaks count what qemu-img check found.
	Corruptions int
	Leaks       int
	// Output is the checker's report, for logs.
	Output string
}

// RecoverResult lists what Recover settled.
type RecoverResult struct {
	// Completed snapshots were pending and turned out complete.
	Completed []string
	// Failed snapshots were pending and are now in error.
	Failed []string
	// Deleted snapshots had an interrupted delete that Recover finished.
	Deleted []string
}
