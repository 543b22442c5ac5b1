package handlers_test

import (
	"testing"

	"github.com/smartcaddy/smartauth/internal/pgtest"
)

// TestMain runs the tests; those on PostgreSQL get a throwaway cluster (or
// SMARTAUTH_TEST_PG), stopped when they end (internal/pgtest).
func TestMain(m *testing.M) { pgtest.Main(m) }
