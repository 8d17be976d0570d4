package main

import (
	"finonex/internal/testenv"

	"bytes"
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"finonex/internal/cli"
	"finonex/internal/event"
	"finonex/internal/logs"
	"finonex/internal/pgtest"
	"finonex/internal/spool"
)

// running is one run() in a goroutine.
type running struct {
	addr   string
	stderr *testenv.Buffer
	cancel context.CancelFunc
	done   chan error
}

// startRun starts run with args and waits until it listens and /healthz answers.
func startRun(t *testing.T, args []string, getenv func(string) string) *running {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	r := &running{stderr: &testenv.Buffer{}, cancel: cancel, done: make(chan error, 1)}
	go func() { r.done <- run(ctx, args, getenv, io.Discard, r.stderr) }()
	t.Cleanup(func() {
		cancel()
		select {
		case <-r.done:
		case <-time.After(30 * time.Second):
			t.Errorf("run did not return within 30s of cancel")
		}
	})
	deadline := time.Now().Add(30 * time.Second)
	for r.addr == "" {
		if addr, ok := logs.ListeningAddr(r.stderr.String()); ok {
			r.addr = addr
			break
		}
		select {
		case err := <-r.done:
			r.done <- err
			t.Fatalf("run returned %v before listening; stderr:\n%s", err, r.stderr)
		default:
		}
		if time.Now().After(deadline) {
			t.Fatalf("run did not log msg=listening within 30s; stderr:\n%s", r.stderr)
		}
		time.Sleep(2 * time.Millisecond)
	}
	c := &http.Client{Timeout: 2 * time.Second}
	for {
		resp, err := c.Get("http://" + r.addr + "/healthz")
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				break
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("/healthz did not answer 200 within 30s: %v", err)
		}
		time.Sleep(2 * time.Millisecond)
	}
	return r
}

// stop cancels run's context and returns what run returned.
func (r *running) stop(t *testing.T) error {
	t.Helper()
	r.cancel()
	select {
	case err := <-r.done:
		r.done <- err // for the cleanup
		return err
	case <-time.After(30 * time.Second):
		t.Fatalf("run did not return within 30s of cancel; stderr:\n%s", r.stderr)
		return nil
	}
}

func (r *running) post(t *testing.T, secret, body, key string) *http.Response {
	t.Helper()
	req, err := http.NewRequest(http.MethodPost, "http://"+r.addr+"/liveEvent", strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Authorization", secret)
	if key != "" {
		req.Header.Set("Idempotency-Key", key)
	}
	c := &http.Client{Timeout: 10 * time.Second}
	defer c.CloseIdleConnections()
	resp, err := c.Do(req)
	if err != nil {
		t.Fatalf("POST /liveEvent: %v", err)
	}
	io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	return resp
}

func noEnv(string) string { return "" }

// withPassword returns dsn with its password set to pw. Under trust auth the password is
// ignored; otherwise only the database features are lost, which these tests do not need.
func withPassword(t *testing.T, dsn, pw string) string {
	t.Helper()
	u, err := url.Parse(dsn)
	if err != nil {
		t.Fatalf("parse %q: %v", dsn, err)
	}
	u.User = url.UserPassword(u.User.Username(), pw)
	return u.String()
}

func TestRun(t *testing.T) {
	t.Parallel()
	const secret = "top-Secret-Value-77"
	dsn := withPassword(t, pgtest.NewDatabase(t, os.Getenv, true), "hunter2")
	file := filepath.Join(t.TempDir(), "server_events.jsonl")
	r := startRun(t, []string{"-addr", "127.0.0.1:0", "-events-file", file, "-db", dsn, "-secret", secret}, noEnv)

	if resp := r.post(t, "wrong", validEvent, ""); resp.StatusCode != http.StatusUnauthorized {
		t.Errorf("POST with a wrong secret = %d; want 401", resp.StatusCode)
	}
	if resp := r.post(t, secret, validEvent, "k1"); resp.StatusCode != http.StatusOK {
		t.Fatalf("POST = %d; want 200", resp.StatusCode)
	}
	if err := r.stop(t); err != nil {
		t.Fatalf("run after cancel = %v; want nil; stderr:\n%s", err, r.stderr)
	}
	b, err := os.ReadFile(file)
	if err != nil {
		t.Fatal(err)
	}
	if got, want := string(b), canonical("user1", event.AddRevenue, 98, "k1"); got != want {
		t.Errorf("events file = %q; want %q", got, want)
	}
	log := r.stderr.String()
	for _, secretPart := range []string{"hunter2", secret} {
		if strings.Contains(log, secretPart) {
			t.Errorf("stderr shows %q:\n%s", secretPart, log)
		}
	}
	for _, want := range []string{"msg=starting", "xxxxx", fmt.Sprintf("(set, %d bytes)", len(secret)), "msg=stopped"} {
		if !strings.Contains(log, want) {
			t.Errorf("stderr lacks %q:\n%s", want, log)
		}
	}
}

func TestRunOldSecret(t *testing.T) {
	t.Parallel()
	const secret, old = "new-Secret-Value-9", "old-Secret-Value-8"
	file := filepath.Join(t.TempDir(), "server_events.jsonl")
	r := startRun(t, []string{"-addr", "127.0.0.1:0", "-events-file", file, "-db", pgtest.UnreachableDSN},
		func(k string) string {
			return map[string]string{"FINONEX_SECRET": secret, "FINONEX_OLD_SECRET": old}[k]
		})
	for _, s := range []string{secret, old} {
		if resp := r.post(t, s, validEvent, ""); resp.StatusCode != http.StatusOK {
			t.Errorf("POST with %q = %d; want 200", s, resp.StatusCode)
		}
	}
	if resp := r.post(t, "secret", validEvent, ""); resp.StatusCode != http.StatusUnauthorized {
		t.Errorf("POST with the default secret = %d; want 401", resp.StatusCode)
	}
	if err := r.stop(t); err != nil {
		t.Fatalf("run = %v", err)
	}
	for _, s := range []string{secret, old} {
		if strings.Contains(r.stderr.String(), s) {
			t.Errorf("stderr shows the secret %q:\n%s", s, r.stderr)
		}
	}
}

func TestRunIdempotencySurvivesRestart(t *testing.T) {
	t.Parallel()
	dsn := pgtest.NewDatabase(t, os.Getenv, true)
	file := filepath.Join(t.TempDir(), "server_events.jsonl")
	args := []string{"-addr", "127.0.0.1:0", "-events-file", file, "-db", dsn, "-secret", testSecret}

	r := startRun(t, args, noEnv)
	if resp := r.post(t, testSecret, validEvent, "k"); resp.StatusCode != http.StatusOK {
		t.Fatalf("POST = %d; want 200", resp.StatusCode)
	}
	if err := r.stop(t); err != nil {
		t.Fatalf("first run = %v", err)
	}

	r = startRun(t, args, noEnv)
	resp := r.post(t, testSecret, validEvent, "k")
	if resp.StatusCode != http.StatusOK || resp.Header.Get("Idempotent-Replayed") != "true" {
		t.Errorf("POST of the same key after a restart = %d, Idempotent-Replayed %q; want 200, true",
			resp.StatusCode, resp.Header.Get("Idempotent-Replayed"))
	}
	if resp := r.post(t, testSecret, `{"userId":"user1","name":"add_revenue","value":1}`, "k"); resp.StatusCode != http.StatusUnprocessableEntity {
		t.Errorf("POST of another event with the key after a restart = %d; want 422", resp.StatusCode)
	}
	if !strings.Contains(r.stderr.String(), "keys=1") {
		t.Errorf("second run did not log reloading 1 key:\n%s", r.stderr)
	}
	if err := r.stop(t); err != nil {
		t.Fatalf("second run = %v", err)
	}
	b, _ := os.ReadFile(file)
	if got, want := string(b), canonical("user1", event.AddRevenue, 98, "k"); got != want {
		t.Errorf("events file = %q; want the line once: %q", got, want)
	}
}

func TestRunBadFlags(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name string
		args []string
		env  map[string]string
		want string // the flag the error must name
	}{
		{"queue 0", []string{"-queue", "0"}, nil, "-queue"},
		{"queue negative", []string{"-queue", "-1"}, nil, "-queue"},
		{"log format xml", []string{"-log-format", "xml"}, nil, "-log-format"},
		{"unknown flag", []string{"-nope"}, nil, "-nope"},
		{"flag without value", []string{"-queue"}, nil, "-queue"},
		{"queue not a number", []string{"-queue", "many"}, nil, "-queue"},
		{"FINONEX_QUEUE=abc", nil, map[string]string{"FINONEX_QUEUE": "abc"}, "-queue"},
		{"FINONEX_QUEUE=0", nil, map[string]string{"FINONEX_QUEUE": "0"}, "-queue"},
		{"FINONEX_LOG_FORMAT=xml", nil, map[string]string{"FINONEX_LOG_FORMAT": "xml"}, "-log-format"},
		{"FINONEX_IDEMPOTENCY_WINDOW=soon", nil, map[string]string{"FINONEX_IDEMPOTENCY_WINDOW": "soon"}, "-idempotency-window"},
		{"window 0", []string{"-idempotency-window", "0s"}, nil, "-idempotency-window"},
		{"empty secret", []string{"-secret", ""}, nil, "-secret"},
		{"empty events file", []string{"-events-file", ""}, nil, "-events-file"},
		{"arguments", []string{"extra"}, nil, "extra"},
		{"bad db URL", []string{"-db", "mysql://x", "-events-file", filepath.Join(t.TempDir(), "e.jsonl")}, nil, "-db"},
		{"events file in no directory", []string{"-db", pgtest.UnreachableDSN, "-addr", "127.0.0.1:0",
			"-events-file", filepath.Join(t.TempDir(), "missing", "e.jsonl")}, nil, "-events-file"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			getenv := func(k string) string { return tt.env[k] }
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			defer cancel()
			var stderr bytes.Buffer
			err := run(ctx, tt.args, getenv, io.Discard, &stderr)
			if err == nil {
				t.Fatalf("run(%q, env %v) = nil; want an error", tt.args, tt.env)
			}
			if !strings.Contains(err.Error(), tt.want) {
				t.Errorf("run(%q, env %v) = %q; want it to name %s", tt.args, tt.env, err, tt.want)
			}
			if code := cli.ExitCode(err, io.Discard); code != cli.ExitUsage {
				t.Errorf("ExitCode(%v) = %d; want %d", err, code, cli.ExitUsage)
			}
		})
	}

	// -h is not an error.
	var stderr bytes.Buffer
	err := run(context.Background(), []string{"-h"}, noEnv, io.Discard, &stderr)
	if cli.ExitCode(err, io.Discard) != cli.ExitOK || !errors.Is(err, flag.ErrHelp) {
		t.Errorf("run(-h) = %v; want flag.ErrHelp", err)
	}
	if !strings.Contains(stderr.String(), "-events-file") || !strings.Contains(stderr.String(), "FINONEX_SECRET") {
		t.Errorf("run(-h) usage %q; want flags and their variables", stderr.String())
	}
}

// The keys come back from the live file and from the claimed and processed files beside it
// that changed within the window; older files are not read.
func TestRunReloadsKeysFromEventsFiles(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	live := filepath.Join(dir, "server_events.jsonl")
	now := time.Now()
	name := func(at time.Time) string {
		n, err := spool.ClaimName(live, at)
		if err != nil {
			t.Fatal(err)
		}
		return n
	}
	files := []struct {
		path string
		key  string
		age  time.Duration
	}{
		{live, "in-live", 0},
		{name(now.Add(-time.Minute)), "in-claimed", time.Minute},
		{spool.ProcessedName(name(now.Add(-2 * time.Minute))), "in-processed", 30 * time.Minute},
		{spool.ProcessedName(name(now.Add(-3 * time.Hour))), "too-old", 2 * time.Hour},
		{spool.RejectedName(name(now.Add(-4 * time.Minute))), "in-rejected", 0}, // never acknowledged
	}
	for _, f := range files {
		line := canonical("user1", event.AddRevenue, 98, f.key)
		if err := os.WriteFile(f.path, []byte(line), 0o644); err != nil {
			t.Fatal(err)
		}
		if err := os.Chtimes(f.path, now.Add(-f.age), now.Add(-f.age)); err != nil {
			t.Fatal(err)
		}
	}
	r := startRun(t, []string{"-addr", "127.0.0.1:0", "-events-file", live, "-db", pgtest.UnreachableDSN,
		"-secret", testSecret, "-idempotency-window", "1h"}, noEnv)
	for _, f := range files {
		resp := r.post(t, testSecret, validEvent, f.key)
		replayed := resp.Header.Get("Idempotent-Replayed") == "true"
		want := f.key != "too-old" && f.key != "in-rejected"
		if resp.StatusCode != http.StatusOK || replayed != want {
			t.Errorf("POST with key %s after a restart = %d, replayed %v; want 200, replayed %v", f.key, resp.StatusCode, replayed, want)
		}
	}
	if err := r.stop(t); err != nil {
		t.Fatalf("run = %v", err)
	}
	b, _ := os.ReadFile(live)
	want := canonical("user1", event.AddRevenue, 98, "in-live") +
		canonical("user1", event.AddRevenue, 98, "too-old") + canonical("user1", event.AddRevenue, 98, "in-rejected")
	if string(b) != want {
		t.Errorf("live file = %q; want %q", b, want)
	}
}
