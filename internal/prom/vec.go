package prom

import (
	"fmt"
	"slices"
	"strings"
	"sync"
	"unicode/utf8"
)

// vec is the set of series of a labeled family, one metric M per distinct tuple of label
// values, made on first use.
type vec[M any] struct {
	name   string   // the family's, for the panic message
	labels []string // label names, in the order the sample lines write them
	newM   func() *M

	mu     sync.RWMutex
	series map[string]*series[M] // by seriesKey of the label values
}

type series[M any] struct {
	values []string
	m      *M
}

func newVec[M any](name string, labels []string, newM func() *M) *vec[M] {
	return &vec[M]{name: name, labels: slices.Clone(labels), newM: newM, series: make(map[string]*series[M])}
}

// with returns the metric of the series with these label values, making it if needed.
// Invalid UTF-8 in a value becomes U+FFFD, since the format is UTF-8; the key is taken after
// that, so two values that differ only in their invalid bytes are one series, never two
// series written with the same labels.
func (v *vec[M]) with(values []string) *M {
	if len(values) != len(v.labels) {
		panic(fmt.Sprintf("prom: %s: With got %d label values, want %d (%s)",
			v.name, len(values), len(v.labels), strings.Join(v.labels, ", ")))
	}
	cloned := false
	for i, s := range values {
		if !utf8.ValidString(s) {
			if !cloned {
				values, cloned = slices.Clone(values), true // the caller's slice is not ours to change
			}
			values[i] = strings.ToValidUTF8(s, "\uFFFD")
		}
	}
	key := seriesKey(values)
	v.mu.RLock()
	s := v.series[key]
	v.mu.RUnlock()
	if s != nil {
		return s.m
	}
	v.mu.Lock()
	defer v.mu.Unlock()
	if s := v.series[key]; s != nil {
		return s.m
	}
	// The caller may reuse its slice; the series keeps its own copy.
	s = &series[M]{values: slices.Clone(values), m: v.newM()}
	v.series[key] = s
	return s.m
}

// seriesKey joins label values with a byte that valid UTF-8 never holds, so distinct tuples
// have distinct keys. One value, the common case, is its own key and costs no allocation.
func seriesKey(values []string) string {
	if len(values) == 1 {
		return values[0]
	}
	return strings.Join(values, "\xff")
}

// sorted returns the series ordered by their label values, for a stable exposition.
func (v *vec[M]) sorted() []*series[M] {
	v.mu.RLock()
	all := make([]*series[M], 0, len(v.series))
	for _, s := range v.series {
		all = append(all, s)
	}
	v.mu.RUnlock()
	slices.SortFunc(all, func(a, b *series[M]) int { return slices.Compare(a.values, b.values) })
	return all
}
