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

	"finonex/internal/cli"
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

// tally sums revenue per user. Its memory grows with the number of distinct users only:
// a userId is copied once, when the user is first seen.
type tally struct {
	index  map[string]int32
	users  []string
	deltas []int64
}

func (t *tally) add(userID []byte, delta int64) error {
	if i, ok := t.index[string(userID)]; ok { // no allocation for a known user
		sum, err := event.Add(t.deltas[i], delta)
		if err != nil {
			return fmt.Errorf("user %q: %w", userID, err)
		}
		t.deltas[i] = sum
		return nil
	}
	u := string(userID)
	t.index[u] = int32(len(t.users))
	t.users = append(t.users, u)
	t.deltas = append(t.deltas, delta)
	return nil
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
	sc := event.NewScanner(io.TeeReader(cli.CountingReader{R: f, N: &read}, h), 1<<20)
	t := tally{index: make(map[string]int32)}
	rej := rejects{path: spool.RejectedName(path), con: p.con, source: filepath.Base(path)}
	var events int64
	start := time.Now()
	stop := p.con.Progress(p.every, func() string {
		return fmt.Sprintf("reading %s: %s, %d events", filepath.Base(path),
			cli.Fraction(read.Load(), size, time.Since(start)), atomic.LoadInt64(&events))
	})
	for sc.Scan() {
		line := sc.Bytes()
		if sc.TooLong() {
			rej.add(sc.Line(), nil, event.ErrLineTooLong)
			continue
		}
		if event.IsBlank(line) {
			continue
		}
		userID, delta, err := event.ParseDelta(line)
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
	return summary{
		events: events, users: t.users, deltas: t.deltas,
		rejected: rej.n, rejPath: rej.path, sha256: hex.EncodeToString(h.Sum(nil)),
	}, nil
}

// rejects reports invalid lines and copies them, as they were, to the rejected file, which
// is created on the first one. It is synced before the file is applied, so that it is
// complete whenever the ledger says the file is done.
type rejects struct {
	path   string
	source string
	con    *cli.Console
	f      *os.File
	w      *bufio.Writer
	n      int64
	err    error
}

func (r *rejects) add(line int, text []byte, reason error) {
	r.n++
	note := ""
	if text == nil {
		note = " (not copied)"
	}
	r.con.Printf("%s:%d: invalid line set aside%s: %v\n", r.source, line, note, reason)
	if r.err != nil || text == nil {
		return
	}
	if r.f == nil {
		r.f, r.err = os.Create(r.path)
		if r.err != nil {
			return
		}
		r.w = bufio.NewWriter(r.f)
	}
	r.w.Write(text)
	_, r.err = r.w.Write([]byte{'\n'})
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
	if err != nil {
		return fmt.Errorf("write %s: %w", r.path, err)
	}
	return nil
}
