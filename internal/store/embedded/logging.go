package embedded

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"os"
	"sort"
	"sync"
	"sync/atomic"

	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"
)

// etcd logs through zap; labcloud logs through slog. Rather than run two
// logging stacks with two configurations, etcd's zap logger is given a core
// that forwards every entry to an slog.Handler. The handler decides the level,
// so the daemon's -log-level style setting and etcd's noise filter are one knob.

// slogCore is a zapcore.Core that hands entries to an slog.Handler.
type slogCore struct {
	h       slog.Handler
	closing *atomic.Bool // set by Server.Close
	attrs   []slog.Attr  // fields added with With, already converted
}

// newZapLogger returns a zap logger whose output goes to h. Entries below
// h's level are dropped before any field is encoded, so a quiet handler costs
// etcd next to nothing. Once closing is set, every entry is demoted to debug:
// etcd reports its own orderly shutdown as a series of errors ("mux: server
// closed", "use of closed network connection") that would otherwise end
// every daemon log with false alarms.
func newZapLogger(h slog.Handler, closing *atomic.Bool) *zap.Logger {
	return zap.New(&slogCore{h: h, closing: closing})
}

// benign lists warnings etcd gives on every start of a configuration like
// ours; they are demoted to debug so that a warning in the log means
// something. If etcd rewords them they simply show up again.
var benign = map[string]bool{
	// We serve gRPC and the few HTTP endpoints on the one client socket.
	"Running http and grpc server on single port. This is not recommended for production.": true,
	// Auth is off; the token provider is created anyway.
	"simple token is not cryptographically signed": true,
}

// level maps an entry to the slog level it is logged at.
func (c *slogCore) level(e zapcore.Entry) slog.Level {
	if c.closing.Load() || benign[e.Message] {
		return slog.LevelDebug
	}
	return zapToSlogLevel(e.Level)
}

func zapToSlogLevel(l zapcore.Level) slog.Level {
	switch {
	case l <= zapcore.DebugLevel:
		return slog.LevelDebug
	case l == zapcore.InfoLevel:
		return slog.LevelInfo
	case l == zapcore.WarnLevel:
		return slog.LevelWarn
	default: // error, dpanic, panic, fatal
		return slog.LevelError
	}
}

func (c *slogCore) Enabled(l zapcore.Level) bool {
	return c.h.Enabled(context.Background(), zapToSlogLevel(l))
}

func (c *slogCore) With(fields []zapcore.Field) zapcore.Core {
	attrs := make([]slog.Attr, 0, len(c.attrs)+len(fields))
	attrs = append(attrs, c.attrs...)
	attrs = append(attrs, fieldsToAttrs(fields)...)
	return &slogCore{h: c.h, closing: c.closing, attrs: attrs}
}

func (c *slogCore) Check(e zapcore.Entry, ce *zapcore.CheckedEntry) *zapcore.CheckedEntry {
	if c.h.Enabled(context.Background(), c.level(e)) {
		return ce.AddCore(e, c)
	}
	return ce
}

func (c *slogCore) Write(e zapcore.Entry, fields []zapcore.Field) error {
	r := slog.NewRecord(e.Time, c.level(e), e.Message, 0)
	r.AddAttrs(slog.String("component", "etcd"))
	if e.LoggerName != "" {
		r.AddAttrs(slog.String("logger", e.LoggerName))
	}
	r.AddAttrs(c.attrs...)
	r.AddAttrs(fieldsToAttrs(fields)...)
	return c.h.Handle(context.Background(), r)
}

func (c *slogCore) Sync() error { return nil }

// fieldsToAttrs encodes zap fields with zap's own in-memory encoder (which
// knows every field type, including errors and durations) and turns the
// result into slog attributes in a stable order.
func fieldsToAttrs(fields []zapcore.Field) []slog.Attr {
	if len(fields) == 0 {
		return nil
	}
	enc := zapcore.NewMapObjectEncoder()
	for _, f := range fields {
		f.AddTo(enc)
	}
	keys := make([]string, 0, len(enc.Fields))
	for k := range enc.Fields {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	attrs := make([]slog.Attr, 0, len(keys))
	for _, k := range keys {
		attrs = append(attrs, slog.Any(k, enc.Fields[k]))
	}
	return attrs
}

// logFileMax bounds etcd.log; one previous file (etcd.log.1) is kept, so the
// log never takes more than twice this on disk however long the daemon runs.
const logFileMax = 8 << 20

// cappedFile is an append-only log file that moves itself to path+".1" when
// it would grow past max bytes. etcd's own rotation (lumberjack) registers a
// process-global zap sink and so cannot serve two servers in one process.
type cappedFile struct {
	mu   sync.Mutex
	path string
	max  int64
	f    *os.File
	size int64
}

var _ io.WriteCloser = (*cappedFile)(nil)

func openCappedFile(path string, max int64) (*cappedFile, error) {
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_APPEND, 0o600)
	if err != nil {
		return nil, err
	}
	st, err := f.Stat()
	if err != nil {
		f.Close()
		return nil, err
	}
	return &cappedFile{path: path, max: max, f: f, size: st.Size()}, nil
}

func (w *cappedFile) Write(p []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.f == nil {
		return 0, os.ErrClosed
	}
	if w.size > 0 && w.size+int64(len(p)) > w.max {
		if err := w.rotate(); err != nil {
			return 0, err
		}
	}
	n, err := w.f.Write(p)
	w.size += int64(n)
	return n, err
}

func (w *cappedFile) rotate() error {
	if err := w.f.Close(); err != nil {
		return err
	}
	w.f = nil
	if err := os.Rename(w.path, w.path+".1"); err != nil {
		return fmt.Errorf("rotating %s: %w", w.path, err)
	}
	f, err := os.OpenFile(w.path, os.O_WRONLY|os.O_CREATE|os.O_TRUNC, 0o600)
	if err != nil {
		return err
	}
	w.f, w.size = f, 0
	return nil
}

func (w *cappedFile) Close() error {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.f == nil {
		return nil
	}
	err := w.f.Close()
	w.f = nil
	return err
}
