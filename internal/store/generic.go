package store

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"time"
)

// Load reads the object at key as a T, with its mod revision.
func Load[T any](ctx context.Context, s *Store, key string) (T, int64, error) {
	var v T
	rev, err := s.Get(ctx, key, &v)
	if err != nil {
		var zero T
		return zero, 0, err
	}
	return v, rev, nil
}

// ListAs reads every object under prefix as a T, sorted by key. One
// undecodable object fails the whole list, naming its key: skipping it
// would make it silently invisible.
func ListAs[T any](ctx context.Context, s *Store, prefix string) ([]T, error) {
	kvs, err := s.List(ctx, prefix)
	if err != nil {
		return nil, err
	}
	out := make([]T, 0, len(kvs))
	for _, kv := range kvs {
		var v T
		if err := kv.Decode(&v); err != nil {
			return nil, err
		}
		out = append(out, v)
	}
	return out, nil
}

// Update bounds. A conflict means another writer won the race for the same
// object; backing off a random, growing while lets a crowd of writers
// spread out instead of colliding again in lockstep. Optimistic writes are
// not fair, though: a writer that just arrived may beat one that has lost
// many times. With 32 writers hammering one key the unluckiest needed
// about 40 tries here, so the bound is far above that: 256 tries, about ten
// seconds of losing every race, means something rewrites the object in a
// loop, and Update reports it rather than spinning forever.
const (
	updateAttempts   = 256
	updateBackoffMin = time.Millisecond
	updateBackoffMax = 50 * time.Millisecond
)

// Update is a read-modify-write of the object at key that loses no
// concurrent update: it loads the object, calls fn on it, and writes the
// result only if the object has not changed since the load; if it has, it
// loads again and calls fn again (fn must therefore be free of side
// effects outside the object). It returns the object as written.
//
// An error from fn aborts without writing and is returned as it is, so
// callers can test for their own errors. A missing key gives ErrNotFound
// without calling fn; a key that keeps changing gives ErrConflict after a
// bounded number of tries.
func Update[T any](ctx context.Context, s *Store, key string, fn func(*T) error) (T, error) {
	var zero T
	for attempt := 0; attempt < updateAttempts; attempt++ {
		// A fresh T each round: decoding into the previous attempt's value
		// would merge its maps and slices into the new one.
		v, rev, err := Load[T](ctx, s, key)
		if err != nil {
			return zero, err
		}
		if err := fn(&v); err != nil {
			return zero, err
		}
		_, err = s.CompareAndSwap(ctx, key, v, rev)
		if err == nil {
			return v, nil
		}
		if !errors.Is(err, ErrConflict) {
			return zero, err
		}
		if err := sleepCtx(ctx, backoff(attempt)); err != nil {
			return zero, fmt.Errorf("updating %s: %w", key, err)
		}
	}
	return zero, fmt.Errorf("%s: %w (gave up after %d tries; something keeps rewriting it)", key, ErrConflict, updateAttempts)
}

// backoff returns a random wait in [d/2, d) where d doubles per attempt
// from updateBackoffMin up to updateBackoffMax ("equal jitter").
func backoff(attempt int) time.Duration {
	d := updateBackoffMin << min(attempt, 16)
	if d > updateBackoffMax || d <= 0 {
		d = updateBackoffMax
	}
	return d/2 + rand.N(d/2)
}

// sleepCtx waits for d or until ctx is done.
func sleepCtx(ctx context.Context, d time.Duration) error {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}
