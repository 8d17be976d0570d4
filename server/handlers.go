package main

import (
	"context"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"path/filepath"
	"syscall"
	"time"

	"finonex/internal/event"
	"finonex/internal/idempotency"
	"finonex/internal/spool"
	"finonex/internal/store"
)

// apiError is an error with the status and the short message the caller gets.
type apiError struct {
	status     int
	msg        string
	retryAfter bool // the caller should come back: sets Retry-After
}

func (e *apiError) Error() string { return e.msg }

func badRequest(format string, args ...any) *apiError {
	return &apiError{status: http.StatusBadRequest, msg: fmt.Sprintf(format, args...)}
}

// writeError is the one place errors become responses. Anything that is not an apiError is
// internal: it is logged, and the caller gets a generic message.
func writeError(w http.ResponseWriter, log *slog.Logger, r *http.Request, err error) {
	var ae *apiError
	if !errors.As(err, &ae) {
		log.Error("request failed", "method", r.Method, "path", r.URL.Path, "err", err)
		ae = &apiError{status: http.StatusInternalServerError, msg: "internal error"}
	}
	if ae.retryAfter {
		w.Header().Set("Retry-After", "1")
	}
	writeJSON(w, ae.status, map[string]string{"error": ae.msg})
}

// writeJSON is the one place responses are encoded.
func writeJSON(w http.ResponseWriter, status int, v any) {
	body, err := json.Marshal(v)
	if err != nil { // only for values that cannot be encoded: a programming error
		http.Error(w, `{"error":"internal error"}`, http.StatusInternalServerError)
		return
	}
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	w.Write(append(body, '\n'))
}

// requireSecret lets a request through only when its Authorization header equals one of
// the secrets. Both sides are hashed first, and every secret is compared, so the time taken
// says nothing about the secrets.
func requireSecret(secrets []string) func(http.Handler) http.Handler {
	want := make([][sha256.Size]byte, len(secrets))
	for i, s := range secrets {
		want[i] = sha256.Sum256([]byte(s))
	}
	return func(next http.Handler) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			got := sha256.Sum256([]byte(r.Header.Get("Authorization")))
			ok := 0
			for i := range want {
				ok |= subtle.ConstantTimeCompare(got[:], want[i][:])
			}
			if ok != 1 {
				writeJSON(w, http.StatusUnauthorized, map[string]string{"error": "missing or wrong Authorization header"})
				return
			}
			next.ServeHTTP(w, r)
		})
	}
}

type stored struct {
	Status string `json:"status"`
}

// handleLiveEvent appends one event to the events file and answers 200 once it is on disk.
// With an Idempotency-Key, a retry of an acknowledged event is answered from the window
// instead of being written again.
func handleLiveEvent(log *slog.Logger, wr *spool.Writer, keys *idempotency.Window, m *metrics) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		ev, key, err := readEvent(w, r)
		if err != nil {
			m.reject(err)
			writeError(w, log, r, err)
			return
		}
		line := event.AppendJSON(nil, event.Record{Event: ev})
		if key != "" {
			switch keys.Begin(key, idempotency.Fingerprint(line), time.Now()) {
			case idempotency.Replay:
				m.replayed.Add(1)
				w.Header().Set("Idempotent-Replayed", "true")
				writeJSON(w, http.StatusOK, stored{"stored"})
				return
			case idempotency.Conflict:
				m.rejected.Add("key_conflict", 1)
				writeError(w, log, r, &apiError{status: http.StatusUnprocessableEntity, msg: "Idempotency-Key was already used for a different event"})
				return
			case idempotency.InFlight:
				m.rejected.Add("key_in_flight", 1)
				writeError(w, log, r, &apiError{status: http.StatusConflict, msg: "a request with this Idempotency-Key is still in flight; retry", retryAfter: true})
				return
			}
			line = event.AppendJSON(line[:0], event.Record{Event: ev, Key: key})
		}
		err = wr.Append(line)
		if key != "" {
			keys.Finish(key, err == nil, time.Now())
		}
		switch {
		case errors.Is(err, spool.ErrFull):
			m.rejected.Add("busy", 1)
			err = &apiError{status: http.StatusServiceUnavailable, msg: "server is busy; retry later", retryAfter: true}
		case errors.Is(err, spool.ErrClosed):
			err = &apiError{status: http.StatusServiceUnavailable, msg: "server is shutting down; retry later", retryAfter: true}
		case err != nil:
			m.rejected.Add("write_failed", 1)
		}
		if err != nil {
			writeError(w, log, r, err)
			return
		}
		m.accepted.Add(1)
		writeJSON(w, http.StatusOK, stored{"stored"})
	})
}

// readEvent reads and checks a POST body and its Idempotency-Key header. The server then
// encodes the event itself: the raw body never reaches the file.
func readEvent(w http.ResponseWriter, r *http.Request) (ev event.Event, key string, err error) {
	body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, event.MaxLineBytes))
	var tooBig *http.MaxBytesError
	switch {
	case errors.As(err, &tooBig):
		return ev, "", &apiError{status: http.StatusRequestEntityTooLarge, msg: fmt.Sprintf("body is larger than %d bytes", event.MaxLineBytes)}
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

// handleUserEvents answers a user's revenue from PostgreSQL.
func handleUserEvents(log *slog.Logger, db *store.Store, m *metrics) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		m.getRequests.Add(1)
		id := r.PathValue("userid")
		if err := event.ValidUserID(id); err != nil {
			// No event can carry this id, so no row can hold it: a user with no row.
			writeError(w, log, r, &apiError{status: http.StatusNotFound, msg: fmt.Sprintf("no revenue recorded for this user: not a valid userId (%v)", err)})
			return
		}
		ctx, cancel := context.WithTimeout(r.Context(), 5*time.Second)
		defer cancel()
		rev, err := db.Revenue(ctx, id)
		switch {
		case errors.Is(err, store.ErrNotFound):
			writeError(w, log, r, &apiError{status: http.StatusNotFound, msg: "no revenue recorded for this user"})
		case err != nil:
			m.getErrors.Add(1)
			log.Error("revenue query failed", "err", err)
			writeError(w, log, r, &apiError{status: http.StatusServiceUnavailable, msg: "database unavailable; retry later", retryAfter: true})
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

// handleReadyz answers 200 when events can be written and PostgreSQL answers, else 503 with
// the reason. It reveals no data.
func handleReadyz(wr *spool.Writer, db *store.Store, eventsFile string) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		ctx, cancel := context.WithTimeout(r.Context(), 2*time.Second)
		defer cancel()
		var problems []string
		if err := wr.Healthy(); errors.Is(err, spool.ErrStopped) {
			problems = append(problems, "events file: writes stopped after a failure the server could not repair; see the server log, then restart")
		} else if err != nil {
			problems = append(problems, "events file: a write failed in the last seconds; see the server log")
		} else if syscall.Access(filepath.Dir(eventsFile), 2 /* W_OK */) != nil {
			problems = append(problems, "events file: its directory is not writable")
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
func handleWrongMethod(log *slog.Logger, allow string) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Allow", allow)
		writeError(w, log, r, &apiError{status: http.StatusMethodNotAllowed, msg: r.Method + " is not allowed here; use " + allow})
	})
}

// handleNotFound answers 404 for every unknown path.
func handleNotFound(log *slog.Logger) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		writeError(w, log, r, &apiError{status: http.StatusNotFound, msg: "no such endpoint: see POST /liveEvent, GET /userEvents/{userid}"})
	})
}

// logEach logs every request: -log-requests.
func logEach(log *slog.Logger, next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		start := time.Now()
		rec := &statusRecorder{ResponseWriter: w, status: http.StatusOK}
		next.ServeHTTP(rec, r)
		log.Info("request", "method", r.Method, "path", r.URL.Path, "status", rec.status, "duration", time.Since(start))
	})
}

type statusRecorder struct {
	http.ResponseWriter
	status int
}

func (s *statusRecorder) WriteHeader(code int) {
	s.status = code
	s.ResponseWriter.WriteHeader(code)
}
