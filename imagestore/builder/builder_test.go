package builder

import (
	"bytes"
	"compress/gzip"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/labcloud/labcloud/internal/errdefs"
)

// The image is built once per test binary into a temporary directory, with
// the package cache kept across runs (LABCLOUD_BUILDER_CACHE, else
// DefaultCacheDir) so that only the first run on a machine downloads.
var (
	tinyOnce     sync.Once
	tinyResult   Result
	tinyErr      error
	tinyBuildDur time.Duration
	tinyOutDir   string
)

func TestMain(m *testing.M) {
	code := m.Run()
	if tinyOutDir != "" {
		os.RemoveAll(tinyOutDir)
	}
	os.Exit(code)
}

func testCacheDir() string {
	if d := os.Getenv("LABCLOUD_BUILDER_CACHE"); d != "" {
		return d
	}
	return DefaultCacheDir
}

// requireTools fails the test (never skips: CI must run it) when a host
// tool is missing, saying how to get it.
func requireTools(t *testing.T, tools ...Tool) {
	t.Helper()
	if err := CheckTools(tools...); err != nil {
		t.Fatalf("%v", err)
	}
}

// requireRoot skips when not root: the VM tests create network namespaces
// and taps. CI runs as root and so runs them.
func requireRoot(t *testing.T) {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("needs root (network namespaces, taps); CI runs as root")
	}
}

// builtTiny builds labcloud-tiny once for all tests.
func builtTiny(t *testing.T) Result {
	t.Helper()
	requireTools(t, BuildTools...)
	tinyOnce.Do(func() {
		dir, err := os.MkdirTemp("", "labcloud-tiny-test-")
		if err != nil {
			tinyErr = err
			return
		}
		tinyOutDir = dir
		start := time.Now()
		tinyResult, tinyErr = BuildTiny(context.Background(), BuildInput{
			OutDir:   dir,
			CacheDir: testCacheDir(),
			Logf:     func(f string, a ...any) { fmt.Fprintf(os.Stderr, "build: "+f+"\n", a...) },
		})
		tinyBuildDur = time.Since(start)
	})
	if tinyErr != nil {
		t.Fatalf("BuildTiny: %v", tinyErr)
	}
	return tinyResult
}

func TestCheckToolsSaysMakeDeps(t *testing.T) {
	err := CheckTools(Tool{"labcloud-no-such-tool", "labcloud-no-such-package"}, Tool{"sh", "dash"})
	if err == nil {
		t.Fatal("CheckTools found a tool that does not exist")
	}
	for _, want := range []string{"labcloud-no-such-tool", "labcloud-no-such-package", "make deps"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error %q does not mention %q", err, want)
		}
	}
	if strings.Contains(err.Error(), "dash") {
		t.Errorf("error %q names a tool that is present", err)
	}
	if !errdefs.Is(err, errdefs.ClassUnavailable) {
		t.Errorf("error class %v, want unavailable", errdefs.ClassOf(err))
	}
}

func TestParsePrintURIs(t *testing.T) {
	for _, tc := range []struct {
		name    string
		in      string
		want    []debPkg
		wantErr bool
	}{
		{
			name: "epoch and revision",
			in: "'http://deb.example/pool/main/b/busybox/busybox-static_1%3a1.35.0-4+deb12u1+b1_amd64.deb' busybox-static_1%3a1.35.0-4+deb12u1+b1_amd64.deb 928188 SHA256:0123abcd\n" +
				"'http://deb.example/pool/main/d/dropbear/dropbear-bin_2022.83-1+deb12u3_amd64.deb' dropbear-bin_2022.83-1+deb12u3_amd64.deb 155520 SHA256:ffee\n",
			want: []debPkg{
				{Name: "busybox-static", Version: "1:1.35.0-4+deb12u1+b1", Arch: "amd64", Filename: "busybox-static_1%3a1.35.0-4+deb12u1+b1_amd64.deb", SHA256: "0123abcd", Size: 928188},
				{Name: "dropbear-bin", Version: "2022.83-1+deb12u3", Arch: "amd64", Filename: "dropbear-bin_2022.83-1+deb12u3_amd64.deb", SHA256: "ffee", Size: 155520},
			},
		},
		{name: "notices are ignored", in: "W: something\n", want: nil},
		{name: "no sha256", in: "'http://x/a_1_amd64.deb' a_1_amd64.deb 10 MD5Sum:00\n", wantErr: true},
		{name: "odd file name", in: "'http://x/a.deb' a.deb 10 SHA256:00\n", wantErr: true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := parsePrintURIs([]byte(tc.in))
			if (err != nil) != tc.wantErr {
				t.Fatalf("err = %v, wantErr %v", err, tc.wantErr)
			}
			if len(got) != len(tc.want) {
				t.Fatalf("got %d packages, want %d", len(got), len(tc.want))
			}
			for i := range got {
				if *got[i] != tc.want[i] {
					t.Errorf("package %d = %+v, want %+v", i, *got[i], tc.want[i])
				}
			}
		})
	}
}

// The 6.1 cloud kernel's modules.dep for the virtio stack.
const testModulesDep = `kernel/drivers/virtio/virtio_ring.ko:
kernel/drivers/virtio/virtio.ko:
kernel/drivers/virtio/virtio_pci_legacy_dev.ko:
kernel/drivers/virtio/virtio_pci_modern_dev.ko:
kernel/drivers/virtio/virtio_pci.ko: kernel/drivers/virtio/virtio_pci_legacy_dev.ko kernel/drivers/virtio/virtio_pci_modern_dev.ko kernel/drivers/virtio/virtio.ko kernel/drivers/virtio/virtio_ring.ko
kernel/net/core/failover.ko:
kernel/drivers/net/net_failover.ko: kernel/net/core/failover.ko
kernel/drivers/net/virtio_net.ko: kernel/drivers/net/net_failover.ko kernel/net/core/failover.ko kernel/drivers/virtio/virtio.ko kernel/drivers/virtio/virtio_ring.ko
kernel/drivers/block/virtio_blk.ko: kernel/drivers/virtio/virtio.ko kernel/drivers/virtio/virtio_ring.ko
kernel/drivers/char/hw_random/virtio-rng.ko: kernel/drivers/virtio/virtio.ko kernel/drivers/virtio/virtio_ring.ko
`

func TestModuleLoadOrder(t *testing.T) {
	db, err := parseModulesDep(strings.NewReader(testModulesDep))
	if err != nil {
		t.Fatal(err)
	}
	db.builtin["ext4"] = true
	base := func(paths []string) []string {
		var out []string
		for _, p := range paths {
			out = append(out, modName(p))
		}
		return out
	}
	for _, tc := range []struct {
		name    string
		mods    []string
		want    []string
		wantErr string
	}{
		{
			// modprobe's order: dependencies from the end of the modules.dep
			// line (the two virtio_pci_*_dev are independent leaves).
			name: "boot modules in the order the cloud kernel needs",
			mods: bootModules,
			want: []string{"virtio_ring", "virtio", "virtio_pci_modern_dev", "virtio_pci_legacy_dev", "virtio_pci",
				"failover", "net_failover", "virtio_net", "virtio_blk", "virtio_rng"},
		},
		{name: "dash in the file name", mods: []string{"virtio-rng"}, want: []string{"virtio_ring", "virtio", "virtio_rng"}},
		{name: "built-in is skipped", mods: []string{"ext4", "virtio_blk"}, want: []string{"virtio_ring", "virtio", "virtio_blk"}},
		{name: "unknown module", mods: []string{"no_such_module"}, wantErr: "no_such_module"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := db.loadOrder(tc.mods)
			if tc.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
					t.Fatalf("err = %v, want one naming %s", err, tc.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if !slices.Equal(base(got), tc.want) {
				t.Errorf("order %v, want %v", base(got), tc.want)
			}
		})
	}
}

// cpioEntry is one parsed newc entry.
type cpioEntry struct {
	name             string
	mode             uint32
	rdevMaj, rdevMin uint32
	data             []byte
}

// readCpio parses a newc archive, as the kernel does.
func readCpio(t *testing.T, b []byte) []cpioEntry {
	t.Helper()
	var out []cpioEntry
	off := 0
	align := func(n int) int { return (n + 3) &^ 3 }
	for {
		if off+110 > len(b) {
			t.Fatalf("cpio truncated at %d", off)
		}
		h := string(b[off : off+110])
		if h[:6] != "070701" {
			t.Fatalf("bad cpio magic %q at %d", h[:6], off)
		}
		field := func(i int) uint32 {
			v, err := strconv.ParseUint(h[6+8*i:14+8*i], 16, 32)
			if err != nil {
				t.Fatalf("bad cpio header field %d: %v", i, err)
			}
			return uint32(v)
		}
		mode, size, rmaj, rmin, nsize := field(1), field(6), field(9), field(10), field(11)
		name := string(b[off+110 : off+110+int(nsize)-1])
		off = align(off + 110 + int(nsize))
		data := b[off : off+int(size)]
		off = align(off + int(size))
		if name == "TRAILER!!!" {
			return out
		}
		out = append(out, cpioEntry{name: name, mode: mode, rdevMaj: rmaj, rdevMin: rmin, data: data})
	}
}

func TestCpioWriter(t *testing.T) {
	var buf bytes.Buffer
	w := newCpioWriter(&buf, 0)
	w.Dir("dev", 0o755)
	w.CharDev("dev/console", 0o600, 5, 1)
	w.File("init", 0o755, []byte("#!/bin/sh\necho hi\n"))
	w.Symlink("bin/sh", "/bin/busybox")
	w.File("odd", 0o644, []byte("12345")) // forces padding
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	got := readCpio(t, buf.Bytes())
	want := []cpioEntry{
		{name: "dev", mode: syscall.S_IFDIR | 0o755},
		{name: "dev/console", mode: syscall.S_IFCHR | 0o600, rdevMaj: 5, rdevMin: 1},
		{name: "init", mode: syscall.S_IFREG | 0o755, data: []byte("#!/bin/sh\necho hi\n")},
		{name: "bin/sh", mode: syscall.S_IFLNK | 0o777, data: []byte("/bin/busybox")},
		{name: "odd", mode: syscall.S_IFREG | 0o644, data: []byte("12345")},
	}
	if len(got) != len(want) {
		t.Fatalf("got %d entries, want %d", len(got), len(want))
	}
	for i := range want {
		g, w := got[i], want[i]
		if g.name != w.name || g.mode != w.mode || g.rdevMaj != w.rdevMaj || g.rdevMin != w.rdevMin || !bytes.Equal(g.data, w.data) {
			t.Errorf("entry %d = %+v, want %+v", i, g, w)
		}
	}
	if buf.Len()%4 != 0 {
		t.Errorf("archive length %d is not 4-aligned", buf.Len())
	}
}

func TestLibClosureOfHostProgram(t *testing.T) {
	sh, err := exec.LookPath("ls")
	if err != nil {
		t.Fatalf("ls not found: %v", err)
	}
	libs, interp, err := libClosure([]string{sh}, []string{"/"})
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, l := range libs {
		names = append(names, filepath.Base(l.Guest))
		if fi, err := os.Lstat(l.Host); err != nil || !fi.Mode().IsRegular() {
			t.Errorf("%s: host file %s is not a regular file", l.Guest, l.Host)
		}
	}
	if !slices.Contains(names, "libc.so.6") {
		t.Errorf("libraries %v lack libc.so.6", names)
	}
	if interp.Guest != "lib64/ld-linux-x86-64.so.2" {
		t.Errorf("interpreter %q, want lib64/ld-linux-x86-64.so.2", interp.Guest)
	}
	if _, _, err := libClosure([]string{sh}, []string{t.TempDir()}); err == nil || !strings.Contains(err.Error(), "ld-linux-x86-64.so.2 is in none") {
		t.Errorf("closure in an empty root: err = %v, want one naming the missing ld-linux-x86-64.so.2", err)
	}
}

func TestBuildTiny(t *testing.T) {
	res := builtTiny(t)
	t.Logf("first build in this test binary: %s (package cache %s)", tinyBuildDur.Round(time.Millisecond), testCacheDir())

	m := res.Manifest
	if m.Name != "labcloud-tiny" || m.Architecture != "x86_64" || m.DefaultUser != "ec2-user" || m.RootDevice != "/dev/vda" {
		t.Errorf("manifest identity = %+v", m)
	}
	if !strings.HasSuffix(m.KernelVersion, "-cloud-amd64") {
		t.Errorf("kernel version %q is not a cloud kernel", m.KernelVersion)
	}
	if res.KernelCmdline != m.KernelCmdline || !strings.Contains(m.KernelCmdline, "root=/dev/vda") || !strings.Contains(m.KernelCmdline, "console=ttyS0") {
		t.Errorf("kernel command line %q / %q", res.KernelCmdline, m.KernelCmdline)
	}
	var onDisk Manifest
	data, err := os.ReadFile(res.ManifestPath)
	if err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal(data, &onDisk); err != nil {
		t.Fatalf("manifest.json: %v", err)
	}
	if onDisk.KernelVersion != m.KernelVersion || len(onDisk.Files) != 3 {
		t.Errorf("manifest.json = %+v", onDisk)
	}
	for _, f := range onDisk.Files {
		b, err := os.ReadFile(filepath.Join(filepath.Dir(res.ManifestPath), f.Name))
		if err != nil {
			t.Fatal(err)
		}
		sum := sha256.Sum256(b)
		if hex.EncodeToString(sum[:]) != f.SHA256 || int64(len(b)) != f.Size {
			t.Errorf("%s: sha256/size in the manifest do not match the file", f.Name)
		}
	}
	var pkgNames []string
	for _, p := range onDisk.Packages {
		pkgNames = append(pkgNames, p.Name)
	}
	for _, want := range []string{"linux-image-" + m.KernelVersion, "busybox-static", "dropbear-bin"} {
		if !slices.Contains(pkgNames, want) {
			t.Errorf("manifest packages %v lack %s", pkgNames, want)
		}
	}

	// The qcow2 holds a RootSizeMiB ext4 with the right owners and modes.
	info, err := exec.Command("qemu-img", "info", "--output=json", res.Disk).Output()
	if err != nil {
		t.Fatalf("qemu-img info: %v", err)
	}
	var qi struct {
		Format      string `json:"format"`
		VirtualSize int64  `json:"virtual-size"`
		ActualSize  int64  `json:"actual-size"`
	}
	if err := json.Unmarshal(info, &qi); err != nil {
		t.Fatal(err)
	}
	if qi.Format != "qcow2" || qi.VirtualSize != DefaultRootMiB<<20 {
		t.Errorf("disk: format %s, virtual size %d; want qcow2, %d", qi.Format, qi.VirtualSize, DefaultRootMiB<<20)
	}
	t.Logf("disk.qcow2 %.1f MiB on disk, vmlinuz %.1f MiB, initrd.img %.1f MiB",
		float64(qi.ActualSize)/(1<<20), float64(onDisk.Files[1].Size)/(1<<20), float64(onDisk.Files[2].Size)/(1<<20))
	raw := filepath.Join(t.TempDir(), "disk.raw")
	if out, err := exec.Command("qemu-img", "convert", "-O", "raw", res.Disk, raw).CombinedOutput(); err != nil {
		t.Fatalf("qemu-img convert: %v: %s", err, out)
	}
	for _, tc := range []struct{ path, want string }{
		{"/home/ec2-user", "User:  1000   Group:  1000"},
		{"/etc/shadow", "Mode:  0600"},
		{"/tmp", "Mode:  01777"},
		{"/sbin/init", "Type: symlink"},
		{"/bin/busybox", "User:     0   Group:     0"},
		{"/usr/sbin/dropbear", "Mode:  0755"},
		{"/lib64/ld-linux-x86-64.so.2", "Type: symlink"},
		{"/lib/modules/" + m.KernelVersion + "/modules.dep", "Type: regular"},
	} {
		out, err := exec.Command("debugfs", "-R", "stat "+tc.path, raw).CombinedOutput()
		if err != nil || !strings.Contains(string(out), tc.want) {
			t.Errorf("debugfs stat %s: want %q in:\n%s", tc.path, tc.want, out)
		}
	}

	// The initramfs loads the virtio modules in order, then runs /init.
	gz, err := os.ReadFile(res.Initrd)
	if err != nil {
		t.Fatal(err)
	}
	zr, err := gzip.NewReader(bytes.NewReader(gz))
	if err != nil {
		t.Fatal(err)
	}
	arch, err := io.ReadAll(zr)
	if err != nil {
		t.Fatal(err)
	}
	files := map[string]cpioEntry{}
	for _, e := range readCpio(t, arch) {
		files[e.name] = e
	}
	for _, name := range []string{"init", "bin/busybox", "bin/sh", "sbin/switch_root", "dev/console", "lib/modules/boot.order"} {
		if _, ok := files[name]; !ok {
			t.Errorf("initramfs lacks %s", name)
		}
	}
	var order []string
	for _, p := range strings.Fields(string(files["lib/modules/boot.order"].data)) {
		order = append(order, modName(p))
		if _, ok := files["lib/modules/"+p]; !ok {
			t.Errorf("initramfs lacks the module %s it loads", p)
		}
	}
	wantOrder := []string{"virtio_ring", "virtio", "virtio_pci_modern_dev", "virtio_pci_legacy_dev", "virtio_pci", "failover", "net_failover", "virtio_net", "virtio_blk", "virtio_rng"}
	if !slices.Equal(order, wantOrder) {
		t.Errorf("initramfs module order %v, want %v", order, wantOrder)
	}

	// A second build with the warm cache downloads and unpacks nothing.
	debsDir := filepath.Join(testCacheDir(), "debs")
	before, _ := os.ReadDir(debsDir)
	start := time.Now()
	res2, err := BuildTiny(context.Background(), BuildInput{OutDir: t.TempDir(), CacheDir: testCacheDir()})
	if err != nil {
		t.Fatalf("rebuild: %v", err)
	}
	t.Logf("rebuild with the cache warm: %s", time.Since(start).Round(time.Millisecond))
	after, _ := os.ReadDir(debsDir)
	if len(before) != len(after) || res2.Manifest.KernelVersion != m.KernelVersion {
		t.Errorf("rebuild changed the package cache (%d -> %d files) or the kernel (%s -> %s)", len(before), len(after), m.KernelVersion, res2.Manifest.KernelVersion)
	}
}

func TestOwnerCommands(t *testing.T) {
	dir := t.TempDir()
	for _, f := range []string{"etc/passwd", "home/ec2-user/.ssh/authorized_keys"} {
		if err := writeFile(filepath.Join(dir, f), []byte("x"), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.Symlink("/bin/busybox", filepath.Join(dir, "etc", "link")); err != nil {
		t.Fatal(err)
	}
	root := os.Geteuid() == 0
	if root {
		// A file the builder does not own, as in a non-root build.
		if err := os.Lchown(filepath.Join(dir, "etc", "link"), 1234, 1234); err != nil {
			t.Fatal(err)
		}
	}
	cmds, err := ownerCommands(dir, map[string][2]int{"/home/ec2-user": {1000, 1000}})
	if err != nil {
		t.Fatal(err)
	}
	want := []string{
		"sif /home/ec2-user uid 1000", "sif /home/ec2-user gid 1000",
		"sif /home/ec2-user/.ssh uid 1000", "sif /home/ec2-user/.ssh gid 1000",
		"sif /home/ec2-user/.ssh/authorized_keys uid 1000", "sif /home/ec2-user/.ssh/authorized_keys gid 1000",
		"sif /etc/link uid 0", "sif /etc/link gid 0",
	}
	for _, w := range want {
		if !slices.Contains(cmds, w) {
			t.Errorf("requests %q lack %q", cmds, w)
		}
	}
	if root && (slices.Contains(cmds, "sif /etc/passwd uid 0") || slices.Contains(cmds, "sif /home uid 0")) {
		t.Errorf("requests %q change files root already owns", cmds)
	}
}

func TestDebugfsWriteReportsFailures(t *testing.T) {
	requireTools(t, Tool{"mkfs.ext4", "e2fsprogs"}, Tool{"debugfs", "e2fsprogs"})
	img := filepath.Join(t.TempDir(), "fs.img")
	if err := os.WriteFile(img, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.Truncate(img, 8<<20); err != nil {
		t.Fatal(err)
	}
	if out, err := exec.Command("mkfs.ext4", "-q", "-F", img).CombinedOutput(); err != nil {
		t.Fatalf("mkfs.ext4: %v: %s", err, out)
	}
	ctx := context.Background()
	if err := debugfsWrite(ctx, img, []string{"mkdir /d", "sif /d uid 1000"}); err != nil {
		t.Fatalf("valid requests: %v", err)
	}
	if out, _ := exec.Command("debugfs", "-R", "stat /d", img).CombinedOutput(); !strings.Contains(string(out), "User:  1000") {
		t.Errorf("sif did not set the owner:\n%s", out)
	}
	if err := debugfsWrite(ctx, img, []string{"sif /no-such-file uid 0"}); err == nil || !strings.Contains(err.Error(), "no-such-file") {
		t.Errorf("a failed request: err = %v, want one naming /no-such-file", err)
	}
}

// TestGuestScriptsParse checks the guest's shell scripts with the shell
// that runs them (busybox ash from the image's busybox-static).
func TestGuestScriptsParse(t *testing.T) {
	builtTiny(t)
	bbs, _ := filepath.Glob(filepath.Join(testCacheDir(), "unpacked", "busybox-static_*", "bin", "busybox"))
	if len(bbs) == 0 {
		t.Fatalf("no busybox-static in the package cache %s", testCacheDir())
	}
	scripts := []string{"guest/initramfs/init"}
	for _, dir := range []string{"guest/rootfs/etc/init.d", "guest/rootfs/usr/sbin", "guest/rootfs/etc/udhcpc", "guest/rootfs/etc/acpi/PWRF"} {
		entries, err := guestFiles.ReadDir(dir)
		if err != nil {
			t.Fatal(err)
		}
		for _, e := range entries {
			scripts = append(scripts, dir+"/"+e.Name())
		}
	}
	for _, s := range scripts {
		data, err := guestFiles.ReadFile(s)
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.HasPrefix(data, []byte("#!/bin/sh\n")) {
			t.Errorf("%s does not start with #!/bin/sh", s)
		}
		if rel := strings.TrimPrefix(s, "guest/rootfs/"); rel != s && !executable(rel) {
			t.Errorf("%s would not be executable in the image", s)
		}
		cmd := exec.Command(bbs[0], "sh", "-n")
		cmd.Stdin = bytes.NewReader(data)
		if out, err := cmd.CombinedOutput(); err != nil {
			t.Errorf("%s: busybox sh -n: %v: %s", s, err, out)
		}
	}
}

func TestBuildTinyRejectsBadInput(t *testing.T) {
	for _, tc := range []struct {
		name string
		in   BuildInput
		want string
	}{
		{"no output directory", BuildInput{}, "OutDir"},
		{"root too small", BuildInput{OutDir: t.TempDir(), RootSizeMiB: 8}, "RootSizeMiB"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := BuildTiny(context.Background(), tc.in)
			if err == nil || !strings.Contains(err.Error(), tc.want) || !errdefs.Is(err, errdefs.ClassInvalidParameter) {
				t.Fatalf("err = %v, want an invalid-parameter error naming %s", err, tc.want)
			}
		})
	}
}
