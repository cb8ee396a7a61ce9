//! Volcengine (火山引擎): RTC AccessToken, OpenAPI request signing and
//! client, the voice agent's actions and the callbacks it sends.

pub mod callback;
pub mod openapi;
pub mod rtc_token;
pub mod speech;
pub mod voice_chat;

use hmac::digest::{Key, KeyInit};
use hmac::{Hmac, Mac};
use sha2::{Digest, Sha256};

/// HMAC-SHA256 as used by every Volcengine signature.
type HmacSha256 = Hmac<Sha256>;

/// An HMAC-SHA256 instance keyed with `key` (any length).
///
/// `Mac::new_from_slice` returns a `Result` although HMAC accepts every key
/// length; building the 64-byte key block ourselves (RFC 2104: hash a key
/// longer than the block, zero-pad the rest) gives the identical MAC through
/// the infallible `KeyInit::new`, so no error path has to be invented.
fn keyed_mac(key: &[u8]) -> HmacSha256 {
    let mut block = Key::<HmacSha256>::default();
    if key.len() > block.len() {
        let digest = Sha256::digest(key);
        block[..digest.len()].copy_from_slice(&digest);
    } else {
        block[..key.len()].copy_from_slice(key);
    }
    <HmacSha256 as KeyInit>::new(&block)
}

/// `HMAC-SHA256(key, data)` as 32 raw bytes (also used by [`crate::aws`]).
pub(crate) fn hmac_sha256(key: &[u8], data: &[u8]) -> [u8; 32] {
    keyed_mac(key)
        .chain_update(data)
        .finalize()
        .into_bytes()
        .into()
}
