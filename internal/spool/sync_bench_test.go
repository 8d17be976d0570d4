package spool

import (
	"math/rand/v2"
	"os"
	"path/filepath"
	"testing"
	"time"
)

// BenchmarkSyncWait measures how long a batch that arrives while the writer is in fdatasync
// waits until it is durable, on the file system of the test's temporary directory, two ways:
//
//   - serial, as Writer does: the rest of the sync under way, then a write and a sync of its own;
//   - overlapped: a write and a sync of its own at once, beside the one under way.
//
// The arrival falls at a random point of the sync under way. The figure is the mean wait
// per arrival (µs/arrival); the gap between the two is what pipelining syncs could save an
// event. On this project's machines there was none: the second fdatasync returns no sooner.
//
//	go test -run '^$' -bench SyncWait ./internal/spool
func BenchmarkSyncWait(b *testing.B) {
	batch := make([]byte, 13*70) // the suite's average batch: 13 events of about 70 bytes
	for i := range batch {
		batch[i] = 'x'
	}
	for _, overlap := range []bool{false, true} {
		name := "serial"
		if overlap {
			name = "overlapped"
		}
		b.Run(name, func(b *testing.B) {
			f, err := os.OpenFile(filepath.Join(b.TempDir(), "live.jsonl"), os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
			if err != nil {
				b.Fatal(err)
			}
			defer f.Close()
			writeSync := func() {
				if _, err := f.Write(batch); err != nil {
					b.Error(err)
				}
				if err := fdatasync(f); err != nil {
					b.Error(err)
				}
			}
			start := time.Now()
			for range 50 {
				writeSync()
			}
			sync := time.Since(start) / 50
			rng := rand.New(rand.NewPCG(1, 2))
			var waited time.Duration
			b.ResetTimer()
			for range b.N {
				done := make(chan struct{})
				if _, err := f.Write(batch); err != nil {
					b.Fatal(err)
				}
				go func() {
					defer close(done)
					if err := fdatasync(f); err != nil {
						b.Error(err)
					}
				}()
				time.Sleep(time.Duration(rng.Int64N(int64(sync))))
				arrived := time.Now()
				if !overlap {
					<-done
				}
				writeSync()
				waited += time.Since(arrived)
				<-done
			}
			b.ReportMetric(float64(waited.Microseconds())/float64(b.N), "µs/arrival")
			b.ReportMetric(float64(sync.Microseconds()), "µs/sync")
		})
	}
}
