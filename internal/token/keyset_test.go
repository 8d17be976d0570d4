package token

import (
	"crypto/ed25519"
	"fmt"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"
)

func TestParseKeySet(t *testing.T) {
	ks := mustKeySet(t, testSet)
	if got, want := ks.KIDs(), []string{edKID, hsKID}; !slices.Equal(got, want) {
		t.Errorf("ParseKeySet(testSet).KIDs() = %q; want %q", got, want)
	}
	// Members a verifier does not use are ignored (RFC 7517 §4), and use may be sig.
	mustKeySet(t, `{"keys":[{"kty":"oct","kid":"a","alg":"HS256","use":"sig","key_ops":["verify"],"k":"`+
		b64.EncodeToString(hmacSecret)+`"}],"note":"x"}`)
}

func TestParseKeySetRefuses(t *testing.T) {
	x := b64.EncodeToString(edPub)
	k := b64.EncodeToString(hmacSecret)
	ed := func(members string) string {
		return `{"keys":[{"kty":"OKP","crv":"Ed25519","kid":"first","alg":"EdDSA","x":"` + x + `"},{` + members + `}]}`
	}
	tests := []struct {
		name, set string
		want      string // in the error
	}{
		{"not JSON", `keys`, "want one JSON object"},
		{"an array", `[` + testSet + `]`, "want one JSON object"},
		{"trailing bytes", testSet + `x`, "want one JSON object"},
		{"keys twice", `{"keys":[],"keys":[]}`, "want one JSON object"},
		{"a single key", `{"kty":"OKP","crv":"Ed25519","kid":"a","alg":"EdDSA","x":"` + x + `"}`, `no "keys" member`},
		{"keys not an array", `{"keys":{}}`, `"keys" is not an array`},
		{"no keys", `{"keys":[]}`, "the set has no keys"},
		{"key not an object", `{"keys":["x"]}`, "key 0: not a JSON object"},
		{"key member twice", ed(`"kty":"oct","kty":"OKP","crv":"Ed25519","kid":"a","alg":"EdDSA","x":"` + x + `"`), "key 1: not a JSON object"},
		{"missing kid", ed(`"kty":"OKP","crv":"Ed25519","alg":"EdDSA","x":"` + x + `"`), "key 1: missing kid"},
		{"empty kid", ed(`"kty":"OKP","crv":"Ed25519","kid":"","alg":"EdDSA","x":"` + x + `"`), "key 1: kid is not a non-empty string"},
		{"kid number", ed(`"kty":"OKP","crv":"Ed25519","kid":1,"alg":"EdDSA","x":"` + x + `"`), "key 1: kid is not a non-empty string"},
		{"duplicate kid", ed(`"kty":"oct","kid":"first","alg":"HS256","k":"` + k + `"`), `key 1 (kid "first"): duplicate kid`},
		{"missing kty", ed(`"crv":"Ed25519","kid":"a","alg":"EdDSA","x":"` + x + `"`), `key 1 (kid "a"): missing kty`},
		{"kty RSA", ed(`"kty":"RSA","kid":"a","alg":"RS256","n":"AQAB","e":"AQAB"`), `key 1 (kid "a"): unsupported kty "RSA"`},
		{"kty EC", ed(`"kty":"EC","crv":"P-256","kid":"a","alg":"ES256"`), `key 1 (kid "a"): unsupported kty "EC"`},
		{"kty okp", ed(`"kty":"okp","crv":"Ed25519","kid":"a","alg":"EdDSA","x":"` + x + `"`), `key 1 (kid "a"): unsupported kty "okp"`},
		{"crv X25519", ed(`"kty":"OKP","crv":"X25519","kid":"a","alg":"EdDSA","x":"` + x + `"`), `key 1 (kid "a"): unsupported crv "X25519"`},
		{"missing crv", ed(`"kty":"OKP","kid":"a","alg":"EdDSA","x":"` + x + `"`), `key 1 (kid "a"): missing crv`},
		{"missing alg", ed(`"kty":"OKP","crv":"Ed25519","kid":"a","x":"` + x + `"`), `key 1 (kid "a"): missing alg`},
		{"alg ES256 on Ed25519", ed(`"kty":"OKP","crv":"Ed25519","kid":"a","alg":"ES256","x":"` + x + `"`), `key 1 (kid "a"): alg is "ES256", want EdDSA`},
		{"alg HS256 on Ed25519", ed(`"kty":"OKP","crv":"Ed25519","kid":"a","alg":"HS256","x":"` + x + `"`), `key 1 (kid "a"): alg is "HS256", want EdDSA`},
		{"alg HS512 on oct", ed(`"kty":"oct","kid":"a","alg":"HS512","k":"` + k + `"`), `key 1 (kid "a"): alg is "HS512", want HS256`},
		{"alg number", ed(`"kty":"oct","kid":"a","alg":256,"k":"` + k + `"`), `key 1 (kid "a"): alg is not a string`},
		{"use enc", ed(`"kty":"OKP","crv":"Ed25519","kid":"a","alg":"EdDSA","use":"enc","x":"` + x + `"`), `key 1 (kid "a"): use is "enc", want sig`},
		{"missing x", ed(`"kty":"OKP","crv":"Ed25519","kid":"a","alg":"EdDSA"`), `key 1 (kid "a"): missing x`},
		{"x padded", ed(`"kty":"OKP","crv":"Ed25519","kid":"a","alg":"EdDSA","x":"` + x + `="`), `key 1 (kid "a"): x is not unpadded base64url`},
		{"x standard base64", ed(`"kty":"OKP","crv":"Ed25519","kid":"a","alg":"EdDSA","x":"` + strings.Repeat("+/", 21) + `A"`), `key 1 (kid "a"): x is not unpadded base64url`},
		{"x with a newline", ed(`"kty":"OKP","crv":"Ed25519","kid":"a","alg":"EdDSA","x":"` + x[:10] + `\n` + x[10:] + `"`), `key 1 (kid "a"): x is not unpadded base64url`},
		{"x non-canonical", ed(`"kty":"OKP","crv":"Ed25519","kid":"a","alg":"EdDSA","x":"` + nonCanonical(x) + `"`), `key 1 (kid "a"): x is not unpadded base64url`},
		{"x 31 bytes", ed(`"kty":"OKP","crv":"Ed25519","kid":"a","alg":"EdDSA","x":"` + b64.EncodeToString(edPub[:31]) + `"`), `key 1 (kid "a"): x is 31 bytes, want 32`},
		{"x 33 bytes", ed(`"kty":"OKP","crv":"Ed25519","kid":"a","alg":"EdDSA","x":"` + b64.EncodeToString(append(edPub[:32:32], 0)) + `"`), `key 1 (kid "a"): x is 33 bytes, want 32`},
		{"x number", ed(`"kty":"OKP","crv":"Ed25519","kid":"a","alg":"EdDSA","x":1`), `key 1 (kid "a"): x is not a string`},
		{"private part", ed(`"kty":"OKP","crv":"Ed25519","kid":"a","alg":"EdDSA","x":"` + x + `","d":"` + b64.EncodeToString(edPriv.Seed()) + `"`), `key 1 (kid "a"): has a private part (d)`},
		{"missing k", ed(`"kty":"oct","kid":"a","alg":"HS256"`), `key 1 (kid "a"): missing k`},
		{"k 31 bytes", ed(`"kty":"oct","kid":"a","alg":"HS256","k":"` + b64.EncodeToString(hmacSecret[:31]) + `"`), `key 1 (kid "a"): k is 31 bytes, want at least 32`},
		{"k padded", ed(`"kty":"oct","kid":"a","alg":"HS256","k":"` + b64.EncodeToString(hmacSecret[:32]) + `=="`), `key 1 (kid "a"): k is not unpadded base64url`},
		{"oct with d", ed(`"kty":"oct","kid":"a","alg":"HS256","k":"` + k + `","d":"AA"`), `key 1 (kid "a"): an oct key has no d member`},
	}
	for _, tt := range tests {
		_, err := ParseKeySet([]byte(tt.set))
		if err == nil {
			t.Errorf("ParseKeySet(%s) = nil; want an error with %q", tt.name, tt.want)
			continue
		}
		msg := err.Error()
		if !strings.HasPrefix(msg, "token keys: ") || !strings.Contains(msg, tt.want) {
			t.Errorf("ParseKeySet(%s) = %v; want %q", tt.name, err, "token keys: ..."+tt.want)
		}
		// Key material never goes into an error.
		for _, secret := range []string{k, b64.EncodeToString(edPriv.Seed()), b64.EncodeToString(hmacSecret[:31])} {
			if strings.Contains(msg, secret) {
				t.Errorf("ParseKeySet(%s) = %v; shows key material", tt.name, err)
			}
		}
	}
}

// TestLoadFileRotation rotates from key A to key B through files, as a server reloading
// on SIGHUP would.
func TestLoadFileRotation(t *testing.T) {
	dir := t.TempDir()
	privB := ed25519.NewKeyFromSeed([]byte("seed of key B for rotation tests"))
	jwkA := fmt.Sprintf(`{"kty":"OKP","crv":"Ed25519","kid":"A","alg":"EdDSA","x":%q}`, b64.EncodeToString(edPub))
	jwkB := fmt.Sprintf(`{"kty":"OKP","crv":"Ed25519","kid":"B","alg":"EdDSA","x":%q}`, b64.EncodeToString(privB.Public().(ed25519.PublicKey)))
	onlyA := writeFile(t, dir, "a.json", `{"keys":[`+jwkA+`]}`)
	both := writeFile(t, dir, "ab.json", `{"keys":[`+jwkA+`,`+jwkB+`]}`)
	onlyB := writeFile(t, dir, "b.json", `{"keys":[`+jwkB+`]}`)
	broken := writeFile(t, dir, "broken.json", `{"keys":[`+jwkB+`,`)

	tokA := mk(`{"alg":"EdDSA","kid":"A"}`, payload(), edSign)
	tokB := mk(`{"alg":"EdDSA","kid":"B"}`, payload(), func(in string) []byte { return ed25519.Sign(privB, []byte(in)) })
	v := newTestVerifier(t, Config{})

	steps := []struct {
		file    string
		loadErr string // in LoadFile's error; "" for none
		a, b    string // Verify's reason for tokA, tokB; "" for accepted
	}{
		{onlyA, "", "", "unknown kid"},
		{both, "", "", ""},
		{onlyB, "", "unknown kid", ""},
		{broken, "broken.json: token keys: want one JSON object", "unknown kid", ""},
		{filepath.Join(dir, "missing.json"), "no such file", "unknown kid", ""},
		{both, "", "", ""},
	}
	for i, s := range steps {
		err := v.LoadFile(s.file)
		switch {
		case s.loadErr == "" && err != nil:
			t.Fatalf("step %d: LoadFile(%s) = %v; want nil", i, filepath.Base(s.file), err)
		case s.loadErr != "" && (err == nil || !strings.Contains(err.Error(), s.loadErr)):
			t.Fatalf("step %d: LoadFile(%s) = %v; want %q", i, filepath.Base(s.file), err, s.loadErr)
		}
		name := fmt.Sprintf("step %d after %s", i, filepath.Base(s.file))
		// Twice: the second time comes from the cache, which must agree.
		for range 2 {
			verifyCase(t, v, name+": token of A", tokA, s.a)
			verifyCase(t, v, name+": token of B", tokB, s.b)
		}
	}
}

func TestLoadFileRefusesPrivateKey(t *testing.T) {
	_, private, err := GenerateEd25519("k1", strings.NewReader(strings.Repeat("r", 32)))
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	v := NewVerifier(Config{Now: func() time.Time { return testNow }})
	set := `{"keys":[` + string(private) + `]}`
	if err := v.LoadFile(writeFile(t, dir, "set.json", set)); err == nil || !strings.Contains(err.Error(), "private part") {
		t.Errorf("LoadFile(a set with a private key) = %v; want an error about the private part", err)
	}
	if err := v.LoadFile(writeFile(t, dir, "private.json", string(private))); err == nil || !strings.Contains(err.Error(), `no "keys" member`) {
		t.Errorf("LoadFile(a private key file) = %v; want an error saying it is not a set", err)
	}
}
