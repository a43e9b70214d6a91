//! Dead-letter reasons and header names (SPEC §7, §8): the vocabulary every dead letter is
//! written and read with. The record itself is built by the service (`catering_sync::dead_letter`).

/// Dead-letter reasons (SPEC §7).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Reason {
    /// Value not a UTF-8 JSON object, or too large.
    Malformed,
    /// Breaks the event contract (including a missing record key).
    InvalidEvent,
    /// The merge would give an invalid snapshot.
    InvalidSnapshot,
    /// The status would move backwards.
    StatusRegression,
    /// WeChat Pay refused the request (a body-level 400 or another 4xx about this body).
    Rejected,
    /// Transient failures past the retry budget while WeChat Pay otherwise worked.
    RetriesExhausted,
    /// Several merchants are configured and none is the one the order names (its `sp_mchid`, or
    /// its `channel_id` through `channel_ids`): replay it once the merchant is configured.
    UnknownMerchant,
}

impl Reason {
    /// Every reason, for metrics.
    pub const ALL: [Reason; 7] = [
        Reason::Malformed,
        Reason::InvalidEvent,
        Reason::InvalidSnapshot,
        Reason::StatusRegression,
        Reason::Rejected,
        Reason::RetriesExhausted,
        Reason::UnknownMerchant,
    ];

    /// The header value.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Malformed => "malformed",
            Self::InvalidEvent => "invalid_event",
            Self::InvalidSnapshot => "invalid_snapshot",
            Self::StatusRegression => "status_regression",
            Self::Rejected => "rejected",
            Self::RetriesExhausted => "retries_exhausted",
            Self::UnknownMerchant => "unknown_merchant",
        }
    }

    /// Parse a header value.
    pub fn parse(s: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|r| r.as_str() == s)
    }
}

/// Header names.
pub mod header {
    /// Reason.
    pub const REASON: &str = "catering-sync.reason";
    /// Human-readable detail.
    pub const ERROR: &str = "catering-sync.error";
    /// `topic/partition/offset`.
    pub const SOURCE: &str = "catering-sync.source";
    /// Consumer group.
    pub const GROUP: &str = "catering-sync.group";
    /// POST attempts.
    pub const ATTEMPTS: &str = "catering-sync.attempts";
    /// RFC 3339.
    pub const FAILED_AT: &str = "catering-sync.failed-at";
    /// HTTP status.
    pub const HTTP_STATUS: &str = "catering-sync.http-status";
    /// WeChat Pay's code.
    pub const WECHATPAY_CODE: &str = "catering-sync.wechatpay-code";
    /// WeChat Pay's message.
    pub const WECHATPAY_MESSAGE: &str = "catering-sync.wechatpay-message";
    /// WeChat Pay's request id.
    pub const REQUEST_ID: &str = "catering-sync.request-id";
    /// Set by `dlq replay` on the re-published record: the dead letter's own coordinates.
    pub const REPLAYED_FROM: &str = "catering-sync.replayed-from";
    /// Set when the original value could not fit the dead-letter topic and the value is a
    /// prefix: `bytes=<original size>; sha256=<hex of the whole original value>; kept=<prefix size>`.
    pub const TRUNCATED: &str = "catering-sync.truncated";
}

impl From<crate::event::DecodeReason> for Reason {
    fn from(r: crate::event::DecodeReason) -> Self {
        match r {
            crate::event::DecodeReason::Malformed => Reason::Malformed,
            crate::event::DecodeReason::InvalidEvent => Reason::InvalidEvent,
        }
    }
}
