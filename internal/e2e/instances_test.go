package e2e

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/labcloud/labcloud/imagestore/builder"
)

// registerTiny builds labcloud-tiny (cached builds take about a second)
// and registers it as the admin; it returns the AMI id.
func registerTiny(t *testing.T, e *awsEnv) string {
	t.Helper()
	res, err := builder.BuildTiny(context.Background(), builder.BuildInput{OutDir: t.TempDir()})
	if err != nil {
		t.Fatalf("building labcloud-tiny: %v", err)
	}
	var r struct{ ImageId string }
	e.ok(&r, "labcloud", "ec2", "register-image", "--name", "labcloud-tiny", "--image-location", res.ManifestPath)
	return r.ImageId
}

type instanceView struct {
	InstanceId, PrivateIpAddress, VpcId, SubnetId string
	State                                         struct{ Name string }
}

func (e *awsEnv) instance(id string) instanceView {
	e.t.Helper()
	var out struct {
		Reservations []struct{ Instances []instanceView }
	}
	e.ok(&out, "labcloud", "ec2", "describe-instances", "--instance-ids", id)
	if len(out.Reservations) != 1 || len(out.Reservations[0].Instances) != 1 {
		e.t.Fatalf("describe-instances %s: %+v", id, out)
	}
	return out.Reservations[0].Instances[0]
}

// waitState polls describe-instances until the instance is in state.
func (e *awsEnv) waitState(id, state string, within time.Duration) instanceView {
	e.t.Helper()
	deadline := time.Now().Add(within)
	for {
		in := e.instance(id)
		if in.State.Name == state {
			return in
		}
		if time.Now().After(deadline) {
			e.t.Fatalf("instance %s is %s after %v, want %s\n%s", id, in.State.Name, within, state, e.d.log())
		}
		time.Sleep(500 * time.Millisecond)
	}
}

// startVMLab starts a labcloudd that runs VMs, with labcloud-tiny
// registered: the start of every real-VM test. VMs need root (network
// namespaces, taps); without it the test is skipped.
func startVMLab(t *testing.T) (*daemon, *awsEnv, string) {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("needs root (network namespaces, taps); CI runs as root")
	}
	stateDir := t.TempDir()
	cleanupNetns(t, stateDir)
	d := startDaemon(t, stateDir)
	e := newAWSEnv(t, d)
	return d, e, registerTiny(t, e)
}

// keyFile creates key pair name (extra: more create-key-pair options)
// and writes its private key to a 0600 file, whose path it returns.
func (e *awsEnv) keyFile(name string, extra ...string) string {
	e.t.Helper()
	args := append([]string{"ec2", "create-key-pair", "--key-name", name}, extra...)
	out, errOut, code := e.run("labcloud", append(args, "--query", "KeyMaterial", "--output", "text")...)
	if code != 0 {
		e.t.Fatalf("create-key-pair %s: %s", name, errOut)
	}
	path := filepath.Join(e.t.TempDir(), name+".pem")
	if err := os.WriteFile(path, []byte(strings.TrimSpace(out)+"\n"), 0o600); err != nil {
		e.t.Fatal(err)
	}
	return path
}

// sshRun runs a command on the instance from inside its VPC namespace,
// retrying until sshd answers.
func sshRun(t *testing.T, ns, key, ip, cmd string, within time.Duration) string {
	t.Helper()
	return sshRunAs(t, ns, key, "root", ip, cmd, within)
}

// sshRunAs is sshRun as another user; ns "" runs ssh in the host
// namespace (public IPs).
func sshRunAs(t *testing.T, ns, key, user, ip, cmd string, within time.Duration) string {
	t.Helper()
	deadline := time.Now().Add(within)
	for {
		args := []string{"ssh", "-i", key, "-o", "StrictHostKeyChecking=no",
			"-o", "UserKnownHostsFile=/dev/null", "-o", "ConnectTimeout=3", "-o", "BatchMode=yes", user + "@" + ip, cmd}
		if ns != "" {
			args = append([]string{"ip", "netns", "exec", ns}, args...)
		}
		c := exec.Command(args[0], args[1:]...)
		out, err := c.CombinedOutput()
		if err == nil {
			return string(out)
		}
		if time.Now().After(deadline) {
			t.Fatalf("ssh %s in %s: %v\n%s", ip, ns, err, out)
		}
		time.Sleep(time.Second)
	}
}

// The instances issue's story with the real aws CLI and a real VM under
// TCG: key pair, run-instances, ssh, metadata, user data, stop/start
// keeping the root disk, reboot, terminate cleaning up.
func TestInstanceLifecycleWithSSH(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("needs root (network namespaces, taps); CI runs as root")
	}
	stateDir := t.TempDir()
	cleanupNetns(t, stateDir) // runs after the daemon has stopped
	d := startDaemon(t, stateDir)
	e := newAWSEnv(t, d)
	ami := registerTiny(t, e)

	keyPath := e.keyFile("lab")

	var launched struct{ Instances []instanceView }
	e.ok(&launched, "labcloud", "ec2", "run-instances", "--image-id", ami, "--instance-type", "t3.micro", "--key-name", "lab",
		"--user-data", "#!/bin/sh\necho made-by-user-data > /root/ud.txt\n")
	if len(launched.Instances) != 1 {
		t.Fatalf("run-instances: %+v", launched)
	}
	id := launched.Instances[0].InstanceId
	in := e.waitState(id, "running", 3*time.Minute)
	if in.PrivateIpAddress == "" || in.VpcId == "" {
		t.Fatalf("running instance without address: %+v", in)
	}
	ns := netPrefix(d.stateDir) + "-" + in.VpcId

	got := sshRun(t, ns, keyPath, in.PrivateIpAddress, "wget -qO- http://169.254.169.254/latest/meta-data/instance-id; echo; cat /root/ud.txt", 3*time.Minute)
	if !strings.Contains(got, id) || !strings.Contains(got, "made-by-user-data") {
		t.Fatalf("inside the VM: %q (want instance id %s and the user-data file)", got, id)
	}
	sshRun(t, ns, keyPath, in.PrivateIpAddress, "echo kept > /root/persist.txt && sync", time.Minute)

	// The labcloud CLI gets there too, and shows the console.
	cli := filepath.Join(binDir, "labcloud")
	out, errOut, code := run(t, nil, cli, "--state-dir", d.stateDir, "ssh", "--net-prefix", netPrefix(d.stateDir),
		"-i", keyPath, "-l", "root", id, "cat /root/persist.txt")
	if code != 0 || !strings.Contains(out, "kept") {
		t.Fatalf("labcloud ssh: exit %d, out %q, err %q", code, out, errOut)
	}
	out, errOut, code = run(t, nil, cli, "--state-dir", d.stateDir, "console", id)
	if code != 0 || !strings.Contains(out, "ec2:") {
		t.Fatalf("labcloud console: exit %d, err %q, output:\n%s", code, errOut, out)
	}

	// Stop and start keep the root disk.
	e.ok(nil, "labcloud", "ec2", "stop-instances", "--instance-ids", id)
	e.waitState(id, "stopped", 3*time.Minute)
	e.ok(nil, "labcloud", "ec2", "start-instances", "--instance-ids", id)
	in = e.waitState(id, "running", 3*time.Minute)
	if got := sshRun(t, ns, keyPath, in.PrivateIpAddress, "cat /root/persist.txt", 3*time.Minute); !strings.Contains(got, "kept") {
		t.Fatalf("after stop/start: %q", got)
	}

	// Reboot comes back.
	e.ok(nil, "labcloud", "ec2", "reboot-instances", "--instance-ids", id)
	if got := sshRun(t, ns, keyPath, in.PrivateIpAddress, "cat /root/persist.txt", 3*time.Minute); !strings.Contains(got, "kept") {
		t.Fatalf("after reboot: %q", got)
	}

	// Bad input.
	e.fails("InvalidAMIID.NotFound", "labcloud", "ec2", "run-instances", "--image-id", "ami-0123456789abcdef0", "--key-name", "lab")
	e.fails("InvalidAMIID.Malformed", "labcloud", "ec2", "run-instances", "--image-id", "ami-xyz")
	e.fails("InvalidKeyPair.NotFound", "labcloud", "ec2", "run-instances", "--image-id", ami, "--key-name", "nope")

	// Terminate cleans up.
	e.ok(nil, "labcloud", "ec2", "terminate-instances", "--instance-ids", id)
	e.waitState(id, "terminated", 3*time.Minute)
	e.fails("IncorrectInstanceState", "labcloud", "ec2", "stop-instances", "--instance-ids", id)
	if _, err := os.Stat(filepath.Join(d.stateDir, "instances", id)); !os.IsNotExist(err) {
		t.Errorf("instance dir still there after terminate: %v", err)
	}
	if out, _ := exec.Command("pgrep", "-f", id).Output(); len(strings.TrimSpace(string(out))) > 0 {
		t.Errorf("QEMU of %s still running: %s", id, out)
	}
}

// cleanupNetns removes, at the end of the test, the QEMU processes of the
// daemon with this state dir and the network namespaces it left: both
// outlive labcloudd on purpose (running VMs keep running), so a test that
// fails before terminating its instances must not leave them behind.
func cleanupNetns(t *testing.T, stateDir string) {
	prefix := netPrefix(stateDir)
	t.Cleanup(func() {
		exec.Command("pkill", "-9", "-f", "qemu-system.*"+stateDir+"/").Run()
		removeHostLinks(t, prefix)
		out, _ := exec.Command("ip", "netns", "list").Output()
		for _, line := range strings.Split(string(out), "\n") {
			name := strings.Fields(line + " ")
			if len(name) > 0 && strings.HasPrefix(name[0], prefix+"-") {
				if err := exec.Command("ip", "netns", "del", name[0]).Run(); err != nil {
					t.Errorf("removing netns %s: %v", name[0], err)
				}
			}
		}
	})
}

// removeHostLinks deletes what a daemon with this network prefix made in
// the host namespace and keeps on purpose (running VMs stay reachable):
// its public bridge and internet-gateway veths. A later daemon's bridge
// with the same pool would otherwise share the route with a dead one.
func removeHostLinks(t testing.TB, prefix string) {
	out, _ := exec.Command("ip", "-o", "link", "show").Output()
	for _, line := range strings.Split(string(out), "\n") {
		f := strings.Fields(line)
		if len(f) < 2 {
			continue
		}
		name, _, _ := strings.Cut(strings.TrimSuffix(f[1], ":"), "@")
		if name == prefix+"pub" || (strings.HasPrefix(name, prefix+"g") && len(name) == len(prefix)+9) {
			if err := exec.Command("ip", "link", "del", name).Run(); err != nil {
				t.Errorf("removing %s: %v", name, err)
			}
		}
	}
}

// kill -9 labcloudd with an instance running, restart it: the instance
// keeps running and answering ssh, no second QEMU appears, and one whose
// QEMU died meanwhile is reported stopped.
func TestInstancesSurviveDaemonKill(t *testing.T) {
	d, e, ami := startVMLab(t)
	stateDir := d.stateDir
	keyPath := e.keyFile("lab")

	var launched struct{ Instances []instanceView }
	e.ok(&launched, "labcloud", "ec2", "run-instances", "--image-id", ami, "--instance-type", "t3.nano", "--key-name", "lab", "--count", "2")
	if len(launched.Instances) != 2 {
		t.Fatalf("run-instances --count 2: %+v", launched)
	}
	keep, victim := launched.Instances[0].InstanceId, launched.Instances[1].InstanceId
	in := e.waitState(keep, "running", 3*time.Minute)
	e.waitState(victim, "running", 3*time.Minute)
	ns := netPrefix(stateDir) + "-" + in.VpcId
	sshRun(t, ns, keyPath, in.PrivateIpAddress, "echo before > /root/mark", 3*time.Minute)
	qemuPIDs := func(id string) []string {
		out, _ := exec.Command("pgrep", "-f", "qemu-system.*"+id).Output()
		return strings.Fields(string(out))
	}
	before := qemuPIDs(keep)
	if len(before) != 1 {
		t.Fatalf("QEMU processes of %s: %v", keep, before)
	}

	// kill -9 the daemon, and meanwhile one VM dies too.
	if err := d.cmd.Process.Kill(); err != nil {
		t.Fatal(err)
	}
	<-d.exited
	for _, pid := range qemuPIDs(victim) {
		exec.Command("kill", "-9", pid).Run()
	}

	d2 := startDaemon(t, stateDir)
	e = newAWSEnv(t, d2) // the new daemon listens on a new port
	e.waitState(victim, "stopped", 2*time.Minute)
	if got := e.instance(keep); got.State.Name != "running" {
		t.Fatalf("after the restart %s is %s", keep, got.State.Name)
	}
	if got := sshRun(t, ns, keyPath, in.PrivateIpAddress, "cat /root/mark", 2*time.Minute); !strings.Contains(got, "before") {
		t.Fatalf("after the restart: %q", got)
	}
	if after := qemuPIDs(keep); len(after) != 1 || after[0] != before[0] {
		t.Fatalf("QEMU of %s was %v, now %v: the restart must reattach, not relaunch", keep, before, after)
	}
	// The stopped one starts again.
	e.ok(nil, "labcloud", "ec2", "start-instances", "--instance-ids", victim)
	e.waitState(victim, "running", 3*time.Minute)
	e.ok(nil, "labcloud", "ec2", "terminate-instances", "--instance-ids", keep, victim)
	e.waitState(keep, "terminated", 3*time.Minute)
	e.waitState(victim, "terminated", 3*time.Minute)
}
