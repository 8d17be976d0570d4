package spool

import (
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
)

// FS is what a Writer needs of the file system. OS is the real one; tests use one that
// loses every unsynced byte in a simulated crash.
type FS interface {
	// OpenAppend opens path for appending, creating it when missing, and says whether it did.
	OpenAppend(path string) (f File, created bool, err error)
	// SameFile reports whether path still names f. A missing path is not an error.
	SameFile(path string, f File) (bool, error)
	// SyncDir makes the directory's entries durable.
	SyncDir(dir string) error
}

// File is an open live file.
type File interface {
	io.Writer
	io.ReaderAt
	Lock() error   // exclusive advisory lock, shared with other processes (flock)
	Unlock() error //
	Size() (int64, error)
	Truncate(size int64) error
	Sync() error // data durable on disk (fdatasync)
	Close() error
}

// OS is the real file system.
type OS struct{}

// OpenAppend implements FS.
func (OS) OpenAppend(path string) (File, bool, error) {
	for {
		f, err := os.OpenFile(path, os.O_RDWR|os.O_APPEND|os.O_CREATE|os.O_EXCL, 0o644)
		if err == nil {
			return osFile{f}, true, nil
		}
		if !errors.Is(err, fs.ErrExist) {
			return nil, false, err
		}
		f, err = os.OpenFile(path, os.O_RDWR|os.O_APPEND, 0)
		if err == nil {
			return osFile{f}, false, nil
		}
		if !errors.Is(err, fs.ErrNotExist) {
			return nil, false, err
		}
		// Claimed between the two opens: create it after all.
	}
}

// SameFile implements FS.
func (OS) SameFile(path string, f File) (bool, error) {
	onDisk, err := os.Stat(path)
	if errors.Is(err, fs.ErrNotExist) {
		return false, nil
	}
	if err != nil {
		return false, err
	}
	held, err := f.(osFile).Stat()
	if err != nil {
		return false, err
	}
	return os.SameFile(onDisk, held), nil
}

// SyncDir implements FS.
func (OS) SyncDir(dir string) error { return syncDir(dir) }

func syncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	if err := d.Sync(); err != nil {
		d.Close()
		return fmt.Errorf("sync %s: %w", dir, err)
	}
	return d.Close()
}

type osFile struct{ *os.File }

func (f osFile) Lock() error   { return lockShared(f.File) }
func (f osFile) Unlock() error { return unlock(f.File) }

func (f osFile) Size() (int64, error) {
	fi, err := f.Stat()
	if err != nil {
		return 0, err
	}
	return fi.Size(), nil
}

func (f osFile) Sync() error { return fdatasync(f.File) }
