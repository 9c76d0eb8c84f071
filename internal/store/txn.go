package store

import (
	"context"
	"errors"
	"fmt"

	"go.etcd.io/etcd/api/v3/mvccpb"
	clientv3 "go.etcd.io/etcd/client/v3"
)

// Op is one write in a Txn. Build it with OpCreate, OpPut,
// OpCompareAndSwap, OpDelete or OpDeleteIf; each has the same condition as
// the Store method of the same name.
type Op struct {
	kind   opKind
	key    string
	value  any
	modRev int64
}

type opKind int

const (
	opCreate opKind = iota + 1
	opPut
	opCAS
	opDelete
	opDeleteIf
)

// OpCreate writes v at key if the key is absent; otherwise the Txn fails
// with ErrExists.
func OpCreate(key string, v any) Op { return Op{kind: opCreate, key: key, value: v} }

// OpPut writes v at key unconditionally.
func OpPut(key string, v any) Op { return Op{kind: opPut, key: key, value: v} }

// OpCompareAndSwap writes v at key if its mod revision is still modRev (0:
// if absent); otherwise the Txn fails with ErrConflict.
func OpCompareAndSwap(key string, v any, modRev int64) Op {
	return Op{kind: opCAS, key: key, value: v, modRev: modRev}
}

// OpDelete removes key if it exists; otherwise the Txn fails with
// ErrNotFound.
func OpDelete(key string) Op { return Op{kind: opDelete, key: key} }

// OpDeleteIf removes key if its mod revision is still modRev; otherwise the
// Txn fails with ErrConflict.
func OpDeleteIf(key string, modRev int64) Op { return Op{kind: opDeleteIf, key: key, modRev: modRev} }

// Txn applies all ops atomically: either every condition holds and every
// write happens at one revision, which it returns, or nothing is written
// and the error names the first op whose condition failed (ErrExists,
// ErrConflict or ErrNotFound, as for the single-key methods). This is how
// an object and its index entry, or an account and its first access key,
// come into existence together.
//
// A key may appear only once, and etcd caps a transaction at 128 ops by
// default.
func (s *Store) Txn(ctx context.Context, ops ...Op) (int64, error) {
	if len(ops) == 0 {
		return 0, errors.New("store: empty transaction")
	}
	var (
		cmps  []clientv3.Cmp
		thens []clientv3.Op
		// elses reads back every key that has a condition, so that a
		// failed transaction can say which condition failed, as of the
		// same revision it failed at.
		elses   []clientv3.Op
		checked []Op
		seen    = make(map[string]bool, len(ops))
	)
	for _, op := range ops {
		k, err := s.full(op.key)
		if err != nil {
			return 0, err
		}
		if seen[k] {
			return 0, fmt.Errorf("store: key %s appears twice in one transaction", op.key)
		}
		seen[k] = true

		switch op.kind {
		case opCreate:
			cmps = append(cmps, clientv3.Compare(clientv3.CreateRevision(k), "=", 0))
		case opCAS, opDeleteIf:
			cmps = append(cmps, clientv3.Compare(clientv3.ModRevision(k), "=", op.modRev))
		case opDelete:
			cmps = append(cmps, clientv3.Compare(clientv3.CreateRevision(k), ">", 0))
		case opPut:
		default:
			return 0, fmt.Errorf("store: invalid op for %s (use the Op constructors)", op.key)
		}
		if op.kind != opPut {
			elses = append(elses, clientv3.OpGet(k, clientv3.WithKeysOnly()))
			checked = append(checked, op)
		}

		switch op.kind {
		case opCreate, opPut, opCAS:
			val, err := encode(op.key, op.value)
			if err != nil {
				return 0, err
			}
			thens = append(thens, clientv3.OpPut(k, val))
		case opDelete, opDeleteIf:
			thens = append(thens, clientv3.OpDelete(k))
		}
	}

	resp, err := s.cli.Txn(ctx).If(cmps...).Then(thens...).Else(elses...).Commit()
	if err != nil {
		if len(ops) == 1 {
			return 0, fmt.Errorf("writing %s: %w", ops[0].key, err)
		}
		return 0, fmt.Errorf("writing %s and %d more: %w", ops[0].key, len(ops)-1, err)
	}
	if resp.Succeeded {
		// A delete conditioned on a revision of 0 "succeeds" on an absent
		// key without deleting anything; report that as the caller's
		// mistake it is.
		for i, op := range ops {
			if op.kind == opDeleteIf && op.modRev == 0 && resp.Responses[i].GetResponseDeleteRange().Deleted == 0 {
				return 0, fmt.Errorf("%s: %w", op.key, ErrNotFound)
			}
		}
		return resp.Header.Revision, nil
	}
	for i, op := range checked {
		kvs := resp.Responses[i].GetResponseRange().Kvs
		switch {
		case op.kind == opCreate && len(kvs) > 0:
			return 0, fmt.Errorf("%s: %w", op.key, ErrExists)
		case op.kind == opDelete && len(kvs) == 0:
			return 0, fmt.Errorf("%s: %w", op.key, ErrNotFound)
		case (op.kind == opCAS || op.kind == opDeleteIf) && !modRevIs(kvs, op.modRev):
			return 0, fmt.Errorf("%s: %w", op.key, ErrConflict)
		}
	}
	// Unreachable while etcd is consistent: some compare failed, yet the
	// read-back at the same revision satisfies them all.
	return 0, fmt.Errorf("%s: %w", ops[0].key, ErrConflict)
}

// modRevIs tells whether a read-back key (or its absence) has mod revision
// rev, absence counting as 0, as in etcd's compare.
func modRevIs(kvs []*mvccpb.KeyValue, rev int64) bool {
	if len(kvs) == 0 {
		return rev == 0
	}
	return kvs[0].ModRevision == rev
}
