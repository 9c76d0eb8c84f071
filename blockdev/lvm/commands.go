package lvm

import "strconv"

// The LVM command lines, each built by a pure function and unit-tested;
// the backend only runs them. Sizes are always in bytes ("b" suffix) so
// no unit rounding surprises anyone.

func bytesArg(n int64) string { return strconv.FormatInt(n, 10) + "b" }

// createThinArgs makes a thin volume of size bytes in vg's thin pool.
func createThinArgs(vg, pool, lv string, size int64) []string {
	return []string{"lvcreate", "--yes", "--type", "thin", "--virtualsize", bytesArg(size),
		"--thinpool", pool, "--name", lv, vg}
}

// snapshotArgs takes a thin snapshot of origin: it shares every block
// with the origin and stores only what changes afterwards, which is what
// makes thin snapshots incremental and independently deletable. It is
// read-only and not activated (activation skip), like EBS snapshots that
// nothing mounts.
func snapshotArgs(vg, origin, snap string) []string {
	return []string{"lvcreate", "--yes", "--snapshot", "--name", snap, "--setactivationskip", "y",
		"--permission", "r", vg + "/" + origin}
}

// cloneArgs makes a writable, active thin snapshot of a snapshot: a
// volume that shares the snapshot's blocks (near-instant, copy-on-write).
func cloneArgs(vg, snap, lv string) []string {
	return []string{"lvcreate", "--yes", "--snapshot", "--name", lv, "--setactivationskip", "n",
		"--permission", "rw", vg + "/" + snap}
}

// activateArgs activates lv even if it carries the activation-skip flag.
func activateArgs(vg, lv string) []string {
	return []string{"lvchange", "--activate", "y", "--ignoreactivationskip", vg + "/" + lv}
}

// extendArgs grows lv to size bytes.
func extendArgs(vg, lv string, size int64) []string {
	return []string{"lvextend", "--yes", "--size", bytesArg(size), vg + "/" + lv}
}

// removeArgs removes lv.
func removeArgs(vg, lv string) []string {
	return []string{"lvremove", "--yes", vg + "/" + lv}
}

// showArgs reports lv's size in bytes and attributes, one line:
// "SIZE|ATTR".
func showArgs(vg, lv string) []string {
	return []string{"lvs", "--noheadings", "--nosuffix", "--units", "b", "--separator", "|",
		"-o", "lv_size,lv_attr", vg + "/" + lv}
}

// luksFormatArgs writes a LUKS header (QEMU's luks format, readable by
// cryptsetup too) on the device at path, with the passphrase in keyFile.
func luksFormatArgs(path, keyFile string, size int64) []string {
	return []string{"qemu-img", "create", "-q", "--object", "secret,id=sec0,file=" + keyFile + ",format=raw",
		"-f", "luks", "-o", "key-secret=sec0,iter-time=10", path, strconv.FormatInt(size, 10)}
}
