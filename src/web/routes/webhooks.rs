//! `POST /webhooks/bounces`: bounce and complaint reports from a mail provider, sent
//! server to server with a shared secret (`SPACEDIGEST_BOUNCE_WEBHOOK_TOKEN`). No cookie,
//! no CSRF token: the bearer token is the whole authentication. Off (404) when unset.
//!
//! Body: one report `{"email": "...", "type": "hard"|"soft"|"complaint", "reason": "..."}`
//! or `{"reports": [...]}`. A request is applied whole or not at all: one bad report
//! refuses them all with 400 and the reasons.

use actix_web::http::StatusCode;
use actix_web::http::header::{self, HeaderValue};
use actix_web::{HttpRequest, HttpResponse, web};
use futures_util::StreamExt;
use serde_json::{Value, json};
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

use crate::config::WebhookToken;
use crate::db::bounces::{self, Limits, Report};
use crate::db::states::BounceKind as Kind;
use crate::db::{self, StorageError};
use crate::domain::SubscriberEmail;
use crate::web::AppState;
use crate::web::responses::{self, Format};

/// Largest body accepted: a thousand reports of a few hundred bytes each.
pub const MAX_BODY: usize = 256 * 1024;
/// Most reports in one request.
pub const MAX_REPORTS: usize = 1_000;
/// Most problems listed in a 400; the rest are counted.
const MAX_PROBLEMS_LISTED: usize = 20;

/// Handles a batch of bounce reports.
pub async fn bounces(
    req: HttpRequest,
    payload: web::Payload,
    state: web::Data<AppState>,
) -> HttpResponse {
    let Some(expected) = &state.settings.bounces.webhook_token else {
        return responses::error(
            Format::Json,
            StatusCode::NOT_FOUND,
            "not_found",
            "Page not found",
            "There is nothing at this address.",
        );
    };
    // Before the body is read: a caller without the token gets nothing for its upload.
    if !authorised(&req, expected) {
        tracing::warn!("bounce webhook: refused a request without the right token");
        let mut response = responses::error(
            Format::Json,
            StatusCode::UNAUTHORIZED,
            "unauthorized",
            "Unauthorized",
            "Send the webhook token as `Authorization: Bearer <token>`.",
        );
        response.headers_mut().insert(
            header::WWW_AUTHENTICATE,
            HeaderValue::from_static("Bearer realm=\"bounces\""),
        );
        return response;
    }
    let body = match read_body(&req, payload).await {
        Ok(body) => body,
        Err(response) => return response,
    };
    let reports = match parse_reports(&body) {
        Ok(reports) => reports,
        Err(problems) => return malformed(&problems),
    };
    let rules = &state.settings.bounces;
    let limits = Limits {
        hard_limit: rules.hard_limit,
        score_limit: rules.score_limit,
        window: rules.window,
    };
    let count = reports.len();
    let applied = db::run_writing(
        &state.pool,
        &state.settings.database.url,
        move |conn| -> Result<_, StorageError> {
            Ok(bounces::apply_reports(conn, &limits, &reports, db::now())?)
        },
    )
    .await;
    match applied {
        Ok(done) => {
            tracing::info!(
                reports = count,
                applied = done.applied,
                ignored = done.ignored,
                bounced = done.bounced,
                unsubscribed = done.unsubscribed,
                "bounce webhook: reports applied"
            );
            responses::json(
                StatusCode::OK,
                &json!({
                    "applied": done.applied,
                    "ignored": done.ignored,
                    "bounced": done.bounced,
                    "unsubscribed": done.unsubscribed,
                }),
            )
        }
        Err(error) if error.is_unavailable() => responses::unavailable(Format::Json, &error),
        Err(error) => responses::internal(Format::Json, &error),
    }
}

/// Whether the request carries the token. Both sides are hashed first, so the comparison
/// takes the same time whatever the token's length or the first differing byte.
fn authorised(req: &HttpRequest, expected: &WebhookToken) -> bool {
    let Some(given) = req
        .headers()
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split_once(' '))
        .filter(|(scheme, _)| scheme.eq_ignore_ascii_case("bearer"))
        .map(|(_, token)| token.trim())
    else {
        return false;
    };
    let given = Sha256::digest(given.as_bytes());
    let expected = Sha256::digest(expected.0.as_bytes());
    given.ct_eq(&expected).into()
}

async fn read_body(req: &HttpRequest, mut payload: web::Payload) -> Result<Vec<u8>, HttpResponse> {
    let too_large = || {
        responses::error(
            Format::Json,
            StatusCode::PAYLOAD_TOO_LARGE,
            "body_too_large",
            "Too large",
            &format!(
                "A request may be at most {} KiB; send at most {MAX_REPORTS} reports at a time.",
                MAX_BODY / 1024
            ),
        )
    };
    let declared = req
        .headers()
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<usize>().ok());
    if declared.is_some_and(|len| len > MAX_BODY) {
        return Err(too_large());
    }
    let mut body = Vec::with_capacity(declared.unwrap_or(1024).min(MAX_BODY));
    while let Some(chunk) = payload.next().await {
        let chunk = chunk.map_err(|error| {
            responses::error(
                Format::Json,
                StatusCode::BAD_REQUEST,
                "unreadable_body",
                "Unreadable",
                &format!("The request body could not be read: {error}."),
            )
        })?;
        if body.len() + chunk.len() > MAX_BODY {
            return Err(too_large());
        }
        body.extend_from_slice(&chunk);
    }
    Ok(body)
}

/// The reports in `body`, or every problem found (all-or-nothing).
fn parse_reports(body: &[u8]) -> Result<Vec<Report>, Vec<String>> {
    let value: Value = serde_json::from_slice(body)
        .map_err(|e| vec![format!("the body is not valid JSON: {e}")])?;
    let items: Vec<(String, &Value)> = match &value {
        Value::Object(map) if map.contains_key("reports") => match &map["reports"] {
            Value::Array(list) if list.is_empty() => {
                return Err(vec!["`reports` is empty".into()]);
            }
            Value::Array(list) if list.len() > MAX_REPORTS => {
                return Err(vec![format!(
                    "`reports` holds {} reports; send at most {MAX_REPORTS} at a time",
                    list.len()
                )]);
            }
            Value::Array(list) => list
                .iter()
                .enumerate()
                .map(|(i, item)| (format!("reports[{i}]"), item))
                .collect(),
            _ => return Err(vec!["`reports` must be a list of reports".into()]),
        },
        Value::Object(_) => vec![("the report".into(), &value)],
        _ => {
            return Err(vec![
                "send one report as an object, or several as {\"reports\": [...]}".into(),
            ]);
        }
    };
    let mut reports = Vec::with_capacity(items.len());
    let mut problems = Vec::new();
    for (at, item) in items {
        match parse_report(item) {
            Ok(report) => reports.push(report),
            Err(problem) => problems.push(format!("{at}: {problem}")),
        }
    }
    if problems.is_empty() {
        Ok(reports)
    } else {
        Err(problems)
    }
}

fn parse_report(item: &Value) -> Result<Report, String> {
    let Value::Object(fields) = item else {
        return Err("must be an object with `email` and `type`".into());
    };
    let email = match fields.get("email") {
        Some(Value::String(email)) => SubscriberEmail::parse(email)
            .map_err(|e| format!("`email` is not an email address ({e})"))?,
        Some(_) => return Err("`email` must be a string".into()),
        None => return Err("`email` is missing".into()),
    };
    let kind = match fields.get("type").and_then(Value::as_str) {
        Some("hard") => Kind::Hard,
        Some("soft") => Kind::Soft,
        Some("complaint") => Kind::Complaint,
        Some(other) => {
            return Err(format!(
                "`type` is \"{}\"; use hard, soft or complaint",
                bounces::clean_reason(other)
                    .chars()
                    .take(40)
                    .collect::<String>()
            ));
        }
        None => return Err("`type` is missing (hard, soft or complaint)".into()),
    };
    let reason = match fields.get("reason") {
        None | Some(Value::Null) => String::new(),
        Some(Value::String(reason)) => bounces::clean_reason(reason),
        Some(_) => return Err("`reason` must be a string".into()),
    };
    Ok(Report {
        email_key: email.key(),
        kind,
        reason,
    })
}

fn malformed(problems: &[String]) -> HttpResponse {
    let listed: Vec<&String> = problems.iter().take(MAX_PROBLEMS_LISTED).collect();
    let message = if problems.len() > listed.len() {
        format!(
            "Nothing was applied. {} problems; the first {}.",
            problems.len(),
            listed.len()
        )
    } else {
        "Nothing was applied.".to_owned()
    };
    responses::json(
        StatusCode::BAD_REQUEST,
        &json!({ "error": "malformed_reports", "message": message, "problems": listed }),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_report_or_a_list_parses_and_one_bad_report_refuses_the_lot() {
        let one = parse_reports(br#"{"email":"A@Example.com","type":"hard","reason":"550"}"#);
        assert_eq!(
            one.unwrap(),
            vec![Report {
                email_key: "a@example.com".into(),
                kind: Kind::Hard,
                reason: "550".into()
            }]
        );
        let list = parse_reports(
            br#"{"reports":[{"email":"a@example.com","type":"soft"},{"email":"b@example.com","type":"complaint","reason":null}]}"#,
        );
        assert_eq!(list.unwrap().len(), 2);
        let bad = parse_reports(
            br#"{"reports":[{"email":"a@example.com","type":"soft"},{"email":"nope","type":"bounce"},{"type":"hard"}]}"#,
        )
        .unwrap_err();
        assert_eq!(bad.len(), 2, "{bad:?}");
        assert!(bad[0].starts_with("reports[1]"));
        assert!(bad[1].contains("`email` is missing"));
        assert!(parse_reports(b"not json").is_err());
        assert!(parse_reports(b"[1,2]").is_err());
        assert!(parse_reports(br#"{"reports":[]}"#).is_err());
    }
}
