package builder

import (
	"bufio"
	"compress/gzip"
	"fmt"
	"io"
	"os"
	"path"
	"strings"
	"syscall"
)

// cpioWriter writes the "newc" cpio format the kernel unpacks an
// initramfs from. Entries are written as given: parents before children.
// Owners are always root and device nodes need no privilege, because the
// archive is written directly rather than by cpio(1) from a real tree.
type cpioWriter struct {
	w     io.Writer
	ino   uint32
	mtime int64
	err   error
}

func newCpioWriter(w io.Writer, mtime int64) *cpioWriter {
	return &cpioWriter{w: w, ino: 1, mtime: mtime}
}

func (c *cpioWriter) entry(name string, mode uint32, nlink uint32, rdevMajor, rdevMinor uint32, data []byte) {
	if c.err != nil {
		return
	}
	name = strings.TrimPrefix(path.Clean("/"+name), "/")
	if name == "" {
		name = "."
	}
	c.ino++
	hdr := fmt.Sprintf("070701%08X%08X%08X%08X%08X%08X%08X%08X%08X%08X%08X%08X%08X",
		c.ino, mode, 0, 0, nlink, uint32(c.mtime), len(data), 0, 0, rdevMajor, rdevMinor, len(name)+1, 0)
	buf := make([]byte, 0, len(hdr)+len(name)+8+len(data)+4)
	buf = append(buf, hdr...)
	buf = append(buf, name...)
	buf = append(buf, 0)
	buf = pad4(buf)
	buf = append(buf, data...)
	buf = pad4(buf)
	_, c.err = c.w.Write(buf)
}

func pad4(b []byte) []byte {
	for len(b)%4 != 0 {
		b = append(b, 0)
	}
	return b
}

// Dir adds a directory.
func (c *cpioWriter) Dir(name string, perm uint32) {
	c.entry(name, syscall.S_IFDIR|perm, 2, 0, 0, nil)
}

// File adds a regular file with its content.
func (c *cpioWriter) File(name string, perm uint32, data []byte) {
	c.entry(name, syscall.S_IFREG|perm, 1, 0, 0, data)
}

// Symlink adds a symbolic link to target.
func (c *cpioWriter) Symlink(name, target string) {
	c.entry(name, syscall.S_IFLNK|0o777, 1, 0, 0, []byte(target))
}

// CharDev adds a character device node.
func (c *cpioWriter) CharDev(name string, perm, major, minor uint32) {
	c.entry(name, syscall.S_IFCHR|perm, 1, major, minor, nil)
}

// Close writes the trailer and reports the first error.
func (c *cpioWriter) Close() error {
	c.entry("TRAILER!!!", 0, 1, 0, 0, nil)
	return c.err
}

// initramfsSpec is what goes into labcloud-tiny's initramfs.
type initramfsSpec struct {
	busybox  string   // host path of the static busybox
	applets  []string // busybox --list-full
	init     []byte   // the /init script
	modDir   string   // host lib/modules/<version>
	modOrder []string // module paths relative to modDir, in load order
}

// writeInitramfs writes a gzip-compressed newc cpio: busybox and its
// applet links, /dev/console (the kernel opens it before running /init),
// the boot modules under /lib/modules with boot.order, and /init.
func writeInitramfs(out string, s initramfsSpec) error {
	f, err := os.Create(out)
	if err != nil {
		return err
	}
	defer f.Close()
	bw := bufio.NewWriterSize(f, 1<<20)
	zw, err := gzip.NewWriterLevel(bw, gzip.BestCompression)
	if err != nil {
		return err
	}
	cw := newCpioWriter(zw, 0)

	dirs := map[string]bool{}
	mkdirs := func(p string) {
		var parts []string
		for d := path.Dir(p); d != "." && d != "/"; d = path.Dir(d) {
			parts = append(parts, d)
		}
		for i := len(parts) - 1; i >= 0; i-- {
			if !dirs[parts[i]] {
				dirs[parts[i]] = true
				cw.Dir(parts[i], 0o755)
			}
		}
	}
	for _, d := range []string{"bin", "sbin", "usr/bin", "usr/sbin", "dev", "proc", "sys", "newroot", "lib/modules"} {
		mkdirs(d + "/x")
	}
	cw.CharDev("dev/console", 0o600, 5, 1)

	bb, err := os.ReadFile(s.busybox)
	if err != nil {
		return fmt.Errorf("reading busybox: %w", err)
	}
	cw.File("bin/busybox", 0o755, bb)
	for _, a := range s.applets {
		if a == "bin/busybox" {
			continue
		}
		mkdirs(a)
		cw.Symlink(a, "/bin/busybox")
	}
	for _, m := range s.modOrder {
		data, err := os.ReadFile(path.Join(s.modDir, m))
		if err != nil {
			return fmt.Errorf("reading module %s: %w", m, err)
		}
		mkdirs("lib/modules/" + m)
		cw.File("lib/modules/"+m, 0o644, data)
	}
	cw.File("lib/modules/boot.order", 0o644, []byte(strings.Join(s.modOrder, "\n")+"\n"))
	cw.File("init", 0o755, s.init)
	if err := cw.Close(); err != nil {
		return err
	}
	if err := zw.Close(); err != nil {
		return err
	}
	if err := bw.Flush(); err != nil {
		return err
	}
	return f.Close()
}
