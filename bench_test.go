package finonex_test

// BenchmarkSuite measures every stage of the pipeline against a ceiling measured in the same
// run, with the real programs and a real PostgreSQL, and prints one table. It runs once,
// whatever b.N:
//
//	./run_test.sh bench          # full size: 2,000,000 events, 100,000 users (about 15 minutes)
//	./run_test.sh bench -short   # a tenth of that, for a quick check
//
// Inputs are generated from a fixed seed, so two runs measure the same work.

import (
	"bufio"
	"context"
	"database/sql"
	"encoding/json"
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"finonex/internal/event"
	"finonex/internal/pgtest"
	"finonex/internal/procstat"
	"finonex/internal/store"
)

type benchRow struct {
	stage, workload, figure, ceiling, ratio, goal string
}

type benchSize struct {
	events, users, bigUsers int
	getFor                  time.Duration
	growth                  []int // file sizes in MB for the growth table
	growthUsers             []int
}

func BenchmarkSuite(b *testing.B) {
	size := benchSize{events: 2_000_000, users: 100_000, bigUsers: 1_000_000, getFor: 10 * time.Second,
		growth: []int{10, 100, 1000}, growthUsers: []int{1_000, 100_000, 1_000_000}}
	if testing.Short() {
		size = benchSize{events: 200_000, users: 10_000, bigUsers: 100_000, getFor: 3 * time.Second,
			growth: []int{10, 30}, growthUsers: []int{1_000, 10_000, 100_000}}
	}
	for range b.N {
		rows, notes := runSuite(b, size)
		printTable(rows, notes)
	}
}

func printTable(rows []benchRow, notes []string) {
	host, _ := os.Hostname()
	var mem string
	if b, err := os.ReadFile("/proc/meminfo"); err == nil {
		mem = strings.Fields(strings.SplitN(string(b), "\n", 2)[0])[1] + " kB"
	}
	fmt.Printf("\nfinonex benchmark suite, %s, %s, nproc %d, memory %s, %s\n\n", time.Now().UTC().Format("2006-01-02"), host, runtime.NumCPU(), mem, runtime.Version())
	fmt.Println("| stage | workload | figure | ceiling (same run) | ratio | goal |")
	fmt.Println("|---|---|---|---|---|---|")
	for _, r := range rows {
		fmt.Printf("| %s | %s | %s | %s | %s | %s |\n", r.stage, r.workload, r.figure, r.ceiling, r.ratio, r.goal)
	}
	fmt.Println()
	for _, n := range notes {
		fmt.Println(n)
	}
}

func runSuite(b *testing.B, size benchSize) (rows []benchRow, notes []string) {
	dir := b.TempDir()
	rng := rand.New(rand.NewPCG(1, 2))
	input := filepath.Join(dir, "events.jsonl")
	inputSize := genEvents(b, rng, input, size.events, size.users)
	workload := fmt.Sprintf("%s events, %s users", count(size.events), count(size.users))

	// Ingest: the real client against the real server, then against a no-op handler.
	dsn := pgtest.NewDatabase(b, os.Getenv, true)
	liveDir := filepath.Join(dir, "live")
	os.Mkdir(liveDir, 0o755)
	events := filepath.Join(liveDir, "server_events.jsonl")
	noop := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		io.Copy(io.Discard, r.Body)
		w.WriteHeader(http.StatusOK)
	}))
	ceiling := clientRate(b, input, noop.URL)
	noop.Close()
	srv := startServer(b, events, dsn, "127.0.0.1:0")
	e2eStart := time.Now()
	rate := clientRate(b, input, srv.url())
	rssServer := procstat.PeakRSS(srv.cmd.Process.Pid)
	batches := debugVar(b, srv.url(), "writer", "batches")
	notes = append(notes, fmt.Sprintf("Ingest: the writer committed %.0f events per batch on average, and one fdatasync took %.2f ms on average under that load.",
		debugVar(b, srv.url(), "writer", "lines")/batches, 1000*debugVar(b, srv.url(), "writer", "sync_seconds_total")/batches))
	rows = append(rows, benchRow{"ingest", workload + ", 64 in flight, 2xx after fdatasync",
		fmt.Sprintf("%.0f events/s", rate), fmt.Sprintf("%.0f events/s (no-op handler)", ceiling), fmt.Sprintf("%.2f", rate/ceiling), ">= 0.75"})

	// End to end: the same run, finished by the processor.
	p := runProcessor(b, events, dsn)
	e2e := time.Since(e2eStart)
	rows = append(rows, benchRow{"end to end", workload + ": client, server, processor, database",
		fmt.Sprintf("%.1f s", e2e.Seconds()), "(none)", "", "< 60 s (full size)"})

	// Processor read+validate+sum against encoding/json doing the same.
	readFile := filepath.Join(dir, "read", "server_events.jsonl")
	os.Mkdir(filepath.Dir(readFile), 0o755)
	copyFile(b, input, readFile)
	p = runProcessor(b, readFile, pgtest.NewDatabase(b, os.Getenv, true))
	jsonTime := jsonSum(b, input)
	rows = append(rows, benchRow{"processor: read, validate, sum", fmt.Sprintf("%s, %.0f MB", workload, float64(inputSize)/1e6),
		fmt.Sprintf("%.2f s (%.0f MB/s)", p.read.Seconds(), float64(inputSize)/1e6/p.read.Seconds()),
		fmt.Sprintf("%.2f s (encoding/json, one line at a time)", jsonTime.Seconds()), fmt.Sprintf("%.1fx", jsonTime.Seconds()/p.read.Seconds()), ">= 6x"})

	// Database apply: the processor's Apply against one prepared upsert per row.
	for _, users := range []int{size.users, size.bigUsers} {
		fast, slow := applyTimes(b, users)
		rows = append(rows, benchRow{"processor: database apply", fmt.Sprintf("%s users, one transaction, rows exist", count(users)),
			fmt.Sprintf("%.2f s (%.0f rows/s)", fast.Seconds(), float64(users)/fast.Seconds()),
			fmt.Sprintf("%.2f s (prepared upsert per row)", slow.Seconds()), fmt.Sprintf("%.1fx", slow.Seconds()/fast.Seconds()), ">= 8x"})
	}

	// GET: 64 concurrent clients on random known users, against pgbench running the same
	// query, and against a handler that answers without a database (the HTTP ceiling of this
	// load generator). Then p99 at half the saturating rate: a closed loop at saturation has
	// a mean latency of 64/rate, so its p99 says more about the load than the server.
	getWorkload := fmt.Sprintf("64 concurrent clients, random users of %s", count(size.users))
	getRate, p99 := getLoad(b, srv.url(), size.users, size.getFor, 0)
	pg := pgbenchRate(b, dsn, size.users, size.getFor)
	pgFigure, pgRatio := "pgbench not found", ""
	if pg > 0 {
		pgFigure, pgRatio = fmt.Sprintf("%.0f/s (pgbench -M prepared)", pg), fmt.Sprintf("%.2f", getRate/pg)
	}
	rows = append(rows, benchRow{"GET /userEvents", getWorkload + ", saturated",
		fmt.Sprintf("%.0f/s, p99 %s", getRate, ms(p99)), pgFigure, pgRatio, ">= 0.7"})
	mux := http.NewServeMux()
	mux.HandleFunc("GET /userEvents/{userid}", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		fmt.Fprintf(w, "{\"user_id\":%q,\"revenue\":0}\n", r.PathValue("userid"))
	})
	fixed := httptest.NewServer(mux)
	httpRate, _ := getLoad(b, fixed.URL, size.users, size.getFor, 0)
	fixed.Close()
	rows = append(rows, benchRow{"GET /userEvents", getWorkload + ", saturated",
		fmt.Sprintf("%.0f/s", getRate), fmt.Sprintf("%.0f/s (handler without database)", httpRate), fmt.Sprintf("%.2f", getRate/httpRate), "(HTTP ceiling)"})
	_, p99Half := getLoad(b, srv.url(), size.users, size.getFor, getRate/2)
	rows = append(rows, benchRow{"GET /userEvents", fmt.Sprintf("%s, paced at %.0f/s (half the saturating rate)", getWorkload, getRate/2),
		"p99 " + ms(p99Half), "(none)", "", "p99 < 10 ms"})
	srv.stop()

	// Memory.
	rows = append(rows, benchRow{"memory", "server peak RSS under the ingest load (" + workload + ")", fmt.Sprintf("%d MiB", rssServer>>20), "(none)", "", "bounded"})
	overloadInput := filepath.Join(dir, "overload.jsonl")
	genEvents(b, rand.New(rand.NewPCG(5, 6)), overloadInput, size.events/10, size.users)
	notes = append(notes, "")
	notes = append(notes, overload(b, dir, overloadInput)...)

	// How cost grows.
	notes = append(notes, "", "Processor cost by file size ("+count(size.users)+" users) and by distinct users ("+count(size.events)+" events):", "",
		"| input | read | database | total | peak RSS |", "|---|---|---|---|---|")
	for _, mb := range size.growth {
		n := mb * 1_000_000 / 55 // about 55 bytes a line
		notes = append(notes, growthRow(b, dir, fmt.Sprintf("%d MB, %s events", mb, count(n)), n, size.users))
	}
	for _, u := range size.growthUsers {
		notes = append(notes, growthRow(b, dir, fmt.Sprintf("%s users, %s events", count(u), count(size.events)), size.events, u))
	}
	return rows, notes
}

func count(n int) string {
	switch {
	case n >= 1_000_000 && n%1_000_000 == 0:
		return fmt.Sprintf("%dM", n/1_000_000)
	case n >= 1000 && n%1000 == 0:
		return fmt.Sprintf("%dk", n/1000)
	}
	return strconv.Itoa(n)
}

// genEvents writes n events over users users and returns the file's size.
func genEvents(b *testing.B, rng *rand.Rand, path string, n, users int) int64 {
	b.Helper()
	f, err := os.Create(path)
	if err != nil {
		b.Fatal(err)
	}
	w := bufio.NewWriterSize(f, 1<<20)
	var line []byte
	for i := 0; i < n; i++ {
		// Every user appears at least once when n >= users, so the user count is exact.
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
		w.Write(line)
	}
	if err := w.Flush(); err != nil {
		b.Fatal(err)
	}
	info, err := f.Stat()
	if err != nil || f.Close() != nil {
		b.Fatalf("write %s: %v", path, err)
	}
	return info.Size()
}

func copyFile(b *testing.B, from, to string) {
	b.Helper()
	data, err := os.ReadFile(from)
	if err != nil {
		b.Fatal(err)
	}
	if err := os.WriteFile(to, data, 0o644); err != nil {
		b.Fatal(err)
	}
}

var eventsPerSecond = regexp.MustCompile(`\((\d+) events/s\)`)

// clientRate runs the real client on input against url and returns its events/s.
func clientRate(b *testing.B, input, url string) float64 {
	b.Helper()
	r := runProg(b, nil, "client", "-file", input, "-url", url, "-secret", testSecret, "-concurrency", "64", "-quiet")
	m := eventsPerSecond.FindStringSubmatch(r.stdout)
	if r.code != 0 || m == nil {
		b.Fatalf("client against %s: exit %d\n%s%s", url, r.code, r.stdout, r.stderr)
	}
	rate, _ := strconv.ParseFloat(m[1], 64)
	return rate
}

type procResult struct {
	read, db, total time.Duration
	maxRSS          int64 // MiB
}

var procTimes = regexp.MustCompile(`read (\S+), database (\S+), total (\S+), peak memory (\d+) MiB`)

func runProcessor(b *testing.B, eventsFile, dsn string) procResult {
	b.Helper()
	cmd := exec.Command(filepath.Join(bin, "processor"), "-events-file", eventsFile, "-db", dsn, "-quiet")
	cmd.Env = cleanEnv()
	out, err := cmd.CombinedOutput()
	m := procTimes.FindStringSubmatch(string(out))
	if err != nil || m == nil {
		b.Fatalf("processor: %v\n%s", err, out)
	}
	var r procResult
	r.read, _ = time.ParseDuration(m[1])
	r.db, _ = time.ParseDuration(m[2])
	r.total, _ = time.ParseDuration(m[3])
	r.maxRSS, _ = strconv.ParseInt(m[4], 10, 64)
	return r
}

// jsonSum is the ceiling of the processor's read stage: the same file, summed per user, each
// line decoded with encoding/json into a struct.
func jsonSum(b *testing.B, path string) time.Duration {
	b.Helper()
	start := time.Now()
	f, err := os.Open(path)
	if err != nil {
		b.Fatal(err)
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
			b.Fatal(err)
		}
		if e.Name == event.SubtractRevenue {
			e.Value = -e.Value
		}
		sums[e.UserID] += e.Value
	}
	if err := sc.Err(); err != nil {
		b.Fatal(err)
	}
	return time.Since(start)
}

// applyTimes applies users distinct users to a table that already holds them, with the
// processor's Apply and with one prepared upsert per row, each in one transaction.
func applyTimes(b *testing.B, users int) (fast, slow time.Duration) {
	b.Helper()
	ctx := context.Background()
	st, err := store.Open(pgtest.NewDatabase(b, os.Getenv, true))
	if err != nil {
		b.Fatal(err)
	}
	defer st.Close()
	batch := store.Batch{Users: make([]string, users), Deltas: make([]int64, users)}
	for i := range batch.Users {
		batch.Users[i], batch.Deltas[i] = fmt.Sprintf("user%d", i), int64(i%1000)
	}
	batch.File = "seed"
	if _, err := st.Apply(ctx, batch); err != nil {
		b.Fatal(err)
	}
	batch.File = "measured"
	start := time.Now()
	if _, err := st.Apply(ctx, batch); err != nil {
		b.Fatal(err)
	}
	fast = time.Since(start)

	start = time.Now()
	tx, err := st.DB().BeginTx(ctx, nil)
	if err != nil {
		b.Fatal(err)
	}
	stmt, err := tx.PrepareContext(ctx, `INSERT INTO users_revenue (user_id, revenue) VALUES ($1, $2)
ON CONFLICT (user_id) DO UPDATE SET revenue = users_revenue.revenue + EXCLUDED.revenue`)
	if err != nil {
		b.Fatal(err)
	}
	for i, u := range batch.Users {
		if _, err := stmt.ExecContext(ctx, u, batch.Deltas[i]); err != nil {
			b.Fatal(err)
		}
	}
	if err := tx.Commit(); err != nil {
		b.Fatal(err)
	}
	return fast, time.Since(start)
}

func ms(d time.Duration) string { return fmt.Sprintf("%.1f ms", float64(d.Microseconds())/1000) }

// getLoad runs 64 clients asking for random known users for d, and returns the rate and p99.
// With pace 0 each client sends its next request as soon as it has the answer; with pace > 0
// the 64 together send pace requests a second on a fixed schedule, and a request's latency
// counts from when it was due, so a slow answer cannot hide the requests it delayed.
func getLoad(b *testing.B, base string, users int, d time.Duration, pace float64) (rate float64, p99 time.Duration) {
	b.Helper()
	tr := &http.Transport{MaxIdleConnsPerHost: 64}
	defer tr.CloseIdleConnections()
	client := &http.Client{Transport: tr, Timeout: 10 * time.Second}
	deadline := time.Now().Add(d)
	var mu sync.Mutex
	var all []time.Duration
	var wg sync.WaitGroup
	var failed error
	for g := range 64 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			rng := rand.New(rand.NewPCG(uint64(g), 7))
			var mine []time.Duration
			var interval time.Duration
			due := time.Now()
			if pace > 0 {
				interval = time.Duration(64 / pace * float64(time.Second))
				due = due.Add(interval * time.Duration(g) / 64) // spread the clients over one interval
			}
			for time.Now().Before(deadline) {
				req, _ := http.NewRequest(http.MethodGet, fmt.Sprintf("%s/userEvents/user%d", base, rng.IntN(users)), nil)
				req.Header.Set("Authorization", testSecret)
				start := time.Now()
				if pace > 0 {
					time.Sleep(time.Until(due))
					start, due = due, due.Add(interval)
				}
				resp, err := client.Do(req)
				if err == nil {
					io.Copy(io.Discard, resp.Body)
					resp.Body.Close()
					if resp.StatusCode != http.StatusOK {
						err = fmt.Errorf("status %d", resp.StatusCode)
					}
				}
				if err != nil {
					mu.Lock()
					failed = err
					mu.Unlock()
					return
				}
				mine = append(mine, time.Since(start))
			}
			mu.Lock()
			all = append(all, mine...)
			mu.Unlock()
		}()
	}
	wg.Wait()
	if failed != nil || len(all) == 0 {
		b.Fatalf("GET load: %v", failed)
	}
	slices.Sort(all)
	return float64(len(all)) / d.Seconds(), all[len(all)*99/100]
}

var tps = regexp.MustCompile(`tps = ([\d.]+) \(without initial connection time\)`)

// pgbenchRate runs the GET query through pgbench -M prepared at the same concurrency, or
// returns 0 when pgbench is not installed.
func pgbenchRate(b *testing.B, dsn string, users int, d time.Duration) float64 {
	b.Helper()
	pgbench, err := exec.LookPath("pgbench")
	if err != nil {
		matches, _ := filepath.Glob("/usr/lib/postgresql/*/bin/pgbench")
		if len(matches) == 0 {
			return 0
		}
		pgbench = matches[len(matches)-1]
	}
	script := filepath.Join(b.TempDir(), "get.sql")
	os.WriteFile(script, []byte(fmt.Sprintf("\\set id random(0, %d)\nSELECT revenue FROM users_revenue WHERE user_id = 'user' || :id;\n", users-1)), 0o644)
	out, err := exec.Command(pgbench, "-n", "-M", "prepared", "-c", "64", "-j", "2", "-T", strconv.Itoa(int(d.Seconds())), "-f", script, dsn).CombinedOutput()
	m := tps.FindStringSubmatch(string(out))
	if err != nil || m == nil {
		b.Fatalf("pgbench: %v\n%s", err, out)
	}
	v, _ := strconv.ParseFloat(m[1], 64)
	return v
}

// overload drives a server with a small queue far past it: it must shed with 503 and keep
// its memory bounded, and the client must back off and still deliver everything.
func overload(b *testing.B, dir, input string) []string {
	b.Helper()
	dsn := pgtest.NewDatabase(b, os.Getenv, true)
	events := filepath.Join(dir, "overload", "server_events.jsonl")
	os.Mkdir(filepath.Dir(events), 0o755)
	srv := startServer(b, events, dsn, "127.0.0.1:0", "-queue", "64")
	r := runProg(b, nil, "client", "-file", input, "-url", srv.url(), "-secret", testSecret, "-concurrency", "1024", "-retries", "1000", "-max-backoff", "200ms", "-quiet")
	if r.code != 0 {
		b.Fatalf("client under overload: exit %d\n%s%s", r.code, r.stdout, r.stderr)
	}
	shed := debugVar(b, srv.url(), "events_rejected", "busy")
	rss := procstat.PeakRSS(srv.cmd.Process.Pid)
	srv.stop()
	return []string{
		"Overload (server -queue 64, client -concurrency 1024, -retries 1000): " + strings.TrimSpace(r.stdout),
		fmt.Sprintf("server shed %v with 503 + Retry-After; server peak RSS %d MiB; every event delivered.", shed, rss>>20),
	}
}

// growthRow runs the processor on a generated file and reports its cost.
func growthRow(b *testing.B, dir, label string, n, users int) string {
	b.Helper()
	sub, err := os.MkdirTemp(dir, "growth")
	if err != nil {
		b.Fatal(err)
	}
	defer os.RemoveAll(sub)
	path := filepath.Join(sub, "server_events.jsonl")
	genEvents(b, rand.New(rand.NewPCG(3, 4)), path, n, users)
	db := pgtest.NewDatabase(b, os.Getenv, true)
	p := runProcessor(b, path, db)
	dropNow(b, db)
	return fmt.Sprintf("| %s | %.2f s | %.2f s | %.2f s | %d MiB |", label, p.read.Seconds(), p.db.Seconds(), p.total.Seconds(), p.maxRSS)
}

// dropNow empties a benchmark database at once, to keep the disk small between rows.
func dropNow(b *testing.B, dsn string) {
	db, err := sql.Open("postgres", dsn)
	if err != nil {
		return
	}
	defer db.Close()
	db.Exec(`TRUNCATE users_revenue, processed_files`)
}
