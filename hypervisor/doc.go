// Package hypervisor runs EC2 instances as real virtual machines. It owns
// one small Driver interface (create, start, stop, reset, destroy, status,
// disk and NIC hot-plug, console), the typed Spec a VM is defined from, a
// few optional abilities as separate small interfaces (Pauser,
// DiskThrottler, Reattacher, Lister), and DetectAccel, which decides
// between KVM and TCG on this host.
//
// Drivers live in subfolders: qemu (the default: QMP with go-qemu's types,
// QEMU processes that outlive labcloudd, started inside the VPC's network
// namespace) and libvirt (digitalocean/go-libvirt; it cannot start QEMU in
// a custom namespace, so labcloudd does not use it for VPC instances yet).
// fake is an in-memory driver for other
// packages' unit tests, and hvtest is the conformance suite that the real
// drivers and the fake all pass.
package hypervisor
