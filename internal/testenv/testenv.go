// Package testenv is what the module's tests share beyond PostgreSQL (see pgtest): the one
// seed of every randomized test, a log buffer a program and its test may use at once,
// polling for a condition instead of a fixed sleep, and reading and writing whole files.
package testenv

import (
	"bytes"
	"math/rand/v2"
	"os"
	"strconv"
	"sync"
	"testing"
	"time"
)

// EnvVar names the variable that fixes the seed.
const EnvVar = "FINONEX_SEED"

// Seed returns the test's seed: FINONEX_SEED when set, else a new one, logged so that a
// failure can be replayed with FINONEX_SEED=<seed>. One variable replays every package's
// randomized tests.
func Seed(t testing.TB) uint64 {
	t.Helper()
	if v := os.Getenv(EnvVar); v != "" {
		s, err := strconv.ParseUint(v, 10, 64)
		if err != nil {
			t.Fatalf("%s=%q: %v", EnvVar, v, err)
		}
		t.Logf("seed %d (from %s)", s, EnvVar)
		return s
	}
	s := rand.Uint64()
	t.Logf("seed %d (replay with %s=%d)", s, EnvVar, s)
	return s
}

// Buffer is a bytes.Buffer that a program's logger and its test may use at once.
type Buffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *Buffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *Buffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// WaitFor polls cond until it holds, failing the test after 30 s: readiness, not a fixed
// sleep.
func WaitFor(t testing.TB, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(200 * time.Microsecond)
	}
}

// WriteFile writes content to path (mode 0644), failing the test on an error.
func WriteFile(t testing.TB, path, content string) {
	t.Helper()
	if err := os.WriteFile(path, []byte(content), 0o644); err != nil {
		t.Fatal(err)
	}
}

// ReadFile returns the content of path, failing the test on an error.
func ReadFile(t testing.TB, path string) string {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}
