//! The stylesheet and the health check.

use actix_web::HttpResponse;
use actix_web::http::header;

const STYLESHEET: &str = include_str!("../../../static/style.css");

/// `/static/style.css`, compiled into the binary.
pub async fn stylesheet() -> HttpResponse {
    HttpResponse::Ok()
        .content_type("text/css; charset=utf-8")
        .insert_header((header::CACHE_CONTROL, "public, max-age=3600"))
        .body(STYLESHEET)
}

/// `GET /health_check`: 200 while the server is up.
pub async fn health_check() -> HttpResponse {
    HttpResponse::Ok()
        .insert_header((header::CACHE_CONTROL, "no-store"))
        .body("ok")
}
