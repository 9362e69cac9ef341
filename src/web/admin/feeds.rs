//! The console's feeds page: the feeds `serve` polls, with how their last poll went;
//! adding, removing, and polling one now.

use actix_web::http::StatusCode;
use actix_web::{HttpResponse, web};
use askama::Template;
use chrono::NaiveDateTime;
use serde::Deserialize;

use super::format::format_time;
use super::format::path_id;
use super::newsletter_select::{self as shared, NewsletterOption};
use super::{Console, ConsoleError, CsrfForm, Layout, render, render_with, see_other};
use crate::db::{self, feeds};
use crate::domain::NewsletterSlug;
use crate::feeds::fetch::{display_url, feed_url};
use crate::feeds::{PollOutcome, poll_feed};
use crate::fetch::AddressPolicy;

pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.service(
        web::resource("/feeds")
            .route(web::get().to(list_page))
            .route(web::post().to(add)),
    )
    .route("/feeds/{id}/delete", web::post().to(delete))
    .route("/feeds/{id}/poll", web::post().to(poll_now));
}

struct FeedRow {
    id: i64,
    url: String,
    newsletter: String,
    last_polled: Option<Moment>,
    last_success: Option<Moment>,
    last_error: Option<String>,
}

/// A stored UTC time, as shown and as machine-readable.
struct Moment {
    shown: String,
    iso: String,
}

impl Moment {
    fn new(at: NaiveDateTime) -> Self {
        Self {
            shown: format_time(at),
            iso: at.and_utc().to_rfc3339(),
        }
    }
}

#[derive(Template)]
#[template(path = "admin/feeds.html")]
struct FeedsPage {
    layout: Layout,
    rows: Vec<FeedRow>,
    newsletters: Vec<NewsletterOption>,
    url: String,
    error: Option<String>,
    poll_minutes: u64,
    /// The feed the last "Poll now" failed on, for its error to stand out.
    failed_feed: Option<i64>,
}

/// What the last action did, from the redirect's query: numbers and ids only, so a link
/// cannot put words of its own on the page.
#[derive(Default, Deserialize)]
struct DoneQuery {
    done: Option<String>,
    feed: Option<i64>,
    new: Option<usize>,
    updated: Option<usize>,
    unchanged: Option<usize>,
}

impl DoneQuery {
    fn notice(&self) -> Option<String> {
        let n = |v: Option<usize>| v.unwrap_or(0);
        Some(match self.done.as_deref()? {
            "added" => "Feed added. It is polled now and then at every poll interval.".to_owned(),
            "removed" => "Feed removed. The stories it brought in stay.".to_owned(),
            "polled" => format!(
                "Polled: {} new, {} updated, {} unchanged.",
                n(self.new),
                n(self.updated),
                n(self.unchanged)
            ),
            "not-modified" => "Polled: the feed has not changed since the last poll.".to_owned(),
            "poll-failed" => "The poll failed; the reason is shown on the feed below.".to_owned(),
            _ => return None,
        })
    }
}

async fn page(
    console: &Console,
    notice: Option<String>,
    url: String,
    selected: &str,
    error: Option<String>,
    failed_feed: Option<i64>,
) -> Result<FeedsPage, ConsoleError> {
    let all = shared::all(console).await?;
    let registered = db::run(console.pool(), feeds::all_with_newsletter).await?;
    let rows = registered
        .into_iter()
        .map(|(feed, newsletter)| FeedRow {
            id: feed.id,
            url: display_url(&feed.url),
            newsletter,
            last_polled: feed.last_polled_at.map(Moment::new),
            last_success: feed.last_success_at.map(Moment::new),
            last_error: feed.last_error,
        })
        .collect();
    Ok(FeedsPage {
        layout: console.layout_with_notice("feeds", notice),
        rows,
        newsletters: shared::options(&all, selected),
        url,
        error,
        poll_minutes: console.state.settings.digest.feed_poll_interval.as_secs() / 60,
        failed_feed,
    })
}

async fn list_page(
    console: Console,
    query: Option<web::Query<DoneQuery>>,
) -> Result<HttpResponse, ConsoleError> {
    // A mangled query only loses its notice.
    let query = query.map(web::Query::into_inner).unwrap_or_default();
    let failed = (query.done.as_deref() == Some("poll-failed"))
        .then_some(query.feed)
        .flatten();
    let page = page(
        &console,
        query.notice(),
        String::new(),
        NewsletterSlug::DEFAULT,
        None,
        failed,
    )
    .await?;
    render(&page)
}

#[derive(Deserialize)]
struct AddForm {
    #[serde(default)]
    url: String,
    #[serde(default)]
    newsletter: String,
}

async fn add(form: CsrfForm) -> Result<HttpResponse, ConsoleError> {
    let input: AddForm = form.parse()?;
    let console = form.console;
    let all = shared::all(&console).await?;
    let policy = AddressPolicy::new(&console.state.settings.fetch);
    let checked = shared::by_slug(&all, &input.newsletter)
        .cloned()
        .and_then(|n| feed_url(&input.url).map(|url| (n, url)))
        .and_then(|(n, url)| match policy.check_url_before_lookup(&url) {
            Ok(()) => Ok((n, url)),
            Err(refused) => Err(format!(
                "Cannot add the feed {}: {refused}.",
                display_url(url.as_str())
            )),
        });
    let (newsletter, url) = match checked {
        Ok(found) => found,
        Err(why) => return refuse(&console, input, why).await,
    };
    let stored = url.to_string();
    let newsletter_id = newsletter.id;
    let added = db::run(console.pool(), move |conn| {
        feeds::add(conn, newsletter_id, &stored, db::now())
    })
    .await?;
    let Some(feed) = added else {
        let why = format!(
            "The feed {} is already registered for {}.",
            display_url(url.as_str()),
            newsletter.slug
        );
        return refuse(&console, input, why).await;
    };
    tracing::info!(
        operator_id = console.operator.id,
        feed_id = feed.id,
        newsletter = %newsletter.slug,
        "console: feed added"
    );
    Ok(see_other("/admin/feeds?done=added"))
}

async fn refuse(
    console: &Console,
    input: AddForm,
    why: String,
) -> Result<HttpResponse, ConsoleError> {
    let page = page(console, None, input.url, &input.newsletter, Some(why), None).await?;
    render_with(StatusCode::BAD_REQUEST, &page)
}

async fn find(console: &Console, raw_id: &str) -> Result<feeds::Feed, ConsoleError> {
    let id = path_id(raw_id, "feed")?;
    db::run(console.pool(), move |conn| feeds::find(conn, id))
        .await?
        .ok_or_else(|| {
            ConsoleError::NotFound("There is no such feed; it may have been removed.".into())
        })
}

async fn delete(form: CsrfForm, id: web::Path<String>) -> Result<HttpResponse, ConsoleError> {
    let console = form.console;
    let feed = find(&console, &id).await?;
    let feed_id = feed.id;
    db::run(console.pool(), move |conn| feeds::delete(conn, feed_id)).await?;
    tracing::info!(
        operator_id = console.operator.id,
        feed_id,
        "console: feed removed"
    );
    Ok(see_other("/admin/feeds?done=removed"))
}

async fn poll_now(form: CsrfForm, id: web::Path<String>) -> Result<HttpResponse, ConsoleError> {
    let console = form.console;
    let feed = find(&console, &id).await?;
    let feed_id = feed.id;
    let report = poll_feed(console.pool(), &console.state.settings.fetch, feed).await;
    tracing::info!(
        operator_id = console.operator.id,
        feed_id,
        "console: feed polled on demand"
    );
    Ok(see_other(&match report.outcome {
        PollOutcome::Imported(report) => format!(
            "/admin/feeds?done=polled&feed={feed_id}&new={}&updated={}&unchanged={}",
            report.counts.new, report.counts.updated, report.counts.unchanged
        ),
        PollOutcome::NotModified => format!("/admin/feeds?done=not-modified&feed={feed_id}"),
        PollOutcome::Failed(_) => format!("/admin/feeds?done=poll-failed&feed={feed_id}"),
    }))
}
