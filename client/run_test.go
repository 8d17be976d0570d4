package main

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"finonex/internal/cli"
)

const testSecret = "client-Secret-1"

// peer is a fake HTTP server standing in for the real one (a different package main): it
// records every request and answers as plan says.
type peer struct {
	mu          sync.Mutex
	total       int
	attempts    map[string]int    // by Idempotency-Key
	acked       map[string]string // key -> body, for 2xx answers
	bad         []string          // requests with wrong method, path or headers
	inFlight    int
	maxInFlight int

	delay   time.Duration
	arrived chan struct{} // gets a value per request, when not nil
	// plan returns the status for the attempt-th request with key; 0 resets the connection.
	plan func(key string, attempt int, body string) int
}

func newPeer(t *testing.T, p *peer) *httptest.Server {
	p.attempts = map[string]int{}
	p.acked = map[string]string{}
	srv := httptest.NewServer(p)
	t.Cleanup(srv.Close)
	return srv
}

func (p *peer) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	body, err := io.ReadAll(r.Body)
	key := r.Header.Get("Idempotency-Key")
	p.mu.Lock()
	p.total++
	p.attempts[key]++
	attempt := p.attempts[key]
	p.inFlight++
	p.maxInFlight = max(p.maxInFlight, p.inFlight)
	if err != nil || r.Method != http.MethodPost || r.URL.Path != "/liveEvent" || key == "" ||
		r.Header.Get("Authorization") != testSecret || r.Header.Get("Content-Type") != "application/json" {
		p.bad = append(p.bad, fmt.Sprintf("%s %s key=%q auth=%q ct=%q err=%v", r.Method, r.URL.Path, key,
			r.Header.Get("Authorization"), r.Header.Get("Content-Type"), err))
	}
	p.mu.Unlock()
	if p.arrived != nil {
		select {
		case p.arrived <- struct{}{}:
		default:
		}
	}
	if p.delay > 0 {
		time.Sleep(p.delay)
	}
	status := http.StatusOK
	if p.plan != nil {
		status = p.plan(key, attempt, string(body))
	}
	p.mu.Lock()
	p.inFlight-- // before answering, so that the client's next request cannot overlap it
	if status/100 == 2 {
		if prev, ok := p.acked[key]; ok {
			p.bad = append(p.bad, fmt.Sprintf("key %s acknowledged twice: %q, %q", key, prev, body))
		}
		p.acked[key] = string(body)
	}
	p.mu.Unlock()
	if status == 0 {
		conn, _, err := w.(http.Hijacker).Hijack()
		if err != nil {
			panic(err)
		}
		if tc, ok := conn.(*net.TCPConn); ok {
			tc.SetLinger(0) // RST, not FIN
		}
		conn.Close()
		return
	}
	if status == http.StatusServiceUnavailable || status == http.StatusTooManyRequests || status == http.StatusConflict {
		w.Header().Set("Retry-After", "1")
	}
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	fmt.Fprintf(w, "{\"error\":\"status %d\"}\n", status)
}

func writeFile(t *testing.T, content string) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), "events.jsonl")
	if err := os.WriteFile(path, []byte(content), 0o644); err != nil {
		t.Fatal(err)
	}
	return path
}

type result struct {
	err            error
	stdout, stderr string
}

// runClient runs the client on file against url. The environment is empty, so that the
// caller's FINONEX_* variables cannot change the test.
func runClient(t *testing.T, ctx context.Context, file, url string, extra ...string) result {
	t.Helper()
	args := append([]string{"-file", file, "-url", url, "-secret", testSecret, "-run-id", "run1",
		"-max-backoff", "5ms", "-timeout", "10s"}, extra...)
	var stdout, stderr bytes.Buffer
	ctx, cancel := context.WithTimeout(ctx, 60*time.Second)
	defer cancel()
	err := run(ctx, args, func(string) string { return "" }, &stdout, &stderr)
	return result{err, stdout.String(), stderr.String()}
}

func ev(user string, value int) string {
	return fmt.Sprintf(`{"userId":%q,"name":"add_revenue","value":%d}`, user, value)
}

func wantSummary(t *testing.T, stdout string, sent, skipped, failed int) {
	t.Helper()
	for _, want := range []string{
		fmt.Sprintf("sent %d events", sent),
		fmt.Sprintf("%d skipped invalid", skipped),
		fmt.Sprintf("%d failed", failed),
	} {
		if !strings.Contains(stdout, want) {
			t.Errorf("summary %q; want it to contain %q", stdout, want)
		}
	}
	if strings.Count(stdout, "\n") != 1 {
		t.Errorf("stdout %q; want exactly one summary line", stdout)
	}
}

func TestSendsEveryValidLineOnce(t *testing.T) {
	p := &peer{}
	srv := newPeer(t, p)
	long := `{"userId":"` + strings.Repeat("x", 70<<10) + `","name":"add_revenue","value":1}`
	file := writeFile(t, strings.Join([]string{
		ev("u1", 10),      // 1
		"",                // 2: blank
		`{"userId":"u2"}`, // 3: invalid
		` { "value": 5, "name":"subtract_revenue", "userId":"u\u0032" } `, // 4
		"  \t ",            // 5: blank
		"not json",         // 6: invalid
		ev("u3", 7) + "\r", // 7: CRLF
		long,               // 8: too long
		ev("u1", -1),       // 9: invalid
		ev(`é "q"`, 0),     // 10
	}, "\n")) // no final newline
	res := runClient(t, context.Background(), file, srv.URL, "-quiet", "-concurrency", "3")
	if res.err != nil {
		t.Fatalf("run = %v; stderr:\n%s", res.err, res.stderr)
	}
	want := map[string]string{
		"run1-1":  `{"userId":"u1","name":"add_revenue","value":10}`,
		"run1-4":  `{"userId":"u2","name":"subtract_revenue","value":5}`,
		"run1-7":  `{"userId":"u3","name":"add_revenue","value":7}`,
		"run1-10": `{"userId":"é \"q\"","name":"add_revenue","value":0}`,
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	for _, b := range p.bad {
		t.Errorf("bad request: %s", b)
	}
	if p.total != len(want) {
		t.Errorf("server got %d requests; want %d", p.total, len(want))
	}
	for k, body := range want {
		if p.acked[k] != body {
			t.Errorf("key %s: body %q; want %q", k, p.acked[k], body)
		}
		if p.attempts[k] != 1 {
			t.Errorf("key %s sent %d times; want 1", k, p.attempts[k])
		}
	}
	for _, w := range []string{
		`line 3: invalid, skipped: missing key "name"`,
		"line 6: invalid, skipped:",
		"line 8: invalid, skipped: line is longer than 65536 bytes",
		"line 9: invalid, skipped: value must not be negative",
	} {
		if !strings.Contains(res.stderr, w) {
			t.Errorf("stderr lacks %q:\n%s", w, res.stderr)
		}
	}
	for _, l := range []string{"line 2:", "line 5:", "line 1:", "line 4:", "line 7:", "line 10:"} {
		if strings.Contains(res.stderr, l) {
			t.Errorf("stderr mentions %q:\n%s", l, res.stderr)
		}
	}
	if strings.Count(res.stderr, "\n") != 4 {
		t.Errorf("stderr has %d lines; want 4 (one per invalid line, no progress with -quiet):\n%s", strings.Count(res.stderr, "\n"), res.stderr)
	}
	wantSummary(t, res.stdout, 4, 4, 0)
}

func TestEmptyFile(t *testing.T) {
	p := &peer{}
	srv := newPeer(t, p)
	res := runClient(t, context.Background(), writeFile(t, "\n\n  \n"), srv.URL, "-quiet")
	if res.err != nil || p.total != 0 {
		t.Errorf("run on blank lines = %v with %d requests; want nil, 0", res.err, p.total)
	}
	wantSummary(t, res.stdout, 0, 0, 0)
}

func TestConcurrencyBound(t *testing.T) {
	for _, c := range []int{1, 5} {
		t.Run(strconv.Itoa(c), func(t *testing.T) {
			p := &peer{delay: 10 * time.Millisecond}
			srv := newPeer(t, p)
			var b strings.Builder
			const n = 40
			for i := 0; i < n; i++ {
				fmt.Fprintln(&b, ev(fmt.Sprint("u", i), i))
			}
			res := runClient(t, context.Background(), writeFile(t, b.String()), srv.URL, "-quiet", "-concurrency", strconv.Itoa(c))
			if res.err != nil {
				t.Fatalf("run = %v", res.err)
			}
			p.mu.Lock()
			defer p.mu.Unlock()
			if len(p.acked) != n {
				t.Errorf("%d events acknowledged; want %d", len(p.acked), n)
			}
			if p.maxInFlight > c {
				t.Errorf("%d requests in flight at once with -concurrency %d", p.maxInFlight, c)
			}
			if c > 1 && p.maxInFlight < 2 {
				t.Errorf("at most %d request in flight with -concurrency %d; want concurrency", p.maxInFlight, c)
			}
		})
	}
}

func TestRetries(t *testing.T) {
	// Each event meets every retryable failure once, then succeeds.
	sequence := []int{503, 500, 429, 409, 408, 502, 0}
	p := &peer{plan: func(key string, attempt int, body string) int {
		if attempt <= len(sequence) {
			return sequence[attempt-1]
		}
		return http.StatusOK
	}}
	srv := newPeer(t, p)
	var b strings.Builder
	const n = 10
	for i := 0; i < n; i++ {
		fmt.Fprintln(&b, ev(fmt.Sprint("u", i), i))
	}
	res := runClient(t, context.Background(), writeFile(t, b.String()), srv.URL, "-quiet", "-concurrency", "4")
	if res.err != nil {
		t.Fatalf("run = %v; stderr:\n%s", res.err, res.stderr)
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	for _, bad := range p.bad {
		t.Errorf("bad request: %s", bad)
	}
	if len(p.acked) != n {
		t.Errorf("%d events acknowledged; want %d", len(p.acked), n)
	}
	for k, a := range p.attempts {
		if a != len(sequence)+1 {
			t.Errorf("key %s: %d attempts; want %d", k, a, len(sequence)+1)
		}
	}
	wantSummary(t, res.stdout, n, 0, 0)
	m := regexp.MustCompile(`(\d+) retries`).FindStringSubmatch(res.stdout)
	if m == nil {
		t.Fatalf("summary %q lacks the retries", res.stdout)
	}
	// The reset may be retried by net/http itself (the request carries an Idempotency-Key).
	if r, _ := strconv.Atoi(m[1]); r < n*(len(sequence)-1) || r > n*len(sequence) {
		t.Errorf("summary says %d retries; want %d to %d", r, n*(len(sequence)-1), n*len(sequence))
	}
	if res.stderr != "" {
		t.Errorf("stderr %q; want nothing for events that succeeded", res.stderr)
	}
}

func TestRetriesExhausted(t *testing.T) {
	p := &peer{plan: func(string, int, string) int { return http.StatusServiceUnavailable }}
	srv := newPeer(t, p)
	res := runClient(t, context.Background(), writeFile(t, ev("u1", 1)+"\n"), srv.URL, "-quiet", "-retries", "2")
	if res.err == nil {
		t.Fatalf("run = nil; want an error")
	}
	if p.attempts["run1-1"] != 3 {
		t.Errorf("%d attempts with -retries 2; want 3", p.attempts["run1-1"])
	}
	if !strings.Contains(res.stderr, "line 1: not sent: gave up after 3 attempts: server answered 503") {
		t.Errorf("stderr %q; want the line number and the last answer", res.stderr)
	}
	wantSummary(t, res.stdout, 0, 0, 1)
	if code := cli.ExitCode(res.err, io.Discard); code != cli.ExitFail {
		t.Errorf("ExitCode = %d; want %d", code, cli.ExitFail)
	}
}

// TestGiveUpAfter: no attempt starts past -give-up-after, however many retries are left, so
// a late retry cannot outlive the server's memory of the key.
func TestGiveUpAfter(t *testing.T) {
	// The peer's Retry-After makes every wait 200ms: attempts at 0, 0.2, ... 1.0s. The next
	// would start at 1.2s, past the limit, so the client must stop after the one at 1.0s.
	const giveUp = 1100 * time.Millisecond
	var mu sync.Mutex
	var starts []time.Time // when each attempt reached the server
	p := &peer{plan: func(string, int, string) int {
		mu.Lock()
		starts = append(starts, time.Now())
		mu.Unlock()
		return http.StatusServiceUnavailable
	}}
	srv := newPeer(t, p)
	res := runClient(t, context.Background(), writeFile(t, ev("u1", 1)+"\n"), srv.URL, "-quiet",
		"-retries", "1000", "-max-backoff", "200ms", "-give-up-after", giveUp.String())
	if res.err == nil {
		t.Fatalf("run = nil; want an error")
	}
	mu.Lock()
	defer mu.Unlock()
	if len(starts) < 2 {
		t.Fatalf("%d attempts; want retries until the limit", len(starts))
	}
	last := starts[len(starts)-1].Sub(starts[0])
	if last > giveUp {
		t.Errorf("last attempt started %s after the first; want none past -give-up-after %s", last, giveUp)
	}
	if last < giveUp/2 {
		t.Errorf("last attempt started %s after the first; want retries until about %s", last, giveUp)
	}
	if !strings.Contains(res.stderr, "line 1: not sent: gave up after 1.1s (-give-up-after): server answered 503") {
		t.Errorf("stderr %q; want the line, the limit and the last answer", res.stderr)
	}
	wantSummary(t, res.stdout, 0, 0, 1)
}

func TestPermanentFailures(t *testing.T) {
	p := &peer{plan: func(key string, attempt int, body string) int {
		switch {
		case strings.Contains(body, "bad"):
			return http.StatusBadRequest
		case strings.Contains(body, "conflict"):
			return http.StatusUnprocessableEntity
		case strings.Contains(body, "large"):
			return http.StatusRequestEntityTooLarge
		}
		return http.StatusOK
	}}
	srv := newPeer(t, p)
	file := writeFile(t, strings.Join([]string{ev("u1", 1), ev("bad", 2), ev("u3", 3), ev("conflict", 4), ev("large", 5)}, "\n")+"\n")
	res := runClient(t, context.Background(), file, srv.URL, "-quiet", "-concurrency", "2")
	if res.err == nil || !strings.Contains(res.err.Error(), "3 events were not accepted") {
		t.Fatalf("run = %v; want an error saying 3 events were not accepted", res.err)
	}
	if code := cli.ExitCode(res.err, io.Discard); code != cli.ExitFail {
		t.Errorf("ExitCode = %d; want %d", code, cli.ExitFail)
	}
	for _, w := range []string{"line 2: not sent: server answered 400", "line 4: not sent: server answered 422", "line 5: not sent: server answered 413"} {
		if !strings.Contains(res.stderr, w) {
			t.Errorf("stderr lacks %q:\n%s", w, res.stderr)
		}
	}
	for _, k := range []string{"run1-2", "run1-4", "run1-5"} {
		if p.attempts[k] != 1 {
			t.Errorf("key %s sent %d times; want 1 (not retried)", k, p.attempts[k])
		}
	}
	if len(p.acked) != 2 {
		t.Errorf("%d acknowledged; want 2", len(p.acked))
	}
	wantSummary(t, res.stdout, 2, 0, 3)
}

func TestUnauthorizedStopsEarly(t *testing.T) {
	for _, c := range []int{1, 8} {
		t.Run(strconv.Itoa(c), func(t *testing.T) {
			p := &peer{plan: func(string, int, string) int { return http.StatusUnauthorized }}
			srv := newPeer(t, p)
			var b strings.Builder
			const n = 500
			for i := 0; i < n; i++ {
				fmt.Fprintln(&b, ev(fmt.Sprint("u", i), i))
			}
			res := runClient(t, context.Background(), writeFile(t, b.String()), srv.URL, "-quiet", "-concurrency", strconv.Itoa(c))
			if res.err == nil || !strings.Contains(res.err.Error(), "-secret") {
				t.Fatalf("run = %v; want an error mentioning -secret", res.err)
			}
			if code := cli.ExitCode(res.err, io.Discard); code != cli.ExitFail {
				t.Errorf("ExitCode = %d; want %d", code, cli.ExitFail)
			}
			p.mu.Lock()
			defer p.mu.Unlock()
			if p.total > 2*c+2 {
				t.Errorf("server got %d requests after a 401 with -concurrency %d; want the run to stop", p.total, c)
			}
			for k, a := range p.attempts {
				if a != 1 {
					t.Errorf("key %s sent %d times after a 401; want 1", k, a)
				}
			}
			if !strings.Contains(res.stderr, "401") {
				t.Errorf("stderr %q; want the 401 reported", res.stderr)
			}
		})
	}
}

func TestInterrupted(t *testing.T) {
	p := &peer{delay: 20 * time.Millisecond, arrived: make(chan struct{}, 1)}
	srv := newPeer(t, p)
	var b strings.Builder
	for i := 0; i < 200; i++ {
		fmt.Fprintln(&b, ev(fmt.Sprint("u", i), i))
	}
	ctx, cancel := context.WithCancel(context.Background())
	go func() { <-p.arrived; cancel() }()
	res := runClient(t, ctx, writeFile(t, b.String()), srv.URL, "-quiet", "-concurrency", "2")
	if res.err == nil || !strings.Contains(res.err.Error(), "interrupted") {
		t.Fatalf("run after cancel = %v; want an error saying it was interrupted", res.err)
	}
	if code := cli.ExitCode(res.err, io.Discard); code != cli.ExitFail {
		t.Errorf("ExitCode = %d; want %d", code, cli.ExitFail)
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.total >= 200 {
		t.Errorf("server got %d requests; want the run to stop early", p.total)
	}
	if !strings.HasPrefix(res.stdout, "sent ") {
		t.Errorf("stdout %q; want the summary even when interrupted", res.stdout)
	}
}

func TestProgress(t *testing.T) {
	var b strings.Builder
	for i := 0; i < 8; i++ {
		fmt.Fprintln(&b, ev(fmt.Sprint("u", i), i))
	}
	file := writeFile(t, b.String())

	p := &peer{delay: 30 * time.Millisecond}
	srv := newPeer(t, p)
	res := runClient(t, context.Background(), file, srv.URL, "-concurrency", "1", "-progress-interval", "10ms")
	if res.err != nil {
		t.Fatalf("run = %v", res.err)
	}
	if strings.Contains(res.stderr, "\r") || strings.Contains(res.stderr, "\033") {
		t.Errorf("stderr is not a terminal but got carriage returns or escapes: %q", res.stderr)
	}
	var progress int
	for _, l := range strings.Split(strings.TrimSuffix(res.stderr, "\n"), "\n") {
		if !strings.HasPrefix(l, "progress: ") {
			t.Errorf("stderr line %q; want only progress lines", l)
			continue
		}
		progress++
		for _, w := range []string{"MiB", "sent", "events/s", "in flight", "retried", "skipped", "failed"} {
			if !strings.Contains(l, w) {
				t.Errorf("progress line %q lacks %q", l, w)
			}
		}
	}
	if progress < 2 {
		t.Errorf("%d progress lines in a run of 8x30ms with -progress-interval 10ms; want several:\n%s", progress, res.stderr)
	}

	p = &peer{delay: 30 * time.Millisecond}
	srv = newPeer(t, p)
	res = runClient(t, context.Background(), file, srv.URL, "-concurrency", "1", "-progress-interval", "10ms", "-quiet")
	if res.err != nil || res.stderr != "" {
		t.Errorf("run -quiet = %v with stderr %q; want nil and nothing", res.err, res.stderr)
	}
}

func TestBadConfiguration(t *testing.T) {
	file := writeFile(t, ev("u", 1)+"\n")
	tests := []struct {
		name string
		args []string
		env  map[string]string
		want string
	}{
		{"concurrency 0", []string{"-file", file, "-concurrency", "0"}, nil, "-concurrency"},
		{"retries negative", []string{"-file", file, "-retries", "-1"}, nil, "-retries"},
		{"url scheme", []string{"-file", file, "-url", "ftp://x"}, nil, "-url"},
		{"url without host", []string{"-file", file, "-url", "http://"}, nil, "-url"},
		{"missing file", []string{"-file", filepath.Join(t.TempDir(), "nope.jsonl")}, nil, "-file"},
		{"unknown flag", []string{"-nope"}, nil, "-nope"},
		{"arguments", []string{"-file", file, "extra"}, nil, "extra"},
		{"run id not ASCII", []string{"-file", file, "-run-id", "é"}, nil, "-run-id"},
		{"run id too long", []string{"-file", file, "-run-id", strings.Repeat("r", 300)}, nil, "-run-id"},
		{"FINONEX_CONCURRENCY=x", []string{"-file", file}, map[string]string{"FINONEX_CONCURRENCY": "x"}, "-concurrency"},
		{"progress interval 0", []string{"-file", file, "-progress-interval", "0s"}, nil, "-progress-interval"},
		{"token and token file", []string{"-file", file, "-token", "t", "-token-file", file}, nil, "-token-file"},
		{"missing token file", []string{"-file", file, "-token-file", filepath.Join(t.TempDir(), "nope")}, nil, "-token-file"},
		{"empty token file", []string{"-file", file, "-token-file", writeFile(t, "\n")}, nil, "-token-file"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var stdout, stderr bytes.Buffer
			err := run(context.Background(), tt.args, func(k string) string { return tt.env[k] }, &stdout, &stderr)
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("run(%q) = %v; want an error naming %s", tt.args, err, tt.want)
			}
			if code := cli.ExitCode(err, io.Discard); code != cli.ExitUsage {
				t.Errorf("ExitCode(%v) = %d; want %d", err, code, cli.ExitUsage)
			}
		})
	}
}

// The Idempotency-Key of a line is the run id and the line number, so resending a file with
// the same -run-id repeats the same keys; without -run-id every run picks its own.
func TestRunIDKeys(t *testing.T) {
	p := &peer{}
	srv := newPeer(t, p)
	file := writeFile(t, ev("a", 1)+"\n"+ev("b", 2)+"\n")
	for i := 0; i < 2; i++ {
		if res := runClient(t, context.Background(), file, srv.URL, "-quiet", "-run-id", "fixed"); res.err != nil {
			t.Fatalf("run %d = %v", i+1, res.err)
		}
	}
	for i := 0; i < 2; i++ {
		var stdout, stderr bytes.Buffer
		err := run(context.Background(), []string{"-file", file, "-url", srv.URL, "-secret", testSecret, "-quiet"},
			func(string) string { return "" }, &stdout, &stderr)
		if err != nil {
			t.Fatalf("run without -run-id = %v", err)
		}
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.attempts["fixed-1"] != 2 || p.attempts["fixed-2"] != 2 {
		t.Errorf("attempts %v; want fixed-1 and fixed-2 twice each", p.attempts)
	}
	if len(p.attempts) != 6 {
		t.Errorf("attempts %v; want 6 distinct keys (2 fixed, 2 per random run id)", p.attempts)
	}
	for k := range p.attempts {
		if !regexp.MustCompile(`^[!-~]+-[12]$`).MatchString(k) {
			t.Errorf("key %q; want <run id>-<line>", k)
		}
	}
}

// TestToken: with -token (or -token-file) the client sends "Bearer <token>" instead of the
// secret, and a 403 (a token without events:write) stops the run like a 401.
func TestToken(t *testing.T) {
	var mu sync.Mutex
	seen := map[string]int{}
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		seen[r.Header.Get("Authorization")]++
		mu.Unlock()
		if r.Header.Get("Authorization") != "Bearer good.token.x" {
			w.WriteHeader(http.StatusForbidden)
			return
		}
		w.WriteHeader(http.StatusOK)
	}))
	t.Cleanup(srv.Close)
	file := writeFile(t, ev("a", 1)+"\n"+ev("b", 2)+"\n")
	if res := runClient(t, context.Background(), file, srv.URL, "-quiet", "-token", "good.token.x"); res.err != nil {
		t.Fatalf("client -token = %v", res.err)
	}
	tokenFile := writeFile(t, "good.token.x\n")
	if res := runClient(t, context.Background(), file, srv.URL, "-quiet", "-token-file", tokenFile); res.err != nil {
		t.Fatalf("client -token-file = %v", res.err)
	}
	mu.Lock()
	if seen["Bearer good.token.x"] != 4 || len(seen) != 1 {
		t.Errorf("Authorization headers seen: %v; want 4 of \"Bearer good.token.x\" only", seen)
	}
	mu.Unlock()
	res := runClient(t, context.Background(), file, srv.URL, "-quiet", "-token", "weak.token.x", "-retries", "5")
	if res.err == nil || !strings.Contains(res.stderr+res.err.Error(), "403") {
		t.Errorf("client with a token the server refuses with 403 = %v\n%s; want a failure naming 403", res.err, res.stderr)
	}
	srv.Close() // waits for the handlers still running
	if n := seen["Bearer weak.token.x"]; n > 2 {
		t.Errorf("a 403 was retried: %d requests; want the run stopped, not retried", n)
	}
}
