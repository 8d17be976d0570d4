package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"time"

	"finonex/internal/cli"
	"finonex/internal/idempotency"
	"finonex/internal/spool"
	"finonex/internal/store"
)

const usage = `
server accepts revenue events, appends them durably to an events file, and answers each
user's revenue from PostgreSQL.

Usage: server [flags]

Example:
  server -addr :8000 -events-file server_events.jsonl -secret s3cret

Exit status: 0 after a clean shutdown (SIGINT/SIGTERM), 1 on a failure, 2 on bad flags, an
address that cannot be bound or an events file that cannot be opened.
`

type config struct {
	addr          string
	eventsFile    string
	dsn           string
	secret        string
	oldSecret     string
	window        time.Duration
	queue         int
	logFormat     string
	logRequests   bool
	statsInterval time.Duration
	shutdown      time.Duration
}

func parseConfig(args []string, getenv func(string) string, stderr io.Writer) (config, error) {
	fs := cli.NewFlagSet("server", usage, getenv, stderr)
	c := config{}
	addr := fs.String("addr", "FINONEX_ADDR", ":8000", "`address` to listen on, host:port (port 0 picks a free one)")
	events := fs.String("events-file", "FINONEX_EVENTS_FILE", "server_events.jsonl", "`file` to append events to; the processor claims it")
	dsn := fs.String("db", "DATABASE_URL", store.DefaultDSN, "PostgreSQL `URL`; the database and schema are created when missing")
	secret := fs.String("secret", "FINONEX_SECRET", "secret", "the value the Authorization header must equal")
	oldSecret := fs.String("old-secret", "FINONEX_OLD_SECRET", "", "a second accepted secret, while clients move to a new -secret (rotation); empty: none")
	window := fs.Duration("idempotency-window", "FINONEX_IDEMPOTENCY_WINDOW", 10*time.Minute, "how long an acknowledged Idempotency-Key is remembered")
	queue := fs.Int("queue", "FINONEX_QUEUE", 16384, "events that may wait to be written before the server sheds load with 503")
	logFormat := fs.String("log-format", "FINONEX_LOG_FORMAT", "text", "log `format`: text or json")
	logRequests := fs.Bool("log-requests", "FINONEX_LOG_REQUESTS", false, "log every request, not only errors")
	stats := fs.Duration("stats-interval", "FINONEX_STATS_INTERVAL", time.Minute, "how often to log a stats line; 0 turns it off")
	shutdown := fs.Duration("shutdown-timeout", "FINONEX_SHUTDOWN_TIMEOUT", 30*time.Second, "how long a graceful shutdown waits for requests in flight")
	if err := fs.Parse(args); err != nil {
		return c, err
	}
	c = config{
		addr: *addr, eventsFile: *events, dsn: *dsn, secret: *secret, oldSecret: *oldSecret, window: *window, queue: *queue,
		logFormat: *logFormat, logRequests: *logRequests, statsInterval: *stats, shutdown: *shutdown,
	}
	return c, errors.Join(
		cli.Check(fs.NArg() > 0, "", "unexpected arguments %q: the server takes flags only", fs.Args()),
		cli.Check(c.addr == "", "addr", "must not be empty"),
		cli.Check(c.eventsFile == "", "events-file", "must not be empty"),
		cli.Check(c.secret == "", "secret", "must not be empty: every request must present it"),
		cli.Check(c.window <= 0, "idempotency-window", "must be positive, got %v", c.window),
		cli.Check(c.queue <= 0, "queue", "must be at least 1, got %d", c.queue),
		cli.CheckLogFormat(c.logFormat),
		cli.Check(c.statsInterval < 0, "stats-interval", "must not be negative"),
		cli.Check(c.shutdown <= 0, "shutdown-timeout", "must be positive"),
	)
}

func run(ctx context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer) error {
	c, err := parseConfig(args, getenv, stderr)
	if err != nil {
		return err
	}
	log := cli.NewLogger(stderr, c.logFormat)
	log.Info("starting", "addr", c.addr, "events_file", c.eventsFile, "db", cli.MaskURL(c.dsn),
		"secret", cli.MaskSecret(c.secret), "old_secret", cli.MaskSecret(c.oldSecret), "idempotency_window", c.window, "queue", c.queue,
		"log_format", c.logFormat, "log_requests", c.logRequests, "stats_interval", c.statsInterval)

	db, err := store.Open(c.dsn)
	if err != nil {
		return cli.UsageError{Err: fmt.Errorf("-db: %w", err)}
	}
	defer db.Close()
	pingCtx, cancel := context.WithTimeout(ctx, 5*time.Second)
	if err := db.Ensure(pingCtx); err != nil {
		log.Warn("PostgreSQL is not ready: events are still accepted, GET /userEvents answers 503 until it is", "err", err)
	}
	cancel()

	// Open the writer first: it removes a torn tail a crash left, before the keys are read.
	w, err := spool.Open(c.eventsFile, spool.Options{QueueSize: c.queue})
	if err != nil {
		return cli.PathError("events-file", err)
	}
	keys := idempotency.New(c.window)
	n, err := loadKeys(keys, c.eventsFile, c.window, time.Now())
	if err != nil {
		w.Close()
		return fmt.Errorf("reload idempotency keys: %w", err)
	}
	log.Info("idempotency keys reloaded from the events log", "keys", n)

	ln, err := net.Listen("tcp", c.addr)
	if err != nil {
		w.Close()
		return cli.UsageError{Err: fmt.Errorf("-addr: %w", err)}
	}
	m := newMetrics(w, keys)
	srv := &http.Server{
		Handler:           NewServer(log, secrets(c.secret, c.oldSecret), c.eventsFile, c.logRequests, w, keys, db, m),
		ReadHeaderTimeout: 5 * time.Second,
		ReadTimeout:       30 * time.Second,
		WriteTimeout:      60 * time.Second,
		IdleTimeout:       2 * time.Minute,
		ErrorLog:          slog.NewLogLogger(log.Handler(), slog.LevelWarn),
	}
	log.Info("listening", "addr", ln.Addr().String())

	served := make(chan error, 1)
	go func() { served <- srv.Serve(ln) }()
	statsDone := make(chan struct{})
	statsCtx, stopStats := context.WithCancel(ctx)
	go func() {
		defer close(statsDone)
		logStats(statsCtx, log, m, c.statsInterval)
	}()

	var serveErr error
	select {
	case serveErr = <-served:
	case <-ctx.Done():
		log.Info("shutting down: finishing requests in flight")
	}
	stopStats()
	<-statsDone

	sctx, cancel := context.WithTimeout(context.Background(), c.shutdown)
	defer cancel()
	shutdownErr := srv.Shutdown(sctx)
	if serveErr == nil {
		serveErr = <-served
	}
	closeErr := w.Close()
	if errors.Is(serveErr, http.ErrServerClosed) {
		serveErr = nil
	}
	if err := errors.Join(serveErr, shutdownErr, closeErr); err != nil {
		return err
	}
	log.Info("stopped", "events_written", w.Stats().Lines)
	return nil
}

// secrets lists the accepted secrets: the current one, and the old one during a rotation.
func secrets(current, old string) []string {
	if old == "" {
		return []string{current}
	}
	return []string{current, old}
}
