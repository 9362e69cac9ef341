//! Feed HTML is untrusted: summaries are reduced to a small safe subset before anything is
//! stored, and titles to plain text.

use std::collections::{HashMap, HashSet};

use ammonia::{Builder, UrlRelative};
use url::Url;

/// Summaries keep at most this many characters of text; the digest shows a teaser.
pub const MAX_SUMMARY_TEXT_CHARS: usize = 2_000;

/// Titles keep at most this many characters.
pub const MAX_TITLE_CHARS: usize = 300;

/// The only elements a stored summary may contain.
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

/// Elements removed together with everything inside them: their content is code, styling
/// or embedded documents, never readable text.
const DROPPED_WITH_CONTENT: [&str; 12] = [
    "script", "style", "iframe", "object", "embed", "template", "svg", "math", "noscript",
    "select", "textarea", "frameset",
];

/// Added to every link: the reader's mail client must not leak the digest to the target,
/// and feed links earn no search-engine credit from us.
const LINK_REL: &str = "noopener noreferrer nofollow";

/// Only this much of a summary's source is parsed: far more than 2,000 characters of text
/// need, and it keeps a feed of 500 full articles from costing seconds to sanitise. A cut
/// through a tag is harmless: the sanitiser parses any fragment safely.
const MAX_SUMMARY_INPUT_BYTES: usize = 64 * 1024;

/// Re-parses of a sanitised summary before it is taken as stable; one or two suffice.
const MAX_REPARSES: usize = 4;

/// Appended where a summary or title was cut short.
const ELLIPSIS: char = '…';

/// Reduces untrusted summary HTML to the safe subset: `p br a em strong b i ul ol li
/// blockquote code`, links only to http, https and mailto (relative ones resolved against
/// `base`, or dropped without one), no attributes but `href` and our own `rel`; then cuts
/// it to [`MAX_SUMMARY_TEXT_CHARS`] characters of text, still well-formed.
pub fn summary_html(untrusted: &str, base: Option<&Url>) -> String {
    let builder = summary_builder(base);
    // The parser keeps control characters as text, raw or as character references, and
    // escape sequences in a summary would reach the operator's terminal (`digest preview
    // --format text`) and every reader's plain-text part. They are dropped from what the
    // sanitiser wrote, where every reference is decoded; HTML's own whitespace stays.
    let clean: String = builder
        .clean(head(untrusted, MAX_SUMMARY_INPUT_BYTES))
        .to_string()
        .chars()
        .filter(|c| !c.is_control() || matches!(c, '\t' | '\n' | '\r'))
        .collect();
    let (mut html, _) = truncate_html(&clean, MAX_SUMMARY_TEXT_CHARS);
    // Sanitised output is not always read back as the tree it was written from: a table
    // makes the parser move content out of it (foster parenting), and once the table is
    // dropped the serialised tree may hold an `<li>` inside a `<b>`, which the next parser
    // (a reader's mail client) restructures. So it is parsed again until it reads back
    // unchanged; what is stored is then what every reader's client sees.
    for _ in 0..MAX_REPARSES {
        let again = builder.clean(&html).to_string();
        if again == html {
            break;
        }
        html = again;
    }
    html.trim().to_owned()
}

/// Turns untrusted plain text (a JSON Feed `summary`, an Atom `type="text"` element) into a
/// safe summary: escaped, one paragraph per blank-line-separated block.
pub fn summary_from_text(text: &str, base: Option<&Url>) -> String {
    let paragraphs: Vec<String> = text
        .replace("\r\n", "\n")
        .split("\n\n")
        .map(str::trim)
        .filter(|p| !p.is_empty())
        .map(|p| format!("<p>{}</p>", escape_text(p)))
        .collect();
    summary_html(&paragraphs.concat(), base)
}

/// Untrusted HTML or text as one line of plain text: tags stripped (the content of
/// scripts and styles dropped), entities decoded, whitespace collapsed, control characters
/// removed, at most `max_chars` characters (an ellipsis marks a cut).
pub fn plain_text(untrusted: &str, max_chars: usize) -> String {
    let mut builder = Builder::empty();
    builder.clean_content_tags(HashSet::from(DROPPED_WITH_CONTENT));
    let escaped = builder.clean(untrusted).to_string();
    let text = unescape_serialized(&escaped);
    let collapsed = text
        .split(|c: char| c.is_whitespace() || c.is_control())
        .filter(|word| !word.is_empty())
        .collect::<Vec<_>>()
        .join(" ");
    cut_chars(&collapsed, max_chars)
}

fn summary_builder(base: Option<&Url>) -> Builder<'static> {
    let mut builder = Builder::empty();
    builder
        .tags(HashSet::from(SUMMARY_TAGS))
        .clean_content_tags(HashSet::from(DROPPED_WITH_CONTENT))
        .tag_attributes(HashMap::from([("a", HashSet::from(["href"]))]))
        .generic_attributes(HashSet::new())
        .generic_attribute_prefixes(HashSet::new())
        .url_schemes(HashSet::from(["http", "https", "mailto"]))
        .link_rel(Some(LINK_REL))
        .strip_comments(true)
        .url_relative(match base {
            Some(base) => UrlRelative::RewriteWithBase(base.clone()),
            None => UrlRelative::Deny,
        });
    builder
}

/// The first at most `max` bytes of `s`, cut at a character boundary.
fn head(s: &str, max: usize) -> &str {
    if s.len() <= max {
        return s;
    }
    let mut end = max;
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    &s[..end]
}

/// Cuts `s` to at most `max` characters, ending in an ellipsis when it was longer.
pub(crate) fn cut_chars(s: &str, max: usize) -> String {
    if s.chars().count() <= max {
        return s.to_owned();
    }
    let mut out: String = s.chars().take(max.saturating_sub(1)).collect();
    out.truncate(out.trim_end().len());
    out.push(ELLIPSIS);
    out
}

fn escape_text(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '\n' => out.push_str("<br>"),
            c => out.push(c),
        }
    }
    out
}

/// Reverses the few escapes html5ever's serializer writes in text: `&amp; &lt; &gt;
/// &nbsp; &quot;`. Anything else that looks like an entity was literal text.
fn unescape_serialized(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    let mut rest = s;
    while let Some(at) = rest.find('&') {
        out.push_str(&rest[..at]);
        rest = &rest[at..];
        let decoded = [
            ("&amp;", '&'),
            ("&lt;", '<'),
            ("&gt;", '>'),
            ("&nbsp;", ' '),
            ("&quot;", '"'),
        ]
        .into_iter()
        .find(|(entity, _)| rest.starts_with(entity));
        match decoded {
            Some((entity, c)) => {
                out.push(c);
                rest = &rest[entity.len()..];
            }
            None => {
                out.push('&');
                rest = &rest[1..];
            }
        }
    }
    out.push_str(rest);
    out
}

/// Cuts serializer output after `max_text` characters of text and closes the elements
/// still open, so the result stays well-formed. Works on ammonia's output only: tags there
/// are from the allowlist, attribute values are double-quoted and text is escaped.
fn truncate_html(html: &str, max_text: usize) -> (String, bool) {
    let mut out = String::with_capacity(html.len().min(max_text * 4));
    let mut open: Vec<&str> = Vec::new();
    let mut text_chars = 0usize;
    let mut rest = html;
    while !rest.is_empty() {
        if rest.starts_with('<') {
            let end = tag_end(rest);
            let tag = &rest[..end];
            if let Some(name) = tag.strip_prefix("</") {
                let name = name.trim_end_matches('>').trim();
                if let Some(pos) = open.iter().rposition(|n| *n == name) {
                    open.truncate(pos);
                }
            } else {
                let name = tag[1..]
                    .split(|c: char| c.is_whitespace() || c == '>' || c == '/')
                    .next()
                    .unwrap_or("");
                if name != "br" && !tag.ends_with("/>") {
                    open.push(name);
                }
            }
            out.push_str(tag);
            rest = &rest[end..];
            continue;
        }
        let text_end = rest.find('<').unwrap_or(rest.len());
        let mut chars = rest[..text_end].char_indices().peekable();
        while let Some((i, c)) = chars.next() {
            if text_chars == max_text {
                out.truncate(out.trim_end().len());
                out.push(ELLIPSIS);
                for name in open.iter().rev() {
                    out.push_str("</");
                    out.push_str(name);
                    out.push('>');
                }
                return (out, true);
            }
            // An entity counts as one character and is never split.
            let unit_end = if c == '&' {
                rest[i..text_end]
                    .find(';')
                    .map_or(i + 1, |semi| i + semi + 1)
            } else {
                i + c.len_utf8()
            };
            out.push_str(&rest[i..unit_end]);
            text_chars += 1;
            while chars.peek().is_some_and(|(j, _)| *j < unit_end) {
                chars.next();
            }
        }
        rest = &rest[text_end..];
    }
    (out, false)
}

/// Length of the tag at the start of `s`, honouring `>` inside quoted attribute values.
fn tag_end(s: &str) -> usize {
    let mut in_quotes = false;
    for (i, c) in s.char_indices() {
        match c {
            '"' => in_quotes = !in_quotes,
            '>' if !in_quotes => return i + 1,
            _ => {}
        }
    }
    s.len()
}

#[cfg(test)]
#[path = "sanitise_tests.rs"]
mod tests;
