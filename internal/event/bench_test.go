package event

import (
	"encoding/json"
	"testing"
)

// benchLine is a realistic line, as the issue writes them.
var benchLine = []byte(`{"userId": "user12345", "name": "add_revenue", "value": 98}`)

func BenchmarkParseDelta(b *testing.B) {
	b.SetBytes(int64(len(benchLine)))
	b.ReportAllocs()
	var sum int64
	for b.Loop() {
		_, delta, err := ParseDelta(benchLine)
		if err != nil {
			b.Fatal(err)
		}
		sum += delta
	}
	if sum == 0 {
		b.Fatal("no delta decoded")
	}
}

// BenchmarkEncodingJSON is the baseline ParseDelta is measured against: the same line through
// json.Unmarshal into a struct, with none of the contract's checks.
func BenchmarkEncodingJSON(b *testing.B) {
	b.SetBytes(int64(len(benchLine)))
	b.ReportAllocs()
	var sum int64
	for b.Loop() {
		var e struct {
			UserID string `json:"userId"`
			Name   string `json:"name"`
			Value  int64  `json:"value"`
		}
		if err := json.Unmarshal(benchLine, &e); err != nil {
			b.Fatal(err)
		}
		sum += e.Value
	}
	if sum == 0 {
		b.Fatal("no value decoded")
	}
}
