package netfab

import (
	"context"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/binary"
	"encoding/json"
	"net"
	"net/http"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"syscall"
	"time"

	"golang.org/x/sys/unix"
)

// MetadataSource tells the metadata service who is calling: the instance
// whose ENI in vpcID holds privateIP. The instance layer implements it.
// The source address can be trusted once the VPC's anti-spoofing rules are
// in place (VPC issue); until then a guest that changes its own address can
// read another instance's metadata on the same VPC.
type MetadataSource interface {
	Lookup(ctx context.Context, vpcID, privateIP string) (Metadata, bool)
}

// Metadata is what the instance metadata service serves about one instance.
type Metadata struct {
	InstanceID, ImageID, InstanceType, AvailabilityZone, Region, LocalIPv4, LocalHostname, MAC, PublicKeyName, PublicKey/* openssh line */ string
	SecurityGroups []string
	UserData       []byte
	HTTPTokens     string // "optional" | "required"
	HTTPEndpoint   string // "enabled" | "disabled"
	// HopLimit is the IP TTL of token (PUT) responses, as AWS's
	// HttpPutResponseHopLimit; 0 leaves the system default
	// (net.ipv4.ip_default_ttl, normally 64).
	HopLimit      int
	ReservationID string
	AccountID     string
	// IAMInstanceProfileARN and IAMInstanceProfileID name the instance's
	// profile (empty: none, and iam/ is not served); IAMAssociationID is
	// its association. The credentials come from a CredentialSource.
	IAMInstanceProfileARN string
	IAMInstanceProfileID  string
	IAMAssociationID      string
	VPCID                 string
	// ENIID is the primary interface; PublicIPv4 its public or Elastic
	// IP, "" for none (then public-ipv4 is not served, as on EC2).
	ENIID      string
	PublicIPv4 string
}

// CredentialSource is an optional ability of a MetadataSource: the role
// credentials of an instance with an instance profile, served under
// meta-data/iam/. ok is false when there are none to serve (the profile
// is gone or holds no role); then iam/info still names the profile but
// iam/security-credentials/ is empty (404), as on EC2.
type CredentialSource interface {
	InstanceCredentials(ctx context.Context, md Metadata) (creds InstanceCredentials, ok bool)
}

// InstanceCredentials are an instance's role credentials as the metadata
// service serves them.
type InstanceCredentials struct {
	// Code is "Success", or the failure EC2 reports when it cannot get
	// credentials, e.g. "AssumeRoleUnauthorizedAccess" when the role's
	// trust policy does not let ec2.amazonaws.com assume it; Message then
	// says why and nothing else is set but RoleName and LastUpdated.
	Code, Message                       string
	RoleName                            string
	AccessKeyID, SecretAccessKey, Token string
	Expiration, LastUpdated             time.Time
}

// NewMetadataHandler returns the metadata service of one VPC as a plain
// handler, for tests and tools that serve it on a listener of their own:
// it identifies the caller by the request's RemoteAddr.
func NewMetadataHandler(vpcID string, src MetadataSource, now func() time.Time) http.Handler {
	key := make([]byte, 32)
	_, _ = rand.Read(key)
	if now == nil {
		now = time.Now
	}
	return &imdsHandler{vpcID: vpcID, src: src, key: key, now: now, eni: func(string) (eniInfo, bool) { return eniInfo{}, false }}
}

// eniInfo is the network view of the caller's ENI, for
// meta-data/network/interfaces/macs/<mac>/.
type eniInfo struct {
	ENI
	SubnetCIDR, VPCCIDR string
}

// imdsHandler is the metadata service of one VPC.
type imdsHandler struct {
	vpcID string
	src   MetadataSource
	eni   func(ip string) (eniInfo, bool)
	key   []byte
	now   func() time.Time
}

type connKey struct{}

// withConn keeps the connection in the request context, so the token
// handler can set the response's TTL (the hop limit).
func withConn(ctx context.Context, c net.Conn) context.Context {
	return context.WithValue(ctx, connKey{}, c)
}

func setTTL(r *http.Request, ttl int) {
	c, ok := r.Context().Value(connKey{}).(syscall.Conn)
	if !ok {
		return
	}
	raw, err := c.SyscallConn()
	if err != nil {
		return
	}
	_ = raw.Control(func(fd uintptr) { _ = unix.SetsockoptInt(int(fd), unix.IPPROTO_IP, unix.IP_TTL, ttl) })
}

const (
	tokenTTLHeader = "X-Aws-Ec2-Metadata-Token-Ttl-Seconds"
	tokenHeader    = "X-Aws-Ec2-Metadata-Token"
)

// mintToken makes a session token bound to this VPC and caller address:
// expiry and an HMAC over (vpc, ip, expiry). No state is kept; tokens die
// with the key (a daemon restart), after which clients fetch a new one, as
// they do when a token expires.
func (h *imdsHandler) mintToken(ip string, exp time.Time) string {
	var b [8]byte
	binary.BigEndian.PutUint64(b[:], uint64(exp.Unix()))
	return base64.RawURLEncoding.EncodeToString(append(b[:], h.mac(ip, b[:])...))
}

func (h *imdsHandler) mac(ip string, exp []byte) []byte {
	m := hmac.New(sha256.New, h.key)
	m.Write([]byte(h.vpcID + "\x00" + ip + "\x00"))
	m.Write(exp)
	return m.Sum(nil)[:20]
}

func (h *imdsHandler) validToken(ip, tok string) bool {
	raw, err := base64.RawURLEncoding.DecodeString(tok)
	if err != nil || len(raw) != 28 {
		return false
	}
	if !hmac.Equal(raw[8:], h.mac(ip, raw[:8])) {
		return false
	}
	return h.now().Unix() < int64(binary.BigEndian.Uint64(raw[:8]))
}

func text(w http.ResponseWriter, code int, body string) {
	w.Header().Set("Content-Type", "text/plain")
	w.Header().Set("Server", "EC2ws")
	w.WriteHeader(code)
	_, _ = w.Write([]byte(body))
}

func status(w http.ResponseWriter, code int) {
	text(w, code, strconv.Itoa(code)+" - "+http.StatusText(code)+"\n")
}

func (h *imdsHandler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	ip, _, err := net.SplitHostPort(r.RemoteAddr)
	if err != nil {
		status(w, http.StatusBadRequest)
		return
	}
	md, known := h.src.Lookup(r.Context(), h.vpcID, ip)
	if known && md.HTTPEndpoint == "disabled" {
		status(w, http.StatusForbidden)
		return
	}
	if r.URL.Path == "/latest/api/token" {
		h.token(w, r, ip, md, known)
		return
	}
	if r.Method != http.MethodGet && r.Method != http.MethodHead {
		status(w, http.StatusMethodNotAllowed)
		return
	}
	if !known {
		status(w, http.StatusNotFound)
		return
	}
	if tok := r.Header.Get(tokenHeader); tok != "" {
		if !h.validToken(ip, tok) {
			status(w, http.StatusUnauthorized)
			return
		}
	} else if md.HTTPTokens == "required" {
		status(w, http.StatusUnauthorized)
		return
	}
	setTTL(r, -1) // the system default, should a token PUT have lowered it
	h.serveTree(w, r, ip, md)
}

func (h *imdsHandler) token(w http.ResponseWriter, r *http.Request, ip string, md Metadata, known bool) {
	if r.Method != http.MethodPut {
		status(w, http.StatusMethodNotAllowed)
		return
	}
	// AWS refuses token requests that went through a proxy.
	if r.Header.Get("X-Forwarded-For") != "" {
		status(w, http.StatusForbidden)
		return
	}
	ttl, err := strconv.Atoi(strings.TrimSpace(r.Header.Get(tokenTTLHeader)))
	if err != nil || ttl < 1 || ttl > 21600 {
		status(w, http.StatusBadRequest)
		return
	}
	if !known {
		status(w, http.StatusNotFound)
		return
	}
	if md.HopLimit > 0 {
		setTTL(r, md.HopLimit)
	}
	w.Header().Set(tokenTTLHeader, strconv.Itoa(ttl))
	text(w, http.StatusOK, h.mintToken(ip, h.now().Add(time.Duration(ttl)*time.Second)))
}

// identityDocument is dynamic/instance-identity/document as AWS renders it.
type identityDocument struct {
	AccountID               string   `json:"accountId"`
	Architecture            string   `json:"architecture"`
	AvailabilityZone        string   `json:"availabilityZone"`
	BillingProducts         []string `json:"billingProducts"`
	DevpayProductCodes      []string `json:"devpayProductCodes"`
	MarketplaceProductCodes []string `json:"marketplaceProductCodes"`
	ImageID                 string   `json:"imageId"`
	InstanceID              string   `json:"instanceId"`
	InstanceType            string   `json:"instanceType"`
	KernelID                *string  `json:"kernelId"`
	PendingTime             string   `json:"pendingTime,omitempty"`
	PrivateIP               string   `json:"privateIp"`
	RamdiskID               *string  `json:"ramdiskId"`
	Region                  string   `json:"region"`
	Version                 string   `json:"version"`
}

// metaLeaves lists every meta-data leaf of an instance, by path.
func (h *imdsHandler) metaLeaves(ip string, md Metadata) map[string]string {
	host := md.LocalHostname
	if host == "" {
		host = hostname(md.LocalIPv4) + "." + md.Region + ".compute.internal"
	}
	l := map[string]string{
		"ami-id":                      md.ImageID,
		"ami-launch-index":            "0",
		"instance-action":             "none",
		"instance-id":                 md.InstanceID,
		"instance-type":               md.InstanceType,
		"local-ipv4":                  md.LocalIPv4,
		"local-hostname":              host,
		"hostname":                    host,
		"mac":                         md.MAC,
		"placement/availability-zone": md.AvailabilityZone,
		"placement/region":            md.Region,
		"reservation-id":              md.ReservationID,
		"security-groups":             strings.Join(md.SecurityGroups, "\n"),
		"services/domain":             "amazonaws.com",
		"services/partition":          "aws",
	}
	if md.PublicIPv4 != "" {
		l["public-ipv4"] = md.PublicIPv4
		l["public-hostname"] = publicName(md.PublicIPv4, md.Region)
	}
	if md.PublicKey != "" {
		l["public-keys/0/openssh-key"] = strings.TrimRight(md.PublicKey, "\n") + "\n"
	}
	if md.IAMInstanceProfileARN != "" {
		// Placeholders that make "iam/" appear in listings; serveIAM
		// answers every path under it.
		l["iam/info"] = ""
		l["iam/security-credentials/"] = ""
	}
	if md.MAC != "" {
		p := "network/interfaces/macs/" + md.MAC + "/"
		l[p+"device-number"] = "0"
		l[p+"local-ipv4s"] = md.LocalIPv4
		l[p+"local-hostname"] = host
		l[p+"mac"] = md.MAC
		l[p+"security-groups"] = strings.Join(md.SecurityGroups, "\n")
		if md.PublicIPv4 != "" {
			l[p+"public-ipv4s"] = md.PublicIPv4
			l[p+"public-hostname"] = publicName(md.PublicIPv4, md.Region)
		}
		if e, ok := h.eni(ip); ok {
			l[p+"interface-id"] = e.ID
			l[p+"subnet-id"] = e.SubnetID
			l[p+"vpc-id"] = e.VPCID
			l[p+"subnet-ipv4-cidr-block"] = e.SubnetCIDR
			l[p+"vpc-ipv4-cidr-block"] = e.VPCCIDR
			l[p+"vpc-ipv4-cidr-blocks"] = e.VPCCIDR
		}
	}
	return l
}

// listing renders the children of dir (no trailing slash; "" for the
// root) of a leaf set, sub-directories with a trailing slash.
func listing(leaves map[string]string, dir string) (string, bool) {
	pre := dir
	if pre != "" {
		pre += "/"
	}
	seen := map[string]bool{}
	for k := range leaves {
		rest, ok := strings.CutPrefix(k, pre)
		if !ok {
			continue
		}
		if i := strings.IndexByte(rest, '/'); i >= 0 {
			rest = rest[:i+1]
		}
		seen[rest] = true
	}
	if len(seen) == 0 {
		return "", false
	}
	names := make([]string, 0, len(seen))
	for n := range seen {
		names = append(names, n)
	}
	sort.Strings(names)
	return strings.Join(names, "\n"), true
}

// metadataVersions are the dated API versions served (all the same as
// latest), as AWS lists them at "/"; cloud-init probes 2021-03-23,
// 2018-09-24, 2016-09-02 and falls back to 2009-04-04.
var metadataVersions = []string{"1.0", "2009-04-04", "2016-09-02", "2018-09-24", "2021-03-23", "latest"}

// datedPath matches a path under a dated version: /2021-03-23/...
var datedPath = regexp.MustCompile(`^/(1\.0|\d{4}-\d{2}-\d{2})(/.*)?$`)

func (h *imdsHandler) serveTree(w http.ResponseWriter, r *http.Request, ip string, md Metadata) {
	p := r.URL.Path
	if m := datedPath.FindStringSubmatch(p); m != nil {
		p = "/latest" + m[2] // every version serves the same tree
	}
	switch {
	case p == "/":
		text(w, http.StatusOK, strings.Join(metadataVersions, "\n"))
		return
	case p == "/latest" || p == "/latest/":
		text(w, http.StatusOK, "dynamic\nmeta-data\nuser-data")
		return
	case p == "/latest/user-data" || p == "/latest/user-data/":
		if len(md.UserData) == 0 {
			status(w, http.StatusNotFound)
			return
		}
		w.Header().Set("Content-Type", "application/octet-stream")
		_, _ = w.Write(md.UserData)
		return
	case strings.HasPrefix(p, "/latest/dynamic"):
		h.serveDynamic(w, strings.Trim(strings.TrimPrefix(p, "/latest/dynamic"), "/"), md)
		return
	case p == "/latest/meta-data" || strings.HasPrefix(p, "/latest/meta-data/"):
	default:
		status(w, http.StatusNotFound)
		return
	}
	rel := strings.Trim(strings.TrimPrefix(p, "/latest/meta-data"), "/")
	if (rel == "iam" || strings.HasPrefix(rel, "iam/")) && md.IAMInstanceProfileARN != "" {
		h.serveIAM(w, r, rel, strings.HasSuffix(p, "/"), md)
		return
	}
	leaves := h.metaLeaves(ip, md)
	if rel == "public-keys" && md.PublicKey != "" {
		text(w, http.StatusOK, "0="+md.PublicKeyName)
		return
	}
	if v, ok := leaves[rel]; ok && !strings.HasSuffix(p, "/") {
		text(w, http.StatusOK, v)
		return
	}
	if body, ok := listing(leaves, rel); ok {
		text(w, http.StatusOK, body)
		return
	}
	status(w, http.StatusNotFound)
}

// iamInfo is meta-data/iam/info.
type iamInfo struct {
	Code               string
	Message            string `json:",omitempty"`
	LastUpdated        string
	InstanceProfileArn string `json:",omitempty"`
	InstanceProfileId  string `json:",omitempty"`
}

// iamCredentials is meta-data/iam/security-credentials/<role>, the
// document the AWS SDKs' EC2 role credential providers parse.
type iamCredentials struct {
	Code            string
	Message         string `json:",omitempty"`
	LastUpdated     string
	Type            string `json:",omitempty"`
	AccessKeyId     string `json:",omitempty"`
	SecretAccessKey string `json:",omitempty"`
	Token           string `json:",omitempty"`
	Expiration      string `json:",omitempty"`
}

// imdsTime is the timestamp format of the iam/ documents.
func imdsTime(t time.Time) string { return t.UTC().Format("2006-01-02T15:04:05Z") }

// serveIAM answers meta-data/iam/…: info, security-credentials/ (the
// role's name) and security-credentials/<role>.
func (h *imdsHandler) serveIAM(w http.ResponseWriter, r *http.Request, rel string, dir bool, md Metadata) {
	creds, ok := InstanceCredentials{}, false
	if cs, is := h.src.(CredentialSource); is {
		creds, ok = cs.InstanceCredentials(r.Context(), md)
	}
	last := creds.LastUpdated
	if last.IsZero() {
		last = h.now()
	}
	switch {
	case rel == "iam":
		text(w, http.StatusOK, "info\nsecurity-credentials/")
	case rel == "iam/info" && !dir:
		doc := iamInfo{Code: "Success", LastUpdated: imdsTime(last),
			InstanceProfileArn: md.IAMInstanceProfileARN, InstanceProfileId: md.IAMInstanceProfileID}
		if ok && creds.Code != "" && creds.Code != "Success" {
			doc = iamInfo{Code: creds.Code, Message: creds.Message, LastUpdated: imdsTime(last)}
		}
		b, _ := json.MarshalIndent(doc, "", "  ")
		text(w, http.StatusOK, string(b))
	case rel == "iam/security-credentials" && ok:
		text(w, http.StatusOK, creds.RoleName)
	case ok && rel == "iam/security-credentials/"+creds.RoleName && !dir:
		doc := iamCredentials{Code: creds.Code, Message: creds.Message, LastUpdated: imdsTime(last)}
		if creds.Code == "" || creds.Code == "Success" {
			doc = iamCredentials{Code: "Success", LastUpdated: imdsTime(last), Type: "AWS-HMAC",
				AccessKeyId: creds.AccessKeyID, SecretAccessKey: creds.SecretAccessKey, Token: creds.Token,
				Expiration: imdsTime(creds.Expiration)}
		}
		b, _ := json.MarshalIndent(doc, "", "  ")
		text(w, http.StatusOK, string(b))
	default:
		status(w, http.StatusNotFound)
	}
}

func (h *imdsHandler) serveDynamic(w http.ResponseWriter, rel string, md Metadata) {
	switch rel {
	case "":
		text(w, http.StatusOK, "instance-identity/")
	case "instance-identity":
		text(w, http.StatusOK, "document")
	case "instance-identity/document":
		doc := identityDocument{
			AccountID: md.AccountID, Architecture: "x86_64", AvailabilityZone: md.AvailabilityZone,
			ImageID: md.ImageID, InstanceID: md.InstanceID, InstanceType: md.InstanceType,
			PrivateIP: md.LocalIPv4, Region: md.Region, Version: "2017-09-30",
		}
		b, _ := json.MarshalIndent(doc, "", "  ")
		text(w, http.StatusOK, string(b))
	default:
		status(w, http.StatusNotFound)
	}
}

// imdsServer is the HTTP server of one VPC's metadata service; its
// listener was opened inside the VPC namespace on 169.254.169.254:80.
type imdsServer struct {
	srv  *http.Server
	ln   net.Listener
	done chan struct{}
}

func startIMDS(ns string, h *imdsHandler) (*imdsServer, error) {
	s := &imdsServer{done: make(chan struct{})}
	err := inNamespace(ns, func() error {
		ln, err := net.Listen("tcp4", imdsAddr+":80")
		s.ln = ln
		return err
	})
	if err != nil {
		return nil, err
	}
	s.srv = &http.Server{
		Handler:           h,
		ReadHeaderTimeout: 10 * time.Second,
		IdleTimeout:       30 * time.Second,
		ConnContext:       withConn,
	}
	go func() {
		defer close(s.done)
		_ = s.srv.Serve(s.ln)
	}()
	return s, nil
}

func (s *imdsServer) close() {
	_ = s.srv.Close()
	<-s.done
}
