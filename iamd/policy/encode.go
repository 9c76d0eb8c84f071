package policy

import (
	"bytes"
	"encoding/json"
	"sort"
)

// MarshalJSON writes the policy in canonical form: elements in the order
// the AWS documentation uses, every list as a JSON list, condition values
// as strings. Parse of the result gives back an equivalent policy, which
// the fuzz test checks; iamd can store the original text and use this for
// normalised display.
func (p *Policy) MarshalJSON() ([]byte, error) {
	var b bytes.Buffer
	b.WriteByte('{')
	first := true
	field := func(name string) {
		if !first {
			b.WriteByte(',')
		}
		first = false
		writeString(&b, name)
		b.WriteByte(':')
	}
	if p.Version != "" {
		field("Version")
		writeString(&b, p.Version)
	}
	if p.ID != "" {
		field("Id")
		writeString(&b, p.ID)
	}
	field("Statement")
	b.WriteByte('[')
	for i := range p.Statements {
		if i > 0 {
			b.WriteByte(',')
		}
		p.Statements[i].marshal(&b)
	}
	b.WriteString("]}")
	return b.Bytes(), nil
}

func (s *Statement) marshal(b *bytes.Buffer) {
	b.WriteByte('{')
	first := true
	field := func(name string) {
		if !first {
			b.WriteByte(',')
		}
		first = false
		writeString(b, name)
		b.WriteByte(':')
	}
	if s.Sid != "" {
		field("Sid")
		writeString(b, s.Sid)
	}
	field("Effect")
	writeString(b, s.Effect)
	for _, pr := range []struct {
		name string
		m    map[string][]string
	}{{"Principal", s.Principal}, {"NotPrincipal", s.NotPrincipal}} {
		if pr.m == nil {
			continue
		}
		field(pr.name)
		if _, star := pr.m["*"]; star && len(pr.m) == 1 {
			writeString(b, "*")
			continue
		}
		types := make([]string, 0, len(pr.m))
		for t := range pr.m {
			types = append(types, t)
		}
		sort.Strings(types)
		b.WriteByte('{')
		for i, t := range types {
			if i > 0 {
				b.WriteByte(',')
			}
			writeString(b, t)
			b.WriteByte(':')
			writeList(b, pr.m[t])
		}
		b.WriteByte('}')
	}
	for _, l := range []struct {
		name string
		v    []string
	}{{"Action", s.Action}, {"NotAction", s.NotAction}, {"Resource", s.Resource}, {"NotResource", s.NotResource}} {
		if l.v != nil {
			field(l.name)
			writeList(b, l.v)
		}
	}
	if len(s.Conditions) > 0 {
		field("Condition")
		b.WriteByte('{')
		// Conditions are grouped by operator in first-seen order, which
		// is document order since Parse keeps it.
		for i := 0; i < len(s.Conditions); {
			op := s.Conditions[i].Operator
			if i > 0 {
				b.WriteByte(',')
			}
			writeString(b, op)
			b.WriteString(":{")
			for j := i; j < len(s.Conditions) && s.Conditions[j].Operator == op; j++ {
				if j > i {
					b.WriteByte(',')
				}
				writeString(b, s.Conditions[j].Key)
				b.WriteByte(':')
				writeList(b, s.Conditions[j].Values)
				i = j
			}
			i++
			b.WriteByte('}')
		}
		b.WriteByte('}')
	}
	b.WriteByte('}')
}

func writeString(b *bytes.Buffer, s string) {
	enc, _ := json.Marshal(s)
	b.Write(enc)
}

func writeList(b *bytes.Buffer, l []string) {
	b.WriteByte('[')
	for i, s := range l {
		if i > 0 {
			b.WriteByte(',')
		}
		writeString(b, s)
	}
	b.WriteByte(']')
}
