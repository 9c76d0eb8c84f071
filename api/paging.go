package api

import (
	"encoding/base64"
	"sort"

	"github.com/labcloud/labcloud/internal/errdefs"
)

// pageByID cuts one page of at most maxResults (at least minMax, capped
// at maxMax) from list, which is sorted by id; the token is the first id
// of the next page. Every paginated Describe* of the EC2 API uses it.
func pageByID[T any](list []T, id func(T) string, maxResults *int32, nextToken *string, minMax, maxMax int) ([]T, *string, error) {
	start := 0
	if nextToken != nil && *nextToken != "" {
		raw, err := base64.RawURLEncoding.DecodeString(*nextToken)
		if err != nil {
			return nil, nil, errdefs.InvalidParameter("InvalidParameterValue", "Invalid NextToken: pass the nextToken of the previous response unchanged")
		}
		start = sort.Search(len(list), func(i int) bool { return id(list[i]) >= string(raw) })
	}
	if maxResults == nil {
		return list[start:], nil, nil
	}
	n := int(*maxResults)
	if n < minMax {
		return nil, nil, errdefs.InvalidParameter("InvalidParameterValue", "Value (%d) for parameter maxResults is invalid. Expecting a value of at least %d", n, minMax)
	}
	// Larger values return maxMax items, as EC2 documents (the aws CLI
	// sends 1000 when it paginates by itself).
	n = min(n, maxMax)
	end := min(start+n, len(list))
	var tok *string
	if end < len(list) {
		t := base64.RawURLEncoding.EncodeToString([]byte(id(list[end])))
		tok = &t
	}
	return list[start:end], tok, nil
}
