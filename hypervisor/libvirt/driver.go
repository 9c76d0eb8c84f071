// Package libvirt is labcloud's second hypervisor driver: VMs are
// persistent libvirt domains (defined, not transient), driven over
// libvirtd's RPC socket with the pure-Go digitalocean/go-libvirt client and
// described with libvirt.org/go/libvirtxml.
//
// A VM named id is the domain <NamePrefix><id>. Because domains are
// defined, they survive both libvirtd and labcloudd restarts: a new Driver
// finds a VM by looking its domain up by name, which is all Reattach does.
// Next to libvirt's own state the driver keeps a small run directory per
// VM (<RunDir>/<id>) with the serial console's log and socket and the
// record of how the VM last stopped (exit.json), because libvirt's shutoff
// reason cannot tell a Stop from the guest's own power-off and is lost when
// libvirtd restarts.
//
// Unsupported: Spec.NetNS. libvirt starts QEMU itself, in libvirtd's
// network namespace, and has no per-domain setting to start it in
// another; Create rejects a Spec with NetNS as InvalidParameter. Taps must
// live in libvirtd's namespace.
package libvirt

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/url"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"time"

	golibvirt "github.com/digitalocean/go-libvirt"
	"github.com/digitalocean/go-libvirt/socket/dialers"
	"libvirt.org/go/libvirtxml"

	"github.com/labcloud/labcloud/hypervisor"
	"github.com/labcloud/labcloud/internal/errdefs"
)

// Defaults for Options.
const (
	DefaultSocket        = "/var/run/libvirt/libvirt-sock"
	DefaultURI           = "qemu:///system"
	DefaultNamePrefix    = "labcloud-"
	DefaultRunDir        = "/var/lib/labcloud/libvirt"
	DefaultStopTimeout   = 30 * time.Second
	DefaultDetachTimeout = 30 * time.Second
)

// Options configure a Driver.
type Options struct {
	// Socket is libvirtd's read-write unix socket; empty means
	// DefaultSocket.
	Socket string
	// URI is the hypervisor connection libvirtd opens on that socket;
	// empty means qemu:///system.
	URI string
	// NamePrefix is put before a VM id to make its domain name, so that
	// labcloud's domains are told apart from others on the same libvirtd
	// (and two drivers with different prefixes do not see each other's).
	NamePrefix string
	// RunDir holds a directory per VM (console log and socket, exit
	// record). It must be reachable by libvirtd's QEMU processes.
	RunDir string
	// StopTimeout is the graceful Stop's wait when StopOptions has none.
	StopTimeout time.Duration
	// DetachTimeout bounds the wait for the guest to release a
	// hot-unplugged device.
	DetachTimeout time.Duration
	// HotplugPorts is how many spare PCIe root ports a domain gets;
	// zero means DefaultHotplugPorts.
	HotplugPorts int
	// Logger receives background notes; nil means slog.Default().
	Logger *slog.Logger
}

// Driver runs VMs as libvirt domains. It implements hypervisor.Driver and
// the optional Reattacher, Lister, Pauser and DiskThrottler.
type Driver struct {
	opts Options
	log  *slog.Logger
	uri  *url.URL

	mu     sync.Mutex // guards l, closed and locks
	l      *golibvirt.Libvirt
	closed bool
	locks  map[string]*sync.Mutex
}

var (
	_ hypervisor.Driver        = (*Driver)(nil)
	_ hypervisor.Reattacher    = (*Driver)(nil)
	_ hypervisor.Lister        = (*Driver)(nil)
	_ hypervisor.Pauser        = (*Driver)(nil)
	_ hypervisor.DiskThrottler = (*Driver)(nil)
)

// New connects to libvirtd. It fails with Unavailable, saying what to
// install or start, when the socket does not answer.
func New(ctx context.Context, opts Options) (*Driver, error) {
	if opts.Socket == "" {
		opts.Socket = DefaultSocket
	}
	if opts.URI == "" {
		opts.URI = DefaultURI
	}
	if opts.NamePrefix == "" {
		opts.NamePrefix = DefaultNamePrefix
	}
	if opts.RunDir == "" {
		opts.RunDir = DefaultRunDir
	}
	if opts.StopTimeout == 0 {
		opts.StopTimeout = DefaultStopTimeout
	}
	if opts.DetachTimeout == 0 {
		opts.DetachTimeout = DefaultDetachTimeout
	}
	if opts.HotplugPorts == 0 {
		opts.HotplugPorts = DefaultHotplugPorts
	}
	log := opts.Logger
	if log == nil {
		log = slog.Default()
	}
	if err := os.MkdirAll(opts.RunDir, 0o755); err != nil {
		return nil, fmt.Errorf("creating libvirt run directory: %w", err)
	}
	u, err := url.Parse(opts.URI)
	if err != nil {
		return nil, errdefs.InvalidParameter("", "libvirt URI %q: %v", opts.URI, err)
	}
	d := &Driver{opts: opts, log: log, uri: u, locks: map[string]*sync.Mutex{}}
	l, err := d.dial()
	if err != nil {
		return nil, err
	}
	d.l = l
	return d, nil
}

func (d *Driver) dial() (*golibvirt.Libvirt, error) {
	l := golibvirt.NewWithDialer(dialers.NewLocal(dialers.WithSocket(d.opts.Socket), dialers.WithLocalTimeout(5*time.Second)))
	if err := l.ConnectToURI(golibvirt.RemoteURI(d.uri)); err != nil {
		return nil, errdefs.Wrap(errdefs.ClassUnavailable, "", err,
			"connecting to libvirtd on %s (%s); install and start it (Debian: libvirt-daemon libvirt-daemon-driver-qemu, make deps)", d.opts.Socket, d.opts.URI)
	}
	return l, nil
}

// conn returns the libvirtd connection, dialling a new one when the old
// one was lost (libvirtd restarted). A failed redial leaves the dead
// connection, whose calls then fail and say so.
func (d *Driver) conn() *golibvirt.Libvirt {
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.closed || d.l.IsConnected() {
		return d.l
	}
	l, err := d.dial()
	if err != nil {
		d.log.Warn("libvirt: reconnecting to libvirtd failed", "socket", d.opts.Socket, "err", err)
		return d.l
	}
	d.log.Info("libvirt: reconnected to libvirtd", "socket", d.opts.Socket)
	d.l = l
	return l
}

// Close disconnects from libvirtd. Domains keep running.
func (d *Driver) Close() error {
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.closed {
		return nil
	}
	d.closed = true
	if !d.l.IsConnected() {
		return nil
	}
	return d.l.Disconnect()
}

// Options returns the options the driver runs with (defaults filled in),
// e.g. to make a second driver over the same host.
func (d *Driver) Options() Options { return d.opts }

// RunDir is the directory holding the VMs' run directories.
func (d *Driver) RunDir() string { return d.opts.RunDir }

// DomainName is the libvirt domain name of VM id.
func (d *Driver) DomainName(id string) string { return d.opts.NamePrefix + id }

func (d *Driver) lock(id string) func() {
	d.mu.Lock()
	m, ok := d.locks[id]
	if !ok {
		m = &sync.Mutex{}
		d.locks[id] = m
	}
	d.mu.Unlock()
	m.Lock()
	return m.Unlock
}

func (d *Driver) vmDir(id string) string { return filepath.Join(d.opts.RunDir, id) }

// Console locations.
func (d *Driver) consolePaths(id string) (log, sock string) {
	return filepath.Join(d.vmDir(id), "console.log"), filepath.Join(d.vmDir(id), "console.sock")
}

func isCode(err error, code golibvirt.ErrorNumber) bool {
	var e golibvirt.Error
	return errors.As(err, &e) && e.Code == uint32(code)
}

// lookup finds VM id's domain, NotFound when there is none.
func (d *Driver) lookup(id string) (golibvirt.Domain, error) {
	if err := hypervisor.ValidateID(id); err != nil {
		return golibvirt.Domain{}, errdefs.NotFound("", "VM %q is not defined on this host", id)
	}
	dom, err := d.conn().DomainLookupByName(d.DomainName(id))
	if err != nil {
		if isCode(err, golibvirt.ErrNoDomain) {
			return dom, errdefs.NotFound("", "VM %s is not defined on this host (no libvirt domain %s); create it first", id, d.DomainName(id))
		}
		return dom, errdefs.Wrap(errdefs.ClassUnavailable, "", err, "looking up libvirt domain %s", d.DomainName(id))
	}
	return dom, nil
}

func (d *Driver) libvirtErr(err error, format string, args ...any) error {
	if err == nil {
		return nil
	}
	class := errdefs.ClassUnavailable
	switch {
	case isCode(err, golibvirt.ErrNoDomain):
		class = errdefs.ClassNotFound
	case isCode(err, golibvirt.ErrOperationInvalid):
		class = errdefs.ClassConflict
	}
	return errdefs.Wrap(class, "", err, format, args...)
}

// Create validates spec and defines a persistent domain for it.
func (d *Driver) Create(ctx context.Context, spec hypervisor.Spec) error {
	if err := spec.Validate(); err != nil {
		return err
	}
	if spec.NetNS != "" {
		return errdefs.InvalidParameter("", "VM %s: Spec.NetNS (%s) is not supported by the libvirt driver: libvirtd starts QEMU in its own network namespace; put the taps in libvirtd's namespace or use the qemu driver", spec.ID, spec.NetNS)
	}
	defer d.lock(spec.ID)()
	logPath, sock := d.consolePaths(spec.ID)
	if n := len(sock); n > 107 {
		return errdefs.InvalidParameter("", "VM %s: socket path %s is %d bytes, over the 107 unix sockets allow; use a shorter run directory", spec.ID, sock, n)
	}
	if _, err := d.conn().DomainLookupByName(d.DomainName(spec.ID)); err == nil {
		return errdefs.AlreadyExists("", "VM %s is already defined on this host; destroy it first or use another id", spec.ID)
	}
	accel, _ := hypervisor.ResolveAccel(spec.Accel)
	xml, err := BuildDomainXML(DomainConfig{
		Name: d.DomainName(spec.ID), Spec: spec, Accel: accel,
		ConsoleLog: logPath, ConsoleSocket: sock, HotplugPorts: d.opts.HotplugPorts,
	})
	if err != nil {
		return fmt.Errorf("rendering domain XML of VM %s: %w", spec.ID, err)
	}
	if err := os.MkdirAll(d.vmDir(spec.ID), 0o755); err != nil {
		return fmt.Errorf("creating run directory of VM %s: %w", spec.ID, err)
	}
	os.Remove(d.exitFile(spec.ID))
	if _, err := d.conn().DomainDefineXMLFlags(xml, golibvirt.DomainDefineValidate); err != nil {
		os.RemoveAll(d.vmDir(spec.ID))
		if isCode(err, golibvirt.ErrDomExist) {
			return errdefs.AlreadyExists("", "VM %s is already defined on this host; destroy it first or use another id", spec.ID)
		}
		return errdefs.Wrap(errdefs.ClassInvalidParameter, "", err, "libvirt refused the definition of VM %s", spec.ID)
	}
	return nil
}

// exitRecord is how a VM last stopped, kept in <RunDir>/<id>/exit.json.
type exitRecord struct {
	// Intent is what labcloud asked for: "graceful", "forced", or "" when
	// the VM stopped on its own.
	Intent string `json:"intent,omitempty"`
	// Reason is the verdict once the domain was seen shut off.
	Reason hypervisor.ExitReason `json:"reason,omitempty"`
	Detail string                `json:"detail,omitempty"`
}

func (d *Driver) exitFile(id string) string { return filepath.Join(d.vmDir(id), "exit.json") }

func (d *Driver) readExit(id string) exitRecord {
	var r exitRecord
	b, err := os.ReadFile(d.exitFile(id))
	if err == nil {
		json.Unmarshal(b, &r)
	}
	return r
}

func (d *Driver) writeExit(id string, r exitRecord) {
	b, _ := json.Marshal(r)
	if err := os.MkdirAll(d.vmDir(id), 0o755); err == nil {
		err = os.WriteFile(d.exitFile(id), b, 0o644)
	}
}

// Start boots the domain; a no-op when it is already active.
func (d *Driver) Start(ctx context.Context, id string) error {
	dom, err := d.lookup(id)
	if err != nil {
		return err
	}
	defer d.lock(id)()
	state, _, err := d.conn().DomainGetState(dom, 0)
	if err != nil {
		return d.libvirtErr(err, "reading the state of VM %s", id)
	}
	if golibvirt.DomainState(state) != golibvirt.DomainShutoff && golibvirt.DomainState(state) != golibvirt.DomainCrashed {
		return nil
	}
	os.MkdirAll(d.vmDir(id), 0o755)
	os.Remove(d.exitFile(id))
	if err := d.conn().DomainCreate(dom); err != nil {
		return d.libvirtErr(err, "starting VM %s", id)
	}
	return nil
}

// Stop powers the domain off: with Graceful, the ACPI power button and a
// wait, then (or at once) virDomainDestroy.
func (d *Driver) Stop(ctx context.Context, id string, opts hypervisor.StopOptions) error {
	dom, err := d.lookup(id)
	if err != nil {
		return err
	}
	defer d.lock(id)()
	if !d.active(dom) {
		return nil
	}
	if opts.Graceful {
		timeout := opts.Timeout
		if timeout == 0 {
			timeout = d.opts.StopTimeout
		}
		d.writeExit(id, exitRecord{Intent: "graceful"})
		if err := d.conn().DomainShutdownFlags(dom, golibvirt.DomainShutdownAcpiPowerBtn); err != nil && d.active(dom) {
			return d.libvirtErr(err, "pressing the power button of VM %s", id)
		}
		deadline := time.Now().Add(timeout)
		for time.Now().Before(deadline) && ctx.Err() == nil {
			if !d.active(dom) {
				return nil
			}
			time.Sleep(100 * time.Millisecond)
		}
		if !d.active(dom) {
			return nil
		}
		d.writeExit(id, exitRecord{Intent: "forced", Reason: hypervisor.ExitForced,
			Detail: fmt.Sprintf("the guest did not power off within %s of the power button; destroyed", timeout)})
	} else {
		d.writeExit(id, exitRecord{Intent: "forced", Reason: hypervisor.ExitForced, Detail: "stopped without the guest's help"})
	}
	if err := d.conn().DomainDestroy(dom); err != nil && d.active(dom) {
		return d.libvirtErr(err, "destroying (powering off) VM %s", id)
	}
	return nil
}

func (d *Driver) active(dom golibvirt.Domain) bool {
	state, _, err := d.conn().DomainGetState(dom, 0)
	if err != nil {
		return false
	}
	s := golibvirt.DomainState(state)
	return s != golibvirt.DomainShutoff && s != golibvirt.DomainCrashed
}

// Reset is a hard reset (virDomainReset) of the running domain.
func (d *Driver) Reset(ctx context.Context, id string) error {
	dom, err := d.lookup(id)
	if err != nil {
		return err
	}
	defer d.lock(id)()
	if !d.active(dom) {
		return errdefs.Conflict("IncorrectInstanceState", "cannot reset VM %s: it is not running; start it first", id)
	}
	return d.libvirtErr(d.conn().DomainReset(dom, 0), "resetting VM %s", id)
}

// Destroy destroys the domain if it runs, undefines it and removes its run
// directory. Disk images are left alone.
func (d *Driver) Destroy(ctx context.Context, id string) error {
	dom, err := d.lookup(id)
	if err != nil {
		return err
	}
	defer d.lock(id)()
	if d.active(dom) {
		if err := d.conn().DomainDestroy(dom); err != nil && d.active(dom) {
			return d.libvirtErr(err, "destroying VM %s", id)
		}
	}
	if err := d.conn().DomainUndefineFlags(dom, golibvirt.DomainUndefineManagedSave|golibvirt.DomainUndefineSnapshotsMetadata|golibvirt.DomainUndefineNvram); err != nil {
		if isCode(err, golibvirt.ErrNoDomain) {
			return errdefs.NotFound("", "VM %s is not defined on this host", id)
		}
		return d.libvirtErr(err, "undefining VM %s", id)
	}
	if err := os.RemoveAll(d.vmDir(id)); err != nil {
		return fmt.Errorf("removing run directory of VM %s: %w", id, err)
	}
	return nil
}

// Status maps the domain's state and reason to a hypervisor.Status.
func (d *Driver) Status(ctx context.Context, id string) (hypervisor.Status, error) {
	dom, err := d.lookup(id)
	if err != nil {
		return hypervisor.Status{}, err
	}
	state, reason, err := d.conn().DomainGetState(dom, 0)
	if err != nil {
		if isCode(err, golibvirt.ErrNoDomain) {
			return hypervisor.Status{}, errdefs.NotFound("", "VM %s is not defined on this host", id)
		}
		return hypervisor.Status{State: hypervisor.StateUnknown, Detail: err.Error()}, nil
	}
	switch s := golibvirt.DomainState(state); s {
	case golibvirt.DomainRunning, golibvirt.DomainBlocked, golibvirt.DomainShutdown:
		return hypervisor.Status{State: hypervisor.StateRunning, Detail: stateName(s)}, nil
	case golibvirt.DomainPaused, golibvirt.DomainPmsuspended:
		return hypervisor.Status{State: hypervisor.StatePaused, Detail: stateName(s)}, nil
	case golibvirt.DomainShutoff, golibvirt.DomainCrashed:
		rec := d.readExit(id)
		verdict, detail := exitReason(s, golibvirt.DomainShutoffReason(reason), rec)
		if verdict != rec.Reason || detail != rec.Detail {
			if verdict != hypervisor.ExitNone {
				rec.Reason, rec.Detail = verdict, detail
				d.writeExit(id, rec)
			}
		}
		return hypervisor.Status{State: hypervisor.StateStopped, ExitReason: verdict, Detail: detail}, nil
	default:
		return hypervisor.Status{State: hypervisor.StateUnknown, Detail: fmt.Sprintf("libvirt state %d", state)}, nil
	}
}

func stateName(s golibvirt.DomainState) string {
	return strings.ToLower(strings.TrimPrefix(s.String(), "Domain"))
}

// exitReason decides why a shut-off domain stopped from libvirt's reason
// and what labcloud asked for.
func exitReason(s golibvirt.DomainState, reason golibvirt.DomainShutoffReason, rec exitRecord) (hypervisor.ExitReason, string) {
	if s == golibvirt.DomainCrashed {
		return hypervisor.ExitCrashed, "libvirt: crashed"
	}
	switch reason {
	case golibvirt.DomainShutoffShutdown:
		if rec.Intent == "graceful" {
			return hypervisor.ExitStopped, "the guest powered off after the power button"
		}
		return hypervisor.ExitGuestShutdown, "the guest powered itself off"
	case golibvirt.DomainShutoffDestroyed:
		if rec.Intent == "forced" && rec.Detail != "" {
			return hypervisor.ExitForced, rec.Detail
		}
		return hypervisor.ExitForced, "destroyed outside labcloud"
	case golibvirt.DomainShutoffCrashed, golibvirt.DomainShutoffFailed:
		return hypervisor.ExitCrashed, "QEMU ended without a power-off (killed or crashed)"
	}
	// Unknown: a VM that never ran, or libvirtd restarted and forgot;
	// the last recorded verdict stands.
	return rec.Reason, rec.Detail
}

// Reattach looks the domain up by name and reports its status; libvirtd
// keeps watching it, so there is nothing else to resume.
func (d *Driver) Reattach(ctx context.Context, id string) (hypervisor.Status, error) {
	return d.Status(ctx, id)
}

// List returns the ids of all persistent domains with this driver's
// prefix.
func (d *Driver) List(ctx context.Context) ([]string, error) {
	doms, _, err := d.conn().ConnectListAllDomains(1, golibvirt.ConnectListDomainsPersistent)
	if err != nil {
		return nil, d.libvirtErr(err, "listing libvirt domains")
	}
	var ids []string
	for _, dom := range doms {
		if id, ok := strings.CutPrefix(dom.Name, d.opts.NamePrefix); ok && hypervisor.ValidateID(id) == nil {
			ids = append(ids, id)
		}
	}
	slices.Sort(ids)
	return ids, nil
}

// Pause suspends the domain's vCPUs.
func (d *Driver) Pause(ctx context.Context, id string) error {
	dom, err := d.lookup(id)
	if err != nil {
		return err
	}
	defer d.lock(id)()
	return d.libvirtErr(d.conn().DomainSuspend(dom), "pausing VM %s", id)
}

// Resume resumes a paused domain.
func (d *Driver) Resume(ctx context.Context, id string) error {
	dom, err := d.lookup(id)
	if err != nil {
		return err
	}
	defer d.lock(id)()
	return d.libvirtErr(d.conn().DomainResume(dom), "resuming VM %s", id)
}

// Console names the serial console's log and socket.
func (d *Driver) Console(ctx context.Context, id string) (hypervisor.Console, error) {
	if _, err := d.lookup(id); err != nil {
		return hypervisor.Console{}, err
	}
	l, s := d.consolePaths(id)
	return hypervisor.Console{LogPath: l, SocketPath: s}, nil
}

// definition reads the domain's persistent (inactive) or live XML.
func (d *Driver) definition(dom golibvirt.Domain, live bool) (*libvirtxml.Domain, error) {
	flags := golibvirt.DomainXMLInactive
	if live {
		flags = 0
	}
	s, err := d.conn().DomainGetXMLDesc(dom, flags)
	if err != nil {
		return nil, d.libvirtErr(err, "reading the definition of domain %s", dom.Name)
	}
	var x libvirtxml.Domain
	if err := x.Unmarshal(s); err != nil {
		return nil, fmt.Errorf("parsing the definition of domain %s: %w", dom.Name, err)
	}
	if x.Devices == nil {
		x.Devices = &libvirtxml.DomainDeviceList{}
	}
	return &x, nil
}

// DomainXML returns VM id's domain XML as libvirt has it: the live
// definition when live is set and the VM runs, else the persistent one.
// It is for diagnostics and tests.
func (d *Driver) DomainXML(ctx context.Context, id string, live bool) (string, error) {
	dom, err := d.lookup(id)
	if err != nil {
		return "", err
	}
	flags := golibvirt.DomainXMLInactive
	if live {
		flags = 0
	}
	s, err := d.conn().DomainGetXMLDesc(dom, flags)
	return s, d.libvirtErr(err, "reading the definition of VM %s", id)
}

// hasDevice reports whether def has a disk or NIC with labcloud ID devID.
func hasDevice(def *libvirtxml.Domain, devID string) bool {
	for _, dk := range def.Devices.Disks {
		if deviceID(dk.Alias) == devID {
			return true
		}
	}
	for _, n := range def.Devices.Interfaces {
		if deviceID(n.Alias) == devID {
			return true
		}
	}
	return false
}

func (d *Driver) affect(dom golibvirt.Domain) uint32 {
	f := uint32(golibvirt.DomainAffectConfig)
	if d.active(dom) {
		f |= uint32(golibvirt.DomainAffectLive)
	}
	return f
}

// attach adds dev (XML) to the definition and, when running, to the live
// domain.
func (d *Driver) attach(id, devID string, render func(def *libvirtxml.Domain) (string, error)) error {
	dom, err := d.lookup(id)
	if err != nil {
		return err
	}
	defer d.lock(id)()
	def, err := d.definition(dom, false)
	if err != nil {
		return err
	}
	if hasDevice(def, devID) {
		return errdefs.AlreadyExists("", "VM %s already has a device %s; detach it first or use another id", id, devID)
	}
	x, err := render(def)
	if err != nil {
		return err
	}
	if err := d.conn().DomainAttachDeviceFlags(dom, x, d.affect(dom)); err != nil {
		return d.libvirtErr(err, "attaching device %s to VM %s", devID, id)
	}
	return nil
}

// AttachDisk adds a virtio disk (live and config).
func (d *Driver) AttachDisk(ctx context.Context, id string, disk hypervisor.Disk) error {
	if err := disk.Validate(); err != nil {
		return err
	}
	return d.attach(id, disk.ID, func(def *libvirtxml.Domain) (string, error) {
		if _, err := os.Stat(disk.Path); err != nil {
			return "", errdefs.InvalidParameter("", "disk %s: %s is not usable (%v); check the path", disk.ID, disk.Path, err)
		}
		dev, err := freeDiskTarget(def)
		if err != nil {
			return "", errdefs.LimitExceeded("", "VM %s has no free disk name left", id)
		}
		x := DiskXML(disk, dev)
		return x.Marshal()
	})
}

// AttachNIC adds an ethernet interface on nic.Tap (live and config).
func (d *Driver) AttachNIC(ctx context.Context, id string, nic hypervisor.NIC) error {
	if err := nic.Validate(); err != nil {
		return err
	}
	return d.attach(id, nic.ID, func(*libvirtxml.Domain) (string, error) {
		x := NICXML(nic)
		return x.Marshal()
	})
}

// detach removes the device with labcloud ID devID (found with find in a
// definition) and, when running, waits until the guest released it.
func (d *Driver) detach(id, devID, kind string, find func(def *libvirtxml.Domain) (string, bool)) error {
	dom, err := d.lookup(id)
	if err != nil {
		return err
	}
	defer d.lock(id)()
	def, err := d.definition(dom, false)
	if err != nil {
		return err
	}
	x, ok := find(def)
	if !ok {
		return errdefs.NotFound("", "VM %s has no %s %s", id, kind, devID)
	}
	flags := d.affect(dom)
	if err := d.conn().DomainDetachDeviceFlags(dom, x, flags); err != nil {
		return d.libvirtErr(err, "detaching %s %s from VM %s", kind, devID, id)
	}
	if flags&uint32(golibvirt.DomainAffectLive) == 0 {
		return nil
	}
	// libvirt returns after a few seconds even when the guest has not
	// yet released the device; wait for the live definition to lose it.
	deadline := time.Now().Add(d.opts.DetachTimeout)
	for {
		live, err := d.definition(dom, true)
		if err != nil || !hasDevice(live, devID) || !d.active(dom) {
			return nil
		}
		if time.Now().After(deadline) {
			return errdefs.Conflict("", "the guest of VM %s did not release %s %s within %s (it may not support PCIe hot-unplug); stop the VM to detach it", id, kind, devID, d.opts.DetachTimeout)
		}
		time.Sleep(200 * time.Millisecond)
	}
}

// DetachDisk removes a disk by its ID.
func (d *Driver) DetachDisk(ctx context.Context, id, diskID string) error {
	return d.detach(id, diskID, "disk", func(def *libvirtxml.Domain) (string, bool) {
		for _, dk := range def.Devices.Disks {
			if deviceID(dk.Alias) == diskID {
				s, err := dk.Marshal()
				return s, err == nil
			}
		}
		return "", false
	})
}

// DetachNIC removes a NIC by its ID; the tap stays.
func (d *Driver) DetachNIC(ctx context.Context, id, nicID string) error {
	return d.detach(id, nicID, "NIC", func(def *libvirtxml.Domain) (string, bool) {
		for _, n := range def.Devices.Interfaces {
			if deviceID(n.Alias) == nicID {
				s, err := n.Marshal()
				return s, err == nil
			}
		}
		return "", false
	})
}

// SetDiskThrottle changes a disk's I/O limits (live and config) with
// virDomainSetBlockIoTune; a zero Throttle removes them all.
func (d *Driver) SetDiskThrottle(ctx context.Context, id, diskID string, limits hypervisor.Throttle) error {
	if err := (hypervisor.Disk{ID: diskID, Path: "/x", Format: hypervisor.FormatRaw, Throttle: &limits}).Validate(); err != nil {
		return err
	}
	dom, err := d.lookup(id)
	if err != nil {
		return err
	}
	defer d.lock(id)()
	def, err := d.definition(dom, false)
	if err != nil {
		return err
	}
	target := ""
	for _, dk := range def.Devices.Disks {
		if deviceID(dk.Alias) == diskID && dk.Target != nil {
			target = dk.Target.Dev
		}
	}
	if target == "" {
		return errdefs.NotFound("", "VM %s has no disk %s", id, diskID)
	}
	p := func(name string, v int64) golibvirt.TypedParam {
		return golibvirt.TypedParam{Field: name, Value: *golibvirt.NewTypedParamValueUllong(uint64(v))}
	}
	params := []golibvirt.TypedParam{
		p("total_bytes_sec", limits.BPSTotal), p("read_bytes_sec", limits.BPSRead), p("write_bytes_sec", limits.BPSWrite),
		p("total_iops_sec", limits.IOPSTotal), p("read_iops_sec", limits.IOPSRead), p("write_iops_sec", limits.IOPSWrite),
	}
	if err := d.conn().DomainSetBlockIOTune(dom, target, params, d.affect(dom)); err != nil {
		return d.libvirtErr(err, "setting I/O limits of disk %s of VM %s", diskID, id)
	}
	return nil
}
