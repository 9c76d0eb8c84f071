package qemu

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"runtime"
	"strconv"
	"strings"
	"syscall"
	"time"

	"golang.org/x/sys/unix"
)

// launch runs QEMU with -daemonize and waits for the foreground process,
// which exits once the daemon has set up everything (sockets listening,
// pidfile written and locked) or failed to. Its stderr goes to logPath,
// which is where start-up errors are read back from.
//
// With netns set (a network namespace's path) QEMU starts inside that
// namespace, so it can open taps that live there.
func launch(ctx context.Context, binary string, args []string, logPath, netns string) error {
	logf, err := os.OpenFile(logPath, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		return fmt.Errorf("opening QEMU log: %w", err)
	}
	defer logf.Close()
	fmt.Fprintf(logf, "%s starting: %s %s\n", time.Now().UTC().Format(time.RFC3339), binary, shellQuote(args))
	var start int64
	if fi, err := logf.Stat(); err == nil {
		start = fi.Size()
	}

	cmd := exec.CommandContext(ctx, binary, args...)
	// Files, not pipes: Run then waits for the foreground process only,
	// not for the daemon that inherits (and soon closes) these fds.
	cmd.Stdout, cmd.Stderr = logf, logf
	// Its own session from the start: no signal aimed at labcloudd's
	// process group (a Ctrl-C in a terminal, systemd's stop) reaches it.
	cmd.SysProcAttr = &syscall.SysProcAttr{Setsid: true}
	if err := runIn(netns, cmd); err != nil {
		msg := readFrom(logPath, start)
		if msg == "" {
			msg = err.Error()
		}
		return fmt.Errorf("QEMU failed to start: %s", msg)
	}
	return nil
}

// runIn runs cmd to completion, started inside the network namespace at
// netns when it is not empty.
//
// A process inherits the network namespace of the thread that forks it.
// So the fork happens on an OS thread locked to a goroutine that has first
// switched that thread into the namespace. The thread is never switched
// back and reused: the goroutine ends still locked, so the Go runtime
// throws the thread away instead of letting other goroutines run in the
// wrong namespace.
func runIn(netns string, cmd *exec.Cmd) error {
	if netns == "" {
		return cmd.Run()
	}
	started := make(chan error, 1)
	enterAndStart := func() {
		runtime.LockOSThread()
		// No UnlockOSThread, on purpose (see above).
		f, err := os.Open(netns)
		if err != nil {
			started <- fmt.Errorf("opening network namespace: %w", err)
			return
		}
		defer f.Close()
		if err := unix.Setns(int(f.Fd()), unix.CLONE_NEWNET); err != nil {
			started <- fmt.Errorf("entering network namespace %s: %w", netns, err)
			return
		}
		started <- cmd.Start()
	}
	go func() {
		runtime.LockOSThread()
		if unix.Gettid() != unix.Getpid() {
			enterAndStart() // stays locked (twice): this thread is discarded
			return
		}
		// This is the main thread, which Go never discards and whose
		// namespace /proc/self shows: keep it locked here so the work
		// below necessarily runs on another thread, then release it.
		done := make(chan struct{})
		go func() { enterAndStart(); close(done) }()
		<-done
		runtime.UnlockOSThread()
	}()
	if err := <-started; err != nil {
		return err
	}
	return cmd.Wait()
}

// readFrom returns what was appended to a file after offset, trimmed.
func readFrom(path string, offset int64) string {
	b, err := os.ReadFile(path)
	if err != nil || int64(len(b)) < offset {
		return ""
	}
	return strings.TrimSpace(string(b[offset:]))
}

// shellQuote renders args for a log line a person can paste into a shell.
func shellQuote(args []string) string {
	var b strings.Builder
	for i, a := range args {
		if i > 0 {
			b.WriteByte(' ')
		}
		if a != "" && strings.IndexFunc(a, func(r rune) bool {
			return !(r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || strings.ContainsRune("-_./=:,+@%", r))
		}) < 0 {
			b.WriteString(a)
			continue
		}
		b.WriteString("'" + strings.ReplaceAll(a, "'", `'\''`) + "'")
	}
	return b.String()
}

// livePID returns the pid of the QEMU serving this VM, or 0. The pidfile
// alone is not trusted (a stale file after a host reboot may name an
// unrelated process): the process must be alive, not a zombie, and have
// this VM's QMP socket on its command line.
func livePID(f Files) int {
	b, err := os.ReadFile(f.PIDFile)
	if err != nil {
		return 0
	}
	pid, err := strconv.Atoi(strings.TrimSpace(string(b)))
	if err != nil || pid <= 0 {
		return 0
	}
	if !processAlive(pid) {
		return 0
	}
	cmdline, err := os.ReadFile(fmt.Sprintf("/proc/%d/cmdline", pid))
	if err != nil {
		return 0
	}
	if !bytes.Contains(cmdline, []byte("path="+escapeOpt(f.QMPSocket)+",")) {
		return 0
	}
	return pid
}

// processAlive reports whether pid exists and has not exited (a zombie
// has exited: only its parent has not collected it yet).
func processAlive(pid int) bool {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return false
	}
	// The state follows the parenthesised command name, which may itself
	// contain ") ".
	i := bytes.LastIndexByte(b, ')')
	if i < 0 || i+2 >= len(b) {
		return false
	}
	return b[i+2] != 'Z' && b[i+2] != 'X'
}

// waitExit waits until pid has exited or timeout passes, and reports
// whether it exited. QEMU is not labcloudd's child (it daemonized), so
// wait(2) is not available; a pidfd becomes readable when the process
// exits, zombie or not.
func waitExit(ctx context.Context, pid int, timeout time.Duration) bool {
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	fd, err := unix.PidfdOpen(pid, 0)
	if err != nil {
		if errors.Is(err, unix.ESRCH) {
			return true
		}
		return pollExit(ctx, pid)
	}
	defer unix.Close(fd)
	for {
		if !processAlive(pid) {
			return true
		}
		ms := 100 // re-check ctx regularly; the poll wakes at exit anyway
		if dl, ok := ctx.Deadline(); ok {
			if left := time.Until(dl); left <= 0 {
				return !processAlive(pid)
			} else if left < 100*time.Millisecond {
				ms = int(left/time.Millisecond) + 1
			}
		}
		fds := []unix.PollFd{{Fd: int32(fd), Events: unix.POLLIN}}
		n, err := unix.Poll(fds, ms)
		if err != nil && !errors.Is(err, unix.EINTR) {
			return pollExit(ctx, pid)
		}
		if n > 0 {
			return true
		}
		if ctx.Err() != nil {
			return !processAlive(pid)
		}
	}
}

// pollExit is waitExit for kernels without pidfd_open.
func pollExit(ctx context.Context, pid int) bool {
	t := time.NewTicker(50 * time.Millisecond)
	defer t.Stop()
	for processAlive(pid) {
		select {
		case <-ctx.Done():
			return !processAlive(pid)
		case <-t.C:
		}
	}
	return true
}

// isBlockDevice tells a block device (QEMU's host_device driver) from an
// image file.
func isBlockDevice(path string) bool {
	fi, err := os.Stat(path)
	return err == nil && fi.Mode()&os.ModeDevice != 0 && fi.Mode()&os.ModeCharDevice == 0
}
