package policy

import (
	"reflect"
	"testing"
)

func TestResourceVariables(t *testing.T) {
	t.Parallel()
	type kv = map[string][]string
	tests := []struct {
		name        string
		version     string
		resource    string
		ctx         kv
		request     string
		want        bool
		wantMissing []string
	}{
		{name: "username substituted", version: Version2012, resource: "arn:aws:iam::111111111111:user/${aws:username}", ctx: kv{"aws:username": {"alice"}}, request: "arn:aws:iam::111111111111:user/alice", want: true},
		{name: "username other user", version: Version2012, resource: "arn:aws:iam::111111111111:user/${aws:username}", ctx: kv{"aws:username": {"alice"}}, request: "arn:aws:iam::111111111111:user/bob", want: false},
		{name: "variable name case-insensitive", version: Version2012, resource: "arn:aws:s3:::home/${AWS:UserName}/*", ctx: kv{"aws:username": {"alice"}}, request: "arn:aws:s3:::home/alice/x", want: true},
		{name: "variable in account component", version: Version2012, resource: "arn:aws:iam::${aws:PrincipalAccount}:user/*", ctx: kv{"aws:PrincipalAccount": {"111111111111"}}, request: "arn:aws:iam::111111111111:user/alice", want: true},
		{name: "userid", version: Version2012, resource: "arn:aws:s3:::b/${aws:userid}", ctx: kv{"aws:userid": {"AIDAEXAMPLE"}}, request: "arn:aws:s3:::b/AIDAEXAMPLE", want: true},
		{name: "principal tag", version: Version2012, resource: "arn:aws:s3:::b/${aws:PrincipalTag/team}/*", ctx: kv{"aws:PrincipalTag/team": {"red"}}, request: "arn:aws:s3:::b/red/file", want: true},
		{name: "no value no default matches nothing", version: Version2012, resource: "arn:aws:s3:::b/${aws:PrincipalTag/team}/*", request: "arn:aws:s3:::b/${aws:PrincipalTag/team}/file", want: false, wantMissing: []string{"aws:PrincipalTag/team"}},
		{name: "default used when missing", version: Version2012, resource: "arn:aws:s3:::b/${aws:PrincipalTag/team, 'shared'}/*", request: "arn:aws:s3:::b/shared/file", want: true, wantMissing: []string{}},
		{name: "default ignored when present", version: Version2012, resource: "arn:aws:s3:::b/${aws:PrincipalTag/team, 'shared'}/*", ctx: kv{"aws:PrincipalTag/team": {"red"}}, request: "arn:aws:s3:::b/shared/file", want: false},
		{name: "default without space", version: Version2012, resource: "arn:aws:s3:::b/${aws:username,'nobody'}", request: "arn:aws:s3:::b/nobody", want: true},
		{name: "escaped star is literal", version: Version2012, resource: "arn:aws:s3:::b/${*}", request: "arn:aws:s3:::b/anything", want: false},
		{name: "escaped star matches a star", version: Version2012, resource: "arn:aws:s3:::b/${*}", request: "arn:aws:s3:::b/*", want: true},
		{name: "escaped question is literal", version: Version2012, resource: "arn:aws:s3:::b/a${?}", request: "arn:aws:s3:::b/ab", want: false},
		{name: "escaped question matches", version: Version2012, resource: "arn:aws:s3:::b/a${?}", request: "arn:aws:s3:::b/a?", want: true},
		{name: "escaped dollar", version: Version2012, resource: "arn:aws:s3:::b/${$}{aws:username}", ctx: kv{"aws:username": {"alice"}}, request: "arn:aws:s3:::b/${aws:username}", want: true},
		{name: "substituted value has no wildcards", version: Version2012, resource: "arn:aws:s3:::b/${aws:PrincipalTag/p}", ctx: kv{"aws:PrincipalTag/p": {"*"}}, request: "arn:aws:s3:::b/x", want: false},
		{name: "policy wildcards still work next to a variable", version: Version2012, resource: "arn:aws:s3:::b/${aws:username}-*", ctx: kv{"aws:username": {"alice"}}, request: "arn:aws:s3:::b/alice-1", want: true},
		{name: "multivalued key is not a variable", version: Version2012, resource: "arn:aws:s3:::b/${aws:TagKeys}", ctx: kv{"aws:TagKeys": {"a", "b"}}, request: "arn:aws:s3:::b/a", want: false},
		{name: "2008 keeps the text literal", version: Version2008, resource: "arn:aws:s3:::b/${aws:username}", ctx: kv{"aws:username": {"alice"}}, request: "arn:aws:s3:::b/alice", want: false},
		{name: "2008 literal matches the literal text", version: Version2008, resource: "arn:aws:s3:::b/${aws:username}", ctx: kv{"aws:username": {"alice"}}, request: "arn:aws:s3:::b/${aws:username}", want: true},
		{name: "no Version keeps the text literal", version: "", resource: "arn:aws:s3:::b/${aws:username}", ctx: kv{"aws:username": {"alice"}}, request: "arn:aws:s3:::b/alice", want: false},
		{name: "unterminated variable is text", version: Version2012, resource: "arn:aws:s3:::b/${aws:username", request: "arn:aws:s3:::b/${aws:username", want: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			v := ""
			if tt.version != "" {
				v = `"Version":"` + tt.version + `",`
			}
			p := mustParse(t, `{`+v+`"Statement":{"Effect":"Allow","Action":"s3:GetObject","Resource":"`+tt.resource+`"}}`, KindIdentity)
			d := Decide(Input{Request: Request{Action: "s3:GetObject", Resource: tt.request, Context: ctxOf(tt.ctx)}, Identity: []NamedPolicy{{Policy: p}}})
			if got := d.Allowed(); got != tt.want {
				t.Errorf("allowed = %v, want %v", got, tt.want)
			}
			if tt.wantMissing != nil && !reflect.DeepEqual(nonNil(d.MissingContextValues), tt.wantMissing) {
				t.Errorf("MissingContextValues = %q, want %q", d.MissingContextValues, tt.wantMissing)
			}
		})
	}
}

func nonNil(s []string) []string {
	if s == nil {
		return []string{}
	}
	return s
}

func TestConditionVariables(t *testing.T) {
	t.Parallel()
	type kv = map[string][]string
	tests := []struct {
		name    string
		version string
		op      string
		key     string
		values  string
		ctx     kv
		want    bool
	}{
		{name: "StringEquals with username", version: Version2012, op: "StringEquals", key: "s3:prefix", values: `"home/${aws:username}"`, ctx: kv{"s3:prefix": {"home/alice"}, "aws:username": {"alice"}}, want: true},
		{name: "StringLike keeps policy wildcard", version: Version2012, op: "StringLike", key: "s3:prefix", values: `"home/${aws:username}/*"`, ctx: kv{"s3:prefix": {"home/alice/a/b"}, "aws:username": {"alice"}}, want: true},
		{name: "ResourceTag equals PrincipalTag", version: Version2012, op: "StringEquals", key: "ec2:ResourceTag/team", values: `"${aws:PrincipalTag/team}"`, ctx: kv{"ec2:ResourceTag/team": {"red"}, "aws:PrincipalTag/team": {"red"}}, want: true},
		{name: "ResourceTag differs from PrincipalTag", version: Version2012, op: "StringEquals", key: "ec2:ResourceTag/team", values: `"${aws:PrincipalTag/team}"`, ctx: kv{"ec2:ResourceTag/team": {"blue"}, "aws:PrincipalTag/team": {"red"}}, want: false},
		{name: "unresolved value matches nothing", version: Version2012, op: "StringEquals", key: "ec2:ResourceTag/team", values: `"${aws:PrincipalTag/team}"`, ctx: kv{"ec2:ResourceTag/team": {"${aws:PrincipalTag/team}"}}, want: false},
		{name: "unresolved value: negated operator holds", version: Version2012, op: "StringNotEquals", key: "ec2:ResourceTag/team", values: `"${aws:PrincipalTag/team}"`, ctx: kv{"ec2:ResourceTag/team": {"red"}}, want: true},
		{name: "default in condition", version: Version2012, op: "StringEquals", key: "k", values: `"${aws:PrincipalTag/team, 'none'}"`, ctx: kv{"k": {"none"}}, want: true},
		{name: "Bool takes variables", version: Version2012, op: "Bool", key: "k", values: `"${aws:SecureTransport}"`, ctx: kv{"k": {"true"}, "aws:SecureTransport": {"TRUE"}}, want: true},
		{name: "ArnLike takes variables", version: Version2012, op: "ArnLike", key: "aws:SourceArn", values: `"arn:aws:iam::${aws:PrincipalAccount}:role/*"`, ctx: kv{"aws:SourceArn": {"arn:aws:iam::111111111111:role/x"}, "aws:PrincipalAccount": {"111111111111"}}, want: true},
		{name: "escaped star in StringLike", version: Version2012, op: "StringLike", key: "k", values: `"a${*}"`, ctx: kv{"k": {"ab"}}, want: false},
		{name: "2008 literal in condition", version: Version2008, op: "StringEquals", key: "k", values: `"${aws:username}"`, ctx: kv{"k": {"${aws:username}"}, "aws:username": {"alice"}}, want: true},
		{name: "2008 does not substitute", version: Version2008, op: "StringEquals", key: "k", values: `"${aws:username}"`, ctx: kv{"k": {"alice"}, "aws:username": {"alice"}}, want: false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p := mustParse(t, condDoc(tt.version, tt.op, tt.key, tt.values), KindIdentity)
			if got := p.Statements[0].Conditions[0].eval(ctxOf(tt.ctx)).ok; got != tt.want {
				t.Errorf("eval = %v, want %v", got, tt.want)
			}
		})
	}
}

func TestParseTemplate(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name string
		in   string
		ctx  map[string][]string
		want string // plain rendering; "!" when it does not resolve
	}{
		{name: "no variables", in: "plain", want: "plain"},
		{name: "variable", in: "a-${aws:username}-b", ctx: map[string][]string{"aws:username": {"u"}}, want: "a-u-b"},
		{name: "spaces around name and default", in: "${ aws:username , 'd' }", want: "d"},
		{name: "empty default", in: "x${aws:username, ''}y", want: "xy"},
		{name: "missing", in: "${aws:username}", want: "!"},
		{name: "empty braces are text", in: "${}", want: "${}"},
		{name: "unquoted default is text", in: "${k, d}", want: "${k, d}"},
		{name: "escapes", in: "${*}${?}${$}", want: "*?$"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			tm := parseTemplate(tt.in)
			got := tt.in
			if tm != nil {
				s, ok, _ := tm.render(ctxOf(tt.ctx), false)
				got = s
				if !ok {
					got = "!"
				}
			}
			if got != tt.want {
				t.Errorf("render(%q) = %q, want %q", tt.in, got, tt.want)
			}
		})
	}
}
