package protocol

import (
	"bytes"
	"encoding/base64"
	"encoding/xml"
	"fmt"
	"io"
	"reflect"
	"slices"
	"strconv"
	"time"
)

// XML namespaces of the response documents. Clients ignore them when
// parsing, but AWS sends them and some tools compare.
const (
	EC2Namespace = "http://ec2.amazonaws.com/doc/2016-11-15/"
	IAMNamespace = "https://iam.amazonaws.com/doc/2010-05-08/"
	STSNamespace = "https://sts.amazonaws.com/doc/2011-06-15/"
)

// Fault types of a query protocol error: Sender when the request was wrong
// (HTTP 4xx), Receiver when the service failed (5xx). SDKs use it to decide
// whether a retry can help.
const (
	FaultSender   = "Sender"
	FaultReceiver = "Receiver"
)

const xmlDeclaration = `<?xml version="1.0" encoding="UTF-8"?>` + "\n"

// EncodeEC2 writes an EC2 protocol response for operation op:
//
//	<?xml version="1.0" encoding="UTF-8"?>
//	<{op}Response xmlns="http://ec2.amazonaws.com/doc/2016-11-15/">
//	<requestId>…</requestId>members…</{op}Response>
//
// out is a struct or pointer to one (see ShapeOf), or nil for an operation
// without output. Element names are the locationName tag, else the field
// name; lists are <name><item>…</item></name> (element name from the
// locationNameList tag) unless flattened. Nothing is written on error.
func EncodeEC2(w io.Writer, op, requestID string, out any) error {
	sh, g, err := genericOutput(out)
	if err != nil {
		return err
	}
	return EncodeEC2Value(w, op, requestID, sh, g)
}

// EncodeEC2Value is EncodeEC2 for a generic value (as DecodeEC2Value
// returns) described by sh; sh nil means no output members.
func EncodeEC2Value(w io.Writer, op, requestID string, sh *Shape, v map[string]any) error {
	if err := checkOperation(op); err != nil {
		return err
	}
	e := xmlEncoder{p: protoEC2}
	e.b.WriteString(xmlDeclaration)
	root := op + "Response"
	e.start(root, []xml.Attr{{Name: xml.Name{Local: "xmlns"}, Value: EC2Namespace}})
	e.leaf("requestId", requestID)
	if sh != nil {
		if err := e.structure(sh, v); err != nil {
			return err
		}
	}
	e.end(root)
	_, err := w.Write(e.b.Bytes())
	return err
}

// EncodeQuery writes an awsQuery protocol (IAM, STS) response:
//
//	<{op}Response xmlns="…"><{op}Result>members…</{op}Result>
//	<ResponseMetadata><RequestId>…</RequestId></ResponseMetadata></{op}Response>
//
// xmlns is IAMNamespace or STSNamespace. out is a struct or pointer to one,
// or nil for an operation without output, which also drops the Result
// element. Lists are <name><member>…</member></name> and maps
// <name><entry><key>…</key><value>…</value></entry></name> unless
// flattened. Nothing is written on error.
func EncodeQuery(w io.Writer, op, requestID, xmlns string, out any) error {
	sh, g, err := genericOutput(out)
	if err != nil {
		return err
	}
	return EncodeQueryValue(w, op, requestID, xmlns, sh, g)
}

// EncodeQueryValue is EncodeQuery for a generic value described by sh; sh
// nil means the operation has no output and no Result element.
func EncodeQueryValue(w io.Writer, op, requestID, xmlns string, sh *Shape, v map[string]any) error {
	if err := checkOperation(op); err != nil {
		return err
	}
	e := xmlEncoder{p: protoQuery}
	root := op + "Response"
	e.start(root, namespaceAttrs(&XMLNamespace{URI: xmlns}))
	if sh != nil {
		e.start(op+"Result", nil)
		if err := e.structure(sh, v); err != nil {
			return err
		}
		e.end(op + "Result")
	}
	e.start("ResponseMetadata", nil)
	e.leaf("RequestId", requestID)
	e.end("ResponseMetadata")
	e.end(root)
	_, err := w.Write(e.b.Bytes())
	return err
}

// EncodeEC2Error writes an EC2 error response, the document botocore's
// EC2QueryParser and aws-sdk-go-v2's ec2query deserializer read:
//
//	<?xml version="1.0" encoding="UTF-8"?>
//	<Response><Errors><Error><Code>…</Code><Message>…</Message></Error></Errors>
//	<RequestID>…</RequestID></Response>
//
// Note RequestID, not RequestId: EC2 differs from the query protocol here.
func EncodeEC2Error(w io.Writer, code, message, requestID string) error {
	e := xmlEncoder{p: protoEC2}
	e.b.WriteString(xmlDeclaration)
	e.start("Response", nil)
	e.start("Errors", nil)
	e.start("Error", nil)
	e.leaf("Code", code)
	e.leaf("Message", message)
	e.end("Error")
	e.end("Errors")
	e.leaf("RequestID", requestID)
	e.end("Response")
	_, err := w.Write(e.b.Bytes())
	return err
}

// EncodeQueryError writes an awsQuery protocol error response; typ is
// FaultSender or FaultReceiver and xmlns the service namespace ("" for
// none):
//
//	<ErrorResponse xmlns="…"><Error><Type>Sender</Type><Code>…</Code>
//	<Message>…</Message></Error><RequestId>…</RequestId></ErrorResponse>
func EncodeQueryError(w io.Writer, typ, code, message, requestID, xmlns string) error {
	e := xmlEncoder{p: protoQuery}
	e.start("ErrorResponse", namespaceAttrs(&XMLNamespace{URI: xmlns}))
	e.start("Error", nil)
	e.leaf("Type", typ)
	e.leaf("Code", code)
	e.leaf("Message", message)
	e.end("Error")
	e.leaf("RequestId", requestID)
	e.end("ErrorResponse")
	_, err := w.Write(e.b.Bytes())
	return err
}

// checkOperation keeps the operation name, which becomes element names,
// from breaking the document.
func checkOperation(op string) error {
	if op == "" {
		return fmt.Errorf("protocol: empty operation name")
	}
	for _, c := range op {
		if !(c >= 'A' && c <= 'Z' || c >= 'a' && c <= 'z' || c >= '0' && c <= '9') {
			return fmt.Errorf("protocol: operation name %q is not alphanumeric", op)
		}
	}
	return nil
}

// genericOutput turns a response struct into its shape and generic value.
func genericOutput(out any) (*Shape, map[string]any, error) {
	if out == nil {
		return nil, nil, nil
	}
	rv := reflect.ValueOf(out)
	if rv.Kind() == reflect.Pointer && rv.IsNil() {
		return nil, nil, nil
	}
	sh, err := ShapeOf(rv.Type())
	if err != nil {
		return nil, nil, err
	}
	g, _ := toGeneric(rv, sh)
	gm, _ := g.(map[string]any)
	return sh, gm, nil
}

// xmlEncoder builds a document in memory so that a failure midway leaves
// the caller free to send an error response instead.
type xmlEncoder struct {
	p protocolKind
	b bytes.Buffer
	// open is the buffer length right after the last start tag, used to
	// collapse elements that end up empty into <name/>.
	open int
}

func (e *xmlEncoder) start(name string, attrs []xml.Attr) {
	e.b.WriteByte('<')
	e.b.WriteString(name)
	for _, a := range attrs {
		e.b.WriteByte(' ')
		if a.Name.Space != "" {
			e.b.WriteString(a.Name.Space)
			e.b.WriteByte(':')
		}
		e.b.WriteString(a.Name.Local)
		e.b.WriteString(`="`)
		xml.EscapeText(&e.b, []byte(a.Value)) // bytes.Buffer cannot fail
		e.b.WriteByte('"')
	}
	e.b.WriteByte('>')
	e.open = e.b.Len()
}

func (e *xmlEncoder) end(name string) {
	if e.b.Len() == e.open {
		e.b.Truncate(e.open - 1)
		e.b.WriteString("/>")
		e.open = -1
		return
	}
	e.b.WriteString("</")
	e.b.WriteString(name)
	e.b.WriteByte('>')
}

func (e *xmlEncoder) text(s string) {
	xml.EscapeText(&e.b, []byte(s)) // bytes.Buffer cannot fail
}

func (e *xmlEncoder) leaf(name, text string) {
	e.start(name, nil)
	e.text(text)
	e.end(name)
}

func namespaceAttrs(ns *XMLNamespace) []xml.Attr {
	if ns == nil || ns.URI == "" {
		return nil
	}
	if ns.Prefix != "" {
		return []xml.Attr{{Name: xml.Name{Space: "xmlns", Local: ns.Prefix}, Value: ns.URI}}
	}
	return []xml.Attr{{Name: xml.Name{Local: "xmlns"}, Value: ns.URI}}
}

// structure writes the child elements of a structure value, in member
// order. Attribute members are written by element, on the start tag.
func (e *xmlEncoder) structure(sh *Shape, v map[string]any) error {
	for _, m := range sh.Members {
		mv, ok := v[m.Name]
		if !ok || mv == nil || m.XMLAttribute {
			continue
		}
		if err := e.member(m, mv); err != nil {
			return err
		}
	}
	return nil
}

// member writes one structure member: a single element, or for flattened
// lists and maps one element per item, all named after the member.
func (e *xmlEncoder) member(m *Member, v any) error {
	name := outputName(m)
	if !m.flattened() {
		return e.element(name, m.XMLNamespace, m, v)
	}
	switch m.Shape.Type {
	case TypeList:
		items, ok := v.([]any)
		if !ok {
			return typeError(m, v)
		}
		ns := m.Shape.Member.XMLNamespace
		if ns == nil {
			ns = m.XMLNamespace
		}
		for _, item := range items {
			if err := e.element(name, ns, m.Shape.Member, item); err != nil {
				return err
			}
		}
		return nil
	case TypeMap:
		entries, ok := v.(map[string]any)
		if !ok {
			return typeError(m, v)
		}
		for _, k := range sortedKeys(entries) {
			e.start(name, namespaceAttrs(m.XMLNamespace))
			if err := e.mapEntry(m.Shape, k, entries[k]); err != nil {
				return err
			}
			e.end(name)
		}
		return nil
	}
	return e.element(name, m.XMLNamespace, m, v)
}

// element writes <name>…</name> holding v, a value of m's shape.
func (e *xmlEncoder) element(name string, ns *XMLNamespace, m *Member, v any) error {
	attrs := namespaceAttrs(ns)
	if v == nil { // a null inside a sparse list
		e.start(name, attrs)
		e.end(name)
		return nil
	}
	sh := m.Shape
	switch sh.Type {
	case TypeStructure:
		sv, ok := v.(map[string]any)
		if !ok {
			return typeError(m, v)
		}
		for _, am := range sh.Members {
			av, ok := sv[am.Name]
			if !am.XMLAttribute || !ok || av == nil {
				continue
			}
			text, err := formatScalar(am, av)
			if err != nil {
				return err
			}
			attrs = append(attrs, xml.Attr{Name: xml.Name{Local: outputName(am)}, Value: text})
		}
		e.start(name, attrs)
		if err := e.structure(sh, sv); err != nil {
			return err
		}
	case TypeList:
		items, ok := v.([]any)
		if !ok {
			return typeError(m, v)
		}
		itemName := outputListElement(e.p, sh)
		e.start(name, attrs)
		for _, item := range items {
			if err := e.element(itemName, sh.Member.XMLNamespace, sh.Member, item); err != nil {
				return err
			}
		}
	case TypeMap:
		entries, ok := v.(map[string]any)
		if !ok {
			return typeError(m, v)
		}
		e.start(name, attrs)
		for _, k := range sortedKeys(entries) {
			e.start("entry", nil)
			if err := e.mapEntry(sh, k, entries[k]); err != nil {
				return err
			}
			e.end("entry")
		}
	default:
		text, err := formatScalar(m, v)
		if err != nil {
			return err
		}
		e.start(name, attrs)
		e.text(text)
	}
	e.end(name)
	return nil
}

func (e *xmlEncoder) mapEntry(sh *Shape, key string, value any) error {
	if err := e.element(mapKeyName(sh), sh.Key.XMLNamespace, sh.Key, key); err != nil {
		return err
	}
	return e.element(mapValueName(sh), sh.Value.XMLNamespace, sh.Value, value)
}

// sortedKeys makes map output deterministic, which Go maps are not.
func sortedKeys(m map[string]any) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	return keys
}

// formatScalar renders a generic scalar as XML text. It accepts the Go
// types DecodeEC2Value produces plus the narrower numeric types, so callers
// building generic values by hand need not convert.
func formatScalar(m *Member, v any) (string, error) {
	sh := m.Shape
	switch sh.Type {
	case TypeString:
		if s, ok := v.(string); ok {
			return s, nil
		}
	case TypeInteger, TypeLong:
		switch n := v.(type) {
		case int64:
			return strconv.FormatInt(n, 10), nil
		case int:
			return strconv.Itoa(n), nil
		case int32:
			return strconv.FormatInt(int64(n), 10), nil
		}
	case TypeFloat, TypeDouble:
		bits := 64
		if sh.Type == TypeFloat {
			bits = 32
		}
		switch f := v.(type) {
		case float64:
			return formatFloat(f, bits), nil
		case float32:
			return formatFloat(float64(f), bits), nil
		}
	case TypeBoolean:
		if b, ok := v.(bool); ok {
			return strconv.FormatBool(b), nil
		}
	case TypeTimestamp:
		if t, ok := v.(time.Time); ok {
			return formatTimestamp(t, m.timestampFormat()), nil
		}
	case TypeBlob:
		if b, ok := v.([]byte); ok {
			return base64.StdEncoding.EncodeToString(b), nil
		}
	}
	return "", typeError(m, v)
}

func typeError(m *Member, v any) error {
	return fmt.Errorf("protocol: member %s (shape %s, type %s) cannot hold a %s",
		m.Name, m.Shape.Name, m.Shape.Type, kindOf(v))
}
