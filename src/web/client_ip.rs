//! The client's IP address, honouring `X-Forwarded-For` only from trusted proxies.

use std::net::IpAddr;

use actix_web::HttpRequest;
use ipnet::IpNet;

/// The address a request came from. Behind trusted proxies it is the right-most
/// `X-Forwarded-For` entry that is not itself a trusted proxy: entries further left are
/// written by the client and could be forged.
pub fn client_ip(req: &HttpRequest, trusted: &[IpNet]) -> Option<IpAddr> {
    let peer = req.peer_addr()?.ip();
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
        match entry.parse::<IpAddr>() {
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

/// The key rate limits count against: an IPv6 client usually owns a whole /64.
pub fn rate_limit_key(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V4(_) => ip,
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
    fn ipv6_clients_share_their_slash_64() {
        let a = rate_limit_key("2001:db8:1:2:aaaa::1".parse().unwrap());
        let b = rate_limit_key("2001:db8:1:2:bbbb::9".parse().unwrap());
        assert_eq!(a, b);
    }
}
