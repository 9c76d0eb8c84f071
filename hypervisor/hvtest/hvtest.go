// Package hvtest is the conformance suite of hypervisor.Driver: the one set
// of behaviours the instance controller relies on, run against the qemu
// driver with real QEMU and against the fake, so that the fake cannot
// drift from the real thing (containerd's snapshots/testsuite is the
// model).
//
// A driver's test supplies a Harness: how to make drivers, bootable specs,
// disks and NICs, and how to look inside the guest.
package hvtest

import (
	"context"
	"errors"
	"io"
	"net"
	"os"
	"os/exec"
	"slices"
	"testing"
	"time"

	"github.com/labcloud/labcloud/hypervisor"
	"github.com/labcloud/labcloud/internal/errdefs"
)

// Harness adapts a driver to the suite. Func fields marked optional may be
// nil; the checks that need them are then skipped with the reason.
type Harness struct {
	// NewDriver returns a driver over a fresh, empty host (its own run
	// directory). The harness registers its cleanup.
	NewDriver func(t *testing.T) hypervisor.Driver
	// Reopen returns a second driver over the same host as d, the way a
	// restarted labcloudd would make one. The suite closes d first when
	// it is an io.Closer.
	Reopen func(t *testing.T, d hypervisor.Driver) hypervisor.Driver
	// Spec returns a bootable definition named id.
	Spec func(t *testing.T, id string) hypervisor.Spec
	// NewDisk returns a fresh disk (image already created) with the given
	// device id and a serial the guest can see.
	NewDisk func(t *testing.T, id string) hypervisor.Disk
	// NewNIC returns a NIC on a tap the harness created and removes in
	// t.Cleanup. Optional.
	NewNIC func(t *testing.T, id string) hypervisor.NIC

	// Boots reports how many times the guest has finished booting since
	// the VM was created.
	Boots func(t *testing.T, d hypervisor.Driver, id string) int
	// SeesDisk reports whether the running guest sees a disk with this
	// serial; SeesNIC one with this MAC.
	SeesDisk func(t *testing.T, d hypervisor.Driver, id, serial string) bool
	SeesNIC  func(t *testing.T, d hypervisor.Driver, id, mac string) bool
	// GuestDiskBytes is the size the running guest's kernel gives the
	// disk with this serial; nil: the harness cannot tell.
	GuestDiskBytes func(t *testing.T, d hypervisor.Driver, id, serial string) int64
	// PowerOffFromGuest makes the guest power itself off, as
	// `shutdown -h now` inside it would.
	PowerOffFromGuest func(t *testing.T, d hypervisor.Driver, id string)
	// Crash ends the VM behind the driver's back (kill -9 of its process).
	Crash func(t *testing.T, d hypervisor.Driver, id string)
	// Processes counts the host processes running VM id. Optional: for
	// drivers with a process per VM, to prove there is never a second.
	Processes func(t *testing.T, d hypervisor.Driver, id string) int

	// HasPID is true when Status reports a process id while running.
	HasPID bool
	// Timeout bounds each wait for the guest (boot, hot-plug, power-off).
	Timeout time.Duration
}

// Run runs the suite.
func Run(t *testing.T, h Harness) {
	if h.Timeout == 0 {
		h.Timeout = 30 * time.Second
	}
	t.Run("CreateRejectsBadSpecs", func(t *testing.T) { t.Parallel(); testCreateRejectsBadSpecs(t, h) })
	t.Run("CreateTwice", func(t *testing.T) { t.Parallel(); testCreateTwice(t, h) })
	t.Run("UnknownVM", func(t *testing.T) { t.Parallel(); testUnknownVM(t, h) })
	t.Run("StopWithoutGuestAndCrash", func(t *testing.T) { t.Parallel(); testStopWithoutGuestAndCrash(t, h) })
	t.Run("Lifecycle", func(t *testing.T) { t.Parallel(); testLifecycle(t, h) })
}

func ctxT(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	t.Cleanup(cancel)
	return ctx
}

// eventually polls cond until it holds or timeout passes.
func eventually(t *testing.T, timeout time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %s waiting until %s", timeout, what)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

func wantClass(t *testing.T, what string, err error, class errdefs.Class) {
	t.Helper()
	if err == nil {
		t.Fatalf("%s: got no error, want %s", what, class)
	}
	if got := errdefs.ClassOf(err); got != class {
		t.Fatalf("%s: got %v (class %s), want class %s", what, err, got, class)
	}
}

func status(t *testing.T, d hypervisor.Driver, id string) hypervisor.Status {
	t.Helper()
	st, err := d.Status(ctxT(t), id)
	if err != nil {
		t.Fatalf("Status(%s): %v", id, err)
	}
	return st
}

func must(t *testing.T, what string, err error) {
	t.Helper()
	if err != nil {
		t.Fatalf("%s: %v", what, err)
	}
}

func testCreateRejectsBadSpecs(t *testing.T, h Harness) {
	d := h.NewDriver(t)
	good := h.Spec(t, "i-good")
	disk := hypervisor.Disk{ID: "vol-1", Path: "/nonexistent/vol-1.qcow2", Format: hypervisor.FormatQCOW2}
	nic := hypervisor.NIC{ID: "eni-1", Tap: "lctap0", MAC: "02:00:00:00:00:01"}
	tests := []struct {
		name string
		edit func(s *hypervisor.Spec)
	}{
		{"empty id", func(s *hypervisor.Spec) { s.ID = "" }},
		{"id with slash", func(s *hypervisor.Spec) { s.ID = "i-../../etc" }},
		{"zero vcpus", func(s *hypervisor.Spec) { s.VCPUs = 0 }},
		{"too little memory", func(s *hypervisor.Spec) { s.MemoryMiB = 16 }},
		{"unknown accel", func(s *hypervisor.Spec) { s.Accel = "hvf" }},
		{"initrd without kernel", func(s *hypervisor.Spec) {
			s.Kernel, s.Initrd = "", "/boot/initrd.img"
			s.Disks = []hypervisor.Disk{disk}
		}},
		{"nothing to boot", func(s *hypervisor.Spec) { s.Kernel, s.Initrd, s.Append, s.Disks = "", "", "", nil }},
		{"disk without format", func(s *hypervisor.Spec) { d := disk; d.Format = ""; s.Disks = []hypervisor.Disk{d} }},
		{"disk format vmdk", func(s *hypervisor.Spec) { d := disk; d.Format = "vmdk"; s.Disks = []hypervisor.Disk{d} }},
		{"disk serial too long", func(s *hypervisor.Spec) {
			d := disk
			d.Serial = "vol0123456789abcdef012"
			s.Disks = []hypervisor.Disk{d}
		}},
		{"aio native with writeback", func(s *hypervisor.Spec) { d := disk; d.AIO = "native"; s.Disks = []hypervisor.Disk{d} }},
		{"negative throttle", func(s *hypervisor.Spec) {
			d := disk
			d.Throttle = &hypervisor.Throttle{IOPSTotal: -1}
			s.Disks = []hypervisor.Disk{d}
		}},
		{"duplicate device id", func(s *hypervisor.Spec) {
			n := nic
			n.ID = disk.ID
			s.Disks = []hypervisor.Disk{disk}
			s.NICs = []hypervisor.NIC{n}
		}},
		{"bad MAC", func(s *hypervisor.Spec) { n := nic; n.MAC = "02:00:00:00:00"; s.NICs = []hypervisor.NIC{n} }},
		{"multicast MAC", func(s *hypervisor.Spec) { n := nic; n.MAC = "01:00:5e:00:00:01"; s.NICs = []hypervisor.NIC{n} }},
		{"tap name too long", func(s *hypervisor.Spec) { n := nic; n.Tap = "tap0123456789abcdef"; s.NICs = []hypervisor.NIC{n} }},
		{"bad SMBIOS uuid", func(s *hypervisor.Spec) { s.SMBIOS.UUID = "ec2-not-a-uuid" }},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			s := good
			s.Disks = slices.Clone(good.Disks)
			s.NICs = slices.Clone(good.NICs)
			tc.edit(&s)
			wantClass(t, "Create", d.Create(ctxT(t), s), errdefs.ClassInvalidParameter)
		})
	}
}

func testCreateTwice(t *testing.T, h Harness) {
	d := h.NewDriver(t)
	ctx := ctxT(t)
	s := h.Spec(t, "i-twice")
	must(t, "Create", d.Create(ctx, s))
	wantClass(t, "second Create", d.Create(ctx, s), errdefs.ClassAlreadyExists)
	st := status(t, d, s.ID)
	if st.State != hypervisor.StateStopped || st.PID != 0 || st.ExitReason != hypervisor.ExitNone {
		t.Fatalf("a created VM: got %+v, want stopped, no pid, no exit reason", st)
	}
	if l, ok := d.(hypervisor.Lister); ok {
		ids, err := l.List(ctx)
		must(t, "List", err)
		if !slices.Equal(ids, []string{s.ID}) {
			t.Fatalf("List = %v, want [%s]", ids, s.ID)
		}
	}
	wantClass(t, "Reset of a stopped VM", d.Reset(ctx, s.ID), errdefs.ClassConflict)
	must(t, "Stop of a stopped VM", d.Stop(ctx, s.ID, hypervisor.StopOptions{Graceful: true}))
	must(t, "Destroy", d.Destroy(ctx, s.ID))
}

func testUnknownVM(t *testing.T, h Harness) {
	d := h.NewDriver(t)
	ctx := ctxT(t)
	const id = "i-nobody"
	disk := hypervisor.Disk{ID: "vol-1", Path: "/x.qcow2", Format: hypervisor.FormatQCOW2}
	nic := hypervisor.NIC{ID: "eni-1", Tap: "lctap0", MAC: "02:00:00:00:00:01"}
	_, err := d.Status(ctx, id)
	wantClass(t, "Status", err, errdefs.ClassNotFound)
	_, err = d.Console(ctx, id)
	wantClass(t, "Console", err, errdefs.ClassNotFound)
	wantClass(t, "Start", d.Start(ctx, id), errdefs.ClassNotFound)
	wantClass(t, "Stop", d.Stop(ctx, id, hypervisor.StopOptions{}), errdefs.ClassNotFound)
	wantClass(t, "Reset", d.Reset(ctx, id), errdefs.ClassNotFound)
	wantClass(t, "Destroy", d.Destroy(ctx, id), errdefs.ClassNotFound)
	wantClass(t, "AttachDisk", d.AttachDisk(ctx, id, disk), errdefs.ClassNotFound)
	wantClass(t, "DetachDisk", d.DetachDisk(ctx, id, disk.ID), errdefs.ClassNotFound)
	wantClass(t, "AttachNIC", d.AttachNIC(ctx, id, nic), errdefs.ClassNotFound)
	wantClass(t, "DetachNIC", d.DetachNIC(ctx, id, nic.ID), errdefs.ClassNotFound)
	if r, ok := d.(hypervisor.Reattacher); ok {
		_, err := r.Reattach(ctx, id)
		wantClass(t, "Reattach", err, errdefs.ClassNotFound)
	}
}

// testStopWithoutGuestAndCrash covers the ways a VM ends without the
// guest's help. None needs a booted guest.
func testStopWithoutGuestAndCrash(t *testing.T, h Harness) {
	d := h.NewDriver(t)
	ctx := ctxT(t)
	s := h.Spec(t, "i-forced")
	must(t, "Create", d.Create(ctx, s))

	must(t, "Start", d.Start(ctx, s.ID))
	must(t, "Stop (not graceful)", d.Stop(ctx, s.ID, hypervisor.StopOptions{Graceful: false}))
	if st := status(t, d, s.ID); st.State != hypervisor.StateStopped || st.ExitReason != hypervisor.ExitForced || st.PID != 0 {
		t.Fatalf("after a forced Stop: got %+v, want stopped/forced, no pid", st)
	}

	must(t, "Start again", d.Start(ctx, s.ID))
	if st := status(t, d, s.ID); st.State != hypervisor.StateRunning || st.ExitReason != hypervisor.ExitNone {
		t.Fatalf("after a second Start: got %+v, want running and no exit reason", st)
	}
	h.Crash(t, d, s.ID)
	eventually(t, h.Timeout, "a crashed VM reports stopped/crashed", func() bool {
		st := status(t, d, s.ID)
		return st.State == hypervisor.StateStopped && st.ExitReason == hypervisor.ExitCrashed
	})
	// The verdict stays, also for a driver that did not see it happen.
	if h.Reopen != nil {
		if c, ok := d.(io.Closer); ok {
			c.Close()
		}
		d = h.Reopen(t, d)
		if st := status(t, d, s.ID); st.ExitReason != hypervisor.ExitCrashed {
			t.Fatalf("a reopened driver reports %+v for the crashed VM, want crashed", st)
		}
	}

	must(t, "Start after crash", d.Start(ctx, s.ID))
	must(t, "Destroy of a running VM", d.Destroy(ctx, s.ID))
	_, err := d.Status(ctx, s.ID)
	wantClass(t, "Status after Destroy", err, errdefs.ClassNotFound)
	if h.Processes != nil {
		if n := h.Processes(t, d, s.ID); n != 0 {
			t.Fatalf("%d processes still run VM %s after Destroy", n, s.ID)
		}
	}
}

func testLifecycle(t *testing.T, h Harness) {
	d := h.NewDriver(t)
	ctx := ctxT(t)
	s := h.Spec(t, "i-life")
	id := s.ID
	must(t, "Create", d.Create(ctx, s))

	var pid int
	// Resources (drivers, disks, taps) belong to lt, the whole lifecycle,
	// not to the step that makes them: their cleanups must not run before
	// the VM is gone.
	lt := t
	step := func(name string, f func(t *testing.T)) {
		if !t.Run(name, f) {
			t.FailNow() // every step builds on the ones before
		}
	}

	step("Start", func(t *testing.T) {
		must(t, "Start", d.Start(ctx, id))
		st := status(t, d, id)
		if st.State != hypervisor.StateRunning {
			t.Fatalf("after Start: %+v, want running", st)
		}
		if h.HasPID && st.PID <= 0 {
			t.Fatalf("after Start: %+v, want a pid", st)
		}
		pid = st.PID
		eventually(t, h.Timeout, "the guest has booted", func() bool { return h.Boots(t, d, id) >= 1 })
	})

	step("StartAgainIsNoop", func(t *testing.T) {
		must(t, "second Start", d.Start(ctx, id))
		if st := status(t, d, id); st.State != hypervisor.StateRunning || st.PID != pid {
			t.Fatalf("after a second Start: %+v, want running with pid %d", st, pid)
		}
		if h.Processes != nil {
			if n := h.Processes(t, d, id); n != 1 {
				t.Fatalf("%d processes run VM %s, want 1", n, id)
			}
		}
		if n := h.Boots(t, d, id); n != 1 {
			t.Fatalf("the guest booted %d times, want 1", n)
		}
	})

	step("Console", func(t *testing.T) {
		c, err := d.Console(ctx, id)
		must(t, "Console", err)
		b, err := os.ReadFile(c.LogPath)
		if err != nil || len(b) == 0 {
			t.Fatalf("console log %s: %v, %d bytes; want the boot output", c.LogPath, err, len(b))
		}
		conn, err := net.DialTimeout("unix", c.SocketPath, 5*time.Second)
		if err != nil {
			t.Fatalf("console socket %s: %v", c.SocketPath, err)
		}
		conn.Close()
	})

	step("PauseResume", func(t *testing.T) {
		p, ok := d.(hypervisor.Pauser)
		if !ok {
			t.Skip("driver has no Pauser")
		}
		must(t, "Pause", p.Pause(ctx, id))
		if st := status(t, d, id); st.State != hypervisor.StatePaused {
			t.Fatalf("after Pause: %+v, want paused", st)
		}
		must(t, "Resume", p.Resume(ctx, id))
		if st := status(t, d, id); st.State != hypervisor.StateRunning {
			t.Fatalf("after Resume: %+v, want running", st)
		}
	})

	step("Reset", func(t *testing.T) {
		must(t, "Reset", d.Reset(ctx, id))
		eventually(t, h.Timeout, "the guest has booted again", func() bool { return h.Boots(t, d, id) >= 2 })
		if st := status(t, d, id); st.State != hypervisor.StateRunning || st.PID != pid {
			t.Fatalf("after Reset: %+v, want running in the same process %d", st, pid)
		}
	})

	step("HotplugDisk", func(t *testing.T) {
		disk := h.NewDisk(lt, "vol-hot")
		must(t, "AttachDisk", d.AttachDisk(ctx, id, disk))
		eventually(t, h.Timeout, "the guest sees the hot-plugged disk", func() bool { return h.SeesDisk(t, d, id, disk.Serial) })
		wantClass(t, "AttachDisk with a taken id", d.AttachDisk(ctx, id, disk), errdefs.ClassAlreadyExists)
		if th, ok := d.(hypervisor.DiskThrottler); ok {
			must(t, "SetDiskThrottle", th.SetDiskThrottle(ctx, id, disk.ID, hypervisor.Throttle{IOPSTotal: 500, BPSTotal: 64 << 20}))
			must(t, "SetDiskThrottle (unlimited)", th.SetDiskThrottle(ctx, id, disk.ID, hypervisor.Throttle{}))
			wantClass(t, "SetDiskThrottle of an unknown disk", th.SetDiskThrottle(ctx, id, "vol-none", hypervisor.Throttle{}), errdefs.ClassNotFound)
		}
		// A disk grown under the running guest (EBS ModifyVolume): the
		// guest's kernel sees the new size.
		if r, ok := d.(hypervisor.DiskResizer); ok && h.GuestDiskBytes != nil {
			before := h.GuestDiskBytes(t, d, id, disk.Serial)
			grown := before + 64<<20
			must(t, "ResizeDisk", r.ResizeDisk(ctx, id, disk.ID, grown))
			eventually(t, h.Timeout, "the guest sees the grown disk", func() bool { return h.GuestDiskBytes(t, d, id, disk.Serial) == grown })
		}
		must(t, "DetachDisk", d.DetachDisk(ctx, id, disk.ID))
		eventually(t, h.Timeout, "the guest no longer sees the disk", func() bool { return !h.SeesDisk(t, d, id, disk.Serial) })
		wantClass(t, "DetachDisk again", d.DetachDisk(ctx, id, disk.ID), errdefs.ClassNotFound)
		// The slot is free again: attaching once more works.
		must(t, "AttachDisk after detach", d.AttachDisk(ctx, id, disk))
		eventually(t, h.Timeout, "the guest sees the disk again", func() bool { return h.SeesDisk(t, d, id, disk.Serial) })
		must(t, "DetachDisk", d.DetachDisk(ctx, id, disk.ID))
	})

	step("ForceDetachDisk", func(t *testing.T) {
		fd, ok := d.(hypervisor.DiskForceDetacher)
		p, canPause := d.(hypervisor.Pauser)
		if !ok || !canPause {
			t.Skip("driver cannot force-detach disks or pause VMs")
		}
		disk := h.NewDisk(lt, "vol-forced")
		must(t, "AttachDisk", d.AttachDisk(ctx, id, disk))
		eventually(t, h.Timeout, "the guest sees the hot-plugged disk", func() bool { return h.SeesDisk(t, d, id, disk.Serial) })
		// A paused guest cannot answer the unplug request: the disk must
		// be cut from under it.
		must(t, "Pause", p.Pause(ctx, id))
		must(t, "ForceDetachDisk", fd.ForceDetachDisk(ctx, id, disk.ID))
		// The file is closed: qemu-img gets its write lock (drivers whose
		// disks are files).
		if _, err := os.Stat(disk.Path); err == nil {
			if out, err := exec.Command("qemu-img", "info", disk.Path).CombinedOutput(); err != nil {
				t.Fatalf("the force-detached disk's file is still held: %v: %s", err, out)
			}
		}
		wantClass(t, "DetachDisk after the forced one", d.DetachDisk(ctx, id, disk.ID), errdefs.ClassNotFound)
		wantClass(t, "AttachDisk while the guest holds the old device", d.AttachDisk(ctx, id, disk), errdefs.ClassConflict)
		must(t, "Resume", p.Resume(ctx, id))
		eventually(t, h.Timeout, "the guest lets go of the cut device", func() bool { return !h.SeesDisk(t, d, id, disk.Serial) })
		// Attaching the same disk again works once the guest let go.
		eventually(t, h.Timeout, "the disk attaches again", func() bool { return d.AttachDisk(ctx, id, disk) == nil })
		eventually(t, h.Timeout, "the guest sees the disk again", func() bool { return h.SeesDisk(t, d, id, disk.Serial) })
		must(t, "DetachDisk", d.DetachDisk(ctx, id, disk.ID))
	})

	step("HotplugNIC", func(t *testing.T) {
		if h.NewNIC == nil {
			t.Skip("harness makes no NICs")
		}
		nic := h.NewNIC(lt, "eni-hot")
		must(t, "AttachNIC", d.AttachNIC(ctx, id, nic))
		eventually(t, h.Timeout, "the guest sees the hot-plugged NIC", func() bool { return h.SeesNIC(t, d, id, nic.MAC) })
		wantClass(t, "AttachNIC with a taken id", d.AttachNIC(ctx, id, nic), errdefs.ClassAlreadyExists)
		must(t, "DetachNIC", d.DetachNIC(ctx, id, nic.ID))
		eventually(t, h.Timeout, "the guest no longer sees the NIC", func() bool { return !h.SeesNIC(t, d, id, nic.MAC) })
		wantClass(t, "DetachNIC again", d.DetachNIC(ctx, id, nic.ID), errdefs.ClassNotFound)
	})

	step("ReopenFindsRunningVM", func(t *testing.T) {
		if h.Reopen == nil {
			t.Skip("harness cannot reopen")
		}
		if c, ok := d.(io.Closer); ok {
			must(t, "Close", c.Close())
		}
		d = h.Reopen(lt, d)
		if r, ok := d.(hypervisor.Reattacher); ok {
			st, err := r.Reattach(ctx, id)
			must(t, "Reattach", err)
			if st.State != hypervisor.StateRunning || st.PID != pid {
				t.Fatalf("Reattach: %+v, want running with pid %d", st, pid)
			}
		}
		if st := status(t, d, id); st.State != hypervisor.StateRunning || st.PID != pid {
			t.Fatalf("a reopened driver reports %+v, want running with pid %d", st, pid)
		}
		must(t, "Start on the reopened driver", d.Start(ctx, id))
		if st := status(t, d, id); st.PID != pid {
			t.Fatalf("Start on the reopened driver changed the pid to %d, want %d: it started a second VM", st.PID, pid)
		}
		if h.Processes != nil {
			if n := h.Processes(t, d, id); n != 1 {
				t.Fatalf("%d processes run VM %s after reopening, want 1", n, id)
			}
		}
	})

	step("GracefulStop", func(t *testing.T) {
		must(t, "Stop", d.Stop(ctx, id, hypervisor.StopOptions{Graceful: true, Timeout: h.Timeout}))
		st := status(t, d, id)
		if st.State != hypervisor.StateStopped || st.ExitReason != hypervisor.ExitStopped || st.PID != 0 {
			t.Fatalf("after a graceful Stop: %+v, want stopped/stopped, no pid", st)
		}
		must(t, "Stop again", d.Stop(ctx, id, hypervisor.StopOptions{Graceful: true}))
		wantClass(t, "Reset of a stopped VM", d.Reset(ctx, id), errdefs.ClassConflict)
	})

	var cold hypervisor.Disk
	step("AttachWhileStoppedThenBoot", func(t *testing.T) {
		cold = h.NewDisk(lt, "vol-cold")
		must(t, "AttachDisk to a stopped VM", d.AttachDisk(ctx, id, cold))
		boots := h.Boots(t, d, id)
		must(t, "Start", d.Start(ctx, id))
		eventually(t, h.Timeout, "the guest has booted", func() bool { return h.Boots(t, d, id) > boots })
		if !h.SeesDisk(t, d, id, cold.Serial) {
			t.Fatalf("the guest does not see disk %s (serial %s) attached while stopped", cold.ID, cold.Serial)
		}
		st := status(t, d, id)
		if st.State != hypervisor.StateRunning || st.ExitReason != hypervisor.ExitNone {
			t.Fatalf("after Start: %+v, want running and no exit reason", st)
		}
		pid = st.PID
	})

	step("DetachBootTimeDisk", func(t *testing.T) {
		must(t, "DetachDisk", d.DetachDisk(ctx, id, cold.ID))
		eventually(t, h.Timeout, "the guest no longer sees the boot-time disk", func() bool { return !h.SeesDisk(t, d, id, cold.Serial) })
	})

	step("GuestPowerOff", func(t *testing.T) {
		h.PowerOffFromGuest(t, d, id)
		eventually(t, h.Timeout, "the VM reports the guest's power-off", func() bool {
			st := status(t, d, id)
			return st.State == hypervisor.StateStopped && st.ExitReason == hypervisor.ExitGuestShutdown && st.PID == 0
		})
		if h.Processes != nil {
			eventually(t, h.Timeout, "no process runs the VM", func() bool { return h.Processes(t, d, id) == 0 })
		}
	})

	step("Destroy", func(t *testing.T) {
		c, err := d.Console(ctx, id)
		must(t, "Console", err)
		must(t, "Destroy", d.Destroy(ctx, id))
		_, err = d.Status(ctx, id)
		wantClass(t, "Status after Destroy", err, errdefs.ClassNotFound)
		wantClass(t, "Destroy again", d.Destroy(ctx, id), errdefs.ClassNotFound)
		if _, err := os.Stat(c.LogPath); !errors.Is(err, os.ErrNotExist) {
			t.Fatalf("console log %s after Destroy: %v, want it removed", c.LogPath, err)
		}
		if l, ok := d.(hypervisor.Lister); ok {
			ids, err := l.List(ctx)
			must(t, "List", err)
			if slices.Contains(ids, id) {
				t.Fatalf("List after Destroy still has %s: %v", id, ids)
			}
		}
	})
}
