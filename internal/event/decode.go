package event

import (
	"errors"
	"fmt"
	"strconv"
	"unicode/utf16"
	"unicode/utf8"
)

// Parse decodes one line, or one request body, under the event contract.
func Parse(line []byte) (Event, error) {
	r, err := decode(line, false)
	if err != nil {
		return Event{}, err
	}
	return Event{UserID: string(r.userID), Name: r.name, Value: r.value}, nil
}

// ParseRecord decodes one line of the server's events log: the event contract, plus an
// optional "idempotencyKey" string that only the server writes. Every valid event line is
// also a valid record.
func ParseRecord(line []byte) (Record, error) {
	r, err := decode(line, true)
	if err != nil {
		return Record{}, err
	}
	return Record{Event: Event{UserID: string(r.userID), Name: r.name, Value: r.value}, Key: string(r.key)}, nil
}

// ParseDelta decodes a log line like ParseRecord, but returns only what a sum needs: the
// userId, which may alias line and is valid only until line changes, and the signed delta.
// It does not allocate for lines without escapes.
func ParseDelta(line []byte) (userID []byte, delta int64, err error) {
	r, err := decode(line, true)
	if err != nil {
		return nil, 0, err
	}
	if r.name == SubtractRevenue {
		return r.userID, -r.value, nil
	}
	return r.userID, r.value, nil
}

// raw is a decoded line whose byte slices may alias the input.
type raw struct {
	userID []byte
	name   string
	value  int64
	key    []byte
}

// The keys of a line, as bits, to find missing and repeated ones.
const (
	hasUserID = 1 << iota
	hasName
	hasValue
	hasKey
)

func decode(line []byte, allowKey bool) (raw, error) {
	if n := len(line); n > 0 && line[n-1] == '\r' {
		line = line[:n-1]
	}
	if len(line) > MaxLineBytes {
		return raw{}, ErrLineTooLong
	}
	if !utf8.Valid(line) {
		return raw{}, errors.New("line is not valid UTF-8")
	}
	if IsBlank(line) {
		return raw{}, errors.New("line is blank")
	}
	d := decoder{b: line}
	var r raw
	seen := 0
	d.skipSpace()
	if !d.consume('{') {
		return raw{}, errors.New("not a JSON object")
	}
	d.skipSpace()
	if !d.consume('}') {
		for {
			d.skipSpace()
			k, err := d.str()
			if err != nil {
				return raw{}, fmt.Errorf("object key: %w", err)
			}
			d.skipSpace()
			if !d.consume(':') {
				return raw{}, fmt.Errorf("expected ':' after key %q", k)
			}
			d.skipSpace()
			bit, err := d.member(&r, k, allowKey)
			if err != nil {
				return raw{}, err
			}
			if seen&bit != 0 {
				return raw{}, fmt.Errorf("key %q given twice", k)
			}
			seen |= bit
			d.skipSpace()
			if d.consume(',') {
				continue
			}
			if d.consume('}') {
				break
			}
			return raw{}, errors.New("expected ',' or '}' in object")
		}
	}
	d.skipSpace()
	if d.i != len(d.b) {
		return raw{}, errors.New("unexpected data after the JSON object")
	}
	switch {
	case seen&hasUserID == 0:
		return raw{}, errors.New(`missing key "userId"`)
	case seen&hasName == 0:
		return raw{}, errors.New(`missing key "name"`)
	case seen&hasValue == 0:
		return raw{}, errors.New(`missing key "value"`)
	}
	return r, nil
}

// member decodes the value of key k into r and returns the key's bit.
func (d *decoder) member(r *raw, k []byte, allowKey bool) (int, error) {
	switch string(k) {
	case "userId":
		s, err := d.str()
		if err != nil {
			return 0, fmt.Errorf("userId must be a JSON string: %w", err)
		}
		if err := validUserID(s); err != nil {
			return 0, err
		}
		r.userID = s
		return hasUserID, nil
	case "name":
		s, err := d.str()
		if err != nil {
			return 0, fmt.Errorf(`name must be the string "add_revenue" or "subtract_revenue": %w`, err)
		}
		switch string(s) {
		case AddRevenue:
			r.name = AddRevenue
		case SubtractRevenue:
			r.name = SubtractRevenue
		default:
			return 0, fmt.Errorf(`name must be "add_revenue" or "subtract_revenue", got %q`, s)
		}
		return hasName, nil
	case "value":
		v, err := d.integer()
		if err != nil {
			return 0, err
		}
		r.value = v
		return hasValue, nil
	case "idempotencyKey":
		if !allowKey {
			break
		}
		s, err := d.str()
		if err != nil {
			return 0, fmt.Errorf("idempotencyKey must be a JSON string: %w", err)
		}
		if err := ValidKey(string(s)); err != nil {
			return 0, err
		}
		r.key = s
		return hasKey, nil
	}
	return 0, fmt.Errorf("unknown key %q", k)
}

// decoder walks one line. Its input is valid UTF-8 (checked before).
type decoder struct {
	b []byte
	i int
}

func (d *decoder) skipSpace() {
	for d.i < len(d.b) && isSpace(d.b[d.i]) {
		d.i++
	}
}

func (d *decoder) consume(c byte) bool {
	if d.i < len(d.b) && d.b[d.i] == c {
		d.i++
		return true
	}
	return false
}

// str decodes a JSON string. Without escapes the result aliases the input.
func (d *decoder) str() ([]byte, error) {
	if !d.consume('"') {
		return nil, errors.New("not a string")
	}
	start := d.i
	for d.i < len(d.b) {
		switch c := d.b[d.i]; {
		case c == '"':
			s := d.b[start:d.i]
			d.i++
			return s, nil
		case c == '\\':
			return d.unescape(start)
		case c < 0x20:
			return nil, errors.New("control character in string")
		}
		d.i++
	}
	return nil, errors.New("unterminated string")
}

// unescape decodes a string holding escapes, from start (just after the quote) on, the way
// encoding/json does: an invalid surrogate becomes U+FFFD.
func (d *decoder) unescape(start int) ([]byte, error) {
	out := append(make([]byte, 0, d.i-start+16), d.b[start:d.i]...)
	for d.i < len(d.b) {
		c := d.b[d.i]
		switch {
		case c == '"':
			d.i++
			return out, nil
		case c < 0x20:
			return nil, errors.New("control character in string")
		case c != '\\':
			out = append(out, c)
			d.i++
			continue
		}
		if d.i+1 >= len(d.b) {
			break
		}
		e := d.b[d.i+1]
		d.i += 2
		switch e {
		case '"', '\\', '/':
			out = append(out, e)
		case 'b':
			out = append(out, '\b')
		case 'f':
			out = append(out, '\f')
		case 'n':
			out = append(out, '\n')
		case 'r':
			out = append(out, '\r')
		case 't':
			out = append(out, '\t')
		case 'u':
			r, ok := hex4(d.b[d.i:])
			if !ok {
				return nil, errors.New(`invalid \u escape in string`)
			}
			d.i += 4
			if utf16.IsSurrogate(r) {
				if r2, ok := d.lowSurrogate(); ok {
					if dec := utf16.DecodeRune(r, r2); dec != utf8.RuneError {
						d.i += 6
						out = utf8.AppendRune(out, dec)
						continue
					}
				}
				r = utf8.RuneError
			}
			out = utf8.AppendRune(out, r)
		default:
			return nil, fmt.Errorf("invalid escape \\%c in string", e)
		}
	}
	return nil, errors.New("unterminated string")
}

// lowSurrogate peeks at a \uXXXX escape right after the current one.
func (d *decoder) lowSurrogate() (rune, bool) {
	rest := d.b[d.i:]
	if len(rest) < 6 || rest[0] != '\\' || rest[1] != 'u' {
		return 0, false
	}
	return hex4(rest[2:])
}

func hex4(b []byte) (rune, bool) {
	if len(b) < 4 {
		return 0, false
	}
	var r rune
	for _, c := range b[:4] {
		switch {
		case '0' <= c && c <= '9':
			c -= '0'
		case 'a' <= c && c <= 'f':
			c = c - 'a' + 10
		case 'A' <= c && c <= 'F':
			c = c - 'A' + 10
		default:
			return 0, false
		}
		r = r<<4 | rune(c)
	}
	return r, true
}

var errValue = errors.New("value must be a JSON integer from 0 to " + strconv.Itoa(MaxValue))

// integer decodes value: digits only, no leading zeros, 0 to MaxValue.
func (d *decoder) integer() (int64, error) {
	if d.i >= len(d.b) {
		return 0, errValue
	}
	switch c := d.b[d.i]; {
	case c == '-':
		return 0, errors.New("value must not be negative")
	case c == '"':
		return 0, errors.New("value must be a JSON number, not a string")
	case c < '0' || c > '9':
		return 0, errValue
	}
	start := d.i
	var v int64
	for d.i < len(d.b) && '0' <= d.b[d.i] && d.b[d.i] <= '9' {
		if v <= MaxValue {
			v = v*10 + int64(d.b[d.i]-'0')
		}
		d.i++
	}
	if d.b[start] == '0' && d.i-start > 1 {
		return 0, errors.New("value has a leading zero")
	}
	if d.i < len(d.b) {
		if c := d.b[d.i]; c == '.' || c == 'e' || c == 'E' {
			return 0, errors.New("value must be an integer, without fraction or exponent")
		}
	}
	if v > MaxValue {
		return 0, errValue
	}
	return v, nil
}
