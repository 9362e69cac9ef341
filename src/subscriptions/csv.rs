//! Subscribers as CSV: the export (one row per subscription, written in keyset batches so
//! memory stays flat on a million rows) and the import (every row checked like a signup;
//! bad rows are reported by line and never stop the rest). The console and the CLI share it.

use std::borrow::Cow;
use std::collections::HashMap;

use chrono::NaiveDateTime;

use super::group;
use super::signup::{self, PreparedSignup, SignupOutcome, SignupRequest};
use super::{Policy, ServiceError};
use crate::db::newsletters::Newsletter;
use crate::db::states::SubscriptionStatus as Status;
use crate::db::subscribers::{self, ExportRow, NewSubscriber, Subscriber};
use crate::db::subscriptions::{self, Subscription};
use crate::db::{self, DbConnection};
use crate::domain::{EmailError, NameError, SubscriberEmail, SubscriberName};

/// The export's header row.
pub const HEADER: [&str; 9] = [
    "email",
    "name",
    "newsletter",
    "status",
    "subscribed_at",
    "confirmed_at",
    "unsubscribed_at",
    "signup_ip",
    "consent_note",
];

/// Subscriptions read per export batch.
pub const EXPORT_BATCH: i64 = 5_000;

/// Most data rows one import takes.
pub const MAX_IMPORT_ROWS: usize = 100_000;

/// Rows recorded per write transaction during an import: short enough that signups from
/// the web never wait long for the write lock.
const IMPORT_BATCH: usize = 500;

/// Characters that make a spreadsheet read a cell as a formula.
const FORMULA_START: [char; 6] = ['=', '+', '-', '@', '\t', '\r'];

/// A cell a spreadsheet would run as a formula gets a leading `'`, which shows it as text.
pub fn guard_cell(value: &str) -> Cow<'_, str> {
    if value.starts_with(FORMULA_START) {
        Cow::Owned(format!("'{value}"))
    } else {
        Cow::Borrowed(value)
    }
}

/// Undoes [`guard_cell`], so an exported file imports as it was.
pub fn unguard_cell(value: &str) -> &str {
    match value.strip_prefix('\'') {
        Some(rest) if rest.starts_with(FORMULA_START) => rest,
        _ => value,
    }
}

fn timestamp(at: NaiveDateTime) -> String {
    at.format("%Y-%m-%dT%H:%M:%SZ").to_string()
}

/// Writes the export in pieces: each [`Export::next_chunk`] reads one keyset batch and
/// returns it as CSV bytes (the first with the header row).
#[derive(Debug, Default)]
pub struct Export {
    after: i64,
    started: bool,
    done: bool,
}

impl Export {
    /// An export from the start.
    pub fn new() -> Self {
        Self::default()
    }

    /// The next piece of the file, or `None` once it has all been written.
    pub fn next_chunk(&mut self, conn: &mut DbConnection) -> diesel::QueryResult<Option<Vec<u8>>> {
        if self.done {
            return Ok(None);
        }
        let rows = subscribers::export_batch(conn, self.after, EXPORT_BATCH)?;
        let mut writer = ::csv::Writer::from_writer(Vec::new());
        if !self.started {
            self.started = true;
            write(&mut writer, HEADER.iter().map(|h| Cow::Borrowed(*h)));
        }
        if (rows.len() as i64) < EXPORT_BATCH {
            self.done = true;
        }
        if let Some(last) = rows.last() {
            self.after = last.subscription_id;
        }
        for row in &rows {
            write(&mut writer, cells(row).into_iter());
        }
        let bytes = writer.into_inner().unwrap_or_default();
        if bytes.is_empty() {
            return Ok(None);
        }
        Ok(Some(bytes))
    }
}

fn write<'a>(writer: &mut ::csv::Writer<Vec<u8>>, cells: impl Iterator<Item = Cow<'a, str>>) {
    // Writing to memory cannot fail.
    let _ = writer.write_record(cells.map(|c| c.into_owned()));
}

fn optional(value: &Option<String>) -> Cow<'_, str> {
    match value {
        Some(v) => guard_cell(v),
        None => Cow::Borrowed(""),
    }
}

fn cells(row: &ExportRow) -> [Cow<'_, str>; 9] {
    let time = |v: Option<NaiveDateTime>| Cow::Owned(v.map(timestamp).unwrap_or_default());
    [
        guard_cell(&row.email),
        optional(&row.name),
        guard_cell(&row.newsletter),
        guard_cell(row.status.as_str()),
        Cow::Owned(timestamp(row.subscribed_at)),
        time(row.confirmed_at),
        time(row.unsubscribed_at),
        optional(&row.signup_ip),
        optional(&row.consent_note),
    ]
}

/// Writes the whole export to `out`, batch by batch.
pub fn export_to(conn: &mut DbConnection, out: &mut impl std::io::Write) -> anyhow::Result<u64> {
    let mut export = Export::new();
    let mut bytes = 0u64;
    while let Some(chunk) = export.next_chunk(conn)? {
        out.write_all(&chunk)?;
        bytes += chunk.len() as u64;
    }
    out.flush()?;
    Ok(bytes)
}

/// How imported addresses join the newsletter.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ImportMode {
    /// Each gets a confirmation email (double opt-in), as if they had signed up.
    Confirm,
    /// Each is confirmed at once, with no email; the note records their consent.
    Confirmed {
        /// Why they may be mailed, in the operator's words.
        consent_note: String,
    },
}

/// A row that was not imported, and why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BadRow {
    /// Line in the file (1 is the first).
    pub line: u64,
    /// What the address cell held.
    pub value: String,
    /// Why it was refused.
    pub reason: String,
}

/// A valid row.
#[derive(Debug, Clone)]
pub struct ImportRow {
    /// Line in the file.
    pub line: u64,
    /// Address.
    pub email: SubscriberEmail,
    /// Name.
    pub name: Option<SubscriberName>,
}

/// A file read and checked, before anything is written.
#[derive(Debug, Clone, Default)]
pub struct ParsedFile {
    /// Rows to import.
    pub rows: Vec<ImportRow>,
    /// Rows refused.
    pub bad: Vec<BadRow>,
    /// Rows whose `status` column says `unsubscribed`: never signed up again by an import.
    pub unsubscribed_in_file: usize,
    /// Rows whose `newsletter` column names another newsletter.
    pub other_newsletter: usize,
}

/// Why a file cannot be imported at all.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum FileError {
    /// No rows.
    #[error("the file has no addresses in it")]
    Empty,
    /// Over the row limit.
    #[error("the file has more than {MAX_IMPORT_ROWS} rows; split it into smaller files")]
    TooManyRows,
    /// A header row without an `email` column.
    #[error("the header row has no \"email\" column (found: {0})")]
    NoEmailColumn(String),
}

fn email_reason(error: &EmailError) -> &'static str {
    match error {
        EmailError::ControlCharacters => "the address holds a line break or control character",
        EmailError::Empty => "the address is missing",
        EmailError::TooLong => "the address is longer than 254 characters",
        EmailError::InvalidSyntax => "not an email address",
        EmailError::IpLiteral => "the address is at an IP address, not a domain name",
        EmailError::DotlessDomain => "the domain is not a full domain name",
    }
}

fn name_reason(error: &NameError) -> &'static str {
    match error {
        NameError::TooLong => "the name is longer than 100 characters",
        NameError::ControlCharacters => "the name holds a line break or control character",
        NameError::InvisibleCharacters => "the name holds invisible formatting characters",
    }
}

/// Columns of a file with a header row.
struct Columns {
    email: usize,
    name: Option<usize>,
    status: Option<usize>,
    newsletter: Option<usize>,
}

/// Reads and checks a file for import into `newsletter_slug`. A header row names its
/// columns (`email`, and optionally `name`, `status`, `newsletter`; any case, any order);
/// without one, each line is one address.
pub fn parse(data: &[u8], newsletter_slug: &str) -> Result<ParsedFile, FileError> {
    let data = data.strip_prefix(b"\xEF\xBB\xBF").unwrap_or(data);
    let mut reader = ::csv::ReaderBuilder::new()
        .has_headers(false)
        .flexible(true)
        .from_reader(data);
    let mut parsed = ParsedFile::default();
    let mut columns: Option<Columns> = None;
    let mut first = true;
    let mut seen: HashMap<String, u64> = HashMap::new();
    let mut rows = 0usize;
    let mut record = ::csv::StringRecord::new();
    loop {
        let line = reader.position().line();
        match reader.read_record(&mut record) {
            Ok(false) => break,
            Ok(true) => {}
            Err(error) => {
                let line = error.position().map_or(line, |p| p.line());
                if first {
                    first = false;
                }
                rows += 1;
                parsed.bad.push(BadRow {
                    line,
                    value: String::new(),
                    reason: match error.kind() {
                        ::csv::ErrorKind::Utf8 { .. } => "the line is not valid UTF-8 text".into(),
                        _ => format!("the line cannot be read as CSV: {error}"),
                    },
                });
                continue;
            }
        }
        let line = record.position().map_or(line, |p| p.line());
        if record.iter().all(|cell| cell.trim().is_empty()) {
            continue;
        }
        if first {
            first = false;
            let names: Vec<String> = record.iter().map(|c| c.trim().to_lowercase()).collect();
            let find = |name: &str| names.iter().position(|n| n == name);
            if let Some(email) = find("email") {
                columns = Some(Columns {
                    email,
                    name: find("name"),
                    status: find("status"),
                    newsletter: find("newsletter"),
                });
                continue;
            }
            // One cell that is no address may be a header with another name for the column.
            if record.len() > 1 || !record[0].contains('@') {
                return Err(FileError::NoEmailColumn(
                    record.iter().map(str::trim).collect::<Vec<_>>().join(", "),
                ));
            }
        }
        rows += 1;
        if rows > MAX_IMPORT_ROWS {
            return Err(FileError::TooManyRows);
        }
        let cell = |i: Option<usize>| i.and_then(|i| record.get(i)).map(str::trim);
        let (raw_email, raw_name) = match &columns {
            Some(c) => {
                if cell(c.status).is_some_and(|s| s.eq_ignore_ascii_case("unsubscribed")) {
                    parsed.unsubscribed_in_file += 1;
                    continue;
                }
                if cell(c.newsletter)
                    .is_some_and(|n| !n.is_empty() && !n.eq_ignore_ascii_case(newsletter_slug))
                {
                    parsed.other_newsletter += 1;
                    continue;
                }
                (
                    cell(Some(c.email)).unwrap_or(""),
                    cell(c.name).unwrap_or(""),
                )
            }
            None => {
                if record.iter().skip(1).any(|c| !c.trim().is_empty()) {
                    parsed.bad.push(BadRow {
                        line,
                        value: record.iter().collect::<Vec<_>>().join(","),
                        reason: "more than one column, and no header row names them".into(),
                    });
                    continue;
                }
                (record[0].trim(), "")
            }
        };
        let (raw_email, raw_name) = (unguard_cell(raw_email), unguard_cell(raw_name));
        let bad = |reason: String| BadRow {
            line,
            value: raw_email.to_owned(),
            reason,
        };
        let email = match SubscriberEmail::parse(raw_email) {
            Ok(email) => email,
            Err(e) => {
                parsed.bad.push(bad(email_reason(&e).into()));
                continue;
            }
        };
        let name = match SubscriberName::parse(raw_name) {
            Ok(name) => name,
            Err(e) => {
                parsed.bad.push(bad(name_reason(&e).into()));
                continue;
            }
        };
        if let Some(earlier) = seen.get(&email.key()) {
            parsed
                .bad
                .push(bad(format!("the same address is on line {earlier}")));
            continue;
        }
        seen.insert(email.key(), line);
        parsed.rows.push(ImportRow { line, email, name });
    }
    if rows == 0 {
        return Err(FileError::Empty);
    }
    Ok(parsed)
}

/// What an import did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ImportCounts {
    /// Newly subscribed (awaiting confirmation in `Confirm` mode, confirmed otherwise).
    pub imported: usize,
    /// Already subscribed (confirmed, or awaiting confirmation in `Confirm` mode): left as is.
    pub already_subscribed: usize,
    /// Unsubscribed from this newsletter earlier: left unsubscribed.
    pub left_unsubscribed: usize,
}

/// Where each address of a batch stands with the newsletter, read in two queries.
struct Standing {
    subscribers: HashMap<String, Subscriber>,
    subscriptions: HashMap<i64, Subscription>,
}

impl Standing {
    fn read(
        conn: &mut DbConnection,
        rows: &[ImportRow],
        newsletter_id: i64,
    ) -> diesel::QueryResult<Self> {
        let keys: Vec<String> = rows.iter().map(|r| r.email.key()).collect();
        let subscribers: HashMap<String, Subscriber> = subscribers::by_keys(conn, &keys)?
            .into_iter()
            .map(|s| (s.email_key.clone(), s))
            .collect();
        let ids: Vec<i64> = subscribers.values().map(|s| s.id).collect();
        let subscriptions = subscriptions::subscriptions_to(conn, &ids, newsletter_id)?
            .into_iter()
            .map(|s| (s.subscriber_id, s))
            .collect();
        Ok(Self {
            subscribers,
            subscriptions,
        })
    }

    fn of(&self, row: &ImportRow) -> (Option<&Subscriber>, Option<&Subscription>) {
        let subscriber = self.subscribers.get(&row.email.key());
        let subscription = subscriber.and_then(|s| self.subscriptions.get(&s.id));
        (subscriber, subscription)
    }
}

/// Imports checked rows into `newsletter`, [`IMPORT_BATCH`] rows per write transaction.
/// Each row is wholly recorded or not at all; in `Confirm` mode its confirmation email is
/// queued in the same transaction as the row.
pub fn import(
    conn: &mut DbConnection,
    policy: &Policy,
    newsletter: &Newsletter,
    mode: &ImportMode,
    rows: &[ImportRow],
) -> Result<ImportCounts, ServiceError> {
    let prepare = |row: &ImportRow| {
        signup::prepare(
            policy,
            SignupRequest {
                email: row.email.clone(),
                name: row.name.clone(),
                newsletters: vec![newsletter.clone()],
                ip: None,
            },
        )
    };
    let mut counts = ImportCounts::default();
    for batch in rows.chunks(IMPORT_BATCH) {
        // Emails are rendered before the write lock is taken, and only for addresses new
        // to the newsletter: rendering (CSS inlining) costs more than the writes.
        let mut prepared: HashMap<u64, PreparedSignup> = HashMap::new();
        if *mode == ImportMode::Confirm {
            let before = Standing::read(conn, batch, newsletter.id)?;
            for row in batch {
                if before.of(row).1.is_none() {
                    prepared.insert(row.line, prepare(row)?);
                }
            }
        }
        let batch_counts = db::write_transaction(conn, |conn| {
            let mut counts = ImportCounts::default();
            let standing = Standing::read(conn, batch, newsletter.id)?;
            for row in batch {
                let now = db::now();
                let (subscriber, subscription) = standing.of(row);
                match subscription.map(|s| s.status) {
                    Some(Status::Unsubscribed) => {
                        counts.left_unsubscribed += 1;
                        continue;
                    }
                    Some(Status::Confirmed) => {
                        counts.already_subscribed += 1;
                        continue;
                    }
                    Some(Status::Pending) if *mode == ImportMode::Confirm => {
                        counts.already_subscribed += 1;
                        continue;
                    }
                    _ => {}
                }
                match mode {
                    ImportMode::Confirm => {
                        let outcome = match prepared.get(&row.line) {
                            Some(signup) => group::record_one(conn, policy, signup)?,
                            // Unsubscribed or erased since the read before the lock.
                            None => group::record_one(conn, policy, &prepare(row)?)?,
                        };
                        match outcome {
                            SignupOutcome::ConfirmationQueued => counts.imported += 1,
                            SignupOutcome::AlreadySubscribed
                            | SignupOutcome::Throttled
                            | SignupOutcome::Bounced => {
                                counts.already_subscribed += 1;
                            }
                        }
                    }
                    ImportMode::Confirmed { consent_note } => {
                        let subscriber_id = match subscriber {
                            Some(s) => s.id,
                            None => {
                                let key = row.email.key();
                                let mailbox_key = row.email.mailbox_key();
                                subscribers::insert_if_absent(
                                    conn,
                                    &NewSubscriber {
                                        email: row.email.as_str(),
                                        email_key: &key,
                                        mailbox_key: &mailbox_key,
                                        name: row.name.as_ref().map(SubscriberName::as_str),
                                        signup_ip: None,
                                        created_at: now,
                                        updated_at: now,
                                    },
                                )?
                                .ok_or(diesel::result::Error::NotFound)?
                                .id
                            }
                        };
                        match subscription {
                            Some(pending) => subscriptions::confirm_one(conn, pending.id, now)?,
                            None => subscriptions::insert_confirmed(
                                conn,
                                subscriber_id,
                                newsletter.id,
                                now,
                            )?,
                        }
                        subscribers::note_consent(conn, subscriber_id, consent_note)?;
                        counts.imported += 1;
                    }
                }
            }
            Ok::<_, ServiceError>(counts)
        })?;
        counts.imported += batch_counts.imported;
        counts.already_subscribed += batch_counts.already_subscribed;
        counts.left_unsubscribed += batch_counts.left_unsubscribed;
    }
    Ok(counts)
}

#[cfg(test)]
#[path = "csv_tests.rs"]
mod tests;
