//! Aliyun Visual Intelligence image tagging: `TaggingImage` of the
//! `imagerecog` product (API version `2019-09-30`), an RPC-style POST
//! signed with signature V1 (see [`super::pop`]).
//!
//! The service downloads the image from `ImageURL` itself; the vendor only
//! fetches from OSS in its own region, so the URL handed in must be one it
//! can reach. The answer is `{"RequestId", "Data": {"Tags": [{"Value",
//! "Confidence"}]}}`, confidence in percent; failures are the POP error
//! envelope (HTTP 4xx/5xx with `Code`). Tagging has no side effects, so a
//! transient failure (transport, flow control, vendor internal error) is
//! retried once.
//!
//! Images that are not on OSS in the VI region go through the vendor's
//! temporary upload first ([`upload`], [`ViClient::upload_image`]).

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use serde::Deserialize;

use super::pop::{
    PopError, PopResponseError, RpcCall, RpcSigned, check_pop_response, sign_rpc, signature_nonce,
};
use super::{AccessKey, Method, SignError};
use crate::http::ClientOptions;

pub mod upload;

use upload::UploadGrant;

/// The product code, as in the endpoint host.
pub const PRODUCT: &str = "imagerecog";
/// `Version` of the imagerecog product.
pub const VERSION: &str = "2019-09-30";
/// `Action` of the tagging call.
pub const TAGGING_ACTION: &str = "TaggingImage";
/// `RegionId` of nearly every VI product.
pub const DEFAULT_REGION: &str = "cn-shanghai";
/// The public endpoint of imagerecog in [`DEFAULT_REGION`].
pub const DEFAULT_ENDPOINT: &str = "https://imagerecog.cn-shanghai.aliyuncs.com";

/// Signs a `TaggingImage` POST for `image_url`: the returned
/// `signed_query` is the `application/x-www-form-urlencoded` body.
pub fn sign_tagging_image(
    image_url: &str,
    region: &str,
    key: &AccessKey,
    timestamp: u64,
    nonce: &str,
) -> Result<RpcSigned, SignError> {
    let params = [("RegionId", region), ("ImageURL", image_url)];
    let call = RpcCall {
        action: TAGGING_ACTION,
        version: VERSION,
        params: &params,
    };
    sign_rpc(Method::Post, &call, key, timestamp, nonce)
}

/// One label the service sees in an image.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct ImageTag {
    /// The label text (Chinese for the public endpoint).
    pub value: String,
    /// Confidence in percent, 0–100.
    #[serde(default)]
    pub confidence: f64,
}

/// Why a VI call failed.
#[derive(Debug, thiserror::Error)]
pub enum ViError {
    /// The vendor answered with an error code.
    #[error(transparent)]
    Rejected(#[from] PopError),
    /// No complete answer within the timeout.
    #[error("aliyun VI did not answer within {0:?}")]
    Timeout(Duration),
    /// Connection or protocol failure.
    #[error("aliyun VI request failed: {0}")]
    Transport(String),
    /// An answer that is not the documented shape.
    #[error("aliyun VI answered unexpectedly: {0}")]
    Malformed(String),
    /// The request could not be signed.
    #[error(transparent)]
    Sign(#[from] SignError),
    /// OSS refused the temporary upload (PostObject) with an XML error.
    #[error("aliyun VI temporary upload refused: HTTP {status} {code}: {message}")]
    UploadRejected {
        /// HTTP status of the PostObject answer.
        status: u16,
        /// OSS `<Code>`, e.g. `AccessDenied`.
        code: String,
        /// OSS `<Message>`.
        message: String,
        /// OSS `<RequestId>`.
        request_id: Option<String>,
    },
}

impl ViError {
    /// Whether one more attempt may succeed.
    pub fn is_retryable(&self) -> bool {
        match self {
            Self::Rejected(e) => e.is_retryable(),
            Self::Timeout(_) | Self::Transport(_) => true,
            Self::UploadRejected { status, code, .. } => {
                *status >= 500 || code == "InternalError" || code == "ServiceUnavailable"
            }
            Self::Malformed(_) | Self::Sign(_) => false,
        }
    }

    /// The vendor's `Code`, when it answered with one.
    pub fn vendor_code(&self) -> Option<&str> {
        match self {
            Self::Rejected(e) => Some(&e.code),
            Self::UploadRejected { code, .. } => Some(code),
            _ => None,
        }
    }
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "PascalCase")]
struct TaggingBody {
    #[serde(default)]
    data: Option<TaggingData>,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "PascalCase")]
struct TaggingData {
    #[serde(default)]
    tags: Vec<ImageTag>,
}

/// Classifies a `TaggingImage` answer: the labels, most confident first.
pub fn parse_tagging_response(status: u16, body: &[u8]) -> Result<Vec<ImageTag>, ViError> {
    match check_pop_response(status, body) {
        Ok(_) => {}
        Err(PopResponseError::Api(e)) => return Err(ViError::Rejected(e)),
        Err(e) => return Err(ViError::Malformed(e.to_string())),
    }
    let parsed: TaggingBody =
        serde_json::from_slice(body).map_err(|e| ViError::Malformed(e.to_string()))?;
    let data = parsed
        .data
        .ok_or_else(|| ViError::Malformed("a success without Data".into()))?;
    let mut tags: Vec<ImageTag> = data
        .tags
        .into_iter()
        .filter(|t| !t.value.trim().is_empty())
        .collect();
    tags.sort_by(|a, b| b.confidence.total_cmp(&a.confidence));
    Ok(tags)
}

/// Settings of a [`ViClient`].
#[derive(Clone)]
pub struct ViClientConfig {
    /// Base URL, e.g. [`DEFAULT_ENDPOINT`] or `http://127.0.0.1:PORT`; a
    /// bare host gets `https://`.
    pub endpoint: String,
    /// `RegionId`, [`DEFAULT_REGION`] normally.
    pub region: String,
    pub key: AccessKey,
    /// Base URL of the openplatform API that grants temporary uploads
    /// ([`upload::DEFAULT_OPENPLATFORM_ENDPOINT`]); a bare host gets `https://`.
    pub openplatform_endpoint: String,
    /// Where the PostObject of a temporary upload goes instead of
    /// `https://<Bucket>.<Endpoint>` (a proxy or a test endpoint). The URL
    /// handed to VI stays the bucket's own.
    pub upload_base_url: Option<String>,
    pub connect_timeout: Duration,
    /// Bound on one attempt.
    pub timeout: Duration,
}

impl std::fmt::Debug for ViClientConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ViClientConfig")
            .field("endpoint", &self.endpoint)
            .field("region", &self.region)
            .field("key", &self.key)
            .field("openplatform_endpoint", &self.openplatform_endpoint)
            .field("upload_base_url", &self.upload_base_url)
            .field("timeout", &self.timeout)
            .finish_non_exhaustive()
    }
}

/// An image tagging client.
#[derive(Debug, Clone)]
pub struct ViClient {
    config: ViClientConfig,
    url: String,
    openplatform_url: String,
    upload_base: Option<String>,
    http: reqwest::Client,
}

/// `endpoint` as a base URL without trailing `/`: `https://` added to a
/// bare host; anything but an http(s) URL with a host is refused.
fn base_url(endpoint: &str) -> Result<String, ViError> {
    let endpoint = endpoint.trim().trim_end_matches('/');
    let endpoint = if endpoint.contains("://") {
        endpoint.to_owned()
    } else {
        format!("https://{endpoint}")
    };
    let parsed = url::Url::parse(&endpoint).map_err(|e| ViError::Transport(e.to_string()))?;
    if !matches!(parsed.scheme(), "http" | "https") || parsed.host_str().is_none() {
        return Err(ViError::Transport(
            "the endpoint must be an http(s) URL".into(),
        ));
    }
    Ok(endpoint)
}

/// Whether VI can download `url` itself: an OSS URL in `region`, i.e. a
/// host with the label `oss-<region>` under `aliyuncs.com`
/// (`<bucket>.oss-cn-shanghai.aliyuncs.com`). Everything else (local
/// storage, another region, a custom domain) needs the temporary upload.
pub fn is_oss_url_in_region(url: &str, region: &str) -> bool {
    let Ok(parsed) = url::Url::parse(url) else {
        return false;
    };
    let Some(host) = parsed.host_str() else {
        return false;
    };
    let label = format!("oss-{}", region.trim());
    matches!(parsed.scheme(), "http" | "https")
        && host.ends_with(".aliyuncs.com")
        && host.split('.').any(|l| l.eq_ignore_ascii_case(&label))
}

impl ViClient {
    /// A client for `config`; fails when the endpoint is not an http(s)
    /// URL or the HTTP client cannot be built.
    pub fn new(config: ViClientConfig) -> Result<Self, ViError> {
        let endpoint = base_url(&config.endpoint)?;
        let openplatform = base_url(&config.openplatform_endpoint)?;
        let upload_base = config
            .upload_base_url
            .as_deref()
            .filter(|u| !u.trim().is_empty())
            .map(base_url)
            .transpose()?;
        let http = crate::http::client(ClientOptions::timeouts(
            config.connect_timeout,
            config.timeout,
        ))
        .map_err(|e| ViError::Transport(e.to_string()))?;
        Ok(Self {
            url: format!("{endpoint}/"),
            openplatform_url: format!("{openplatform}/"),
            upload_base,
            config,
            http,
        })
    }

    /// The `RegionId` this client calls.
    pub fn region(&self) -> &str {
        &self.config.region
    }

    /// The labels the service sees in the image at `image_url`, most
    /// confident first.
    #[tracing::instrument(skip_all, err, fields(provider = "aliyun_vi"))]
    pub async fn tag_image(&self, image_url: &str) -> Result<Vec<ImageTag>, ViError> {
        match self.tag_once(image_url).await {
            Err(e) if e.is_retryable() => {
                tracing::debug!(%e, "retrying the tagging request once");
                tokio::time::sleep(Duration::from_millis(200)).await;
                self.tag_once(image_url).await
            }
            other => other,
        }
    }

    /// Puts `data` into the vendor's temporary bucket
    /// (`AuthorizeFileUpload`, then an OSS PostObject) and returns the URL
    /// to hand to [`Self::tag_image`]. A transient failure of either step
    /// retries the whole flow once with a fresh grant.
    #[tracing::instrument(skip_all, err, fields(provider = "aliyun_vi", bytes = data.len()))]
    pub async fn upload_image(
        &self,
        file_name: &str,
        content_type: &str,
        data: bytes::Bytes,
    ) -> Result<String, ViError> {
        match self
            .upload_once(file_name, content_type, data.clone())
            .await
        {
            Err(e) if e.is_retryable() => {
                tracing::debug!(%e, "retrying the temporary upload once");
                tokio::time::sleep(Duration::from_millis(200)).await;
                self.upload_once(file_name, content_type, data).await
            }
            other => other,
        }
    }

    async fn upload_once(
        &self,
        file_name: &str,
        content_type: &str,
        data: bytes::Bytes,
    ) -> Result<String, ViError> {
        let grant = self.authorize_file_upload().await?;
        let base = self
            .upload_base
            .clone()
            .unwrap_or_else(|| grant.bucket_base());
        let form = grant.post_object_form(file_name, content_type, data);
        let res = self
            .http
            .post(format!("{base}/"))
            .multipart(form)
            .send()
            .await
            .map_err(|e| self.transport(e))?;
        let status = res.status().as_u16();
        let body = res.bytes().await.map_err(|e| self.transport(e))?;
        upload::parse_post_object_response(status, &body)?;
        tracing::debug!(
            request_id = grant.request_id.as_deref().unwrap_or(""),
            "image uploaded to the VI temporary bucket"
        );
        Ok(grant.image_url())
    }

    async fn authorize_file_upload(&self) -> Result<UploadGrant, ViError> {
        let signed = upload::sign_authorize_file_upload(
            PRODUCT,
            &self.config.region,
            &self.config.key,
            unix_now(),
            &signature_nonce(),
        )?;
        let (status, body) = self.post_form(&self.openplatform_url, signed).await?;
        upload::parse_authorize_response(status, &body)
    }

    async fn post_form(
        &self,
        url: &str,
        signed: RpcSigned,
    ) -> Result<(u16, bytes::Bytes), ViError> {
        let res = self
            .http
            .post(url)
            .header(
                reqwest::header::CONTENT_TYPE,
                "application/x-www-form-urlencoded",
            )
            .body(signed.signed_query)
            .send()
            .await
            .map_err(|e| self.transport(e))?;
        let status = res.status().as_u16();
        let body = res.bytes().await.map_err(|e| self.transport(e))?;
        Ok((status, body))
    }

    async fn tag_once(&self, image_url: &str) -> Result<Vec<ImageTag>, ViError> {
        // A fresh nonce per attempt: the gateway refuses a reused one.
        let signed = sign_tagging_image(
            image_url,
            &self.config.region,
            &self.config.key,
            unix_now(),
            &signature_nonce(),
        )?;
        let (status, body) = self.post_form(&self.url, signed).await?;
        parse_tagging_response(status, &body)
    }

    fn transport(&self, err: reqwest::Error) -> ViError {
        if err.is_timeout() {
            ViError::Timeout(self.config.timeout)
        } else {
            ViError::Transport(err.without_url().to_string())
        }
    }
}

fn unix_now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::aliyun::pop::{canonicalized_query, rpc_signature, rpc_string_to_sign};

    #[test]
    fn the_signed_body_carries_the_image_url_and_verifies() {
        let key = AccessKey::new("testid", "testsecret");
        let url = "https://bucket.oss-cn-shanghai.aliyuncs.com/a b*~/猫.jpg";
        let signed = sign_tagging_image(url, "cn-shanghai", &key, 1_700_000_000, "n-1").unwrap();
        let pairs: Vec<(String, String)> =
            url::form_urlencoded::parse(signed.signed_query.as_bytes())
                .into_owned()
                .collect();
        let get = |k: &str| pairs.iter().find(|(n, _)| n == k).map(|(_, v)| v.as_str());
        assert_eq!(get("Action"), Some("TaggingImage"));
        assert_eq!(get("Version"), Some("2019-09-30"));
        assert_eq!(get("RegionId"), Some("cn-shanghai"));
        assert_eq!(get("ImageURL"), Some(url));
        assert_eq!(get("Timestamp"), Some("2023-11-14T22:13:20Z"));
        // A server recomputing over the decoded pairs gets the same signature.
        let unsigned: Vec<(String, String)> = pairs
            .iter()
            .filter(|(k, _)| k != "Signature")
            .cloned()
            .collect();
        let sts = rpc_string_to_sign(Method::Post, &canonicalized_query(&unsigned));
        assert_eq!(sts, signed.string_to_sign);
        assert_eq!(
            get("Signature"),
            Some(rpc_signature("testsecret", &sts).unwrap().as_str())
        );
    }

    #[test]
    fn tags_are_read_and_sorted_and_errors_keep_the_vendor_code() {
        let ok = br#"{"RequestId":"r","Data":{"Tags":[{"Value":"cat","Confidence":40.5},{"Value":"animal","Confidence":91},{"Value":" ","Confidence":99}]}}"#;
        let tags = parse_tagging_response(200, ok).unwrap();
        assert_eq!(
            tags.iter().map(|t| t.value.as_str()).collect::<Vec<_>>(),
            ["animal", "cat"]
        );
        let err =
            br#"{"RequestId":"r","Code":"InvalidImage.Download","Message":"download failed"}"#;
        let e = parse_tagging_response(400, err).unwrap_err();
        assert_eq!(e.vendor_code(), Some("InvalidImage.Download"));
        assert!(!e.is_retryable());
        let busy = br#"{"RequestId":"r","Code":"Throttling.User","Message":"slow down"}"#;
        assert!(
            parse_tagging_response(400, busy)
                .unwrap_err()
                .is_retryable()
        );
        assert!(matches!(
            parse_tagging_response(200, br#"{"RequestId":"r"}"#),
            Err(ViError::Malformed(_))
        ));
        assert!(matches!(
            parse_tagging_response(502, b"<html>"),
            Err(ViError::Malformed(_))
        ));
    }

    #[test]
    fn a_bare_host_endpoint_gets_https() {
        let c = ViClient::new(ViClientConfig {
            endpoint: "imagerecog.cn-shanghai.aliyuncs.com".into(),
            region: DEFAULT_REGION.into(),
            key: AccessKey::new("i", "s"),
            openplatform_endpoint: "openplatform.aliyuncs.com".into(),
            upload_base_url: Some("http://127.0.0.1:9/".into()),
            connect_timeout: Duration::from_secs(1),
            timeout: Duration::from_secs(1),
        })
        .unwrap();
        assert_eq!(c.url, "https://imagerecog.cn-shanghai.aliyuncs.com/");
        assert_eq!(c.openplatform_url, "https://openplatform.aliyuncs.com/");
        assert_eq!(c.upload_base.as_deref(), Some("http://127.0.0.1:9"));
    }

    #[test]
    fn only_oss_urls_in_the_region_are_downloadable_by_vi() {
        let yes = |u: &str| is_oss_url_in_region(u, "cn-shanghai");
        assert!(yes(
            "https://b.oss-cn-shanghai.aliyuncs.com/a/b.png?OSSAccessKeyId=x"
        ));
        assert!(yes(
            "http://viapi-customer-temp.oss-cn-shanghai.aliyuncs.com/k"
        ));
        assert!(!yes("https://b.oss-cn-hangzhou.aliyuncs.com/a.png"));
        assert!(!yes("http://127.0.0.1:8000/media/a.png"));
        assert!(!yes(
            "https://oss-cn-shanghai.aliyuncs.com.evil.example/a.png"
        ));
        assert!(!yes("https://media.example.com/a.png"));
        assert!(!yes("not a url"));
    }
}
