//! Pillow's `Image.resize(size, Image.BILINEAR)` for 8-bit RGB images, byte for byte (libImaging/Resample.c):
//! a horizontal then a vertical pass, each skipped when its axis keeps its size; each with the triangle filter
//! stretched by the downscale factor (so shrinking antialiases), weights normalised per output pixel and quantised
//! to 22-bit fixed point; and every pass rounded and clipped to 8 bits. Checked against Pillow 13; older releases
//! took each tap range with floor/ceil instead of rounding, which only adds taps of weight zero.

use super::RgbImage8;

/// Pillow's `PRECISION_BITS`: 8 bits for the result and 2 spare for overshoot leave 22 in an i32.
const PRECISION_BITS: u32 = 32 - 8 - 2;
/// Every weighted sum starts from one half, so that `clip8`'s shift rounds.
const HALF: i32 = 1 << (PRECISION_BITS - 1);

/// One pass's filter: for every output position, the first input used and the fixed-point weights of the inputs
/// from there on (Pillow's `precompute_coeffs` then `normalize_coeffs_8bpc`).
struct Taps {
    first: Vec<usize>,
    weights: Vec<Vec<i32>>,
}

fn triangle(x: f64) -> f64 {
    (1.0 - x.abs()).max(0.0)
}

/// Every step in f64 and in Pillow's order, since a different rounding of a weight can move an output by one level.
fn taps(in_size: usize, out_size: usize) -> Taps {
    let scale = in_size as f64 / out_size as f64;
    let filter_scale = scale.max(1.0);
    let support = filter_scale; // the triangle's support is 1
    let inv = 1.0 / filter_scale;
    let mut first = Vec::with_capacity(out_size);
    let mut weights = Vec::with_capacity(out_size);
    for out in 0..out_size {
        let center = (out as f64 + 0.5) * scale;
        // Pillow rounds with C's (int)(v + 0.5), i.e. truncation toward zero, before clamping to the image.
        let lo = ((center - support + 0.5) as i64).max(0) as usize;
        let hi = ((center + support + 0.5) as i64).min(in_size as i64) as usize;
        let w: Vec<f64> = (lo..hi).map(|i| triangle((i as f64 - center + 0.5) * inv)).collect();
        let total: f64 = w.iter().sum();
        let norm = if total != 0.0 { total } else { 1.0 };
        // The triangle is never negative, so Pillow's (int)(0.5 + w * 2^22) is the rounding used.
        weights.push(
            w.iter()
                .map(|&v| (0.5 + v / norm * (1 << PRECISION_BITS) as f64) as i32)
                .collect(),
        );
        first.push(lo);
    }
    Taps { first, weights }
}

/// Pillow's clip8.
fn clip8(acc: i32) -> u8 {
    (acc >> PRECISION_BITS).clamp(0, 255) as u8
}

/// Resizes to `out_w`×`out_h` exactly as Pillow's bilinear resize does.
///
/// # Panics
/// If a size of the image or the target is zero (Pillow raises ValueError); callers check sizes from users.
pub fn resize_bilinear_pil(img: &RgbImage8, out_w: usize, out_h: usize) -> RgbImage8 {
    assert!(
        img.width > 0 && img.height > 0 && out_w > 0 && out_h > 0,
        "cannot resize {}×{} to {out_w}×{out_h}: sizes must be positive",
        img.width,
        img.height
    );
    let horizontal = (out_w != img.width).then(|| resize_rows(img, out_w));
    let src = horizontal.as_ref().unwrap_or(img);
    if out_h == src.height {
        return horizontal.unwrap_or_else(|| img.clone());
    }
    resize_columns(src, out_h)
}

fn resize_rows(img: &RgbImage8, out_w: usize) -> RgbImage8 {
    let t = taps(img.width, out_w);
    let mut data = vec![0u8; out_w * img.height * 3];
    for (src, dst) in img
        .data
        .chunks_exact(img.width * 3)
        .zip(data.chunks_exact_mut(out_w * 3))
    {
        for (px, (&lo, k)) in dst.chunks_exact_mut(3).zip(t.first.iter().zip(&t.weights)) {
            for (c, d) in px.iter_mut().enumerate() {
                let acc = k
                    .iter()
                    .enumerate()
                    .fold(HALF, |acc, (j, &kw)| acc + src[(lo + j) * 3 + c] as i32 * kw);
                *d = clip8(acc);
            }
        }
    }
    RgbImage8 {
        width: out_w,
        height: img.height,
        data,
    }
}

fn resize_columns(img: &RgbImage8, out_h: usize) -> RgbImage8 {
    let t = taps(img.height, out_h);
    let row = img.width * 3;
    let mut data = vec![0u8; out_h * row];
    for (dst, (&lo, k)) in data.chunks_exact_mut(row).zip(t.first.iter().zip(&t.weights)) {
        for (i, d) in dst.iter_mut().enumerate() {
            let acc = k
                .iter()
                .enumerate()
                .fold(HALF, |acc, (j, &kw)| acc + img.data[(lo + j) * row + i] as i32 * kw);
            *d = clip8(acc);
        }
    }
    RgbImage8 {
        width: img.width,
        height: out_h,
        data,
    }
}

/// `img` resized to `size`×`size` (PIL's bilinear filter, skipped when it has that size already) into `out`
/// (3·size² bytes) as CHW bytes.
pub(super) fn write_resized_chw(img: &RgbImage8, size: usize, out: &mut [u8]) {
    let resized;
    let small = if img.width == size && img.height == size {
        img
    } else {
        resized = resize_bilinear_pil(img, size, size);
        &resized
    };
    let plane = size * size;
    for (i, px) in small.data.chunks_exact(3).enumerate() {
        for ch in 0..3 {
            out[ch * plane + i] = px[ch];
        }
    }
}

/// CHW bytes, the layout every image tensor of this crate has.
pub fn to_chw_bytes(img: &RgbImage8) -> Vec<u8> {
    let plane = img.width * img.height;
    let mut out = vec![0u8; 3 * plane];
    for (i, px) in img.data.chunks_exact(3).enumerate() {
        for c in 0..3 {
            out[c * plane + i] = px[c];
        }
    }
    out
}

/// CHW floats in [0, 1] (value / 255), as torchvision's `to_tensor`.
pub fn to_unit_chw(img: &RgbImage8) -> Vec<f32> {
    to_chw_bytes(img).into_iter().map(|v| v as f32 / 255.0).collect()
}
