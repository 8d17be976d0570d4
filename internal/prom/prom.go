// Package prom keeps metrics and writes them in the Prometheus text exposition format,
// version 0.0.4, with nothing but the standard library; Parse reads that format back, strictly,
// so that tests can hold a /metrics page to it.
//
// A program builds one *Registry, registers its metrics on it at start, and serves it:
//
//	reg := prom.NewRegistry()
//	accepted := reg.NewCounterVec("finonex_events_accepted_total", "Events accepted, by route.", "route")
//	latency := reg.NewHistogram("finonex_request_seconds", "Time to answer a request.", prom.SecondsBuckets())
//	mux.Handle("GET /metrics", reg)
//
// There is no default registry: what a program exposes is what it registered.
//
// Registration panics on a programming error: a name registered twice or colliding with
// another family's samples (a histogram "x" owns "x_bucket", "x_sum" and "x_count"), an
// invalid metric or label name, a counter whose name does not end in "_total", empty help, or
// bad buckets. Names are constants and registration happens once in a constructor, so the
// panic fires the first time the program or its tests start, the way expvar.Publish and
// regexp.MustCompile do. Nothing panics after registration except With given the wrong
// number of label values, which is the same kind of mistake.
//
// What a scrape shows, by decision:
//   - Families are sorted by name; each has one HELP and one TYPE line, then its samples.
//   - Series of a labeled family are sorted by their label values, in the registered label
//     order; a labeled family with no series yet shows its HELP and TYPE lines alone, so that
//     a scrape lists every family the program has, used or not.
//   - Values are spelled as Prometheus spells them: strconv.FormatFloat(v, 'g', -1, 64),
//     "+Inf", "-Inf" and "NaN". Bucket counts and _count are spelled the same way.
//   - No timestamps, no comments, no empty lines.
package prom

import (
	"errors"
	"fmt"
	"io"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"sync"
	"unicode/utf8"
)

// ContentType is the Content-Type of the text exposition format that ServeHTTP writes, as
// the format's specification spells it (the text is UTF-8, which is the format's own rule).
const ContentType = "text/plain; version=0.0.4"

// Registry holds the metric families of a program. Its zero value is ready to use; it is safe
// for concurrent use, registration included.
type Registry struct {
	mu sync.Mutex
	// families is sorted by name and never changed in place: registration installs a new
	// slice, so a scrape can walk the one it took without holding mu.
	families []*family
	// owners maps every sample name a family writes to that family's name, so that no two
	// families can write the same sample name.
	owners map[string]string
}

// NewRegistry returns an empty registry.
func NewRegistry() *Registry { return &Registry{} }

// family is one registered metric family.
type family struct {
	name   string
	header string // its "# HELP" and "# TYPE" lines, rendered once at registration
	c      collector
}

// A collector appends the sample lines of one family.
type collector interface {
	appendSamples(b []byte, name string) []byte
}

// register adds a family, panicking on a programming error. labels are the family's label
// names; suffixes are the endings its sample names add to its name ("" for the name itself).
func (r *Registry) register(typ, name, help string, labels []string, c collector, suffixes ...string) {
	if err := checkFamily(typ, name, help, labels); err != nil {
		panic(fmt.Sprintf("prom: register %s %q: %v", typ, name, err))
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	for _, s := range suffixes {
		if owner, ok := r.owners[name+s]; ok {
			panic(fmt.Sprintf("prom: register %s %q: sample name %q is already written by family %q", typ, name, name+s, owner))
		}
	}
	if r.owners == nil {
		r.owners = make(map[string]string)
	}
	for _, s := range suffixes {
		r.owners[name+s] = name
	}
	var h []byte
	h = append(h, "# HELP "...)
	h = append(h, name...)
	h = append(h, ' ')
	h = appendEscaped(h, help, false)
	h = append(h, "\n# TYPE "...)
	h = append(h, name...)
	h = append(h, ' ')
	h = append(h, typ...)
	h = append(h, '\n')
	f := &family{name: name, header: string(h), c: c}
	i, _ := slices.BinarySearchFunc(r.families, name, func(f *family, name string) int { return strings.Compare(f.name, name) })
	r.families = slices.Insert(slices.Clip(r.families), i, f) // Clip: a copy, never in place
}

// registerVec is register for a labeled family, which needs label names: a Vec without any
// would show nothing until With() was called, unlike the plain metric it should have been.
func (r *Registry) registerVec(typ, name, help string, labels []string, c collector, suffixes ...string) {
	if len(labels) == 0 {
		panic(fmt.Sprintf("prom: register %s %q: no label names (for none, register the plain metric)", typ, name))
	}
	r.register(typ, name, help, labels, c, suffixes...)
}

// registerFunc is register for a family of one series read from f at each scrape.
func (r *Registry) registerFunc(typ, name, help string, f func() float64) {
	if f == nil {
		panic(fmt.Sprintf("prom: register %s %q: nil func", typ, name))
	}
	r.register(typ, name, help, nil, funcValue(f), "")
}

// checkFamily says what is wrong with a family's definition, if anything.
func checkFamily(typ, name, help string, labels []string) error {
	if !validMetricName(name) {
		return errors.New("invalid metric name (want [a-zA-Z_:][a-zA-Z0-9_:]*)")
	}
	if typ == "counter" && !strings.HasSuffix(name, "_total") {
		return errors.New("a counter's name must end in _total")
	}
	if help == "" || !utf8.ValidString(help) {
		return errors.New("help must be non-empty UTF-8")
	}
	for i, l := range labels {
		switch {
		case !validLabelName(l):
			return fmt.Errorf("invalid label name %q (want [a-zA-Z_][a-zA-Z0-9_]*, not starting with __)", l)
		case typ == "histogram" && l == "le":
			return errors.New("label name le is the histogram's own")
		case slices.Contains(labels[:i], l):
			return fmt.Errorf("label name %q given twice", l)
		}
	}
	return nil
}

// WriteTo writes every family in the text exposition format, in one Write.
func (r *Registry) WriteTo(w io.Writer) (int64, error) {
	n, err := w.Write(r.appendText(nil))
	return int64(n), err
}

// ServeHTTP answers with the exposition. It renders the whole page before writing a byte,
// so a scrape gets the page or, if the client goes away, nothing: never half a page under a
// 200. Which methods reach it is the router's business.
func (r *Registry) ServeHTTP(w http.ResponseWriter, _ *http.Request) {
	b := r.appendText(nil)
	w.Header().Set("Content-Type", ContentType)
	w.Header().Set("Content-Length", strconv.Itoa(len(b)))
	_, _ = w.Write(b) // a failed write means the scraper went away; there is no one to tell
}

// appendText appends the exposition of every family to b.
func (r *Registry) appendText(b []byte) []byte {
	r.mu.Lock()
	families := r.families
	r.mu.Unlock()
	for _, f := range families {
		b = append(b, f.header...)
		b = f.c.appendSamples(b, f.name)
	}
	return b
}
