// Package testguest makes a tiny bootable guest for tests that run real
// VMs: Debian's cloud kernel (downloaded once with apt-get and cached) and
// an initramfs generated on the fly from busybox-static with an /init that
//
//   - loads the virtio, ACPI button and evdev modules from the kernel
//     package,
//   - runs busybox acpid so the ACPI power button (QMP system_powerdown)
//     powers the guest off, unless the kernel command line says
//     labcloud.acpi=off (a guest that ignores the button),
//   - prints its virtio disks (with serials) and NICs (with MACs) to the
//     serial console whenever they change, so a test sees hot-plug from
//     inside the guest,
//   - prints BootMarker once booted, and
//   - answers commands typed on the serial console: "ping X" prints
//     "labcloud-testguest: pong X", "size vdX" the disk's size in
//     sectors, "poweroff" powers off.
//
// It needs the Debian packages busybox-static and apt (with package lists:
// apt-get update), and root for nothing.
package testguest

import (
	"bytes"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"sort"
	"strings"
	"syscall"
	"testing"
)

// Markers the guest prints on its serial console.
const (
	// BootMarker ends every boot (also after a reset).
	BootMarker = "labcloud-testguest: ready"
	// DevicesPrefix starts each device listing:
	// "labcloud-testguest: devices disks: vda=SERIAL nics: eth0=MAC".
	DevicesPrefix = "labcloud-testguest: devices "
	// PongPrefix starts the answer to "ping X".
	PongPrefix = "labcloud-testguest: pong "
	// SizePrefix starts the answer to "size vdX": "vdX=SECTORS", the
	// disk's size as the guest's kernel sees it (512-byte sectors).
	SizePrefix = "labcloud-testguest: size "
	// PowerButtonMarker is printed when the guest reacts to the power
	// button.
	PowerButtonMarker = "labcloud-testguest: power button"
	// PowerOffMarker is printed before the guest powers off on the
	// console command "poweroff".
	PowerOffMarker = "labcloud-testguest: powering off"
	// DMIPrefix starts the line with the SMBIOS identity the guest reads:
	// "labcloud-testguest: dmi vendor=… product=… serial=… uuid=… asset=…".
	DMIPrefix = "labcloud-testguest: dmi "
)

// KernelPackage is the metapackage whose current dependency is the kernel.
const KernelPackage = "linux-image-cloud-amd64"

// modules are loaded in this order (dependencies first).
var modules = []string{
	"virtio_ring", "virtio", "virtio_pci_legacy_dev", "virtio_pci_modern_dev", "virtio_pci",
	"failover", "net_failover", "virtio_net", "virtio_blk", "button", "evdev",
}

// Kernel is an unpacked kernel in the cache.
type Kernel struct {
	// Version is the kernel package name, e.g. linux-image-6.1.0-56-cloud-amd64.
	Version string
	// Vmlinuz is the kernel image.
	Vmlinuz string
	// ModulesDir holds the modules the initramfs needs, flat (<name>.ko).
	ModulesDir string
}

// CacheDir is where kernels are kept between test runs:
// $LABCLOUD_TEST_CACHE, else /var/cache/labcloud/test-kernels when
// writable (root), else the user cache directory.
func CacheDir() string {
	if d := os.Getenv("LABCLOUD_TEST_CACHE"); d != "" {
		return filepath.Join(d, "test-kernels")
	}
	const sys = "/var/cache/labcloud/test-kernels"
	if err := os.MkdirAll(sys, 0o755); err == nil {
		if f, err := os.CreateTemp(sys, ".probe"); err == nil {
			f.Close()
			os.Remove(f.Name())
			return sys
		}
	}
	if d, err := os.UserCacheDir(); err == nil {
		return filepath.Join(d, "labcloud", "test-kernels")
	}
	return filepath.Join(os.TempDir(), "labcloud-test-kernels")
}

var kernelPkgRe = regexp.MustCompile(`Depends: (linux-image-[0-9][^\s]*)`)

// GetKernel returns the cached cloud kernel, downloading it first when
// the cache does not have the current one. It fails the test (never
// skips) with what to do when that is impossible.
func GetKernel(t testing.TB) Kernel {
	t.Helper()
	k, err := getKernel(CacheDir())
	if err != nil {
		t.Fatalf("test kernel: %v", err)
	}
	return k
}

func getKernel(cache string) (Kernel, error) {
	if err := os.MkdirAll(cache, 0o755); err != nil {
		return Kernel{}, fmt.Errorf("creating cache %s: %w", cache, err)
	}
	// One download at a time, across test binaries running in parallel.
	lock, err := os.OpenFile(filepath.Join(cache, ".lock"), os.O_CREATE|os.O_RDWR, 0o644)
	if err != nil {
		return Kernel{}, err
	}
	defer lock.Close()
	if err := syscall.Flock(int(lock.Fd()), syscall.LOCK_EX); err != nil {
		return Kernel{}, err
	}

	pkg, lookupErr := currentKernelPackage()
	if lookupErr != nil {
		// Offline or no package lists: any kernel cached earlier will do.
		if k, ok := newestCached(cache); ok {
			return k, nil
		}
		return Kernel{}, lookupErr
	}
	if k, ok := cached(cache, pkg); ok {
		return k, nil
	}
	return download(cache, pkg)
}

func currentKernelPackage() (string, error) {
	out, err := exec.Command("apt-cache", "depends", KernelPackage).CombinedOutput()
	if err != nil {
		return "", fmt.Errorf("apt-cache depends %s: %v: %s; is this Debian with apt? run `apt-get update` (make deps)", KernelPackage, err, bytes.TrimSpace(out))
	}
	m := kernelPkgRe.FindSubmatch(out)
	if m == nil {
		return "", fmt.Errorf("apt-cache knows no %s (output: %s); run `apt-get update` (make deps) so the package lists exist", KernelPackage, bytes.TrimSpace(out))
	}
	return string(m[1]), nil
}

func cached(cache, pkg string) (Kernel, bool) {
	dir := filepath.Join(cache, pkg)
	k := Kernel{Version: pkg, Vmlinuz: filepath.Join(dir, "vmlinuz"), ModulesDir: filepath.Join(dir, "modules")}
	if _, err := os.Stat(filepath.Join(dir, ".complete")); err != nil {
		return Kernel{}, false
	}
	return k, true
}

func newestCached(cache string) (Kernel, bool) {
	entries, _ := os.ReadDir(cache)
	var names []string
	for _, e := range entries {
		if e.IsDir() && strings.HasPrefix(e.Name(), "linux-image-") {
			names = append(names, e.Name())
		}
	}
	sort.Strings(names)
	for i := len(names) - 1; i >= 0; i-- {
		if k, ok := cached(cache, names[i]); ok {
			return k, true
		}
	}
	return Kernel{}, false
}

func download(cache, pkg string) (Kernel, error) {
	tmp, err := os.MkdirTemp(cache, ".download-")
	if err != nil {
		return Kernel{}, err
	}
	defer os.RemoveAll(tmp)
	// apt-get download drops privileges to _apt when it can; the
	// directory must let it write, or apt falls back with a warning.
	_ = os.Chmod(tmp, 0o777)
	cmd := exec.Command("apt-get", "download", pkg)
	cmd.Dir = tmp
	if out, err := cmd.CombinedOutput(); err != nil {
		return Kernel{}, fmt.Errorf("apt-get download %s: %v: %s", pkg, err, bytes.TrimSpace(out))
	}
	debs, _ := filepath.Glob(filepath.Join(tmp, pkg+"_*.deb"))
	if len(debs) != 1 {
		return Kernel{}, fmt.Errorf("apt-get download %s left %d .deb files in %s", pkg, len(debs), tmp)
	}
	root := filepath.Join(tmp, "root")
	if out, err := exec.Command("dpkg-deb", "-x", debs[0], root).CombinedOutput(); err != nil {
		return Kernel{}, fmt.Errorf("dpkg-deb -x %s: %v: %s", debs[0], err, bytes.TrimSpace(out))
	}
	stage := filepath.Join(tmp, "stage")
	if err := os.MkdirAll(filepath.Join(stage, "modules"), 0o755); err != nil {
		return Kernel{}, err
	}
	vmlinuz, _ := filepath.Glob(filepath.Join(root, "boot", "vmlinuz-*"))
	if len(vmlinuz) != 1 {
		return Kernel{}, fmt.Errorf("%s has %d /boot/vmlinuz-* files, want 1", debs[0], len(vmlinuz))
	}
	if err := copyFile(vmlinuz[0], filepath.Join(stage, "vmlinuz")); err != nil {
		return Kernel{}, err
	}
	want := map[string]bool{}
	for _, m := range modules {
		want[m+".ko"] = true
	}
	err = filepath.WalkDir(filepath.Join(root, "lib", "modules"), func(p string, de fs.DirEntry, err error) error {
		if err != nil || de.IsDir() || !want[de.Name()] {
			return err
		}
		delete(want, de.Name())
		return copyFile(p, filepath.Join(stage, "modules", de.Name()))
	})
	if err != nil {
		return Kernel{}, fmt.Errorf("collecting modules: %w", err)
	}
	// A module missing from the package is built into the kernel; the
	// init script skips it.
	if err := os.WriteFile(filepath.Join(stage, ".complete"), nil, 0o644); err != nil {
		return Kernel{}, err
	}
	final := filepath.Join(cache, pkg)
	_ = os.RemoveAll(final)
	if err := os.Rename(stage, final); err != nil {
		return Kernel{}, err
	}
	k, _ := cached(cache, pkg)
	return k, nil
}

func copyFile(src, dst string) error {
	b, err := os.ReadFile(src)
	if err != nil {
		return err
	}
	return os.WriteFile(dst, b, 0o644)
}

// BusyboxPath is where busybox-static installs its binary.
const BusyboxPath = "/bin/busybox"

// Initramfs writes an uncompressed newc initramfs for k into dir and
// returns its path. It fails the test if busybox is not a static binary
// (install busybox-static: make deps).
func Initramfs(t testing.TB, k Kernel, dir string) string {
	t.Helper()
	p, err := buildInitramfs(k, dir)
	if err != nil {
		t.Fatalf("test initramfs: %v", err)
	}
	return p
}

func buildInitramfs(k Kernel, dir string) (string, error) {
	bb, err := os.ReadFile(BusyboxPath)
	if err != nil {
		return "", fmt.Errorf("reading %s: %w; install the Debian package busybox-static (make deps)", BusyboxPath, err)
	}
	if bytes.Contains(bb, []byte("/lib64/ld-linux")) || bytes.Contains(bb, []byte("/lib/ld-linux")) {
		return "", fmt.Errorf("%s is dynamically linked and cannot run in the guest; install the Debian package busybox-static (make deps)", BusyboxPath)
	}
	var w cpioWriter
	for _, d := range []string{"bin", "dev", "proc", "sys", "etc", "tmp", "lib", "lib/modules", "var", "var/run", "var/log"} {
		w.dir(d)
	}
	w.node("dev/console", syscall.S_IFCHR|0o600, 5, 1)
	w.file("bin/busybox", 0o755, bb)
	w.symlink("bin/sh", "busybox")
	w.file("init", 0o755, []byte(initScript))
	for _, m := range modules {
		b, err := os.ReadFile(filepath.Join(k.ModulesDir, m+".ko"))
		if errors.Is(err, fs.ErrNotExist) {
			continue
		}
		if err != nil {
			return "", err
		}
		w.file("lib/modules/"+m+".ko", 0o644, b)
	}
	out := filepath.Join(dir, "initramfs.cpio")
	if err := os.WriteFile(out, w.finish(), 0o644); err != nil {
		return "", err
	}
	return out, nil
}

// Append is the kernel command line for the test guest.
func Append(ignorePowerButton bool) string {
	s := "console=ttyS0 quiet panic=0"
	if ignorePowerButton {
		s += " labcloud.acpi=off"
	}
	return s
}

// initScript is PID 1 of the test guest.
var initScript = `#!/bin/sh
/bin/busybox --install -s /bin
export PATH=/bin
mount -t proc proc /proc
mount -t sysfs sysfs /sys
mount -t devtmpfs devtmpfs /dev
for m in ` + strings.Join(modules, " ") + `; do
	[ -f /lib/modules/$m.ko ] && insmod /lib/modules/$m.ko
done
if grep -q labcloud.acpi=off /proc/cmdline; then
	echo "labcloud-testguest: ignoring the power button"
else
	i=0
	while [ ! -e /dev/input/event0 ] && [ $i -lt 50 ]; do sleep 0.1; i=$((i+1)); done
	mkdir -p /etc/acpi/PWRF
	printf '#!/bin/sh\necho "` + PowerButtonMarker + `, powering off" >/dev/ttyS0\npoweroff -f\n' >/etc/acpi/PWRF/00000080
	chmod +x /etc/acpi/PWRF/00000080
	acpid -f -d >/dev/null 2>&1 &
fi
stty -F /dev/ttyS0 -echo 2>/dev/null
(
	while read -r cmd arg; do
		case "$cmd" in
		ping) echo "` + PongPrefix + `$arg" ;;
		size) echo "` + SizePrefix + `$arg=$(cat /sys/block/$arg/size 2>/dev/null)" ;;
		poweroff) echo "` + PowerOffMarker + `"; poweroff -f ;;
		esac
	done
) </dev/ttyS0 >/dev/ttyS0 2>&1 &
devices() {
	s="disks:"
	for b in /sys/block/vd*; do
		[ -e "$b" ] || continue
		s="$s ${b##*/}=$(cat $b/serial 2>/dev/null)"
	done
	s="$s nics:"
	for n in /sys/class/net/*; do
		[ "${n##*/}" = lo ] && continue
		s="$s ${n##*/}=$(cat $n/address)"
	done
	echo "$s"
}
dmi=/sys/class/dmi/id
echo "` + DMIPrefix + `vendor=$(cat $dmi/sys_vendor) product=$(cat $dmi/product_name) serial=$(cat $dmi/product_serial) uuid=$(cat $dmi/product_uuid) asset=$(cat $dmi/chassis_asset_tag)"
last=$(devices)
echo "` + DevicesPrefix + `$last"
echo "` + BootMarker + `"
while :; do
	sleep 0.3
	cur=$(devices)
	if [ "$cur" != "$last" ]; then
		echo "` + DevicesPrefix + `$cur"
		last=$cur
	fi
done
`

// LastDevices returns the newest complete device listing in a console
// log ("disks: vda=SERIAL nics: eth0=MAC"), "" if there is none yet. A
// last line without its line end is still being written and is ignored.
func LastDevices(consoleLog []byte) string {
	end := bytes.LastIndexByte(consoleLog, '\n')
	if end < 0 {
		return ""
	}
	lines := bytes.Split(consoleLog[:end], []byte("\n"))
	for i := len(lines) - 1; i >= 0; i-- {
		line := bytes.TrimRight(lines[i], "\r")
		if j := bytes.Index(line, []byte(DevicesPrefix)); j >= 0 {
			return string(line[j+len(DevicesPrefix):])
		}
	}
	return ""
}

// cpioWriter writes the "newc" cpio format the kernel unpacks.
type cpioWriter struct {
	buf bytes.Buffer
	ino int
}

func (w *cpioWriter) entry(name string, mode uint32, data []byte, rmaj, rmin int) {
	w.ino++
	nlink := 1
	if mode&syscall.S_IFMT == syscall.S_IFDIR {
		nlink = 2
	}
	fmt.Fprintf(&w.buf, "070701%08X%08X%08X%08X%08X%08X%08X%08X%08X%08X%08X%08X%08X",
		w.ino, mode, 0, 0, nlink, 0, len(data), 0, 0, rmaj, rmin, len(name)+1, 0)
	w.buf.WriteString(name)
	w.buf.WriteByte(0)
	w.pad()
	w.buf.Write(data)
	w.pad()
}

func (w *cpioWriter) pad() {
	for w.buf.Len()%4 != 0 {
		w.buf.WriteByte(0)
	}
}

func (w *cpioWriter) dir(name string) { w.entry(name, syscall.S_IFDIR|0o755, nil, 0, 0) }
func (w *cpioWriter) file(name string, perm uint32, data []byte) {
	w.entry(name, syscall.S_IFREG|perm, data, 0, 0)
}
func (w *cpioWriter) symlink(name, target string) {
	w.entry(name, syscall.S_IFLNK|0o777, []byte(target), 0, 0)
}
func (w *cpioWriter) node(name string, mode uint32, maj, min int) { w.entry(name, mode, nil, maj, min) }

func (w *cpioWriter) finish() []byte {
	w.ino = -1 // the trailer's inode number does not matter
	w.entry("TRAILER!!!", 0, nil, 0, 0)
	return w.buf.Bytes()
}
