package libvirt

import (
	"fmt"
	"strings"

	"libvirt.org/go/libvirtxml"

	"github.com/labcloud/labcloud/hypervisor"
)

// DefaultHotplugPorts is how many empty PCIe root ports a domain gets for
// devices attached while it runs (q35 cannot hot-plug on the root bus).
const DefaultHotplugPorts = 8

// aliasPrefix starts every device alias labcloud sets: libvirt only keeps
// user-chosen aliases that start with "ua-", and keeps them in the
// persistent definition, which is how a device is found again by its ID.
const aliasPrefix = "ua-"

// DomainConfig is everything BuildDomainXML needs; it holds only resolved
// values so that rendering is pure.
type DomainConfig struct {
	// Name is the libvirt domain name (prefix + VM id).
	Name string
	// Spec is the VM definition (already validated).
	Spec hypervisor.Spec
	// Accel is kvm or tcg, already resolved from auto.
	Accel hypervisor.Accel
	// ConsoleLog and ConsoleSocket are the serial console's log file and
	// unix socket.
	ConsoleLog, ConsoleSocket string
	// HotplugPorts is how many spare PCIe root ports to add.
	HotplugPorts int
}

// BuildDomain turns cfg into a libvirt domain definition. It is pure; the
// golden files in testdata pin its XML down. Choices made here:
//
//   - type qemu (TCG) unless Accel is kvm; q35; direct kernel boot or the
//     first disk; ACPI so the power button (virDomainShutdown with
//     ACPI_POWER_BTN) reaches the guest.
//   - SMBIOS from a <sysinfo type='smbios'> block; libvirt insists the
//     sysinfo UUID equals the domain UUID, so the domain gets the SMBIOS
//     UUID.
//   - every disk virtio-blk with a "ua-<ID>" alias and its serial; I/O
//     limits as <iotune>.
//   - every NIC an <interface type='ethernet'> on the caller's tap with
//     managed='no': libvirt opens the existing tap and never creates or
//     deletes it.
//   - one pcie-root-port per boot-time device plus HotplugPorts spares.
//   - serial console on a unix socket (server) with an appended log file.
//   - on_poweroff/on_crash destroy: a powered-off domain is shut off and
//     libvirt records why (shutdown, crashed, destroyed).
func BuildDomain(cfg DomainConfig) *libvirtxml.Domain {
	s := cfg.Spec
	typ := "qemu"
	if cfg.Accel == hypervisor.AccelKVM {
		typ = "kvm"
	}
	dom := &libvirtxml.Domain{
		Type:   typ,
		Name:   cfg.Name,
		UUID:   s.SMBIOS.UUID,
		Memory: &libvirtxml.DomainMemory{Value: uint(s.MemoryMiB), Unit: "MiB"},
		VCPU:   &libvirtxml.DomainVCPU{Value: uint(s.VCPUs)},
		OS: &libvirtxml.DomainOS{
			Type:    &libvirtxml.DomainOSType{Arch: "x86_64", Machine: "q35", Type: "hvm"},
			Kernel:  s.Kernel,
			Initrd:  s.Initrd,
			Cmdline: s.Append,
		},
		Features: &libvirtxml.DomainFeatureList{
			ACPI: &libvirtxml.DomainFeature{},
			APIC: &libvirtxml.DomainFeatureAPIC{},
		},
		OnPoweroff: "destroy",
		OnReboot:   "restart",
		OnCrash:    "destroy",
		Devices:    &libvirtxml.DomainDeviceList{},
	}
	if s.Kernel == "" {
		dom.OS.BootDevices = []libvirtxml.DomainBootDevice{{Dev: "hd"}}
	}
	if si := sysinfo(s.SMBIOS); si != nil {
		dom.SysInfo = []libvirtxml.DomainSysInfo{{SMBIOS: si}}
		dom.OS.SMBios = &libvirtxml.DomainSMBios{Mode: "sysinfo"}
	}
	devs := dom.Devices
	root := uint(0)
	devs.Controllers = []libvirtxml.DomainController{{Type: "pci", Index: &root, Model: "pcie-root"}}
	ports := len(s.Disks) + len(s.NICs) + cfg.HotplugPorts
	for range ports {
		devs.Controllers = append(devs.Controllers, libvirtxml.DomainController{Type: "pci", Model: "pcie-root-port"})
	}
	for i, d := range s.Disks {
		devs.Disks = append(devs.Disks, DiskXML(d, diskTarget(i)))
	}
	for _, n := range s.NICs {
		devs.Interfaces = append(devs.Interfaces, NICXML(n))
	}
	port := uint(0)
	devs.Serials = []libvirtxml.DomainSerial{{
		Source: &libvirtxml.DomainChardevSource{UNIX: &libvirtxml.DomainChardevSourceUNIX{Mode: "bind", Path: cfg.ConsoleSocket}},
		Target: &libvirtxml.DomainSerialTarget{Type: "isa-serial", Port: &port},
		Log:    &libvirtxml.DomainChardevLog{File: cfg.ConsoleLog, Append: "on"},
	}}
	devs.MemBalloon = &libvirtxml.DomainMemBalloon{Model: "none"}
	return dom
}

// BuildDomainXML renders BuildDomain(cfg) as XML.
func BuildDomainXML(cfg DomainConfig) (string, error) {
	return BuildDomain(cfg).Marshal()
}

func sysinfo(b hypervisor.SMBIOS) *libvirtxml.DomainSysInfoSMBIOS {
	if b == (hypervisor.SMBIOS{}) {
		return nil
	}
	entries := func(kv ...string) []libvirtxml.DomainSysInfoEntry {
		var e []libvirtxml.DomainSysInfoEntry
		for i := 0; i < len(kv); i += 2 {
			if kv[i+1] != "" {
				e = append(e, libvirtxml.DomainSysInfoEntry{Name: kv[i], Value: kv[i+1]})
			}
		}
		return e
	}
	si := &libvirtxml.DomainSysInfoSMBIOS{
		System: &libvirtxml.DomainSysInfoSystem{Entry: entries(
			"manufacturer", b.Manufacturer, "product", b.Product, "version", b.Version,
			"serial", b.Serial, "uuid", b.UUID, "family", b.Family)},
	}
	if b.Manufacturer != "" {
		si.BIOS = &libvirtxml.DomainSysInfoBIOS{Entry: entries("vendor", b.Manufacturer)}
		si.BaseBoard = []libvirtxml.DomainSysInfoBaseBoard{{Entry: entries("manufacturer", b.Manufacturer)}}
	}
	if c := entries("manufacturer", b.Manufacturer, "asset", b.AssetTag); len(c) > 0 {
		si.Chassis = &libvirtxml.DomainSysInfoChassis{Entry: c}
	}
	return si
}

// diskTarget names the i-th virtio disk as the guest kernel would: vda,
// vdb, …, vdz, vdaa, …
func diskTarget(i int) string {
	name := ""
	for i++; i > 0; i = (i - 1) / 26 {
		name = string(rune('a'+(i-1)%26)) + name
	}
	return "vd" + name
}

// DiskXML is the <disk> element of d with target device dev.
func DiskXML(d hypervisor.Disk, dev string) libvirtxml.DomainDisk {
	cache := d.Cache
	if cache == "" {
		cache = "writeback"
	}
	io := d.AIO
	if io == "" {
		io = "threads"
	}
	disk := libvirtxml.DomainDisk{
		Device: "disk",
		Driver: &libvirtxml.DomainDiskDriver{Name: "qemu", Type: string(d.Format), Cache: cache, IO: io},
		Target: &libvirtxml.DomainDiskTarget{Dev: dev, Bus: "virtio"},
		Serial: d.Serial,
		Alias:  &libvirtxml.DomainAlias{Name: aliasPrefix + d.ID},
	}
	if strings.HasPrefix(d.Path, "/dev/") {
		disk.Source = &libvirtxml.DomainDiskSource{Block: &libvirtxml.DomainDiskSourceBlock{Dev: d.Path}}
	} else {
		disk.Source = &libvirtxml.DomainDiskSource{File: &libvirtxml.DomainDiskSourceFile{File: d.Path}}
	}
	if d.ReadOnly {
		disk.ReadOnly = &libvirtxml.DomainDiskReadOnly{}
	}
	if d.Throttle != nil && !d.Throttle.IsZero() {
		t := d.Throttle
		disk.IOTune = &libvirtxml.DomainDiskIOTune{
			TotalIopsSec: uint64(t.IOPSTotal), ReadIopsSec: uint64(t.IOPSRead), WriteIopsSec: uint64(t.IOPSWrite),
			TotalBytesSec: uint64(t.BPSTotal), ReadBytesSec: uint64(t.BPSRead), WriteBytesSec: uint64(t.BPSWrite),
		}
	}
	return disk
}

// NICXML is the <interface> element of n: the caller's existing tap,
// unmanaged, virtio-net.
func NICXML(n hypervisor.NIC) libvirtxml.DomainInterface {
	return libvirtxml.DomainInterface{
		Source: &libvirtxml.DomainInterfaceSource{Ethernet: &libvirtxml.DomainInterfaceSourceEthernet{}},
		Target: &libvirtxml.DomainInterfaceTarget{Dev: n.Tap, Managed: "no"},
		MAC:    &libvirtxml.DomainInterfaceMAC{Address: n.MAC},
		Model:  &libvirtxml.DomainInterfaceModel{Type: "virtio"},
		Alias:  &libvirtxml.DomainAlias{Name: aliasPrefix + n.ID},
	}
}

// deviceID is the labcloud device ID behind a libvirt alias, "" when the
// alias is not one labcloud set.
func deviceID(a *libvirtxml.DomainAlias) string {
	if a == nil || !strings.HasPrefix(a.Name, aliasPrefix) {
		return ""
	}
	return strings.TrimPrefix(a.Name, aliasPrefix)
}

// freeDiskTarget returns the first vdX name no disk of dom uses.
func freeDiskTarget(dom *libvirtxml.Domain) (string, error) {
	used := map[string]bool{}
	if dom.Devices != nil {
		for _, d := range dom.Devices.Disks {
			if d.Target != nil {
				used[d.Target.Dev] = true
			}
		}
	}
	for i := range 702 {
		if n := diskTarget(i); !used[n] {
			return n, nil
		}
	}
	return "", fmt.Errorf("no free disk name")
}
