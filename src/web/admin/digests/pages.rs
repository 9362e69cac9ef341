//! The list of issues, a day's preview (and the framed email itself), and "Send now".

use actix_web::http::StatusCode;
use actix_web::http::header::{self, HeaderValue};
use actix_web::{HttpRequest, HttpResponse};
use askama::Template;

use super::{Day, Picker, badge, date_label, readers, service_error, utc_label};
use crate::db::digests;
use crate::digest::{self, Preview, SendOutcome};
use crate::mail::templates::DigestStory;
use crate::subscriptions::ServiceError;
use crate::web::admin::format::thousands_separated;
use crate::web::admin::{Console, ConsoleError, CsrfForm, Layout, render, render_with, see_other};
use crate::web::form;

/// Issues per page of the list.
const ISSUES_PER_PAGE: i64 = 30;

/// The framed email's own policy: its inline styles and remote images may load, nothing
/// else may run or load, only the console may frame it, and it is sandboxed even if
/// opened on its own.
const PREVIEW_CSP: &str = "default-src 'none'; style-src 'unsafe-inline'; \
     img-src https: http: data:; frame-ancestors 'self'; sandbox";

/// One issue in the list.
struct IssueRow {
    id: i64,
    newsletter_title: String,
    date: String,
    date_label: String,
    stories: i32,
    queued_at: Option<String>,
    sent: String,
    failed: String,
    remaining: String,
    state: &'static str,
    badge: &'static str,
}

#[derive(Template)]
#[template(path = "admin/digests.html")]
struct ListPage {
    layout: Layout,
    picker: Picker,
    rows: Vec<IssueRow>,
    total: i64,
    page: i64,
    pages: i64,
}

pub async fn list(console: Console, req: HttpRequest) -> Result<HttpResponse, ConsoleError> {
    let pairs = form::parse_pairs(req.query_string().as_bytes()).map_err(super::unreadable)?;
    let page = form::single(&pairs, "page").map_err(super::unreadable)?;
    let page = match page.as_deref().map(str::trim) {
        None | Some("") => 1,
        Some(raw) => raw
            .parse::<i64>()
            .ok()
            .filter(|p| (1..=1_000_000).contains(p))
            .ok_or_else(|| {
                ConsoleError::BadInput("The page number must be a whole number from 1.".into())
            })?,
    };
    let day = Day::from_pairs(&console, &[]).await?;
    let offset = (page - 1) * ISSUES_PER_PAGE;
    let (issues, counts, total) = crate::db::run(console.pool(), move |conn| {
        let issues = digests::list(conn, ISSUES_PER_PAGE, offset)?;
        let ids: Vec<i64> = issues.iter().map(|i| i.issue.id).collect();
        let counts = digests::counts_of(conn, &ids)?;
        Ok((issues, counts, digests::count_issues(conn)?))
    })
    .await?;
    let rows = issues
        .into_iter()
        .map(|found| {
            let counts = counts.get(&found.issue.id).copied().unwrap_or_default();
            let queued = found.issue.fanned_out_at.is_some();
            let (state, badge) = badge(queued, &counts);
            IssueRow {
                id: found.issue.id,
                newsletter_title: found.newsletter.title,
                date: found.issue.issue_date.to_string(),
                date_label: date_label(found.issue.issue_date),
                stories: found.issue.story_count,
                queued_at: found.issue.fanned_out_at.map(utc_label),
                sent: thousands_separated(counts.sent),
                failed: thousands_separated(counts.failed),
                // Paused deliveries are still to go: the badge says why they wait.
                remaining: thousands_separated(counts.remaining() + counts.paused),
                state,
                badge,
            }
        })
        .collect();
    render(&ListPage {
        layout: console.layout("digests"),
        picker: day.picker(),
        rows,
        total,
        page,
        pages: ((total + ISSUES_PER_PAGE - 1) / ISSUES_PER_PAGE).max(1),
    })
}

/// The day's preview, and how many readers a send would reach now.
async fn load_preview(
    console: &Console,
    day: &Day,
) -> Result<(Option<Preview>, i64), ConsoleError> {
    let (settings, newsletter, date) = (
        console.state.settings.clone(),
        day.newsletter.clone(),
        day.date,
    );
    crate::db::run_with(console.pool(), move |conn| {
        let preview = digest::preview(conn, &settings, &newsletter, date)?;
        let confirmed = digests::confirmed_readers(conn, newsletter.id)?;
        Ok::<_, ServiceError>((preview, confirmed))
    })
    .await
    .map_err(service_error)
}

/// The issue's id when the day was sent already.
fn sent_issue(preview: Option<&Preview>) -> Option<i64> {
    preview
        .and_then(|p| p.issue.as_ref())
        .filter(|issue| issue.fanned_out_at.is_some())
        .map(|issue| issue.id)
}

/// The parts of a preview the page shows (the email itself is framed).
struct PreviewBody {
    /// The digest stream's sender (`SPACEDIGEST_DIGEST_FROM`, else `SPACEDIGEST_FROM`).
    from: String,
    subject: String,
    stories: Vec<DigestStory>,
    text: String,
}

#[derive(Template)]
#[template(path = "admin/digest_preview.html")]
struct PreviewPage {
    layout: Layout,
    picker: Picker,
    newsletter_title: String,
    date_label: String,
    query: String,
    body: Option<PreviewBody>,
    recipients: String,
    sent_issue: Option<i64>,
}

pub async fn preview(console: Console, req: HttpRequest) -> Result<HttpResponse, ConsoleError> {
    let day = Day::from_query(&console, req.query_string()).await?;
    let (preview, confirmed) = load_preview(&console, &day).await?;
    let sample = digest::sample_unsubscribe_url(&console.state.settings);
    let sent_issue = sent_issue(preview.as_ref());
    let from = console
        .state
        .settings
        .mail
        .from_for(crate::config::MailStream::Digest)
        .to_string();
    let body = preview.map(|p| PreviewBody {
        from,
        text: p.text_with(&sample),
        subject: p.subject,
        stories: p.stories,
    });
    render(&PreviewPage {
        layout: console.layout("digests"),
        picker: day.picker(),
        newsletter_title: day.newsletter.title.clone(),
        date_label: date_label(day.date),
        query: day.query(),
        body,
        recipients: readers(confirmed),
        sent_issue,
    })
}

/// The digest's HTML exactly as a reader's copy has it (with a sample unsubscribe link),
/// for the preview's sandboxed frame.
pub async fn preview_html(
    console: Console,
    req: HttpRequest,
) -> Result<HttpResponse, ConsoleError> {
    let day = Day::from_query(&console, req.query_string()).await?;
    let (preview, _) = load_preview(&console, &day).await?;
    let (status, body) = match preview {
        Some(preview) => (
            StatusCode::OK,
            preview.html_with(&digest::sample_unsubscribe_url(&console.state.settings)),
        ),
        None => (
            StatusCode::NOT_FOUND,
            "<!DOCTYPE html><html lang=\"en\"><meta charset=\"utf-8\"><title>No digest</title>\
             <p>No stories for this day; nothing would be sent.</p></html>"
                .to_owned(),
        ),
    };
    Ok(HttpResponse::build(status)
        .content_type(header::ContentType::html())
        .insert_header((
            header::CONTENT_SECURITY_POLICY,
            HeaderValue::from_static(PREVIEW_CSP),
        ))
        .insert_header((
            header::X_FRAME_OPTIONS,
            HeaderValue::from_static("SAMEORIGIN"),
        ))
        .body(body))
}

#[derive(Template)]
#[template(path = "admin/digest_send.html")]
struct SendPage {
    layout: Layout,
    newsletter_title: String,
    slug: String,
    date: String,
    date_label: String,
    query: String,
    subject: Option<String>,
    story_count: usize,
    confirmed: i64,
    recipients: String,
    sent_issue: Option<i64>,
}

/// Asks before sending: the one step between a preview and thousands of emails.
pub async fn send_page(console: Console, req: HttpRequest) -> Result<HttpResponse, ConsoleError> {
    let day = Day::from_query(&console, req.query_string()).await?;
    let (preview, confirmed) = load_preview(&console, &day).await?;
    let sent_issue = sent_issue(preview.as_ref());
    render(&SendPage {
        layout: console.layout("digests"),
        newsletter_title: day.newsletter.title.clone(),
        slug: day.newsletter.slug.clone(),
        date: day.date.to_string(),
        date_label: date_label(day.date),
        query: day.query(),
        story_count: preview.as_ref().map_or(0, |p| p.stories.len()),
        subject: preview.map(|p| p.subject),
        confirmed,
        recipients: readers(confirmed),
        sent_issue,
    })
}

/// Queues the day's digest, exactly as `digest send` does: once, however often asked.
pub async fn send(form: CsrfForm) -> Result<HttpResponse, ConsoleError> {
    let day = Day::from_pairs(&form.console, &form.pairs).await?;
    if form.field("date").is_none_or(|d| d.trim().is_empty()) {
        return Err(ConsoleError::BadInput(
            "Choose the day to send; nothing was sent.".into(),
        ));
    }
    let console = form.console;
    let (settings, newsletter, date) = (
        console.state.settings.clone(),
        day.newsletter.clone(),
        day.date,
    );
    let outcome = crate::db::run_with(console.pool(), move |conn| {
        digest::send(conn, &settings, &newsletter, date)
    })
    .await
    .map_err(service_error)?;
    match outcome {
        SendOutcome::NoStories => render_with(
            StatusCode::BAD_REQUEST,
            &NoStoriesPage {
                layout: console.layout("digests"),
                newsletter_title: day.newsletter.title.clone(),
                date_label: date_label(day.date),
                query: day.query(),
            },
        ),
        SendOutcome::Queued {
            issue_id,
            recipients,
        } => {
            console.state.queue_signal.notify();
            tracing::info!(
                operator_id = console.operator.id,
                issue_id,
                recipients,
                "console: digest queued"
            );
            Ok(see_other(&format!("/admin/digests/{issue_id}?done=queued")))
        }
        SendOutcome::AlreadyQueued { issue_id } => {
            // A second worker nudge costs nothing and helps if the first was missed.
            console.state.queue_signal.notify();
            Ok(see_other(&format!(
                "/admin/digests/{issue_id}?done=already-sent"
            )))
        }
    }
}

#[derive(Template)]
#[template(path = "admin/digest_nothing.html")]
struct NoStoriesPage {
    layout: Layout,
    newsletter_title: String,
    date_label: String,
    query: String,
}
