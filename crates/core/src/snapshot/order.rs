//! The state of one order and what applying an event does to it (SPEC §3–§4).

use std::fmt;

use sha2::{Digest, Sha256};

use super::body::Body;
use super::packed::{pack_deliveries, unpack_deliveries, PackedSnapshot};
use super::types::OrderEvent;
use super::types::{Snapshot, Status};
use crate::dead_letter::Reason;
use crate::rules::{self, Mode, Violation};

/// Applied event ids remembered per order (as 8-byte fingerprints, oldest dropped first).
/// Beyond this, redelivery of a very old event is still caught by `seq` when producers send it.
pub const MAX_APPLIED_IDS: usize = 256;

/// Fields that are the same for every order of a deployment, filled in when a snapshot lacks them.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Deserialize, serde::Serialize)]
#[serde(deny_unknown_fields)]
pub struct Defaults {
    /// Service provider merchant id.
    pub sp_mchid: Option<String>,
    /// Service provider appid.
    pub sp_appid: Option<String>,
    /// Channel id.
    pub channel_id: Option<String>,
    /// Sub-merchant id.
    pub sub_mchid: Option<String>,
    /// Sub-merchant appid.
    pub sub_appid: Option<String>,
}

impl Defaults {
    fn fill(&self, s: &mut Snapshot) {
        let fill = |slot: &mut Option<Box<str>>, v: &Option<String>| {
            if slot.is_none() {
                *slot = v.as_deref().map(Into::into);
            }
        };
        // Never create a body of both variants: provider defaults only without a channel_id,
        // the channel default only without provider fields.
        if s.channel_id.is_none() {
            fill(&mut s.sp_mchid, &self.sp_mchid);
            fill(&mut s.sp_appid, &self.sp_appid);
        }
        if s.sp_mchid.is_none() && s.sp_appid.is_none() {
            fill(&mut s.channel_id, &self.channel_id);
        }
        fill(&mut s.sub_mchid, &self.sub_mchid);
        fill(&mut s.sub_appid, &self.sub_appid);
    }
}

/// Why an event was ignored (counted, not dead-lettered).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Ignored {
    /// Its `event_id` was already applied to this order.
    DuplicateEvent,
    /// Its `seq` is not greater than the last applied one.
    StaleSeq,
}

impl Ignored {
    /// Every reason: the metric's label set is derived from it.
    pub const ALL: [Self; 2] = {
        // A new variant fails to compile here until it is matched; list it in the array too
        // (a unit test checks that the labels are distinct).
        let _every_variant_listed = |i: Self| match i {
            Self::DuplicateEvent | Self::StaleSeq => (),
        };
        [Self::DuplicateEvent, Self::StaleSeq]
    };

    /// Metric label.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::DuplicateEvent => "duplicate_event",
            Self::StaleSeq => "stale_seq",
        }
    }
}

/// Why an event was rejected (dead-lettered; the state is unchanged).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Rejected {
    /// The merge would give a snapshot that breaks the API's rules.
    InvalidSnapshot(Vec<Violation>),
    /// The status would move backwards (or be removed).
    StatusRegression {
        /// Status before the event.
        from: Status,
        /// Status the event asked for (`None`: removed).
        to: Option<Status>,
    },
}

impl Rejected {
    /// The dead-letter reason.
    pub fn dead_letter_reason(&self) -> Reason {
        match self {
            Self::InvalidSnapshot(_) => Reason::InvalidSnapshot,
            Self::StatusRegression { .. } => Reason::StatusRegression,
        }
    }

    /// The dead-letter reason as written to `catering-sync.reason`.
    pub fn reason(&self) -> &'static str {
        self.dead_letter_reason().as_str()
    }

    /// Every violated rule with its field path, or the regression.
    pub fn detail(&self) -> String {
        match self {
            Self::InvalidSnapshot(v) => v
                .iter()
                .map(ToString::to_string)
                .collect::<Vec<_>>()
                .join("; "),
            Self::StatusRegression { from, to } => match to {
                Some(to) => format!("status: cannot move from {from} back to {to}"),
                None => format!("status: cannot remove status {from}"),
            },
        }
    }
}

/// The result of applying one event.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// The snapshot changed (or the event was recorded as applied); `post_due` when WeChat Pay
    /// has not acknowledged this exact body yet.
    Applied {
        /// A POST is due.
        post_due: bool,
    },
    /// Nothing changed.
    Ignored(Ignored),
    /// Dead-letter; nothing changed.
    Rejected(Rejected),
}

/// One order: its snapshot and what is needed to apply events exactly once and post in order.
///
/// The snapshot is kept packed in one allocation (every tracked order is in memory):
/// [`Self::snapshot`] decodes it, [`Self::set_snapshot`] replaces it, [`Self::status`] reads
/// its status alone. `Debug` shows it decoded, `login_token` redacted.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct OrderState {
    /// The merged order, packed.
    pub(super) snapshot: PackedSnapshot,
    /// Fingerprints of applied event ids, oldest first, at most [`MAX_APPLIED_IDS`].
    pub applied: Box<[u64]>,
    /// The greatest `seq` applied.
    pub last_seq: Option<u64>,
    /// SHA-256 of the last body WeChat Pay acknowledged with a verified 204.
    pub acked_digest: Option<[u8; 32]>,
    /// Unix ms when a `PAY_SUCCESS` body was acknowledged (tombstone retention clock).
    pub final_acked_at_ms: Option<u64>,
    /// When the order last changed (the non-final retention's clock); not in the record.
    pub changed_at: ChangedAt,
    /// The last acknowledged posts, for support (`order show`); carried in a changelog record
    /// header, not in the record, so readers of earlier releases restore the record unchanged.
    pub deliveries: Deliveries,
}

/// Acknowledged posts an order remembers (newest last, the oldest dropped first).
pub const MAX_DELIVERIES: usize = 4;

/// Bytes of a `Request-ID` an order remembers. WeChat Pay's are about 50 ASCII characters; the
/// header comes unsigned off the wire, so a longer one is cut rather than carried on every later
/// changelog record of the order, and anything but printable ASCII other than `"` and `\` (which
/// JSON would escape, up to six bytes each) is kept as `?`.
pub const MAX_REQUEST_ID_BYTES: usize = 64;

/// The most the deliveries header can take (four posts, each with the longest `Request-ID`
/// and the widest status and time): what a changelog record's size budget sets aside for it.
pub const MAX_DELIVERIES_HEADER_BYTES: usize = 1024;

/// One post WeChat Pay acknowledged with a verified 204.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Delivery {
    /// The status the acknowledged body reported.
    pub status: Status,
    /// When the verified 204 arrived, Unix ms.
    pub at_ms: u64,
    /// WeChat Pay's `Request-ID` of that answer.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub request_id: Option<Box<str>>,
}

/// The last [`MAX_DELIVERIES`] acknowledged posts of an order. Bookkeeping for support, not
/// what the order is: it never makes two states unequal (like [`ChangedAt`]). Kept packed in one
/// allocation (none while empty); [`Self::list`] gives the posts, oldest first.
#[derive(Clone, Default)]
pub struct Deliveries(Box<[u8]>);

impl fmt::Debug for Deliveries {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_tuple("Deliveries").field(&self.list()).finish()
    }
}

impl PartialEq for Deliveries {
    fn eq(&self, _: &Self) -> bool {
        true
    }
}

impl Eq for Deliveries {}

impl Delivery {
    /// One acknowledged post, its `Request-ID` cut to [`MAX_REQUEST_ID_BYTES`].
    pub fn new(status: Status, at_ms: u64, request_id: Option<&str>) -> Self {
        Self {
            status,
            at_ms,
            request_id: request_id.map(bounded),
        }
    }
}

/// A `Request-ID` as an order keeps it: its first [`MAX_REQUEST_ID_BYTES`] characters, each
/// printable ASCII other than `"` and `\\`, or `?`.
fn bounded(id: &str) -> Box<str> {
    id.chars()
        .take(MAX_REQUEST_ID_BYTES)
        .map(|c| match c {
            '"' | '\\' => '?',
            c if c.is_ascii_graphic() || c == ' ' => c,
            _ => '?',
        })
        .collect()
}

impl Deliveries {
    /// The remembered posts, oldest first.
    pub fn list(&self) -> Vec<Delivery> {
        unpack_deliveries(&self.0)
    }

    /// No post is remembered.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// Remember one more, dropping the oldest beyond [`MAX_DELIVERIES`].
    pub fn push(&mut self, d: Delivery) {
        let mut list = self.list();
        if list.len() >= MAX_DELIVERIES {
            list.remove(0);
        }
        list.push(d);
        self.0 = pack_deliveries(&list);
    }

    /// The changelog header value (a JSON array), or `None` when there is nothing to carry (or,
    /// which cannot happen for these types, it could not be written: no header rather than an
    /// empty one).
    pub fn header_value(&self) -> Option<Vec<u8>> {
        if self.0.is_empty() {
            return None;
        }
        serde_json::to_vec(&self.list()).ok()
    }

    /// Read a header value back; anything unreadable is no history (it is never what the order
    /// is, so it never fails a restore).
    pub fn from_header(value: &[u8]) -> Self {
        let mut list: Vec<Delivery> = serde_json::from_slice(value).unwrap_or_default();
        let skip = list.len().saturating_sub(MAX_DELIVERIES);
        list.drain(..skip);
        for d in &mut list {
            d.request_id = d.request_id.as_deref().map(bounded);
        }
        Self(pack_deliveries(&list))
    }
}

/// When an order last changed, Unix ms: the timestamp of its latest changelog record when it is
/// restored (every change writes one), the time an event was last applied to it after that. Only
/// the retention sweep reads it; it is bookkeeping, not what the order is, so it never makes two
/// states unequal.
#[derive(Debug, Clone, Copy, Default)]
pub struct ChangedAt(pub u64);

impl PartialEq for ChangedAt {
    fn eq(&self, _: &Self) -> bool {
        true
    }
}

impl Eq for ChangedAt {}

/// First 8 bytes of SHA-256 of the event id.
pub fn fingerprint(event_id: &str) -> u64 {
    let d = Sha256::digest(event_id.as_bytes());
    u64::from_be_bytes([d[0], d[1], d[2], d[3], d[4], d[5], d[6], d[7]])
}

impl OrderState {
    /// The merged order (decoded from its packed form: a copy, changed with
    /// [`Self::set_snapshot`]).
    pub fn snapshot(&self) -> Snapshot {
        self.snapshot.get()
    }

    /// Replace the merged order (no rule is checked: [`Self::apply`] is how events change it).
    pub fn set_snapshot(&mut self, snapshot: &Snapshot) {
        self.snapshot = PackedSnapshot::new(snapshot);
    }

    /// The snapshot's status, read without decoding the rest of it.
    pub fn status(&self) -> Option<Status> {
        self.snapshot.status()
    }

    /// The snapshot's `sp_mchid` and `channel_id` (what names the signing merchant), read
    /// without decoding the rest.
    pub fn merchant_ids(&self) -> (Option<&str>, Option<&str>) {
        use super::packed::{CHANNEL_ID_INDEX, SP_MCHID_INDEX};
        (
            self.snapshot.text(SP_MCHID_INDEX),
            self.snapshot.text(CHANNEL_ID_INDEX),
        )
    }

    /// Apply one event (which must belong to this order). The state changes only when the
    /// outcome is [`Outcome::Applied`].
    pub fn apply(&mut self, event: &OrderEvent, defaults: &Defaults) -> Outcome {
        self.apply_keeping_body(event, defaults).0
    }

    /// [`Self::apply`], also giving the new snapshot's body when the event was applied and the
    /// snapshot has a status (what [`Self::body`] would give now, without serialising it again).
    pub fn apply_keeping_body(
        &mut self,
        event: &OrderEvent,
        defaults: &Defaults,
    ) -> (Outcome, Option<Body>) {
        let fp = fingerprint(&event.event_id);
        if self.applied.contains(&fp) {
            return (Outcome::Ignored(Ignored::DuplicateEvent), None);
        }
        if let (Some(seq), Some(last)) = (event.seq, self.last_seq) {
            if seq <= last {
                return (Outcome::Ignored(Ignored::StaleSeq), None);
            }
        }
        let next = match merged(self.snapshot(), event, defaults) {
            Ok(s) => s,
            Err(r) => return (Outcome::Rejected(r), None),
        };
        // Whether a post is due, from the snapshot at hand (what `post_due` would decode).
        let body = next.status.and_then(|_| Body::of(&next));
        let post_due = body.as_ref().is_some_and(|b| !self.is_acked(b));
        self.snapshot = PackedSnapshot::new(&next);
        // One exact-size allocation per applied event (the oldest dropped when full).
        let keep = &self.applied[usize::from(self.applied.len() >= MAX_APPLIED_IDS)..];
        let mut applied = Vec::with_capacity(keep.len() + 1);
        applied.extend_from_slice(keep);
        applied.push(fp);
        self.applied = applied.into_boxed_slice();
        self.last_seq = event.seq.max(self.last_seq);
        (Outcome::Applied { post_due }, body)
    }

    /// The request body, for a snapshot with a status (always valid once applied): what
    /// [`Body::of`] gives for [`Self::snapshot`], serialised from the packed form.
    pub fn body(&self) -> Option<Body> {
        let status = self.status()?;
        // Serialising plain data to a Vec cannot fail.
        let bytes = serde_json::to_vec(&self.snapshot).ok()?;
        Some(Body::from_json(bytes, status))
    }

    /// A post is due: the snapshot has a status and its body differs from the acknowledged one.
    pub fn post_due(&self) -> bool {
        self.body().is_some_and(|b| !self.is_acked(&b))
    }

    /// WeChat Pay acknowledged exactly this body already.
    pub fn is_acked(&self, body: &Body) -> bool {
        self.acked_digest == Some(body.digest)
    }

    /// WeChat Pay acknowledged `body` (verified 204) at `now_ms`.
    pub fn mark_acked(&mut self, body: &Body, now_ms: u64) {
        self.acked_digest = Some(body.digest);
        if body.status == Status::PaySuccess && self.final_acked_at_ms.is_none() {
            self.final_acked_at_ms = Some(now_ms);
        }
    }
}

/// The snapshot `event` would make of `current` (the order's snapshot, a decoded copy merged
/// in place), or why it may not.
fn merged(
    current: Snapshot,
    event: &OrderEvent,
    defaults: &Defaults,
) -> Result<Snapshot, Rejected> {
    let from = current.status;
    let mut next = current;
    next.merge(&event.patch);
    next.out_order_no = Some(event.out_order_no.as_str().into());
    defaults.fill(&mut next);
    if let Some(from) = from {
        if next.status.is_none_or(|to| to < from) {
            return Err(Rejected::StatusRegression {
                from,
                to: next.status,
            });
        }
    }
    let status_set = matches!(event.patch.status, Some(Some(_)));
    let action_time_set = matches!(event.patch.action_time, Some(Some(_)));
    if status_set && next.status != from && !action_time_set {
        next.action_time = Some(event.occurred_at.as_str().into());
    }
    let violations = validate(&next);
    if violations.is_empty() {
        Ok(next)
    } else {
        Err(Rejected::InvalidSnapshot(violations))
    }
}

/// Every violation of the snapshot: the full rules once it has a status, field rules for a draft.
/// The common case, a valid snapshot, is told on the typed form (`valid`); only an invalid one
/// is serialised to a `serde_json::Value` for the rules to list what is wrong.
pub fn validate(s: &Snapshot) -> Vec<Violation> {
    if super::valid::is_valid(s) {
        return Vec::new();
    }
    let mode = if s.status.is_some() {
        Mode::Full
    } else {
        Mode::FieldsOnly
    };
    match serde_json::to_value(s) {
        Ok(v) => rules::validate(&v, mode),
        Err(e) => vec![Violation {
            path: String::new(),
            rule: rules::Rule::Type,
            message: format!("cannot serialise: {e}"),
        }],
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::event::{decode, DecodeLimits};
    use crate::fixtures::order_events;

    /// Fixture order `i` after both its events, each body acknowledged and remembered.
    fn tracked(i: usize, dishes: usize) -> OrderState {
        let mut state = OrderState::default();
        for value in order_events(i, dishes) {
            let event = decode(&value, &DecodeLimits::default()).unwrap();
            assert!(matches!(
                state.apply(&event, &Defaults::default()),
                Outcome::Applied { post_due: true }
            ));
            let body = state.body().unwrap();
            state.mark_acked(&body, 7);
            state
                .deliveries
                .push(Delivery::new(body.status, 7, Some("08-0")));
        }
        state
    }

    #[test]
    fn the_packed_snapshot_reads_back_and_is_replaced_whole() {
        let mut state = tracked(3, 5);
        let s = state.snapshot();
        assert_eq!(s.status, Some(Status::PaySuccess));
        assert_eq!(state.status(), s.status);
        assert_eq!(s.dish_list.as_ref().map(|d| d.len()), Some(5));
        assert_eq!(
            state.body(),
            Body::of(&s),
            "the body is the decoded snapshot's"
        );
        let mut changed = s.clone();
        changed.out_table_no = Some("B7".into());
        changed.status = None;
        state.set_snapshot(&changed);
        assert_eq!(state.snapshot(), changed);
        assert_eq!((state.status(), state.body()), (None, None));
        state.set_snapshot(&Snapshot::default());
        assert_eq!(state.snapshot(), Snapshot::default());
        assert_eq!(state.snapshot, PackedSnapshot::default());
    }

    #[test]
    fn equality_is_the_snapshot_s_and_clones_are_equal() {
        let (a, b) = (tracked(1, 5), tracked(2, 5));
        assert_eq!(a.clone(), a);
        assert_ne!(a, b);
        let mut c = b.clone();
        c.set_snapshot(&a.snapshot());
        assert_ne!(c, a, "the rest of the state still differs");
        c.applied = a.applied.clone();
        c.acked_digest = a.acked_digest;
        assert_eq!(c, a);
        assert_eq!(OrderState::default(), OrderState::default());
    }

    #[test]
    fn debug_shows_the_decoded_snapshot_and_history_but_never_the_login_token() {
        let state = tracked(4, 2);
        let token = state.snapshot().login_token.unwrap().0;
        let shown = format!("{state:?}");
        assert!(!shown.contains(&*token), "{shown}");
        assert!(shown.contains("Secret(redacted)"), "{shown}");
        assert!(
            shown.contains("out_order_no: Some(\"202611271200000004\")"),
            "{shown}"
        );
        assert!(
            shown.contains("Deliveries([Delivery { status: CreateDeal"),
            "{shown}"
        );
    }

    #[test]
    fn deliveries_keep_the_last_four_oldest_first() {
        let mut d = Deliveries::default();
        assert!(d.is_empty() && d.list().is_empty());
        for i in 0..7u64 {
            d.push(Delivery::new(
                Status::CreateDeal,
                i,
                (i % 2 == 0).then_some("R"),
            ));
        }
        let at: Vec<u64> = d.list().iter().map(|x| x.at_ms).collect();
        assert_eq!(at, [3, 4, 5, 6]);
        assert_eq!(d.list()[1].request_id.as_deref(), Some("R"));
        assert_eq!(d.list()[0].request_id, None);
        assert_eq!(
            String::from_utf8(d.header_value().unwrap()).unwrap(),
            r#"[{"status":"CREATE_DEAL","at_ms":3},{"status":"CREATE_DEAL","at_ms":4,"request_id":"R"},{"status":"CREATE_DEAL","at_ms":5},{"status":"CREATE_DEAL","at_ms":6,"request_id":"R"}]"#,
            "the header's JSON is unchanged"
        );
    }

    #[test]
    fn the_applied_ids_stay_bounded_and_exact() {
        let mut state = OrderState::default();
        for i in 0..MAX_APPLIED_IDS + 3 {
            let event = OrderEvent {
                event_id: format!("e{i}"),
                out_order_no: "O-1".into(),
                occurred_at: "2026-11-27T12:30:00+08:00".into(),
                seq: None,
                patch: Default::default(),
            };
            assert!(matches!(
                state.apply(&event, &Defaults::default()),
                Outcome::Applied { post_due: false }
            ));
        }
        assert_eq!(state.applied.len(), MAX_APPLIED_IDS);
        assert_eq!(
            state.applied[0],
            fingerprint("e3"),
            "the oldest dropped first"
        );
        assert_eq!(
            state.applied.last(),
            Some(&fingerprint(&format!("e{}", MAX_APPLIED_IDS + 2)))
        );
    }
}
