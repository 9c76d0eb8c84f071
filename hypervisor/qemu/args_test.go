package qemu

import (
	"errors"
	"flag"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"github.com/labcloud/labcloud/hypervisor"
	"github.com/labcloud/labcloud/internal/errdefs"
)

var update = flag.Bool("update", false, "rewrite the golden files in testdata")

// TestBuildArgsGolden pins the QEMU command line for typical configs. The
// golden files hold one argument per line; after an intended change, run
// `go test ./hypervisor/qemu -run TestBuildArgsGolden -update` and review
// the diff.
func TestBuildArgsGolden(t *testing.T) {
	files := FilesIn("/var/lib/labcloud/vms/i-0123456789abcdef0")
	rootDisk := hypervisor.Disk{ID: "vol-root", Path: "/var/lib/labcloud/volumes/vol-root.qcow2", Format: hypervisor.FormatQCOW2, Serial: "volroot"}
	spec := func(accel hypervisor.Accel) hypervisor.Spec {
		return hypervisor.Spec{ID: "i-0123456789abcdef0", VCPUs: 2, MemoryMiB: 1024, Accel: accel,
			Disks: []hypervisor.Disk{rootDisk}}
	}
	tests := []struct {
		name  string
		spec  hypervisor.Spec
		accel hypervisor.Accel
		ports int
		edit  func(*Config)
	}{
		{name: "tcg", spec: spec(hypervisor.AccelTCG), accel: hypervisor.AccelTCG, ports: 2},
		{name: "kvm", spec: spec(hypervisor.AccelKVM), accel: hypervisor.AccelKVM, ports: 2},
		{name: "direct-kernel-boot", accel: hypervisor.AccelTCG, ports: 0, spec: hypervisor.Spec{
			ID: "i-kernel", VCPUs: 1, MemoryMiB: 256,
			Kernel: "/var/cache/labcloud/vmlinuz", Initrd: "/var/cache/labcloud/initrd.img",
			Append: "console=ttyS0 root=/dev/vda rw quiet",
		}},
		{name: "two-disks-throttled", accel: hypervisor.AccelTCG, ports: 1, spec: hypervisor.Spec{
			ID: "i-disks", VCPUs: 1, MemoryMiB: 512,
			Disks: []hypervisor.Disk{
				{ID: "vol-root", Path: "/srv/vol-root.qcow2", Format: hypervisor.FormatQCOW2, Serial: "volroot",
					Cache: "none", AIO: "native", Throttle: &hypervisor.Throttle{IOPSTotal: 3000, BPSTotal: 125 << 20}},
				{ID: "vol-data", Path: "/srv/vol-data.raw", Format: hypervisor.FormatRaw, Serial: "vol0123456789abcdef0",
					ReadOnly: true, Cache: "writethrough", Throttle: &hypervisor.Throttle{IOPSRead: 100, IOPSWrite: 50, BPSRead: 1 << 20, BPSWrite: 2 << 20}},
			},
		}},
		{name: "encrypted-volume", accel: hypervisor.AccelTCG, ports: 1, spec: hypervisor.Spec{
			ID: "i-enc", VCPUs: 1, MemoryMiB: 512,
			Disks: []hypervisor.Disk{rootDisk,
				{ID: "vol-0123456789abcdef0", Path: "/var/lib/labcloud/volumes/volumes/vol-0123456789abcdef0.qcow2", Format: hypervisor.FormatQCOW2,
					Serial: "vol0123456789abcdef0", KeyFile: "/var/lib/labcloud/volumes/keys/k1",
					Backing: []hypervisor.DiskLayer{
						{Path: "/var/lib/labcloud/volumes/snapshots/snap-2.qcow2", Format: hypervisor.FormatQCOW2, Encrypted: true},
						{Path: "/var/lib/labcloud/volumes/snapshots/snap-1.qcow2", Format: hypervisor.FormatQCOW2, Encrypted: true},
					}},
			},
		}},
		{name: "two-nics", accel: hypervisor.AccelTCG, ports: 3, spec: hypervisor.Spec{
			ID: "i-nics", VCPUs: 1, MemoryMiB: 512, Disks: []hypervisor.Disk{rootDisk},
			NICs: []hypervisor.NIC{
				{ID: "eni-0aaa", Tap: "lc-eni0aaa", MAC: "02:00:0A:00:01:05"},
				{ID: "eni-0bbb", Tap: "lc-eni0bbb", MAC: "02:00:0a:00:02:07", Model: "virtio-net"},
			},
		}},
		{name: "smbios-ec2", accel: hypervisor.AccelTCG, ports: 1, spec: hypervisor.Spec{
			ID: "i-0123456789abcdef0", VCPUs: 2, MemoryMiB: 1024, Disks: []hypervisor.Disk{rootDisk},
			SMBIOS: hypervisor.EC2Identity("i-0123456789abcdef0", "t3.micro"),
		}},
		{name: "block-device-and-commas", accel: hypervisor.AccelTCG, ports: 0, spec: hypervisor.Spec{
			ID: "i-commas", VCPUs: 1, MemoryMiB: 256,
			Disks:  []hypervisor.Disk{{ID: "vol-lv", Path: "/dev/labcloud/vol,lv", Format: hypervisor.FormatRaw, Cache: "directsync", AIO: "io_uring"}},
			SMBIOS: hypervisor.SMBIOS{Manufacturer: "Lab, Inc.", Product: "m5.large"},
		}, edit: func(c *Config) {
			c.Disks[0].HostDevice = true
			c.Files = FilesIn("/run/lab,cloud/i-commas")
			c.Daemonize = false
		}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			f := files
			if tc.spec.ID != "i-0123456789abcdef0" {
				f = FilesIn("/var/lib/labcloud/vms/" + tc.spec.ID)
			}
			cfg, err := ConfigFromSpec(tc.spec, tc.accel, f, tc.ports, nil)
			if err != nil {
				t.Fatal(err)
			}
			if tc.edit != nil {
				tc.edit(&cfg)
			}
			got := strings.Join(BuildArgs(cfg), "\n") + "\n"
			golden := filepath.Join("testdata", tc.name+".args")
			if *update {
				if err := os.WriteFile(golden, []byte(got), 0o644); err != nil {
					t.Fatal(err)
				}
			}
			want, err := os.ReadFile(golden)
			if err != nil {
				t.Fatalf("%v (run with -update to create it)", err)
			}
			if got != string(want) {
				t.Errorf("BuildArgs differs from %s (run with -update after an intended change):\n%s", golden, lineDiff(string(want), got))
			}
			// Pure: a second call gives the same.
			if again := strings.Join(BuildArgs(cfg), "\n") + "\n"; again != got {
				t.Error("BuildArgs is not deterministic")
			}
		})
	}
}

// lineDiff shows the lines that differ, enough to see what changed.
func lineDiff(want, got string) string {
	w, g := strings.Split(want, "\n"), strings.Split(got, "\n")
	var b strings.Builder
	for i := 0; i < len(w) || i < len(g); i++ {
		var wl, gl string
		if i < len(w) {
			wl = w[i]
		}
		if i < len(g) {
			gl = g[i]
		}
		if wl != gl {
			b.WriteString("line " + strconv.Itoa(i+1) + ":\n  want " + wl + "\n  got  " + gl + "\n")
		}
	}
	return b.String()
}

func TestConfigFromSpec(t *testing.T) {
	spec := hypervisor.Spec{ID: "i-1", VCPUs: 1, MemoryMiB: 128,
		Disks: []hypervisor.Disk{
			{ID: "vol-a", Path: "/dev/vg/a", Format: hypervisor.FormatRaw},
			{ID: "vol-b", Path: "/b.qcow2", Format: hypervisor.FormatQCOW2},
		},
		NICs: []hypervisor.NIC{{ID: "eni-1", Tap: "tap1", MAC: "02:00:00:00:00:01"}},
	}
	cfg, err := ConfigFromSpec(spec, hypervisor.AccelTCG, FilesIn("/x/i-1"), 4, func(p string) bool { return strings.HasPrefix(p, "/dev/") })
	if err != nil {
		t.Fatal(err)
	}
	if cfg.Ports != 7 {
		t.Errorf("Ports = %d, want 3 devices + 4 spares", cfg.Ports)
	}
	if d := cfg.Disks[0]; d.Port != "rp0" || !d.HostDevice || d.BootIndex != 1 {
		t.Errorf("first disk = %+v, want rp0, host device, boot index 1", d)
	}
	if d := cfg.Disks[1]; d.Port != "rp1" || d.HostDevice || d.BootIndex != 0 {
		t.Errorf("second disk = %+v, want rp1, image file, no boot index", d)
	}
	if n := cfg.NICs[0]; n.Port != "rp2" {
		t.Errorf("NIC port = %s, want rp2", n.Port)
	}
	if !cfg.Daemonize {
		t.Error("Daemonize = false; QEMU must outlive labcloudd")
	}

	if _, err := ConfigFromSpec(spec, hypervisor.AccelAuto, FilesIn("/x"), 0, nil); err == nil {
		t.Error("an unresolved accelerator must be refused")
	}
	if _, err := ConfigFromSpec(spec, hypervisor.AccelTCG, FilesIn("/x"), maxPorts, nil); err == nil {
		t.Error("more ports than fit on pcie.0 must be refused")
	}
	bad := spec
	bad.VCPUs = 0
	if _, err := ConfigFromSpec(bad, hypervisor.AccelTCG, FilesIn("/x"), 0, nil); !errdefs.Is(err, errdefs.ClassInvalidParameter) {
		t.Errorf("invalid spec: %v, want InvalidParameter", err)
	}
}

func TestCacheModes(t *testing.T) {
	tests := []struct {
		mode       string
		direct     bool
		noFlush    bool
		writeCache bool
	}{
		{"", false, false, true},
		{"writeback", false, false, true},
		{"none", true, false, true},
		{"writethrough", false, false, false},
		{"directsync", true, false, false},
		{"unsafe", false, true, true},
	}
	for _, tc := range tests {
		t.Run("mode="+tc.mode, func(t *testing.T) {
			c, wc := cacheMode(tc.mode)
			var got cacheOpts
			if c != nil {
				got = *c
			}
			if got.Direct != tc.direct || got.NoFlush != tc.noFlush || wc != tc.writeCache {
				t.Fatalf("cacheMode(%q) = %+v, write-cache %v", tc.mode, got, wc)
			}
		})
	}
}

func TestShellQuote(t *testing.T) {
	got := shellQuote([]string{"-name", "guest=i-1,debug-threads=on", "-append", "console=ttyS0 quiet", "it's", ""})
	want := `-name guest=i-1,debug-threads=on -append 'console=ttyS0 quiet' 'it'\''s' ''`
	if got != want {
		t.Fatalf("shellQuote = %s, want %s", got, want)
	}
}

func TestExitRecordWins(t *testing.T) {
	v := &vm{id: "i-1", files: FilesIn(t.TempDir())}
	if r, _ := v.exitReason(); r != hypervisor.ExitNone {
		t.Fatalf("never started: %q, want none", r)
	}
	os.WriteFile(filepath.Join(v.files.Dir, startedFile), nil, 0o644)
	if r, _ := v.exitReason(); r != hypervisor.ExitCrashed {
		t.Fatalf("started, no record: %q, want crashed", r)
	}
	v.recordExit(hypervisor.ExitGuestShutdown, "", false)
	v.recordExit(hypervisor.ExitForced, "later guess", false)
	if r, _ := v.exitReason(); r != hypervisor.ExitGuestShutdown {
		t.Fatalf("first record must win without overwrite: %q", r)
	}
	v.recordExit(hypervisor.ExitStopped, "", true)
	if r, _ := v.exitReason(); r != hypervisor.ExitStopped {
		t.Fatalf("overwrite: %q, want stopped", r)
	}
}

func TestNewNeedsRunDir(t *testing.T) {
	if _, err := New(Options{}); err == nil {
		t.Fatal("New without RunDir must fail")
	}
	d, err := New(Options{RunDir: filepath.Join(t.TempDir(), "a", "b")})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(d.RunDir()); err != nil {
		t.Fatalf("New did not create the run dir: %v", err)
	}
	long := hypervisor.Spec{ID: "i-" + strings.Repeat("x", 38), VCPUs: 1, MemoryMiB: 128, Kernel: "/k"}
	d2, _ := New(Options{RunDir: filepath.Join(t.TempDir(), strings.Repeat("d", 60))})
	if err := d2.Create(t.Context(), long); !errdefs.Is(err, errdefs.ClassInvalidParameter) || errors.Is(err, os.ErrExist) {
		t.Fatalf("Create with a socket path over 107 bytes = %v, want InvalidParameter", err)
	}
}

// TestLateEventOfAnEarlierRun: the SHUTDOWN of a forced Stop, read by its
// watcher only after Start has begun the next run, must not become that
// run's exit reason (it once made a later kill read "forced", not
// "crashed", on a loaded CI host).
func TestLateEventOfAnEarlierRun(t *testing.T) {
	d, err := New(Options{RunDir: t.TempDir()})
	if err != nil {
		t.Fatal(err)
	}
	v := &vm{id: "i-1", files: FilesIn(t.TempDir())}
	marker := filepath.Join(v.files.Dir, startedFile)
	quit := Event{Event: "SHUTDOWN", Data: map[string]any{"guest": false, "reason": "host-qmp-quit"}}
	feed := func(run string) {
		events := make(chan Event, 1)
		events <- quit
		close(events)
		d.watch(v, nil, 0, run, events, func() {})
	}

	os.WriteFile(marker, []byte("2"), 0o644)
	feed("1")
	if r, detail := v.exitReason(); r != hypervisor.ExitCrashed {
		t.Fatalf("run 2 took run 1's late event: %q (%s), want crashed", r, detail)
	}
	feed("2")
	if r, _ := v.exitReason(); r != hypervisor.ExitForced {
		t.Fatalf("run 2's own event: %q, want forced", r)
	}
}
