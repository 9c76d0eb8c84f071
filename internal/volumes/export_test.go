package volumes

import (
	"context"

	"github.com/labcloud/labcloud/internal/store"
)

// ForceState overwrites a snapshot record's state, for tests that
// simulate a crash.
func (s *Service) ForceState(ctx context.Context, acct, snapID, state string) error {
	_, err := store.Update(ctx, s.opts.Store, snapKey(acct, snapID), func(x *Snapshot) error {
		x.State = state
		return nil
	})
	return err
}

// ForceVolumeState overwrites a volume record's state, for tests that
// simulate a crash.
func (s *Service) ForceVolumeState(ctx context.Context, acct, volID, state string) error {
	_, err := store.Update(ctx, s.opts.Store, volKey(acct, volID), func(x *Volume) error {
		x.State = state
		return nil
	})
	return err
}
