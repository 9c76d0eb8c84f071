// Package qcow2 is the default blockdev backend: every volume and snapshot
// is a qcow2 file under one state directory, made and changed with
// qemu-img. Snapshots form backing chains and store only the clusters
// that differ from their parent; see docs/adr/0002-incremental-snapshots.md.
//
// Layout under Dir:
//
//	volumes/<id>.qcow2    the volume (an overlay of its snapshot or image)
//	volumes/<id>.json     its metadata
//	snapshots/<id>.qcow2  the snapshot's delta, backed by its parent
//	snapshots/<id>.json   its metadata (state, parent, hidden)
//	keys/<key>.key        LUKS passphrases (base64 text of 32 random bytes), mode 0600
//
// Every file is written under a temporary name, fsynced and renamed, and
// metadata changes after the data they describe, so a crash at any point
// leaves either the old or the new state plus leftovers Recover removes.
package qcow2

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
	"regexp"
	"sort"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/labcloud/labcloud/blockdev"
	"github.com/labcloud/labcloud/internal/errdefs"
)

var _ blockdev.Backend = (*Backend)(nil)

// Options configures a Backend.
type Options struct {
	// Dir is the state directory (created if missing).
	Dir string
	// QemuImg is the qemu-img binary (default "qemu-img" on PATH).
	QemuImg string
	// Now is the clock (default time.Now).
	Now func() time.Time
}

// Backend is the qcow2 blockdev backend. Its methods are safe for
// concurrent use; they run one at a time, since each changes files that
// others read.
type Backend struct {
	opts Options
	mu   sync.Mutex
}

// volumeMeta is volumes/<id>.json.
type volumeMeta struct {
	ID             string `json:"id"`
	SizeBytes      int64  `json:"sizeBytes"`
	Encrypted      bool   `json:"encrypted"`
	KeyID          string `json:"keyId,omitempty"`
	SnapshotID     string `json:"snapshotId,omitempty"`
	BaseImage      string `json:"baseImage,omitempty"`
	LastSnapshotID string `json:"lastSnapshotId,omitempty"`
	// Flat is true when the volume was copied rather than layered on its
	// source (encrypting unencrypted data), so it has no backing file.
	Flat bool `json:"flat,omitempty"`
}

// snapshotMeta is snapshots/<id>.json.
type snapshotMeta struct {
	ID        string                 `json:"id"`
	VolumeID  string                 `json:"volumeId"`
	ParentID  string                 `json:"parentId,omitempty"`
	SizeBytes int64                  `json:"sizeBytes"`
	Encrypted bool                   `json:"encrypted"`
	KeyID     string                 `json:"keyId,omitempty"`
	State     blockdev.SnapshotState `json:"state"`
	Reason    string                 `json:"reason,omitempty"`
	Created   time.Time              `json:"created"`
	// Hidden snapshots were deleted but volumes made from them still
	// read them; the file goes with the last such volume.
	Hidden bool `json:"hidden,omitempty"`
	// Deleting marks a delete in progress, which Recover finishes.
	Deleting bool `json:"deleting,omitempty"`
}

// New makes a Backend over opts.Dir.
func New(opts Options) (*Backend, error) {
	if opts.Dir == "" {
		return nil, errors.New("qcow2 backend: no state directory given")
	}
	if opts.QemuImg == "" {
		opts.QemuImg = "qemu-img"
	}
	if opts.Now == nil {
		opts.Now = time.Now
	}
	for _, d := range []string{"volumes", "snapshots", "keys"} {
		if err := os.MkdirAll(filepath.Join(opts.Dir, d), 0o700); err != nil {
			return nil, fmt.Errorf("qcow2 backend: %w", err)
		}
	}
	return &Backend{opts: opts}, nil
}

var idRE = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$`)

func checkID(kind, id string) error {
	if !idRE.MatchString(id) {
		return errdefs.InvalidParameter("InvalidParameterValue", "%s id %q is not valid: use letters, digits, '-', '_' and '.', at most 64", kind, id)
	}
	return nil
}

func (b *Backend) volPath(id string) string { return filepath.Join(b.opts.Dir, "volumes", id+".qcow2") }
func (b *Backend) volMeta(id string) string { return filepath.Join(b.opts.Dir, "volumes", id+".json") }
func (b *Backend) snapPath(id string) string {
	return filepath.Join(b.opts.Dir, "snapshots", id+".qcow2")
}
func (b *Backend) snapMeta(id string) string {
	return filepath.Join(b.opts.Dir, "snapshots", id+".json")
}
func (b *Backend) keyFile(id string) string { return filepath.Join(b.opts.Dir, "keys", id+".key") }

// run runs qemu-img with args. QEMU calibrates LUKS key stretching by
// measuring its own CPU time, which fails now and then on a loaded host
// ("Unable to get accurate CPU usage") before anything is written; such a
// run is tried again.
func (b *Backend) run(ctx context.Context, args []string) ([]byte, error) {
	for try := 0; ; try++ {
		cmd := exec.CommandContext(ctx, b.opts.QemuImg, args...)
		var stderr bytes.Buffer
		cmd.Stderr = &stderr
		out, err := cmd.Output()
		if err == nil {
			return out, nil
		}
		msg := strings.TrimSpace(stderr.String())
		if strings.Contains(msg, "Unable to get accurate CPU usage") && try < 4 && ctx.Err() == nil {
			continue
		}
		return out, fmt.Errorf("qemu-img %s: %v: %s", args[0], err, msg)
	}
}

// writeFileAtomic writes data to path via a temporary file, fsync and
// rename, then fsyncs the directory so the rename is durable.
func writeFileAtomic(path string, data []byte, perm os.FileMode) error {
	tmp := path + ".tmp"
	f, err := os.OpenFile(tmp, os.O_WRONLY|os.O_CREATE|os.O_TRUNC, perm)
	if err != nil {
		return err
	}
	if _, err := f.Write(data); err != nil {
		f.Close()
		return err
	}
	if err := f.Sync(); err != nil {
		f.Close()
		return err
	}
	if err := f.Close(); err != nil {
		return err
	}
	if err := os.Rename(tmp, path); err != nil {
		return err
	}
	return syncDir(filepath.Dir(path))
}

func syncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	defer d.Close()
	return d.Sync()
}

// commitFile makes tmp durable and gives it its final name.
func commitFile(tmp, final string) error {
	f, err := os.OpenFile(tmp, os.O_RDWR, 0)
	if err != nil {
		return err
	}
	if err := f.Sync(); err != nil {
		f.Close()
		return err
	}
	f.Close()
	if err := os.Rename(tmp, final); err != nil {
		return err
	}
	return syncDir(filepath.Dir(final))
}

func writeJSON(path string, v any) error {
	b, err := json.MarshalIndent(v, "", "  ")
	if err != nil {
		return err
	}
	return writeFileAtomic(path, b, 0o600)
}

func readJSON(path string, v any) (bool, error) {
	b, err := os.ReadFile(path)
	if errors.Is(err, fs.ErrNotExist) {
		return false, nil
	}
	if err != nil {
		return false, err
	}
	return true, json.Unmarshal(b, v)
}

func (b *Backend) loadVol(id string) (volumeMeta, error) {
	var m volumeMeta
	ok, err := readJSON(b.volMeta(id), &m)
	if err != nil {
		return m, fmt.Errorf("reading volume %s: %w", id, err)
	}
	if !ok {
		return m, errdefs.NotFound("InvalidVolume.NotFound", "the volume %s does not exist in the block store", id)
	}
	return m, nil
}

func (b *Backend) loadSnap(id string) (snapshotMeta, error) {
	var m snapshotMeta
	ok, err := readJSON(b.snapMeta(id), &m)
	if err != nil {
		return m, fmt.Errorf("reading snapshot %s: %w", id, err)
	}
	if !ok {
		return m, errdefs.NotFound("InvalidSnapshot.NotFound", "the snapshot %s does not exist in the block store", id)
	}
	return m, nil
}

func (b *Backend) listSnaps() ([]snapshotMeta, error) {
	names, err := filepath.Glob(filepath.Join(b.opts.Dir, "snapshots", "*.json"))
	if err != nil {
		return nil, err
	}
	var out []snapshotMeta
	for _, n := range names {
		var m snapshotMeta
		if ok, err := readJSON(n, &m); err != nil {
			return nil, err
		} else if ok {
			out = append(out, m)
		}
	}
	sort.Slice(out, func(i, j int) bool { return out[i].ID < out[j].ID })
	return out, nil
}

func (b *Backend) listVols() ([]volumeMeta, error) {
	names, err := filepath.Glob(filepath.Join(b.opts.Dir, "volumes", "*.json"))
	if err != nil {
		return nil, err
	}
	var out []volumeMeta
	for _, n := range names {
		var m volumeMeta
		if ok, err := readJSON(n, &m); err != nil {
			return nil, err
		} else if ok {
			out = append(out, m)
		}
	}
	return out, nil
}

// newKey makes a random passphrase for keyID unless it exists.
func (b *Backend) newKey(keyID string) error {
	p := b.keyFile(keyID)
	if _, err := os.Stat(p); err == nil {
		return nil
	}
	raw := make([]byte, 32)
	if _, err := rand.Read(raw); err != nil {
		return err
	}
	return writeFileAtomic(p, []byte(base64.StdEncoding.EncodeToString(raw)), 0o600)
}

// templateSize is the virtual size of a key's template file; copies are
// grown to the size they need.
const templateSize = 64 << 10

// createFile makes an empty qcow2 at path of size bytes over backing
// (may be empty), encrypted with keyID's key when encrypted.
//
// An encrypted file is a copy of a per-key template, resized and given
// its backing name: creating a LUKS header makes QEMU calibrate its key
// derivation for over a second of CPU, on every create, which would
// dominate the cost of a small incremental snapshot. Copies share the
// template's LUKS master key, as every file of one chain shares the
// passphrase anyway.
func (b *Backend) createFile(ctx context.Context, path string, size int64, encrypted bool, keyID, backing string) error {
	if !encrypted {
		_, err := b.run(ctx, createArgs(path, size, false, "", backing))
		return err
	}
	keyFile := b.keyFile(keyID)
	tmpl := filepath.Join(b.opts.Dir, "keys", keyID+".template.qcow2")
	if _, err := os.Stat(tmpl); err != nil {
		os.Remove(tmpl + ".tmp")
		if _, err := b.run(ctx, createArgs(tmpl+".tmp", templateSize, true, keyFile, "")); err != nil {
			return err
		}
		if err := commitFile(tmpl+".tmp", tmpl); err != nil {
			return err
		}
	}
	if out, err := exec.CommandContext(ctx, "cp", "--sparse=always", tmpl, path).CombinedOutput(); err != nil {
		return fmt.Errorf("copying %s: %v: %s", tmpl, err, out)
	}
	im := image{Path: path, Encrypted: []bool{true}, KeyFile: keyFile}
	if size != templateSize {
		if _, err := b.run(ctx, resizeArgs(im, size)); err != nil {
			return err
		}
	}
	if backing != "" {
		if _, err := b.run(ctx, fixBackingArgs(im, backing)); err != nil {
			return err
		}
	}
	return nil
}

// snapChain is the image of snapshot id with its backing layers.
func (b *Backend) snapChain(id string) (image, error) {
	im := image{Path: b.snapPath(id)}
	for cur := id; cur != ""; {
		m, err := b.loadSnap(cur)
		if err != nil {
			return im, err
		}
		im.Encrypted = append(im.Encrypted, m.Encrypted)
		if m.Encrypted && im.KeyFile == "" {
			im.KeyFile = b.keyFile(m.KeyID)
		}
		cur = m.ParentID
		if len(im.Encrypted) > 10000 {
			return im, fmt.Errorf("snapshot %s: backing chain loops", id)
		}
	}
	return im, nil
}

// volChain is the image of volume m with its backing layers.
func (b *Backend) volChain(m volumeMeta) (image, error) {
	im := image{Path: b.volPath(m.ID), Encrypted: []bool{m.Encrypted}}
	if m.Encrypted {
		im.KeyFile = b.keyFile(m.KeyID)
	}
	switch {
	case m.Flat:
	case m.SnapshotID != "":
		s, err := b.snapChain(m.SnapshotID)
		if err != nil {
			return im, err
		}
		im.Encrypted = append(im.Encrypted, s.Encrypted...)
		if im.KeyFile == "" {
			im.KeyFile = s.KeyFile
		}
	case m.BaseImage != "":
		im.Encrypted = append(im.Encrypted, false)
	}
	return im, nil
}

func (b *Backend) toVolume(m volumeMeta) (blockdev.Volume, error) {
	v := blockdev.Volume{ID: m.ID, SizeBytes: m.SizeBytes, Encrypted: m.Encrypted, SnapshotID: m.SnapshotID,
		BaseImage: m.BaseImage, LastSnapshotID: m.LastSnapshotID, Path: b.volPath(m.ID), Format: blockdev.FormatQCOW2}
	if m.Encrypted {
		v.KeyFile = b.keyFile(m.KeyID)
	}
	im, err := b.volChain(m)
	if err != nil {
		return v, err
	}
	for i := 1; i < len(im.Encrypted); i++ {
		v.Chain = append(v.Chain, blockdev.Layer{Format: blockdev.FormatQCOW2, Encrypted: im.Encrypted[i]})
	}
	// Paths of the layers, nearest first.
	i := 0
	if !m.Flat && m.SnapshotID != "" {
		for cur := m.SnapshotID; cur != "" && i < len(v.Chain); i++ {
			v.Chain[i].Path = b.snapPath(cur)
			s, err := b.loadSnap(cur)
			if err != nil {
				return v, err
			}
			cur = s.ParentID
		}
	} else if !m.Flat && m.BaseImage != "" {
		v.Chain[0].Path = m.BaseImage
	}
	return v, nil
}

func (b *Backend) toSnapshot(m snapshotMeta) blockdev.Snapshot {
	s := blockdev.Snapshot{ID: m.ID, VolumeID: m.VolumeID, ParentID: m.ParentID, SizeBytes: m.SizeBytes,
		Encrypted: m.Encrypted, State: m.State, Reason: m.Reason, Created: m.Created}
	var st syscall.Stat_t
	if err := syscall.Stat(b.snapPath(m.ID), &st); err == nil {
		s.StoredBytes = st.Blocks * 512
	}
	return s
}

// CreateVolume makes a volume: empty, a copy-on-write overlay of a
// snapshot or image, or (encrypting unencrypted data) a full copy.
func (b *Backend) CreateVolume(ctx context.Context, in blockdev.CreateVolumeInput) (blockdev.Volume, error) {
	if err := checkID("volume", in.ID); err != nil {
		return blockdev.Volume{}, err
	}
	if in.SnapshotID != "" && in.BaseImage != "" {
		return blockdev.Volume{}, errdefs.InvalidParameter("InvalidParameterCombination", "a volume is made from a snapshot or from an image, not both")
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	if m, err := b.loadVol(in.ID); err == nil {
		return b.toVolume(m)
	} else if !errdefs.Is(err, errdefs.ClassNotFound) {
		return blockdev.Volume{}, err
	}
	m := volumeMeta{ID: in.ID, SizeBytes: in.SizeBytes, Encrypted: in.Encrypted, SnapshotID: in.SnapshotID, BaseImage: in.BaseImage}
	var src *image
	backing := ""
	switch {
	case in.SnapshotID != "":
		s, err := b.loadSnap(in.SnapshotID)
		if err != nil {
			return blockdev.Volume{}, err
		}
		if s.State != blockdev.SnapshotCompleted || s.Hidden || s.Deleting {
			return blockdev.Volume{}, errdefs.Conflict("IncorrectState", "snapshot %s is %s; a volume can only be made from a completed snapshot", s.ID, s.State)
		}
		if m.SizeBytes == 0 {
			m.SizeBytes = s.SizeBytes
		}
		if m.SizeBytes < s.SizeBytes {
			return blockdev.Volume{}, errdefs.InvalidParameter("InvalidParameterValue", "volume size %d bytes is smaller than snapshot %s (%d bytes); ask for at least the snapshot's size", m.SizeBytes, s.ID, s.SizeBytes)
		}
		chain, err := b.snapChain(s.ID)
		if err != nil {
			return blockdev.Volume{}, err
		}
		src = &chain
		if s.Encrypted {
			m.Encrypted, m.KeyID = true, s.KeyID
		}
		backing = b.snapPath(s.ID)
	case in.BaseImage != "":
		out, err := b.run(ctx, infoArgs(in.BaseImage))
		if err != nil {
			return blockdev.Volume{}, errdefs.Wrap(errdefs.ClassInvalidParameter, "InvalidParameterValue", err, "base image %s cannot be read", in.BaseImage)
		}
		var info struct {
			VirtualSize int64 `json:"virtual-size"`
		}
		if err := json.Unmarshal(out, &info); err != nil {
			return blockdev.Volume{}, err
		}
		if m.SizeBytes == 0 {
			m.SizeBytes = info.VirtualSize
		}
		if m.SizeBytes < info.VirtualSize {
			return blockdev.Volume{}, errdefs.InvalidParameter("InvalidParameterValue", "volume size %d bytes is smaller than image %s (%d bytes)", m.SizeBytes, in.BaseImage, info.VirtualSize)
		}
		src = &image{Path: in.BaseImage, Encrypted: []bool{false}}
		backing = in.BaseImage
	}
	if m.SizeBytes <= 0 {
		return blockdev.Volume{}, errdefs.InvalidParameter("InvalidParameterValue", "volume size must be positive; give a size or a source")
	}
	if m.Encrypted && m.KeyID == "" {
		m.KeyID = m.ID
		if err := b.newKey(m.KeyID); err != nil {
			return blockdev.Volume{}, fmt.Errorf("making the key of volume %s: %w", m.ID, err)
		}
	}
	tmp := b.volPath(m.ID) + ".tmp"
	os.Remove(tmp)
	// Encrypting a copy of unencrypted data cannot be layered: the
	// plaintext would stay readable below the encrypted layer.
	if m.Encrypted && src != nil && !src.anyEncrypted() {
		m.Flat = true
		if _, err := b.run(ctx, convertArgs(*src, tmp, true, b.keyFile(m.KeyID))); err != nil {
			os.Remove(tmp)
			return blockdev.Volume{}, err
		}
		flat := image{Path: tmp, Encrypted: []bool{true}, KeyFile: b.keyFile(m.KeyID)}
		if _, err := b.run(ctx, resizeArgs(flat, m.SizeBytes)); err != nil {
			os.Remove(tmp)
			return blockdev.Volume{}, err
		}
	} else {
		if err := b.createFile(ctx, tmp, m.SizeBytes, m.Encrypted, m.KeyID, backing); err != nil {
			os.Remove(tmp)
			return blockdev.Volume{}, err
		}
	}
	if err := commitFile(tmp, b.volPath(m.ID)); err != nil {
		return blockdev.Volume{}, err
	}
	if err := writeJSON(b.volMeta(m.ID), m); err != nil {
		return blockdev.Volume{}, err
	}
	return b.toVolume(m)
}

// DeleteVolume removes a volume, and a deleted snapshot it was the last
// reader of.
func (b *Backend) DeleteVolume(ctx context.Context, id string) error {
	b.mu.Lock()
	defer b.mu.Unlock()
	m, err := b.loadVol(id)
	if errdefs.Is(err, errdefs.ClassNotFound) {
		os.Remove(b.volPath(id))
		return nil
	}
	if err != nil {
		return err
	}
	snaps, err := b.listSnaps()
	if err != nil {
		return err
	}
	for _, s := range snaps {
		if s.VolumeID == id && s.State == blockdev.SnapshotPending {
			return errdefs.Conflict("IncorrectState", "volume %s has snapshot %s in progress; wait for it before deleting the volume", id, s.ID)
		}
	}
	// Metadata first: a crash after it leaves only an unreferenced file.
	if err := os.Remove(b.volMeta(id)); err != nil {
		return err
	}
	syncDir(filepath.Dir(b.volMeta(id)))
	if err := os.Remove(b.volPath(id)); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return err
	}
	if m.SnapshotID != "" {
		if err := b.collect(m.SnapshotID); err != nil {
			return err
		}
	}
	if m.Encrypted && m.KeyID == m.ID {
		// The key of a lineage stays while anything made from the
		// volume still uses it.
		b.collectKey(m.KeyID)
	}
	return nil
}

// collect removes the hidden snapshot id when no volume reads it.
func (b *Backend) collect(id string) error {
	s, err := b.loadSnap(id)
	if err != nil || !s.Hidden {
		return nil
	}
	vols, err := b.listVols()
	if err != nil {
		return err
	}
	for _, v := range vols {
		if v.SnapshotID == id {
			return nil
		}
	}
	if err := os.Remove(b.snapMeta(id)); err != nil {
		return err
	}
	os.Remove(b.snapPath(id))
	if s.Encrypted {
		b.collectKey(s.KeyID)
	}
	return nil
}

// collectKey deletes a key nothing uses any more.
func (b *Backend) collectKey(keyID string) {
	vols, _ := b.listVols()
	for _, v := range vols {
		if v.KeyID == keyID {
			return
		}
	}
	snaps, _ := b.listSnaps()
	for _, s := range snaps {
		if s.KeyID == keyID {
			return
		}
	}
	os.Remove(b.keyFile(keyID))
	os.Remove(filepath.Join(b.opts.Dir, "keys", keyID+".template.qcow2"))
}

// ResizeVolume grows a volume that no VM has open (a running VM's volume
// grows through QMP block_resize, then call this to record the size: it
// is a no-op on the file when it already has the size).
func (b *Backend) ResizeVolume(ctx context.Context, id string, size int64) (blockdev.Volume, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	m, err := b.loadVol(id)
	if err != nil {
		return blockdev.Volume{}, err
	}
	if size < m.SizeBytes {
		return blockdev.Volume{}, errdefs.InvalidParameter("InvalidParameterValue", "volume %s is %d bytes; it can only grow, not shrink to %d", id, m.SizeBytes, size)
	}
	if size > m.SizeBytes {
		im, err := b.volChain(m)
		if err != nil {
			return blockdev.Volume{}, err
		}
		if _, err := b.run(ctx, resizeArgs(im, size)); err != nil {
			return blockdev.Volume{}, err
		}
		m.SizeBytes = size
		if err := writeJSON(b.volMeta(id), m); err != nil {
			return blockdev.Volume{}, err
		}
	}
	return b.toVolume(m)
}

// Volume reports a volume.
func (b *Backend) Volume(ctx context.Context, id string) (blockdev.Volume, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	m, err := b.loadVol(id)
	if err != nil {
		return blockdev.Volume{}, err
	}
	return b.toVolume(m)
}

// Snapshot reports a snapshot; deleted (hidden) snapshots are NotFound.
func (b *Backend) Snapshot(ctx context.Context, id string) (blockdev.Snapshot, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	m, err := b.loadSnap(id)
	if err != nil {
		return blockdev.Snapshot{}, err
	}
	if m.Hidden {
		return blockdev.Snapshot{}, errdefs.NotFound("InvalidSnapshot.NotFound", "the snapshot %s was deleted", id)
	}
	return b.toSnapshot(m), nil
}

// liveParent checks that id can be a parent: completed, not deleted.
func liveParent(s snapshotMeta) bool {
	return s.State == blockdev.SnapshotCompleted && !s.Hidden && !s.Deleting
}

// CreateSnapshot takes an incremental snapshot: an empty overlay of the
// volume is rebased onto the parent snapshot in safe mode, which copies
// into it exactly the clusters where the volume differs from the parent.
// The result is committed by rename after fsync; the metadata says
// pending until then, so a crash leaves a snapshot Recover can judge.
func (b *Backend) CreateSnapshot(ctx context.Context, in blockdev.CreateSnapshotInput) (blockdev.Snapshot, error) {
	if err := checkID("snapshot", in.ID); err != nil {
		return blockdev.Snapshot{}, err
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	if s, err := b.loadSnap(in.ID); err == nil {
		if s.VolumeID != in.VolumeID {
			return blockdev.Snapshot{}, errdefs.AlreadyExists("InvalidSnapshot.Duplicate", "snapshot id %s is taken by a snapshot of %s", in.ID, s.VolumeID)
		}
		if s.State != blockdev.SnapshotPending {
			return b.toSnapshot(s), nil
		}
		// A pending one is a retry after a failure: start over.
	}
	v, err := b.loadVol(in.VolumeID)
	if err != nil {
		return blockdev.Snapshot{}, err
	}
	parent := in.ParentID
	if parent == "" {
		for _, c := range []string{v.LastSnapshotID, v.SnapshotID} {
			if c == "" {
				continue
			}
			if p, err := b.loadSnap(c); err == nil && liveParent(p) {
				parent = c
				break
			}
		}
	}
	var parentIm *image
	if parent != "" {
		p, err := b.loadSnap(parent)
		if err != nil {
			return blockdev.Snapshot{}, err
		}
		if !liveParent(p) {
			return blockdev.Snapshot{}, errdefs.Conflict("IncorrectState", "snapshot %s cannot be a parent: it is %s or deleted", parent, p.State)
		}
		// An unencrypted parent under an encrypted snapshot would leave
		// the volume's data readable; such a snapshot starts a new chain.
		if p.Encrypted == v.Encrypted {
			im, err := b.snapChain(parent)
			if err != nil {
				return blockdev.Snapshot{}, err
			}
			parentIm = &im
		} else {
			parent = ""
		}
	}
	m := snapshotMeta{ID: in.ID, VolumeID: v.ID, ParentID: parent, SizeBytes: v.SizeBytes, Encrypted: v.Encrypted,
		KeyID: v.KeyID, State: blockdev.SnapshotPending, Created: b.opts.Now().UTC()}
	if err := writeJSON(b.snapMeta(m.ID), m); err != nil {
		return blockdev.Snapshot{}, err
	}
	fail := func(err error) (blockdev.Snapshot, error) {
		m.State, m.Reason = blockdev.SnapshotError, err.Error()
		os.Remove(b.snapPath(m.ID) + ".tmp")
		if werr := writeJSON(b.snapMeta(m.ID), m); werr != nil {
			return blockdev.Snapshot{}, errors.Join(err, werr)
		}
		return b.toSnapshot(m), err
	}
	volIm, err := b.volChain(v)
	if err != nil {
		return fail(err)
	}
	tmp := b.snapPath(m.ID) + ".tmp"
	os.Remove(tmp)
	if err := b.createFile(ctx, tmp, v.SizeBytes, v.Encrypted, v.KeyID, volIm.Path); err != nil {
		return fail(err)
	}
	top := image{Path: tmp, Encrypted: append([]bool{v.Encrypted}, volIm.Encrypted...), KeyFile: volIm.KeyFile}
	if _, err := b.run(ctx, rebaseArgs(top, parentIm, true)); err != nil {
		return fail(err)
	}
	if parentIm != nil && parentIm.anyEncrypted() {
		if _, err := b.run(ctx, fixBackingArgs(top, parentIm.Path)); err != nil {
			return fail(err)
		}
	}
	if err := commitFile(tmp, b.snapPath(m.ID)); err != nil {
		return fail(err)
	}
	m.State = blockdev.SnapshotCompleted
	if err := writeJSON(b.snapMeta(m.ID), m); err != nil {
		return blockdev.Snapshot{}, err
	}
	v.LastSnapshotID = m.ID
	if err := writeJSON(b.volMeta(v.ID), v); err != nil {
		return blockdev.Snapshot{}, err
	}
	return b.toSnapshot(m), nil
}

// DeleteSnapshot removes a snapshot. Every snapshot stored as a delta on
// it is first rebased onto its parent (a copy is rebased and renamed over
// the original, so a VM reading the old file keeps a consistent view and
// a crash leaves the old or the new file, never a half-written one).
// Volumes made from it keep it hidden until they go.
func (b *Backend) DeleteSnapshot(ctx context.Context, id string) error {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.deleteSnapshot(ctx, id)
}

func (b *Backend) deleteSnapshot(ctx context.Context, id string) error {
	m, err := b.loadSnap(id)
	if errdefs.Is(err, errdefs.ClassNotFound) {
		return nil
	}
	if err != nil {
		return err
	}
	if m.Hidden {
		return nil
	}
	if m.State == blockdev.SnapshotPending {
		return errdefs.Conflict("IncorrectState", "snapshot %s is still pending; wait for it to complete before deleting it", id)
	}
	m.Deleting = true
	if err := writeJSON(b.snapMeta(id), m); err != nil {
		return err
	}
	snaps, err := b.listSnaps()
	if err != nil {
		return err
	}
	var newBacking *image
	if m.ParentID != "" {
		im, err := b.snapChain(m.ParentID)
		if err != nil {
			return err
		}
		newBacking = &im
	}
	for _, c := range snaps {
		if c.ParentID != id || c.State != blockdev.SnapshotCompleted {
			continue
		}
		if err := b.rebaseSnapshot(ctx, c, newBacking); err != nil {
			return fmt.Errorf("moving the data of snapshot %s into %s: %w", id, c.ID, err)
		}
		c.ParentID = m.ParentID
		if err := writeJSON(b.snapMeta(c.ID), c); err != nil {
			return err
		}
	}
	vols, err := b.listVols()
	if err != nil {
		return err
	}
	used := false
	for _, v := range vols {
		if v.SnapshotID == id {
			used = true
		}
		if v.LastSnapshotID == id {
			v.LastSnapshotID = m.ParentID
			if err := writeJSON(b.volMeta(v.ID), v); err != nil {
				return err
			}
		}
	}
	if used {
		m.Hidden, m.Deleting = true, false
		return writeJSON(b.snapMeta(id), m)
	}
	if err := os.Remove(b.snapMeta(id)); err != nil {
		return err
	}
	os.Remove(b.snapPath(id))
	os.Remove(b.snapPath(id) + ".tmp")
	syncDir(filepath.Dir(b.snapMeta(id)))
	if m.Encrypted {
		b.collectKey(m.KeyID)
	}
	return nil
}

// rebaseSnapshot moves snapshot c onto newBacking (nil: standalone)
// through a copy, keeping what c reads.
func (b *Backend) rebaseSnapshot(ctx context.Context, c snapshotMeta, newBacking *image) error {
	cur, err := b.snapChain(c.ID)
	if err != nil {
		return err
	}
	tmp := b.snapPath(c.ID) + ".tmp"
	os.Remove(tmp)
	if out, err := exec.CommandContext(ctx, "cp", "--sparse=always", "--reflink=auto", cur.Path, tmp).CombinedOutput(); err != nil {
		return fmt.Errorf("copying %s: %v: %s", cur.Path, err, out)
	}
	top := cur
	top.Path = tmp
	if top.KeyFile == "" && newBacking != nil {
		top.KeyFile = newBacking.KeyFile
	}
	if _, err := b.run(ctx, rebaseArgs(top, newBacking, true)); err != nil {
		os.Remove(tmp)
		return err
	}
	if newBacking != nil && newBacking.anyEncrypted() {
		if _, err := b.run(ctx, fixBackingArgs(top, newBacking.Path)); err != nil {
			os.Remove(tmp)
			return err
		}
	}
	return commitFile(tmp, cur.Path)
}

// Check runs qemu-img check on a volume or a snapshot (by id prefix
// "snap-" or an existing snapshot id).
func (b *Backend) Check(ctx context.Context, id string) (blockdev.CheckResult, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	var im image
	if s, err := b.loadSnap(id); err == nil {
		if im, err = b.snapChain(s.ID); err != nil {
			return blockdev.CheckResult{}, err
		}
	} else {
		v, err := b.loadVol(id)
		if err != nil {
			return blockdev.CheckResult{}, err
		}
		if im, err = b.volChain(v); err != nil {
			return blockdev.CheckResult{}, err
		}
	}
	return b.check(ctx, im)
}

func (b *Backend) check(ctx context.Context, im image) (blockdev.CheckResult, error) {
	out, runErr := b.run(ctx, checkArgs(im))
	var r struct {
		CheckErrors int `json:"check-errors"`
		Corruptions int `json:"corruptions"`
		Leaks       int `json:"leaks"`
	}
	if err := json.Unmarshal(out, &r); err != nil {
		if runErr != nil {
			return blockdev.CheckResult{}, runErr
		}
		return blockdev.CheckResult{}, fmt.Errorf("qemu-img check %s: unreadable report: %w", im.Path, err)
	}
	return blockdev.CheckResult{OK: r.CheckErrors == 0 && r.Corruptions == 0, Corruptions: r.Corruptions + r.CheckErrors,
		Leaks: r.Leaks, Output: string(out)}, nil
}

// Recover settles what a crash interrupted: temporary files go; a pending
// snapshot whose file was committed is checked and becomes completed,
// one without becomes error; an interrupted delete is finished.
func (b *Backend) Recover(ctx context.Context) (blockdev.RecoverResult, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	var res blockdev.RecoverResult
	snaps, err := b.listSnaps()
	if err != nil {
		return res, err
	}
	for _, s := range snaps {
		os.Remove(b.snapPath(s.ID) + ".tmp")
		if s.State != blockdev.SnapshotPending {
			continue
		}
		if _, err := os.Stat(b.snapPath(s.ID)); err == nil {
			im, err := b.snapChain(s.ID)
			if err == nil {
				var r blockdev.CheckResult
				if r, err = b.check(ctx, im); err == nil && !r.OK {
					err = fmt.Errorf("qemu-img check found %d corruptions", r.Corruptions)
				}
			}
			if err == nil {
				s.State = blockdev.SnapshotCompleted
				res.Completed = append(res.Completed, s.ID)
				if v, verr := b.loadVol(s.VolumeID); verr == nil {
					v.LastSnapshotID = s.ID
					if err := writeJSON(b.volMeta(v.ID), v); err != nil {
						return res, err
					}
				}
			} else {
				os.Remove(b.snapPath(s.ID))
				s.State, s.Reason = blockdev.SnapshotError, "the snapshot's data failed its check after a restart: "+err.Error()
				res.Failed = append(res.Failed, s.ID)
			}
		} else {
			s.State, s.Reason = blockdev.SnapshotError, "labcloudd stopped while the snapshot was being taken; take a new one"
			res.Failed = append(res.Failed, s.ID)
		}
		if err := writeJSON(b.snapMeta(s.ID), s); err != nil {
			return res, err
		}
	}
	for _, s := range snaps {
		if s.Deleting {
			if err := b.deleteSnapshot(ctx, s.ID); err != nil {
				return res, fmt.Errorf("finishing the delete of snapshot %s: %w", s.ID, err)
			}
			res.Deleted = append(res.Deleted, s.ID)
		}
	}
	vols, err := b.listVols()
	if err != nil {
		return res, err
	}
	for _, v := range vols {
		os.Remove(b.volPath(v.ID) + ".tmp")
	}
	// Volume files without metadata are creates or deletes a crash cut
	// short: nothing refers to them.
	files, _ := filepath.Glob(filepath.Join(b.opts.Dir, "volumes", "*.qcow2*"))
	for _, f := range files {
		if strings.HasSuffix(f, liveOverlaySuffix) {
			continue // a running VM's; see LiveSnapshotPlan
		}
		id := strings.TrimSuffix(strings.TrimSuffix(filepath.Base(f), ".tmp"), ".qcow2")
		if _, err := os.Stat(b.volMeta(id)); errors.Is(err, fs.ErrNotExist) {
			os.Remove(f)
		}
	}
	return res, nil
}

// LiveOverlayPath is where the overlay of a live snapshot of volume id
// lives (see LiveSnapshotPlan).
func (b *Backend) LiveOverlayPath(id string) string {
	return filepath.Join(b.opts.Dir, "volumes", id+".live-overlay.qcow2")
}

// CreateLiveOverlay makes the empty overlay file of a live snapshot of
// volume id (step 1 of LiveSnapshotPlan), encrypted like the volume, and
// returns its path.
func (b *Backend) CreateLiveOverlay(ctx context.Context, id string) (string, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	m, err := b.loadVol(id)
	if err != nil {
		return "", err
	}
	p := b.LiveOverlayPath(id)
	if _, err := os.Stat(p); err == nil {
		// Removing it could throw away guest writes that exist nowhere
		// else: an earlier live snapshot has not been merged back.
		return "", errdefs.Conflict("IncorrectState", "volume %s still has the overlay of an earlier live snapshot (%s) that is not merged back; restart labcloudd, or stop the instance, to merge it, then snapshot again", id, p)
	}
	return p, b.createFile(ctx, p, m.SizeBytes, m.Encrypted, m.KeyID, b.volPath(id))
}
