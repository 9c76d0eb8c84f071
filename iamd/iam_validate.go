package iamd

import (
	"fmt"
	"regexp"
	"strings"
	"unicode/utf8"

	"github.com/labcloud/labcloud/internal/errdefs"
)

// The IAM input constraints, from the IAM API model. Each pattern is kept
// twice: as AWS prints it in ValidationError messages (Java syntax, \u
// escapes) and compiled for Go.
type pattern struct {
	aws string
	re  *regexp.Regexp
}

func newPattern(aws, goRE string) pattern {
	return pattern{aws: aws, re: regexp.MustCompile(`^(?:` + goRE + `)$`)}
}

var (
	patName        = newPattern(`[\w+=,.@-]+`, `[\w+=,.@-]+`)
	patPath        = newPattern(`(\u002F)|(\u002F[\u0021-\u007E]+\u002F)`, `(/)|(/[\x{21}-\x{7E}]+/)`)
	patPathPrefix  = newPattern(`\u002F[\u0021-\u007F]*`, `/[\x{21}-\x{7F}]*`)
	patPolicyPath  = newPattern(`((/[A-Za-z0-9\.,\+@=_-]+)*)/`, `((/[A-Za-z0-9.,+@=_-]+)*)/`)
	patDocument    = newPattern(`[\u0009\u000A\u000D\u0020-\u00FF]+`, `[\x{09}\x{0A}\x{0D}\x{20}-\x{FF}]+`)
	patDescription = newPattern(`[\u0009\u000A\u000D\u0020-\u007E\u00A1-\u00FF]*`, `[\x{09}\x{0A}\x{0D}\x{20}-\x{7E}\x{A1}-\x{FF}]*`)
	patTagKey      = newPattern(`[\p{L}\p{Z}\p{N}_.:/=+\-@]+`, `[\p{L}\p{Z}\p{N}_.:/=+\-@]+`)
	patTagValue    = newPattern(`[\p{L}\p{Z}\p{N}_.:/=+\-@]*`, `[\p{L}\p{Z}\p{N}_.:/=+\-@]*`)
	patVersionID   = newPattern(`v[1-9][0-9]*(\.[A-Za-z0-9-]*)?`, `v[1-9][0-9]*(\.[A-Za-z0-9-]*)?`)
	patAccessKeyID = newPattern(`[\w]+`, `[\w]+`)
)

// Length limits of names, from the IAM API model.
const (
	maxUserName            = 64
	maxGroupName           = 128
	maxRoleName            = 64
	maxPolicyName          = 128
	maxInstanceProfileName = 128
	maxPath                = 512
	maxDocument            = 131072
	maxDescription         = 1000
	maxTags                = 50
)

// Session duration bounds of a role, in seconds.
const (
	minSessionDuration     = 3600
	maxSessionDuration     = 43200
	defaultSessionDuration = 3600
)

// validator collects constraint violations of one request and reports
// them all at once, worded as AWS's ValidationError:
//
//	1 validation error detected: Value 'x y' at 'userName' failed to satisfy
//	constraint: Member must satisfy regular expression pattern: [\w+=,.@-]+
type validator struct {
	msgs []string
}

func (v *validator) fail(value any, field, constraint string) {
	shown := "null"
	if value != nil {
		shown = fmt.Sprintf("'%v'", value)
	}
	v.msgs = append(v.msgs, fmt.Sprintf("Value %s at '%s' failed to satisfy constraint: Member must %s", shown, field, constraint))
}

// str checks a string's length (in characters) and, when not empty, its
// pattern. A zero pattern means no pattern.
func (v *validator) str(field, value string, min, max int, p pattern) {
	n := utf8.RuneCountInString(value)
	switch {
	case n < min:
		v.fail(value, field, fmt.Sprintf("have length greater than or equal to %d", min))
	case max > 0 && n > max:
		v.fail(value, field, fmt.Sprintf("have length less than or equal to %d", max))
	}
	if p.re != nil && value != "" && !p.re.MatchString(value) {
		v.fail(value, field, "satisfy regular expression pattern: "+p.aws)
	}
}

// name checks an entity or policy name.
func (v *validator) name(field, value string, max int) { v.str(field, value, 1, max, patName) }

// path checks an optional entity path ("" means the default "/").
func (v *validator) path(field, value string) {
	if value != "" {
		v.str(field, value, 1, maxPath, patPath)
	}
}

// pathPrefix checks an optional list filter.
func (v *validator) pathPrefix(field, value string) {
	if value != "" {
		v.str(field, value, 1, maxPath, patPathPrefix)
	}
}

// document checks the characters and length of a policy document (its
// grammar is the policy package's job).
func (v *validator) document(field, value string) {
	v.str(field, value, 1, maxDocument, patDocument)
}

// intRange checks an integer bound.
func (v *validator) intRange(field string, value, min, max int) {
	switch {
	case value < min:
		v.fail(value, field, fmt.Sprintf("have value greater than or equal to %d", min))
	case value > max:
		v.fail(value, field, fmt.Sprintf("have value less than or equal to %d", max))
	}
}

// tags checks a tag list as TagUser, CreateUser and friends receive it.
func (v *validator) tags(field string, tags []Tag) {
	if len(tags) > maxTags {
		v.fail(fmt.Sprintf("%v", tags), field, fmt.Sprintf("have length less than or equal to %d", maxTags))
	}
	for n, t := range tags {
		at := fmt.Sprintf("%s.%d.member.", field, n+1)
		v.str(at+"key", t.Key, 1, 128, patTagKey)
		v.str(at+"value", t.Value, 0, 256, patTagValue)
	}
}

// tagKeys checks the keys UntagUser and UntagRole receive.
func (v *validator) tagKeys(field string, keys []string) {
	if len(keys) > maxTags {
		v.fail(fmt.Sprintf("%v", keys), field, fmt.Sprintf("have length less than or equal to %d", maxTags))
	}
	for n, k := range keys {
		v.str(fmt.Sprintf("%s.%d.member", field, n+1), k, 1, 128, patTagKey)
	}
}

// arn checks the length of an ARN parameter.
func (v *validator) arn(field, value string) { v.str(field, value, 20, 2048, pattern{}) }

// err is the ValidationError for everything collected, or nil.
func (v *validator) err() error {
	switch len(v.msgs) {
	case 0:
		return nil
	case 1:
		return errdefs.InvalidParameter("ValidationError", "1 validation error detected: %s", v.msgs[0])
	}
	return errdefs.InvalidParameter("ValidationError", "%d validation errors detected: %s", len(v.msgs), strings.Join(v.msgs, "; "))
}

// defaultPath returns "/" for an empty path.
func defaultPath(p string) string {
	if p == "" {
		return "/"
	}
	return p
}

// checkTags enforces what the patterns cannot: no reserved keys, no key
// twice in one request.
func checkTags(tags []Tag) error {
	seen := map[string]bool{}
	for _, t := range tags {
		lk := strings.ToLower(t.Key)
		if strings.HasPrefix(lk, "aws:") {
			return invalidInput("Tag keys starting with 'aws:' are reserved for internal AWS use; choose another key than %s.", t.Key)
		}
		if seen[lk] {
			return invalidInput("Duplicate tag keys found. Please note that Tag keys are case insensitive.")
		}
		seen[lk] = true
	}
	return nil
}

// mergeTags adds tags to have, replacing values of keys already present
// (compared without regard to case, keeping the new spelling), and
// enforces the 50-tag quota.
func mergeTags(have, add []Tag) ([]Tag, error) {
	out := append([]Tag(nil), have...)
	for _, t := range add {
		replaced := false
		for n := range out {
			if strings.EqualFold(out[n].Key, t.Key) {
				out[n] = t
				replaced = true
				break
			}
		}
		if !replaced {
			out = append(out, t)
		}
	}
	if len(out) > maxTags {
		return nil, limitExceeded("The number of tags has reached the maximum limit of %d; untag something first.", maxTags)
	}
	return out, nil
}

// removeTags drops the tags with the given keys (without regard to case);
// keys that are not there are ignored, as AWS does.
func removeTags(have []Tag, keys []string) []Tag {
	out := have[:0:0]
	for _, t := range have {
		drop := false
		for _, k := range keys {
			if strings.EqualFold(t.Key, k) {
				drop = true
				break
			}
		}
		if !drop {
			out = append(out, t)
		}
	}
	return out
}
