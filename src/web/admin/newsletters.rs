//! The console's newsletters pages.

use actix_web::web;

pub fn configure(_cfg: &mut web::ServiceConfig) {}
