package iamd

import (
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"math/big"
	"time"

	"github.com/labcloud/labcloud/internal/errdefs"
	"github.com/labcloud/labcloud/internal/store"
)

// Account is an AWS account: the unit of ownership and of billing in AWS,
// and here the unit of isolation between students or teams.
type Account struct {
	ID        string    `json:"id"`
	Name      string    `json:"name"`
	CreatedAt time.Time `json:"createdAt"`
}

// RootARN is the ARN of the account's root user.
func (a Account) RootARN() string { return "arn:aws:iam::" + a.ID + ":root" }

// AccessKey is a long-term access key. UserName is empty for the account's
// root user.
type AccessKey struct {
	AccessKeyID     string    `json:"accessKeyId"`
	SecretAccessKey string    `json:"secretAccessKey"`
	AccountID       string    `json:"accountId"`
	UserName        string    `json:"userName,omitempty"`
	Status          string    `json:"status"`
	CreatedAt       time.Time `json:"createdAt"`
}

// BootstrapRecord remembers the account labcloudd created on first start,
// so a restart reuses it instead of minting new keys.
type BootstrapRecord struct {
	AccountID   string `json:"accountId"`
	AccessKeyID string `json:"accessKeyId"`
}

// Accounts manages accounts and their access keys.
type Accounts struct {
	st *store.Store
	// OnCreate runs after an account is stored, so other domains (EC2
	// quotas, default VPC later) can seed per-account state.
	OnCreate func(ctx context.Context, a Account) error
}

// NewAccounts returns an Accounts over st.
func NewAccounts(st *store.Store) *Accounts { return &Accounts{st: st} }

const bootstrapKey = "bootstrap/admin"

// Bootstrap returns the first account and its root key, creating them on
// the very first start.
func (s *Accounts) Bootstrap(ctx context.Context, name string) (Account, AccessKey, error) {
	var rec BootstrapRecord
	_, err := s.st.Get(ctx, bootstrapKey, &rec)
	switch {
	case err == nil:
		var a Account
		if _, err := s.st.Get(ctx, "accounts/"+rec.AccountID, &a); err != nil {
			return Account{}, AccessKey{}, fmt.Errorf("bootstrap account %s: %w", rec.AccountID, err)
		}
		k, err := s.LookupAccessKey(ctx, rec.AccessKeyID)
		if err != nil {
			return Account{}, AccessKey{}, fmt.Errorf("bootstrap key: %w", err)
		}
		return a, k, nil
	case !errors.Is(err, store.ErrNotFound):
		return Account{}, AccessKey{}, fmt.Errorf("reading bootstrap record: %w", err)
	}
	a, k, err := s.CreateAccount(ctx, name)
	if err != nil {
		return Account{}, AccessKey{}, err
	}
	if _, err := s.st.Create(ctx, bootstrapKey, BootstrapRecord{AccountID: a.ID, AccessKeyID: k.AccessKeyID}); err != nil {
		// Another labcloudd on the same etcd won the race: use its account.
		if errors.Is(err, store.ErrExists) {
			return s.Bootstrap(ctx, name)
		}
		return Account{}, AccessKey{}, fmt.Errorf("saving bootstrap record: %w", err)
	}
	return a, k, nil
}

// CreateAccount makes a new account with a fresh 12-digit id and one root
// access key.
func (s *Accounts) CreateAccount(ctx context.Context, name string) (Account, AccessKey, error) {
	if name == "" {
		return Account{}, AccessKey{}, errdefs.InvalidParameter("InvalidInput", "account name must not be empty")
	}
	now := time.Now().UTC().Truncate(time.Second)
	var a Account
	for tries := 0; ; tries++ {
		a = Account{ID: randomDigits(12), Name: name, CreatedAt: now}
		_, err := s.st.Create(ctx, "accounts/"+a.ID, a)
		if err == nil {
			break
		}
		if !errors.Is(err, store.ErrExists) || tries > 5 {
			return Account{}, AccessKey{}, fmt.Errorf("creating account: %w", err)
		}
	}
	k, err := s.CreateAccessKey(ctx, a.ID, "")
	if err != nil {
		return Account{}, AccessKey{}, err
	}
	if s.OnCreate != nil {
		if err := s.OnCreate(ctx, a); err != nil {
			return Account{}, AccessKey{}, fmt.Errorf("seeding account %s: %w", a.ID, err)
		}
	}
	return a, k, nil
}

// GetAccount returns an account by id.
func (s *Accounts) GetAccount(ctx context.Context, id string) (Account, error) {
	var a Account
	if _, err := s.st.Get(ctx, "accounts/"+id, &a); err != nil {
		if errors.Is(err, store.ErrNotFound) {
			return a, errdefs.NotFound("NoSuchEntity", "account %s does not exist", id)
		}
		return a, err
	}
	return a, nil
}

// ListAccounts returns every account.
func (s *Accounts) ListAccounts(ctx context.Context) ([]Account, error) {
	return store.ListAs[Account](ctx, s.st, "accounts/")
}

// CreateAccessKey creates an active key for the account's root user
// (userName "") or for an IAM user.
func (s *Accounts) CreateAccessKey(ctx context.Context, accountID, userName string) (AccessKey, error) {
	for tries := 0; ; tries++ {
		k := AccessKey{
			AccessKeyID:     "AKIA" + randomString(16, keyIDAlphabet),
			SecretAccessKey: randomString(40, secretAlphabet),
			AccountID:       accountID,
			UserName:        userName,
			Status:          "Active",
			CreatedAt:       time.Now().UTC().Truncate(time.Second),
		}
		_, err := s.st.Create(ctx, "accesskeys/"+k.AccessKeyID, k)
		if err == nil {
			return k, nil
		}
		if !errors.Is(err, store.ErrExists) || tries > 5 {
			return AccessKey{}, fmt.Errorf("creating access key: %w", err)
		}
	}
}

// ErrNoSuchKey is returned by LookupAccessKey for an unknown or inactive key.
var ErrNoSuchKey = errors.New("no such access key")

// LookupAccessKey returns an active access key by id.
func (s *Accounts) LookupAccessKey(ctx context.Context, id string) (AccessKey, error) {
	var k AccessKey
	if _, err := s.st.Get(ctx, "accesskeys/"+id, &k); err != nil {
		if errors.Is(err, store.ErrNotFound) {
			return k, ErrNoSuchKey
		}
		return k, err
	}
	if k.Status != "Active" {
		return AccessKey{}, ErrNoSuchKey
	}
	return k, nil
}

const (
	keyIDAlphabet  = "ABCDEFGHIJKLMNOPQRSTUVWXYZ234567"
	secretAlphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/"
)

func randomString(n int, alphabet string) string {
	b := make([]byte, n)
	max := big.NewInt(int64(len(alphabet)))
	for i := range b {
		v, err := rand.Int(rand.Reader, max)
		if err != nil {
			panic(err) // crypto/rand never fails on Linux
		}
		b[i] = alphabet[v.Int64()]
	}
	return string(b)
}

func randomDigits(n int) string { return randomString(n, "0123456789") }

// AdminAccountID is the id of the install's first account, whose root user
// (the holder of admin-credentials) administers labcloud itself.
func (s *Accounts) AdminAccountID(ctx context.Context) (string, error) {
	var rec BootstrapRecord
	if _, err := s.st.Get(ctx, bootstrapKey, &rec); err != nil {
		return "", fmt.Errorf("reading bootstrap record: %w", err)
	}
	return rec.AccountID, nil
}
