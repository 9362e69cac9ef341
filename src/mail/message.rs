//! Builds the MIME message for a queued email.

use std::str::FromStr;

use lettre::Message;
use lettre::message::header::{Header, HeaderName, HeaderValue};
use lettre::message::{Mailbox, MultiPart};

use crate::db::outbound::QueuedEmail;

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
struct ListId(String);

impl Header for ListId {
    fn name() -> HeaderName {
        HeaderName::new_from_ascii_str("List-Id")
    }

    fn parse(s: &str) -> Result<Self, Box<dyn std::error::Error + Send + Sync>> {
        Ok(Self(s.to_owned()))
    }

    fn display(&self) -> HeaderValue {
        HeaderValue::new(Self::name(), self.0.clone())
    }
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

/// The `multipart/alternative` message for a queued email.
pub fn build_message(
    from: &Mailbox,
    email: &QueuedEmail,
    list_id: Option<&str>,
) -> Result<Message, String> {
    let address = lettre::Address::from_str(&email.recipient_email)
        .map_err(|e| format!("invalid recipient address: {e}"))?;
    let to = Mailbox::new(email.recipient_name.clone(), address);
    let mut builder = Message::builder()
        .from(from.clone())
        .to(to)
        .subject(email.subject.as_str())
        .message_id(Some(format!("<{}>", email.message_id)))
        .date_now();
    if let Some(list_id) = list_id {
        builder = builder.header(ListId(list_id.to_owned()));
    }
    if let Some(url) = &email.list_unsubscribe {
        builder = builder
            .header(ListUnsubscribe(url.clone()))
            .header(ListUnsubscribePost);
    }
    builder
        .multipart(MultiPart::alternative_plain_html(
            email.body_text.clone(),
            email.body_html.clone(),
        ))
        .map_err(|e| format!("cannot build the message: {e}"))
}
