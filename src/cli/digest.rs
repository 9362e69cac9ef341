//! `digest preview|send|status`.

use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use chrono::NaiveDate;
use clap::{Subcommand, ValueEnum};
use indicatif::{ProgressBar, ProgressStyle};
use tokio_util::sync::CancellationToken;

use crate::app;
use crate::config::Settings;
use crate::db::digests::{self, IssueBody, IssueCounts, SendState};
use crate::db::newsletters::{self, Newsletter};
use crate::db::{self, Pool};
use crate::digest::{self, Personaliser, SendOutcome};
use crate::domain::NewsletterSlug;
use crate::observability::Metrics;
use crate::queue_signal::QueueSignal;

/// `digest …`
#[derive(Debug, Subcommand)]
pub enum DigestCommand {
    /// Render a day's digest without sending it.
    Preview {
        /// Newsletter slug.
        #[arg(long, default_value = NewsletterSlug::DEFAULT)]
        newsletter: String,
        /// The day (default: today in the newsletter's time zone).
        #[arg(long, value_name = "YYYY-MM-DD")]
        date: Option<NaiveDate>,
        /// What to print.
        #[arg(long, value_enum, default_value_t = PreviewFormat::Text)]
        format: PreviewFormat,
    },
    /// Queue the day's digest for every confirmed reader (once) and deliver it.
    Send {
        /// Newsletter slug.
        #[arg(long, default_value = NewsletterSlug::DEFAULT)]
        newsletter: String,
        /// The day (default: today in the newsletter's time zone).
        #[arg(long, value_name = "YYYY-MM-DD")]
        date: Option<NaiveDate>,
    },
    /// Show how a day's digest is going.
    Status {
        /// Newsletter slug.
        #[arg(long, default_value = NewsletterSlug::DEFAULT)]
        newsletter: String,
        /// The day (default: today in the newsletter's time zone).
        #[arg(long, value_name = "YYYY-MM-DD")]
        date: Option<NaiveDate>,
    },
}

/// Output of `digest preview`.
#[derive(Debug, Clone, Copy, ValueEnum)]
pub enum PreviewFormat {
    /// Subject and plain-text part.
    Text,
    /// The HTML part.
    Html,
    /// The whole message as it would be sent.
    Eml,
}

/// Runs a `digest` command.
pub async fn run(settings: &Settings, command: DigestCommand) -> anyhow::Result<()> {
    let pool = app::prepare_database(settings).await?;
    match command {
        DigestCommand::Preview {
            newsletter,
            date,
            format,
        } => {
            let newsletter = find_newsletter(&pool, &newsletter).await?;
            let date = date.unwrap_or_else(|| digest::today(&newsletter));
            preview(settings, &pool, &newsletter, date, format).await
        }
        DigestCommand::Send { newsletter, date } => {
            let newsletter = find_newsletter(&pool, &newsletter).await?;
            let date = date.unwrap_or_else(|| digest::today(&newsletter));
            send(settings, &pool, newsletter, date).await
        }
        DigestCommand::Status { newsletter, date } => {
            let newsletter = find_newsletter(&pool, &newsletter).await?;
            let date = date.unwrap_or_else(|| digest::today(&newsletter));
            let id = newsletter.id;
            let issue = db::run(&pool, move |conn| digests::find(conn, id, date)).await?;
            let Some(issue) = issue else {
                println!("No {} issue for {date}.", newsletter.title);
                return Ok(());
            };
            let counts = db::run(&pool, move |conn| digests::counts(conn, issue.id)).await?;
            println!("{} — {date}: {}", newsletter.title, issue.subject);
            println!("{} stories; {}", issue.story_count, describe(&counts));
            if issue.fanned_out_at.is_none() {
                println!("State: not sent");
            } else {
                println!("State: {}", counts.state().label());
            }
            Ok(())
        }
    }
}

async fn find_newsletter(pool: &Pool, slug: &str) -> anyhow::Result<Newsletter> {
    let wanted = vec![slug.to_owned()];
    let found = db::run(pool, move |conn| newsletters::by_slugs(conn, &wanted)).await?;
    found.into_iter().next().with_context(|| {
        format!("there is no newsletter {slug:?} (see `spacedigest newsletter list`)")
    })
}

async fn preview(
    settings: &Settings,
    pool: &Pool,
    newsletter: &Newsletter,
    date: NaiveDate,
    format: PreviewFormat,
) -> anyhow::Result<()> {
    let (chosen, preview_settings) = (newsletter.clone(), settings.clone());
    let preview = db::run_with(pool, move |conn| {
        digest::preview(conn, &preview_settings, &chosen, date)
    })
    .await?;
    let Some(preview) = preview else {
        println!(
            "No stories for {} on {date}: there is nothing to preview.",
            newsletter.title
        );
        return Ok(());
    };
    let sample_unsubscribe = digest::sample_unsubscribe_url(settings);
    match format {
        PreviewFormat::Text => println!(
            "Subject: {}\n\n{}",
            preview.subject,
            preview.text_with(&sample_unsubscribe)
        ),
        PreviewFormat::Html => println!("{}", preview.html_with(&sample_unsubscribe)),
        PreviewFormat::Eml => {
            // Exactly the path a real send takes, so the size and bytes are the real ones.
            let policy = app::policy(settings, pool).await?;
            let personaliser = Personaliser::new(settings.clone(), policy.signer)?;
            let issue = personaliser.prepare(&IssueBody {
                id: 0,
                subject: preview.subject,
                body_text: preview.text,
                body_html: preview.html,
                newsletter_slug: newsletter.slug.clone(),
                newsletter_title: newsletter.title.clone(),
            });
            let message = personaliser
                .digest_copy(
                    &issue,
                    "reader@example.com",
                    Some("Preview Reader"),
                    &crate::mail::new_message_id(
                        settings.mail.from_for(crate::config::MailStream::Digest),
                    ),
                    &sample_unsubscribe,
                )
                .map_err(anyhow::Error::msg)?;
            print!("{}", String::from_utf8_lossy(&message.bytes));
        }
    }
    Ok(())
}

async fn send(
    settings: &Settings,
    pool: &Pool,
    newsletter: Newsletter,
    date: NaiveDate,
) -> anyhow::Result<()> {
    let signer = app::policy(settings, pool).await?.signer;
    let for_send = newsletter.clone();
    let send_settings = settings.clone();
    let queueing = Instant::now();
    let outcome = db::run_with(pool, move |conn| {
        digest::send(conn, &send_settings, &for_send, date)
    })
    .await?;
    let issue_id = match outcome {
        SendOutcome::NoStories => {
            println!(
                "No stories for {} on {date}: nothing was sent.",
                newsletter.title
            );
            return Ok(());
        }
        SendOutcome::Queued {
            issue_id,
            recipients,
        } => {
            println!(
                "Sending the {date} issue of {} to {recipients} readers (queued in {:.3} s).",
                newsletter.title,
                queueing.elapsed().as_secs_f64()
            );
            issue_id
        }
        SendOutcome::AlreadyQueued { issue_id } => {
            println!(
                "The {date} issue of {} was queued before; nothing new was queued.",
                newsletter.title
            );
            issue_id
        }
    };

    let shutdown = CancellationToken::new();
    let worker = app::spawn_worker(
        settings,
        signer,
        &Arc::new(Metrics::new()),
        pool.clone(),
        QueueSignal::default(),
        shutdown.clone(),
    )?;
    let started = Instant::now();
    let result = watch_delivery(pool, issue_id).await;
    shutdown.cancel();
    worker
        .await
        .context("the delivery worker ended abnormally")?;
    let counts = result?;
    let elapsed = started.elapsed().as_secs_f64().max(0.001);
    if counts.remaining() > 0 {
        println!(
            "Interrupted: {}. `serve` (or `digest send` again) delivers the rest.",
            describe(&counts)
        );
        bail!("interrupted before every reader was reached");
    }
    match counts.state() {
        SendState::Paused => {
            println!("Stopped: {}.", describe(&counts));
            bail!(
                "paused from the console: {} not yet sent; resume it there or run `digest send` again later",
                counts.paused
            );
        }
        SendState::Cancelled => {
            println!("Stopped: {}.", describe(&counts));
            bail!(
                "cancelled from the console: {} not sent, and they will not be",
                counts.cancelled
            );
        }
        SendState::Sending | SendState::Delivered => {}
    }
    println!(
        "Done in {elapsed:.1} s: {} ({:.0} emails/s).",
        describe(&counts),
        counts.sent as f64 / elapsed
    );
    Ok(())
}

/// Shows progress until nothing is left to deliver or Ctrl-C.
async fn watch_delivery(pool: &Pool, issue_id: i64) -> anyhow::Result<IssueCounts> {
    let bar = ProgressBar::new(0);
    bar.set_style(
        ProgressStyle::with_template(
            "{spinner} [{elapsed_precise}] {wide_bar} {pos}/{len} done  {per_sec}  ETA {eta}  {msg}",
        )
        .unwrap_or_else(|_| ProgressStyle::default_bar()),
    );
    let mut ctrl_c = std::pin::pin!(tokio::signal::ctrl_c());
    let mut last = None;
    loop {
        let counts = match db::run(pool, move |conn| digests::counts(conn, issue_id)).await {
            Ok(counts) => counts,
            Err(error) if error.is_unavailable() => {
                // The worker waits out an outage and carries on; so does the progress,
                // rather than stopping the send halfway.
                tracing::warn!(%error, "cannot read the send's progress; waiting for the database");
                bar.set_message("the database is unreachable; waiting for it to come back");
                tokio::select! {
                    () = tokio::time::sleep(Duration::from_secs(1)) => continue,
                    _ = &mut ctrl_c => {
                        bar.abandon();
                        return last.context("interrupted while the database was unreachable");
                    }
                }
            }
            Err(error) => return Err(error.into()),
        };
        last = Some(counts);
        bar.set_length(u64::try_from(counts.total()).unwrap_or(0));
        bar.set_position(u64::try_from(counts.done()).unwrap_or(0));
        bar.set_message(format!(
            "sent {}  failed {}  remaining {}",
            counts.sent,
            counts.failed,
            counts.remaining()
        ));
        // A pause from the console leaves nothing this process can send: it says so and
        // stops rather than wait silently for a resume.
        if counts.remaining() == 0 {
            bar.finish_and_clear();
            return Ok(counts);
        }
        tokio::select! {
            () = tokio::time::sleep(Duration::from_millis(250)) => {}
            _ = &mut ctrl_c => {
                bar.abandon();
                return Ok(counts);
            }
        }
    }
}

fn describe(counts: &IssueCounts) -> String {
    let mut text = format!(
        "{} sent, {} failed, {} skipped (unsubscribed), {} remaining ({} retrying)",
        counts.sent,
        counts.failed,
        counts.skipped,
        counts.remaining(),
        counts.retrying
    );
    if counts.paused > 0 {
        text.push_str(&format!(", {} paused", counts.paused));
    }
    if counts.cancelled > 0 {
        text.push_str(&format!(", {} cancelled", counts.cancelled));
    }
    text
}
