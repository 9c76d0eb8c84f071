// Package embedded runs a single-member etcd inside the labcloudd process.
//
// It is the default store: a lab server needs no separate etcd to install,
// and the data lives under the daemon's state dir. With --etcd-endpoints the
// daemon dials an external cluster instead and this package is not used.
//
// # Where it listens
//
// Clients reach the server on a unix socket, never on a TCP port:
//
//   - No collisions. Two daemons (or two tests, or two Servers in one test
//     process) on one machine each listen on a socket inside their own data
//     dir, so there is no port to pick and nothing to race for.
//   - Access control. The socket sits in a 0700 directory, so only the
//     daemon's user can read or write the store (which holds IAM secrets);
//     any local user could connect to a loopback port.
//
// etcd accepts an absolute socket path only for client URLs: unix:///a/b
// listens on /a/b. Peer URLs are opened from the URL's host alone, so a peer
// unix socket could only be a path relative to the process's working
// directory, which is shared by everything in the process. A single member
// never talks to peers, so the Server opens no peer listener at all; the
// peer URL etcd records in its membership is a placeholder that nothing
// dials (see peerURL).
//
// A unix socket path must fit in 108 bytes. When <DataDir>/etcd.sock would
// be longer (deep state dirs, t.TempDir in tests), the socket goes into a
// fresh 0700 directory under os.TempDir (or /tmp) that Close removes;
// Endpoints always reports where it really is.
//
// # Logging
//
// etcd logs a great deal at info level. By default only its warnings and
// errors are kept, as JSON lines in <DataDir>/etcd.log (capped at 8 MiB plus
// one previous file), so the daemon's own output stays readable and an
// operator still finds etcd's complaints next to its data. Config.Logger
// sends them into the daemon's slog logger instead, tagged component=etcd.
// Two warnings etcd gives on every start of this configuration, and the
// errors it logs about its own orderly shutdown, are demoted to debug, so
// that a warning or error in the log always deserves a look.
package embedded

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/url"
	"os"
	"path/filepath"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"go.etcd.io/etcd/server/v3/embed"
)

// Config says where the embedded etcd keeps its data and where its logs go.
type Config struct {
	// DataDir holds etcd's data (the member/ directory), a lock file, the
	// client socket when its path is short enough, and etcd.log. Give etcd
	// a directory of its own (e.g. <state dir>/etcd): it is created if
	// missing and its mode set to 0700, since the store holds secrets.
	// Starting again on the same DataDir finds the same data.
	DataDir string

	// Logger, when set, receives etcd's log entries at or above LogLevel,
	// each tagged component=etcd. When nil they are written as JSON lines to
	// <DataDir>/etcd.log.
	Logger *slog.Logger

	// LogLevel is the least severe etcd entry that is kept. Nil means
	// slog.LevelWarn: etcd's info level is a stream of raft and gRPC detail
	// that a lab operator does not need.
	LogLevel slog.Leveler

	// StartTimeout bounds how long Start waits for etcd to elect itself and
	// serve. Zero means one minute, which is generous for a single member on
	// a slow disk; on expiry Start fails and points at the log.
	StartTimeout time.Duration
}

// Server is a running single-member etcd. Close it to stop etcd, release the
// data dir and remove the socket.
type Server struct {
	etcd     *embed.Etcd
	endpoint string
	dataDir  string
	sockDir  string // a directory Start made for the socket; removed on Close
	lock     *os.File
	logFile  *cappedFile
	closing  atomic.Bool // demotes etcd's shutdown chatter; see newZapLogger

	closeOnce sync.Once
	closeErr  error
}

const (
	// socketName is the client socket's file name.
	socketName = "etcd.sock"
	// lockName is a file the Server holds an exclusive flock on, so a second
	// daemon on the same data dir fails at once with a clear message instead
	// of deleting the first one's socket and then blocking on etcd's own
	// database lock.
	lockName = "labcloud-etcd.lock"
	// logName is the default destination of etcd's log entries.
	logName = "etcd.log"
	// maxSocketPath keeps a margin below Linux's 108-byte sun_path (which
	// includes the terminating NUL); net.Listen fails past it.
	maxSocketPath = 100
	// memberName and clusterToken are fixed so that a restart on the same
	// data dir is the same member of the same cluster.
	memberName   = "labcloud"
	clusterToken = "labcloud-embedded"
	// peerURL is recorded as the member's peer address. etcd needs one to
	// derive the member ID and requires it to look like host:port, but a
	// single member never dials it and no listener is opened for it. Port 0
	// makes it obviously unreachable, and it never changes, so restarts see
	// the same membership.
	peerURL = "http://127.0.0.1:0"
	// defaultStartTimeout applies when Config.StartTimeout is zero.
	defaultStartTimeout = time.Minute
)

// Start launches etcd on cfg.DataDir and returns once it serves requests.
// ctx bounds only the start; the Server runs until Close.
func Start(ctx context.Context, cfg Config) (_ *Server, err error) {
	if cfg.DataDir == "" {
		return nil, errors.New("embedded etcd: Config.DataDir is empty; set it to a directory under the daemon's state dir")
	}
	dataDir, err := filepath.Abs(cfg.DataDir)
	if err != nil {
		return nil, fmt.Errorf("embedded etcd: resolving data dir %q: %w", cfg.DataDir, err)
	}
	if err := os.MkdirAll(dataDir, 0o700); err != nil {
		return nil, fmt.Errorf("embedded etcd: creating data dir: %w", err)
	}
	// The store holds secrets (IAM keys), and etcd warns on every start
	// about a data dir others can read; the dir is etcd's alone, so
	// tighten it rather than log about it.
	if err := os.Chmod(dataDir, 0o700); err != nil {
		return nil, fmt.Errorf("embedded etcd: restricting data dir to its owner: %w", err)
	}

	s := &Server{dataDir: dataDir}
	// Undo whatever was set up if any later step fails.
	defer func() {
		if err != nil {
			s.Close()
		}
	}()

	if s.lock, err = lockDir(dataDir); err != nil {
		return nil, err
	}

	handler, err := s.logHandler(cfg)
	if err != nil {
		return nil, err
	}

	sock, err := s.socketPath()
	if err != nil {
		return nil, err
	}
	s.endpoint = "unix://" + sock

	ecfg := embed.NewConfig()
	ecfg.Name = memberName
	ecfg.Dir = dataDir
	ecfg.ZapLoggerBuilder = embed.NewZapLoggerBuilder(newZapLogger(handler, &s.closing))
	ecfg.ListenClientUrls = []url.URL{{Scheme: "unix", Path: sock}}
	// etcd insists that advertised client URLs are host:port, which an
	// absolute socket path is not. They are only published in the member
	// list for clients that discover endpoints from it; labcloud dials
	// Endpoints() directly, so none are advertised. (A nil slice would be
	// rejected as "unset"; an empty one is accepted.)
	ecfg.AdvertiseClientUrls = []url.URL{}
	ecfg.ListenPeerUrls = nil
	pu, _ := url.Parse(peerURL)
	ecfg.AdvertisePeerUrls = []url.URL{*pu}
	ecfg.InitialCluster = ecfg.InitialClusterFromName(memberName)
	ecfg.InitialClusterToken = clusterToken
	// Without compaction etcd keeps every revision until it hits its space
	// quota and turns read-only. One hour of history is plenty for watchers
	// that reconnect; a watcher further behind gets ErrCompacted and relists.
	ecfg.AutoCompactionMode = embed.CompactorModePeriodic
	ecfg.AutoCompactionRetention = "1h"
	// labcloud speaks gRPC to etcd; the HTTP/JSON gateway would only be one
	// more thing listening.
	ecfg.EnableGRPCGateway = false
	// NewConfig leaves this at zero (only etcd's flag parsing sets the
	// default), which makes etcd log every request as slow.
	ecfg.WarningUnaryRequestDuration = embed.DefaultWarningUnaryRequestDuration

	e, err := embed.StartEtcd(ecfg)
	if err != nil {
		return nil, fmt.Errorf("embedded etcd: starting in %s: %w%s", dataDir, err, s.seeLog())
	}
	s.etcd = e

	timeout := cfg.StartTimeout
	if timeout <= 0 {
		timeout = defaultStartTimeout
	}
	timer := time.NewTimer(timeout)
	defer timer.Stop()
	select {
	case <-e.Server.ReadyNotify():
		return s, nil
	case err := <-e.Err():
		return nil, fmt.Errorf("embedded etcd: failed while starting in %s: %w%s", dataDir, err, s.seeLog())
	case <-timer.C:
		return nil, fmt.Errorf("embedded etcd: not ready after %s in %s%s", timeout, dataDir, s.seeLog())
	case <-ctx.Done():
		return nil, fmt.Errorf("embedded etcd: start in %s abandoned: %w", dataDir, ctx.Err())
	}
}

// Endpoints returns the URLs to dial, e.g. with store.Dial. There is one,
// a unix:///absolute/path socket.
func (s *Server) Endpoints() []string {
	return []string{s.endpoint}
}

// Err delivers an error if etcd stops serving on its own (a listener fails
// or the server hits a fatal condition), so the daemon can exit instead of
// running on without a store. It is not closed by Close.
func (s *Server) Err() <-chan error {
	return s.etcd.Err()
}

// Close stops etcd, waiting for in-flight requests to finish (a few seconds
// at most), then releases the data dir and removes the socket. Calling it
// again returns the first result.
func (s *Server) Close() error {
	s.closeOnce.Do(func() {
		if s.etcd != nil {
			s.closing.Store(true)
			s.etcd.Close()
		}
		s.closeErr = s.release()
	})
	return s.closeErr
}

// release frees everything Start acquired besides etcd itself.
func (s *Server) release() error {
	var errs []error
	if s.sockDir != "" {
		errs = append(errs, os.RemoveAll(s.sockDir))
	}
	if s.logFile != nil {
		errs = append(errs, s.logFile.Close())
	}
	if s.lock != nil {
		// Closing the descriptor drops the flock.
		errs = append(errs, s.lock.Close())
	}
	return errors.Join(errs...)
}

// seeLog returns a hint to append to start errors when etcd's log is in a
// file the user may not think of.
func (s *Server) seeLog() string {
	if s.logFile == nil {
		return ""
	}
	return "; etcd's log is " + s.logFile.path
}

// logHandler builds the slog handler etcd's entries go to, opening
// <DataDir>/etcd.log when no Logger is configured.
func (s *Server) logHandler(cfg Config) (slog.Handler, error) {
	var level slog.Leveler = slog.LevelWarn
	if cfg.LogLevel != nil {
		level = cfg.LogLevel
	}
	if cfg.Logger != nil {
		return &levelHandler{min: level, h: cfg.Logger.Handler()}, nil
	}
	f, err := openCappedFile(filepath.Join(s.dataDir, logName), logFileMax)
	if err != nil {
		return nil, fmt.Errorf("embedded etcd: opening log file: %w", err)
	}
	s.logFile = f
	return slog.NewJSONHandler(f, &slog.HandlerOptions{Level: level}), nil
}

// socketPath picks the client socket path: in the data dir when it fits,
// else in a new private directory under the temp dir.
func (s *Server) socketPath() (string, error) {
	p := filepath.Join(s.dataDir, socketName)
	if len(p) <= maxSocketPath {
		return p, nil
	}
	for _, base := range []string{os.TempDir(), "/tmp"} {
		if len(filepath.Join(base, "labcloud-etcd-0123456789", socketName)) > maxSocketPath {
			continue
		}
		dir, err := os.MkdirTemp(base, "labcloud-etcd-")
		if err != nil {
			return "", fmt.Errorf("embedded etcd: socket path %s is too long for a unix socket and no short directory could be made: %w", p, err)
		}
		s.sockDir = dir
		return filepath.Join(dir, socketName), nil
	}
	return "", fmt.Errorf("embedded etcd: socket path %s is too long for a unix socket (max %d bytes) and TMPDIR is too long as well; use a shorter state dir", p, maxSocketPath)
}

// lockDir takes an exclusive, non-blocking flock on the data dir's lock
// file. The kernel drops it when the process dies, so a crash never leaves a
// stale lock behind.
func lockDir(dataDir string) (*os.File, error) {
	p := filepath.Join(dataDir, lockName)
	f, err := os.OpenFile(p, os.O_RDWR|os.O_CREATE, 0o600)
	if err != nil {
		return nil, fmt.Errorf("embedded etcd: opening lock file: %w", err)
	}
	if err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB); err != nil {
		f.Close()
		if errors.Is(err, syscall.EWOULDBLOCK) {
			return nil, fmt.Errorf("embedded etcd: data dir %s is in use by another embedded etcd (lock %s is held); stop the other labcloudd or give this one its own state dir", dataDir, p)
		}
		return nil, fmt.Errorf("embedded etcd: locking %s: %w", p, err)
	}
	return f, nil
}

// levelHandler drops records below min before passing them on, so etcd's
// threshold can be stricter than the daemon logger's own.
type levelHandler struct {
	min slog.Leveler
	h   slog.Handler
}

func (l *levelHandler) Enabled(ctx context.Context, lv slog.Level) bool {
	return lv >= l.min.Level() && l.h.Enabled(ctx, lv)
}

func (l *levelHandler) Handle(ctx context.Context, r slog.Record) error {
	return l.h.Handle(ctx, r)
}

func (l *levelHandler) WithAttrs(attrs []slog.Attr) slog.Handler {
	return &levelHandler{min: l.min, h: l.h.WithAttrs(attrs)}
}

func (l *levelHandler) WithGroup(name string) slog.Handler {
	return &levelHandler{min: l.min, h: l.h.WithGroup(name)}
}
