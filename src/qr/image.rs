//! QR symbol images of a payload: SVG with `qrcode`'s renderer, PNG written from the module
//! matrix with the `png` crate (no `image` crate needed).
//!
//! Both use error correction level M (about 15% recovery, the usual choice for payment codes
//! that are shown on screens and printed at till points), black on white, with the standard
//! quiet zone of 4 modules.

use qrcode::render::svg;
use qrcode::types::QrError;
use qrcode::{Color, EcLevel, QrCode};

/// The quiet zone around the symbol, in modules (ISO/IEC 18004 requires 4).
pub(crate) const QUIET_ZONE: u32 = 4;

/// The largest PNG side in pixels. A version-40 symbol (177 modules + quiet zone) still fits at
/// 22 px per module; the cap keeps one request from allocating an unbounded image.
pub(crate) const MAX_PNG_SIDE: u32 = 4096;

#[derive(Debug, thiserror::Error)]
pub enum ImageError {
    #[error("the payload does not fit in a QR symbol: {0}")]
    Symbol(#[from] QrError),
    #[error("module size must be at least 1 pixel")]
    ZeroModuleSize,
    #[error("a {side} px image is larger than the {max} px limit")]
    TooLarge { side: u64, max: u32 },
    #[error("PNG encoding failed: {0}")]
    Png(#[from] png::EncodingError),
}

fn symbol(payload: &str) -> Result<QrCode, ImageError> {
    Ok(QrCode::with_error_correction_level(
        payload.as_bytes(),
        EcLevel::M,
    )?)
}

/// An SVG document of the payload's QR symbol (starts with `<?xml`).
pub fn svg(payload: &str) -> Result<String, ImageError> {
    let code = symbol(payload)?;
    // The renderer's quiet zone is 4 modules for a normal (non-micro) QR code.
    Ok(code
        .render::<svg::Color<'_>>()
        .quiet_zone(true)
        .dark_color(svg::Color("#000000"))
        .light_color(svg::Color("#ffffff"))
        .build())
}

/// A PNG of the payload's QR symbol: 8-bit grayscale, `module_px` pixels per module, a quiet
/// zone of 4 modules, so the side is `(modules + 8) * module_px`.
pub fn png(payload: &str, module_px: u32) -> Result<Vec<u8>, ImageError> {
    if module_px == 0 {
        return Err(ImageError::ZeroModuleSize);
    }
    let code = symbol(payload)?;
    let modules = code.width();
    let side_modules = modules + 2 * QUIET_ZONE as usize;
    let side = side_modules as u64 * u64::from(module_px);
    let side = match u32::try_from(side) {
        Ok(s) if s <= MAX_PNG_SIDE => s,
        _ => {
            return Err(ImageError::TooLarge {
                side,
                max: MAX_PNG_SIDE,
            })
        }
    };
    let colors = code.to_colors();
    let px = module_px as usize;
    let quiet = QUIET_ZONE as usize;
    let mut pixels = Vec::with_capacity(side as usize * side as usize);
    for row in 0..side_modules {
        // One module row, widened to pixels, then repeated module_px times.
        let mut line = Vec::with_capacity(side as usize);
        for col in 0..side_modules {
            let dark = row >= quiet
                && col >= quiet
                && row - quiet < modules
                && col - quiet < modules
                && colors.get((row - quiet) * modules + (col - quiet)) == Some(&Color::Dark);
            let value = if dark { 0u8 } else { 255u8 };
            line.extend(std::iter::repeat_n(value, px));
        }
        for _ in 0..px {
            pixels.extend_from_slice(&line);
        }
    }
    let mut out = Vec::new();
    {
        let mut encoder = png::Encoder::new(&mut out, side, side);
        encoder.set_color(png::ColorType::Grayscale);
        encoder.set_depth(png::BitDepth::Eight);
        let mut writer = encoder.write_header()?;
        writer.write_image_data(&pixels)?;
        writer.finish()?;
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    const PAYLOAD: &str = "00020126500010za.co.elec0132f82d7f64feea4f2ab24da94aaf5c2941";
    const PNG_SIGNATURE: [u8; 8] = [0x89, b'P', b'N', b'G', b'\r', b'\n', 0x1a, b'\n'];

    #[test]
    fn svg_is_an_svg_document() {
        let doc = svg(PAYLOAD).unwrap();
        assert!(doc.starts_with("<?xml") || doc.starts_with("<svg"), "{doc}");
        assert!(doc.contains("<svg"));
        assert!(doc.trim_end().ends_with("</svg>"));
    }

    #[test]
    fn png_has_the_expected_size_and_pixels() {
        let modules = QrCode::with_error_correction_level(PAYLOAD, EcLevel::M)
            .unwrap()
            .width() as u32;
        let module_px = 5;
        let bytes = png(PAYLOAD, module_px).unwrap();
        assert_eq!(bytes[..8], PNG_SIGNATURE);

        let decoder = png::Decoder::new(bytes.as_slice());
        let mut reader = decoder.read_info().unwrap();
        let info = reader.info();
        let side = (modules + 8) * module_px;
        assert_eq!((info.width, info.height), (side, side));
        assert_eq!(info.color_type, png::ColorType::Grayscale);
        assert_eq!(info.bit_depth, png::BitDepth::Eight);

        let mut buf = vec![0; reader.output_buffer_size()];
        reader.next_frame(&mut buf).unwrap();
        let at = |x: u32, y: u32| buf[(y * side + x) as usize];
        // The quiet zone is white; the finder pattern's corner (first module) is black.
        assert_eq!(at(0, 0), 255);
        assert_eq!(at(4 * module_px - 1, 4 * module_px - 1), 255);
        assert_eq!(at(4 * module_px, 4 * module_px), 0);
        assert!(buf.iter().all(|&p| p == 0 || p == 255));
    }

    #[test]
    fn bad_sizes_are_errors() {
        assert!(matches!(png(PAYLOAD, 0), Err(ImageError::ZeroModuleSize)));
        assert!(matches!(
            png(PAYLOAD, u32::MAX),
            Err(ImageError::TooLarge { .. })
        ));
        let too_long = "9".repeat(8000);
        assert!(matches!(svg(&too_long), Err(ImageError::Symbol(_))));
        assert!(matches!(png(&too_long, 1), Err(ImageError::Symbol(_))));
    }
}
