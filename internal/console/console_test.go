package console

import (
	"bytes"
	"fmt"
	"io"
	"strings"
	"sync/atomic"
	"testing"
	"time"
)

func TestConsolePlain(t *testing.T) {
	var buf bytes.Buffer
	c := New(&buf, false)
	var n atomic.Int64
	stop := c.Progress(time.Millisecond, func() string { return fmt.Sprintf("progress %d", n.Add(1)) })
	// Wait for a few ticks by watching the counter, not the clock.
	deadline := time.Now().Add(10 * time.Second)
	for n.Load() < 3 && time.Now().Before(deadline) {
		time.Sleep(time.Millisecond)
	}
	c.Printf("report %d\n", 1)
	stop()
	out := buf.String()
	if n.Load() < 3 {
		t.Fatalf("progress line drawn %d times in 10s; want at least 3", n.Load())
	}
	if strings.Contains(out, "\r") || strings.Contains(out, "\033") {
		t.Errorf("plain console output %q; want no carriage returns or escapes", out)
	}
	if !strings.Contains(out, "progress 1\n") || !strings.Contains(out, "report 1\n") {
		t.Errorf("plain console output %q; want whole lines", out)
	}
}

func TestConsoleQuiet(t *testing.T) {
	var buf bytes.Buffer
	c := New(&buf, true)
	called := make(chan struct{}, 1)
	stop := c.Progress(time.Millisecond, func() string {
		select {
		case called <- struct{}{}:
		default:
		}
		return "progress"
	})
	c.Printf("report\n")
	stop()
	if buf.String() != "report\n" {
		t.Errorf("quiet console wrote %q; want only %q", buf.String(), "report\n")
	}
	select {
	case <-called:
		t.Errorf("quiet console computed a progress line")
	default:
	}
}

func TestFraction(t *testing.T) {
	tests := []struct {
		done, size int64
		elapsed    time.Duration
		want       string
	}{
		{1 << 20, -1, 3 * time.Second, "1.0 MiB read, elapsed 3s"},
		{0, 0, 0, "0.0 MiB read, elapsed 0s"},
		{1 << 20, 4 << 20, 2 * time.Second, "1.0 MiB of 4.0 MiB (25.0%), elapsed 2s, eta 6s"},
		{0, 4 << 20, 2 * time.Second, "0.0 MiB of 4.0 MiB (0.0%), elapsed 2s, eta ?"},
		{8 << 20, 4 << 20, 2 * time.Second, "8.0 MiB of 4.0 MiB (100.0%), elapsed 2s, eta 0s"},
	}
	for _, tt := range tests {
		if got := Fraction(tt.done, tt.size, tt.elapsed); got != tt.want {
			t.Errorf("Fraction(%d, %d, %v) = %q; want %q", tt.done, tt.size, tt.elapsed, got, tt.want)
		}
	}
}

func TestCountingReader(t *testing.T) {
	var n atomic.Int64
	b, err := io.ReadAll(CountingReader{R: strings.NewReader("hello, world"), N: &n})
	if err != nil || string(b) != "hello, world" || n.Load() != 12 {
		t.Errorf("ReadAll(CountingReader) = %q, %v, counted %d; want %q, nil, 12", b, err, n.Load(), "hello, world")
	}
}
