//! A private PostgreSQL cluster for one test: `initdb` in a temporary directory, a free
//! port on 127.0.0.1 and its Unix socket in that directory, so a test may stop, kill and
//! restart its database without touching the server every other test shares. Stopped and
//! removed when dropped.
//!
//! `initdb` refuses to run as root, so as root every `initdb`/`pg_ctl` runs as the
//! `postgres` system user (`runuser`), which owns the directory; otherwise they run as us.
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::time::{Duration, Instant};

use diesel::prelude::*;

/// How a stop treats the server's sessions (`pg_ctl stop -m …`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StopMode {
    /// Ends every session at once, then checkpoints: an operator's restart.
    Fast,
    /// Kills the server without a checkpoint: a crash; the next start recovers from WAL.
    Immediate,
}

impl StopMode {
    fn flag(self) -> &'static str {
        match self {
            Self::Fast => "fast",
            Self::Immediate => "immediate",
        }
    }
}

/// A running cluster of our own.
pub struct PgCluster {
    bin: PathBuf,
    dir: tempfile::TempDir,
    port: u16,
    as_postgres_user: bool,
}

impl PgCluster {
    /// Creates and starts a cluster. Panics with what is missing when PostgreSQL's server
    /// binaries are not installed: a test that needs them must fail, not pass unseen.
    pub async fn start() -> Self {
        tokio::task::spawn_blocking(Self::start_blocking)
            .await
            .expect("starting the private PostgreSQL cluster")
    }

    fn start_blocking() -> Self {
        let bin = server_binaries().unwrap_or_else(|| {
            panic!(
                "this test needs PostgreSQL's server binaries (initdb, pg_ctl) under \
                 /usr/lib/postgresql/*/bin: install the `postgresql` package"
            )
        });
        let as_postgres_user = running_as_root();
        let dir = tempfile::Builder::new()
            .prefix("spacedigest-pg-")
            .tempdir()
            .expect("a temporary directory for the cluster");
        let cluster = Self {
            bin,
            dir,
            port: crate::support::smtp_server::free_port(),
            as_postgres_user,
        };
        if as_postgres_user {
            let chown = Command::new("chown")
                .arg("postgres:postgres")
                .arg(cluster.dir.path())
                .output()
                .expect("chown runs");
            assert_ok(&chown, "chown postgres the cluster's directory");
        }
        let initdb = cluster.run(
            "initdb",
            &[
                "-D",
                &cluster.data_dir(),
                "-U",
                "postgres",
                "--auth=trust",
                "-E",
                "UTF8",
                "--no-sync",
            ],
        );
        assert_ok(&initdb, "initdb");
        // The socket lives with the cluster, so it never meets the shared server's.
        // fsync is off because no test here loses power: an immediate stop is a process
        // crash, which the operating system's cache survives.
        let config = format!(
            "\nport = {}\nlisten_addresses = '127.0.0.1'\nunix_socket_directories = '{}'\n\
             fsync = off\nmax_connections = 60\nshared_buffers = 16MB\n",
            cluster.port,
            cluster.dir.path().display()
        );
        let conf = Path::new(&cluster.data_dir()).join("postgresql.conf");
        let mut text = std::fs::read_to_string(&conf).expect("postgresql.conf");
        text.push_str(&config);
        std::fs::write(&conf, text).expect("postgresql.conf is writable");
        cluster.pg_ctl_blocking(&["start"]);
        cluster
    }

    /// A URL for database `name` (`postgres` exists from the start).
    pub fn url(&self, name: &str) -> String {
        format!("postgres://postgres@127.0.0.1:{}/{name}", self.port)
    }

    /// Creates database `name` and returns its URL.
    pub async fn create_database(&self, name: &str) -> String {
        let admin = self.url("postgres");
        let statement = format!("CREATE DATABASE \"{name}\"");
        tokio::task::spawn_blocking(move || {
            let mut conn = PgConnection::establish(&admin).expect("the private cluster answers");
            diesel::sql_query(statement)
                .execute(&mut conn)
                .expect("CREATE DATABASE");
        })
        .await
        .unwrap();
        self.url(name)
    }

    /// Stops the server; returns once it is down.
    pub async fn stop(&self, mode: StopMode) {
        self.pg_ctl(&["stop", "-m", mode.flag()]).await;
    }

    /// Starts the stopped server; returns the moment it accepts connections.
    pub async fn start_again(&self) -> Instant {
        self.pg_ctl(&["start"]).await;
        self.wait_until_accepting().await
    }

    /// Restarts the server (stop in `mode`, then start); returns the moment it accepts
    /// connections again.
    pub async fn restart(&self, mode: StopMode) -> Instant {
        self.pg_ctl(&["restart", "-m", mode.flag()]).await;
        self.wait_until_accepting().await
    }

    /// The first moment a new connection succeeds (`pg_ctl -w` already waited for the
    /// server to be ready; this confirms it as a client sees it).
    pub async fn wait_until_accepting(&self) -> Instant {
        let url = self.url("postgres");
        tokio::task::spawn_blocking(move || {
            let deadline = Instant::now() + Duration::from_secs(60);
            loop {
                if PgConnection::establish(&url).is_ok() {
                    return Instant::now();
                }
                assert!(
                    Instant::now() < deadline,
                    "the private cluster never accepted connections"
                );
                std::thread::sleep(Duration::from_millis(10));
            }
        })
        .await
        .unwrap()
    }

    /// The server's log so far, for a failing test's message.
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.log_file()).unwrap_or_default()
    }

    async fn pg_ctl(&self, args: &[&str]) {
        let args: Vec<String> = args.iter().map(|a| (*a).to_owned()).collect();
        let cluster = ClusterCommand {
            bin: self.bin.clone(),
            data_dir: self.data_dir(),
            log_file: self.log_file(),
            as_postgres_user: self.as_postgres_user,
        };
        tokio::task::spawn_blocking(move || cluster.pg_ctl(&args))
            .await
            .unwrap();
    }

    fn pg_ctl_blocking(&self, args: &[&str]) {
        let args: Vec<String> = args.iter().map(|a| (*a).to_owned()).collect();
        ClusterCommand {
            bin: self.bin.clone(),
            data_dir: self.data_dir(),
            log_file: self.log_file(),
            as_postgres_user: self.as_postgres_user,
        }
        .pg_ctl(&args);
    }

    fn run(&self, program: &str, args: &[&str]) -> Output {
        command(&self.bin, program, self.as_postgres_user)
            .args(args)
            .output()
            .unwrap_or_else(|e| panic!("{program} cannot run: {e}"))
    }

    fn data_dir(&self) -> String {
        self.dir.path().join("data").display().to_string()
    }

    fn log_file(&self) -> String {
        self.dir.path().join("server.log").display().to_string()
    }
}

impl Drop for PgCluster {
    fn drop(&mut self) {
        // Immediate: nothing in it is worth a checkpoint. The directory goes with `dir`.
        let _ = command(&self.bin, "pg_ctl", self.as_postgres_user)
            .args(["-D", &self.data_dir(), "-m", "immediate", "-w", "stop"])
            .output();
    }
}

/// What a `pg_ctl` run needs, movable to a blocking thread.
struct ClusterCommand {
    bin: PathBuf,
    data_dir: String,
    log_file: String,
    as_postgres_user: bool,
}

impl ClusterCommand {
    fn pg_ctl(&self, args: &[String]) {
        let output = command(&self.bin, "pg_ctl", self.as_postgres_user)
            .args(["-D", &self.data_dir, "-l", &self.log_file, "-w", "-t", "60"])
            .args(args)
            .output()
            .expect("pg_ctl runs");
        if !output.status.success() {
            panic!(
                "pg_ctl {args:?} failed: {}{}\nserver log:\n{}",
                String::from_utf8_lossy(&output.stdout),
                String::from_utf8_lossy(&output.stderr),
                std::fs::read_to_string(&self.log_file).unwrap_or_default()
            );
        }
    }
}

fn command(bin: &Path, program: &str, as_postgres_user: bool) -> Command {
    let program = bin.join(program);
    if as_postgres_user {
        let mut command = Command::new("runuser");
        command.args(["-u", "postgres", "--"]).arg(program);
        command
    } else {
        Command::new(program)
    }
}

/// The newest installed version's `bin` directory that has `initdb` and `pg_ctl`.
fn server_binaries() -> Option<PathBuf> {
    let mut found: Vec<(u32, PathBuf)> = std::fs::read_dir("/usr/lib/postgresql")
        .ok()?
        .filter_map(Result::ok)
        .filter_map(|entry| {
            let version = entry.file_name().to_str()?.parse::<u32>().ok()?;
            let bin = entry.path().join("bin");
            (bin.join("initdb").is_file() && bin.join("pg_ctl").is_file()).then_some((version, bin))
        })
        .collect();
    found.sort();
    found.pop().map(|(_, bin)| bin)
}

fn running_as_root() -> bool {
    std::fs::metadata("/proc/self").is_ok_and(|m| m.uid() == 0)
}

fn assert_ok(output: &Output, what: &str) {
    assert!(
        output.status.success(),
        "{what} failed: {}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
}
