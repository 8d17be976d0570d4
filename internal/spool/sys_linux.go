//go:build linux

package spool

import (
	"errors"
	"os"
	"syscall"
)

// The system calls the handoff relies on. They are Linux's: fdatasync(2), flock(2), and
// open file description (OFD) record locks, which are Linux's alone.

// fdatasync makes f's written data durable, without its modification time.
func fdatasync(f *os.File) error {
	return ignoringEINTR(func() error { return syscall.Fdatasync(int(f.Fd())) })
}

// lockShared takes the writers' lock, flock(LOCK_EX), waiting for it. Writers and the
// processor's fence take the same lock; the name says it is shared by both sides.
func lockShared(f *os.File) error {
	return ignoringEINTR(func() error { return syscall.Flock(int(f.Fd()), syscall.LOCK_EX) })
}

// unlock releases lockShared's lock.
func unlock(f *os.File) error {
	return ignoringEINTR(func() error { return syscall.Flock(int(f.Fd()), syscall.LOCK_UN) })
}

// fOFDSetLK is F_OFD_SETLK (Linux 3.15+): a record lock owned by the open file, not the
// process. Such locks are independent of the writers' flock, so a processor can hold one for
// as long as it works without ever making the server wait.
const fOFDSetLK = 37

// leaseLock takes a processor's lease lock on the whole file without waiting: ErrBusy when
// another open file holds it. f must be open for writing.
func leaseLock(f *os.File) error {
	lk := syscall.Flock_t{Type: syscall.F_WRLCK} // the whole file; Pid must be 0 for OFD locks
	err := syscall.FcntlFlock(f.Fd(), fOFDSetLK, &lk)
	if errors.Is(err, syscall.EAGAIN) || errors.Is(err, syscall.EACCES) {
		return ErrBusy
	}
	return err
}

func ignoringEINTR(fn func() error) error {
	for {
		err := fn()
		if !errors.Is(err, syscall.EINTR) {
			return err
		}
	}
}

// Writable reports whether this process may create files in dir (access(2) with W_OK).
func (OS) Writable(dir string) bool { return syscall.Access(dir, 2 /* W_OK */) == nil }
