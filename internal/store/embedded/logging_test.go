package embedded

import (
	"bytes"
	"encoding/json"
	"errors"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"go.uber.org/zap"
)

func TestCappedFileRotates(t *testing.T) {
	p := filepath.Join(t.TempDir(), "etcd.log")
	w, err := openCappedFile(p, 100)
	if err != nil {
		t.Fatal(err)
	}
	line := []byte(strings.Repeat("x", 39) + "\n") // 40 bytes
	for range 7 {
		if _, err := w.Write(line); err != nil {
			t.Fatal(err)
		}
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	// 7 lines of 40 bytes into files of at most 100: the current file has
	// the last 7 mod 2 = 1 line, the previous one 2, older ones are gone.
	for _, tc := range []struct {
		path string
		size int64
	}{{p, 40}, {p + ".1", 80}} {
		st, err := os.Stat(tc.path)
		if err != nil {
			t.Fatal(err)
		}
		if st.Size() != tc.size {
			t.Errorf("%s: %d bytes, want %d", tc.path, st.Size(), tc.size)
		}
	}
	if _, err := w.Write(line); !errors.Is(err, os.ErrClosed) {
		t.Errorf("Write after Close: %v, want ErrClosed", err)
	}

	// Reopening appends to what is there and counts it.
	w, err = openCappedFile(p, 100)
	if err != nil {
		t.Fatal(err)
	}
	defer w.Close()
	if w.size != 40 {
		t.Errorf("reopened size %d, want 40", w.size)
	}
}

func TestZapBridge(t *testing.T) {
	var buf bytes.Buffer
	var closing atomic.Bool
	h := slog.NewJSONHandler(&buf, &slog.HandlerOptions{Level: slog.LevelWarn})
	lg := newZapLogger(h, &closing).Named("raft").With(zap.String("member", "m1"))

	lg.Info("chatter")                                      // below the level
	lg.Warn("simple token is not cryptographically signed") // benign: demoted
	lg.Warn("slow fdatasync", zap.Duration("took", 2*time.Second), zap.Error(errors.New("disk")))
	closing.Store(true)
	lg.Error("mux: server closed") // shutdown noise: demoted

	lines := strings.Split(strings.TrimSpace(buf.String()), "\n")
	if len(lines) != 1 {
		t.Fatalf("got %d lines, want only the slow fdatasync warning:\n%s", len(lines), buf.String())
	}
	var rec map[string]any
	if err := json.Unmarshal([]byte(lines[0]), &rec); err != nil {
		t.Fatal(err)
	}
	want := map[string]any{
		"level": "WARN", "msg": "slow fdatasync", "component": "etcd",
		"logger": "raft", "member": "m1", "error": "disk",
		// slog keeps the duration typed; its JSON handler writes nanoseconds.
		"took": float64(2 * time.Second),
	}
	for k, v := range want {
		if rec[k] != v {
			t.Errorf("%s = %v, want %v (record %s)", k, rec[k], v, lines[0])
		}
	}
}
