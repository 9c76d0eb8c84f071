package api

import "context"

func (s *Server) registerSTS() {
	s.handle(ServiceSTS, "GetCallerIdentity", queryOp(s.getCallerIdentity))
}

// GetCallerIdentityInput is the STS GetCallerIdentity request (no members).
type GetCallerIdentityInput struct{}

// GetCallerIdentityOutput says who signed the request.
type GetCallerIdentityOutput struct {
	UserID  string `locationName:"UserId"`
	Account string
	Arn     string
}

func (s *Server) getCallerIdentity(_ context.Context, c *Call, _ *GetCallerIdentityInput) (*GetCallerIdentityOutput, error) {
	p := c.Principal
	return &GetCallerIdentityOutput{UserID: p.UserID, Account: p.AccountID, Arn: p.ARN}, nil
}
