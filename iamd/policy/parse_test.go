package policy

import (
	"errors"
	"reflect"
	"strings"
	"testing"
)

func TestParseValid(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name  string
		kind  Kind
		doc   string
		check func(t *testing.T, p *Policy)
	}{
		{
			name: "single statement object and string values",
			kind: KindIdentity,
			doc:  `{"Version":"2012-10-17","Id":"P1","Statement":{"Sid":"S1","Effect":"Allow","Action":"ec2:DescribeInstances","Resource":"*"}}`,
			check: func(t *testing.T, p *Policy) {
				s := p.Statements[0]
				if p.Version != Version2012 || p.ID != "P1" || s.Sid != "S1" || s.Effect != "Allow" {
					t.Errorf("got %+v", p)
				}
				if !reflect.DeepEqual(s.Action, []string{"ec2:DescribeInstances"}) || !reflect.DeepEqual(s.Resource, []string{"*"}) {
					t.Errorf("Action %v Resource %v", s.Action, s.Resource)
				}
			},
		},
		{
			name: "statement list with NotAction and NotResource",
			kind: KindIdentity,
			doc: `{"Version":"2012-10-17","Statement":[
				{"Effect":"Allow","NotAction":["iam:*","sts:*"],"Resource":"*"},
				{"Effect":"Deny","Action":"*","NotResource":["arn:aws:ec2:*:*:instance/*"]}]}`,
			check: func(t *testing.T, p *Policy) {
				if len(p.Statements) != 2 || p.Statements[0].NotAction == nil || p.Statements[1].NotResource == nil {
					t.Errorf("got %+v", p.Statements)
				}
				if p.Statements[1].Index != 1 {
					t.Errorf("Index = %d", p.Statements[1].Index)
				}
			},
		},
		{
			name: "no Version means 2008 semantics",
			kind: KindIdentity,
			doc:  `{"Statement":{"Effect":"Allow","Action":"s3:GetObject","Resource":"arn:aws:s3:::b/${aws:username}"}}`,
			check: func(t *testing.T, p *Policy) {
				if p.Version != "" || p.Statements[0].resources[0].tmpl != nil {
					t.Errorf("variables must stay literal without Version: %+v", p.Statements[0].resources[0])
				}
			},
		},
		{
			name: "2008-10-17 accepted",
			kind: KindIdentity,
			doc:  `{"Version":"2008-10-17","Statement":{"Effect":"Allow","Action":"*","Resource":"*"}}`,
			check: func(t *testing.T, p *Policy) {
				if p.Version != Version2008 {
					t.Errorf("Version = %q", p.Version)
				}
			},
		},
		{
			name: "trust policy without Resource, principal forms",
			kind: KindTrust,
			doc: `{"Version":"2012-10-17","Statement":[
				{"Effect":"Allow","Principal":{"AWS":["111111111111","arn:aws:iam::222222222222:root","arn:aws:iam::111111111111:user/alice"]},"Action":"sts:AssumeRole"},
				{"Effect":"Allow","Principal":{"Service":"ec2.amazonaws.com"},"Action":["sts:AssumeRole","sts:TagSession"]},
				{"Effect":"Allow","Principal":{"Federated":"arn:aws:iam::111111111111:oidc-provider/token.actions.githubusercontent.com"},"Action":"sts:AssumeRoleWithWebIdentity"},
				{"Effect":"Allow","Principal":"*","Action":"sts:Assume*"}]}`,
			check: func(t *testing.T, p *Policy) {
				if len(p.Statements[0].Principal["AWS"]) != 3 {
					t.Errorf("AWS principals = %v", p.Statements[0].Principal)
				}
				if !reflect.DeepEqual(p.Statements[3].Principal, map[string][]string{"*": {"*"}}) {
					t.Errorf(`"*" principal = %v`, p.Statements[3].Principal)
				}
				if p.Statements[0].Resource != nil {
					t.Errorf("trust statement has Resource")
				}
			},
		},
		{
			name: "resource policy with NotPrincipal and free-form Sid",
			kind: KindResource,
			doc:  `{"Version":"2012-10-17","Statement":{"Sid":"Deny everyone else","Effect":"Deny","NotPrincipal":{"AWS":"arn:aws:iam::111111111111:role/admin"},"Action":"s3:*","Resource":"arn:aws:s3:::bucket/*"}}`,
			check: func(t *testing.T, p *Policy) {
				if p.Statements[0].NotPrincipal == nil {
					t.Errorf("NotPrincipal not parsed")
				}
			},
		},
		{
			name: "conditions keep document order and literal values",
			kind: KindIdentity,
			doc:  `{"Version":"2012-10-17","Statement":{"Effect":"Allow","Action":"*","Resource":"*","Condition":{"NumericLessThan":{"s3:max-keys":10},"Bool":{"aws:SecureTransport":true},"StringEquals":{"b":"2","a":"1"}}}}`,
			check: func(t *testing.T, p *Policy) {
				var got []string
				for _, c := range p.Statements[0].Conditions {
					got = append(got, c.Operator+"/"+c.Key+"="+strings.Join(c.Values, ","))
				}
				want := []string{"NumericLessThan/s3:max-keys=10", "Bool/aws:SecureTransport=true", "StringEquals/b=2", "StringEquals/a=1"}
				if !reflect.DeepEqual(got, want) {
					t.Errorf("conditions = %v, want %v", got, want)
				}
			},
		},
		{
			name: "statement positions",
			kind: KindIdentity,
			doc:  "{\n  \"Version\": \"2012-10-17\",\n  \"Statement\": [\n    {\"Effect\": \"Allow\", \"Action\": \"*\", \"Resource\": \"*\"}\n  ]\n}",
			check: func(t *testing.T, p *Policy) {
				s := p.Statements[0]
				if s.Start != (Position{Line: 4, Column: 5}) || s.End != (Position{Line: 4, Column: 55}) {
					t.Errorf("Start %+v End %+v", s.Start, s.End)
				}
			},
		},
		{
			name: "session policy",
			kind: KindSession,
			doc:  `{"Version":"2012-10-17","Statement":{"Effect":"Allow","Action":"s3:Get*","Resource":"arn:aws:s3:::b/*"}}`,
			check: func(t *testing.T, p *Policy) {
				if p.Kind != KindSession {
					t.Errorf("Kind = %v", p.Kind)
				}
			},
		},
		{
			name: "variables in account and resource parts",
			kind: KindBoundary,
			doc:  `{"Version":"2012-10-17","Statement":{"Effect":"Allow","Action":"iam:*AccessKey*","Resource":"arn:aws:iam::${aws:PrincipalAccount}:user/${aws:username}"}}`,
			check: func(t *testing.T, p *Policy) {
				if p.Statements[0].resources[0].tmpl == nil {
					t.Errorf("no template")
				}
			},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			tt.check(t, mustParse(t, tt.doc, tt.kind))
		})
	}
}

func TestParseMalformed(t *testing.T) {
	t.Parallel()
	const allow = `"Effect":"Allow","Action":"*","Resource":"*"`
	tests := []struct {
		name string
		kind Kind
		doc  string
		want []string // substrings the message must contain
	}{
		{name: "bad JSON names position", doc: "{\"Version\":\"2012-10-17\",\n\"Statement\": [ {\"Effect\": \"Allow\",, } ]}", want: []string{"not valid JSON", "line 2", "column"}},
		{name: "truncated JSON", doc: `{"Version":"2012-10-17","Statement":[`, want: []string{"not valid JSON", "unexpected end"}},
		{name: "trailing data", doc: `{"Statement":{` + allow + `}} {}`, want: []string{"not valid JSON", "after the policy document"}},
		{name: "empty document", doc: "  ", want: []string{"empty"}},
		{name: "not an object", doc: `["Statement"]`, want: []string{"must be a JSON object"}},
		{name: "duplicate key", doc: `{"Statement":{"Effect":"Allow","Effect":"Deny","Action":"*","Resource":"*"}}`, want: []string{"duplicate key \"Effect\""}},
		{name: "unknown top-level element", doc: `{"Version":"2012-10-17","Statment":[]}`, want: []string{`unknown element "Statment"`, "top level"}},
		{name: "unknown statement element", doc: `{"Statement":{` + allow + `,"Comment":"x"}}`, want: []string{"Statement[0]", `unknown element "Comment"`}},
		{name: "wrong-case element suggests", doc: `{"Statement":{"effect":"Allow","Action":"*","Resource":"*"}}`, want: []string{`unknown element "effect"`, `did you mean "Effect"`}},
		{name: "bad Version", doc: `{"Version":"2012-10-18","Statement":{` + allow + `}}`, want: []string{"Version must be", `"2012-10-18"`}},
		{name: "Version not a string", doc: `{"Version":2012,"Statement":{` + allow + `}}`, want: []string{"Version must be a string"}},
		{name: "missing Statement", doc: `{"Version":"2012-10-17"}`, want: []string{"no Statement"}},
		{name: "empty Statement list", doc: `{"Version":"2012-10-17","Statement":[]}`, want: []string{"at least one statement"}},
		{name: "statement not an object", doc: `{"Statement":["x"]}`, want: []string{"Statement[0]", "must be an object"}},
		{name: "bad Effect names statement and Sid", doc: `{"Statement":[{` + allow + `},{"Sid":"DenyAll","Effect":"Permit","Action":"*","Resource":"*"}]}`, want: []string{`Statement[1] (Sid "DenyAll"): Effect must be "Allow" or "Deny", got "Permit"`}},
		{name: "missing Effect", doc: `{"Statement":{"Action":"*","Resource":"*"}}`, want: []string{"missing Effect"}},
		{name: "Principal in identity policy", doc: `{"Statement":{"Effect":"Allow","Principal":"*","Action":"*","Resource":"*"}}`, want: []string{"Principal is not allowed in an identity-based policy"}},
		{name: "NotPrincipal in boundary", kind: KindBoundary, doc: `{"Statement":{"Effect":"Allow","NotPrincipal":{"AWS":"111111111111"},"Action":"*","Resource":"*"}}`, want: []string{"NotPrincipal is not allowed in a permissions boundary"}},
		{name: "Principal in session policy", kind: KindSession, doc: `{"Statement":{"Effect":"Allow","Principal":"*","Action":"*","Resource":"*"}}`, want: []string{"not allowed in a session policy"}},
		{name: "missing Principal in trust policy", kind: KindTrust, doc: `{"Statement":{"Effect":"Allow","Action":"sts:AssumeRole"}}`, want: []string{"missing Principal", "trust policy"}},
		{name: "missing Principal in resource policy", kind: KindResource, doc: `{"Statement":{` + allow + `}}`, want: []string{"missing Principal", "resource-based policy"}},
		{name: "both Principal and NotPrincipal", kind: KindResource, doc: `{"Statement":{"Effect":"Allow","Principal":"*","NotPrincipal":"*","Action":"*","Resource":"*"}}`, want: []string{"either Principal or NotPrincipal"}},
		{name: "Principal plain non-star string", kind: KindTrust, doc: `{"Statement":{"Effect":"Allow","Principal":"arn:aws:iam::111111111111:root","Action":"sts:AssumeRole"}}`, want: []string{`must be "*" or an object`}},
		{name: "unknown principal type", kind: KindTrust, doc: `{"Statement":{"Effect":"Allow","Principal":{"Aws":"111111111111"},"Action":"sts:AssumeRole"}}`, want: []string{`unknown principal type "Aws"`, `did you mean "AWS"`}},
		{name: "wildcard inside principal ARN", kind: KindTrust, doc: `{"Statement":{"Effect":"Allow","Principal":{"AWS":"arn:aws:iam::111111111111:role/*"},"Action":"sts:AssumeRole"}}`, want: []string{"invalid principal", "wildcards cannot match part of a principal"}},
		{name: "bad principal value", kind: KindResource, doc: `{"Statement":{"Effect":"Allow","Principal":{"AWS":"alice"},"Action":"*","Resource":"*"}}`, want: []string{`invalid principal "alice"`}},
		{name: "Resource in trust policy", kind: KindTrust, doc: `{"Statement":{"Effect":"Allow","Principal":"*","Action":"sts:AssumeRole","Resource":"*"}}`, want: []string{"Resource is not allowed in a trust policy"}},
		{name: "non-STS action in trust policy", kind: KindTrust, doc: `{"Statement":{"Effect":"Allow","Principal":"*","Action":"s3:GetObject"}}`, want: []string{`Action "s3:GetObject" is not allowed in a trust policy`}},
		{name: "unrelated STS action in trust policy", kind: KindTrust, doc: `{"Statement":{"Effect":"Allow","Principal":"*","Action":"sts:GetCallerIdentity"}}`, want: []string{"not allowed in a trust policy"}},
		{name: "unknown condition operator", doc: `{"Statement":{` + allow + `,"Condition":{"StringEqualz":{"k":"v"}}}}`, want: []string{"Statement[0]", `unknown condition operator "StringEqualz"`}},
		{name: "condition block not an object", doc: `{"Statement":{` + allow + `,"Condition":{"StringEquals":"v"}}}`, want: []string{`"StringEquals" must map condition keys`}},
		{name: "condition value object", doc: `{"Statement":{` + allow + `,"Condition":{"StringEquals":{"k":{"a":1}}}}}`, want: []string{"value must be a string, number, boolean"}},
		{name: "condition empty value list", doc: `{"Statement":{` + allow + `,"Condition":{"StringEquals":{"k":[]}}}}`, want: []string{"list of values is empty"}},
		{name: "numeric condition value", doc: `{"Statement":{` + allow + `,"Condition":{"NumericLessThan":{"n":"ten"}}}}`, want: []string{`"ten" is not a number`}},
		{name: "date condition value", doc: `{"Statement":{` + allow + `,"Condition":{"DateLessThan":{"aws:CurrentTime":"soon"}}}}`, want: []string{`"soon" is not a date`}},
		{name: "ip condition value", doc: `{"Statement":{` + allow + `,"Condition":{"IpAddress":{"aws:SourceIp":"10.0.0.0/33"}}}}`, want: []string{"not an IP address or CIDR"}},
		{name: "bool condition value", doc: `{"Statement":{` + allow + `,"Condition":{"Bool":{"aws:SecureTransport":"yes"}}}}`, want: []string{`"yes" is not a boolean`}},
		{name: "binary condition value", doc: `{"Statement":{` + allow + `,"Condition":{"BinaryEquals":{"k":"not base64!"}}}}`, want: []string{"is not base64"}},
		{name: "Null condition value", doc: `{"Statement":{` + allow + `,"Condition":{"Null":{"k":"maybe"}}}}`, want: []string{"Null takes"}},
		{name: "bad resource ARN", doc: `{"Statement":{"Effect":"Allow","Action":"*","Resource":"arn:aws:s3:bucket"}}`, want: []string{`Resource "arn:aws:s3:bucket" is not a valid resource`}},
		{name: "resource not an ARN", doc: `{"Statement":{"Effect":"Allow","Action":"*","Resource":"my-bucket"}}`, want: []string{"not a valid resource"}},
		{name: "resource ARN empty service", doc: `{"Statement":{"Effect":"Allow","Action":"*","Resource":"arn:aws::::x"}}`, want: []string{"not a valid resource"}},
		{name: "missing Resource", doc: `{"Statement":{"Effect":"Allow","Action":"*"}}`, want: []string{"missing Resource"}},
		{name: "missing Action", doc: `{"Statement":{"Effect":"Allow","Resource":"*"}}`, want: []string{"missing Action"}},
		{name: "both Action and NotAction", doc: `{"Statement":{"Effect":"Allow","Action":"*","NotAction":"iam:*","Resource":"*"}}`, want: []string{"both Action and NotAction"}},
		{name: "both Resource and NotResource", doc: `{"Statement":{"Effect":"Allow","Action":"*","Resource":"*","NotResource":"*"}}`, want: []string{"both Resource and NotResource"}},
		{name: "bad action", doc: `{"Statement":{"Effect":"Allow","Action":"DescribeInstances","Resource":"*"}}`, want: []string{`Action "DescribeInstances" is not a valid action`}},
		{name: "empty action list", doc: `{"Statement":{"Effect":"Allow","Action":[],"Resource":"*"}}`, want: []string{"Action must not be an empty list"}},
		{name: "action not a string", doc: `{"Statement":{"Effect":"Allow","Action":[1],"Resource":"*"}}`, want: []string{"every Action entry must be a string"}},
		{name: "Sid not alphanumeric", doc: `{"Statement":{"Sid":"Allow all","Effect":"Allow","Action":"*","Resource":"*"}}`, want: []string{"Sid may contain only ASCII letters and digits"}},
		{name: "duplicate Sid", doc: `{"Statement":[{"Sid":"A",` + allow + `},{"Sid":"A",` + allow + `}]}`, want: []string{`Statement[1] (Sid "A")`, "already used by Statement[0]"}},
		{name: "too deep", doc: `{"Statement":{` + allow + `,"Condition":` + strings.Repeat("[", 100) + strings.Repeat("]", 100) + `}}`, want: []string{"nesting deeper"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p, err := Parse(tt.doc, tt.kind)
			if err == nil {
				t.Fatalf("Parse accepted %s: %+v", tt.doc, p)
			}
			var me *MalformedError
			if !errors.As(err, &me) {
				t.Fatalf("error %T is not *MalformedError: %v", err, err)
			}
			for _, w := range tt.want {
				if !strings.Contains(me.Message, w) {
					t.Errorf("message %q does not contain %q", me.Message, w)
				}
			}
		})
	}
}

func TestMalformedErrorLocatesElement(t *testing.T) {
	t.Parallel()
	doc := "{\n \"Statement\": {\n  \"Effect\": \"Permit\",\n  \"Action\": \"*\", \"Resource\": \"*\"}}"
	_, err := Parse(doc, KindIdentity)
	var me *MalformedError
	if !errors.As(err, &me) {
		t.Fatalf("err = %v", err)
	}
	if me.Line != 3 || me.Column != 13 {
		t.Errorf("Line %d Column %d, want 3 13", me.Line, me.Column)
	}
}

func TestMarshalRoundTrip(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name string
		kind Kind
		doc  string
	}{
		{name: "identity", kind: KindIdentity, doc: `{"Version":"2012-10-17","Id":"x","Statement":[{"Sid":"A","Effect":"Allow","Action":"ec2:*","Resource":"*","Condition":{"StringEquals":{"k":"v","j":["1","2"]},"Bool":{"b":true}}},{"Effect":"Deny","NotAction":"iam:*","NotResource":"arn:aws:iam::*:user/${aws:username}"}]}`},
		{name: "trust", kind: KindTrust, doc: `{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Principal":{"Service":["ec2.amazonaws.com"],"AWS":"111111111111"},"Action":"sts:AssumeRole"},{"Effect":"Allow","Principal":"*","Action":"sts:TagSession"}]}`},
		{name: "2008 without version", kind: KindResource, doc: `{"Statement":{"Sid":"any text","Effect":"Allow","NotPrincipal":{"AWS":"*"},"Action":"s3:GetObject","Resource":"arn:aws:s3:::b/*"}}`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p := mustParse(t, tt.doc, tt.kind)
			b, err := p.MarshalJSON()
			if err != nil {
				t.Fatal(err)
			}
			q := mustParse(t, string(b), tt.kind)
			if !reflect.DeepEqual(exported(p), exported(q)) {
				t.Errorf("round trip changed the policy:\n%+v\n%+v", exported(p), exported(q))
			}
		})
	}
}

// exported is the part of a policy a caller sees, without positions, which
// legitimately change when the text is re-encoded.
func exported(p *Policy) *Policy {
	out := &Policy{Version: p.Version, ID: p.ID, Kind: p.Kind}
	for _, s := range p.Statements {
		s2 := Statement{Sid: s.Sid, Effect: s.Effect, Action: s.Action, NotAction: s.NotAction,
			Resource: s.Resource, NotResource: s.NotResource, Principal: s.Principal,
			NotPrincipal: s.NotPrincipal, Index: s.Index}
		for _, c := range s.Conditions {
			s2.Conditions = append(s2.Conditions, Condition{Operator: c.Operator, Key: c.Key, Values: c.Values})
		}
		out.Statements = append(out.Statements, s2)
	}
	return out
}
