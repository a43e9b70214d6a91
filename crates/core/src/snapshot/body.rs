//! The request body: a deterministic serialisation of a valid snapshot, its digest, and the
//! coalescing decision of SPEC §4.

use bytes::Bytes;
use sha2::{Digest, Sha256};

use super::types::{Snapshot, Status};

/// The exact bytes to sign and send, with their SHA-256.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Body {
    /// Serialised JSON: fields in the API's documented order, no nulls, integer fen, `count`
    /// with at most two decimals.
    pub bytes: Bytes,
    /// SHA-256 of `bytes`.
    pub digest: [u8; 32],
    /// The status it reports.
    pub status: Status,
}

impl Body {
    /// The body of a snapshot with a status (`None` for a draft).
    pub fn of(snapshot: &Snapshot) -> Option<Self> {
        let status = snapshot.status?;
        // Serialising plain data to a Vec cannot fail.
        Some(Self::from_json(serde_json::to_vec(snapshot).ok()?, status))
    }

    /// The body of serialised snapshot `bytes` reporting `status`.
    pub(super) fn from_json(bytes: Vec<u8>, status: Status) -> Self {
        let digest = Sha256::digest(&bytes).into();
        Self {
            bytes: Bytes::from(bytes),
            digest,
            status,
        }
    }

    /// Lower-case hex of the digest.
    pub fn digest_hex(&self) -> String {
        hex(&self.digest)
    }
}

/// Lower-case hex (one allocation: it runs for every changelog write).
pub fn hex(bytes: &[u8]) -> String {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    let mut out = String::with_capacity(2 * bytes.len());
    for b in bytes {
        out.push(DIGITS[usize::from(b >> 4)] as char);
        out.push(DIGITS[usize::from(b & 0x0f)] as char);
    }
    out
}

/// SPEC §4: a pending post of an order may be skipped in favour of a newer snapshot only when
/// both report the same status, so every status an order reaches is reported, in order.
pub fn may_coalesce(pending: Status, newer: Status) -> bool {
    pending == newer
}

#[cfg(test)]
mod hex_tests {
    #[test]
    fn hex_is_lower_case_two_digits_per_byte() {
        assert_eq!(super::hex(&[0x00, 0x0f, 0xa0, 0xff]), "000fa0ff");
        assert_eq!(super::hex(&[]), "");
    }
}
