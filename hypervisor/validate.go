package hypervisor

import (
	"fmt"
	"net"
	"regexp"
	"strings"

	"github.com/labcloud/labcloud/internal/errdefs"
)

// Limits of a Spec. IDs end up in directory, socket and QEMU node names,
// which is why they are short and plain.
const (
	MaxIDLen       = 40
	MaxDeviceIDLen = 24
	MaxVCPUs       = 64
	MinMemoryMiB   = 64
	MaxSerialLen   = 20
	MaxTapLen      = 15
	// MaxSMBIOSLen bounds each SMBIOS string (the table stores short
	// strings; EC2's are far shorter).
	MaxSMBIOSLen = 64
)

var (
	idRe   = regexp.MustCompile(`^[A-Za-z][A-Za-z0-9._-]*$`)
	tapRe  = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9._-]*$`)
	uuidRe = regexp.MustCompile(`^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$`)
	// serialRe keeps serials to what shows up unmangled in
	// /dev/disk/by-id.
	serialRe = regexp.MustCompile(`^[A-Za-z0-9._-]*$`)
)

func invalid(format string, args ...any) error {
	return errdefs.InvalidParameter("", format, args...)
}

// ValidateID checks a VM id.
func ValidateID(id string) error {
	if id == "" {
		return invalid("the VM id is empty; give the instance id")
	}
	if len(id) > MaxIDLen || !idRe.MatchString(id) {
		return invalid("VM id %q is not usable: use at most %d letters, digits, '-', '_' or '.', starting with a letter", id, MaxIDLen)
	}
	return nil
}

func validateDeviceID(kind, id string) error {
	if id == "" {
		return invalid("%s id is empty; give it an id such as a volume or interface id", kind)
	}
	if len(id) > MaxDeviceIDLen || !idRe.MatchString(id) {
		return invalid("%s id %q is not usable: use at most %d letters, digits, '-', '_' or '.', starting with a letter", kind, id, MaxDeviceIDLen)
	}
	return nil
}

// Validate checks a Spec and returns an InvalidParameter error naming the
// first problem.
func (s Spec) Validate() error {
	if err := ValidateID(s.ID); err != nil {
		return err
	}
	if s.VCPUs < 1 || s.VCPUs > MaxVCPUs {
		return invalid("VM %s: %d vCPUs is out of range; use 1 to %d", s.ID, s.VCPUs, MaxVCPUs)
	}
	if s.MemoryMiB < MinMemoryMiB {
		return invalid("VM %s: %d MiB of memory is too little; use at least %d", s.ID, s.MemoryMiB, MinMemoryMiB)
	}
	if s.NetNS != "" && !strings.HasPrefix(s.NetNS, "/") {
		return invalid("VM %s: network namespace %q must be an absolute path such as /var/run/netns/NAME", s.ID, s.NetNS)
	}
	switch s.Accel {
	case "", AccelAuto, AccelKVM, AccelTCG:
	default:
		return invalid("VM %s: accel %q is unknown; use auto, kvm or tcg", s.ID, s.Accel)
	}
	if s.Kernel == "" && (s.Initrd != "" || s.Append != "") {
		return invalid("VM %s: initrd and kernel command line need a kernel; set Kernel or drop them", s.ID)
	}
	if s.Kernel == "" && len(s.Disks) == 0 {
		return invalid("VM %s has nothing to boot: give a kernel or at least one disk", s.ID)
	}
	seen := map[string]bool{}
	for _, d := range s.Disks {
		if err := d.Validate(); err != nil {
			return fmt.Errorf("VM %s: %w", s.ID, err)
		}
		if seen[d.ID] {
			return invalid("VM %s: device id %q is used twice; give every disk and NIC its own id", s.ID, d.ID)
		}
		seen[d.ID] = true
	}
	macs := map[string]bool{}
	for _, n := range s.NICs {
		if err := n.Validate(); err != nil {
			return fmt.Errorf("VM %s: %w", s.ID, err)
		}
		if seen[n.ID] {
			return invalid("VM %s: device id %q is used twice; give every disk and NIC its own id", s.ID, n.ID)
		}
		seen[n.ID] = true
		mac := strings.ToLower(n.MAC)
		if macs[mac] {
			return invalid("VM %s: MAC %s is used by two NICs; give each its own", s.ID, n.MAC)
		}
		macs[mac] = true
	}
	return s.SMBIOS.Validate()
}

// Validate checks one disk.
func (d Disk) Validate() error {
	if err := validateDeviceID("disk", d.ID); err != nil {
		return err
	}
	if d.Path == "" {
		return invalid("disk %s has no path; give the image file or block device", d.ID)
	}
	switch d.Format {
	case FormatQCOW2, FormatRaw:
	case "":
		return invalid("disk %s has no format; use qcow2 or raw", d.ID)
	default:
		return invalid("disk %s: format %q is not supported; use qcow2 or raw", d.ID, d.Format)
	}
	switch d.Bus {
	case "", "virtio":
	default:
		return invalid("disk %s: bus %q is not supported; use virtio", d.ID, d.Bus)
	}
	if len(d.Serial) > MaxSerialLen || !serialRe.MatchString(d.Serial) {
		return invalid("disk %s: serial %q is not usable: at most %d letters, digits, '.', '_' or '-'", d.ID, d.Serial, MaxSerialLen)
	}
	switch d.Cache {
	case "", "none", "writeback", "writethrough", "directsync", "unsafe":
	default:
		return invalid("disk %s: cache mode %q is unknown; use none, writeback, writethrough, directsync or unsafe", d.ID, d.Cache)
	}
	switch d.AIO {
	case "", "threads", "io_uring":
	case "native":
		if d.Cache != "none" && d.Cache != "directsync" {
			return invalid("disk %s: aio native needs cache none or directsync (O_DIRECT)", d.ID)
		}
	default:
		return invalid("disk %s: aio %q is unknown; use threads, native or io_uring", d.ID, d.AIO)
	}
	if d.KeyFile != "" && d.Format != FormatQCOW2 {
		return invalid("disk %s: a key file is for LUKS-encrypted qcow2 disks; format %s takes none", d.ID, d.Format)
	}
	if len(d.Backing) > 0 && d.KeyFile == "" {
		return invalid("disk %s: explicit backing layers are for encrypted disks; QEMU opens other disks' layers from the image headers", d.ID)
	}
	for _, l := range d.Backing {
		if l.Path == "" || (l.Format != FormatQCOW2 && l.Format != FormatRaw) {
			return invalid("disk %s: backing layer %q needs a path and format qcow2 or raw", d.ID, l.Path)
		}
	}
	if t := d.Throttle; t != nil {
		for _, v := range []int64{t.IOPSTotal, t.IOPSRead, t.IOPSWrite, t.BPSTotal, t.BPSRead, t.BPSWrite} {
			if v < 0 {
				return invalid("disk %s: throttle limits must not be negative", d.ID)
			}
		}
		if (t.IOPSTotal != 0 && (t.IOPSRead != 0 || t.IOPSWrite != 0)) || (t.BPSTotal != 0 && (t.BPSRead != 0 || t.BPSWrite != 0)) {
			return invalid("disk %s: a total limit cannot be combined with read or write limits of the same kind", d.ID)
		}
	}
	return nil
}

// Validate checks one NIC.
func (n NIC) Validate() error {
	if err := validateDeviceID("NIC", n.ID); err != nil {
		return err
	}
	if n.Tap == "" || len(n.Tap) > MaxTapLen || !tapRe.MatchString(n.Tap) {
		return invalid("NIC %s: tap name %q is not usable: give the tap device's name (at most %d letters, digits, '.', '_' or '-')", n.ID, n.Tap, MaxTapLen)
	}
	hw, err := net.ParseMAC(n.MAC)
	if err != nil || len(hw) != 6 {
		return invalid("NIC %s: MAC %q is not a 6-byte address like 02:00:0a:00:01:05", n.ID, n.MAC)
	}
	if hw[0]&1 == 1 {
		return invalid("NIC %s: MAC %s is a multicast address; use a unicast one (even first byte)", n.ID, n.MAC)
	}
	switch n.Model {
	case "", "virtio-net":
	default:
		return invalid("NIC %s: model %q is not supported; use virtio-net", n.ID, n.Model)
	}
	return nil
}

// Validate checks the SMBIOS strings.
func (s SMBIOS) Validate() error {
	for name, v := range map[string]string{
		"manufacturer": s.Manufacturer, "product": s.Product, "version": s.Version,
		"serial": s.Serial, "family": s.Family, "asset tag": s.AssetTag,
	} {
		if len(v) > MaxSMBIOSLen {
			return invalid("SMBIOS %s is longer than %d characters", name, MaxSMBIOSLen)
		}
		for _, r := range v {
			if r < 0x20 || r > 0x7e {
				return invalid("SMBIOS %s %q has a character that is not printable ASCII", name, v)
			}
		}
	}
	if s.UUID != "" && !uuidRe.MatchString(s.UUID) {
		return invalid("SMBIOS UUID %q is not 8-4-4-4-12 hex digits", s.UUID)
	}
	return nil
}
