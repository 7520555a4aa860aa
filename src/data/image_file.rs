//! Image files of any format the `image` crate reads, as 8-bit RGB like PIL's `.convert('RGB')`.

use std::io::ErrorKind;
use std::path::Path;

use image::{DynamicImage, ImageFormat};

use crate::{bail, Context, Error, Result};

use super::parallel::fill_items;
use super::resize::write_resized_chw;

/// An 8-bit RGB image, rows top to bottom, pixels interleaved (HWC).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RgbImage8 {
    pub width: usize,
    pub height: usize,
    pub data: Vec<u8>,
}

impl RgbImage8 {
    pub fn new(width: usize, height: usize, data: Vec<u8>) -> Result<RgbImage8> {
        if width == 0 || height == 0 || data.len() != width * height * 3 {
            bail!(
                "an RGB image of {width}×{height} needs {} bytes, got {}",
                width * height * 3,
                data.len()
            );
        }
        Ok(RgbImage8 { width, height, data })
    }
}

/// Reads an image file as PIL's `Image.open(path).convert('RGB')` would: alpha dropped (not composited), grey
/// replicated, palettes looked up. Every error is one line that starts with the path.
pub fn load_rgb8(path: &Path) -> Result<RgbImage8> {
    let bytes = std::fs::read(path).map_err(|e| match e.kind() {
        ErrorKind::NotFound => Error(format!("{}: no such file", path.display())),
        _ => Error(format!("{}: cannot read: {e}", path.display())),
    })?;
    decode_rgb8(&bytes).context(path.display())
}

fn decode_rgb8(bytes: &[u8]) -> Result<RgbImage8> {
    if bytes.is_empty() {
        bail!("empty file");
    }
    // The content decides, never the file name, so a mislabelled file still loads and a non-image says so.
    let Ok(format) = image::guess_format(bytes) else {
        bail!("not an image (no PNG, JPEG, BMP, GIF, TIFF or WebP signature)");
    };
    if format == ImageFormat::Jpeg && !jpeg_is_complete(bytes) {
        bail!("truncated JPEG (no end-of-image marker after the image data)");
    }
    let img = image::load_from_memory_with_format(bytes, format).context(format!("cannot decode {format:?}"))?;
    let (width, height) = (img.width() as usize, img.height() as usize);
    if width == 0 || height == 0 {
        bail!("the image has no pixels ({width}×{height})");
    }
    RgbImage8::new(width, height, rgb8_like_pil(img))
}

/// Interleaved RGB bytes. PIL reads 16-bit colour and grey+alpha by keeping each sample's high byte, where
/// `image` would round to the nearest 8-bit level, so those are converted here. PIL's 16-bit greyscale (mode
/// I;16) converts to RGB by clipping at 255, which turns nearly every pixel white; the high byte is kept there too.
fn rgb8_like_pil(img: DynamicImage) -> Vec<u8> {
    fn high(v: u16) -> u8 {
        (v >> 8) as u8
    }
    match img {
        DynamicImage::ImageLuma16(b) => b.pixels().flat_map(|p| [high(p[0]); 3]).collect(),
        DynamicImage::ImageLumaA16(b) => b.pixels().flat_map(|p| [high(p[0]); 3]).collect(),
        DynamicImage::ImageRgb16(b) => b.pixels().flat_map(|p| p.0.map(high)).collect(),
        DynamicImage::ImageRgba16(b) => b.pixels().flat_map(|p| [high(p[0]), high(p[1]), high(p[2])]).collect(),
        other => other.into_rgb8().into_raw(),
    }
}

/// The JPEG decoder fills whatever a truncated file lacks with grey and reports success; PIL (without
/// LOAD_TRUNCATED_IMAGES) refuses such a file. So the file's segments are walked from the start-of-image marker
/// to its end-of-image marker, which a truncated file never reaches. Walking (rather than searching for the
/// marker bytes) skips embedded EXIF thumbnails and ignores what some cameras append after the image.
fn jpeg_is_complete(b: &[u8]) -> bool {
    let mut i = 2; // after SOI, which guess_format has seen
    loop {
        while b.get(i) == Some(&0xFF) && b.get(i + 1) == Some(&0xFF) {
            i += 1; // fill bytes before a marker
        }
        let (Some(&0xFF), Some(&code)) = (b.get(i), b.get(i + 1)) else {
            return false;
        };
        i += 2;
        match code {
            0xD9 => return true,
            0x01 | 0xD0..=0xD7 => {} // TEM and RSTn carry no length
            _ => {
                let Some(len) = b.get(i..i + 2) else {
                    return false;
                };
                i += u16::from_be_bytes([len[0], len[1]]) as usize;
                if code == 0xDA {
                    // Entropy-coded data runs up to the next marker other than stuffing (FF 00) or RSTn.
                    loop {
                        match (b.get(i), b.get(i + 1)) {
                            (Some(&0xFF), Some(&(0x00 | 0xD0..=0xD7))) => i += 2,
                            (Some(&0xFF), Some(_)) => break,
                            (Some(_), _) => i += 1,
                            (None, _) => return false,
                        }
                    }
                }
            }
        }
    }
}

/// The images at `paths`, each decoded, resized to `size`×`size` (PIL's bilinear filter) and laid out as CHW
/// bytes, concatenated in the order given. Decoding bounds evaluation on files (tens of µs an image on a CPU core,
/// where a GPU scores a triplet in about one), so they are decoded on all cores (see [`fill_items`]).
pub fn load_resized_bytes(paths: &[&Path], size: usize) -> Result<Vec<u8>> {
    let image_len = 3 * size * size;
    let mut out = vec![0u8; paths.len() * image_len];
    fill_items(&mut out, image_len, 32, |i, slot| {
        write_resized_chw(&load_rgb8(paths[i])?, size, slot);
        Ok(())
    })?;
    Ok(out)
}
