package volumes

import (
	"github.com/labcloud/labcloud/internal/errdefs"
)

// VolumeType is an EBS volume type.
type VolumeType string

// The EBS volume types.
const (
	GP2      VolumeType = "gp2"
	GP3      VolumeType = "gp3"
	IO1      VolumeType = "io1"
	IO2      VolumeType = "io2"
	ST1      VolumeType = "st1"
	SC1      VolumeType = "sc1"
	Standard VolumeType = "standard"
)

// typeRule is what EC2 CreateVolume/ModifyVolume accept for one type
// (EC2 API reference, CreateVolume: Size, Iops, Throughput).
type typeRule struct {
	minGiB, maxGiB int
	// minIOPS..maxIOPS when Iops may be given; iopsAllowed false means
	// giving Iops is an error. iopsRequired: io1/io2.
	iopsAllowed, iopsRequired bool
	minIOPS, maxIOPS          int
	defaultIOPS               int
	// maxIOPSPerGiB bounds Iops by size (io1 50, io2 1000, gp3 500).
	maxIOPSPerGiB int
	// throughput (MiB/s), gp3 only.
	throughputAllowed                               bool
	minThroughput, maxThroughput, defaultThroughput int
}

var rules = map[VolumeType]typeRule{
	GP2:      {minGiB: 1, maxGiB: 16384},
	GP3:      {minGiB: 1, maxGiB: 16384, iopsAllowed: true, minIOPS: 3000, maxIOPS: 16000, defaultIOPS: 3000, maxIOPSPerGiB: 500, throughputAllowed: true, minThroughput: 125, maxThroughput: 1000, defaultThroughput: 125},
	IO1:      {minGiB: 4, maxGiB: 16384, iopsAllowed: true, iopsRequired: true, minIOPS: 100, maxIOPS: 64000, maxIOPSPerGiB: 50},
	IO2:      {minGiB: 4, maxGiB: 16384, iopsAllowed: true, iopsRequired: true, minIOPS: 100, maxIOPS: 256000, maxIOPSPerGiB: 1000},
	ST1:      {minGiB: 125, maxGiB: 16384},
	SC1:      {minGiB: 125, maxGiB: 16384},
	Standard: {minGiB: 1, maxGiB: 1024},
}

// gp3MaxMiBPerIOPS is gp3's throughput-to-IOPS bound: 0.25 MiB/s per
// provisioned IOPS.
const gp3MaxMiBPerIOPS = 0.25

// Spec is a volume's size and performance as the user asked for it.
type Spec struct {
	Type VolumeType
	// SizeGiB is the size in GiB.
	SizeGiB int
	// IOPS is the provisioned IOPS (gp3, io1, io2); 0 otherwise.
	IOPS int
	// Throughput is the provisioned MiB/s (gp3); 0 otherwise.
	Throughput int
}

// Normalize checks s against EC2's rules for its type and fills the
// defaults (gp3: 3000 IOPS, 125 MiB/s). iopsGiven/throughputGiven say
// whether the caller named them (EC2 rejects them for types that do not
// take them, even as zero).
func Normalize(s Spec, iopsGiven, throughputGiven bool) (Spec, error) {
	r, ok := rules[s.Type]
	if !ok {
		return s, errdefs.InvalidParameter("InvalidParameterValue", "Value (%s) for parameter volumeType is invalid. Valid values: gp2, gp3, io1, io2, st1, sc1, standard", s.Type)
	}
	if s.SizeGiB < r.minGiB || s.SizeGiB > r.maxGiB {
		return s, errdefs.InvalidParameter("InvalidParameterValue", "Volume of %d GiB is too %s; %s volumes must be at least %d GiB and at most %d GiB",
			s.SizeGiB, map[bool]string{true: "small", false: "large"}[s.SizeGiB < r.minGiB], s.Type, r.minGiB, r.maxGiB)
	}
	switch {
	case iopsGiven && !r.iopsAllowed:
		return s, errdefs.InvalidParameter("InvalidParameterCombination", "The parameter iops is not supported for %s volumes; provisioned IOPS are for gp3, io1 and io2", s.Type)
	case !iopsGiven && r.iopsRequired:
		return s, errdefs.New(errdefs.ClassMissingParameter, "MissingParameter", "The request must contain the parameter iops: %s volumes need provisioned IOPS (%d-%d)", s.Type, r.minIOPS, r.maxIOPS)
	case !r.iopsAllowed:
		s.IOPS = 0
	case !iopsGiven:
		s.IOPS = r.defaultIOPS
	}
	if r.iopsAllowed {
		if s.IOPS < r.minIOPS || s.IOPS > r.maxIOPS {
			return s, errdefs.InvalidParameter("InvalidParameterValue", "Value (%d) for parameter iops is invalid. %s volumes take %d to %d IOPS", s.IOPS, s.Type, r.minIOPS, r.maxIOPS)
		}
		// gp3's baseline 3000 is allowed at any size.
		if s.IOPS > r.defaultIOPS && s.IOPS > r.maxIOPSPerGiB*s.SizeGiB {
			return s, errdefs.InvalidParameter("InvalidParameterValue", "Iops to volume size ratio of %.1f is too high; maximum is %d for %s: grow the volume to at least %d GiB or ask for fewer IOPS",
				float64(s.IOPS)/float64(s.SizeGiB), r.maxIOPSPerGiB, s.Type, (s.IOPS+r.maxIOPSPerGiB-1)/r.maxIOPSPerGiB)
		}
	}
	switch {
	case throughputGiven && !r.throughputAllowed:
		return s, errdefs.InvalidParameter("InvalidParameterCombination", "The parameter throughput is only supported for gp3 volumes, not %s", s.Type)
	case !r.throughputAllowed:
		s.Throughput = 0
	case !throughputGiven:
		s.Throughput = r.defaultThroughput
	}
	if r.throughputAllowed {
		if s.Throughput < r.minThroughput || s.Throughput > r.maxThroughput {
			return s, errdefs.InvalidParameter("InvalidParameterValue", "Value (%d) for parameter throughput is invalid. gp3 volumes take %d to %d MiB/s", s.Throughput, r.minThroughput, r.maxThroughput)
		}
		if float64(s.Throughput) > gp3MaxMiBPerIOPS*float64(s.IOPS) {
			return s, errdefs.InvalidParameter("InvalidParameterValue", "Throughput (MiBps) to iops ratio of %.3f is too high; maximum is %.2f MiBps per iops: provision at least %d IOPS for %d MiB/s",
				float64(s.Throughput)/float64(s.IOPS), gp3MaxMiBPerIOPS, int(float64(s.Throughput)/gp3MaxMiBPerIOPS), s.Throughput)
		}
	}
	return s, nil
}

// Throttle is the I/O limit a volume type implies, independent of any
// hypervisor: the integrator maps it onto QEMU's block_set_io_throttle
// (iops-total, iops-total-max, iops-total-max-length, bps-total, …).
// Zero means unlimited.
type Throttle struct {
	// IOPSTotal and BPSTotal are the sustained limits.
	IOPSTotal int64 `json:"iopsTotal,omitempty"`
	BPSTotal  int64 `json:"bpsTotal,omitempty"`
	// IOPSBurst and BPSBurst are the rates allowed for at most
	// BurstSeconds after a quiet period (QEMU's *-max and *-max-length,
	// a leaky bucket like EBS's credit bucket).
	IOPSBurst    int64 `json:"iopsBurst,omitempty"`
	BPSBurst     int64 `json:"bpsBurst,omitempty"`
	BurstSeconds int64 `json:"burstSeconds,omitempty"`
}

// Sustained is t without its burst: the limits a volume whose credits
// are spent gets. A lab that wants fio on a fresh gp2 volume to show the
// baseline (300 IOPS at 100 GiB) rather than AWS's initial 30-minute
// burst applies this.
func (t Throttle) Sustained() Throttle {
	t.IOPSBurst, t.BPSBurst, t.BurstSeconds = 0, 0, 0
	return t
}

const mib = 1 << 20

// gp2Credits is gp2's initial I/O credit balance (5.4 million), enough for
// 3000 IOPS during 30 minutes from a baseline of 0.
const gp2Credits = 5_400_000

// ThrottleFor is the throttle of a volume of spec s, as EBS documents the
// types:
//
//   - gp2: 3 IOPS per GiB, at least 100, at most 16000; volumes with a
//     baseline under 3000 burst to 3000 for as long as the 5.4 million
//     credits last at (3000 - baseline) per second. Throughput up to
//     250 MiB/s.
//   - gp3: the provisioned IOPS and MiB/s (3000 and 125 by default).
//   - io1/io2: the provisioned IOPS; throughput 1000 MiB/s (io1) and
//     4000 MiB/s (io2 Block Express) at most.
//   - st1: 40 MiB/s per TiB baseline, burst 250 MiB/s per TiB, both
//     capped at 500 MiB/s; 500 IOPS (of 1 MiB).
//   - sc1: 12 MiB/s per TiB baseline, burst 80 MiB/s per TiB, capped at
//     250 MiB/s; 250 IOPS.
//   - standard (magnetic): about 100 IOPS on average, bursts to hundreds:
//     labcloud uses 100 IOPS with bursts to 300 for 30 s, and 90 MiB/s.
//
// The burst values make a short benchmark on a fresh gp2 volume see 3000
// IOPS, as on AWS; a sustained one (longer than BurstSeconds) sees the
// baseline.
func ThrottleFor(s Spec) Throttle {
	tib := float64(s.SizeGiB) / 1024
	switch s.Type {
	case GP2:
		base := int64(min(max(3*s.SizeGiB, 100), 16000))
		t := Throttle{IOPSTotal: base, BPSTotal: 250 * mib}
		if base < 3000 {
			t.IOPSBurst, t.BurstSeconds = 3000, gp2Credits/(3000-base)
		}
		return t
	case GP3:
		return Throttle{IOPSTotal: int64(s.IOPS), BPSTotal: int64(s.Throughput) * mib}
	case IO1:
		return Throttle{IOPSTotal: int64(s.IOPS), BPSTotal: 1000 * mib}
	case IO2:
		return Throttle{IOPSTotal: int64(s.IOPS), BPSTotal: 4000 * mib}
	case ST1:
		base := min(int64(40*tib*mib), 500*mib)
		burst := min(int64(250*tib*mib), 500*mib)
		return Throttle{IOPSTotal: 500, BPSTotal: base, BPSBurst: burst, BurstSeconds: 60}
	case SC1:
		base := min(int64(12*tib*mib), 250*mib)
		burst := min(int64(80*tib*mib), 250*mib)
		return Throttle{IOPSTotal: 250, BPSTotal: base, BPSBurst: burst, BurstSeconds: 60}
	case Standard:
		return Throttle{IOPSTotal: 100, IOPSBurst: 300, BurstSeconds: 30, BPSTotal: 90 * mib}
	}
	return Throttle{}
}
