//! A send's progress: figures, state and controls, its recipients page by page, and the
//! JSON the page's script polls to keep the figures live.

use actix_web::dev::Payload;
use actix_web::http::StatusCode;
use actix_web::{FromRequest, HttpRequest, HttpResponse, ResponseError, web};
use askama::Template;
use serde::Serialize;

use super::{date_label, issue_from_path, utc_label};
use crate::db::digests::{self, IssueCounts, IssueWithNewsletter, SendState};
use crate::db::outbound::{self, PageStart, Recipient, RecipientFilter};
use crate::db::states::EmailStatus;
use crate::web::admin::format::thousands_separated;
use crate::web::admin::{Console, ConsoleError, Layout, render};
use crate::web::form;

/// Recipients per page.
const RECIPIENTS_PER_PAGE: i64 = 100;

/// Where a send stands, as the page shows it and `progress.json` reports it.
#[derive(Debug, Clone, Serialize)]
pub struct Progress {
    sent: i64,
    failed: i64,
    /// Queued or retrying (paused ones not included).
    remaining: i64,
    paused: i64,
    cancelled: i64,
    skipped: i64,
    total: i64,
    percent: i64,
    /// "Sending", "Paused", "Cancelled", "Delivered" (or "Not sent" before the fan-out).
    status: &'static str,
    /// Deliveries that reached an outcome in the last minute.
    rate_per_minute: i64,
    #[serde(skip)]
    done: i64,
    #[serde(skip)]
    counts: IssueCounts,
    #[serde(skip)]
    queued: bool,
    #[serde(skip)]
    badge: &'static str,
}

impl Progress {
    /// The send's state; `None` before the issue was queued.
    pub(super) fn state(&self) -> Option<SendState> {
        self.queued.then(|| self.counts.state())
    }

    /// The state's word.
    pub(super) fn status_label(&self) -> &'static str {
        self.status
    }

    /// Deliveries that have not gone out and may still (queued, retrying or paused).
    pub(super) fn not_yet_sent(&self) -> i64 {
        self.remaining + self.paused
    }

    fn sending(&self) -> bool {
        self.status == SendState::Sending.label()
    }

    fn paused_now(&self) -> bool {
        self.status == SendState::Paused.label()
    }

    /// A figure as the page shows it (the script formats the same way).
    fn shown(&self, n: &i64) -> String {
        thousands_separated(*n)
    }

    /// The bar's maximum: a `<progress>` needs one above zero.
    fn bar_max(&self) -> i64 {
        self.total.max(1)
    }

    fn bar_value(&self) -> i64 {
        if self.total == 0 { 1 } else { self.done }
    }
}

/// Reads an issue's figures.
pub(super) async fn progress_of(
    console: &Console,
    found: &IssueWithNewsletter,
) -> Result<Progress, ConsoleError> {
    let issue_id = found.issue.id;
    let since = crate::db::now() - chrono::Duration::minutes(1);
    let (counts, rate) = crate::db::run(console.pool(), move |conn| {
        Ok((
            digests::counts(conn, issue_id)?,
            digests::finished_since(conn, issue_id, since)?,
        ))
    })
    .await?;
    let queued = found.issue.fanned_out_at.is_some();
    let (status, badge) = super::badge(queued, &counts);
    Ok(Progress {
        sent: counts.sent,
        failed: counts.failed,
        remaining: counts.remaining(),
        paused: counts.paused,
        cancelled: counts.cancelled,
        skipped: counts.skipped,
        total: counts.total(),
        percent: counts.percent(),
        status,
        rate_per_minute: rate,
        done: counts.done(),
        counts,
        queued,
        badge,
    })
}

/// A recipient as the table shows them.
struct RecipientRow {
    email: String,
    status: &'static str,
    badge: &'static str,
    attempts: i32,
    finished_at: String,
    reply: String,
}

impl From<Recipient> for RecipientRow {
    fn from(r: Recipient) -> Self {
        let (status, badge) = match r.status {
            EmailStatus::Sent => ("Sent", "badge--ok"),
            EmailStatus::Failed => ("Failed", "badge--danger"),
            EmailStatus::Paused => ("Paused", "badge--warn"),
            EmailStatus::Cancelled => ("Cancelled", "badge--muted"),
            EmailStatus::Skipped => ("Skipped", "badge--muted"),
            // Tried and failed before: waiting for its next attempt.
            EmailStatus::Pending if r.attempts > 0 && r.last_error.is_some() => {
                ("Retrying", "badge--warn")
            }
            // Claimed by a worker, never failed: on its way now.
            EmailStatus::Pending if r.attempts > 0 => ("Sending", "badge--info"),
            EmailStatus::Pending => ("Queued", "badge--info"),
        };
        Self {
            email: r.recipient_email,
            status,
            badge,
            attempts: r.attempts,
            finished_at: r.finished_at.map(utc_label).unwrap_or_default(),
            reply: r.last_error.unwrap_or_default(),
        }
    }
}

/// One of the filters above the recipients table.
struct FilterLink {
    key: &'static str,
    label: &'static str,
    count: String,
    href: String,
    current: bool,
}

#[derive(Template)]
#[template(path = "admin/digest_progress.html")]
struct ProgressPage {
    layout: Layout,
    issue_id: i64,
    newsletter_title: String,
    query: String,
    date_label: String,
    subject: String,
    story_count: i32,
    queued_at: Option<String>,
    progress: Progress,
    refresh_href: String,
    filters: Vec<FilterLink>,
    filter_label: &'static str,
    recipients: Vec<RecipientRow>,
    first_href: Option<String>,
    previous_href: Option<String>,
    next_href: Option<String>,
}

fn notice(done: Option<&str>) -> Option<String> {
    let text = match done? {
        "queued" => "The digest is queued; the delivery worker is sending it now.",
        "already-sent" => "This digest was already sent; nothing new was queued.",
        "paused" => {
            "Sending is paused: nothing more is picked up until you resume it. Copies already on their way may still arrive."
        }
        "already-paused" => "This send was already paused.",
        "resumed" => "Sending resumed.",
        "already-sending" => "This send is already going out.",
        "cancelled" => {
            "The send was cancelled. Readers it had not reached will not get this digest."
        }
        "already-cancelled" => "This send was already cancelled.",
        _ => return None,
    };
    Some(text.to_owned())
}

fn filter_count(counts: &IssueCounts, filter: RecipientFilter) -> i64 {
    match filter {
        RecipientFilter::All => counts.total(),
        RecipientFilter::Sent => counts.sent,
        RecipientFilter::Failed => counts.failed,
        RecipientFilter::Remaining => counts.remaining(),
        RecipientFilter::Paused => counts.paused,
        RecipientFilter::Cancelled => counts.cancelled,
        RecipientFilter::Skipped => counts.skipped,
    }
}

fn filter_label(filter: RecipientFilter) -> &'static str {
    match filter {
        RecipientFilter::All => "All",
        RecipientFilter::Sent => "Sent",
        RecipientFilter::Failed => "Failed",
        RecipientFilter::Remaining => "Remaining",
        RecipientFilter::Paused => "Paused",
        RecipientFilter::Cancelled => "Cancelled",
        RecipientFilter::Skipped => "Skipped",
    }
}

/// `?status=…&after=…|before=…&done=…`, strictly: a malformed value is a 400.
fn parse_query(raw: &str) -> Result<(RecipientFilter, PageStart, Option<String>), ConsoleError> {
    let bad = |why: String| ConsoleError::BadInput(why);
    let pairs = form::parse_pairs(raw.as_bytes()).map_err(super::unreadable)?;
    let one = |name: &str| {
        form::single(&pairs, name)
            .map(|v| v.filter(|v| !v.trim().is_empty()))
            .map_err(super::unreadable)
    };
    let filter = match one("status")? {
        None => RecipientFilter::All,
        Some(name) => RecipientFilter::parse(name.trim()).ok_or_else(|| {
            bad("The recipients can be filtered by all, sent, failed, remaining, paused, cancelled or skipped.".into())
        })?,
    };
    let id = |name: &str, raw: String| {
        raw.trim()
            .parse::<i64>()
            .ok()
            .filter(|id| *id >= 0)
            .ok_or_else(|| bad(format!("“{name}” must be a row number.")))
    };
    let start = match (one("after")?, one("before")?) {
        (Some(_), Some(_)) => {
            return Err(bad("Give either “after” or “before”, not both.".into()));
        }
        (Some(after), None) => PageStart::After(id("after", after)?),
        (None, Some(before)) => PageStart::Before(id("before", before)?),
        (None, None) => PageStart::First,
    };
    Ok((filter, start, one("done")?))
}

pub async fn page(
    console: Console,
    path: web::Path<String>,
    req: HttpRequest,
) -> Result<HttpResponse, ConsoleError> {
    let (filter, start, done) = parse_query(req.query_string())?;
    let found = issue_from_path(&console, &path).await?;
    let progress = progress_of(&console, &found).await?;
    let issue_id = found.issue.id;
    let (rows, more) = crate::db::run(console.pool(), move |conn| {
        outbound::recipients(conn, issue_id, filter, start, RECIPIENTS_PER_PAGE)
    })
    .await?;

    let base = format!("/admin/digests/{issue_id}");
    let with_filter = |extra: &str| {
        let mut href = base.clone();
        let mut sep = '?';
        if filter != RecipientFilter::All {
            href.push_str(&format!("?status={}", filter.as_str()));
            sep = '&';
        }
        if !extra.is_empty() {
            href.push(sep);
            href.push_str(extra);
        }
        href
    };
    let (first_id, last_id) = (rows.first().map(|r| r.id), rows.last().map(|r| r.id));
    let after = |id: Option<i64>| id.map(|id| with_filter(&format!("after={id}")));
    let before = |id: Option<i64>| id.map(|id| with_filter(&format!("before={id}")));
    let (previous_href, next_href) = match start {
        PageStart::First => (None, after(last_id.filter(|_| more))),
        PageStart::After(_) => (before(first_id), after(last_id.filter(|_| more))),
        PageStart::Before(_) => (before(first_id.filter(|_| more)), after(last_id)),
    };
    let first_href = previous_href.as_ref().map(|_| with_filter(""));

    let filters = RecipientFilter::ALL
        .into_iter()
        .map(|f| FilterLink {
            key: f.as_str(),
            label: filter_label(f),
            count: thousands_separated(filter_count(&progress.counts, f)),
            href: if f == RecipientFilter::All {
                base.clone()
            } else {
                format!("{base}?status={}", f.as_str())
            },
            current: f == filter,
        })
        .collect();
    let query = serde_urlencoded::to_string([
        ("newsletter", found.newsletter.slug.as_str()),
        ("date", &found.issue.issue_date.to_string()),
    ])
    .unwrap_or_default();
    render(&ProgressPage {
        layout: console.layout_with_notice("digests", notice(done.as_deref())),
        issue_id,
        newsletter_title: found.newsletter.title.clone(),
        query,
        date_label: date_label(found.issue.issue_date),
        subject: found.issue.subject.clone(),
        story_count: found.issue.story_count,
        queued_at: found.issue.fanned_out_at.map(utc_label),
        refresh_href: with_filter(""),
        progress,
        filters,
        filter_label: filter_label(filter),
        recipients: rows.into_iter().map(RecipientRow::from).collect(),
        first_href,
        previous_href,
        next_href,
    })
}

/// `GET /admin/digests/{id}/progress.json`. A script asks for it, so a missing session
/// is a 401 in JSON rather than a redirect to an HTML login page.
pub async fn json(req: HttpRequest, path: web::Path<String>) -> HttpResponse {
    let console = match Console::from_request(&req, &mut Payload::None).await {
        Ok(console) => console,
        Err(ConsoleError::LoginRequired) => {
            return json_error(
                StatusCode::UNAUTHORIZED,
                "login_required",
                "Your session has ended; log in again.",
            );
        }
        Err(e) => return error_as_json(&e),
    };
    let found = match issue_from_path(&console, &path).await {
        Ok(found) => found,
        Err(e) => return error_as_json(&e),
    };
    match progress_of(&console, &found).await {
        Ok(progress) => HttpResponse::Ok().json(progress),
        Err(e) => error_as_json(&e),
    }
}

fn error_as_json(error: &ConsoleError) -> HttpResponse {
    let status = error.status_code();
    match error {
        ConsoleError::NotFound(why) => json_error(status, "not_found", why),
        ConsoleError::Storage(e) if e.is_unavailable() => {
            tracing::warn!(error = %e, "console: progress unavailable");
            json_error(
                status,
                "unavailable",
                "The database cannot be reached right now.",
            )
        }
        e => {
            tracing::error!(error = %e, "console: progress failed");
            json_error(status, "internal", "Something went wrong on our side.")
        }
    }
}

fn json_error(status: StatusCode, code: &str, message: &str) -> HttpResponse {
    HttpResponse::build(status).json(serde_json::json!({ "error": code, "message": message }))
}
