//! Server-side fetches reach no private address. With `SPACEDIGEST_FETCH_ALLOW_PRIVATE`
//! unset, every spelling of this machine and of the private, link-local, carrier-grade
//! NAT and unspecified ranges, and redirects to them from an allowed host, are refused
//! with the reason before a connection is made, through every way the server fetches:
//! the console's story import, the console's feeds (add, "Poll now"), `stories import
//! URL`, `feed add` and `serve`'s poller. A failed fetch repeats nothing the server sent
//! (`fetch/echo.rs`). The console's side is `fetch/console.rs`, the commands' and the
//! poller's `fetch/commands.rs`; here are the listeners and the URLs both use.

mod commands;
mod console;
mod echo;

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::path::PathBuf;

use diesel::prelude::*;
use spacedigest::config::FetchSettings;
use spacedigest::db::{self, Pool, feeds};

use crate::support::http_server::{HttpServer, Reply};

/// An allowed host, by the allow-list, that redirects to the refused ones.
pub const REDIRECTOR: Ipv4Addr = Ipv4Addr::new(127, 0, 0, 2);
/// `SPACEDIGEST_FETCH_ALLOWED_NETWORKS` in these tests: the redirector only.
pub const ALLOWED_NETWORKS: &str = "127.0.0.2/32";

pub fn fixture(name: &str) -> Vec<u8> {
    std::fs::read(
        PathBuf::from(env!("CARGO_MANIFEST_DIR"))
            .join("tests/fixtures/feeds")
            .join(name),
    )
    .unwrap()
}

/// A URL that must be refused, and what the refusal must say.
pub struct Case {
    pub url: String,
    /// Names the address (or the host name, or the redirect).
    pub reason: String,
    /// Names its kind.
    pub kind: &'static str,
    /// Refused only when fetched: the redirector itself is allowed, so `feed add` takes it.
    pub redirect: bool,
}

/// The listeners a refused fetch would reach: a feed on 127.0.0.1 and ::1 (where the
/// machine has IPv6) at one port, and the allowed redirector on 127.0.0.2.
pub struct Targets {
    pub local: HttpServer,
    pub redirector: HttpServer,
}

impl Targets {
    pub async fn start() -> Self {
        let local = HttpServer::start(
            IpAddr::V4(Ipv4Addr::LOCALHOST),
            &[IpAddr::V6(Ipv6Addr::LOCALHOST)],
            vec![("/feed.xml", Reply::ok(fixture("rss2.xml")))],
        )
        .await;
        let to = |host: &str| Reply::redirect(&local.url(host, "/feed.xml"));
        let redirector = HttpServer::start(
            IpAddr::V4(REDIRECTOR),
            &[],
            vec![
                ("/feed.xml", Reply::ok(fixture("atom.xml"))),
                ("/to-loopback", to("127.0.0.1")),
                ("/to-localhost", to("localhost")),
                ("/to-mapped", to("[::ffff:127.0.0.1]")),
                (
                    "/to-metadata",
                    Reply::redirect("http://169.254.169.254/latest/meta-data/"),
                ),
            ],
        )
        .await;
        Self { local, redirector }
    }

    /// Connections either listener on this machine accepted from a refused URL.
    pub fn local_connections(&self) -> usize {
        self.local.connections()
    }

    /// The allowed feed, for the control.
    pub fn allowed_url(&self) -> String {
        self.redirector.url("127.0.0.2", "/feed.xml")
    }

    pub fn cases(&self) -> Vec<Case> {
        let local = |host: &str| self.local.url(host, "/feed.xml");
        let direct = |url: String, reason: &str, kind| Case {
            url,
            reason: reason.to_owned(),
            kind,
            redirect: false,
        };
        let hop = |path: &str, to: &str, kind| Case {
            url: self.redirector.url("127.0.0.2", path),
            reason: format!("refused: the server redirects to {to}"),
            kind,
            redirect: true,
        };
        let port = self.local.port;
        const LOOPBACK: &str = "a loopback address";
        const PRIVATE: &str = "a private address";
        const LINK_LOCAL: &str = "a link-local address";
        const UNSPECIFIED: &str = "an unspecified address";
        vec![
            direct(local("127.0.0.1"), "refused: 127.0.0.1 is", LOOPBACK),
            direct(
                local("localhost"),
                "refused: localhost resolves to",
                LOOPBACK,
            ),
            direct(
                local("[::ffff:127.0.0.1]"),
                "refused: ::ffff:127.0.0.1 is",
                LOOPBACK,
            ),
            direct(local("2130706433"), "refused: 127.0.0.1 is", LOOPBACK),
            direct(local("0x7f.1"), "refused: 127.0.0.1 is", LOOPBACK),
            direct(local("[::1]"), "refused: ::1 is", LOOPBACK),
            direct(local("0.0.0.0"), "refused: 0.0.0.0 is", UNSPECIFIED),
            direct(local("[::]"), "refused: :: is", UNSPECIFIED),
            direct(
                "http://169.254.169.254/latest/meta-data/".to_owned(),
                "refused: 169.254.169.254 is",
                LINK_LOCAL,
            ),
            direct(
                format!("http://10.0.0.1:{port}/feed.xml"),
                "refused: 10.0.0.1 is",
                PRIVATE,
            ),
            direct(
                format!("http://172.16.0.1:{port}/feed.xml"),
                "refused: 172.16.0.1 is",
                PRIVATE,
            ),
            direct(
                format!("http://192.168.0.1:{port}/feed.xml"),
                "refused: 192.168.0.1 is",
                PRIVATE,
            ),
            direct(
                format!("http://100.64.0.1:{port}/feed.xml"),
                "refused: 100.64.0.1 is",
                "a carrier-grade NAT (shared) address",
            ),
            direct(
                format!("http://[fe80::1]:{port}/feed.xml"),
                "refused: fe80::1 is",
                LINK_LOCAL,
            ),
            direct(
                format!("http://[fc00::1]:{port}/feed.xml"),
                "refused: fc00::1 is",
                PRIVATE,
            ),
            hop("/to-loopback", "127.0.0.1", LOOPBACK),
            // Through the resolver: the hop names a host, not an address.
            hop("/to-localhost", "", LOOPBACK),
            hop("/to-mapped", "::ffff:127.0.0.1", LOOPBACK),
            hop("/to-metadata", "169.254.169.254", LINK_LOCAL),
        ]
        .into_iter()
        .enumerate()
        // Spellings of one address are one URL once parsed; each case is a feed of its own.
        .map(|(i, mut case)| {
            case.url.push_str(&format!("?case={i}"));
            case
        })
        .collect()
    }
}

/// "15 spellings of private addresses, 4 redirects to them".
pub fn described(cases: &[Case]) -> String {
    let redirects = cases.iter().filter(|c| c.redirect).count();
    format!(
        "{} URLs ({} spellings of private addresses, {redirects} redirects to them)",
        cases.len(),
        cases.len() - redirects
    )
}

impl Targets {
    /// The listeners on this machine, for the figure.
    pub fn listeners(&self) -> &'static str {
        if self.local.listens_on(IpAddr::V6(Ipv6Addr::LOCALHOST)) {
            "127.0.0.1 and ::1"
        } else {
            "127.0.0.1; no IPv6 here"
        }
    }
}

impl Case {
    /// True when `message` names the reason and the kind.
    pub fn explained_by(&self, message: &str) -> bool {
        message.contains(&self.reason) && message.contains(self.kind)
    }
}

pub fn strict_fetches() -> FetchSettings {
    FetchSettings {
        allow_private: false,
        allowed_networks: vec![ALLOWED_NETWORKS.parse().unwrap()],
    }
}

pub async fn story_count(pool: &Pool) -> i64 {
    db::run(pool, |conn| {
        spacedigest::db::schema::stories::table
            .count()
            .get_result(conn)
    })
    .await
    .unwrap()
}

pub async fn all_feeds(pool: &Pool) -> Vec<feeds::Feed> {
    db::run(pool, feeds::all).await.unwrap()
}

/// What went wrong in each entry point, for the figure and the assertions.
#[derive(Default)]
pub struct Tally {
    pub checked: usize,
    pub explained: usize,
    pub unexplained: Vec<String>,
}

impl Tally {
    pub fn record(&mut self, entry: &str, case: &Case, message: &str) {
        self.checked += 1;
        if case.explained_by(message) {
            self.explained += 1;
        } else {
            self.unexplained
                .push(format!("{entry} {}: {message}", case.url));
        }
    }
}
