//! Feed bytes to stories: RSS 2.0, RSS 1.0 (RDF), Atom and JSON Feed through feed-rs, with
//! every field checked and sanitised. All or nothing: an error means nothing to store.

use std::collections::{BTreeMap, HashSet};
use std::fmt;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::path::Path;

use chrono::SubsecRound;
use feed_rs::model::{Entry, Feed, Link, Text};
use feed_rs::parser::{ParseErrorKind, ParseFeedError};
use url::Url;

use super::declaration;
use super::document::{self, Shape};
use super::sanitise::{MAX_TITLE_CHARS, plain_text, summary_from_text, summary_html};
use crate::db::stories::IncomingStory;

/// The most of a feed that is read; more is refused rather than cut.
pub const MAX_FEED_BYTES: usize = 5 * 1024 * 1024;

/// The most items taken from one feed in one import.
pub const MAX_ITEMS_PER_IMPORT: usize = 500;

/// Source names are shown beside every story; a feed title longer than this is cut.
const MAX_SOURCE_CHARS: usize = 100;

/// A story's link is its identity in mail clients; longer ones are refused.
const MAX_URL_CHARS: usize = 2_000;

/// An entry id longer than this is replaced by the link.
const MAX_GUID_CHARS: usize = 1_000;

/// Why a feed could not be read. Each message names the problem for the operator.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum FeedError {
    /// More than [`MAX_FEED_BYTES`].
    #[error("the feed is larger than 5 MiB")]
    TooLarge,
    /// No content at all.
    #[error("the feed is empty")]
    Empty,
    /// Some other document: an HTML page, plain text, JSON that is not a JSON Feed.
    #[error("not a feed: expected RSS, Atom or JSON Feed ({0})")]
    NotAFeed(String),
    /// The bytes do not match the encoding the document declares.
    #[error("wrong encoding: {0}")]
    Encoding(String),
    /// The document was cut off.
    #[error("truncated feed: {0}")]
    Truncated(String),
    /// Broken XML.
    #[error("malformed XML: {0}")]
    MalformedXml(String),
    /// Broken JSON.
    #[error("malformed JSON: {0}")]
    MalformedJson(String),
    /// A recognised feed whose structure the parser refused.
    #[error("malformed feed: {0}")]
    Malformed(String),
    /// Items, but none that can become a story.
    #[error("no usable items ({0})")]
    NoUsableItems(Skipped),
}

/// Where feed bytes came from: names the source and resolves relative links.
#[derive(Debug, Clone)]
pub struct FeedOrigin {
    /// The feed's own URL, when it was fetched.
    pub url: Option<Url>,
    /// A name for the last resort: the file name or the URL.
    pub name: String,
}

impl FeedOrigin {
    /// A feed fetched from `url`.
    pub fn url(url: &Url) -> Self {
        Self {
            url: Some(url.clone()),
            name: url.host_str().unwrap_or("feed").to_owned(),
        }
    }

    /// A feed read from a file.
    pub fn file(path: &Path) -> Self {
        Self {
            url: None,
            name: path.file_name().map_or_else(
                || path.display().to_string(),
                |name| name.to_string_lossy().into_owned(),
            ),
        }
    }
}

/// Why an item was left out.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum SkipReason {
    /// No title, or one that is empty as plain text.
    NoTitle,
    /// No link at all.
    NoLink,
    /// A link that is not an absolute http or https URL and cannot be made one.
    BadLink,
    /// A link longer than we store.
    LongLink,
    /// A second item with an id already seen in this feed.
    DuplicateId,
    /// Beyond [`MAX_ITEMS_PER_IMPORT`].
    OverLimit,
}

impl SkipReason {
    fn describe(self) -> &'static str {
        match self {
            Self::NoTitle => "no title",
            Self::NoLink => "no link",
            Self::BadLink => "link not http(s)",
            Self::LongLink => "link too long",
            Self::DuplicateId => "duplicate id",
            Self::OverLimit => "over the 500-item limit",
        }
    }
}

/// How many items were left out, by reason.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Skipped(BTreeMap<SkipReason, usize>);

impl Skipped {
    /// Counts `n` more items left out for `reason`.
    pub fn add(&mut self, reason: SkipReason, n: usize) {
        if n > 0 {
            *self.0.entry(reason).or_default() += n;
        }
    }

    /// All items left out.
    pub fn total(&self) -> usize {
        self.0.values().sum()
    }

    /// How many were left out for `reason`.
    pub fn count(&self, reason: SkipReason) -> usize {
        self.0.get(&reason).copied().unwrap_or(0)
    }
}

impl fmt::Display for Skipped {
    /// `1 skipped: no link` or `3 skipped: 2 no title, 1 no link`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} skipped: ", self.total())?;
        if let [(reason, _)] = self.0.iter().collect::<Vec<_>>()[..] {
            return f.write_str(reason.describe());
        }
        let parts: Vec<String> = self
            .0
            .iter()
            .map(|(reason, n)| format!("{n} {}", reason.describe()))
            .collect();
        f.write_str(&parts.join(", "))
    }
}

/// A feed read and checked, ready to store.
#[derive(Debug, Clone)]
pub struct ParsedFeed {
    /// The feed's title, or the host it came from.
    pub source: String,
    /// The items that can become stories, in feed order.
    pub items: Vec<IncomingStory>,
    /// The items left out.
    pub skipped: Skipped,
}

impl ParsedFeed {
    /// Items without a publication time of their own.
    pub fn undated(&self) -> usize {
        self.items
            .iter()
            .filter(|i| i.published_at.is_none())
            .count()
    }
}

/// Reads feed bytes into stories. Never panics; on error nothing is half-read.
pub fn parse_feed(bytes: &[u8], origin: &FeedOrigin) -> Result<ParsedFeed, FeedError> {
    if bytes.len() > MAX_FEED_BYTES {
        return Err(FeedError::TooLarge);
    }
    let shape = document::inspect(bytes)?;
    let parser = feed_rs::parser::Builder::new()
        // An empty id tells us the entry had none, so the link becomes the guid; feed-rs
        // would otherwise invent a hash that changes whenever the title is edited.
        .id_generator(|_, _, _| String::new())
        .sanitize_content(false)
        .build();
    // feed-rs has panicked on hostile input before; a bad feed must not take the poller
    // or the command down with it.
    let bytes = declaration::for_parser(bytes)?;
    let feed = catch_unwind(AssertUnwindSafe(|| parser.parse(&bytes[..])))
        .map_err(|_| FeedError::Malformed("the feed parser gave up on this document".into()))?
        .map_err(|e| parse_error(e, &shape))?;
    Ok(convert(feed, origin))
}

/// The parser's complaint in our words. Its own messages quote the document (element
/// names, values, versions); a fetched document is the server's text, and none of it is
/// repeated to the operator: positions and kinds only.
fn parse_error(error: ParseFeedError, shape: &Shape) -> FeedError {
    match error {
        ParseFeedError::ParseError(ParseErrorKind::NoFeedRoot) => match shape {
            Shape::Xml { root } => FeedError::NotAFeed(format!(
                "the root element is {}",
                document::known_root(root).map_or_else(
                    || "not <rss>, <feed> or <rdf:RDF>".to_owned(),
                    |name| format!("<{name}>")
                )
            )),
            Shape::Json => FeedError::NotAFeed("no feed in this JSON".to_owned()),
        },
        ParseFeedError::ParseError(kind) => FeedError::Malformed(match kind {
            ParseErrorKind::NoFeedRoot => "no root element".to_owned(),
            ParseErrorKind::UnknownMimeType { position, .. } => {
                format!("an unsupported content type at byte {position}")
            }
            ParseErrorKind::MissingContent {
                position,
                reference,
            } => format!("missing {reference} at byte {position}"),
            ParseErrorKind::UnknownEnumVariant { position, .. } => {
                format!("an unknown value at byte {position}")
            }
            ParseErrorKind::IllegalState { position, .. } => {
                format!("an unexpected structure at byte {position}")
            }
        }),
        ParseFeedError::JsonSerde(e) if e.is_eof() => FeedError::Truncated(format!(
            "the JSON ends early (line {}, column {})",
            e.line(),
            e.column()
        )),
        ParseFeedError::JsonSerde(e) if e.is_data() => FeedError::NotAFeed(format!(
            "JSON, but not a JSON Feed: a value of the wrong type at line {}, column {}",
            e.line(),
            e.column()
        )),
        ParseFeedError::JsonSerde(e) => FeedError::MalformedJson(format!(
            "a syntax error at line {}, column {}",
            e.line(),
            e.column()
        )),
        ParseFeedError::JsonUnsupportedVersion(_) => {
            FeedError::NotAFeed("an unsupported JSON Feed version".to_owned())
        }
        ParseFeedError::XmlReader(_) => {
            FeedError::MalformedXml("the document is not well-formed XML".to_owned())
        }
        ParseFeedError::IoError(_) => {
            FeedError::Malformed("the feed parser could not read the document".to_owned())
        }
    }
}

fn convert(feed: Feed, origin: &FeedOrigin) -> ParsedFeed {
    // Relative item links resolve against the feed's web page, else the feed's own URL.
    let site = page_link(&feed.links)
        .and_then(|href| absolute_http(href, origin.url.as_ref()).ok())
        .or_else(|| origin.url.clone());
    let source = feed
        .title
        .as_ref()
        .map(|t| plain_text(&t.content, MAX_SOURCE_CHARS))
        .filter(|t| !t.is_empty())
        .or_else(|| origin.url.as_ref().and_then(host))
        .or_else(|| site.as_ref().and_then(host))
        .unwrap_or_else(|| origin.name.clone());

    let mut skipped = Skipped::default();
    skipped.add(
        SkipReason::OverLimit,
        feed.entries.len().saturating_sub(MAX_ITEMS_PER_IMPORT),
    );
    let mut seen = HashSet::new();
    let mut items = Vec::new();
    for entry in feed.entries.iter().take(MAX_ITEMS_PER_IMPORT) {
        match story(entry, site.as_ref(), &source) {
            Ok(item) if !seen.insert(item.guid.clone()) => {
                skipped.add(SkipReason::DuplicateId, 1);
            }
            Ok(item) => items.push(item),
            Err(reason) => skipped.add(reason, 1),
        }
    }
    ParsedFeed {
        source,
        items,
        skipped,
    }
}

/// Checks an entry and turns it into a story.
fn story(entry: &Entry, site: Option<&Url>, source: &str) -> Result<IncomingStory, SkipReason> {
    let title = entry
        .title
        .as_ref()
        .map(|t| plain_text(&t.content, MAX_TITLE_CHARS))
        .filter(|t| !t.is_empty())
        .ok_or(SkipReason::NoTitle)?;
    let href = page_link(&entry.links).ok_or(SkipReason::NoLink)?;
    let url = absolute_http(href, site)?;
    let url_string = url.to_string();
    if url_string.chars().count() > MAX_URL_CHARS {
        return Err(SkipReason::LongLink);
    }
    let id = entry.id.trim();
    let guid = if id.is_empty() || id.chars().count() > MAX_GUID_CHARS {
        url_string.clone()
    } else {
        id.to_owned()
    };
    Ok(IncomingStory {
        guid,
        summary_html: summary(entry, &url),
        url: url_string,
        title,
        source: source.to_owned(),
        published_at: entry
            .published
            .or(entry.updated)
            .map(|t| t.naive_utc().trunc_subsecs(6)),
    })
}

/// The summary, else the content, as safe HTML. A digest shows a teaser, so the shorter
/// of the two is preferred.
fn summary(entry: &Entry, base: &Url) -> String {
    if let Some(text) = entry
        .summary
        .as_ref()
        .filter(|t| !t.content.trim().is_empty())
    {
        return text_as_html(text, base);
    }
    let Some(content) = &entry.content else {
        return String::new();
    };
    let Some(body) = content.body.as_deref() else {
        return String::new();
    };
    match content.content_type.as_str() {
        "text/plain" => summary_from_text(body, Some(base)),
        t if t.contains("html") => summary_html(body, Some(base)),
        // Base64 media and other documents are no summary.
        _ => String::new(),
    }
}

fn text_as_html(text: &Text, base: &Url) -> String {
    if text.content_type.as_str() == "text/plain" {
        // A plain-text summary that carries markup anyway (common in RSS) is treated as
        // HTML; the sanitiser makes either safe.
        if ammonia::is_html(&text.content) {
            summary_html(&text.content, Some(base))
        } else {
            summary_from_text(&text.content, Some(base))
        }
    } else {
        summary_html(&text.content, Some(base))
    }
}

/// The link to the item's (or feed's) web page: not `self`, `enclosure`, comments or
/// attachments.
fn page_link(links: &[Link]) -> Option<&str> {
    links
        .iter()
        .filter(|l| l.target.is_none())
        .filter(|l| matches!(l.rel.as_deref(), None | Some("alternate")))
        .filter(|l| l.media_type.as_deref().is_none_or(|t| t.contains("html")))
        .map(|l| l.href.trim())
        .find(|href| !href.is_empty())
}

/// An absolute http(s) URL, resolving a relative one against `base`.
fn absolute_http(href: &str, base: Option<&Url>) -> Result<Url, SkipReason> {
    let url = match Url::parse(href) {
        Ok(url) => url,
        Err(url::ParseError::RelativeUrlWithoutBase) => base
            .and_then(|b| b.join(href).ok())
            .ok_or(SkipReason::BadLink)?,
        Err(_) => return Err(SkipReason::BadLink),
    };
    match url.scheme() {
        "http" | "https" if url.host_str().is_some_and(|h| !h.is_empty()) => Ok(url),
        _ => Err(SkipReason::BadLink),
    }
}

/// Validates a story link given by hand: an absolute http or https URL.
pub fn story_url(raw: &str) -> Result<Url, String> {
    let trimmed = raw.trim();
    absolute_http(trimmed, None)
        .map_err(|_| format!("\"{trimmed}\" is not an absolute http or https URL"))
        .and_then(|url| {
            if url.as_str().chars().count() > MAX_URL_CHARS {
                Err(format!("the URL is longer than {MAX_URL_CHARS} characters"))
            } else {
                Ok(url)
            }
        })
}

fn host(url: &Url) -> Option<String> {
    url.host_str()
        .map(|h| h.strip_prefix("www.").unwrap_or(h).to_owned())
}

#[cfg(test)]
#[path = "parse_tests.rs"]
mod tests;
