// Package keypairs keeps EC2 key pairs: the public half and its AWS-style
// fingerprint, per account, under keypairs/<account>/<name>. A private key
// that CreateKeyPair makes is returned once and never stored, as in AWS.
package keypairs

import (
	"context"
	"crypto/ed25519"
	"crypto/md5"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha1"
	"crypto/sha256"
	"crypto/x509"
	"encoding/base64"
	"encoding/hex"
	"encoding/pem"
	"errors"
	"fmt"
	"strings"
	"time"

	"golang.org/x/crypto/ssh"

	"github.com/labcloud/labcloud/internal/errdefs"
	"github.com/labcloud/labcloud/internal/store"
)

// Key types, as EC2 names them.
const (
	TypeRSA     = "rsa"
	TypeED25519 = "ed25519"
)

// KeyPair is a stored key pair.
type KeyPair struct {
	AccountID   string `json:"accountId"`
	Name        string `json:"name"`
	ID          string `json:"id"`
	Fingerprint string `json:"fingerprint"`
	// Type is TypeRSA or TypeED25519.
	Type string `json:"type"`
	// PublicKey is the OpenSSH authorized_keys line, with the key name as
	// comment, as EC2 returns it (DescribeKeyPairs IncludePublicKey, the
	// instance metadata public-keys/0/openssh-key).
	PublicKey  string    `json:"publicKey"`
	CreateTime time.Time `json:"createTime"`
}

// KeyPairs manages key pairs.
type KeyPairs struct {
	st  *store.Store
	now func() time.Time
}

// New returns a KeyPairs over st.
func New(st *store.Store) *KeyPairs { return &KeyPairs{st: st, now: time.Now} }

func key(acct, name string) string { return "keypairs/" + acct + "/" + name }

func newID() string {
	var b [9]byte
	_, _ = rand.Read(b[:])
	return "key-" + hex.EncodeToString(b[:])[:17]
}

// ValidateName checks a key pair name: 1–255 ASCII characters.
func ValidateName(name string) error {
	if name == "" {
		return errdefs.New(errdefs.ClassMissingParameter, "MissingParameter", "The request must contain the parameter KeyName")
	}
	if len(name) > 255 {
		return errdefs.InvalidParameter("InvalidParameterValue", "Key pair names are at most 255 characters; '%s…' is longer", name[:20])
	}
	for _, r := range name {
		if r < 0x20 || r > 0x7e {
			return errdefs.InvalidParameter("InvalidParameterValue", "Key pair name '%s' has a character that is not printable ASCII", name)
		}
	}
	return nil
}

// Create makes a new key pair of keyType (rsa: 2048 bits, PEM PKCS#1;
// ed25519: OpenSSH private key format) and returns it with the private key,
// which is not stored. format is "pem" (or empty); "ppk" is not supported.
func (k *KeyPairs) Create(ctx context.Context, acct, name, keyType, format string) (KeyPair, string, error) {
	if err := ValidateName(name); err != nil {
		return KeyPair{}, "", err
	}
	switch format {
	case "", "pem":
	case "ppk":
		return KeyPair{}, "", errdefs.New(errdefs.ClassNotImplemented, "Unsupported",
			"KeyFormat ppk (PuTTY) is not supported by labcloud: create the key pair with --key-format pem and convert it with puttygen")
	default:
		return KeyPair{}, "", errdefs.InvalidParameter("InvalidParameterValue", "Value (%s) for parameter KeyFormat is invalid: use pem or ppk", format)
	}
	var (
		private string
		pub     ssh.PublicKey
		fp      string
	)
	switch keyType {
	case "", TypeRSA:
		keyType = TypeRSA
		priv, err := rsa.GenerateKey(rand.Reader, 2048)
		if err != nil {
			return KeyPair{}, "", fmt.Errorf("generating an RSA key: %w", err)
		}
		private = string(pem.EncodeToMemory(&pem.Block{Type: "RSA PRIVATE KEY", Bytes: x509.MarshalPKCS1PrivateKey(priv)}))
		if pub, err = ssh.NewPublicKey(&priv.PublicKey); err != nil {
			return KeyPair{}, "", err
		}
		if fp, err = CreatedRSAFingerprint(priv); err != nil {
			return KeyPair{}, "", err
		}
	case TypeED25519:
		edPub, edPriv, err := ed25519.GenerateKey(rand.Reader)
		if err != nil {
			return KeyPair{}, "", fmt.Errorf("generating an ed25519 key: %w", err)
		}
		block, err := ssh.MarshalPrivateKey(edPriv, "")
		if err != nil {
			return KeyPair{}, "", fmt.Errorf("encoding the ed25519 key: %w", err)
		}
		private = string(pem.EncodeToMemory(block))
		if pub, err = ssh.NewPublicKey(edPub); err != nil {
			return KeyPair{}, "", err
		}
		fp = SHA256Fingerprint(pub)
	default:
		return KeyPair{}, "", errdefs.InvalidParameter("InvalidParameterValue", "Value (%s) for parameter KeyType is invalid: use rsa or ed25519", keyType)
	}
	kp, err := k.store(ctx, acct, name, keyType, fp, pub)
	return kp, private, err
}

// Import stores the public key of an OpenSSH public key line (the
// decoded PublicKeyMaterial of ImportKeyPair): RSA of at least 2048 bits or
// ed25519.
func (k *KeyPairs) Import(ctx context.Context, acct, name string, material []byte) (KeyPair, error) {
	if err := ValidateName(name); err != nil {
		return KeyPair{}, err
	}
	pub, err := ParsePublicKey(material)
	if err != nil {
		return KeyPair{}, err
	}
	var keyType, fp string
	switch pub.Type() {
	case ssh.KeyAlgoRSA:
		keyType = TypeRSA
		cpk := pub.(ssh.CryptoPublicKey).CryptoPublicKey().(*rsa.PublicKey)
		if cpk.N.BitLen() < 2048 {
			return KeyPair{}, errdefs.InvalidParameter("InvalidKey.Format",
				"Key is not in valid OpenSSH public key format: RSA keys must be at least 2048 bits (this one has %d); make one with ssh-keygen -t rsa -b 4096", cpk.N.BitLen())
		}
		if fp, err = ImportedRSAFingerprint(cpk); err != nil {
			return KeyPair{}, err
		}
	case ssh.KeyAlgoED25519:
		keyType = TypeED25519
		fp = SHA256Fingerprint(pub)
	default:
		return KeyPair{}, errdefs.InvalidParameter("InvalidKey.Format",
			"Key is not in valid OpenSSH public key format: %s keys are not supported; import an ssh-rsa (2048 bits or more) or ssh-ed25519 key", pub.Type())
	}
	return k.store(ctx, acct, name, keyType, fp, pub)
}

// ParsePublicKey reads an OpenSSH public key line ("ssh-ed25519 AAAA…
// comment"). A line that was base64-encoded once more (the aws CLI's
// file:// of a text file under cli_binary_format=base64) is accepted too.
func ParsePublicKey(material []byte) (ssh.PublicKey, error) {
	text := strings.TrimSpace(string(material))
	pub, _, _, _, err := ssh.ParseAuthorizedKey([]byte(text))
	if err != nil {
		if dec, derr := base64.StdEncoding.DecodeString(text); derr == nil {
			pub, _, _, _, err = ssh.ParseAuthorizedKey(dec)
		}
	}
	if err != nil {
		return nil, errdefs.InvalidParameter("InvalidKey.Format",
			"Key is not in valid OpenSSH public key format: give the contents of a .pub file such as ~/.ssh/id_ed25519.pub (aws ec2 import-key-pair --public-key-material fileb://~/.ssh/id_ed25519.pub)")
	}
	return pub, nil
}

func (k *KeyPairs) store(ctx context.Context, acct, name, keyType, fp string, pub ssh.PublicKey) (KeyPair, error) {
	line := strings.TrimSpace(string(ssh.MarshalAuthorizedKey(pub))) + " " + name
	kp := KeyPair{AccountID: acct, Name: name, ID: newID(), Fingerprint: fp, Type: keyType, PublicKey: line, CreateTime: k.now().UTC().Truncate(time.Millisecond)}
	if _, err := k.st.Create(ctx, key(acct, name), kp); err != nil {
		if errors.Is(err, store.ErrExists) {
			return KeyPair{}, errdefs.AlreadyExists("InvalidKeyPair.Duplicate", "The keypair '%s' already exists.", name)
		}
		return KeyPair{}, fmt.Errorf("storing key pair %s: %w", name, err)
	}
	return kp, nil
}

// Get returns the account's key pair by name; InvalidKeyPair.NotFound when
// there is none.
func (k *KeyPairs) Get(ctx context.Context, acct, name string) (KeyPair, error) {
	var kp KeyPair
	if _, err := k.st.Get(ctx, key(acct, name), &kp); err != nil {
		if errors.Is(err, store.ErrNotFound) {
			return KeyPair{}, errdefs.NotFound("InvalidKeyPair.NotFound", "The key pair '%s' does not exist", name)
		}
		return KeyPair{}, fmt.Errorf("reading key pair %s: %w", name, err)
	}
	return kp, nil
}

// GetByID returns the account's key pair by id (key-…).
func (k *KeyPairs) GetByID(ctx context.Context, acct, id string) (KeyPair, error) {
	all, err := k.List(ctx, acct)
	if err != nil {
		return KeyPair{}, err
	}
	for _, kp := range all {
		if kp.ID == id {
			return kp, nil
		}
	}
	return KeyPair{}, errdefs.NotFound("InvalidKeyPair.NotFound", "The key pair ID '%s' does not exist", id)
}

// Exists reports whether the account has a key pair with this id (the
// tags resolver for "key-").
func (k *KeyPairs) Exists(ctx context.Context, acct, id string) (bool, error) {
	_, err := k.GetByID(ctx, acct, id)
	if errdefs.Is(err, errdefs.ClassNotFound) {
		return false, nil
	}
	return err == nil, err
}

// List returns the account's key pairs sorted by name.
func (k *KeyPairs) List(ctx context.Context, acct string) ([]KeyPair, error) {
	kps, err := store.ListAs[KeyPair](ctx, k.st, "keypairs/"+acct+"/")
	if err != nil {
		return nil, fmt.Errorf("listing key pairs: %w", err)
	}
	return kps, nil
}

// Delete removes a key pair by name or by id. A missing name is not an
// error (AWS's DeleteKeyPair succeeds), so found reports whether anything
// was deleted; a missing id is InvalidKeyPair.NotFound.
func (k *KeyPairs) Delete(ctx context.Context, acct, name, id string) (kp KeyPair, found bool, err error) {
	switch {
	case id != "":
		kp, err = k.GetByID(ctx, acct, id)
		if err != nil {
			return KeyPair{}, false, err
		}
		if name != "" && name != kp.Name {
			return KeyPair{}, false, errdefs.InvalidParameter("InvalidParameterCombination", "Key pair %s is named '%s', not '%s': give KeyName or KeyPairId", id, kp.Name, name)
		}
	case name != "":
		kp, err = k.Get(ctx, acct, name)
		if errdefs.Is(err, errdefs.ClassNotFound) {
			return KeyPair{}, false, nil
		}
		if err != nil {
			return KeyPair{}, false, err
		}
	default:
		return KeyPair{}, false, errdefs.New(errdefs.ClassMissingParameter, "MissingParameter", "The request must contain the parameter KeyName or KeyPairId")
	}
	if err := k.st.Delete(ctx, key(acct, kp.Name)); err != nil {
		if errors.Is(err, store.ErrNotFound) {
			return KeyPair{}, false, nil
		}
		return KeyPair{}, false, fmt.Errorf("deleting key pair %s: %w", kp.Name, err)
	}
	return kp, true, nil
}

// CreatedRSAFingerprint is EC2's fingerprint of an RSA key pair it made:
// the SHA-1 of the DER PKCS#8 private key, colon-separated hex (as
// `openssl pkcs8 -topk8 -nocrypt -outform DER | openssl sha1 -c`).
func CreatedRSAFingerprint(priv *rsa.PrivateKey) (string, error) {
	der, err := x509.MarshalPKCS8PrivateKey(priv)
	if err != nil {
		return "", err
	}
	sum := sha1.Sum(der)
	return colonHex(sum[:]), nil
}

// ImportedRSAFingerprint is EC2's fingerprint of an imported RSA key: the
// MD5 of the DER SubjectPublicKeyInfo, colon-separated hex (as
// `openssl rsa -pubout -outform DER | openssl md5 -c`).
func ImportedRSAFingerprint(pub *rsa.PublicKey) (string, error) {
	der, err := x509.MarshalPKIXPublicKey(pub)
	if err != nil {
		return "", err
	}
	sum := md5.Sum(der)
	return colonHex(sum[:]), nil
}

// SHA256Fingerprint is EC2's fingerprint of an ed25519 key: the base64
// SHA-256 of the OpenSSH public key blob. It is what `ssh-keygen -l` prints
// after "SHA256:", except that EC2 keeps the base64 "=" padding.
func SHA256Fingerprint(pub ssh.PublicKey) string {
	sum := sha256.Sum256(pub.Marshal())
	return base64.StdEncoding.EncodeToString(sum[:])
}

func colonHex(b []byte) string {
	parts := make([]string, len(b))
	for i, c := range b {
		parts[i] = hex.EncodeToString([]byte{c})
	}
	return strings.Join(parts, ":")
}
