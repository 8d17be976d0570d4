package spool_test

import (
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"testing"

	"finonex/internal/spool"
)

// TestOpenWhileClaimed opens the live file with OS.OpenAppend, which the Writer uses at Open
// and after every claim, while the file keeps being created (by another writer, or as it
// was before the server started) and claimed (by the processor). OpenAppend creates the
// file when it is missing, so the file being renamed away at that very moment must not make
// it fail: spool.Open would fail and the server not start, or a batch would get a 5xx.
func TestOpenWhileClaimed(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "events.jsonl")
	stop, done := make(chan struct{}), make(chan struct{})
	go func() {
		defer close(done)
		for {
			select {
			case <-stop:
				return
			default:
			}
			if f, err := os.OpenFile(path, os.O_CREATE|os.O_WRONLY, 0o644); err == nil {
				f.Close()
			}
			os.Rename(path, filepath.Join(dir, "claimed.jsonl"))
		}
	}()
	defer func() {
		close(stop)
		<-done
	}()
	n := 20000
	if testing.Short() {
		n = 2000
	}
	for i := range n {
		f, _, err := spool.OS{}.OpenAppend(path)
		if errors.Is(err, fs.ErrNotExist) {
			t.Fatalf("OpenAppend(%s) #%d while the file is being created and claimed = %v; want it opened, or created", path, i, err)
		}
		if err != nil {
			t.Fatalf("OpenAppend(%s): %v", path, err)
		}
		if err := f.Close(); err != nil {
			t.Fatalf("Close: %v", err)
		}
	}
}
