//! Logs through `tracing`, to stderr: text for people, or one JSON object per line
//! (`SPACEDIGEST_LOG_FORMAT=json`). Spans and events carry ids, never tokens, passwords,
//! session ids or readers' addresses: each HTTP request is a `request` span (request id,
//! method, route pattern, status: never the query string, where tokens travel), and each
//! delivery attempt a `delivery` span (email, kind, issue, subscriber, attempt).

use std::io::IsTerminal;

use tracing_subscriber::EnvFilter;
use tracing_subscriber::filter::Directive;

use crate::config::LogFormat;

/// Crates that log the documents they work on: the HTML parser and CSS selector engine
/// behind `css-inline` write every tag and attribute of an email at debug and trace,
/// confirmation and unsubscribe links included. They stay at `info` whatever the filter.
const LOGS_DOCUMENTS: [&str; 4] = ["html5ever", "markup5ever", "selectors", "cssparser"];

/// The filter for `filter` (e.g. `info`), with [`LOGS_DOCUMENTS`] capped at `info`.
pub fn filter(filter: &str) -> EnvFilter {
    let mut filter = EnvFilter::try_new(filter).unwrap_or_else(|_| EnvFilter::new("info"));
    for target in LOGS_DOCUMENTS {
        // A directive for the same target replaces the caller's, so this always wins.
        if let Ok(directive) = format!("{target}=info").parse::<Directive>() {
            filter = filter.add_directive(directive);
        }
    }
    filter
}

/// Installs the global subscriber with `filter` in `format`; a second call is a no-op.
pub fn init_with(filter: &str, format: LogFormat) {
    let builder = tracing_subscriber::fmt()
        .with_env_filter(self::filter(filter))
        .with_writer(std::io::stderr);
    let _ = match format {
        // Colour codes only help a terminal; in a file or a log collector they are noise.
        LogFormat::Text => builder
            .with_ansi(std::io::stderr().is_terminal())
            .try_init(),
        LogFormat::Json => builder
            .json()
            .with_current_span(true)
            .with_span_list(true)
            .try_init(),
    };
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn crates_that_log_documents_stay_at_info_even_when_named() {
        for asked in ["debug", "trace", "selectors=trace,debug", "html5ever=debug"] {
            let shown = filter(asked).to_string();
            for target in LOGS_DOCUMENTS {
                assert!(
                    shown.contains(&format!("{target}=info")),
                    "{asked}: {shown}"
                );
                assert!(
                    !shown.contains(&format!("{target}=debug")),
                    "{asked}: {shown}"
                );
                assert!(
                    !shown.contains(&format!("{target}=trace")),
                    "{asked}: {shown}"
                );
            }
        }
    }
}
