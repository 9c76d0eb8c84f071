package e2e

import (
	"context"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/service/ec2"
)

// BenchmarkDescribeRegions measures DescribeRegions round trips with 1 and
// 16 concurrent aws-sdk-go-v2 clients against a real labcloudd and, in the
// same run, against moto_server on loopback. It reports p50/p99 latency and
// throughput per case and logs the moto/labcloud ratios.
func BenchmarkDescribeRegions(b *testing.B) {
	d := startDaemon(b, "")
	id, secret := d.creds()
	motoURL := startMoto(b)

	targets := []struct {
		name, endpoint, region, id, secret string
	}{
		{"labcloud", d.Endpoint, "lab-1", id, secret},
		{"moto", motoURL, "us-east-1", "testing", "testing"},
	}
	p50 := map[string]float64{}
	for _, conc := range []int{1, 16} {
		for _, tg := range targets {
			name := fmt.Sprintf("%s/clients=%d", tg.name, conc)
			b.Run(name, func(b *testing.B) {
				clients := make([]*ec2.Client, conc)
				for i := range clients {
					clients[i] = ec2.New(ec2.Options{
						Region:       tg.region,
						BaseEndpoint: aws.String(tg.endpoint),
						Credentials:  credentials.NewStaticCredentialsProvider(tg.id, tg.secret, ""),
						HTTPClient:   &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: 4}},
					})
					// Warm the connection so the first sample is no dial.
					if _, err := clients[i].DescribeRegions(context.Background(), &ec2.DescribeRegionsInput{}); err != nil {
						b.Fatalf("%s warm-up: %v", tg.name, err)
					}
				}
				lat := make([]time.Duration, b.N)
				var next atomic.Int64
				var wg sync.WaitGroup
				var failed atomic.Value
				b.ResetTimer()
				start := time.Now()
				for _, cl := range clients {
					wg.Add(1)
					go func(cl *ec2.Client) {
						defer wg.Done()
						for {
							i := next.Add(1) - 1
							if i >= int64(b.N) {
								return
							}
							t0 := time.Now()
							if _, err := cl.DescribeRegions(context.Background(), &ec2.DescribeRegionsInput{}); err != nil {
								failed.Store(err)
								return
							}
							lat[i] = time.Since(t0)
						}
					}(cl)
				}
				wg.Wait()
				elapsed := time.Since(start)
				b.StopTimer()
				if err, _ := failed.Load().(error); err != nil {
					b.Fatalf("%s: %v", tg.name, err)
				}
				sort.Slice(lat, func(i, j int) bool { return lat[i] < lat[j] })
				q := func(p float64) float64 { return float64(lat[int(p*float64(len(lat)-1))].Microseconds()) / 1000 }
				b.ReportMetric(q(0.50), "p50-ms")
				b.ReportMetric(q(0.99), "p99-ms")
				b.ReportMetric(float64(b.N)/elapsed.Seconds(), "req/s")
				p50[name] = q(0.50)
			})
		}
	}
	for _, conc := range []int{1, 16} {
		l, m := p50[fmt.Sprintf("labcloud/clients=%d", conc)], p50[fmt.Sprintf("moto/clients=%d", conc)]
		if l > 0 {
			b.Logf("clients=%d: p50 labcloud %.3f ms, moto %.3f ms, moto/labcloud = %.1fx", conc, l, m, m/l)
		}
	}
}

// startMoto runs moto_server on a free loopback port for the benchmark.
func startMoto(b *testing.B) string {
	bin := lookTool(b, "moto_server")
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		b.Fatal(err)
	}
	port := fmt.Sprint(l.Addr().(*net.TCPAddr).Port)
	l.Close()
	cmd := exec.Command(bin, "-H", "127.0.0.1", "-p", port)
	logf, _ := os.Create(filepath.Join(b.TempDir(), "moto.log"))
	cmd.Stdout, cmd.Stderr = logf, logf
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := cmd.Start(); err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { _ = syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL); _ = cmd.Wait(); logf.Close() })
	u := "http://127.0.0.1:" + port
	deadline := time.Now().Add(60 * time.Second)
	for time.Now().Before(deadline) {
		if resp, err := http.Get(u + "/moto-api/"); err == nil {
			resp.Body.Close()
			return u
		}
		time.Sleep(100 * time.Millisecond)
	}
	b.Fatalf("moto_server did not start on %s", u)
	return ""
}
