//! Figures the fault and abuse tests report. Each is printed in the test output (CI runs
//! the suite with `--show-output`) and, when `SPACEDIGEST_TEST_FIGURES_FILE` names a file,
//! appended to it as one JSON line, from which `scripts/testing-figures` rebuilds the
//! table in `TESTING.md`.
use std::io::Write;

use crate::support::app::{Backend, backend};

/// Names the file figures are appended to.
pub const FIGURES_FILE_VAR: &str = "SPACEDIGEST_TEST_FIGURES_FILE";
/// Set to `1` for the long versions of the fault tests (20 kill points, 5,000 readers,
/// 500 timing trials…); without it each runs its short version.
pub const FULL_VAR: &str = "SPACEDIGEST_TEST_FULL";

/// True when the long versions were asked for.
pub fn full() -> bool {
    std::env::var(FULL_VAR).is_ok_and(|v| v == "1")
}

/// `short` or `full`, as the figures record it.
pub fn mode() -> &'static str {
    if full() { "full" } else { "short" }
}

/// The backend's name as figures record it.
pub fn backend_name() -> &'static str {
    match backend() {
        Backend::Sqlite => "sqlite",
        Backend::Postgres => "postgres",
    }
}

/// Reports `figure` for `test` (a short stable name, e.g. `kill-sender`): printed, and
/// recorded when a figures file is set. Call it before the assertions, so a failing run
/// still shows what it measured.
pub fn report(test: &str, figure: &str) {
    let backend = backend_name();
    let mode = mode();
    println!("FIGURE [{backend}, {mode}] {test}: {figure}");
    let Ok(path) = std::env::var(FIGURES_FILE_VAR) else {
        return;
    };
    let line = serde_json::json!({
        "test": test,
        "backend": backend,
        "mode": mode,
        "figure": figure,
        "at": chrono::Utc::now().format("%Y-%m-%d %H:%M UTC").to_string(),
    });
    let written = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(&path)
        .and_then(|mut file| writeln!(file, "{line}"));
    if let Err(error) = written {
        panic!("cannot append a figure to {path}: {error}");
    }
}
