package policy

import (
	"strings"
	"testing"
)

func TestConditionOperators(t *testing.T) {
	t.Parallel()
	type kv = map[string][]string
	tests := []struct {
		name        string
		op, key     string
		values      string // JSON value of the key
		ctx         kv
		want        bool
		wantMissing bool
	}{
		// String operators.
		{name: "StringEquals match", op: "StringEquals", key: "aws:username", values: `"alice"`, ctx: kv{"aws:username": {"alice"}}, want: true},
		{name: "StringEquals is case-sensitive", op: "StringEquals", key: "aws:username", values: `"alice"`, ctx: kv{"aws:username": {"Alice"}}, want: false},
		{name: "StringEquals values are ORed", op: "StringEquals", key: "aws:username", values: `["bob","alice"]`, ctx: kv{"aws:username": {"alice"}}, want: true},
		{name: "StringEquals has no wildcards", op: "StringEquals", key: "k", values: `"a*"`, ctx: kv{"k": {"abc"}}, want: false},
		{name: "StringEquals star is literal", op: "StringEquals", key: "k", values: `"a*"`, ctx: kv{"k": {"a*"}}, want: true},
		{name: "StringEquals key is case-insensitive", op: "StringEquals", key: "AWS:UserName", values: `"alice"`, ctx: kv{"aws:username": {"alice"}}, want: true},
		{name: "StringEquals missing key is false", op: "StringEquals", key: "aws:username", values: `"alice"`, want: false, wantMissing: true},
		{name: "StringEquals empty set is false", op: "StringEquals", key: "k", values: `"a"`, ctx: kv{"k": nil}, want: false},
		{name: "StringEquals multivalued request any", op: "StringEquals", key: "k", values: `"b"`, ctx: kv{"k": {"a", "b"}}, want: true},
		{name: "StringNotEquals different", op: "StringNotEquals", key: "k", values: `"a"`, ctx: kv{"k": {"b"}}, want: true},
		{name: "StringNotEquals equal", op: "StringNotEquals", key: "k", values: `"a"`, ctx: kv{"k": {"a"}}, want: false},
		{name: "StringNotEquals none of several", op: "StringNotEquals", key: "k", values: `["a","b"]`, ctx: kv{"k": {"c"}}, want: true},
		{name: "StringNotEquals one of several", op: "StringNotEquals", key: "k", values: `["a","b"]`, ctx: kv{"k": {"b"}}, want: false},
		{name: "StringNotEquals missing key is true", op: "StringNotEquals", key: "k", values: `"a"`, want: true, wantMissing: true},
		{name: "StringEqualsIgnoreCase", op: "StringEqualsIgnoreCase", key: "k", values: `"ADMIN"`, ctx: kv{"k": {"admin"}}, want: true},
		{name: "StringEqualsIgnoreCase differs", op: "StringEqualsIgnoreCase", key: "k", values: `"ADMIN"`, ctx: kv{"k": {"admins"}}, want: false},
		{name: "StringEqualsIgnoreCase missing", op: "StringEqualsIgnoreCase", key: "k", values: `"a"`, want: false, wantMissing: true},
		{name: "StringNotEqualsIgnoreCase case variant", op: "StringNotEqualsIgnoreCase", key: "k", values: `"ADMIN"`, ctx: kv{"k": {"admin"}}, want: false},
		{name: "StringNotEqualsIgnoreCase other", op: "StringNotEqualsIgnoreCase", key: "k", values: `"ADMIN"`, ctx: kv{"k": {"user"}}, want: true},
		{name: "StringNotEqualsIgnoreCase missing is true", op: "StringNotEqualsIgnoreCase", key: "k", values: `"a"`, want: true, wantMissing: true},
		{name: "StringLike star", op: "StringLike", key: "s3:prefix", values: `"home/alice/*"`, ctx: kv{"s3:prefix": {"home/alice/docs/x"}}, want: true},
		{name: "StringLike question mark", op: "StringLike", key: "k", values: `"v?"`, ctx: kv{"k": {"v1"}}, want: true},
		{name: "StringLike question mark needs one char", op: "StringLike", key: "k", values: `"v?"`, ctx: kv{"k": {"v"}}, want: false},
		{name: "StringLike is case-sensitive", op: "StringLike", key: "k", values: `"prod-*"`, ctx: kv{"k": {"PROD-db"}}, want: false},
		{name: "StringLike missing", op: "StringLike", key: "k", values: `"*"`, want: false, wantMissing: true},
		{name: "StringNotLike no match", op: "StringNotLike", key: "k", values: `"prod-*"`, ctx: kv{"k": {"dev-db"}}, want: true},
		{name: "StringNotLike match", op: "StringNotLike", key: "k", values: `["dev-*","prod-*"]`, ctx: kv{"k": {"prod-db"}}, want: false},
		{name: "StringNotLike missing is true", op: "StringNotLike", key: "k", values: `"prod-*"`, want: true, wantMissing: true},

		// Numeric operators.
		{name: "NumericEquals", op: "NumericEquals", key: "n", values: `10`, ctx: kv{"n": {"10.0"}}, want: true},
		{name: "NumericEquals string value", op: "NumericEquals", key: "n", values: `"10"`, ctx: kv{"n": {"11"}}, want: false},
		{name: "NumericEquals non-number request", op: "NumericEquals", key: "n", values: `"10"`, ctx: kv{"n": {"ten"}}, want: false},
		{name: "NumericEquals missing", op: "NumericEquals", key: "n", values: `"10"`, want: false, wantMissing: true},
		{name: "NumericNotEquals differs", op: "NumericNotEquals", key: "n", values: `"10"`, ctx: kv{"n": {"11"}}, want: true},
		{name: "NumericNotEquals equal", op: "NumericNotEquals", key: "n", values: `["10","12"]`, ctx: kv{"n": {"12"}}, want: false},
		{name: "NumericNotEquals missing is true", op: "NumericNotEquals", key: "n", values: `"10"`, want: true, wantMissing: true},
		{name: "NumericLessThan true", op: "NumericLessThan", key: "n", values: `"10"`, ctx: kv{"n": {"9.5"}}, want: true},
		{name: "NumericLessThan equal is false", op: "NumericLessThan", key: "n", values: `"10"`, ctx: kv{"n": {"10"}}, want: false},
		{name: "NumericLessThan missing", op: "NumericLessThan", key: "n", values: `"10"`, want: false, wantMissing: true},
		{name: "NumericLessThanEquals equal", op: "NumericLessThanEquals", key: "n", values: `"10"`, ctx: kv{"n": {"10"}}, want: true},
		{name: "NumericLessThanEquals greater", op: "NumericLessThanEquals", key: "n", values: `"10"`, ctx: kv{"n": {"11"}}, want: false},
		{name: "NumericGreaterThan true", op: "NumericGreaterThan", key: "n", values: `"10"`, ctx: kv{"n": {"11"}}, want: true},
		{name: "NumericGreaterThan equal is false", op: "NumericGreaterThan", key: "n", values: `"10"`, ctx: kv{"n": {"10"}}, want: false},
		{name: "NumericGreaterThanEquals equal", op: "NumericGreaterThanEquals", key: "n", values: `"10"`, ctx: kv{"n": {"10"}}, want: true},
		{name: "NumericGreaterThanEquals less", op: "NumericGreaterThanEquals", key: "n", values: `"10"`, ctx: kv{"n": {"-3"}}, want: false},

		// Date operators.
		{name: "DateEquals ISO vs epoch", op: "DateEquals", key: "aws:CurrentTime", values: `"2026-01-01T00:00:00Z"`, ctx: kv{"aws:CurrentTime": {"1767225600"}}, want: true},
		{name: "DateEquals zone offset", op: "DateEquals", key: "d", values: `"2026-01-01T01:00:00+01:00"`, ctx: kv{"d": {"2026-01-01T00:00:00Z"}}, want: true},
		{name: "DateEquals date only", op: "DateEquals", key: "d", values: `"2026-01-01"`, ctx: kv{"d": {"2026-01-01T00:00:00Z"}}, want: true},
		{name: "DateEquals epoch policy value", op: "DateEquals", key: "d", values: `1767225600`, ctx: kv{"d": {"2026-01-01T00:00:00Z"}}, want: true},
		{name: "DateEquals differs", op: "DateEquals", key: "d", values: `"2026-01-01T00:00:00Z"`, ctx: kv{"d": {"2026-01-01T00:00:01Z"}}, want: false},
		{name: "DateEquals missing", op: "DateEquals", key: "d", values: `"2026-01-01"`, want: false, wantMissing: true},
		{name: "DateNotEquals differs", op: "DateNotEquals", key: "d", values: `"2026-01-01"`, ctx: kv{"d": {"2026-01-02"}}, want: true},
		{name: "DateNotEquals equal", op: "DateNotEquals", key: "d", values: `"2026-01-01"`, ctx: kv{"d": {"2026-01-01T00:00:00Z"}}, want: false},
		{name: "DateNotEquals missing is true", op: "DateNotEquals", key: "d", values: `"2026-01-01"`, want: true, wantMissing: true},
		{name: "DateLessThan true", op: "DateLessThan", key: "aws:CurrentTime", values: `"2026-06-30T00:00:00Z"`, ctx: kv{"aws:CurrentTime": {"2026-06-29T23:59:59Z"}}, want: true},
		{name: "DateLessThan equal is false", op: "DateLessThan", key: "d", values: `"2026-06-30T00:00:00Z"`, ctx: kv{"d": {"2026-06-30T00:00:00Z"}}, want: false},
		{name: "DateLessThanEquals equal", op: "DateLessThanEquals", key: "d", values: `"2026-06-30T00:00:00Z"`, ctx: kv{"d": {"2026-06-30T00:00:00Z"}}, want: true},
		{name: "DateGreaterThan true", op: "DateGreaterThan", key: "d", values: `"2026-06-30"`, ctx: kv{"d": {"2026-07-01T00:00:00Z"}}, want: true},
		{name: "DateGreaterThan earlier", op: "DateGreaterThan", key: "d", values: `"2026-06-30"`, ctx: kv{"d": {"2026-06-01T00:00:00Z"}}, want: false},
		{name: "DateGreaterThanEquals equal", op: "DateGreaterThanEquals", key: "d", values: `"2026-06-30"`, ctx: kv{"d": {"2026-06-30T00:00:00Z"}}, want: true},
		{name: "DateGreaterThan bad request date", op: "DateGreaterThan", key: "d", values: `"2026-06-30"`, ctx: kv{"d": {"yesterday"}}, want: false},

		// Bool.
		{name: "Bool true", op: "Bool", key: "aws:SecureTransport", values: `"true"`, ctx: kv{"aws:SecureTransport": {"true"}}, want: true},
		{name: "Bool JSON literal", op: "Bool", key: "aws:MultiFactorAuthPresent", values: `true`, ctx: kv{"aws:MultiFactorAuthPresent": {"TRUE"}}, want: true},
		{name: "Bool false vs true", op: "Bool", key: "aws:SecureTransport", values: `"false"`, ctx: kv{"aws:SecureTransport": {"true"}}, want: false},
		{name: "Bool missing", op: "Bool", key: "aws:MultiFactorAuthPresent", values: `"false"`, want: false, wantMissing: true},

		// Binary.
		{name: "BinaryEquals", op: "BinaryEquals", key: "k", values: `"QmluYXJ5VmFsdWU="`, ctx: kv{"k": {"QmluYXJ5VmFsdWU="}}, want: true},
		{name: "BinaryEquals differs", op: "BinaryEquals", key: "k", values: `"QmluYXJ5VmFsdWU="`, ctx: kv{"k": {"b3RoZXI="}}, want: false},
		{name: "BinaryEquals missing", op: "BinaryEquals", key: "k", values: `"QQ=="`, want: false, wantMissing: true},

		// IP address.
		{name: "IpAddress in v4 CIDR", op: "IpAddress", key: "aws:SourceIp", values: `"203.0.113.0/24"`, ctx: kv{"aws:SourceIp": {"203.0.113.77"}}, want: true},
		{name: "IpAddress outside v4 CIDR", op: "IpAddress", key: "aws:SourceIp", values: `"203.0.113.0/24"`, ctx: kv{"aws:SourceIp": {"203.0.114.1"}}, want: false},
		{name: "IpAddress bare address", op: "IpAddress", key: "aws:SourceIp", values: `"192.0.2.1"`, ctx: kv{"aws:SourceIp": {"192.0.2.1"}}, want: true},
		{name: "IpAddress v6", op: "IpAddress", key: "aws:SourceIp", values: `["203.0.113.0/24","2001:DB8:1234:5678::/64"]`, ctx: kv{"aws:SourceIp": {"2001:db8:1234:5678::42"}}, want: true},
		{name: "IpAddress v6 outside", op: "IpAddress", key: "aws:SourceIp", values: `"2001:DB8:1234:5678::/64"`, ctx: kv{"aws:SourceIp": {"2001:db8:1234:5679::42"}}, want: false},
		{name: "IpAddress not an address", op: "IpAddress", key: "aws:SourceIp", values: `"0.0.0.0/0"`, ctx: kv{"aws:SourceIp": {"localhost"}}, want: false},
		{name: "IpAddress missing", op: "IpAddress", key: "aws:SourceIp", values: `"0.0.0.0/0"`, want: false, wantMissing: true},
		{name: "NotIpAddress outside", op: "NotIpAddress", key: "aws:SourceIp", values: `"203.0.113.0/24"`, ctx: kv{"aws:SourceIp": {"198.51.100.1"}}, want: true},
		{name: "NotIpAddress inside", op: "NotIpAddress", key: "aws:SourceIp", values: `"203.0.113.0/24"`, ctx: kv{"aws:SourceIp": {"203.0.113.1"}}, want: false},
		{name: "NotIpAddress missing is true", op: "NotIpAddress", key: "aws:SourceIp", values: `"203.0.113.0/24"`, want: true, wantMissing: true},

		// ARN operators.
		{name: "ArnEquals exact", op: "ArnEquals", key: "aws:SourceArn", values: `"arn:aws:sns:us-east-1:111111111111:topic"`, ctx: kv{"aws:SourceArn": {"arn:aws:sns:us-east-1:111111111111:topic"}}, want: true},
		{name: "ArnEquals wildcard component", op: "ArnEquals", key: "aws:SourceArn", values: `"arn:aws:sns:*:111111111111:topic"`, ctx: kv{"aws:SourceArn": {"arn:aws:sns:eu-west-1:111111111111:topic"}}, want: true},
		{name: "ArnLike resource wildcard", op: "ArnLike", key: "aws:PrincipalArn", values: `"arn:aws:iam::111111111111:role/admin-*"`, ctx: kv{"aws:PrincipalArn": {"arn:aws:iam::111111111111:role/admin-ops"}}, want: true},
		{name: "ArnLike star does not cross components", op: "ArnLike", key: "k", values: `"arn:aws:s3:*:topic"`, ctx: kv{"k": {"arn:aws:s3:us-east-1:1:topic"}}, want: false},
		{name: "ArnLike is case-sensitive", op: "ArnLike", key: "k", values: `"arn:aws:iam::111111111111:role/Admin"`, ctx: kv{"k": {"arn:aws:iam::111111111111:role/admin"}}, want: false},
		{name: "ArnLike request not an ARN", op: "ArnLike", key: "k", values: `"arn:aws:iam::*:*"`, ctx: kv{"k": {"not-an-arn"}}, want: false},
		{name: "ArnLike missing", op: "ArnLike", key: "k", values: `"arn:*:*:*:*:*"`, want: false, wantMissing: true},
		{name: "ArnNotEquals differs", op: "ArnNotEquals", key: "k", values: `"arn:aws:iam::111111111111:role/a"`, ctx: kv{"k": {"arn:aws:iam::111111111111:role/b"}}, want: true},
		{name: "ArnNotEquals missing is true", op: "ArnNotEquals", key: "k", values: `"arn:aws:iam::111111111111:role/a"`, want: true, wantMissing: true},
		{name: "ArnNotLike match", op: "ArnNotLike", key: "k", values: `"arn:aws:iam::*:role/*"`, ctx: kv{"k": {"arn:aws:iam::111111111111:role/b"}}, want: false},
		{name: "ArnNotLike missing is true", op: "ArnNotLike", key: "k", values: `"arn:aws:iam::*:role/*"`, want: true, wantMissing: true},

		// Null.
		{name: "Null true on absent key", op: "Null", key: "aws:TokenIssueTime", values: `"true"`, want: true, wantMissing: true},
		{name: "Null true on present key", op: "Null", key: "aws:TokenIssueTime", values: `"true"`, ctx: kv{"aws:TokenIssueTime": {"2026-01-01"}}, want: false},
		{name: "Null false on present key", op: "Null", key: "k", values: `false`, ctx: kv{"k": {"x"}}, want: true},
		{name: "Null false on absent key", op: "Null", key: "k", values: `"false"`, want: false, wantMissing: true},
		{name: "Null empty set is null", op: "Null", key: "aws:TagKeys", values: `"true"`, ctx: kv{"aws:TagKeys": nil}, want: true},

		// …IfExists.
		{name: "StringEqualsIfExists missing", op: "StringEqualsIfExists", key: "ec2:InstanceType", values: `"t3.micro"`, want: true, wantMissing: true},
		{name: "StringEqualsIfExists present match", op: "StringEqualsIfExists", key: "ec2:InstanceType", values: `"t3.micro"`, ctx: kv{"ec2:InstanceType": {"t3.micro"}}, want: true},
		{name: "StringEqualsIfExists present mismatch", op: "StringEqualsIfExists", key: "ec2:InstanceType", values: `"t3.micro"`, ctx: kv{"ec2:InstanceType": {"m5.large"}}, want: false},
		{name: "StringNotEqualsIfExists present equal", op: "StringNotEqualsIfExists", key: "k", values: `"a"`, ctx: kv{"k": {"a"}}, want: false},
		{name: "NumericLessThanIfExists missing", op: "NumericLessThanIfExists", key: "n", values: `"5"`, want: true, wantMissing: true},
		{name: "NumericLessThanIfExists present", op: "NumericLessThanIfExists", key: "n", values: `"5"`, ctx: kv{"n": {"7"}}, want: false},
		{name: "DateLessThanIfExists missing", op: "DateLessThanIfExists", key: "d", values: `"2026-01-01"`, want: true, wantMissing: true},
		{name: "BoolIfExists missing", op: "BoolIfExists", key: "aws:MultiFactorAuthPresent", values: `"true"`, want: true, wantMissing: true},
		{name: "BoolIfExists present false", op: "BoolIfExists", key: "aws:MultiFactorAuthPresent", values: `"true"`, ctx: kv{"aws:MultiFactorAuthPresent": {"false"}}, want: false},
		{name: "IpAddressIfExists missing", op: "IpAddressIfExists", key: "aws:SourceIp", values: `"10.0.0.0/8"`, want: true, wantMissing: true},
		{name: "ArnLikeIfExists present mismatch", op: "ArnLikeIfExists", key: "k", values: `"arn:aws:iam::*:role/x"`, ctx: kv{"k": {"arn:aws:iam::1:role/y"}}, want: false},
		{name: "BinaryEqualsIfExists missing", op: "BinaryEqualsIfExists", key: "k", values: `"QQ=="`, want: true, wantMissing: true},

		// ForAllValues / ForAnyValue.
		{name: "ForAllValues subset", op: "ForAllValues:StringEquals", key: "aws:TagKeys", values: `["env","team"]`, ctx: kv{"aws:TagKeys": {"env"}}, want: true},
		{name: "ForAllValues extra value", op: "ForAllValues:StringEquals", key: "aws:TagKeys", values: `["env","team"]`, ctx: kv{"aws:TagKeys": {"env", "cost"}}, want: false},
		{name: "ForAllValues missing key is true", op: "ForAllValues:StringEquals", key: "aws:TagKeys", values: `["env"]`, want: true, wantMissing: true},
		{name: "ForAllValues empty set is true", op: "ForAllValues:StringEquals", key: "aws:TagKeys", values: `["env"]`, ctx: kv{"aws:TagKeys": nil}, want: true},
		{name: "ForAllValues StringLike", op: "ForAllValues:StringLike", key: "aws:TagKeys", values: `"app-*"`, ctx: kv{"aws:TagKeys": {"app-a", "app-b"}}, want: true},
		{name: "ForAllValues StringNotEquals none listed", op: "ForAllValues:StringNotEquals", key: "aws:TagKeys", values: `["secret"]`, ctx: kv{"aws:TagKeys": {"env", "team"}}, want: true},
		{name: "ForAllValues StringNotEquals one listed", op: "ForAllValues:StringNotEquals", key: "aws:TagKeys", values: `["secret"]`, ctx: kv{"aws:TagKeys": {"env", "secret"}}, want: false},
		{name: "ForAnyValue overlap", op: "ForAnyValue:StringEquals", key: "aws:TagKeys", values: `["env"]`, ctx: kv{"aws:TagKeys": {"team", "env"}}, want: true},
		{name: "ForAnyValue no overlap", op: "ForAnyValue:StringEquals", key: "aws:TagKeys", values: `["env"]`, ctx: kv{"aws:TagKeys": {"team"}}, want: false},
		{name: "ForAnyValue missing key is false", op: "ForAnyValue:StringEquals", key: "aws:TagKeys", values: `["env"]`, want: false, wantMissing: true},
		{name: "ForAnyValue empty set is false", op: "ForAnyValue:StringEquals", key: "aws:TagKeys", values: `["env"]`, ctx: kv{"aws:TagKeys": nil}, want: false},
		{name: "ForAnyValue StringNotEquals one outside", op: "ForAnyValue:StringNotEquals", key: "aws:TagKeys", values: `["env"]`, ctx: kv{"aws:TagKeys": {"env", "x"}}, want: true},
		{name: "ForAnyValue StringNotEquals all listed", op: "ForAnyValue:StringNotEquals", key: "aws:TagKeys", values: `["env"]`, ctx: kv{"aws:TagKeys": {"env"}}, want: false},
		{name: "ForAnyValue IfExists missing", op: "ForAnyValue:StringLikeIfExists", key: "aws:TagKeys", values: `"x*"`, want: true, wantMissing: true},
		{name: "ForAnyValue NumericGreaterThan", op: "ForAnyValue:NumericGreaterThan", key: "n", values: `"10"`, ctx: kv{"n": {"1", "20"}}, want: true},
		{name: "ForAllValues NumericGreaterThan", op: "ForAllValues:NumericGreaterThan", key: "n", values: `"10"`, ctx: kv{"n": {"1", "20"}}, want: false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p := mustParse(t, condDoc(Version2012, tt.op, tt.key, tt.values), KindIdentity)
			c := p.Statements[0].Conditions[0]
			r := c.eval(ctxOf(tt.ctx))
			if r.ok != tt.want {
				t.Errorf("%s %s %s with %v = %v, want %v", tt.op, tt.key, tt.values, tt.ctx, r.ok, tt.want)
			}
			if got := len(r.missing) > 0; got != tt.wantMissing {
				t.Errorf("missing = %v, want missing %v", r.missing, tt.wantMissing)
			}
		})
	}
}

// TestConditionBlockLogic checks how a block combines: operators AND, keys
// within an operator AND, values for one key OR.
func TestConditionBlockLogic(t *testing.T) {
	t.Parallel()
	doc := `{"Version":"2012-10-17","Statement":{"Effect":"Allow","Action":"*","Resource":"*","Condition":{
		"StringEquals":{"aws:PrincipalTag/team":["red","blue"],"aws:RequestedRegion":"eu-west-1"},
		"Bool":{"aws:SecureTransport":"true"}}}}`
	p := mustParse(t, doc, KindIdentity)
	type kv = map[string][]string
	full := kv{"aws:PrincipalTag/team": {"blue"}, "aws:RequestedRegion": {"eu-west-1"}, "aws:SecureTransport": {"true"}}
	tests := []struct {
		name   string
		change kv
		want   bool
	}{
		{name: "all hold", want: true},
		{name: "other value of the OR list", change: kv{"aws:PrincipalTag/team": {"red"}}, want: true},
		{name: "second key of the operator fails", change: kv{"aws:RequestedRegion": {"us-east-1"}}, want: false},
		{name: "second operator fails", change: kv{"aws:SecureTransport": {"false"}}, want: false},
		{name: "first key fails", change: kv{"aws:PrincipalTag/team": {"green"}}, want: false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			m := kv{}
			for k, v := range full {
				m[k] = v
			}
			for k, v := range tt.change {
				m[k] = v
			}
			ev := evaluator{in: &Input{Request: Request{Context: ctxOf(m)}}}
			if got := ev.conditionsHold(&p.Statements[0]); got != tt.want {
				t.Errorf("conditionsHold = %v, want %v", got, tt.want)
			}
		})
	}
}

func TestParseDate(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name string
		in   string
		want string // RFC3339 in UTC, "" for invalid
	}{
		{name: "full UTC", in: "2026-03-04T05:06:07Z", want: "2026-03-04T05:06:07Z"},
		{name: "fraction", in: "2026-03-04T05:06:07.5Z", want: "2026-03-04T05:06:07.5Z"},
		{name: "offset", in: "2026-03-04T05:06:07-02:00", want: "2026-03-04T07:06:07Z"},
		{name: "minutes only", in: "2026-03-04T05:06Z", want: "2026-03-04T05:06:00Z"},
		{name: "no zone is UTC", in: "2026-03-04T05:06:07", want: "2026-03-04T05:06:07Z"},
		{name: "date", in: "2026-03-04", want: "2026-03-04T00:00:00Z"},
		{name: "month", in: "2026-03", want: "2026-03-01T00:00:00Z"},
		{name: "year", in: "2026", want: "2026-01-01T00:00:00Z"},
		{name: "epoch", in: "1767225600", want: "2026-01-01T00:00:00Z"},
		{name: "basic format", in: "20260304T050607Z", want: "2026-03-04T05:06:07Z"},
		{name: "garbage", in: "tomorrow", want: ""},
		{name: "empty", in: "", want: ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			d, ok := parseDate(tt.in)
			got := ""
			if ok {
				got = d.Format("2006-01-02T15:04:05.999999999Z07:00")
			}
			if got != tt.want {
				t.Errorf("parseDate(%q) = %q, want %q", tt.in, got, tt.want)
			}
		})
	}
}

func TestParseOperatorErrors(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name string
		op   string
		want string
	}{
		{name: "unknown", op: "StringMatches", want: `unknown condition operator "StringMatches"`},
		{name: "wrong case suggests", op: "stringequals", want: `did you mean "StringEquals"`},
		{name: "NullIfExists", op: "NullIfExists", want: "IfExists cannot be added to Null"},
		{name: "set prefix on Null", op: "ForAnyValue:Null", want: "Null tests whether a key exists"},
		{name: "unknown set prefix", op: "ForSomeValues:StringEquals", want: "unknown condition operator"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, _, _, err := parseOperator(tt.op)
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Errorf("parseOperator(%q) = %v, want error containing %q", tt.op, err, tt.want)
			}
		})
	}
}
