package prom

// The spelling of the format, both ways: names, escapes, label pairs and values. The writer
// and the parser share it, so what one writes is what the other reads.

import (
	"errors"
	"fmt"
	"math"
	"slices"
	"strconv"
	"strings"
)

// validMetricName reports whether s matches [a-zA-Z_:][a-zA-Z0-9_:]*.
func validMetricName(s string) bool {
	if s == "" || isDigit(s[0]) {
		return false
	}
	for i := 0; i < len(s); i++ {
		if c := s[i]; !isLetter(c) && !isDigit(c) && c != '_' && c != ':' {
			return false
		}
	}
	return true
}

// validLabelName reports whether s matches [a-zA-Z_][a-zA-Z0-9_]* and does not start with
// "__", which Prometheus reserves for its own labels.
func validLabelName(s string) bool {
	if s == "" || isDigit(s[0]) || strings.HasPrefix(s, "__") {
		return false
	}
	for i := 0; i < len(s); i++ {
		if c := s[i]; !isLetter(c) && !isDigit(c) && c != '_' {
			return false
		}
	}
	return true
}

func isLetter(c byte) bool { return 'a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' }
func isDigit(c byte) bool  { return '0' <= c && c <= '9' }

// appendSample appends one sample line: name+suffix, the label pairs in the given order,
// then le if it is not empty, then the value.
func appendSample(b []byte, name, suffix string, labels, values []string, le string, v float64) []byte {
	b = append(b, name...)
	b = append(b, suffix...)
	if len(labels) > 0 || le != "" {
		b = append(b, '{')
		for i, l := range labels {
			if i > 0 {
				b = append(b, ',')
			}
			b = append(b, l...)
			b = append(b, `="`...)
			b = appendEscaped(b, values[i], true)
			b = append(b, '"')
		}
		if le != "" {
			if len(labels) > 0 {
				b = append(b, ',')
			}
			b = append(b, `le="`...)
			b = append(b, le...)
			b = append(b, '"')
		}
		b = append(b, '}')
	}
	b = append(b, ' ')
	b = appendFloat(b, v)
	return append(b, '\n')
}

// appendEscaped appends s with backslash and line feed escaped, and the double quote too in a
// label value (quoted); HELP text keeps its quotes, as the format says.
func appendEscaped(b []byte, s string, quoted bool) []byte {
	if !strings.ContainsAny(s, "\\\n\"") {
		return append(b, s...)
	}
	for i := 0; i < len(s); i++ {
		switch c := s[i]; {
		case c == '\\':
			b = append(b, `\\`...)
		case c == '\n':
			b = append(b, `\n`...)
		case c == '"' && quoted:
			b = append(b, `\"`...)
		default:
			b = append(b, c)
		}
	}
	return b
}

// appendFloat appends v as the format spells a value.
func appendFloat(b []byte, v float64) []byte {
	switch {
	case math.IsInf(v, +1):
		return append(b, "+Inf"...)
	case math.IsInf(v, -1):
		return append(b, "-Inf"...)
	case math.IsNaN(v):
		return append(b, "NaN"...)
	}
	return strconv.AppendFloat(b, v, 'g', -1, 64)
}

// formatFloat is appendFloat to a string.
func formatFloat(v float64) string { return string(appendFloat(nil, v)) }

// parseFloat reads a value or an le label as the format spells one: "+Inf", "-Inf", "NaN", or a
// decimal number. It refuses what strconv.ParseFloat takes beyond that (hex, "inf",
// "Infinity", underscores) and numbers out of float64's range.
func parseFloat(s string) (float64, bool) {
	switch s {
	case "+Inf":
		return math.Inf(+1), true
	case "-Inf":
		return math.Inf(-1), true
	case "NaN":
		return math.NaN(), true
	}
	if !isDecimal(s) {
		return 0, false
	}
	v, err := strconv.ParseFloat(s, 64)
	return v, err == nil
}

// isDecimal reports whether s matches [-+]?(\d+\.?\d*|\.\d+)([eE][-+]?\d+)?.
func isDecimal(s string) bool {
	i := 0
	if i < len(s) && (s[i] == '+' || s[i] == '-') {
		i++
	}
	digits := 0
	for ; i < len(s) && isDigit(s[i]); i++ {
		digits++
	}
	if i < len(s) && s[i] == '.' {
		for i++; i < len(s) && isDigit(s[i]); i++ {
			digits++
		}
	}
	if digits == 0 {
		return false
	}
	if i < len(s) && (s[i] == 'e' || s[i] == 'E') {
		i++
		if i < len(s) && (s[i] == '+' || s[i] == '-') {
			i++
		}
		exp := 0
		for ; i < len(s) && isDigit(s[i]); i++ {
			exp++
		}
		if exp == 0 {
			return false
		}
	}
	return i == len(s)
}

// parseLabels reads the label pairs after a "{", up to and including the "}", and returns
// them with the rest of the line.
func parseLabels(s string) (map[string]string, string, error) {
	labels := map[string]string{}
	if strings.HasPrefix(s, "}") {
		return nil, "", errors.New("empty label set {}")
	}
	for {
		name, rest, ok := strings.Cut(s, "=")
		if !ok {
			return nil, "", errors.New("malformed labels: want name=\"value\"")
		}
		if !validLabelName(name) {
			return nil, "", fmt.Errorf("invalid label name %q (want [a-zA-Z_][a-zA-Z0-9_]*, not starting with __)", name)
		}
		rest, ok = strings.CutPrefix(rest, `"`)
		if !ok {
			return nil, "", fmt.Errorf("label %s: value not quoted", name)
		}
		value, rest, err := unquote(rest)
		if err != nil {
			return nil, "", fmt.Errorf("label %s: %v", name, err)
		}
		if _, dup := labels[name]; dup {
			return nil, "", fmt.Errorf("duplicate label name %q", name)
		}
		labels[name] = value
		switch {
		case strings.HasPrefix(rest, ",}"):
			return nil, "", errors.New("trailing comma in labels")
		case strings.HasPrefix(rest, ","):
			s = rest[1:]
		case strings.HasPrefix(rest, "}"):
			return labels, rest[1:], nil
		default:
			return nil, "", fmt.Errorf("malformed labels: want , or } after label %s", name)
		}
	}
}

// unquote reads a label value up to its closing quote, and returns it unescaped with what
// follows the quote.
func unquote(s string) (string, string, error) {
	var b []byte
	for i := 0; i < len(s); i++ {
		switch c := s[i]; c {
		case '"':
			if b == nil {
				return s[:i], s[i+1:], nil
			}
			return string(b), s[i+1:], nil
		case '\\':
			if b == nil {
				b = append([]byte(nil), s[:i]...)
			}
			if i+1 == len(s) {
				return "", "", errors.New("unterminated value")
			}
			i++
			switch s[i] {
			case '\\':
				b = append(b, '\\')
			case '"':
				b = append(b, '"')
			case 'n':
				b = append(b, '\n')
			default:
				return "", "", fmt.Errorf("bad escape \\%c in value (want \\\\, \\\" or \\n)", s[i])
			}
		default:
			if b != nil {
				b = append(b, c)
			}
		}
	}
	return "", "", errors.New("unterminated value")
}

// unescapeHelp undoes the escapes of HELP text, which are \\ and \n only.
func unescapeHelp(s string) (string, error) {
	if !strings.Contains(s, `\`) {
		return s, nil
	}
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		if s[i] != '\\' {
			b.WriteByte(s[i])
			continue
		}
		i++
		switch {
		case i == len(s):
			return "", errors.New("bad escape: text ends in a lone \\")
		case s[i] == '\\':
			b.WriteByte('\\')
		case s[i] == 'n':
			b.WriteByte('\n')
		default:
			return "", fmt.Errorf("bad escape \\%c in text (want \\\\ or \\n)", s[i])
		}
	}
	return b.String(), nil
}

// labelsText spells labels as {a="x",b="y"}, sorted by name and without skip, for a series
// key and for messages; "" for none.
func labelsText(labels map[string]string, skip string) string {
	names := make([]string, 0, len(labels))
	for n := range labels {
		if n != skip {
			names = append(names, n)
		}
	}
	if len(names) == 0 {
		return ""
	}
	slices.Sort(names)
	b := []byte{'{'}
	for i, n := range names {
		if i > 0 {
			b = append(b, ',')
		}
		b = append(b, n...)
		b = append(b, `="`...)
		b = appendEscaped(b, labels[n], true)
		b = append(b, '"')
	}
	return string(append(b, '}'))
}
