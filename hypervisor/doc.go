// Package hypervisor runs EC2 instances as real virtual machines. It owns
// one small Driver interface (create, start, stop, reset, destroy, status,
// disk and NIC hot-plug, console) and its drivers in subfolders: qemu (QMP
// through digitalocean/go-qemu, QEMU processes that outlive labcloudd) and
// libvirt (digitalocean/go-libvirt).
package hypervisor
