// Package cli is what the three programs share at their edge: flags that fall back to
// environment variables, usage text that lists both, checks of flag values, and the mapping
// of run's error to an exit status.
package cli

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"io/fs"
	"os"
	"os/signal"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// Exit statuses shared by the programs.
const (
	ExitOK    = 0 // done, nothing failed
	ExitFail  = 1 // the work failed; the message says why
	ExitUsage = 2 // bad flags or configuration; nothing was done
)

// UsageError is bad configuration: nothing was done, and the message says what to fix.
type UsageError struct{ Err error }

func (e UsageError) Error() string { return e.Err.Error() }
func (e UsageError) Unwrap() error { return e.Err }

// ExitCode prints err (if any) to stderr and returns the status main should exit with.
func ExitCode(err error, stderr io.Writer) int {
	var usage UsageError
	switch {
	case err == nil || errors.Is(err, flag.ErrHelp):
		return ExitOK
	case errors.As(err, &usage):
		fmt.Fprintf(stderr, "error: %v\n", err)
		return ExitUsage
	default:
		fmt.Fprintf(stderr, "error: %v\n", err)
		return ExitFail
	}
}

// PathError names -flag in err, an error about the path that flag gave. When the path cannot
// be used as given (missing, not a directory, no permission) it is a UsageError, for the user
// to fix; any other error (an I/O error, say) stays a failure.
func PathError(flag string, err error) error {
	err = fmt.Errorf("-%s: %w", flag, err)
	if errors.Is(err, fs.ErrNotExist) || errors.Is(err, fs.ErrPermission) ||
		errors.Is(err, syscall.ENOTDIR) || errors.Is(err, syscall.EISDIR) {
		return UsageError{err}
	}
	return err
}

// FlagSet is a flag.FlagSet whose flags each fall back to an environment variable: a flag on
// the command line wins, then the variable, then the default.
type FlagSet struct {
	*flag.FlagSet
	getenv func(string) string
	envErr map[string]error // by flag name: a bad value of its variable
}

// NewFlagSet returns a FlagSet for the program name. usage is printed by -h before the flags.
func NewFlagSet(name, usage string, getenv func(string) string, stderr io.Writer) *FlagSet {
	fs := &FlagSet{FlagSet: flag.NewFlagSet(name, flag.ContinueOnError), getenv: getenv, envErr: make(map[string]error)}
	fs.SetOutput(stderr)
	fs.Usage = func() {
		fmt.Fprint(stderr, strings.TrimLeft(usage, "\n"))
		fmt.Fprintf(stderr, "\nFlags (each may also be set by the environment variable named beside it):\n")
		fs.PrintDefaults()
	}
	return fs
}

func (fs *FlagSet) env(env string) (string, bool) {
	if env == "" {
		return "", false
	}
	v := fs.getenv(env)
	return v, v != ""
}

func envNote(env, usage string) string {
	if env == "" {
		return usage
	}
	return usage + " [$" + env + "]"
}

// String defines a string flag with an environment fallback.
func (fs *FlagSet) String(name, env, def, usage string) *string {
	if v, ok := fs.env(env); ok {
		def = v
	}
	return fs.FlagSet.String(name, def, envNote(env, usage))
}

// Secret defines a string flag with an environment fallback whose value never shows: the
// usage text (-h, a bad flag) prints the built-in default, not the variable's value, which
// would put a secret, a token or a database password into a terminal or a CI log.
func (fs *FlagSet) Secret(name, env, def, usage string) *string {
	p := fs.FlagSet.String(name, def, envNote(env, usage))
	if v, ok := fs.env(env); ok {
		*p = v // the value, set after the definition: DefValue keeps def
	}
	return p
}

// Int defines an int flag with an environment fallback.
func (fs *FlagSet) Int(name, env string, def int, usage string) *int {
	if v, ok := fs.env(env); ok {
		n, err := strconv.Atoi(v)
		if err != nil {
			fs.envErr[name] = fmt.Errorf("$%s=%q: want a whole number for -%s", env, v, name)
		}
		def = n
	}
	return fs.FlagSet.Int(name, def, envNote(env, usage))
}

// Duration defines a duration flag with an environment fallback.
func (fs *FlagSet) Duration(name, env string, def time.Duration, usage string) *time.Duration {
	if v, ok := fs.env(env); ok {
		d, err := time.ParseDuration(v)
		if err != nil {
			fs.envErr[name] = fmt.Errorf("$%s=%q: want a duration such as 10s or 5m for -%s", env, v, name)
		}
		def = d
	}
	return fs.FlagSet.Duration(name, def, envNote(env, usage))
}

// Bool defines a bool flag with an environment fallback.
func (fs *FlagSet) Bool(name, env string, def bool, usage string) *bool {
	if v, ok := fs.env(env); ok {
		b, err := strconv.ParseBool(v)
		if err != nil {
			fs.envErr[name] = fmt.Errorf("$%s=%q: want true or false for -%s", env, v, name)
		}
		def = b
	}
	return fs.FlagSet.Bool(name, def, envNote(env, usage))
}

// Parse parses args. A bad flag, or a bad environment value for a flag not given on the
// command line, is a UsageError; -h is flag.ErrHelp.
func (fs *FlagSet) Parse(args []string) error {
	if err := fs.FlagSet.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return err
		}
		return UsageError{err}
	}
	fs.Visit(func(f *flag.Flag) { delete(fs.envErr, f.Name) }) // the command line wins
	var errs []error
	fs.VisitAll(func(f *flag.Flag) {
		if err := fs.envErr[f.Name]; err != nil {
			errs = append(errs, err)
		}
	})
	if len(errs) > 0 {
		return UsageError{errors.Join(errs...)}
	}
	return nil
}

// Check returns a UsageError for flag name when bad is true.
func Check(bad bool, name, format string, args ...any) error {
	if !bad {
		return nil
	}
	if name != "" {
		format = "-" + name + ": " + format
	}
	return UsageError{fmt.Errorf(format, args...)}
}

// CheckFlag returns err, when not nil, as a UsageError for flag name.
func CheckFlag(name string, err error) error {
	if err == nil {
		return nil
	}
	return UsageError{fmt.Errorf("-%s: %w", name, err)}
}

// RunFunc is a program's run: everything main does, with its inputs injected so that tests
// can call it. It returns nil on success.
type RunFunc func(ctx context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer) error

// Main is each program's main: it cancels run's context on SIGINT or SIGTERM, prints run's
// error, and exits with the status ExitCode gives. It is the only place that calls os.Exit,
// after run has returned and its deferred closes and rollbacks have run.
func Main(run RunFunc) {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	err := run(ctx, os.Args[1:], os.Getenv, os.Stdout, os.Stderr)
	stop()
	os.Exit(ExitCode(err, os.Stderr))
}
