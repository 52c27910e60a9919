package download

import (
	"net/netip"
	"strings"

	"github.com/kiehook/kiehook/functions/internal/envconf"
)

// DefaultHosts are the platform's file hosts.
const DefaultHosts = "tempfile.aiquickdraw.com,*.aiquickdraw.com,tempfile.redpandaai.co,*.redpandaai.co,*.kie.ai"

// Hosts is a host allowlist: exact names, and "*.example.com" for every
// subdomain of example.com (not example.com itself).
type Hosts []string

// ParseHosts reads a comma-separated allowlist.
func ParseHosts(list string) Hosts {
	var h Hosts
	for _, p := range envconf.Values(list) {
		if p = normalizeHost(p); p != "" {
			h = append(h, p)
		}
	}
	return h
}

func normalizeHost(h string) string {
	return strings.TrimSuffix(strings.ToLower(strings.TrimSpace(h)), ".")
}

// Allows reports whether host is on the list.
func (h Hosts) Allows(host string) bool {
	host = normalizeHost(host)
	if host == "" {
		return false
	}
	for _, p := range h {
		if suffix, ok := strings.CutPrefix(p, "*"); ok {
			if strings.HasSuffix(host, suffix) && len(host) > len(suffix) {
				return true
			}
		} else if host == p {
			return true
		}
	}
	return false
}

// special are the IPv4 and IPv6 ranges never dialled unless private
// sources are allowed, beyond what netip's predicates cover: the entries
// of IANA's IPv4 and IPv6 Special-Purpose Address Registries
// (iana.org/assignments/iana-ipv4-special-registry and
// iana-ipv6-special-registry) that are not globally reachable unicast, and
// the translation prefixes that would reach IPv4 inside.
var special = []netip.Prefix{
	netip.MustParsePrefix("0.0.0.0/8"),       // "this network"
	netip.MustParsePrefix("100.64.0.0/10"),   // carrier-grade NAT
	netip.MustParsePrefix("192.0.0.0/24"),    // IETF protocol assignments
	netip.MustParsePrefix("192.0.2.0/24"),    // TEST-NET-1
	netip.MustParsePrefix("192.88.99.0/24"),  // 6to4 relay anycast (deprecated, RFC 7526)
	netip.MustParsePrefix("198.18.0.0/15"),   // benchmarking
	netip.MustParsePrefix("198.51.100.0/24"), // TEST-NET-2
	netip.MustParsePrefix("203.0.113.0/24"),  // TEST-NET-3
	netip.MustParsePrefix("240.0.0.0/4"),     // reserved, and broadcast
	netip.MustParsePrefix("::/96"),           // IPv4-compatible IPv6 (deprecated)
	netip.MustParsePrefix("64:ff9b::/96"),    // NAT64 (would reach IPv4 inside)
	netip.MustParsePrefix("64:ff9b:1::/48"),  // local-use NAT64
	netip.MustParsePrefix("2001::/23"),       // IETF protocol assignments (Teredo, ORCHID…)
	netip.MustParsePrefix("2001:db8::/32"),   // documentation
	netip.MustParsePrefix("3fff::/20"),       // documentation (RFC 9637)
	netip.MustParsePrefix("2002::/16"),       // 6to4 (would reach IPv4 inside)
	netip.MustParsePrefix("100::/64"),        // discard-only
	netip.MustParsePrefix("fec0::/10"),       // deprecated site-local
}

// PublicAddr reports whether ip is an ordinary public unicast address: not
// loopback, private, link-local (169.254.169.254 included), CGNAT,
// multicast, unspecified or otherwise special, in IPv4, IPv6 or the
// IPv4-mapped IPv6 form.
func PublicAddr(ip netip.Addr) bool {
	ip = ip.Unmap()
	if !ip.IsValid() || ip.Zone() != "" || ip.IsLoopback() || ip.IsPrivate() || ip.IsUnspecified() ||
		ip.IsMulticast() || ip.IsLinkLocalUnicast() || ip.IsLinkLocalMulticast() || ip.IsInterfaceLocalMulticast() {
		return false
	}
	for _, p := range special {
		if p.Contains(ip) {
			return false
		}
	}
	return true
}
