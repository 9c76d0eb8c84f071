package sigv4

import (
	"errors"
	"fmt"
	"net/http"
	"sort"
	"strconv"
	"strings"
	"time"
)

// unsignedHeaders are never signed by Sign or Presign: proxies and the Go
// transport add, drop or rewrite them in flight (botocore's blacklist plus
// the two net/http manages itself).
var unsignedHeaders = map[string]bool{
	"authorization": true, "content-length": true,
	"connection": true, "expect": true, "keep-alive": true, "proxy-authenticate": true,
	"proxy-authorization": true, "te": true, "trailer": true, "transfer-encoding": true,
	"upgrade": true, "user-agent": true, "x-amzn-trace-id": true,
}

// Sign signs r in place the way botocore's SigV4Auth does: it sets
// X-Amz-Date to t, X-Amz-Security-Token when key has a session token, and
// the Authorization header, signing host and every other header already on
// r. body must be what will be sent; r.Body is not read.
func Sign(r *http.Request, body []byte, key Key, region, service string, t time.Time) error {
	if err := checkSignable(r); err != nil {
		return err
	}
	t = t.UTC()
	if r.Header == nil {
		r.Header = http.Header{}
	}
	r.Header.Del(headerAuthorization)
	r.Header.Set(headerDate, t.Format(timeFormat))
	if key.SessionToken != "" {
		r.Header.Set(headerToken, key.SessionToken)
	}

	scope := Scope{AccessKeyID: key.AccessKeyID, Date: t.Format(dateFormat), Region: region, Service: service}
	names := headersToSign(r)
	payload := r.Header.Get(headerContentSHA256)
	if payload == "" {
		payload = hashHex(body)
	}
	creq := CanonicalRequest(r, names, payload)
	sig := signature(SigningKey(key.SecretAccessKey, scope.Date, region, service), StringToSign(t, scope, creq))
	r.Header.Set(headerAuthorization, fmt.Sprintf("%s Credential=%s/%s, SignedHeaders=%s, Signature=%s",
		algorithm, key.AccessKeyID, scope.credentialScope(), strings.Join(names, ";"), sig))
	return nil
}

// Presign returns r's URL with the X-Amz-* query parameters that let anyone
// holding it make the request until t+expires, as botocore's SigV4QueryAuth
// does for non-S3 services. The payload is hashed as empty, so presigned
// URLs are for requests without a body (GET, with parameters in the query).
// r is not modified.
func Presign(r *http.Request, key Key, region, service string, t time.Time, expires time.Duration) (string, error) {
	if err := checkSignable(r); err != nil {
		return "", err
	}
	if expires < time.Second || expires > maxExpires || expires%time.Second != 0 {
		return "", fmt.Errorf("sigv4: presign expiry %v must be whole seconds between 1s and %v", expires, maxExpires)
	}
	t = t.UTC()
	scope := Scope{AccessKeyID: key.AccessKeyID, Date: t.Format(dateFormat), Region: region, Service: service}
	names := headersToSign(r)

	params := [][2]string{
		{queryAlgorithm, algorithm},
		{queryCredential, key.AccessKeyID + "/" + scope.credentialScope()},
		{queryDate, t.Format(timeFormat)},
		{queryExpires, strconv.FormatInt(int64(expires/time.Second), 10)},
		{querySignedHeaders, strings.Join(names, ";")},
	}
	if key.SessionToken != "" {
		params = append(params, [2]string{queryToken, key.SessionToken})
	}
	u := *r.URL
	if u.Host == "" {
		u.Host = r.Host
	}
	if u.Scheme == "" {
		u.Scheme = "https"
	}
	query := u.RawQuery
	for _, p := range params {
		if query != "" {
			query += "&"
		}
		query += uriEncode(p[0]) + "=" + uriEncode(p[1])
	}
	u.RawQuery = query

	// Sign a shallow copy so that r keeps its URL. RequestURI is cleared so
	// CanonicalRequest reads the new query from the copy's URL, and Host is
	// the URL's because whoever uses the URL will send that host.
	signed := *r
	signed.URL = &u
	signed.RequestURI = ""
	signed.Host = u.Host
	creq := CanonicalRequest(&signed, names, hashHex(nil))
	sig := signature(SigningKey(key.SecretAccessKey, scope.Date, region, service), StringToSign(t, scope, creq))
	u.RawQuery += "&" + querySignature + "=" + sig
	return u.String(), nil
}

func checkSignable(r *http.Request) error {
	if r.URL == nil {
		return errors.New("sigv4: request has no URL")
	}
	if r.Host == "" && r.URL.Host == "" {
		return errors.New("sigv4: request has no host; set r.Host or r.URL.Host, since host must be signed")
	}
	return nil
}

// headersToSign lists host plus every header on r that survives transit,
// lowercased, sorted and deduplicated.
func headersToSign(r *http.Request) []string {
	set := map[string]bool{"host": true}
	for name := range r.Header {
		if n := strings.ToLower(name); !unsignedHeaders[n] {
			set[n] = true
		}
	}
	names := make([]string, 0, len(set))
	for n := range set {
		names = append(names, n)
	}
	sort.Strings(names)
	return names
}
