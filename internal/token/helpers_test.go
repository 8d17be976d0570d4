package token

import (
	"crypto/ed25519"
	"crypto/hmac"
	"crypto/sha256"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// The test keys are fixed, so every token a test builds is the same on every run.
var (
	testNow    = time.Unix(1_800_000_000, 0)
	edPriv     = ed25519.NewKeyFromSeed([]byte("ed25519 seed for the token tests"))
	edPub      = edPriv.Public().(ed25519.PublicKey)
	otherPriv  = ed25519.NewKeyFromSeed([]byte("a different seed, never in a set"))
	hmacSecret = []byte("an HS256 secret of 32+ bytes for ci")
)

const (
	edKID      = "2026-12"
	hsKID      = "ci"
	testIssuer = "https://auth.finonex.test"
	// leak is put into attacker-chosen places of refused tokens; no error may show it.
	leak = "LEAKME"
)

// testSet is a verification set with the Ed25519 key and the HS256 secret.
var testSet = fmt.Sprintf(`{"keys":[
	{"kty":"OKP","crv":"Ed25519","kid":%q,"alg":"EdDSA","x":%q},
	{"kty":"oct","kid":%q,"alg":"HS256","k":%q}]}`,
	edKID, b64.EncodeToString(edPub), hsKID, b64.EncodeToString(hmacSecret))

func enc(s string) string { return b64.EncodeToString([]byte(s)) }

// A signFunc signs a token's signing input.
type signFunc func(input string) []byte

func edSign(input string) []byte { return ed25519.Sign(edPriv, []byte(input)) }

func otherSign(input string) []byte { return ed25519.Sign(otherPriv, []byte(input)) }

func hsSignWith(secret []byte) signFunc {
	return func(input string) []byte {
		mac := hmac.New(sha256.New, secret)
		mac.Write([]byte(input))
		return mac.Sum(nil)
	}
}

var hsSign = hsSignWith(hmacSecret)

// mk builds a token from a literal header and payload, signed by sign.
func mk(header, payload string, sign signFunc) string {
	input := enc(header) + "." + enc(payload)
	return input + "." + b64.EncodeToString(sign(input))
}

const (
	edHeader = `{"alg":"EdDSA","kid":"2026-12","typ":"JWT"}`
	hsHeader = `{"alg":"HS256","kid":"ci","typ":"JWT"}`
)

// claimNames is the order payload writes its members in.
var claimNames = []string{"sub", "scope", "aud", "iss", "iat", "exp"}

// payload returns good claims for testNow, with overrides: pairs of a member name and its
// raw JSON value, an empty value dropping the member.
func payload(overrides ...string) string {
	vals := map[string]string{
		"sub":   `"user1"`,
		"scope": `"events:write revenue:read"`,
		"aud":   `"finonex"`,
		"iss":   `"` + testIssuer + `"`,
		"iat":   fmt.Sprint(testNow.Unix()),
		"exp":   fmt.Sprint(testNow.Add(time.Hour).Unix()),
	}
	names := claimNames
	for i := 0; i+1 < len(overrides); i += 2 {
		if _, ok := vals[overrides[i]]; !ok {
			names = append(names[:len(names):len(names)], overrides[i])
		}
		vals[overrides[i]] = overrides[i+1]
	}
	var b strings.Builder
	b.WriteString("{")
	for _, n := range names {
		if vals[n] == "" {
			continue
		}
		if b.Len() > 1 {
			b.WriteString(",")
		}
		fmt.Fprintf(&b, "%q:%s", n, vals[n])
	}
	b.WriteString("}")
	return b.String()
}

// at returns the seconds since the epoch of testNow+d as a JSON number.
func at(d time.Duration) string {
	return fmt.Sprint(float64(testNow.Add(d).UnixNano()) / 1e9)
}

func mustKeySet(t testing.TB, data string) *KeySet {
	t.Helper()
	ks, err := ParseKeySet([]byte(data))
	if err != nil {
		t.Fatalf("ParseKeySet(%s) = %v", data, err)
	}
	return ks
}

// newTestVerifier returns a Verifier over testSet at testNow, expecting testIssuer unless
// cfg says otherwise.
func newTestVerifier(t testing.TB, cfg Config) *Verifier {
	t.Helper()
	if cfg.Issuer == "" {
		cfg.Issuer = testIssuer
	}
	if cfg.Now == nil {
		cfg.Now = func() time.Time { return testNow }
	}
	v := NewVerifier(cfg)
	v.SetKeys(mustKeySet(t, testSet))
	return v
}

// knownReasons is every Error.Reason Verify may give.
var knownReasons = func() map[string]bool {
	m := make(map[string]bool)
	for _, e := range []Error{
		errNoKeys, errTooLarge, errSegments, errBase64, errHeader, errCrit, errHeaderJWK,
		errHeaderJKU, errHeaderX5U, errHeaderX5C, errTyp, errAlg, errMissingKID, errBadKID,
		errUnknownKID, errAlgMismatch, errSignature, errPayload, errMissingExp, errBadExp,
		errBadNbf, errBadIat, errExpired, errNotYetValid, errIatFuture, errBadIss,
		errMissingIss, errWrongIssuer, errMissingAud, errBadAud, errWrongAud, errMissingSub,
		errBadSub, errBadScope,
	} {
		m[e.Reason] = true
	}
	return m
}()

// checkRefusal reports what is wrong with err as Verify's refusal of tok, or "" when
// nothing is: it must be an ErrInvalid, an Error with a known reason, and its message
// exactly "token: " and that reason, so that no byte of the token can be in it.
func checkRefusal(err error, tok string) string {
	var e Error
	switch {
	case !errors.Is(err, ErrInvalid):
		return "not an ErrInvalid"
	case !errors.As(err, &e):
		return "not an Error"
	case !knownReasons[e.Reason]:
		return fmt.Sprintf("unknown reason %q", e.Reason)
	case err.Error() != "token: "+e.Reason:
		return fmt.Sprintf("message %q is not %q", err.Error(), "token: "+e.Reason)
	case strings.Contains(err.Error(), leak):
		return "message shows part of the token"
	case len(tok) >= 8 && strings.Contains(err.Error(), tok):
		return "message shows the token"
	}
	return ""
}

// verifyCase runs one table row: tok must be accepted when want is "", else refused for
// want.
func verifyCase(t *testing.T, v *Verifier, name, tok, want string) {
	t.Helper()
	_, err := v.Verify(tok)
	if want == "" {
		if err != nil {
			t.Errorf("Verify(%s) = %v; want accepted", name, err)
		}
		return
	}
	if err == nil {
		t.Errorf("Verify(%s) = nil; want %q", name, "token: "+want)
		return
	}
	if bad := checkRefusal(err, tok); bad != "" {
		t.Errorf("Verify(%s) = %v: %s", name, err, bad)
	}
	var e Error
	if errors.As(err, &e) && e.Reason != want {
		t.Errorf("Verify(%s) = %v; want %q", name, err, "token: "+want)
	}
}

func writeFile(t *testing.T, dir, name, data string) string {
	t.Helper()
	path := filepath.Join(dir, name)
	if err := os.WriteFile(path, []byte(data), 0o644); err != nil {
		t.Fatal(err)
	}
	return path
}
