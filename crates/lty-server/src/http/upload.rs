//! Reading a one-file upload: the raw request body, or a file part of a
//! `multipart/form-data` form, within a byte limit (`413
//! payload_too_large` past it, `400 invalid_body` for a broken form). The
//! ASR, voice-chat and image routes read their uploads here; each names
//! the parts that may carry the file and any form fields it takes.

use axum::body::Body;
use axum::extract::multipart::MultipartError;
use axum::extract::{FromRequest, Multipart, Request};
use axum::http::{StatusCode, header};
use bytes::Bytes;

use crate::error::{ApiError, ApiResult};

/// Room a form may take beyond the file: part headers, boundaries and the
/// small fields around it.
const FORM_OVERHEAD: usize = 16 * 1024;

/// The upload a route takes.
#[derive(Debug, Clone, Copy)]
pub struct Upload {
    /// What the file is (`audio`, `image`): the field named by a `400` and
    /// the noun of a `413`.
    pub what: &'static str,
    /// The form parts that may carry the file; the first one sent is read.
    pub parts: &'static [&'static str],
    /// Largest file, in bytes.
    pub max: usize,
}

/// The file of an upload.
#[derive(Debug)]
pub struct UploadedFile {
    /// The file's bytes, at most [`Upload::max`].
    pub data: Bytes,
    /// The request's `Content-Type` for a raw body, the part's for a form;
    /// empty when not sent.
    pub content_type: String,
}

impl Upload {
    /// The file: the raw body, or the first file part of a form (the rest
    /// of the form is not read).
    pub async fn read(self, req: Request) -> ApiResult<UploadedFile> {
        self.read_with_fields(req, &[], |_, _| Ok(())).await
    }

    /// As [`Upload::read`], and every form field named in `fields` is handed
    /// to `on_field` as text, in the order sent; with fields to look for,
    /// the whole form is read. A raw body has no fields.
    pub async fn read_with_fields(
        self,
        req: Request,
        fields: &[&'static str],
        mut on_field: impl FnMut(&'static str, &str) -> ApiResult<()>,
    ) -> ApiResult<UploadedFile> {
        let content_type = req
            .headers()
            .get(header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .unwrap_or("")
            .to_owned();
        if !content_type
            .to_ascii_lowercase()
            .starts_with("multipart/form-data")
        {
            let data = axum::body::to_bytes(req.into_body(), self.max)
                .await
                .map_err(|_| self.too_large())?;
            return Ok(UploadedFile { data, content_type });
        }
        let limit = self.max + FORM_OVERHEAD;
        let req = req.map(|b| Body::new(http_body_util::Limited::new(b, limit)));
        let bad_form = |e: MultipartError| {
            if e.status() == StatusCode::PAYLOAD_TOO_LARGE {
                self.too_large()
            } else {
                ApiError::new(StatusCode::BAD_REQUEST, "invalid_body", e.body_text())
            }
        };
        let mut form = Multipart::from_request(req, &())
            .await
            .map_err(|e| ApiError::new(StatusCode::BAD_REQUEST, "invalid_body", e.body_text()))?;
        let mut file = None;
        while let Some(field) = form.next_field().await.map_err(bad_form)? {
            let is_file = field.name().is_some_and(|n| self.parts.contains(&n));
            if is_file && file.is_none() {
                let content_type = field.content_type().unwrap_or("").to_owned();
                let data = field.bytes().await.map_err(bad_form)?;
                if data.len() > self.max {
                    return Err(self.too_large());
                }
                let found = UploadedFile { data, content_type };
                if fields.is_empty() {
                    return Ok(found);
                }
                file = Some(found);
            } else if let Some(name) = field
                .name()
                .and_then(|n| fields.iter().copied().find(|f| *f == n))
            {
                let text = field.text().await.map_err(bad_form)?;
                on_field(name, &text)?;
            }
        }
        file.ok_or_else(|| {
            let parts: Vec<String> = self.parts.iter().map(|p| format!("`{p}`")).collect();
            let message = format!("no {} part in the form", parts.join(" or "));
            lty_core::Error::validation(self.what, message).into()
        })
    }

    fn too_large(self) -> ApiError {
        ApiError::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            "payload_too_large",
            format!("the {} is larger than {} bytes", self.what, self.max),
        )
    }
}
