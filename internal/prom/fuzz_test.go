package prom

import (
	"bytes"
	"math"
	"strings"
	"testing"
	"unicode/utf8"
)

// FuzzParse checks that Parse never panics, and that what it accepts keeps its promises.
func FuzzParse(f *testing.F) {
	for _, tc := range rejected {
		f.Add(tc.in)
	}
	for _, tc := range accepted {
		f.Add(tc.in)
	}
	f.Fuzz(func(t *testing.T, in string) {
		fams, err := Parse(strings.NewReader(in))
		if err != nil {
			if _, ok := err.(*ParseError); !ok {
				t.Fatalf("Parse(%q) = %T %v; want a *ParseError", in, err, err)
			}
			return
		}
		for name, fam := range fams {
			if fam.Name != name || fam.Type == "" || fam.Help == "" {
				t.Fatalf("Parse(%q): family %q = %+v; want its name, a type and help", in, name, fam)
			}
			for _, s := range fam.Samples {
				if v, ok := fam.Sample(s.Name, flatten(s.Labels)...); !ok || v != s.Value && !math.IsNaN(v) {
					t.Fatalf("Parse(%q): Sample(%q, %v) = %v, %v; want %v, true", in, s.Name, s.Labels, v, ok, s.Value)
				}
				if fam.Type == "counter" && !(s.Value >= 0) {
					t.Fatalf("Parse(%q): accepted counter %s = %v", in, s.Name, s.Value)
				}
			}
		}
	})
}

// FuzzRoundTrip checks that whatever help, label value and values a program uses, the
// registry writes a page that parses back to them.
func FuzzRoundTrip(f *testing.F) {
	f.Add("Help.", "value", 1.5, 0.25)
	f.Add("a \\ b\nc \"d\"", "x\"y\\z\nw", -1e300, math.Inf(1))
	f.Add("é", "\xff{},=", math.NaN(), -0.0)
	f.Fuzz(func(t *testing.T, help, label string, g, obs float64) {
		if help == "" || !utf8.ValidString(help) {
			return // registration refuses those, as TestRegisterPanics checks
		}
		reg := NewRegistry()
		reg.NewGaugeVec("g", help, "l").With(label).Set(g)
		reg.NewCounterVec("c_total", help, "l").With(label).Add(g)
		h := reg.NewHistogramVec("h", help, []float64{-1, 0, 1}, "l").With(label)
		h.Observe(obs)
		h.Observe(g)
		var buf bytes.Buffer
		if _, err := reg.WriteTo(&buf); err != nil {
			t.Fatal(err)
		}
		fams, err := Parse(bytes.NewReader(buf.Bytes()))
		if err != nil {
			t.Fatalf("Parse(WriteTo) = %v; want nil\n%s", err, buf.String())
		}
		want := strings.ToValidUTF8(label, "\uFFFD")
		if v, ok := fams["g"].Value("l", want); !ok || !same(v, g) {
			t.Errorf("g{l=%q} = %v, %v; want %v, true\n%s", want, v, ok, g, buf.String())
		}
		if fams["g"].Help != help {
			t.Errorf("help = %q; want %q", fams["g"].Help, help)
		}
		if v, _ := fams["h"].Sample("h_count", "l", want); v != float64(h.countOf()) {
			t.Errorf("h_count{l=%q} = %v; want %d", want, v, h.countOf())
		}
	})
}

// countOf is how many observations h has counted.
func (h *Histogram) countOf() uint64 {
	var n uint64
	for i := range h.counts {
		n += h.counts[i].Load()
	}
	return n
}

// same reports whether a and b are the same float, NaN being the same as itself.
func same(a, b float64) bool { return a == b || math.IsNaN(a) && math.IsNaN(b) }

// flatten turns labels into name, value pairs, as Family.Sample takes them.
func flatten(labels map[string]string) []string {
	var pairs []string
	for k, v := range labels {
		pairs = append(pairs, k, v)
	}
	return pairs
}
