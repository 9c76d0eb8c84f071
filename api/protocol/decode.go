package protocol

import (
	"encoding/base64"
	"errors"
	"fmt"
	"net/url"
	"reflect"
	"slices"
	"strconv"
	"strings"
)

// Codes of a ParamError. They are the AWS error codes a client expects for
// a malformed request, so a handler can send them unchanged.
const (
	CodeUnknownParameter      = "UnknownParameter"
	CodeInvalidParameterValue = "InvalidParameterValue"
	CodeMissingParameter      = "MissingParameter"
)

// ParamError is a request the shape rejects. Code is one of the Code*
// constants and Message names the parameter, so the pair can be sent to the
// client as is (HTTP 400, fault type Sender).
type ParamError struct {
	Code    string
	Message string
}

// Error implements error.
func (e *ParamError) Error() string { return e.Code + ": " + e.Message }

// maxEchoedValue bounds how much of a bad value an error message repeats.
const maxEchoedValue = 256

func unknownParam(path string) error {
	return &ParamError{Code: CodeUnknownParameter,
		Message: fmt.Sprintf("The parameter %s is not recognized", path)}
}

func missingParam(path string) error {
	return &ParamError{Code: CodeMissingParameter,
		Message: fmt.Sprintf("The request must contain the parameter %s", path)}
}

func invalidValue(path, value, expected string) error {
	if len(value) > maxEchoedValue {
		value = value[:maxEchoedValue] + "..."
	}
	return &ParamError{Code: CodeInvalidParameterValue,
		Message: fmt.Sprintf("Value (%s) for parameter %s is invalid. %s", value, path, expected)}
}

// DecodeEC2 decodes EC2 protocol request parameters (form body or query
// string) into dst, a pointer to a struct whose shape ShapeOf derives.
// Errors caused by the request are *ParamError.
//
// Rules: a member's name is its queryName tag, else its locationName with
// the first letter upper-cased, else the field name; lists are always
// "Name.N" (N from 1); nested structures are "Outer.Inner". Action, Version
// and SigV4 query-string parameters (X-Amz-*) are not members and are
// ignored.
func DecodeEC2(params url.Values, dst any) error {
	return decodeInto(protoEC2, params, dst)
}

// DecodeQuery decodes awsQuery protocol (IAM, STS) request parameters into
// dst, a pointer to a struct. Errors caused by the request are *ParamError.
//
// Rules: a member's name is its locationName tag, else the field name;
// lists are "Name.member.N" (the element name from the locationNameList
// tag) unless flattened ("Name.N"), and "Name=" alone is an empty list;
// maps are "Name.entry.N.key" and "Name.entry.N.value" unless flattened
// ("Name.N.key").
func DecodeQuery(params url.Values, dst any) error {
	return decodeInto(protoQuery, params, dst)
}

// DecodeEC2Value decodes EC2 request parameters against sh, a structure or
// nil for an operation without input, into a generic value: structures are
// map[string]any keyed by member name, lists []any, maps map[string]any,
// and scalars string, int64, float64, bool, time.Time or []byte.
func DecodeEC2Value(params url.Values, sh *Shape) (map[string]any, error) {
	return decodeValue(protoEC2, params, sh)
}

// DecodeQueryValue is DecodeEC2Value for the awsQuery protocol.
func DecodeQueryValue(params url.Values, sh *Shape) (map[string]any, error) {
	return decodeValue(protoQuery, params, sh)
}

func decodeInto(p protocolKind, params url.Values, dst any) error {
	rv := reflect.ValueOf(dst)
	if rv.Kind() != reflect.Pointer || rv.IsNil() || rv.Elem().Kind() != reflect.Struct {
		return fmt.Errorf("protocol: decode destination must be a non-nil pointer to a struct, not %T", dst)
	}
	sh, err := ShapeOf(rv.Type())
	if err != nil {
		return err
	}
	g, err := decodeValue(p, params, sh)
	if err != nil {
		return err
	}
	return fromGeneric(g, rv.Elem(), sh)
}

func decodeValue(p protocolKind, params url.Values, sh *Shape) (map[string]any, error) {
	if sh == nil {
		sh = &Shape{Name: "empty input", Type: TypeStructure}
	}
	if sh.Type != TypeStructure {
		return nil, fmt.Errorf("protocol: input shape %s is a %s, not a structure", sh.Name, sh.Type)
	}
	root := buildParamTree(params)
	d := decoder{p: p}
	out, err := d.structure(root, sh)
	if err != nil {
		return nil, err
	}
	if path := root.firstUnused(); path != "" {
		return nil, unknownParam(path)
	}
	return out, nil
}

// param is a node of the request parameters split on ".": "Filter.1.Name"
// becomes Filter → 1 → Name. Decoding marks the values it consumes, so any
// value left unmarked afterwards is a parameter the shape does not know.
type param struct {
	path     string
	values   []string
	children map[string]*param
	used     bool
}

// isReservedParam reports parameters that address the request rather than
// the operation's input.
func isReservedParam(name string) bool {
	return name == "Action" || name == "Version" || strings.HasPrefix(name, "X-Amz-")
}

func buildParamTree(params url.Values) *param {
	root := &param{}
	for key, values := range params {
		if isReservedParam(key) {
			continue
		}
		n := root
		for seg := range strings.SplitSeq(key, ".") {
			child := n.children[seg]
			if child == nil {
				if n.children == nil {
					n.children = make(map[string]*param)
				}
				child = &param{path: joinPath(n.path, seg)}
				n.children[seg] = child
			}
			n = child
		}
		n.values = values
	}
	return root
}

func joinPath(prefix, name string) string {
	if prefix == "" {
		return name
	}
	return prefix + "." + name
}

// firstUnused returns the alphabetically first parameter that carries a
// value nobody consumed, or "".
func (n *param) firstUnused() string {
	var unused []string
	var walk func(*param)
	walk = func(n *param) {
		if n.values != nil && !n.used {
			unused = append(unused, n.path)
		}
		for _, c := range n.children {
			walk(c)
		}
	}
	walk(n)
	if len(unused) == 0 {
		return ""
	}
	return slices.Min(unused)
}

// indexed returns the children of a list or map node in index order,
// rejecting segments that are not 1-based decimal indexes.
func (n *param) indexed() ([]*param, error) {
	type entry struct {
		i int
		p *param
	}
	entries := make([]entry, 0, len(n.children))
	for seg, child := range n.children {
		i, ok := parseIndex(seg)
		if !ok {
			return nil, &ParamError{Code: CodeInvalidParameterValue, Message: fmt.Sprintf(
				"The list index (%s) in parameter %s is invalid. Expected an integer of 1 or more.",
				seg, child.path)}
		}
		entries = append(entries, entry{i, child})
	}
	slices.SortFunc(entries, func(a, b entry) int { return a.i - b.i })
	out := make([]*param, len(entries))
	for k, e := range entries {
		out[k] = e.p
	}
	return out, nil
}

// parseIndex accepts "1", "2", ... but not "0", "01", "+1" or anything large
// enough to overflow.
func parseIndex(s string) (int, bool) {
	if s == "" || len(s) > 9 || s[0] == '0' {
		return 0, false
	}
	i, err := strconv.Atoi(s)
	if err != nil || i < 1 || strconv.Itoa(i) != s {
		return 0, false
	}
	return i, true
}

type decoder struct {
	p protocolKind
}

func (d decoder) structure(n *param, sh *Shape) (map[string]any, error) {
	out := make(map[string]any)
	for _, m := range sh.Members {
		if m.XMLAttribute {
			continue // attributes exist only in XML bodies
		}
		name := inputName(d.p, m)
		var v any
		var ok bool
		if child := n.children[name]; child != nil {
			var err error
			if v, ok, err = d.value(child, m); err != nil {
				return nil, err
			}
		}
		if !ok {
			if m.Required {
				return nil, missingParam(joinPath(n.path, name))
			}
			continue
		}
		out[m.Name] = v
	}
	return out, nil
}

// value decodes the parameter node n of member m. ok is false when n holds
// nothing for m; anything n does hold is then reported as unknown.
func (d decoder) value(n *param, m *Member) (v any, ok bool, err error) {
	switch m.Shape.Type {
	case TypeStructure:
		if len(n.children) == 0 {
			return nil, false, nil
		}
		s, err := d.structure(n, m.Shape)
		return s, err == nil, err
	case TypeList:
		return d.list(n, m)
	case TypeMap:
		return d.mapValue(n, m)
	default:
		return d.scalar(n, m)
	}
}

// emptyMarker reports "Name=" with nothing below it, which is how botocore
// sends an empty list in the query protocol.
func (n *param) emptyMarker() bool {
	return len(n.values) == 1 && n.values[0] == "" && len(n.children) == 0
}

func (d decoder) list(n *param, m *Member) (any, bool, error) {
	if n.emptyMarker() {
		n.used = true
		return []any{}, true, nil
	}
	parent := n
	if el := inputListElement(d.p, m); el != "" {
		if parent = n.children[el]; parent == nil {
			return nil, false, nil
		}
	}
	if len(parent.children) == 0 {
		return nil, false, nil
	}
	items, err := parent.indexed()
	if err != nil {
		return nil, false, err
	}
	out := make([]any, 0, len(items))
	for _, item := range items {
		v, ok, err := d.value(item, m.Shape.Member)
		if err != nil {
			return nil, false, err
		}
		if ok {
			out = append(out, v)
		}
	}
	return out, true, nil
}

func (d decoder) mapValue(n *param, m *Member) (any, bool, error) {
	if n.emptyMarker() {
		n.used = true
		return map[string]any{}, true, nil
	}
	parent := n
	if e := inputMapEntry(m); e != "" {
		if parent = n.children[e]; parent == nil {
			return nil, false, nil
		}
	}
	if len(parent.children) == 0 {
		return nil, false, nil
	}
	entries, err := parent.indexed()
	if err != nil {
		return nil, false, err
	}
	sh := m.Shape
	keyName, valueName := mapKeyName(sh), mapValueName(sh)
	out := make(map[string]any, len(entries))
	for _, e := range entries {
		kn := e.children[keyName]
		if kn == nil {
			return nil, false, missingParam(joinPath(e.path, keyName))
		}
		k, ok, err := d.scalar(kn, sh.Key)
		if err != nil {
			return nil, false, err
		}
		key, isString := k.(string)
		if !ok || !isString {
			return nil, false, missingParam(joinPath(e.path, keyName))
		}
		vn := e.children[valueName]
		if vn == nil {
			return nil, false, missingParam(joinPath(e.path, valueName))
		}
		v, ok, err := d.value(vn, sh.Value)
		if err != nil {
			return nil, false, err
		}
		if !ok {
			return nil, false, missingParam(joinPath(e.path, valueName))
		}
		out[key] = v
	}
	return out, true, nil
}

func (d decoder) scalar(n *param, m *Member) (any, bool, error) {
	if n.values == nil {
		return nil, false, nil
	}
	n.used = true
	if len(n.values) > 1 {
		return nil, false, &ParamError{Code: CodeInvalidParameterValue,
			Message: fmt.Sprintf("The parameter %s was given more than once", n.path)}
	}
	v, err := parseScalar(n.values[0], m)
	if err != nil {
		var pe *ParamError
		if errors.As(err, &pe) {
			return nil, false, err
		}
		return nil, false, invalidValue(n.path, n.values[0], err.Error())
	}
	return v, true, nil
}

// parseScalar converts request text to the generic value of m's shape. Its
// errors say what was expected, as the end of a ParamError message.
func parseScalar(s string, m *Member) (any, error) {
	sh := m.Shape
	switch sh.Type {
	case TypeString:
		if len(sh.Enum) > 0 && !slices.Contains(sh.Enum, s) {
			return nil, fmt.Errorf("Expected one of: %s.", strings.Join(sh.Enum, ", "))
		}
		return s, nil
	case TypeInteger, TypeLong:
		bits := 64
		if sh.Type == TypeInteger {
			bits = 32
		}
		i, err := strconv.ParseInt(s, 10, bits)
		if errors.Is(err, strconv.ErrRange) {
			return nil, fmt.Errorf("Expected a %d-bit integer.", bits)
		}
		if err != nil {
			return nil, errors.New("Expected an integer.")
		}
		return i, nil
	case TypeFloat, TypeDouble:
		bits := 64
		if sh.Type == TypeFloat {
			bits = 32
		}
		f, err := parseFloat(s, bits)
		if err != nil {
			return nil, errors.New("Expected a number.")
		}
		return f, nil
	case TypeBoolean:
		b, err := parseBool(s)
		if err != nil {
			return nil, errors.New("Expected a boolean (true or false).")
		}
		return b, nil
	case TypeTimestamp:
		format := m.timestampFormat()
		t, err := parseTimestamp(s, format)
		if err != nil {
			switch format {
			case TimestampUnix:
				return nil, errors.New("Expected seconds since the Unix epoch.")
			case TimestampRFC822:
				return nil, errors.New("Expected a date such as Mon, 02 Jan 2006 15:04:05 GMT.")
			default:
				return nil, errors.New("Expected an ISO 8601 timestamp such as 2006-01-02T15:04:05Z.")
			}
		}
		return t, nil
	case TypeBlob:
		b, err := base64.StdEncoding.DecodeString(s)
		if err != nil {
			return nil, errors.New("Expected base64-encoded data.")
		}
		return b, nil
	}
	return nil, fmt.Errorf("protocol: shape %s has unsupported type %q", sh.Name, sh.Type)
}
