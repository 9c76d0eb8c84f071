package e2e

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/service/ec2"
	ec2types "github.com/aws/aws-sdk-go-v2/service/ec2/types"

	"github.com/labcloud/labcloud/imagestore/builder"
)

// computeBench is a daemon with labcloud-tiny registered and a key pair.
type computeBench struct {
	d        *daemon
	cl       *ec2.Client
	ami, key string
	prefix   string
}

func newComputeBench(b *testing.B) *computeBench {
	if os.Geteuid() != 0 {
		b.Skip("needs root (network namespaces, taps)")
	}
	stateDir := b.TempDir()
	prefix := netPrefix(stateDir)
	b.Cleanup(func() {
		exec.Command("pkill", "-9", "-f", "qemu-system.*"+stateDir+"/").Run() // VMs outlive the daemon
		out, _ := exec.Command("ip", "netns", "list").Output()
		for _, f := range strings.Fields(string(out)) {
			if strings.HasPrefix(f, prefix+"-") {
				exec.Command("ip", "netns", "del", f).Run()
			}
		}
	})
	// The benchmarks run up to 20 small VMs on a 2-core host: lift the
	// capacity and quota limits for them.
	conf := filepath.Join(stateDir, "labcloud.yaml")
	os.WriteFile(conf, []byte("instances:\n  vcpuOvercommit: 24\n  accountVcpuLimit: 64\n  maxGuestMemoryMiB: 512\n"), 0o644)
	d := startDaemon(b, stateDir, "--config", conf)
	id, secret := d.creds()
	cl := ec2.New(ec2.Options{Region: "lab-1", BaseEndpoint: aws.String(d.Endpoint), Credentials: credentials.NewStaticCredentialsProvider(id, secret, "")})
	ctx := context.Background()
	res, err := builder.BuildTiny(ctx, builder.BuildInput{OutDir: b.TempDir()})
	if err != nil {
		b.Fatal(err)
	}
	img, err := cl.RegisterImage(ctx, &ec2.RegisterImageInput{Name: aws.String("labcloud-tiny"), ImageLocation: aws.String(res.ManifestPath)})
	if err != nil {
		b.Fatal(err)
	}
	kp, err := cl.CreateKeyPair(ctx, &ec2.CreateKeyPairInput{KeyName: aws.String("bench")})
	if err != nil {
		b.Fatal(err)
	}
	key := filepath.Join(b.TempDir(), "k.pem")
	os.WriteFile(key, []byte(aws.ToString(kp.KeyMaterial)+"\n"), 0o600)
	return &computeBench{d: d, cl: cl, ami: aws.ToString(img.ImageId), key: key, prefix: prefix}
}

// launch starts count instances and returns their ids.
func (cb *computeBench) launch(b *testing.B, count int32, typ string) []string {
	out, err := cb.cl.RunInstances(context.Background(), &ec2.RunInstancesInput{ImageId: aws.String(cb.ami), KeyName: aws.String("bench"),
		InstanceType: ec2types.InstanceType(typ), MinCount: aws.Int32(count), MaxCount: aws.Int32(count)})
	if err != nil {
		b.Fatal(err)
	}
	var ids []string
	for _, in := range out.Instances {
		ids = append(ids, aws.ToString(in.InstanceId))
	}
	return ids
}

// allRunning polls until every instance is running.
func (cb *computeBench) allRunning(b *testing.B, ids []string, within time.Duration) {
	deadline := time.Now().Add(within)
	for time.Now().Before(deadline) {
		out, err := cb.cl.DescribeInstances(context.Background(), &ec2.DescribeInstancesInput{InstanceIds: ids})
		if err == nil {
			n := 0
			for _, r := range out.Reservations {
				for _, in := range r.Instances {
					if in.State.Name == ec2types.InstanceStateNameRunning {
						n++
					}
				}
			}
			if n == len(ids) {
				return
			}
		}
		time.Sleep(500 * time.Millisecond)
	}
	b.Fatalf("not all of %d instances running within %v", len(ids), within)
}

// trySSH reports whether the instance answers ssh now (one try).
func (cb *computeBench) trySSH(id string) bool {
	out, err := cb.cl.DescribeInstances(context.Background(), &ec2.DescribeInstancesInput{InstanceIds: []string{id}})
	if err != nil || len(out.Reservations) != 1 {
		return false
	}
	in := out.Reservations[0].Instances[0]
	ns := cb.prefix + "-" + aws.ToString(in.VpcId)
	c := exec.Command("ip", "netns", "exec", ns, "ssh", "-i", cb.key, "-o", "StrictHostKeyChecking=no",
		"-o", "UserKnownHostsFile=/dev/null", "-o", "ConnectTimeout=3", "-o", "BatchMode=yes", "root@"+aws.ToString(in.PrivateIpAddress), "true")
	return c.Run() == nil
}

// sshReady polls until the instance is running and answers ssh.
func (cb *computeBench) sshReady(b *testing.B, id string, within time.Duration) {
	deadline := time.Now().Add(within)
	for time.Now().Before(deadline) {
		out, err := cb.cl.DescribeInstances(context.Background(), &ec2.DescribeInstancesInput{InstanceIds: []string{id}})
		if err == nil && len(out.Reservations) == 1 {
			in := out.Reservations[0].Instances[0]
			if in.State.Name == ec2types.InstanceStateNameRunning && aws.ToString(in.PrivateIpAddress) != "" {
				ns := cb.prefix + "-" + aws.ToString(in.VpcId)
				c := exec.Command("ip", "netns", "exec", ns, "ssh", "-i", cb.key, "-o", "StrictHostKeyChecking=no",
					"-o", "UserKnownHostsFile=/dev/null", "-o", "ConnectTimeout=2", "-o", "BatchMode=yes", "root@"+aws.ToString(in.PrivateIpAddress), "true")
				if c.Run() == nil {
					return
				}
			}
		}
		time.Sleep(100 * time.Millisecond)
	}
	b.Fatalf("%s not ssh-ready within %v", id, within)
}

func (cb *computeBench) terminate(b *testing.B, ids []string) {
	if _, err := cb.cl.TerminateInstances(context.Background(), &ec2.TerminateInstancesInput{InstanceIds: ids}); err != nil {
		b.Fatal(err)
	}
	deadline := time.Now().Add(3 * time.Minute)
	for time.Now().Before(deadline) {
		out, err := cb.cl.DescribeInstances(context.Background(), &ec2.DescribeInstancesInput{InstanceIds: ids})
		if err == nil {
			done := true
			for _, r := range out.Reservations {
				for _, in := range r.Instances {
					done = done && in.State.Name == ec2types.InstanceStateNameTerminated
				}
			}
			if done {
				return
			}
		}
		time.Sleep(200 * time.Millisecond)
	}
	b.Fatalf("instances %v not terminated", ids)
}

// qemuStart is when the instance's QEMU process started (the floor's
// starting line: from here on it is the guest booting).
func qemuStart(b *testing.B, id string) time.Time {
	out, err := exec.Command("pgrep", "-f", "qemu-system.*"+id).Output()
	pids := strings.Fields(string(out))
	if err != nil || len(pids) != 1 {
		b.Fatalf("QEMU of %s: %v %v", id, pids, err)
	}
	return procStart(b, pids[0])
}

// procStart reads a process's start time: field 22 of /proc/PID/stat in
// clock ticks (100 Hz on Linux) after boot, plus btime from /proc/stat.
func procStart(b *testing.B, pid string) time.Time {
	stat, err := os.ReadFile("/proc/" + pid + "/stat")
	if err != nil {
		b.Fatal(err)
	}
	fields := strings.Fields(string(stat[strings.LastIndexByte(string(stat), ')')+1:]))
	ticks, _ := strconv.ParseInt(fields[19], 10, 64) // field 22 overall
	sys, err := os.ReadFile("/proc/stat")
	if err != nil {
		b.Fatal(err)
	}
	var btime int64
	for _, line := range strings.Split(string(sys), "\n") {
		if strings.HasPrefix(line, "btime ") {
			btime, _ = strconv.ParseInt(strings.Fields(line)[1], 10, 64)
		}
	}
	return time.Unix(btime, 0).Add(time.Duration(ticks) * 10 * time.Millisecond)
}

func quantile(ds []time.Duration, q float64) float64 {
	s := append([]time.Duration{}, ds...)
	sort.Slice(s, func(i, j int) bool { return s[i] < s[j] })
	return float64(s[int(q*float64(len(s)-1))].Milliseconds())
}

// BenchmarkLaunchToSSH: RunInstances → first successful ssh, over 10
// sequential launches of labcloud-tiny, against the floor of the same VM's
// own boot (QEMU process start → ssh) in the same run. Run with -benchtime 1x.
func BenchmarkLaunchToSSH(b *testing.B) {
	cb := newComputeBench(b)
	var total, floor []time.Duration
	for i := 0; i < 10; i++ {
		t0 := time.Now()
		ids := cb.launch(b, 1, "t3.micro")
		cb.sshReady(b, ids[0], 3*time.Minute)
		ready := time.Now()
		total = append(total, ready.Sub(t0))
		floor = append(floor, ready.Sub(qemuStart(b, ids[0])))
		cb.terminate(b, ids)
	}
	b.ReportMetric(quantile(total, 0.5), "launch-to-ssh-p50-ms")
	b.ReportMetric(quantile(total, 0.9), "launch-to-ssh-p90-ms")
	b.ReportMetric(quantile(floor, 0.5), "qemu-to-ssh-p50-ms")
	b.ReportMetric(quantile(total, 0.5)/quantile(floor, 0.5), "ratio-to-floor")
}

// BenchmarkConcurrentLaunch: 10 instances in one RunInstances until all
// answer ssh. Run with -benchtime 1x.
func BenchmarkConcurrentLaunch(b *testing.B) {
	cb := newComputeBench(b)
	t0 := time.Now()
	ids := cb.launch(b, 10, "t3.nano")
	var wg sync.WaitGroup
	for _, id := range ids {
		wg.Add(1)
		go func(id string) { defer wg.Done(); cb.sshReady(b, id, 10*time.Minute) }(id)
	}
	wg.Wait()
	b.ReportMetric(float64(time.Since(t0).Milliseconds()), "all-10-ssh-ready-ms")
	cb.terminate(b, ids)
}

// BenchmarkDaemonRSS: labcloudd's resident memory with 20 instances
// running. Run with -benchtime 1x.
func BenchmarkDaemonRSS(b *testing.B) {
	cb := newComputeBench(b)
	ids := cb.launch(b, 20, "t3.nano")
	// RSS with 20 instances running: every one in state running (its
	// QEMU started, its tap, lease and filter rules made). Twenty TCG
	// guests booting at once on a 2-core machine take minutes to all
	// answer ssh, which says nothing about the daemon, so ssh is only
	// counted and reported.
	cb.allRunning(b, ids, 10*time.Minute)
	ready := map[string]bool{}
	for deadline := time.Now().Add(6 * time.Minute); len(ready) < len(ids) && time.Now().Before(deadline); {
		for _, id := range ids {
			if !ready[id] && cb.trySSH(id) {
				ready[id] = true
			}
		}
	}
	b.ReportMetric(float64(len(ready)), "ssh-ready-of-20")
	status, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", cb.d.cmd.Process.Pid))
	if err != nil {
		b.Fatal(err)
	}
	for _, line := range strings.Split(string(status), "\n") {
		if strings.HasPrefix(line, "VmRSS:") {
			kb, _ := strconv.Atoi(strings.Fields(line)[1])
			b.ReportMetric(float64(kb)/1024, "labcloudd-RSS-MiB")
		}
	}
	cb.terminate(b, ids)
}
