//! Importing a feed from the console, by URL or by upload: the same fetch, limits,
//! parsing, sanitising and idempotent upsert as `stories import`.

use std::path::Path;

use actix_multipart::Multipart;
use actix_web::http::StatusCode;
use actix_web::{HttpResponse, web};
use askama::Template;
use chrono::{NaiveDate, NaiveDateTime, TimeZone, Utc};
use serde::Deserialize;
use url::Url;

use super::super::newsletter_select::{self as shared, NewsletterOption};
use super::super::{Console, ConsoleError, CsrfForm, Layout, render, render_with};
use super::day_url;
use crate::db::newsletters::Newsletter;
use crate::db::{self, stories};
use crate::digest;
use crate::feeds::fetch::display_url;
use crate::feeds::import::{self, ImportError, ImportReport};
use crate::feeds::{FeedError, FeedOrigin, MAX_FEED_BYTES};

pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.service(
        web::resource("/stories/import")
            .route(web::get().to(import_page))
            .route(web::post().to(import_url)),
    )
    .route("/stories/import/upload", web::post().to(import_upload));
}

/// What an import stored, for the page.
struct ImportResult {
    /// The report's own line, as `stories import` prints it.
    line: String,
    added: usize,
    updated: usize,
    unchanged: usize,
    skipped: usize,
    newsletter_title: String,
    /// The day to look at: of the newest story the import wrote, else today.
    day: Option<NaiveDate>,
    day_link: String,
}

impl ImportResult {
    /// The result of an import that began at `started`.
    async fn new(
        console: &Console,
        report: &ImportReport,
        newsletter: &Newsletter,
        started: NaiveDateTime,
    ) -> Result<Self, ConsoleError> {
        let newsletter_id = newsletter.id;
        let latest = db::run(console.pool(), move |conn| {
            stories::latest_written_since(conn, newsletter_id, started)
        })
        .await?;
        let zone = digest::zone(newsletter);
        let day = latest.map(|at| Utc.from_utc_datetime(&at).with_timezone(&zone).date_naive());
        Ok(Self {
            line: report.to_string(),
            added: report.counts.new,
            updated: report.counts.updated,
            unchanged: report.counts.unchanged,
            skipped: report.skipped.total(),
            newsletter_title: newsletter.title.clone(),
            day_link: day_url(
                &newsletter.slug,
                day.unwrap_or_else(|| digest::today(newsletter)),
            ),
            day,
        })
    }
}

#[derive(Template)]
#[template(path = "admin/stories_import.html")]
struct ImportPage {
    layout: Layout,
    /// Options of the URL form's select.
    url_newsletters: Vec<NewsletterOption>,
    /// Options of the upload form's select.
    upload_newsletters: Vec<NewsletterOption>,
    url: String,
    url_error: Option<String>,
    upload_error: Option<String>,
    result: Option<ImportResult>,
}

impl ImportPage {
    fn new(console: &Console, all: &[Newsletter], url_slug: &str, upload_slug: &str) -> Self {
        Self {
            layout: console.layout("stories"),
            url_newsletters: shared::options(all, url_slug),
            upload_newsletters: shared::options(all, upload_slug),
            url: String::new(),
            url_error: None,
            upload_error: None,
            result: None,
        }
    }
}

#[derive(Deserialize)]
struct PageQuery {
    newsletter: Option<String>,
}

async fn import_page(
    console: Console,
    query: Option<web::Query<PageQuery>>,
) -> Result<HttpResponse, ConsoleError> {
    let all = shared::all(&console).await?;
    let slug = query
        .and_then(|q| q.into_inner().newsletter)
        .unwrap_or_else(|| crate::domain::NewsletterSlug::DEFAULT.to_owned());
    render(&ImportPage::new(&console, &all, &slug, &slug))
}

/// The answer to a failed import: what went wrong, in the operator's words, or a 500
/// when the database failed.
fn reason(error: ImportError, source: &str) -> Result<String, ConsoleError> {
    match error {
        ImportError::Storage(e) => Err(ConsoleError::Storage(e)),
        other => Ok(format!("Cannot import {source}: {other}.")),
    }
}

#[derive(Deserialize)]
struct UrlForm {
    #[serde(default)]
    url: String,
    #[serde(default)]
    newsletter: String,
}

async fn import_url(form: CsrfForm) -> Result<HttpResponse, ConsoleError> {
    let input: UrlForm = form.parse()?;
    let console = form.console;
    let all = shared::all(&console).await?;
    let mut page = ImportPage::new(&console, &all, &input.newsletter, &input.newsletter);
    page.url = input.url.trim().to_owned();
    let refuse = |mut page: ImportPage, why: String| {
        page.url_error = Some(why);
        render_with(StatusCode::BAD_REQUEST, &page)
    };
    let newsletter = match shared::by_slug(&all, &input.newsletter) {
        Ok(n) => n,
        Err(why) => return refuse(page, why),
    };
    let shown = display_url(&page.url);
    let Some(url) = Url::parse(&page.url)
        .ok()
        .filter(|u| matches!(u.scheme(), "http" | "https"))
    else {
        return refuse(page, format!("\"{shown}\" is not an http or https URL."));
    };
    let started = db::now();
    let imported = match import::fetch_once(&url, &console.state.settings.fetch).await {
        Ok(bytes) => {
            import::import_bytes(console.pool(), newsletter.id, bytes, FeedOrigin::url(&url)).await
        }
        Err(e) => Err(e),
    };
    match imported {
        Ok(report) => {
            tracing::info!(
                operator_id = console.operator.id,
                newsletter = %newsletter.slug,
                new = report.counts.new,
                "console: feed imported from a URL"
            );
            page.result = Some(ImportResult::new(&console, &report, newsletter, started).await?);
            render(&page)
        }
        Err(e) => refuse(page, reason(e, &shown)?),
    }
}

async fn import_upload(
    console: Console,
    multipart: Multipart,
) -> Result<HttpResponse, ConsoleError> {
    let upload = console.read_multipart(multipart).await?;
    let slug = upload.text("newsletter").unwrap_or_default();
    let all = shared::all(&console).await?;
    let mut page = ImportPage::new(&console, &all, &slug, &slug);
    let refuse = |mut page: ImportPage, why: String| {
        page.upload_error = Some(why);
        render_with(StatusCode::BAD_REQUEST, &page)
    };
    let newsletter = match shared::by_slug(&all, &slug) {
        Ok(n) => n,
        Err(why) => return refuse(page, why),
    };
    let Some(file) = upload.file("file") else {
        return refuse(page, "Choose a feed file to upload.".into());
    };
    let name = file.filename.clone().unwrap_or_default();
    let origin = FeedOrigin::file(Path::new(&name));
    let shown = format!("\"{}\"", origin.name);
    if file.data.len() > MAX_FEED_BYTES {
        return refuse(page, reason(FeedError::TooLarge.into(), &shown)?);
    }
    let started = db::now();
    match import::import_bytes(console.pool(), newsletter.id, file.data.clone(), origin).await {
        Ok(report) => {
            tracing::info!(
                operator_id = console.operator.id,
                newsletter = %newsletter.slug,
                new = report.counts.new,
                "console: feed imported from an upload"
            );
            page.result = Some(ImportResult::new(&console, &report, newsletter, started).await?);
            render(&page)
        }
        Err(e) => refuse(page, reason(e, &shown)?),
    }
}
