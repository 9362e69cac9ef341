//! Tells the black-box tests (`tests/api`) what this build can run, so that a test that
//! cannot run here is reported by `cargo test` as ignored, with its reason, and never
//! counted as passed. libtest decides `#[ignore]` at compile time; the tests read these
//! cfgs through `#[cfg_attr(not(...), ignore = "...")]`:
//!
//! - `spacedigest_test_backend = "postgres"` when `SPACEDIGEST_TEST_POSTGRES_URL` is set
//!   (and not blank), else `"sqlite"`: the backend the suite runs on (`tests/api/support/app.rs`).
//! - `spacedigest_browser_test` when `SPACEDIGEST_REQUIRE_BROWSER_TEST` is set (`.ci/run`
//!   sets it): the browser test then runs, and a missing Chromium, chromedriver or
//!   axe-core fails it.
//! - `spacedigest_dual_stack` when a `[::]` listener here accepts IPv4 clients.
//!
//! Only environment variables and one socket probe, never a path: cargo reruns this script
//! only when this file or one of the variables changes. A path that may not exist yet
//! (Chromium before `apt-get install`) would rerun it on every build, and a directory such
//! as `/usr/bin` would recompile the crate on every package install; a changed cfg
//! recompiles the whole crate.

use std::net::{TcpListener, TcpStream};

const POSTGRES_URL_VAR: &str = "SPACEDIGEST_TEST_POSTGRES_URL";
const REQUIRE_BROWSER_VAR: &str = "SPACEDIGEST_REQUIRE_BROWSER_TEST";

fn main() {
    println!("cargo::rerun-if-changed=build.rs");
    println!("cargo::rerun-if-env-changed={POSTGRES_URL_VAR}");
    println!("cargo::rerun-if-env-changed={REQUIRE_BROWSER_VAR}");
    println!(
        "cargo::rustc-check-cfg=cfg(spacedigest_test_backend, values(\"sqlite\", \"postgres\"))"
    );
    println!("cargo::rustc-check-cfg=cfg(spacedigest_browser_test)");
    println!("cargo::rustc-check-cfg=cfg(spacedigest_dual_stack)");

    // As `tests/api/support/app.rs`'s `backend()` reads it at run time.
    let backend = match std::env::var(POSTGRES_URL_VAR) {
        Ok(url) if !url.trim().is_empty() => "postgres",
        _ => "sqlite",
    };
    println!("cargo::rustc-cfg=spacedigest_test_backend=\"{backend}\"");
    if std::env::var_os(REQUIRE_BROWSER_VAR).is_some() {
        println!("cargo::rustc-cfg=spacedigest_browser_test");
    }
    if dual_stack_available() {
        println!("cargo::rustc-cfg=spacedigest_dual_stack");
    }
}

/// Whether this machine gives a `[::]` listener IPv4 clients too (as the test checks again
/// at run time).
fn dual_stack_available() -> bool {
    let Ok(listener) = TcpListener::bind("[::]:0") else {
        return false;
    };
    let Ok(address) = listener.local_addr() else {
        return false;
    };
    TcpStream::connect(("127.0.0.1", address.port())).is_ok()
}
