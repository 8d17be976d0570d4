package event

import (
	"bytes"
	"io"
	"strings"
	"testing"
)

// fuzzSeeds are the tricky cases of the contract, on top of the decode tables.
var fuzzSeeds = []string{
	canonical,
	`{"userId": "user12345", "name": "add_revenue", "value": 98}`,
	`{"value":98,"name":"subtract_revenue","userId":"user1"}`,
	" \t{ \"userId\" : \"user1\" , \"name\" : \"add_revenue\" , \"value\" : 98 } \t\r",
	canonical + "\r",
	canonical + "\r\r",
	canonical + "\n",
	canonical + canonical,
	"", " ", "\r", "\t\r",
	`{"userId":"\u0075ser1","name":"add_revenue","value":98}`,
	`{"\u0075serId":"user1","name":"add_revenue","value":98}`,
	`{"UserId":"user1","name":"add_revenue","value":98}`,
	`{"userId":"user1","userId":"user1","name":"add_revenue","value":98}`,
	`{"userId":"user1","name":"add_revenue","value":98,"extra":null}`,
	`{"userId":"user1","name":"add_revenue","value":98,"idempotencyKey":"k-1"}`,
	`{"userId":"user1","name":"add_revenue","value":98,"idempotencyKey":"\u00e9"}`,
	`{"userId":"\ud800","name":"add_revenue","value":1}`,
	`{"userId":"\udc00\ud800x","name":"add_revenue","value":1}`,
	`{"userId":"\ud83d\ude00","name":"add_revenue","value":1}`,
	`{"userId":"\ud800\u0041","name":"add_revenue","value":1}`,
	`{"userId":"a\"b\\c\/","name":"add_revenue","value":1}`,
	`{"userId":"\u007f","name":"add_revenue","value":1}`,
	`{"userId":"\u0000","name":"add_revenue","value":1}`,
	`{"userId":"` + "\x7f" + `","name":"add_revenue","value":1}`,
	`{"userId":"` + "\xff" + `","name":"add_revenue","value":1}`,
	`{"userId":"` + "\xed\xa0\x80" + `","name":"add_revenue","value":1}`,
	`{"userId":"","name":"add_revenue","value":1}`,
	`{"userId":"` + strings.Repeat("a", 255) + `","name":"add_revenue","value":1}`,
	`{"userId":"` + strings.Repeat("a", 256) + `","name":"add_revenue","value":1}`,
	`{"userId":"` + strings.Repeat("é", 128) + `","name":"add_revenue","value":1}`,
	`{"userId":"u","name":"add\u005frevenue","value":1}`,
	`{"userId":"u","name":"Add_revenue","value":1}`,
	`{"userId":"u","name":"add_revenue","value":0}`,
	`{"userId":"u","name":"add_revenue","value":9007199254740991}`,
	`{"userId":"u","name":"add_revenue","value":9007199254740992}`,
	`{"userId":"u","name":"add_revenue","value":98.0}`,
	`{"userId":"u","name":"add_revenue","value":1e2}`,
	`{"userId":"u","name":"add_revenue","value":"98"}`,
	`{"userId":"u","name":"add_revenue","value":-5}`,
	`{"userId":"u","name":"add_revenue","value":-0}`,
	`{"userId":"u","name":"add_revenue","value":0123}`,
	`{"userId":"u","name":"add_revenue","value":true}`,
	`{"userId":"u","name":"add_revenue","value":null}`,
	`{"userId":"u","name":"add_revenue","value":99999999999999999999}`,
	`{"userId":"u","name":"add_revenue","value":1,}`,
	`{"userId":"u","name":"add_revenue"}`,
	`{}`, `[]`, `null`, `"x"`, `{`, `{"`, `{"userId":"a\`,
	"\uFEFF" + canonical,
	canonical + "\xff",
}

func FuzzParse(f *testing.F) {
	for _, s := range fuzzSeeds {
		f.Add([]byte(s))
	}
	// The lines around the 64 KiB limit stay in TestParse: as seeds they stall the fuzzer,
	// which spends minutes minimizing every 64 KiB input that finds new coverage.
	for _, tt := range parseTests {
		if len(tt.in) <= 4096 {
			f.Add(tt.in)
		}
	}
	for _, tt := range recordTests {
		f.Add([]byte(tt.in))
	}
	for _, e := range roundTripEvents {
		f.Add(AppendJSON(nil, Record{Event: e}))
	}

	f.Fuzz(func(t *testing.T, line []byte) {
		orig := bytes.Clone(line)

		ev, err := Parse(line)
		want, wantErr := refParse(line, false)
		if (err == nil) != (wantErr == nil) {
			t.Fatalf("Parse(%s) = %+v, %v; reference says %+v, %v", short(line), ev, err, want, wantErr)
		}
		if err == nil && (ev != want.Event || want.Key != "") {
			t.Fatalf("Parse(%s) = %+v; reference says %+v", short(line), ev, want)
		}

		rec, recErr := ParseRecord(line)
		wantRec, wantRecErr := refParse(line, true)
		if (recErr == nil) != (wantRecErr == nil) {
			t.Fatalf("ParseRecord(%s) = %+v, %v; reference says %+v, %v", short(line), rec, recErr, wantRec, wantRecErr)
		}
		if recErr == nil && rec != wantRec {
			t.Fatalf("ParseRecord(%s) = %+v; reference says %+v", short(line), rec, wantRec)
		}
		if err == nil && (recErr != nil || rec != (Record{Event: ev})) {
			t.Fatalf("ParseRecord(%s) = %+v, %v; want %+v, nil as Parse accepts it", short(line), rec, recErr, ev)
		}

		// ParseDelta reads log lines: it accepts exactly what ParseRecord accepts.
		id, delta, deltaErr := ParseDelta(line)
		if (deltaErr == nil) != (recErr == nil) {
			t.Fatalf("ParseDelta(%s) = %q, %d, %v; ParseRecord gave %v", short(line), id, delta, deltaErr, recErr)
		}
		if deltaErr == nil && (string(id) != rec.UserID || delta != rec.Delta()) {
			t.Fatalf("ParseDelta(%s) = %q, %d; want %q, %d", short(line), id, delta, rec.UserID, rec.Delta())
		}

		if !bytes.Equal(line, orig) {
			t.Fatalf("decoding changed its input from %s to %s", short(orig), short(line))
		}

		if recErr == nil {
			b := AppendJSON(nil, rec)
			if bytes.ContainsAny(b, "\r\n") {
				t.Fatalf("AppendJSON(nil, %+v) = %q; want one line", rec, b)
			}
			if got, err := ParseRecord(b); err != nil || got != rec {
				t.Fatalf("ParseRecord(AppendJSON(%+v)) = %+v, %v; want it back", rec, got, err)
			}
			b = AppendJSON(nil, Record{Event: rec.Event})
			if got, err := Parse(b); err != nil || got != rec.Event {
				t.Fatalf("Parse(%q) = %+v, %v; want %+v, nil", b, got, err, rec.Event)
			}
		}
	})
}

// FuzzScanner holds the Scanner to the reference splitter. Each '#' in text stands for pad
// bytes of 'x', so that short inputs reach lines around and over the length limit.
func FuzzScanner(f *testing.F) {
	f.Add([]byte("a\nb"), uint32(0), uint16(0), false)
	f.Add([]byte("a\r\n\n \nb\r"), uint32(0), uint16(1), true)
	f.Add([]byte("#\nafter\n"), uint32(65536), uint16(0), false)
	f.Add([]byte("#\r\nafter"), uint32(65536), uint16(7), false)
	f.Add([]byte("#\r\nafter"), uint32(65537), uint16(0), true)
	f.Add([]byte("#\nafter"), uint32(65537), uint16(0), false)
	f.Add([]byte("a\n#"), uint32(65537), uint16(0), false)
	f.Add([]byte("#\nafter"), uint32(65538), uint16(4096), false)
	f.Add([]byte("#\n#\n\n#"), uint32(70000), uint16(100), false)
	f.Add([]byte("a\n#\nb"), uint32(200<<10), uint16(0), true)

	f.Fuzz(func(t *testing.T, text []byte, pad uint32, chunk uint16, big bool) {
		n := int(pad % (300 << 10))
		if c := bytes.Count(text, []byte("#")); c > 0 && n > (2<<20)/c {
			n = (2 << 20) / c
		}
		data := bytes.ReplaceAll(text, []byte("#"), bytes.Repeat([]byte("x"), n))

		var r io.Reader = bytes.NewReader(data)
		if chunk > 0 {
			size := int(chunk)
			if size < 64 && len(data) > 4096 {
				size = 64 // one byte at a time is quadratic in a long line's length
			}
			r = &chunkReader{r, size}
		}
		bufSize := 0
		if big {
			bufSize = 1 << 20
		}
		checkLines(t, scanAll(t, r, bufSize), wantLines(data))
	})
}
