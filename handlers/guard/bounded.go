package guard

// makeRoom keeps a bounded cache below max before an insertion: when it
// is full, the entries expired drops go first, and if that frees nothing
// all of them (a flood must not grow it, and an empty cache costs only
// work done again). The verified-token cache and the negative cache use it.
func makeRoom[K comparable, V any](m map[K]V, max int, expired func(V) bool) {
	if len(m) < max {
		return
	}
	for k, v := range m {
		if expired(v) {
			delete(m, k)
		}
	}
	if len(m) >= max {
		clear(m)
	}
}
