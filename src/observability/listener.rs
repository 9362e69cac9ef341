//! The separate metrics listener (`SPACEDIGEST_METRICS_LISTEN`): `/metrics` without a
//! token, meant for an internal interface. `worker` has no other web server, so this is
//! how workers expose their counters; `serve` runs it beside the public server.

use std::net::{SocketAddr, TcpListener};
use std::sync::Arc;

use actix_web::dev::Server;
use actix_web::{App, HttpResponse, HttpServer, web};
use anyhow::Context;

use super::{Metrics, scrape};
use crate::db::Pool;

struct Source {
    pool: Pool,
    metrics: Arc<Metrics>,
}

/// Binds the listener, so that a taken address stops the program at start.
pub fn bind(address: SocketAddr) -> anyhow::Result<TcpListener> {
    TcpListener::bind(address).with_context(|| {
        format!("cannot listen for metrics on {address} (SPACEDIGEST_METRICS_LISTEN)")
    })
}

/// Serves `/metrics` (and nothing else) on `listener` until stopped through its handle.
pub fn server(listener: TcpListener, pool: Pool, metrics: Arc<Metrics>) -> std::io::Result<Server> {
    let source = web::Data::new(Source { pool, metrics });
    let server = HttpServer::new(move || {
        App::new()
            .app_data(source.clone())
            .route("/metrics", web::get().to(metrics_page))
            .default_service(web::to(HttpResponse::NotFound))
    })
    .workers(1)
    // The process's own stop signal handling stops this server through its handle.
    .disable_signals()
    .shutdown_timeout(1)
    .listen(listener)?
    .run();
    Ok(server)
}

async fn metrics_page(source: web::Data<Source>) -> HttpResponse {
    scrape::response(&source.pool, &source.metrics).await
}
