package netfab

import (
	"context"
	"fmt"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"
)

// TestAPIEndpointInVPC: a guest of the default VPC reaches the daemon's
// API (here a test server on the host's loopback) at
// 169.254.169.254:APIPort, with the request's Host header unchanged (SigV4
// signs it), and the proxy stops with the VPC's servers.
func TestAPIEndpointInVPC(t *testing.T) {
	requireNet(t)
	ctx := context.Background()
	var gotHost string
	api := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		gotHost = r.Host
		fmt.Fprint(w, "labcloud-api")
	}))
	t.Cleanup(api.Close)
	prefix := testPrefix(t)
	f, err := New(ctx, Options{Store: testStore(t), Zones: []string{"lab-1a"}, NamePrefix: prefix,
		Metadata: &fakeMetadata{}, APIAddr: strings.TrimPrefix(api.URL, "http://")})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = f.Teardown(context.Background()) })
	vpc, err := f.EnsureDefaultVPC(ctx, "123456789012")
	if err != nil {
		t.Fatal(err)
	}
	e, err := f.CreateENI(ctx, ENIRequest{AccountID: "123456789012", SubnetID: vpc.Subnets[0].ID, InstanceID: "i-0123456789abcdef0"})
	if err != nil {
		t.Fatal(err)
	}
	guest := attachTestGuest(t, f, e, 1)
	if _, err := udhcpc(t, guest); err != nil {
		t.Fatal(err)
	}
	url := fmt.Sprintf("http://%s:%d/", imdsAddr, APIPort)
	var out string
	eventually(t, 10*time.Second, "the API through the VPC endpoint", func() error {
		o, err := run(t, "ip", "netns", "exec", guest, "curl", "-sS", "-m", "3", "-H", "Host: ec2.lab-1.example", url)
		out = o
		if err != nil {
			return fmt.Errorf("%v: %s", err, o)
		}
		return nil
	})
	if out != "labcloud-api" || gotHost != "ec2.lab-1.example" {
		t.Fatalf("through the endpoint: body %q, Host %q", out, gotHost)
	}
	if err := f.Close(); err != nil {
		t.Fatal(err)
	}
	err = inNamespace(vpc.Namespace, func() error {
		c, err := net.DialTimeout("tcp4", fmt.Sprintf("%s:%d", imdsAddr, APIPort), time.Second)
		if err == nil {
			c.Close()
			return fmt.Errorf("still listening after Close")
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
}
