package netfab

import (
	"context"
	"encoding/json"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// fakeMetadata is a MetadataSource backed by a map keyed "vpc/ip".
type fakeMetadata struct {
	mu sync.Mutex
	m  map[string]Metadata
}

func (f *fakeMetadata) set(vpc, ip string, md Metadata) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.m == nil {
		f.m = map[string]Metadata{}
	}
	f.m[vpc+"/"+ip] = md
}

func (f *fakeMetadata) Lookup(_ context.Context, vpc, ip string) (Metadata, bool) {
	f.mu.Lock()
	defer f.mu.Unlock()
	md, ok := f.m[vpc+"/"+ip]
	return md, ok
}

func testMetadata(ip, mac string) Metadata {
	return Metadata{
		InstanceID: "i-0123456789abcdef0", ImageID: "ami-0123456789abcdef0", InstanceType: "t3.micro",
		AvailabilityZone: "lab-1a", Region: "lab-1", LocalIPv4: ip, MAC: mac,
		PublicKeyName: "mykey", PublicKey: "ssh-ed25519 AAAAC3Nza test@lab",
		SecurityGroups: []string{"default"}, UserData: []byte("#!/bin/sh\necho hi\n"),
		HTTPTokens: "optional", HTTPEndpoint: "enabled", HopLimit: 1,
		ReservationID: "r-0123456789abcdef0", AccountID: "123456789012",
	}
}

func newTestIMDS(src MetadataSource, now *time.Time) *imdsHandler {
	return &imdsHandler{
		vpcID: "vpc-1", src: src, key: []byte("k"), now: func() time.Time { return *now },
		eni: func(ip string) (eniInfo, bool) {
			return eniInfo{ENI: ENI{ID: "eni-1", SubnetID: "subnet-1", VPCID: "vpc-1"}, SubnetCIDR: "172.31.0.0/20", VPCCIDR: "172.31.0.0/16"}, ip == "172.31.0.4"
		},
	}
}

func do(t *testing.T, h http.Handler, method, path, from string, hdr map[string]string) (int, string) {
	t.Helper()
	r := httptest.NewRequest(method, path, nil)
	r.RemoteAddr = from + ":40000"
	for k, v := range hdr {
		r.Header.Set(k, v)
	}
	w := httptest.NewRecorder()
	h.ServeHTTP(w, r)
	b, _ := io.ReadAll(w.Result().Body)
	return w.Code, string(b)
}

func TestIMDSv1Paths(t *testing.T) {
	src := &fakeMetadata{}
	const ip, mac = "172.31.0.4", "02:11:22:33:44:55"
	src.set("vpc-1", ip, testMetadata(ip, mac))
	now := time.Unix(1e9, 0)
	h := newTestIMDS(src, &now)
	mp := "/latest/meta-data/network/interfaces/macs/" + mac + "/"
	tests := []struct {
		name, path string
		code       int
		body       string // exact, unless contains is set
		contains   bool
	}{
		{name: "instance-id", path: "/latest/meta-data/instance-id", code: 200, body: "i-0123456789abcdef0"},
		{name: "ami-id", path: "/latest/meta-data/ami-id", code: 200, body: "ami-0123456789abcdef0"},
		{name: "instance-type", path: "/latest/meta-data/instance-type", code: 200, body: "t3.micro"},
		{name: "local-ipv4", path: "/latest/meta-data/local-ipv4", code: 200, body: ip},
		{name: "local-hostname", path: "/latest/meta-data/local-hostname", code: 200, body: "ip-172-31-0-4.lab-1.compute.internal"},
		{name: "hostname", path: "/latest/meta-data/hostname", code: 200, body: "ip-172-31-0-4.lab-1.compute.internal"},
		{name: "mac", path: "/latest/meta-data/mac", code: 200, body: mac},
		{name: "az", path: "/latest/meta-data/placement/availability-zone", code: 200, body: "lab-1a"},
		{name: "region", path: "/latest/meta-data/placement/region", code: 200, body: "lab-1"},
		{name: "public-keys", path: "/latest/meta-data/public-keys/", code: 200, body: "0=mykey"},
		{name: "openssh-key", path: "/latest/meta-data/public-keys/0/openssh-key", code: 200, body: "ssh-ed25519 AAAAC3Nza test@lab\n"},
		{name: "security-groups", path: "/latest/meta-data/security-groups", code: 200, body: "default"},
		{name: "reservation-id", path: "/latest/meta-data/reservation-id", code: 200, body: "r-0123456789abcdef0"},
		{name: "listing", path: "/latest/meta-data/", code: 200, body: "ami-id\n", contains: true},
		{name: "dated version (cloud-init)", path: "/2021-03-23/meta-data/instance-id", code: 200, body: "i-0123456789abcdef0"},
		{name: "oldest version", path: "/2009-04-04/meta-data/public-keys/0/openssh-key", code: 200, body: "ssh-ed25519 AAAAC3Nza test@lab\n"},
		{name: "dated user-data", path: "/2016-09-02/user-data", code: 200, body: "#!/bin/sh\necho hi\n"},
		{name: "versions at root", path: "/", code: 200, body: "2021-03-23\n", contains: true},
		{name: "listing has dirs", path: "/latest/meta-data/", code: 200, body: "placement/\n", contains: true},
		{name: "macs listing", path: "/latest/meta-data/network/interfaces/macs/", code: 200, body: mac + "/"},
		{name: "device-number", path: mp + "device-number", code: 200, body: "0"},
		{name: "local-ipv4s", path: mp + "local-ipv4s", code: 200, body: ip},
		{name: "mac of mac", path: mp + "mac", code: 200, body: mac},
		{name: "subnet-id", path: mp + "subnet-id", code: 200, body: "subnet-1"},
		{name: "vpc-id", path: mp + "vpc-id", code: 200, body: "vpc-1"},
		{name: "interface-id", path: mp + "interface-id", code: 200, body: "eni-1"},
		{name: "subnet cidr", path: mp + "subnet-ipv4-cidr-block", code: 200, body: "172.31.0.0/20"},
		{name: "vpc cidr", path: mp + "vpc-ipv4-cidr-block", code: 200, body: "172.31.0.0/16"},
		{name: "user-data", path: "/latest/user-data", code: 200, body: "#!/bin/sh\necho hi\n"},
		{name: "identity document", path: "/latest/dynamic/instance-identity/document", code: 200, body: `"instanceId": "i-0123456789abcdef0"`, contains: true},
		{name: "missing leaf", path: "/latest/meta-data/nope", code: 404, body: "404", contains: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			code, body := do(t, h, "GET", tt.path, ip, nil)
			if code != tt.code {
				t.Fatalf("GET %s: %d %q, want %d", tt.path, code, body, tt.code)
			}
			if tt.contains && !strings.Contains(body, tt.body) || !tt.contains && body != tt.body {
				t.Errorf("GET %s: body %q, want %q", tt.path, body, tt.body)
			}
		})
	}

	t.Run("identity document is JSON", func(t *testing.T) {
		_, body := do(t, h, "GET", "/latest/dynamic/instance-identity/document", ip, nil)
		var doc map[string]any
		if err := json.Unmarshal([]byte(body), &doc); err != nil {
			t.Fatal(err)
		}
		for k, want := range map[string]string{"accountId": "123456789012", "region": "lab-1", "availabilityZone": "lab-1a", "privateIp": ip, "imageId": "ami-0123456789abcdef0", "instanceType": "t3.micro"} {
			if doc[k] != want {
				t.Errorf("%s = %v, want %s", k, doc[k], want)
			}
		}
	})
	t.Run("unknown caller", func(t *testing.T) {
		if code, _ := do(t, h, "GET", "/latest/meta-data/instance-id", "172.31.0.99", nil); code != 404 {
			t.Errorf("code %d, want 404", code)
		}
	})
	t.Run("no user-data", func(t *testing.T) {
		md := testMetadata("172.31.0.5", "02:00:00:00:00:05")
		md.UserData = nil
		src.set("vpc-1", "172.31.0.5", md)
		if code, _ := do(t, h, "GET", "/latest/user-data", "172.31.0.5", nil); code != 404 {
			t.Errorf("code %d, want 404", code)
		}
	})
}

func TestIMDSv2Tokens(t *testing.T) {
	src := &fakeMetadata{}
	const ip = "172.31.0.4"
	md := testMetadata(ip, "02:11:22:33:44:55")
	md.HTTPTokens = "required"
	src.set("vpc-1", ip, md)
	other := testMetadata("172.31.0.6", "02:11:22:33:44:66")
	src.set("vpc-1", "172.31.0.6", other)
	now := time.Unix(1e9, 0)
	h := newTestIMDS(src, &now)
	const path = "/latest/meta-data/instance-id"

	if code, _ := do(t, h, "GET", path, ip, nil); code != 401 {
		t.Errorf("required, no token: %d, want 401", code)
	}
	for _, ttl := range []string{"", "0", "21601", "x"} {
		if code, _ := do(t, h, "PUT", "/latest/api/token", ip, map[string]string{tokenTTLHeader: ttl}); code != 400 {
			t.Errorf("PUT with ttl %q: %d, want 400", ttl, code)
		}
	}
	if code, _ := do(t, h, "GET", "/latest/api/token", ip, nil); code != 405 {
		t.Errorf("GET token: %d, want 405", code)
	}
	if code, _ := do(t, h, "PUT", "/latest/api/token", ip, map[string]string{tokenTTLHeader: "60", "X-Forwarded-For": "1.2.3.4"}); code != 403 {
		t.Errorf("proxied PUT: %d, want 403", code)
	}
	code, tok := do(t, h, "PUT", "/latest/api/token", ip, map[string]string{tokenTTLHeader: "60"})
	if code != 200 || tok == "" {
		t.Fatalf("PUT token: %d %q", code, tok)
	}
	if code, body := do(t, h, "GET", path, ip, map[string]string{tokenHeader: tok}); code != 200 || body != md.InstanceID {
		t.Errorf("GET with token: %d %q", code, body)
	}
	if code, _ := do(t, h, "GET", path, ip, map[string]string{tokenHeader: tok + "x"}); code != 401 {
		t.Errorf("GET with bad token: %d, want 401", code)
	}
	// A token is bound to its caller: another instance cannot use it,
	// even where tokens are optional.
	if code, _ := do(t, h, "GET", path, "172.31.0.6", map[string]string{tokenHeader: tok}); code != 401 {
		t.Errorf("GET with someone else's token: %d, want 401", code)
	}
	if code, _ := do(t, h, "GET", path, "172.31.0.6", nil); code != 200 {
		t.Errorf("optional, no token: %d, want 200", code)
	}
	now = now.Add(61 * time.Second)
	if code, _ := do(t, h, "GET", path, ip, map[string]string{tokenHeader: tok}); code != 401 {
		t.Errorf("GET with expired token: %d, want 401", code)
	}

	md.HTTPEndpoint = "disabled"
	src.set("vpc-1", ip, md)
	if code, _ := do(t, h, "GET", path, ip, nil); code != 403 {
		t.Errorf("endpoint disabled: %d, want 403", code)
	}
	if code, _ := do(t, h, "PUT", "/latest/api/token", ip, map[string]string{tokenTTLHeader: "60"}); code != 403 {
		t.Errorf("endpoint disabled, PUT: %d, want 403", code)
	}
}

// TestIMDSHopLimit checks that a token response leaves with the instance's
// hop limit as its IP TTL and that later answers go back to the default.
func TestIMDSHopLimit(t *testing.T) {
	src := &fakeMetadata{}
	md := testMetadata("127.0.0.1", "02:11:22:33:44:55")
	md.HopLimit = 2
	src.set("vpc-1", "127.0.0.1", md)
	now := time.Now()
	h := newTestIMDS(src, &now)
	ttls := make(chan int, 4)
	wrapped := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		h.ServeHTTP(w, r)
		c := r.Context().Value(connKey{}).(syscall.Conn)
		raw, _ := c.SyscallConn()
		_ = raw.Control(func(fd uintptr) {
			v, err := unix.GetsockoptInt(int(fd), unix.IPPROTO_IP, unix.IP_TTL)
			if err != nil {
				v = -1
			}
			ttls <- v
		})
	})
	ln, err := net.Listen("tcp4", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := &http.Server{Handler: wrapped, ConnContext: withConn}
	go func() { _ = srv.Serve(ln) }()
	t.Cleanup(func() { _ = srv.Close() })

	c := &http.Client{Transport: &http.Transport{DisableKeepAlives: false}}
	req, _ := http.NewRequest("PUT", "http://"+ln.Addr().String()+"/latest/api/token", nil)
	req.Header.Set(tokenTTLHeader, "60")
	resp, err := c.Do(req)
	if err != nil || resp.StatusCode != 200 {
		t.Fatalf("PUT: %v %v", resp, err)
	}
	io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	if got := <-ttls; got != 2 {
		t.Errorf("TTL after token PUT = %d, want the hop limit 2", got)
	}
	resp, err = c.Get("http://" + ln.Addr().String() + "/latest/meta-data/instance-id")
	if err != nil || resp.StatusCode != 200 {
		t.Fatalf("GET: %v %v", resp, err)
	}
	io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	if got := <-ttls; got == 2 || got < 1 {
		t.Errorf("TTL after GET on the same connection = %d, want the system default", got)
	}
}

// TestIMDSPublicIPv4: public-ipv4 and public-hostname exist only for an
// instance with a public or Elastic IP, as on EC2.
func TestIMDSPublicIPv4(t *testing.T) {
	src := &fakeMetadata{}
	now := time.Now()
	h := newTestIMDS(src, &now)
	md := testMetadata("172.31.0.4", "02:00:00:00:00:04")
	src.set("vpc-1", "172.31.0.4", md)
	if code, _ := do(t, h, "GET", "/latest/meta-data/public-ipv4", "172.31.0.4", nil); code != 404 {
		t.Errorf("public-ipv4 without a public IP: %d, want 404", code)
	}
	if _, list := do(t, h, "GET", "/latest/meta-data/", "172.31.0.4", nil); strings.Contains(list, "public-ipv4") {
		t.Errorf("listing without a public IP names public-ipv4:\n%s", list)
	}
	md.PublicIPv4 = "203.0.113.10"
	src.set("vpc-1", "172.31.0.4", md)
	for path, want := range map[string]string{
		"/latest/meta-data/public-ipv4":                                            "203.0.113.10",
		"/latest/meta-data/public-hostname":                                        "ec2-203-0-113-10.lab-1.compute.amazonaws.com",
		"/latest/meta-data/network/interfaces/macs/02:00:00:00:00:04/public-ipv4s": "203.0.113.10",
	} {
		if code, body := do(t, h, "GET", path, "172.31.0.4", nil); code != 200 || body != want {
			t.Errorf("%s = %d %q, want %q", path, code, body, want)
		}
	}
}
