package guard

import "testing"

// TestMakeRoom: below the bound nothing goes; at it the expired entries
// go first, and only if none is expired does everything go.
func TestMakeRoom(t *testing.T) {
	expired := func(v int) bool { return v < 0 }
	m := map[int]int{1: 1, 2: -1}
	makeRoom(m, 3, expired)
	if len(m) != 2 {
		t.Errorf("below the bound: %v", m)
	}
	m[3] = 3
	makeRoom(m, 3, expired)
	if len(m) != 2 || m[2] != 0 {
		t.Errorf("at the bound, expired first: %v", m)
	}
	m[4] = 4
	makeRoom(m, 3, expired)
	if len(m) != 0 {
		t.Errorf("at the bound, none expired: %v", m)
	}
}
