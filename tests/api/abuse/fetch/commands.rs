//! The commands' fetches: `stories import URL`, and feeds added with `feed add` and
//! polled by `serve`; and a proxy in the environment, which would fetch past the checks.

use std::net::{IpAddr, Ipv4Addr};
use std::process::Output;
use std::time::Duration;

use spacedigest::db::Pool;

use super::{ALLOWED_NETWORKS, Tally, Targets, all_feeds, described, fixture, story_count};
use crate::support::app::{TestDatabase, test_settings};
use crate::support::http_server::{HttpServer, Reply};
use crate::support::smtp_server::free_port;

/// A migrated database of its own, and the binary to run against it.
struct Newsroom {
    pool: Pool,
    database: TestDatabase,
}

impl Newsroom {
    async fn new() -> Self {
        let database = TestDatabase::create();
        let settings = test_settings(&database, free_port());
        let pool = spacedigest::app::prepare_database(&settings)
            .await
            .expect("a migrated database");
        Self { pool, database }
    }

    fn command(&self, args: &[&str], env: &[(&str, &str)]) -> tokio::process::Command {
        let mut command = tokio::process::Command::new(env!("CARGO_BIN_EXE_spacedigest"));
        command
            .args(args)
            .current_dir(self.database.dir())
            .env_clear()
            .env("SPACEDIGEST_DATABASE_URL", self.database.url_string())
            .env("SPACEDIGEST_LOG", "warn")
            .kill_on_drop(true);
        for (k, v) in env {
            command.env(k, v);
        }
        command
    }

    async fn run(&self, args: &[&str], env: &[(&str, &str)]) -> Output {
        self.command(args, env)
            .output()
            .await
            .expect("the binary runs")
    }
}

fn stderr(output: &Output) -> String {
    String::from_utf8_lossy(&output.stderr).into_owned()
}

#[tokio::test]
async fn the_commands_and_the_poller_fetch_no_private_address() {
    let targets = Targets::start().await;
    let room = Newsroom::new().await;
    let cases = targets.cases();
    let mut tally = Tally::default();
    let mut successes = Vec::new();
    let allow_list = [("SPACEDIGEST_FETCH_ALLOWED_NETWORKS", ALLOWED_NETWORKS)];

    // `stories import URL`: with no fetch setting at all, and the redirects with the
    // allow-list that admits the redirector.
    for case in &cases {
        let env: &[(&str, &str)] = if case.redirect { &allow_list } else { &[] };
        let out = room.run(&["stories", "import", &case.url], env).await;
        if out.status.success() {
            successes.push(format!("stories import {}", case.url));
        }
        tally.record("stories import", case, &stderr(&out));
    }
    let stored_by_import = story_count(&room.pool).await;

    // `feed add`: what is known to be refused is refused now.
    for case in &cases {
        let out = room.run(&["feed", "add", &case.url], &allow_list).await;
        if !case.redirect {
            if out.status.success() {
                successes.push(format!("feed add {}", case.url));
            }
            tally.record("feed add", case, &stderr(&out));
        }
    }
    let refused_at_add = cases.len() - all_feeds(&room.pool).await.len();
    // Registered while the operator allowed private addresses, then polled without.
    for case in cases.iter().filter(|c| !c.redirect) {
        room.run(
            &["feed", "add", &case.url],
            &[("SPACEDIGEST_FETCH_ALLOW_PRIVATE", "true")],
        )
        .await;
    }
    let registered = all_feeds(&room.pool).await.len();

    // `serve` polls every feed at start.
    let port = free_port().to_string();
    let base = format!("http://127.0.0.1:{port}");
    let serve = room
        .command(
            &["serve"],
            &[
                ("SPACEDIGEST_LISTEN", &format!("127.0.0.1:{port}")),
                ("SPACEDIGEST_BASE_URL", &base),
                ("SPACEDIGEST_FETCH_ALLOWED_NETWORKS", ALLOWED_NETWORKS),
            ],
        )
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
    while all_feeds(&room.pool)
        .await
        .iter()
        .any(|f| f.last_polled_at.is_none())
    {
        assert!(
            tokio::time::Instant::now() < deadline,
            "serve did not poll every feed"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    drop(serve);
    for feed in all_feeds(&room.pool).await {
        let case = cases
            .iter()
            .find(|c| url::Url::parse(&c.url).unwrap().as_str() == feed.url)
            .expect("a feed of the cases");
        tally.record(
            "serve's poller",
            case,
            feed.last_error.as_deref().unwrap_or(""),
        );
    }
    let listed = room.run(&["feed", "list"], &[]).await;
    let listed = String::from_utf8_lossy(&listed.stdout).into_owned();
    let connections = targets.local_connections();
    let stored = story_count(&room.pool).await;

    // With the rule off, the same listener is fetched: the setting is what stopped it.
    let open = room
        .run(
            &[
                "stories",
                "import",
                &targets.local.url("127.0.0.1", "/feed.xml"),
            ],
            &[("SPACEDIGEST_FETCH_ALLOW_PRIVATE", "true")],
        )
        .await;
    let open_connections = targets.local_connections();
    let open_stored = story_count(&room.pool).await;

    crate::support::figures::report(
        "fetch-private-cli",
        &format!(
            "{} through `stories import`, `feed add` and `serve`'s poller: connections to the \
             local listeners ({}) {connections}, stories stored {stored}, commands that \
             succeeded {}, refusals naming the address and its kind {} of {}; with \
             SPACEDIGEST_FETCH_ALLOW_PRIVATE=true the same listener served {} request(s) and {} \
             stories were stored",
            described(&cases),
            targets.listeners(),
            successes.len(),
            tally.explained,
            tally.checked,
            open_connections - connections,
            open_stored - stored
        ),
    );
    assert_eq!(connections, 0, "refused fetches reached this machine");
    assert_eq!(stored_by_import, 0);
    assert_eq!(stored, 0);
    assert!(successes.is_empty(), "{successes:#?}");
    assert!(tally.unexplained.is_empty(), "{:#?}", tally.unexplained);
    assert_eq!(
        refused_at_add,
        cases.iter().filter(|c| !c.redirect).count(),
        "every address known before a lookup"
    );
    assert_eq!(registered, cases.len());
    assert!(
        listed.contains("refused: 127.0.0.1 is a loopback address"),
        "{listed}"
    );
    assert!(open.status.success(), "{}", stderr(&open));
    assert_eq!(open_connections - connections, 1);
    assert_eq!(open_stored, 4);
}

#[tokio::test]
async fn a_proxy_in_the_environment_is_not_used() {
    // A proxy would resolve and connect on our behalf, past the checks: fetches go direct.
    // Here the "proxy" is a local listener that would answer the feed it is asked for.
    let wanted = "http://feeds.proxied.invalid/feed.xml";
    let proxy = HttpServer::start(
        IpAddr::V4(Ipv4Addr::LOCALHOST),
        &[],
        vec![(wanted, Reply::ok(fixture("rss2.xml")))],
    )
    .await;
    let room = Newsroom::new().await;
    let proxy_url = proxy.url("127.0.0.1", "");
    let env: Vec<(&str, &str)> = [
        "http_proxy",
        "HTTP_PROXY",
        "https_proxy",
        "HTTPS_PROXY",
        "ALL_PROXY",
    ]
    .into_iter()
    .map(|name| (name, proxy_url.as_str()))
    .collect();
    let out = room.run(&["stories", "import", wanted], &env).await;
    let stored = story_count(&room.pool).await;
    crate::support::figures::report(
        "fetch-proxy",
        &format!(
            "`stories import` with http_proxy, HTTPS_PROXY and ALL_PROXY naming a local \
             listener: connections to it {}, stories stored {stored}",
            proxy.connections()
        ),
    );
    assert_eq!(proxy.connections(), 0);
    assert_eq!(stored, 0);
    assert!(!out.status.success());
    assert!(stderr(&out).contains("dns error"), "{}", stderr(&out));
}
