//! The daily digest: choose the day's stories, render the issue once, fan it out to every
//! confirmed reader through the outbound queue, and personalise each copy at send time.

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
