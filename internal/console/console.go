// Package console writes a program's progress and reports to stderr: a progress line redrawn
// in place on a terminal, a plain line now and then elsewhere, and nothing with -quiet.
package console

import (
	"fmt"
	"io"
	"os"
	"sync"
	"sync/atomic"
	"time"
)

// Console serializes writes to stderr, so that reports from many goroutines and the
// progress line do not tear each other. On a terminal the progress line is redrawn in place.
type Console struct {
	mu    sync.Mutex
	w     io.Writer
	tty   bool
	quiet bool
	drawn bool // a progress line is on the screen
}

// New returns a Console writing to w; quiet turns the progress line off.
func New(w io.Writer, quiet bool) *Console {
	c := &Console{w: w, quiet: quiet}
	if f, ok := w.(*os.File); ok {
		if fi, err := f.Stat(); err == nil && fi.Mode()&os.ModeCharDevice != 0 {
			c.tty = true
		}
	}
	return c
}

// Printf prints a report line, first removing a redrawn progress line.
func (c *Console) Printf(format string, args ...any) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.clear()
	fmt.Fprintf(c.w, format, args...)
}

func (c *Console) clear() {
	if c.drawn {
		fmt.Fprint(c.w, "\r\033[K")
		c.drawn = false
	}
}

// status shows a progress line: redrawn on a terminal, a plain line otherwise.
func (c *Console) status(line string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.tty {
		fmt.Fprint(c.w, "\r\033[K"+line)
		c.drawn = true
		return
	}
	fmt.Fprintln(c.w, line)
}

// done removes a redrawn progress line.
func (c *Console) done() {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.clear()
}

// Progress shows line() on the console every interval until the returned stop is called:
// redrawn in place at most ten times a second on a terminal, a plain line every interval
// otherwise, nothing when the console is quiet. stop waits for the goroutine to end.
func (c *Console) Progress(every time.Duration, line func() string) (stop func()) {
	if c.quiet {
		return func() {}
	}
	if c.tty {
		every = 100 * time.Millisecond
	}
	quit, ended := make(chan struct{}), make(chan struct{})
	go func() {
		defer close(ended)
		t := time.NewTicker(every)
		defer t.Stop()
		for {
			select {
			case <-quit:
				c.done()
				return
			case <-t.C:
				c.status(line())
			}
		}
	}()
	return func() { close(quit); <-ended }
}

// Fraction renders progress through a file: "50.1 MiB of 110.8 MiB (45.2%), elapsed 3s, eta 4s".
// size is -1 when unknown.
func Fraction(done, size int64, elapsed time.Duration) string {
	if size <= 0 {
		return fmt.Sprintf("%s read, elapsed %s", mib(done), elapsed.Round(time.Second))
	}
	frac := min(float64(done)/float64(size), 1)
	eta := "?"
	if frac > 0 {
		eta = (time.Duration(float64(elapsed)/frac) - elapsed).Round(time.Second).String()
	}
	return fmt.Sprintf("%s of %s (%.1f%%), elapsed %s, eta %s", mib(done), mib(size), 100*frac, elapsed.Round(time.Second), eta)
}

func mib(n int64) string { return fmt.Sprintf("%.1f MiB", float64(n)/(1<<20)) }

// CountingReader counts the bytes read through it into N, for progress.
type CountingReader struct {
	R io.Reader
	N *atomic.Int64
}

func (c CountingReader) Read(p []byte) (int, error) {
	n, err := c.R.Read(p)
	c.N.Add(int64(n))
	return n, err
}
