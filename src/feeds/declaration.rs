//! The XML declaration, read strictly and handed to the feed parser in its shortest form.
//! quick-xml (under feed-rs) can switch from UTF-8 to a declared encoding only while it is
//! within the document's first 64 bytes: a valid declaration with generous spacing, or
//! blank lines before it, left a Latin-1 feed decoded as UTF-8 ("not a feed"), and a
//! declaration that runs on made it panic, and so did a second declaration later on.

use std::borrow::Cow;

use super::FeedError;

/// The document with its declaration rewritten as `<?xml version="…" encoding="…"?>` at
/// the start (after a UTF-8 byte order mark); unchanged when it has none or is UTF-16.
pub(super) fn for_parser(bytes: &[u8]) -> Result<Cow<'_, [u8]>, FeedError> {
    let bom = if bytes.starts_with(b"\xef\xbb\xbf") {
        3
    } else if bytes.starts_with(b"\xfe\xff") || bytes.starts_with(b"\xff\xfe") {
        // The byte order mark fixes the encoding; quick-xml reads no declaration for it.
        return Ok(Cow::Borrowed(bytes));
    } else {
        0
    };
    let start = bom
        + bytes[bom..]
            .iter()
            .position(|b| !b.is_ascii_whitespace())
            .unwrap_or(bytes.len() - bom);
    let rest = &bytes[start..];
    if !is_declaration(rest) {
        return Ok(Cow::Borrowed(bytes));
    }
    let end = rest
        .windows(2)
        .position(|w| w == b"?>")
        .ok_or_else(|| FeedError::Truncated("the document ends inside its prolog".to_owned()))?;
    let declaration = parse(&rest[5..end]).ok_or_else(|| {
        FeedError::MalformedXml(
            "the XML declaration (<?xml …?>) is malformed: it may hold only version, \
             encoding and standalone"
                .to_owned(),
        )
    })?;
    let mut out = bytes[..bom].to_vec();
    out.extend_from_slice(b"<?xml version=\"");
    out.extend_from_slice(declaration.version.as_bytes());
    out.push(b'"');
    if let Some(encoding) = declaration.encoding {
        out.extend_from_slice(b" encoding=\"");
        out.extend_from_slice(encoding.as_bytes());
        out.push(b'"');
    }
    out.extend_from_slice(b"?>");
    out.extend_from_slice(&rest[end + 2..]);
    Ok(Cow::Owned(out))
}

/// XML allows its declaration only at the very start. quick-xml panics when a later one
/// names an encoding (found by fuzzing), and walking the document as quick-xml tokenises it
/// proved a chase (broken tags, stray doctypes, `<!-->`): so any `<?xml ` after the start
/// is refused, even inside a comment or CDATA section, where a feed has no need of one.
pub(super) fn check_no_late_declaration(body: &str) -> Result<(), FeedError> {
    let bytes = body.as_bytes();
    let late = (1..bytes.len()).any(|at| bytes[at] == b'<' && is_declaration(&bytes[at..]));
    if late {
        return Err(FeedError::MalformedXml(
            "an XML declaration (<?xml …?>) after the start of the document".to_owned(),
        ));
    }
    Ok(())
}

/// `<?xml` followed by a space or `?>`; `<?xml-stylesheet …?>` is another instruction.
fn is_declaration(s: &[u8]) -> bool {
    s.len() > 5
        && s[..5].eq_ignore_ascii_case(b"<?xml")
        && (s[5].is_ascii_whitespace() || s[5] == b'?')
}

struct Declaration<'a> {
    version: &'a str,
    encoding: Option<&'a str>,
}

/// The pseudo-attributes between `<?xml` and `?>`, in the order XML 1.0 requires:
/// `version`, then optionally `encoding` and `standalone`, each at most once.
fn parse(inner: &[u8]) -> Option<Declaration<'_>> {
    let inner = std::str::from_utf8(inner).ok()?;
    let mut rest = inner;
    let mut found: Vec<(&str, &str)> = Vec::new();
    loop {
        let trimmed = rest.trim_start_matches(is_space);
        if trimmed.is_empty() {
            break;
        }
        // Each pseudo-attribute follows white space.
        if trimmed.len() == rest.len() {
            return None;
        }
        let name_end = trimmed.find(|c: char| is_space(c) || c == '=')?;
        let (name, after) = trimmed.split_at(name_end);
        let after = after.trim_start_matches(is_space).strip_prefix('=')?;
        let after = after.trim_start_matches(is_space);
        let quote = after.chars().next().filter(|c| matches!(c, '"' | '\''))?;
        let value_end = after[1..].find(quote)?;
        found.push((name, &after[1..1 + value_end]));
        rest = &after[1 + value_end + 1..];
    }
    let mut attributes = found.into_iter().peekable();
    let version = attributes.next().filter(|(n, _)| *n == "version")?.1;
    let encoding = attributes
        .next_if(|(n, _)| *n == "encoding")
        .map(|(_, v)| v);
    let standalone = attributes.next_if(|(n, _)| *n == "standalone");
    let valid_version = version
        .strip_prefix("1.")
        .is_some_and(|minor| !minor.is_empty() && minor.bytes().all(|b| b.is_ascii_digit()));
    let valid_encoding = encoding.is_none_or(|e| {
        e.len() <= 40
            && e.starts_with(|c: char| c.is_ascii_alphabetic())
            && e.bytes()
                .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-'))
    });
    let valid_standalone = standalone.is_none_or(|(_, v)| matches!(v, "yes" | "no"));
    (attributes.next().is_none() && valid_version && valid_encoding && valid_standalone)
        .then_some(Declaration { version, encoding })
}

fn is_space(c: char) -> bool {
    matches!(c, ' ' | '\t' | '\r' | '\n')
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rewritten(doc: &str) -> String {
        String::from_utf8(for_parser(doc.as_bytes()).unwrap().into_owned()).unwrap()
    }

    #[test]
    fn declarations_are_rewritten_short_and_first() {
        assert_eq!(
            rewritten(
                "\n\n  <?xml  version = '1.0'\n encoding=\"ISO-8859-1\"  standalone='yes' ?><rss/>"
            ),
            "<?xml version=\"1.0\" encoding=\"ISO-8859-1\"?><rss/>"
        );
        assert_eq!(
            rewritten("\u{feff}<?xml version=\"1.1\"?>\n<feed/>"),
            "\u{feff}<?xml version=\"1.1\"?>\n<feed/>"
        );
        // Nothing to rewrite: no declaration, another instruction, JSON.
        for doc in [
            "<rss/>",
            "<?xml-stylesheet href=\"a\"?><rss/>",
            "{\"version\": 1}",
        ] {
            assert!(
                matches!(for_parser(doc.as_bytes()), Ok(Cow::Borrowed(_))),
                "{doc}"
            );
        }
    }

    #[test]
    fn malformed_declarations_are_refused() {
        for doc in [
            "<?xml?><rss/>",
            "<?xml encoding=\"UTF-8\"?><rss/>",
            "<?xml version=\"1.0\"encoding=\"UTF-8\"?><rss/>",
            "<?xml version=\"1.0\" encoding=\"UTF-8\" version=\"1.0\"?><rss/>",
            "<?xml version=\"1.0\" standalone=\"yes\" encoding=\"UTF-8\"?><rss/>",
            "<?xml version=\"2.0\"?><rss/>",
            "<?xml version=\"1.0\" encoding=\"\"?><rss/>",
            "<?xml version=\"1.0\" encoding=\"x y\"?><rss/>",
            "<?xml version=\"1.0\" standalone=\"maybe\"?><rss/>",
            "<?xml version=\"1.0\" encoding=\"iso-8859-1\"?\"summary\":>\n<rss a=\"x\"?><rss/>",
            "<?xml version=\"1.0\" encoding=\"\u{e9}\"?><rss/>",
        ] {
            let error = for_parser(doc.as_bytes()).unwrap_err().to_string();
            assert!(error.contains("XML declaration"), "{doc:?}: {error}");
        }
        assert!(
            for_parser(b"<?xml version=\"1.0\"")
                .unwrap_err()
                .to_string()
                .contains("prolog")
        );
    }
}
