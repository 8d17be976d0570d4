package main

import (
	"crypto/rand"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"finonex/internal/auth"
	"finonex/internal/spool"
	"finonex/internal/token"
)

// issuer mints test tokens with an Ed25519 key whose public half the server trusts.
type issuer struct {
	signer   *token.Signer
	verifier *token.Verifier
	keysFile string
}

func newIssuer(t *testing.T) *issuer {
	t.Helper()
	pub, priv, err := token.GenerateEd25519("test-key", rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	signer, err := token.ParseSigner(priv)
	if err != nil {
		t.Fatal(err)
	}
	keys := filepath.Join(t.TempDir(), "token-keys.json")
	if err := os.WriteFile(keys, pub, 0o644); err != nil {
		t.Fatal(err)
	}
	v := token.NewVerifier(token.Config{})
	if err := v.LoadFile(keys); err != nil {
		t.Fatal(err)
	}
	return &issuer{signer: signer, verifier: v, keysFile: keys}
}

func (is *issuer) mint(t *testing.T, sub string, ttl time.Duration, scopes ...string) string {
	t.Helper()
	tok, err := is.signer.Mint(token.Grant{Subject: sub, Scopes: scopes, TTL: ttl}, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	return tok
}

func bearer(tok string) map[string]string { return map[string]string{"Authorization": "Bearer " + tok} }

// TestScopesAgainstEndpoints tries every scope on every endpoint that needs one: a token
// gets through exactly where its scope grants, and is refused with 403 elsewhere.
func TestScopesAgainstEndpoints(t *testing.T) {
	t.Parallel()
	is := newIssuer(t)
	ts := newTestServerAuth(t, newDSN(t), spool.Options{}, []string{testSecret}, is.verifier)
	endpoints := []struct {
		method, path string
		body         string
		scope        string // the scope that grants it
	}{
		{http.MethodPost, "/liveEvent", validEvent, auth.EventsWrite},
		{http.MethodGet, "/userEvents/someone", "", auth.RevenueRead},
		{http.MethodGet, "/metrics", "", auth.OpsRead},
		{http.MethodGet, "/debug/vars", "", auth.OpsRead},
		{http.MethodGet, "/debug/pprof/", "", auth.OpsRead},
	}
	for _, sc := range append(auth.Scopes, "revenue:readx") {
		tok := is.mint(t, "someone-else", time.Hour, sc)
		for _, ep := range endpoints {
			before := ts.contents(t)
			r := ts.do(t, ep.method, ep.path, []byte(ep.body), bearer(tok))
			switch {
			case ep.scope == sc:
				if r.status == http.StatusUnauthorized || r.status == http.StatusForbidden {
					t.Errorf("%s %s with scope %s = %d %s; want it let through", ep.method, ep.path, sc, r.status, r.body)
				}
			default:
				wantJSONError(t, ep.method+" "+ep.path+" with scope "+sc, r, http.StatusForbidden)
				if got := r.header.Get("WWW-Authenticate"); !strings.Contains(got, `error="insufficient_scope"`) {
					t.Errorf("%s %s with scope %s: WWW-Authenticate %q; want Bearer error=\"insufficient_scope\"", ep.method, ep.path, sc, got)
				}
				if after := ts.contents(t); after != before {
					t.Errorf("%s %s with scope %s, refused, wrote to the events file: %q", ep.method, ep.path, sc, after)
				}
			}
		}
	}
	// The secret still grants every scope; /healthz and /readyz need nothing.
	for _, ep := range endpoints {
		if r := ts.do(t, ep.method, ep.path, []byte(ep.body), map[string]string{"Authorization": testSecret}); r.status == http.StatusUnauthorized || r.status == http.StatusForbidden {
			t.Errorf("%s %s with the secret = %d; want it let through", ep.method, ep.path, r.status)
		}
	}
	for _, path := range []string{"/healthz", "/readyz"} {
		if r := ts.do(t, http.MethodGet, path, nil, nil); r.status != http.StatusOK {
			t.Errorf("GET %s without credentials = %d; want 200", path, r.status)
		}
	}
}

// TestReadOwnRevenue: revenue:read:own reads its own sub's row and no other, for ids with
// a slash, spaces and non-ASCII letters too.
func TestReadOwnRevenue(t *testing.T) {
	t.Parallel()
	is := newIssuer(t)
	ts := newTestServerAuth(t, newDSN(t), spool.Options{}, []string{testSecret}, is.verifier)
	ids := []string{"user1", "team/alice", "Ada Lovelace", "Zoë-日本", "a%2Fb"}
	for _, id := range ids {
		if _, err := ts.db.DB().Exec(`INSERT INTO users_revenue (user_id, revenue) VALUES ($1, 42)`, id); err != nil {
			t.Fatal(err)
		}
	}
	for _, id := range ids {
		tok := is.mint(t, id, time.Hour, auth.RevenueReadOwn)
		for _, other := range ids {
			path := "/userEvents/" + url.PathEscape(other)
			r := ts.do(t, http.MethodGet, path, nil, bearer(tok))
			if other == id {
				if r.status != http.StatusOK || !strings.Contains(string(r.body), `"revenue":42`) {
					t.Errorf("GET %s with revenue:read:own for %q = %d %s; want 200 and its revenue", path, id, r.status, r.body)
				}
				continue
			}
			wantJSONError(t, "GET "+path+" with revenue:read:own for "+id, r, http.StatusForbidden)
		}
	}
	// revenue:read reads anyone.
	tok := is.mint(t, "auditor", time.Hour, auth.RevenueRead)
	for _, id := range ids {
		if r := ts.do(t, http.MethodGet, "/userEvents/"+url.PathEscape(id), nil, bearer(tok)); r.status != http.StatusOK {
			t.Errorf("GET /userEvents/%s with revenue:read = %d; want 200", id, r.status)
		}
	}
}

// TestRefusedTokens: every bad credential is a 401 with Bearer error="invalid_token", a JSON
// body that does not echo it, nothing written and nothing read.
func TestRefusedTokens(t *testing.T) {
	t.Parallel()
	is := newIssuer(t)
	other := newIssuer(t) // a key the server does not trust
	ts := newTestServerAuth(t, newDSN(t), spool.Options{}, []string{testSecret}, is.verifier)
	good := is.mint(t, "svc", time.Hour, auth.EventsWrite, auth.RevenueRead, auth.OpsRead)
	parts := strings.Split(good, ".")
	expired, err := is.signer.Mint(token.Grant{Subject: "svc", Scopes: []string{auth.EventsWrite, auth.RevenueRead}, TTL: time.Minute}, time.Now().Add(-time.Hour))
	if err != nil {
		t.Fatal(err)
	}
	notYet, err := is.signer.Mint(token.Grant{Subject: "svc", Scopes: []string{auth.EventsWrite, auth.RevenueRead}, TTL: 2 * time.Hour, NotBefore: time.Now().Add(time.Hour)}, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct{ name, header string }{
		{"missing", ""},
		{"empty bearer", "Bearer "},
		{"malformed", "Bearer not.a.token"},
		{"two segments", "Bearer " + parts[0] + "." + parts[1]},
		{"bad signature", "Bearer " + parts[0] + "." + parts[1] + "." + strings.Repeat("A", len(parts[2]))},
		{"untrusted key", "Bearer " + other.mint(t, "svc", time.Hour, auth.EventsWrite, auth.RevenueRead)},
		{"expired", "Bearer " + expired},
		{"not yet valid", "Bearer " + notYet},
		{"basic scheme", "Basic " + good},
		{"token without scheme", good},
		{"wrong secret", "not-the-secret"},
	} {
		for _, req := range []struct{ method, path, body string }{
			{http.MethodPost, "/liveEvent", validEvent},
			{http.MethodGet, "/userEvents/user1", ""},
			{http.MethodGet, "/metrics", ""},
		} {
			before := ts.contents(t)
			lookups := ts.reads.Stats().Lookups
			hdr := map[string]string{}
			if tc.header != "" {
				hdr["Authorization"] = tc.header
			}
			r := ts.do(t, req.method, req.path, []byte(req.body), hdr)
			what := req.method + " " + req.path + " with a " + tc.name + " credential"
			wantJSONError(t, what, r, http.StatusUnauthorized)
			if got := r.header.Get("WWW-Authenticate"); !strings.Contains(got, `error="invalid_token"`) {
				t.Errorf("%s: WWW-Authenticate %q; want Bearer error=\"invalid_token\"", what, got)
			}
			if tok := strings.TrimPrefix(strings.TrimPrefix(tc.header, "Bearer "), "Basic "); len(tok) > 8 && strings.Contains(string(r.body), tok) {
				t.Errorf("%s: the body echoes the credential: %s", what, r.body)
			}
			if after := ts.contents(t); after != before {
				t.Errorf("%s wrote to the events file: %q", what, after)
			}
			if n := ts.reads.Stats().Lookups; n != lookups {
				t.Errorf("%s looked up revenue (%d lookups, was %d)", what, n, lookups)
			}
		}
	}
	wantOK(t, "POST with the good token", ts.post(t, validEvent, bearer(good)))
}

// TestSecretOff: with -secret ” and token keys, the old secret is refused and tokens work.
func TestSecretOff(t *testing.T) {
	t.Parallel()
	is := newIssuer(t)
	ts := newTestServerAuth(t, newDSN(t), spool.Options{}, []string{""}, is.verifier)
	for _, h := range []string{"", testSecret, "secret"} {
		r := ts.do(t, http.MethodPost, "/liveEvent", []byte(validEvent), map[string]string{"Authorization": h})
		wantJSONError(t, "POST with Authorization "+h+" and the secret off", r, http.StatusUnauthorized)
	}
	wantOK(t, "POST with a token", ts.post(t, validEvent, bearer(is.mint(t, "svc", time.Hour, auth.EventsWrite))))
}
