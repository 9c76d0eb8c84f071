package policy

import (
	"reflect"
	"testing"
)

const (
	acctA = "111111111111"
	acctB = "222222222222"
)

var (
	alice       = PrincipalInfo{AccountID: acctA, ARNs: []string{"arn:aws:iam::" + acctA + ":user/alice"}}
	appSession  = PrincipalInfo{AccountID: acctA, ARNs: []string{"arn:aws:iam::" + acctA + ":role/app", "arn:aws:sts::" + acctA + ":assumed-role/app/s1"}}
	bobInB      = PrincipalInfo{AccountID: acctB, ARNs: []string{"arn:aws:iam::" + acctB + ":user/bob"}}
	ec2Service  = PrincipalInfo{Service: "ec2.amazonaws.com"}
	githubOIDC  = PrincipalInfo{Federated: "arn:aws:iam::" + acctA + ":oidc-provider/token.actions.githubusercontent.com"}
	bucketARN   = "arn:aws:s3:::lab-bucket/notes.txt"
	appRoleARN  = "arn:aws:iam::" + acctA + ":role/app"
	adminRole   = "arn:aws:iam::" + acctA + ":role/admin"
	instanceARN = "arn:aws:ec2:us-east-1:" + acctA + ":instance/i-0123456789abcdef0"
)

func named(t *testing.T, typ, id string, kind Kind, doc string) NamedPolicy {
	t.Helper()
	return NamedPolicy{Source: Source{Type: typ, ID: id, Name: id}, Policy: mustParse(t, doc, kind)}
}

func namedPtr(t *testing.T, typ, id string, kind Kind, doc string) *NamedPolicy {
	t.Helper()
	np := named(t, typ, id, kind, doc)
	return &np
}

func stmt(effect, action, resource string) string {
	return `{"Version":"2012-10-17","Statement":{"Sid":"S` + effect + `","Effect":"` + effect + `","Action":"` + action + `","Resource":"` + resource + `"}}`
}

func resStmt(effect, principal, action, resource string) string {
	return `{"Version":"2012-10-17","Statement":{"Sid":"R` + effect + `","Effect":"` + effect + `","Principal":` + principal + `,"Action":"` + action + `","Resource":"` + resource + `"}}`
}

func trustStmt(principal, action string) string {
	return `{"Version":"2012-10-17","Statement":{"Sid":"Trust","Effect":"Allow","Principal":` + principal + `,"Action":"` + action + `"}}`
}

func TestDecide(t *testing.T) {
	t.Parallel()
	idAllowS3 := func() []NamedPolicy {
		return []NamedPolicy{named(t, SourceIAMPolicy, "arn:aws:iam::111111111111:policy/s3", KindIdentity, stmt("Allow", "s3:GetObject", "*"))}
	}
	tests := []struct {
		name       string
		in         func() Input
		want       string
		wantReason string
		wantVia    bool // some Match has ViaAccount
	}{
		// Identity-based policies.
		{
			name: "no policy is an implicit deny",
			in: func() Input {
				return Input{Request: Request{Action: "s3:GetObject", Resource: bucketARN, Principal: alice}}
			},
			want: ImplicitDeny, wantReason: ReasonNoIdentityAllow,
		},
		{
			name: "identity allow",
			in: func() Input {
				return Input{Request: Request{Action: "s3:GetObject", Resource: bucketARN, Principal: alice}, Identity: idAllowS3()}
			},
			want: Allowed,
		},
		{
			name: "explicit deny in another identity policy wins",
			in: func() Input {
				return Input{Request: Request{Action: "s3:GetObject", Resource: bucketARN, Principal: alice},
					Identity: append(idAllowS3(), named(t, SourceIAMPolicy, "inline-deny", KindIdentity, stmt("Deny", "s3:*", "*")))}
			},
			want: ExplicitDeny, wantReason: ReasonIdentityDeny,
		},
		{
			name: "deny and allow in one policy: deny wins",
			in: func() Input {
				return Input{Request: Request{Action: "ec2:TerminateInstances", Resource: instanceARN, Principal: alice},
					Identity: []NamedPolicy{named(t, SourceIAMPolicy, "p", KindIdentity, `{"Version":"2012-10-17","Statement":[
						{"Effect":"Allow","Action":"ec2:*","Resource":"*"},
						{"Effect":"Deny","Action":"ec2:TerminateInstances","Resource":"*"}]}`)}}
			},
			want: ExplicitDeny, wantReason: ReasonIdentityDeny,
		},
		{
			name: "deny whose condition fails does not apply",
			in: func() Input {
				return Input{Request: Request{Action: "ec2:TerminateInstances", Resource: instanceARN, Principal: alice, Context: ctxOf(map[string][]string{"aws:MultiFactorAuthPresent": {"true"}})},
					Identity: []NamedPolicy{named(t, SourceIAMPolicy, "p", KindIdentity, `{"Version":"2012-10-17","Statement":[
						{"Effect":"Allow","Action":"ec2:*","Resource":"*"},
						{"Effect":"Deny","Action":"ec2:TerminateInstances","Resource":"*","Condition":{"BoolIfExists":{"aws:MultiFactorAuthPresent":"false"}}}]}`)}}
			},
			want: Allowed,
		},

		// Resource-based policies, same account.
		{
			name: "same account: resource policy naming the user grants without identity policy",
			in: func() Input {
				return Input{Request: Request{Action: "s3:GetObject", Resource: bucketARN, Principal: alice}, PrincipalAccount: acctA, ResourceAccount: acctA,
					Resource: namedPtr(t, SourceResourcePolicy, "bucket", KindResource, resStmt("Allow", `{"AWS":"arn:aws:iam::111111111111:user/alice"}`, "s3:GetObject", "arn:aws:s3:::lab-bucket/*"))}
			},
			want: Allowed,
		},
		{
			name: "same account: resource policy naming the account delegates to identity (none)",
			in: func() Input {
				return Input{Request: Request{Action: "s3:GetObject", Resource: bucketARN, Principal: alice}, PrincipalAccount: acctA, ResourceAccount: acctA,
					Resource: namedPtr(t, SourceResourcePolicy, "bucket", KindResource, resStmt("Allow", `{"AWS":"111111111111"}`, "s3:GetObject", "arn:aws:s3:::lab-bucket/*"))}
			},
			want: ImplicitDeny, wantReason: ReasonNoIdentityAllow, wantVia: true,
		},
		{
			name: "same account: root ARN delegates to identity which allows",
			in: func() Input {
				return Input{Request: Request{Action: "s3:GetObject", Resource: bucketARN, Principal: alice}, PrincipalAccount: acctA, ResourceAccount: acctA,
					Identity: idAllowS3(),
					Resource: namedPtr(t, SourceResourcePolicy, "bucket", KindResource, resStmt("Allow", `{"AWS":"arn:aws:iam::111111111111:root"}`, "s3:GetObject", "arn:aws:s3:::lab-bucket/*"))}
			},
			want: Allowed, wantVia: true,
		},
		{
			name: "same account: identity allows with no resource policy statement matching",
			in: func() Input {
				return Input{Request: Request{Action: "s3:GetObject", Resource: bucketARN, Principal: alice}, PrincipalAccount: acctA, ResourceAccount: acctA,
					Identity: idAllowS3(),
					Resource: namedPtr(t, SourceResourcePolicy, "bucket", KindResource, resStmt("Allow", `{"AWS":"arn:aws:iam::111111111111:user/carol"}`, "s3:GetObject", "arn:aws:s3:::lab-bucket/*"))}
			},
			want: Allowed,
		},
		{
			name: "resource policy deny wins over identity allow",
			in: func() Input {
				return Input{Request: Request{Action: "s3:GetObject", Resource: bucketARN, Principal: alice}, PrincipalAccount: acctA, ResourceAccount: acctA,
					Identity: idAllowS3(),
					Resource: namedPtr(t, SourceResourcePolicy, "bucket", KindResource, resStmt("Deny", `"*"`, "s3:*", "arn:aws:s3:::lab-bucket/*"))}
			},
			want: ExplicitDeny, wantReason: ReasonResourceDeny,
		},
		{
			name: "resource policy deny naming the account applies to its users",
			in: func() Input {
				return Input{Request: Request{Action: "s3:GetObject", Resource: bucketARN, Principal: alice}, PrincipalAccount: acctA, ResourceAccount: acctA,
					Identity: idAllowS3(),
					Resource: namedPtr(t, SourceResourcePolicy, "bucket", KindResource, resStmt("Deny", `{"AWS":"111111111111"}`, "s3:*", "arn:aws:s3:::lab-bucket/*"))}
			},
			want: ExplicitDeny, wantReason: ReasonResourceDeny, wantVia: true,
		},
		{
			name: "resource policy deny for another principal does not apply",
			in: func() Input {
				return Input{Request: Request{Action: "s3:GetObject", Resource: bucketARN, Principal: alice}, PrincipalAccount: acctA, ResourceAccount: acctA,
					Identity: idAllowS3(),
					Resource: namedPtr(t, SourceResourcePolicy, "bucket", KindResource, resStmt("Deny", `{"AWS":"arn:aws:iam::111111111111:user/carol"}`, "s3:*", "arn:aws:s3:::lab-bucket/*"))}
			},
			want: Allowed,
		},
		{
			name: "NotPrincipal deny listing every identity of the caller does not apply",
			in: func() Input {
				return Input{Request: Request{Action: "s3:GetObject", Resource: bucketARN, Principal: appSession}, PrincipalAccount: acctA, ResourceAccount: acctA,
					Identity: idAllowS3(),
					Resource: namedPtr(t, SourceResourcePolicy, "bucket", KindResource, `{"Version":"2012-10-17","Statement":{"Effect":"Deny","NotPrincipal":{"AWS":["111111111111","arn:aws:iam::111111111111:role/app","arn:aws:sts::111111111111:assumed-role/app/s1"]},"Action":"s3:*","Resource":"*"}}`)}
			},
			want: Allowed,
		},
		{
			name: "NotPrincipal deny listing only the session still denies through the role",
			in: func() Input {
				return Input{Request: Request{Action: "s3:GetObject", Resource: bucketARN, Principal: appSession}, PrincipalAccount: acctA, ResourceAccount: acctA,
					Identity: idAllowS3(),
					Resource: namedPtr(t, SourceResourcePolicy, "bucket", KindResource, `{"Version":"2012-10-17","Statement":{"Effect":"Deny","NotPrincipal":{"AWS":"arn:aws:sts::111111111111:assumed-role/app/s1"},"Action":"s3:*","Resource":"*"}}`)}
			},
			want: ExplicitDeny, wantReason: ReasonResourceDeny,
		},
		{
			name: "NotPrincipal deny always applies to a principal with a boundary",
			in: func() Input {
				return Input{Request: Request{Action: "s3:GetObject", Resource: bucketARN, Principal: alice}, PrincipalAccount: acctA, ResourceAccount: acctA,
					Identity: idAllowS3(),
					Boundary: namedPtr(t, SourceBoundary, "b", KindBoundary, stmt("Allow", "s3:*", "*")),
					Resource: namedPtr(t, SourceResourcePolicy, "bucket", KindResource, `{"Version":"2012-10-17","Statement":{"Effect":"Deny","NotPrincipal":{"AWS":["111111111111","arn:aws:iam::111111111111:user/alice"]},"Action":"s3:*","Resource":"*"}}`)}
			},
			want: ExplicitDeny, wantReason: ReasonResourceDeny,
		},

		// Cross account.
		{
			name: "cross account: identity allow alone is not enough",
			in: func() Input {
				return Input{Request: Request{Action: "s3:GetObject", Resource: bucketARN, Principal: bobInB}, PrincipalAccount: acctB, ResourceAccount: acctA,
					Identity: idAllowS3()}
			},
			want: ImplicitDeny, wantReason: ReasonNoResourceAllow,
		},
		{
			name: "cross account: resource allow naming the user is not enough",
			in: func() Input {
				return Input{Request: Request{Action: "s3:GetObject", Resource: bucketARN, Principal: bobInB}, PrincipalAccount: acctB, ResourceAccount: acctA,
					Resource: namedPtr(t, SourceResourcePolicy, "bucket", KindResource, resStmt("Allow", `{"AWS":"arn:aws:iam::222222222222:user/bob"}`, "s3:GetObject", "*"))}
			},
			want: ImplicitDeny, wantReason: ReasonNoIdentityAllow,
		},
		{
			name: "cross account: both sides allow, resource names the account",
			in: func() Input {
				return Input{Request: Request{Action: "s3:GetObject", Resource: bucketARN, Principal: bobInB}, PrincipalAccount: acctB, ResourceAccount: acctA,
					Identity: idAllowS3(),
					Resource: namedPtr(t, SourceResourcePolicy, "bucket", KindResource, resStmt("Allow", `{"AWS":"222222222222"}`, "s3:GetObject", "*"))}
			},
			want: Allowed, wantVia: true,
		},
		{
			name: "cross account: resource policy for another account",
			in: func() Input {
				return Input{Request: Request{Action: "s3:GetObject", Resource: bucketARN, Principal: bobInB}, PrincipalAccount: acctB, ResourceAccount: acctA,
					Identity: idAllowS3(),
					Resource: namedPtr(t, SourceResourcePolicy, "bucket", KindResource, resStmt("Allow", `{"AWS":"333333333333"}`, "s3:GetObject", "*"))}
			},
			want: ImplicitDeny, wantReason: ReasonNoResourceAllow,
		},
		{
			name: "cross account: boundary still limits the identity side",
			in: func() Input {
				return Input{Request: Request{Action: "s3:GetObject", Resource: bucketARN, Principal: bobInB}, PrincipalAccount: acctB, ResourceAccount: acctA,
					Identity: idAllowS3(),
					Boundary: namedPtr(t, SourceBoundary, "b", KindBoundary, stmt("Allow", "ec2:*", "*")),
					Resource: namedPtr(t, SourceResourcePolicy, "bucket", KindResource, resStmt("Allow", `{"AWS":"arn:aws:iam::222222222222:user/bob"}`, "s3:GetObject", "*"))}
			},
			want: ImplicitDeny, wantReason: ReasonNoBoundaryAllow,
		},

		// Permissions boundaries.
		{
			name: "boundary allows too",
			in: func() Input {
				return Input{Request: Request{Action: "s3:GetObject", Resource: bucketARN, Principal: alice}, Identity: idAllowS3(),
					Boundary: namedPtr(t, SourceBoundary, "b", KindBoundary, stmt("Allow", "s3:*", "*"))}
			},
			want: Allowed,
		},
		{
			name: "boundary does not allow",
			in: func() Input {
				return Input{Request: Request{Action: "s3:GetObject", Resource: bucketARN, Principal: alice}, Identity: idAllowS3(),
					Boundary: namedPtr(t, SourceBoundary, "b", KindBoundary, stmt("Allow", "ec2:*", "*"))}
			},
			want: ImplicitDeny, wantReason: ReasonNoBoundaryAllow,
		},
		{
			name: "boundary alone grants nothing",
			in: func() Input {
				return Input{Request: Request{Action: "s3:GetObject", Resource: bucketARN, Principal: alice},
					Boundary: namedPtr(t, SourceBoundary, "b", KindBoundary, stmt("Allow", "*", "*"))}
			},
			want: ImplicitDeny, wantReason: ReasonNoIdentityAllow,
		},
		{
			name: "explicit deny in boundary",
			in: func() Input {
				return Input{Request: Request{Action: "s3:GetObject", Resource: bucketARN, Principal: alice}, Identity: idAllowS3(),
					Boundary: namedPtr(t, SourceBoundary, "b", KindBoundary, `{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Action":"*","Resource":"*"},{"Effect":"Deny","Action":"s3:GetObject","Resource":"*"}]}`)}
			},
			want: ExplicitDeny, wantReason: ReasonBoundaryDeny,
		},
		{
			name: "boundary does not limit a resource grant to the user ARN",
			in: func() Input {
				return Input{Request: Request{Action: "s3:GetObject", Resource: bucketARN, Principal: alice}, PrincipalAccount: acctA, ResourceAccount: acctA,
					Boundary: namedPtr(t, SourceBoundary, "b", KindBoundary, stmt("Allow", "ec2:*", "*")),
					Resource: namedPtr(t, SourceResourcePolicy, "bucket", KindResource, resStmt("Allow", `{"AWS":"arn:aws:iam::111111111111:user/alice"}`, "s3:GetObject", "*"))}
			},
			want: Allowed,
		},
		{
			name: "boundary limits a resource grant to the role ARN",
			in: func() Input {
				return Input{Request: Request{Action: "s3:GetObject", Resource: bucketARN, Principal: appSession}, PrincipalAccount: acctA, ResourceAccount: acctA,
					Boundary: namedPtr(t, SourceBoundary, "b", KindBoundary, stmt("Allow", "ec2:*", "*")),
					Resource: namedPtr(t, SourceResourcePolicy, "bucket", KindResource, resStmt("Allow", `{"AWS":"arn:aws:iam::111111111111:role/app"}`, "s3:GetObject", "*"))}
			},
			want: ImplicitDeny, wantReason: ReasonNoIdentityAllow,
		},
		{
			name: "role ARN grant within the boundary",
			in: func() Input {
				return Input{Request: Request{Action: "s3:GetObject", Resource: bucketARN, Principal: appSession}, PrincipalAccount: acctA, ResourceAccount: acctA,
					Boundary: namedPtr(t, SourceBoundary, "b", KindBoundary, stmt("Allow", "s3:*", "*")),
					Resource: namedPtr(t, SourceResourcePolicy, "bucket", KindResource, resStmt("Allow", `{"AWS":"arn:aws:iam::111111111111:role/app"}`, "s3:GetObject", "*"))}
			},
			want: Allowed,
		},
		{
			name: "boundary does not limit a resource grant to the session ARN",
			in: func() Input {
				return Input{Request: Request{Action: "s3:GetObject", Resource: bucketARN, Principal: appSession}, PrincipalAccount: acctA, ResourceAccount: acctA,
					Boundary: namedPtr(t, SourceBoundary, "b", KindBoundary, stmt("Allow", "ec2:*", "*")),
					Resource: namedPtr(t, SourceResourcePolicy, "bucket", KindResource, resStmt("Allow", `{"AWS":"arn:aws:sts::111111111111:assumed-role/app/s1"}`, "s3:GetObject", "*"))}
			},
			want: Allowed,
		},

		// Session policies.
		{
			name: "session policy allows too",
			in: func() Input {
				return Input{Request: Request{Action: "s3:GetObject", Resource: bucketARN, Principal: appSession}, Identity: idAllowS3(),
					Session: []NamedPolicy{named(t, SourceSessionPolicy, "inline", KindSession, stmt("Allow", "s3:Get*", "*"))}}
			},
			want: Allowed,
		},
		{
			name: "session policy narrows the role",
			in: func() Input {
				return Input{Request: Request{Action: "s3:GetObject", Resource: bucketARN, Principal: appSession}, Identity: idAllowS3(),
					Session: []NamedPolicy{named(t, SourceSessionPolicy, "inline", KindSession, stmt("Allow", "ec2:Describe*", "*"))}}
			},
			want: ImplicitDeny, wantReason: ReasonNoSessionAllow,
		},
		{
			name: "session policy alone grants nothing",
			in: func() Input {
				return Input{Request: Request{Action: "s3:GetObject", Resource: bucketARN, Principal: appSession},
					Session: []NamedPolicy{named(t, SourceSessionPolicy, "inline", KindSession, stmt("Allow", "*", "*"))}}
			},
			want: ImplicitDeny, wantReason: ReasonNoIdentityAllow,
		},
		{
			name: "explicit deny in session policy",
			in: func() Input {
				return Input{Request: Request{Action: "s3:GetObject", Resource: bucketARN, Principal: appSession}, Identity: idAllowS3(),
					Session: []NamedPolicy{named(t, SourceSessionPolicy, "inline", KindSession, `{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Action":"*","Resource":"*"},{"Effect":"Deny","Action":"s3:*","Resource":"*"}]}`)}}
			},
			want: ExplicitDeny, wantReason: ReasonSessionDeny,
		},
		{
			name: "empty non-nil session list allows nothing",
			in: func() Input {
				return Input{Request: Request{Action: "s3:GetObject", Resource: bucketARN, Principal: appSession}, Identity: idAllowS3(), Session: []NamedPolicy{}}
			},
			want: ImplicitDeny, wantReason: ReasonNoSessionAllow,
		},
		{
			name: "any one of several session policies is enough",
			in: func() Input {
				return Input{Request: Request{Action: "s3:GetObject", Resource: bucketARN, Principal: appSession}, Identity: idAllowS3(),
					Session: []NamedPolicy{
						named(t, SourceSessionPolicy, "inline", KindSession, stmt("Allow", "ec2:*", "*")),
						named(t, SourceSessionPolicy, "arn:aws:iam::111111111111:policy/s", KindSession, stmt("Allow", "s3:GetObject", "*"))}}
			},
			want: Allowed,
		},
		{
			name: "session policy limits a resource grant to the role ARN",
			in: func() Input {
				return Input{Request: Request{Action: "s3:GetObject", Resource: bucketARN, Principal: appSession}, PrincipalAccount: acctA, ResourceAccount: acctA,
					Session:  []NamedPolicy{named(t, SourceSessionPolicy, "inline", KindSession, stmt("Allow", "ec2:*", "*"))},
					Resource: namedPtr(t, SourceResourcePolicy, "bucket", KindResource, resStmt("Allow", `{"AWS":"arn:aws:iam::111111111111:role/app"}`, "s3:GetObject", "*"))}
			},
			want: ImplicitDeny, wantReason: ReasonNoIdentityAllow,
		},
		{
			name: "session policy does not limit a resource grant to the session ARN",
			in: func() Input {
				return Input{Request: Request{Action: "s3:GetObject", Resource: bucketARN, Principal: appSession}, PrincipalAccount: acctA, ResourceAccount: acctA,
					Session:  []NamedPolicy{named(t, SourceSessionPolicy, "inline", KindSession, stmt("Allow", "ec2:*", "*"))},
					Resource: namedPtr(t, SourceResourcePolicy, "bucket", KindResource, resStmt("Allow", `{"AWS":"arn:aws:sts::111111111111:assumed-role/app/s1"}`, "s3:GetObject", "*"))}
			},
			want: Allowed,
		},

		// Trust policies.
		{
			name: "trust names the user: allowed without identity policy",
			in: func() Input {
				return Input{Request: Request{Action: "sts:AssumeRole", Resource: adminRole, Principal: alice}, PrincipalAccount: acctA, ResourceAccount: acctA,
					Resource: namedPtr(t, SourceResourcePolicy, "admin", KindTrust, trustStmt(`{"AWS":"arn:aws:iam::111111111111:user/alice"}`, "sts:AssumeRole"))}
			},
			want: Allowed,
		},
		{
			name: "trust names the account: identity must allow (it does)",
			in: func() Input {
				return Input{Request: Request{Action: "sts:AssumeRole", Resource: adminRole, Principal: alice}, PrincipalAccount: acctA, ResourceAccount: acctA,
					Identity: []NamedPolicy{named(t, SourceIAMPolicy, "assume", KindIdentity, stmt("Allow", "sts:AssumeRole", adminRole))},
					Resource: namedPtr(t, SourceResourcePolicy, "admin", KindTrust, trustStmt(`{"AWS":"arn:aws:iam::111111111111:root"}`, "sts:AssumeRole"))}
			},
			want: Allowed, wantVia: true,
		},
		{
			name: "trust names the account: no identity policy",
			in: func() Input {
				return Input{Request: Request{Action: "sts:AssumeRole", Resource: adminRole, Principal: alice}, PrincipalAccount: acctA, ResourceAccount: acctA,
					Resource: namedPtr(t, SourceResourcePolicy, "admin", KindTrust, trustStmt(`{"AWS":"111111111111"}`, "sts:AssumeRole"))}
			},
			want: ImplicitDeny, wantReason: ReasonNoIdentityAllow, wantVia: true,
		},
		{
			name: "trust does not match: identity allow is not enough",
			in: func() Input {
				return Input{Request: Request{Action: "sts:AssumeRole", Resource: adminRole, Principal: alice}, PrincipalAccount: acctA, ResourceAccount: acctA,
					Identity: []NamedPolicy{named(t, SourceIAMPolicy, "assume", KindIdentity, stmt("Allow", "sts:AssumeRole", "*"))},
					Resource: namedPtr(t, SourceResourcePolicy, "admin", KindTrust, trustStmt(`{"Service":"ec2.amazonaws.com"}`, "sts:AssumeRole"))}
			},
			want: ImplicitDeny, wantReason: ReasonNoResourceAllow,
		},
		{
			name: "trust names a role: its sessions may assume (role chaining)",
			in: func() Input {
				return Input{Request: Request{Action: "sts:AssumeRole", Resource: adminRole, Principal: appSession}, PrincipalAccount: acctA, ResourceAccount: acctA,
					Resource: namedPtr(t, SourceResourcePolicy, "admin", KindTrust, trustStmt(`{"AWS":"`+appRoleARN+`"}`, "sts:AssumeRole"))}
			},
			want: Allowed,
		},
		{
			name: "trust for a service principal",
			in: func() Input {
				return Input{Request: Request{Action: "sts:AssumeRole", Resource: appRoleARN, Principal: ec2Service}, ResourceAccount: acctA,
					Resource: namedPtr(t, SourceResourcePolicy, "app", KindTrust, trustStmt(`{"Service":"ec2.amazonaws.com"}`, "sts:AssumeRole"))}
			},
			want: Allowed,
		},
		{
			name: "trust for another service",
			in: func() Input {
				return Input{Request: Request{Action: "sts:AssumeRole", Resource: appRoleARN, Principal: ec2Service}, ResourceAccount: acctA,
					Resource: namedPtr(t, SourceResourcePolicy, "app", KindTrust, trustStmt(`{"Service":"lambda.amazonaws.com"}`, "sts:AssumeRole"))}
			},
			want: ImplicitDeny, wantReason: ReasonNoResourceAllow,
		},
		{
			name: "trust for a federated provider with a condition",
			in: func() Input {
				return Input{Request: Request{Action: "sts:AssumeRoleWithWebIdentity", Resource: appRoleARN, Principal: githubOIDC,
					Context: ctxOf(map[string][]string{"token.actions.githubusercontent.com:sub": {"repo:lab/app:ref:refs/heads/main"}})}, ResourceAccount: acctA,
					Resource: namedPtr(t, SourceResourcePolicy, "app", KindTrust, `{"Version":"2012-10-17","Statement":{"Effect":"Allow","Principal":{"Federated":"`+githubOIDC.Federated+`"},"Action":"sts:AssumeRoleWithWebIdentity","Condition":{"StringLike":{"token.actions.githubusercontent.com:sub":"repo:lab/app:*"}}}}`)}
			},
			want: Allowed,
		},
		{
			name: "trust star matches anyone",
			in: func() Input {
				return Input{Request: Request{Action: "sts:AssumeRole", Resource: adminRole, Principal: alice}, PrincipalAccount: acctA, ResourceAccount: acctA,
					Resource: namedPtr(t, SourceResourcePolicy, "admin", KindTrust, trustStmt(`"*"`, "sts:AssumeRole"))}
			},
			want: Allowed,
		},
		{
			name: "cross-account trust naming the account plus identity allow",
			in: func() Input {
				return Input{Request: Request{Action: "sts:AssumeRole", Resource: adminRole, Principal: bobInB}, PrincipalAccount: acctB, ResourceAccount: acctA,
					Identity: []NamedPolicy{named(t, SourceIAMPolicy, "assume", KindIdentity, stmt("Allow", "sts:AssumeRole", "arn:aws:iam::111111111111:role/*"))},
					Resource: namedPtr(t, SourceResourcePolicy, "admin", KindTrust, trustStmt(`{"AWS":"222222222222"}`, "sts:AssumeRole"))}
			},
			want: Allowed, wantVia: true,
		},
		{
			name: "cross-account trust naming the user but no identity allow",
			in: func() Input {
				return Input{Request: Request{Action: "sts:AssumeRole", Resource: adminRole, Principal: bobInB}, PrincipalAccount: acctB, ResourceAccount: acctA,
					Resource: namedPtr(t, SourceResourcePolicy, "admin", KindTrust, trustStmt(`{"AWS":"arn:aws:iam::222222222222:user/bob"}`, "sts:AssumeRole"))}
			},
			want: ImplicitDeny, wantReason: ReasonNoIdentityAllow,
		},
		{
			name: "trust action wildcard covers TagSession",
			in: func() Input {
				return Input{Request: Request{Action: "sts:TagSession", Resource: adminRole, Principal: alice}, PrincipalAccount: acctA, ResourceAccount: acctA,
					Resource: namedPtr(t, SourceResourcePolicy, "admin", KindTrust, `{"Version":"2012-10-17","Statement":{"Effect":"Allow","Principal":{"AWS":"arn:aws:iam::111111111111:user/alice"},"Action":["sts:AssumeRole","sts:TagSession"]}}`)}
			},
			want: Allowed,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			d := Decide(tt.in())
			if d.Effect != tt.want || d.DenyReason != tt.wantReason {
				t.Errorf("Decide = %s (%q), want %s (%q); matched %+v", d.Effect, d.DenyReason, tt.want, tt.wantReason, d.Matched)
			}
			via := false
			for _, m := range d.Matched {
				via = via || m.ViaAccount
			}
			if via != tt.wantVia {
				t.Errorf("ViaAccount in matches = %v, want %v (%+v)", via, tt.wantVia, d.Matched)
			}
			if d.Effect == Allowed && len(d.Matched) == 0 {
				t.Errorf("allowed with no matched statement")
			}
		})
	}
}

func TestDecideMatchedStatements(t *testing.T) {
	t.Parallel()
	doc := "{\"Version\":\"2012-10-17\",\"Statement\":[\n" +
		"  {\"Sid\":\"AllowEC2\",\"Effect\":\"Allow\",\"Action\":\"ec2:*\",\"Resource\":\"*\"},\n" +
		"  {\"Sid\":\"DenyTerminate\",\"Effect\":\"Deny\",\"Action\":\"ec2:TerminateInstances\",\"Resource\":\"*\"}\n]}"
	src := Source{Type: SourceIAMPolicy, ID: "arn:aws:iam::111111111111:policy/ops", Name: "ops"}
	in := Input{Request: Request{Action: "ec2:TerminateInstances", Resource: instanceARN, Principal: alice},
		Identity: []NamedPolicy{{Source: src, Policy: mustParse(t, doc, KindIdentity)}}}
	d := Decide(in)
	want := []Match{{Source: src, StatementIndex: 1, Sid: "DenyTerminate", Effect: "Deny",
		Start: Position{Line: 3, Column: 3}, End: Position{Line: 3, Column: 90}}}
	if !reflect.DeepEqual(d.Matched, want) {
		t.Errorf("explicit deny Matched = %+v, want %+v", d.Matched, want)
	}
	in.Action = "ec2:StartInstances"
	d = Decide(in)
	want = []Match{{Source: src, StatementIndex: 0, Sid: "AllowEC2", Effect: "Allow",
		Start: Position{Line: 2, Column: 3}, End: Position{Line: 2, Column: 69}}}
	if !reflect.DeepEqual(d.Matched, want) {
		t.Errorf("allowed Matched = %+v, want %+v", d.Matched, want)
	}
}

// TestCourseExample is the IAM unit's worked example: operators may start
// and stop only production instances, and only when they are DBAdmins.
func TestCourseExample(t *testing.T) {
	t.Parallel()
	doc := `{
  "Version": "2012-10-17",
  "Statement": [{
    "Sid": "StartStopProductionForDBAdmins",
    "Effect": "Allow",
    "Action": ["ec2:StartInstances", "ec2:StopInstances"],
    "Resource": "arn:aws:ec2:*:*:instance/*",
    "Condition": {
      "StringEquals": {
        "aws:PrincipalTag/Department": "DBAdmins",
        "ec2:ResourceTag/Environment": "Production"
      }
    }
  }]
}`
	pol := NamedPolicy{Source: Source{Type: SourceIAMPolicy, ID: "arn:aws:iam::111111111111:policy/DBAdminStartStop"}, Policy: mustParse(t, doc, KindIdentity)}
	type kv = map[string][]string
	tests := []struct {
		name        string
		action      string
		ctx         kv
		want        string
		wantMissing []string
	}{
		{name: "DBAdmin starts a production instance", action: "ec2:StartInstances", ctx: kv{"aws:PrincipalTag/Department": {"DBAdmins"}, "ec2:ResourceTag/Environment": {"Production"}}, want: Allowed},
		{name: "DBAdmin stops a production instance", action: "ec2:StopInstances", ctx: kv{"aws:PrincipalTag/Department": {"DBAdmins"}, "ec2:ResourceTag/Environment": {"Production"}}, want: Allowed},
		{name: "DBAdmin may not terminate", action: "ec2:TerminateInstances", ctx: kv{"aws:PrincipalTag/Department": {"DBAdmins"}, "ec2:ResourceTag/Environment": {"Production"}}, want: ImplicitDeny},
		{name: "wrong department", action: "ec2:StartInstances", ctx: kv{"aws:PrincipalTag/Department": {"WebDevs"}, "ec2:ResourceTag/Environment": {"Production"}}, want: ImplicitDeny},
		{name: "department value is case-sensitive", action: "ec2:StartInstances", ctx: kv{"aws:PrincipalTag/Department": {"dbadmins"}, "ec2:ResourceTag/Environment": {"Production"}}, want: ImplicitDeny},
		{name: "wrong environment", action: "ec2:StartInstances", ctx: kv{"aws:PrincipalTag/Department": {"DBAdmins"}, "ec2:ResourceTag/Environment": {"Development"}}, want: ImplicitDeny},
		{name: "untagged instance", action: "ec2:StartInstances", ctx: kv{"aws:PrincipalTag/Department": {"DBAdmins"}}, want: ImplicitDeny, wantMissing: []string{"ec2:ResourceTag/Environment"}},
		{name: "untagged user and instance", action: "ec2:StopInstances", want: ImplicitDeny, wantMissing: []string{"aws:PrincipalTag/Department", "ec2:ResourceTag/Environment"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			d := Decide(Input{Request: Request{Action: tt.action, Resource: instanceARN, Principal: alice, Context: ctxOf(tt.ctx)}, Identity: []NamedPolicy{pol}})
			if d.Effect != tt.want {
				t.Errorf("Effect = %s, want %s", d.Effect, tt.want)
			}
			if d.Effect == ImplicitDeny && d.DenyReason != ReasonNoIdentityAllow {
				t.Errorf("DenyReason = %q", d.DenyReason)
			}
			if !reflect.DeepEqual(nonNil(d.MissingContextValues), nonNil(tt.wantMissing)) {
				t.Errorf("MissingContextValues = %q, want %q", d.MissingContextValues, tt.wantMissing)
			}
		})
	}
}

func TestContext(t *testing.T) {
	t.Parallel()
	c := NewContext()
	c.Set("AWS:PrincipalTag/Team", "red", "blue")
	c.Set("aws:TagKeys")
	tests := []struct {
		name        string
		key         string
		want        []string
		wantPresent bool
	}{
		{name: "case-insensitive", key: "aws:principaltag/team", want: []string{"red", "blue"}, wantPresent: true},
		{name: "present and empty", key: "aws:tagkeys", want: []string{}, wantPresent: true},
		{name: "absent", key: "aws:username", wantPresent: false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, ok := c.Get(tt.key)
			if ok != tt.wantPresent || (ok && !reflect.DeepEqual(got, tt.want)) {
				t.Errorf("Get(%q) = %q, %v; want %q, %v", tt.key, got, ok, tt.want, tt.wantPresent)
			}
		})
	}
	var nilCtx *Context
	if _, ok := nilCtx.Get("x"); ok {
		t.Errorf("nil context has a key")
	}
}
