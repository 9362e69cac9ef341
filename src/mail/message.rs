//! Builds the MIME message of one email from its envelope and bodies.

use std::str::FromStr;

use lettre::Message;
use lettre::message::header::{
    self, ContentTransferEncoding, ContentType, Header, HeaderName, HeaderValue,
};
use lettre::message::{Body, Mailbox, MessageBuilder, MultiPart};

use super::dkim::DkimSigner;
use super::transport::Outgoing;

/// `List-Unsubscribe` (RFC 2369) with the one-click URL.
#[derive(Debug, Clone)]
struct ListUnsubscribe(String);

impl Header for ListUnsubscribe {
    fn name() -> HeaderName {
        HeaderName::new_from_ascii_str("List-Unsubscribe")
    }

    fn parse(s: &str) -> Result<Self, Box<dyn std::error::Error + Send + Sync>> {
        Ok(Self(s.trim_matches(['<', '>']).to_owned()))
    }

    fn display(&self) -> HeaderValue {
        HeaderValue::new(Self::name(), format!("<{}>", self.0))
    }
}

/// `List-Id` (RFC 2919): lets mail clients group and filter a newsletter.
#[derive(Debug, Clone)]
struct ListId {
    title: String,
    id: String,
}

impl Header for ListId {
    fn name() -> HeaderName {
        HeaderName::new_from_ascii_str("List-Id")
    }

    fn parse(s: &str) -> Result<Self, Box<dyn std::error::Error + Send + Sync>> {
        let (title, id) = s.rsplit_once('<').unwrap_or(("", s));
        Ok(Self {
            title: title.trim().to_owned(),
            id: id.trim_end_matches('>').to_owned(),
        })
    }

    fn display(&self) -> HeaderValue {
        let raw = format!("{} <{}>", self.title, self.id);
        if looks_encoded(&self.title) {
            let encoded = format!("{} <{}>", encoded_words(&self.title), self.id);
            return HeaderValue::dangerous_new_pre_encoded(Self::name(), raw, encoded);
        }
        HeaderValue::new(Self::name(), raw)
    }
}

/// `Subject`, which carries story titles from feeds.
///
/// lettre writes ASCII words as they are, so a title holding the text of an
/// encoded-word such as `=?utf-8?q?=0D=0A?=` would reach the reader as a line break in
/// the Subject. Such a subject is encoded whole, so that it reads as the literal text.
#[derive(Debug, Clone)]
struct SubjectLine(String);

impl Header for SubjectLine {
    fn name() -> HeaderName {
        HeaderName::new_from_ascii_str("Subject")
    }

    fn parse(s: &str) -> Result<Self, Box<dyn std::error::Error + Send + Sync>> {
        Ok(Self(s.to_owned()))
    }

    fn display(&self) -> HeaderValue {
        if looks_encoded(&self.0) {
            return HeaderValue::dangerous_new_pre_encoded(
                Self::name(),
                self.0.clone(),
                encoded_words(&self.0),
            );
        }
        HeaderValue::new(Self::name(), self.0.clone())
    }
}

fn is_line_break(c: char) -> bool {
    c.is_control() || matches!(c, '\u{2028}' | '\u{2029}')
}

/// True when a decoder could take part of `text` for an RFC 2047 encoded-word.
fn looks_encoded(text: &str) -> bool {
    text.find("=?")
        .is_some_and(|start| text[start + 2..].contains("?="))
}

/// Bytes of text per encoded-word: 52 characters of base64, so that with the
/// `=?utf-8?b?` and `?=` around it a line stays within RFC 2047's 76 characters, the
/// header's name included.
const ENCODED_WORD_BYTES: usize = 39;

/// `text` as RFC 2047 base64 encoded-words, one per folded line: decoding gives back
/// exactly `text` (whitespace between encoded-words is dropped by decoders).
fn encoded_words(text: &str) -> String {
    use base64::Engine;
    let mut words = Vec::new();
    let mut rest = text;
    while !rest.is_empty() {
        let mut end = rest.len().min(ENCODED_WORD_BYTES);
        while !rest.is_char_boundary(end) {
            end -= 1;
        }
        let (word, tail) = rest.split_at(end);
        words.push(format!(
            "=?utf-8?b?{}?=",
            base64::engine::general_purpose::STANDARD.encode(word)
        ));
        rest = tail;
    }
    words.join("\r\n ")
}

/// `List-Unsubscribe-Post` (RFC 8058): tells mailbox providers a POST unsubscribes at once.
#[derive(Debug, Clone)]
struct ListUnsubscribePost;

impl Header for ListUnsubscribePost {
    fn name() -> HeaderName {
        HeaderName::new_from_ascii_str("List-Unsubscribe-Post")
    }

    fn parse(_: &str) -> Result<Self, Box<dyn std::error::Error + Send + Sync>> {
        Ok(Self)
    }

    fn display(&self) -> HeaderValue {
        HeaderValue::new(Self::name(), "List-Unsubscribe=One-Click".to_owned())
    }
}

/// A new globally unique `Message-ID` (without angle brackets) under the sender's domain.
pub fn new_message_id(from: &Mailbox) -> String {
    let random = crate::tokens::random_bytes();
    format!("{}@{}", hex::encode(&random[..16]), from.email.domain())
}

/// What identifies one copy of an email, apart from its body.
pub struct Envelope<'a> {
    /// `From`.
    pub from: &'a Mailbox,
    /// `To` address.
    pub recipient_email: &'a str,
    /// `To` display name.
    pub recipient_name: Option<&'a str>,
    /// `Subject`.
    pub subject: &'a str,
    /// `Message-ID` without angle brackets.
    pub message_id: &'a str,
    /// `List-Id`, for digests.
    pub list_id: Option<&'a str>,
    /// One-click unsubscribe URL for `List-Unsubscribe`.
    pub list_unsubscribe: Option<&'a str>,
}

impl Envelope<'_> {
    fn builder(&self) -> Result<MessageBuilder, String> {
        let address = lettre::Address::from_str(self.recipient_email)
            .map_err(|e| format!("invalid recipient address: {e}"))?;
        // Names are checked at signup, but rows from older versions or imports may hold a
        // Unicode line separator, which some clients show as a break in the To line.
        let name = self
            .recipient_name
            .map(|name| name.split(is_line_break).collect::<Vec<_>>().join(" "));
        let mut builder = Message::builder()
            .from(self.from.clone())
            .to(Mailbox::new(name, address))
            .header(SubjectLine(self.subject.to_owned()))
            .message_id(Some(format!("<{}>", self.message_id)))
            .date_now();
        if let Some(list_id) = self.list_id {
            builder = builder.header(ListId::parse(list_id).map_err(|e| e.to_string())?);
        }
        if let Some(url) = self.list_unsubscribe {
            builder = builder
                .header(ListUnsubscribe(url.to_owned()))
                .header(ListUnsubscribePost);
        }
        Ok(builder)
    }
}

/// The `multipart/alternative` message of `text` and `html`, signed when `dkim` is given.
pub fn build_message(
    envelope: &Envelope<'_>,
    text: &str,
    html: &str,
    dkim: Option<&DkimSigner>,
) -> Result<Outgoing, String> {
    let parts = MultiPart::alternative_plain_html(text.to_owned(), html.to_owned());
    // The parts' `Content-Type` becomes the message's own header rather than the start of
    // lettre's body, so that DKIM can sign it as it does a digest's.
    let content_type = parts
        .headers()
        .get::<ContentType>()
        .ok_or("cannot build the message: the parts have no content type")?;
    let formatted = parts.formatted();
    let body_at = memchr::memmem::find(&formatted, b"\r\n\r\n")
        .ok_or("cannot build the message: the parts have no body")?;
    let mut message = envelope
        .builder()?
        .header(header::MIME_VERSION_1_0)
        .header(content_type)
        .body(Body::dangerous_pre_encoded(
            formatted[body_at + 4..].to_vec(),
            ContentTransferEncoding::SevenBit,
        ))
        .map_err(|e| format!("cannot build the message: {e}"))?;
    // `body` declares the encoding, which a multipart message need not: without it the
    // bytes are exactly what lettre's own multipart message would have been.
    message.headers_mut().remove::<ContentTransferEncoding>();
    seal(message, dkim)
}

/// One reader's copy of a body encoded in advance: only `link` is encoded per reader.
pub fn build_prepared(
    envelope: &Envelope<'_>,
    body: &PreparedBody,
    link: &str,
    dkim: Option<&DkimSigner>,
) -> Result<Outgoing, String> {
    let content_type = body
        .content_type
        .clone()
        .ok_or("cannot build the message: no usable multipart boundary")?;
    let message = envelope
        .builder()?
        .header(header::MIME_VERSION_1_0)
        .header(content_type)
        .body(Body::dangerous_pre_encoded(
            body.render(link),
            ContentTransferEncoding::SevenBit,
        ))
        .map_err(|e| format!("cannot build the message: {e}"))?;
    seal(message, dkim)
}

/// Signs (when configured) and formats a finished message.
fn seal(mut message: Message, dkim: Option<&DkimSigner>) -> Result<Outgoing, String> {
    if let Some(signer) = dkim {
        signer.sign(&mut message)?;
    }
    Ok(Outgoing::from_message(&message))
}

/// A `multipart/alternative` body (plain text and HTML) encoded once, as quoted-printable,
/// around the places where each reader's own link goes.
///
/// Each piece between two links is encoded on its own and ends in a soft line break, so
/// the link starts a fresh encoded line and decoding joins everything back seamlessly.
#[derive(Debug, Clone)]
pub struct PreparedBody {
    boundary: String,
    /// `multipart/alternative` with the boundary, parsed once for every copy.
    content_type: Option<ContentType>,
    /// How many slots take the link.
    links: usize,
    segments: Vec<Segment>,
    size: usize,
}

#[derive(Debug, Clone)]
enum Segment {
    Encoded(Vec<u8>),
    Link,
}

/// Encoded lines are kept one short of RFC 2045's 76 characters, leaving room for the
/// soft break that follows a piece.
const QP_LINE: usize = 75;

impl PreparedBody {
    /// Encodes `text` and `html`, each with `placeholder` where the link goes.
    pub fn new(text: &str, html: &str, placeholder: &str) -> Self {
        let boundary = hex::encode(&crate::tokens::random_bytes()[..12]);
        let mut prepared = Self {
            segments: Vec::new(),
            size: 0,
            content_type: ContentType::parse(&format!(
                "multipart/alternative; boundary=\"{boundary}\""
            ))
            .ok(),
            links: 0,
            boundary,
        };
        for (content_type, content) in [("text/plain", text), ("text/html", html)] {
            prepared.push(
                format!(
                    "--{}\r\nContent-Type: {content_type}; charset=utf-8\r\nContent-Transfer-Encoding: quoted-printable\r\n\r\n",
                    prepared.boundary
                )
                .into_bytes(),
            );
            let crlf = content.replace("\r\n", "\n").replace('\n', "\r\n");
            let mut pieces = crlf.split(placeholder).peekable();
            while let Some(piece) = pieces.next() {
                let mut encoded = qp(piece.as_bytes());
                let last = pieces.peek().is_none();
                if !last && !encoded.is_empty() && !encoded.ends_with(b"\r\n") {
                    encoded.extend_from_slice(b"=\r\n");
                }
                prepared.push(encoded);
                if !last {
                    prepared.segments.push(Segment::Link);
                    prepared.links += 1;
                }
            }
            prepared.push(b"\r\n".to_vec());
        }
        prepared.push(format!("--{}--\r\n", prepared.boundary).into_bytes());
        prepared
    }

    fn push(&mut self, bytes: Vec<u8>) {
        self.size += bytes.len();
        match self.segments.last_mut() {
            Some(Segment::Encoded(previous)) => previous.extend_from_slice(&bytes),
            _ => self.segments.push(Segment::Encoded(bytes)),
        }
    }

    /// The body with `link` in every slot.
    pub fn render(&self, link: &str) -> Vec<u8> {
        let mut encoded_link = qp(link.as_bytes());
        encoded_link.extend_from_slice(b"=\r\n");
        let mut out = Vec::with_capacity(self.size + self.links * encoded_link.len());
        for segment in &self.segments {
            match segment {
                Segment::Encoded(bytes) => out.extend_from_slice(bytes),
                Segment::Link => out.extend_from_slice(&encoded_link),
            }
        }
        out
    }
}

fn qp(input: &[u8]) -> Vec<u8> {
    quoted_printable::encode_with_options(
        input,
        quoted_printable::Options::default().line_length_limit(QP_LINE),
    )
    .into_bytes()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn decode_parts(raw: &[u8]) -> Vec<String> {
        let parsed = mail_parser::MessageParser::default()
            .parse(raw)
            .expect("a valid message");
        vec![
            parsed
                .body_text(0)
                .expect("a text part")
                .replace("\r\n", "\n"),
            parsed.body_html(0).expect("an HTML part").into_owned(),
        ]
    }

    #[test]
    fn a_prepared_body_decodes_to_the_text_with_each_readers_link() {
        let text = format!(
            "Héllo = there\n{}\nline with trailing space \nUnsubscribe: LINK\nand LINK again\n",
            "long words ".repeat(30)
        );
        let html = format!("<p>{}</p><a href=\"LINK\">unsubscribe</a>", "é".repeat(100));
        let body = PreparedBody::new(&text, &html, "LINK");
        let link = format!(
            "https://news.example.com/unsubscribe?token={}",
            "a".repeat(90)
        );
        let from: Mailbox = "Space Daily <news@example.com>".parse().unwrap();
        let envelope = Envelope {
            from: &from,
            recipient_email: "reader@example.com",
            recipient_name: Some("Reader, Ré"),
            subject: "Today",
            message_id: "id@example.com",
            list_id: None,
            list_unsubscribe: Some(&link),
        };
        let outgoing = build_prepared(&envelope, &body, &link, None).unwrap();
        let raw = String::from_utf8(outgoing.bytes.clone()).unwrap();
        let (_, body) = raw.split_once("\r\n\r\n").unwrap();
        assert!(body.lines().all(|line| line.len() <= 76), "{raw}");
        let parts = decode_parts(&outgoing.bytes);
        let expected_text = text.replace("LINK", &link);
        assert_eq!(parts[0], expected_text);
        assert_eq!(parts[1], html.replace("LINK", &link));
        assert_eq!(outgoing.envelope.to()[0].to_string(), "reader@example.com");
    }

    #[test]
    fn text_that_looks_like_an_encoded_word_reads_as_itself() {
        let from: Mailbox = "Space Daily <news@example.com>".parse().unwrap();
        let subject = format!(
            "Space Daily — today: =?utf-8?q?=0D=0ABcc:_x@y.example?= {}",
            "é and long words ".repeat(8)
        );
        let envelope = Envelope {
            from: &from,
            recipient_email: "reader@example.com",
            recipient_name: Some("Ada\u{2028}Bcc: x@y.example"),
            subject: &subject,
            message_id: "id@example.com",
            list_id: Some("=?utf-8?b?DQo=?= <space-daily.example.com>"),
            list_unsubscribe: None,
        };
        let body = PreparedBody::new("text", "<p>html</p>", "LINK");
        let outgoing = build_prepared(&envelope, &body, "https://example.com/u", None).unwrap();
        let raw = String::from_utf8(outgoing.bytes.clone()).unwrap();
        let (head, _) = raw.split_once("\r\n\r\n").unwrap();
        assert!(head.lines().all(|line| line.len() <= 78), "{head}");
        let parsed = mail_parser::MessageParser::default()
            .parse(outgoing.bytes.as_slice())
            .unwrap();
        assert_eq!(parsed.subject(), Some(subject.as_str()));
        let to = parsed.to().unwrap().first().unwrap();
        assert_eq!(to.name(), Some("Ada Bcc: x@y.example"));
        let list_id = parsed.header_raw("List-Id").unwrap();
        assert!(!list_id.contains("=?utf-8?b?DQo=?="), "{list_id}");
    }
}
