//! The console's dashboard.

use actix_web::{HttpResponse, web};
use askama::Template;

use super::{Console, ConsoleError, Layout, render};

pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.route("", web::get().to(dashboard));
}

#[derive(Template)]
#[template(path = "admin/dashboard.html")]
struct DashboardPage {
    layout: Layout,
}

async fn dashboard(console: Console) -> Result<HttpResponse, ConsoleError> {
    render(&DashboardPage {
        layout: console.layout("dashboard"),
    })
}
