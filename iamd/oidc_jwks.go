package iamd

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rsa"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"math/big"
)

// JWK is one JSON Web Key (RFC 7517) of the kinds web-identity tokens are
// signed with: RSA for RS256, EC P-256 for ES256.
type JWK struct {
	Kty string `json:"kty"`
	Kid string `json:"kid,omitempty"`
	Use string `json:"use,omitempty"`
	Alg string `json:"alg,omitempty"`
	// RSA.
	N string `json:"n,omitempty"`
	E string `json:"e,omitempty"`
	// EC.
	Crv string `json:"crv,omitempty"`
	X   string `json:"x,omitempty"`
	Y   string `json:"y,omitempty"`
}

// JWKS is a JSON Web Key Set, the document an issuer serves at its
// jwks_uri.
type JWKS struct {
	Keys []JWK `json:"keys"`
}

// VerifyKey is a public key of a provider with the one algorithm it may
// verify.
type VerifyKey struct {
	Alg string // "RS256" or "ES256"
	Key crypto.PublicKey
}

// ParseJWKS reads a JWKS document into its signature keys by kid. Keys
// for encryption (use "enc"), keys without a kid and key types other than
// RSA and EC P-256 are left out: nothing could select or use them.
// Malformed JSON or a malformed RSA/EC key is an InvalidInput error that
// says which key is wrong.
func ParseJWKS(data []byte) (map[string]VerifyKey, error) {
	var set JWKS
	if err := json.Unmarshal(data, &set); err != nil {
		return nil, invalidInput("The JWKS is not valid JSON (%v): pass the document the issuer serves at its jwks_uri, {\"keys\":[...]}.", err)
	}
	out := map[string]VerifyKey{}
	for n, k := range set.Keys {
		if k.Kid == "" || (k.Use != "" && k.Use != "sig") {
			continue
		}
		vk, err := k.verifyKey()
		if errors.Is(err, errUnsupportedKey) {
			continue
		}
		if err != nil {
			return nil, invalidInput("Key %d (kid %q) of the JWKS is not valid: %v.", n+1, k.Kid, err)
		}
		out[k.Kid] = vk
	}
	return out, nil
}

var errUnsupportedKey = errors.New("unsupported key type")

// verifyKey decodes the public key.
func (k JWK) verifyKey() (VerifyKey, error) {
	switch k.Kty {
	case "RSA":
		if k.Alg != "" && k.Alg != "RS256" {
			return VerifyKey{}, errUnsupportedKey
		}
		n, err := b64int(k.N)
		if err != nil {
			return VerifyKey{}, fmt.Errorf("n: %w", err)
		}
		e, err := b64int(k.E)
		if err != nil {
			return VerifyKey{}, fmt.Errorf("e: %w", err)
		}
		if n.BitLen() < 2048 {
			return VerifyKey{}, fmt.Errorf("the RSA modulus has %d bits; use at least 2048", n.BitLen())
		}
		if !e.IsInt64() || e.Int64() < 3 || e.Int64() > 1<<31-1 {
			return VerifyKey{}, errors.New("the RSA exponent is out of range")
		}
		return VerifyKey{Alg: "RS256", Key: &rsa.PublicKey{N: n, E: int(e.Int64())}}, nil
	case "EC":
		if k.Crv != "P-256" || (k.Alg != "" && k.Alg != "ES256") {
			return VerifyKey{}, errUnsupportedKey
		}
		x, err := b64int(k.X)
		if err != nil {
			return VerifyKey{}, fmt.Errorf("x: %w", err)
		}
		y, err := b64int(k.Y)
		if err != nil {
			return VerifyKey{}, fmt.Errorf("y: %w", err)
		}
		pub := &ecdsa.PublicKey{Curve: elliptic.P256(), X: x, Y: y}
		// Reject points off the curve (an invalid-curve attack surface).
		if _, err := pub.ECDH(); err != nil {
			return VerifyKey{}, errors.New("the point (x, y) is not on curve P-256")
		}
		return VerifyKey{Alg: "ES256", Key: pub}, nil
	}
	return VerifyKey{}, errUnsupportedKey
}

func b64int(s string) (*big.Int, error) {
	if s == "" {
		return nil, errors.New("missing")
	}
	b, err := base64.RawURLEncoding.DecodeString(s)
	if err != nil {
		return nil, errors.New("not base64url without padding")
	}
	return new(big.Int).SetBytes(b), nil
}

func b64(b []byte) string { return base64.RawURLEncoding.EncodeToString(b) }

// PublicJWK returns the JWK of an RSA or EC P-256 public key, with its
// kid set to the key's RFC 7638 thumbprint, "use":"sig" and the one
// algorithm labcloud verifies with it.
func PublicJWK(pub crypto.PublicKey) (JWK, error) {
	var k JWK
	switch p := pub.(type) {
	case *rsa.PublicKey:
		k = JWK{Kty: "RSA", Alg: "RS256", N: b64(p.N.Bytes()), E: b64(big.NewInt(int64(p.E)).Bytes())}
	case *ecdsa.PublicKey:
		if p.Curve != elliptic.P256() {
			return JWK{}, errors.New("only EC keys on curve P-256 (ES256) are supported")
		}
		// Coordinates are fixed-width (32 bytes) in a JWK.
		x, y := make([]byte, 32), make([]byte, 32)
		p.X.FillBytes(x)
		p.Y.FillBytes(y)
		k = JWK{Kty: "EC", Alg: "ES256", Crv: "P-256", X: b64(x), Y: b64(y)}
	default:
		return JWK{}, fmt.Errorf("unsupported public key type %T: use RSA or EC P-256", pub)
	}
	k.Use = "sig"
	k.Kid = k.Thumbprint()
	return k, nil
}

// Thumbprint is the key's RFC 7638 thumbprint: the base64url SHA-256 of
// its required members in lexicographic order, without white space.
func (k JWK) Thumbprint() string {
	var canon string
	switch k.Kty {
	case "RSA":
		canon = fmt.Sprintf(`{"e":%q,"kty":"RSA","n":%q}`, k.E, k.N)
	case "EC":
		canon = fmt.Sprintf(`{"crv":%q,"kty":"EC","x":%q,"y":%q}`, k.Crv, k.X, k.Y)
	default:
		return ""
	}
	sum := sha256.Sum256([]byte(canon))
	return b64(sum[:])
}
