//! The public web server: the signup page, confirmation and unsubscribe links.
//! It never talks SMTP: everything it sends goes through the queue.

pub mod admin;
pub mod catalog;
pub mod client_ip;
pub mod cookie_header;
pub mod form;
pub mod middleware;
pub mod pages;
pub mod request_body;
pub mod request_span;
pub mod responses;
pub mod routes;
pub mod signup_input;

use std::net::{IpAddr, TcpListener};
use std::num::NonZeroU32;
use std::sync::Arc;

use actix_web::dev::Server;
use actix_web::http::StatusCode;
use actix_web::middleware::from_fn;
use actix_web::{App, HttpResponse, HttpServer, guard, web};
use governor::{DefaultKeyedRateLimiter, Quota, RateLimiter};
use ipnet::IpNet;

use crate::config::Settings;
use crate::db::Pool;
use crate::observability::Metrics;
use crate::queue_signal::QueueSignal;
use crate::subscriptions::{Policy, Signups};
use catalog::Catalog;
use responses::Format;
use routes::{archive, assets, confirm, home, metrics, subscribe, unsubscribe, webhooks};

/// Shared by every request handler.
pub struct AppState {
    /// Database pool.
    pub pool: Pool,
    /// The settings the pages and the console read (the console previews digests as the
    /// scheduler renders them, so it takes the digest's sections too).
    pub settings: Settings,
    /// The reader's path: its limits, links, sender and signer.
    pub policy: Policy,
    /// The process's counters, shared by the web server and the delivery worker.
    pub metrics: Arc<Metrics>,
    /// Wakes the delivery worker when email is queued.
    pub queue_signal: QueueSignal,
    /// Records signups (group commit on SQLite).
    pub signups: Signups,
    /// The newsletters and the signup page, cached briefly.
    pub catalog: Arc<Catalog>,
    /// Per-IP signup limit; `None` when turned off.
    pub signup_limiter: Option<Arc<DefaultKeyedRateLimiter<IpAddr>>>,
    /// Proxies whose `X-Forwarded-For` is believed.
    pub trusted_proxies: Vec<IpNet>,
}

impl AppState {
    /// State for these settings.
    pub fn new(
        pool: Pool,
        settings: Settings,
        policy: Policy,
        metrics: Arc<Metrics>,
        queue_signal: QueueSignal,
    ) -> Self {
        let signup_limiter = NonZeroU32::new(settings.signup.rate_per_minute)
            .map(|per_minute| Arc::new(RateLimiter::keyed(Quota::per_minute(per_minute))));
        let trusted_proxies = settings
            .server
            .trusted_proxies
            .iter()
            .copied()
            .map(client_ip::canonical_net)
            .collect();
        Self {
            signups: Signups::new(pool.clone(), &settings.database.url, policy.clone()),
            catalog: Arc::new(Catalog::new(pool.clone())),
            pool,
            settings,
            policy,
            metrics,
            queue_signal,
            signup_limiter,
            trusted_proxies,
        }
    }
}

/// Registers every public route.
pub fn configure(cfg: &mut web::ServiceConfig) {
    let get_or_head = || guard::Any(guard::Get()).or(guard::Head());
    cfg.route("/", web::route().guard(get_or_head()).to(home::home))
        .route(
            "/health_check",
            web::route().guard(get_or_head()).to(assets::health_check),
        )
        .route("/metrics", web::get().to(metrics::metrics))
        .route(
            "/static/style.css",
            web::route().guard(get_or_head()).to(assets::stylesheet),
        )
        .configure(admin::configure_assets)
        .configure(admin::configure)
        .service(
            web::resource("/subscriptions")
                .wrap(signup_cors())
                .route(web::post().to(subscribe::subscribe)),
        )
        .service(
            web::resource("/subscriptions/confirm")
                .app_data(web::PayloadConfig::new(subscribe::MAX_BODY))
                .route(web::route().guard(get_or_head()).to(confirm::confirm_page))
                .route(web::post().to(confirm::confirm)),
        )
        .route(
            "/archive/{slug}",
            web::route().guard(get_or_head()).to(archive::index),
        )
        .route(
            "/archive/{slug}/{date}",
            web::route().guard(get_or_head()).to(archive::issue),
        )
        .service(
            web::resource("/unsubscribe")
                .app_data(web::PayloadConfig::new(subscribe::MAX_BODY))
                .route(
                    web::route()
                        .guard(get_or_head())
                        .to(unsubscribe::unsubscribe_page),
                )
                .route(web::post().to(unsubscribe::unsubscribe)),
        )
        .service(web::resource("/webhooks/bounces").route(web::post().to(webhooks::bounces)));
}

/// News sites embed the signup on their own pages, so scripts from any origin may post
/// to it. That is safe: the endpoint takes no cookie and answers the same for every address.
fn signup_cors() -> actix_cors::Cors {
    actix_cors::Cors::default()
        .allow_any_origin()
        .allowed_methods(["POST"])
        .allowed_header(actix_web::http::header::CONTENT_TYPE)
        .max_age(86_400)
}

async fn not_found(req: actix_web::HttpRequest) -> HttpResponse {
    responses::error(
        Format::of(&req),
        StatusCode::NOT_FOUND,
        "not_found",
        "Page not found",
        "There is nothing at this address.",
    )
}

/// Builds the HTTP server on an already bound listener.
pub fn server(listener: TcpListener, state: AppState, workers: usize) -> std::io::Result<Server> {
    let http = state.settings.server.http;
    let state = web::Data::new(state);
    let server = HttpServer::new(move || {
        App::new()
            // Innermost, so the 408 it may answer gets the security headers and is logged.
            .wrap(from_fn(request_body::guard))
            .wrap(from_fn(middleware::security_headers))
            .wrap(from_fn(middleware::log_requests))
            .wrap(tracing_actix_web::TracingLogger::<request_span::RequestSpan>::new())
            .app_data(state.clone())
            .configure(configure)
            .default_service(web::to(not_found))
    })
    .workers(workers)
    // The body's deadline is `request_body::guard`'s; these are the head's, closing's and
    // how many connections the workers hold together.
    .client_request_timeout(http.head_timeout)
    .client_disconnect_timeout(http.disconnect_timeout)
    .max_connections(http.max_connections_per_worker(workers))
    .shutdown_timeout(10)
    .listen(listener)?
    .run();
    Ok(server)
}
