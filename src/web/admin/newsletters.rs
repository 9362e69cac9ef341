//! The console's newsletters pages: the list with confirmed readers, create, edit.

use std::collections::HashMap;

use actix_web::http::StatusCode;
use actix_web::{HttpResponse, web};
use askama::Template;
use serde::Deserialize;

use super::format::path_id;
use super::{Console, ConsoleError, CsrfForm, Layout, render, render_with, see_other};
use crate::db;
use crate::db::newsletters::{self, NewNewsletter, Newsletter, NewsletterChanges};
use crate::domain::{NewsletterSlug, NewsletterTimeZone, NewsletterTitle, SendTime};

/// A description is one line for the signup form (as `newsletter add` checks it).
const MAX_DESCRIPTION_CHARS: usize = 300;

pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.service(
        web::resource("/newsletters")
            .route(web::get().to(list_page))
            .route(web::post().to(create)),
    )
    .route("/newsletters/new", web::get().to(new_page))
    .route("/newsletters/{id}/edit", web::get().to(edit_page))
    .route("/newsletters/{id}", web::post().to(update));
}

#[derive(Deserialize)]
struct DoneQuery {
    done: Option<String>,
}

struct NewsletterRow {
    newsletter: Newsletter,
    confirmed: i64,
}

#[derive(Template)]
#[template(path = "admin/newsletters.html")]
struct ListPage {
    layout: Layout,
    rows: Vec<NewsletterRow>,
}

async fn list_page(
    console: Console,
    query: Option<web::Query<DoneQuery>>,
) -> Result<HttpResponse, ConsoleError> {
    let done = query.and_then(|q| q.into_inner().done);
    let notice = match done.as_deref() {
        Some("created") => Some("Newsletter created. It is on the signup page now.".to_owned()),
        Some("updated") => Some("Newsletter saved.".to_owned()),
        _ => None,
    };
    let (all, counts) = db::run(console.pool(), |conn| {
        Ok::<_, diesel::result::Error>((
            newsletters::all(conn)?,
            newsletters::confirmed_counts(conn)?,
        ))
    })
    .await?;
    let counts: HashMap<i64, i64> = counts.into_iter().collect();
    let rows = all
        .into_iter()
        .map(|newsletter| NewsletterRow {
            confirmed: counts.get(&newsletter.id).copied().unwrap_or(0),
            newsletter,
        })
        .collect();
    render(&ListPage {
        layout: console.layout_with_notice("newsletters", notice),
        rows,
    })
}

/// What the form holds, as typed.
#[derive(Debug, Default, Deserialize)]
struct NewsletterForm {
    #[serde(default)]
    slug: String,
    #[serde(default)]
    title: String,
    #[serde(default)]
    description: String,
    #[serde(default)]
    send_at: String,
    #[serde(default)]
    timezone: String,
}

/// Why each field was refused.
#[derive(Debug, Default)]
struct FormErrors {
    slug: Option<String>,
    title: Option<String>,
    description: Option<String>,
    send_at: Option<String>,
    timezone: Option<String>,
}

impl FormErrors {
    fn is_empty(&self) -> bool {
        self.slug.is_none()
            && self.title.is_none()
            && self.description.is_none()
            && self.send_at.is_none()
            && self.timezone.is_none()
    }

    /// (field id, message) in form order, for the summary at the top.
    fn summary(&self) -> Vec<(&'static str, &str)> {
        [
            ("slug", &self.slug),
            ("title", &self.title),
            ("description", &self.description),
            ("send_at", &self.send_at),
            ("timezone", &self.timezone),
        ]
        .into_iter()
        .filter_map(|(id, e)| e.as_deref().map(|e| (id, e)))
        .collect()
    }
}

#[derive(Template)]
#[template(path = "admin/newsletters_form.html")]
struct FormPage {
    layout: Layout,
    /// The newsletter being edited; `None` on the create form.
    editing: Option<Newsletter>,
    form: NewsletterForm,
    errors: FormErrors,
    zones: Vec<&'static str>,
}

impl FormPage {
    fn action(&self) -> String {
        match &self.editing {
            Some(n) => format!("/admin/newsletters/{}", n.id),
            None => "/admin/newsletters".to_owned(),
        }
    }
}

fn zone_names() -> Vec<&'static str> {
    chrono_tz::TZ_VARIANTS.iter().map(|tz| tz.name()).collect()
}

async fn new_page(console: Console) -> Result<HttpResponse, ConsoleError> {
    render(&FormPage {
        layout: console.layout("newsletters"),
        editing: None,
        form: NewsletterForm {
            send_at: SendTime::default().to_string(),
            timezone: NewsletterTimeZone::default().name().to_owned(),
            ..NewsletterForm::default()
        },
        errors: FormErrors::default(),
        zones: zone_names(),
    })
}

async fn find(console: &Console, raw_id: &str) -> Result<Newsletter, ConsoleError> {
    let id = path_id(raw_id, "newsletter")?;
    db::run(console.pool(), move |conn| newsletters::find(conn, id))
        .await?
        .ok_or_else(|| ConsoleError::NotFound("There is no such newsletter.".into()))
}

async fn edit_page(console: Console, id: web::Path<String>) -> Result<HttpResponse, ConsoleError> {
    let newsletter = find(&console, &id).await?;
    render(&FormPage {
        layout: console.layout("newsletters"),
        form: NewsletterForm {
            slug: newsletter.slug.clone(),
            title: newsletter.title.clone(),
            description: newsletter.description.clone(),
            send_at: newsletter.send_at.clone(),
            timezone: newsletter.timezone.clone(),
        },
        editing: Some(newsletter),
        errors: FormErrors::default(),
        zones: zone_names(),
    })
}

/// The checked values of a valid form.
struct Checked {
    title: NewsletterTitle,
    description: String,
    send_at: SendTime,
    timezone: NewsletterTimeZone,
}

/// Checks everything but the slug, as `newsletter add` does.
fn check(form: &NewsletterForm, errors: &mut FormErrors) -> Option<Checked> {
    let title = NewsletterTitle::parse(&form.title)
        .map_err(|e| errors.title = Some(e.to_string()))
        .ok();
    let description = form.description.trim().to_owned();
    if description.chars().count() > MAX_DESCRIPTION_CHARS
        || description.chars().any(char::is_control)
    {
        errors.description = Some(format!(
            "A description is at most {MAX_DESCRIPTION_CHARS} characters, on one line."
        ));
    }
    let send_at = SendTime::parse(&form.send_at)
        .map_err(|e| errors.send_at = Some(e.to_string()))
        .ok();
    let timezone = NewsletterTimeZone::parse(&form.timezone)
        .map_err(|e| errors.timezone = Some(e.to_string()))
        .ok();
    match (title, send_at, timezone) {
        (Some(title), Some(send_at), Some(timezone)) if errors.is_empty() => Some(Checked {
            title,
            description,
            send_at,
            timezone,
        }),
        _ => None,
    }
}

fn refuse(
    console: &Console,
    editing: Option<Newsletter>,
    form: NewsletterForm,
    errors: FormErrors,
) -> Result<HttpResponse, ConsoleError> {
    render_with(
        StatusCode::BAD_REQUEST,
        &FormPage {
            layout: console.layout("newsletters"),
            editing,
            form,
            errors,
            zones: zone_names(),
        },
    )
}

async fn create(form: CsrfForm) -> Result<HttpResponse, ConsoleError> {
    let input: NewsletterForm = form.parse()?;
    let console = form.console;
    let mut errors = FormErrors::default();
    let slug = NewsletterSlug::parse(input.slug.trim())
        .map_err(|e| errors.slug = Some(e.to_string()))
        .ok();
    let checked = check(&input, &mut errors);
    let (Some(slug), Some(checked)) = (slug, checked) else {
        return refuse(&console, None, input, errors);
    };
    let created = {
        let slug = slug.clone();
        db::run(console.pool(), move |conn| {
            newsletters::create(
                conn,
                &NewNewsletter {
                    slug: slug.as_str(),
                    title: checked.title.as_str(),
                    description: &checked.description,
                    send_at: &checked.send_at.to_string(),
                    timezone: checked.timezone.name(),
                    created_at: db::now(),
                },
            )
        })
        .await?
    };
    match created {
        Some(newsletter) => {
            tracing::info!(
                operator_id = console.operator.id,
                newsletter = %newsletter.slug,
                "console: newsletter created"
            );
            Ok(see_other("/admin/newsletters?done=created"))
        }
        None => {
            errors.slug = Some(format!(
                "A newsletter with the slug \"{slug}\" exists already; choose another."
            ));
            refuse(&console, None, input, errors)
        }
    }
}

async fn update(form: CsrfForm, id: web::Path<String>) -> Result<HttpResponse, ConsoleError> {
    let mut input: NewsletterForm = form.parse()?;
    let console = form.console;
    let newsletter = find(&console, &id).await?;
    // The slug is fixed; whatever the form says about it is ignored.
    input.slug.clone_from(&newsletter.slug);
    let mut errors = FormErrors::default();
    let Some(checked) = check(&input, &mut errors) else {
        return refuse(&console, Some(newsletter), input, errors);
    };
    let newsletter_id = newsletter.id;
    let found = db::run(console.pool(), move |conn| {
        newsletters::update(
            conn,
            newsletter_id,
            &NewsletterChanges {
                title: checked.title.as_str(),
                description: &checked.description,
                send_at: &checked.send_at.to_string(),
                timezone: checked.timezone.name(),
            },
        )
    })
    .await?;
    if !found {
        return Err(ConsoleError::NotFound(
            "There is no such newsletter.".into(),
        ));
    }
    tracing::info!(
        operator_id = console.operator.id,
        newsletter = %newsletter.slug,
        "console: newsletter edited"
    );
    Ok(see_other("/admin/newsletters?done=updated"))
}
