package sigv4

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"net/http"
	"net/url"
	"sort"
	"strings"
	"time"
)

// CanonicalRequest returns the SigV4 canonical request for r: method,
// canonical URI, canonical query, the signedHeaders with their canonical
// values, the signed header list and payloadHash (hex SHA-256 of the body,
// or the X-Amz-Content-Sha256 value the client sent).
//
// signedHeaders are used in the order given, because the server must hash
// exactly the list the client sent. The URI and query are read from the
// request line as it came off the wire (r.RequestURI) when set, otherwise
// from r.URL as a client would send it, so both sides hash the same bytes.
// X-Amz-Signature is always left out of the query: it cannot sign itself.
func CanonicalRequest(r *http.Request, signedHeaders []string, payloadHash string) string {
	path, query := requestTarget(r)
	method := r.Method
	if method == "" {
		method = http.MethodGet // net/http's client treats "" as GET
	}
	var b strings.Builder
	b.WriteString(method + "\n")
	b.WriteString(canonicalURI(path) + "\n")
	b.WriteString(canonicalQuery(query) + "\n")
	for _, name := range signedHeaders {
		b.WriteString(name + ":" + canonicalHeaderValue(r, name) + "\n")
	}
	b.WriteString("\n")
	b.WriteString(strings.Join(signedHeaders, ";") + "\n")
	b.WriteString(payloadHash)
	return b.String()
}

// StringToSign returns the SigV4 string to sign for a canonical request
// signed at t within scope (only scope's date, region and service are used).
func StringToSign(t time.Time, scope Scope, canonicalRequest string) string {
	return algorithm + "\n" +
		t.UTC().Format(timeFormat) + "\n" +
		scope.credentialScope() + "\n" +
		hashHex([]byte(canonicalRequest))
}

// SigningKey derives the SigV4 signing key from a secret access key and the
// scope parts. date is yyyymmdd.
func SigningKey(secret, date, region, service string) []byte {
	k := hmacSHA256([]byte("AWS4"+secret), date)
	k = hmacSHA256(k, region)
	k = hmacSHA256(k, service)
	return hmacSHA256(k, terminator)
}

// signature is the final hex HMAC of the string to sign.
func signature(signingKey []byte, stringToSign string) string {
	return hex.EncodeToString(hmacSHA256(signingKey, stringToSign))
}

func hmacSHA256(key []byte, data string) []byte {
	h := hmac.New(sha256.New, key)
	h.Write([]byte(data))
	return h.Sum(nil)
}

func hashHex(b []byte) string {
	sum := sha256.Sum256(b)
	return hex.EncodeToString(sum[:])
}

// requestTarget returns the escaped path and raw query. On the server
// RequestURI is the request line verbatim; r.URL.EscapedPath may re-escape a
// path that was not valid escaping (a raw space, say), which would change
// the bytes the client signed.
func requestTarget(r *http.Request) (path, query string) {
	if strings.HasPrefix(r.RequestURI, "/") {
		path, query, _ = strings.Cut(r.RequestURI, "?")
		return path, query
	}
	if r.URL == nil {
		return "/", ""
	}
	return r.URL.EscapedPath(), r.URL.RawQuery
}

// canonicalURI normalizes the escaped path the way botocore does for every
// service but S3 (RFC 3986 dot-segment removal, empty segments dropped) and
// then URI-encodes each segment once. Clients encode the path they put on
// the wire, which is already escaped, so "%20" on the wire becomes "%2520".
func canonicalURI(path string) string {
	var segs []string
	for _, s := range strings.Split(path, "/") {
		switch s {
		case "", ".":
		case "..":
			if len(segs) > 0 {
				segs = segs[:len(segs)-1]
			}
		default:
			segs = append(segs, uriEncode(s))
		}
	}
	out := "/" + strings.Join(segs, "/")
	if len(segs) > 0 && strings.HasSuffix(path, "/") {
		out += "/"
	}
	return out
}

// canonicalQuery decodes each parameter, re-encodes it with RFC 3986
// unreserved characters only, and sorts by encoded name then value. A
// parameter without '=' still gets one, as AWS requires.
func canonicalQuery(raw string) string {
	type pair struct{ k, v string }
	var pairs []pair
	for _, part := range strings.Split(raw, "&") {
		if part == "" {
			continue
		}
		k, v, _ := strings.Cut(part, "=")
		k = queryUnescape(k)
		if k == querySignature {
			continue
		}
		pairs = append(pairs, pair{uriEncode(k), uriEncode(queryUnescape(v))})
	}
	sort.Slice(pairs, func(i, j int) bool {
		if pairs[i].k != pairs[j].k {
			return pairs[i].k < pairs[j].k
		}
		return pairs[i].v < pairs[j].v
	})
	parts := make([]string, len(pairs))
	for i, p := range pairs {
		parts[i] = p.k + "=" + p.v
	}
	return strings.Join(parts, "&")
}

// queryUnescape treats '+' as a space, as url.Values and the Go SDK do (they
// then sign it as %20). Undecodable input is kept as is rather than failing:
// the signature comparison will reject it if the client hashed it otherwise.
func queryUnescape(s string) string {
	if u, err := url.QueryUnescape(s); err == nil {
		return u
	}
	return s
}

// uriEncode percent-encodes every byte except the RFC 3986 unreserved set,
// with upper-case hex, as SigV4 requires ('/' included).
func uriEncode(s string) string {
	const hexdigits = "0123456789ABCDEF"
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		c := s[i]
		if 'A' <= c && c <= 'Z' || 'a' <= c && c <= 'z' || '0' <= c && c <= '9' ||
			c == '-' || c == '_' || c == '.' || c == '~' {
			b.WriteByte(c)
			continue
		}
		b.WriteByte('%')
		b.WriteByte(hexdigits[c>>4])
		b.WriteByte(hexdigits[c&15])
	}
	return b.String()
}

// canonicalHeaderValue joins repeated headers with commas in arrival order
// and trims each value. Go keeps Host out of r.Header, so host is read from
// r.Host (server) or r.URL.Host (client, where the transport fills it in).
func canonicalHeaderValue(r *http.Request, name string) string {
	if strings.EqualFold(name, "host") {
		host := r.Host
		if host == "" && r.URL != nil {
			host = r.URL.Host
		}
		return trimAll(host)
	}
	raw := r.Header.Values(name)
	values := make([]string, len(raw)) // raw aliases r.Header; do not edit it
	for i, v := range raw {
		values[i] = trimAll(v)
	}
	return strings.Join(values, ",")
}

// trimAll trims a header value and collapses each run of whitespace into one
// space. Like botocore (the aws CLI) it treats tabs and line breaks as
// whitespace, which also turns a folded multi-line value into one line.
func trimAll(v string) string {
	var b strings.Builder
	space := false
	for i := 0; i < len(v); i++ {
		switch c := v[i]; c {
		case ' ', '\t', '\r', '\n':
			space = true
		default:
			if space && b.Len() > 0 {
				b.WriteByte(' ')
			}
			space = false
			b.WriteByte(c)
		}
	}
	return b.String()
}
