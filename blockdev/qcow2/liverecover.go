package qcow2

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"

	"github.com/labcloud/labcloud/internal/errdefs"
)

// liveOverlaySuffix ends the file name of a live-snapshot overlay
// (LiveOverlayPath).
const liveOverlaySuffix = ".live-overlay.qcow2"

// LiveOverlays lists the volumes that have a live-snapshot overlay file:
// a live snapshot is under way, or one was cut short by a crash and its
// overlay still holds guest writes that belong in the volume (see
// LiveSnapshotPlan).
func (b *Backend) LiveOverlays() ([]string, error) {
	files, err := filepath.Glob(filepath.Join(b.opts.Dir, "volumes", "*"+liveOverlaySuffix))
	if err != nil {
		return nil, err
	}
	ids := make([]string, 0, len(files))
	for _, f := range files {
		ids = append(ids, strings.TrimSuffix(filepath.Base(f), liveOverlaySuffix))
	}
	return ids, nil
}

// MergeLiveOverlay writes the overlay of an interrupted live snapshot of
// volume id back into the volume (qemu-img commit) and removes it. Only
// for an overlay that no VM has open: the VM that wrote it has stopped
// or crashed since, and what the guest wrote after the freeze is only in
// the overlay. An overlay a running VM still uses is merged by QEMU
// instead (LiveSnapshotPlan step 4). A missing overlay is not an error.
func (b *Backend) MergeLiveOverlay(ctx context.Context, id string) error {
	b.mu.Lock()
	defer b.mu.Unlock()
	p := b.LiveOverlayPath(id)
	if _, err := os.Stat(p); errors.Is(err, fs.ErrNotExist) {
		return nil
	}
	m, err := b.loadVol(id)
	if errdefs.Is(err, errdefs.ClassNotFound) {
		// The volume is gone: nothing to merge into.
		return os.Remove(p)
	}
	if err != nil {
		return err
	}
	vol, err := b.volChain(m)
	if err != nil {
		return err
	}
	// The overlay is encrypted like its volume and backed by the volume
	// file (CreateLiveOverlay), so its chain is the volume's, one layer up.
	ov := image{Path: p, Encrypted: append([]bool{m.Encrypted}, vol.Encrypted...), KeyFile: vol.KeyFile}
	if _, err := b.run(ctx, commitArgs(ov)); err != nil {
		return fmt.Errorf("merging the live-snapshot overlay of %s into the volume: %w", id, err)
	}
	if err := os.Remove(p); err != nil {
		return err
	}
	return syncDir(filepath.Dir(p))
}
