//! A real PostgreSQL server for tests: `initdb` into a temporary directory and `pg_ctl start` on
//! 127.0.0.1 (a free port), run as the unprivileged user `nobody` when the tests run as root
//! (`initdb` refuses root). Stopped when dropped.
//!
//! The server binaries are looked for in `$OPENCLAW_MCP_PG_BIN`, `/usr/lib/postgresql/<v>/bin`
//! (Debian's `postgresql` package) and on `PATH`. Without them a test is skipped with a message,
//! except under `CI=true`, where that is a failure.

#![allow(dead_code, clippy::unwrap_used)]

use std::{
    path::{Path, PathBuf},
    process::{Command, Stdio},
};

pub struct PgServer {
    pub url: String,
    pub port: u16,
    bin: PathBuf,
    dir: tempfile::TempDir,
    as_nobody: bool,
}

fn find_bin() -> Option<PathBuf> {
    if let Some(dir) = std::env::var_os("OPENCLAW_MCP_PG_BIN") {
        return Some(PathBuf::from(dir));
    }
    let mut versions: Vec<PathBuf> = std::fs::read_dir("/usr/lib/postgresql")
        .into_iter()
        .flatten()
        .flatten()
        .map(|e| e.path().join("bin"))
        .filter(|p| p.join("initdb").exists())
        .collect();
    versions.sort_by_key(|p| {
        p.parent()
            .and_then(|v| v.file_name())
            .and_then(|v| v.to_str())
            .and_then(|v| v.parse::<u32>().ok())
            .unwrap_or(0)
    });
    if let Some(best) = versions.pop() {
        return Some(best);
    }
    std::env::var_os("PATH").and_then(|path| {
        std::env::split_paths(&path)
            .find(|d| d.join("initdb").exists() && d.join("pg_ctl").exists())
    })
}

fn is_root() -> bool {
    Command::new("id")
        .arg("-u")
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).trim() == "0")
        .unwrap_or(false)
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

impl PgServer {
    /// A running server, or `None` (with a message) when none can be started outside CI.
    pub fn start() -> Option<PgServer> {
        let Some(bin) = find_bin() else {
            let why = "no PostgreSQL server binaries (initdb, pg_ctl): install Debian's `postgresql` package or set OPENCLAW_MCP_PG_BIN";
            assert!(
                std::env::var("CI").as_deref() != Ok("true"),
                "CI=true and {why}"
            );
            eprintln!("SKIPPED: {why}");
            return None;
        };
        let dir = tempfile::tempdir().unwrap();
        let as_nobody = is_root();
        if as_nobody {
            let status = Command::new("chown")
                .args(["-R", "65534:65534"])
                .arg(dir.path())
                .status()
                .unwrap();
            assert!(status.success(), "chown of the test database folder");
        }
        let mut server = PgServer {
            url: String::new(),
            port: 0,
            bin,
            dir,
            as_nobody,
        };
        let data = server.data();
        server.run(
            "initdb",
            &[
                "-D",
                data.to_str().unwrap(),
                "-U",
                "postgres",
                "-A",
                "trust",
                "-E",
                "UTF8",
                "--locale=C",
                "--no-sync",
            ],
        );
        for _ in 0..3 {
            server.port = free_port();
            if server.try_start() {
                server.url = format!("postgres://postgres@127.0.0.1:{}/postgres", server.port);
                return Some(server);
            }
        }
        panic!(
            "PostgreSQL did not start: {}",
            std::fs::read_to_string(server.dir.path().join("log")).unwrap_or_default()
        );
    }

    fn data(&self) -> PathBuf {
        self.dir.path().join("data")
    }

    fn command(&self, program: &str) -> Command {
        let path = self.bin.join(program);
        if self.as_nobody {
            let mut c = Command::new("setpriv");
            c.args(["--reuid=65534", "--regid=65534", "--clear-groups", "--"])
                .arg(path);
            c
        } else {
            Command::new(path)
        }
    }

    fn run(&self, program: &str, args: &[&str]) -> bool {
        let out = self
            .command(program)
            .args(args)
            .current_dir(self.dir.path())
            .stdin(Stdio::null())
            .output()
            .unwrap();
        if !out.status.success() {
            eprintln!(
                "{program} failed: {}{}",
                String::from_utf8_lossy(&out.stdout),
                String::from_utf8_lossy(&out.stderr)
            );
        }
        out.status.success()
    }

    fn try_start(&self) -> bool {
        let data = self.data();
        let log = self.dir.path().join("log");
        let options = format!(
            "-c listen_addresses=127.0.0.1 -p {} -k {} -c fsync=off -c max_connections=200",
            self.port,
            self.dir.path().display()
        );
        self.run(
            "pg_ctl",
            &[
                "-D",
                data.to_str().unwrap(),
                "-l",
                log.to_str().unwrap(),
                "-w",
                "-t",
                "30",
                "-o",
                &options,
                "start",
            ],
        )
    }

    /// Stops the server at once (connections are cut), as a database going away does.
    pub fn stop(&self) {
        let data = self.data();
        self.run(
            "pg_ctl",
            &[
                "-D",
                data.to_str().unwrap(),
                "-m",
                "immediate",
                "-w",
                "stop",
            ],
        );
    }

    /// Starts it again on the same port.
    pub fn restart(&self) {
        assert!(self.try_start(), "PostgreSQL did not start again");
    }

    /// A URL for another database of this server.
    pub fn url_of(&self, db: &str) -> String {
        format!("postgres://postgres@127.0.0.1:{}/{db}", self.port)
    }

    pub fn path(&self) -> &Path {
        self.dir.path()
    }
}

impl Drop for PgServer {
    fn drop(&mut self) {
        self.stop();
    }
}
