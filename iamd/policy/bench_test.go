package policy

import (
	"fmt"
	"strings"
	"testing"
)

// benchPolicies builds a principal's three managed policies, 20 statements
// in all, with the mix of operators and variables a course account sees.
func benchPolicies(b *testing.B) []NamedPolicy {
	docs := []string{
		// 7 statements: EC2 operator duties.
		`{"Version":"2012-10-17","Statement":[
			{"Sid":"Describe","Effect":"Allow","Action":"ec2:Describe*","Resource":"*","Condition":{"StringEquals":{"aws:RequestedRegion":["us-east-1","eu-west-1"]}}},
			{"Sid":"StartStop","Effect":"Allow","Action":["ec2:StartInstances","ec2:StopInstances"],"Resource":"arn:aws:ec2:*:*:instance/*","Condition":{"StringEquals":{"aws:PrincipalTag/Department":"DBAdmins","ec2:ResourceTag/Environment":"Production"}}},
			{"Sid":"OwnVolumes","Effect":"Allow","Action":"ec2:*Volume*","Resource":"arn:aws:ec2:*:${aws:PrincipalAccount}:volume/*","Condition":{"StringEquals":{"ec2:ResourceTag/Owner":"${aws:username}"}}},
			{"Sid":"RunSmall","Effect":"Allow","Action":"ec2:RunInstances","Resource":"*","Condition":{"StringLikeIfExists":{"ec2:InstanceType":["t3.*","t4g.*"]}}},
			{"Sid":"TagOnCreate","Effect":"Allow","Action":"ec2:CreateTags","Resource":"*","Condition":{"ForAllValues:StringEquals":{"aws:TagKeys":["Owner","Environment","Project"]}}},
			{"Sid":"NoTerminateProd","Effect":"Deny","Action":"ec2:TerminateInstances","Resource":"*","Condition":{"StringEquals":{"ec2:ResourceTag/Environment":"Production"}}},
			{"Sid":"RegionLock","Effect":"Deny","NotAction":["iam:*","sts:*"],"Resource":"*","Condition":{"StringNotEquals":{"aws:RequestedRegion":["us-east-1","eu-west-1"]}}}]}`,
		// 7 statements: network and time guard rails.
		`{"Version":"2012-10-17","Statement":[
			{"Sid":"FromCampus","Effect":"Deny","Action":"*","Resource":"*","Condition":{"NotIpAddress":{"aws:SourceIp":["10.0.0.0/8","192.168.0.0/16","2001:db8::/32"]},"Bool":{"aws:ViaAWSService":"false"}}},
			{"Sid":"TermDates","Effect":"Deny","Action":"*","Resource":"*","Condition":{"DateGreaterThan":{"aws:CurrentTime":"2027-06-30T23:59:59Z"}}},
			{"Sid":"SecureOnly","Effect":"Deny","Action":"*","Resource":"*","Condition":{"Bool":{"aws:SecureTransport":"false"}}},
			{"Sid":"VPCs","Effect":"Allow","Action":["ec2:CreateVpc","ec2:CreateSubnet","ec2:*SecurityGroup*"],"Resource":"*","Condition":{"NumericLessThanEquals":{"labcloud:VpcCount":"5"}}},
			{"Sid":"ENIs","Effect":"Allow","Action":"ec2:*NetworkInterface*","Resource":"arn:aws:ec2:*:*:network-interface/*","Condition":{"ArnLike":{"ec2:Subnet":"arn:aws:ec2:*:*:subnet/*"}}},
			{"Sid":"MFAForDelete","Effect":"Deny","Action":"ec2:Delete*","Resource":"*","Condition":{"BoolIfExists":{"aws:MultiFactorAuthPresent":"false"}}},
			{"Sid":"Snapshots","Effect":"Allow","Action":"ec2:*Snapshot*","Resource":"*","Condition":{"ForAnyValue:StringLike":{"aws:TagKeys":"course-*"}}}]}`,
		// 6 statements: IAM self-service.
		`{"Version":"2012-10-17","Statement":[
			{"Sid":"OwnKeys","Effect":"Allow","Action":["iam:*AccessKey*","iam:ChangePassword"],"Resource":"arn:aws:iam::*:user/${aws:username}"},
			{"Sid":"OwnMFA","Effect":"Allow","Action":"iam:*MFADevice","Resource":"arn:aws:iam::*:mfa/${aws:username}"},
			{"Sid":"ReadIAM","Effect":"Allow","Action":["iam:Get*","iam:List*"],"Resource":"*","Condition":{"StringEqualsIgnoreCase":{"aws:PrincipalTag/Role":"ta"}}},
			{"Sid":"PassLabRoles","Effect":"Allow","Action":"iam:PassRole","Resource":"arn:aws:iam::*:role/lab-*","Condition":{"StringEquals":{"iam:PassedToService":"ec2.amazonaws.com"}}},
			{"Sid":"NoBoundaryEdit","Effect":"Deny","Action":["iam:DeleteUserPermissionsBoundary","iam:PutUserPermissionsBoundary"],"Resource":"*"},
			{"Sid":"Session","Effect":"Allow","Action":"sts:GetSessionToken","Resource":"*","Condition":{"NumericLessThan":{"sts:DurationSeconds":3600},"Null":{"aws:TokenIssueTime":"true"}}}]}`,
	}
	var out []NamedPolicy
	total := 0
	for i, d := range docs {
		p := mustParse(b, d, KindIdentity)
		total += len(p.Statements)
		out = append(out, NamedPolicy{Source: Source{Type: SourceIAMPolicy, ID: fmt.Sprintf("arn:aws:iam::111111111111:policy/course-%d", i)}, Policy: p})
	}
	if total != 20 {
		b.Fatalf("benchmark policies have %d statements, want 20", total)
	}
	return out
}

// BenchmarkDecide measures one authorisation of an allowed
// ec2:StartInstances by a principal with three managed policies.
func BenchmarkDecide(b *testing.B) {
	pols := benchPolicies(b)
	ctx := ctxOf(map[string][]string{
		"aws:username": {"alice"}, "aws:PrincipalAccount": {"111111111111"},
		"aws:PrincipalTag/Department": {"DBAdmins"}, "aws:PrincipalTag/Role": {"student"},
		"ec2:ResourceTag/Environment": {"Production"}, "ec2:ResourceTag/Owner": {"alice"},
		"aws:RequestedRegion": {"us-east-1"}, "aws:SourceIp": {"10.20.30.40"},
		"aws:CurrentTime": {"2026-03-01T10:00:00Z"}, "aws:SecureTransport": {"true"},
		"aws:ViaAWSService": {"false"}, "aws:MultiFactorAuthPresent": {"true"},
	})
	in := Input{
		Request: Request{
			Action:    "ec2:StartInstances",
			Resource:  "arn:aws:ec2:us-east-1:111111111111:instance/i-0123456789abcdef0",
			Principal: alice, Context: ctx,
		},
		PrincipalAccount: acctA, ResourceAccount: acctA,
		Identity: pols,
	}
	if d := Decide(in); d.Effect != Allowed {
		b.Fatalf("benchmark request not allowed: %+v", d)
	}
	b.ReportAllocs()
	for b.Loop() {
		Decide(in)
	}
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "decisions/s")
}

// BenchmarkParse measures validating the three benchmark documents, the
// cost paid on every policy write.
func BenchmarkParse(b *testing.B) {
	pols := benchPolicies(b)
	var docs []string
	for _, p := range pols {
		j, _ := p.Policy.MarshalJSON()
		docs = append(docs, string(j))
	}
	b.SetBytes(int64(len(strings.Join(docs, ""))))
	for b.Loop() {
		for _, d := range docs {
			if _, err := Parse(d, KindIdentity); err != nil {
				b.Fatal(err)
			}
		}
	}
}
