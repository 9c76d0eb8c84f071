package iamd_test

import (
	"errors"
	"sync"
	"testing"
	"time"

	"github.com/labcloud/labcloud/iamd"
)

const ec2Trust = `{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Principal":{"Service":"ec2.amazonaws.com"},"Action":"sts:AssumeRole"}]}`

// instanceProfileEnv makes role "app" (trusting EC2) in profile "app-profile".
func instanceProfileEnv(t *testing.T) (*iamEnv, *iamd.InstanceRoles, *time.Time, iamd.InstanceRequest) {
	t.Helper()
	e := newIAMEnv(t)
	now := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	sessions := iamd.NewSessions(e.st, func() time.Time { return now })
	roles := iamd.NewInstanceRoles(e.iam, sessions)
	if _, err := e.iam.CreateRole(e.ctx, e.acct, iamd.CreateRoleInput{RoleName: "app", AssumeRolePolicyDocument: ec2Trust}); err != nil {
		t.Fatal(err)
	}
	p, err := e.iam.CreateInstanceProfile(e.ctx, e.acct, "app-profile", "/lab/", nil)
	if err != nil {
		t.Fatal(err)
	}
	if err := e.iam.AddRoleToInstanceProfile(e.ctx, e.acct, "app-profile", "app"); err != nil {
		t.Fatal(err)
	}
	req := iamd.InstanceRequest{AccountID: e.acct, Region: "lab-1", InstanceID: "i-0123456789abcdef0",
		ProfileARN: p.ARN, AssociationID: "iip-assoc-0123456789abcdef0", VPCID: "vpc-1", PrivateIP: "172.31.0.4"}
	return e, roles, &now, req
}

func TestInstanceCredentialsIssueAndRotate(t *testing.T) {
	e, roles, now, req := instanceProfileEnv(t)
	c1, err := roles.Credentials(e.ctx, req)
	if err != nil {
		t.Fatal(err)
	}
	s := c1.Session
	if c1.RoleName != "app" || s.SessionName != req.InstanceID || s.Expiration.Sub(s.IssuedAt) != 6*time.Hour {
		t.Fatalf("credentials %+v", c1)
	}
	p := s.Principal()
	if want := "arn:aws:sts::" + e.acct + ":assumed-role/app/" + req.InstanceID; p.ARN != want {
		t.Fatalf("principal %s, want %s", p.ARN, want)
	}
	if p.Source == nil || p.Source.InstanceARN != "arn:aws:ec2:lab-1:"+e.acct+":instance/"+req.InstanceID || p.Source.VPCID != "vpc-1" {
		t.Fatalf("source %+v", p.Source)
	}

	// Asked again (another labcloudd, or after a restart: the record is in
	// etcd) within the validity: the same credentials.
	*now = now.Add(4*time.Hour + 59*time.Minute)
	c2, err := roles.Credentials(e.ctx, req)
	if err != nil {
		t.Fatal(err)
	}
	if c2.Session.AccessKeyID != s.AccessKeyID {
		t.Fatalf("rotated too early: %s then %s", s.AccessKeyID, c2.Session.AccessKeyID)
	}
	// Less than an hour left: new ones, while the old ones stay valid.
	*now = now.Add(2 * time.Minute)
	c3, err := roles.Credentials(e.ctx, req)
	if err != nil {
		t.Fatal(err)
	}
	if c3.Session.AccessKeyID == s.AccessKeyID || !c3.LastUpdated.Equal(*now) || c3.Session.Expiration.Sub(*now) != 6*time.Hour {
		t.Fatalf("not rotated: %+v", c3)
	}
	sessions := iamd.NewSessions(e.st, func() time.Time { return *now })
	if _, err := sessions.Lookup(e.ctx, s.AccessKeyID); err != nil {
		t.Fatalf("old credentials revoked by rotation: %v", err)
	}

	// A new association gets new credentials; so does a forgotten one.
	req2 := req
	req2.AssociationID = "iip-assoc-0fedcba9876543210"
	c4, err := roles.Credentials(e.ctx, req2)
	if err != nil || c4.Session.AccessKeyID == c3.Session.AccessKeyID {
		t.Fatalf("new association kept the credentials: %v", err)
	}
	if err := roles.Forget(e.ctx, e.acct, req.InstanceID); err != nil {
		t.Fatal(err)
	}
	c5, err := roles.Credentials(e.ctx, req2)
	if err != nil || c5.Session.AccessKeyID == c4.Session.AccessKeyID {
		t.Fatalf("forgotten credentials served again: %v", err)
	}

	// Sweep drops records a day past their expiry.
	*now = now.Add(31 * time.Hour)
	if n, err := roles.Sweep(e.ctx); err != nil || n != 1 {
		t.Fatalf("Sweep = %d, %v; want 1", n, err)
	}
}

func TestInstanceCredentialsConcurrentRotation(t *testing.T) {
	e, roles, _, req := instanceProfileEnv(t)
	var wg sync.WaitGroup
	keys := make([]string, 8)
	errs := make([]error, 8)
	for n := range keys {
		wg.Add(1)
		go func() {
			defer wg.Done()
			c, err := roles.Credentials(e.ctx, req)
			keys[n], errs[n] = c.Session.AccessKeyID, err
		}()
	}
	wg.Wait()
	for n := range keys {
		if errs[n] != nil {
			t.Fatal(errs[n])
		}
	}
	// Whoever lost the race must not hand out credentials nobody else
	// gets: the next call serves the winner's to all.
	final, err := roles.Credentials(e.ctx, req)
	if err != nil {
		t.Fatal(err)
	}
	for n := range keys {
		if keys[n] != final.Session.AccessKeyID {
			sessions := iamd.NewSessions(e.st, nil)
			if _, err := sessions.Lookup(e.ctx, keys[n]); err == nil {
				t.Errorf("call %d got %s, which is neither the served key %s nor deleted", n, keys[n], final.Session.AccessKeyID)
			}
		}
	}
}

func TestInstanceCredentialsRoleChecks(t *testing.T) {
	e, roles, _, req := instanceProfileEnv(t)
	// A trust policy that names no EC2: a clear error, no credentials.
	if err := e.iam.UpdateAssumeRolePolicy(e.ctx, e.acct, "app",
		`{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Principal":{"Service":"lambda.amazonaws.com"},"Action":"sts:AssumeRole"}]}`); err != nil {
		t.Fatal(err)
	}
	c, err := roles.Credentials(e.ctx, req)
	if !errors.Is(err, iamd.ErrEC2CannotAssume) || c.RoleName != "app" || c.Session.AccessKeyID != "" {
		t.Fatalf("untrusting role: %+v, %v", c, err)
	}
	// Empty profile: no role to serve.
	if err := e.iam.UpdateAssumeRolePolicy(e.ctx, e.acct, "app", ec2Trust); err != nil {
		t.Fatal(err)
	}
	if err := e.iam.RemoveRoleFromInstanceProfile(e.ctx, e.acct, "app-profile", "app"); err != nil {
		t.Fatal(err)
	}
	if _, err := roles.Credentials(e.ctx, req); !errors.Is(err, iamd.ErrNoInstanceRole) {
		t.Fatalf("empty profile: %v", err)
	}
	// A profile ARN of another account is never honoured.
	req.AccountID = "999999999999"
	if _, err := roles.Credentials(e.ctx, req); !errors.Is(err, iamd.ErrNoInstanceRole) {
		t.Fatalf("foreign profile: %v", err)
	}
}

func TestEC2CanAssume(t *testing.T) {
	for _, tc := range []struct {
		name, doc string
		ok        bool
	}{
		{"ec2", ec2Trust, true},
		{"ec2 among others", `{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Principal":{"Service":["lambda.amazonaws.com","ec2.amazonaws.com"]},"Action":["sts:AssumeRole","sts:TagSession"]}]}`, true},
		{"account only", `{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Principal":{"AWS":"arn:aws:iam::123456789012:root"},"Action":"sts:AssumeRole"}]}`, false},
		{"denied", `{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Principal":{"Service":"ec2.amazonaws.com"},"Action":"sts:AssumeRole"},{"Effect":"Deny","Principal":"*","Action":"sts:AssumeRole"}]}`, false},
		{"other action", `{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Principal":{"Service":"ec2.amazonaws.com"},"Action":"sts:AssumeRoleWithWebIdentity"}]}`, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			err := iamd.EC2CanAssume(iamd.Role{RoleName: "r", ARN: "arn:aws:iam::123456789012:role/r", AssumeRolePolicyDocument: tc.doc})
			if (err == nil) != tc.ok {
				t.Fatalf("EC2CanAssume = %v, want ok=%v", err, tc.ok)
			}
		})
	}
}
