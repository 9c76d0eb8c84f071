package policy

import (
	"strings"
	"unicode/utf8"
)

// Patterns in this package use an internal escaped form: '*' and '?' are
// wildcards and a backslash makes the next byte literal. The escape exists
// because the policy variables ${*} and ${?}, and any substituted variable
// value, must match literally even inside a wildcard pattern.

// globEscape turns policy text, in which a backslash is an ordinary
// character, into the internal pattern form with its wildcards active.
func globEscape(s string) string {
	if !strings.Contains(s, `\`) {
		return s
	}
	return strings.ReplaceAll(s, `\`, `\\`)
}

// literalEscape turns text into a pattern that matches only itself.
func literalEscape(s string) string {
	if !strings.ContainsAny(s, `*?\`) {
		return s
	}
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		switch s[i] {
		case '*', '?', '\\':
			b.WriteByte('\\')
		}
		b.WriteByte(s[i])
	}
	return b.String()
}

// globMatch reports whether s matches pattern p, where '*' matches any
// run of characters (including none) and '?' exactly one character. It
// backtracks only to the last '*', which is linear for the patterns IAM
// allows and never worse than quadratic.
func globMatch(p, s string) bool {
	px, sx := 0, 0
	starP, starS := -1, 0
	for px < len(p) || sx < len(s) {
		if px < len(p) {
			switch c := p[px]; c {
			case '*':
				starP, starS = px, sx
				px++
				continue
			case '?':
				if sx < len(s) {
					_, n := utf8.DecodeRuneInString(s[sx:])
					px++
					sx += n
					continue
				}
			case '\\':
				lit := byte('\\')
				step := 1
				if px+1 < len(p) {
					lit, step = p[px+1], 2
				}
				if sx < len(s) && s[sx] == lit {
					px += step
					sx++
					continue
				}
			default:
				if sx < len(s) && s[sx] == c {
					px++
					sx++
					continue
				}
			}
		}
		if starP >= 0 && starS < len(s) {
			_, n := utf8.DecodeRuneInString(s[starS:])
			starS += n
			px, sx = starP+1, starS
			continue
		}
		return false
	}
	return true
}

// arnParts is the number of colon-separated ARN components:
// arn:partition:service:region:account:resource.
const arnParts = 6

// splitARN splits an ARN into its six components; the resource component
// keeps any further colons. It returns false for strings that are not ARNs.
func splitARN(s string) ([arnParts]string, bool) {
	var parts [arnParts]string
	for i := 0; i < arnParts-1; i++ {
		j := strings.IndexByte(s, ':')
		if j < 0 {
			return parts, false
		}
		parts[i], s = s[:j], s[j+1:]
	}
	parts[arnParts-1] = s
	return parts, parts[0] == "arn"
}

// splitPattern splits a pattern in internal form like splitARN, skipping
// escaped colons, so that each component is matched on its own: AWS
// matches partition, service, region and account separately, and a '*' in
// one of them never swallows a colon.
func splitPattern(p string) ([arnParts]string, bool) {
	var parts [arnParts]string
	k, from := 0, 0
	for i := 0; i < len(p) && k < arnParts-1; i++ {
		switch p[i] {
		case '\\':
			i++
		case ':':
			parts[k] = p[from:i]
			k++
			from = i + 1
		}
	}
	if k < arnParts-1 {
		return parts, false
	}
	parts[arnParts-1] = p[from:]
	return parts, true
}

// arnMatch matches an ARN (or "*") from a request against an ARN pattern
// in internal form, component by component, case-sensitively.
func arnMatch(pattern, value string) bool {
	if pattern == "*" {
		return true
	}
	pp, ok := splitPattern(pattern)
	if !ok {
		// Fewer than six components cannot describe an ARN; AWS matches
		// component by component, so such a pattern matches nothing.
		return false
	}
	vp, ok := splitARN(value)
	if !ok {
		return false
	}
	for i := range pp {
		if !globMatch(pp[i], vp[i]) {
			return false
		}
	}
	return true
}

// actionMatch matches a lower-cased request action against a lower-cased
// action pattern; IAM action names are case-insensitive.
func actionMatch(pattern, action string) bool {
	return pattern == "*" || globMatch(pattern, action)
}
