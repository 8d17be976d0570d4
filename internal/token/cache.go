package token

import (
	"crypto/sha256"
	"sync"
)

// cache remembers tokens that passed full verification, so that a client sending the same
// token on every request pays for one Ed25519 check rather than one per request.
//
// Entries are keyed by the SHA-256 of the token's exact bytes. Only the very string that
// was verified can hit: any other spelling, even one decoding to the same signature, has
// another key and goes through full verification. The hash also bounds an entry's size
// whatever the token's length, and keeps tokens themselves out of memory.
//
// A hit still has its times checked by the caller, so an entry needs no expiry of its own:
// one found expired is removed, and when the cache is full an arbitrary entry (the first
// in Go's randomized map order) makes room. Random eviction costs O(1), needs no list to
// maintain under the lock, and keeps a busy token with high probability; an evicted token
// is merely verified again.
//
// A cache belongs to one key set (see state in verify.go) and is dropped with it.
type cache struct {
	mu  sync.RWMutex
	max int
	m   map[[sha256.Size]byte]Claims
}

func newCache(max int) *cache {
	return &cache{max: max, m: make(map[[sha256.Size]byte]Claims)}
}

func (c *cache) get(sum [sha256.Size]byte) (Claims, bool) {
	c.mu.RLock()
	cl, ok := c.m[sum]
	c.mu.RUnlock()
	return cl, ok
}

func (c *cache) put(sum [sha256.Size]byte, cl Claims) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if _, ok := c.m[sum]; !ok && len(c.m) >= c.max {
		for k := range c.m {
			delete(c.m, k)
			break
		}
	}
	c.m[sum] = cl
}

func (c *cache) remove(sum [sha256.Size]byte) {
	c.mu.Lock()
	delete(c.m, sum)
	c.mu.Unlock()
}

func (c *cache) len() int {
	c.mu.RLock()
	defer c.mu.RUnlock()
	return len(c.m)
}
