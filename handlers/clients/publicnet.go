package clients

import (
	"errors"
	"net"
	"net/http"
	"net/netip"
	"syscall"
	"time"
)

// Dynamically registered clients choose their own jwks_uri. Fetching it
// from inside the operator's network would let anyone who may register
// make the server send requests to internal services (server-side request
// forgery): the Caddy admin endpoint on localhost, a cloud metadata
// address, a database's HTTP port. So a dynamic client's jwks_uri is
// fetched only from public addresses, checked on the address actually
// dialled (after DNS resolution, so a name that resolves to an internal
// address is refused too). Clients from the configuration are the
// operator's and may use any address.

// nonPublicPrefixes are special-purpose ranges (RFC 6890 and successors)
// that netip's predicates do not cover.
var nonPublicPrefixes = []netip.Prefix{
	netip.MustParsePrefix("0.0.0.0/8"),       // "this network"
	netip.MustParsePrefix("100.64.0.0/10"),   // carrier-grade NAT
	netip.MustParsePrefix("192.0.0.0/24"),    // IETF protocol assignments
	netip.MustParsePrefix("192.0.2.0/24"),    // documentation
	netip.MustParsePrefix("198.18.0.0/15"),   // benchmarking
	netip.MustParsePrefix("198.51.100.0/24"), // documentation
	netip.MustParsePrefix("203.0.113.0/24"),  // documentation
	netip.MustParsePrefix("240.0.0.0/4"),     // reserved
	netip.MustParsePrefix("64:ff9b::/96"),    // NAT64: reaches IPv4, possibly internal
	netip.MustParsePrefix("64:ff9b:1::/48"),  // local-use NAT64
	netip.MustParsePrefix("2001:db8::/32"),   // documentation
}

// isPublicAddr tells whether an address is a public unicast address.
func isPublicAddr(ip netip.Addr) bool {
	ip = ip.Unmap()
	if !ip.IsValid() || !ip.IsGlobalUnicast() || ip.IsPrivate() || ip.IsLoopback() || ip.IsLinkLocalUnicast() {
		return false
	}
	for _, p := range nonPublicPrefixes {
		if p.Contains(ip) {
			return false
		}
	}
	return true
}

// errNotPublic is the dial error for a refused address.
var errNotPublic = errors.New("the address is not a public internet address (a dynamically registered client's jwks_uri must be)")

// publicOnlyControl is a net.Dialer Control function refusing every
// address that is not public.
func publicOnlyControl(_, address string, _ syscall.RawConn) error {
	host, _, err := net.SplitHostPort(address)
	if err != nil {
		return err
	}
	ip, err := netip.ParseAddr(host)
	if err != nil || !isPublicAddr(ip) {
		return errNotPublic
	}
	return nil
}

// publicOnlyTransport is an HTTP transport that connects only to public
// addresses and uses no proxy (a proxy would hide the destination).
func publicOnlyTransport() *http.Transport {
	d := &net.Dialer{Timeout: 5 * time.Second, Control: publicOnlyControl}
	t := http.DefaultTransport.(*http.Transport).Clone()
	t.Proxy = nil
	t.DialContext = d.DialContext
	return t
}
