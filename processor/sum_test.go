package main

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"math/rand/v2"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"finonex/internal/console"
	"finonex/internal/event"
	"finonex/internal/spool"
	"finonex/internal/testenv"
)

// sumRun is everything a sum leaves behind, to compare a parallel sum with the serial one.
type sumRun struct {
	s        summary
	totals   map[string]int64
	rejected []byte // the _rejected file; nil when there is none
	report   string // the console
	files    []string
}

// collect reads what a sum of path left, then removes the _rejected file for the next sum.
func collect(t *testing.T, path string, s summary, report string) sumRun {
	t.Helper()
	r := sumRun{s: s, totals: make(map[string]int64), report: report}
	for i, u := range s.users {
		if _, dup := r.totals[u]; dup {
			t.Errorf("summary lists user %q twice", u)
		}
		r.totals[u] = s.deltas[i]
	}
	rej, err := os.ReadFile(spool.RejectedName(path))
	if err != nil && !errors.Is(err, fs.ErrNotExist) {
		t.Fatal(err)
	}
	r.rejected = rej
	os.Remove(spool.RejectedName(path))
	entries, err := os.ReadDir(filepath.Dir(path))
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range entries {
		r.files = append(r.files, e.Name())
	}
	return r
}

// sumSerially sums path in one pass.
func sumSerially(t *testing.T, path string) sumRun {
	t.Helper()
	var con bytes.Buffer
	p := &processor{con: console.New(&con, true)}
	s, err := p.sumWith(context.Background(), path, 1, 1, 0)
	if err != nil {
		t.Fatalf("serial sum of %s: %v", path, err)
	}
	return collect(t, path, s, con.String())
}

// sumInChunks sums path with the parallel reader itself, and reports whether it kept its
// result (false: the serial pass must decide).
func sumInChunks(t *testing.T, path string, workers, chunks int) (sumRun, bool) {
	t.Helper()
	var con bytes.Buffer
	p := &processor{con: console.New(&con, true)}
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		t.Fatal(err)
	}
	m := &meter{events: make([]paddedCounter, workers)}
	s, ok, err := p.sumChunks(f, path, fi.Size(), workers, chunks, m)
	if err != nil {
		t.Fatalf("sumChunks(%s, %d workers, %d chunks) = %v", path, workers, chunks, err)
	}
	if ok && m.read.Load() != fi.Size() {
		t.Errorf("sumChunks(%d workers, %d chunks) counted %d bytes read; want %d", workers, chunks, m.read.Load(), fi.Size())
	}
	if ok && m.eventsSeen() != s.events {
		t.Errorf("sumChunks(%d workers, %d chunks) shows %d events; want %d", workers, chunks, m.eventsSeen(), s.events)
	}
	return collect(t, path, s, con.String()), ok
}

// sameRun compares a sum with the serial one; content is the file's bytes.
func sameRun(t *testing.T, what string, got, want sumRun, content []byte) {
	t.Helper()
	if got.s.events != want.s.events || got.s.rejected != want.s.rejected || got.s.rejPath != want.s.rejPath {
		t.Errorf("%s: %d events, %d rejected in %s; serial: %d events, %d rejected in %s", what,
			got.s.events, got.s.rejected, got.s.rejPath, want.s.events, want.s.rejected, want.s.rejPath)
	}
	if h := sha256.Sum256(content); got.s.sha256 != hex.EncodeToString(h[:]) {
		t.Errorf("%s: sha256 %s; want %x", what, got.s.sha256, h)
	}
	if len(got.totals) != len(want.totals) {
		t.Errorf("%s: %d users; serial: %d", what, len(got.totals), len(want.totals))
	}
	for u, sum := range want.totals {
		if g, ok := got.totals[u]; !ok || g != sum {
			t.Errorf("%s: user %q sums to %d (listed %v); serial: %d", what, u, g, ok, sum)
		}
	}
	if !bytes.Equal(got.rejected, want.rejected) {
		t.Errorf("%s: _rejected file differs from the serial one (%d bytes, serial %d)", what, len(got.rejected), len(want.rejected))
	}
	if got.report != want.report {
		t.Errorf("%s: console report differs:\n%s\nserial:\n%s", what, firstDiff(got.report, want.report), firstDiff(want.report, got.report))
	}
	if !slices.Equal(got.files, want.files) {
		t.Errorf("%s: left files %q; serial: %q", what, got.files, want.files)
	}
}

// firstDiff returns a's lines from the first that b does not have in the same place.
func firstDiff(a, b string) string {
	al, bl := strings.Split(a, "\n"), strings.Split(b, "\n")
	for i := range al {
		if i >= len(bl) || al[i] != bl[i] {
			return strings.Join(al[i:min(len(al), i+3)], "\n")
		}
	}
	return "(nothing more)"
}

// fileGen builds events files with lines of every kind.
type fileGen struct {
	rng *rand.Rand
	b   []byte
}

func (g *fileGen) user() string {
	switch n := g.rng.IntN(100); {
	case n < 70:
		return fmt.Sprintf("u%d", g.rng.IntN(300))
	case n < 90:
		return fmt.Sprintf("a-user-id-longer-than-fifteen-bytes-%d", g.rng.IntN(100))
	default:
		return strings.Repeat("x", 15) // exactly shortMax
	}
}

func (g *fileGen) eol() string {
	if g.rng.IntN(5) == 0 {
		return "\r\n"
	}
	return "\n"
}

// valid returns a valid event line, without its end.
func (g *fileGen) valid() string {
	v := g.rng.Int64N(10_000)
	switch g.rng.IntN(10) {
	case 0: // an escaped userId: the same user as its unescaped form
		return fmt.Sprintf(`{"userId": "\u0075%d", "name": "add_revenue", "value": %d}`, g.rng.IntN(300), v)
	case 1, 2, 3:
		return sub(g.user(), v)
	}
	return add(g.user(), v)
}

var invalidLines = []string{
	"not json",
	`{"userId": "u1", "name": "bogus", "value": 1}`,
	`{"userId": "u1", "name": "add_revenue"`,
	`{"userId": "u1", "name": "add_revenue", "value": -3}`,
	`{"userId": "u1", "name": "add_revenue", "value": 9007199254740992}`,
	"\xff\xfe{}",
	`{"userId": "", "name": "add_revenue", "value": 1}`,
	`[1, 2]`,
}

// long returns a line longer than event.MaxLineBytes, of up to max bytes when max allows.
func (g *fileGen) long(max int) string {
	n := event.MaxLineBytes + 1 + g.rng.IntN(100_000)
	if g.rng.IntN(8) == 0 {
		n = 1<<20 + g.rng.IntN(300_000) // longer than the Scanner's buffer
	}
	n = min(n, max)
	return strings.Repeat(string(rune('a'+g.rng.IntN(26))), n)
}

// line appends a random line, of at most max bytes when it can.
func (g *fileGen) line(max int) {
	var s string
	switch n := g.rng.IntN(1000); {
	case n < 700:
		s = g.valid()
	case n < 800:
		s = []string{"", " ", "\t  ", "\r"}[g.rng.IntN(4)]
	case n < 950:
		s = invalidLines[g.rng.IntN(len(invalidLines))]
	case n < 960 && max > event.MaxLineBytes+10:
		s = `{"userId": "u1", "value": 1}` + strings.Repeat(" ", event.MaxLineBytes-28) // the longest line that is not too long
	case n < 970 && max > event.MaxLineBytes+100:
		s = g.long(max - 2)
	default:
		s = g.valid()
	}
	g.b = append(g.b, s...)
	g.b = append(g.b, g.eol()...)
}

// fillTo appends lines so that the next line starts at offset pos, if it is still ahead.
func (g *fileGen) fillTo(pos int) {
	for pos-len(g.b) > 200 {
		g.b = append(g.b, g.valid()...)
		g.b = append(g.b, '\n')
	}
	gap := pos - len(g.b)
	switch {
	case gap <= 0:
		return
	case gap == 1:
		g.b = append(g.b, '\n')
	case gap < 80 || g.rng.IntN(3) == 0:
		pad := strings.Repeat([]string{" ", "#", "\r"}[g.rng.IntN(3)], gap-1) // blank or invalid
		g.b = append(g.b, pad+"\n"...)
	default: // a valid line padded with spaces
		s := g.valid()
		if len(s)+1 > gap {
			s = add("u1", 1)
		}
		g.b = append(g.b, s+strings.Repeat(" ", gap-len(s)-1)+"\n"...)
	}
}

// genFile returns a file of size bytes whose line ends, long lines and odd lines fall at and
// around the nominal chunk offsets for every count of chunks.
func genFile(rng *rand.Rand, size int, chunks []int) []byte {
	var offsets []int
	for _, n := range chunks {
		for k := 1; k < n; k++ {
			offsets = append(offsets, k*size/n)
		}
	}
	slices.Sort(offsets)
	offsets = slices.Compact(offsets)
	g := &fileGen{rng: rng}
	var last string // the file's last line
	switch rng.IntN(6) {
	case 0:
		last = g.valid() // without "\n"
	case 1:
		last = g.long(200_000) // too long, without "\n"
	case 2:
		last = "  "
	case 3:
		last = "{\"userId\""
	default:
		last = g.valid() + g.eol()
	}
	limit := size - len(last)
	for i := 0; i < len(offsets); i++ {
		c := offsets[i]
		if c > limit-100_000 {
			break
		}
		if rng.IntN(4) == 0 {
			// A too-long line across the offsets ahead, ending just before, at or just
			// after one of them: the chunks before hold no line end.
			n := event.MaxLineBytes + 2 + rng.IntN(80_000)
			j := i
			for j < len(offsets) && offsets[j]-len(g.b) < n+300 {
				j++
			}
			if j < len(offsets) && offsets[j] <= limit-100_000 {
				end := offsets[j] - 1 + rng.IntN(4) // the next line starts here
				g.fillTo(end - n)
				g.b = append(g.b, strings.Repeat("L", end-len(g.b)-1)+"\n"...)
				i = j
				continue
			}
		}
		for len(g.b) < c-2_000 {
			g.line(c - len(g.b) - 500)
		}
		if len(g.b) >= c-500 {
			continue // a long line went past c
		}
		switch rng.IntN(3) {
		case 0: // a line break just before, at or just after c
			g.fillTo(c - 1 + rng.IntN(4))
		case 1: // a too-long line across c, maybe across several chunks
			g.fillTo(c - 1 - rng.IntN(300))
			g.b = append(g.b, g.long(limit-len(g.b)-2_000)+g.eol()...)
		default: // an odd line across c
			g.fillTo(c - 1 - rng.IntN(40))
			s := []string{"   ", invalidLines[rng.IntN(len(invalidLines))], g.valid() + strings.Repeat(" ", 40)}[rng.IntN(3)]
			g.b = append(g.b, s+"\r\n"...)
		}
	}
	for len(g.b) < limit-2_000 {
		g.line(limit - len(g.b) - 500)
	}
	g.fillTo(limit)
	return append(g.b, last...)
}

func writeEvents(t *testing.T, content []byte) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), "events.jsonl")
	if err := os.WriteFile(path, content, 0o644); err != nil {
		t.Fatal(err)
	}
	return path
}

// TestSumInChunksIsSerial checks, on random files, that summing in chunks gives what one
// pass gives: the same sums and counts, the same _rejected file, the same report, line
// numbers included, and the SHA-256 of the file.
func TestSumInChunksIsSerial(t *testing.T) {
	seed := testenv.Seed(t)
	files := 12
	if testing.Short() {
		files = 4
	}
	for i := range files {
		rng := rand.New(rand.NewPCG(seed, uint64(i)))
		var configs [][2]int // workers, chunks
		var counts []int
		for range 3 {
			w := 2 + rng.IntN(6)
			c := []int{w, 2*w + 1, 2 + rng.IntN(40)}[rng.IntN(3)]
			configs = append(configs, [2]int{w, c})
			counts = append(counts, c)
		}
		size := 150_000 + rng.IntN(900_000)
		content := genFile(rng, size, counts)
		if len(content) != size {
			t.Fatalf("file %d: genFile made %d bytes; want %d", i, len(content), size)
		}
		path := writeEvents(t, content)
		want := sumSerially(t, path)
		if want.s.events == 0 || want.s.rejected == 0 {
			t.Fatalf("file %d: %d events, %d rejected; want some of each", i, want.s.events, want.s.rejected)
		}
		for _, c := range configs {
			got, ok := sumInChunks(t, path, c[0], c[1])
			if !ok {
				t.Fatalf("file %d, %d workers, %d chunks: chunk sums given up; want them kept", i, c[0], c[1])
			}
			sameRun(t, fmt.Sprintf("file %d (%d bytes), %d workers, %d chunks", i, size, c[0], c[1]), got, want, content)
		}
	}
}

// TestSumInChunksOddFiles covers files with few or no line ends.
func TestSumInChunksOddFiles(t *testing.T) {
	huge := strings.Repeat("z", 1<<20+100_000) // longer than the Scanner's buffer
	valid := add("u1", 5) + "\n" + add("a-user-id-longer-than-fifteen-bytes", 7) + "\r\n"
	tests := []struct {
		name, content string
	}{
		{"one huge line", huge + "\n"},
		{"one huge line without a line end", huge},
		{"huge line between events", valid + huge + "\r\n" + valid},
		{"huge line last, without a line end", valid + valid + huge},
		{"no line end at the end", strings.Repeat(valid, 1000) + add("u2", 1)},
		{"invalid last line without a line end", strings.Repeat(valid, 1000) + "{"},
		{"only blank lines", strings.Repeat(" \r\n\n\t\n", 5_000)},
		{"only line ends", strings.Repeat("\n", 20_000)},
		{"only bad lines", strings.Repeat("nope\n", 5_000)},
		{"line of exactly MaxLineBytes, and CR", strings.Repeat(strings.Repeat("#", event.MaxLineBytes)+"\r\n"+valid, 8)},
		{"line of one byte more", strings.Repeat(strings.Repeat("#", event.MaxLineBytes+1)+"\n"+valid, 8)},
		{"few bytes", "a\nb"},
		// In three chunks of N bytes, the middle one holds no line end but the last
		// byte before the third: the middle chunk is empty, the first ends there.
		{"line end just before a nominal offset", strings.Repeat("A", 99_998) + "\n" + strings.Repeat("B", 100_000) + "\n" + strings.Repeat("C", 99_999) + "\n"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			path := writeEvents(t, []byte(tt.content))
			want := sumSerially(t, path)
			for _, workers := range []int{2, 3, 7} {
				for _, chunks := range []int{2, 3, 3 * workers, 37} {
					if chunks > len(tt.content) {
						continue
					}
					got, ok := sumInChunks(t, path, workers, chunks)
					if !ok {
						t.Fatalf("%d workers, %d chunks: chunk sums given up", workers, chunks)
					}
					sameRun(t, fmt.Sprintf("%d workers, %d chunks", workers, chunks), got, want, []byte(tt.content))
				}
			}
		})
	}
}

// TestChunksCoverTheFile checks the chunk rules on their own: each chunk starts where the one
// before ends, at the start of a line, and together they read every byte once.
func TestChunksCoverTheFile(t *testing.T) {
	rng := rand.New(rand.NewPCG(testenv.Seed(t), 0))
	for i := range 3 {
		counts := []int{2 + rng.IntN(30), 2 + rng.IntN(30)}
		content := genFile(rng, 300_000+rng.IntN(500_000), counts)
		r := bytes.NewReader(content)
		size := int64(len(content))
		for chunks := 2; chunks <= 48; chunks++ {
			at := func(k int) int64 { return int64(k) * size / int64(chunks) }
			var read []byte
			for k := range chunks {
				start := int64(0)
				if k > 0 {
					s, found, err := lineStart(r, at(k)-1, at(k+1)-1)
					if err != nil {
						t.Fatal(err)
					}
					if !found {
						continue
					}
					start = s
				}
				if start != int64(len(read)) {
					t.Fatalf("file %d, %d chunks: chunk %d starts at %d; want %d, where chunk %d ended", i, chunks, k, start, len(read), k-1)
				}
				if start > 0 && content[start-1] != '\n' {
					t.Fatalf("file %d, %d chunks: chunk %d starts at %d, after %q; want a line start", i, chunks, k, start, content[start-1])
				}
				end := at(k+1) - 1
				if k == chunks-1 {
					end = -1
				}
				b, err := io.ReadAll(&rangeReader{f: r, off: start, end: end})
				if err != nil {
					t.Fatal(err)
				}
				read = append(read, b...)
			}
			if !bytes.Equal(read, content) {
				t.Fatalf("file %d, %d chunks: chunks read %d bytes; want the file's %d, in order", i, chunks, len(read), len(content))
			}
		}
	}
}

// TestSumInChunksOverflow checks that chunk sums give way to one pass when line order could
// matter. Here one pass rejects two lines that would take a total past 2^63-1, then accepts
// subtractions; the chunks split that total, so their sums would see no overflow, merge
// without one (unless one worker happens to read all the chunks before those lines), and
// end 2*MaxValue higher.
func TestSumInChunksOverflow(t *testing.T) {
	var b strings.Builder
	filler := func(n int) {
		for i := range n {
			b.WriteString(add(fmt.Sprintf("u%d", i%50), int64(i)) + "\n")
		}
	}
	whale := func(n int, line func(string, int64) string) {
		for range n {
			b.WriteString(line("whale", event.MaxValue) + "\n")
		}
	}
	for range 1024 { // 1024*MaxValue = 2^63-1024 fits
		whale(1, add)
		filler(10)
	}
	whale(2, add) // rejected: past 2^63-1
	filler(200)
	whale(4, sub)
	filler(500)
	content := []byte(b.String())
	path := writeEvents(t, content)
	want := sumSerially(t, path)
	if want.s.rejected != 2 || strings.Count(want.report, "revenue total overflows") != 2 {
		t.Fatalf("serial sum rejected %d lines:\n%s\nwant the two that overflow", want.s.rejected, want.report)
	}
	if w := want.totals["whale"]; w != 1020*event.MaxValue {
		t.Fatalf("serial sum of whale = %d; want %d", w, 1020*event.MaxValue)
	}
	for _, c := range [][2]int{{2, 2}, {3, 7}, {4, 16}} {
		if got, ok := sumInChunks(t, path, c[0], c[1]); ok {
			t.Errorf("sumChunks(%d workers, %d chunks) kept its sums (whale %d); want them given up", c[0], c[1], got.totals["whale"])
		} else if got.rejected != nil {
			t.Errorf("sumChunks(%d workers, %d chunks) gave up but wrote a _rejected file", c[0], c[1])
		}
		var con bytes.Buffer
		p := &processor{con: console.New(&con, true)}
		s, err := p.sumWith(context.Background(), path, c[0], c[1], 0)
		if err != nil {
			t.Fatal(err)
		}
		sameRun(t, fmt.Sprintf("sumWith(%d workers, %d chunks)", c[0], c[1]), collect(t, path, s, con.String()), want, content)
	}

	// Absolute values past 2^63-1 with no total near it: given up too, and the same result.
	b.Reset()
	for i := range 1100 {
		b.WriteString(add(fmt.Sprintf("rich%d", i), event.MaxValue) + "\n")
	}
	content = []byte(b.String())
	path = writeEvents(t, content)
	want = sumSerially(t, path)
	if _, ok := sumInChunks(t, path, 2, 4); ok {
		t.Errorf("sumChunks kept sums whose absolute values pass 2^63-1; want them given up")
	}
	var con bytes.Buffer
	p := &processor{con: console.New(&con, true)}
	s, err := p.sumWith(context.Background(), path, 2, 4, 0)
	if err != nil {
		t.Fatal(err)
	}
	sameRun(t, "sumWith, rich users", collect(t, path, s, con.String()), want, content)
}

// TestSumLargeFile runs sum itself, with its own threshold and workers, on a file above the
// threshold.
func TestSumLargeFile(t *testing.T) {
	rng := rand.New(rand.NewPCG(testenv.Seed(t), 1))
	size := parallelMin + 500_000
	content := genFile(rng, size, []int{8, 16})
	path := writeEvents(t, content)
	want := sumSerially(t, path)
	var con bytes.Buffer
	p := &processor{con: console.New(&con, true)}
	s, err := p.sum(context.Background(), path)
	if err != nil {
		t.Fatal(err)
	}
	sameRun(t, fmt.Sprintf("sum, GOMAXPROCS %d", runtime.GOMAXPROCS(0)), collect(t, path, s, con.String()), want, content)
}

// TestSumInChunksMemory checks that rejected lines are not held in memory: a file of bad
// lines much larger than the bound is summed with the heap staying under the bound.
func TestSumInChunksMemory(t *testing.T) {
	if testing.Short() {
		t.Skip("writes a 16 MiB file")
	}
	const size, bound = 16 << 20, 10 << 20
	line := `{"userId": "u1", "name": "add_revenue", "value": "not a number"}` + "\n"
	content := bytes.Repeat([]byte(line), size/len(line))
	path := writeEvents(t, content)
	p := &processor{con: console.New(io.Discard, true)}
	runtime.GC()
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	base := ms.HeapAlloc
	var peak uint64
	done := make(chan struct{})
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		var ms runtime.MemStats
		for {
			runtime.ReadMemStats(&ms)
			peak = max(peak, ms.HeapAlloc)
			select {
			case <-done:
				return
			case <-time.After(5 * time.Millisecond):
			}
		}
	}()
	s, err := p.sumWith(context.Background(), path, 2, 8, 0)
	close(done)
	wg.Wait()
	if err != nil {
		t.Fatal(err)
	}
	if s.rejected != int64(len(content)/len(line)) {
		t.Fatalf("sum rejected %d lines; want %d", s.rejected, len(content)/len(line))
	}
	if peak > base+bound {
		t.Errorf("heap grew by %d MiB while summing a %d MiB file of rejected lines; want under %d MiB", (peak-base)>>20, size>>20, bound>>20)
	}
	t.Logf("heap grew by at most %.1f MiB", float64(peak-base)/(1<<20))
}

// cancelAfter is a context that reports itself cancelled from its nth call of Err on: a stop
// that arrives in the middle of a read, at a point the test chooses.
type cancelAfter struct {
	context.Context
	n atomic.Int64
}

func (c *cancelAfter) Err() error {
	if c.n.Add(-1) < 0 {
		return context.Canceled
	}
	return nil
}

// TestSumStops checks that a stop ends the read of a file, serial or in chunks, with the
// context's error, without waiting for the rest of the file, and that the piece of a line
// the stop cut off is not set aside as a rejected line.
func TestSumStops(t *testing.T) {
	var b strings.Builder
	for i := 0; b.Len() < parallelMin+500_000; i++ {
		fmt.Fprintf(&b, `{"userId":"u%d","name":"add_revenue","value":%d}`+"\n", i%1000, i%97)
	}
	path := writeEvents(t, []byte(b.String()))
	for _, c := range []struct{ workers, chunks int }{{1, 1}, {2, 8}} {
		for _, reads := range []int64{0, 3} {
			ctx := &cancelAfter{Context: context.Background()}
			ctx.n.Store(reads)
			var con bytes.Buffer
			p := &processor{con: console.New(&con, true)}
			_, err := p.sumWith(ctx, path, c.workers, c.chunks, 0)
			if !errors.Is(err, context.Canceled) {
				t.Errorf("sumWith(stopped after %d reads, %d workers, %d chunks) = %v; want context.Canceled", reads, c.workers, c.chunks, err)
			}
			if calls := reads - ctx.n.Load(); calls > reads+int64(2*c.workers+1) {
				t.Errorf("sumWith(stopped after %d reads, %d workers) read on %d more times after the stop", reads, c.workers, calls-reads)
			}
			if _, err := os.Stat(spool.RejectedName(path)); err == nil || strings.Contains(con.String(), "set aside") {
				t.Errorf("sumWith(stopped after %d reads, %d workers) set a line aside from a file of valid lines:\n%s", reads, c.workers, con.String())
			}
		}
	}
}
