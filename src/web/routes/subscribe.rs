//! `POST /subscriptions`: form or JSON in, "check your inbox" out.

use std::sync::Arc;

use actix_web::http::StatusCode;
use actix_web::http::header::{self, HeaderValue};
use actix_web::{HttpRequest, HttpResponse, web};
use futures_util::StreamExt;
use serde_json::json;

use crate::db::StorageError;
use crate::db::newsletters::Newsletter;
use crate::web::catalog::Snapshot;
use crate::web::pages::{CheckInboxPage, FormErrors, SubscribePage};
use crate::web::responses::{self, Format};
use crate::web::routes::home::newsletter_options;
use crate::web::signup_input::{self, BodyKind, Rejection, SignupInput};
use crate::web::{AppState, client_ip};

/// Largest body accepted: a signup is a few hundred bytes.
pub const MAX_BODY: usize = 16 * 1024;
/// Tracked client addresses above which idle ones are swept from the rate limiter.
const LIMITER_KEYS_BEFORE_SWEEP: usize = 10_000;

/// Handles a signup.
pub async fn subscribe(
    req: HttpRequest,
    payload: web::Payload,
    state: web::Data<AppState>,
) -> HttpResponse {
    let format = Format::of(&req);
    let Some(kind) = body_kind(&req) else {
        return responses::error(
            format,
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "unsupported_media_type",
            "Unsupported form encoding",
            "Send the signup as application/x-www-form-urlencoded or application/json.",
        );
    };
    let ip = client_ip::client_ip(&req, &state.trusted_proxies);
    if let (Some(limiter), Some(ip)) = (&state.signup_limiter, ip) {
        if limiter.len() > LIMITER_KEYS_BEFORE_SWEEP {
            // Forget clients whose allowance is full again, so memory stays bounded.
            limiter.retain_recent();
        }
        if let Err(not_until) = limiter.check_key(&client_ip::rate_limit_key(ip)) {
            let wait = not_until.wait_time_from(governor::clock::Clock::now(
                &governor::clock::DefaultClock::default(),
            ));
            let mut response = responses::error(
                format,
                StatusCode::TOO_MANY_REQUESTS,
                "rate_limited",
                "Too many signups",
                "Too many signups from your network. Please wait a minute and try again.",
            );
            let seconds = wait.as_secs().max(1).to_string();
            if let Ok(value) = HeaderValue::from_str(&seconds) {
                response.headers_mut().insert(header::RETRY_AFTER, value);
            }
            return response;
        }
    }
    let body = match read_body(&req, payload).await {
        Ok(body) => body,
        Err(response) => return response(format),
    };
    let input = match signup_input::decode(kind, &body) {
        Ok(input) => input,
        Err(Rejection::Malformed(message)) => {
            return responses::error(
                format,
                StatusCode::BAD_REQUEST,
                "malformed_body",
                "We couldn't read that form",
                &message,
            );
        }
        Err(Rejection::Fields(errors)) => {
            return invalid(&state, format, &SignupInput::default(), errors).await;
        }
    };
    if input.honeypot_filled {
        // Bots get the ordinary answer, so they learn nothing; nothing is stored.
        tracing::info!("signup honeypot filled; ignored");
        return accepted(format);
    }

    let all = match newsletters_for(&state, input.newsletters.as_deref()).await {
        Ok(all) => all,
        Err(error) => return responses::unavailable(format, &error),
    };
    let all = &all.newsletters;
    let request = match signup_input::validate(&input, all, ip.map(|ip| ip.to_string())) {
        Ok(request) => request,
        Err(errors) => return invalid_with(all, format, &input, errors),
    };
    match state.signups.subscribe(request).await {
        Ok(outcome) => {
            tracing::info!(?outcome, "signup handled");
            state.metrics.signup(outcome.label());
            state.queue_signal.notify();
            accepted(format)
        }
        Err(error) => responses::service_failure(format, &error),
    }
}

fn body_kind(req: &HttpRequest) -> Option<BodyKind> {
    let content_type = req.headers().get(header::CONTENT_TYPE)?.to_str().ok()?;
    BodyKind::of_content_type(content_type)
}

type Refusal = Box<dyn FnOnce(Format) -> HttpResponse>;

/// Reads at most [`MAX_BODY`] bytes; a larger body is refused without reading it all.
async fn read_body(req: &HttpRequest, mut payload: web::Payload) -> Result<Vec<u8>, Refusal> {
    let too_large: Refusal = Box::new(|format| {
        responses::error(
            format,
            StatusCode::PAYLOAD_TOO_LARGE,
            "body_too_large",
            "That form is too large",
            "The signup form may be at most 16 KiB.",
        )
    });
    let declared = req
        .headers()
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<usize>().ok());
    if declared.is_some_and(|len| len > MAX_BODY) {
        return Err(too_large);
    }
    let mut body = Vec::with_capacity(declared.unwrap_or(512).min(MAX_BODY));
    while let Some(chunk) = payload.next().await {
        let chunk = chunk.map_err(|error| -> Refusal {
            let message = format!("The request body could not be read: {error}.");
            Box::new(move |format| {
                responses::error(
                    format,
                    StatusCode::BAD_REQUEST,
                    "unreadable_body",
                    "We couldn't read that form",
                    &message,
                )
            })
        })?;
        if body.len() + chunk.len() > MAX_BODY {
            return Err(too_large);
        }
        body.extend_from_slice(&chunk);
    }
    Ok(body)
}

/// 400 with the reasons: the form again with messages and values, or field errors.
async fn invalid(
    state: &AppState,
    format: Format,
    input: &SignupInput,
    errors: FormErrors,
) -> HttpResponse {
    // Only the re-rendered form needs the newsletters; JSON field errors do not.
    if format == Format::Json {
        return invalid_with(&[], format, input, errors);
    }
    match state.catalog.snapshot().await {
        Ok(snapshot) => invalid_with(&snapshot.newsletters, format, input, errors),
        Err(error) => responses::unavailable(format, &error),
    }
}

/// The newsletters, read again if the reader names one the cached list lacks (it may
/// have been created a moment ago).
async fn newsletters_for(
    state: &AppState,
    slugs: Option<&[String]>,
) -> Result<Arc<Snapshot>, StorageError> {
    let snapshot = state.catalog.snapshot().await?;
    let known =
        |slug: &String| slug.is_empty() || snapshot.newsletters.iter().any(|n| &n.slug == slug);
    if slugs.is_some_and(|slugs| !slugs.iter().all(known)) {
        return state.catalog.reload().await;
    }
    Ok(snapshot)
}

fn invalid_with(
    all: &[Newsletter],
    format: Format,
    input: &SignupInput,
    errors: FormErrors,
) -> HttpResponse {
    match format {
        Format::Json => {
            let mut fields = serde_json::Map::new();
            for (name, messages) in [
                ("email", &errors.email),
                ("name", &errors.name),
                ("newsletters", &errors.newsletters),
                ("form", &errors.general),
            ] {
                if !messages.is_empty() {
                    fields.insert(name.into(), json!(messages));
                }
            }
            responses::json(
                StatusCode::BAD_REQUEST,
                &json!({
                    "error": "invalid_input",
                    "message": "Please correct the fields listed.",
                    "fields": fields,
                }),
            )
        }
        Format::Html => responses::page(
            StatusCode::BAD_REQUEST,
            &SubscribePage {
                newsletters: newsletter_options(all, input.newsletters.as_deref()),
                email: input.email.clone(),
                name: input.name.clone(),
                errors,
            },
        ),
    }
}

/// The one answer to every valid signup, known address or not.
fn accepted(format: Format) -> HttpResponse {
    match format {
        Format::Json => responses::json(
            StatusCode::OK,
            &json!({
                "status": "ok",
                "message": "Check your inbox: if that address can receive our newsletters, a confirmation link is on its way.",
            }),
        ),
        Format::Html => responses::page(StatusCode::OK, &CheckInboxPage),
    }
}
