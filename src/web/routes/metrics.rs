//! `GET /metrics` on the public listener: Prometheus's scrape, behind the bearer token
//! `SPACEDIGEST_METRICS_TOKEN`. Without a token it does not exist (404): the counters are
//! then only on the separate listener, if any.

use actix_web::http::StatusCode;
use actix_web::http::header::{self, HeaderValue};
use actix_web::{HttpRequest, HttpResponse, web};

use crate::observability::scrape;
use crate::web::AppState;
use crate::web::responses::{self, Format};

/// The scrape, for the holder of the token.
pub async fn metrics(req: HttpRequest, state: web::Data<AppState>) -> HttpResponse {
    let Some(expected) = state.settings.observability.metrics_token.as_deref() else {
        return responses::error(
            Format::of(&req),
            StatusCode::NOT_FOUND,
            "not_found",
            "Page not found",
            "There is nothing at this address.",
        );
    };
    let given = req
        .headers()
        .get(header::AUTHORIZATION)
        .and_then(|value| value.to_str().ok());
    if !scrape::bearer_matches(given, expected) {
        let mut refused = HttpResponse::Unauthorized()
            .content_type("text/plain; charset=utf-8")
            .body(
                "A bearer token is required: Authorization: Bearer <SPACEDIGEST_METRICS_TOKEN>\n",
            );
        refused.headers_mut().insert(
            header::WWW_AUTHENTICATE,
            HeaderValue::from_static("Bearer realm=\"metrics\""),
        );
        return refused;
    }
    scrape::response(&state.pool, &state.metrics).await
}
