//! The operator console at `/admin`: server-rendered pages behind a login.
//!
//! Every page takes a [`Console`] (a live session, or a redirect to the login page).
//! Every state-changing request takes a [`CsrfForm`] or goes through
//! [`Console::read_multipart`], which check the session's CSRF token before anything
//! else is read. Pages work without JavaScript; the only script is the progress poller.

mod bounces;
mod dashboard;
mod digests;
mod error;
mod feeds;
mod format;
mod login;
mod newsletter_select;
mod newsletters;
mod session;
mod stories;
mod subscribers;

pub use error::ConsoleError;
pub use session::{COOKIE_NAME, Console, CsrfForm, Upload};

use actix_web::http::header::{self, HeaderValue};
use actix_web::middleware::DefaultHeaders;
use actix_web::{HttpResponse, web};
use askama::Template;

/// The console's Content-Security-Policy: as strict as the public pages, plus our own
/// script and `fetch` to ourselves (the live progress), and frames from ourselves (the
/// digest preview).
pub const CONTENT_SECURITY_POLICY: &str = "default-src 'none'; script-src 'self'; \
     connect-src 'self'; style-src 'self'; img-src 'self' data:; frame-src 'self'; \
     form-action 'self'; frame-ancestors 'none'; base-uri 'none'";

/// What every console page's layout needs.
#[derive(Debug, Clone)]
pub struct Layout {
    /// The signed-in operator.
    pub operator_email: String,
    /// The session's CSRF token, for the logout button and every form.
    pub csrf_token: String,
    /// The nav entry to mark as current: "dashboard", "stories", "feeds", "digests",
    /// "subscribers", "newsletters" or "account".
    pub section: &'static str,
    /// A one-line confirmation of what the last action did.
    pub notice: Option<String>,
}

/// Renders a console page (200, never cached).
pub fn render(template: &impl Template) -> Result<HttpResponse, ConsoleError> {
    render_with(actix_web::http::StatusCode::OK, template)
}

/// Renders a console page with `status`.
pub fn render_with(
    status: actix_web::http::StatusCode,
    template: &impl Template,
) -> Result<HttpResponse, ConsoleError> {
    let body = template
        .render()
        .map_err(|e| ConsoleError::Internal(anyhow::anyhow!("rendering a page: {e}")))?;
    Ok(actix_web::HttpResponseBuilder::new(status)
        .content_type(header::ContentType::html())
        .body(body))
}

/// A 303 to `location` (after a POST: the browser then GETs it, and reloading does not
/// repeat the action).
pub fn see_other(location: &str) -> HttpResponse {
    HttpResponse::SeeOther()
        .insert_header((header::LOCATION, location))
        .finish()
}

/// Registers `/admin` and everything under it.
pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.service(
        web::scope("/admin")
            .wrap(
                DefaultHeaders::new()
                    .add((header::CACHE_CONTROL, HeaderValue::from_static("no-store")))
                    .add((
                        header::CONTENT_SECURITY_POLICY,
                        HeaderValue::from_static(CONTENT_SECURITY_POLICY),
                    )),
            )
            .app_data(web::PayloadConfig::new(session::MAX_FORM_BYTES))
            .configure(login::configure)
            .configure(dashboard::configure)
            .configure(stories::configure)
            .configure(feeds::configure)
            .configure(digests::configure)
            .configure(subscribers::configure)
            .configure(newsletters::configure),
    );
}

/// `GET /static/admin.css` and `/static/admin.js`, compiled into the binary.
pub fn configure_assets(cfg: &mut web::ServiceConfig) {
    cfg.route("/static/admin.css", web::get().to(stylesheet))
        .route("/static/admin.js", web::get().to(script));
}

async fn stylesheet() -> HttpResponse {
    HttpResponse::Ok()
        .content_type("text/css; charset=utf-8")
        .insert_header((header::CACHE_CONTROL, "public, max-age=3600"))
        .body(include_str!("../../../static/admin.css"))
}

async fn script() -> HttpResponse {
    HttpResponse::Ok()
        .content_type("text/javascript; charset=utf-8")
        .insert_header((header::CACHE_CONTROL, "public, max-age=3600"))
        .body(include_str!("../../../static/admin.js"))
}
