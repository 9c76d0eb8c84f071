// Package e2e drives real labcloudd processes with the real aws CLI, boto3,
// aws-sdk-go-v2 and the labcloud CLI. Nothing here is mocked: each test
// starts its own daemon (embedded etcd, loopback port chosen by the kernel)
// in its own state dir.
package e2e

import (
	"bufio"
	"context"
	"fmt"
	"hash/fnv"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"
)

var binDir string

func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "labcloud-e2e-bin-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	binDir = dir
	for _, cmd := range []string{"labcloudd", "labcloud"} {
		b := exec.Command("go", "build", "-o", filepath.Join(dir, cmd), "github.com/labcloud/labcloud/cmd/"+cmd)
		b.Stdout, b.Stderr = os.Stdout, os.Stderr
		if err := b.Run(); err != nil {
			fmt.Fprintf(os.Stderr, "building %s: %v\n", cmd, err)
			os.Exit(1)
		}
	}
	code := m.Run()
	os.RemoveAll(dir)
	os.Exit(code)
}

// daemon is a running labcloudd.
type daemon struct {
	t        testing.TB
	stateDir string
	cmd      *exec.Cmd
	Endpoint string
	logPath  string
	exited   chan struct{}
}

// credsFile is the admin-credentials path of the daemon.
func (d *daemon) credsFile() string { return filepath.Join(d.stateDir, "admin-credentials") }

// creds returns the access key id and secret from admin-credentials.
func (d *daemon) creds() (id, secret string) {
	f, err := os.Open(d.credsFile())
	if err != nil {
		d.t.Fatal(err)
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		k, v, ok := strings.Cut(sc.Text(), "=")
		if !ok {
			continue
		}
		switch strings.TrimSpace(k) {
		case "aws_access_key_id":
			id = strings.TrimSpace(v)
		case "aws_secret_access_key":
			secret = strings.TrimSpace(v)
		}
	}
	if id == "" || secret == "" {
		d.t.Fatalf("no keys in %s", d.credsFile())
	}
	return id, secret
}

// startDaemon runs labcloudd serve on a free loopback port with stateDir
// and waits until /healthz answers. extra flags are appended.
func startDaemon(t testing.TB, stateDir string, extra ...string) *daemon {
	t.Helper()
	if stateDir == "" {
		stateDir = t.TempDir()
	}
	os.Remove(filepath.Join(stateDir, "endpoint"))
	logPath := filepath.Join(stateDir, "labcloudd.log")
	logf, err := os.OpenFile(logPath, os.O_CREATE|os.O_APPEND|os.O_WRONLY, 0o644)
	if err != nil {
		t.Fatal(err)
	}
	args := append([]string{"serve", "--state-dir", stateDir, "--listen", "127.0.0.1:0", "--log-level", "debug"}, extra...)
	if !strings.Contains(strings.Join(extra, " "), "--net-prefix") {
		// Each daemon removes prefixed network objects no record of its
		// own owns: daemons of different tests must not share a prefix.
		args = append(args, "--net-prefix", netPrefix(stateDir))
	}
	if !strings.Contains(strings.Join(extra, " "), "--public-cidr") {
		// The daemon's public bridge holds the pool's first address in
		// the host namespace: keep e2e daemons off the pools of the
		// netfab tests that may run at the same time (203.0.113.128/25),
		// and off each other's (a /27 of 203.0.113.0/25 by prefix).
		args = append(args, "--public-cidr", publicCIDR(stateDir))
	}
	cmd := exec.Command(filepath.Join(binDir, "labcloudd"), args...)
	cmd.Stdout, cmd.Stderr = logf, logf
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	logf.Close()
	d := &daemon{t: t, stateDir: stateDir, cmd: cmd, logPath: logPath, exited: make(chan struct{})}
	go func() { cmd.Wait(); close(d.exited) }()
	// Registered before d.stop, so it runs after it: the public bridge
	// and gateway veths the daemon left in the host namespace go.
	prefix := netPrefix(stateDir)
	if i := strings.Index(strings.Join(extra, " "), "--net-prefix "); i >= 0 {
		prefix = strings.Fields(strings.Join(extra, " ")[i+len("--net-prefix "):])[0]
	}
	t.Cleanup(func() { removeHostLinks(t, prefix) })
	t.Cleanup(d.stop)

	deadline := time.Now().Add(90 * time.Second)
	for {
		select {
		case <-d.exited:
			t.Fatalf("labcloudd exited early:\n%s", d.log())
		default:
		}
		if data, err := os.ReadFile(filepath.Join(stateDir, "endpoint")); err == nil {
			ep := strings.TrimSpace(string(data))
			if resp, err := http.Get(ep + "/healthz"); err == nil {
				resp.Body.Close()
				if resp.StatusCode == 200 {
					d.Endpoint = ep
					return d
				}
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("labcloudd not healthy after 90s:\n%s", d.log())
		}
		time.Sleep(50 * time.Millisecond)
	}
}

func (d *daemon) log() string {
	b, _ := os.ReadFile(d.logPath)
	return string(b)
}

// netPrefix derives a short network name prefix from the state dir, so a
// restarted daemon on the same state dir keeps its prefix.
func netPrefix(stateDir string) string {
	h := fnv.New32a()
	h.Write([]byte(stateDir))
	return fmt.Sprintf("e%04x", h.Sum32()&0xffff)
}

// publicCIDR is the daemon's public pool: one of the four /27s of
// 203.0.113.0/25, by state dir (21 addresses each, base+10 up).
func publicCIDR(stateDir string) string {
	h := fnv.New32a()
	h.Write([]byte(stateDir))
	return fmt.Sprintf("203.0.113.%d/27", 32*(h.Sum32()%4))
}

// stop sends SIGTERM and waits for a clean exit (SIGKILL after 20 s).
func (d *daemon) stop() {
	select {
	case <-d.exited:
		return
	default:
	}
	_ = d.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-d.exited:
	case <-time.After(20 * time.Second):
		_ = syscall.Kill(-d.cmd.Process.Pid, syscall.SIGKILL)
		<-d.exited
		d.t.Errorf("labcloudd did not stop on SIGTERM within 20s")
	}
}

// run runs a command with env additions and returns stdout, stderr and
// the exit code.
func run(t *testing.T, env []string, name string, args ...string) (string, string, int) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, name, args...)
	cmd.Env = append(os.Environ(), env...)
	var out, errb strings.Builder
	cmd.Stdout, cmd.Stderr = &out, &errb
	err := cmd.Run()
	code := 0
	if err != nil {
		ee, ok := err.(*exec.ExitError)
		if !ok {
			t.Fatalf("running %s: %v", name, err)
		}
		code = ee.ExitCode()
	}
	return out.String(), errb.String(), code
}

// lookTool finds a client tool; CI installs them (make deps), so a missing
// one fails the test instead of skipping it.
func lookTool(t testing.TB, name string) string {
	t.Helper()
	for _, p := range []string{name, "/root/.pyenv/shims/" + name, "/usr/bin/" + name} {
		if path, err := exec.LookPath(p); err == nil {
			return path
		}
	}
	t.Fatalf("%s not found: run `make deps` (it installs the aws CLI, boto3 and etcd)", name)
	return ""
}

func init() {
	// The aws CLI and boto3 must never reach a real AWS endpoint or the
	// instance metadata service of the host.
	os.Setenv("AWS_EC2_METADATA_DISABLED", "true")
	os.Unsetenv("AWS_PROFILE")
	os.Unsetenv("AWS_ACCESS_KEY_ID")
	os.Unsetenv("AWS_SECRET_ACCESS_KEY")
	os.Unsetenv("AWS_SESSION_TOKEN")
}
