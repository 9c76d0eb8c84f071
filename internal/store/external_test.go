package store_test

import (
	"bytes"
	"context"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"syscall"
	"testing"
	"time"

	"github.com/labcloud/labcloud/internal/store/storetest"
)

// TestExternalConformance runs the suite against a real etcd binary in a
// child process, the shape of a --etcd-endpoints deployment: a different
// etcd version (Debian's 3.4) behind the same client, over the network
// protocol rather than in-process. CI installs the binary, so its absence
// fails the test instead of skipping it.
func TestExternalConformance(t *testing.T) {
	bin, err := exec.LookPath("etcd")
	if err != nil {
		t.Fatalf("no etcd binary on PATH (%v): install etcd-server (make deps)", err)
	}
	endpoints := startExternalEtcd(t, bin)
	storetest.Run(t, storeFactory(dial(t, endpoints)))
}

// startExternalEtcd runs bin as a single-member cluster and returns its
// client endpoint once it serves. The child is stopped when the test ends.
//
// It listens on unix sockets only: no port to pick or collide on, no
// traffic beyond this machine. etcd 3.4 takes a unix URL's host:port as the
// socket's file name relative to its working directory ("unix://client:1"
// listens on ./client:1), so the child runs in a short private directory
// (a t.TempDir path can be too long for a socket) and we dial the absolute
// path.
func startExternalEtcd(t *testing.T, bin string) []string {
	t.Helper()
	sockDir, err := os.MkdirTemp("", "lcetcd-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(sockDir) })
	dataDir := t.TempDir()
	logPath := filepath.Join(t.TempDir(), "etcd.log")
	logFile, err := os.Create(logPath)
	if err != nil {
		t.Fatal(err)
	}
	defer logFile.Close() // the child has its own descriptor

	const clientURL, peerURL = "unix://client:1", "unix://peer:2"
	cmd := exec.Command(bin,
		"--name", "test",
		"--data-dir", dataDir,
		"--listen-client-urls", clientURL,
		"--advertise-client-urls", clientURL,
		"--listen-peer-urls", peerURL,
		"--initial-advertise-peer-urls", peerURL,
		"--initial-cluster", "test="+peerURL,
		"--initial-cluster-token", "labcloud-test",
		"--logger", "zap",
	)
	cmd.Dir = sockDir
	cmd.Stdout, cmd.Stderr = logFile, logFile
	// Take the child down with the test binary even if it dies without
	// running cleanups.
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	if err := cmd.Start(); err != nil {
		t.Fatalf("starting %s: %v", bin, err)
	}
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait() }()
	logTail := func() string {
		b, _ := os.ReadFile(logPath)
		if len(b) > 4000 {
			b = b[len(b)-4000:]
		}
		return string(bytes.TrimSpace(b))
	}
	t.Cleanup(func() {
		cmd.Process.Signal(syscall.SIGTERM)
		select {
		case <-exited:
		case <-time.After(15 * time.Second):
			cmd.Process.Kill()
			<-exited
			t.Errorf("etcd ignored SIGTERM for 15s and was killed")
		}
	})

	// Wait for the socket to appear, then for a linearizable read to
	// succeed (Dial checks that), or for the child to give up.
	sock := filepath.Join(sockDir, "client:1")
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	tick := time.NewTicker(20 * time.Millisecond)
	defer tick.Stop()
	for {
		if _, err := os.Stat(sock); err == nil {
			break
		} else if !errors.Is(err, os.ErrNotExist) {
			t.Fatal(err)
		}
		select {
		case err := <-exited:
			exited <- err // for the cleanup
			t.Fatalf("etcd exited before serving (%v); its log:\n%s", err, logTail())
		case <-ctx.Done():
			t.Fatalf("etcd's socket %s did not appear within a minute; its log:\n%s", sock, logTail())
		case <-tick.C:
		}
	}
	endpoints := []string{"unix://" + sock}
	cli := dial(t, endpoints)
	cli.Close()
	return endpoints
}
