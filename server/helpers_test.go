package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"finonex/internal/auth"
	"finonex/internal/event"
	"finonex/internal/idempotency"
	"finonex/internal/pgtest"
	"finonex/internal/prom"
	"finonex/internal/spool"
	"finonex/internal/store"
	"finonex/internal/token"
)

const testSecret = "s3cret-Value-42"

// testServer is the real handler from NewServer over a real spool.Writer, a real store and
// an httptest.Server.
type testServer struct {
	srv    *httptest.Server
	h      http.Handler
	file   string
	w      *spool.Writer
	keys   *idempotency.Window
	db     *store.Store
	reads  *store.Reads
	m      *metrics
	client *http.Client
}

// newDSN returns a fresh, empty test database with the schema applied.
func newDSN(t *testing.T) string {
	t.Helper()
	dsn := pgtest.NewDatabase(t, os.Getenv, true)
	db, err := store.Open(dsn)
	if err != nil {
		t.Fatalf("store.Open(%q) = %v", dsn, err)
	}
	defer db.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := db.Ensure(ctx); err != nil {
		t.Fatalf("Ensure(%q) = %v", dsn, err)
	}
	return dsn
}

func newTestServer(t *testing.T, dsn string, opts spool.Options) *testServer {
	t.Helper()
	return newTestServerSecrets(t, dsn, opts, []string{testSecret})
}

func newTestServerSecrets(t *testing.T, dsn string, opts spool.Options, secrets []string) *testServer {
	t.Helper()
	return newTestServerAuth(t, dsn, opts, secrets, nil)
}

// newTestServerAuth is a test server accepting the secrets and the tokens verifies (nil:
// no tokens).
func newTestServerAuth(t *testing.T, dsn string, opts spool.Options, secrets []string, tokens *token.Verifier) *testServer {
	t.Helper()
	db, err := store.Open(dsn)
	if err != nil {
		t.Fatalf("store.Open(%q) = %v", dsn, err)
	}
	keys := idempotency.New(10*time.Minute, idempotency.DefaultMaxKeys)
	m := newMetrics(keys, db.Ping)
	opts.OnBatch = m.observeBatch
	file := filepath.Join(t.TempDir(), "server_events.jsonl")
	w, err := spool.Open(file, opts)
	if err != nil {
		db.Close()
		t.Fatalf("spool.Open(%q) = %v", file, err)
	}
	m.watchWriter(w)
	reads := db.NewReads(store.ReadOptions{})
	m.watchReads(reads)
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	h := NewServer(log, auth.New(secrets, tokens), w, keys, reads, m)
	srv := httptest.NewServer(h)
	tr := &http.Transport{MaxIdleConnsPerHost: 128, MaxConnsPerHost: 128}
	ts := &testServer{srv: srv, h: h, file: file, w: w, keys: keys, db: db, reads: reads, m: m,
		client: &http.Client{Transport: tr, Timeout: 30 * time.Second}}
	t.Cleanup(func() {
		tr.CloseIdleConnections()
		srv.Close()
		w.Close()
		reads.Close()
		db.Close()
	})
	return ts
}

type response struct {
	status int
	header http.Header
	body   []byte
}

// do sends one request through the network to the test server.
func (ts *testServer) do(t *testing.T, method, path string, body []byte, hdr map[string]string) response {
	t.Helper()
	req, err := http.NewRequest(method, ts.srv.URL+path, bytes.NewReader(body))
	if err != nil {
		t.Fatalf("NewRequest(%s %s) = %v", method, path, err)
	}
	for k, v := range hdr {
		req.Header.Set(k, v)
	}
	resp, err := ts.client.Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", method, path, err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatalf("%s %s: read body: %v", method, path, err)
	}
	return response{resp.StatusCode, resp.Header, b}
}

// serve sends one request straight to the handler, for headers a real client refuses to send.
func (ts *testServer) serve(method, path string, body []byte, hdr map[string]string) response {
	req := httptest.NewRequest(method, path, bytes.NewReader(body))
	for k, v := range hdr {
		req.Header[k] = []string{v}
	}
	rec := httptest.NewRecorder()
	ts.h.ServeHTTP(rec, req)
	return response{rec.Code, rec.Header(), rec.Body.Bytes()}
}

func (ts *testServer) post(t *testing.T, body string, hdr map[string]string) response {
	t.Helper()
	h := map[string]string{"Authorization": testSecret, "Content-Type": "application/json"}
	for k, v := range hdr {
		h[k] = v
	}
	return ts.do(t, http.MethodPost, "/liveEvent", []byte(body), h)
}

func (ts *testServer) get(t *testing.T, path string) response {
	t.Helper()
	return ts.do(t, http.MethodGet, path, nil, map[string]string{"Authorization": testSecret})
}

func (ts *testServer) contents(t *testing.T) string {
	t.Helper()
	b, err := os.ReadFile(ts.file)
	if err != nil && !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("read %s: %v", ts.file, err)
	}
	return string(b)
}

// wantJSONError checks that r is status with a JSON body {"error": "<non-empty>"}.
func wantJSONError(t *testing.T, what string, r response, status int) string {
	t.Helper()
	if r.status != status {
		t.Errorf("%s: status %d (body %q); want %d", what, r.status, r.body, status)
	}
	if ct := r.header.Get("Content-Type"); ct != "application/json" {
		t.Errorf("%s: Content-Type %q; want application/json", what, ct)
	}
	var v map[string]any
	if err := json.Unmarshal(r.body, &v); err != nil {
		t.Errorf("%s: body %q is not JSON: %v", what, r.body, err)
		return ""
	}
	msg, _ := v["error"].(string)
	if msg == "" {
		t.Errorf("%s: body %q; want a non-empty \"error\" string", what, r.body)
	}
	return msg
}

func wantOK(t *testing.T, what string, r response) {
	t.Helper()
	if r.status != http.StatusOK {
		t.Fatalf("%s: status %d (body %q); want 200", what, r.status, r.body)
	}
	if string(r.body) != "{\"status\":\"stored\"}\n" {
		t.Errorf("%s: body %q; want {\"status\":\"stored\"}", what, r.body)
	}
}

// canonical is the line the server must write for ev under key.
func canonical(userID, name string, value int64, key string) string {
	return string(event.AppendJSON(nil, event.Record{Event: event.Event{UserID: userID, Name: name, Value: value}, Key: key})) + "\n"
}

// gateFS is the real file system with two faults a test can turn on: Sync can be held until
// released (to keep a write in flight), or fail once.
type gateFS struct {
	hold         atomic.Bool
	failNext     atomic.Bool
	failTruncate atomic.Bool
	entered      chan struct{}
	release      chan struct{}
	once         sync.Once
}

func newGateFS() *gateFS {
	return &gateFS{entered: make(chan struct{}, 64), release: make(chan struct{})}
}

func (g *gateFS) open() {
	g.hold.Store(false)
	g.once.Do(func() { close(g.release) })
}

func (g *gateFS) OpenAppend(path string) (spool.File, bool, error) {
	f, created, err := spool.OS{}.OpenAppend(path)
	if err != nil {
		return nil, false, err
	}
	return &gateFile{File: f, g: g}, created, nil
}

func (g *gateFS) SameFile(path string, f spool.File) (bool, error) {
	if gf, ok := f.(*gateFile); ok {
		f = gf.File
	}
	return spool.OS{}.SameFile(path, f)
}

func (g *gateFS) SyncDir(dir string) error { return spool.OS{}.SyncDir(dir) }

type gateFile struct {
	spool.File
	g *gateFS
}

func (f *gateFile) Truncate(size int64) error {
	if f.g.failTruncate.Load() {
		return errors.New("injected truncate failure")
	}
	return f.File.Truncate(size)
}

func (f *gateFile) Sync() error {
	if f.g.failNext.CompareAndSwap(true, false) {
		return errors.New("injected sync failure")
	}
	if f.g.hold.Load() {
		f.g.entered <- struct{}{}
		<-f.g.release
	}
	return f.File.Sync()
}

func lines(s string) []string {
	s = strings.TrimSuffix(s, "\n")
	if s == "" {
		return nil
	}
	return strings.Split(s, "\n")
}

// metrics scrapes GET /metrics with the secret and parses it strictly: a page that breaks
// the exposition format fails the test.
func (ts *testServer) metrics(t *testing.T) map[string]*prom.Family {
	t.Helper()
	r := ts.get(t, "/metrics")
	if r.status != http.StatusOK {
		t.Fatalf("GET /metrics = %d %q; want 200", r.status, r.body)
	}
	fams, err := prom.Parse(bytes.NewReader(r.body))
	if err != nil {
		t.Fatalf("GET /metrics does not parse: %v\n%s", err, r.body)
	}
	return fams
}
