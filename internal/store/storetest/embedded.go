package storetest

import (
	"context"
	"testing"
	"time"

	"github.com/labcloud/labcloud/internal/store"
	"github.com/labcloud/labcloud/internal/store/embedded"
)

// NewEmbedded starts an embedded etcd of the test's own (data in a temp
// dir, stopped in t.Cleanup) and returns a Store over it with the usual
// "/labcloud/" prefix: what domain packages' tests use to run against real
// etcd.
func NewEmbedded(t testing.TB) *store.Store {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
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
	return store.New(cli, "/labcloud/")
}
