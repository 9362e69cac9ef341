//! The `spacedigest` binary: parse the command line, run, report failure in one line.

use clap::Parser;
use spacedigest::cli::Cli;

#[actix_web::main]
async fn main() -> std::process::ExitCode {
    let cli = Cli::parse();
    let code = match cli.run().await {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("error: {error:#}");
            std::process::ExitCode::FAILURE
        }
    };
    // A connection still being opened must not meet the exit handlers (see db::connecting).
    spacedigest::db::stop_connecting(std::time::Duration::from_secs(5));
    code
}
