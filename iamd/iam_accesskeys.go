package iamd

import (
	"context"
	"strings"

	"github.com/labcloud/labcloud/internal/store"
)

// Access key statuses. LookupAccessKey accepts only Active keys, so an
// Inactive key fails SigV4 verification as an unknown key would.
const (
	KeyActive   = "Active"
	KeyInactive = "Inactive"
)

func accessKeyKey(id string) string { return "accesskeys/" + id }

func keyMissing(id string) error {
	return noSuchEntity("The Access Key with id %s cannot be found.", id)
}

// CreateAccessKey creates an active access key for an IAM user. The key
// record goes to accesskeys/<id>, beside the root keys, so SigV4
// verification finds it; the user lists it, so at most two exist per user
// and DeleteUser sees them. The secret is returned only here.
func (i *IAM) CreateAccessKey(ctx context.Context, account, userName string) (AccessKey, error) {
	var v validator
	v.name("userName", userName, 128)
	if err := v.err(); err != nil {
		return AccessKey{}, err
	}
	ukey := objKey(account, folderUsers, userName)
	var k AccessKey
	err := i.atomically(ctx, func() ([]store.Op, error) {
		u, rev, err := load[User](ctx, i.st, ukey, func() error { return userMissing(userName) })
		if err != nil {
			return nil, err
		}
		if len(u.AccessKeys) >= maxAccessKeysPerUser {
			return nil, limitExceeded("Cannot exceed quota for AccessKeysPerUser: %d. Delete one of %s's keys (ListAccessKeys shows them) first.", maxAccessKeysPerUser, u.UserName)
		}
		k = AccessKey{
			AccessKeyID:     "AKIA" + randomString(16, keyIDAlphabet),
			SecretAccessKey: randomString(40, secretAlphabet),
			AccountID:       account,
			UserName:        u.UserName,
			Status:          KeyActive,
			CreatedAt:       i.stamp(),
		}
		u.AccessKeys = append(u.AccessKeys, k.AccessKeyID)
		return []store.Op{store.OpCompareAndSwap(ukey, u, rev), store.OpCreate(accessKeyKey(k.AccessKeyID), k)}, nil
	})
	if err != nil {
		return AccessKey{}, err
	}
	return k, nil
}

// ListAccessKeys returns a user's access keys without their secrets.
func (i *IAM) ListAccessKeys(ctx context.Context, account, userName string) ([]AccessKey, error) {
	u, err := i.GetUser(ctx, account, userName)
	if err != nil {
		return nil, err
	}
	out := []AccessKey{}
	for _, id := range u.AccessKeys {
		k, _, err := store.Load[AccessKey](ctx, i.st, accessKeyKey(id))
		if isNotFound(err) {
			continue
		}
		if err != nil {
			return nil, err
		}
		k.SecretAccessKey = ""
		out = append(out, k)
	}
	return out, nil
}

// userKey finds a key among a user's keys.
func (i *IAM) userKey(ctx context.Context, account, userName, id string) (User, int64, error) {
	var v validator
	v.name("userName", userName, 128)
	v.str("accessKeyId", id, 16, 128, patAccessKeyID)
	if err := v.err(); err != nil {
		return User{}, 0, err
	}
	u, rev, err := load[User](ctx, i.st, objKey(account, folderUsers, userName), func() error { return userMissing(userName) })
	if err != nil {
		return User{}, 0, err
	}
	for _, have := range u.AccessKeys {
		if have == id {
			return u, rev, nil
		}
	}
	return User{}, 0, keyMissing(id)
}

// UpdateAccessKey sets a user's key Active or Inactive. An inactive key
// stays listed but no longer authenticates.
func (i *IAM) UpdateAccessKey(ctx context.Context, account, userName, id, status string) error {
	if status != KeyActive && status != KeyInactive {
		var v validator
		v.fail(status, "status", "satisfy enum value set: [Active, Inactive]")
		return v.err()
	}
	if _, _, err := i.userKey(ctx, account, userName, id); err != nil {
		return err
	}
	_, err := store.Update(ctx, i.st, accessKeyKey(id), func(k *AccessKey) error {
		if k.AccountID != account || !strings.EqualFold(k.UserName, userName) {
			return keyMissing(id)
		}
		k.Status = status
		return nil
	})
	if isNotFound(err) {
		return keyMissing(id)
	}
	return err
}

// DeleteAccessKey deletes a user's key.
func (i *IAM) DeleteAccessKey(ctx context.Context, account, userName, id string) error {
	ukey := objKey(account, folderUsers, userName)
	return i.atomically(ctx, func() ([]store.Op, error) {
		u, rev, err := i.userKey(ctx, account, userName, id)
		if err != nil {
			return nil, err
		}
		kept := u.AccessKeys[:0:0]
		for _, have := range u.AccessKeys {
			if have != id {
				kept = append(kept, have)
			}
		}
		u.AccessKeys = kept
		ops := []store.Op{store.OpCompareAndSwap(ukey, u, rev)}
		if _, krev, err := store.Load[AccessKey](ctx, i.st, accessKeyKey(id)); err == nil {
			ops = append(ops, store.OpDeleteIf(accessKeyKey(id), krev))
		} else if !isNotFound(err) {
			return nil, err
		}
		return ops, nil
	})
}
