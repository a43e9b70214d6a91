//! The changelog record of an order (`schemas/order-state.schema.json`): what the pipeline writes
//! to the compacted state topic and restores from it.

use std::borrow::Cow;

use serde::{Deserialize, Serialize};

use super::body::hex;
use super::order::{OrderState, MAX_APPLIED_IDS};
use super::packed::PackedSnapshot;
use super::types::Snapshot;

/// Current record version.
pub const RECORD_VERSION: u32 = 1;

/// One order's state as stored in the changelog topic (keyed by `out_order_no`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StateRecord {
    /// Always [`RECORD_VERSION`].
    pub version: u32,
    /// The order.
    pub out_order_no: String,
    /// The merged snapshot (a draft may lack any field). Holds `login_token`: protect the topic.
    pub snapshot: Snapshot,
    /// Fingerprints (16 lower-case hex digits: the first 8 bytes of SHA-256 of the event id),
    /// oldest first.
    pub applied_event_ids: Vec<String>,
    /// The greatest `seq` applied.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_seq: Option<u64>,
    /// SHA-256 (lower-case hex) of the last acknowledged body.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub acked_digest: Option<String>,
    /// Unix ms when a `PAY_SUCCESS` body was acknowledged.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub final_acked_at_ms: Option<u64>,
}

/// Why a changelog record could not be restored.
#[derive(Debug, thiserror::Error)]
pub enum RecordError {
    /// Not the record JSON.
    #[error("not a state record: {0}")]
    Json(#[from] serde_json::Error),
    /// A version this build does not read.
    #[error("state record version {0} is not supported (this build reads {RECORD_VERSION})")]
    Version(u32),
    /// A malformed fingerprint or digest.
    #[error("state record field {0} is malformed")]
    Field(&'static str),
}

fn unhex<const N: usize>(s: &str) -> Option<[u8; N]> {
    if s.len() != 2 * N
        || !s
            .bytes()
            .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
    {
        return None;
    }
    let mut out = [0u8; N];
    for (i, o) in out.iter_mut().enumerate() {
        *o = u8::from_str_radix(&s[2 * i..2 * i + 2], 16).ok()?;
    }
    Some(out)
}

impl OrderState {
    /// The record to write for this order.
    pub fn to_record(&self, out_order_no: &str) -> StateRecord {
        StateRecord {
            version: RECORD_VERSION,
            out_order_no: out_order_no.to_string(),
            snapshot: self.snapshot(),
            applied_event_ids: self.applied.iter().map(|f| hex(&f.to_be_bytes())).collect(),
            last_seq: self.last_seq,
            acked_digest: self.acked_digest.as_ref().map(|d| hex(d)),
            final_acked_at_ms: self.final_acked_at_ms,
        }
    }

    /// The changelog record of this order as JSON bytes: the same bytes as serialising
    /// [`Self::to_record`], the snapshot serialised from its packed form (written after every
    /// acknowledged post).
    pub fn record_bytes(&self, out_order_no: &str) -> Vec<u8> {
        self.encode(out_order_no, self.acked_digest.as_ref())
    }

    /// The write-ahead record of this order: its state as [`Self::record_bytes`], but with no
    /// acknowledged digest. The post about to go on the wire may or may not be acknowledged
    /// before a crash, so after a restore WeChat Pay may hold either body: the digest is unknown
    /// and every body is posted again (a reverted update that returns to the older body included).
    pub fn write_ahead_bytes(&self, out_order_no: &str) -> Vec<u8> {
        self.encode(out_order_no, None)
    }

    fn encode(&self, out_order_no: &str, acked_digest: Option<&[u8; 32]>) -> Vec<u8> {
        let record = RecordOut {
            version: RECORD_VERSION,
            out_order_no,
            snapshot: &self.snapshot,
            applied_event_ids: self.applied.iter().map(|f| hex(&f.to_be_bytes())).collect(),
            last_seq: self.last_seq,
            acked_digest: acked_digest.map(|d| hex(d)),
            final_acked_at_ms: self.final_acked_at_ms,
        };
        // Plain data serialises to a Vec without failing.
        serde_json::to_vec(&record).unwrap_or_default()
    }

    /// Restore from a record.
    pub fn from_record(record: StateRecord) -> Result<Self, RecordError> {
        Self::from_parts(
            record.version,
            record.snapshot,
            &record.applied_event_ids,
            record.last_seq,
            record.acked_digest.as_deref(),
            record.final_acked_at_ms,
        )
    }

    fn from_parts<S: AsRef<str>>(
        version: u32,
        snapshot: Snapshot,
        applied_event_ids: &[S],
        last_seq: Option<u64>,
        acked_digest: Option<&str>,
        final_acked_at_ms: Option<u64>,
    ) -> Result<Self, RecordError> {
        if version != RECORD_VERSION {
            return Err(RecordError::Version(version));
        }
        let skip = applied_event_ids.len().saturating_sub(MAX_APPLIED_IDS);
        // Exactly sized: the boxed slice is then the same allocation.
        let mut applied = Vec::with_capacity(applied_event_ids.len() - skip);
        for s in &applied_event_ids[skip..] {
            let fp = unhex::<8>(s.as_ref()).ok_or(RecordError::Field("applied_event_ids"))?;
            applied.push(u64::from_be_bytes(fp));
        }
        let acked_digest = match acked_digest {
            None => None,
            Some(s) => Some(unhex::<32>(s).ok_or(RecordError::Field("acked_digest"))?),
        };
        Ok(Self {
            snapshot: PackedSnapshot::new(&snapshot),
            applied: applied.into_boxed_slice(),
            last_seq,
            acked_digest,
            final_acked_at_ms,
            changed_at: Default::default(),
            deliveries: Default::default(),
        })
    }

    /// Decode record bytes: the order number and its state. Strings other than the snapshot's
    /// are borrowed from `bytes` (restoring a partition decodes every record of it).
    pub fn from_record_bytes(bytes: &[u8]) -> Result<(Cow<'_, str>, Self), RecordError> {
        let r: RecordIn<'_> = serde_json::from_slice(bytes)?;
        let state = Self::from_parts(
            r.version,
            r.snapshot,
            &r.applied_event_ids,
            r.last_seq,
            r.acked_digest.as_deref(),
            r.final_acked_at_ms,
        )?;
        Ok((r.out_order_no, state))
    }
}

/// [`StateRecord`] as encoded, borrowing the state: the same fields in the same order.
#[derive(Serialize)]
struct RecordOut<'a> {
    version: u32,
    out_order_no: &'a str,
    snapshot: &'a PackedSnapshot,
    applied_event_ids: Vec<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    last_seq: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    acked_digest: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    final_acked_at_ms: Option<u64>,
}

/// [`StateRecord`] as decoded: the same fields and rules, strings borrowed where possible.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RecordIn<'a> {
    version: u32,
    #[serde(borrow)]
    out_order_no: Cow<'a, str>,
    snapshot: Snapshot,
    #[serde(borrow)]
    applied_event_ids: Vec<Cow<'a, str>>,
    #[serde(default)]
    last_seq: Option<u64>,
    #[serde(default, borrow)]
    acked_digest: Option<Cow<'a, str>>,
    #[serde(default)]
    final_acked_at_ms: Option<u64>,
}

/// A snapshot-free helper for tests and tools: the record as JSON bytes.
pub fn encode(record: &StateRecord) -> Vec<u8> {
    serde_json::to_vec(record).unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use crate::event::{decode, DecodeLimits};
    use crate::snapshot::{Defaults, OrderState};

    #[test]
    fn record_bytes_equal_the_serialised_record_and_decode_back() {
        let mut state = OrderState::default();
        let mut checked = 0;
        for value in crate::fixtures::order_events(7, 3) {
            let event = decode(&value, &DecodeLimits::default()).unwrap();
            state.apply(&event, &Defaults::default());
            let no = event.out_order_no.as_str();
            for acked in [false, true] {
                if acked {
                    let body = state.body().unwrap();
                    state.mark_acked(&body, 1_764_218_096_000);
                }
                let bytes = state.record_bytes(no);
                assert_eq!(bytes, super::encode(&state.to_record(no)));
                let (back_no, back) = OrderState::from_record_bytes(&bytes).unwrap();
                assert_eq!((back_no.as_ref(), &back), (no, &state));
                checked += 1;
            }
        }
        assert_eq!(checked, 4);
    }

    #[test]
    fn deliveries_round_trip_through_their_header_bounded_and_never_fail_a_restore() {
        use crate::snapshot::order::{Deliveries, Delivery, MAX_DELIVERIES};
        use crate::snapshot::Status;
        let mut d = Deliveries::default();
        assert_eq!(d.header_value(), None, "nothing to carry");
        for i in 0..6u64 {
            d.push(Delivery {
                status: Status::CreateDeal,
                at_ms: i,
                request_id: Some(format!("08-{i}").into()),
            });
        }
        assert_eq!(d.list().len(), MAX_DELIVERIES);
        assert_eq!(d.list()[0].at_ms, 2, "the oldest dropped first");
        let back = Deliveries::from_header(&d.header_value().unwrap());
        assert_eq!(back.list(), d.list());
        assert!(Deliveries::from_header(b"not json").list().is_empty());
    }

    #[test]
    fn a_request_id_off_the_wire_is_cut_so_the_history_header_stays_small() {
        use crate::snapshot::order::{
            Deliveries, Delivery, MAX_DELIVERIES, MAX_DELIVERIES_HEADER_BYTES, MAX_REQUEST_ID_BYTES,
        };
        use crate::snapshot::Status;
        // An unsigned header of any length (a proxy, a broken gateway): at most 64 bytes kept,
        // anything JSON would escape or that is not ASCII as `?`.
        let long = "R".repeat(100_000);
        let d = Delivery::new(Status::PaySuccess, 1, Some(&long));
        assert_eq!(d.request_id.as_deref(), Some(&long[..MAX_REQUEST_ID_BYTES]));
        let odd = format!("a\"b\\c\u{1}é{}", "x".repeat(MAX_REQUEST_ID_BYTES));
        let d = Delivery::new(Status::PaySuccess, 1, Some(&odd));
        let kept = d.request_id.as_deref().unwrap();
        assert_eq!(kept.len(), MAX_REQUEST_ID_BYTES);
        assert!(kept.starts_with("a?b?c??x"), "{kept}");
        let short = "08F0A3B8A10610D0021858C8E1C30E20D3CF2828DA8D01-0";
        assert_eq!(
            Delivery::new(Status::CreateDeal, 1, Some(short))
                .request_id
                .as_deref(),
            Some(short),
            "a real one is kept whole"
        );
        // The worst case the header can reach: four posts, each with the longest Request-ID of
        // characters JSON escapes.
        let quotes = "\"".repeat(1000);
        let mut all = Deliveries::default();
        for _ in 0..MAX_DELIVERIES {
            all.push(Delivery::new(Status::PaySuccess, u64::MAX, Some(&quotes)));
        }
        let bytes = all.header_value().unwrap();
        assert!(
            bytes.len() <= MAX_DELIVERIES_HEADER_BYTES,
            "{}",
            bytes.len()
        );
        // A header written by anything else is cut the same way when it is read back.
        let header = format!(r#"[{{"status":"PAY_SUCCESS","at_ms":1,"request_id":"{long}"}}]"#);
        let back = Deliveries::from_header(header.as_bytes());
        assert_eq!(
            back.list()[0].request_id.as_deref().map(str::len),
            Some(MAX_REQUEST_ID_BYTES)
        );
    }

    #[test]
    fn decoding_keeps_the_record_rules() {
        let state = OrderState::default();
        let good = String::from_utf8(state.record_bytes("A-1")).unwrap();
        assert!(OrderState::from_record_bytes(good.as_bytes()).is_ok());
        let unknown = good.replacen('{', "{\"extra\":1,", 1);
        assert!(OrderState::from_record_bytes(unknown.as_bytes()).is_err());
        let version = good.replacen("\"version\":1", "\"version\":2", 1);
        assert!(OrderState::from_record_bytes(version.as_bytes()).is_err());
        let escaped = good.replacen("\"A-1\"", "\"A\\u002d1\"", 1);
        let (no, _) = OrderState::from_record_bytes(escaped.as_bytes()).unwrap();
        assert_eq!(no, "A-1", "escaped strings decode (owned) too");
    }
}
