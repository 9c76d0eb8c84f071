// Package storetest is the conformance suite for package store: the one set
// of behaviours labcloud relies on, run against every etcd it may talk to
// (the embedded server, a real external etcd binary), so that a difference
// between them shows up as a failing test rather than a lost update.
package storetest

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/labcloud/labcloud/internal/store"
)

// Run runs the suite. newStore must return an empty Store of its own for
// each call (typically a fresh prefix on a shared server), so subtests
// cannot see each other's keys; Run calls it at least once per subtest.
func Run(t *testing.T, newStore func(t *testing.T) *store.Store) {
	tests := []struct {
		name string
		fn   func(t *testing.T, newStore func(t *testing.T) *store.Store)
	}{
		{"PutGet", testPutGet},
		{"GetNotFound", testGetNotFound},
		{"Create", testCreate},
		{"Delete", testDelete},
		{"ListByPrefix", testListByPrefix},
		{"ListIsolatesStores", testListIsolatesStores},
		{"ListPages", testListPages},
		{"CompareAndSwap", testCompareAndSwap},
		{"DeleteIf", testDeleteIf},
		{"TxnAllOrNothing", testTxnAllOrNothing},
		{"TxnMixed", testTxnMixed},
		{"LoadListAs", testLoadListAs},
		{"UpdateAbortsOnError", testUpdateAbortsOnError},
		{"UpdateNotFound", testUpdateNotFound},
		{"UpdateConcurrent", testUpdateConcurrent},
		{"WatchPutsAndDeletes", testWatchPutsAndDeletes},
		{"WatchReplaysFromRevision", testWatchReplaysFromRevision},
		{"WatchAfterListRev", testWatchAfterListRev},
		{"WatchClosesOnCancel", testWatchClosesOnCancel},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			tc.fn(t, newStore)
		})
	}
}

// item is the object the suite stores: a struct with a map, because maps are
// where careless decoding (into a reused value) goes wrong.
type item struct {
	Name string            `json:"name"`
	N    int               `json:"n"`
	Tags map[string]string `json:"tags,omitempty"`
}

// ctxFor returns a context that ends with the test and at most a minute
// after it starts, so a hung etcd fails the test instead of the binary.
func ctxFor(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	t.Cleanup(cancel)
	return ctx
}

// wantErr fails unless err wraps target and its message names key.
func wantErr(t *testing.T, what string, err, target error, key string) {
	t.Helper()
	if !errors.Is(err, target) {
		t.Fatalf("%s: got error %v, want %v", what, err, target)
	}
	if !strings.Contains(err.Error(), key) {
		t.Errorf("%s: error %q does not name the key %q", what, err, key)
	}
}

func mustPut(t *testing.T, ctx context.Context, s *store.Store, key string, v any) int64 {
	t.Helper()
	rev, err := s.Put(ctx, key, v)
	if err != nil {
		t.Fatalf("Put %s: %v", key, err)
	}
	return rev
}

func keys(kvs []store.KV) []string {
	out := make([]string, len(kvs))
	for i, kv := range kvs {
		out[i] = kv.Key
	}
	return out
}

func testPutGet(t *testing.T, newStore func(t *testing.T) *store.Store) {
	ctx, s := ctxFor(t), newStore(t)
	in := item{Name: "a", N: 1, Tags: map[string]string{"k": "v"}}
	rev1 := mustPut(t, ctx, s, "items/a", in)
	if rev1 <= 0 {
		t.Fatalf("Put returned revision %d, want > 0", rev1)
	}
	var got item
	rev, err := s.Get(ctx, "items/a", &got)
	if err != nil {
		t.Fatalf("Get: %v", err)
	}
	if rev != rev1 {
		t.Errorf("Get revision %d, want Put's %d", rev, rev1)
	}
	if got.Name != "a" || got.N != 1 || got.Tags["k"] != "v" {
		t.Errorf("Get = %+v, want %+v", got, in)
	}

	rev2 := mustPut(t, ctx, s, "items/a", item{Name: "a", N: 2})
	if rev2 <= rev1 {
		t.Errorf("second Put revision %d not after first %d", rev2, rev1)
	}
	// Get with nil v only reports existence and revision.
	if rev, err := s.Get(ctx, "items/a", nil); err != nil || rev != rev2 {
		t.Errorf("Get(nil) = %d, %v; want %d, nil", rev, err, rev2)
	}
	got = item{}
	if _, err := s.Get(ctx, "items/a", &got); err != nil || got.N != 2 || got.Tags != nil {
		t.Errorf("after overwrite Get = %+v, %v; want N=2 and no tags", got, err)
	}

	if _, err := s.Put(ctx, "", item{}); err == nil {
		t.Error("Put with empty key succeeded; want an error")
	}
	if _, err := s.Put(ctx, "items/bad", func() {}); err == nil {
		t.Error("Put of an unencodable value succeeded; want an error")
	}
}

func testGetNotFound(t *testing.T, newStore func(t *testing.T) *store.Store) {
	ctx, s := ctxFor(t), newStore(t)
	var got item
	_, err := s.Get(ctx, "items/missing", &got)
	wantErr(t, "Get missing", err, store.ErrNotFound, "items/missing")
}

func testCreate(t *testing.T, newStore func(t *testing.T) *store.Store) {
	ctx, s := ctxFor(t), newStore(t)
	rev, err := s.Create(ctx, "items/c", item{Name: "first"})
	if err != nil {
		t.Fatalf("Create: %v", err)
	}
	_, err = s.Create(ctx, "items/c", item{Name: "second"})
	wantErr(t, "second Create", err, store.ErrExists, "items/c")

	var got item
	if r, err := s.Get(ctx, "items/c", &got); err != nil || r != rev || got.Name != "first" {
		t.Errorf("after failed Create: Get = %+v rev %d, %v; want first at %d", got, r, err, rev)
	}
	// A deleted key can be created again.
	if err := s.Delete(ctx, "items/c"); err != nil {
		t.Fatalf("Delete: %v", err)
	}
	if _, err := s.Create(ctx, "items/c", item{Name: "third"}); err != nil {
		t.Errorf("Create after Delete: %v", err)
	}
}

func testDelete(t *testing.T, newStore func(t *testing.T) *store.Store) {
	ctx, s := ctxFor(t), newStore(t)
	mustPut(t, ctx, s, "items/d", item{Name: "d"})
	if err := s.Delete(ctx, "items/d"); err != nil {
		t.Fatalf("Delete: %v", err)
	}
	_, err := s.Get(ctx, "items/d", nil)
	wantErr(t, "Get after Delete", err, store.ErrNotFound, "items/d")
	wantErr(t, "second Delete", s.Delete(ctx, "items/d"), store.ErrNotFound, "items/d")
}

func testListByPrefix(t *testing.T, newStore func(t *testing.T) *store.Store) {
	ctx, s := ctxFor(t), newStore(t)
	// Written out of order, with neighbours that share a textual prefix.
	for _, k := range []string{"ab/1", "a/2", "b/1", "a/1", "a", "a/sub/1", "ab"} {
		mustPut(t, ctx, s, k, item{Name: k})
	}
	for _, tc := range []struct {
		prefix string
		want   []string
	}{
		{"a/", []string{"a/1", "a/2", "a/sub/1"}},
		{"ab/", []string{"ab/1"}},
		{"a/sub/", []string{"a/sub/1"}},
		{"c/", nil},
		{"", []string{"a", "a/1", "a/2", "a/sub/1", "ab", "ab/1", "b/1"}},
	} {
		kvs, err := s.List(ctx, tc.prefix)
		if err != nil {
			t.Fatalf("List(%q): %v", tc.prefix, err)
		}
		if got := keys(kvs); !slices.Equal(got, tc.want) {
			t.Errorf("List(%q) = %q, want %q", tc.prefix, got, tc.want)
		}
		for _, kv := range kvs {
			var it item
			if err := kv.Decode(&it); err != nil || it.Name != kv.Key || kv.ModRevision <= 0 {
				t.Errorf("List(%q) entry %s: %+v rev %d err %v", tc.prefix, kv.Key, it, kv.ModRevision, err)
			}
		}
	}
}

func testListIsolatesStores(t *testing.T, newStore func(t *testing.T) *store.Store) {
	ctx, s1, s2 := ctxFor(t), newStore(t), newStore(t)
	mustPut(t, ctx, s1, "items/one", item{Name: "one"})
	mustPut(t, ctx, s2, "items/two", item{Name: "two"})
	for _, tc := range []struct {
		s    *store.Store
		want string
	}{{s1, "items/one"}, {s2, "items/two"}} {
		kvs, err := tc.s.List(ctx, "")
		if err != nil {
			t.Fatalf("List: %v", err)
		}
		if got := keys(kvs); !slices.Equal(got, []string{tc.want}) {
			t.Errorf("List of one store = %q, want only %q", got, tc.want)
		}
	}
	_, err := s1.Get(ctx, "items/two", nil)
	wantErr(t, "Get of another store's key", err, store.ErrNotFound, "items/two")
}

func testListPages(t *testing.T, newStore func(t *testing.T) *store.Store) {
	ctx, s := ctxFor(t), newStore(t)
	// More than two of the Store's pages, written 100 keys per transaction
	// to keep the test quick.
	const n = 1234
	var want []string
	for i := 0; i < n; i += 100 {
		var ops []store.Op
		for j := i; j < min(i+100, n); j++ {
			k := fmt.Sprintf("many/%05d", j)
			want = append(want, k)
			ops = append(ops, store.OpPut(k, item{N: j}))
		}
		if _, err := s.Txn(ctx, ops...); err != nil {
			t.Fatalf("Txn: %v", err)
		}
	}
	mustPut(t, ctx, s, "many0", item{}) // just past the folder's range
	kvs, rev, err := s.ListRev(ctx, "many/")
	if err != nil {
		t.Fatalf("ListRev: %v", err)
	}
	if got := keys(kvs); !slices.Equal(got, want) {
		t.Fatalf("ListRev returned %d keys (first %q), want %d in order", len(got), got[:min(3, len(got))], n)
	}
	for _, kv := range kvs {
		if kv.ModRevision > rev {
			t.Fatalf("%s has revision %d, after the listing's %d", kv.Key, kv.ModRevision, rev)
		}
	}
}

func testCompareAndSwap(t *testing.T, newStore func(t *testing.T) *store.Store) {
	ctx, s := ctxFor(t), newStore(t)
	rev1 := mustPut(t, ctx, s, "items/x", item{N: 1})
	rev2, err := s.CompareAndSwap(ctx, "items/x", item{N: 2}, rev1)
	if err != nil {
		t.Fatalf("CompareAndSwap at current revision: %v", err)
	}
	if rev2 <= rev1 {
		t.Errorf("CompareAndSwap revision %d not after %d", rev2, rev1)
	}
	_, err = s.CompareAndSwap(ctx, "items/x", item{N: 3}, rev1)
	wantErr(t, "CompareAndSwap at stale revision", err, store.ErrConflict, "items/x")
	var got item
	if r, err := s.Get(ctx, "items/x", &got); err != nil || got.N != 2 || r != rev2 {
		t.Errorf("after failed swap: %+v rev %d, %v; want N=2 at %d", got, r, err, rev2)
	}

	// Revision 0 means "only if absent".
	if _, err := s.CompareAndSwap(ctx, "items/new", item{N: 1}, 0); err != nil {
		t.Errorf("CompareAndSwap(0) on absent key: %v", err)
	}
	_, err = s.CompareAndSwap(ctx, "items/new", item{N: 2}, 0)
	wantErr(t, "CompareAndSwap(0) on present key", err, store.ErrConflict, "items/new")

	// A deleted key is a conflict too: what was read is gone.
	if err := s.Delete(ctx, "items/x"); err != nil {
		t.Fatal(err)
	}
	_, err = s.CompareAndSwap(ctx, "items/x", item{N: 4}, rev2)
	wantErr(t, "CompareAndSwap on deleted key", err, store.ErrConflict, "items/x")
}

func testDeleteIf(t *testing.T, newStore func(t *testing.T) *store.Store) {
	ctx, s := ctxFor(t), newStore(t)
	rev1 := mustPut(t, ctx, s, "items/y", item{N: 1})
	rev2 := mustPut(t, ctx, s, "items/y", item{N: 2})
	wantErr(t, "DeleteIf at stale revision", s.DeleteIf(ctx, "items/y", rev1), store.ErrConflict, "items/y")
	if _, err := s.Get(ctx, "items/y", nil); err != nil {
		t.Fatalf("key gone after a failed DeleteIf: %v", err)
	}
	if err := s.DeleteIf(ctx, "items/y", rev2); err != nil {
		t.Fatalf("DeleteIf at current revision: %v", err)
	}
	_, err := s.Get(ctx, "items/y", nil)
	wantErr(t, "Get after DeleteIf", err, store.ErrNotFound, "items/y")
	wantErr(t, "DeleteIf(0) on absent key", s.DeleteIf(ctx, "items/y", 0), store.ErrNotFound, "items/y")
}

func testTxnAllOrNothing(t *testing.T, newStore func(t *testing.T) *store.Store) {
	ctx, s := ctxFor(t), newStore(t)
	// The case the Txn exists for: an account and its access key appear
	// together or not at all.
	rev, err := s.Txn(ctx,
		store.OpCreate("accounts/111", item{Name: "acct"}),
		store.OpCreate("accesskeys/AKIA1", item{Name: "key"}),
	)
	if err != nil {
		t.Fatalf("Txn creating two keys: %v", err)
	}
	for _, k := range []string{"accounts/111", "accesskeys/AKIA1"} {
		if r, err := s.Get(ctx, k, nil); err != nil || r != rev {
			t.Errorf("Get %s = rev %d, %v; want rev %d (one revision for the whole Txn)", k, r, err, rev)
		}
	}

	// The second create collides, so the first must not happen either.
	_, err = s.Txn(ctx,
		store.OpCreate("accounts/222", item{Name: "acct2"}),
		store.OpCreate("accesskeys/AKIA1", item{Name: "dup"}),
	)
	wantErr(t, "Txn with one colliding create", err, store.ErrExists, "accesskeys/AKIA1")
	_, err = s.Get(ctx, "accounts/222", nil)
	wantErr(t, "Get of the other half of a failed Txn", err, store.ErrNotFound, "accounts/222")

	if _, err := s.Txn(ctx); err == nil {
		t.Error("empty Txn succeeded; want an error")
	}
	if _, err := s.Txn(ctx, store.OpPut("k", 1), store.OpDelete("k")); err == nil {
		t.Error("Txn naming one key twice succeeded; want an error")
	}
}

func testTxnMixed(t *testing.T, newStore func(t *testing.T) *store.Store) {
	ctx, s := ctxFor(t), newStore(t)
	revA := mustPut(t, ctx, s, "m/a", item{N: 1})
	mustPut(t, ctx, s, "m/b", item{N: 1})
	revC := mustPut(t, ctx, s, "m/c", item{N: 1})

	// Every kind of op at once, all conditions true.
	if _, err := s.Txn(ctx,
		store.OpCompareAndSwap("m/a", item{N: 2}, revA),
		store.OpDelete("m/b"),
		store.OpDeleteIf("m/c", revC),
		store.OpPut("m/d", item{N: 1}),
		store.OpCreate("m/e", item{N: 1}),
	); err != nil {
		t.Fatalf("mixed Txn: %v", err)
	}
	kvs, err := s.List(ctx, "m/")
	if err != nil {
		t.Fatal(err)
	}
	if got := keys(kvs); !slices.Equal(got, []string{"m/a", "m/d", "m/e"}) {
		t.Errorf("after mixed Txn keys = %q, want m/a m/d m/e", got)
	}

	// Each failing condition is reported as the single-key method would.
	_, err = s.Txn(ctx, store.OpPut("m/z", item{}), store.OpCompareAndSwap("m/a", item{N: 3}, revA))
	wantErr(t, "Txn with stale swap", err, store.ErrConflict, "m/a")
	_, err = s.Txn(ctx, store.OpPut("m/z", item{}), store.OpDelete("m/b"))
	wantErr(t, "Txn deleting an absent key", err, store.ErrNotFound, "m/b")
	_, err = s.Txn(ctx, store.OpPut("m/z", item{}), store.OpDeleteIf("m/d", revA))
	wantErr(t, "Txn with stale DeleteIf", err, store.ErrConflict, "m/d")
	if _, err := s.Get(ctx, "m/z", nil); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("a failed Txn wrote m/z (Get: %v)", err)
	}
}

func testLoadListAs(t *testing.T, newStore func(t *testing.T) *store.Store) {
	ctx, s := ctxFor(t), newStore(t)
	rev := mustPut(t, ctx, s, "items/1", item{Name: "one", N: 1})
	mustPut(t, ctx, s, "items/2", item{Name: "two", N: 2})

	got, r, err := store.Load[item](ctx, s, "items/1")
	if err != nil || got.Name != "one" || r != rev {
		t.Errorf("Load = %+v rev %d, %v; want one at %d", got, r, err, rev)
	}
	_, _, err = store.Load[item](ctx, s, "items/3")
	wantErr(t, "Load missing", err, store.ErrNotFound, "items/3")

	all, err := store.ListAs[item](ctx, s, "items/")
	if err != nil {
		t.Fatalf("ListAs: %v", err)
	}
	if len(all) != 2 || all[0].Name != "one" || all[1].Name != "two" {
		t.Errorf("ListAs = %+v, want one, two", all)
	}

	// An object of the wrong shape fails the list and names its key.
	mustPut(t, ctx, s, "items/9", "not an object")
	_, err = store.ListAs[item](ctx, s, "items/")
	if err == nil || !strings.Contains(err.Error(), "items/9") {
		t.Errorf("ListAs over a malformed object: %v; want an error naming items/9", err)
	}
}

func testUpdateAbortsOnError(t *testing.T, newStore func(t *testing.T) *store.Store) {
	ctx, s := ctxFor(t), newStore(t)
	rev := mustPut(t, ctx, s, "items/u", item{N: 1, Tags: map[string]string{"keep": "1"}})
	errStop := errors.New("stop")
	_, err := store.Update(ctx, s, "items/u", func(it *item) error {
		it.N = 99
		return errStop
	})
	if !errors.Is(err, errStop) {
		t.Fatalf("Update with failing fn: %v, want the fn's error", err)
	}
	got, r, err := store.Load[item](ctx, s, "items/u")
	if err != nil || got.N != 1 || r != rev {
		t.Errorf("after aborted Update: %+v rev %d, %v; want unchanged N=1 at %d", got, r, err, rev)
	}

	// A successful Update returns what it wrote, and a map emptied by fn
	// stays empty (no merging with what was read before).
	out, err := store.Update(ctx, s, "items/u", func(it *item) error {
		it.N++
		delete(it.Tags, "keep")
		return nil
	})
	if err != nil || out.N != 2 || len(out.Tags) != 0 {
		t.Fatalf("Update = %+v, %v; want N=2, no tags", out, err)
	}
	got, _, err = store.Load[item](ctx, s, "items/u")
	if err != nil || got.N != 2 || len(got.Tags) != 0 {
		t.Errorf("stored after Update: %+v, %v; want N=2, no tags", got, err)
	}
}

func testUpdateNotFound(t *testing.T, newStore func(t *testing.T) *store.Store) {
	ctx, s := ctxFor(t), newStore(t)
	called := false
	_, err := store.Update(ctx, s, "items/none", func(*item) error { called = true; return nil })
	wantErr(t, "Update of a missing key", err, store.ErrNotFound, "items/none")
	if called {
		t.Error("Update called fn for a missing key")
	}
}

// testUpdateConcurrent is the lost-update test: many writers increment one
// counter through Update; every increment must survive.
func testUpdateConcurrent(t *testing.T, newStore func(t *testing.T) *store.Store) {
	const (
		writers    = 32
		increments = 25
	)
	ctx, s := ctxFor(t), newStore(t)
	mustPut(t, ctx, s, "counter", item{})

	var wg sync.WaitGroup
	errs := make(chan error, writers)
	for w := range writers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for range increments {
				if _, err := store.Update(ctx, s, "counter", func(it *item) error {
					it.N++
					return nil
				}); err != nil {
					errs <- fmt.Errorf("writer %d: %w", w, err)
					return
				}
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	got, _, err := store.Load[item](ctx, s, "counter")
	if err != nil {
		t.Fatal(err)
	}
	if got.N != writers*increments {
		t.Errorf("counter = %d after %d×%d increments, want %d", got.N, writers, increments, writers*increments)
	}
}

// collect reads n events from ch, failing the test if they do not come
// within the deadline or the channel closes early.
func collect(t *testing.T, ch <-chan store.Event, n int) []store.Event {
	t.Helper()
	deadline := time.NewTimer(30 * time.Second)
	defer deadline.Stop()
	var out []store.Event
	for len(out) < n {
		select {
		case e, ok := <-ch:
			if !ok {
				t.Fatalf("watch closed after %d of %d events", len(out), n)
			}
			if e.Type == store.EventError {
				t.Fatalf("watch error after %d of %d events: %v", len(out), n, e.Err)
			}
			out = append(out, e)
		case <-deadline.C:
			t.Fatalf("got %d of %d events before the deadline", len(out), n)
		}
	}
	return out
}

// wantEvent describes an expected event.
type wantEvent struct {
	typ store.EventType
	key string
	n   int // the item's N for puts
	rev int64
}

func checkEvents(t *testing.T, got []store.Event, want []wantEvent) {
	t.Helper()
	for i, w := range want {
		e := got[i]
		if e.Type != w.typ || e.Key != w.key || e.ModRevision != w.rev {
			t.Errorf("event %d = %s %s @%d, want %s %s @%d", i, e.Type, e.Key, e.ModRevision, w.typ, w.key, w.rev)
			continue
		}
		if w.typ == store.EventDelete {
			if e.Value != nil {
				t.Errorf("event %d: delete carries value %q", i, e.Value)
			}
			continue
		}
		var it item
		if err := e.Decode(&it); err != nil || it.N != w.n {
			t.Errorf("event %d: value %+v (%v), want N=%d", i, it, err, w.n)
		}
	}
}

// writeHistory makes a sequence of changes under w/, with noise in a
// neighbouring folder that a watch on w/ must not report.
func writeHistory(t *testing.T, ctx context.Context, s *store.Store) []wantEvent {
	t.Helper()
	var want []wantEvent
	put := func(k string, n int) {
		rev := mustPut(t, ctx, s, k, item{N: n})
		if strings.HasPrefix(k, "w/") {
			want = append(want, wantEvent{store.EventPut, k, n, rev})
		}
	}
	put("w/a", 1)
	put("wx/noise", 1)
	put("w/b", 2)
	put("w/a", 3)
	// Txn, unlike Delete, reports the revision of the delete.
	rev, err := s.Txn(ctx, store.OpDelete("w/b"))
	if err != nil {
		t.Fatal(err)
	}
	want = append(want, wantEvent{store.EventDelete, "w/b", 0, rev})
	put("w/c", 4)
	return want
}

func testWatchPutsAndDeletes(t *testing.T, newStore func(t *testing.T) *store.Store) {
	ctx, s := ctxFor(t), newStore(t)
	start := mustPut(t, ctx, s, "start", item{})
	wctx, cancel := context.WithCancel(ctx)
	defer cancel()
	// Watching from the revision after a known write misses nothing,
	// however long the watch takes to be set up.
	ch := s.Watch(wctx, "w/", start+1)
	want := writeHistory(t, ctx, s)
	checkEvents(t, collect(t, ch, len(want)), want)
}

func testWatchReplaysFromRevision(t *testing.T, newStore func(t *testing.T) *store.Store) {
	ctx, s := ctxFor(t), newStore(t)
	want := writeHistory(t, ctx, s)
	// All of it happened before the watch; it is replayed in order, and
	// starting at the third change skips the first two.
	wctx, cancel := context.WithCancel(ctx)
	defer cancel()
	checkEvents(t, collect(t, s.Watch(wctx, "w/", want[0].rev), len(want)), want)
	checkEvents(t, collect(t, s.Watch(wctx, "w/", want[2].rev), len(want)-2), want[2:])
}

func testWatchAfterListRev(t *testing.T, newStore func(t *testing.T) *store.Store) {
	ctx, s := ctxFor(t), newStore(t)
	mustPut(t, ctx, s, "w/old", item{N: 1})
	kvs, rev, err := s.ListRev(ctx, "w/")
	if err != nil || len(kvs) != 1 {
		t.Fatalf("ListRev = %d entries, %v", len(kvs), err)
	}
	wctx, cancel := context.WithCancel(ctx)
	defer cancel()
	ch := s.Watch(wctx, "w/", rev+1)
	newRev := mustPut(t, ctx, s, "w/new", item{N: 2})
	// The listed object is not repeated; only the change after it comes.
	checkEvents(t, collect(t, ch, 1), []wantEvent{{store.EventPut, "w/new", 2, newRev}})
}

func testWatchClosesOnCancel(t *testing.T, newStore func(t *testing.T) *store.Store) {
	ctx, s := ctxFor(t), newStore(t)
	wctx, cancel := context.WithCancel(ctx)
	ch := s.Watch(wctx, "w/", 0)
	cancel()
	deadline := time.NewTimer(30 * time.Second)
	defer deadline.Stop()
	for {
		select {
		case e, ok := <-ch:
			if !ok {
				return
			}
			if e.Type == store.EventError {
				t.Fatalf("cancelled watch reported an error: %v", e.Err)
			}
		case <-deadline.C:
			t.Fatal("watch channel still open 30s after its context was cancelled")
		}
	}
}
