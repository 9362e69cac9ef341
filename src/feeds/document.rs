//! Checks on the raw bytes before the feed parser sees them. The parser is forgiving: it
//! decodes invalid bytes to U+FFFD and stops quietly at the end of a cut-off document, so
//! a damaged feed would otherwise be stored as garbage or as half of itself.

use std::borrow::Cow;

use super::FeedError;
use super::declaration;

/// What the bytes look like.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) enum Shape {
    /// An XML document whose root element has this (possibly prefixed) name.
    Xml { root: String },
    /// A JSON document.
    Json,
}

/// Refuses empty, mis-encoded, HTML and cut-off documents; otherwise says which kind it is.
pub(super) fn inspect(bytes: &[u8]) -> Result<Shape, FeedError> {
    let has_bom = [&b"\xef\xbb\xbf"[..], b"\xfe\xff", b"\xff\xfe"]
        .iter()
        .any(|bom| bytes.starts_with(bom));
    if !has_bom {
        // Binary files and plain text are refused before any talk of encodings.
        match bytes.iter().find(|b| !b.is_ascii_whitespace()) {
            None => return Err(FeedError::Empty),
            Some(b'<' | b'{' | b'[') => {}
            Some(_) => return Err(neither_xml_nor_json()),
        }
    }
    let (text, declared) = decode_for_inspection(bytes)?;
    let body = text.trim_start_matches(|c: char| c.is_whitespace() || c == '\u{feff}');
    match body.chars().next() {
        None => Err(FeedError::Empty),
        // feed-rs sends a document to its JSON parser only when a `{` comes before any
        // `<`; an array would go to the XML parser, so it is refused here.
        Some('[') => Err(FeedError::NotAFeed(
            "JSON, but not a JSON Feed: a JSON Feed is an object, {…}".to_owned(),
        )),
        Some('{') => {
            if declared.is_some() {
                // A JSON Feed is UTF-8 by definition (RFC 8259); a BOM-marked UTF-16
                // document is something else.
                return Err(FeedError::Encoding(
                    "a JSON Feed must be UTF-8 encoded".to_owned(),
                ));
            }
            Ok(Shape::Json)
        }
        Some('<') => {
            let root = root_element(body)?;
            check_complete(body, &root)?;
            declaration::check_no_late_declaration(body)?;
            Ok(Shape::Xml { root: root.name })
        }
        Some(_) => Err(neither_xml_nor_json()),
    }
}

fn neither_xml_nor_json() -> FeedError {
    FeedError::NotAFeed("the content is neither XML nor JSON".to_owned())
}

/// The document as text for the structural checks, plus the non-UTF-8 encoding it is in.
/// Structure is ASCII, so a single-byte encoding can be viewed byte by byte.
fn decode_for_inspection(bytes: &[u8]) -> Result<(Cow<'_, str>, Option<String>), FeedError> {
    if let Some(rest) = bytes.strip_prefix(b"\xef\xbb\xbf") {
        return utf8(rest, "UTF-8 (by its byte order mark)").map(|t| (t, None));
    }
    let utf16 = if bytes.starts_with(b"\xfe\xff") {
        Some(u16::from_be_bytes as fn([u8; 2]) -> u16)
    } else if bytes.starts_with(b"\xff\xfe") {
        Some(u16::from_le_bytes as fn([u8; 2]) -> u16)
    } else {
        None
    };
    if let Some(read) = utf16 {
        let units = bytes[2..]
            .chunks_exact(2)
            .map(|pair| read([pair[0], pair[1]]));
        let text: Result<String, _> = char::decode_utf16(units).collect();
        return text
            .map(|t| (Cow::Owned(t), Some("UTF-16".to_owned())))
            .map_err(|_| {
                FeedError::Encoding("the feed is marked UTF-16 but is not valid UTF-16".into())
            });
    }
    let declared = declared_encoding(bytes);
    let label = declared
        .as_deref()
        .unwrap_or("utf-8")
        .trim()
        .to_ascii_lowercase();
    match label.as_str() {
        "utf-8" | "utf8" => {
            let what = if declared.is_some() {
                "UTF-8"
            } else {
                "UTF-8 (the default)"
            };
            utf8(bytes, what).map(|t| (t, None))
        }
        single_byte if is_single_byte_latin(single_byte) => {
            if std::str::from_utf8(bytes).is_ok() && !bytes.is_ascii() {
                return Err(FeedError::Encoding(
                    "the feed declares a single-byte encoding (Latin-1 or Windows-125x) \
                     but its bytes are UTF-8"
                        .to_owned(),
                ));
            }
            Ok((
                Cow::Owned(bytes.iter().map(|&b| char::from(b)).collect()),
                declared,
            ))
        }
        "utf-16" | "utf-16le" | "utf-16be" | "ucs-2" => Err(FeedError::Encoding(
            "the feed declares UTF-16 but is not UTF-16 encoded".to_owned(),
        )),
        // Other encodings (Shift_JIS, KOI8-R, GB2312…) are left to the parser; ASCII
        // markup is all the checks here need.
        _ => Ok((
            Cow::Owned(bytes.iter().map(|&b| char::from(b)).collect()),
            declared,
        )),
    }
}

fn utf8<'a>(bytes: &'a [u8], what: &str) -> Result<Cow<'a, str>, FeedError> {
    std::str::from_utf8(bytes).map(Cow::Borrowed).map_err(|e| {
        let at = e.valid_up_to();
        FeedError::Encoding(format!(
            "the feed is declared {what} but byte {at} is not valid UTF-8; \
             is it Latin-1 or Windows-1252?"
        ))
    })
}

fn is_single_byte_latin(label: &str) -> bool {
    label.starts_with("iso-8859")
        || label.starts_with("iso8859")
        || label.starts_with("windows-125")
        || label.starts_with("cp125")
        || matches!(label, "latin1" | "latin-1" | "l1" | "us-ascii" | "ascii")
}

/// The `encoding` pseudo-attribute of a leading `<?xml …?>` declaration.
fn declared_encoding(bytes: &[u8]) -> Option<String> {
    let start = bytes.iter().position(|b| !b.is_ascii_whitespace())?;
    let rest = bytes[start..].strip_prefix(b"<?xml")?;
    let end = rest.windows(2).position(|w| w == b"?>")?;
    let declaration = std::str::from_utf8(&rest[..end]).ok()?;
    let after = &declaration[declaration.find("encoding")? + "encoding".len()..];
    let after = after.trim_start().strip_prefix('=')?.trim_start();
    let quote = after.chars().next().filter(|c| *c == '"' || *c == '\'')?;
    let value = &after[1..];
    Some(value[..value.find(quote)?].to_owned())
}

struct Root {
    name: String,
    self_closing: bool,
}

/// The root element's name, after the XML declaration, comments, processing
/// instructions and a document type declaration.
fn root_element(body: &str) -> Result<Root, FeedError> {
    let mut rest = body;
    loop {
        rest = rest.trim_start();
        if let Some(after) = rest.strip_prefix("<?") {
            rest = skip_past(after, "?>")?;
        } else if let Some(after) = rest.strip_prefix("<!--") {
            rest = skip_past(after, "-->")?;
        } else if let Some(doctype) = strip_prefix_ignore_ascii_case(rest, "<!doctype") {
            let name = doctype.split_whitespace().next().unwrap_or("");
            if name.trim_end_matches('>').eq_ignore_ascii_case("html") {
                return Err(html_page());
            }
            // An internal subset may hold `>` inside its brackets.
            rest = match (doctype.find('['), doctype.find('>')) {
                (Some(open), Some(close)) if open < close => skip_past(&doctype[open..], "]>")?,
                _ => skip_past(doctype, ">")?,
            };
        } else if let Some(after) = rest.strip_prefix('<') {
            let end = after
                .find(|c: char| c.is_whitespace() || c == '>' || c == '/')
                .unwrap_or(after.len());
            let name = &after[..end];
            if name.is_empty() {
                return Err(FeedError::MalformedXml("no root element".to_owned()));
            }
            let local = name.rsplit(':').next().unwrap_or(name);
            if local.eq_ignore_ascii_case("html") {
                return Err(html_page());
            }
            let tag_end = after.find('>').ok_or_else(|| truncated(name))?;
            return Ok(Root {
                name: name.to_owned(),
                self_closing: after[..tag_end].ends_with('/'),
            });
        } else {
            return Err(FeedError::MalformedXml(
                "text before the root element".to_owned(),
            ));
        }
    }
}

/// `s` after `prefix`, compared byte by byte, so text in any script never splits a character.
fn strip_prefix_ignore_ascii_case<'a>(s: &'a str, prefix: &str) -> Option<&'a str> {
    let head = s.as_bytes().get(..prefix.len())?;
    // An ASCII prefix matched, so its length is a character boundary in `s`.
    head.eq_ignore_ascii_case(prefix.as_bytes())
        .then(|| &s[prefix.len()..])
}

fn skip_past<'a>(s: &'a str, marker: &str) -> Result<&'a str, FeedError> {
    s.find(marker)
        .map(|at| &s[at + marker.len()..])
        .ok_or_else(|| FeedError::Truncated("the document ends inside its prolog".to_owned()))
}

/// A complete document ends with the root's end tag (then perhaps comments).
fn check_complete(body: &str, root: &Root) -> Result<(), FeedError> {
    if root.self_closing {
        return Ok(());
    }
    let mut end = body.trim_end_matches(|c: char| c.is_whitespace() || c == '\0');
    loop {
        if end.ends_with("-->") {
            match end.rfind("<!--") {
                Some(at) => end = end[..at].trim_end(),
                None => break,
            }
        } else if end.ends_with("?>") {
            match end.rfind("<?") {
                Some(at) => end = end[..at].trim_end(),
                None => break,
            }
        } else {
            break;
        }
    }
    let closed = end
        .strip_suffix('>')
        .map(str::trim_end)
        .and_then(|s| s.strip_suffix(root.name.as_str()))
        .is_some_and(|s| s.ends_with("</"));
    if closed {
        Ok(())
    } else {
        Err(truncated(&root.name))
    }
}

fn truncated(root: &str) -> FeedError {
    FeedError::Truncated(match known_root(root) {
        Some(name) => format!("the document ends before its closing </{name}>"),
        None => "the document ends before its root element closes".to_owned(),
    })
}

/// A root element name we may repeat: one of the feed formats' own. Any other name is
/// the document's text, which is not echoed back (see `parse::parse_error`).
pub(super) fn known_root(name: &str) -> Option<&'static str> {
    ["rss", "feed", "rdf:RDF", "RDF", "channel"]
        .into_iter()
        .find(|known| *known == name)
}

fn html_page() -> FeedError {
    FeedError::NotAFeed("this is an HTML page".to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn err(bytes: &[u8]) -> String {
        inspect(bytes).unwrap_err().to_string()
    }

    #[test]
    fn recognises_xml_and_json() {
        assert_eq!(
            inspect(b"\xef\xbb\xbf<?xml version=\"1.0\"?>\n<!-- hi -->\n<rss version=\"2.0\"><channel/></rss>\n<!-- cached -->\n").unwrap(),
            Shape::Xml { root: "rss".into() }
        );
        assert_eq!(
            inspect(b"<rdf:RDF xmlns:rdf=\"x\"><item/></rdf:RDF>").unwrap(),
            Shape::Xml {
                root: "rdf:RDF".into()
            }
        );
        assert_eq!(inspect(b"  {\"version\": 1").unwrap(), Shape::Json);
    }

    #[test]
    fn refuses_what_is_not_a_feed() {
        assert!(err(b"").contains("empty"));
        assert!(err(b"  \n ").contains("empty"));
        assert!(err(b"<!DOCTYPE html><html><body>Hi").contains("HTML page"));
        assert!(err(b"<html lang=en>").contains("HTML page"));
        assert!(err(b"hello world").contains("neither XML nor JSON"));
        assert!(err(b"\x89PNG\r\n\x1a\n").contains("neither XML nor JSON"));
    }

    #[test]
    fn refuses_cut_off_documents() {
        let e = err(b"<?xml version=\"1.0\"?><rss version=\"2.0\"><channel><item><title>Lif");
        assert!(e.contains("</rss>"), "{e}");
        assert!(err(b"<feed xmlns=\"http://www.w3.org/2005/Atom\"").contains("</feed>"));
        assert!(err(b"<?xml version=\"1.0\"").contains("prolog"));
    }

    #[test]
    fn text_before_the_root_is_refused_whatever_its_characters() {
        // Found by the feed_import fuzz target: the doctype check sliced nine bytes off
        // whatever followed the prolog and panicked inside a multi-byte character.
        for input in [
            "<?xml version=\"1.0\"?>ééééé<rss></rss>".as_bytes(),
            "<?xml version=\"1.0\"?><!--x-->\n€€€<rss></rss>".as_bytes(),
            b"<?xml version=\"1.0\" encoding=\"UTF-6\"?>\n\xc5\xc5\xc5\xc5\xc5<rss></rss>",
        ] {
            assert!(
                err(input).contains("text before the root element"),
                "{input:?}"
            );
        }
        assert!(inspect("<!ééééé<rss></rss>".as_bytes()).is_err());
        // The check itself still reads a doctype in any case.
        assert!(err(b"<!DocType html><html>").contains("HTML page"));
    }

    #[test]
    fn a_second_xml_declaration_is_refused() {
        // Found by the feed_import fuzz target: a declaration naming an encoding inside the
        // document made quick-xml panic in `set_encoding`.
        let late = b"<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<rss version=\"2.0\"><channel>\
            <description>Launc<?xml version=\"1.0\" encoding=\"ISO-8859-1\"?></description>\
            </channel></rss>";
        assert!(err(late).contains("XML declaration"), "{}", err(late));
        assert!(err(b"<!-- a --><?XML version='1.0'?><rss></rss>").contains("XML declaration"));
        // Found by fuzzing too: `<![CDATA[` inside a tag opens no CDATA section, so the
        // declaration after that tag is markup, and it panicked quick-xml as well.
        let in_a_tag =
            b"<rss><i<![CDATA[tem>\n<?xml version=\"1.0\" encoding=\"ISO-8859-1\"?></rss>";
        assert!(
            err(in_a_tag).contains("XML declaration"),
            "{}",
            err(in_a_tag)
        );
        let after_a_quote = b"<rss><a t='<![CDATA['>\n<?xml version=\"1.0\"?></a></rss>";
        assert!(err(after_a_quote).contains("XML declaration"));
        // Even where it would be text: a feed has no need of one there.
        for late in [
            &b"<rss><d><![CDATA[<?xml version=\"1.0\" encoding=\"latin1\"?>]]></d></rss>"[..],
            b"<rss><!-- <?xml version=\"1.0\"?> --></rss>",
            b"<rss><a t=\"<?xml version='1.0'?>\"/></rss>",
        ] {
            assert!(
                err(late).contains("XML declaration"),
                "{:?}",
                String::from_utf8_lossy(late)
            );
        }
        // Found by fuzzing: stray doctypes and `<!-->` inside the document.
        let stray = b"<?xml version=\"1.0\"?>\n<rss><link>char<>!!-->\n<metr!DOCTYP%3s</</link>\
            <d>x<!DOCTYPE\"eta eh<<><!-->\n<?xml version=\"1.0\" encoding=\"ISO-8859-1\"?></d></rss>";
        assert!(err(stray).contains("XML declaration"));
        for ok in [
            &b"<?xml version=\"1.0\"?><?xml-stylesheet href=\"s.xsl\"?><rss></rss>"[..],
            b"<rss><d>&lt;?xml version=\"1.0\"?&gt;</d></rss>",
            b"<?xml version=\"1.0\"?><rss><d><![CDATA[unclosed</d></rss>",
        ] {
            assert!(inspect(ok).is_ok(), "{:?}", String::from_utf8_lossy(ok));
        }
    }

    #[test]
    fn checks_the_declared_encoding() {
        let latin1_as_utf8 = b"<?xml version=\"1.0\" encoding=\"UTF-8\"?><rss><t>Caf\xe9</t></rss>";
        let e = err(latin1_as_utf8);
        assert!(
            e.contains("not valid UTF-8") && e.contains("Latin-1"),
            "{e}"
        );
        let utf8_as_latin1 =
            "<?xml version='1.0' encoding='ISO-8859-1'?><rss><t>Café</t></rss>".as_bytes();
        assert!(err(utf8_as_latin1).contains("declares a single-byte encoding"));
        let honest_latin1 =
            b"<?xml version=\"1.0\" encoding=\"iso-8859-1\"?><rss><t>Caf\xe9</t></rss>";
        assert!(inspect(honest_latin1).is_ok());
        assert!(err(b"<?xml version=\"1.0\" encoding=\"UTF-16\"?><rss></rss>").contains("UTF-16"));
        let utf16: Vec<u8> = std::iter::once(0xfeff_u16)
            .chain("<rss></rss>".encode_utf16())
            .flat_map(u16::to_le_bytes)
            .collect();
        assert!(inspect(&utf16).is_ok());
    }
}
