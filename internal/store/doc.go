// Package store keeps labcloud's objects in etcd as JSON, with the
// optimistic concurrency etcd offers: every write that depends on what was
// read states the mod revision it read, and fails with ErrConflict if the
// object changed since. Nothing is ever lost to a concurrent writer.
//
// The same Store works on the embedded single-member etcd (package
// embedded) and on an external cluster: Dial takes the endpoints either way.
//
// # Key layout
//
// A Store owns every key under its prefix (normally "/labcloud/"); callers
// pass keys relative to it and never see the prefix. Below it there is one
// folder per kind, named in the plural, lower case, with the object's
// identity after it:
//
//	accounts/<account-id>
//	accesskeys/<access-key-id>
//	regions/<region-name>
//	instances/<instance-id>
//
// One folder per kind means "all objects of a kind" is one List or Watch
// on "<kind>/", and a controller's watch on one kind is never woken by
// another's writes. Prefixes always end in "/": "a/" does not match "ab/x",
// but "a" would.
//
// Objects that belong to an account and are listed per account put the
// account in the key (e.g. vpcs/<account-id>/<vpc-id>), so that listing one
// account's objects is a prefix read, not a scan. Lookups by another
// attribute (an access key by its ID, an instance by its private IP) get
// their own folder whose entry names the object, written in the same Txn as
// the object, so the index is never out of step with it.
//
// # Revisions
//
// Every write returns etcd's revision of that write, which is the object's
// new mod revision: pass it to CompareAndSwap or DeleteIf to change the
// object only if nobody else has, or to Watch (plus one) to see only what
// happened after it. Revisions are global to the etcd cluster and only
// grow. Update wraps the read-modify-write loop for the common case.
package store
