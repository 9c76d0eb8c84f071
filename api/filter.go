package api

import (
	"sort"
	"strings"

	"github.com/labcloud/labcloud/internal/errdefs"
)

// Filter is an EC2 Describe* filter: Filter.N.Name and Filter.N.Value.M.
type Filter struct {
	Name   string   `locationName:"Name"`
	Values []string `locationName:"Value" locationNameList:"item"`
}

// filterFields maps each filter name a Describe* action supports to the
// values an item has for it.
type filterFields[T any] map[string]func(T) []string

// applyFilters keeps the items that match every filter (AND across
// filters, OR across a filter's values); values may use * and ? wildcards,
// as in AWS. An unknown filter name is an error that lists the valid ones.
func applyFilters[T any](items []T, filters []Filter, fields filterFields[T]) ([]T, error) {
	for _, f := range filters {
		if _, ok := fields[f.Name]; !ok {
			names := make([]string, 0, len(fields))
			for n := range fields {
				names = append(names, n)
			}
			sort.Strings(names)
			return nil, errdefs.InvalidParameter("InvalidParameterValue",
				"The filter '%s' is invalid; valid filters are: %s", f.Name, strings.Join(names, ", "))
		}
		if len(f.Values) == 0 {
			return nil, errdefs.InvalidParameter("InvalidParameterValue",
				"The filter '%s' has no values: give at least one Filter.N.Value.M", f.Name)
		}
	}
	var out []T
	for _, it := range items {
		if matchesAll(it, filters, fields) {
			out = append(out, it)
		}
	}
	return out, nil
}

func matchesAll[T any](it T, filters []Filter, fields filterFields[T]) bool {
	for _, f := range filters {
		have := fields[f.Name](it)
		if !matchAny(have, f.Values) {
			return false
		}
	}
	return true
}

func matchAny(have, patterns []string) bool {
	for _, p := range patterns {
		for _, h := range have {
			if wildcardMatch(p, h) {
				return true
			}
		}
	}
	return false
}

// wildcardMatch matches AWS filter wildcards: * any run (also empty), ?
// exactly one character; everything else is literal. The two-pointer walk
// with one backtrack point is O(len(p)·len(s)), so hostile patterns such as
// "*a*a*a*…" cannot stall the server.
func wildcardMatch(p, s string) bool {
	pi, si := 0, 0
	star, mark := -1, 0
	for si < len(s) {
		switch {
		case pi < len(p) && (p[pi] == '?' || p[pi] == s[si]):
			pi++
			si++
		case pi < len(p) && p[pi] == '*':
			star, mark = pi, si
			pi++
		case star >= 0:
			pi = star + 1
			mark++
			si = mark
		default:
			return false
		}
	}
	for pi < len(p) && p[pi] == '*' {
		pi++
	}
	return pi == len(p)
}
