package instances

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/labcloud/labcloud/hypervisor/fake"
	"github.com/labcloud/labcloud/internal/errdefs"
	"github.com/labcloud/labcloud/internal/store"
	"github.com/labcloud/labcloud/internal/store/embedded"
)

const acct = "123456789012"

// etcdClient is one embedded etcd shared by the package's tests; each test
// gets its own prefix.
var (
	etcdClient *clientv3.Client
	prefixes   atomic.Int64
)

func TestMain(m *testing.M) {
	os.Exit(func() int {
		dir, err := os.MkdirTemp("", "instances-etcd-")
		if err != nil {
			fmt.Fprintln(os.Stderr, err)
			return 1
		}
		defer os.RemoveAll(dir)
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
		defer cancel()
		srv, err := embedded.Start(ctx, embedded.Config{DataDir: dir})
		if err != nil {
			fmt.Fprintln(os.Stderr, "starting embedded etcd:", err)
			return 1
		}
		defer srv.Close()
		etcdClient, err = store.Dial(ctx, srv.Endpoints())
		if err != nil {
			fmt.Fprintln(os.Stderr, err)
			return 1
		}
		defer etcdClient.Close()
		return m.Run()
	}())
}

// fakeNet is a Network with one default VPC of two zones.
type fakeNet struct {
	mu      sync.Mutex
	enis    map[string]ENI // by instance id
	deleted []string
	failENI error
	n       int
	// hold, when set, is called (unlocked) inside CreateENI before the
	// ENI is made, to let a test act in the middle of a launch.
	hold func()
}

func newFakeNet() *fakeNet { return &fakeNet{enis: map[string]ENI{}} }

func (f *fakeNet) EnsureDefaultVPC(ctx context.Context, accountID string) (VPC, error) {
	return VPC{ID: "vpc-0aaaaaaaaaaaaaaaa", Subnets: []Subnet{
		{ID: "subnet-0bbbbbbbbbbbbbbbb", AvailabilityZone: "lab-1b", CIDR: "172.31.16.0/20", DefaultForAz: true},
		{ID: "subnet-0aaaaaaaaaaaaaaaa", AvailabilityZone: "lab-1a", CIDR: "172.31.0.0/20", DefaultForAz: true},
	}}, nil
}

func (f *fakeNet) CreateENI(ctx context.Context, accountID, subnetID, instanceID string) (ENI, error) {
	f.mu.Lock()
	hold := f.hold
	f.mu.Unlock()
	if hold != nil {
		hold()
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.failENI != nil {
		return ENI{}, f.failENI
	}
	if e, ok := f.enis[instanceID]; ok {
		return e, nil
	}
	f.n++
	e := ENI{ID: fmt.Sprintf("eni-%017x", f.n), MAC: fmt.Sprintf("02:00:00:00:00:%02x", f.n),
		PrivateIP: fmt.Sprintf("172.31.0.%d", 3+f.n), Tap: fmt.Sprintf("tap%d", f.n), NetNSPath: "/var/run/netns/vpc-test",
		SubnetID: subnetID, VPCID: "vpc-0aaaaaaaaaaaaaaaa"}
	f.enis[instanceID] = e
	return e, nil
}

func (f *fakeNet) DeleteENI(ctx context.Context, accountID, eniID string) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	for id, e := range f.enis {
		if e.ID == eniID {
			delete(f.enis, id)
			f.deleted = append(f.deleted, eniID)
			return nil
		}
	}
	return errdefs.NotFound("InvalidNetworkInterfaceID.NotFound", "no ENI %s", eniID)
}

func (f *fakeNet) count() int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return len(f.enis)
}

type fakeImages struct{ disk string }

const testAMI = "ami-0123456789abcdef0"

func (f fakeImages) Get(ctx context.Context, caller, id string) (Image, error) {
	if !strings.HasPrefix(id, "ami-") {
		return Image{}, errdefs.InvalidParameter("InvalidAMIID.Malformed", "Invalid id: %q", id)
	}
	if id != testAMI {
		return Image{}, errdefs.NotFound("InvalidAMIID.NotFound", "The image id '[%s]' does not exist", id)
	}
	return Image{ID: id, Name: "debian-12", Architecture: "x86_64", RootDeviceName: "/dev/xvda", RootSizeGiB: 2,
		Disk: f.disk, Kernel: "/images/vmlinuz", Initrd: "/images/initrd", KernelCmdline: "console=ttyS0 root=/dev/vda"}, nil
}

type fakeKeys struct{}

func (fakeKeys) Get(ctx context.Context, account, name string) (KeyPair, error) {
	if name == "lab" {
		return KeyPair{Name: "lab", PublicKey: "ssh-ed25519 AAAAC3Nza lab"}, nil
	}
	return KeyPair{}, errdefs.NotFound("InvalidKeyPair.NotFound", "The key pair '%s' does not exist", name)
}

// testClock is a settable clock.
type testClock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *testClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *testClock) Advance(d time.Duration) {
	c.mu.Lock()
	c.t = c.t.Add(d)
	c.mu.Unlock()
}

type env struct {
	st    *store.Store
	drv   *fake.Driver
	net   *fakeNet
	svc   *Service
	opts  Options
	clock *testClock
	stop  func()
}

// newEnv makes a Service over a fresh store prefix, the fake driver and
// fake network, image and keys; mod adjusts the options.
func newEnv(t *testing.T, mod func(*Options)) *env {
	t.Helper()
	dir := t.TempDir()
	base := filepath.Join(dir, "base.qcow2")
	os.WriteFile(base, []byte("base image"), 0o644)
	e := &env{
		st:    store.New(etcdClient, fmt.Sprintf("/test/%d/", prefixes.Add(1))),
		drv:   fake.New(filepath.Join(dir, "vms")),
		net:   newFakeNet(),
		clock: &testClock{t: time.Date(2026, 11, 27, 12, 0, 0, 0, time.UTC)},
	}
	e.opts = Options{
		Store: e.st, Driver: e.drv, Network: e.net, Images: fakeImages{disk: base}, KeyPairs: fakeKeys{},
		Region: "lab-1", StateDir: filepath.Join(dir, "state"), NodeVCPUs: 4, NodeMemoryMiB: 16384,
		ResyncInterval: 20 * time.Millisecond, Backoff: 5 * time.Millisecond, MaxAttempts: 3,
		Now: e.clock.Now,
		CreateOverlay: func(ctx context.Context, base, path string, sizeGiB int) error {
			return os.WriteFile(path, []byte(fmt.Sprintf("overlay of %s, %dG", base, sizeGiB)), 0o644)
		},
	}
	if mod != nil {
		mod(&e.opts)
	}
	var err error
	if e.svc, err = New(e.opts); err != nil {
		t.Fatal(err)
	}
	return e
}

// start runs the controller until the test ends (or e.stop).
func (e *env) start(t *testing.T) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- e.svc.RunController(ctx) }()
	var once sync.Once
	e.stop = func() {
		once.Do(func() {
			cancel()
			if err := <-done; err != nil {
				t.Errorf("RunController: %v", err)
			}
		})
	}
	t.Cleanup(e.stop)
}

// restart is a labcloudd restart: the controller stops, and a new Service
// over the same store and a reopened driver takes over.
func (e *env) restart(t *testing.T) {
	t.Helper()
	e.stop()
	e.drv = e.drv.Reopen()
	e.opts.Driver = e.drv
	var err error
	if e.svc, err = New(e.opts); err != nil {
		t.Fatal(err)
	}
	e.start(t)
}

func (e *env) run(t *testing.T, in RunInput) []Instance {
	t.Helper()
	in.AccountID = acct
	if in.ImageID == "" {
		in.ImageID = testAMI
	}
	res, err := e.svc.RunInstances(context.Background(), in)
	if err != nil {
		t.Fatalf("RunInstances: %v", err)
	}
	return res.Instances
}

// wait polls until instance id satisfies cond, with a deadline.
func (e *env) wait(t *testing.T, id, what string, cond func(Instance) bool) Instance {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	var last Instance
	for time.Now().Before(deadline) {
		i, _, err := store.Load[Instance](context.Background(), e.st, instanceKey(acct, id))
		if err == nil {
			last = i
			if cond(i) {
				return i
			}
		}
		time.Sleep(10 * time.Millisecond)
	}
	t.Fatalf("instance %s never became %s; last: state %s, desired %s, reason %+v, error %q",
		id, what, last.Status.State, last.Spec.Desired, last.Status.StateReason, last.Status.LastError)
	return last
}

func (e *env) waitState(t *testing.T, id, state string) Instance {
	t.Helper()
	return e.wait(t, id, state, func(i Instance) bool { return i.Status.State == state })
}

// wantCode checks an error's class-independent AWS code.
func wantCode(t *testing.T, err error, code string) {
	t.Helper()
	var de *errdefs.Error
	if err == nil {
		t.Fatalf("got no error, want %s", code)
	}
	if !asErr(err, &de) || de.Code != code {
		t.Fatalf("got %v, want an error with code %s", err, code)
	}
}

func asErr(err error, target **errdefs.Error) bool {
	for err != nil {
		if de, ok := err.(*errdefs.Error); ok {
			*target = de
			return true
		}
		u, ok := err.(interface{ Unwrap() error })
		if !ok {
			return false
		}
		err = u.Unwrap()
	}
	return false
}
