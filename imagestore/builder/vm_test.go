// The boot tests run the x86_64 image under QEMU TCG on an x86_64 Linux
// host (the setns syscall number below is amd64's).

//go:build linux && amd64

package builder

import (
	"bufio"
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// vmTools are what the boot tests run besides the builder's tools.
var vmTools = []Tool{
	{"qemu-system-x86_64", "qemu-system-x86"},
	{"ip", "iproute2"},
	{"ssh", "openssh-client"},
	{"ssh-keygen", "openssh-client"},
	{"scp", "openssh-client"},
}

// Generous deadlines: TCG on a loaded 2-core machine. Typical values are
// logged by the tests.
const (
	bootDeadline     = 4 * time.Minute
	shutdownDeadline = 2 * time.Minute
)

// Addresses live only inside the test's own network namespace, laid out
// like a subnet of the AWS default VPC.
const (
	testRouter    = "172.31.0.1"
	testDNS       = "172.31.0.2"
	testGuestIP   = "172.31.0.10"
	testGuestMAC  = "52:54:00:1a:b0:10"
	testMTU       = 1400
	testIMDSAddr  = "169.254.169.254"
	testInstance  = "i-0labcloudtiny0001"
	testHostname  = "ip-172-31-0-10.ec2.internal"
	testKeyName   = "labcloud-test-key"
	testUserData  = "#!/bin/sh\necho \"user-data ran as uid $(id -u) on $(hostname)\" >/tmp/marker\necho \"labcloud-user-data-marker uid=$(id -u)\"\n"
	userDataShown = "labcloud-user-data-marker uid=0"
)

// waitFor polls cond until it holds or the deadline passes.
func waitFor(t *testing.T, what string, deadline time.Duration, cond func() (bool, error)) {
	t.Helper()
	end := time.Now().Add(deadline)
	var lastErr error
	for {
		ok, err := cond()
		if ok {
			return
		}
		lastErr = err
		if time.Now().After(end) {
			t.Fatalf("%s: not within %s (last error: %v)", what, deadline, lastErr)
		}
		time.Sleep(200 * time.Millisecond)
	}
}

// vm is one QEMU process of a test.
type vm struct {
	t       *testing.T
	cmd     *exec.Cmd
	console string
	qmp     string
	start   time.Time
	done    chan struct{}
	exitErr error
}

type vmConfig struct {
	res     Result
	overlay string
	dir     string
	name    string // for the console and QMP file names
	netns   string // "" for a VM without a NIC
	tap     string
}

// startVM boots the image under TCG with direct kernel boot, the root
// volume on virtio-blk and, with a netns, a virtio-net NIC on its tap.
func startVM(t *testing.T, c vmConfig) *vm {
	t.Helper()
	v := &vm{
		t:       t,
		console: filepath.Join(c.dir, c.name+".console.log"),
		qmp:     filepath.Join(c.dir, c.name+".qmp"),
		done:    make(chan struct{}),
	}
	args := []string{
		"-name", "labcloud-tiny-" + c.name,
		"-accel", "tcg,thread=multi", "-machine", "q35", "-m", "256",
		"-nodefaults", "-no-user-config", "-display", "none",
		"-serial", "file:" + v.console,
		"-qmp", "unix:" + v.qmp + ",server=on,wait=off",
		"-kernel", c.res.Kernel, "-initrd", c.res.Initrd, "-append", c.res.KernelCmdline,
		"-drive", "file=" + c.overlay + ",if=virtio,format=qcow2",
		"-object", "rng-random,id=rng0,filename=/dev/urandom", "-device", "virtio-rng-pci,rng=rng0",
	}
	if c.tap != "" {
		args = append(args,
			"-netdev", "tap,id=n0,ifname="+c.tap+",script=no,downscript=no",
			"-device", "virtio-net-pci,netdev=n0,mac="+testGuestMAC)
	}
	qemu, err := LookTool("qemu-system-x86_64")
	if err != nil {
		t.Fatal(err)
	}
	if c.netns != "" {
		v.cmd = exec.Command("ip", append([]string{"netns", "exec", c.netns, qemu}, args...)...)
	} else {
		v.cmd = exec.Command(qemu, args...)
	}
	stderr, err := os.Create(filepath.Join(c.dir, c.name+".qemu.log"))
	if err != nil {
		t.Fatal(err)
	}
	v.cmd.Stdout, v.cmd.Stderr = stderr, stderr
	v.start = time.Now()
	if err := v.cmd.Start(); err != nil {
		t.Fatalf("starting QEMU: %v", err)
	}
	go func() {
		v.exitErr = v.cmd.Wait()
		stderr.Close()
		close(v.done)
	}()
	t.Cleanup(func() {
		select {
		case <-v.done:
		default:
			v.cmd.Process.Kill()
			<-v.done
		}
		// LABCLOUD_TEST_CONSOLE=1 shows the consoles of passing tests too.
		if t.Failed() || os.Getenv("LABCLOUD_TEST_CONSOLE") != "" {
			t.Logf("console of %s:\n%s", c.name, v.consoleText())
			if b, _ := os.ReadFile(filepath.Join(c.dir, c.name+".qemu.log")); len(b) > 0 {
				t.Logf("QEMU output of %s:\n%s", c.name, b)
			}
		}
	})
	return v
}

func (v *vm) consoleText() string {
	b, _ := os.ReadFile(v.console)
	return string(b)
}

// timeline returns the console lines that mark boot steps, with the
// guest's uptime.
func (v *vm) timeline() string {
	var lines []string
	for _, l := range strings.Split(v.consoleText(), "\n") {
		if strings.HasPrefix(l, "labcloud-tiny: [") || strings.Contains(l, "Run /init") || strings.Contains(l, "EXT4-fs (vda): mounted") {
			lines = append(lines, "  "+strings.TrimSpace(l))
		}
	}
	return strings.Join(lines, "\n")
}

func (v *vm) exited() bool {
	select {
	case <-v.done:
		return true
	default:
		return false
	}
}

// waitConsole waits for a line containing s on the serial console.
func (v *vm) waitConsole(s string, deadline time.Duration) {
	v.t.Helper()
	waitFor(v.t, fmt.Sprintf("console line %q", s), deadline, func() (bool, error) {
		if strings.Contains(v.consoleText(), s) {
			return true, nil
		}
		if v.exited() {
			v.t.Fatalf("QEMU exited (%v) before the console showed %q", v.exitErr, s)
		}
		return false, nil
	})
}

// waitPoweredOff waits for QEMU to exit by itself after a guest poweroff.
func (v *vm) waitPoweredOff(deadline time.Duration) time.Duration {
	v.t.Helper()
	start := time.Now()
	select {
	case <-v.done:
	case <-time.After(deadline):
		v.t.Fatalf("the VM did not power off within %s", deadline)
	}
	if v.exitErr != nil {
		v.t.Fatalf("QEMU exited with %v after the guest powered off", v.exitErr)
	}
	return time.Since(start)
}

// qmpCommand runs one QMP command (no arguments).
func (v *vm) qmpCommand(command string) error {
	conn, err := net.DialTimeout("unix", v.qmp, 5*time.Second)
	if err != nil {
		return err
	}
	defer conn.Close()
	conn.SetDeadline(time.Now().Add(30 * time.Second))
	dec := json.NewDecoder(bufio.NewReader(conn))
	var msg map[string]json.RawMessage
	if err := dec.Decode(&msg); err != nil {
		return fmt.Errorf("QMP greeting: %w", err)
	}
	for _, cmd := range []string{"qmp_capabilities", command} {
		if _, err := fmt.Fprintf(conn, `{"execute":%q}`+"\n", cmd); err != nil {
			return err
		}
		for {
			msg = nil
			if err := dec.Decode(&msg); err != nil {
				return fmt.Errorf("QMP %s: %w", cmd, err)
			}
			if e, ok := msg["error"]; ok {
				return fmt.Errorf("QMP %s: %s", cmd, e)
			}
			if _, ok := msg["return"]; ok {
				break
			}
		}
	}
	return nil
}

// newOverlay makes the instance's root volume: a 2 GiB qcow2 on top of the
// image, larger than the image so that the boot grows the file system.
func newOverlay(t *testing.T, res Result, dir string) string {
	t.Helper()
	p := filepath.Join(dir, "root-volume.qcow2")
	if out, err := exec.Command("qemu-img", "create", "-q", "-f", "qcow2", "-b", res.Disk, "-F", "qcow2", p, "2G").CombinedOutput(); err != nil {
		t.Fatalf("qemu-img create: %v: %s", err, out)
	}
	return p
}

func TestTinyBootsWithoutNetwork(t *testing.T) {
	requireTools(t, vmTools[0])
	res := builtTiny(t)
	dir := t.TempDir()
	v := startVM(t, vmConfig{res: res, overlay: newOverlay(t, res, dir), dir: dir, name: "nonet"})

	v.waitConsole("boot finished", bootDeadline)
	t.Logf("boot finished (no NIC) after %s", time.Since(v.start).Round(time.Millisecond))
	con := v.consoleText()
	for _, want := range []string{
		"no network (no DHCP lease): skipping the instance metadata",
		"acpid started",
		"ec2: -----BEGIN SSH HOST KEY FINGERPRINTS-----",
		"(ED25519)",
		"ssh (dropbear) started",
	} {
		if !strings.Contains(con, want) {
			t.Errorf("console lacks %q", want)
		}
	}
	// The ACPI power button (what StopInstances presses) shuts down cleanly.
	waitFor(t, "QMP socket", 30*time.Second, func() (bool, error) {
		err := v.qmpCommand("system_powerdown")
		return err == nil, err
	})
	d := v.waitPoweredOff(shutdownDeadline)
	t.Logf("power button to power off: %s", d.Round(time.Millisecond))
	con = v.consoleText()
	for _, want := range []string{"power button pressed", "root volume remounted read-only"} {
		if !strings.Contains(con, want) {
			t.Errorf("console lacks %q after the power button", want)
		}
	}
}

// labNet is a network namespace standing in for a VPC subnet: a bridge
// with the router address and 169.254.169.254, a tap for the VM, busybox
// udhcpd and an EC2-style metadata server.
type labNet struct {
	t    *testing.T
	ns   string
	tap  string
	dir  string
	key  string // ssh private key
	imds *fakeIMDS
}

func run1(t *testing.T, name string, args ...string) {
	t.Helper()
	if out, err := exec.Command(name, args...).CombinedOutput(); err != nil {
		t.Fatalf("%s %s: %v: %s", name, strings.Join(args, " "), err, out)
	}
}

func newLabNet(t *testing.T, dir string) *labNet {
	t.Helper()
	var rnd [3]byte
	rand.Read(rnd[:])
	n := &labNet{t: t, ns: "lctiny-" + hex.EncodeToString(rnd[:]), tap: "tap0", dir: dir}
	run1(t, "ip", "netns", "add", n.ns)
	t.Cleanup(func() {
		if out, err := exec.Command("ip", "netns", "del", n.ns).CombinedOutput(); err != nil {
			t.Errorf("deleting netns %s: %v: %s", n.ns, err, out)
		}
	})
	for _, args := range [][]string{
		{"link", "set", "lo", "up"},
		{"link", "add", "br0", "type", "bridge"},
		{"addr", "add", testRouter + "/20", "dev", "br0"},
		{"addr", "add", testIMDSAddr + "/32", "dev", "br0"},
		{"link", "set", "br0", "up"},
		{"tuntap", "add", "dev", n.tap, "mode", "tap"},
		{"link", "set", n.tap, "master", "br0"},
		{"link", "set", n.tap, "up"},
	} {
		run1(t, "ip", append([]string{"-n", n.ns}, args...)...)
	}

	// ssh key pair of the "EC2 key pair".
	n.key = filepath.Join(dir, "id_ed25519")
	run1(t, "ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", testKeyName, "-f", n.key)
	pub, err := os.ReadFile(n.key + ".pub")
	if err != nil {
		t.Fatal(err)
	}

	// DHCP: busybox udhcpd from the builder's cached busybox-static.
	bbs, _ := filepath.Glob(filepath.Join(testCacheDir(), "unpacked", "busybox-static_*", "bin", "busybox"))
	if len(bbs) == 0 {
		t.Fatalf("no busybox-static in the package cache %s", testCacheDir())
	}
	conf := filepath.Join(dir, "udhcpd.conf")
	if err := os.WriteFile(conf, []byte(fmt.Sprintf(`interface br0
start 172.31.0.10
end 172.31.0.20
lease_file %s
pidfile %s
static_lease %s %s
opt subnet 255.255.240.0
opt router %s
opt dns %s
opt domain ec2.internal
opt mtu %d
opt lease 3600
`, filepath.Join(dir, "udhcpd.leases"), filepath.Join(dir, "udhcpd.pid"), testGuestMAC, testGuestIP, testRouter, testDNS, testMTU)), 0o644); err != nil {
		t.Fatal(err)
	}
	os.WriteFile(filepath.Join(dir, "udhcpd.leases"), nil, 0o644)
	dhcpLog, err := os.Create(filepath.Join(dir, "udhcpd.log"))
	if err != nil {
		t.Fatal(err)
	}
	dhcpd := exec.Command("ip", "netns", "exec", n.ns, bbs[len(bbs)-1], "udhcpd", "-f", conf)
	dhcpd.Stdout, dhcpd.Stderr = dhcpLog, dhcpLog
	if err := dhcpd.Start(); err != nil {
		t.Fatalf("starting udhcpd: %v", err)
	}
	t.Cleanup(func() {
		dhcpd.Process.Kill()
		dhcpd.Wait()
		dhcpLog.Close()
	})

	// Instance metadata service on 169.254.169.254:80 inside the netns.
	n.imds = &fakeIMDS{
		tokens:  map[string]bool{},
		fetches: map[string]int{},
		meta: map[string]string{
			"meta-data/instance-id":               testInstance,
			"meta-data/local-hostname":            testHostname,
			"meta-data/local-ipv4":                testGuestIP,
			"meta-data/public-keys/":              "0=" + testKeyName,
			"meta-data/public-keys/0/":            "openssh-key",
			"meta-data/public-keys/0/openssh-key": string(pub),
			"user-data":                           testUserData,
		},
	}
	ln, err := listenInNetns(n.ns, "tcp4", testIMDSAddr+":80")
	if err != nil {
		t.Fatalf("listening on %s:80 in %s: %v", testIMDSAddr, n.ns, err)
	}
	srv := &http.Server{Handler: n.imds, ReadHeaderTimeout: 10 * time.Second}
	go srv.Serve(ln)
	t.Cleanup(func() { srv.Close() })
	return n
}

// sysSetns is setns(2) on amd64; the syscall package does not name it.
const sysSetns = 308

// inNetns runs f on an OS thread that has entered the named network
// namespace. Sockets f opens stay in that namespace, whichever thread
// uses them later.
func inNetns(ns string, f func()) error {
	errc := make(chan error, 1)
	go func() {
		runtime.LockOSThread()
		orig, err := os.Open("/proc/thread-self/ns/net")
		if err != nil {
			runtime.UnlockOSThread()
			errc <- err
			return
		}
		defer orig.Close()
		target, err := os.Open(filepath.Join("/run/netns", ns))
		if err != nil {
			runtime.UnlockOSThread()
			errc <- err
			return
		}
		defer target.Close()
		if _, _, e := syscall.RawSyscall(sysSetns, target.Fd(), syscall.CLONE_NEWNET, 0); e != 0 {
			runtime.UnlockOSThread()
			errc <- fmt.Errorf("setns %s: %w", ns, e)
			return
		}
		f()
		if _, _, e := syscall.RawSyscall(sysSetns, orig.Fd(), syscall.CLONE_NEWNET, 0); e != 0 {
			// Stay locked: the thread ends with this goroutine rather than
			// running other goroutines in the wrong namespace.
			errc <- fmt.Errorf("setns back from %s: %w", ns, e)
			return
		}
		runtime.UnlockOSThread()
		errc <- nil
	}()
	return <-errc
}

// listenInNetns opens a listening socket inside the named namespace.
func listenInNetns(ns, network, addr string) (net.Listener, error) {
	var ln net.Listener
	var lerr error
	if err := inNetns(ns, func() { ln, lerr = net.Listen(network, addr) }); err != nil {
		if ln != nil {
			ln.Close()
		}
		return nil, err
	}
	return ln, lerr
}

// sshBanner connects to addr:22 inside the namespace and returns the SSH
// version line the server sends first.
func sshBanner(ns, addr string, timeout time.Duration) (string, error) {
	var conn net.Conn
	var derr error
	if err := inNetns(ns, func() { conn, derr = net.DialTimeout("tcp4", addr+":22", timeout) }); err != nil {
		if conn != nil {
			conn.Close()
		}
		return "", err
	}
	if derr != nil {
		return "", derr
	}
	defer conn.Close()
	conn.SetReadDeadline(time.Now().Add(5 * time.Second))
	line, err := bufio.NewReader(conn).ReadString('\n')
	return strings.TrimSpace(line), err
}

// fakeIMDS answers like EC2's instance metadata service: IMDSv2 tokens from
// PUT /latest/api/token, GETs with or without a token (v1), 401 for a bad
// token, 404 for what it does not have. It counts what it was asked.
type fakeIMDS struct {
	mu      sync.Mutex
	tokens  map[string]bool
	puts    int
	v1Gets  int
	v2Gets  int
	fetches map[string]int
	meta    map[string]string
	// v1Only makes it a service without IMDSv2: PUT is refused.
	v1Only bool
}

func (s *fakeIMDS) setV1Only(v bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.v1Only = v
}

func (s *fakeIMDS) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if r.Method == http.MethodPut && r.URL.Path == "/latest/api/token" && !s.v1Only {
		ttl, err := strconv.Atoi(r.Header.Get("X-aws-ec2-metadata-token-ttl-seconds"))
		if err != nil || ttl < 1 || ttl > 21600 {
			http.Error(w, "bad X-aws-ec2-metadata-token-ttl-seconds", http.StatusBadRequest)
			return
		}
		var b [24]byte
		rand.Read(b[:])
		tok := hex.EncodeToString(b[:])
		s.tokens[tok] = true
		s.puts++
		w.Header().Set("X-aws-ec2-metadata-token-ttl-seconds", strconv.Itoa(ttl))
		fmt.Fprint(w, tok)
		return
	}
	if r.Method != http.MethodGet {
		http.Error(w, "method not allowed", http.StatusMethodNotAllowed)
		return
	}
	if tok := r.Header.Get("X-aws-ec2-metadata-token"); tok != "" {
		if !s.tokens[tok] {
			http.Error(w, "unauthorized", http.StatusUnauthorized)
			return
		}
		s.v2Gets++
	} else {
		s.v1Gets++
	}
	p := strings.TrimPrefix(r.URL.Path, "/latest/")
	s.fetches[p]++
	v, ok := s.meta[p]
	if !ok {
		http.NotFound(w, r)
		return
	}
	fmt.Fprint(w, v)
}

func (s *fakeIMDS) stats() (puts, v1, v2 int, fetches map[string]int) {
	s.mu.Lock()
	defer s.mu.Unlock()
	f := map[string]int{}
	for k, v := range s.fetches {
		f[k] = v
	}
	return s.puts, s.v1Gets, s.v2Gets, f
}

// ssh runs a command on the guest from inside the namespace.
func (n *labNet) ssh(user, knownHosts, strict, command string) (string, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, "ip", "netns", "exec", n.ns, "ssh",
		"-i", n.key, "-o", "BatchMode=yes", "-o", "ConnectTimeout=5", "-o", "IdentitiesOnly=yes",
		"-o", "UserKnownHostsFile="+knownHosts, "-o", "StrictHostKeyChecking="+strict,
		"-o", "LogLevel=ERROR", user+"@"+testGuestIP, command)
	out, err := cmd.CombinedOutput()
	return strings.TrimSpace(string(out)), err
}

// mustSSH runs a command that must succeed.
func (n *labNet) mustSSH(user, knownHosts, command string) string {
	n.t.Helper()
	out, err := n.ssh(user, knownHosts, "yes", command)
	if err != nil {
		n.t.Fatalf("ssh %s@guest %q: %v: %s", user, command, err, out)
	}
	return out
}

// waitSSH waits for the guest's ssh server (its version banner, polled
// with short connect timeouts so that the time is precise), checks that an
// ssh login works and returns the time from the VM's start to the banner.
func (n *labNet) waitSSH(v *vm, knownHosts, strict string) time.Duration {
	n.t.Helper()
	var ready time.Duration
	waitFor(n.t, "ssh server of the guest", bootDeadline, func() (bool, error) {
		if v.exited() {
			n.t.Fatalf("QEMU exited (%v) before ssh worked", v.exitErr)
		}
		banner, err := sshBanner(n.ns, testGuestIP, 250*time.Millisecond)
		if err != nil {
			return false, err
		}
		if !strings.HasPrefix(banner, "SSH-2.0-") {
			return false, fmt.Errorf("banner %q", banner)
		}
		ready = time.Since(v.start)
		return true, nil
	})
	if out, err := n.ssh("ec2-user", knownHosts, strict, "true"); err != nil {
		n.t.Fatalf("ssh ec2-user@guest: %v: %s", err, out)
	}
	return ready
}

func TestTinyBootsToSSHAndKeepsItsRootVolume(t *testing.T) {
	requireTools(t, vmTools...)
	requireRoot(t)
	res := builtTiny(t)
	dir := t.TempDir()
	n := newLabNet(t, dir)
	overlay := newOverlay(t, res, dir)
	knownHosts := filepath.Join(dir, "known_hosts")

	// First boot: DHCP, IMDSv2, key pair, user-data, ssh.
	v := startVM(t, vmConfig{res: res, overlay: overlay, dir: dir, name: "boot1", netns: n.ns, tap: n.tap})
	d := n.waitSSH(v, knownHosts, "accept-new")
	t.Logf("first boot: QEMU start to ssh in %s; the guest's timeline:\n%s", d.Round(time.Millisecond), v.timeline())

	if got := n.mustSSH("ec2-user", knownHosts, "id -u; hostname"); got != "1000\nip-172-31-0-10" {
		t.Errorf("ec2-user: id -u; hostname = %q, want 1000 and the IMDS local-hostname", got)
	}
	if got := n.mustSSH("root", knownHosts, "id -u"); got != "0" {
		t.Errorf("root login: id -u = %q", got)
	}
	if got := n.mustSSH("ec2-user", knownHosts, "cat /sys/class/net/eth0/mtu; ip -4 -o addr show dev eth0 | awk '{print $4}'; ip route | grep ^default; cat /etc/resolv.conf"); !strings.Contains(got, strconv.Itoa(testMTU)+"\n"+testGuestIP+"/20\n") ||
		!strings.Contains(got, "default via "+testRouter) || !strings.Contains(got, "nameserver "+testDNS) || !strings.Contains(got, "search ec2.internal") {
		t.Errorf("network from DHCP (mtu, address, route, resolv.conf):\n%s", got)
	}
	// The 2 GiB volume is larger than the 1 GiB image: the boot grew it.
	if got := n.mustSSH("ec2-user", knownHosts, "df -k / | awk 'NR==2 {print $2}'"); func() bool { kb, _ := strconv.Atoi(got); return kb < 1800*1024 }() {
		t.Errorf("root file system is %s KiB; want it grown to the 2 GiB volume", got)
	}

	// The host key ssh accepted is the one the console printed.
	fp, err := exec.Command("ssh-keygen", "-l", "-f", knownHosts).Output()
	if err != nil {
		t.Fatalf("ssh-keygen -l: %v", err)
	}
	fields := strings.Fields(string(fp))
	if len(fields) < 2 || !strings.Contains(v.consoleText(), "ec2: "+fields[0]+" "+fields[1]+" ") {
		t.Errorf("host key %q is not among the console's ec2: fingerprints", strings.TrimSpace(string(fp)))
	}

	// user-data ran once, as root, after the boot; output on the console
	// and in /var/log/user-data.log.
	waitFor(t, "user-data marker", bootDeadline, func() (bool, error) {
		out, err := n.ssh("ec2-user", knownHosts, "yes", "cat /tmp/marker")
		return err == nil && out == "user-data ran as uid 0 on ip-172-31-0-10", fmt.Errorf("%v: %s", err, out)
	})
	v.waitConsole(userDataShown, 30*time.Second)
	v.waitConsole("user-data finished with exit status 0", 30*time.Second)
	if got := n.mustSSH("root", knownHosts, "cat /var/log/user-data.log"); !strings.Contains(got, userDataShown) {
		t.Errorf("/var/log/user-data.log = %q", got)
	}
	if !strings.Contains(v.consoleText(), "first boot of instance "+testInstance+" (IMDSv2)") {
		t.Errorf("console does not report the first boot with IMDSv2")
	}
	puts, v1, v2, _ := n.imds.stats()
	if puts == 0 || v2 == 0 || v1 != 0 {
		t.Errorf("IMDS: %d token PUTs, %d GETs with a token, %d without; want IMDSv2 only", puts, v2, v1)
	}

	// scp (OpenSSH 9 uses the SFTP subsystem) and a file on the root volume.
	var rnd [8]byte
	rand.Read(rnd[:])
	stamp := hex.EncodeToString(rnd[:])
	local := filepath.Join(dir, "stamp.txt")
	if err := os.WriteFile(local, []byte(stamp+"\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	if out, err := exec.Command("ip", "netns", "exec", n.ns, "scp", "-q", "-i", n.key, "-o", "BatchMode=yes",
		"-o", "UserKnownHostsFile="+knownHosts, "-o", "StrictHostKeyChecking=yes", "-o", "LogLevel=ERROR",
		local, "ec2-user@"+testGuestIP+":stamp.txt").CombinedOutput(); err != nil {
		t.Fatalf("scp to the guest: %v: %s", err, out)
	}
	if got := n.mustSSH("ec2-user", knownHosts, "cat ~/stamp.txt && sync"); got != stamp {
		t.Fatalf("copied file reads %q, want %q", got, stamp)
	}

	// poweroff inside the guest powers the VM off (QEMU exits).
	n.ssh("root", knownHosts, "yes", "poweroff")
	d = v.waitPoweredOff(shutdownDeadline)
	t.Logf("guest poweroff: QEMU gone %s after the command", d.Round(time.Millisecond))
	if !strings.Contains(v.consoleText(), "root volume remounted read-only") {
		t.Errorf("the shutdown did not remount the root volume read-only")
	}

	// Second boot on the same root volume (stop/start): the file is still
	// there, the host key is the same, user-data does not run again. The
	// metadata service now lacks IMDSv2: the guest falls back to IMDSv1.
	n.imds.setV1Only(true)
	_, v1Before, _, _ := n.imds.stats()
	v2vm := startVM(t, vmConfig{res: res, overlay: overlay, dir: dir, name: "boot2", netns: n.ns, tap: n.tap})
	d = n.waitSSH(v2vm, knownHosts, "yes")
	t.Logf("second boot: QEMU start to ssh in %s", d.Round(time.Millisecond))
	if got := n.mustSSH("ec2-user", knownHosts, "cat ~/stamp.txt"); got != stamp {
		t.Errorf("after stop/start the file reads %q, want %q", got, stamp)
	}
	if out, err := n.ssh("ec2-user", knownHosts, "yes", "test ! -e /tmp/marker && echo gone"); err != nil || out != "gone" {
		t.Errorf("/tmp/marker after the restart: %q, %v (user-data must run only on the first boot)", out, err)
	}
	v2vm.waitConsole("instance "+testInstance+" (IMDSv1): not its first boot", 30*time.Second)
	if _, v1, _, _ := n.imds.stats(); v1 <= v1Before {
		t.Errorf("second boot made no IMDSv1 request")
	}
	if got := n.mustSSH("ec2-user", knownHosts, "hostname"); got != "ip-172-31-0-10" {
		t.Errorf("hostname after the restart (IMDSv1) = %q", got)
	}
	if _, _, _, f := n.imds.stats(); f["user-data"] != 1 {
		t.Errorf("user-data fetched %d times over two boots, want 1", f["user-data"])
	}

	// StopInstances presses the ACPI power button.
	if err := v2vm.qmpCommand("system_powerdown"); err != nil {
		t.Fatalf("QMP system_powerdown: %v", err)
	}
	d = v2vm.waitPoweredOff(shutdownDeadline)
	t.Logf("power button to power off: %s", d.Round(time.Millisecond))
	if con := v2vm.consoleText(); !strings.Contains(con, "power button pressed") || !strings.Contains(con, "root volume remounted read-only") {
		t.Errorf("the power button did not shut down cleanly")
	}
}
