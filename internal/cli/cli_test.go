package cli

import (
	"bytes"
	"errors"
	"flag"
	"fmt"
	"io"
	"io/fs"
	"strings"
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
	if err := CheckFlag("x", nil); err != nil {
		t.Errorf("CheckFlag(x, nil) = %v; want nil", err)
	}
	err = CheckFlag("log-format", errors.New("want text or json"))
	if !errors.As(err, &ue) || err.Error() != "-log-format: want text or json" {
		t.Errorf("CheckFlag(log-format, err) = %v; want UsageError %q", err, "-log-format: want text or json")
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

// TestSecretNeverShown: a secret's value from the environment is used, but -h and a bad
// flag print only the built-in default.
func TestSecretNeverShown(t *testing.T) {
	for _, args := range [][]string{{"-h"}, {"-bogus"}, nil} {
		var stderr bytes.Buffer
		fs := NewFlagSet("x", "usage", env(map[string]string{"FINONEX_TOKEN": "eyJsecret.token.value"}), &stderr)
		tok := fs.Secret("token", "FINONEX_TOKEN", "", "a token")
		err := fs.Parse(args)
		if strings.Contains(stderr.String(), "eyJsecret") {
			t.Errorf("Parse(%q) printed the token:\n%s", args, stderr.String())
		}
		if args == nil && (err != nil || *tok != "eyJsecret.token.value") {
			t.Errorf("Parse() = %v, token %q; want the variable's value", err, *tok)
		}
	}
	fs := NewFlagSet("x", "usage", env(map[string]string{"FINONEX_TOKEN": "from-env"}), io.Discard)
	tok := fs.Secret("token", "FINONEX_TOKEN", "", "a token")
	if err := fs.Parse([]string{"-token", "from-flag"}); err != nil || *tok != "from-flag" {
		t.Errorf("Parse(-token from-flag) = %v, %q; want the flag to win", err, *tok)
	}
}
