//! [`BlobStore`](lty_core::ports::BlobStore) adapters: [`OpendalBlobStore`]
//! on a local directory (embedded mode, served under `/media/`) or on any
//! S3-compatible bucket ([`s3`]), and [`OssBlobStore`] on Aliyun OSS with
//! the V1 signature of `lty-vendors`.

mod s3;

pub use s3::{S3Options, S3Urls};

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use bytes::Bytes;
use lty_core::ports::BlobStore;
use lty_core::{BackendError, Error, Result};
use lty_vendors::aliyun::oss::{self, OssRequest};
use lty_vendors::aliyun::{AccessKey, Method};
use lty_vendors::http::ClientOptions;
use opendal::{ErrorKind, Operator};

fn blob_err(err: impl std::fmt::Display) -> Error {
    Error::Backend(BackendError::new("blob", err))
}

/// A blob store backed by an OpenDAL operator.
#[derive(Debug, Clone)]
pub struct OpendalBlobStore {
    op: Operator,
    urls: Urls,
}

/// How [`OpendalBlobStore`] forms object URLs.
#[derive(Debug, Clone)]
enum Urls {
    /// `{base}/{key}`, unsigned.
    Public(String),
    /// SigV4 presigned GET URLs on an S3 bucket.
    Presigned(Arc<s3::Presigner>),
}

impl OpendalBlobStore {
    /// A store on the local directory `root`, whose objects are served at
    /// `{public_base}/{key}` (e.g. `http://host:8000/media`).
    pub fn fs(root: &std::path::Path, public_base: &str) -> Result<Self> {
        std::fs::create_dir_all(root).map_err(blob_err)?;
        let root = root
            .to_str()
            .ok_or_else(|| blob_err("media path is not UTF-8"))?;
        let builder = opendal::services::Fs::default().root(root);
        let op = Operator::new(builder).map_err(blob_err)?;
        Ok(Self {
            op,
            urls: Urls::Public(public_base.trim_end_matches('/').to_owned()),
        })
    }
}

/// Refuses keys that could escape the store's root or are not plain paths.
fn check_key(key: &str) -> Result<()> {
    let ok = !key.is_empty()
        && !key.starts_with('/')
        && key.len() <= 1024
        && key
            .split('/')
            .all(|seg| !seg.is_empty() && seg != "." && seg != "..")
        && key
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"-_./".contains(&b));
    if ok {
        Ok(())
    } else {
        Err(Error::validation("key", "invalid object key"))
    }
}

#[async_trait]
impl BlobStore for OpendalBlobStore {
    async fn put(&self, key: &str, data: Bytes, content_type: &str) -> Result<()> {
        check_key(key)?;
        self.op
            .write_with(key, data)
            .content_type(content_type)
            .await
            .map(|_| ())
            .map_err(blob_err)
    }

    async fn get(&self, key: &str) -> Result<Option<Bytes>> {
        check_key(key)?;
        match self.op.read(key).await {
            Ok(buf) => Ok(Some(buf.to_bytes())),
            Err(e) if e.kind() == ErrorKind::NotFound => Ok(None),
            Err(e) => Err(blob_err(e)),
        }
    }

    async fn delete(&self, key: &str) -> Result<()> {
        check_key(key)?;
        self.op.delete(key).await.map_err(blob_err)
    }

    fn url(&self, key: &str) -> String {
        match &self.urls {
            Urls::Public(base) => format!("{base}/{key}"),
            Urls::Presigned(presigner) => presigner.url(key),
        }
    }

    async fn ping(&self) -> Result<()> {
        self.op.check().await.map_err(blob_err)
    }

    async fn list_folders(&self, prefix: &str) -> Result<Vec<String>> {
        check_folder(prefix)?;
        let entries = match self.op.list(prefix).await {
            Ok(entries) => entries,
            Err(e) if e.kind() == ErrorKind::NotFound => return Ok(Vec::new()),
            Err(e) => return Err(blob_err(e)),
        };
        Ok(entries
            .iter()
            .filter(|e| e.metadata().is_dir() && e.path() != prefix)
            .map(|e| e.name().trim_end_matches('/').to_owned())
            .collect())
    }

    async fn delete_folder(&self, prefix: &str) -> Result<()> {
        check_folder(prefix)?;
        self.op
            .delete_with(prefix)
            .recursive(true)
            .await
            .map_err(blob_err)
    }
}

/// Refuses folder prefixes that are not a plain key followed by `/`.
fn check_folder(prefix: &str) -> Result<()> {
    match prefix.strip_suffix('/') {
        Some(folder) => check_key(folder),
        None => Err(Error::validation("prefix", "a folder ends with `/`")),
    }
}

/// Where the URLs of [`OssBlobStore`] objects point.
#[derive(Debug, Clone)]
pub enum OssUrls {
    /// The bucket is public-read: `{base}/{key}` without a signature.
    Public {
        /// Scheme and host, e.g. `ALIYUN_OSS_HOST`.
        base: String,
    },
    /// V1 presigned GET URLs on `base`, valid for `expiry`.
    Presigned {
        /// Scheme and host, e.g. `ALIYUN_OSS_HOST`.
        base: String,
        /// How long a URL stays valid.
        expiry: Duration,
    },
}

/// How to reach an OSS bucket.
#[derive(Debug, Clone)]
pub struct OssOptions {
    /// The bucket name (part of every signature).
    pub bucket: String,
    /// Scheme and host requests go to: the virtual-hosted bucket domain
    /// `https://<bucket>.oss-<region>.aliyuncs.com`, a CNAME bound to the
    /// bucket, or a local endpoint.
    pub endpoint: String,
    /// The AccessKey pair.
    pub key: AccessKey,
    /// How object URLs are formed.
    pub urls: OssUrls,
    /// Time allowed for one request.
    pub timeout: Duration,
}

/// A [`BlobStore`] on Aliyun OSS: `PutObject`, `GetObject`, `DeleteObject`
/// signed with the V1 `Authorization: OSS` header, and V1 presigned GET URLs.
///
/// The V1 canonicalized resource is `/<bucket>/<key>` whatever the host, so
/// the same code serves the bucket domain and a CNAME.
#[derive(Clone)]
pub struct OssBlobStore {
    opts: Arc<OssOptions>,
    http: reqwest::Client,
}

impl std::fmt::Debug for OssBlobStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("OssBlobStore")
            .field("bucket", &self.opts.bucket)
            .field("endpoint", &self.opts.endpoint)
            .field("key_id", &self.opts.key.id)
            .finish_non_exhaustive()
    }
}

/// The `<Code>` of an OSS XML error body, or the HTTP status.
fn oss_error(status: reqwest::StatusCode, body: &[u8]) -> Error {
    let text = String::from_utf8_lossy(body);
    let code = text
        .split_once("<Code>")
        .and_then(|(_, rest)| rest.split_once("</Code>"))
        .map_or("", |(code, _)| code);
    if code == "SignatureDoesNotMatch"
        && let Some((_, rest)) = text.split_once("<StringToSign>")
        && let Some((sts, _)) = rest.split_once("</StringToSign>")
    {
        tracing::warn!(string_to_sign = %sts, "OSS refused the request signature");
    }
    blob_err(format!("OSS answered {status} {code}"))
}

fn now_unix() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

impl OssBlobStore {
    /// A store on the bucket described by `opts`.
    pub fn new(mut opts: OssOptions) -> Result<Self> {
        opts.endpoint = opts.endpoint.trim_end_matches('/').to_owned();
        match &mut opts.urls {
            OssUrls::Public { base } | OssUrls::Presigned { base, .. } => {
                *base = base.trim_end_matches('/').to_owned();
            }
        }
        if opts.bucket.is_empty() || opts.key.id.is_empty() || opts.key.secret.is_empty() {
            return Err(blob_err("OSS needs a bucket and an AccessKey pair"));
        }
        let http = lty_vendors::http::client(ClientOptions {
            // The blob adapters keep reqwest's default of following redirects.
            follow_redirects: true,
            ..ClientOptions::timeouts(Duration::from_secs(5), opts.timeout)
        })
        .map_err(blob_err)?;
        Ok(Self {
            opts: Arc::new(opts),
            http,
        })
    }

    /// Sends one header-signed request for `key` ("" for the bucket).
    async fn send(
        &self,
        method: Method,
        key: &str,
        body: Option<(Bytes, &str)>,
    ) -> Result<reqwest::Response> {
        let md5 = body.as_ref().map(|(data, _)| oss::content_md5(data));
        let req = OssRequest {
            method,
            bucket: &self.opts.bucket,
            key,
            query: &[],
            content_md5: md5.as_deref(),
            content_type: body.as_ref().map(|(_, ct)| *ct),
            headers: &[],
        };
        let signed = oss::sign_header(&req, &self.opts.key, now_unix()).map_err(blob_err)?;
        let url = format!("{}{}", self.opts.endpoint, oss::object_path(key));
        let http_method = match method {
            Method::Put => reqwest::Method::PUT,
            Method::Delete => reqwest::Method::DELETE,
            Method::Head => reqwest::Method::HEAD,
            Method::Post => reqwest::Method::POST,
            Method::Get => reqwest::Method::GET,
        };
        let mut builder = self.http.request(http_method, url);
        for (name, value) in &signed.headers {
            builder = builder.header(name.as_str(), value.as_str());
        }
        if let (Some((data, content_type)), Some(md5)) = (body, md5) {
            builder = builder
                .header("Content-Type", content_type)
                .header("Content-MD5", md5)
                .body(data);
        }
        builder.send().await.map_err(blob_err)
    }
}

#[async_trait]
impl BlobStore for OssBlobStore {
    async fn put(&self, key: &str, data: Bytes, content_type: &str) -> Result<()> {
        check_key(key)?;
        let res = self
            .send(Method::Put, key, Some((data, content_type)))
            .await?;
        let status = res.status();
        if status.is_success() {
            return Ok(());
        }
        let body = res.bytes().await.unwrap_or_default();
        Err(oss_error(status, &body))
    }

    async fn get(&self, key: &str) -> Result<Option<Bytes>> {
        check_key(key)?;
        let res = self.send(Method::Get, key, None).await?;
        let status = res.status();
        let body = res.bytes().await.map_err(blob_err)?;
        match status {
            s if s.is_success() => Ok(Some(body)),
            reqwest::StatusCode::NOT_FOUND
                if String::from_utf8_lossy(&body).contains("NoSuchKey") =>
            {
                Ok(None)
            }
            s => Err(oss_error(s, &body)),
        }
    }

    async fn delete(&self, key: &str) -> Result<()> {
        check_key(key)?;
        let res = self.send(Method::Delete, key, None).await?;
        let status = res.status();
        if status.is_success() {
            return Ok(());
        }
        let body = res.bytes().await.unwrap_or_default();
        if status == reqwest::StatusCode::NOT_FOUND
            && String::from_utf8_lossy(&body).contains("NoSuchKey")
        {
            return Ok(());
        }
        Err(oss_error(status, &body))
    }

    fn url(&self, key: &str) -> String {
        match &self.opts.urls {
            OssUrls::Public { base } => format!("{base}{}", oss::object_path(key)),
            OssUrls::Presigned { base, expiry } => {
                let req = OssRequest {
                    method: Method::Get,
                    bucket: &self.opts.bucket,
                    key,
                    query: &[],
                    content_md5: None,
                    content_type: None,
                    headers: &[],
                };
                let expires = now_unix().saturating_add(expiry.as_secs());
                oss::presigned_url(base, &req, &self.opts.key, expires).unwrap_or_else(|err| {
                    // Only header or parameter text the signer refuses gets
                    // here; stored keys are plain ASCII paths.
                    tracing::warn!(%err, key, "cannot presign an OSS URL");
                    format!("{base}{}", oss::object_path(key))
                })
            }
        }
    }

    async fn ping(&self) -> Result<()> {
        // Bucket-level GET (ListObjects), one key at most.
        let res = self.send(Method::Get, "", None).await?;
        let status = res.status();
        if status.is_success() {
            return Ok(());
        }
        let body = res.bytes().await.unwrap_or_default();
        Err(oss_error(status, &body))
    }

    async fn list_folders(&self, _prefix: &str) -> Result<Vec<String>> {
        Err(blob_err(
            "OSS objects expire by a bucket lifecycle rule, not by listing",
        ))
    }

    async fn delete_folder(&self, _prefix: &str) -> Result<()> {
        Err(blob_err(
            "OSS objects expire by a bucket lifecycle rule, not by listing",
        ))
    }
}
