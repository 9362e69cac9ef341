use std::fmt;

use serde::Serialize;

const MAX_CHARS: usize = 100;

/// A subscriber's optional display name, trimmed and free of control or invisible characters.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize)]
#[serde(transparent)]
pub struct SubscriberName(String);

/// Why a typed name was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum NameError {
    /// The name is over 100 characters.
    #[error("Your name can be at most 100 characters.")]
    TooLong,
    /// The name holds a line break, tab or other control character.
    #[error("Your name cannot contain line breaks or control characters.")]
    ControlCharacters,
    /// The name holds a zero-width or bidi formatting character.
    #[error("Your name cannot contain invisible formatting characters.")]
    InvisibleCharacters,
}

impl SubscriberName {
    /// Trims and checks a typed name; a blank field means "no name", not an error.
    pub fn parse(raw: &str) -> Result<Option<SubscriberName>, NameError> {
        let trimmed = raw.trim();
        if trimmed.is_empty() {
            return Ok(None);
        }
        // Characters, not bytes: a limit that punished accented names would be unfair.
        if trimmed.chars().count() > MAX_CHARS {
            return Err(NameError::TooLong);
        }
        // The name goes into a From/To display name; a line break there is header injection.
        if trimmed.chars().any(char::is_control) {
            return Err(NameError::ControlCharacters);
        }
        // These let a name reorder or hide text around it in the admin list and in mail
        // clients. HTML-ish characters stay allowed: escaping is the templates' job.
        if trimmed.chars().any(is_invisible_formatting) {
            return Err(NameError::InvisibleCharacters);
        }
        Ok(Some(SubscriberName(trimmed.to_owned())))
    }

    /// The name as typed, without surrounding whitespace.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

fn is_invisible_formatting(c: char) -> bool {
    matches!(
        c,
        '\u{200B}'..='\u{200F}'
            | '\u{202A}'..='\u{202E}'
            | '\u{2060}'..='\u{2064}'
            | '\u{2066}'..='\u{2069}'
            | '\u{FEFF}'
    )
}

impl AsRef<str> for SubscriberName {
    fn as_ref(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for SubscriberName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn name(raw: &str) -> Option<String> {
        SubscriberName::parse(raw)
            .unwrap_or_else(|e| panic!("{raw:?} should be accepted, got {e:?}"))
            .map(|n| n.as_str().to_owned())
    }

    #[test]
    fn blank_means_no_name() {
        assert_eq!(name(""), None);
        assert_eq!(name("   "), None);
        assert_eq!(name(" \t\r\n "), None);
    }

    #[test]
    fn accepts_real_names_and_trims() {
        let cases = [
            ("  Ada Lovelace ", "Ada Lovelace"),
            ("José Müller-Lüdenscheidt", "José Müller-Lüdenscheidt"),
            ("Zoë O'Brien", "Zoë O'Brien"),
            ("山田 太郎", "山田 太郎"),
            ("محمد", "محمد"),
            ("Ana \"the Rocket\" 🚀", "Ana \"the Rocket\" 🚀"),
            ("<script>alert(1)</script>", "<script>alert(1)</script>"),
            ("Dr. R. & Co.", "Dr. R. & Co."),
            ("\tAda\n", "Ada"),
        ];
        for (raw, stored) in cases {
            assert_eq!(name(raw).as_deref(), Some(stored), "{raw:?}");
        }
    }

    #[test]
    fn limit_is_100_characters_not_bytes() {
        let hundred = "é".repeat(100);
        assert_eq!(name(&hundred), Some(hundred.clone()));
        assert_eq!(
            SubscriberName::parse(&"é".repeat(101)),
            Err(NameError::TooLong)
        );
    }

    #[test]
    fn rejects_control_characters_inside() {
        for raw in [
            "Ada\nBcc: x@y.com",
            "Ada\r\nLovelace",
            "A\tB",
            "A\0B",
            "A\u{7f}",
            "A\u{85}B",
        ] {
            assert_eq!(
                SubscriberName::parse(raw),
                Err(NameError::ControlCharacters),
                "{raw:?}"
            );
        }
    }

    #[test]
    fn rejects_invisible_formatting() {
        for c in [
            '\u{200B}', '\u{200F}', '\u{202A}', '\u{202E}', '\u{2060}', '\u{2064}', '\u{2066}',
            '\u{2069}', '\u{FEFF}',
        ] {
            let raw = format!("Ada{c}Lovelace");
            assert_eq!(
                SubscriberName::parse(&raw),
                Err(NameError::InvisibleCharacters),
                "{raw:?}"
            );
        }
        // A zero-width space is not whitespace to `trim`, so it cannot hide at the edges.
        assert_eq!(
            SubscriberName::parse("\u{200B}Ada"),
            Err(NameError::InvisibleCharacters)
        );
    }

    #[test]
    fn display_and_as_ref_match() {
        let n = SubscriberName::parse("Ada").unwrap().unwrap();
        assert_eq!(n.to_string(), "Ada");
        assert_eq!(n.as_ref(), "Ada");
    }

    proptest! {
        #[test]
        fn accepted_names_are_short_and_clean(raw in prop_oneof![
            any::<String>(),
            "[\\PC\\p{Cc}\\p{Cf}]{0,120}",
        ]) {
            if let Ok(Some(n)) = SubscriberName::parse(&raw) {
                prop_assert!(n.as_str().chars().count() <= MAX_CHARS);
                prop_assert!(!n.as_str().chars().any(char::is_control));
                prop_assert!(!n.as_str().chars().any(is_invisible_formatting));
                prop_assert_eq!(n.as_str(), n.as_str().trim());
            }
        }

        #[test]
        fn printable_names_up_to_100_are_accepted(raw in "\\PC{1,100}") {
            // `\PC` excludes every control and format character, so nothing is refused.
            let parsed = SubscriberName::parse(&raw);
            let expected = Some(raw.trim()).filter(|t| !t.is_empty()).map(str::to_owned);
            prop_assert_eq!(parsed.map(|n| n.map(|n| n.as_str().to_owned())), Ok(expected));
        }

        #[test]
        fn over_100_non_space_chars_are_rejected(raw in "\\S{101,200}") {
            prop_assert_eq!(SubscriberName::parse(&raw), Err(NameError::TooLong));
        }
    }
}
