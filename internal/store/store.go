package store

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"
	"go.uber.org/zap"
)

// Sentinel errors. Store methods wrap them with the key concerned
// ("accounts/123: not found"); test for them with errors.Is.
var (
	// ErrNotFound means the key does not exist.
	ErrNotFound = errors.New("not found")
	// ErrExists means a create found the key already present.
	ErrExists = errors.New("already exists")
	// ErrConflict means the key changed (or vanished) after the caller
	// read the revision it passed in. Read again and retry, or use Update.
	ErrConflict = errors.New("changed by someone else since it was read")
	// ErrCompacted ends a Watch whose start revision is older than the
	// history etcd still keeps. List again and watch from the revision the
	// list returns.
	ErrCompacted = errors.New("revision history compacted")
)

// Timeouts for Dial. The probe checks that the cluster has a leader and a
// quorum, so a wrong endpoint or a dead cluster is reported at startup, not
// at the first request.
const (
	dialTimeout      = 5 * time.Second
	keepAliveTime    = 30 * time.Second
	keepAliveTimeout = 10 * time.Second
)

// listPageSize bounds one etcd response of ListRev; far below etcd's
// message size limits even for large objects, large enough that a lab's
// folders come back in one page.
const listPageSize int64 = 500

// Dial connects to etcd and checks that it answers a linearizable read
// within a few seconds. endpoints may be unix:///abs/path sockets (as the
// embedded server gives), http://host:port URLs or plain host:port. ctx
// bounds only the connection check; the client lives until its Close.
//
// The client's own logger is discarded: every failure it would log is also
// returned to the caller of the failing request, where it has context.
func Dial(ctx context.Context, endpoints []string) (*clientv3.Client, error) {
	if len(endpoints) == 0 {
		return nil, errors.New("connecting to etcd: no endpoints given; use the embedded etcd or pass --etcd-endpoints")
	}
	cli, err := clientv3.New(clientv3.Config{
		Endpoints:   endpoints,
		DialTimeout: dialTimeout,
		// Keepalives let a watch notice a dead connection and move to
		// another endpoint instead of waiting forever for events.
		DialKeepAliveTime:    keepAliveTime,
		DialKeepAliveTimeout: keepAliveTimeout,
		Logger:               zap.NewNop(),
	})
	if err != nil {
		return nil, fmt.Errorf("connecting to etcd at %s: %w", strings.Join(endpoints, ","), err)
	}
	pctx, cancel := context.WithTimeout(ctx, dialTimeout)
	defer cancel()
	if _, err := cli.Get(pctx, "health", clientv3.WithCountOnly()); err != nil {
		cli.Close()
		return nil, fmt.Errorf("connecting to etcd at %s: no answer (%w); check that etcd is running and the endpoints are right", strings.Join(endpoints, ","), err)
	}
	return cli, nil
}

// Store reads and writes JSON objects under one key prefix of an etcd
// cluster. It is safe for concurrent use; it holds no state besides the
// client, so any number of Stores may share one client.
type Store struct {
	cli    *clientv3.Client
	prefix string
}

// New returns a Store over cli whose keys all live under prefix. A prefix
// without a trailing "/" gets one, so that "/labcloud" never reads
// "/labcloud2/...". The Store does not own cli: close it yourself.
func New(cli *clientv3.Client, prefix string) *Store {
	if prefix != "" && !strings.HasSuffix(prefix, "/") {
		prefix += "/"
	}
	return &Store{cli: cli, prefix: prefix}
}

// KV is one stored object, still encoded.
type KV struct {
	// Key is relative to the Store's prefix.
	Key string
	// Value is the object's JSON; nil in a delete Event.
	Value []byte
	// ModRevision is the revision of the object's last write (for a delete
	// Event, of the delete).
	ModRevision int64
}

// Decode unmarshals the value into v, naming the key if it cannot.
func (kv KV) Decode(v any) error {
	if err := json.Unmarshal(kv.Value, v); err != nil {
		return fmt.Errorf("decoding %s: %w", kv.Key, err)
	}
	return nil
}

// full returns the etcd key for a key relative to the prefix, refusing the
// empty key, which would name the prefix itself.
func (s *Store) full(key string) (string, error) {
	if key == "" {
		return "", errors.New("store: empty key")
	}
	return s.prefix + key, nil
}

// rel strips the prefix from an etcd key.
func (s *Store) rel(k []byte) string {
	return strings.TrimPrefix(string(k), s.prefix)
}

func encode(key string, v any) (string, error) {
	b, err := json.Marshal(v)
	if err != nil {
		return "", fmt.Errorf("encoding %s: %w", key, err)
	}
	return string(b), nil
}

// Get decodes the object at key into v and returns its mod revision. v may
// be nil to learn only whether the key exists and its revision.
func (s *Store) Get(ctx context.Context, key string, v any) (rev int64, err error) {
	k, err := s.full(key)
	if err != nil {
		return 0, err
	}
	resp, err := s.cli.Get(ctx, k)
	if err != nil {
		return 0, fmt.Errorf("reading %s: %w", key, err)
	}
	if len(resp.Kvs) == 0 {
		return 0, fmt.Errorf("%s: %w", key, ErrNotFound)
	}
	kv := resp.Kvs[0]
	if v != nil {
		if err := json.Unmarshal(kv.Value, v); err != nil {
			return 0, fmt.Errorf("decoding %s: %w", key, err)
		}
	}
	return kv.ModRevision, nil
}

// Create stores v at key only if the key is absent, else returns
// ErrExists. It returns the new object's mod revision.
func (s *Store) Create(ctx context.Context, key string, v any) (rev int64, err error) {
	return s.Txn(ctx, OpCreate(key, v))
}

// Put stores v at key whatever is there. Use it only for objects that have
// a single writer; everything else wants CompareAndSwap or Update.
func (s *Store) Put(ctx context.Context, key string, v any) (rev int64, err error) {
	k, err := s.full(key)
	if err != nil {
		return 0, err
	}
	val, err := encode(key, v)
	if err != nil {
		return 0, err
	}
	resp, err := s.cli.Put(ctx, k, val)
	if err != nil {
		return 0, fmt.Errorf("writing %s: %w", key, err)
	}
	return resp.Header.Revision, nil
}

// CompareAndSwap stores v at key only if the key's mod revision is still
// modRev, else returns ErrConflict (also when the key has been deleted).
// modRev 0 means "only if absent". It returns the new mod revision.
func (s *Store) CompareAndSwap(ctx context.Context, key string, v any, modRev int64) (int64, error) {
	return s.Txn(ctx, OpCompareAndSwap(key, v, modRev))
}

// Delete removes key, or returns ErrNotFound if it is absent.
func (s *Store) Delete(ctx context.Context, key string) error {
	_, err := s.Txn(ctx, OpDelete(key))
	return err
}

// DeleteIf removes key only if its mod revision is still modRev, else
// returns ErrConflict, so that a delete decided on stale data does not
// remove an object someone has since changed.
func (s *Store) DeleteIf(ctx context.Context, key string, modRev int64) error {
	_, err := s.Txn(ctx, OpDeleteIf(key, modRev))
	return err
}

// List returns every object whose key starts with prefix, sorted by key.
// End the prefix with "/" (see the package doc).
func (s *Store) List(ctx context.Context, prefix string) ([]KV, error) {
	kvs, _, err := s.ListRev(ctx, prefix)
	return kvs, err
}

// ListRev is List that also returns the revision the listing reflects. A
// controller lists, then calls Watch(ctx, prefix, rev+1) and so misses no
// change in between and sees none twice.
//
// Large folders are read in pages, all at the same revision, so the result
// is one consistent snapshot without one huge etcd response.
func (s *Store) ListRev(ctx context.Context, prefix string) ([]KV, int64, error) {
	from, end := s.prefixRange(prefix)
	var (
		out []KV
		rev int64
	)
	for {
		opts := []clientv3.OpOption{clientv3.WithRange(end), clientv3.WithLimit(listPageSize)}
		if rev != 0 {
			opts = append(opts, clientv3.WithRev(rev))
		}
		resp, err := s.cli.Get(ctx, from, opts...)
		if err != nil {
			return nil, 0, fmt.Errorf("listing %s: %w", prefix, err)
		}
		if rev == 0 {
			rev = resp.Header.Revision
		}
		for _, kv := range resp.Kvs {
			out = append(out, KV{Key: s.rel(kv.Key), Value: kv.Value, ModRevision: kv.ModRevision})
		}
		// etcd returns keys in byte order, so the next page starts just
		// after the last key of this one.
		if !resp.More || len(resp.Kvs) == 0 {
			return out, rev, nil
		}
		from = string(resp.Kvs[len(resp.Kvs)-1].Key) + "\x00"
	}
}

// prefixRange returns the etcd key range [from, end) that holds every key
// starting with prefix under the Store's prefix.
func (s *Store) prefixRange(prefix string) (from, end string) {
	p := s.prefix + prefix
	if p == "" {
		// The whole keyspace: etcd spells it ["\x00", "\x00").
		return "\x00", "\x00"
	}
	return p, clientv3.GetPrefixRangeEnd(p)
}
