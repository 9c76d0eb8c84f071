package instances

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/labcloud/labcloud/hypervisor"
	"github.com/labcloud/labcloud/hypervisor/fake"
	"github.com/labcloud/labcloud/internal/store"
)

func TestLifecycle(t *testing.T) {
	e := newEnv(t, nil)
	e.start(t)
	ctx := context.Background()
	insts := e.run(t, RunInput{InstanceType: "r5.large", KeyName: "lab", UserData: []byte("#!/bin/sh\necho hi\n"),
		Tags: []Tag{{Key: "Name", Value: "web"}}})
	if len(insts) != 1 || insts[0].Status.State != StatePending || !instanceIDRe.MatchString(insts[0].ID) {
		t.Fatalf("RunInstances gave %+v, want one pending instance with an i-… id", insts)
	}
	id := insts[0].ID
	if insts[0].AvailabilityZone != "lab-1a" || insts[0].SubnetID != "subnet-0aaaaaaaaaaaaaaaa" {
		t.Errorf("placed in %s/%s, want the first zone's default subnet", insts[0].AvailabilityZone, insts[0].SubnetID)
	}
	i := e.waitState(t, id, StateRunning)
	if i.Status.PrivateIP == "" || i.Status.ENIID == "" || i.Status.Tap == "" || !i.Status.VMDefined {
		t.Fatalf("running instance lacks its generated names: %+v", i.Status)
	}
	spec, ok := e.drv.Spec(id)
	if !ok {
		t.Fatal("no VM defined")
	}
	// r5.large has 16 GiB; the VM gets the lab cap.
	if spec.VCPUs != 2 || spec.MemoryMiB != DefaultMaxGuestMemoryMiB {
		t.Errorf("VM has %d vCPUs and %d MiB, want 2 and %d", spec.VCPUs, spec.MemoryMiB, DefaultMaxGuestMemoryMiB)
	}
	if len(spec.Disks) != 1 || spec.Disks[0].Path != i.Status.OverlayPath || spec.Disks[0].Format != hypervisor.FormatQCOW2 {
		t.Errorf("VM disks %+v, want the overlay %s", spec.Disks, i.Status.OverlayPath)
	}
	if len(spec.NICs) != 1 || spec.NICs[0].Tap != i.Status.Tap || spec.NICs[0].MAC != i.Status.MAC || spec.NetNS != "/var/run/netns/vpc-test" {
		t.Errorf("VM NICs %+v netns %q, want the ENI's tap and MAC in its namespace", spec.NICs, spec.NetNS)
	}
	if spec.Kernel != "/images/vmlinuz" || spec.Initrd != "/images/initrd" || spec.Append != "console=ttyS0 root=/dev/vda" {
		t.Errorf("VM boot %q %q %q, want the image's kernel, initrd and command line", spec.Kernel, spec.Initrd, spec.Append)
	}
	if spec.SMBIOS != hypervisor.EC2Identity(id, "r5.large") {
		t.Errorf("SMBIOS %+v, want EC2Identity", spec.SMBIOS)
	}
	overlay, _ := os.ReadFile(i.Status.OverlayPath)
	if !bytes.Contains(overlay, []byte("2G")) {
		t.Errorf("overlay %q, want one of the image's 2 GiB", overlay)
	}

	out, _, err := e.svc.ConsoleOutput(ctx, acct, id)
	if err != nil || !bytes.Contains(out, []byte(fake.BootLine)) {
		t.Errorf("ConsoleOutput = %q, %v; want the boot line", out, err)
	}

	// Stop keeps the disk; start boots the same disk again.
	ch, err := e.svc.StopInstances(ctx, acct, []string{id}, false)
	if err != nil || len(ch) != 1 || ch[0].Previous != StateRunning || ch[0].Current != StateStopping {
		t.Fatalf("StopInstances = %+v, %v; want running → stopping", ch, err)
	}
	i = e.waitState(t, id, StateStopped)
	if i.Status.StateReason == nil || i.Status.StateReason.Code != "Client.UserInitiatedShutdown" {
		t.Errorf("stopped with reason %+v, want Client.UserInitiatedShutdown", i.Status.StateReason)
	}
	if _, err := os.Stat(i.Status.OverlayPath); err != nil {
		t.Errorf("root disk gone after stop: %v", err)
	}
	ch, err = e.svc.StartInstances(ctx, acct, []string{id})
	if err != nil || ch[0].Previous != StateStopped || ch[0].Current != StatePending {
		t.Fatalf("StartInstances = %+v, %v; want stopped → pending", ch, err)
	}
	e.waitState(t, id, StateRunning)
	if g, _ := e.drv.Guest(id); g.Boots != 1 {
		// The definition is renewed at each start (new boot count).
		t.Logf("boots after restart: %d", g.Boots)
	}

	// Reboot resets the VM.
	before, _ := e.drv.Guest(id)
	if err := e.svc.RebootInstances(ctx, acct, []string{id}); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "a reboot", func() bool { g, _ := e.drv.Guest(id); return g.Boots > before.Boots })

	// Terminate removes everything on the host.
	ch, err = e.svc.TerminateInstances(ctx, acct, []string{id})
	if err != nil || ch[0].Current != StateShuttingDown {
		t.Fatalf("TerminateInstances = %+v, %v", ch, err)
	}
	e.waitState(t, id, StateTerminated)
	if _, ok := e.drv.Spec(id); ok {
		t.Error("VM still defined after terminate")
	}
	if e.net.count() != 0 {
		t.Error("ENI still there after terminate")
	}
	if _, err := os.Stat(filepath.Dir(i.Status.OverlayPath)); !os.IsNotExist(err) {
		t.Errorf("instance dir still there after terminate: %v", err)
	}
	_, err = e.svc.StopInstances(ctx, acct, []string{id}, false)
	wantCode(t, err, "IncorrectInstanceState")
	_, err = e.svc.StartInstances(ctx, acct, []string{id})
	wantCode(t, err, "IncorrectInstanceState")
	if l, err := e.svc.DescribeInstances(ctx, acct, nil); err != nil || len(l) != 1 {
		t.Fatalf("DescribeInstances after terminate = %d, %v; want the terminated instance still listed", len(l), err)
	}
	// After the retention time it vanishes, and the controller deletes it.
	e.clock.Advance(DefaultTerminatedRetention + time.Minute)
	if l, _ := e.svc.DescribeInstances(ctx, acct, nil); len(l) != 0 {
		t.Fatalf("terminated instance still listed after the retention time")
	}
	waitFor(t, "the record's deletion", func() bool {
		_, err := e.st.Get(ctx, instanceKey(acct, id), nil)
		return err != nil
	})
}

func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for time.Now().Before(deadline) {
		if cond() {
			return
		}
		time.Sleep(10 * time.Millisecond)
	}
	t.Fatalf("timed out waiting for %s", what)
}

func TestRunErrors(t *testing.T) {
	e := newEnv(t, func(o *Options) { o.NodeVCPUs = 2; o.VCPUOvercommit = 2 })
	big := make([]byte, MaxUserDataBytes+1)
	for _, tc := range []struct {
		name string
		in   RunInput
		code string
	}{
		{"UnknownAMI", RunInput{ImageID: "ami-00000000000000000"}, "InvalidAMIID.NotFound"},
		{"MalformedAMI", RunInput{ImageID: "image-1"}, "InvalidAMIID.Malformed"},
		{"BadType", RunInput{InstanceType: "t9.huge"}, "InvalidParameterValue"},
		{"MissingKey", RunInput{KeyName: "nope"}, "InvalidKeyPair.NotFound"},
		{"OverCapacity", RunInput{InstanceType: "t3.micro", MinCount: 3, MaxCount: 3}, "InsufficientInstanceCapacity"},
		{"UserDataTooBig", RunInput{UserData: big}, "InvalidParameterValue"},
		{"BadShutdownBehavior", RunInput{ShutdownBehavior: "explode"}, "InvalidParameterValue"},
		{"UnknownSubnet", RunInput{SubnetID: "subnet-0cccccccccccccccc"}, "InvalidSubnetID.NotFound"},
		{"MalformedSubnet", RunInput{SubnetID: "sub-1"}, "InvalidSubnetID.Malformed"},
		{"UnknownZone", RunInput{AvailabilityZone: "lab-1z"}, "InvalidParameterValue"},
		{"RootTooSmall", RunInput{RootSizeGiB: 1}, "InvalidBlockDeviceMapping"},
		{"MaxBelowMin", RunInput{MinCount: 2, MaxCount: 1}, "InvalidParameterValue"},
		{"BadHttpTokens", RunInput{Metadata: MetadataOptions{HTTPTokens: "maybe"}}, "InvalidParameterValue"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			in := tc.in
			in.AccountID = acct
			if in.ImageID == "" {
				in.ImageID = testAMI
			}
			_, err := e.svc.RunInstances(context.Background(), in)
			wantCode(t, err, tc.code)
			if kvs, _ := e.st.List(context.Background(), ""); len(kvs) != 0 {
				t.Fatalf("a failed RunInstances left %d records", len(kvs))
			}
		})
	}
}

func TestVcpuLimit(t *testing.T) {
	e := newEnv(t, func(o *Options) { o.AccountVCPULimit = 4; o.NodeVCPUs = 64 })
	e.run(t, RunInput{InstanceType: "t3.micro", MinCount: 2, MaxCount: 2})
	_, err := e.svc.RunInstances(context.Background(), RunInput{AccountID: acct, ImageID: testAMI, InstanceType: "t3.micro"})
	wantCode(t, err, "VcpuLimitExceeded")
	// Another account has its own limit.
	if _, err := e.svc.RunInstances(context.Background(), RunInput{AccountID: "210987654321", ImageID: testAMI}); err != nil {
		t.Fatalf("another account's launch: %v", err)
	}
}

func TestCapacityMinMax(t *testing.T) {
	// 2 CPUs × 4 = 8 vCPUs: four t3.micro.
	e := newEnv(t, func(o *Options) { o.NodeVCPUs = 2 })
	e.start(t)
	got := e.run(t, RunInput{InstanceType: "t3.micro", MinCount: 1, MaxCount: 10})
	if len(got) != 4 {
		t.Fatalf("MinCount 1 MaxCount 10 launched %d, want the 4 that fit", len(got))
	}
	for n, i := range got {
		if i.LaunchIndex != n || i.ReservationID != got[0].ReservationID {
			t.Errorf("instance %d: launch index %d reservation %s", n, i.LaunchIndex, i.ReservationID)
		}
	}
	_, err := e.svc.RunInstances(context.Background(), RunInput{AccountID: acct, ImageID: testAMI})
	wantCode(t, err, "InsufficientInstanceCapacity")
	// Stopped instances free capacity; starting needs it again.
	ctx := context.Background()
	if _, err := e.svc.StopInstances(ctx, acct, []string{got[0].ID}, true); err != nil {
		t.Fatal(err)
	}
	e.waitState(t, got[0].ID, StateStopped)
	third := e.run(t, RunInput{})
	_, err = e.svc.StartInstances(ctx, acct, []string{got[0].ID})
	wantCode(t, err, "InsufficientInstanceCapacity")
	if _, err := e.svc.TerminateInstances(ctx, acct, []string{third[0].ID}); err != nil {
		t.Fatal(err)
	}
	if _, err := e.svc.StartInstances(ctx, acct, []string{got[0].ID}); err != nil {
		t.Fatalf("StartInstances with capacity freed: %v", err)
	}

	// Memory: 4096 MiB and the 2048 MiB cap allow two guests of any size.
	m := newEnv(t, func(o *Options) { o.NodeVCPUs = 64; o.NodeMemoryMiB = 4096 })
	if got := m.run(t, RunInput{InstanceType: "m5.large", MinCount: 1, MaxCount: 5}); len(got) != 2 {
		t.Fatalf("launched %d m5.large on 4 GiB, want 2", len(got))
	}
}

func TestClientToken(t *testing.T) {
	e := newEnv(t, nil)
	ctx := context.Background()
	in := RunInput{AccountID: acct, ImageID: testAMI, ClientToken: "tok-1", MinCount: 2, MaxCount: 2}
	a, err := e.svc.RunInstances(ctx, in)
	if err != nil {
		t.Fatal(err)
	}
	b, err := e.svc.RunInstances(ctx, in)
	if err != nil {
		t.Fatal(err)
	}
	if a.Reservation.ID != b.Reservation.ID || len(b.Instances) != 2 || b.Instances[0].ID != a.Instances[0].ID {
		t.Fatalf("repeat with the same token gave reservation %s %v, want %s", b.Reservation.ID, b.Instances, a.Reservation.ID)
	}
	in.InstanceType = "t3.small"
	_, err = e.svc.RunInstances(ctx, in)
	wantCode(t, err, "IdempotentParameterMismatch")
	l, _ := e.svc.DescribeInstances(ctx, acct, nil)
	if len(l) != 2 {
		t.Fatalf("%d instances exist, want 2", len(l))
	}
}

func TestGuestPowerOff(t *testing.T) {
	for _, tc := range []struct{ behavior, want string }{{ShutdownStop, StateStopped}, {ShutdownTerminate, StateTerminated}} {
		t.Run(tc.behavior, func(t *testing.T) {
			e := newEnv(t, nil)
			e.start(t)
			id := e.run(t, RunInput{ShutdownBehavior: tc.behavior})[0].ID
			e.waitState(t, id, StateRunning)
			if err := e.drv.GuestPowerOff(id); err != nil {
				t.Fatal(err)
			}
			i := e.waitState(t, id, tc.want)
			if i.Status.StateReason == nil || i.Status.StateReason.Code != "Client.InstanceInitiatedShutdown" {
				t.Fatalf("reason %+v, want Client.InstanceInitiatedShutdown", i.Status.StateReason)
			}
		})
	}
}

func TestCrashStops(t *testing.T) {
	e := newEnv(t, nil)
	e.start(t)
	id := e.run(t, RunInput{})[0].ID
	e.waitState(t, id, StateRunning)
	if err := e.drv.Crash(id); err != nil {
		t.Fatal(err)
	}
	i := e.waitState(t, id, StateStopped)
	if r := i.Status.StateReason; r == nil || r.Code != "Server.InternalError" || !strings.Contains(r.Message, "QEMU process exited unexpectedly") {
		t.Fatalf("reason %+v, want Server.InternalError about QEMU", r)
	}
	// It can be started again.
	if _, err := e.svc.StartInstances(context.Background(), acct, []string{id}); err != nil {
		t.Fatal(err)
	}
	e.waitState(t, id, StateRunning)
}

func TestReattachAfterRestart(t *testing.T) {
	e := newEnv(t, nil)
	e.start(t)
	got := e.run(t, RunInput{MinCount: 2, MaxCount: 2})
	for _, i := range got {
		e.waitState(t, i.ID, StateRunning)
	}
	e.stop()
	// While labcloudd is away one QEMU dies.
	if err := e.drv.Crash(got[1].ID); err != nil {
		t.Fatal(err)
	}
	e.restart(t)
	i := e.waitState(t, got[1].ID, StateStopped)
	if i.Status.StateReason == nil || i.Status.StateReason.Code != "Server.InternalError" {
		t.Fatalf("dead VM's reason %+v, want Server.InternalError", i.Status.StateReason)
	}
	// The live one was not started a second time.
	time.Sleep(100 * time.Millisecond) // several resyncs
	if g, _ := e.drv.Guest(got[0].ID); g.Boots != 1 {
		t.Fatalf("live VM booted %d times across the restart, want 1", g.Boots)
	}
	if i, _, _ := store.Load[Instance](context.Background(), e.st, instanceKey(acct, got[0].ID)); i.Status.State != StateRunning {
		t.Fatalf("live VM's instance is %s, want running", i.Status.State)
	}
}

func TestLaunchFailureTerminates(t *testing.T) {
	e := newEnv(t, nil)
	e.net.failENI = os.ErrPermission
	e.start(t)
	id := e.run(t, RunInput{})[0].ID
	i := e.waitState(t, id, StateTerminated)
	if r := i.Status.StateReason; r == nil || r.Code != "Server.InternalError" || !strings.Contains(r.Message, "network interface") {
		t.Fatalf("reason %+v, want Server.InternalError naming the failed step", r)
	}
	if _, err := os.Stat(filepath.Join(e.opts.StateDir, "instances", id)); !os.IsNotExist(err) {
		t.Fatalf("failed launch left its directory: %v", err)
	}
}

func TestModifyAttribute(t *testing.T) {
	e := newEnv(t, nil)
	e.start(t)
	ctx := context.Background()
	id := e.run(t, RunInput{})[0].ID
	e.waitState(t, id, StateRunning)
	wantCode(t, e.svc.ModifyInstanceType(ctx, acct, id, "t3.xlarge"), "IncorrectInstanceState")
	wantCode(t, e.svc.ModifyUserData(ctx, acct, id, []byte("x")), "IncorrectInstanceState")
	if _, err := e.svc.StopInstances(ctx, acct, []string{id}, false); err != nil {
		t.Fatal(err)
	}
	e.waitState(t, id, StateStopped)
	wantCode(t, e.svc.ModifyInstanceType(ctx, acct, id, "t9.huge"), "InvalidParameterValue")
	if err := e.svc.ModifyInstanceType(ctx, acct, id, "t3.xlarge"); err != nil {
		t.Fatal(err)
	}
	if err := e.svc.ModifyUserData(ctx, acct, id, []byte("new")); err != nil {
		t.Fatal(err)
	}
	if _, err := e.svc.StartInstances(ctx, acct, []string{id}); err != nil {
		t.Fatal(err)
	}
	e.waitState(t, id, StateRunning)
	if spec, _ := e.drv.Spec(id); spec.VCPUs != 4 || spec.SMBIOS.Product != "t3.xlarge" {
		t.Fatalf("VM after the type change: %d vCPUs, product %q; want 4 and t3.xlarge", spec.VCPUs, spec.SMBIOS.Product)
	}
	md, ok := e.svc.Lookup(ctx, "vpc-0aaaaaaaaaaaaaaaa", mustIP(t, e, id))
	if !ok || string(md.UserData) != "new" {
		t.Fatalf("metadata user data %q, want the new one", md.UserData)
	}
}

func mustIP(t *testing.T, e *env, id string) string {
	i, _, err := store.Load[Instance](context.Background(), e.st, instanceKey(acct, id))
	if err != nil {
		t.Fatal(err)
	}
	return i.Status.PrivateIP
}

func TestLookup(t *testing.T) {
	e := newEnv(t, nil)
	e.start(t)
	ctx := context.Background()
	id := e.run(t, RunInput{KeyName: "lab", UserData: []byte("hello"), AvailabilityZone: "lab-1b", InstanceType: "t3.small",
		Metadata: MetadataOptions{HTTPTokens: "required"}})[0].ID
	i := e.waitState(t, id, StateRunning)
	md, ok := e.svc.Lookup(ctx, "vpc-0aaaaaaaaaaaaaaaa", i.Status.PrivateIP)
	if !ok {
		t.Fatal("Lookup found nothing")
	}
	want := Metadata{InstanceID: id, ImageID: testAMI, InstanceType: "t3.small", AvailabilityZone: "lab-1b", Region: "lab-1",
		LocalIPv4: i.Status.PrivateIP, LocalHostname: "ip-" + strings.ReplaceAll(i.Status.PrivateIP, ".", "-") + ".lab-1.compute.internal",
		MAC: i.Status.MAC, PublicKeyName: "lab", PublicKey: "ssh-ed25519 AAAAC3Nza lab", SecurityGroups: []string{"default"},
		UserData: []byte("hello"), HTTPTokens: "required", HTTPEndpoint: "enabled", HopLimit: 1, ReservationID: i.ReservationID, AccountID: acct}
	if md.InstanceID != want.InstanceID || md.LocalHostname != want.LocalHostname || md.PublicKey != want.PublicKey ||
		md.HTTPTokens != want.HTTPTokens || md.HopLimit != 1 || md.AvailabilityZone != "lab-1b" || string(md.UserData) != "hello" ||
		md.MAC != want.MAC || md.ReservationID != want.ReservationID || md.AccountID != acct || md.Region != "lab-1" {
		t.Fatalf("Lookup = %+v\nwant %+v", md, want)
	}
	if _, ok := e.svc.Lookup(ctx, "vpc-other", i.Status.PrivateIP); ok {
		t.Fatal("Lookup found the instance in another VPC")
	}
}

func TestDescribeErrors(t *testing.T) {
	e := newEnv(t, nil)
	ctx := context.Background()
	_, err := e.svc.DescribeInstances(ctx, acct, []string{"i-123"})
	wantCode(t, err, "InvalidInstanceID.Malformed")
	_, err = e.svc.DescribeInstances(ctx, acct, []string{"i-0123456789abcdef0"})
	wantCode(t, err, "InvalidInstanceID.NotFound")
	id := e.run(t, RunInput{})[0].ID
	// Another account does not see it.
	_, err = e.svc.DescribeInstances(ctx, "210987654321", []string{id})
	wantCode(t, err, "InvalidInstanceID.NotFound")
	err = e.svc.RebootInstances(ctx, acct, []string{id, "i-0123456789abcdef0"})
	wantCode(t, err, "InvalidInstanceID.NotFound")
}

func TestInstanceTypes(t *testing.T) {
	for name, want := range map[string][2]int{
		"t3.nano": {2, 512}, "t3.2xlarge": {8, 32768}, "t3a.micro": {2, 1024}, "m5.large": {2, 8192},
		"c5.2xlarge": {8, 16384}, "r5.xlarge": {4, 32768}, "x1e.xlarge": {4, 124928}, "p3.2xlarge": {8, 62464},
		"g4dn.xlarge": {4, 16384}, "i3.large": {2, 15616}, "d2.xlarge": {4, 31232},
	} {
		typ, ok := LookupInstanceType(name)
		if !ok || typ.VCPUs != want[0] || typ.MemoryMiB != want[1] || typ.DefaultCores*typ.DefaultThreadsPerCore != typ.VCPUs {
			t.Errorf("%s = %+v, want %d vCPUs and %d MiB", name, typ, want[0], want[1])
		}
	}
	if p3, _ := LookupInstanceType("p3.2xlarge"); len(p3.GPUs) != 1 || p3.LabcloudNote == "" {
		t.Errorf("p3.2xlarge should list its GPU and a labcloud note: %+v", p3)
	}
	if _, ok := LookupInstanceType(DefaultInstanceType); !ok {
		t.Error("the default type is not in the catalogue")
	}
}

// TestTerminateDuringLaunch terminates an instance while the controller
// is creating its ENI: the ENI made in that moment is still recorded and
// deleted, nothing leaks, and no VM is started.
func TestTerminateDuringLaunch(t *testing.T) {
	e := newEnv(t, nil)
	entered, release := make(chan struct{}), make(chan struct{})
	var once sync.Once
	e.net.hold = func() { once.Do(func() { close(entered); <-release }) }
	e.start(t)
	id := e.run(t, RunInput{})[0].ID
	<-entered
	if _, err := e.svc.TerminateInstances(context.Background(), acct, []string{id}); err != nil {
		t.Fatal(err)
	}
	close(release)
	e.waitState(t, id, StateTerminated)
	if n := e.net.count(); n != 0 {
		t.Fatalf("%d ENIs left after terminating during launch", n)
	}
	if _, ok := e.drv.Spec(id); ok {
		t.Fatal("a VM is defined for an instance terminated during launch")
	}
}
