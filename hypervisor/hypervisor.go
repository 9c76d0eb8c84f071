package hypervisor

import (
	"context"
	"time"
)

// Driver runs virtual machines on one host. It is the only thing the
// instance controller knows about VMs; the qemu driver is the default.
//
// Lifecycle of one VM, named by Spec.ID (labcloud uses the EC2 instance id):
//
//		Create ──► stopped ──Start──► running ◄──Reset (guest reboots, same process)
//		              ▲                  │
//		              └──────Stop────────┤  (or the guest powers off, or it crashes)
//		Destroy (from any state) ──► gone
//
//	  - Create only defines the VM: it validates the Spec and stores it with
//	    the driver (the qemu driver writes it into the VM's run directory). No
//	    process runs yet. A second Create of the same ID is AlreadyExists.
//	  - Start boots the stored definition. Starting a running VM is a no-op:
//	    a driver never runs two processes for one VM, even across labcloudd
//	    restarts.
//	  - Stop asks the guest to power off (ACPI power button) when Graceful is
//	    set, waits up to Timeout, then stops the VM without the guest's help.
//	    Stopping a stopped VM is a no-op. The definition stays; Start boots
//	    it again, with the disks and NICs attached at that time.
//	  - Destroy stops the VM without the guest's help and removes the
//	    definition and every run file (sockets, logs). The disks' image files
//	    belong to the caller and are never touched.
//	  - Status reports what is true now, including why the VM last stopped
//	    (ExitReason): a Stop, the guest's own power-off, or a crash.
//	  - AttachDisk/DetachDisk and AttachNIC/DetachNIC change the definition
//	    and, when the VM runs, hot-plug the device too. Detaching a device
//	    from a running VM needs the guest's cooperation and returns once the
//	    guest has released it.
//	  - Console names where the serial console is logged and where it can be
//	    reached interactively.
//
// Drivers that keep VMs running outside the labcloudd process (qemu) find
// them again after a restart: every method works on a VM started by an
// earlier driver object, and the optional Reattacher does so eagerly.
//
// Errors are errdefs errors: NotFound for an unknown ID, AlreadyExists,
// InvalidParameter for a bad Spec, Conflict for an operation that the VM's
// state does not allow (Reset of a stopped VM), LimitExceeded when no
// hot-plug slot is left. Methods are safe for concurrent use; operations on
// one VM are serialised.
type Driver interface {
	// Create validates spec and defines the VM without starting it.
	Create(ctx context.Context, spec Spec) error
	// Start boots the VM; a no-op when it already runs.
	Start(ctx context.Context, id string) error
	// Stop powers the VM off; a no-op when it is not running.
	Stop(ctx context.Context, id string, opts StopOptions) error
	// Reset is a hard reset of the running VM (the reset button).
	Reset(ctx context.Context, id string) error
	// Destroy kills the VM if it runs and removes its definition and files.
	Destroy(ctx context.Context, id string) error
	// Status reports the VM's state now.
	Status(ctx context.Context, id string) (Status, error)
	// AttachDisk adds a disk to the definition and hot-plugs it when the
	// VM runs. The disk's ID must be new to this VM.
	AttachDisk(ctx context.Context, id string, disk Disk) error
	// DetachDisk removes a disk by its ID, hot-unplugging it first when the
	// VM runs.
	DetachDisk(ctx context.Context, id, diskID string) error
	// AttachNIC adds a NIC (on an existing tap) and hot-plugs it when the
	// VM runs.
	AttachNIC(ctx context.Context, id string, nic NIC) error
	// DetachNIC removes a NIC by its ID, hot-unplugging it first when the
	// VM runs. The tap itself belongs to the caller.
	DetachNIC(ctx context.Context, id, nicID string) error
	// Console tells where the VM's serial console is.
	Console(ctx context.Context, id string) (Console, error)
}

// Pauser is implemented by drivers that can freeze a VM's vCPUs without
// stopping it (QMP stop/cont). Status reports StatePaused meanwhile.
type Pauser interface {
	Pause(ctx context.Context, id string) error
	Resume(ctx context.Context, id string) error
}

// DiskThrottler is implemented by drivers that can change a disk's I/O
// limits on a running VM (EBS ModifyVolume). The new limits are also stored
// in the definition; a zero Throttle removes every limit.
type DiskThrottler interface {
	SetDiskThrottle(ctx context.Context, id, diskID string, limits Throttle) error
}

// DiskResizer is implemented by drivers that can tell a running VM that
// a disk's image grew (EBS ModifyVolume of an attached volume: QMP
// block_resize), so the guest sees the new size without a reboot. On a
// VM that is not running it does nothing: the next boot sees the size.
type DiskResizer interface {
	ResizeDisk(ctx context.Context, id, diskID string, sizeBytes int64) error
}

// DiskForceDetacher is implemented by drivers that can take a disk away
// from a running VM whose guest does not release it (EBS DetachVolume
// with Force). The guest gets a short chance to release the device; if it
// does not, the disk's storage is cut from under it: the volume's file is
// closed (another VM may open it at once), and the guest's device, until
// the guest lets go of it or the VM stops, reads and writes nothing of
// the volume. Writes the guest had not flushed are lost, as AWS warns.
// The disk leaves the definition either way.
type DiskForceDetacher interface {
	ForceDetachDisk(ctx context.Context, id, diskID string) error
}

// Reattacher is implemented by drivers whose VMs outlive the driver object
// (a labcloudd restart). Reattach reconnects to a VM started earlier,
// resumes watching it (power-off and crash detection) and reports its
// status. It never starts anything; for a VM that is not running it just
// reports that.
type Reattacher interface {
	Reattach(ctx context.Context, id string) (Status, error)
}

// Lister is implemented by drivers that can enumerate the VMs they have
// definitions for, so a restarted labcloudd can find VMs the state store no
// longer knows about (orphans) and destroy them.
type Lister interface {
	List(ctx context.Context) ([]string, error)
}

// Accel names the CPU accelerator.
type Accel string

// Accelerators. AccelAuto picks KVM when DetectAccel finds it usable, TCG
// otherwise.
const (
	AccelAuto Accel = "auto"
	AccelKVM  Accel = "kvm"
	AccelTCG  Accel = "tcg"
)

// DiskFormat is the image format of a disk file.
type DiskFormat string

// Disk image formats.
const (
	FormatQCOW2 DiskFormat = "qcow2"
	FormatRaw   DiskFormat = "raw"
)

// Spec defines a VM. The zero value of every optional field means "the
// driver's sensible default".
type Spec struct {
	// ID names the VM, e.g. an EC2 instance id "i-0123456789abcdef0".
	// Letters, digits, '-', '_' and '.', starting with a letter, at most
	// 40 characters (it becomes a directory and socket names).
	ID string `json:"id"`
	// VCPUs is the number of virtual CPUs (1–64).
	VCPUs int `json:"vcpus"`
	// MemoryMiB is the guest RAM in MiB (at least 64).
	MemoryMiB int `json:"memoryMiB"`
	// Disks are attached in order; without a Kernel the first one boots.
	Disks []Disk `json:"disks,omitempty"`
	// NICs are attached in order on taps the caller created.
	NICs []NIC `json:"nics,omitempty"`
	// Kernel, Initrd and Append boot a kernel directly instead of the
	// first disk's boot loader. Initrd and Append need Kernel.
	Kernel string `json:"kernel,omitempty"`
	Initrd string `json:"initrd,omitempty"`
	Append string `json:"append,omitempty"`
	// SMBIOS is the identity the guest reads from DMI (see EC2Identity).
	SMBIOS SMBIOS `json:"smbios"`
	// Accel is auto (the default), kvm or tcg.
	Accel Accel `json:"accel,omitempty"`
	// NetNS is the path of a network namespace (e.g.
	// /var/run/netns/NAME) the VM's process runs in, so that its taps,
	// which live in a VPC's namespace, can be opened. Empty means the
	// host's namespace.
	NetNS string `json:"netns,omitempty"`
}

// Disk is one block device of a VM.
type Disk struct {
	// ID names the disk within its VM, e.g. an EBS volume id. Same
	// alphabet as Spec.ID, at most 24 characters.
	ID string `json:"id"`
	// Path is the image file or block device.
	Path string `json:"path"`
	// Format is qcow2 or raw.
	Format DiskFormat `json:"format"`
	// Bus is "virtio" (the default and only bus so far).
	Bus string `json:"bus,omitempty"`
	// Serial is what the guest sees as the disk's serial number (at most
	// 20 characters, the virtio-blk limit), e.g. EBS's "vol0123…" so
	// /dev/disk/by-id names the volume.
	Serial string `json:"serial,omitempty"`
	// ReadOnly attaches the disk read-only.
	ReadOnly bool `json:"readOnly,omitempty"`
	// Cache is none, writeback, writethrough, directsync or unsafe, as in
	// QEMU's -drive cache=; empty means writeback.
	Cache string `json:"cache,omitempty"`
	// AIO is threads, native or io_uring; empty means threads. native
	// needs Cache none or directsync.
	AIO string `json:"aio,omitempty"`
	// Throttle limits the disk's I/O; nil or zero fields mean unlimited.
	Throttle *Throttle `json:"throttle,omitempty"`
	// KeyFile, when set, is a file holding the passphrase of a qcow2
	// disk encrypted with LUKS (an encrypted EBS volume). Drivers hand
	// QEMU the file, never the key itself, so it is on no command line.
	KeyFile string `json:"keyFile,omitempty"`
	// Backing lists the read-only layers under Path, nearest first, for
	// an encrypted disk: each encrypted layer needs the key, so each is
	// opened explicitly. Unencrypted disks leave it empty; QEMU opens
	// their backing files from the image headers.
	Backing []DiskLayer `json:"backing,omitempty"`
}

// DiskLayer is one read-only backing file of an encrypted disk.
type DiskLayer struct {
	Path      string     `json:"path"`
	Format    DiskFormat `json:"format"`
	Encrypted bool       `json:"encrypted,omitempty"`
}

// Throttle holds I/O limits per second. Zero means unlimited; Total limits
// exclude Read/Write limits of the same kind (as in QEMU).
type Throttle struct {
	IOPSTotal int64 `json:"iopsTotal,omitempty"`
	IOPSRead  int64 `json:"iopsRead,omitempty"`
	IOPSWrite int64 `json:"iopsWrite,omitempty"`
	BPSTotal  int64 `json:"bpsTotal,omitempty"`
	BPSRead   int64 `json:"bpsRead,omitempty"`
	BPSWrite  int64 `json:"bpsWrite,omitempty"`
}

// IsZero reports whether t sets no limit at all.
func (t Throttle) IsZero() bool { return t == Throttle{} }

// NIC is one network interface of a VM, backed by a tap device that the
// network fabric created (the driver never creates or deletes taps).
type NIC struct {
	// ID names the NIC within its VM, e.g. an ENI id. Same alphabet as
	// Disk.ID.
	ID string `json:"id"`
	// Tap is the host tap device's name (at most 15 characters).
	Tap string `json:"tap"`
	// MAC is the guest's hardware address, e.g. "02:00:0a:00:01:05".
	MAC string `json:"mac"`
	// Model is "virtio-net" (the default and only model so far).
	Model string `json:"model,omitempty"`
}

// SMBIOS is the system identity the guest reads from DMI
// (/sys/class/dmi/id). EC2Identity fills it the way EC2 does, which is how
// cloud-init recognises EC2.
type SMBIOS struct {
	// Manufacturer is the system (and board, chassis, BIOS) vendor.
	Manufacturer string `json:"manufacturer,omitempty"`
	// Product is the system product name (EC2: the instance type).
	Product string `json:"product,omitempty"`
	// Version is the system version.
	Version string `json:"version,omitempty"`
	// Serial is the system serial number (EC2: equals UUID).
	Serial string `json:"serial,omitempty"`
	// UUID is the system UUID, 8-4-4-4-12 hex digits (EC2: starts "ec2").
	UUID string `json:"uuid,omitempty"`
	// Family is the system family.
	Family string `json:"family,omitempty"`
	// AssetTag is the chassis asset tag (EC2 Nitro: the instance id).
	AssetTag string `json:"assetTag,omitempty"`
}

// StopOptions tells Stop how to stop.
type StopOptions struct {
	// Graceful presses the ACPI power button and waits for the guest to
	// power off; false (or the wait running out) stops the VM at once.
	Graceful bool
	// Timeout bounds the graceful wait; zero means the driver's default.
	Timeout time.Duration
}

// State is a VM's coarse run state.
type State string

// States. StateUnknown means the VM's process exists but the driver could
// not learn more (for example its control socket does not answer); Detail
// says why.
const (
	StateRunning State = "running"
	StatePaused  State = "paused"
	StateStopped State = "stopped"
	StateUnknown State = "unknown"
)

// ExitReason says why a stopped VM stopped.
type ExitReason string

// Exit reasons. ExitNone is for a VM that never ran, or runs now.
const (
	ExitNone ExitReason = ""
	// ExitStopped: Stop asked and the guest powered off in time.
	ExitStopped ExitReason = "stopped"
	// ExitForced: Stop ended the VM without the guest's help (not
	// graceful, or the guest ignored the power button until the timeout).
	ExitForced ExitReason = "forced"
	// ExitGuestShutdown: the guest powered itself off (shutdown -h).
	ExitGuestShutdown ExitReason = "guest-shutdown"
	// ExitCrashed: the VM's process ended without a power-off: killed,
	// out of memory, or crashed.
	ExitCrashed ExitReason = "crashed"
)

// Status is what a driver observes about a VM.
type Status struct {
	State State `json:"state"`
	// PID is the VM process's id while it exists, else 0. Drivers without
	// a host process per VM leave it 0.
	PID int `json:"pid,omitempty"`
	// ExitReason is set when State is stopped and the VM ran before.
	ExitReason ExitReason `json:"exitReason,omitempty"`
	// Detail is a human-readable note: the emulator's own state name, how
	// a Stop went, what was wrong when State is unknown.
	Detail string `json:"detail,omitempty"`
}

// Console locates a VM's serial console.
type Console struct {
	// LogPath is a file holding everything the guest wrote to its serial
	// console since the VM was defined (EC2 GetConsoleOutput). It may not
	// exist before the first Start.
	LogPath string `json:"logPath"`
	// SocketPath is a unix stream socket, present while the VM runs, that
	// connects to the serial console interactively (one client at a time).
	// A client should stay connected until the guest has read its input:
	// QEMU drops unread input when the client hangs up.
	SocketPath string `json:"socketPath"`
}
