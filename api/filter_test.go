package api

import (
	"strings"
	"testing"
)

func TestWildcardMatch(t *testing.T) {
	tests := []struct {
		name, pattern, s string
		want             bool
	}{
		{"literal", "lab-1a", "lab-1a", true},
		{"literal mismatch", "lab-1a", "lab-1b", false},
		{"star suffix", "lab-*", "lab-1a", true},
		{"star empty", "lab-1a*", "lab-1a", true},
		{"star middle", "l*1a", "lab-1a", true},
		{"question", "lab-1?", "lab-1c", true},
		{"question needs a char", "lab-1a?", "lab-1a", false},
		{"brackets literal", "[ab]", "[ab]", true},
		{"brackets not a class", "[ab]", "a", false},
		{"slash", "arn:*/x", "arn:aws:iam::1:role/x", true},
		{"case sensitive", "LAB-*", "lab-1", false},
		{"only star", "*", "", true},
		{"hostile", strings.Repeat("*a", 30) + "b", strings.Repeat("a", 200), false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := wildcardMatch(tt.pattern, tt.s); got != tt.want {
				t.Fatalf("wildcardMatch(%q, %q) = %v, want %v", tt.pattern, tt.s, got, tt.want)
			}
		})
	}
}

func TestApplyFilters(t *testing.T) {
	type item struct{ name, state string }
	items := []item{{"a1", "up"}, {"a2", "down"}, {"b1", "up"}}
	fields := filterFields[item]{
		"name":  func(i item) []string { return []string{i.name} },
		"state": func(i item) []string { return []string{i.state} },
	}
	tests := []struct {
		name    string
		filters []Filter
		want    []string
		wantErr string
	}{
		{name: "no filters", want: []string{"a1", "a2", "b1"}},
		{name: "or within a filter", filters: []Filter{{Name: "name", Values: []string{"a1", "b1"}}}, want: []string{"a1", "b1"}},
		{name: "and across filters", filters: []Filter{{Name: "name", Values: []string{"a*"}}, {Name: "state", Values: []string{"up"}}}, want: []string{"a1"}},
		{name: "unknown filter", filters: []Filter{{Name: "colour", Values: []string{"x"}}}, wantErr: "The filter 'colour' is invalid; valid filters are: name, state"},
		{name: "no values", filters: []Filter{{Name: "name"}}, wantErr: "has no values"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := applyFilters(items, tt.filters, fields)
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("err = %v, want %q", err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			var names []string
			for _, g := range got {
				names = append(names, g.name)
			}
			if strings.Join(names, ",") != strings.Join(tt.want, ",") {
				t.Fatalf("got %v, want %v", names, tt.want)
			}
		})
	}
}
