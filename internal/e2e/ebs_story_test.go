package e2e

import (
	"crypto/md5"
	"encoding/hex"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"syscall"
	"testing"
	"time"
)

// The EBS issue's story ("What it must show"), told as the issue tells it,
// with the real aws CLI and two real labcloud-tiny VMs under TCG: a volume
// attached to a running VM, written, snapshotted, changed by 1 % and
// snapshotted again (the second snapshot stores about the change, as
// `labcloud snapshots` shows), a volume from the first snapshot on the
// other VM holding the first content only, the first snapshot deleted and
// a volume from the second still whole, EC2's zone and in-use rules, and
// a terminated instance's root volume (listed, snapshotted live while it
// ran) gone while its extra volume stays.
func TestEBSStory(t *testing.T) {
	lookTool(t, "qemu-img")
	d, e, ami := startVMLab(t)
	cli := filepath.Join(binDir, "labcloud")

	// Two instances of labcloud-tiny with a key pair, in one zone (one
	// run-instances: the default subnet).
	keyPath := e.keyFile("story")
	var launched struct {
		Instances []struct {
			InstanceId string
			Placement  struct{ AvailabilityZone string }
		}
	}
	e.ok(&launched, "labcloud", "ec2", "run-instances", "--image-id", ami, "--instance-type", "t3.nano", "--key-name", "story", "--count", "2")
	if len(launched.Instances) != 2 || launched.Instances[0].Placement.AvailabilityZone != launched.Instances[1].Placement.AvailabilityZone {
		t.Fatalf("run-instances --count 2: %+v", launched.Instances)
	}
	idA, idB := launched.Instances[0].InstanceId, launched.Instances[1].InstanceId
	zone := launched.Instances[0].Placement.AvailabilityZone
	otherZone := "lab-1b"
	if zone == otherZone {
		otherZone = "lab-1a"
	}
	inA := e.waitState(idA, "running", 4*time.Minute)
	inB := e.waitState(idB, "running", 4*time.Minute)
	ns := netPrefix(d.stateDir) + "-" + inA.VpcId
	onA := func(cmd string, within time.Duration) string {
		t.Helper()
		return sshRun(t, ns, keyPath, inA.PrivateIpAddress, cmd, within)
	}
	onB := func(cmd string, within time.Duration) string {
		t.Helper()
		return sshRun(t, ns, keyPath, inB.PrivateIpAddress, cmd, within)
	}
	onA("true", 4*time.Minute)
	onB("true", 4*time.Minute)

	// A 1 GiB volume in the instances' zone, attached to the first: the
	// guest gets a disk whose serial is the volume id.
	const volBytes = 1 << 30
	var v volumeJSON
	e.ok(&v, "labcloud", "ec2", "create-volume", "--availability-zone", zone, "--size", "1")
	e.ok(nil, "labcloud", "ec2", "attach-volume", "--volume-id", v.VolumeId, "--instance-id", idA, "--device", "/dev/sdf")
	e.volumeState(v.VolumeId, "in-use", "attached", time.Minute)
	got := onA(diskOf(v.VolumeId)+`echo disk=$d serial=$(cat /sys/block/$d/serial)`, time.Minute)
	t.Logf("guest A after attach: %s", lastLine(got))
	if !strings.Contains(got, "serial="+strings.ReplaceAll(v.VolumeId, "-", "")) {
		t.Fatalf("guest A has no disk with the volume's serial: %q", got)
	}

	// The first data: 8 MiB of random bytes at offset 0, the first marker
	// in its first sector. Direct I/O, so every byte is in QEMU's file
	// when dd returns, and the sums are of what the disk holds.
	const (
		first   = "LABCLOUD-EBS-FIRST"
		change  = "LABCLOUD-EBS-CHANGE"
		firstMB = 8
		// The 1 % change: 10 MiB from offset 4 MiB, over the first
		// data's second half and 6 MiB past it, the second marker at 4 MiB.
		changeAt, changeMB = 4, 10
	)
	got = onA(diskOf(v.VolumeId)+
		`dd if=/dev/urandom of=/dev/$d bs=1048576 count=8 iflag=fullblock oflag=direct 2>/dev/null || exit 2; `+
		`printf `+first+` | dd of=/dev/$d bs=512 count=1 conv=sync oflag=direct 2>/dev/null || exit 2; `+
		`echo A=$(dd if=/dev/$d bs=1048576 count=8 iflag=direct 2>/dev/null | md5sum | cut -c1-32); `+
		`echo AHEAD=$(dd if=/dev/$d bs=1048576 count=4 iflag=direct 2>/dev/null | md5sum | cut -c1-32)`, time.Minute)
	sumA, sumAHead := sumOf(t, got, "A"), sumOf(t, got, "AHEAD")

	var s1 snapshotJSON
	e.ok(&s1, "labcloud", "ec2", "create-snapshot", "--volume-id", v.VolumeId, "--description", "first data")
	e.ok(nil, "labcloud", "ec2", "wait", "snapshot-completed", "--snapshot-ids", s1.SnapshotId)

	got = onA(diskOf(v.VolumeId)+
		`dd if=/dev/urandom of=/dev/$d bs=1048576 seek=4 count=10 iflag=fullblock oflag=direct 2>/dev/null || exit 2; `+
		`printf `+change+` | dd of=/dev/$d bs=512 seek=8192 count=1 conv=sync oflag=direct 2>/dev/null || exit 2; `+
		`echo B=$(dd if=/dev/$d bs=1048576 skip=4 count=10 iflag=direct 2>/dev/null | md5sum | cut -c1-32)`, time.Minute)
	sumB := sumOf(t, got, "B")

	var s2 snapshotJSON
	e.ok(&s2, "labcloud", "ec2", "create-snapshot", "--volume-id", v.VolumeId, "--description", "after a 1% change")
	e.ok(nil, "labcloud", "ec2", "wait", "snapshot-completed", "--snapshot-ids", s2.SnapshotId)

	// What each snapshot stores, as a user sees it: `labcloud snapshots`
	// (STORED; labcloudStoredBytes on the wire). The second holds about
	// the changed bytes, not the volume.
	table, errOut, code := run(t, nil, cli, "--state-dir", d.stateDir, "snapshots", "--volume-id", v.VolumeId)
	if code != 0 {
		t.Fatalf("labcloud snapshots: %s", errOut)
	}
	t.Logf("labcloud snapshots --volume-id %s:\n%s", v.VolumeId, table)
	stored := storedBytes(t, cli, d)
	sz1, sz2 := stored[s1.SnapshotId], stored[s2.SnapshotId]
	t.Logf("stored: first snapshot %d bytes (%.2f MiB, %d MiB written), second %d bytes (%.2f MiB, %d MiB changed = %.1f %% of the volume); the second is %.2f %% of the volume",
		sz1, mib(sz1), firstMB, sz2, mib(sz2), changeMB, 100*float64(changeMB<<20)/volBytes, 100*float64(sz2)/volBytes)
	// Random data does not compress and qcow2 stores whole 64 KiB
	// clusters: each snapshot holds at least what was written, plus
	// metadata (headers, L1/L2 and refcount tables: well under a MiB for
	// a 1 GiB volume), so twice the data is a generous ceiling; a second
	// snapshot copying the volume, or the first data again, exceeds it.
	if sz1 < firstMB<<20 || sz1 > 2*firstMB<<20 {
		t.Errorf("the first snapshot stores %d bytes; want the %d MiB written plus metadata (under %d MiB)", sz1, firstMB, 2*firstMB)
	}
	if sz2 < changeMB<<20 || sz2 > 2*changeMB<<20 {
		t.Errorf("the second snapshot stores %d bytes; want the %d MiB changed plus metadata (under %d MiB), not the volume (%d MiB) nor the first data again",
			sz2, changeMB, 2*changeMB, volBytes>>20)
	}
	// The figures are the files' real size on the host.
	for id, n := range stored {
		if f := fileBlocks(t, filepath.Join(d.stateDir, "volumes", "snapshots", id+".qcow2")); f != n {
			t.Errorf("labcloud snapshots says %s stores %d bytes; its file takes %d", id, n, f)
		}
	}

	// A volume from the first snapshot, on the second instance: the
	// first content only (the first marker and data, the change absent:
	// the bytes past the first 8 MiB are zeros).
	var r1 volumeJSON
	e.ok(&r1, "labcloud", "ec2", "create-volume", "--availability-zone", zone, "--snapshot-id", s1.SnapshotId)
	e.volumeState(r1.VolumeId, "available", "", time.Minute)
	e.ok(nil, "labcloud", "ec2", "attach-volume", "--volume-id", r1.VolumeId, "--instance-id", idB, "--device", "/dev/sdf")
	e.volumeState(r1.VolumeId, "in-use", "attached", time.Minute)
	got = onB(diskOf(r1.VolumeId)+
		`echo M0=$(dd if=/dev/$d bs=512 count=1 iflag=direct 2>/dev/null | head -c 32 | tr -c 'A-Z-' .); `+
		`echo M4=$(dd if=/dev/$d bs=512 skip=8192 count=1 iflag=direct 2>/dev/null | head -c 32 | tr -c 'A-Z-' .); `+
		`echo A=$(dd if=/dev/$d bs=1048576 count=8 iflag=direct 2>/dev/null | md5sum | cut -c1-32); `+
		`echo Z=$(dd if=/dev/$d bs=1048576 skip=8 count=6 iflag=direct 2>/dev/null | md5sum | cut -c1-32)`, time.Minute)
	t.Logf("guest B, volume from the first snapshot: %s", strings.Join(tagged(got, "M0", "M4"), " "))
	if !strings.HasPrefix(valueOf(got, "M0"), first) {
		t.Errorf("the volume from the first snapshot does not start with %s: %q", first, got)
	}
	if strings.Contains(got, change) {
		t.Errorf("the volume from the first snapshot holds the later change %s: %q", change, got)
	}
	if sumOf(t, got, "A") != sumA {
		t.Errorf("the volume from the first snapshot does not hold the first 8 MiB written (md5 %s, want %s)", sumOf(t, got, "A"), sumA)
	}
	if z := sumOf(t, got, "Z"); z != zerosMD5(changeAt+changeMB-firstMB) {
		t.Errorf("the volume from the first snapshot has data past the first 8 MiB (md5 %s, zeros are %s): the change leaked in", z, zerosMD5(changeAt+changeMB-firstMB))
	}

	// Delete the first snapshot: a volume from the second still holds
	// everything, the first data's part the change kept (only the first
	// snapshot stored it until now) and the change, read in guest B.
	e.ok(nil, "labcloud", "ec2", "delete-snapshot", "--snapshot-id", s1.SnapshotId)
	e.fails("InvalidSnapshot.NotFound", "labcloud", "ec2", "describe-snapshots", "--snapshot-ids", s1.SnapshotId)
	// The first snapshot's data the second still needs (the first 4 MiB)
	// moved into it: it now holds all 14 MiB the volume had, and STORED is
	// still the file's size.
	after := storedBytes(t, cli, d)[s2.SnapshotId]
	t.Logf("after deleting the first snapshot the second stores %d bytes (%.2f MiB, was %.2f MiB)", after, mib(after), mib(sz2))
	if f := fileBlocks(t, filepath.Join(d.stateDir, "volumes", "snapshots", s2.SnapshotId+".qcow2")); after != f {
		t.Errorf("after deleting the first snapshot labcloud snapshots says the second stores %d bytes; its file takes %d", after, f)
	}
	if after < (changeAt+changeMB)<<20 {
		t.Errorf("after deleting the first snapshot the second stores %d bytes; want at least the %d MiB of data the volume held (the first's %d MiB it needs moved in)",
			after, changeAt+changeMB, changeAt)
	}
	var r2 volumeJSON
	e.ok(&r2, "labcloud", "ec2", "create-volume", "--availability-zone", zone, "--snapshot-id", s2.SnapshotId)
	e.volumeState(r2.VolumeId, "available", "", time.Minute)
	e.ok(nil, "labcloud", "ec2", "attach-volume", "--volume-id", r2.VolumeId, "--instance-id", idB, "--device", "/dev/sdg")
	e.volumeState(r2.VolumeId, "in-use", "attached", time.Minute)
	got = onB(diskOf(r2.VolumeId)+
		`echo M0=$(dd if=/dev/$d bs=512 count=1 iflag=direct 2>/dev/null | head -c 32 | tr -c 'A-Z-' .); `+
		`echo M4=$(dd if=/dev/$d bs=512 skip=8192 count=1 iflag=direct 2>/dev/null | head -c 32 | tr -c 'A-Z-' .); `+
		`echo AHEAD=$(dd if=/dev/$d bs=1048576 count=4 iflag=direct 2>/dev/null | md5sum | cut -c1-32); `+
		`echo B=$(dd if=/dev/$d bs=1048576 skip=4 count=10 iflag=direct 2>/dev/null | md5sum | cut -c1-32)`, time.Minute)
	t.Logf("guest B, volume from the second snapshot after deleting the first: %s", strings.Join(tagged(got, "M0", "M4"), " "))
	if !strings.HasPrefix(valueOf(got, "M0"), first) || !strings.HasPrefix(valueOf(got, "M4"), change) {
		t.Errorf("the volume from the second snapshot lacks a marker (want %s at 0, %s at 4 MiB): %q", first, change, got)
	}
	if sumOf(t, got, "AHEAD") != sumAHead {
		t.Errorf("the volume from the second snapshot lost the first data's first 4 MiB with the first snapshot (md5 %s, want %s)", sumOf(t, got, "AHEAD"), sumAHead)
	}
	if sumOf(t, got, "B") != sumB {
		t.Errorf("the volume from the second snapshot does not hold the change (md5 %s, want %s)", sumOf(t, got, "B"), sumB)
	}

	// What EC2 refuses: a volume of another zone, deleting an attached
	// volume.
	var far volumeJSON
	e.ok(&far, "labcloud", "ec2", "create-volume", "--availability-zone", otherZone, "--size", "1")
	e.fails("InvalidVolume.ZoneMismatch", "labcloud", "ec2", "attach-volume", "--volume-id", far.VolumeId, "--instance-id", idA, "--device", "/dev/sdh")
	e.fails("VolumeInUse", "labcloud", "ec2", "delete-volume", "--volume-id", v.VolumeId)

	// Detach: available again, and gone from the guest.
	e.ok(nil, "labcloud", "ec2", "detach-volume", "--volume-id", r1.VolumeId)
	e.volumeState(r1.VolumeId, "available", "", 2*time.Minute)
	onB(`for b in /sys/block/vd*; do [ "$(cat $b/serial 2>/dev/null)" = "`+strings.ReplaceAll(r1.VolumeId, "-", "")+`" ] && exit 1; done; true`, time.Minute)

	// The root disk is an EBS volume too: named by the root block device
	// mapping, in-use at /dev/xvda, gp3, DeleteOnTermination; it cannot
	// be detached, and a snapshot of it is taken while the VM runs.
	var described struct {
		Reservations []struct {
			Instances []struct {
				RootDeviceName      string
				BlockDeviceMappings []struct {
					DeviceName string
					Ebs        struct {
						VolumeId            string
						DeleteOnTermination bool
					}
				}
			}
		}
	}
	e.ok(&described, "labcloud", "ec2", "describe-instances", "--instance-ids", idA)
	var rootVol string
	inst := described.Reservations[0].Instances[0]
	for _, m := range inst.BlockDeviceMappings {
		if m.DeviceName == inst.RootDeviceName {
			rootVol = m.Ebs.VolumeId
		}
	}
	if inst.RootDeviceName != "/dev/xvda" || !strings.HasPrefix(rootVol, "vol-") {
		t.Fatalf("describe-instances root device %q mappings %+v: want /dev/xvda with a VolumeId", inst.RootDeviceName, inst.BlockDeviceMappings)
	}
	rv := e.volumeState(rootVol, "in-use", "attached", time.Minute)
	if a := rv.Attachments[0]; a.Device != "/dev/xvda" || a.InstanceId != idA || !a.DeleteOnTermination {
		t.Errorf("root volume attachment %+v", a)
	}
	var rootInfo struct{ Volumes []volumeJSON }
	e.ok(&rootInfo, "labcloud", "ec2", "describe-volumes", "--volume-ids", rootVol)
	if x := rootInfo.Volumes[0]; x.VolumeType != "gp3" || x.Size < 1 || x.AvailabilityZone != zone {
		t.Errorf("root volume %+v: want gp3 in %s", x, zone)
	}
	e.fails("OperationNotPermitted", "labcloud", "ec2", "detach-volume", "--volume-id", rootVol)
	var rs snapshotJSON
	e.ok(&rs, "labcloud", "ec2", "create-snapshot", "--volume-id", rootVol, "--description", "root of a running instance")
	e.ok(nil, "labcloud", "ec2", "wait", "snapshot-completed", "--snapshot-ids", rs.SnapshotId)
	onA("sync; ls / >/dev/null", time.Minute) // the guest runs on after the live snapshot
	root := filepath.Join(d.stateDir, "volumes", "volumes", rootVol+".qcow2")
	if _, err := os.Stat(root); err != nil {
		t.Fatalf("the running instance's root volume file: %v", err)
	}

	// Terminate the first instance with the volume still attached: its
	// root volume is gone (DeleteOnTermination), the data volume is kept
	// (available, listed), and so is the root's snapshot.
	e.ok(nil, "labcloud", "ec2", "terminate-instances", "--instance-ids", idA)
	e.waitState(idA, "terminated", 3*time.Minute)
	e.fails("InvalidVolume.NotFound", "labcloud", "ec2", "describe-volumes", "--volume-ids", rootVol)
	if _, err := os.Stat(root); !os.IsNotExist(err) {
		t.Errorf("the terminated instance's root volume file %s is still there (%v)", root, err)
	}
	e.ok(nil, "labcloud", "ec2", "delete-snapshot", "--snapshot-id", rs.SnapshotId)
	e.volumeState(v.VolumeId, "available", "", time.Minute)
	var listed struct{ Volumes []volumeJSON }
	e.ok(&listed, "labcloud", "ec2", "describe-volumes")
	ids := map[string]string{}
	for _, x := range listed.Volumes {
		ids[x.VolumeId] = x.State
	}
	t.Logf("describe-volumes after terminating %s: %v", idA, ids)
	if ids[v.VolumeId] != "available" {
		t.Errorf("describe-volumes does not list %s as available after its instance ended: %v", v.VolumeId, ids)
	}
	if got, err := os.Stat(filepath.Join(d.stateDir, "volumes", "volumes", v.VolumeId+".qcow2")); err != nil {
		t.Errorf("the kept volume's file: %v %v", got, err)
	}

	e.ok(nil, "labcloud", "ec2", "terminate-instances", "--instance-ids", idB)
	e.waitState(idB, "terminated", 3*time.Minute)
	for _, id := range []string{v.VolumeId, r1.VolumeId, r2.VolumeId, far.VolumeId} {
		e.volumeState(id, "available", "", time.Minute)
		e.ok(nil, "labcloud", "ec2", "delete-volume", "--volume-id", id)
	}
}

// storedBytes runs `labcloud --output json snapshots` and returns each
// snapshot's StoredBytes.
func storedBytes(t *testing.T, cli string, d *daemon) map[string]int64 {
	t.Helper()
	out, errOut, code := run(t, nil, cli, "--state-dir", d.stateDir, "--output", "json", "snapshots")
	if code != 0 {
		t.Fatalf("labcloud --output json snapshots: %s", errOut)
	}
	var rows []struct {
		SnapshotId  string
		StoredBytes int64
	}
	mustJSON(t, out, &rows)
	m := map[string]int64{}
	for _, r := range rows {
		m[r.SnapshotId] = r.StoredBytes
	}
	return m
}

// fileBlocks is what a file takes on disk (its allocated blocks).
func fileBlocks(t *testing.T, path string) int64 {
	t.Helper()
	var st syscall.Stat_t
	if err := syscall.Stat(path, &st); err != nil {
		t.Fatal(err)
	}
	return st.Blocks * 512
}

func mib(n int64) float64 { return float64(n) / (1 << 20) }

// zerosMD5 is the md5 of n MiB of zeros, in hex.
func zerosMD5(n int) string {
	s := md5.Sum(make([]byte, n<<20))
	return hex.EncodeToString(s[:])
}

// valueOf returns the value of a "KEY=value" line of guest output (ssh's
// warnings come first).
func valueOf(out, key string) string {
	m := regexp.MustCompile(`(?m)^` + key + `=(.*)$`).FindStringSubmatch(out)
	if m == nil {
		return ""
	}
	return strings.TrimSpace(m[1])
}

// sumOf is valueOf for an md5 sum, failing the test when it is not one.
func sumOf(t *testing.T, out, key string) string {
	t.Helper()
	v := valueOf(out, key)
	if !regexp.MustCompile(`^[0-9a-f]{32}$`).MatchString(v) {
		t.Fatalf("no md5 sum %s= in the guest's output: %q", key, out)
	}
	return v
}

// tagged returns the "KEY=value" lines of keys, for the log.
func tagged(out string, keys ...string) []string {
	var l []string
	for _, k := range keys {
		l = append(l, k+"="+valueOf(out, k))
	}
	return l
}

// lastLine is the last non-empty line of ssh output.
func lastLine(out string) string {
	l := strings.Split(strings.TrimSpace(out), "\n")
	return l[len(l)-1]
}
