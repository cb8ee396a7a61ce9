//! QR codes of cards, as SVG and PNG images.

use qrcode::render::svg;
use qrcode::{EcLevel, QrCode};

/// Pixels per QR module in PNG images: 8 px modules print cleanly at
/// 300 dpi, and a card code needs one of the smallest symbol versions.
const PNG_SCALE: u32 = 8;
/// Blank modules around the symbol, as the QR specification requires.
const QUIET_ZONE: u32 = 4;

/// Why a QR image could not be made.
#[derive(Debug, thiserror::Error)]
pub enum QrError {
    #[error("text does not fit in a QR code: {0}")]
    Encode(#[from] qrcode::types::QrError),
    #[error("cannot encode PNG: {0}")]
    Png(#[from] png::EncodingError),
}

fn symbol(text: &str) -> Result<QrCode, QrError> {
    // Level M survives ~15 % damage: printed cards get scratched.
    Ok(QrCode::with_error_correction_level(
        text.as_bytes(),
        EcLevel::M,
    )?)
}

/// `text` as an SVG image.
pub fn svg(text: &str) -> Result<String, QrError> {
    Ok(symbol(text)?
        .render::<svg::Color>()
        .min_dimensions(256, 256)
        .quiet_zone(true)
        .build())
}

/// `text` as an 8-bit greyscale PNG image.
pub fn png(text: &str) -> Result<Vec<u8>, QrError> {
    let code = symbol(text)?;
    let modules = u32::try_from(code.width()).unwrap_or(0);
    let colors = code.to_colors();
    let side = (modules + 2 * QUIET_ZONE) * PNG_SCALE;
    let mut pixels = vec![255u8; (side * side) as usize];
    for (i, color) in colors.iter().enumerate() {
        if *color != qrcode::Color::Dark {
            continue;
        }
        let i = u32::try_from(i).unwrap_or(0);
        let (mx, my) = (i % modules + QUIET_ZONE, i / modules + QUIET_ZONE);
        for y in my * PNG_SCALE..(my + 1) * PNG_SCALE {
            let row = (y * side) as usize;
            pixels[row + (mx * PNG_SCALE) as usize..row + ((mx + 1) * PNG_SCALE) as usize].fill(0);
        }
    }
    let mut out = Vec::new();
    let mut encoder = png::Encoder::new(&mut out, side, side);
    encoder.set_color(png::ColorType::Grayscale);
    encoder.set_depth(png::BitDepth::Eight);
    let mut writer = encoder.write_header()?;
    writer.write_image_data(&pixels)?;
    writer.finish()?;
    Ok(out)
}
