package token

import (
	"crypto/ed25519"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
)

// The algorithms a key may be bound to.
const (
	EdDSA = "EdDSA" // Ed25519 signatures (RFC 8037)
	HS256 = "HS256" // HMAC-SHA-256 with a shared secret (RFC 7518 §3.2)
)

// minHMACKey is the shortest HS256 secret accepted: RFC 7518 §3.2 asks for a key at least
// as long as the hash output.
const minHMACKey = 32

// b64 is the only base64 a token or a key may use: the URL alphabet, no padding, and zero
// trailing bits, so that each byte string has exactly one spelling.
var b64 = base64.RawURLEncoding.Strict()

// A KeySet is a parsed JSON Web Key Set (RFC 7517 §5) of verification keys, by kid. It is
// never changed once parsed, so one may be shared freely.
type KeySet struct {
	keys map[string]*key
}

// key is one verification key, bound to exactly one algorithm.
type key struct {
	alg  string
	ed   ed25519.PublicKey // EdDSA: exactly ed25519.PublicKeySize bytes, checked at parse
	hmac []byte            // HS256: at least minHMACKey bytes
}

// KIDs returns the key IDs in the set, sorted.
func (ks *KeySet) KIDs() []string {
	kids := make([]string, 0, len(ks.keys))
	for kid := range ks.keys {
		kids = append(kids, kid)
	}
	slices.Sort(kids)
	return kids
}

// ParseKeySet parses a JSON Web Key Set of verification keys, strictly: every key must
// have a kid unique in the set and an alg, and be either an Ed25519 public key
// ({"kty":"OKP","crv":"Ed25519","alg":"EdDSA","x":...}, x exactly 32 bytes) or an HS256
// secret ({"kty":"oct","alg":"HS256","k":...}, k at least 32 bytes). Anything else is an
// error naming the key's index and kid rather than a key silently skipped: a set that
// loads with a key missing would refuse tokens nobody expects it to refuse.
//
// A key with a private part (d) is refused: the private key belongs in its own file, and a
// verification set is handed to every server.
func ParseKeySet(data []byte) (*KeySet, error) {
	ks, err := parseKeySet(data)
	if err != nil {
		return nil, fmt.Errorf("token keys: %w", err)
	}
	return ks, nil
}

func parseKeySet(data []byte) (*KeySet, error) {
	raws, err := setKeys(data)
	if err != nil {
		return nil, err
	}
	ks := &KeySet{keys: make(map[string]*key, len(raws))}
	for i, raw := range raws {
		j, err := parseJWK(raw)
		if err == nil && j.d != nil {
			err = errors.New("has a private part (d): a verification set holds public keys only")
		}
		if err == nil && ks.keys[j.kid] != nil {
			err = errors.New("duplicate kid")
		}
		if err != nil {
			return nil, keyError(i, j.kid, err)
		}
		k := &key{alg: j.alg}
		if j.alg == EdDSA {
			k.ed = ed25519.PublicKey(j.x)
		} else {
			k.hmac = j.k
		}
		ks.keys[j.kid] = k
	}
	return ks, nil
}

// setKeys returns the members of a set's "keys" array, each still raw JSON.
func setKeys(data []byte) ([]json.RawMessage, error) {
	obj, ok := parseObject(data)
	if !ok {
		return nil, errors.New(`want one JSON object {"keys":[...]}`)
	}
	raw, ok := obj["keys"]
	if !ok {
		return nil, errors.New(`no "keys" member: want a JWK set {"keys":[...]}, not a single key`)
	}
	var raws []json.RawMessage
	if len(raw) == 0 || raw[0] != '[' || json.Unmarshal(raw, &raws) != nil {
		return nil, errors.New(`"keys" is not an array`)
	}
	if len(raws) == 0 {
		return nil, errors.New("the set has no keys")
	}
	return raws, nil
}

func keyError(i int, kid string, err error) error {
	if kid == "" {
		return fmt.Errorf("key %d: %w", i, err)
	}
	return fmt.Errorf("key %d (kid %q): %w", i, kid, err)
}

// MergeKeySets returns a key set holding the keys of a and then those of b, for adding a
// new key to the set the servers load (rotation). Both must parse as ParseKeySet wants,
// and so must the result: a kid in both is an error.
func MergeKeySets(a, b []byte) ([]byte, error) {
	var keys []json.RawMessage
	for _, set := range [][]byte{a, b} {
		if _, err := ParseKeySet(set); err != nil {
			return nil, err
		}
		raws, _ := setKeys(set)
		keys = append(keys, raws...)
	}
	out, err := json.MarshalIndent(map[string]any{"keys": keys}, "", "  ")
	if err != nil {
		return nil, fmt.Errorf("token keys: %w", err)
	}
	if _, err := ParseKeySet(out); err != nil {
		return nil, err
	}
	return out, nil
}

// jwk is one JSON Web Key, checked for shape but not for its role (public or private).
type jwk struct {
	kid, alg string
	x, d, k  []byte // decoded; nil when absent
}

// parseJWK checks one key's members. Members it does not know are ignored, as RFC 7517 §4
// requires; those it knows must be right. On error the returned jwk still has the kid
// when one was read, so the error can name it.
func parseJWK(raw json.RawMessage) (jwk, error) {
	var j jwk
	obj, ok := parseObject(raw)
	if !ok {
		return j, errors.New("not a JSON object (or a member given twice)")
	}
	kid, present, ok := obj.str("kid")
	switch {
	case !present:
		return j, errors.New("missing kid")
	case !ok || kid == "":
		return j, errors.New("kid is not a non-empty string")
	}
	j.kid = kid
	kty, err := member(obj, "kty", true)
	if err != nil {
		return j, err
	}
	alg, err := member(obj, "alg", true)
	if err != nil {
		return j, err
	}
	if use, err := member(obj, "use", false); err != nil {
		return j, err
	} else if use != "" && use != "sig" {
		return j, fmt.Errorf("use is %q, want sig", use)
	}
	j.alg = alg
	switch kty {
	case "OKP":
		crv, err := member(obj, "crv", true)
		if err != nil {
			return j, err
		}
		if crv != "Ed25519" {
			return j, fmt.Errorf("unsupported crv %q: want Ed25519", crv)
		}
		if alg != EdDSA {
			return j, fmt.Errorf("alg is %q, want EdDSA for an Ed25519 key", alg)
		}
		if j.x, err = bytesMember(obj, "x", true); err != nil {
			return j, err
		}
		if len(j.x) != ed25519.PublicKeySize {
			return j, fmt.Errorf("x is %d bytes, want %d", len(j.x), ed25519.PublicKeySize)
		}
		if j.d, err = bytesMember(obj, "d", false); err != nil {
			return j, err
		}
		if j.d != nil && len(j.d) != ed25519.SeedSize {
			return j, fmt.Errorf("d is %d bytes, want %d", len(j.d), ed25519.SeedSize)
		}
	case "oct":
		if alg != HS256 {
			return j, fmt.Errorf("alg is %q, want HS256 for an oct key", alg)
		}
		if j.k, err = bytesMember(obj, "k", true); err != nil {
			return j, err
		}
		if len(j.k) < minHMACKey {
			return j, fmt.Errorf("k is %d bytes, want at least %d", len(j.k), minHMACKey)
		}
		if _, present := obj["d"]; present {
			return j, errors.New("an oct key has no d member")
		}
	default:
		return j, fmt.Errorf("unsupported kty %q: want OKP (Ed25519) or oct (HS256)", kty)
	}
	return j, nil
}

// member returns the string member name; required says whether it may be absent.
func member(obj object, name string, required bool) (string, error) {
	s, present, ok := obj.str(name)
	switch {
	case !present && required:
		return "", fmt.Errorf("missing %s", name)
	case present && !ok:
		return "", fmt.Errorf("%s is not a string", name)
	}
	return s, nil
}

// bytesMember returns member name decoded from base64url. The decoder's error names only
// a byte offset, never key material.
func bytesMember(obj object, name string, required bool) ([]byte, error) {
	s, err := member(obj, name, required)
	if err != nil {
		return nil, err
	}
	if _, present := obj[name]; !present {
		return nil, nil
	}
	if !isBase64URL(s) {
		return nil, fmt.Errorf("%s is not unpadded base64url", name)
	}
	b, err := b64.DecodeString(s)
	if err != nil {
		return nil, fmt.Errorf("%s is not unpadded base64url: %w", name, err)
	}
	return b, nil
}

// isBase64URL reports whether s holds only the base64url alphabet. The decoder alone is
// not enough: even in strict mode it skips CR and LF.
func isBase64URL(s string) bool {
	for i := 0; i < len(s); i++ {
		if !isB64Char(s[i]) {
			return false
		}
	}
	return true
}

func isB64Char(c byte) bool {
	return 'A' <= c && c <= 'Z' || 'a' <= c && c <= 'z' || '0' <= c && c <= '9' || c == '-' || c == '_'
}
