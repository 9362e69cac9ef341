//! `/admin/subscribers/import`: the upload form, and the import of a CSV file.

use actix_web::http::StatusCode;
use actix_web::{HttpResponse, web};
use askama::Template;

use crate::db::newsletters::Newsletter;
use crate::db::{self, newsletters};
use crate::subscriptions::csv::{self, BadRow, ImportCounts, ImportMode, MAX_IMPORT_ROWS};
use crate::web::admin::{Console, ConsoleError, Layout, render, render_with};

/// Bad rows listed after an import (all are counted).
const BAD_ROWS_SHOWN: usize = 1_000;
/// Longest consent note.
const MAX_CONSENT_NOTE: usize = 1_000;

#[derive(Template)]
#[template(path = "admin/subscribers_import.html")]
struct ImportPage {
    layout: Layout,
    newsletters: Vec<Newsletter>,
    selected: String,
    confirmed: bool,
    consent_note: String,
    error: Option<String>,
    max_rows: usize,
}

#[derive(Template)]
#[template(path = "admin/subscribers_imported.html")]
struct ImportedPage {
    layout: Layout,
    newsletter: String,
    confirmed: bool,
    counts: ImportCounts,
    unsubscribed_in_file: usize,
    other_newsletter: usize,
    bad_total: usize,
    bad: Vec<BadRow>,
}

pub(super) async fn import_page(console: Console) -> Result<HttpResponse, ConsoleError> {
    let newsletters = db::run(console.pool(), newsletters::all).await?;
    render(&ImportPage {
        layout: console.layout("subscribers"),
        newsletters,
        selected: crate::domain::NewsletterSlug::DEFAULT.to_owned(),
        confirmed: false,
        consent_note: String::new(),
        error: None,
        max_rows: MAX_IMPORT_ROWS,
    })
}

pub(super) async fn import(
    console: Console,
    multipart: actix_multipart::Multipart,
) -> Result<HttpResponse, ConsoleError> {
    let upload = console.read_multipart(multipart).await?;
    let newsletters = db::run(console.pool(), newsletters::all).await?;
    let selected = upload
        .text("newsletter")
        .unwrap_or_default()
        .trim()
        .to_owned();
    let confirmed = upload.text("mode").as_deref().map(str::trim) == Some("confirmed");
    let consent_note = upload
        .text("consent_note")
        .unwrap_or_default()
        .trim()
        .replace("\r\n", "\n");
    let refuse = |message: String| {
        render_with(
            StatusCode::BAD_REQUEST,
            &ImportPage {
                layout: console.layout("subscribers"),
                newsletters: newsletters.clone(),
                selected: selected.clone(),
                confirmed,
                consent_note: consent_note.clone(),
                error: Some(message),
                max_rows: MAX_IMPORT_ROWS,
            },
        )
    };
    let mode = upload.text("mode").unwrap_or_default();
    if !matches!(mode.trim(), "confirm" | "confirmed" | "") {
        return refuse(
            "Choose how the addresses join: with a confirmation email, or as already confirmed."
                .into(),
        );
    }
    let Some(newsletter) = newsletters.iter().find(|n| n.slug == selected).cloned() else {
        return refuse("Choose the newsletter to import into.".into());
    };
    let mode = if confirmed {
        if consent_note.is_empty() {
            return refuse("To import addresses as confirmed, explain how these readers gave their consent (for example \"signed up on the paper form at the 2026 launch event\").".into());
        }
        if consent_note.chars().count() > MAX_CONSENT_NOTE
            || consent_note.chars().any(|c| c.is_control() && c != '\n')
        {
            return refuse(format!(
                "The consent note can be at most {MAX_CONSENT_NOTE} characters of plain text."
            ));
        }
        ImportMode::Confirmed {
            consent_note: consent_note.clone(),
        }
    } else {
        ImportMode::Confirm
    };
    let Some(file) = upload.file("file") else {
        return refuse("Choose a CSV file to import.".into());
    };
    let data = file.data.clone();
    let slug = newsletter.slug.clone();
    let parsed = web::block(move || csv::parse(&data, &slug))
        .await
        .map_err(|e| ConsoleError::Internal(e.into()))?;
    let parsed = match parsed {
        Ok(parsed) => parsed,
        Err(e) => return refuse(format!("The file cannot be imported: {e}.")),
    };
    let policy = console.state.policy.clone();
    let rows = parsed.rows;
    let (target, import_mode) = (newsletter.clone(), mode.clone());
    let counts = db::run_with(console.pool(), move |conn| {
        csv::import(conn, &policy, &target, &import_mode, &rows)
    })
    .await?;
    if mode == ImportMode::Confirm && counts.imported > 0 {
        console.state.queue_signal.notify();
    }
    tracing::info!(
        operator_id = console.operator.id,
        newsletter = %newsletter.slug,
        confirmed,
        imported = counts.imported,
        already_subscribed = counts.already_subscribed,
        left_unsubscribed = counts.left_unsubscribed,
        bad_rows = parsed.bad.len(),
        "console: subscribers imported"
    );
    let bad_total = parsed.bad.len();
    let mut bad = parsed.bad;
    bad.truncate(BAD_ROWS_SHOWN);
    render(&ImportedPage {
        layout: console.layout("subscribers"),
        newsletter: newsletter.title,
        confirmed,
        counts,
        unsubscribed_in_file: parsed.unsubscribed_in_file,
        other_newsletter: parsed.other_newsletter,
        bad_total,
        bad,
    })
}
