//! `GET /`: the "Subscribe Free To Our Daily Newsletters" page.

use actix_web::http::StatusCode;
use actix_web::http::header::{self, ContentType};
use actix_web::{HttpResponse, web};

use crate::db::newsletters::Newsletter;
use crate::domain::NewsletterSlug;
use crate::web::AppState;
use crate::web::pages::{FormErrors, NewsletterOption, SubscribePage};
use crate::web::responses::{self, Format};

/// The signup form.
pub async fn home(state: web::Data<AppState>) -> HttpResponse {
    match state.catalog.snapshot().await {
        Ok(snapshot) => match &snapshot.home_page {
            Some(html) => HttpResponse::Ok()
                .content_type(ContentType::html())
                .insert_header((header::CACHE_CONTROL, "no-store"))
                .body(html.clone()),
            None => responses::page(
                StatusCode::OK,
                &SubscribePage {
                    newsletters: newsletter_options(&snapshot.newsletters, None),
                    email: String::new(),
                    name: String::new(),
                    errors: FormErrors::default(),
                },
            ),
        },
        Err(error) => responses::unavailable(Format::Html, &error),
    }
}

/// Checkboxes for the form: the chosen slugs ticked, or the default newsletter when the
/// reader chose none yet.
pub fn newsletter_options(all: &[Newsletter], chosen: Option<&[String]>) -> Vec<NewsletterOption> {
    all.iter()
        .map(|n| NewsletterOption {
            slug: n.slug.clone(),
            title: n.title.clone(),
            description: n.description.clone(),
            checked: match chosen {
                Some(chosen) => chosen.contains(&n.slug),
                None => n.slug == NewsletterSlug::DEFAULT || all.len() == 1,
            },
        })
        .collect()
}
