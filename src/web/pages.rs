//! Askama templates for the public HTML pages (all extend `base.html`).

use askama::Template;

/// One newsletter choice on the subscribe form.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewsletterOption {
    /// Stable identifier sent back as a `newsletters` form value.
    pub slug: String,
    /// Human-readable newsletter name.
    pub title: String,
    /// One-sentence description shown under the title.
    pub description: String,
    /// Whether the checkbox is pre-ticked.
    pub checked: bool,
}

/// Validation messages for the subscribe form, grouped by field.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct FormErrors {
    /// Messages about the email address.
    pub email: Vec<String>,
    /// Messages about the name.
    pub name: Vec<String>,
    /// Messages about the newsletter selection.
    pub newsletters: Vec<String>,
    /// Messages not tied to a single field.
    pub general: Vec<String>,
}

impl FormErrors {
    /// True when there is no message at all.
    #[must_use]
    pub fn is_empty(&self) -> bool {
        self.email.is_empty()
            && self.name.is_empty()
            && self.newsletters.is_empty()
            && self.general.is_empty()
    }
}

/// The signup form (`GET /` and the 400 re-render with errors).
#[derive(Debug, Template)]
#[template(path = "pages/subscribe.html")]
pub struct SubscribePage {
    /// Newsletters offered, in display order.
    pub newsletters: Vec<NewsletterOption>,
    /// Email address to re-fill.
    pub email: String,
    /// Name to re-fill.
    pub name: String,
    /// Validation messages; empty on first display.
    pub errors: FormErrors,
}

/// "Check your inbox" page shown after any accepted signup.
#[derive(Debug, Template)]
#[template(path = "pages/check_inbox.html")]
pub struct CheckInboxPage;

/// Landing page of the confirmation link; only its POST form confirms.
#[derive(Debug, Template)]
#[template(path = "pages/confirm.html")]
pub struct ConfirmPage {
    /// Confirmation token echoed into the hidden form field.
    pub token: String,
    /// Titles of the newsletters the button confirms.
    pub newsletters: Vec<String>,
}

/// Shown once a subscription is confirmed.
#[derive(Debug, Template)]
#[template(path = "pages/confirmed.html")]
pub struct ConfirmedPage {
    /// Titles of the newsletters now active.
    pub newsletters: Vec<String>,
    /// True when the subscription had been confirmed before.
    pub already: bool,
}

/// Unknown, expired or otherwise unusable link.
#[derive(Debug, Template)]
#[template(path = "pages/link_problem.html")]
pub struct LinkProblemPage {
    /// Page heading.
    pub heading: String,
    /// Explanation shown under the heading.
    pub message: String,
}

/// Landing page of an unsubscribe link; only its POST form unsubscribes.
#[derive(Debug, Template)]
#[template(path = "pages/unsubscribe.html")]
pub struct UnsubscribePage {
    /// Unsubscribe token, put in the form's query string.
    pub token: String,
    /// What is being left, e.g. "Space Daily".
    pub what: String,
}

/// Shown after unsubscribing, with a one-click resubscribe form.
#[derive(Debug, Template)]
#[template(path = "pages/unsubscribed.html")]
pub struct UnsubscribedPage {
    /// What was left, e.g. "Space Daily".
    pub what: String,
    /// Address to resubscribe.
    pub email: String,
    /// Slugs of the newsletters to resubscribe to.
    pub newsletters: Vec<String>,
}

/// Generic error page (400/404/413/415/429/500/503).
#[derive(Debug, Template)]
#[template(path = "pages/error.html")]
pub struct ErrorPage {
    /// HTTP status code shown above the heading.
    pub status: u16,
    /// Page heading.
    pub heading: String,
    /// Explanation shown under the heading.
    pub message: String,
}

/// One sent issue in a newsletter's archive list.
#[derive(Debug, Clone)]
pub struct ArchiveEntry {
    /// e.g. "25 November 2026".
    pub date_label: String,
    /// The lead story's title.
    pub lead: String,
    /// Stories in the issue.
    pub story_count: i32,
    /// The issue's page.
    pub url: String,
}

/// `GET /archive/SLUG`: the sent issues of a newsletter.
#[derive(Debug, Template)]
#[template(path = "pages/archive_index.html")]
pub struct ArchiveIndexPage {
    /// Newsletter title.
    pub newsletter_title: String,
    /// Newest first.
    pub issues: Vec<ArchiveEntry>,
}

/// `GET /archive/SLUG/DATE`: one sent issue, without anything personal.
#[derive(Debug, Template)]
#[template(path = "pages/archive_issue.html")]
pub struct ArchiveIssuePage {
    /// Newsletter title.
    pub newsletter_title: String,
    /// e.g. "25 November 2026".
    pub date_label: String,
    /// The newsletter's archive list.
    pub archive_url: String,
    /// The issue's stories (summaries sanitised).
    pub stories: Vec<crate::mail::templates::DigestStory>,
}
