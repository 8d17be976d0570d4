package logs

import (
	"bytes"
	"strings"
	"testing"
)

func TestNewLogger(t *testing.T) {
	var text, js bytes.Buffer
	NewLogger(&text, "text").Info("hello", "k", "v")
	NewLogger(&js, "json").Info("hello", "k", "v")
	if !strings.Contains(text.String(), "msg=hello k=v") {
		t.Errorf("text logger wrote %q; want msg=hello k=v", text.String())
	}
	if !strings.Contains(js.String(), `"msg":"hello","k":"v"`) {
		t.Errorf("json logger wrote %q; want JSON", js.String())
	}
}

func TestMaskURL(t *testing.T) {
	tests := []struct {
		in   string
		want string // exact, or "" to only check that secret is gone
		leak string // must not appear in the output
	}{
		{in: "postgres://postgres:hunter2@localhost:5432/finonex?sslmode=disable",
			want: "postgres://postgres:xxxxx@localhost:5432/finonex?sslmode=disable", leak: "hunter2"},
		{in: "postgres://u:p%40ss%2Fw0rd@db.example:5432/x", leak: "p%40ss"},
		{in: "postgresql://u:s3cr3t@h/db", want: "postgresql://u:xxxxx@h/db", leak: "s3cr3t"},
		{in: "postgres://postgres@localhost:5432/finonex?sslmode=disable",
			want: "postgres://postgres@localhost:5432/finonex?sslmode=disable"},
		{in: "postgres://localhost/finonex", want: "postgres://localhost/finonex"},
		{in: "http://user:pw@example.com/path", want: "http://user:xxxxx@example.com/path", leak: ":pw@"},
		{in: "host=localhost user=postgres password=hunter2 dbname=finonex sslmode=disable",
			want: "host=localhost user=postgres password=xxxxx dbname=finonex sslmode=disable", leak: "hunter2"},
		{in: "password=hunter2", want: "password=xxxxx", leak: "hunter2"},
		{in: "host=localhost dbname=finonex", want: "host=localhost dbname=finonex"},
		{in: "", want: ""},
	}
	for _, tt := range tests {
		got := MaskURL(tt.in)
		if tt.want != "" || tt.in == "" {
			if got != tt.want {
				t.Errorf("MaskURL(%q) = %q; want %q", tt.in, got, tt.want)
			}
		}
		if tt.leak != "" && strings.Contains(got, tt.leak) {
			t.Errorf("MaskURL(%q) = %q; still shows %q", tt.in, got, tt.leak)
		}
	}
}

// TestMaskURLPasswordForms covers the other ways lib/pq (which the programs use) accepts a
// password in a DSN: as a URL query parameter, and in key=value form quoted with spaces or
// with spaces around "=". Each is a real, working DSN for pq, so each must be masked in logs.
func TestMaskURLPasswordForms(t *testing.T) {
	tests := []struct {
		in   string
		leak []string
	}{
		{"postgres://postgres@localhost:5432/finonex?sslmode=disable&password=hunter2", []string{"hunter2"}},
		{"postgres://localhost/finonex?password=hunter2", []string{"hunter2"}},
		{"host=localhost password='correct horse battery' dbname=finonex", []string{"horse", "battery"}},
		{"host=localhost password = hunter2 dbname=finonex", []string{"hunter2"}},
	}
	for _, tt := range tests {
		got := MaskURL(tt.in)
		for _, leak := range tt.leak {
			if strings.Contains(got, leak) {
				t.Errorf("MaskURL(%q) = %q; the password part %q is still visible", tt.in, got, leak)
			}
		}
	}
}

func TestMaskSecret(t *testing.T) {
	if got := MaskSecret(""); got != "(empty)" {
		t.Errorf("MaskSecret(\"\") = %q; want %q", got, "(empty)")
	}
	got := MaskSecret("hunter2")
	if strings.Contains(got, "hunter2") || got != "(set, 7 bytes)" {
		t.Errorf("MaskSecret(hunter2) = %q; want %q", got, "(set, 7 bytes)")
	}
}

func TestCheckFormat(t *testing.T) {
	for format, bad := range map[string]bool{"text": false, "json": false, "xml": true, "": true, "JSON": true} {
		if err := CheckFormat(format); (err != nil) != bad {
			t.Errorf("CheckFormat(%q) = %v; want error %v", format, err, bad)
		}
	}
}
