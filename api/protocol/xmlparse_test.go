package protocol

import (
	"bytes"
	"encoding/base64"
	"encoding/xml"
	"fmt"
	"io"
	"math"
	"slices"
	"strconv"
	"strings"
	"time"
)

// This file is a small response parser written for the tests only, in the
// way botocore's XML parser reads responses but stricter: it spells out the
// output naming rules on its own, without calling names.go, and rejects
// elements it does not expect. The vector tests run it over both the
// vectors' response bodies and the encoder's output, so a naming rule that
// is wrong in the encoder cannot hide behind the same mistake here.

type xnode struct {
	name     string
	attrs    []xml.Attr
	children []*xnode
	text     string
}

func parseXMLTree(data []byte) (*xnode, error) {
	dec := xml.NewDecoder(bytes.NewReader(data))
	var stack []*xnode
	var root *xnode
	for {
		tok, err := dec.Token()
		if err == io.EOF {
			break
		}
		if err != nil {
			return nil, err
		}
		switch tok := tok.(type) {
		case xml.StartElement:
			n := &xnode{name: tok.Name.Local, attrs: tok.Attr}
			if len(stack) > 0 {
				parent := stack[len(stack)-1]
				parent.children = append(parent.children, n)
			} else if root != nil {
				return nil, fmt.Errorf("second root element %s", n.name)
			} else {
				root = n
			}
			stack = append(stack, n)
		case xml.EndElement:
			stack = stack[:len(stack)-1]
		case xml.CharData:
			if len(stack) > 0 {
				stack[len(stack)-1].text += string(tok)
			}
		}
	}
	if root == nil {
		return nil, fmt.Errorf("no root element")
	}
	return root, nil
}

func (n *xnode) child(name string) *xnode {
	for _, c := range n.children {
		if c.name == name {
			return c
		}
	}
	return nil
}

// parseOutput reads a success response of operation op. For EC2 the root
// element holds the members next to requestId; for the query protocol they
// are inside {op}Result.
func parseOutput(p protocolKind, body []byte, op string, sh *Shape) (map[string]any, error) {
	root, err := parseXMLTree(body)
	if err != nil {
		return nil, err
	}
	if root.name != op+"Response" {
		return nil, fmt.Errorf("root element is %s, want %sResponse", root.name, op)
	}
	start := root
	allowed := map[string]bool{"requestId": true}
	if p == protoQuery {
		allowed = nil
		start = root.child(op + "Result")
		if start == nil {
			if sh != nil && len(sh.Members) > 0 && len(root.children) > 0 {
				return nil, fmt.Errorf("no %sResult element", op)
			}
			return map[string]any{}, nil
		}
	}
	if sh == nil {
		sh = &Shape{Type: TypeStructure}
	}
	return tStructure(start, sh, allowed)
}

func tStructure(n *xnode, sh *Shape, allowed map[string]bool) (map[string]any, error) {
	out := map[string]any{}
	claimed := map[*xnode]bool{}
	for _, m := range sh.Members {
		name := m.LocationName
		if name == "" {
			name = m.Name
		}
		if m.XMLAttribute {
			for _, a := range n.attrs {
				if a.Name.Local == name {
					v, err := tScalar(a.Value, m)
					if err != nil {
						return nil, err
					}
					out[m.Name] = v
				}
			}
			continue
		}
		var matches []*xnode
		for _, c := range n.children {
			if c.name == name {
				matches = append(matches, c)
				claimed[c] = true
			}
		}
		if len(matches) == 0 {
			continue
		}
		flat := m.Flattened || m.Shape.Flattened
		switch {
		case flat && m.Shape.Type == TypeList:
			var items []any
			for _, c := range matches {
				v, err := tValue(c, m.Shape.Member)
				if err != nil {
					return nil, err
				}
				items = append(items, v)
			}
			out[m.Name] = items
		case flat && m.Shape.Type == TypeMap:
			entries := map[string]any{}
			for _, c := range matches {
				if err := tMapEntry(c, m.Shape, entries); err != nil {
					return nil, err
				}
			}
			out[m.Name] = entries
		case len(matches) > 1:
			return nil, fmt.Errorf("member %s appears %d times", name, len(matches))
		default:
			v, err := tValue(matches[0], m)
			if err != nil {
				return nil, err
			}
			out[m.Name] = v
		}
	}
	for _, c := range n.children {
		if !claimed[c] && !allowed[c.name] {
			return nil, fmt.Errorf("unexpected element <%s> in <%s>", c.name, n.name)
		}
	}
	return out, nil
}

func tValue(n *xnode, m *Member) (any, error) {
	sh := m.Shape
	switch sh.Type {
	case TypeStructure:
		return tStructure(n, sh, nil)
	case TypeList:
		want := sh.Member.LocationName
		if want == "" {
			want = "member"
		}
		items := []any{}
		for _, c := range n.children {
			if c.name != want {
				return nil, fmt.Errorf("list <%s> holds <%s>, want <%s>", n.name, c.name, want)
			}
			v, err := tValue(c, sh.Member)
			if err != nil {
				return nil, err
			}
			items = append(items, v)
		}
		return items, nil
	case TypeMap:
		entries := map[string]any{}
		for _, c := range n.children {
			if c.name != "entry" {
				return nil, fmt.Errorf("map <%s> holds <%s>, want <entry>", n.name, c.name)
			}
			if err := tMapEntry(c, sh, entries); err != nil {
				return nil, err
			}
		}
		return entries, nil
	}
	if len(n.children) > 0 {
		return nil, fmt.Errorf("scalar <%s> has child elements", n.name)
	}
	return tScalar(n.text, m)
}

func tMapEntry(n *xnode, sh *Shape, into map[string]any) error {
	keyName, valueName := sh.Key.LocationName, sh.Value.LocationName
	if keyName == "" {
		keyName = "key"
	}
	if valueName == "" {
		valueName = "value"
	}
	k, v := n.child(keyName), n.child(valueName)
	if k == nil || v == nil || len(n.children) != 2 {
		return fmt.Errorf("map entry <%s> needs exactly <%s> and <%s>", n.name, keyName, valueName)
	}
	val, err := tValue(v, sh.Value)
	if err != nil {
		return err
	}
	into[k.text] = val
	return nil
}

func tScalar(text string, m *Member) (any, error) {
	sh := m.Shape
	switch sh.Type {
	case TypeString:
		return text, nil
	case TypeInteger, TypeLong:
		return strconv.ParseInt(strings.TrimSpace(text), 10, 64)
	case TypeFloat, TypeDouble:
		switch text {
		case "NaN":
			return math.NaN(), nil
		case "Infinity":
			return math.Inf(1), nil
		case "-Infinity":
			return math.Inf(-1), nil
		}
		return strconv.ParseFloat(strings.TrimSpace(text), 64)
	case TypeBoolean:
		switch text {
		case "true":
			return true, nil
		case "false":
			return false, nil
		}
		return nil, fmt.Errorf("bad boolean %q", text)
	case TypeBlob:
		return base64.StdEncoding.DecodeString(text)
	case TypeTimestamp:
		format := m.TimestampFormat
		if format == "" {
			format = sh.TimestampFormat
		}
		switch format {
		case "unixTimestamp":
			f, err := strconv.ParseFloat(text, 64)
			if err != nil {
				return nil, err
			}
			return time.UnixMilli(int64(math.Round(f * 1000))).UTC(), nil
		case "rfc822":
			return time.Parse(time.RFC1123, text)
		default:
			return time.Parse(time.RFC3339Nano, text)
		}
	}
	return nil, fmt.Errorf("unknown type %s", sh.Type)
}

// parsedError is what an SDK extracts from an error document.
type parsedError struct {
	Type, Code, Message, RequestID string
}

func parseErrorDoc(p protocolKind, body []byte) (parsedError, error) {
	root, err := parseXMLTree(body)
	if err != nil {
		return parsedError{}, err
	}
	var e parsedError
	var errNode *xnode
	if p == protoEC2 {
		if root.name != "Response" {
			return e, fmt.Errorf("EC2 error root is %s", root.name)
		}
		if errs := root.child("Errors"); errs != nil {
			errNode = errs.child("Error")
		}
		if id := root.child("RequestID"); id != nil {
			e.RequestID = id.text
		}
	} else {
		if root.name != "ErrorResponse" {
			return e, fmt.Errorf("query error root is %s", root.name)
		}
		errNode = root.child("Error")
		if id := root.child("RequestId"); id != nil {
			e.RequestID = id.text
		}
	}
	if errNode == nil {
		return e, fmt.Errorf("no Error element")
	}
	for _, f := range []struct {
		name string
		dst  *string
	}{{"Type", &e.Type}, {"Code", &e.Code}, {"Message", &e.Message}} {
		if c := errNode.child(f.name); c != nil {
			*f.dst = c.text
		}
	}
	return e, nil
}

// namespaceDecls lists the xmlns declarations below the root element as
// "path attr=uri" lines, so two documents' namespaces can be compared.
func namespaceDecls(body []byte) ([]string, error) {
	root, err := parseXMLTree(body)
	if err != nil {
		return nil, err
	}
	var out []string
	var walk func(n *xnode, path string)
	walk = func(n *xnode, path string) {
		for _, a := range n.attrs {
			switch {
			case a.Name.Space == "" && a.Name.Local == "xmlns":
				out = append(out, path+" xmlns="+a.Value)
			case a.Name.Space == "xmlns":
				out = append(out, path+" xmlns:"+a.Name.Local+"="+a.Value)
			}
		}
		for _, c := range n.children {
			walk(c, path+"/"+c.name)
		}
	}
	for _, c := range root.children {
		walk(c, c.name)
	}
	slices.Sort(out)
	return out, nil
}
