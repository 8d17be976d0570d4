package spool_test

import (
	"finonex/internal/testenv"

	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"finonex/internal/spool"
)

// TestAppendFullQueue holds the writer in a sync until its queue is full: the next Append
// returns ErrFull at once, and the lines already queued are still written.
func TestAppendFullQueue(t *testing.T) {
	disk := newMemFS()
	w := openMem(t, disk, spool.Options{QueueSize: 2})
	held := holdBatch(t, w, disk, "a", "b")
	if err := w.Append([]byte("shed")); !errors.Is(err, spool.ErrFull) {
		t.Errorf(`Append("shed") with a full queue = %v; want ErrFull`, err)
	}
	first, errs := held.answers()
	if first != nil || errs[0] != nil || errs[1] != nil {
		t.Fatalf("Appends behind the full queue = %v, %v; want nil", first, errs)
	}
	got, _ := disk.content(memLive)
	if lines, _ := splitLines(got); !sameLines(lines, "first", "a", "b") {
		t.Errorf("file = %q; want first, a, b", got)
	}
}

// TestCloseAnswersQueuedLines closes the writer while lines wait in its queue: each is
// written and acknowledged, and Appends after Close return ErrClosed.
func TestCloseAnswersQueuedLines(t *testing.T) {
	disk := newMemFS()
	queued := []string{"q1", "q2", "q3", "q4", "q5"}
	w, err := spool.Open(memLive, spool.Options{FS: disk, QueueSize: len(queued)})
	if err != nil {
		t.Fatalf("Open: %v", err)
	}
	held := holdBatch(t, w, disk, queued...)
	closed := make(chan error, 1)
	go func() { closed <- w.Close() }()
	// The queue is full, so a probe does not queue: ErrFull until Close has begun.
	testenv.WaitFor(t, "Close to begin", func() bool {
		err := w.Append([]byte("probe"))
		if err != nil && !errors.Is(err, spool.ErrFull) && !errors.Is(err, spool.ErrClosed) {
			t.Fatalf(`Append("probe") = %v; want ErrFull or ErrClosed`, err)
		}
		return errors.Is(err, spool.ErrClosed)
	})
	first, errs := held.answers()
	if first != nil {
		t.Errorf(`Append("first") = %v; want nil`, first)
	}
	for i, err := range errs {
		if err != nil {
			t.Errorf("Append(%q) queued before Close = %v; want nil", queued[i], err)
		}
	}
	if err := <-closed; err != nil {
		t.Errorf("Close() = %v; want nil", err)
	}
	got, _ := disk.content(memLive)
	if lines, _ := splitLines(got); !sameLines(lines, append([]string{"first"}, queued...)...) {
		t.Errorf("file after Close = %q; want first and %q", got, queued)
	}
	if synced := disk.syncedContent(memLive); synced != got {
		t.Errorf("durable file after Close = %q; want %q", synced, got)
	}
	if err := w.Append([]byte("late")); !errors.Is(err, spool.ErrClosed) {
		t.Errorf("Append after Close = %v; want ErrClosed", err)
	}
	if err := w.Close(); !errors.Is(err, spool.ErrClosed) {
		t.Errorf("second Close() = %v; want ErrClosed", err)
	}
}

// TestGroupCommit checks that the lines waiting when the writer comes round go out in one
// write and one sync, at most MaxBatch of them.
func TestGroupCommit(t *testing.T) {
	for _, tc := range []struct {
		maxBatch, queued int
		batches          []int // lines per batch after the held first one
	}{
		{maxBatch: 0, queued: 50, batches: []int{50}},
		{maxBatch: 4, queued: 10, batches: []int{4, 4, 2}},
	} {
		t.Run(fmt.Sprintf("MaxBatch=%d", tc.maxBatch), func(t *testing.T) {
			disk := newMemFS()
			w := openMem(t, disk, spool.Options{MaxBatch: tc.maxBatch})
			var lines []string
			for i := range tc.queued {
				lines = append(lines, fmt.Sprintf("line%03d", i)) // 7 bytes and "\n"
			}
			held := holdBatch(t, w, disk, lines...)
			first, errs := held.answers()
			if err := errors.Join(append(errs, first)...); err != nil {
				t.Fatalf("Append: %v", err)
			}
			wantWrites := []int{len("first\n")}
			for _, n := range tc.batches {
				wantWrites = append(wantWrites, n*len("line000\n"))
			}
			writes, syncs, _ := disk.counters()
			if !slices.Equal(writes, wantWrites) {
				t.Errorf("write sizes = %v; want %v", writes, wantWrites)
			}
			if syncs != len(wantWrites) {
				t.Errorf("syncs = %d; want one per batch, %d", syncs, len(wantWrites))
			}
			s := w.Stats()
			if s.Batches != int64(len(wantWrites)) || s.Lines != int64(tc.queued+1) || s.Failed != 0 {
				t.Errorf("Stats() = %+v; want Batches %d, Lines %d, Failed 0", s, len(wantWrites), tc.queued+1)
			}
		})
	}
}

// TestGroupCommitUnderLoad has many goroutines append while each sync takes a while: the
// writer must answer them in far fewer batches than lines, one write and one sync each.
func TestGroupCommitUnderLoad(t *testing.T) {
	disk := newMemFS()
	disk.setBeforeSync(func() { time.Sleep(time.Millisecond) })
	w := openMem(t, disk, spool.Options{})
	const goroutines, each = 32, 20
	var wg sync.WaitGroup
	errs := make(chan error, goroutines*each)
	for g := range goroutines {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range each {
				errs <- w.Append([]byte(fmt.Sprintf("g%d-%d", g, i)))
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			t.Fatalf("Append: %v", err)
		}
	}
	s := w.Stats()
	writes, syncs, _ := disk.counters()
	t.Logf("%d lines in %d batches", s.Lines, s.Batches)
	if s.Lines != goroutines*each {
		t.Errorf("Stats().Lines = %d; want %d", s.Lines, goroutines*each)
	}
	if s.Batches > s.Lines/4 {
		t.Errorf("Stats().Batches = %d for %d lines; want group commit to need far fewer", s.Batches, s.Lines)
	}
	if int64(len(writes)) != s.Batches || int64(syncs) != s.Batches {
		t.Errorf("%d writes and %d syncs for %d batches; want one of each per batch", len(writes), syncs, s.Batches)
	}
}

// TestOpenRepairsTornTail opens real files that a crash left ending in part of a line: the
// part goes, the complete lines stay, and the next line is whole.
func TestOpenRepairsTornTail(t *testing.T) {
	big := func(c string, n int) string { return strings.Repeat(c, n) }
	for _, tc := range []struct {
		name, before, kept string
	}{
		{"empty", "", ""},
		{"whole", "a\nb\n", "a\nb\n"},
		{"torn", "a\nb\npart", "a\nb\n"},
		{"only torn", "partial", ""},
		{"long torn tail", "x\n" + big("y", 100<<10), "x\n"},
		{"torn tail beyond the first read", "x\n" + big("y", 70<<10) + "\n" + big("z", 70<<10), "x\n" + big("y", 70<<10) + "\n"},
		{"long, no newline at all", big("y", 200<<10), ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			path := filepath.Join(t.TempDir(), "events.jsonl")
			if err := os.WriteFile(path, []byte(tc.before), 0o644); err != nil {
				t.Fatal(err)
			}
			w, err := spool.Open(path, spool.Options{})
			if err != nil {
				t.Fatalf("Open: %v", err)
			}
			if got := testenv.ReadFile(t, path); got != tc.kept {
				t.Errorf("file after Open = %s; want %s", abbrev(got), abbrev(tc.kept))
			}
			if err := w.Append([]byte("new")); err != nil {
				t.Fatalf("Append: %v", err)
			}
			if err := w.Close(); err != nil {
				t.Fatalf("Close: %v", err)
			}
			if got, want := testenv.ReadFile(t, path), tc.kept+"new\n"; got != want {
				t.Errorf("file after Append = %s; want %s", abbrev(got), abbrev(want))
			}
		})
	}
}

// TestNewFileDirectorySynced checks that creating the live file, at Open or after a claim,
// syncs its directory before anything in it is acknowledged.
func TestNewFileDirectorySynced(t *testing.T) {
	disk := newMemFS()
	w, err := spool.Open(memLive, spool.Options{FS: disk})
	if err != nil {
		t.Fatalf("Open: %v", err)
	}
	if _, _, dirs := disk.counters(); !slices.Equal(dirs, []string{memDir}) {
		t.Errorf("SyncDir calls after Open of a new file = %q; want [%s]", dirs, memDir)
	}
	if err := w.Append([]byte("one")); err != nil {
		t.Fatalf("Append: %v", err)
	}
	if err := w.Close(); err != nil {
		t.Fatalf("Close: %v", err)
	}

	w = openMem(t, disk, spool.Options{})
	// The processor claims the file; the next append creates a new one.
	if _, ok, err := disk.claim(memLive, memDir+"/claimed.jsonl"); !ok || err != nil {
		t.Fatalf("claim: %v, %v", ok, err)
	}
	_, _, before := disk.counters()
	if err := w.Append([]byte("two")); err != nil {
		t.Fatalf("Append: %v", err)
	}
	if _, _, dirs := disk.counters(); len(dirs) != len(before)+1 {
		t.Errorf("SyncDir calls for the recreated live file = %d; want 1", len(dirs)-len(before))
	}
	after := disk.crash(nil)
	if got, _ := after.content(memLive); got != "two\n" {
		t.Errorf("new live file after crash = %q; want %q", got, "two\n")
	}
	if got, _ := after.content(memDir + "/claimed.jsonl"); got != "one\n" {
		t.Errorf("claimed file after crash = %q; want %q", got, "one\n")
	}
}

// TestDirectorySyncRetriedAfterFailure: when syncing the directory of a just-created live
// file fails, the file's name may not be durable. Whoever opens the file next must still
// sync the directory before acknowledging a line in it, or a crash loses the line.
func TestDirectorySyncRetriedAfterFailure(t *testing.T) {
	t.Run("after a claim", func(t *testing.T) {
		disk := newMemFS()
		w := openMem(t, disk, spool.Options{})
		if _, ok, err := disk.claim(memLive, memDir+"/claimed.jsonl"); !ok || err != nil {
			t.Fatalf("claim: %v, %v", ok, err)
		}
		disk.setFail(failNext("syncdir", 1))
		if err := w.Append([]byte("a")); err == nil {
			t.Errorf(`Append("a") = nil though the directory sync of the new file failed`)
		}
		if err := w.Append([]byte("b")); err != nil {
			t.Fatalf(`Append("b") = %v`, err)
		}
		if got, _ := disk.crash(nil).content(memLive); got != "b\n" {
			t.Errorf(`after a crash, the live file holds %q; want "b\n", acknowledged`, got)
		}
	})
	t.Run("at Open", func(t *testing.T) {
		disk := newMemFS()
		disk.setFail(failNext("syncdir", 1))
		if w, err := spool.Open(memLive, spool.Options{FS: disk}); err == nil {
			w.Close()
			t.Fatalf("Open = nil error though the directory sync of the new file failed")
		}
		w := openMem(t, disk, spool.Options{})
		if err := w.Append([]byte("b")); err != nil {
			t.Fatalf(`Append("b") = %v`, err)
		}
		if got, _ := disk.crash(nil).content(memLive); got != "b\n" {
			t.Errorf(`after a crash, the live file holds %q; want "b\n", acknowledged`, got)
		}
	})
}

// TestRepairRetriedAfterFailure: a live file the writer moves to may end in a torn line (left
// by another writer process). If removing it fails, the writer must not later append to
// the file behind the torn line.
func TestRepairRetriedAfterFailure(t *testing.T) {
	disk := newMemFS()
	w := openMem(t, disk, spool.Options{})
	if _, ok, err := disk.claim(memLive, memDir+"/claimed.jsonl"); !ok || err != nil {
		t.Fatalf("claim: %v, %v", ok, err)
	}
	disk.create(memLive, "torn")
	disk.setFail(failNext("truncate", 1))
	if err := w.Append([]byte("a")); err == nil {
		t.Errorf(`Append("a") = nil though the torn tail could not be removed`)
	}
	err := w.Append([]byte("b"))
	got, _ := disk.content(memLive)
	if lines, tail := splitLines(got); err == nil && (!slices.Contains(lines, "b") || tail != "") {
		t.Errorf(`Append("b") = nil, but the live file is %q: the acknowledged line is glued to the torn one`, got)
	}
}

// TestAppendAfterClaim appends, lets spool.Claim take the real file, appends again: the
// second line goes to a new live file.
func TestAppendAfterClaim(t *testing.T) {
	path := filepath.Join(t.TempDir(), "events.jsonl")
	w, err := spool.Open(path, spool.Options{})
	if err != nil {
		t.Fatalf("Open: %v", err)
	}
	defer w.Close()
	if err := w.Append([]byte("one")); err != nil {
		t.Fatalf("Append: %v", err)
	}
	claimed, err := spool.Claim(path, time.Now())
	if err != nil || claimed == "" {
		t.Fatalf("Claim(%s) = %q, %v", path, claimed, err)
	}
	if err := w.Append([]byte("two")); err != nil {
		t.Fatalf("Append: %v", err)
	}
	if got := testenv.ReadFile(t, claimed); got != "one\n" {
		t.Errorf("claimed file = %q; want %q", got, "one\n")
	}
	if got := testenv.ReadFile(t, path); got != "two\n" {
		t.Errorf("live file = %q; want %q", got, "two\n")
	}
}
