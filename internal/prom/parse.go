package prom

// Parse is stricter than the format: it accepts what a careful writer emits and refuses what
// the format merely tolerates, so that a test fails when a /metrics page drifts. A document is
// a sequence of lines, each ending in "\n" (the last one too), each one of
//
//	# HELP name text        text non-empty, with \\ and \n its only escapes
//	# TYPE name type        type one of counter, gauge, histogram, summary, untyped
//	# anything else         a comment, ignored; so is a lone "#"
//	name value [timestamp]
//	name{l="v",...} value [timestamp]
//
// with single spaces between fields and no space elsewhere, no empty line, no empty "{}" and
// no trailing comma. Label values escape \\, \" and \n and nothing else. A value is a
// decimal number, "+Inf", "-Inf" or "NaN"; a timestamp is an integer.
//
// Families:
//   - Every family has exactly one TYPE and one HELP line, in either order, before its samples.
//   - All lines of a family (HELP, TYPE, samples) are one contiguous group.
//   - No two samples have the same name and label set.
//   - A counter's name ends in "_total", its one sample name is its own name, and no value is
//     negative or NaN. A gauge's or untyped family's one sample name is its own name.
//   - A histogram "x" has only x_bucket, x_sum and x_count samples. Each series (its labels
//     but le) has buckets whose le label is a value, in increasing le order, with
//     non-decreasing counts, the last one le="+Inf" and equal to the series' x_count; and one
//     x_sum and one x_count, without le.
//   - A summary "x" has x samples with a quantile label, and x_sum and x_count without one.

import (
	"cmp"
	"fmt"
	"io"
	"math"
	"slices"
	"strconv"
	"strings"
	"unicode/utf8"
)

// Family is one metric family of a parsed exposition.
type Family struct {
	Name    string
	Type    string // counter, gauge, histogram, summary or untyped
	Help    string // unescaped
	Samples []Sample
}

// Sample is one sample line.
type Sample struct {
	Name   string // the family's name, or for a histogram or summary, with its suffix
	Labels map[string]string
	Value  float64
}

// Sample returns the value of the sample called name whose labels are exactly the given
// name, value pairs, in any order. It reports false if there is no such sample, or f is nil,
// so that fams["x"].Sample(...) works for a missing family too. An odd number of label
// arguments is a mistake in the calling test, and panics.
func (f *Family) Sample(name string, labels ...string) (float64, bool) {
	if len(labels)%2 != 0 {
		panic(fmt.Sprintf("prom: Family.Sample(%q): odd number of label arguments %q", name, labels))
	}
	if f == nil {
		return 0, false
	}
	for _, s := range f.Samples {
		if s.Name == name && s.has(labels) {
			return s.Value, true
		}
	}
	return 0, false
}

// Value is Sample for the sample named as the family: a counter's or a gauge's.
func (f *Family) Value(labels ...string) (float64, bool) {
	if f == nil {
		return 0, false
	}
	return f.Sample(f.Name, labels...)
}

// has reports whether the sample's labels are exactly the pairs.
func (s *Sample) has(pairs []string) bool {
	if len(s.Labels) != len(pairs)/2 {
		return false
	}
	for i := 0; i < len(pairs); i += 2 {
		if v, ok := s.Labels[pairs[i]]; !ok || v != pairs[i+1] {
			return false
		}
	}
	return true
}

// ParseError is a line of an exposition that breaks the format, or the rules above.
type ParseError struct {
	Line int // 1-based
	Msg  string
}

func (e *ParseError) Error() string { return fmt.Sprintf("line %d: %s", e.Line, e.Msg) }

// Parse reads an exposition in the text format 0.0.4 and returns its families by name. It is
// strict, as the comment at the top of parse.go says, and returns the first broken rule it
// finds as a *ParseError. Rules are checked line by line, but for those only the end of the
// document can settle (a missing TYPE or HELP line, a histogram series without its +Inf
// bucket, _sum or _count), which are checked last.
func Parse(r io.Reader) (map[string]*Family, error) {
	data, err := io.ReadAll(r)
	if err != nil {
		return nil, fmt.Errorf("read exposition: %w", err)
	}
	p := &parser{fams: make(map[string]*famState), owners: make(map[string]*famState)}
	for len(data) > 0 {
		p.line++
		i := slices.Index(data, '\n')
		if i < 0 {
			return nil, p.errorf("last line does not end in a line feed")
		}
		line := string(data[:i])
		data = data[i+1:]
		if err := p.parseLine(line); err != nil {
			return nil, err
		}
	}
	if err := p.finish(); err != nil {
		return nil, err
	}
	fams := make(map[string]*Family, len(p.order))
	for _, fs := range p.order {
		fams[fs.Name] = &fs.Family
	}
	return fams, nil
}

type parser struct {
	line   int
	fams   map[string]*famState // by family name
	order  []*famState          // in order of first mention
	owners map[string]*famState // by sample name: the family whose samples bear it
	cur    *famState            // the family of the last HELP, TYPE or sample line
}

// famState is a family being parsed, with what the rules need to remember about it.
type famState struct {
	Family
	helpLine, typeLine, sampleLine int  // the first of each; 0 for none yet
	closed                         bool // another family's lines came after this one's
	series                         map[string]int
	hist                           map[string]*histSeries // by series key, without le
	histOrder                      []*histSeries
}

// histSeries is what the histogram rules remember of one series.
type histSeries struct {
	line     int    // its first sample
	labels   string // for messages
	buckets  int
	le, last float64 // the last bucket's le and count
	sum      bool
	count    bool
	countV   float64
}

func (p *parser) errorf(format string, args ...any) error {
	return errorAt(p.line, format, args...)
}

func errorAt(line int, format string, args ...any) error {
	return &ParseError{Line: line, Msg: fmt.Sprintf(format, args...)}
}

func (p *parser) parseLine(line string) error {
	switch {
	case line == "":
		return p.errorf("empty line")
	case !utf8.ValidString(line):
		return p.errorf("invalid UTF-8")
	case line[0] == '#':
		return p.comment(line)
	default:
		return p.sample(line)
	}
}

func (p *parser) comment(line string) error {
	rest, ok := strings.CutPrefix(line, "# ")
	if !ok {
		if line == "#" {
			return nil
		}
		return p.errorf("malformed comment %q: want a space after #", line)
	}
	keyword, rest, _ := strings.Cut(rest, " ")
	switch keyword {
	case "HELP":
		return p.help(rest)
	case "TYPE":
		return p.typ(rest)
	}
	return nil
}

func (p *parser) help(s string) error {
	name, text, ok := strings.Cut(s, " ")
	if !ok || text == "" {
		return p.errorf("malformed HELP line: want # HELP name text")
	}
	if !validMetricName(name) {
		return p.errorf("invalid metric name %q in HELP", name)
	}
	help, err := unescapeHelp(text)
	if err != nil {
		return p.errorf("HELP for %s: %v", name, err)
	}
	fs := p.family(name)
	switch {
	case fs.helpLine != 0:
		return p.errorf("duplicate HELP for %s (first at line %d)", name, fs.helpLine)
	case fs.sampleLine != 0:
		return p.errorf("HELP line for %s after its samples (from line %d)", name, fs.sampleLine)
	}
	if err := p.enter(fs); err != nil {
		return err
	}
	fs.Help, fs.helpLine = help, p.line
	return nil
}

func (p *parser) typ(s string) error {
	name, typ, ok := strings.Cut(s, " ")
	if !ok {
		return p.errorf("malformed TYPE line: want # TYPE name type")
	}
	if !validMetricName(name) {
		return p.errorf("invalid metric name %q in TYPE", name)
	}
	suffixes := []string{""}
	switch typ {
	case "counter", "gauge", "untyped":
	case "histogram":
		suffixes = []string{"", "_bucket", "_sum", "_count"}
	case "summary":
		suffixes = []string{"", "_sum", "_count"}
	default:
		return p.errorf("TYPE for %s: unknown type %q (want counter, gauge, histogram, summary or untyped)", name, typ)
	}
	fs := p.family(name)
	switch {
	case fs.typeLine != 0:
		return p.errorf("duplicate TYPE for %s (first at line %d)", name, fs.typeLine)
	case fs.sampleLine != 0:
		return p.errorf("TYPE line for %s after its samples (from line %d)", name, fs.sampleLine)
	}
	for _, suffix := range suffixes {
		if owner := p.owners[name+suffix]; owner != nil {
			return p.errorf("TYPE line for %s after its samples: %s at line %d, counted in family %s",
				name, name+suffix, owner.sampleLine, owner.Name)
		}
	}
	if typ == "counter" && !strings.HasSuffix(name, "_total") {
		return p.errorf("counter %s: name does not end in _total", name)
	}
	if err := p.enter(fs); err != nil {
		return err
	}
	fs.Type, fs.typeLine = typ, p.line
	return nil
}

// family returns the family called name, making it on first mention.
func (p *parser) family(name string) *famState {
	fs := p.fams[name]
	if fs == nil {
		fs = &famState{Family: Family{Name: name}, series: make(map[string]int)}
		p.fams[name] = fs
		p.order = append(p.order, fs)
	}
	return fs
}

// enter makes fs the current family, refusing to go back to one whose group has ended.
func (p *parser) enter(fs *famState) error {
	if fs == p.cur {
		return nil
	}
	if fs.closed {
		return p.errorf("lines of family %s are not contiguous: family %s's lines come between them", fs.Name, p.cur.Name)
	}
	if p.cur != nil {
		p.cur.closed = true
	}
	p.cur = fs
	return nil
}

// resolve returns the family a sample name belongs to: the family of that name, else a
// histogram or summary it is a _bucket, _sum or _count of. A sample of no known family
// starts one without a TYPE: a TYPE line for it later is refused as coming after its samples,
// and if none comes, finish refuses the family for having no TYPE. That way each mistake gets
// its own message.
func (p *parser) resolve(name string) *famState {
	if fs := p.fams[name]; fs != nil {
		return fs
	}
	for _, suffix := range []string{"_bucket", "_sum", "_count"} {
		base, ok := strings.CutSuffix(name, suffix)
		if !ok {
			continue
		}
		if fs := p.fams[base]; fs != nil && (fs.Type == "histogram" || fs.Type == "summary" && suffix != "_bucket") {
			return fs
		}
	}
	return p.family(name)
}

func (p *parser) sample(line string) error {
	i := strings.IndexAny(line, "{ ")
	if i < 0 {
		return p.errorf("malformed sample %q: want name{labels} value", line)
	}
	name, rest := line[:i], line[i:]
	if !validMetricName(name) {
		return p.errorf("invalid metric name %q", name)
	}
	labels := map[string]string{}
	if rest[0] == '{' {
		var err error
		if labels, rest, err = parseLabels(rest[1:]); err != nil {
			return p.errorf("sample %s: %v", name, err)
		}
	}
	rest, ok := strings.CutPrefix(rest, " ")
	if !ok {
		return p.errorf("malformed sample %q: want one space before the value", line)
	}
	text, ts, hasTS := strings.Cut(rest, " ")
	v, ok := parseFloat(text)
	if !ok {
		return p.errorf("sample %s: invalid value %q", name, text)
	}
	if hasTS {
		if _, err := strconv.ParseInt(ts, 10, 64); err != nil {
			return p.errorf("sample %s: invalid timestamp %q", name, ts)
		}
	}

	fs := p.resolve(name)
	if err := p.enter(fs); err != nil {
		return err
	}
	key := name + labelsText(labels, "")
	if first, dup := fs.series[key]; dup {
		return p.errorf("duplicate series %s (first at line %d)", key, first)
	}
	fs.series[key] = p.line
	switch fs.Type {
	case "counter":
		if !(v >= 0) {
			return p.errorf("counter %s: negative or NaN value %s", key, text)
		}
	case "histogram":
		if err := p.histogramSample(fs, name, labels, v); err != nil {
			return err
		}
	case "summary":
		if err := p.summarySample(fs, name, labels); err != nil {
			return err
		}
	}
	if fs.sampleLine == 0 {
		fs.sampleLine = p.line
	}
	if p.owners[name] == nil {
		p.owners[name] = fs
	}
	fs.Samples = append(fs.Samples, Sample{Name: name, Labels: labels, Value: v})
	return nil
}

func (p *parser) histogramSample(fs *famState, name string, labels map[string]string, v float64) error {
	suffix := name[len(fs.Name):]
	key := labelsText(labels, "le")
	series := cmp.Or(key, "{}") // for messages
	switch suffix {
	case "_bucket":
		text, ok := labels["le"]
		if !ok {
			return p.errorf("histogram %s: bucket %s has no le label", fs.Name, series)
		}
		le, ok := parseFloat(text)
		if !ok || math.IsNaN(le) {
			return p.errorf("histogram %s: bucket le=%q is not a float", fs.Name, text)
		}
		if !(v >= 0) {
			return p.errorf("histogram %s: bucket %s le=%q: negative or NaN count", fs.Name, series, text)
		}
		hs := p.histSeries(fs, key)
		if hs.buckets > 0 {
			if !(le > hs.le) {
				return p.errorf("histogram %s: buckets of %s not in increasing le order: le=%q after le=%q",
					fs.Name, series, text, formatFloat(hs.le))
			}
			if v < hs.last {
				return p.errorf("histogram %s: buckets of %s not cumulative: le=%q counts %s, less than the %s before it",
					fs.Name, series, text, formatFloat(v), formatFloat(hs.last))
			}
		}
		hs.buckets++
		hs.le, hs.last = le, v
	case "_sum", "_count":
		if _, ok := labels["le"]; ok {
			return p.errorf("histogram %s: %s has an le label", fs.Name, name)
		}
		hs := p.histSeries(fs, key)
		if suffix == "_sum" {
			hs.sum = true
			break
		}
		if !(v >= 0) {
			return p.errorf("histogram %s: %s%s: negative or NaN count", fs.Name, name, key)
		}
		hs.count, hs.countV = true, v
	default:
		return p.errorf("histogram %s: sample %s is not a _bucket, _sum or _count", fs.Name, name)
	}
	return nil
}

func (p *parser) histSeries(fs *famState, series string) *histSeries {
	hs := fs.hist[series]
	if hs == nil {
		if fs.hist == nil {
			fs.hist = make(map[string]*histSeries)
		}
		hs = &histSeries{line: p.line, labels: cmp.Or(series, "{}")}
		fs.hist[series] = hs
		fs.histOrder = append(fs.histOrder, hs)
	}
	return hs
}

func (p *parser) summarySample(fs *famState, name string, labels map[string]string) error {
	q, ok := labels["quantile"]
	if name == fs.Name {
		if v, good := parseFloat(q); !ok || !good || !(v >= 0 && v <= 1) {
			return p.errorf("summary %s: sample without a quantile label in [0, 1]", fs.Name)
		}
	} else if ok {
		return p.errorf("summary %s: %s has a quantile label", fs.Name, name)
	}
	return nil
}

// finish checks what only the end of the document can tell.
func (p *parser) finish() error {
	for _, fs := range p.order {
		switch {
		case fs.typeLine == 0 && fs.sampleLine != 0:
			return errorAt(fs.sampleLine, "sample %s has no TYPE line before it", fs.Name)
		case fs.typeLine == 0:
			return errorAt(fs.helpLine, "HELP line for %s without a TYPE line", fs.Name)
		case fs.helpLine == 0:
			return errorAt(fs.typeLine, "no HELP line for %s", fs.Name)
		}
		for _, hs := range fs.histOrder {
			switch {
			case hs.buckets == 0 || !math.IsInf(hs.le, +1):
				return errorAt(hs.line, "histogram %s: series %s does not end with an le=\"+Inf\" bucket", fs.Name, hs.labels)
			case !hs.sum:
				return errorAt(hs.line, "histogram %s: series %s has no _sum", fs.Name, hs.labels)
			case !hs.count:
				return errorAt(hs.line, "histogram %s: series %s has no _count", fs.Name, hs.labels)
			case hs.countV != hs.last:
				return errorAt(hs.line, "histogram %s: series %s: le=\"+Inf\" bucket %s differs from _count %s",
					fs.Name, hs.labels, formatFloat(hs.last), formatFloat(hs.countV))
			}
		}
	}
	return nil
}
