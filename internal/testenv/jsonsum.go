package testenv

import (
	"bufio"
	"encoding/json"
	"fmt"
	"os"

	"finonex/internal/event"
)

// SumJSON is the benchmarks' ceiling for reading an events file: each line decoded with
// encoding/json into a struct and summed per user in a map, nothing checked. The processor's
// read stage is compared with it in the suite (bench_test.go) and in processor's own
// benchmarks.
func SumJSON(path string) (map[string]int64, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	sums := make(map[string]int64)
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	for sc.Scan() {
		var e struct {
			UserID string `json:"userId"`
			Name   string `json:"name"`
			Value  int64  `json:"value"`
		}
		if err := json.Unmarshal(sc.Bytes(), &e); err != nil {
			return nil, fmt.Errorf("%s: %w", path, err)
		}
		if e.Name == event.SubtractRevenue {
			e.Value = -e.Value
		}
		sums[e.UserID] += e.Value
	}
	return sums, sc.Err()
}
