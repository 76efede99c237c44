// Package authtest is the Supabase Auth and API gateway of the local
// stand-in: the project's asymmetric JWT signing keys and their JWKS,
// password sign-in, refresh and sign-out for seeded users, GET /user, and
// the gateway's rules for API keys (legacy anon/service_role JWTs and the
// new sb_publishable_/sb_secret_ keys, translated to short-lived JWTs).
//
// It is a test and demo tool. It speaks the wire format of Supabase Auth
// (github.com/supabase/auth) and of the hosted API gateway as documented,
// so that clients (the daemon, its web UI, @supabase/supabase-js) talk to
// it exactly as they talk to a hosted project.
package authtest

import (
	"context"
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"errors"
	"fmt"
	"sync"

	"github.com/MicahParks/jwkset"
	"github.com/golang-jwt/jwt/v5"
)

// Key is one asymmetric JWT signing key of the project.
type Key struct {
	ID  string // kid
	Alg string // "ES256" or "RS256"
	key crypto.Signer
}

// Public returns the key's public half.
func (k *Key) Public() crypto.PublicKey { return k.key.Public() }

// Sign signs claims with this key, with its kid in the header.
func (k *Key) Sign(claims jwt.Claims) string {
	t := jwt.NewWithClaims(jwt.GetSigningMethod(k.Alg), claims)
	t.Header["kid"] = k.ID
	s, err := t.SignedString(k.key)
	if err != nil {
		panic(fmt.Sprintf("authtest: sign with %s key %s: %v", k.Alg, k.ID, err))
	}
	return s
}

// SignToken signs a token built by hand (its header as given) with this
// key.
func (k *Key) SignToken(t *jwt.Token) (string, error) { return t.SignedString(k.key) }

// NewKey generates a signing key: alg is "ES256" (P-256, Supabase's
// default) or "RS256" (2048-bit RSA).
func NewKey(alg string) *Key {
	var signer crypto.Signer
	var err error
	switch alg {
	case "ES256":
		signer, err = ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	case "RS256":
		signer, err = rsa.GenerateKey(rand.Reader, 2048)
	default:
		panic("authtest: unsupported signing algorithm " + alg)
	}
	if err != nil {
		panic(fmt.Sprintf("authtest: generate %s key: %v", alg, err))
	}
	return &Key{ID: newKID(), Alg: alg, key: signer}
}

func newKID() string {
	b := make([]byte, 16)
	_, _ = rand.Read(b)
	return fmt.Sprintf("%x-%x-%x-%x-%x", b[0:4], b[4:6], b[6:8], b[8:10], b[10:16])
}

// KeySet is a project's JWT signing keys: the current key, which signs new
// tokens, and the others the JWKS publishes (a standby key about to be
// rotated in, previous keys whose tokens may still be unexpired). It is safe
// for concurrent use.
type KeySet struct {
	mu        sync.Mutex
	current   *Key
	published []*Key // in JWKS order; includes current
}

// NewKeySet returns a key set whose current key is a new ES256 key and
// which also publishes a previous RS256 key, as a project that rotated from
// an RSA key to Supabase's default ECC (P-256) key does.
func NewKeySet() *KeySet {
	cur, prev := NewKey("ES256"), NewKey("RS256")
	return &KeySet{current: cur, published: []*Key{cur, prev}}
}

// Current returns the signing key.
func (s *KeySet) Current() *Key {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.current
}

// Published returns every key the JWKS lists.
func (s *KeySet) Published() []*Key {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]*Key(nil), s.published...)
}

// Rotate makes k the signing key, publishing it first; the previous keys
// stay published so that their unexpired tokens keep verifying.
func (s *KeySet) Rotate(k *Key) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.current = k
	for _, p := range s.published {
		if p == k {
			return
		}
	}
	s.published = append([]*Key{k}, s.published...)
}

// Revoke stops publishing the key with this kid (after a rotation, once
// its tokens have expired). The current key cannot be revoked.
func (s *KeySet) Revoke(kid string) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.current.ID == kid {
		return errors.New("authtest: the current signing key cannot be revoked")
	}
	out := s.published[:0]
	for _, p := range s.published {
		if p.ID != kid {
			out = append(out, p)
		}
	}
	s.published = out
	return nil
}

// Lookup returns the public key published under kid, if its algorithm is
// alg: what PostgREST and Realtime do with a project's JWKS.
func (s *KeySet) Lookup(kid, alg string) (crypto.PublicKey, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, p := range s.published {
		if p.ID == kid && p.Alg == alg {
			return p.Public(), true
		}
	}
	return nil, false
}

// JWKS returns the public keys as a JSON Web Key Set, as Supabase Auth
// serves it at /.well-known/jwks.json (kid, alg, use "sig", key_ops
// ["verify"]).
func (s *KeySet) JWKS() []byte {
	store := jwkset.NewMemoryStorage()
	ctx := context.Background()
	for _, k := range s.Published() {
		jwk, err := jwkset.NewJWKFromKey(k.Public(), jwkset.JWKOptions{Metadata: jwkset.JWKMetadataOptions{
			ALG: jwkset.ALG(k.Alg), KID: k.ID, USE: jwkset.UseSig, KEYOPS: []jwkset.KEYOPS{jwkset.KeyOpsVerify},
		}})
		if err != nil {
			panic(fmt.Sprintf("authtest: encode key %s: %v", k.ID, err))
		}
		if err := store.KeyWrite(ctx, jwk); err != nil {
			panic(err)
		}
	}
	raw, err := store.JSONPublic(ctx)
	if err != nil {
		panic(err)
	}
	return raw
}
