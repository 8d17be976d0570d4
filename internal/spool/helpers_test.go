package spool_test

// Helpers shared by the spool tests. The in-memory file system is in memfs_test.go.

import (
	"fmt"
	"slices"
	"strings"
	"testing"

	"finonex/internal/spool"
)

// abbrev shortens long file contents in failure messages.
func abbrev(s string) string {
	if len(s) <= 40 {
		return fmt.Sprintf("%q", s)
	}
	return fmt.Sprintf("%q...%q (%d bytes)", s[:16], s[len(s)-16:], len(s))
}

// sameLines reports whether got holds exactly want, in any order.
func sameLines(got []string, want ...string) bool {
	return slices.Equal(slices.Sorted(slices.Values(got)), slices.Sorted(slices.Values(want)))
}

func openMem(t *testing.T, disk *memFS, opts spool.Options) *spool.Writer {
	t.Helper()
	opts.FS = disk
	w, err := spool.Open(memLive, opts)
	if err != nil {
		t.Fatalf("Open(%s): %v", memLive, err)
	}
	t.Cleanup(func() { w.Close() })
	return w
}

// splitLines splits content into its complete lines and what follows the last "\n".
func splitLines(content string) (lines []string, tail string) {
	i := strings.LastIndexByte(content, '\n')
	complete, tail := content[:i+1], content[i+1:]
	if complete == "" {
		return nil, tail
	}
	return strings.Split(strings.TrimSuffix(complete, "\n"), "\n"), tail
}
