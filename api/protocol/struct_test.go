package protocol

import (
	"bytes"
	"encoding/xml"
	"errors"
	"net/url"
	"reflect"
	"strings"
	"testing"
	"time"
)

// Request and response structs in the style handlers will use, copied from
// the shapes of the real operations (field names = botocore member names,
// tags = botocore traits).

type describeRegionsInput struct {
	AllRegions  *bool
	DryRun      *bool     `locationName:"dryRun"`
	Filters     []*filter `locationName:"Filter" locationNameList:"Filter"`
	RegionNames []string  `locationName:"RegionName" locationNameList:"RegionName"`
}

type filter struct {
	Name   *string
	Values []string `locationName:"Value" locationNameList:"item"`
}

type describeRegionsOutput struct {
	Regions []region `locationName:"regionInfo" locationNameList:"item"`
}

type region struct {
	RegionName  string `locationName:"regionName"`
	Endpoint    string `locationName:"regionEndpoint"`
	OptInStatus string `locationName:"optInStatus"`
}

type listUsersOutput struct {
	Users       []iamUser
	IsTruncated bool
	Marker      *string
}

type iamUser struct {
	Path             string
	UserName         string
	UserId           string
	Arn              string
	CreateDate       time.Time
	PasswordLastUsed *time.Time
	Tags             []iamTag
}

type iamTag struct {
	Key   string
	Value string
}

type tagUserInput struct {
	UserName string   `required:"true"`
	Tags     []iamTag `required:"true"`
}

type getCallerIdentityOutput struct {
	UserId  string
	Account string
	Arn     string
}

// kitchenSink exercises every scalar type and trait in one input shape.
type kitchenSink struct {
	MaxResults *int32    `locationName:"maxResults"`
	Count      int64     `queryName:"InstanceCount" locationName:"instanceCount"`
	Ratio      *float64  `locationName:"ratio"`
	Small      *float32  `locationName:"small"`
	Enabled    bool      `locationName:"enabled"`
	Since      time.Time `locationName:"since"`
	Until      *time.Time
	Epoch      *time.Time `timestampFormat:"unixTimestamp"`
	Data       []byte
	Tenancy    *string           `enumValues:"default,dedicated,host"`
	Labels     map[string]string `locationNameKey:"Name" locationNameValue:"Text"`
	Flat       []string          `flattened:"true"`
	Nested     *kitchenSink
	embeddedPart
}

type embeddedPart struct {
	Extra *string
}

func strp(s string) *string { return &s }

func TestDecodeEC2DescribeRegions(t *testing.T) {
	params, err := url.ParseQuery("Action=DescribeRegions&Version=2016-11-15&AllRegions=false&dryRun=x" +
		"&RegionName.1=us-east-1&RegionName.2=eu-west-1" +
		"&Filter.1.Name=opt-in-status&Filter.1.Value.1=opted-in&Filter.1.Value.2=opt-in-not-required" +
		"&Filter.2.Name=region-name&Filter.2.Value.1=lab-1")
	if err != nil {
		t.Fatal(err)
	}
	params.Del("dryRun") // EC2 upper-cases locationName: dryRun is sent as DryRun
	params.Set("DryRun", "true")
	var got describeRegionsInput
	if err := DecodeEC2(params, &got); err != nil {
		t.Fatal(err)
	}
	yes, no := true, false
	want := describeRegionsInput{
		AllRegions:  &no,
		DryRun:      &yes,
		RegionNames: []string{"us-east-1", "eu-west-1"},
		Filters: []*filter{
			{Name: strp("opt-in-status"), Values: []string{"opted-in", "opt-in-not-required"}},
			{Name: strp("region-name"), Values: []string{"lab-1"}},
		},
	}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("got %+v\nwant %+v", got, want)
	}
}

func TestDecodeKitchenSink(t *testing.T) {
	params := url.Values{
		"MaxResults":          {"5"},
		"InstanceCount":       {"9000000000"},
		"Ratio":               {"0.25"},
		"Small":               {"1.5"},
		"Enabled":             {"True"},
		"Since":               {"2024-01-02T03:04:05.678Z"},
		"Until":               {"2024-01-02T04:04:05+01:00"},
		"Epoch":               {"1422172800.5"},
		"Data":                {"aGk="},
		"Tenancy":             {"dedicated"},
		"Labels.entry.1.Name": {"b"},
		"Labels.entry.1.Text": {"B"},
		"Labels.entry.2.Name": {"a"},
		"Labels.entry.2.Text": {"A"},
		"Flat.2":              {"second"},
		"Flat.1":              {"first"},
		"Nested.MaxResults":   {"7"},
		"Extra":               {"embedded"},
		"X-Amz-Date":          {"20240102T030405Z"},
	}
	var got kitchenSink
	if err := DecodeEC2(params, &got); err != nil {
		t.Fatal(err)
	}
	five, seven := int32(5), int32(7)
	quarter, small := 0.25, float32(1.5)
	until := time.Date(2024, 1, 2, 3, 4, 5, 0, time.UTC)
	epoch := time.Unix(1422172800, 500_000_000).UTC()
	want := kitchenSink{
		MaxResults: &five, Count: 9000000000, Ratio: &quarter, Small: &small, Enabled: true,
		Since: time.Date(2024, 1, 2, 3, 4, 5, 678_000_000, time.UTC), Until: &until, Epoch: &epoch,
		Data: []byte("hi"), Tenancy: strp("dedicated"),
		Labels:       map[string]string{"a": "A", "b": "B"},
		Flat:         []string{"first", "second"},
		Nested:       &kitchenSink{MaxResults: &seven},
		embeddedPart: embeddedPart{Extra: strp("embedded")},
	}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("got  %+v\nwant %+v", got, want)
	}
}

func TestDecodeQueryTagUser(t *testing.T) {
	params, err := url.ParseQuery("Action=TagUser&Version=2010-05-08&UserName=alice" +
		"&Tags.member.1.Key=team&Tags.member.1.Value=lab&Tags.member.2.Key=env&Tags.member.2.Value=")
	if err != nil {
		t.Fatal(err)
	}
	var got tagUserInput
	if err := DecodeQuery(params, &got); err != nil {
		t.Fatal(err)
	}
	want := tagUserInput{UserName: "alice", Tags: []iamTag{{"team", "lab"}, {"env", ""}}}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("got %+v, want %+v", got, want)
	}
}

func TestDecodeErrors(t *testing.T) {
	tests := []struct {
		name     string
		query    bool
		params   string
		dst      any
		wantCode string
		wantMsg  string
	}{
		{name: "unknown top-level parameter", params: "Foo=bar", dst: &describeRegionsInput{},
			wantCode: CodeUnknownParameter, wantMsg: "The parameter Foo is not recognized"},
		{name: "unknown nested parameter", params: "Filter.1.Nme=x", dst: &describeRegionsInput{},
			wantCode: CodeUnknownParameter, wantMsg: "The parameter Filter.1.Nme is not recognized"},
		{name: "EC2 input name is not the lower-case locationName", params: "dryRun=true", dst: &describeRegionsInput{},
			wantCode: CodeUnknownParameter, wantMsg: "The parameter dryRun is not recognized"},
		{name: "EC2 list without index", params: "RegionName=us-east-1", dst: &describeRegionsInput{},
			wantCode: CodeUnknownParameter, wantMsg: "The parameter RegionName is not recognized"},
		{name: "value on a structure", params: "Nested=x", dst: &kitchenSink{},
			wantCode: CodeUnknownParameter, wantMsg: "The parameter Nested is not recognized"},
		{name: "query list with EC2 syntax", query: true, params: "UserName=a&Tags.1.Key=k&Tags.member.1.Key=k&Tags.member.1.Value=v", dst: &tagUserInput{},
			wantCode: CodeUnknownParameter, wantMsg: "The parameter Tags.1.Key is not recognized"},
		{name: "integer", params: "MaxResults=abc", dst: &kitchenSink{},
			wantCode: CodeInvalidParameterValue, wantMsg: "Value (abc) for parameter MaxResults is invalid. Expected an integer."},
		{name: "integer out of 32-bit range", params: "MaxResults=3000000000", dst: &kitchenSink{},
			wantCode: CodeInvalidParameterValue, wantMsg: "Value (3000000000) for parameter MaxResults is invalid. Expected a 32-bit integer."},
		{name: "integer with fraction", params: "InstanceCount=1.0", dst: &kitchenSink{},
			wantCode: CodeInvalidParameterValue, wantMsg: "Value (1.0) for parameter InstanceCount is invalid. Expected an integer."},
		{name: "boolean", params: "DryRun=yes", dst: &describeRegionsInput{},
			wantCode: CodeInvalidParameterValue, wantMsg: "Value (yes) for parameter DryRun is invalid. Expected a boolean (true or false)."},
		{name: "float spelled like strconv", params: "Ratio=inf", dst: &kitchenSink{},
			wantCode: CodeInvalidParameterValue, wantMsg: "Value (inf) for parameter Ratio is invalid. Expected a number."},
		{name: "timestamp", params: "Since=yesterday", dst: &kitchenSink{},
			wantCode: CodeInvalidParameterValue, wantMsg: "Value (yesterday) for parameter Since is invalid. Expected an ISO 8601 timestamp such as 2006-01-02T15:04:05Z."},
		{name: "epoch timestamp", params: "Epoch=2024-01-01T00:00:00Z", dst: &kitchenSink{},
			wantCode: CodeInvalidParameterValue, wantMsg: "Value (2024-01-01T00:00:00Z) for parameter Epoch is invalid. Expected seconds since the Unix epoch."},
		{name: "blob", params: "Data=!!", dst: &kitchenSink{},
			wantCode: CodeInvalidParameterValue, wantMsg: "Value (!!) for parameter Data is invalid. Expected base64-encoded data."},
		{name: "enum", params: "Tenancy=shared", dst: &kitchenSink{},
			wantCode: CodeInvalidParameterValue, wantMsg: "Value (shared) for parameter Tenancy is invalid. Expected one of: default, dedicated, host."},
		{name: "index zero", params: "RegionName.0=a", dst: &describeRegionsInput{},
			wantCode: CodeInvalidParameterValue, wantMsg: "The list index (0) in parameter RegionName.0 is invalid. Expected an integer of 1 or more."},
		{name: "index with leading zero", params: "RegionName.01=a", dst: &describeRegionsInput{},
			wantCode: CodeInvalidParameterValue, wantMsg: "The list index (01) in parameter RegionName.01 is invalid. Expected an integer of 1 or more."},
		{name: "index not a number", params: "Filter.x.Name=a", dst: &describeRegionsInput{},
			wantCode: CodeInvalidParameterValue, wantMsg: "The list index (x) in parameter Filter.x is invalid. Expected an integer of 1 or more."},
		{name: "repeated parameter", params: "DryRun=true&DryRun=false", dst: &describeRegionsInput{},
			wantCode: CodeInvalidParameterValue, wantMsg: "The parameter DryRun was given more than once"},
		{name: "map entry without value", query: true, params: "Labels.entry.1.Name=a", dst: &kitchenSink{},
			wantCode: CodeMissingParameter, wantMsg: "The request must contain the parameter Labels.entry.1.Text"},
		{name: "required member", query: true, params: "Tags.member.1.Key=k", dst: &tagUserInput{},
			wantCode: CodeMissingParameter, wantMsg: "The request must contain the parameter UserName"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			params, err := url.ParseQuery(tc.params)
			if err != nil {
				t.Fatal(err)
			}
			if tc.query {
				err = DecodeQuery(params, tc.dst)
			} else {
				err = DecodeEC2(params, tc.dst)
			}
			var pe *ParamError
			if !errors.As(err, &pe) {
				t.Fatalf("error = %v, want a *ParamError", err)
			}
			if pe.Code != tc.wantCode || pe.Message != tc.wantMsg {
				t.Errorf("got %s %q\nwant %s %q", pe.Code, pe.Message, tc.wantCode, tc.wantMsg)
			}
		})
	}
}

func TestDecodeRequiredInListElement(t *testing.T) {
	// Required members are checked in every structure that is present,
	// including list elements, and named by their full parameter path.
	type strictTag struct {
		Key   string `required:"true"`
		Value string
	}
	type input struct {
		Tags []strictTag
	}
	err := DecodeQuery(url.Values{"Tags.member.1.Value": {"v"}}, &input{})
	var pe *ParamError
	if !errors.As(err, &pe) || pe.Code != CodeMissingParameter || pe.Message != "The request must contain the parameter Tags.member.1.Key" {
		t.Errorf("error = %v, want MissingParameter for Tags.member.1.Key", err)
	}
}

func TestDecodeEmptyQueryList(t *testing.T) {
	type input struct {
		Names []string
		Other []string
	}
	var got input
	if err := DecodeQuery(url.Values{"Names": {""}}, &got); err != nil {
		t.Fatal(err)
	}
	if got.Names == nil || len(got.Names) != 0 || got.Other != nil {
		t.Errorf("got %#v, want Names empty but non-nil and Other nil", got)
	}
}

func TestDecodeDestinationMustBeStructPointer(t *testing.T) {
	var s string
	for _, dst := range []any{nil, describeRegionsInput{}, &s, (*describeRegionsInput)(nil)} {
		if err := DecodeEC2(url.Values{}, dst); err == nil {
			t.Errorf("DecodeEC2(%T) succeeded", dst)
		}
	}
}

func TestInputNames(t *testing.T) {
	str := &Shape{Type: TypeString}
	tests := []struct {
		name      string
		member    Member
		wantEC2   string
		wantQuery string
	}{
		{name: "plain", member: Member{Name: "Foo"}, wantEC2: "Foo", wantQuery: "Foo"},
		{name: "lower-case member name", member: Member{Name: "label"}, wantEC2: "Label", wantQuery: "label"},
		{name: "locationName", member: Member{Name: "DryRun", LocationName: "dryRun"}, wantEC2: "DryRun", wantQuery: "dryRun"},
		{name: "queryName wins for EC2", member: Member{Name: "X", LocationName: "ipv6AddressesSet", QueryName: "Ipv6Addresses"},
			wantEC2: "Ipv6Addresses", wantQuery: "ipv6AddressesSet"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			m := tc.member
			m.Shape = str
			if got := inputName(protoEC2, &m); got != tc.wantEC2 {
				t.Errorf("EC2 name = %q, want %q", got, tc.wantEC2)
			}
			if got := inputName(protoQuery, &m); got != tc.wantQuery {
				t.Errorf("query name = %q, want %q", got, tc.wantQuery)
			}
		})
	}
}

func TestEncodeEC2DescribeRegions(t *testing.T) {
	out := describeRegionsOutput{Regions: []region{
		{RegionName: "lab-1", Endpoint: "ec2.lab-1.labcloud.internal", OptInStatus: "opt-in-not-required"},
	}}
	var buf bytes.Buffer
	if err := EncodeEC2(&buf, "DescribeRegions", "req-1", &out); err != nil {
		t.Fatal(err)
	}
	want := `<?xml version="1.0" encoding="UTF-8"?>` + "\n" +
		`<DescribeRegionsResponse xmlns="http://ec2.amazonaws.com/doc/2016-11-15/">` +
		`<requestId>req-1</requestId>` +
		`<regionInfo><item><regionName>lab-1</regionName><regionEndpoint>ec2.lab-1.labcloud.internal</regionEndpoint>` +
		`<optInStatus>opt-in-not-required</optInStatus></item></regionInfo>` +
		`</DescribeRegionsResponse>`
	if buf.String() != want {
		t.Errorf("got\n%s\nwant\n%s", buf.String(), want)
	}
}

func TestEncodeQueryListUsers(t *testing.T) {
	out := listUsersOutput{Users: []iamUser{{
		Path: "/", UserName: "alice", UserId: "AIDAEXAMPLE", Arn: "arn:aws:iam::000000000000:user/alice",
		CreateDate: time.Date(2024, 1, 2, 3, 4, 5, 678_000_000, time.UTC),
		Tags:       []iamTag{{Key: "team", Value: "lab"}},
	}}}
	var buf bytes.Buffer
	if err := EncodeQuery(&buf, "ListUsers", "req-2", IAMNamespace, out); err != nil {
		t.Fatal(err)
	}
	want := `<ListUsersResponse xmlns="https://iam.amazonaws.com/doc/2010-05-08/"><ListUsersResult>` +
		`<Users><member><Path>/</Path><UserName>alice</UserName><UserId>AIDAEXAMPLE</UserId>` +
		`<Arn>arn:aws:iam::000000000000:user/alice</Arn><CreateDate>2024-01-02T03:04:05.678Z</CreateDate>` +
		`<Tags><member><Key>team</Key><Value>lab</Value></member></Tags></member></Users>` +
		`<IsTruncated>false</IsTruncated></ListUsersResult>` +
		`<ResponseMetadata><RequestId>req-2</RequestId></ResponseMetadata></ListUsersResponse>`
	if buf.String() != want {
		t.Errorf("got\n%s\nwant\n%s", buf.String(), want)
	}
}

func TestEncodeQueryWithoutOutput(t *testing.T) {
	var buf bytes.Buffer
	if err := EncodeQuery(&buf, "DeleteUser", "req-3", IAMNamespace, nil); err != nil {
		t.Fatal(err)
	}
	want := `<DeleteUserResponse xmlns="https://iam.amazonaws.com/doc/2010-05-08/">` +
		`<ResponseMetadata><RequestId>req-3</RequestId></ResponseMetadata></DeleteUserResponse>`
	if buf.String() != want {
		t.Errorf("got %s\nwant %s", buf.String(), want)
	}
}

func TestEncodePresence(t *testing.T) {
	type item struct {
		ID string `locationName:"id"`
	}
	type out struct {
		Set      []item    `locationName:"itemSet" locationNameList:"item"`
		Name     *string   `locationName:"name"`
		Count    int32     `locationName:"count"`
		Hidden   int32     `locationName:"hidden" omitempty:"true"`
		HiddenTS time.Time `locationName:"hiddenTime" omitempty:"true"`
		Labels   map[string]string
		Data     []byte `locationName:"data"`
	}
	tests := []struct {
		name string
		out  out
		want string
	}{
		{name: "nil slice, pointer and map are omitted, plain scalars are not",
			out:  out{},
			want: `<count>0</count>`},
		{name: "non-nil empty slice is an empty wrapper",
			out:  out{Set: []item{}},
			want: `<itemSet/><count>0</count>`},
		{name: "empty string pointer is an empty element",
			out:  out{Name: strp("")},
			want: `<name/><count>0</count>`},
		{name: "omitempty keeps non-zero values",
			out:  out{Hidden: 3, HiddenTS: time.Unix(0, 0)},
			want: `<count>0</count><hidden>3</hidden><hiddenTime>1970-01-01T00:00:00.000Z</hiddenTime>`},
		{name: "maps are sorted by key",
			out:  out{Labels: map[string]string{"b": "2", "a": "1"}},
			want: `<count>0</count><Labels><entry><key>a</key><value>1</value></entry><entry><key>b</key><value>2</value></entry></Labels>`},
		{name: "blob is base64",
			out:  out{Data: []byte("hi")},
			want: `<count>0</count><data>aGk=</data>`},
		{name: "list of structs",
			out:  out{Set: []item{{ID: "a"}, {ID: "b"}}},
			want: `<itemSet><item><id>a</id></item><item><id>b</id></item></itemSet><count>0</count>`},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			var buf bytes.Buffer
			if err := EncodeEC2(&buf, "Test", "r", tc.out); err != nil {
				t.Fatal(err)
			}
			_, body, _ := strings.Cut(buf.String(), "<requestId>r</requestId>")
			body = strings.TrimSuffix(body, "</TestResponse>")
			if body != tc.want {
				t.Errorf("got  %s\nwant %s", body, tc.want)
			}
		})
	}
}

func TestEncodeTraits(t *testing.T) {
	type inner struct {
		Kind  string `locationName:"kind" xmlAttribute:"true"`
		Value string `locationName:"value"`
	}
	type out struct {
		When   time.Time  `locationName:"when" timestampFormat:"unixTimestamp"`
		HTTP   *time.Time `locationName:"http" timestampFormat:"rfc822"`
		Ratio  float32    `locationName:"ratio"`
		Big    float64    `locationName:"big"`
		Flat   []string   `locationName:"flat" flattened:"true"`
		Inner  *inner     `locationName:"inner" xmlURI:"http://example.com/x" xmlPrefix:"x"`
		Nested [][]string `locationName:"nested"`
	}
	when := time.Date(2014, 4, 29, 18, 30, 38, 0, time.UTC)
	v := out{When: when, HTTP: &when, Ratio: 0.1, Big: 1e22, Flat: []string{"a", "b"},
		Inner: &inner{Kind: "k", Value: "v"}, Nested: [][]string{{"x"}}}
	var buf bytes.Buffer
	if err := EncodeEC2(&buf, "Test", "r", v); err != nil {
		t.Fatal(err)
	}
	want := `<when>1398796238</when><http>Tue, 29 Apr 2014 18:30:38 GMT</http><ratio>0.1</ratio><big>1e+22</big>` +
		`<flat>a</flat><flat>b</flat><inner xmlns:x="http://example.com/x" kind="k"><value>v</value></inner>` +
		`<nested><item><item>x</item></item></nested>`
	_, body, _ := strings.Cut(buf.String(), "<requestId>r</requestId>")
	if body = strings.TrimSuffix(body, "</TestResponse>"); body != want {
		t.Errorf("got  %s\nwant %s", body, want)
	}
}

func TestEncodeEscaping(t *testing.T) {
	nasty := "a<b>&c\"d'e\r\nf]]>g"
	type out struct {
		Text string `locationName:"text"`
	}
	var buf bytes.Buffer
	if err := EncodeEC2(&buf, "Test", "id&<", out{Text: nasty}); err != nil {
		t.Fatal(err)
	}
	var doc struct {
		RequestID string `xml:"requestId"`
		Text      string `xml:"text"`
	}
	if err := xml.Unmarshal(buf.Bytes(), &doc); err != nil {
		t.Fatalf("%v\n%s", err, buf.String())
	}
	if doc.Text != nasty || doc.RequestID != "id&<" {
		t.Errorf("round trip gave %q, %q", doc.Text, doc.RequestID)
	}

	buf.Reset()
	if err := EncodeQueryError(&buf, FaultSender, "Bad<Code>", nasty, "r", STSNamespace); err != nil {
		t.Fatal(err)
	}
	got, err := parseErrorDoc(protoQuery, buf.Bytes())
	if err != nil {
		t.Fatal(err)
	}
	if got.Code != "Bad<Code>" || got.Message != nasty {
		t.Errorf("error round trip gave %+v", got)
	}
}

func TestEncodeErrors(t *testing.T) {
	tests := []struct {
		name   string
		encode func(*bytes.Buffer) error
		want   string
	}{
		{name: "ec2",
			encode: func(b *bytes.Buffer) error {
				return EncodeEC2Error(b, "InvalidInstanceID.NotFound", "The instance ID 'i-1' does not exist", "req")
			},
			want: `<?xml version="1.0" encoding="UTF-8"?>` + "\n" +
				`<Response><Errors><Error><Code>InvalidInstanceID.NotFound</Code>` +
				`<Message>The instance ID &#39;i-1&#39; does not exist</Message></Error></Errors>` +
				`<RequestID>req</RequestID></Response>`},
		{name: "query",
			encode: func(b *bytes.Buffer) error {
				return EncodeQueryError(b, FaultSender, "NoSuchEntity", "The user with name bob cannot be found.", "req", IAMNamespace)
			},
			want: `<ErrorResponse xmlns="https://iam.amazonaws.com/doc/2010-05-08/"><Error><Type>Sender</Type>` +
				`<Code>NoSuchEntity</Code><Message>The user with name bob cannot be found.</Message></Error>` +
				`<RequestId>req</RequestId></ErrorResponse>`},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			var buf bytes.Buffer
			if err := tc.encode(&buf); err != nil {
				t.Fatal(err)
			}
			if buf.String() != tc.want {
				t.Errorf("got\n%s\nwant\n%s", buf.String(), tc.want)
			}
		})
	}
}

func TestEncodeFailuresWriteNothing(t *testing.T) {
	tests := []struct {
		name string
		run  func(*bytes.Buffer) error
	}{
		{name: "operation name with markup", run: func(b *bytes.Buffer) error {
			return EncodeEC2(b, "Describe<x>", "r", nil)
		}},
		{name: "not a struct", run: func(b *bytes.Buffer) error {
			return EncodeQuery(b, "GetUser", "r", IAMNamespace, 42)
		}},
		{name: "generic value of the wrong type", run: func(b *bytes.Buffer) error {
			sh := &Shape{Type: TypeStructure, Members: []*Member{{Name: "N", Shape: &Shape{Type: TypeInteger}}}}
			return EncodeEC2Value(b, "Test", "r", sh, map[string]any{"N": "seven"})
		}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			var buf bytes.Buffer
			if err := tc.run(&buf); err == nil {
				t.Fatal("succeeded")
			}
			if buf.Len() != 0 {
				t.Errorf("wrote %q", buf.String())
			}
		})
	}
}

func TestShapeOf(t *testing.T) {
	type node struct {
		Name     string
		Children []*node
		Parent   *node
	}
	sh, err := ShapeOf(reflect.TypeFor[*node]())
	if err != nil {
		t.Fatal(err)
	}
	if sh.Members[1].Shape.Member.Shape != sh || sh.Members[2].Shape != sh {
		t.Error("recursive references do not point back at the shape")
	}
	again, _ := ShapeOf(reflect.TypeFor[node]())
	if again != sh {
		t.Error("shape is not cached")
	}

	bad := []struct {
		name string
		typ  reflect.Type
	}{
		{name: "not a struct", typ: reflect.TypeFor[string]()},
		{name: "unsupported field", typ: reflect.TypeFor[struct{ C chan int }]()},
		{name: "int16 field", typ: reflect.TypeFor[struct{ N int16 }]()},
		{name: "non-string map key", typ: reflect.TypeFor[struct{ M map[int]string }]()},
		{name: "bad timestamp format", typ: reflect.TypeFor[struct {
			T time.Time `timestampFormat:"unix"`
		}]()},
		{name: "enum on a number", typ: reflect.TypeFor[struct {
			N int32 `enumValues:"1,2"`
		}]()},
	}
	for _, tc := range bad {
		t.Run(tc.name, func(t *testing.T) {
			if _, err := ShapeOf(tc.typ); err == nil {
				t.Error("ShapeOf succeeded")
			}
		})
	}
}

func TestScalarFormats(t *testing.T) {
	ts := time.Date(2000, 1, 2, 20, 34, 56, 123_000_000, time.UTC)
	tests := []struct {
		name   string
		format string
		want   string
	}{
		{name: "default is ISO 8601 with milliseconds", format: "", want: "2000-01-02T20:34:56.123Z"},
		{name: "iso8601", format: TimestampISO8601, want: "2000-01-02T20:34:56.123Z"},
		{name: "unixTimestamp", format: TimestampUnix, want: "946845296.123"},
		{name: "rfc822", format: TimestampRFC822, want: "Sun, 02 Jan 2000 20:34:56 GMT"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got := formatTimestamp(ts.In(time.FixedZone("x", 3600)), tc.format)
			if got != tc.want {
				t.Errorf("format = %q, want %q", got, tc.want)
			}
			back, err := parseTimestamp(got, tc.format)
			if err != nil {
				t.Fatal(err)
			}
			want := ts
			if tc.format == TimestampRFC822 {
				want = ts.Truncate(time.Second)
			}
			if !back.Equal(want) {
				t.Errorf("parse(%q) = %v, want %v", got, back, want)
			}
		})
	}
}

func TestShapeOfConcurrent(t *testing.T) {
	// Handlers call ShapeOf from many requests at once; every caller must
	// get the same complete shape.
	type leaf struct{ V string }
	type tree struct {
		Leaves []leaf
		Sub    *tree
	}
	shapes := make(chan *Shape, 16)
	for range cap(shapes) {
		go func() {
			sh, err := ShapeOf(reflect.TypeFor[tree]())
			if err != nil {
				t.Error(err)
			}
			shapes <- sh
		}()
	}
	first := <-shapes
	for range cap(shapes) - 1 {
		if sh := <-shapes; sh != first {
			t.Error("concurrent ShapeOf calls returned different shapes")
		}
	}
	if len(first.Members) != 2 || first.Members[1].Shape != first {
		t.Errorf("incomplete shape: %+v", first)
	}
}
