package main

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"finonex/internal/cli"
	"finonex/internal/console"
	"finonex/internal/event"
)

const usage = `
client sends each event of a JSON-lines file to the server as its own POST /liveEvent.

Usage: client [flags]

Example:
  client -file events.jsonl -url http://localhost:8000 -secret s3cret -concurrency 64

Exit status: 0 when every valid line was accepted (invalid lines are reported and skipped),
1 when an event failed or the run was interrupted, 2 on bad flags or an unreadable file.
`

type config struct {
	file        string
	url         string
	secret      string
	token       string // a bearer token; sent instead of the secret when set
	concurrency int
	retries     int
	maxBackoff  time.Duration
	timeout     time.Duration
	giveUp      time.Duration
	runID       string
	quiet       bool
	every       time.Duration
}

func parseConfig(args []string, getenv func(string) string, stderr io.Writer) (config, error) {
	fs := cli.NewFlagSet("client", usage, getenv, stderr)
	file := fs.String("file", "FINONEX_FILE", "events.jsonl", "JSON-lines `file` of events to send")
	serverURL := fs.String("url", "FINONEX_URL", "http://localhost:8000", "server base `URL`")
	secret := fs.Secret("secret", "FINONEX_SECRET", "secret", "the server's secret, sent as the Authorization header")
	tok := fs.Secret("token", "FINONEX_TOKEN", "", "a bearer token with events:write, sent as \"Authorization: Bearer <token>\" instead of -secret")
	tokenFile := fs.String("token-file", "FINONEX_TOKEN_FILE", "", "`file` holding the bearer token (so that it stays out of the process list); instead of -token")
	conc := fs.Int("concurrency", "FINONEX_CONCURRENCY", 64, "requests in flight at most")
	retries := fs.Int("retries", "FINONEX_RETRIES", 20, "retries per event after the first attempt (connection errors, timeouts, 409, 429, 5xx)")
	maxBackoff := fs.Duration("max-backoff", "FINONEX_MAX_BACKOFF", 2*time.Second, "longest wait between two attempts")
	timeout := fs.Duration("timeout", "FINONEX_TIMEOUT", 30*time.Second, "time limit of one request")
	giveUp := fs.Duration("give-up-after", "FINONEX_GIVE_UP_AFTER", 5*time.Minute, "no attempt at an event starts this long after its first; keep it below the server's -idempotency-window, so that a late retry cannot count twice")
	runID := fs.String("run-id", "FINONEX_RUN_ID", "", "prefix of the Idempotency-Keys (default random); reuse it to resend a file safely within the server's window")
	quiet := fs.Bool("quiet", "FINONEX_QUIET", false, "no progress line")
	every := fs.Duration("progress-interval", "FINONEX_PROGRESS_INTERVAL", 5*time.Second, "how often to print a progress line when stderr is not a terminal")
	if err := fs.Parse(args); err != nil {
		return config{}, err
	}
	tokenErr := cli.Check(*tok != "" && *tokenFile != "", "token-file", "give -token or -token-file, not both")
	if *tokenFile != "" && tokenErr == nil {
		b, err := os.ReadFile(*tokenFile)
		*tok = strings.TrimSpace(string(b))
		tokenErr = errors.Join(cli.CheckFlag("token-file", err), cli.Check(err == nil && *tok == "", "token-file", "%s is empty", *tokenFile))
	}
	c := config{file: *file, url: strings.TrimRight(*serverURL, "/"), secret: *secret, token: *tok, concurrency: *conc,
		retries: *retries, maxBackoff: *maxBackoff, timeout: *timeout, giveUp: *giveUp, runID: *runID, quiet: *quiet, every: *every}
	u, uerr := url.Parse(c.url)
	if c.runID == "" {
		var b [8]byte
		rand.Read(b[:])
		c.runID = hex.EncodeToString(b[:])
	}
	return c, errors.Join(
		cli.Check(fs.NArg() > 0, "", "unexpected arguments %q: use -file", fs.Args()),
		tokenErr,
		cli.Check(uerr != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "", "url", "want http://host:port, got %q", c.url),
		cli.Check(c.concurrency < 1, "concurrency", "must be at least 1, got %d", c.concurrency),
		cli.Check(c.retries < 0, "retries", "must not be negative, got %d", c.retries),
		cli.Check(c.maxBackoff <= 0, "max-backoff", "must be positive"),
		cli.Check(c.timeout <= 0, "timeout", "must be positive"),
		cli.Check(c.giveUp <= 0, "give-up-after", "must be positive"),
		cli.Check(c.every <= 0, "progress-interval", "must be positive"),
		cli.Check(len(c.runID) > event.MaxKeyBytes-21, "run-id", "must be at most %d bytes", event.MaxKeyBytes-21),
		cli.Check(event.ValidKey(c.runID) != nil, "run-id", "must be printable ASCII"),
	)
}

func run(ctx context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer) error {
	c, err := parseConfig(args, getenv, stderr)
	if err != nil {
		return err
	}
	f, err := os.Open(c.file)
	if err != nil {
		return cli.CheckFlag("file", err)
	}
	defer f.Close()
	size := int64(-1)
	if fi, err := f.Stat(); err == nil && fi.Mode().IsRegular() {
		size = fi.Size()
	}
	con := console.New(stderr, c.quiet)
	s := newSender(c, con)
	s.start = time.Now()
	stop := con.Progress(c.every, func() string { return s.progressLine(size) })
	err = s.sendFile(ctx, f)
	stop()
	s.summary(stdout)
	if err != nil {
		return err
	}
	if n := s.failed.Load(); n > 0 {
		return fmt.Errorf("%d events were not accepted by the server", n)
	}
	return nil
}

// errUnauthorized stops the run: with a wrong secret or token no event can succeed.
var errUnauthorized = errors.New("server answered 401 Unauthorized: check -secret or -token")

// errForbidden stops the run: the token lacks events:write.
var errForbidden = errors.New("server answered 403 Forbidden: the token needs the events:write scope")

// sender sends events with bounded concurrency and retries, and counts what happened.
type sender struct {
	cfg      config
	endpoint string // POST here
	auth     string // the Authorization header: built once, not per request
	http     *http.Client
	con      *console.Console
	latency  histogram
	start    time.Time

	read, sent, skipped, failed, retried, inFlight atomic.Int64
	bytesRead                                      atomic.Int64
}

func newSender(c config, con *console.Console) *sender {
	tr := &http.Transport{
		Proxy:                 http.ProxyFromEnvironment,
		MaxIdleConns:          c.concurrency,
		MaxIdleConnsPerHost:   c.concurrency,
		IdleConnTimeout:       90 * time.Second,
		ResponseHeaderTimeout: c.timeout,
		ForceAttemptHTTP2:     true,
	}
	return &sender{cfg: c, endpoint: c.url + "/liveEvent", auth: c.authorization(), http: &http.Client{Transport: tr, Timeout: c.timeout}, con: con}
}

// job is one valid event to send: its line number (the key's suffix) and its body.
type job struct {
	line int
	body []byte
}

// sendFile reads the file line by line and sends each valid event, with at most
// cfg.concurrency requests in flight (a semaphore channel). The requests are sent by at most
// cfg.concurrency long-lived workers, started as the load needs them: a goroutine per event
// paid for growing a fresh stack every time, and each request's contexts would all hang off
// the run's one context, whose lock every request then took twice.
func (s *sender) sendFile(ctx context.Context, r io.Reader) error {
	ctx, cancel := context.WithCancelCause(ctx)
	defer cancel(nil)
	sem := make(chan struct{}, s.cfg.concurrency)
	jobs := make(chan job)
	var wg sync.WaitGroup
	workers := 0
	sc := event.NewScanner(console.CountingReader{R: r, N: &s.bytesRead})
	for line, err := range sc.Lines() {
		if ctx.Err() != nil {
			break
		}
		s.read.Add(1)
		var ev event.Event
		if err == nil {
			ev, err = event.Parse(line)
		}
		if err != nil {
			s.invalid(sc.Line(), err)
			continue
		}
		select {
		case sem <- struct{}{}:
		case <-ctx.Done():
			continue
		}
		s.inFlight.Add(1)
		j := job{sc.Line(), event.AppendJSON(nil, event.Record{Event: ev})}
		select {
		case jobs <- j: // an idle worker took it
		default:
			if workers < s.cfg.concurrency {
				workers++
				wg.Add(1)
				go s.work(ctx, cancel, sem, jobs, j, &wg)
			} else {
				select {
				case jobs <- j: // a worker that just freed its slot takes it
				case <-ctx.Done():
					s.inFlight.Add(-1)
					<-sem
				}
			}
		}
	}
	close(jobs)
	wg.Wait()
	if err := sc.Err(); err != nil {
		return fmt.Errorf("read %s: %w", s.cfg.file, err)
	}
	if cause := context.Cause(ctx); cause != nil {
		if errors.Is(cause, context.Canceled) {
			return errors.New("interrupted: not every line was sent")
		}
		return cause
	}
	return nil
}

// work sends first and then every job it receives, until jobs is closed. Each job holds a
// slot of sem, freed when its send ends. The worker's own context keeps its requests'
// contexts off the run's: cancelling the run still reaches them, through this one.
func (s *sender) work(ctx context.Context, cancel context.CancelCauseFunc, sem <-chan struct{}, jobs <-chan job, first job, wg *sync.WaitGroup) {
	defer wg.Done()
	ctx, stop := context.WithCancel(ctx)
	defer stop()
	for j, ok := first, true; ok; j, ok = <-jobs {
		s.sendOne(ctx, cancel, j)
		s.inFlight.Add(-1)
		<-sem
	}
}

// sendOne sends one job and counts the outcome; a refused credential stops the run.
func (s *sender) sendOne(ctx context.Context, cancel context.CancelCauseFunc, j job) {
	err := s.send(ctx, j.body, s.cfg.runID+"-"+strconv.Itoa(j.line))
	if err == nil {
		s.sent.Add(1)
		return
	}
	s.failed.Add(1)
	stop := refused(err)
	if stop {
		cancel(err)
	}
	if ctx.Err() == nil || stop {
		s.con.Printf("line %d: not sent: %v\n", j.line, err)
	}
}

func (s *sender) invalid(line int, err error) {
	s.skipped.Add(1)
	s.con.Printf("line %d: invalid, skipped: %v\n", line, err)
}

// send posts one event, retrying what may succeed on a later attempt, until cfg.giveUp after
// the first attempt: past that the server may have forgotten the key, and a retry could
// count the event twice.
func (s *sender) send(ctx context.Context, body []byte, key string) error {
	first := time.Now()
	for attempt := 0; ; attempt++ {
		retryAfter, err := s.post(ctx, body, key)
		if err == nil || !retryable(err) {
			return err
		}
		if attempt == s.cfg.retries {
			return fmt.Errorf("gave up after %d attempts: %w", attempt+1, err)
		}
		wait := max(backoff(attempt, s.cfg.maxBackoff), min(retryAfter, s.cfg.maxBackoff))
		if time.Since(first)+wait > s.cfg.giveUp {
			return fmt.Errorf("gave up after %s (-give-up-after): %w", s.cfg.giveUp, err)
		}
		s.retried.Add(1)
		t := time.NewTimer(wait)
		select {
		case <-t.C:
		case <-ctx.Done():
			t.Stop()
			return context.Cause(ctx)
		}
	}
}

// statusError is a non-2xx answer.
type statusError struct {
	code int
	msg  string
}

func (e *statusError) Error() string { return fmt.Sprintf("server answered %d: %s", e.code, e.msg) }

// refused reports a server that refused the credentials: no event can succeed, so the run
// stops and nothing is retried.
func refused(err error) bool {
	return errors.Is(err, errUnauthorized) || errors.Is(err, errForbidden)
}

func retryable(err error) bool {
	var se *statusError
	if !errors.As(err, &se) {
		return !refused(err) && !errors.Is(err, context.Canceled)
	}
	switch se.code {
	case http.StatusRequestTimeout, http.StatusConflict, http.StatusTooManyRequests:
		return true
	}
	return se.code >= 500
}

// backoff is capped exponential with jitter: half fixed, half random.
func backoff(attempt int, limit time.Duration) time.Duration {
	d := min(50*time.Millisecond<<min(attempt, 16), limit)
	var b [8]byte
	rand.Read(b[:])
	jitter := time.Duration(uint64(b[0])|uint64(b[1])<<8|uint64(b[2])<<16) % (d/2 + 1)
	return d/2 + jitter
}

func (s *sender) post(ctx context.Context, body []byte, key string) (retryAfter time.Duration, err error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, s.endpoint, bytes.NewReader(body))
	if err != nil {
		return 0, err
	}
	req.Header.Set("Authorization", s.auth)
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Idempotency-Key", key)
	start := time.Now()
	resp, err := s.http.Do(req)
	if err != nil {
		return 0, err
	}
	defer resp.Body.Close()
	if resp.StatusCode/100 == 2 {
		// Drained so the connection is reused; a failure there costs only the connection; the
		// status already says the event is stored.
		io.Copy(io.Discard, resp.Body)
		s.latency.observe(time.Since(start))
		return 0, nil
	}
	msg, _ := io.ReadAll(io.LimitReader(resp.Body, 4096))
	io.Copy(io.Discard, resp.Body)
	s.latency.observe(time.Since(start))
	switch resp.StatusCode {
	case http.StatusUnauthorized:
		return 0, errUnauthorized
	case http.StatusForbidden:
		return 0, errForbidden
	}
	if secs, err := time.ParseDuration(resp.Header.Get("Retry-After") + "s"); err == nil {
		retryAfter = secs
	}
	return retryAfter, &statusError{code: resp.StatusCode, msg: strings.TrimSpace(string(msg))}
}

// authorization is the Authorization header's value: the token when there is one.
func (c config) authorization() string {
	if c.token != "" {
		return "Bearer " + c.token
	}
	return c.secret
}

func (s *sender) summary(w io.Writer) {
	elapsed := time.Since(s.start)
	sent := s.sent.Load()
	fmt.Fprintf(w, "sent %d events, elapsed %s (%.0f events/s): %d skipped invalid, %d failed, %d retries; latency p50 %s, p99 %s; run id %s\n",
		sent, elapsed.Round(time.Millisecond), float64(sent)/elapsed.Seconds(), s.skipped.Load(), s.failed.Load(),
		s.retried.Load(), s.latency.quantile(0.50), s.latency.quantile(0.99), s.cfg.runID)
}
