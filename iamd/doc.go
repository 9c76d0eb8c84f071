// Package iamd is labcloud's identity layer: accounts, access keys and the
// principals they authenticate as. The IAM entities (users, groups, roles,
// policies), the policy evaluator and STS grow here; api/ only translates
// the AWS wire protocol into calls on this package.
//
// Store layout (relative to the etcd prefix):
//
//	accounts/<12-digit id>        Account
//	accesskeys/<AKIA…>            AccessKey (the secret lives only here)
//	bootstrap/admin               BootstrapRecord: the first account's id and key
package iamd
