//! A subscriber's bounces and complaints in the console: the bounced mark, the score, the
//! history, and the operator's clearing of the mark.

use actix_web::{HttpResponse, web};

use super::format::{format_time, subscriber_id};
use super::{Console, ConsoleError, CsrfForm, see_other};
use crate::db::states::{BounceKind, BounceSource};
use crate::db::{self, bounces};

/// Events shown on a subscriber's page.
const EVENTS_SHOWN: i64 = 100;

/// One line of the bounce history, as the page shows it.
pub struct EventRow {
    pub at: String,
    pub kind: &'static str,
    pub class: &'static str,
    pub source: &'static str,
    pub reason: String,
}

/// The bounce panel of a subscriber's page.
pub struct BouncePanel {
    /// When they were marked bounced, formatted.
    pub bounced_at: Option<String>,
    /// "1.5", the score within the window.
    pub score: String,
    pub hard: u32,
    pub soft: u32,
    /// The window, in days.
    pub window_days: u64,
    pub events: Vec<EventRow>,
    pub events_total: i64,
}

fn kind_badge(kind: BounceKind) -> &'static str {
    match kind {
        BounceKind::Hard | BounceKind::Complaint => "badge--danger",
        BounceKind::Soft => "badge--warn",
        BounceKind::Cleared => "badge--muted",
    }
}

fn source_label(source: BounceSource) -> &'static str {
    match source {
        BounceSource::Smtp => "mail server",
        BounceSource::Webhook => "bounce webhook",
        BounceSource::Console => "console",
    }
}

/// Loads the panel for subscriber `id`.
pub async fn panel(console: &Console, id: i64) -> Result<BouncePanel, ConsoleError> {
    let rules = &console.state.settings.bounces;
    let limits = bounces::Limits {
        hard_limit: rules.hard_limit,
        score_limit: rules.score_limit,
        window: rules.window,
    };
    let window_days = limits.window.as_secs() / 86_400;
    let (standing, (events, events_total)) = db::run(console.pool(), move |conn| {
        let standing = bounces::standing(conn, &limits, id, db::now())?;
        Ok((standing, bounces::events_of(conn, id, EVENTS_SHOWN)?))
    })
    .await?;
    Ok(BouncePanel {
        bounced_at: standing.bounced_at.map(format_time),
        score: format!("{}", standing.score()),
        hard: standing.hard,
        soft: standing.soft,
        window_days,
        events: events
            .into_iter()
            .map(|e| EventRow {
                at: format_time(e.created_at),
                class: kind_badge(e.kind),
                source: source_label(e.source),
                kind: e.kind.as_str(),
                reason: e.reason,
            })
            .collect(),
        events_total,
    })
}

/// `POST /admin/subscribers/{id}/clear-bounce`: mail goes to them again; earlier bounces
/// stop counting.
pub async fn clear(form: CsrfForm, path: web::Path<String>) -> Result<HttpResponse, ConsoleError> {
    let console = form.console;
    let id = subscriber_id(&path)?;
    let operator = console.operator.email.clone();
    let found = db::run(console.pool(), move |conn| {
        if db::subscribers::find(conn, id)?.is_none() {
            return Ok(None);
        }
        bounces::clear(conn, id, &operator, db::now()).map(Some)
    })
    .await?;
    let Some(cleared) = found else {
        return Err(ConsoleError::NotFound(
            "There is no such subscriber; they may have been erased.".into(),
        ));
    };
    if cleared {
        tracing::info!(
            operator_id = console.operator.id,
            subscriber_id = id,
            "console: bounced mark cleared"
        );
    }
    let done = if cleared {
        "bounce-cleared"
    } else {
        "not-bounced"
    };
    Ok(see_other(&format!("/admin/subscribers/{id}?done={done}")))
}
