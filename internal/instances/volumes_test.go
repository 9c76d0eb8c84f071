package instances

import (
	"testing"

	"github.com/labcloud/labcloud/internal/volumes"
)

func TestVolumeThrottle(t *testing.T) {
	for _, tc := range []struct {
		name      string
		spec      volumes.Spec
		iops, bps int64
		unlimited bool
	}{
		// The lab's demo: 100 GiB gp2 is 300 IOPS, without the burst.
		{name: "gp2-100", spec: volumes.Spec{Type: volumes.GP2, SizeGiB: 100}, iops: 300, bps: 250 << 20},
		{name: "gp2-small", spec: volumes.Spec{Type: volumes.GP2, SizeGiB: 1}, iops: 100, bps: 250 << 20},
		{name: "gp3", spec: volumes.Spec{Type: volumes.GP3, SizeGiB: 10, IOPS: 4000, Throughput: 200}, iops: 4000, bps: 200 << 20},
		{name: "standard", spec: volumes.Spec{Type: volumes.Standard, SizeGiB: 10}, iops: 100, bps: 90 << 20},
		{name: "unknown", spec: volumes.Spec{Type: "nope"}, unlimited: true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got := VolumeThrottle(volumes.ThrottleFor(tc.spec))
			if tc.unlimited {
				if got != nil {
					t.Fatalf("got %+v, want no limits", got)
				}
				return
			}
			if got == nil || got.IOPSTotal != tc.iops || got.BPSTotal != tc.bps || got.IOPSRead != 0 || got.BPSWrite != 0 {
				t.Fatalf("got %+v, want iops-total %d, bps-total %d", got, tc.iops, tc.bps)
			}
		})
	}
}

func TestDeviceSlots(t *testing.T) {
	for _, tc := range []struct {
		a, b string
		same bool
	}{
		{"/dev/sdf", "/dev/xvdf", true},
		{"/dev/sdf", "/dev/sdg", false},
		{"/dev/xvda", "/dev/sda", true},
	} {
		if got := deviceLetter(tc.a) == deviceLetter(tc.b); got != tc.same {
			t.Errorf("%s and %s the same slot: %v, want %v", tc.a, tc.b, got, tc.same)
		}
	}
	if s := DiskSerial("vol-0123456789abcdef0"); s != "vol0123456789abcdef0" {
		t.Errorf("serial %q", s)
	}
}
