// Package fake is an in-memory hypervisor.Driver for other packages' unit
// tests: no QEMU, no root, instant boots. It passes the same conformance
// suite (hvtest) as the qemu driver, so code tested against it behaves the
// same against the real thing.
//
// The "guest" is simulated: every Start and Reset counts as a boot and
// writes a line to a real console log file, hot-plugged devices are seen
// at once, and tests can make the guest power itself off, crash, or ignore
// the power button. A real unix socket stands for the interactive console
// (lines written to it are appended to the log). Reopen gives a second
// Driver over the same simulated host, as a labcloudd restart would.
package fake

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"sync"

	"github.com/labcloud/labcloud/hypervisor"
	"github.com/labcloud/labcloud/internal/errdefs"
)

var (
	_ hypervisor.Driver        = (*Driver)(nil)
	_ hypervisor.Pauser        = (*Driver)(nil)
	_ hypervisor.DiskThrottler = (*Driver)(nil)
	_ hypervisor.DiskResizer   = (*Driver)(nil)
	_ hypervisor.Reattacher    = (*Driver)(nil)
	_ hypervisor.Lister        = (*Driver)(nil)
)

// BootLine is written to the console log at every simulated boot.
const BootLine = "fake-guest: booted"

// Driver is a fake hypervisor.Driver. Safe for concurrent use.
type Driver struct {
	h *host
}

type host struct {
	mu     sync.Mutex
	dir    string
	vms    map[string]*vm
	inject map[string]error
}

type vm struct {
	spec              hypervisor.Spec
	state             hypervisor.State
	exit              hypervisor.ExitReason
	detail            string
	boots             int
	ignorePowerButton bool
	// holdDisks: the guest never answers a disk's unplug request.
	holdDisks bool
	// cut: disks detached by force that the guest has not let go of yet
	cut []string
	// live devices, what the running guest sees
	disks []hypervisor.Disk
	nics  []hypervisor.NIC
	ln    net.Listener
	// sizes are the disk sizes ResizeDisk told the running guest.
	sizes map[string]int64
}

// New returns a fake driver keeping console logs and sockets in dir (a
// t.TempDir()).
func New(dir string) *Driver {
	return &Driver{h: &host{dir: dir, vms: map[string]*vm{}, inject: map[string]error{}}}
}

// Reopen returns a second driver over the same simulated host, as a
// restarted labcloudd would see it: running VMs are still running.
func (d *Driver) Reopen() *Driver { return &Driver{h: d.h} }

// Close does nothing (a fake has no connections); VMs keep "running".
func (d *Driver) Close() error { return nil }

// InjectError makes the next call of the named method ("Start",
// "AttachDisk", …) fail with err, for testing callers' error paths.
func (d *Driver) InjectError(method string, err error) {
	d.h.mu.Lock()
	d.h.inject[method] = err
	d.h.mu.Unlock()
}

// GuestView is what the simulated guest sees.
type GuestView struct {
	Boots int
	Disks []hypervisor.Disk
	NICs  []hypervisor.NIC
}

// Guest reports what the guest of VM id sees; ok is false for an unknown
// VM.
func (d *Driver) Guest(id string) (view GuestView, ok bool) {
	d.h.mu.Lock()
	defer d.h.mu.Unlock()
	v, ok := d.h.vms[id]
	if !ok {
		return GuestView{}, false
	}
	return GuestView{Boots: v.boots, Disks: slices.Clone(v.disks), NICs: slices.Clone(v.nics)}, true
}

// Spec returns VM id's current definition.
func (d *Driver) Spec(id string) (hypervisor.Spec, bool) {
	d.h.mu.Lock()
	defer d.h.mu.Unlock()
	v, ok := d.h.vms[id]
	if !ok {
		return hypervisor.Spec{}, false
	}
	s := v.spec
	s.Disks, s.NICs = slices.Clone(s.Disks), slices.Clone(s.NICs)
	return s, true
}

// GuestPowerOff simulates `shutdown -h now` inside the running guest.
func (d *Driver) GuestPowerOff(id string) error {
	return d.with(id, "", func(v *vm) error {
		if v.state == hypervisor.StateStopped {
			return errdefs.Conflict("", "VM %s is not running", id)
		}
		d.h.halt(v, hypervisor.ExitGuestShutdown, "")
		return nil
	})
}

// Crash simulates the VM's process dying (kill -9, OOM).
func (d *Driver) Crash(id string) error {
	return d.with(id, "", func(v *vm) error {
		if v.state == hypervisor.StateStopped {
			return errdefs.Conflict("", "VM %s is not running", id)
		}
		d.h.halt(v, hypervisor.ExitCrashed, "simulated crash")
		return nil
	})
}

// IgnorePowerButton makes the guest ignore graceful Stops, so they run
// into the timeout and end as ExitForced.
func (d *Driver) IgnorePowerButton(id string, ignore bool) error {
	return d.with(id, "", func(v *vm) error { v.ignorePowerButton = ignore; return nil })
}

// HoldDisks makes the running guest keep its disks: DetachDisk fails
// with Conflict as QEMU's does when the guest does not answer, and only
// ForceDetachDisk takes a disk away.
func (d *Driver) HoldDisks(id string, hold bool) error {
	return d.with(id, "", func(v *vm) error {
		v.holdDisks = hold
		v.releaseCut()
		return nil
	})
}

// answers reports whether the guest answers unplug requests now: not
// while it holds its disks or is paused.
func (v *vm) answers() bool { return !v.holdDisks && v.state != hypervisor.StatePaused }

// releaseCut lets go of force-detached devices once the guest answers.
func (v *vm) releaseCut() {
	if !v.answers() {
		return
	}
	v.disks = slices.DeleteFunc(v.disks, func(dk hypervisor.Disk) bool { return slices.Contains(v.cut, dk.ID) })
	v.cut = nil
}

func notFound(id string) error {
	return errdefs.NotFound("", "VM %s is not defined on this host; create it first", id)
}

// with runs f on VM id under the host lock, after any injected error.
func (d *Driver) with(id, method string, f func(v *vm) error) error {
	d.h.mu.Lock()
	defer d.h.mu.Unlock()
	if method != "" {
		if err, ok := d.h.inject[method]; ok {
			delete(d.h.inject, method)
			return err
		}
	}
	if err := hypervisor.ValidateID(id); err != nil {
		return err
	}
	v, ok := d.h.vms[id]
	if !ok {
		return notFound(id)
	}
	return f(v)
}

func (h *host) vmDir(id string) string { return filepath.Join(h.dir, id) }

func (h *host) logLine(id, line string) {
	f, err := os.OpenFile(filepath.Join(h.vmDir(id), "console.log"), os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		return
	}
	fmt.Fprintln(f, line)
	f.Close()
}

// boot simulates a boot: count it, log it, show the defined devices.
func (h *host) boot(id string, v *vm) {
	v.boots++
	v.disks, v.nics = slices.Clone(v.spec.Disks), slices.Clone(v.spec.NICs)
	h.logLine(id, BootLine)
}

func (h *host) halt(v *vm, reason hypervisor.ExitReason, detail string) {
	v.state, v.exit, v.detail = hypervisor.StateStopped, reason, detail
	v.disks, v.nics = nil, nil
	if v.ln != nil {
		v.ln.Close()
		v.ln = nil
	}
}

// Create defines a VM.
func (d *Driver) Create(ctx context.Context, spec hypervisor.Spec) error {
	if err := spec.Validate(); err != nil {
		return err
	}
	d.h.mu.Lock()
	defer d.h.mu.Unlock()
	if err, ok := d.h.inject["Create"]; ok {
		delete(d.h.inject, "Create")
		return err
	}
	if _, ok := d.h.vms[spec.ID]; ok {
		return errdefs.AlreadyExists("", "VM %s is already defined on this host; destroy it first or use another id", spec.ID)
	}
	if err := os.MkdirAll(d.h.vmDir(spec.ID), 0o755); err != nil {
		return err
	}
	spec.Disks, spec.NICs = slices.Clone(spec.Disks), slices.Clone(spec.NICs)
	d.h.vms[spec.ID] = &vm{spec: spec, state: hypervisor.StateStopped}
	return nil
}

// Start "boots" the VM; a no-op when it runs (resumes it when paused).
func (d *Driver) Start(ctx context.Context, id string) error {
	return d.with(id, "Start", func(v *vm) error {
		switch v.state {
		case hypervisor.StateRunning:
			return nil
		case hypervisor.StatePaused:
			v.state = hypervisor.StateRunning
			return nil
		}
		ln, err := net.Listen("unix", filepath.Join(d.h.vmDir(id), "console.sock"))
		if err != nil {
			return fmt.Errorf("fake console socket: %w", err)
		}
		v.ln = ln
		go d.h.serveConsole(id, ln)
		v.state, v.exit, v.detail = hypervisor.StateRunning, hypervisor.ExitNone, ""
		d.h.boot(id, v)
		return nil
	})
}

// serveConsole appends what clients type to the console log, the way a
// guest echoing its input would.
func (h *host) serveConsole(id string, ln net.Listener) {
	for {
		c, err := ln.Accept()
		if err != nil {
			return
		}
		go func() {
			defer c.Close()
			sc := bufio.NewScanner(c)
			for sc.Scan() {
				h.mu.Lock()
				h.logLine(id, sc.Text())
				h.mu.Unlock()
			}
		}()
	}
}

// Stop stops the VM: gracefully unless the guest ignores the power
// button (then ExitForced, as after the real driver's timeout).
func (d *Driver) Stop(ctx context.Context, id string, opts hypervisor.StopOptions) error {
	return d.with(id, "Stop", func(v *vm) error {
		if v.state == hypervisor.StateStopped {
			return nil
		}
		switch {
		case opts.Graceful && !v.ignorePowerButton:
			d.h.halt(v, hypervisor.ExitStopped, "")
		case opts.Graceful:
			d.h.halt(v, hypervisor.ExitForced, "the guest did not power off in time")
		default:
			d.h.halt(v, hypervisor.ExitForced, "stopped without the guest's help")
		}
		return nil
	})
}

func running(v *vm, id, what string) error {
	if v.state == hypervisor.StateStopped {
		return errdefs.Conflict("IncorrectInstanceState", "cannot %s VM %s: it is not running; start it first", what, id)
	}
	return nil
}

// Reset "reboots" the guest.
func (d *Driver) Reset(ctx context.Context, id string) error {
	return d.with(id, "Reset", func(v *vm) error {
		if err := running(v, id, "reset"); err != nil {
			return err
		}
		d.h.boot(id, v)
		return nil
	})
}

// Pause freezes the VM.
func (d *Driver) Pause(ctx context.Context, id string) error {
	return d.with(id, "Pause", func(v *vm) error {
		if err := running(v, id, "pause"); err != nil {
			return err
		}
		v.state = hypervisor.StatePaused
		return nil
	})
}

// Resume unfreezes the VM.
func (d *Driver) Resume(ctx context.Context, id string) error {
	return d.with(id, "Resume", func(v *vm) error {
		if err := running(v, id, "resume"); err != nil {
			return err
		}
		v.state = hypervisor.StateRunning
		v.releaseCut()
		return nil
	})
}

// Destroy removes the VM.
func (d *Driver) Destroy(ctx context.Context, id string) error {
	return d.with(id, "Destroy", func(v *vm) error {
		d.h.halt(v, hypervisor.ExitForced, "destroyed")
		delete(d.h.vms, id)
		return os.RemoveAll(d.h.vmDir(id))
	})
}

// Status reports the VM's state. The fake has no processes: PID is 0.
func (d *Driver) Status(ctx context.Context, id string) (hypervisor.Status, error) {
	var st hypervisor.Status
	err := d.with(id, "Status", func(v *vm) error {
		st = hypervisor.Status{State: v.state}
		if v.state == hypervisor.StateStopped {
			st.ExitReason, st.Detail = v.exit, v.detail
		}
		return nil
	})
	return st, err
}

// Reattach reports the status, like the real driver after a restart.
func (d *Driver) Reattach(ctx context.Context, id string) (hypervisor.Status, error) {
	return d.Status(ctx, id)
}

// List returns the defined VMs, sorted.
func (d *Driver) List(ctx context.Context) ([]string, error) {
	d.h.mu.Lock()
	defer d.h.mu.Unlock()
	ids := make([]string, 0, len(d.h.vms))
	for id := range d.h.vms {
		ids = append(ids, id)
	}
	sort.Strings(ids)
	return ids, nil
}

func taken(s hypervisor.Spec, devID string) bool {
	return slices.ContainsFunc(s.Disks, func(d hypervisor.Disk) bool { return d.ID == devID }) ||
		slices.ContainsFunc(s.NICs, func(n hypervisor.NIC) bool { return n.ID == devID })
}

// AttachDisk adds a disk; the running guest sees it at once.
func (d *Driver) AttachDisk(ctx context.Context, id string, disk hypervisor.Disk) error {
	if err := disk.Validate(); err != nil {
		return err
	}
	return d.with(id, "AttachDisk", func(v *vm) error {
		if taken(v.spec, disk.ID) {
			return errdefs.AlreadyExists("", "VM %s already has a device %s; detach it first or use another id", id, disk.ID)
		}
		if slices.Contains(v.cut, disk.ID) {
			return errdefs.Conflict("IncorrectState", "the guest of VM %s has not yet released the device of disk %s, which was detached by force", id, disk.ID)
		}
		v.spec.Disks = append(v.spec.Disks, disk)
		if v.state != hypervisor.StateStopped {
			v.disks = append(v.disks, disk)
		}
		return nil
	})
}

// DetachDisk removes a disk.
func (d *Driver) DetachDisk(ctx context.Context, id, diskID string) error {
	return d.detachDisk(id, diskID, "DetachDisk", false)
}

// ForceDetachDisk removes a disk even from a guest that holds it
// (hypervisor.DiskForceDetacher).
func (d *Driver) ForceDetachDisk(ctx context.Context, id, diskID string) error {
	return d.detachDisk(id, diskID, "ForceDetachDisk", true)
}

func (d *Driver) detachDisk(id, diskID, method string, force bool) error {
	return d.with(id, method, func(v *vm) error {
		match := func(dk hypervisor.Disk) bool { return dk.ID == diskID }
		i := slices.IndexFunc(v.spec.Disks, match)
		if i < 0 {
			return errdefs.NotFound("", "VM %s has no disk %s", id, diskID)
		}
		live := slices.ContainsFunc(v.disks, match)
		if live && !v.answers() && !force {
			return errdefs.Conflict("", "the guest of VM %s did not release device %s", id, diskID)
		}
		v.spec.Disks = slices.Delete(v.spec.Disks, i, i+1)
		if live && !v.answers() {
			v.cut = append(v.cut, diskID) // the device stays until the guest answers
			return nil
		}
		v.disks = slices.DeleteFunc(v.disks, match)
		return nil
	})
}

// AttachNIC adds a NIC; the running guest sees it at once.
func (d *Driver) AttachNIC(ctx context.Context, id string, nic hypervisor.NIC) error {
	if err := nic.Validate(); err != nil {
		return err
	}
	return d.with(id, "AttachNIC", func(v *vm) error {
		if taken(v.spec, nic.ID) {
			return errdefs.AlreadyExists("", "VM %s already has a device %s; detach it first or use another id", id, nic.ID)
		}
		v.spec.NICs = append(v.spec.NICs, nic)
		if v.state != hypervisor.StateStopped {
			v.nics = append(v.nics, nic)
		}
		return nil
	})
}

// DetachNIC removes a NIC.
func (d *Driver) DetachNIC(ctx context.Context, id, nicID string) error {
	return d.with(id, "DetachNIC", func(v *vm) error {
		match := func(n hypervisor.NIC) bool { return n.ID == nicID }
		i := slices.IndexFunc(v.spec.NICs, match)
		if i < 0 {
			return errdefs.NotFound("", "VM %s has no NIC %s", id, nicID)
		}
		v.spec.NICs = slices.Delete(v.spec.NICs, i, i+1)
		v.nics = slices.DeleteFunc(v.nics, match)
		return nil
	})
}

// SetDiskThrottle records new limits.
func (d *Driver) SetDiskThrottle(ctx context.Context, id, diskID string, limits hypervisor.Throttle) error {
	return d.with(id, "SetDiskThrottle", func(v *vm) error {
		i := slices.IndexFunc(v.spec.Disks, func(dk hypervisor.Disk) bool { return dk.ID == diskID })
		if i < 0 {
			return errdefs.NotFound("", "VM %s has no disk %s", id, diskID)
		}
		dk := v.spec.Disks[i]
		dk.Throttle = nil
		if !limits.IsZero() {
			l := limits
			dk.Throttle = &l
		}
		if err := dk.Validate(); err != nil {
			return err
		}
		v.spec.Disks[i] = dk
		return nil
	})
}

// Console names the console log and socket.
func (d *Driver) Console(ctx context.Context, id string) (hypervisor.Console, error) {
	var c hypervisor.Console
	err := d.with(id, "Console", func(v *vm) error {
		c = hypervisor.Console{
			LogPath:    filepath.Join(d.h.vmDir(id), "console.log"),
			SocketPath: filepath.Join(d.h.vmDir(id), "console.sock"),
		}
		return nil
	})
	return c, err
}

// ErrInjected is a ready-made error for InjectError.
var ErrInjected = errors.New("fake: injected failure")

// ResizeDisk records the new size the running guest sees (DiskSize).
func (d *Driver) ResizeDisk(ctx context.Context, id, diskID string, sizeBytes int64) error {
	return d.with(id, "ResizeDisk", func(v *vm) error {
		if !slices.ContainsFunc(v.spec.Disks, func(dk hypervisor.Disk) bool { return dk.ID == diskID }) {
			return errdefs.NotFound("", "VM %s has no disk %s", id, diskID)
		}
		if v.state != hypervisor.StateStopped {
			if v.sizes == nil {
				v.sizes = map[string]int64{}
			}
			v.sizes[diskID] = sizeBytes
		}
		return nil
	})
}

// DiskSize is the size the guest of VM id was last told of disk diskID
// by ResizeDisk (0: never resized while running).
func (d *Driver) DiskSize(id, diskID string) int64 {
	d.h.mu.Lock()
	defer d.h.mu.Unlock()
	if v, ok := d.h.vms[id]; ok {
		return v.sizes[diskID]
	}
	return 0
}
