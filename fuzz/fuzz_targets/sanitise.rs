//! The sanitiser on its own, on any text: summaries as HTML and as plain text, and titles.

#![no_main]

use libfuzzer_sys::fuzz_target;
use spacedigest::feeds::sanitise::{plain_text, summary_from_text, summary_html};
use spacedigest_fuzz_support::check_summary;
use url::Url;

fuzz_target!(|data: &[u8]| {
    let Ok(untrusted) = std::str::from_utf8(data) else {
        return;
    };
    let base = Url::parse("https://news.example.com/2026/story").expect("a URL");
    for base in [Some(&base), None] {
        check_summary(&summary_html(untrusted, base), base);
        check_summary(&summary_from_text(untrusted, base), base);
    }
    let title = plain_text(untrusted, 80);
    assert!(title.chars().count() <= 80, "{title:?}");
    assert!(!title.chars().any(char::is_control), "{title:?}");
    assert_eq!(title, title.trim());
    assert!(!title.contains("  "), "{title:?}");
});
