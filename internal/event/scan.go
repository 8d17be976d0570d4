package event

import (
	"bufio"
	"bytes"
	"io"
	"iter"
)

// maxRawLine is the longest line the Scanner hands out: MaxLineBytes plus the "\r" of a
// CRLF ending, which Parse drops.
const maxRawLine = MaxLineBytes + 1

// Scanner reads an events file line by line with a bufio.Scanner. Unlike a plain
// bufio.Scanner it does not stop at a line that is too long: such a line is consumed, reported
// by TooLong, and reading goes on with the next one. Memory stays bounded by its buffer.
type Scanner struct {
	s        *bufio.Scanner
	r        *errReader
	line     int
	tooLong  bool      // the current line is longer than MaxLineBytes
	skipping bool      // inside a too-long line whose end has not been read yet
	long     io.Writer // gets the bytes of too-long lines, when set
}

// bufSize is the Scanner's buffer: large enough that reads are few, and twice the longest
// line so that a line is always whole in it.
const bufSize = 1 << 20

// NewScanner returns a Scanner reading r.
func NewScanner(r io.Reader) *Scanner { return newScanner(r, bufSize) }

// newScanner returns a Scanner with a buffer of size bytes, at least 2*maxRawLine. Tests
// use small buffers to put line ends at every place relative to the buffer's.
func newScanner(r io.Reader, size int) *Scanner {
	size = max(size, 2*maxRawLine)
	er := &errReader{r: r}
	sc := &Scanner{s: bufio.NewScanner(er), r: er}
	sc.s.Buffer(make([]byte, size), size)
	sc.s.Split(sc.split)
	return sc
}

// CopyTooLong makes the Scanner write the bytes of every too-long line to w, piece by piece
// as it skips them, without the "\n": a caller that sets lines aside can keep those too,
// in memory bounded by the buffer. The bytes of a line are all written before Scan returns
// it. Write errors are the writer's to keep: the Scanner goes on.
func (sc *Scanner) CopyTooLong(w io.Writer) { sc.long = w }

// Scan advances to the next line, which is then available through Bytes. It returns false
// at the end of the input or on a read error, which Err reports.
func (sc *Scanner) Scan() bool {
	if !sc.s.Scan() {
		return false
	}
	sc.line++
	return true
}

// Lines is the loop every reader of an events file runs: it yields each line that is not
// blank, as its bytes (valid until the next line) and a nil error, and each line longer than
// MaxLineBytes as nil and ErrLineTooLong. Line numbers the yielded line. It stops at the end
// of the input or at a read error, which Err then reports.
func (sc *Scanner) Lines() iter.Seq2[[]byte, error] {
	return func(yield func([]byte, error) bool) {
		for sc.Scan() {
			var ok bool
			switch line := sc.Bytes(); {
			case sc.tooLong:
				ok = yield(nil, ErrLineTooLong)
			case IsBlank(line):
				continue
			default:
				ok = yield(line, nil)
			}
			if !ok {
				return
			}
		}
	}
}

// Bytes returns the current line without its "\n" (a "\r" before it stays: Parse drops it).
// It is valid until the next Scan. For a line that is too long it is empty.
func (sc *Scanner) Bytes() []byte { return sc.s.Bytes() }

// Line returns the 1-based number of the current line.
func (sc *Scanner) Line() int { return sc.line }

// TooLong reports whether the current line is longer than MaxLineBytes.
func (sc *Scanner) TooLong() bool { return sc.tooLong }

// Err returns the first error reading the input, or nil at a clean end.
func (sc *Scanner) Err() error { return sc.s.Err() }

// split cuts lines at "\n" and measures them itself, so that a line longer than maxRawLine
// is skipped in pieces rather than failing the bufio.Scanner with ErrTooLong.
func (sc *Scanner) split(data []byte, atEOF bool) (advance int, token []byte, err error) {
	if atEOF && sc.r.err != nil {
		// bufio.Scanner hands over what it holds after a failed read as if the input had
		// ended: the piece of a line the failure cut off must not become a last line.
		return 0, nil, sc.r.err
	}
	i := bytes.IndexByte(data, '\n')
	if sc.skipping {
		if i < 0 && !atEOF {
			sc.copyLong(data)
			return len(data), nil, nil
		}
		sc.skipping, sc.tooLong = false, true
		if i < 0 {
			sc.copyLong(data)
			return len(data), []byte{}, nil
		}
		sc.copyLong(data[:i])
		return i + 1, []byte{}, nil
	}
	switch {
	case i >= 0:
		sc.tooLong = tooLong(data[:i])
		if sc.tooLong {
			sc.copyLong(data[:i])
			return i + 1, []byte{}, nil
		}
		return i + 1, data[:i], nil
	case atEOF && len(data) > 0: // a last line without "\n"
		sc.tooLong = tooLong(data)
		if sc.tooLong {
			sc.copyLong(data)
			return len(data), []byte{}, nil
		}
		return len(data), data, nil
	case len(data) > maxRawLine:
		sc.skipping = true
		sc.copyLong(data)
		return len(data), nil, nil
	}
	return 0, nil, nil
}

// errReader remembers the first error other than io.EOF its reader returned.
type errReader struct {
	r   io.Reader
	err error
}

func (e *errReader) Read(p []byte) (int, error) {
	n, err := e.r.Read(p)
	if err != nil && err != io.EOF && e.err == nil {
		e.err = err
	}
	return n, err
}

func (sc *Scanner) copyLong(piece []byte) {
	if sc.long != nil {
		sc.long.Write(piece)
	}
}

// tooLong reports whether a line (without "\n") is longer than MaxLineBytes once a trailing
// "\r" is dropped.
func tooLong(line []byte) bool {
	n := len(line)
	if n > 0 && line[n-1] == '\r' {
		n--
	}
	return n > MaxLineBytes
}
