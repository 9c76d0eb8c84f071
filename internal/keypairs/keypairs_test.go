package keypairs_test

import (
	"context"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"encoding/pem"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"golang.org/x/crypto/ssh"

	"github.com/labcloud/labcloud/internal/errdefs"
	"github.com/labcloud/labcloud/internal/keypairs"
	"github.com/labcloud/labcloud/internal/store"
	"github.com/labcloud/labcloud/internal/store/storetest"
)

func newStore(t *testing.T) *store.Store { return storetest.NewEmbedded(t) }

func tool(t *testing.T, name string) string {
	t.Helper()
	p, err := exec.LookPath(name)
	if err != nil {
		t.Fatalf("%s not found: run `make deps` (openssh-client, openssl)", name)
	}
	return p
}

// sh runs a shell pipeline and returns its trimmed stdout.
func sh(t *testing.T, script string) string {
	t.Helper()
	out, err := exec.Command("bash", "-o", "pipefail", "-c", script).Output()
	if err != nil {
		t.Fatalf("%s: %v", script, err)
	}
	return strings.TrimSpace(string(out))
}

func writeFile(t *testing.T, name, content string) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), name)
	if err := os.WriteFile(p, []byte(content), 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

// opensslColon turns "(stdin)= 1f:51:…" or "SHA1(stdin)= …" into the hex.
func opensslColon(s string) string {
	_, v, _ := strings.Cut(s, "= ")
	return strings.TrimSpace(v)
}

func TestKeyPairCreateRSAFingerprintMatchesOpenSSL(t *testing.T) {
	tool(t, "openssl")
	tool(t, "ssh-keygen")
	k := keypairs.New(newStore(t))
	ctx := context.Background()
	kp, private, err := k.Create(ctx, "111111111111", "rsa-key", "rsa", "pem")
	if err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(private, "-----BEGIN RSA PRIVATE KEY-----") {
		t.Fatalf("private key is not PKCS#1 PEM: %.40s", private)
	}
	path := writeFile(t, "k.pem", private)
	// AWS's documented check for key pairs it created.
	want := opensslColon(sh(t, "openssl pkcs8 -in "+path+" -inform PEM -outform DER -topk8 -nocrypt | openssl sha1 -c"))
	if kp.Fingerprint != want {
		t.Fatalf("fingerprint %s, openssl says %s", kp.Fingerprint, want)
	}
	pub := sh(t, "ssh-keygen -y -f "+path)
	if f := strings.Fields(kp.PublicKey); len(f) != 3 || f[0]+" "+f[1] != pub || f[2] != "rsa-key" {
		t.Fatalf("stored public key %q, ssh-keygen -y gives %q", kp.PublicKey, pub)
	}
	if kp.Type != "rsa" || !strings.HasPrefix(kp.ID, "key-") || len(kp.ID) != 21 {
		t.Fatalf("key pair %+v", kp)
	}
	got, err := k.Get(ctx, "111111111111", "rsa-key")
	if err != nil || got != kp {
		t.Fatalf("Get = %+v, %v; want %+v", got, err, kp)
	}
	if _, err := k.Get(ctx, "222222222222", "rsa-key"); !errdefs.Is(err, errdefs.ClassNotFound) {
		t.Fatalf("another account sees the key pair: %v", err)
	}
}

func TestKeyPairCreateED25519FingerprintMatchesSSHKeygen(t *testing.T) {
	tool(t, "ssh-keygen")
	k := keypairs.New(newStore(t))
	kp, private, err := k.Create(context.Background(), "111111111111", "ed", "ed25519", "")
	if err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(private, "-----BEGIN OPENSSH PRIVATE KEY-----") {
		t.Fatalf("private key is not in OpenSSH format: %.40s", private)
	}
	path := writeFile(t, "k", private)
	// "256 SHA256:<base64 without padding> comment (ED25519)"
	fp := strings.Fields(sh(t, "ssh-keygen -l -E sha256 -f "+path))[1]
	if want := strings.TrimPrefix(fp, "SHA256:") + "="; kp.Fingerprint != want {
		t.Fatalf("fingerprint %s, ssh-keygen says %s (EC2 keeps the = padding)", kp.Fingerprint, fp)
	}
	pub := sh(t, "ssh-keygen -y -f "+path)
	if !strings.HasPrefix(kp.PublicKey, strings.Join(strings.Fields(pub)[:2], " ")+" ") {
		t.Fatalf("stored public key %q, ssh-keygen -y gives %q", kp.PublicKey, pub)
	}
}

func TestKeyPairImportFingerprints(t *testing.T) {
	tool(t, "openssl")
	tool(t, "ssh-keygen")
	k := keypairs.New(newStore(t))
	ctx := context.Background()
	dir := t.TempDir()

	sh(t, "ssh-keygen -q -t rsa -b 3072 -N '' -C me@host -f "+dir+"/rsa")
	pub, _ := os.ReadFile(dir + "/rsa.pub")
	kp, err := k.Import(ctx, "111111111111", "imported-rsa", pub)
	if err != nil {
		t.Fatal(err)
	}
	// AWS's documented check for imported RSA keys.
	want := opensslColon(sh(t, "ssh-keygen -ef "+dir+"/rsa.pub -m PEM | openssl rsa -RSAPublicKey_in -outform DER 2>/dev/null | openssl md5 -c"))
	if kp.Fingerprint != want || kp.Type != "rsa" {
		t.Fatalf("imported rsa: fingerprint %s type %s, openssl says %s", kp.Fingerprint, kp.Type, want)
	}

	sh(t, "ssh-keygen -q -t ed25519 -N '' -f "+dir+"/ed")
	pub, _ = os.ReadFile(dir + "/ed.pub")
	kp, err = k.Import(ctx, "111111111111", "imported-ed", pub)
	if err != nil {
		t.Fatal(err)
	}
	fp := strings.Fields(sh(t, "ssh-keygen -l -E sha256 -f "+dir+"/ed.pub"))[1]
	if kp.Fingerprint != strings.TrimPrefix(fp, "SHA256:")+"=" || kp.Type != "ed25519" {
		t.Fatalf("imported ed25519: fingerprint %s, ssh-keygen says %s", kp.Fingerprint, fp)
	}

	if _, err := k.Import(ctx, "111111111111", "imported-ed", pub); err == nil || !strings.Contains(err.Error(), "already exists") {
		t.Fatalf("duplicate import: %v", err)
	}
	var de *errdefs.Error
	if _, err := k.Import(ctx, "111111111111", "dup", pub); err != nil {
		t.Fatal(err)
	}
	_, err = k.Import(ctx, "111111111111", "dup", pub)
	if !asCode(err, &de, "InvalidKeyPair.Duplicate") {
		t.Fatalf("duplicate: %v", err)
	}
}

func asCode(err error, de **errdefs.Error, code string) bool {
	e, ok := err.(*errdefs.Error)
	if !ok {
		return false
	}
	*de = e
	return e.Code == code
}

func TestKeyPairImportRefusesBadKeys(t *testing.T) {
	k := keypairs.New(newStore(t))
	ctx := context.Background()
	small, err := rsa.GenerateKey(rand.Reader, 1024)
	if err != nil {
		t.Fatal(err)
	}
	smallPub, _ := ssh.NewPublicKey(&small.PublicKey)
	pemPub := pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: must(x509.MarshalPKIXPublicKey(&small.PublicKey))})
	tests := []struct {
		name     string
		material []byte
	}{
		{"garbage", []byte("not a key")},
		{"rsa 1024", ssh.MarshalAuthorizedKey(smallPub)},
		{"pem", pemPub},
		{"empty", nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var de *errdefs.Error
			if _, err := k.Import(ctx, "111111111111", "bad", tt.material); !asCode(err, &de, "InvalidKey.Format") {
				t.Fatalf("Import: %v, want InvalidKey.Format", err)
			}
		})
	}
}

func must[T any](v T, err error) T {
	if err != nil {
		panic(err)
	}
	return v
}

func TestKeyPairCreateOptionsAndDelete(t *testing.T) {
	k := keypairs.New(newStore(t))
	ctx := context.Background()
	var de *errdefs.Error
	if _, _, err := k.Create(ctx, "1", "p", "rsa", "ppk"); !asCode(err, &de, "Unsupported") {
		t.Fatalf("ppk: %v", err)
	}
	if _, _, err := k.Create(ctx, "1", "p", "dsa", ""); !asCode(err, &de, "InvalidParameterValue") {
		t.Fatalf("dsa: %v", err)
	}
	if _, _, err := k.Create(ctx, "1", "", "rsa", ""); !asCode(err, &de, "MissingParameter") {
		t.Fatalf("no name: %v", err)
	}
	kp, _, err := k.Create(ctx, "1", "a", "ed25519", "")
	if err != nil {
		t.Fatal(err)
	}
	if _, _, err := k.Create(ctx, "1", "a", "ed25519", ""); !asCode(err, &de, "InvalidKeyPair.Duplicate") {
		t.Fatalf("duplicate: %v", err)
	}
	if ok, err := k.Exists(ctx, "1", kp.ID); !ok || err != nil {
		t.Fatalf("Exists = %v, %v", ok, err)
	}
	if _, found, err := k.Delete(ctx, "1", "", kp.ID); !found || err != nil {
		t.Fatalf("delete by id: %v %v", found, err)
	}
	if _, found, err := k.Delete(ctx, "1", "a", ""); found || err != nil {
		t.Fatalf("deleting a missing name must succeed quietly: %v %v", found, err)
	}
	if _, _, err := k.Delete(ctx, "1", "", kp.ID); !asCode(err, &de, "InvalidKeyPair.NotFound") {
		t.Fatalf("delete missing id: %v", err)
	}
	if all, err := k.List(ctx, "1"); err != nil || len(all) != 0 {
		t.Fatalf("List after delete = %v, %v", all, err)
	}
}
