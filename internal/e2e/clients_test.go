package e2e

import (
	"context"
	"encoding/json"
	"path/filepath"
	"sort"
	"strings"
	"testing"

	"github.com/aws/aws-sdk-go-v2/aws"
	awsconfig "github.com/aws/aws-sdk-go-v2/config"
	"github.com/aws/aws-sdk-go-v2/service/ec2"
	ec2types "github.com/aws/aws-sdk-go-v2/service/ec2/types"
	"github.com/aws/aws-sdk-go-v2/service/sts"
)

var wantZones = []string{"lab-1a", "lab-1b", "lab-1c"}

// The unmodified aws CLI v1 reads region and endpoint from admin-credentials.
func TestAWSCLI(t *testing.T) {
	aws := lookTool(t, "aws")
	d := startDaemon(t, "")
	env := []string{"AWS_SHARED_CREDENTIALS_FILE=" + d.credsFile(), "AWS_CONFIG_FILE=/dev/null"}

	out, errOut, code := run(t, env, aws, "--profile", "labcloud", "--endpoint-url", d.Endpoint, "ec2", "describe-regions", "--output", "json")
	if code != 0 {
		t.Fatalf("describe-regions exit %d: %s", code, errOut)
	}
	var regions struct {
		Regions []struct{ RegionName, Endpoint, OptInStatus string }
	}
	mustJSON(t, out, &regions)
	if len(regions.Regions) != 1 || regions.Regions[0].RegionName != "lab-1" || regions.Regions[0].Endpoint != d.Endpoint {
		t.Fatalf("regions = %+v", regions)
	}

	// No --endpoint-url: the profile's endpoint_url is used.
	out, errOut, code = run(t, env, aws, "--profile", "labcloud", "ec2", "describe-availability-zones", "--output", "json")
	if code != 0 {
		t.Fatalf("describe-availability-zones exit %d: %s", code, errOut)
	}
	var zones struct {
		AvailabilityZones []struct{ ZoneName, ZoneId, State, RegionName string }
	}
	mustJSON(t, out, &zones)
	var names []string
	for _, z := range zones.AvailabilityZones {
		names = append(names, z.ZoneName)
		if z.State != "available" || z.RegionName != "lab-1" || z.ZoneId == "" {
			t.Errorf("zone %+v", z)
		}
	}
	if strings.Join(names, ",") != strings.Join(wantZones, ",") {
		t.Fatalf("zones = %v, want %v", names, wantZones)
	}

	out, errOut, code = run(t, env, aws, "--profile", "labcloud", "ec2", "describe-availability-zones",
		"--filters", "Name=zone-name,Values=lab-1b,lab-1c", "Name=state,Values=avail*", "--output", "json")
	if code != 0 {
		t.Fatalf("filtered zones exit %d: %s", code, errOut)
	}
	zones.AvailabilityZones = nil
	mustJSON(t, out, &zones)
	if len(zones.AvailabilityZones) != 2 || zones.AvailabilityZones[0].ZoneName != "lab-1b" {
		t.Fatalf("filtered zones = %+v", zones)
	}

	out, errOut, code = run(t, env, aws, "--profile", "labcloud", "ec2", "describe-account-attributes", "--output", "json")
	if code != 0 {
		t.Fatalf("describe-account-attributes exit %d: %s", code, errOut)
	}
	var attrs struct {
		AccountAttributes []struct {
			AttributeName   string
			AttributeValues []struct{ AttributeValue string }
		}
	}
	mustJSON(t, out, &attrs)
	got := map[string]string{}
	for _, a := range attrs.AccountAttributes {
		var vs []string
		for _, v := range a.AttributeValues {
			vs = append(vs, v.AttributeValue)
		}
		got[a.AttributeName] = strings.Join(vs, ",")
	}
	want := map[string]string{"max-instances": "20", "max-elastic-ips": "5", "vpc-max-security-groups-per-interface": "5", "default-vpc": "none", "supported-platforms": "VPC"}
	for k, v := range want {
		if got[k] != v {
			t.Errorf("attribute %s = %q, want %q (all: %v)", k, got[k], v, got)
		}
	}

	// A bad zone name is a clear AWS error and a non-zero exit.
	_, errOut, code = run(t, env, aws, "--profile", "labcloud", "ec2", "describe-availability-zones", "--zone-names", "lab-1z")
	if code == 0 || !strings.Contains(errOut, "InvalidParameterValue") || !strings.Contains(errOut, "lab-1z") {
		t.Fatalf("bad zone: exit %d, stderr %q", code, errOut)
	}

	out, errOut, code = run(t, env, aws, "--profile", "labcloud", "sts", "get-caller-identity", "--output", "json")
	if code != 0 {
		t.Fatalf("get-caller-identity exit %d: %s", code, errOut)
	}
	var who struct{ Account, Arn, UserId string }
	mustJSON(t, out, &who)
	if len(who.Account) != 12 || who.Arn != "arn:aws:iam::"+who.Account+":root" {
		t.Fatalf("caller identity = %+v", who)
	}
}

func TestBoto3(t *testing.T) {
	python := lookTool(t, "python3")
	d := startDaemon(t, "")
	script := `
import boto3, json, sys
s = boto3.session.Session(profile_name="labcloud")
ec2 = s.client("ec2", endpoint_url=sys.argv[1])
r = ec2.describe_regions()["Regions"]
z = ec2.describe_availability_zones()["AvailabilityZones"]
try:
    ec2.describe_regions(RegionNames=["us-east-1"])
    err = None
except ec2.exceptions.ClientError as e:
    err = e.response["Error"]["Code"]
print(json.dumps({"regions": [x["RegionName"] for x in r], "zones": [x["ZoneName"] for x in z], "err": err}))
`
	env := []string{"AWS_SHARED_CREDENTIALS_FILE=" + d.credsFile(), "AWS_CONFIG_FILE=/dev/null"}
	out, errOut, code := run(t, env, python, "-c", script, d.Endpoint)
	if code != 0 {
		t.Fatalf("boto3 exit %d: %s", code, errOut)
	}
	var res struct {
		Regions, Zones []string
		Err            string
	}
	mustJSON(t, out, &res)
	if strings.Join(res.Regions, ",") != "lab-1" || strings.Join(res.Zones, ",") != strings.Join(wantZones, ",") {
		t.Fatalf("boto3 saw %+v", res)
	}
	if res.Err != "InvalidParameterValue" {
		t.Fatalf("unknown region error = %q, want InvalidParameterValue", res.Err)
	}
}

// sdkConfig loads the daemon's admin-credentials with aws-sdk-go-v2.
func sdkConfig(t *testing.T, d *daemon) aws.Config {
	t.Helper()
	cfg, err := awsconfig.LoadDefaultConfig(context.Background(),
		awsconfig.WithSharedCredentialsFiles([]string{d.credsFile()}),
		awsconfig.WithSharedConfigFiles([]string{filepath.Join(t.TempDir(), "none")}),
		awsconfig.WithSharedConfigProfile("labcloud"))
	if err != nil {
		t.Fatal(err)
	}
	cfg.BaseEndpoint = aws.String(d.Endpoint)
	return cfg
}

func TestSDKGoV2(t *testing.T) {
	d := startDaemon(t, "")
	cfg := sdkConfig(t, d)
	if cfg.Region != "lab-1" {
		t.Fatalf("region from admin-credentials = %q, want lab-1", cfg.Region)
	}
	ctx := context.Background()
	cl := ec2.NewFromConfig(cfg)
	r, err := cl.DescribeRegions(ctx, &ec2.DescribeRegionsInput{})
	if err != nil {
		t.Fatal(err)
	}
	if len(r.Regions) != 1 || aws.ToString(r.Regions[0].RegionName) != "lab-1" {
		t.Fatalf("regions = %+v", r.Regions)
	}
	z, err := cl.DescribeAvailabilityZones(ctx, &ec2.DescribeAvailabilityZonesInput{
		Filters: []ec2types.Filter{{Name: aws.String("region-name"), Values: []string{"lab-1"}}},
	})
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, zz := range z.AvailabilityZones {
		names = append(names, aws.ToString(zz.ZoneName))
	}
	sort.Strings(names)
	if strings.Join(names, ",") != strings.Join(wantZones, ",") {
		t.Fatalf("zones = %v", names)
	}
	id, err := sts.NewFromConfig(cfg).GetCallerIdentity(ctx, &sts.GetCallerIdentityInput{})
	if err != nil {
		t.Fatal(err)
	}
	if !strings.HasSuffix(aws.ToString(id.Arn), ":root") {
		t.Fatalf("caller = %s", aws.ToString(id.Arn))
	}
}

func TestLabcloudCLI(t *testing.T) {
	d := startDaemon(t, "")
	cli := filepath.Join(binDir, "labcloud")
	out, errOut, code := run(t, nil, cli, "--state-dir", d.stateDir, "zones")
	if code != 0 {
		t.Fatalf("labcloud zones exit %d: %s", code, errOut)
	}
	lines := strings.Split(strings.TrimSpace(out), "\n")
	if len(lines) != 4 || !strings.HasPrefix(lines[0], "ZONE") || !strings.HasPrefix(lines[1], "lab-1a") {
		t.Fatalf("table output:\n%s", out)
	}
	out, errOut, code = run(t, nil, cli, "--state-dir", d.stateDir, "--output", "json", "regions")
	if code != 0 {
		t.Fatalf("labcloud regions exit %d: %s", code, errOut)
	}
	var regions []struct{ RegionName string }
	mustJSON(t, out, &regions)
	if len(regions) != 1 || regions[0].RegionName != "lab-1" {
		t.Fatalf("json output: %s", out)
	}
	// Credentials given explicitly, endpoint by flag, no state dir at all.
	out, errOut, code = run(t, nil, cli, "--state-dir", t.TempDir(), "--credentials-file", d.credsFile(), "--endpoint", d.Endpoint, "zones", "lab-1c")
	if code != 0 || !strings.Contains(out, "lab-1c") || strings.Contains(out, "lab-1a") {
		t.Fatalf("labcloud zones lab-1c: exit %d out %q err %q", code, out, errOut)
	}
	_, errOut, code = run(t, nil, cli, "--state-dir", d.stateDir, "zones", "lab-9x")
	if code == 0 || !strings.Contains(errOut, "InvalidParameterValue") {
		t.Fatalf("bad zone: exit %d, stderr %q", code, errOut)
	}
	out, _, code = run(t, nil, cli, "--help")
	if code != 0 || !strings.Contains(out, "regions") || !strings.Contains(out, "zones") || !strings.Contains(out, "--endpoint") {
		t.Fatalf("--help:\n%s", out)
	}
}

func mustJSON(t *testing.T, s string, v any) {
	t.Helper()
	if err := json.Unmarshal([]byte(s), v); err != nil {
		t.Fatalf("parsing %q: %v", s, err)
	}
}
