//! Building answers: pages rendered with askama, JSON for API clients, and the error
//! answers both share. Causes go to the log; pages say only what the reader can act on.

use actix_web::http::StatusCode;
use actix_web::http::header::{self, ContentType};
use actix_web::{HttpRequest, HttpResponse, HttpResponseBuilder};
use askama::Template;
use serde_json::json;

use super::pages::ErrorPage;

/// Which kind of answer the client wants.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    /// A page (forms, browsers).
    Html,
    /// JSON (scripts).
    Json,
}

impl Format {
    /// JSON when the request body is JSON or the client asks only for JSON; else HTML.
    pub fn of(req: &HttpRequest) -> Self {
        let header_has_json = |name| {
            req.headers()
                .get(name)
                .and_then(|v| v.to_str().ok())
                .is_some_and(|v| v.to_ascii_lowercase().contains("json"))
        };
        if header_has_json(header::CONTENT_TYPE) {
            return Self::Json;
        }
        let accepts_html = req
            .headers()
            .get(header::ACCEPT)
            .and_then(|v| v.to_str().ok())
            .is_some_and(|v| v.contains("html"));
        if header_has_json(header::ACCEPT) && !accepts_html {
            Self::Json
        } else {
            Self::Html
        }
    }
}

/// A rendered page with `status`.
pub fn page(status: StatusCode, template: &impl Template) -> HttpResponse {
    match template.render() {
        Ok(body) => HttpResponseBuilder::new(status)
            .content_type(ContentType::html())
            .insert_header((header::CACHE_CONTROL, "no-store"))
            .body(body),
        Err(error) => {
            tracing::error!(%error, "rendering a page failed");
            HttpResponse::InternalServerError()
                .content_type(ContentType::plaintext())
                .body("Something went wrong on our side. Please try again later.")
        }
    }
}

/// A JSON body with `status`.
pub fn json(status: StatusCode, body: &serde_json::Value) -> HttpResponse {
    HttpResponseBuilder::new(status)
        .insert_header((header::CACHE_CONTROL, "no-store"))
        .json(body)
}

/// An error answer in the client's format: `code` is stable for scripts, `message` is
/// for people.
pub fn error(
    format: Format,
    status: StatusCode,
    code: &str,
    heading: &str,
    message: &str,
) -> HttpResponse {
    match format {
        Format::Json => json(status, &json!({ "error": code, "message": message })),
        Format::Html => page(
            status,
            &ErrorPage {
                status: status.as_u16(),
                heading: heading.to_owned(),
                message: message.to_owned(),
            },
        ),
    }
}

/// What a 503 tells clients to wait before trying again, in seconds.
pub const RETRY_AFTER_SECONDS: &str = "30";

/// The answer when storage is unreachable: try again later, nothing was half-done.
pub fn unavailable(format: Format, error: &dyn std::fmt::Display) -> HttpResponse {
    tracing::error!(%error, "storage unavailable");
    let mut response = self::error(
        format,
        StatusCode::SERVICE_UNAVAILABLE,
        "unavailable",
        "We'll be right back",
        "We can't handle this right now. Nothing was saved; please try again in a minute.",
    );
    response.headers_mut().insert(
        header::RETRY_AFTER,
        header::HeaderValue::from_static(RETRY_AFTER_SECONDS),
    );
    response
}

/// The answer to an unexpected failure on our side.
pub fn internal(format: Format, error: &dyn std::fmt::Display) -> HttpResponse {
    tracing::error!(%error, "request failed");
    self::error(
        format,
        StatusCode::INTERNAL_SERVER_ERROR,
        "internal",
        "Something went wrong",
        "Something went wrong on our side. Please try again later.",
    )
}

/// The answer when storage or rendering failed.
pub fn service_failure(format: Format, error: &crate::subscriptions::ServiceError) -> HttpResponse {
    match error {
        crate::subscriptions::ServiceError::Storage(storage) if storage.is_unavailable() => {
            unavailable(format, storage)
        }
        other => internal(format, other),
    }
}
