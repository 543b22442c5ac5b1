// Package integration holds the tests that drive a real Caddy with the
// smart_auth module: in-process Caddy started from a Caddyfile (harness_test.go,
// guard_harness_test.go), Caddy run as a separate process built from
// ../cmd/caddy (process_harness_test.go: crash and reload tests), a headless
// chromium (browser_test.go) and the Node openid-client (interop_test.go, run
// from ../interop). As Caddy's caddytest/integration, it imports the module
// only through its exported API and its registration with Caddy.
//
// caddyfile_adapt_test.go compares the Caddyfile adapter's output with the
// golden files testdata/caddyfile_adapt/*.caddyfiletest (a Caddyfile, a line
// of ten dashes, the adapted JSON); -update rewrites their JSON.
//
// The in-process Caddy is a process global: tests that start it must not use
// t.Parallel.
package integration
