package api

import (
	"context"
	"encoding/xml"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/labcloud/labcloud/api/sigv4"
	"github.com/labcloud/labcloud/iamd"
	"github.com/labcloud/labcloud/internal/store"
	"github.com/labcloud/labcloud/internal/store/embedded"
)

// iamTestServer is an API server over a real embedded etcd, with the root
// key of one account.
type iamTestServer struct {
	url  string
	iam  *iamd.IAM
	acct string
	root iamd.AccessKey
}

func newIAMTestServer(t *testing.T) *iamTestServer {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	t.Cleanup(cancel)
	srv, err := embedded.Start(ctx, embedded.Config{DataDir: t.TempDir()})
	if err != nil {
		t.Fatalf("starting embedded etcd: %v", err)
	}
	t.Cleanup(func() { srv.Close() })
	cli, err := store.Dial(ctx, srv.Endpoints())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cli.Close() })
	st := store.New(cli, "/labcloud/")
	accounts := iamd.NewAccounts(st)
	a, k, err := accounts.CreateAccount(ctx, "test")
	if err != nil {
		t.Fatal(err)
	}
	i := iamd.NewIAM(st, accounts)
	hs := httptest.NewServer(New(Options{Accounts: accounts, IAM: i, Region: "lab-1"}))
	t.Cleanup(hs.Close)
	return &iamTestServer{url: hs.URL, iam: i, acct: a.ID, root: k}
}

// call sends a signed IAM request with key k and returns the status and
// body.
func (s *iamTestServer) call(t *testing.T, k iamd.AccessKey, action string, params url.Values) (int, []byte) {
	t.Helper()
	form := url.Values{"Action": {action}, "Version": {"2010-05-08"}}
	for name, vs := range params {
		form[name] = vs
	}
	body := form.Encode()
	req, err := http.NewRequest("POST", s.url+"/", strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded; charset=utf-8")
	if err := sigv4.Sign(req, []byte(body), sigv4.Key{AccessKeyID: k.AccessKeyID, SecretAccessKey: k.SecretAccessKey}, "us-east-1", "iam", time.Now()); err != nil {
		t.Fatal(err)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, b
}

// ok sends a request that must succeed and decodes its Result into out
// (nil to ignore it).
func (s *iamTestServer) ok(t *testing.T, k iamd.AccessKey, action string, params url.Values, out any) {
	t.Helper()
	status, body := s.call(t, k, action, params)
	if status != 200 {
		t.Fatalf("%s: HTTP %d: %s", action, status, body)
	}
	if out == nil {
		return
	}
	// The Result element is named after the action.
	d := xml.NewDecoder(strings.NewReader(string(body)))
	for {
		tok, err := d.Token()
		if err != nil {
			t.Fatalf("%s: no %sResult in %s", action, action, body)
		}
		if se, ok := tok.(xml.StartElement); ok && se.Name.Local == action+"Result" {
			if err := d.DecodeElement(out, &se); err != nil {
				t.Fatalf("%s: decoding %s: %v", action, body, err)
			}
			return
		}
	}
}

// fails sends a request that must fail with the status and code, and
// returns the message.
func (s *iamTestServer) fails(t *testing.T, k iamd.AccessKey, action string, params url.Values, status int, code string) string {
	t.Helper()
	got, body := s.call(t, k, action, params)
	var e struct {
		Error struct{ Type, Code, Message string }
	}
	if err := xml.Unmarshal(body, &e); err != nil {
		t.Fatalf("%s: not an error document: %s", action, body)
	}
	if got != status || e.Error.Code != code {
		t.Fatalf("%s: HTTP %d %s (%s), want %d %s", action, got, e.Error.Code, e.Error.Message, status, code)
	}
	return e.Error.Message
}

func TestIAMWire(t *testing.T) {
	s := newIAMTestServer(t)
	root := s.root

	var created struct {
		User struct {
			Path, UserName, UserId, Arn, CreateDate string
			Tags                                    struct {
				Member []struct{ Key, Value string } `xml:"member"`
			}
		}
	}
	s.ok(t, root, "CreateUser", url.Values{"UserName": {"alice"}, "Path": {"/eng/"},
		"Tags.member.1.Key": {"team"}, "Tags.member.1.Value": {"red"}}, &created)
	u := created.User
	if u.UserName != "alice" || u.Path != "/eng/" || u.Arn != "arn:aws:iam::"+s.acct+":user/eng/alice" ||
		!strings.HasPrefix(u.UserId, "AIDA") || len(u.Tags.Member) != 1 || u.Tags.Member[0].Value != "red" {
		t.Fatalf("CreateUser result %+v", u)
	}
	if _, err := time.Parse(time.RFC3339, u.CreateDate); err != nil {
		t.Errorf("CreateDate %q: %v", u.CreateDate, err)
	}

	// AWS's status codes and error codes for each class.
	msg := s.fails(t, root, "GetUser", url.Values{"UserName": {"nobody"}}, 404, "NoSuchEntity")
	if msg != "The user with name nobody cannot be found." {
		t.Errorf("NoSuchEntity message %q", msg)
	}
	s.fails(t, root, "CreateUser", url.Values{"UserName": {"ALICE"}}, 409, "EntityAlreadyExists")
	msg = s.fails(t, root, "CreateUser", url.Values{"UserName": {"x y"}}, 400, "ValidationError")
	if msg != `1 validation error detected: Value 'x y' at 'userName' failed to satisfy constraint: Member must satisfy regular expression pattern: [\w+=,.@-]+` {
		t.Errorf("ValidationError message %q", msg)
	}
	s.fails(t, root, "CreateUser", url.Values{}, 400, "MissingParameter")
	s.fails(t, root, "CreatePolicy", url.Values{"PolicyName": {"p"}, "PolicyDocument": {`{"Statement":[{"Effect":"Maybe","Action":"*","Resource":"*"}]}`}}, 400, "MalformedPolicyDocument")
	s.ok(t, root, "CreateAccessKey", url.Values{"UserName": {"alice"}}, nil)
	s.fails(t, root, "DeleteUser", url.Values{"UserName": {"alice"}}, 409, "DeleteConflict")
	s.ok(t, root, "CreateAccessKey", url.Values{"UserName": {"alice"}}, nil)
	s.fails(t, root, "CreateAccessKey", url.Values{"UserName": {"alice"}}, 409, "LimitExceeded")

	// Actions without output send no Result element.
	status, body := s.call(t, root, "TagUser", url.Values{"UserName": {"alice"}, "Tags.member.1.Key": {"a"}, "Tags.member.1.Value": {"b"}})
	if status != 200 || strings.Contains(string(body), "TagUserResult") || !strings.Contains(string(body), "<RequestId>") {
		t.Fatalf("TagUser: %d %s", status, body)
	}
}

func TestIAMPagination(t *testing.T) {
	s := newIAMTestServer(t)
	for _, n := range []string{"e", "B", "a", "d", "C"} {
		s.ok(t, s.root, "CreateUser", url.Values{"UserName": {n}}, nil)
	}
	type page struct {
		Users struct {
			Member []struct{ UserName string } `xml:"member"`
		}
		IsTruncated bool
		Marker      string
	}
	var names []string
	marker := ""
	for pages := 0; ; pages++ {
		if pages > 5 {
			t.Fatal("pagination does not end")
		}
		params := url.Values{"MaxItems": {"2"}}
		if marker != "" {
			params.Set("Marker", marker)
		}
		var p page
		s.ok(t, s.root, "ListUsers", params, &p)
		for _, u := range p.Users.Member {
			names = append(names, u.UserName)
		}
		if !p.IsTruncated {
			if p.Marker != "" {
				t.Errorf("last page has Marker %q", p.Marker)
			}
			break
		}
		if len(p.Users.Member) != 2 || p.Marker == "" {
			t.Fatalf("truncated page %+v", p)
		}
		marker = p.Marker
	}
	if strings.Join(names, ",") != "a,B,C,d,e" {
		t.Fatalf("pages gave %v, want every user once, sorted without regard to case", names)
	}
	msg := s.fails(t, s.root, "ListUsers", url.Values{"MaxItems": {"0"}}, 400, "ValidationError")
	if !strings.Contains(msg, "at 'maxItems'") {
		t.Errorf("MaxItems message %q", msg)
	}
	s.fails(t, s.root, "ListUsers", url.Values{"Marker": {"!!"}}, 400, "InvalidInput")
}

// Policy documents come back URL-encoded, as AWS sends them: every
// reserved byte %XX, spaces %20 (botocore decodes with unquote, which
// leaves "+" alone).
func TestIAMDocumentsURLEncoded(t *testing.T) {
	s := newIAMTestServer(t)
	doc := `{"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Action": "ec2:Describe*", "Resource": "*", "Condition": {"StringEquals": {"aws:PrincipalTag/team": "a+b é&c=d"}}}]}`
	s.ok(t, s.root, "CreateUser", url.Values{"UserName": {"alice"}}, nil)
	s.ok(t, s.root, "PutUserPolicy", url.Values{"UserName": {"alice"}, "PolicyName": {"p"}, "PolicyDocument": {doc}}, nil)
	var got struct{ UserName, PolicyName, PolicyDocument string }
	s.ok(t, s.root, "GetUserPolicy", url.Values{"UserName": {"ALICE"}, "PolicyName": {"p"}}, &got)
	if got.UserName != "alice" || got.PolicyName != "p" {
		t.Errorf("GetUserPolicy names %+v", got)
	}
	if strings.ContainsAny(got.PolicyDocument, " +{\"") {
		t.Fatalf("document not URL-encoded: %s", got.PolicyDocument)
	}
	for name, unescape := range map[string]func(string) (string, error){"PathUnescape": url.PathUnescape, "QueryUnescape": url.QueryUnescape} {
		back, err := unescape(got.PolicyDocument)
		if err != nil || back != doc {
			t.Errorf("%s(document) = %q, %v; want the document as put", name, back, err)
		}
	}
}

func TestEncodeDocument(t *testing.T) {
	tests := []struct{ name, in, want string }{
		{"unreserved kept", "aZ09-_.~", "aZ09-_.~"},
		{"space and plus", "a b+c", "a%20b%2Bc"},
		{"json", `{"a":"*"}`, "%7B%22a%22%3A%22%2A%22%7D"},
		{"utf-8", "é", "%C3%A9"},
		{"newline", "\n", "%0A"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := encodeDocument(tt.in); got != tt.want {
				t.Fatalf("encodeDocument(%q) = %q, want %q", tt.in, got, tt.want)
			}
		})
	}
}

// Without UserName, GetUser and the access key actions mean the calling
// user; the root user must name one.
func TestIAMCallerDefaults(t *testing.T) {
	s := newIAMTestServer(t)
	var ck struct {
		AccessKey struct{ UserName, AccessKeyId, Status, SecretAccessKey string }
	}
	s.ok(t, s.root, "CreateUser", url.Values{"UserName": {"alice"}}, nil)
	s.ok(t, s.root, "CreateAccessKey", url.Values{"UserName": {"alice"}}, &ck)
	alice := iamd.AccessKey{AccessKeyID: ck.AccessKey.AccessKeyId, SecretAccessKey: ck.AccessKey.SecretAccessKey}
	if ck.AccessKey.UserName != "alice" || ck.AccessKey.Status != "Active" || alice.SecretAccessKey == "" {
		t.Fatalf("CreateAccessKey %+v", ck)
	}

	var keys struct {
		AccessKeyMetadata struct {
			Member []struct{ UserName, AccessKeyId, Status string } `xml:"member"`
		}
	}
	s.ok(t, alice, "ListAccessKeys", nil, &keys)
	if len(keys.AccessKeyMetadata.Member) != 1 || keys.AccessKeyMetadata.Member[0].AccessKeyId != alice.AccessKeyID {
		t.Fatalf("alice's own keys: %+v", keys)
	}
	var me struct {
		User struct{ UserName, Arn string }
	}
	s.ok(t, alice, "GetUser", nil, &me)
	if me.User.UserName != "alice" {
		t.Fatalf("GetUser as alice: %+v", me)
	}
	me.User.UserName, me.User.Arn = "", ""
	s.ok(t, s.root, "GetUser", nil, &me)
	if me.User.Arn != "arn:aws:iam::"+s.acct+":root" || me.User.UserName != "" {
		t.Fatalf("GetUser as root: %+v", me)
	}
	msg := s.fails(t, s.root, "CreateAccessKey", nil, 400, "ValidationError")
	if !strings.Contains(msg, "Must specify userName") {
		t.Errorf("root CreateAccessKey message %q", msg)
	}

	// Deactivating alice's key locks her out at once.
	s.ok(t, s.root, "UpdateAccessKey", url.Values{"UserName": {"alice"}, "AccessKeyId": {alice.AccessKeyID}, "Status": {"Inactive"}}, nil)
	s.fails(t, alice, "GetUser", nil, 403, "InvalidClientTokenId")
}
