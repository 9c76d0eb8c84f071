package qcow2

import "github.com/labcloud/labcloud/blockdev"

// QMPCommand is one QMP command as the hypervisor's monitor sends it
// (hypervisor/qemu Monitor.Run(ctx, c.Execute, c.Arguments, nil)).
type QMPCommand struct {
	Execute   string         `json:"execute"`
	Arguments map[string]any `json:"arguments,omitempty"`
}

// LiveSnapshotInput names what a snapshot of a volume attached to a
// running QEMU needs.
type LiveSnapshotInput struct {
	// FormatNode is the node name of the volume's qcow2 format node in
	// the VM (hypervisor/qemu names it "fmt-<disk id>").
	FormatNode string
	// RootNode is the top node of the disk's graph, the one the guest's
	// device uses (hypervisor/qemu: "thr-<disk id>", a throttle filter).
	// QEMU runs block jobs on root nodes only.
	RootNode string
	// OverlayPath is a new file next to the volume that takes the guest's
	// writes while the snapshot is copied (Backend.LiveOverlayPath).
	OverlayPath string
	// OverlayNode names the overlay's node (unique in the VM, < 32 chars).
	OverlayNode string
	// JobID names the commit job that merges the overlay back.
	JobID string
	// SecretID is the id of the secret object the VM already holds for
	// an encrypted volume (empty for unencrypted volumes).
	SecretID string
}

// LiveSnapshotPlan is the sequence that makes a crash-consistent snapshot
// of a volume a running VM writes, without changing what the VM's device
// points at once it is done.
//
//  1. Create the overlay file: Backend.CreateLiveOverlay.
//  2. Run Freeze: blockdev-add the overlay, then blockdev-snapshot. QEMU
//     drains in-flight requests and switches the guest's writes to the
//     overlay atomically; the volume file is from then on read-only and
//     holds exactly the state at that instant (what a power cut would
//     have left: crash-consistent).
//  3. Backend.CreateSnapshot as for a detached volume: it reads the frozen
//     volume file with shared locks (qemu-img -U).
//  4. Whether 3 worked or not, run Commit, wait for the BLOCK_JOB_READY
//     event of JobID, run Complete, wait for BLOCK_JOB_COMPLETED: QEMU
//     copies the overlay's writes into the volume and switches the guest
//     back to the volume's node. Then run Cleanup and remove the overlay
//     file.
//
// If labcloudd dies between 2 and 4, the VM keeps running on the overlay;
// after a restart, step 4 must run for every overlay file found (their
// names are Backend.LiveOverlayPath), before the volume is detached.
//
// Why not a dirty bitmap and drive-backup sync=incremental: that copies
// only changed clusters too, but the bitmap lives in QEMU's memory and is
// lost, or marked inconsistent, when QEMU or labcloudd dies at the wrong
// moment, and a lost bitmap silently drops changes from the next snapshot.
// Comparing content (qemu-img rebase) needs no such state: a snapshot is
// correct whatever happened before it.
type LiveSnapshotPlan struct {
	Freeze   []QMPCommand
	Commit   QMPCommand
	Complete QMPCommand
	Cleanup  []QMPCommand
}

// PlanLiveSnapshot builds the QMP commands of a live snapshot.
func PlanLiveSnapshot(in LiveSnapshotInput) LiveSnapshotPlan {
	overlay := map[string]any{
		"driver":    "qcow2",
		"node-name": in.OverlayNode,
		"file":      map[string]any{"driver": "file", "filename": in.OverlayPath},
		// The backing is attached by blockdev-snapshot, not opened from
		// the file's header.
		"backing": nil,
	}
	if in.SecretID != "" {
		overlay["encrypt"] = map[string]any{"format": "luks", "key-secret": in.SecretID}
	}
	return LiveSnapshotPlan{
		Freeze: []QMPCommand{
			{Execute: "blockdev-add", Arguments: overlay},
			{Execute: "blockdev-snapshot", Arguments: map[string]any{"node": in.FormatNode, "overlay": in.OverlayNode}},
		},
		Commit: QMPCommand{Execute: "block-commit", Arguments: map[string]any{
			"job-id": in.JobID, "device": in.RootNode, "top-node": in.OverlayNode, "base-node": in.FormatNode,
			"auto-finalize": true, "auto-dismiss": true,
		}},
		Complete: QMPCommand{Execute: "job-complete", Arguments: map[string]any{"id": in.JobID}},
		Cleanup:  []QMPCommand{{Execute: "blockdev-del", Arguments: map[string]any{"node-name": in.OverlayNode}}},
	}
}

// BlockResize is the QMP command that grows an attached volume to size
// bytes (ModifyVolume on an in-use volume); call Backend.ResizeVolume
// afterwards to record the size. node must be the node the guest's
// device sits on (hypervisor/qemu: the throttle node "thr-<disk id>"): a
// node below a filter grows, but the device is never told.
func BlockResize(node string, size int64) QMPCommand {
	return QMPCommand{Execute: "block_resize", Arguments: map[string]any{"node-name": node, "size": size}}
}

// FormatNodeOptions is the blockdev-add of volume v's qcow2 format node
// named nodeName on top of the file node fileNode (hypervisor/qemu:
// "fmt-<id>" over "file-<id>"), with what an encrypted chain needs: the
// key at the volume and at every encrypted backing layer, each backing
// layer opened explicitly. secretID names a secret object the VM holds,
// made from v.KeyFile (object-add {qom-type: secret, id, file: KeyFile,
// format: raw}, or -object secret,id=…,file=…,format=raw). Unencrypted
// volumes need none of this; QEMU opens their backing files from the
// headers.
func FormatNodeOptions(v blockdev.Volume, nodeName, fileNode, secretID string) map[string]any {
	opts := map[string]any{"driver": "qcow2", "node-name": nodeName, "file": fileNode}
	if !v.Encrypted {
		return opts
	}
	opts["encrypt"] = map[string]any{"format": "luks", "key-secret": secretID}
	parent := opts
	for _, l := range v.Chain {
		layer := map[string]any{"driver": string(l.Format), "read-only": true,
			"file": map[string]any{"driver": "file", "filename": l.Path, "read-only": true}}
		if l.Encrypted {
			layer["encrypt"] = map[string]any{"format": "luks", "key-secret": secretID}
		}
		parent["backing"] = layer
		parent = layer
	}
	return opts
}
