package api

import (
	"context"
	"encoding/json"
	"net/http/httptest"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/service/ec2"
	ec2types "github.com/aws/aws-sdk-go-v2/service/ec2/types"

	"github.com/labcloud/labcloud/hypervisor/fake"
	"github.com/labcloud/labcloud/iamd"
	"github.com/labcloud/labcloud/internal/instances"
	"github.com/labcloud/labcloud/internal/store"
	"github.com/labcloud/labcloud/internal/store/embedded"
)

// profileEnv is an API server with IAM authorization, instances over the
// fake hypervisor, and one account whose root made role "app" (trusting
// EC2) in profile "app-profile", and role "lambda-only" (not trusting
// EC2) in profile "wrong-trust".
type profileEnv struct {
	url     string
	acct    string
	iam     *iamd.IAM
	authz   *IAMAuthorizer
	root    *ec2.Client
	profile iamd.InstanceProfile
}

const (
	testAMI      = "ami-0123456789abcdef0"
	ec2TrustDoc  = `{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Principal":{"Service":"ec2.amazonaws.com"},"Action":"sts:AssumeRole"}]}`
	lambdaTrust  = `{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Principal":{"Service":"lambda.amazonaws.com"},"Action":"sts:AssumeRole"}]}`
	authzKeyTest = "0123456789abcdef0123456789abcdef"
)

func newProfileEnv(t *testing.T) *profileEnv {
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
	i := iamd.NewIAM(st, accounts)
	dir := t.TempDir()
	base := filepath.Join(dir, "base.qcow2")
	os.WriteFile(base, []byte("base"), 0o644)
	svc, err := instances.New(instances.Options{Store: st, Driver: fake.New(filepath.Join(dir, "vms")), Network: &instNet{},
		Images: instImages{disk: base}, KeyPairs: instKeys{}, Region: "lab-1", StateDir: filepath.Join(dir, "state"),
		NodeVCPUs: 2, NodeMemoryMiB: 8192, ResyncInterval: 20 * time.Millisecond, Backoff: 5 * time.Millisecond,
		CreateOverlay: func(_ context.Context, _, path string, _ int) error { return os.WriteFile(path, nil, 0o644) }})
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan struct{})
	go func() { svc.RunController(ctx); close(done) }()
	t.Cleanup(func() { cancel(); <-done })
	authz := &IAMAuthorizer{IAM: i, Accounts: accounts, Region: "lab-1", MessageKey: []byte(authzKeyTest)}
	hs := httptest.NewServer(New(Options{Accounts: accounts, IAM: i, Sessions: iamd.NewSessions(st, nil), Region: "lab-1",
		Instances: svc, Authorizer: authz}))
	t.Cleanup(hs.Close)

	for _, r := range []struct{ role, trust, profile string }{{"app", ec2TrustDoc, "app-profile"}, {"lambda-only", lambdaTrust, "wrong-trust"}} {
		if _, err := i.CreateRole(ctx, acct.ID, iamd.CreateRoleInput{RoleName: r.role, AssumeRolePolicyDocument: r.trust}); err != nil {
			t.Fatal(err)
		}
		if _, err := i.CreateInstanceProfile(ctx, acct.ID, r.profile, "", nil); err != nil {
			t.Fatal(err)
		}
		if err := i.AddRoleToInstanceProfile(ctx, acct.ID, r.profile, r.role); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := i.CreateInstanceProfile(ctx, acct.ID, "empty-profile", "", nil); err != nil {
		t.Fatal(err)
	}
	prof, err := i.GetInstanceProfile(ctx, acct.ID, "app-profile")
	if err != nil {
		t.Fatal(err)
	}
	e := &profileEnv{url: hs.URL, acct: acct.ID, iam: i, authz: authz, profile: prof}
	e.root = e.client(admin.AccessKeyID, admin.SecretAccessKey, "")
	return e
}

func (e *profileEnv) client(id, secret, token string) *ec2.Client {
	return ec2.New(ec2.Options{Region: "lab-1", BaseEndpoint: aws.String(e.url),
		Credentials: credentials.NewStaticCredentialsProvider(id, secret, token)})
}

// user makes an IAM user with one inline policy and returns its client.
func (e *profileEnv) user(t *testing.T, name, policy string) *ec2.Client {
	t.Helper()
	ctx := context.Background()
	if _, err := e.iam.CreateUser(ctx, e.acct, iamd.CreateUserInput{UserName: name}); err != nil {
		t.Fatal(err)
	}
	if err := e.iam.PutInlinePolicy(ctx, e.acct, iamd.UserEntity(name), "p", policy); err != nil {
		t.Fatal(err)
	}
	k, err := e.iam.CreateAccessKey(ctx, e.acct, name)
	if err != nil {
		t.Fatal(err)
	}
	return e.client(k.AccessKeyID, k.SecretAccessKey, "")
}

func runWithProfile(c *ec2.Client, spec *ec2types.IamInstanceProfileSpecification) (*ec2.RunInstancesOutput, error) {
	return c.RunInstances(context.Background(), &ec2.RunInstancesInput{ImageId: aws.String(testAMI), MinCount: aws.Int32(1), MaxCount: aws.Int32(1),
		IamInstanceProfile: spec})
}

var encodedRe = regexp.MustCompile(`Encoded authorization failure message: (\S+)`)

func TestRunInstancesPassRole(t *testing.T) {
	e := newProfileEnv(t)
	ec2Only := e.user(t, "dev", `{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Action":"ec2:*","Resource":"*"}]}`)

	// Without iam:PassRole the launch is refused, as EC2 refuses it.
	_, err := runWithProfile(ec2Only, &ec2types.IamInstanceProfileSpecification{Name: aws.String("app-profile")})
	if apiCode(err) != "UnauthorizedOperation" {
		t.Fatalf("RunInstances without iam:PassRole: %v, want UnauthorizedOperation", err)
	}
	roleARN := "arn:aws:iam::" + e.acct + ":role/app"
	if !strings.Contains(err.Error(), "is not authorized to perform: iam:PassRole on resource: "+roleARN) {
		t.Errorf("denial does not name iam:PassRole on the role: %v", err)
	}
	m := encodedRe.FindStringSubmatch(err.Error())
	if m == nil {
		t.Fatalf("no encoded message in %v", err)
	}
	plain, err := e.authz.DecodeMessage(m[1])
	if err != nil {
		t.Fatal(err)
	}
	var msg authzMessage
	if err := json.Unmarshal([]byte(plain), &msg); err != nil {
		t.Fatal(err)
	}
	if msg.Context.Action != "iam:PassRole" || msg.Context.Resource != roleARN || msg.Allowed {
		t.Errorf("decoded message %s", plain)
	}
	if !strings.Contains(plain, `"iam:PassedToService"`) || !strings.Contains(plain, "ec2.amazonaws.com") {
		t.Errorf("decoded message lacks iam:PassedToService: %s", plain)
	}
	// Nothing was launched.
	out, err := e.root.DescribeInstances(context.Background(), &ec2.DescribeInstancesInput{})
	if err != nil || len(out.Reservations) != 0 {
		t.Fatalf("a refused launch left instances: %v %v", out, err)
	}
	// Without a profile the same user launches fine.
	if _, err := runWithProfile(ec2Only, nil); err != nil {
		t.Fatalf("RunInstances without a profile: %v", err)
	}

	// PassRole for another service only does not do.
	otherSvc := e.user(t, "dev2", `{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Action":"ec2:*","Resource":"*"},
		{"Effect":"Allow","Action":"iam:PassRole","Resource":"*","Condition":{"StringEquals":{"iam:PassedToService":"lambda.amazonaws.com"}}}]}`)
	if _, err := runWithProfile(otherSvc, &ec2types.IamInstanceProfileSpecification{Name: aws.String("app-profile")}); apiCode(err) != "UnauthorizedOperation" {
		t.Fatalf("PassRole for lambda only: %v, want UnauthorizedOperation", err)
	}

	// PassRole on the role, for EC2: allowed, by name or by ARN.
	passer := e.user(t, "ops", `{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Action":"ec2:*","Resource":"*"},
		{"Effect":"Allow","Action":"iam:PassRole","Resource":"arn:aws:iam::*:role/app","Condition":{"StringEquals":{"iam:PassedToService":"ec2.amazonaws.com"}}}]}`)
	run, err := runWithProfile(passer, &ec2types.IamInstanceProfileSpecification{Arn: aws.String(e.profile.ARN)})
	if err != nil {
		t.Fatalf("RunInstances with iam:PassRole: %v", err)
	}
	got := run.Instances[0].IamInstanceProfile
	if got == nil || aws.ToString(got.Arn) != e.profile.ARN || aws.ToString(got.Id) != e.profile.InstanceProfileID {
		t.Fatalf("RunInstances reply IamInstanceProfile = %+v", got)
	}
	// ... but not a role the policy does not name.
	if _, err := runWithProfile(passer, &ec2types.IamInstanceProfileSpecification{Name: aws.String("wrong-trust")}); apiCode(err) != "UnauthorizedOperation" {
		t.Fatalf("passing an unnamed role: %v, want UnauthorizedOperation", err)
	}
}

func TestRunInstancesProfileValidation(t *testing.T) {
	e := newProfileEnv(t)
	for _, tc := range []struct {
		name string
		spec ec2types.IamInstanceProfileSpecification
		msg  string
	}{
		{"unknown name", ec2types.IamInstanceProfileSpecification{Name: aws.String("nope")},
			"Value (nope) for parameter iamInstanceProfile.name is invalid. Invalid IAM Instance Profile name"},
		{"unknown arn", ec2types.IamInstanceProfileSpecification{Arn: aws.String("arn:aws:iam::" + e.acct + ":instance-profile/nope")},
			"for parameter iamInstanceProfile.arn is invalid. Invalid IAM Instance Profile ARN"},
		{"other account", ec2types.IamInstanceProfileSpecification{Arn: aws.String("arn:aws:iam::999999999999:instance-profile/app-profile")},
			"Invalid IAM Instance Profile ARN"},
		{"wrong path", ec2types.IamInstanceProfileSpecification{Arn: aws.String("arn:aws:iam::" + e.acct + ":instance-profile/x/app-profile")},
			"Invalid IAM Instance Profile ARN"},
		{"trust without ec2", ec2types.IamInstanceProfileSpecification{Name: aws.String("wrong-trust")},
			"its trust policy must allow the service principal ec2.amazonaws.com"},
		{"empty profile", ec2types.IamInstanceProfileSpecification{Name: aws.String("empty-profile")},
			"holds no role"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			spec := tc.spec
			_, err := runWithProfile(e.root, &spec)
			if apiCode(err) != "InvalidParameterValue" || !strings.Contains(err.Error(), tc.msg) {
				t.Fatalf("got %v, want InvalidParameterValue with %q", err, tc.msg)
			}
		})
	}
}

func TestIamInstanceProfileAssociations(t *testing.T) {
	e := newProfileEnv(t)
	ctx := context.Background()
	c := e.root
	run, err := runWithProfile(c, &ec2types.IamInstanceProfileSpecification{Name: aws.String("app-profile")})
	if err != nil {
		t.Fatal(err)
	}
	id := aws.ToString(run.Instances[0].InstanceId)
	bare, err := runWithProfile(c, nil)
	if err != nil {
		t.Fatal(err)
	}
	bareID := aws.ToString(bare.Instances[0].InstanceId)

	desc, err := c.DescribeInstances(ctx, &ec2.DescribeInstancesInput{InstanceIds: []string{id}})
	if err != nil {
		t.Fatal(err)
	}
	if p := desc.Reservations[0].Instances[0].IamInstanceProfile; p == nil || aws.ToString(p.Arn) != e.profile.ARN {
		t.Fatalf("DescribeInstances IamInstanceProfile = %+v", p)
	}
	byProfile, err := c.DescribeInstances(ctx, &ec2.DescribeInstancesInput{Filters: []ec2types.Filter{{Name: aws.String("iam-instance-profile.arn"), Values: []string{e.profile.ARN}}}})
	if err != nil || len(byProfile.Reservations) != 1 {
		t.Fatalf("filter iam-instance-profile.arn: %v %v", byProfile, err)
	}

	list, err := c.DescribeIamInstanceProfileAssociations(ctx, &ec2.DescribeIamInstanceProfileAssociationsInput{})
	if err != nil {
		t.Fatal(err)
	}
	if len(list.IamInstanceProfileAssociations) != 1 {
		t.Fatalf("associations %+v", list.IamInstanceProfileAssociations)
	}
	a := list.IamInstanceProfileAssociations[0]
	first := aws.ToString(a.AssociationId)
	if !regexp.MustCompile(`^iip-assoc-[0-9a-f]{17}$`).MatchString(first) || aws.ToString(a.InstanceId) != id ||
		a.State != ec2types.IamInstanceProfileAssociationStateAssociated || aws.ToString(a.IamInstanceProfile.Arn) != e.profile.ARN || a.Timestamp == nil {
		t.Fatalf("association %+v", a)
	}

	// One association per instance.
	_, err = c.AssociateIamInstanceProfile(ctx, &ec2.AssociateIamInstanceProfileInput{InstanceId: aws.String(id),
		IamInstanceProfile: &ec2types.IamInstanceProfileSpecification{Name: aws.String("app-profile")}})
	if apiCode(err) != "IncorrectState" {
		t.Fatalf("second association: %v, want IncorrectState", err)
	}
	// Associate the bare one; filters instance-id and state.
	as, err := c.AssociateIamInstanceProfile(ctx, &ec2.AssociateIamInstanceProfileInput{InstanceId: aws.String(bareID),
		IamInstanceProfile: &ec2types.IamInstanceProfileSpecification{Arn: aws.String(e.profile.ARN)}})
	if err != nil {
		t.Fatal(err)
	}
	if as.IamInstanceProfileAssociation.State != ec2types.IamInstanceProfileAssociationStateAssociated {
		t.Errorf("associate state %s", as.IamInstanceProfileAssociation.State)
	}
	f, err := c.DescribeIamInstanceProfileAssociations(ctx, &ec2.DescribeIamInstanceProfileAssociationsInput{Filters: []ec2types.Filter{
		{Name: aws.String("instance-id"), Values: []string{bareID}}, {Name: aws.String("state"), Values: []string{"associated"}}}})
	if err != nil || len(f.IamInstanceProfileAssociations) != 1 || aws.ToString(f.IamInstanceProfileAssociations[0].InstanceId) != bareID {
		t.Fatalf("filtered associations: %+v %v", f, err)
	}

	// Replace gives a new association id; the old one is gone.
	rep, err := c.ReplaceIamInstanceProfileAssociation(ctx, &ec2.ReplaceIamInstanceProfileAssociationInput{AssociationId: aws.String(first),
		IamInstanceProfile: &ec2types.IamInstanceProfileSpecification{Name: aws.String("app-profile")}})
	if err != nil {
		t.Fatal(err)
	}
	second := aws.ToString(rep.IamInstanceProfileAssociation.AssociationId)
	if second == first || aws.ToString(rep.IamInstanceProfileAssociation.InstanceId) != id {
		t.Fatalf("replace: %+v", rep.IamInstanceProfileAssociation)
	}
	if _, err := c.DisassociateIamInstanceProfile(ctx, &ec2.DisassociateIamInstanceProfileInput{AssociationId: aws.String(first)}); apiCode(err) != "InvalidAssociationID.NotFound" {
		t.Fatalf("disassociate a replaced association: %v", err)
	}
	if _, err := c.DisassociateIamInstanceProfile(ctx, &ec2.DisassociateIamInstanceProfileInput{AssociationId: aws.String("bogus")}); apiCode(err) != "InvalidAssociationID.Malformed" {
		t.Fatalf("malformed association id: %v", err)
	}
	// Replacing with a role that does not trust EC2 is refused.
	if _, err := c.ReplaceIamInstanceProfileAssociation(ctx, &ec2.ReplaceIamInstanceProfileAssociationInput{AssociationId: aws.String(second),
		IamInstanceProfile: &ec2types.IamInstanceProfileSpecification{Name: aws.String("wrong-trust")}}); apiCode(err) != "InvalidParameterValue" {
		t.Fatalf("replace with untrusting role: %v", err)
	}

	dis, err := c.DisassociateIamInstanceProfile(ctx, &ec2.DisassociateIamInstanceProfileInput{AssociationId: aws.String(second)})
	if err != nil {
		t.Fatal(err)
	}
	if dis.IamInstanceProfileAssociation.State != ec2types.IamInstanceProfileAssociationStateDisassociating {
		t.Errorf("disassociate state %s", dis.IamInstanceProfileAssociation.State)
	}
	desc, err = c.DescribeInstances(ctx, &ec2.DescribeInstancesInput{InstanceIds: []string{id}})
	if err != nil {
		t.Fatal(err)
	}
	if p := desc.Reservations[0].Instances[0].IamInstanceProfile; p != nil {
		t.Fatalf("after disassociation DescribeInstances still shows %+v", p)
	}
	list, err = c.DescribeIamInstanceProfileAssociations(ctx, &ec2.DescribeIamInstanceProfileAssociationsInput{})
	if err != nil || len(list.IamInstanceProfileAssociations) != 1 || aws.ToString(list.IamInstanceProfileAssociations[0].InstanceId) != bareID {
		t.Fatalf("associations after disassociation: %+v %v", list, err)
	}
	if _, err := c.DescribeIamInstanceProfileAssociations(ctx, &ec2.DescribeIamInstanceProfileAssociationsInput{AssociationIds: []string{second}}); apiCode(err) != "InvalidAssociationID.NotFound" {
		t.Fatalf("describe a gone association: %v", err)
	}
}

func TestAssociatePassRole(t *testing.T) {
	e := newProfileEnv(t)
	ctx := context.Background()
	run, err := runWithProfile(e.root, nil)
	if err != nil {
		t.Fatal(err)
	}
	id := aws.ToString(run.Instances[0].InstanceId)
	dev := e.user(t, "dev", `{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Action":"ec2:*","Resource":"*"}]}`)
	_, err = dev.AssociateIamInstanceProfile(ctx, &ec2.AssociateIamInstanceProfileInput{InstanceId: aws.String(id),
		IamInstanceProfile: &ec2types.IamInstanceProfileSpecification{Name: aws.String("app-profile")}})
	if apiCode(err) != "UnauthorizedOperation" || !strings.Contains(err.Error(), "iam:PassRole") {
		t.Fatalf("associate without iam:PassRole: %v", err)
	}
	as, err := e.root.AssociateIamInstanceProfile(ctx, &ec2.AssociateIamInstanceProfileInput{InstanceId: aws.String(id),
		IamInstanceProfile: &ec2types.IamInstanceProfileSpecification{Name: aws.String("app-profile")}})
	if err != nil {
		t.Fatal(err)
	}
	_, err = dev.ReplaceIamInstanceProfileAssociation(ctx, &ec2.ReplaceIamInstanceProfileAssociationInput{AssociationId: as.IamInstanceProfileAssociation.AssociationId,
		IamInstanceProfile: &ec2types.IamInstanceProfileSpecification{Name: aws.String("app-profile")}})
	if apiCode(err) != "UnauthorizedOperation" || !strings.Contains(err.Error(), "iam:PassRole") {
		t.Fatalf("replace without iam:PassRole: %v", err)
	}
	// Disassociating passes no role.
	if _, err := dev.DisassociateIamInstanceProfile(ctx, &ec2.DisassociateIamInstanceProfileInput{AssociationId: as.IamInstanceProfileAssociation.AssociationId}); err != nil {
		t.Fatalf("disassociate: %v", err)
	}
}

func TestModifyInstanceMetadataOptions(t *testing.T) {
	e := newProfileEnv(t)
	ctx := context.Background()
	run, err := runWithProfile(e.root, nil)
	if err != nil {
		t.Fatal(err)
	}
	id := aws.ToString(run.Instances[0].InstanceId)
	out, err := e.root.ModifyInstanceMetadataOptions(ctx, &ec2.ModifyInstanceMetadataOptionsInput{InstanceId: aws.String(id),
		HttpTokens: ec2types.HttpTokensStateRequired, HttpPutResponseHopLimit: aws.Int32(2)})
	if err != nil {
		t.Fatal(err)
	}
	mo := out.InstanceMetadataOptions
	if aws.ToString(out.InstanceId) != id || mo.HttpTokens != ec2types.HttpTokensStateRequired || aws.ToInt32(mo.HttpPutResponseHopLimit) != 2 ||
		mo.HttpEndpoint != ec2types.InstanceMetadataEndpointStateEnabled {
		t.Fatalf("reply %+v", mo)
	}
	if _, err := e.root.ModifyInstanceMetadataOptions(ctx, &ec2.ModifyInstanceMetadataOptionsInput{InstanceId: aws.String(id),
		HttpEndpoint: ec2types.InstanceMetadataEndpointStateDisabled}); err != nil {
		t.Fatal(err)
	}
	desc, err := e.root.DescribeInstances(ctx, &ec2.DescribeInstancesInput{InstanceIds: []string{id}})
	if err != nil {
		t.Fatal(err)
	}
	got := desc.Reservations[0].Instances[0].MetadataOptions
	if got.HttpTokens != ec2types.HttpTokensStateRequired || aws.ToInt32(got.HttpPutResponseHopLimit) != 2 || got.HttpEndpoint != ec2types.InstanceMetadataEndpointStateDisabled {
		t.Fatalf("DescribeInstances metadata options %+v", got)
	}
	for _, in := range []*ec2.ModifyInstanceMetadataOptionsInput{
		{InstanceId: aws.String(id), HttpPutResponseHopLimit: aws.Int32(65)},
		{InstanceId: aws.String(id), HttpTokens: "sometimes"},
	} {
		if _, err := e.root.ModifyInstanceMetadataOptions(ctx, in); apiCode(err) != "InvalidParameterValue" {
			t.Errorf("%+v: %v, want InvalidParameterValue", in, err)
		}
	}
	if _, err := e.root.ModifyInstanceMetadataOptions(ctx, &ec2.ModifyInstanceMetadataOptionsInput{InstanceId: aws.String("i-0000000000000000f"),
		HttpTokens: ec2types.HttpTokensStateRequired}); apiCode(err) != "InvalidInstanceID.NotFound" {
		t.Errorf("unknown instance: %v", err)
	}
}
