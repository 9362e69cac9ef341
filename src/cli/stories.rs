//! `stories import|add|list`: stories in by hand, and what a day holds.

use std::path::PathBuf;

use anyhow::{Context, bail};
use chrono::{DateTime, NaiveDate, SubsecRound, TimeZone, Utc};
use clap::Subcommand;
use url::Url;

use crate::app;
use crate::config::Settings;
use crate::db::newsletters::{self, Newsletter};
use crate::db::stories::{self, IncomingStory};
use crate::db::{self, Pool};
use crate::domain::{NewsletterSlug, NewsletterTimeZone, day_bounds_utc, today_in};
use crate::feeds::import::{self, ImportError};
use crate::feeds::parse::story_url;
use crate::feeds::sanitise::{MAX_TITLE_CHARS, cut_chars, plain_text, summary_html};
use crate::feeds::{FeedOrigin, fetch::display_url};

/// `stories …`
#[derive(Debug, Subcommand)]
pub enum StoriesCommand {
    /// Import an RSS 2.0, RSS 1.0, Atom or JSON Feed file or URL; importing again updates.
    Import {
        /// A file path, or an http(s) URL to fetch.
        #[arg(value_name = "FILE_OR_URL")]
        source: String,
        /// The newsletter the stories go to.
        #[arg(long, default_value = NewsletterSlug::DEFAULT, value_name = "SLUG")]
        newsletter: String,
    },
    /// Add one story by hand (its URL is its identity: adding it again updates it).
    Add {
        /// Title (plain text; tags are stripped).
        #[arg(long)]
        title: String,
        /// Absolute http(s) link.
        #[arg(long)]
        url: String,
        /// Summary (HTML is sanitised like a feed's).
        #[arg(long, default_value = "")]
        summary: String,
        /// Publication time, RFC 3339 (default: now).
        #[arg(long, value_name = "RFC3339")]
        published_at: Option<String>,
        /// The newsletter the story goes to.
        #[arg(long, default_value = NewsletterSlug::DEFAULT, value_name = "SLUG")]
        newsletter: String,
    },
    /// List one day's stories, in the newsletter's time zone.
    List {
        /// The day (default: today in the newsletter's time zone).
        #[arg(long, value_name = "YYYY-MM-DD")]
        date: Option<String>,
        /// The newsletter.
        #[arg(long, default_value = NewsletterSlug::DEFAULT, value_name = "SLUG")]
        newsletter: String,
    },
}

/// Runs a `stories` command.
pub async fn run(settings: &Settings, command: StoriesCommand) -> anyhow::Result<()> {
    match command {
        StoriesCommand::Import { source, newsletter } => {
            let pool = app::prepare_database(settings).await?;
            let newsletter = newsletter_by_slug(&pool, &newsletter).await?;
            let loaded = if looks_like_url(&source) {
                let url = Url::parse(&source)
                    .ok()
                    .filter(|u| matches!(u.scheme(), "http" | "https"))
                    .with_context(|| {
                        format!("\"{}\" is not an http or https URL", display_url(&source))
                    })?;
                import::fetch_once(&url, &settings.fetch)
                    .await
                    .map(|bytes| (bytes, FeedOrigin::url(&url)))
            } else {
                let path = PathBuf::from(&source);
                import::read_file(&path)
                    .await
                    .map(|bytes| (bytes, FeedOrigin::file(&path)))
            };
            let (bytes, origin) = loaded.map_err(|e| describe_import_error(e, &source))?;
            let report = import::import_bytes(&pool, newsletter.id, bytes, origin)
                .await
                .map_err(|e| describe_import_error(e, &source))?;
            println!("{report}");
            Ok(())
        }
        StoriesCommand::Add {
            title,
            url,
            summary,
            published_at,
            newsletter,
        } => {
            let title = plain_text(&title, MAX_TITLE_CHARS);
            if title.is_empty() {
                bail!("invalid --title: it is empty as plain text");
            }
            let url = story_url(&url).map_err(|e| anyhow::anyhow!("invalid --url: {e}"))?;
            let published_at = match published_at {
                Some(raw) => Some(parse_rfc3339(&raw)?),
                None => None,
            };
            let pool = app::prepare_database(settings).await?;
            let newsletter = newsletter_by_slug(&pool, &newsletter).await?;
            let story = IncomingStory {
                guid: url.to_string(),
                url: url.to_string(),
                summary_html: summary_html(&summary, Some(&url)),
                source: url
                    .host_str()
                    .map(|h| h.strip_prefix("www.").unwrap_or(h).to_owned())
                    .unwrap_or_default(),
                title,
                // Without --published-at a new story is dated now and a known one keeps
                // its time, so adding the same story twice changes nothing.
                published_at,
            };
            let shown = story.title.clone();
            let newsletter_id = newsletter.id;
            let counts = db::run(&pool, move |conn| {
                stories::upsert(conn, newsletter_id, &[story], db::now())
            })
            .await?;
            let slug = &newsletter.slug;
            if counts.new > 0 {
                println!("Added \"{shown}\" to {slug}.");
            } else if counts.updated > 0 {
                println!("Updated \"{shown}\" in {slug}.");
            } else {
                println!("\"{shown}\" is already in {slug}, unchanged.");
            }
            Ok(())
        }
        StoriesCommand::List { date, newsletter } => {
            let pool = app::prepare_database(settings).await?;
            let newsletter = newsletter_by_slug(&pool, &newsletter).await?;
            let zone = NewsletterTimeZone::parse(&newsletter.timezone).with_context(|| {
                format!("newsletter {} has an invalid time zone", newsletter.slug)
            })?;
            let date = match date {
                Some(raw) => NaiveDate::parse_from_str(raw.trim(), "%Y-%m-%d")
                    .with_context(|| format!("invalid --date \"{raw}\": expected YYYY-MM-DD"))?,
                None => today_in(zone.tz()),
            };
            let bounds = day_bounds_utc(date, zone.tz());
            let newsletter_id = newsletter.id;
            let day = db::run(&pool, move |conn| {
                stories::list(conn, newsletter_id, Some(bounds))
            })
            .await?;
            print_day(&newsletter, zone, date, &day);
            Ok(())
        }
    }
}

fn print_day(
    newsletter: &Newsletter,
    zone: NewsletterTimeZone,
    date: NaiveDate,
    day: &[stories::Story],
) {
    if day.is_empty() {
        println!("No stories on {date} ({zone}) in {}.", newsletter.slug);
        return;
    }
    println!(
        "{} {} on {date} ({zone}) in {}:",
        day.len(),
        if day.len() == 1 { "story" } else { "stories" },
        newsletter.slug
    );
    println!("{:<5}  {:<60}  {:<24}  URL", "TIME", "TITLE", "SOURCE");
    for story in day {
        let local = Utc
            .from_utc_datetime(&story.published_at)
            .with_timezone(&zone.tz());
        println!(
            "{:<5}  {:<60}  {:<24}  {}",
            local.format("%H:%M"),
            cell(&story.title, 60),
            cell(&story.source, 24),
            story.url
        );
    }
}

/// A table cell: at most `width` characters (titles and sources are one line already).
fn cell(text: &str, width: usize) -> String {
    cut_chars(text, width)
}

fn parse_rfc3339(raw: &str) -> anyhow::Result<chrono::NaiveDateTime> {
    DateTime::parse_from_rfc3339(raw.trim())
        .map(|t| t.with_timezone(&Utc).naive_utc().trunc_subsecs(6))
        .with_context(|| {
            format!(
                "invalid --published-at \"{raw}\": expected RFC 3339, e.g. 2026-11-25T07:30:00Z"
            )
        })
}

fn looks_like_url(source: &str) -> bool {
    // A scheme and "://": anything else is a path, even one with a colon in it.
    source.split_once("://").is_some_and(|(scheme, _)| {
        !scheme.is_empty()
            && scheme
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || "+-.".contains(c))
    })
}

/// Names the feed in the error, unless the error names it already.
fn describe_import_error(error: ImportError, source: &str) -> anyhow::Error {
    match error {
        ImportError::File { .. } | ImportError::Storage(_) => anyhow::Error::new(error),
        other => anyhow::anyhow!("cannot import {}: {other}", display_url(source)),
    }
}

/// The newsletter with this slug, or an error naming it.
pub(super) async fn newsletter_by_slug(pool: &Pool, slug: &str) -> anyhow::Result<Newsletter> {
    let parsed = NewsletterSlug::parse(slug)
        .map_err(|e| anyhow::anyhow!("invalid --newsletter \"{slug}\": {e}"))?;
    let slugs = vec![parsed.as_str().to_owned()];
    let found = db::run(pool, move |conn| newsletters::by_slugs(conn, &slugs)).await?;
    found.into_iter().next().with_context(|| {
        format!("unknown newsletter \"{slug}\" (see `spacedigest newsletter list`)")
    })
}
