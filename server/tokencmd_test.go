package main

import (
	"bytes"
	"errors"
	"flag"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"finonex/internal/cli"
	"finonex/internal/token"
)

var tokenCmdNow = time.Date(2026, 12, 1, 10, 0, 0, 0, time.UTC)

// tokenCmd runs "server token args..." and returns its stdout.
func tokenCmd(t *testing.T, args ...string) (string, error) {
	t.Helper()
	var stdout, stderr bytes.Buffer
	err := runTokenCommand(args, &stdout, &stderr, tokenCmdNow)
	return stdout.String(), err
}

func tokenCmdOK(t *testing.T, args ...string) string {
	t.Helper()
	out, err := tokenCmd(t, args...)
	if err != nil {
		t.Fatalf("server token %s = %v", strings.Join(args, " "), err)
	}
	return out
}

// tokenCmdVerify verifies tok against the key set in pub, at now.
func tokenCmdVerify(t *testing.T, pub, tok string, now time.Time) (token.Claims, error) {
	t.Helper()
	v := token.NewVerifier(token.Config{Now: func() time.Time { return now }})
	if err := v.LoadFile(pub); err != nil {
		t.Fatalf("LoadFile(%s) = %v", pub, err)
	}
	return v.Verify(tok)
}

func tokenCmdMode(t *testing.T, path string) os.FileMode {
	t.Helper()
	info, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	return info.Mode().Perm()
}

func TestTokenCmdKeygenMintVerify(t *testing.T) {
	dir := t.TempDir()
	priv, pub := filepath.Join(dir, "k.jwk"), filepath.Join(dir, "keys.json")
	out := tokenCmdOK(t, "keygen", "-kid", "2026-12", "-private", priv, "-public", pub)
	if !strings.Contains(out, "kid 2026-12") || !strings.Contains(out, "created") {
		t.Errorf("keygen printed %q; want the kid and that the set was created", out)
	}
	if m := tokenCmdMode(t, priv); m != 0o600 {
		t.Errorf("private key mode %v; want 0600", m)
	}
	if m := tokenCmdMode(t, pub); m != 0o644 {
		t.Errorf("public key set mode %v; want 0644", m)
	}

	tok := tokenCmdOK(t, "mint", "-key", priv, "-sub", "svc-report", "-scope", "revenue:read ops:read", "-ttl", "720h")
	if !strings.HasSuffix(tok, "\n") || strings.Count(tok, "\n") != 1 {
		t.Fatalf("mint printed %q; want one token and a newline", tok)
	}
	tok = strings.TrimSuffix(tok, "\n")
	c, err := tokenCmdVerify(t, pub, tok, tokenCmdNow.Add(719*time.Hour))
	if err != nil {
		t.Fatalf("Verify(minted token) = %v", err)
	}
	if c.Subject != "svc-report" || !slices.Equal(c.Scopes, []string{"revenue:read", "ops:read"}) || c.Has("events:write") {
		t.Errorf("Verify(minted token) = %+v; want svc-report with revenue:read ops:read", c)
	}
	if _, err := tokenCmdVerify(t, pub, tok, tokenCmdNow.Add(721*time.Hour)); !errors.Is(err, token.ErrInvalid) {
		t.Errorf("Verify(minted token after its ttl and leeway) = %v; want expired", err)
	}

	// -aud and -iss reach the token.
	tok = strings.TrimSpace(tokenCmdOK(t, "mint", "-key", priv, "-sub", "a", "-scope", "events:write", "-ttl", "1h", "-aud", "other", "-iss", "ops"))
	v := token.NewVerifier(token.Config{Audience: "other", Issuer: "ops", Now: func() time.Time { return tokenCmdNow }})
	if err := v.LoadFile(pub); err != nil {
		t.Fatal(err)
	}
	if _, err := v.Verify(tok); err != nil {
		t.Errorf("Verify(token with -aud other -iss ops) = %v; want accepted", err)
	}
}

// TestTokenCmdRotation adds a second key to the set, as a rotation does.
func TestTokenCmdRotation(t *testing.T) {
	dir := t.TempDir()
	pub := filepath.Join(dir, "keys.json")
	privA, privB := filepath.Join(dir, "a.jwk"), filepath.Join(dir, "b.jwk")
	tokenCmdOK(t, "keygen", "-kid", "A", "-private", privA, "-public", pub)
	keyA, _ := os.ReadFile(privA)
	if out := tokenCmdOK(t, "keygen", "-kid", "B", "-private", privB, "-public", pub); !strings.Contains(out, "added to") {
		t.Errorf("second keygen printed %q; want that the key was added", out)
	}
	if again, _ := os.ReadFile(privA); !bytes.Equal(again, keyA) {
		t.Errorf("second keygen changed the first private key")
	}
	if m := tokenCmdMode(t, pub); m != 0o644 {
		t.Errorf("rewritten public key set mode %v; want 0644", m)
	}
	data, _ := os.ReadFile(pub)
	ks, err := token.ParseKeySet(data)
	if err != nil || !slices.Equal(ks.KIDs(), []string{"A", "B"}) {
		t.Fatalf("ParseKeySet(public set after two keygens) = %v, %v; want kids A and B", ks, err)
	}
	for _, priv := range []string{privA, privB} {
		tok := strings.TrimSpace(tokenCmdOK(t, "mint", "-key", priv, "-sub", "s", "-scope", "ops:read", "-ttl", "1h"))
		if _, err := tokenCmdVerify(t, pub, tok, tokenCmdNow); err != nil {
			t.Errorf("Verify(token of %s) = %v; want accepted", filepath.Base(priv), err)
		}
	}
	entries, _ := os.ReadDir(dir)
	if len(entries) != 3 {
		t.Errorf("dir holds %d files; want 3 (no temporary file left)", len(entries))
	}
}

func TestTokenCmdRefusesOverwrite(t *testing.T) {
	dir := t.TempDir()
	priv, pub := filepath.Join(dir, "k.jwk"), filepath.Join(dir, "keys.json")
	tokenCmdOK(t, "keygen", "-kid", "A", "-private", priv, "-public", pub)
	privBefore, _ := os.ReadFile(priv)
	pubBefore, _ := os.ReadFile(pub)
	notSet := filepath.Join(dir, "notes.txt")
	if err := os.WriteFile(notSet, []byte("not a key set\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	fresh := filepath.Join(dir, "new.jwk")

	tests := []struct {
		name string
		args []string
		want string
	}{
		{"existing private key", []string{"-kid", "B", "-private", priv, "-public", filepath.Join(dir, "other.json")}, "file exists; refusing to overwrite"},
		{"kid already in the set", []string{"-kid", "A", "-private", fresh, "-public", pub}, `duplicate kid`},
		{"public file not a key set", []string{"-kid", "B", "-private", fresh, "-public", notSet}, "exists and the key cannot be added to it"},
		{"private key as the public set", []string{"-kid", "B", "-private", fresh, "-public", priv}, "exists and the key cannot be added to it"},
	}
	for _, tt := range tests {
		_, err := tokenCmd(t, append([]string{"keygen"}, tt.args...)...)
		var usage cli.UsageError
		if !errors.As(err, &usage) || !strings.Contains(err.Error(), tt.want) {
			t.Errorf("keygen(%s) = %v; want a usage error with %q", tt.name, err, tt.want)
		}
		if _, err := os.Stat(fresh); err == nil {
			t.Errorf("keygen(%s) wrote %s; want nothing written", tt.name, fresh)
			os.Remove(fresh)
		}
		if _, err := os.Stat(filepath.Join(dir, "other.json")); err == nil {
			t.Errorf("keygen(%s) wrote the public set of a refused key", tt.name)
		}
	}
	privAfter, _ := os.ReadFile(priv)
	pubAfter, _ := os.ReadFile(pub)
	if !bytes.Equal(privAfter, privBefore) || !bytes.Equal(pubAfter, pubBefore) {
		t.Errorf("refused keygens changed the existing key files")
	}
}

// TestTokenCmdMintHS256 mints with an oct JWK, the one file serving both sides.
func TestTokenCmdMintHS256(t *testing.T) {
	dir := t.TempDir()
	jwk := `{"kty":"oct","kid":"ci","alg":"HS256","k":"` + strings.Repeat("c2VjcmV0", 6) + `"}`
	key := filepath.Join(dir, "ci.jwk")
	pub := filepath.Join(dir, "keys.json")
	if err := os.WriteFile(key, []byte(jwk), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(pub, []byte(`{"keys":[`+jwk+`]}`), 0o600); err != nil {
		t.Fatal(err)
	}
	tok := strings.TrimSpace(tokenCmdOK(t, "mint", "-key", key, "-sub", "ci", "-scope", "events:write", "-ttl", "10m"))
	if c, err := tokenCmdVerify(t, pub, tok, tokenCmdNow); err != nil || !c.Has("events:write") {
		t.Errorf("Verify(HS256 token) = %+v, %v; want events:write", c, err)
	}
}

func TestTokenCmdBadFlags(t *testing.T) {
	dir := t.TempDir()
	priv, pub := filepath.Join(dir, "k.jwk"), filepath.Join(dir, "keys.json")
	tokenCmdOK(t, "keygen", "-kid", "A", "-private", priv, "-public", pub)
	mint := func(extra ...string) []string {
		return append([]string{"mint", "-key", priv, "-sub", "s", "-scope", "events:write", "-ttl", "1h"}, extra...)
	}
	tests := []struct {
		name string
		args []string
		want string
	}{
		{"no subcommand", nil, "want a subcommand"},
		{"unknown subcommand", []string{"verify"}, `unknown subcommand "verify"`},
		{"keygen without flags", []string{"keygen"}, "-kid: must not be empty"},
		{"keygen without -private", []string{"keygen", "-kid", "B", "-public", pub}, "-private: must name"},
		{"keygen without -public", []string{"keygen", "-kid", "B", "-private", filepath.Join(dir, "b")}, "-public: must name"},
		{"keygen same file twice", []string{"keygen", "-kid", "B", "-private", filepath.Join(dir, "b"), "-public", filepath.Join(dir, "b")}, "must not be the -private file"},
		{"keygen unknown flag", []string{"keygen", "-kid", "B", "-force"}, "flag provided but not defined: -force"},
		{"keygen extra argument", []string{"keygen", "-kid", "B", "-private", "x", "-public", "y", "z"}, `unexpected arguments ["z"]`},
		{"keygen in a missing directory", []string{"keygen", "-kid", "B", "-private", filepath.Join(dir, "no", "b"), "-public", filepath.Join(dir, "no", "p")}, "-private"},
		{"mint without -key", []string{"mint", "-sub", "s", "-scope", "events:write", "-ttl", "1h"}, "-key: must name the private key file"},
		{"mint missing key file", []string{"mint", "-key", filepath.Join(dir, "none"), "-sub", "s", "-scope", "events:write", "-ttl", "1h"}, "-key: open"},
		{"mint with the public set", []string{"mint", "-key", pub, "-sub", "s", "-scope", "events:write", "-ttl", "1h"}, "-key " + pub + ": token private key: this is a key set"},
		{"mint without -sub", mint("-sub", ""), "-sub: must not be empty"},
		{"mint without -scope", mint("-scope", ""), "-scope: must name at least one of"},
		{"mint unknown scope", mint("-scope", "events:write revenue:write"), `-scope: unknown scope "revenue:write"`},
		{"mint scope a superstring", mint("-scope", "revenue:readx"), `-scope: unknown scope "revenue:readx"`},
		{"mint scope other case", mint("-scope", "Ops:Read"), `-scope: unknown scope "Ops:Read"`},
		{"mint scope twice", mint("-scope", "ops:read ops:read"), `-scope: "ops:read" given twice`},
		{"mint without -ttl", []string{"mint", "-key", priv, "-sub", "s", "-scope", "events:write"}, "-ttl: must be positive"},
		{"mint negative -ttl", mint("-ttl", "-1h"), "-ttl: must be positive"},
		{"mint -ttl not a duration", mint("-ttl", "30d"), `invalid value "30d" for flag -ttl`},
		{"mint empty -aud", mint("-aud", ""), "-aud: must not be empty"},
		{"mint extra argument", mint("now"), `unexpected arguments ["now"]`},
	}
	for _, tt := range tests {
		var stdout, stderr bytes.Buffer
		err := runTokenCommand(tt.args, &stdout, &stderr, tokenCmdNow)
		if code := cli.ExitCode(err, io.Discard); code != cli.ExitUsage || !strings.Contains(err.Error(), tt.want) {
			t.Errorf("server token %s (%s) = %v (exit %d); want exit 2 with %q", strings.Join(tt.args, " "), tt.name, err, code, tt.want)
		}
		if stdout.Len() > 0 {
			t.Errorf("server token (%s) printed %q; want nothing on stdout", tt.name, stdout.String())
		}
	}
	entries, _ := os.ReadDir(dir)
	if len(entries) != 2 {
		t.Errorf("refused commands left %d files; want the 2 from the first keygen", len(entries))
	}
}

func TestTokenCmdHelp(t *testing.T) {
	for _, args := range [][]string{{"-h"}, {"help"}, {"keygen", "-h"}, {"mint", "-help"}} {
		var stdout, stderr bytes.Buffer
		err := runTokenCommand(args, &stdout, &stderr, tokenCmdNow)
		if !errors.Is(err, flag.ErrHelp) || cli.ExitCode(err, io.Discard) != cli.ExitOK {
			t.Errorf("server token %s = %v; want flag.ErrHelp (exit 0)", strings.Join(args, " "), err)
		}
		if !strings.Contains(stderr.String(), "server token keygen -kid KID") {
			t.Errorf("server token %s printed %q; want the usage", strings.Join(args, " "), stderr.String())
		}
	}
}
