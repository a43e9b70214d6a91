//! The changelog record of an order (`schemas/order-state.schema.json`): what the pipeline writes
//! to the compacted state topic and restores from it.

use std::borrow::Cow;

use serde::{Deserialize, Serialize};

use super::body::hex;
use super::order::{OrderState, MAX_APPLIED_IDS};
use super::packed::PackedSnapshot;
use super::types::{Snapshot, SnapshotIn, Text};

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

/// `2 * N` lower-case hex digits as bytes.
fn unhex<const N: usize>(s: &str) -> Option<[u8; N]> {
    /// Each byte's digit value, 0xff for a byte that is not a lower-case hex digit.
    const DIGITS: [u8; 256] = {
        let mut t = [0xffu8; 256];
        let mut i = 0;
        while i < 10 {
            t[b'0' as usize + i] = i as u8;
            i += 1;
        }
        let mut i = 0;
        while i < 6 {
            t[b'a' as usize + i] = 10 + i as u8;
            i += 1;
        }
        t
    };
    let s = s.as_bytes();
    if s.len() != 2 * N {
        return None;
    }
    let mut out = [0u8; N];
    // Any invalid digit sets the high bit of `bad` (0xff), checked once at the end.
    let mut bad = 0u8;
    for (o, pair) in out.iter_mut().zip(s.chunks_exact(2)) {
        let (hi, lo) = (DIGITS[usize::from(pair[0])], DIGITS[usize::from(pair[1])]);
        bad |= hi | lo;
        *o = (hi << 4) | (lo & 0x0f);
    }
    (bad & 0xf0 == 0).then_some(out)
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
            || PackedSnapshot::new(&record.snapshot),
            &record.applied_event_ids,
            record.last_seq,
            record.acked_digest.as_deref(),
            record.final_acked_at_ms,
        )
    }

    /// The state of a record's parts, the snapshot packed by `snapshot` once the rest is known
    /// to be readable.
    fn from_parts<S: AsRef<str>>(
        version: u32,
        snapshot: impl FnOnce() -> PackedSnapshot,
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
            snapshot: snapshot(),
            applied: applied.into_boxed_slice(),
            last_seq,
            acked_digest,
            final_acked_at_ms,
            changed_at: Default::default(),
            deliveries: Default::default(),
        })
    }

    /// Decode record bytes: the order number and its state (restoring a partition decodes
    /// every record of it). Accepts and rejects exactly what decoding a [`StateRecord`] does;
    /// strings are borrowed from `bytes` where they have no escapes, and the snapshot is packed
    /// straight from its decoded form, without building the [`Snapshot`] (a string per field).
    pub fn from_record_bytes(bytes: &[u8]) -> Result<(Cow<'_, str>, Self), RecordError> {
        let r: RecordIn<'_> = match std::str::from_utf8(bytes) {
            // Validated once here, not string by string by the decoder (`from_str` does not
            // validate again).
            Ok(text) => serde_json::from_str(text)?,
            // Not UTF-8: never a record (every byte outside a string is JSON's ASCII, and every
            // string is decoded), so `from_slice` fails on it, with its error.
            Err(_) => serde_json::from_slice(bytes)?,
        };
        let snapshot = &r.snapshot;
        let state = Self::from_parts(
            r.version,
            || PackedSnapshot::from_in(snapshot),
            &r.applied_event_ids,
            r.last_seq,
            r.acked_digest.as_ref().map(|d| &*d.0),
            r.final_acked_at_ms,
        )?;
        Ok((r.out_order_no, state))
    }

    /// [`Self::from_record_bytes`] as it was before the snapshot was packed from its decoded
    /// form: through an owned [`Snapshot`] (the reference the tests compare it with).
    #[cfg(test)]
    pub(crate) fn from_record_bytes_owned(
        bytes: &[u8],
    ) -> Result<(Cow<'_, str>, Self), RecordError> {
        let r: RecordInOwned<'_> = serde_json::from_slice(bytes)?;
        let state = Self::from_parts(
            r.version,
            || PackedSnapshot::new(&r.snapshot),
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

/// [`StateRecord`] as decoded: the same fields and rules, strings borrowed where possible (a
/// plain `Cow` is borrowed by serde's `borrow`, one inside a `Vec` or an `Option` would not be:
/// [`Text`]), the snapshot in its decoded form.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RecordIn<'a> {
    version: u32,
    #[serde(borrow)]
    out_order_no: Cow<'a, str>,
    #[serde(borrow)]
    snapshot: SnapshotIn<'a>,
    #[serde(borrow)]
    applied_event_ids: Vec<Text<'a>>,
    #[serde(default)]
    last_seq: Option<u64>,
    #[serde(default, borrow)]
    acked_digest: Option<Text<'a>>,
    #[serde(default)]
    final_acked_at_ms: Option<u64>,
}

impl AsRef<str> for Text<'_> {
    fn as_ref(&self) -> &str {
        &self.0
    }
}

/// The decoded record as it was before [`RecordIn`] (the tests' reference).
#[cfg(test)]
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RecordInOwned<'a> {
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
    fn unhex_takes_exactly_lower_case_hex_of_the_length() {
        assert_eq!(super::unhex::<2>("0fa9"), Some([0x0f, 0xa9]));
        assert_eq!(super::unhex::<1>("ff"), Some([0xff]));
        for bad in ["0F", "0g", "0", "000", " 0", "é", "0/", "0:", "`0", "0G"] {
            assert_eq!(super::unhex::<1>(bad), None, "{bad}");
        }
        for b in 0..=255u8 {
            let s = String::from_utf8(vec![b'0', b]).unwrap_or_default();
            let want = (b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
                .then(|| u8::from_str_radix(&s, 16).unwrap());
            assert_eq!(super::unhex::<1>(&s).map(|[x]| x), want, "{b}");
        }
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

/// The decoder packing the snapshot from its borrowed decoded form against the one through an
/// owned [`Snapshot`] (and against decoding a whole [`StateRecord`]): the same records accepted,
/// with the same packed bytes, and the same rejected, on records, mutated records and garbage.
#[cfg(test)]
mod differential {
    use proptest::prelude::*;
    use serde_json::Value;

    use super::{OrderState, StateRecord};

    /// Both decoders (and the owned `StateRecord` one) agree on `bytes`; whether they accepted it.
    fn agree(bytes: &[u8]) -> Result<bool, TestCaseError> {
        let new = OrderState::from_record_bytes(bytes);
        let old = OrderState::from_record_bytes_owned(bytes);
        let whole = serde_json::from_slice::<StateRecord>(bytes)
            .map_err(super::RecordError::from)
            .and_then(|r| {
                let no = r.out_order_no.clone();
                OrderState::from_record(r).map(|s| (no, s))
            });
        let shown = String::from_utf8_lossy(bytes);
        match (&new, &old) {
            (Ok((n1, s1)), Ok((n2, s2))) => {
                prop_assert_eq!(n1, n2, "{}", shown);
                prop_assert_eq!(s1, s2, "the same packed state: {}", shown);
            }
            (Err(_), Err(_)) => {}
            _ => prop_assert!(
                false,
                "new {:?} / old {:?} disagree on {}",
                new.as_ref().map(|_| ()),
                old.as_ref().map(|_| ()),
                shown
            ),
        }
        match (&new, &whole) {
            (Ok((n1, s1)), Ok((n2, s2))) => {
                prop_assert_eq!(n1.as_ref(), n2.as_str());
                prop_assert_eq!(s1, s2);
            }
            (Err(_), Err(_)) => {}
            _ => prop_assert!(false, "new and StateRecord disagree on {}", shown),
        }
        Ok(new.is_ok())
    }

    fn arb_hex(n: usize) -> impl Strategy<Value = String> {
        prop_oneof![
            8 => proptest::collection::vec(0u8..16, 2 * n)
                .prop_map(|d| d.iter().map(|x| char::from_digit((*x).into(), 16).unwrap()).collect()),
            1 => "[0-9a-fA-Fg ]{0,20}",
        ]
    }

    fn arb_record() -> impl Strategy<Value = StateRecord> {
        (
            prop_oneof![9 => Just(1u32), 1 => any::<u32>()],
            ".{0,10}",
            crate::snapshot::packed::tests::arb_snapshot(),
            proptest::collection::vec(arb_hex(8), 0..4),
            any::<Option<u64>>(),
            proptest::option::of(arb_hex(32)),
            any::<Option<u64>>(),
        )
            .prop_map(
                |(version, no, mut snapshot, ids, last_seq, acked_digest, final_acked_at_ms)| {
                    // Counts JSON carries (any u64 of hundredths would be mostly unreadable).
                    for d in snapshot.dish_list.iter_mut().flat_map(|l| l.iter_mut()) {
                        d.count = d.count.map(|c| crate::snapshot::Count(c.0 % 100_000_000));
                    }
                    StateRecord {
                        version,
                        out_order_no: no,
                        snapshot,
                        applied_event_ids: ids,
                        last_seq,
                        acked_digest,
                        final_acked_at_ms,
                    }
                },
            )
    }

    /// Change the `target`-th node (pre-order) of `v` by `op`; false when there are fewer nodes.
    fn mutate(v: &mut Value, target: &mut usize, op: u8, salt: u64) -> bool {
        if *target == 0 {
            *v = match (op % 12, std::mem::take(v)) {
                (0, _) => Value::Null,
                (1, _) => Value::from(salt as i64),
                (2, _) => serde_json::json!(salt as f64 / 100.0),
                (3, _) => Value::from(salt),
                (4, _) => Value::from("CREATE_DEAL"),
                (5, Value::Object(mut m)) => {
                    m.insert(format!("k{}", salt % 3), Value::Null);
                    Value::Object(m)
                }
                // The positional form of a struct, which serde accepts too.
                (6, Value::Object(m)) => Value::Array(m.into_iter().map(|(_, v)| v).collect()),
                (7, Value::Object(mut m)) => {
                    if !m.is_empty() {
                        let k = m.keys().nth(salt as usize % m.len()).unwrap().clone();
                        m.remove(&k);
                    }
                    Value::Object(m)
                }
                (8, Value::Array(mut a)) => {
                    if a.is_empty() {
                        a.push(Value::Null);
                    } else {
                        let i = salt as usize % a.len();
                        let x = a[i].clone();
                        a.push(x);
                    }
                    Value::Array(a)
                }
                (9, Value::String(s)) => Value::String(format!("{s}\u{1}é\"")),
                // An externally tagged unit variant in its map form.
                (10, Value::String(s)) => serde_json::json!({ s: null }),
                (11, _) => serde_json::json!({}),
                (_, old) => old,
            };
            return true;
        }
        *target -= 1;
        match v {
            Value::Object(m) => m.values_mut().any(|c| mutate(c, target, op, salt)),
            Value::Array(a) => a.iter_mut().any(|c| mutate(c, target, op, salt)),
            _ => false,
        }
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(2000))]

        #[test]
        fn any_record_decodes_the_same_both_ways(r in arb_record()) {
            // (Not every generated record is readable: a count beyond the JSON rules, a bad
            // fingerprint, another version.)
            agree(&super::encode(&r))?;
        }

        #[test]
        fn mutated_records_decode_or_fail_the_same_both_ways(
            r in arb_record(),
            edits in proptest::collection::vec((any::<usize>(), any::<u8>(), any::<u64>()), 1..4),
            bytes_edits in proptest::collection::vec((any::<usize>(), any::<u8>(), 0u8..3), 0..3),
        ) {
            let mut v = serde_json::to_value(&r).unwrap();
            for (at, op, salt) in edits {
                let mut nodes = 0;
                // Count the nodes, then pick one.
                fn count(v: &Value, n: &mut usize) {
                    *n += 1;
                    match v {
                        Value::Object(m) => m.values().for_each(|c| count(c, n)),
                        Value::Array(a) => a.iter().for_each(|c| count(c, n)),
                        _ => {}
                    }
                }
                count(&v, &mut nodes);
                mutate(&mut v, &mut (at % nodes), op, salt);
            }
            let mut bytes = serde_json::to_vec(&v).unwrap();
            for (at, b, kind) in bytes_edits {
                let i = at % (bytes.len() + 1);
                match kind {
                    0 if i < bytes.len() => bytes[i] = b,
                    1 => bytes.insert(i, b),
                    _ => bytes.truncate(i),
                }
            }
            // (About one in ten is still readable.)
            agree(&bytes)?;
        }

        #[test]
        fn garbage_decodes_or_fails_the_same_both_ways(bytes in proptest::collection::vec(any::<u8>(), 0..64)) {
            agree(&bytes)?;
        }
    }

    #[test]
    fn the_corners_of_serde_decode_the_same_both_ways() {
        let good = String::from_utf8(
            OrderState::from_record(
                serde_json::from_str::<StateRecord>(
                    r#"{"version":1,"out_order_no":"A-1","snapshot":{"status":"CREATE_DEAL","out_table_no":"T","dish_list":[{"name":"面","count":1.5,"properties":{"taste":"辣"}}]},"applied_event_ids":["0123456789abcdef"],"acked_digest":"0000000000000000000000000000000000000000000000000000000000000000"}"#,
                )
                .unwrap(),
            )
            .unwrap()
            .record_bytes("A-1"),
        )
        .unwrap();
        let cases: Vec<(String, bool)> = vec![
            (good.clone(), true),
            // Duplicate fields, at every level.
            (
                good.replacen("\"status\":", "\"status\":\"PAY_SUCCESS\",\"status\":", 1),
                false,
            ),
            (
                good.replacen("\"name\":", "\"name\":\"x\",\"name\":", 1),
                false,
            ),
            (
                good.replacen("\"taste\":", "\"taste\":\"x\",\"taste\":", 1),
                false,
            ),
            (
                good.replacen("\"version\":1", "\"version\":1,\"version\":1", 1),
                false,
            ),
            // Nulls are absent fields.
            (
                good.replacen("\"out_table_no\":\"T\"", "\"out_table_no\":null", 1),
                true,
            ),
            (
                good.replacen("\"properties\":{", "\"properties\":null,\"x\":{", 1),
                false,
            ),
            // The map form of a unit variant; the positional form of a struct.
            (
                good.replacen("\"CREATE_DEAL\"", "{\"CREATE_DEAL\":null}", 1),
                true,
            ),
            (good.replacen("{\"taste\":\"辣\"}", "[\"辣\"]", 1), true),
            (
                good.replacen("{\"taste\":\"辣\"}", "[\"辣\",null,null,null,null,null]", 1),
                false,
            ),
            // Escapes (owned strings) and invalid UTF-8 in a string.
            (good.replacen("\"T\"", "\"\\u0054\\n\"", 1), true),
            (good.replacen("\"T\"", "\"\\ud800\"", 1), false),
            (good.replacen("count\":1.5", "count\":1.555", 1), false),
            (good.replacen("count\":1.5", "count\":-1", 1), false),
            (
                good.replacen("0123456789abcdef", "0123456789ABCDEF", 1),
                false,
            ),
            (
                good.replacen("\"applied_event_ids\":[", "\"applied_event_ids\":[1,", 1),
                false,
            ),
            (good.replacen("}", " } ", 1) + " \n", true),
            (good.clone() + "x", false),
        ];
        for (text, ok) in cases {
            assert_eq!(agree(text.as_bytes()).unwrap(), ok, "{text}");
        }
        let mut bad = good.into_bytes();
        let t = bad.windows(3).position(|w| w == b"\"T\"").unwrap();
        bad[t + 1] = 0xff;
        assert!(!agree(&bad).unwrap(), "invalid UTF-8");
        // More applied ids than are kept: only the kept ones must be fingerprints.
        let mut r: StateRecord =
            serde_json::from_slice(&OrderState::default().record_bytes("B")).unwrap();
        r.applied_event_ids = vec!["not hex".into(); 3];
        r.applied_event_ids
            .extend((0..super::MAX_APPLIED_IDS).map(|i| format!("{i:016x}")));
        assert!(agree(&super::encode(&r)).unwrap());
    }
}
