//! Hash and HMAC primitives shared by the Aliyun signers, with the output
//! encodings each scheme expects (Base64 for V1 schemes, lowercase hex for ACS3).

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use hmac::{Hmac, Mac};
use md5::Md5;
use sha1::Sha1;
use sha2::{Digest, Sha256};

use super::SignError;

/// Base64 (standard alphabet, padded) of HMAC-SHA1: RPC V1, OSS V1 and SLS.
pub(crate) fn hmac_sha1_base64(key: &[u8], message: &[u8]) -> Result<String, SignError> {
    // HMAC hashes over-long keys and pads short ones: no length is refused.
    let mut mac = Hmac::<Sha1>::new_from_slice(key).map_err(|_| SignError::HmacKey)?;
    mac.update(message);
    Ok(STANDARD.encode(mac.finalize().into_bytes()))
}

/// Lowercase hex of HMAC-SHA256: ACS3.
pub(crate) fn hmac_sha256_hex(key: &[u8], message: &[u8]) -> Result<String, SignError> {
    Ok(crate::sha256mac::hmac_sha256_hex(key, message))
}

/// Lowercase hex SHA-256: ACS3 payload and canonical-request hashes.
pub(crate) fn sha256_hex(bytes: &[u8]) -> String {
    hex::encode(Sha256::digest(bytes))
}

/// Raw MD5 digest: OSS wants it Base64, SLS uppercase hex.
pub(crate) fn md5(bytes: &[u8]) -> [u8; 16] {
    Md5::digest(bytes).into()
}

/// Canonical header handling shared by ACS3, OSS and SLS: names must be
/// non-empty and, like values, free of control characters, since a CR or LF
/// would add a forged line to the string to sign.
pub(crate) fn check_header(name: &str, value: &str) -> Result<(), SignError> {
    let bad = |s: &str| s.chars().any(|c| c.is_control());
    if name.trim().is_empty() || bad(name) || bad(value) {
        return Err(SignError::InvalidHeader(name.to_owned()));
    }
    Ok(())
}
