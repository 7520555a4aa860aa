//! What torchvision 0.11 derives from a distortion's parameters before touching pixels, in its own arithmetic:
//! the inverse affine matrix of `F.rotate` / `F.affine` and the 1-D Gaussian of `F.gaussian_blur`.

use super::{Distortion, DistortionParams};

/// The blur kernel's fixed size (PROTOCOL.md §3): 11 taps across, 21 down.
pub const BLUR_WIDTH: usize = 11;
pub const BLUR_HEIGHT: usize = 21;

impl DistortionParams {
    /// torchvision's `_get_inverse_affine_matrix` (centre 0, no shear) for rotate, translate and zoom, computed
    /// in double as Python does and rounded to f32 as `torch.tensor(matrix, dtype=float32)` does; None for
    /// the other distortions. Maps output pixel offsets from the centre to source offsets:
    /// `src = (m0 x + m1 y + m2, m3 x + m4 y + m5)`.
    pub fn inverse_affine(&self) -> Option<[f32; 6]> {
        // rotate() passes −angle; affine() passes translate and scale with angle 0.
        let (angle, tx, ty, scale) = match self.kind {
            Distortion::Rotate => (-(self.values[0] as f64), 0.0, 0.0, 1.0),
            Distortion::Translate => (0.0, self.values[0] as f64, self.values[1] as f64, 1.0),
            Distortion::Zoom => (0.0, 0.0, 0.0, self.values[0] as f64),
            _ => return None,
        };
        let rot = angle.to_radians();
        // With zero shear torchvision's a, b, c, d reduce to the plain rotation (its extra terms are ±0).
        let (a, b, c, d) = (rot.cos(), -rot.sin(), rot.sin(), rot.cos());
        let mut m = [d, -b, 0.0, -c, a, 0.0].map(|v| v / scale);
        m[2] += m[0] * -tx + m[1] * -ty;
        m[5] += m[3] * -tx + m[4] * -ty;
        Some(m.map(|v| v as f32))
    }
}

/// torchvision's `_get_gaussian_kernel1d(taps, sigma)` in float32: taps at x = −(taps−1)/2 … (taps−1)/2,
/// exp(−0.5 (x/σ)²), divided by their sum (accumulated in f64 and rounded once, which is what torch's
/// pairwise sum gets to within an ulp).
pub fn gaussian_kernel1d(taps: usize, sigma: f32) -> Vec<f32> {
    let half = (taps as f32 - 1.0) * 0.5;
    let pdf: Vec<f32> = (0..taps)
        .map(|i| {
            let u = (i as f32 - half) / sigma;
            (-0.5 * (u * u)).exp()
        })
        .collect();
    let total = pdf.iter().map(|&v| v as f64).sum::<f64>() as f32;
    pdf.iter().map(|v| v / total).collect()
}
