package hypervisor

import (
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"github.com/labcloud/labcloud/internal/errdefs"
)

func TestDetectAccel(t *testing.T) {
	dir := t.TempDir()
	write := func(name, content string) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, []byte(content), 0o600); err != nil {
			t.Fatal(err)
		}
		return p
	}
	kvm := write("kvm", "")
	intel := write("cpuinfo-vmx", "processor\t: 0\nflags\t\t: fpu vme de pse tsc msr pae vmx sse2\n")
	amd := write("cpuinfo-svm", "processor\t: 0\nflags\t\t: fpu svm lm\n")
	pvm := write("cpuinfo-pvm", "processor\t: 0\nflags\t\t: fpu vme hypervisor lm\nbugs\t\t: vmx_in_a_bug_name\n")
	tests := []struct {
		name, kvm, cpuinfo, want, reason string
	}{
		{"no /dev/kvm", filepath.Join(dir, "missing"), intel, "tcg", "does not exist"},
		{"kvm and vmx", kvm, intel, "kvm", "using KVM"},
		{"kvm and svm", kvm, amd, "kvm", "using KVM"},
		{"kvm without vmx/svm (nested PVM)", kvm, pvm, "tcg", "no vmx or svm"},
		{"unreadable cpuinfo", kvm, filepath.Join(dir, "none"), "tcg", "cannot read"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got, reason := detectAccel(tc.kvm, tc.cpuinfo)
			if got != tc.want || !strings.Contains(reason, tc.reason) {
				t.Fatalf("detectAccel = %q (%s), want %q with %q", got, reason, tc.want, tc.reason)
			}
		})
	}
}

func TestDetectAccelOnThisHost(t *testing.T) {
	accel, reason := DetectAccel()
	if accel != "kvm" && accel != "tcg" {
		t.Fatalf("DetectAccel = %q", accel)
	}
	t.Logf("this host: %s (%s)", accel, reason)
	if a, _ := ResolveAccel(AccelTCG); a != AccelTCG {
		t.Fatalf("ResolveAccel(tcg) = %s", a)
	}
	if a, _ := ResolveAccel(AccelKVM); a != AccelKVM {
		t.Fatalf("ResolveAccel(kvm) = %s", a)
	}
	if a, _ := ResolveAccel(AccelAuto); string(a) != accel {
		t.Fatalf("ResolveAccel(auto) = %s, want %s", a, accel)
	}
}

func TestEC2Identity(t *testing.T) {
	id := EC2Identity("i-0123456789abcdef0", "t3.micro")
	if !regexp.MustCompile(`^ec2[0-9a-f]{5}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$`).MatchString(id.UUID) {
		t.Fatalf("UUID %q does not look like EC2's", id.UUID)
	}
	if id.Serial != id.UUID || id.Manufacturer != "Amazon EC2" || id.Product != "t3.micro" || id.AssetTag != "i-0123456789abcdef0" {
		t.Fatalf("EC2Identity = %+v", id)
	}
	if EC2UUID("i-0123456789abcdef0") != id.UUID {
		t.Fatal("EC2UUID is not stable")
	}
	if EC2UUID("i-1") == EC2UUID("i-2") {
		t.Fatal("two instances got the same UUID")
	}
	if err := id.Validate(); err != nil {
		t.Fatal(err)
	}
}

func TestValidate(t *testing.T) {
	good := Spec{ID: "i-1", VCPUs: 1, MemoryMiB: 128, Kernel: "/k",
		Disks: []Disk{{ID: "vol-1", Path: "/v", Format: FormatQCOW2, Serial: "vol1", Cache: "none", AIO: "native",
			Throttle: &Throttle{IOPSRead: 10, BPSTotal: 100}}},
		NICs: []NIC{{ID: "eni-1", Tap: "tap1", MAC: "02:00:00:00:00:01"}}}
	if err := good.Validate(); err != nil {
		t.Fatalf("good spec: %v", err)
	}
	tests := []struct {
		name string
		edit func(*Spec)
		msg  string
	}{
		{"long id", func(s *Spec) { s.ID = "i-" + strings.Repeat("a", MaxIDLen) }, "not usable"},
		{"id starting with a digit", func(s *Spec) { s.ID = "0abc" }, "not usable"},
		{"too many vcpus", func(s *Spec) { s.VCPUs = MaxVCPUs + 1 }, "out of range"},
		{"bus scsi", func(s *Spec) { s.Disks[0].Bus = "scsi" }, "use virtio"},
		{"unknown cache", func(s *Spec) { s.Disks[0].Cache = "fast" }, "cache mode"},
		{"total with read", func(s *Spec) { s.Disks[0].Throttle = &Throttle{IOPSTotal: 1, IOPSRead: 1} }, "total limit"},
		{"duplicate MAC", func(s *Spec) { s.NICs = append(s.NICs, NIC{ID: "eni-2", Tap: "tap2", MAC: "02:00:00:00:00:01"}) }, "used by two"},
		{"nic model e1000", func(s *Spec) { s.NICs[0].Model = "e1000" }, "use virtio-net"},
		{"smbios control char", func(s *Spec) { s.SMBIOS.Product = "t3\n" }, "printable"},
		{"smbios too long", func(s *Spec) { s.SMBIOS.Family = strings.Repeat("x", MaxSMBIOSLen+1) }, "longer"},
		{"relative netns", func(s *Spec) { s.NetNS = "vpc-1" }, "absolute path"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			s := good
			s.Disks = append([]Disk(nil), good.Disks...)
			s.NICs = append([]NIC(nil), good.NICs...)
			tc.edit(&s)
			err := s.Validate()
			if !errdefs.Is(err, errdefs.ClassInvalidParameter) || !strings.Contains(err.Error(), tc.msg) {
				t.Fatalf("Validate = %v, want InvalidParameter mentioning %q", err, tc.msg)
			}
		})
	}
}
