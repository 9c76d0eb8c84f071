package daemon

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"strings"
	"sync"
	"time"

	"github.com/labcloud/labcloud/blockdev/qcow2"
	"github.com/labcloud/labcloud/hypervisor/qemu"
	"github.com/labcloud/labcloud/internal/errdefs"
	"github.com/labcloud/labcloud/internal/volumes"

	"github.com/labcloud/labcloud/iamd"
	"github.com/labcloud/labcloud/imagestore"
	"github.com/labcloud/labcloud/internal/instances"
	"github.com/labcloud/labcloud/internal/keypairs"
	"github.com/labcloud/labcloud/netfab"
)

// The instance layer names what it needs from the fabric, the image
// catalogue and the key pairs as small interfaces of its own; these
// adapters are the only place that knows both sides.

type networkAdapter struct{ f *netfab.Fabric }

func (n networkAdapter) EnsureDefaultVPC(ctx context.Context, accountID string) (instances.VPC, error) {
	v, err := n.f.EnsureDefaultVPC(ctx, accountID)
	if err != nil {
		return instances.VPC{}, err
	}
	out := instances.VPC{ID: v.ID}
	for _, s := range v.Subnets {
		out.Subnets = append(out.Subnets, instances.Subnet{ID: s.ID, AvailabilityZone: s.AvailabilityZone, CIDR: s.CIDR, DefaultForAz: s.DefaultForAz})
	}
	return out, nil
}

func (n networkAdapter) CreateENI(ctx context.Context, accountID, subnetID, instanceID string) (instances.ENI, error) {
	e, err := n.f.CreateENI(ctx, netfab.ENIRequest{AccountID: accountID, SubnetID: subnetID, InstanceID: instanceID,
		Description: "Primary network interface of " + instanceID})
	if err != nil {
		return instances.ENI{}, err
	}
	return instances.ENI{ID: e.ID, MAC: e.MAC, PrivateIP: e.PrivateIP, Tap: e.Tap, NetNSPath: e.NetNSPath, SubnetID: e.SubnetID, VPCID: e.VPCID}, nil
}

// CreateInstanceENI makes an instance's ENI with its security groups and
// public-IP choice (instances.InterfaceMaker).
func (n networkAdapter) CreateInstanceENI(ctx context.Context, r instances.ENIRequest) (instances.ENI, error) {
	e, err := n.f.CreateENI(ctx, netfab.ENIRequest{AccountID: r.AccountID, SubnetID: r.SubnetID, InstanceID: r.InstanceID,
		Description: "Primary network interface of " + r.InstanceID, Groups: r.Groups, AssociatePublicIP: r.AssociatePublicIP})
	if err != nil {
		return instances.ENI{}, err
	}
	return instances.ENI{ID: e.ID, MAC: e.MAC, PrivateIP: e.PrivateIP, Tap: e.Tap, NetNSPath: e.NetNSPath, SubnetID: e.SubnetID, VPCID: e.VPCID}, nil
}

// ResolveGroups checks a launch's security groups (instances.GroupResolver):
// IDs must be groups of the subnet's VPC; names (SecurityGroup.N) are
// looked up in the account's default VPC, as EC2 does.
func (n networkAdapter) ResolveGroups(ctx context.Context, acct, vpcID string, ids, names []string) ([]string, error) {
	all := append([]string(nil), ids...)
	for _, name := range names {
		g, err := n.f.SecurityGroup(ctx, acct, "", name)
		if err != nil {
			return nil, err
		}
		all = append(all, g.ID)
	}
	return n.f.ValidateGroups(ctx, acct, vpcID, all)
}

// FindSubnet resolves a subnet of any VPC (instances.SubnetFinder).
func (n networkAdapter) FindSubnet(ctx context.Context, acct, subnetID string) (instances.Subnet, string, error) {
	sn, err := n.f.Subnet(ctx, acct, subnetID)
	if err != nil {
		return instances.Subnet{}, "", err
	}
	return instances.Subnet{ID: sn.ID, AvailabilityZone: sn.AvailabilityZone, CIDR: sn.CIDR, DefaultForAz: sn.DefaultForAz}, sn.VPCID, nil
}

// ReleasePublicIP and AssignPublicIP: a stopped instance gives its
// public IP back to the pool and gets a new one when it starts
// (instances.PublicIPs).
func (n networkAdapter) ReleasePublicIP(ctx context.Context, acct, eniID string) (bool, error) {
	had, err := n.f.AutoPublicIP(ctx, acct, eniID)
	if err != nil || had == "" {
		return false, err
	}
	return true, n.f.ReleasePublicIP(ctx, acct, eniID)
}

func (n networkAdapter) AssignPublicIP(ctx context.Context, acct, eniID string) error {
	_, err := n.f.AssignPublicIP(ctx, acct, eniID)
	return err
}

func (n networkAdapter) DeleteENI(ctx context.Context, accountID, eniID string) error {
	return n.f.DeleteENI(ctx, accountID, eniID)
}

type imagesAdapter struct{ c *imagestore.Catalogue }

func (a imagesAdapter) Get(ctx context.Context, caller, amiID string) (instances.Image, error) {
	im, err := a.c.Get(ctx, caller, amiID)
	if err != nil {
		return instances.Image{}, err
	}
	return instances.Image{ID: im.ID, Name: im.Name, Architecture: im.Architecture, RootDeviceName: im.RootDeviceName,
		RootSizeGiB: im.RootVolumeSize(), Disk: im.Disk, Kernel: im.Kernel, Initrd: im.Initrd, KernelCmdline: im.KernelCmdline}, nil
}

type keyPairsAdapter struct{ k *keypairs.KeyPairs }

func (a keyPairsAdapter) Get(ctx context.Context, accountID, name string) (instances.KeyPair, error) {
	kp, err := a.k.Get(ctx, accountID, name)
	if err != nil {
		return instances.KeyPair{}, err
	}
	return instances.KeyPair{Name: kp.Name, PublicKey: kp.PublicKey}, nil
}

// metadataAdapter answers the metadata service from the instance layer.
// The fabric is built before the instances service (which needs it), so
// the service is set afterwards.
type metadataAdapter struct {
	mu  sync.RWMutex
	svc *instances.Service
	// roles issues the role credentials of instances with a profile
	// (nil: iam/ lists no credentials).
	roles *iamd.InstanceRoles
	log   *slog.Logger
	// fabric (nil in tests without one) gives the interface's current
	// public address and group names.
	fabric *netfab.Fabric
}

func (m *metadataAdapter) set(svc *instances.Service, fabric *netfab.Fabric) {
	m.mu.Lock()
	m.svc, m.fabric = svc, fabric
	m.mu.Unlock()
}

func (m *metadataAdapter) Lookup(ctx context.Context, vpcID, ip string) (netfab.Metadata, bool) {
	m.mu.RLock()
	svc, fabric := m.svc, m.fabric
	m.mu.RUnlock()
	if svc == nil {
		return netfab.Metadata{}, false
	}
	md, ok := svc.Lookup(ctx, vpcID, ip)
	if ok && fabric != nil && md.ENIID != "" {
		// The interface's current public address and group names: an
		// Elastic IP or ModifyInstanceAttribute changes them after launch.
		if info, err := fabric.InterfaceInfo(ctx, md.AccountID, md.ENIID); err == nil {
			md.PublicIPv4 = info.PublicIP
			if len(info.Groups) > 0 {
				md.SecurityGroups = nil
				for _, g := range info.Groups {
					md.SecurityGroups = append(md.SecurityGroups, g.Name)
				}
			}
		}
	}
	return netfab.Metadata(md), ok
}

// InstanceCredentials implements netfab.CredentialSource: the role
// credentials of the instance's profile, issued or rotated by iamd. A
// role whose trust policy no longer lets EC2 assume it is reported the
// way EC2 does (Code AssumeRoleUnauthorizedAccess).
func (m *metadataAdapter) InstanceCredentials(ctx context.Context, md netfab.Metadata) (netfab.InstanceCredentials, bool) {
	if m.roles == nil || md.IAMInstanceProfileARN == "" {
		return netfab.InstanceCredentials{}, false
	}
	c, err := m.roles.Credentials(ctx, iamd.InstanceRequest{
		AccountID: md.AccountID, Region: md.Region, InstanceID: md.InstanceID, ProfileARN: md.IAMInstanceProfileARN,
		AssociationID: md.IAMAssociationID, VPCID: md.VPCID, PrivateIP: md.LocalIPv4,
	})
	switch {
	case errors.Is(err, iamd.ErrEC2CannotAssume):
		return netfab.InstanceCredentials{Code: "AssumeRoleUnauthorizedAccess", Message: err.Error(), RoleName: c.RoleName}, true
	case err != nil:
		if !errors.Is(err, iamd.ErrNoInstanceRole) && m.log != nil {
			m.log.Warn("instance credentials", "instance", md.InstanceID, "profile", md.IAMInstanceProfileARN, "err", err)
		}
		return netfab.InstanceCredentials{}, false
	}
	return netfab.InstanceCredentials{Code: "Success", RoleName: c.RoleName, AccessKeyID: c.Session.AccessKeyID,
		SecretAccessKey: c.Session.SecretAccessKey, Token: c.Session.SessionToken,
		Expiration: c.Session.Expiration, LastUpdated: c.LastUpdated}, true
}

// liveVolumes is the volume service's view of attached volumes
// (volumes.Attached) in labcloudd: the instance layer's hooks (I/O
// limits, growing a disk), and snapshots of a volume a running VM writes
// through QEMU's live-snapshot sequence (qcow2.PlanLiveSnapshot), which
// needs both the QEMU driver and the qcow2 block store, known together
// only here.
type liveVolumes struct {
	volumes.Attached
	drv *qemu.Driver
	be  *qcow2.Backend
	log *slog.Logger
}

// liveSnapshotWait bounds each wait for QEMU's block-commit job.
const liveSnapshotWait = 10 * time.Minute

// Snapshot freezes the volume's file for the VM (its writes go to an
// overlay meanwhile), lets take copy it, and merges the overlay back,
// whether take worked or not. A VM that is not running needs none of
// this: the instance layer's hook takes the snapshot directly.
//
// If labcloudd dies between the freeze and the merge, the VM keeps
// running on the overlay; settleLiveOverlays finishes the merge at the
// next start. The overlay file is removed only once QEMU has merged it:
// until then it holds guest writes that exist nowhere else.
func (l liveVolumes) Snapshot(ctx context.Context, v volumes.Volume, take func(context.Context) error) error {
	if len(v.Attachments) == 0 || l.drv == nil || l.be == nil {
		return l.Attached.Snapshot(ctx, v, take)
	}
	mon, err := l.drv.Monitor(ctx, v.Attachments[0].InstanceID)
	if errdefs.Is(err, errdefs.ClassConflict) || errdefs.Is(err, errdefs.ClassNotFound) {
		return l.Attached.Snapshot(ctx, v, take) // not running: nothing writes the file
	}
	if err != nil {
		return err
	}
	overlay, err := l.be.CreateLiveOverlay(ctx, v.ID)
	if err != nil {
		return fmt.Errorf("creating the overlay of a live snapshot: %w", err)
	}
	plan := livePlan(v.ID, overlay, v.Encrypted)
	for i, c := range plan.Freeze {
		if err := mon.Run(ctx, c.Execute, c.Arguments, nil); err != nil {
			if i > 0 {
				l.cleanup(mon, plan)
			}
			// blockdev-snapshot did not switch the guest over: the
			// overlay holds nothing.
			os.Remove(overlay)
			return fmt.Errorf("freezing %s for a live snapshot (%s): %w", v.ID, c.Execute, err)
		}
	}
	takeErr := take(ctx)
	// The merge runs whatever happened, and even when ctx ends: the VM
	// must not stay on the overlay.
	if err := l.merge(context.WithoutCancel(ctx), mon, v.ID, plan); err != nil {
		return errors.Join(takeErr, err)
	}
	os.Remove(overlay)
	return takeErr
}

// livePlan is the live-snapshot sequence of volume id, with node names as
// hypervisor/qemu names a disk's nodes.
func livePlan(id, overlay string, encrypted bool) qcow2.LiveSnapshotPlan {
	in := qcow2.LiveSnapshotInput{FormatNode: "fmt-" + id, RootNode: "thr-" + id,
		OverlayPath: overlay, OverlayNode: liveOverlayNodePrefix + id, JobID: "commit-" + id}
	if encrypted {
		in.SecretID = "sec-" + id // the secret object hypervisor/qemu made for the disk
	}
	return qcow2.PlanLiveSnapshot(in)
}

// liveOverlayNodePrefix starts the node name of a live-snapshot overlay;
// the volume id follows.
const liveOverlayNodePrefix = "snapov-"

// merge runs step 4 of the live-snapshot sequence: QEMU copies the
// overlay's writes into the volume and switches the guest back to it.
func (l liveVolumes) merge(ctx context.Context, mon *qemu.Monitor, id string, plan qcow2.LiveSnapshotPlan) error {
	mctx, cancel := context.WithTimeout(ctx, liveSnapshotWait)
	defer cancel()
	events, unsub := mon.Subscribe()
	defer unsub()
	job := func(e qemu.Event, name string) bool {
		jid, _ := e.Data["device"].(string)
		return e.Event == name && jid == plan.Commit.Arguments["job-id"]
	}
	if err := mon.Run(mctx, plan.Commit.Execute, plan.Commit.Arguments, nil); err != nil {
		return fmt.Errorf("merging the live-snapshot overlay of %s back (block-commit): %w", id, err)
	}
	if _, err := qemu.WaitEvent(mctx, events, func(e qemu.Event) bool { return job(e, "BLOCK_JOB_READY") }); err != nil {
		return fmt.Errorf("waiting for the merge of %s: %w", id, err)
	}
	if err := mon.Run(mctx, plan.Complete.Execute, plan.Complete.Arguments, nil); err != nil {
		return fmt.Errorf("completing the merge of %s: %w", id, err)
	}
	if _, err := qemu.WaitEvent(mctx, events, func(e qemu.Event) bool { return job(e, "BLOCK_JOB_COMPLETED") }); err != nil {
		return fmt.Errorf("waiting for the merge of %s to complete: %w", id, err)
	}
	l.cleanup(mon, plan)
	return nil
}

// settleLiveOverlays finishes the live snapshots a labcloudd crash cut
// short between the freeze and the merge. Run at start-up, before the
// instance controller starts any VM:
//   - a running VM still on an overlay: QEMU merges it now, as the
//     snapshot would have;
//   - an overlay no running VM holds (the VM stopped or died since): its
//     writes are committed into the volume file on disk before the VM
//     opens the volume again.
//
// An overlay that cannot be merged stays (CreateLiveOverlay then refuses
// a new live snapshot of that volume) and is logged: it holds guest
// writes that exist nowhere else.
func (l liveVolumes) settleLiveOverlays(ctx context.Context) {
	if l.drv == nil || l.be == nil {
		return
	}
	ids, err := l.be.LiveOverlays()
	if err != nil || len(ids) == 0 {
		return
	}
	pending := map[string]bool{}
	for _, id := range ids {
		pending[id] = true
	}
	vms, _ := l.drv.List(ctx)
	for _, vm := range vms {
		mon, err := l.drv.Monitor(ctx, vm)
		if err != nil {
			continue // not running
		}
		held := l.overlayNodes(ctx, mon)
		for id := range held {
			delete(pending, id)
			overlay := l.be.LiveOverlayPath(id)
			plan := livePlan(id, overlay, l.encrypted(ctx, id))
			err := l.merge(ctx, mon, id, plan)
			if err != nil {
				// Added but never switched to (the crash came between
				// blockdev-add and blockdev-snapshot): nothing to merge.
				l.cleanup(mon, plan)
			}
			if _, still := l.overlayNodes(ctx, mon)[id]; still {
				l.log.Error("a live snapshot's overlay could not be merged back; the VM keeps writing into it", "volume", id, "instance", vm, "overlay", overlay, "err", err)
				continue
			}
			os.Remove(overlay)
			l.log.Info("merged the overlay of a live snapshot that a restart interrupted", "volume", id, "instance", vm)
		}
	}
	for id := range pending {
		if err := l.be.MergeLiveOverlay(ctx, id); err != nil {
			l.log.Error("a live snapshot's overlay could not be merged into its volume", "volume", id, "err", err)
			continue
		}
		l.log.Info("merged the overlay of a live snapshot into its volume after its VM stopped", "volume", id)
	}
}

// overlayNodes returns the volumes whose live-snapshot overlay node the
// VM behind mon holds.
func (l liveVolumes) overlayNodes(ctx context.Context, mon *qemu.Monitor) map[string]bool {
	var nodes []struct {
		NodeName string `json:"node-name"`
	}
	if err := mon.Run(ctx, "query-named-block-nodes", map[string]any{"flat": true}, &nodes); err != nil {
		return nil
	}
	held := map[string]bool{}
	for _, n := range nodes {
		if id, ok := strings.CutPrefix(n.NodeName, liveOverlayNodePrefix); ok {
			held[id] = true
		}
	}
	return held
}

func (l liveVolumes) encrypted(ctx context.Context, id string) bool {
	v, err := l.be.Volume(ctx, id)
	return err == nil && v.Encrypted
}

func (l liveVolumes) cleanup(mon *qemu.Monitor, plan qcow2.LiveSnapshotPlan) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	for _, c := range plan.Cleanup {
		if err := mon.Run(ctx, c.Execute, c.Arguments, nil); err != nil && l.log != nil {
			l.log.Warn("removing the overlay node of a live snapshot", "cmd", c.Execute, "err", err)
		}
	}
}
