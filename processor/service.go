package main

import (
	"context"
	"encoding/json"
	"errors"
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
)

// maxBackoff caps the wait between attempts while PostgreSQL is down.
const maxBackoff = 30 * time.Second

// runService runs the processor as a service: the watch loop (or, without -watch, one run)
// beside an HTTP server for /healthz, /readyz and /metrics when -addr is set. It returns
// nil after SIGINT or SIGTERM: a transaction in progress is rolled back by the cancelled
// context, never left half done, and its file stays claimed for the next start.
func runService(ctx context.Context, p *processor, c config, stderr io.Writer) error {
	log := logs.NewLogger(stderr, c.logFormat)
	tokens, err := auth.LoadVerifier(c.tokenKeys, c.tokenAudience, c.tokenIssuer)
	if err != nil {
		return cli.CheckFlag("token-keys", err)
	}
	p.m.watchBacklog(c.eventsFile)
	var srv *http.Server
	served := make(chan error, 1)
	if c.addr != "" {
		ln, err := net.Listen("tcp", c.addr)
		if err != nil {
			return cli.CheckFlag("addr", err)
		}
		srv = &http.Server{
			Handler:           newHandler(auth.New([]string{c.secret}, tokens), p),
			ReadHeaderTimeout: 5 * time.Second,
			ReadTimeout:       10 * time.Second,
			WriteTimeout:      30 * time.Second,
			IdleTimeout:       time.Minute,
		}
		logs.Listening(log, ln.Addr())
		go func() { served <- srv.Serve(ln) }()
	}
	stopReload := auth.WatchReload(ctx, log, tokens, c.tokenKeys)

	start := time.Now()
	if c.watch {
		log.Info("watching", "events_file", c.eventsFile, "interval", c.interval)
		p.watch(ctx, log, c.eventsFile, c.interval)
	} else {
		err = p.once(ctx, c.eventsFile, c.files)
	}
	stopReload()
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

// relistEvery is how many quiet cycles pass between two listings of the directory for
// claimed files a processor left behind: a listing grows with the processed files kept
// there, so an idle cycle only stats the live file.
const relistEvery = 60

// watch applies the live file whenever it holds events, until ctx ends.
func (p *processor) watch(ctx context.Context, log *slog.Logger, live string, interval time.Duration) {
	h := &p.health
	wait := interval
	dbDown := false
	logged := map[string]bool{} // errors already logged, so that a stuck file is not logged every tick
	for tick := 0; ; tick++ {
		start := time.Now()
		err := p.cycle(ctx, live, tick%relistEvery == 0 || h.failed())
		if ctx.Err() != nil {
			return
		}
		h.set(err)
		if err != nil {
			p.m.failures.Inc()
			p.m.retries.Inc()
		}
		var down *dbDownError
		isDown := errors.As(err, &down)
		switch {
		case isDown:
			if !dbDown {
				log.Error("PostgreSQL is unreachable: claimed files are kept, retrying with backoff", "err", down.err, "max_backoff", maxBackoff)
				dbDown = true
			}
			wait = min(2*wait, maxBackoff)
		case err != nil:
			if len(logged) > 1000 {
				clear(logged)
			}
			if msg := err.Error(); !logged[msg] {
				log.Error("applying failed: the files stay claimed and are retried every interval", "err", err)
				logged[msg] = true
			}
			wait = interval
		default:
			wait = interval
		}
		if dbDown && !isDown && h.dbAnswered.Load() {
			log.Info("PostgreSQL is back: applying again")
			dbDown = false
		}
		// Cycles start every interval, not an interval after the last one ended: the time a
		// cycle takes does not add to how stale revenue gets.
		select {
		case <-ctx.Done():
			return
		case <-time.After(time.Until(start.Add(wait))):
		}
	}
}

// dbDownError is a cycle that found PostgreSQL unreachable.
type dbDownError struct{ err error }

func (e *dbDownError) Error() string { return "PostgreSQL is unreachable: " + e.err.Error() }

// cycle is one look at the live file, and with relist at the claimed files beside it. An
// idle pipeline costs a stat: nothing is claimed and PostgreSQL is not asked.
func (p *processor) cycle(ctx context.Context, live string, relist bool) error {
	var left []string
	if relist {
		var err error
		if left, err = spool.Leftovers(live); err != nil {
			return err
		}
	}
	if fi, err := os.Stat(live); len(left) == 0 && (err != nil || fi.Size() == 0) {
		p.m.caughtUp(time.Now())
		return nil
	}
	if err := p.ping(ctx); err != nil {
		return err
	}
	if !relist { // there is work: the leftovers too, as a plain run would list them
		var err error
		if left, err = spool.Leftovers(live); err != nil {
			return cli.PathError("events-file", err)
		}
	}
	err := p.drain(ctx, live, left)
	if err != nil && ctx.Err() == nil {
		if perr := p.ping(ctx); perr != nil {
			return perr // PostgreSQL went away during the work: one outage, not two errors
		}
	}
	return err
}

// ping asks PostgreSQL, briefly, whether it answers.
func (p *processor) ping(ctx context.Context) error {
	pctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	if err := p.db.Ping(pctx); err != nil {
		p.health.dbAnswered.Store(false)
		return &dbDownError{err}
	}
	p.health.dbAnswered.Store(true)
	return nil
}

// health is what /readyz tells of a watching processor: the outcome of its last cycle.
type health struct {
	last       atomic.Pointer[error]
	dbAnswered atomic.Bool // the last ping of PostgreSQL answered
}

func (h *health) set(err error) { h.last.Store(&err) }

// lastErr is the error the last cycle ended with, or nil.
func (h *health) lastErr() error {
	if p := h.last.Load(); p != nil {
		return *p
	}
	return nil
}

// failed reports whether the last cycle ended in an error.
func (h *health) failed() bool { return h.lastErr() != nil }

// problems lists why the processor is not ready: PostgreSQL not answering now, or the last
// attempt failed.
func (h *health) problems(ctx context.Context, ping func(context.Context) error) []string {
	var problems []string
	if err := ping(ctx); err != nil {
		problems = append(problems, "database: unavailable")
	}
	if err := h.lastErr(); err != nil {
		var down *dbDownError
		if !errors.As(err, &down) {
			problems = append(problems, "applying: the last attempt failed; see the processor log")
		}
	}
	return problems
}

// newHandler serves /healthz and /readyz, open, and /metrics, behind the credentials.
func newHandler(creds *auth.Credentials, p *processor) http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, r *http.Request) {
		writeJSON(w, http.StatusOK, map[string]string{"status": "ok"})
	})
	mux.HandleFunc("GET /readyz", func(w http.ResponseWriter, r *http.Request) {
		ctx, cancel := context.WithTimeout(r.Context(), 2*time.Second)
		defer cancel()
		if problems := p.health.problems(ctx, p.db.Ping); len(problems) > 0 {
			writeJSON(w, http.StatusServiceUnavailable, map[string]any{"status": "not ready", "problems": problems})
			return
		}
		writeJSON(w, http.StatusOK, map[string]string{"status": "ready"})
	})
	mux.HandleFunc("GET /metrics", func(w http.ResponseWriter, r *http.Request) {
		if ref := creds.Allow(r, opsRead); ref != nil {
			p.m.refuse(w, ref.Status, ref.Reason, ref.Challenge, ref.Msg)
			return
		}
		p.m.reg.ServeHTTP(w, r)
	})
	mux.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		p.m.refuse(w, http.StatusNotFound, "no_route", "", "no such endpoint: see /healthz, /readyz, /metrics")
	})
	return mux
}

// opsRead lets through the requests whose grant has ops:read.
func opsRead(g auth.Grant, _ *http.Request) bool { return g.Has(auth.OpsRead) }

// refuse is the one place a request to -addr gets an error: it counts the refusal by its
// reason and answers it, with the challenge when there is one.
func (m *metrics) refuse(w http.ResponseWriter, status int, reason, challenge, msg string) {
	m.refused.With(reason).Inc()
	if challenge != "" {
		w.Header().Set("WWW-Authenticate", challenge)
	}
	writeJSON(w, status, map[string]string{"error": msg})
}

// writeJSON answers v as JSON. The values are maps of strings: they always encode.
func writeJSON(w http.ResponseWriter, status int, v any) {
	body, _ := json.Marshal(v)
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	w.Write(append(body, '\n'))
}
