package lvm

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/labcloud/labcloud/blockdev"
	"github.com/labcloud/labcloud/blockdev/blockdevtest"
)

func TestCommandLines(t *testing.T) {
	for _, tc := range []struct {
		name string
		got  []string
		want string
	}{
		{"thin volume", createThinArgs("vg0", "pool", "vol-1", 1<<30),
			"lvcreate --yes --type thin --virtualsize 1073741824b --thinpool pool --name vol-1 vg0"},
		{"snapshot", snapshotArgs("vg0", "vol-1", "snap-1"),
			"lvcreate --yes --snapshot --name snap-1 --setactivationskip y --permission r vg0/vol-1"},
		{"clone", cloneArgs("vg0", "snap-1", "vol-2"),
			"lvcreate --yes --snapshot --name vol-2 --setactivationskip n --permission rw vg0/snap-1"},
		{"activate", activateArgs("vg0", "vol-2"), "lvchange --activate y --ignoreactivationskip vg0/vol-2"},
		{"extend", extendArgs("vg0", "vol-1", 2<<30), "lvextend --yes --size 2147483648b vg0/vol-1"},
		{"remove", removeArgs("vg0", "snap-1"), "lvremove --yes vg0/snap-1"},
		{"show", showArgs("vg0", "vol-1"), "lvs --noheadings --nosuffix --units b --separator | -o lv_size,lv_attr vg0/vol-1"},
		{"luks", luksFormatArgs("/dev/vg0/vol-1", "/k/vol-1.key", 1<<30),
			"qemu-img create -q --object secret,id=sec0,file=/k/vol-1.key,format=raw -f luks -o key-secret=sec0,iter-time=10 /dev/vg0/vol-1 1073741824"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := strings.Join(tc.got, " "); got != tc.want {
				t.Errorf("got\n  %s\nwant\n  %s", got, tc.want)
			}
		})
	}
}

// TestConformance runs the blockdev suite on a thin pool in a volume group
// on a loop device the test makes. It needs device-mapper, which the
// build machines lack; it runs in the Vagrant box.
func TestConformance(t *testing.T) {
	if ok, why := Available(); !ok {
		t.Skip(why)
	}
	if os.Geteuid() != 0 {
		t.Skip("needs root for losetup and LVM")
	}
	blockdevtest.Run(t, func(t *testing.T) blockdev.Backend {
		img := filepath.Join(t.TempDir(), "pv.img")
		if err := os.WriteFile(img, nil, 0o600); err != nil {
			t.Fatal(err)
		}
		if err := os.Truncate(img, 1<<30); err != nil {
			t.Fatal(err)
		}
		out, err := exec.Command("losetup", "--find", "--show", img).Output()
		if err != nil {
			t.Fatalf("losetup: %v", err)
		}
		loop := strings.TrimSpace(string(out))
		vg := fmt.Sprintf("lcebs%d", os.Getpid())
		t.Cleanup(func() {
			exec.Command("vgremove", "--yes", "--force", vg).Run()
			exec.Command("pvremove", "--yes", loop).Run()
			exec.Command("losetup", "-d", loop).Run()
		})
		for _, c := range [][]string{{"pvcreate", "--yes", loop}, {"vgcreate", vg, loop},
			{"lvcreate", "--yes", "--type", "thin-pool", "--size", "900m", "--name", "pool", vg}} {
			if out, err := exec.Command(c[0], c[1:]...).CombinedOutput(); err != nil {
				t.Fatalf("%v: %v: %s", c, err, out)
			}
		}
		b, err := New(Options{VG: vg, ThinPool: "pool", Dir: t.TempDir()})
		if err != nil {
			t.Fatal(err)
		}
		if _, err := b.Recover(context.Background()); err != nil {
			t.Fatal(err)
		}
		return b
	})
}
