package instances

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"time"

	"github.com/labcloud/labcloud/hypervisor"
	"github.com/labcloud/labcloud/internal/errdefs"
	"github.com/labcloud/labcloud/internal/store"
)

// Workers is how many instances the controller works on at once (a
// graceful stop can take the guest's whole shutdown time).
const Workers = 4

// RunController reconciles instances until ctx ends: first it reattaches
// to every VM that should be running (finding the ones whose QEMU died
// while labcloudd was away), then it works on every instance whose record
// changes, and on all of them every ResyncInterval. Run it once per
// Service (a restarted daemon makes a new Service); it returns nil when
// ctx ends.
func (s *Service) RunController(ctx context.Context) error {
	kvs, rev, err := s.opts.Store.ListRev(ctx, instancesPrefix)
	if err != nil {
		return fmt.Errorf("listing instances: %w", err)
	}
	s.reattach(ctx, kvs)
	var wg sync.WaitGroup
	for range Workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				key, ok := s.queue.get()
				if !ok {
					return
				}
				s.reconcile(ctx, key)
				s.queue.done(key)
			}
		}()
	}
	defer func() {
		s.queue.close()
		wg.Wait()
	}()
	for _, kv := range kvs {
		s.queue.add(kv.Key)
	}
	events := s.opts.Store.Watch(ctx, instancesPrefix, rev+1)
	tick := time.NewTicker(s.opts.ResyncInterval)
	defer tick.Stop()
	for {
		select {
		case <-ctx.Done():
			return nil
		case ev, ok := <-events:
			if !ok {
				if ctx.Err() != nil {
					return nil
				}
				events = s.opts.Store.Watch(ctx, instancesPrefix, 0)
				continue
			}
			switch ev.Type {
			case store.EventPut:
				s.queue.add(ev.Key)
			case store.EventError:
				s.log.Warn("instance watch ended; listing again", "err", ev.Err)
				_, rev, err := s.opts.Store.ListRev(ctx, instancesPrefix)
				if err != nil {
					rev = 0
				}
				events = s.opts.Store.Watch(ctx, instancesPrefix, rev+1)
				s.resync(ctx)
			}
		case <-tick.C:
			s.resync(ctx)
		}
	}
}

func (s *Service) resync(ctx context.Context) {
	kvs, err := s.opts.Store.List(ctx, instancesPrefix)
	if err != nil {
		s.log.Warn("instance resync: listing failed", "err", err)
		return
	}
	for _, kv := range kvs {
		s.queue.add(kv.Key)
	}
}

// reattach reconnects the driver to every VM that should be running, so
// that none is started twice and dead ones are found at once.
func (s *Service) reattach(ctx context.Context, kvs []store.KV) {
	r, ok := s.opts.Driver.(hypervisor.Reattacher)
	if !ok {
		return
	}
	for _, kv := range kvs {
		var i Instance
		if err := kv.Decode(&i); err != nil {
			continue
		}
		if !i.Status.VMDefined || i.Status.State == StateTerminated {
			continue
		}
		st, err := r.Reattach(ctx, i.ID)
		if err != nil && !errdefs.Is(err, errdefs.ClassNotFound) {
			s.log.Warn("reattaching VM failed", "instance", i.ID, "err", err)
			continue
		}
		s.log.Info("reattached VM", "instance", i.ID, "state", st.State, "exit", st.ExitReason)
	}
}

// errSpecChanged aborts a status write when the user changed the spec
// since the controller read it; the change's own event requeues the
// instance.
var errSpecChanged = errors.New("instance spec changed meanwhile")

// reconcile does every step an instance needs now.
func (s *Service) reconcile(ctx context.Context, key string) {
	inst, rev, err := store.Load[Instance](ctx, s.opts.Store, key)
	if err != nil {
		if !errors.Is(err, store.ErrNotFound) {
			s.log.Warn("loading instance failed", "key", key, "err", err)
		}
		return
	}
	if !inst.Status.NextTry.IsZero() && time.Now().Before(inst.Status.NextTry) {
		return // backing off; a timer or the resync brings it back
	}
	// EBS volumes attached or detached meanwhile (volumes.go).
	if inst.Spec.Desired != DesiredTerminated && inst.Status.State != StateTerminated {
		changed, err := s.reconcileVolumes(ctx, key, inst)
		if err != nil {
			s.log.Warn("volume step failed", "instance", inst.ID, "err", err)
		}
		if changed {
			if inst, rev, err = store.Load[Instance](ctx, s.opts.Store, key); err != nil {
				return
			}
		}
	}
	switch inst.Spec.Desired {
	case DesiredRunning:
		err = s.ensureRunning(ctx, key, inst)
	case DesiredStopped:
		err = s.ensureStopped(ctx, key, inst)
	case DesiredTerminated:
		err = s.ensureTerminated(ctx, key, inst, rev)
	}
	if err != nil && !errors.Is(err, errSpecChanged) && ctx.Err() == nil {
		s.fail(ctx, key, inst, err)
	}
}

// save writes status changes made by fn, provided the spec is still the
// one acted on.
func (s *Service) save(ctx context.Context, key string, seen Instance, fn func(*Instance)) (Instance, error) {
	return store.Update(ctx, s.opts.Store, key, func(i *Instance) error {
		if i.Spec != seen.Spec {
			return errSpecChanged
		}
		fn(i)
		return nil
	})
}

// saveNames records generated names and facts about what exists on the
// host whatever the spec says now: a terminate that arrived meanwhile must
// still find (and delete) what was made.
func (s *Service) saveNames(ctx context.Context, key string, fn func(*Instance)) (Instance, error) {
	return store.Update(ctx, s.opts.Store, key, func(i *Instance) error {
		fn(i)
		return nil
	})
}

// fail records a failed step and backs off; after MaxAttempts the
// instance lands in a failed state the user can read.
func (s *Service) fail(ctx context.Context, key string, seen Instance, stepErr error) {
	s.log.Warn("instance step failed", "instance", seen.ID, "attempt", seen.Status.Attempts+1, "err", stepErr)
	var delay time.Duration
	_, err := s.save(ctx, key, seen, func(i *Instance) {
		i.Status.Attempts++
		i.Status.LastError = stepErr.Error()
		delay = s.opts.Backoff << min(i.Status.Attempts-1, 6)
		if delay > time.Minute {
			delay = time.Minute
		}
		i.Status.NextTry = time.Now().Add(delay) // wall clock: backoff is real waiting
		if i.Status.Attempts < s.opts.MaxAttempts {
			return
		}
		reason := &StateReason{Code: "Server.InternalError", Message: "Server.InternalError: " + stepErr.Error()}
		switch i.Spec.Desired {
		case DesiredRunning:
			if i.Status.EverRan {
				i.Spec.Desired = DesiredStopped
				s.setState(i, StateStopping, reason, "Server error")
			} else {
				i.Spec.Desired = DesiredTerminated
				s.setState(i, StateShuttingDown, reason, "Server error")
			}
			i.Status.StateReason = reason
		default:
			// Stopping and cleaning up are never given up on; keep the
			// reason visible and keep trying at the longest backoff.
			i.Status.StateReason = reason
		}
	})
	if err == nil {
		time.AfterFunc(delay, func() { s.queue.add(key) })
	}
}

func (s *Service) overlayPath(id string) string {
	return filepath.Join(s.opts.StateDir, "instances", id, "root.qcow2")
}

func exists(path string) bool {
	_, err := os.Stat(path)
	return err == nil
}

func (s *Service) ensureRunning(ctx context.Context, key string, i Instance) error {
	var err error
	want := i.Spec
	// changed stops the steps when the user changed the spec meanwhile
	// (the change's own event brings the instance back).
	changed := func() error {
		if i.Spec != want {
			return errSpecChanged
		}
		return nil
	}
	if i.Status.State == StateTerminated || i.Status.State == StateShuttingDown {
		return nil
	}
	// 1. The root disk: an EBS volume (rootvolume.go), or for instances
	// from before root volumes the instance's own overlay: name it, then
	// make it. The root volume is seen to before the VM is (re)defined,
	// not on every resync of a running instance: a passing store error
	// must not count against a VM that runs fine (fail stops it after
	// MaxAttempts).
	rootVolume := s.usesRootVolume(i)
	if rootVolume && (i.Status.State != StateRunning || i.Status.RootDisk == nil) {
		if i, err = s.ensureRootVolume(ctx, key, i); err != nil {
			return err
		}
		if err := changed(); err != nil {
			return err
		}
	}
	if !rootVolume && i.Status.OverlayPath == "" {
		if i, err = s.saveNames(ctx, key, func(i *Instance) { i.Status.OverlayPath = s.overlayPath(i.ID) }); err != nil {
			return err
		}
		if err := changed(); err != nil {
			return err
		}
	}
	if !rootVolume && !exists(i.Status.OverlayPath) {
		if err := os.MkdirAll(filepath.Dir(i.Status.OverlayPath), 0o750); err != nil {
			return fmt.Errorf("creating the instance directory: %w", err)
		}
		tmp := i.Status.OverlayPath + ".tmp"
		os.Remove(tmp)
		if err := s.opts.CreateOverlay(ctx, i.Boot.Disk, tmp, i.Boot.RootSizeGiB); err != nil {
			return fmt.Errorf("creating the root disk: %w", err)
		}
		if err := os.Rename(tmp, i.Status.OverlayPath); err != nil {
			return fmt.Errorf("creating the root disk: %w", err)
		}
	}
	// 2. The network interface (netfab names it; CreateENI is idempotent
	// per instance).
	if i.Status.ENIID == "" {
		var eni ENI
		var err error
		if m, ok := s.opts.Network.(InterfaceMaker); ok {
			eni, err = m.CreateInstanceENI(ctx, ENIRequest{AccountID: i.AccountID, SubnetID: i.SubnetID, InstanceID: i.ID,
				Groups: i.SecurityGroupIDs, AssociatePublicIP: i.AssociatePublicIP})
		} else {
			eni, err = s.opts.Network.CreateENI(ctx, i.AccountID, i.SubnetID, i.ID)
		}
		if err != nil {
			return fmt.Errorf("creating the network interface: %w", err)
		}
		if i, err = s.saveNames(ctx, key, func(i *Instance) {
			i.Status.ENIID, i.Status.MAC, i.Status.PrivateIP = eni.ID, eni.MAC, eni.PrivateIP
			i.Status.Tap, i.Status.NetNS = eni.Tap, eni.NetNSPath
			if eni.VPCID != "" {
				i.VPCID = eni.VPCID
			}
		}); err != nil {
			return err
		}
		if err := changed(); err != nil {
			return err
		}
	}
	// A start after a stop: a new public IP.
	if pub, ok := s.opts.Network.(PublicIPs); ok && i.Status.PublicIPReleased && i.Status.ENIID != "" {
		if err := pub.AssignPublicIP(ctx, i.AccountID, i.Status.ENIID); err != nil {
			return fmt.Errorf("assigning a public IP: %w", err)
		}
		if i, err = s.saveNames(ctx, key, func(i *Instance) { i.Status.PublicIPReleased = false }); err != nil {
			return err
		}
	}
	// 3. The VM.
	st, err := s.opts.Driver.Status(ctx, i.ID)
	notFound := errdefs.Is(err, errdefs.ClassNotFound)
	if err != nil && !notFound {
		return fmt.Errorf("asking the hypervisor: %w", err)
	}
	alive := !notFound && st.State != hypervisor.StateStopped
	switch {
	case alive:
		if i.Status.State != StateRunning || i.Spec.Reboots > i.Status.Reboots {
			if i.Spec.Reboots > i.Status.Reboots && i.Status.State == StateRunning {
				if err := s.opts.Driver.Reset(ctx, i.ID); err != nil {
					return fmt.Errorf("rebooting: %w", err)
				}
			}
			_, err = s.save(ctx, key, i, func(i *Instance) {
				if i.Status.State != StateRunning {
					s.setState(i, StateRunning, nil, "")
				}
				i.Status.Reboots = i.Spec.Reboots
				i.Status.EverRan, i.Status.VMDefined = true, true
			})
		}
		return err
	case i.Status.State == StateRunning:
		// It ran and stopped without being asked: a power-off from
		// inside, a crash, or the VM vanished.
		return s.stoppedOnItsOwn(ctx, key, i, st, notFound)
	}
	// Pending: (re)define from the current record and boot. Redefining
	// on every start picks up a changed type or user data.
	if !notFound {
		if err := s.opts.Driver.Destroy(ctx, i.ID); err != nil && !errdefs.Is(err, errdefs.ClassNotFound) {
			return fmt.Errorf("replacing the old VM definition: %w", err)
		}
	}
	if err := s.opts.Driver.Create(ctx, s.vmSpec(i)); err != nil {
		return fmt.Errorf("defining the VM: %w", err)
	}
	if i, err = s.saveNames(ctx, key, func(i *Instance) { i.Status.VMDefined = true }); err != nil {
		return err
	}
	if err := changed(); err != nil {
		return err
	}
	if err := s.opts.Driver.Start(ctx, i.ID); err != nil {
		return fmt.Errorf("starting the VM: %w", err)
	}
	_, err = s.save(ctx, key, i, func(i *Instance) {
		s.setState(i, StateRunning, nil, "")
		i.Status.Reboots = i.Spec.Reboots
		i.Status.EverRan = true
	})
	return err
}

// stoppedOnItsOwn records a VM that stopped without a StopInstances.
func (s *Service) stoppedOnItsOwn(ctx context.Context, key string, i Instance, st hypervisor.Status, gone bool) error {
	_, err := s.save(ctx, key, i, func(i *Instance) {
		if !gone && st.ExitReason == hypervisor.ExitGuestShutdown {
			reason := &StateReason{Code: "Client.InstanceInitiatedShutdown", Message: "Client.InstanceInitiatedShutdown: Instance initiated shutdown"}
			if i.ShutdownBehavior == ShutdownTerminate {
				i.Spec.Desired = DesiredTerminated
				s.setState(i, StateShuttingDown, reason, "Instance initiated shutdown")
				return
			}
			i.Spec.Desired = DesiredStopped
			s.setState(i, StateStopped, reason, "Instance initiated shutdown")
			return
		}
		msg := "the instance's QEMU process exited unexpectedly"
		if gone {
			msg = "the instance's VM disappeared from the hypervisor"
			i.Status.VMDefined = false
		} else if st.Detail != "" {
			msg += " (" + st.Detail + ")"
		}
		i.Spec.Desired = DesiredStopped
		s.setState(i, StateStopped, &StateReason{Code: "Server.InternalError", Message: "Server.InternalError: " + msg}, "Server error")
	})
	return err
}

func (s *Service) ensureStopped(ctx context.Context, key string, i Instance) error {
	if i.Status.State == StateTerminated || i.Status.State == StateShuttingDown {
		return nil
	}
	st, err := s.opts.Driver.Status(ctx, i.ID)
	notFound := errdefs.Is(err, errdefs.ClassNotFound)
	if err != nil && !notFound {
		return fmt.Errorf("asking the hypervisor: %w", err)
	}
	if !notFound && st.State != hypervisor.StateStopped {
		if err := s.opts.Driver.Stop(ctx, i.ID, hypervisor.StopOptions{Graceful: !i.Spec.ForceStop, Timeout: s.opts.StopTimeout}); err != nil {
			return fmt.Errorf("stopping the VM: %w", err)
		}
	}
	if pub, ok := s.opts.Network.(PublicIPs); ok && !i.Status.PublicIPReleased && i.Status.ENIID != "" {
		released, err := pub.ReleasePublicIP(ctx, i.AccountID, i.Status.ENIID)
		if err != nil && !errdefs.Is(err, errdefs.ClassNotFound) {
			return fmt.Errorf("releasing the public IP: %w", err)
		}
		if released {
			if i, err = s.saveNames(ctx, key, func(i *Instance) { i.Status.PublicIPReleased = true }); err != nil {
				return err
			}
		}
	}
	if i.Status.State == StateStopped {
		return nil
	}
	_, err = s.save(ctx, key, i, func(i *Instance) {
		reason := i.Status.StateReason
		s.setState(i, StateStopped, reason, "")
	})
	return err
}

func (s *Service) ensureTerminated(ctx context.Context, key string, i Instance, rev int64) error {
	if i.Status.State == StateTerminated {
		if !s.visible(i) {
			if err := s.opts.Store.DeleteIf(ctx, key, rev); err != nil && !errors.Is(err, store.ErrConflict) && !errors.Is(err, store.ErrNotFound) {
				return err
			}
			if s.opts.Forget != nil {
				s.opts.Forget(ctx, i.AccountID, i.ID)
			}
		}
		return nil
	}
	if err := s.opts.Driver.Destroy(ctx, i.ID); err != nil && !errdefs.Is(err, errdefs.ClassNotFound) {
		return fmt.Errorf("destroying the VM: %w", err)
	}
	if i.Status.ENIID != "" {
		if err := s.opts.Network.DeleteENI(ctx, i.AccountID, i.Status.ENIID); err != nil && !errdefs.Is(err, errdefs.ClassNotFound) {
			return fmt.Errorf("deleting network interface %s: %w", i.Status.ENIID, err)
		}
	}
	// Attached EBS volumes become available again (or are deleted,
	// per DeleteOnTermination); the VM that used them is gone.
	if err := s.releaseVolumes(ctx, key, i); err != nil {
		return err
	}
	// The root volume too; the records of a terminated instance keep
	// its id (as the volume's history), not the attachment.
	if err := s.releaseRootVolume(ctx, i); err != nil {
		return err
	}
	// The run dir holds only an old-style root overlay, which goes with
	// the instance whatever its DeleteOnTermination says.
	dir := filepath.Join(s.opts.StateDir, "instances", i.ID)
	if i.Status.OverlayPath != "" && strings.HasPrefix(i.Status.OverlayPath, dir+string(filepath.Separator)) || exists(dir) {
		if err := os.RemoveAll(dir); err != nil {
			return fmt.Errorf("removing the root disk: %w", err)
		}
	}
	_, err := s.save(ctx, key, i, func(i *Instance) {
		reason := i.Status.StateReason
		s.setState(i, StateTerminated, reason, "")
		i.Status.VMDefined = false
		i.Status.ENIID, i.Status.Tap, i.Status.NetNS, i.Status.PrivateIP, i.Status.OverlayPath = "", "", "", "", ""
		i.Status.RootDisk = nil
	})
	if err == nil {
		// Come back when it is time to forget it.
		time.AfterFunc(s.opts.TerminatedRetention+time.Second, func() { s.queue.add(key) })
	}
	return err
}

// queue is a work queue of instance keys: a key is never worked on by two
// workers at once, and a key added while being worked on is worked on
// again afterwards.
type queue struct {
	mu     sync.Mutex
	cond   *sync.Cond
	items  []string
	queued map[string]bool
	active map[string]bool
	again  map[string]bool
	closed bool
}

func newQueue() *queue {
	q := &queue{queued: map[string]bool{}, active: map[string]bool{}, again: map[string]bool{}}
	q.cond = sync.NewCond(&q.mu)
	return q
}

func (q *queue) add(key string) {
	q.mu.Lock()
	defer q.mu.Unlock()
	if q.closed || q.queued[key] {
		return
	}
	if q.active[key] {
		q.again[key] = true
		return
	}
	q.queued[key] = true
	q.items = append(q.items, key)
	q.cond.Signal()
}

func (q *queue) get() (string, bool) {
	q.mu.Lock()
	defer q.mu.Unlock()
	for len(q.items) == 0 && !q.closed {
		q.cond.Wait()
	}
	if q.closed {
		return "", false
	}
	key := q.items[0]
	q.items = q.items[1:]
	delete(q.queued, key)
	q.active[key] = true
	return key, true
}

func (q *queue) done(key string) {
	q.mu.Lock()
	defer q.mu.Unlock()
	delete(q.active, key)
	if q.again[key] && !q.closed {
		delete(q.again, key)
		q.queued[key] = true
		q.items = append(q.items, key)
		q.cond.Signal()
	}
}

func (q *queue) close() {
	q.mu.Lock()
	q.closed = true
	q.mu.Unlock()
	q.cond.Broadcast()
}
