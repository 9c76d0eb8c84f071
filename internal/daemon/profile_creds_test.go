package daemon

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/credentials/ec2rolecreds"
	"github.com/aws/aws-sdk-go-v2/feature/ec2/imds"
	"github.com/aws/aws-sdk-go-v2/service/ec2"
	ec2types "github.com/aws/aws-sdk-go-v2/service/ec2/types"
	"github.com/aws/aws-sdk-go-v2/service/sts"
	"github.com/aws/smithy-go"

	"github.com/labcloud/labcloud/api"
	"github.com/labcloud/labcloud/hypervisor/fake"
	"github.com/labcloud/labcloud/iamd"
	"github.com/labcloud/labcloud/internal/errdefs"
	"github.com/labcloud/labcloud/internal/instances"
	"github.com/labcloud/labcloud/internal/store"
	"github.com/labcloud/labcloud/internal/store/embedded"
	"github.com/labcloud/labcloud/netfab"
)

// Fakes of the fabric, images and key pairs: instances get addresses in
// one default VPC, VMs run on the fake hypervisor.
type fakeNet struct {
	mu sync.Mutex
	n  int
}

const (
	testVPC = "vpc-0aaaaaaaaaaaaaaaa"
	testAMI = "ami-0123456789abcdef0"
)

func (f *fakeNet) EnsureDefaultVPC(context.Context, string) (instances.VPC, error) {
	return instances.VPC{ID: testVPC, Subnets: []instances.Subnet{
		{ID: "subnet-0aaaaaaaaaaaaaaaa", AvailabilityZone: "lab-1a", CIDR: "172.31.0.0/20", DefaultForAz: true}}}, nil
}

func (f *fakeNet) CreateENI(_ context.Context, _, subnet, _ string) (instances.ENI, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.n++
	return instances.ENI{ID: fmt.Sprintf("eni-%017x", f.n), MAC: fmt.Sprintf("02:00:00:00:00:%02x", f.n),
		PrivateIP: fmt.Sprintf("172.31.0.%d", 3+f.n), Tap: fmt.Sprintf("tap%d", f.n), SubnetID: subnet, VPCID: testVPC}, nil
}

func (f *fakeNet) DeleteENI(context.Context, string, string) error { return nil }

type fakeImages struct{ disk string }

func (f fakeImages) Get(_ context.Context, _, id string) (instances.Image, error) {
	if id != testAMI {
		return instances.Image{}, errdefs.NotFound("InvalidAMIID.NotFound", "The image id '[%s]' does not exist", id)
	}
	return instances.Image{ID: id, Architecture: "x86_64", RootDeviceName: "/dev/xvda", RootSizeGiB: 2, Disk: f.disk, Kernel: "/k"}, nil
}

type fakeKeys struct{}

func (fakeKeys) Get(_ context.Context, _, name string) (instances.KeyPair, error) {
	return instances.KeyPair{}, errdefs.NotFound("InvalidKeyPair.NotFound", "The key pair '%s' does not exist", name)
}

// testClock is the sessions' clock, moved forward to see rotation.
type testClock struct {
	mu  sync.Mutex
	off time.Duration
}

func (c *testClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return time.Now().Add(c.off)
}

func (c *testClock) advance(d time.Duration) {
	c.mu.Lock()
	c.off += d
	c.mu.Unlock()
}

// credsEnv is the chain an instance's SDK goes through: the metadata
// service (netfab handler over metadataAdapter, as labcloudd wires it),
// and the API with IAM authorization, over one etcd.
type credsEnv struct {
	st       *store.Store
	acct     string
	iam      *iamd.IAM
	sessions *iamd.Sessions
	svc      *instances.Service
	clock    *testClock
	apiURL   string
	root     *ec2.Client
}

func newCredsEnv(t *testing.T) *credsEnv {
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
	acct, admin, err := accounts.Bootstrap(ctx, "admin")
	if err != nil {
		t.Fatal(err)
	}
	iam := iamd.NewIAM(st, accounts)
	clk := &testClock{}
	sessions := iamd.NewSessions(st, clk.Now)
	dir := t.TempDir()
	base := filepath.Join(dir, "base.qcow2")
	if err := os.WriteFile(base, []byte("base"), 0o644); err != nil {
		t.Fatal(err)
	}
	svc, err := instances.New(instances.Options{Store: st, Driver: fake.New(filepath.Join(dir, "vms")), Network: &fakeNet{},
		Images: fakeImages{disk: base}, KeyPairs: fakeKeys{}, Region: "lab-1", StateDir: filepath.Join(dir, "state"),
		NodeVCPUs: 2, NodeMemoryMiB: 8192, ResyncInterval: 20 * time.Millisecond, Backoff: 5 * time.Millisecond,
		CreateOverlay: func(_ context.Context, _, path string, _ int) error { return os.WriteFile(path, nil, 0o644) }})
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan struct{})
	go func() { svc.RunController(ctx); close(done) }()
	t.Cleanup(func() { cancel(); <-done })
	hs := httptest.NewServer(api.New(api.Options{Accounts: accounts, IAM: iam, Sessions: sessions, Region: "lab-1", Instances: svc,
		Authorizer: &api.IAMAuthorizer{IAM: iam, Accounts: accounts, Now: clk.Now, Region: "lab-1", MessageKey: make([]byte, 32)}}))
	t.Cleanup(hs.Close)
	e := &credsEnv{st: st, acct: acct.ID, iam: iam, sessions: sessions, svc: svc, clock: clk, apiURL: hs.URL}
	e.root = ec2.New(ec2.Options{Region: "lab-1", BaseEndpoint: aws.String(hs.URL),
		Credentials: credentials.NewStaticCredentialsProvider(admin.AccessKeyID, admin.SecretAccessKey, "")})
	return e
}

// imdsFor serves the metadata service as labcloudd does (a fresh adapter
// and InstanceRoles, as after a restart) to the instance at ip: the
// fabric's anti-spoofing makes the source address trustworthy, which the
// test stands in for by setting RemoteAddr.
func (e *credsEnv) imdsFor(t *testing.T, ip string) string {
	t.Helper()
	md := &metadataAdapter{roles: iamd.NewInstanceRoles(e.iam, e.sessions)}
	md.set(e.svc, nil)
	h := netfab.NewMetadataHandler(testVPC, md, e.clock.Now)
	hs := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		r.RemoteAddr = ip + ":40000"
		h.ServeHTTP(w, r)
	}))
	t.Cleanup(hs.Close)
	return hs.URL
}

// launch runs an instance with the profile and waits for its address.
func (e *credsEnv) launch(t *testing.T, profile string) (id, ip string) {
	t.Helper()
	ctx := context.Background()
	out, err := e.root.RunInstances(ctx, &ec2.RunInstancesInput{ImageId: aws.String(testAMI), MinCount: aws.Int32(1), MaxCount: aws.Int32(1),
		IamInstanceProfile: &ec2types.IamInstanceProfileSpecification{Name: aws.String(profile)}})
	if err != nil {
		t.Fatal(err)
	}
	id = aws.ToString(out.Instances[0].InstanceId)
	deadline := time.Now().Add(10 * time.Second)
	for time.Now().Before(deadline) {
		d, err := e.root.DescribeInstances(ctx, &ec2.DescribeInstancesInput{InstanceIds: []string{id}})
		if err != nil {
			t.Fatal(err)
		}
		i := d.Reservations[0].Instances[0]
		if i.State.Name == ec2types.InstanceStateNameRunning && aws.ToString(i.PrivateIpAddress) != "" {
			return id, aws.ToString(i.PrivateIpAddress)
		}
		time.Sleep(20 * time.Millisecond)
	}
	t.Fatalf("%s did not get running with an address", id)
	return "", ""
}

// sdkCreds are the credentials aws-sdk-go-v2's EC2 role provider reads
// from the metadata service at url (IMDSv2, as the SDK does by default).
func sdkCreds(t *testing.T, url string) aws.Credentials {
	t.Helper()
	p := ec2rolecreds.New(func(o *ec2rolecreds.Options) { o.Client = imds.New(imds.Options{Endpoint: url}) })
	c, err := p.Retrieve(context.Background())
	if err != nil {
		t.Fatalf("ec2rolecreds: %v", err)
	}
	return c
}

func (e *credsEnv) clients(c aws.Credentials) (*sts.Client, *ec2.Client) {
	prov := credentials.NewStaticCredentialsProvider(c.AccessKeyID, c.SecretAccessKey, c.SessionToken)
	return sts.New(sts.Options{Region: "lab-1", BaseEndpoint: aws.String(e.apiURL), Credentials: prov}),
		ec2.New(ec2.Options{Region: "lab-1", BaseEndpoint: aws.String(e.apiURL), Credentials: prov})
}

func errCode(err error) string {
	var ae smithy.APIError
	if errors.As(err, &ae) {
		return ae.ErrorCode()
	}
	return ""
}

// expiresIn reads the Expiration of the served credentials document.
func expiresIn(t *testing.T, e *credsEnv, url string) time.Duration {
	t.Helper()
	_, role := httpGet(t, url+"/latest/meta-data/iam/security-credentials/")
	_, body := httpGet(t, url+"/latest/meta-data/iam/security-credentials/"+role)
	var doc struct{ Expiration time.Time }
	if err := json.Unmarshal([]byte(body), &doc); err != nil {
		t.Fatalf("credentials document %q: %v", body, err)
	}
	return doc.Expiration.Sub(e.clock.Now())
}

func httpGet(t *testing.T, url string) (int, string) {
	t.Helper()
	resp, err := http.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

// TestInstanceProfileCredentials follows the course's story: an instance
// whose role allows ec2:DescribeInstances reads its credentials from the
// metadata service with the real SDK provider and calls the API with them.
func TestInstanceProfileCredentials(t *testing.T) {
	e := newCredsEnv(t)
	ctx := context.Background()
	if _, err := e.iam.CreateRole(ctx, e.acct, iamd.CreateRoleInput{RoleName: "reader",
		AssumeRolePolicyDocument: `{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Principal":{"Service":"ec2.amazonaws.com"},"Action":"sts:AssumeRole"}]}`}); err != nil {
		t.Fatal(err)
	}
	if _, err := e.iam.CreateInstanceProfile(ctx, e.acct, "reader-profile", "", nil); err != nil {
		t.Fatal(err)
	}
	if err := e.iam.AddRoleToInstanceProfile(ctx, e.acct, "reader-profile", "reader"); err != nil {
		t.Fatal(err)
	}
	idA, ipA := e.launch(t, "reader-profile")
	idB, ipB := e.launch(t, "reader-profile")
	// DescribeInstances for the role; DescribeInstanceTypes only from
	// instance A, through the condition key the session carries.
	if err := e.iam.PutInlinePolicy(ctx, e.acct, iamd.RoleEntity("reader"), "read", fmt.Sprintf(`{"Version":"2012-10-17","Statement":[
		{"Effect":"Allow","Action":"ec2:DescribeInstances","Resource":"*"},
		{"Effect":"Allow","Action":"ec2:DescribeInstanceTypes","Resource":"*","Condition":{"StringLike":{"ec2:SourceInstanceARN":"arn:aws:ec2:*:*:instance/%s","aws:Ec2InstanceSourceVpc":"%s"}}}]}`, idA, testVPC)); err != nil {
		t.Fatal(err)
	}
	urlA, urlB := e.imdsFor(t, ipA), e.imdsFor(t, ipB)

	credsA := sdkCreds(t, urlA)
	if !strings.HasPrefix(credsA.AccessKeyID, "ASIA") || credsA.SessionToken == "" || !credsA.CanExpire {
		t.Fatalf("SDK credentials %+v", credsA)
	}
	// The SDK caps what it caches to an hour; the document says six.
	if left := expiresIn(t, e, urlA); left < 5*time.Hour+59*time.Minute || left > 6*time.Hour {
		t.Fatalf("served credentials expire in %v, want 6h", left)
	}
	stsA, ec2A := e.clients(credsA)
	who, err := stsA.GetCallerIdentity(ctx, &sts.GetCallerIdentityInput{})
	if err != nil {
		t.Fatal(err)
	}
	if want := "arn:aws:sts::" + e.acct + ":assumed-role/reader/" + idA; aws.ToString(who.Arn) != want {
		t.Fatalf("GetCallerIdentity = %s, want %s", aws.ToString(who.Arn), want)
	}
	if _, err := ec2A.DescribeInstances(ctx, &ec2.DescribeInstancesInput{}); err != nil {
		t.Fatalf("DescribeInstances with the role: %v", err)
	}
	if _, err := ec2A.TerminateInstances(ctx, &ec2.TerminateInstancesInput{InstanceIds: []string{idB}}); errCode(err) != "UnauthorizedOperation" {
		t.Fatalf("TerminateInstances with the role: %v, want UnauthorizedOperation", err)
	}
	if _, err := ec2A.DescribeInstanceTypes(ctx, &ec2.DescribeInstanceTypesInput{}); err != nil {
		t.Fatalf("DescribeInstanceTypes from instance A (ec2:SourceInstanceARN matches): %v", err)
	}

	// Instance B has the same role but its own session: it never sees A's
	// keys, and A's condition does not match it.
	credsB := sdkCreds(t, urlB)
	if credsB.AccessKeyID == credsA.AccessKeyID {
		t.Fatal("instance B was served instance A's credentials")
	}
	stsB, ec2B := e.clients(credsB)
	if who, err := stsB.GetCallerIdentity(ctx, &sts.GetCallerIdentityInput{}); err != nil || !strings.HasSuffix(aws.ToString(who.Arn), "/reader/"+idB) {
		t.Fatalf("B's identity %v %v", who, err)
	}
	if _, err := ec2B.DescribeInstanceTypes(ctx, &ec2.DescribeInstanceTypesInput{}); errCode(err) != "UnauthorizedOperation" {
		t.Fatalf("DescribeInstanceTypes from instance B: %v, want UnauthorizedOperation", err)
	}

	// A "restarted daemon" (fresh adapter and InstanceRoles) serves the
	// same credentials until they rotate.
	if again := sdkCreds(t, e.imdsFor(t, ipA)); again.AccessKeyID != credsA.AccessKeyID {
		t.Fatalf("after a restart: %s, want the same %s", again.AccessKeyID, credsA.AccessKeyID)
	}

	// Five hours on, fewer than the refresh margin is left: new keys; the
	// old ones keep working until they expire.
	e.clock.advance(5*time.Hour + time.Minute)
	rotated := sdkCreds(t, urlA)
	if rotated.AccessKeyID == credsA.AccessKeyID {
		t.Fatalf("not rotated: %+v", rotated)
	}
	if left := expiresIn(t, e, urlA); left < 5*time.Hour+59*time.Minute {
		t.Fatalf("rotated credentials expire in %v, want 6h", left)
	}
	_, ec2Rot := e.clients(rotated)
	if _, err := ec2Rot.DescribeInstances(ctx, &ec2.DescribeInstancesInput{}); err != nil {
		t.Fatalf("rotated credentials: %v", err)
	}
	if _, err := ec2A.DescribeInstances(ctx, &ec2.DescribeInstancesInput{}); err != nil {
		t.Fatalf("old credentials before their expiry: %v", err)
	}
	e.clock.advance(time.Hour)
	if _, err := ec2A.DescribeInstances(ctx, &ec2.DescribeInstancesInput{}); errCode(err) != "RequestExpired" {
		t.Fatalf("old credentials after their expiry: %v, want RequestExpired", err)
	}
	if _, err := ec2Rot.DescribeInstances(ctx, &ec2.DescribeInstancesInput{}); err != nil {
		t.Fatalf("rotated credentials an hour later: %v", err)
	}

	// Disassociation: the metadata service stops serving; keys already
	// fetched stay valid, as on AWS.
	as, err := e.root.DescribeIamInstanceProfileAssociations(ctx, &ec2.DescribeIamInstanceProfileAssociationsInput{
		Filters: []ec2types.Filter{{Name: aws.String("instance-id"), Values: []string{idA}}}})
	if err != nil || len(as.IamInstanceProfileAssociations) != 1 {
		t.Fatalf("associations of A: %+v %v", as, err)
	}
	if _, err := e.root.DisassociateIamInstanceProfile(ctx, &ec2.DisassociateIamInstanceProfileInput{
		AssociationId: as.IamInstanceProfileAssociations[0].AssociationId}); err != nil {
		t.Fatal(err)
	}
	if code, body := httpGet(t, urlA+"/latest/meta-data/iam/security-credentials/"); code != 404 {
		t.Fatalf("after disassociation security-credentials/: %d %q", code, body)
	}
	if _, body := httpGet(t, urlA+"/latest/meta-data/"); strings.Contains(body, "iam/") {
		t.Fatalf("after disassociation the listing shows iam/: %q", body)
	}
	if _, err := ec2Rot.DescribeInstances(ctx, &ec2.DescribeInstancesInput{}); err != nil {
		t.Fatalf("fetched credentials after disassociation: %v (AWS leaves them valid)", err)
	}

	// A trust policy that stops trusting EC2: EC2's error document, no keys.
	if err := e.iam.UpdateAssumeRolePolicy(ctx, e.acct, "reader",
		`{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Principal":{"Service":"lambda.amazonaws.com"},"Action":"sts:AssumeRole"}]}`); err != nil {
		t.Fatal(err)
	}
	code, body := httpGet(t, urlB+"/latest/meta-data/iam/security-credentials/reader")
	var doc map[string]string
	if err := json.Unmarshal([]byte(body), &doc); code != 200 || err != nil || doc["Code"] != "AssumeRoleUnauthorizedAccess" || doc["AccessKeyId"] != "" {
		t.Fatalf("untrusting role: %d %q", code, body)
	}
	p := ec2rolecreds.New(func(o *ec2rolecreds.Options) { o.Client = imds.New(imds.Options{Endpoint: urlB}) })
	if _, err := p.Retrieve(ctx); err == nil || !strings.Contains(err.Error(), "AssumeRoleUnauthorizedAccess") {
		t.Fatalf("SDK with an untrusting role: %v", err)
	}
}
