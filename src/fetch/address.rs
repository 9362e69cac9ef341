//! Which addresses are public: the special-purpose ranges of IANA's IPv4 and IPv6
//! registries, and the IPv6 forms that lead to an IPv4 address (mapped, compatible,
//! NAT64, 6to4), judged by the IPv4 address inside.

use std::fmt;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use ipnet::{Ipv4Net, Ipv6Net};

/// What makes an address one that server-side fetches do not reach by default.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum AddressKind {
    /// 127.0.0.0/8, ::1: this machine.
    Loopback,
    /// RFC 1918 (10/8, 172.16/12, 192.168/16), unique local fc00::/7, site-local fec0::/10.
    Private,
    /// 169.254/16 (where cloud metadata services answer), fe80::/10.
    LinkLocal,
    /// 100.64/10, the shared address space of carrier-grade NAT (RFC 6598).
    SharedAddressSpace,
    /// 0.0.0.0/8 and `::`: on Linux a connection to 0.0.0.0 reaches this machine.
    Unspecified,
    /// 224/4, ff00::/8.
    Multicast,
    /// 255.255.255.255.
    Broadcast,
    /// Documentation, benchmarking, protocol assignments, 240/4, and IPv6 outside the
    /// global unicast space: nothing a feed is served from.
    Reserved,
}

impl AddressKind {
    /// The kind with its article, to end a sentence: "a loopback address".
    pub fn described(self) -> &'static str {
        match self {
            Self::Loopback => "a loopback address",
            Self::Private => "a private address",
            Self::LinkLocal => "a link-local address",
            Self::SharedAddressSpace => "a carrier-grade NAT (shared) address",
            Self::Unspecified => "an unspecified address",
            Self::Multicast => "a multicast address",
            Self::Broadcast => "the broadcast address",
            Self::Reserved => "a reserved address",
        }
    }
}

impl fmt::Display for AddressKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.described())
    }
}

const fn v4(a: u8, b: u8, c: u8, d: u8, len: u8) -> Ipv4Net {
    Ipv4Net::new_assert(Ipv4Addr::new(a, b, c, d), len)
}

/// First match wins: the broadcast address lies inside 240/4.
const V4_RANGES: &[(Ipv4Net, AddressKind)] = {
    use AddressKind::*;
    &[
        (v4(255, 255, 255, 255, 32), Broadcast),
        (v4(0, 0, 0, 0, 8), Unspecified),
        (v4(127, 0, 0, 0, 8), Loopback),
        (v4(10, 0, 0, 0, 8), Private),
        (v4(172, 16, 0, 0, 12), Private),
        (v4(192, 168, 0, 0, 16), Private),
        (v4(169, 254, 0, 0, 16), LinkLocal),
        (v4(100, 64, 0, 0, 10), SharedAddressSpace),
        (v4(224, 0, 0, 0, 4), Multicast),
        // IETF protocol assignments (DS-Lite, NAT64 discovery…).
        (v4(192, 0, 0, 0, 24), Reserved),
        // Documentation.
        (v4(192, 0, 2, 0, 24), Reserved),
        (v4(198, 51, 100, 0, 24), Reserved),
        (v4(203, 0, 113, 0, 24), Reserved),
        // Benchmarking.
        (v4(198, 18, 0, 0, 15), Reserved),
        // The retired 6to4 relay anycast.
        (v4(192, 88, 99, 0, 24), Reserved),
        (v4(240, 0, 0, 0, 4), Reserved),
    ]
};

const fn v6(segments: [u16; 8], len: u8) -> Ipv6Net {
    let [a, b, c, d, e, f, g, h] = segments;
    Ipv6Net::new_assert(Ipv6Addr::new(a, b, c, d, e, f, g, h), len)
}

/// Checked after the forms that carry an IPv4 address; first match wins.
const V6_RANGES: &[(Ipv6Net, AddressKind)] = {
    use AddressKind::*;
    &[
        (v6([0, 0, 0, 0, 0, 0, 0, 0], 128), Unspecified),
        (v6([0, 0, 0, 0, 0, 0, 0, 1], 128), Loopback),
        (v6([0xfe80, 0, 0, 0, 0, 0, 0, 0], 10), LinkLocal),
        (v6([0xfec0, 0, 0, 0, 0, 0, 0, 0], 10), Private),
        (v6([0xfc00, 0, 0, 0, 0, 0, 0, 0], 7), Private),
        (v6([0xff00, 0, 0, 0, 0, 0, 0, 0], 8), Multicast),
        // Local-use NAT64 (RFC 8215): translates into a network of its own.
        (v6([0x64, 0xff9b, 1, 0, 0, 0, 0, 0], 48), Private),
        // IETF protocol assignments, Teredo among them (RFC 2928).
        (v6([0x2001, 0, 0, 0, 0, 0, 0, 0], 23), Reserved),
        // Documentation.
        (v6([0x2001, 0xdb8, 0, 0, 0, 0, 0, 0], 32), Reserved),
        (v6([0x3fff, 0, 0, 0, 0, 0, 0, 0], 20), Reserved),
    ]
};

/// 2000::/3: everything else in IPv6 is reserved or special.
const GLOBAL_UNICAST: Ipv6Net = v6([0x2000, 0, 0, 0, 0, 0, 0, 0], 3);

/// What keeps `address` from being public, or `None` when it is a public address.
pub fn special_kind(address: IpAddr) -> Option<AddressKind> {
    match address {
        IpAddr::V4(a) => v4_kind(a),
        IpAddr::V6(a) => v6_kind(a),
    }
}

fn v4_kind(address: Ipv4Addr) -> Option<AddressKind> {
    V4_RANGES
        .iter()
        .find(|(net, _)| net.contains(&address))
        .map(|&(_, kind)| kind)
}

fn v6_kind(address: Ipv6Addr) -> Option<AddressKind> {
    if address.is_unspecified() {
        return Some(AddressKind::Unspecified);
    }
    if address.is_loopback() {
        return Some(AddressKind::Loopback);
    }
    match embedded_ipv4(address) {
        Some(Embedded::Reached(inner)) => return v4_kind(inner),
        // Deprecated forms: never public, but say what lies inside when that is special.
        Some(Embedded::Deprecated(inner)) => {
            return Some(v4_kind(inner).unwrap_or(AddressKind::Reserved));
        }
        None => {}
    }
    if let Some(&(_, kind)) = V6_RANGES.iter().find(|(net, _)| net.contains(&address)) {
        return Some(kind);
    }
    (!GLOBAL_UNICAST.contains(&address)).then_some(AddressKind::Reserved)
}

/// An IPv4 address inside an IPv6 one.
enum Embedded {
    /// Traffic to the IPv6 address goes to this IPv4 address (mapped, NAT64, 6to4).
    Reached(Ipv4Addr),
    /// IPv4-compatible (`::a.b.c.d`) or IPv4-translated (`::ffff:0:a.b.c.d`).
    Deprecated(Ipv4Addr),
}

fn embedded_ipv4(address: Ipv6Addr) -> Option<Embedded> {
    let o = address.octets();
    let low = Ipv4Addr::new(o[12], o[13], o[14], o[15]);
    match address.segments() {
        // ::ffff:a.b.c.d — a dual-stack socket connects to a.b.c.d.
        [0, 0, 0, 0, 0, 0xffff, _, _] => Some(Embedded::Reached(low)),
        // 64:ff9b::a.b.c.d — the well-known NAT64 prefix (RFC 6052).
        [0x64, 0xff9b, 0, 0, 0, 0, _, _] => Some(Embedded::Reached(low)),
        // 2002:AABB:CCDD::/48 — 6to4 (RFC 3056) carries the relay's IPv4 address.
        [0x2002, ..] => Some(Embedded::Reached(Ipv4Addr::new(o[2], o[3], o[4], o[5]))),
        [0, 0, 0, 0, 0, 0, _, _] | [0, 0, 0, 0, 0xffff, 0, _, _] => Some(Embedded::Deprecated(low)),
        _ => None,
    }
}

#[cfg(test)]
#[path = "address_tests.rs"]
mod tests;
