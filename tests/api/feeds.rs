//! Stories in: importing feeds from files and URLs, sanitising, the `stories` and `feed`
//! commands, and polling registered feeds over HTTP.
//!
//! These tests use a migrated database without a running server: `serve` starts its own
//! poller, which would race the tests for the feeds they register. They serve feeds on
//! 127.0.0.1, so fetches may reach private addresses here (`abuse::fetch` has the rule).

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use chrono::NaiveDateTime;
use diesel::prelude::*;
use spacedigest::config::FetchSettings;
use spacedigest::db::feeds::Feed;
use spacedigest::db::schema::{newsletters, stories};
use spacedigest::db::stories::Story;
use spacedigest::db::{self, Pool};
use spacedigest::feeds::{PollOutcome, poll_all_once, run_poller};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio_util::sync::CancellationToken;

use crate::support::app::{TestDatabase, test_settings};
use crate::support::smtp_server::free_port;

/// A migrated database of its own and the binary to run against it.
struct Newsroom {
    pool: Pool,
    // Dropped last: the database outlives the pool that uses it.
    database: TestDatabase,
}

/// What one run of the binary printed.
struct Run {
    success: bool,
    stdout: String,
    stderr: String,
}

impl Run {
    fn ok(self) -> Self {
        assert!(self.success, "failed: {}{}", self.stdout, self.stderr);
        self
    }

    /// A failure with a one-line reason containing `expected`.
    fn fails_with(self, expected: &str) {
        assert!(!self.success, "succeeded: {}", self.stdout);
        let line = self.stderr.trim();
        assert!(line.starts_with("error: "), "{line}");
        assert_eq!(line.lines().count(), 1, "one line: {line}");
        assert!(line.contains(expected), "expected {expected:?} in: {line}");
    }
}

async fn newsroom() -> Newsroom {
    let database = TestDatabase::create();
    let settings = test_settings(&database, free_port());
    let pool = spacedigest::app::prepare_database(&settings)
        .await
        .expect("a migrated database");
    Newsroom { pool, database }
}

fn fixture(name: &str) -> String {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures/feeds")
        .join(name)
        .display()
        .to_string()
}

fn utc(s: &str) -> NaiveDateTime {
    NaiveDateTime::parse_from_str(s, "%Y-%m-%d %H:%M").unwrap()
}

impl Newsroom {
    /// Runs `spacedigest ARGS` on this database (asynchronously, so servers in the test
    /// keep answering while it runs).
    async fn spacedigest(&self, args: &[&str]) -> Run {
        let output = tokio::process::Command::new(env!("CARGO_BIN_EXE_spacedigest"))
            .args(args)
            .current_dir(self.database.dir())
            .env_clear()
            .env("SPACEDIGEST_DATABASE_URL", self.database.url_string())
            .env("SPACEDIGEST_LOG", "warn")
            .env("SPACEDIGEST_FETCH_ALLOW_PRIVATE", "true")
            .output()
            .await
            .expect("the binary runs");
        Run {
            success: output.status.success(),
            stdout: String::from_utf8_lossy(&output.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&output.stderr).into_owned(),
        }
    }

    async fn import(&self, file_or_url: &str) -> Run {
        self.spacedigest(&["stories", "import", file_or_url]).await
    }

    async fn db<T: Send + 'static>(
        &self,
        f: impl FnOnce(&mut db::DbConnection) -> QueryResult<T> + Send + 'static,
    ) -> T {
        db::run(&self.pool, f).await.expect("a database query")
    }

    /// Every story of a newsletter, oldest first.
    async fn stories(&self, slug: &'static str) -> Vec<Story> {
        self.db(move |conn| {
            stories::table
                .inner_join(newsletters::table)
                .filter(newsletters::slug.eq(slug))
                .order((stories::published_at.asc(), stories::id.asc()))
                .select(Story::as_select())
                .load(conn)
        })
        .await
    }

    async fn story_count(&self) -> i64 {
        self.db(|conn| stories::table.count().get_result(conn))
            .await
    }

    async fn feeds(&self) -> Vec<Feed> {
        self.db(spacedigest::db::feeds::all).await
    }

    async fn register_feed(&self, url: &str) {
        self.spacedigest(&["feed", "add", url]).await.ok();
    }
}

/// Fetches as these tests make them: 127.0.0.1 allowed.
fn local_fetches() -> FetchSettings {
    FetchSettings {
        allow_private: true,
        ..FetchSettings::default()
    }
}

#[tokio::test]
async fn each_format_imports_with_its_titles_links_and_times() {
    let room = newsroom().await;
    for (file, line) in [
        (
            "rss2.xml",
            "Imported 4 stories from Spaceflight Now: 4 new, 0 updated, 0 unchanged",
        ),
        (
            "rss1.rdf",
            "Imported 3 stories from Astro Bulletin: 3 new, 0 updated, 0 unchanged",
        ),
        (
            "atom.xml",
            "Imported 3 stories from Orbital Index: 3 new, 0 updated, 0 unchanged",
        ),
        (
            "feed.json",
            "Imported 3 stories from Planetary Notes: 3 new, 0 updated, 0 unchanged",
        ),
    ] {
        let run = room.import(&fixture(file)).await.ok();
        assert_eq!(run.stdout.trim(), line, "{file}");
    }
    let all = room.stories("space-daily").await;
    assert_eq!(all.len(), 13);
    let find = |title: &str| {
        all.iter()
            .find(|s| s.title == title)
            .unwrap_or_else(|| panic!("no story {title:?}"))
    };
    let falcon = find("Falcon 9 launches 24 Starlink satellites from Cape Canaveral");
    assert_eq!(falcon.source, "Spaceflight Now");
    assert_eq!(falcon.published_at, utc("2026-11-20 06:15"));
    assert_eq!(
        falcon.url,
        "https://spaceflightnow.example/2026/11/20/falcon-9-starlink-group-12-7/"
    );
    let juice = find("JUICE completes its Earth-Moon flyby");
    assert_eq!(
        juice.url,
        "https://spaceflightnow.example/2026/11/19/juice-flyby/"
    );
    let electron = find("Rocket Lab's Electron deploys a weather satellite");
    assert_eq!(electron.published_at, utc("2026-11-21 04:45"));
    let rubin = find("Rubin Observatory's first year: 10 million alerts a night");
    assert_eq!(rubin.source, "Astro Bulletin");
    assert_eq!(rubin.published_at, utc("2026-11-20 15:20"));
    let starship = find("Starship flight 12 reaches orbit");
    assert_eq!(starship.published_at, utc("2026-11-20 13:05"));
    assert!(starship.summary_html.contains("<em>dummy</em>"));
    let new_glenn = find("Blue Origin's New Glenn flies its third mission");
    assert_eq!(new_glenn.published_at, utc("2026-11-20 21:40"));
    let chandrayaan = find("Chandrayaan-4 returns lunar samples");
    assert_eq!(chandrayaan.source, "Planetary Notes");
    assert_eq!(chandrayaan.published_at, utc("2026-11-20 06:15"));
    assert_eq!(
        chandrayaan.url,
        "https://planetary-notes.example/2026/11/20/chandrayaan-4-sample"
    );
    // Several on one day, in the (UTC) default newsletter.
    let list = room
        .spacedigest(&["stories", "list", "--date", "2026-11-20"])
        .await
        .ok();
    assert!(
        list.stdout
            .starts_with("8 stories on 2026-11-20 (UTC) in space-daily:"),
        "{}",
        list.stdout
    );
    assert!(
        list.stdout.contains("06:15  Falcon 9 launches"),
        "{}",
        list.stdout
    );
}

#[tokio::test]
async fn importing_again_changes_nothing_and_an_edited_item_updates_its_story() {
    let room = newsroom().await;
    room.import(&fixture("rss2.xml")).await.ok();
    let before = room.stories("space-daily").await;

    let again = room.import(&fixture("rss2.xml")).await.ok();
    assert_eq!(
        again.stdout.trim(),
        "Imported 4 stories from Spaceflight Now: 0 new, 0 updated, 4 unchanged"
    );
    assert_eq!(
        room.stories("space-daily").await,
        before,
        "nothing was written"
    );

    let edited = room.import(&fixture("rss2-updated.xml")).await.ok();
    assert_eq!(
        edited.stdout.trim(),
        "Imported 4 stories from Spaceflight Now: 0 new, 1 updated, 3 unchanged"
    );
    let after = room.stories("space-daily").await;
    assert_eq!(after.len(), 4);
    let falcon = after
        .iter()
        .find(|s| s.guid == "sfn-2026-11-20-starlink-12-7")
        .unwrap();
    let old = before
        .iter()
        .find(|s| s.guid == "sfn-2026-11-20-starlink-12-7")
        .unwrap();
    assert_eq!(
        falcon.title,
        "Falcon 9 launches 24 Starlink satellites; booster lands for the 25th time"
    );
    assert!(falcon.summary_html.contains("updated: landing confirmed"));
    assert_eq!(falcon.id, old.id);
    assert_eq!(falcon.created_at, old.created_at);
    assert!(falcon.updated_at >= old.updated_at);
    for story in after.iter().filter(|s| s.id != falcon.id) {
        assert!(before.contains(story), "untouched: {story:?}");
    }
}

#[tokio::test]
async fn hostile_markup_is_stored_sanitised() {
    let room = newsroom().await;
    let run = room.import(&fixture("script-and-handlers.xml")).await.ok();
    assert!(
        run.stdout
            .trim()
            .ends_with(": 2 new, 0 updated, 0 unchanged (1 skipped: link not http(s))"),
        "{}",
        run.stdout
    );
    let stored = room.stories("space-daily").await;
    assert_eq!(stored.len(), 2);
    for story in &stored {
        for field in [&story.title, &story.summary_html, &story.source, &story.url] {
            let lower = field.to_ascii_lowercase();
            for bad in [
                "<script",
                "javascript:",
                " on",
                "style=",
                "<style",
                "<iframe",
                "<img",
                "<form",
                "<input",
                "<link",
                "<svg",
                "<object",
                "<embed",
                "<meta",
                "data:",
                "evil.example",
                "@import",
            ] {
                assert!(!lower.contains(bad), "{bad:?} stored in {field:?}");
            }
        }
    }
    let lander = &stored[0];
    assert_eq!(lander.title, "Lunar lander touches down");
    assert!(
        lander.summary_html.contains(
            r#"<a href="https://legit-space.example/more" rel="noopener noreferrer nofollow">Read more</a>"#
        ),
        "{}",
        lander.summary_html
    );
    assert!(
        lander
            .summary_html
            .contains("<p>The lander is <b>safe</b>.</p>")
    );
    assert!(stored[1].summary_html.contains("Text survives"));
}

#[tokio::test]
async fn broken_feeds_are_refused_with_a_clear_reason_and_store_nothing() {
    let room = newsroom().await;
    // Over the 5 MiB limit, generated rather than checked in.
    let huge = room.database.dir().join("huge.xml");
    let item = "<item><title>Filler</title><link>https://filler.example/</link></item>\n";
    let body = item.repeat(6 * 1024 * 1024 / item.len() + 1);
    std::fs::write(
        &huge,
        format!("<rss version=\"2.0\"><channel><title>Huge</title>{body}</channel></rss>"),
    )
    .unwrap();
    let missing = room.database.dir().join("no-such-feed.xml");
    for (path, reason) in [
        (
            fixture("not-a-feed.html"),
            "not a feed: expected RSS, Atom or JSON Feed (this is an HTML page)",
        ),
        (
            fixture("truncated.xml"),
            "truncated feed: the document ends before its closing </rss>",
        ),
        (
            fixture("wrong-encoding.xml"),
            "wrong encoding: the feed is declared UTF-8",
        ),
        (huge.display().to_string(), "the feed is larger than 5 MiB"),
        (missing.display().to_string(), "cannot read"),
    ] {
        room.import(&path).await.fails_with(reason);
    }
    assert_eq!(room.story_count().await, 0);
}

#[tokio::test]
async fn undated_items_are_dated_on_first_sight_and_keep_that_time() {
    let room = newsroom().await;
    let first = room.import(&fixture("no-dates.xml")).await.ok();
    assert_eq!(
        first.stdout.trim(),
        "Imported 3 stories from Undated Observatory Log: 3 new, 0 updated, 0 unchanged \
         (3 undated, dated now)"
    );
    let dated = room.stories("space-daily").await;
    let now = db::now();
    for story in &dated {
        assert!(
            (now - story.published_at).num_seconds().abs() < 60,
            "{story:?}"
        );
    }
    tokio::time::sleep(Duration::from_millis(20)).await;
    let again = room.import(&fixture("no-dates.xml")).await.ok();
    assert_eq!(
        again.stdout.trim(),
        "Imported 3 stories from Undated Observatory Log: 0 new, 0 updated, 3 unchanged \
         (3 undated, first-seen time kept)"
    );
    assert_eq!(room.stories("space-daily").await, dated);
}

#[tokio::test]
async fn items_missing_fields_are_skipped_with_reasons() {
    let room = newsroom().await;
    let run = room.import(&fixture("missing-fields.xml")).await.ok();
    assert_eq!(
        run.stdout.trim(),
        "Imported 1 story from mission-wire.example: 1 new, 0 updated, 0 unchanged \
         (3 skipped: 2 no title, 1 no link)"
    );
    let stored = room.stories("space-daily").await;
    assert_eq!(stored.len(), 1);
    assert_eq!(stored[0].title, "Hubble returns to science operations");
}

#[tokio::test]
async fn stories_added_by_hand_are_listed_by_day_in_the_newsletter_time_zone() {
    let room = newsroom().await;
    room.spacedigest(&[
        "newsletter",
        "add",
        "mars-weekly",
        "--title",
        "Mars Weekly",
        "--timezone",
        "America/New_York",
    ])
    .await
    .ok();
    for (title, at) in [
        ("Late on the 19th", "2026-11-20T03:30:00Z"),
        ("Early on the 20th", "2026-11-20T06:00:00Z"),
        ("Last minute of the 20th", "2026-11-20T23:59:00-05:00"),
        ("Midnight starts the 21st", "2026-11-21T05:00:00+00:00"),
    ] {
        let url = format!("https://mars.example/{}", title.replace(' ', "-"));
        let added = room
            .spacedigest(&[
                "stories",
                "add",
                "--title",
                title,
                "--url",
                &url,
                "--summary",
                "<p onclick=\"x()\">Dust storm <script>alert(1)</script>update</p>",
                "--published-at",
                at,
                "--newsletter",
                "mars-weekly",
            ])
            .await
            .ok();
        assert_eq!(
            added.stdout.trim(),
            format!("Added \"{title}\" to mars-weekly.")
        );
    }
    let day = room
        .spacedigest(&[
            "stories",
            "list",
            "--date",
            "2026-11-20",
            "--newsletter",
            "mars-weekly",
        ])
        .await
        .ok();
    let lines: Vec<&str> = day.stdout.lines().collect();
    assert_eq!(
        lines[0],
        "2 stories on 2026-11-20 (America/New_York) in mars-weekly:"
    );
    assert!(lines[1].starts_with("TIME") && lines[1].contains("TITLE"));
    assert!(
        lines[2].starts_with("01:00  Early on the 20th"),
        "{}",
        lines[2]
    );
    assert!(
        lines[2].contains("mars.example")
            && lines[2].ends_with("https://mars.example/Early-on-the-20th")
    );
    assert!(
        lines[3].starts_with("23:59  Last minute of the 20th"),
        "{}",
        lines[3]
    );
    assert_eq!(lines.len(), 4, "{}", day.stdout);

    let stored = room.stories("mars-weekly").await;
    assert_eq!(stored[0].summary_html, "<p>Dust storm update</p>");

    let empty = room
        .spacedigest(&[
            "stories",
            "list",
            "--date",
            "2026-11-10",
            "--newsletter",
            "mars-weekly",
        ])
        .await
        .ok();
    assert_eq!(
        empty.stdout.trim(),
        "No stories on 2026-11-10 (America/New_York) in mars-weekly."
    );
    // The default newsletter has none of them.
    let other = room
        .spacedigest(&["stories", "list", "--date", "2026-11-20"])
        .await
        .ok();
    assert_eq!(
        other.stdout.trim(),
        "No stories on 2026-11-20 (UTC) in space-daily."
    );

    // Without --published-at a story is today's, and adding it again changes nothing.
    let add_now = [
        "stories",
        "add",
        "--title",
        "Perseverance cores a new sample",
        "--url",
        "https://mars.example/percy",
        "--newsletter",
        "mars-weekly",
    ];
    room.spacedigest(&add_now).await.ok();
    let again = room.spacedigest(&add_now).await.ok();
    assert_eq!(
        again.stdout.trim(),
        "\"Perseverance cores a new sample\" is already in mars-weekly, unchanged."
    );
    let today = room
        .spacedigest(&["stories", "list", "--newsletter", "mars-weekly"])
        .await
        .ok();
    assert!(
        today.stdout.contains("Perseverance cores a new sample"),
        "{}",
        today.stdout
    );
}

#[tokio::test]
async fn story_commands_refuse_bad_input_with_a_reason() {
    let room = newsroom().await;
    room.spacedigest(&["stories", "list", "--newsletter", "no-such-letter"])
        .await
        .fails_with("unknown newsletter \"no-such-letter\"");
    room.import(&fixture("rss2.xml")).await.ok();
    room.spacedigest(&[
        "stories",
        "import",
        &fixture("rss2.xml"),
        "--newsletter",
        "nope",
    ])
    .await
    .fails_with("unknown newsletter \"nope\"");
    room.spacedigest(&["stories", "list", "--date", "20-11-2026"])
        .await
        .fails_with("invalid --date");
    for (flag, value, reason) in [
        ("--url", "javascript:alert(1)", "invalid --url"),
        ("--url", "/relative", "invalid --url"),
        ("--title", "<b> </b>", "invalid --title"),
        ("--published-at", "yesterday", "invalid --published-at"),
    ] {
        let mut args = vec![
            "stories",
            "add",
            "--title",
            "A title",
            "--url",
            "https://ok.example/",
        ];
        match flag {
            "--url" => args[5] = value,
            "--title" => args[3] = value,
            _ => args.extend([flag, value]),
        }
        room.spacedigest(&args).await.fails_with(reason);
    }
    room.import("ftp://feeds.example/rss.xml")
        .await
        .fails_with("not an http or https URL");
    assert_eq!(room.story_count().await, 4);
}

#[tokio::test]
async fn feeds_are_added_listed_and_removed() {
    let room = newsroom().await;
    let empty = room.spacedigest(&["feed", "list"]).await.ok();
    assert!(
        empty.stdout.contains("No feeds registered"),
        "{}",
        empty.stdout
    );

    let added = room
        .spacedigest(&["feed", "add", "https://feeds.example/space.xml"])
        .await
        .ok();
    assert_eq!(
        added.stdout.trim(),
        "Added feed https://feeds.example/space.xml to space-daily; `serve` polls it every 30 minutes."
    );
    room.spacedigest(&["feed", "add", "HTTPS://FEEDS.example/space.xml#top"])
        .await
        .fails_with("already registered for space-daily");
    room.spacedigest(&["feed", "add", "ftp://feeds.example/x"])
        .await
        .fails_with("only http and https");
    room.spacedigest(&["feed", "add", "not a url"])
        .await
        .fails_with("invalid feed URL");
    room.spacedigest(&[
        "feed",
        "add",
        "https://feeds.example/other.xml",
        "--newsletter",
        "nope",
    ])
    .await
    .fails_with("unknown newsletter \"nope\"");

    let list = room.spacedigest(&["feed", "list"]).await.ok();
    let row = list.stdout.lines().nth(1).expect("a row");
    assert!(row.starts_with("https://feeds.example/space.xml"), "{row}");
    assert!(
        row.contains("space-daily") && row.contains("never"),
        "{row}"
    );

    // The same feed may serve two newsletters; removing can name one of them.
    room.spacedigest(&["newsletter", "add", "mars-weekly", "--title", "Mars Weekly"])
        .await
        .ok();
    room.spacedigest(&[
        "feed",
        "add",
        "https://feeds.example/space.xml",
        "--newsletter",
        "mars-weekly",
    ])
    .await
    .ok();
    let one = room
        .spacedigest(&[
            "feed",
            "remove",
            "https://feeds.example/space.xml",
            "--newsletter",
            "mars-weekly",
        ])
        .await
        .ok();
    assert_eq!(
        one.stdout.trim(),
        "Removed feed https://feeds.example/space.xml from mars-weekly."
    );
    let removed = room
        .spacedigest(&["feed", "remove", "https://feeds.example/space.xml"])
        .await
        .ok();
    assert_eq!(
        removed.stdout.trim(),
        "Removed feed https://feeds.example/space.xml from space-daily."
    );
    room.spacedigest(&["feed", "remove", "https://feeds.example/space.xml"])
        .await
        .fails_with("no feed https://feeds.example/space.xml is registered");
    assert!(room.feeds().await.is_empty());
}

/// A request the test feed server received.
#[derive(Debug, Clone)]
struct SeenRequest {
    path: String,
    headers: HashMap<String, String>,
}

/// What the test feed server answers on one path.
#[derive(Clone)]
struct Route {
    status: u16,
    body: Vec<u8>,
    etag: Option<&'static str>,
}

impl Route {
    fn feed(file: &str, etag: &'static str) -> Self {
        Self {
            status: 200,
            body: std::fs::read(fixture(file)).unwrap(),
            etag: Some(etag),
        }
    }
}

/// A tiny HTTP/1.1 server on 127.0.0.1 that serves feeds with ETags and answers 304 to a
/// matching If-None-Match.
struct FeedServer {
    base: String,
    seen: Arc<Mutex<Vec<SeenRequest>>>,
    task: tokio::task::JoinHandle<()>,
}

impl FeedServer {
    async fn start(routes: Vec<(&'static str, Route)>) -> Self {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let base = format!("http://{}", listener.local_addr().unwrap());
        let routes: Arc<HashMap<&'static str, Route>> = Arc::new(routes.into_iter().collect());
        let seen = Arc::new(Mutex::new(Vec::new()));
        let recorded = seen.clone();
        let task = tokio::spawn(async move {
            while let Ok((stream, _)) = listener.accept().await {
                tokio::spawn(answer(stream, routes.clone(), recorded.clone()));
            }
        });
        Self { base, seen, task }
    }

    fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    fn requests(&self) -> Vec<SeenRequest> {
        self.seen.lock().unwrap().clone()
    }
}

impl Drop for FeedServer {
    fn drop(&mut self) {
        self.task.abort();
    }
}

async fn answer(
    mut stream: tokio::net::TcpStream,
    routes: Arc<HashMap<&'static str, Route>>,
    seen: Arc<Mutex<Vec<SeenRequest>>>,
) {
    let mut head = Vec::new();
    let mut byte = [0u8; 1];
    while !head.ends_with(b"\r\n\r\n") {
        match stream.read(&mut byte).await {
            Ok(1) => head.push(byte[0]),
            _ => return,
        }
    }
    let head = String::from_utf8_lossy(&head).into_owned();
    let mut lines = head.lines();
    let path = lines
        .next()
        .and_then(|l| l.split_whitespace().nth(1))
        .unwrap_or("/")
        .to_owned();
    let headers: HashMap<String, String> = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(k, v)| (k.trim().to_ascii_lowercase(), v.trim().to_owned()))
        .collect();
    seen.lock().unwrap().push(SeenRequest {
        path: path.clone(),
        headers: headers.clone(),
    });
    let route = routes.get(path.as_str()).cloned().unwrap_or(Route {
        status: 404,
        body: b"not found".to_vec(),
        etag: None,
    });
    let not_modified =
        route.etag.is_some() && headers.get("if-none-match").map(String::as_str) == route.etag;
    let (status, body) = if not_modified {
        ("304 Not Modified".to_owned(), Vec::new())
    } else {
        let reason = match route.status {
            200 => "OK",
            404 => "Not Found",
            _ => "Internal Server Error",
        };
        (format!("{} {reason}", route.status), route.body)
    };
    let mut response = format!(
        "HTTP/1.1 {status}\r\nContent-Type: application/xml\r\nContent-Length: {}\r\nConnection: close\r\n",
        body.len()
    );
    if let Some(etag) = route.etag {
        response.push_str(&format!("ETag: {etag}\r\n"));
    }
    response.push_str("\r\n");
    let _ = stream.write_all(response.as_bytes()).await;
    let _ = stream.write_all(&body).await;
    let _ = stream.shutdown().await;
}

#[tokio::test]
async fn polling_sends_conditional_requests_and_a_304_changes_nothing() {
    let room = newsroom().await;
    let server = FeedServer::start(vec![("/rss.xml", Route::feed("rss2.xml", "\"v1\""))]).await;
    room.register_feed(&server.url("/rss.xml")).await;

    let first = poll_all_once(&room.pool, &local_fetches()).await;
    assert_eq!(first.len(), 1);
    match &first[0].outcome {
        PollOutcome::Imported(report) => assert_eq!(report.counts.new, 4),
        other => panic!("{other:?}"),
    }
    let stored = room.stories("space-daily").await;
    assert_eq!(stored.len(), 4);
    let feed = room.feeds().await.remove(0);
    assert_eq!(feed.etag.as_deref(), Some("\"v1\""));
    assert!(feed.last_success_at.is_some() && feed.last_error.is_none());

    let second = poll_all_once(&room.pool, &local_fetches()).await;
    assert_eq!(second[0].outcome, PollOutcome::NotModified);
    let requests = server.requests();
    assert_eq!(requests.len(), 2, "one request per poll: {requests:?}");
    assert_eq!(requests[0].headers.get("if-none-match"), None);
    assert_eq!(
        requests[1].headers.get("if-none-match").map(String::as_str),
        Some("\"v1\"")
    );
    let agent = &requests[1].headers["user-agent"];
    assert!(agent.starts_with("spacedigest/"), "{agent}");
    assert_eq!(
        room.stories("space-daily").await,
        stored,
        "a 304 stores nothing"
    );
    let after = room.feeds().await.remove(0);
    assert_eq!(after.etag, feed.etag);
    assert!(after.last_polled_at >= feed.last_polled_at);

    // `stories import URL` fetches unconditionally and, being idempotent, adds nothing.
    let run = room.import(&server.url("/rss.xml")).await.ok();
    assert!(
        run.stdout.contains("0 new, 0 updated, 4 unchanged"),
        "{}",
        run.stdout
    );
    assert_eq!(server.requests().len(), 3);
}

#[tokio::test]
async fn a_failing_feed_is_recorded_and_polling_goes_on() {
    let room = newsroom().await;
    let mut huge = b"<rss version=\"2.0\"><channel><title>Huge</title>".to_vec();
    huge.resize(6 * 1024 * 1024, b' ');
    huge.extend_from_slice(b"</channel></rss>");
    let server = FeedServer::start(vec![
        ("/good.xml", Route::feed("atom.xml", "\"a1\"")),
        ("/page.html", Route::feed("not-a-feed.html", "\"h1\"")),
        (
            "/broken",
            Route {
                status: 500,
                body: b"oops".to_vec(),
                etag: None,
            },
        ),
        (
            "/huge.xml",
            Route {
                status: 200,
                body: huge,
                etag: None,
            },
        ),
    ])
    .await;
    let down = format!("http://127.0.0.1:{}/feed.xml", free_port());
    for url in [
        down.clone(),
        server.url("/broken"),
        server.url("/page.html"),
        server.url("/huge.xml"),
        server.url("/good.xml"),
    ] {
        room.register_feed(&url).await;
    }

    let reports = poll_all_once(&room.pool, &local_fetches()).await;
    assert_eq!(reports.len(), 5);
    let failure = |i: usize| match &reports[i].outcome {
        PollOutcome::Failed(message) => message.clone(),
        other => panic!("{}: {other:?}", reports[i].url),
    };
    // The server that is down: the reason, never the URL (it may carry credentials).
    let refused = failure(0);
    assert!(refused.contains("onnect"), "{refused}");
    assert!(!refused.contains("127.0.0.1"), "{refused}");
    assert_eq!(failure(1), "the server answered 500 Internal Server Error");
    assert!(failure(2).starts_with("not a feed"), "{}", failure(2));
    assert_eq!(failure(3), "the feed is larger than 5 MiB");
    assert!(matches!(&reports[4].outcome, PollOutcome::Imported(r) if r.counts.new == 3));

    let feeds = room.feeds().await;
    for feed in &feeds[..4] {
        assert!(feed.last_polled_at.is_some(), "{feed:?}");
        assert!(feed.last_success_at.is_none(), "{feed:?}");
        assert!(feed.last_error.is_some(), "{feed:?}");
        // A failed fetch keeps no validators, so the next poll reads the feed in full.
        assert!(feed.etag.is_none(), "{feed:?}");
    }
    assert!(feeds[4].last_error.is_none() && feeds[4].last_success_at.is_some());
    assert_eq!(room.stories("space-daily").await.len(), 3);

    let list = room.spacedigest(&["feed", "list"]).await.ok();
    assert!(
        list.stdout.contains("the server answered 500"),
        "{}",
        list.stdout
    );
}

#[tokio::test]
async fn the_poller_polls_at_start_and_stops_on_shutdown() {
    let room = newsroom().await;
    let server = FeedServer::start(vec![("/feed.json", Route::feed("feed.json", "\"j1\""))]).await;
    room.register_feed(&server.url("/feed.json")).await;

    let shutdown = CancellationToken::new();
    let poller = tokio::spawn(run_poller(
        room.pool.clone(),
        Duration::from_secs(3600),
        local_fetches(),
        shutdown.clone(),
    ));
    let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
    while room.stories("space-daily").await.len() < 3 {
        assert!(
            tokio::time::Instant::now() < deadline,
            "the first poll did not run"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    shutdown.cancel();
    tokio::time::timeout(Duration::from_secs(2), poller)
        .await
        .expect("the poller stops when told")
        .unwrap();
    assert_eq!(server.requests().len(), 1);
    assert_eq!(server.requests()[0].path, "/feed.json");
}
