package spool_test

import (
	"bytes"
	"errors"
	"io"
	"math/rand/v2"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"sort"
	"sync"
	"sync/atomic"
	"syscall"

	"finonex/internal/spool"
)

// errCrashed is what every operation on a crashed memFS returns: the process that used it
// is gone with the machine.
var errCrashed = errors.New("memfs: machine crashed")

// memFS is an in-memory spool.FS that knows what has reached the disk. A file's content is
// durable once Sync returns; a file's name (its creation, or a rename) is durable once its
// directory is synced. crash returns the disk as a reboot would find it: every file back to
// its last synced content (plus, at random, part of what was written after it, as a torn
// tail), and only the names that were synced.
type memFS struct {
	mu      sync.Mutex
	dead    bool
	names   map[string]*memNode // the directory as running processes see it
	durable map[string]*memNode // the directory as of the last SyncDir

	// fail, when set, is asked before every operation that can fail ("open", "write",
	// "sync", "truncate", "syncdir", "lock", "unlock"); true makes it fail. It runs under mu.
	fail func(op string) bool
	// beforeSync, when set, runs at the start of every File.Sync, outside mu, so that a
	// test can hold the writer inside a sync.
	beforeSync func()

	// syncFailPersists makes a failing Sync write the data to disk all the same, as a
	// sync that fails late may: the writer must then make its truncate durable itself.
	syncFailPersists bool

	writes    []int    // size of every successful or short write
	syncs     int      // successful File.Syncs
	syncDirs  []string // successful SyncDirs
	syncedLog [][]byte // content at every successful File.Sync, when logSyncs
	logSyncs  bool
}

type memNode struct {
	data   []byte
	synced []byte
	lock   chan struct{} // holds a token while locked
}

func newNode(data []byte) *memNode {
	return &memNode{data: data, synced: slices.Clone(data), lock: make(chan struct{}, 1)}
}

func newMemFS() *memFS {
	return &memFS{names: map[string]*memNode{}, durable: map[string]*memNode{}}
}

type memFile struct {
	fs     *memFS
	n      *memNode
	closed bool        // guarded by fs.mu
	locked atomic.Bool // this handle holds n.lock; Close releases it, as close(2) does a flock
}

// failNext returns a fail hook that fails the next n operations op, and no others.
func failNext(op string, n int) func(string) bool { return failNth(op, 0, n) }

// failNth returns a fail hook that lets skip operations op succeed, then fails n of them.
func failNth(op string, skip, n int) func(string) bool {
	return func(o string) bool {
		if o != op {
			return false
		}
		if skip > 0 {
			skip--
			return false
		}
		if n > 0 {
			n--
			return true
		}
		return false
	}
}

// failAll combines fail hooks: an operation fails when any of them says so. Each hook is
// asked every time, so counters in them advance as they would alone.
func failAll(hooks ...func(string) bool) func(string) bool {
	return func(op string) bool {
		failed := false
		for _, h := range hooks {
			if h(op) {
				failed = true
			}
		}
		return failed
	}
}

func (m *memFS) setFail(f func(string) bool) {
	m.mu.Lock()
	m.fail = f
	m.mu.Unlock()
}

func (m *memFS) setBeforeSync(f func()) {
	m.mu.Lock()
	m.beforeSync = f
	m.mu.Unlock()
}

// failing reports whether op must fail now. Called with mu held.
func (m *memFS) failing(op string) bool { return m.fail != nil && m.fail(op) }

func (m *memFS) OpenAppend(path string) (spool.File, bool, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.dead {
		return nil, false, errCrashed
	}
	if m.failing("open") {
		return nil, false, syscall.EIO
	}
	n := m.names[path]
	created := n == nil
	if created {
		n = newNode(nil)
		m.names[path] = n
	}
	return &memFile{fs: m, n: n}, created, nil
}

func (m *memFS) SameFile(path string, f spool.File) (bool, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.dead {
		return false, errCrashed
	}
	return m.names[path] == f.(*memFile).n, nil
}

func (m *memFS) SyncDir(dir string) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.dead {
		return errCrashed
	}
	if m.failing("syncdir") {
		return syscall.EIO
	}
	m.syncDirLocked(dir)
	m.syncDirs = append(m.syncDirs, dir)
	return nil
}

func (m *memFS) syncDirLocked(dir string) {
	for p := range m.durable {
		if filepath.Dir(p) == dir {
			delete(m.durable, p)
		}
	}
	for p, n := range m.names {
		if filepath.Dir(p) == dir {
			m.durable[p] = n
		}
	}
}

// op checks that f may be used, with mu held.
func (f *memFile) op() error {
	if f.fs.dead {
		return errCrashed
	}
	if f.closed {
		return os.ErrClosed
	}
	return nil
}

func (f *memFile) Write(p []byte) (int, error) {
	f.fs.mu.Lock()
	defer f.fs.mu.Unlock()
	if err := f.op(); err != nil {
		return 0, err
	}
	if f.fs.failing("write") {
		// A short write, as when the disk fills up in the middle of the batch.
		k := len(p) / 2
		f.n.data = append(f.n.data, p[:k]...)
		f.fs.writes = append(f.fs.writes, k)
		return k, syscall.ENOSPC
	}
	f.n.data = append(f.n.data, p...)
	f.fs.writes = append(f.fs.writes, len(p))
	return len(p), nil
}

func (f *memFile) ReadAt(p []byte, off int64) (int, error) {
	f.fs.mu.Lock()
	defer f.fs.mu.Unlock()
	if err := f.op(); err != nil {
		return 0, err
	}
	if off >= int64(len(f.n.data)) {
		return 0, io.EOF
	}
	n := copy(p, f.n.data[off:])
	if n < len(p) {
		return n, io.EOF
	}
	return n, nil
}

func (f *memFile) Size() (int64, error) {
	f.fs.mu.Lock()
	defer f.fs.mu.Unlock()
	if err := f.op(); err != nil {
		return 0, err
	}
	return int64(len(f.n.data)), nil
}

func (f *memFile) Truncate(size int64) error {
	f.fs.mu.Lock()
	defer f.fs.mu.Unlock()
	if err := f.op(); err != nil {
		return err
	}
	if f.fs.failing("truncate") {
		return syscall.EIO
	}
	if size <= int64(len(f.n.data)) {
		f.n.data = f.n.data[:size:size]
	} else {
		f.n.data = append(f.n.data, make([]byte, size-int64(len(f.n.data)))...)
	}
	return nil
}

func (f *memFile) Sync() error {
	f.fs.mu.Lock()
	hook := f.fs.beforeSync
	f.fs.mu.Unlock()
	if hook != nil {
		hook()
	}
	f.fs.mu.Lock()
	defer f.fs.mu.Unlock()
	if err := f.op(); err != nil {
		return err
	}
	if f.fs.failing("sync") {
		if f.fs.syncFailPersists {
			f.n.synced = slices.Clone(f.n.data)
		}
		return syscall.EIO
	}
	f.n.synced = slices.Clone(f.n.data)
	f.fs.syncs++
	if f.fs.logSyncs {
		f.fs.syncedLog = append(f.fs.syncedLog, slices.Clone(f.n.data))
	}
	return nil
}

func (f *memFile) Lock() error {
	f.fs.mu.Lock()
	err := f.op()
	if err == nil && f.fs.failing("lock") {
		err = syscall.EIO
	}
	f.fs.mu.Unlock()
	if err != nil {
		return err
	}
	runtime.Gosched() // let a claim slip in, if the writer leaves room for one
	f.n.lock <- struct{}{}
	f.locked.Store(true)
	return nil
}

func (f *memFile) Unlock() error {
	if !f.locked.Load() {
		return errors.New("memfs: unlock of a file that is not locked")
	}
	f.fs.mu.Lock()
	failed := f.fs.failing("unlock")
	f.fs.mu.Unlock()
	if failed { // the lock stays held
		return syscall.EIO
	}
	f.locked.Store(false)
	<-f.n.lock
	f.fs.mu.Lock()
	defer f.fs.mu.Unlock()
	if f.fs.dead {
		return errCrashed
	}
	return nil
}

func (f *memFile) Close() error {
	if f.locked.CompareAndSwap(true, false) {
		<-f.n.lock
	}
	f.fs.mu.Lock()
	defer f.fs.mu.Unlock()
	if f.closed {
		return os.ErrClosed
	}
	f.closed = true
	if f.fs.dead {
		return errCrashed
	}
	return nil
}

// create puts a file with the given content at path, synced and with its name durable, as
// if it had been there since before the test.
func (m *memFS) create(path string, content string) {
	m.mu.Lock()
	defer m.mu.Unlock()
	n := newNode([]byte(content))
	m.names[path] = n
	m.durable[path] = n
}

// rename moves a file, as the processor's claim does; it is durable only once the directory
// is synced (claimDurably does both).
func (m *memFS) rename(from, to string) bool {
	m.mu.Lock()
	defer m.mu.Unlock()
	n := m.names[from]
	if n == nil {
		return false
	}
	delete(m.names, from)
	m.names[to] = n
	return true
}

// claim is spool.Claim on a memFS: rename, sync the directory, fence, then read. ok is
// false when there is no file at from.
func (m *memFS) claim(from, to string) (content []byte, ok bool, err error) {
	m.mu.Lock()
	if m.dead {
		m.mu.Unlock()
		return nil, false, errCrashed
	}
	n := m.names[from]
	if n == nil {
		m.mu.Unlock()
		return nil, false, nil
	}
	delete(m.names, from)
	m.names[to] = n
	m.syncDirLocked(filepath.Dir(to))
	m.mu.Unlock()

	n.lock <- struct{}{} // Fence: wait out a writer mid-batch.
	<-n.lock

	m.mu.Lock()
	defer m.mu.Unlock()
	if m.dead {
		return nil, false, errCrashed
	}
	return slices.Clone(n.data), true, nil
}

// content returns what running processes see at path, even after a crash.
func (m *memFS) content(path string) (string, bool) {
	m.mu.Lock()
	defer m.mu.Unlock()
	n := m.names[path]
	if n == nil {
		return "", false
	}
	return string(n.data), true
}

// syncedContent returns what a crash would surely keep of the file at path.
func (m *memFS) syncedContent(path string) string {
	m.mu.Lock()
	defer m.mu.Unlock()
	if n := m.names[path]; n != nil {
		return string(n.synced)
	}
	return ""
}

// files returns every file's current content by name.
func (m *memFS) files() map[string]string {
	m.mu.Lock()
	defer m.mu.Unlock()
	out := make(map[string]string, len(m.names))
	for p, n := range m.names {
		out[p] = string(n.data)
	}
	return out
}

func (m *memFS) counters() (writes []int, syncs int, syncDirs []string) {
	m.mu.Lock()
	defer m.mu.Unlock()
	return slices.Clone(m.writes), m.syncs, slices.Clone(m.syncDirs)
}

// crash stops this machine for good (every later operation on it fails) and returns its
// disk as the reboot finds it. With rng nil, files keep exactly their synced content; with
// rng, a file may also keep a random part of what was appended after its last sync, which
// is how torn tails appear.
func (m *memFS) crash(rng *rand.Rand) *memFS {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.dead = true
	after := newMemFS()
	reborn := map[*memNode]*memNode{}
	paths := make([]string, 0, len(m.durable))
	for p := range m.durable {
		paths = append(paths, p)
	}
	sort.Strings(paths) // so that a seed replays the same crash
	for _, p := range paths {
		n := m.durable[p]
		nn := reborn[n]
		if nn == nil {
			keep := slices.Clone(n.synced)
			if rng != nil && len(n.data) > len(n.synced) && bytes.HasPrefix(n.data, n.synced) {
				extra := n.data[len(n.synced):]
				keep = append(keep, extra[:rng.IntN(len(extra)+1)]...)
			}
			nn = newNode(keep)
			reborn[n] = nn
		}
		after.names[p] = nn
		after.durable[p] = nn
	}
	return after
}
