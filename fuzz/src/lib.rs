//! What several fuzz targets share: a fixed list of newsletters and the properties every
//! validated signup must have.

use spacedigest::db::newsletters::Newsletter;
use spacedigest::domain::{NewsletterSlug, SubscriberEmail, SubscriberName};
use spacedigest::web::signup_input::{self, SignupInput};

/// Three newsletters, the default among them; the dictionaries name all three.
pub fn catalogue() -> Vec<Newsletter> {
    ["launch-weekly", NewsletterSlug::DEFAULT, "mars-notes"]
        .into_iter()
        .zip(1..)
        .map(|(slug, id)| Newsletter {
            id,
            slug: slug.to_owned(),
            title: slug.to_owned(),
            description: String::new(),
            send_at: "07:00".to_owned(),
            timezone: "UTC".to_owned(),
            created_at: chrono::DateTime::UNIX_EPOCH.naive_utc(),
        })
        .collect()
}

/// Validates `input` and checks the outcome: an accepted signup is exactly what was
/// typed, for known newsletters only, each once; a refused one says why.
pub fn check_validation(input: &SignupInput, all: &[Newsletter]) {
    match signup_input::validate(input, all, None) {
        Ok(request) => {
            assert_eq!(
                Ok(&request.email),
                SubscriberEmail::parse(&input.email).as_ref()
            );
            assert_eq!(
                Ok(&request.name),
                SubscriberName::parse(&input.name).as_ref()
            );
            assert!(
                !request.newsletters.is_empty(),
                "accepted with no newsletter"
            );
            for (i, chosen) in request.newsletters.iter().enumerate() {
                assert!(
                    all.iter().any(|n| n.id == chosen.id),
                    "{chosen:?} is unknown"
                );
                assert!(
                    request.newsletters[..i].iter().all(|n| n.id != chosen.id),
                    "{} chosen twice",
                    chosen.slug
                );
                if let Some(named) = &input.newsletters {
                    assert!(
                        named.contains(&chosen.slug),
                        "{} was not asked for",
                        chosen.slug
                    );
                }
            }
            if input.newsletters.is_none() {
                assert_eq!(request.newsletters.len(), 1);
                assert_eq!(request.newsletters[0].slug, NewsletterSlug::DEFAULT);
            }
        }
        Err(errors) => assert!(!errors.is_empty(), "refused without a reason: {input:?}"),
    }
}

/// Elements a stored summary may contain (the sanitiser's allowlist).
const SUMMARY_TAGS: [&str; 12] = [
    "p",
    "br",
    "a",
    "em",
    "strong",
    "b",
    "i",
    "ul",
    "ol",
    "li",
    "blockquote",
    "code",
];

/// Checks sanitised summary HTML: only allowlisted elements, no attribute but `href` and
/// `rel` on links, links only to http(s) and mailto, no control characters, and sanitising
/// it again changes nothing.
pub fn check_summary(html: &str, base: Option<&url::Url>) {
    let lower = html.to_ascii_lowercase();
    assert!(!lower.contains("<script"), "{html:?}");
    assert!(
        !html
            .chars()
            .any(|c| c.is_control() && !matches!(c, '\t' | '\n' | '\r')),
        "a control character in {html:?}"
    );
    let mut rest = html;
    while let Some(at) = rest.find('<') {
        let tag = &rest[at + 1..];
        let end = tag
            .find('>')
            .unwrap_or_else(|| panic!("an unclosed tag in {html:?}"));
        let tag = &tag[..end];
        let tag = tag.strip_prefix('/').unwrap_or(tag);
        let name = tag.split(' ').next().unwrap_or_default();
        assert!(SUMMARY_TAGS.contains(&name), "<{name}> in {html:?}");
        let attributes = tag[name.len()..].trim();
        if !attributes.is_empty() {
            assert_eq!(name, "a", "attributes on <{name}> in {html:?}");
            for attribute in attributes.split("\" ") {
                let (key, value) = attribute.split_once("=\"").unwrap_or((attribute, ""));
                match key {
                    "href" => {
                        // As a mail client reads it: `https:host/x` is https://host/x.
                        // The serialiser escapes `"`, no-break spaces and `&` in attributes.
                        let href = value
                            .trim_end_matches('"')
                            .replace("&quot;", "\"")
                            .replace("&nbsp;", "\u{a0}")
                            .replace("&amp;", "&");
                        let url = url::Url::parse(&href)
                            .unwrap_or_else(|e| panic!("href {href:?} in {html:?}: {e}"));
                        assert!(
                            ["http", "https", "mailto"].contains(&url.scheme()),
                            "href {href:?} in {html:?}"
                        );
                    }
                    "rel" => {}
                    other => panic!("attribute {other:?} in {html:?}"),
                }
            }
        }
        rest = &rest[at + 1 + end..];
    }
    let again = spacedigest::feeds::sanitise::summary_html(html, base);
    assert_eq!(again, html, "sanitising a summary twice changed it");
}
