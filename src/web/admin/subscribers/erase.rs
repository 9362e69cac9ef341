//! `/admin/subscribers/{id}/erase`: a privacy request; the page asks, the POST erases.

use actix_web::{HttpResponse, web};
use askama::Template;

use super::load_subscriber;
use crate::db;
use crate::db::subscribers::Subscriber;
use crate::subscriptions::erase::erase;
use crate::web::admin::format::subscriber_id;
use crate::web::admin::{Console, ConsoleError, CsrfForm, Layout, render, see_other};

#[derive(Template)]
#[template(path = "admin/subscriber_erase.html")]
struct ErasePage {
    layout: Layout,
    subscriber: Subscriber,
    subscriptions: usize,
}

pub(super) async fn erase_page(
    console: Console,
    path: web::Path<String>,
) -> Result<HttpResponse, ConsoleError> {
    let id = subscriber_id(&path)?;
    let (subscriber, subscriptions) = load_subscriber(&console, id).await?;
    render(&ErasePage {
        layout: console.layout("subscribers"),
        subscriber,
        subscriptions: subscriptions.len(),
    })
}

pub(super) async fn erase_now(
    form: CsrfForm,
    path: web::Path<String>,
) -> Result<HttpResponse, ConsoleError> {
    let console = form.console;
    let id = subscriber_id(&path)?;
    let erased = db::run(console.pool(), move |conn| erase(conn, id)).await?;
    if erased.is_none() {
        return Err(ConsoleError::NotFound(
            "There is no such subscriber; they may have been erased already.".into(),
        ));
    }
    tracing::info!(
        operator_id = console.operator.id,
        subscriber_id = id,
        "console: subscriber erased"
    );
    Ok(see_other("/admin/subscribers?done=erased"))
}
