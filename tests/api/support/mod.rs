//! What the tests share: the app spawner, the SMTP and HTTP servers they talk to, private
//! PostgreSQL clusters, rows seeded straight into the database, the binary's commands and
//! the figures the fault and abuse tests report.

pub mod app;
mod cli;
pub mod figures;
pub mod http_server;
pub mod pg_cluster;
pub mod rows;
mod seed;
pub mod smtp_server;

pub use cli::{binary, cli, stop_with_sigterm, wait_until_answering};
pub use seed::{add_confirmed_readers, add_story, queue_issue, set_zone};
