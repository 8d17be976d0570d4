package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	"finonex/internal/cli"
	"finonex/internal/console"
	"finonex/internal/logs"
	"finonex/internal/procstat"
	"finonex/internal/spool"
	"finonex/internal/store"
	"finonex/internal/token"
)

const usage = `
processor applies events files to PostgreSQL, exactly once per file.

Usage: processor [flags] [FILE...]
       processor -watch [-interval 1s] [-addr :9100] [flags]

With no FILE: finish claimed files an interrupted run left beside -events-file, then claim
-events-file itself and apply it. With FILEs: claim and apply each of them.

With -watch it runs until SIGINT or SIGTERM: every -interval it finishes what was left and
applies the live file when it holds events, with the same exactly-once rules. PostgreSQL
down is logged once and retried with capped backoff. -addr serves /healthz, /readyz and
/metrics (Prometheus text format; /metrics needs -secret or a token with ops:read).

Example:
  processor -events-file server_events.jsonl
  processor -watch -addr 127.0.0.1:9100 -events-file server_events.jsonl

Exit status: 0 when every file was applied or there was nothing to do (invalid lines are
reported and set aside, not a failure), and after a clean stop in watch mode; 1 when a file
could not be applied (it keeps its claimed name for the next run), 2 on bad flags or an
unreadable -events-file directory.
`

type config struct {
	eventsFile string
	dsn        string
	quiet      bool
	every      time.Duration
	files      []string

	watch         bool
	interval      time.Duration
	addr          string
	logFormat     string
	secret        string
	tokenKeys     string
	tokenAudience string
	tokenIssuer   string
}

func parseConfig(args []string, getenv func(string) string, stderr io.Writer) (config, error) {
	fs := cli.NewFlagSet("processor", usage, getenv, stderr)
	events := fs.String("events-file", "FINONEX_EVENTS_FILE", "server_events.jsonl", "the server's live events `file`; claimed, processed and rejected files go beside it")
	dsn := fs.Secret("db", "DATABASE_URL", store.DefaultDSN, "PostgreSQL `URL`; the database and schema are created when missing")
	quiet := fs.Bool("quiet", "FINONEX_QUIET", false, "no progress line")
	every := fs.Duration("progress-interval", "FINONEX_PROGRESS_INTERVAL", 5*time.Second, "how often to print a progress line when stderr is not a terminal")
	watch := fs.Bool("watch", "FINONEX_WATCH", false, "run until stopped, applying the live file whenever it holds events")
	interval := fs.Duration("interval", "FINONEX_INTERVAL", time.Second, "with -watch: how often to look at the live file")
	addr := fs.String("addr", "FINONEX_PROCESSOR_ADDR", "", "`address` to serve /healthz, /readyz and /metrics on, host:port; empty: none")
	logFormat := fs.String("log-format", "FINONEX_LOG_FORMAT", "text", "log `format` of watch mode: text or json")
	secret := fs.Secret("secret", "FINONEX_SECRET", "secret", "shared secret that /metrics asks for, as the server does; empty: tokens only")
	tokenKeys := fs.String("token-keys", "FINONEX_TOKEN_KEYS", "", "JSON Web Key Set `file`: /metrics also takes a bearer token with ops:read; reloaded on SIGHUP")
	tokenAudience := fs.String("token-audience", "FINONEX_TOKEN_AUDIENCE", token.DefaultAudience, "the `aud` a token must name, as the server's")
	tokenIssuer := fs.String("token-issuer", "FINONEX_TOKEN_ISSUER", "", "the `iss` a token must carry, as the server's; empty: not checked")
	if err := fs.Parse(args); err != nil {
		return config{}, err
	}
	c := config{eventsFile: *events, dsn: *dsn, quiet: *quiet, every: *every, files: fs.Args(),
		watch: *watch, interval: *interval, addr: *addr, logFormat: *logFormat, secret: *secret,
		tokenKeys: *tokenKeys, tokenAudience: *tokenAudience, tokenIssuer: *tokenIssuer}
	return c, errors.Join(
		cli.Check(c.eventsFile == "", "events-file", "must not be empty"),
		cli.CheckFlag("events-file", spool.CheckLive(c.eventsFile)),
		cli.Check(c.every <= 0, "progress-interval", "must be positive"),
		cli.Check(c.watch && len(c.files) > 0, "watch", "takes no FILE arguments: it watches -events-file"),
		cli.Check(c.interval <= 0, "interval", "must be positive"),
		cli.CheckFlag("log-format", logs.CheckFormat(c.logFormat)),
		cli.Check(c.addr != "" && c.secret == "" && c.tokenKeys == "", "secret", "must not be empty unless -token-keys is set: /metrics needs a credential"),
		cli.Check(c.tokenKeys != "" && c.addr == "", "token-keys", "is only for /metrics: set -addr too"),
	)
}

func run(ctx context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer) error {
	c, err := parseConfig(args, getenv, stderr)
	if err != nil {
		return err
	}
	db, err := store.Open(c.dsn)
	if err != nil {
		return cli.CheckFlag("db", err)
	}
	defer db.Close()
	live, err := filepath.Abs(c.eventsFile)
	if err != nil {
		return cli.CheckFlag("events-file", err)
	}
	p := &processor{db: db, con: console.New(stderr, c.quiet), out: stdout, every: c.every, live: live, crashAt: getenv(crashEnv), m: newMetrics(db.Ping)}
	if c.watch || c.addr != "" {
		return runService(ctx, p, c, stderr)
	}
	start := time.Now()
	err = p.once(ctx, c.eventsFile, c.files)
	if p.files == 0 {
		if p.busy == 0 && len(c.files) == 0 && err == nil {
			fmt.Fprintf(stdout, "nothing to process: %s is missing or empty\n", c.eventsFile)
		}
		return err
	}
	p.summary(time.Since(start))
	return err
}

// once is one run's work: each named file, or else the leftovers beside the live file and
// then the live file itself.
func (p *processor) once(ctx context.Context, live string, named []string) error {
	var errs []error
	if len(named) > 0 {
		for _, f := range named {
			errs = append(errs, p.claimAndApply(ctx, f, true))
		}
		return errors.Join(errs...)
	}
	leftovers, err := spool.Leftovers(live)
	if err != nil {
		return cli.PathError("events-file", err)
	}
	return p.drain(ctx, live, leftovers)
}

// drain applies the leftovers, the claimed files an interrupted run left beside the live
// file, and then claims and applies the live file itself.
func (p *processor) drain(ctx context.Context, live string, leftovers []string) error {
	var errs []error
	for _, f := range leftovers {
		fmt.Fprintf(p.out, "finishing %s, left by an interrupted run\n", f)
		errs = append(errs, p.apply(ctx, f))
	}
	// The live file is claimed even when a leftover failed: one refused file (changed after it
	// was applied, say) must not stop the pipeline. A watching processor asks PostgreSQL
	// first, and claims nothing while it is down.
	errs = append(errs, p.claimAndApply(ctx, live, false))
	return errors.Join(errs...)
}

// summary prints the run's totals.
func (p *processor) summary(elapsed time.Duration) {
	fmt.Fprintf(p.out, "done: %d files, %d events applied, %s, %s; read %s, database %s, total %s, peak memory %d MiB\n",
		p.files, p.events, p.usersNote(), p.rejectedNote(), p.readTime.Round(time.Millisecond), p.dbTime.Round(time.Millisecond),
		elapsed.Round(time.Millisecond), procstat.PeakRSS(os.Getpid())>>20)
}

// usersNote counts users per file: across several files a user is counted in each.
func (p *processor) usersNote() string {
	if p.files == 1 {
		return fmt.Sprintf("%d distinct users", p.users)
	}
	return fmt.Sprintf("%d user totals updated", p.users)
}

// rejectedNote says how many lines were set aside, and where.
func (p *processor) rejectedNote() string {
	if len(p.rejFiles) == 0 {
		return "0 rejected lines"
	}
	return fmt.Sprintf("%d rejected lines (set aside in %s)", p.rejected, strings.Join(p.rejFiles, ", "))
}

// processor applies files and keeps the totals of a run.
type processor struct {
	db    *store.Store
	con   *console.Console
	out   io.Writer
	every time.Duration

	files, events, users, rejected int64
	rejFiles                       []string // where rejected lines went
	busy                           int64    // files left to another processor
	readTime, dbTime               time.Duration

	live    string   // -events-file, absolute
	health  health   // of the watch loop, for /readyz
	crashAt string   // fault injection, see crash
	m       *metrics // counted in one-shot runs too; served only with -addr
}

// crashEnv names the variable that makes the processor kill itself with SIGKILL at one
// point of its work: after-claim, mid-read, before-commit or after-commit. The
// fault-injection tests use it to prove that a restart finishes the work exactly once.
const crashEnv = "FINONEX_TEST_CRASH_AT"

// crash kills the process, as kill -9 would, when point is the one chosen by crashEnv.
func (p *processor) crash(point string) {
	if p.crashAt == point {
		syscall.Kill(os.Getpid(), syscall.SIGKILL)
	}
}

// claimAndApply claims the file at path and applies it. A path that is itself a claimed
// file is applied as it is; a processed, rejected, duplicate or renamed file is refused.
// named says the user gave the path, so a missing file is an error.
func (p *processor) claimAndApply(ctx context.Context, path string, named bool) error {
	if err := ctx.Err(); err != nil {
		return err // interrupted: claim nothing new
	}
	if spool.ParseName(path).Kind == spool.Claimed {
		if _, err := os.Stat(path); named && err != nil {
			return fmt.Errorf("%s: %w", path, err)
		}
		return p.apply(ctx, path)
	}
	if err := spool.CheckLive(path); err != nil {
		return err // processed, rejected, duplicate or renamed: never claimed
	}
	if fi, err := os.Stat(path); !named && err == nil && fi.Size() == 0 {
		return nil // the server's live file, with nothing in it yet: nothing to claim
	}
	claimed, err := spool.Claim(path, time.Now())
	if err != nil {
		return err
	}
	if claimed == "" {
		if named {
			return fmt.Errorf("%s: no such file", path)
		}
		return nil
	}
	fmt.Fprintf(p.out, "claimed %s as %s\n", path, filepath.Base(claimed))
	p.crash("after-claim")
	return p.apply(ctx, claimed)
}

// apply applies one claimed file exactly once, then marks it processed. On failure the file
// keeps its claimed name, for the next run. A file another processor is working on, or has
// just finished, is left to it.
func (p *processor) apply(ctx context.Context, claimed string) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	name := filepath.Base(claimed)
	lease, err := spool.Take(claimed)
	switch {
	case errors.Is(err, spool.ErrBusy):
		p.busy++
		fmt.Fprintf(p.out, "%s is being applied by another processor; left to it\n", name)
		return nil
	case errors.Is(err, fs.ErrNotExist):
		return nil // another processor finished it since we listed it
	case err != nil:
		return err
	}
	defer lease.Release()
	p.files++
	done, digest, err := p.db.Applied(ctx, name)
	if err != nil {
		return fmt.Errorf("%s: %w", claimed, err)
	}
	if done {
		if err := sameDigest(ctx, claimed, digest); err != nil {
			return err
		}
		fmt.Fprintf(p.out, "%s is already in the ledger (applied earlier); not applied again\n", name)
	} else if err := p.sumAndApply(ctx, claimed); err != nil {
		return err
	}
	processed, err := spool.MarkProcessed(claimed)
	if err != nil {
		return err
	}
	fmt.Fprintf(p.out, "renamed to %s\n", filepath.Base(processed))
	return nil
}

// sameDigest checks that a file the ledger holds still has the bytes it was applied with. A
// changed file is refused and left as it is: its old content counted, and its new content
// cannot be applied under a name the ledger already holds.
func sameDigest(ctx context.Context, path, want string) error {
	f, err := os.Open(path)
	if err != nil {
		return fmt.Errorf("open %s: %w", path, err)
	}
	defer f.Close()
	got, err := hashFile(ctxReaderAt{ctx, f})
	if err != nil {
		return fmt.Errorf("read %s: %w", path, err)
	}
	if got != want {
		return fmt.Errorf("%s: changed since it was applied (SHA-256 %s, the ledger has %s): not applied again, file left as it is; "+
			"to apply the new lines, move them to a file with a new name", path, got, want)
	}
	return nil
}

// fromLive reports whether the claimed file was claimed from the server's live file
// (-events-file), not from a file a user handed over. Only the live file may hold the very
// same bytes twice (see store.Batch.Unique): the origin is in the claimed name, so the rule
// holds for whichever run applies the file.
func (p *processor) fromLive(claimed string) bool {
	live, err := filepath.Abs(spool.ParseName(claimed).Live)
	return err == nil && live == p.live
}

func (p *processor) sumAndApply(ctx context.Context, claimed string) error {
	name := filepath.Base(claimed)
	readStart := time.Now()
	s, err := p.sum(ctx, claimed)
	p.readTime += time.Since(readStart)
	if err != nil {
		return err
	}
	dbStart := time.Now()
	applied, err := p.db.Apply(ctx, store.Batch{File: name, Events: s.events, SHA256: s.sha256, Users: s.users, Deltas: s.deltas, Unique: !p.fromLive(claimed),
		BeforeCommit: func() { p.crash("before-commit") }, OnRetry: p.m.retries.Inc})
	p.dbTime += time.Since(dbStart)
	p.crash("after-commit")
	var same *store.SameContentError
	if errors.As(err, &same) {
		dup, merr := spool.MarkDuplicate(claimed)
		if merr != nil {
			return errors.Join(fmt.Errorf("%s: nothing applied: %w", claimed, err), merr)
		}
		return fmt.Errorf("%s: nothing applied: %w; renamed to %s, never to be applied", claimed, err, filepath.Base(dup))
	}
	if err != nil {
		return fmt.Errorf("%s: nothing applied, file kept for the next run: %w", claimed, err)
	}
	if !applied { // the lease makes this rare: the ledger is the last word
		fmt.Fprintf(p.out, "%s was applied meanwhile by another processor; not applied again\n", name)
		return nil
	}
	p.events += s.events
	p.users += int64(len(s.users))
	p.rejected += s.rejected
	p.m.applied(s.events, s.rejected, dbStart, time.Now())
	if s.rejected > 0 && len(p.rejFiles) < 20 { // the summary names the first few
		p.rejFiles = append(p.rejFiles, filepath.Base(s.rejPath))
	}
	fmt.Fprintf(p.out, "applied %s: %d events, %d users, %d rejected lines%s\n", name, s.events, len(s.users), s.rejected, s.rejectedNote())
	return nil
}
