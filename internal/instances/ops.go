package instances

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"sort"
	"strings"
	"time"

	"github.com/labcloud/labcloud/hypervisor"
	"github.com/labcloud/labcloud/internal/errdefs"
	"github.com/labcloud/labcloud/internal/store"
)

// StateChange is one instance's transition (Stop/Start/TerminateInstances).
type StateChange struct {
	InstanceID string
	Previous   string
	Current    string
}

// visible reports whether DescribeInstances still shows an instance:
// terminated ones vanish after the retention time even before the
// controller deletes them.
func (s *Service) visible(i Instance) bool {
	return i.Status.State != StateTerminated || s.opts.Now().Before(i.Status.TransitionTime.Add(s.opts.TerminatedRetention))
}

// DescribeInstances returns the account's instances, sorted by launch time
// and id; with ids, exactly those (InvalidInstanceID.Malformed or
// .NotFound naming any that are not).
func (s *Service) DescribeInstances(ctx context.Context, account string, ids []string) ([]Instance, error) {
	all, err := store.ListAs[Instance](ctx, s.opts.Store, instancesPrefix+account+"/")
	if err != nil {
		return nil, err
	}
	var out []Instance
	for _, i := range all {
		if s.visible(i) {
			out = append(out, i)
		}
	}
	sort.SliceStable(out, func(a, b int) bool {
		if !out[a].LaunchTime.Equal(out[b].LaunchTime) {
			return out[a].LaunchTime.Before(out[b].LaunchTime)
		}
		if out[a].ReservationID != out[b].ReservationID {
			return out[a].ReservationID < out[b].ReservationID
		}
		return out[a].LaunchIndex < out[b].LaunchIndex
	})
	if len(ids) == 0 {
		return out, nil
	}
	if err := checkIDs(ids); err != nil {
		return nil, err
	}
	byID := map[string]Instance{}
	for _, i := range out {
		byID[i.ID] = i
	}
	var sel []Instance
	var missing []string
	seen := map[string]bool{}
	for _, id := range ids {
		if seen[id] {
			continue
		}
		seen[id] = true
		i, ok := byID[id]
		if !ok {
			missing = append(missing, id)
			continue
		}
		sel = append(sel, i)
	}
	if len(missing) > 0 {
		return nil, notFound(missing)
	}
	return sel, nil
}

func checkIDs(ids []string) error {
	for _, id := range ids {
		if !instanceIDRe.MatchString(id) {
			return errdefs.InvalidParameter("InvalidInstanceID.Malformed", "Invalid id: \"%s\" (instance ids look like i-0123456789abcdef0)", id)
		}
	}
	return nil
}

func notFound(ids []string) error {
	if len(ids) == 1 {
		return errdefs.NotFound("InvalidInstanceID.NotFound", "The instance ID '%s' does not exist", ids[0])
	}
	return errdefs.NotFound("InvalidInstanceID.NotFound", "The instance IDs '%s' do not exist", strings.Join(ids, ", "))
}

// AllInstances returns every account's instance records, terminated ones
// included (for maintenance such as data migrations).
func (s *Service) AllInstances(ctx context.Context) ([]Instance, error) {
	return store.ListAs[Instance](ctx, s.opts.Store, instancesPrefix)
}

// Get returns one instance of the account.
func (s *Service) Get(ctx context.Context, account, id string) (Instance, error) {
	l, err := s.DescribeInstances(ctx, account, []string{id})
	if err != nil {
		return Instance{}, err
	}
	return l[0], nil
}

var errUnchanged = errors.New("unchanged")

// transition applies fn to each instance after checking all of them with
// check, so a request naming one instance in a wrong state changes none.
func (s *Service) transition(ctx context.Context, account string, ids []string,
	check func(Instance) error, fn func(*Instance) error) ([]StateChange, error) {
	if len(ids) == 0 {
		return nil, errdefs.New(errdefs.ClassMissingParameter, "MissingParameter", "The request must contain the parameter InstanceId")
	}
	insts, err := s.DescribeInstances(ctx, account, ids)
	if err != nil {
		return nil, err
	}
	for _, i := range insts {
		if err := check(i); err != nil {
			return nil, err
		}
	}
	var out []StateChange
	for _, i := range insts {
		prev := i.Status.State
		updated, err := store.Update(ctx, s.opts.Store, instanceKey(account, i.ID), func(in *Instance) error {
			prev = in.Status.State
			if err := check(*in); err != nil {
				return err
			}
			return fn(in)
		})
		if errors.Is(err, errUnchanged) {
			out = append(out, StateChange{InstanceID: i.ID, Previous: prev, Current: prev})
			continue
		}
		if err != nil {
			return out, err
		}
		s.queue.add(instanceKey(account, i.ID))
		out = append(out, StateChange{InstanceID: i.ID, Previous: prev, Current: updated.Status.State})
	}
	return out, nil
}

func incorrectState(i Instance, verb string) error {
	return errdefs.Conflict("IncorrectInstanceState", "The instance '%s' is not in a state from which it can be %s (it is %s)", i.ID, verb, i.Status.State)
}

func (s *Service) setState(i *Instance, state string, reason *StateReason, transition string) {
	now := s.opts.Now().UTC()
	if i.Status.State != state {
		i.Status.TransitionTime = now
	}
	i.Status.State = state
	i.Status.StateReason = reason
	if transition != "" {
		i.Status.StateTransitionReason = fmt.Sprintf("%s (%s)", transition, now.Format("2006-01-02 15:04:05 GMT"))
	}
	i.Status.Attempts, i.Status.LastError, i.Status.NextTry = 0, "", time.Time{}
}

// StopInstances asks for instances to be stopped (Force: without the
// guest's help). Stopping a stopped or stopping instance changes nothing;
// a terminated or shutting-down one is IncorrectInstanceState.
func (s *Service) StopInstances(ctx context.Context, account string, ids []string, force bool) ([]StateChange, error) {
	return s.transition(ctx, account, ids, func(i Instance) error {
		if i.Status.State == StateTerminated || i.Status.State == StateShuttingDown {
			return incorrectState(i, "stopped")
		}
		return nil
	}, func(i *Instance) error {
		if i.Spec.Desired == DesiredStopped && !(force && !i.Spec.ForceStop && i.Status.State == StateStopping) {
			return errUnchanged
		}
		i.Spec.Desired = DesiredStopped
		i.Spec.ForceStop = force
		if i.Status.State != StateStopped {
			s.setState(i, StateStopping, &StateReason{Code: "Client.UserInitiatedShutdown", Message: "Client.UserInitiatedShutdown: User initiated shutdown"}, "User initiated")
		}
		return nil
	})
}

// StartInstances starts stopped instances (capacity permitting). Running
// or pending ones are left as they are; stopping, shutting-down and
// terminated ones are IncorrectInstanceState.
func (s *Service) StartInstances(ctx context.Context, account string, ids []string) ([]StateChange, error) {
	s.placeMu.Lock()
	defer s.placeMu.Unlock()
	check := func(i Instance) error {
		switch i.Status.State {
		case StateStopping, StateShuttingDown, StateTerminated:
			return incorrectState(i, "started")
		}
		return nil
	}
	insts, err := s.DescribeInstances(ctx, account, ids)
	if err != nil {
		return nil, err
	}
	all, err := store.ListAs[Instance](ctx, s.opts.Store, instancesPrefix)
	if err != nil {
		return nil, err
	}
	// Check capacity for the instances that will start, one at a time,
	// counting the earlier ones as already started.
	for _, i := range insts {
		if err := check(i); err != nil {
			return nil, err
		}
		if i.Spec.Desired == DesiredRunning {
			continue
		}
		t, _ := LookupInstanceType(i.InstanceType)
		if _, err := s.fits(all, account, t, 1, 1); err != nil {
			return nil, err
		}
		i.Spec.Desired = DesiredRunning
		all = append(all, i)
	}
	return s.transition(ctx, account, ids, check, func(i *Instance) error {
		if i.Spec.Desired == DesiredRunning {
			return errUnchanged
		}
		i.Spec.Desired = DesiredRunning
		i.Spec.ForceStop = false
		s.setState(i, StatePending, nil, "")
		i.Status.StateTransitionReason = ""
		return nil
	})
}

// RebootInstances reboots running instances (a hard reset of the VM, as
// EC2 does when the guest does not reboot itself). Stopped, stopping,
// shutting-down and terminated instances are IncorrectInstanceState.
func (s *Service) RebootInstances(ctx context.Context, account string, ids []string) error {
	_, err := s.transition(ctx, account, ids, func(i Instance) error {
		if i.Spec.Desired != DesiredRunning || (i.Status.State != StateRunning && i.Status.State != StatePending) {
			return incorrectState(i, "rebooted")
		}
		return nil
	}, func(i *Instance) error {
		i.Spec.Reboots++
		return nil
	})
	return err
}

// TerminateInstances terminates instances in any state; terminating a
// terminated one changes nothing.
func (s *Service) TerminateInstances(ctx context.Context, account string, ids []string) ([]StateChange, error) {
	return s.transition(ctx, account, ids, func(Instance) error { return nil }, func(i *Instance) error {
		if i.Spec.Desired == DesiredTerminated {
			return errUnchanged
		}
		i.Spec.Desired = DesiredTerminated
		s.setState(i, StateShuttingDown, &StateReason{Code: "Client.UserInitiatedShutdown", Message: "Client.UserInitiatedShutdown: User initiated shutdown"}, "User initiated")
		return nil
	})
}

// ConsoleOutput returns the newest ConsoleOutputBytes of the instance's
// serial console log (empty before its first boot) and when it was read.
func (s *Service) ConsoleOutput(ctx context.Context, account, id string) ([]byte, time.Time, error) {
	inst, err := s.Get(ctx, account, id)
	if err != nil {
		return nil, time.Time{}, err
	}
	now := s.opts.Now().UTC()
	if !inst.Status.VMDefined {
		return nil, now, nil
	}
	c, err := s.opts.Driver.Console(ctx, id)
	if errdefs.Is(err, errdefs.ClassNotFound) {
		return nil, now, nil
	}
	if err != nil {
		return nil, now, err
	}
	f, err := os.Open(c.LogPath)
	if errors.Is(err, os.ErrNotExist) {
		return nil, now, nil
	}
	if err != nil {
		return nil, now, err
	}
	defer f.Close()
	if fi, err := f.Stat(); err == nil && fi.Size() > ConsoleOutputBytes {
		if _, err := f.Seek(fi.Size()-ConsoleOutputBytes, io.SeekStart); err != nil {
			return nil, now, err
		}
	}
	b, err := io.ReadAll(io.LimitReader(f, ConsoleOutputBytes))
	return b, now, err
}

// ModifyInstanceType changes a stopped instance's type (capacity is
// checked at the next start); IncorrectInstanceState otherwise.
func (s *Service) ModifyInstanceType(ctx context.Context, account, id, typ string) error {
	if _, ok := LookupInstanceType(typ); !ok {
		return errdefs.InvalidParameter("InvalidParameterValue", "Invalid value '%s' for InstanceType; list the types labcloud offers with DescribeInstanceTypes", typ)
	}
	return s.modifyStopped(ctx, account, id, func(i *Instance) { i.InstanceType = typ })
}

// ModifyUserData replaces a stopped instance's user data (already
// decoded); IncorrectInstanceState unless stopped.
func (s *Service) ModifyUserData(ctx context.Context, account, id string, data []byte) error {
	if len(data) > MaxUserDataBytes {
		return errdefs.InvalidParameter("InvalidParameterValue", "User data is limited to %d bytes after base64 decoding; yours has %d", MaxUserDataBytes, len(data))
	}
	return s.modifyStopped(ctx, account, id, func(i *Instance) { i.UserData = data })
}

func (s *Service) modifyStopped(ctx context.Context, account, id string, fn func(*Instance)) error {
	if _, err := s.Get(ctx, account, id); err != nil {
		return err
	}
	_, err := store.Update(ctx, s.opts.Store, instanceKey(account, id), func(i *Instance) error {
		if i.Status.State != StateStopped || i.Spec.Desired != DesiredStopped {
			return errdefs.Conflict("IncorrectInstanceState", "The instance '%s' is not in the 'stopped' state (it is %s); stop it first", id, i.Status.State)
		}
		fn(i)
		return nil
	})
	return err
}

// Lookup finds the instance that owns privateIP in a VPC, for the
// metadata service. Terminated instances and ones without an address are
// never found.
func (s *Service) Lookup(ctx context.Context, vpcID, privateIP string) (Metadata, bool) {
	all, err := store.ListAs[Instance](ctx, s.opts.Store, instancesPrefix)
	if err != nil {
		s.log.Warn("metadata lookup failed", "vpc", vpcID, "ip", privateIP, "err", err)
		return Metadata{}, false
	}
	for _, i := range all {
		if i.VPCID != vpcID || i.Status.PrivateIP != privateIP || privateIP == "" ||
			i.Status.State == StateTerminated || i.Status.State == StateShuttingDown {
			continue
		}
		return s.metadataOf(i), true
	}
	return Metadata{}, false
}

func (s *Service) metadataOf(i Instance) Metadata {
	sgs := i.SecurityGroupIDs
	if len(sgs) == 0 {
		sgs = []string{"default"}
	}
	return Metadata{
		InstanceID: i.ID, ImageID: i.ImageID, InstanceType: i.InstanceType, AvailabilityZone: i.AvailabilityZone,
		Region: s.opts.Region, LocalIPv4: i.Status.PrivateIP, LocalHostname: s.PrivateDNSName(i.Status.PrivateIP),
		MAC: i.Status.MAC, PublicKeyName: i.KeyName, PublicKey: i.PublicKey, SecurityGroups: sgs,
		UserData: i.UserData, HTTPTokens: i.Metadata.HTTPTokens, HTTPEndpoint: i.Metadata.HTTPEndpoint,
		HopLimit: i.Metadata.HopLimit, ReservationID: i.ReservationID, AccountID: i.AccountID,
		IAMInstanceProfileARN: profileARN(i), IAMInstanceProfileID: profileID(i), IAMAssociationID: associationID(i),
		VPCID: i.VPCID, ENIID: i.Status.ENIID,
	}
}

// PrivateDNSName is EC2's private host name of an address:
// ip-10-0-1-5.<region>.compute.internal (ec2.internal in us-east-1).
func (s *Service) PrivateDNSName(ip string) string {
	if ip == "" {
		return ""
	}
	domain := s.opts.Region + ".compute.internal"
	if s.opts.Region == "us-east-1" {
		domain = "ec2.internal"
	}
	return "ip-" + strings.ReplaceAll(ip, ".", "-") + "." + domain
}

// Region is the region the service runs instances in.
func (s *Service) Region() string { return s.opts.Region }

// GuestMemoryMiB is the RAM a VM of the named type really gets (the
// type's memory capped to Options.MaxGuestMemoryMiB).
func (s *Service) GuestMemoryMiB(typ string) int {
	t, _ := LookupInstanceType(typ)
	return s.guestMemoryMiB(t)
}

// vmSpec is the VM definition of an instance.
func (s *Service) vmSpec(i Instance) hypervisor.Spec {
	t, _ := LookupInstanceType(i.InstanceType)
	root := hypervisor.Disk{ID: "root", Path: i.Status.OverlayPath, Format: hypervisor.FormatQCOW2, Serial: "root"}
	if i.Status.RootDisk != nil {
		root = *i.Status.RootDisk // the root volume (rootvolume.go)
	}
	spec := hypervisor.Spec{
		ID: i.ID, VCPUs: t.VCPUs, MemoryMiB: s.guestMemoryMiB(t),
		Disks:  append([]hypervisor.Disk{root}, volumeDisks(i)...),
		Kernel: i.Boot.Kernel, Initrd: i.Boot.Initrd, Append: i.Boot.KernelCmdline,
		SMBIOS: hypervisor.EC2Identity(i.ID, i.InstanceType),
		Accel:  s.opts.Accel,
		NetNS:  i.Status.NetNS,
	}
	if i.Status.Tap != "" {
		spec.NICs = []hypervisor.NIC{{ID: i.Status.ENIID, Tap: i.Status.Tap, MAC: i.Status.MAC}}
	}
	return spec
}
