package qemu

import (
	"context"
	"fmt"
	"slices"
	"time"

	"github.com/labcloud/labcloud/hypervisor"
	"github.com/labcloud/labcloud/internal/errdefs"
)

// forceDetachWait is how long a forced detach lets the guest release the
// device the ordinary way before cutting the disk from under it.
const forceDetachWait = 2 * time.Second

func nullNode(id string) string { return "null-" + id }

// ForceDetachDisk detaches a disk even when the guest does not release
// it (hypervisor.DiskForceDetacher). QEMU cannot remove a PCI device
// without the guest, but it can take the storage away: the device's
// throttle node is reopened onto a null node, and the format and file
// nodes are deleted, which closes the volume's file and drops its lock.
// The guest's device stays (reading nothing of the volume, its writes
// discarded) until the guest answers the unplug request or the VM stops;
// its leftover nodes are removed then, or when the same disk is attached
// again.
func (d *Driver) ForceDetachDisk(ctx context.Context, id, diskID string) error {
	return d.change(ctx, id, func(spec *hypervisor.Spec, mon *Monitor) error {
		i := slices.IndexFunc(spec.Disks, func(dk hypervisor.Disk) bool { return dk.ID == diskID })
		if i < 0 {
			return errdefs.NotFound("", "VM %s has no disk %s", id, diskID)
		}
		if mon != nil {
			err := d.unplugWithin(ctx, mon, id, diskDeviceID(diskID), forceDetachWait)
			switch {
			case err == nil:
				d.dropDiskNodes(ctx, mon, id, spec.Disks[i])
			case errdefs.Is(err, errdefs.ClassConflict):
				if err := cutDisk(ctx, mon, spec.Disks[i]); err != nil {
					return fmt.Errorf("force-detaching disk %s of VM %s: %w", diskID, id, err)
				}
				d.log.Warn("the guest did not release a disk: its storage was cut from under it", "vm", id, "disk", diskID)
			default:
				return err
			}
		}
		spec.Disks = slices.Delete(spec.Disks, i, i+1)
		return nil
	})
}

// cutDisk swaps a disk's storage for a null node under the guest's
// device and closes the disk's file.
func cutDisk(ctx context.Context, mon *Monitor, disk hypervisor.Disk) error {
	nodes, err := namedNodes(ctx, mon)
	if err != nil {
		return err
	}
	var size int64 = -1
	for _, n := range nodes {
		if n.NodeName == formatNode(disk.ID) {
			size = n.Image.VirtualSize
		}
	}
	if size < 0 {
		return errdefs.NotFound("", "disk %s has no format node %s in QEMU", disk.ID, formatNode(disk.ID))
	}
	// The same size: the guest sees no capacity change.
	if err := mon.BlockdevAdd(ctx, map[string]any{"driver": "null-co", "node-name": nullNode(disk.ID), "size": size}); err != nil {
		return err
	}
	// blockdev-reopen resets every option it is not given: all of the
	// throttle node's are repeated.
	reopen := map[string]any{"options": []any{map[string]any{"driver": "throttle", "node-name": throttleNode(disk.ID),
		"throttle-group": throttleGroup(disk.ID), "file": nullNode(disk.ID), "read-only": disk.ReadOnly}}}
	if err := mon.Run(ctx, "blockdev-reopen", reopen, nil); err != nil {
		_ = mon.BlockdevDel(context.WithoutCancel(ctx), nullNode(disk.ID))
		return err
	}
	for _, n := range []string{formatNode(disk.ID), fileNode(disk.ID)} {
		if err := mon.BlockdevDel(ctx, n); err != nil && !isNotFound(err) {
			return err
		}
	}
	if disk.KeyFile != "" {
		if err := mon.ObjectDel(ctx, secretID(disk.ID)); err != nil && !isNotFound(err) {
			return err
		}
	}
	return nil
}

// dropCutDisk removes what a forced detach of disk diskID left in QEMU
// (its throttle node over a null node, its throttle group), so the disk
// can be attached again. A guest that still holds the old device blocks
// that: Conflict.
func (d *Driver) dropCutDisk(ctx context.Context, mon *Monitor, vmID, diskID string) error {
	nodes, err := namedNodes(ctx, mon)
	if err != nil {
		return err
	}
	if !slices.ContainsFunc(nodes, func(n namedNode) bool { return n.NodeName == nullNode(diskID) }) {
		return nil
	}
	if err := mon.BlockdevDel(ctx, throttleNode(diskID)); err != nil && !isNotFound(err) {
		return errdefs.Wrap(errdefs.ClassConflict, "IncorrectState", err, "the guest of VM %s has not yet released the device of disk %s, which was detached by force; wait for it, or stop the VM, then attach again", vmID, diskID)
	}
	for _, f := range []func() error{
		func() error { return mon.BlockdevDel(ctx, nullNode(diskID)) },
		func() error { return mon.ObjectDel(ctx, throttleGroup(diskID)) },
	} {
		if err := f(); err != nil && !isNotFound(err) {
			return err
		}
	}
	return nil
}

// namedNode is one answer of query-named-block-nodes.
type namedNode struct {
	NodeName string `json:"node-name"`
	Image    struct {
		VirtualSize int64 `json:"virtual-size"`
	} `json:"image"`
}

func namedNodes(ctx context.Context, mon *Monitor) ([]namedNode, error) {
	var nodes []namedNode
	err := mon.Run(ctx, "query-named-block-nodes", map[string]any{"flat": true}, &nodes)
	return nodes, err
}
