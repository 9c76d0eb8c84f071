package instances

import (
	"context"
	"time"

	"github.com/labcloud/labcloud/hypervisor"
)

// EC2 instance states with their AWS codes (the low byte of
// InstanceState.Code).
const (
	StatePending      = "pending"
	StateRunning      = "running"
	StateShuttingDown = "shutting-down"
	StateTerminated   = "terminated"
	StateStopping     = "stopping"
	StateStopped      = "stopped"
)

// StateCode returns AWS's numeric code of a state name.
func StateCode(state string) int {
	switch state {
	case StatePending:
		return 0
	case StateRunning:
		return 16
	case StateShuttingDown:
		return 32
	case StateTerminated:
		return 48
	case StateStopping:
		return 64
	case StateStopped:
		return 80
	}
	return -1
}

// Desired states of an instance (Spec.Desired).
const (
	DesiredRunning    = "running"
	DesiredStopped    = "stopped"
	DesiredTerminated = "terminated"
)

// Shutdown behaviours (InstanceInitiatedShutdownBehavior).
const (
	ShutdownStop      = "stop"
	ShutdownTerminate = "terminate"
)

// Instance is one EC2 instance as stored at instances/<account>/<id>.
//
// Lifecycle: RunInstances writes the record with Spec.Desired running and
// Status.State pending; nothing exists on the host yet. The controller
// then brings the host in line, one idempotent step at a time, saving
// every generated name into Status before making the thing it names:
// the root overlay, the ENI (tap, MAC, IP, namespace), the VM definition,
// and finally a running VM (→ running). StopInstances sets Desired stopped
// and State stopping; the controller stops the VM (→ stopped), keeping
// overlay, ENI and definition. StartInstances sets Desired running and
// State pending again. TerminateInstances sets Desired terminated and
// State shutting-down; the controller destroys the VM, deletes the ENI and
// the overlay (→ terminated) and, after Options.TerminatedRetention, the
// record itself. A guest power-off or a QEMU crash is seen by the
// controller and recorded as stopped (or terminated, per
// ShutdownBehavior) with a StateReason.
type Instance struct {
	ID            string `json:"id"`
	AccountID     string `json:"accountId"`
	ReservationID string `json:"reservationId"`
	LaunchIndex   int    `json:"launchIndex"`
	ClientToken   string `json:"clientToken,omitempty"`

	ImageID          string   `json:"imageId"`
	InstanceType     string   `json:"instanceType"`
	KeyName          string   `json:"keyName,omitempty"`
	PublicKey        string   `json:"publicKey,omitempty"`
	AvailabilityZone string   `json:"availabilityZone"`
	SubnetID         string   `json:"subnetId"`
	VPCID            string   `json:"vpcId"`
	SecurityGroupIDs []string `json:"securityGroupIds,omitempty"`
	// AssociatePublicIP is the launch's choice (nil: the subnet's).
	AssociatePublicIP *bool           `json:"associatePublicIp,omitempty"`
	UserData          []byte          `json:"userData,omitempty"`
	Tags              []Tag           `json:"tags,omitempty"`
	ShutdownBehavior  string          `json:"shutdownBehavior"`
	Metadata          MetadataOptions `json:"metadataOptions"`
	LaunchTime        time.Time       `json:"launchTime"`
	// IAMProfile is the associated instance profile, nil for none.
	IAMProfile *IAMProfileAssociation `json:"iamInstanceProfile,omitempty"`

	// Boot is what the image gave at launch; kept so that a deregistered
	// AMI does not break stop/start (as on AWS).
	Boot BootSource `json:"boot"`

	// Volumes are the EBS volumes attached after launch (AttachVolume),
	// desired and observed in one list: each entry's State says whether
	// the controller has put the disk into the VM (attached), still has
	// to (attaching) or has to take it out (detaching). Not part of Spec,
	// which must stay comparable.
	Volumes []VolumeAttachment `json:"volumes,omitempty"`

	Spec   Spec   `json:"spec"`
	Status Status `json:"status"`
}

// VolumeAttachment is one EBS volume attached to an instance.
type VolumeAttachment struct {
	VolumeID string `json:"volumeId"`
	// Device is the name the user gave (/dev/sdf…/dev/sdp, /dev/xvdf…).
	Device string `json:"device"`
	// State is attaching, attached or detaching (the volume record's
	// attachment state follows it).
	State               string    `json:"state"`
	DeleteOnTermination bool      `json:"deleteOnTermination"`
	AttachTime          time.Time `json:"attachTime"`
	// Force detaches even when the running guest does not release the
	// device (DetachVolume Force; hypervisor.DiskForceDetacher).
	Force bool `json:"force,omitempty"`
	// Disk is what the VM opens: the volume's file, format, its serial
	// (the volume id without the dash, as /dev/disk/by-id shows on EC2
	// Nitro) and its I/O limits.
	Disk hypervisor.Disk `json:"disk"`
	// LastError says why the last hot-plug or unplug failed.
	LastError string `json:"lastError,omitempty"`
}

// Tag is a key/value tag.
type Tag struct {
	Key   string `json:"key"`
	Value string `json:"value"`
}

// MetadataOptions are the instance metadata service settings.
type MetadataOptions struct {
	HTTPTokens   string `json:"httpTokens"`   // optional or required
	HTTPEndpoint string `json:"httpEndpoint"` // enabled or disabled
	HopLimit     int    `json:"hopLimit"`
}

// BootSource is the image's boot material and the root disk's shape.
type BootSource struct {
	Disk                string `json:"disk"`
	Kernel              string `json:"kernel,omitempty"`
	Initrd              string `json:"initrd,omitempty"`
	KernelCmdline       string `json:"kernelCmdline,omitempty"`
	Architecture        string `json:"architecture"`
	RootDeviceName      string `json:"rootDeviceName"`
	RootSizeGiB         int    `json:"rootSizeGiB"`
	DeleteOnTermination bool   `json:"deleteOnTermination"`
}

// Spec is what the user asked for.
type Spec struct {
	// Desired is running, stopped or terminated.
	Desired string `json:"desired"`
	// ForceStop skips the graceful power-off of the next stop.
	ForceStop bool `json:"forceStop,omitempty"`
	// Reboots counts RebootInstances calls; the controller resets the VM
	// while Status.Reboots is behind.
	Reboots int64 `json:"reboots,omitempty"`
}

// Status is what the controller observed and did.
type Status struct {
	State                 string       `json:"state"`
	StateReason           *StateReason `json:"stateReason,omitempty"`
	StateTransitionReason string       `json:"stateTransitionReason,omitempty"`
	// Generated names, saved before the things they name are made.
	// OverlayPath is the root disk's file: the root volume's file in the
	// block store, or (instances launched before root volumes, and
	// services without Options.Volumes) the instance's own overlay.
	OverlayPath string `json:"overlayPath,omitempty"`
	// RootVolumeID is the EBS volume that is the root disk, recorded
	// before the volume is made; empty for old-style overlay roots.
	RootVolumeID string `json:"rootVolumeId,omitempty"`
	// RootDisk is the root volume's disk as the VM gets it (its id is
	// the volume id, its limits the volume type's), refreshed from the
	// volume record before every definition of the VM.
	RootDisk  *hypervisor.Disk `json:"rootDisk,omitempty"`
	ENIID     string           `json:"eniId,omitempty"`
	MAC       string           `json:"mac,omitempty"`
	PrivateIP string           `json:"privateIp,omitempty"`
	Tap       string           `json:"tap,omitempty"`
	NetNS     string           `json:"netns,omitempty"`
	// VMDefined is set once the hypervisor has the VM's definition.
	VMDefined bool `json:"vmDefined,omitempty"`
	// Reboots is how many of Spec.Reboots were carried out.
	Reboots int64 `json:"reboots,omitempty"`
	// EverRan is set once the VM first ran (a failed first launch ends
	// terminated, a failed restart stopped).
	EverRan bool `json:"everRan,omitempty"`
	// PublicIPReleased: a stop gave the ENI's public IP back to the pool;
	// the next start asks for a new one (AWS changes it on stop/start).
	PublicIPReleased bool `json:"publicIpReleased,omitempty"`
	// Attempts counts failed reconcile steps in a row; NextTry is when
	// the next one may happen (backoff); LastError says what failed.
	Attempts  int       `json:"attempts,omitempty"`
	NextTry   time.Time `json:"nextTry,omitempty"`
	LastError string    `json:"lastError,omitempty"`
	// TransitionTime is when State last changed.
	TransitionTime time.Time `json:"transitionTime"`
}

// StateReason is AWS's StateReason: why the instance is in its state.
type StateReason struct {
	Code    string `json:"code"`
	Message string `json:"message"`
}

// Reservation groups the instances of one RunInstances call.
type Reservation struct {
	ID          string   `json:"id"`
	AccountID   string   `json:"accountId"`
	InstanceIDs []string `json:"instanceIds"`
	ClientToken string   `json:"clientToken,omitempty"`
	// RequestHash identifies the request's parameters, for ClientToken
	// idempotency.
	RequestHash string `json:"requestHash,omitempty"`
}

// Network is what instances need from the VPC fabric (netfab).
type Network interface {
	// EnsureDefaultVPC returns the account's default VPC, creating it
	// (with one default subnet per zone) if it does not exist.
	EnsureDefaultVPC(ctx context.Context, accountID string) (VPC, error)
	// CreateENI makes the instance's primary network interface in a
	// subnet: tap, MAC and private IP. It should be idempotent per
	// instanceID (a controller retry after a crash asks again).
	CreateENI(ctx context.Context, accountID, subnetID, instanceID string) (ENI, error)
	// DeleteENI removes an ENI and its tap; NotFound-class errors are
	// taken as "already gone".
	DeleteENI(ctx context.Context, accountID, eniID string) error
}

// SubnetFinder is an optional ability of a Network: resolving a subnet
// of any VPC (not only the default one), so RunInstances accepts SubnetId
// of user-made VPCs. Without it only default-VPC subnets are accepted.
type SubnetFinder interface {
	FindSubnet(ctx context.Context, accountID, subnetID string) (Subnet, string, error) // subnet, its VPC id
}

// GroupResolver is an optional ability of a Network: checking the
// security groups of a launch, named by ID or (default VPC) by name: they
// must exist in the subnet's VPC, 1-5 of them; none given means the VPC's
// default group. It returns their IDs.
type GroupResolver interface {
	ResolveGroups(ctx context.Context, accountID, vpcID string, groupIDs, groupNames []string) ([]string, error)
}

// InterfaceMaker is an optional ability of a Network: creating an
// instance's ENI with its security groups and public-IP choice. Networks
// without it get CreateENI (no groups, no public IP).
type InterfaceMaker interface {
	CreateInstanceENI(ctx context.Context, r ENIRequest) (ENI, error)
}

// PublicIPs is an optional ability of a Network: a stopped instance
// gives its auto-assigned public IP back and gets a new one when it
// starts, as on EC2 (an Elastic IP stays).
type PublicIPs interface {
	// ReleasePublicIP reports whether the ENI had a public IP to give back.
	ReleasePublicIP(ctx context.Context, accountID, eniID string) (bool, error)
	AssignPublicIP(ctx context.Context, accountID, eniID string) error
}

// ENIRequest asks for an instance's primary network interface.
type ENIRequest struct {
	AccountID, SubnetID, InstanceID string
	Groups                          []string
	// AssociatePublicIP: nil follows the subnet's MapPublicIpOnLaunch.
	AssociatePublicIP *bool
}

// VPC is a VPC as instances see it.
type VPC struct {
	ID      string
	Subnets []Subnet
}

// Subnet is a subnet as instances see it.
type Subnet struct {
	ID, AvailabilityZone, CIDR string
	DefaultForAz               bool
}

// ENI is a network interface made for an instance.
type ENI struct {
	ID, MAC, PrivateIP, Tap, NetNSPath, SubnetID, VPCID string
}

// Images is the AMI catalogue.
type Images interface {
	// Get returns an AMI the caller may launch; errors carry the AWS
	// codes InvalidAMIID.Malformed or InvalidAMIID.NotFound.
	Get(ctx context.Context, callerAccount, amiID string) (Image, error)
}

// Image is an AMI as instances see it.
type Image struct {
	ID, Name, Architecture, RootDeviceName string
	RootSizeGiB                            int
	// Disk is the read-only qcow2 base image the root overlay is made on.
	Disk                          string
	Kernel, Initrd, KernelCmdline string
}

// KeyPairs are the accounts' EC2 key pairs.
type KeyPairs interface {
	// Get returns a key pair; InvalidKeyPair.NotFound if there is none.
	Get(ctx context.Context, accountID, name string) (KeyPair, error)
}

// KeyPair is a key pair as instances see it.
type KeyPair struct {
	Name      string
	PublicKey string // one OpenSSH authorized_keys line
}

// Metadata is what the instance metadata service serves an instance.
type Metadata struct {
	InstanceID       string
	ImageID          string
	InstanceType     string
	AvailabilityZone string
	Region           string
	LocalIPv4        string
	LocalHostname    string
	MAC              string
	PublicKeyName    string
	PublicKey        string
	SecurityGroups   []string
	UserData         []byte
	HTTPTokens       string
	HTTPEndpoint     string
	HopLimit         int
	ReservationID    string
	AccountID        string
	// The associated instance profile (empty without one) and the VPC,
	// from which the metadata service serves iam/ credentials.
	IAMInstanceProfileARN string
	IAMInstanceProfileID  string
	IAMAssociationID      string
	VPCID                 string
	// ENIID is the primary interface; PublicIPv4 its public or Elastic IP
	// (filled in by the daemon from the fabric, "" for none).
	ENIID      string
	PublicIPv4 string
}
