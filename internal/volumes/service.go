// Package volumes is the EBS domain service: volume and snapshot records
// in etcd, EC2's rules for them, and the calls into a blockdev.Backend
// that hold the data. api/ translates the EC2 actions into these calls;
// the instance layer uses Attach/Detach and the hypervisor hooks of
// Options.Attached.
//
// Store layout (relative to the etcd prefix):
//
//	volumes/<account>/<vol-id>          Volume
//	snapshots/<account>/<snap-id>       Snapshot
//	volumemods/<account>/<vol-id>       Modification (the newest one)
//	volumetokens/<account>/<hex token>  CreateVolume ClientToken → volume
//
// Lifecycle of a volume record:
//
//	creating ──► available ◄──Detach──► in-use (Attach)
//	    │            │
//	    ▼            ▼ DeleteVolume (VolumeInUse while attached)
//	  error       deleting ──► (record removed)
//
// Snapshots are pending until the backend has copied the data (in the
// background; DescribeSnapshots shows Progress), then completed, or error
// with a StateMessage. After a restart Recover settles pending ones.
package volumes

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"regexp"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/labcloud/labcloud/blockdev"
	"github.com/labcloud/labcloud/internal/errdefs"
	"github.com/labcloud/labcloud/internal/store"
)

// Volume states (EC2 VolumeState).
const (
	StateCreating  = "creating"
	StateAvailable = "available"
	StateInUse     = "in-use"
	StateDeleting  = "deleting"
	StateDeleted   = "deleted"
	StateError     = "error"
)

// Attachment states (EC2 VolumeAttachmentState).
const (
	AttachAttaching = "attaching"
	AttachAttached  = "attached"
	AttachDetaching = "detaching"
)

// Volume is an EBS volume record.
type Volume struct {
	ID               string     `json:"id"`
	OwnerID          string     `json:"ownerId"`
	AvailabilityZone string     `json:"availabilityZone"`
	Type             VolumeType `json:"type"`
	SizeGiB          int        `json:"sizeGiB"`
	IOPS             int        `json:"iops,omitempty"`
	Throughput       int        `json:"throughput,omitempty"`
	SnapshotID       string     `json:"snapshotId,omitempty"`
	Encrypted        bool       `json:"encrypted"`
	State            string     `json:"state"`
	// StatusMessage says why a volume is in error.
	StatusMessage string       `json:"statusMessage,omitempty"`
	CreateTime    time.Time    `json:"createTime"`
	Attachments   []Attachment `json:"attachments,omitempty"`
}

// Spec is the volume's size and performance.
func (v Volume) Spec() Spec {
	return Spec{Type: v.Type, SizeGiB: v.SizeGiB, IOPS: v.IOPS, Throughput: v.Throughput}
}

// Attachment is a volume's attachment to an instance.
type Attachment struct {
	InstanceID          string    `json:"instanceId"`
	Device              string    `json:"device"`
	State               string    `json:"state"`
	AttachTime          time.Time `json:"attachTime"`
	DeleteOnTermination bool      `json:"deleteOnTermination"`
	// Root marks an instance's root volume (AttachRoot): it cannot be
	// detached. Not part of EC2's shape.
	Root bool `json:"root,omitempty"`
}

// Snapshot is an EBS snapshot record.
type Snapshot struct {
	ID           string    `json:"id"`
	OwnerID      string    `json:"ownerId"`
	VolumeID     string    `json:"volumeId"`
	VolumeSize   int       `json:"volumeSize"`
	State        string    `json:"state"`
	StateMessage string    `json:"stateMessage,omitempty"`
	Progress     int       `json:"progress"`
	StartTime    time.Time `json:"startTime"`
	Encrypted    bool      `json:"encrypted"`
	Description  string    `json:"description,omitempty"`
	// StoredBytes is what the snapshot's own data takes (its
	// incremental cost); not part of EC2's shape.
	StoredBytes int64 `json:"storedBytes,omitempty"`
	// Boot is the boot material of the AMI a CreateImage snapshot was
	// taken for (see SnapshotImage); nil for other snapshots. Not part
	// of EC2's shape.
	Boot *Boot `json:"boot,omitempty"`
}

// Modification is a ModifyVolume request's record
// (DescribeVolumesModifications).
type Modification struct {
	VolumeID           string     `json:"volumeId"`
	State              string     `json:"state"` // modifying, optimizing, completed, failed
	StatusMessage      string     `json:"statusMessage,omitempty"`
	TargetSize         int        `json:"targetSize"`
	TargetIOPS         int        `json:"targetIops,omitempty"`
	TargetThroughput   int        `json:"targetThroughput,omitempty"`
	TargetVolumeType   VolumeType `json:"targetVolumeType"`
	OriginalSize       int        `json:"originalSize"`
	OriginalIOPS       int        `json:"originalIops,omitempty"`
	OriginalThroughput int        `json:"originalThroughput,omitempty"`
	OriginalVolumeType VolumeType `json:"originalVolumeType"`
	Progress           int        `json:"progress"`
	StartTime          time.Time  `json:"startTime"`
	EndTime            time.Time  `json:"endTime,omitempty"`
}

// Attached is implemented by the instance layer: what must happen in a
// running VM when an attached volume changes. Without it, operations on
// attached volumes that need the VM fail with Unavailable.
type Attached interface {
	// Snapshot runs take while the volume's file is frozen for the VM
	// (blockdev/qcow2.PlanLiveSnapshot around it).
	Snapshot(ctx context.Context, v Volume, take func(context.Context) error) error
	// Resize grows the volume in the VM (QMP block_resize) to sizeBytes.
	Resize(ctx context.Context, v Volume, sizeBytes int64) error
	// Throttle applies new I/O limits in the VM (block_set_io_throttle).
	Throttle(ctx context.Context, v Volume, t Throttle) error
}

// Options configures a Service.
type Options struct {
	Store   *store.Store
	Backend blockdev.Backend
	// Zones lists the availability zones volumes may be created in.
	Zones func(ctx context.Context) ([]string, error)
	// Region is the region CopySnapshot accepts as SourceRegion.
	Region string
	// Attached may be set later with SetAttached, once the instance layer
	// exists.
	Attached Attached
	// BootDir holds the kernel and initrd files of the snapshots that
	// CreateImage takes, in <BootDir>/<snap-id>/, removed with the
	// snapshot. Without it, SnapshotImage refuses boot files.
	BootDir string
	Now     func() time.Time
	Logger  *slog.Logger
}

// Service is the EBS service.
type Service struct {
	opts   Options
	log    *slog.Logger
	mu     sync.RWMutex // guards opts.Attached
	bg     context.Context
	cancel context.CancelFunc
	wg     sync.WaitGroup
}

// New makes a Service. Call Recover before serving, Close at the end.
func New(opts Options) *Service {
	if opts.Now == nil {
		opts.Now = time.Now
	}
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.NewTextHandler(io.Discard, nil))
	}
	ctx, cancel := context.WithCancel(context.Background())
	return &Service{opts: opts, log: opts.Logger, bg: ctx, cancel: cancel}
}

// SetAttached installs the instance layer's hooks.
func (s *Service) SetAttached(a Attached) {
	s.mu.Lock()
	s.opts.Attached = a
	s.mu.Unlock()
}

func (s *Service) attached() Attached {
	s.mu.RLock()
	defer s.mu.RUnlock()
	return s.opts.Attached
}

// Close waits for snapshots in progress (their records stay pending if
// cut short; Recover settles them at the next start).
func (s *Service) Close() {
	s.cancel()
	s.wg.Wait()
}

// Backend is the block store, for the instance layer: Backend().Volume(id)
// gives the path, format and key file QEMU opens.
func (s *Service) Backend() blockdev.Backend { return s.opts.Backend }

var (
	volumeIDRe   = regexp.MustCompile(`^vol-([0-9a-f]{8}|[0-9a-f]{17})$`)
	snapshotIDRe = regexp.MustCompile(`^snap-([0-9a-f]{8}|[0-9a-f]{17})$`)
	instanceIDRe = regexp.MustCompile(`^i-([0-9a-f]{8}|[0-9a-f]{17})$`)
	deviceRe     = regexp.MustCompile(`^/dev/(sd|xvd)[f-p]$`)
)

// NewVolumeID makes a fresh volume id, for callers that record the id
// before the volume exists (CreateInput.ID).
func NewVolumeID() string { return newID("vol-") }

func newID(prefix string) string {
	b := make([]byte, 9)
	_, _ = rand.Read(b)
	return prefix + hex.EncodeToString(b)[:17]
}

func volKey(acct, id string) string { return "volumes/" + acct + "/" + id }
func tokenKey(acct, tok string) string {
	return "volumetokens/" + acct + "/" + hex.EncodeToString([]byte(tok))
}

// clientToken is volumetokens/<acct>/<hex token>: the volume a
// CreateVolume with that token made, and its parameters.
type clientToken struct {
	VolumeID string `json:"volumeId"`
	Request  string `json:"request"`
}

func snapKey(acct, id string) string { return "snapshots/" + acct + "/" + id }
func modKey(acct, id string) string  { return "volumemods/" + acct + "/" + id }

// CheckVolumeID reports a malformed volume id as EC2 does.
func CheckVolumeID(id string) error {
	if !volumeIDRe.MatchString(id) {
		return errdefs.InvalidParameter("InvalidVolumeID.Malformed", "Invalid id: \"%s\" (expecting \"vol-...\" with 8 or 17 hex digits)", id)
	}
	return nil
}

// CheckSnapshotID reports a malformed snapshot id as EC2 does.
func CheckSnapshotID(id string) error {
	if !snapshotIDRe.MatchString(id) {
		return errdefs.InvalidParameter("InvalidSnapshotID.Malformed", "Invalid id: \"%s\" (expecting \"snap-...\" with 8 or 17 hex digits)", id)
	}
	return nil
}

func volNotFound(id string) error {
	return errdefs.NotFound("InvalidVolume.NotFound", "The volume '%s' does not exist.", id)
}

func snapNotFound(id string) error {
	return errdefs.NotFound("InvalidSnapshot.NotFound", "The snapshot '%s' does not exist.", id)
}

// Get returns one volume of acct.
func (s *Service) Get(ctx context.Context, acct, id string) (Volume, error) {
	if err := CheckVolumeID(id); err != nil {
		return Volume{}, err
	}
	v, _, err := store.Load[Volume](ctx, s.opts.Store, volKey(acct, id))
	if errors.Is(err, store.ErrNotFound) {
		return Volume{}, volNotFound(id)
	}
	return v, err
}

// Exists reports whether acct has volume id (a tags.ExistsFunc).
func (s *Service) Exists(ctx context.Context, acct, id string) (bool, error) {
	_, err := s.Get(ctx, acct, id)
	if errdefs.Is(err, errdefs.ClassNotFound) || errdefs.Is(err, errdefs.ClassInvalidParameter) {
		return false, nil
	}
	return err == nil, err
}

// SnapshotExists reports whether acct has snapshot id (a tags.ExistsFunc).
func (s *Service) SnapshotExists(ctx context.Context, acct, id string) (bool, error) {
	_, err := s.GetSnapshot(ctx, acct, id)
	if errdefs.Is(err, errdefs.ClassNotFound) || errdefs.Is(err, errdefs.ClassInvalidParameter) {
		return false, nil
	}
	return err == nil, err
}

// List returns acct's volumes, sorted by id.
func (s *Service) List(ctx context.Context, acct string) ([]Volume, error) {
	return store.ListAs[Volume](ctx, s.opts.Store, "volumes/"+acct+"/")
}

// CreateInput is a CreateVolume request. Nil pointers are parameters the
// caller did not give.
type CreateInput struct {
	AvailabilityZone string
	SizeGiB          *int
	Type             VolumeType
	IOPS             *int
	Throughput       *int
	SnapshotID       string
	Encrypted        *bool
	// ClientToken makes the request idempotent: a retry with the same
	// token returns the volume the first try made (botocore sends one on
	// every CreateVolume).
	ClientToken string
	// BaseImage is the read-only qcow2 disk of an AMI: the instance
	// layer makes root volumes as copy-on-write overlays of it (SizeGiB
	// required). The API never sets it.
	BaseImage string
	// ID, when set, is the new volume's id (from NewVolumeID): the
	// instance layer records it before creating the root volume, so a
	// terminate racing the launch always finds what was made. A volume
	// with that id that exists already is returned as it is, which makes
	// the call idempotent. The API never sets it.
	ID string
}

// Create makes a volume. The data is in place when it returns (an empty
// volume or a copy-on-write clone is near-instant), so the volume is
// available at once; a backend failure leaves it in error with the reason.
func (s *Service) Create(ctx context.Context, acct string, in CreateInput) (Volume, error) {
	if in.AvailabilityZone == "" {
		return Volume{}, errdefs.New(errdefs.ClassMissingParameter, "MissingParameter", "The request must contain the parameter AvailabilityZone (see aws ec2 describe-availability-zones)")
	}
	zones, err := s.opts.Zones(ctx)
	if err != nil {
		return Volume{}, err
	}
	if !contains(zones, in.AvailabilityZone) {
		return Volume{}, errdefs.InvalidParameter("InvalidZone.NotFound", "The zone '%s' does not exist; this region's zones are %s", in.AvailabilityZone, strings.Join(zones, ", "))
	}
	if in.Type == "" {
		in.Type = GP2
	}
	if in.ID != "" {
		if err := CheckVolumeID(in.ID); err != nil {
			return Volume{}, err
		}
		if v, err := s.Get(ctx, acct, in.ID); err == nil || !errdefs.Is(err, errdefs.ClassNotFound) {
			return v, err
		}
	}
	v := Volume{ID: newID("vol-"), OwnerID: acct, AvailabilityZone: in.AvailabilityZone, State: StateCreating,
		CreateTime: s.opts.Now().UTC().Truncate(time.Millisecond), SnapshotID: in.SnapshotID}
	if in.ID != "" {
		v.ID = in.ID
	}
	var snap Snapshot
	if in.SnapshotID != "" {
		if snap, err = s.GetSnapshot(ctx, acct, in.SnapshotID); err != nil {
			return Volume{}, err
		}
		if snap.State != "completed" {
			return Volume{}, errdefs.Conflict("IncorrectState", "Snapshot '%s' is %s; create volumes from completed snapshots only", snap.ID, snap.State)
		}
	}
	spec := Spec{Type: in.Type}
	switch {
	case in.SizeGiB != nil:
		spec.SizeGiB = *in.SizeGiB
		if in.SnapshotID != "" && spec.SizeGiB < snap.VolumeSize {
			return Volume{}, errdefs.InvalidParameter("InvalidParameterValue", "Volume of %d GiB is smaller than snapshot '%s', %d GiB; ask for at least the snapshot's size", spec.SizeGiB, snap.ID, snap.VolumeSize)
		}
	case in.SnapshotID != "":
		spec.SizeGiB = snap.VolumeSize
	default:
		return Volume{}, errdefs.New(errdefs.ClassMissingParameter, "MissingParameter", "The request must contain the parameter size or snapshotId")
	}
	if in.IOPS != nil {
		spec.IOPS = *in.IOPS
	}
	if in.Throughput != nil {
		spec.Throughput = *in.Throughput
	}
	if spec, err = Normalize(spec, in.IOPS != nil, in.Throughput != nil); err != nil {
		return Volume{}, err
	}
	v.Type, v.SizeGiB, v.IOPS, v.Throughput = spec.Type, spec.SizeGiB, spec.IOPS, spec.Throughput
	v.Encrypted = (in.Encrypted != nil && *in.Encrypted) || snap.Encrypted
	if in.Encrypted != nil && !*in.Encrypted && snap.Encrypted {
		return Volume{}, errdefs.InvalidParameter("InvalidParameterCombination", "Snapshot '%s' is encrypted, so volumes made from it are too; leave out --no-encrypted", snap.ID)
	}
	if in.BaseImage != "" && in.SnapshotID != "" {
		return Volume{}, errdefs.InvalidParameter("InvalidParameterCombination", "a volume is made from a snapshot or from an image, not both")
	}
	if in.ClientToken != "" {
		if len(in.ClientToken) > 64 {
			return Volume{}, errdefs.InvalidParameter("InvalidParameterValue", "ClientToken is %d characters; at most 64", len(in.ClientToken))
		}
		tok := clientToken{VolumeID: v.ID, Request: fmt.Sprintf("%s|%+v|%s|%s|%v", v.AvailabilityZone, spec, v.SnapshotID, in.BaseImage, v.Encrypted)}
		ops := []store.Op{store.OpCreate(tokenKey(acct, in.ClientToken), tok), store.OpCreate(volKey(acct, v.ID), v)}
		if _, err := s.opts.Store.Txn(ctx, ops...); errors.Is(err, store.ErrExists) {
			old, _, lerr := store.Load[clientToken](ctx, s.opts.Store, tokenKey(acct, in.ClientToken))
			if lerr != nil {
				return Volume{}, lerr
			}
			if old.Request != tok.Request {
				return Volume{}, errdefs.InvalidParameter("IdempotentParameterMismatch", "ClientToken %s was used for a different CreateVolume request; use a new token", in.ClientToken)
			}
			return s.Get(ctx, acct, old.VolumeID)
		} else if err != nil {
			return Volume{}, err
		}
	} else if _, err := s.opts.Store.Create(ctx, volKey(acct, v.ID), v); errors.Is(err, store.ErrExists) && in.ID != "" {
		return s.Get(ctx, acct, v.ID) // a concurrent retry made it
	} else if err != nil {
		return Volume{}, err
	}
	_, berr := s.opts.Backend.CreateVolume(ctx, blockdev.CreateVolumeInput{ID: v.ID, SizeBytes: int64(v.SizeGiB) << 30,
		SnapshotID: v.SnapshotID, BaseImage: in.BaseImage, Encrypted: v.Encrypted})
	return store.Update(ctx, s.opts.Store, volKey(acct, v.ID), func(x *Volume) error {
		if berr != nil {
			x.State, x.StatusMessage = StateError, "creating the volume's storage failed: "+berr.Error()
			return nil
		}
		x.State = StateAvailable
		return nil
	})
}

func contains(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}

// Delete removes a volume that is not attached (VolumeInUse otherwise).
func (s *Service) Delete(ctx context.Context, acct, id string) error {
	v, err := s.Get(ctx, acct, id)
	if err != nil {
		return err
	}
	if len(v.Attachments) > 0 {
		return errdefs.Conflict("VolumeInUse", "Volume %s is currently attached to %s; detach it first", id, v.Attachments[0].InstanceID)
	}
	prev := v.State
	if _, err := store.Update(ctx, s.opts.Store, volKey(acct, id), func(x *Volume) error {
		if len(x.Attachments) > 0 {
			return errdefs.Conflict("VolumeInUse", "Volume %s is currently attached to %s; detach it first", id, x.Attachments[0].InstanceID)
		}
		x.State = StateDeleting
		return nil
	}); err != nil {
		return err
	}
	if err := s.opts.Backend.DeleteVolume(ctx, id); err != nil {
		// The volume is still whole (a snapshot in progress, say): give
		// it back its state so the user can retry.
		store.Update(ctx, s.opts.Store, volKey(acct, id), func(x *Volume) error {
			x.State = prev
			return nil
		})
		if errdefs.ClassOf(err) != errdefs.ClassUnknown {
			return err
		}
		return fmt.Errorf("deleting the storage of %s: %w", id, err)
	}
	if err := s.opts.Store.Delete(ctx, volKey(acct, id)); err != nil && !errors.Is(err, store.ErrNotFound) {
		return err
	}
	_ = s.opts.Store.Delete(ctx, modKey(acct, id))
	return nil
}

// ModifyInput is a ModifyVolume request; nil means unchanged.
type ModifyInput struct {
	SizeGiB    *int
	Type       *VolumeType
	IOPS       *int
	Throughput *int
}

// Modify changes a volume's size (grow only), type, IOPS or throughput,
// live when it is attached, and records the modification. labcloud has
// no optimizing phase: the new limits apply at once.
func (s *Service) Modify(ctx context.Context, acct, id string, in ModifyInput) (Modification, error) {
	v, err := s.Get(ctx, acct, id)
	if err != nil {
		return Modification{}, err
	}
	if v.State != StateAvailable && v.State != StateInUse {
		return Modification{}, errdefs.Conflict("IncorrectState", "Volume %s is %s; it can be modified when available or in-use", id, v.State)
	}
	if in.SizeGiB == nil && in.Type == nil && in.IOPS == nil && in.Throughput == nil {
		return Modification{}, errdefs.New(errdefs.ClassMissingParameter, "MissingParameter", "ModifyVolume needs at least one of Size, VolumeType, Iops, Throughput")
	}
	spec := v.Spec()
	iopsGiven, tputGiven := in.IOPS != nil, in.Throughput != nil
	if in.Type != nil && *in.Type != spec.Type {
		spec.Type = *in.Type
		spec.IOPS, spec.Throughput = 0, 0
	} else {
		// Same type: unchanged values are kept, as if given again.
		iopsGiven = iopsGiven || rules[spec.Type].iopsAllowed
		tputGiven = tputGiven || rules[spec.Type].throughputAllowed
	}
	if in.SizeGiB != nil {
		if *in.SizeGiB < v.SizeGiB {
			return Modification{}, errdefs.InvalidParameter("InvalidParameterValue", "New size %d GiB is smaller than the volume's %d GiB; volumes can only grow", *in.SizeGiB, v.SizeGiB)
		}
		spec.SizeGiB = *in.SizeGiB
	}
	if in.IOPS != nil {
		spec.IOPS = *in.IOPS
	}
	if in.Throughput != nil {
		spec.Throughput = *in.Throughput
	}
	// io1/io2 targets without Iops get 3000, as EC2 documents.
	if !iopsGiven && rules[spec.Type].iopsRequired {
		spec.IOPS, iopsGiven = 3000, true
	}
	if spec, err = Normalize(spec, iopsGiven, tputGiven); err != nil {
		return Modification{}, err
	}
	if spec == v.Spec() {
		return Modification{}, errdefs.InvalidParameter("InvalidParameterValue", "Volume %s already has size %d GiB, type %s, %d IOPS and %d MiB/s; nothing to modify", id, v.SizeGiB, v.Type, v.IOPS, v.Throughput)
	}
	now := s.opts.Now().UTC().Truncate(time.Millisecond)
	m := Modification{VolumeID: id, State: "modifying", TargetSize: spec.SizeGiB, TargetIOPS: spec.IOPS, TargetThroughput: spec.Throughput,
		TargetVolumeType: spec.Type, OriginalSize: v.SizeGiB, OriginalIOPS: v.IOPS, OriginalThroughput: v.Throughput,
		OriginalVolumeType: v.Type, StartTime: now}
	fail := func(err error) (Modification, error) {
		m.State, m.StatusMessage, m.EndTime = "failed", err.Error(), s.opts.Now().UTC()
		s.opts.Store.Put(ctx, modKey(acct, id), m)
		return m, err
	}
	live := len(v.Attachments) > 0
	a := s.attached()
	if live && a == nil {
		return Modification{}, errdefs.New(errdefs.ClassUnavailable, "IncorrectState", "Volume %s is attached and this labcloudd cannot change attached volumes; detach it first", id)
	}
	if spec.SizeGiB > v.SizeGiB {
		size := int64(spec.SizeGiB) << 30
		if live {
			if err := a.Resize(ctx, v, size); err != nil {
				return fail(err)
			}
		}
		if _, err := s.opts.Backend.ResizeVolume(ctx, id, size); err != nil {
			if !live {
				return fail(err)
			}
			// A running QEMU holds the image's write lock, so the
			// backend cannot open it; block_resize above has grown the
			// image already. The backend's own record of the size
			// catches up at the next resize of the detached volume.
			s.log.Warn("recording the new size of an attached volume in the block store", "volume", id, "err", err)
		}
	}
	if live && ThrottleFor(spec) != ThrottleFor(v.Spec()) {
		if err := a.Throttle(ctx, v, ThrottleFor(spec)); err != nil {
			return fail(err)
		}
	}
	if _, err := store.Update(ctx, s.opts.Store, volKey(acct, id), func(x *Volume) error {
		x.Type, x.SizeGiB, x.IOPS, x.Throughput = spec.Type, spec.SizeGiB, spec.IOPS, spec.Throughput
		return nil
	}); err != nil {
		return fail(err)
	}
	m.State, m.Progress, m.EndTime = "completed", 100, s.opts.Now().UTC().Truncate(time.Millisecond)
	if _, err := s.opts.Store.Put(ctx, modKey(acct, id), m); err != nil {
		return m, err
	}
	return m, nil
}

// Modifications returns acct's volume modification records.
func (s *Service) Modifications(ctx context.Context, acct string) ([]Modification, error) {
	return store.ListAs[Modification](ctx, s.opts.Store, "volumemods/"+acct+"/")
}

// GetSnapshot returns one snapshot of acct.
func (s *Service) GetSnapshot(ctx context.Context, acct, id string) (Snapshot, error) {
	if err := CheckSnapshotID(id); err != nil {
		return Snapshot{}, err
	}
	sn, _, err := store.Load[Snapshot](ctx, s.opts.Store, snapKey(acct, id))
	if errors.Is(err, store.ErrNotFound) {
		return Snapshot{}, snapNotFound(id)
	}
	return sn, err
}

// Snapshots returns acct's snapshots, sorted by id.
func (s *Service) Snapshots(ctx context.Context, acct string) ([]Snapshot, error) {
	return store.ListAs[Snapshot](ctx, s.opts.Store, "snapshots/"+acct+"/")
}

// CreateSnapshot starts a snapshot of a volume and returns it pending; the
// copy runs in the background (through the VM when the volume is
// attached, so the snapshot is crash-consistent).
func (s *Service) CreateSnapshot(ctx context.Context, acct, volID, description string) (Snapshot, error) {
	v, err := s.Get(ctx, acct, volID)
	if err != nil {
		return Snapshot{}, err
	}
	if v.State != StateAvailable && v.State != StateInUse {
		return Snapshot{}, errdefs.Conflict("IncorrectState", "Volume %s is %s; snapshots are taken of available or in-use volumes", volID, v.State)
	}
	if len(v.Attachments) > 0 && s.attached() == nil {
		return Snapshot{}, errdefs.New(errdefs.ClassUnavailable, "IncorrectState", "Volume %s is attached and this labcloudd cannot snapshot attached volumes; detach it first", volID)
	}
	if len(description) > 255 {
		return Snapshot{}, errdefs.InvalidParameter("InvalidParameterValue", "Description is %d characters; at most 255", len(description))
	}
	sn := Snapshot{ID: newID("snap-"), OwnerID: acct, VolumeID: volID, VolumeSize: v.SizeGiB, State: "pending",
		StartTime: s.opts.Now().UTC().Truncate(time.Millisecond), Encrypted: v.Encrypted, Description: description}
	if _, err := s.opts.Store.Create(ctx, snapKey(acct, sn.ID), sn); err != nil {
		return Snapshot{}, err
	}
	s.wg.Add(1)
	go func() {
		defer s.wg.Done()
		s.takeSnapshot(acct, v, sn.ID)
	}()
	return sn, nil
}

// takeSnapshot copies the data and records the outcome.
func (s *Service) takeSnapshot(acct string, v Volume, id string) {
	ctx := s.bg
	take := func(ctx context.Context) error {
		_, err := s.opts.Backend.CreateSnapshot(ctx, blockdev.CreateSnapshotInput{ID: id, VolumeID: v.ID})
		return err
	}
	var err error
	if len(v.Attachments) > 0 {
		err = s.attached().Snapshot(ctx, v, take)
	} else {
		err = take(ctx)
	}
	if ctx.Err() != nil {
		return // shutting down: Recover settles it at the next start
	}
	s.settleSnapshot(ctx, acct, id, err)
}

// settleSnapshot writes a snapshot's outcome from the backend's view.
func (s *Service) settleSnapshot(ctx context.Context, acct, id string, takeErr error) {
	b, berr := s.opts.Backend.Snapshot(ctx, id)
	_, err := store.Update(ctx, s.opts.Store, snapKey(acct, id), func(x *Snapshot) error {
		switch {
		case takeErr == nil && berr == nil && b.State == blockdev.SnapshotCompleted:
			x.State, x.Progress, x.StoredBytes, x.StateMessage = "completed", 100, b.StoredBytes, ""
		default:
			why := "the snapshot could not be taken"
			if takeErr != nil {
				why += ": " + takeErr.Error()
			} else if berr != nil {
				why += ": " + berr.Error()
			} else if b.Reason != "" {
				why += ": " + b.Reason
			}
			x.State, x.StateMessage = "error", why
		}
		return nil
	})
	if err != nil {
		s.log.Error("recording a snapshot's outcome", "snapshot", id, "err", err)
	}
}

// Recover settles what a restart interrupted: the backend's half-done
// work first, then volumes left creating (available or error) or deleting
// (deleted), then every pending snapshot record from the backend's view
// (completed or error, never pending forever).
func (s *Service) Recover(ctx context.Context) error {
	if _, err := s.opts.Backend.Recover(ctx); err != nil {
		return fmt.Errorf("recovering the block store: %w", err)
	}
	vols, err := store.ListAs[Volume](ctx, s.opts.Store, "volumes/")
	if err != nil {
		return err
	}
	for _, v := range vols {
		switch v.State {
		case StateCreating:
			// Created by the backend (the step is idempotent) or not at
			// all: the record says which.
			_, berr := s.opts.Backend.Volume(ctx, v.ID)
			store.Update(ctx, s.opts.Store, volKey(v.OwnerID, v.ID), func(x *Volume) error {
				if berr != nil {
					x.State, x.StatusMessage = StateError, "labcloudd stopped while the volume was being created; delete it and create it again"
				} else {
					x.State = StateAvailable
				}
				return nil
			})
		case StateDeleting:
			if err := s.opts.Backend.DeleteVolume(ctx, v.ID); err != nil {
				s.log.Error("finishing the delete of a volume", "volume", v.ID, "err", err)
				continue
			}
			if err := s.opts.Store.Delete(ctx, volKey(v.OwnerID, v.ID)); err != nil && !errors.Is(err, store.ErrNotFound) {
				return err
			}
		}
	}
	kvs, err := s.opts.Store.List(ctx, "snapshots/")
	if err != nil {
		return err
	}
	for _, kv := range kvs {
		var sn Snapshot
		if err := kv.Decode(&sn); err != nil {
			return err
		}
		switch sn.State {
		case "pending":
			s.settleSnapshot(ctx, sn.OwnerID, sn.ID, nil)
		case "completed":
			// A delete the backend finished in its own Recover (the
			// user saw it fail) leaves a record without data.
			if _, err := s.opts.Backend.Snapshot(ctx, sn.ID); errdefs.Is(err, errdefs.ClassNotFound) {
				store.Update(ctx, s.opts.Store, snapKey(sn.OwnerID, sn.ID), func(x *Snapshot) error {
					x.State, x.StateMessage = "error", "the snapshot's data was deleted by an interrupted DeleteSnapshot; delete the snapshot"
					return nil
				})
			}
		}
	}
	return nil
}

// DeleteSnapshot deletes a snapshot; the others stay restorable and
// volumes made from it keep their data.
func (s *Service) DeleteSnapshot(ctx context.Context, acct, id string) error {
	sn, err := s.GetSnapshot(ctx, acct, id)
	if err != nil {
		return err
	}
	if sn.State == "pending" {
		return errdefs.Conflict("IncorrectState", "Snapshot %s is still pending; wait until it is completed (aws ec2 wait snapshot-completed)", id)
	}
	if err := s.opts.Backend.DeleteSnapshot(ctx, id); err != nil {
		return fmt.Errorf("deleting the data of %s: %w", id, err)
	}
	if err := s.opts.Store.Delete(ctx, snapKey(acct, id)); err != nil && !errors.Is(err, store.ErrNotFound) {
		return err
	}
	if d := s.bootDir(id); d != "" {
		if err := os.RemoveAll(d); err != nil {
			s.log.Warn("removing the boot files of a deleted snapshot", "snapshot", id, "err", err)
		}
	}
	s.refreshStoredBytes(ctx, acct)
	return nil
}

// refreshStoredBytes records what each completed snapshot of acct takes
// now. Deleting a snapshot moves the data its later snapshots still need
// into them, so their StoredBytes (`labcloud snapshots`' STORED) grows;
// the delete has happened either way, so a failure here is only logged.
func (s *Service) refreshStoredBytes(ctx context.Context, acct string) {
	list, err := s.Snapshots(ctx, acct)
	if err != nil {
		s.log.Warn("listing snapshots to refresh their stored size", "err", err)
		return
	}
	for _, x := range list {
		if x.State != "completed" {
			continue
		}
		b, err := s.opts.Backend.Snapshot(ctx, x.ID)
		if err != nil || b.StoredBytes == x.StoredBytes {
			continue
		}
		if _, err := store.Update(ctx, s.opts.Store, snapKey(acct, x.ID), func(y *Snapshot) error {
			if y.State == "completed" {
				y.StoredBytes = b.StoredBytes
			}
			return nil
		}); err != nil && !errors.Is(err, store.ErrNotFound) {
			s.log.Warn("recording a snapshot's stored size", "snapshot", x.ID, "err", err)
		}
	}
}

// CopySnapshot copies a completed snapshot within the region. The copy
// is a new snapshot stored as a delta on the source (so it costs almost
// nothing); deleting either keeps the other whole.
func (s *Service) CopySnapshot(ctx context.Context, acct, sourceRegion, sourceID, description string, encrypted bool) (Snapshot, error) {
	if sourceRegion != "" && s.opts.Region != "" && sourceRegion != s.opts.Region {
		return Snapshot{}, errdefs.InvalidParameter("InvalidParameterValue", "SourceRegion %s is not served here; labcloud copies snapshots within %s", sourceRegion, s.opts.Region)
	}
	src, err := s.GetSnapshot(ctx, acct, sourceID)
	if err != nil {
		return Snapshot{}, err
	}
	if src.State != "completed" {
		return Snapshot{}, errdefs.Conflict("IncorrectState", "Snapshot %s is %s; only completed snapshots can be copied", sourceID, src.State)
	}
	if description == "" {
		description = "Copied for DestinationSnapshot from SourceSnapshot " + sourceID
	}
	sn := Snapshot{ID: newID("snap-"), OwnerID: acct, VolumeID: src.VolumeID, VolumeSize: src.VolumeSize, State: "pending",
		StartTime: s.opts.Now().UTC().Truncate(time.Millisecond), Encrypted: src.Encrypted || encrypted, Description: description}
	if _, err := s.opts.Store.Create(ctx, snapKey(acct, sn.ID), sn); err != nil {
		return Snapshot{}, err
	}
	// A scratch volume made from the source, snapshotted (a delta on the
	// source: empty) and removed.
	scratch := "copy-" + sn.ID
	var berr error
	if _, berr = s.opts.Backend.CreateVolume(ctx, blockdev.CreateVolumeInput{ID: scratch, SnapshotID: sourceID, Encrypted: sn.Encrypted}); berr == nil {
		_, berr = s.opts.Backend.CreateSnapshot(ctx, blockdev.CreateSnapshotInput{ID: sn.ID, VolumeID: scratch})
		if err := s.opts.Backend.DeleteVolume(ctx, scratch); err != nil && berr == nil {
			berr = err
		}
	}
	s.settleSnapshot(ctx, acct, sn.ID, berr)
	if berr == nil && src.Boot != nil {
		// A copy of an image snapshot registers into an image that
		// boots the same way: it gets its own links to the boot files.
		if err := s.copyBoot(ctx, acct, sn.ID, *src.Boot); err != nil {
			s.log.Error("keeping the boot files with a copied snapshot", "snapshot", sn.ID, "err", err)
		}
	}
	return sn, nil
}

// Attach records that a volume is being attached to an instance in zone
// instanceZone at device (/dev/sdf…/dev/sdp or /dev/xvdf…/dev/xvdp). The
// caller (the instance layer) checks the instance and its free device
// names, hot-plugs the disk, then calls AttachDone.
func (s *Service) Attach(ctx context.Context, acct, volID, instanceID, instanceZone, device string) (Volume, error) {
	if !instanceIDRe.MatchString(instanceID) {
		return Volume{}, errdefs.InvalidParameter("InvalidInstanceID.Malformed", "Invalid id: \"%s\" (expecting \"i-...\")", instanceID)
	}
	if !deviceRe.MatchString(device) {
		return Volume{}, errdefs.InvalidParameter("InvalidParameterValue", "Value (%s) for parameter device is invalid. Use /dev/sdf through /dev/sdp", device)
	}
	if _, err := s.Get(ctx, acct, volID); err != nil {
		return Volume{}, err
	}
	return store.Update(ctx, s.opts.Store, volKey(acct, volID), func(v *Volume) error {
		if v.AvailabilityZone != instanceZone {
			return errdefs.InvalidParameter("InvalidVolume.ZoneMismatch", "The volume '%s' is not in the same availability zone as instance '%s' (%s vs %s); create the volume in %s or snapshot it and restore it there", volID, instanceID, v.AvailabilityZone, instanceZone, instanceZone)
		}
		if len(v.Attachments) > 0 {
			return errdefs.Conflict("VolumeInUse", "%s is already attached to an instance (%s)", volID, v.Attachments[0].InstanceID)
		}
		if v.State != StateAvailable {
			return errdefs.Conflict("IncorrectState", "Volume '%s' is %s; only available volumes can be attached", volID, v.State)
		}
		v.State = StateInUse
		v.Attachments = []Attachment{{InstanceID: instanceID, Device: device, State: AttachAttaching, AttachTime: s.opts.Now().UTC().Truncate(time.Millisecond)}}
		return nil
	})
}

// AttachRoot records volID as the root volume of instance instanceID at
// its root device (say /dev/xvda): attached at once, since the instance
// layer defines the VM with it, and never detachable (Detach refuses). It
// skips Attach's /dev/sdf–sdp rule, which is for data volumes. Calling it
// again for the same instance changes nothing.
func (s *Service) AttachRoot(ctx context.Context, acct, volID, instanceID, instanceZone, device string, deleteOnTermination bool) (Volume, error) {
	if !instanceIDRe.MatchString(instanceID) {
		return Volume{}, errdefs.InvalidParameter("InvalidInstanceID.Malformed", "Invalid id: \"%s\" (expecting \"i-...\")", instanceID)
	}
	if !strings.HasPrefix(device, "/dev/") {
		return Volume{}, errdefs.InvalidParameter("InvalidParameterValue", "Value (%s) for the root device name is invalid; use a name such as /dev/xvda", device)
	}
	if _, err := s.Get(ctx, acct, volID); err != nil {
		return Volume{}, err
	}
	return store.Update(ctx, s.opts.Store, volKey(acct, volID), func(v *Volume) error {
		if len(v.Attachments) > 0 {
			if a := v.Attachments[0]; a.InstanceID == instanceID && a.Root {
				return nil
			}
			return errdefs.Conflict("VolumeInUse", "%s is already attached to an instance (%s)", volID, v.Attachments[0].InstanceID)
		}
		if v.AvailabilityZone != instanceZone {
			return errdefs.InvalidParameter("InvalidVolume.ZoneMismatch", "The volume '%s' is not in the same availability zone as instance '%s' (%s vs %s)", volID, instanceID, v.AvailabilityZone, instanceZone)
		}
		if v.State != StateAvailable {
			return errdefs.Conflict("IncorrectState", "Volume '%s' is %s; only available volumes can be attached", volID, v.State)
		}
		v.State = StateInUse
		v.Attachments = []Attachment{{InstanceID: instanceID, Device: device, State: AttachAttached, Root: true,
			AttachTime: s.opts.Now().UTC().Truncate(time.Millisecond), DeleteOnTermination: deleteOnTermination}}
		return nil
	})
}

// AttachDone finishes an Attach: attached when hotplugErr is nil, else
// the attachment is dropped and the volume is available again.
func (s *Service) AttachDone(ctx context.Context, acct, volID string, hotplugErr error) (Volume, error) {
	return store.Update(ctx, s.opts.Store, volKey(acct, volID), func(v *Volume) error {
		if len(v.Attachments) == 0 {
			return errdefs.Conflict("IncorrectState", "Volume '%s' has no attachment in progress", volID)
		}
		if hotplugErr != nil {
			v.Attachments, v.State = nil, StateAvailable
			return nil
		}
		v.Attachments[0].State = AttachAttached
		return nil
	})
}

// Detach records that a volume is being detached. instanceID, when given,
// must be the one it is attached to. The caller hot-unplugs, then calls
// DetachDone.
func (s *Service) Detach(ctx context.Context, acct, volID, instanceID string) (Volume, error) {
	if _, err := s.Get(ctx, acct, volID); err != nil {
		return Volume{}, err
	}
	return store.Update(ctx, s.opts.Store, volKey(acct, volID), func(v *Volume) error {
		if len(v.Attachments) == 0 {
			return errdefs.Conflict("IncorrectState", "Volume '%s' is in the 'available' state; it is not attached", volID)
		}
		if instanceID != "" && v.Attachments[0].InstanceID != instanceID {
			return errdefs.NotFound("InvalidAttachment.NotFound", "Volume '%s' is not attached to instance '%s' but to '%s'", volID, instanceID, v.Attachments[0].InstanceID)
		}
		if v.Attachments[0].Root {
			return errdefs.Conflict("OperationNotPermitted", "Volume '%s' is the root volume of %s (%s); labcloud does not detach root volumes: terminate the instance (with DeleteOnTermination false the volume stays, available) or snapshot the volume", volID, v.Attachments[0].InstanceID, v.Attachments[0].Device)
		}
		v.Attachments[0].State = AttachDetaching
		return nil
	})
}

// DetachDone finishes a Detach: the volume is available again.
func (s *Service) DetachDone(ctx context.Context, acct, volID string) (Volume, error) {
	return store.Update(ctx, s.opts.Store, volKey(acct, volID), func(v *Volume) error {
		v.Attachments, v.State = nil, StateAvailable
		return nil
	})
}

// Release ends volID's attachment to instanceID once the disk is out of
// the VM (a finished detach, a failed attach, a terminated instance): the
// volume is available again. A volume that is attached to another
// instance by now is left alone, so a retried Release is harmless.
func (s *Service) Release(ctx context.Context, acct, volID, instanceID string) (Volume, error) {
	return store.Update(ctx, s.opts.Store, volKey(acct, volID), func(v *Volume) error {
		if len(v.Attachments) == 0 || v.Attachments[0].InstanceID != instanceID {
			return nil
		}
		v.Attachments, v.State = nil, StateAvailable
		return nil
	})
}

// SetDeleteOnTermination changes an attachment's DeleteOnTermination.
func (s *Service) SetDeleteOnTermination(ctx context.Context, acct, volID string, on bool) (Volume, error) {
	return store.Update(ctx, s.opts.Store, volKey(acct, volID), func(v *Volume) error {
		if len(v.Attachments) == 0 {
			return errdefs.Conflict("IncorrectState", "Volume '%s' is not attached", volID)
		}
		v.Attachments[0].DeleteOnTermination = on
		return nil
	})
}

// SortVolumes orders volumes by id (DescribeVolumes pagination).
func SortVolumes(vs []Volume) { sort.Slice(vs, func(i, j int) bool { return vs[i].ID < vs[j].ID }) }
