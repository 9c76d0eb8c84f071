package qcow2_test

import (
	"os/exec"
	"testing"

	"github.com/labcloud/labcloud/blockdev"
	"github.com/labcloud/labcloud/blockdev/blockdevtest"
	"github.com/labcloud/labcloud/blockdev/qcow2"
)

func needQemuImg(t testing.TB) {
	for _, bin := range []string{"qemu-img", "qemu-io"} {
		if _, err := exec.LookPath(bin); err != nil {
			t.Skipf("%s not installed (Debian: qemu-utils, in make deps)", bin)
		}
	}
}

func newBackend(t testing.TB) *qcow2.Backend {
	needQemuImg(t)
	b, err := qcow2.New(qcow2.Options{Dir: t.TempDir()})
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func TestConformance(t *testing.T) {
	blockdevtest.Run(t, func(t *testing.T) blockdev.Backend { return newBackend(t) })
}
