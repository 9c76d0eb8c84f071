package protocol

import (
	"unicode"
	"unicode/utf8"
)

// protocolKind selects between the two naming rule sets. All wire names are
// computed by the functions in this file and nowhere else, so the decoder,
// the encoder, the botocore shapes and the Go struct shapes cannot disagree.
type protocolKind int

const (
	protoEC2 protocolKind = iota + 1
	protoQuery
)

// inputName is the request parameter name of a structure member.
//
// EC2: queryName, else locationName with its first letter upper-cased, else
// the member name upper-cased the same way. The last rule is smithy's
// (ec2.json vectors serialize member "label" as "Label"); botocore would send
// the name unchanged, but every input member of the real EC2 model either
// starts upper-case or has a locationName, so the two never differ there.
//
// Query: locationName, else the member name, unchanged.
func inputName(p protocolKind, m *Member) string {
	if p == protoEC2 {
		if m.QueryName != "" {
			return m.QueryName
		}
		if m.LocationName != "" {
			return upperFirst(m.LocationName)
		}
		return upperFirst(m.Name)
	}
	if m.LocationName != "" {
		return m.LocationName
	}
	return m.Name
}

// inputListElement is the path segment between a list parameter and its
// 1-based indexes, or "" when the indexes follow the name directly: always
// for EC2 ("Filter.1"), and for flattened query lists ("Hi.1"). Otherwise it
// is the list member's locationName, by default "member"
// ("ListArg.member.1").
func inputListElement(p protocolKind, m *Member) string {
	if p == protoEC2 || m.flattened() {
		return ""
	}
	if n := m.Shape.Member.LocationName; n != "" {
		return n
	}
	return "member"
}

// inputMapEntry is the path segment between a map parameter and its entry
// indexes: "entry" unless the map is flattened. EC2 has no maps of its own;
// botocore's EC2 serializer inherits the query rules, and so do we.
func inputMapEntry(m *Member) string {
	if m.flattened() {
		return ""
	}
	return "entry"
}

// mapKeyName and mapValueName name a map entry's parts, in requests and
// responses alike.
func mapKeyName(sh *Shape) string {
	if sh.Key.LocationName != "" {
		return sh.Key.LocationName
	}
	return "key"
}

func mapValueName(sh *Shape) string {
	if sh.Value.LocationName != "" {
		return sh.Value.LocationName
	}
	return "value"
}

// outputName is the XML element name of a structure member in a response,
// the same in both protocols. For flattened lists and maps it is also the
// name of every repeated element (smithy's rule; the list member's own
// locationName does not apply there).
func outputName(m *Member) string {
	if m.LocationName != "" {
		return m.LocationName
	}
	return m.Name
}

// outputListElement names the elements inside a non-flattened list: the list
// member's locationName, else "item" for EC2 (what EC2 sends, e.g.
// <regionInfo><item>) and "member" for query protocols (IAM, STS).
func outputListElement(p protocolKind, list *Shape) string {
	if n := list.Member.LocationName; n != "" {
		return n
	}
	if p == protoEC2 {
		return "item"
	}
	return "member"
}

func upperFirst(s string) string {
	r, size := utf8.DecodeRuneInString(s)
	if r == utf8.RuneError || unicode.IsUpper(r) {
		return s
	}
	return string(unicode.ToUpper(r)) + s[size:]
}
