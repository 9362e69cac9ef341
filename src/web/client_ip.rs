//! The client's IP address, honouring `X-Forwarded-For` only from trusted proxies.
//!
//! IPv4 clients of a dual-stack listener (`[::]`) arrive as IPv4-mapped IPv6 addresses
//! (`::ffff:a.b.c.d`), and proxies may write either form: every address is taken as the
//! IPv4 address it is, so trusted proxies match and per-IP limits count one client once.

use std::net::IpAddr;

use actix_web::HttpRequest;
use ipnet::IpNet;

/// The address a request came from. Behind trusted proxies it is the right-most
/// `X-Forwarded-For` entry that is not itself a trusted proxy: entries further left are
/// written by the client and could be forged.
/// `trusted` is expected in [`canonical_net`] form.
pub fn client_ip(req: &HttpRequest, trusted: &[IpNet]) -> Option<IpAddr> {
    let peer = req.peer_addr()?.ip().to_canonical();
    let is_trusted = |ip: &IpAddr| trusted.iter().any(|net| net.contains(ip));
    if !is_trusted(&peer) {
        return Some(peer);
    }
    let forwarded: Vec<&str> = req
        .headers()
        .get_all("x-forwarded-for")
        .filter_map(|value| value.to_str().ok())
        .flat_map(|value| value.split(','))
        .map(str::trim)
        .collect();
    let mut client = peer;
    for entry in forwarded.iter().rev() {
        match entry.parse::<IpAddr>().map(|ip| ip.to_canonical()) {
            Ok(ip) => {
                client = ip;
                if !is_trusted(&ip) {
                    break;
                }
            }
            Err(_) => break,
        }
    }
    Some(client)
}

/// A trusted range as [`client_ip`] compares it: `::ffff:a.b.c.d/n` (n ≥ 96) is the IPv4
/// range it maps.
pub fn canonical_net(net: IpNet) -> IpNet {
    match net {
        IpNet::V6(v6) if v6.prefix_len() >= 96 => match v6.addr().to_ipv4_mapped() {
            Some(v4) => ipnet::Ipv4Net::new(v4, v6.prefix_len() - 96)
                .map_or(net, |v4_net| IpNet::V4(v4_net.trunc())),
            None => net,
        },
        other => other,
    }
}

/// The key rate limits count against: an IPv6 client usually owns a whole /64, and an
/// IPv4-mapped address is its IPv4 address.
pub fn rate_limit_key(ip: IpAddr) -> IpAddr {
    match ip.to_canonical() {
        ip @ IpAddr::V4(_) => ip,
        IpAddr::V6(v6) => {
            let segments = v6.segments();
            IpAddr::V6(std::net::Ipv6Addr::new(
                segments[0],
                segments[1],
                segments[2],
                segments[3],
                0,
                0,
                0,
                0,
            ))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use actix_web::test::TestRequest;

    fn request(peer: &str, xff: Option<&str>) -> HttpRequest {
        let mut req = TestRequest::default().peer_addr(format!("{peer}:1234").parse().unwrap());
        if let Some(xff) = xff {
            req = req.insert_header(("x-forwarded-for", xff));
        }
        req.to_http_request()
    }

    #[test]
    fn untrusted_peers_cannot_forge_their_address() {
        let ip = client_ip(&request("203.0.113.9", Some("1.2.3.4")), &[]);
        assert_eq!(ip, Some("203.0.113.9".parse().unwrap()));
    }

    #[test]
    fn trusted_proxies_name_the_client() {
        let trusted: Vec<IpNet> = vec!["10.0.0.0/8".parse().unwrap()];
        let ip = client_ip(
            &request("10.0.0.2", Some("6.6.6.6, 198.51.100.7, 10.0.0.1")),
            &trusted,
        );
        assert_eq!(ip, Some("198.51.100.7".parse().unwrap()));
        let ip = client_ip(&request("10.0.0.2", None), &trusted);
        assert_eq!(ip, Some("10.0.0.2".parse().unwrap()));
    }

    #[test]
    fn ipv4_mapped_peers_and_forwarded_entries_are_their_ipv4_addresses() {
        let trusted: Vec<IpNet> = ["127.0.0.1", "::ffff:10.0.0.0/104"]
            .iter()
            .map(|n| {
                canonical_net(
                    n.parse()
                        .unwrap_or_else(|_| IpNet::from(n.parse::<IpAddr>().unwrap())),
                )
            })
            .collect();
        assert_eq!(trusted[1], "10.0.0.0/8".parse::<IpNet>().unwrap());
        // A dual-stack listener sees an IPv4 proxy as ::ffff:127.0.0.1: still trusted.
        let ip = client_ip(
            &request("[::ffff:127.0.0.1]", Some("198.51.100.7")),
            &trusted,
        );
        assert_eq!(ip, Some("198.51.100.7".parse().unwrap()));
        let ip = client_ip(
            &request(
                "[::ffff:127.0.0.1]",
                Some("::ffff:203.0.113.9, ::ffff:10.1.2.3"),
            ),
            &trusted,
        );
        assert_eq!(ip, Some("203.0.113.9".parse().unwrap()));
        let ip = client_ip(&request("[::ffff:198.51.100.7]", None), &trusted);
        assert_eq!(ip, Some("198.51.100.7".parse().unwrap()));
    }

    #[test]
    fn an_ipv4_mapped_address_is_limited_as_its_ipv4_address_not_as_one_ipv6_network() {
        let mapped = rate_limit_key("::ffff:203.0.113.9".parse().unwrap());
        assert_eq!(mapped, rate_limit_key("203.0.113.9".parse().unwrap()));
        assert_ne!(
            mapped,
            rate_limit_key("::ffff:203.0.113.10".parse().unwrap())
        );
    }

    #[test]
    fn ipv6_clients_share_their_slash_64() {
        let a = rate_limit_key("2001:db8:1:2:aaaa::1".parse().unwrap());
        let b = rate_limit_key("2001:db8:1:2:bbbb::9".parse().unwrap());
        assert_eq!(a, b);
    }
}
