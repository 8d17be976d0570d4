package token

import (
	"errors"
	"slices"
	"strings"
	"testing"
	"time"
)

const alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"

// nonCanonical respells the last character of tok so that its segment decodes to the same
// bytes with a trailing bit set: a spelling only a lax decoder accepts.
func nonCanonical(tok string) string {
	i := strings.IndexByte(alphabet, tok[len(tok)-1])
	return tok[:len(tok)-1] + string(alphabet[i|1])
}

// sizedToken returns a good token of exactly size bytes, padded in header and payload.
func sizedToken(t *testing.T, size int) string {
	t.Helper()
	build := func(hp, pp int) string {
		h := `{"alg":"EdDSA","kid":"2026-12","pad":"` + strings.Repeat("h", hp) + `"}`
		return mk(h, payload("pad", `"`+strings.Repeat("p", pp)+`"`), edSign)
	}
	start := max(0, (size-len(build(0, 0)))*3/4-4) // each payload byte is 4/3 characters
	for hp := 0; hp < 4; hp++ {
		for pp := start; ; pp++ {
			tok := build(hp, pp)
			if len(tok) == size {
				return tok
			}
			if len(tok) > size {
				break
			}
		}
	}
	t.Fatalf("no token of %d bytes", size)
	return ""
}

func TestVerify(t *testing.T) {
	v := newTestVerifier(t, Config{})
	ed := func(p string) string { return mk(edHeader, p, edSign) }
	hdr := func(h string) string { return mk(h, payload(), edSign) }
	good := ed(payload())
	goodHS := mk(hsHeader, payload(), hsSign)
	dot := strings.LastIndexByte(good, '.')
	mid := strings.IndexByte(good, '.') + 5 // a place inside the payload
	seg := strings.Split(good, ".")

	tests := []struct {
		name string
		tok  string
		want string // the refusal's reason; "" for accepted
	}{
		{"good EdDSA", good, ""},
		{"good HS256", goodHS, ""},
		{"exactly MaxSize bytes", sizedToken(t, MaxSize), ""},

		// 1. Size and segments.
		{"MaxSize+1 bytes", sizedToken(t, MaxSize+1), "too large"},
		{"64 KiB of garbage", strings.Repeat("a.", 32<<10), "too large"},
		{"empty string", "", "not three segments"},
		{"one segment", seg[0], "not three segments"},
		{"two segments", seg[0] + "." + seg[1], "not three segments"},
		{"four segments", good + "." + seg[2], "not three segments"},
		{"five segments", good + ".." + seg[2], "not three segments"},
		{"trailing dot", good + ".", "not three segments"},
		{"run of dots", seg[0] + ".." + seg[1] + "." + seg[2], "not three segments"},
		{"two dots", "..", "not three segments"},
		{"three dots", "...", "not three segments"},
		{"empty header", "." + seg[1] + "." + seg[2], "not three segments"},
		{"empty payload", seg[0] + ".." + seg[2], "not three segments"},

		// 2. Base64url.
		{"plus", good[:mid] + "+" + good[mid+1:], "bad base64url"},
		{"slash", good[:mid] + "/" + good[mid+1:], "bad base64url"},
		{"padding", good + "==", "bad base64url"},
		{"padded header", seg[0] + "=." + seg[1] + "." + seg[2], "bad base64url"},
		{"space inside", good[:mid] + " " + good[mid:], "bad base64url"},
		{"leading space", " " + good, "bad base64url"},
		{"trailing space", good + " ", "bad base64url"},
		{"LF inside", good[:mid] + "\n" + good[mid:], "bad base64url"},
		{"CRLF inside", good[:mid] + "\r\n" + good[mid:], "bad base64url"},
		{"trailing LF", good + "\n", "bad base64url"},
		{"NUL", good[:mid] + "\x00" + good[mid:], "bad base64url"},
		{"non-ASCII", good[:mid] + "é" + good[mid:], "bad base64url"},
		{"non-canonical signature bits", nonCanonical(good), "bad base64url"},
		{"non-canonical HS256 signature bits", nonCanonical(goodHS), "bad base64url"},
		{"impossible length", good + "AAA", "bad base64url"},

		// 3. alg.
		{"alg none", mk(`{"alg":"none","kid":"2026-12"}`, payload(), func(string) []byte { return nil }), "unsupported alg"},
		{"alg None", hdr(`{"alg":"None","kid":"2026-12"}`), "unsupported alg"},
		{"alg NONE", hdr(`{"alg":"NONE","kid":"2026-12"}`), "unsupported alg"},
		{"alg missing", hdr(`{"kid":"2026-12"}`), "unsupported alg"},
		{"alg number", hdr(`{"alg":1,"kid":"2026-12"}`), "unsupported alg"},
		{"alg null", hdr(`{"alg":null,"kid":"2026-12"}`), "unsupported alg"},
		{"alg array", hdr(`{"alg":["EdDSA"],"kid":"2026-12"}`), "unsupported alg"},
		{"alg RS256", hdr(`{"alg":"RS256","kid":"2026-12"}`), "unsupported alg"},
		{"alg eddsa", hdr(`{"alg":"eddsa","kid":"2026-12"}`), "unsupported alg"},
		{"alg leak", hdr(`{"alg":"` + leak + `","kid":"2026-12"}`), "unsupported alg"},
		{"HS256 keyed by the Ed25519 public key", mk(`{"alg":"HS256","kid":"2026-12"}`, payload(), hsSignWith(edPub)), "alg does not match kid"},
		{"EdDSA on the HS256 kid", mk(`{"alg":"EdDSA","kid":"ci"}`, payload(), edSign), "alg does not match kid"},

		// 4. kid and the other header members.
		{"kid missing", hdr(`{"alg":"EdDSA"}`), "missing kid"},
		{"kid unknown", hdr(`{"alg":"EdDSA","kid":"` + leak + `"}`), "unknown kid"},
		{"kid empty", hdr(`{"alg":"EdDSA","kid":""}`), "unknown kid"},
		{"kid number", hdr(`{"alg":"EdDSA","kid":2026}`), "bad kid"},
		{"kid null", hdr(`{"alg":"EdDSA","kid":null}`), "bad kid"},
		{"kid other case", hdr(`{"alg":"EdDSA","kid":"CI"}`), "unknown kid"},
		{"jwk header", hdr(`{"alg":"EdDSA","kid":"2026-12","jwk":{"kty":"OKP","crv":"Ed25519","x":"` + b64.EncodeToString(edPub) + `"}}`), "jwk header not allowed"},
		{"jku header", hdr(`{"alg":"EdDSA","kid":"2026-12","jku":"https://` + leak + `/keys"}`), "jku header not allowed"},
		{"x5u header", hdr(`{"alg":"EdDSA","kid":"2026-12","x5u":"https://` + leak + `/cert"}`), "x5u header not allowed"},
		{"x5c header", hdr(`{"alg":"EdDSA","kid":"2026-12","x5c":["MIIB"]}`), "x5c header not allowed"},
		{"null jku header", hdr(`{"alg":"EdDSA","kid":"2026-12","jku":null}`), "jku header not allowed"},
		{"crit header", hdr(`{"alg":"EdDSA","kid":"2026-12","crit":["exp"],"exp":1}`), "crit header not supported"},
		{"empty crit header", hdr(`{"alg":"EdDSA","kid":"2026-12","crit":[]}`), "crit header not supported"},
		{"typ JOSE", hdr(`{"alg":"EdDSA","kid":"2026-12","typ":"JOSE"}`), "bad typ"},
		{"typ application/jwt", hdr(`{"alg":"EdDSA","kid":"2026-12","typ":"application/jwt"}`), "bad typ"},
		{"typ JWT with a space", hdr(`{"alg":"EdDSA","kid":"2026-12","typ":"JWT "}`), "bad typ"},
		{"typ number", hdr(`{"alg":"EdDSA","kid":"2026-12","typ":1}`), "bad typ"},
		{"typ leak", hdr(`{"alg":"EdDSA","kid":"2026-12","typ":"` + leak + `"}`), "bad typ"},
		{"typ at+jwt", hdr(`{"alg":"EdDSA","kid":"2026-12","typ":"at+jwt"}`), ""},
		{"typ AT+JWT", hdr(`{"alg":"EdDSA","kid":"2026-12","typ":"AT+JWT"}`), ""},
		{"typ jwt", hdr(`{"alg":"EdDSA","kid":"2026-12","typ":"jwt"}`), ""},
		{"no typ", hdr(`{"alg":"EdDSA","kid":"2026-12"}`), ""},
		{"unknown header member", hdr(`{"alg":"EdDSA","kid":"2026-12","x-note":1}`), ""},
		{"whitespace around the header", hdr(" \t\r\n{ \"alg\" : \"EdDSA\" , \"kid\" : \"2026-12\" }\n"), ""},

		// 5. The header as JSON.
		{"header array", hdr(`[{"alg":"EdDSA","kid":"2026-12"}]`), "bad header"},
		{"header string", hdr(`"EdDSA"`), "bad header"},
		{"header number", hdr(`1`), "bad header"},
		{"header null", hdr(`null`), "bad header"},
		{"header not JSON", hdr(`{alg:EdDSA}`), "bad header"},
		{"header cut short", hdr(`{"alg":"EdDSA","kid":"2026-12"`), "bad header"},
		{"header invalid UTF-8", hdr("{\"alg\":\"EdDSA\",\"kid\":\"2026-12\",\"n\":\"\xff\"}"), "bad header"},
		{"header trailing bytes", hdr(`{"alg":"EdDSA","kid":"2026-12"}x`), "bad header"},
		{"header two objects", hdr(`{"alg":"EdDSA","kid":"2026-12"}{}`), "bad header"},
		{"header duplicate alg", hdr(`{"alg":"EdDSA","kid":"2026-12","alg":"none"}`), "bad header"},
		{"header duplicate kid", hdr(`{"alg":"EdDSA","kid":"x","kid":"2026-12"}`), "bad header"},
		{"header duplicate kid spelt with an escape", hdr(`{"alg":"EdDSA","kid":"x","k\u0069d":"2026-12"}`), "bad header"},

		// 6. Signature.
		{"empty signature", good[:dot+1], "bad signature"},
		{"signature 63 bytes", mk(edHeader, payload(), func(in string) []byte { return edSign(in)[:63] }), "bad signature"},
		{"signature 65 bytes", mk(edHeader, payload(), func(in string) []byte { return append(edSign(in), 0) }), "bad signature"},
		{"HS256 signature 31 bytes", mk(hsHeader, payload(), func(in string) []byte { return hsSign(in)[:31] }), "bad signature"},
		{"HS256 signature 64 bytes", mk(hsHeader, payload(), func(in string) []byte { return append(hsSign(in), hsSign(in)...) }), "bad signature"},
		{"signed by another Ed25519 key", mk(edHeader, payload(), otherSign), "bad signature"},
		{"HS256 with another secret", mk(hsHeader, payload(), hsSignWith([]byte(strings.Repeat("s", 32)))), "bad signature"},
		{"signature of another payload", seg[0] + "." + enc(payload("sub", `"admin"`)) + "." + seg[2], "bad signature"},
		{"zero signature", good[:dot+1] + b64.EncodeToString(make([]byte, 64)), "bad signature"},
		{"expired and badly signed", mk(edHeader, payload("exp", at(-time.Hour)), otherSign), "bad signature"},
		{"bad payload and badly signed", seg[0] + "." + enc("[]") + "." + seg[2], "bad signature"},

		// 7. Claims, as JSON.
		{"payload array", ed(`[` + payload() + `]`), "bad payload"},
		{"payload string", ed(`"user1"`), "bad payload"},
		{"payload number", ed(`1800000000`), "bad payload"},
		{"payload invalid UTF-8", ed(payload("name", "\"\xc3\x28\"")), "bad payload"},
		{"payload trailing bytes", ed(payload() + `x`), "bad payload"},
		{"payload two objects", ed(payload() + payload()), "bad payload"},
		{"payload duplicate exp", ed(strings.TrimSuffix(payload(), "}") + `,"exp":` + at(time.Hour) + `}`), "bad payload"},
		{"payload duplicate sub", ed(strings.TrimSuffix(payload(), "}") + `,"sub":"admin"}`), "bad payload"},
		{"EXP beside exp is another claim", ed(payload("EXP", at(-time.Hour))), ""},

		// 7. exp, nbf, iat.
		{"exp missing", ed(payload("exp", "")), "missing exp"},
		{"exp string", ed(payload("exp", `"1800003600"`)), "bad exp"},
		{"exp null", ed(payload("exp", `null`)), "bad exp"},
		{"exp true", ed(payload("exp", `true`)), "bad exp"},
		{"exp negative", ed(payload("exp", `-1`)), "bad exp"},
		{"exp beyond year 9999", ed(payload("exp", `1e300`)), "bad exp"},
		{"exp overflowing float64", ed(payload("exp", `1e999`)), "bad exp"},
		{"exp an hour ago", ed(payload("exp", at(-time.Hour))), "expired"},
		{"exp now-61s", ed(payload("exp", at(-61*time.Second))), "expired"},
		{"exp now-60s, the boundary", ed(payload("exp", at(-60*time.Second))), "expired"},
		{"exp now-59.5s", ed(payload("exp", at(-59500*time.Millisecond))), ""},
		{"exp now-59s", ed(payload("exp", at(-59*time.Second))), ""},
		{"exp now, within the leeway", ed(payload("exp", at(0))), ""},
		{"exp with a fraction", ed(payload("exp", `1800003600.25`)), ""},
		{"exp in exponent notation", ed(payload("exp", `1.8000036e9`)), ""},
		{"nbf string", ed(payload("nbf", `"0"`)), "bad nbf"},
		{"nbf null", ed(payload("nbf", `null`)), "bad nbf"},
		{"nbf now+61s", ed(payload("nbf", at(61*time.Second))), "not yet valid"},
		{"nbf now+60s, the boundary", ed(payload("nbf", at(60*time.Second))), ""},
		{"nbf now", ed(payload("nbf", at(0))), ""},
		{"iat string", ed(payload("iat", `"now"`)), "bad iat"},
		{"iat now+61s", ed(payload("iat", at(61*time.Second))), "issued in the future"},
		{"iat now+60s, the boundary", ed(payload("iat", at(60*time.Second))), ""},
		{"iat missing", ed(payload("iat", "")), ""},

		// 7. iss, aud, sub, scope.
		{"iss wrong", ed(payload("iss", `"https://`+leak+`"`)), "wrong issuer"},
		{"iss a prefix", ed(payload("iss", `"https://auth.finonex"`)), "wrong issuer"},
		{"iss missing", ed(payload("iss", "")), "missing iss"},
		{"iss number", ed(payload("iss", `1`)), "bad iss"},
		{"aud missing", ed(payload("aud", "")), "missing aud"},
		{"aud wrong", ed(payload("aud", `"`+leak+`"`)), "wrong audience"},
		{"aud a prefix", ed(payload("aud", `"finon"`)), "wrong audience"},
		{"aud a superstring", ed(payload("aud", `"finonex2"`)), "wrong audience"},
		{"aud other case", ed(payload("aud", `"FINONEX"`)), "wrong audience"},
		{"aud empty array", ed(payload("aud", `[]`)), "wrong audience"},
		{"aud array without it", ed(payload("aud", `["other","finon"]`)), "wrong audience"},
		{"aud array of numbers", ed(payload("aud", `[1]`)), "bad aud"},
		{"aud nested array", ed(payload("aud", `[["finonex"]]`)), "bad aud"},
		{"aud array with a number too", ed(payload("aud", `["finonex",1]`)), "bad aud"},
		{"aud number", ed(payload("aud", `1`)), "bad aud"},
		{"aud null", ed(payload("aud", `null`)), "bad aud"},
		{"aud object", ed(payload("aud", `{"finonex":true}`)), "bad aud"},
		{"aud array", ed(payload("aud", `["finonex"]`)), ""},
		{"aud array with others", ed(payload("aud", `["other","finonex"]`)), ""},
		{"sub missing", ed(payload("sub", "")), "missing sub"},
		{"sub empty", ed(payload("sub", `""`)), "bad sub"},
		{"sub number", ed(payload("sub", `42`)), "bad sub"},
		{"sub null", ed(payload("sub", `null`)), "bad sub"},
		{"scope array", ed(payload("scope", `["revenue:read"]`)), "bad scope"},
		{"scope number", ed(payload("scope", `1`)), "bad scope"},
		{"scope null", ed(payload("scope", `null`)), "bad scope"},
		{"scope missing", ed(payload("scope", "")), ""},
	}
	for _, tt := range tests {
		verifyCase(t, v, tt.name, tt.tok, tt.want)
	}
}

func TestVerifyClaims(t *testing.T) {
	v := newTestVerifier(t, Config{})
	tests := []struct {
		name       string
		payload    string
		wantScopes []string
		has        []string // scopes Has must grant
		hasNot     []string // scopes Has must not grant
	}{
		{"two scopes", payload(), []string{"events:write", "revenue:read"},
			[]string{"events:write", "revenue:read"}, []string{"", "revenue", "revenue:rea", "revenue:read:own", "REVENUE:READ"}},
		{"a longer scope grants nothing shorter", payload("scope", `"revenue:readx ops:read"`), []string{"revenue:readx", "ops:read"},
			[]string{"revenue:readx", "ops:read"}, []string{"revenue:read", "ops"}},
		{"a shorter scope grants nothing longer", payload("scope", `"revenue:read"`), []string{"revenue:read"},
			[]string{"revenue:read"}, []string{"revenue:read:own"}},
		{"extra spaces", payload("scope", `"  ops:read   events:write "`), []string{"ops:read", "events:write"},
			[]string{"ops:read", "events:write"}, []string{""}},
		{"tab is not a separator", payload("scope", `"ops:read\tevents:write"`), []string{"ops:read\tevents:write"},
			nil, []string{"ops:read", "events:write"}},
		{"empty scope", payload("scope", `""`), nil, nil, []string{"", "ops:read"}},
		{"no scope", payload("scope", ""), nil, nil, []string{"", "ops:read"}},
	}
	for _, tt := range tests {
		c, err := v.Verify(mk(edHeader, tt.payload, edSign))
		if err != nil {
			t.Errorf("Verify(%s) = %v; want accepted", tt.name, err)
			continue
		}
		if c.Subject != "user1" || !slices.Equal(c.Scopes, tt.wantScopes) {
			t.Errorf("Verify(%s) = sub %q scopes %q; want user1 %q", tt.name, c.Subject, c.Scopes, tt.wantScopes)
		}
		for _, s := range tt.has {
			if !c.Has(s) {
				t.Errorf("Verify(%s).Has(%q) = false; want true", tt.name, s)
			}
		}
		for _, s := range tt.hasNot {
			if c.Has(s) {
				t.Errorf("Verify(%s).Has(%q) = true; want false", tt.name, s)
			}
		}
	}

	c, err := v.Verify(mk(edHeader, payload("exp", `1800003600.25`, "nbf", `1799999000`, "iat", ""), edSign))
	if err != nil {
		t.Fatalf("Verify(fractional exp) = %v; want accepted", err)
	}
	if want := time.Unix(1800003600, 250e6); !c.Expires.Equal(want) {
		t.Errorf("Verify(fractional exp).Expires = %v; want %v", c.Expires, want)
	}
	if want := time.Unix(1799999000, 0); !c.NotBefore.Equal(want) || !c.IssuedAt.IsZero() {
		t.Errorf("Verify(nbf, no iat) = nbf %v iat %v; want %v and zero", c.NotBefore, c.IssuedAt, want)
	}
}

// TestVerifyEveryByte changes each byte of good tokens in turn, to another base64url
// character, to a byte one bit away and to a dot: each change must be refused, wherever
// it falls (header, payload, signature or a separator), even with the good token cached.
func TestVerifyEveryByte(t *testing.T) {
	v := newTestVerifier(t, Config{})
	for _, good := range []string{mk(edHeader, payload(), edSign), mk(hsHeader, payload(), hsSign)} {
		if _, err := v.Verify(good); err != nil {
			t.Fatalf("Verify(good) = %v", err)
		}
		for i := range len(good) {
			next := alphabet[(strings.IndexByte(alphabet, good[i])+1)%len(alphabet)]
			for _, c := range []byte{next, good[i] ^ 1, '.'} {
				if c == good[i] {
					continue
				}
				tok := good[:i] + string(c) + good[i+1:]
				_, err := v.Verify(tok)
				if err == nil {
					t.Errorf("Verify(byte %d of %d changed to %q) = nil; want refused", i, len(good), c)
				} else if bad := checkRefusal(err, tok); bad != "" {
					t.Errorf("Verify(byte %d changed) = %v: %s", i, err, bad)
				}
			}
		}
	}
}

func TestVerifyIssuerNotConfigured(t *testing.T) {
	v := NewVerifier(Config{Now: func() time.Time { return testNow }})
	v.SetKeys(mustKeySet(t, testSet))
	for _, tt := range []struct{ name, iss, want string }{
		{"iss missing", "", ""},
		{"iss any string", `"https://elsewhere"`, ""},
		{"iss number", `1`, "bad iss"},
	} {
		verifyCase(t, v, tt.name, mk(edHeader, payload("iss", tt.iss), edSign), tt.want)
	}
}

func TestVerifyConfig(t *testing.T) {
	tests := []struct {
		name string
		cfg  Config
		p    string
		want string
	}{
		{"no leeway: exp now", Config{Leeway: -1}, payload("exp", at(0)), "expired"},
		{"no leeway: exp now+1µs", Config{Leeway: -1}, payload("exp", at(time.Microsecond)), ""},
		{"no leeway: nbf now+1s", Config{Leeway: -1}, payload("nbf", at(time.Second)), "not yet valid"},
		{"no leeway: nbf now", Config{Leeway: -1}, payload("nbf", at(0)), ""},
		{"leeway 5s: exp now-5s", Config{Leeway: 5 * time.Second}, payload("exp", at(-5*time.Second)), "expired"},
		{"leeway 5s: exp now-4s", Config{Leeway: 5 * time.Second}, payload("exp", at(-4*time.Second)), ""},
		{"leeway 5s: iat now+6s", Config{Leeway: 5 * time.Second}, payload("iat", at(6*time.Second)), "issued in the future"},
		{"audience api: finonex", Config{Audience: "api"}, payload(), "wrong audience"},
		{"audience api: api", Config{Audience: "api"}, payload("aud", `["finonex","api"]`), ""},
	}
	for _, tt := range tests {
		verifyCase(t, newTestVerifier(t, tt.cfg), tt.name, mk(edHeader, tt.p, edSign), tt.want)
	}
}

// TestVerifyBoundary moves the clock across exp+leeway one nanosecond at a time.
func TestVerifyBoundary(t *testing.T) {
	now := testNow
	v := newTestVerifier(t, Config{Now: func() time.Time { return now }})
	tok := mk(edHeader, payload("exp", at(0)), edSign)
	for _, tt := range []struct {
		now  time.Time
		want string
	}{
		{testNow.Add(60*time.Second - time.Nanosecond), ""},
		{testNow.Add(60 * time.Second), "expired"},
		{testNow.Add(60*time.Second + time.Nanosecond), "expired"},
	} {
		now = tt.now
		verifyCase(t, v, "exp=T at "+now.Sub(testNow).String()+" after T", tok, tt.want)
	}
}

func TestVerifyNoKeys(t *testing.T) {
	tok := mk(edHeader, payload(), edSign)
	v := NewVerifier(Config{Now: func() time.Time { return testNow }})
	verifyCase(t, v, "good token, no keys yet", tok, "no token keys configured")
	v.SetKeys(mustKeySet(t, testSet))
	verifyCase(t, v, "good token", tok, "")
	v.SetKeys(nil)
	verifyCase(t, v, "good token, keys removed", tok, "no token keys configured")
}

func TestErrorIs(t *testing.T) {
	err := error(errExpired)
	if !errors.Is(err, ErrInvalid) || errors.Is(err, errors.New("invalid token")) {
		t.Errorf("errors.Is(%v, ErrInvalid) = false; want true, and only for ErrInvalid", err)
	}
	if got := err.Error(); got != "token: expired" {
		t.Errorf("Error() = %q; want %q", got, "token: expired")
	}
}
