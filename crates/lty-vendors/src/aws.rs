//! Amazon S3 request signing (AWS Signature Version 4), for S3-compatible
//! object stores (AWS S3, MinIO, Cloudflare R2, …): the query-presigned GET
//! URLs lty hands to devices, and the steps a verifier needs to recompute a
//! signed request.
//!
//! SigV4 builds the same `CanonicalRequest` as Volcengine's OpenAPI
//! signature, so those steps are re-exported from
//! [`volcengine::openapi`](crate::volcengine::openapi). SigV4 differs in
//! the algorithm name, the `aws4_request` scope terminator and the `AWS4`
//! prefix of the secret in the signing key.

pub use crate::volcengine::openapi::{
    canonical_headers, canonical_query_string, canonical_request, canonical_uri,
    format_x_date as format_amz_date, hex_encode_hash, short_date, uri_encode,
};

use crate::sha256mac::{derive_key, hmac_sha256_hex};

/// The signing algorithm, in `X-Amz-Algorithm` and `Authorization`.
pub const ALGORITHM: &str = "AWS4-HMAC-SHA256";
/// Service name of S3 in the credential scope.
pub const S3_SERVICE: &str = "s3";
/// Payload hash of a presigned URL (the body is not known when signing).
pub const UNSIGNED_PAYLOAD: &str = "UNSIGNED-PAYLOAD";
/// Longest validity S3 accepts for a presigned URL: seven days.
pub const MAX_PRESIGN_EXPIRY_SECS: u64 = 604_800;

/// An access key pair.
#[derive(Clone, Copy)]
pub struct Credentials<'a> {
    /// `AccessKeyId`.
    pub access_key_id: &'a str,
    /// `SecretAccessKey`.
    pub secret_access_key: &'a str,
}

impl std::fmt::Debug for Credentials<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Credentials")
            .field("access_key_id", &self.access_key_id)
            .finish_non_exhaustive()
    }
}

/// `CredentialScope`: `YYYYMMDD/region/service/aws4_request`.
pub fn credential_scope(short_date: &str, region: &str, service: &str) -> String {
    format!("{short_date}/{region}/{service}/aws4_request")
}

/// `StringToSign`: algorithm, `X-Amz-Date`, scope and the hex SHA-256 of
/// the canonical request.
pub fn string_to_sign(amz_date: &str, credential_scope: &str, canonical_request: &str) -> String {
    format!(
        "{ALGORITHM}\n{amz_date}\n{credential_scope}\n{}",
        hex_encode_hash(canonical_request.as_bytes())
    )
}

/// The signing key: `"AWS4" + secret` chained through date, region,
/// service and `"aws4_request"`.
pub fn signing_key(
    secret_access_key: &str,
    short_date: &str,
    region: &str,
    service: &str,
) -> [u8; 32] {
    derive_key(
        format!("AWS4{secret_access_key}").as_bytes(),
        &[
            short_date.as_bytes(),
            region.as_bytes(),
            service.as_bytes(),
            b"aws4_request",
        ],
    )
}

/// `Signature`: lowercase hex `HMAC-SHA256(signing key, StringToSign)`.
pub fn signature(signing_key: &[u8; 32], string_to_sign: &str) -> String {
    hmac_sha256_hex(signing_key, string_to_sign.as_bytes())
}

/// `Authorization` header value of a header-signed request.
pub fn authorization(
    access_key_id: &str,
    credential_scope: &str,
    signed_headers: &str,
    signature: &str,
) -> String {
    format!(
        "{ALGORITHM} Credential={access_key_id}/{credential_scope}, SignedHeaders={signed_headers}, Signature={signature}"
    )
}

/// A request to presign: only `host` is signed, the payload is unsigned.
#[derive(Debug, Clone, Copy)]
pub struct PresignRequest<'a> {
    /// HTTP method, normally `GET`.
    pub method: &'a str,
    /// The `Host` the URL points at, with `:port` unless it is the scheme's
    /// default.
    pub host: &'a str,
    /// Decoded URL path: `/{key}` on a virtual-hosted bucket,
    /// `/{bucket}/{key}` path-style.
    pub path: &'a str,
    /// Seconds the URL stays valid (`X-Amz-Expires`), clamped to
    /// 1..=[`MAX_PRESIGN_EXPIRY_SECS`].
    pub expires_secs: u64,
}

/// A presigned request and its intermediate values.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Presigned {
    /// The canonical path to put in the URL.
    pub path: String,
    /// The query string to send: the signed `X-Amz-*` parameters plus
    /// `X-Amz-Signature`.
    pub query: String,
    /// `CanonicalRequest` that was hashed.
    pub canonical_request: String,
    /// `StringToSign` that was signed.
    pub string_to_sign: String,
    /// `X-Amz-Signature`.
    pub signature: String,
}

/// Presigns `request` for `region`/`service` as of `timestamp` (Unix
/// seconds, UTC): the SigV4 query-string form, `X-Amz-SignedHeaders=host`.
pub fn presign(
    request: &PresignRequest<'_>,
    credentials: &Credentials<'_>,
    region: &str,
    service: &str,
    timestamp: u64,
) -> Presigned {
    let amz_date = format_amz_date(timestamp);
    let date = short_date(&amz_date);
    let scope = credential_scope(date, region, service);
    let credential = format!("{}/{scope}", credentials.access_key_id);
    let expires = request
        .expires_secs
        .clamp(1, MAX_PRESIGN_EXPIRY_SECS)
        .to_string();
    let query = canonical_query_string(&[
        ("X-Amz-Algorithm", ALGORITHM),
        ("X-Amz-Credential", &credential),
        ("X-Amz-Date", &amz_date),
        ("X-Amz-Expires", &expires),
        ("X-Amz-SignedHeaders", "host"),
    ]);
    let (headers, signed_headers) = canonical_headers(&[("host", request.host)]);
    let path = canonical_uri(request.path);
    let canonical_request = canonical_request(
        request.method,
        &path,
        &query,
        &headers,
        &signed_headers,
        UNSIGNED_PAYLOAD,
    );
    let string_to_sign = string_to_sign(&amz_date, &scope, &canonical_request);
    let key = signing_key(credentials.secret_access_key, date, region, service);
    let signature = signature(&key, &string_to_sign);
    Presigned {
        query: format!("{query}&X-Amz-Signature={signature}"),
        path,
        canonical_request,
        string_to_sign,
        signature,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    // The presigned-URL example of the S3 API reference
    // ("Authenticating Requests: Using Query Parameters").
    const CREDENTIALS: Credentials<'static> = Credentials {
        access_key_id: "AKIAIOSFODNN7EXAMPLE",
        secret_access_key: "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY",
    };
    const NOW: u64 = 1_369_353_600; // 2013-05-24T00:00:00Z

    fn example(expires_secs: u64) -> Presigned {
        let request = PresignRequest {
            method: "GET",
            host: "examplebucket.s3.amazonaws.com",
            path: "/test.txt",
            expires_secs,
        };
        presign(&request, &CREDENTIALS, "us-east-1", S3_SERVICE, NOW)
    }

    #[test]
    fn the_documented_presigned_url_example_matches_every_step() {
        let signed = example(86_400);
        assert_eq!(format_amz_date(NOW), "20130524T000000Z");
        assert_eq!(
            signed.canonical_request,
            "GET\n/test.txt\n\
             X-Amz-Algorithm=AWS4-HMAC-SHA256&\
             X-Amz-Credential=AKIAIOSFODNN7EXAMPLE%2F20130524%2Fus-east-1%2Fs3%2Faws4_request&\
             X-Amz-Date=20130524T000000Z&X-Amz-Expires=86400&X-Amz-SignedHeaders=host\n\
             host:examplebucket.s3.amazonaws.com\n\nhost\nUNSIGNED-PAYLOAD"
        );
        assert_eq!(
            signed.string_to_sign,
            "AWS4-HMAC-SHA256\n20130524T000000Z\n20130524/us-east-1/s3/aws4_request\n\
             3bfa292879f6447bbcda7001decf97f4a54dc650c8942174ae0a9121cf58ad04"
        );
        assert_eq!(
            signed.signature,
            "aeeed9bbccd4d02ee5c0109b86d86835f995330da4c265957d157751f604d404"
        );
        assert_eq!(signed.path, "/test.txt");
        assert!(signed.query.ends_with(
            "&X-Amz-Signature=aeeed9bbccd4d02ee5c0109b86d86835f995330da4c265957d157751f604d404"
        ));
    }

    #[test]
    fn the_documented_header_signing_key_example_matches() {
        // The signing key of the SigV4 reference's IAM example.
        let key = signing_key(
            "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY",
            "20150830",
            "us-east-1",
            "iam",
        );
        assert_eq!(
            hex::encode(key),
            "c4afb1cc5771d871763a393e44b703571b55cc28424d1a5e86da6ed3c154a4b9"
        );
    }

    #[test]
    fn expiry_is_clamped_to_what_s3_accepts() {
        assert!(example(0).query.contains("X-Amz-Expires=1&"));
        assert!(example(10_000_000).query.contains("X-Amz-Expires=604800&"));
        assert_ne!(example(60).signature, example(61).signature);
    }

    #[test]
    fn keys_are_encoded_segment_by_segment() {
        let request = PresignRequest {
            method: "GET",
            host: "127.0.0.1:9000",
            path: "/media/audio/temporary/20261125/a b.mp3",
            expires_secs: 60,
        };
        let signed = presign(&request, &CREDENTIALS, "us-east-1", S3_SERVICE, NOW);
        assert_eq!(signed.path, "/media/audio/temporary/20261125/a%20b.mp3");
        assert!(
            signed
                .canonical_request
                .contains("\nhost:127.0.0.1:9000\n\nhost\n")
        );
    }
}
