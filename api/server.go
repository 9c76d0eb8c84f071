package api

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/labcloud/labcloud/api/protocol"
	"github.com/labcloud/labcloud/api/sigv4"
	"github.com/labcloud/labcloud/iamd"
	"github.com/labcloud/labcloud/imagestore"
	"github.com/labcloud/labcloud/internal/cloud"
	"github.com/labcloud/labcloud/internal/instances"
	"github.com/labcloud/labcloud/internal/keypairs"
	"github.com/labcloud/labcloud/internal/tags"
	"github.com/labcloud/labcloud/internal/volumes"
	"github.com/labcloud/labcloud/netfab"
)

// The services served on the one endpoint, as named in the SigV4 scope.
const (
	ServiceEC2 = "ec2"
	ServiceIAM = "iam"
	ServiceSTS = "sts"
	// ServiceLabcloud is labcloud's own admin API (CreateAccount), in the
	// awsQuery protocol, signed like the others.
	ServiceLabcloud = "labcloud"
)

// maxBody bounds a request body. The largest legitimate Query requests
// (IAM policy documents, EC2 user data) are far smaller.
const maxBody = 8 << 20

// Options wires a Server to the domain packages.
type Options struct {
	Accounts   *iamd.Accounts
	Cloud      *cloud.Cloud
	Authorizer Authorizer
	Logger     *slog.Logger
	// Region is the region this endpoint serves; a request signed for
	// another region is refused, as AWS's regional endpoints do.
	Region string
	// Now is the clock for signature checks (tests move it).
	Now func() time.Time
	// IAM holds users, groups, roles and policies.
	IAM *iamd.IAM
	// Sessions holds temporary credentials (STS).
	Sessions *iamd.Sessions
	// Instances runs EC2 instances; nil answers the instance actions
	// with Unavailable.
	Instances *instances.Service
	// KeyPairs holds EC2 key pairs.
	KeyPairs *keypairs.KeyPairs
	// Tags holds EC2 tags of every resource.
	Tags *tags.Tags
	// Images is the AMI catalogue.
	Images *imagestore.Catalogue
	// Network is the VPC fabric (VPCs, subnets, security groups, ACLs,
	// route tables, gateways, addresses); nil answers the VPC actions
	// with Unavailable.
	Network *netfab.Fabric
	// Volumes is the EBS service; nil answers the volume and snapshot
	// actions with Unavailable.
	Volumes *volumes.Service
}

// Call is what a handler knows about the request it serves.
type Call struct {
	RequestID string
	Service   string
	Action    string
	Region    string
	Principal iamd.Principal
	SourceIP  string
}

// operation is one API action: it decodes its own input from the
// parameters and returns the output struct to encode (nil for none).
type operation func(ctx context.Context, c *Call, params url.Values) (any, error)

// Server is the HTTP handler for the AWS endpoint.
type Server struct {
	opts Options
	ops  map[string]map[string]operation // service → action → op
}

// New builds a Server with every action registered.
func New(opts Options) *Server {
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.NewTextHandler(io.Discard, nil))
	}
	if opts.Authorizer == nil {
		opts.Authorizer = AccountAdmin{}
	}
	if opts.Now == nil {
		opts.Now = time.Now
	}
	s := &Server{opts: opts, ops: map[string]map[string]operation{
		ServiceEC2: {}, ServiceIAM: {}, ServiceSTS: {}, ServiceLabcloud: {},
	}}
	s.registerEC2()
	s.registerSTS()
	s.registerIAM()
	s.registerOIDC()
	s.registerWebIdentity()
	s.registerAdmin()
	s.registerSimulate()
	s.registerInstances()
	s.registerKeyPairs()
	s.registerTags()
	s.registerImages()
	s.registerIAMProfiles()
	s.registerSecurityGroups()
	s.registerVPCs()
	s.registerVolumes()
	s.registerAttach()
	return s
}

// handle registers an action of a service.
func (s *Server) handle(service, action string, op operation) { s.ops[service][action] = op }

// ec2Op adapts a typed handler to an operation, decoding with the EC2
// protocol's rules.
func ec2Op[In any, Out any](fn func(context.Context, *Call, *In) (*Out, error)) operation {
	return func(ctx context.Context, c *Call, params url.Values) (any, error) {
		in := new(In)
		if err := protocol.DecodeEC2(params, in); err != nil {
			return nil, err
		}
		return fn(ctx, c, in)
	}
}

// queryOp adapts a typed handler for the awsQuery protocol (IAM, STS).
func queryOp[In any, Out any](fn func(context.Context, *Call, *In) (*Out, error)) operation {
	return func(ctx context.Context, c *Call, params url.Values) (any, error) {
		in := new(In)
		if err := protocol.DecodeQuery(params, in); err != nil {
			return nil, err
		}
		return fn(ctx, c, in)
	}
}

// ServeHTTP runs the request path: read, authenticate, authorize, handle,
// encode. Every failure becomes the service's wire error; nothing a client
// sends can stop the server.
func (s *Server) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if r.URL.Path == "/healthz" && r.Header.Get("Authorization") == "" {
		w.Header().Set("Content-Type", "text/plain")
		_, _ = io.WriteString(w, "ok\n")
		return
	}
	start := time.Now()
	c := &Call{RequestID: newRequestID(), Service: ServiceEC2, Region: s.opts.Region}
	if host, _, err := net.SplitHostPort(r.RemoteAddr); err == nil {
		c.SourceIP = host
	}
	out, err := s.serve(r, c)
	if err != nil {
		s.writeError(w, c, err)
	} else {
		s.writeResult(w, c, out)
	}
	s.opts.Logger.Debug("request", "service", c.Service, "action", c.Action, "principal", c.Principal.ARN,
		"requestId", c.RequestID, "err", err, "duration", time.Since(start))
}

func (s *Server) serve(r *http.Request, c *Call) (any, error) {
	body, err := io.ReadAll(io.LimitReader(r.Body, maxBody+1))
	if err != nil {
		return nil, wireErr(400, "IncompleteBody", "could not read the request body: %v", err)
	}
	if len(body) > maxBody {
		return nil, wireErr(413, "RequestEntityTooLarge", "the request body is larger than %d bytes", maxBody)
	}
	params, perr := requestParams(r, body)
	// Choose the service (and so the error format) before anything can
	// fail: from the signature's scope, else from the API version.
	scope, scopeErr := sigv4.ParseScope(r)
	if scopeErr == nil {
		c.Service = scope.Service
	} else if params != nil {
		c.Service = serviceForVersion(params.Get("Version"))
	}
	if _, ok := s.ops[c.Service]; !ok {
		svc := c.Service
		c.Service = ServiceEC2
		return nil, wireErr(400, "InvalidClientTokenId", "this endpoint serves ec2, iam and sts; the request was signed for service %q: sign it for one of those", svc)
	}
	if params != nil {
		c.Action = params.Get("Action")
	}
	// The one exception to SigV4: AssumeRoleWithWebIdentity (and
	// AssumeRoleWithSAML) sent with no signature at all; see
	// anonymousActions. Everything else unsigned stops here.
	anonymous := anonymousActions[c.Service+":"+c.Action]
	switch {
	case scopeErr != nil && unsignedAllowed(c, scopeErr):
	case scopeErr != nil:
		return nil, scopeErr
	default:
		var principal iamd.Principal
		v := sigv4.Verifier{Now: s.opts.Now, Lookup: func(ctx context.Context, id string) (sigv4.Key, error) {
			p, key, err := s.lookupKey(ctx, id)
			principal = p
			return key, err
		}}
		if _, err := v.Verify(r.Context(), r, body); err != nil {
			return nil, err
		}
		c.Principal = principal
		if s.opts.Region != "" && scope.Region != s.opts.Region && c.Service != ServiceIAM {
			// IAM is global (AWS signs it for us-east-1); EC2 and STS are
			// regional.
			return nil, wireErr(400, "SignatureDoesNotMatch", "the request was signed for region %q but this endpoint serves region %q: use --region %s", scope.Region, s.opts.Region, s.opts.Region)
		}
	}

	if perr != nil {
		return nil, perr
	}
	if c.Action == "" {
		return nil, wireErr(400, "MissingAction", "the request must contain the parameter Action")
	}
	op, ok := s.ops[c.Service][c.Action]
	if !ok {
		return nil, wireErr(400, "InvalidAction", "the action %s is not valid for this web service (%s)", c.Action, c.Service)
	}
	if !anonymous {
		if err := s.opts.Authorizer.Authorize(r.Context(), c, params); err != nil {
			return nil, err
		}
	}
	if c.Service == ServiceEC2 && strings.EqualFold(params.Get("DryRun"), "true") {
		return nil, wireErr(412, "DryRunOperation", "Request would have succeeded, but DryRun flag is set.")
	}
	for k := range params {
		if k == "Action" || k == "Version" || (c.Service == ServiceEC2 && k == "DryRun") {
			params.Del(k)
		}
	}
	return op(r.Context(), c, params)
}

// lookupKey finds the secret (and session token) of an access key and the
// principal it stands for: long-term AKIA keys in iamd.Accounts, temporary
// ASIA keys in iamd.Sessions.
func (s *Server) lookupKey(ctx context.Context, id string) (iamd.Principal, sigv4.Key, error) {
	if strings.HasPrefix(id, "ASIA") && s.opts.Sessions != nil {
		sess, err := s.opts.Sessions.Lookup(ctx, id)
		switch {
		case errors.Is(err, iamd.ErrNoSuchKey):
			return iamd.Principal{}, sigv4.Key{}, sigv4.ErrUnknownKey
		case errors.Is(err, iamd.ErrExpiredToken):
			return iamd.Principal{}, sigv4.Key{}, &sigv4.Error{Code: "ExpiredToken",
				Message: "The security token included in the request is expired (it expired at " + sess.Expiration.UTC().Format(time.RFC3339) + "): get new temporary credentials"}
		case err != nil:
			return iamd.Principal{}, sigv4.Key{}, err
		}
		return sess.Principal(), sigv4.Key{AccessKeyID: sess.AccessKeyID, SecretAccessKey: sess.SecretAccessKey, SessionToken: sess.SessionToken}, nil
	}
	k, err := s.opts.Accounts.LookupAccessKey(ctx, id)
	if errors.Is(err, iamd.ErrNoSuchKey) {
		return iamd.Principal{}, sigv4.Key{}, sigv4.ErrUnknownKey
	}
	if err != nil {
		return iamd.Principal{}, sigv4.Key{}, err
	}
	return iamd.PrincipalFor(k), sigv4.Key{AccessKeyID: k.AccessKeyID, SecretAccessKey: k.SecretAccessKey}, nil
}

// requestParams merges the query string and a form body, dropping the
// presigned-URL signature parameters (they are not API parameters).
func requestParams(r *http.Request, body []byte) (url.Values, error) {
	params, err := url.ParseQuery(r.URL.RawQuery)
	if err != nil {
		return nil, wireErr(400, "MalformedQueryString", "the query string is not valid URL encoding: %v", err)
	}
	if len(body) > 0 {
		ct := r.Header.Get("Content-Type")
		if ct != "" && !strings.HasPrefix(ct, "application/x-www-form-urlencoded") {
			return params, wireErr(400, "InvalidParameterValue", "Content-Type %q is not supported: send the AWS Query parameters as application/x-www-form-urlencoded", ct)
		}
		form, err := url.ParseQuery(string(bytes.TrimSpace(body)))
		if err != nil {
			return params, wireErr(400, "MalformedQueryString", "the request body is not a valid application/x-www-form-urlencoded form: %v", err)
		}
		for k, vs := range form {
			params[k] = append(params[k], vs...)
		}
	}
	for k := range params {
		if strings.HasPrefix(k, "X-Amz-") {
			params.Del(k)
		}
	}
	return params, nil
}

// serviceForVersion guesses the service of an unsigned request from its
// API version, so even "missing authentication" comes in the right format.
func serviceForVersion(v string) string {
	switch v {
	case "2010-05-08":
		return ServiceIAM
	case "2011-06-15":
		return ServiceSTS
	case AdminVersion:
		return ServiceLabcloud
	default:
		return ServiceEC2
	}
}

func (s *Server) writeResult(w http.ResponseWriter, c *Call, out any) {
	var buf bytes.Buffer
	var err error
	switch c.Service {
	case ServiceEC2:
		err = protocol.EncodeEC2(&buf, c.Action, c.RequestID, out)
	default:
		err = protocol.EncodeQuery(&buf, c.Action, c.RequestID, namespace(c.Service), out)
	}
	if err != nil {
		s.opts.Logger.Error("encoding response", "action", c.Action, "err", err)
		s.writeError(w, c, fmt.Errorf("encoding %s response: %w", c.Action, err))
		return
	}
	writeXML(w, c, http.StatusOK, buf.Bytes())
}

func (s *Server) writeError(w http.ResponseWriter, c *Call, err error) {
	we := wireError(c.Service, err)
	if we.Status >= 500 {
		s.opts.Logger.Error("internal error", "service", c.Service, "action", c.Action, "requestId", c.RequestID, "err", err)
	}
	var buf bytes.Buffer
	if c.Service == ServiceEC2 {
		protocol.EncodeEC2Error(&buf, we.Code, we.Message, c.RequestID)
	} else {
		typ := protocol.FaultSender
		if we.Status >= 500 {
			typ = protocol.FaultReceiver
		}
		protocol.EncodeQueryError(&buf, typ, we.Code, we.Message, c.RequestID, namespace(c.Service))
	}
	writeXML(w, c, we.Status, buf.Bytes())
}

func writeXML(w http.ResponseWriter, c *Call, status int, body []byte) {
	h := w.Header()
	h.Set("Content-Type", "text/xml;charset=UTF-8")
	h.Set("x-amzn-RequestId", c.RequestID)
	w.WriteHeader(status)
	_, _ = w.Write(body)
}

func namespace(service string) string {
	switch service {
	case ServiceSTS:
		return protocol.STSNamespace
	case ServiceLabcloud:
		return AdminNamespace
	}
	return protocol.IAMNamespace
}

// newRequestID returns a random UUID, the form AWS request ids take.
func newRequestID() string {
	var b [16]byte
	_, _ = rand.Read(b[:])
	b[6] = b[6]&0x0f | 0x40
	b[8] = b[8]&0x3f | 0x80
	h := hex.EncodeToString(b[:])
	return h[0:8] + "-" + h[8:12] + "-" + h[12:16] + "-" + h[16:20] + "-" + h[20:]
}
