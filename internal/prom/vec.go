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
	series map[string]*series[M] // by appendKey of the label values
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
	// With is called on every request: the key is built on the stack, and a lookup through
	// string(key) copies nothing. Only a new series' key is copied, into the map.
	var buf [128]byte
	key := appendKey(buf[:0], values)
	v.mu.RLock()
	s := v.series[string(key)]
	v.mu.RUnlock()
	if s != nil {
		return s.m
	}
	v.mu.Lock()
	defer v.mu.Unlock()
	if s := v.series[string(key)]; s != nil {
		return s.m
	}
	// The caller may reuse its slice; the series keeps its own copy.
	s = &series[M]{values: slices.Clone(values), m: v.newM()}
	v.series[string(key)] = s
	return s.m
}

// appendKey appends the series key of values to b: the values joined by a byte that valid
// UTF-8 never holds, so distinct tuples have distinct keys.
func appendKey(b []byte, values []string) []byte {
	for i, s := range values {
		if i > 0 {
			b = append(b, 0xff)
		}
		b = append(b, s...)
	}
	return b
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
