package volumes

import (
	"testing"

	"github.com/labcloud/labcloud/internal/errdefs"
)

func TestNormalize(t *testing.T) {
	for _, tc := range []struct {
		name       string
		in         Spec
		iops, tput bool
		want       Spec
		wantCode   string
	}{
		{"gp2 defaults", Spec{Type: GP2, SizeGiB: 100}, false, false, Spec{Type: GP2, SizeGiB: 100}, ""},
		{"gp2 too big", Spec{Type: GP2, SizeGiB: 16385}, false, false, Spec{}, "InvalidParameterValue"},
		{"gp2 zero", Spec{Type: GP2, SizeGiB: 0}, false, false, Spec{}, "InvalidParameterValue"},
		{"gp2 iops refused", Spec{Type: GP2, SizeGiB: 100, IOPS: 300}, true, false, Spec{}, "InvalidParameterCombination"},
		{"gp3 defaults", Spec{Type: GP3, SizeGiB: 1}, false, false, Spec{Type: GP3, SizeGiB: 1, IOPS: 3000, Throughput: 125}, ""},
		{"gp3 iops by size", Spec{Type: GP3, SizeGiB: 8, IOPS: 4001}, true, false, Spec{}, "InvalidParameterValue"},
		{"gp3 iops ok", Spec{Type: GP3, SizeGiB: 8, IOPS: 4000}, true, false, Spec{Type: GP3, SizeGiB: 8, IOPS: 4000, Throughput: 125}, ""},
		{"gp3 throughput ratio", Spec{Type: GP3, SizeGiB: 100, IOPS: 3000, Throughput: 751}, true, true, Spec{}, "InvalidParameterValue"},
		{"gp3 throughput ok", Spec{Type: GP3, SizeGiB: 100, IOPS: 3000, Throughput: 750}, true, true, Spec{Type: GP3, SizeGiB: 100, IOPS: 3000, Throughput: 750}, ""},
		{"gp3 throughput too low", Spec{Type: GP3, SizeGiB: 100, Throughput: 100}, false, true, Spec{}, "InvalidParameterValue"},
		{"io1 needs iops", Spec{Type: IO1, SizeGiB: 100}, false, false, Spec{}, "MissingParameter"},
		{"io1 ratio 50", Spec{Type: IO1, SizeGiB: 10, IOPS: 501}, true, false, Spec{}, "InvalidParameterValue"},
		{"io1 ok", Spec{Type: IO1, SizeGiB: 20, IOPS: 1000}, true, false, Spec{Type: IO1, SizeGiB: 20, IOPS: 1000}, ""},
		{"io1 min size", Spec{Type: IO1, SizeGiB: 3, IOPS: 100}, true, false, Spec{}, "InvalidParameterValue"},
		{"io2 ratio 1000", Spec{Type: IO2, SizeGiB: 4, IOPS: 4000}, true, false, Spec{Type: IO2, SizeGiB: 4, IOPS: 4000}, ""},
		{"io2 max", Spec{Type: IO2, SizeGiB: 1000, IOPS: 256001}, true, false, Spec{}, "InvalidParameterValue"},
		{"st1 min size", Spec{Type: ST1, SizeGiB: 124}, false, false, Spec{}, "InvalidParameterValue"},
		{"sc1 throughput refused", Spec{Type: SC1, SizeGiB: 500, Throughput: 200}, false, true, Spec{}, "InvalidParameterCombination"},
		{"standard max", Spec{Type: Standard, SizeGiB: 1025}, false, false, Spec{}, "InvalidParameterValue"},
		{"unknown type", Spec{Type: "gp9", SizeGiB: 10}, false, false, Spec{}, "InvalidParameterValue"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := Normalize(tc.in, tc.iops, tc.tput)
			if tc.wantCode != "" {
				var e *errdefs.Error
				if err == nil || !asErr(err, &e) || e.Code != tc.wantCode {
					t.Fatalf("err %v, want code %s", err, tc.wantCode)
				}
				return
			}
			if err != nil || got != tc.want {
				t.Fatalf("got %+v %v, want %+v", got, err, tc.want)
			}
		})
	}
}

func asErr(err error, e **errdefs.Error) bool {
	x, ok := err.(*errdefs.Error)
	*e = x
	return ok
}

func TestThrottleFor(t *testing.T) {
	for _, tc := range []struct {
		name string
		in   Spec
		want Throttle
	}{
		{"gp2 100 GiB", Spec{Type: GP2, SizeGiB: 100}, Throttle{IOPSTotal: 300, BPSTotal: 250 * mib, IOPSBurst: 3000, BurstSeconds: 2000}},
		{"gp2 10 GiB floor", Spec{Type: GP2, SizeGiB: 10}, Throttle{IOPSTotal: 100, BPSTotal: 250 * mib, IOPSBurst: 3000, BurstSeconds: 1862}},
		{"gp2 1 TiB no burst", Spec{Type: GP2, SizeGiB: 1024}, Throttle{IOPSTotal: 3072, BPSTotal: 250 * mib}},
		{"gp2 cap", Spec{Type: GP2, SizeGiB: 16000}, Throttle{IOPSTotal: 16000, BPSTotal: 250 * mib}},
		{"gp3", Spec{Type: GP3, SizeGiB: 8, IOPS: 3000, Throughput: 125}, Throttle{IOPSTotal: 3000, BPSTotal: 125 * mib}},
		{"io1", Spec{Type: IO1, SizeGiB: 100, IOPS: 1000}, Throttle{IOPSTotal: 1000, BPSTotal: 1000 * mib}},
		{"st1 1 TiB", Spec{Type: ST1, SizeGiB: 1024}, Throttle{IOPSTotal: 500, BPSTotal: 40 * mib, BPSBurst: 250 * mib, BurstSeconds: 60}},
		{"st1 cap", Spec{Type: ST1, SizeGiB: 16384}, Throttle{IOPSTotal: 500, BPSTotal: 500 * mib, BPSBurst: 500 * mib, BurstSeconds: 60}},
		{"sc1 1 TiB", Spec{Type: SC1, SizeGiB: 1024}, Throttle{IOPSTotal: 250, BPSTotal: 12 * mib, BPSBurst: 80 * mib, BurstSeconds: 60}},
		{"standard", Spec{Type: Standard, SizeGiB: 8}, Throttle{IOPSTotal: 100, IOPSBurst: 300, BurstSeconds: 30, BPSTotal: 90 * mib}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := ThrottleFor(tc.in); got != tc.want {
				t.Errorf("got %+v, want %+v", got, tc.want)
			}
		})
	}
}

func TestSustained(t *testing.T) {
	got := ThrottleFor(Spec{Type: GP2, SizeGiB: 100}).Sustained()
	if want := (Throttle{IOPSTotal: 300, BPSTotal: 250 * mib}); got != want {
		t.Errorf("got %+v, want %+v", got, want)
	}
}
