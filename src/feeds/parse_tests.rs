//! The parser against the fixtures in `tests/fixtures/feeds` and generated edge cases.

use chrono::NaiveDateTime;

use super::*;

fn fixture(name: &str) -> Vec<u8> {
    let path = format!("{}/tests/fixtures/feeds/{name}", env!("CARGO_MANIFEST_DIR"));
    std::fs::read(&path).unwrap_or_else(|e| panic!("{path}: {e}"))
}

fn parse_fixture(name: &str) -> Result<ParsedFeed, FeedError> {
    parse_feed(&fixture(name), &FeedOrigin::file(Path::new(name)))
}

fn utc(s: &str) -> Option<NaiveDateTime> {
    Some(NaiveDateTime::parse_from_str(s, "%Y-%m-%d %H:%M").unwrap())
}

fn rss(items: &str) -> Vec<u8> {
    format!(
        "<?xml version=\"1.0\"?><rss version=\"2.0\"><channel><title>T</title>\
         <link>https://site.example/</link>{items}</channel></rss>"
    )
    .into_bytes()
}

#[test]
fn reads_rss_2() {
    let feed = parse_fixture("rss2.xml").unwrap();
    assert_eq!(feed.source, "Spaceflight Now");
    assert_eq!(feed.skipped.total(), 0);
    let titles: Vec<&str> = feed.items.iter().map(|i| i.title.as_str()).collect();
    assert_eq!(
        titles,
        [
            "Falcon 9 launches 24 Starlink satellites from Cape Canaveral",
            "NASA & ESA agree on Mars Sample Return redesign",
            "Rocket Lab's Electron deploys a weather satellite",
            "JUICE completes its Earth-Moon flyby",
        ]
    );
    let first = &feed.items[0];
    assert_eq!(first.guid, "sfn-2026-11-20-starlink-12-7");
    assert_eq!(first.published_at, utc("2026-11-20 06:15"));
    // The description (a teaser) wins over content:encoded (the article).
    assert!(
        first
            .summary_html
            .starts_with("<p>A SpaceX <strong>Falcon 9</strong>")
    );
    assert!(first.summary_html.contains(
        r#"<a href="https://www.starlink.example/" rel="noopener noreferrer nofollow">"#
    ));
    assert_eq!(feed.items[2].published_at, utc("2026-11-21 04:45"));
    // A relative link resolves against the channel's link; without a guid the link is it.
    assert_eq!(
        feed.items[3].url,
        "https://spaceflightnow.example/2026/11/19/juice-flyby/"
    );
    assert_eq!(feed.items[1].guid, feed.items[1].url);
}

#[test]
fn reads_rss_1() {
    let feed = parse_fixture("rss1.rdf").unwrap();
    assert_eq!(feed.source, "Astro Bulletin");
    assert_eq!(feed.items.len(), 3);
    assert_eq!(feed.items[1].published_at, utc("2026-11-20 15:20"));
    assert_eq!(
        feed.items[0].url,
        "https://astro-bulletin.example/news/jwst-exomoon"
    );
    assert_eq!(feed.items[0].guid, feed.items[0].url);
}

#[test]
fn reads_atom() {
    let feed = parse_fixture("atom.xml").unwrap();
    assert_eq!(feed.source, "Orbital Index");
    let starship = &feed.items[0];
    assert_eq!(starship.title, "Starship flight 12 reaches orbit");
    assert_eq!(starship.guid, "tag:orbital-index.example,2026:starship-12");
    // Published wins over updated.
    assert_eq!(starship.published_at, utc("2026-11-20 13:05"));
    assert_eq!(
        starship.url,
        "https://orbital-index.example/2026/11/20/starship-flight-12"
    );
    assert!(starship.summary_html.contains("<em>dummy</em>"));
    // Only `updated`: that is the time. XHTML content is the summary.
    let new_glenn = &feed.items[1];
    assert_eq!(new_glenn.published_at, utc("2026-11-20 21:40"));
    assert!(
        new_glenn
            .summary_html
            .contains("<p>The booster landed on <strong>Jacklyn</strong> again.</p>"),
        "{}",
        new_glenn.summary_html
    );
    // A plain-text summary is escaped, not interpreted.
    assert_eq!(
        feed.items[2].summary_html,
        "<p>Vyommitra rode along &amp; reported in from orbit.</p>"
    );
    assert_eq!(feed.items[2].published_at, utc("2026-11-19 00:00"));
}

#[test]
fn reads_json_feed() {
    let feed = parse_fixture("feed.json").unwrap();
    assert_eq!(feed.source, "Planetary Notes");
    assert_eq!(feed.items.len(), 3);
    assert_eq!(feed.items[0].guid, "pn-2026-11-20-europa-clipper");
    assert_eq!(
        feed.items[0].summary_html,
        "<p>The spacecraft's <em>thermal imager</em> caught Olympus Mons.</p>"
    );
    assert_eq!(
        feed.items[1].summary_html,
        "<p>The capsule landed in the Bay of Bengal.</p><p>Samples go to Ahmedabad next.</p>"
    );
    assert_eq!(feed.items[1].published_at, utc("2026-11-20 06:15"));
    assert_eq!(feed.items[2].published_at, utc("2026-11-19 22:10"));
    assert_eq!(
        feed.items[2].summary_html,
        "<p>Engineers revived a thruster branch unused since 2004.</p>"
    );
}

#[test]
fn hostile_markup_is_sanitised_and_code_links_are_skipped() {
    let feed = parse_fixture("script-and-handlers.xml").unwrap();
    assert_eq!(feed.items.len(), 2);
    assert_eq!(feed.skipped.count(SkipReason::BadLink), 1);
    for item in &feed.items {
        for text in [&item.title, &item.summary_html, &item.source] {
            let lower = text.to_ascii_lowercase();
            for bad in [
                "<script",
                "javascript:",
                "onerror",
                "onclick",
                "onmouseover",
                "onload",
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
                assert!(!lower.contains(bad), "{bad} in {text}");
            }
        }
    }
    assert!(feed.items[0].summary_html.contains(
        r#"<a href="https://legit-space.example/more" rel="noopener noreferrer nofollow">Read more</a>"#
    ));
    assert!(feed.items[1].summary_html.contains("Text survives"));
}

#[test]
fn undated_items_have_no_time_and_are_counted() {
    let feed = parse_fixture("no-dates.xml").unwrap();
    assert_eq!(feed.items.len(), 3);
    assert_eq!(feed.undated(), 3);
}

#[test]
fn items_missing_fields_are_skipped_with_reasons() {
    let feed = parse_fixture("missing-fields.xml").unwrap();
    assert_eq!(feed.source, "mission-wire.example");
    assert_eq!(feed.items.len(), 1);
    assert_eq!(feed.skipped.to_string(), "3 skipped: 2 no title, 1 no link");
}

#[test]
fn broken_documents_are_refused_with_the_reason() {
    for (name, expected) in [
        (
            "not-a-feed.html",
            "not a feed: expected RSS, Atom or JSON Feed",
        ),
        ("truncated.xml", "truncated feed"),
        ("wrong-encoding.xml", "wrong encoding"),
    ] {
        let error = parse_fixture(name).unwrap_err().to_string();
        assert!(error.contains(expected), "{name}: {error}");
    }
    let origin = FeedOrigin::file(Path::new("x"));
    let cases: [(&[u8], &str); 9] = [
        (b"", "the feed is empty"),
        (
            b"<?xml version=\"1.0\"?><catalog><book/></catalog>",
            "the root element is not <rss>, <feed> or <rdf:RDF>",
        ),
        (b"{\"name\": \"not a feed\"}", "JSON, but not a JSON Feed"),
        (
            b"{\"version\": \"https://jsonfeed.org/version/1.1\", \"title\": \"x\", \"items\": [",
            "JSON ends early",
        ),
        (
            b"{\"version\": \"https://jsonfeed.org/version/9\", \"title\": \"x\", \"items\": []}",
            "unsupported JSON Feed version",
        ),
        (b"{\"title\": \"x\",, }", "malformed JSON"),
        (
            b"<rss version=\"2.0\"><channel><title>x</titel></channel></rss>",
            "malformed XML",
        ),
        (b"Just some words.", "neither XML nor JSON"),
        (b"[1, 2]", "not a feed: expected RSS, Atom or JSON Feed"),
    ];
    for (bytes, expected) in cases {
        let error = parse_feed(bytes, &origin).unwrap_err().to_string();
        assert!(error.contains(expected), "{expected}: {error}");
    }
}

#[test]
fn a_feed_over_5_mib_is_refused() {
    let item = "<item><title>x</title><link>https://a.example/</link></item>";
    let mut items = String::new();
    while items.len() <= MAX_FEED_BYTES {
        items.push_str(item);
    }
    let error = parse_feed(&rss(&items), &FeedOrigin::file(Path::new("big.xml"))).unwrap_err();
    assert_eq!(error, FeedError::TooLarge);
    assert_eq!(error.to_string(), "the feed is larger than 5 MiB");
}

#[test]
fn at_most_500_items_are_taken() {
    let items: String = (0..600)
        .map(|i| format!("<item><title>Story {i}</title><link>https://a.example/{i}</link></item>"))
        .collect();
    let feed = parse_feed(&rss(&items), &FeedOrigin::file(Path::new("many.xml"))).unwrap();
    assert_eq!(feed.items.len(), MAX_ITEMS_PER_IMPORT);
    assert_eq!(feed.items[499].title, "Story 499");
    assert_eq!(
        feed.skipped.to_string(),
        "100 skipped: over the 500-item limit"
    );
}

#[test]
fn duplicate_ids_keep_the_first_item() {
    let items = "<item><title>One</title><link>https://a.example/1</link><guid>same</guid></item>\
                 <item><title>Two</title><link>https://a.example/2</link><guid>same</guid></item>";
    let feed = parse_feed(&rss(items), &FeedOrigin::file(Path::new("dup.xml"))).unwrap();
    assert_eq!(feed.items.len(), 1);
    assert_eq!(feed.items[0].title, "One");
    assert_eq!(feed.skipped.count(SkipReason::DuplicateId), 1);
}

#[test]
fn titles_are_cut_to_300_characters_and_sources_fall_back_to_the_host() {
    let long = "Orbit ".repeat(100);
    let bytes = format!(
        "<rss version=\"2.0\"><channel><link>https://www.site.example/</link>\
         <item><title>{long}</title><link>https://a.example/x</link></item></channel></rss>"
    );
    let origin = FeedOrigin::url(&Url::parse("https://feeds.site.example/rss").unwrap());
    let feed = parse_feed(bytes.as_bytes(), &origin).unwrap();
    assert_eq!(feed.items[0].title.chars().count(), MAX_TITLE_CHARS);
    assert_eq!(feed.source, "feeds.site.example");
}

#[test]
fn hand_given_story_urls_must_be_absolute_http() {
    assert!(story_url("https://nasa.example/a").is_ok());
    for bad in [
        "/relative",
        "ftp://x.example/",
        "javascript:alert(1)",
        "",
        "https://",
    ] {
        assert!(story_url(bad).is_err(), "{bad}");
    }
}

mod mutated_fixtures {
    use proptest::prelude::*;

    use super::*;
    use crate::feeds::sanitise::summary_html;

    const FIXTURES: [&str; 11] = [
        "atom.xml",
        "feed.json",
        "missing-fields.xml",
        "no-dates.xml",
        "not-a-feed.html",
        "rss1.rdf",
        "rss2-updated.xml",
        "rss2.xml",
        "script-and-handlers.xml",
        "truncated.xml",
        "wrong-encoding.xml",
    ];

    /// Pieces that break feeds in interesting ways: markup, prolog, encodings, multi-byte text.
    const SPLICES: [&[u8]; 14] = [
        b"<![CDATA[",
        b"]]>",
        b"<!--",
        b"<!DOCTYPE rss [<!ENTITY e \"x\">]>",
        b"&e;",
        b"<?xml version=\"1.0\" encoding=\"ISO-8859-1\"?>",
        b"\xef\xbb\xbf",
        b"\xff\xfe",
        "é€🚀".as_bytes(),
        b"<!\xc3\xa9\xc3\xa9\xc3\xa9\xc3\xa9",
        b"<script>alert(1)</script>",
        b"<a href=\"javascript:alert(1)\">x</a>",
        b"\"items\":[{\"url\":\"/x\",\"title\":\"t\"}]",
        b"\0",
    ];

    #[derive(Debug, Clone)]
    enum Mutation {
        Cut(prop::sample::Index),
        Delete(prop::sample::Index, usize),
        Flip(prop::sample::Index, u8),
        Splice(prop::sample::Index, prop::sample::Index),
    }

    fn mutation() -> impl Strategy<Value = Mutation> {
        prop_oneof![
            any::<prop::sample::Index>().prop_map(Mutation::Cut),
            (any::<prop::sample::Index>(), 1..64usize).prop_map(|(at, n)| Mutation::Delete(at, n)),
            (any::<prop::sample::Index>(), any::<u8>()).prop_map(|(at, b)| Mutation::Flip(at, b)),
            (any::<prop::sample::Index>(), any::<prop::sample::Index>())
                .prop_map(|(at, piece)| Mutation::Splice(at, piece)),
        ]
    }

    fn apply(bytes: &mut Vec<u8>, mutation: &Mutation) {
        let len = bytes.len();
        match mutation {
            Mutation::Cut(at) => bytes.truncate(at.index(len + 1)),
            Mutation::Delete(at, n) => {
                let from = at.index(len + 1);
                bytes.drain(from..(from + n).min(len));
            }
            Mutation::Flip(at, byte) if len > 0 => bytes[at.index(len)] = *byte,
            Mutation::Flip(..) => bytes.push(0),
            Mutation::Splice(at, piece) => {
                let at = at.index(len + 1);
                let piece = SPLICES[piece.index(SPLICES.len())];
                bytes.splice(at..at, piece.iter().copied());
            }
        }
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(256))]

        #[test]
        fn damaged_feeds_are_refused_or_read_safely(
            which in 0..FIXTURES.len(),
            mutations in prop::collection::vec(mutation(), 1..6),
        ) {
            let mut bytes = fixture(FIXTURES[which]);
            for mutation in &mutations {
                apply(&mut bytes, mutation);
            }
            let origin = FeedOrigin::url(&Url::parse("https://feeds.example/space.xml").unwrap());
            let Ok(feed) = parse_feed(&bytes, &origin) else {
                return Ok(());
            };
            prop_assert!(!feed.source.is_empty());
            for item in &feed.items {
                prop_assert!(!item.title.is_empty());
                prop_assert!(!item.title.chars().any(char::is_control), "{:?}", item.title);
                let url = Url::parse(&item.url).unwrap();
                prop_assert!(matches!(url.scheme(), "http" | "https"), "{}", url);
                prop_assert!(!item.summary_html.to_ascii_lowercase().contains("<script"));
                prop_assert!(!item.summary_html.to_ascii_lowercase().contains("javascript:"));
                prop_assert_eq!(summary_html(&item.summary_html, Some(&url)), item.summary_html.clone());
            }
        }
    }
}

#[test]
fn a_late_xml_declaration_is_a_clear_error_not_a_parser_panic() {
    // Found by fuzzing: feed-rs (quick-xml) panicked on this; the error must say why.
    let feed = rss("<item><title>T</title><link>https://site.example/a</link>\
         <description>x<?xml version=\"1.0\" encoding=\"ISO-8859-1\"?></description></item>");
    let error = parse_feed(&feed, &FeedOrigin::file(Path::new("late.xml"))).unwrap_err();
    assert!(
        matches!(&error, FeedError::MalformedXml(m) if m.contains("XML declaration")),
        "{error}"
    );
}

fn latin1_feed(prolog: &str) -> Vec<u8> {
    let body = "<rss version=\"2.0\"><channel><title>Caf\u{e9} Orbit</title>\
        <link>https://orbit.example/</link><item><title>Launch</title>\
        <link>https://orbit.example/1</link></item></channel></rss>";
    let mut feed = prolog.as_bytes().to_vec();
    feed.extend(body.chars().map(|c| u8::try_from(u32::from(c)).unwrap()));
    feed
}

#[test]
fn a_long_declaration_of_a_latin1_feed_is_read() {
    // feed-rs (quick-xml) switches encoding only within the first 64 bytes: a valid
    // declaration with spaces, or blank lines before it, made this a "not a feed".
    for prolog in [
        "<?xml version=\"1.0\"     encoding=\"ISO-8859-1\"     standalone=\"yes\"   ?>".to_owned(),
        format!(
            "{}<?xml version='1.0' encoding='windows-1252'?>",
            "\n".repeat(40)
        ),
    ] {
        let feed = parse_feed(&latin1_feed(&prolog), &FeedOrigin::file(Path::new("l.xml")))
            .unwrap_or_else(|e| panic!("{prolog:?}: {e}"));
        assert_eq!(feed.source, "Café Orbit");
        assert_eq!(feed.items.len(), 1);
    }
}

#[test]
fn a_malformed_declaration_is_a_clear_error_not_a_parser_panic() {
    // Found by the feed_import fuzz target: quick-xml panicked in `set_encoding` when the
    // declaration ran on past its first 64 bytes.
    let feed =
        b"<?xml version=\"1.0\" encoding=\"iso-8859-1\"?\"summary\":>\n<rss version=\"s/0</link>\
        <guid isPermaLink=\"false\">l-1</guid><pubDate>Sat, 21 Nov 2026 05:00:00 GMT</pubDate>\
        <description><![CDATA[<p>Lift-off <a href=\".iso-8859-1\"?>\n<rss vers]></description>\
        </item></channel></rss>\n";
    let error = parse_feed(feed, &FeedOrigin::file(Path::new("bad.xml"))).unwrap_err();
    assert!(
        matches!(&error, FeedError::MalformedXml(m) if m.contains("XML declaration")),
        "{error}"
    );
}

#[test]
fn a_declaration_after_a_broken_tag_is_a_clear_error_not_a_parser_panic() {
    // Found by the feed_import fuzz target (quick-xml's `set_encoding` panic again).
    let feed = rss("<i<![CDATA[tem>\n<?xml version=\"1.0\" encoding=\"ISO-8859-1\"?>titled");
    let error = parse_feed(&feed, &FeedOrigin::file(Path::new("late.xml"))).unwrap_err();
    assert!(
        matches!(&error, FeedError::MalformedXml(m) if m.contains("XML declaration")),
        "{error}"
    );
}

#[test]
fn a_json_array_is_not_a_feed_and_never_reaches_the_xml_parser() {
    // Found by the feed_import fuzz target: feed-rs picks JSON or XML by the first `{` or
    // `<` anywhere, so this "JSON" went to quick-xml, which panicked on its declaration.
    let bytes = b"[>?xml version=\"1.0\" e<?xml version=\"1.0\" encoding=\"ISO-8859-1\"?>../....example/</ <lmx?<r";
    let error = parse_feed(bytes, &FeedOrigin::file(Path::new("a.json"))).unwrap_err();
    assert!(
        matches!(&error, FeedError::NotAFeed(m) if m.contains("JSON Feed is an object")),
        "{error}"
    );
    let error = parse_feed(b"[{\"items\": []}]", &FeedOrigin::file(Path::new("a.json")));
    assert!(matches!(error, Err(FeedError::NotAFeed(_))), "{error:?}");
}
