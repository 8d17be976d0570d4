// Package spool is the handoff between the server, which appends events to a live file, and
// the processor, which takes that file away by renaming it. Two processes share the file, so
// the protocol below is the only thing keeping an appended line from being lost, or from
// landing in a file that was already read.
//
// The writer (server), for every batch:
//
//  1. flock(LOCK_EX) the file it has open;
//  2. check that the live path still names the inode it holds. If not, the processor renamed
//     it: unlock, close, open the path afresh (creating it, and then fsyncing the directory so
//     the new name is durable), repair a torn tail, and go back to 1;
//  3. write the whole batch with one write(2), fdatasync, unlock, and only then acknowledge.
//
// The processor, to claim (Claim):
//
//  1. rename(live, claimed): atomic; from now on the live path names another file or nothing;
//  2. flock(LOCK_EX) the claimed file, then unlock (Fence). This waits out a writer that locked
//     the inode before the rename and is mid-batch. Any writer that locks it later fails the
//     check in step 2 above and moves to the new file;
//  3. read the claimed file: it holds every line ever acknowledged into that inode, and no line
//     will be appended to it again.
//
// A failed write or sync truncates the file back to its size before the batch and answers the
// error to every event of the batch, so no torn or unacknowledged line is left for a later
// append to glue onto. A sync error is never retried: the writer would not know what reached
// the disk. If even the truncate fails, or the lock cannot be released, the writer closes the
// file (which drops its lock, so a processor is never kept waiting) and refuses all further
// appends (ErrStopped).
package spool

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"path/filepath"
	"sync"
	"time"
)

// ErrFull is returned by Append when the queue in front of the writer is full: the caller
// should shed load (the server answers 503 with Retry-After).
var ErrFull = errors.New("events queue is full")

// ErrClosed is returned by Append after Close.
var ErrClosed = errors.New("events writer is closed")

// ErrStopped wraps the error that made a writer refuse every append: the events file is in a
// state the writer cannot vouch for, and only a restart (which repairs it) helps.
var ErrStopped = errors.New("events writer stopped; restart the server")

// ErrNotWritable is reported by Healthy when the live file's directory cannot be written:
// the next claim would leave the writer unable to create the file anew.
var ErrNotWritable = errors.New("events directory is not writable")

// failureShown is how long Healthy reports a failed batch when no batch has succeeded since.
// A failure must not stay reported for good: a server taken out of rotation for it would
// never get the write that clears it.
const failureShown = 10 * time.Second

// Options tune a Writer. The zero value is usable.
type Options struct {
	QueueSize int // appends waiting for the writer; default 16384
	MaxBatch  int // lines per write and sync; default 4096
	FS        FS  // default OS{}

	// OnBatch, when set, is called from the writer goroutine after each durable batch with
	// its number of lines and the time its fdatasync took, for metrics. It must be quick.
	OnBatch func(lines int, sync time.Duration)
}

// Stats are a Writer's counters since it opened.
type Stats struct {
	Batches    int64         // write+sync rounds
	Lines      int64         // lines made durable
	Failed     int64         // lines answered with an error
	SyncTime   time.Duration // total time spent in fdatasync
	LastSync   time.Duration
	QueueDepth int
}

// Writer appends lines to a live events file, durably, group-committing the lines that
// arrive while the previous batch is being synced. It is safe for concurrent use.
type Writer struct {
	path    string
	fs      FS
	max     int
	onBatch func(lines int, sync time.Duration)
	queue   chan request
	done    chan struct{}

	mu     sync.RWMutex // guards closed against Append racing Close
	closed bool

	statsMu  sync.Mutex // guards stats, broken, lastErr, failedAt and now
	stats    Stats
	broken   error     // set once, wrapping ErrStopped: the writer refuses every later append
	lastErr  error     // the last batch's error, nil after a success
	failedAt time.Time // when lastErr was set
	now      func() time.Time

	// Owned by the run goroutine (and Open, before it starts).
	f        File
	repaired bool // f's torn tail, if any, has been removed
	dirDirty bool // this writer created a file whose directory entry is not yet synced
}

type request struct {
	line []byte
	done chan error
}

// Open opens (creating if needed) the live file at path and starts its writer goroutine,
// which ends when Close is called.
func Open(path string, opts Options) (*Writer, error) {
	if opts.QueueSize <= 0 {
		opts.QueueSize = 16384
	}
	if opts.MaxBatch <= 0 {
		opts.MaxBatch = 4096
	}
	if opts.FS == nil {
		opts.FS = OS{}
	}
	w := &Writer{
		path:    path,
		fs:      opts.FS,
		max:     opts.MaxBatch,
		onBatch: opts.OnBatch,
		queue:   make(chan request, opts.QueueSize),
		done:    make(chan struct{}),
		now:     time.Now,
		// An earlier writer may have created the file and died before syncing its
		// directory entry: sync it once at start, whoever created the file.
		dirDirty: true,
	}
	// Open, lock and repair once now, so that a bad path fails at start and a torn tail
	// left by a crash is gone before anyone reads the file.
	if _, err := w.lock(); err != nil {
		if w.f != nil {
			w.f.Close()
		}
		return nil, err
	}
	if err := w.f.Unlock(); err != nil {
		w.f.Close()
		return nil, fmt.Errorf("unlock %s: %w", path, err)
	}
	go w.run()
	return w, nil
}

// Append writes line, which must be one line without "\n", and returns once it is on disk,
// or with the error that kept it from being written. It returns ErrFull at once when the
// queue is full. Once queued, a line is always answered, so Append does not give up early:
// the caller must learn whether it was written.
func (w *Writer) Append(line []byte) error {
	req := request{line: line, done: make(chan error, 1)}
	w.mu.RLock()
	if w.closed {
		w.mu.RUnlock()
		return ErrClosed
	}
	select {
	case w.queue <- req:
	default:
		w.mu.RUnlock()
		return ErrFull
	}
	w.mu.RUnlock()
	return <-req.done
}

// Close stops accepting lines, writes and syncs those already queued, answers them, and
// closes the file.
func (w *Writer) Close() error {
	w.mu.Lock()
	if w.closed {
		w.mu.Unlock()
		<-w.done
		return ErrClosed
	}
	w.closed = true
	close(w.queue)
	w.mu.Unlock()
	<-w.done
	if w.f == nil {
		return nil
	}
	if err := w.f.Close(); err != nil {
		return fmt.Errorf("close %s: %w", w.path, err)
	}
	return nil
}

// Stats returns a snapshot of the writer's counters.
func (w *Writer) Stats() Stats {
	w.statsMu.Lock()
	defer w.statsMu.Unlock()
	s := w.stats
	s.QueueDepth = len(w.queue)
	return s
}

// Healthy returns nil when appends are expected to succeed, else why not: the error that
// made the writer refuse appends for good (wrapping ErrStopped), the error of the last
// batch when it failed less than failureShown ago, or ErrNotWritable.
func (w *Writer) Healthy() error {
	w.statsMu.Lock()
	err := w.broken
	if err == nil && w.lastErr != nil && w.now().Sub(w.failedAt) < failureShown {
		err = w.lastErr
	}
	w.statsMu.Unlock()
	if err != nil {
		return err
	}
	if wc, ok := w.fs.(interface{ Writable(dir string) bool }); ok && !wc.Writable(filepath.Dir(w.path)) {
		return fmt.Errorf("%s: %w", filepath.Dir(w.path), ErrNotWritable)
	}
	return nil
}

// refusing returns the error that made the writer refuse appends for good, or nil.
func (w *Writer) refusing() error {
	w.statsMu.Lock()
	defer w.statsMu.Unlock()
	return w.broken
}

func (w *Writer) run() {
	defer close(w.done)
	batch := make([]request, 0, w.max)
	var buf []byte
	for req := range w.queue {
		batch = append(batch[:0], req)
	collect:
		for len(batch) < w.max {
			select {
			case r, ok := <-w.queue:
				if !ok {
					break collect
				}
				batch = append(batch, r)
			default:
				break collect
			}
		}
		buf = buf[:0]
		for _, r := range batch {
			buf = append(buf, r.line...)
			buf = append(buf, '\n')
		}
		synced, err := w.commit(buf)
		w.count(len(batch), err) // before the answers, so a caller that was answered sees its batch counted
		if err == nil && w.onBatch != nil {
			w.onBatch(len(batch), synced)
		}
		for _, r := range batch {
			r.done <- err
		}
	}
}

func (w *Writer) count(lines int, err error) {
	w.statsMu.Lock()
	defer w.statsMu.Unlock()
	w.lastErr = err
	if err != nil {
		w.failedAt = w.now()
		w.stats.Failed += int64(lines)
		return
	}
	w.stats.Batches++
	w.stats.Lines += int64(lines)
}

// commit writes buf to the live file and syncs it, under the lock (steps 1 to 3 above). It
// returns how long the fdatasync took.
func (w *Writer) commit(buf []byte) (synced time.Duration, err error) {
	if err := w.refusing(); err != nil {
		return 0, err
	}
	size, err := w.lock()
	if err != nil {
		return 0, err
	}
	if _, err = w.f.Write(buf); err == nil {
		start := time.Now()
		err = w.f.Sync()
		synced = time.Since(start)
		w.timeSync(synced)
	}
	if err != nil {
		w.undo(size, err)
	}
	if w.f == nil { // undo stopped the writer, and closing the file released the lock
		return 0, fmt.Errorf("append to %s: %w", w.path, err)
	}
	// The batch's fate is already decided: a failed unlock stops the writer, but answering a
	// durable batch with an error would make its retries count twice.
	w.unlock()
	if err != nil {
		return 0, fmt.Errorf("append to %s: %w", w.path, err)
	}
	return synced, nil
}

// unlock releases the file lock. If it cannot, the writer stops: a lock that stays held would
// keep a processor's fence waiting, and refuse closes the file, which releases it.
func (w *Writer) unlock() {
	if err := w.f.Unlock(); err != nil {
		w.refuse(fmt.Errorf("unlock %s: %w", w.path, err))
	}
}

// refuse stops the writer for good: it closes the file, which releases any lock on it, and
// every later append gets the error. Only the run goroutine (or Open, before it starts) calls
// it.
func (w *Writer) refuse(err error) {
	if w.f != nil {
		w.f.Close() // the close is the point; its error adds nothing to err
		w.f = nil
	}
	w.statsMu.Lock()
	defer w.statsMu.Unlock()
	if w.broken == nil {
		w.broken = fmt.Errorf("%w: %w", ErrStopped, err)
	}
}

// undo truncates the file back to size after a failed write or sync, so that no part of the
// failed batch stays behind. If that fails too, the file's state is unknown and the writer
// stops for good.
func (w *Writer) undo(size int64, cause error) {
	err := w.f.Truncate(size)
	if err == nil {
		err = w.f.Sync()
	}
	if err != nil {
		w.refuse(fmt.Errorf("events file %s is in an unknown state after %v (truncate: %v)", w.path, cause, err))
	}
}

func (w *Writer) timeSync(d time.Duration) {
	w.statsMu.Lock()
	w.stats.SyncTime += d
	w.stats.LastSync = d
	w.statsMu.Unlock()
}

// lock takes the lock on the file that the live path names, opening it if needed, and
// returns the file's size.
func (w *Writer) lock() (int64, error) {
	for {
		if w.f == nil {
			f, created, err := w.fs.OpenAppend(w.path)
			if err != nil {
				return 0, err
			}
			w.f, w.repaired = f, false
			w.dirDirty = w.dirDirty || created
		}
		// The directory entry of a file this writer created must be durable before any line
		// in it is acknowledged. A failed sync is tried again on the next batch.
		if w.dirDirty {
			if err := w.fs.SyncDir(filepath.Dir(w.path)); err != nil {
				return 0, fmt.Errorf("sync directory of %s: %w", w.path, err)
			}
			w.dirDirty = false
		}
		if err := w.f.Lock(); err != nil {
			return 0, fmt.Errorf("lock %s: %w", w.path, err)
		}
		same, err := w.fs.SameFile(w.path, w.f)
		if err != nil {
			w.unlock()
			return 0, fmt.Errorf("stat %s: %w", w.path, err)
		}
		if !same {
			// Claimed by a processor: move on to a new live file.
			w.f.Unlock() // the close below releases it anyway
			err := w.f.Close()
			w.f = nil // a failed close must not leave the writer on the old file
			if err != nil {
				return 0, fmt.Errorf("close claimed %s: %w", w.path, err)
			}
			continue
		}
		size, err := w.f.Size()
		if err == nil && !w.repaired { // until a repair succeeds, nothing is appended
			size, err = w.repair(size)
			w.repaired = err == nil
		}
		if err != nil {
			w.unlock()
			return 0, err
		}
		return size, nil
	}
}

// repair removes a torn last line from a freshly opened live file and returns its new size.
// A crash mid-write leaves such a line; it was never acknowledged, and a later append would
// glue onto it.
func (w *Writer) repair(size int64) (int64, error) {
	keep, err := completeLines(w.f, size)
	if err != nil {
		return 0, fmt.Errorf("read tail of %s: %w", w.path, err)
	}
	if keep == size {
		return size, nil
	}
	if err := w.f.Truncate(keep); err != nil {
		return 0, fmt.Errorf("truncate torn tail of %s: %w", w.path, err)
	}
	if err := w.f.Sync(); err != nil {
		return 0, fmt.Errorf("sync %s: %w", w.path, err)
	}
	return keep, nil
}

// completeLines returns the length of the file up to and including its last "\n".
func completeLines(r io.ReaderAt, size int64) (int64, error) {
	last := make([]byte, 1)
	if size == 0 {
		return 0, nil
	}
	if _, err := r.ReadAt(last, size-1); err != nil {
		return 0, err
	}
	if last[0] == '\n' {
		return size, nil
	}
	buf := make([]byte, 64<<10)
	for end := size; end > 0; {
		start := max(end-int64(len(buf)), 0)
		n := int(end - start)
		if _, err := r.ReadAt(buf[:n], start); err != nil && !errors.Is(err, io.EOF) {
			return 0, err
		}
		if i := bytes.LastIndexByte(buf[:n], '\n'); i >= 0 {
			return start + int64(i) + 1, nil
		}
		end = start
	}
	return 0, nil
}
