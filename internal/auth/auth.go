// Package auth decides who a request is: the credentials the programs accept in the
// Authorization header, and the scopes each grants. Tokens are verified by package token;
// what each route asks for is the program's business (the server's routes.go).
package auth

import (
	"context"
	"crypto/sha256"
	"crypto/subtle"
	"errors"
	"log/slog"
	"net/http"
	"os"
	"os/signal"
	"strings"
	"syscall"

	"finonex/internal/token"
)

// The scopes a token may carry.
const (
	EventsWrite    = "events:write"     // POST /liveEvent
	RevenueRead    = "revenue:read"     // GET /userEvents/{userid}, any user
	RevenueReadOwn = "revenue:read:own" // GET /userEvents/{userid} where userid is the token's sub
	OpsRead        = "ops:read"         // /metrics, /debug/vars, /debug/pprof/
)

// Scopes lists every scope there is.
var Scopes = []string{EventsWrite, RevenueRead, RevenueReadOwn, OpsRead}

// Credentials are what a program accepts: shared secrets (the exact header value; each
// grants every scope), and bearer tokens checked by a token.Verifier.
type Credentials struct {
	secrets [][sha256.Size]byte
	tokens  *token.Verifier // nil: no tokens accepted
}

// New returns Credentials accepting the non-empty secrets and, when tokens is not nil, the
// bearer tokens it verifies.
func New(secrets []string, tokens *token.Verifier) *Credentials {
	c := &Credentials{tokens: tokens}
	for _, s := range secrets {
		if s != "" {
			c.secrets = append(c.secrets, sha256.Sum256([]byte(s)))
		}
	}
	return c
}

// Grant is what one request's credentials allow.
type Grant struct {
	all    bool // a shared secret: every scope
	claims token.Claims
}

// Has reports whether the grant holds scope.
func (g Grant) Has(scope string) bool { return g.all || g.claims.Has(scope) }

// Subject is the token's sub; "" for a shared secret.
func (g Grant) Subject() string { return g.claims.Subject }

// ErrNoCredentials is returned by Authenticate for a request without an Authorization header.
var ErrNoCredentials = errors.New("missing Authorization header")

// ErrBadCredentials wraps every other refusal of Authenticate. Its message says which check
// failed, never what the header held: a token is never echoed, nor logged.
var ErrBadCredentials = errors.New("bad credentials")

// Authenticate reads the request's Authorization header.
func (c *Credentials) Authenticate(r *http.Request) (Grant, error) {
	h := r.Header.Get("Authorization")
	if c.isSecret(h) {
		return Grant{all: true}, nil
	}
	scheme, tok, ok := strings.Cut(h, " ")
	switch {
	case h == "":
		return Grant{}, ErrNoCredentials
	case !ok || !strings.EqualFold(scheme, "Bearer"):
		return Grant{}, wrong("wrong Authorization header: want the shared secret or Bearer <token>")
	case c.tokens == nil:
		return Grant{}, wrong("wrong Authorization header: this server takes no bearer tokens")
	}
	claims, err := c.tokens.Verify(tok)
	if err != nil {
		return Grant{}, wrong(err.Error()) // token errors name the failed check only
	}
	return Grant{claims: claims}, nil
}

type badCredentials string

func (e badCredentials) Error() string        { return string(e) }
func (e badCredentials) Is(target error) bool { return target == ErrBadCredentials }

func wrong(msg string) error { return badCredentials(msg) }

// isSecret compares h with every secret through their hashes, so that the time taken says
// nothing about the secrets.
func (c *Credentials) isSecret(h string) bool {
	if len(c.secrets) == 0 {
		return false // -secret '': tokens only, nothing to hash
	}
	got := sha256.Sum256([]byte(h))
	ok := 0
	for i := range c.secrets {
		ok |= subtle.ConstantTimeCompare(got[:], c.secrets[i][:])
	}
	return ok == 1
}

// The WWW-Authenticate values of RFC 6750: a 401 (no credential, or a bad one) and a 403 (a
// good credential whose scopes do not allow the request).
const (
	ChallengeInvalidToken      = `Bearer error="invalid_token"`
	ChallengeInsufficientScope = `Bearer error="insufficient_scope"`
)

// LoadVerifier returns a token.Verifier for audience and issuer with the key set at path
// loaded, or nil when path is empty: no tokens are accepted then.
func LoadVerifier(path, audience, issuer string) (*token.Verifier, error) {
	if path == "" {
		return nil, nil
	}
	v := token.NewVerifier(token.Config{Audience: audience, Issuer: issuer})
	if err := v.LoadFile(path); err != nil {
		return nil, err
	}
	return v, nil
}

// Refusal is a request refused for its credentials: the status (401 or 403), the reason it
// is counted under, the WWW-Authenticate challenge, and a message that never holds what the
// header held.
type Refusal struct {
	Status            int
	Reason, Challenge string
	Msg               string
}

// Allow authenticates r and asks ok whether its grant lets r through. It returns nil when
// it does, a 401 Refusal for missing or bad credentials, and a 403 one for a grant ok
// refuses. Every program answers its refusals from here, so they read the same.
func (c *Credentials) Allow(r *http.Request, ok func(Grant, *http.Request) bool) *Refusal {
	g, err := c.Authenticate(r)
	switch {
	case err != nil:
		return &Refusal{Status: http.StatusUnauthorized, Reason: "unauthenticated", Challenge: ChallengeInvalidToken, Msg: err.Error()}
	case !ok(g, r):
		return &Refusal{Status: http.StatusForbidden, Reason: "forbidden", Challenge: ChallengeInsufficientScope, Msg: "the token's scopes do not allow this request"}
	}
	return nil
}

// WatchReload reloads v's key set from path on every SIGHUP until the returned stop is
// called, and logs each outcome to log; a file that does not load keeps the keys in use.
// SIGHUP is caught before WatchReload returns, so a program may say it is ready right after.
func WatchReload(ctx context.Context, log *slog.Logger, v *token.Verifier, path string) (stop func()) {
	hup := make(chan os.Signal, 1)
	signal.Notify(hup, syscall.SIGHUP)
	ctx, cancel := context.WithCancel(ctx)
	done := make(chan struct{})
	go func() {
		defer close(done)
		ReloadOnSignal(ctx, hup, v, path, func(err error) {
			if err != nil {
				log.Error("token keys not reloaded: the keys in use stay", "err", err)
				return
			}
			log.Info("token keys reloaded")
		})
	}()
	return func() {
		cancel()
		<-done
		signal.Stop(hup)
	}
}

// ReloadOnSignal reloads the key set at path into v each time sig delivers, until ctx ends,
// and hands each outcome to report (nil on success). A file that does not load keeps the keys
// in use. With v nil it only drains sig: a program without token keys ignores the signal.
func ReloadOnSignal(ctx context.Context, sig <-chan os.Signal, v *token.Verifier, path string, report func(error)) {
	for {
		select {
		case <-ctx.Done():
			return
		case <-sig:
			if v == nil {
				report(errors.New("no -token-keys to reload"))
				continue
			}
			report(v.LoadFile(path))
		}
	}
}
