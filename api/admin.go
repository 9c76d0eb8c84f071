package api

import (
	"context"
	"regexp"
)

// The labcloud admin API: actions AWS has no equivalent for (AWS creates
// accounts through Organizations and its web console). It is signed with
// SigV4 for service "labcloud" and only the root user of the admin account
// may call it.
const (
	AdminVersion   = "2026-11-01"
	AdminNamespace = "https://labcloud.dev/doc/2026-11-01/"
)

func (s *Server) registerAdmin() {
	s.handle(ServiceLabcloud, "CreateAccount", queryOp(s.createAccount))
	s.handle(ServiceLabcloud, "SetOpenIDConnectProviderKeys", queryOp(s.setOIDCProviderKeys))
}

// CreateAccountInput is the admin CreateAccount request.
type CreateAccountInput struct {
	AccountName string `required:"true"`
}

// CreateAccountOutput is the new account with its root access key.
type CreateAccountOutput struct {
	AccountID       string `locationName:"AccountId"`
	AccountName     string
	AccessKeyID     string `locationName:"AccessKeyId"`
	SecretAccessKey string
}

var accountNameRe = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9._-]{0,49}$`)

func (s *Server) createAccount(ctx context.Context, _ *Call, in *CreateAccountInput) (*CreateAccountOutput, error) {
	if !accountNameRe.MatchString(in.AccountName) {
		return nil, validationError("accountName", in.AccountName, "Member must be 1-50 letters, digits, '.', '_' or '-', starting with a letter or digit")
	}
	a, k, err := s.opts.Accounts.CreateAccount(ctx, in.AccountName)
	if err != nil {
		return nil, err
	}
	return &CreateAccountOutput{AccountID: a.ID, AccountName: a.Name, AccessKeyID: k.AccessKeyID, SecretAccessKey: k.SecretAccessKey}, nil
}
