package protocol

import (
	"bytes"
	"encoding/json"
	"math"
	"net/url"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"
)

// The vectors are AWS's protocol tests for the ec2 and query protocols
// (Apache-2.0, see shared/testdata/protocols/LICENSE.txt). They are written
// from the client's side; here they run in the server's direction:
//
//   - input: decode the serialized request and compare with params;
//   - output: encode result, parse our XML back, compare with result; also
//     parse the vector's own response body, so the naming rules are checked
//     against AWS's bytes as well as our own;
//   - errors: parse the vector's error body and ours, compare code/message.

// inputSkips are input vectors that test client-side behaviour a server
// cannot reproduce; each entry says why.
var inputSkips = map[string]string{
	"Ec2ProtocolIdempotencyTokenAutoFill":                   "client fills in a missing idempotency token; params omit the token the body carries",
	"QueryProtocolIdempotencyTokenAutoFill":                 "client fills in a missing idempotency token; params omit the token the body carries",
	"SDKAppliedContentEncoding_ec2Query":                    "client gzips the body; the vector records only the Content-Encoding header, no body",
	"SDKAppendsGzipAndIgnoresHttpProvidedEncoding_ec2Query": "client gzips the body; the vector records only the Content-Encoding header, no body",
	"SDKAppliedContentEncoding_awsQuery":                    "client gzips the body; the vector records only the Content-Encoding header, no body",
	"SDKAppendsGzipAndIgnoresHttpProvidedEncoding_awsQuery": "client gzips the body; the vector records only the Content-Encoding header, no body",
}

type vectorSuite struct {
	Description string `json:"description"`
	Metadata    struct {
		Protocol   string `json:"protocol"`
		APIVersion string `json:"apiVersion"`
	} `json:"metadata"`
	Shapes map[string]json.RawMessage `json:"shapes"`
	Cases  []vectorCase               `json:"cases"`
}

type shapeRef struct {
	Shape string `json:"shape"`
}

type vectorCase struct {
	ID    string `json:"id"`
	Given struct {
		Name   string    `json:"name"`
		Input  *shapeRef `json:"input"`
		Output *shapeRef `json:"output"`
	} `json:"given"`
	Params     map[string]any `json:"params"`
	Serialized struct {
		Method string `json:"method"`
		URI    string `json:"uri"`
		Body   string `json:"body"`
	} `json:"serialized"`
	Result   map[string]any `json:"result"`
	Response struct {
		Body string `json:"body"`
	} `json:"response"`
	ErrorCode    string `json:"errorCode"`
	ErrorMessage string `json:"errorMessage"`
}

// vectorDir finds shared/testdata/protocols beside the repository by
// walking up from the package directory, so the test works from any
// checkout layout that keeps shared/ next to an ancestor.
func vectorDir(t *testing.T) string {
	t.Helper()
	dir, err := os.Getwd()
	if err != nil {
		t.Fatal(err)
	}
	for {
		candidate := filepath.Join(dir, "shared", "testdata", "protocols")
		if st, err := os.Stat(candidate); err == nil && st.IsDir() {
			return candidate
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			t.Fatal("shared/testdata/protocols not found in any parent directory; the protocol vectors are required")
		}
		dir = parent
	}
}

func loadSuites(t *testing.T, rel string) []vectorSuite {
	t.Helper()
	data, err := os.ReadFile(filepath.Join(vectorDir(t), rel))
	if err != nil {
		t.Fatal(err)
	}
	var suites []vectorSuite
	if err := json.Unmarshal(data, &suites); err != nil {
		t.Fatalf("%s: %v", rel, err)
	}
	if len(suites) == 0 {
		t.Fatalf("%s holds no suites", rel)
	}
	return suites
}

func suiteShapes(t *testing.T, s vectorSuite) map[string]*Shape {
	t.Helper()
	shapes, err := ShapesFromBotocore(s.Shapes)
	if err != nil {
		t.Fatalf("%s: %v", s.Description, err)
	}
	return shapes
}

func shapeNamed(t *testing.T, shapes map[string]*Shape, ref *shapeRef) *Shape {
	t.Helper()
	if ref == nil {
		return nil
	}
	sh, ok := shapes[ref.Shape]
	if !ok {
		t.Fatalf("vector names unknown shape %s", ref.Shape)
	}
	return sh
}

func TestInputVectors(t *testing.T) {
	for _, tc := range []struct {
		name  string
		file  string
		proto protocolKind
	}{
		{name: "ec2", file: "input/ec2.json", proto: protoEC2},
		{name: "query", file: "input/query.json", proto: protoQuery},
	} {
		t.Run(tc.name, func(t *testing.T) {
			for _, suite := range loadSuites(t, tc.file) {
				shapes := suiteShapes(t, suite)
				for _, c := range suite.Cases {
					t.Run(c.ID, func(t *testing.T) {
						if reason, ok := inputSkips[c.ID]; ok {
							t.Skip(reason)
						}
						runInputCase(t, tc.proto, suite, shapes, c)
					})
				}
			}
		})
	}
}

func runInputCase(t *testing.T, p protocolKind, suite vectorSuite, shapes map[string]*Shape, c vectorCase) {
	raw := c.Serialized.Body
	if c.Serialized.Method == "GET" || raw == "" {
		_, raw, _ = strings.Cut(c.Serialized.URI, "?")
	}
	params, err := url.ParseQuery(raw)
	if err != nil {
		t.Fatalf("vector body: %v", err)
	}
	if got := params.Get("Action"); got != c.Given.Name {
		t.Errorf("Action = %q, want %q", got, c.Given.Name)
	}
	if got := params.Get("Version"); got != suite.Metadata.APIVersion {
		t.Errorf("Version = %q, want %q", got, suite.Metadata.APIVersion)
	}
	sh := shapeNamed(t, shapes, c.Given.Input)
	var got map[string]any
	if p == protoEC2 {
		got, err = DecodeEC2Value(params, sh)
	} else {
		got, err = DecodeQueryValue(params, sh)
	}
	if err != nil {
		t.Fatalf("decoding %q: %v", raw, err)
	}
	want := pruneUnsent(p, c.Params)
	if gotJ := jsonish(got); !reflect.DeepEqual(gotJ, want) {
		t.Errorf("decoding %q\n got %#v\nwant %#v", raw, gotJ, want)
	}
}

// pruneUnsent drops what a client does not put on the wire, so it cannot
// come back out: empty maps in both protocols, and empty lists in EC2 (the
// query protocol sends "Name=" for them).
func pruneUnsent(p protocolKind, v any) any {
	switch v := v.(type) {
	case map[string]any:
		out := map[string]any{}
		for k, e := range v {
			switch e := e.(type) {
			case map[string]any:
				if len(e) == 0 {
					continue
				}
			case []any:
				if len(e) == 0 && p == protoEC2 {
					continue
				}
			}
			out[k] = pruneUnsent(p, e)
		}
		return out
	case []any:
		out := make([]any, len(v))
		for i, e := range v {
			out[i] = pruneUnsent(p, e)
		}
		return out
	}
	return v
}

// jsonish converts a generic value to the form the vectors write: numbers
// as float64, timestamps as epoch seconds, blobs as their text, non-finite
// floats as "NaN", "Infinity" and "-Infinity".
func jsonish(v any) any {
	switch v := v.(type) {
	case map[string]any:
		out := make(map[string]any, len(v))
		for k, e := range v {
			out[k] = jsonish(e)
		}
		return out
	case []any:
		out := make([]any, len(v))
		for i, e := range v {
			out[i] = jsonish(e)
		}
		return out
	case int64:
		return float64(v)
	case float64:
		switch {
		case math.IsNaN(v):
			return "NaN"
		case math.IsInf(v, 1):
			return "Infinity"
		case math.IsInf(v, -1):
			return "-Infinity"
		}
		return v
	case time.Time:
		return float64(v.UnixMilli()) / 1000
	case []byte:
		return string(v)
	}
	return v
}

// fromJSON converts a vector's JSON value to the generic value of sh, the
// inverse of jsonish.
func fromJSON(t *testing.T, v any, m *Member) any {
	t.Helper()
	sh := m.Shape
	switch sh.Type {
	case TypeStructure:
		in := v.(map[string]any)
		out := map[string]any{}
		for _, mm := range sh.Members {
			if e, ok := in[mm.Name]; ok {
				out[mm.Name] = fromJSON(t, e, mm)
			}
		}
		if len(out) != len(in) {
			t.Fatalf("result has members shape %s lacks: %v", sh.Name, in)
		}
		return out
	case TypeList:
		in := v.([]any)
		out := make([]any, len(in))
		for i, e := range in {
			out[i] = fromJSON(t, e, sh.Member)
		}
		return out
	case TypeMap:
		in := v.(map[string]any)
		out := make(map[string]any, len(in))
		for k, e := range in {
			out[k] = fromJSON(t, e, sh.Value)
		}
		return out
	case TypeInteger, TypeLong:
		return int64(v.(float64))
	case TypeFloat, TypeDouble:
		switch v {
		case "NaN":
			return math.NaN()
		case "Infinity":
			return math.Inf(1)
		case "-Infinity":
			return math.Inf(-1)
		}
		return v.(float64)
	case TypeTimestamp:
		return time.UnixMilli(int64(math.Round(v.(float64) * 1000))).UTC()
	case TypeBlob:
		return []byte(v.(string))
	}
	return v
}

func TestOutputVectors(t *testing.T) {
	for _, tc := range []struct {
		name  string
		file  string
		proto protocolKind
	}{
		{name: "ec2", file: "output/ec2.json", proto: protoEC2},
		{name: "query", file: "output/query.json", proto: protoQuery},
	} {
		t.Run(tc.name, func(t *testing.T) {
			for _, suite := range loadSuites(t, tc.file) {
				shapes := suiteShapes(t, suite)
				for _, c := range suite.Cases {
					t.Run(c.ID, func(t *testing.T) {
						if c.ErrorCode != "" {
							runErrorCase(t, tc.proto, c)
							return
						}
						runOutputCase(t, tc.proto, shapes, c)
					})
				}
			}
		})
	}
}

func runOutputCase(t *testing.T, p protocolKind, shapes map[string]*Shape, c vectorCase) {
	sh := shapeNamed(t, shapes, c.Given.Output)
	var value map[string]any
	if sh != nil {
		value = fromJSON(t, c.Result, &Member{Name: "result", Shape: sh}).(map[string]any)
	}
	var buf bytes.Buffer
	var err error
	if p == protoEC2 {
		err = EncodeEC2Value(&buf, c.Given.Name, "requestid", sh, value)
	} else {
		err = EncodeQueryValue(&buf, c.Given.Name, "requestid", "https://example.com/", sh, value)
	}
	if err != nil {
		t.Fatalf("encoding: %v", err)
	}
	want := jsonish(c.Result)
	if want == nil {
		want = map[string]any{}
	}
	ours, err := parseOutput(p, buf.Bytes(), c.Given.Name, sh)
	if err != nil {
		t.Fatalf("parsing our XML: %v\n%s", err, buf.String())
	}
	if got := jsonish(ours); !reflect.DeepEqual(got, want) {
		t.Errorf("our XML parses to\n %#v\nwant %#v\nXML: %s", got, want, buf.String())
	}
	if c.Response.Body == "" {
		return // the vector has no body to compare with (no output at all)
	}
	theirs, err := parseOutput(p, []byte(c.Response.Body), c.Given.Name, sh)
	if err != nil {
		t.Fatalf("parsing the vector's XML: %v", err)
	}
	if got := jsonish(theirs); !reflect.DeepEqual(got, want) {
		t.Errorf("vector XML parses to\n %#v\nwant %#v", got, want)
	}
	ourNS, err := namespaceDecls(buf.Bytes())
	if err != nil {
		t.Fatal(err)
	}
	theirNS, err := namespaceDecls([]byte(c.Response.Body))
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(ourNS, theirNS) {
		t.Errorf("namespace declarations differ\n ours %q\ntheirs %q", ourNS, theirNS)
	}
}

func runErrorCase(t *testing.T, p protocolKind, c vectorCase) {
	theirs, err := parseErrorDoc(p, []byte(c.Response.Body))
	if err != nil {
		t.Fatalf("parsing the vector's error: %v", err)
	}
	if theirs.Code != c.ErrorCode || (c.ErrorMessage != "" && theirs.Message != c.ErrorMessage) {
		t.Fatalf("vector error parses to %+v, want code %q message %q", theirs, c.ErrorCode, c.ErrorMessage)
	}
	var buf bytes.Buffer
	if p == protoEC2 {
		err = EncodeEC2Error(&buf, c.ErrorCode, theirs.Message, theirs.RequestID)
	} else {
		err = EncodeQueryError(&buf, FaultSender, c.ErrorCode, theirs.Message, theirs.RequestID, "")
	}
	if err != nil {
		t.Fatal(err)
	}
	ours, err := parseErrorDoc(p, buf.Bytes())
	if err != nil {
		t.Fatalf("parsing our error: %v\n%s", err, buf.String())
	}
	if ours != theirs {
		t.Errorf("our error parses to %+v, the vector's to %+v\n%s", ours, theirs, buf.String())
	}
}
