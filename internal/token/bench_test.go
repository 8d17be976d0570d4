package token

import (
	"fmt"
	"testing"
)

// BenchmarkVerify is a token seen for the first time: the cache is off, so each call
// checks the signature.
func BenchmarkVerify(b *testing.B) {
	for _, bc := range []struct {
		name string
		tok  string
	}{
		{"EdDSA", mk(edHeader, payload(), edSign)},
		{"HS256", mk(hsHeader, payload(), hsSign)},
	} {
		b.Run(bc.name, func(b *testing.B) {
			v := newTestVerifier(b, Config{CacheSize: -1})
			b.ReportAllocs()
			for b.Loop() {
				if _, err := v.Verify(bc.tok); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

// BenchmarkVerifyCached is a client reusing its token: every call after the first is a
// cache hit, which costs a SHA-256 of the token and a map lookup.
func BenchmarkVerifyCached(b *testing.B) {
	tok := mk(edHeader, payload(), edSign)
	b.Run("EdDSA", func(b *testing.B) {
		v := newTestVerifier(b, Config{})
		b.ReportAllocs()
		for b.Loop() {
			if _, err := v.Verify(tok); err != nil {
				b.Fatal(err)
			}
		}
	})
	// Many clients at once, each with its own token, from all CPUs.
	b.Run("EdDSA-parallel-1000-tokens", func(b *testing.B) {
		v := newTestVerifier(b, Config{})
		toks := make([]string, 1000)
		for i := range toks {
			toks[i] = mk(edHeader, payload("sub", fmt.Sprintf(`"user%d"`, i)), edSign)
		}
		b.ReportAllocs()
		b.ResetTimer()
		b.RunParallel(func(pb *testing.PB) {
			for i := 0; pb.Next(); i++ {
				if _, err := v.Verify(toks[i%len(toks)]); err != nil {
					b.Error(err)
					return
				}
			}
		})
	})
}
