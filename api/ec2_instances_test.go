package api

import (
	"context"
	"encoding/base64"
	"errors"
	"fmt"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/service/ec2"
	ec2types "github.com/aws/aws-sdk-go-v2/service/ec2/types"
	"github.com/aws/smithy-go"

	"github.com/labcloud/labcloud/hypervisor/fake"
	"github.com/labcloud/labcloud/iamd"
	"github.com/labcloud/labcloud/internal/errdefs"
	"github.com/labcloud/labcloud/internal/instances"
	"github.com/labcloud/labcloud/internal/store"
	"github.com/labcloud/labcloud/internal/store/embedded"
	"github.com/labcloud/labcloud/internal/tags"
)

// Fakes of what instances need from the other domain packages.
type instNet struct {
	mu sync.Mutex
	n  int
}

func (f *instNet) EnsureDefaultVPC(context.Context, string) (instances.VPC, error) {
	return instances.VPC{ID: "vpc-0aaaaaaaaaaaaaaaa", Subnets: []instances.Subnet{
		{ID: "subnet-0aaaaaaaaaaaaaaaa", AvailabilityZone: "lab-1a", CIDR: "172.31.0.0/20", DefaultForAz: true}}}, nil
}

func (f *instNet) CreateENI(_ context.Context, _, subnet, _ string) (instances.ENI, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.n++
	return instances.ENI{ID: fmt.Sprintf("eni-%017x", f.n), MAC: fmt.Sprintf("02:00:00:00:00:%02x", f.n),
		PrivateIP: fmt.Sprintf("172.31.0.%d", 3+f.n), Tap: fmt.Sprintf("tap%d", f.n), SubnetID: subnet}, nil
}

func (f *instNet) DeleteENI(context.Context, string, string) error { return nil }

type instImages struct{ disk string }

func (f instImages) Get(_ context.Context, _, id string) (instances.Image, error) {
	if id != "ami-0123456789abcdef0" {
		return instances.Image{}, errdefs.NotFound("InvalidAMIID.NotFound", "The image id '[%s]' does not exist", id)
	}
	return instances.Image{ID: id, Architecture: "x86_64", RootDeviceName: "/dev/xvda", RootSizeGiB: 2, Disk: f.disk,
		Kernel: "/k", Initrd: "/i", KernelCmdline: "console=ttyS0"}, nil
}

type instKeys struct{}

func (instKeys) Get(_ context.Context, _, name string) (instances.KeyPair, error) {
	return instances.KeyPair{}, errdefs.NotFound("InvalidKeyPair.NotFound", "The key pair '%s' does not exist", name)
}

// newInstancesClient serves the instance actions over a real embedded etcd
// and the fake hypervisor, and returns an aws-sdk-go-v2 EC2 client for the
// admin account, so the responses are parsed by a real AWS SDK.
func newInstancesClient(t *testing.T) (*ec2.Client, *fake.Driver) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(cancel)
	srv, err := embedded.Start(ctx, embedded.Config{DataDir: t.TempDir()})
	if err != nil {
		t.Fatalf("starting embedded etcd: %v", err)
	}
	t.Cleanup(func() { srv.Close() })
	cli, err := store.Dial(ctx, srv.Endpoints())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cli.Close() })
	st := store.New(cli, "/labcloud/")
	accounts := iamd.NewAccounts(st)
	_, admin, err := accounts.Bootstrap(ctx, "admin")
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	base := filepath.Join(dir, "base.qcow2")
	os.WriteFile(base, []byte("base"), 0o644)
	drv := fake.New(filepath.Join(dir, "vms"))
	svc, err := instances.New(instances.Options{Store: st, Driver: drv, Network: &instNet{}, Images: instImages{disk: base},
		KeyPairs: instKeys{}, Region: "lab-1", StateDir: filepath.Join(dir, "state"), NodeVCPUs: 2, NodeMemoryMiB: 8192,
		ResyncInterval: 20 * time.Millisecond, Backoff: 5 * time.Millisecond,
		CreateOverlay: func(_ context.Context, _, path string, _ int) error { return os.WriteFile(path, nil, 0o644) }})
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan struct{})
	go func() { svc.RunController(ctx); close(done) }()
	t.Cleanup(func() { cancel(); <-done })
	tg := tags.New(st)
	tg.Register("i-", func(ctx context.Context, acct, id string) (bool, error) {
		_, err := svc.Get(ctx, acct, id)
		return err == nil, nil
	}, "instance")
	hs := httptest.NewServer(New(Options{Accounts: accounts, Region: "lab-1", Instances: svc, Tags: tg}))
	t.Cleanup(hs.Close)
	return ec2.New(ec2.Options{Region: "lab-1", BaseEndpoint: aws.String(hs.URL),
		Credentials: credentials.NewStaticCredentialsProvider(admin.AccessKeyID, admin.SecretAccessKey, "")}), drv
}

func apiCode(err error) string {
	var ae smithy.APIError
	if errors.As(err, &ae) {
		return ae.ErrorCode()
	}
	return ""
}

func waitInstanceState(t *testing.T, c *ec2.Client, id string, state ec2types.InstanceStateName) ec2types.Instance {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	var last ec2types.InstanceStateName
	for time.Now().Before(deadline) {
		out, err := c.DescribeInstances(context.Background(), &ec2.DescribeInstancesInput{InstanceIds: []string{id}})
		if err != nil {
			t.Fatal(err)
		}
		i := out.Reservations[0].Instances[0]
		if last = i.State.Name; last == state {
			return i
		}
		time.Sleep(20 * time.Millisecond)
	}
	t.Fatalf("%s stayed %s, want %s", id, last, state)
	return ec2types.Instance{}
}

func TestInstancesAPI(t *testing.T) {
	c, drv := newInstancesClient(t)
	ctx := context.Background()
	run, err := c.RunInstances(ctx, &ec2.RunInstancesInput{
		ImageId: aws.String("ami-0123456789abcdef0"), MinCount: aws.Int32(2), MaxCount: aws.Int32(2),
		UserData:          aws.String(base64.StdEncoding.EncodeToString([]byte("#!/bin/sh\n"))),
		ClientToken:       aws.String("tok"),
		TagSpecifications: []ec2types.TagSpecification{{ResourceType: ec2types.ResourceTypeInstance, Tags: []ec2types.Tag{{Key: aws.String("Name"), Value: aws.String("web")}}}},
		BlockDeviceMappings: []ec2types.BlockDeviceMapping{{DeviceName: aws.String("/dev/xvda"),
			Ebs: &ec2types.EbsBlockDevice{VolumeSize: aws.Int32(4)}}},
		MetadataOptions: &ec2types.InstanceMetadataOptionsRequest{HttpTokens: ec2types.HttpTokensStateRequired},
	})
	if err != nil {
		t.Fatalf("RunInstances: %v", err)
	}
	if !strings.HasPrefix(aws.ToString(run.ReservationId), "r-") || len(run.Instances) != 2 {
		t.Fatalf("RunInstances = reservation %q with %d instances", aws.ToString(run.ReservationId), len(run.Instances))
	}
	i0 := run.Instances[0]
	if i0.State.Name != ec2types.InstanceStateNamePending || aws.ToInt32(i0.State.Code) != 0 ||
		i0.InstanceType != ec2types.InstanceTypeT3Micro || aws.ToString(i0.Placement.AvailabilityZone) != "lab-1a" ||
		len(i0.Tags) != 1 || aws.ToString(i0.Tags[0].Value) != "web" || i0.MetadataOptions.HttpTokens != ec2types.HttpTokensStateRequired {
		t.Fatalf("launched instance = %+v", i0)
	}
	id := aws.ToString(i0.InstanceId)
	running := waitInstanceState(t, c, id, ec2types.InstanceStateNameRunning)
	if aws.ToInt32(running.State.Code) != 16 || aws.ToString(running.PrivateIpAddress) == "" ||
		!strings.HasSuffix(aws.ToString(running.PrivateDnsName), ".lab-1.compute.internal") || len(running.NetworkInterfaces) != 1 {
		t.Fatalf("running instance = %+v", running)
	}

	// Filters and pagination.
	f, err := c.DescribeInstances(ctx, &ec2.DescribeInstancesInput{Filters: []ec2types.Filter{{Name: aws.String("tag:Name"), Values: []string{"w*"}},
		{Name: aws.String("instance-id"), Values: []string{id}}}})
	if err != nil || len(f.Reservations) != 1 || len(f.Reservations[0].Instances) != 1 {
		t.Fatalf("filtered DescribeInstances = %+v, %v", f, err)
	}
	// Instance tags live in the tag store: CreateTags and DeleteTags on an
	// instance show in DescribeInstances, its tag filters and DescribeTags.
	if _, err := c.CreateTags(ctx, &ec2.CreateTagsInput{Resources: []string{id}, Tags: []ec2types.Tag{{Key: aws.String("env"), Value: aws.String("lab")}}}); err != nil {
		t.Fatalf("CreateTags on an instance: %v", err)
	}
	if _, err := c.DeleteTags(ctx, &ec2.DeleteTagsInput{Resources: []string{id}, Tags: []ec2types.Tag{{Key: aws.String("Name")}}}); err != nil {
		t.Fatalf("DeleteTags on an instance: %v", err)
	}
	tagged, err := c.DescribeInstances(ctx, &ec2.DescribeInstancesInput{Filters: []ec2types.Filter{{Name: aws.String("tag:env"), Values: []string{"lab"}}}})
	if err != nil || len(tagged.Reservations) != 1 || len(tagged.Reservations[0].Instances) != 1 {
		t.Fatalf("DescribeInstances tag:env=lab = %+v, %v", tagged, err)
	}
	if got := tagged.Reservations[0].Instances[0].Tags; len(got) != 1 || aws.ToString(got[0].Key) != "env" {
		t.Fatalf("tags after CreateTags env and DeleteTags Name = %+v", got)
	}
	dt, err := c.DescribeTags(ctx, &ec2.DescribeTagsInput{Filters: []ec2types.Filter{{Name: aws.String("resource-id"), Values: []string{id}}}})
	if err != nil || len(dt.Tags) != 1 || dt.Tags[0].ResourceType != ec2types.ResourceTypeInstance {
		t.Fatalf("DescribeTags of the instance = %+v, %v", dt, err)
	}
	if _, err := c.CreateTags(ctx, &ec2.CreateTagsInput{Resources: []string{"i-0123456789abcdef0"}, Tags: []ec2types.Tag{{Key: aws.String("k")}}}); apiCode(err) != "InvalidInstanceID.NotFound" {
		t.Fatalf("CreateTags on an unknown instance: %v", err)
	}
	p, err := c.DescribeInstances(ctx, &ec2.DescribeInstancesInput{MaxResults: aws.Int32(5)})
	if err != nil || len(p.Reservations) != 1 || len(p.Reservations[0].Instances) != 2 || p.NextToken != nil {
		t.Fatalf("paged DescribeInstances = %+v, %v", p, err)
	}
	if _, err := c.DescribeInstances(ctx, &ec2.DescribeInstancesInput{MaxResults: aws.Int32(4)}); apiCode(err) != "InvalidParameterValue" {
		t.Fatalf("MaxResults 4: %v, want InvalidParameterValue", err)
	}
	if _, err := c.DescribeInstances(ctx, &ec2.DescribeInstancesInput{InstanceIds: []string{"i-0123456789abcdef0"}}); apiCode(err) != "InvalidInstanceID.NotFound" {
		t.Fatalf("unknown id: %v", err)
	}

	// Idempotency and errors.
	again, err := c.RunInstances(ctx, &ec2.RunInstancesInput{ImageId: aws.String("ami-0123456789abcdef0"), MinCount: aws.Int32(1), MaxCount: aws.Int32(1), ClientToken: aws.String("tok")})
	if apiCode(err) != "IdempotentParameterMismatch" {
		t.Fatalf("reused token with other parameters: %+v, %v", again, err)
	}
	for _, tc := range []struct {
		in   ec2.RunInstancesInput
		code string
	}{
		{ec2.RunInstancesInput{ImageId: aws.String("ami-00000000000000000")}, "InvalidAMIID.NotFound"},
		{ec2.RunInstancesInput{ImageId: aws.String("ami-0123456789abcdef0"), InstanceType: "z9.huge"}, "InvalidParameterValue"},
		{ec2.RunInstancesInput{ImageId: aws.String("ami-0123456789abcdef0"), KeyName: aws.String("nope")}, "InvalidKeyPair.NotFound"},
		{ec2.RunInstancesInput{ImageId: aws.String("ami-0123456789abcdef0"), InstanceType: "t3.2xlarge"}, "InsufficientInstanceCapacity"},
	} {
		tc.in.MinCount, tc.in.MaxCount = aws.Int32(1), aws.Int32(1)
		if _, err := c.RunInstances(ctx, &tc.in); apiCode(err) != tc.code {
			t.Errorf("RunInstances %+v: %v, want %s", tc.in, err, tc.code)
		}
	}

	// Console output.
	co, err := c.GetConsoleOutput(ctx, &ec2.GetConsoleOutputInput{InstanceId: aws.String(id)})
	if err != nil {
		t.Fatal(err)
	}
	if b, _ := base64.StdEncoding.DecodeString(aws.ToString(co.Output)); !strings.Contains(string(b), fake.BootLine) {
		t.Fatalf("console output %q", b)
	}

	// Status.
	stat, err := c.DescribeInstanceStatus(ctx, &ec2.DescribeInstanceStatusInput{InstanceIds: []string{id}})
	if err != nil || len(stat.InstanceStatuses) != 1 || stat.InstanceStatuses[0].InstanceStatus.Status != ec2types.SummaryStatusOk {
		t.Fatalf("DescribeInstanceStatus = %+v, %v", stat, err)
	}

	// DescribeInstanceAttribute: one attribute at a time.
	attr := func(a ec2types.InstanceAttributeName) *ec2.DescribeInstanceAttributeOutput {
		t.Helper()
		out, err := c.DescribeInstanceAttribute(ctx, &ec2.DescribeInstanceAttributeInput{InstanceId: aws.String(id), Attribute: a})
		if err != nil {
			t.Fatalf("DescribeInstanceAttribute %s: %v", a, err)
		}
		return out
	}
	if ud := attr(ec2types.InstanceAttributeNameUserData); ud.UserData == nil || aws.ToString(ud.UserData.Value) != base64.StdEncoding.EncodeToString([]byte("#!/bin/sh\n")) ||
		ud.InstanceType != nil || aws.ToString(ud.InstanceId) != id {
		t.Fatalf("userData attribute = %+v", ud)
	}
	if it := attr(ec2types.InstanceAttributeNameInstanceType); it.InstanceType == nil || aws.ToString(it.InstanceType.Value) != "t3.micro" {
		t.Fatalf("instanceType attribute = %+v", it.InstanceType)
	}
	if sb := attr(ec2types.InstanceAttributeNameInstanceInitiatedShutdownBehavior); aws.ToString(sb.InstanceInitiatedShutdownBehavior.Value) != "stop" {
		t.Fatalf("shutdown behaviour attribute = %+v", sb.InstanceInitiatedShutdownBehavior)
	}
	if bd := attr(ec2types.InstanceAttributeNameBlockDeviceMapping); len(bd.BlockDeviceMappings) != 1 || aws.ToString(bd.BlockDeviceMappings[0].DeviceName) != "/dev/xvda" {
		t.Fatalf("blockDeviceMapping attribute = %+v", bd.BlockDeviceMappings)
	}
	if sd := attr(ec2types.InstanceAttributeNameSourceDestCheck); sd.SourceDestCheck == nil || !aws.ToBool(sd.SourceDestCheck.Value) {
		t.Fatalf("sourceDestCheck attribute = %+v", sd.SourceDestCheck)
	}
	if _, err := c.DescribeInstanceAttribute(ctx, &ec2.DescribeInstanceAttributeInput{InstanceId: aws.String(id), Attribute: "colour"}); apiCode(err) != "InvalidParameterValue" {
		t.Fatalf("unknown attribute: %v", err)
	}
	if _, err := c.DescribeInstanceAttribute(ctx, &ec2.DescribeInstanceAttributeInput{InstanceId: aws.String("i-0123456789abcdef0"), Attribute: ec2types.InstanceAttributeNameUserData}); apiCode(err) != "InvalidInstanceID.NotFound" {
		t.Fatalf("unknown instance: %v", err)
	}

	// Modify needs a stopped instance.
	_, err = c.ModifyInstanceAttribute(ctx, &ec2.ModifyInstanceAttributeInput{InstanceId: aws.String(id), InstanceType: &ec2types.AttributeValue{Value: aws.String("t3.small")}})
	if apiCode(err) != "IncorrectInstanceState" {
		t.Fatalf("modify while running: %v", err)
	}
	stop, err := c.StopInstances(ctx, &ec2.StopInstancesInput{InstanceIds: []string{id}})
	if err != nil || stop.StoppingInstances[0].CurrentState.Name != ec2types.InstanceStateNameStopping ||
		aws.ToInt32(stop.StoppingInstances[0].PreviousState.Code) != 16 {
		t.Fatalf("StopInstances = %+v, %v", stop, err)
	}
	stopped := waitInstanceState(t, c, id, ec2types.InstanceStateNameStopped)
	if stopped.StateReason == nil || aws.ToString(stopped.StateReason.Code) != "Client.UserInitiatedShutdown" {
		t.Fatalf("stopped reason %+v", stopped.StateReason)
	}
	if _, err := c.ModifyInstanceAttribute(ctx, &ec2.ModifyInstanceAttributeInput{InstanceId: aws.String(id), InstanceType: &ec2types.AttributeValue{Value: aws.String("t3.small")}}); err != nil {
		t.Fatalf("modify while stopped: %v", err)
	}
	all, err := c.DescribeInstanceStatus(ctx, &ec2.DescribeInstanceStatusInput{IncludeAllInstances: aws.Bool(true)})
	if err != nil || len(all.InstanceStatuses) != 2 {
		t.Fatalf("DescribeInstanceStatus IncludeAllInstances = %+v, %v", all, err)
	}
	if _, err := c.StartInstances(ctx, &ec2.StartInstancesInput{InstanceIds: []string{id}}); err != nil {
		t.Fatal(err)
	}
	waitInstanceState(t, c, id, ec2types.InstanceStateNameRunning)
	if spec, _ := drv.Spec(id); spec.SMBIOS.Product != "t3.small" {
		t.Fatalf("VM product %q after the type change", spec.SMBIOS.Product)
	}
	if it := attr(ec2types.InstanceAttributeNameInstanceType); aws.ToString(it.InstanceType.Value) != "t3.small" {
		t.Fatalf("instanceType attribute after the change = %+v", it.InstanceType)
	}
	if _, err := c.RebootInstances(ctx, &ec2.RebootInstancesInput{InstanceIds: []string{id}}); err != nil {
		t.Fatal(err)
	}
	term, err := c.TerminateInstances(ctx, &ec2.TerminateInstancesInput{InstanceIds: []string{id}})
	if err != nil || term.TerminatingInstances[0].CurrentState.Name != ec2types.InstanceStateNameShuttingDown {
		t.Fatalf("TerminateInstances = %+v, %v", term, err)
	}
	waitInstanceState(t, c, id, ec2types.InstanceStateNameTerminated)
	if _, err := c.StopInstances(ctx, &ec2.StopInstancesInput{InstanceIds: []string{id}}); apiCode(err) != "IncorrectInstanceState" {
		t.Fatalf("stopping a terminated instance: %v", err)
	}
}

func TestDescribeInstanceTypesAPI(t *testing.T) {
	c, _ := newInstancesClient(t)
	ctx := context.Background()
	out, err := c.DescribeInstanceTypes(ctx, &ec2.DescribeInstanceTypesInput{InstanceTypes: []ec2types.InstanceType{"p3.2xlarge", "t3.nano"}})
	if err != nil || len(out.InstanceTypes) != 2 {
		t.Fatalf("DescribeInstanceTypes = %+v, %v", out, err)
	}
	for _, it := range out.InstanceTypes {
		switch it.InstanceType {
		case "p3.2xlarge":
			if aws.ToInt32(it.VCpuInfo.DefaultVCpus) != 8 || aws.ToInt64(it.MemoryInfo.SizeInMiB) != 62464 || it.GpuInfo == nil ||
				aws.ToString(it.GpuInfo.Gpus[0].Name) != "V100" {
				t.Errorf("p3.2xlarge = %+v", it)
			}
		case "t3.nano":
			if aws.ToInt32(it.VCpuInfo.DefaultVCpus) != 2 || aws.ToInt64(it.MemoryInfo.SizeInMiB) != 512 || !aws.ToBool(it.BurstablePerformanceSupported) {
				t.Errorf("t3.nano = %+v", it)
			}
		}
	}
	f, err := c.DescribeInstanceTypes(ctx, &ec2.DescribeInstanceTypesInput{Filters: []ec2types.Filter{
		{Name: aws.String("vcpu-info.default-vcpus"), Values: []string{"4"}}, {Name: aws.String("memory-info.size-in-mib"), Values: []string{"16384"}}}})
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, it := range f.InstanceTypes {
		names = append(names, string(it.InstanceType))
	}
	if strings.Join(names, ",") != "g4dn.xlarge,m5.xlarge,t3.xlarge,t3a.xlarge" {
		t.Fatalf("4 vCPU / 16 GiB types = %v", names)
	}
	// Pages of 5 cover the whole catalogue exactly once.
	seen := map[string]bool{}
	var tok *string
	for {
		page, err := c.DescribeInstanceTypes(ctx, &ec2.DescribeInstanceTypesInput{MaxResults: aws.Int32(5), NextToken: tok})
		if err != nil {
			t.Fatal(err)
		}
		for _, it := range page.InstanceTypes {
			if seen[string(it.InstanceType)] {
				t.Fatalf("%s on two pages", it.InstanceType)
			}
			seen[string(it.InstanceType)] = true
		}
		if tok = page.NextToken; tok == nil {
			break
		}
	}
	if len(seen) != len(instances.InstanceTypes()) {
		t.Fatalf("pages gave %d types, want %d", len(seen), len(instances.InstanceTypes()))
	}
	if _, err := c.DescribeInstanceTypes(ctx, &ec2.DescribeInstanceTypesInput{InstanceTypes: []ec2types.InstanceType{"z9.huge"}}); apiCode(err) != "InvalidInstanceType" {
		t.Fatalf("unknown type: %v", err)
	}
}
