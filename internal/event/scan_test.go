package event

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"slices"
	"strings"
	"testing"
	"testing/iotest"
)

// bufSizes are the sizes passed to NewScanner: below its minimum, at it, and well above.
var bufSizes = []int{0, 1, 4096, 2*MaxLineBytes + 2, 2*MaxLineBytes + 3, 1 << 20}

// readers wrap the input in ways that split it differently across Read calls.
var readers = []struct {
	name string
	wrap func(io.Reader) io.Reader
}{
	{"plain", func(r io.Reader) io.Reader { return r }},
	{"one byte", iotest.OneByteReader},
	{"half", iotest.HalfReader},
	{"data with EOF", iotest.DataErrReader},
	{"chunks of 1000", func(r io.Reader) io.Reader { return &chunkReader{r, 1000} }},
}

// chunkReader returns at most n bytes per Read.
type chunkReader struct {
	r io.Reader
	n int
}

func (c *chunkReader) Read(p []byte) (int, error) {
	if len(p) > c.n {
		p = p[:c.n]
	}
	return c.r.Read(p)
}

// gotLine is a line as the Scanner reports it.
type gotLine struct {
	num     int
	text    string
	tooLong bool
}

func (l gotLine) String() string {
	if l.tooLong {
		return fmt.Sprintf("%d: too long (Bytes %d bytes)", l.num, len(l.text))
	}
	return fmt.Sprintf("%d: %s", l.num, short([]byte(l.text)))
}

// scanAll reads r to the end with a Scanner.
func scanAll(t *testing.T, r io.Reader, bufSize int) []gotLine {
	t.Helper()
	sc := newScanner(r, bufSize)
	var got []gotLine
	for sc.Scan() {
		got = append(got, gotLine{num: sc.Line(), text: string(sc.Bytes()), tooLong: sc.TooLong()})
	}
	if err := sc.Err(); err != nil {
		t.Fatalf("Scanner.Err() = %v; want nil", err)
	}
	return got
}

// wantLines numbers the lines of the reference splitter.
func wantLines(data []byte) []gotLine {
	var want []gotLine
	for i, l := range refSplit(data) {
		want = append(want, gotLine{num: i + 1, text: l.text, tooLong: l.tooLong})
	}
	return want
}

// checkLines compares what a Scanner saw with what it should have seen, line by line.
func checkLines(t *testing.T, got, want []gotLine) {
	t.Helper()
	for i := 0; i < max(len(got), len(want)); i++ {
		switch {
		case i >= len(got):
			t.Errorf("line %d: missing; want %v", i+1, want[i])
		case i >= len(want):
			t.Errorf("line %d: got %v; want no more lines", i+1, got[i])
		case got[i] != want[i]:
			t.Errorf("line %d: got %v; want %v", i+1, got[i], want[i])
		}
	}
}

func x(n int) string { return strings.Repeat("x", n) }

var scanTests = []struct {
	name string
	in   string
}{
	{"empty", ""},
	{"one newline", "\n"},
	{"one line with newline", "a\n"},
	{"one line without newline", "a"},
	{"two lines", "a\nb\n"},
	{"two lines, no final newline", "a\nb"},
	{"CRLF", "a\r\nb\r\n"},
	{"CRLF, no final newline", "a\r\nb"},
	{"final CR without newline", "a\r\nb\r"},
	{"lone CRs are not line ends", "a\rb\rc\n"},
	{"blank lines count", "\n\na\n\n \t\nb\n\n"},
	{"CR-only lines", "\r\n\r\n"},
	{"events", canonical + "\n" + canonical + "\r\n" + canonical},

	{"65536", x(65536) + "\nafter\n"},
	{"65536 + CR", x(65536) + "\r\nafter\n"},
	{"65537", x(65537) + "\nafter\n"},
	{"65537 ending in CR", x(65536) + "\r\nafter\n"},
	{"65537 + CR", x(65537) + "\r\nafter\n"},
	{"65538", x(65538) + "\nafter\n"},
	{"65538 + CR", x(65538) + "\r\nafter\n"},
	{"65536 + CR CR", x(65536) + "\r\r\nafter\n"},
	{"65536 at end", "before\n" + x(65536)},
	{"65536 + CR at end", "before\n" + x(65536) + "\r"},
	{"65537 at end", "before\n" + x(65537)},
	{"65537 + CR at end", "before\n" + x(65537) + "\r"},
	{"65538 at end", "before\n" + x(65538)},
	{"65538 + CR at end", "before\n" + x(65538) + "\r"},
	{"200 KiB", "before\n" + x(200<<10) + "\nafter\n"},
	{"200 KiB + CR", "before\r\n" + x(200<<10) + "\r\nafter\r\n"},
	{"200 KiB at end", "before\n" + x(200<<10)},
	{"200 KiB at end with newline", "before\n" + x(200<<10) + "\n"},
	{"two long lines in a row", x(70000) + "\n" + x(140000) + "\n\nafter"},
	{"long line then blank", x(70000) + "\n\n"},
	{"long line filling the minimum buffer", x(2*MaxLineBytes+2) + "\nafter\n"},
	{"long line one over the minimum buffer", x(2*MaxLineBytes+3) + "\nafter\n"},
	{"1 MiB", "a\n" + x(1<<20) + "\nb\n"},
	{"many short lines around long ones", strings.Repeat("ab\n", 30000) + x(65538) + "\n" + strings.Repeat("cd\r\n", 30000)},
	{"max lines back to back", strings.Repeat(x(65536)+"\r\n", 5)},
}

func TestScanner(t *testing.T) {
	for _, tt := range scanTests {
		want := wantLines([]byte(tt.in))
		for _, rd := range readers {
			for _, size := range bufSizes {
				if rd.name == "one byte" && len(tt.in) > 300<<10 {
					continue // quadratic in a line's length; the other readers cover it
				}
				t.Run(fmt.Sprintf("%s/%s/%d", tt.name, rd.name, size), func(t *testing.T) {
					got := scanAll(t, rd.wrap(strings.NewReader(tt.in)), size)
					checkLines(t, got, want)
				})
			}
		}
	}
}

// TestScannerExplicit spells out a few expectations by hand, so that a mistake shared by
// the Scanner and refSplit cannot hide.
func TestScannerExplicit(t *testing.T) {
	tests := []struct {
		in   string
		want []gotLine
	}{
		{"", nil},
		{"\n", []gotLine{{1, "", false}}},
		{"a", []gotLine{{1, "a", false}}},
		{"a\r\n\nb", []gotLine{{1, "a\r", false}, {2, "", false}, {3, "b", false}}},
		{x(65536) + "\r\n" + x(65537) + "\r\n" + x(65537) + "\nz",
			[]gotLine{{1, x(65536) + "\r", false}, {2, "", true}, {3, "", true}, {4, "z", false}}},
		{"a\n" + x(200<<10) + "\n\nb", []gotLine{{1, "a", false}, {2, "", true}, {3, "", false}, {4, "b", false}}},
		{"a\n" + x(200<<10), []gotLine{{1, "a", false}, {2, "", true}}},
	}
	for _, tt := range tests {
		for _, size := range bufSizes {
			got := scanAll(t, strings.NewReader(tt.in), size)
			if len(got) != len(tt.want) {
				t.Errorf("scanning %s with buffer %d: got %d lines %v; want %d lines %v",
					short([]byte(tt.in)), size, len(got), got, len(tt.want), tt.want)
				continue
			}
			checkLines(t, got, tt.want)
		}
	}
}

// TestScannerEvents reads a file the way the processor does: skip blanks, Parse the rest,
// and count a too-long line as invalid without stopping.
func TestScannerEvents(t *testing.T) {
	var file bytes.Buffer
	file.WriteString(canonical + "\n")                       // 1 valid
	file.WriteString("\n")                                   // 2 blank
	file.WriteString(canonical + "\r\n")                     // 3 valid
	file.Write(sized(200<<10, "\n"))                         // 4 too long
	file.WriteString("   \r\n")                              // 5 blank
	file.Write(sized(65536, "\r\n"))                         // 6 valid, at the limit
	file.Write(sized(65537, "\n"))                           // 7 too long
	file.WriteString(`{"userId":"u","value":1}` + "\n")      // 8 invalid
	file.Write(sized(65537, "\r\n"))                         // 9 too long
	file.WriteString(withValue("-1") + "\n")                 // 10 invalid
	file.WriteString(line(`"v"`, `"subtract_revenue"`, `5`)) // 11 valid, no final newline

	wantValid := []int{1, 3, 6, 11}
	wantInvalid := []int{4, 7, 8, 9, 10}
	for _, rd := range readers {
		for _, size := range bufSizes {
			sc := newScanner(rd.wrap(bytes.NewReader(file.Bytes())), size)
			var gotValid, gotInvalid []int
			var total int64
			for sc.Scan() {
				if sc.TooLong() {
					gotInvalid = append(gotInvalid, sc.Line())
					continue
				}
				if IsBlank(sc.Bytes()) {
					continue
				}
				id, delta, err := ParseDelta(sc.Bytes())
				if err != nil {
					gotInvalid = append(gotInvalid, sc.Line())
					continue
				}
				if len(id) == 0 {
					t.Errorf("ParseDelta(line %d) returned an empty userId", sc.Line())
				}
				gotValid = append(gotValid, sc.Line())
				total += delta
			}
			if err := sc.Err(); err != nil {
				t.Fatalf("%s/%d: Scanner.Err() = %v; want nil", rd.name, size, err)
			}
			if fmt.Sprint(gotValid) != fmt.Sprint(wantValid) || fmt.Sprint(gotInvalid) != fmt.Sprint(wantInvalid) {
				t.Errorf("%s/%d: valid lines %v, invalid lines %v; want %v, %v",
					rd.name, size, gotValid, gotInvalid, wantValid, wantInvalid)
			}
			if want := int64(3*98 - 5); total != want {
				t.Errorf("%s/%d: total = %d; want %d", rd.name, size, total, want)
			}
			if sc.Line() != 11 {
				t.Errorf("%s/%d: Line() at the end = %d; want 11", rd.name, size, sc.Line())
			}
		}
	}
}

// TestScannerTooLongFlag checks the TooLong flag itself around the limit: a line of more than
// 65536 bytes, not counting one trailing "\r", is too long whether or not it ends in "\r".
func TestScannerTooLongFlag(t *testing.T) {
	tests := []struct {
		in      string
		tooLong bool
	}{
		{x(65535), false},
		{x(65536), false},
		{x(65536) + "\r", false},
		{x(65535) + "\r\r", false},
		{x(65537), true},
		{x(65536) + " ", true},
		{x(65536) + "\r\r", true},
		{x(65537) + "\r", true},
		{x(65538), true},
		{x(65538) + "\r", true},
	}
	for _, tt := range tests {
		for _, rest := range []string{"\nnext\n", ""} { // a line before another, and a last line
			sc := newScanner(strings.NewReader(tt.in+rest), 0)
			if !sc.Scan() {
				t.Fatalf("Scan() on %s = false; want true (err %v)", short([]byte(tt.in+rest)), sc.Err())
			}
			if sc.TooLong() != tt.tooLong {
				t.Errorf("TooLong() for a %d-byte line %s = %v; want %v", len(tt.in), short([]byte(tt.in+rest)), sc.TooLong(), tt.tooLong)
			}
			if tt.tooLong && len(sc.Bytes()) != 0 {
				t.Errorf("Bytes() for a too-long line = %d bytes; want none", len(sc.Bytes()))
			}
			if !tt.tooLong && string(sc.Bytes()) != tt.in {
				t.Errorf("Bytes() = %s; want %s", short(sc.Bytes()), short([]byte(tt.in)))
			}
		}
	}
}

func TestScannerReadError(t *testing.T) {
	errBoom := errors.New("boom")
	for _, prefix := range []string{"", "a\nb\n", "a\n" + x(200<<10)} {
		sc := newScanner(io.MultiReader(strings.NewReader(prefix), iotest.ErrReader(errBoom)), 0)
		var lines int
		for sc.Scan() {
			lines++
		}
		if err := sc.Err(); !errors.Is(err, errBoom) {
			t.Errorf("after %d lines of %s: Scanner.Err() = %v; want %v", lines, short([]byte(prefix)), err, errBoom)
		}
	}
	// A failed read in the middle of a line: the piece before the failure is no line, and
	// no too-long line either (a stopped processor used to set such a piece aside).
	for _, tc := range []struct {
		prefix string
		want   []string
	}{
		{"a\nb", []string{"a"}},
		{"a\n" + x(200<<10), []string{"a"}},
		{"a\n" + x(MaxLineBytes+10) + "\nc", []string{"a", "too long"}},
	} {
		sc := newScanner(io.MultiReader(strings.NewReader(tc.prefix), iotest.ErrReader(errBoom)), 0)
		var got []string
		for line, err := range sc.Lines() {
			if errors.Is(err, ErrLineTooLong) {
				got = append(got, "too long")
				continue
			}
			got = append(got, string(line))
		}
		if !slices.Equal(got, tc.want) || !errors.Is(sc.Err(), errBoom) {
			t.Errorf("Lines of %s then a read error = %q, Err() %v; want %q, %v", short([]byte(tc.prefix)), got, sc.Err(), tc.want, errBoom)
		}
	}
}

// TestScannerCopyTooLong: every too-long line reaches the CopyTooLong writer whole and as it
// was (a final "\r" included), before Scan returns it, and nothing else does.
func TestScannerCopyTooLong(t *testing.T) {
	for _, tt := range scanTests {
		raw := strings.Split(tt.in, "\n")
		if strings.HasSuffix(tt.in, "\n") || tt.in == "" {
			raw = raw[:len(raw)-1]
		}
		for _, rd := range readers {
			for _, size := range bufSizes {
				var copied bytes.Buffer
				sc := newScanner(rd.wrap(strings.NewReader(tt.in)), size)
				sc.CopyTooLong(&copied)
				for sc.Scan() {
					want := ""
					if sc.TooLong() {
						want = raw[sc.Line()-1]
					}
					if got := copied.String(); got != want {
						t.Errorf("%s, %s reader, buffer %d: line %d copied %s; want %s",
							tt.name, rd.name, size, sc.Line(), short([]byte(got)), short([]byte(want)))
					}
					copied.Reset()
				}
				if err := sc.Err(); err != nil {
					t.Fatalf("Scanner.Err() = %v; want nil", err)
				}
			}
		}
	}
}

// TestLines: blank lines are skipped, a too-long line is yielded as ErrLineTooLong, every
// line keeps its number, and a caller may stop early.
func TestLines(t *testing.T) {
	long := strings.Repeat("x", MaxLineBytes+1)
	in := "a\n\n \t\r\nb\n" + long + "\nc"
	type got struct {
		line int
		text string
		err  error
	}
	var lines []got
	sc := NewScanner(strings.NewReader(in))
	for line, err := range sc.Lines() {
		lines = append(lines, got{sc.Line(), string(line), err})
	}
	want := []got{{1, "a", nil}, {4, "b", nil}, {5, "", ErrLineTooLong}, {6, "c", nil}}
	if fmt.Sprint(lines) != fmt.Sprint(want) || sc.Err() != nil {
		t.Errorf("Lines(%.20q...) = %v, Err %v; want %v, nil", in, lines, sc.Err(), want)
	}
	sc = NewScanner(strings.NewReader(in))
	n := 0
	for range sc.Lines() {
		n++
		break
	}
	if n != 1 || sc.Line() != 1 {
		t.Errorf("Lines stopped after the first line: saw %d, Line() = %d; want 1, 1", n, sc.Line())
	}
}
