package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"sync"
	"time"

	"finonex/internal/auth"
	"finonex/internal/cli"
	"finonex/internal/idempotency"
	"finonex/internal/logs"
	"finonex/internal/spool"
	"finonex/internal/store"
	"finonex/internal/token"
)

const usage = `
server accepts revenue events, appends them durably to an events file, and answers each
user's revenue from PostgreSQL.

Usage: server [flags]
       server token keygen|mint ...   (make token keys and tokens; server token -h)

Example:
  server -addr :8000 -events-file server_events.jsonl -secret s3cret
  server -secret '' -token-keys token-keys.json   (tokens only; SIGHUP reloads the keys)

Exit status: 0 after a clean shutdown (SIGINT/SIGTERM), 1 on a failure, 2 on bad flags, an
address that cannot be bound or an events file that cannot be opened.
`

type config struct {
	addr          string
	eventsFile    string
	dsn           string
	secret        string
	oldSecret     string
	tokenKeys     string
	tokenAudience string
	tokenIssuer   string
	window        time.Duration
	maxKeys       int
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
	dsn := fs.Secret("db", "DATABASE_URL", store.DefaultDSN, "PostgreSQL `URL`; the database and schema are created when missing")
	secret := fs.Secret("secret", "FINONEX_SECRET", "secret", "shared secret: an Authorization header equal to it grants every scope; empty turns it off (needs -token-keys)")
	oldSecret := fs.Secret("old-secret", "FINONEX_OLD_SECRET", "", "a second accepted secret, while clients move to a new -secret (rotation); empty: none")
	tokenKeys := fs.String("token-keys", "FINONEX_TOKEN_KEYS", "", "JSON Web Key Set `file` of the keys bearer tokens are verified with (EdDSA or HS256); reloaded on SIGHUP; empty: no tokens")
	tokenAudience := fs.String("token-audience", "FINONEX_TOKEN_AUDIENCE", token.DefaultAudience, "the `aud` a token must name")
	tokenIssuer := fs.String("token-issuer", "FINONEX_TOKEN_ISSUER", "", "the `iss` a token must carry; empty: not checked")
	window := fs.Duration("idempotency-window", "FINONEX_IDEMPOTENCY_WINDOW", 10*time.Minute, "how long an acknowledged Idempotency-Key is remembered")
	maxKeys := fs.Int("idempotency-max-keys", "FINONEX_IDEMPOTENCY_MAX_KEYS", idempotency.DefaultMaxKeys,
		fmt.Sprintf("most Idempotency-Keys held at once (at most %d B each, so the default is about %d MiB); when full, new keyed events get 503 until old keys expire",
			idempotency.BytesPerKey, idempotency.DefaultMaxKeys*idempotency.BytesPerKey>>20))
	queue := fs.Int("queue", "FINONEX_QUEUE", 16384, "events that may wait to be written before the server sheds load with 503")
	logFormat := fs.String("log-format", "FINONEX_LOG_FORMAT", "text", "log `format`: text or json")
	logRequests := fs.Bool("log-requests", "FINONEX_LOG_REQUESTS", false, "log every request, not only errors")
	stats := fs.Duration("stats-interval", "FINONEX_STATS_INTERVAL", time.Minute, "how often to log a stats line; 0 turns it off")
	shutdown := fs.Duration("shutdown-timeout", "FINONEX_SHUTDOWN_TIMEOUT", 8*time.Second, "how long a graceful shutdown waits for requests in flight (below a container's 10 s grace)")
	if err := fs.Parse(args); err != nil {
		return c, err
	}
	c = config{
		addr: *addr, eventsFile: *events, dsn: *dsn, secret: *secret, oldSecret: *oldSecret,
		tokenKeys: *tokenKeys, tokenAudience: *tokenAudience, tokenIssuer: *tokenIssuer,
		window: *window, maxKeys: *maxKeys, queue: *queue,
		logFormat: *logFormat, logRequests: *logRequests, statsInterval: *stats, shutdown: *shutdown,
	}
	return c, errors.Join(
		cli.Check(fs.NArg() > 0, "", "unexpected arguments %q: the server takes flags only (or: server token ...)", fs.Args()),
		cli.Check(c.addr == "", "addr", "must not be empty"),
		cli.Check(c.eventsFile == "", "events-file", "must not be empty"),
		cli.CheckFlag("events-file", spool.CheckLive(c.eventsFile)),
		cli.Check(c.secret == "" && c.tokenKeys == "", "secret", "must not be empty unless -token-keys is set: every request must present a credential"),
		cli.Check(c.tokenAudience == "", "token-audience", "must not be empty"),
		cli.Check(c.window <= 0, "idempotency-window", "must be positive, got %v", c.window),
		cli.Check(c.maxKeys <= 0, "idempotency-max-keys", "must be at least 1, got %d", c.maxKeys),
		cli.Check(c.queue <= 0, "queue", "must be at least 1, got %d", c.queue),
		cli.CheckFlag("log-format", logs.CheckFormat(c.logFormat)),
		cli.Check(c.statsInterval < 0, "stats-interval", "must not be negative"),
		cli.Check(c.shutdown <= 0, "shutdown-timeout", "must be positive"),
	)
}

func run(ctx context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer) error {
	if len(args) > 0 && args[0] == "token" {
		return runTokenCommand(args[1:], stdout, stderr, time.Now())
	}
	c, err := parseConfig(args, getenv, stderr)
	if err != nil {
		return err
	}
	log := logs.NewLogger(stderr, c.logFormat)
	log.Info("starting", "addr", c.addr, "events_file", c.eventsFile, "db", logs.MaskURL(c.dsn),
		"secret", logs.MaskSecret(c.secret), "old_secret", logs.MaskSecret(c.oldSecret), "token_keys", c.tokenKeys,
		"idempotency_window", c.window, "idempotency_max_keys", c.maxKeys, "queue", c.queue,
		"log_format", c.logFormat, "log_requests", c.logRequests, "stats_interval", c.statsInterval)

	tokens, err := auth.LoadVerifier(c.tokenKeys, c.tokenAudience, c.tokenIssuer)
	if err != nil {
		return cli.CheckFlag("token-keys", err)
	}
	db, err := store.Open(c.dsn)
	if err != nil {
		return cli.CheckFlag("db", err)
	}
	defer db.Close()
	pingCtx, cancel := context.WithTimeout(ctx, 5*time.Second)
	if err := db.Ensure(pingCtx); err != nil {
		log.Warn("PostgreSQL is not ready: events are still accepted, GET /userEvents answers 503 until it is", "err", err)
	}
	cancel()
	reads := db.NewReads(store.ReadOptions{})
	defer reads.Close()

	keys := idempotency.New(c.window, c.maxKeys)
	m := newMetrics(keys, db.Ping)
	// Open the writer first: it removes a torn tail a crash left, before the keys are read.
	w, err := spool.Open(c.eventsFile, spool.Options{QueueSize: c.queue, OnBatch: m.observeBatch})
	if err != nil {
		return cli.PathError("events-file", err)
	}
	m.watchWriter(w)
	m.watchReads(reads)
	n, err := loadKeys(keys, c.eventsFile, c.window, time.Now())
	if err != nil {
		w.Close()
		return fmt.Errorf("reload idempotency keys: %w", err)
	}
	log.Info("idempotency keys reloaded from the events log", "keys", n)
	if keys.Len() > c.maxKeys {
		log.Warn("more idempotency keys reloaded than -idempotency-max-keys: new keyed events get 503 until old keys expire",
			"keys", keys.Len(), "max", c.maxKeys)
	}

	ln, err := net.Listen("tcp", c.addr)
	if err != nil {
		w.Close()
		return cli.CheckFlag("addr", err)
	}
	var h http.Handler = NewServer(log, auth.New([]string{c.secret, c.oldSecret}, tokens), w, keys, reads, m)
	if c.logRequests {
		h = logEach(log, h)
	}
	srv := &http.Server{
		Handler:           h,
		ReadHeaderTimeout: 5 * time.Second,
		ReadTimeout:       30 * time.Second,
		WriteTimeout:      60 * time.Second,
		IdleTimeout:       2 * time.Minute,
		ErrorLog:          slog.NewLogLogger(log.Handler(), slog.LevelWarn),
	}
	// SIGHUP is caught before the listening line, which tells tests and scripts that it is.
	stopReload := auth.WatchReload(ctx, log, tokens, c.tokenKeys)
	logs.Listening(log, ln.Addr())

	var bg sync.WaitGroup
	bgCtx, stopBG := context.WithCancel(ctx)
	bg.Add(1)
	go func() { defer bg.Done(); logStats(bgCtx, log, m, c.statsInterval) }()
	serveErr := serve(ctx, log, srv, ln, c.shutdown)
	stopBG()
	bg.Wait()
	stopReload()
	if err := errors.Join(serveErr, w.Close()); err != nil {
		return err
	}
	log.Info("stopped", "events_written", w.Stats().Lines)
	return nil
}

// serve serves on ln until ctx ends, then shuts down gracefully: no new connections, and the
// requests in flight get up to grace to finish.
func serve(ctx context.Context, log *slog.Logger, srv *http.Server, ln net.Listener, grace time.Duration) error {
	served := make(chan error, 1)
	go func() { served <- srv.Serve(ln) }()
	select {
	case err := <-served:
		return err // Serve failed on its own
	case <-ctx.Done():
		log.Info("shutting down: finishing requests in flight")
	}
	sctx, cancel := context.WithTimeout(context.Background(), grace)
	defer cancel()
	shutdownErr := srv.Shutdown(sctx)
	if err := <-served; !errors.Is(err, http.ErrServerClosed) {
		return errors.Join(err, shutdownErr)
	}
	return shutdownErr
}
