package main

import (
	"bufio"
	"finonex/internal/console"
	"fmt"
	"io"
	"math/rand/v2"
	"os"
	"path/filepath"
	"testing"
)

// BenchmarkSum measures the processor's read, validate and sum stage on a 1,000,000-line file
// of 50,000 users, the proportions of the benchmark suite's file (profile it with
// -cpuprofile); BenchmarkSuite in the repository root compares the stage with encoding/json.
func BenchmarkSum(b *testing.B) {
	const lines = 1_000_000
	path := filepath.Join(b.TempDir(), "events.jsonl")
	f, err := os.Create(path)
	if err != nil {
		b.Fatal(err)
	}
	w := bufio.NewWriter(f)
	rng := rand.New(rand.NewPCG(1, 1))
	for range lines {
		fmt.Fprintf(w, "{\"userId\": \"user%d\", \"name\": \"add_revenue\", \"value\": %d}\n", rng.IntN(50_000), rng.IntN(10000))
	}
	w.Flush()
	f.Close()
	info, _ := os.Stat(path)
	p := &processor{con: console.New(io.Discard, true)}
	b.SetBytes(info.Size())
	for b.Loop() {
		s, err := p.sum(path)
		if err != nil || s.events != lines {
			b.Fatalf("sum = %d events, %v", s.events, err)
		}
	}
}
