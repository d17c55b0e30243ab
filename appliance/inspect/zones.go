package inspect

import (
	"fmt"
	"net/netip"
	"strconv"
	"strings"

	"github.com/mimamori/mimamori/events"
)

// Zones says which zone each side of a packet belongs to: the LAN port,
// the primary SSID, the secondary SSID, or the WAN (everything else).
//
// A zone is a list of CIDRs (IPv4 and IPv6) and optionally VLAN ids. An
// address belongs to the zone whose CIDR holds it (the longest match wins
// when zones overlap). When a zone lists VLAN ids, its CIDRs count only on
// frames carrying one of them, so two zones may reuse one address plan on
// different VLANs; a zone with VLAN ids and no CIDRs takes the private
// addresses (RFC 1918, fc00::/7, link-local) of frames on those VLANs.
type Zones struct {
	zones []zoneDef
}

type zoneDef struct {
	name     string
	prefixes []netip.Prefix
	vlans    []uint16
}

// zoneNames maps the flag names to the alert zone names.
var zoneNames = map[string]string{
	"lan": events.ZoneLAN, "ssid1": events.ZoneSSID1, "ssid2": events.ZoneSSID2,
	"primary": events.ZoneSSID1, "secondary": events.ZoneSSID2,
}

// ParseZones reads --zone flag values such as
// "lan=192.168.1.0/24,fd00:1::/64", "ssid1=192.168.10.0/24,vlan:10".
// Each of lan, ssid1 and ssid2 may appear once; WAN is never configured.
func ParseZones(flags []string) (*Zones, error) {
	z := &Zones{}
	seen := map[string]bool{}
	for _, f := range flags {
		name, list, ok := strings.Cut(f, "=")
		zone, known := zoneNames[strings.ToLower(strings.TrimSpace(name))]
		if !ok || !known {
			return nil, fmt.Errorf("zone %q: want lan=CIDR,…, ssid1=CIDR,… or ssid2=CIDR,… (WAN is everything else)", f)
		}
		if seen[zone] {
			return nil, fmt.Errorf("zone %s given twice", zone)
		}
		seen[zone] = true
		d := zoneDef{name: zone}
		for _, item := range strings.Split(list, ",") {
			item = strings.TrimSpace(item)
			if item == "" {
				continue
			}
			if v, ok := strings.CutPrefix(strings.ToLower(item), "vlan:"); ok {
				n, err := strconv.ParseUint(v, 10, 12)
				if err != nil || n == 0 || n == 4095 {
					return nil, fmt.Errorf("zone %s: VLAN id %q must be 1 to 4094", zone, v)
				}
				d.vlans = append(d.vlans, uint16(n))
				continue
			}
			p, err := netip.ParsePrefix(item)
			if err != nil {
				a, aerr := netip.ParseAddr(item)
				if aerr != nil {
					return nil, fmt.Errorf("zone %s: %q is neither a CIDR nor vlan:ID", zone, item)
				}
				p = netip.PrefixFrom(a, a.BitLen())
			}
			d.prefixes = append(d.prefixes, p.Masked())
		}
		if len(d.prefixes) == 0 && len(d.vlans) == 0 {
			return nil, fmt.Errorf("zone %s: no CIDR or VLAN given", zone)
		}
		z.zones = append(z.zones, d)
	}
	return z, nil
}

// MustZones is ParseZones for tests and fixed configurations.
func MustZones(flags ...string) *Zones {
	z, err := ParseZones(flags)
	if err != nil {
		panic(err)
	}
	return z
}

// Of returns the zone of address a on a frame with VLAN id vlan (0 when
// untagged).
func (z *Zones) Of(a netip.Addr, vlan uint16) string {
	if z == nil {
		return events.ZoneWAN
	}
	a = a.Unmap()
	best, bestBits := events.ZoneWAN, -1
	for i := range z.zones {
		d := &z.zones[i]
		if len(d.vlans) > 0 && !hasVLAN(d.vlans, vlan) {
			continue
		}
		if len(d.prefixes) == 0 {
			if bestBits < 0 && (a.IsPrivate() || a.IsLinkLocalUnicast()) {
				best, bestBits = d.name, 0
			}
			continue
		}
		for _, p := range d.prefixes {
			if p.Bits() > bestBits && p.Contains(a) {
				best, bestBits = d.name, p.Bits()
			}
		}
	}
	return best
}

func hasVLAN(vs []uint16, v uint16) bool {
	for _, x := range vs {
		if x == v {
			return true
		}
	}
	return false
}

// Monitored is the R-11 matrix: traffic between two different zones is
// inspected, traffic within one zone is not.
func Monitored(from, to string) bool { return from != to }

// zoneIndex numbers the four zones for zonePair.
func zoneIndex(z string) int {
	switch z {
	case events.ZoneLAN:
		return 1
	case events.ZoneSSID1:
		return 2
	case events.ZoneSSID2:
		return 3
	}
	return 0
}

var zoneList = [4]string{events.ZoneWAN, events.ZoneLAN, events.ZoneSSID1, events.ZoneSSID2}

// zonePairs holds every "FROM>TO" string, so the hot path does not
// concatenate one per packet.
var zonePairs = func() (t [4][4]string) {
	for i, a := range zoneList {
		for j, b := range zoneList {
			t[i][j] = a + ">" + b
		}
	}
	return t
}()

// zonePair is from + ">" + to.
func zonePair(from, to string) string {
	i, j := zoneIndex(from), zoneIndex(to)
	if zoneList[i] != from || zoneList[j] != to {
		return from + ">" + to
	}
	return zonePairs[i][j]
}
