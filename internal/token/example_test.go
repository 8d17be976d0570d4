package token_test

import (
	"bytes"
	"fmt"
	"time"

	"finonex/internal/token"
)

func Example() {
	// Once, offline: a key pair. The public set goes to every server, the private key
	// to whoever mints tokens. (Use crypto/rand.Reader; a fixed reader keeps the
	// example's output fixed.)
	public, private, err := token.GenerateEd25519("2026-12", bytes.NewReader(make([]byte, 32)))
	if err != nil {
		fmt.Println(err)
		return
	}
	now := time.Date(2026, 12, 1, 0, 0, 0, 0, time.UTC)

	signer, err := token.ParseSigner(private)
	if err != nil {
		fmt.Println(err)
		return
	}
	tok, err := signer.Mint(token.Grant{Subject: "svc-report", Scopes: []string{"revenue:read"}, TTL: 720 * time.Hour}, now)
	if err != nil {
		fmt.Println(err)
		return
	}

	// In the server.
	keys, err := token.ParseKeySet(public)
	if err != nil {
		fmt.Println(err)
		return
	}
	v := token.NewVerifier(token.Config{Now: func() time.Time { return now }})
	v.SetKeys(keys)
	c, err := v.Verify(tok)
	fmt.Println(c.Subject, c.Has("revenue:read"), c.Has("events:write"), err)

	now = now.Add(721 * time.Hour)
	_, err = v.Verify(tok)
	fmt.Println(err)
	// Output:
	// svc-report true false <nil>
	// token: expired
}
