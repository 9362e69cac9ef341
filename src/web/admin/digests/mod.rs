//! The console's digests pages: the list of issues, a day's preview, "Send now" with its
//! confirmation, and a send's live progress with pause, resume and cancel.
//!
//! Sending goes through [`crate::digest::send`], the very function `digest send` calls,
//! so a day is queued once however many operators and commands ask for it.

mod control;
mod pages;
mod progress;

use actix_web::web;
use chrono::{NaiveDate, NaiveDateTime};

use super::format::thousands_separated;
use super::{Console, ConsoleError};
use crate::db::digests::{self, IssueCounts, IssueWithNewsletter, SendState};
use crate::db::newsletters::{self, Newsletter};
use crate::domain::NewsletterSlug;
use crate::subscriptions::ServiceError;
use crate::web::form::{self, FormError};

pub fn configure(cfg: &mut web::ServiceConfig) {
    // The fixed paths come before `/digests/{id}`, which would match them too.
    cfg.route("/digests", web::get().to(pages::list))
        .route("/digests/preview", web::get().to(pages::preview))
        .route("/digests/preview.html", web::get().to(pages::preview_html))
        .service(
            web::resource("/digests/send")
                .route(web::get().to(pages::send_page))
                .route(web::post().to(pages::send)),
        )
        .route("/digests/{id}", web::get().to(progress::page))
        .route("/digests/{id}/progress.json", web::get().to(progress::json))
        .route("/digests/{id}/pause", web::post().to(control::pause))
        .route("/digests/{id}/resume", web::post().to(control::resume))
        .service(
            web::resource("/digests/{id}/cancel")
                .route(web::get().to(control::cancel_page))
                .route(web::post().to(control::cancel)),
        );
}

/// A newsletter in the picker's `<select>`.
pub struct NewsletterChoice {
    /// Slug (the option's value).
    pub slug: String,
    /// Title (its label).
    pub title: String,
    /// Whether it is the chosen one.
    pub selected: bool,
}

/// The newsletter-and-day picker shown above the list and the preview.
pub struct Picker {
    /// Every newsletter.
    pub newsletters: Vec<NewsletterChoice>,
    /// The chosen day, `YYYY-MM-DD`.
    pub date: String,
}

impl Picker {
    fn new(all: &[Newsletter], chosen: &Newsletter, date: NaiveDate) -> Self {
        Self {
            newsletters: all
                .iter()
                .map(|n| NewsletterChoice {
                    slug: n.slug.clone(),
                    title: n.title.clone(),
                    selected: n.id == chosen.id,
                })
                .collect(),
            date: date.to_string(),
        }
    }
}

/// A newsletter and day named in a query string or a form.
pub struct Day {
    /// The newsletter.
    pub newsletter: Newsletter,
    /// The day, in its time zone.
    pub date: NaiveDate,
    /// Every newsletter, for the picker.
    pub all: Vec<Newsletter>,
}

impl Day {
    /// Reads `newsletter` (default: the default newsletter) and `date` (default: today in
    /// the newsletter's zone) from urlencoded pairs; an unknown newsletter or a malformed
    /// date is a 400 that says so.
    async fn from_pairs(
        console: &Console,
        pairs: &[(String, String)],
    ) -> Result<Self, ConsoleError> {
        let slug = form::single(pairs, "newsletter")
            .map_err(unreadable)?
            .map(|s| s.trim().to_owned())
            .filter(|s| !s.is_empty())
            .unwrap_or_else(|| NewsletterSlug::DEFAULT.to_owned());
        let date = form::single(pairs, "date")
            .map_err(unreadable)?
            .map(|d| d.trim().to_owned())
            .filter(|d| !d.is_empty());
        let date = match date {
            None => None,
            Some(raw) => Some(parse_date(&raw)?),
        };
        let all = crate::db::run(console.pool(), newsletters::all).await?;
        let newsletter = all
            .iter()
            .find(|n| n.slug == slug)
            .cloned()
            .ok_or_else(|| {
                ConsoleError::BadInput(format!(
                    "There is no newsletter “{}”. Choose one from the list.",
                    shorten(&slug, 60)
                ))
            })?;
        let date = date.unwrap_or_else(|| crate::digest::today(&newsletter));
        Ok(Self {
            newsletter,
            date,
            all,
        })
    }

    /// Reads the day from the request's query string.
    async fn from_query(console: &Console, query: &str) -> Result<Self, ConsoleError> {
        let pairs = form::parse_pairs(query.as_bytes()).map_err(unreadable)?;
        Self::from_pairs(console, &pairs).await
    }

    /// `newsletter=…&date=…`, for links to the other pages of the same day.
    fn query(&self) -> String {
        serde_urlencoded::to_string([
            ("newsletter", self.newsletter.slug.as_str()),
            ("date", &self.date.to_string()),
        ])
        .unwrap_or_default()
    }

    fn picker(&self) -> Picker {
        Picker::new(&self.all, &self.newsletter, self.date)
    }
}

fn parse_date(raw: &str) -> Result<NaiveDate, ConsoleError> {
    NaiveDate::parse_from_str(raw, "%Y-%m-%d").map_err(|_| {
        ConsoleError::BadInput(format!(
            "“{}” is not a day: give it as YYYY-MM-DD, e.g. 2026-11-20.",
            shorten(raw, 40)
        ))
    })
}

/// Echoes at most `max` characters of user input in a message.
fn shorten(raw: &str, max: usize) -> String {
    if raw.chars().count() <= max {
        raw.to_owned()
    } else {
        let cut: String = raw.chars().take(max).collect();
        format!("{cut}…")
    }
}

/// The issue with the id in the path, or a 404.
async fn issue_from_path(
    console: &Console,
    raw: &str,
) -> Result<IssueWithNewsletter, ConsoleError> {
    let not_found = || ConsoleError::NotFound("There is no digest issue at this address.".into());
    let id: i64 = raw.parse().map_err(|_| not_found())?;
    crate::db::run(console.pool(), move |conn| digests::find_by_id(conn, id))
        .await?
        .ok_or_else(not_found)
}

/// The state badge of an issue: its label and colour.
fn badge(queued: bool, counts: &IssueCounts) -> (&'static str, &'static str) {
    if !queued {
        return ("Not sent", "badge--muted");
    }
    match counts.state() {
        SendState::Sending => ("Sending", "badge--info"),
        SendState::Paused => ("Paused", "badge--warn"),
        SendState::Cancelled => ("Cancelled", "badge--danger"),
        SendState::Delivered => ("Delivered", "badge--ok"),
    }
}

/// A query string or form that cannot be read: a 400 that says why.
fn unreadable(error: FormError) -> ConsoleError {
    ConsoleError::BadInput(format!("This request cannot be read: {error}."))
}

/// "20 November 2026".
fn date_label(date: NaiveDate) -> String {
    date.format("%-d %B %Y").to_string()
}

/// A stored UTC time as operators read it.
fn utc_label(at: NaiveDateTime) -> String {
    at.format("%Y-%m-%d %H:%M:%S UTC").to_string()
}

fn service_error(error: ServiceError) -> ConsoleError {
    match error {
        ServiceError::Storage(e) => ConsoleError::Storage(e),
        ServiceError::Render(e) => {
            ConsoleError::Internal(anyhow::anyhow!("rendering the digest failed: {e}"))
        }
    }
}

/// "1 reader", "3 readers".
fn readers(n: i64) -> String {
    if n == 1 {
        "1 reader".to_owned()
    } else {
        format!("{} readers", thousands_separated(n))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn numbers_are_grouped_by_thousands() {
        assert_eq!(thousands_separated(0), "0");
        assert_eq!(thousands_separated(999), "999");
        assert_eq!(thousands_separated(1000), "1,000");
        assert_eq!(thousands_separated(1_234_567), "1,234,567");
        assert_eq!(readers(1), "1 reader");
        assert_eq!(readers(2500), "2,500 readers");
    }

    #[test]
    fn long_input_is_shortened_in_messages() {
        assert_eq!(shorten("abc", 5), "abc");
        assert_eq!(shorten("abcdef", 3), "abc…");
    }
}
