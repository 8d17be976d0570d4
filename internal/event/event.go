// Package event is the event contract: what a valid revenue event line is, how it is decoded,
// and the one canonical way it is written back.
//
// A line is valid when it is one JSON object with exactly the keys "userId", "name" and
// "value", in any order, with any JSON whitespace, and nothing after it:
//
//   - userId: a JSON string whose decoded value is 1 to 255 bytes of UTF-8 with no control
//     characters (U+0000 to U+001F, U+007F);
//   - name: "add_revenue" or "subtract_revenue" after decoding;
//   - value: a JSON integer written without sign, fraction or exponent, 0 to 2^53-1.
//
// Invalid UTF-8 anywhere, a missing, unknown or repeated key, or a line over MaxLineBytes
// makes a line invalid. A trailing "\r" is ignored; blank lines are skipped by readers (see
// IsBlank). The decoder is purpose-built for speed; a fuzz test holds it to a strict reference
// decoder built on encoding/json.
package event

import (
	"errors"
	"fmt"
	"strconv"
	"unicode/utf8"
)

const (
	// MaxLineBytes is the longest valid line or request body, without its line ending.
	MaxLineBytes = 64 << 10
	// MaxUserIDBytes is the longest valid userId, in bytes after JSON decoding.
	MaxUserIDBytes = 255
	// MaxValue is the largest valid value, 2^53-1: the largest integer every JSON
	// implementation represents exactly.
	MaxValue = 1<<53 - 1
	// MaxKeyBytes is the longest valid idempotency key.
	MaxKeyBytes = 255
)

// The two event names.
const (
	AddRevenue      = "add_revenue"
	SubtractRevenue = "subtract_revenue"
)

// Event is one valid revenue event.
type Event struct {
	UserID string
	Name   string // AddRevenue or SubtractRevenue
	Value  int64  // 0 to MaxValue
}

// Delta is the event's signed effect on the user's revenue.
func (e Event) Delta() int64 {
	if e.Name == SubtractRevenue {
		return -e.Value
	}
	return e.Value
}

// Record is one line of the server's events log: an event and, when the client sent one,
// the idempotency key it was acknowledged under. A plain event line is a Record without a key.
type Record struct {
	Event
	Key string
}

// ErrLineTooLong reports a line longer than MaxLineBytes.
var ErrLineTooLong = fmt.Errorf("line is longer than %d bytes", MaxLineBytes)

// Add returns a+b, or an error when the sum does not fit in an int64.
// Totals never wrap: money that overflows is an error.
func Add(a, b int64) (int64, error) {
	s := a + b
	if (b > 0 && s < a) || (b < 0 && s > a) {
		return 0, errors.New("revenue total overflows a 64-bit integer")
	}
	return s, nil
}

// ValidUserID reports whether id, already decoded, is a valid userId.
func ValidUserID(id string) error {
	if !utf8.ValidString(id) {
		return errors.New("userId is not valid UTF-8")
	}
	return validUserID(id)
}

// validUserID checks a userId that is known to be valid UTF-8.
func validUserID[T string | []byte](id T) error {
	if len(id) == 0 || len(id) > MaxUserIDBytes {
		return fmt.Errorf("userId must be 1 to %d bytes, got %d", MaxUserIDBytes, len(id))
	}
	for i := 0; i < len(id); i++ {
		if c := id[i]; c < 0x20 || c == 0x7f {
			return errors.New("userId contains a control character")
		}
	}
	return nil
}

// ValidKey reports whether k is a usable idempotency key: 1 to MaxKeyBytes printable ASCII
// characters, so that it can travel in a header and be stored in a log line as it is.
func ValidKey(k string) error {
	if len(k) == 0 || len(k) > MaxKeyBytes {
		return fmt.Errorf("idempotency key must be 1 to %d bytes", MaxKeyBytes)
	}
	for i := 0; i < len(k); i++ {
		if k[i] < 0x20 || k[i] > 0x7e {
			return errors.New("idempotency key must be printable ASCII")
		}
	}
	return nil
}

// AppendJSON appends the canonical line of r, without a newline, to dst:
//
//	{"userId":"user1","name":"add_revenue","value":98}
//
// with ,"idempotencyKey":"..." before the closing brace when r has a key. A valid userId
// has no control characters, so only '"' and '\\' need escaping, and the result is always
// exactly one line.
func AppendJSON(dst []byte, r Record) []byte {
	dst = append(dst, `{"userId":`...)
	dst = appendString(dst, r.UserID)
	dst = append(dst, `,"name":"`...)
	dst = append(dst, r.Name...)
	dst = append(dst, `","value":`...)
	dst = strconv.AppendInt(dst, r.Value, 10)
	if r.Key != "" {
		dst = append(dst, `,"idempotencyKey":`...)
		dst = appendString(dst, r.Key)
	}
	return append(dst, '}')
}

func appendString(dst []byte, s string) []byte {
	dst = append(dst, '"')
	for i := 0; i < len(s); i++ {
		switch c := s[i]; c {
		case '"', '\\':
			dst = append(dst, '\\', c)
		default:
			if c < 0x20 || c == 0x7f { // never in a valid event; kept safe anyway
				dst = append(dst, `\u00`...)
				dst = append(dst, "0123456789abcdef"[c>>4], "0123456789abcdef"[c&0xf])
				continue
			}
			dst = append(dst, c)
		}
	}
	return append(dst, '"')
}

// IsBlank reports whether line holds only JSON whitespace: readers skip such lines.
func IsBlank(line []byte) bool {
	for _, c := range line {
		if !isSpace(c) {
			return false
		}
	}
	return true
}

func isSpace(c byte) bool { return c == ' ' || c == '\t' || c == '\r' || c == '\n' }
