//! `admin …`: operator accounts for the console.

use std::io::IsTerminal;

use anyhow::{Context, bail};
use clap::Subcommand;

use crate::app;
use crate::config::Settings;
use crate::console::OperatorPassword;
use crate::db::{self, operators};
use crate::domain::SubscriberEmail;

/// The variable a script sets instead of answering the prompt.
pub const PASSWORD_VARIABLE: &str = "SPACEDIGEST_ADMIN_PASSWORD";

/// `admin …`
#[derive(Debug, Subcommand)]
pub enum AdminCommand {
    /// Create an operator account for the console at /admin.
    Create {
        /// The operator's email address (the login name).
        email: String,
    },
    /// Set a new password for an operator; every session of theirs ends.
    Password {
        /// The operator's email address.
        email: String,
    },
    /// List operator accounts.
    List,
}

pub async fn run(settings: &Settings, command: AdminCommand) -> anyhow::Result<()> {
    match command {
        AdminCommand::Create { email } => {
            let email = SubscriberEmail::parse(&email)
                .map_err(|e| anyhow::anyhow!("invalid email address: {e}"))?;
            let pool = app::prepare_database(settings).await?;
            let key = email.key();
            if db::run(&pool, move |conn| operators::find_by_email(conn, &key))
                .await?
                .is_some()
            {
                bail!(
                    "an operator with that address already exists; use `spacedigest admin password {email}` to set a new password"
                );
            }
            let hash = new_password_hash(email.as_str()).await?;
            let address = email.as_str().to_owned();
            let created = db::run(&pool, move |conn| {
                operators::create(conn, &address, &hash, db::now())
            })
            .await?;
            match created {
                Some(_) => {
                    println!(
                        "Created operator {email}. Log in at {}/admin",
                        settings.server.base_url.as_str().trim_end_matches('/')
                    );
                    Ok(())
                }
                None => bail!("an operator with that address already exists"),
            }
        }
        AdminCommand::Password { email } => {
            let pool = app::prepare_database(settings).await?;
            let key = email.trim().to_lowercase();
            let Some(operator) =
                db::run(&pool, move |conn| operators::find_by_email(conn, &key)).await?
            else {
                bail!("no operator has the address {email}");
            };
            let hash = new_password_hash(&operator.email).await?;
            db::run(&pool, move |conn| {
                operators::set_password(conn, operator.id, &hash, None, db::now())
            })
            .await?;
            println!(
                "Set a new password for {}; their sessions have ended.",
                operator.email
            );
            Ok(())
        }
        AdminCommand::List => {
            let pool = app::prepare_database(settings).await?;
            let all = db::run(&pool, operators::all).await?;
            if all.is_empty() {
                println!("No operators yet. Create one with `spacedigest admin create EMAIL`.");
            }
            for operator in all {
                println!(
                    "{:<40} created {}",
                    operator.email,
                    operator.created_at.format("%Y-%m-%d %H:%M UTC")
                );
            }
            Ok(())
        }
    }
}

/// Reads the new password (variable, or the prompt twice), checks it and hashes it.
async fn new_password_hash(email: &str) -> anyhow::Result<String> {
    let raw = match std::env::var(PASSWORD_VARIABLE) {
        Ok(value) => value,
        Err(_) if std::io::stdin().is_terminal() => {
            let first = rpassword::prompt_password(format!("Password for {email}: "))
                .context("cannot read the password")?;
            let second =
                rpassword::prompt_password("Again: ").context("cannot read the password")?;
            if first != second {
                bail!("the two passwords are not the same");
            }
            first
        }
        Err(_) => bail!(
            "no password: set {PASSWORD_VARIABLE} or run this in a terminal to be asked for one"
        ),
    };
    let password = OperatorPassword::parse(&raw, email).map_err(|e| anyhow::anyhow!("{e}"))?;
    password.hash().await.context("hashing the password failed")
}
