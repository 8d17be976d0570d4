package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"time"

	"finonex/internal/event"
	"finonex/internal/idempotency"
	"finonex/internal/spool"
	"finonex/internal/store"
)

// writeJSON is the one place responses are encoded.
func writeJSON(w http.ResponseWriter, status int, v any) {
	body, err := json.Marshal(v)
	if err != nil { // only for values that cannot be encoded: a programming error
		http.Error(w, `{"error":"internal error"}`, http.StatusInternalServerError)
		return
	}
	writeBody(w, status, append(body, '\n'))
}

// writeBody sends an encoded JSON body.
func writeBody(w http.ResponseWriter, status int, body []byte) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	w.Write(body)
}

// stored is the answer to an event that is on disk, encoded once because it is the same for
// every event (encoding it took about 2% of the server's CPU an event). Never written to.
var stored = []byte(`{"status":"stored"}` + "\n")

// handleLiveEvent appends one event to the events file and answers 200 once it is on disk.
// With an Idempotency-Key, a retry of an acknowledged event is answered from the window
// instead of being written again.
func handleLiveEvent(errs *errorWriter, wr *spool.Writer, keys *idempotency.Window, m *metrics) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if err := liveEvent(w, r, wr, keys, m); err != nil {
			errs.write(w, r, err)
		}
	})
}

func liveEvent(w http.ResponseWriter, r *http.Request, wr *spool.Writer, keys *idempotency.Window, m *metrics) error {
	ev, key, err := readEvent(w, r)
	if err != nil {
		return err
	}
	// The line as it goes to the file, key included, is also what the key's fingerprint is
	// taken of: a retry of the same event with the same key makes the same line.
	line := event.AppendJSON(nil, event.Record{Event: ev, Key: key})
	if key != "" {
		switch keys.Begin(key, idempotency.Fingerprint(line), time.Now()) {
		case idempotency.Replay:
			m.replayed.Inc()
			w.Header().Set("Idempotent-Replayed", "true")
			writeBody(w, http.StatusOK, stored)
			return nil
		case idempotency.Conflict:
			return &apiError{status: http.StatusUnprocessableEntity, reason: "key_conflict", msg: "Idempotency-Key was already used for a different event"}
		case idempotency.InFlight:
			return &apiError{status: http.StatusConflict, reason: "key_in_flight", msg: "a request with this Idempotency-Key is still in flight; retry", retryAfter: true}
		case idempotency.Full:
			return unavailable("keys_full", "server holds the most Idempotency-Keys it may; retry later")
		}
	}
	err = wr.Append(line)
	if key != "" {
		keys.Finish(key, err == nil, time.Now())
	}
	switch {
	case errors.Is(err, spool.ErrFull):
		return unavailable("busy", "server is busy; retry later")
	case errors.Is(err, spool.ErrClosed):
		return unavailable("shutting_down", "server is shutting down; retry later")
	case err != nil:
		return err
	}
	m.accepted.Inc()
	writeBody(w, http.StatusOK, stored)
	return nil
}

// readEvent reads and checks a POST body and its Idempotency-Key header. The server then
// encodes the event itself: the raw body never reaches the file.
func readEvent(w http.ResponseWriter, r *http.Request) (ev event.Event, key string, err error) {
	body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, event.MaxLineBytes))
	var tooBig *http.MaxBytesError
	switch {
	case errors.As(err, &tooBig):
		return ev, "", &apiError{status: http.StatusRequestEntityTooLarge, reason: "too_large", msg: fmt.Sprintf("body is larger than %d bytes", event.MaxLineBytes)}
	case err != nil:
		return ev, "", badRequest("could not read body: %v", err)
	case event.IsBlank(body):
		return ev, "", badRequest("body is empty: send one event as a JSON object")
	}
	ev, err = event.Parse(body)
	if err != nil {
		return ev, "", badRequest("%v", err)
	}
	key = r.Header.Get("Idempotency-Key")
	if _, sent := r.Header["Idempotency-Key"]; sent {
		if err := event.ValidKey(key); err != nil {
			return ev, "", badRequest("Idempotency-Key: %v", err)
		}
	}
	return ev, key, nil
}

type revenue struct {
	UserID  string `json:"user_id"`
	Revenue int64  `json:"revenue"`
}

// revenueReader answers a user's revenue: store.ErrNotFound for a user with no row.
type revenueReader interface {
	Revenue(ctx context.Context, userID string) (int64, error)
}

// handleUserEvents answers a user's revenue from PostgreSQL.
func handleUserEvents(errs *errorWriter, db revenueReader, m *metrics) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		id := r.PathValue("userid")
		if err := event.ValidUserID(id); err != nil {
			// No event can carry this id, so no row can hold it: a user with no row.
			errs.write(w, r, &apiError{status: http.StatusNotFound, reason: "not_found", msg: fmt.Sprintf("no revenue recorded for this user: not a valid userId (%v)", err)})
			return
		}
		ctx, cancel := context.WithTimeout(r.Context(), 5*time.Second)
		defer cancel()
		rev, err := db.Revenue(ctx, id)
		switch {
		case errors.Is(err, store.ErrNotFound):
			errs.write(w, r, &apiError{status: http.StatusNotFound, reason: "not_found", msg: "no revenue recorded for this user"})
		case errors.Is(err, store.ErrReadsFull):
			errs.write(w, r, unavailable("busy", "server is busy; retry later"))
		case err != nil:
			m.getErrors.Inc()
			errs.log.Error("revenue query failed", "err", err)
			errs.write(w, r, unavailable("db_unavailable", "database unavailable; retry later"))
		default:
			writeJSON(w, http.StatusOK, revenue{UserID: id, Revenue: rev})
		}
	})
}

// handleHealthz answers 200 while the process is up.
func handleHealthz() http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		writeJSON(w, http.StatusOK, map[string]string{"status": "ok"})
	})
}

// pinger is what readiness asks of the database.
type pinger interface {
	Ping(ctx context.Context) error
}

// handleReadyz answers 200 when events can be written and PostgreSQL answers, else 503 with
// the reasons. It reveals no data.
func handleReadyz(wr *spool.Writer, db pinger) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		ctx, cancel := context.WithTimeout(r.Context(), 2*time.Second)
		defer cancel()
		var problems []string
		switch err := wr.Healthy(); {
		case errors.Is(err, spool.ErrStopped):
			problems = append(problems, "events file: writes stopped after a failure the server could not repair; see the server log, then restart")
		case errors.Is(err, spool.ErrNotWritable):
			problems = append(problems, "events file: its directory is not writable")
		case err != nil:
			problems = append(problems, "events file: a write failed in the last seconds; see the server log")
		}
		if err := db.Ping(ctx); err != nil {
			problems = append(problems, "database: unavailable")
		}
		if len(problems) > 0 {
			writeJSON(w, http.StatusServiceUnavailable, map[string]any{"status": "not ready", "problems": problems})
			return
		}
		writeJSON(w, http.StatusOK, map[string]string{"status": "ready"})
	})
}

// handleWrongMethod answers 405 for a known path asked with a method it does not serve.
func handleWrongMethod(errs *errorWriter, allow string) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Allow", allow)
		errs.write(w, r, &apiError{status: http.StatusMethodNotAllowed, reason: "wrong_method", msg: r.Method + " is not allowed here; use " + allow})
	})
}

// handleNotFound answers 404 for every unknown path.
func handleNotFound(errs *errorWriter) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		errs.write(w, r, &apiError{status: http.StatusNotFound, reason: "no_route", msg: "no such endpoint: see POST /liveEvent, GET /userEvents/{userid}"})
	})
}

// logEach logs every request: -log-requests. The path is logged, never a header.
func logEach(log *slog.Logger, next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		start := time.Now()
		rec := &statusRecorder{ResponseWriter: w, status: http.StatusOK}
		next.ServeHTTP(rec, r)
		log.Info("request", "method", r.Method, "path", r.URL.Path, "status", rec.status, "duration", time.Since(start))
	})
}

// statusRecorder remembers the status a handler answered with.
type statusRecorder struct {
	http.ResponseWriter
	status int
}

func (s *statusRecorder) WriteHeader(code int) {
	s.status = code
	s.ResponseWriter.WriteHeader(code)
}
