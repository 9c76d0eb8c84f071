package builder

import (
	"context"
	"embed"
	"fmt"
	"io/fs"
	"os"
	"path"
	"path/filepath"
	"slices"
	"strings"
)

// guestFiles are the scripts and configuration of the image: guest/rootfs
// is copied onto the root volume, guest/initramfs/init is the initramfs.
//
//go:embed guest
var guestFiles embed.FS

// executable reports whether a guest file (path relative to guest/rootfs)
// is a program; embed keeps no file modes.
func executable(rel string) bool {
	for _, dir := range []string{"etc/init.d/", "usr/sbin/", "etc/udhcpc/", "etc/acpi/"} {
		if strings.HasPrefix(rel, dir) {
			return true
		}
	}
	return false
}

// guestMode gives the mode of a guest file.
func guestMode(rel string) os.FileMode {
	switch {
	case executable(rel):
		return 0o755
	case rel == "etc/shadow":
		return 0o600
	}
	return 0o644
}

// program is a binary copied from a package into the image, with the
// shared libraries it needs.
type program struct {
	pkg, path string
	links     []string // more names for it in the image
}

var tinyPrograms = []program{
	{"dropbear-bin", "usr/sbin/dropbear", nil},
	{"dropbear-bin", "usr/bin/dropbearkey", nil},
	{"dropbear-bin", "usr/bin/dropbearconvert", nil},
	// dbclient is dropbear's ssh client: a jump host for private subnets.
	{"dropbear-bin", "usr/bin/dbclient", []string{"usr/bin/ssh"}},
	// scp and sftp from OpenSSH 9 clients use the SFTP subsystem, which
	// dropbear execs from /usr/lib/sftp-server.
	{"openssh-sftp-server", "usr/lib/openssh/sftp-server", []string{"usr/lib/sftp-server"}},
	// Growing the root volume at boot and formatting EBS volumes in labs;
	// they replace busybox's smaller mke2fs.
	{"e2fsprogs", "sbin/resize2fs", nil},
	{"e2fsprogs", "sbin/e2fsck", []string{"sbin/fsck.ext4", "sbin/fsck.ext2", "sbin/fsck.ext3"}},
	{"e2fsprogs", "sbin/mke2fs", []string{"sbin/mkfs.ext4", "sbin/mkfs.ext2", "sbin/mkfs.ext3"}},
}

// tinyDirs are the image's directories and their modes (parents first).
var tinyDirs = []struct {
	path string
	mode os.FileMode
}{
	{"bin", 0o755}, {"sbin", 0o755}, {"lib", 0o755}, {"lib64", 0o755},
	{"usr", 0o755}, {"usr/bin", 0o755}, {"usr/sbin", 0o755}, {"usr/lib", 0o755},
	{"usr/local", 0o755}, {"usr/local/bin", 0o755}, {"usr/share", 0o755},
	{"etc", 0o755}, {"etc/dropbear", 0o755},
	{"dev", 0o755}, {"proc", 0o555}, {"sys", 0o555}, {"run", 0o755},
	{"tmp", os.ModeSticky | 0o777}, {"mnt", 0o755}, {"media", 0o755}, {"opt", 0o755}, {"srv", 0o755},
	{"var", 0o755}, {"var/log", 0o755}, {"var/lib", 0o755}, {"var/lib/labcloud-tiny", 0o700},
	{"var/tmp", os.ModeSticky | 0o777}, {"var/spool", 0o755}, {"var/spool/cron", 0o755}, {"var/spool/cron/crontabs", 0o700},
	{"root", 0o700}, {"home", 0o755}, {"home/ec2-user", 0o700},
}

// rootfs assembles the root volume's tree in dir.
type rootfs struct {
	dir        string
	pkgs       map[string]*debPkg
	kver       string
	kernelRoot string
	applets    []string
	// owners maps image paths ("/home/ec2-user") to uid:gid; every other
	// file is root's. makeExt4 applies them with debugfs.
	owners map[string][2]int
}

func (r *rootfs) pkgRoot(name string) string { return r.pkgs[name].Root }

func (r *rootfs) populate(ctx context.Context, modules []string) error {
	for _, d := range tinyDirs {
		p := filepath.Join(r.dir, d.path)
		if err := os.MkdirAll(p, 0o755); err != nil {
			return err
		}
		if err := os.Chmod(p, d.mode); err != nil {
			return err
		}
	}
	r.owners = map[string][2]int{"/home/ec2-user": {1000, 1000}}
	for name, target := range map[string]string{
		"var/run":  "/run",
		"var/lock": "/run/lock",
		"etc/mtab": "/proc/self/mounts",
	} {
		if err := os.Symlink(target, filepath.Join(r.dir, name)); err != nil {
			return err
		}
	}

	// busybox: one binary, a link per applet.
	bb := filepath.Join(r.pkgRoot("busybox-static"), "bin", "busybox")
	if err := copyFile(bb, filepath.Join(r.dir, "bin", "busybox"), 0o755); err != nil {
		return fmt.Errorf("copying busybox: %w", err)
	}
	applets, err := busyboxApplets(ctx, bb)
	if err != nil {
		return err
	}
	r.applets = applets
	for _, a := range applets {
		if err := r.link(a, "/bin/busybox"); err != nil {
			return err
		}
	}

	// Programs from packages, and the libraries they need.
	var hostBins []string
	var roots []string
	for _, p := range r.pkgs {
		roots = append(roots, p.Root)
	}
	slices.Sort(roots)
	for _, p := range tinyPrograms {
		src := filepath.Join(r.pkgRoot(p.pkg), p.path)
		dst := filepath.Join(r.dir, p.path)
		os.Remove(dst) // a busybox applet of the same name
		if err := copyFile(src, dst, 0o755); err != nil {
			return fmt.Errorf("copying %s from %s: %w", p.path, p.pkg, err)
		}
		hostBins = append(hostBins, src)
		for _, l := range p.links {
			if err := r.link(l, "/"+p.path); err != nil {
				return err
			}
		}
	}
	libs, interp, err := libClosure(hostBins, roots)
	if err != nil {
		return err
	}
	for _, l := range libs {
		if err := copyFile(l.Host, filepath.Join(r.dir, l.Guest), 0o644); err != nil {
			return fmt.Errorf("copying %s: %w", l.Guest, err)
		}
	}
	if interp.Guest != "" {
		if err := os.Chmod(filepath.Join(r.dir, "lib/x86_64-linux-gnu", filepath.Base(interp.Guest)), 0o755); err != nil {
			return fmt.Errorf("the program interpreter %s is not in lib/x86_64-linux-gnu: %w", interp.Guest, err)
		}
		if err := r.link(interp.Guest, "/lib/x86_64-linux-gnu/"+filepath.Base(interp.Guest)); err != nil {
			return err
		}
	}
	if err := copyFile(filepath.Join(r.pkgRoot("e2fsprogs"), "etc", "mke2fs.conf"), filepath.Join(r.dir, "etc", "mke2fs.conf"), 0o644); err != nil {
		return fmt.Errorf("copying mke2fs.conf: %w", err)
	}

	// Kernel modules, with a modules.dep of their own for modprobe.
	src := filepath.Join(r.kernelRoot, "lib", "modules", r.kver)
	dst := filepath.Join(r.dir, "lib", "modules", r.kver)
	for _, m := range modules {
		if err := copyFile(filepath.Join(src, m), filepath.Join(dst, m), 0o644); err != nil {
			return fmt.Errorf("copying module %s: %w", m, err)
		}
	}
	for _, f := range []string{"modules.order", "modules.builtin", "modules.builtin.modinfo"} {
		if err := copyFile(filepath.Join(src, f), filepath.Join(dst, f), 0o644); err != nil {
			return fmt.Errorf("copying %s: %w", f, err)
		}
	}
	if _, err := run(ctx, "", "depmod", "-b", r.dir, r.kver); err != nil {
		return fmt.Errorf("depmod for the image: %w", err)
	}

	// Scripts and configuration.
	if err := fs.WalkDir(guestFiles, "guest/rootfs", func(p string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		rel := strings.TrimPrefix(p, "guest/rootfs/")
		data, err := guestFiles.ReadFile(p)
		if err != nil {
			return err
		}
		return writeFile(filepath.Join(r.dir, rel), data, guestMode(rel))
	}); err != nil {
		return fmt.Errorf("writing the guest files: %w", err)
	}
	osRelease := fmt.Sprintf(`NAME="labcloud-tiny"
ID=labcloud-tiny
PRETTY_NAME="labcloud-tiny (busybox %s, dropbear %s, Linux %s)"
VERSION_ID="%s"
`, debVersion(r.pkgs["busybox-static"].Version), debVersion(r.pkgs["dropbear-bin"].Version), r.kver, debVersion(r.pkgs["busybox-static"].Version))
	return writeFile(filepath.Join(r.dir, "etc", "os-release"), []byte(osRelease), 0o644)
}

// link makes name (relative to the image root) a symlink to target.
func (r *rootfs) link(name, target string) error {
	p := filepath.Join(r.dir, name)
	if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
		return err
	}
	if _, err := os.Lstat(p); err == nil {
		return nil // a real program of that name wins over a busybox applet
	}
	return os.Symlink(target, p)
}

// busyboxApplets lists the applets of a busybox with their paths
// ("usr/bin/wget"), by running it: busybox-static runs on any x86_64 host.
func busyboxApplets(ctx context.Context, busybox string) ([]string, error) {
	out, err := run(ctx, "", busybox, "--list-full")
	if err != nil {
		return nil, fmt.Errorf("listing the busybox applets: %w", err)
	}
	var applets []string
	for _, a := range strings.Fields(string(out)) {
		if strings.Contains(a, "/") && path.Clean(a) == a && !strings.HasPrefix(a, "/") {
			applets = append(applets, a)
		}
	}
	if len(applets) < 50 {
		return nil, fmt.Errorf("busybox --list-full listed %d applets: is %s really busybox-static?", len(applets), busybox)
	}
	return applets, nil
}

// debVersion drops the epoch and Debian revision: "1:1.35.0-4+b1" -> "1.35.0".
func debVersion(v string) string {
	if _, after, ok := strings.Cut(v, ":"); ok {
		v = after
	}
	if i := strings.LastIndex(v, "-"); i > 0 {
		v = v[:i]
	}
	return v
}

func writeFile(p string, data []byte, mode os.FileMode) error {
	if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
		return err
	}
	if err := os.WriteFile(p, data, mode); err != nil {
		return err
	}
	return os.Chmod(p, mode)
}
