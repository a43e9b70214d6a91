//! PEM text → label and DER bytes, as the key and certificate files of WeChat Pay come
//! (`apiclient_key.pem`, `pub_key.pem`, platform certificates): pure parsing, shared by the
//! service's key loading and the sandbox's.

/// A PEM document that cannot be decoded.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct PemError(pub String);

/// Decode the first PEM block of `text`, tolerating text before it (e.g. openssl bag attributes)
/// and CRLF line ends.
pub fn decode_first(text: &str) -> Result<(String, Vec<u8>), PemError> {
    let start = text
        .find("-----BEGIN ")
        .ok_or_else(|| PemError("no -----BEGIN line".into()))?;
    let rest = &text[start..];
    let label_end = rest[11..]
        .find("-----")
        .ok_or_else(|| PemError("unterminated BEGIN line".into()))?;
    let label = &rest[11..11 + label_end];
    let end_marker = format!("-----END {label}-----");
    let end = rest
        .find(&end_marker)
        .ok_or_else(|| PemError(format!("no END line for {label}")))?;
    let block = rest[..end + end_marker.len()].replace("\r\n", "\n");
    let (label, der) =
        pem_rfc7468::decode_vec(block.as_bytes()).map_err(|e| PemError(e.to_string()))?;
    Ok((label.to_string(), der))
}

/// Upper-case hex, as WeChat Pay writes certificate serials.
pub fn hex_upper(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02X}")).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn decodes_after_leading_text_and_with_crlf() {
        let text = "Bag Attributes\r\n-----BEGIN TEST-----\r\nAAEC\r\n-----END TEST-----\r\n";
        assert_eq!(decode_first(text), Ok(("TEST".to_string(), vec![0, 1, 2])));
        assert!(decode_first("no pem here").is_err());
        assert!(decode_first("-----BEGIN X-----\nAAEC\n").is_err());
        assert_eq!(hex_upper(&[0x0a, 0xff]), "0AFF");
    }
}
