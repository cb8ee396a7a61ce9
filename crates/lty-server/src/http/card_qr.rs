//! `/api/card/{code}/qr.png` and `.svg`: a card's QR code, for operators
//! (admin token) and for the family that scanned or redeemed the card.

use axum::extract::{FromRequestParts, State};
use axum::http::header;
use axum::http::request::Parts;
use axum::response::{IntoResponse, Response};
use lty_core::card::CardCode;
use lty_core::token::{TokenKind, invalid_token};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::auth::{bearer_token, resolve_user};
use crate::error::{ApiError, ApiResult, ErrorBody};
use crate::extract::Path;
use crate::state::AppState;

/// QR image routes.
pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(qr_png))
        .routes(routes!(qr_svg))
}

/// Who asks for a QR image: an operator, or a user.
#[derive(Debug, Clone, Copy)]
pub enum Viewer {
    /// An active admin (any card).
    Admin,
    /// A user (cards the family scanned or redeemed).
    User(i64),
}

impl FromRequestParts<AppState> for Viewer {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, ApiError> {
        let token = bearer_token(parts)?;
        if let Some(id) = state.tokens.resolve(TokenKind::Admin, token).await? {
            return match state.db.admin(id).await? {
                Some(admin) if admin.is_active => Ok(Self::Admin),
                _ => Err(invalid_token().into()),
            };
        }
        Ok(Self::User(resolve_user(state, token).await?.id))
    }
}

fn card_not_found() -> ApiError {
    lty_core::Error::NotFound {
        what: "card",
        code: "card_not_found",
    }
    .into()
}

/// The card's printed code, if the viewer may see its QR image. A user who
/// never scanned or redeemed the card gets the same 404 as for an unknown
/// code, so codes cannot be probed.
async fn printable_code(state: &AppState, viewer: Viewer, code: &str) -> ApiResult<String> {
    let code = CardCode::parse(code)?;
    let (card, _) = state
        .db
        .card_by_code(&code)
        .await?
        .ok_or_else(card_not_found)?;
    if let Viewer::User(user_id) = viewer
        && !state.db.card_used_by(card.id, user_id).await?
    {
        return Err(card_not_found());
    }
    Ok(code.display())
}

fn image(content_type: &'static str, body: impl IntoResponse) -> Response {
    (
        [
            (header::CONTENT_TYPE, content_type),
            (header::CACHE_CONTROL, "private, max-age=3600"),
        ],
        body,
    )
        .into_response()
}

fn render_failed(err: crate::app::qr::QrError) -> ApiError {
    tracing::error!(%err, "cannot render a card QR code");
    ApiError::internal()
}

/// The card's QR code as a PNG image (greyscale, 8 px per module).
#[utoipa::path(get, path = "/api/card/{code}/qr.png", tag = "card",
    security(("bearer" = []), ("admin_bearer" = [])),
    params(("code" = String, Path, description = "card code, dashes optional")),
    responses((status = 200, description = "PNG image", content_type = "image/png"),
              (status = 400, body = ErrorBody), (status = 401, body = ErrorBody),
              (status = 404, description = "`card_not_found`", body = ErrorBody)))]
pub async fn qr_png(
    State(state): State<AppState>,
    viewer: Viewer,
    Path(code): Path<String>,
) -> ApiResult<Response> {
    let text = printable_code(&state, viewer, &code).await?;
    let png = crate::app::qr::png(&text).map_err(render_failed)?;
    Ok(image("image/png", png))
}

/// The card's QR code as an SVG image.
#[utoipa::path(get, path = "/api/card/{code}/qr.svg", tag = "card",
    security(("bearer" = []), ("admin_bearer" = [])),
    params(("code" = String, Path, description = "card code, dashes optional")),
    responses((status = 200, description = "SVG image", content_type = "image/svg+xml"),
              (status = 400, body = ErrorBody), (status = 401, body = ErrorBody),
              (status = 404, description = "`card_not_found`", body = ErrorBody)))]
pub async fn qr_svg(
    State(state): State<AppState>,
    viewer: Viewer,
    Path(code): Path<String>,
) -> ApiResult<Response> {
    let text = printable_code(&state, viewer, &code).await?;
    let svg = crate::app::qr::svg(&text).map_err(render_failed)?;
    Ok(image("image/svg+xml", svg))
}
