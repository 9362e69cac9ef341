//! The daily digest: choose the day's stories, render the issue once, fan it out to every
//! confirmed reader through the outbound queue, and personalise each copy at send time.

pub mod control;
mod personalise;
mod render;
pub mod scheduler;

pub use personalise::{Personaliser, PreparedIssue};
pub use render::{UNSUBSCRIBE_PLACEHOLDER, render_digest};

use chrono::NaiveDate;
use chrono_tz::Tz;

use crate::config::Settings;
use crate::db::newsletters::Newsletter;
use crate::db::{self, DbConnection, digests, stories};
use crate::domain::{NewsletterTimeZone, day};
use crate::mail::templates::DigestStory;
use crate::subscriptions::ServiceError;

/// The newsletter's time zone (stored names were validated when written; UTC otherwise).
pub fn zone(newsletter: &Newsletter) -> Tz {
    NewsletterTimeZone::parse(&newsletter.timezone).map_or(Tz::UTC, |z| z.tz())
}

/// Today in the newsletter's time zone.
pub fn today(newsletter: &Newsletter) -> NaiveDate {
    day::today_in(zone(newsletter))
}

/// The stories published on `date` in the newsletter's time zone, oldest first.
pub fn day_stories(
    conn: &mut DbConnection,
    newsletter: &Newsletter,
    date: NaiveDate,
) -> diesel::QueryResult<Vec<stories::Story>> {
    let (from, to) = day::day_bounds_utc(date, zone(newsletter));
    stories::published_between(conn, newsletter.id, from, to)
}

/// What preparing a day's issue found.
#[derive(Debug)]
pub enum Prepared {
    /// No story was published that day: nothing to send.
    NoStories,
    /// The issue, created now or earlier.
    Issue(digests::Issue),
}

/// Returns the day's issue, rendering and storing it first if needed. An existing issue is
/// kept as it was: what went to the first readers is what every reader gets.
pub fn prepare_issue(
    conn: &mut DbConnection,
    settings: &Settings,
    newsletter: &Newsletter,
    date: NaiveDate,
) -> Result<Prepared, ServiceError> {
    if let Some(issue) = digests::find(conn, newsletter.id, date)? {
        return Ok(Prepared::Issue(issue));
    }
    let stories = day_stories(conn, newsletter, date)?;
    if stories.is_empty() {
        return Ok(Prepared::NoStories);
    }
    let rendered = render_digest(
        settings,
        newsletter,
        date,
        &stories,
        UNSUBSCRIBE_PLACEHOLDER,
    )?;
    let issue = digests::create_if_absent(
        conn,
        &digests::NewIssue {
            newsletter_id: newsletter.id,
            issue_date: date,
            subject: &rendered.email.subject,
            body_text: &rendered.email.text,
            body_html: &rendered.email.html,
            story_count: i32::try_from(stories.len()).unwrap_or(i32::MAX),
            stories_json: &rendered.stories_json,
            created_at: db::now(),
        },
    )?;
    Ok(Prepared::Issue(issue))
}

/// A day's digest as its readers would get it, rendered without storing or sending
/// anything: the stored issue when the day was prepared already (every reader gets what
/// the first got), otherwise a fresh rendering of the day's stories.
#[derive(Debug, Clone)]
pub struct Preview {
    /// Subject line.
    pub subject: String,
    /// Text body, with [`UNSUBSCRIBE_PLACEHOLDER`] for the reader's link.
    pub text: String,
    /// HTML body, with [`UNSUBSCRIBE_PLACEHOLDER`] for the reader's link.
    pub html: String,
    /// The stories, in the order the digest shows them.
    pub stories: Vec<DigestStory>,
    /// The stored issue, when the day was prepared already.
    pub issue: Option<digests::Issue>,
}

impl Preview {
    /// The text body with `unsubscribe_url` in place of the reader's own link.
    pub fn text_with(&self, unsubscribe_url: &str) -> String {
        self.text.replace(UNSUBSCRIBE_PLACEHOLDER, unsubscribe_url)
    }

    /// The HTML body with `unsubscribe_url` in place of the reader's own link.
    pub fn html_with(&self, unsubscribe_url: &str) -> String {
        self.html.replace(UNSUBSCRIBE_PLACEHOLDER, unsubscribe_url)
    }
}

/// The unsubscribe link previews show: a real-looking link that unsubscribes nobody.
pub fn sample_unsubscribe_url(settings: &Settings) -> String {
    settings.server.link("/unsubscribe?token=PREVIEW")
}

/// Renders the day's digest for a preview; `None` when no story was published that day.
pub fn preview(
    conn: &mut DbConnection,
    settings: &Settings,
    newsletter: &Newsletter,
    date: NaiveDate,
) -> Result<Option<Preview>, ServiceError> {
    if let Some(issue) = digests::find(conn, newsletter.id, date)? {
        // The snapshot was written by us from `DigestStory` values; one we cannot read
        // back only costs the story list, never the preview itself.
        let stories = serde_json::from_str(&issue.stories_json).unwrap_or_default();
        return Ok(Some(Preview {
            subject: issue.subject.clone(),
            text: issue.body_text.clone(),
            html: issue.body_html.clone(),
            stories,
            issue: Some(issue),
        }));
    }
    let stories = day_stories(conn, newsletter, date)?;
    if stories.is_empty() {
        return Ok(None);
    }
    let rendered = render_digest(
        settings,
        newsletter,
        date,
        &stories,
        UNSUBSCRIBE_PLACEHOLDER,
    )?;
    let stories = serde_json::from_str(&rendered.stories_json).unwrap_or_default();
    Ok(Some(Preview {
        subject: rendered.email.subject,
        text: rendered.email.text,
        html: rendered.email.html,
        stories,
        issue: None,
    }))
}

/// What `send` did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SendOutcome {
    /// No stories that day; nothing was queued.
    NoStories,
    /// The issue was queued now for this many readers.
    Queued { issue_id: i64, recipients: usize },
    /// The issue had been queued before; nothing new was queued.
    AlreadyQueued { issue_id: i64 },
}

/// Creates the day's issue if needed and queues it for every confirmed reader, once.
pub fn send(
    conn: &mut DbConnection,
    settings: &Settings,
    newsletter: &Newsletter,
    date: NaiveDate,
) -> Result<SendOutcome, ServiceError> {
    let issue = match prepare_issue(conn, settings, newsletter, date)? {
        Prepared::NoStories => return Ok(SendOutcome::NoStories),
        Prepared::Issue(issue) => issue,
    };
    Ok(match digests::fan_out(conn, issue.id, db::now())? {
        Some(recipients) => {
            tracing::info!(issue_id = issue.id, newsletter = %newsletter.slug, %date, recipients, "digest queued");
            SendOutcome::Queued {
                issue_id: issue.id,
                recipients,
            }
        }
        None => SendOutcome::AlreadyQueued { issue_id: issue.id },
    })
}
