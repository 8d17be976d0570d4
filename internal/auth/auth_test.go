package auth

import (
	"crypto/rand"
	"errors"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"finonex/internal/token"
)

func TestAuthenticate(t *testing.T) {
	pub, priv, err := token.GenerateEd25519("k", rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	ks, err := token.ParseKeySet(pub)
	if err != nil {
		t.Fatal(err)
	}
	v := token.NewVerifier(token.Config{})
	v.SetKeys(ks)
	signer, err := token.ParseSigner(priv)
	if err != nil {
		t.Fatal(err)
	}
	tok, err := signer.Mint(token.Grant{Subject: "user1", Scopes: []string{RevenueReadOwn}, TTL: time.Hour}, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	withTokens, secretOnly := New([]string{"s3", ""}, v), New([]string{"s3"}, nil)
	for _, tc := range []struct {
		name    string
		c       *Credentials
		header  string
		wantErr error
		scopes  map[string]bool
		subject string
	}{
		{"secret", withTokens, "s3", nil, map[string]bool{EventsWrite: true, RevenueRead: true, RevenueReadOwn: true, OpsRead: true}, ""},
		{"token", withTokens, "Bearer " + tok, nil, map[string]bool{RevenueReadOwn: true, RevenueRead: false, EventsWrite: false}, "user1"},
		{"scheme in any case", withTokens, "bearer " + tok, nil, map[string]bool{RevenueReadOwn: true}, "user1"},
		{"no header", withTokens, "", ErrNoCredentials, nil, ""},
		{"empty secret never matches", New([]string{""}, v), "", ErrNoCredentials, nil, ""},
		{"wrong secret", withTokens, "s4", ErrBadCredentials, nil, ""},
		{"secret with Bearer", withTokens, "Bearer s3", ErrBadCredentials, nil, ""},
		{"token without tokens configured", secretOnly, "Bearer " + tok, ErrBadCredentials, nil, ""},
		{"bad token", withTokens, "Bearer " + tok + "x", ErrBadCredentials, nil, ""},
		{"other scheme", withTokens, "Basic " + tok, ErrBadCredentials, nil, ""},
	} {
		r := httptest.NewRequest("GET", "/", nil)
		if tc.header != "" {
			r.Header.Set("Authorization", tc.header)
		}
		g, err := tc.c.Authenticate(r)
		if !errors.Is(err, tc.wantErr) || (tc.wantErr == nil) != (err == nil) {
			t.Errorf("%s: Authenticate(%.20q) = %v; want %v", tc.name, tc.header, err, tc.wantErr)
			continue
		}
		if err != nil && len(tok) > 10 && strings.Contains(err.Error(), tok[:len(tok)-5]) {
			t.Errorf("%s: error %q holds the token", tc.name, err)
		}
		for scope, want := range tc.scopes {
			if g.Has(scope) != want {
				t.Errorf("%s: Has(%s) = %v; want %v", tc.name, scope, !want, want)
			}
		}
		if err == nil && g.Subject() != tc.subject {
			t.Errorf("%s: Subject() = %q; want %q", tc.name, g.Subject(), tc.subject)
		}
	}
}
