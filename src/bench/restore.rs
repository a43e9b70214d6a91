//! Changelog restore speed: write the state records of many orders to a changelog topic on the
//! broker, then restore every partition at once with the service's own restore code
//! ([`crate::state::restore_partition`]) and configuration, as a pod does on assignment.

use std::time::{Duration, Instant};

use anyhow::bail;
use rdkafka::producer::{BaseRecord, Producer};

use super::e2e::{Bed, PARTITIONS};
use super::{order_events, order_no};
use crate::event::{decode, DecodeLimits};
use crate::snapshot::{Defaults, OrderState};

/// The measured restore.
#[derive(Debug, Clone)]
pub struct RestoreResult {
    /// Orders (one record each) written.
    pub orders: usize,
    /// Bytes of one record (typical order, 5 dishes).
    pub record_bytes: usize,
    /// Wall time to restore every partition, in parallel.
    pub elapsed: Duration,
    /// CPU time of this process during the restore.
    pub cpu: Option<Duration>,
    /// CPU time of the broker process during the restore.
    pub broker_cpu: Duration,
}

impl RestoreResult {
    /// Records restored per second.
    pub fn per_second(&self) -> f64 {
        self.orders as f64 / self.elapsed.as_secs_f64()
    }
}

/// The changelog record of benchmark order `i` after both its events were acknowledged.
fn record(i: usize) -> anyhow::Result<Vec<u8>> {
    let limits = DecodeLimits::default();
    let defaults = Defaults::default();
    let mut state = OrderState::default();
    for value in order_events(i, 5) {
        let event = decode(&value, &limits).map_err(|e| anyhow::anyhow!("{e}"))?;
        state.apply(&event, &defaults);
        if let Some(body) = state.body() {
            state.mark_acked(&body, 1_764_218_096_000);
        }
    }
    Ok(crate::snapshot::record::encode(
        &state.to_record(&order_no(i)),
    ))
}

/// Write `orders` records, then restore them all and time it.
pub async fn restore(bed: &Bed, orders: usize) -> anyhow::Result<RestoreResult> {
    let topic = format!("bench-restore-{:08x}", rand::random::<u32>());
    bed.create_topic(&topic, PARTITIONS, true).await?;
    let kafka: crate::config::KafkaConfig = toml::from_str(&format!(
        "brokers = \"{}\"\ngroup_id = \"bench-restore\"\ninput_topic = \"unused\"\nchangelog_topic = \"{topic}\"\ndlq_topic = \"unused\"\n[common]\n\"broker.address.family\" = \"v4\"\n",
        bed.broker.bootstrap()
    ))?;
    let producer_config = {
        let mut c = crate::pipeline::kafka::producer_config(&kafka);
        c.set("linger.ms", "50")
            .set("queue.buffering.max.messages", "1000000")
            .set("queue.buffering.max.kbytes", "1048576")
            .set("message.timeout.ms", "300000");
        c
    };
    let bootstrap_topic = topic.clone();
    let fence_config = producer_config.clone();
    let record_bytes = tokio::task::spawn_blocking(move || -> anyhow::Result<usize> {
        let p: rdkafka::producer::BaseProducer = producer_config.create()?;
        let mut size = 0;
        for i in 0..orders {
            let value = record(i)?;
            size = value.len();
            let key = order_no(i);
            super::e2e::send_waiting(
                &p,
                BaseRecord::to(&bootstrap_topic)
                    .key(key.as_str())
                    .payload(value.as_slice())
                    .partition(i as i32 % PARTITIONS),
            )?;
        }
        p.flush(Duration::from_secs(300))?;
        Ok(size)
    })
    .await??;
    super::all::step(&format!("restoring {orders} orders"));
    let config = crate::pipeline::kafka::restore_config(&kafka);
    // Each partition is fenced first, as a new owner does, and restored up to its fence. The
    // four fences at once: one after another they took about 2 s on tansu (a producer's
    // InitProducerId and an acknowledged write each), before the measurement but not nothing.
    let metrics = crate::telemetry::metrics::Metrics::new(&prometheus::Registry::new())?;
    let mut fences = Vec::new();
    for p in 0..PARTITIONS {
        let producer = crate::state::producer(&fence_config)?;
        let sink = crate::state::Sink::new(
            producer,
            topic.clone(),
            topic.clone(),
            p,
            metrics.clone(),
            None,
        );
        fences.push(tokio::spawn(async move {
            let token = format!("bench-{p}");
            let mut never = crate::clock::Cancel::never();
            sink.fence(1, &token, &mut never)
                .await
                .map(|_| token)
                .map_err(|_| anyhow::anyhow!("fence of partition {p} cancelled"))
        }));
    }
    let mut tokens = Vec::new();
    for fence in fences {
        tokens.push(fence.await??);
    }
    let cpu_before = super::process_cpu(None);
    let broker_before = bed.broker.cpu();
    let started = Instant::now();
    let handles: Vec<_> = (0..PARTITIONS)
        .map(|p| {
            let config = config.clone();
            let topic = topic.clone();
            let token = tokens[p as usize].clone();
            tokio::task::spawn_blocking(move || {
                let mut into = crate::state::Restored::default();
                crate::state::restore_partition(
                    &config,
                    &topic,
                    p,
                    &crate::state::Owner {
                        tokens: vec![token],
                        first_fence: i64::MAX,
                        epoch: 1,
                    },
                    &mut into,
                    Duration::from_secs(600),
                    &crate::clock::Cancel::never(),
                )
                .map(|()| into)
            })
        })
        .collect();
    let mut restored = 0;
    let mut unreadable = 0;
    let mut maps = Vec::new();
    for h in handles {
        let r = h.await??;
        restored += r.orders.len();
        unreadable += r.unreadable;
        maps.push(r.orders);
    }
    let elapsed = started.elapsed();
    let cpu = super::process_cpu(None)
        .zip(cpu_before)
        .map(|(a, b)| a.saturating_sub(b));
    let broker_cpu = bed.broker.cpu().saturating_sub(broker_before);
    drop(maps);
    if restored != orders || unreadable != 0 {
        bail!("restored {restored} of {orders} orders ({unreadable} unreadable records)");
    }
    Ok(RestoreResult {
        orders,
        record_bytes,
        elapsed,
        cpu,
        broker_cpu,
    })
}
