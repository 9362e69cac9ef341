//! `GET /subscriptions/confirm` shows a button; `POST /subscriptions/confirm` confirms.
//! Mail scanners fetch (and some click through) every link, so GET changes nothing.

use actix_web::http::StatusCode;
use actix_web::{HttpRequest, HttpResponse, web};

use crate::subscriptions::{self, ConfirmOutcome};
use crate::web::pages::{ConfirmPage, ConfirmedPage, LinkProblemPage};
use crate::web::responses::{self, Format};
use crate::web::{AppState, form};

/// The page behind the emailed link.
pub async fn confirm_page(req: HttpRequest, state: web::Data<AppState>) -> HttpResponse {
    let Some(token) = query_token(&req) else {
        return unknown();
    };
    let lookup = token.clone();
    match crate::db::run_with(&state.pool, move |conn| {
        subscriptions::peek_confirmation(conn, &lookup)
    })
    .await
    {
        Ok(ConfirmOutcome::Confirmed(newsletters)) => {
            responses::page(StatusCode::OK, &ConfirmPage { token, newsletters })
        }
        Ok(outcome) => outcome_page(outcome),
        Err(error) => responses::service_failure(Format::Html, &error),
    }
}

/// Confirms; repeating it is harmless.
pub async fn confirm(
    req: HttpRequest,
    body: web::Bytes,
    state: web::Data<AppState>,
) -> HttpResponse {
    let from_body = form::parse_pairs(&body)
        .ok()
        .and_then(|pairs| form::single(&pairs, "token").ok().flatten());
    let Some(token) = from_body.or_else(|| query_token(&req)) else {
        return unknown();
    };
    let policy = state.policy.clone();
    let url = &state.settings.database.url;
    match crate::db::run_writing(&state.pool, url, move |conn| {
        subscriptions::confirm(conn, &policy, &token)
    })
    .await
    {
        Ok(outcome) => {
            if matches!(outcome, ConfirmOutcome::Confirmed(_)) {
                state.metrics.confirmation();
                state.queue_signal.notify();
            }
            outcome_page(outcome)
        }
        Err(error) => responses::service_failure(Format::Html, &error),
    }
}

fn query_token(req: &HttpRequest) -> Option<String> {
    let pairs = form::parse_pairs(req.query_string().as_bytes()).ok()?;
    form::single(&pairs, "token").ok().flatten()
}

fn outcome_page(outcome: ConfirmOutcome) -> HttpResponse {
    match outcome {
        ConfirmOutcome::Confirmed(newsletters) => responses::page(
            StatusCode::OK,
            &ConfirmedPage {
                newsletters,
                already: false,
            },
        ),
        ConfirmOutcome::AlreadyConfirmed(newsletters) => responses::page(
            StatusCode::OK,
            &ConfirmedPage {
                newsletters,
                already: true,
            },
        ),
        ConfirmOutcome::Expired => responses::page(
            StatusCode::GONE,
            &LinkProblemPage {
                heading: "This confirmation link has expired".into(),
                message: "Confirmation links work for a limited time. Sign up again and we'll send you a fresh one.".into(),
            },
        ),
        ConfirmOutcome::Unknown => unknown(),
    }
}

fn unknown() -> HttpResponse {
    responses::page(
        StatusCode::NOT_FOUND,
        &LinkProblemPage {
            heading: "We don't recognise this confirmation link".into(),
            message: "It may have been mistyped, or replaced by a newer link we sent you. Sign up again and we'll send you a fresh one.".into(),
        },
    )
}
