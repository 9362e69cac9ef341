//! Pause, resume and cancel a send. Each is a POST with the session's CSRF token, checked
//! before anything else; repeating one that already took effect changes nothing.

use actix_web::{HttpResponse, web};
use askama::Template;

use super::progress::progress_of;
use super::{date_label, issue_from_path, readers};
use crate::db::digests::SendState;
use crate::digest::control::{self, Action, Controlled, Refusal};
use crate::web::admin::{Console, ConsoleError, CsrfForm, Layout, render, see_other};

pub async fn pause(form: CsrfForm, path: web::Path<String>) -> Result<HttpResponse, ConsoleError> {
    act(form, &path, Action::Pause).await
}

pub async fn resume(form: CsrfForm, path: web::Path<String>) -> Result<HttpResponse, ConsoleError> {
    act(form, &path, Action::Resume).await
}

pub async fn cancel(form: CsrfForm, path: web::Path<String>) -> Result<HttpResponse, ConsoleError> {
    act(form, &path, Action::Cancel).await
}

async fn act(form: CsrfForm, raw_id: &str, action: Action) -> Result<HttpResponse, ConsoleError> {
    let console = form.console;
    let found = issue_from_path(&console, raw_id).await?;
    let issue_id = found.issue.id;
    let outcome = crate::db::run(console.pool(), move |conn| {
        control::apply(conn, issue_id, action)
    })
    .await?
    .ok_or_else(|| ConsoleError::NotFound("There is no digest issue at this address.".into()))?;
    let done = match (outcome, action) {
        (Controlled::Done(n), _) => {
            tracing::info!(
                operator_id = console.operator.id,
                issue_id,
                ?action,
                deliveries = n,
                "console: send controlled"
            );
            match action {
                Action::Pause => "paused",
                Action::Resume => {
                    console.state.queue_signal.notify();
                    "resumed"
                }
                Action::Cancel => "cancelled",
            }
        }
        (Controlled::AlreadyDone, Action::Pause) => "already-paused",
        (Controlled::AlreadyDone, Action::Resume) => "already-sending",
        (Controlled::AlreadyDone, Action::Cancel) => "already-cancelled",
        (Controlled::Refused(refusal), _) => return Err(refused(action, refusal)),
    };
    Ok(see_other(&format!("/admin/digests/{issue_id}?done={done}")))
}

fn refused(action: Action, refusal: Refusal) -> ConsoleError {
    let verb = match action {
        Action::Pause => "paused",
        Action::Resume => "resumed",
        Action::Cancel => "cancelled",
    };
    let why = match refusal {
        Refusal::NotSent => "it has not been sent yet".to_owned(),
        Refusal::State(SendState::Delivered) => "every delivery has already been made".to_owned(),
        Refusal::State(SendState::Cancelled) => "it was cancelled".to_owned(),
        Refusal::State(SendState::Sending) => "it is sending, not paused".to_owned(),
        Refusal::State(SendState::Paused) => "it is paused".to_owned(),
    };
    ConsoleError::Conflict(format!(
        "This send cannot be {verb}: {why}. Nothing was changed."
    ))
}

#[derive(Template)]
#[template(path = "admin/digest_cancel.html")]
struct CancelPage {
    layout: Layout,
    issue_id: i64,
    newsletter_title: String,
    date_label: String,
    cancellable: bool,
    status: &'static str,
    not_yet_sent: String,
}

/// Asks before cancelling: what is dropped cannot be queued again.
pub async fn cancel_page(
    console: Console,
    path: web::Path<String>,
) -> Result<HttpResponse, ConsoleError> {
    let found = issue_from_path(&console, &path).await?;
    let progress = progress_of(&console, &found).await?;
    let state = progress.state();
    render(&CancelPage {
        layout: console.layout("digests"),
        issue_id: found.issue.id,
        newsletter_title: found.newsletter.title.clone(),
        date_label: date_label(found.issue.issue_date),
        cancellable: matches!(state, Some(SendState::Sending | SendState::Paused)),
        status: progress.status_label(),
        not_yet_sent: readers(progress.not_yet_sent()),
    })
}
