//! Askama templates for outgoing email: subject, plain-text and HTML parts.

use askama::Template;

/// Data for the double opt-in confirmation email.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfirmationEmail {
    /// Subscriber's name, if given.
    pub name: Option<String>,
    /// Absolute URL of the confirmation page.
    pub confirm_url: String,
    /// Titles of the newsletters requested.
    pub newsletters: Vec<String>,
    /// Hours until the link expires.
    pub expires_hours: i64,
}

/// Subject line of the confirmation email.
#[derive(Debug, Template)]
#[template(path = "email/confirmation/subject.txt")]
pub struct ConfirmationSubject<'a> {
    /// Email data.
    pub email: &'a ConfirmationEmail,
}

/// Plain-text part of the confirmation email.
#[derive(Debug, Template)]
#[template(path = "email/confirmation/body.txt")]
pub struct ConfirmationText<'a> {
    /// Email data.
    pub email: &'a ConfirmationEmail,
}

/// HTML part of the confirmation email.
#[derive(Debug, Template)]
#[template(path = "email/confirmation/body.html")]
pub struct ConfirmationHtml<'a> {
    /// Email data.
    pub email: &'a ConfirmationEmail,
}

/// One confirmed newsletter listed in the welcome email.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WelcomeNewsletter {
    /// Newsletter name.
    pub title: String,
    /// Absolute URL that unsubscribes from this newsletter only.
    pub unsubscribe_url: String,
}

/// Data for the welcome email sent after confirmation.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WelcomeEmail {
    /// Subscriber's name, if given.
    pub name: Option<String>,
    /// Newsletters now active.
    pub newsletters: Vec<WelcomeNewsletter>,
    /// Absolute URL that unsubscribes from everything.
    pub unsubscribe_all_url: String,
    /// Absolute URL of the signup site.
    pub home_url: String,
}

/// Subject line of the welcome email.
#[derive(Debug, Template)]
#[template(path = "email/welcome/subject.txt")]
pub struct WelcomeSubject<'a> {
    /// Email data.
    pub email: &'a WelcomeEmail,
}

/// Plain-text part of the welcome email.
#[derive(Debug, Template)]
#[template(path = "email/welcome/body.txt")]
pub struct WelcomeText<'a> {
    /// Email data.
    pub email: &'a WelcomeEmail,
}

/// HTML part of the welcome email.
#[derive(Debug, Template)]
#[template(path = "email/welcome/body.html")]
pub struct WelcomeHtml<'a> {
    /// Email data.
    pub email: &'a WelcomeEmail,
}

/// One story as the digest shows it.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct DigestStory {
    /// Plain-text title.
    pub title: String,
    /// Absolute link to the story.
    pub url: String,
    /// Sanitised HTML summary (a small safe subset).
    pub summary_html: String,
    /// The summary as plain text.
    pub summary_text: String,
    /// Where it comes from, e.g. the feed's title.
    pub source: String,
    /// Publication time in the newsletter's zone, e.g. "14:05 CET".
    pub published: String,
}

/// Data for one day's digest. `unsubscribe_url` is a placeholder in the stored issue,
/// replaced per subscriber at send time.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DigestEmail {
    /// e.g. "Space Daily".
    pub newsletter_title: String,
    /// e.g. "25 November 2026".
    pub date_label: String,
    /// The day's stories, oldest first.
    pub stories: Vec<DigestStory>,
    /// The page in the web archive.
    pub archive_url: String,
    /// The signup page.
    pub home_url: String,
    /// The sender's postal address for the footer; empty to omit.
    pub postal_address: String,
    /// The reader's own one-click unsubscribe link.
    pub unsubscribe_url: String,
}

impl DigestEmail {
    /// The lead story's title, for the subject line.
    pub fn lead_title(&self) -> &str {
        self.stories.first().map_or("", |s| s.title.as_str())
    }
}

/// Subject line of the digest.
#[derive(Debug, Template)]
#[template(path = "email/digest/subject.txt")]
pub struct DigestSubject<'a> {
    /// Email data.
    pub email: &'a DigestEmail,
}

/// Plain-text part of the digest.
#[derive(Debug, Template)]
#[template(path = "email/digest/body.txt")]
pub struct DigestText<'a> {
    /// Email data.
    pub email: &'a DigestEmail,
}

/// HTML part of the digest.
#[derive(Debug, Template)]
#[template(path = "email/digest/body.html")]
pub struct DigestHtml<'a> {
    /// Email data.
    pub email: &'a DigestEmail,
}
