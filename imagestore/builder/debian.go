package builder

import (
	"bufio"
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"syscall"
	"time"

	"github.com/labcloud/labcloud/internal/errdefs"
)

// Debian 12 ("bookworm") cloud image, made with debootstrap.
const (
	Debian12Name         = "debian-12"
	debianSuite          = "bookworm"
	debianMirror         = "http://deb.debian.org/debian"
	debianSecurity       = "http://deb.debian.org/debian-security"
	debianDefaultUser    = "admin"
	DebianDefaultRootMiB = 2048
	// debianMinRootMiB is below what the tree needs; mkfs.ext4 -d fails
	// with a clear message when the file system is too small anyway.
	debianMinRootMiB = 1024
	// debianLocale is the locale generated in the image (cloud-init's
	// locale module sets it; without it generated the module fails).
	debianLocale = "en_US.UTF-8"
)

// Debian12KernelCmdline is the kernel command line debian-12 boots with
// (the same as labcloud-tiny's: serial console, root on the first virtio
// disk, a whole-disk ext4).
const Debian12KernelCmdline = TinyKernelCmdline

// DebianBuildTools are the host programs BuildDebian12 runs. It also needs
// root (debootstrap, chroot).
var DebianBuildTools = []Tool{
	{"debootstrap", "debootstrap"},
	{"chroot", "coreutils"},
	{"mkfs.ext4", "e2fsprogs"},
	{"qemu-img", "qemu-utils"},
}

// debianPackages are installed on top of debootstrap's minbase variant.
// python3-cffi-backend: debootstrap does not resolve the virtual package
// (python3-cffi-backend-api-min) that cloud-init's dependencies need.
// awscli (Debian's build of AWS CLI v2): so that a lab can call labcloud's
// API from inside an instance with its instance profile's credentials,
// as on an Amazon Linux AMI (endpoint http://169.254.169.254:7420).
var debianPackages = []string{
	"linux-image-cloud-amd64",
	"systemd-sysv", "udev", "dbus",
	"openssh-server", "sudo",
	"cloud-init", "python3-cffi-backend",
	"ifupdown", "isc-dhcp-client", "iproute2", "netbase",
	"locales",
	"awscli",
}

// debianConfigFiles are written into the tree at every build (paths
// relative to the root, mode 0644), so changing them needs no new
// debootstrap.
var debianConfigFiles = map[string]string{
	// cloud-init: the EC2-style metadata service only, without insisting
	// on the EC2 platform's DMI strings; the Debian cloud images' default
	// user; no partition to grow (whole-disk ext4), but the file system is
	// grown to fill a larger root volume; apt sources kept as they are and
	// nothing fetched at boot.
	"etc/cloud/cloud.cfg.d/90_labcloud.cfg": `# labcloud debian-12
datasource_list: [ Ec2, None ]
datasource:
  Ec2:
    strict_id: false
    timeout: 5
    max_wait: 60
system_info:
  default_user:
    name: ` + debianDefaultUser + `
    lock_passwd: true
    gecos: Debian
    groups: [adm, audio, cdrom, dialout, dip, floppy, plugdev, sudo, video]
    sudo: ["ALL=(ALL) NOPASSWD:ALL"]
    shell: /bin/bash
growpart:
  mode: "off"
resize_rootfs: true
manage_etc_hosts: true
apt:
  preserve_sources_list: true
package_update: false
package_upgrade: false
locale: ` + debianLocale + `
ssh_deletekeys: true
# No boot loader: the instance boots its kernel directly.
grub_dpkg:
  enabled: false
ssh_genkeytypes: [rsa, ecdsa, ed25519]
`,
	"etc/apt/sources.list": `deb ` + debianMirror + ` ` + debianSuite + ` main
deb ` + debianMirror + ` ` + debianSuite + `-updates main
deb ` + debianSecurity + ` ` + debianSuite + `-security main
`,
	// The root volume; cloud-init's mounts module keeps this line.
	"etc/fstab":    "LABEL=" + tinyFSLabel + " / ext4 rw,discard,errors=remount-ro 0 1\n",
	"etc/hostname": "localhost\n",
	// debootstrap copies the build host's; the instance's comes from DHCP
	// (dhclient-script), and until then lookups fail fast (no server)
	// instead of waiting for a server the instance cannot reach.
	"etc/resolv.conf": "",
	"etc/hosts":       "127.0.0.1 localhost\n::1 localhost ip6-localhost ip6-loopback\nff02::1 ip6-allnodes\nff02::2 ip6-allrouters\n",
	// cloud-init's network renderer (eni, with ifupdown) writes
	// /etc/network/interfaces.d/50-cloud-init at first boot.
	"etc/network/interfaces": "# The loopback interface; cloud-init configures the NICs in\n# /etc/network/interfaces.d/50-cloud-init.\nsource /etc/network/interfaces.d/*\n\nauto lo\niface lo inet loopback\n",
	"etc/locale.gen":         debianLocale + " UTF-8\n",
	"etc/default/locale":     "LANG=" + debianLocale + "\n",
}

// debianCacheKey identifies a debootstrap tree: suite, mirror and package
// set.
func debianCacheKey() string {
	h := sha256.New()
	fmt.Fprintf(h, "v1\n%s\n%s\nminbase\n", debianSuite, debianMirror)
	pkgs := append([]string{}, debianPackages...)
	sort.Strings(pkgs)
	fmt.Fprintf(h, "%s\n", strings.Join(pkgs, ","))
	return hex.EncodeToString(h.Sum(nil))[:16]
}

// debianTreeInfo is stored next to a finished tree.
type debianTreeInfo struct {
	KernelVersion string            `json:"kernelVersion"`
	Packages      []ManifestPackage `json:"packages"`
	BuiltAt       time.Time         `json:"builtAt"`
	Seconds       float64           `json:"seconds"`
}

// BuildDebian12 builds the debian-12 AMI artefacts into in.OutDir: a
// debootstrap (minbase) of bookworm with Debian's cloud kernel, systemd,
// openssh-server and cloud-init reading the EC2-style instance metadata
// service (default user admin, key pair and user-data from IMDS, host keys
// made at first boot, DHCP on the first NIC through ifupdown). The files
// and the manifest are shaped as BuildTiny's: disk.qcow2 (whole-disk ext4,
// label labcloud-root, root=/dev/vda), vmlinuz, initrd.img (Debian's
// initramfs-tools one), manifest.json.
//
// The debootstrap tree is kept under in.CacheDir/debian-12, keyed by the
// package set and configuration, with debootstrap's .deb cache: a rebuild
// only makes the file system and the qcow2. It needs root and debootstrap,
// chroot, mkfs.ext4 and qemu-img (`make deps`), and network access to
// deb.debian.org for the first build.
func BuildDebian12(ctx context.Context, in BuildInput) (Result, error) {
	if in.OutDir == "" {
		return Result{}, errdefs.InvalidParameter("", "BuildInput.OutDir is empty: say where the image files go")
	}
	if in.CacheDir == "" {
		in.CacheDir = DefaultCacheDir
	}
	if in.RootSizeMiB == 0 {
		in.RootSizeMiB = DebianDefaultRootMiB
	}
	if in.RootSizeMiB < debianMinRootMiB {
		return Result{}, errdefs.InvalidParameter("", "BuildInput.RootSizeMiB is %d: debian-12 needs at least %d MiB", in.RootSizeMiB, debianMinRootMiB)
	}
	logf := in.Logf
	if logf == nil {
		logf = func(string, ...any) {}
	}
	if err := CheckTools(DebianBuildTools...); err != nil {
		return Result{}, err
	}
	if os.Geteuid() != 0 {
		return Result{}, errdefs.New(errdefs.ClassUnavailable, "", "building %s needs root (debootstrap, chroot): run it with sudo", Debian12Name)
	}
	if err := os.MkdirAll(in.OutDir, 0o755); err != nil {
		return Result{}, fmt.Errorf("creating output directory: %w", err)
	}
	step := func(name string, f func() error) error {
		start := time.Now()
		if err := f(); err != nil {
			return err
		}
		logf("%s: %s", name, time.Since(start).Round(time.Millisecond))
		return nil
	}

	// One build at a time uses the cache: a build customizes the cached
	// tree in place, and mkfs reads it.
	unlock, err := lockDebianCache(in.CacheDir)
	if err != nil {
		return Result{}, err
	}
	locked := true
	defer func() {
		if locked {
			unlock()
		}
	}()
	var tree string
	var info debianTreeInfo
	if err := step("debootstrap tree", func() error {
		var err error
		tree, info, err = debianTree(ctx, in.CacheDir, logf)
		return err
	}); err != nil {
		return Result{}, err
	}

	work, err := os.MkdirTemp(in.OutDir, ".build-")
	if err != nil {
		return Result{}, fmt.Errorf("creating build directory: %w", err)
	}
	defer os.RemoveAll(work)
	rawDisk := filepath.Join(work, "disk.raw")
	if err := step("ext4 image", func() error {
		return debianExt4(ctx, tree, rawDisk, in.RootSizeMiB)
	}); err != nil {
		return Result{}, err
	}
	kernelSrc := filepath.Join(tree, "boot", "vmlinuz-"+info.KernelVersion)
	initrdSrc := filepath.Join(tree, "boot", "initrd.img-"+info.KernelVersion)
	if err := copyFile(kernelSrc, filepath.Join(work, KernelFileName), 0o644); err != nil {
		return Result{}, fmt.Errorf("copying the kernel: %w", err)
	}
	if err := copyFile(initrdSrc, filepath.Join(work, InitrdFileName), 0o644); err != nil {
		return Result{}, fmt.Errorf("copying the initramfs: %w", err)
	}
	unlock()
	locked = false
	if err := step("qcow2", func() error {
		return toQcow2(ctx, rawDisk, filepath.Join(work, DiskFileName))
	}); err != nil {
		return Result{}, err
	}
	if err := os.Remove(rawDisk); err != nil {
		return Result{}, err
	}
	kver := info.KernelVersion

	m := Manifest{
		Name:              Debian12Name,
		Description:       "Debian 12 (bookworm) with cloud-init, Debian's cloud kernel " + kver,
		Architecture:      tinyArchitecture,
		KernelVersion:     kver,
		KernelCmdline:     Debian12KernelCmdline,
		RootDevice:        tinyRootDevice,
		RootVolumeSizeGiB: (in.RootSizeMiB + 1023) / 1024,
		DefaultUser:       debianDefaultUser,
		Packages:          info.Packages,
		BuiltAt:           time.Now().UTC().Truncate(time.Second),
	}
	for _, f := range []struct{ name, role, format string }{
		{DiskFileName, "root-volume", "qcow2"},
		{KernelFileName, "kernel", "bzImage"},
		{InitrdFileName, "initrd", "cpio.gz"},
	} {
		sum, size, err := fileSHA256(filepath.Join(work, f.name))
		if err != nil {
			return Result{}, err
		}
		m.Files = append(m.Files, ManifestFile{Name: f.name, Role: f.role, Format: f.format, Size: size, SHA256: sum})
	}
	data, err := json.MarshalIndent(m, "", "  ")
	if err != nil {
		return Result{}, err
	}
	if err := os.WriteFile(filepath.Join(work, ManifestFileName), append(data, '\n'), 0o644); err != nil {
		return Result{}, err
	}
	for _, name := range []string{DiskFileName, KernelFileName, InitrdFileName, ManifestFileName} {
		if err := os.Rename(filepath.Join(work, name), filepath.Join(in.OutDir, name)); err != nil {
			return Result{}, fmt.Errorf("moving %s into %s: %w", name, in.OutDir, err)
		}
	}
	return Result{
		Disk:          filepath.Join(in.OutDir, DiskFileName),
		Kernel:        filepath.Join(in.OutDir, KernelFileName),
		Initrd:        filepath.Join(in.OutDir, InitrdFileName),
		ManifestPath:  filepath.Join(in.OutDir, ManifestFileName),
		KernelCmdline: Debian12KernelCmdline,
		Manifest:      m,
	}, nil
}

// debianTree returns the cached tree for the current key, making it first
// when missing. Trees of other keys are removed once the new one is done.
func debianTree(ctx context.Context, cacheDir string, logf func(string, ...any)) (string, debianTreeInfo, error) {
	base := filepath.Join(cacheDir, Debian12Name)
	key := debianCacheKey()
	tree := filepath.Join(base, "tree-"+key)
	infoPath := tree + ".json"
	var info debianTreeInfo
	if data, err := os.ReadFile(infoPath); err == nil {
		if err := json.Unmarshal(data, &info); err == nil && info.KernelVersion != "" {
			if _, err := os.Stat(filepath.Join(tree, "boot", "vmlinuz-"+info.KernelVersion)); err == nil {
				now := time.Now()
				os.Chtimes(infoPath, now, now) // last use, for pruning
				logf("debootstrap tree %s cached (made %s)", key, info.BuiltAt.Format(time.RFC3339))
				if err := debianCustomize(ctx, tree); err != nil {
					return "", info, err
				}
				return tree, info, nil
			}
		}
	}
	debs := filepath.Join(base, "debs")
	if err := os.MkdirAll(debs, 0o755); err != nil {
		return "", info, err
	}
	tmp := tree + ".tmp"
	if err := removeTree(tmp); err != nil {
		return "", info, err
	}
	if err := removeTree(tree); err != nil {
		return "", info, err
	}
	os.Remove(infoPath)
	start := time.Now()
	logf("debootstrap %s (%s) into %s", debianSuite, strings.Join(debianPackages, ","), tmp)
	if _, err := run(ctx, "", "debootstrap", "--variant=minbase", "--cache-dir="+debs,
		"--include="+strings.Join(debianPackages, ","), debianSuite, tmp, debianMirror); err != nil {
		removeTree(tmp)
		return "", info, fmt.Errorf("debootstrap of %s (needs network access to %s): %w", debianSuite, debianMirror, err)
	}
	if err := debianCustomize(ctx, tmp); err != nil {
		removeTree(tmp)
		return "", info, err
	}
	kver, err := debianKernelVersion(tmp)
	if err != nil {
		removeTree(tmp)
		return "", info, err
	}
	pkgs, err := debianPackageList(ctx, tmp, debs)
	if err != nil {
		removeTree(tmp)
		return "", info, err
	}
	if err := unmountUnder(tmp); err != nil {
		return "", info, err
	}
	if err := os.Rename(tmp, tree); err != nil {
		return "", info, err
	}
	info = debianTreeInfo{KernelVersion: kver, Packages: pkgs, BuiltAt: time.Now().UTC().Truncate(time.Second), Seconds: time.Since(start).Seconds()}
	data, err := json.MarshalIndent(info, "", "  ")
	if err != nil {
		return "", info, err
	}
	if err := os.WriteFile(infoPath, append(data, '\n'), 0o644); err != nil {
		return "", info, err
	}
	// Trees of other package sets not used for a week (another version of
	// the builder may still use a recent one).
	if old, _ := filepath.Glob(filepath.Join(base, "tree-*.json")); len(old) > 0 {
		for _, o := range old {
			fi, err := os.Stat(o)
			if o == infoPath || err != nil || time.Since(fi.ModTime()) < 7*24*time.Hour {
				continue
			}
			if err := removeTree(strings.TrimSuffix(o, ".json")); err != nil {
				logf("removing the old tree %s: %v", o, err)
				continue
			}
			os.Remove(o)
		}
	}
	return tree, info, nil
}

// debianCustomize configures the debootstrap tree for a cloud: config
// files, the locale, a serial getty, and no per-machine state (host keys,
// machine-id, logs) so that each instance makes its own.
func debianCustomize(ctx context.Context, root string) error {
	for rel, content := range debianConfigFiles {
		// Replace rather than write through: a symlink in the tree
		// (resolv.conf often is one) must not lead to a host file.
		p := filepath.Join(root, rel)
		if err := os.Remove(p); err != nil && !os.IsNotExist(err) {
			return err
		}
		if err := writeFile(p, []byte(content), 0o644); err != nil {
			return err
		}
	}
	if _, err := run(ctx, "", "chroot", root, "locale-gen"); err != nil {
		return fmt.Errorf("generating the locale: %w", err)
	}
	// Serial console login on ttyS0 (the console GetConsoleOutput reads).
	wants := filepath.Join(root, "etc", "systemd", "system", "getty.target.wants")
	if err := os.MkdirAll(wants, 0o755); err != nil {
		return err
	}
	link := filepath.Join(wants, "serial-getty@ttyS0.service")
	os.Remove(link)
	if err := os.Symlink("/lib/systemd/system/serial-getty@.service", link); err != nil {
		return err
	}
	// e2scrub_reap looks for stale LVM snapshots at every boot: there is
	// no LVM, and under TCG it takes seconds of the only vCPU.
	if err := os.Remove(filepath.Join(root, "etc", "systemd", "system", "multi-user.target.wants", "e2scrub_reap.service")); err != nil && !os.IsNotExist(err) {
		return err
	}
	// Per-instance state: cloud-init makes the host keys at first boot,
	// systemd the machine-id.
	keys, _ := filepath.Glob(filepath.Join(root, "etc", "ssh", "ssh_host_*"))
	for _, k := range keys {
		if err := os.Remove(k); err != nil {
			return err
		}
	}
	if err := os.WriteFile(filepath.Join(root, "etc", "machine-id"), nil, 0o444); err != nil {
		return err
	}
	os.Remove(filepath.Join(root, "var", "lib", "dbus", "machine-id"))
	for _, p := range []string{"var/cache/apt/archives", "var/cache/apt/pkgcache.bin", "var/cache/apt/srcpkgcache.bin"} {
		if p == "var/cache/apt/archives" {
			debs, _ := filepath.Glob(filepath.Join(root, p, "*.deb"))
			for _, d := range debs {
				os.Remove(d)
			}
			continue
		}
		os.Remove(filepath.Join(root, p))
	}
	logs, _ := filepath.Glob(filepath.Join(root, "var", "log", "*.log"))
	for _, l := range logs {
		os.Truncate(l, 0)
	}
	os.RemoveAll(filepath.Join(root, "var", "lib", "cloud"))
	return nil
}

// debianKernelVersion finds the single kernel in the tree's /boot.
func debianKernelVersion(root string) (string, error) {
	ks, _ := filepath.Glob(filepath.Join(root, "boot", "vmlinuz-*"))
	if len(ks) != 1 {
		return "", fmt.Errorf("the debootstrap tree has %d kernels in /boot (%v), want 1", len(ks), ks)
	}
	kver := strings.TrimPrefix(filepath.Base(ks[0]), "vmlinuz-")
	if _, err := os.Stat(filepath.Join(root, "boot", "initrd.img-"+kver)); err != nil {
		return "", fmt.Errorf("the debootstrap tree has no initramfs for %s: %w", kver, err)
	}
	return kver, nil
}

// debianPackageList lists the installed packages, with the sha256 of the
// .deb from debootstrap's cache when it is there.
func debianPackageList(ctx context.Context, root, debs string) ([]ManifestPackage, error) {
	out, err := run(ctx, "", "chroot", root, "dpkg-query", "-W", "-f", "${Package}\t${Version}\t${Architecture}\n")
	if err != nil {
		return nil, fmt.Errorf("listing the installed packages: %w", err)
	}
	var pkgs []ManifestPackage
	sc := bufio.NewScanner(bytes.NewReader(out))
	for sc.Scan() {
		f := strings.Split(sc.Text(), "\t")
		if len(f) != 3 {
			continue
		}
		p := ManifestPackage{Name: f[0], Version: f[1]}
		deb := filepath.Join(debs, fmt.Sprintf("%s_%s_%s.deb", f[0], strings.ReplaceAll(f[1], ":", "%3a"), f[2]))
		if sum, _, err := fileSHA256(deb); err == nil {
			p.SHA256 = sum
		}
		pkgs = append(pkgs, p)
	}
	sort.Slice(pkgs, func(i, j int) bool { return pkgs[i].Name < pkgs[j].Name })
	return pkgs, nil
}

// debianExt4 makes raw, a whole-disk ext4 of sizeMiB holding the tree. The
// tree was made by root with the image's owners, which mkfs.ext4 -d copies.
func debianExt4(ctx context.Context, tree, raw string, sizeMiB int) error {
	f, err := os.Create(raw)
	if err != nil {
		return err
	}
	if err := f.Truncate(int64(sizeMiB) << 20); err != nil {
		f.Close()
		return err
	}
	if err := f.Close(); err != nil {
		return err
	}
	if _, err := run(ctx, "", "mkfs.ext4", "-q", "-F", "-L", tinyFSLabel, "-m", "1", "-d", tree, raw); err != nil {
		return fmt.Errorf("making the ext4 file system (%d MiB): %w", sizeMiB, err)
	}
	return nil
}

// unmountUnder unmounts whatever an interrupted debootstrap left mounted
// below dir (proc, sys), deepest first.
func unmountUnder(dir string) error {
	data, err := os.ReadFile("/proc/self/mounts")
	if err != nil {
		return err
	}
	abs, err := filepath.Abs(dir)
	if err != nil {
		return err
	}
	var mounts []string
	for _, line := range strings.Split(string(data), "\n") {
		f := strings.Fields(line)
		if len(f) < 2 {
			continue
		}
		mp := strings.ReplaceAll(f[1], `\040`, " ")
		if mp == abs || strings.HasPrefix(mp, abs+"/") {
			mounts = append(mounts, mp)
		}
	}
	sort.Slice(mounts, func(i, j int) bool { return len(mounts[i]) > len(mounts[j]) })
	for _, mp := range mounts {
		if _, err := run(context.Background(), "", "umount", "-l", mp); err != nil {
			return fmt.Errorf("unmounting %s: %w", mp, err)
		}
	}
	return nil
}

// removeTree removes a debootstrap tree, unmounting first so that nothing
// of the host's /proc or /sys is touched.
func removeTree(dir string) error {
	if _, err := os.Lstat(dir); os.IsNotExist(err) {
		return nil
	}
	if err := unmountUnder(dir); err != nil {
		return err
	}
	return os.RemoveAll(dir)
}

// lockDebianCache takes an exclusive lock on the cache's debian-12
// directory (flock, released when the process ends) and returns its
// release.
func lockDebianCache(cacheDir string) (func(), error) {
	base := filepath.Join(cacheDir, Debian12Name)
	if err := os.MkdirAll(base, 0o755); err != nil {
		return nil, err
	}
	f, err := os.OpenFile(filepath.Join(base, "lock"), os.O_CREATE|os.O_RDWR, 0o644)
	if err != nil {
		return nil, err
	}
	if err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX); err != nil {
		f.Close()
		return nil, fmt.Errorf("locking the builder cache %s: %w", base, err)
	}
	return func() {
		syscall.Flock(int(f.Fd()), syscall.LOCK_UN)
		f.Close()
	}, nil
}
