//! The console's subscribers pages: search, a reader's history, unsubscribe, erase (a
//! privacy request), and CSV export and import.

use actix_web::http::StatusCode;
use actix_web::http::header;
use actix_web::web::Bytes;
use actix_web::{HttpResponse, web};
use askama::Template;
use chrono::NaiveDateTime;
use serde::Deserialize;

use super::{Console, ConsoleError, CsrfForm, Layout, render, render_with, see_other};
use crate::db::newsletters::Newsletter;
use crate::db::states::{EmailStatus, SubscriptionStatus};
use crate::db::subscribers::{self, Delivery, Subscriber};
use crate::db::subscriptions::{self, Subscription};
use crate::db::{self, newsletters};
use crate::subscriptions::ServiceError;
use crate::subscriptions::csv::{self, BadRow, ImportCounts, ImportMode, MAX_IMPORT_ROWS};
use crate::subscriptions::erase::erase;

/// Subscribers per page of the list.
const PAGE_SIZE: i64 = 50;
/// Deliveries shown on a subscriber's page.
const DELIVERIES_SHOWN: i64 = 100;
/// Bad rows listed after an import (all are counted).
const BAD_ROWS_SHOWN: usize = 1_000;
/// Longest consent note.
const MAX_CONSENT_NOTE: usize = 1_000;
/// Longest search.
const MAX_QUERY: usize = 254;

pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.route("/subscribers", web::get().to(list))
        .route("/subscribers/export.csv", web::get().to(export))
        .route("/subscribers/import", web::get().to(import_page))
        .route("/subscribers/import", web::post().to(import))
        .route("/subscribers/{id}", web::get().to(detail))
        .route("/subscribers/{id}/unsubscribe", web::post().to(unsubscribe))
        .route(
            "/subscribers/{id}/clear-bounce",
            web::post().to(super::bounces::clear),
        )
        .route("/subscribers/{id}/erase", web::get().to(erase_page))
        .route("/subscribers/{id}/erase", web::post().to(erase_now));
}

fn format_time(at: NaiveDateTime) -> String {
    at.format("%Y-%m-%d %H:%M UTC").to_string()
}

fn subscription_badge(status: SubscriptionStatus) -> &'static str {
    match status {
        SubscriptionStatus::Confirmed => "badge--ok",
        SubscriptionStatus::Pending => "badge--warn",
        SubscriptionStatus::Unsubscribed => "badge--muted",
    }
}

fn delivery_badge(status: EmailStatus) -> &'static str {
    match status {
        EmailStatus::Sent => "badge--ok",
        EmailStatus::Pending | EmailStatus::Paused => "badge--warn",
        EmailStatus::Failed => "badge--danger",
        EmailStatus::Skipped | EmailStatus::Cancelled => "badge--muted",
    }
}

pub(super) fn parse_id(raw: &str) -> Result<i64, ConsoleError> {
    raw.parse::<i64>()
        .ok()
        .filter(|id| *id > 0)
        .ok_or_else(|| ConsoleError::NotFound("There is no subscriber at this address.".into()))
}

fn encode(value: &str) -> String {
    percent_encoding::utf8_percent_encode(value, percent_encoding::NON_ALPHANUMERIC).to_string()
}

impl From<ServiceError> for ConsoleError {
    fn from(error: ServiceError) -> Self {
        match error {
            ServiceError::Storage(e) => ConsoleError::Storage(e),
            ServiceError::Render(e) => ConsoleError::Internal(anyhow::anyhow!(e)),
        }
    }
}

// ---------------------------------------------------------------------------- list

struct Badge {
    newsletter: String,
    status: &'static str,
    class: &'static str,
}

struct ListRow {
    id: i64,
    email: String,
    name: Option<String>,
    badges: Vec<Badge>,
    signed_up: String,
}

#[derive(Template)]
#[template(path = "admin/subscribers.html")]
struct ListPage {
    layout: Layout,
    q: String,
    rows: Vec<ListRow>,
    total: i64,
    total_text: String,
    page: i64,
    pages: i64,
    previous: Option<String>,
    next: Option<String>,
}

#[derive(Deserialize)]
struct ListQuery {
    q: Option<String>,
    page: Option<String>,
    done: Option<String>,
}

fn list_notice(done: Option<&str>) -> Option<String> {
    match done? {
        "erased" => Some("Erased.".into()),
        _ => None,
    }
}

async fn list(
    console: Console,
    query: web::Query<ListQuery>,
) -> Result<HttpResponse, ConsoleError> {
    let query = query.into_inner();
    let q = query.q.unwrap_or_default().trim().to_owned();
    if q.chars().count() > MAX_QUERY {
        return Err(ConsoleError::BadInput(format!(
            "The search is too long: at most {MAX_QUERY} characters."
        )));
    }
    let page = match query.page.as_deref().map(str::trim) {
        None | Some("") => 1,
        Some(raw) => raw
            .parse::<i64>()
            .ok()
            .filter(|p| (1..=1_000_000).contains(p))
            .ok_or_else(|| ConsoleError::BadInput(format!("\"{raw}\" is not a page number.")))?,
    };
    let fragment = (!q.is_empty()).then(|| q.clone());
    let (found, total, subscriptions) = db::run(console.pool(), move |conn| {
        let (found, total) =
            subscribers::search(conn, fragment.as_deref(), (page - 1) * PAGE_SIZE, PAGE_SIZE)?;
        let ids: Vec<i64> = found.iter().map(|s| s.id).collect();
        let subscriptions = subscriptions::subscriptions_with_newsletters(conn, &ids)?;
        Ok((found, total, subscriptions))
    })
    .await?;
    let rows = found
        .into_iter()
        .map(|s| ListRow {
            badges: subscriptions
                .iter()
                .filter(|(sub, _)| sub.subscriber_id == s.id)
                .map(|(sub, n)| Badge {
                    newsletter: n.title.clone(),
                    status: sub.status.as_str(),
                    class: subscription_badge(sub.status),
                })
                .collect(),
            id: s.id,
            email: s.email,
            name: s.name,
            signed_up: format_time(s.created_at),
        })
        .collect();
    let pages = ((total + PAGE_SIZE - 1) / PAGE_SIZE).max(1);
    let link = |p: i64| {
        if q.is_empty() {
            format!("/admin/subscribers?page={p}")
        } else {
            format!("/admin/subscribers?q={}&page={p}", encode(&q))
        }
    };
    render(&ListPage {
        layout: console.layout_with_notice("subscribers", list_notice(query.done.as_deref())),
        previous: (page > 1).then(|| link(page - 1)),
        next: (page < pages).then(|| link(page + 1)),
        q,
        rows,
        total,
        total_text: super::dashboard::thousands_separated(total),
        page,
        pages,
    })
}

// --------------------------------------------------------------------------- detail

struct SubscriptionRow {
    slug: String,
    title: String,
    status: &'static str,
    class: &'static str,
    active: bool,
    created_at: String,
    confirmed_at: Option<String>,
    unsubscribed_at: Option<String>,
}

struct DeliveryRow {
    kind: &'static str,
    subject: String,
    status: &'static str,
    class: &'static str,
    attempts: i32,
    created_at: String,
    finished_at: Option<String>,
    last_error: Option<String>,
}

#[derive(Template)]
#[template(path = "admin/subscriber.html")]
struct DetailPage {
    layout: Layout,
    subscriber: Subscriber,
    signed_up: String,
    subscriptions: Vec<SubscriptionRow>,
    any_active: bool,
    deliveries: Vec<DeliveryRow>,
    deliveries_total: i64,
    bounces: super::bounces::BouncePanel,
}

#[derive(Deserialize)]
struct DoneQuery {
    done: Option<String>,
}

fn detail_notice(done: Option<&str>) -> Option<String> {
    match done? {
        "unsubscribed" => Some("Unsubscribed. No further digest goes to them.".into()),
        "unsubscribed-all" => {
            Some("Unsubscribed from every newsletter. No further digest goes to them.".into())
        }
        "already-unsubscribed" => Some("They were already unsubscribed; nothing changed.".into()),
        "bounce-cleared" => Some(
            "Bounced mark cleared. Email goes to them again; earlier bounces no longer count."
                .into(),
        ),
        "not-bounced" => Some("They were not marked bounced; nothing changed.".into()),
        _ => None,
    }
}

async fn load_subscriber(
    console: &Console,
    id: i64,
) -> Result<(Subscriber, Vec<(Subscription, Newsletter)>), ConsoleError> {
    let found = db::run(console.pool(), move |conn| {
        let Some(subscriber) = subscribers::find(conn, id)? else {
            return Ok(None);
        };
        let subscriptions = subscriptions::subscriptions_with_newsletters(conn, &[id])?;
        Ok(Some((subscriber, subscriptions)))
    })
    .await?;
    found.ok_or_else(|| {
        ConsoleError::NotFound("There is no such subscriber; they may have been erased.".into())
    })
}

async fn detail(
    console: Console,
    path: web::Path<String>,
    query: web::Query<DoneQuery>,
) -> Result<HttpResponse, ConsoleError> {
    let id = parse_id(&path)?;
    let (subscriber, subscriptions) = load_subscriber(&console, id).await?;
    let (deliveries, deliveries_total) = db::run(console.pool(), move |conn| {
        subscribers::deliveries_of(conn, id, DELIVERIES_SHOWN)
    })
    .await?;
    let bounces = super::bounces::panel(&console, id, format_time).await?;
    let subscriptions: Vec<SubscriptionRow> = subscriptions
        .into_iter()
        .map(|(s, n)| SubscriptionRow {
            active: s.status != SubscriptionStatus::Unsubscribed,
            class: subscription_badge(s.status),
            created_at: format_time(s.created_at),
            confirmed_at: s.confirmed_at.map(format_time),
            unsubscribed_at: s.unsubscribed_at.map(format_time),
            status: s.status.as_str(),
            slug: n.slug,
            title: n.title,
        })
        .collect();
    let deliveries = deliveries
        .into_iter()
        .map(|d: Delivery| DeliveryRow {
            class: delivery_badge(d.status),
            created_at: format_time(d.created_at),
            finished_at: d.finished_at.map(format_time),
            kind: d.kind.as_str(),
            subject: d.subject,
            status: d.status.as_str(),
            attempts: d.attempts,
            last_error: d.last_error,
        })
        .collect();
    render(&DetailPage {
        layout: console.layout_with_notice("subscribers", detail_notice(query.done.as_deref())),
        signed_up: format_time(subscriber.created_at),
        any_active: subscriptions.iter().any(|s| s.active),
        subscriber,
        subscriptions,
        deliveries,
        deliveries_total,
        bounces,
    })
}

// ----------------------------------------------------------------------- unsubscribe

#[derive(Deserialize)]
struct UnsubscribeForm {
    #[serde(default)]
    newsletter: String,
}

async fn unsubscribe(
    form: CsrfForm,
    path: web::Path<String>,
) -> Result<HttpResponse, ConsoleError> {
    let input: UnsubscribeForm = form.parse()?;
    let console = form.console;
    let id = parse_id(&path)?;
    let (_, subscriptions) = load_subscriber(&console, id).await?;
    let which = input.newsletter.trim().to_owned();
    let now = db::now();
    let done = if which == "all" {
        let changed = db::run(console.pool(), move |conn| {
            subscriptions::unsubscribe_all(conn, id, now)
        })
        .await?;
        if changed > 0 {
            "unsubscribed-all"
        } else {
            "already-unsubscribed"
        }
    } else {
        let Some((subscription, _)) = subscriptions.iter().find(|(_, n)| n.slug == which) else {
            return Err(ConsoleError::BadInput(if which.is_empty() {
                "Choose the newsletter to unsubscribe them from.".into()
            } else {
                format!("They have no subscription to \"{which}\".")
            }));
        };
        let subscription_id = subscription.id;
        let changed = db::run(console.pool(), move |conn| {
            subscriptions::unsubscribe_one(conn, subscription_id, now)
        })
        .await?;
        if changed {
            "unsubscribed"
        } else {
            "already-unsubscribed"
        }
    };
    if done != "already-unsubscribed" {
        console
            .state
            .policy
            .metrics
            .unsubscribe(crate::observability::UnsubscribeHow::Console);
    }
    tracing::info!(
        operator_id = console.operator.id,
        subscriber_id = id,
        newsletter = %which,
        "console: subscriber unsubscribed"
    );
    Ok(see_other(&format!("/admin/subscribers/{id}?done={done}")))
}

// ---------------------------------------------------------------------------- erase

#[derive(Template)]
#[template(path = "admin/subscriber_erase.html")]
struct ErasePage {
    layout: Layout,
    subscriber: Subscriber,
    subscriptions: usize,
}

async fn erase_page(
    console: Console,
    path: web::Path<String>,
) -> Result<HttpResponse, ConsoleError> {
    let id = parse_id(&path)?;
    let (subscriber, subscriptions) = load_subscriber(&console, id).await?;
    render(&ErasePage {
        layout: console.layout("subscribers"),
        subscriber,
        subscriptions: subscriptions.len(),
    })
}

async fn erase_now(form: CsrfForm, path: web::Path<String>) -> Result<HttpResponse, ConsoleError> {
    let console = form.console;
    let id = parse_id(&path)?;
    let erased = db::run(console.pool(), move |conn| erase(conn, id)).await?;
    if erased.is_none() {
        return Err(ConsoleError::NotFound(
            "There is no such subscriber; they may have been erased already.".into(),
        ));
    }
    tracing::info!(
        operator_id = console.operator.id,
        subscriber_id = id,
        "console: subscriber erased"
    );
    Ok(see_other("/admin/subscribers?done=erased"))
}

// --------------------------------------------------------------------------- export

async fn export(console: Console) -> Result<HttpResponse, ConsoleError> {
    let pool = console.state.pool.clone();
    let operator_id = console.operator.id;
    tracing::info!(operator_id, "console: subscribers exported");
    let stream = futures_util::stream::unfold(Some(csv::Export::new()), move |state| {
        let pool = pool.clone();
        async move {
            let mut export = state?;
            let next = db::run(&pool, move |conn| {
                let chunk = export.next_chunk(conn)?;
                Ok((export, chunk))
            })
            .await;
            match next {
                Ok((export, Some(chunk))) => {
                    Some((Ok::<_, actix_web::Error>(Bytes::from(chunk)), Some(export)))
                }
                Ok((_, None)) => None,
                Err(error) => {
                    // The header is sent; all that can be done is to cut the download short.
                    tracing::error!(%error, operator_id, "console: the export failed midway");
                    Some((
                        Err(actix_web::error::ErrorInternalServerError(
                            "the export failed",
                        )),
                        None,
                    ))
                }
            }
        }
    });
    let filename = format!(
        "spacedigest-subscribers-{}.csv",
        db::now().format("%Y-%m-%d")
    );
    Ok(HttpResponse::Ok()
        .content_type("text/csv; charset=utf-8")
        .insert_header((
            header::CONTENT_DISPOSITION,
            format!("attachment; filename=\"{filename}\""),
        ))
        .streaming(stream))
}

// --------------------------------------------------------------------------- import

#[derive(Template)]
#[template(path = "admin/subscribers_import.html")]
struct ImportPage {
    layout: Layout,
    newsletters: Vec<Newsletter>,
    selected: String,
    confirmed: bool,
    consent_note: String,
    error: Option<String>,
    max_rows: usize,
}

#[derive(Template)]
#[template(path = "admin/subscribers_imported.html")]
struct ImportedPage {
    layout: Layout,
    newsletter: String,
    confirmed: bool,
    counts: ImportCounts,
    unsubscribed_in_file: usize,
    other_newsletter: usize,
    bad_total: usize,
    bad: Vec<BadRow>,
}

async fn import_page(console: Console) -> Result<HttpResponse, ConsoleError> {
    let newsletters = db::run(console.pool(), newsletters::all).await?;
    render(&ImportPage {
        layout: console.layout("subscribers"),
        newsletters,
        selected: crate::domain::NewsletterSlug::DEFAULT.to_owned(),
        confirmed: false,
        consent_note: String::new(),
        error: None,
        max_rows: MAX_IMPORT_ROWS,
    })
}

async fn import(
    console: Console,
    multipart: actix_multipart::Multipart,
) -> Result<HttpResponse, ConsoleError> {
    let upload = console.read_multipart(multipart).await?;
    let newsletters = db::run(console.pool(), newsletters::all).await?;
    let selected = upload
        .text("newsletter")
        .unwrap_or_default()
        .trim()
        .to_owned();
    let confirmed = upload.text("mode").as_deref().map(str::trim) == Some("confirmed");
    let consent_note = upload
        .text("consent_note")
        .unwrap_or_default()
        .trim()
        .replace("\r\n", "\n");
    let refuse = |message: String| {
        render_with(
            StatusCode::BAD_REQUEST,
            &ImportPage {
                layout: console.layout("subscribers"),
                newsletters: newsletters.clone(),
                selected: selected.clone(),
                confirmed,
                consent_note: consent_note.clone(),
                error: Some(message),
                max_rows: MAX_IMPORT_ROWS,
            },
        )
    };
    let mode = upload.text("mode").unwrap_or_default();
    if !matches!(mode.trim(), "confirm" | "confirmed" | "") {
        return refuse(
            "Choose how the addresses join: with a confirmation email, or as already confirmed."
                .into(),
        );
    }
    let Some(newsletter) = newsletters.iter().find(|n| n.slug == selected).cloned() else {
        return refuse("Choose the newsletter to import into.".into());
    };
    let mode = if confirmed {
        if consent_note.is_empty() {
            return refuse("To import addresses as confirmed, explain how these readers gave their consent (for example \"signed up on the paper form at the 2026 launch event\").".into());
        }
        if consent_note.chars().count() > MAX_CONSENT_NOTE
            || consent_note.chars().any(|c| c.is_control() && c != '\n')
        {
            return refuse(format!(
                "The consent note can be at most {MAX_CONSENT_NOTE} characters of plain text."
            ));
        }
        ImportMode::Confirmed {
            consent_note: consent_note.clone(),
        }
    } else {
        ImportMode::Confirm
    };
    let Some(file) = upload.file("file") else {
        return refuse("Choose a CSV file to import.".into());
    };
    let data = file.data.clone();
    let slug = newsletter.slug.clone();
    let parsed = web::block(move || csv::parse(&data, &slug))
        .await
        .map_err(|e| ConsoleError::Internal(e.into()))?;
    let parsed = match parsed {
        Ok(parsed) => parsed,
        Err(e) => return refuse(format!("The file cannot be imported: {e}.")),
    };
    let policy = console.state.policy.clone();
    let rows = parsed.rows;
    let (target, import_mode) = (newsletter.clone(), mode.clone());
    let counts = db::run_with(console.pool(), move |conn| {
        csv::import(conn, &policy, &target, &import_mode, &rows)
    })
    .await?;
    if mode == ImportMode::Confirm && counts.imported > 0 {
        console.state.queue_signal.notify();
    }
    tracing::info!(
        operator_id = console.operator.id,
        newsletter = %newsletter.slug,
        confirmed,
        imported = counts.imported,
        already_subscribed = counts.already_subscribed,
        left_unsubscribed = counts.left_unsubscribed,
        bad_rows = parsed.bad.len(),
        "console: subscribers imported"
    );
    let bad_total = parsed.bad.len();
    let mut bad = parsed.bad;
    bad.truncate(BAD_ROWS_SHOWN);
    render(&ImportedPage {
        layout: console.layout("subscribers"),
        newsletter: newsletter.title,
        confirmed,
        counts,
        unsubscribed_in_file: parsed.unsubscribed_in_file,
        other_newsletter: parsed.other_newsletter,
        bad_total,
        bad,
    })
}
