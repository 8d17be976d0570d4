package token

import (
	"bytes"
	"encoding/json"
	"io"
	"strconv"
	"time"
	"unicode/utf8"
)

// object is one JSON object's top-level members, each still raw JSON.
type object map[string]json.RawMessage

// parseObject decodes data as exactly one UTF-8 JSON object and nothing else (whitespace
// around it is part of JSON text and allowed). It reports false for anything else: another
// kind of value, invalid UTF-8, bytes after the object, or a member name given twice.
//
// encoding/json alone is not enough: it keeps the last of two members with the same name,
// so {"sub":"a","sub":"b"} could mean one thing here and another to a different parser,
// and it matches struct fields case-insensitively. The members are therefore read one by
// one and kept by their exact (unescaped) names.
//
// It never returns the decoder's error: a syntax error quotes the offending character, and
// for a token that character is part of the token.
func parseObject(data []byte) (object, bool) {
	if !utf8.Valid(data) {
		return nil, false
	}
	dec := json.NewDecoder(bytes.NewReader(data))
	if t, err := dec.Token(); err != nil || t != json.Delim('{') {
		return nil, false
	}
	obj := make(object)
	for dec.More() {
		t, err := dec.Token()
		if err != nil {
			return nil, false
		}
		name, ok := t.(string)
		if !ok {
			return nil, false
		}
		var raw json.RawMessage
		if err := dec.Decode(&raw); err != nil {
			return nil, false
		}
		if _, dup := obj[name]; dup {
			return nil, false
		}
		obj[name] = raw
	}
	if t, err := dec.Token(); err != nil || t != json.Delim('}') {
		return nil, false
	}
	if _, err := dec.Token(); err != io.EOF {
		return nil, false
	}
	return obj, true
}

// str returns member name as a string. present is false when the member is absent; ok is
// false when it is present but not a JSON string (null included).
func (o object) str(name string) (s string, present, ok bool) {
	raw, present := o[name]
	if !present {
		return "", false, false
	}
	return rawString(raw)
}

func rawString(raw json.RawMessage) (s string, present, ok bool) {
	if len(raw) == 0 || raw[0] != '"' {
		return "", true, false
	}
	if err := json.Unmarshal(raw, &s); err != nil {
		return "", true, false
	}
	return s, true, true
}

// maxNumericDate is the last second of the year 9999. Later dates, and negative ones, are
// refused rather than converted: a float64 beyond int64's range has no defined conversion.
const maxNumericDate = 253402300799

// date returns member name as a NumericDate (RFC 7519 §2): a JSON number of seconds since
// the epoch, not necessarily whole. present and ok are as for str; a string such as "123"
// is not a number.
func (o object) date(name string) (t time.Time, present, ok bool) {
	raw, present := o[name]
	if !present {
		return time.Time{}, false, false
	}
	// The decoder has checked raw is one JSON value; of those only numbers start so.
	if len(raw) == 0 || raw[0] != '-' && (raw[0] < '0' || raw[0] > '9') {
		return time.Time{}, true, false
	}
	f, err := strconv.ParseFloat(string(raw), 64)
	if err != nil || f < 0 || f > maxNumericDate {
		return time.Time{}, true, false
	}
	sec := int64(f)
	nsec := int64((f - float64(sec)) * 1e9)
	return time.Unix(sec, nsec), true, true
}

// stringArray returns raw as an array of strings; ok is false for anything else,
// including an array with any element that is not a string.
func stringArray(raw json.RawMessage) (ss []string, ok bool) {
	var elems []json.RawMessage
	if len(raw) == 0 || raw[0] != '[' || json.Unmarshal(raw, &elems) != nil {
		return nil, false
	}
	ss = make([]string, 0, len(elems))
	for _, e := range elems {
		s, _, ok := rawString(e)
		if !ok {
			return nil, false
		}
		ss = append(ss, s)
	}
	return ss, true
}
