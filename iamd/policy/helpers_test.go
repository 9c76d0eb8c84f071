package policy

import (
	"fmt"
	"testing"
)

// mustParse parses a document the test expects to be valid.
func mustParse(t testing.TB, doc string, kind Kind) *Policy {
	t.Helper()
	p, err := Parse(doc, kind)
	if err != nil {
		t.Fatalf("Parse: %v\n%s", err, doc)
	}
	return p
}

// ctxOf builds a context from a map; a nil slice value records the key as
// present with no values.
func ctxOf(m map[string][]string) *Context {
	c := NewContext()
	for k, v := range m {
		c.Set(k, v...)
	}
	return c
}

// condDoc wraps one condition operator block into an identity policy.
func condDoc(version, op, key, values string) string {
	v := ""
	if version != "" {
		v = fmt.Sprintf(`"Version":%q,`, version)
	}
	return fmt.Sprintf(`{%s"Statement":{"Effect":"Allow","Action":"*","Resource":"*","Condition":{%q:{%q:%s}}}}`, v, op, key, values)
}
