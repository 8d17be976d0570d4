package event

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"strconv"
	"unicode/utf8"
)

// refParse is a strict reference decoder for the event contract, written independently of
// decode.go on top of encoding/json. It is slow and simple on purpose: the fuzz test holds the
// fast decoder to it. With allowKey it also accepts the optional "idempotencyKey" of a record.
//
// encoding/json does the JSON syntax and the unescaping (including its rule that a broken
// UTF-16 surrogate escape becomes U+FFFD); everything encoding/json is lenient about is checked
// here by hand: invalid UTF-8, repeated and unknown keys, the number's exact spelling, and
// data after the object.
func refParse(line []byte, allowKey bool) (Record, error) {
	line = bytes.TrimSuffix(line, []byte("\r")) // exactly one trailing "\r"
	if len(line) > 65536 {
		return Record{}, errors.New("ref: too long")
	}
	if !utf8.Valid(line) {
		return Record{}, errors.New("ref: invalid UTF-8")
	}
	if len(bytes.Trim(line, " \t\r\n")) == 0 {
		return Record{}, errors.New("ref: blank")
	}
	if !json.Valid(line) {
		return Record{}, errors.New("ref: not one JSON value")
	}

	dec := json.NewDecoder(bytes.NewReader(line))
	dec.UseNumber()
	tok, err := dec.Token()
	if err != nil {
		return Record{}, fmt.Errorf("ref: %w", err)
	}
	if d, ok := tok.(json.Delim); !ok || d != '{' {
		return Record{}, errors.New("ref: not an object")
	}

	var rec Record
	seen := map[string]bool{}
	for dec.More() {
		tok, err := dec.Token()
		if err != nil {
			return Record{}, fmt.Errorf("ref: key: %w", err)
		}
		key, ok := tok.(string)
		if !ok {
			return Record{}, errors.New("ref: key is not a string")
		}
		if seen[key] {
			return Record{}, fmt.Errorf("ref: repeated key %q", key)
		}
		seen[key] = true

		tok, err = dec.Token()
		if err != nil {
			return Record{}, fmt.Errorf("ref: value of %q: %w", key, err)
		}
		switch key {
		case "userId":
			s, ok := tok.(string)
			if !ok {
				return Record{}, errors.New("ref: userId is not a string")
			}
			if err := refUserID(s); err != nil {
				return Record{}, err
			}
			rec.UserID = s
		case "name":
			s, ok := tok.(string)
			if !ok || (s != "add_revenue" && s != "subtract_revenue") {
				return Record{}, errors.New("ref: bad name")
			}
			rec.Name = s
		case "value":
			n, ok := tok.(json.Number)
			if !ok {
				return Record{}, errors.New("ref: value is not a number")
			}
			v, err := refValue(string(n))
			if err != nil {
				return Record{}, err
			}
			rec.Value = v
		case "idempotencyKey":
			if !allowKey {
				return Record{}, errors.New("ref: unknown key idempotencyKey")
			}
			s, ok := tok.(string)
			if !ok || !refKey(s) {
				return Record{}, errors.New("ref: bad idempotencyKey")
			}
			rec.Key = s
		default:
			return Record{}, fmt.Errorf("ref: unknown key %q", key)
		}
	}
	if tok, err := dec.Token(); err != nil || tok != json.Delim('}') {
		return Record{}, errors.New("ref: object not closed")
	}
	if _, err := dec.Token(); err != io.EOF {
		return Record{}, errors.New("ref: data after the object")
	}
	for _, k := range []string{"userId", "name", "value"} {
		if !seen[k] {
			return Record{}, fmt.Errorf("ref: missing key %q", k)
		}
	}
	return rec, nil
}

func refUserID(s string) error {
	if len(s) < 1 || len(s) > 255 {
		return errors.New("ref: userId length")
	}
	if !utf8.ValidString(s) {
		return errors.New("ref: userId is not UTF-8")
	}
	for _, r := range s {
		if r <= 0x1f || r == 0x7f {
			return errors.New("ref: control character in userId")
		}
	}
	return nil
}

// refValue checks the number exactly as written: digits only, no leading zero, at most 2^53-1.
func refValue(text string) (int64, error) {
	if text == "" {
		return 0, errors.New("ref: empty number")
	}
	for _, c := range []byte(text) {
		if c < '0' || c > '9' {
			return 0, fmt.Errorf("ref: %q is not a plain integer", text)
		}
	}
	if len(text) > 1 && text[0] == '0' {
		return 0, errors.New("ref: leading zero")
	}
	v, err := strconv.ParseUint(text, 10, 64)
	if err != nil || v > 1<<53-1 {
		return 0, errors.New("ref: value out of range")
	}
	return int64(v), nil
}

func refKey(s string) bool {
	if len(s) < 1 || len(s) > 255 {
		return false
	}
	for _, c := range []byte(s) {
		if c < ' ' || c > '~' {
			return false
		}
	}
	return true
}

// refLine is one line as the reference splitter sees it.
type refLine struct {
	text    string // the line without "\n"; empty when tooLong
	tooLong bool
}

// refSplit splits an events file by the contract: lines end at "\n", a last line may lack
// it, and a line is too long when, without "\n" and one trailing "\r", it is over 65536 bytes.
func refSplit(data []byte) []refLine {
	var out []refLine
	for len(data) > 0 {
		line := data
		if i := bytes.IndexByte(data, '\n'); i >= 0 {
			line, data = data[:i], data[i+1:]
		} else {
			data = nil
		}
		if len(bytes.TrimSuffix(line, []byte("\r"))) > 65536 {
			out = append(out, refLine{tooLong: true})
			continue
		}
		out = append(out, refLine{text: string(line)})
	}
	return out
}
