//go:build !linux

package spool

// The handoff needs Linux: fdatasync(2), flock(2) and open file description locks. On any
// other system the build stops here, with a name that says why.
var _ = finonexNeedsLinux_fdatasync_flock_OFDLocks
