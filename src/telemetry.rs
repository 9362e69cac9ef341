//! Logs through `tracing`, to stderr. Spans and events carry ids, never tokens,
//! passwords or session ids.

use tracing_subscriber::EnvFilter;

/// Installs the global subscriber with `filter` (e.g. `info`); a second call is a no-op.
pub fn init(filter: &str) {
    let filter = EnvFilter::try_new(filter).unwrap_or_else(|_| EnvFilter::new("info"));
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .try_init();
}
