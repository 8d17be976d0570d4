package main

import (
	"context"
	"finonex/internal/testenv"

	"fmt"
	"io"
	"math/rand/v2"
	"os"
	"path/filepath"
	"runtime"
	"syscall"
	"testing"
	"time"

	"finonex/internal/console"
)

// genBenchFile writes lines events over users users in the benchmark suite's format (see
// genEvents in the repository root) and returns the file's path and size.
func genBenchFile(b *testing.B, lines, users int) (string, int64) {
	b.Helper()
	path := filepath.Join(b.TempDir(), "events.jsonl")
	f, err := os.Create(path)
	if err != nil {
		b.Fatal(err)
	}
	if err := testenv.WriteEvents(f, rand.New(rand.NewPCG(1, 2)), lines, users); err != nil {
		b.Fatal(err)
	}
	if err := f.Close(); err != nil {
		b.Fatal(err)
	}
	info, err := os.Stat(path)
	if err != nil {
		b.Fatal(err)
	}
	return path, info.Size()
}

// BenchmarkSum measures the processor's read, validate and sum stage on a 1,000,000-line file
// of 50,000 users, in one pass and in chunks on every core (profile it with -cpuprofile);
// BenchmarkSuite in the repository root compares the stage with encoding/json.
func BenchmarkSum(b *testing.B) {
	const lines = 1_000_000
	path, size := genBenchFile(b, lines, 50_000)
	workers := min(runtime.GOMAXPROCS(0), maxWorkers)
	for _, bm := range []struct {
		name            string
		workers, chunks int
	}{
		{"serial", 1, 1},
		{fmt.Sprintf("parallel-%d", workers), workers, 0},
	} {
		b.Run(bm.name, func(b *testing.B) {
			p := &processor{con: console.New(io.Discard, true)}
			b.SetBytes(size)
			for b.Loop() {
				s, err := p.sumWith(context.Background(), path, bm.workers, bm.chunks, parallelMin)
				if err != nil || s.events != lines {
					b.Fatalf("sum = %d events, %v", s.events, err)
				}
			}
		})
	}
}

// BenchmarkSumVersusJSON runs, in each iteration and on the same file, the serial sum, the
// parallel sum (what the processor runs) and the benchmark suite's ceiling (bufio.Scanner,
// encoding/json and a map doing only the sum), and reports each one's time and the ratios:
// json/parallel is the suite's "processor: read, validate, sum" ratio. The workload is the
// suite's 2,000,000 events, over 1,000 and over 100,000 users.
func BenchmarkSumVersusJSON(b *testing.B) {
	const lines = 2_000_000
	for _, users := range []int{1_000, 100_000} {
		b.Run(fmt.Sprintf("users-%d", users), func(b *testing.B) {
			path, size := genBenchFile(b, lines, users)
			p := &processor{con: console.New(io.Discard, true)}
			workers := min(runtime.GOMAXPROCS(0), maxWorkers)
			var serial, parallel, ceiling, serialCPU, parallelCPU time.Duration
			b.SetBytes(size)
			for b.Loop() {
				start, cpu := time.Now(), cpuTime()
				s, err := p.sumWith(context.Background(), path, 1, 1, parallelMin)
				serial += time.Since(start)
				serialCPU += cpuTime() - cpu
				if err != nil || s.events != lines {
					b.Fatalf("serial sum = %d events, %v", s.events, err)
				}
				start, cpu = time.Now(), cpuTime()
				s, err = p.sum(context.Background(), path)
				parallel += time.Since(start)
				parallelCPU += cpuTime() - cpu
				if err != nil || s.events != lines {
					b.Fatalf("sum = %d events, %v", s.events, err)
				}
				start = time.Now()
				if n := jsonSum(b, path); n != users {
					b.Fatalf("jsonSum = %d users; want %d", n, users)
				}
				ceiling += time.Since(start)
			}
			n := float64(b.N)
			b.ReportMetric(serial.Seconds()*1000/n, "serial-ms")
			b.ReportMetric(parallel.Seconds()*1000/n, fmt.Sprintf("parallel%d-ms", workers))
			b.ReportMetric(ceiling.Seconds()*1000/n, "json-ms")
			b.ReportMetric(serialCPU.Seconds()*1000/n, "serial-cpu-ms")
			b.ReportMetric(parallelCPU.Seconds()*1000/n, "parallel-cpu-ms")
			// The cores the parallel sum got: on a busy machine, fewer than GOMAXPROCS.
			b.ReportMetric(parallelCPU.Seconds()/parallel.Seconds(), "parallel-cores")
			b.ReportMetric(serial.Seconds()/parallel.Seconds(), "serial/parallel")
			b.ReportMetric(ceiling.Seconds()/serial.Seconds(), "json/serial")
			b.ReportMetric(ceiling.Seconds()/parallel.Seconds(), "json/parallel")
		})
	}
}

// cpuTime returns the CPU time the process has used, user and system: what a sum costs
// whatever else the machine runs.
func cpuTime() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// jsonSum runs testenv.SumJSON, the benchmark suite's ceiling for the read stage, and
// returns the number of users.
func jsonSum(b *testing.B, path string) int {
	b.Helper()
	sums, err := testenv.SumJSON(path)
	if err != nil {
		b.Fatal(err)
	}
	return len(sums)
}
