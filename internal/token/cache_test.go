package token

import (
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// cached returns how many tokens v remembers.
func cached(v *Verifier) int {
	if c := v.state.Load().cache; c != nil {
		return c.len()
	}
	return 0
}

// clock is a settable Config.Now, safe for concurrent use.
type clock struct{ ns atomic.Int64 }

func newClock(t time.Time) *clock {
	c := &clock{}
	c.set(t)
	return c
}
func (c *clock) set(t time.Time)     { c.ns.Store(t.UnixNano()) }
func (c *clock) now() time.Time      { return time.Unix(0, c.ns.Load()) }
func (c *clock) add(d time.Duration) { c.ns.Add(int64(d)) }

func TestCacheRechecksTimes(t *testing.T) {
	clk := newClock(testNow)
	v := newTestVerifier(t, Config{Now: clk.now})
	tok := mk(edHeader, payload("exp", at(10*time.Second), "nbf", at(0)), edSign)
	verifyCase(t, v, "fresh token", tok, "")
	if n := cached(v); n != 1 {
		t.Fatalf("after one Verify, %d tokens cached; want 1", n)
	}
	clk.add(69 * time.Second)
	verifyCase(t, v, "cached token at exp+59s", tok, "")
	clk.add(time.Second)
	verifyCase(t, v, "cached token at exp+60s", tok, "expired")
	if n := cached(v); n != 0 {
		t.Errorf("after an expired hit, %d tokens cached; want 0", n)
	}
	// The clock going back (a step of NTP, say) is checked against nbf too.
	clk.set(testNow)
	verifyCase(t, v, "fresh token again", tok, "")
	clk.set(testNow.Add(-61 * time.Second))
	verifyCase(t, v, "cached token before nbf-60s", tok, "not yet valid")
}

// TestCacheExactBytes checks that only the very string verified hits the cache.
func TestCacheExactBytes(t *testing.T) {
	v := newTestVerifier(t, Config{})
	for _, good := range []string{mk(edHeader, payload(), edSign), mk(hsHeader, payload(), hsSign)} {
		verifyCase(t, v, "good token", good, "")
		verifyCase(t, v, "good token, cached", good, "")
		verifyCase(t, v, "same signature spelt with trailing bits", nonCanonical(good), "bad base64url")
		verifyCase(t, v, "same token with a newline", good+"\n", "bad base64url")
		verifyCase(t, v, "same token padded", good+"=", "bad base64url")
	}
	if n := cached(v); n != 2 {
		t.Errorf("%d tokens cached; want 2 (refusals are never cached)", n)
	}
}

func TestCacheScopesNotShared(t *testing.T) {
	v := newTestVerifier(t, Config{})
	tok := mk(edHeader, payload(), edSign)
	for i := range 3 {
		c, err := v.Verify(tok)
		if err != nil || !c.Has("revenue:read") {
			t.Fatalf("Verify(good token) #%d = %v, %v; want revenue:read", i, c.Scopes, err)
		}
		c.Scopes[1] = "ops:read" // a caller's change must not reach the next caller
	}
}

func TestCacheBounded(t *testing.T) {
	v := newTestVerifier(t, Config{CacheSize: 3})
	var toks []string
	for i := range 10 {
		toks = append(toks, mk(edHeader, payload("sub", fmt.Sprintf(`"user%d"`, i)), edSign))
	}
	for round := range 2 {
		for i, tok := range toks {
			c, err := v.Verify(tok)
			if want := fmt.Sprintf("user%d", i); err != nil || c.Subject != want {
				t.Errorf("round %d: Verify(token of %s) = %q, %v; want accepted", round, want, c.Subject, err)
			}
			if n := cached(v); n > 3 {
				t.Fatalf("%d tokens cached; want at most 3", n)
			}
		}
	}
	if n := cached(v); n != 3 {
		t.Errorf("%d tokens cached; want 3", n)
	}
}

func TestCacheOff(t *testing.T) {
	v := newTestVerifier(t, Config{CacheSize: -1})
	tok := mk(edHeader, payload(), edSign)
	for range 2 {
		verifyCase(t, v, "good token, no cache", tok, "")
	}
	if v.state.Load().cache != nil {
		t.Errorf("CacheSize -1 made a cache")
	}
}

func TestCacheClearedBySetKeys(t *testing.T) {
	v := newTestVerifier(t, Config{})
	tokEd := mk(edHeader, payload(), edSign)
	tokHS := mk(hsHeader, payload(), hsSign)
	verifyCase(t, v, "Ed25519 token", tokEd, "")
	verifyCase(t, v, "HS256 token", tokHS, "")
	v.SetKeys(mustKeySet(t, `{"keys":[{"kty":"oct","kid":"ci","alg":"HS256","k":"`+b64.EncodeToString(hmacSecret)+`"}]}`))
	if n := cached(v); n != 0 {
		t.Errorf("after SetKeys, %d tokens cached; want 0", n)
	}
	verifyCase(t, v, "Ed25519 token, cached before its key was removed", tokEd, "unknown kid")
	verifyCase(t, v, "HS256 token, key kept", tokHS, "")
}

// TestConcurrentVerifyAndRotate is for the race detector: Verify from many goroutines,
// hits and misses, while the key set keeps changing. When the changes stop with the
// Ed25519 key gone, its token must be refused at once.
func TestConcurrentVerifyAndRotate(t *testing.T) {
	v := newTestVerifier(t, Config{CacheSize: 8})
	full := mustKeySet(t, testSet)
	hsOnly := mustKeySet(t, `{"keys":[{"kty":"oct","kid":"ci","alg":"HS256","k":"`+b64.EncodeToString(hmacSecret)+`"}]}`)
	var toks []string
	for i := range 16 {
		toks = append(toks, mk(edHeader, payload("sub", fmt.Sprintf(`"u%d"`, i)), edSign))
	}
	var wg sync.WaitGroup
	stop := make(chan struct{})
	for g := range 4 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := g; ; i++ {
				select {
				case <-stop:
					return
				default:
				}
				c, err := v.Verify(toks[i%len(toks)])
				if err == nil && c.Subject != fmt.Sprintf("u%d", i%len(toks)) {
					t.Errorf("Verify(token of u%d) = %q", i%len(toks), c.Subject)
					return
				}
			}
		}()
	}
	for i := range 200 {
		if i%2 == 0 {
			v.SetKeys(full)
		} else {
			v.SetKeys(hsOnly)
		}
	}
	v.SetKeys(hsOnly)
	for _, tok := range toks {
		verifyCase(t, v, "Ed25519 token after its key was removed", tok, "unknown kid")
	}
	close(stop)
	wg.Wait()
}
