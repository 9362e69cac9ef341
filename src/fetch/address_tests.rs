use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use proptest::prelude::*;

use super::AddressKind::*;
use super::*;

fn kind(address: &str) -> Option<AddressKind> {
    special_kind(address.parse().unwrap())
}

#[test]
fn the_special_ranges_have_their_kinds() {
    for (address, expected) in [
        ("127.0.0.1", Some(Loopback)),
        ("127.255.255.254", Some(Loopback)),
        ("10.0.0.1", Some(Private)),
        ("172.16.0.1", Some(Private)),
        ("172.31.255.255", Some(Private)),
        ("172.32.0.1", None),
        ("192.168.1.1", Some(Private)),
        ("169.254.169.254", Some(LinkLocal)),
        ("100.64.0.1", Some(SharedAddressSpace)),
        ("100.127.255.255", Some(SharedAddressSpace)),
        ("100.128.0.1", None),
        ("0.0.0.0", Some(Unspecified)),
        ("0.1.2.3", Some(Unspecified)),
        ("224.0.0.251", Some(Multicast)),
        ("239.255.255.250", Some(Multicast)),
        ("255.255.255.255", Some(Broadcast)),
        ("240.0.0.1", Some(Reserved)),
        ("192.0.2.1", Some(Reserved)),
        ("198.18.0.1", Some(Reserved)),
        ("192.0.0.170", Some(Reserved)),
        ("8.8.8.8", None),
        ("93.184.215.14", None),
        ("::", Some(Unspecified)),
        ("::1", Some(Loopback)),
        ("fe80::1", Some(LinkLocal)),
        ("febf:ffff::1", Some(LinkLocal)),
        ("fc00::1", Some(Private)),
        ("fd12:3456::1", Some(Private)),
        ("fec0::1", Some(Private)),
        ("ff02::1", Some(Multicast)),
        ("2001:db8::1", Some(Reserved)),
        ("3fff::1", Some(Reserved)),
        ("100::1", Some(Reserved)),
        ("2606:4700::1111", None),
        ("2a00:1450:4001::200e", None),
        // IPv4 inside IPv6: judged by what it reaches.
        ("::ffff:127.0.0.1", Some(Loopback)),
        ("::ffff:169.254.169.254", Some(LinkLocal)),
        ("::ffff:10.0.0.1", Some(Private)),
        ("::ffff:8.8.8.8", None),
        ("64:ff9b::7f00:1", Some(Loopback)),
        ("64:ff9b::a9fe:a9fe", Some(LinkLocal)),
        ("64:ff9b::808:808", None),
        ("64:ff9b:1::808:808", Some(Private)),
        ("2002:7f00:1::1", Some(Loopback)),
        ("2002:a00:1::", Some(Private)),
        ("2002:808:808::1", None),
        // Deprecated forms: reserved, or what they carry when that is special.
        ("::127.0.0.1", Some(Loopback)),
        ("::8.8.8.8", Some(Reserved)),
        ("::ffff:0:10.0.0.1", Some(Private)),
        // Teredo.
        ("2001:0:4136:e378:8000:63bf:3fff:fdd2", Some(Reserved)),
    ] {
        assert_eq!(kind(address), expected, "{address}");
    }
}

/// 6to4's prefix with an IPv4 address in bits 16 to 48.
fn six_to_four(a: Ipv4Addr) -> Ipv6Addr {
    let o = a.octets();
    Ipv6Addr::new(
        0x2002,
        u16::from_be_bytes([o[0], o[1]]),
        u16::from_be_bytes([o[2], o[3]]),
        0,
        0,
        0,
        0,
        1,
    )
}

fn nat64(a: Ipv4Addr) -> Ipv6Addr {
    let o = a.octets();
    Ipv6Addr::new(
        0x64,
        0xff9b,
        0,
        0,
        0,
        0,
        u16::from_be_bytes([o[0], o[1]]),
        u16::from_be_bytes([o[2], o[3]]),
    )
}

/// Addresses in the ranges the issue names, and a few around them.
fn interesting_v4() -> impl Strategy<Value = Ipv4Addr> {
    prop_oneof![
        any::<u32>().prop_map(Ipv4Addr::from),
        any::<u32>().prop_map(|n| Ipv4Addr::from(0x7f00_0000 | (n & 0x00ff_ffff))),
        any::<u32>().prop_map(|n| Ipv4Addr::from(0x0a00_0000 | (n & 0x00ff_ffff))),
        any::<u32>().prop_map(|n| Ipv4Addr::from(0xac10_0000 | (n & 0x000f_ffff))),
        any::<u32>().prop_map(|n| Ipv4Addr::from(0xc0a8_0000 | (n & 0x0000_ffff))),
        any::<u32>().prop_map(|n| Ipv4Addr::from(0xa9fe_0000 | (n & 0x0000_ffff))),
        any::<u32>().prop_map(|n| Ipv4Addr::from(0x6440_0000 | (n & 0x003f_ffff))),
        any::<u32>().prop_map(|n| Ipv4Addr::from(n & 0x00ff_ffff)),
        any::<u32>().prop_map(|n| Ipv4Addr::from(0xe000_0000 | (n & 0x1fff_ffff))),
    ]
}

proptest! {
    #[test]
    fn every_address_std_calls_special_is_special(a in interesting_v4(), b in any::<u128>()) {
        if a.is_loopback() || a.is_private() || a.is_link_local() || a.is_unspecified()
            || a.is_multicast() || a.is_broadcast() || a.is_documentation()
        {
            prop_assert!(special_kind(IpAddr::V4(a)).is_some(), "{a}");
        }
        let b = Ipv6Addr::from(b);
        if b.is_loopback() || b.is_unspecified() || b.is_multicast() || b.is_unique_local()
            || b.is_unicast_link_local()
        {
            prop_assert!(special_kind(IpAddr::V6(b)).is_some(), "{b}");
        }
    }

    #[test]
    fn the_ranges_of_the_issue_are_refused_by_kind(a in interesting_v4()) {
        let [first, second, ..] = a.octets();
        let expected = match (first, second) {
            (127, _) => Some(Loopback),
            (10, _) => Some(Private),
            (172, 16..=31) | (192, 168) => Some(Private),
            (169, 254) => Some(LinkLocal),
            (100, 64..=127) => Some(SharedAddressSpace),
            (0, _) => Some(Unspecified),
            (224..=239, _) => Some(Multicast),
            _ => special_kind(IpAddr::V4(a)),
        };
        prop_assert_eq!(special_kind(IpAddr::V4(a)), expected, "{}", a);
    }

    #[test]
    fn ipv6_forms_that_reach_an_ipv4_address_are_judged_by_it(a in interesting_v4()) {
        let direct = special_kind(IpAddr::V4(a));
        for form in [a.to_ipv6_mapped(), nat64(a), six_to_four(a)] {
            prop_assert_eq!(special_kind(IpAddr::V6(form)), direct, "{} as {}", a, form);
        }
        // The deprecated compatible form is never public.
        let compatible = a.to_ipv6_compatible();
        if !compatible.is_unspecified() && !compatible.is_loopback() {
            prop_assert_eq!(
                special_kind(IpAddr::V6(compatible)),
                Some(direct.unwrap_or(Reserved)),
                "{}", compatible
            );
        }
    }

    #[test]
    fn ipv6_outside_global_unicast_is_never_public(b in any::<u128>()) {
        let b = Ipv6Addr::from(b);
        let global = b.segments()[0] & 0xe000 == 0x2000;
        let reaches_v4 = b.to_ipv4_mapped().is_some()
            || b.segments()[..6] == [0x64, 0xff9b, 0, 0, 0, 0];
        if !global && !reaches_v4 {
            prop_assert!(special_kind(IpAddr::V6(b)).is_some(), "{b}");
        }
    }
}
