package main

import (
	"crypto/rand"
	"errors"
	"flag"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"finonex/internal/auth"
	"finonex/internal/cli"
	"finonex/internal/token"
)

const tokenUsage = `
server token makes the keys and the bearer tokens the server verifies.

Usage:
  server token keygen -kid KID -private FILE -public FILE
  server token mint -key FILE -sub SUB -scope SCOPES -ttl DURATION [-aud AUD] [-iss ISS]

keygen makes an Ed25519 key pair. The private key (one JWK, mode 0600) is for mint only;
the public key set (a JWKS, mode 0644) is what the server loads with -token-keys. keygen
never overwrites a private key file. When -public already holds a key set, the new key is
added to it: that is how a rotation starts. Keep the old key in the set until every token
it signed has expired, then remove it and send the server SIGHUP.

mint prints one signed token and a newline on standard output.

Example:
  server token keygen -kid 2026-12 -private token-2026-12.jwk -public token-keys.json
  server token mint -key token-2026-12.jwk -sub svc-ingest -scope events:write -ttl 720h
`

// runTokenCommand runs "server token ..."; args are those after "token". Bad flags are a
// cli.UsageError, -h is flag.ErrHelp.
func runTokenCommand(args []string, stdout, stderr io.Writer, now time.Time) error {
	if len(args) == 0 {
		fmt.Fprint(stderr, strings.TrimLeft(tokenUsage, "\n"))
		return cli.UsageError{Err: errors.New("token: want a subcommand, keygen or mint")}
	}
	switch args[0] {
	case "keygen":
		return tokenKeygen(args[1:], stdout, stderr)
	case "mint":
		return tokenMint(args[1:], stdout, stderr, now)
	case "-h", "-help", "--help", "help":
		fmt.Fprint(stderr, strings.TrimLeft(tokenUsage, "\n"))
		return flag.ErrHelp
	}
	return cli.UsageError{Err: fmt.Errorf("token: unknown subcommand %q: want keygen or mint", args[0])}
}

func newTokenFlagSet(name string, stderr io.Writer) *flag.FlagSet {
	fset := flag.NewFlagSet(name, flag.ContinueOnError)
	fset.SetOutput(stderr)
	fset.Usage = func() {
		fmt.Fprint(stderr, strings.TrimLeft(tokenUsage, "\n"))
		fmt.Fprintf(stderr, "\nFlags of %s:\n", name)
		fset.PrintDefaults()
	}
	return fset
}

// parseTokenFlags parses args: a bad flag, or any argument left over, is a UsageError.
func parseTokenFlags(fset *flag.FlagSet, args []string) error {
	if err := fset.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return err
		}
		return cli.UsageError{Err: err}
	}
	return cli.Check(fset.NArg() > 0, "", "%s: unexpected arguments %q: it takes flags only", fset.Name(), fset.Args())
}

func tokenKeygen(args []string, stdout, stderr io.Writer) error {
	fset := newTokenFlagSet("server token keygen", stderr)
	kid := fset.String("kid", "", "key `ID` for the new key, unique in the set; tokens name it (a date such as 2026-12 reads well)")
	privPath := fset.String("private", "", "`file` to write the private key to (mode 0600); must not exist")
	pubPath := fset.String("public", "", "key set `file` for the server's -token-keys: created (mode 0644), or the new key added to the set in it")
	if err := parseTokenFlags(fset, args); err != nil {
		return err
	}
	if err := errors.Join(
		cli.Check(*kid == "", "kid", "must not be empty: tokens name their key by it"),
		cli.Check(*privPath == "", "private", "must name the file for the private key"),
		cli.Check(*pubPath == "", "public", "must name the key set file"),
		cli.Check(*privPath != "" && filepath.Clean(*privPath) == filepath.Clean(*pubPath), "public", "must not be the -private file"),
	); err != nil {
		return err
	}

	public, private, err := token.GenerateEd25519(*kid, rand.Reader)
	if err != nil {
		return err
	}
	// The existing set is merged before anything is written, so that a broken set or a
	// kid already in it leaves no new private key behind.
	old, err := os.ReadFile(*pubPath)
	appending := err == nil
	switch {
	case appending:
		if public, err = token.MergeKeySets(old, public); err != nil {
			return cli.UsageError{Err: fmt.Errorf("-public %s exists and the key cannot be added to it: %w", *pubPath, err)}
		}
	case !errors.Is(err, fs.ErrNotExist):
		return cli.PathError("public", err)
	}

	if err := writeNewFile("private", *privPath, private, 0o600); err != nil {
		return err
	}
	if appending {
		err = replaceFile(*pubPath, public, 0o644)
	} else {
		err = writeNewFile("public", *pubPath, public, 0o644)
	}
	if err != nil {
		// Without its public half the private key signs tokens nobody accepts.
		return errors.Join(err, os.Remove(*privPath))
	}
	what := "created"
	if appending {
		what = "added to"
	}
	_, err = fmt.Fprintf(stdout, "kid %s: private key written to %s (keep it secret), public key %s %s\n",
		*kid, *privPath, what, *pubPath)
	return err
}

// writeNewFile writes data and a newline to path, which must not exist: O_EXCL makes that
// check and the creation one step, so two keygens cannot both write the same key file.
func writeNewFile(flagName, path string, data []byte, perm os.FileMode) error {
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, perm)
	if errors.Is(err, fs.ErrExist) {
		return cli.UsageError{Err: fmt.Errorf("-%s %s: file exists; refusing to overwrite it", flagName, path)}
	}
	if err != nil {
		return cli.PathError(flagName, err)
	}
	if err := fill(f, perm, data); err != nil {
		return errors.Join(err, os.Remove(path))
	}
	return nil
}

// replaceFile replaces path with data and a newline through a temporary file and a
// rename, so a server reloading the set on SIGHUP reads the old set or the new one, never
// half of one.
func replaceFile(path string, data []byte, perm os.FileMode) error {
	f, err := os.CreateTemp(filepath.Dir(path), "."+filepath.Base(path)+".tmp*")
	if err != nil {
		return err
	}
	tmp := f.Name()
	err = fill(f, perm, data)
	if err == nil {
		err = os.Rename(tmp, path)
	}
	if err != nil {
		return errors.Join(fmt.Errorf("replace %s: %w", path, err), os.Remove(tmp))
	}
	return nil
}

// fill gives the new file f exactly perm, whatever the umask (the server must read the set),
// writes data and a newline, syncs and closes it.
func fill(f *os.File, perm os.FileMode, data []byte) error {
	if err := f.Chmod(perm); err != nil {
		f.Close()
		return err
	}
	_, err := f.Write(append(data, '\n'))
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return fmt.Errorf("write %s: %w", f.Name(), err)
	}
	return nil
}

func tokenMint(args []string, stdout, stderr io.Writer, now time.Time) error {
	fset := newTokenFlagSet("server token mint", stderr)
	keyPath := fset.String("key", "", "private key `file`: one from keygen, or an HS256 oct JWK")
	sub := fset.String("sub", "", "`subject`: who the token is for, e.g. a service name or a user ID")
	scope := fset.String("scope", "", "space-separated `scopes` to grant, of: "+strings.Join(auth.Scopes, " "))
	ttl := fset.Duration("ttl", 0, "how long the token is good for, e.g. 720h")
	aud := fset.String("aud", token.DefaultAudience, "`audience`: must be the server's")
	iss := fset.String("iss", "", "`issuer`, when the server checks one; empty: none")
	if err := parseTokenFlags(fset, args); err != nil {
		return err
	}
	scopes, scopeErr := parseScopes(*scope)
	if err := errors.Join(
		cli.Check(*keyPath == "", "key", "must name the private key file (see keygen)"),
		cli.Check(*sub == "", "sub", "must not be empty"),
		scopeErr,
		cli.Check(*ttl <= 0, "ttl", "must be positive, e.g. 720h; got %v", *ttl),
		cli.Check(*aud == "", "aud", "must not be empty"),
	); err != nil {
		return err
	}
	data, err := os.ReadFile(*keyPath)
	if err != nil {
		return cli.PathError("key", err)
	}
	signer, err := token.ParseSigner(data)
	if err != nil {
		return cli.UsageError{Err: fmt.Errorf("-key %s: %w", *keyPath, err)}
	}
	tok, err := signer.Mint(token.Grant{Subject: *sub, Scopes: scopes, Audience: *aud, Issuer: *iss, TTL: *ttl}, now)
	if err != nil {
		return err
	}
	_, err = fmt.Fprintln(stdout, tok)
	return err
}

// parseScopes splits -scope at spaces; each scope must be one of auth.Scopes, once. mint
// refuses any other: a misspelt scope would make a token that looks right and is refused
// everywhere.
func parseScopes(s string) ([]string, error) {
	scopes := strings.Fields(s)
	if len(scopes) == 0 {
		return nil, cli.Check(true, "scope", "must name at least one of %s", strings.Join(auth.Scopes, " "))
	}
	for i, sc := range scopes {
		switch {
		case !slices.Contains(auth.Scopes, sc):
			return nil, cli.Check(true, "scope", "unknown scope %q: want some of %s", sc, strings.Join(auth.Scopes, " "))
		case slices.Contains(scopes[:i], sc):
			return nil, cli.Check(true, "scope", "%q given twice", sc)
		}
	}
	return scopes, nil
}
