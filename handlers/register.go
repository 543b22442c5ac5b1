package handlers

// RegistrationOptions configure dynamic client registration; the zero
// value leaves it off.
type RegistrationOptions struct {
	// Enabled turns the registration endpoint on.
	Enabled bool
}
