package protocol

import (
	"fmt"
	"reflect"
	"sort"
	"strings"
	"sync"
	"time"
)

// Struct tags understood by ShapeOf. They follow aws-sdk-go v1, whose
// generated structs carry the same information, so shapes can be copied
// from there or from botocore models with little translation:
//
//	locationName:"regionName"      wire name (EC2 input upper-cases it)
//	queryName:"RegionName"         EC2 input name, wins over locationName
//	locationNameList:"item"        element name of a list
//	locationNameKey:"Name"         key name of a map entry
//	locationNameValue:"Value"      value name of a map entry
//	flattened:"true"               list or map without wrapper element
//	timestampFormat:"iso8601"      or unixTimestamp, rfc822
//	required:"true"                decoding fails with MissingParameter
//	omitempty:"true"               omit a zero non-pointer field from output
//	xmlAttribute:"true"            scalar written as an XML attribute
//	xmlURI:"…" xmlPrefix:"…"       namespace declared on the element
//	enumValues:"a,b,c"             allowed string values, checked on input
//	                               (v1's enum:"Type" names a type; ignored)
//	locationName:"-"               not a member at all
//
// Go types map to shape types: string kinds → string, int32 → integer, int
// and int64 → long, float32 → float, float64 → double, bool → boolean,
// time.Time → timestamp, []byte → blob, other slices → list, maps with
// string keys → map, structs → structure. Any of these may be behind a
// pointer. Embedded structs (not pointers) contribute their fields.

var (
	// shapeCache holds the shape of every struct type seen, like
	// encoding/json's type cache: shapes are immutable once published.
	shapeCache sync.Map // reflect.Type → *Shape
	// shapeMu serializes building so that recursive types are built once.
	shapeMu sync.Mutex
)

var (
	timeType  = reflect.TypeFor[time.Time]()
	bytesType = reflect.TypeFor[[]byte]()
)

// ShapeOf returns the shape of a struct type (or pointer to one), derived
// from its fields and struct tags and cached for the life of the process.
func ShapeOf(t reflect.Type) (*Shape, error) {
	for t.Kind() == reflect.Pointer {
		t = t.Elem()
	}
	if sh, ok := shapeCache.Load(t); ok {
		return sh.(*Shape), nil
	}
	if t.Kind() != reflect.Struct {
		return nil, fmt.Errorf("protocol: %s is not a struct", t)
	}
	shapeMu.Lock()
	defer shapeMu.Unlock()
	b := shapeBuilder{building: make(map[reflect.Type]*Shape)}
	sh, err := b.structShape(t)
	if err != nil {
		return nil, err
	}
	// Publish only complete graphs: a failed build leaves nothing behind.
	for t, s := range b.building {
		shapeCache.LoadOrStore(t, s)
	}
	return sh, nil
}

type shapeBuilder struct {
	building map[reflect.Type]*Shape
}

func (b *shapeBuilder) structShape(t reflect.Type) (*Shape, error) {
	if sh, ok := shapeCache.Load(t); ok {
		return sh.(*Shape), nil
	}
	if sh, ok := b.building[t]; ok {
		return sh, nil // recursive reference; filled in by the outer call
	}
	sh := &Shape{Name: t.String(), Type: TypeStructure}
	b.building[t] = sh
	seen := make(map[string]bool)
	if err := b.addFields(sh, t, nil, seen); err != nil {
		return nil, err
	}
	return sh, nil
}

func (b *shapeBuilder) addFields(sh *Shape, t reflect.Type, prefix []int, seen map[string]bool) error {
	for i := range t.NumField() {
		f := t.Field(i)
		index := append(append([]int(nil), prefix...), i)
		tag := f.Tag
		if f.Name == "_" || tag.Get("locationName") == "-" {
			continue
		}
		if f.Anonymous && tag.Get("locationName") == "" {
			if f.Type.Kind() != reflect.Struct {
				return fmt.Errorf("protocol: %s.%s: only struct values may be embedded", t, f.Name)
			}
			if err := b.addFields(sh, f.Type, index, seen); err != nil {
				return err
			}
			continue
		}
		if !f.IsExported() {
			continue
		}
		if seen[f.Name] {
			return fmt.Errorf("protocol: %s: member %s is defined twice", t, f.Name)
		}
		seen[f.Name] = true
		m, err := b.member(f, index)
		if err != nil {
			return fmt.Errorf("protocol: %s.%s: %w", t, f.Name, err)
		}
		sh.Members = append(sh.Members, m)
	}
	return nil
}

func (b *shapeBuilder) member(f reflect.StructField, index []int) (*Member, error) {
	tag := f.Tag
	m := &Member{
		Name:         f.Name,
		LocationName: tag.Get("locationName"),
		QueryName:    tag.Get("queryName"),
		Flattened:    tag.Get("flattened") == "true",
		XMLAttribute: tag.Get("xmlAttribute") == "true",
		Required:     tag.Get("required") == "true",
		index:        index,
		omitEmpty:    tag.Get("omitempty") == "true",
	}
	if uri := tag.Get("xmlURI"); uri != "" {
		m.XMLNamespace = &XMLNamespace{Prefix: tag.Get("xmlPrefix"), URI: uri}
	}
	sh, err := b.typeShape(f.Type)
	if err != nil {
		return nil, err
	}
	format := tag.Get("timestampFormat")
	switch format {
	case "", TimestampISO8601, TimestampUnix, TimestampRFC822:
	default:
		return nil, fmt.Errorf("unknown timestampFormat %q", format)
	}
	enum := tag.Get("enumValues")
	if enum != "" && scalarOf(sh).Type != TypeString {
		return nil, fmt.Errorf("enumValues needs strings, not %s", scalarOf(sh).Type)
	}
	switch sh.Type {
	case TypeList:
		// A list shape belongs to its field: the element name is a property
		// of the field's tags, not of the element type.
		sh.Member.LocationName = tag.Get("locationNameList")
		sh.Member.TimestampFormat = format
		if enum != "" {
			sh.Member.Shape = enumShape(sh.Member.Shape, enum)
		}
	case TypeMap:
		sh.Key.LocationName = tag.Get("locationNameKey")
		sh.Value.LocationName = tag.Get("locationNameValue")
		sh.Value.TimestampFormat = format
		if enum != "" {
			sh.Value.Shape = enumShape(sh.Value.Shape, enum)
		}
	default:
		m.TimestampFormat = format
		if enum != "" {
			sh = enumShape(sh, enum)
		}
	}
	if m.XMLAttribute && !isScalar(sh) {
		return nil, fmt.Errorf("xmlAttribute needs a scalar, not a %s", sh.Type)
	}
	m.Shape = sh
	return m, nil
}

func enumShape(sh *Shape, values string) *Shape {
	c := *sh
	c.Enum = strings.Split(values, ",")
	return &c
}

// scalarOf is the shape an enum tag applies to: the field itself, or the
// elements of a list or values of a map.
func scalarOf(sh *Shape) *Shape {
	switch sh.Type {
	case TypeList:
		return sh.Member.Shape
	case TypeMap:
		return sh.Value.Shape
	}
	return sh
}

func isScalar(sh *Shape) bool {
	switch sh.Type {
	case TypeStructure, TypeList, TypeMap:
		return false
	}
	return true
}

// typeShape maps a Go type to a shape. Scalars and lists get fresh shapes
// because tags on the referring field adjust them; structs are shared.
func (b *shapeBuilder) typeShape(t reflect.Type) (*Shape, error) {
	if t.Kind() == reflect.Pointer {
		t = t.Elem()
		if t.Kind() == reflect.Pointer {
			return nil, fmt.Errorf("pointer to pointer (%s) is not supported", t)
		}
	}
	switch {
	case t == timeType:
		return &Shape{Name: t.String(), Type: TypeTimestamp}, nil
	case t == bytesType || (t.Kind() == reflect.Slice && t.Elem().Kind() == reflect.Uint8):
		return &Shape{Name: t.String(), Type: TypeBlob}, nil
	}
	scalar := func(typ string) (*Shape, error) { return &Shape{Name: t.String(), Type: typ}, nil }
	switch t.Kind() {
	case reflect.String:
		return scalar(TypeString)
	case reflect.Int32:
		return scalar(TypeInteger)
	case reflect.Int, reflect.Int64:
		return scalar(TypeLong)
	case reflect.Float32:
		return scalar(TypeFloat)
	case reflect.Float64:
		return scalar(TypeDouble)
	case reflect.Bool:
		return scalar(TypeBoolean)
	case reflect.Struct:
		return b.structShape(t)
	case reflect.Slice:
		elem, err := b.typeShape(t.Elem())
		if err != nil {
			return nil, err
		}
		return &Shape{Name: t.String(), Type: TypeList, Member: &Member{Name: "member", Shape: elem}}, nil
	case reflect.Map:
		if t.Key().Kind() != reflect.String {
			return nil, fmt.Errorf("map keys must be strings, not %s", t.Key())
		}
		key, err := b.typeShape(t.Key())
		if err != nil {
			return nil, err
		}
		value, err := b.typeShape(t.Elem())
		if err != nil {
			return nil, err
		}
		return &Shape{Name: t.String(), Type: TypeMap,
			Key: &Member{Name: "key", Shape: key}, Value: &Member{Name: "value", Shape: value}}, nil
	}
	return nil, fmt.Errorf("type %s is not supported", t)
}

// toGeneric converts a Go value to the generic form the encoder writes,
// applying the output presence rules: nil pointers, slices and maps are
// absent; a non-nil empty slice is present (an empty wrapper element); zero
// non-pointer fields are present unless tagged omitempty.
func toGeneric(v reflect.Value, sh *Shape) (any, bool) {
	if v.Kind() == reflect.Pointer || v.Kind() == reflect.Interface {
		if v.IsNil() {
			return nil, false
		}
		v = v.Elem()
	}
	switch sh.Type {
	case TypeStructure:
		out := make(map[string]any, len(sh.Members))
		for _, m := range sh.Members {
			f := v.FieldByIndex(m.index)
			if m.omitEmpty && f.IsZero() {
				continue
			}
			if g, ok := toGeneric(f, m.Shape); ok {
				out[m.Name] = g
			}
		}
		return out, true
	case TypeList:
		if v.IsNil() {
			return nil, false
		}
		out := make([]any, v.Len())
		for i := range v.Len() {
			out[i], _ = toGeneric(v.Index(i), sh.Member.Shape)
		}
		return out, true
	case TypeMap:
		if v.IsNil() {
			return nil, false
		}
		out := make(map[string]any, v.Len())
		iter := v.MapRange()
		for iter.Next() {
			if g, ok := toGeneric(iter.Value(), sh.Value.Shape); ok {
				out[iter.Key().String()] = g
			}
		}
		return out, true
	case TypeString:
		return v.String(), true
	case TypeInteger, TypeLong:
		return v.Int(), true
	case TypeFloat, TypeDouble:
		return v.Float(), true
	case TypeBoolean:
		return v.Bool(), true
	case TypeTimestamp:
		return v.Interface().(time.Time), true
	case TypeBlob:
		if v.IsNil() {
			return nil, false
		}
		return v.Bytes(), true
	}
	return nil, false
}

// fromGeneric stores a decoded generic value into a Go value of the type
// the shape was derived from. A mismatch is a bug in this package, not in
// the request, so the error is a plain one.
func fromGeneric(g any, v reflect.Value, sh *Shape) error {
	if v.Kind() == reflect.Pointer {
		if v.IsNil() {
			v.Set(reflect.New(v.Type().Elem()))
		}
		v = v.Elem()
	}
	mismatch := func() error {
		return fmt.Errorf("protocol: cannot store %s in %s (shape %s)", kindOf(g), v.Type(), sh.Name)
	}
	switch sh.Type {
	case TypeStructure:
		gm, ok := g.(map[string]any)
		if !ok {
			return mismatch()
		}
		for _, m := range sh.Members {
			if mv, ok := gm[m.Name]; ok {
				if err := fromGeneric(mv, v.FieldByIndex(m.index), m.Shape); err != nil {
					return err
				}
			}
		}
	case TypeList:
		gl, ok := g.([]any)
		if !ok {
			return mismatch()
		}
		s := reflect.MakeSlice(v.Type(), len(gl), len(gl))
		for i, e := range gl {
			if err := fromGeneric(e, s.Index(i), sh.Member.Shape); err != nil {
				return err
			}
		}
		v.Set(s)
	case TypeMap:
		gm, ok := g.(map[string]any)
		if !ok {
			return mismatch()
		}
		mv := reflect.MakeMapWithSize(v.Type(), len(gm))
		keys := make([]string, 0, len(gm))
		for k := range gm {
			keys = append(keys, k)
		}
		sort.Strings(keys)
		for _, k := range keys {
			e := reflect.New(v.Type().Elem()).Elem()
			if err := fromGeneric(gm[k], e, sh.Value.Shape); err != nil {
				return err
			}
			mv.SetMapIndex(reflect.ValueOf(k).Convert(v.Type().Key()), e)
		}
		v.Set(mv)
	case TypeString:
		s, ok := g.(string)
		if !ok {
			return mismatch()
		}
		v.SetString(s)
	case TypeInteger, TypeLong:
		i, ok := g.(int64)
		if !ok || v.OverflowInt(i) {
			return mismatch()
		}
		v.SetInt(i)
	case TypeFloat, TypeDouble:
		f, ok := g.(float64)
		if !ok {
			return mismatch()
		}
		v.SetFloat(f)
	case TypeBoolean:
		b, ok := g.(bool)
		if !ok {
			return mismatch()
		}
		v.SetBool(b)
	case TypeTimestamp:
		t, ok := g.(time.Time)
		if !ok {
			return mismatch()
		}
		v.Set(reflect.ValueOf(t))
	case TypeBlob:
		b, ok := g.([]byte)
		if !ok {
			return mismatch()
		}
		v.SetBytes(b)
	default:
		return mismatch()
	}
	return nil
}
