//! Dead letters (SPEC §8): the original key, value and headers byte for byte, plus
//! `catering-sync.*` headers saying why, where from, and what WeChat Pay answered.

use time::format_description::well_known::Rfc3339;
use time::OffsetDateTime;

use crate::wechatpay::Rejection;

pub use catering_sync_core::dead_letter::{header, Reason};

/// Where the original record came from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Source {
    /// Topic.
    pub topic: String,
    /// Partition.
    pub partition: i32,
    /// Offset.
    pub offset: i64,
}

/// A dead letter, ready to produce.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeadLetter {
    /// The original key.
    pub key: Option<Vec<u8>>,
    /// The original value.
    pub value: Option<Vec<u8>>,
    /// The original headers followed by the `catering-sync.*` ones.
    pub headers: Vec<(String, Vec<u8>)>,
    /// Why.
    pub reason: Reason,
}

/// What went wrong, for the headers.
#[derive(Debug, Clone)]
pub struct Failure<'a> {
    /// The reason.
    pub reason: Reason,
    /// Every violated rule with its path, or the transport/API detail. Never secrets.
    pub detail: String,
    /// POST attempts made.
    pub attempts: u32,
    /// WeChat Pay's answer, when there was one.
    pub answer: Option<&'a Rejection>,
}

/// Headers of a record can carry arbitrary bytes; the detail is capped to keep records small.
const MAX_DETAIL_BYTES: usize = 8 * 1024;

fn cap(s: &str) -> &str {
    if s.len() <= MAX_DETAIL_BYTES {
        return s;
    }
    let mut end = MAX_DETAIL_BYTES;
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    &s[..end]
}

/// Build the dead letter of an original record.
pub fn build(
    key: Option<&[u8]>,
    value: Option<&[u8]>,
    original_headers: &[(String, Vec<u8>)],
    source: &Source,
    group: &str,
    failure: &Failure<'_>,
    now: OffsetDateTime,
) -> DeadLetter {
    let mut headers = original_headers.to_vec();
    let mut add = |k: &str, v: String| headers.push((k.to_string(), v.into_bytes()));
    add(header::REASON, failure.reason.as_str().to_string());
    add(header::ERROR, cap(&failure.detail).to_string());
    add(
        header::SOURCE,
        format!("{}/{}/{}", source.topic, source.partition, source.offset),
    );
    add(header::GROUP, group.to_string());
    add(header::ATTEMPTS, failure.attempts.to_string());
    add(header::FAILED_AT, now.format(&Rfc3339).unwrap_or_default());
    if let Some(a) = failure.answer {
        add(header::HTTP_STATUS, a.status.to_string());
        if let Some(e) = &a.error {
            add(header::WECHATPAY_CODE, e.code.clone());
            add(header::WECHATPAY_MESSAGE, cap(&e.message).to_string());
        }
        if let Some(id) = &a.request_id {
            add(header::REQUEST_ID, id.clone());
        }
    }
    DeadLetter {
        key: key.map(<[u8]>::to_vec),
        value: value.map(<[u8]>::to_vec),
        headers,
        reason: failure.reason,
    }
}

impl DeadLetter {
    /// Bytes of the record on the wire, roughly: key, value and headers.
    pub fn size(&self) -> usize {
        self.key.as_ref().map_or(0, Vec::len)
            + self.value.as_ref().map_or(0, Vec::len)
            + self
                .headers
                .iter()
                .map(|(k, v)| k.len() + v.len() + 8)
                .sum::<usize>()
    }

    /// A copy whose value is cut to its first `keep` bytes, with the `catering-sync.truncated`
    /// header giving the original size and the SHA-256 of the whole original value (the source
    /// coordinates are already in `catering-sync.source`). Headers longer than `keep` (the
    /// error detail of a huge invalid event) are cut too.
    pub fn truncated(&self, keep: usize) -> DeadLetter {
        use sha2::Digest;
        let value = self.value.as_deref().unwrap_or_default();
        let kept = value.len().min(keep);
        let note = format!(
            "bytes={}; sha256={}; kept={kept}",
            value.len(),
            crate::snapshot::body::hex(&sha2::Sha256::digest(value))
        );
        let mut headers: Vec<(String, Vec<u8>)> = self
            .headers
            .iter()
            .map(|(k, v)| (k.clone(), v[..v.len().min(keep)].to_vec()))
            .collect();
        headers.push((header::TRUNCATED.to_string(), note.into_bytes()));
        DeadLetter {
            key: self.key.clone(),
            value: self.value.as_ref().map(|v| v[..kept].to_vec()),
            headers,
            reason: self.reason,
        }
    }
}

/// The value of header `name` (the last one, as Kafka clients read it).
pub fn header_value<'a>(headers: &'a [(String, Vec<u8>)], name: &str) -> Option<&'a str> {
    headers
        .iter()
        .rev()
        .find(|(k, _)| k == name)
        .and_then(|(_, v)| std::str::from_utf8(v).ok())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::wechatpay::ApiError;

    #[test]
    fn keeps_the_original_bytes_and_adds_every_documented_header() {
        let original = vec![("traceparent".to_string(), b"00-abc".to_vec())];
        let answer = Rejection {
            status: 400,
            error: Some(ApiError {
                code: "PARAM_ERROR".into(),
                message: "dish_list[0].name: bad".into(),
                detail: None,
            }),
            request_id: Some("08ABC".into()),
        };
        let failure = Failure {
            reason: Reason::Rejected,
            detail: "x".repeat(20_000),
            attempts: 1,
            answer: Some(&answer),
        };
        let source = Source {
            topic: "in".into(),
            partition: 3,
            offset: 42,
        };
        let now = OffsetDateTime::from_unix_timestamp(1_764_218_096).unwrap();
        let dl = build(
            Some(b"K"),
            Some(b"\xff not json"),
            &original,
            &source,
            "g",
            &failure,
            now,
        );
        assert_eq!(
            (dl.key.as_deref(), dl.value.as_deref()),
            (Some(&b"K"[..]), Some(&b"\xff not json"[..]))
        );
        assert_eq!(
            dl.headers[0], original[0],
            "original headers first, unchanged"
        );
        let h = |n| header_value(&dl.headers, n).unwrap().to_string();
        assert_eq!(h(header::REASON), "rejected");
        assert_eq!(h(header::SOURCE), "in/3/42");
        assert_eq!(h(header::GROUP), "g");
        assert_eq!(h(header::ATTEMPTS), "1");
        assert_eq!(h(header::FAILED_AT), "2025-11-27T04:34:56Z");
        assert_eq!(h(header::HTTP_STATUS), "400");
        assert_eq!(h(header::WECHATPAY_CODE), "PARAM_ERROR");
        assert_eq!(h(header::WECHATPAY_MESSAGE), "dish_list[0].name: bad");
        assert_eq!(h(header::REQUEST_ID), "08ABC");
        assert_eq!(h(header::ERROR).len(), MAX_DETAIL_BYTES);
        assert!(Reason::ALL
            .iter()
            .all(|r| Reason::parse(r.as_str()) == Some(*r)));
    }
}
