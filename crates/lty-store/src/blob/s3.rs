//! The S3 flavour of [`OpendalBlobStore`]: any S3-compatible object store
//! (AWS S3, MinIO, Cloudflare R2, …) through OpenDAL's `s3` service, which
//! signs every request with SigV4. Object URLs are `{base}/{key}` on a
//! public bucket, or SigV4 query-presigned GET URLs computed on the spot by
//! [`lty_vendors::aws::presign`].
//!
//! OpenDAL sends its HTTP requests through [`ReqwestTransport`], lty's own
//! `reqwest` client, so the store honours `storage.timeout_secs` and adds
//! no second HTTP stack.

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use lty_core::Result;
use lty_vendors::aws::{self, Credentials, PresignRequest};
use lty_vendors::http::ClientOptions;
use opendal::{Buffer, HttpBody, HttpTransport, HttpTransporter, Operator};

use super::{OpendalBlobStore, Urls, blob_err};

/// Where the URLs of S3 objects point.
#[derive(Debug, Clone)]
pub enum S3Urls {
    /// The bucket (or a CDN in front of it) is public-read: `{base}/{key}`.
    Public {
        /// Scheme, host and optional path prefix, e.g.
        /// `https://media.example.com`.
        base: String,
    },
    /// SigV4 presigned GET URLs on the bucket's own address.
    Presigned {
        /// How long a URL stays valid (at most seven days).
        expiry: Duration,
    },
}

/// How to reach an S3-compatible bucket.
#[derive(Clone)]
pub struct S3Options {
    /// Scheme and host of the S3 API, e.g. `https://s3.us-east-1.amazonaws.com`
    /// or `http://127.0.0.1:9000` (MinIO).
    pub endpoint: String,
    /// The signing region (`us-east-1` for most S3-compatible stores).
    pub region: String,
    /// The bucket name.
    pub bucket: String,
    /// The access key id.
    pub access_key_id: String,
    /// The secret access key.
    pub secret_access_key: String,
    /// Address the bucket as `{bucket}.{endpoint host}` instead of the
    /// path-style `{endpoint}/{bucket}` (which MinIO and most self-hosted
    /// stores expect).
    pub virtual_host_style: bool,
    /// How object URLs are formed.
    pub urls: S3Urls,
    /// Time allowed for one request.
    pub timeout: Duration,
}

impl std::fmt::Debug for S3Options {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("S3Options")
            .field("endpoint", &self.endpoint)
            .field("region", &self.region)
            .field("bucket", &self.bucket)
            .field("access_key_id", &self.access_key_id)
            .field("virtual_host_style", &self.virtual_host_style)
            .field("urls", &self.urls)
            .finish_non_exhaustive()
    }
}

/// Scheme, host and path prefix of the bucket for the addressing style.
struct BucketAddress {
    scheme: String,
    /// `host[:port]`, the port only when not the scheme's default.
    host: String,
    /// `""` (virtual-hosted) or `/{bucket}` (path-style).
    prefix: String,
}

impl BucketAddress {
    fn new(opts: &S3Options) -> Result<Self> {
        let url = url::Url::parse(&opts.endpoint)
            .map_err(|e| blob_err(format!("S3 endpoint `{}`: {e}", opts.endpoint)))?;
        let host = url
            .host_str()
            .ok_or_else(|| blob_err("the S3 endpoint has no host"))?;
        // An endpoint already naming the bucket is addressed like OpenDAL
        // does: without it.
        let host = host
            .strip_prefix(&format!("{}.", opts.bucket))
            .unwrap_or(host);
        let port = url.port().map(|p| format!(":{p}")).unwrap_or_default();
        Ok(if opts.virtual_host_style {
            Self {
                scheme: url.scheme().to_owned(),
                host: format!("{}.{host}{port}", opts.bucket),
                prefix: String::new(),
            }
        } else {
            Self {
                scheme: url.scheme().to_owned(),
                host: format!("{host}{port}"),
                prefix: format!("/{}", opts.bucket),
            }
        })
    }

    /// `scheme://host[/bucket]`.
    fn base(&self) -> String {
        format!("{}://{}{}", self.scheme, self.host, self.prefix)
    }
}

/// Computes presigned GET URLs without a network round trip.
pub(super) struct Presigner {
    address: BucketAddress,
    region: String,
    access_key_id: String,
    secret_access_key: String,
    expiry: Duration,
}

impl std::fmt::Debug for Presigner {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Presigner")
            .field("base", &self.address.base())
            .field("region", &self.region)
            .field("access_key_id", &self.access_key_id)
            .field("expiry", &self.expiry)
            .finish_non_exhaustive()
    }
}

impl Presigner {
    /// A presigned GET URL for `key`, valid from now for the configured time.
    pub(super) fn url(&self, key: &str) -> String {
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_secs());
        let path = format!("{}/{key}", self.address.prefix);
        let request = PresignRequest {
            method: "GET",
            host: &self.address.host,
            path: &path,
            expires_secs: self.expiry.as_secs(),
        };
        let credentials = Credentials {
            access_key_id: &self.access_key_id,
            secret_access_key: &self.secret_access_key,
        };
        let signed = aws::presign(&request, &credentials, &self.region, aws::S3_SERVICE, now);
        format!(
            "{}://{}{}?{}",
            self.address.scheme, self.address.host, signed.path, signed.query
        )
    }
}

impl OpendalBlobStore {
    /// A store on the S3-compatible bucket described by `opts`.
    ///
    /// Credentials come from `opts` only: the environment, `~/.aws` files
    /// and the EC2 metadata service are never consulted.
    pub fn s3(opts: S3Options) -> Result<Self> {
        if opts.bucket.is_empty()
            || opts.access_key_id.is_empty()
            || opts.secret_access_key.is_empty()
        {
            return Err(blob_err("S3 needs a bucket and an access key pair"));
        }
        let mut opts = opts;
        opts.endpoint = opts.endpoint.trim_end_matches('/').to_owned();
        let address = BucketAddress::new(&opts)?;
        let mut builder = opendal::services::S3::default()
            .endpoint(&opts.endpoint)
            .region(&opts.region)
            .bucket(&opts.bucket)
            .access_key_id(&opts.access_key_id)
            .secret_access_key(&opts.secret_access_key)
            .disable_config_load()
            .disable_ec2_metadata();
        if opts.virtual_host_style {
            builder = builder.enable_virtual_host_style();
        }
        let http = lty_vendors::http::client(ClientOptions {
            // The blob adapters keep reqwest's default of following redirects.
            follow_redirects: true,
            ..ClientOptions::timeouts(Duration::from_secs(5), opts.timeout)
        })
        .map_err(blob_err)?;
        let transport = HttpTransporter::new(ReqwestTransport(http));
        let op = Operator::new(builder).map_err(blob_err)?;
        let op = {
            let ctx = op.context().with_http_transport(transport);
            op.with_context(ctx)
        };
        let urls = match opts.urls {
            S3Urls::Public { base } => Urls::Public(base.trim_end_matches('/').to_owned()),
            S3Urls::Presigned { expiry } => Urls::Presigned(Arc::new(Presigner {
                address,
                region: opts.region,
                access_key_id: opts.access_key_id,
                secret_access_key: opts.secret_access_key,
                expiry,
            })),
        };
        Ok(Self { op, urls })
    }
}

/// OpenDAL's HTTP transport on lty's `reqwest` client. Media objects are
/// small (audio clips, images), so response bodies are read whole.
struct ReqwestTransport(reqwest::Client);

fn transport_err(what: &'static str, err: reqwest::Error) -> opendal::Error {
    let temporary = err.is_timeout() || err.is_connect();
    let err = opendal::Error::new(opendal::ErrorKind::Unexpected, what).set_source(err);
    if temporary { err.set_temporary() } else { err }
}

impl HttpTransport for ReqwestTransport {
    async fn fetch(&self, req: http::Request<Buffer>) -> opendal::Result<http::Response<HttpBody>> {
        let (parts, body) = req.into_parts();
        let is_head = parts.method == http::Method::HEAD;
        let url = reqwest::Url::parse(&parts.uri.to_string()).map_err(|e| {
            opendal::Error::new(opendal::ErrorKind::Unexpected, "invalid request URL").set_source(e)
        })?;
        let mut builder = self
            .0
            .request(parts.method.clone(), url)
            .headers(parts.headers);
        if !body.is_empty() || matches!(parts.method, http::Method::PUT | http::Method::POST) {
            builder = builder.body(body.to_bytes());
        }
        let res = builder
            .send()
            .await
            .map_err(|e| transport_err("send the S3 request", e))?;
        let status = res.status();
        let version = res.version();
        let headers = res.headers().clone();
        let data: Bytes = res
            .bytes()
            .await
            .map_err(|e| transport_err("read the S3 response", e))?;
        let size = (!is_head).then_some(data.len() as u64);
        let chunks: Vec<opendal::Result<Buffer>> = if data.is_empty() {
            Vec::new()
        } else {
            vec![Ok(Buffer::from(data))]
        };
        let mut out = http::Response::new(HttpBody::new(futures_util::stream::iter(chunks), size));
        *out.status_mut() = status;
        *out.version_mut() = version;
        *out.headers_mut() = headers;
        Ok(out)
    }
}
