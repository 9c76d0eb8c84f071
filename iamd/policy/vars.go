package policy

import "strings"

// Policy variables (reference_policies_variables): in a 2012-10-17 policy,
// ${key} in a Resource or in a condition value is replaced by the value of
// that request-context key; ${key, 'default'} supplies a default; ${*},
// ${?} and ${$} stand for a literal '*', '?' and '$'. Under 2008-10-17
// (or with no Version) the same text is literal, which is why the template
// is only built for 2012-10-17 documents.

type segKind int

const (
	segText    segKind = iota // policy text, wildcards active
	segLiteral                // ${*} ${?} ${$}: one literal character
	segVar                    // ${key} or ${key, 'default'}
)

type segment struct {
	kind   segKind
	text   string // segText/segLiteral: the text; segVar: the key as written
	key    string // segVar: lower-cased key for lookup
	def    string
	hasDef bool
}

// template is a policy string with variables. A nil *template means the
// string has none and is used as is.
type template struct {
	segs []segment
}

// parseTemplate splits s into text and variables. Text that only looks
// like a variable (no closing brace, empty name, bad default quoting)
// stays literal text: AWS does not reject it, it simply never resolves.
func parseTemplate(s string) *template {
	if !strings.Contains(s, "${") {
		return nil
	}
	t := &template{}
	text := strings.Builder{}
	flush := func() {
		if text.Len() > 0 {
			t.segs = append(t.segs, segment{kind: segText, text: text.String()})
			text.Reset()
		}
	}
	vars := false
	for i := 0; i < len(s); {
		if !strings.HasPrefix(s[i:], "${") {
			text.WriteByte(s[i])
			i++
			continue
		}
		end := strings.IndexByte(s[i+2:], '}')
		if end < 0 {
			text.WriteString(s[i:])
			break
		}
		inner := s[i+2 : i+2+end]
		seg, ok := parseVariable(inner)
		if !ok {
			text.WriteString("${")
			i += 2
			continue
		}
		flush()
		t.segs = append(t.segs, seg)
		vars = true
		i += 2 + end + 1
	}
	flush()
	if !vars {
		return nil
	}
	return t
}

func parseVariable(inner string) (segment, bool) {
	switch inner {
	case "*", "?", "$":
		return segment{kind: segLiteral, text: inner}, true
	}
	name, def, hasDef := inner, "", false
	if i := strings.IndexByte(inner, ','); i >= 0 {
		name = inner[:i]
		d := strings.TrimSpace(inner[i+1:])
		if len(d) < 2 || d[0] != '\'' || d[len(d)-1] != '\'' || strings.Contains(d[1:len(d)-1], "'") {
			return segment{}, false
		}
		def, hasDef = d[1:len(d)-1], true
	}
	name = strings.TrimSpace(name)
	if name == "" || strings.ContainsAny(name, " \t${'") {
		return segment{}, false
	}
	return segment{kind: segVar, text: name, key: strings.ToLower(name), def: def, hasDef: hasDef}, true
}

// render substitutes the variables from ctx. With glob set the result is
// an internal-form pattern in which only the policy's own text keeps its
// wildcards; otherwise it is plain text. ok is false when a variable has
// no value and no default: AWS then treats the value as matching nothing.
// missing names the first variable whose key was absent.
func (t *template) render(ctx *Context, glob bool) (out string, ok bool, missing string) {
	var b strings.Builder
	ok = true
	for _, s := range t.segs {
		switch s.kind {
		case segText:
			if glob {
				b.WriteString(globEscape(s.text))
			} else {
				b.WriteString(s.text)
			}
		case segLiteral:
			if glob {
				b.WriteString(literalEscape(s.text))
			} else {
				b.WriteString(s.text)
			}
		case segVar:
			vals, present := ctx.get(s.key)
			var v string
			switch {
			// A multivalued key cannot stand in one place of a string.
			case len(vals) == 1:
				v = vals[0]
			case s.hasDef:
				v = s.def
			default:
				if !present && missing == "" {
					missing = s.text
				}
				ok = false
				continue
			}
			if glob {
				b.WriteString(literalEscape(v))
			} else {
				b.WriteString(v)
			}
		}
	}
	return b.String(), ok, missing
}
