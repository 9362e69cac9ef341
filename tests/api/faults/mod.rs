//! Fault injection: the sender killed mid-send, a misbehaving SMTP server, the database
//! going away, the scheduler firing twice, readers leaving mid-send. Each test reports
//! its figures (`crate::support::figures`) and has a short version for `cargo test` and a long one
//! under `SPACEDIGEST_TEST_FULL=1` (see TESTING.md).

mod database;
mod kill;
mod scheduler;
mod smtp;
mod unsubscribe;
