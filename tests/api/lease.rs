//! The queue's claim and lease against a real database: no row is claimed by two workers
//! at once while its lease is valid, however workers claim, finish, give back, retry,
//! crash, or come back late after their lease has passed to another.
//!
//! The property test drives `outbound::claim` and the record functions with a simulated
//! clock and simulated workers, checking a model after every step. The concurrency test
//! lets threads with their own connections race for real (`FOR UPDATE SKIP LOCKED` on
//! PostgreSQL, `BEGIN IMMEDIATE` on SQLite).

use std::collections::{HashMap, HashSet};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use chrono::NaiveDateTime;
use diesel::prelude::*;
use proptest::prelude::*;
use proptest::test_runner::{Config, RngAlgorithm, TestRng, TestRunner};
use spacedigest::config::SqliteSynchronous;
use spacedigest::db::outbound::{self, Claim, NewOutboundEmail, QueuedEmail};
use spacedigest::db::schema::outbound_emails;
use spacedigest::db::states::{EmailKind, EmailStatus};
use spacedigest::db::{DbConnection, Pool};

use crate::support::app::{TestDatabase, test_settings};

/// The simulated lease, in seconds.
const LEASE: i64 = 10;
/// Simulated workers.
const WORKERS: usize = 3;
/// Rows in each case.
const ROWS: usize = 6;

/// Reads `SPACEDIGEST_TEST_SEED`, so a failing run can be replayed; else `default`.
fn seed(default: u64) -> u64 {
    std::env::var("SPACEDIGEST_TEST_SEED")
        .ok()
        .and_then(|s| s.trim().parse().ok())
        .unwrap_or(default)
}

/// A migrated database of its own and a pool on it.
fn database() -> (TestDatabase, Pool) {
    let database = TestDatabase::create();
    let mut settings = test_settings(&database, 0);
    // The property is about ordering, not durability: spare the disk a sync per step.
    settings.database.sqlite_synchronous = SqliteSynchronous::Normal;
    settings.database.pool_size = 8;
    let pool = spacedigest::app::open_pool(&settings).expect("a pool");
    spacedigest::db::migrate(&pool).expect("migrations");
    (database, pool)
}

fn enqueue(conn: &mut DbConnection, n: usize, due: NaiveDateTime) -> QueryResult<Vec<i64>> {
    (0..n)
        .map(|i| {
            let message_id = format!("lease-{i}@spacedigest.test");
            outbound::enqueue(
                conn,
                &NewOutboundEmail {
                    kind: EmailKind::Confirmation,
                    subscriber_id: None,
                    recipient_email: "reader@example.com",
                    recipient_name: None,
                    subject: "Lease",
                    body_text: "text",
                    body_html: "<p>html</p>",
                    list_unsubscribe: None,
                    message_id: &message_id,
                    status: EmailStatus::Pending,
                    next_attempt_at: due,
                    created_at: due,
                },
            )
        })
        .collect()
}

/// How a worker ends its claim on one email.
#[derive(Debug, Clone, Copy)]
enum Ending {
    Sent,
    Failed,
    Skipped,
    Released,
    /// A transient failure: try again this many seconds later.
    Retry(i64),
}

#[derive(Debug, Clone)]
enum Step {
    Claim {
        worker: usize,
        limit: i64,
    },
    /// Ends the `pick`-th (modulo) email the worker holds, valid or not.
    Finish {
        worker: usize,
        pick: usize,
        ending: Ending,
    },
    /// The worker dies and forgets all it holds; its leases run out on their own.
    Crash {
        worker: usize,
    },
    Advance {
        seconds: i64,
    },
}

fn step() -> impl Strategy<Value = Step> {
    let worker = 0..WORKERS;
    let ending = prop_oneof![
        3 => Just(Ending::Sent),
        1 => Just(Ending::Failed),
        1 => Just(Ending::Skipped),
        2 => Just(Ending::Released),
        2 => (0..2 * LEASE).prop_map(Ending::Retry),
    ];
    prop_oneof![
        3 => (worker.clone(), 1..4i64).prop_map(|(worker, limit)| Step::Claim { worker, limit }),
        3 => (worker.clone(), any::<usize>(), ending)
            .prop_map(|(worker, pick, ending)| Step::Finish { worker, pick, ending }),
        1 => worker.prop_map(|worker| Step::Crash { worker }),
        2 => (1..LEASE + 5).prop_map(|seconds| Step::Advance { seconds }),
    ]
}

/// What the test believes: which rows are finished, and what each worker holds.
struct Model {
    now: NaiveDateTime,
    finished: HashSet<i64>,
    /// Per worker: the claims it holds and when each lease ends.
    held: Vec<HashMap<i64, (Claim, NaiveDateTime)>>,
}

impl Model {
    /// Workers other than `except` holding `id` under a lease still valid now.
    fn valid_holders(&self, id: i64, except: Option<usize>) -> Vec<usize> {
        (0..WORKERS)
            .filter(|w| Some(*w) != except)
            .filter(|w| {
                self.held[*w]
                    .get(&id)
                    .is_some_and(|(_, until)| *until > self.now)
            })
            .collect()
    }
}

/// Counts across all cases, for the figure.
#[derive(Default)]
struct Tally {
    cases: AtomicUsize,
    steps: AtomicUsize,
    claims: AtomicUsize,
    /// Endings by a worker whose lease had run out and been taken by another.
    stale_endings: AtomicUsize,
}

fn run_case(conn: &mut DbConnection, steps: &[Step], tally: &Tally) -> Result<(), TestCaseError> {
    diesel::delete(outbound_emails::table)
        .execute(conn)
        .unwrap();
    let start = chrono::DateTime::from_timestamp(1_900_000_000, 0)
        .unwrap()
        .naive_utc();
    let ids = enqueue(conn, ROWS, start).unwrap();
    let mut model = Model {
        now: start,
        finished: HashSet::new(),
        held: vec![HashMap::new(); WORKERS],
    };
    let lease = chrono::Duration::seconds(LEASE);
    for (n, step) in steps.iter().enumerate() {
        match *step {
            Step::Claim { worker, limit } => {
                let got: Vec<QueuedEmail> =
                    outbound::claim(conn, limit, model.now, model.now + lease).unwrap();
                tally.claims.fetch_add(got.len(), Ordering::Relaxed);
                for email in got {
                    // The property: nobody else (nor this worker, twice) holds it validly.
                    let holders = model.valid_holders(email.id, None);
                    prop_assert!(
                        holders.is_empty(),
                        "step {n}: worker {worker} claimed row {} while workers {holders:?} \
                         hold it under a valid lease; steps: {steps:?}",
                        email.id
                    );
                    prop_assert!(
                        !model.finished.contains(&email.id),
                        "step {n}: row {} was claimed after it was finished",
                        email.id
                    );
                    model.held[worker].insert(email.id, (email.claim(), model.now + lease));
                }
            }
            Step::Finish {
                worker,
                pick,
                ending,
            } => {
                let mut holding: Vec<i64> = model.held[worker].keys().copied().collect();
                if holding.is_empty() {
                    continue;
                }
                holding.sort_unstable();
                let id = holding[pick % holding.len()];
                let (claim, _) = model.held[worker].remove(&id).unwrap();
                if !model.valid_holders(id, Some(worker)).is_empty() {
                    tally.stale_endings.fetch_add(1, Ordering::Relaxed);
                }
                let now = model.now;
                match ending {
                    Ending::Sent => outbound::mark_sent(conn, &[id], now).unwrap(),
                    Ending::Failed => outbound::mark_failed(conn, id, now, "550 no").unwrap(),
                    Ending::Skipped => outbound::mark_skipped(conn, &[id], now).unwrap(),
                    Ending::Released => outbound::release(conn, &[claim], now).unwrap(),
                    Ending::Retry(after) => outbound::schedule_retry(
                        conn,
                        claim,
                        now + chrono::Duration::seconds(after),
                        "451 later",
                    )
                    .unwrap(),
                }
                // A final outcome stands whoever reports it: the email did go (or was
                // refused, or its reader left).
                if matches!(ending, Ending::Sent | Ending::Failed | Ending::Skipped) {
                    model.finished.insert(id);
                }
            }
            Step::Crash { worker } => model.held[worker].clear(),
            Step::Advance { seconds } => model.now += chrono::Duration::seconds(seconds),
        }
        tally.steps.fetch_add(1, Ordering::Relaxed);
    }
    // Nothing is lost: once every lease and retry is due, exactly the unfinished rows come
    // back, and nothing finished does.
    model.now += chrono::Duration::seconds(10 * LEASE);
    let back: HashSet<i64> = outbound::claim(conn, 1000, model.now, model.now + lease)
        .unwrap()
        .into_iter()
        .map(|e| e.id)
        .collect();
    let unfinished: HashSet<i64> = ids
        .iter()
        .copied()
        .filter(|id| !model.finished.contains(id))
        .collect();
    prop_assert_eq!(
        back,
        unfinished,
        "after all leases ran out; steps: {:?}",
        steps
    );
    tally.cases.fetch_add(1, Ordering::Relaxed);
    Ok(())
}

#[test]
fn no_row_is_claimed_by_two_workers_while_its_lease_is_valid() {
    let (_database, pool) = database();
    let mut conn = pool.get().expect("a connection");
    if let DbConnection::Pg(pg) = &mut *conn {
        // As with SQLite's `synchronous = NORMAL` above: order matters here, not durability.
        diesel::connection::SimpleConnection::batch_execute(pg, "SET synchronous_commit TO off")
            .unwrap();
    }
    let conn = Mutex::new(conn);
    let cases = if crate::support::figures::full() {
        1000
    } else {
        150
    };
    let seed = seed(0x5eed_1ea5e);
    let mut seed_bytes = [0u8; 32];
    for chunk in seed_bytes.chunks_mut(8) {
        chunk.copy_from_slice(&seed.to_le_bytes());
    }
    let config = Config {
        cases,
        failure_persistence: None,
        ..Config::default()
    };
    let mut runner = TestRunner::new_with_rng(
        config,
        TestRng::from_seed(RngAlgorithm::ChaCha, &seed_bytes),
    );
    let tally = Tally::default();
    let result = runner.run(&proptest::collection::vec(step(), 10..60), |steps| {
        let mut conn = conn.lock().unwrap();
        run_case(&mut conn, &steps, &tally)
    });
    let violations = usize::from(result.is_err());
    crate::support::figures::report(
        "lease-property",
        &format!(
            "seed {seed}: {} cases passed ({cases} asked), {} steps, {} rows claimed, {} \
             endings by a worker whose lease another held, {WORKERS} workers, {ROWS} rows per \
             case; violations {violations}",
            tally.cases.load(Ordering::Relaxed),
            tally.steps.load(Ordering::Relaxed),
            tally.claims.load(Ordering::Relaxed),
            tally.stale_endings.load(Ordering::Relaxed),
        ),
    );
    if let Err(error) = result {
        panic!("replay with SPACEDIGEST_TEST_SEED={seed}: {error}");
    }
}

/// One claim as a racing claimer saw it, by the test's monotonic clock.
struct Hold {
    claimer: usize,
    id: i64,
    /// Just before the claim was asked for, and when it had returned.
    asked: Instant,
    got: Instant,
    /// When the lease stopped being this claimer's: its end, or the moment the claimer
    /// began to give it back or finish it, whichever came first.
    until: Instant,
}

#[test]
fn racing_claimers_never_hold_one_row_at_once() {
    const CLAIMERS: usize = 4;
    let rows = if crate::support::figures::full() {
        3000
    } else {
        600
    };
    let lease = Duration::from_millis(300);
    let (_database, pool) = database();
    let start = spacedigest::db::now();
    enqueue(&mut pool.get().unwrap(), rows, start).unwrap();
    let holds: Arc<Mutex<Vec<Hold>>> = Arc::default();
    let seed = seed(0xc1a1_3e55);
    let deadline = Instant::now()
        + Duration::from_secs(if crate::support::figures::full() {
            300
        } else {
            60
        });
    let threads: Vec<_> = (0..CLAIMERS)
        .map(|claimer| {
            let pool = pool.clone();
            let holds = Arc::clone(&holds);
            std::thread::spawn(move || {
                use rand::{Rng, SeedableRng};
                let mut rng = rand::rngs::StdRng::seed_from_u64(seed + claimer as u64);
                // Its own connection for the whole run, as a worker process has.
                let mut conn = pool.get().unwrap();
                loop {
                    let asked = Instant::now();
                    let now = spacedigest::db::now();
                    let batch = outbound::claim(&mut conn, 8, now, now + lease).unwrap();
                    let got = Instant::now();
                    if batch.is_empty() {
                        let left: i64 = outbound_emails::table
                            .filter(outbound_emails::status.eq("pending"))
                            .count()
                            .get_result(&mut *conn)
                            .unwrap();
                        if left == 0 || Instant::now() > deadline {
                            return;
                        }
                        std::thread::sleep(Duration::from_millis(20));
                        continue;
                    }
                    // Sending takes a while; sometimes so long that the lease runs out
                    // before the claims are ended, and another claimer may hold them by then.
                    let sending = if rng.random_bool(0.15) {
                        lease + Duration::from_millis(rng.random_range(20..150))
                    } else {
                        Duration::from_millis(rng.random_range(0..80))
                    };
                    std::thread::sleep(sending);
                    let ending = Instant::now();
                    let now = spacedigest::db::now();
                    let mut sent = Vec::new();
                    for email in &batch {
                        match rng.random_range(0..10) {
                            0..4 => sent.push(email.id),
                            4..6 => outbound::release(&mut conn, &[email.claim()], now).unwrap(),
                            6..8 => outbound::schedule_retry(
                                &mut conn,
                                email.claim(),
                                now + Duration::from_millis(50),
                                "451 later",
                            )
                            .unwrap(),
                            // Crashed on this one: its lease runs out.
                            _ => {}
                        }
                    }
                    outbound::mark_sent(&mut conn, &sent, now).unwrap();
                    let mut holds = holds.lock().unwrap();
                    for email in batch {
                        holds.push(Hold {
                            claimer,
                            id: email.id,
                            asked,
                            got,
                            until: ending.min(asked + lease),
                        });
                    }
                }
            })
        })
        .collect();
    for thread in threads {
        thread.join().expect("a claimer thread");
    }
    let holds = holds.lock().unwrap();
    let mut by_row: HashMap<i64, Vec<&Hold>> = HashMap::new();
    for hold in holds.iter() {
        by_row.entry(hold.id).or_default().push(hold);
    }
    // Certainly at once: the second claim was asked for and answered entirely within the
    // time the first was validly held (a millisecond's margin for the two clocks).
    let margin = Duration::from_millis(1);
    let mut overlaps = Vec::new();
    for (id, row) in &by_row {
        for a in row {
            for b in row {
                if !std::ptr::eq(*a, *b) && b.asked >= a.got && b.got + margin < a.until {
                    overlaps.push((*id, a.claimer, b.claimer));
                }
            }
        }
    }
    let pending: i64 = outbound_emails::table
        .filter(outbound_emails::status.eq("pending"))
        .count()
        .get_result(&mut *pool.get().unwrap())
        .unwrap();
    let reclaimed = by_row.values().filter(|r| r.len() > 1).count();
    crate::support::figures::report(
        "lease-race",
        &format!(
            "seed {seed}: {CLAIMERS} claimers with their own connections, {rows} rows, lease \
             {} ms: {} claims, {reclaimed} rows claimed more than once, {pending} left \
             pending; claims of a row another validly held: {}",
            lease.as_millis(),
            holds.len(),
            overlaps.len()
        ),
    );
    assert!(
        overlaps.is_empty(),
        "held twice at once (row, first, second): {overlaps:?}"
    );
    assert_eq!(pending, 0, "every row reached an outcome");
}
