// Package instances runs EC2 instances: the operations behind RunInstances,
// DescribeInstances, Stop/Start/Reboot/TerminateInstances, GetConsoleOutput,
// ModifyInstanceAttribute and DescribeInstanceTypes, the instance type
// catalogue, and the controller that turns recorded instances into VMs.
//
// # Spec, status and the controller
//
// Every instance is one JSON object at instances/<account>/<instance-id>
// (reservations at reservations/<account>/<r-id>, ClientToken idempotency
// records at clienttokens/<account>/<hash>). The API-facing methods only
// validate and record: Spec.Desired (running, stopped, terminated) and the
// AWS state the user sees at once (pending, stopping, shutting-down). The
// controller (RunController) watches instances/ and resyncs every
// Options.ResyncInterval; for each instance it looks, then acts, one
// idempotent step after the other, saving each generated name into Status
// before making the thing it names:
//
//	root volume    Status.RootVolumeID → volumes.Create (gp3 overlay of the
//	               image) + AttachRoot at the root device (rootvolume.go);
//	               without Options.Volumes, and for instances from before
//	               root volumes: <StateDir>/instances/<id>/root.qcow2
//	ENI            Network.CreateENI → ENI id, MAC, IP, tap, netns
//	VM             hypervisor Create (re-defined at every start) + Start
//
// Stop stops the VM and keeps everything else; terminate destroys the VM,
// deletes the ENI, releases the volumes (deleting those, root included,
// marked DeleteOnTermination) and removes the instance directory, and after
// Options.TerminatedRetention the record. A VM that stops on its own is
// recorded too: a guest power-off becomes stopped or terminated per
// InstanceInitiatedShutdownBehavior (Client.InstanceInitiatedShutdown),
// a crash becomes stopped with Server.InternalError. A step that fails
// backs off (Options.Backoff, doubling, at most a minute); after
// Options.MaxAttempts a first launch ends terminated and a restart ends
// stopped, both with Server.InternalError naming the failed step.
//
// On start the controller reattaches the driver to every VM that should
// run (hypervisor.Reattacher), so a labcloudd restart neither starts a
// second QEMU nor misses one that died meanwhile.
//
// # Capacity and memory
//
// Instances are placed against the node's vCPUs × VCPUOvercommit (default
// 4) and memory × MemoryOvercommit (default 1.0): InsufficientInstanceCapacity
// beyond it. Each account may have AccountVCPULimit (default 32) vCPUs of
// pending and running instances: VcpuLimitExceeded beyond it. A VM gets its
// type's vCPUs but at most MaxGuestMemoryMiB (default 2048) of RAM, because
// a lab server is small; the API reports the type's real memory. Capacity
// counts the memory VMs really get.
//
// # Elsewhere, and not yet
//
// Security groups are resolved at launch and kept on the ENI, where netfab
// enforces them; termination protection is not implemented. EBS volumes
// attached after launch are reconciled like the rest (volumes.go).
package instances
