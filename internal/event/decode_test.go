package event

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"strings"
	"testing"
)

// canonical is the line of the issue, the shape of every line the client and server write.
const canonical = `{"userId":"user1","name":"add_revenue","value":98}`

// line builds an event line from the raw JSON text of its three values, in the usual order.
func line(userID, name, value string) string {
	return `{"userId":` + userID + `,"name":` + name + `,"value":` + value + `}`
}

// withUserID is a valid line with the given raw JSON text as its userId.
func withUserID(raw string) string { return line(raw, `"add_revenue"`, `1`) }

// withValue is a valid line with the given raw JSON text as its value.
func withValue(raw string) string { return line(`"u"`, `"add_revenue"`, raw) }

// withName is a valid line with the given raw JSON text as its name.
func withName(raw string) string { return line(`"u"`, raw, `1`) }

// sized returns canonical padded with spaces after '{' to exactly n bytes, then suffix.
func sized(n int, suffix string) []byte {
	pad := n - len(canonical)
	return []byte("{" + strings.Repeat(" ", pad) + canonical[1:] + suffix)
}

// short quotes a line for a failure message, eliding the middle of long ones.
func short(b []byte) string {
	if len(b) <= 120 {
		return fmt.Sprintf("%q", b)
	}
	return fmt.Sprintf("%q...%q (%d bytes)", b[:60], b[len(b)-40:], len(b))
}

var user1 = Event{UserID: "user1", Name: AddRevenue, Value: 98}

type parseTest struct {
	name string
	in   []byte
	want Event
	ok   bool
}

func valid(name, in string, want Event) parseTest {
	return parseTest{name: name, in: []byte(in), want: want, ok: true}
}

func invalid(name, in string) parseTest { return parseTest{name: name, in: []byte(in)} }

// parseTests is the event contract as a table. Every case also runs through the reference
// decoder, so the table checks the reference as much as the decoder.
var parseTests = []parseTest{
	// Valid lines.
	valid("canonical", canonical, user1),
	valid("issue example with spaces", `{"userId": "user12345", "name": "add_revenue", "value": 98}`,
		Event{"user12345", AddRevenue, 98}),
	valid("subtract", `{"userId":"u","name":"subtract_revenue","value":7}`, Event{"u", SubtractRevenue, 7}),
	valid("order name value userId", `{"name":"add_revenue","value":98,"userId":"user1"}`, user1),
	valid("order value userId name", `{"value":98,"userId":"user1","name":"add_revenue"}`, user1),
	valid("order value name userId", `{"value":98,"name":"add_revenue","userId":"user1"}`, user1),
	valid("order userId value name", `{"userId":"user1","value":98,"name":"add_revenue"}`, user1),
	valid("order name userId value", `{"name":"add_revenue","userId":"user1","value":98}`, user1),
	valid("whitespace everywhere", " \t{ \"userId\" :\t\"user1\" , \"name\":\"add_revenue\",\"value\" : 98 }\t ", user1),
	valid("newlines inside", "{\n\"userId\":\n\"user1\",\r\n\"name\":\"add_revenue\",\n\"value\":98\n}\n", user1),
	valid("carriage return inside", "{\"userId\"\r:\"user1\",\"name\":\"add_revenue\",\"value\":98}", user1),
	valid("trailing CR", canonical+"\r", user1),
	valid("trailing CR CR", canonical+"\r\r", user1),
	valid("trailing space CR", canonical+" \r", user1),
	valid("leading CR", "\r"+canonical, user1),
	valid("value zero", withValue(`0`), Event{"u", AddRevenue, 0}),
	valid("value max", withValue(`9007199254740991`), Event{"u", AddRevenue, MaxValue}),
	valid("value max-1", withValue(`9007199254740990`), Event{"u", AddRevenue, MaxValue - 1}),
	valid("value 10", withValue(`10`), Event{"u", AddRevenue, 10}),
	valid("value 100 before brace", `{"userId":"u","name":"add_revenue","value":100}`, Event{"u", AddRevenue, 100}),
	valid("escaped userId", withUserID(`"\u0075ser1"`), Event{"user1", AddRevenue, 1}),
	valid("escaped key", `{"\u0075serId":"user1","name":"add_revenue","value":98}`, user1),
	valid("escaped keys uppercase hex", `{"user\u0049d":"user1","\u006Eame":"add_revenue","v\u0061lu\u0065":98}`,
		Event{"user1", AddRevenue, 98}),
	valid("escaped name", withName(`"add\u005frevenue"`), Event{"u", AddRevenue, 1}),
	valid("fully escaped name", withName(`"\u0073\u0075\u0062\u0074\u0072\u0061\u0063\u0074_revenue"`),
		Event{"u", SubtractRevenue, 1}),
	valid("userId one byte", withUserID(`"x"`), Event{"x", AddRevenue, 1}),
	valid("userId 255 bytes", withUserID(`"`+strings.Repeat("a", 255)+`"`), Event{strings.Repeat("a", 255), AddRevenue, 1}),
	valid("userId 255 bytes of euro signs", withUserID(`"`+strings.Repeat("€", 85)+`"`),
		Event{strings.Repeat("€", 85), AddRevenue, 1}),
	valid("userId 255 bytes written as escapes", withUserID(`"`+strings.Repeat(`\u0061`, 255)+`"`),
		Event{strings.Repeat("a", 255), AddRevenue, 1}),
	valid("userId non-ASCII", withUserID(`"josé 東京 😀"`), Event{"josé 東京 😀", AddRevenue, 1}),
	valid("userId escaped non-ASCII", withUserID(`"jos\u00e9"`), Event{"josé", AddRevenue, 1}),
	valid("userId surrogate pair", withUserID(`"\ud83d\ude00"`), Event{"😀", AddRevenue, 1}),
	valid("userId surrogate pair uppercase", withUserID(`"\uD83D\uDE00"`), Event{"😀", AddRevenue, 1}),
	valid("userId lone high surrogate", withUserID(`"\ud800"`), Event{"\uFFFD", AddRevenue, 1}),
	valid("userId lone low surrogate", withUserID(`"\udc00"`), Event{"\uFFFD", AddRevenue, 1}),
	valid("userId high surrogate then letter", withUserID(`"a\ud800b"`), Event{"a\uFFFDb", AddRevenue, 1}),
	valid("userId high surrogate then escaped letter", withUserID(`"\ud800\u0041"`), Event{"\uFFFDA", AddRevenue, 1}),
	valid("userId two high surrogates", withUserID(`"\ud800\ud800"`), Event{"\uFFFD\uFFFD", AddRevenue, 1}),
	valid("userId reversed pair", withUserID(`"\udc00\ud800"`), Event{"\uFFFD\uFFFD", AddRevenue, 1}),
	valid("userId escaped quote and backslash", withUserID(`"a\"b\\c\/d"`), Event{`a"b\c/d`, AddRevenue, 1}),
	valid("userId raw slash", withUserID(`"a/b"`), Event{"a/b", AddRevenue, 1}),
	valid("userId C1 control is allowed", withUserID(`"\u0080\u009f"`), Event{"\u0080\u009f", AddRevenue, 1}),
	valid("userId U+2028", withUserID("\"a\u2028b\""), Event{"a\u2028b", AddRevenue, 1}),
	valid("userId U+FFFD raw", withUserID("\"\uFFFD\""), Event{"\uFFFD", AddRevenue, 1}),
	valid("userId space only", withUserID(`" "`), Event{" ", AddRevenue, 1}),
	valid("userId looks like JSON", withUserID(`"{\"userId\":1}"`), Event{`{"userId":1}`, AddRevenue, 1}),

	// Blank lines are not events.
	invalid("empty", ""),
	invalid("space", " "),
	invalid("tab", "\t"),
	invalid("CR", "\r"),
	invalid("CR CR", "\r\r"),
	invalid("spaces CR", "   \r"),
	invalid("newline", "\n"),

	// Not one object.
	invalid("null", "null"),
	invalid("number", "1"),
	invalid("string", `"user1"`),
	invalid("array", `[`+canonical+`]`),
	invalid("empty object", "{}"),
	invalid("open brace", "{"),
	invalid("close brace", "}"),
	invalid("two objects", canonical+canonical),
	invalid("two objects with space", canonical+" "+canonical),
	invalid("two lines", canonical+"\n"+canonical),
	invalid("data after", canonical+"x"),
	invalid("comma after", canonical+","),
	invalid("brace after", canonical+"}"),
	invalid("NUL after", canonical+"\x00"),
	invalid("junk before", "x"+canonical),
	invalid("BOM before", "\uFEFF"+canonical),
	invalid("form feed before", "\f"+canonical),
	invalid("vertical tab before", "\v"+canonical),
	invalid("NBSP before", "\u00a0"+canonical),
	invalid("NBSP inside", "{\u00a0\"userId\":\"user1\",\"name\":\"add_revenue\",\"value\":98}"),
	invalid("comment after", canonical+" // x"),
	invalid("CR in the middle of a number", `{"userId":"u","name":"add_revenue","value":9`+"\r"+`8}`),

	// Object syntax.
	invalid("trailing comma", `{"userId":"user1","name":"add_revenue","value":98,}`),
	invalid("leading comma", `{,"userId":"user1","name":"add_revenue","value":98}`),
	invalid("double comma", `{"userId":"user1",,"name":"add_revenue","value":98}`),
	invalid("missing comma", `{"userId":"user1" "name":"add_revenue","value":98}`),
	invalid("missing colon", `{"userId" "user1","name":"add_revenue","value":98}`),
	invalid("double colon", `{"userId"::"user1","name":"add_revenue","value":98}`),
	invalid("semicolon", `{"userId":"user1";"name":"add_revenue","value":98}`),
	invalid("equals", `{"userId"="user1","name":"add_revenue","value":98}`),
	invalid("unquoted key", `{userId:"user1","name":"add_revenue","value":98}`),
	invalid("single quotes", `{'userId':'user1','name':'add_revenue','value':98}`),
	invalid("missing close", `{"userId":"user1","name":"add_revenue","value":98`),
	invalid("unterminated string", `{"userId":"user1,"name":"add_revenue","value":98}`),
	invalid("unterminated key", `{"userId`),
	invalid("number as key", `{1:"user1","name":"add_revenue","value":98}`),

	// Keys.
	invalid("missing userId", `{"name":"add_revenue","value":98}`),
	invalid("missing name", `{"userId":"user1","value":98}`),
	invalid("missing value", `{"userId":"user1","name":"add_revenue"}`),
	invalid("unknown key", `{"userId":"user1","name":"add_revenue","value":98,"extra":1}`),
	invalid("unknown key first", `{"extra":1,"userId":"user1","name":"add_revenue","value":98}`),
	invalid("unknown empty key", `{"":1,"userId":"user1","name":"add_revenue","value":98}`),
	invalid("unknown key null", `{"userId":"user1","name":"add_revenue","value":98,"x":null}`),
	invalid("UserId", `{"UserId":"user1","name":"add_revenue","value":98}`),
	invalid("userid", `{"userid":"user1","name":"add_revenue","value":98}`),
	invalid("user_id", `{"user_id":"user1","name":"add_revenue","value":98}`),
	invalid("Name", `{"userId":"user1","Name":"add_revenue","value":98}`),
	invalid("VALUE", `{"userId":"user1","name":"add_revenue","VALUE":98}`),
	invalid("escape decoding to UserId", `{"\u0055serId":"user1","name":"add_revenue","value":98}`),
	invalid("key with space", `{"userId ":"user1","name":"add_revenue","value":98}`),
	invalid("key with NUL escape", `{"userId\u0000":"user1","name":"add_revenue","value":98}`),
	invalid("idempotencyKey in Parse", `{"userId":"user1","name":"add_revenue","value":98,"idempotencyKey":"k"}`),
	invalid("userId twice", `{"userId":"user1","userId":"user1","name":"add_revenue","value":98}`),
	invalid("userId twice, different", `{"userId":"a","name":"add_revenue","value":98,"userId":"b"}`),
	invalid("userId twice, escaped", `{"userId":"a","name":"add_revenue","value":98,"\u0075serId":"a"}`),
	invalid("name twice", `{"userId":"u","name":"add_revenue","name":"add_revenue","value":98}`),
	invalid("value twice", `{"userId":"u","name":"add_revenue","value":98,"value":98}`),
	invalid("value twice, second bad", `{"userId":"u","name":"add_revenue","value":98,"value":-1}`),

	// userId.
	invalid("userId empty", withUserID(`""`)),
	invalid("userId 256 bytes", withUserID(`"`+strings.Repeat("a", 256)+`"`)),
	invalid("userId 256 bytes with multibyte", withUserID(`"`+strings.Repeat("€", 85)+`a"`)),
	invalid("userId 256 bytes written as escapes", withUserID(`"`+strings.Repeat(`\u0061`, 256)+`"`)),
	invalid("userId 86 lone surrogates", withUserID(`"`+strings.Repeat(`\ud800`, 86)+`"`)),
	invalid("userId number", withUserID(`123`)),
	invalid("userId null", withUserID(`null`)),
	invalid("userId true", withUserID(`true`)),
	invalid("userId array", withUserID(`["user1"]`)),
	invalid("userId object", withUserID(`{"a":"b"}`)),
	invalid("userId raw tab", withUserID("\"a\tb\"")),
	invalid("userId raw newline", withUserID("\"a\nb\"")),
	invalid("userId raw NUL", withUserID("\"a\x00b\"")),
	invalid("userId raw 0x1f", withUserID("\"a\x1fb\"")),
	invalid("userId raw DEL", withUserID("\"a\x7fb\"")),
	invalid("userId escaped NUL", withUserID(`"a\u0000b"`)),
	invalid("userId escaped 0x1f", withUserID(`"\u001f"`)),
	invalid("userId escaped DEL", withUserID(`"\u007f"`)),
	invalid("userId escaped DEL uppercase", withUserID(`"\u007F"`)),
	invalid("userId escaped tab", withUserID(`"a\tb"`)),
	invalid("userId high surrogate then escaped newline", withUserID(`"\ud800\n"`)),
	invalid("userId escaped newline", withUserID(`"a\nb"`)),
	invalid("userId escaped CR", withUserID(`"a\rb"`)),
	invalid("userId escaped backspace", withUserID(`"a\bb"`)),
	invalid("userId escaped form feed", withUserID(`"a\fb"`)),
	invalid("userId bad escape x", withUserID(`"a\xb"`)),
	invalid("userId bad escape quote", withUserID(`"a\'b"`)),
	invalid("userId bad escape U", withUserID(`"\U0041"`)),
	invalid("userId short u escape", withUserID(`"\u004"`)),
	invalid("userId u escape non-hex", withUserID(`"\u00g1"`)),
	invalid("userId surrogate then bad escape", withUserID(`"\ud800\uzzzz"`)),
	invalid("userId backslash at end", `{"userId":"a\`),
	invalid("userId invalid UTF-8", withUserID("\"a\xffb\"")),
	invalid("userId overlong UTF-8", withUserID("\"\xc0\xaf\"")),
	invalid("userId UTF-8 encoded surrogate", withUserID("\"\xed\xa0\x80\"")),
	invalid("userId truncated UTF-8", withUserID("\"\xe2\x82\"")),

	// name.
	invalid("name empty", withName(`""`)),
	invalid("name Add_revenue", withName(`"Add_revenue"`)),
	invalid("name ADD_REVENUE", withName(`"ADD_REVENUE"`)),
	invalid("name trailing space", withName(`"add_revenue "`)),
	invalid("name leading space", withName(`" add_revenue"`)),
	invalid("name trailing NUL", withName(`"add_revenue\u0000"`)),
	invalid("name prefix", withName(`"add"`)),
	invalid("name other", withName(`"multiply_revenue"`)),
	invalid("name both", withName(`"add_revenuesubtract_revenue"`)),
	invalid("name number", withName(`1`)),
	invalid("name null", withName(`null`)),
	invalid("name array", withName(`["add_revenue"]`)),
	invalid("name unquoted", withName(`add_revenue`)),

	// value.
	invalid("value 98.0", withValue(`98.0`)),
	invalid("value 1e2", withValue(`1e2`)),
	invalid("value 1E2", withValue(`1E2`)),
	invalid("value 1e+2", withValue(`1e+2`)),
	invalid("value 1e-2", withValue(`1e-2`)),
	invalid("value 0e0", withValue(`0e0`)),
	invalid("value 0.0", withValue(`0.0`)),
	invalid("value 1.5", withValue(`1.5`)),
	invalid("value 1.", withValue(`1.`)),
	invalid("value .5", withValue(`.5`)),
	invalid(`value "98"`, withValue(`"98"`)),
	invalid("value -5", withValue(`-5`)),
	invalid("value -0", withValue(`-0`)),
	invalid("value -", withValue(`-`)),
	invalid("value +1", withValue(`+1`)),
	invalid("value true", withValue(`true`)),
	invalid("value false", withValue(`false`)),
	invalid("value null", withValue(`null`)),
	invalid("value array", withValue(`[1]`)),
	invalid("value object", withValue(`{}`)),
	invalid("value empty", withValue(``)),
	invalid("value 0123", withValue(`0123`)),
	invalid("value 00", withValue(`00`)),
	invalid("value 01", withValue(`01`)),
	invalid("value 0x10", withValue(`0x10`)),
	invalid("value 1_000", withValue(`1_000`)),
	invalid("value 1 2", withValue(`1 2`)),
	invalid("value 2^53", withValue(`9007199254740992`)),
	invalid("value 2^53+1", withValue(`9007199254740993`)),
	invalid("value 2^63-1", withValue(`9223372036854775807`)),
	invalid("value 2^63", withValue(`9223372036854775808`)),
	invalid("value 2^64", withValue(`18446744073709551616`)),
	invalid("value 30 digits", withValue(`123456789012345678901234567890`)),
	invalid("value 1000 digits", withValue(strings.Repeat("9", 1000))),
	invalid("value Infinity", withValue(`Infinity`)),
	invalid("value NaN", withValue(`NaN`)),
	invalid("value fullwidth digit", withValue("１")),

	// Invalid UTF-8 outside strings.
	invalid("invalid UTF-8 after", canonical+"\xff"),
	invalid("invalid UTF-8 before", "\xff"+canonical),
	invalid("invalid UTF-8 in whitespace", "{\xc0\x80\"userId\":\"user1\",\"name\":\"add_revenue\",\"value\":98}"),
	invalid("invalid UTF-8 in unknown key", `{"userId":"user1","name":"add_revenue","value":98,"`+"\xff"+`":1}`),
	invalid("invalid UTF-8 only", "\xff"),

	// Around the length limit: padding keeps these lines valid in every other way.
	{name: "65535 bytes", in: sized(65535, ""), want: user1, ok: true},
	{name: "65536 bytes", in: sized(65536, ""), want: user1, ok: true},
	{name: "65536 bytes + CR", in: sized(65536, "\r"), want: user1, ok: true},
	{name: "65535 bytes + CR CR", in: sized(65535, "\r\r"), want: user1, ok: true},
	{name: "65536 bytes ending in space", in: append(sized(65535, ""), ' '), want: user1, ok: true},
	{name: "65537 bytes", in: sized(65537, "")},
	{name: "65537 bytes + CR", in: sized(65537, "\r")},
	{name: "65536 bytes + CR CR", in: sized(65536, "\r\r")},
	{name: "65537 bytes ending in space", in: append(sized(65536, ""), ' ')},
	{name: "200 KiB", in: sized(200<<10, "")},
	{name: "blank 70000 bytes", in: bytes.Repeat([]byte(" "), 70000)},
}

func TestParse(t *testing.T) {
	for _, tt := range parseTests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := Parse(tt.in)
			if tt.ok {
				if err != nil || got != tt.want {
					t.Errorf("Parse(%s) = %+v, %v; want %+v, nil", short(tt.in), got, err, tt.want)
				}
				return
			}
			if err == nil {
				t.Errorf("Parse(%s) = %+v, nil; want an error", short(tt.in), got)
			}
			if got != (Event{}) {
				t.Errorf("Parse(%s) = %+v, %v; want the zero Event with an error", short(tt.in), got, err)
			}
		})
	}
}

// TestParseRecordAndDelta holds ParseRecord and ParseDelta to the same table: a line without
// an idempotencyKey means the same to all three decoders.
func TestParseRecordAndDelta(t *testing.T) {
	for _, tt := range parseTests {
		t.Run(tt.name, func(t *testing.T) {
			rec, err := ParseRecord(tt.in)
			switch {
			case tt.ok && (err != nil || rec != Record{Event: tt.want}):
				t.Errorf("ParseRecord(%s) = %+v, %v; want %+v, nil", short(tt.in), rec, err, Record{Event: tt.want})
			case !tt.ok && err == nil && !bytes.Contains(tt.in, []byte("idempotencyKey")):
				t.Errorf("ParseRecord(%s) = %+v, nil; want an error", short(tt.in), rec)
			}

			in := bytes.Clone(tt.in)
			id, delta, err := ParseDelta(in)
			switch {
			case tt.ok && (err != nil || string(id) != tt.want.UserID || delta != tt.want.Delta()):
				t.Errorf("ParseDelta(%s) = %q, %d, %v; want %q, %d, nil", short(tt.in), id, delta, err, tt.want.UserID, tt.want.Delta())
			case !tt.ok && err == nil && !bytes.Contains(tt.in, []byte("idempotencyKey")):
				t.Errorf("ParseDelta(%s) = %q, %d, nil; want an error", short(tt.in), id, delta)
			}
		})
	}
}

// TestReference runs the table through the reference decoder, so that the fuzz test compares
// against something known to follow the contract.
func TestReference(t *testing.T) {
	for _, tt := range parseTests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := refParse(tt.in, false)
			if tt.ok {
				if err != nil || got != (Record{Event: tt.want}) {
					t.Errorf("refParse(%s) = %+v, %v; want %+v, nil", short(tt.in), got, err, tt.want)
				}
				return
			}
			if err == nil {
				t.Errorf("refParse(%s) = %+v, nil; want an error", short(tt.in), got)
			}
		})
	}
}

// TestParsePrefixes checks that every proper prefix of valid lines is invalid: a line cut
// anywhere, as by a crash mid-write, is never mistaken for an event.
func TestParsePrefixes(t *testing.T) {
	for _, full := range []string{
		canonical,
		`{"value":98,"name":"subtract_revenue","userId":"jos\u00e9 \ud83d\ude00"}`,
		`{ "userId" : "a\"b" , "name" : "add_revenue" , "value" : 9007199254740991 }`,
	} {
		for i := 0; i < len(full); i++ {
			in := []byte(full[:i])
			if got, err := Parse(in); err == nil {
				t.Errorf("Parse(%q) = %+v, nil; want an error", in, got)
			}
		}
		if _, err := Parse([]byte(full)); err != nil {
			t.Errorf("Parse(%q) = %v; want nil", full, err)
		}
	}
}

func TestParseTooLongError(t *testing.T) {
	for _, in := range [][]byte{sized(65537, ""), sized(65537, "\r"), sized(200<<10, "")} {
		if _, err := Parse(in); !errors.Is(err, ErrLineTooLong) {
			t.Errorf("Parse(%s) = %v; want %v", short(in), err, ErrLineTooLong)
		}
		if _, err := ParseRecord(in); !errors.Is(err, ErrLineTooLong) {
			t.Errorf("ParseRecord(%s) = %v; want %v", short(in), err, ErrLineTooLong)
		}
		if _, _, err := ParseDelta(in); !errors.Is(err, ErrLineTooLong) {
			t.Errorf("ParseDelta(%s) = %v; want %v", short(in), err, ErrLineTooLong)
		}
	}
}

// TestParseDoesNotAlias checks that Parse and ParseRecord copy the userId out of the line, so
// that a reused read buffer cannot change an Event after the fact.
func TestParseDoesNotAlias(t *testing.T) {
	in := []byte(`{"userId":"user1","name":"add_revenue","value":98,"idempotencyKey":"key1"}`)
	ev, err := Parse(bytes.Replace(in, []byte(`,"idempotencyKey":"key1"`), nil, 1))
	if err != nil {
		t.Fatal(err)
	}
	rec, err := ParseRecord(in)
	if err != nil {
		t.Fatal(err)
	}
	for i := range in {
		in[i] = 'X'
	}
	if ev.UserID != "user1" || rec.UserID != "user1" || rec.Key != "key1" {
		t.Errorf("after overwriting the line: Parse gave %+v, ParseRecord gave %+v; want userId user1, key key1", ev, rec)
	}
}

func TestParseDeltaDoesNotAllocate(t *testing.T) {
	in := []byte(`{"userId": "user12345", "name": "subtract_revenue", "value": 98}`)
	allocs := testing.AllocsPerRun(100, func() {
		if _, _, err := ParseDelta(in); err != nil {
			t.Fatal(err)
		}
	})
	if allocs != 0 {
		t.Errorf("ParseDelta(%q) made %v allocations; want 0", in, allocs)
	}
}

var recordTests = []struct {
	in   string
	want Record
	ok   bool
}{
	{canonical, Record{Event: user1}, true},
	{`{"userId":"user1","name":"add_revenue","value":98,"idempotencyKey":"k"}`, Record{user1, "k"}, true},
	{`{"idempotencyKey":"k","userId":"user1","name":"add_revenue","value":98}`, Record{user1, "k"}, true},
	{`{"userId":"user1","idempotencyKey" : "k","name":"add_revenue","value":98}` + "\r", Record{user1, "k"}, true},
	{`{"userId":"user1","name":"add_revenue","value":98,"idempotencyKey":"` + strings.Repeat("k", 255) + `"}`,
		Record{user1, strings.Repeat("k", 255)}, true},
	{`{"userId":"user1","name":"add_revenue","value":98,"idempotencyKey":" ~!\"\\/"}`, Record{user1, ` ~!"\/`}, true},
	{`{"userId":"user1","name":"add_revenue","value":98,"idempotencyKey":"\u0041"}`, Record{user1, "A"}, true},
	{`{"userId":"user1","name":"add_revenue","value":98,"\u0069dempotencyKey":"k"}`, Record{user1, "k"}, true},
	{`{"userId":"user1","name":"add_revenue","value":98,"idempotencyKey":"550e8400-e29b-41d4-a716-446655440000"}`,
		Record{user1, "550e8400-e29b-41d4-a716-446655440000"}, true},

	{`{"userId":"user1","name":"add_revenue","value":98,"idempotencyKey":""}`, Record{}, false},
	{`{"userId":"user1","name":"add_revenue","value":98,"idempotencyKey":"` + strings.Repeat("k", 256) + `"}`, Record{}, false},
	{`{"userId":"user1","name":"add_revenue","value":98,"idempotencyKey":"é"}`, Record{}, false},
	{`{"userId":"user1","name":"add_revenue","value":98,"idempotencyKey":"\u00e9"}`, Record{}, false},
	{`{"userId":"user1","name":"add_revenue","value":98,"idempotencyKey":"a\u0001"}`, Record{}, false},
	{`{"userId":"user1","name":"add_revenue","value":98,"idempotencyKey":"a\u007f"}`, Record{}, false},
	{`{"userId":"user1","name":"add_revenue","value":98,"idempotencyKey":"a` + "\x7f" + `"}`, Record{}, false},
	{`{"userId":"user1","name":"add_revenue","value":98,"idempotencyKey":"a\tb"}`, Record{}, false},
	{`{"userId":"user1","name":"add_revenue","value":98,"idempotencyKey":"\ud800"}`, Record{}, false},
	{`{"userId":"user1","name":"add_revenue","value":98,"idempotencyKey":1}`, Record{}, false},
	{`{"userId":"user1","name":"add_revenue","value":98,"idempotencyKey":null}`, Record{}, false},
	{`{"userId":"user1","name":"add_revenue","value":98,"idempotencyKey":"k","idempotencyKey":"k"}`, Record{}, false},
	{`{"userId":"user1","name":"add_revenue","value":98,"IdempotencyKey":"k"}`, Record{}, false},
	{`{"userId":"user1","name":"add_revenue","value":98,"key":"k"}`, Record{}, false},
	{`{"userId":"user1","name":"add_revenue","idempotencyKey":"k"}`, Record{}, false},
	{`{"idempotencyKey":"k"}`, Record{}, false},
	{`{"userId":"user1","name":"add_revenue","value":98,"idempotencyKey":"k"}x`, Record{}, false},
	{``, Record{}, false},
}

func TestParseRecord(t *testing.T) {
	for _, tt := range recordTests {
		got, err := ParseRecord([]byte(tt.in))
		if tt.ok {
			if err != nil || got != tt.want {
				t.Errorf("ParseRecord(%q) = %+v, %v; want %+v, nil", tt.in, got, err, tt.want)
			}
		} else if err == nil {
			t.Errorf("ParseRecord(%q) = %+v, nil; want an error", tt.in, got)
		}

		ref, refErr := refParse([]byte(tt.in), true)
		if (refErr == nil) != tt.ok || ref != tt.want {
			t.Errorf("refParse(%q, true) = %+v, %v; want %+v, ok=%v", tt.in, ref, refErr, tt.want, tt.ok)
		}

		id, delta, err := ParseDelta([]byte(tt.in))
		if tt.ok {
			if err != nil || string(id) != tt.want.UserID || delta != tt.want.Delta() {
				t.Errorf("ParseDelta(%q) = %q, %d, %v; want %q, %d, nil", tt.in, id, delta, err, tt.want.UserID, tt.want.Delta())
			}
		} else if err == nil {
			t.Errorf("ParseDelta(%q) = %q, %d, nil; want an error", tt.in, id, delta)
		}

		// Parse accepts a record only when it has no key.
		ev, err := Parse([]byte(tt.in))
		if wantOK := tt.ok && tt.want.Key == ""; (err == nil) != wantOK || (wantOK && ev != tt.want.Event) {
			t.Errorf("Parse(%q) = %+v, %v; want ok=%v", tt.in, ev, err, wantOK)
		}
	}
}

func TestValidKey(t *testing.T) {
	tests := []struct {
		in string
		ok bool
	}{
		{"k", true},
		{" ", true},
		{"~", true},
		{strings.Repeat("a", 255), true},
		{"550e8400-e29b-41d4-a716-446655440000", true},
		{`"\{}`, true},
		{"", false},
		{strings.Repeat("a", 256), false},
		{"a\x00", false},
		{"a\x1f", false},
		{"a\x7f", false},
		{"a\x80", false},
		{"é", false},
		{"\n", false},
		{"\xff", false},
	}
	for _, tt := range tests {
		err := ValidKey(tt.in)
		if (err == nil) != tt.ok {
			t.Errorf("ValidKey(%q) = %v; want ok=%v", tt.in, err, tt.ok)
		}
		if refKey(tt.in) != tt.ok {
			t.Errorf("refKey(%q) = %v; want %v", tt.in, !tt.ok, tt.ok)
		}
	}
}

func TestIsBlank(t *testing.T) {
	tests := []struct {
		in   string
		want bool
	}{
		{"", true},
		{" ", true},
		{"\t", true},
		{"\r", true},
		{"\n", true},
		{" \t\r\n ", true},
		{"\f", false},
		{"\v", false},
		{"\u00a0", false},
		{"\x00", false},
		{" x ", false},
		{"{}", false},
		{canonical, false},
	}
	for _, tt := range tests {
		if got := IsBlank([]byte(tt.in)); got != tt.want {
			t.Errorf("IsBlank(%q) = %v; want %v", tt.in, got, tt.want)
		}
	}
}

func TestAppendJSON(t *testing.T) {
	tests := []struct {
		in   Record
		want string
	}{
		{Record{Event: user1}, canonical},
		{Record{Event: Event{"u", SubtractRevenue, 0}}, `{"userId":"u","name":"subtract_revenue","value":0}`},
		{Record{Event: Event{"u", AddRevenue, MaxValue}}, `{"userId":"u","name":"add_revenue","value":9007199254740991}`},
		{Record{Event: Event{`a"b\c`, AddRevenue, 1}}, `{"userId":"a\"b\\c","name":"add_revenue","value":1}`},
		{Record{Event: Event{"josé/😀", AddRevenue, 1}}, `{"userId":"josé/😀","name":"add_revenue","value":1}`},
		{Record{Event: user1, Key: "k1"}, `{"userId":"user1","name":"add_revenue","value":98,"idempotencyKey":"k1"}`},
		{Record{Event: user1, Key: `k"\`}, `{"userId":"user1","name":"add_revenue","value":98,"idempotencyKey":"k\"\\"}`},
		// Not a valid event, but AppendJSON must still write one line of valid JSON.
		{Record{Event: Event{"a\nb\x00\x7f", AddRevenue, 1}}, `{"userId":"a\u000ab\u0000\u007f","name":"add_revenue","value":1}`},
	}
	for _, tt := range tests {
		got := AppendJSON(nil, tt.in)
		if string(got) != tt.want {
			t.Errorf("AppendJSON(nil, %+v) = %s; want %s", tt.in, got, tt.want)
		}
		if !json.Valid(got) {
			t.Errorf("AppendJSON(nil, %+v) = %s; want valid JSON", tt.in, got)
		}
	}

	// It appends, keeping what is already in dst.
	got := AppendJSON([]byte("prefix "), Record{Event: user1})
	if want := "prefix " + canonical; string(got) != want {
		t.Errorf("AppendJSON(%q, %+v) = %q; want %q", "prefix ", user1, got, want)
	}
}

// roundTripEvents are valid events whose userIds need care when written.
var roundTripEvents = []Event{
	user1,
	{"u", SubtractRevenue, 0},
	{"u", AddRevenue, MaxValue},
	{`"`, AddRevenue, 1},
	{`\`, AddRevenue, 1},
	{`\"`, AddRevenue, 1},
	{`a"b\c"`, SubtractRevenue, 5},
	{`\u0075ser1`, AddRevenue, 1}, // a literal backslash-u, not an escape
	{"/", AddRevenue, 1},
	{"josé", AddRevenue, 1},
	{"東京", AddRevenue, 1},
	{"😀", AddRevenue, 1},
	{"\uFFFD", AddRevenue, 1},
	{"\u2028\u2029", AddRevenue, 1},
	{"\u0080\u009f", AddRevenue, 1},
	{"<script>&amp;</script>", AddRevenue, 1},
	{strings.Repeat("a", 255), AddRevenue, 1},
	{strings.Repeat(`"`, 255), AddRevenue, 1},
	{strings.Repeat(`\`, 255), AddRevenue, 1},
	{strings.Repeat("€", 85), AddRevenue, 1},
	{" ", AddRevenue, 1},
	{" padded ", AddRevenue, 1},
}

func TestAppendJSONRoundTrip(t *testing.T) {
	for _, e := range roundTripEvents {
		b := AppendJSON(nil, Record{Event: e})
		if bytes.ContainsAny(b, "\n\r") {
			t.Errorf("AppendJSON(nil, %+v) = %q; want no line break", e, b)
		}
		if got, err := Parse(b); err != nil || got != e {
			t.Errorf("Parse(%q) = %+v, %v; want %+v, nil", b, got, err, e)
		}
		var viaJSON struct {
			UserID string `json:"userId"`
			Name   string `json:"name"`
			Value  int64  `json:"value"`
		}
		if err := json.Unmarshal(b, &viaJSON); err != nil || viaJSON.UserID != e.UserID {
			t.Errorf("json.Unmarshal(%q) gave userId %q, %v; want %q", b, viaJSON.UserID, err, e.UserID)
		}
		rec := Record{Event: e, Key: "key-1"}
		b = AppendJSON(nil, rec)
		if got, err := ParseRecord(b); err != nil || got != rec {
			t.Errorf("ParseRecord(%q) = %+v, %v; want %+v, nil", b, got, err, rec)
		}
	}
}

func TestDelta(t *testing.T) {
	tests := []struct {
		in   Event
		want int64
	}{
		{Event{"u", AddRevenue, 98}, 98},
		{Event{"u", SubtractRevenue, 98}, -98},
		{Event{"u", AddRevenue, 0}, 0},
		{Event{"u", SubtractRevenue, 0}, 0},
		{Event{"u", AddRevenue, MaxValue}, MaxValue},
		{Event{"u", SubtractRevenue, MaxValue}, -MaxValue},
	}
	for _, tt := range tests {
		if got := tt.in.Delta(); got != tt.want {
			t.Errorf("%+v.Delta() = %d; want %d", tt.in, got, tt.want)
		}
	}
}

func TestAdd(t *testing.T) {
	tests := []struct {
		a, b int64
		want int64
		ok   bool
	}{
		{0, 0, 0, true},
		{1, 2, 3, true},
		{-1, -2, -3, true},
		{5, -7, -2, true},
		{math.MaxInt64, 0, math.MaxInt64, true},
		{math.MinInt64, 0, math.MinInt64, true},
		{math.MaxInt64 - 1, 1, math.MaxInt64, true},
		{math.MinInt64 + 1, -1, math.MinInt64, true},
		{math.MaxInt64, math.MinInt64, -1, true},
		{math.MinInt64, math.MaxInt64, -1, true},
		{math.MaxInt64, -1, math.MaxInt64 - 1, true},
		{math.MinInt64, 1, math.MinInt64 + 1, true},
		{0, math.MinInt64, math.MinInt64, true},
		{math.MaxInt64 - MaxValue, MaxValue, math.MaxInt64, true},
		{math.MinInt64 + MaxValue, -MaxValue, math.MinInt64, true},

		{math.MaxInt64, 1, 0, false},
		{math.MaxInt64, math.MaxInt64, 0, false},
		{math.MaxInt64 - MaxValue + 1, MaxValue, 0, false},
		{1, math.MaxInt64, 0, false},
		{math.MinInt64, -1, 0, false},
		{math.MinInt64, math.MinInt64, 0, false},
		{math.MinInt64 + MaxValue - 1, -MaxValue, 0, false},
		{-2, math.MinInt64, 0, false},
	}
	for _, tt := range tests {
		got, err := Add(tt.a, tt.b)
		if tt.ok && (err != nil || got != tt.want) {
			t.Errorf("Add(%d, %d) = %d, %v; want %d, nil", tt.a, tt.b, got, err, tt.want)
		}
		if !tt.ok && err == nil {
			t.Errorf("Add(%d, %d) = %d, nil; want an overflow error", tt.a, tt.b, got)
		}
	}
}
