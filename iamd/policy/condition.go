package policy

import (
	"bytes"
	"encoding/base64"
	"fmt"
	"math"
	"net/netip"
	"sort"
	"strconv"
	"strings"
	"time"
)

// Condition operators follow reference_policies_elements_condition_operators
// (https://docs.aws.amazon.com/IAM/latest/UserGuide/reference_policies_elements_condition_operators.html).

// baseOp is the comparison an operator makes, with negation split off:
// StringNotLike is opStringLike negated.
type baseOp int

const (
	opStringEquals baseOp = iota
	opStringEqualsIgnoreCase
	opStringLike
	opNumericEquals
	opNumericLessThan
	opNumericLessThanEquals
	opNumericGreaterThan
	opNumericGreaterThanEquals
	opDateEquals
	opDateLessThan
	opDateLessThanEquals
	opDateGreaterThan
	opDateGreaterThanEquals
	opBool
	opBinaryEquals
	opIPAddress
	opArnLike
	opNull
)

// setQualifier is the ForAllValues/ForAnyValue prefix, for keys with
// several values such as aws:TagKeys.
type setQualifier int

const (
	setNone setQualifier = iota
	setForAllValues
	setForAnyValue
)

type valueType int

const (
	typeString valueType = iota
	typeNumber
	typeDate
	typeBool
	typeBinary
	typeIP
	typeARN
	typeNull
)

type opInfo struct {
	op      baseOp
	negated bool
	typ     valueType
	// vars says whether the operator substitutes policy variables in its
	// values; the operator reference marks numeric, date, binary and IP
	// operators "Policy variables – Not supported".
	vars bool
}

var operators = map[string]opInfo{
	"StringEquals":              {opStringEquals, false, typeString, true},
	"StringNotEquals":           {opStringEquals, true, typeString, true},
	"StringEqualsIgnoreCase":    {opStringEqualsIgnoreCase, false, typeString, true},
	"StringNotEqualsIgnoreCase": {opStringEqualsIgnoreCase, true, typeString, true},
	"StringLike":                {opStringLike, false, typeString, true},
	"StringNotLike":             {opStringLike, true, typeString, true},
	"NumericEquals":             {opNumericEquals, false, typeNumber, false},
	"NumericNotEquals":          {opNumericEquals, true, typeNumber, false},
	"NumericLessThan":           {opNumericLessThan, false, typeNumber, false},
	"NumericLessThanEquals":     {opNumericLessThanEquals, false, typeNumber, false},
	"NumericGreaterThan":        {opNumericGreaterThan, false, typeNumber, false},
	"NumericGreaterThanEquals":  {opNumericGreaterThanEquals, false, typeNumber, false},
	"DateEquals":                {opDateEquals, false, typeDate, false},
	"DateNotEquals":             {opDateEquals, true, typeDate, false},
	"DateLessThan":              {opDateLessThan, false, typeDate, false},
	"DateLessThanEquals":        {opDateLessThanEquals, false, typeDate, false},
	"DateGreaterThan":           {opDateGreaterThan, false, typeDate, false},
	"DateGreaterThanEquals":     {opDateGreaterThanEquals, false, typeDate, false},
	"Bool":                      {opBool, false, typeBool, true},
	"BinaryEquals":              {opBinaryEquals, false, typeBinary, false},
	"IpAddress":                 {opIPAddress, false, typeIP, false},
	"NotIpAddress":              {opIPAddress, true, typeIP, false},
	// ArnEquals and ArnLike are the same test: the reference documents
	// both as component-wise, case-sensitive and wildcard-aware.
	"ArnEquals":    {opArnLike, false, typeARN, true},
	"ArnLike":      {opArnLike, false, typeARN, true},
	"ArnNotEquals": {opArnLike, true, typeARN, true},
	"ArnNotLike":   {opArnLike, true, typeARN, true},
	"Null":         {opNull, false, typeNull, false},
}

// condValue is one policy value, pre-parsed for its operator's type so
// that evaluation does no parsing of the policy side.
type condValue struct {
	tmpl   *template // non-nil when the value has policy variables
	text   string    // plain text (string, Bool, Null)
	glob   string    // internal pattern form (StringLike, Arn*)
	num    float64
	date   time.Time
	prefix netip.Prefix
	bin    []byte
	b      bool
}

// parseOperator splits "ForAnyValue:StringLikeIfExists" into its parts.
func parseOperator(name string) (info opInfo, set setQualifier, ifExists bool, err error) {
	base := name
	switch {
	case strings.HasPrefix(base, "ForAllValues:"):
		set, base = setForAllValues, strings.TrimPrefix(base, "ForAllValues:")
	case strings.HasPrefix(base, "ForAnyValue:"):
		set, base = setForAnyValue, strings.TrimPrefix(base, "ForAnyValue:")
	}
	if b, ok := strings.CutSuffix(base, "IfExists"); ok {
		if b == "Null" {
			return info, set, false, fmt.Errorf("condition operator %q: IfExists cannot be added to Null, which itself tests whether the key exists", name)
		}
		if _, known := operators[b]; known {
			base, ifExists = b, true
		}
	}
	info, ok := operators[base]
	if !ok {
		msg := fmt.Sprintf("unknown condition operator %q", name)
		if s := suggestOperator(base); s != "" {
			msg += fmt.Sprintf(" (did you mean %q?)", s)
		}
		return info, set, false, fmt.Errorf("%s", msg)
	}
	if info.op == opNull && set != setNone {
		return info, set, false, fmt.Errorf("condition operator %q: Null tests whether a key exists and takes no ForAllValues/ForAnyValue prefix", name)
	}
	return info, set, ifExists, nil
}

func suggestOperator(base string) string {
	names := make([]string, 0, len(operators))
	for n := range operators {
		names = append(names, n)
	}
	sort.Strings(names)
	for _, n := range names {
		if strings.EqualFold(n, base) || strings.EqualFold(n+"IfExists", base) {
			if strings.HasSuffix(strings.ToLower(base), "ifexists") && !strings.EqualFold(n, base) {
				return n + "IfExists"
			}
			return n
		}
	}
	return ""
}

// compileValue checks one policy value for the operator's type.
func compileValue(info opInfo, raw string, variables bool) (condValue, error) {
	v := condValue{text: raw}
	if variables && info.vars {
		v.tmpl = parseTemplate(raw)
	}
	if v.tmpl != nil {
		return v, nil
	}
	switch info.typ {
	case typeString, typeARN:
		v.glob = globEscape(raw)
	case typeNumber:
		n, ok := parseNumber(raw)
		if !ok {
			return v, fmt.Errorf("%q is not a number", raw)
		}
		v.num = n
	case typeDate:
		t, ok := parseDate(raw)
		if !ok {
			return v, fmt.Errorf("%q is not a date (use ISO 8601 such as 2026-01-31T12:00:00Z, or epoch seconds)", raw)
		}
		v.date = t
	case typeBool:
		b, ok := parseBool(raw)
		if !ok {
			return v, fmt.Errorf("%q is not a boolean (use \"true\" or \"false\")", raw)
		}
		v.b = b
	case typeNull:
		b, ok := parseBool(raw)
		if !ok {
			return v, fmt.Errorf("%q is not a boolean (Null takes \"true\" for absent or \"false\" for present)", raw)
		}
		v.b = b
	case typeBinary:
		b, err := base64.StdEncoding.DecodeString(raw)
		if err != nil {
			return v, fmt.Errorf("%q is not base64", raw)
		}
		v.bin = b
	case typeIP:
		p, ok := parseCIDR(raw)
		if !ok {
			return v, fmt.Errorf("%q is not an IP address or CIDR block", raw)
		}
		v.prefix = p
	}
	return v, nil
}

func parseNumber(s string) (float64, bool) {
	n, err := strconv.ParseFloat(strings.TrimSpace(s), 64)
	if err != nil || math.IsNaN(n) || math.IsInf(n, 0) {
		return 0, false
	}
	return n, true
}

func parseBool(s string) (bool, bool) {
	switch {
	case strings.EqualFold(s, "true"):
		return true, true
	case strings.EqualFold(s, "false"):
		return false, true
	}
	return false, false
}

// dateLayouts are the W3C profile of ISO 8601 that the operator reference
// points to, from a year alone down to fractional seconds.
var dateLayouts = []string{
	time.RFC3339Nano,
	"2006-01-02T15:04Z07:00",
	"2006-01-02T15:04:05.999999999",
	"2006-01-02T15:04:05",
	"2006-01-02",
	"2006-01",
	"2006",
	"20060102T150405Z0700",
	"20060102T150405Z",
}

// parseDate reads an ISO 8601 date or epoch seconds. Times without a zone
// are UTC.
func parseDate(s string) (time.Time, bool) {
	s = strings.TrimSpace(s)
	if s == "" {
		return time.Time{}, false
	}
	if allDigitsOrDot(s) && (len(s) > 4 || strings.Contains(s, ".")) {
		f, err := strconv.ParseFloat(s, 64)
		if err != nil || math.IsInf(f, 0) || f > 1e13 {
			return time.Time{}, false
		}
		sec, frac := math.Modf(f)
		return time.Unix(int64(sec), int64(frac*1e9)).UTC(), true
	}
	for _, l := range dateLayouts {
		if t, err := time.Parse(l, s); err == nil {
			return t.UTC(), true
		}
	}
	return time.Time{}, false
}

func allDigitsOrDot(s string) bool {
	for i := 0; i < len(s); i++ {
		if (s[i] < '0' || s[i] > '9') && s[i] != '.' {
			return false
		}
	}
	return true
}

// parseCIDR accepts a CIDR block or a bare address, which stands for
// itself (/32 or /128).
func parseCIDR(s string) (netip.Prefix, bool) {
	s = strings.TrimSpace(s)
	if strings.Contains(s, "/") {
		p, err := netip.ParsePrefix(s)
		if err != nil {
			return netip.Prefix{}, false
		}
		return p.Masked(), true
	}
	a, err := netip.ParseAddr(s)
	if err != nil {
		return netip.Prefix{}, false
	}
	return netip.PrefixFrom(a, a.BitLen()), true
}

// condResult is the outcome of one condition: whether it holds and,
// when the key (or a variable in a value) was absent, which key.
type condResult struct {
	ok      bool
	missing []string
}

// eval evaluates c against ctx following the operator reference:
//
//   - "If the key that you specify in a policy condition is not present in
//     the request context, the values do not match and the condition is
//     false. If the policy condition requires that the key is not matched,
//     such as StringNotLike or ArnNotLike, and the right key is not
//     present, the condition is true. This logic applies to all condition
//     operators except ...IfExists and Null check."
//   - …IfExists: a missing key makes the condition true.
//   - ForAllValues is true when the key is missing or its set is empty,
//     ForAnyValue is false then.
//   - Several policy values for one key are ORed; a negated operator is
//     the negation of that OR, so StringNotEquals with two values means the
//     request value equals neither.
//
// A key present with an empty list of values counts as absent, except
// that only a key not present at all is reported as missing.
func (c *Condition) eval(ctx *Context) condResult {
	var res condResult
	vals, present := ctx.get(c.lkey)
	if !present {
		res.missing = append(res.missing, c.Key)
	}
	if c.op == opNull {
		absent := len(vals) == 0
		for i := range c.values {
			if c.values[i].b == absent {
				res.ok = true
			}
		}
		return res
	}
	if len(vals) == 0 {
		switch {
		case c.ifExists:
			res.ok = true
		case c.set == setForAllValues:
			res.ok = true
		case c.set == setForAnyValue:
			res.ok = false
		default:
			res.ok = c.negated
		}
		return res
	}
	// Resolve policy variables once per evaluation.
	pol := c.values
	if c.hasVars {
		pol = make([]condValue, 0, len(c.values))
		for _, v := range c.values {
			if v.tmpl == nil {
				pol = append(pol, v)
				continue
			}
			rv, ok := c.resolve(v, ctx, &res)
			if ok {
				pol = append(pol, rv)
			}
		}
	}
	switch c.set {
	case setForAllValues:
		res.ok = true
		for _, r := range vals {
			if c.matchAny(pol, r) == c.negated {
				res.ok = false
				break
			}
		}
	case setForAnyValue:
		for _, r := range vals {
			if c.matchAny(pol, r) != c.negated {
				res.ok = true
				break
			}
		}
	default:
		any := false
		for _, r := range vals {
			if c.matchAny(pol, r) {
				any = true
				break
			}
		}
		res.ok = any != c.negated
	}
	return res
}

// resolve substitutes variables in a templated value; a value whose
// variable has no value and no default matches nothing.
func (c *Condition) resolve(v condValue, ctx *Context, res *condResult) (condValue, bool) {
	glob := c.op == opStringLike || c.op == opArnLike
	s, ok, missing := v.tmpl.render(ctx, glob)
	if missing != "" {
		res.missing = append(res.missing, missing)
	}
	if !ok {
		return v, false
	}
	out := condValue{text: s, glob: s}
	if c.op == opBool {
		b, ok := parseBool(s)
		if !ok {
			return v, false
		}
		out.b = b
	}
	return out, true
}

// matchAny reports whether request value r matches any policy value under
// the operator's positive test.
func (c *Condition) matchAny(pol []condValue, r string) bool {
	switch c.op {
	case opNumericEquals, opNumericLessThan, opNumericLessThanEquals, opNumericGreaterThan, opNumericGreaterThanEquals:
		n, ok := parseNumber(r)
		if !ok {
			return false
		}
		for i := range pol {
			if compareOrdered(c.op-opNumericEquals, cmpFloat(n, pol[i].num)) {
				return true
			}
		}
		return false
	case opDateEquals, opDateLessThan, opDateLessThanEquals, opDateGreaterThan, opDateGreaterThanEquals:
		t, ok := parseDate(r)
		if !ok {
			return false
		}
		for i := range pol {
			if compareOrdered(c.op-opDateEquals, t.Compare(pol[i].date)) {
				return true
			}
		}
		return false
	case opIPAddress:
		a, err := netip.ParseAddr(strings.TrimSpace(r))
		if err != nil {
			return false
		}
		a = a.Unmap()
		for i := range pol {
			if pol[i].prefix.Contains(a) {
				return true
			}
		}
		return false
	case opBool:
		b, ok := parseBool(r)
		if !ok {
			return false
		}
		for i := range pol {
			if pol[i].b == b {
				return true
			}
		}
		return false
	case opBinaryEquals:
		// Request values for binary keys arrive base64-encoded, as the
		// policy values are; compare the decoded bytes.
		rb, err := base64.StdEncoding.DecodeString(r)
		if err != nil {
			rb = []byte(r)
		}
		for i := range pol {
			if bytes.Equal(pol[i].bin, rb) {
				return true
			}
		}
		return false
	}
	for i := range pol {
		p := &pol[i]
		switch c.op {
		case opStringEquals:
			if p.text == r {
				return true
			}
		case opStringEqualsIgnoreCase:
			if strings.EqualFold(p.text, r) {
				return true
			}
		case opStringLike:
			if globMatch(p.glob, r) {
				return true
			}
		case opArnLike:
			if arnMatch(p.glob, r) {
				return true
			}
		}
	}
	return false
}

func cmpFloat(a, b float64) int {
	switch {
	case a < b:
		return -1
	case a > b:
		return 1
	}
	return 0
}

// compareOrdered applies the k-th ordered comparison (Equals, LessThan,
// LessThanEquals, GreaterThan, GreaterThanEquals, in the order of the
// baseOp constants) to the result of comparing request to policy value.
func compareOrdered(k baseOp, cmp int) bool {
	switch k {
	case 0:
		return cmp == 0
	case 1:
		return cmp < 0
	case 2:
		return cmp <= 0
	case 3:
		return cmp > 0
	case 4:
		return cmp >= 0
	}
	return false
}
