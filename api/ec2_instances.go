package api

import (
	"context"
	"encoding/base64"
	"fmt"
	"net/url"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/labcloud/labcloud/internal/errdefs"
	"github.com/labcloud/labcloud/internal/instances"
	"github.com/labcloud/labcloud/internal/tags"
	"github.com/labcloud/labcloud/netfab"
)

func (s *Server) registerInstances() {
	s.handle(ServiceEC2, "RunInstances", ec2Op(s.runInstances))
	s.handle(ServiceEC2, "DescribeInstances", ec2Op(s.describeInstances))
	s.handle(ServiceEC2, "StopInstances", ec2Op(s.stopInstances))
	s.handle(ServiceEC2, "StartInstances", ec2Op(s.startInstances))
	s.handle(ServiceEC2, "RebootInstances", ec2Op(s.rebootInstances))
	s.handle(ServiceEC2, "TerminateInstances", ec2Op(s.terminateInstances))
	s.handle(ServiceEC2, "GetConsoleOutput", ec2Op(s.getConsoleOutput))
	s.handle(ServiceEC2, "DescribeInstanceStatus", ec2Op(s.describeInstanceStatus))
	s.handle(ServiceEC2, "ModifyInstanceAttribute", ec2Op(s.modifyInstanceAttribute))
	s.handle(ServiceEC2, "DescribeInstanceAttribute", ec2Op(s.describeInstanceAttribute))
	s.handle(ServiceEC2, "DescribeInstanceTypes", ec2Op(s.describeInstanceTypes))
}

// Authorization entries of the instance actions: instance ARNs as the EC2
// service authorization reference names them.
func init() {
	all := func(*Call, url.Values) []string { return []string{"*"} }
	for _, a := range []string{"DescribeInstances", "DescribeInstanceStatus", "DescribeInstanceTypes"} {
		actionTable["ec2:"+a] = actionSpec{resources: all}
	}
	named := func(c *Call, p url.Values) []string {
		var out []string
		for k, vs := range p {
			lk := strings.ToLower(k)
			if lk == "instanceid" || strings.HasPrefix(lk, "instanceid.") {
				for _, v := range vs {
					out = append(out, instanceARN(c, v))
				}
			}
		}
		if len(out) == 0 {
			out = []string{instanceARN(c, "*")}
		}
		sort.Strings(out)
		return out
	}
	for _, a := range []string{"StopInstances", "StartInstances", "RebootInstances", "TerminateInstances",
		"GetConsoleOutput", "ModifyInstanceAttribute", "DescribeInstanceAttribute"} {
		actionTable["ec2:"+a] = actionSpec{resources: named}
	}
	actionTable["ec2:RunInstances"] = actionSpec{resources: func(c *Call, p url.Values) []string {
		region := c.Region
		if region == "" {
			region = "*"
		}
		out := []string{instanceARN(c, "*"), "arn:aws:ec2:" + region + "::image/" + orStar(p.Get("ImageId"))}
		if k := p.Get("KeyName"); k != "" {
			out = append(out, "arn:aws:ec2:"+region+":"+c.Principal.AccountID+":key-pair/"+k)
		}
		if sn := p.Get("SubnetId"); sn != "" {
			out = append(out, "arn:aws:ec2:"+region+":"+c.Principal.AccountID+":subnet/"+sn)
		}
		return out
	}, alsoOn: passProfileRole}
}

func orStar(s string) string {
	if s == "" {
		return "*"
	}
	return s
}

func instanceARN(c *Call, id string) string {
	region := c.Region
	if region == "" {
		region = "*"
	}
	return "arn:aws:ec2:" + region + ":" + c.Principal.AccountID + ":instance/" + id
}

func (s *Server) instancesService() (*instances.Service, error) {
	if s.opts.Instances == nil {
		return nil, errdefs.New(errdefs.ClassUnavailable, "Unavailable", "this labcloudd runs without the instance service; start it with a hypervisor configured")
	}
	return s.opts.Instances, nil
}

// InstanceTag is an EC2 tag of an instance (request Tag.N, response tagSet item).
type InstanceTag struct {
	Key   string  `locationName:"key"`
	Value *string `locationName:"value"`
}

// InstanceTagSpecification is RunInstances' TagSpecification.N.
type InstanceTagSpecification struct {
	ResourceType string        `locationName:"resourceType"`
	Tags         []InstanceTag `locationName:"Tag" locationNameList:"item"`
}

// RunNetworkInterface is RunInstances' NetworkInterface.N: labcloud
// instances have one interface, device index 0.
type RunNetworkInterface struct {
	DeviceIndex              *int32   `locationName:"DeviceIndex"`
	SubnetID                 string   `locationName:"SubnetId"`
	Groups                   []string `locationName:"SecurityGroupId"`
	AssociatePublicIPAddress *bool    `locationName:"AssociatePublicIpAddress"`
	DeleteOnTermination      *bool    `locationName:"DeleteOnTermination"`
	Description              string   `locationName:"Description"`
	NetworkInterfaceID       string   `locationName:"NetworkInterfaceId"`
}

// RunInstancesInput is the EC2 RunInstances request. Members labcloud does
// not act on yet (monitoring, EBS optimisation, credit and CPU options,
// termination protection) are accepted and ignored, so that
// scripts written for AWS keep working.
type RunInstancesInput struct {
	ImageID                           string                     `locationName:"ImageId"`
	InstanceType                      string                     `locationName:"InstanceType"`
	MinCount                          *int32                     `locationName:"MinCount"`
	MaxCount                          *int32                     `locationName:"MaxCount"`
	KeyName                           string                     `locationName:"KeyName"`
	UserData                          string                     `locationName:"UserData"`
	SubnetID                          string                     `locationName:"SubnetId"`
	SecurityGroupIDs                  []string                   `locationName:"SecurityGroupId"`
	SecurityGroups                    []string                   `locationName:"SecurityGroup"`
	Placement                         *RunPlacement              `locationName:"Placement"`
	TagSpecifications                 []InstanceTagSpecification `locationName:"TagSpecification"`
	ClientToken                       string                     `locationName:"ClientToken"`
	InstanceInitiatedShutdownBehavior string                     `locationName:"InstanceInitiatedShutdownBehavior"`
	BlockDeviceMappings               []RunBlockDeviceMapping    `locationName:"BlockDeviceMapping"`
	MetadataOptions                   *RunMetadataOptions        `locationName:"MetadataOptions"`
	NetworkInterfaces                 []RunNetworkInterface      `locationName:"NetworkInterface"`
	Monitoring                        *struct {
		Enabled *bool `locationName:"Enabled"`
	} `locationName:"Monitoring"`
	EbsOptimized          *bool `locationName:"EbsOptimized"`
	DisableAPITermination *bool `locationName:"DisableApiTermination"`
	DisableAPIStop        *bool `locationName:"DisableApiStop"`
	CreditSpecification   *struct {
		CPUCredits string `locationName:"CpuCredits"`
	} `locationName:"CreditSpecification"`
	CPUOptions *struct {
		CoreCount      *int32 `locationName:"CoreCount"`
		ThreadsPerCore *int32 `locationName:"ThreadsPerCore"`
	} `locationName:"CpuOptions"`
	IamInstanceProfile *struct {
		Arn  string `locationName:"Arn"`
		Name string `locationName:"Name"`
	} `locationName:"IamInstanceProfile"`
}

// RunPlacement is RunInstances' Placement.
type RunPlacement struct {
	AvailabilityZone string `locationName:"AvailabilityZone"`
	Tenancy          string `locationName:"Tenancy"`
	GroupName        string `locationName:"GroupName"`
}

// RunBlockDeviceMapping is RunInstances' BlockDeviceMapping.N.
type RunBlockDeviceMapping struct {
	DeviceName string `locationName:"DeviceName"`
	Ebs        *struct {
		VolumeSize          *int32 `locationName:"VolumeSize"`
		VolumeType          string `locationName:"VolumeType"`
		DeleteOnTermination *bool  `locationName:"DeleteOnTermination"`
		Iops                *int32 `locationName:"Iops"`
		Throughput          *int32 `locationName:"Throughput"`
		Encrypted           *bool  `locationName:"Encrypted"`
		SnapshotID          string `locationName:"SnapshotId"`
	} `locationName:"Ebs"`
	NoDevice    *string `locationName:"NoDevice"`
	VirtualName string  `locationName:"VirtualName"`
}

// RunMetadataOptions is RunInstances' MetadataOptions.
type RunMetadataOptions struct {
	HTTPTokens              string `locationName:"HttpTokens"`
	HTTPEndpoint            string `locationName:"HttpEndpoint"`
	HTTPPutResponseHopLimit *int32 `locationName:"HttpPutResponseHopLimit"`
	HTTPProtocolIpv6        string `locationName:"HttpProtocolIpv6"`
	InstanceMetadataTags    string `locationName:"InstanceMetadataTags"`
}

// ReservationItem is an EC2 Reservation (RunInstances' reply, and each
// item of DescribeInstances' reservationSet).
type ReservationItem struct {
	ReservationID string         `locationName:"reservationId"`
	OwnerID       string         `locationName:"ownerId"`
	Groups        []GroupItem    `locationName:"groupSet" locationNameList:"item"`
	Instances     []InstanceItem `locationName:"instancesSet" locationNameList:"item"`
}

// GroupItem names a security group.
type GroupItem struct {
	GroupID   string  `locationName:"groupId"`
	GroupName *string `locationName:"groupName"`
}

// InstanceStateItem is an EC2 InstanceState.
type InstanceStateItem struct {
	Code int32  `locationName:"code"`
	Name string `locationName:"name"`
}

// InstanceItem is an EC2 Instance.
type InstanceItem struct {
	InstanceID            string                 `locationName:"instanceId"`
	ImageID               string                 `locationName:"imageId"`
	State                 InstanceStateItem      `locationName:"instanceState"`
	PrivateDNSName        string                 `locationName:"privateDnsName"`
	PublicDNSName         string                 `locationName:"dnsName"`
	PublicIPAddress       *string                `locationName:"ipAddress"`
	StateTransitionReason string                 `locationName:"reason"`
	KeyName               *string                `locationName:"keyName"`
	AmiLaunchIndex        int32                  `locationName:"amiLaunchIndex"`
	InstanceType          string                 `locationName:"instanceType"`
	LaunchTime            time.Time              `locationName:"launchTime"`
	Placement             PlacementItem          `locationName:"placement"`
	Monitoring            MonitoringItem         `locationName:"monitoring"`
	SubnetID              string                 `locationName:"subnetId"`
	VpcID                 string                 `locationName:"vpcId"`
	PrivateIPAddress      *string                `locationName:"privateIpAddress"`
	StateReason           *StateReasonItem       `locationName:"stateReason"`
	Architecture          string                 `locationName:"architecture"`
	RootDeviceType        string                 `locationName:"rootDeviceType"`
	RootDeviceName        string                 `locationName:"rootDeviceName"`
	BlockDeviceMappings   []InstanceBlockDevice  `locationName:"blockDeviceMapping" locationNameList:"item"`
	VirtualizationType    string                 `locationName:"virtualizationType"`
	ClientToken           string                 `locationName:"clientToken"`
	Tags                  []InstanceTag          `locationName:"tagSet" locationNameList:"item"`
	Groups                []GroupItem            `locationName:"groupSet" locationNameList:"item"`
	SourceDestCheck       bool                   `locationName:"sourceDestCheck"`
	Hypervisor            string                 `locationName:"hypervisor"`
	NetworkInterfaces     []InstanceNetworkIface `locationName:"networkInterfaceSet" locationNameList:"item"`
	EbsOptimized          bool                   `locationName:"ebsOptimized"`
	EnaSupport            bool                   `locationName:"enaSupport"`
	CPUOptions            CPUOptionsItem         `locationName:"cpuOptions"`
	MetadataOptions       MetadataOptionsItem    `locationName:"metadataOptions"`
	BootMode              string                 `locationName:"currentInstanceBootMode"`
	PlatformDetails       string                 `locationName:"platformDetails"`
	UsageOperation        string                 `locationName:"usageOperation"`

	// IamInstanceProfile is the instance's profile, nil for none.
	IamInstanceProfile *IamInstanceProfileItem `locationName:"iamInstanceProfile"`
}

// PlacementItem is an EC2 Placement.
type PlacementItem struct {
	AvailabilityZone string `locationName:"availabilityZone"`
	GroupName        string `locationName:"groupName"`
	Tenancy          string `locationName:"tenancy"`
}

// MonitoringItem is an EC2 Monitoring.
type MonitoringItem struct {
	State string `locationName:"state"`
}

// StateReasonItem is an EC2 StateReason.
type StateReasonItem struct {
	Code    string `locationName:"code"`
	Message string `locationName:"message"`
}

// InstanceBlockDevice is an instance's block device mapping.
type InstanceBlockDevice struct {
	DeviceName string           `locationName:"deviceName"`
	Ebs        InstanceEbsBlock `locationName:"ebs"`
}

// InstanceEbsBlock is the EBS part of an instance block device mapping.
type InstanceEbsBlock struct {
	AttachTime          time.Time `locationName:"attachTime"`
	DeleteOnTermination bool      `locationName:"deleteOnTermination"`
	Status              string    `locationName:"status"`
	VolumeID            string    `locationName:"volumeId" omitempty:"true"`
}

// InstanceNetworkIfaceAssociation is the public address of an instance's
// network interface.
type InstanceNetworkIfaceAssociation struct {
	PublicIP      string `locationName:"publicIp"`
	PublicDNSName string `locationName:"publicDnsName"`
	IPOwnerID     string `locationName:"ipOwnerId"`
}

// InstanceNetworkIface is an instance's network interface.
type InstanceNetworkIface struct {
	NetworkInterfaceID string                           `locationName:"networkInterfaceId"`
	SubnetID           string                           `locationName:"subnetId"`
	VpcID              string                           `locationName:"vpcId"`
	OwnerID            string                           `locationName:"ownerId"`
	Status             string                           `locationName:"status"`
	MacAddress         string                           `locationName:"macAddress"`
	PrivateIPAddress   string                           `locationName:"privateIpAddress"`
	PrivateDNSName     string                           `locationName:"privateDnsName"`
	SourceDestCheck    bool                             `locationName:"sourceDestCheck"`
	Groups             []GroupItem                      `locationName:"groupSet" locationNameList:"item"`
	InterfaceType      string                           `locationName:"interfaceType"`
	Association        *InstanceNetworkIfaceAssociation `locationName:"association"`
	Attachment         struct {
		AttachmentID        string `locationName:"attachmentId"`
		DeviceIndex         int32  `locationName:"deviceIndex"`
		Status              string `locationName:"status"`
		DeleteOnTermination bool   `locationName:"deleteOnTermination"`
	} `locationName:"attachment"`
}

// CPUOptionsItem is an EC2 CpuOptions.
type CPUOptionsItem struct {
	CoreCount      int32 `locationName:"coreCount"`
	ThreadsPerCore int32 `locationName:"threadsPerCore"`
}

// MetadataOptionsItem is an EC2 InstanceMetadataOptionsResponse.
type MetadataOptionsItem struct {
	State                   string `locationName:"state"`
	HTTPTokens              string `locationName:"httpTokens"`
	HTTPPutResponseHopLimit int32  `locationName:"httpPutResponseHopLimit"`
	HTTPEndpoint            string `locationName:"httpEndpoint"`
	HTTPProtocolIpv6        string `locationName:"httpProtocolIpv6"`
	InstanceMetadataTags    string `locationName:"instanceMetadataTags"`
}

func (s *Server) runInstances(ctx context.Context, c *Call, in *RunInstancesInput) (*ReservationItem, error) {
	svc, err := s.instancesService()
	if err != nil {
		return nil, err
	}
	if in.ImageID == "" {
		return nil, errdefs.New(errdefs.ClassMissingParameter, "MissingParameter", "The request must contain the parameter ImageId")
	}
	if in.MinCount == nil || in.MaxCount == nil {
		return nil, errdefs.New(errdefs.ClassMissingParameter, "MissingParameter", "The request must contain the parameters MinCount and MaxCount")
	}
	ri := instances.RunInput{
		AccountID: c.Principal.AccountID, ImageID: in.ImageID, InstanceType: in.InstanceType,
		MinCount: int(*in.MinCount), MaxCount: int(*in.MaxCount), KeyName: in.KeyName, SubnetID: in.SubnetID,
		SecurityGroupIDs: in.SecurityGroupIDs, ClientToken: in.ClientToken, ShutdownBehavior: in.InstanceInitiatedShutdownBehavior,
	}
	if len(in.SecurityGroups) > 0 && in.SubnetID != "" {
		return nil, errdefs.InvalidParameter("InvalidParameterCombination", "The parameter groupName cannot be used with the parameter subnet; use SecurityGroupId")
	}
	ri.SecurityGroupNames = in.SecurityGroups
	if err := applyNetworkInterfaces(&ri, in); err != nil {
		return nil, err
	}
	if in.UserData != "" {
		b, err := base64.StdEncoding.DecodeString(in.UserData)
		if err != nil {
			return nil, errdefs.InvalidParameter("InvalidUserData.Malformed", "User data must be base64 encoded (%v)", err)
		}
		ri.UserData = b
	}
	if in.Placement != nil {
		ri.AvailabilityZone = in.Placement.AvailabilityZone
		if in.Placement.Tenancy != "" && in.Placement.Tenancy != "default" {
			return nil, errdefs.InvalidParameter("InvalidParameterValue", "Tenancy %s is not offered by labcloud; use default", in.Placement.Tenancy)
		}
	}
	for _, sp := range in.TagSpecifications {
		if sp.ResourceType != "instance" && sp.ResourceType != "volume" && sp.ResourceType != "network-interface" {
			return nil, errdefs.InvalidParameter("InvalidParameterValue", "'%s' is not a valid taggable resource type for this operation: use ResourceType=instance", sp.ResourceType)
		}
		if sp.ResourceType != "instance" {
			continue // no EBS volumes or ENI records to tag yet
		}
		for _, t := range sp.Tags {
			v := ""
			if t.Value != nil {
				v = *t.Value
			}
			ri.Tags = append(ri.Tags, instances.Tag{Key: t.Key, Value: v})
		}
	}
	for _, m := range in.BlockDeviceMappings {
		if m.Ebs == nil || m.Ebs.VolumeSize == nil {
			if m.Ebs != nil && m.Ebs.DeleteOnTermination != nil {
				ri.DeleteOnTermination = m.Ebs.DeleteOnTermination
			}
			continue
		}
		// Only the root device is supported: the first mapping with a size,
		// or the one named like the image's root device.
		if ri.RootSizeGiB != 0 {
			return nil, errdefs.New(errdefs.ClassNotImplemented, "Unsupported", "labcloud attaches only the root volume at launch; attach more volumes after launch")
		}
		ri.RootSizeGiB = int(*m.Ebs.VolumeSize)
		if ri.RootSizeGiB < 1 {
			return nil, errdefs.InvalidParameter("InvalidBlockDeviceMapping", "Volume size %d is invalid; use at least 1 GiB", ri.RootSizeGiB)
		}
		ri.DeleteOnTermination = m.Ebs.DeleteOnTermination
	}
	if ri.IAMProfile, err = s.runInstancesProfile(ctx, c, in); err != nil {
		return nil, err
	}
	if mo := in.MetadataOptions; mo != nil {
		ri.Metadata = instances.MetadataOptions{HTTPTokens: mo.HTTPTokens, HTTPEndpoint: mo.HTTPEndpoint}
		if mo.HTTPPutResponseHopLimit != nil {
			ri.Metadata.HopLimit = int(*mo.HTTPPutResponseHopLimit)
			if ri.Metadata.HopLimit == 0 {
				ri.Metadata.HopLimit = -1 // let the service refuse it
			}
		}
	}
	res, err := svc.RunInstances(ctx, ri)
	if err != nil {
		return nil, err
	}
	// The tag store holds every resource's tags (CreateTags, DescribeTags
	// and DescribeInstances read it); the launch's tags start there.
	var launchTags []tags.Tag
	for _, t := range ri.Tags {
		launchTags = append(launchTags, tags.Tag{Key: t.Key, Value: t.Value})
	}
	for _, i := range res.Instances {
		if s.opts.Tags == nil {
			break // a Server without a tag store (unit tests) keeps launch tags only
		}
		if err := s.opts.Tags.Apply(ctx, i.AccountID, i.ID, launchTags); err != nil {
			return nil, fmt.Errorf("tagging %s: %w", i.ID, err)
		}
	}
	out := &ReservationItem{ReservationID: res.Reservation.ID, OwnerID: res.Reservation.AccountID, Groups: []GroupItem{}}
	for _, i := range res.Instances {
		out.Instances = append(out.Instances, s.withNetworkView(ctx, instanceItem(svc, i)))
	}
	return out, nil
}

// applyNetworkInterfaces folds RunInstances' NetworkInterface.1 into the
// launch, with EC2's rules: its subnet and groups go inside it, not beside.
func applyNetworkInterfaces(ri *instances.RunInput, in *RunInstancesInput) error {
	if len(in.NetworkInterfaces) == 0 {
		return nil
	}
	if len(in.NetworkInterfaces) > 1 {
		return errdefs.InvalidParameter("InvalidParameterValue", "labcloud instances have one network interface; give one NetworkInterface (device index 0)")
	}
	n := in.NetworkInterfaces[0]
	if n.DeviceIndex != nil && *n.DeviceIndex != 0 {
		return errdefs.InvalidParameter("InvalidParameterValue", "The primary network interface must have DeviceIndex 0")
	}
	if n.NetworkInterfaceID != "" {
		return errdefs.InvalidParameter("InvalidParameterValue", "Attaching an existing network interface at launch is not supported; leave out NetworkInterfaceId")
	}
	if in.SubnetID != "" || len(in.SecurityGroupIDs) > 0 || len(in.SecurityGroups) > 0 {
		return errdefs.InvalidParameter("InvalidParameterCombination", "Network interfaces and an instance-level subnet ID or security groups may not be specified on the same request; put SubnetId and Groups inside NetworkInterface")
	}
	ri.SubnetID, ri.SecurityGroupIDs, ri.AssociatePublicIP = n.SubnetID, n.Groups, n.AssociatePublicIPAddress
	return nil
}

func groupsOf(i instances.Instance) []GroupItem {
	out := []GroupItem{}
	for _, g := range i.SecurityGroupIDs {
		out = append(out, GroupItem{GroupID: g})
	}
	return out
}

func instanceItem(svc *instances.Service, i instances.Instance) InstanceItem {
	typ, _ := instances.LookupInstanceType(i.InstanceType)
	it := InstanceItem{
		InstanceID: i.ID, ImageID: i.ImageID,
		State:                 InstanceStateItem{Code: int32(instances.StateCode(i.Status.State)), Name: i.Status.State},
		PrivateDNSName:        svc.PrivateDNSName(i.Status.PrivateIP),
		StateTransitionReason: i.Status.StateTransitionReason,
		AmiLaunchIndex:        int32(i.LaunchIndex), InstanceType: i.InstanceType, LaunchTime: i.LaunchTime,
		Placement:  PlacementItem{AvailabilityZone: i.AvailabilityZone, Tenancy: "default"},
		Monitoring: MonitoringItem{State: "disabled"},
		SubnetID:   i.SubnetID, VpcID: i.VPCID,
		Architecture: i.Boot.Architecture, RootDeviceType: "ebs", RootDeviceName: i.Boot.RootDeviceName,
		VirtualizationType: "hvm", ClientToken: i.ClientToken, Tags: []InstanceTag{}, Groups: groupsOf(i),
		SourceDestCheck: true, Hypervisor: "xen", EnaSupport: true,
		CPUOptions: CPUOptionsItem{CoreCount: int32(typ.DefaultCores), ThreadsPerCore: int32(typ.DefaultThreadsPerCore)},
		MetadataOptions: MetadataOptionsItem{State: "applied", HTTPTokens: i.Metadata.HTTPTokens, HTTPPutResponseHopLimit: int32(i.Metadata.HopLimit),
			HTTPEndpoint: i.Metadata.HTTPEndpoint, HTTPProtocolIpv6: "disabled", InstanceMetadataTags: "disabled"},
		BootMode: "legacy-bios", PlatformDetails: "Linux/UNIX", UsageOperation: "RunInstances",
		BlockDeviceMappings: []InstanceBlockDevice{}, NetworkInterfaces: []InstanceNetworkIface{},
		IamInstanceProfile: iamProfileItem(i),
	}
	if i.KeyName != "" {
		k := i.KeyName
		it.KeyName = &k
	}
	if i.Status.PrivateIP != "" {
		ip := i.Status.PrivateIP
		it.PrivateIPAddress = &ip
	}
	if r := i.Status.StateReason; r != nil {
		it.StateReason = &StateReasonItem{Code: r.Code, Message: r.Message}
	}
	for _, t := range i.Tags {
		v := t.Value
		it.Tags = append(it.Tags, InstanceTag{Key: t.Key, Value: &v})
	}
	if i.Status.State != instances.StateTerminated {
		it.BlockDeviceMappings = append(it.BlockDeviceMappings, InstanceBlockDevice{DeviceName: i.Boot.RootDeviceName,
			Ebs: InstanceEbsBlock{AttachTime: i.LaunchTime, DeleteOnTermination: i.Boot.DeleteOnTermination, Status: "attached",
				VolumeID: i.Status.RootVolumeID}}) // empty for a root from before root volumes
		for _, a := range i.Volumes { // EBS volumes attached after launch
			it.BlockDeviceMappings = append(it.BlockDeviceMappings, InstanceBlockDevice{DeviceName: a.Device,
				Ebs: InstanceEbsBlock{AttachTime: a.AttachTime, DeleteOnTermination: a.DeleteOnTermination, Status: a.State, VolumeID: a.VolumeID}})
		}
	}
	if i.Status.ENIID != "" {
		n := InstanceNetworkIface{NetworkInterfaceID: i.Status.ENIID, SubnetID: i.SubnetID, VpcID: i.VPCID, OwnerID: i.AccountID,
			Status: "in-use", MacAddress: i.Status.MAC, PrivateIPAddress: i.Status.PrivateIP,
			PrivateDNSName: svc.PrivateDNSName(i.Status.PrivateIP), SourceDestCheck: true, Groups: groupsOf(i), InterfaceType: "interface"}
		n.Attachment.AttachmentID = "eni-attach-" + strings.TrimPrefix(i.Status.ENIID, "eni-")
		n.Attachment.Status = "attached"
		n.Attachment.DeleteOnTermination = true
		it.NetworkInterfaces = append(it.NetworkInterfaces, n)
	}
	return it
}

// DescribeInstancesInput is the EC2 DescribeInstances request.
type DescribeInstancesInput struct {
	InstanceIDs []string `locationName:"InstanceId"`
	Filters     []Filter `locationName:"Filter"`
	MaxResults  *int32   `locationName:"MaxResults"`
	NextToken   *string  `locationName:"NextToken"`
}

// DescribeInstancesOutput is the EC2 DescribeInstances response.
type DescribeInstancesOutput struct {
	Reservations []ReservationItem `locationName:"reservationSet" locationNameList:"item"`
	NextToken    *string           `locationName:"nextToken"`
}

var instanceFilters = filterFields[instances.Instance]{
	"instance-id":         func(i instances.Instance) []string { return []string{i.ID} },
	"instance-state-name": func(i instances.Instance) []string { return []string{i.Status.State} },
	"instance-state-code": func(i instances.Instance) []string {
		return []string{strconv.Itoa(instances.StateCode(i.Status.State))}
	},
	"vpc-id":             func(i instances.Instance) []string { return []string{i.VPCID} },
	"subnet-id":          func(i instances.Instance) []string { return []string{i.SubnetID} },
	"image-id":           func(i instances.Instance) []string { return []string{i.ImageID} },
	"instance-type":      func(i instances.Instance) []string { return []string{i.InstanceType} },
	"availability-zone":  func(i instances.Instance) []string { return []string{i.AvailabilityZone} },
	"private-ip-address": func(i instances.Instance) []string { return nonEmpty(i.Status.PrivateIP) },
	"key-name":           func(i instances.Instance) []string { return nonEmpty(i.KeyName) },
	"reservation-id":     func(i instances.Instance) []string { return []string{i.ReservationID} },
	"client-token":       func(i instances.Instance) []string { return nonEmpty(i.ClientToken) },
	"architecture":       func(i instances.Instance) []string { return []string{i.Boot.Architecture} },
	"owner-id":           func(i instances.Instance) []string { return []string{i.AccountID} },
	"tag-key": func(i instances.Instance) []string {
		var out []string
		for _, t := range i.Tags {
			out = append(out, t.Key)
		}
		return out
	},
	"tag-value": func(i instances.Instance) []string {
		var out []string
		for _, t := range i.Tags {
			out = append(out, t.Value)
		}
		return out
	},
	"instance.group-id": func(i instances.Instance) []string { return i.SecurityGroupIDs },
}

func nonEmpty(s string) []string {
	if s == "" {
		return nil
	}
	return []string{s}
}

// withNetworkView adds what the fabric knows of the instance's interface:
// its public (or Elastic) IP and DNS name, and its security groups with
// their names, which ModifyInstanceAttribute may have changed since launch.
func (s *Server) withNetworkView(ctx context.Context, it InstanceItem) InstanceItem {
	if s.opts.Network == nil || len(it.NetworkInterfaces) == 0 {
		return it
	}
	n := &it.NetworkInterfaces[0]
	info, err := s.opts.Network.InterfaceInfo(ctx, n.OwnerID, n.NetworkInterfaceID)
	if err != nil {
		return it // the ENI is going away (terminating): show the record
	}
	if info.PublicIP != "" {
		ip := info.PublicIP
		it.PublicIPAddress = &ip
		it.PublicDNSName = s.opts.Network.PublicDNSName(ip)
		n.Association = &InstanceNetworkIfaceAssociation{PublicIP: ip, PublicDNSName: it.PublicDNSName, IPOwnerID: info.IPOwner}
	}
	if len(info.Groups) > 0 {
		groups := []GroupItem{}
		for _, g := range info.Groups {
			name := g.Name
			groups = append(groups, GroupItem{GroupID: g.ID, GroupName: &name})
		}
		it.Groups, n.Groups = groups, groups
	}
	it.SourceDestCheck, n.SourceDestCheck = info.SourceDestCheck, info.SourceDestCheck
	return it
}

// withStoredTags replaces the instances' launch tags with their current
// tags from the tag store, which CreateTags and DeleteTags change.
func (s *Server) withStoredTags(ctx context.Context, acct string, list []instances.Instance) error {
	if s.opts.Tags == nil {
		return nil
	}
	all, err := s.opts.Tags.List(ctx, acct)
	if err != nil {
		return err
	}
	byID := map[string][]instances.Tag{}
	for _, t := range all {
		byID[t.ResourceID] = append(byID[t.ResourceID], instances.Tag{Key: t.Key, Value: t.Value})
	}
	for n := range list {
		list[n].Tags = byID[list[n].ID]
	}
	return nil
}

// filterInstances applies the instance filters, tag:<key> included.
func filterInstances(list []instances.Instance, filters []Filter, fields filterFields[instances.Instance]) ([]instances.Instance, error) {
	all := filterFields[instances.Instance]{}
	for k, v := range fields {
		all[k] = v
	}
	for _, f := range filters {
		if key, ok := strings.CutPrefix(f.Name, "tag:"); ok {
			all[f.Name] = func(i instances.Instance) []string {
				for _, t := range i.Tags {
					if t.Key == key {
						return []string{t.Value}
					}
				}
				return nil
			}
		}
	}
	return applyFilters(list, filters, all)
}

// pageInstances cuts one page of MaxResults (minMax–maxMax) from list; the
// token is the id of the first instance of the next page.
func pageInstances(list []instances.Instance, maxResults *int32, nextToken *string, minMax, maxMax int) ([]instances.Instance, *string, error) {
	start := 0
	if nextToken != nil && *nextToken != "" {
		raw, err := base64.RawURLEncoding.DecodeString(*nextToken)
		if err != nil {
			return nil, nil, errdefs.InvalidParameter("InvalidParameterValue", "Invalid NextToken: pass the nextToken of the previous response unchanged")
		}
		start = len(list)
		for n, i := range list {
			if i.ID == string(raw) {
				start = n
				break
			}
		}
	}
	if maxResults == nil {
		return list[start:], nil, nil
	}
	n := int(*maxResults)
	if n < minMax || n > maxMax {
		return nil, nil, errdefs.InvalidParameter("InvalidParameterValue", "Value ( %d ) for parameter maxResults is invalid. Expecting a value between %d and %d", n, minMax, maxMax)
	}
	end := min(start+n, len(list))
	var tok *string
	if end < len(list) {
		t := base64.RawURLEncoding.EncodeToString([]byte(list[end].ID))
		tok = &t
	}
	return list[start:end], tok, nil
}

func (s *Server) describeInstances(ctx context.Context, c *Call, in *DescribeInstancesInput) (*DescribeInstancesOutput, error) {
	svc, err := s.instancesService()
	if err != nil {
		return nil, err
	}
	if in.MaxResults != nil && len(in.InstanceIDs) > 0 {
		return nil, errdefs.InvalidParameter("InvalidParameterCombination", "The parameter instancesSet cannot be used with the parameter maxResults")
	}
	list, err := svc.DescribeInstances(ctx, c.Principal.AccountID, in.InstanceIDs)
	if err != nil {
		return nil, err
	}
	if err := s.withStoredTags(ctx, c.Principal.AccountID, list); err != nil {
		return nil, err
	}
	if list, err = filterInstances(list, in.Filters, instanceFilters); err != nil {
		return nil, err
	}
	page, tok, err := pageInstances(list, in.MaxResults, in.NextToken, 5, 1000)
	if err != nil {
		return nil, err
	}
	out := &DescribeInstancesOutput{Reservations: []ReservationItem{}, NextToken: tok}
	byRes := map[string]int{}
	for _, i := range page {
		n, ok := byRes[i.ReservationID]
		if !ok {
			n = len(out.Reservations)
			byRes[i.ReservationID] = n
			out.Reservations = append(out.Reservations, ReservationItem{ReservationID: i.ReservationID, OwnerID: i.AccountID, Groups: []GroupItem{}})
		}
		out.Reservations[n].Instances = append(out.Reservations[n].Instances, s.withNetworkView(ctx, instanceItem(svc, i)))
	}
	return out, nil
}

// InstanceIDsInput is the request of Start/Reboot/TerminateInstances.
type InstanceIDsInput struct {
	InstanceIDs []string `locationName:"InstanceId"`
	// AdditionalInfo (StartInstances) is accepted and ignored.
	AdditionalInfo string `locationName:"AdditionalInfo"`
}

// StopInstancesInput is the EC2 StopInstances request.
type StopInstancesInput struct {
	InstanceIDs    []string `locationName:"InstanceId"`
	Force          *bool    `locationName:"Force"`
	Hibernate      *bool    `locationName:"Hibernate"`
	SkipOsShutdown *bool    `locationName:"SkipOsShutdown"`
}

// InstanceStateChangeItem is an EC2 InstanceStateChange.
type InstanceStateChangeItem struct {
	InstanceID    string            `locationName:"instanceId"`
	CurrentState  InstanceStateItem `locationName:"currentState"`
	PreviousState InstanceStateItem `locationName:"previousState"`
}

// StopInstancesOutput is the StopInstances response.
type StopInstancesOutput struct {
	Instances []InstanceStateChangeItem `locationName:"instancesSet" locationNameList:"item"`
}

// StartInstancesOutput is the StartInstances response.
type StartInstancesOutput = StopInstancesOutput

// TerminateInstancesOutput is the TerminateInstances response.
type TerminateInstancesOutput = StopInstancesOutput

func stateChanges(ch []instances.StateChange) *StopInstancesOutput {
	out := &StopInstancesOutput{Instances: []InstanceStateChangeItem{}}
	for _, c := range ch {
		out.Instances = append(out.Instances, InstanceStateChangeItem{InstanceID: c.InstanceID,
			CurrentState:  InstanceStateItem{Code: int32(instances.StateCode(c.Current)), Name: c.Current},
			PreviousState: InstanceStateItem{Code: int32(instances.StateCode(c.Previous)), Name: c.Previous}})
	}
	return out
}

func (s *Server) stopInstances(ctx context.Context, c *Call, in *StopInstancesInput) (*StopInstancesOutput, error) {
	svc, err := s.instancesService()
	if err != nil {
		return nil, err
	}
	if in.Hibernate != nil && *in.Hibernate {
		return nil, errdefs.New(errdefs.ClassNotImplemented, "UnsupportedHibernationConfiguration", "labcloud instances cannot hibernate; stop them without Hibernate")
	}
	force := (in.Force != nil && *in.Force) || (in.SkipOsShutdown != nil && *in.SkipOsShutdown)
	ch, err := svc.StopInstances(ctx, c.Principal.AccountID, in.InstanceIDs, force)
	if err != nil {
		return nil, err
	}
	return stateChanges(ch), nil
}

func (s *Server) startInstances(ctx context.Context, c *Call, in *InstanceIDsInput) (*StartInstancesOutput, error) {
	svc, err := s.instancesService()
	if err != nil {
		return nil, err
	}
	ch, err := svc.StartInstances(ctx, c.Principal.AccountID, in.InstanceIDs)
	if err != nil {
		return nil, err
	}
	return stateChanges(ch), nil
}

func (s *Server) terminateInstances(ctx context.Context, c *Call, in *InstanceIDsInput) (*TerminateInstancesOutput, error) {
	svc, err := s.instancesService()
	if err != nil {
		return nil, err
	}
	ch, err := svc.TerminateInstances(ctx, c.Principal.AccountID, in.InstanceIDs)
	if err != nil {
		return nil, err
	}
	return stateChanges(ch), nil
}

// InstanceReturnOutput is the {return: true} reply.
type InstanceReturnOutput struct {
	Return bool `locationName:"return"`
}

func (s *Server) rebootInstances(ctx context.Context, c *Call, in *InstanceIDsInput) (*InstanceReturnOutput, error) {
	svc, err := s.instancesService()
	if err != nil {
		return nil, err
	}
	if err := svc.RebootInstances(ctx, c.Principal.AccountID, in.InstanceIDs); err != nil {
		return nil, err
	}
	return &InstanceReturnOutput{Return: true}, nil
}

// GetConsoleOutputInput is the EC2 GetConsoleOutput request.
type GetConsoleOutputInput struct {
	InstanceID string `locationName:"InstanceId"`
	Latest     *bool  `locationName:"Latest"`
}

// GetConsoleOutputOutput is the EC2 GetConsoleOutput response.
type GetConsoleOutputOutput struct {
	InstanceID string    `locationName:"instanceId"`
	Timestamp  time.Time `locationName:"timestamp"`
	Output     string    `locationName:"output"`
}

func (s *Server) getConsoleOutput(ctx context.Context, c *Call, in *GetConsoleOutputInput) (*GetConsoleOutputOutput, error) {
	svc, err := s.instancesService()
	if err != nil {
		return nil, err
	}
	if in.InstanceID == "" {
		return nil, errdefs.New(errdefs.ClassMissingParameter, "MissingParameter", "The request must contain the parameter InstanceId")
	}
	b, ts, err := svc.ConsoleOutput(ctx, c.Principal.AccountID, in.InstanceID)
	if err != nil {
		return nil, err
	}
	return &GetConsoleOutputOutput{InstanceID: in.InstanceID, Timestamp: ts, Output: base64.StdEncoding.EncodeToString(b)}, nil
}

// DescribeInstanceStatusInput is the EC2 DescribeInstanceStatus request.
type DescribeInstanceStatusInput struct {
	InstanceIDs         []string `locationName:"InstanceId"`
	Filters             []Filter `locationName:"Filter"`
	IncludeAllInstances *bool    `locationName:"IncludeAllInstances"`
	MaxResults          *int32   `locationName:"MaxResults"`
	NextToken           *string  `locationName:"NextToken"`
}

// DescribeInstanceStatusOutput is the EC2 DescribeInstanceStatus response.
type DescribeInstanceStatusOutput struct {
	InstanceStatuses []InstanceStatusItem `locationName:"instanceStatusSet" locationNameList:"item"`
	NextToken        *string              `locationName:"nextToken"`
}

// InstanceStatusItem is an EC2 InstanceStatus.
type InstanceStatusItem struct {
	InstanceID       string            `locationName:"instanceId"`
	AvailabilityZone string            `locationName:"availabilityZone"`
	InstanceState    InstanceStateItem `locationName:"instanceState"`
	InstanceStatus   StatusSummary     `locationName:"instanceStatus"`
	SystemStatus     StatusSummary     `locationName:"systemStatus"`
	Events           []struct{}        `locationName:"eventsSet" locationNameList:"item"`
}

// StatusSummary is an EC2 InstanceStatusSummary.
type StatusSummary struct {
	Status  string         `locationName:"status"`
	Details []StatusDetail `locationName:"details" locationNameList:"item"`
}

// StatusDetail is an EC2 InstanceStatusDetails.
type StatusDetail struct {
	Name   string `locationName:"name"`
	Status string `locationName:"status"`
}

var instanceStatusFilters = filterFields[instances.Instance]{
	"instance-state-name": instanceFilters["instance-state-name"],
	"instance-state-code": instanceFilters["instance-state-code"],
	"availability-zone":   instanceFilters["availability-zone"],
	"instance-status.status": func(i instances.Instance) []string {
		return []string{summaryStatus(i)}
	},
	"system-status.status": func(i instances.Instance) []string {
		return []string{summaryStatus(i)}
	},
}

// summaryStatus is "ok" for a running instance (its VM runs: the
// controller would have recorded it stopped otherwise), else
// not-applicable.
func summaryStatus(i instances.Instance) string {
	if i.Status.State == instances.StateRunning {
		return "ok"
	}
	return "not-applicable"
}

func (s *Server) describeInstanceStatus(ctx context.Context, c *Call, in *DescribeInstanceStatusInput) (*DescribeInstanceStatusOutput, error) {
	svc, err := s.instancesService()
	if err != nil {
		return nil, err
	}
	if in.MaxResults != nil && len(in.InstanceIDs) > 0 {
		return nil, errdefs.InvalidParameter("InvalidParameterCombination", "The parameter instancesSet cannot be used with the parameter maxResults")
	}
	list, err := svc.DescribeInstances(ctx, c.Principal.AccountID, in.InstanceIDs)
	if err != nil {
		return nil, err
	}
	if in.IncludeAllInstances == nil || !*in.IncludeAllInstances {
		var running []instances.Instance
		for _, i := range list {
			if i.Status.State == instances.StateRunning {
				running = append(running, i)
			}
		}
		list = running
	}
	if list, err = applyFilters(list, in.Filters, instanceStatusFilters); err != nil {
		return nil, err
	}
	page, tok, err := pageInstances(list, in.MaxResults, in.NextToken, 5, 1000)
	if err != nil {
		return nil, err
	}
	out := &DescribeInstanceStatusOutput{InstanceStatuses: []InstanceStatusItem{}, NextToken: tok}
	for _, i := range page {
		st := summaryStatus(i)
		sum := StatusSummary{Status: st, Details: []StatusDetail{}}
		if st == "ok" {
			sum.Details = append(sum.Details, StatusDetail{Name: "reachability", Status: "passed"})
		}
		out.InstanceStatuses = append(out.InstanceStatuses, InstanceStatusItem{InstanceID: i.ID, AvailabilityZone: i.AvailabilityZone,
			InstanceState:  InstanceStateItem{Code: int32(instances.StateCode(i.Status.State)), Name: i.Status.State},
			InstanceStatus: sum, SystemStatus: sum, Events: []struct{}{}})
	}
	return out, nil
}

// AttributeValueInput is an EC2 AttributeValue in a request.
type AttributeValueInput struct {
	Value *string `locationName:"Value"`
}

// BlobAttributeValueInput is an EC2 BlobAttributeValue in a request.
type BlobAttributeValueInput struct {
	Value []byte `locationName:"Value"`
}

// ModifyInstanceAttributeInput is the EC2 ModifyInstanceAttribute request.
// labcloud changes the instance type and the user data (of a stopped
// instance), and the security groups and source/destination check of
// its network interface (at any time); other attributes are refused as
// unsupported.
type ModifyInstanceAttributeInput struct {
	InstanceID   string                   `locationName:"InstanceId"`
	Attribute    string                   `locationName:"Attribute"`
	Value        *string                  `locationName:"Value"`
	InstanceType *AttributeValueInput     `locationName:"InstanceType"`
	UserData     *BlobAttributeValueInput `locationName:"UserData"`
	// Groups replaces the security groups of the instance's interface,
	// also while it runs.
	Groups []string `locationName:"GroupId"`
	// SourceDestCheck off lets the instance forward others' packets (a
	// NAT instance).
	SourceDestCheck *AttributeBooleanValueInput `locationName:"SourceDestCheck"`
	// BlockDeviceMappings change DeleteOnTermination of attached volumes.
	BlockDeviceMappings []InstanceBlockDeviceMappingSpec `locationName:"BlockDeviceMapping"`
}

// AttributeBooleanValueInput is EC2's AttributeBooleanValue in a request.
type AttributeBooleanValueInput struct {
	Value *bool `locationName:"Value"`
}

// modifyInstanceInterface changes the security groups or the
// source/destination check of an instance's network interface; the
// filter follows at once, running or not.
func (s *Server) modifyInstanceInterface(ctx context.Context, c *Call, svc *instances.Service, in *ModifyInstanceAttributeInput) (*InstanceReturnOutput, error) {
	nf, err := s.vpcFabric()
	if err != nil {
		return nil, err
	}
	i, err := svc.Get(ctx, c.Principal.AccountID, in.InstanceID)
	if err != nil {
		return nil, err
	}
	if i.Status.ENIID == "" {
		return nil, errdefs.Conflict("IncorrectInstanceState", "The instance '%s' has no network interface yet (it is %s); try again when it is running", i.ID, i.Status.State)
	}
	change := netfab.ENIChange{Groups: in.Groups}
	if in.SourceDestCheck != nil {
		change.SourceDestCheck = in.SourceDestCheck.Value
	}
	if _, err := nf.ModifyENI(ctx, c.Principal.AccountID, i.Status.ENIID, change); err != nil {
		return nil, err
	}
	return &InstanceReturnOutput{Return: true}, nil
}

func (s *Server) modifyInstanceAttribute(ctx context.Context, c *Call, in *ModifyInstanceAttributeInput) (*InstanceReturnOutput, error) {
	svc, err := s.instancesService()
	if err != nil {
		return nil, err
	}
	if in.InstanceID == "" {
		return nil, errdefs.New(errdefs.ClassMissingParameter, "MissingParameter", "The request must contain the parameter InstanceId")
	}
	if in.Attribute == "sourceDestCheck" && in.SourceDestCheck == nil {
		// The CLI's --attribute sourceDestCheck --value false form.
		if in.Value == nil {
			return nil, errdefs.New(errdefs.ClassMissingParameter, "MissingParameter", "Attribute sourceDestCheck needs a Value (true or false)")
		}
		b, err := strconv.ParseBool(*in.Value)
		if err != nil {
			return nil, errdefs.InvalidParameter("InvalidParameterValue", "Value %q of sourceDestCheck is not a boolean: give true or false", *in.Value)
		}
		in.SourceDestCheck = &AttributeBooleanValueInput{Value: &b}
	}
	if in.SourceDestCheck != nil && in.SourceDestCheck.Value == nil {
		return nil, errdefs.New(errdefs.ClassMissingParameter, "MissingParameter", "SourceDestCheck needs a Value (true or false)")
	}
	if len(in.Groups) > 0 || in.SourceDestCheck != nil {
		return s.modifyInstanceInterface(ctx, c, svc, in)
	}
	if len(in.BlockDeviceMappings) > 0 {
		return s.modifyInstanceBlockDevices(ctx, c, svc, in) // ec2_attach.go
	}
	var typ *string
	var data []byte
	hasData := false
	switch {
	case in.InstanceType != nil && in.InstanceType.Value != nil:
		typ = in.InstanceType.Value
	case in.UserData != nil:
		data, hasData = in.UserData.Value, true
	case in.Attribute == "instanceType" && in.Value != nil:
		typ = in.Value
	case in.Attribute == "userData" && in.Value != nil:
		b, err := base64.StdEncoding.DecodeString(*in.Value)
		if err != nil {
			return nil, errdefs.InvalidParameter("InvalidParameterValue", "User data must be base64 encoded (%v)", err)
		}
		data, hasData = b, true
	case in.Attribute != "":
		return nil, errdefs.New(errdefs.ClassNotImplemented, "UnsupportedOperation", "labcloud can modify the instanceType, userData and sourceDestCheck attributes (and GroupId.N), not %s", in.Attribute)
	default:
		return nil, errdefs.New(errdefs.ClassMissingParameter, "MissingParameter", "Name the attribute to modify: InstanceType.Value or UserData.Value")
	}
	if typ != nil {
		err = svc.ModifyInstanceType(ctx, c.Principal.AccountID, in.InstanceID, *typ)
	} else if hasData {
		err = svc.ModifyUserData(ctx, c.Principal.AccountID, in.InstanceID, data)
	}
	if err != nil {
		return nil, err
	}
	return &InstanceReturnOutput{Return: true}, nil
}

// DescribeInstanceTypesInput is the EC2 DescribeInstanceTypes request.
type DescribeInstanceTypesInput struct {
	InstanceTypes []string `locationName:"InstanceType"`
	Filters       []Filter `locationName:"Filter"`
	MaxResults    *int32   `locationName:"MaxResults"`
	NextToken     *string  `locationName:"NextToken"`
}

// DescribeInstanceTypesOutput is the EC2 DescribeInstanceTypes response.
type DescribeInstanceTypesOutput struct {
	InstanceTypes []InstanceTypeItem `locationName:"instanceTypeSet" locationNameList:"item"`
	NextToken     *string            `locationName:"nextToken"`
}

// InstanceTypeItem is an EC2 InstanceTypeInfo.
type InstanceTypeItem struct {
	InstanceType                 string   `locationName:"instanceType"`
	CurrentGeneration            bool     `locationName:"currentGeneration"`
	FreeTierEligible             bool     `locationName:"freeTierEligible"`
	SupportedUsageClasses        []string `locationName:"supportedUsageClasses" locationNameList:"item"`
	SupportedRootDeviceTypes     []string `locationName:"supportedRootDeviceTypes" locationNameList:"item"`
	SupportedVirtualizationTypes []string `locationName:"supportedVirtualizationTypes" locationNameList:"item"`
	BareMetal                    bool     `locationName:"bareMetal"`
	Hypervisor                   string   `locationName:"hypervisor"`
	ProcessorInfo                struct {
		SupportedArchitectures   []string `locationName:"supportedArchitectures" locationNameList:"item"`
		SustainedClockSpeedInGhz float64  `locationName:"sustainedClockSpeedInGhz"`
		Manufacturer             string   `locationName:"manufacturer"`
	} `locationName:"processorInfo"`
	VCPUInfo struct {
		DefaultVCpus          int32 `locationName:"defaultVCpus"`
		DefaultCores          int32 `locationName:"defaultCores"`
		DefaultThreadsPerCore int32 `locationName:"defaultThreadsPerCore"`
	} `locationName:"vCpuInfo"`
	MemoryInfo struct {
		SizeInMiB int64 `locationName:"sizeInMiB"`
	} `locationName:"memoryInfo"`
	InstanceStorageSupported bool                 `locationName:"instanceStorageSupported"`
	InstanceStorageInfo      *InstanceStorageItem `locationName:"instanceStorageInfo"`
	NetworkInfo              struct {
		NetworkPerformance        string `locationName:"networkPerformance"`
		MaximumNetworkInterfaces  int32  `locationName:"maximumNetworkInterfaces"`
		Ipv4AddressesPerInterface int32  `locationName:"ipv4AddressesPerInterface"`
		Ipv6AddressesPerInterface int32  `locationName:"ipv6AddressesPerInterface"`
		Ipv6Supported             bool   `locationName:"ipv6Supported"`
		EnaSupport                string `locationName:"enaSupport"`
	} `locationName:"networkInfo"`
	GpuInfo                       *GpuInfoItem `locationName:"gpuInfo"`
	BurstablePerformanceSupported bool         `locationName:"burstablePerformanceSupported"`
	HibernationSupported          bool         `locationName:"hibernationSupported"`
	DedicatedHostsSupported       bool         `locationName:"dedicatedHostsSupported"`
	AutoRecoverySupported         bool         `locationName:"autoRecoverySupported"`
	SupportedBootModes            []string     `locationName:"supportedBootModes" locationNameList:"item"`
	// LabcloudNote is labcloud's own member (SDKs skip unknown elements;
	// visible in raw responses and --debug): what a labcloud VM of the
	// type lacks, e.g. the GPU or the instance-store disks.
	LabcloudNote *string `locationName:"labcloudNote"`
}

// InstanceStorageItem is an EC2 InstanceStorageInfo.
type InstanceStorageItem struct {
	TotalSizeInGB int64 `locationName:"totalSizeInGB"`
	Disks         []struct {
		SizeInGB int64  `locationName:"sizeInGB"`
		Count    int32  `locationName:"count"`
		Type     string `locationName:"type"`
	} `locationName:"disks" locationNameList:"item"`
	NvmeSupport string `locationName:"nvmeSupport"`
}

// GpuInfoItem is an EC2 GpuInfo.
type GpuInfoItem struct {
	Gpus []struct {
		Name         string `locationName:"name"`
		Manufacturer string `locationName:"manufacturer"`
		Count        int32  `locationName:"count"`
		MemoryInfo   struct {
			SizeInMiB int32 `locationName:"sizeInMiB"`
		} `locationName:"memoryInfo"`
	} `locationName:"gpus" locationNameList:"item"`
	TotalGpuMemoryInMiB int32 `locationName:"totalGpuMemoryInMiB"`
}

var instanceTypeFilters = filterFields[instances.InstanceType]{
	"instance-type":                   func(t instances.InstanceType) []string { return []string{t.Name} },
	"vcpu-info.default-vcpus":         func(t instances.InstanceType) []string { return []string{strconv.Itoa(t.VCPUs)} },
	"memory-info.size-in-mib":         func(t instances.InstanceType) []string { return []string{strconv.Itoa(t.MemoryMiB)} },
	"current-generation":              func(t instances.InstanceType) []string { return []string{strconv.FormatBool(t.CurrentGeneration)} },
	"burstable-performance-supported": func(t instances.InstanceType) []string { return []string{strconv.FormatBool(t.Burstable)} },
	"hypervisor":                      func(t instances.InstanceType) []string { return []string{t.Hypervisor} },
	"processor-info.supported-architecture": func(t instances.InstanceType) []string {
		return []string{t.Architecture}
	},
	"instance-storage-supported": func(t instances.InstanceType) []string {
		return []string{strconv.FormatBool(t.InstanceStorage != nil)}
	},
	"free-tier-eligible": func(t instances.InstanceType) []string {
		return []string{strconv.FormatBool(t.Name == "t3.micro")}
	},
}

func (s *Server) describeInstanceTypes(ctx context.Context, c *Call, in *DescribeInstanceTypesInput) (*DescribeInstanceTypesOutput, error) {
	types := instances.InstanceTypes()
	types, err := selectByName(types, in.InstanceTypes, func(t instances.InstanceType) string { return t.Name },
		func(n string) error {
			return errdefs.InvalidParameter("InvalidInstanceType", "The following supplied instance types do not exist: [%s]", n)
		})
	if err != nil {
		return nil, err
	}
	if types, err = applyFilters(types, in.Filters, instanceTypeFilters); err != nil {
		return nil, err
	}
	start := 0
	if in.NextToken != nil && *in.NextToken != "" {
		raw, err := base64.RawURLEncoding.DecodeString(*in.NextToken)
		if err != nil {
			return nil, errdefs.InvalidParameter("InvalidParameterValue", "Invalid NextToken: pass the nextToken of the previous response unchanged")
		}
		start = sort.Search(len(types), func(n int) bool { return types[n].Name >= string(raw) })
	}
	end := len(types)
	out := &DescribeInstanceTypesOutput{InstanceTypes: []InstanceTypeItem{}}
	if in.MaxResults != nil {
		n := int(*in.MaxResults)
		if n < 5 || n > 100 {
			return nil, errdefs.InvalidParameter("InvalidParameterValue", "Value ( %d ) for parameter maxResults is invalid. Expecting a value between 5 and 100", n)
		}
		if start+n < end {
			end = start + n
			tok := base64.RawURLEncoding.EncodeToString([]byte(types[end].Name))
			out.NextToken = &tok
		}
	}
	for _, t := range types[start:end] {
		out.InstanceTypes = append(out.InstanceTypes, instanceTypeItem(t))
	}
	return out, nil
}

func instanceTypeItem(t instances.InstanceType) InstanceTypeItem {
	it := InstanceTypeItem{
		InstanceType: t.Name, CurrentGeneration: t.CurrentGeneration, FreeTierEligible: t.Name == "t3.micro",
		SupportedUsageClasses: []string{"on-demand"}, SupportedRootDeviceTypes: []string{"ebs"},
		SupportedVirtualizationTypes: []string{"hvm"}, Hypervisor: t.Hypervisor,
		BurstablePerformanceSupported: t.Burstable, AutoRecoverySupported: t.InstanceStorage == nil,
		SupportedBootModes: []string{"legacy-bios"}, InstanceStorageSupported: t.InstanceStorage != nil,
	}
	if t.LabcloudNote != "" {
		note := t.LabcloudNote
		it.LabcloudNote = &note
	}
	it.ProcessorInfo.SupportedArchitectures = []string{t.Architecture}
	it.ProcessorInfo.SustainedClockSpeedInGhz = t.ClockSpeedGHz
	it.ProcessorInfo.Manufacturer = t.ProcessorManufacturer
	it.VCPUInfo.DefaultVCpus = int32(t.VCPUs)
	it.VCPUInfo.DefaultCores = int32(t.DefaultCores)
	it.VCPUInfo.DefaultThreadsPerCore = int32(t.DefaultThreadsPerCore)
	it.MemoryInfo.SizeInMiB = int64(t.MemoryMiB)
	it.NetworkInfo.NetworkPerformance = t.NetworkPerformance
	it.NetworkInfo.MaximumNetworkInterfaces = int32(t.MaxENIs)
	it.NetworkInfo.Ipv4AddressesPerInterface = int32(t.IPv4PerENI)
	it.NetworkInfo.EnaSupport = "required"
	if st := t.InstanceStorage; st != nil {
		it.InstanceStorageInfo = &InstanceStorageItem{TotalSizeInGB: int64(st.TotalSizeGB), NvmeSupport: st.NVMe}
		for _, d := range st.Disks {
			it.InstanceStorageInfo.Disks = append(it.InstanceStorageInfo.Disks, struct {
				SizeInGB int64  `locationName:"sizeInGB"`
				Count    int32  `locationName:"count"`
				Type     string `locationName:"type"`
			}{int64(d.SizeGB), int32(d.Count), d.Type})
		}
	}
	if len(t.GPUs) > 0 {
		it.GpuInfo = &GpuInfoItem{}
		for _, g := range t.GPUs {
			var gi struct {
				Name         string `locationName:"name"`
				Manufacturer string `locationName:"manufacturer"`
				Count        int32  `locationName:"count"`
				MemoryInfo   struct {
					SizeInMiB int32 `locationName:"sizeInMiB"`
				} `locationName:"memoryInfo"`
			}
			gi.Name, gi.Manufacturer, gi.Count = g.Name, g.Manufacturer, int32(g.Count)
			gi.MemoryInfo.SizeInMiB = int32(g.MemoryMiB)
			it.GpuInfo.Gpus = append(it.GpuInfo.Gpus, gi)
			it.GpuInfo.TotalGpuMemoryInMiB += int32(g.Count * g.MemoryMiB)
		}
	}
	return it
}
