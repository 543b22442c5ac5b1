package smartcli

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"regexp"
	"strconv"
	"strings"

	caddycmd "github.com/caddyserver/caddy/v2/cmd"
	"github.com/spf13/cobra"

	"github.com/smartcaddy/smartauth/adminapi"
	"github.com/smartcaddy/smartauth/store"
)

// This file lets the commands go through the admin API of a running Caddy
// (package adminapi, under /smart-auth/ on Caddy's admin endpoint), as
// `caddy reload` does, instead of opening the storage directory.

// server is a running Caddy the command goes through: its admin address
// and the issuer the calls name.
type server struct {
	addr   string
	issuer string
}

// serverFlags adds --address and --issuer.
func serverFlags(cmd *cobra.Command) {
	cmd.Flags().String("address", "", "the admin API address of the running Caddy (default: Caddy's, localhost:2019)")
	cmd.Flags().String("issuer", "", "the issuer URL to act on, when the running Caddy serves several")
}

// reachServer decides where a command runs. Without --storage it goes
// through the running Caddy's admin API, which must answer. With
// --storage, it goes through the admin API of the running Caddy whose
// smart_auth handler holds that directory, if one answers at the admin
// address, and on the directory itself otherwise (nil server).
func reachServer(cmd *cobra.Command) (*server, error) {
	addrFlag, _ := cmd.Flags().GetString("address")
	issuer, _ := cmd.Flags().GetString("issuer")
	dir, _ := cmd.Flags().GetString("storage")
	addr, err := caddycmd.DetermineAdminAPIAddress(addrFlag, nil, "", "")
	if err != nil {
		return nil, err
	}
	var running []adminapi.IssuerInfo
	reqErr := (&server{addr: addr}).call(http.MethodGet, "issuers", nil, &running)
	if dir != "" {
		if looksLikePostgres(dir) {
			// Not repeated: a DSN may hold a password.
			return nil, errors.New("--storage names a PostgreSQL database, not a directory: with PostgreSQL, " +
				"omit --storage and these commands go through the running Caddy's admin API (--address)")
		}
		if reqErr != nil {
			return nil, nil
		}
		canon, err := store.Canonical(dir)
		if err != nil {
			return nil, err
		}
		for _, is := range running {
			if is.StorageDir == canon && (issuer == "" || sameIssuer(issuer, is.Issuer)) {
				return &server{addr: addr, issuer: is.Issuer}, nil
			}
		}
		return nil, nil
	}
	switch {
	case reqErr != nil:
		return nil, fmt.Errorf("no running Caddy answers at the admin address %s (%v): start it, give its "+
			"address with --address, or, with Caddy stopped, give the storage directory with --storage", addr, reqErr)
	case issuer != "":
		for _, is := range running {
			if sameIssuer(issuer, is.Issuer) {
				return &server{addr: addr, issuer: is.Issuer}, nil
			}
		}
		return nil, fmt.Errorf("the Caddy at %s runs no smart_auth handler with issuer %s", addr, issuer)
	case len(running) == 0:
		return nil, fmt.Errorf("the Caddy at %s runs no smart_auth handler", addr)
	case len(running) > 1:
		names := make([]string, 0, len(running))
		for _, is := range running {
			names = append(names, is.Issuer)
		}
		return nil, fmt.Errorf("the Caddy at %s runs several issuers: name one with --issuer (%s)", addr, strings.Join(names, ", "))
	}
	return &server{addr: addr, issuer: running[0].Issuer}, nil
}

// sameIssuer compares issuer URLs, ignoring a trailing slash.
func sameIssuer(a, b string) bool {
	return strings.TrimSuffix(a, "/") == strings.TrimSuffix(b, "/")
}

// apiStatus finds the status and body in caddycmd.AdminAPIRequest's
// error for an error answer.
var apiStatus = regexp.MustCompile(`(?s)HTTP (\d{3}): (.*)$`)

// call sends a request to /smart-auth/<path> (path may carry a query; the
// server's issuer is added to it)
// with body as JSON (nil for none) and decodes the answer into out (nil:
// ignored). An error answer becomes an error with the API's message.
func (s *server) call(method, path string, body, out any) error {
	uri := adminapi.BasePath + path
	if s.issuer != "" {
		sep := "?"
		if strings.Contains(path, "?") {
			sep = "&"
		}
		uri += sep + "issuer=" + url.QueryEscape(s.issuer)
	}
	var rd io.Reader
	if body != nil {
		b, err := json.Marshal(body)
		if err != nil {
			return err
		}
		rd = bytes.NewReader(b)
	}
	resp, err := caddycmd.AdminAPIRequest(s.addr, method, uri, nil, rd)
	if err != nil {
		m := apiStatus.FindStringSubmatch(err.Error())
		if m == nil {
			return err
		}
		var e struct {
			Error string `json:"error"`
		}
		status, _ := strconv.Atoi(m[1])
		if json.Unmarshal([]byte(m[2]), &e) != nil || e.Error == "" {
			return fmt.Errorf("admin API: HTTP %d: %s", status, strings.TrimSpace(m[2]))
		}
		return fmt.Errorf("%s (admin API, HTTP %d)", e.Error, status)
	}
	defer resp.Body.Close()
	if out == nil {
		_, _ = io.Copy(io.Discard, resp.Body)
		return nil
	}
	if err := json.NewDecoder(resp.Body).Decode(out); err != nil {
		return fmt.Errorf("admin API: reading the answer: %w", err)
	}
	return nil
}

// forBody is the body of a revoke call: the --for duration when given,
// else none (the server keeps the revocation as long as its longest token
// lifetime).
func forBody(cmd *cobra.Command) any {
	if !cmd.Flags().Changed("for") {
		return nil
	}
	v, _ := cmd.Flags().GetString("for")
	return map[string]string{"for": v}
}
