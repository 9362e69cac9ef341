//! Strict `application/x-www-form-urlencoded` parsing. Lenient decoders pass broken
//! escapes through and replace invalid UTF-8; here both are errors the client is told about.

use percent_encoding::percent_decode;

/// Why a form body was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum FormError {
    /// A `%` not followed by two hex digits.
    #[error("the form data has a broken percent-encoding")]
    BrokenEncoding,
    /// Bytes that are not UTF-8, raw or after decoding.
    #[error("the form data is not valid UTF-8")]
    InvalidUtf8,
    /// A single-valued field given twice.
    #[error("the field {0} was given more than once")]
    Repeated(String),
}

/// Decodes a whole body into name/value pairs, in order.
pub fn parse_pairs(body: &[u8]) -> Result<Vec<(String, String)>, FormError> {
    body.split(|b| *b == b'&')
        .filter(|part| !part.is_empty())
        .map(|part| {
            let mut halves = part.splitn(2, |b| *b == b'=');
            let name = decode(halves.next().unwrap_or_default())?;
            let value = decode(halves.next().unwrap_or_default())?;
            Ok((name, value))
        })
        .collect()
}

fn decode(raw: &[u8]) -> Result<String, FormError> {
    let mut bytes = raw.iter();
    while let Some(b) = bytes.next() {
        if *b == b'%' {
            let hex = (bytes.next(), bytes.next());
            if !matches!(hex, (Some(h), Some(l)) if h.is_ascii_hexdigit() && l.is_ascii_hexdigit())
            {
                return Err(FormError::BrokenEncoding);
            }
        }
    }
    let plus_as_space: Vec<u8> = raw
        .iter()
        .map(|b| if *b == b'+' { b' ' } else { *b })
        .collect();
    let decoded: Vec<u8> = percent_decode(&plus_as_space).collect();
    String::from_utf8(decoded).map_err(|_| FormError::InvalidUtf8)
}

/// The one value of a single-valued field, refusing repeats.
pub fn single(pairs: &[(String, String)], name: &str) -> Result<Option<String>, FormError> {
    let mut values = pairs.iter().filter(|(n, _)| n == name).map(|(_, v)| v);
    let first = values.next().cloned();
    if values.next().is_some() {
        return Err(FormError::Repeated(name.to_owned()));
    }
    Ok(first)
}

/// Every value of a repeatable field; `None` when it is absent.
pub fn multiple(pairs: &[(String, String)], name: &str) -> Option<Vec<String>> {
    let values: Vec<String> = pairs
        .iter()
        .filter(|(n, _)| n == name)
        .map(|(_, v)| v.clone())
        .collect();
    (!values.is_empty()).then_some(values)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn decodes_like_a_browser_encodes() {
        let pairs =
            parse_pairs(b"email=a%40b.com&name=J%C3%B6rg+Smith&newsletters=x&newsletters=y&flag")
                .unwrap();
        assert_eq!(single(&pairs, "email").unwrap().as_deref(), Some("a@b.com"));
        assert_eq!(
            single(&pairs, "name").unwrap().as_deref(),
            Some("Jörg Smith")
        );
        assert_eq!(multiple(&pairs, "newsletters").unwrap(), vec!["x", "y"]);
        assert_eq!(single(&pairs, "flag").unwrap().as_deref(), Some(""));
        assert_eq!(multiple(&pairs, "absent"), None);
    }

    #[test]
    fn refuses_what_lenient_parsers_let_through() {
        assert_eq!(parse_pairs(b"email=%zz"), Err(FormError::BrokenEncoding));
        assert_eq!(parse_pairs(b"email=%4"), Err(FormError::BrokenEncoding));
        assert_eq!(parse_pairs(b"email=%C3%28"), Err(FormError::InvalidUtf8));
        assert_eq!(parse_pairs(b"email=\xff"), Err(FormError::InvalidUtf8));
        let pairs = parse_pairs(b"email=a&email=b").unwrap();
        assert_eq!(
            single(&pairs, "email"),
            Err(FormError::Repeated("email".into()))
        );
    }

    proptest! {
        #[test]
        fn what_url_encoding_writes_decodes_back(name in "\\PC{0,20}", value in "\\PC{0,60}") {
            let body = format!(
                "{}={}",
                percent_encoding::utf8_percent_encode(&name, percent_encoding::NON_ALPHANUMERIC),
                percent_encoding::utf8_percent_encode(&value, percent_encoding::NON_ALPHANUMERIC)
            );
            let pairs = parse_pairs(body.as_bytes()).unwrap();
            if !name.is_empty() || !value.is_empty() {
                prop_assert_eq!(pairs, vec![(name, value)]);
            }
        }

        #[test]
        fn never_panics(body in proptest::collection::vec(any::<u8>(), 0..200)) {
            let _ = parse_pairs(&body);
        }
    }
}
