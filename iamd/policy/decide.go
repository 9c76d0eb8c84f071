package policy

import (
	"strings"
)

// Decide follows the AWS policy evaluation logic
// (reference_policies_evaluation-logic, …_policy-eval-denyallow,
// …_policy-eval-basics and reference_policies_evaluation-logic-cross-account).
//
// An explicit Deny in any applicable policy — identity-based,
// resource-based, permissions boundary or session — ends evaluation with
// explicitDeny.
//
// Within one account the request is allowed when the identity side allows
// it (an identity-based Allow, and the boundary allows when there is one,
// and a session policy allows when there are session policies) or when a
// resource-based policy grants it directly. How far a resource-based grant
// reaches depends on whom the statement names:
//
//   - the account (12-digit id or root ARN): nothing by itself; it defers
//     to the identity side, as a trust policy naming an account does;
//   - an IAM user ARN: not limited by the user's permissions boundary
//     ("Within an account, an implicit deny in a permissions boundary does
//     not limit the permissions granted to an IAM user by a resource-based
//     policy"), but limited by session policies when there are any;
//   - an IAM role ARN: limited by the role's boundary and session policies;
//   - a role session ARN, "*", NotPrincipal, a service or a federated
//     principal: the grant is to the session itself and neither boundary
//     nor session policy limits it.
//
// A role trust policy (KindTrust) is the documented exception: it must
// allow in every case, so identity-side permission alone never lets anyone
// assume a role, and a trust policy naming only the account additionally
// needs the identity side.
//
// Across accounts (PrincipalAccount and ResourceAccount both set and
// different) the identity side and the resource-based policy must both
// allow; a grant to the account is enough on the resource side.
//
// Anything else is implicitDeny, with the first failing check as
// DenyReason.
//
// Decide knows nothing of the account root user, which AWS lets do
// anything in its account; iamd short-circuits root before calling it.
// Organizations SCPs and RCPs do not exist in labcloud.
func Decide(in Input) Decision {
	ev := evaluator{in: &in, action: strings.ToLower(in.Action)}
	if ev.in.Context == nil {
		ev.in.Context = NewContext()
	}

	ident := ev.evalSet(in.Identity, false)
	var res, bound, sess policyResult
	if in.Resource != nil {
		res = ev.eval(*in.Resource, true)
	}
	if in.Boundary != nil {
		bound = ev.eval(*in.Boundary, false)
	}
	if in.Session != nil {
		sess = ev.evalSet(in.Session, false)
	}

	d := Decision{MissingContextValues: ev.missing}
	// Explicit deny, reported in the order the enforcement-code page lists
	// the policy types: resource-based, identity-based, boundary, session.
	for _, c := range []struct {
		r      *policyResult
		reason string
	}{
		{&res, ReasonResourceDeny},
		{&ident, ReasonIdentityDeny},
		{&bound, ReasonBoundaryDeny},
		{&sess, ReasonSessionDeny},
	} {
		if len(c.r.deny) > 0 && d.DenyReason == "" {
			d.DenyReason = c.reason
		}
	}
	if d.DenyReason != "" {
		d.Effect = ExplicitDeny
		d.Matched = concat(res.deny, ident.deny, bound.deny, sess.deny)
		return d
	}

	boundaryOK := in.Boundary == nil || len(bound.allow) > 0
	sessionOK := in.Session == nil || len(sess.allow) > 0
	identityOK := len(ident.allow) > 0 && boundaryOK && sessionOK
	identityReason := ""
	switch {
	case len(ident.allow) == 0:
		identityReason = ReasonNoIdentityAllow
	case !boundaryOK:
		identityReason = ReasonNoBoundaryAllow
	case !sessionOK:
		identityReason = ReasonNoSessionAllow
	}

	resourceAny := len(res.allow) > 0
	resourceGrants := false
	for _, m := range res.allow {
		if ev.grantsDirectly(m.via, boundaryOK, sessionOK) {
			resourceGrants = true
			break
		}
	}
	crossAccount := in.PrincipalAccount != "" && in.ResourceAccount != "" && in.PrincipalAccount != in.ResourceAccount
	trust := in.Resource != nil && in.Resource.Policy != nil && in.Resource.Policy.Kind == KindTrust

	allowed := false
	switch {
	case crossAccount:
		allowed = identityOK && resourceAny
		if identityOK && !resourceAny {
			identityReason = ReasonNoResourceAllow
		}
	case trust:
		allowed = resourceAny && (resourceGrants || identityOK)
		if !resourceAny {
			identityReason = ReasonNoResourceAllow
		}
	default:
		allowed = identityOK || resourceGrants
	}
	d.Matched = concat(res.allow, ident.allow, bound.allow, sess.allow)
	if allowed {
		d.Effect = Allowed
		return d
	}
	d.Effect = ImplicitDeny
	d.DenyReason = identityReason
	if d.DenyReason == "" {
		// Identity side allowed but the path needed something else; only
		// the resource side is left.
		d.DenyReason = ReasonNoResourceAllow
	}
	return d
}

// Allowed reports whether the decision allows the request.
func (d Decision) Allowed() bool { return d.Effect == Allowed }

// via says how a resource-based statement matched the caller.
type via int

const (
	viaNone via = iota
	viaAccount
	viaRole
	viaUser
	viaSession // a session ARN, "*", NotPrincipal, a service or a federated principal
)

// grantsDirectly applies the same-account rules of step 2 above.
func (ev *evaluator) grantsDirectly(v via, boundaryOK, sessionOK bool) bool {
	switch v {
	case viaAccount, viaNone:
		return false
	case viaRole:
		return boundaryOK && sessionOK
	case viaUser:
		return sessionOK
	}
	return true
}

type matchVia struct {
	Match
	via via
}

type policyResult struct {
	allow, deny []matchVia
}

type evaluator struct {
	in      *Input
	action  string
	missing []string
	seen    map[string]bool
}

func (ev *evaluator) evalSet(set []NamedPolicy, resource bool) policyResult {
	var out policyResult
	for _, np := range set {
		r := ev.eval(np, resource)
		out.allow = append(out.allow, r.allow...)
		out.deny = append(out.deny, r.deny...)
	}
	return out
}

func (ev *evaluator) eval(np NamedPolicy, resource bool) policyResult {
	var out policyResult
	if np.Policy == nil {
		return out
	}
	for i := range np.Policy.Statements {
		s := &np.Policy.Statements[i]
		if !s.matchAction(ev.action) {
			continue
		}
		if !ev.matchResource(s) {
			continue
		}
		v := viaSession
		if resource {
			v = ev.matchPrincipal(s)
			if v == viaNone {
				continue
			}
		}
		if !ev.conditionsHold(s) {
			continue
		}
		m := matchVia{Match: Match{
			Source: np.Source, StatementIndex: s.Index, Sid: s.Sid, Effect: s.Effect,
			Start: s.Start, End: s.End, ViaAccount: resource && v == viaAccount,
		}, via: v}
		if s.Effect == "Deny" {
			out.deny = append(out.deny, m)
		} else {
			out.allow = append(out.allow, m)
		}
	}
	return out
}

func (s *Statement) matchAction(action string) bool {
	hit := false
	for _, p := range s.actions {
		if actionMatch(p, action) {
			hit = true
			break
		}
	}
	if s.NotAction != nil {
		return !hit
	}
	return hit
}

func (ev *evaluator) matchResource(s *Statement) bool {
	if s.Resource == nil && s.NotResource == nil {
		// Trust policies have no Resource: the resource is the role.
		return true
	}
	hit := false
	for _, rp := range s.resources {
		pat := rp.glob
		if rp.tmpl != nil {
			p, ok, missing := rp.tmpl.render(ev.in.Context, true)
			ev.noteMissing(missing)
			if !ok {
				// "If the variable has no value", the resource entry
				// matches nothing.
				continue
			}
			pat = p
		}
		if arnMatch(pat, ev.in.Request.Resource) {
			hit = true
			break
		}
	}
	if s.NotResource != nil {
		return !hit
	}
	return hit
}

// conditionsHold evaluates every condition, not stopping at the first
// false one, so that MissingContextValues lists every key the statement
// needed, as SimulatePrincipalPolicy does.
func (ev *evaluator) conditionsHold(s *Statement) bool {
	ok := true
	for i := range s.Conditions {
		r := s.Conditions[i].eval(ev.in.Context)
		for _, k := range r.missing {
			ev.noteMissing(k)
		}
		if !r.ok {
			ok = false
		}
	}
	return ok
}

func (ev *evaluator) noteMissing(key string) {
	if key == "" {
		return
	}
	l := strings.ToLower(key)
	if ev.seen == nil {
		ev.seen = map[string]bool{}
	}
	if ev.seen[l] {
		return
	}
	ev.seen[l] = true
	ev.missing = append(ev.missing, key)
}

// matchPrincipal decides whether a resource-based statement applies to the
// caller, and how.
func (ev *evaluator) matchPrincipal(s *Statement) via {
	p := &ev.in.Principal
	if s.NotPrincipal != nil {
		// AWS evaluates NotPrincipal against every identity the caller
		// has — its account, its role, its session — so a statement
		// applies unless all of them are listed. The boundaries page
		// adds: "The NotPrincipal element with a Deny effect will always
		// deny any IAM principal that has a permissions boundary policy
		// attached, regardless of the values specified".
		if s.Effect == "Deny" && ev.in.Boundary != nil {
			return viaSession
		}
		for _, id := range callerIdentities(p) {
			if !principalListed(s.NotPrincipal, id, p) {
				return viaSession
			}
		}
		return viaNone
	}
	best := viaNone
	better := func(v via) {
		if v > best {
			best = v
		}
	}
	for typ, vals := range s.Principal {
		for _, v := range vals {
			switch typ {
			case "*":
				better(viaSession)
			case "AWS":
				better(matchAWSPrincipal(v, p))
			case "Service":
				if p.Service != "" && (v == "*" || strings.EqualFold(v, p.Service)) {
					better(viaSession)
				}
			case "Federated":
				if p.Federated != "" && (v == "*" || v == p.Federated) {
					better(viaSession)
				}
			}
		}
	}
	return best
}

// callerAccount is the caller's account, from PrincipalInfo or its ARN.
func callerAccount(p *PrincipalInfo) string {
	if p.AccountID != "" {
		return p.AccountID
	}
	for _, a := range p.ARNs {
		if parts, ok := splitARN(a); ok && parts[4] != "" {
			return parts[4]
		}
	}
	return ""
}

// matchAWSPrincipal matches one "AWS" principal value. "123456789012" and
// "arn:aws:iam::123456789012:root" both name the account, that is every
// principal in it (reference_policies_elements_principal).
func matchAWSPrincipal(v string, p *PrincipalInfo) via {
	acct := callerAccount(p)
	if v == "*" {
		if acct != "" || len(p.ARNs) > 0 {
			return viaSession
		}
		return viaNone
	}
	if accountID.MatchString(v) {
		if v == acct {
			return viaAccount
		}
		return viaNone
	}
	if parts, ok := splitARN(v); ok && parts[2] == "iam" && parts[5] == "root" {
		if parts[4] == acct {
			return viaAccount
		}
		return viaNone
	}
	for _, a := range p.ARNs {
		if a == v {
			return arnVia(v)
		}
	}
	return viaNone
}

func arnVia(a string) via {
	parts, _ := splitARN(a)
	switch {
	case parts[2] == "iam" && strings.HasPrefix(parts[5], "user/"):
		return viaUser
	case parts[2] == "iam" && strings.HasPrefix(parts[5], "role/"):
		return viaRole
	}
	return viaSession
}

// callerIdentities lists every name the caller answers to, for
// NotPrincipal.
func callerIdentities(p *PrincipalInfo) []string {
	var ids []string
	if acct := callerAccount(p); acct != "" {
		ids = append(ids, "account:"+acct)
	}
	for _, a := range p.ARNs {
		ids = append(ids, "arn:"+a)
	}
	if p.Service != "" {
		ids = append(ids, "service:"+p.Service)
	}
	if p.Federated != "" {
		ids = append(ids, "federated:"+p.Federated)
	}
	return ids
}

// principalListed reports whether one caller identity is named in a
// NotPrincipal element.
func principalListed(np map[string][]string, id string, p *PrincipalInfo) bool {
	kind, name, _ := strings.Cut(id, ":")
	for typ, vals := range np {
		for _, v := range vals {
			if typ == "*" || v == "*" {
				return true
			}
			switch {
			case typ == "AWS" && kind == "account":
				if v == name {
					return true
				}
				if parts, ok := splitARN(v); ok && parts[2] == "iam" && parts[5] == "root" && parts[4] == name {
					return true
				}
			case typ == "AWS" && kind == "arn":
				if v == name {
					return true
				}
			case typ == "Service" && kind == "service":
				if strings.EqualFold(v, name) {
					return true
				}
			case typ == "Federated" && kind == "federated":
				if v == name {
					return true
				}
			}
		}
	}
	return false
}

func concat(lists ...[]matchVia) []Match {
	var out []Match
	for _, l := range lists {
		for _, m := range l {
			out = append(out, m.Match)
		}
	}
	return out
}
