// Package builder builds labcloud's own AMIs from Debian packages, with no
// image downloaded from the internet.
//
// BuildTiny makes labcloud-tiny, labcloud's CirrOS: busybox, dropbear and
// Debian's cloud kernel, booting to ssh in seconds even under TCG. Like an
// EC2 instance it boots from its root volume, so what is written there
// survives stop/start:
//
//   - disk.qcow2: the root volume, a whole-disk ext4 (no partition table,
//     label labcloud-root) with busybox, dropbear, the kernel modules, an
//     init that does DHCP, reads the instance metadata service (IMDSv2,
//     IMDSv1 fallback), installs the key pair for ec2-user and root, runs
//     user-data on the instance's first boot and starts ssh.
//   - vmlinuz and initrd.img: for QEMU direct kernel boot (-kernel, -initrd,
//     -append with Result.KernelCmdline). The initramfs only loads the virtio
//     drivers, mounts root=/dev/vda and switch_roots into it.
//   - manifest.json: name, architecture, kernel version and command line,
//     the Debian packages used and the sha256 of every file.
//
// Packages are fetched with `apt-get download` into a cache directory and
// unpacked with `dpkg-deb -x`; nothing is installed on the host and no
// mount, loop device or root privilege is needed (`mkfs.ext4 -d` fills the
// file system, debugfs sets the owners).
package builder

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/labcloud/labcloud/internal/errdefs"
)

// Names of the labcloud-tiny image and of the files BuildTiny writes.
const (
	TinyName         = "labcloud-tiny"
	DiskFileName     = "disk.qcow2"
	KernelFileName   = "vmlinuz"
	InitrdFileName   = "initrd.img"
	ManifestFileName = "manifest.json"
	DefaultCacheDir  = "/var/cache/labcloud/builder"
	DefaultRootMiB   = 1024
	tinyArchitecture = "x86_64"
	tinyDefaultUser  = "ec2-user"
	tinyRootDevice   = "/dev/vda"
	tinyFSLabel      = "labcloud-root"
	kernelMetaPkg    = "linux-image-cloud-amd64"
)

// TinyKernelCmdline is the kernel command line labcloud-tiny boots with.
// The serial console is the one GetConsoleOutput reads; root is the first
// virtio disk, the instance's root volume.
const TinyKernelCmdline = "console=ttyS0,115200n8 root=" + tinyRootDevice + " rw"

// BuildInput says where BuildTiny writes and caches.
type BuildInput struct {
	// OutDir receives disk.qcow2, vmlinuz, initrd.img and manifest.json.
	// It is created if missing; files of an earlier build are replaced.
	OutDir string
	// CacheDir keeps the downloaded and unpacked .deb files between
	// builds (DefaultCacheDir when empty). A rebuild with the same package
	// versions downloads nothing.
	CacheDir string
	// RootSizeMiB is the size of the root file system, and so of the
	// volume the AMI's snapshot describes (DefaultRootMiB when 0). A larger
	// volume is grown to fill its device at boot.
	RootSizeMiB int
	// Logf, when set, receives one line per build step.
	Logf func(format string, args ...any)
}

// Result names the files of a finished build.
type Result struct {
	// Disk is the qcow2 root volume image, Kernel and Initrd the files for
	// QEMU -kernel and -initrd, ManifestPath the manifest.json.
	Disk, Kernel, Initrd, ManifestPath string
	// KernelCmdline is the -append argument (same as in the manifest).
	KernelCmdline string
	// Manifest is what manifest.json holds.
	Manifest Manifest
}

// Manifest describes a built image; it is written as manifest.json.
type Manifest struct {
	Name          string `json:"name"`
	Description   string `json:"description"`
	Architecture  string `json:"architecture"`
	KernelVersion string `json:"kernelVersion"`
	KernelCmdline string `json:"kernelCmdline"`
	// RootDevice is the root volume as the guest sees it.
	RootDevice        string            `json:"rootDevice"`
	RootVolumeSizeGiB int               `json:"rootVolumeSizeGiB"`
	DefaultUser       string            `json:"defaultUser"`
	Files             []ManifestFile    `json:"files"`
	Packages          []ManifestPackage `json:"packages"`
	BuiltAt           time.Time         `json:"builtAt"`
}

// ManifestFile is one file of the image with its checksum.
type ManifestFile struct {
	Name string `json:"name"`
	// Role is "root-volume", "kernel" or "initrd".
	Role   string `json:"role"`
	Format string `json:"format"`
	Size   int64  `json:"size"`
	SHA256 string `json:"sha256"`
}

// ManifestPackage is one Debian package the image was made from.
type ManifestPackage struct {
	Name    string `json:"name"`
	Version string `json:"version"`
	SHA256  string `json:"sha256"`
}

// tinyPackages are the Debian packages labcloud-tiny is made of, besides
// the versioned kernel package that linux-image-cloud-amd64 depends on.
// The libraries are those the copied programs need (see libClosure): a
// library missing here fails the build with its name.
var tinyPackages = []string{
	"busybox-static",
	"dropbear-bin", "libc6", "libcrypt1", "libtomcrypt1", "libtommath1", "libgmp10", "zlib1g",
	"openssh-sftp-server",
	"e2fsprogs", "libext2fs2", "libcom-err2", "libblkid1", "libuuid1",
}

// BuildTiny builds the labcloud-tiny AMI artefacts into in.OutDir and
// returns their paths and manifest. It needs apt-get (with current package
// lists: `apt-get update`), dpkg-deb, depmod, mkfs.ext4, debugfs and
// qemu-img; `make deps` installs them. The build takes a few seconds once
// the package cache is warm.
func BuildTiny(ctx context.Context, in BuildInput) (Result, error) {
	if in.OutDir == "" {
		return Result{}, errdefs.InvalidParameter("", "BuildInput.OutDir is empty: say where the image files go")
	}
	if in.CacheDir == "" {
		in.CacheDir = DefaultCacheDir
	}
	if in.RootSizeMiB == 0 {
		in.RootSizeMiB = DefaultRootMiB
	}
	if in.RootSizeMiB < 64 {
		return Result{}, errdefs.InvalidParameter("", "BuildInput.RootSizeMiB is %d: the root file system needs at least 64 MiB", in.RootSizeMiB)
	}
	logf := in.Logf
	if logf == nil {
		logf = func(string, ...any) {}
	}
	if err := CheckTools(); err != nil {
		return Result{}, err
	}
	if err := os.MkdirAll(in.OutDir, 0o755); err != nil {
		return Result{}, fmt.Errorf("creating output directory: %w", err)
	}
	work, err := os.MkdirTemp(in.OutDir, ".build-")
	if err != nil {
		return Result{}, fmt.Errorf("creating build directory: %w", err)
	}
	defer os.RemoveAll(work)

	step := func(name string, f func() error) error {
		start := time.Now()
		if err := f(); err != nil {
			return err
		}
		logf("%s: %s", name, time.Since(start).Round(time.Millisecond))
		return nil
	}

	c := &debCache{dir: in.CacheDir}
	var kernelPkg string
	var pkgs []*debPkg
	if err := step("packages", func() error {
		var err error
		if kernelPkg, pkgs, err = c.resolve(ctx, kernelMetaPkg, "linux-image-", tinyPackages); err != nil {
			return err
		}
		return c.fetch(ctx, pkgs)
	}); err != nil {
		return Result{}, err
	}
	byName := map[string]*debPkg{}
	for _, p := range pkgs {
		byName[p.Name] = p
	}
	kernel := byName[kernelPkg]
	kver := strings.TrimPrefix(kernelPkg, "linux-image-")

	var mods *moduleDB
	if err := step("kernel modules", func() error {
		var err error
		mods, err = loadModules(ctx, kernel.Root, kver)
		return err
	}); err != nil {
		return Result{}, err
	}

	bootMods, err := mods.loadOrder(bootModules)
	if err != nil {
		return Result{}, err
	}
	rootMods, err := mods.loadOrder(append(append([]string{}, bootModules...), extraModules...))
	if err != nil {
		return Result{}, err
	}

	stage := filepath.Join(work, "root")
	rawDisk := filepath.Join(work, "disk.raw")
	outDisk := filepath.Join(work, DiskFileName)
	outInitrd := filepath.Join(work, InitrdFileName)
	outKernel := filepath.Join(work, KernelFileName)
	rs := &rootfs{dir: stage, pkgs: byName, kver: kver, kernelRoot: kernel.Root}
	if err := step("root file system tree", func() error {
		return rs.populate(ctx, rootMods)
	}); err != nil {
		return Result{}, err
	}
	if err := step("initramfs", func() error {
		init, err := guestFiles.ReadFile("guest/initramfs/init")
		if err != nil {
			return err
		}
		return writeInitramfs(outInitrd, initramfsSpec{
			busybox:  filepath.Join(byName["busybox-static"].Root, "bin", "busybox"),
			applets:  rs.applets,
			init:     init,
			modDir:   filepath.Join(kernel.Root, "lib", "modules", kver),
			modOrder: bootMods,
		})
	}); err != nil {
		return Result{}, err
	}
	if err := step("ext4 image", func() error {
		return makeExt4(ctx, stage, rawDisk, in.RootSizeMiB, rs.owners)
	}); err != nil {
		return Result{}, err
	}
	if err := step("qcow2", func() error {
		return toQcow2(ctx, rawDisk, outDisk)
	}); err != nil {
		return Result{}, err
	}
	if err := os.Remove(rawDisk); err != nil {
		return Result{}, err
	}
	if err := copyFile(filepath.Join(kernel.Root, "boot", "vmlinuz-"+kver), outKernel, 0o644); err != nil {
		return Result{}, fmt.Errorf("copying the kernel: %w", err)
	}

	m := Manifest{
		Name:              TinyName,
		Description:       "labcloud-tiny: busybox and dropbear on Debian's cloud kernel (" + kver + ")",
		Architecture:      tinyArchitecture,
		KernelVersion:     kver,
		KernelCmdline:     TinyKernelCmdline,
		RootDevice:        tinyRootDevice,
		RootVolumeSizeGiB: (in.RootSizeMiB + 1023) / 1024,
		DefaultUser:       tinyDefaultUser,
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
	for _, p := range pkgs {
		m.Packages = append(m.Packages, ManifestPackage{Name: p.Name, Version: p.Version, SHA256: p.SHA256})
	}
	data, err := json.MarshalIndent(m, "", "  ")
	if err != nil {
		return Result{}, err
	}
	if err := os.WriteFile(filepath.Join(work, ManifestFileName), append(data, '\n'), 0o644); err != nil {
		return Result{}, err
	}
	// Move the finished files in place, the manifest last: a manifest in
	// OutDir always describes complete files.
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
		KernelCmdline: TinyKernelCmdline,
		Manifest:      m,
	}, nil
}

func fileSHA256(path string) (string, int64, error) {
	f, err := os.Open(path)
	if err != nil {
		return "", 0, err
	}
	defer f.Close()
	h := sha256.New()
	n, err := io.Copy(h, f)
	if err != nil {
		return "", 0, fmt.Errorf("hashing %s: %w", path, err)
	}
	return hex.EncodeToString(h.Sum(nil)), n, nil
}

// copyFile copies src (following symlinks) to dst with mode.
func copyFile(src, dst string, mode os.FileMode) error {
	in, err := os.Open(src)
	if err != nil {
		return err
	}
	defer in.Close()
	if err := os.MkdirAll(filepath.Dir(dst), 0o755); err != nil {
		return err
	}
	out, err := os.OpenFile(dst, os.O_CREATE|os.O_WRONLY|os.O_TRUNC, mode)
	if err != nil {
		return err
	}
	if _, err := io.Copy(out, in); err != nil {
		out.Close()
		return err
	}
	if err := out.Close(); err != nil {
		return err
	}
	return os.Chmod(dst, mode)
}
