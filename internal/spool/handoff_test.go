package spool_test

import (
	"bufio"
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"finonex/internal/spool"
	"finonex/internal/testenv"
)

// claimRecord is one file the processor claimed, and what it read right after the claim.
type claimRecord struct {
	path    string
	size    int
	sha256  string
	content string // empty when the claim happened in another process
}

// handoffLoad appends each lines to the real live file at path from each of 16 goroutines
// through a Writer, while claims run in a loop elsewhere. It closes the writer once every
// line is answered, and returns the acknowledged lines.
func handoffLoad(t *testing.T, path string, seed uint64, each int) (acked map[string]bool) {
	t.Helper()
	const goroutines = 16
	if testing.Short() {
		each /= 10
	}
	w, err := spool.Open(path, spool.Options{})
	if err != nil {
		t.Fatalf("Open(%s): %v", path, err)
	}
	results := make([][]string, goroutines)
	errs := make(chan error, goroutines)
	var wg sync.WaitGroup
	for g := range goroutines {
		wg.Add(1)
		go func() {
			defer wg.Done()
			r := rand.New(rand.NewPCG(seed, uint64(g)))
			for i := range each {
				line := fmt.Sprintf(`{"g":%d,"i":%d,"pad":%q}`, g, i, strings.Repeat("p", r.IntN(64)))
				if err := w.Append([]byte(line)); err != nil {
					errs <- fmt.Errorf("Append(%s): %w", line, err)
					return
				}
				results[g] = append(results[g], line)
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err) // a real disk has no reason to fail
	}
	t.Logf("writer: %+v", w.Stats())
	if err := w.Close(); err != nil {
		t.Errorf("Close: %v", err)
	}
	acked = map[string]bool{}
	for _, lines := range results {
		for _, l := range lines {
			acked[l] = true
		}
	}
	return acked
}

// checkHandoff checks the claimed files against the acknowledged lines: each one is in
// exactly one file, once; files hold nothing else and only whole lines; and no file changed
// after the processor read it.
func checkHandoff(t *testing.T, live string, claims []claimRecord, acked map[string]bool) {
	t.Helper()
	count := map[string]int{}
	var problems []string
	for _, c := range claims {
		b, err := os.ReadFile(c.path)
		if err != nil {
			t.Fatalf("re-read %s: %v", c.path, err)
		}
		sum := sha256.Sum256(b)
		if len(b) != c.size || hex.EncodeToString(sum[:]) != c.sha256 {
			problems = append(problems, fmt.Sprintf("%s changed after it was claimed and read: %d bytes then, %d now", c.path, c.size, len(b)))
		}
		lines, tail := splitLines(string(b))
		if tail != "" {
			problems = append(problems, fmt.Sprintf("%s ends in a torn line %q", c.path, tail))
		}
		for _, l := range lines {
			if !acked[l] {
				problems = append(problems, fmt.Sprintf("%s holds %q, which no Append acknowledged", c.path, l))
			}
			count[l]++
		}
	}
	for l := range acked {
		if count[l] != 1 {
			problems = append(problems, fmt.Sprintf("acknowledged line %s is in the claimed files %d times; want 1", l, count[l]))
		}
	}
	for i, p := range problems {
		if i == 10 {
			t.Errorf("... and %d more problems", len(problems)-i)
			break
		}
		t.Error(p)
	}
	if _, err := os.Stat(live); !os.IsNotExist(err) {
		t.Errorf("live file after the last claim: %v; want it gone", err)
	}
	left, err := spool.Leftovers(live)
	if err != nil {
		t.Fatal(err)
	}
	if len(left) != len(claims) {
		t.Errorf("Leftovers found %d claimed files; want all %d", len(left), len(claims))
	}
}

// claimAndRead claims the live file and reads it at once, as the processor does.
func claimAndRead(live string) (claimRecord, bool, error) {
	claimed, err := spool.Claim(live, time.Now())
	if err != nil || claimed == "" {
		return claimRecord{}, false, err
	}
	b, err := os.ReadFile(claimed)
	if err != nil {
		return claimRecord{}, false, err
	}
	sum := sha256.Sum256(b)
	return claimRecord{path: claimed, size: len(b), sha256: hex.EncodeToString(sum[:]), content: string(b)}, true, nil
}

// claimLoop claims and reads the live file every 0 to 5 ms until stop is closed, then once
// more, and reports each claim.
func claimLoop(live string, seed uint64, stop <-chan struct{}, report func(claimRecord)) error {
	r := rand.New(rand.NewPCG(seed, 0xC1A1))
	for {
		select {
		case <-stop:
			c, ok, err := claimAndRead(live)
			if ok {
				report(c)
			}
			return err
		default:
		}
		c, ok, err := claimAndRead(live)
		if err != nil {
			return err
		}
		if ok {
			report(c)
		}
		time.Sleep(time.Duration(r.IntN(5001)) * time.Microsecond)
	}
}

// TestHandoffConcurrentClaims: many goroutines append through real Writers while a
// processor claims the live file in a loop; every acknowledged line is read exactly once.
func TestHandoffConcurrentClaims(t *testing.T) {
	seed := testenv.Seed(t)
	live := filepath.Join(t.TempDir(), "server_events.jsonl")
	var claims []claimRecord
	stop := make(chan struct{})
	claimErr := make(chan error, 1)
	go func() {
		claimErr <- claimLoop(live, seed, stop, func(c claimRecord) { claims = append(claims, c) })
	}()
	start := time.Now()
	acked := handoffLoad(t, live, seed, 2000)
	close(stop)
	if err := <-claimErr; err != nil {
		t.Fatalf("claim: %v", err)
	}
	// The claim loop took its last claim after the writers closed, so nothing is left.
	t.Logf("%d lines acknowledged and read in %d claimed files, %v", len(acked), len(claims), time.Since(start).Round(time.Millisecond))
	checkHandoff(t, live, claims, acked)
	for _, c := range claims {
		if testenv.ReadFile(t, c.path) != c.content {
			t.Errorf("%s changed after it was read", c.path)
		}
	}
	if len(claims) < 2 {
		t.Errorf("only %d claims: the test did not exercise the handoff", len(claims))
	}
}

// claimerEnv, when set, makes TestHandoffClaimerProcess the claimer of the live file it
// names, for TestHandoffClaimsFromAnotherProcess.
const claimerEnv = "SPOOL_TEST_CLAIMER_LIVE"

// TestHandoffClaimsFromAnotherProcess is TestHandoffConcurrentClaims with the processor in
// a process of its own, so that the flock handshake runs between processes.
func TestHandoffClaimsFromAnotherProcess(t *testing.T) {
	seed := testenv.Seed(t)
	live := filepath.Join(t.TempDir(), "server_events.jsonl")
	cmd := exec.Command(os.Args[0], "-test.run=^TestHandoffClaimerProcess$", "-test.count=1")
	cmd.Env = append(os.Environ(), claimerEnv+"="+live, testenv.EnvVar+"="+strconv.FormatUint(seed, 10))
	stdin, err := cmd.StdinPipe()
	if err != nil {
		t.Fatal(err)
	}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	if err := cmd.Start(); err != nil {
		t.Fatalf("start claimer: %v", err)
	}
	var claims []claimRecord
	var output []string
	read := make(chan error, 1)
	go func() {
		sc := bufio.NewScanner(stdout)
		for sc.Scan() {
			f := strings.Split(sc.Text(), "\t")
			if len(f) != 4 || f[0] != "claimed" {
				output = append(output, sc.Text())
				continue
			}
			size, err := strconv.Atoi(f[2])
			if err != nil {
				read <- fmt.Errorf("claimer said %q: %w", sc.Text(), err)
				return
			}
			claims = append(claims, claimRecord{path: f[1], size: size, sha256: f[3]})
		}
		read <- sc.Err()
	}()

	start := time.Now()
	acked := handoffLoad(t, live, seed, 1000)
	stdin.Close() // the claimer claims once more, then ends
	if err := <-read; err != nil {
		t.Errorf("read claimer: %v", err)
	}
	if err := cmd.Wait(); err != nil {
		t.Fatalf("claimer: %v\nstdout: %s\nstderr: %s", err, strings.Join(output, "\n"), stderr.String())
	}
	t.Logf("%d lines acknowledged and read in %d files claimed by process %d, %v", len(acked), len(claims), cmd.Process.Pid, time.Since(start).Round(time.Millisecond))
	checkHandoff(t, live, claims, acked)
	if len(claims) < 2 {
		t.Errorf("only %d claims: the test did not exercise the handoff", len(claims))
	}
}

// TestHandoffClaimerProcess is the claimer process of TestHandoffClaimsFromAnotherProcess;
// it does nothing unless claimerEnv is set. It claims until its stdin closes, then once
// more, and prints each claimed file with the size and hash it read right after the claim.
func TestHandoffClaimerProcess(t *testing.T) {
	live := os.Getenv(claimerEnv)
	if live == "" {
		return
	}
	seed, err := strconv.ParseUint(os.Getenv(testenv.EnvVar), 10, 64)
	if err != nil {
		t.Fatalf("%s: %v", testenv.EnvVar, err)
	}
	stop := make(chan struct{})
	go func() {
		io.Copy(io.Discard, os.Stdin)
		close(stop)
	}()
	err = claimLoop(live, seed, stop, func(c claimRecord) {
		fmt.Printf("claimed\t%s\t%d\t%s\n", c.path, c.size, c.sha256)
	})
	if err != nil {
		t.Fatalf("claim: %v", err)
	}
}
