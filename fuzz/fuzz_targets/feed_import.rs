//! Feed bytes through the path `stories import` takes (`feeds::parse_feed`: the checks on
//! the raw bytes, feed-rs, then every field checked and sanitised). Whatever it accepts is
//! safe to store and show.

#![no_main]

use libfuzzer_sys::fuzz_target;
use spacedigest::feeds::sanitise::MAX_TITLE_CHARS;
use spacedigest::feeds::{FeedOrigin, MAX_ITEMS_PER_IMPORT, parse_feed};
use spacedigest_fuzz_support::check_summary;
use url::Url;

fuzz_target!(|data: &[u8]| {
    let feed_url = Url::parse("https://feeds.example.com/space/feed.xml").expect("a URL");
    let Ok(feed) = parse_feed(data, &FeedOrigin::url(&feed_url)) else {
        return;
    };
    assert!(!feed.source.is_empty());
    assert!(feed.source.chars().count() <= 100, "{:?}", feed.source);
    assert!(feed.items.len() <= MAX_ITEMS_PER_IMPORT);
    let mut guids = std::collections::HashSet::new();
    for item in &feed.items {
        assert!(guids.insert(&item.guid), "guid {:?} twice", item.guid);
        assert!(!item.title.is_empty());
        assert!(
            item.title.chars().count() <= MAX_TITLE_CHARS,
            "{:?}",
            item.title
        );
        assert!(
            !item.title.chars().any(char::is_control),
            "{:?}",
            item.title
        );
        let url = Url::parse(&item.url).unwrap_or_else(|e| panic!("{:?}: {e}", item.url));
        assert!(matches!(url.scheme(), "http" | "https"), "{url}");
        // Summaries are sanitised against the story's own link.
        check_summary(&item.summary_html, Some(&url));
    }
});
