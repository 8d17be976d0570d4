package prom

import (
	"bytes"
	"strings"
	"testing"
)

// scrape writes reg and parses what it wrote, failing the test if that does not parse.
func scrape(t testing.TB, reg *Registry) (string, map[string]*Family) {
	t.Helper()
	var buf bytes.Buffer
	n, err := reg.WriteTo(&buf)
	if err != nil || n != int64(buf.Len()) {
		t.Fatalf("WriteTo = %d, %v; want %d, nil", n, err, buf.Len())
	}
	fams, err := Parse(bytes.NewReader(buf.Bytes()))
	if err != nil {
		t.Fatalf("Parse(WriteTo output) = %v; want nil\n%s", err, buf.String())
	}
	return buf.String(), fams
}

// wantPanic runs f and fails the test unless it panics with a message containing want.
func wantPanic(t *testing.T, want string, f func()) {
	t.Helper()
	defer func() {
		t.Helper()
		r := recover()
		if r == nil {
			t.Fatalf("no panic; want one mentioning %q", want)
		}
		if msg, _ := r.(string); !strings.Contains(msg, want) {
			t.Fatalf("panic %v; want one mentioning %q", r, want)
		}
	}()
	f()
}
