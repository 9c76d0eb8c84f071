// Package blockdev stores EBS volumes and snapshots: one Backend interface
// (its doc comment is the lifecycle contract) with the qcow2 backend
// (blockdev/qcow2, the default: qemu-img files under the state dir,
// incremental snapshot chains, LUKS encryption, a QMP plan for snapshots
// of attached volumes) and the LVM-thin backend (blockdev/lvm). Both pass
// the conformance suite in blockdev/blockdevtest. The records users see
// (vol-…, snap-…, states, types, I/O limits) live in internal/volumes.
package blockdev
