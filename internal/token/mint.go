package token

import (
	"bytes"
	"crypto/ed25519"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"strings"
	"time"
)

// A Signer is a private key that mints tokens: an Ed25519 private JWK (with d) or an
// HS256 oct JWK, whose secret serves both to sign and, in the verification set, to verify.
type Signer struct {
	kid  string
	alg  string
	ed   ed25519.PrivateKey
	hmac []byte
}

// KID returns the key ID the signer puts in each token's header.
func (s *Signer) KID() string { return s.kid }

// ParseSigner parses a private key file: one JWK, either
// {"kty":"OKP","crv":"Ed25519","alg":"EdDSA","kid":...,"x":...,"d":...} as GenerateEd25519
// writes it, or {"kty":"oct","alg":"HS256","kid":...,"k":...}. For Ed25519, x must be the
// public key d makes, so a file pieced together from two keys is caught here rather than
// by every verifier.
func ParseSigner(data []byte) (*Signer, error) {
	if obj, ok := parseObject(data); ok && obj["keys"] != nil {
		return nil, errors.New("token private key: this is a key set (of public keys); want the one private JWK")
	}
	j, err := parseJWK(data)
	if err == nil && j.alg == EdDSA && j.d == nil {
		err = errors.New("no private part (d): this is a public key")
	}
	if err != nil {
		if j.kid != "" {
			return nil, fmt.Errorf("token private key (kid %q): %w", j.kid, err)
		}
		return nil, fmt.Errorf("token private key: %w", err)
	}
	s := &Signer{kid: j.kid, alg: j.alg}
	switch j.alg {
	case EdDSA:
		s.ed = ed25519.NewKeyFromSeed(j.d)
		if !bytes.Equal(s.ed.Public().(ed25519.PublicKey), j.x) {
			return nil, fmt.Errorf("token private key (kid %q): x is not the public key of d", j.kid)
		}
	case HS256:
		s.hmac = j.k
	}
	return s, nil
}

// GenerateEd25519 makes a new Ed25519 key from 32 bytes of rand and returns it twice as
// JSON: public is a JWK set holding the public key alone, for the servers' -token-keys
// file (or for MergeKeySets, to add it to one), and private is the single private JWK,
// with d, for ParseSigner.
func GenerateEd25519(kid string, rand io.Reader) (public, private []byte, err error) {
	if kid == "" {
		return nil, nil, errors.New("token keygen: empty kid")
	}
	seed := make([]byte, ed25519.SeedSize)
	if _, err := io.ReadFull(rand, seed); err != nil {
		return nil, nil, fmt.Errorf("token keygen: %w", err)
	}
	priv := ed25519.NewKeyFromSeed(seed)
	pub := okpJWK{
		Kty: "OKP", Crv: "Ed25519", Kid: kid, Alg: EdDSA, Use: "sig",
		X: b64.EncodeToString(priv.Public().(ed25519.PublicKey)),
	}
	if public, err = json.MarshalIndent(struct {
		Keys []okpJWK `json:"keys"`
	}{[]okpJWK{pub}}, "", "  "); err != nil {
		return nil, nil, fmt.Errorf("token keygen: %w", err)
	}
	pub.D = b64.EncodeToString(seed)
	if private, err = json.MarshalIndent(pub, "", "  "); err != nil {
		return nil, nil, fmt.Errorf("token keygen: %w", err)
	}
	return public, private, nil
}

type okpJWK struct {
	Kty string `json:"kty"`
	Crv string `json:"crv"`
	Kid string `json:"kid"`
	Alg string `json:"alg"`
	Use string `json:"use"`
	X   string `json:"x"`
	D   string `json:"d,omitempty"`
}

// A Grant is what a minted token says: the claims a Verifier will check.
type Grant struct {
	Subject   string        // sub; required
	Scopes    []string      // joined with spaces into scope; each non-empty, no spaces
	Audience  string        // aud; empty means DefaultAudience
	Issuer    string        // iss; omitted when empty
	TTL       time.Duration // exp is now+TTL, in whole seconds; must be positive
	NotBefore time.Time     // nbf; omitted when zero
}

// Mint returns a signed token for g, issued at now, with the header
// {"alg":...,"kid":...,"typ":"JWT"} and the claims sub, scope (when there are scopes),
// aud, iss (when set), iat, nbf (when set) and exp, all times in whole seconds.
func (s *Signer) Mint(g Grant, now time.Time) (string, error) {
	if g.Subject == "" {
		return "", errors.New("token mint: empty subject")
	}
	if g.TTL <= 0 {
		return "", fmt.Errorf("token mint: ttl must be positive, got %v", g.TTL)
	}
	for _, sc := range g.Scopes {
		if sc == "" || strings.Contains(sc, " ") {
			return "", fmt.Errorf("token mint: scope %q: want one non-empty word", sc)
		}
	}
	if g.Audience == "" {
		g.Audience = DefaultAudience
	}
	header, err := json.Marshal(struct {
		Alg string `json:"alg"`
		Kid string `json:"kid"`
		Typ string `json:"typ"`
	}{s.alg, s.kid, "JWT"})
	if err != nil {
		return "", fmt.Errorf("token mint: %w", err)
	}
	claims := struct {
		Sub   string `json:"sub"`
		Scope string `json:"scope,omitempty"`
		Aud   string `json:"aud"`
		Iss   string `json:"iss,omitempty"`
		Iat   int64  `json:"iat"`
		Nbf   *int64 `json:"nbf,omitempty"`
		Exp   int64  `json:"exp"`
	}{
		Sub: g.Subject, Scope: strings.Join(g.Scopes, " "), Aud: g.Audience, Iss: g.Issuer,
		Iat: now.Unix(), Exp: now.Add(g.TTL).Unix(),
	}
	if !g.NotBefore.IsZero() {
		nbf := g.NotBefore.Unix()
		claims.Nbf = &nbf
	}
	payload, err := json.Marshal(claims)
	if err != nil {
		return "", fmt.Errorf("token mint: %w", err)
	}
	input := b64.EncodeToString(header) + "." + b64.EncodeToString(payload)
	return input + "." + b64.EncodeToString(s.sign([]byte(input))), nil
}

func (s *Signer) sign(msg []byte) []byte {
	if s.alg == EdDSA {
		return ed25519.Sign(s.ed, msg)
	}
	mac := hmac.New(sha256.New, s.hmac)
	mac.Write(msg)
	return mac.Sum(nil)
}
