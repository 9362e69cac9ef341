//! The rule: which addresses a server-side fetch may connect to, and the operator's
//! words when it may not.

use std::fmt;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use ipnet::IpNet;
use url::{Host, Url};

use super::address::{AddressKind, special_kind};
use crate::config::FetchSettings;

/// Public addresses always; others only when the settings open them.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct AddressPolicy {
    allow_private: bool,
    allowed_networks: Vec<IpNet>,
}

/// An address the policy refuses, and what kind it is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Refusal {
    /// The address that would have been connected to.
    pub address: IpAddr,
    /// Why it is not public.
    pub kind: AddressKind,
}

impl fmt::Display for Refusal {
    /// `127.0.0.1 is a loopback address`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} is {}", self.address, self.kind)
    }
}

/// A fetch the policy stopped before any byte was sent to the refused address.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Refused {
    /// The URL names the address itself (in any spelling the URL parser accepts).
    #[error("refused: {0}")]
    Address(Refusal),
    /// The URL's host name resolves only to refused addresses.
    #[error("refused: {host} resolves to {}, {}", .refusal.address, .refusal.kind)]
    Name {
        /// The host name as the operator wrote it (normalised by the URL parser).
        host: String,
        /// The first address refused.
        refusal: Refusal,
    },
    /// A redirect led to a refused address; the server's Location is not repeated.
    #[error("refused: the server redirects to {}, {}", .refusal.address, .refusal.kind)]
    Redirect {
        /// The first address refused.
        refusal: Refusal,
    },
}

impl Refused {
    /// The address refused and its kind.
    pub fn refusal(&self) -> Refusal {
        match self {
            Self::Address(refusal) | Self::Name { refusal, .. } | Self::Redirect { refusal } => {
                *refusal
            }
        }
    }
}

impl AddressPolicy {
    /// The policy the settings describe.
    pub fn new(settings: &FetchSettings) -> Self {
        Self {
            allow_private: settings.allow_private,
            allowed_networks: settings.allowed_networks.clone(),
        }
    }

    /// Ok when a fetch may connect to `address`.
    pub fn check(&self, address: IpAddr) -> Result<(), Refusal> {
        if self.allow_private {
            return Ok(());
        }
        let Some(kind) = special_kind(address) else {
            return Ok(());
        };
        // An allow-list entry written in IPv4 also admits the address's IPv4-mapped form.
        let canonical = address.to_canonical();
        if self
            .allowed_networks
            .iter()
            .any(|net| net.contains(&address) || net.contains(&canonical))
        {
            return Ok(());
        }
        Err(Refusal { address, kind })
    }

    /// Checks a host that is an IP address (in any spelling the URL parser accepts:
    /// `2130706433`, `0x7f.1`, `[::ffff:127.0.0.1]`…). Names are for the resolver, which
    /// checks the addresses it finds.
    pub fn check_url(&self, url: &Url) -> Result<(), Refused> {
        match url.host() {
            Some(Host::Ipv4(a)) => self.check(IpAddr::V4(a)).map_err(Refused::Address),
            Some(Host::Ipv6(a)) => self.check(IpAddr::V6(a)).map_err(Refused::Address),
            _ => Ok(()),
        }
    }

    /// [`Self::check_url`], and `localhost` names (RFC 6761), which always mean this
    /// machine: all that can be known without a DNS lookup, for refusing a feed when it
    /// is added rather than at every poll.
    pub fn check_url_before_lookup(&self, url: &Url) -> Result<(), Refused> {
        self.check_url(url)?;
        match url.host() {
            Some(Host::Domain(name)) if is_localhost(name) => {
                let loopback = [
                    IpAddr::V4(Ipv4Addr::LOCALHOST),
                    IpAddr::V6(Ipv6Addr::LOCALHOST),
                ];
                match loopback.map(|a| self.check(a)) {
                    [Err(refusal), Err(_)] => Err(Refused::Name {
                        host: name.to_owned(),
                        refusal,
                    }),
                    _ => Ok(()),
                }
            }
            _ => Ok(()),
        }
    }
}

fn is_localhost(name: &str) -> bool {
    let name = name.trim_end_matches('.').to_ascii_lowercase();
    name == "localhost" || name.ends_with(".localhost")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn policy(allow_private: bool, networks: &[&str]) -> AddressPolicy {
        AddressPolicy::new(&FetchSettings {
            allow_private,
            allowed_networks: networks.iter().map(|n| n.parse().unwrap()).collect(),
        })
    }

    fn url_refusal(policy: &AddressPolicy, url: &str) -> Option<String> {
        policy
            .check_url_before_lookup(&Url::parse(url).unwrap())
            .err()
            .map(|e| e.to_string())
    }

    #[test]
    fn every_spelling_of_this_machine_is_refused_with_the_reason() {
        let strict = policy(false, &[]);
        for (url, reason) in [
            (
                "http://127.0.0.1:8080/feed",
                "refused: 127.0.0.1 is a loopback address",
            ),
            (
                "http://2130706433/",
                "refused: 127.0.0.1 is a loopback address",
            ),
            ("http://0x7f.1/", "refused: 127.0.0.1 is a loopback address"),
            (
                "http://0177.0.0.01/",
                "refused: 127.0.0.1 is a loopback address",
            ),
            (
                "http://[::ffff:127.0.0.1]/",
                "refused: ::ffff:127.0.0.1 is a loopback address",
            ),
            ("http://[::1]/", "refused: ::1 is a loopback address"),
            (
                "http://localhost:9/",
                "refused: localhost resolves to 127.0.0.1, a loopback address",
            ),
            (
                "http://Feeds.LocalHost./",
                "refused: feeds.localhost. resolves to 127.0.0.1, a loopback address",
            ),
            (
                "http://169.254.169.254/latest/meta-data/",
                "refused: 169.254.169.254 is a link-local address",
            ),
            ("http://10.1.2.3/", "refused: 10.1.2.3 is a private address"),
            (
                "http://192.168.0.10/",
                "refused: 192.168.0.10 is a private address",
            ),
            (
                "http://100.64.0.1/",
                "refused: 100.64.0.1 is a carrier-grade NAT (shared) address",
            ),
            (
                "http://[fe80::1]/",
                "refused: fe80::1 is a link-local address",
            ),
            ("http://[fc00::1]/", "refused: fc00::1 is a private address"),
            (
                "http://0.0.0.0/",
                "refused: 0.0.0.0 is an unspecified address",
            ),
            ("http://[::]/", "refused: :: is an unspecified address"),
            (
                "http://255.255.255.255/",
                "refused: 255.255.255.255 is the broadcast address",
            ),
            (
                "http://224.0.0.1/",
                "refused: 224.0.0.1 is a multicast address",
            ),
        ] {
            assert_eq!(url_refusal(&strict, url).as_deref(), Some(reason), "{url}");
        }
        for public in [
            "https://feeds.example/rss",
            "http://93.184.215.14/",
            "http://[2606:4700::1111]/",
            "http://[::ffff:8.8.8.8]/",
        ] {
            assert_eq!(url_refusal(&strict, public), None, "{public}");
        }
    }

    #[test]
    fn the_settings_open_what_they_name_and_nothing_else() {
        let open = policy(true, &[]);
        assert_eq!(url_refusal(&open, "http://127.0.0.1/"), None);
        assert_eq!(url_refusal(&open, "http://localhost/"), None);
        assert_eq!(url_refusal(&open, "http://[fe80::1]/"), None);

        let listed = policy(false, &["127.0.0.2/32", "10.20.0.0/16", "fd12::/16"]);
        assert_eq!(url_refusal(&listed, "http://127.0.0.2/"), None);
        assert_eq!(url_refusal(&listed, "http://[::ffff:127.0.0.2]/"), None);
        assert_eq!(url_refusal(&listed, "http://10.20.30.40/"), None);
        assert_eq!(url_refusal(&listed, "http://[fd12::5]/"), None);
        assert!(url_refusal(&listed, "http://127.0.0.1/").is_some());
        assert!(url_refusal(&listed, "http://10.21.0.1/").is_some());
        assert!(url_refusal(&listed, "http://localhost/").is_some());
        assert_eq!(
            listed.check_url(&Url::parse("http://localhost/").unwrap()),
            Ok(()),
            "names are left to the resolver"
        );
        let loopback = policy(false, &["::1/128"]);
        assert_eq!(
            url_refusal(&loopback, "http://localhost/"),
            None,
            "localhost is also ::1"
        );
    }
}
