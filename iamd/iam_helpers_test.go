package iamd_test

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/labcloud/labcloud/iamd"
	"github.com/labcloud/labcloud/internal/errdefs"
	"github.com/labcloud/labcloud/internal/store"
	"github.com/labcloud/labcloud/internal/store/embedded"
)

// iamEnv is an IAM service over a real embedded etcd with one account.
type iamEnv struct {
	st       *store.Store
	accounts *iamd.Accounts
	iam      *iamd.IAM
	acct     string
	ctx      context.Context
}

// newIAMEnv starts an embedded etcd for the test, creates an account and
// returns the IAM service over it.
func newIAMEnv(t *testing.T) *iamEnv {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	t.Cleanup(cancel)
	srv, err := embedded.Start(ctx, embedded.Config{DataDir: t.TempDir()})
	if err != nil {
		t.Fatalf("starting embedded etcd: %v", err)
	}
	t.Cleanup(func() {
		if err := srv.Close(); err != nil {
			t.Errorf("closing embedded etcd: %v", err)
		}
	})
	cli, err := store.Dial(ctx, srv.Endpoints())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cli.Close() })
	st := store.New(cli, "/labcloud/")
	accounts := iamd.NewAccounts(st)
	a, _, err := accounts.CreateAccount(ctx, "test")
	if err != nil {
		t.Fatal(err)
	}
	return &iamEnv{st: st, accounts: accounts, iam: iamd.NewIAM(st, accounts), acct: a.ID, ctx: ctx}
}

// newAccount creates another account in the same store.
func (e *iamEnv) newAccount(t *testing.T) string {
	t.Helper()
	a, _, err := e.accounts.CreateAccount(e.ctx, "other")
	if err != nil {
		t.Fatal(err)
	}
	return a.ID
}

// wantErr fails unless err is an errdefs.Error with the AWS code and a
// message containing every one of parts.
func wantErr(t *testing.T, what string, err error, code string, parts ...string) {
	t.Helper()
	var de *errdefs.Error
	if !errors.As(err, &de) {
		t.Fatalf("%s: got %v, want a %s error", what, err, code)
	}
	if de.Code != code {
		t.Fatalf("%s: code %q (%s), want %q", what, de.Code, de.Message, code)
	}
	for _, p := range parts {
		if !strings.Contains(de.Message, p) {
			t.Errorf("%s: message %q does not contain %q", what, de.Message, p)
		}
	}
}

// must fails the test on err.
func must(t *testing.T, what string, err error) {
	t.Helper()
	if err != nil {
		t.Fatalf("%s: %v", what, err)
	}
}

const (
	allowAll = `{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Action":"*","Resource":"*"}]}`
	allowEC2 = `{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Action":"ec2:Describe*","Resource":"*"}]}`
	trustEC2 = `{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Principal":{"Service":"ec2.amazonaws.com"},"Action":"sts:AssumeRole"}]}`
)
