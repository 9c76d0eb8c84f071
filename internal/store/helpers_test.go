package store_test

import (
	"context"
	"fmt"
	"sync/atomic"
	"testing"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/labcloud/labcloud/internal/store"
)

// storeCount makes every test Store's prefix unique within the test binary.
var storeCount atomic.Int64

// storeFactory returns a newStore for storetest.Run: each call gets an empty
// Store under a fresh prefix on the one server behind cli, so the suite's
// subtests can share a server and still not see each other's keys.
func storeFactory(cli *clientv3.Client) func(t *testing.T) *store.Store {
	return func(t *testing.T) *store.Store {
		return store.New(cli, fmt.Sprintf("/test/%d/%s", storeCount.Add(1), t.Name()))
	}
}

// dial connects to endpoints and closes the client when the test ends.
func dial(t *testing.T, endpoints []string) *clientv3.Client {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	cli, err := store.Dial(ctx, endpoints)
	if err != nil {
		t.Fatalf("Dial %v: %v", endpoints, err)
	}
	t.Cleanup(func() { cli.Close() })
	return cli
}
