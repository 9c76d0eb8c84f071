package store

import (
	"context"
	"errors"
	"fmt"

	"go.etcd.io/etcd/api/v3/mvccpb"
	clientv3 "go.etcd.io/etcd/client/v3"
)

// EventType says what happened to a key.
type EventType int

// The kinds of Event. EventError is always the last event of a watch.
const (
	// EventPut: the key was created or overwritten; KV holds the new value.
	EventPut EventType = iota + 1
	// EventDelete: the key was removed; KV.Value is nil and
	// KV.ModRevision is the revision of the delete.
	EventDelete
	// EventError: the watch ended for a reason other than its context;
	// Err says why. Start again from a fresh ListRev.
	EventError
)

// String returns "put", "delete" or "error", for logs and test failures.
func (t EventType) String() string {
	switch t {
	case EventPut:
		return "put"
	case EventDelete:
		return "delete"
	case EventError:
		return "error"
	}
	return fmt.Sprintf("EventType(%d)", int(t))
}

// Event is one change seen by Watch.
type Event struct {
	Type EventType
	KV
	// Err is set only on an EventError. errors.Is(Err, ErrCompacted)
	// when the start revision is no longer in etcd's history.
	Err error
}

// watchBuffer lets the watch goroutine run a little ahead of a slow
// consumer, so that one slow reconcile step does not stall the etcd stream
// (which is shared with other watches on the same client).
const watchBuffer = 64

// Watch streams every change to keys starting with prefix, in revision
// order, until ctx is done; then the channel closes.
//
// fromRev 0 starts with the first change after the watch is set up, which
// happens asynchronously: a write made right after Watch returns may or may
// not be seen. To miss nothing, pass the revision of a known state plus
// one, typically ListRev's revision + 1; a fromRev in the past replays
// every change since then, including ones already gone from the key space.
//
// etcd forgets history older than its compaction point (the embedded server
// keeps an hour). A fromRev older than that yields a single EventError with
// ErrCompacted, naming the oldest revision still available, and the
// channel closes: the caller must ListRev again and watch from there, as
// events in between are lost for good. If the connection drops, the client
// reconnects and resumes on its own, without gaps or repeats; an EventError
// is sent only when that cannot happen (compaction, the server cancelling
// the watch, the client being closed).
func (s *Store) Watch(ctx context.Context, prefix string, fromRev int64) <-chan Event {
	out := make(chan Event, watchBuffer)
	from, end := s.prefixRange(prefix)
	opts := []clientv3.OpOption{clientv3.WithRange(end)}
	if fromRev > 0 {
		opts = append(opts, clientv3.WithRev(fromRev))
	}
	// Our own cancel, so that returning early (on an error) also ends the
	// etcd watch rather than leaving it streaming into nothing.
	wctx, cancel := context.WithCancel(ctx)
	wch := s.cli.Watch(wctx, from, opts...)

	go func() {
		defer close(out)
		defer cancel()
		send := func(e Event) bool {
			select {
			case out <- e:
				return true
			case <-ctx.Done():
				return false
			}
		}
		for resp := range wch {
			if err := resp.Err(); err != nil {
				if ctx.Err() != nil {
					return // our own cancellation, not a failure
				}
				if resp.CompactRevision != 0 {
					err = fmt.Errorf("watching %s from revision %d: %w; the oldest revision left is %d, list again and watch from there",
						prefix, fromRev, ErrCompacted, resp.CompactRevision)
				} else {
					err = fmt.Errorf("watching %s: %w", prefix, err)
				}
				send(Event{Type: EventError, Err: err})
				return
			}
			for _, ev := range resp.Events {
				e := Event{KV: KV{Key: s.rel(ev.Kv.Key), ModRevision: ev.Kv.ModRevision}}
				switch ev.Type {
				case mvccpb.PUT:
					e.Type = EventPut
					e.Value = ev.Kv.Value
				case mvccpb.DELETE:
					e.Type = EventDelete
				}
				if !send(e) {
					return
				}
			}
		}
		// The etcd channel closed without an error: either ctx is done
		// (the normal end) or the client was closed under us, which the
		// consumer must hear about rather than wait forever.
		if ctx.Err() == nil {
			send(Event{Type: EventError, Err: fmt.Errorf("watching %s: %w", prefix, errWatchClosed)})
		}
	}()
	return out
}

// errWatchClosed reports a watch that etcd's client ended by itself,
// normally because the client was closed.
var errWatchClosed = errors.New("watch closed by the etcd client (was the client closed?)")
