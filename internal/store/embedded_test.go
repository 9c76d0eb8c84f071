package store_test

import (
	"bytes"
	"context"
	"errors"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/labcloud/labcloud/internal/store"
	"github.com/labcloud/labcloud/internal/store/embedded"
	"github.com/labcloud/labcloud/internal/store/storetest"
)

// startEmbedded starts an embedded etcd on dir and stops it when the test
// ends (before dir, a t.TempDir made earlier, is removed).
func startEmbedded(t *testing.T, cfg embedded.Config) *embedded.Server {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	srv, err := embedded.Start(ctx, cfg)
	if err != nil {
		t.Fatalf("embedded.Start(%s): %v", cfg.DataDir, err)
	}
	t.Cleanup(func() {
		if err := srv.Close(); err != nil {
			t.Errorf("Close: %v", err)
		}
	})
	return srv
}

func TestEmbeddedConformance(t *testing.T) {
	srv := startEmbedded(t, embedded.Config{DataDir: t.TempDir()})
	storetest.Run(t, storeFactory(dial(t, srv.Endpoints())))
}

func TestEmbeddedRestartKeepsData(t *testing.T) {
	dir := t.TempDir()
	ctx := context.Background()
	type obj struct{ V string }

	srv, err := embedded.Start(ctx, embedded.Config{DataDir: dir})
	if err != nil {
		t.Fatal(err)
	}
	cli, err := store.Dial(ctx, srv.Endpoints())
	if err != nil {
		t.Fatal(err)
	}
	rev, err := store.New(cli, "/labcloud/").Create(ctx, "regions/lab-1", obj{V: "kept"})
	if err != nil {
		t.Fatal(err)
	}
	cli.Close()
	if err := srv.Close(); err != nil {
		t.Fatalf("Close: %v", err)
	}
	if err := srv.Close(); err != nil {
		t.Errorf("second Close: %v", err)
	}

	srv = startEmbedded(t, embedded.Config{DataDir: dir})
	s := store.New(dial(t, srv.Endpoints()), "/labcloud/")
	got, gotRev, err := store.Load[obj](ctx, s, "regions/lab-1")
	if err != nil {
		t.Fatalf("after restart: %v", err)
	}
	if got.V != "kept" || gotRev != rev {
		t.Errorf("after restart: %+v at %d, want kept at %d", got, gotRev, rev)
	}
	// The restarted member keeps counting revisions where it stopped.
	newRev, err := s.Put(ctx, "regions/lab-2", obj{})
	if err != nil || newRev <= rev {
		t.Errorf("Put after restart: rev %d, %v; want > %d", newRev, err, rev)
	}
}

func TestEmbeddedSideBySide(t *testing.T) {
	ctx := context.Background()
	dirA, dirB := t.TempDir(), t.TempDir()
	a := startEmbedded(t, embedded.Config{DataDir: dirA})
	b := startEmbedded(t, embedded.Config{DataDir: dirB})
	if a.Endpoints()[0] == b.Endpoints()[0] {
		t.Fatalf("two servers share endpoint %s", a.Endpoints()[0])
	}
	sa := store.New(dial(t, a.Endpoints()), "/labcloud/")
	sb := store.New(dial(t, b.Endpoints()), "/labcloud/")
	if _, err := sa.Put(ctx, "who", "a"); err != nil {
		t.Fatal(err)
	}
	if _, err := sb.Put(ctx, "who", "b"); err != nil {
		t.Fatal(err)
	}
	for name, s := range map[string]*store.Store{"a": sa, "b": sb} {
		var got string
		if _, err := s.Get(ctx, "who", &got); err != nil || got != name {
			t.Errorf("server %s holds %q, %v; want %q", name, got, err, name)
		}
	}

	// A third server on a data dir in use is refused at once, and the one
	// running there is not disturbed.
	_, err := embedded.Start(ctx, embedded.Config{DataDir: dirA, StartTimeout: 10 * time.Second})
	if err == nil || !strings.Contains(err.Error(), "in use") {
		t.Fatalf("Start on a busy data dir: %v; want an in-use error", err)
	}
	var got string
	if _, err := sa.Get(ctx, "who", &got); err != nil || got != "a" {
		t.Errorf("first server after the refused start: %q, %v", got, err)
	}
}

func TestEmbeddedLongDataDir(t *testing.T) {
	// Deeper than a unix socket path may be.
	dir := filepath.Join(t.TempDir(), strings.Repeat("d", 60), strings.Repeat("e", 60))
	srv := startEmbedded(t, embedded.Config{DataDir: dir})
	ep := srv.Endpoints()[0]
	sock := strings.TrimPrefix(ep, "unix://")
	if len(sock) > 100 || strings.HasPrefix(sock, dir) {
		t.Fatalf("endpoint %s: want a short socket path outside the data dir", ep)
	}
	s := store.New(dial(t, srv.Endpoints()), "/labcloud/")
	if _, err := s.Put(context.Background(), "k", 1); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(filepath.Join(dir, "member")); err != nil {
		t.Errorf("data not in the data dir: %v", err)
	}
	if err := srv.Close(); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(filepath.Dir(sock)); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("socket dir %s left behind after Close (stat: %v)", filepath.Dir(sock), err)
	}
}

func TestEmbeddedLogsQuietlyToFile(t *testing.T) {
	dir := t.TempDir()
	srv := startEmbedded(t, embedded.Config{DataDir: dir})
	s := store.New(dial(t, srv.Endpoints()), "/labcloud/")
	for range 20 {
		if _, err := s.Put(context.Background(), "k", 1); err != nil {
			t.Fatal(err)
		}
	}
	if err := srv.Close(); err != nil {
		t.Fatal(err)
	}
	b, err := os.ReadFile(filepath.Join(dir, "etcd.log"))
	if err != nil {
		t.Fatalf("etcd.log: %v", err)
	}
	// A clean start, some writes and a clean stop leave nothing to read.
	if len(bytes.TrimSpace(b)) != 0 {
		t.Errorf("etcd.log after a clean run is not empty:\n%s", b)
	}
}

// recorder is an slog.Handler that keeps records for inspection.
type recorder struct {
	mu   sync.Mutex
	recs []slog.Record
}

func (r *recorder) Enabled(context.Context, slog.Level) bool { return true }
func (r *recorder) Handle(_ context.Context, rec slog.Record) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.recs = append(r.recs, rec)
	return nil
}
func (r *recorder) WithAttrs([]slog.Attr) slog.Handler { return r }
func (r *recorder) WithGroup(string) slog.Handler      { return r }

func TestEmbeddedLogsToSlog(t *testing.T) {
	var rec recorder
	srv := startEmbedded(t, embedded.Config{
		DataDir:  t.TempDir(),
		Logger:   slog.New(&rec),
		LogLevel: slog.LevelInfo,
	})
	_ = srv
	rec.mu.Lock()
	defer rec.mu.Unlock()
	if len(rec.recs) == 0 {
		t.Fatal("no etcd log records reached the slog logger at info level")
	}
	var sawMember bool
	for _, r := range rec.recs {
		if r.Level < slog.LevelInfo {
			t.Errorf("record below LogLevel: %s %q", r.Level, r.Message)
		}
		component := ""
		r.Attrs(func(a slog.Attr) bool {
			if a.Key == "component" {
				component = a.Value.String()
			}
			if a.Key == "local-member-id" || a.Key == "local-member-attributes" {
				sawMember = true
			}
			return true
		})
		if component != "etcd" {
			t.Errorf("record %q has component %q, want etcd", r.Message, component)
		}
	}
	if !sawMember {
		t.Error("no record carried etcd's structured fields (local-member-*); fields are lost in the bridge")
	}
}

func TestWatchCompacted(t *testing.T) {
	srv := startEmbedded(t, embedded.Config{DataDir: t.TempDir()})
	cli := dial(t, srv.Endpoints())
	s := store.New(cli, "/labcloud/")
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	first, err := s.Put(ctx, "w/a", 1)
	if err != nil {
		t.Fatal(err)
	}
	last, err := s.Put(ctx, "w/a", 2)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := cli.Compact(ctx, last); err != nil {
		t.Fatal(err)
	}
	select {
	case e, ok := <-s.Watch(ctx, "w/", first):
		if !ok || e.Type != store.EventError || !errors.Is(e.Err, store.ErrCompacted) {
			t.Fatalf("watch from a compacted revision: %+v (open %v); want an ErrCompacted event", e, ok)
		}
		t.Logf("compacted watch says: %v", e.Err)
	case <-ctx.Done():
		t.Fatal("no event from a watch on compacted history")
	}
}

func TestWatchReportsClosedClient(t *testing.T) {
	srv := startEmbedded(t, embedded.Config{DataDir: t.TempDir()})
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	cli, err := store.Dial(ctx, srv.Endpoints())
	if err != nil {
		t.Fatal(err)
	}
	ch := store.New(cli, "/labcloud/").Watch(ctx, "w/", 0)
	cli.Close()
	for {
		select {
		case e, ok := <-ch:
			if !ok {
				t.Fatal("watch closed silently when its client was closed")
			}
			if e.Type == store.EventError {
				return
			}
		case <-ctx.Done():
			t.Fatal("watch neither ended nor reported an error after its client was closed")
		}
	}
}

func TestDialFailsClearly(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	start := time.Now()
	_, err := store.Dial(ctx, []string{"unix://" + filepath.Join(t.TempDir(), "nothing.sock")})
	if err == nil || !strings.Contains(err.Error(), "check that etcd is running") {
		t.Fatalf("Dial to nothing: %v; want an error that says what to check", err)
	}
	if d := time.Since(start); d > 10*time.Second {
		t.Errorf("Dial to nothing took %s", d)
	}
	if _, err := store.Dial(ctx, nil); err == nil {
		t.Error("Dial with no endpoints succeeded")
	}
}
