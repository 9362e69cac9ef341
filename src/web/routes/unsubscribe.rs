//! `GET /unsubscribe` shows a button; `POST /unsubscribe` unsubscribes, from the button or
//! from a mailbox provider's RFC 8058 one-click POST (no cookie, never a redirect).

use actix_web::http::StatusCode;
use actix_web::{HttpRequest, HttpResponse, web};

use crate::observability::UnsubscribeHow;
use crate::subscriptions;
use crate::tokens::UnsubscribeScope;
use crate::web::pages::{LinkProblemPage, UnsubscribePage, UnsubscribedPage};
use crate::web::responses::{self, Format};
use crate::web::{AppState, form};

/// The page behind the link.
pub async fn unsubscribe_page(req: HttpRequest, state: web::Data<AppState>) -> HttpResponse {
    let Some((token, scope)) = verified_token(&req, &state) else {
        return invalid_link();
    };
    match crate::db::run_with(&state.pool, move |conn| {
        subscriptions::describe_scope(conn, scope)
    })
    .await
    {
        Ok(Some(what)) => responses::page(StatusCode::OK, &UnsubscribePage { token, what }),
        Ok(None) => not_subscribed(),
        Err(error) => responses::service_failure(Format::Html, &error),
    }
}

/// Unsubscribes; the body (`List-Unsubscribe=One-Click` or empty) only tells the
/// metrics a mailbox provider's one-click from the button.
pub async fn unsubscribe(
    req: HttpRequest,
    body: web::Bytes,
    state: web::Data<AppState>,
) -> HttpResponse {
    let Some((_, scope)) = verified_token(&req, &state) else {
        return invalid_link();
    };
    let how = if body.trim_ascii() == b"List-Unsubscribe=One-Click" {
        UnsubscribeHow::OneClick
    } else {
        UnsubscribeHow::Button
    };
    let url = &state.settings.database.url;
    match crate::db::run_writing(&state.pool, url, move |conn| {
        subscriptions::unsubscribe(conn, scope)
    })
    .await
    {
        Ok(Some(done)) => {
            if done.changed {
                state.metrics.unsubscribe(how);
            }
            responses::page(
                StatusCode::OK,
                &UnsubscribedPage {
                    what: done.what,
                    email: done.email,
                    newsletters: done.newsletter_slugs,
                },
            )
        }
        Ok(None) => not_subscribed(),
        Err(error) => responses::service_failure(Format::Html, &error),
    }
}

fn verified_token(req: &HttpRequest, state: &AppState) -> Option<(String, UnsubscribeScope)> {
    let pairs = form::parse_pairs(req.query_string().as_bytes()).ok()?;
    let token = form::single(&pairs, "token").ok().flatten()?;
    let scope = state.policy.signer.verify(&token)?;
    Some((token, scope))
}

fn invalid_link() -> HttpResponse {
    responses::page(
        StatusCode::NOT_FOUND,
        &LinkProblemPage {
            heading: "This unsubscribe link is not valid".into(),
            message: "It may have been cut short when it was copied. Use the unsubscribe link at the bottom of any of our emails.".into(),
        },
    )
}

/// The subscription is gone (erased): there is nothing left to unsubscribe.
fn not_subscribed() -> HttpResponse {
    responses::page(
        StatusCode::OK,
        &LinkProblemPage {
            heading: "You're not subscribed".into(),
            message: "This address is not on our list any more, so you will not receive anything from us.".into(),
        },
    )
}
