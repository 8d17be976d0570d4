// Package token verifies and mints the bearer tokens the server accepts: JWT claims
// (RFC 7519) in a compact JWS (RFC 7515), signed with Ed25519 (EdDSA, RFC 8037) or
// HMAC-SHA-256 (HS256) by a key from a configured JSON Web Key Set (RFC 7517).
//
// Verify checks a token in this order, and stops at the first failure:
//
//  1. size: at most MaxSize bytes;
//  2. structure: exactly three dot-separated segments, header and payload not empty,
//     each unpadded base64url in its one canonical spelling (no padding, no CR/LF, zero
//     trailing bits);
//  3. header: one UTF-8 JSON object (whitespace around it allowed, as JSON text allows;
//     nothing else after it) without repeated members; no crit, jwk, jku, x5u
//     or x5c; typ, when present, JWT or at+jwt (compared case-insensitively, as media
//     types are, RFC 7515 §4.1.9); alg EdDSA or HS256; a kid in the set; and alg equal to
//     that key's own algorithm, so that a key is only ever used the one way it was meant
//     for (an Ed25519 public key is never taken for an HMAC secret);
//  4. signature: over the raw bytes "header.payload" as they came, of exactly the length
//     the algorithm makes, compared in constant time for HS256;
//  5. claims, only now decoded, as one UTF-8 JSON object without repeated members: exp
//     required, nbf and iat optional, all JSON numbers; then the times with Leeway; then
//     iss (when configured), aud, sub and scope.
//
// So a token that is both expired and badly signed is refused for its signature: nothing
// unsigned is ever read as a claim.
//
// Times: a token is expired once now >= exp + Leeway (RFC 7519 §4.1.4: now must be before
// exp), so with the default leeway a token is still good 59.999… s after its exp and
// refused at exactly exp+60s. It is not yet valid while now + Leeway < nbf, and issued in
// the future while now + Leeway < iat.
//
// Verified tokens are remembered (see cache.go), so a client reusing one token pays for
// one signature check, not one per request.
package token

import (
	"crypto/ed25519"
	"crypto/hmac"
	"crypto/sha256"
	"fmt"
	"os"
	"strings"
	"sync/atomic"
	"time"
)

// MaxSize is the longest token accepted, in bytes. Ours are a few hundred bytes; the bound
// keeps a hostile one from costing more than a little decoding.
const MaxSize = 8 << 10

// Defaults for the zero Config.
const (
	DefaultAudience  = "finonex"
	DefaultLeeway    = 60 * time.Second
	DefaultCacheSize = 10000
)

// Config says what a Verifier accepts. Its zero value is usable.
type Config struct {
	// Audience must be the token's aud, or one of the strings in it. Empty means
	// DefaultAudience.
	Audience string
	// Issuer, when not empty, must equal the token's iss; a token without one is refused.
	// Empty means iss is not checked (but must be a string when present).
	Issuer string
	// Leeway is the clock skew allowed on exp, nbf and iat. Zero means DefaultLeeway;
	// negative means none.
	Leeway time.Duration
	// CacheSize bounds the number of verified tokens remembered. Zero means
	// DefaultCacheSize; negative turns the cache off.
	CacheSize int
	// Now returns the current time; nil means time.Now.
	Now func() time.Time
}

// A Verifier checks tokens against its current key set. It is safe for concurrent use,
// including SetKeys and LoadFile while tokens are being verified.
type Verifier struct {
	cfg   Config
	state atomic.Pointer[state]
}

// state is one key set and the tokens verified with it. They are swapped together: a
// Verify that began with old keys can only fill the old cache, which nobody reads any
// more, so a key removed by rotation stops working at once.
type state struct {
	keys  *KeySet
	cache *cache // nil when caching is off
}

// NewVerifier returns a Verifier with no keys, which refuses every token until SetKeys or
// LoadFile gives it some.
func NewVerifier(cfg Config) *Verifier {
	if cfg.Audience == "" {
		cfg.Audience = DefaultAudience
	}
	switch {
	case cfg.Leeway == 0:
		cfg.Leeway = DefaultLeeway
	case cfg.Leeway < 0:
		cfg.Leeway = 0
	}
	if cfg.CacheSize == 0 {
		cfg.CacheSize = DefaultCacheSize
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	v := &Verifier{cfg: cfg}
	v.SetKeys(nil)
	return v
}

// SetKeys replaces the key set (nil: none, every token refused) and forgets every token
// verified so far.
func (v *Verifier) SetKeys(ks *KeySet) {
	st := &state{keys: ks}
	if v.cfg.CacheSize > 0 {
		st.cache = newCache(v.cfg.CacheSize)
	}
	v.state.Store(st)
}

// LoadFile reads a JSON Web Key Set from path, as ParseKeySet wants it, and makes it the
// key set. On any error the keys in use stay as they were, so a server that reloads on
// SIGHUP can log the error and go on.
func (v *Verifier) LoadFile(path string) error {
	data, err := os.ReadFile(path)
	if err != nil {
		return err
	}
	ks, err := ParseKeySet(data)
	if err != nil {
		return fmt.Errorf("%s: %w", path, err)
	}
	v.SetKeys(ks)
	return nil
}

// Verify checks tok, in the order the package comment gives, and returns its claims. Every
// refusal is an Error, which satisfies errors.Is(err, ErrInvalid); its message never holds
// any part of tok.
func (v *Verifier) Verify(tok string) (Claims, error) {
	st := v.state.Load()
	if st.keys == nil {
		return Claims{}, errNoKeys
	}
	if len(tok) > MaxSize {
		return Claims{}, errTooLarge
	}
	now := v.cfg.Now()
	b := []byte(tok) // once, for the hash and the signature both
	var sum [sha256.Size]byte
	if st.cache != nil {
		sum = sha256.Sum256(b)
		if c, ok := st.cache.get(sum); ok {
			if err := v.checkTimes(c, now); err != nil {
				st.cache.remove(sum)
				return Claims{}, err
			}
			return c.clone(), nil
		}
	}
	c, err := v.verify(st.keys, b, now)
	if err != nil {
		return Claims{}, err
	}
	if st.cache != nil {
		st.cache.put(sum, c)
		c = c.clone() // the caller may change its Scopes; the cached copy must not change
	}
	return c, nil
}

// verify is Verify without the cache: steps 2 to 5.
func (v *Verifier) verify(ks *KeySet, tok []byte, now time.Time) (Claims, error) {
	// 2. Structure. One pass over the bytes finds the dots and refuses anything outside
	// the base64url alphabet; the strict decoder then refuses non-canonical trailing bits.
	dot1, dot2 := -1, -1
	for i, c := range tok {
		switch {
		case c == '.' && dot1 < 0:
			dot1 = i
		case c == '.' && dot2 < 0:
			dot2 = i
		case c == '.':
			return Claims{}, errSegments
		case !isB64Char(c):
			return Claims{}, errBase64
		}
	}
	// An empty header or payload can never be valid; an empty signature is left for the
	// signature check to refuse.
	if dot2 < 0 || dot1 == 0 || dot2 == dot1+1 {
		return Claims{}, errSegments
	}
	header, ok1 := decode(tok[:dot1])
	payload, ok2 := decode(tok[dot1+1 : dot2])
	sig, ok3 := decode(tok[dot2+1:])
	if !ok1 || !ok2 || !ok3 {
		return Claims{}, errBase64
	}

	// 3. Header.
	k, err := checkHeader(ks, header)
	if err != nil {
		return Claims{}, err
	}

	// 4. Signature, over the bytes as they came: re-encoding the decoded header would
	// verify something other than what was signed.
	if !k.verify(tok[:dot2], sig) {
		return Claims{}, errSignature
	}

	// 5. Claims.
	return v.checkClaims(payload, now)
}

func decode(src []byte) ([]byte, bool) {
	dst := make([]byte, b64.DecodedLen(len(src)))
	n, err := b64.Decode(dst, src)
	return dst[:n], err == nil
}

// checkHeader checks the JOSE header and returns the key it names.
func checkHeader(ks *KeySet, data []byte) (*key, error) {
	h, ok := parseObject(data)
	if !ok {
		return nil, errHeader
	}
	// crit lists extensions the recipient must understand; we understand none, and
	// ignoring it would accept tokens meant to be refused (RFC 7515 §4.1.11).
	if _, ok := h["crit"]; ok {
		return nil, errCrit
	}
	for _, f := range forbidden {
		if _, ok := h[f.name]; ok {
			return nil, f.err
		}
	}
	if typ, present, ok := h.str("typ"); present &&
		(!ok || !strings.EqualFold(typ, "JWT") && !strings.EqualFold(typ, "at+jwt")) {
		return nil, errTyp
	}
	// none in any spelling, a missing alg and a non-string one all end here.
	alg, _, ok := h.str("alg")
	if !ok || alg != EdDSA && alg != HS256 {
		return nil, errAlg
	}
	kid, present, ok := h.str("kid")
	switch {
	case !present:
		return nil, errMissingKID
	case !ok:
		return nil, errBadKID
	}
	k := ks.keys[kid]
	if k == nil {
		return nil, errUnknownKID
	}
	if alg != k.alg {
		return nil, errAlgMismatch
	}
	return k, nil
}

// forbidden are header members that carry a key or say where to fetch one. Keys come
// from the configured set only: a key the token brings along proves nothing (RFC 8725
// §3.10).
var forbidden = []struct {
	name string
	err  Error
}{
	{"jwk", errHeaderJWK},
	{"jku", errHeaderJKU},
	{"x5u", errHeaderX5U},
	{"x5c", errHeaderX5C},
}

// verify reports whether sig is k's signature of msg. The length checks come first:
// ed25519.Verify panics on a wrong-length key (refused at parse) and a short signature is
// simply not one.
func (k *key) verify(msg, sig []byte) bool {
	switch k.alg {
	case EdDSA:
		return len(sig) == ed25519.SignatureSize && len(k.ed) == ed25519.PublicKeySize &&
			ed25519.Verify(k.ed, msg, sig)
	case HS256:
		if len(sig) != sha256.Size {
			return false
		}
		mac := hmac.New(sha256.New, k.hmac)
		mac.Write(msg)
		return hmac.Equal(mac.Sum(nil), sig) // constant time: no timing oracle for forging
	}
	return false
}
