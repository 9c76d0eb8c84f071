package testguest

import (
	"bytes"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

func TestLastDevices(t *testing.T) {
	log := []byte("boot\r\n" + DevicesPrefix + "disks: vda=a nics:\r\n" + BootMarker + "\r\n" +
		DevicesPrefix + "disks: vda=a vdb=b nics: eth0=02:00:00:00:00:01\r\n" + DevicesPrefix + "disks: partial")
	if got := LastDevices(log); got != "disks: vda=a vdb=b nics: eth0=02:00:00:00:00:01" {
		t.Fatalf("LastDevices = %q (a listing without its line end is still being written)", got)
	}
	if LastDevices([]byte("nothing yet")) != "" {
		t.Fatal("LastDevices without a listing must be empty")
	}
}

// TestCPIOReadable checks the initramfs writer against GNU cpio's reader
// (the kernel's unpacker reads the same newc format).
func TestCPIOReadable(t *testing.T) {
	if _, err := exec.LookPath("cpio"); err != nil {
		t.Fatal("cpio not installed: run `make deps`")
	}
	var w cpioWriter
	w.dir("bin")
	w.file("bin/hello", 0o755, []byte("odd length"))
	w.symlink("bin/sh", "hello")
	w.file("init", 0o755, []byte(initScript))
	p := filepath.Join(t.TempDir(), "x.cpio")
	if err := os.WriteFile(p, w.finish(), 0o644); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command("cpio", "-t", "--quiet")
	f, _ := os.Open(p)
	defer f.Close()
	cmd.Stdin = f
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("cpio -t: %v: %s", err, out)
	}
	if got := strings.Fields(string(out)); strings.Join(got, " ") != "bin bin/hello bin/sh init" {
		t.Fatalf("cpio lists %q", got)
	}
	if !bytes.Contains([]byte(initScript), []byte(BootMarker)) {
		t.Fatal("the init script does not print BootMarker")
	}
}
