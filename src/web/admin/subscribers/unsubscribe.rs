//! `POST /admin/subscribers/{id}/unsubscribe`: from one newsletter, or from all.

use actix_web::{HttpResponse, web};
use serde::Deserialize;

use super::load_subscriber;
use crate::db::{self, subscriptions};
use crate::observability::UnsubscribeHow;
use crate::web::admin::format::subscriber_id;
use crate::web::admin::{ConsoleError, CsrfForm, see_other};

#[derive(Deserialize)]
struct UnsubscribeForm {
    #[serde(default)]
    newsletter: String,
}

pub(super) async fn unsubscribe(
    form: CsrfForm,
    path: web::Path<String>,
) -> Result<HttpResponse, ConsoleError> {
    let input: UnsubscribeForm = form.parse()?;
    let console = form.console;
    let id = subscriber_id(&path)?;
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
        console.state.metrics.unsubscribe(UnsubscribeHow::Console);
    }
    tracing::info!(
        operator_id = console.operator.id,
        subscriber_id = id,
        newsletter = %which,
        "console: subscriber unsubscribed"
    );
    Ok(see_other(&format!("/admin/subscribers/{id}?done={done}")))
}
