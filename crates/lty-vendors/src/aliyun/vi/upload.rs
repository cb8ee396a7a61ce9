//! The Visual Intelligence temporary-upload flow, for images that are not
//! on OSS in the VI region (local storage, another region).
//!
//! 1. `AuthorizeFileUpload` (openplatform, version `2019-12-19`), an RPC V1
//!    POST like every VI call, grants an upload to a vendor-owned temporary
//!    bucket: `AccessKeyId`, `Bucket`, `Endpoint`, `ObjectKey`,
//!    `EncodedPolicy`, `Signature`.
//! 2. An OSS PostObject (`multipart/form-data`, the `file` field last) to
//!    `https://<Bucket>.<Endpoint>/` stores the bytes; OSS answers `201`,
//!    or an XML error with a `<Code>`.
//! 3. VI is then given `http://<Bucket>.<Endpoint>/<ObjectKey>`; the vendor
//!    drops the object after about a day.

use serde::Deserialize;

use super::super::oss::object_path;
use super::super::pop::{PopResponseError, RpcCall, RpcSigned, check_pop_response, sign_rpc};
use super::super::{AccessKey, Method, SignError};
use super::ViError;

/// `Action` that grants a temporary upload.
pub const AUTHORIZE_ACTION: &str = "AuthorizeFileUpload";
/// `Version` of the openplatform product.
pub const OPENPLATFORM_VERSION: &str = "2019-12-19";
/// The public openplatform endpoint.
pub const DEFAULT_OPENPLATFORM_ENDPOINT: &str = "https://openplatform.aliyuncs.com";

/// Signs an `AuthorizeFileUpload` POST for the VI `product` (e.g.
/// `imagerecog`) in `region`: `signed_query` is the form body.
pub fn sign_authorize_file_upload(
    product: &str,
    region: &str,
    key: &AccessKey,
    timestamp: u64,
    nonce: &str,
) -> Result<RpcSigned, SignError> {
    let params = [("Product", product), ("RegionId", region)];
    let call = RpcCall {
        action: AUTHORIZE_ACTION,
        version: OPENPLATFORM_VERSION,
        params: &params,
    };
    sign_rpc(Method::Post, &call, key, timestamp, nonce)
}

/// What `AuthorizeFileUpload` grants: one PostObject to a temporary bucket.
#[derive(Clone, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct UploadGrant {
    /// The OSS AccessKey id for the PostObject (`OSSAccessKeyId`).
    pub access_key_id: String,
    /// The temporary bucket.
    pub bucket: String,
    /// Its OSS endpoint host, e.g. `oss-cn-shanghai.aliyuncs.com`.
    pub endpoint: String,
    /// The key the object must be stored under.
    pub object_key: String,
    /// The Base64 POST policy (`policy` field).
    pub encoded_policy: String,
    /// The policy's signature (`Signature` field).
    pub signature: String,
    /// Whether the vendor suggests its accelerated endpoint (lty always
    /// posts to `Endpoint`).
    #[serde(default)]
    pub use_accelerate: bool,
    /// Vendor request id.
    #[serde(default)]
    pub request_id: Option<String>,
}

impl std::fmt::Debug for UploadGrant {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // The policy signature is a credential for the bucket: keep it out of logs.
        f.debug_struct("UploadGrant")
            .field("bucket", &self.bucket)
            .field("endpoint", &self.endpoint)
            .field("object_key", &self.object_key)
            .field("request_id", &self.request_id)
            .finish_non_exhaustive()
    }
}

impl UploadGrant {
    /// `https://<Bucket>.<Endpoint>`, where the PostObject goes.
    pub fn bucket_base(&self) -> String {
        format!("https://{}.{}", self.bucket, self.endpoint)
    }

    /// The URL VI is given once the upload is done:
    /// `http://<Bucket>.<Endpoint>/<ObjectKey>`.
    pub fn image_url(&self) -> String {
        format!(
            "http://{}.{}{}",
            self.bucket,
            self.endpoint,
            object_path(&self.object_key)
        )
    }

    /// The PostObject form, fields in the documented order and `file` last
    /// (OSS ignores any field after the file). A `content_type` that is not
    /// a MIME type is left out of the file part.
    pub fn post_object_form(
        &self,
        file_name: &str,
        content_type: &str,
        data: bytes::Bytes,
    ) -> reqwest::multipart::Form {
        let part = || {
            let len = data.len() as u64;
            reqwest::multipart::Part::stream_with_length(reqwest::Body::from(data.clone()), len)
                .file_name(file_name.to_owned())
        };
        let file = part().mime_str(content_type).unwrap_or_else(|_| part());
        reqwest::multipart::Form::new()
            .text("OSSAccessKeyId", self.access_key_id.clone())
            .text("policy", self.encoded_policy.clone())
            .text("Signature", self.signature.clone())
            .text("key", self.object_key.clone())
            .text("success_action_status", "201")
            .part("file", file)
    }
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
struct AuthorizeBody {
    #[serde(default)]
    data: Option<UploadGrant>,
    #[serde(default)]
    request_id: Option<String>,
}

/// Classifies an `AuthorizeFileUpload` answer. The grant may come at the
/// top level or under `Data`.
pub fn parse_authorize_response(status: u16, body: &[u8]) -> Result<UploadGrant, ViError> {
    match check_pop_response(status, body) {
        Ok(_) => {}
        Err(PopResponseError::Api(e)) => return Err(ViError::Rejected(e)),
        Err(e) => return Err(ViError::Malformed(e.to_string())),
    }
    if let Ok(AuthorizeBody {
        data: Some(mut grant),
        request_id,
    }) = serde_json::from_slice::<AuthorizeBody>(body)
    {
        grant.request_id = grant.request_id.or(request_id);
        return check_grant(grant);
    }
    let grant: UploadGrant = serde_json::from_slice(body)
        .map_err(|e| ViError::Malformed(format!("AuthorizeFileUpload: {e}")))?;
    check_grant(grant)
}

fn check_grant(grant: UploadGrant) -> Result<UploadGrant, ViError> {
    // The bucket and endpoint become a host name: refuse anything that
    // could point the upload (and the later download) elsewhere.
    let host_ok = |s: &str| {
        !s.is_empty()
            && s.bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'.')
    };
    if !host_ok(&grant.bucket) || !host_ok(&grant.endpoint) || grant.object_key.is_empty() {
        return Err(ViError::Malformed(
            "AuthorizeFileUpload granted no usable bucket, endpoint or key".into(),
        ));
    }
    Ok(grant)
}

/// Classifies a PostObject answer: `201` is success; otherwise the OSS XML
/// error's `<Code>` (as [`ViError::UploadRejected`]).
pub fn parse_post_object_response(status: u16, body: &[u8]) -> Result<(), ViError> {
    if (200..300).contains(&status) {
        return Ok(());
    }
    let text = String::from_utf8_lossy(body);
    let element = |name: &str| {
        let open = format!("<{name}>");
        let close = format!("</{name}>");
        text.split_once(open.as_str())
            .and_then(|(_, rest)| rest.split_once(close.as_str()))
            .map(|(value, _)| value.trim().to_owned())
    };
    match element("Code").filter(|c| !c.is_empty()) {
        Some(code) => Err(ViError::UploadRejected {
            status,
            code,
            message: element("Message").unwrap_or_default(),
            request_id: element("RequestId"),
        }),
        None => Err(ViError::Malformed(format!(
            "OSS PostObject answered HTTP {status} without an error code"
        ))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::aliyun::pop::{canonicalized_query, rpc_signature, rpc_string_to_sign};

    #[test]
    fn the_authorize_call_is_a_signed_openplatform_post() {
        let key = AccessKey::new("testid", "testsecret");
        let signed =
            sign_authorize_file_upload("imagerecog", "cn-shanghai", &key, 1_700_000_000, "n")
                .unwrap();
        let pairs: Vec<(String, String)> =
            url::form_urlencoded::parse(signed.signed_query.as_bytes())
                .into_owned()
                .collect();
        let get = |k: &str| pairs.iter().find(|(n, _)| n == k).map(|(_, v)| v.as_str());
        assert_eq!(get("Action"), Some("AuthorizeFileUpload"));
        assert_eq!(get("Version"), Some("2019-12-19"));
        assert_eq!(get("Product"), Some("imagerecog"));
        assert_eq!(get("RegionId"), Some("cn-shanghai"));
        let unsigned: Vec<(String, String)> = pairs
            .iter()
            .filter(|(k, _)| k != "Signature")
            .cloned()
            .collect();
        let sts = rpc_string_to_sign(Method::Post, &canonicalized_query(&unsigned));
        assert!(sts.starts_with("POST&%2F&"));
        assert_eq!(
            get("Signature"),
            Some(rpc_signature("testsecret", &sts).unwrap().as_str())
        );
    }

    const GRANT: &str = r#"{"AccessKeyId":"LTAIoss","Bucket":"viapi-customer-temp","Endpoint":"oss-cn-shanghai.aliyuncs.com","ObjectKey":"123/a b.png","EncodedPolicy":"eyJ9","Signature":"c2ln","UseAccelerate":false}"#;

    #[test]
    fn a_grant_is_read_at_the_top_level_or_under_data_and_gives_the_urls() {
        let top = format!(r#"{{"RequestId":"R1",{}"#, &GRANT[1..]);
        let grant = parse_authorize_response(200, top.as_bytes()).unwrap();
        assert_eq!(grant.request_id.as_deref(), Some("R1"));
        assert_eq!(
            grant.bucket_base(),
            "https://viapi-customer-temp.oss-cn-shanghai.aliyuncs.com"
        );
        assert_eq!(
            grant.image_url(),
            "http://viapi-customer-temp.oss-cn-shanghai.aliyuncs.com/123/a%20b.png"
        );
        let nested = format!(r#"{{"RequestId":"R2","Data":{GRANT}}}"#);
        let grant = parse_authorize_response(200, nested.as_bytes()).unwrap();
        assert_eq!(grant.object_key, "123/a b.png");
        assert_eq!(grant.request_id.as_deref(), Some("R2"));
        assert!(!format!("{grant:?}").contains("c2ln"));
    }

    #[test]
    fn authorize_errors_keep_the_vendor_code_and_odd_grants_are_refused() {
        let err = br#"{"RequestId":"r","Code":"SignatureDoesNotMatch","Message":"no"}"#;
        let e = parse_authorize_response(400, err).unwrap_err();
        assert_eq!(e.vendor_code(), Some("SignatureDoesNotMatch"));
        let busy = br#"{"RequestId":"r","Code":"Throttling.User","Message":"slow"}"#;
        assert!(
            parse_authorize_response(400, busy)
                .unwrap_err()
                .is_retryable()
        );
        let evil = GRANT.replace("viapi-customer-temp", "evil.example/x?");
        assert!(matches!(
            parse_authorize_response(200, evil.as_bytes()),
            Err(ViError::Malformed(_))
        ));
        assert!(matches!(
            parse_authorize_response(200, br#"{"RequestId":"r"}"#),
            Err(ViError::Malformed(_))
        ));
    }

    #[test]
    fn post_object_errors_carry_the_oss_code() {
        assert!(parse_post_object_response(201, b"<PostResponse/>").is_ok());
        let xml = b"<?xml version=\"1.0\"?><Error><Code>AccessDenied</Code><Message>Invalid according to Policy</Message><RequestId>R</RequestId></Error>";
        let e = parse_post_object_response(403, xml).unwrap_err();
        assert_eq!(e.vendor_code(), Some("AccessDenied"));
        assert!(!e.is_retryable());
        let busy = b"<Error><Code>InternalError</Code></Error>";
        assert!(
            parse_post_object_response(500, busy)
                .unwrap_err()
                .is_retryable()
        );
        assert!(matches!(
            parse_post_object_response(502, b"<html>"),
            Err(ViError::Malformed(_))
        ));
    }
}
