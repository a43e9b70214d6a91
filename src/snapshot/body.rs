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
        let bytes = serde_json::to_vec(snapshot).ok()?;
        let digest = Sha256::digest(&bytes).into();
        Some(Self {
            bytes: Bytes::from(bytes),
            digest,
            status,
        })
    }

    /// Lower-case hex of the digest.
    pub fn digest_hex(&self) -> String {
        hex(&self.digest)
    }
}

/// Lower-case hex.
pub fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// SPEC §4: a pending post of an order may be skipped in favour of a newer snapshot only when
/// both report the same status, so every status an order reaches is reported, in order.
pub fn may_coalesce(pending: Status, newer: Status) -> bool {
    pending == newer
}
