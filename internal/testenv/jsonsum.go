package testenv

import (
	"bufio"
	"encoding/json"
	"fmt"
	"io"
	"math/rand/v2"
	"os"
	"strconv"

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

// WriteEvents writes n valid events for users user0 .. user<users-1> to w, drawn from rng:
// every user appears at least once when n >= users, so the user count is exact. The
// benchmarks' inputs.
func WriteEvents(w io.Writer, rng *rand.Rand, n, users int) error {
	bw := bufio.NewWriterSize(w, 1<<20)
	var line []byte
	for i := 0; i < n; i++ {
		u := i
		if i >= users {
			u = rng.IntN(users)
		}
		name := event.AddRevenue
		if rng.IntN(4) == 0 {
			name = event.SubtractRevenue
		}
		line = append(line[:0], `{"userId": "user`...)
		line = strconv.AppendInt(line, int64(u), 10)
		line = append(line, `", "name": "`...)
		line = append(line, name...)
		line = append(line, `", "value": `...)
		line = strconv.AppendInt(line, rng.Int64N(10000), 10)
		line = append(line, "}\n"...)
		bw.Write(line)
	}
	return bw.Flush()
}
