//! spacedigest: newsletter signup with double opt-in and a daily digest mailer.
//!
//! Data flows one way: web and CLI -> domain -> db; the delivery worker pulls from the
//! queue in the db and hands messages to the mail transport.

pub mod app;
pub mod cli;
pub mod config;
pub mod console;
pub mod db;
pub mod delivery;
pub mod digest;
pub mod domain;
pub mod feeds;
pub mod fetch;
pub mod housekeeping;
pub mod mail;
pub mod observability;
pub mod queue_signal;
pub mod subscriptions;
pub mod telemetry;
pub mod tokens;
pub mod web;
