//! `GET /archive/SLUG` and `GET /archive/SLUG/YYYY-MM-DD`: sent digests as pages, with
//! nothing personal in them.

use actix_web::http::StatusCode;
use actix_web::{HttpRequest, HttpResponse, web};
use chrono::NaiveDate;

use crate::db::{digests, newsletters};
use crate::mail::templates::DigestStory;
use crate::web::AppState;
use crate::web::pages::{ArchiveEntry, ArchiveIndexPage, ArchiveIssuePage};
use crate::web::responses::{self, Format};

/// Issues shown on a newsletter's archive page.
const ARCHIVE_LENGTH: i64 = 366;

/// The list of sent issues.
pub async fn index(
    req: HttpRequest,
    path: web::Path<String>,
    state: web::Data<AppState>,
) -> HttpResponse {
    let slug = path.into_inner();
    let found = crate::db::run(&state.pool, move |conn| {
        let Some(newsletter) = newsletters::by_slugs(conn, &[slug])?.into_iter().next() else {
            return Ok(None);
        };
        let issues = digests::sent_issues(conn, newsletter.id, ARCHIVE_LENGTH)?;
        Ok(Some((newsletter, issues)))
    })
    .await;
    match found {
        Ok(Some((newsletter, issues))) => responses::page(
            StatusCode::OK,
            &ArchiveIndexPage {
                newsletter_title: newsletter.title.clone(),
                issues: issues
                    .into_iter()
                    .map(|issue| ArchiveEntry {
                        date_label: issue.issue_date.format("%-d %B %Y").to_string(),
                        lead: lead_title(&issue.stories_json),
                        story_count: issue.story_count,
                        url: format!("/archive/{}/{}", newsletter.slug, issue.issue_date),
                    })
                    .collect(),
            },
        ),
        Ok(None) => not_found(&req),
        Err(error) => responses::unavailable(Format::Html, &error),
    }
}

/// One sent issue.
pub async fn issue(
    req: HttpRequest,
    path: web::Path<(String, String)>,
    state: web::Data<AppState>,
) -> HttpResponse {
    let (slug, date) = path.into_inner();
    let Ok(date) = NaiveDate::parse_from_str(&date, "%Y-%m-%d") else {
        return not_found(&req);
    };
    let found = crate::db::run(&state.pool, move |conn| {
        let Some(newsletter) = newsletters::by_slugs(conn, &[slug])?.into_iter().next() else {
            return Ok(None);
        };
        Ok(digests::find(conn, newsletter.id, date)?
            .filter(|issue| issue.fanned_out_at.is_some())
            .map(|issue| (newsletter, issue)))
    })
    .await;
    match found {
        Ok(Some((newsletter, issue))) => {
            let stories: Vec<DigestStory> =
                serde_json::from_str(&issue.stories_json).unwrap_or_default();
            responses::page(
                StatusCode::OK,
                &ArchiveIssuePage {
                    newsletter_title: newsletter.title,
                    date_label: date.format("%-d %B %Y").to_string(),
                    archive_url: format!("/archive/{}", newsletter.slug),
                    stories,
                },
            )
        }
        Ok(None) => not_found(&req),
        Err(error) => responses::unavailable(Format::Html, &error),
    }
}

fn lead_title(stories_json: &str) -> String {
    serde_json::from_str::<Vec<DigestStory>>(stories_json)
        .ok()
        .and_then(|stories| stories.into_iter().next())
        .map(|story| story.title)
        .unwrap_or_default()
}

fn not_found(req: &HttpRequest) -> HttpResponse {
    responses::error(
        Format::of(req),
        StatusCode::NOT_FOUND,
        "not_found",
        "No such issue",
        "There is no sent issue at this address. The archive lists every issue that went out.",
    )
}
