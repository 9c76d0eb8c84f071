package api

import (
	"context"
	"strconv"
	"strings"

	"github.com/labcloud/labcloud/iamd/policy"
	"github.com/labcloud/labcloud/internal/errdefs"
)

func (s *Server) registerSimulate() {
	s.handle(ServiceIAM, "SimulatePrincipalPolicy", queryOp(s.simulatePrincipalPolicy))
	s.handle(ServiceIAM, "SimulateCustomPolicy", queryOp(s.simulateCustomPolicy))
}

// ContextEntry is a condition key value supplied to the policy simulator.
type ContextEntry struct {
	ContextKeyName   string
	ContextKeyValues []string
	ContextKeyType   string
}

// SimulatePrincipalPolicyInput is the IAM SimulatePrincipalPolicy request.
type SimulatePrincipalPolicyInput struct {
	PolicySourceArn                    string `required:"true"`
	PolicyInputList                    []string
	PermissionsBoundaryPolicyInputList []string
	ActionNames                        []string `required:"true"`
	ResourceArns                       []string
	ResourcePolicy                     *string
	ResourceOwner                      *string
	CallerArn                          *string
	ContextEntries                     []ContextEntry
	ResourceHandlingOption             *string
	MaxItems                           *int32
	Marker                             *string
}

// SimulateCustomPolicyInput is the IAM SimulateCustomPolicy request.
type SimulateCustomPolicyInput struct {
	PolicyInputList                    []string `required:"true"`
	PermissionsBoundaryPolicyInputList []string
	ActionNames                        []string `required:"true"`
	ResourceArns                       []string
	ResourcePolicy                     *string
	ResourceOwner                      *string
	CallerArn                          *string
	ContextEntries                     []ContextEntry
	ResourceHandlingOption             *string
	MaxItems                           *int32
	Marker                             *string
}

// Position is a place in a policy document.
type Position struct {
	Line   int32
	Column int32
}

// MatchedStatement is a statement that decided (part of) a simulation.
type MatchedStatement struct {
	SourcePolicyID   string `locationName:"SourcePolicyId"`
	SourcePolicyType string
	StartPosition    *Position
	EndPosition      *Position
}

// PermissionsBoundaryDecisionDetail says whether the boundary allowed.
type PermissionsBoundaryDecisionDetail struct {
	AllowedByPermissionsBoundary bool
}

// EvaluationResult is the simulator's answer for one action and resource.
type EvaluationResult struct {
	EvalActionName                    string
	EvalResourceName                  string
	EvalDecision                      string
	MatchedStatements                 []MatchedStatement
	MissingContextValues              []string
	PermissionsBoundaryDecisionDetail *PermissionsBoundaryDecisionDetail
}

// SimulatePolicyOutput is the response of both simulate actions.
type SimulatePolicyOutput struct {
	EvaluationResults []EvaluationResult
	IsTruncated       bool
}

// simulation is what both simulate actions evaluate.
type simulation struct {
	account   string
	principal policy.PrincipalInfo
	identity  []policy.NamedPolicy
	boundary  *policy.NamedPolicy
	context   *policy.Context
}

func (s *Server) simulatePrincipalPolicy(ctx context.Context, c *Call, in *SimulatePrincipalPolicyInput) (*SimulatePolicyOutput, error) {
	sim := &simulation{account: c.Principal.AccountID, context: policy.NewContext()}
	arn := in.PolicySourceArn
	parts := strings.SplitN(arn, ":", 6)
	if len(parts) != 6 || parts[2] != "iam" || parts[4] != c.Principal.AccountID {
		return nil, errdefs.InvalidParameter("InvalidInput",
			"PolicySourceArn %q must be the ARN of a user, group or role of your account %s", arn, c.Principal.AccountID)
	}
	res := parts[5]
	name := res[strings.LastIndex(res, "/")+1:]
	sim.principal = policy.PrincipalInfo{AccountID: sim.account, ARNs: []string{arn}}
	switch {
	case strings.HasPrefix(res, "user/"):
		pp, err := s.opts.IAM.UserPolicies(ctx, sim.account, name)
		if err != nil {
			return nil, err
		}
		sim.identity, sim.boundary = pp.Identity, pp.Boundary
		sim.context.Set("aws:username", name)
		sim.context.Set("aws:userid", pp.ID)
		sim.context.Set("aws:PrincipalType", "User")
		for k, v := range pp.Tags {
			sim.context.Set("aws:PrincipalTag/"+k, v)
		}
	case strings.HasPrefix(res, "role/"):
		pp, err := s.opts.IAM.RolePolicies(ctx, sim.account, name)
		if err != nil {
			return nil, err
		}
		sim.identity, sim.boundary = pp.Identity, pp.Boundary
		sim.context.Set("aws:userid", pp.ID)
		sim.context.Set("aws:PrincipalType", "AssumedRole")
		for k, v := range pp.Tags {
			sim.context.Set("aws:PrincipalTag/"+k, v)
		}
	case strings.HasPrefix(res, "group/"):
		pp, err := s.opts.IAM.GroupPolicies(ctx, sim.account, name)
		if err != nil {
			return nil, err
		}
		sim.identity = pp.Identity
	default:
		return nil, errdefs.InvalidParameter("InvalidInput",
			"PolicySourceArn %q must name a user, group or role (arn:aws:iam::ACCOUNT:user/NAME)", arn)
	}
	sim.context.Set("aws:PrincipalArn", arn)
	sim.context.Set("aws:PrincipalAccount", sim.account)
	extra, err := parseInputPolicies(in.PolicyInputList, policy.KindIdentity, "PolicyInputList")
	if err != nil {
		return nil, err
	}
	sim.identity = append(sim.identity, extra...)
	if len(in.PermissionsBoundaryPolicyInputList) > 0 {
		b, err := parseInputPolicies(in.PermissionsBoundaryPolicyInputList, policy.KindBoundary, "PermissionsBoundaryPolicyInputList")
		if err != nil {
			return nil, err
		}
		sim.boundary = &b[0]
	}
	return sim.run(in.ActionNames, in.ResourceArns, in.ResourcePolicy, in.ContextEntries)
}

func (s *Server) simulateCustomPolicy(_ context.Context, c *Call, in *SimulateCustomPolicyInput) (*SimulatePolicyOutput, error) {
	sim := &simulation{account: c.Principal.AccountID, context: policy.NewContext()}
	caller := c.Principal.ARN
	if in.CallerArn != nil {
		caller = *in.CallerArn
	}
	sim.principal = policy.PrincipalInfo{AccountID: sim.account, ARNs: []string{caller}}
	var err error
	if sim.identity, err = parseInputPolicies(in.PolicyInputList, policy.KindIdentity, "PolicyInputList"); err != nil {
		return nil, err
	}
	if len(in.PermissionsBoundaryPolicyInputList) > 0 {
		b, err := parseInputPolicies(in.PermissionsBoundaryPolicyInputList, policy.KindBoundary, "PermissionsBoundaryPolicyInputList")
		if err != nil {
			return nil, err
		}
		sim.boundary = &b[0]
	}
	return sim.run(in.ActionNames, in.ResourceArns, in.ResourcePolicy, in.ContextEntries)
}

func parseInputPolicies(docs []string, kind policy.Kind, member string) ([]policy.NamedPolicy, error) {
	var out []policy.NamedPolicy
	for i, d := range docs {
		p, err := policy.Parse(d, kind)
		if err != nil {
			return nil, errdefs.InvalidParameter("InvalidInput", "%s.member.%d is not a valid policy: %v", member, i+1, err)
		}
		id := "PolicyInputList." + strconv.Itoa(i+1)
		if kind == policy.KindBoundary {
			id = "PermissionsBoundaryPolicyInputList." + strconv.Itoa(i+1)
		}
		out = append(out, policy.NamedPolicy{Source: policy.Source{Type: policy.SourceIAMPolicy, ID: id, Name: id}, Policy: p})
	}
	return out, nil
}

func (sim *simulation) run(actions, resources []string, resourcePolicy *string, entries []ContextEntry) (*SimulatePolicyOutput, error) {
	for _, e := range entries {
		sim.context.Set(e.ContextKeyName, e.ContextKeyValues...)
	}
	var rp *policy.NamedPolicy
	if resourcePolicy != nil {
		p, err := policy.Parse(*resourcePolicy, policy.KindResource)
		if err != nil {
			return nil, errdefs.InvalidParameter("InvalidInput", "ResourcePolicy is not a valid resource-based policy: %v", err)
		}
		rp = &policy.NamedPolicy{Source: policy.Source{Type: policy.SourceResourcePolicy, ID: "ResourcePolicy", Name: "ResourcePolicy"}, Policy: p}
	}
	if len(resources) == 0 {
		resources = []string{"*"}
	}
	out := &SimulatePolicyOutput{EvaluationResults: []EvaluationResult{}}
	for _, action := range actions {
		for _, res := range resources {
			d := policy.Decide(policy.Input{
				Request:          policy.Request{Action: action, Resource: res, Principal: sim.principal, Context: sim.context},
				PrincipalAccount: sim.account,
				ResourceAccount:  arnAccount(res, sim.account),
				Identity:         sim.identity,
				Resource:         rp,
				Boundary:         sim.boundary,
			})
			r := EvaluationResult{EvalActionName: action, EvalResourceName: res, EvalDecision: d.Effect,
				MatchedStatements: []MatchedStatement{}, MissingContextValues: append([]string{}, d.MissingContextValues...)}
			for _, m := range d.Matched {
				r.MatchedStatements = append(r.MatchedStatements, MatchedStatement{
					SourcePolicyID:   sourcePolicyID(m.Source),
					SourcePolicyType: sourcePolicyType(m.Source),
					StartPosition:    &Position{Line: int32(m.Start.Line), Column: int32(m.Start.Column)},
					EndPosition:      &Position{Line: int32(m.End.Line), Column: int32(m.End.Column)},
				})
			}
			if sim.boundary != nil {
				allowed := d.DenyReason != policy.ReasonNoBoundaryAllow && d.DenyReason != policy.ReasonBoundaryDeny
				r.PermissionsBoundaryDecisionDetail = &PermissionsBoundaryDecisionDetail{AllowedByPermissionsBoundary: allowed}
			}
			out.EvaluationResults = append(out.EvaluationResults, r)
		}
	}
	return out, nil
}

// sourcePolicyID is how the simulator names a policy: the name of an
// inline or managed policy, or the input list position.
func sourcePolicyID(src policy.Source) string {
	if src.Name != "" {
		return src.Name
	}
	return src.ID
}

// sourcePolicyType maps a policy's origin to the simulator's
// PolicySourceType values.
func sourcePolicyType(src policy.Source) string {
	switch {
	case src.Type == policy.SourceResourcePolicy:
		return "resource"
	case strings.HasPrefix(src.ID, "arn:aws:iam::aws:policy"):
		return "aws-managed"
	case strings.HasPrefix(src.ID, "arn:aws:iam::"):
		return "user-managed"
	case strings.HasPrefix(src.ID, "user/"):
		return "user"
	case strings.HasPrefix(src.ID, "group/"):
		return "group"
	case strings.HasPrefix(src.ID, "role/"):
		return "role"
	}
	return "none"
}
