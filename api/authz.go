package api

import "context"

// Authorizer decides whether the authenticated principal of c may run
// c.Action. It returns an errdefs.ClassAccessDenied error to refuse.
//
// This is the IAM hook: every action passes through it after SigV4 and
// before the handler, so when the IAM engine lands it replaces the
// implementation here and nothing else changes.
type Authorizer interface {
	Authorize(ctx context.Context, c *Call) error
}

// AccountAdmin lets every authenticated principal do anything inside its
// own account: until IAM policies are evaluated, access keys are admin keys.
// Account isolation still holds because handlers only ever read and write
// the caller's account.
type AccountAdmin struct{}

// Authorize always allows.
func (AccountAdmin) Authorize(context.Context, *Call) error { return nil }
