// Package qemu is labcloud's default hypervisor driver: one QEMU process
// per VM, controlled over QMP (Monitor, built on go-qemu's qmp types),
// running detached from labcloudd so that a daemon restart loses nothing.
//
// Every VM has a run directory <RunDir>/<id> holding its definition
// (spec.json), QEMU's pidfile, the QMP and serial-console sockets, the
// console log and the record of how it last stopped (exit.json). That
// directory is the whole truth: a new Driver over the same RunDir finds
// every VM again, and nothing lives only in memory except open QMP
// connections.
//
// How a restarted labcloudd reattaches: QEMU was started with -daemonize
// in its own session, so it survived. For any call on a VM (or eagerly,
// Reattach) the driver reads qemu.pid, checks in /proc that the process is
// alive and is this VM's QEMU (its command line holds this VM's QMP
// socket path), and dials qmp.sock. Start does the same first and never
// launches a second QEMU for a VM whose QEMU lives; QEMU's own lock on the
// pidfile backs this up, and a flock on <dir>/lock serialises lifecycle
// operations across processes. Power-offs that happened while nobody was
// attached are not lost: -no-shutdown keeps QEMU in status "shutdown"
// until the driver sees it, records guest-shutdown and quits it.
package qemu

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"sort"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/labcloud/labcloud/hypervisor"
	"github.com/labcloud/labcloud/internal/errdefs"
)

// Compile-time checks: the driver and its optional abilities.
var (
	_ hypervisor.Driver        = (*Driver)(nil)
	_ hypervisor.Pauser        = (*Driver)(nil)
	_ hypervisor.DiskThrottler = (*Driver)(nil)
	_ hypervisor.DiskResizer   = (*Driver)(nil)
	_ hypervisor.Reattacher    = (*Driver)(nil)
	_ hypervisor.Lister        = (*Driver)(nil)
)

// DefaultBinary is the QEMU system emulator, found in PATH.
const DefaultBinary = "qemu-system-x86_64"

// Defaults for Options.
const (
	DefaultStopTimeout   = 30 * time.Second
	DefaultDetachTimeout = 30 * time.Second
	// quitTimeout bounds each step of stopping QEMU without the guest:
	// quit over QMP, then SIGTERM, then SIGKILL.
	quitTimeout = 5 * time.Second
)

// Options configure a Driver.
type Options struct {
	// RunDir holds one directory per VM. Put it under labcloud's state
	// directory (not /run): VM definitions live there and must survive
	// a host reboot; sockets are made anew at every Start. Keep it short:
	// unix socket paths inside it are limited to 107 bytes.
	RunDir string
	// Binary is the QEMU system emulator; default DefaultBinary.
	Binary string
	// HotplugPorts is the number of spare PCIe ports per VM for devices
	// attached while it runs; 0 means DefaultHotplugPorts, negative none.
	HotplugPorts int
	// StopTimeout is the default graceful-stop wait.
	StopTimeout time.Duration
	// DetachTimeout bounds the wait for the guest to release a device.
	DetachTimeout time.Duration
	// Logger receives what happens in the background (a guest powering
	// off, a VM found dead); nil discards it.
	Logger *slog.Logger
}

// Driver runs VMs as detached QEMU processes. Create one per RunDir per
// process; Close it when done (QEMU processes keep running).
type Driver struct {
	opts Options
	log  *slog.Logger

	mu  sync.Mutex
	vms map[string]*vm
}

// vm is the driver's in-memory handle on one VM: locks and, while the
// driver is attached, the QMP connection and its watcher.
type vm struct {
	id    string
	files Files

	// op serialises lifecycle operations on this VM within the process;
	// a flock on <dir>/lock does so across processes.
	op sync.Mutex

	mu        sync.Mutex
	mon       *Monitor
	watchDone chan struct{} // closed when mon's watcher has finished
	stopping  bool          // a Stop or Destroy is under way: a power-off is ours
}

// detach closes v's QMP connection, if any, and waits for its watcher, so
// nothing writes into the run directory afterwards.
func (v *vm) detach() {
	v.mu.Lock()
	mon, done := v.mon, v.watchDone
	v.mon, v.watchDone = nil, nil
	v.mu.Unlock()
	if mon != nil {
		mon.Close()
	}
	if done != nil {
		<-done
	}
}

// New makes a Driver over opts.RunDir, creating the directory. It does not
// need QEMU to be installed; Start reports a missing binary.
func New(opts Options) (*Driver, error) {
	if opts.RunDir == "" {
		return nil, errors.New("qemu driver: RunDir is empty; give a directory for VM run files")
	}
	dir, err := filepath.Abs(opts.RunDir)
	if err != nil {
		return nil, fmt.Errorf("qemu driver: run dir %s: %w", opts.RunDir, err)
	}
	opts.RunDir = dir
	if err := os.MkdirAll(dir, 0o750); err != nil {
		return nil, fmt.Errorf("qemu driver: creating run dir %s: %w", dir, err)
	}
	if opts.Binary == "" {
		opts.Binary = DefaultBinary
	}
	switch {
	case opts.HotplugPorts == 0:
		opts.HotplugPorts = DefaultHotplugPorts
	case opts.HotplugPorts < 0:
		opts.HotplugPorts = 0
	}
	if opts.StopTimeout <= 0 {
		opts.StopTimeout = DefaultStopTimeout
	}
	if opts.DetachTimeout <= 0 {
		opts.DetachTimeout = DefaultDetachTimeout
	}
	log := opts.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	return &Driver{opts: opts, log: log, vms: map[string]*vm{}}, nil
}

// Close drops every QMP connection. The VMs keep running; a new Driver
// over the same RunDir picks them up again.
func (d *Driver) Close() error {
	d.mu.Lock()
	vms := make([]*vm, 0, len(d.vms))
	for _, v := range d.vms {
		vms = append(vms, v)
	}
	d.mu.Unlock()
	for _, v := range vms {
		v.detach()
	}
	return nil
}

// RunDir returns the directory holding the VMs' run directories.
func (d *Driver) RunDir() string { return d.opts.RunDir }

// Files returns the run files of VM id (whether or not it exists).
func (d *Driver) Files(id string) Files { return FilesIn(filepath.Join(d.opts.RunDir, id)) }

func (d *Driver) notFound(id string) error {
	return errdefs.NotFound("", "VM %s is not defined on this host (no %s); create it first", id, filepath.Join(d.opts.RunDir, id))
}

// handle returns the in-memory handle of an existing VM.
func (d *Driver) handle(id string) (*vm, error) {
	if err := hypervisor.ValidateID(id); err != nil {
		return nil, err
	}
	files := d.Files(id)
	if _, err := os.Stat(filepath.Join(files.Dir, specFile)); err != nil {
		return nil, d.notFound(id)
	}
	d.mu.Lock()
	defer d.mu.Unlock()
	v, ok := d.vms[id]
	if !ok {
		v = &vm{id: id, files: files}
		d.vms[id] = v
	}
	return v, nil
}

// Files in a run directory besides those in Files.
const (
	specFile    = "spec.json"
	exitFile    = "exit.json"
	startedFile = "started" // a run began; its end is not recorded yet
	lockFile    = "lock"
	cmdlineFile = "qemu.cmdline"
)

type exitRecord struct {
	Reason hypervisor.ExitReason `json:"reason"`
	Detail string                `json:"detail,omitempty"`
	Time   time.Time             `json:"time"`
}

func writeJSONAtomic(path string, v any) error {
	b, err := json.MarshalIndent(v, "", "  ")
	if err != nil {
		return err
	}
	tmp := path + ".tmp"
	if err := os.WriteFile(tmp, append(b, '\n'), 0o640); err != nil {
		return err
	}
	return os.Rename(tmp, path)
}

func (v *vm) loadSpec() (hypervisor.Spec, error) {
	var s hypervisor.Spec
	b, err := os.ReadFile(filepath.Join(v.files.Dir, specFile))
	if err != nil {
		return s, fmt.Errorf("reading definition of VM %s: %w", v.id, err)
	}
	if err := json.Unmarshal(b, &s); err != nil {
		return s, fmt.Errorf("reading definition of VM %s: %w", v.id, err)
	}
	return s, nil
}

func (v *vm) saveSpec(s hypervisor.Spec) error {
	if err := writeJSONAtomic(filepath.Join(v.files.Dir, specFile), s); err != nil {
		return fmt.Errorf("saving definition of VM %s: %w", v.id, err)
	}
	return nil
}

// recordExit notes why the current run ended. Without overwrite an
// existing record wins: the first observer that knew the reason (a Stop,
// the SHUTDOWN event) is right, later guesses are not.
func (v *vm) recordExit(reason hypervisor.ExitReason, detail string, overwrite bool) {
	path := filepath.Join(v.files.Dir, exitFile)
	if !overwrite {
		if _, err := os.Stat(path); err == nil {
			return
		}
	}
	_ = writeJSONAtomic(path, exitRecord{Reason: reason, Detail: detail, Time: time.Now().UTC()})
}

// exitReason reads how the last run ended. A run that began (Start left
// its marker) but has no record ended without a power-off: a crash or a
// kill. Both files change only at Start, so the verdict is stable without
// writing it down.
func (v *vm) exitReason() (hypervisor.ExitReason, string) {
	var r exitRecord
	if b, err := os.ReadFile(filepath.Join(v.files.Dir, exitFile)); err == nil && json.Unmarshal(b, &r) == nil {
		return r.Reason, r.Detail
	}
	if _, err := os.Stat(filepath.Join(v.files.Dir, startedFile)); err == nil {
		return hypervisor.ExitCrashed, "QEMU exited without the guest powering off (killed, crashed or out of memory); see " + v.files.QEMULog
	}
	return hypervisor.ExitNone, ""
}

// runToken names the current run: Start writes a new one into the
// started marker before each launch. A watcher remembers the run it
// watches, so a late event of an earlier run cannot be taken for the
// current run's.
func (v *vm) runToken() string {
	b, _ := os.ReadFile(filepath.Join(v.files.Dir, startedFile))
	return string(b)
}

// lock takes the cross-process lock on a VM's run directory, polling so
// that ctx can end the wait.
func (v *vm) lock(ctx context.Context) (unlock func(), err error) {
	f, err := os.OpenFile(filepath.Join(v.files.Dir, lockFile), os.O_CREATE|os.O_RDWR, 0o640)
	if err != nil {
		return nil, fmt.Errorf("locking VM %s: %w", v.id, err)
	}
	t := time.NewTicker(50 * time.Millisecond)
	defer t.Stop()
	for {
		err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB)
		if err == nil {
			return func() { f.Close() }, nil
		}
		if !errors.Is(err, syscall.EWOULDBLOCK) {
			f.Close()
			return nil, fmt.Errorf("locking VM %s: %w", v.id, err)
		}
		select {
		case <-ctx.Done():
			f.Close()
			return nil, fmt.Errorf("VM %s is busy with another operation (another labcloudd?): %w", v.id, ctx.Err())
		case <-t.C:
		}
	}
}

// begin serialises an operation on v within and across processes.
func (v *vm) begin(ctx context.Context) (end func(), err error) {
	v.op.Lock()
	unlock, err := v.lock(ctx)
	if err != nil {
		v.op.Unlock()
		return nil, err
	}
	return func() { unlock(); v.op.Unlock() }, nil
}

// Create defines a VM: it validates spec and writes it into a new run
// directory. Nothing runs until Start.
func (d *Driver) Create(ctx context.Context, spec hypervisor.Spec) error {
	if err := spec.Validate(); err != nil {
		return err
	}
	files := d.Files(spec.ID)
	if n := len(files.ConsoleSocket); n > 107 {
		return errdefs.InvalidParameter("", "VM %s: socket path %s is %d bytes, over the 107 unix sockets allow; use a shorter run directory", spec.ID, files.ConsoleSocket, n)
	}
	if err := os.Mkdir(files.Dir, 0o750); err != nil {
		if errors.Is(err, fs.ErrExist) {
			return errdefs.AlreadyExists("", "VM %s is already defined on this host; destroy it first or use another id", spec.ID)
		}
		return fmt.Errorf("creating run directory of VM %s: %w", spec.ID, err)
	}
	if spec.Accel == "" {
		spec.Accel = hypervisor.AccelAuto
	}
	v := &vm{id: spec.ID, files: files}
	if err := v.saveSpec(spec); err != nil {
		os.RemoveAll(files.Dir)
		return err
	}
	d.mu.Lock()
	d.vms[spec.ID] = v
	d.mu.Unlock()
	return nil
}

// Start boots the VM's definition in a new, detached QEMU. If the VM's
// QEMU already runs (started by this or an earlier driver), Start only
// makes sure it is attached (and resumes it if paused): there is never a
// second QEMU for one VM.
func (d *Driver) Start(ctx context.Context, id string) error {
	v, err := d.handle(id)
	if err != nil {
		return err
	}
	end, err := v.begin(ctx)
	if err != nil {
		return err
	}
	defer end()

	if pid := livePID(v.files); pid > 0 {
		mon, err := d.attach(ctx, v)
		if err != nil {
			return fmt.Errorf("VM %s already runs (pid %d) but: %w", id, pid, err)
		}
		st, err := mon.QueryStatus(ctx)
		if err != nil && !errors.Is(err, ErrDisconnected) {
			return err
		}
		switch {
		case err == nil && st.Status == "paused":
			return mon.Cont(ctx)
		case err == nil && st.Status != "shutdown":
			return nil
		}
		// The guest has just powered off and QEMU is being quit: let it
		// finish, then boot anew.
		if !waitExit(ctx, pid, quitTimeout) {
			return errdefs.Conflict("IncorrectInstanceState", "VM %s has powered off but its QEMU (pid %d) has not exited yet; try again", id, pid)
		}
	}

	spec, err := v.loadSpec()
	if err != nil {
		return err
	}
	bin, err := exec.LookPath(d.opts.Binary)
	if err != nil {
		return errdefs.New(errdefs.ClassUnavailable, "", "cannot start VM %s: %s is not installed (%v); install the Debian package qemu-system-x86 (make deps)", id, d.opts.Binary, err)
	}
	if err := checkFiles(spec); err != nil {
		return err
	}
	accel, why := hypervisor.ResolveAccel(spec.Accel)
	cfg, err := ConfigFromSpec(spec, accel, v.files, d.opts.HotplugPorts, isBlockDevice)
	if err != nil {
		return err
	}
	// Leftovers of the previous run would confuse the liveness check and
	// the exit-reason bookkeeping.
	for _, f := range []string{v.files.QMPSocket, v.files.ConsoleSocket, v.files.PIDFile, filepath.Join(v.files.Dir, exitFile)} {
		if err := os.Remove(f); err != nil && !errors.Is(err, fs.ErrNotExist) {
			return fmt.Errorf("cleaning run files of VM %s: %w", id, err)
		}
	}
	args := BuildArgs(cfg)
	_ = os.WriteFile(filepath.Join(v.files.Dir, cmdlineFile), []byte(bin+" "+shellQuote(args)+"\n"), 0o640)
	run := strconv.FormatInt(time.Now().UnixNano(), 10)
	if err := os.WriteFile(filepath.Join(v.files.Dir, startedFile), []byte(run), 0o640); err != nil {
		return fmt.Errorf("starting VM %s: %w", id, err)
	}
	if err := launch(ctx, bin, args, v.files.QEMULog, spec.NetNS); err != nil {
		os.Remove(filepath.Join(v.files.Dir, startedFile))
		return errdefs.Wrap(errdefs.ClassUnavailable, "", err, "starting VM %s (accelerator %s: %s) failed; the command line is in %s", id, accel, why, filepath.Join(v.files.Dir, cmdlineFile))
	}
	pid := livePID(v.files)
	if pid == 0 {
		return fmt.Errorf("VM %s: QEMU reported success but is not running; see %s", id, v.files.QEMULog)
	}
	d.log.Info("VM started", "vm", id, "pid", pid, "accel", accel, "reason", why)
	if _, err := d.attach(ctx, v); err != nil {
		return fmt.Errorf("VM %s started (pid %d) but QMP is not reachable: %w", id, pid, err)
	}
	return nil
}

// checkFiles reports missing kernel, initrd or disk files before QEMU
// does, in labcloud's words.
func checkFiles(s hypervisor.Spec) error {
	check := func(what, path string) error {
		if path == "" {
			return nil
		}
		if _, err := os.Stat(path); err != nil {
			return errdefs.InvalidParameter("", "VM %s: %s %s is not usable (%v); check the path", s.ID, what, path, err)
		}
		return nil
	}
	if err := check("kernel", s.Kernel); err != nil {
		return err
	}
	if err := check("initrd", s.Initrd); err != nil {
		return err
	}
	for _, dk := range s.Disks {
		if err := check("disk "+dk.ID, dk.Path); err != nil {
			return err
		}
	}
	return nil
}

// attach returns v's QMP connection, dialing it (and starting its watcher)
// when there is none. This is how a driver takes over a VM started by an
// earlier one.
func (d *Driver) attach(ctx context.Context, v *vm) (*Monitor, error) {
	mon, fresh, err := d.dial(ctx, v)
	if err != nil || !fresh {
		return mon, err
	}
	// A guest that powered off while nobody was attached left QEMU in
	// status "shutdown" (-no-shutdown): finish that power-off now.
	if st, err := mon.QueryStatus(ctx); err == nil && st.Status == "shutdown" {
		d.guestPoweredOff(v, mon, "the guest powered off while labcloudd was not attached")
	}
	return mon, nil
}

// dial returns v's live QMP connection or makes one (fresh is then true)
// and starts its watcher.
func (d *Driver) dial(ctx context.Context, v *vm) (mon *Monitor, fresh bool, err error) {
	v.mu.Lock()
	defer v.mu.Unlock()
	if v.mon != nil {
		select {
		case <-v.mon.Done():
			v.mon = nil
		default:
			return v.mon, false, nil
		}
	}
	pid := livePID(v.files)
	if pid == 0 {
		return nil, false, errNotRunning
	}
	dctx, cancel := context.WithTimeout(ctx, DefaultCommandTimeout)
	defer cancel()
	mon, err = Dial(dctx, v.files.QMPSocket)
	if err != nil {
		return nil, false, err
	}
	v.mon = mon
	done := make(chan struct{})
	v.watchDone = done
	events, unsubscribe := mon.Subscribe()
	run := v.runToken()
	go func() {
		defer close(done)
		d.watch(v, mon, pid, run, events, unsubscribe)
	}()
	return mon, true, nil
}

var errNotRunning = errors.New("not running")

// watch follows one QMP connection's events until it ends.
func (d *Driver) watch(v *vm, mon *Monitor, pid int, run string, events <-chan Event, unsubscribe func()) {
	defer unsubscribe()
	for ev := range events {
		sd, ok := ShutdownOf(ev)
		if !ok {
			continue
		}
		// A watcher can lag behind its run: on a loaded host the SHUTDOWN
		// of a forced Stop may be read after Start has already begun the
		// next run, and must not become that run's exit reason.
		if v.runToken() != run {
			continue
		}
		guest, reason := sd.Guest, sd.Reason
		v.mu.Lock()
		stopping := v.stopping
		v.mu.Unlock()
		switch {
		case guest && reason == "guest-shutdown":
			d.guestPoweredOff(v, mon, "")
		case reason == "host-signal" && !stopping:
			v.recordExit(hypervisor.ExitCrashed, "QEMU was terminated by a signal", false)
		case reason == "guest-panic":
			v.recordExit(hypervisor.ExitCrashed, "the guest kernel panicked", false)
		case !stopping:
			v.recordExit(hypervisor.ExitForced, "QEMU shut down: "+reason, false)
		}
	}
	// The connection ended: QEMU exited, or the driver let go of it.
	v.mu.Lock()
	if v.mon == mon {
		v.mon = nil
	}
	v.mu.Unlock()
	if !processAlive(pid) {
		reason, _ := v.exitReason()
		d.log.Info("VM exited", "vm", v.id, "pid", pid, "reason", reason)
	}
}

// guestPoweredOff records a guest power-off and ends the QEMU that
// -no-shutdown kept around. It never blocks the event stream: quit runs on
// its own goroutine.
func (d *Driver) guestPoweredOff(v *vm, mon *Monitor, detail string) {
	v.mu.Lock()
	stopping := v.stopping
	v.mu.Unlock()
	if stopping {
		v.recordExit(hypervisor.ExitStopped, detail, false)
	} else {
		v.recordExit(hypervisor.ExitGuestShutdown, detail, false)
		d.log.Info("guest powered off", "vm", v.id)
	}
	go func() {
		ctx, cancel := context.WithTimeout(context.Background(), quitTimeout)
		defer cancel()
		_ = mon.Quit(ctx)
	}()
}

// Status reports the VM's state, attaching to its QEMU if needed.
func (d *Driver) Status(ctx context.Context, id string) (hypervisor.Status, error) {
	v, err := d.handle(id)
	if err != nil {
		return hypervisor.Status{}, err
	}
	return d.status(ctx, v)
}

func (d *Driver) status(ctx context.Context, v *vm) (hypervisor.Status, error) {
	stopped := func() hypervisor.Status {
		r, detail := v.exitReason()
		return hypervisor.Status{State: hypervisor.StateStopped, ExitReason: r, Detail: detail}
	}
	pid := livePID(v.files)
	if pid == 0 {
		return stopped(), nil
	}
	mon, err := d.attach(ctx, v)
	if err == nil {
		var st StatusInfo
		st, err = mon.QueryStatus(ctx)
		if err == nil {
			return statusFromQMP(pid, st, v), nil
		}
	}
	if livePID(v.files) == 0 {
		return stopped(), nil
	}
	if errors.Is(err, ErrTimeout) || errors.Is(err, ErrDisconnected) {
		return hypervisor.Status{State: hypervisor.StateUnknown, PID: pid,
			Detail: fmt.Sprintf("QEMU runs but its QMP socket does not answer: %v", err)}, nil
	}
	return hypervisor.Status{}, err
}

func statusFromQMP(pid int, st StatusInfo, v *vm) hypervisor.Status {
	switch st.Status {
	case "running":
		return hypervisor.Status{State: hypervisor.StateRunning, PID: pid}
	case "shutdown":
		// Powered off; QEMU itself is being quit.
		r, detail := v.exitReason()
		if r == hypervisor.ExitNone {
			r = hypervisor.ExitGuestShutdown
		}
		return hypervisor.Status{State: hypervisor.StateStopped, PID: pid, ExitReason: r, Detail: detail}
	default:
		// paused, suspended, guest-panicked, internal-error, io-error,
		// inmigrate, …: the vCPUs do not run; say which.
		return hypervisor.Status{State: hypervisor.StatePaused, PID: pid, Detail: "QEMU status " + st.Status}
	}
}

// Reattach connects to the VM's QEMU if it runs (after a labcloudd
// restart) so power-offs and crashes are noticed from now on, and
// reports its status. The QEMU is found through the run directory: the
// pidfile names the process, /proc confirms it is this VM's QEMU (its
// command line holds this VM's QMP socket), and the QMP socket is dialed.
func (d *Driver) Reattach(ctx context.Context, id string) (hypervisor.Status, error) {
	v, err := d.handle(id)
	if err != nil {
		return hypervisor.Status{}, err
	}
	return d.status(ctx, v)
}

// List returns the ids of all VMs defined in RunDir, sorted.
func (d *Driver) List(ctx context.Context) ([]string, error) {
	entries, err := os.ReadDir(d.opts.RunDir)
	if err != nil {
		return nil, fmt.Errorf("listing VMs in %s: %w", d.opts.RunDir, err)
	}
	var ids []string
	for _, e := range entries {
		if !e.IsDir() {
			continue
		}
		if _, err := os.Stat(filepath.Join(d.opts.RunDir, e.Name(), specFile)); err == nil {
			ids = append(ids, e.Name())
		}
	}
	sort.Strings(ids)
	return ids, nil
}

// Stop powers the VM off. Graceful stops press the ACPI power button and
// wait up to the timeout for the guest to power off; whatever is left
// then (or at once, without Graceful) is ended with QMP quit, then
// SIGTERM, then SIGKILL. The exit reason says which way it went.
func (d *Driver) Stop(ctx context.Context, id string, opts hypervisor.StopOptions) error {
	v, err := d.handle(id)
	if err != nil {
		return err
	}
	end, err := v.begin(ctx)
	if err != nil {
		return err
	}
	defer end()
	pid := livePID(v.files)
	if pid == 0 {
		return nil
	}
	v.setStopping(true)
	defer v.setStopping(false)

	mon, attachErr := d.attach(ctx, v)
	if attachErr == nil {
		if st, err := mon.QueryStatus(ctx); err == nil && st.Status == "shutdown" {
			// The guest has powered off by itself; its QEMU is being
			// quit. Let that finish and keep the guest's exit reason.
			if waitExit(ctx, pid, quitTimeout) {
				return nil
			}
		}
	}
	if opts.Graceful && attachErr == nil {
		// A paused guest cannot react to the power button.
		if st, err := mon.QueryStatus(ctx); err == nil && st.Status == "paused" {
			_ = mon.Cont(ctx)
		}
		timeout := opts.Timeout
		if timeout <= 0 {
			timeout = d.opts.StopTimeout
		}
		if err := mon.SystemPowerdown(ctx); err == nil {
			if waitExit(ctx, pid, timeout) {
				v.recordExit(hypervisor.ExitStopped, "", true)
				return nil
			}
			if ctx.Err() != nil {
				return fmt.Errorf("stopping VM %s: %w", id, ctx.Err())
			}
			return d.kill(ctx, v, mon, pid, fmt.Sprintf("the guest did not power off within %s of the ACPI power button; QEMU was quit", timeout))
		}
	}
	detail := "stopped without the guest's help"
	if opts.Graceful {
		detail = fmt.Sprintf("QMP not usable for a graceful stop (%v); QEMU was quit", attachErr)
	}
	return d.kill(ctx, v, mon, pid, detail)
}

func (v *vm) setStopping(b bool) {
	v.mu.Lock()
	v.stopping = b
	v.mu.Unlock()
}

// kill ends QEMU without the guest: quit, SIGTERM, SIGKILL, each given
// quitTimeout. mon may be nil.
func (d *Driver) kill(ctx context.Context, v *vm, mon *Monitor, pid int, detail string) error {
	if mon != nil {
		qctx, cancel := context.WithTimeout(ctx, quitTimeout)
		_ = mon.Quit(qctx)
		cancel()
		if waitExit(ctx, pid, quitTimeout) {
			v.recordExit(hypervisor.ExitForced, detail, true)
			return nil
		}
	}
	for _, sig := range []syscall.Signal{syscall.SIGTERM, syscall.SIGKILL} {
		if err := syscall.Kill(pid, sig); err != nil && !errors.Is(err, syscall.ESRCH) {
			return fmt.Errorf("stopping VM %s (pid %d): %w", v.id, pid, err)
		}
		if waitExit(ctx, pid, quitTimeout) {
			v.recordExit(hypervisor.ExitForced, detail+fmt.Sprintf(" (needed %s)", sig), true)
			return nil
		}
	}
	return fmt.Errorf("stopping VM %s: pid %d survived SIGKILL", v.id, pid)
}

// running returns the QMP connection of a running VM, or Conflict.
func (d *Driver) running(ctx context.Context, v *vm, what string) (*Monitor, error) {
	mon, err := d.attach(ctx, v)
	if errors.Is(err, errNotRunning) {
		return nil, errdefs.Conflict("IncorrectInstanceState", "cannot %s VM %s: it is not running; start it first", what, v.id)
	}
	return mon, err
}

// Reset presses the reset button: the guest reboots in the same QEMU.
func (d *Driver) Reset(ctx context.Context, id string) error {
	v, err := d.handle(id)
	if err != nil {
		return err
	}
	end, err := v.begin(ctx)
	if err != nil {
		return err
	}
	defer end()
	mon, err := d.running(ctx, v, "reset")
	if err != nil {
		return err
	}
	return mon.SystemReset(ctx)
}

// Pause freezes the vCPUs.
func (d *Driver) Pause(ctx context.Context, id string) error {
	return d.simple(ctx, id, "pause", (*Monitor).Stop)
}

// Resume unfreezes the vCPUs.
func (d *Driver) Resume(ctx context.Context, id string) error {
	return d.simple(ctx, id, "resume", (*Monitor).Cont)
}

func (d *Driver) simple(ctx context.Context, id, what string, f func(*Monitor, context.Context) error) error {
	v, err := d.handle(id)
	if err != nil {
		return err
	}
	end, err := v.begin(ctx)
	if err != nil {
		return err
	}
	defer end()
	mon, err := d.running(ctx, v, what)
	if err != nil {
		return err
	}
	return f(mon, ctx)
}

// Destroy ends the VM's QEMU without the guest's help and removes its run
// directory. Disk images are left alone.
func (d *Driver) Destroy(ctx context.Context, id string) error {
	v, err := d.handle(id)
	if err != nil {
		return err
	}
	end, err := v.begin(ctx)
	if err != nil {
		return err
	}
	defer end()
	if pid := livePID(v.files); pid > 0 {
		v.setStopping(true)
		mon, _ := d.attach(ctx, v)
		if err := d.kill(ctx, v, mon, pid, "destroyed"); err != nil {
			v.setStopping(false)
			return err
		}
	}
	v.detach()
	if err := os.RemoveAll(v.files.Dir); err != nil {
		return fmt.Errorf("removing run directory of VM %s: %w", id, err)
	}
	d.mu.Lock()
	delete(d.vms, id)
	d.mu.Unlock()
	return nil
}

// Console names the console log and socket.
func (d *Driver) Console(ctx context.Context, id string) (hypervisor.Console, error) {
	v, err := d.handle(id)
	if err != nil {
		return hypervisor.Console{}, err
	}
	return hypervisor.Console{LogPath: v.files.ConsoleLog, SocketPath: v.files.ConsoleSocket}, nil
}

// change runs an attach/detach: it loads the definition, lets f change it
// (and the running VM, given a QMP connection, or nil when stopped), and
// saves it.
func (d *Driver) change(ctx context.Context, id string, f func(spec *hypervisor.Spec, mon *Monitor) error) error {
	v, err := d.handle(id)
	if err != nil {
		return err
	}
	end, err := v.begin(ctx)
	if err != nil {
		return err
	}
	defer end()
	spec, err := v.loadSpec()
	if err != nil {
		return err
	}
	mon, err := d.attach(ctx, v)
	if errors.Is(err, errNotRunning) {
		mon, err = nil, nil
	}
	if err != nil {
		return err
	}
	if err := f(&spec, mon); err != nil {
		return err
	}
	return v.saveSpec(spec)
}

func deviceIDTaken(spec *hypervisor.Spec, id string) bool {
	return slices.ContainsFunc(spec.Disks, func(d hypervisor.Disk) bool { return d.ID == id }) ||
		slices.ContainsFunc(spec.NICs, func(n hypervisor.NIC) bool { return n.ID == id })
}

// AttachDisk adds disk to the definition and, when the VM runs, hot-plugs
// it behind a free root port: a throttle group, the blockdev node chain
// and the virtio-blk device, undone step by step if a later step fails.
func (d *Driver) AttachDisk(ctx context.Context, id string, disk hypervisor.Disk) error {
	if err := disk.Validate(); err != nil {
		return err
	}
	return d.change(ctx, id, func(spec *hypervisor.Spec, mon *Monitor) error {
		if deviceIDTaken(spec, disk.ID) {
			return errdefs.AlreadyExists("", "VM %s already has a device %s; detach it first or use another id", id, disk.ID)
		}
		next := *spec
		next.Disks = append(slices.Clone(spec.Disks), disk)
		if err := next.Validate(); err != nil {
			return err
		}
		if mon != nil {
			if _, err := os.Stat(disk.Path); err != nil {
				return errdefs.InvalidParameter("", "disk %s: %s is not usable (%v); check the path", disk.ID, disk.Path, err)
			}
			if err := d.dropCutDisk(ctx, mon, id, disk.ID); err != nil {
				return err
			}
			port, err := freePort(ctx, mon)
			if err != nil {
				return err
			}
			dc := DiskConfig{Disk: disk, Port: port, HostDevice: isBlockDevice(disk.Path)}
			if err := hotplugDisk(ctx, mon, dc); err != nil {
				return fmt.Errorf("hot-plugging disk %s into VM %s: %w", disk.ID, id, err)
			}
		}
		*spec = next
		return nil
	})
}

func hotplugDisk(ctx context.Context, mon *Monitor, dc DiskConfig) (err error) {
	// undo runs in reverse on failure, even when ctx is what failed.
	var undo []func(context.Context)
	defer func() {
		if err == nil {
			return
		}
		uctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), quitTimeout)
		defer cancel()
		for i := len(undo) - 1; i >= 0; i-- {
			undo[i](uctx)
		}
	}()
	if dc.KeyFile != "" {
		sec := map[string]any{"qom-type": "secret", "id": secretID(dc.ID), "file": dc.KeyFile, "format": "raw"}
		if err := mon.ObjectAdd(ctx, sec); err != nil {
			return err
		}
		undo = append(undo, func(c context.Context) { _ = mon.ObjectDel(c, secretID(dc.ID)) })
	}
	group := throttleGroupObject(dc.ID, dc.Throttle)
	if err := mon.Run(ctx, "object-add", group, nil); err != nil {
		return err
	}
	undo = append(undo, func(c context.Context) { _ = mon.ObjectDel(c, group.ID) })
	names := []string{fileNode(dc.ID), formatNode(dc.ID), throttleNode(dc.ID)}
	for i, n := range diskNodes(dc) {
		if err := mon.BlockdevAdd(ctx, n); err != nil {
			return err
		}
		name := names[i]
		undo = append(undo, func(c context.Context) { _ = mon.BlockdevDel(c, name) })
	}
	return mon.DeviceAdd(ctx, diskDevice(dc).qmp())
}

// freePort finds a root port with nothing behind it, asking QEMU
// (query-pci) rather than remembering, so it is right after a restart
// and after earlier detaches.
func freePort(ctx context.Context, mon *Monitor) (string, error) {
	buses, err := mon.QueryPCI(ctx)
	if err != nil {
		return "", err
	}
	var free []string
	for _, b := range buses {
		for _, dev := range b.Devices {
			if strings.HasPrefix(dev.QDevID, "rp") && dev.Bridge != nil && len(dev.Bridge.Devices) == 0 {
				free = append(free, dev.QDevID)
			}
		}
	}
	if len(free) == 0 {
		return "", errdefs.LimitExceeded("AttachmentLimitExceeded", "no free hot-plug slot left; stop the VM and attach the device while it is stopped, or detach another device")
	}
	// Lowest port first, so placement is predictable.
	sort.Slice(free, func(i, j int) bool {
		if len(free[i]) != len(free[j]) {
			return len(free[i]) < len(free[j])
		}
		return free[i] < free[j]
	})
	return free[0], nil
}

// unplug asks the guest to release a device and waits for QEMU's
// DEVICE_DELETED. A device QEMU does not know counts as gone.
func (d *Driver) unplug(ctx context.Context, mon *Monitor, vmID, devID string) error {
	return d.unplugWithin(ctx, mon, vmID, devID, d.opts.DetachTimeout)
}

// unplugWithin is unplug with its own bound on the guest's answer.
func (d *Driver) unplugWithin(ctx context.Context, mon *Monitor, vmID, devID string, timeout time.Duration) error {
	events, cancel := mon.Subscribe()
	defer cancel()
	if err := mon.DeviceDel(ctx, devID); err != nil {
		if isNotFound(err) {
			return nil
		}
		return err
	}
	wctx, wcancel := context.WithTimeout(ctx, timeout)
	defer wcancel()
	_, err := WaitEvent(wctx, events, func(ev Event) bool {
		dev, _, ok := DeviceDeletedOf(ev)
		return ok && dev == devID
	})
	if err != nil {
		return errdefs.Wrap(errdefs.ClassConflict, "", err, "the guest of VM %s did not release device %s within %s (it may not support PCIe hot-unplug); stop the VM, or detach with force, to detach it", vmID, devID, timeout)
	}
	return nil
}

// DetachDisk hot-unplugs the disk when the VM runs (waiting for the guest)
// and removes it from the definition.
func (d *Driver) DetachDisk(ctx context.Context, id, diskID string) error {
	return d.change(ctx, id, func(spec *hypervisor.Spec, mon *Monitor) error {
		i := slices.IndexFunc(spec.Disks, func(dk hypervisor.Disk) bool { return dk.ID == diskID })
		if i < 0 {
			return errdefs.NotFound("", "VM %s has no disk %s", id, diskID)
		}
		if mon != nil {
			if err := d.unplug(ctx, mon, id, diskDeviceID(diskID)); err != nil {
				return err
			}
			d.dropDiskNodes(ctx, mon, id, spec.Disks[i])
		}
		spec.Disks = slices.Delete(spec.Disks, i, i+1)
		return nil
	})
}

// dropDiskNodes removes the block nodes and objects of a disk whose
// device the guest has released.
func (d *Driver) dropDiskNodes(ctx context.Context, mon *Monitor, vmID string, disk hypervisor.Disk) {
	var errs []error
	for _, n := range []string{throttleNode(disk.ID), formatNode(disk.ID), fileNode(disk.ID)} {
		if err := mon.BlockdevDel(ctx, n); err != nil && !isNotFound(err) {
			errs = append(errs, err)
		}
	}
	if err := mon.ObjectDel(ctx, throttleGroup(disk.ID)); err != nil && !isNotFound(err) {
		errs = append(errs, err)
	}
	if disk.KeyFile != "" {
		if err := mon.ObjectDel(ctx, secretID(disk.ID)); err != nil && !isNotFound(err) {
			errs = append(errs, err)
		}
	}
	if err := errors.Join(errs...); err != nil {
		// The guest no longer sees the disk; what is left is
		// QEMU-internal and goes away with this QEMU.
		d.log.Warn("cleaning up detached disk", "vm", vmID, "disk", disk.ID, "err", err)
	}
}

// isNotFound tells QEMU's "no such device/node/object" answers, which
// come as class DeviceNotFound or as a GenericError with that message.
func isNotFound(err error) bool {
	var ce *CommandError
	return errors.As(err, &ce) && (ce.Class == "DeviceNotFound" ||
		strings.Contains(ce.Message, "not found") || strings.Contains(ce.Message, "Cannot find"))
}

// AttachNIC adds nic to the definition and, when the VM runs, hot-plugs a
// tap backend and a virtio-net device behind a free root port.
func (d *Driver) AttachNIC(ctx context.Context, id string, nic hypervisor.NIC) error {
	if err := nic.Validate(); err != nil {
		return err
	}
	return d.change(ctx, id, func(spec *hypervisor.Spec, mon *Monitor) error {
		if deviceIDTaken(spec, nic.ID) {
			return errdefs.AlreadyExists("", "VM %s already has a device %s; detach it first or use another id", id, nic.ID)
		}
		next := *spec
		next.NICs = append(slices.Clone(spec.NICs), nic)
		if err := next.Validate(); err != nil {
			return err
		}
		if mon != nil {
			port, err := freePort(ctx, mon)
			if err != nil {
				return err
			}
			if err := mon.NetdevAdd(ctx, netdevQMP(nic)); err != nil {
				return fmt.Errorf("hot-plugging NIC %s into VM %s (does tap %s exist?): %w", nic.ID, id, nic.Tap, err)
			}
			if err := mon.DeviceAdd(ctx, nicDevice(NICConfig{NIC: nic, Port: port}).qmp()); err != nil {
				_ = mon.NetdevDel(context.WithoutCancel(ctx), netdevID(nic.ID))
				return fmt.Errorf("hot-plugging NIC %s into VM %s: %w", nic.ID, id, err)
			}
		}
		*spec = next
		return nil
	})
}

// DetachNIC hot-unplugs the NIC when the VM runs and removes it from the
// definition. The tap stays.
func (d *Driver) DetachNIC(ctx context.Context, id, nicID string) error {
	return d.change(ctx, id, func(spec *hypervisor.Spec, mon *Monitor) error {
		i := slices.IndexFunc(spec.NICs, func(n hypervisor.NIC) bool { return n.ID == nicID })
		if i < 0 {
			return errdefs.NotFound("", "VM %s has no NIC %s", id, nicID)
		}
		if mon != nil {
			if err := d.unplug(ctx, mon, id, nicDeviceID(nicID)); err != nil {
				return err
			}
			if err := mon.NetdevDel(ctx, netdevID(nicID)); err != nil && !isNotFound(err) {
				d.log.Warn("removing netdev of detached NIC", "vm", id, "nic", nicID, "err", err)
			}
		}
		spec.NICs = slices.Delete(spec.NICs, i, i+1)
		return nil
	})
}

// SetDiskThrottle changes a disk's limits in the definition and, when the
// VM runs, on its throttle group (qom-set "limits"), which takes effect
// at once.
func (d *Driver) SetDiskThrottle(ctx context.Context, id, diskID string, limits hypervisor.Throttle) error {
	return d.change(ctx, id, func(spec *hypervisor.Spec, mon *Monitor) error {
		i := slices.IndexFunc(spec.Disks, func(dk hypervisor.Disk) bool { return dk.ID == diskID })
		if i < 0 {
			return errdefs.NotFound("", "VM %s has no disk %s", id, diskID)
		}
		dk := spec.Disks[i]
		if limits.IsZero() {
			dk.Throttle = nil
		} else {
			l := limits
			dk.Throttle = &l
		}
		if err := dk.Validate(); err != nil {
			return err
		}
		if mon != nil {
			if err := mon.QOMSet(ctx, "/objects/"+throttleGroup(diskID), "limits", toLimits(dk.Throttle)); err != nil {
				return fmt.Errorf("setting I/O limits of disk %s on VM %s: %w", diskID, id, err)
			}
		}
		spec.Disks[i] = dk
		return nil
	})
}

// ResizeDisk tells a running VM that disk diskID's image grew to
// sizeBytes: block_resize on the node the guest's device sits on (the
// throttle node, which passes it down to the format node), which the
// guest's virtio-blk sees as a capacity change. Resizing the format node
// itself grows the image but never reaches the device above the filter:
// the guest kept the old size. On a VM that is not running it does
// nothing: QEMU reads the size at the next start.
func (d *Driver) ResizeDisk(ctx context.Context, id, diskID string, sizeBytes int64) error {
	v, err := d.handle(id)
	if err != nil {
		return err
	}
	end, err := v.begin(ctx)
	if err != nil {
		return err
	}
	defer end()
	spec, err := v.loadSpec()
	if err != nil {
		return err
	}
	if !slices.ContainsFunc(spec.Disks, func(dk hypervisor.Disk) bool { return dk.ID == diskID }) {
		return errdefs.NotFound("", "VM %s has no disk %s", id, diskID)
	}
	mon, err := d.attach(ctx, v)
	if errors.Is(err, errNotRunning) {
		return nil
	}
	if err != nil {
		return err
	}
	if err := mon.Run(ctx, "block_resize", map[string]any{"node-name": throttleNode(diskID), "size": sizeBytes}, nil); err != nil {
		return fmt.Errorf("growing disk %s of VM %s to %d bytes: %w", diskID, id, sizeBytes, err)
	}
	return nil
}

// Monitor returns the QMP connection of a running VM, for commands the
// Driver interface does not cover (diagnostics, tests). It is shared with
// the driver: do not Close it, and do not run commands that change what
// the driver manages (devices, run state) behind its back.
func (d *Driver) Monitor(ctx context.Context, id string) (*Monitor, error) {
	v, err := d.handle(id)
	if err != nil {
		return nil, err
	}
	return d.running(ctx, v, "inspect")
}
