//! Firmware releases for xiaozhi boards: an operator uploads an
//! application image for a board and a numeric version; the OTA check
//! offers the newest active release of the device's board (its build
//! variant `board.name` first, then its family `board.type`), and the
//! device downloads it from lty directly (status 200 with
//! `Content-Length`: the firmware follows no redirect and needs the length).

use bytes::Bytes;
use chrono::Utc;
use lty_core::xiaozhi::{FirmwareRelease, FirmwareVersion, NewFirmwareRelease, valid_board};
use lty_core::{Error, ErrorKind, Result};
use sha2::{Digest, Sha256};

use crate::state::AppState;

/// Largest image accepted: the largest OTA partition of the common boards
/// (4 MiB) with room to spare.
pub const MAX_IMAGE_BYTES: usize = 8 * 1024 * 1024;

/// First byte of an ESP32 application image header.
const ESP_IMAGE_MAGIC: u8 = 0xE9;
/// Where a merged full-flash image carries its partition table, and the
/// table's magic: such an image does not fit an OTA partition.
const PARTITION_TABLE_OFFSET: usize = 0x8000;
const PARTITION_TABLE_MAGIC: [u8; 2] = [0xAA, 0x50];

/// A release to upload.
#[derive(Debug, Clone)]
pub struct Upload {
    pub board: String,
    pub version: String,
    pub notes: Option<String>,
    pub image: Bytes,
}

fn invalid(field: &'static str, message: &str) -> Error {
    Error::validation(field, message.to_owned())
}

/// Checks that `image` is an application image the device can flash.
fn check_image(image: &[u8]) -> Result<()> {
    if image.is_empty() {
        return Err(invalid("file", "the image is empty"));
    }
    if image.len() > MAX_IMAGE_BYTES {
        return Err(Error::coded(
            ErrorKind::TooLarge,
            "payload_too_large",
            format!("the image is larger than {MAX_IMAGE_BYTES} bytes"),
        ));
    }
    if image[0] != ESP_IMAGE_MAGIC {
        return Err(invalid(
            "file",
            "not an ESP32 application image (the build's app .bin starts with 0xE9)",
        ));
    }
    if image.get(PARTITION_TABLE_OFFSET..PARTITION_TABLE_OFFSET + 2) == Some(&PARTITION_TABLE_MAGIC)
    {
        return Err(invalid(
            "file",
            "a merged full-flash image does not fit an OTA partition: upload the application image",
        ));
    }
    Ok(())
}

/// Stores the image and records the release (`firmware_exists` when the
/// board already has that version).
pub async fn upload(state: &AppState, admin_id: i64, up: Upload) -> Result<FirmwareRelease> {
    let board = up.board.trim().to_owned();
    if !valid_board(&board) {
        return Err(invalid(
            "board",
            "must be the board name: 1–64 of a-z, 0-9, `.`, `-`, `_`",
        ));
    }
    let version = up.version.trim().to_owned();
    if FirmwareVersion::parse(&version).is_none() {
        return Err(invalid(
            "version",
            "must be a numeric dotted version such as 2.4.3 (each part at most 9 digits)",
        ));
    }
    let notes = up
        .notes
        .map(|n| n.trim().to_owned())
        .filter(|n| !n.is_empty());
    if notes.as_ref().is_some_and(|n| n.chars().count() > 1000) {
        return Err(invalid("notes", "must be at most 1000 characters"));
    }
    check_image(&up.image)?;
    let sha256 = hex::encode(Sha256::digest(&up.image));
    let blob_key = format!("firmware/{board}/{version}-{}.bin", &sha256[..16]);
    state
        .blobs
        .put(&blob_key, up.image.clone(), "application/octet-stream")
        .await?;
    let size = i64::try_from(up.image.len()).unwrap_or(i64::MAX);
    let release = state
        .db
        .create_firmware_release(
            NewFirmwareRelease {
                board,
                version,
                blob_key,
                size,
                sha256,
                notes,
                created_by: Some(admin_id),
            },
            Utc::now(),
        )
        .await?;
    tracing::info!(release_id = release.id, board = %release.board, version = %release.version, "firmware release uploaded");
    Ok(release)
}

/// Where a device downloads `release`, under the HTTP origin `base`.
pub fn download_url(base: &str, release: &FirmwareRelease) -> String {
    format!(
        "{}/xiaozhi/firmware/{}/{}-{}.bin",
        base.trim_end_matches('/'),
        release.id,
        release.board,
        release.version
    )
}

/// The image of release `id` (retired ones included: a device may be
/// mid-download when a release is retired).
pub async fn image(state: &AppState, id: i64) -> Result<(FirmwareRelease, Bytes)> {
    let not_found = || Error::NotFound {
        what: "firmware release",
        code: "firmware_not_found",
    };
    let release = state.db.firmware_release(id).await?.ok_or_else(not_found)?;
    let data = state
        .blobs
        .get(&release.blob_key)
        .await?
        .ok_or_else(not_found)?;
    Ok((release, data))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_application_images_are_accepted() {
        assert!(check_image(&[0xE9, 0, 0, 0]).is_ok());
        assert!(check_image(&[]).is_err());
        assert!(check_image(&[0x00, 1]).is_err());
        let mut merged = vec![0u8; 0x9000];
        merged[0] = 0xE9;
        merged[0x8000] = 0xAA;
        merged[0x8001] = 0x50;
        assert!(check_image(&merged).is_err());
        assert!(check_image(&vec![0xE9; MAX_IMAGE_BYTES + 1]).is_err());
    }
}
