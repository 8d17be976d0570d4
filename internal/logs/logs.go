// Package logs builds the programs' one logger and keeps secrets out of it: a database URL's
// password and a secret's value are masked before they are logged.
package logs

import (
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/url"
	"regexp"
)

// CheckFormat checks a log format's name: text or json.
func CheckFormat(format string) error {
	if format != "text" && format != "json" {
		return fmt.Errorf("want text or json, got %q", format)
	}
	return nil
}

// NewLogger returns the program's one logger, writing text or JSON lines to w.
func NewLogger(w io.Writer, format string) *slog.Logger {
	if format == "json" {
		return slog.New(slog.NewJSONHandler(w, nil))
	}
	return slog.New(slog.NewTextHandler(w, nil))
}

// kvPassword matches a password in a key=value connection string, quoted or not.
var kvPassword = regexp.MustCompile(`password\s*=\s*('(?:[^'\\]|\\.)*'|\S*)`)

// MaskURL hides the password in a database URL (in its user part or its query) or in a
// key=value connection string, for logs.
func MaskURL(s string) string {
	u, err := url.Parse(s)
	if err != nil || u.Scheme == "" || u.Host == "" && u.User == nil {
		return kvPassword.ReplaceAllString(s, "password=xxxxx")
	}
	if _, ok := u.User.Password(); ok {
		u.User = url.UserPassword(u.User.Username(), "xxxxx")
	}
	if q := u.Query(); q.Has("password") {
		q.Set("password", "xxxxx")
		u.RawQuery = q.Encode()
	}
	return u.String()
}

// MaskSecret shows that a secret is set without showing it.
func MaskSecret(s string) string {
	if s == "" {
		return "(empty)"
	}
	return fmt.Sprintf("(set, %d bytes)", len(s))
}

// listeningMsg is the message of the line a server logs once it listens. Tests and the
// benchmarks read the address from it: ListeningAddr is the one reader.
const listeningMsg = "listening"

// Listening logs that the program listens on addr, in the one form ListeningAddr reads.
func Listening(log *slog.Logger, addr net.Addr) {
	log.Info(listeningMsg, "addr", addr.String())
}

// listeningLine matches Listening's line in the text format.
var listeningLine = regexp.MustCompile(`msg=` + listeningMsg + ` addr=(\S+)`)

// ListeningAddr returns the address in a line Listening wrote in the text format.
func ListeningAddr(line string) (string, bool) {
	m := listeningLine.FindStringSubmatch(line)
	if m == nil {
		return "", false
	}
	return m[1], true
}
