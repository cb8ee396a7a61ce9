//! `/api/ai/image/`: a picture in, what is in it out ([`crate::app::vision`]
//! stores it, asks the configured provider and checks the result).

use axum::body::Body;
use axum::extract::{DefaultBodyLimit, FromRequest, Multipart, Request, State};
use axum::http::{StatusCode, header};
use serde::Serialize;
use utoipa::ToSchema;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::app::vision;
use crate::auth::AuthUserId;
use crate::error::{ApiError, ApiResult, ErrorBody};
use crate::extract::Json;
use crate::state::AppState;

/// Image routes.
pub fn router() -> OpenApiRouter<AppState> {
    // The upload has its own limit (`LTY_IMAGE__MAX_BYTES`).
    OpenApiRouter::new()
        .routes(routes!(image))
        .layer(DefaultBodyLimit::disable())
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

fn too_large(max: usize) -> ApiError {
    ApiError::new(
        StatusCode::PAYLOAD_TOO_LARGE,
        "payload_too_large",
        format!("the image is larger than {max} bytes"),
    )
}

/// Reads the image of an upload: the raw body, or the first `file` (or
/// `image`) part of a multipart form, within `max` bytes.
async fn read_image(req: Request, max: usize) -> ApiResult<bytes::Bytes> {
    let is_form = req
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|ct| ct.to_ascii_lowercase().starts_with("multipart/form-data"));
    if !is_form {
        return axum::body::to_bytes(req.into_body(), max)
            .await
            .map_err(|_| too_large(max));
    }
    // Room for the part headers and boundaries around the image.
    let req = req.map(|b| Body::new(http_body_util::Limited::new(b, max + 16 * 1024)));
    let bad_form = |e: axum::extract::multipart::MultipartError| {
        if e.status() == StatusCode::PAYLOAD_TOO_LARGE {
            too_large(max)
        } else {
            ApiError::new(StatusCode::BAD_REQUEST, "invalid_body", e.body_text())
        }
    };
    let mut form = Multipart::from_request(req, &())
        .await
        .map_err(|e| ApiError::new(StatusCode::BAD_REQUEST, "invalid_body", e.body_text()))?;
    while let Some(field) = form.next_field().await.map_err(bad_form)? {
        if matches!(field.name(), Some("file" | "image")) {
            let data = field.bytes().await.map_err(bad_form)?;
            if data.len() > max {
                return Err(too_large(max));
            }
            return Ok(data);
        }
    }
    Err(lty_core::Error::validation("image", "no `file` or `image` part in the form").into())
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
    let data = read_image(req, state.config.image.max_bytes).await?;
    let seen = vision::recognize(&state, auth.user_id, data).await?;
    Ok(Json(ImageOut {
        image_url: seen.image_url,
        provider: seen.provider.to_owned(),
        labels: seen
            .labels
            .into_iter()
            .map(|l| LabelOut {
                name: l.name,
                confidence: l.confidence,
            })
            .collect(),
        description: seen.description,
        moderated: seen.moderated,
    }))
}
