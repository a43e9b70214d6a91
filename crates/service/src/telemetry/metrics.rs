//! Every metric of the service, registered explicitly into a registry that is passed in
//! (`catering_sync_` prefix; labels only from bounded sets — never an order number). Every
//! labelled series is created at zero up front, so dashboards and alerts see it before the first
//! occurrence.

use prometheus::{
    Histogram, HistogramOpts, IntCounter, IntCounterVec, IntGauge, IntGaugeVec, Opts, Registry,
};

use super::labels::{
    CommitFailure, Expiry, Fencing, KeyReload, Probe, ProbeOutcome, RebalanceKind, StateTopic,
    WriteFailure,
};
use crate::dead_letter::Reason;

/// HTTP statuses kept as their own label value; any other is `other`, no response is `none`.
pub const POST_STATUSES: [&str; 15] = [
    "200", "204", "400", "401", "403", "404", "408", "429", "500", "502", "503", "504", "3xx",
    "other", "none",
];
/// Every metric family the service exports (histograms by their base name).
pub const NAMES: &[&str] = &[
    "catering_sync_events_consumed_total",
    "catering_sync_events_ignored_total",
    "catering_sync_posts_total",
    "catering_sync_post_duration_seconds",
    "catering_sync_retries_total",
    "catering_sync_dead_letters_total",
    "catering_sync_posts_in_flight",
    "catering_sync_consumer_lag",
    "catering_sync_committed_offset",
    "catering_sync_tracked_orders",
    "catering_sync_circuit_breaker_state",
    "catering_sync_paused_partitions",
    "catering_sync_assigned_partitions",
    "catering_sync_rebalances_total",
    "catering_sync_changelog_restore_duration_seconds",
    "catering_sync_response_signature_failures_total",
    "catering_sync_config_fault",
    "catering_sync_send_rate_limit",
    "catering_sync_circuit_breaker_open_seconds",
    "catering_sync_probes_total",
    "catering_sync_state_write_failures_total",
    "catering_sync_state_write_duration_seconds",
    "catering_sync_last_poll_timestamp_seconds",
    "catering_sync_changelog_writes_total",
    "catering_sync_fencing_events_total",
    "catering_sync_orders_expired_total",
    "catering_sync_commit_failures_total",
    "catering_sync_commit_duration_seconds",
    "catering_sync_key_reloads_total",
    "catering_sync_verification_key_expiry_timestamp_seconds",
    "catering_sync_signing_key_info",
    "catering_sync_certificate_downloads_total",
    "catering_sync_wechatpay_endpoint_active",
    "catering_sync_build_info",
    "catering_sync_event_age_seconds",
];

/// Exported when the container has a memory limit (cgroup v2 `memory.max`, or v1
/// `memory.limit_in_bytes`), and only then: a ratio against "no limit" would mean nothing.
pub const MEMORY_LIMIT: &str = "catering_sync_memory_limit_bytes";

/// The process collector's families (Linux): resident memory against the limit, CPU, restarts
/// (`process_start_time_seconds` changes), descriptors, threads.
pub const PROCESS_NAMES: &[&str] = &[
    "process_cpu_seconds_total",
    "process_open_fds",
    "process_max_fds",
    "process_virtual_memory_bytes",
    "process_resident_memory_bytes",
    "process_start_time_seconds",
    "process_threads",
];

/// The revision the binary was built from (`CATERING_SYNC_REVISION` at build time: the
/// Dockerfile's `REVISION` build argument, else `git rev-parse` in build.rs), or "unknown".
pub const REVISION: &str = match option_env!("CATERING_SYNC_REVISION") {
    Some(r) => r,
    None => "unknown",
};

/// The label value for an HTTP status.
pub fn status_label(status: Option<u16>) -> &'static str {
    match status {
        None => "none",
        Some(s) => POST_STATUSES
            .iter()
            .find(|l| l.parse::<u16>().ok() == Some(s))
            .copied()
            .unwrap_or(if (300..400).contains(&s) {
                "3xx"
            } else {
                "other"
            }),
    }
}

/// The service's metrics.
#[derive(Clone)]
pub struct Metrics {
    /// Records taken from the input topic, by partition.
    pub events_consumed: IntCounterVec,
    /// Age of each event (now − `occurred_at`) at the verified 204 that carried it to WeChat Pay.
    pub event_age: Histogram,
    /// Events ignored, by reason.
    pub events_ignored: IntCounterVec,
    /// POST attempts by outcome and HTTP status.
    pub posts: IntCounterVec,
    /// POST attempt latency.
    pub post_duration: Histogram,
    /// Retries scheduled, by cause.
    pub retries: IntCounterVec,
    /// Dead letters written, by reason.
    pub dead_letters: IntCounterVec,
    /// POSTs on the wire.
    pub posts_in_flight: IntGauge,
    /// Consumer lag (messages) per partition, from librdkafka statistics.
    pub consumer_lag: IntGaugeVec,
    /// Committed offset per partition.
    pub committed_offset: IntGaugeVec,
    /// Orders held in memory.
    pub tracked_orders: IntGauge,
    /// 0 closed, 1 open, 2 half-open.
    pub breaker_state: IntGauge,
    /// Partitions paused (backpressure, breaker, configuration fault).
    pub paused_partitions: IntGauge,
    /// Partitions assigned to this member.
    pub assigned_partitions: IntGauge,
    /// Rebalance callbacks, by kind.
    pub rebalances: IntCounterVec,
    /// Time to restore one partition's state from the changelog.
    pub restore_duration: Histogram,
    /// 2xx responses whose signature did not verify, by reason.
    pub signature_failures: IntCounterVec,
    /// 1 while WeChat Pay refuses our signature (401).
    pub config_fault: IntGauge,
    /// Current send-rate limit in posts/s (0 = unlimited).
    pub send_rate_limit: IntGauge,
    /// How long the breaker has been open or half-open (0 while closed).
    pub breaker_open_seconds: prometheus::Gauge,
    /// Probes of WeChat Pay sent by the prober, by what they probe and outcome.
    pub probes: IntCounterVec,
    /// Failed changelog and dead-letter writes, by topic and kind.
    pub state_write_failures: IntCounterVec,
    /// Time from a changelog or dead-letter write's first attempt to its acknowledgement.
    pub state_write_duration: prometheus::HistogramVec,
    /// Unix time of the poll loop's last iteration.
    pub last_poll: IntGauge,
    /// Changelog records written (state and tombstones).
    pub changelog_writes: IntCounter,
    /// Fencing events by kind.
    pub fencing: IntCounterVec,
    /// Orders tombstoned past their retention, by `state` (`final`, `non_final`).
    pub orders_expired: IntCounterVec,
    /// Failed offset commits, by kind.
    pub commit_failures: IntCounterVec,
    /// Time from sending an offset commit to its successful answer.
    pub commit_duration: Histogram,
    /// Key reloads (SIGHUP or changed files), by outcome.
    pub key_reloads: IntCounterVec,
    /// Each loaded verification key's expiry, Unix seconds (`+Inf`: a public key).
    pub verification_key_expiry: prometheus::GaugeVec,
    /// 1 for the signing identity in use (mchid, merchant serial, `Wechatpay-Serial` sent).
    pub signing_key_info: IntGaugeVec,
    /// Platform-certificate downloads, by trigger and outcome.
    pub certificate_downloads: IntCounterVec,
    /// 1 for the WeChat Pay endpoint requests go to, 0 for the other.
    pub endpoint_active: IntGaugeVec,
}

fn counter_vec(
    r: &Registry,
    name: &str,
    help: &str,
    label: &str,
    values: &[&str],
) -> prometheus::Result<IntCounterVec> {
    let c = IntCounterVec::new(Opts::new(name, help), &[label])?;
    for v in values {
        c.with_label_values(&[v]);
    }
    r.register(Box::new(c.clone()))?;
    Ok(c)
}

fn gauge(r: &Registry, name: &str, help: &str) -> prometheus::Result<IntGauge> {
    let g = IntGauge::new(name, help)?;
    r.register(Box::new(g.clone()))?;
    Ok(g)
}

fn histogram(
    r: &Registry,
    name: &str,
    help: &str,
    buckets: Vec<f64>,
) -> prometheus::Result<Histogram> {
    let h = Histogram::with_opts(HistogramOpts::new(name, help).buckets(buckets))?;
    r.register(Box::new(h.clone()))?;
    Ok(h)
}

impl Metrics {
    /// Register every metric into `r`.
    pub fn new(r: &Registry) -> prometheus::Result<Self> {
        let reasons: Vec<&str> = Reason::ALL.iter().map(|x| x.as_str()).collect();
        let posts = IntCounterVec::new(
            Opts::new(
                "catering_sync_posts_total",
                "POST attempts to WeChat Pay by outcome and HTTP status",
            ),
            &["outcome", "status"],
        )?;
        for (o, s) in [
            ("delivered", "204"),
            ("transient", "none"),
            ("transient", "500"),
            ("transient", "503"),
            ("transient", "429"),
            ("transient", "204"),
            ("rejected", "400"),
            ("config_fault", "401"),
        ] {
            posts.with_label_values(&[o, s]);
        }
        r.register(Box::new(posts.clone()))?;
        let per_partition = |name: &str, help: &str| -> prometheus::Result<IntGaugeVec> {
            let g = IntGaugeVec::new(Opts::new(name, help), &["partition"])?;
            r.register(Box::new(g.clone()))?;
            Ok(g)
        };
        let events_consumed = IntCounterVec::new(
            Opts::new(
                "catering_sync_events_consumed_total",
                "Records taken from the input topic",
            ),
            &["partition"],
        )?;
        r.register(Box::new(events_consumed.clone()))?;
        let rebalances = counter_vec(
            r,
            "catering_sync_rebalances_total",
            "Rebalance callbacks by kind",
            "kind",
            &RebalanceKind::values(),
        )?;
        let changelog_writes = IntCounter::new(
            "catering_sync_changelog_writes_total",
            "Changelog records and tombstones acknowledged by the broker",
        )?;
        r.register(Box::new(changelog_writes.clone()))?;
        build_info(r)?;
        process_and_memory(r)?;
        Ok(Self {
            events_consumed,
            event_age: histogram(
                r,
                "catering_sync_event_age_seconds",
                "Age of each event (now minus its occurred_at) when the verified 204 that carried it arrived: how fresh orders reach WeChat Pay",
                vec![
                    0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 300.0, 900.0, 3600.0,
                ],
            )?,
            events_ignored: counter_vec(
                r,
                "catering_sync_events_ignored_total",
                "Events ignored (duplicate event id, stale seq)",
                "reason",
                &crate::snapshot::Ignored::ALL.map(|i| i.as_str()),
            )?,
            posts,
            post_duration: histogram(
                r,
                "catering_sync_post_duration_seconds",
                "Latency of one POST attempt to WeChat Pay",
                vec![
                    0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0,
                ],
            )?,
            retries: counter_vec(
                r,
                "catering_sync_retries_total",
                "Retries scheduled after a transient failure, by cause",
                "cause",
                &crate::wechatpay::TransientCause::each().map(|c| c.label()),
            )?,
            dead_letters: counter_vec(
                r,
                "catering_sync_dead_letters_total",
                "Dead letters acknowledged by the broker, by reason",
                "reason",
                &reasons,
            )?,
            posts_in_flight: gauge(
                r,
                "catering_sync_posts_in_flight",
                "POSTs to WeChat Pay on the wire",
            )?,
            consumer_lag: per_partition(
                "catering_sync_consumer_lag",
                "Messages between the committed offset and the end of each assigned partition",
            )?,
            committed_offset: per_partition(
                "catering_sync_committed_offset",
                "Last committed offset per partition",
            )?,
            tracked_orders: gauge(r, "catering_sync_tracked_orders", "Orders held in memory")?,
            breaker_state: gauge(
                r,
                "catering_sync_circuit_breaker_state",
                "Circuit breaker: 0 closed, 1 open, 2 half-open",
            )?,
            paused_partitions: gauge(
                r,
                "catering_sync_paused_partitions",
                "Partitions paused (backpressure, open breaker, configuration fault)",
            )?,
            assigned_partitions: gauge(
                r,
                "catering_sync_assigned_partitions",
                "Partitions assigned to this member",
            )?,
            rebalances,
            restore_duration: histogram(
                r,
                "catering_sync_changelog_restore_duration_seconds",
                "Time to restore one partition's order state from the changelog",
                vec![0.01, 0.05, 0.1, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 300.0],
            )?,
            signature_failures: counter_vec(
                r,
                "catering_sync_response_signature_failures_total",
                "2xx responses whose signature did not verify, by reason",
                "reason",
                &crate::wechatpay::VerifyError::each().map(|e| e.label()),
            )?,
            config_fault: gauge(
                r,
                "catering_sync_config_fault",
                "1 while WeChat Pay answers 401 (key, serial, mchid or clock wrong)",
            )?,
            send_rate_limit: gauge(
                r,
                "catering_sync_send_rate_limit",
                "Current send-rate limit in posts per second (0 = unlimited)",
            )?,
            breaker_open_seconds: {
                let g = prometheus::Gauge::new(
                    "catering_sync_circuit_breaker_open_seconds",
                    "How long the circuit breaker has been open or half-open (0 while closed)",
                )?;
                r.register(Box::new(g.clone()))?;
                g
            },
            probes: {
                let c = IntCounterVec::new(
                    Opts::new(
                        "catering_sync_probes_total",
                        "Probes of WeChat Pay sent while nothing else could probe, by probe (breaker, deployment_fault) and outcome (answered, deployment_fault, throttled, failed)",
                    ),
                    &["probe", "outcome"],
                )?;
                for p in Probe::ALL {
                    for o in ProbeOutcome::ALL {
                        c.with_label_values(&[p.as_str(), o.as_str()]);
                    }
                }
                r.register(Box::new(c.clone()))?;
                c
            },
            state_write_failures: {
                let c = IntCounterVec::new(
                    Opts::new(
                        "catering_sync_state_write_failures_total",
                        "Failed changelog and dead-letter writes by topic (changelog, dead_letter) and kind (too_large, unknown_topic, authorization, fatal, timeout, other)",
                    ),
                    &["topic", "kind"],
                )?;
                for t in StateTopic::ALL {
                    for k in WriteFailure::ALL {
                        c.with_label_values(&[t.as_str(), k.as_str()]);
                    }
                }
                r.register(Box::new(c.clone()))?;
                c
            },
            state_write_duration: {
                let h = prometheus::HistogramVec::new(
                    HistogramOpts::new(
                        "catering_sync_state_write_duration_seconds",
                        "Time from a changelog or dead-letter write's first attempt to its acknowledgement, by topic",
                    )
                    .buckets(vec![0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 15.0]),
                    &["topic"],
                )?;
                for t in StateTopic::ALL {
                    h.with_label_values(&[t.as_str()]);
                }
                r.register(Box::new(h.clone()))?;
                h
            },
            last_poll: gauge(
                r,
                "catering_sync_last_poll_timestamp_seconds",
                "Unix time of the poll loop's last iteration",
            )?,
            changelog_writes,
            fencing: counter_vec(
                r,
                "catering_sync_fencing_events_total",
                "Ownership safety events: stale_record_ignored (a changelog record written after a newer owner's fence, skipped on restore), drain_aborted (tasks aborted at the drain bound), assignment_lost (revoked without a drain), unquiet_exit (exited rather than overlap with the next owner), task_panicked (an order task panicked: exited to restart from the write-ahead state)",
                "kind",
                &Fencing::values(),
            )?,
            orders_expired: counter_vec(
                r,
                "catering_sync_orders_expired_total",
                "Orders tombstoned past their retention (tombstone acknowledged): final (PAY_SUCCESS acknowledged, state.final_retention_secs after it), non_final (any other order, state.non_final_retention_secs after its last change)",
                "state",
                &Expiry::values(),
            )?,
            commit_failures: counter_vec(
                r,
                "catering_sync_commit_failures_total",
                "Failed periodic offset commits by kind: coordinator (none available, or not the coordinator), rebalance (a rebalance in progress, or this member's generation is gone), timeout (no answer within 5 minutes), transport (no connection to the brokers), other; the offsets of partitions still owned are repeated after a backoff",
                "kind",
                &CommitFailure::values(),
            )?,
            commit_duration: histogram(
                r,
                "catering_sync_commit_duration_seconds",
                "Time from sending a periodic offset commit (asynchronous, one in flight) to its successful answer; drain commits are not measured",
                vec![0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 15.0, 30.0],
            )?,
            key_reloads: counter_vec(
                r,
                "catering_sync_key_reloads_total",
                "Reloads of the keys (on SIGHUP, or when the configuration or a key file changed) by outcome: ok (the new keys are in use from the next request), failed (the keys in use are kept; the log says why)",
                "outcome",
                &KeyReload::values(),
            )?,
            verification_key_expiry: {
                let g = prometheus::GaugeVec::new(
                    Opts::new(
                        "catering_sync_verification_key_expiry_timestamp_seconds",
                        "When each loaded WeChat Pay verification key expires, Unix seconds, by key (its serial or PUB_KEY_ID_…): a platform certificate's notAfter; +Inf for a public key, which does not expire",
                    ),
                    &["key"],
                )?;
                r.register(Box::new(g.clone()))?;
                g
            },
            signing_key_info: {
                let g = IntGaugeVec::new(
                    Opts::new(
                        "catering_sync_signing_key_info",
                        "1 for the signing identity in use: mchid, merchant_serial, and the wechatpay_serial sent (empty: none)",
                    ),
                    &["mchid", "merchant_serial", "wechatpay_serial"],
                )?;
                r.register(Box::new(g.clone()))?;
                g
            },
            certificate_downloads: {
                use super::labels::{CertificateTrigger, DownloadOutcome};
                let c = IntCounterVec::new(
                    Opts::new(
                        "catering_sync_certificate_downloads_total",
                        "Platform-certificate downloads (GET /v3/certificates, platform-certificate mode) by trigger (scheduled: start-up and every certificate_refresh_interval_ms; unknown_serial: an answer named a serial not held) and outcome (ok: decrypted, verified, in use; failed: the certificates held are kept)",
                    ),
                    &["trigger", "outcome"],
                )?;
                for t in CertificateTrigger::ALL {
                    for o in DownloadOutcome::ALL {
                        c.with_label_values(&[t.as_str(), o.as_str()]);
                    }
                }
                r.register(Box::new(c.clone()))?;
                c
            },
            endpoint_active: {
                let g = IntGaugeVec::new(
                    Opts::new(
                        "catering_sync_wechatpay_endpoint_active",
                        "1 for the WeChat Pay endpoint requests go to (primary: wechatpay.base_url; backup: wechatpay.backup_base_url, after the primary refused connections), 0 for the other",
                    ),
                    &["endpoint"],
                )?;
                for e in super::labels::Endpoint::ALL {
                    g.with_label_values(&[e.as_str()])
                        .set(i64::from(*e == super::labels::Endpoint::Primary));
                }
                r.register(Box::new(g.clone()))?;
                g
            },
        })
    }

    /// A registry with every metric, for tests and tools.
    pub fn standalone() -> (Registry, Self) {
        let r = Registry::new();
        let m = Self::new(&r).expect("metric names are valid and unique");
        (r, m)
    }
}

/// `catering_sync_build_info{version,revision} 1`: which build each pod runs (a rollout in
/// progress shows two).
fn build_info(r: &Registry) -> prometheus::Result<()> {
    let g = IntGaugeVec::new(
        Opts::new(
            "catering_sync_build_info",
            "1, labelled with the version and the revision of the running binary",
        ),
        &["version", "revision"],
    )?;
    g.with_label_values(&[env!("CARGO_PKG_VERSION"), REVISION])
        .set(1);
    r.register(Box::new(g))
}

/// The process collector (Linux) and, when the container has one, its memory limit.
fn process_and_memory(r: &Registry) -> prometheus::Result<()> {
    #[cfg(target_os = "linux")]
    r.register(Box::new(
        prometheus::process_collector::ProcessCollector::for_self(),
    ))?;
    if let Some(limit) = memory_limit(std::path::Path::new("/sys/fs/cgroup")) {
        let g = IntGauge::new(
            MEMORY_LIMIT,
            "The container's memory limit (cgroup), bytes: process_resident_memory_bytes against it is the headroom left for tracked orders",
        )?;
        g.set(i64::try_from(limit).unwrap_or(i64::MAX));
        r.register(Box::new(g))?;
    }
    Ok(())
}

/// The memory limit of the cgroup mounted at `root`: v2 `memory.max`, else v1
/// `memory/memory.limit_in_bytes`; `None` when unlimited (`max`, or v1's page-rounded
/// "no limit" near 2^63) or unreadable.
pub fn memory_limit(root: &std::path::Path) -> Option<u64> {
    let read = |rel: &str| std::fs::read_to_string(root.join(rel)).ok();
    let text = read("memory.max").or_else(|| read("memory/memory.limit_in_bytes"))?;
    let limit: u64 = text.trim().parse().ok()?;
    (limit < 1 << 62).then_some(limit)
}

/// The Prometheus text exposition of `r`.
pub fn render(r: &Registry) -> String {
    let mut out = String::new();
    let _ = prometheus::TextEncoder::new().encode_utf8(&r.gather(), &mut out);
    out
}

/// Names of every metric family `r` exports (histograms by their base name).
pub fn exported_names(r: &Registry) -> std::collections::BTreeSet<String> {
    r.gather().iter().map(|f| f.name().to_string()).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn label_sets_derived_from_the_enums_are_distinct_and_complete() {
        use std::collections::BTreeSet;
        let distinct =
            |labels: &[&str]| labels.iter().collect::<BTreeSet<_>>().len() == labels.len();
        let ignored = crate::snapshot::Ignored::ALL.map(|i| i.as_str());
        let causes = crate::wechatpay::TransientCause::each().map(|c| c.label());
        let failures = crate::wechatpay::VerifyError::each().map(|e| e.label());
        assert!(distinct(&ignored) && distinct(&causes) && distinct(&failures));
        assert!(
            causes.contains(&"not_processed"),
            "the label RETRY_CAUSES had lost"
        );
    }

    #[test]
    fn the_registry_exports_exactly_the_documented_names() {
        let (r, m) = Metrics::standalone();
        // Per-partition families appear once a partition is assigned.
        m.events_consumed.with_label_values(&["0"]).inc();
        m.consumer_lag.with_label_values(&["0"]).set(1);
        m.committed_offset.with_label_values(&["0"]).set(1);
        // Per-key families appear once the keys are loaded.
        m.verification_key_expiry
            .with_label_values(&["PUB_KEY_ID_0"])
            .set(f64::INFINITY);
        m.signing_key_info
            .with_label_values(&["1900000109", "0123", "PUB_KEY_ID_0"])
            .set(1);
        let mut names = exported_names(&r);
        // Present or not depending on the machine the test runs on.
        names.remove(MEMORY_LIMIT);
        let mut documented: std::collections::BTreeSet<String> =
            NAMES.iter().map(|s| s.to_string()).collect();
        if cfg!(target_os = "linux") {
            documented.extend(PROCESS_NAMES.iter().map(|s| s.to_string()));
        }
        assert_eq!(names, documented);
        assert!(render(&r).contains(&format!(
            "catering_sync_build_info{{revision=\"{REVISION}\",version=\"{}\"}} 1",
            env!("CARGO_PKG_VERSION")
        )));
    }

    #[test]
    fn the_memory_limit_is_read_from_cgroup_v2_or_v1_and_absent_when_unlimited() {
        let dir = std::env::temp_dir().join(format!("cgroup-test-{}", std::process::id()));
        let v1 = dir.join("memory");
        std::fs::create_dir_all(&v1).unwrap();
        assert_eq!(memory_limit(&dir), None, "nothing to read");
        std::fs::write(v1.join("memory.limit_in_bytes"), "9223372036854771712\n").unwrap();
        assert_eq!(memory_limit(&dir), None, "v1 without a limit");
        std::fs::write(v1.join("memory.limit_in_bytes"), "536870912\n").unwrap();
        assert_eq!(memory_limit(&dir), Some(512 << 20));
        std::fs::write(dir.join("memory.max"), "max\n").unwrap();
        assert_eq!(memory_limit(&dir), None, "v2 without a limit");
        std::fs::write(dir.join("memory.max"), "1073741824\n").unwrap();
        assert_eq!(memory_limit(&dir), Some(1 << 30));
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn every_metric_is_exported_before_its_first_use() {
        let (r, _) = Metrics::standalone();
        let names = exported_names(&r);
        for n in [
            "catering_sync_dead_letters_total",
            "catering_sync_posts_total",
            "catering_sync_post_duration_seconds",
            "catering_sync_circuit_breaker_state",
            "catering_sync_response_signature_failures_total",
        ] {
            assert!(names.contains(n), "{n} in {names:?}");
        }
        assert!(
            render(&r).contains("catering_sync_dead_letters_total{reason=\"retries_exhausted\"} 0")
        );
        assert_eq!(status_label(Some(204)), "204");
        assert_eq!(status_label(Some(302)), "3xx");
        assert_eq!(status_label(Some(418)), "other");
        assert_eq!(status_label(None), "none");
    }
}
