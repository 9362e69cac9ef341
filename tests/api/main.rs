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
mod healthcheck;
mod lease;
mod limits;
mod observability;
mod pages;
mod scale_out;
mod signup;
mod support;
