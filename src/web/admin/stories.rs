//! The console's stories pages: a newsletter's day of stories, adding, editing and
//! deleting one by hand, and importing a feed (see [`import`]).
//!
//! A story added here goes through the same checks as `stories add`: the title becomes
//! plain text, the link must be absolute http(s), the summary is sanitised like a feed's,
//! and the URL is the story's identity (adding it again updates it).

mod import;

use actix_web::http::StatusCode;
use actix_web::{HttpResponse, web};
use askama::Template;
use chrono::{NaiveDate, NaiveDateTime, SubsecRound, TimeZone, Utc};
use chrono_tz::Tz;
use serde::Deserialize;
use url::Url;

use super::format::path_id;
use super::newsletter_select::{self as shared, NewsletterOption};
use super::{Console, ConsoleError, CsrfForm, Layout, render, render_with, see_other};
use crate::db::newsletters::Newsletter;
use crate::db::stories::{self, IncomingStory, Story, StoryEdit};
use crate::db::{self, digests};
use crate::digest;
use crate::feeds::parse::story_url;
use crate::feeds::sanitise::{MAX_TITLE_CHARS, plain_text, summary_html};

/// Characters of a summary shown in the list.
const EXCERPT_CHARS: usize = 180;

/// How `datetime-local` inputs submit (seconds appear when the value had them).
const LOCAL_FORMATS: [&str; 4] = [
    "%Y-%m-%dT%H:%M",
    "%Y-%m-%dT%H:%M:%S",
    "%Y-%m-%d %H:%M",
    "%Y-%m-%d %H:%M:%S",
];

pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.service(
        web::resource("/stories")
            .route(web::get().to(list_page))
            .route(web::post().to(create)),
    )
    .route("/stories/new", web::get().to(new_page))
    // Before `/stories/{id}`, which would take "import" for an id.
    .configure(import::configure)
    .route("/stories/{id}/edit", web::get().to(edit_page))
    .route("/stories/{id}", web::post().to(update))
    .service(
        web::resource("/stories/{id}/delete")
            .route(web::get().to(delete_page))
            .route(web::post().to(delete)),
    );
}

/// The list page of a newsletter's day.
pub(super) fn day_url(slug: &str, date: NaiveDate) -> String {
    format!("/admin/stories?newsletter={slug}&date={date}")
}

/// The first value of each query parameter: a repeated one is not worth a 400.
fn query_value<'a>(pairs: &'a [(String, String)], name: &str) -> Option<&'a str> {
    pairs
        .iter()
        .find(|(n, _)| n == name)
        .map(|(_, v)| v.as_str())
}

fn local_time(utc: NaiveDateTime, tz: Tz) -> chrono::DateTime<Tz> {
    Utc.from_utc_datetime(&utc).with_timezone(&tz)
}

struct StoryRow {
    id: i64,
    title: String,
    url: String,
    source: String,
    time: String,
    datetime: String,
    excerpt: String,
}

#[derive(Template)]
#[template(path = "admin/stories.html")]
struct ListPage {
    layout: Layout,
    newsletters: Vec<NewsletterOption>,
    newsletter: Newsletter,
    date: NaiveDate,
    today: NaiveDate,
    previous: Option<String>,
    next: Option<String>,
    rows: Vec<StoryRow>,
    /// When this day's issue was sent, if it was.
    sent_at: Option<String>,
}

async fn list_page(
    console: Console,
    query: Option<web::Query<Vec<(String, String)>>>,
) -> Result<HttpResponse, ConsoleError> {
    // A query that cannot be decoded is read as no query: today of the default newsletter.
    let query = query.map(web::Query::into_inner).unwrap_or_default();
    let notice = match query_value(&query, "done") {
        Some("added") => Some("Story added.".to_owned()),
        Some("existing") => {
            Some("A story with that link was here already; it was updated.".to_owned())
        }
        Some("updated") => Some("Story saved.".to_owned()),
        Some("deleted") => Some("Story deleted.".to_owned()),
        _ => None,
    };
    let all = shared::all(&console).await?;
    let newsletter = shared::by_slug(&all, query_value(&query, "newsletter").unwrap_or(""))
        .map_err(ConsoleError::NotFound)?
        .clone();
    let tz = digest::zone(&newsletter);
    let today = digest::today(&newsletter);
    let date = match query_value(&query, "date").map(str::trim) {
        None | Some("") => today,
        Some(raw) => NaiveDate::parse_from_str(raw, "%Y-%m-%d").map_err(|_| {
            ConsoleError::BadInput(format!(
                "\"{raw}\" is not a date: use the form YYYY-MM-DD, e.g. 2026-11-25."
            ))
        })?,
    };
    let (day, issue) = {
        let newsletter = newsletter.clone();
        db::run(console.pool(), move |conn| {
            Ok::<_, diesel::result::Error>((
                digest::day_stories(conn, &newsletter, date)?,
                digests::find(conn, newsletter.id, date)?,
            ))
        })
        .await?
    };
    let rows = day
        .into_iter()
        .map(|story| {
            let local = local_time(story.published_at, tz);
            StoryRow {
                id: story.id,
                excerpt: plain_text(&story.summary_html, EXCERPT_CHARS),
                title: story.title,
                url: story.url,
                source: story.source,
                time: local.format("%H:%M").to_string(),
                datetime: local.to_rfc3339(),
            }
        })
        .collect();
    let sent_at = issue
        .and_then(|i| i.fanned_out_at)
        .map(|at| local_time(at, tz).format("%Y-%m-%d %H:%M %Z").to_string());
    render(&ListPage {
        layout: console.layout_with_notice("stories", notice),
        newsletters: shared::options(&all, &newsletter.slug),
        previous: date.pred_opt().map(|d| day_url(&newsletter.slug, d)),
        next: date.succ_opt().map(|d| day_url(&newsletter.slug, d)),
        newsletter,
        date,
        today,
        rows,
        sent_at,
    })
}

/// The story form as typed.
#[derive(Debug, Default, Deserialize)]
struct StoryForm {
    #[serde(default)]
    newsletter: String,
    #[serde(default)]
    title: String,
    #[serde(default)]
    url: String,
    #[serde(default)]
    summary: String,
    #[serde(default)]
    published_at: String,
}

/// Why each field was refused.
#[derive(Debug, Default)]
struct FormErrors {
    newsletter: Option<String>,
    title: Option<String>,
    url: Option<String>,
    published_at: Option<String>,
}

impl FormErrors {
    /// (field id, message) in form order, for the summary at the top.
    fn listed(&self) -> Vec<(&'static str, &str)> {
        [
            ("newsletter", &self.newsletter),
            ("title", &self.title),
            ("url", &self.url),
            ("published_at", &self.published_at),
        ]
        .into_iter()
        .filter_map(|(id, e)| e.as_deref().map(|e| (id, e)))
        .collect()
    }
}

#[derive(Template)]
#[template(path = "admin/stories_form.html")]
struct FormPage {
    layout: Layout,
    /// The story being edited, `None` on the add form.
    editing: Option<Story>,
    /// The edited story's newsletter (the add form offers a choice instead).
    newsletter: Option<Newsletter>,
    newsletters: Vec<NewsletterOption>,
    form: StoryForm,
    errors: FormErrors,
    /// Set when the edited story's day was sent already.
    sent_on: Option<NaiveDate>,
}

impl FormPage {
    fn action(&self) -> String {
        match &self.editing {
            Some(story) => format!("/admin/stories/{}", story.id),
            None => "/admin/stories".to_owned(),
        }
    }

    fn back(&self) -> String {
        match (&self.editing, &self.newsletter) {
            (Some(story), Some(n)) => day_url(
                &n.slug,
                local_time(story.published_at, digest::zone(n)).date_naive(),
            ),
            _ => "/admin/stories".to_owned(),
        }
    }
}

/// `datetime-local` value of a UTC time in a zone.
fn input_value(utc: NaiveDateTime, tz: Tz) -> String {
    local_time(utc, tz).format("%Y-%m-%dT%H:%M").to_string()
}

#[derive(Deserialize)]
struct NewQuery {
    newsletter: Option<String>,
}

async fn new_page(
    console: Console,
    query: Option<web::Query<NewQuery>>,
) -> Result<HttpResponse, ConsoleError> {
    let all = shared::all(&console).await?;
    // An unknown newsletter in the link falls back to the default one.
    let selected = query
        .as_ref()
        .and_then(|q| q.newsletter.as_deref())
        .and_then(|slug| shared::by_slug(&all, slug).ok())
        .or_else(|| shared::by_slug(&all, "").ok())
        .or(all.first());
    let (slug, published_at) = match selected {
        Some(n) => (n.slug.clone(), input_value(db::now(), digest::zone(n))),
        None => (String::new(), String::new()),
    };
    render(&FormPage {
        layout: console.layout("stories"),
        editing: None,
        newsletter: None,
        newsletters: shared::options(&all, &slug),
        form: StoryForm {
            newsletter: slug,
            published_at,
            ..StoryForm::default()
        },
        errors: FormErrors::default(),
        sent_on: None,
    })
}

/// A story's fields, checked and sanitised.
struct CheckedStory {
    title: String,
    url: Url,
    summary_html: String,
    published_at: NaiveDateTime,
}

/// Checks the form as `stories add` checks its flags; `published_at` is read in `tz`.
fn check(form: &StoryForm, tz: Option<Tz>, errors: &mut FormErrors) -> Option<CheckedStory> {
    let title = plain_text(&form.title, MAX_TITLE_CHARS);
    if title.is_empty() {
        errors.title = Some("Give the story a title (tags are removed, so it needs text).".into());
    }
    let url = story_url(&form.url)
        .map_err(|e| {
            errors.url = Some(format!(
                "The link must be an absolute http or https URL: {e}."
            ))
        })
        .ok();
    let published_at = tz.and_then(|tz| {
        parse_local(&form.published_at, tz)
            .map_err(|e| errors.published_at = Some(e))
            .ok()
    });
    let url = url?;
    let published_at = published_at?;
    if title.is_empty() {
        return None;
    }
    Some(CheckedStory {
        title,
        summary_html: summary_html(&form.summary, Some(&url)),
        url,
        published_at,
    })
}

/// A `datetime-local` value read in `tz`, as UTC.
fn parse_local(raw: &str, tz: Tz) -> Result<NaiveDateTime, String> {
    let raw = raw.trim();
    if raw.is_empty() {
        return Err("Give the publication date and time.".into());
    }
    let local = LOCAL_FORMATS
        .iter()
        .find_map(|format| NaiveDateTime::parse_from_str(raw, format).ok())
        .ok_or_else(|| {
            format!(
                "\"{raw}\" is not a date and time: use YYYY-MM-DD HH:MM, e.g. 2026-11-25 07:30."
            )
        })?;
    if !(1970..=9999).contains(&chrono::Datelike::year(&local)) {
        return Err("The publication time must be between the years 1970 and 9999.".into());
    }
    // Where clocks fall back the earlier of the two moments is taken; where they
    // spring forward the time does not exist, and the operator is told so.
    let utc = tz.from_local_datetime(&local).earliest().ok_or_else(|| {
        format!(
            "{} does not exist in {tz}: the clocks skip it. Choose a time outside the change.",
            local.format("%Y-%m-%d %H:%M")
        )
    })?;
    Ok(utc.naive_utc().trunc_subsecs(6))
}

/// The source name of a hand-added story: its link's host, as `stories add` names it.
fn host_source(url: &Url) -> String {
    url.host_str()
        .map(|h| h.strip_prefix("www.").unwrap_or(h).to_owned())
        .unwrap_or_default()
}

async fn create(form: CsrfForm) -> Result<HttpResponse, ConsoleError> {
    let input: StoryForm = form.parse()?;
    let console = form.console;
    let all = shared::all(&console).await?;
    let mut errors = FormErrors::default();
    let newsletter = match shared::by_slug(&all, &input.newsletter) {
        Ok(n) => Some(n.clone()),
        Err(e) => {
            errors.newsletter = Some(e);
            None
        }
    };
    let checked = check(&input, newsletter.as_ref().map(digest::zone), &mut errors);
    let (Some(newsletter), Some(checked)) = (newsletter, checked) else {
        return render_with(
            StatusCode::BAD_REQUEST,
            &FormPage {
                layout: console.layout("stories"),
                editing: None,
                newsletter: None,
                newsletters: shared::options(&all, &input.newsletter),
                form: input,
                errors,
                sent_on: None,
            },
        );
    };
    let story = IncomingStory {
        guid: checked.url.to_string(),
        url: checked.url.to_string(),
        source: host_source(&checked.url),
        summary_html: checked.summary_html,
        title: checked.title,
        published_at: Some(checked.published_at),
    };
    let newsletter_id = newsletter.id;
    let counts = db::run(console.pool(), move |conn| {
        stories::upsert(conn, newsletter_id, &[story], db::now())
    })
    .await?;
    tracing::info!(
        operator_id = console.operator.id,
        newsletter = %newsletter.slug,
        new = counts.new,
        "console: story added"
    );
    let day = local_time(checked.published_at, digest::zone(&newsletter)).date_naive();
    let done = if counts.new > 0 { "added" } else { "existing" };
    Ok(see_other(&format!(
        "{}&done={done}",
        day_url(&newsletter.slug, day)
    )))
}

/// The story and its newsletter, or 404.
async fn find(console: &Console, raw_id: &str) -> Result<(Story, Newsletter), ConsoleError> {
    let id = path_id(raw_id, "story")?;
    let found = db::run(console.pool(), move |conn| {
        let Some(story) = stories::find(conn, id)? else {
            return Ok(None);
        };
        let newsletter = crate::db::newsletters::find(conn, story.newsletter_id)?;
        Ok::<_, diesel::result::Error>(newsletter.map(|n| (story, n)))
    })
    .await?;
    found.ok_or_else(|| {
        ConsoleError::NotFound("There is no such story; it may have been deleted.".into())
    })
}

/// The day the story is on, if that day's issue went out already.
async fn sent_day(
    console: &Console,
    newsletter: &Newsletter,
    published_at: NaiveDateTime,
) -> Result<Option<NaiveDate>, ConsoleError> {
    let day = local_time(published_at, digest::zone(newsletter)).date_naive();
    let newsletter_id = newsletter.id;
    let issue = db::run(console.pool(), move |conn| {
        digests::find(conn, newsletter_id, day)
    })
    .await?;
    Ok(issue.filter(|i| i.fanned_out_at.is_some()).map(|_| day))
}

async fn edit_page(console: Console, id: web::Path<String>) -> Result<HttpResponse, ConsoleError> {
    let (story, newsletter) = find(&console, &id).await?;
    let sent_on = sent_day(&console, &newsletter, story.published_at).await?;
    let form = StoryForm {
        newsletter: newsletter.slug.clone(),
        title: story.title.clone(),
        url: story.url.clone(),
        summary: story.summary_html.clone(),
        published_at: input_value(story.published_at, digest::zone(&newsletter)),
    };
    render(&FormPage {
        layout: console.layout("stories"),
        editing: Some(story),
        newsletter: Some(newsletter),
        newsletters: Vec::new(),
        form,
        errors: FormErrors::default(),
        sent_on,
    })
}

async fn update(form: CsrfForm, id: web::Path<String>) -> Result<HttpResponse, ConsoleError> {
    let mut input: StoryForm = form.parse()?;
    let console = form.console;
    let (story, newsletter) = find(&console, &id).await?;
    // A story stays in its newsletter.
    input.newsletter.clone_from(&newsletter.slug);
    let tz = digest::zone(&newsletter);
    let mut errors = FormErrors::default();
    let Some(checked) = check(&input, Some(tz), &mut errors) else {
        let sent_on = sent_day(&console, &newsletter, story.published_at).await?;
        return render_with(
            StatusCode::BAD_REQUEST,
            &FormPage {
                layout: console.layout("stories"),
                editing: Some(story),
                newsletter: Some(newsletter),
                newsletters: Vec::new(),
                form: input,
                errors,
                sent_on,
            },
        );
    };
    // A story named after its link's host follows a new link; a feed's name stays.
    let old_host = Url::parse(&story.url).map(|u| host_source(&u)).ok();
    let source = if old_host.as_deref() == Some(story.source.as_str()) {
        host_source(&checked.url)
    } else {
        story.source.clone()
    };
    let edit = StoryEdit {
        url: checked.url.to_string(),
        title: checked.title,
        summary_html: checked.summary_html,
        source,
        published_at: checked.published_at,
    };
    let story_id = story.id;
    let found = db::run(console.pool(), move |conn| {
        stories::update(conn, story_id, &edit, db::now())
    })
    .await?;
    if !found {
        return Err(ConsoleError::NotFound(
            "There is no such story; it may have been deleted.".into(),
        ));
    }
    tracing::info!(
        operator_id = console.operator.id,
        story_id,
        "console: story edited"
    );
    let day = local_time(checked.published_at, tz).date_naive();
    Ok(see_other(&format!(
        "{}&done=updated",
        day_url(&newsletter.slug, day)
    )))
}

#[derive(Template)]
#[template(path = "admin/stories_delete.html")]
struct DeletePage {
    layout: Layout,
    story: Story,
    newsletter: Newsletter,
    back: String,
    sent_on: Option<NaiveDate>,
}

async fn delete_page(
    console: Console,
    id: web::Path<String>,
) -> Result<HttpResponse, ConsoleError> {
    let (story, newsletter) = find(&console, &id).await?;
    let sent_on = sent_day(&console, &newsletter, story.published_at).await?;
    let day = local_time(story.published_at, digest::zone(&newsletter)).date_naive();
    render(&DeletePage {
        layout: console.layout("stories"),
        back: day_url(&newsletter.slug, day),
        story,
        newsletter,
        sent_on,
    })
}

async fn delete(form: CsrfForm, id: web::Path<String>) -> Result<HttpResponse, ConsoleError> {
    let console = form.console;
    let (story, newsletter) = find(&console, &id).await?;
    let story_id = story.id;
    db::run(console.pool(), move |conn| stories::delete(conn, story_id)).await?;
    tracing::info!(
        operator_id = console.operator.id,
        story_id,
        "console: story deleted"
    );
    let day = local_time(story.published_at, digest::zone(&newsletter)).date_naive();
    Ok(see_other(&format!(
        "{}&done=deleted",
        day_url(&newsletter.slug, day)
    )))
}
