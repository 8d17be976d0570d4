package spool_test

import (
	"errors"
	"fmt"
	"math/rand/v2"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"finonex/internal/spool"
	"finonex/internal/testenv"
)

// The tests in this file run the Writer on a memFS, which forgets everything not synced when
// it crashes: a kill -9 cannot show that, since the page cache outlives the process.

const (
	memDir  = "/spool"
	memLive = memDir + "/events.jsonl"
)

// history is what the appenders know: every line they tried to append, and those that
// Append acknowledged.
type history struct {
	attempted map[string]bool
	acked     map[string]bool
}

func newHistory() *history {
	return &history{attempted: map[string]bool{}, acked: map[string]bool{}}
}

// checkDisk checks the files on disk against h: every acknowledged line is in exactly one
// of them, once; every complete line is one that was appended (a torn line glued to the
// next would not be); no line is there twice. Only files other than live may end in a torn
// line, unless tornLive.
func checkDisk(t *testing.T, when string, disk *memFS, h *history, tornLive bool) {
	t.Helper()
	count := map[string]int{}
	var problems []string
	for name, content := range disk.files() {
		lines, tail := splitLines(content)
		if tail != "" && name == memLive && !tornLive {
			problems = append(problems, fmt.Sprintf("%s ends in a torn line %q", name, tail))
		}
		for _, l := range lines {
			if !h.attempted[l] {
				problems = append(problems, fmt.Sprintf("%s holds line %q, which was never appended (a torn line glued to the next?)", name, l))
			}
			count[l]++
		}
	}
	for l := range h.acked {
		if count[l] != 1 {
			problems = append(problems, fmt.Sprintf("acknowledged line %q is on disk %d times; want 1", l, count[l]))
		}
	}
	for l, n := range count {
		if n > 1 && !h.acked[l] {
			problems = append(problems, fmt.Sprintf("unacknowledged line %q is on disk %d times; want at most 1", l, n))
		}
	}
	sort.Strings(problems)
	for i, p := range problems {
		if i == 10 {
			t.Errorf("%s: ... and %d more problems", when, len(problems)-i)
			break
		}
		t.Errorf("%s: %s", when, p)
	}
}

// TestCrashKeepsEveryAcknowledgedLine appends from many goroutines, with a processor
// claiming the live file in a loop in some rounds and random write and sync failures in
// others, and crashes the machine at a random moment of each round. After every crash the
// disk must hold every line ever acknowledged, exactly once, and only lines that were
// appended; a new Writer then repairs the torn tail and appending goes on.
func TestCrashKeepsEveryAcknowledgedLine(t *testing.T) {
	seed := testenv.Seed(t)
	rng := rand.New(rand.NewPCG(seed, 1))
	rounds, workers, perWorker := 40, 8, 60
	if testing.Short() {
		rounds = 12
	}
	disk := newMemFS()
	h := newHistory()
	var torn, claims, failed int
	for round := range rounds {
		opts := spool.Options{FS: disk, QueueSize: 1024, MaxBatch: 1 + rng.IntN(48)}
		if content, ok := disk.content(memLive); ok && content != "" && !strings.HasSuffix(content, "\n") {
			torn++
		}
		w, err := spool.Open(memLive, opts)
		if err != nil {
			t.Fatalf("round %d: Open after crash: %v", round, err)
		}
		checkDisk(t, fmt.Sprintf("round %d, after Open", round), disk, h, false)
		if t.Failed() {
			w.Close()
			return
		}

		withFaults, withClaims := rng.IntN(2) == 0, rng.IntN(2) == 0
		// A sync takes a while, as on a disk, so that crashes often find written but
		// unsynced lines: the stuff of torn tails.
		disk.setBeforeSync(func() { time.Sleep(20 * time.Microsecond) })
		if withFaults {
			disk.syncFailPersists = rng.IntN(2) == 0
			faults := rand.New(rand.NewPCG(seed, 1000+uint64(round))) // used under disk.mu only
			disk.setFail(func(op string) bool {
				return (op == "write" || op == "sync") && faults.IntN(15) == 0
			})
		}
		// The crash comes at a random moment after a random number of appends, from a
		// goroutine of its own, so that it finds the writer anywhere in its loop.
		crashAt := int64(rng.IntN(workers * perWorker))
		crashDelay := time.Duration(rng.IntN(200)) * time.Microsecond
		crashRng := rand.New(rand.NewPCG(seed, 2000+uint64(round)))
		var (
			attempts  atomic.Int64
			crashOnce sync.Once
			crashed   = make(chan struct{})
			after     *memFS
		)
		crash := func() {
			crashOnce.Do(func() {
				after = disk.crash(crashRng)
				close(crashed)
			})
		}
		reached, workersDone, crasherDone := make(chan struct{}), make(chan struct{}), make(chan struct{})
		go func() {
			defer close(crasherDone)
			select {
			case <-reached:
				time.Sleep(crashDelay)
				crash()
			case <-workersDone:
			}
		}()

		// The processor: claim, fence, read, as spool.Claim does, until the crash.
		reads := map[string]string{}
		procDone := make(chan struct{})
		go func() {
			defer close(procDone)
			if !withClaims {
				return
			}
			pause := rand.New(rand.NewPCG(seed, 3000+uint64(round)))
			for k := 0; ; k++ {
				name := fmt.Sprintf("%s/events_%03d_%05d.jsonl", memDir, round, k)
				data, ok, err := disk.claim(memLive, name)
				if err != nil {
					return // crashed
				}
				if ok {
					reads[name] = string(data)
				}
				time.Sleep(time.Duration(pause.IntN(1000)) * time.Microsecond)
			}
		}()

		type result struct {
			attempted, acked []string
		}
		results := make([]result, workers)
		var wg sync.WaitGroup
		for wk := range workers {
			wg.Add(1)
			go func() {
				defer wg.Done()
				r := rand.New(rand.NewPCG(seed, uint64(round)<<16|uint64(wk)))
				for j := range perWorker {
					select {
					case <-crashed:
						return
					default:
					}
					if attempts.Add(1) == crashAt+1 {
						close(reached)
					}
					line := fmt.Sprintf("%d/%d/%d/%s", round, wk, j, strings.Repeat("x", r.IntN(40)))
					results[wk].attempted = append(results[wk].attempted, line)
					if err := w.Append([]byte(line)); err == nil {
						results[wk].acked = append(results[wk].acked, line)
					}
				}
			}()
		}
		wg.Wait()
		close(workersDone)
		<-crasherDone
		crash() // in case every worker finished first
		w.Close()
		<-procDone

		for _, r := range results {
			for _, l := range r.attempted {
				h.attempted[l] = true
			}
			for _, l := range r.acked {
				h.acked[l] = true
			}
			failed += len(r.attempted) - len(r.acked)
		}
		// Fenced and read: nothing may have been appended to a claimed file since.
		for name, read := range reads {
			claims++
			if now, _ := disk.content(name); now != read {
				t.Errorf("round %d: claimed file %s changed after the processor read it: read %s, now %s", round, name, abbrev(read), abbrev(now))
			}
		}
		disk = after
		checkDisk(t, fmt.Sprintf("round %d, after crash", round), disk, h, true)
		if t.Failed() {
			return
		}
	}

	w, err := spool.Open(memLive, spool.Options{FS: disk})
	if err != nil {
		t.Fatalf("Open after last crash: %v", err)
	}
	if err := w.Append([]byte("last")); err != nil {
		t.Fatalf("Append after last crash: %v", err)
	}
	h.attempted["last"], h.acked["last"] = true, true
	if err := w.Close(); err != nil {
		t.Fatalf("Close: %v", err)
	}
	checkDisk(t, "end", disk, h, false)
	t.Logf("%d rounds: %d lines acknowledged, %d failed or cut by a crash, %d files claimed, %d torn tails repaired",
		rounds, len(h.acked), failed, claims, torn)
	if len(h.acked) == 0 || (torn == 0 && !testing.Short()) {
		t.Errorf("the test proved little: %d lines acknowledged, %d torn tails", len(h.acked), torn)
	}
}

// heldBatch is a batch of lines queued behind a first line whose sync is held, so that they
// reach the writer as one batch once released.
type heldBatch struct {
	release chan struct{}
	first   chan error
	errs    []chan error
}

// holdBatch appends "first" and holds the writer inside its sync, then queues lines and
// waits until they all wait in the queue. The writer's MaxBatch must be at least len(lines)
// for them to form one batch.
func holdBatch(t *testing.T, w *spool.Writer, disk *memFS, lines ...string) *heldBatch {
	t.Helper()
	b := &heldBatch{release: make(chan struct{}), first: make(chan error, 1)}
	entered := make(chan struct{})
	var once sync.Once
	disk.setBeforeSync(func() {
		once.Do(func() {
			close(entered)
			<-b.release
		})
	})
	go func() { b.first <- w.Append([]byte("first")) }()
	<-entered
	for _, l := range lines {
		c := make(chan error, 1)
		b.errs = append(b.errs, c)
		go func() { c <- w.Append([]byte(l)) }()
	}
	testenv.WaitFor(t, fmt.Sprintf("%d lines queued", len(lines)), func() bool { return w.Stats().QueueDepth == len(lines) })
	return b
}

// answers lets the writer go and returns what Append answered for "first" and each line.
func (b *heldBatch) answers() (first error, errs []error) {
	close(b.release)
	first = <-b.first
	for _, c := range b.errs {
		errs = append(errs, <-c)
	}
	return first, errs
}

// TestFailedBatchLeavesNoTrace makes the write or the sync of a batch fail: every line of
// the batch gets the error, none of it stays in the file, durable or not, no sync that
// succeeded ever covered it, and the next append is a line of its own.
func TestFailedBatchLeavesNoTrace(t *testing.T) {
	for _, tc := range []struct {
		name string
		fail func(string) bool
		want error
	}{
		{"short write", failNext("write", 1), syscall.ENOSPC},
		{"sync", failNth("sync", 1, 1), syscall.EIO}, // the held first line syncs first
	} {
		t.Run(tc.name, func(t *testing.T) {
			disk := newMemFS()
			disk.logSyncs = true
			disk.syncFailPersists = true
			w := openMem(t, disk, spool.Options{})
			batch := []string{"aaaaaaaaaa", "bbbbbbbbbb", "cccccccccc"}
			held := holdBatch(t, w, disk, batch...)
			disk.setFail(tc.fail)
			first, errs := held.answers()
			if first != nil {
				t.Fatalf(`Append("first") = %v; want nil`, first)
			}
			for i, err := range errs {
				if !errors.Is(err, tc.want) {
					t.Errorf("Append(%q) = %v; want %v", batch[i], err, tc.want)
				}
			}
			if got, _ := disk.content(memLive); got != "first\n" {
				t.Errorf("file after failed batch = %q; want %q", got, "first\n")
			}
			if got := disk.syncedContent(memLive); got != "first\n" {
				t.Errorf("durable file after failed batch = %q; want %q", got, "first\n")
			}
			if err := w.Healthy(); !errors.Is(err, tc.want) {
				t.Errorf("Healthy() after the failed batch = %v; want %v", err, tc.want)
			}
			if s := w.Stats(); s.Failed != 3 || s.Lines != 1 {
				t.Errorf("Stats() = %+v; want Failed 3, Lines 1", s)
			}
			if err := w.Append([]byte("after")); err != nil {
				t.Fatalf(`Append("after") = %v; want nil`, err)
			}
			if got, _ := disk.content(memLive); got != "first\nafter\n" {
				t.Errorf("file = %q; want %q", got, "first\nafter\n")
			}
			if err := w.Healthy(); err != nil {
				t.Errorf("Healthy() after a good batch = %v; want nil: the file was repaired", err)
			}
			disk.mu.Lock()
			defer disk.mu.Unlock()
			for _, synced := range disk.syncedLog {
				for _, l := range batch {
					if strings.Contains(string(synced), l) {
						t.Errorf("a successful sync covered %q of the failed batch: %q", l, synced)
					}
				}
			}
		})
	}
}

// TestUnrepairableFileStopsWriter makes the repair of a failed batch fail too: the writer
// must then refuse every later append, writing nothing.
func TestUnrepairableFileStopsWriter(t *testing.T) {
	for _, tc := range []struct {
		name string
		fail func(string) bool
	}{
		{"short write, truncate fails", failAll(failNext("write", 1), failNext("truncate", 1))},
		{"sync fails, truncate fails", failAll(failNth("sync", 1, 1), failNext("truncate", 1))},
		{"sync fails, sync after truncate fails", failNth("sync", 1, 2)},
	} {
		t.Run(tc.name, func(t *testing.T) {
			disk := newMemFS()
			w := openMem(t, disk, spool.Options{})
			held := holdBatch(t, w, disk, "aaaa", "bbbb")
			disk.setFail(tc.fail)
			first, errs := held.answers()
			if first != nil {
				t.Fatalf(`Append("first") = %v; want nil`, first)
			}
			for i, err := range errs {
				if err == nil {
					t.Errorf("Append of failed batch line %d = nil; want an error", i)
				}
			}
			if err := w.Healthy(); err == nil {
				t.Fatalf("Healthy() = nil after a failed repair; want an error")
			}
			writes, _, _ := disk.counters()
			before, _ := disk.content(memLive)
			for i := range 5 {
				if err := w.Append([]byte(fmt.Sprintf("later%d", i))); err == nil {
					t.Errorf("Append(later%d) = nil on a broken writer; want an error", i)
				}
			}
			if after, _, _ := disk.counters(); len(after) != len(writes) {
				t.Errorf("broken writer made %d more writes; want none", len(after)-len(writes))
			}
			if after, _ := disk.content(memLive); after != before {
				t.Errorf("file changed on a broken writer: %q, then %q", before, after)
			}
			if s := w.Stats(); s.Failed != 7 {
				t.Errorf("Stats().Failed = %d; want 7", s.Failed)
			}
		})
	}
}

// TestNoAcknowledgementBeforeSync crashes the machine while the writer is inside the sync
// of a line: the line must not be acknowledged, and the disk does not have it.
func TestNoAcknowledgementBeforeSync(t *testing.T) {
	disk := newMemFS()
	w := openMem(t, disk, spool.Options{})
	if err := w.Append([]byte("synced")); err != nil {
		t.Fatalf(`Append("synced") = %v`, err)
	}
	held := holdBatch(t, w, disk, "queued")
	after := disk.crash(nil)
	first, errs := held.answers()
	if first == nil {
		t.Errorf(`Append("first") = nil though the machine crashed before its sync`)
	}
	if errs[0] == nil {
		t.Errorf(`Append("queued") = nil though the machine crashed before its write`)
	}
	if got, _ := after.content(memLive); got != "synced\n" {
		t.Errorf("file after crash = %q; want %q", got, "synced\n")
	}
}

// TestUnlockFailureStopsWriter: when the lock cannot be released after a batch was written
// and synced, the batch is still acknowledged (its retries would count it twice otherwise),
// the writer stops for good, and closing the file releases the lock: a processor's fence
// is not kept waiting.
func TestUnlockFailureStopsWriter(t *testing.T) {
	disk := newMemFS()
	w := openMem(t, disk, spool.Options{})
	disk.setFail(failNext("unlock", 1))
	if err := w.Append([]byte("a")); err != nil {
		t.Fatalf(`Append("a") = %v; want nil: the line is on disk`, err)
	}
	if err := w.Healthy(); !errors.Is(err, spool.ErrStopped) {
		t.Errorf("Healthy() = %v; want %v", err, spool.ErrStopped)
	}
	if err := w.Append([]byte("b")); !errors.Is(err, spool.ErrStopped) {
		t.Errorf(`Append("b") = %v; want %v`, err, spool.ErrStopped)
	}
	claimed := make(chan string, 1)
	go func() {
		data, _, _ := disk.claim(memLive, memDir+"/claimed.jsonl")
		claimed <- string(data)
	}()
	select {
	case got := <-claimed:
		if got != "a\n" {
			t.Errorf("claimed file = %q; want %q", got, "a\n")
		}
	case <-time.After(10 * time.Second):
		t.Fatal("the claim's fence is still waiting for the stopped writer's lock")
	}
}

// TestFailureShownForAWhile: a failed batch is reported by Healthy for FailureShown, then no
// longer, so that a server taken out of rotation for it comes back and can try again.
func TestFailureShownForAWhile(t *testing.T) {
	disk := newMemFS()
	w := openMem(t, disk, spool.Options{})
	var mu sync.Mutex
	now := time.Unix(1_000_000, 0)
	spool.SetNow(w, func() time.Time { mu.Lock(); defer mu.Unlock(); return now })
	advance := func(d time.Duration) { mu.Lock(); now = now.Add(d); mu.Unlock() }

	disk.setFail(failNext("write", 1))
	if err := w.Append([]byte("a")); !errors.Is(err, syscall.ENOSPC) {
		t.Fatalf(`Append("a") = %v; want %v`, err, syscall.ENOSPC)
	}
	advance(spool.FailureShown - time.Second)
	if err := w.Healthy(); !errors.Is(err, syscall.ENOSPC) {
		t.Errorf("Healthy() just before FailureShown = %v; want %v", err, syscall.ENOSPC)
	}
	advance(time.Second)
	if err := w.Healthy(); err != nil {
		t.Errorf("Healthy() after FailureShown = %v; want nil", err)
	}
}

// TestUnlockFailureDuringRepair: a running writer moves to a new live file that has a torn
// tail; the repair fails and so does the unlock. The writer must stop and close the file, so
// that a processor's fence is not kept waiting on a lock that nobody will release.
func TestUnlockFailureDuringRepair(t *testing.T) {
	disk := newMemFS()
	w := openMem(t, disk, spool.Options{})
	if err := w.Append([]byte("a")); err != nil {
		t.Fatalf(`Append("a") = %v; want nil`, err)
	}
	if _, ok, err := disk.claim(memLive, memDir+"/first.jsonl"); !ok || err != nil {
		t.Fatalf("claim = %v, %v; want the file", ok, err)
	}
	disk.create(memLive, "b\ntor") // a live file another writer left torn
	// The first unlock is of the claimed file the writer leaves; the second, after the failed
	// repair, fails.
	disk.setFail(failAll(failNext("truncate", 1), failNth("unlock", 1, 1)))
	if err := w.Append([]byte("c")); err == nil {
		t.Fatalf(`Append("c") = nil; want the repair's error`)
	}
	if err := w.Healthy(); !errors.Is(err, spool.ErrStopped) {
		t.Errorf("Healthy() = %v; want %v", err, spool.ErrStopped)
	}
	claimed := make(chan struct{})
	go func() {
		disk.claim(memLive, memDir+"/second.jsonl")
		close(claimed)
	}()
	select {
	case <-claimed:
	case <-time.After(10 * time.Second):
		t.Fatal("the claim's fence is still waiting for the stopped writer's lock")
	}
}
