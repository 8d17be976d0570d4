package prom

import (
	"errors"
	"math"
	"strings"
	"testing"
)

// Headers of the documents below.
const (
	counterHead = "# HELP x_total X.\n# TYPE x_total counter\n"
	gaugeHead   = "# HELP g G.\n# TYPE g gauge\n"
	histHead    = "# HELP h H.\n# TYPE h histogram\n"
)

// histOK is a valid histogram series, to break one rule at a time.
const histOK = `h_bucket{a="1",le="0.5"} 1
h_bucket{a="1",le="1"} 2
h_bucket{a="1",le="+Inf"} 3
h_sum{a="1"} 4.5
h_count{a="1"} 3
`

// rejected holds one document per rule Parse enforces, with the line it must blame and words
// its message must hold.
var rejected = []struct {
	name string
	in   string
	line int
	want string
}{
	// Lines.
	{"no final newline", counterHead + "x_total 1", 3, "does not end in a line feed"},
	{"empty line", counterHead + "\nx_total 1\n", 3, "empty line"},
	{"invalid UTF-8", counterHead + "x_total{a=\"\xff\"} 1\n", 3, "invalid UTF-8"},
	{"comment without space", "#x\n", 1, "malformed comment"},
	{"malformed HELP", "# HELP x_total\n", 1, "malformed HELP"},
	{"empty HELP", "# HELP x_total \n", 1, "malformed HELP"},
	{"malformed TYPE", "# HELP g G.\n# TYPE g\n", 2, "malformed TYPE"},
	{"unknown TYPE", "# HELP g G.\n# TYPE g Gauge\n", 2, "unknown type"},
	{"TYPE extra field", "# HELP g G.\n# TYPE g gauge x\n", 2, "unknown type"},
	{"no value", counterHead + "x_total\n", 3, "malformed sample"},
	{"two spaces", counterHead + "x_total  1\n", 3, "invalid value"},
	{"space before labels", gaugeHead + "g {a=\"1\"} 1\n", 3, "invalid value"},
	{"leading space", gaugeHead + " g 1\n", 3, "invalid metric name"},
	{"trailing space", gaugeHead + "g 1 \n", 3, "invalid timestamp"},
	{"bad timestamp", gaugeHead + "g 1 1.5\n", 3, "invalid timestamp"},
	{"no space after labels", gaugeHead + "g{a=\"1\"}1\n", 3, "want one space before the value"},
	// Names.
	{"invalid metric name", gaugeHead + "g-x 1\n", 3, "invalid metric name"},
	{"metric name starts with digit", "# HELP 1g G.\n", 1, "invalid metric name"},
	{"invalid metric name in TYPE", "# TYPE g.x gauge\n", 1, "invalid metric name"},
	{"invalid label name", gaugeHead + "g{a-b=\"1\"} 1\n", 3, "invalid label name"},
	{"label name starts with digit", gaugeHead + "g{1a=\"1\"} 1\n", 3, "invalid label name"},
	{"reserved label name", gaugeHead + "g{__name__=\"g\"} 1\n", 3, "invalid label name"},
	// Labels.
	{"bad escape", gaugeHead + `g{a="\t"} 1` + "\n", 3, "bad escape"},
	{"escape at end", gaugeHead + `g{a="\` + "\n", 3, "unterminated"},
	{"unterminated value", gaugeHead + `g{a="1} 1` + "\n", 3, "unterminated"},
	{"unquoted value", gaugeHead + `g{a=1} 1` + "\n", 3, "not quoted"},
	{"no =", gaugeHead + `g{a} 1` + "\n", 3, "malformed labels"},
	{"duplicate label name", gaugeHead + `g{a="1",a="2"} 1` + "\n", 3, "duplicate label name"},
	{"empty label set", gaugeHead + `g{} 1` + "\n", 3, "empty label set"},
	{"trailing comma", gaugeHead + `g{a="1",} 1` + "\n", 3, "trailing comma"},
	{"space after comma", gaugeHead + `g{a="1", b="2"} 1` + "\n", 3, "invalid label name"},
	{"no comma", gaugeHead + `g{a="1"b="2"} 1` + "\n", 3, "want , or }"},
	{"bad HELP escape", `# HELP g a\tb` + "\n", 1, "bad escape"},
	{"HELP lone backslash", `# HELP g a\` + "\n", 1, "bad escape"},
	// Values.
	{"unparsable value", gaugeHead + "g one\n", 3, "invalid value"},
	{"hex value", gaugeHead + "g 0x10\n", 3, "invalid value"},
	{"Inf spelled inf", gaugeHead + "g inf\n", 3, "invalid value"},
	{"Inf without sign", gaugeHead + "g Inf\n", 3, "invalid value"},
	{"underscore", gaugeHead + "g 1_000\n", 3, "invalid value"},
	{"out of range", gaugeHead + "g 1e999\n", 3, "invalid value"},
	{"lone dot", gaugeHead + "g .\n", 3, "invalid value"},
	{"exponent without digits", gaugeHead + "g 1e\n", 3, "invalid value"},
	// Families.
	{"TYPE twice", "# HELP g G.\n# TYPE g gauge\n# TYPE g gauge\n", 3, "duplicate TYPE"},
	{"HELP twice", "# HELP g G.\n# HELP g G.\n# TYPE g gauge\n", 2, "duplicate HELP"},
	{"HELP twice after samples", gaugeHead + "g 1\n# HELP g G.\n", 4, "duplicate HELP"},
	{"TYPE after samples", "# HELP g G.\ng 1\n# TYPE g gauge\n", 3, "TYPE line for g after its samples"},
	{"TYPE after samples, no HELP", "g 1\n# TYPE g gauge\n", 2, "TYPE line for g after its samples"},
	{"TYPE after samples it owns", "# HELP h_count C.\n# TYPE h_count untyped\nh_count 1\n# HELP h H.\n# TYPE h histogram\n",
		5, "TYPE line for h after its samples: h_count at line 3"},
	{"HELP after samples", "# TYPE g gauge\ng 1\n# HELP g G.\n", 3, "HELP line for g after its samples"},
	{"no TYPE", "# HELP g G.\ng 1\n", 2, "no TYPE line"},
	{"no TYPE, no HELP", gaugeHead + "g 1\nh 2\n", 4, "no TYPE line"},
	{"HELP without TYPE", "# HELP g G.\n", 1, "without a TYPE line"},
	{"no HELP", "# TYPE g gauge\ng 1\n", 1, "no HELP line"},
	{"samples not contiguous", gaugeHead + counterHead + "g 1\n", 5, "not contiguous"},
	{"samples interleaved", gaugeHead + "g{a=\"1\"} 1\n" + counterHead + "x_total 1\ng{a=\"2\"} 1\n", 7, "not contiguous"},
	{"metadata split", "# HELP g G.\n" + counterHead + "# TYPE g gauge\n", 4, "not contiguous"},
	{"duplicate series", gaugeHead + "g{a=\"1\",b=\"2\"} 1\ng{b=\"2\",a=\"1\"} 2\n", 4, "duplicate series"},
	{"duplicate series without labels", gaugeHead + "g 1\ng 1\n", 4, "duplicate series"},
	{"gauge with other sample name", gaugeHead + "g_sum 1\n", 3, "no TYPE line"},
	// Counters.
	{"counter not _total", "# HELP x X.\n# TYPE x counter\nx 1\n", 2, "does not end in _total"},
	{"counter sample not _total", counterHead + "x 1\n", 3, "no TYPE line"},
	{"negative counter", counterHead + "x_total -1\n", 3, "negative"},
	{"NaN counter", counterHead + "x_total NaN\n", 3, "negative or NaN"},
	// Histograms.
	{"histogram plain sample", histHead + "h 1\n", 3, "not a _bucket, _sum or _count"},
	{"histogram bucket without le", histHead + "h_bucket{a=\"1\"} 1\n", 3, "no le label"},
	{"histogram le not a float", histHead + "h_bucket{le=\"x\"} 1\n", 3, "is not a float"},
	{"histogram le NaN", histHead + "h_bucket{le=\"NaN\"} 1\n", 3, "is not a float"},
	{"histogram le Inf", histHead + "h_bucket{le=\"Inf\"} 1\n", 3, "is not a float"},
	{"histogram buckets out of order", histHead + "h_bucket{le=\"1\"} 1\nh_bucket{le=\"0.5\"} 1\n", 4, "increasing le order"},
	{"histogram le repeated", histHead + "h_bucket{le=\"1\"} 1\nh_bucket{le=\"1.0\"} 1\n", 4, "increasing le order"},
	{"histogram bucket after +Inf", histHead + "h_bucket{le=\"+Inf\"} 1\nh_bucket{le=\"2\"} 1\n", 4, "increasing le order"},
	{"histogram not cumulative", histHead + "h_bucket{le=\"1\"} 2\nh_bucket{le=\"2\"} 1\n", 4, "not cumulative"},
	{"histogram negative bucket", histHead + "h_bucket{le=\"1\"} -1\n", 3, "negative"},
	{"histogram negative count", histHead + "h_count -1\n", 3, "negative"},
	{"histogram no +Inf", histHead + strings.Replace(histOK, `h_bucket{a="1",le="+Inf"} 3`+"\n", "", 1), 3, `le="+Inf"`},
	{"histogram no buckets", histHead + "h_sum 1\nh_count 0\n", 3, `le="+Inf"`},
	{"histogram +Inf differs from count", histHead + strings.Replace(histOK, `h_count{a="1"} 3`, `h_count{a="1"} 4`, 1), 3, "differs from _count"},
	{"histogram no sum", histHead + strings.Replace(histOK, `h_sum{a="1"} 4.5`+"\n", "", 1), 3, "no _sum"},
	{"histogram no count", histHead + strings.Replace(histOK, `h_count{a="1"} 3`+"\n", "", 1), 3, "no _count"},
	{"histogram count of another series", histHead + strings.Replace(histOK, `h_count{a="1"}`, `h_count{a="2"}`, 1), 3, "no _count"},
	{"histogram le on sum", histHead + strings.Replace(histOK, `h_sum{a="1"}`, `h_sum{a="1",le="1"}`, 1), 6, "has an le label"},
	{"histogram le on count", histHead + strings.Replace(histOK, `h_count{a="1"}`, `h_count{le="+Inf",a="1"}`, 1), 7, "has an le label"},
	{"histogram other suffix", histHead + "h_total 1\n", 3, "no TYPE line"},
	// Summaries, which our writer does not emit, are checked lightly.
	{"summary without quantile", "# HELP s S.\n# TYPE s summary\ns 1\n", 3, "quantile"},
	{"summary quantile out of range", "# HELP s S.\n# TYPE s summary\ns{quantile=\"2\"} 1\n", 3, "quantile"},
	{"summary quantile on sum", "# HELP s S.\n# TYPE s summary\ns_sum{quantile=\"0.5\"} 1\n", 3, "quantile"},
	{"summary bucket", "# HELP s S.\n# TYPE s summary\ns_bucket 1\n", 3, "no TYPE line"},
}

func TestParseRejects(t *testing.T) {
	for _, tc := range rejected {
		t.Run(tc.name, func(t *testing.T) {
			fams, err := Parse(strings.NewReader(tc.in))
			var pe *ParseError
			if !errors.As(err, &pe) {
				t.Fatalf("Parse(%q) = %v, %v; want a *ParseError mentioning %q", tc.in, fams, err, tc.want)
			}
			if pe.Line != tc.line || !strings.Contains(pe.Msg, tc.want) {
				t.Errorf("Parse(%q) = %v; want line %d: ...%s...", tc.in, err, tc.line, tc.want)
			}
		})
	}
}

// accepted holds valid documents, some of them beyond what our writer emits.
var accepted = []struct {
	name string
	in   string
}{
	{"empty", ""},
	{"family without samples", counterHead},
	{"TYPE before HELP", "# TYPE g gauge\n# HELP g G.\ng 1\n"},
	{"comments", "#\n# a comment\n" + gaugeHead + "# between samples\ng{a=\"1\"} 1\n# HELPER is not HELP\ng{a=\"2\"} 2\n"},
	{"timestamp", gaugeHead + "g 1 1700000000000\ng{a=\"1\"} 1 -5\n"},
	{"values", gaugeHead + strings.Join([]string{
		`g{v="a"} +Inf`, `g{v="b"} -Inf`, `g{v="c"} NaN`, `g{v="d"} -1.5e-07`, `g{v="e"} .5`,
		`g{v="f"} 1.`, `g{v="g"} +3`, `g{v="h"} 1E+06`, `g{v="i"} 0`,
	}, "\n") + "\n"},
	{"escapes", "# HELP g a \\\\ b \\n c \"quoted\"\n# TYPE g gauge\n" + `g{a="\\",b="\"",c="\n",d="é{},="} 1` + "\n"},
	{"colon in name", "# HELP a:b_total X.\n# TYPE a:b_total counter\na:b_total 0\n"},
	{"histogram", histHead + histOK + strings.ReplaceAll(histOK, `a="1"`, `a="2"`)},
	{"histogram without labels", histHead + "h_bucket{le=\"+Inf\"} 0\nh_sum 0\nh_count 0\n"},
	{"histogram sum before buckets", histHead + "h_sum 0\nh_count 0\nh_bucket{le=\"-1\"} 0\nh_bucket{le=\"+Inf\"} 0\n"},
	{"histogram negative sum", histHead + "h_bucket{le=\"0\"} 1\nh_bucket{le=\"+Inf\"} 1\nh_sum -3\nh_count 1\n"},
	{"histogram le first", histHead + "h_bucket{le=\"+Inf\",a=\"1\"} 0\nh_sum{a=\"1\"} 0\nh_count{a=\"1\"} 0\n"},
	{"summary", "# HELP s S.\n# TYPE s summary\ns{quantile=\"0.5\"} 1\ns{quantile=\"1\"} 2\ns_sum 3\ns_count 2\n"},
	{"untyped", "# HELP u U.\n# TYPE u untyped\nu -1\n"},
	{"histogram next to its look-alike", histHead + histOK + "# HELP h_counts C.\n# TYPE h_counts gauge\nh_counts 1\n"},
}

func TestParseAccepts(t *testing.T) {
	for _, tc := range accepted {
		t.Run(tc.name, func(t *testing.T) {
			if _, err := Parse(strings.NewReader(tc.in)); err != nil {
				t.Errorf("Parse(%q) = %v; want nil", tc.in, err)
			}
		})
	}
}

func TestParseResult(t *testing.T) {
	in := "# HELP g a \\\\ b \\n c\n# TYPE g gauge\n" + `g{a="\\",b="\"",c="\n"} 1.5` + "\ng -2\n" + histHead + histOK
	fams, err := Parse(strings.NewReader(in))
	if err != nil {
		t.Fatalf("Parse(%q) = %v; want nil", in, err)
	}
	if len(fams) != 2 {
		t.Errorf("Parse(%q) has %d families; want 2", in, len(fams))
	}
	g := fams["g"]
	if g.Name != "g" || g.Type != "gauge" || g.Help != "a \\ b \n c" || len(g.Samples) != 2 {
		t.Errorf("family g = %+v; want gauge g with help %q and 2 samples", g, "a \\ b \n c")
	}
	lookups := []struct {
		fam, name string
		labels    []string
		want      float64
		ok        bool
	}{
		{"g", "g", []string{"c", "\n", "a", `\`, "b", `"`}, 1.5, true},
		{"g", "g", nil, -2, true},
		{"g", "g", []string{"a", `\`}, 0, false}, // a subset of the labels is not a match
		{"h", "h_bucket", []string{"a", "1", "le", "+Inf"}, 3, true},
		{"h", "h_sum", []string{"a", "1"}, 4.5, true},
		{"h", "h_count", []string{"a", "1"}, 3, true},
		{"h", "h_count", []string{"a", "2"}, 0, false},
		{"missing", "missing", nil, 0, false}, // a nil *Family answers false
	}
	for _, l := range lookups {
		if got, ok := fams[l.fam].Sample(l.name, l.labels...); got != l.want || ok != l.ok {
			t.Errorf("fams[%q].Sample(%q, %q) = %v, %v; want %v, %v", l.fam, l.name, l.labels, got, ok, l.want, l.ok)
		}
	}
	if v, ok := fams["g"].Value(); v != -2 || !ok {
		t.Errorf(`fams["g"].Value() = %v, %v; want -2, true`, v, ok)
	}
	if v, ok := fams["nope"].Value(); ok {
		t.Errorf(`fams["nope"].Value() = %v, %v; want 0, false`, v, ok)
	}
	wantPanic(t, "odd number of label arguments", func() { g.Sample("g", "a") })

	nan := "# HELP g G.\n# TYPE g gauge\ng NaN\n"
	fams, err = Parse(strings.NewReader(nan))
	if v, _ := fams["g"].Value(); err != nil || !math.IsNaN(v) {
		t.Errorf("Parse(%q) = g %v, %v; want NaN, nil", nan, v, err)
	}
}

// TestParseReadError checks that a failing reader is reported as such, not as a line.
func TestParseReadError(t *testing.T) {
	boom := errors.New("boom")
	if _, err := Parse(errReader{boom}); !errors.Is(err, boom) {
		t.Errorf("Parse(failing reader) = %v; want %v wrapped", err, boom)
	}
}

type errReader struct{ err error }

func (r errReader) Read([]byte) (int, error) { return 0, r.err }
