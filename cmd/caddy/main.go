// Command caddy is Caddy with its standard modules and smart_auth, for
// development, demos and tests. Production builds use xcaddy (xcaddy.md).
package main

import (
	caddycmd "github.com/caddyserver/caddy/v2/cmd"

	_ "github.com/caddyserver/caddy/v2/modules/standard"

	_ "github.com/smartcaddy/smartauth"
)

func main() {
	caddycmd.Main()
}
