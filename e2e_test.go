package finonex_test

// End-to-end tests: the three programs, built once, run as real processes against a real
// PostgreSQL database of each test's own.

import (
	"finonex/internal/testenv"

	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"finonex/internal/logs"
	"finonex/internal/pgtest"
)

// bin holds the built programs.
var bin string

func TestMain(m *testing.M) {
	os.Exit(buildAndRun(m))
}

func buildAndRun(m *testing.M) int {
	dir, err := os.MkdirTemp("", "finonex-e2e-bin")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	defer os.RemoveAll(dir)
	for _, prog := range []string{"server", "client", "processor"} {
		out, err := exec.Command("go", "build", "-o", filepath.Join(dir, prog), "./"+prog).CombinedOutput()
		if err != nil {
			fmt.Fprintf(os.Stderr, "build %s: %v\n%s", prog, err, out)
			return 1
		}
	}
	bin = dir
	return m.Run()
}

const testSecret = "e2e-secret"

// serverProc is a running server process.
type serverProc struct {
	t      testing.TB
	cmd    *exec.Cmd
	addr   string
	stderr *testenv.Buffer
	exited chan error
}

// startServer starts the server with the events file and database given, on addr
// ("127.0.0.1:0" for a free port), and waits until /healthz answers.
func startServer(t testing.TB, eventsFile, dsn, addr string, extra ...string) *serverProc {
	t.Helper()
	args := append([]string{"-addr", addr, "-events-file", eventsFile, "-db", dsn, "-secret", testSecret, "-stats-interval", "0"}, extra...)
	cmd := exec.Command(filepath.Join(bin, "server"), args...)
	cmd.Env = cleanEnv()
	stderr := &testenv.Buffer{}
	pr, pw := io.Pipe()
	cmd.Stderr = io.MultiWriter(stderr, pw)
	if err := cmd.Start(); err != nil {
		t.Fatalf("start server: %v", err)
	}
	s := &serverProc{t: t, cmd: cmd, stderr: stderr, exited: make(chan error, 1)}
	go func() { s.exited <- cmd.Wait(); pw.Close() }()
	found := make(chan string, 1)
	go func() {
		sc := bufio.NewScanner(pr)
		for sc.Scan() {
			if addr, ok := logs.ListeningAddr(sc.Text()); ok {
				found <- addr
				break
			}
		}
		io.Copy(io.Discard, pr)
	}()
	t.Cleanup(func() { s.kill() })
	select {
	case s.addr = <-found:
	case err := <-s.exited:
		s.exited <- err
		t.Fatalf("server exited before listening: %v\n%s", err, stderr)
	case <-time.After(30 * time.Second):
		t.Fatalf("server did not listen within 30s:\n%s", stderr)
	}
	waitReady(t, "http://"+s.addr+"/healthz")
	return s
}

func (s *serverProc) url() string { return "http://" + s.addr }

// kill stops the server with SIGKILL, as a crash would.
func (s *serverProc) kill() {
	s.cmd.Process.Signal(syscall.SIGKILL)
	err := <-s.exited
	s.exited <- err
}

// stop stops the server with SIGTERM and returns its exit error.
func (s *serverProc) stop() error {
	s.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case err := <-s.exited:
		s.exited <- err
		return err
	case <-time.After(30 * time.Second):
		s.t.Errorf("server did not stop within 30s of SIGTERM:\n%s", s.stderr)
		s.kill()
		return errors.New("timeout")
	}
}

func waitReady(t testing.TB, u string) {
	t.Helper()
	deadline := time.Now().Add(15 * time.Second)
	for {
		resp, err := http.Get(u)
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s not ready: %v", u, err)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// cleanEnv is the environment for the programs: without FINONEX_ and DATABASE_URL
// variables, so that only the flags of each test count.
func cleanEnv() []string {
	var env []string
	for _, kv := range os.Environ() {
		if !strings.HasPrefix(kv, "FINONEX_") && !strings.HasPrefix(kv, "DATABASE_URL=") {
			env = append(env, kv)
		}
	}
	return env
}

type result struct {
	stdout, stderr string
	code           int
}

// runProg runs one of the programs to its end.
func runProg(t testing.TB, env []string, prog string, args ...string) result {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Minute) // the benchmark's runs are long
	defer cancel()
	cmd := exec.CommandContext(ctx, filepath.Join(bin, prog), args...)
	cmd.Env = append(cleanEnv(), env...)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	err := cmd.Run()
	code := 0
	var ee *exec.ExitError
	if errors.As(err, &ee) {
		code = ee.ExitCode()
		if ws, ok := ee.Sys().(syscall.WaitStatus); ok && ws.Signaled() {
			code = -int(ws.Signal())
		}
	} else if err != nil {
		t.Fatalf("run %s: %v", prog, err)
	}
	return result{stdout.String(), stderr.String(), code}
}

// revenueOf asks the server for a user's revenue; ok is false on 404.
func revenueOf(t testing.TB, base, user string) (rev int64, ok bool) {
	t.Helper()
	req, _ := http.NewRequest(http.MethodGet, base+"/userEvents/"+url.PathEscape(user), nil)
	req.Header.Set("Authorization", testSecret)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatalf("GET revenue of %q: %v", user, err)
	}
	defer resp.Body.Close()
	if resp.StatusCode == http.StatusNotFound {
		return 0, false
	}
	var body struct {
		UserID  string `json:"user_id"`
		Revenue int64  `json:"revenue"`
	}
	if resp.StatusCode != http.StatusOK || json.NewDecoder(resp.Body).Decode(&body) != nil || body.UserID != user {
		t.Fatalf("GET revenue of %q: status %d, body %+v", user, resp.StatusCode, body)
	}
	return body.Revenue, true
}

// checkRevenue compares every user's revenue, through GET, with want.
func checkRevenue(t testing.TB, base string, want map[string]int64) {
	t.Helper()
	bad := 0
	for user, w := range want {
		got, ok := revenueOf(t, base, user)
		if !ok || got != w {
			if bad++; bad <= 10 {
				t.Errorf("revenue of %q = %d (found %v); want %d", user, got, ok, w)
			}
		}
	}
	if bad > 0 {
		t.Errorf("%d of %d users have the wrong revenue", bad, len(want))
	}
}

func post(t testing.TB, base, secret, body string, header ...string) (int, string) {
	t.Helper()
	req, _ := http.NewRequest(http.MethodPost, base+"/liveEvent", strings.NewReader(body))
	if secret != "" {
		req.Header.Set("Authorization", secret)
	}
	for i := 0; i+1 < len(header); i += 2 {
		req.Header.Set(header[i], header[i+1])
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatalf("POST: %v", err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

func TestPipeline(t *testing.T) {
	dir := t.TempDir()
	dsn := pgtest.NewDatabase(t, os.Getenv, false) // the server creates it
	events := filepath.Join(dir, "server_events.jsonl")
	srv := startServer(t, events, dsn, "127.0.0.1:0")

	// The input: valid events, and every kind of invalid line the contract names.
	lines := []string{
		`{"userId": "user1", "name": "add_revenue", "value": 98}`,
		`{"userId": "user1", "name": "subtract_revenue", "value": 72}`,
		`{"value": 70, "name": "add_revenue", "userId": "user2"}`,
		`  {"userId":"\u0075ser1","name":"add_revenue","value":1}  `,
		``,
		`   `,
		"{\"userId\": \"user3\", \"name\": \"add_revenue\", \"value\": 9007199254740991}\r",
		`{"userId": "us/er 4é", "name": "add_revenue", "value": 5}`,
		`{"userId": "user5", "name": "add_revenue", "value": 0}`,
	}
	valid := len(lines)
	invalid := []string{
		`{"userId": "user1", "name": "add_revenue"}`,
		`{"userId": "user1", "name": "add_revenue", "value": 1, "extra": 1}`,
		`{"userId": "user1", "userId": "user2", "name": "add_revenue", "value": 1}`,
		`{"userId": "user1", "name": "add_revenue", "value": 98.0}`,
		`{"userId": "user1", "name": "add_revenue", "value": 1e2}`,
		`{"userId": "user1", "name": "add_revenue", "value": "98"}`,
		`{"userId": "user1", "name": "add_revenue", "value": -5}`,
		`{"userId": "user1", "name": "add_revenue", "value": true}`,
		`{"userId": "user1", "name": "add_revenue", "value": null}`,
		`{"userId": "user1", "name": "add_revenue", "value": 9007199254740992}`,
		`{"userId": "user1", "name": "Add_revenue", "value": 1}`,
		`{"userId": "", "name": "add_revenue", "value": 1}`,
		`{"userId": "` + strings.Repeat("u", 256) + `", "name": "add_revenue", "value": 1}`,
		`{"userId": "user\u0001", "name": "add_revenue", "value": 1}`,
		`{"userId": 7, "name": "add_revenue", "value": 1}`,
		`{"userId": "user1", "name": "add_revenue", "value": 1} {"userId": "user1", "name": "add_revenue", "value": 1}`,
		`{"userId": "user1", "name": "add_revenue", "value": 1`,
		"{\"userId\": \"us\xffer\", \"name\": \"add_revenue\", \"value\": 1}",
		`[1, 2, 3]`,
		`{"userId": "user1", "name": "add_revenue", "value": 1, "pad": "` + strings.Repeat("x", 70000) + `"}`,
	}
	lines = append(lines, invalid...)
	lines = append(lines, `{"userId": "user2", "name": "subtract_revenue", "value": 12}`) // after the long line
	input := filepath.Join(dir, "events.jsonl")
	if err := os.WriteFile(input, []byte(strings.Join(lines, "\n")+"\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	want := map[string]int64{"user1": 27, "user2": 58, "user3": 9007199254740991, "us/er 4é": 5, "user5": 0}

	r := runProg(t, nil, "client", "-file", input, "-url", srv.url(), "-secret", testSecret, "-quiet")
	if r.code != 0 {
		t.Fatalf("client exit %d\nstdout: %s\nstderr: %s", r.code, r.stdout, r.stderr)
	}
	for i := range invalid {
		n := valid + i + 1
		if !strings.Contains(r.stderr, fmt.Sprintf("line %d: invalid", n)) {
			t.Errorf("client stderr does not report line %d (%.60q):\n%s", n, invalid[i], r.stderr)
		}
	}
	if !strings.Contains(r.stdout, "sent 8 events") || !strings.Contains(r.stdout, fmt.Sprintf("%d skipped invalid", len(invalid))) {
		t.Errorf("client summary = %q; want 8 sent, %d skipped", r.stdout, len(invalid))
	}

	// Nothing is in the database before the processor runs.
	if _, ok := revenueOf(t, srv.url(), "user1"); ok {
		t.Errorf("user1 has revenue before the processor ran")
	}
	p := runProg(t, nil, "processor", "-events-file", events, "-db", dsn, "-quiet")
	if p.code != 0 {
		t.Fatalf("processor exit %d\nstdout: %s\nstderr: %s", p.code, p.stdout, p.stderr)
	}
	checkRevenue(t, srv.url(), want)
	processed, _ := filepath.Glob(filepath.Join(dir, "server_events_*_processed.jsonl"))
	if len(processed) != 1 {
		t.Errorf("processed files = %v; want one", processed)
	}
	if _, err := os.Stat(events); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("live file still there after the processor: %v", err)
	}

	// Revenue accumulates across runs; a run with nothing to do changes nothing.
	r = runProg(t, nil, "client", "-file", input, "-url", srv.url(), "-secret", testSecret, "-quiet")
	if r.code != 0 {
		t.Fatalf("second client exit %d: %s", r.code, r.stderr)
	}
	for i := 0; i < 2; i++ {
		p = runProg(t, nil, "processor", "-events-file", events, "-db", dsn, "-quiet")
		if p.code != 0 {
			t.Fatalf("processor run %d exit %d: %s %s", i, p.code, p.stdout, p.stderr)
		}
	}
	if !strings.Contains(p.stdout, "nothing to process") {
		t.Errorf("third processor run stdout = %q; want nothing to process", p.stdout)
	}
	for u := range want {
		want[u] *= 2
	}
	checkRevenue(t, srv.url(), want)
	if _, ok := revenueOf(t, srv.url(), "nobody"); ok {
		t.Errorf("an unknown user has revenue")
	}
	if err := srv.stop(); err != nil {
		t.Errorf("server exit after SIGTERM: %v\n%s", err, srv.stderr)
	}
}

// TestHTTPErrors checks the auth, method and size errors against the real server process.
func TestHTTPErrors(t *testing.T) {
	dir := t.TempDir()
	events := filepath.Join(dir, "server_events.jsonl")
	srv := startServer(t, events, pgtest.NewDatabase(t, os.Getenv, true), "127.0.0.1:0")
	ev := `{"userId":"u","name":"add_revenue","value":1}`
	cases := []struct {
		name, method, path, secret, body string
		want                             int
	}{
		{"no secret", "POST", "/liveEvent", "", ev, 401},
		{"wrong secret", "POST", "/liveEvent", "nope", ev, 401},
		{"secret prefix", "POST", "/liveEvent", testSecret[:3], ev, 401},
		{"GET needs the secret", "GET", "/userEvents/u", "", "", 401},
		{"wrong method on liveEvent", "GET", "/liveEvent", testSecret, "", 405},
		{"PUT on liveEvent", "PUT", "/liveEvent", testSecret, ev, 405},
		{"wrong method on userEvents", "POST", "/userEvents/u", testSecret, ev, 405},
		{"invalid event", "POST", "/liveEvent", testSecret, `{"userId":"u","name":"add_revenue","value":1.5}`, 400},
		{"two lines", "POST", "/liveEvent", testSecret, ev + "\n" + ev, 400},
		{"too large", "POST", "/liveEvent", testSecret, `{"userId":"u","name":"add_revenue","value":1}` + strings.Repeat(" ", 65536), 413},
		{"unknown user", "GET", "/userEvents/nobody", testSecret, "", 404},
		{"unknown path", "GET", "/nope", testSecret, "", 404},
	}
	for _, c := range cases {
		req, _ := http.NewRequest(c.method, srv.url()+c.path, strings.NewReader(c.body))
		if c.secret != "" {
			req.Header.Set("Authorization", c.secret)
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatalf("%s: %v", c.name, err)
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != c.want {
			t.Errorf("%s: %s %s = %d %s; want %d", c.name, c.method, c.path, resp.StatusCode, body, c.want)
		}
		if !json.Valid(body) {
			t.Errorf("%s: body %q is not JSON", c.name, body)
		}
	}
	if b, err := os.ReadFile(events); err != nil || len(b) != 0 {
		t.Errorf("events file after only rejected requests = %q, %v; want empty", b, err)
	}

	// A client with the wrong secret stops and fails.
	input := filepath.Join(dir, "in.jsonl")
	os.WriteFile(input, []byte(strings.Repeat(ev+"\n", 500)), 0o644)
	r := runProg(t, nil, "client", "-file", input, "-url", srv.url(), "-secret", "wrong", "-quiet")
	if r.code != 1 || !strings.Contains(r.stderr, "-secret") {
		t.Errorf("client with wrong secret: exit %d, stderr %q; want 1 and a hint about -secret", r.code, r.stderr)
	}
	// Bad flags: exit 2 with the flag named.
	for _, prog := range []string{"server", "client", "processor"} {
		r := runProg(t, nil, prog, "-no-such-flag")
		if r.code != 2 || !strings.Contains(r.stderr, "no-such-flag") {
			t.Errorf("%s -no-such-flag: exit %d, stderr %q; want 2 naming the flag", prog, r.code, r.stderr)
		}
	}
}

// TestTokensEndToEnd walks the README's token steps with the real programs: keygen, mint, a
// server with the secret off, a client sending with a token, a user reading only their own
// revenue, and a key rotated with SIGHUP. No token ever reaches a log.
func TestTokensEndToEnd(t *testing.T) {
	dir := t.TempDir()
	priv1, priv2 := filepath.Join(dir, "k1.jwk"), filepath.Join(dir, "k2.jwk")
	keys := filepath.Join(dir, "token-keys.json")
	mustRun := func(prog string, args ...string) string {
		t.Helper()
		r := runProg(t, nil, prog, args...)
		if r.code != 0 {
			t.Fatalf("%s %v = exit %d\n%s%s", prog, args, r.code, r.stdout, r.stderr)
		}
		return strings.TrimSpace(r.stdout)
	}
	mint := func(key, sub, scope string) string {
		t.Helper()
		return mustRun("server", "token", "mint", "-key", key, "-sub", sub, "-scope", scope, "-ttl", "1h")
	}
	mustRun("server", "token", "keygen", "-kid", "k1", "-private", priv1, "-public", keys)
	writer := mint(priv1, "ingest", "events:write")
	reader := mint(priv1, "user1", "revenue:read:own")

	dsn := pgtest.NewDatabase(t, os.Getenv, false)
	live := filepath.Join(dir, "server_events.jsonl")
	srv := startServer(t, live, dsn, "127.0.0.1:0", "-secret", "", "-token-keys", keys, "-log-requests")
	events := filepath.Join(dir, "events.jsonl")
	if err := os.WriteFile(events, []byte(`{"userId":"user1","name":"add_revenue","value":5}
{"userId":"user2","name":"add_revenue","value":7}
{"userId":"user1","name":"subtract_revenue","value":2}
`), 0o644); err != nil {
		t.Fatal(err)
	}
	if r := runProg(t, nil, "client", "-file", events, "-url", srv.url(), "-token", writer, "-quiet"); r.code != 0 {
		t.Fatalf("client with a token = exit %d\n%s%s", r.code, r.stdout, r.stderr)
	}
	if r := runProg(t, nil, "client", "-file", events, "-url", srv.url(), "-secret", testSecret, "-quiet"); r.code == 0 || !strings.Contains(r.stdout+r.stderr, "401") {
		t.Errorf("client with the secret turned off = exit %d\n%s%s; want a 401 failure", r.code, r.stdout, r.stderr)
	}
	tokenFile := filepath.Join(dir, "reader.token")
	os.WriteFile(tokenFile, []byte(reader+"\n"), 0o600)
	if r := runProg(t, nil, "client", "-file", events, "-url", srv.url(), "-token-file", tokenFile, "-quiet"); r.code == 0 || !strings.Contains(r.stdout+r.stderr, "403") {
		t.Errorf("client with a revenue:read:own token = exit %d\n%s%s; want a 403 failure", r.code, r.stdout, r.stderr)
	}
	mustRun("processor", "-events-file", live, "-db", dsn, "-quiet")

	get := func(user, tok string) (int, int64) {
		t.Helper()
		req, _ := http.NewRequest(http.MethodGet, srv.url()+"/userEvents/"+user, nil)
		req.Header.Set("Authorization", "Bearer "+tok)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		var body struct{ Revenue int64 }
		json.NewDecoder(resp.Body).Decode(&body)
		return resp.StatusCode, body.Revenue
	}
	if code, rev := get("user1", reader); code != http.StatusOK || rev != 3 {
		t.Errorf("GET user1 with its own token = %d, %d; want 200, 3", code, rev)
	}
	if code, _ := get("user2", reader); code != http.StatusForbidden {
		t.Errorf("GET user2 with user1's token = %d; want 403", code)
	}

	// Rotation: add k2 to the set, SIGHUP, tokens of both keys work; drop k1, SIGHUP, only k2's.
	mustRun("server", "token", "keygen", "-kid", "k2", "-private", priv2, "-public", keys)
	hup := func() {
		t.Helper()
		n := strings.Count(srv.stderr.String(), "token keys reloaded")
		srv.cmd.Process.Signal(syscall.SIGHUP)
		deadline := time.Now().Add(10 * time.Second)
		for strings.Count(srv.stderr.String(), "token keys reloaded") == n {
			if time.Now().After(deadline) {
				t.Fatalf("no reload logged after SIGHUP:\n%s", srv.stderr)
			}
			time.Sleep(10 * time.Millisecond)
		}
	}
	hup()
	reader2 := mint(priv2, "user1", "revenue:read:own")
	for _, tok := range []string{reader, reader2} {
		if code, _ := get("user1", tok); code != http.StatusOK {
			t.Errorf("GET user1 during the rotation = %d; want 200 for tokens of both keys", code)
		}
	}
	var set struct{ Keys []map[string]any }
	b, _ := os.ReadFile(keys)
	json.Unmarshal(b, &set)
	var kept []map[string]any
	for _, k := range set.Keys {
		if k["kid"] == "k2" {
			kept = append(kept, k)
		}
	}
	b, _ = json.Marshal(map[string]any{"keys": kept})
	os.WriteFile(keys, b, 0o644)
	hup()
	if code, _ := get("user1", reader); code != http.StatusUnauthorized {
		t.Errorf("GET with a token of the removed key = %d; want 401", code)
	}
	if code, _ := get("user1", reader2); code != http.StatusOK {
		t.Errorf("GET with a token of the new key = %d; want 200", code)
	}
	// A broken file keeps the keys in use.
	os.WriteFile(keys, []byte("{not json"), 0o644)
	srv.cmd.Process.Signal(syscall.SIGHUP)
	deadline := time.Now().Add(10 * time.Second)
	for !strings.Contains(srv.stderr.String(), "token keys not reloaded") {
		if time.Now().After(deadline) {
			t.Fatalf("no error logged for a broken key file:\n%s", srv.stderr)
		}
		time.Sleep(10 * time.Millisecond)
	}
	if code, _ := get("user1", reader2); code != http.StatusOK {
		t.Errorf("GET after a broken key file = %d; want 200 with the keys kept", code)
	}
	if err := srv.stop(); err != nil {
		t.Errorf("server stop: %v", err)
	}
	for _, tok := range []string{writer, reader, reader2} {
		for _, part := range strings.Split(tok, ".") {
			if strings.Contains(srv.stderr.String(), part) {
				t.Fatalf("the server log holds a token:\n%s", srv.stderr)
			}
		}
	}
}
