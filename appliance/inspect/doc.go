// Package inspect is the appliance's inspection engine: it decodes each
// frame with gopacket's DecodingLayerParser (Ethernet, 802.1Q, IPv4, IPv6
// with extension headers, TCP, UDP, ICMP, ICMPv6), decides by the zones of
// both sides whether the R-11 matrix inspects it, reassembles TCP streams
// in order with bounded memory per flow, recognises DNS (UDP and TCP),
// HTTP/1.x and TLS ClientHello by content on any port, hashes HTTP
// response bodies, matches everything against the definitions in use and
// folds repeated detections into one alert with a count.
//
// An Engine is used by one goroutine (the capture loop); definitions are
// read through a function on every packet, so the agent swaps them without
// stopping inspection.
package inspect
