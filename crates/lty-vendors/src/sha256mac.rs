//! HMAC-SHA256 for every signer that uses it (Volcengine OpenAPI and RTC
//! tokens, AWS SigV4, Tencent TC3), including the key chain of the
//! "SigV4 family": a secret HMAC'd through date, region, service and a
//! terminator, each vendor with its own prefix and terminator.

use hmac::digest::{Key, KeyInit};
use hmac::{Hmac, Mac};
use sha2::{Digest, Sha256};

/// HMAC-SHA256.
pub(crate) type HmacSha256 = Hmac<Sha256>;

/// An HMAC-SHA256 instance keyed with `key` (any length).
///
/// `Mac::new_from_slice` returns a `Result` although HMAC accepts every key
/// length; building the 64-byte key block here (RFC 2104: hash a key
/// longer than the block, zero-pad the rest) gives the identical MAC through
/// the infallible `KeyInit::new`, so no error path has to be invented.
pub(crate) fn keyed_mac(key: &[u8]) -> HmacSha256 {
    let mut block = Key::<HmacSha256>::default();
    if key.len() > block.len() {
        let digest = Sha256::digest(key);
        block[..digest.len()].copy_from_slice(&digest);
    } else {
        block[..key.len()].copy_from_slice(key);
    }
    <HmacSha256 as KeyInit>::new(&block)
}

/// `HMAC-SHA256(key, data)` as 32 raw bytes.
pub(crate) fn hmac_sha256(key: &[u8], data: &[u8]) -> [u8; 32] {
    keyed_mac(key)
        .chain_update(data)
        .finalize()
        .into_bytes()
        .into()
}

/// Lowercase hex of `HMAC-SHA256(key, data)`: the `Signature` of the SigV4
/// family.
pub(crate) fn hmac_sha256_hex(key: &[u8], data: &[u8]) -> String {
    hex::encode(hmac_sha256(key, data))
}

/// The derived signing key of the SigV4 family: `seed` HMAC'd through each
/// of `scope` in turn (e.g. date, region, service, terminator).
pub(crate) fn derive_key(seed: &[u8], scope: &[&[u8]]) -> [u8; 32] {
    let Some((first, rest)) = scope.split_first() else {
        return hmac_sha256(seed, b"");
    };
    rest.iter().fold(hmac_sha256(seed, first), |key, part| {
        hmac_sha256(&key, part)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hmac_matches_rfc_4231_test_case_2_and_accepts_long_keys() {
        assert_eq!(
            hmac_sha256_hex(b"Jefe", b"what do ya want for nothing?"),
            "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843"
        );
        // RFC 4231 test case 6: a 131-byte key is hashed first.
        let long = [0xaa_u8; 131];
        assert_eq!(
            hmac_sha256_hex(
                &long,
                b"Test Using Larger Than Block-Size Key - Hash Key First"
            ),
            "60e431591ee0b67f0d8a26aacbf5b77f8e0bc6213728c5140546040f0ee37f54"
        );
    }

    #[test]
    fn the_key_chain_hmacs_each_scope_part_in_turn() {
        let by_hand = hmac_sha256(&hmac_sha256(&hmac_sha256(b"k", b"a"), b"b"), b"c");
        assert_eq!(derive_key(b"k", &[b"a", b"b", b"c"]), by_hand);
    }
}
