package protocol

import (
	"bytes"
	"encoding/json"
	"os/exec"
	"reflect"
	"testing"
	"time"
)

// requireBotocore returns the python3 to run testdata/botocore_check.py
// with. botocore is what the aws CLI parses responses with; `make deps`
// installs it (CI runs it), so its absence fails the test rather than
// skipping the cross-check.
func requireBotocore(t *testing.T) string {
	t.Helper()
	python, err := exec.LookPath("python3")
	if err != nil {
		t.Fatal("python3 not installed: run `make deps`; botocore cross-checks our XML")
	}
	if out, err := exec.Command(python, "-c", "import botocore").CombinedOutput(); err != nil {
		t.Fatalf("botocore not importable (%v: %s): run `make deps` (it installs python3-boto3)", err, out)
	}
	return python
}

// TestBotocoreParsesOutput feeds our XML to botocore's EC2QueryParser and
// QueryParser with the real ec2, iam and sts service models and checks what
// the aws CLI would see.
func TestBotocoreParsesOutput(t *testing.T) {
	python := requireBotocore(t)
	created := time.Date(2024, 1, 2, 3, 4, 5, 678_000_000, time.UTC)
	type doc struct {
		name      string
		service   string
		operation string
		status    int
		encode    func(*bytes.Buffer) error
		want      string
	}
	docs := []doc{
		{name: "ec2 DescribeRegions", service: "ec2", operation: "DescribeRegions", status: 200,
			encode: func(b *bytes.Buffer) error {
				return EncodeEC2(b, "DescribeRegions", "req-1", describeRegionsOutput{Regions: []region{
					{RegionName: "lab-1", Endpoint: "ec2.lab-1.example", OptInStatus: "opt-in-not-required"},
					{RegionName: "lab-2", Endpoint: "ec2.lab-2.example", OptInStatus: "opted-in"},
				}})
			},
			want: `{"Regions": [
				{"RegionName": "lab-1", "Endpoint": "ec2.lab-1.example", "OptInStatus": "opt-in-not-required"},
				{"RegionName": "lab-2", "Endpoint": "ec2.lab-2.example", "OptInStatus": "opted-in"}],
				"ResponseMetadata": {"RequestId": "req-1"}}`},
		{name: "ec2 empty DescribeRegions", service: "ec2", operation: "DescribeRegions", status: 200,
			encode: func(b *bytes.Buffer) error {
				return EncodeEC2(b, "DescribeRegions", "req-1", describeRegionsOutput{Regions: []region{}})
			},
			want: `{"Regions": [], "ResponseMetadata": {"RequestId": "req-1"}}`},
		{name: "ec2 error", service: "ec2", operation: "DescribeRegions", status: 400,
			encode: func(b *bytes.Buffer) error {
				return EncodeEC2Error(b, "InvalidParameterValue", "Value (x<y) for parameter RegionName is invalid.", "req-2")
			},
			want: `{"Error": {"Code": "InvalidParameterValue", "Message": "Value (x<y) for parameter RegionName is invalid."},
				"ResponseMetadata": {"RequestId": "req-2"}}`},
		{name: "iam ListUsers", service: "iam", operation: "ListUsers", status: 200,
			encode: func(b *bytes.Buffer) error {
				return EncodeQuery(b, "ListUsers", "req-3", IAMNamespace, listUsersOutput{Users: []iamUser{{
					Path: "/", UserName: "alice", UserId: "AIDAEXAMPLE", Arn: "arn:aws:iam::000000000000:user/alice",
					CreateDate: created, Tags: []iamTag{{Key: "team", Value: "lab"}},
				}}})
			},
			want: `{"Users": [{"Path": "/", "UserName": "alice", "UserId": "AIDAEXAMPLE",
				"Arn": "arn:aws:iam::000000000000:user/alice", "CreateDate": "2024-01-02T03:04:05.678000+00:00",
				"Tags": [{"Key": "team", "Value": "lab"}]}],
				"IsTruncated": false, "ResponseMetadata": {"RequestId": "req-3"}}`},
		{name: "iam error", service: "iam", operation: "GetUser", status: 404,
			encode: func(b *bytes.Buffer) error {
				return EncodeQueryError(b, FaultSender, "NoSuchEntity", "The user with name bob cannot be found.", "req-4", IAMNamespace)
			},
			want: `{"Error": {"Type": "Sender", "Code": "NoSuchEntity", "Message": "The user with name bob cannot be found."},
				"ResponseMetadata": {"RequestId": "req-4"}}`},
		{name: "sts GetCallerIdentity", service: "sts", operation: "GetCallerIdentity", status: 200,
			encode: func(b *bytes.Buffer) error {
				return EncodeQuery(b, "GetCallerIdentity", "req-5", STSNamespace, &getCallerIdentityOutput{
					UserId: "AIDAEXAMPLE", Account: "000000000000", Arn: "arn:aws:iam::000000000000:user/alice"})
			},
			want: `{"UserId": "AIDAEXAMPLE", "Account": "000000000000", "Arn": "arn:aws:iam::000000000000:user/alice",
				"ResponseMetadata": {"RequestId": "req-5"}}`},
	}
	type request struct {
		Service   string `json:"service"`
		Operation string `json:"operation"`
		Status    int    `json:"status"`
		Body      string `json:"body"`
	}
	var reqs []request
	for _, d := range docs {
		var buf bytes.Buffer
		if err := d.encode(&buf); err != nil {
			t.Fatalf("%s: %v", d.name, err)
		}
		reqs = append(reqs, request{Service: d.service, Operation: d.operation, Status: d.status, Body: buf.String()})
	}
	input, err := json.Marshal(reqs)
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(python, "testdata/botocore_check.py")
	cmd.Stdin = bytes.NewReader(input)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("botocore_check.py: %v\n%s", err, stderr.String())
	}
	var parsed []any
	if err := json.Unmarshal(out, &parsed); err != nil {
		t.Fatalf("botocore_check.py output: %v\n%s", err, out)
	}
	if len(parsed) != len(docs) {
		t.Fatalf("botocore parsed %d documents, want %d", len(parsed), len(docs))
	}
	for i, d := range docs {
		t.Run(d.name, func(t *testing.T) {
			var want any
			if err := json.Unmarshal([]byte(d.want), &want); err != nil {
				t.Fatal(err)
			}
			if !reflect.DeepEqual(parsed[i], want) {
				t.Errorf("botocore parsed\n %v\nwant %v\nfrom %s", parsed[i], want, reqs[i].Body)
			}
		})
	}
}
