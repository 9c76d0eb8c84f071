package sigv4

import (
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"time"
)

const (
	algorithm       = "AWS4-HMAC-SHA256"
	terminator      = "aws4_request"
	timeFormat      = "20060102T150405Z"
	dateFormat      = "20060102"
	unsignedPayload = "UNSIGNED-PAYLOAD"
	// maxExpires is the longest X-Amz-Expires AWS accepts (7 days).
	maxExpires = 7 * 24 * time.Hour

	headerAuthorization = "Authorization"
	headerDate          = "X-Amz-Date"
	headerToken         = "X-Amz-Security-Token"
	headerContentSHA256 = "X-Amz-Content-Sha256"

	queryAlgorithm     = "X-Amz-Algorithm"
	queryCredential    = "X-Amz-Credential"
	queryDate          = "X-Amz-Date"
	queryExpires       = "X-Amz-Expires"
	querySignedHeaders = "X-Amz-SignedHeaders"
	querySignature     = "X-Amz-Signature"
	queryToken         = "X-Amz-Security-Token"
)

// Scope is the parsed credential scope. It is available before verification
// because the server routes by Service and picks the error format from it.
type Scope struct {
	AccessKeyID string
	Date        string // yyyymmdd
	Region      string
	Service     string
}

// credentialScope is the scope as it appears in the string to sign, i.e.
// without the access key id.
func (s Scope) credentialScope() string {
	return s.Date + "/" + s.Region + "/" + s.Service + "/" + terminator
}

// authInfo is everything the request says about its own signature, before
// any of it is checked against a key or the clock.
type authInfo struct {
	scope         Scope
	signedHeaders []string
	signature     string
	presigned     bool
	// rawDate is the signing time as sent; dateSource names where it came
	// from so error messages can point at the right place.
	rawDate    string
	dateSource string
	// expires is X-Amz-Expires of a presigned URL; hasExpires is false when
	// the URL has none, as aws-sdk-go-v2's STS presign client sends it.
	expires    time.Duration
	hasExpires bool
	token      string
}

// ParseScope extracts the credential scope from the Authorization header or
// from the presigned X-Amz-Credential query parameter. It returns an *Error
// when the authentication data is absent or malformed; even then the Scope
// holds whatever fields could be read (for example Service when only the
// terminator is wrong), so the caller can still choose an error format.
func ParseScope(r *http.Request) (Scope, error) {
	a, err := parseAuth(r)
	return a.scope, err
}

// parseAuth reads the SigV4 data from either the Authorization header or the
// presigned query. It always returns a non-nil authInfo so that the scope
// read so far survives an error.
func parseAuth(r *http.Request) (*authInfo, error) {
	a := &authInfo{}
	_, rawQuery := requestTarget(r)
	query := parseQuery(rawQuery)
	a.presigned = query[queryAlgorithm] != nil || query[queryCredential] != nil || query[querySignature] != nil
	authz := r.Header.Values(headerAuthorization)

	switch {
	case len(authz) == 0 && !a.presigned:
		return a, fail(CodeMissingAuthenticationToken,
			"Request is missing Authentication Token. Sign it with AWS Signature Version 4, "+
				"either in the Authorization header or as X-Amz-* query parameters.")
	case len(authz) > 0 && a.presigned:
		return a, fail(CodeIncompleteSignature,
			"Only one auth mechanism allowed: send either the Authorization header or the "+
				"X-Amz-Algorithm/X-Amz-Credential/X-Amz-Signature query parameters, not both.")
	case len(authz) > 1:
		return a, fail(CodeIncompleteSignature,
			"The request has %d Authorization headers; send exactly one.", len(authz))
	case a.presigned:
		return a, parsePresigned(a, r, query)
	default:
		return a, parseHeader(a, r, authz[0])
	}
}

// parseHeader parses "AWS4-HMAC-SHA256 Credential=..., SignedHeaders=...,
// Signature=...". Clients differ in spacing around commas and the first
// blank, so whitespace there is not significant.
func parseHeader(a *authInfo, r *http.Request, authz string) error {
	authz = strings.TrimSpace(authz)
	alg, rest := authz, ""
	if i := strings.IndexAny(authz, " \t"); i >= 0 {
		alg, rest = authz[:i], authz[i+1:]
	}
	if alg != algorithm {
		return fail(CodeIncompleteSignature,
			"Unsupported AWS 'algorithm': '%s'. Sign the request with %s (AWS Signature Version 4).",
			alg, algorithm)
	}

	params := map[string]string{}
	for _, part := range strings.Split(rest, ",") {
		part = strings.TrimSpace(part)
		if part == "" {
			continue
		}
		k, v, ok := strings.Cut(part, "=")
		if !ok {
			return fail(CodeIncompleteSignature,
				"Authorization header component '%s' is malformed; expected Name=value.", part)
		}
		k, v = strings.TrimSpace(k), strings.TrimSpace(v)
		if _, dup := params[k]; dup {
			return fail(CodeIncompleteSignature,
				"Authorization header has '%s' more than once; send it once.", k)
		}
		params[k] = v
	}
	var missing []string
	for _, k := range []string{"Credential", "SignedHeaders", "Signature"} {
		if params[k] == "" {
			missing = append(missing, fmt.Sprintf("Authorization header requires '%s' parameter.", k))
		}
	}
	if len(missing) > 0 {
		return fail(CodeIncompleteSignature, "%s Authorization=%s",
			strings.Join(missing, " "), authz)
	}

	if err := parseCredential(a, params["Credential"]); err != nil {
		return err
	}
	if err := parseSignedHeaders(a, params["SignedHeaders"]); err != nil {
		return err
	}
	a.signature = params["Signature"]

	// X-Amz-Date wins over Date, as in every AWS signer.
	if v := r.Header.Get(headerDate); v != "" {
		a.rawDate, a.dateSource = v, "X-Amz-Date header"
	} else if v := r.Header.Get("Date"); v != "" {
		a.rawDate, a.dateSource = v, "Date header"
	} else {
		return fail(CodeIncompleteSignature,
			"Authorization header requires existence of either a 'X-Amz-Date' or a 'Date' header. "+
				"Add X-Amz-Date in the form %s and sign it.", timeFormat)
	}
	return readToken(a, r.Header.Values(headerToken))
}

// parsePresigned reads the X-Amz-* query parameters of a presigned URL.
func parsePresigned(a *authInfo, r *http.Request, query map[string][]string) error {
	// X-Amz-Expires is optional: aws-sdk-go-v2's STS presign client omits it.
	required := []string{queryAlgorithm, queryCredential, queryDate, querySignedHeaders, querySignature}
	var missing []string
	for _, k := range required {
		if vs := query[k]; len(vs) == 0 || vs[0] == "" {
			missing = append(missing, "'"+k+"'")
		}
	}
	for _, k := range append(required, queryExpires, queryToken) {
		if n := len(query[k]); n > 1 {
			return fail(CodeIncompleteSignature,
				"Query parameter '%s' appears %d times; a presigned URL carries it once.", k, n)
		}
	}
	if len(missing) > 0 {
		return fail(CodeIncompleteSignature,
			"AWS query-string parameters must include %s. Re-examine the query-string parameters "+
				"or presign the URL again.", strings.Join(missing, ", "))
	}
	get := func(k string) string { return query[k][0] }

	if alg := get(queryAlgorithm); alg != algorithm {
		return fail(CodeIncompleteSignature,
			"Unsupported AWS 'algorithm': '%s'. Presign the URL with %s (AWS Signature Version 4).",
			alg, algorithm)
	}
	if err := parseCredential(a, get(queryCredential)); err != nil {
		return err
	}
	if err := parseSignedHeaders(a, get(querySignedHeaders)); err != nil {
		return err
	}
	a.signature = get(querySignature)
	a.rawDate, a.dateSource = get(queryDate), "X-Amz-Date query parameter"

	if query[queryExpires] == nil {
		// Valid only within MaxSkew of the signing time, like a header.
		return readToken(a, tokenOf(r, query))
	}
	secs, err := strconv.ParseInt(get(queryExpires), 10, 64)
	if err != nil || secs < 0 {
		return fail(CodeIncompleteSignature,
			"X-Amz-Expires must be a non-negative whole number of seconds, not '%s'.", get(queryExpires))
	}
	if secs > int64(maxExpires/time.Second) {
		return fail(CodeIncompleteSignature,
			"X-Amz-Expires must be less than a week (in seconds) that is %d; got %d. Presign with a shorter expiry.",
			int64(maxExpires/time.Second), secs)
	}
	a.expires, a.hasExpires = time.Duration(secs)*time.Second, true
	return readToken(a, tokenOf(r, query))
}

// tokenOf finds a presigned URL's session token. botocore and the Go SDK put
// it in the query; the header is accepted too, since the token is compared
// with the key either way.
func tokenOf(r *http.Request, query map[string][]string) []string {
	if tokens := query[queryToken]; len(tokens) > 0 {
		return tokens
	}
	return r.Header.Values(headerToken)
}

// parseCredential splits "AKID/yyyymmdd/region/service/aws4_request". The
// scope is filled in as soon as the shape is right, before the terminator is
// checked, so ParseScope can still report the service.
func parseCredential(a *authInfo, cred string) error {
	parts := strings.Split(cred, "/")
	if len(parts) != 5 || slicesContainsEmpty(parts) {
		return fail(CodeIncompleteSignature,
			"Credential '%s' is malformed; expected \"<access key id>/YYYYMMDD/<region>/<service>/aws4_request\".",
			cred)
	}
	a.scope = Scope{AccessKeyID: parts[0], Date: parts[1], Region: parts[2], Service: parts[3]}
	if parts[4] != terminator {
		return fail(CodeSignatureDoesNotMatch,
			"Credential should be scoped with a valid terminator: '%s', not '%s'.", terminator, parts[4])
	}
	return nil
}

func slicesContainsEmpty(ss []string) bool {
	for _, s := range ss {
		if s == "" {
			return true
		}
	}
	return false
}

// parseSignedHeaders keeps the list verbatim (it is hashed as sent) and only
// insists that host is in it: without host a signature could be replayed
// against any endpoint that shares the key.
func parseSignedHeaders(a *authInfo, list string) error {
	names := strings.Split(list, ";")
	hasHost := false
	for _, n := range names {
		if n == "" {
			return fail(CodeIncompleteSignature,
				"SignedHeaders '%s' has an empty entry; list lowercase header names separated by ';'.", list)
		}
		hasHost = hasHost || strings.EqualFold(n, "host")
	}
	if !hasHost {
		return fail(CodeIncompleteSignature,
			"'Host' must be a 'SignedHeader' in the AWS Authorization; SignedHeaders was '%s'. Sign the host header.",
			list)
	}
	a.signedHeaders = names
	return nil
}

func readToken(a *authInfo, tokens []string) error {
	if len(tokens) > 1 {
		return fail(CodeInvalidClientTokenID,
			"The security token included in the request is invalid: X-Amz-Security-Token was sent %d times; send it once.",
			len(tokens))
	}
	if len(tokens) == 1 {
		a.token = tokens[0]
	}
	return nil
}

// parseSignedTime reads the signing time. X-Amz-Date must be ISO 8601 basic
// format; the Date header may also be an HTTP date, because botocore writes
// Date in RFC 2822 form when the caller already set a Date header.
func parseSignedTime(a *authInfo) (time.Time, error) {
	if t, err := time.Parse(timeFormat, a.rawDate); err == nil {
		return t, nil
	}
	if a.dateSource == "Date header" {
		for _, layout := range []string{time.RFC1123, time.RFC1123Z, time.RFC850, time.ANSIC} {
			if t, err := time.Parse(layout, a.rawDate); err == nil {
				return t.UTC(), nil
			}
		}
	}
	return time.Time{}, fail(CodeIncompleteSignature,
		"The %s '%s' is not a valid date; send it in ISO 8601 basic format, e.g. %s.",
		a.dateSource, a.rawDate, timeFormat)
}

// parseQuery decodes a raw query string the same way canonicalQuery does, so
// that what we read and what we hash can never disagree.
func parseQuery(raw string) map[string][]string {
	q := map[string][]string{}
	for _, part := range strings.Split(raw, "&") {
		if part == "" {
			continue
		}
		k, v, _ := strings.Cut(part, "=")
		k = queryUnescape(k)
		q[k] = append(q[k], queryUnescape(v))
	}
	return q
}
