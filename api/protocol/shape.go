package protocol

import (
	"bytes"
	"encoding/json"
	"fmt"
	"reflect"
	"sort"
)

// Shape types, spelled as botocore spells them so that a shape loaded from a
// botocore model and one derived from a Go struct are indistinguishable to
// the encoders and decoders.
const (
	TypeStructure = "structure"
	TypeList      = "list"
	TypeMap       = "map"
	TypeString    = "string"
	TypeInteger   = "integer"
	TypeLong      = "long"
	TypeFloat     = "float"
	TypeDouble    = "double"
	TypeBoolean   = "boolean"
	TypeTimestamp = "timestamp"
	TypeBlob      = "blob"
)

// Timestamp formats understood by the timestampFormat trait. AWS models use
// exactly these three spellings.
const (
	TimestampISO8601 = "iso8601"
	TimestampUnix    = "unixTimestamp"
	TimestampRFC822  = "rfc822"
)

// Shape describes the wire form of a value, mirroring botocore's model so
// that AWS's own protocol test vectors can drive this package directly.
//
// A Shape graph may be cyclic (recursive structures); code walking it must
// be driven by a value, never by the shape alone.
type Shape struct {
	// Name is the model's shape name or the Go type name; it only appears in
	// error messages.
	Name string
	// Type is one of the Type* constants.
	Type string
	// Members lists a structure's members in model order, which is also the
	// order in which they are written to XML.
	Members []*Member
	// Member is a list's element.
	Member *Member
	// Key and Value describe a map's entries.
	Key, Value *Member
	// Flattened marks a flattened list or map at the shape level; botocore
	// allows the trait on the shape as well as on the member reference.
	Flattened bool
	// TimestampFormat is the shape-level default format of a timestamp; a
	// member reference may override it.
	TimestampFormat string
	// Enum lists the allowed values of a string; decoding rejects others.
	Enum []string
	// XMLNamespace is the shape-level namespace. It is kept for fidelity but
	// not written: AWS only emits namespaces declared on member references.
	XMLNamespace *XMLNamespace
}

// Member is a reference to a shape from a structure, list or map, carrying
// the serialization traits that depend on where the shape is used.
type Member struct {
	// Name is the member's model name, which is also the key in generic
	// values and the Go field name for shapes derived from structs.
	Name string
	// Shape is the target shape.
	Shape *Shape
	// LocationName renames the member on the wire (botocore "locationName",
	// smithy xmlName). On a list member it names the list's elements.
	LocationName string
	// QueryName is the EC2-only input name (smithy ec2QueryName); it wins
	// over LocationName for EC2 requests and is ignored everywhere else.
	QueryName string
	// Flattened writes list elements or map entries directly inside the
	// parent instead of inside a wrapper element.
	Flattened bool
	// XMLAttribute writes a scalar member as an attribute of its parent
	// structure's element instead of as a child element.
	XMLAttribute bool
	// XMLNamespace is declared on the member's element when it is written.
	XMLNamespace *XMLNamespace
	// TimestampFormat overrides the target shape's format.
	TimestampFormat string
	// Required makes decoding fail with MissingParameter when the member is
	// absent from a structure that is present.
	Required bool

	// index is the Go field index for shapes derived from structs.
	index []int
	// omitEmpty drops zero-valued non-pointer fields from output.
	omitEmpty bool
}

// XMLNamespace is an xmlns declaration; an empty Prefix declares the default
// namespace.
type XMLNamespace struct {
	Prefix string
	URI    string
}

// flattened reports whether the member's list or map is written without a
// wrapper element; the trait counts on either the reference or the shape.
func (m *Member) flattened() bool {
	return m.Flattened || m.Shape.Flattened
}

// timestampFormat resolves the member-over-shape precedence of the trait.
func (m *Member) timestampFormat() string {
	if m.TimestampFormat != "" {
		return m.TimestampFormat
	}
	return m.Shape.TimestampFormat
}

// botocoreRef is a member reference in a botocore model.
type botocoreRef struct {
	Shape           string          `json:"shape"`
	LocationName    string          `json:"locationName"`
	QueryName       string          `json:"queryName"`
	Flattened       bool            `json:"flattened"`
	XMLAttribute    bool            `json:"xmlAttribute"`
	XMLNamespace    json.RawMessage `json:"xmlNamespace"`
	TimestampFormat string          `json:"timestampFormat"`
}

// botocoreShape is a shape definition in a botocore model. Members is kept
// raw because its key order is the member order and a Go map would lose it.
type botocoreShape struct {
	Type            string          `json:"type"`
	Members         json.RawMessage `json:"members"`
	Member          *botocoreRef    `json:"member"`
	Key             *botocoreRef    `json:"key"`
	Value           *botocoreRef    `json:"value"`
	Required        []string        `json:"required"`
	Flattened       bool            `json:"flattened"`
	TimestampFormat string          `json:"timestampFormat"`
	Enum            []string        `json:"enum"`
	XMLNamespace    json.RawMessage `json:"xmlNamespace"`
}

// ShapesFromBotocore builds shapes from the "shapes" object of a botocore
// service model (or of a protocol test suite), resolving references between
// them, recursive ones included.
//
// A list member without a locationName is given the name "member": in
// botocore and smithy models that is the element name in every XML
// protocol, EC2 included. The "item" default that EC2 uses applies only to
// shapes derived from Go structs, where real EC2 models always spell it out.
func ShapesFromBotocore(shapes map[string]json.RawMessage) (map[string]*Shape, error) {
	defs := make(map[string]*botocoreShape, len(shapes))
	out := make(map[string]*Shape, len(shapes))
	for name, raw := range shapes {
		var def botocoreShape
		if err := json.Unmarshal(raw, &def); err != nil {
			return nil, fmt.Errorf("shape %s: %w", name, err)
		}
		defs[name] = &def
		out[name] = &Shape{Name: name, Type: def.Type}
	}
	// Fill in sorted order so that errors are reported deterministically.
	names := make([]string, 0, len(defs))
	for name := range defs {
		names = append(names, name)
	}
	sort.Strings(names)
	for _, name := range names {
		if err := fillBotocoreShape(out[name], defs[name], out); err != nil {
			return nil, fmt.Errorf("shape %s: %w", name, err)
		}
	}
	return out, nil
}

func fillBotocoreShape(sh *Shape, def *botocoreShape, all map[string]*Shape) error {
	sh.Flattened = def.Flattened
	sh.TimestampFormat = def.TimestampFormat
	sh.Enum = def.Enum
	ns, err := parseBotocoreNamespace(def.XMLNamespace)
	if err != nil {
		return err
	}
	sh.XMLNamespace = ns
	switch def.Type {
	case TypeStructure:
		names, refs, err := orderedRefs(def.Members)
		if err != nil {
			return err
		}
		required := make(map[string]bool, len(def.Required))
		for _, r := range def.Required {
			required[r] = true
		}
		for i, name := range names {
			m, err := resolveRef(name, refs[i], all)
			if err != nil {
				return err
			}
			m.Required = required[name]
			sh.Members = append(sh.Members, m)
		}
	case TypeList:
		if def.Member == nil {
			return fmt.Errorf("list has no member")
		}
		m, err := resolveRef("member", def.Member, all)
		if err != nil {
			return err
		}
		if m.LocationName == "" {
			m.LocationName = "member"
		}
		sh.Member = m
	case TypeMap:
		if def.Key == nil || def.Value == nil {
			return fmt.Errorf("map needs both key and value")
		}
		if sh.Key, err = resolveRef("key", def.Key, all); err != nil {
			return err
		}
		if sh.Value, err = resolveRef("value", def.Value, all); err != nil {
			return err
		}
	case TypeString, TypeInteger, TypeLong, TypeFloat, TypeDouble,
		TypeBoolean, TypeTimestamp, TypeBlob:
	default:
		return fmt.Errorf("unsupported type %q", def.Type)
	}
	return nil
}

func resolveRef(name string, ref *botocoreRef, all map[string]*Shape) (*Member, error) {
	target, ok := all[ref.Shape]
	if !ok {
		return nil, fmt.Errorf("member %s refers to unknown shape %q", name, ref.Shape)
	}
	ns, err := parseBotocoreNamespace(ref.XMLNamespace)
	if err != nil {
		return nil, fmt.Errorf("member %s: %w", name, err)
	}
	return &Member{
		Name:            name,
		Shape:           target,
		LocationName:    ref.LocationName,
		QueryName:       ref.QueryName,
		Flattened:       ref.Flattened,
		XMLAttribute:    ref.XMLAttribute,
		XMLNamespace:    ns,
		TimestampFormat: ref.TimestampFormat,
	}, nil
}

// parseBotocoreNamespace accepts both spellings found in models: a bare URI
// string or an object with prefix and uri.
func parseBotocoreNamespace(raw json.RawMessage) (*XMLNamespace, error) {
	if len(raw) == 0 || string(raw) == "null" {
		return nil, nil
	}
	var uri string
	if err := json.Unmarshal(raw, &uri); err == nil {
		return &XMLNamespace{URI: uri}, nil
	}
	var obj struct {
		Prefix string `json:"prefix"`
		URI    string `json:"uri"`
	}
	if err := json.Unmarshal(raw, &obj); err != nil {
		return nil, fmt.Errorf("xmlNamespace: %w", err)
	}
	return &XMLNamespace{Prefix: obj.Prefix, URI: obj.URI}, nil
}

// orderedRefs decodes a JSON object of member references keeping the key
// order, which encoding/json's map decoding would discard.
func orderedRefs(raw json.RawMessage) ([]string, []*botocoreRef, error) {
	if len(raw) == 0 {
		return nil, nil, nil
	}
	dec := json.NewDecoder(bytes.NewReader(raw))
	tok, err := dec.Token()
	if err != nil {
		return nil, nil, err
	}
	if d, ok := tok.(json.Delim); !ok || d != '{' {
		return nil, nil, fmt.Errorf("members is not an object")
	}
	var names []string
	var refs []*botocoreRef
	for dec.More() {
		tok, err := dec.Token()
		if err != nil {
			return nil, nil, err
		}
		name, _ := tok.(string)
		var ref botocoreRef
		if err := dec.Decode(&ref); err != nil {
			return nil, nil, fmt.Errorf("member %s: %w", name, err)
		}
		names = append(names, name)
		refs = append(refs, &ref)
	}
	return names, refs, nil
}

// kindOf returns a readable description of v for internal error messages.
func kindOf(v any) string {
	if v == nil {
		return "nil"
	}
	return reflect.TypeOf(v).String()
}
