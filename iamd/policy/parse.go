package policy

import (
	"fmt"
	"regexp"
	"strings"
)

// Policy language versions (reference_policies_elements_version).
const (
	Version2012 = "2012-10-17"
	Version2008 = "2008-10-17"
)

// trustActions are the actions a role trust policy may allow: the ways to
// assume a role and the session extras that ride along with it.
var trustActions = []string{
	"sts:assumerole",
	"sts:assumerolewithwebidentity",
	"sts:assumerolewithsaml",
	"sts:tagsession",
	"sts:setsourceidentity",
	"sts:setcontext",
}

var (
	sidPattern    = regexp.MustCompile(`^[A-Za-z0-9]*$`)
	actionPattern = regexp.MustCompile(`^[A-Za-z0-9-]+:[A-Za-z0-9_*?-]+$`)
	accountID     = regexp.MustCompile(`^[0-9]{12}$`)
	// principalARN is an IAM or STS identity: the account root, a user, a
	// role, a role session or a federated user. Principal takes no
	// wildcards inside an ARN.
	principalARN = regexp.MustCompile(`^arn:[a-z-]+:(iam::([0-9]{12}|[a-z-]+):(root|user/[^*?]+|role/[^*?]+)|sts::[0-9]{12}:(assumed-role/[^/*?]+/[^*?]+|federated-user/[^*?]+))$`)
)

var topElements = []string{"Version", "Id", "Statement"}
var statementElements = []string{"Sid", "Effect", "Principal", "NotPrincipal", "Action", "NotAction", "Resource", "NotResource", "Condition"}
var principalTypes = []string{"AWS", "Service", "Federated", "CanonicalUser"}

// parser carries the document and where we are in it, so that every error
// names the statement and element it is about.
type parser struct {
	doc       string
	kind      Kind
	variables bool
}

func (ps *parser) errorf(at *node, format string, args ...any) *MalformedError {
	e := &MalformedError{Message: fmt.Sprintf(format, args...)}
	if at != nil {
		pos := position(ps.doc, at.start)
		e.Line, e.Column = pos.Line, pos.Column
	}
	return e
}

// Parse validates doc as a policy of the given kind and returns it parsed,
// or a *MalformedError naming what is wrong and where. iamd calls it on
// every write (CreatePolicy, PutUserPolicy, CreateRole, UpdateAssumeRolePolicy,
// AssumeRole's Policy parameter) so that a stored document always parses.
func Parse(doc string, kind Kind) (*Policy, error) {
	p, err := parse(doc, kind)
	if err != nil {
		return nil, err
	}
	return p, nil
}

func parse(doc string, kind Kind) (*Policy, *MalformedError) {
	if kind < KindIdentity || kind > KindSession {
		return nil, &MalformedError{Message: fmt.Sprintf("unknown policy kind %d", int(kind))}
	}
	ps := &parser{doc: doc, kind: kind}
	if strings.TrimSpace(doc) == "" {
		return nil, &MalformedError{Message: "policy document is empty"}
	}
	root, jerr := readTree(doc)
	if jerr != nil {
		pos := position(doc, jerr.offset)
		return nil, &MalformedError{
			Message: fmt.Sprintf("policy document is not valid JSON: %s at line %d, column %d", jerr.msg, pos.Line, pos.Column),
			Line:    pos.Line, Column: pos.Column,
		}
	}
	if root.kind != nodeObject {
		return nil, ps.errorf(root, "policy document must be a JSON object, got %s", root.kind)
	}
	for i, k := range root.keys {
		if !contains(topElements, k) {
			return nil, ps.errorf(root.vals[i], "unknown element %q at the top level of the policy%s; allowed: Version, Id, Statement", k, suggest(k, topElements))
		}
	}
	p := &Policy{Kind: kind}
	if v := root.get("Version"); v != nil {
		if v.kind != nodeString {
			return nil, ps.errorf(v, "Version must be a string, got %s", v.kind)
		}
		if v.str != Version2012 && v.str != Version2008 {
			return nil, ps.errorf(v, "Version must be %q or %q, got %q", Version2012, Version2008, v.str)
		}
		p.Version = v.str
	}
	ps.variables = p.Version == Version2012
	if v := root.get("Id"); v != nil {
		if v.kind != nodeString {
			return nil, ps.errorf(v, "Id must be a string, got %s", v.kind)
		}
		p.ID = v.str
	}
	st := root.get("Statement")
	if st == nil {
		return nil, ps.errorf(root, "policy has no Statement element")
	}
	var stmts []*node
	switch st.kind {
	case nodeObject:
		stmts = []*node{st}
	case nodeArray:
		stmts = st.elems
	default:
		return nil, ps.errorf(st, "Statement must be an object or a list of objects, got %s", st.kind)
	}
	if len(stmts) == 0 {
		return nil, ps.errorf(st, "Statement must contain at least one statement")
	}
	sids := map[string]int{}
	for i, n := range stmts {
		s, err := ps.statement(i, n)
		if err != nil {
			return nil, err
		}
		// "In IAM, the Sid value must be unique within a JSON policy"
		// (reference_policies_elements_sid); other services' resource
		// policies have their own rules.
		if s.Sid != "" && kind != KindResource {
			if j, dup := sids[s.Sid]; dup {
				return nil, ps.errorf(n, "Statement[%d] (Sid %q): Sid is already used by Statement[%d]; Sids must be unique within a policy", i, s.Sid, j)
			}
			sids[s.Sid] = i
		}
		p.Statements = append(p.Statements, s)
	}
	return p, nil
}

func (ps *parser) statement(i int, n *node) (Statement, *MalformedError) {
	s := Statement{Index: i}
	where := fmt.Sprintf("Statement[%d]", i)
	if n.kind != nodeObject {
		return s, ps.errorf(n, "%s: a statement must be an object, got %s", where, n.kind)
	}
	s.Start, s.End = position(ps.doc, n.start), position(ps.doc, n.end-1)
	if v := n.get("Sid"); v != nil {
		if v.kind != nodeString {
			return s, ps.errorf(v, "%s: Sid must be a string, got %s", where, v.kind)
		}
		s.Sid = v.str
		where = fmt.Sprintf("Statement[%d] (Sid %q)", i, s.Sid)
		if ps.kind != KindResource && !sidPattern.MatchString(s.Sid) {
			return s, ps.errorf(v, "%s: Sid may contain only ASCII letters and digits", where)
		}
	}
	for j, k := range n.keys {
		if !contains(statementElements, k) {
			return s, ps.errorf(n.vals[j], "%s: unknown element %q%s; allowed: %s", where, k, suggest(k, statementElements), strings.Join(statementElements, ", "))
		}
	}

	e := n.get("Effect")
	switch {
	case e == nil:
		return s, ps.errorf(n, "%s: missing Effect; it must be \"Allow\" or \"Deny\"", where)
	case e.kind != nodeString:
		return s, ps.errorf(e, "%s: Effect must be \"Allow\" or \"Deny\", got %s", where, e.kind)
	case e.str != "Allow" && e.str != "Deny":
		return s, ps.errorf(e, "%s: Effect must be \"Allow\" or \"Deny\", got %q", where, e.str)
	}
	s.Effect = e.str

	// Principal.
	pr, npr := n.get("Principal"), n.get("NotPrincipal")
	switch ps.kind {
	case KindIdentity, KindBoundary, KindSession:
		if pr != nil || npr != nil {
			at, name := pr, "Principal"
			if at == nil {
				at, name = npr, "NotPrincipal"
			}
			return s, ps.errorf(at, "%s: %s is not allowed in %s; the principal is the identity the policy is attached to", where, name, kindPhrase(ps.kind))
		}
	case KindResource, KindTrust:
		switch {
		case pr == nil && npr == nil:
			return s, ps.errorf(n, "%s: missing Principal; %s must name who the statement applies to", where, kindPhrase(ps.kind))
		case pr != nil && npr != nil:
			return s, ps.errorf(npr, "%s: use either Principal or NotPrincipal, not both", where)
		}
		var err *MalformedError
		if pr != nil {
			s.Principal, err = ps.principal(where, "Principal", pr)
		} else {
			s.NotPrincipal, err = ps.principal(where, "NotPrincipal", npr)
		}
		if err != nil {
			return s, err
		}
	}

	// Action / NotAction.
	a, na := n.get("Action"), n.get("NotAction")
	switch {
	case a == nil && na == nil:
		return s, ps.errorf(n, "%s: missing Action; a statement needs exactly one of Action or NotAction", where)
	case a != nil && na != nil:
		return s, ps.errorf(na, "%s: has both Action and NotAction; use exactly one", where)
	}
	name, an := "Action", a
	if a == nil {
		name, an = "NotAction", na
	}
	acts, err := ps.stringList(where, name, an)
	if err != nil {
		return s, err
	}
	for _, act := range acts {
		if act != "*" && !actionPattern.MatchString(act) {
			return s, ps.errorf(an, "%s: %s %q is not a valid action; write service:ActionName (wildcards * and ? allowed in the action name) or \"*\"", where, name, act)
		}
		if ps.kind == KindTrust && name == "Action" && !trustAction(act) {
			return s, ps.errorf(an, "%s: Action %q is not allowed in a trust policy; use sts:AssumeRole, sts:AssumeRoleWithWebIdentity, sts:AssumeRoleWithSAML, sts:TagSession, sts:SetSourceIdentity or sts:SetContext", where, act)
		}
		s.actions = append(s.actions, strings.ToLower(act))
	}
	if a != nil {
		s.Action = acts
	} else {
		s.NotAction = acts
	}

	// Resource / NotResource.
	r, nr := n.get("Resource"), n.get("NotResource")
	if ps.kind == KindTrust {
		// IAM rejects a trust policy with a Resource ("Has prohibited
		// field Resource"): the resource is the role itself.
		if r != nil || nr != nil {
			at, name := r, "Resource"
			if at == nil {
				at, name = nr, "NotResource"
			}
			return s, ps.errorf(at, "%s: %s is not allowed in a trust policy; the resource is the role itself", where, name)
		}
	} else {
		switch {
		case r == nil && nr == nil:
			return s, ps.errorf(n, "%s: missing Resource; a statement needs exactly one of Resource or NotResource (use \"*\" for all resources)", where)
		case r != nil && nr != nil:
			return s, ps.errorf(nr, "%s: has both Resource and NotResource; use exactly one", where)
		}
		name, rn := "Resource", r
		if r == nil {
			name, rn = "NotResource", nr
		}
		res, err := ps.stringList(where, name, rn)
		if err != nil {
			return s, err
		}
		for _, rs := range res {
			if !validResource(rs) {
				return s, ps.errorf(rn, "%s: %s %q is not a valid resource; use \"*\" or an ARN arn:partition:service:region:account:resource", where, name, rs)
			}
			rp := resPattern{glob: globEscape(rs)}
			if ps.variables {
				rp.tmpl = parseTemplate(rs)
			}
			s.resources = append(s.resources, rp)
		}
		if r != nil {
			s.Resource = res
		} else {
			s.NotResource = res
		}
	}

	if c := n.get("Condition"); c != nil {
		conds, err := ps.conditions(where, c)
		if err != nil {
			return s, err
		}
		s.Conditions = conds
	}
	return s, nil
}

func kindPhrase(k Kind) string {
	switch k {
	case KindIdentity:
		return "an identity-based policy"
	case KindBoundary:
		return "a permissions boundary"
	case KindSession:
		return "a session policy"
	case KindTrust:
		return "a trust policy"
	}
	return "a resource-based policy"
}

// trustAction reports whether an action pattern names at least one of the
// actions a trust policy may allow and nothing outside sts.
func trustAction(act string) bool {
	l := strings.ToLower(act)
	if l != "*" && !strings.HasPrefix(l, "sts:") {
		return false
	}
	for _, t := range trustActions {
		if actionMatch(l, t) {
			return true
		}
	}
	return false
}

// validResource accepts "*" or an ARN with its six components; the
// partition, service and resource parts may not be empty. Wildcards and
// policy variables may appear anywhere.
func validResource(s string) bool {
	if s == "*" {
		return true
	}
	parts, ok := splitTemplateARN(s)
	if !ok {
		return false
	}
	return parts[1] != "" && parts[2] != "" && parts[5] != ""
}

// splitTemplateARN splits like splitARN but treats ${...} as opaque, since
// a variable name such as aws:username contains a colon.
func splitTemplateARN(s string) ([arnParts]string, bool) {
	var parts [arnParts]string
	k, from := 0, 0
	for i := 0; i < len(s) && k < arnParts-1; i++ {
		if strings.HasPrefix(s[i:], "${") {
			if j := strings.IndexByte(s[i:], '}'); j > 0 {
				i += j
				continue
			}
		}
		if s[i] == ':' {
			parts[k] = s[from:i]
			k++
			from = i + 1
		}
	}
	if k < arnParts-1 {
		return parts, false
	}
	parts[arnParts-1] = s[from:]
	return parts, parts[0] == "arn"
}

// stringList reads an element that may be one string or a non-empty list
// of strings, the shape Action, Resource and principal values share.
func (ps *parser) stringList(where, name string, n *node) ([]string, *MalformedError) {
	switch n.kind {
	case nodeString:
		return []string{n.str}, nil
	case nodeArray:
		if len(n.elems) == 0 {
			return nil, ps.errorf(n, "%s: %s must not be an empty list", where, name)
		}
		out := make([]string, 0, len(n.elems))
		for _, e := range n.elems {
			if e.kind != nodeString {
				return nil, ps.errorf(e, "%s: every %s entry must be a string, got %s", where, name, e.kind)
			}
			out = append(out, e.str)
		}
		return out, nil
	}
	return nil, ps.errorf(n, "%s: %s must be a string or a list of strings, got %s", where, name, n.kind)
}

// principal reads Principal or NotPrincipal: "*" or an object mapping
// principal types to one value or a list (reference_policies_elements_principal).
func (ps *parser) principal(where, name string, n *node) (map[string][]string, *MalformedError) {
	if n.kind == nodeString {
		if n.str != "*" {
			return nil, ps.errorf(n, "%s: %s must be \"*\" or an object such as {\"AWS\": \"arn:aws:iam::123456789012:root\"}, got %q", where, name, n.str)
		}
		return map[string][]string{"*": {"*"}}, nil
	}
	if n.kind != nodeObject {
		return nil, ps.errorf(n, "%s: %s must be \"*\" or an object, got %s", where, name, n.kind)
	}
	if len(n.keys) == 0 {
		return nil, ps.errorf(n, "%s: %s must name at least one principal", where, name)
	}
	out := map[string][]string{}
	for i, typ := range n.keys {
		v := n.vals[i]
		if !contains(principalTypes, typ) {
			return nil, ps.errorf(v, "%s: unknown principal type %q in %s%s; use AWS, Service, Federated or CanonicalUser", where, typ, name, suggest(typ, principalTypes))
		}
		vals, err := ps.stringList(where, name+"."+typ, v)
		if err != nil {
			return nil, err
		}
		for _, pv := range vals {
			if msg := checkPrincipalValue(typ, pv); msg != "" {
				return nil, ps.errorf(v, "%s: invalid principal %q in %s.%s: %s", where, pv, name, typ, msg)
			}
		}
		out[typ] = vals
	}
	return out, nil
}

func checkPrincipalValue(typ, v string) string {
	switch typ {
	case "AWS":
		if v == "*" || accountID.MatchString(v) || principalARN.MatchString(v) {
			return ""
		}
		if strings.ContainsAny(v, "*?") {
			return "wildcards cannot match part of a principal; use \"*\" with a condition on aws:PrincipalArn instead"
		}
		return "use a 12-digit account ID, an account root, user, role or assumed-role ARN, or \"*\""
	case "Service", "Federated", "CanonicalUser":
		if v == "" {
			return "must not be empty"
		}
		if v != "*" && strings.ContainsAny(v, "*?") {
			return "wildcards cannot match part of a principal"
		}
	}
	return ""
}

// conditions reads a Condition block: {operator: {key: value or [values]}}.
// Operators and keys become one Condition each, in document order.
func (ps *parser) conditions(where string, n *node) ([]Condition, *MalformedError) {
	if n.kind != nodeObject {
		return nil, ps.errorf(n, "%s: Condition must be an object of the form {\"Operator\": {\"key\": \"value\"}}, got %s", where, n.kind)
	}
	var out []Condition
	for i, opName := range n.keys {
		block := n.vals[i]
		info, set, ifExists, err := parseOperator(opName)
		if err != nil {
			return nil, ps.errorf(block, "%s: Condition: %v", where, err)
		}
		if block.kind != nodeObject {
			return nil, ps.errorf(block, "%s: Condition operator %q must map condition keys to values, got %s", where, opName, block.kind)
		}
		if len(block.keys) == 0 {
			return nil, ps.errorf(block, "%s: Condition operator %q names no condition key", where, opName)
		}
		for j, key := range block.keys {
			vn := block.vals[j]
			if strings.TrimSpace(key) == "" {
				return nil, ps.errorf(vn, "%s: Condition operator %q has an empty condition key", where, opName)
			}
			raw, err := ps.conditionValues(where, opName, key, vn)
			if err != nil {
				return nil, err
			}
			c := Condition{
				Operator: opName, Key: key, Values: raw,
				lkey: strings.ToLower(key), op: info.op, negated: info.negated,
				set: set, ifExists: ifExists,
			}
			for _, rv := range raw {
				cv, verr := compileValue(info, rv, ps.variables)
				if verr != nil {
					return nil, ps.errorf(vn, "%s: Condition %s on %q: %v", where, opName, key, verr)
				}
				if cv.tmpl != nil {
					c.hasVars = true
				}
				c.values = append(c.values, cv)
			}
			out = append(out, c)
		}
	}
	return out, nil
}

// conditionValues reads a condition value: a string, number or boolean, or
// a list of them. JSON numbers and booleans keep their literal text, so
// {"aws:MultiFactorAuthPresent": true} means the same as "true".
func (ps *parser) conditionValues(where, op, key string, n *node) ([]string, *MalformedError) {
	scalar := func(e *node) (string, bool) {
		switch e.kind {
		case nodeString, nodeNumber, nodeBool:
			return e.str, true
		}
		return "", false
	}
	if s, ok := scalar(n); ok {
		return []string{s}, nil
	}
	if n.kind != nodeArray {
		return nil, ps.errorf(n, "%s: Condition %s on %q: value must be a string, number, boolean or a list of them, got %s", where, op, key, n.kind)
	}
	if len(n.elems) == 0 {
		return nil, ps.errorf(n, "%s: Condition %s on %q: the list of values is empty", where, op, key)
	}
	out := make([]string, 0, len(n.elems))
	for _, e := range n.elems {
		s, ok := scalar(e)
		if !ok {
			return nil, ps.errorf(e, "%s: Condition %s on %q: every value must be a string, number or boolean, got %s", where, op, key, e.kind)
		}
		out = append(out, s)
	}
	return out, nil
}

func contains(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}

// suggest returns ` (did you mean "X"?)` when s differs from a known name
// only in case, the commonest slip in hand-written policies.
func suggest(s string, known []string) string {
	for _, k := range known {
		if strings.EqualFold(k, s) {
			return fmt.Sprintf(" (did you mean %q?)", k)
		}
	}
	return ""
}
