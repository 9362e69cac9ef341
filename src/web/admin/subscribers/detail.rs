//! `GET /admin/subscribers/{id}`: a reader's subscriptions, deliveries and bounces.

use actix_web::{HttpResponse, web};
use askama::Template;
use serde::Deserialize;

use super::{delivery_badge, load_subscriber, subscription_badge};
use crate::db;
use crate::db::states::SubscriptionStatus;
use crate::db::subscribers::{self, Delivery, Subscriber};
use crate::web::admin::bounces::{self, BouncePanel};
use crate::web::admin::format::{format_time, subscriber_id};
use crate::web::admin::{Console, ConsoleError, Layout, render};

/// Deliveries shown on a subscriber's page.
const DELIVERIES_SHOWN: i64 = 100;

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
    bounces: BouncePanel,
}

/// `?done=`: what the last action on this subscriber did.
#[derive(Deserialize)]
pub(super) struct DoneQuery {
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

pub(super) async fn detail(
    console: Console,
    path: web::Path<String>,
    query: web::Query<DoneQuery>,
) -> Result<HttpResponse, ConsoleError> {
    let id = subscriber_id(&path)?;
    let (subscriber, subscriptions) = load_subscriber(&console, id).await?;
    let (deliveries, deliveries_total) = db::run(console.pool(), move |conn| {
        subscribers::deliveries_of(conn, id, DELIVERIES_SHOWN)
    })
    .await?;
    let bounces = bounces::panel(&console, id).await?;
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
