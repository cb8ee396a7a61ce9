//! `/api/ai/image/`: a picture in, what is in it out. The upload is stored
//! as a temporary object under the legacy layout and handed to the
//! configured vision provider: Aliyun Visual Intelligence tagging (labels)
//! or the OpenAI-compatible chat provider's vision model (a description).
//! VI only downloads from OSS in its own region, so unless the stored
//! object is there the bytes go through the vendor's temporary upload.
//! The result passes the same output checks as a chat reply (blocked terms
//! and the moderation API); a block answers with the refusal message.

use std::sync::Arc;
use std::time::Duration;

use axum::extract::{DefaultBodyLimit, Request, State};
use axum::http::StatusCode;
use chrono::Utc;
use lty_core::chat::ChatError;
use lty_vendors::aliyun::AccessKey;
use lty_vendors::aliyun::vi::{self, ViClient, ViClientConfig, ViError, upload};
use lty_vendors::openai::{ChatClient, ChatClientConfig, Flavor, VisionRequest};
use serde::Serialize;
use serde_json::json;
use utoipa::ToSchema;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::app::chat::{Side, moderate, record_block};
use crate::app::speech::{Retention, object_key};
use crate::auth::AuthUserId;
use crate::config::Config;
use crate::error::{ApiError, ApiResult, ErrorBody};
use crate::extract::Json;
use crate::http::upload::Upload;
use crate::state::{AppState, StorageBackend, storage_backend};

/// Image routes.
pub fn router() -> OpenApiRouter<AppState> {
    // The upload has its own limit (`LTY_IMAGE__MAX_BYTES`).
    OpenApiRouter::new()
        .routes(routes!(image))
        .layer(DefaultBodyLimit::disable())
}

/// When Aliyun VI gets the image through its temporary upload
/// (`LTY_IMAGE__VI_UPLOAD`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ViUpload {
    /// Upload unless the stored object is on OSS in the VI region.
    Auto,
    /// Always upload.
    Always,
    /// Never upload: VI is given the stored object's URL.
    Never,
}

impl ViUpload {
    fn parse(value: &str) -> anyhow::Result<Self> {
        match value.trim() {
            "auto" | "" => Ok(Self::Auto),
            "always" => Ok(Self::Always),
            "never" => Ok(Self::Never),
            other => {
                anyhow::bail!("LTY_IMAGE__VI_UPLOAD must be auto, always or never, not {other:?}")
            }
        }
    }
}

/// The Aliyun provider: its client and when to upload.
pub struct AliyunVision {
    /// The `TaggingImage` / temporary-upload client.
    pub client: ViClient,
    /// `LTY_IMAGE__VI_UPLOAD`.
    pub upload: ViUpload,
    /// Whether the blob store is OSS (its URLs may then be VI's to fetch).
    pub oss_store: bool,
}

impl AliyunVision {
    /// Whether an image stored at `stored_url` must go through the
    /// temporary upload.
    pub fn needs_upload(&self, stored_url: &str) -> bool {
        match self.upload {
            ViUpload::Always => true,
            ViUpload::Never => false,
            ViUpload::Auto => {
                !(self.oss_store && vi::is_oss_url_in_region(stored_url, self.client.region()))
            }
        }
    }
}

/// The configured vision provider.
pub enum Vision {
    /// Aliyun Visual Intelligence `TaggingImage`: labels.
    Aliyun(AliyunVision),
    /// A vision model behind the OpenAI-compatible chat API: a description.
    OpenAi(ChatClient),
}

impl std::fmt::Debug for Vision {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.provider())
    }
}

impl Vision {
    /// The provider name in answers, errors and logs.
    pub fn provider(&self) -> &'static str {
        match self {
            Self::Aliyun(_) => "aliyun_vi",
            Self::OpenAi(_) => "openai",
        }
    }
}

/// The vision provider `image.provider` chooses (see
/// [`crate::config::ImageConfig`]); `None` when it lacks what it needs,
/// and the route then answers `503 provider_not_configured`.
pub fn vision(config: &Config) -> anyhow::Result<Option<Arc<Vision>>> {
    let vi = &config.aliyun.vi;
    let vi_keys = vi.access_key_id.as_ref().zip(vi.access_key_secret.as_ref());
    let llm_key = config.llm.api_key.as_ref();
    let model = config
        .image
        .model
        .as_deref()
        .map(str::trim)
        .filter(|m| !m.is_empty());
    let choice = match config.image.provider.as_deref().map(str::trim) {
        Some("aliyun") => "aliyun",
        Some("openai") => "openai",
        Some("none" | "") => "none",
        Some(other) => {
            anyhow::bail!("LTY_IMAGE__PROVIDER must be aliyun, openai or none, not {other:?}")
        }
        None if vi_keys.is_some() => "aliyun",
        None if llm_key.is_some() && model.is_some() => "openai",
        None => "none",
    };
    let timeout = Duration::from_secs(config.image.timeout_secs.max(1));
    let upload_mode = ViUpload::parse(&config.image.vi_upload)?;
    let built = match choice {
        "aliyun" => {
            let Some((id, secret)) = vi_keys else {
                tracing::warn!("image provider aliyun has no ALIYUN_VI_ACCESS_KEY_ID/SECRET");
                return Ok(None);
            };
            let client = ViClient::new(ViClientConfig {
                endpoint: vi
                    .endpoint
                    .clone()
                    .filter(|e| !e.trim().is_empty())
                    .unwrap_or_else(|| vi::DEFAULT_ENDPOINT.to_owned()),
                region: vi
                    .region
                    .clone()
                    .filter(|r| !r.trim().is_empty())
                    .unwrap_or_else(|| vi::DEFAULT_REGION.to_owned()),
                key: AccessKey::new(id, secret.expose()),
                openplatform_endpoint: vi
                    .openplatform_endpoint
                    .clone()
                    .filter(|e| !e.trim().is_empty())
                    .unwrap_or_else(|| upload::DEFAULT_OPENPLATFORM_ENDPOINT.to_owned()),
                upload_base_url: vi.upload_base_url.clone(),
                connect_timeout: Duration::from_secs(5),
                timeout,
            })
            .map_err(|e| {
                anyhow::anyhow!(
                    "ALIYUN_VI_ENDPOINT / LTY_ALIYUN__VI__OPENPLATFORM_ENDPOINT / LTY_ALIYUN__VI__UPLOAD_BASE_URL: {e}"
                )
            })?;
            Vision::Aliyun(AliyunVision {
                client,
                upload: upload_mode,
                oss_store: storage_backend(config)? == StorageBackend::Oss,
            })
        }
        "openai" => {
            let (Some(key), Some(model)) = (llm_key, model) else {
                tracing::warn!("image provider openai needs KIMI_API_KEY and LTY_IMAGE__MODEL");
                return Ok(None);
            };
            let llm = &config.llm;
            let client = ChatClient::new(ChatClientConfig {
                base_url: llm.base_url.clone(),
                api_key: key.expose().to_owned(),
                model: model.to_owned(),
                flavor: if llm.provider == "openai" {
                    Flavor::OpenAi
                } else {
                    Flavor::Moonshot
                },
                temperature: llm.temperature,
                max_tokens: llm.max_tokens,
                connect_timeout: Duration::from_millis(llm.connect_timeout_ms),
                first_byte_timeout: timeout,
                idle_timeout: timeout,
                max_retry_wait: Duration::from_secs(2),
            })
            .map_err(|e| anyhow::anyhow!("KIMI_BASE_URL / LTY_IMAGE__MODEL: {e}"))?;
            Vision::OpenAi(client)
        }
        _ => return Ok(None),
    };
    Ok(Some(Arc::new(built)))
}

/// A label of the image.
#[derive(Debug, Serialize, ToSchema)]
pub struct LabelOut {
    pub name: String,
    /// Confidence in percent, 0–100.
    pub confidence: f64,
}

/// What is in the image.
#[derive(Debug, Serialize, ToSchema)]
pub struct ImageOut {
    /// URL of the stored image (a temporary object).
    pub image_url: String,
    /// `aliyun_vi` or `openai`.
    pub provider: String,
    /// Labels, most confident first (Aliyun; empty for a description).
    pub labels: Vec<LabelOut>,
    /// A description (OpenAI-compatible vision), or the refusal message
    /// when the result was blocked; `null` for labels.
    pub description: Option<String>,
    /// The result was blocked (child safety): no labels, the refusal as
    /// the description.
    pub moderated: bool,
}

/// A recognized image format.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct ImageKind {
    ext: &'static str,
    media_type: &'static str,
}

/// The format of an image from its first bytes: JPEG, PNG, WebP or GIF.
fn sniff(data: &[u8]) -> Option<ImageKind> {
    let kind = |ext, media_type| Some(ImageKind { ext, media_type });
    if data.starts_with(&[0xff, 0xd8, 0xff]) {
        kind("jpg", "image/jpeg")
    } else if data.starts_with(b"\x89PNG\r\n\x1a\n") {
        kind("png", "image/png")
    } else if data.starts_with(b"GIF87a") || data.starts_with(b"GIF89a") {
        kind("gif", "image/gif")
    } else if data.len() >= 12 && data.starts_with(b"RIFF") && &data[8..12] == b"WEBP" {
        kind("webp", "image/webp")
    } else {
        None
    }
}

/// A failed VI call (temporary upload or tagging) as an API error: `429`
/// under the vendor's flow control, else `502 upstream_error` with the
/// vendor's code.
fn vi_error(err: &ViError) -> ApiError {
    tracing::warn!(%err, "aliyun VI failed");
    if let ViError::Rejected(e) = err
        && e.code.starts_with("Throttling")
    {
        return ApiError::new(
            StatusCode::TOO_MANY_REQUESTS,
            "upstream_rate_limited",
            "aliyun_vi is busy; retry in a few seconds",
        )
        .with_retry_after(5)
        .with_details(json!({ "provider": "aliyun_vi", "vendor_code": e.code, "retry_after": 5 }));
    }
    ApiError::from(lty_core::Error::Upstream {
        provider: "aliyun_vi",
        message: err.to_string(),
    })
    .with_details(json!({ "provider": "aliyun_vi", "vendor_code": err.vendor_code() }))
}

/// What the provider saw: labels or a description.
struct Seen {
    labels: Vec<LabelOut>,
    description: Option<String>,
}

/// Recognizes an image: labels or a description of what is in it.
///
/// Send it as the body (any content type) or as the `file` (or `image`)
/// part of a multipart form: JPEG, PNG, WebP or GIF by their leading bytes,
/// at most `LTY_IMAGE__MAX_BYTES` (5 MiB). The image is stored as a
/// temporary object, `{audio base dir}/image/temporary/{YYYYMMDD}/{32
/// hex}.{ext}`, and handed to the provider: Aliyun VI gets its URL when it
/// is on OSS in the VI region, else a copy in the vendor's temporary bucket
/// (`labels`); an OpenAI-compatible vision model gets it inline
/// (`description`). The result passes the output checks of a chat reply;
/// a block answers `moderated: true` with the refusal as the description.
#[utoipa::path(post, path = "/api/ai/image/", tag = "ai",
    security(("bearer" = [])),
    request_body(content = Vec<u8>, content_type = "image/jpeg",
        description = "JPEG, PNG, WebP or GIF, or a multipart form with a `file` part"),
    responses(
        (status = 200, body = ImageOut),
        (status = 400, description = "empty upload or malformed form", body = ErrorBody),
        (status = 401, body = ErrorBody),
        (status = 413, description = "larger than the upload limit", body = ErrorBody),
        (status = 415, description = "not JPEG/PNG/WebP/GIF (`unsupported_image_format`)", body = ErrorBody),
        (status = 429, description = "the provider's flow control", body = ErrorBody),
        (status = 502, description = "the provider failed (`upstream_error`)", body = ErrorBody),
        (status = 503, description = "no vision provider (`provider_not_configured`) or `provider_unavailable`", body = ErrorBody),
    ))]
#[tracing::instrument(skip_all, fields(user_id = auth.user_id))]
pub async fn image(
    State(state): State<AppState>,
    auth: AuthUserId,
    req: Request,
) -> ApiResult<Json<ImageOut>> {
    let vision = state.vision.clone().ok_or_else(|| {
        ApiError::from(lty_core::Error::ProviderNotConfigured { provider: "image" }).with_details(
            json!({ "provider": state.config.image.provider.as_deref().unwrap_or("image") }),
        )
    })?;
    let cfg = &state.config.image;
    let upload = Upload {
        what: "image",
        parts: &["file", "image"],
        max: cfg.max_bytes,
    };
    let data = upload.read(req).await?.data;
    if data.is_empty() {
        return Err(lty_core::Error::validation("image", "the upload is empty").into());
    }
    let kind = sniff(&data).ok_or_else(|| {
        ApiError::new(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "unsupported_image_format",
            "send a JPEG, PNG, WebP or GIF image",
        )
    })?;
    let file = format!("{:032x}.{}", rand::random::<u128>(), kind.ext);
    let base = format!("{}/image", state.speech.base_dir);
    let key = object_key(&base, Retention::Temporary, Utc::now(), &file);
    state.blobs.put(&key, data.clone(), kind.media_type).await?;
    let image_url = state.blobs.url(&key);
    let provider = vision.provider();
    let seen = match &*vision {
        Vision::Aliyun(aliyun) => {
            let client = &aliyun.client;
            let vi_url = if aliyun.needs_upload(&image_url) {
                client
                    .upload_image(&file, kind.media_type, data.clone())
                    .await
                    .map_err(|e| vi_error(&e))?
            } else {
                image_url.clone()
            };
            let tags = client.tag_image(&vi_url).await.map_err(|e| vi_error(&e))?;
            Ok(Seen {
                labels: tags
                    .into_iter()
                    .filter(|t| t.confidence >= cfg.min_confidence)
                    .take(cfg.max_labels)
                    .map(|t| LabelOut {
                        name: t.value.trim().to_owned(),
                        confidence: t.confidence,
                    })
                    .collect(),
                description: None,
            })
        }
        Vision::OpenAi(client) => {
            let preamble = state.config.ai.safety_preamble.trim();
            let request = VisionRequest {
                system: (!preamble.is_empty()).then(|| preamble.to_owned()),
                prompt: cfg.prompt.clone(),
                media_type: kind.media_type.to_owned(),
                image: data,
            };
            match client.describe_image(&request).await {
                Ok(reply) => Ok(Seen {
                    labels: Vec::new(),
                    description: Some(reply.content.trim().to_owned()),
                }),
                // The provider's own filter refused the picture.
                Err(ChatError::ContentFilter) => {
                    record_block("provider", auth.user_id);
                    Err(())
                }
                Err(e) => return Err(crate::app::chat::turn::upstream(provider, &e).into()),
            }
        }
    };
    let blocked_out = |image_url: String| ImageOut {
        image_url,
        provider: provider.to_owned(),
        labels: Vec::new(),
        description: Some(state.config.ai.refusal_message.clone()),
        moderated: true,
    };
    let Ok(seen) = seen else {
        return Ok(Json(blocked_out(image_url)));
    };
    let mut text: Vec<&str> = seen.labels.iter().map(|l| l.name.as_str()).collect();
    text.extend(seen.description.as_deref());
    if moderate(&state, Side::Output, auth.user_id, None, &text.join("\n")).await {
        return Ok(Json(blocked_out(image_url)));
    }
    Ok(Json(ImageOut {
        image_url,
        provider: provider.to_owned(),
        labels: seen.labels,
        description: seen.description,
        moderated: false,
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn images_are_recognized_by_their_leading_bytes() {
        assert_eq!(sniff(b"\xff\xd8\xff\xe0rest").unwrap().ext, "jpg");
        assert_eq!(sniff(b"\x89PNG\r\n\x1a\nrest").unwrap().ext, "png");
        assert_eq!(sniff(b"GIF89a....").unwrap().ext, "gif");
        assert_eq!(sniff(b"RIFF\x10\0\0\0WEBPVP8 ").unwrap().ext, "webp");
        assert!(sniff(b"RIFF\x10\0\0\0WAVEfmt ").is_none());
        assert!(sniff(b"%PDF-1.7").is_none());
        assert!(sniff(b"").is_none());
    }

    #[test]
    fn the_upload_mode_is_parsed_strictly() {
        assert_eq!(ViUpload::parse("auto").unwrap(), ViUpload::Auto);
        assert_eq!(ViUpload::parse(" always ").unwrap(), ViUpload::Always);
        assert_eq!(ViUpload::parse("never").unwrap(), ViUpload::Never);
        assert!(ViUpload::parse("sometimes").is_err());
    }

    #[test]
    fn auto_uploads_unless_the_store_is_oss_in_the_vi_region() {
        let client = ViClient::new(ViClientConfig {
            endpoint: vi::DEFAULT_ENDPOINT.into(),
            region: "cn-shanghai".into(),
            key: AccessKey::new("i", "s"),
            openplatform_endpoint: upload::DEFAULT_OPENPLATFORM_ENDPOINT.into(),
            upload_base_url: None,
            connect_timeout: Duration::from_secs(1),
            timeout: Duration::from_secs(1),
        })
        .unwrap();
        let mut aliyun = AliyunVision {
            client,
            upload: ViUpload::Auto,
            oss_store: true,
        };
        let oss = "https://b.oss-cn-shanghai.aliyuncs.com/a.png";
        assert!(!aliyun.needs_upload(oss));
        assert!(aliyun.needs_upload("https://b.oss-cn-beijing.aliyuncs.com/a.png"));
        assert!(aliyun.needs_upload("https://cdn.example.com/a.png"));
        aliyun.upload = ViUpload::Always;
        assert!(aliyun.needs_upload(oss));
        aliyun.upload = ViUpload::Never;
        assert!(!aliyun.needs_upload("http://127.0.0.1/media/a.png"));
        aliyun.upload = ViUpload::Auto;
        aliyun.oss_store = false;
        assert!(aliyun.needs_upload(oss));
    }
}
