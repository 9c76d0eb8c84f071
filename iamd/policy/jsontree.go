package policy

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"strings"
	"unicode/utf8"
)

// The policy document is read into a small tree rather than straight into
// structs because validation needs what encoding/json hides: the order of
// keys, duplicate keys, the JSON type of each value (a policy may use a
// string or a list) and the byte offset of each statement, which
// SimulatePrincipalPolicy reports as MatchedStatements positions.

type nodeKind int

const (
	nodeObject nodeKind = iota
	nodeArray
	nodeString
	nodeNumber
	nodeBool
	nodeNull
)

func (k nodeKind) String() string {
	switch k {
	case nodeObject:
		return "an object"
	case nodeArray:
		return "a list"
	case nodeString:
		return "a string"
	case nodeNumber:
		return "a number"
	case nodeBool:
		return "a boolean"
	}
	return "null"
}

type node struct {
	kind  nodeKind
	str   string // string value, number literal, or "true"/"false"
	keys  []string
	vals  []*node // object values, parallel to keys
	elems []*node // array elements
	// start is the byte offset of the value's first byte, end the offset
	// just past its last byte.
	start, end int
}

// get returns the value of key in an object node.
func (n *node) get(key string) *node {
	for i, k := range n.keys {
		if k == key {
			return n.vals[i]
		}
	}
	return nil
}

// maxDepth bounds nesting; no valid policy comes close, and the bound keeps
// hostile documents from costing deep recursion.
const maxDepth = 64

type treeReader struct {
	doc string
	dec *json.Decoder
}

// errMalformedJSON carries a syntax problem and where it is.
type jsonError struct {
	msg    string
	offset int
}

func readTree(doc string) (*node, *jsonError) {
	r := &treeReader{doc: doc, dec: json.NewDecoder(strings.NewReader(doc))}
	r.dec.UseNumber()
	n, jerr := r.value(0)
	if jerr != nil {
		return nil, jerr
	}
	if _, err := r.dec.Token(); err != io.EOF {
		if err == nil {
			return nil, &jsonError{msg: "unexpected data after the policy document", offset: r.tokenStart()}
		}
		return nil, r.wrap(err)
	}
	return n, nil
}

// tokenStart finds where the next token begins: the decoder's offset is
// the end of the previous token, and only whitespace and separators lie
// between.
func (r *treeReader) tokenStart() int {
	off := int(r.dec.InputOffset())
	for off < len(r.doc) {
		switch r.doc[off] {
		case ' ', '\t', '\n', '\r', ',', ':':
			off++
			continue
		}
		break
	}
	return off
}

func (r *treeReader) wrap(err error) *jsonError {
	var se *json.SyntaxError
	if errors.As(err, &se) {
		return &jsonError{msg: se.Error(), offset: int(se.Offset)}
	}
	if err == io.EOF || errors.Is(err, io.ErrUnexpectedEOF) {
		return &jsonError{msg: "unexpected end of JSON input", offset: len(r.doc)}
	}
	return &jsonError{msg: err.Error(), offset: int(r.dec.InputOffset())}
}

func (r *treeReader) value(depth int) (*node, *jsonError) {
	if depth > maxDepth {
		return nil, &jsonError{msg: fmt.Sprintf("nesting deeper than %d levels", maxDepth), offset: r.tokenStart()}
	}
	start := r.tokenStart()
	tok, err := r.dec.Token()
	if err != nil {
		return nil, r.wrap(err)
	}
	n := &node{start: start}
	switch t := tok.(type) {
	case json.Delim:
		switch t {
		case '{':
			n.kind = nodeObject
			seen := map[string]bool{}
			for r.dec.More() {
				kstart := r.tokenStart()
				kt, err := r.dec.Token()
				if err != nil {
					return nil, r.wrap(err)
				}
				key, ok := kt.(string)
				if !ok {
					return nil, &jsonError{msg: "object key is not a string", offset: kstart}
				}
				if seen[key] {
					return nil, &jsonError{msg: fmt.Sprintf("duplicate key %q", key), offset: kstart}
				}
				seen[key] = true
				v, jerr := r.value(depth + 1)
				if jerr != nil {
					return nil, jerr
				}
				n.keys = append(n.keys, key)
				n.vals = append(n.vals, v)
			}
		case '[':
			n.kind = nodeArray
			for r.dec.More() {
				v, jerr := r.value(depth + 1)
				if jerr != nil {
					return nil, jerr
				}
				n.elems = append(n.elems, v)
			}
		default:
			return nil, &jsonError{msg: fmt.Sprintf("unexpected %q", rune(t)), offset: start}
		}
		// The closing delimiter.
		if _, err := r.dec.Token(); err != nil {
			return nil, r.wrap(err)
		}
	case string:
		n.kind, n.str = nodeString, t
	case json.Number:
		n.kind, n.str = nodeNumber, string(t)
	case bool:
		n.kind = nodeBool
		if t {
			n.str = "true"
		} else {
			n.str = "false"
		}
	case nil:
		n.kind = nodeNull
	}
	n.end = int(r.dec.InputOffset())
	return n, nil
}

// position converts a byte offset into a 1-based line and column; the
// column counts characters, not bytes, so it matches what an editor shows.
func position(doc string, off int) Position {
	if off > len(doc) {
		off = len(doc)
	}
	if off < 0 {
		off = 0
	}
	line := 1 + strings.Count(doc[:off], "\n")
	lineStart := strings.LastIndexByte(doc[:off], '\n') + 1
	return Position{Line: line, Column: 1 + utf8.RuneCountInString(doc[lineStart:off])}
}
