package token

import "github.com/smartcaddy/smartauth/store"

// The store the router passes satisfies the back channel's view of it.
var _ Store = (*store.DB)(nil)
