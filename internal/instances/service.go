package instances

import (
	"bufio"
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/exec"
	"regexp"
	"runtime"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/labcloud/labcloud/hypervisor"
	"github.com/labcloud/labcloud/internal/errdefs"
	"github.com/labcloud/labcloud/internal/store"
	"github.com/labcloud/labcloud/internal/volumes"
)

// Limits and defaults.
const (
	// MaxUserDataBytes is EC2's limit on decoded user data.
	MaxUserDataBytes = 16 << 10
	// ConsoleOutputBytes is how much of the serial log GetConsoleOutput
	// returns (the newest part), as EC2 does.
	ConsoleOutputBytes = 64 << 10

	DefaultVCPUOvercommit      = 4.0
	DefaultMemoryOvercommit    = 1.0
	DefaultAccountVCPULimit    = 32
	DefaultMaxGuestMemoryMiB   = 2048
	DefaultTerminatedRetention = time.Hour
	DefaultResyncInterval      = 5 * time.Second
	DefaultMaxAttempts         = 5
	DefaultBackoff             = time.Second
)

// Store folders.
const (
	instancesPrefix    = "instances/"
	reservationsPrefix = "reservations/"
	tokensPrefix       = "clienttokens/"
)

// Options configures a Service. Zero fields take the defaults named.
type Options struct {
	Store    *store.Store
	Driver   hypervisor.Driver
	Network  Network
	Images   Images
	KeyPairs KeyPairs
	// Volumes is the EBS service whose volumes AttachVolume attaches and
	// which holds the root volumes (nil: AttachVolume and DetachVolume
	// answer Unavailable, and root disks are overlays in StateDir).
	Volumes *volumes.Service
	// Region names the region (metadata, host names).
	Region string
	// StateDir holds <StateDir>/instances/<id>/root.qcow2, the root disk
	// overlays on the images' base disks of instances without a root
	// volume.
	StateDir string
	// Accel is passed to every VM (auto by default).
	Accel hypervisor.Accel

	// NodeVCPUs and NodeMemoryMiB are the host's size; default: this
	// machine's CPUs and MemTotal.
	NodeVCPUs     int
	NodeMemoryMiB int
	// VCPUOvercommit (default 4) and MemoryOvercommit (default 1.0)
	// multiply them into the capacity instances are placed against;
	// beyond it RunInstances and StartInstances fail with
	// InsufficientInstanceCapacity. Memory is counted as the VMs' real
	// (capped) memory, not the types' nominal memory.
	VCPUOvercommit   float64
	MemoryOvercommit float64
	// AccountVCPULimit (default 32) bounds the vCPUs of one account's
	// pending and running instances (VcpuLimitExceeded), like EC2's
	// "Running On-Demand Standard instances" quota.
	AccountVCPULimit int
	// MaxGuestMemoryMiB (default 2048) caps each VM's RAM: a lab server is
	// small, so an r5.2xlarge gets 2 GiB of real memory while it reports
	// its type's 64 GiB everywhere in the API.
	MaxGuestMemoryMiB int

	// TerminatedRetention (default 1 h) is how long terminated instances
	// stay visible to DescribeInstances.
	TerminatedRetention time.Duration
	// ResyncInterval (default 5 s) is how often the controller looks at
	// every instance besides reacting to changes; it is also how soon it
	// notices a guest power-off or a crash.
	ResyncInterval time.Duration
	// MaxAttempts (default 5) failed steps in a row put an instance into
	// a failed state (a first launch: terminated; a restart: stopped)
	// with StateReason Server.InternalError; Backoff (default 1 s) is the
	// first wait between tries, doubling up to a minute.
	MaxAttempts int
	Backoff     time.Duration
	// StopTimeout bounds a graceful stop (0: the driver's default).
	StopTimeout time.Duration
	// CreateOverlay makes the root disk: a qcow2 overlay of base of
	// sizeGiB at path. Default: qemu-img create -f qcow2 -F qcow2 -b.
	CreateOverlay func(ctx context.Context, base, path string, sizeGiB int) error
	// Now is the clock (default time.Now).
	Now    func() time.Time
	Logger *slog.Logger
	// Forget, if set, is called when a terminated instance's record is
	// finally removed, so that what other stores keep about it (its tags)
	// goes too.
	Forget func(ctx context.Context, accountID, instanceID string)
}

// Service runs EC2 instances: the API-facing operations (validate, record
// the desired state) and the controller (RunController) that makes the
// host match it.
type Service struct {
	opts Options
	log  *slog.Logger
	// placeMu serialises capacity checks with the writes that use the
	// capacity (RunInstances, StartInstances).
	placeMu sync.Mutex
	queue   *queue
}

// New checks opts and returns a Service. Call RunController to start
// reconciling.
func New(opts Options) (*Service, error) {
	if opts.Store == nil || opts.Driver == nil || opts.Network == nil || opts.Images == nil || opts.KeyPairs == nil {
		return nil, errors.New("instances: Store, Driver, Network, Images and KeyPairs are required")
	}
	if opts.StateDir == "" {
		return nil, errors.New("instances: StateDir is required")
	}
	if opts.Region == "" {
		opts.Region = "us-east-1"
	}
	if opts.NodeVCPUs <= 0 {
		opts.NodeVCPUs = runtime.NumCPU()
	}
	if opts.NodeMemoryMiB <= 0 {
		opts.NodeMemoryMiB = hostMemoryMiB()
	}
	if opts.VCPUOvercommit <= 0 {
		opts.VCPUOvercommit = DefaultVCPUOvercommit
	}
	if opts.MemoryOvercommit <= 0 {
		opts.MemoryOvercommit = DefaultMemoryOvercommit
	}
	if opts.AccountVCPULimit <= 0 {
		opts.AccountVCPULimit = DefaultAccountVCPULimit
	}
	if opts.MaxGuestMemoryMiB <= 0 {
		opts.MaxGuestMemoryMiB = DefaultMaxGuestMemoryMiB
	}
	if opts.MaxGuestMemoryMiB < hypervisor.MinMemoryMiB {
		opts.MaxGuestMemoryMiB = hypervisor.MinMemoryMiB
	}
	if opts.TerminatedRetention <= 0 {
		opts.TerminatedRetention = DefaultTerminatedRetention
	}
	if opts.ResyncInterval <= 0 {
		opts.ResyncInterval = DefaultResyncInterval
	}
	if opts.MaxAttempts <= 0 {
		opts.MaxAttempts = DefaultMaxAttempts
	}
	if opts.Backoff <= 0 {
		opts.Backoff = DefaultBackoff
	}
	if opts.CreateOverlay == nil {
		opts.CreateOverlay = qemuImgOverlay
	}
	if opts.Now == nil {
		opts.Now = time.Now
	}
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.NewTextHandler(io.Discard, nil))
	}
	return &Service{opts: opts, log: opts.Logger, queue: newQueue()}, nil
}

// hostMemoryMiB reads MemTotal from /proc/meminfo (1 GiB if unreadable).
func hostMemoryMiB() int {
	f, err := os.Open("/proc/meminfo")
	if err != nil {
		return 1024
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		fields := strings.Fields(sc.Text())
		if len(fields) >= 2 && fields[0] == "MemTotal:" {
			kb, err := strconv.Atoi(fields[1])
			if err == nil {
				return kb / 1024
			}
		}
	}
	return 1024
}

// qemuImgOverlay creates the root disk as a qcow2 overlay on the image.
func qemuImgOverlay(ctx context.Context, base, path string, sizeGiB int) error {
	out, err := exec.CommandContext(ctx, "qemu-img", "create", "-q", "-f", "qcow2", "-F", "qcow2", "-b", base,
		path, fmt.Sprintf("%dG", sizeGiB)).CombinedOutput()
	if err != nil {
		return fmt.Errorf("qemu-img create %s on %s: %v: %s", path, base, err, strings.TrimSpace(string(out)))
	}
	return nil
}

func instanceKey(account, id string) string { return instancesPrefix + account + "/" + id }

func newID(prefix string) string {
	b := make([]byte, 9)
	_, _ = rand.Read(b)
	return prefix + hex.EncodeToString(b)[:17]
}

var (
	instanceIDRe = regexp.MustCompile(`^i-([0-9a-f]{8}|[0-9a-f]{17})$`)
	subnetIDRe   = regexp.MustCompile(`^subnet-[0-9a-f]{8,17}$`)
)

// guestMemoryMiB is the RAM a VM of type t really gets.
func (s *Service) guestMemoryMiB(t InstanceType) int {
	return min(t.MemoryMiB, s.opts.MaxGuestMemoryMiB)
}

// RunInput is a RunInstances request.
type RunInput struct {
	AccountID    string
	ImageID      string
	InstanceType string // empty: DefaultInstanceType
	MinCount     int
	MaxCount     int
	KeyName      string
	// UserData is already base64-decoded.
	UserData         []byte
	SubnetID         string
	SecurityGroupIDs []string
	// SecurityGroupNames name groups of the default VPC (EC2-Classic
	// style SecurityGroup.N); resolved to IDs by the network.
	SecurityGroupNames []string
	// AssociatePublicIP: nil follows the subnet's MapPublicIpOnLaunch.
	AssociatePublicIP *bool
	AvailabilityZone  string
	Tags              []Tag
	ClientToken       string
	// ShutdownBehavior is stop (default) or terminate.
	ShutdownBehavior string
	// RootSizeGiB is the root volume's size (0: the image's); it may not
	// be smaller than the image.
	RootSizeGiB int
	// DeleteOnTermination of the root volume (nil: true).
	DeleteOnTermination *bool
	// Metadata options; empty fields take EC2's defaults (optional,
	// enabled, hop limit 1).
	Metadata MetadataOptions
	// IAMProfile is the instance profile to associate (nil: none); the
	// caller has resolved it and checked iam:PassRole.
	IAMProfile *IAMProfile
}

// RunResult is what RunInstances made.
type RunResult struct {
	Reservation Reservation
	Instances   []Instance
}

// RunInstances validates a launch, checks capacity and records the new
// instances as pending; the controller does the rest. Nothing is recorded
// when anything is wrong. With a ClientToken, a repeat of the same request
// returns the first one's reservation, and a different request with the
// same token fails with IdempotentParameterMismatch.
func (s *Service) RunInstances(ctx context.Context, in RunInput) (RunResult, error) {
	if in.InstanceType == "" {
		in.InstanceType = DefaultInstanceType
	}
	if in.MinCount == 0 && in.MaxCount == 0 {
		in.MinCount, in.MaxCount = 1, 1
	}
	if in.MaxCount == 0 {
		in.MaxCount = in.MinCount
	}
	if in.ShutdownBehavior == "" {
		in.ShutdownBehavior = ShutdownStop
	}
	if in.Metadata.HTTPTokens == "" {
		in.Metadata.HTTPTokens = "optional"
	}
	if in.Metadata.HTTPEndpoint == "" {
		in.Metadata.HTTPEndpoint = "enabled"
	}
	if in.Metadata.HopLimit == 0 {
		in.Metadata.HopLimit = 1
	}
	if len(in.ClientToken) > 64 {
		return RunResult{}, errdefs.InvalidParameter("InvalidParameterValue", "ClientToken is %d characters long; use at most 64", len(in.ClientToken))
	}
	if in.ClientToken != "" {
		if res, ok, err := s.byClientToken(ctx, in); err != nil || ok {
			return res, err
		}
	}
	typ, ok := LookupInstanceType(in.InstanceType)
	if !ok {
		return RunResult{}, errdefs.InvalidParameter("InvalidParameterValue", "Invalid value '%s' for InstanceType; list the types labcloud offers with DescribeInstanceTypes", in.InstanceType)
	}
	if in.MinCount < 1 {
		return RunResult{}, errdefs.InvalidParameter("InvalidParameterValue", "MinCount must be at least 1, got %d", in.MinCount)
	}
	if in.MaxCount < in.MinCount {
		return RunResult{}, errdefs.InvalidParameter("InvalidParameterValue", "MaxCount (%d) must be at least MinCount (%d)", in.MaxCount, in.MinCount)
	}
	if len(in.UserData) > MaxUserDataBytes {
		return RunResult{}, errdefs.InvalidParameter("InvalidParameterValue", "User data is limited to %d bytes after base64 decoding; yours has %d", MaxUserDataBytes, len(in.UserData))
	}
	if in.ShutdownBehavior != ShutdownStop && in.ShutdownBehavior != ShutdownTerminate {
		return RunResult{}, errdefs.InvalidParameter("InvalidParameterValue", "Invalid value '%s' for InstanceInitiatedShutdownBehavior; use stop or terminate", in.ShutdownBehavior)
	}
	if err := validateMetadata(in.Metadata); err != nil {
		return RunResult{}, err
	}
	if err := validateTags(in.Tags); err != nil {
		return RunResult{}, err
	}
	if in.SubnetID != "" && !subnetIDRe.MatchString(in.SubnetID) {
		return RunResult{}, errdefs.InvalidParameter("InvalidSubnetID.Malformed", "Invalid subnet ID '%s': subnet IDs look like subnet-0123456789abcdef0", in.SubnetID)
	}
	img, err := s.opts.Images.Get(ctx, in.AccountID, in.ImageID)
	if err != nil {
		return RunResult{}, err
	}
	root := in.RootSizeGiB
	if root == 0 {
		root = img.RootSizeGiB
	}
	if root < img.RootSizeGiB {
		return RunResult{}, errdefs.InvalidParameter("InvalidBlockDeviceMapping", "Volume of size %dGB is smaller than the image %s's root volume (%dGB); ask for at least %dGB", root, img.ID, img.RootSizeGiB, img.RootSizeGiB)
	}
	if root < 1 {
		root = 1
	}
	var key KeyPair
	if in.KeyName != "" {
		if key, err = s.opts.KeyPairs.Get(ctx, in.AccountID, in.KeyName); err != nil {
			return RunResult{}, err
		}
	}
	subnet, vpcID, err := s.pickSubnet(ctx, in.AccountID, in.SubnetID, in.AvailabilityZone)
	if err != nil {
		return RunResult{}, err
	}
	if gr, ok := s.opts.Network.(GroupResolver); ok {
		if in.SecurityGroupIDs, err = gr.ResolveGroups(ctx, in.AccountID, vpcID, in.SecurityGroupIDs, in.SecurityGroupNames); err != nil {
			return RunResult{}, err
		}
	}

	s.placeMu.Lock()
	defer s.placeMu.Unlock()
	all, err := store.ListAs[Instance](ctx, s.opts.Store, instancesPrefix)
	if err != nil {
		return RunResult{}, err
	}
	n, err := s.fits(all, in.AccountID, typ, in.MinCount, in.MaxCount)
	if err != nil {
		return RunResult{}, err
	}

	now := s.opts.Now().UTC()
	res := Reservation{ID: newID("r-"), AccountID: in.AccountID, ClientToken: in.ClientToken, RequestHash: requestHash(in)}
	deleteOnTerm := in.DeleteOnTermination == nil || *in.DeleteOnTermination
	var insts []Instance
	var ops []store.Op
	for i := 0; i < n; i++ {
		inst := Instance{
			ID: newID("i-"), AccountID: in.AccountID, ReservationID: res.ID, LaunchIndex: i, ClientToken: in.ClientToken,
			ImageID: img.ID, InstanceType: typ.Name, KeyName: key.Name, PublicKey: key.PublicKey,
			AvailabilityZone: subnet.AvailabilityZone, SubnetID: subnet.ID, VPCID: vpcID,
			SecurityGroupIDs: in.SecurityGroupIDs, AssociatePublicIP: in.AssociatePublicIP, UserData: in.UserData, Tags: in.Tags,
			ShutdownBehavior: in.ShutdownBehavior, Metadata: in.Metadata, LaunchTime: now, IAMProfile: newAssociation(in.IAMProfile, now),
			Boot: BootSource{Disk: img.Disk, Kernel: img.Kernel, Initrd: img.Initrd, KernelCmdline: img.KernelCmdline,
				Architecture: orDefault(img.Architecture, "x86_64"), RootDeviceName: orDefault(img.RootDeviceName, "/dev/xvda"),
				RootSizeGiB: root, DeleteOnTermination: deleteOnTerm},
			Spec:   Spec{Desired: DesiredRunning},
			Status: Status{State: StatePending, TransitionTime: now},
		}
		res.InstanceIDs = append(res.InstanceIDs, inst.ID)
		insts = append(insts, inst)
		ops = append(ops, store.OpCreate(instanceKey(in.AccountID, inst.ID), inst))
	}
	ops = append(ops, store.OpCreate(reservationsPrefix+in.AccountID+"/"+res.ID, res))
	if in.ClientToken != "" {
		ops = append(ops, store.OpCreate(tokenKey(in.AccountID, in.ClientToken), res))
	}
	if _, err := s.opts.Store.Txn(ctx, ops...); err != nil {
		if errors.Is(err, store.ErrExists) && in.ClientToken != "" {
			// A concurrent request with the same token won.
			if r, ok, err2 := s.byClientToken(ctx, in); err2 != nil || ok {
				return r, err2
			}
		}
		return RunResult{}, fmt.Errorf("recording the new instances: %w", err)
	}
	for _, inst := range insts {
		s.queue.add(instanceKey(inst.AccountID, inst.ID))
	}
	return RunResult{Reservation: res, Instances: insts}, nil
}

func orDefault(s, d string) string {
	if s == "" {
		return d
	}
	return s
}

func tokenKey(account, token string) string {
	h := sha256.Sum256([]byte(token))
	return tokensPrefix + account + "/" + hex.EncodeToString(h[:16])
}

// requestHash identifies a RunInstances request's parameters.
func requestHash(in RunInput) string {
	in.ClientToken = ""
	b, _ := json.Marshal(in)
	h := sha256.Sum256(b)
	return hex.EncodeToString(h[:])
}

// byClientToken returns the reservation an earlier request with the same
// ClientToken made (ok), or IdempotentParameterMismatch.
func (s *Service) byClientToken(ctx context.Context, in RunInput) (RunResult, bool, error) {
	var res Reservation
	if _, err := s.opts.Store.Get(ctx, tokenKey(in.AccountID, in.ClientToken), &res); err != nil {
		if errors.Is(err, store.ErrNotFound) {
			return RunResult{}, false, nil
		}
		return RunResult{}, false, err
	}
	if res.RequestHash != requestHash(in) {
		return RunResult{}, false, errdefs.InvalidParameter("IdempotentParameterMismatch",
			"The client token '%s' was already used by a RunInstances request with different parameters (reservation %s); use a new client token", in.ClientToken, res.ID)
	}
	out := RunResult{Reservation: res}
	for _, id := range res.InstanceIDs {
		inst, _, err := store.Load[Instance](ctx, s.opts.Store, instanceKey(in.AccountID, id))
		if errors.Is(err, store.ErrNotFound) {
			continue // terminated and gone
		}
		if err != nil {
			return RunResult{}, false, err
		}
		out.Instances = append(out.Instances, inst)
	}
	return out, true, nil
}

func validateMetadata(m MetadataOptions) error {
	if m.HTTPTokens != "optional" && m.HTTPTokens != "required" {
		return errdefs.InvalidParameter("InvalidParameterValue", "Invalid value '%s' for HttpTokens; use optional or required", m.HTTPTokens)
	}
	if m.HTTPEndpoint != "enabled" && m.HTTPEndpoint != "disabled" {
		return errdefs.InvalidParameter("InvalidParameterValue", "Invalid value '%s' for HttpEndpoint; use enabled or disabled", m.HTTPEndpoint)
	}
	if m.HopLimit < 1 || m.HopLimit > 64 {
		return errdefs.InvalidParameter("InvalidParameterValue", "Invalid value %d for HttpPutResponseHopLimit; use 1 to 64", m.HopLimit)
	}
	return nil
}

func validateTags(tags []Tag) error {
	if len(tags) > 50 {
		return errdefs.InvalidParameter("TagLimitExceeded", "An instance can have at most 50 tags; %d were given", len(tags))
	}
	seen := map[string]bool{}
	for _, t := range tags {
		if t.Key == "" || len(t.Key) > 128 || len(t.Value) > 256 {
			return errdefs.InvalidParameter("InvalidParameterValue", "Tag key '%s' is invalid: keys are 1–128 characters, values at most 256", t.Key)
		}
		if strings.HasPrefix(strings.ToLower(t.Key), "aws:") {
			return errdefs.InvalidParameter("InvalidParameterValue", "Tag keys starting with 'aws:' are reserved for AWS use")
		}
		if seen[t.Key] {
			return errdefs.InvalidParameter("InvalidParameterValue", "The tag key '%s' is given twice; keys must be unique", t.Key)
		}
		seen[t.Key] = true
	}
	return nil
}

// pickSubnet resolves the subnet to launch into: the one named, or the
// default VPC's default subnet of the zone asked for (or of the first
// zone).
func (s *Service) pickSubnet(ctx context.Context, account, subnetID, zone string) (Subnet, string, error) {
	if subnetID != "" {
		if f, ok := s.opts.Network.(SubnetFinder); ok {
			sn, vpc, err := f.FindSubnet(ctx, account, subnetID)
			if err != nil {
				return Subnet{}, "", err
			}
			if zone != "" && sn.AvailabilityZone != zone {
				return Subnet{}, "", errdefs.InvalidParameter("InvalidParameterCombination", "Subnet %s is in %s, not in the requested availability zone %s; leave out Placement.AvailabilityZone or pick a subnet of that zone", subnetID, sn.AvailabilityZone, zone)
			}
			return sn, vpc, nil
		}
	}
	vpc, err := s.opts.Network.EnsureDefaultVPC(ctx, account)
	if err != nil {
		return Subnet{}, "", fmt.Errorf("finding the default VPC: %w", err)
	}
	if subnetID != "" {
		for _, sn := range vpc.Subnets {
			if sn.ID == subnetID {
				if zone != "" && sn.AvailabilityZone != zone {
					return Subnet{}, "", errdefs.InvalidParameter("InvalidParameterCombination", "Subnet %s is in %s, not in the requested availability zone %s; leave out Placement.AvailabilityZone or pick a subnet of that zone", subnetID, sn.AvailabilityZone, zone)
				}
				return sn, vpc.ID, nil
			}
		}
		return Subnet{}, "", errdefs.NotFound("InvalidSubnetID.NotFound", "The subnet ID '%s' does not exist; list your subnets with DescribeSubnets", subnetID)
	}
	subnets := append([]Subnet(nil), vpc.Subnets...)
	sort.SliceStable(subnets, func(i, j int) bool {
		if subnets[i].AvailabilityZone != subnets[j].AvailabilityZone {
			return subnets[i].AvailabilityZone < subnets[j].AvailabilityZone
		}
		return subnets[i].DefaultForAz && !subnets[j].DefaultForAz
	})
	if len(subnets) == 0 {
		return Subnet{}, "", errdefs.New(errdefs.ClassUnavailable, "", "the default VPC %s has no subnets; recreate it", vpc.ID)
	}
	if zone == "" {
		return subnets[0], vpc.ID, nil
	}
	for _, sn := range subnets {
		if sn.AvailabilityZone == zone {
			return sn, vpc.ID, nil
		}
	}
	return Subnet{}, "", errdefs.InvalidParameter("InvalidParameterValue", "Invalid availability zone: [%s]; list the zones with DescribeAvailabilityZones", zone)
}

// consumes reports whether an instance counts against capacity: it runs
// or is about to.
func consumes(i Instance) bool {
	return i.Spec.Desired == DesiredRunning && i.Status.State != StateTerminated && i.Status.State != StateShuttingDown
}

// fits returns how many instances of typ (between min and max) fit in the
// node's capacity and the account's vCPU limit, or the error saying why
// not even min do.
func (s *Service) fits(all []Instance, account string, typ InstanceType, minN, maxN int) (int, error) {
	usedCPU, usedMem, acctCPU := 0, 0, 0
	for _, i := range all {
		if !consumes(i) {
			continue
		}
		t, ok := LookupInstanceType(i.InstanceType)
		if !ok {
			continue
		}
		usedCPU += t.VCPUs
		usedMem += s.guestMemoryMiB(t)
		if i.AccountID == account {
			acctCPU += t.VCPUs
		}
	}
	capCPU := int(float64(s.opts.NodeVCPUs) * s.opts.VCPUOvercommit)
	capMem := int(float64(s.opts.NodeMemoryMiB) * s.opts.MemoryOvercommit)
	byAccount := (s.opts.AccountVCPULimit - acctCPU) / typ.VCPUs
	byNode := min((capCPU-usedCPU)/typ.VCPUs, (capMem-usedMem)/s.guestMemoryMiB(typ))
	if byAccount < minN {
		return 0, errdefs.LimitExceeded("VcpuLimitExceeded",
			"You have requested more vCPU capacity than your current vCPU limit of %d allows for the instance bucket that the specified instance type belongs to (%d in use, %d requested); stop or terminate instances first",
			s.opts.AccountVCPULimit, acctCPU, minN*typ.VCPUs)
	}
	if byNode < minN {
		return 0, errdefs.New(errdefs.ClassUnavailable, "InsufficientInstanceCapacity",
			"We currently do not have sufficient %s capacity on this lab server (%d of %d vCPUs and %d of %d MiB in use) for %d instance(s); try a smaller type, fewer instances, or stop others",
			typ.Name, usedCPU, capCPU, usedMem, capMem, minN)
	}
	return min(maxN, byAccount, byNode), nil
}
