// Package blockdev provides EBS volumes and snapshots: one Backend
// interface with a qcow2 backend (the default, qemu-img files under the
// state dir) and an LVM-thin backend, incremental snapshots and per-type
// I/O limits.
package blockdev
