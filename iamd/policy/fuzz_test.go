package policy

import (
	"bytes"
	"errors"
	"reflect"
	"testing"
)

// FuzzParse checks that Parse never panics, that every rejection is a
// *MalformedError with a message, and that an accepted document survives
// a round trip through MarshalJSON unchanged — the property iamd relies on
// when it re-reads what it stored. Decide runs on every accepted policy so
// that evaluation of odd but valid documents is fuzzed too.
func FuzzParse(f *testing.F) {
	seeds := []string{
		`{"Version":"2012-10-17","Statement":{"Effect":"Allow","Action":"*","Resource":"*"}}`,
		`{"Version":"2012-10-17","Statement":[{"Sid":"A1","Effect":"Deny","NotAction":["iam:*","sts:Get?"],"NotResource":"arn:aws:iam::*:user/${aws:username}"}]}`,
		`{"Statement":{"Effect":"Allow","Action":"s3:Get*","Resource":"arn:aws:s3:::b/${aws:username}","Condition":{"StringLike":{"s3:prefix":["home/*",""]}}}}`,
		`{"Version":"2012-10-17","Statement":{"Effect":"Allow","Action":"ec2:StartInstances","Resource":"arn:aws:ec2:*:*:instance/*","Condition":{"StringEquals":{"aws:PrincipalTag/Department":"DBAdmins","ec2:ResourceTag/Environment":"Production"},"IpAddress":{"aws:SourceIp":["10.0.0.0/8","2001:db8::/32"]},"DateLessThan":{"aws:CurrentTime":"2030-01-01T00:00:00Z"},"NumericLessThanEquals":{"n":5},"Bool":{"aws:SecureTransport":true},"Null":{"aws:TokenIssueTime":"false"},"ForAllValues:StringEquals":{"aws:TagKeys":["a","b"]},"ForAnyValue:ArnLikeIfExists":{"aws:SourceArn":"arn:aws:sns:*:*:t"},"BinaryEquals":{"k":"QQ=="}}}}`,
		`{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Principal":{"AWS":["111111111111","arn:aws:iam::111111111111:role/app"],"Service":"ec2.amazonaws.com"},"Action":["sts:AssumeRole","sts:TagSession"]}]}`,
		`{"Version":"2012-10-17","Statement":{"Effect":"Deny","NotPrincipal":{"AWS":"arn:aws:sts::111111111111:assumed-role/app/s"},"Action":"s3:*","Resource":"arn:aws:s3:::b/*"}}`,
		`{"Version":"2012-10-17","Statement":{"Effect":"Permit","Action":"*","Resource":"*"}}`,
		`{"Version":"2012-10-17","Statement":[`,
		`{"Version":"2012-10-17","Statement":{"Effect":"Allow","Action":"*","Resource":"arn:aws:s3:::${*}${?}${$}${aws:PrincipalTag/t, 'd'}"}}`,
		`[]`,
		``,
	}
	for i, s := range seeds {
		f.Add(s, uint8(i%5))
	}
	ctx := ctxOf(map[string][]string{
		"aws:username": {"alice"}, "aws:PrincipalTag/Department": {"DBAdmins"},
		"ec2:ResourceTag/Environment": {"Production"}, "aws:SourceIp": {"10.1.2.3"},
		"aws:CurrentTime": {"2026-01-01T00:00:00Z"}, "aws:TagKeys": {"a"}, "n": {"3"},
		"aws:SecureTransport": {"true"},
	})
	f.Fuzz(func(t *testing.T, doc string, k uint8) {
		kind := Kind(k % 5)
		p, err := Parse(doc, kind)
		if err != nil {
			var me *MalformedError
			if !errors.As(err, &me) || me.Message == "" {
				t.Fatalf("error %T %q is not a *MalformedError with a message", err, err)
			}
			return
		}
		b, err := p.MarshalJSON()
		if err != nil {
			t.Fatalf("MarshalJSON: %v", err)
		}
		q, err := Parse(string(b), kind)
		if err != nil {
			t.Fatalf("re-parse of canonical form failed: %v\noriginal: %q\ncanonical: %s", err, doc, b)
		}
		if !reflect.DeepEqual(exported(p), exported(q)) {
			t.Fatalf("re-parse changed the policy:\n%+v\n%+v", exported(p), exported(q))
		}
		b2, _ := q.MarshalJSON()
		if !bytes.Equal(b, b2) {
			t.Fatalf("canonical form not stable:\n%s\n%s", b, b2)
		}
		for _, req := range []Request{
			{Action: "ec2:StartInstances", Resource: "arn:aws:ec2:us-east-1:111111111111:instance/i-1", Principal: appSession, Context: ctx},
			{Action: "sts:AssumeRole", Resource: "arn:aws:iam::111111111111:role/app", Principal: alice, Context: ctx},
		} {
			np := NamedPolicy{Policy: p}
			nq := NamedPolicy{Policy: q}
			in := Input{Request: req, PrincipalAccount: acctA, ResourceAccount: acctA}
			inQ := in
			if kind == KindResource || kind == KindTrust {
				in.Resource, inQ.Resource = &np, &nq
			} else {
				in.Identity, inQ.Identity = []NamedPolicy{np}, []NamedPolicy{nq}
			}
			d1, d2 := Decide(in), Decide(inQ)
			if d1.Effect != d2.Effect || d1.DenyReason != d2.DenyReason {
				t.Fatalf("decision changed after round trip: %+v vs %+v", d1, d2)
			}
		}
	})
}
