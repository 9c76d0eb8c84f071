package policy

import "testing"

func TestGlobMatch(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name       string
		pattern, s string
		want       bool
	}{
		{name: "exact", pattern: "abc", s: "abc", want: true},
		{name: "exact differs", pattern: "abc", s: "abd", want: false},
		{name: "star matches empty", pattern: "a*", s: "a", want: true},
		{name: "star in middle", pattern: "a*c", s: "abbbc", want: true},
		{name: "star backtracks", pattern: "*ab", s: "aab", want: true},
		{name: "two stars", pattern: "*a*b*", s: "xxaxxbxx", want: true},
		{name: "question one char", pattern: "a?c", s: "abc", want: true},
		{name: "question not zero chars", pattern: "a?c", s: "ac", want: false},
		{name: "question one rune", pattern: "?", s: "é", want: true},
		{name: "escaped star literal", pattern: `a\*`, s: "a*", want: true},
		{name: "escaped star not wildcard", pattern: `a\*`, s: "ab", want: false},
		{name: "escaped question", pattern: `\?`, s: "x", want: false},
		{name: "escaped backslash", pattern: `a\\b`, s: `a\b`, want: true},
		{name: "trailing text after star", pattern: "*.txt", s: "notes.md", want: false},
		{name: "empty pattern", pattern: "", s: "", want: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := globMatch(tt.pattern, tt.s); got != tt.want {
				t.Errorf("globMatch(%q, %q) = %v, want %v", tt.pattern, tt.s, got, tt.want)
			}
		})
	}
}

func TestArnMatch(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name           string
		pattern, value string
		want           bool
	}{
		{name: "star matches anything", pattern: "*", value: "arn:aws:ec2:us-east-1:111111111111:instance/i-1", want: true},
		{name: "star matches star", pattern: "*", value: "*", want: true},
		{name: "exact", pattern: "arn:aws:ec2:us-east-1:111111111111:instance/i-1", value: "arn:aws:ec2:us-east-1:111111111111:instance/i-1", want: true},
		{name: "wildcard region and account", pattern: "arn:aws:ec2:*:*:instance/*", value: "arn:aws:ec2:eu-west-1:111111111111:instance/i-1", want: true},
		{name: "service differs", pattern: "arn:aws:ec2:*:*:*", value: "arn:aws:s3:::bucket", want: false},
		{name: "empty region and account must match empty", pattern: "arn:aws:s3:::bucket/*", value: "arn:aws:s3:::bucket/key/with:colon", want: true},
		{name: "star does not swallow a colon", pattern: "arn:aws:ec2:us-*:instance/i-1", value: "arn:aws:ec2:us-east-1:111111111111:instance/i-1", want: false},
		{name: "star in region only spans region", pattern: "arn:aws:ec2:*:222222222222:instance/*", value: "arn:aws:ec2:us-east-1:111111111111:instance/i-1", want: false},
		{name: "resource part keeps colons", pattern: "arn:aws:logs:*:*:log-group:app:*", value: "arn:aws:logs:us-east-1:111111111111:log-group:app:log-stream:x", want: true},
		{name: "question mark in account", pattern: "arn:aws:ec2:*:11111111111?:instance/*", value: "arn:aws:ec2:r:111111111112:instance/i", want: true},
		{name: "case-sensitive", pattern: "arn:aws:iam::111111111111:user/Alice", value: "arn:aws:iam::111111111111:user/alice", want: false},
		{name: "partition wildcard", pattern: "arn:*:iam::*:root", value: "arn:aws-cn:iam::111111111111:root", want: true},
		{name: "request star against ARN pattern", pattern: "arn:aws:ec2:*:*:instance/*", value: "*", want: false},
		{name: "escaped colon stays in component", pattern: `arn:aws:s3:::a\:b`, value: "arn:aws:s3:::a:b", want: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := arnMatch(tt.pattern, tt.value); got != tt.want {
				t.Errorf("arnMatch(%q, %q) = %v, want %v", tt.pattern, tt.value, got, tt.want)
			}
		})
	}
}

func TestStatementMatching(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name     string
		elements string // Action/NotAction and Resource/NotResource elements
		action   string
		resource string
		want     bool
	}{
		{name: "action exact", elements: `"Action":"ec2:StartInstances","Resource":"*"`, action: "ec2:StartInstances", resource: "*", want: true},
		{name: "action case-insensitive", elements: `"Action":"EC2:startinstances","Resource":"*"`, action: "ec2:StartInstances", resource: "*", want: true},
		{name: "action wildcard", elements: `"Action":"ec2:Describe*","Resource":"*"`, action: "ec2:DescribeVpcs", resource: "*", want: true},
		{name: "action question mark", elements: `"Action":"ec2:?tartInstances","Resource":"*"`, action: "ec2:StartInstances", resource: "*", want: true},
		{name: "action other service", elements: `"Action":"ec2:*","Resource":"*"`, action: "iam:CreateUser", resource: "*", want: false},
		{name: "action list", elements: `"Action":["iam:Get*","ec2:Start*"],"Resource":"*"`, action: "ec2:StartInstances", resource: "*", want: true},
		{name: "star action", elements: `"Action":"*","Resource":"*"`, action: "sts:GetCallerIdentity", resource: "*", want: true},
		{name: "NotAction excludes listed", elements: `"NotAction":"iam:*","Resource":"*"`, action: "iam:CreateUser", resource: "*", want: false},
		{name: "NotAction matches others", elements: `"NotAction":"iam:*","Resource":"*"`, action: "ec2:RunInstances", resource: "*", want: true},
		{name: "resource ARN", elements: `"Action":"*","Resource":"arn:aws:ec2:*:111111111111:instance/*"`, action: "ec2:StopInstances", resource: "arn:aws:ec2:us-east-1:111111111111:instance/i-0abc", want: true},
		{name: "resource other account", elements: `"Action":"*","Resource":"arn:aws:ec2:*:111111111111:instance/*"`, action: "ec2:StopInstances", resource: "arn:aws:ec2:us-east-1:222222222222:instance/i-0abc", want: false},
		{name: "NotResource excludes listed", elements: `"Action":"*","NotResource":"arn:aws:ec2:*:*:volume/*"`, action: "ec2:DeleteVolume", resource: "arn:aws:ec2:us-east-1:111111111111:volume/vol-1", want: false},
		{name: "NotResource matches others", elements: `"Action":"*","NotResource":"arn:aws:ec2:*:*:volume/*"`, action: "ec2:TerminateInstances", resource: "arn:aws:ec2:us-east-1:111111111111:instance/i-1", want: true},
		{name: "NotAction with NotResource", elements: `"NotAction":"ec2:Describe*","NotResource":"arn:aws:ec2:*:*:volume/*"`, action: "ec2:DescribeVolumes", resource: "arn:aws:ec2:r:1:instance/i", want: false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p := mustParse(t, `{"Version":"2012-10-17","Statement":{"Effect":"Allow",`+tt.elements+`}}`, KindIdentity)
			d := Decide(Input{Request: Request{Action: tt.action, Resource: tt.resource}, Identity: []NamedPolicy{{Policy: p}}})
			if got := d.Allowed(); got != tt.want {
				t.Errorf("allowed = %v, want %v (%+v)", got, tt.want, d)
			}
		})
	}
}
