package nft

import (
	"fmt"
	"strings"

	"github.com/google/nftables"
)

// Render returns the ruleset Apply installs for p, in nft syntax: both
// tables, their sets and maps (with elements) and chains. It is what the
// golden files hold, and it is built from the same objects Apply sends,
// so the two cannot drift. A Policy that Apply would reject renders as a
// comment naming the error.
func Render(p Policy) string {
	ts, err := build(p)
	if err != nil {
		return fmt.Sprintf("# invalid policy: %v\n", err)
	}
	var b strings.Builder
	for i, t := range ts {
		if i > 0 {
			b.WriteString("\n")
		}
		renderTable(&b, t)
	}
	return b.String()
}

func familyName(f nftables.TableFamily) string {
	switch f {
	case nftables.TableFamilyINet:
		return "inet"
	case nftables.TableFamilyBridge:
		return "bridge"
	case nftables.TableFamilyIPv4:
		return "ip"
	}
	return fmt.Sprint(f)
}

func renderTable(b *strings.Builder, t *table) {
	fmt.Fprintf(b, "table %s %s {\n", familyName(t.family), t.name)
	for _, s := range t.sets {
		kind := "set"
		if s.data != nil {
			kind = "map"
		}
		fmt.Fprintf(b, "\t%s %s {\n", kind, s.name)
		names := make([]string, len(s.keys))
		for i, k := range s.keys {
			names[i] = k.Name
		}
		typ := strings.Join(names, " . ")
		if s.data != nil {
			typ += " : " + s.data.Name
		}
		fmt.Fprintf(b, "\t\ttype %s\n", typ)
		if len(s.elems) > 0 {
			b.WriteString("\t\telements = {\n")
			for i, e := range s.elems {
				line := strings.Join(e.keyText, " . ")
				switch {
				case e.verdict != nil:
					line += " : " + verdictText(*e.verdict)
				case e.val != nil:
					line += " : " + e.valText
				}
				sep := ","
				if i == len(s.elems)-1 {
					sep = ""
				}
				fmt.Fprintf(b, "\t\t\t%s%s\n", line, sep)
			}
			b.WriteString("\t\t}\n")
		}
		b.WriteString("\t}\n")
	}
	for _, c := range t.chains {
		b.WriteString("\n")
		fmt.Fprintf(b, "\tchain %s {\n", c.name)
		if c.base != nil {
			pol := "accept"
			if c.base.policy == nftables.ChainPolicyDrop {
				pol = "drop"
			}
			fmt.Fprintf(b, "\t\ttype %s hook %s priority %d; policy %s;\n", c.base.typ, c.base.hookNm, c.base.prio, pol)
		}
		for _, r := range c.rules {
			parts := make([]string, 0, len(r.terms)+1)
			for _, t := range r.terms {
				if tx := t.text(); tx != "" { // etherDep has none
					parts = append(parts, tx)
				}
			}
			if r.comment != "" {
				parts = append(parts, fmt.Sprintf("comment %q", r.comment))
			}
			fmt.Fprintf(b, "\t\t%s\n", strings.Join(parts, " "))
		}
		b.WriteString("\t}\n")
	}
	b.WriteString("}\n")
}
