package iamd

import (
	"context"
	"errors"
	"fmt"
	"regexp"
	"strings"
	"time"

	"github.com/labcloud/labcloud/iamd/policy"
	"github.com/labcloud/labcloud/internal/errdefs"
	"github.com/labcloud/labcloud/internal/store"
)

// EC2Service is the service principal that assumes the role of an
// instance profile on behalf of an instance.
const EC2Service = "ec2.amazonaws.com"

// Lifetime of instance profile credentials. AWS hands instances role
// credentials valid for about six hours and puts new ones in the metadata
// service "at least five minutes before the expiration of the old"; the
// SDKs fetch again when theirs get close to expiry. labcloud issues them
// for InstanceCredentialsDuration and serves new ones once the current
// ones have less than InstanceCredentialsRefresh left: an SDK that
// refreshes 5 to 15 minutes before expiry (botocore, aws-sdk-go-v2) then
// always gets credentials with more than five hours to go.
const (
	InstanceCredentialsDuration = 6 * time.Hour
	InstanceCredentialsRefresh  = time.Hour
)

// InstanceSource is the EC2 instance an instance profile session belongs
// to; requests signed with its credentials carry it in their context as
// ec2:SourceInstanceARN, aws:SourceInstanceARN, aws:Ec2InstanceSourceVpc
// and aws:Ec2InstanceSourcePrivateIPv4.
type InstanceSource struct {
	InstanceARN string `json:"instanceArn"`
	VPCID       string `json:"vpcId,omitempty"`
	PrivateIP   string `json:"privateIp,omitempty"`
}

// InstanceRequest asks for the role credentials of one instance.
type InstanceRequest struct {
	AccountID  string
	Region     string
	InstanceID string
	// ProfileARN is the instance profile associated with the instance;
	// its role is looked up at every call, so a role swapped in the
	// profile takes effect at the next rotation, as on AWS.
	ProfileARN string
	// AssociationID identifies the association: a new association
	// (after disassociate/associate or replace) gets fresh credentials.
	AssociationID string
	VPCID         string
	PrivateIP     string
}

// InstanceCredentials are what the metadata service serves under
// iam/security-credentials/<role>.
type InstanceCredentials struct {
	RoleName string
	Session  Session
	// LastUpdated is when these credentials were issued.
	LastUpdated time.Time
}

// ErrNoInstanceRole means the instance's profile is gone or holds no
// role: the metadata service then lists no credentials.
var ErrNoInstanceRole = errors.New("the instance profile holds no role")

// ErrEC2CannotAssume is wrapped by errors saying that a role's trust
// policy does not let ec2.amazonaws.com assume it.
var ErrEC2CannotAssume = errors.New("EC2 cannot assume the role")

// instanceCredsRecord remembers the session currently served to an
// instance, under instancecreds/<account>/<instance id>, so every labcloudd
// (and a restarted one) serves the same credentials until they rotate.
type instanceCredsRecord struct {
	AccessKeyID   string    `json:"accessKeyId"`
	RoleARN       string    `json:"roleArn"`
	ProfileARN    string    `json:"profileArn"`
	AssociationID string    `json:"associationId"`
	Expiration    time.Time `json:"expiration"`
}

const instanceCredsPrefix = "instancecreds/"

// InstanceRoles issues and rotates the role credentials of EC2 instances
// that have an instance profile: a role session named after the instance
// id (arn:aws:sts::<account>:assumed-role/<role>/<instance id>), stored
// like any STS session, so SigV4 verification and authorization treat it
// like an AssumeRole session.
//
// Disassociating a profile makes the metadata service stop serving the
// credentials (Forget), but, as on AWS, does not revoke what the instance
// already fetched: those stay valid until they expire. To cut them off at
// once, deny the role's sessions issued before now (aws:TokenIssueTime).
type InstanceRoles struct {
	iam      *IAM
	sessions *Sessions
	// Duration and Refresh default to InstanceCredentialsDuration and
	// InstanceCredentialsRefresh.
	Duration, Refresh time.Duration
}

// NewInstanceRoles returns the instance credential issuer over iam and
// sessions (whose clock it uses).
func NewInstanceRoles(iam *IAM, sessions *Sessions) *InstanceRoles {
	return &InstanceRoles{iam: iam, sessions: sessions, Duration: InstanceCredentialsDuration, Refresh: InstanceCredentialsRefresh}
}

var profileARNRe = regexp.MustCompile(`^arn:aws:iam::(\d{12}):instance-profile(/|/[\x21-\x7e]*/)([\w+=,.@-]{1,128})$`)

// ParseInstanceProfileARN splits an instance profile ARN into account and
// profile name.
func ParseInstanceProfileARN(arn string) (account, name string, ok bool) {
	m := profileARNRe.FindStringSubmatch(arn)
	if m == nil {
		return "", "", false
	}
	return m[1], m[3], true
}

// InstanceProfileRole returns a profile and its role (ErrNoInstanceRole
// when it holds none).
func (i *IAM) InstanceProfileRole(ctx context.Context, account, profile string) (InstanceProfile, Role, error) {
	p, err := i.GetInstanceProfile(ctx, account, profile)
	if err != nil {
		return InstanceProfile{}, Role{}, err
	}
	if len(p.Roles) == 0 {
		return p, Role{}, ErrNoInstanceRole
	}
	r, err := i.GetRole(ctx, account, p.Roles[0])
	if err != nil {
		return p, Role{}, err
	}
	return p, r, nil
}

// EC2CanAssume checks that a role's trust policy allows the service
// principal ec2.amazonaws.com to sts:AssumeRole, which an instance
// profile's role needs; the error (wrapping ErrEC2CannotAssume) says how
// to fix the trust policy.
func EC2CanAssume(r Role) error {
	doc, err := policy.Parse(r.AssumeRolePolicyDocument, policy.KindTrust)
	if err == nil {
		d := policy.Decide(policy.Input{
			Request: policy.Request{Action: "sts:AssumeRole", Resource: r.ARN,
				Principal: policy.PrincipalInfo{Service: EC2Service}},
			ResourceAccount: arnAccountOf(r.ARN),
			Resource:        &policy.NamedPolicy{Source: policy.Source{Type: policy.SourceResourcePolicy, ID: r.ARN, Name: r.RoleName}, Policy: doc},
		})
		if d.Effect == policy.Allowed {
			return nil
		}
	}
	return fmt.Errorf("%w %s: its trust policy must allow the service principal %s the action sts:AssumeRole "+
		`(e.g. {"Effect":"Allow","Principal":{"Service":"%s"},"Action":"sts:AssumeRole"}); fix it with aws iam update-assume-role-policy`,
		ErrEC2CannotAssume, r.RoleName, EC2Service, EC2Service)
}

func arnAccountOf(arn string) string {
	parts := strings.SplitN(arn, ":", 6)
	if len(parts) == 6 {
		return parts[4]
	}
	return ""
}

func instanceCredsKey(account, instanceID string) string {
	return instanceCredsPrefix + account + "/" + instanceID
}

// Credentials returns the credentials the instance should use now: the
// ones issued before while they have more than Refresh left and the
// profile, its role and the association are unchanged, else new ones.
// It returns ErrNoInstanceRole when the profile is gone or empty, and an
// error wrapping ErrEC2CannotAssume (with the role name in RoleName of
// the result) when the role no longer trusts EC2.
func (r *InstanceRoles) Credentials(ctx context.Context, req InstanceRequest) (InstanceCredentials, error) {
	account, name, ok := ParseInstanceProfileARN(req.ProfileARN)
	if !ok || account != req.AccountID {
		return InstanceCredentials{}, ErrNoInstanceRole
	}
	_, role, err := r.iam.InstanceProfileRole(ctx, account, name)
	if err != nil {
		if errdefs.Is(err, errdefs.ClassNotFound) {
			return InstanceCredentials{}, ErrNoInstanceRole
		}
		return InstanceCredentials{}, err
	}
	if err := EC2CanAssume(role); err != nil {
		return InstanceCredentials{RoleName: role.RoleName}, err
	}
	key := instanceCredsKey(req.AccountID, req.InstanceID)
	for tries := 0; tries < 5; tries++ {
		rec, rev, err := store.Load[instanceCredsRecord](ctx, r.sessions.st, key)
		found := err == nil
		if err != nil && !errors.Is(err, store.ErrNotFound) {
			return InstanceCredentials{}, err
		}
		if found && rec.RoleARN == role.ARN && rec.ProfileARN == req.ProfileARN && rec.AssociationID == req.AssociationID {
			sess, err := r.sessions.Lookup(ctx, rec.AccessKeyID)
			if err == nil && sess.Expiration.Sub(r.sessions.Now()) > r.Refresh {
				return InstanceCredentials{RoleName: role.RoleName, Session: sess, LastUpdated: sess.IssuedAt}, nil
			}
		}
		sess, err := r.sessions.Issue(ctx, Session{
			AccountID: req.AccountID, RoleName: role.RoleName, RoleARN: role.ARN, RoleID: role.RoleID,
			SessionName: req.InstanceID,
			Source: &InstanceSource{
				InstanceARN: "arn:aws:ec2:" + req.Region + ":" + req.AccountID + ":instance/" + req.InstanceID,
				VPCID:       req.VPCID, PrivateIP: req.PrivateIP,
			},
		}, r.Duration)
		if err != nil {
			return InstanceCredentials{}, err
		}
		next := instanceCredsRecord{AccessKeyID: sess.AccessKeyID, RoleARN: role.ARN, ProfileARN: req.ProfileARN,
			AssociationID: req.AssociationID, Expiration: sess.Expiration}
		if found {
			_, err = r.sessions.st.CompareAndSwap(ctx, key, next, rev)
		} else {
			_, err = r.sessions.st.Create(ctx, key, next)
		}
		if err == nil {
			return InstanceCredentials{RoleName: role.RoleName, Session: sess, LastUpdated: sess.IssuedAt}, nil
		}
		// Another request rotated them first: drop ours and serve theirs.
		_ = r.sessions.st.Delete(ctx, "sessions/"+sess.AccessKeyID)
		if !errors.Is(err, store.ErrConflict) && !errors.Is(err, store.ErrExists) {
			return InstanceCredentials{}, err
		}
	}
	return InstanceCredentials{}, fmt.Errorf("instance %s: credentials kept changing under concurrent rotation", req.InstanceID)
}

// Forget stops serving an instance's credentials (disassociation,
// termination): the next Credentials call issues new ones. The session
// itself is left to expire, as AWS does.
func (r *InstanceRoles) Forget(ctx context.Context, account, instanceID string) error {
	err := r.sessions.st.Delete(ctx, instanceCredsKey(account, instanceID))
	if errors.Is(err, store.ErrNotFound) {
		return nil
	}
	return err
}

// Sweep deletes the records of instance credentials that expired more
// than a day ago (their sessions go with Sessions.Sweep).
func (r *InstanceRoles) Sweep(ctx context.Context) (int, error) {
	kvs, err := r.sessions.st.List(ctx, instanceCredsPrefix)
	if err != nil {
		return 0, err
	}
	n := 0
	now := r.sessions.Now()
	for _, kv := range kvs {
		var rec instanceCredsRecord
		if err := kv.Decode(&rec); err != nil {
			continue
		}
		if now.Sub(rec.Expiration) > 24*time.Hour {
			if err := r.sessions.st.DeleteIf(ctx, kv.Key, kv.ModRevision); err == nil {
				n++
			}
		}
	}
	return n, nil
}
