//! Where `POST /subscriptions` records signups.
//!
//! Every signup is one short write, and each commit costs an fsync (and on SQLite, the one
//! write lock). So one writer thread takes every signup waiting and commits them in one
//! transaction (group commit): on SQLite, concurrent signups no longer queue on the lock;
//! on PostgreSQL one commit, one connection check and a handful of statements serve the
//! whole group (`group`: read once, decide each signup in Rust, write once). Every answer
//! is still sent only after its own signup has committed, and a signup that fails fails
//! alone: its group is then redone one signup per transaction.

use std::sync::Arc;

use tokio::sync::{mpsc, oneshot};

use super::group;
use super::signup::{self, PreparedSignup, SignupOutcome, SignupRequest};
use super::{Policy, ServiceError};
use crate::config::DatabaseUrl;
use crate::db::{self, Pool, StorageError};

/// Most signups committed together.
const MAX_GROUP: usize = 512;
/// Signups waiting for the writer before new ones wait for room.
const QUEUE: usize = 4096;

/// Records signups; cheap to clone.
#[derive(Clone)]
pub struct Signups {
    pool: Pool,
    policy: Policy,
    group: Option<Arc<mpsc::Sender<Job>>>,
}

struct Job {
    signup: PreparedSignup,
    reply: oneshot::Sender<Result<SignupOutcome, ServiceError>>,
}

impl Signups {
    /// Starts the group-commit writer thread, which stops when the last clone is dropped.
    /// Should no thread be had, each signup is its own transaction instead.
    pub fn new(pool: Pool, database: &DatabaseUrl, policy: Policy) -> Self {
        // SQLite has one write lock; PostgreSQL can commit two groups at once, so while
        // one writer waits on the server the other fills its next group.
        let writers = match database {
            DatabaseUrl::Sqlite(_) => 1,
            DatabaseUrl::Postgres(_) => 2,
        };
        let (sender, receiver) = mpsc::channel(QUEUE);
        let receiver = Arc::new(std::sync::Mutex::new(receiver));
        let started = (0..writers)
            .filter(|_| {
                let (pool, policy, receiver) =
                    (pool.clone(), policy.clone(), Arc::clone(&receiver));
                std::thread::Builder::new()
                    .name("signup-writer".into())
                    .spawn(move || write_groups(&pool, &policy, &receiver))
                    .is_ok()
            })
            .count();
        let group = (started > 0).then(|| Arc::new(sender));
        Self {
            pool,
            policy,
            group,
        }
    }

    /// Records a signup and returns once it has committed.
    pub async fn subscribe(&self, request: SignupRequest) -> Result<SignupOutcome, ServiceError> {
        let signup = signup::prepare(&self.policy, request)?;
        let Some(group) = &self.group else {
            let policy = self.policy.clone();
            return db::run_with(&self.pool, move |conn| {
                db::write_transaction(conn, |conn| group::record_one(conn, &policy, &signup))
            })
            .await;
        };
        let (reply, answer) = oneshot::channel();
        group
            .send(Job { signup, reply })
            .await
            .map_err(|_| writer_gone())?;
        answer.await.map_err(|_| writer_gone())?
    }
}

fn writer_gone() -> ServiceError {
    ServiceError::Storage(StorageError::Busy("the signup writer stopped".into()))
}

/// The writer thread: one transaction per group of waiting signups.
fn write_groups(pool: &Pool, policy: &Policy, jobs: &std::sync::Mutex<mpsc::Receiver<Job>>) {
    loop {
        let group = {
            let mut jobs = jobs
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner);
            let Some(first) = jobs.blocking_recv() else {
                return;
            };
            let mut group = vec![first];
            while group.len() < MAX_GROUP {
                match jobs.try_recv() {
                    Ok(job) => group.push(job),
                    Err(_) => break,
                }
            }
            group
        };
        let results = commit_group(pool, policy, &group);
        let unreachable = results.iter().find_map(|result| match result {
            Err(ServiceError::Storage(error)) if error.is_unavailable() => Some(error.to_string()),
            _ => None,
        });
        for (job, result) in group.into_iter().zip(results) {
            // The client may have gone; the signup stands either way.
            let _ = job.reply.send(result);
        }
        if let Some(error) = unreachable {
            refuse_waiting(jobs, &error);
        }
    }
}

/// Signups that queued while a group waited on an unreachable database have waited as
/// long as it did: they get its answer now, rather than each waiting out the pool's
/// timeout (or SQLite's busy timeout) again in turn behind it. A writer that holds the
/// queue is either taking a group, which it will try itself, or waiting on an empty one.
fn refuse_waiting(jobs: &std::sync::Mutex<mpsc::Receiver<Job>>, error: &str) {
    let Ok(mut jobs) = jobs.try_lock() else {
        return;
    };
    let mut refused = 0;
    while let Ok(job) = jobs.try_recv() {
        let _ = job.reply.send(Err(unreachable(error)));
        refused += 1;
    }
    if refused > 0 {
        tracing::warn!(%error, refused, "database unreachable; signups waiting behind it refused");
    }
}

fn unreachable(error: &str) -> ServiceError {
    ServiceError::Storage(StorageError::Busy(format!(
        "the database was unreachable: {error}"
    )))
}

fn commit_group(
    pool: &Pool,
    policy: &Policy,
    group: &[Job],
) -> Vec<Result<SignupOutcome, ServiceError>> {
    let mut conn = match pool.get() {
        Ok(conn) => conn,
        Err(error) => {
            let error = format!("no database connection: {error}");
            return group.iter().map(|_| Err(unreachable(&error))).collect();
        }
    };
    // Optimistic: the whole group in one transaction. Savepoints would make SQLite copy
    // every page a signup touches into its sub-journal, so instead a group with any
    // failure is rolled back and each of its signups recorded alone.
    let together = db::write_transaction(&mut conn, |conn| {
        let signups: Vec<&PreparedSignup> = group.iter().map(|job| &job.signup).collect();
        group::record(conn, policy, &signups)
    });
    let error = match together {
        Ok(outcomes) => return outcomes.into_iter().map(Ok).collect(),
        Err(error) if group.len() == 1 => return vec![Err(error)],
        Err(ServiceError::Storage(error)) if error.is_unavailable() => {
            // The database, not a signup, failed: one by one, each would only wait for
            // it again.
            let error = error.to_string();
            return group.iter().map(|_| Err(unreachable(&error))).collect();
        }
        Err(error) => error,
    };
    tracing::warn!(%error, signups = group.len(), "a group of signups failed; recording them one by one");
    group
        .iter()
        .map(|job| {
            db::write_transaction(&mut conn, |conn| {
                group::record_one(conn, policy, &job.signup)
            })
        })
        .collect()
}
