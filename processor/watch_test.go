package main

import (
	"finonex/internal/testenv"

	"bytes"
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"finonex/internal/logs"
	"finonex/internal/pgtest"
	"finonex/internal/prom"
	"finonex/internal/spool"
)

// watching is a processor running run() with -watch in the background.
type watching struct {
	cancel context.CancelFunc
	done   chan error
	stderr *testenv.Buffer
	addr   string // of /metrics, when started with -addr
}

// startWatch runs the processor in watch mode on the fixture with a short interval. It is
// stopped at the end of the test.
func (f *fixture) startWatch(t *testing.T, dsn string, args ...string) *watching {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	w := &watching{cancel: cancel, done: make(chan error, 1), stderr: &testenv.Buffer{}}
	args = append([]string{"-quiet", "-watch", "-interval", "20ms", "-events-file", f.live, "-db", dsn}, args...)
	go func() { w.done <- run(ctx, args, func(string) string { return "" }, io.Discard, w.stderr) }()
	t.Cleanup(func() { w.stop(t) })
	return w
}

// stop cancels the watch, as SIGTERM does, and checks that it ends cleanly and soon.
func (w *watching) stop(t *testing.T) {
	t.Helper()
	w.cancel()
	select {
	case err := <-w.done:
		if err != nil {
			t.Errorf("watching processor stopped with %v; want nil\n%s", err, w.stderr)
		}
		w.done <- nil // a second stop finds it stopped
	case <-time.After(10 * time.Second):
		t.Fatalf("watching processor did not stop within 10 s of its context ending\n%s", w.stderr)
	}
}

// listening waits for the processor's listening line and returns its address.
func (w *watching) listening(t *testing.T) string {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for time.Now().Before(deadline) {
		for _, line := range strings.Split(w.stderr.String(), "\n") {
			if addr, ok := logs.ListeningAddr(line); ok {
				return addr
			}
		}
		time.Sleep(10 * time.Millisecond)
	}
	t.Fatalf("no listening line from the processor:\n%s", w.stderr)
	return ""
}

// eventually polls until users_revenue equals want.
func (f *fixture) eventually(t *testing.T, want map[string]int64) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for {
		got := f.revenue(t)
		if fmt.Sprint(got) == fmt.Sprint(want) {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("users_revenue = %v; want %v within 30 s", got, want)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// appendLive appends lines to the live file as the server would (it is created anew after
// each claim).
func (f *fixture) appendLive(t *testing.T, lines string) {
	t.Helper()
	fl, err := os.OpenFile(f.live, os.O_APPEND|os.O_CREATE|os.O_WRONLY, 0o644)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := fl.WriteString(lines); err != nil {
		t.Fatal(err)
	}
	if err := fl.Close(); err != nil {
		t.Fatal(err)
	}
}

// TestWatchAppliesFilesAsTheyCome runs two watching processors and one-shot runs at once
// while events keep arriving: every event counts exactly once.
func TestWatchAppliesFilesAsTheyCome(t *testing.T) {
	f := newFixture(t)
	f.startWatch(t, f.dsn)
	f.startWatch(t, f.dsn)
	want := map[string]int64{}
	var oneShots sync.WaitGroup
	for i := range 60 {
		user := fmt.Sprintf("u%d", i%7)
		f.appendLive(t, add(user, int64(i+1))+"\n")
		want[user] += int64(i + 1)
		if i%20 == 0 {
			oneShots.Add(1)
			go func() { defer oneShots.Done(); runProc(t, "-events-file", f.live, "-db", f.dsn) }()
		}
		time.Sleep(5 * time.Millisecond)
	}
	oneShots.Wait()
	f.eventually(t, want)
	testenv.WaitFor(t, "no claimed file left behind", func() bool { // a watcher may be mid-rename
		left, _ := spool.Leftovers(f.live)
		return len(left) == 0
	})
}

// TestWatchIdleClaimsNothing: an empty or missing live file is left alone, and the database
// is not needed while nothing waits.
func TestWatchIdleClaimsNothing(t *testing.T) {
	f := newFixture(t)
	testenv.WriteFile(t, f.live, "")
	w := f.startWatch(t, pgtest.UnreachableDSN)
	time.Sleep(300 * time.Millisecond) // fifteen intervals
	w.stop(t)
	if names := f.files(t); len(names) != 1 || names[0] != filepath.Base(f.live) {
		t.Errorf("directory after an idle watch = %v; want only the live file", names)
	}
	if strings.Contains(w.stderr.String(), "level=ERROR") {
		t.Errorf("idle watch logged errors:\n%s", w.stderr)
	}
}

// TestWatchRidesOutPostgreSQLDown cuts PostgreSQL off under a watching processor (a proxy
// that drops every connection), sends events meanwhile, and brings it back: the outage is
// logged once, the processor recovers by itself, and every event counts once.
func TestWatchRidesOutPostgreSQLDown(t *testing.T) {
	f := newFixture(t)
	px := newPGProxy(t, f.dsn)
	w := f.startWatch(t, px.dsn, "-addr", "127.0.0.1:0", "-secret", "s3")
	addr := w.listening(t)
	f.appendLive(t, add("a", 1)+"\n")
	f.eventually(t, map[string]int64{"a": 1})

	px.down()
	for range 5 {
		f.appendLive(t, add("a", 10)+"\n")
		time.Sleep(30 * time.Millisecond) // a few intervals apart, so that several cycles fail
	}
	testenv.WaitFor(t, "readyz 503 while PostgreSQL is down", func() bool { return getStatus(t, "http://"+addr+"/readyz", "") == http.StatusServiceUnavailable })
	f.wantRevenue(t, map[string]int64{"a": 1})
	px.up()
	f.eventually(t, map[string]int64{"a": 51})
	testenv.WaitFor(t, "readyz 200 once PostgreSQL is back", func() bool { return getStatus(t, "http://"+addr+"/readyz", "") == http.StatusOK })
	w.stop(t)
	log := w.stderr.String()
	if n := strings.Count(log, "PostgreSQL is unreachable"); n != 1 {
		t.Errorf("the outage was logged %d times; want once:\n%s", n, log)
	}
	if n := strings.Count(log, "PostgreSQL is back"); n != 1 {
		t.Errorf("the recovery was logged %d times; want once:\n%s", n, log)
	}
}

// TestWatchStopsMidApply stops a watching processor while it applies a large file: the
// transaction commits or rolls back whole, it exits cleanly, and a restart finishes the
// work exactly once.
func TestWatchStopsMidApply(t *testing.T) {
	f := newFixture(t)
	var b strings.Builder
	want := map[string]int64{}
	for i := range 200000 {
		u := fmt.Sprintf("user%d", i%50000)
		b.WriteString(add(u, 1) + "\n")
		want[u]++
	}
	testenv.WriteFile(t, f.live, b.String())
	w := f.startWatch(t, f.dsn)
	testenv.WaitFor(t, "the live file claimed", func() bool {
		left, _ := spool.Leftovers(f.live)
		return len(left) > 0
	})
	w.stop(t)
	got := f.revenue(t)
	if len(got) != 0 && fmt.Sprint(got) != fmt.Sprint(want) {
		t.Fatalf("after a stop mid-apply users_revenue holds %d users; want none or all %d", len(got), len(want))
	}
	f.startWatch(t, f.dsn)
	f.eventually(t, want)
}

// TestWatchMetrics scrapes the watching processor's /metrics, parses it strictly, and
// checks that the counters move when events flow; /metrics needs the secret.
func TestWatchMetrics(t *testing.T) {
	f := newFixture(t)
	w := f.startWatch(t, f.dsn, "-addr", "127.0.0.1:0", "-secret", "s3")
	base := "http://" + w.listening(t)
	if got := getStatus(t, base+"/metrics", ""); got != http.StatusUnauthorized {
		t.Errorf("GET /metrics without the secret = %d; want 401", got)
	}
	if got := getStatus(t, base+"/metrics", "wrong"); got != http.StatusUnauthorized {
		t.Errorf("GET /metrics with a wrong secret = %d; want 401", got)
	}
	before := scrape(t, base)
	if got, ok := before["finonex_processor_http_refused_total"].Sample("finonex_processor_http_refused_total", "reason", "unauthenticated"); !ok || got != 2 {
		t.Errorf("finonex_processor_http_refused_total{reason=unauthenticated} = %v (found %v) after two refused scrapes; want 2", got, ok)
	}
	f.appendLive(t, add("m", 3)+"\n"+add("m", 4)+"\n"+"not json\n")
	f.eventually(t, map[string]int64{"m": 7})
	testenv.WaitFor(t, "the counters to move", func() bool {
		v, _ := scrape(t, base)["finonex_processor_files_applied_total"].Value()
		return v == 1
	})
	after := scrape(t, base)
	for _, tc := range []struct {
		name string
		want float64
	}{
		{"finonex_processor_files_applied_total", 1},
		{"finonex_processor_events_applied_total", 2},
		{"finonex_processor_rejected_lines_total", 1},
		{"finonex_processor_backlog_bytes", 0},
	} {
		if got, ok := after[tc.name].Value(); !ok || got != tc.want {
			t.Errorf("%s = %v (found %v); want %v", tc.name, got, ok, tc.want)
		}
	}
	if n, ok := after["finonex_processor_apply_duration_seconds"].Sample("finonex_processor_apply_duration_seconds_count"); !ok || n != 1 {
		t.Errorf("apply_duration_seconds_count = %v; want 1", n)
	}
	b, _ := before["finonex_processor_last_applied_timestamp_seconds"].Value()
	a, _ := after["finonex_processor_last_applied_timestamp_seconds"].Value()
	if !(a >= b) || a == 0 {
		t.Errorf("last_applied_timestamp_seconds went from %v to %v; want it set and not going back", b, a)
	}
}

func scrape(t *testing.T, base string) map[string]*prom.Family {
	t.Helper()
	req, _ := http.NewRequest(http.MethodGet, base+"/metrics", nil)
	req.Header.Set("Authorization", "s3")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != http.StatusOK || resp.Header.Get("Content-Type") != prom.ContentType {
		t.Fatalf("GET /metrics = %d %q; want 200 %q", resp.StatusCode, resp.Header.Get("Content-Type"), prom.ContentType)
	}
	fams, err := prom.Parse(bytes.NewReader(body))
	if err != nil {
		t.Fatalf("GET /metrics does not parse: %v\n%s", err, body)
	}
	return fams
}

func getStatus(t *testing.T, u, secret string) int {
	t.Helper()
	req, _ := http.NewRequest(http.MethodGet, u, nil)
	if secret != "" {
		req.Header.Set("Authorization", secret)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	return resp.StatusCode
}

// pgProxy forwards TCP to PostgreSQL until down, which drops every connection and refuses
// new ones, as a stopped server would; up lets them through again.
type pgProxy struct {
	dsn    string
	target string
	mu     sync.Mutex
	isDown bool
	conns  map[net.Conn]bool
}

func newPGProxy(t *testing.T, dsn string) *pgProxy {
	t.Helper()
	u, err := url.Parse(dsn)
	if err != nil {
		t.Fatal(err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	p := &pgProxy{target: u.Host, conns: map[net.Conn]bool{}}
	u.Host = ln.Addr().String()
	p.dsn = u.String()
	t.Cleanup(func() { ln.Close(); p.down() })
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go p.serve(c)
		}
	}()
	return p
}

func (p *pgProxy) serve(c net.Conn) {
	p.mu.Lock()
	if p.isDown {
		p.mu.Unlock()
		c.Close()
		return
	}
	s, err := net.Dial("tcp", p.target)
	if err != nil {
		p.mu.Unlock()
		c.Close()
		return
	}
	p.conns[c], p.conns[s] = true, true
	p.mu.Unlock()
	go func() { io.Copy(s, c); s.Close() }()
	io.Copy(c, s)
	c.Close()
}

func (p *pgProxy) down() {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.isDown = true
	for c := range p.conns {
		c.Close()
	}
	clear(p.conns)
}

func (p *pgProxy) up() {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.isDown = false
}
