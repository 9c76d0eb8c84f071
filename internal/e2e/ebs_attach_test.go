package e2e

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"
)

type attachmentJSON struct {
	VolumeId, InstanceId, Device, State string
	DeleteOnTermination                 bool
}

type attachedVolumeJSON struct {
	VolumeId, State string
	Attachments     []attachmentJSON
}

// volumeState polls describe-volumes until the volume is state (and its
// attachment attach, when given).
func (e *awsEnv) volumeState(id, state, attach string, within time.Duration) attachedVolumeJSON {
	e.t.Helper()
	deadline := time.Now().Add(within)
	for {
		var out struct{ Volumes []attachedVolumeJSON }
		e.ok(&out, "labcloud", "ec2", "describe-volumes", "--volume-ids", id)
		v := out.Volumes[0]
		if v.State == state && (attach == "" || len(v.Attachments) == 1 && v.Attachments[0].State == attach) {
			return v
		}
		if time.Now().After(deadline) {
			e.t.Fatalf("volume %s is %s %+v after %v, want %s %s\n%s", id, v.State, v.Attachments, within, state, attach, e.d.log())
		}
		time.Sleep(500 * time.Millisecond)
	}
}

// diskOf is a guest shell snippet printing the name (vdb, …) of the
// virtio disk whose serial is the volume id without its dash, failing
// while there is none.
func diskOf(volID string) string {
	return fmt.Sprintf(`d=""; for b in /sys/block/vd*; do [ "$(cat $b/serial 2>/dev/null)" = "%s" ] && d=${b##*/}; done; [ -n "$d" ] || exit 1; `,
		strings.ReplaceAll(volID, "-", ""))
}

// The EBS issue's attach story with the real aws CLI and a real VM under
// TCG: a volume attached to a running instance appears in the guest as a
// virtio disk whose serial is the volume id, keeps its data across a
// detach and a second attach, the zone and in-use rules hold, a gp2
// volume's baseline IOPS are what dd measures, and terminating the
// instance leaves its extra volume available (or deletes it when
// DeleteOnTermination says so).
func TestEBSAttachToARunningVM(t *testing.T) {
	lookTool(t, "qemu-img")
	d, e, ami := startVMLab(t)

	keyPath := e.keyFile("ebs")
	var launched struct {
		Instances []struct {
			InstanceId string
			Placement  struct{ AvailabilityZone string }
		}
	}
	e.ok(&launched, "labcloud", "ec2", "run-instances", "--image-id", ami, "--instance-type", "t3.micro", "--key-name", "ebs")
	id, zone := launched.Instances[0].InstanceId, launched.Instances[0].Placement.AvailabilityZone
	otherZone := "lab-1b"
	if zone == otherZone {
		otherZone = "lab-1a"
	}
	in := e.waitState(id, "running", 3*time.Minute)
	ns := netPrefix(d.stateDir) + "-" + in.VpcId
	ssh := func(cmd string, within time.Duration) string {
		t.Helper()
		return sshRun(t, ns, keyPath, in.PrivateIpAddress, cmd, within)
	}
	ssh("true", 3*time.Minute)

	// Attach: attaching at once, then in-use/attached, and the guest has
	// a new virtio disk with the volume's serial.
	var v volumeJSON
	e.ok(&v, "labcloud", "ec2", "create-volume", "--availability-zone", zone, "--size", "1")
	var att attachmentJSON
	e.ok(&att, "labcloud", "ec2", "attach-volume", "--volume-id", v.VolumeId, "--instance-id", id, "--device", "/dev/sdf")
	if att.State != "attaching" || att.Device != "/dev/sdf" || att.InstanceId != id {
		t.Fatalf("attach-volume: %+v", att)
	}
	e.volumeState(v.VolumeId, "in-use", "attached", time.Minute)
	serial := strings.ReplaceAll(v.VolumeId, "-", "")
	got := ssh(diskOf(v.VolumeId)+`echo $d; cat /sys/block/$d/serial; ls /sys/block`, time.Minute)
	t.Logf("guest after attach: %q", got)
	if !strings.Contains(got, "vdb") || !strings.Contains(got, serial) {
		t.Fatalf("the guest does not show vdb with serial %s: %q", serial, got)
	}
	var di struct {
		Reservations []struct {
			Instances []struct {
				BlockDeviceMappings []struct {
					DeviceName string
					Ebs        struct {
						VolumeId, Status    string
						DeleteOnTermination bool
					}
				}
			}
		}
	}
	e.ok(&di, "labcloud", "ec2", "describe-instances", "--instance-ids", id)
	found := false
	for _, m := range di.Reservations[0].Instances[0].BlockDeviceMappings {
		if m.DeviceName == "/dev/sdf" && m.Ebs.VolumeId == v.VolumeId && m.Ebs.Status == "attached" && !m.Ebs.DeleteOnTermination {
			found = true
		}
	}
	if !found {
		t.Errorf("describe-instances block devices: %+v", di.Reservations[0].Instances[0].BlockDeviceMappings)
	}

	// Write, detach, attach again (another device name): the data is
	// still there.
	ssh(diskOf(v.VolumeId)+`echo labcloud-ebs-data | dd of=/dev/$d bs=512 count=1 conv=sync 2>/dev/null && sync`, time.Minute)
	e.ok(&att, "labcloud", "ec2", "detach-volume", "--volume-id", v.VolumeId)
	if att.State != "detaching" {
		t.Fatalf("detach-volume: %+v", att)
	}
	e.volumeState(v.VolumeId, "available", "", 2*time.Minute)
	ssh(`for b in /sys/block/vd*; do [ "$(cat $b/serial 2>/dev/null)" = "`+serial+`" ] && exit 1; done; true`, time.Minute)
	e.ok(&att, "labcloud", "ec2", "attach-volume", "--volume-id", v.VolumeId, "--instance-id", id, "--device", "/dev/sdg")
	e.volumeState(v.VolumeId, "in-use", "attached", time.Minute)
	if got := ssh(diskOf(v.VolumeId)+`dd if=/dev/$d bs=512 count=1 2>/dev/null | head -c 17`, time.Minute); !strings.Contains(got, "labcloud-ebs-data") {
		t.Fatalf("after detach and attach the volume holds %q", got)
	}

	// A snapshot of the volume while the running guest has it: QEMU's
	// live-snapshot sequence freezes the file, and a volume made from the
	// snapshot holds what the guest wrote.
	var sn snapshotJSON
	e.ok(&sn, "labcloud", "ec2", "create-snapshot", "--volume-id", v.VolumeId, "--description", "live")
	e.ok(nil, "labcloud", "ec2", "wait", "snapshot-completed", "--snapshot-ids", sn.SnapshotId)
	var restored volumeJSON
	e.ok(&restored, "labcloud", "ec2", "create-volume", "--availability-zone", zone, "--snapshot-id", sn.SnapshotId)
	first := filepath.Join(t.TempDir(), "first.raw")
	if out, err := exec.Command("qemu-img", "dd", "-f", "qcow2", "-O", "raw", "bs=512", "count=1",
		"if="+filepath.Join(d.stateDir, "volumes", "volumes", restored.VolumeId+".qcow2"), "of="+first).CombinedOutput(); err != nil {
		t.Fatalf("reading the restored volume: %v: %s", err, out)
	}
	if b, _ := os.ReadFile(first); !strings.HasPrefix(string(b), "labcloud-ebs-data") {
		t.Fatalf("the volume from the live snapshot starts with %q", b[:min(len(b), 32)])
	}
	if got := ssh(diskOf(v.VolumeId)+`dd if=/dev/$d bs=512 count=1 2>/dev/null | head -c 17`, time.Minute); !strings.Contains(got, "labcloud-ebs-data") {
		t.Fatalf("after the live snapshot the guest reads %q", got)
	}
	e.ok(nil, "labcloud", "ec2", "delete-volume", "--volume-id", restored.VolumeId)

	// An encrypted volume: QEMU reads the key from the block store's key
	// file, the guest sees plain data, the file on the host holds none.
	var enc volumeJSON
	e.ok(&enc, "labcloud", "ec2", "create-volume", "--availability-zone", zone, "--size", "1", "--encrypted")
	e.ok(nil, "labcloud", "ec2", "attach-volume", "--volume-id", enc.VolumeId, "--instance-id", id, "--device", "/dev/sdi")
	e.volumeState(enc.VolumeId, "in-use", "attached", time.Minute)
	if got := ssh(diskOf(enc.VolumeId)+`echo labcloud-secret-data | dd of=/dev/$d bs=512 count=1 conv=sync 2>/dev/null && sync && dd if=/dev/$d bs=512 count=1 2>/dev/null | head -c 20`, time.Minute); !strings.Contains(got, "labcloud-secret-data") {
		t.Fatalf("the guest reads %q from the encrypted volume", got)
	}
	if raw, err := os.ReadFile(filepath.Join(d.stateDir, "volumes", "volumes", enc.VolumeId+".qcow2")); err != nil || strings.Contains(string(raw), "labcloud-secret-data") {
		t.Fatalf("the encrypted volume's file holds the plain text (or cannot be read: %v)", err)
	}
	e.ok(nil, "labcloud", "ec2", "detach-volume", "--volume-id", enc.VolumeId)
	e.volumeState(enc.VolumeId, "available", "", 2*time.Minute)
	e.ok(nil, "labcloud", "ec2", "delete-volume", "--volume-id", enc.VolumeId)

	// What EC2 refuses.
	var far volumeJSON
	e.ok(&far, "labcloud", "ec2", "create-volume", "--availability-zone", otherZone, "--size", "1")
	e.fails("InvalidVolume.ZoneMismatch", "labcloud", "ec2", "attach-volume", "--volume-id", far.VolumeId, "--instance-id", id, "--device", "/dev/sdh")
	e.fails("VolumeInUse", "labcloud", "ec2", "delete-volume", "--volume-id", v.VolumeId)
	e.fails("VolumeInUse", "labcloud", "ec2", "attach-volume", "--volume-id", v.VolumeId, "--instance-id", id, "--device", "/dev/sdh")
	e.ok(nil, "labcloud", "ec2", "delete-volume", "--volume-id", far.VolumeId)

	// gp2 at 100 GiB: 300 IOPS baseline. 4 KiB direct writes, one at a
	// time, take about count/300 s in the guest.
	var big volumeJSON
	e.ok(&big, "labcloud", "ec2", "create-volume", "--availability-zone", zone, "--size", "100", "--volume-type", "gp2")
	if big.Iops != 300 {
		t.Errorf("gp2 100 GiB reports %d IOPS, want 300", big.Iops)
	}
	e.ok(nil, "labcloud", "ec2", "attach-volume", "--volume-id", big.VolumeId, "--instance-id", id, "--device", "/dev/sdh")
	e.volumeState(big.VolumeId, "in-use", "attached", time.Minute)
	const n = 600
	got = ssh(diskOf(big.VolumeId)+fmt.Sprintf(`a=$(cut -d' ' -f1 /proc/uptime); dd if=/dev/zero of=/dev/$d bs=4k count=%d oflag=direct 2>/dev/null; b=$(cut -d' ' -f1 /proc/uptime); echo $a $b`, n), time.Minute)
	lines := strings.Split(strings.TrimSpace(got), "\n") // ssh's known-hosts warning comes first
	f := strings.Fields(lines[len(lines)-1])
	if len(f) != 2 {
		t.Fatalf("timing dd: %q", got)
	}
	a, _ := strconv.ParseFloat(f[0], 64)
	b, _ := strconv.ParseFloat(f[1], 64)
	iops := float64(n) / (b - a)
	t.Logf("dd of %d 4 KiB direct writes on gp2 100 GiB: %.2f s, %.0f IOPS (baseline 300)", n, b-a, iops)
	if iops > 300*1.3 {
		t.Errorf("%.0f IOPS on a 300-IOPS gp2 volume: the throttle does not hold", iops)
	}
	if iops < 300*0.7 {
		t.Logf("below 70%% of the baseline: this host (TCG) is slower than the throttle")
	}

	// Terminate: the extra volume is released and kept; the one marked
	// DeleteOnTermination goes.
	e.ok(nil, "labcloud", "ec2", "modify-instance-attribute", "--instance-id", id, "--block-device-mappings",
		`[{"DeviceName":"/dev/sdh","Ebs":{"DeleteOnTermination":true}}]`)
	e.ok(nil, "labcloud", "ec2", "terminate-instances", "--instance-ids", id)
	e.waitState(id, "terminated", 3*time.Minute)
	e.volumeState(v.VolumeId, "available", "", time.Minute)
	e.fails("InvalidVolume.NotFound", "labcloud", "ec2", "describe-volumes", "--volume-ids", big.VolumeId)
	e.ok(nil, "labcloud", "ec2", "delete-volume", "--volume-id", v.VolumeId)
}
