//! `GET /admin/subscribers`: the list, searched and paged.

use actix_web::{HttpResponse, web};
use askama::Template;
use serde::Deserialize;

use super::subscription_badge;
use crate::db::{self, subscribers, subscriptions};
use crate::web::admin::format::{format_time, thousands_separated};
use crate::web::admin::{Console, ConsoleError, Layout, render};

/// Subscribers per page of the list.
const PAGE_SIZE: i64 = 50;
/// Longest search.
const MAX_QUERY: usize = 254;

fn encode(value: &str) -> String {
    percent_encoding::utf8_percent_encode(value, percent_encoding::NON_ALPHANUMERIC).to_string()
}

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

/// The list's query: the search, the page, and what the last action did.
#[derive(Deserialize)]
pub(super) struct ListQuery {
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

pub(super) async fn list(
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
        total_text: thousands_separated(total),
        page,
        pages,
    })
}
