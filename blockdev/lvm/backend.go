// Package lvm is the LVM-thin blockdev backend: each volume is a thin
// logical volume in one thin pool, each snapshot a thin snapshot. Thin
// snapshots are incremental by construction (blocks are shared until
// written) and any one can be deleted without touching the others, so
// none of the qcow2 backend's chain bookkeeping is needed.
//
// It needs device-mapper (dm-thin-pool) and an existing volume group with
// a thin pool; labcloud never creates volume groups on an operator's
// disks. Metadata lives as JSON under Dir, keys under Dir/keys.
package lvm

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/labcloud/labcloud/blockdev"
	"github.com/labcloud/labcloud/internal/errdefs"
)

var _ blockdev.Backend = (*Backend)(nil)

// Options configures a Backend.
type Options struct {
	// VG is the volume group and ThinPool the thin pool LV in it.
	VG       string
	ThinPool string
	// Dir holds metadata and keys.
	Dir string
	// Now is the clock (default time.Now).
	Now func() time.Time
}

// Backend is the LVM-thin backend.
type Backend struct {
	opts Options
	mu   sync.Mutex
}

type volumeMeta struct {
	ID             string `json:"id"`
	SizeBytes      int64  `json:"sizeBytes"`
	Encrypted      bool   `json:"encrypted"`
	KeyID          string `json:"keyId,omitempty"`
	SnapshotID     string `json:"snapshotId,omitempty"`
	LastSnapshotID string `json:"lastSnapshotId,omitempty"`
}

type snapshotMeta struct {
	ID        string                 `json:"id"`
	VolumeID  string                 `json:"volumeId"`
	SizeBytes int64                  `json:"sizeBytes"`
	Encrypted bool                   `json:"encrypted"`
	KeyID     string                 `json:"keyId,omitempty"`
	State     blockdev.SnapshotState `json:"state"`
	Reason    string                 `json:"reason,omitempty"`
	Created   time.Time              `json:"created"`
}

// Available reports whether device-mapper works on this host; the
// reason says what is missing when it does not.
func Available() (bool, string) {
	f, err := os.OpenFile("/dev/mapper/control", os.O_RDWR, 0)
	if err != nil {
		return false, "device-mapper absent (/dev/mapper/control missing or unusable: " + err.Error() + ")"
	}
	f.Close()
	if _, err := exec.LookPath("lvcreate"); err != nil {
		return false, "lvm2 not installed (lvcreate not in PATH)"
	}
	return true, ""
}

// New makes a Backend on an existing thin pool.
func New(opts Options) (*Backend, error) {
	if opts.VG == "" || opts.ThinPool == "" || opts.Dir == "" {
		return nil, errors.New("lvm backend: volume group, thin pool and state directory are required")
	}
	if opts.Now == nil {
		opts.Now = time.Now
	}
	for _, d := range []string{"volumes", "snapshots", "keys"} {
		if err := os.MkdirAll(filepath.Join(opts.Dir, d), 0o700); err != nil {
			return nil, fmt.Errorf("lvm backend: %w", err)
		}
	}
	return &Backend{opts: opts}, nil
}

func (b *Backend) run(ctx context.Context, args []string) (string, error) {
	cmd := exec.CommandContext(ctx, args[0], args[1:]...)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		return "", fmt.Errorf("%s: %v: %s", strings.Join(args[:2], " "), err, strings.TrimSpace(stderr.String()))
	}
	return string(out), nil
}

func (b *Backend) devPath(lv string) string { return "/dev/" + b.opts.VG + "/" + lv }
func (b *Backend) meta(kind, id string) string {
	return filepath.Join(b.opts.Dir, kind, id+".json")
}
func (b *Backend) keyFile(id string) string { return filepath.Join(b.opts.Dir, "keys", id+".key") }

func writeJSON(path string, v any) error {
	data, err := json.MarshalIndent(v, "", "  ")
	if err != nil {
		return err
	}
	tmp := path + ".tmp"
	if err := os.WriteFile(tmp, data, 0o600); err != nil {
		return err
	}
	return os.Rename(tmp, path)
}

func readJSON(path string, v any) (bool, error) {
	data, err := os.ReadFile(path)
	if errors.Is(err, fs.ErrNotExist) {
		return false, nil
	}
	if err != nil {
		return false, err
	}
	return true, json.Unmarshal(data, v)
}

func (b *Backend) loadVol(id string) (volumeMeta, error) {
	var m volumeMeta
	ok, err := readJSON(b.meta("volumes", id), &m)
	if err == nil && !ok {
		err = errdefs.NotFound("InvalidVolume.NotFound", "the volume %s does not exist in the block store", id)
	}
	return m, err
}

func (b *Backend) loadSnap(id string) (snapshotMeta, error) {
	var m snapshotMeta
	ok, err := readJSON(b.meta("snapshots", id), &m)
	if err == nil && !ok {
		err = errdefs.NotFound("InvalidSnapshot.NotFound", "the snapshot %s does not exist in the block store", id)
	}
	return m, err
}

func (b *Backend) lvExists(ctx context.Context, lv string) bool {
	_, err := b.run(ctx, showArgs(b.opts.VG, lv))
	return err == nil
}

func (b *Backend) toVolume(m volumeMeta) blockdev.Volume {
	v := blockdev.Volume{ID: m.ID, SizeBytes: m.SizeBytes, Encrypted: m.Encrypted, SnapshotID: m.SnapshotID,
		LastSnapshotID: m.LastSnapshotID, Path: b.devPath(m.ID), Format: blockdev.FormatRaw}
	if m.Encrypted {
		v.Format, v.KeyFile = blockdev.FormatLUKS, b.keyFile(m.KeyID)
	}
	return v
}

// CreateVolume makes a thin volume, or a writable thin snapshot of a
// snapshot. BaseImage is not supported: AMIs are qcow2 files.
func (b *Backend) CreateVolume(ctx context.Context, in blockdev.CreateVolumeInput) (blockdev.Volume, error) {
	if in.BaseImage != "" {
		return blockdev.Volume{}, errdefs.New(errdefs.ClassNotImplemented, "UnsupportedOperation", "the lvm backend cannot layer volumes on image files; use the qcow2 backend for root volumes")
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	if m, err := b.loadVol(in.ID); err == nil {
		return b.toVolume(m), nil
	}
	m := volumeMeta{ID: in.ID, SizeBytes: in.SizeBytes, Encrypted: in.Encrypted, SnapshotID: in.SnapshotID}
	if in.SnapshotID != "" {
		s, err := b.loadSnap(in.SnapshotID)
		if err != nil {
			return blockdev.Volume{}, err
		}
		if s.State != blockdev.SnapshotCompleted {
			return blockdev.Volume{}, errdefs.Conflict("IncorrectState", "snapshot %s is %s; a volume can only be made from a completed snapshot", s.ID, s.State)
		}
		if m.SizeBytes == 0 {
			m.SizeBytes = s.SizeBytes
		}
		if m.SizeBytes < s.SizeBytes {
			return blockdev.Volume{}, errdefs.InvalidParameter("InvalidParameterValue", "volume size %d bytes is smaller than snapshot %s (%d bytes)", m.SizeBytes, s.ID, s.SizeBytes)
		}
		if in.Encrypted && !s.Encrypted {
			return blockdev.Volume{}, errdefs.New(errdefs.ClassNotImplemented, "UnsupportedOperation", "the lvm backend cannot encrypt a copy of an unencrypted snapshot")
		}
		m.Encrypted, m.KeyID = s.Encrypted, s.KeyID
		if !b.lvExists(ctx, m.ID) {
			if _, err := b.run(ctx, cloneArgs(b.opts.VG, s.ID, m.ID)); err != nil {
				return blockdev.Volume{}, err
			}
		}
		if _, err := b.run(ctx, activateArgs(b.opts.VG, m.ID)); err != nil {
			return blockdev.Volume{}, err
		}
		if m.SizeBytes > s.SizeBytes {
			if _, err := b.run(ctx, extendArgs(b.opts.VG, m.ID, m.SizeBytes)); err != nil {
				return blockdev.Volume{}, err
			}
		}
	} else {
		if m.SizeBytes <= 0 {
			return blockdev.Volume{}, errdefs.InvalidParameter("InvalidParameterValue", "volume size must be positive")
		}
		if !b.lvExists(ctx, m.ID) {
			if _, err := b.run(ctx, createThinArgs(b.opts.VG, b.opts.ThinPool, m.ID, m.SizeBytes)); err != nil {
				return blockdev.Volume{}, err
			}
		}
		if m.Encrypted {
			m.KeyID = m.ID
			raw := make([]byte, 32)
			if _, err := rand.Read(raw); err != nil {
				return blockdev.Volume{}, err
			}
			if err := os.WriteFile(b.keyFile(m.KeyID), []byte(base64.StdEncoding.EncodeToString(raw)), 0o600); err != nil {
				return blockdev.Volume{}, err
			}
			if _, err := b.run(ctx, luksFormatArgs(b.devPath(m.ID), b.keyFile(m.KeyID), m.SizeBytes)); err != nil {
				return blockdev.Volume{}, err
			}
		}
	}
	if err := writeJSON(b.meta("volumes", m.ID), m); err != nil {
		return blockdev.Volume{}, err
	}
	return b.toVolume(m), nil
}

// DeleteVolume removes a volume's LV.
func (b *Backend) DeleteVolume(ctx context.Context, id string) error {
	b.mu.Lock()
	defer b.mu.Unlock()
	m, err := b.loadVol(id)
	if errdefs.Is(err, errdefs.ClassNotFound) {
		return nil
	}
	if err != nil {
		return err
	}
	if b.lvExists(ctx, id) {
		if _, err := b.run(ctx, removeArgs(b.opts.VG, id)); err != nil {
			return err
		}
	}
	_ = m
	return os.Remove(b.meta("volumes", id))
}

// ResizeVolume grows a volume's LV (a LUKS container grows with it: the
// header does not record the payload size).
func (b *Backend) ResizeVolume(ctx context.Context, id string, size int64) (blockdev.Volume, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	m, err := b.loadVol(id)
	if err != nil {
		return blockdev.Volume{}, err
	}
	if size < m.SizeBytes {
		return blockdev.Volume{}, errdefs.InvalidParameter("InvalidParameterValue", "volume %s is %d bytes; it can only grow", id, m.SizeBytes)
	}
	if size > m.SizeBytes {
		if _, err := b.run(ctx, extendArgs(b.opts.VG, id, size)); err != nil {
			return blockdev.Volume{}, err
		}
		m.SizeBytes = size
		if err := writeJSON(b.meta("volumes", id), m); err != nil {
			return blockdev.Volume{}, err
		}
	}
	return b.toVolume(m), nil
}

// Volume reports a volume.
func (b *Backend) Volume(ctx context.Context, id string) (blockdev.Volume, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	m, err := b.loadVol(id)
	if err != nil {
		return blockdev.Volume{}, err
	}
	return b.toVolume(m), nil
}

// CreateSnapshot takes a thin snapshot. ParentID is ignored: thin
// snapshots share blocks with every other snapshot of the origin anyway.
func (b *Backend) CreateSnapshot(ctx context.Context, in blockdev.CreateSnapshotInput) (blockdev.Snapshot, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if s, err := b.loadSnap(in.ID); err == nil && s.State != blockdev.SnapshotPending {
		return b.toSnapshot(s), nil
	}
	v, err := b.loadVol(in.VolumeID)
	if err != nil {
		return blockdev.Snapshot{}, err
	}
	m := snapshotMeta{ID: in.ID, VolumeID: v.ID, SizeBytes: v.SizeBytes, Encrypted: v.Encrypted, KeyID: v.KeyID,
		State: blockdev.SnapshotPending, Created: b.opts.Now().UTC()}
	if err := writeJSON(b.meta("snapshots", m.ID), m); err != nil {
		return blockdev.Snapshot{}, err
	}
	if !b.lvExists(ctx, m.ID) {
		if _, err := b.run(ctx, snapshotArgs(b.opts.VG, v.ID, m.ID)); err != nil {
			m.State, m.Reason = blockdev.SnapshotError, err.Error()
			writeJSON(b.meta("snapshots", m.ID), m)
			return b.toSnapshot(m), err
		}
	}
	m.State = blockdev.SnapshotCompleted
	if err := writeJSON(b.meta("snapshots", m.ID), m); err != nil {
		return blockdev.Snapshot{}, err
	}
	v.LastSnapshotID = m.ID
	return b.toSnapshot(m), writeJSON(b.meta("volumes", v.ID), v)
}

func (b *Backend) toSnapshot(m snapshotMeta) blockdev.Snapshot {
	return blockdev.Snapshot{ID: m.ID, VolumeID: m.VolumeID, SizeBytes: m.SizeBytes, Encrypted: m.Encrypted,
		State: m.State, Reason: m.Reason, Created: m.Created}
}

// DeleteSnapshot removes a thin snapshot; clones of it keep their blocks.
func (b *Backend) DeleteSnapshot(ctx context.Context, id string) error {
	b.mu.Lock()
	defer b.mu.Unlock()
	if _, err := b.loadSnap(id); errdefs.Is(err, errdefs.ClassNotFound) {
		return nil
	}
	if b.lvExists(ctx, id) {
		if _, err := b.run(ctx, removeArgs(b.opts.VG, id)); err != nil {
			return err
		}
	}
	return os.Remove(b.meta("snapshots", id))
}

// Snapshot reports a snapshot.
func (b *Backend) Snapshot(ctx context.Context, id string) (blockdev.Snapshot, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	m, err := b.loadSnap(id)
	if err != nil {
		return blockdev.Snapshot{}, err
	}
	return b.toSnapshot(m), nil
}

// Check reports whether the LV exists with the recorded size and is not
// partial (a missing PV).
func (b *Backend) Check(ctx context.Context, id string) (blockdev.CheckResult, error) {
	out, err := b.run(ctx, showArgs(b.opts.VG, id))
	if err != nil {
		return blockdev.CheckResult{}, errdefs.NotFound("InvalidVolume.NotFound", "no logical volume %s/%s: %v", b.opts.VG, id, err)
	}
	f := strings.Split(strings.TrimSpace(out), "|")
	r := blockdev.CheckResult{OK: true, Output: out}
	if len(f) != 2 {
		return r, fmt.Errorf("lvs: unexpected output %q", out)
	}
	if _, err := strconv.ParseInt(f[0], 10, 64); err != nil || (len(f[1]) > 8 && f[1][8] == 'p') {
		r.OK, r.Corruptions = false, 1
	}
	return r, nil
}

// Recover settles pending snapshots: an existing LV means the snapshot
// was taken (lvcreate is atomic), none means it was not.
func (b *Backend) Recover(ctx context.Context) (blockdev.RecoverResult, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	var res blockdev.RecoverResult
	names, _ := filepath.Glob(filepath.Join(b.opts.Dir, "snapshots", "*.json"))
	for _, n := range names {
		var s snapshotMeta
		if ok, err := readJSON(n, &s); err != nil || !ok || s.State != blockdev.SnapshotPending {
			continue
		}
		if b.lvExists(ctx, s.ID) {
			s.State = blockdev.SnapshotCompleted
			res.Completed = append(res.Completed, s.ID)
		} else {
			s.State, s.Reason = blockdev.SnapshotError, "labcloudd stopped while the snapshot was being taken; take a new one"
			res.Failed = append(res.Failed, s.ID)
		}
		if err := writeJSON(n, s); err != nil {
			return res, err
		}
	}
	return res, nil
}
