package fake_test

import (
	"context"
	"errors"
	"slices"
	"testing"
	"time"

	"github.com/labcloud/labcloud/hypervisor"
	"github.com/labcloud/labcloud/hypervisor/fake"
	"github.com/labcloud/labcloud/hypervisor/hvtest"
)

func guest(t *testing.T, d hypervisor.Driver, id string) fake.GuestView {
	t.Helper()
	v, ok := d.(*fake.Driver).Guest(id)
	if !ok {
		t.Fatalf("fake has no VM %s", id)
	}
	return v
}

func TestConformance(t *testing.T) {
	hvtest.Run(t, hvtest.Harness{
		NewDriver: func(t *testing.T) hypervisor.Driver { return fake.New(t.TempDir()) },
		Reopen:    func(t *testing.T, d hypervisor.Driver) hypervisor.Driver { return d.(*fake.Driver).Reopen() },
		Spec: func(t *testing.T, id string) hypervisor.Spec {
			return hypervisor.Spec{ID: id, VCPUs: 1, MemoryMiB: 128, Kernel: "/boot/vmlinuz", Initrd: "/boot/initrd",
				SMBIOS: hypervisor.EC2Identity(id, "t3.micro")}
		},
		NewDisk: func(t *testing.T, id string) hypervisor.Disk {
			return hypervisor.Disk{ID: id, Path: "/images/" + id + ".qcow2", Format: hypervisor.FormatQCOW2, Serial: id}
		},
		NewNIC: func(t *testing.T, id string) hypervisor.NIC {
			return hypervisor.NIC{ID: id, Tap: "tap-" + id[len(id)-3:], MAC: "02:00:00:00:00:42"}
		},
		Boots: func(t *testing.T, d hypervisor.Driver, id string) int { return guest(t, d, id).Boots },
		SeesDisk: func(t *testing.T, d hypervisor.Driver, id, serial string) bool {
			return slices.ContainsFunc(guest(t, d, id).Disks, func(dk hypervisor.Disk) bool { return dk.Serial == serial })
		},
		SeesNIC: func(t *testing.T, d hypervisor.Driver, id, mac string) bool {
			return slices.ContainsFunc(guest(t, d, id).NICs, func(n hypervisor.NIC) bool { return n.MAC == mac })
		},
		PowerOffFromGuest: func(t *testing.T, d hypervisor.Driver, id string) {
			if err := d.(*fake.Driver).GuestPowerOff(id); err != nil {
				t.Fatal(err)
			}
		},
		Crash: func(t *testing.T, d hypervisor.Driver, id string) {
			if err := d.(*fake.Driver).Crash(id); err != nil {
				t.Fatal(err)
			}
		},
		Timeout: 5 * time.Second,
	})
}

func TestIgnoredPowerButtonEndsForced(t *testing.T) {
	ctx := context.Background()
	d := fake.New(t.TempDir())
	spec := hypervisor.Spec{ID: "i-deaf", VCPUs: 1, MemoryMiB: 128, Kernel: "/k"}
	if err := d.Create(ctx, spec); err != nil {
		t.Fatal(err)
	}
	if err := d.Start(ctx, spec.ID); err != nil {
		t.Fatal(err)
	}
	if err := d.IgnorePowerButton(spec.ID, true); err != nil {
		t.Fatal(err)
	}
	if err := d.Stop(ctx, spec.ID, hypervisor.StopOptions{Graceful: true, Timeout: time.Second}); err != nil {
		t.Fatal(err)
	}
	st, err := d.Status(ctx, spec.ID)
	if err != nil || st.State != hypervisor.StateStopped || st.ExitReason != hypervisor.ExitForced {
		t.Fatalf("Status = %+v, %v; want stopped/forced", st, err)
	}
}

func TestInjectError(t *testing.T) {
	ctx := context.Background()
	d := fake.New(t.TempDir())
	if err := d.Create(ctx, hypervisor.Spec{ID: "i-x", VCPUs: 1, MemoryMiB: 128, Kernel: "/k"}); err != nil {
		t.Fatal(err)
	}
	d.InjectError("Start", fake.ErrInjected)
	if err := d.Start(ctx, "i-x"); !errors.Is(err, fake.ErrInjected) {
		t.Fatalf("first Start = %v, want the injected error", err)
	}
	if err := d.Start(ctx, "i-x"); err != nil {
		t.Fatalf("second Start = %v, want success (injection is one-shot)", err)
	}
	if err := d.Destroy(ctx, "i-x"); err != nil {
		t.Fatal(err)
	}
}
