//! The console's subscribers pages, one file each: search ([`list`]), a reader's history
//! ([`detail`]), [`unsubscribe`], [`erase`] (a privacy request), and CSV [`export`] and
//! [`import`]. The bounce panel and its clearing live in [`super::bounces`].

mod detail;
mod erase;
mod export;
mod import;
mod list;
mod unsubscribe;

use actix_web::web;

use super::{Console, ConsoleError, bounces};
use crate::db;
use crate::db::newsletters::Newsletter;
use crate::db::states::{EmailStatus, SubscriptionStatus};
use crate::db::subscribers::{self, Subscriber};
use crate::db::subscriptions::{self, Subscription};

/// Registers `/admin/subscribers` and the pages under it.
pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.route("/subscribers", web::get().to(list::list))
        .route("/subscribers/export.csv", web::get().to(export::export))
        .route("/subscribers/import", web::get().to(import::import_page))
        .route("/subscribers/import", web::post().to(import::import))
        .route("/subscribers/{id}", web::get().to(detail::detail))
        .route(
            "/subscribers/{id}/unsubscribe",
            web::post().to(unsubscribe::unsubscribe),
        )
        .route(
            "/subscribers/{id}/clear-bounce",
            web::post().to(bounces::clear),
        )
        .route("/subscribers/{id}/erase", web::get().to(erase::erase_page))
        .route("/subscribers/{id}/erase", web::post().to(erase::erase_now));
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

/// The subscriber `id` and their subscriptions, or the console's 404 if there is none.
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
