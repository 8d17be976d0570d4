package spool_test

import (
	"finonex/internal/testenv"

	"os"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	"finonex/internal/spool"
)

// TestClaimNameUnique claims under many names at the very same instant, as two processors
// might: the names differ, are claimed names, and sort by time.
func TestClaimNameUnique(t *testing.T) {
	now := time.Date(2024, 5, 6, 7, 8, 9, 123456789, time.FixedZone("CEST", 2*3600))
	const path = "/var/spool/events.jsonl"
	seen := map[string]bool{}
	for range 500 {
		name, err := spool.ClaimName(path, now)
		if err != nil {
			t.Fatalf("ClaimName: %v", err)
		}
		if seen[name] {
			t.Fatalf("ClaimName(%q, %v) returned %q twice", path, now, name)
		}
		seen[name] = true
		if !strings.HasPrefix(name, "/var/spool/events_20240506T050809.123456789Z-") || !strings.HasSuffix(name, ".jsonl") {
			t.Fatalf("ClaimName(%q, %v) = %q; want /var/spool/events_20240506T050809.123456789Z-<random>.jsonl", path, now, name)
		}
		if !spool.IsClaimed(name) {
			t.Fatalf("IsClaimed(%q) = false; want true", name)
		}
	}
	earlier, _ := spool.ClaimName(path, now.Add(-time.Nanosecond))
	later, _ := spool.ClaimName(path, now.Add(time.Hour))
	for name := range seen {
		if !(earlier < name && name < later) {
			t.Fatalf("claimed names do not sort by time: %q, %q, %q", earlier, name, later)
		}
	}
}

const stamp = "_20240506T050809.123456789Z-0a1b2c3d" // what ClaimName adds

type claimedNamesCase struct{ claimed, processed, rejected string }

func checkClaimedNames(t *testing.T, cases []claimedNamesCase) {
	t.Helper()
	for _, tc := range cases {
		if got := spool.ProcessedName(tc.claimed); got != tc.processed {
			t.Errorf("ProcessedName(%q) = %q; want %q", tc.claimed, got, tc.processed)
		}
		if got := spool.RejectedName(tc.claimed); got != tc.rejected {
			t.Errorf("RejectedName(%q) = %q; want %q", tc.claimed, got, tc.rejected)
		}
		if !spool.IsClaimed(tc.claimed) {
			t.Errorf("IsClaimed(%q) = false; want true", tc.claimed)
		}
		for _, not := range []string{tc.processed, tc.rejected} {
			if spool.IsClaimed(not) {
				t.Errorf("IsClaimed(%q) = true; want false", not)
			}
		}
	}
}

func TestClaimedNames(t *testing.T) {
	checkClaimedNames(t, []claimedNamesCase{
		{"/s/events" + stamp + ".jsonl", "/s/events" + stamp + "_processed.jsonl", "/s/events" + stamp + "_rejected.jsonl"},
		{"/a.b/events" + stamp + ".jsonl", "/a.b/events" + stamp + "_processed.jsonl", "/a.b/events" + stamp + "_rejected.jsonl"},
		{"rel.d/x.y/events" + stamp + ".log", "rel.d/x.y/events" + stamp + "_processed.log", "rel.d/x.y/events" + stamp + "_rejected.log"},
	})
	for _, path := range []string{
		"/s/events.jsonl",
		"/s/events",
		"/a.b/c.d/events.jsonl",
		"/s" + stamp + "/events.jsonl", // the stamp is in a directory's name only
		"/s/events_20240506T050809.123456789Z.jsonl",
		"/s/events_20240506T050809.123456789Z-0a1b2c3.jsonl",
		"/s/events_20240506T050809.123456789Z-0A1B2C3D.jsonl",
	} {
		if spool.IsClaimed(path) {
			t.Errorf("IsClaimed(%q) = true; want false", path)
		}
	}
	for _, path := range []string{"/s/events.jsonl", "/a.b/c.d/events.jsonl"} {
		name, err := spool.ClaimName(path, time.Now())
		if err != nil {
			t.Fatalf("ClaimName: %v", err)
		}
		if filepath.Dir(name) != filepath.Dir(path) || filepath.Ext(name) != filepath.Ext(path) || !spool.IsClaimed(name) {
			t.Errorf("ClaimName(%q) = %q; want a claimed name in the same directory with the same extension", path, name)
		}
	}
}

// TestClaimedNamesWithoutExtension: the live file's name need not have an extension
// (-events-file may be any path). Then the only dot in a claimed name is the one in the
// claim time, which must not be taken for an extension.
func TestClaimedNamesWithoutExtension(t *testing.T) {
	checkClaimedNames(t, []claimedNamesCase{
		{"/s/events" + stamp, "/s/events" + stamp + "_processed", "/s/events" + stamp + "_rejected"},
		{"/a.b/c.d/events" + stamp, "/a.b/c.d/events" + stamp + "_processed", "/a.b/c.d/events" + stamp + "_rejected"},
	})
	for _, path := range []string{"/s/events", "/a.b/c.d/events"} {
		name, err := spool.ClaimName(path, time.Now())
		if err != nil {
			t.Fatalf("ClaimName: %v", err)
		}
		if !spool.IsClaimed(name) {
			t.Errorf("IsClaimed(ClaimName(%q)) = IsClaimed(%q) = false; want true", path, name)
		}
	}
}

func TestClaim(t *testing.T) {
	dir := t.TempDir()
	live := filepath.Join(dir, "events.jsonl")
	if got, err := spool.Claim(live, time.Now()); got != "" || err != nil {
		t.Errorf("Claim of a missing file = %q, %v; want \"\", nil", got, err)
	}
	testenv.WriteFile(t, live, "one\n")
	claimed, err := spool.Claim(live, time.Now())
	if err != nil {
		t.Fatalf("Claim: %v", err)
	}
	if filepath.Dir(claimed) != dir || !spool.IsClaimed(claimed) {
		t.Errorf("Claim(%q) = %q; want a claimed name beside it", live, claimed)
	}
	if _, err := os.Stat(live); !os.IsNotExist(err) {
		t.Errorf("live file after Claim: %v; want it gone", err)
	}
	if got := testenv.ReadFile(t, claimed); got != "one\n" {
		t.Errorf("claimed file = %q; want %q", got, "one\n")
	}
}

// TestClaimWaitsForWriterMidBatch holds the writers' lock on the live file, as a writer
// between its inode check and its sync does, while Claim runs: Claim must rename the file
// but not return until the writer lets go, and then the claimed file has the writer's line.
func TestClaimWaitsForWriterMidBatch(t *testing.T) {
	dir := t.TempDir()
	live := filepath.Join(dir, "events.jsonl")
	testenv.WriteFile(t, live, "one\n")
	f, err := os.OpenFile(live, os.O_WRONLY|os.O_APPEND, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX); err != nil {
		t.Fatal(err)
	}
	type result struct {
		claimed string
		content string
		err     error
	}
	done := make(chan result, 1)
	go func() {
		claimed, err := spool.Claim(live, time.Now())
		var content []byte
		if err == nil {
			content, err = os.ReadFile(claimed)
		}
		done <- result{claimed, string(content), err}
	}()
	testenv.WaitFor(t, "Claim to rename the live file", func() bool {
		_, err := os.Stat(live)
		return os.IsNotExist(err)
	})
	// A correct Claim never returns here; give a wrong one time to.
	select {
	case r := <-done:
		t.Fatalf("Claim returned (%q, %v) while a writer held the lock mid-batch", r.claimed, r.err)
	case <-time.After(50 * time.Millisecond):
	}
	if _, err := f.WriteString("two\n"); err != nil {
		t.Fatal(err)
	}
	if err := syscall.Flock(int(f.Fd()), syscall.LOCK_UN); err != nil {
		t.Fatal(err)
	}
	r := <-done
	if r.err != nil {
		t.Fatalf("Claim: %v", r.err)
	}
	if r.content != "one\ntwo\n" {
		t.Errorf("claimed file read after Claim = %q; want %q", r.content, "one\ntwo\n")
	}
}

// TestLeftovers puts files of every kind beside the live file: only its claimed, unprocessed
// ones are leftovers, oldest first.
func TestLeftovers(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "spool.d")
	if err := os.Mkdir(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	live := filepath.Join(dir, "server_events.jsonl")
	base := time.Date(2024, 1, 1, 0, 0, 0, 0, time.UTC)
	claim := func(path string, at time.Duration) string {
		t.Helper()
		name, err := spool.ClaimName(path, base.Add(at))
		if err != nil {
			t.Fatal(err)
		}
		testenv.WriteFile(t, name, "x\n")
		return name
	}
	testenv.WriteFile(t, live, "live\n")
	late := claim(live, 3*time.Hour)
	early := claim(live, time.Second)
	middle := claim(live, time.Minute)
	done := claim(live, 2*time.Second)
	testenv.WriteFile(t, spool.RejectedName(done), "bad\n")
	testenv.WriteFile(t, spool.RejectedName(middle), "bad\n")
	if _, err := spool.MarkProcessed(done); err != nil {
		t.Fatal(err)
	}
	claim(filepath.Join(dir, "server_events2.jsonl"), time.Second)
	claim(filepath.Join(dir, "other_server_events.jsonl"), time.Second)
	claim(filepath.Join(dir, "server_events"), time.Second)
	claim(filepath.Join(dir, "server_events.log"), time.Second)
	lookalike, err := spool.ClaimName(live, base.Add(4*time.Hour))
	if err != nil {
		t.Fatal(err)
	}
	if err := os.Mkdir(lookalike, 0o755); err != nil { // a directory, not a file
		t.Fatal(err)
	}

	got, err := spool.Leftovers(live)
	if err != nil {
		t.Fatalf("Leftovers: %v", err)
	}
	want := []string{early, middle, late}
	if !slices.Equal(got, want) {
		t.Errorf("Leftovers(%q) =\n%q\nwant\n%q", live, got, want)
	}
	if _, err := spool.Leftovers(filepath.Join(dir, "missing", "events.jsonl")); err == nil {
		t.Errorf("Leftovers in a missing directory = nil error; want one")
	}
}

func TestMarkProcessed(t *testing.T) {
	dir := t.TempDir()
	live := filepath.Join(dir, "events.jsonl")
	testenv.WriteFile(t, live, "one\n")
	claimed, err := spool.Claim(live, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	done, err := spool.MarkProcessed(claimed)
	if err != nil {
		t.Fatalf("MarkProcessed(%q): %v", claimed, err)
	}
	if done != spool.ProcessedName(claimed) {
		t.Errorf("MarkProcessed(%q) = %q; want %q", claimed, done, spool.ProcessedName(claimed))
	}
	if _, err := os.Stat(claimed); !os.IsNotExist(err) {
		t.Errorf("claimed file after MarkProcessed: %v; want it gone", err)
	}
	if got := testenv.ReadFile(t, done); got != "one\n" {
		t.Errorf("processed file = %q; want %q", got, "one\n")
	}
	if left, err := spool.Leftovers(live); err != nil || len(left) != 0 {
		t.Errorf("Leftovers after MarkProcessed = %q, %v; want none", left, err)
	}
	if _, err := spool.MarkProcessed(claimed); err == nil {
		t.Errorf("MarkProcessed of a missing file = nil error; want one")
	}
}

// TestRecent puts files of every kind beside the live file, some old: Recent returns the
// live, claimed and processed files modified since the given time, and nothing else.
func TestRecent(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "spool.v1")
	if err := os.Mkdir(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	live := filepath.Join(dir, "events.jsonl")
	since := time.Now().Add(-time.Hour)
	old, recent := since.Add(-time.Minute), since.Add(time.Minute)
	file := func(name string, mtime time.Time) string {
		t.Helper()
		testenv.WriteFile(t, name, "x\n")
		if err := os.Chtimes(name, mtime, mtime); err != nil {
			t.Fatal(err)
		}
		return name
	}
	claimed := func(path string, mtime time.Time) string {
		t.Helper()
		name, err := spool.ClaimName(path, mtime)
		if err != nil {
			t.Fatal(err)
		}
		return file(name, mtime)
	}
	want := []string{
		file(live, recent),
		claimed(live, recent),
		claimed(live, since), // modified at since exactly counts
		file(spool.ProcessedName(claimed(live, old)), recent),
	}
	file(spool.ProcessedName(claimed(live, old)), old)
	claimed(live, old)
	file(spool.RejectedName(claimed(live, old)), recent)
	claimed(filepath.Join(dir, "events2.jsonl"), recent)
	file(filepath.Join(dir, "events2.jsonl"), recent)
	claimed(filepath.Join(dir, "old_events.jsonl"), recent)
	file(filepath.Join(dir, "events.jsonl.bak"), recent)
	slices.Sort(want)

	got, err := spool.Recent(live, since)
	if err != nil {
		t.Fatalf("Recent: %v", err)
	}
	if !slices.Equal(got, want) {
		t.Errorf("Recent(%q, %v) =\n%q\nwant\n%q", live, since, got, want)
	}
}

// TestRecentWithoutExtension claims and processes a live file whose name has no extension:
// Recent must still find the processed file, or the server forgets its keys on restart.
func TestRecentWithoutExtension(t *testing.T) {
	dir := t.TempDir()
	live := filepath.Join(dir, "server_events")
	since := time.Now().Add(-time.Hour)
	testenv.WriteFile(t, live, "one\n")
	claimed, err := spool.Claim(live, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	done, err := spool.MarkProcessed(claimed)
	if err != nil {
		t.Fatal(err)
	}
	testenv.WriteFile(t, live, "two\n")
	got, err := spool.Recent(live, since)
	if err != nil {
		t.Fatalf("Recent: %v", err)
	}
	if want := []string{live, done}; !sameLines(got, want...) {
		t.Errorf("Recent(%q, %v) = %q; want %q", live, since, got, want)
	}
}
