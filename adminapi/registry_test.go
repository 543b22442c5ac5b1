package adminapi

import "testing"

// TestRegistryNewestWins: of two targets of one issuer (a config reload in
// progress) the newest answers, whichever is unregistered first; a
// trailing slash names the same issuer; unregistering twice is harmless.
func TestRegistryNewestWins(t *testing.T) {
	old := &Target{Issuer: "https://a.example/auth"}
	unregOld := Register(old)
	if lookup("https://a.example/auth/") != old {
		t.Fatal("a registered target is not found (trailing slash)")
	}
	next := &Target{Issuer: "https://a.example/auth"}
	unregNext := Register(next)
	other := &Target{Issuer: "https://b.example/auth"}
	unregOther := Register(other)
	defer unregOther()
	if lookup("https://a.example/auth") != next {
		t.Fatal("the newest target does not answer")
	}
	if all := targets(); len(all) != 2 || all[0] != next || all[1] != other {
		t.Fatalf("targets: %v", all)
	}
	unregOld() // the old config's Cleanup, after the new one's Provision
	unregOld()
	if lookup("https://a.example/auth") != next {
		t.Fatal("removing the old target removed the new one")
	}
	// A failed reload: the new one goes first, the old one answers again.
	again := Register(old)
	unregNext()
	if lookup("https://a.example/auth") != old {
		t.Fatal("the remaining target does not answer")
	}
	again()
	if lookup("https://a.example/auth") != nil || len(targets()) != 1 {
		t.Fatal("an unregistered issuer is still listed")
	}
}
