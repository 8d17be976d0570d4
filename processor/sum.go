package main

// Reading a claimed file on every core.
//
// A file of parallelMin bytes or more is cut into chunks at the nominal offsets k*size/chunks,
// and a few workers take the chunks in turn, each summing into a tally of its own. Chunk k
// holds the lines that start at or after its nominal offset and before the next one's:
//
//   - its worker finds where it starts by looking for the first "\n" from the byte before
//     the nominal offset up to the byte before the next one (lineStart); with none there,
//     no line starts in the chunk and it is empty;
//   - it ends where the next chunk starts: its worker reads on past the next nominal offset
//     through the first "\n" it meets there (rangeReader).
//
// Both rules find the same places, so every line, however long, is read whole by exactly one
// chunk, and event.Scanner cuts it as it would in one pass. The workers' tallies are merged
// at the end; each may hold every user, so memory grows with users times workers, never with
// the file.
//
// Line numbers: each chunk numbers its lines from 1 (blank ones counted); once all chunks
// are done, the lines of the chunks before a chunk are added to its numbers. The rejected
// lines go as frames to a spill file per worker (unlinked at once, beside the claimed file)
// and are replayed in chunk order into the _rejected file and the console report: the same
// bytes, order and numbers as one pass, in memory bounded by buffers, not by bad lines.
//
// Overflow: one pass rejects a line whose delta takes its user's running total out of an
// int64, a rule that depends on line order, which chunk sums lose. No running total can
// exceed the sum of |delta| over the file's valid events, in any order: while that fits in
// an int64 no line overflows and the chunk sums are the serial sums. Past it (values adding
// up to more than 2^63-1, about 9.2e18: 1,024 events of MaxValue) the workers stop and one
// serial pass decides: the same results, at the serial speed, for absurd files only.
//
// SHA-256 cannot be split, so one goroutine hashes the file from start to end while the
// workers sum: a pass of its own, but run alongside them on the page cache, not after them.

import (
	"bufio"
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"math"
	"os"
	"path/filepath"
	"runtime"
	"sync"
	"sync/atomic"
	"time"

	"finonex/internal/console"
	"finonex/internal/event"
	"finonex/internal/spool"
)

const (
	// parallelMin is the smallest file read by several workers: below it, starting them
	// costs more than they save.
	parallelMin = 4 << 20
	// maxWorkers caps the workers: each holds a tally of up to every user.
	maxWorkers = 8
	// A file is cut into chunks of about chunkBytes, from 2 to 8 per worker: finer than the
	// workers, so that one slowed by the hasher, or by another process on its core, does
	// not hold up the end, and coarse enough that a chunk's Scanner buffer is small beside it.
	chunkBytes = 4 << 20
)

// chunksFor returns how many chunks a file of size bytes is cut into for workers.
func chunksFor(size int64, workers int) int {
	return int(min(int64(8*workers), max(int64(2*workers), size/chunkBytes)))
}

// summary is what reading one file found.
type summary struct {
	events   int64
	users    []string
	deltas   []int64 // deltas[i] is the revenue change of users[i]
	rejected int64
	rejPath  string
	sha256   string
}

func (s summary) rejectedNote() string {
	if s.rejected == 0 {
		return ""
	}
	return " (set aside in " + filepath.Base(s.rejPath) + ")"
}

// tally sums revenue per user. Its memory grows with the number of distinct users only.
//
// Most userIds are short, and a map keyed by a fixed-size array holds them, and their sums,
// inline: a lookup compares keys and updates the sum without chasing a pointer, and those
// pointer chases (cache misses) were most of the processor's time. Longer ids go to a map
// from string to an index in slices, which copies an id once, when it is first seen.
type tally struct {
	short    map[shortKey]int64 // ids of up to shortMax bytes -> sum
	long     map[string]int32   // longer ids -> index in longIDs
	longIDs  []string
	longSums []int64
}

const shortMax = 15

// shortKey is a userId of up to shortMax bytes: its length, then its bytes, zero-padded.
type shortKey [shortMax + 1]byte

func newTally() *tally {
	return &tally{short: make(map[shortKey]int64), long: make(map[string]int32)}
}

func (t *tally) add(userID []byte, delta int64) error {
	if len(userID) <= shortMax {
		var k shortKey
		k[0] = byte(len(userID))
		copy(k[1:], userID)
		sum, err := event.Add(t.short[k], delta)
		if err != nil {
			return fmt.Errorf("user %q: %w", userID, err)
		}
		t.short[k] = sum
		return nil
	}
	i, ok := t.long[string(userID)] // no allocation for a lookup
	if !ok {
		i = int32(len(t.longIDs))
		t.long[string(userID)] = i
		t.longIDs = append(t.longIDs, string(userID))
		t.longSums = append(t.longSums, 0)
	}
	sum, err := event.Add(t.longSums[i], delta)
	if err != nil {
		return fmt.Errorf("user %q: %w", userID, err)
	}
	t.longSums[i] = sum
	return nil
}

// merge adds o's sums to t's.
func (t *tally) merge(o *tally) error {
	for k, sum := range o.short {
		s, err := event.Add(t.short[k], sum)
		if err != nil {
			return fmt.Errorf("user %q: %w", k[1:1+k[0]], err)
		}
		t.short[k] = s
	}
	for i, id := range o.longIDs {
		if err := t.add([]byte(id), o.longSums[i]); err != nil {
			return err
		}
	}
	return nil
}

func (t *tally) len() int { return len(t.short) + len(t.longIDs) }

// sums returns every user and their sum, in no particular order.
func (t *tally) sums() (users []string, deltas []int64) {
	users = make([]string, 0, t.len())
	deltas = make([]int64, 0, cap(users))
	for k, sum := range t.short {
		users = append(users, string(k[1:1+k[0]]))
		deltas = append(deltas, sum)
	}
	return append(users, t.longIDs...), append(deltas, t.longSums...)
}

// sum reads a claimed file line by line, summing valid events per user and copying invalid
// lines to the file's rejected file. It also hashes the file's bytes for the ledger. It stops
// with ctx's error soon after ctx is done: a stop does not wait for the read of a huge file.
func (p *processor) sum(ctx context.Context, path string) (summary, error) {
	return p.sumWith(ctx, path, min(runtime.GOMAXPROCS(0), maxWorkers), 0, parallelMin)
}

// sumWith is sum with its parallelism given: a file of at least minSize bytes is cut into
// chunks (0: chunksFor its size) read by workers goroutines (see the top of this file);
// smaller ones, or workers < 2, are read in one pass.
func (p *processor) sumWith(ctx context.Context, path string, workers, chunks int, minSize int64) (summary, error) {
	file, err := os.Open(path)
	if err != nil {
		return summary{}, fmt.Errorf("open %s: %w", path, err)
	}
	defer file.Close()
	size := int64(-1)
	if fi, err := file.Stat(); err == nil {
		size = fi.Size()
	}
	f := ctxReaderAt{ctx, file} // every read of the file below goes through it
	m := &meter{events: make([]paddedCounter, max(workers, 1))}
	start := time.Now()
	stop := p.con.Progress(p.every, func() string {
		elapsed, n := time.Since(start), m.eventsSeen()
		return fmt.Sprintf("reading %s: %s, %d events, %.0f events/s", filepath.Base(path),
			console.Fraction(m.read.Load(), size, elapsed), n, float64(n)/max(elapsed.Seconds(), 1e-9))
	})
	defer stop()
	if chunks == 0 {
		chunks = chunksFor(size, workers)
	}
	if workers >= 2 && chunks >= 2 && size >= minSize && size >= int64(chunks) {
		s, ok, err := p.sumChunks(f, path, size, workers, chunks, m)
		if err != nil {
			return summary{}, fmt.Errorf("read %s: %w", path, err)
		}
		if ok {
			return s, nil
		}
		m.reset() // line order may matter: the serial pass decides
	}
	s, err := p.sumSerial(f, path, m)
	if err != nil {
		return summary{}, fmt.Errorf("read %s: %w", path, err)
	}
	return s, nil
}

// sumSerial reads the whole file in one pass, hashing it on the way.
func (p *processor) sumSerial(f io.ReaderAt, path string, m *meter) (summary, error) {
	h := sha256.New()
	sc := event.NewScanner(io.TeeReader(console.CountingReader{R: io.NewSectionReader(f, 0, math.MaxInt64), N: &m.read}, h))
	rej := newRejects(path, p.con)
	sc.CopyTooLong(rej)
	w := &worker{p: p, t: newTally(), inOrder: true, shown: &m.events[0].Int64, first: &m.first}
	w.sumLines(sc, rej)
	w.shown.Store(w.events)
	if err := errors.Join(sc.Err(), rej.close()); err != nil {
		return summary{}, err
	}
	users, deltas := w.t.sums()
	return summary{
		events: w.events, users: users, deltas: deltas,
		rejected: rej.n, rejPath: rej.path, sha256: hex.EncodeToString(h.Sum(nil)),
	}, nil
}

// chunk is what a worker found in one chunk of the file.
type chunk struct {
	lines    int   // its lines, blank ones included
	rejected int64 // of which rejected, framed in spill from..to
	spill    *spill
	from, to int64
}

// sumChunks reads the file in chunks, on workers goroutines, while another hashes it. It
// returns false, and nothing else, when the events' absolute values add up to more than an
// int64 holds: then the chunk sums may not be the serial ones (see the top of this file).
func (p *processor) sumChunks(f io.ReaderAt, path string, size int64, workers, chunks int, m *meter) (summary, bool, error) {
	type hashed struct {
		sum string
		err error
	}
	digest := make(chan hashed, 1)
	go func() {
		sum, err := hashFile(f)
		digest <- hashed{sum, err}
	}()
	at := func(k int) int64 { return int64(k) * size / int64(chunks) } // at(chunks) == size
	cs := make([]chunk, chunks)
	ws := make([]*worker, workers)
	spills := make([]*spill, workers)
	errs := make([]error, workers)
	var next atomic.Int64 // the next chunk to take
	var stop, huge atomic.Bool
	var wg sync.WaitGroup
	for i := range ws {
		ws[i] = &worker{p: p, t: newTally(), shown: &m.events[i].Int64, first: &m.first}
		spills[i] = &spill{dir: filepath.Dir(path)}
		wg.Add(1)
		go func() {
			defer wg.Done()
			for !stop.Load() {
				k := int(next.Add(1) - 1)
				if k >= chunks {
					return
				}
				ok, err := ws[i].sumChunk(f, at(k), at(k+1), k == chunks-1, &cs[k], spills[i], &m.read)
				if err != nil || !ok {
					errs[i] = err
					if !ok {
						huge.Store(true)
					}
					stop.Store(true)
					return
				}
			}
		}()
	}
	wg.Wait()
	d := <-digest
	defer func() {
		for _, s := range spills {
			s.close()
		}
	}()
	for _, s := range spills {
		errs = append(errs, s.flush())
	}
	if err := errors.Join(append(errs, d.err)...); err != nil {
		return summary{}, false, err
	}
	if huge.Load() {
		return summary{}, false, nil
	}
	var events, mass int64
	into := ws[0]
	for _, w := range ws {
		if mass > math.MaxInt64-w.mass {
			return summary{}, false, nil
		}
		events, mass = events+w.events, mass+w.mass
		if w.t.len() > into.t.len() {
			into = w
		}
	}
	for _, w := range ws {
		if w == into {
			continue
		}
		if err := into.t.merge(w.t); err != nil { // not while mass fits; to be safe
			return summary{}, false, nil
		}
		w.t = nil
	}
	rej := newRejects(path, p.con)
	var err error
	base := 0 // lines before the chunk
	for _, c := range cs {
		if c.rejected > 0 && err == nil {
			err = c.spill.replay(c.from, c.to, base, rej)
		}
		base += c.lines
	}
	if err = errors.Join(err, rej.close()); err != nil {
		return summary{}, false, err
	}
	users, deltas := into.t.sums()
	return summary{
		events: events, users: users, deltas: deltas,
		rejected: rej.n, rejPath: rej.path, sha256: d.sum,
	}, true, nil
}

// ctxReaderAt fails every read once ctx is done. Reads are 16 KiB to 256 KiB, so the check
// costs nothing next to them.
type ctxReaderAt struct {
	ctx context.Context
	r   io.ReaderAt
}

func (c ctxReaderAt) ReadAt(p []byte, off int64) (int, error) {
	if err := c.ctx.Err(); err != nil {
		return 0, err
	}
	return c.r.ReadAt(p, off)
}

// hashFile returns the hex SHA-256 of f's bytes.
func hashFile(f io.ReaderAt) (string, error) {
	h := sha256.New()
	if _, err := io.CopyBuffer(h, io.NewSectionReader(f, 0, math.MaxInt64), make([]byte, 256<<10)); err != nil {
		return "", err
	}
	return hex.EncodeToString(h.Sum(nil)), nil
}

// meter holds what the progress line shows.
type meter struct {
	read   atomic.Int64
	events []paddedCounter // one per worker
	first  atomic.Bool     // the file's first event was seen
}

// paddedCounter is a counter on a cache line of its own, so that workers do not share one.
type paddedCounter struct {
	atomic.Int64
	_ [56]byte
}

func (m *meter) eventsSeen() int64 {
	var n int64
	for i := range m.events {
		n += m.events[i].Load()
	}
	return n
}

func (m *meter) reset() {
	m.read.Store(0)
	for i := range m.events {
		m.events[i].Store(0)
	}
}

// worker sums lines into its tally.
type worker struct {
	p *processor
	t *tally
	// inOrder says the worker reads the whole file in order, so that an overflowing line is
	// rejected, as the rule says. Otherwise it adds up the absolute values in mass, and gives
	// up when they no longer fit in an int64.
	inOrder bool
	events  int64
	mass    int64
	shown   *atomic.Int64 // events, for the progress line
	first   *atomic.Bool
}

// badLines takes the invalid lines: a too-long line's bytes come before, through Write
// (event.Scanner.CopyTooLong), and text is then nil.
type badLines interface {
	add(line int, text []byte, reason string)
}

// sumLines sums the lines of sc and hands the invalid ones to bad. It returns false when a
// worker that is not inOrder finds the absolute values of its events too large.
func (w *worker) sumLines(sc *event.Scanner, bad badLines) (rejected int64, ok bool) {
	for line, err := range sc.Lines() {
		var userID []byte
		var delta int64
		if err == nil {
			userID, delta, err = event.ParseDelta(line)
		}
		if err == nil && !w.inOrder {
			a := max(delta, -delta) // |delta| <= event.MaxValue
			if w.mass > math.MaxInt64-a {
				return rejected, false
			}
			w.mass += a
		}
		if err == nil {
			if err = w.t.add(userID, delta); err != nil && !w.inOrder {
				return rejected, false // not while mass fits; to be safe
			}
		}
		if err != nil {
			bad.add(sc.Line(), line, err.Error())
			rejected++
			continue
		}
		w.events++
		if w.events == 1 && w.first.CompareAndSwap(false, true) {
			w.p.crash("mid-read")
		}
		if w.events%1024 == 0 {
			w.shown.Store(w.events)
		}
	}
	return rejected, true
}

// sumChunk sums the lines that start in [from, to) of f into c, spilling the invalid ones to
// sp. The last chunk reads to the end of the file.
func (w *worker) sumChunk(f io.ReaderAt, from, to int64, last bool, c *chunk, sp *spill, read *atomic.Int64) (bool, error) {
	start := int64(0)
	if from > 0 {
		s, found, err := lineStart(f, from-1, to-1)
		if err != nil || !found {
			return true, err // no line starts here: the chunk before reads through
		}
		start = s
	}
	end := to - 1
	if last {
		end = -1
	}
	sc := event.NewScanner(console.CountingReader{R: &rangeReader{f: f, off: start, end: end}, N: read})
	sc.CopyTooLong(sp)
	c.spill, c.from = sp, sp.n
	var ok bool
	c.rejected, ok = w.sumLines(sc, sp)
	c.lines, c.to = sc.Line(), sp.n
	w.shown.Store(w.events)
	return ok, sc.Err()
}

// lineStart returns the offset just past the first "\n" of f in [from, to), if there is one.
func lineStart(f io.ReaderAt, from, to int64) (int64, bool, error) {
	buf := make([]byte, 16<<10)
	for from < to {
		n, err := f.ReadAt(buf[:min(int64(len(buf)), to-from)], from)
		if i := bytes.IndexByte(buf[:n], '\n'); i >= 0 {
			return from + int64(i) + 1, true, nil
		}
		from += int64(n)
		if err == io.EOF {
			return 0, false, nil
		}
		if err != nil {
			return 0, false, err
		}
	}
	return 0, false, nil
}

// rangeReader reads f from off through the first "\n" at or after offset end, or to the end
// of f when end is -1.
type rangeReader struct {
	f    io.ReaderAt
	off  int64
	end  int64
	done bool
}

func (r *rangeReader) Read(p []byte) (int, error) {
	if r.done {
		return 0, io.EOF
	}
	if r.end >= 0 && r.off < r.end && int64(len(p)) > r.end-r.off {
		p = p[:r.end-r.off] // bytes before end are all the range's
	}
	n, err := r.f.ReadAt(p, r.off)
	if r.end >= 0 && r.off+int64(n) > r.end {
		from := max(r.end-r.off, 0)
		if i := bytes.IndexByte(p[from:n], '\n'); i >= 0 {
			n, err, r.done = int(from)+i+1, nil, true
		}
	}
	r.off += int64(n)
	if err == io.EOF {
		r.done = true
		if n > 0 {
			err = nil
		}
	}
	return n, err
}

// spill keeps a worker's invalid lines, as frames, in a temporary file beside the claimed
// file, created on the first one and unlinked at once: a crash leaves nothing behind, and
// memory stays bounded however many lines are bad. n counts the bytes framed, so that a
// chunk's frames are the bytes between two values of n.
type spill struct {
	dir     string
	f       *os.File
	w       *bufio.Writer
	named   bool // the unlink failed: remove the file on close
	n       int64
	err     error
	scratch [1 + 3*binary.MaxVarintLen64]byte
}

// The frames of a spill file.
const (
	framePiece  = 'p' // a piece of a too-long line: uvarint length, bytes
	frameReject = 'r' // an invalid line: uvarint line number, reason length and text length, reason, text
)

// Write frames a piece of a too-long line (event.Scanner.CopyTooLong).
func (s *spill) Write(p []byte) (int, error) {
	s.head(framePiece, uint64(len(p)))
	s.write(p)
	return len(p), nil
}

func (s *spill) add(line int, text []byte, reason string) {
	s.head(frameReject, uint64(line), uint64(len(reason)), uint64(len(text)))
	s.writeString(reason)
	s.write(text)
}

// head writes a frame's tag and numbers.
func (s *spill) head(tag byte, nums ...uint64) {
	b := append(s.scratch[:0], tag)
	for _, x := range nums {
		b = binary.AppendUvarint(b, x)
	}
	s.write(b)
}

func (s *spill) write(b []byte) {
	if s.open() {
		n, err := s.w.Write(b)
		s.n, s.err = s.n+int64(n), err
	}
}

func (s *spill) writeString(b string) {
	if s.open() {
		n, err := s.w.WriteString(b)
		s.n, s.err = s.n+int64(n), err
	}
}

// open creates the file on the first frame, and reports whether it can be written.
func (s *spill) open() bool {
	if s.err != nil {
		return false
	}
	if s.f == nil {
		s.f, s.err = os.CreateTemp(s.dir, ".rejected-spill-*")
		if s.err != nil {
			return false
		}
		s.named = os.Remove(s.f.Name()) != nil
		s.w = bufio.NewWriterSize(s.f, 64<<10)
	}
	return true
}

func (s *spill) flush() error {
	if s.f != nil && s.err == nil {
		s.err = s.w.Flush()
	}
	if s.err != nil {
		return fmt.Errorf("spill rejected lines: %w", s.err)
	}
	return nil
}

func (s *spill) close() {
	if s.f == nil {
		return
	}
	s.f.Close() // only read back: its data is in the _rejected file, or no longer needed
	if s.named {
		os.Remove(s.f.Name())
	}
}

// replay hands the frames between offsets from and to over to rej, adding base to the line
// numbers.
func (s *spill) replay(from, to int64, base int, rej *rejects) error {
	fr := frameReader{r: bufio.NewReaderSize(io.NewSectionReader(s.f, from, to-from), 64<<10), buf: make([]byte, 32<<10)}
	var reason bytes.Buffer
	for {
		tag, err := fr.r.ReadByte()
		if err == io.EOF {
			return nil
		}
		switch {
		case err != nil:
			fr.err = err
		case tag == framePiece:
			fr.copy(rej, fr.uvarint())
		case tag == frameReject:
			line, rn, tn := fr.uvarint(), fr.uvarint(), fr.uvarint()
			reason.Reset()
			fr.copy(&reason, rn)
			fr.copy(rej, tn)
			if fr.err == nil {
				rej.add(base+int(line), nil, reason.String())
			}
		default:
			fr.err = fmt.Errorf("frame %q", tag)
		}
		if fr.err != nil {
			return fmt.Errorf("replay rejected lines: %w", fr.err)
		}
	}
}

// frameReader reads a spill file's frames, keeping the first error.
type frameReader struct {
	r   *bufio.Reader
	buf []byte
	err error
}

func (fr *frameReader) uvarint() uint64 {
	if fr.err != nil {
		return 0
	}
	x, err := binary.ReadUvarint(fr.r)
	fr.err = err
	return x
}

// copy copies the next n bytes to w.
func (fr *frameReader) copy(w io.Writer, n uint64) {
	if fr.err != nil {
		return
	}
	m, err := io.CopyBuffer(w, io.LimitReader(fr.r, int64(n)), fr.buf)
	if err == nil && uint64(m) < n {
		err = io.ErrUnexpectedEOF
	}
	fr.err = err
}

// rejects reports invalid lines and copies them, as they were, to the rejected file, which
// is created on the first one. It is synced before the file is applied, so that it is
// complete whenever the ledger says the file is done.
type rejects struct {
	path   string
	source string
	con    *console.Console
	f      *os.File
	w      *bufio.Writer
	n      int64
	err    error
}

func newRejects(claimed string, con *console.Console) *rejects {
	return &rejects{path: spool.RejectedName(claimed), con: con, source: filepath.Base(claimed)}
}

// add reports an invalid line and copies it. A too-long line comes with no text (nil): the
// Scanner has already copied its bytes through Write.
func (r *rejects) add(line int, text []byte, reason string) {
	r.n++
	r.con.Printf("%s:%d: invalid line set aside: %s\n", r.source, line, reason)
	r.write(text)
	r.write([]byte{'\n'})
}

// Write takes the pieces of a too-long line from the Scanner (event.Scanner.CopyTooLong).
func (r *rejects) Write(p []byte) (int, error) {
	r.write(p)
	return len(p), nil
}

func (r *rejects) write(b []byte) {
	if r.err != nil {
		return
	}
	if r.f == nil {
		r.f, r.err = os.Create(r.path)
		if r.err != nil {
			return
		}
		r.w = bufio.NewWriter(r.f)
	}
	_, r.err = r.w.Write(b)
}

func (r *rejects) close() error {
	if r.f == nil {
		return r.err
	}
	err := r.err
	if err == nil {
		err = r.w.Flush()
	}
	if err == nil {
		err = r.f.Sync()
	}
	if cerr := r.f.Close(); err == nil {
		err = cerr
	}
	if err == nil { // the new name too must be durable before the ledger says done
		err = spool.OS{}.SyncDir(filepath.Dir(r.path))
	}
	if err != nil {
		return fmt.Errorf("write %s: %w", r.path, err)
	}
	return nil
}
