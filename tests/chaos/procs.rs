//! The service under test as child processes: the `run` binary (`$CHAOS_BIN` or this package's),
//! a config file and a log file per process in the scenario's log directory, and signals
//! (SIGKILL, SIGTERM, SIGSTOP, SIGCONT) by pid.

#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

/// The binary under test.
pub fn binary() -> PathBuf {
    std::env::var_os("CHAOS_BIN")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_BIN_EXE_catering-sync")))
}

/// A scenario's log directory: kept (and printed) when the scenario fails, removed otherwise.
pub struct Logs {
    dir: Option<tempfile::TempDir>,
    path: PathBuf,
    /// Every log file written, in spawn order.
    pub files: std::sync::Mutex<Vec<PathBuf>>,
}

impl Logs {
    /// `CHAOS_KEEP_LOGS=1` keeps the directory of every run.
    pub fn new(scenario: &str) -> Logs {
        let dir = tempfile::Builder::new()
            .prefix(&format!(
                "catering-sync-chaos-{}-",
                scenario.replace('/', "-")
            ))
            .tempdir()
            .expect("log dir");
        let path = dir.path().to_path_buf();
        let keep = std::env::var_os("CHAOS_KEEP_LOGS").is_some();
        if keep {
            println!("chaos {scenario}: service logs in {}", path.display());
        }
        Logs {
            dir: if keep {
                let _ = dir.keep();
                None
            } else {
                Some(dir)
            },
            path,
            files: std::sync::Mutex::new(Vec::new()),
        }
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Keep the directory after the run.
    pub fn keep(&mut self) {
        if let Some(d) = self.dir.take() {
            let _ = d.keep();
        }
    }

    /// The path and the last `lines` lines of every log.
    pub fn tails(&self, lines: usize) -> String {
        let mut s = format!("service logs in {}\n", self.path.display());
        for f in self.files.lock().unwrap().iter() {
            let text = std::fs::read_to_string(f).unwrap_or_default();
            let all: Vec<&str> = text.lines().collect();
            s.push_str(&format!("--- {} (last {lines} lines)\n", f.display()));
            for l in &all[all.len().saturating_sub(lines)..] {
                s.push_str(&l.chars().take(400).collect::<String>());
                s.push('\n');
            }
        }
        s
    }
}

/// One service process.
pub struct Service {
    pub name: String,
    child: Child,
    pub log: PathBuf,
    pub started: Instant,
    exited: Option<ExitStatus>,
}

impl Service {
    /// Starts `run --config <file>` with `env` added; its log is `<logs>/<name>.log`.
    pub fn spawn(logs: &Logs, name: &str, config_text: &str, env: &[(&str, String)]) -> Service {
        let config = logs.path().join(format!("{name}.toml"));
        std::fs::write(&config, config_text).expect("config file");
        let log = logs.path().join(format!("{name}.log"));
        let mut cmd = Command::new(binary());
        cmd.args(["--log-format", "json", "run", "--config"])
            .arg(&config)
            .env(
                "RUST_LOG",
                std::env::var("CHAOS_RUST_LOG").unwrap_or_else(|_| "info".into()),
            )
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(&log).expect("log file"));
        for (k, v) in env {
            cmd.env(k, v);
        }
        let child = cmd
            .spawn()
            .unwrap_or_else(|e| panic!("start {}: {e}", binary().display()));
        logs.files.lock().unwrap().push(log.clone());
        Service {
            name: name.into(),
            child,
            log,
            started: Instant::now(),
            exited: None,
        }
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    fn signal(&self, sig: &str) {
        let _ = Command::new("kill")
            .args([&format!("-{sig}"), &self.child.id().to_string()])
            .stderr(Stdio::null())
            .status();
    }

    /// SIGKILL and reap.
    pub fn kill(&mut self) -> Option<ExitStatus> {
        if self.exited.is_none() {
            let _ = self.child.kill();
            self.exited = self.child.wait().ok();
        }
        self.exited
    }

    pub fn term(&self) {
        self.signal("TERM");
    }

    pub fn stop(&self) {
        self.signal("STOP");
    }

    pub fn cont(&self) {
        self.signal("CONT");
    }

    /// The exit status, if it exited.
    pub fn exited(&mut self) -> Option<ExitStatus> {
        if self.exited.is_none() {
            self.exited = self.child.try_wait().ok().flatten();
        }
        self.exited
    }

    /// Waits (polling) up to `limit` for the process to exit.
    pub async fn wait_exit(&mut self, limit: Duration) -> Option<ExitStatus> {
        let deadline = Instant::now() + limit;
        loop {
            if let Some(s) = self.exited() {
                return Some(s);
            }
            if Instant::now() > deadline {
                return None;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// SIGTERM, wait up to `limit`, then SIGKILL.
    pub async fn term_and_wait(&mut self, limit: Duration) -> Option<ExitStatus> {
        self.term();
        match self.wait_exit(limit).await {
            Some(s) => Some(s),
            None => {
                eprintln!(
                    "{} did not exit within {limit:?} of SIGTERM: SIGKILL",
                    self.name
                );
                self.kill()
            }
        }
    }

    pub fn log_text(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// Whether the log has a line containing `needle`.
    pub fn logged(&self, needle: &str) -> bool {
        self.log_text().contains(needle)
    }
}

impl Drop for Service {
    fn drop(&mut self) {
        // A stopped process cannot die of SIGKILL until continued on some systems: continue first.
        if self.exited.is_none() {
            self.cont();
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}
