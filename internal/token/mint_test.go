package token

import (
	"bytes"
	"encoding/json"
	"slices"
	"strings"
	"testing"
	"time"
)

// fixedRand is a reader of the same byte, so that generated keys are the same every run.
func fixedRand(b byte) *bytes.Reader { return bytes.NewReader(bytes.Repeat([]byte{b}, 64)) }

func TestGenerateMintVerify(t *testing.T) {
	public, private, err := GenerateEd25519("2027-01", fixedRand(1))
	if err != nil {
		t.Fatalf("GenerateEd25519 = %v", err)
	}
	again, _, _ := GenerateEd25519("2027-01", fixedRand(1))
	if !bytes.Equal(public, again) {
		t.Errorf("GenerateEd25519 gave two keys from the same random bytes")
	}
	if bytes.Contains(public, []byte(`"d"`)) {
		t.Errorf("GenerateEd25519 public = %s; has d", public)
	}
	ks, err := ParseKeySet(public)
	if err != nil {
		t.Fatalf("ParseKeySet(public) = %v", err)
	}
	signer, err := ParseSigner(private)
	if err != nil {
		t.Fatalf("ParseSigner(private) = %v", err)
	}
	if signer.KID() != "2027-01" {
		t.Errorf("KID() = %q; want 2027-01", signer.KID())
	}
	g := Grant{Subject: "svc-ingest", Scopes: []string{"events:write", "ops:read"}, Issuer: testIssuer, TTL: time.Hour}
	tok, err := signer.Mint(g, testNow)
	if err != nil {
		t.Fatalf("Mint(%+v) = %v", g, err)
	}

	seg := strings.Split(tok, ".")
	header, _ := b64.DecodeString(seg[0])
	if want := `{"alg":"EdDSA","kid":"2027-01","typ":"JWT"}`; string(header) != want {
		t.Errorf("Mint header = %s; want %s", header, want)
	}
	var claims map[string]any
	p, _ := b64.DecodeString(seg[1])
	if err := json.Unmarshal(p, &claims); err != nil {
		t.Fatalf("Mint payload %s: %v", p, err)
	}
	want := map[string]any{"sub": "svc-ingest", "scope": "events:write ops:read", "aud": "finonex",
		"iss": testIssuer, "iat": float64(testNow.Unix()), "exp": float64(testNow.Add(time.Hour).Unix())}
	if len(claims) != len(want) {
		t.Errorf("Mint payload = %s; want the members of %v", p, want)
	}
	for k, w := range want {
		if claims[k] != w {
			t.Errorf("Mint payload %s = %v; want %v", k, claims[k], w)
		}
	}

	v := NewVerifier(Config{Issuer: testIssuer, Now: func() time.Time { return testNow.Add(30 * time.Minute) }})
	v.SetKeys(ks)
	c, err := v.Verify(tok)
	if err != nil {
		t.Fatalf("Verify(minted) = %v", err)
	}
	if c.Subject != "svc-ingest" || !slices.Equal(c.Scopes, g.Scopes) || !c.Expires.Equal(testNow.Add(time.Hour)) {
		t.Errorf("Verify(minted) = %+v; want %+v", c, g)
	}
}

// TestMintHS256 uses one oct JWK on both sides.
func TestMintHS256(t *testing.T) {
	jwk := `{"kty":"oct","kid":"ci","alg":"HS256","k":"` + b64.EncodeToString(hmacSecret) + `"}`
	signer, err := ParseSigner([]byte(jwk))
	if err != nil {
		t.Fatalf("ParseSigner(oct) = %v", err)
	}
	nbf := testNow.Add(time.Minute)
	tok, err := signer.Mint(Grant{Subject: "ci", Audience: "api", TTL: time.Hour, NotBefore: nbf}, testNow)
	if err != nil {
		t.Fatalf("Mint = %v", err)
	}
	if want := mk(hsHeader, `{"sub":"ci","aud":"api","iat":1800000000,"nbf":1800000060,"exp":1800003600}`, hsSign); tok != want {
		t.Errorf("Mint = %s; want %s", tok, want)
	}
	v := NewVerifier(Config{Audience: "api", Now: func() time.Time { return testNow }})
	v.SetKeys(mustKeySet(t, `{"keys":[`+jwk+`]}`))
	c, err := v.Verify(tok)
	if err != nil || c.Subject != "ci" || len(c.Scopes) != 0 || !c.NotBefore.Equal(nbf) {
		t.Errorf("Verify(minted) = %+v, %v; want sub ci, no scopes, nbf %v", c, err, nbf)
	}
}

func TestMintRefuses(t *testing.T) {
	signer, err := ParseSigner([]byte(`{"kty":"oct","kid":"ci","alg":"HS256","k":"` + b64.EncodeToString(hmacSecret) + `"}`))
	if err != nil {
		t.Fatal(err)
	}
	for _, tt := range []struct {
		name string
		g    Grant
		want string
	}{
		{"no subject", Grant{TTL: time.Hour}, "empty subject"},
		{"zero ttl", Grant{Subject: "a"}, "ttl must be positive"},
		{"negative ttl", Grant{Subject: "a", TTL: -time.Hour}, "ttl must be positive"},
		{"empty scope", Grant{Subject: "a", TTL: time.Hour, Scopes: []string{""}}, "want one non-empty word"},
		{"scope with a space", Grant{Subject: "a", TTL: time.Hour, Scopes: []string{"ops:read events:write"}}, "want one non-empty word"},
	} {
		if tok, err := signer.Mint(tt.g, testNow); err == nil || !strings.Contains(err.Error(), tt.want) {
			t.Errorf("Mint(%s) = %q, %v; want an error with %q", tt.name, tok, err, tt.want)
		}
	}
}

func TestParseSignerRefuses(t *testing.T) {
	_, private, err := GenerateEd25519("k", fixedRand(2))
	if err != nil {
		t.Fatal(err)
	}
	var j map[string]string
	if err := json.Unmarshal(private, &j); err != nil {
		t.Fatal(err)
	}
	with := func(k, v string) string {
		m := map[string]string{}
		for k, v := range j {
			m[k] = v
		}
		if v == "" {
			delete(m, k)
		} else {
			m[k] = v
		}
		b, _ := json.Marshal(m)
		return string(b)
	}
	for _, tt := range []struct{ name, data, want string }{
		{"a key set", testSet, "this is a key set"},
		{"no d", with("d", ""), `token private key (kid "k"): no private part (d)`},
		{"x of another key", with("x", b64.EncodeToString(edPub)), "x is not the public key of d"},
		{"d too short", with("d", b64.EncodeToString(make([]byte, 31))), "d is 31 bytes, want 32"},
		{"d padded", with("d", j["d"]+"="), "d is not unpadded base64url"},
		{"not JSON", "d=1", "token private key: not a JSON object"},
	} {
		_, err := ParseSigner([]byte(tt.data))
		if err == nil || !strings.Contains(err.Error(), tt.want) {
			t.Errorf("ParseSigner(%s) = %v; want an error with %q", tt.name, err, tt.want)
		} else if strings.Contains(err.Error(), j["d"]) {
			t.Errorf("ParseSigner(%s) = %v; shows the private key", tt.name, err)
		}
	}
}

func TestGenerateEd25519Refuses(t *testing.T) {
	if _, _, err := GenerateEd25519("", fixedRand(1)); err == nil {
		t.Errorf("GenerateEd25519(empty kid) = nil; want an error")
	}
	if _, _, err := GenerateEd25519("k", strings.NewReader("short")); err == nil {
		t.Errorf("GenerateEd25519(5 random bytes) = nil; want an error")
	}
}

func TestMergeKeySets(t *testing.T) {
	a, _, _ := GenerateEd25519("a", fixedRand(1))
	b, _, _ := GenerateEd25519("b", fixedRand(2))
	ab, err := MergeKeySets(a, b)
	if err != nil {
		t.Fatalf("MergeKeySets(a, b) = %v", err)
	}
	abc, err := MergeKeySets(ab, []byte(testSet))
	if err != nil {
		t.Fatalf("MergeKeySets(ab, testSet) = %v", err)
	}
	if got, want := mustKeySet(t, string(abc)).KIDs(), []string{edKID, "a", "b", hsKID}; !slices.Equal(got, want) {
		t.Errorf("MergeKeySets(...).KIDs() = %q; want %q", got, want)
	}
	a2, _, _ := GenerateEd25519("a", fixedRand(3))
	if _, err := MergeKeySets(ab, a2); err == nil || !strings.Contains(err.Error(), `key 2 (kid "a"): duplicate kid`) {
		t.Errorf("MergeKeySets(ab, another a) = %v; want a duplicate kid error", err)
	}
	if _, err := MergeKeySets(ab, []byte(`{"keys":[]}`)); err == nil {
		t.Errorf("MergeKeySets(ab, empty set) = nil; want an error")
	}
}
