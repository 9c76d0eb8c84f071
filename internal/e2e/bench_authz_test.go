package e2e

import (
	"context"
	"fmt"
	"net/http"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/service/ec2"
	"github.com/aws/aws-sdk-go-v2/service/iam"
)

// benchPolicy returns a policy document of n statements with conditions,
// one of which allows ec2:DescribeRegions.
func benchPolicy(idx, n int) string {
	var st []string
	for i := 0; i < n; i++ {
		st = append(st, fmt.Sprintf(`{"Sid":"S%d%d","Effect":"Allow","Action":["ec2:Describe%dThings","iam:Get*"],"Resource":"arn:aws:ec2:lab-1:*:thing/${aws:username}-%d","Condition":{"StringEquals":{"aws:PrincipalTag/team":"t%d"},"IpAddress":{"aws:SourceIp":"127.0.0.0/8"}}}`, idx, i, i, i, i))
	}
	if idx == 2 {
		st = append(st, `{"Sid":"Regions","Effect":"Allow","Action":"ec2:DescribeRegions","Resource":"*","Condition":{"Bool":{"aws:SecureTransport":"false"},"StringLike":{"aws:username":"bench*"}}}`)
	}
	return `{"Version":"2012-10-17","Statement":[` + strings.Join(st, ",") + `]}`
}

// BenchmarkAuthorizedCall measures what IAM authorization adds to an API
// call: DescribeRegions as the account root (no policy evaluation) and as
// a user with 3 managed policies of 20 statements with conditions.
func BenchmarkAuthorizedCall(b *testing.B) {
	d := startDaemon(b, "")
	id, secret := d.creds()
	ctx := context.Background()
	rootCreds := credentials.NewStaticCredentialsProvider(id, secret, "")
	ic := iam.New(iam.Options{Region: "lab-1", BaseEndpoint: aws.String(d.Endpoint), Credentials: rootCreds})
	if _, err := ic.CreateUser(ctx, &iam.CreateUserInput{UserName: aws.String("bench")}); err != nil {
		b.Fatal(err)
	}
	for i := 0; i < 3; i++ {
		n := 7
		if i == 2 {
			n = 5 // 7 + 7 + 5 + the Regions statement = 20 statements
		}
		p, err := ic.CreatePolicy(ctx, &iam.CreatePolicyInput{PolicyName: aws.String(fmt.Sprintf("bench%d", i)), PolicyDocument: aws.String(benchPolicy(i, n))})
		if err != nil {
			b.Fatal(err)
		}
		if _, err := ic.AttachUserPolicy(ctx, &iam.AttachUserPolicyInput{UserName: aws.String("bench"), PolicyArn: p.Policy.Arn}); err != nil {
			b.Fatal(err)
		}
	}
	k, err := ic.CreateAccessKey(ctx, &iam.CreateAccessKeyInput{UserName: aws.String("bench")})
	if err != nil {
		b.Fatal(err)
	}
	users := map[string]aws.CredentialsProvider{
		"root":                          rootCreds,
		"user-3-policies-20-statements": credentials.NewStaticCredentialsProvider(*k.AccessKey.AccessKeyId, *k.AccessKey.SecretAccessKey, ""),
	}
	p50 := map[string]float64{}
	for _, name := range []string{"root", "user-3-policies-20-statements"} {
		b.Run(name, func(b *testing.B) {
			cl := ec2.New(ec2.Options{Region: "lab-1", BaseEndpoint: aws.String(d.Endpoint), Credentials: users[name],
				HTTPClient: &http.Client{Transport: &http.Transport{}}})
			if _, err := cl.DescribeRegions(ctx, &ec2.DescribeRegionsInput{}); err != nil {
				b.Fatalf("%s: %v", name, err)
			}
			lat := make([]time.Duration, b.N)
			b.ResetTimer()
			for i := 0; i < b.N; i++ {
				t0 := time.Now()
				if _, err := cl.DescribeRegions(ctx, &ec2.DescribeRegionsInput{}); err != nil {
					b.Fatal(err)
				}
				lat[i] = time.Since(t0)
			}
			b.StopTimer()
			sort.Slice(lat, func(i, j int) bool { return lat[i] < lat[j] })
			q := func(p float64) float64 { return float64(lat[int(p*float64(len(lat)-1))].Microseconds()) / 1000 }
			b.ReportMetric(q(0.50), "p50-ms")
			b.ReportMetric(q(0.99), "p99-ms")
			p50[name] = q(0.50)
		})
	}
	b.Logf("authorization overhead at p50: %.3f ms (root %.3f ms, policy user %.3f ms)",
		p50["user-3-policies-20-statements"]-p50["root"], p50["root"], p50["user-3-policies-20-statements"])
}
