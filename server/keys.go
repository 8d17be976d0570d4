package main

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"time"

	"finonex/internal/event"
	"finonex/internal/idempotency"
	"finonex/internal/spool"
)

// loadKeys fills the idempotency window from the events log: every line of the live file,
// and of the claimed and processed files beside it that changed within the window, carries
// the key it was acknowledged under. A file's modification time stands in for its lines'
// times, so keys are kept a little longer than the window, never shorter.
//
// A processor may claim the live file between the listing and the reading: then the
// listing is taken again (keys loaded twice are simply remembered once).
func loadKeys(keys *idempotency.Window, live string, window time.Duration, now time.Time) (int, error) {
	for attempt := 1; ; attempt++ {
		n, err := loadKeysOnce(keys, live, window, now)
		if !errors.Is(err, fs.ErrNotExist) || attempt == 10 {
			return n, err
		}
	}
}

func loadKeysOnce(keys *idempotency.Window, live string, window time.Duration, now time.Time) (int, error) {
	files, err := spool.Recent(live, now.Add(-window))
	if err != nil {
		return 0, err
	}
	n := 0
	for _, path := range files {
		f, err := os.Open(path)
		if errors.Is(err, fs.ErrNotExist) && spool.IsClaimed(path) {
			path = spool.ProcessedName(path) // a processor finished it meanwhile
			f, err = os.Open(path)
		}
		if err != nil {
			return n, fmt.Errorf("open %s: %w", path, err)
		}
		info, err := f.Stat()
		if err != nil {
			f.Close()
			return n, fmt.Errorf("stat %s: %w", path, err)
		}
		sc := event.NewScanner(f)
		var canonical []byte
		for line, err := range sc.Lines() {
			var r event.Record
			if err == nil {
				r, err = event.ParseRecord(line)
			}
			if err != nil || r.Key == "" {
				continue // never acknowledged under a key
			}
			canonical = event.AppendJSON(canonical[:0], r) // the line as the handler wrote it, key included
			keys.Load(r.Key, idempotency.Fingerprint(canonical), info.ModTime())
			n++
		}
		err = sc.Err()
		f.Close()
		if err != nil {
			return n, fmt.Errorf("read %s: %w", path, err)
		}
	}
	return n, nil
}
