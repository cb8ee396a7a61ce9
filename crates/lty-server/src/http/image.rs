//! `/api/ai/image/`: a picture in, what is in it out ([`crate::app::vision`]
//! stores it, asks the configured provider and checks the result).

use axum::extract::{DefaultBodyLimit, Request, State};
use serde::Serialize;
use utoipa::ToSchema;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::app::vision;
use crate::auth::AuthUserId;
use crate::error::{ApiResult, ErrorBody};
use crate::extract::Json;
use crate::http::upload::Upload;
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
    let upload = Upload {
        what: "image",
        parts: &["file", "image"],
        max: state.config.image.max_bytes,
    };
    let data = upload.read(req).await?.data;
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
