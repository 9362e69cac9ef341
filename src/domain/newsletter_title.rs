use std::fmt;

use serde::Serialize;

const MAX_CHARS: usize = 100;

/// A newsletter's human-readable title, trimmed, 1 to 100 characters, one line.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize)]
#[serde(transparent)]
pub struct NewsletterTitle(String);

/// Why a title was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum NewsletterTitleError {
    /// Nothing but whitespace was typed.
    #[error("Give the newsletter a title.")]
    Empty,
    /// The title is over 100 characters.
    #[error("A newsletter title can be at most 100 characters.")]
    TooLong,
    /// The title holds a line break, tab or other control character.
    #[error("A newsletter title cannot contain line breaks or control characters.")]
    ControlCharacters,
}

impl NewsletterTitle {
    /// Trims and checks a typed title.
    pub fn parse(raw: &str) -> Result<NewsletterTitle, NewsletterTitleError> {
        let trimmed = raw.trim();
        if trimmed.is_empty() {
            return Err(NewsletterTitleError::Empty);
        }
        if trimmed.chars().count() > MAX_CHARS {
            return Err(NewsletterTitleError::TooLong);
        }
        // The title ends up in the Subject header of every digest.
        if trimmed.chars().any(char::is_control) {
            return Err(NewsletterTitleError::ControlCharacters);
        }
        Ok(NewsletterTitle(trimmed.to_owned()))
    }

    /// The title without surrounding whitespace.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl AsRef<str> for NewsletterTitle {
    fn as_ref(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for NewsletterTitle {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl TryFrom<&str> for NewsletterTitle {
    type Error = NewsletterTitleError;

    fn try_from(raw: &str) -> Result<Self, Self::Error> {
        Self::parse(raw)
    }
}

impl TryFrom<String> for NewsletterTitle {
    type Error = NewsletterTitleError;

    fn try_from(raw: String) -> Result<Self, Self::Error> {
        Self::parse(&raw)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn accepts_and_trims() {
        let cases = [
            ("Space Daily", "Space Daily"),
            ("  Space Daily\n", "Space Daily"),
            ("Mars & Beyond <weekly>", "Mars & Beyond <weekly>"),
            ("Ĉielo 🚀 今日", "Ĉielo 🚀 今日"),
        ];
        for (raw, stored) in cases {
            let title = NewsletterTitle::parse(raw).unwrap();
            assert_eq!(title.as_str(), stored);
            assert_eq!(title.to_string(), stored);
        }
        let hundred = "ü".repeat(100);
        assert_eq!(NewsletterTitle::parse(&hundred).unwrap().as_str(), hundred);
    }

    #[test]
    fn rejects_bad_titles() {
        use NewsletterTitleError::*;
        let too_long = "ü".repeat(101);
        for (raw, expected) in [
            ("", Empty),
            (" \t\n ", Empty),
            (too_long.as_str(), TooLong),
            ("Space\nDaily", ControlCharacters),
            ("Space\r\nBcc: x@y.com", ControlCharacters),
            ("Space\u{0}Daily", ControlCharacters),
        ] {
            assert_eq!(NewsletterTitle::parse(raw), Err(expected), "{raw:?}");
        }
        assert_eq!(Empty.to_string(), "Give the newsletter a title.");
    }

    #[test]
    fn try_from_delegates_to_parse() {
        assert_eq!(
            NewsletterTitle::try_from(" T "),
            NewsletterTitle::parse("T")
        );
        assert_eq!(
            NewsletterTitle::try_from(String::new()),
            Err(NewsletterTitleError::Empty)
        );
    }

    proptest! {
        #[test]
        fn accepted_titles_are_trimmed_short_and_one_line(raw in any::<String>()) {
            if let Ok(title) = NewsletterTitle::parse(&raw) {
                let s = title.as_str();
                prop_assert!(!s.is_empty() && s.chars().count() <= MAX_CHARS);
                prop_assert!(!s.chars().any(char::is_control));
                prop_assert_eq!(s, s.trim());
                prop_assert_eq!(NewsletterTitle::parse(s), Ok(title.clone()));
            }
        }

        #[test]
        fn printable_titles_are_accepted(raw in "\\PC{1,100}") {
            prop_assume!(!raw.trim().is_empty());
            prop_assert_eq!(NewsletterTitle::parse(&raw).map(|t| t.as_str().to_owned()), Ok(raw.trim().to_owned()));
        }
    }
}
