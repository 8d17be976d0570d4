package spool

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
)

// ErrBusy is returned by Take when another processor holds the claimed file.
var ErrBusy = errors.New("another processor is applying this file")

// Lease is a processor's exclusive hold on a claimed file, so that two processors never work
// on the same file at once. The kernel drops it when the process dies, so a file whose
// processor was killed can be taken over at once.
type Lease struct {
	f *os.File
}

// Take leases the claimed file and fences off its writers (see Fence). It returns ErrBusy
// when another processor holds the file, and an error satisfying errors.Is(err,
// fs.ErrNotExist) when the file is gone (another processor finished it).
func Take(claimed string) (*Lease, error) {
	f, err := os.OpenFile(claimed, os.O_RDWR, 0) // a write lock needs a writable descriptor
	if err != nil {
		return nil, fmt.Errorf("lease %s: %w", claimed, err)
	}
	if err := leaseLock(f); err != nil {
		f.Close()
		if errors.Is(err, ErrBusy) {
			return nil, ErrBusy
		}
		return nil, fmt.Errorf("lease %s: %w", claimed, err)
	}
	// A processor that held the file before us may have finished it and renamed it to its
	// processed name after we opened it: then the lease is on the wrong name.
	if same, err := (OS{}).SameFile(claimed, osFile{f}); err != nil || !same {
		f.Close()
		if err == nil {
			err = fs.ErrNotExist
		}
		return nil, fmt.Errorf("lease %s: %w", claimed, err)
	}
	if err := fence(f); err != nil {
		f.Close()
		return nil, fmt.Errorf("fence %s: %w", claimed, err)
	}
	return &Lease{f: f}, nil
}

// Release gives the file up.
func (l *Lease) Release() error { return l.f.Close() }
