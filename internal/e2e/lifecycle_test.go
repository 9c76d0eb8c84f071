package e2e

import (
	"context"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"

	"github.com/aws/aws-sdk-go-v2/service/sts"
)

func accountOf(t *testing.T, d *daemon) string {
	t.Helper()
	id, err := sts.NewFromConfig(sdkConfig(t, d)).GetCallerIdentity(context.Background(), &sts.GetCallerIdentityInput{})
	if err != nil {
		t.Fatal(err)
	}
	return *id.Account
}

// A restart reuses the account, keys and etcd data.
func TestRestartKeepsState(t *testing.T) {
	dir := t.TempDir()
	d := startDaemon(t, dir)
	id1, secret1 := d.creds()
	acct1 := accountOf(t, d)
	d.stop()

	d2 := startDaemon(t, dir)
	id2, secret2 := d2.creds()
	if id1 != id2 || secret1 != secret2 {
		t.Fatalf("keys changed across restart: %s → %s", id1, id2)
	}
	if acct2 := accountOf(t, d2); acct2 != acct1 {
		t.Fatalf("account changed across restart: %s → %s", acct1, acct2)
	}
	st, err := os.Stat(d2.credsFile())
	if err != nil {
		t.Fatal(err)
	}
	if st.Mode().Perm() != 0o600 {
		t.Fatalf("admin-credentials mode %o, want 600", st.Mode().Perm())
	}
	if !strings.Contains(d2.log(), "embedded etcd started") {
		t.Fatalf("log does not say embedded etcd started:\n%s", d2.log())
	}
}

// Two daemons with different state dirs run side by side.
func TestTwoDaemonsSideBySide(t *testing.T) {
	a := startDaemon(t, "")
	b := startDaemon(t, "")
	if a.Endpoint == b.Endpoint {
		t.Fatalf("both daemons on %s", a.Endpoint)
	}
	accA, accB := accountOf(t, a), accountOf(t, b)
	if accA == accB {
		t.Fatalf("both daemons made account %s", accA)
	}
	// Keys of one install mean nothing to the other.
	idA, secretA := a.creds()
	status, body := b.send(t, rawReq{service: "ec2", body: describeRegions, keyID: idA, secret: secretA})
	if e := parseErr(t, body); status != 401 || e.Code != "AuthFailure" {
		t.Fatalf("A's key on B: %d %s", status, body)
	}
}

// labcloudd against a real external etcd (Debian's etcd-server).
func TestExternalEtcd(t *testing.T) {
	etcdBin := lookTool(t, "etcd")
	dir := t.TempDir()
	client, peer := freePort(t), freePort(t)
	cmd := exec.Command(etcdBin, "--name", "e2e", "--data-dir", filepath.Join(dir, "data"),
		"--listen-client-urls", "http://127.0.0.1:"+client, "--advertise-client-urls", "http://127.0.0.1:"+client,
		"--listen-peer-urls", "http://127.0.0.1:"+peer, "--initial-advertise-peer-urls", "http://127.0.0.1:"+peer,
		"--initial-cluster", "e2e=http://127.0.0.1:"+peer)
	logf, _ := os.Create(filepath.Join(dir, "etcd.log"))
	cmd.Stdout, cmd.Stderr = logf, logf
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = cmd.Process.Kill(); _ = cmd.Wait(); logf.Close() })

	stateDir := t.TempDir()
	d := startDaemon(t, stateDir, "--etcd-endpoints", "http://127.0.0.1:"+client)
	acct := accountOf(t, d)
	if !strings.Contains(d.log(), "using external etcd") {
		t.Fatalf("daemon did not use the external etcd:\n%s", d.log())
	}
	if _, err := os.Stat(filepath.Join(stateDir, "etcd")); err == nil {
		t.Fatalf("an embedded etcd data dir was created despite --etcd-endpoints")
	}
	d.stop()
	// A second daemon on the same cluster (new state dir) finds the same
	// account: the state is in etcd, not in the state dir.
	d2 := startDaemon(t, "", "--etcd-endpoints", "http://127.0.0.1:"+client)
	if got := accountOf(t, d2); got != acct {
		t.Fatalf("second daemon on the same etcd sees account %s, want %s", got, acct)
	}
}

func freePort(t *testing.T) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return fmt.Sprint(l.Addr().(*net.TCPAddr).Port)
}
