//! `subscribers …`: the list as CSV, out and in.

use std::io::Write;
use std::path::PathBuf;

use anyhow::{Context, bail};
use clap::{Subcommand, ValueEnum};

use crate::app;
use crate::config::Settings;
use crate::db::{self, newsletters};
use crate::domain::NewsletterSlug;
use crate::subscriptions::csv::{self, ImportMode};

/// `subscribers …`
#[derive(Debug, Subcommand)]
pub enum SubscribersCommand {
    /// Write every subscription as CSV to standard output.
    Export {
        /// Output format.
        #[arg(long, value_enum, default_value_t = ExportFormat::Csv)]
        format: ExportFormat,
    },
    /// Import addresses from a CSV file (a header row with an `email` column, or one
    /// address per line). Each gets a confirmation email unless --confirmed is given.
    Import {
        /// The CSV file.
        file: PathBuf,
        /// The newsletter to subscribe them to (default: space-daily).
        #[arg(long, value_name = "SLUG")]
        newsletter: Option<String>,
        /// Mark them confirmed and send nothing (they have already agreed elsewhere).
        #[arg(long, requires = "consent_note")]
        confirmed: bool,
        /// How they gave consent; kept with each subscriber. Required with --confirmed.
        #[arg(long, value_name = "TEXT", requires = "confirmed")]
        consent_note: Option<String>,
    },
}

/// Export formats.
#[derive(Debug, Clone, Copy, ValueEnum)]
pub enum ExportFormat {
    /// Comma-separated values with a header row.
    Csv,
}

pub async fn run(settings: &Settings, command: SubscribersCommand) -> anyhow::Result<()> {
    match command {
        SubscribersCommand::Export {
            format: ExportFormat::Csv,
        } => {
            let pool = app::prepare_database(settings).await?;
            tokio::task::spawn_blocking(move || {
                let mut conn = pool.get().context("the database is unavailable")?;
                let stdout = std::io::stdout();
                let mut out = std::io::BufWriter::new(stdout.lock());
                csv::export_to(&mut conn, &mut out).context("the export failed")
            })
            .await
            .context("the export task failed")??;
            Ok(())
        }
        SubscribersCommand::Import {
            file,
            newsletter,
            confirmed,
            consent_note,
        } => {
            let mode = if confirmed {
                let note = consent_note.unwrap_or_default().trim().to_owned();
                if note.is_empty() {
                    bail!("--consent-note must say how these readers gave their consent");
                }
                ImportMode::Confirmed { consent_note: note }
            } else {
                ImportMode::Confirm
            };
            let data =
                std::fs::read(&file).with_context(|| format!("cannot read {}", file.display()))?;
            let slug = match newsletter {
                Some(slug) => NewsletterSlug::parse(&slug)
                    .map_err(|e| anyhow::anyhow!("invalid --newsletter: {e}"))?,
                None => crate::domain::default_slug(),
            };
            let parsed = csv::parse(&data, slug.as_str())
                .map_err(|e| anyhow::anyhow!("{} cannot be imported: {e}", file.display()))?;
            let pool = app::prepare_database(settings).await?;
            let wanted = vec![slug.as_str().to_owned()];
            let Some(target) = db::run(&pool, move |conn| newsletters::by_slugs(conn, &wanted))
                .await?
                .into_iter()
                .next()
            else {
                bail!("there is no newsletter {slug}; see `spacedigest newsletter list`");
            };
            let policy = app::policy(settings, &pool).await?;
            let rows = parsed.rows;
            let (title, import_mode) = (target.title.clone(), mode.clone());
            let counts = db::run_with(&pool, move |conn| {
                csv::import(conn, &policy, &target, &import_mode, &rows)
            })
            .await
            .context("the import failed")?;
            let mut stderr = std::io::stderr().lock();
            for bad in &parsed.bad {
                let _ = writeln!(stderr, "line {}: {}: {}", bad.line, bad.reason, bad.value);
            }
            println!(
                "Imported {} into {title}; {} already subscribed; {} unsubscribed earlier, left so; {} bad row{}.",
                counts.imported,
                counts.already_subscribed,
                counts.left_unsubscribed,
                parsed.bad.len(),
                if parsed.bad.len() == 1 { "" } else { "s" }
            );
            if parsed.unsubscribed_in_file + parsed.other_newsletter > 0 {
                println!(
                    "Left out as the file says: {} marked unsubscribed, {} for other newsletters.",
                    parsed.unsubscribed_in_file, parsed.other_newsletter
                );
            }
            if mode == ImportMode::Confirm && counts.imported > 0 {
                println!(
                    "Confirmation emails are queued; `spacedigest serve` (or `worker`) sends them."
                );
            }
            Ok(())
        }
    }
}
