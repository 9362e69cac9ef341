use std::fmt;

use serde::Serialize;

const MAX_LEN: usize = 50;

/// A newsletter's URL name: 1 to 50 lower-case letters, digits and single hyphens.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
#[serde(transparent)]
pub struct NewsletterSlug(String);

/// Why a slug was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum NewsletterSlugError {
    /// The slug is empty, too long, or uses characters outside `[a-z0-9-]`.
    #[error(
        "A newsletter slug is 1 to 50 lower-case letters, digits and single hyphens, like space-daily."
    )]
    Invalid,
}

impl NewsletterSlug {
    /// The slug of the newsletter a fresh install starts with.
    pub const DEFAULT: &str = "space-daily";

    /// Checks `^[a-z0-9]+(-[a-z0-9]+)*$`, at most 50 bytes.
    pub fn parse(raw: &str) -> Result<NewsletterSlug, NewsletterSlugError> {
        // No trimming or lower-casing: a slug is an identifier in URLs and the database,
        // so a near-miss should be an error, not silently become another newsletter.
        if is_valid_slug(raw) {
            Ok(NewsletterSlug(raw.to_owned()))
        } else {
            Err(NewsletterSlugError::Invalid)
        }
    }

    /// The slug as used in URLs.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// Splitting on '-' gives an empty segment exactly for a leading, trailing or double hyphen.
fn is_valid_slug(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= MAX_LEN
        && s.split('-').all(|segment| {
            !segment.is_empty()
                && segment
                    .bytes()
                    .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit())
        })
}

/// The slug of the newsletter a fresh install starts with, `space-daily`.
pub fn default_slug() -> NewsletterSlug {
    NewsletterSlug(NewsletterSlug::DEFAULT.to_owned())
}

impl Default for NewsletterSlug {
    fn default() -> Self {
        default_slug()
    }
}

impl AsRef<str> for NewsletterSlug {
    fn as_ref(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for NewsletterSlug {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl TryFrom<&str> for NewsletterSlug {
    type Error = NewsletterSlugError;

    fn try_from(raw: &str) -> Result<Self, Self::Error> {
        Self::parse(raw)
    }
}

impl TryFrom<String> for NewsletterSlug {
    type Error = NewsletterSlugError;

    fn try_from(raw: String) -> Result<Self, Self::Error> {
        Self::parse(&raw)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn default_is_itself_a_valid_slug() {
        assert_eq!(
            NewsletterSlug::parse(NewsletterSlug::DEFAULT),
            Ok(default_slug())
        );
        assert_eq!(NewsletterSlug::default().as_str(), "space-daily");
    }

    #[test]
    fn accepts_well_formed_slugs() {
        for raw in [
            "a",
            "0",
            "space-daily",
            "mars-2030",
            "a-b-c-d",
            "x1y2",
            &"a".repeat(50),
        ] {
            let slug = NewsletterSlug::parse(raw).unwrap();
            assert_eq!(slug.as_str(), raw);
            assert_eq!(slug.to_string(), raw);
        }
    }

    #[test]
    fn rejects_malformed_slugs() {
        let too_long = "a".repeat(51);
        for raw in [
            "",
            "-",
            "-a",
            "a-",
            "a--b",
            "Space-Daily",
            "space_daily",
            "space daily",
            " a",
            "a ",
            "ümlaut",
            "a/b",
            "a.b",
            "a\n",
            &too_long,
        ] {
            assert_eq!(
                NewsletterSlug::parse(raw),
                Err(NewsletterSlugError::Invalid),
                "{raw:?}"
            );
        }
    }

    #[test]
    fn try_from_delegates_to_parse() {
        assert_eq!(
            NewsletterSlug::try_from("a-b"),
            NewsletterSlug::parse("a-b")
        );
        assert_eq!(
            NewsletterSlug::try_from(String::from("A")),
            Err(NewsletterSlugError::Invalid)
        );
    }

    proptest! {
        #[test]
        fn generated_slugs_are_accepted(raw in "[a-z0-9]{1,10}(-[a-z0-9]{1,9}){0,3}") {
            prop_assert_eq!(NewsletterSlug::parse(&raw).map(|s| s.as_str().to_owned()), Ok(raw));
        }

        #[test]
        fn accepted_slugs_match_the_pattern(raw in prop_oneof![any::<String>(), "[a-zA-Z0-9_ -]{0,60}"]) {
            if let Ok(slug) = NewsletterSlug::parse(&raw) {
                let s = slug.as_str();
                prop_assert!(!s.is_empty() && s.len() <= MAX_LEN);
                prop_assert!(s.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-'));
                prop_assert!(!s.starts_with('-') && !s.ends_with('-') && !s.contains("--"));
            }
        }
    }
}
