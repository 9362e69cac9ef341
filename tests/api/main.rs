//! End-to-end tests of the reader's path, on SQLite or (with
//! `SPACEDIGEST_TEST_POSTGRES_URL`) PostgreSQL, with mail over real SMTP.

mod abuse;
mod bad_input;
mod bounces;
mod cli;
mod console;
mod deliverability;
mod delivery;
mod digest;
mod faults;
mod feeds;
#[path = "support/figures.rs"]
mod figures;
mod healthcheck;
mod helpers;
#[path = "support/http_server.rs"]
mod http_server;
mod lease;
mod limits;
mod observability;
mod pages;
#[path = "support/pg_cluster.rs"]
mod pg_cluster;
mod scale_out;
mod signup;
#[path = "support/smtp_server.rs"]
mod smtp_server;
