package spool

import (
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"regexp"
	"sort"
	"strings"
	"syscall"
	"time"
)

// A live file dir/NAME.EXT is claimed as dir/NAME_<time>-<random>.EXT, then renamed to
// dir/NAME_<time>-<random>_processed.EXT once applied; lines that failed the contract go to
// dir/NAME_<time>-<random>_rejected.EXT. The random part keeps two claims made in the same
// instant, by two processes, apart.
const claimTime = "20060102T150405.000000000Z"

// claimPattern matches what Claim adds to a name.
const claimPattern = `_\d{8}T\d{6}\.\d{9}Z-[0-9a-f]{8}`

// claimedName matches the end of a claimed name: the claim part (group 1), an optional
// _processed or _rejected (group 2), and the extension of the live file, if it had one.
var claimedName = regexp.MustCompile(`(` + claimPattern + `)(_processed|_rejected)?(?:\.[^.]*)?$`)

// ClaimName returns a new, unique name to claim the file at path under.
func ClaimName(path string, now time.Time) (string, error) {
	var b [4]byte
	if _, err := rand.Read(b[:]); err != nil {
		return "", err
	}
	base, ext := splitExt(path)
	return base + "_" + now.UTC().Format(claimTime) + "-" + hex.EncodeToString(b[:]) + ext, nil
}

// IsClaimed reports whether path is a claimed file: named by Claim, not yet processed.
func IsClaimed(path string) bool {
	m := claimedName.FindStringSubmatchIndex(filepath.Base(path))
	return m != nil && m[4] < 0 // no _processed or _rejected
}

// ProcessedName is the name a claimed file gets once it has been applied.
func ProcessedName(claimed string) string { return withSuffix(claimed, "_processed") }

// RejectedName is the name of the file that holds a claimed file's invalid lines.
func RejectedName(claimed string) string { return withSuffix(claimed, "_rejected") }

// withSuffix puts suffix right after the claim part of the name, before any extension. The
// claim part itself holds a ".", so filepath.Ext cannot be trusted to find the extension.
func withSuffix(claimed, suffix string) string {
	dir, name := filepath.Split(claimed)
	m := claimedName.FindStringSubmatchIndex(name)
	if m == nil {
		base, ext := splitExt(claimed)
		return base + suffix + ext
	}
	return dir + name[:m[3]] + suffix + name[m[3]:]
}

func splitExt(path string) (base, ext string) {
	ext = filepath.Ext(path)
	return strings.TrimSuffix(path, ext), ext
}

// Claim takes the file at path away from its writers: it renames it to a new claimed name,
// makes the rename durable, and fences off any writer still appending to it (see the package
// comment). It returns the claimed path, or "" when there is no file at path.
func Claim(path string, now time.Time) (string, error) {
	claimed, err := ClaimName(path, now)
	if err != nil {
		return "", fmt.Errorf("name claim for %s: %w", path, err)
	}
	if err := os.Rename(path, claimed); err != nil {
		if errors.Is(err, fs.ErrNotExist) {
			return "", nil
		}
		return "", fmt.Errorf("claim %s: %w", path, err)
	}
	// The claimed name must be durable before anything is applied under it, or a crash
	// could bring the file back under its live name to be claimed and applied again.
	if err := syncDir(filepath.Dir(path)); err != nil {
		return "", fmt.Errorf("claim %s: %w", path, err)
	}
	if err := Fence(claimed); err != nil {
		return "", err
	}
	return claimed, nil
}

// Fence waits until no writer is appending to the claimed file: it takes the writers' lock
// and lets it go. After Fence, the file's content is final.
func Fence(claimed string) error {
	f, err := os.Open(claimed)
	if err != nil {
		return fmt.Errorf("fence %s: %w", claimed, err)
	}
	defer f.Close()
	if err := fence(f); err != nil {
		return fmt.Errorf("fence %s: %w", claimed, err)
	}
	return nil
}

func fence(f *os.File) error {
	if err := flock(f, syscall.LOCK_EX); err != nil {
		return err
	}
	return flock(f, syscall.LOCK_UN)
}

// Leftovers returns the claimed files beside the live file at path that were never marked
// processed, oldest first: what an interrupted processor left behind.
func Leftovers(path string) ([]string, error) {
	dir := filepath.Dir(path)
	entries, err := os.ReadDir(dir)
	if err != nil {
		return nil, fmt.Errorf("list %s: %w", dir, err)
	}
	base, ext := splitExt(filepath.Base(path))
	mine := regexp.MustCompile("^" + regexp.QuoteMeta(base) + claimPattern + regexp.QuoteMeta(ext) + "$")
	var found []string
	for _, e := range entries {
		if e.Type().IsRegular() && mine.MatchString(e.Name()) {
			found = append(found, filepath.Join(dir, e.Name()))
		}
	}
	sort.Strings(found) // the claim time sorts
	return found, nil
}

// MarkProcessed renames an applied claimed file to its processed name, durably.
func MarkProcessed(claimed string) (string, error) {
	done := ProcessedName(claimed)
	if err := os.Rename(claimed, done); err != nil {
		return "", fmt.Errorf("mark %s processed: %w", claimed, err)
	}
	if err := syncDir(filepath.Dir(claimed)); err != nil {
		return "", fmt.Errorf("mark %s processed: %w", claimed, err)
	}
	return done, nil
}

// Recent returns the live file at path and every claimed or processed file beside it that
// was modified at or after since: the files that may hold recently acknowledged lines.
func Recent(path string, since time.Time) ([]string, error) {
	dir := filepath.Dir(path)
	entries, err := os.ReadDir(dir)
	if err != nil {
		return nil, fmt.Errorf("list %s: %w", dir, err)
	}
	base, ext := splitExt(filepath.Base(path))
	ours := regexp.MustCompile("^" + regexp.QuoteMeta(base) + "(" + claimPattern + "(_processed)?)?" + regexp.QuoteMeta(ext) + "$")
	var found []string
	for _, e := range entries {
		if !e.Type().IsRegular() || !ours.MatchString(e.Name()) {
			continue
		}
		info, err := e.Info()
		if errors.Is(err, fs.ErrNotExist) {
			continue // claimed or renamed meanwhile
		}
		if err != nil {
			return nil, fmt.Errorf("stat %s: %w", e.Name(), err)
		}
		if !info.ModTime().Before(since) {
			found = append(found, filepath.Join(dir, e.Name()))
		}
	}
	sort.Strings(found)
	return found, nil
}
