package main

import (
	"bufio"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"sync/atomic"
	"time"

	"finonex/internal/console"
	"finonex/internal/event"
	"finonex/internal/spool"
)

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

// sums returns every user and their sum, in no particular order.
func (t *tally) sums() (users []string, deltas []int64) {
	users = make([]string, 0, len(t.short)+len(t.longIDs))
	deltas = make([]int64, 0, cap(users))
	for k, sum := range t.short {
		users = append(users, string(k[1:1+k[0]]))
		deltas = append(deltas, sum)
	}
	return append(users, t.longIDs...), append(deltas, t.longSums...)
}

// sum reads a claimed file line by line, summing valid events per user and copying invalid
// lines to the file's rejected file. It also hashes the file's bytes for the ledger.
func (p *processor) sum(path string) (summary, error) {
	f, err := os.Open(path)
	if err != nil {
		return summary{}, fmt.Errorf("open %s: %w", path, err)
	}
	defer f.Close()
	size := int64(-1)
	if fi, err := f.Stat(); err == nil {
		size = fi.Size()
	}
	h := sha256.New()
	var read atomic.Int64
	sc := event.NewScanner(io.TeeReader(console.CountingReader{R: f, N: &read}, h))
	t := newTally()
	rej := &rejects{path: spool.RejectedName(path), con: p.con, source: filepath.Base(path)}
	sc.CopyTooLong(rej)
	var events int64
	start := time.Now()
	stop := p.con.Progress(p.every, func() string {
		elapsed, n := time.Since(start), atomic.LoadInt64(&events)
		return fmt.Sprintf("reading %s: %s, %d events, %.0f events/s", filepath.Base(path),
			console.Fraction(read.Load(), size, elapsed), n, float64(n)/max(elapsed.Seconds(), 1e-9))
	})
	for line, err := range sc.Lines() {
		var userID []byte
		var delta int64
		if err == nil {
			userID, delta, err = event.ParseDelta(line)
		}
		if err == nil {
			err = t.add(userID, delta)
		}
		if err != nil {
			rej.add(sc.Line(), line, err)
			continue
		}
		if atomic.AddInt64(&events, 1) == 1 {
			p.crash("mid-read")
		}
	}
	stop()
	err = errors.Join(sc.Err(), rej.close())
	if err != nil {
		return summary{}, fmt.Errorf("read %s: %w", path, err)
	}
	users, deltas := t.sums()
	return summary{
		events: events, users: users, deltas: deltas,
		rejected: rej.n, rejPath: rej.path, sha256: hex.EncodeToString(h.Sum(nil)),
	}, nil
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

// add reports an invalid line and copies it. A too-long line comes with no text (nil): the
// Scanner has already copied its bytes through Write.
func (r *rejects) add(line int, text []byte, reason error) {
	r.n++
	r.con.Printf("%s:%d: invalid line set aside: %v\n", r.source, line, reason)
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
