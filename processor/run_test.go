package main

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"regexp"
	"sort"
	"strings"
	"testing"
	"time"

	"finonex/internal/cli"
	"finonex/internal/event"
	"finonex/internal/pgtest"
	"finonex/internal/spool"
	"finonex/internal/store"
	"finonex/internal/testenv"
)

type result struct {
	err            error
	stdout, stderr string
}

// runProc runs the processor with an empty environment, so that the caller's FINONEX_*
// variables (FINONEX_TEST_CRASH_AT above all) cannot change the test.
func runProc(t *testing.T, args ...string) result {
	t.Helper()
	var stdout, stderr bytes.Buffer
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	err := run(ctx, append([]string{"-quiet"}, args...), func(string) string { return "" }, &stdout, &stderr)
	return result{err, stdout.String(), stderr.String()}
}

type fixture struct {
	dsn  string
	dir  string
	live string
	db   *store.Store
}

func newFixture(t *testing.T) *fixture {
	t.Helper()
	dsn := pgtest.NewDatabase(t, os.Getenv, true)
	db, err := store.Open(dsn)
	if err != nil {
		t.Fatalf("store.Open(%q) = %v", dsn, err)
	}
	t.Cleanup(func() { db.Close() })
	if err := db.Ensure(context.Background()); err != nil {
		t.Fatalf("Ensure = %v", err)
	}
	dir := t.TempDir()
	return &fixture{dsn: dsn, dir: dir, live: filepath.Join(dir, "server_events.jsonl"), db: db}
}

func (f *fixture) run(t *testing.T, args ...string) result {
	t.Helper()
	return runProc(t, append([]string{"-events-file", f.live, "-db", f.dsn}, args...)...)
}

// revenue returns every row of users_revenue.
func (f *fixture) revenue(t *testing.T) map[string]int64 {
	t.Helper()
	return pgtest.Revenues(t, f.db.DB())
}

func (f *fixture) wantRevenue(t *testing.T, want map[string]int64) {
	t.Helper()
	got := f.revenue(t)
	if fmt.Sprint(got) != fmt.Sprint(want) {
		t.Errorf("users_revenue = %v; want %v", got, want)
	}
}

// files returns the names in the fixture's directory, sorted.
func (f *fixture) files(t *testing.T) []string {
	t.Helper()
	entries, err := os.ReadDir(f.dir)
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, e := range entries {
		names = append(names, e.Name())
	}
	sort.Strings(names)
	return names
}

func add(user string, v int64) string {
	return string(event.AppendJSON(nil, event.Record{Event: event.Event{UserID: user, Name: event.AddRevenue, Value: v}}))
}

func sub(user string, v int64) string {
	return string(event.AppendJSON(nil, event.Record{Event: event.Event{UserID: user, Name: event.SubtractRevenue, Value: v}}))
}

const claim = `_\d{8}T\d{6}\.\d{9}Z-[0-9a-f]{8}`

func TestNothingToProcess(t *testing.T) {
	f := newFixture(t)
	for _, dsn := range []string{f.dsn, pgtest.UnreachableDSN} { // no file: the database is not needed
		res := runProc(t, "-events-file", f.live, "-db", dsn)
		if res.err != nil {
			t.Errorf("run with no events file (db %s) = %v; want nil", dsn, res.err)
		}
		if !strings.Contains(res.stdout, "nothing to process") {
			t.Errorf("stdout %q; want \"nothing to process\"", res.stdout)
		}
	}
	if names := f.files(t); len(names) != 0 {
		t.Errorf("directory holds %v; want nothing", names)
	}
	// The live file of a server that has written nothing yet is nothing to process either:
	// it is left in place, unclaimed.
	testenv.WriteFile(t, f.live, "")
	for _, dsn := range []string{f.dsn, pgtest.UnreachableDSN} {
		res := runProc(t, "-events-file", f.live, "-db", dsn)
		if res.err != nil || !strings.Contains(res.stdout, "nothing to process") {
			t.Errorf("run with an empty events file (db %s) = %v, stdout %q; want nil and \"nothing to process\"", dsn, res.err, res.stdout)
		}
	}
	if names := f.files(t); len(names) != 1 || names[0] != filepath.Base(f.live) {
		t.Errorf("directory holds %v; want only the empty live file", names)
	}
}

// TestNamedFileMissing: a FILE that does not exist is an error naming it, and the run says
// nothing about the live file it was not asked to look at.
func TestNamedFileMissing(t *testing.T) {
	f := newFixture(t)
	missing := filepath.Join(f.dir, "missing.jsonl")
	res := runProc(t, "-events-file", f.live, "-db", f.dsn, missing)
	if res.err == nil || !strings.Contains(res.err.Error(), missing) {
		t.Errorf("run(%s) = %v; want an error naming it", missing, res.err)
	}
	if strings.Contains(res.stdout, "nothing to process") {
		t.Errorf("stdout %q; want no word about the live file", res.stdout)
	}
}

func TestProcessFile(t *testing.T) {
	f := newFixture(t)
	long := `{"userId":"` + strings.Repeat("x", 70<<10) + `","name":"add_revenue","value":1}`
	content := strings.Join([]string{
		add("alice", 100),    // 1
		"",                   // 2 blank
		add("bob", 7) + "\r", // 3 CRLF
		"not json",           // 4 invalid
		sub("alice", 30),     // 5
		long,                 // 6 too long
		`{"userId":"carol","name":"add_revenue","value":-1}`, // 7 invalid
		"   \t", // 8 blank
		`{"userId":"alice","name":"add_revenue","value":1,"idempotencyKey":"k-1"}`, // 9 a server line with a key
		"bad crlf\r",  // 10 invalid, CRLF
		add("bob", 5), // 11, no final newline
	}, "\n")
	testenv.WriteFile(t, f.live, content)

	res := f.run(t)
	if res.err != nil {
		t.Fatalf("run = %v; stderr:\n%s", res.err, res.stderr)
	}
	f.wantRevenue(t, map[string]int64{"alice": 71, "bob": 12})

	names := f.files(t)
	if len(names) != 2 {
		t.Fatalf("directory holds %v; want the processed and the rejected file", names)
	}
	processed, rejected := names[0], names[1]
	if !regexp.MustCompile(`^server_events`+claim+`_processed\.jsonl$`).MatchString(processed) ||
		!regexp.MustCompile(`^server_events`+claim+`_rejected\.jsonl$`).MatchString(rejected) ||
		strings.TrimSuffix(processed, "_processed.jsonl") != strings.TrimSuffix(rejected, "_rejected.jsonl") {
		t.Fatalf("directory holds %v; want NAME_<claim>_processed.jsonl and NAME_<claim>_rejected.jsonl", names)
	}
	claimedBase := strings.TrimSuffix(processed, "_processed.jsonl") + ".jsonl"
	if got := testenv.ReadFile(t, filepath.Join(f.dir, processed)); got != content {
		t.Errorf("processed file differs from what was claimed")
	}
	wantRejected := "not json\n" + long + "\n" + `{"userId":"carol","name":"add_revenue","value":-1}` + "\n" + "bad crlf\r\n"
	if got := testenv.ReadFile(t, filepath.Join(f.dir, rejected)); got != wantRejected {
		t.Errorf("rejected file = %.200q...; want %.200q... (every invalid line, as it was)", got, wantRejected)
	}

	for _, w := range []string{
		claimedBase + ":4: invalid line set aside: ",
		claimedBase + ":6: invalid line set aside: line is longer than 65536 bytes",
		claimedBase + ":7: invalid line set aside: value must not be negative",
		claimedBase + ":10: invalid line set aside: ",
	} {
		if !strings.Contains(res.stderr, w) {
			t.Errorf("stderr lacks %q:\n%s", w, res.stderr)
		}
	}
	if n := strings.Count(res.stderr, "\n"); n != 4 {
		t.Errorf("stderr has %d lines; want 4:\n%s", n, res.stderr)
	}
	for _, w := range []string{
		"claimed " + f.live + " as " + claimedBase,
		"applied " + claimedBase + ": 5 events, 2 users, 4 rejected lines (set aside in " + rejected + ")",
		"renamed to " + processed,
		"done: 1 files, 5 events applied, 2 distinct users, 4 rejected lines (set aside in " + rejected + ")",
	} {
		if !strings.Contains(res.stdout, w) {
			t.Errorf("stdout lacks %q:\n%s", w, res.stdout)
		}
	}

	// The ledger row.
	var events, users int64
	var net, digest string
	err := f.db.DB().QueryRow(`SELECT events, users, net_revenue::text, sha256 FROM processed_files WHERE file_name = $1`, claimedBase).
		Scan(&events, &users, &net, &digest)
	sum := sha256.Sum256([]byte(content))
	if err != nil || events != 5 || users != 2 || net != "83" || digest != hex.EncodeToString(sum[:]) {
		t.Errorf("ledger row for %s = %d events, %d users, net %s, sha256 %s, err %v; want 5, 2, 83, %x",
			claimedBase, events, users, net, digest, err, sum)
	}

	// Again: nothing to do, nothing changes.
	res = f.run(t)
	if res.err != nil || !strings.Contains(res.stdout, "nothing to process") {
		t.Errorf("second run = %v, stdout %q; want nil and \"nothing to process\"", res.err, res.stdout)
	}
	f.wantRevenue(t, map[string]int64{"alice": 71, "bob": 12})

	// Revenue accumulates across runs.
	testenv.WriteFile(t, f.live, add("alice", 10)+"\n"+sub("dave", 4)+"\n")
	if res := f.run(t); res.err != nil || res.stderr != "" {
		t.Fatalf("third run = %v, stderr %q", res.err, res.stderr)
	}
	f.wantRevenue(t, map[string]int64{"alice": 81, "bob": 12, "dave": -4})
	var n int
	f.db.DB().QueryRow(`SELECT count(*) FROM processed_files`).Scan(&n)
	if n != 2 {
		t.Errorf("ledger holds %d files; want 2", n)
	}
	if got := len(f.files(t)); got != 3 {
		t.Errorf("directory holds %v; want 2 processed and 1 rejected file", f.files(t))
	}
}

func TestLeftoverClaimedFile(t *testing.T) {
	f := newFixture(t)
	leftover, err := spool.ClaimName(f.live, time.Now().Add(-time.Minute))
	if err != nil {
		t.Fatal(err)
	}
	testenv.WriteFile(t, leftover, add("dave", 3)+"\n")
	testenv.WriteFile(t, f.live, add("dave", 4)+"\n")
	res := f.run(t)
	if res.err != nil {
		t.Fatalf("run = %v; stderr:\n%s", res.err, res.stderr)
	}
	if !strings.Contains(res.stdout, "finishing "+leftover+", left by an interrupted run") {
		t.Errorf("stdout %q; want the leftover named", res.stdout)
	}
	if !strings.Contains(res.stdout, "done: 2 files, 2 events applied") {
		t.Errorf("stdout %q; want 2 files, 2 events", res.stdout)
	}
	f.wantRevenue(t, map[string]int64{"dave": 7})
	if _, err := os.Stat(spool.ProcessedName(leftover)); err != nil {
		t.Errorf("leftover not renamed to its processed name: %v", err)
	}
	if left, _ := spool.Leftovers(f.live); len(left) != 0 {
		t.Errorf("leftovers after the run: %v", left)
	}
}

func TestLeftoverAlreadyInLedger(t *testing.T) {
	f := newFixture(t)
	leftover, err := spool.ClaimName(f.live, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	testenv.WriteFile(t, leftover, add("erin", 50)+"\n")
	// A processor applied it and died before the rename.
	digest := sha256.Sum256([]byte(add("erin", 50) + "\n"))
	if _, err := f.db.DB().Exec(`INSERT INTO processed_files (file_name, events, users, net_revenue, sha256) VALUES ($1, 1, 1, 50, $2)`,
		filepath.Base(leftover), hex.EncodeToString(digest[:])); err != nil {
		t.Fatal(err)
	}
	res := f.run(t)
	if res.err != nil {
		t.Fatalf("run = %v", res.err)
	}
	if !strings.Contains(res.stdout, filepath.Base(leftover)+" is already in the ledger") {
		t.Errorf("stdout %q; want \"already in the ledger\"", res.stdout)
	}
	f.wantRevenue(t, map[string]int64{})
	if got := testenv.ReadFile(t, spool.ProcessedName(leftover)); got != add("erin", 50)+"\n" {
		t.Errorf("processed file = %q", got)
	}
	if _, err := os.Stat(leftover); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("claimed name still there: %v", err)
	}
}

// A claimed file another processor holds is left to it.
func TestLeasedFileLeftAlone(t *testing.T) {
	f := newFixture(t)
	leftover, err := spool.ClaimName(f.live, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	testenv.WriteFile(t, leftover, add("ivy", 1)+"\n")
	lease, err := spool.Take(leftover)
	if err != nil {
		t.Fatalf("Take = %v", err)
	}
	res := f.run(t)
	if res.err != nil || !strings.Contains(res.stdout, "being applied by another processor") {
		t.Errorf("run while another holds the file = %v, stdout %q; want nil and the file left alone", res.err, res.stdout)
	}
	f.wantRevenue(t, map[string]int64{})
	if _, err := os.Stat(leftover); err != nil {
		t.Errorf("leased file: %v", err)
	}
	lease.Release()
	if res := f.run(t); res.err != nil {
		t.Fatalf("run after release = %v", res.err)
	}
	f.wantRevenue(t, map[string]int64{"ivy": 1})
}

func TestNamedFiles(t *testing.T) {
	f := newFixture(t)
	a, b := filepath.Join(f.dir, "a.jsonl"), filepath.Join(f.dir, "b.jsonl")
	c, err := spool.ClaimName(filepath.Join(f.dir, "c.jsonl"), time.Now())
	if err != nil {
		t.Fatal(err)
	}
	testenv.WriteFile(t, a, add("fay", 1)+"\n")
	testenv.WriteFile(t, b, add("fay", 2)+"\n")
	testenv.WriteFile(t, c, add("fay", 4)+"\n")
	testenv.WriteFile(t, f.live, add("untouched", 1)+"\n")
	res := f.run(t, a, b, c)
	if res.err != nil {
		t.Fatalf("run a b c = %v; stderr:\n%s", res.err, res.stderr)
	}
	f.wantRevenue(t, map[string]int64{"fay": 7})
	if !strings.Contains(res.stdout, "done: 3 files, 3 events applied, 3 user totals updated") {
		t.Errorf("stdout %q; want 3 files", res.stdout)
	}
	if got := testenv.ReadFile(t, f.live); got != add("untouched", 1)+"\n" {
		t.Errorf("the live file was touched: %q", got)
	}
	if _, err := os.Stat(spool.ProcessedName(c)); err != nil {
		t.Errorf("named claimed file not processed under its own name: %v", err)
	}
	var processed []string
	for _, n := range f.files(t) {
		if strings.HasSuffix(n, "_processed.jsonl") {
			processed = append(processed, n)
		}
	}
	if len(processed) != 3 {
		t.Errorf("processed files %v; want 3", processed)
	}

	for _, tt := range []struct {
		name, path, want string
	}{
		{"processed file", filepath.Join(f.dir, processed[0]), "already processed"},
		{"plain _processed name", filepath.Join(f.dir, "x_processed.jsonl"), "already processed"},
		{"rejected file", filepath.Join(f.dir, "x_rejected.jsonl"), "rejected"},
		{"missing file", filepath.Join(f.dir, "missing.jsonl"), "no such file"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			if tt.name != "missing file" && tt.name != "processed file" {
				testenv.WriteFile(t, tt.path, add("nobody", 1)+"\n")
			}
			res := f.run(t, tt.path)
			if res.err == nil || !strings.Contains(res.err.Error(), tt.want) {
				t.Fatalf("run %s = %v; want an error saying %q", tt.path, res.err, tt.want)
			}
			if code := cli.ExitCode(res.err, io.Discard); code != cli.ExitFail {
				t.Errorf("ExitCode = %d; want %d", code, cli.ExitFail)
			}
		})
	}
	f.wantRevenue(t, map[string]int64{"fay": 7})
}

// A named file that does not exist is an error, also when its name is a claimed name (a
// typo must not look like success).
func TestNamedMissingClaimedFile(t *testing.T) {
	f := newFixture(t)
	missing, err := spool.ClaimName(f.live, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	res := f.run(t, missing)
	if res.err == nil {
		t.Errorf("run %s (no such file, nor its processed name) = nil, stdout %q; want an error", missing, res.stdout)
	}
}

// An empty file named on the command line is applied as zero events and recorded, like any
// other. (An empty live file is left alone: TestNothingToProcess.)
func TestEmptyFile(t *testing.T) {
	f := newFixture(t)
	testenv.WriteFile(t, f.live, "")
	res := f.run(t, f.live)
	if res.err != nil || !strings.Contains(res.stdout, "done: 1 files, 0 events applied") {
		t.Errorf("run on an empty file = %v, stdout %q; want nil and 1 file, 0 events", res.err, res.stdout)
	}
	f.wantRevenue(t, map[string]int64{})
	if names := f.files(t); len(names) != 1 || !strings.HasSuffix(names[0], "_processed.jsonl") {
		t.Errorf("directory holds %v; want one processed file", names)
	}
}

func TestDatabaseUnreachable(t *testing.T) {
	f := newFixture(t)
	content := add("gus", 5) + "\nnot json\n"
	testenv.WriteFile(t, f.live, content)
	res := runProc(t, "-events-file", f.live, "-db", pgtest.UnreachableDSN)
	if res.err == nil {
		t.Fatalf("run with PostgreSQL unreachable = nil; want an error")
	}
	if code := cli.ExitCode(res.err, io.Discard); code != cli.ExitFail {
		t.Errorf("ExitCode(%v) = %d; want %d", res.err, code, cli.ExitFail)
	}
	left, err := spool.Leftovers(f.live)
	if err != nil || len(left) != 1 {
		t.Fatalf("leftovers after the failure = %v, %v; want the claimed file", left, err)
	}
	if got := testenv.ReadFile(t, left[0]); got != content {
		t.Errorf("claimed file = %q; want %q", got, content)
	}
	if _, err := os.Stat(f.live); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("live file: %v; want it claimed", err)
	}
	if names := f.files(t); len(names) != 1 {
		t.Errorf("directory holds %v; want only the claimed file", names)
	}
	f.wantRevenue(t, map[string]int64{})

	// The next run with PostgreSQL finishes it.
	res = f.run(t)
	if res.err != nil {
		t.Fatalf("run with PostgreSQL = %v", res.err)
	}
	if !strings.Contains(res.stdout, "finishing "+left[0]) {
		t.Errorf("stdout %q; want the leftover finished", res.stdout)
	}
	f.wantRevenue(t, map[string]int64{"gus": 5})
	if _, err := os.Stat(spool.ProcessedName(left[0])); err != nil {
		t.Errorf("leftover not processed: %v", err)
	}
}

func TestOverflow(t *testing.T) {
	f := newFixture(t)
	// 1024 * MaxValue fits in an int64; the 1025th does not.
	var b strings.Builder
	for i := 0; i < 1026; i++ {
		b.WriteString(add("whale", event.MaxValue) + "\n")
	}
	b.WriteString(add("minnow", 1) + "\n")
	testenv.WriteFile(t, f.live, b.String())
	res := f.run(t)
	if res.err != nil {
		t.Fatalf("run = %v", res.err)
	}
	const whale = 1024 * event.MaxValue
	f.wantRevenue(t, map[string]int64{"whale": whale, "minnow": 1})
	for _, line := range []int{1025, 1026} {
		w := fmt.Sprintf(":%d: invalid line set aside: user \"whale\": revenue total overflows a 64-bit integer", line)
		if !strings.Contains(res.stderr, w) {
			t.Errorf("stderr lacks %q:\n%s", w, res.stderr)
		}
	}
	if n := strings.Count(res.stderr, "\n"); n != 2 {
		t.Errorf("stderr has %d lines; want 2:\n%s", n, res.stderr)
	}
	if !strings.Contains(res.stdout, "1025 events applied, 2 distinct users, 2 rejected lines") {
		t.Errorf("stdout %q; want 1025 events and 2 rejected lines", res.stdout)
	}

	// Across files the database refuses the overflow: nothing of the file is applied.
	testenv.WriteFile(t, f.live, add("whale", event.MaxValue)+"\n"+add("minnow", 1)+"\n")
	res = f.run(t)
	if res.err == nil || !strings.Contains(res.err.Error(), "nothing applied") {
		t.Fatalf("run whose sum overflows the stored total = %v; want an error saying nothing was applied", res.err)
	}
	f.wantRevenue(t, map[string]int64{"whale": whale, "minnow": 1})
	if left, _ := spool.Leftovers(f.live); len(left) != 1 {
		t.Errorf("leftovers = %v; want the file kept under its claimed name", left)
	}
}

func TestBadFlags(t *testing.T) {
	tests := []struct {
		name string
		args []string
		env  map[string]string
		want string
	}{
		{"progress interval 0", []string{"-progress-interval", "0s"}, nil, "-progress-interval"},
		{"empty events file", []string{"-events-file", ""}, nil, "-events-file"},
		{"unknown flag", []string{"-nope"}, nil, "-nope"},
		{"FINONEX_PROGRESS_INTERVAL=x", nil, map[string]string{"FINONEX_PROGRESS_INTERVAL": "x"}, "-progress-interval"},
		{"FINONEX_QUIET=maybe", nil, map[string]string{"FINONEX_QUIET": "maybe"}, "-quiet"},
		{"bad db", []string{"-db", "mysql://x"}, nil, "-db"},
		{"events file in no directory", []string{"-db", pgtest.UnreachableDSN, "-events-file", filepath.Join(t.TempDir(), "missing", "e.jsonl")}, nil, "-events-file"},
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
