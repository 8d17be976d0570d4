package finonex_test

// Fault-injection tests: real processes killed with SIGKILL, a disk that is full, a network
// that loses answers. Each ends by comparing the database with the events that were
// acknowledged, and fails on any difference in either direction.

import (
	"context"
	"database/sql"
	"encoding/json"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"finonex"
	"finonex/internal/pgtest"
	"finonex/internal/testenv"

	_ "github.com/lib/pq"
)

// writeEvents writes n random events for users user0..user<users-1> to path and returns
// each user's expected revenue.
func writeEvents(t *testing.T, rng *rand.Rand, path string, n, users int) map[string]int64 {
	t.Helper()
	want := make(map[string]int64)
	var b strings.Builder
	for i := 0; i < n; i++ {
		user := fmt.Sprintf("user%d", rng.IntN(users))
		value := rng.Int64N(1000)
		name := "add_revenue"
		if rng.IntN(3) == 0 {
			name = "subtract_revenue"
			want[user] -= value
		} else {
			want[user] += value
		}
		fmt.Fprintf(&b, "{\"userId\": %q, \"name\": %q, \"value\": %d}\n", user, name, value)
	}
	if err := os.WriteFile(path, []byte(b.String()), 0o644); err != nil {
		t.Fatal(err)
	}
	return want
}

// tableRevenue reads users_revenue directly (creating the schema first, for a database the
// programs have not touched yet).
func tableRevenue(t *testing.T, dsn string) map[string]int64 {
	t.Helper()
	db, err := sql.Open("postgres", dsn)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	if _, err := db.Exec(finonex.Schema); err != nil {
		t.Fatalf("apply schema: %v", err)
	}
	return pgtest.Revenues(t, db)
}

func ledgerRows(t *testing.T, dsn string) int {
	t.Helper()
	db, err := sql.Open("postgres", dsn)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	var n int
	if err := db.QueryRow(`SELECT count(*) FROM processed_files`).Scan(&n); err != nil {
		t.Fatalf("count ledger: %v", err)
	}
	return n
}

// sameRevenue fails the test unless got and want hold the same users with the same sums
// (a user whose events net to zero may be missing from got... but only if want says 0).
func sameRevenue(t *testing.T, got, want map[string]int64) {
	t.Helper()
	bad := 0
	for u, w := range want {
		if g, ok := got[u]; g != w || (!ok && w != 0) {
			if bad++; bad <= 10 {
				t.Errorf("revenue of %s = %d (present %v); want %d", u, g, ok, w)
			}
		}
	}
	for u, g := range got {
		if _, ok := want[u]; !ok {
			bad++
			t.Errorf("unexpected user %s with revenue %d", u, g)
		}
	}
	if bad > 0 {
		t.Fatalf("%d users differ between the database and the acknowledged events", bad)
	}
}

func freeAddr(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().String()
}

// TestServerKilledWhileClientSends kills the server with SIGKILL again and again while the
// client sends with retries on, restarting it on the same address. The client must end with
// every event acknowledged, and each counted exactly once.
func TestServerKilledWhileClientSends(t *testing.T) {
	rng := rand.New(rand.NewPCG(testenv.Seed(t), 1))
	dir := t.TempDir()
	dsn := pgtest.NewDatabase(t, os.Getenv, true)
	events := filepath.Join(dir, "server_events.jsonl")
	input := filepath.Join(dir, "in.jsonl")
	n := 20000
	if testing.Short() {
		n = 3000
	}
	want := writeEvents(t, rng, input, n, 300)
	addr := freeAddr(t)
	srv := startServer(t, events, dsn, addr)

	cmd := exec.Command(filepath.Join(bin, "client"), "-file", input, "-url", "http://"+addr, "-secret", testSecret,
		"-concurrency", "32", "-retries", "200", "-max-backoff", "200ms", "-quiet")
	cmd.Env = cleanEnv()
	var out testenv.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()

	kills := 0
	var clientErr error
loop:
	for {
		select {
		case clientErr = <-done:
			break loop
		case <-time.After(time.Duration(50+rng.IntN(300)) * time.Millisecond):
		}
		srv.kill()
		kills++
		time.Sleep(time.Duration(rng.IntN(200)) * time.Millisecond)
		srv = startServer(t, events, dsn, addr)
	}
	t.Logf("server killed %d times; client: %s", kills, strings.TrimSpace(out.String()))
	if clientErr != nil {
		t.Fatalf("client failed: %v\n%s", clientErr, out.String())
	}
	if kills < 2 {
		t.Fatalf("the client finished after %d kills: the test proved too little", kills)
	}
	if r := runProg(t, nil, "processor", "-events-file", events, "-db", dsn, "-quiet"); r.code != 0 {
		t.Fatalf("processor exit %d: %s %s", r.code, r.stdout, r.stderr)
	}
	sameRevenue(t, tableRevenue(t, dsn), want)
}

// TestClientRidesOutRestart stops the server for more than ten seconds while the client
// sends with its default retry settings: no event may fail, none may count twice.
func TestClientRidesOutRestart(t *testing.T) {
	if testing.Short() {
		t.Skip("takes over 10 s")
	}
	rng := rand.New(rand.NewPCG(testenv.Seed(t), 5))
	dir := t.TempDir()
	dsn := pgtest.NewDatabase(t, os.Getenv, true)
	events := filepath.Join(dir, "server_events.jsonl")
	input := filepath.Join(dir, "in.jsonl")
	want := writeEvents(t, rng, input, 3000, 100)
	addr := freeAddr(t)
	srv := startServer(t, events, dsn, addr)
	cmd := exec.Command(filepath.Join(bin, "client"), "-file", input, "-url", "http://"+addr, "-secret", testSecret, "-concurrency", "4", "-quiet")
	cmd.Env = cleanEnv()
	var out testenv.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	time.Sleep(100 * time.Millisecond)
	srv.kill()
	time.Sleep(10500 * time.Millisecond)
	startServer(t, events, dsn, addr)
	if err := cmd.Wait(); err != nil {
		t.Fatalf("client failed across a 10.5 s outage: %v\n%s", err, out.String())
	}
	t.Logf("client: %s", strings.TrimSpace(out.String()))
	if r := runProg(t, nil, "processor", "-events-file", events, "-db", dsn, "-quiet"); r.code != 0 {
		t.Fatalf("processor exit %d: %s %s", r.code, r.stdout, r.stderr)
	}
	sameRevenue(t, tableRevenue(t, dsn), want)
}

// TestProcessorKilledAtEachStep kills the processor with SIGKILL at each step of its work;
// the next run must finish the file, exactly once.
func TestProcessorKilledAtEachStep(t *testing.T) {
	for _, point := range []string{"after-claim", "mid-read", "before-commit", "after-commit"} {
		t.Run(point, func(t *testing.T) {
			rng := rand.New(rand.NewPCG(testenv.Seed(t), 2))
			dir := t.TempDir()
			dsn := pgtest.NewDatabase(t, os.Getenv, true)
			events := filepath.Join(dir, "server_events.jsonl")
			want := writeEvents(t, rng, events, 5000, 500)

			r := runProg(t, []string{"FINONEX_TEST_CRASH_AT=" + point}, "processor", "-events-file", events, "-db", dsn, "-quiet")
			if r.code != -9 {
				t.Fatalf("processor with crash at %s: exit %d; want killed (-9)\n%s%s", point, r.code, r.stdout, r.stderr)
			}
			if point == "after-commit" {
				sameRevenue(t, tableRevenue(t, dsn), want) // committed before the kill
			} else if got := tableRevenue(t, dsn); len(got) != 0 {
				t.Fatalf("after a kill at %s the table holds %d users; want none", point, len(got))
			}
			for i, wantOut := range []string{"finishing", "nothing to process"} {
				r = runProg(t, nil, "processor", "-events-file", events, "-db", dsn, "-quiet")
				if r.code != 0 || !strings.Contains(r.stdout, wantOut) {
					t.Fatalf("run %d after the kill: exit %d, stdout %q; want 0 and %q\n%s", i+1, r.code, r.stdout, wantOut, r.stderr)
				}
			}
			sameRevenue(t, tableRevenue(t, dsn), want)
			if n := ledgerRows(t, dsn); n != 1 {
				t.Errorf("ledger rows = %d; want 1", n)
			}
			processed, _ := filepath.Glob(filepath.Join(dir, "*_processed.jsonl"))
			all, _ := filepath.Glob(filepath.Join(dir, "*"))
			if len(processed) != 1 || len(all) != 1 {
				t.Errorf("files after recovery = %v; want exactly one processed file", all)
			}
		})
	}
}

// TestConcurrentProcessors runs two, then four, processors in loops while the client sends
// to the server: the live file is claimed under the writers again and again. Every
// acknowledged event must be counted exactly once.
func TestConcurrentProcessors(t *testing.T) {
	for _, procs := range []int{2, 4} {
		t.Run(fmt.Sprintf("%d processors", procs), func(t *testing.T) {
			rng := rand.New(rand.NewPCG(testenv.Seed(t), 3))
			dir := t.TempDir()
			dsn := pgtest.NewDatabase(t, os.Getenv, true)
			events := filepath.Join(dir, "server_events.jsonl")
			input := filepath.Join(dir, "in.jsonl")
			n := 8000
			if testing.Short() {
				n = 2000
			}
			want := writeEvents(t, rng, input, n, 50) // few users: the processors contend for rows
			srv := startServer(t, events, dsn, "127.0.0.1:0")

			stop := make(chan struct{})
			var wg sync.WaitGroup
			var runs, failures atomic.Int64
			for i := 0; i < procs; i++ {
				wg.Add(1)
				go func() {
					defer wg.Done()
					for {
						select {
						case <-stop:
							return
						default:
						}
						r := runProg(t, nil, "processor", "-events-file", events, "-db", dsn, "-quiet")
						runs.Add(1)
						if r.code != 0 {
							failures.Add(1)
							t.Errorf("processor exit %d: %s %s", r.code, r.stdout, r.stderr)
						}
					}
				}()
			}
			c := runProg(t, nil, "client", "-file", input, "-url", srv.url(), "-secret", testSecret, "-concurrency", "64", "-quiet")
			close(stop)
			wg.Wait()
			if c.code != 0 {
				t.Fatalf("client exit %d: %s %s", c.code, c.stdout, c.stderr)
			}
			if r := runProg(t, nil, "processor", "-events-file", events, "-db", dsn, "-quiet"); r.code != 0 {
				t.Fatalf("final processor exit %d: %s %s", r.code, r.stdout, r.stderr)
			}
			sameRevenue(t, tableRevenue(t, dsn), want)
			processed, _ := filepath.Glob(filepath.Join(dir, "server_events_*_processed.jsonl"))
			if l := ledgerRows(t, dsn); l != len(processed) {
				t.Errorf("ledger rows = %d, processed files = %d; want equal", l, len(processed))
			}
			t.Logf("%d processor runs, %d files applied", runs.Load(), len(processed))
		})
	}
}

// TestDiskFull points the events file at /dev/full, where every write fails with ENOSPC:
// the server must answer 5xx and acknowledge nothing.
func TestDiskFull(t *testing.T) {
	if _, err := os.Stat("/dev/full"); err != nil {
		t.Fatalf("this test needs /dev/full: %v", err)
	}
	dir := t.TempDir()
	events := filepath.Join(dir, "server_events.jsonl")
	if err := os.Symlink("/dev/full", events); err != nil {
		t.Fatal(err)
	}
	srv := startServer(t, events, pgtest.NewDatabase(t, os.Getenv, true), "127.0.0.1:0")
	for i := 0; i < 3; i++ {
		code, body := post(t, srv.url(), testSecret, `{"userId":"u","name":"add_revenue","value":1}`)
		if code < 500 {
			t.Errorf("POST to a full disk = %d %s; want 5xx", code, body)
		}
	}
	resp, err := http.Get(srv.url() + "/readyz")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusServiceUnavailable {
		t.Errorf("/readyz with a full disk = %d; want 503", resp.StatusCode)
	}
	input := filepath.Join(dir, "in.jsonl")
	os.WriteFile(input, []byte(`{"userId":"u","name":"add_revenue","value":1}`+"\n"), 0o644)
	r := runProg(t, nil, "client", "-file", input, "-url", srv.url(), "-secret", testSecret, "-retries", "2", "-max-backoff", "10ms", "-quiet")
	if r.code != 1 || !strings.Contains(r.stdout, "0 events") && !strings.Contains(r.stdout, "sent 0") {
		t.Errorf("client against a full disk: exit %d, stdout %q; want 1 and nothing sent", r.code, r.stdout)
	}
}

// TestResponsesDropped puts a proxy between client and server that lets the server write
// the event and then closes the connection before the answer reaches the client. The
// client retries with the same Idempotency-Key; each event must count once.
func TestResponsesDropped(t *testing.T) {
	rng := rand.New(rand.NewPCG(testenv.Seed(t), 4))
	dir := t.TempDir()
	dsn := pgtest.NewDatabase(t, os.Getenv, true)
	events := filepath.Join(dir, "server_events.jsonl")
	input := filepath.Join(dir, "in.jsonl")
	want := writeEvents(t, rng, input, 2000, 100)
	srv := startServer(t, events, dsn, "127.0.0.1:0")

	var mu sync.Mutex
	var dropped atomic.Int64
	proxy := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		req, _ := http.NewRequestWithContext(context.Background(), r.Method, srv.url()+r.URL.Path, strings.NewReader(string(body)))
		req.Header = r.Header.Clone()
		resp, err := http.DefaultTransport.RoundTrip(req)
		if err != nil {
			http.Error(w, err.Error(), http.StatusBadGateway)
			return
		}
		answer, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		mu.Lock()
		drop := rng.IntN(3) == 0
		mu.Unlock()
		if drop { // the event is written; the answer is lost
			dropped.Add(1)
			conn, _, err := http.NewResponseController(w).Hijack()
			if err == nil {
				conn.Close()
			}
			return
		}
		for k, v := range resp.Header {
			w.Header()[k] = v
		}
		w.WriteHeader(resp.StatusCode)
		w.Write(answer)
	}))
	defer proxy.Close()

	r := runProg(t, nil, "client", "-file", input, "-url", proxy.URL, "-secret", testSecret, "-retries", "50", "-max-backoff", "50ms", "-quiet")
	if r.code != 0 {
		t.Fatalf("client exit %d: %s %s", r.code, r.stdout, r.stderr)
	}
	if dropped.Load() == 0 {
		t.Fatal("no answer was dropped: the test proved nothing")
	}
	replayed := debugVar(t, srv.url(), "events_replayed")
	t.Logf("%d answers dropped, %v replayed by the server", dropped.Load(), replayed)
	if replayed == 0 {
		t.Errorf("events_replayed = 0; want the retries answered from the idempotency window")
	}
	if p := runProg(t, nil, "processor", "-events-file", events, "-db", dsn, "-quiet"); p.code != 0 {
		t.Fatalf("processor exit %d: %s %s", p.code, p.stdout, p.stderr)
	}
	sameRevenue(t, tableRevenue(t, dsn), want)
}

// debugVar reads one number from the server's /debug/vars, following path into nested maps.
func debugVar(t testing.TB, base string, path ...string) float64 {
	t.Helper()
	req, _ := http.NewRequest(http.MethodGet, base+"/debug/vars", nil)
	req.Header.Set("Authorization", testSecret)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var v any
	if err := json.NewDecoder(resp.Body).Decode(&v); err != nil {
		t.Fatalf("decode /debug/vars: %v", err)
	}
	for _, key := range path {
		m, _ := v.(map[string]any)
		v = m[key]
	}
	n, _ := v.(float64)
	return n
}
