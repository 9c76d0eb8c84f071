package qemu

import (
	"fmt"
	"path/filepath"

	"github.com/labcloud/labcloud/hypervisor"
)

// Config is everything BuildArgs needs, fully resolved: no "auto", no
// file-system look-ups left. ConfigFromSpec makes one from a Spec.
type Config struct {
	// Name is the VM id (QEMU's -name, thread names, logs).
	Name string
	// Accel is kvm or tcg (already resolved from auto).
	Accel hypervisor.Accel
	// CPUModel overrides the CPU model; empty means host under KVM and max
	// under TCG.
	CPUModel  string
	VCPUs     int
	MemoryMiB int
	Kernel    string
	Initrd    string
	Append    string
	SMBIOS    hypervisor.SMBIOS
	// Disks and NICs carry the root port each is plugged into.
	Disks []DiskConfig
	NICs  []NICConfig
	// Ports is the number of PCIe root ports ("rp0"…), one per boot-time
	// device plus the spares that hot-plug uses.
	Ports int
	// Files are the per-VM paths (sockets, logs, pidfile).
	Files Files
	// Daemonize makes QEMU detach itself (-daemonize) once it is set up,
	// so it outlives labcloudd; its parent's exit status tells whether the
	// start worked.
	Daemonize bool
}

// DiskConfig is a disk and where it plugs in.
type DiskConfig struct {
	hypervisor.Disk
	// Port is the root port id, e.g. "rp0".
	Port string
	// HostDevice is true for block devices (QEMU's host_device driver)
	// and false for image files.
	HostDevice bool
	// BootIndex, when > 0, puts the disk in the firmware's boot order.
	BootIndex int
}

// NICConfig is a NIC and where it plugs in.
type NICConfig struct {
	hypervisor.NIC
	Port string
}

// Files are the run files of one VM, all inside its run directory. Their
// names are fixed, so a restarted driver finds a running VM from the
// directory alone.
type Files struct {
	Dir           string
	QMPSocket     string // QMP control socket
	ConsoleSocket string // serial console, interactive
	ConsoleLog    string // serial console, everything ever written
	PIDFile       string // written (and locked) by QEMU
	QEMULog       string // QEMU's own stderr at start-up
}

// FilesIn names the run files inside dir.
func FilesIn(dir string) Files {
	return Files{
		Dir:           dir,
		QMPSocket:     filepath.Join(dir, "qmp.sock"),
		ConsoleSocket: filepath.Join(dir, "console.sock"),
		ConsoleLog:    filepath.Join(dir, "console.log"),
		PIDFile:       filepath.Join(dir, "qemu.pid"),
		QEMULog:       filepath.Join(dir, "qemu.log"),
	}
}

// DefaultHotplugPorts is how many empty root ports a VM gets for devices
// attached while it runs (PCIe has no hot-plug on the root bus itself).
const DefaultHotplugPorts = 8

// maxPorts is what fits on pcie.0 at eight functions per slot in slots
// 0x2–0x1d, leaving 0x1e–0x1f alone (q35 puts the LPC/SATA/SMBus
// functions at 0x1f).
const maxPorts = 8 * (0x1d - 0x2 + 1)

// ConfigFromSpec resolves a Spec into a Config: accelerator already
// resolved by the caller, boot-time devices on root ports rp0… in spec
// order (disks first), hotplugPorts spares after them. isBlockDevice tells
// image files from block devices (nil: all files). It is pure apart from
// isBlockDevice.
func ConfigFromSpec(spec hypervisor.Spec, accel hypervisor.Accel, files Files, hotplugPorts int, isBlockDevice func(path string) bool) (Config, error) {
	if err := spec.Validate(); err != nil {
		return Config{}, err
	}
	if accel != hypervisor.AccelKVM && accel != hypervisor.AccelTCG {
		return Config{}, fmt.Errorf("accelerator %q is not resolved; pass kvm or tcg", accel)
	}
	n := len(spec.Disks) + len(spec.NICs) + hotplugPorts
	if n > maxPorts {
		return Config{}, fmt.Errorf("VM %s needs %d PCIe ports, more than the %d that fit", spec.ID, n, maxPorts)
	}
	cfg := Config{
		Name:      spec.ID,
		Accel:     accel,
		VCPUs:     spec.VCPUs,
		MemoryMiB: spec.MemoryMiB,
		Kernel:    spec.Kernel,
		Initrd:    spec.Initrd,
		Append:    spec.Append,
		SMBIOS:    spec.SMBIOS,
		Ports:     n,
		Files:     files,
		Daemonize: true,
	}
	port := 0
	for i, d := range spec.Disks {
		dc := DiskConfig{Disk: d, Port: portID(port)}
		if isBlockDevice != nil {
			dc.HostDevice = isBlockDevice(d.Path)
		}
		if i == 0 && spec.Kernel == "" {
			dc.BootIndex = 1
		}
		cfg.Disks = append(cfg.Disks, dc)
		port++
	}
	for _, nic := range spec.NICs {
		cfg.NICs = append(cfg.NICs, NICConfig{NIC: nic, Port: portID(port)})
		port++
	}
	return cfg, nil
}

func portID(i int) string { return fmt.Sprintf("rp%d", i) }
