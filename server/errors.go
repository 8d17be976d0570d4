package main

import (
	"errors"
	"fmt"
	"log/slog"
	"net/http"
)

// apiError is an error the caller is told about: its status, a short message, and the
// reason it is counted under. Handlers return or pass on these; errorWriter.write is the one
// place they become responses and are counted.
type apiError struct {
	status     int
	reason     string // the metric label: short, fixed, never data
	msg        string
	retryAfter bool   // the caller should come back: sets Retry-After
	challenge  string // WWW-Authenticate, on 401 and 403
}

func (e *apiError) Error() string { return e.msg }

func badRequest(format string, args ...any) *apiError {
	return &apiError{status: http.StatusBadRequest, reason: "invalid_event", msg: fmt.Sprintf(format, args...)}
}

func unavailable(reason, msg string) *apiError {
	return &apiError{status: http.StatusServiceUnavailable, reason: reason, msg: msg, retryAfter: true}
}

// errorWriter turns errors into responses and counts them by reason.
type errorWriter struct {
	log *slog.Logger
	m   *metrics
}

// write answers err. Anything that is not an apiError is internal: it is logged, and the
// caller gets a generic message.
func (e *errorWriter) write(w http.ResponseWriter, r *http.Request, err error) {
	var ae *apiError
	if !errors.As(err, &ae) {
		e.log.Error("request failed", "method", r.Method, "path", r.URL.Path, "err", err)
		ae = &apiError{status: http.StatusInternalServerError, reason: "internal", msg: "internal error"}
	}
	e.m.rejected(r.Pattern, ae.reason)
	if ae.retryAfter {
		w.Header().Set("Retry-After", "1")
	}
	if ae.challenge != "" {
		w.Header().Set("WWW-Authenticate", ae.challenge)
	}
	writeJSON(w, ae.status, map[string]string{"error": ae.msg})
}
