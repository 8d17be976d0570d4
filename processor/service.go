package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"sync/atomic"
	"time"

	"finonex/internal/auth"
	"finonex/internal/cli"
	"finonex/internal/logs"
	"finonex/internal/spool"
	"finonex/internal/token"
)

// maxBackoff caps the wait between attempts while PostgreSQL is down.
const maxBackoff = 30 * time.Second

// runService runs the processor as a service: the watch loop (or, without -watch, one run)
// beside an HTTP server for /healthz, /readyz and /metrics when -addr is set. It returns
// nil after SIGINT or SIGTERM: a transaction in progress is rolled back by the cancelled
// context, never left half done, and its file stays claimed for the next start.
func runService(ctx context.Context, p *processor, c config, stderr io.Writer) error {
	log := logs.NewLogger(stderr, c.logFormat)
	h := &health{}
	p.m.watchBacklog(c.eventsFile)
	var srv *http.Server
	served := make(chan error, 1)
	if c.addr != "" {
		creds, err := credentials(c)
		if err != nil {
			return err
		}
		ln, err := net.Listen("tcp", c.addr)
		if err != nil {
			return cli.UsageError{Err: fmt.Errorf("-addr: %w", err)}
		}
		srv = &http.Server{Handler: newHandler(creds, h, p), ReadHeaderTimeout: 5 * time.Second, IdleTimeout: time.Minute}
		logs.Listening(log, ln.Addr())
		go func() { served <- srv.Serve(ln) }()
	}
	start := time.Now()
	var err error
	if c.watch {
		log.Info("watching", "events_file", c.eventsFile, "interval", c.interval)
		p.watch(ctx, log, h, c.eventsFile, c.interval)
	} else {
		err = p.once(ctx, c.eventsFile, c.files)
	}
	if srv != nil {
		sctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		defer cancel()
		err = errors.Join(err, srv.Shutdown(sctx))
		if serr := <-served; !errors.Is(serr, http.ErrServerClosed) {
			err = errors.Join(err, serr)
		}
	}
	if p.files > 0 {
		p.summary(time.Since(start))
	}
	if c.watch {
		log.Info("stopped", "files", p.files, "events", p.events)
	}
	return err
}

// watch applies the live file whenever it holds events, until ctx ends.
func (p *processor) watch(ctx context.Context, log *slog.Logger, h *health, live string, interval time.Duration) {
	wait := interval
	dbDown := false
	logged := map[string]bool{} // errors already logged, so that a stuck file is not logged every tick
	for {
		err := p.cycle(ctx, live)
		if ctx.Err() != nil {
			return
		}
		h.set(err)
		var down *dbDownError
		switch {
		case err == nil:
			if dbDown {
				log.Info("PostgreSQL is back: applying again")
				dbDown = false
			}
			wait = interval
		case errors.As(err, &down):
			if !dbDown {
				log.Error("PostgreSQL is unreachable: claimed files are kept, retrying with backoff", "err", down.err, "max_backoff", maxBackoff)
				dbDown = true
			}
			wait = min(2*wait, maxBackoff)
		default:
			if len(logged) > 1000 {
				clear(logged)
			}
			if msg := err.Error(); !logged[msg] {
				log.Error("applying failed: the files stay claimed and are retried every interval", "err", err)
				logged[msg] = true
			}
			wait = interval
		}
		if err != nil {
			p.m.failures.Inc()
			p.m.retries.Inc()
		}
		select {
		case <-ctx.Done():
			return
		case <-time.After(wait):
		}
	}
}

// dbDownError is a cycle that found PostgreSQL unreachable before it touched any file.
type dbDownError struct{ err error }

func (e *dbDownError) Error() string { return "PostgreSQL is unreachable: " + e.err.Error() }

// cycle is one look at the live file. An idle pipeline costs a listing and a stat: nothing
// is claimed and PostgreSQL is not asked.
func (p *processor) cycle(ctx context.Context, live string) error {
	left, err := spool.Leftovers(live)
	if err != nil {
		return err
	}
	fi, err := os.Stat(live)
	if len(left) == 0 && (err != nil || fi.Size() == 0) {
		p.m.caughtUp(time.Now())
		return nil
	}
	pctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	err = p.db.Ping(pctx)
	cancel()
	if err != nil {
		p.m.postgresUp.Set(0)
		return &dbDownError{err}
	}
	p.m.postgresUp.Set(1)
	return p.once(ctx, live, nil)
}

// health is the outcome of the last watch cycle, for /readyz.
type health struct{ last atomic.Pointer[error] }

func (h *health) set(err error) { h.last.Store(&err) }

func (h *health) problem() string {
	p := h.last.Load()
	if p == nil || *p == nil {
		return ""
	}
	var down *dbDownError
	if errors.As(*p, &down) {
		return "database: unavailable"
	}
	return "applying: the last attempt failed; see the processor log"
}

// credentials are what /metrics accepts: the shared secret, and tokens with ops:read.
func credentials(c config) (*auth.Credentials, error) {
	var tokens *token.Verifier
	if c.tokenKeys != "" {
		tokens = token.NewVerifier(token.Config{})
		if err := tokens.LoadFile(c.tokenKeys); err != nil {
			return nil, cli.UsageError{Err: fmt.Errorf("-token-keys: %w", err)}
		}
	}
	return auth.New([]string{c.secret}, tokens), nil
}

// newHandler serves /healthz and /readyz, open, and /metrics, behind the credentials.
func newHandler(creds *auth.Credentials, h *health, p *processor) http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, r *http.Request) {
		writeJSON(w, http.StatusOK, map[string]string{"status": "ok"})
	})
	mux.HandleFunc("GET /readyz", func(w http.ResponseWriter, r *http.Request) {
		if msg := h.problem(); msg != "" {
			writeJSON(w, http.StatusServiceUnavailable, map[string]any{"status": "not ready", "problems": []string{msg}})
			return
		}
		writeJSON(w, http.StatusOK, map[string]string{"status": "ready"})
	})
	mux.HandleFunc("GET /metrics", func(w http.ResponseWriter, r *http.Request) {
		g, err := creds.Authenticate(r)
		switch {
		case err != nil:
			w.Header().Set("WWW-Authenticate", `Bearer realm="finonex", error="invalid_token"`)
			writeJSON(w, http.StatusUnauthorized, map[string]string{"error": err.Error()})
		case !g.Has(auth.OpsRead):
			w.Header().Set("WWW-Authenticate", `Bearer realm="finonex", error="insufficient_scope"`)
			writeJSON(w, http.StatusForbidden, map[string]string{"error": "the token's scopes do not allow this request"})
		default:
			p.m.reg.ServeHTTP(w, r)
		}
	})
	mux.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		writeJSON(w, http.StatusNotFound, map[string]string{"error": "no such endpoint: see /healthz, /readyz, /metrics"})
	})
	return mux
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	json.NewEncoder(w).Encode(v)
}
