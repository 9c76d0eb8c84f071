package iamd

import (
	"context"
	"crypto/rand"
	"encoding/base64"
	"errors"
	"fmt"
	"time"

	"github.com/labcloud/labcloud/internal/store"
)

// Session is a set of temporary credentials (an ASIA… key with a session
// token), as STS GetSessionToken and AssumeRole hand out. It is stored
// under sessions/<access key id> until it expires; the principal it stands
// for is kept with it so every request signed with it is authorized as
// that principal, with its session policies and tags.
type Session struct {
	AccessKeyID     string    `json:"accessKeyId"`
	SecretAccessKey string    `json:"secretAccessKey"`
	SessionToken    string    `json:"sessionToken"`
	AccountID       string    `json:"accountId"`
	IssuedAt        time.Time `json:"issuedAt"`
	Expiration      time.Time `json:"expiration"`

	// UserName is set for GetSessionToken credentials of an IAM user;
	// empty with RoleName empty means the account root.
	UserName string `json:"userName,omitempty"`

	RoleName          string            `json:"roleName,omitempty"`
	RoleARN           string            `json:"roleArn,omitempty"`
	RoleID            string            `json:"roleId,omitempty"`
	SessionName       string            `json:"sessionName,omitempty"`
	SessionPolicies   []SessionPolicy   `json:"sessionPolicies,omitempty"`
	SessionTags       map[string]string `json:"sessionTags,omitempty"`
	TransitiveTagKeys []string          `json:"transitiveTagKeys,omitempty"`
	SourceIdentity    string            `json:"sourceIdentity,omitempty"`
	Chained           bool              `json:"chained,omitempty"`

	// Source is set for the role credentials of an EC2 instance profile:
	// the instance they were issued to (see InstanceRoles).
	Source *InstanceSource `json:"source,omitempty"`
}

// Principal returns the principal the session authenticates as.
func (s Session) Principal() Principal {
	p := Principal{
		AccountID: s.AccountID, AccessKeyID: s.AccessKeyID, Temporary: true,
		TokenIssueTime: s.IssuedAt, Expiration: s.Expiration,
		SessionPolicies: s.SessionPolicies, SessionTags: s.SessionTags,
		TransitiveTagKeys: s.TransitiveTagKeys, SourceIdentity: s.SourceIdentity, Chained: s.Chained,
		Source: s.Source,
	}
	switch {
	case s.RoleName != "":
		p.Type = PrincipalAssumedRole
		p.RoleName, p.RoleARN, p.RoleID, p.SessionName = s.RoleName, s.RoleARN, s.RoleID, s.SessionName
		p.ARN = "arn:aws:sts::" + s.AccountID + ":assumed-role/" + s.RoleName + "/" + s.SessionName
		p.UserID = s.RoleID + ":" + s.SessionName
	case s.UserName != "":
		p.Type = PrincipalUser
		p.UserName = s.UserName
		p.ARN = "arn:aws:iam::" + s.AccountID + ":user/" + s.UserName
	default:
		p.Type = PrincipalAccount
		p.ARN = "arn:aws:iam::" + s.AccountID + ":root"
		p.UserID = s.AccountID
	}
	return p
}

// ErrExpiredToken is returned by LookupSession for credentials past their
// expiration.
var ErrExpiredToken = errors.New("the security token included in the request is expired")

// Sessions stores temporary credentials.
type Sessions struct {
	st *store.Store
	// Now is the clock that expirations are measured against; tests
	// advance it instead of sleeping.
	Now func() time.Time
}

// NewSessions returns a Sessions over st using clock now.
func NewSessions(st *store.Store, now func() time.Time) *Sessions {
	if now == nil {
		now = time.Now
	}
	return &Sessions{st: st, Now: now}
}

// Issue fills in fresh keys and times for s (valid for d) and stores it.
func (m *Sessions) Issue(ctx context.Context, s Session, d time.Duration) (Session, error) {
	now := m.Now().UTC().Truncate(time.Second)
	s.IssuedAt = now
	s.Expiration = now.Add(d)
	s.SecretAccessKey = randomString(40, secretAlphabet)
	tok := make([]byte, 96)
	if _, err := rand.Read(tok); err != nil {
		return Session{}, err
	}
	// AWS session tokens are long opaque base64 strings; ours carry no
	// meaning, the stored record does.
	s.SessionToken = "IQoJb3JpZ2luX2VjE" + base64.StdEncoding.EncodeToString(tok)
	for tries := 0; ; tries++ {
		s.AccessKeyID = "ASIA" + randomString(16, keyIDAlphabet)
		_, err := m.st.Create(ctx, "sessions/"+s.AccessKeyID, s)
		if err == nil {
			return s, nil
		}
		if !errors.Is(err, store.ErrExists) || tries > 5 {
			return Session{}, fmt.Errorf("storing session: %w", err)
		}
	}
}

// Lookup returns the session of a temporary access key: ErrNoSuchKey when
// unknown, ErrExpiredToken when past its expiration (Sweep removes such
// records a day later).
func (m *Sessions) Lookup(ctx context.Context, accessKeyID string) (Session, error) {
	var s Session
	if _, err := m.st.Get(ctx, "sessions/"+accessKeyID, &s); err != nil {
		if errors.Is(err, store.ErrNotFound) {
			return s, ErrNoSuchKey
		}
		return s, err
	}
	if !m.Now().Before(s.Expiration) {
		return s, ErrExpiredToken
	}
	return s, nil
}

// Sweep deletes expired sessions; labcloudd runs it periodically so the
// store does not grow with every AssumeRole.
func (m *Sessions) Sweep(ctx context.Context) (int, error) {
	all, err := store.ListAs[Session](ctx, m.st, "sessions/")
	if err != nil {
		return 0, err
	}
	n := 0
	now := m.Now()
	for _, s := range all {
		// Keep expired records for a day so a late request still gets
		// ExpiredToken rather than "unknown key".
		if now.Sub(s.Expiration) > 24*time.Hour {
			if err := m.st.Delete(ctx, "sessions/"+s.AccessKeyID); err == nil {
				n++
			}
		}
	}
	return n, nil
}
