//! `feed add|list|remove`: the feeds `serve` polls.

use anyhow::bail;
use clap::Subcommand;
use url::Url;

use super::stories::newsletter_by_slug;
use crate::app;
use crate::config::Settings;
use crate::db::{self, feeds};
use crate::domain::NewsletterSlug;
use crate::feeds::fetch::display_url;
use crate::fetch::AddressPolicy;

/// `feed …`
#[derive(Debug, Subcommand)]
pub enum FeedCommand {
    /// Register a feed for `serve` to poll.
    Add {
        /// The feed's http(s) URL.
        url: String,
        /// The newsletter its stories go to.
        #[arg(long, default_value = NewsletterSlug::DEFAULT, value_name = "SLUG")]
        newsletter: String,
    },
    /// List registered feeds with their last poll.
    List,
    /// Stop polling a feed.
    Remove {
        /// The feed's URL, as added.
        url: String,
        /// Only from this newsletter (default: from every newsletter that has it).
        #[arg(long, value_name = "SLUG")]
        newsletter: Option<String>,
    },
}

/// Runs a `feed` command.
pub async fn run(settings: &Settings, command: FeedCommand) -> anyhow::Result<()> {
    match command {
        FeedCommand::Add { url, newsletter } => {
            let url = feed_url(&url)?;
            // The poller checks every fetch; an address refused already is refused now.
            if let Err(refused) = AddressPolicy::new(&settings.fetch).check_url_before_lookup(&url)
            {
                bail!(
                    "cannot add the feed {}: {refused}",
                    display_url(url.as_str())
                );
            }
            let pool = app::prepare_database(settings).await?;
            let newsletter = newsletter_by_slug(&pool, &newsletter).await?;
            let newsletter_id = newsletter.id;
            let stored = url.to_string();
            let added = db::run(&pool, move |conn| {
                feeds::add(conn, newsletter_id, &stored, db::now())
            })
            .await?;
            if added.is_none() {
                bail!(
                    "the feed {} is already registered for {}",
                    display_url(url.as_str()),
                    newsletter.slug
                );
            }
            println!(
                "Added feed {} to {}; `serve` polls it every {} minutes.",
                display_url(url.as_str()),
                newsletter.slug,
                settings.digest.feed_poll_interval.as_secs() / 60
            );
            Ok(())
        }
        FeedCommand::List => {
            let pool = app::prepare_database(settings).await?;
            let all = db::run(&pool, feeds::all_with_newsletter).await?;
            if all.is_empty() {
                println!("No feeds registered. Add one with `spacedigest feed add URL`.");
                return Ok(());
            }
            println!(
                "{:<50}  {:<16}  {:<20}  LAST ERROR",
                "URL", "NEWSLETTER", "LAST POLL (UTC)"
            );
            for (feed, slug) in all {
                let polled = feed.last_polled_at.map_or_else(
                    || "never".to_owned(),
                    |t| t.format("%Y-%m-%d %H:%M").to_string(),
                );
                println!(
                    "{:<50}  {:<16}  {:<20}  {}",
                    display_url(&feed.url),
                    slug,
                    polled,
                    feed.last_error.as_deref().unwrap_or("-")
                );
            }
            Ok(())
        }
        FeedCommand::Remove { url, newsletter } => {
            let url = feed_url(&url)?;
            let pool = app::prepare_database(settings).await?;
            let newsletter_id = match newsletter {
                Some(slug) => Some(newsletter_by_slug(&pool, &slug).await?.id),
                None => None,
            };
            let stored = url.to_string();
            let removed = db::run(&pool, move |conn| {
                feeds::remove(conn, &stored, newsletter_id)
            })
            .await?;
            if removed.is_empty() {
                bail!("no feed {} is registered", display_url(url.as_str()));
            }
            println!(
                "Removed feed {} from {}.",
                display_url(url.as_str()),
                removed.join(", ")
            );
            Ok(())
        }
    }
}

/// An absolute http(s) URL, normalised (so the same feed written two ways is one feed).
fn feed_url(raw: &str) -> anyhow::Result<Url> {
    crate::feeds::fetch::feed_url(raw).map_err(anyhow::Error::msg)
}
