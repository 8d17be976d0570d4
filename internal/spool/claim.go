package spool

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"sort"
	"time"
)

// Claim takes the file at path away from its writers: it renames it to a new claimed name,
// makes the rename durable, and fences off any writer still appending to it (see the package
// comment). It returns the claimed path, or "" when there is no file at path. The claimed
// file may be gone by the time Claim returns, finished by another processor.
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
	// The claimed file may be gone already: another processor listed it as a leftover, took
	// it (Take fences too), applied it and marked it processed. Then there is nothing left to
	// fence, and the caller's Take finds it gone.
	if err := Fence(claimed); err != nil && !errors.Is(err, fs.ErrNotExist) {
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
	if err := lockShared(f); err != nil {
		return err
	}
	return unlock(f)
}

// Leftovers returns the claimed files beside the live file at path that were never marked
// processed, oldest first: what an interrupted processor left behind.
func Leftovers(path string) ([]string, error) {
	fam := familyOf(path)
	dir := fam.dir
	entries, err := os.ReadDir(dir)
	if err != nil {
		return nil, fmt.Errorf("list %s: %w", dir, err)
	}
	var found []string
	for _, e := range entries {
		if e.Type().IsRegular() && fam.has(e.Name(), Claimed) {
			found = append(found, filepath.Join(dir, e.Name()))
		}
	}
	sort.Strings(found) // the claim time sorts
	return found, nil
}

// MarkProcessed renames an applied claimed file to its processed name, durably.
func MarkProcessed(claimed string) (string, error) {
	return mark(claimed, ProcessedName(claimed), "processed")
}

// MarkDuplicate renames a claimed file whose bytes were applied before, as another file, to
// its duplicate name, durably: it is never applied, and no later run picks it up.
func MarkDuplicate(claimed string) (string, error) {
	return mark(claimed, DuplicateName(claimed), "duplicate")
}

func mark(claimed, to, as string) (string, error) {
	if err := os.Rename(claimed, to); err != nil {
		return "", fmt.Errorf("mark %s %s: %w", claimed, as, err)
	}
	if err := syncDir(filepath.Dir(claimed)); err != nil {
		return "", fmt.Errorf("mark %s %s: %w", claimed, as, err)
	}
	return to, nil
}

// Recent returns the live file at path and every claimed or processed file beside it that
// was modified at or after since: the files that may hold recently acknowledged lines.
func Recent(path string, since time.Time) ([]string, error) {
	fam := familyOf(path)
	dir := fam.dir
	entries, err := os.ReadDir(dir)
	if err != nil {
		return nil, fmt.Errorf("list %s: %w", dir, err)
	}
	var found []string
	for _, e := range entries {
		if !e.Type().IsRegular() || !fam.has(e.Name(), Live, Claimed, Processed) {
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
