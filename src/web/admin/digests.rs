//! The console's digests pages.

use actix_web::web;

pub fn configure(_cfg: &mut web::ServiceConfig) {}
