package token

import (
	"encoding/json"
	"strings"
	"testing"
	"time"
)

// FuzzVerify mutates token strings. Verify must never panic, every refusal must be a
// proper Error that shows nothing of the token, and it may accept only a string this test
// itself minted: nothing else was signed by a configured key, and since each byte string
// has one base64url spelling and Ed25519 and HMAC signatures cannot be respelt, no other
// string can carry a valid signature.
func FuzzVerify(f *testing.F) {
	minted := make(map[string]bool)
	mint := func(tok string) {
		minted[tok] = true
		f.Add(tok)
	}
	for _, p := range []string{
		payload(),
		payload("aud", `["other","finonex"]`, "nbf", at(0)),
		payload("scope", "", "iat", ""),
		payload("exp", `1800003600.5`),
	} {
		mint(mk(edHeader, p, edSign))
		mint(mk(hsHeader, p, hsSign))
	}
	mint(mk(`{"alg":"EdDSA","kid":"2026-12","typ":"at+jwt"}`, payload(), edSign))

	// Near misses: each refused, for one reason or another.
	good := mk(edHeader, payload(), edSign)
	dot := strings.LastIndexByte(good, '.')
	for _, tok := range []string{
		"", ".", "..", "...", "a.b.c", good + ".", good + "=", good + "\n", nonCanonical(good), good[:dot+1],
		mk(`{"alg":"none","kid":"2026-12"}`, payload(), func(string) []byte { return nil }),
		mk(`{"alg":"HS256","kid":"2026-12"}`, payload(), hsSignWith(edPub)),
		mk(`{"alg":"EdDSA","kid":"2026-12","alg":"EdDSA"}`, payload(), edSign),
		mk(`{"alg":"EdDSA","kid":"2026-12","jku":"x"}`, payload(), edSign),
		mk(edHeader, payload("exp", at(-time.Hour)), edSign),
		mk(edHeader, payload("aud", `[1]`), edSign),
		mk(edHeader, payload()+" {}", edSign),
		mk(edHeader, payload(), otherSign),
	} {
		f.Add(tok)
	}

	v := newTestVerifier(f, Config{CacheSize: 64})
	f.Fuzz(func(t *testing.T, tok string) {
		c, err := v.Verify(tok)
		if err == nil {
			if !minted[tok] {
				t.Fatalf("Verify(%q) accepted a token no key signed: %+v", tok, c)
			}
			if c.Subject == "" {
				t.Fatalf("Verify(%q) accepted an empty subject", tok)
			}
			return
		}
		if bad := checkRefusal(err, tok); bad != "" {
			t.Fatalf("Verify(%q) = %v: %s", tok, err, bad)
		}
	})
}

// FuzzClaims signs whatever header and payload the fuzzer makes up, so that it reaches
// the JSON decoding FuzzVerify's mutations cannot get past the signature to. Whatever
// Verify accepts is checked against encoding/json's own reading of the same bytes.
func FuzzClaims(f *testing.F) {
	f.Add(edHeader, payload())
	f.Add(`{"alg":"EdDSA","kid":"2026-12","typ":"at+jwt"}`, payload("aud", `["x","finonex"]`, "nbf", at(0)))
	f.Add(`{"alg":"EdDSA","kid":"2026-12","kid":"2026-12"}`, payload())
	f.Add(edHeader, payload("exp", `"1800003600"`))
	f.Add(edHeader, payload("scope", `"a  b\tc"`, "sub", `"\u00e9"`))
	f.Add(edHeader, payload()+` `)
	v := newTestVerifier(f, Config{CacheSize: -1})
	f.Fuzz(func(t *testing.T, header, p string) {
		tok := mk(header, p, edSign)
		if len(tok) > MaxSize {
			return
		}
		c, err := v.Verify(tok)
		if err != nil {
			if bad := checkRefusal(err, tok); bad != "" {
				t.Fatalf("Verify(%q, %q) = %v: %s", header, p, err, bad)
			}
			return
		}
		var h, claims map[string]any
		if json.Unmarshal([]byte(header), &h) != nil || json.Unmarshal([]byte(p), &claims) != nil {
			t.Fatalf("Verify(%q, %q) accepted what encoding/json refuses", header, p)
		}
		if h["alg"] != "EdDSA" || h["kid"] != edKID {
			t.Fatalf("Verify(%q, %q) accepted header %v", header, p, h)
		}
		exp, ok := claims["exp"].(float64)
		if !ok || float64(testNow.Add(-DefaultLeeway).Unix()) >= exp {
			t.Fatalf("Verify(%q, %q) accepted exp %v", header, p, claims["exp"])
		}
		if sub, _ := claims["sub"].(string); sub == "" || sub != c.Subject {
			t.Fatalf("Verify(%q, %q) = sub %q; encoding/json reads %v", header, p, c.Subject, claims["sub"])
		}
		if claims["iss"] != testIssuer {
			t.Fatalf("Verify(%q, %q) accepted iss %v", header, p, claims["iss"])
		}
		scope, _ := claims["scope"].(string)
		if got := strings.Join(c.Scopes, " "); got != strings.Join(strings.FieldsFunc(scope, func(r rune) bool { return r == ' ' }), " ") {
			t.Fatalf("Verify(%q, %q) = scopes %q; scope is %q", header, p, c.Scopes, scope)
		}
	})
}
