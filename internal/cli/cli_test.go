package cli

import (
	"bytes"
	"errors"
	"flag"
	"fmt"
	"io"
	"io/fs"
	"strings"
	"sync/atomic"
	"syscall"
	"testing"
	"time"
)

// env returns a getenv that reads from m.
func env(m map[string]string) func(string) string {
	return func(k string) string { return m[k] }
}

func TestFlagPrecedence(t *testing.T) {
	tests := []struct {
		name    string
		env     map[string]string
		args    []string
		wantS   string
		wantI   int
		wantD   time.Duration
		wantB   bool
		wantErr bool
	}{
		{name: "defaults", wantS: "def", wantI: 7, wantD: time.Second, wantB: false},
		{name: "env over default",
			env:   map[string]string{"T_S": "fromenv", "T_I": "42", "T_D": "3m", "T_B": "true"},
			wantS: "fromenv", wantI: 42, wantD: 3 * time.Minute, wantB: true},
		{name: "flag over env",
			env:   map[string]string{"T_S": "fromenv", "T_I": "42", "T_D": "3m", "T_B": "true"},
			args:  []string{"-s", "fromflag", "-i", "9", "-d", "5s", "-b=false"},
			wantS: "fromflag", wantI: 9, wantD: 5 * time.Second, wantB: false},
		{name: "flag over default",
			args:  []string{"-s", "x", "-i", "-3", "-d", "1h", "-b"},
			wantS: "x", wantI: -3, wantD: time.Hour, wantB: true},
		{name: "empty env is unset",
			env:   map[string]string{"T_S": "", "T_I": "", "T_D": "", "T_B": ""},
			wantS: "def", wantI: 7, wantD: time.Second, wantB: false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var stderr bytes.Buffer
			fs := NewFlagSet("prog", "usage text", env(tt.env), &stderr)
			s := fs.String("s", "T_S", "def", "a string")
			i := fs.Int("i", "T_I", 7, "an int")
			d := fs.Duration("d", "T_D", time.Second, "a duration")
			b := fs.Bool("b", "T_B", false, "a bool")
			err := fs.Parse(tt.args)
			if tt.wantErr {
				if err == nil {
					t.Fatalf("Parse(%q) = nil; want an error", tt.args)
				}
				return
			}
			if err != nil {
				t.Fatalf("Parse(%q) = %v; want nil", tt.args, err)
			}
			if *s != tt.wantS || *i != tt.wantI || *d != tt.wantD || *b != tt.wantB {
				t.Errorf("Parse(%q) with env %v = s=%q i=%d d=%v b=%v; want s=%q i=%d d=%v b=%v",
					tt.args, tt.env, *s, *i, *d, *b, tt.wantS, tt.wantI, tt.wantD, tt.wantB)
			}
		})
	}
}

func TestBadEnvValuesNamed(t *testing.T) {
	tests := []struct {
		env, value string
		define     func(fs *FlagSet)
		want       []string // substrings of the error
	}{
		{"T_INT", "abc", func(fs *FlagSet) { fs.Int("queue", "T_INT", 1, "") }, []string{"$T_INT", `"abc"`, "-queue", "whole number"}},
		{"T_INT", "1.5", func(fs *FlagSet) { fs.Int("queue", "T_INT", 1, "") }, []string{"$T_INT", "-queue"}},
		{"T_DUR", "10", func(fs *FlagSet) { fs.Duration("window", "T_DUR", time.Second, "") }, []string{"$T_DUR", `"10"`, "-window", "duration"}},
		{"T_BOOL", "yes", func(fs *FlagSet) { fs.Bool("quiet", "T_BOOL", false, "") }, []string{"$T_BOOL", `"yes"`, "-quiet", "true or false"}},
	}
	for _, tt := range tests {
		t.Run(tt.env+"="+tt.value, func(t *testing.T) {
			fs := NewFlagSet("prog", "", env(map[string]string{tt.env: tt.value}), io.Discard)
			tt.define(fs)
			err := fs.Parse(nil)
			var ue UsageError
			if !errors.As(err, &ue) {
				t.Fatalf("Parse with $%s=%q = %v; want a UsageError", tt.env, tt.value, err)
			}
			for _, w := range tt.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("Parse with $%s=%q = %q; want it to mention %q", tt.env, tt.value, err, w)
				}
			}
			if got := ExitCode(err, io.Discard); got != ExitUsage {
				t.Errorf("ExitCode(%v) = %d; want %d", err, got, ExitUsage)
			}
		})
	}
}

func TestBadEnvValuesAllReported(t *testing.T) {
	fs := NewFlagSet("prog", "", env(map[string]string{"A": "x", "B": "y"}), io.Discard)
	fs.Int("a", "A", 0, "")
	fs.Duration("b", "B", 0, "")
	err := fs.Parse(nil)
	if err == nil || !strings.Contains(err.Error(), "$A") || !strings.Contains(err.Error(), "$B") {
		t.Errorf("Parse with two bad variables = %v; want both named", err)
	}
}

// A flag given on the command line wins over its variable, even a bad one: the variable is
// never used, so it is no reason to refuse to start.
func TestBadEnvValueOverriddenByFlag(t *testing.T) {
	fs := NewFlagSet("prog", "", env(map[string]string{"A": "x", "B": "y"}), io.Discard)
	a := fs.Int("a", "A", 0, "")
	fs.Duration("b", "B", 0, "")
	err := fs.Parse([]string{"-a", "5"})
	if err == nil || strings.Contains(err.Error(), "$A") || !strings.Contains(err.Error(), "$B") {
		t.Errorf("Parse(-a 5) with $A and $B bad = %v; want only $B named", err)
	}
	fs = NewFlagSet("prog", "", env(map[string]string{"A": "x"}), io.Discard)
	a = fs.Int("a", "A", 0, "")
	if err := fs.Parse([]string{"-a", "5"}); err != nil || *a != 5 {
		t.Errorf("Parse(-a 5) with $A bad = %v, a=%d; want nil, 5", err, *a)
	}
}

func TestPathError(t *testing.T) {
	for _, tt := range []struct {
		err   error
		usage bool
	}{
		{&fs.PathError{Op: "open", Path: "x", Err: syscall.ENOENT}, true},
		{&fs.PathError{Op: "open", Path: "x", Err: syscall.EACCES}, true},
		{&fs.PathError{Op: "open", Path: "x", Err: syscall.ENOTDIR}, true},
		{&fs.PathError{Op: "open", Path: "x", Err: syscall.EISDIR}, true},
		{&fs.PathError{Op: "read", Path: "x", Err: syscall.EIO}, false},
	} {
		err := PathError("events-file", tt.err)
		var ue UsageError
		if !strings.HasPrefix(err.Error(), "-events-file: ") || !errors.Is(err, tt.err) || errors.As(err, &ue) != tt.usage {
			t.Errorf("PathError(events-file, %v) = %v (usage error %v); want it named, wrapping, usage error %v", tt.err, err, errors.As(err, &ue), tt.usage)
		}
	}
}

func TestParseErrors(t *testing.T) {
	var stderr bytes.Buffer
	fs := NewFlagSet("prog", "\nprog does things.\n", env(nil), &stderr)
	fs.String("file", "PROG_FILE", "x", "the `file`")

	err := fs.Parse([]string{"-nope"})
	var ue UsageError
	if !errors.As(err, &ue) || !strings.Contains(err.Error(), "nope") {
		t.Errorf("Parse(-nope) = %v; want a UsageError naming the flag", err)
	}

	stderr.Reset()
	err = fs.Parse([]string{"-h"})
	if !errors.Is(err, flag.ErrHelp) {
		t.Fatalf("Parse(-h) = %v; want flag.ErrHelp", err)
	}
	for _, want := range []string{"prog does things.", "-file", "[$PROG_FILE]", "environment variable"} {
		if !strings.Contains(stderr.String(), want) {
			t.Errorf("usage output %q; want it to contain %q", stderr.String(), want)
		}
	}
	if got := ExitCode(err, io.Discard); got != ExitOK {
		t.Errorf("ExitCode(ErrHelp) = %d; want %d", got, ExitOK)
	}
}

func TestCheck(t *testing.T) {
	if err := Check(false, "queue", "bad %d", 1); err != nil {
		t.Errorf("Check(false) = %v; want nil", err)
	}
	err := Check(true, "queue", "must be at least 1, got %d", 0)
	var ue UsageError
	if !errors.As(err, &ue) || err.Error() != "-queue: must be at least 1, got 0" {
		t.Errorf("Check(true, queue) = %v; want UsageError %q", err, "-queue: must be at least 1, got 0")
	}
	if err := Check(true, "", "unexpected %q", "x"); err == nil || err.Error() != `unexpected "x"` {
		t.Errorf("Check(true, \"\") = %v; want %q", err, `unexpected "x"`)
	}
	for format, bad := range map[string]bool{"text": false, "json": false, "xml": true, "": true, "JSON": true} {
		err := CheckLogFormat(format)
		if (err != nil) != bad {
			t.Errorf("CheckLogFormat(%q) = %v; want error %v", format, err, bad)
		}
		if bad && !strings.Contains(err.Error(), "-log-format") {
			t.Errorf("CheckLogFormat(%q) = %v; want it to name -log-format", format, err)
		}
	}
}

func TestExitCode(t *testing.T) {
	usage := UsageError{errors.New("-queue: must be at least 1")}
	tests := []struct {
		name       string
		err        error
		want       int
		wantStderr string
	}{
		{"nil", nil, ExitOK, ""},
		{"help", flag.ErrHelp, ExitOK, ""},
		{"wrapped help", fmt.Errorf("parse: %w", flag.ErrHelp), ExitOK, ""},
		{"usage", usage, ExitUsage, "error: -queue: must be at least 1\n"},
		{"wrapped usage", fmt.Errorf("config: %w", usage), ExitUsage, "error: config: -queue: must be at least 1\n"},
		{"joined usage", errors.Join(usage, nil), ExitUsage, "error: -queue: must be at least 1\n"},
		{"failure", errors.New("disk full"), ExitFail, "error: disk full\n"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var stderr bytes.Buffer
			if got := ExitCode(tt.err, &stderr); got != tt.want {
				t.Errorf("ExitCode(%v) = %d; want %d", tt.err, got, tt.want)
			}
			if stderr.String() != tt.wantStderr {
				t.Errorf("ExitCode(%v) printed %q; want %q", tt.err, stderr.String(), tt.wantStderr)
			}
		})
	}
}

func TestMaskURL(t *testing.T) {
	tests := []struct {
		in   string
		want string // exact, or "" to only check that secret is gone
		leak string // must not appear in the output
	}{
		{in: "postgres://postgres:hunter2@localhost:5432/finonex?sslmode=disable",
			want: "postgres://postgres:xxxxx@localhost:5432/finonex?sslmode=disable", leak: "hunter2"},
		{in: "postgres://u:p%40ss%2Fw0rd@db.example:5432/x", leak: "p%40ss"},
		{in: "postgresql://u:s3cr3t@h/db", want: "postgresql://u:xxxxx@h/db", leak: "s3cr3t"},
		{in: "postgres://postgres@localhost:5432/finonex?sslmode=disable",
			want: "postgres://postgres@localhost:5432/finonex?sslmode=disable"},
		{in: "postgres://localhost/finonex", want: "postgres://localhost/finonex"},
		{in: "http://user:pw@example.com/path", want: "http://user:xxxxx@example.com/path", leak: ":pw@"},
		{in: "host=localhost user=postgres password=hunter2 dbname=finonex sslmode=disable",
			want: "host=localhost user=postgres password=xxxxx dbname=finonex sslmode=disable", leak: "hunter2"},
		{in: "password=hunter2", want: "password=xxxxx", leak: "hunter2"},
		{in: "host=localhost dbname=finonex", want: "host=localhost dbname=finonex"},
		{in: "", want: ""},
	}
	for _, tt := range tests {
		got := MaskURL(tt.in)
		if tt.want != "" || tt.in == "" {
			if got != tt.want {
				t.Errorf("MaskURL(%q) = %q; want %q", tt.in, got, tt.want)
			}
		}
		if tt.leak != "" && strings.Contains(got, tt.leak) {
			t.Errorf("MaskURL(%q) = %q; still shows %q", tt.in, got, tt.leak)
		}
	}
}

// TestMaskURLPasswordForms covers the other ways lib/pq (which the programs use) accepts a
// password in a DSN: as a URL query parameter, and in key=value form quoted with spaces or
// with spaces around "=". Each is a real, working DSN for pq, so each must be masked in logs.
func TestMaskURLPasswordForms(t *testing.T) {
	tests := []struct {
		in   string
		leak []string
	}{
		{"postgres://postgres@localhost:5432/finonex?sslmode=disable&password=hunter2", []string{"hunter2"}},
		{"postgres://localhost/finonex?password=hunter2", []string{"hunter2"}},
		{"host=localhost password='correct horse battery' dbname=finonex", []string{"horse", "battery"}},
		{"host=localhost password = hunter2 dbname=finonex", []string{"hunter2"}},
	}
	for _, tt := range tests {
		got := MaskURL(tt.in)
		for _, leak := range tt.leak {
			if strings.Contains(got, leak) {
				t.Errorf("MaskURL(%q) = %q; the password part %q is still visible", tt.in, got, leak)
			}
		}
	}
}

func TestMaskSecret(t *testing.T) {
	if got := MaskSecret(""); got != "(empty)" {
		t.Errorf("MaskSecret(\"\") = %q; want %q", got, "(empty)")
	}
	got := MaskSecret("hunter2")
	if strings.Contains(got, "hunter2") || got != "(set, 7 bytes)" {
		t.Errorf("MaskSecret(hunter2) = %q; want %q", got, "(set, 7 bytes)")
	}
}

func TestNewLogger(t *testing.T) {
	var text, js bytes.Buffer
	NewLogger(&text, "text").Info("hello", "k", "v")
	NewLogger(&js, "json").Info("hello", "k", "v")
	if !strings.Contains(text.String(), "msg=hello k=v") {
		t.Errorf("text logger wrote %q; want msg=hello k=v", text.String())
	}
	if !strings.Contains(js.String(), `"msg":"hello","k":"v"`) {
		t.Errorf("json logger wrote %q; want JSON", js.String())
	}
}

func TestConsolePlain(t *testing.T) {
	var buf bytes.Buffer
	c := NewConsole(&buf, false)
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
	c := NewConsole(&buf, true)
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
