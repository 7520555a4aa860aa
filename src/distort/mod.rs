//! The paper's six distortions (PROTOCOL.md §3, the paper's Table 2): names, parameter draws and checks. What
//! torchvision 0.11 derives from the parameters is in [`torchvision`]; the pixels are computed on the GPU by
//! shaders/distort.wgsl through [`crate::kernels::distort::DistortPlan`].

mod torchvision;

pub use torchvision::{gaussian_kernel1d, BLUR_HEIGHT, BLUR_WIDTH};

use rand::Rng;

use crate::{bail, Error, Result};

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Distortion {
    Rotate,
    Translate,
    Darken,
    Hue,
    Blur,
    Zoom,
}

impl Distortion {
    pub const ALL: [Distortion; 6] = [
        Distortion::Rotate,
        Distortion::Translate,
        Distortion::Darken,
        Distortion::Hue,
        Distortion::Blur,
        Distortion::Zoom,
    ];

    /// Accepts the paper code's names too: color = hue, brightness = darken, zoom_in = zoom.
    pub fn parse(name: &str) -> Result<Distortion> {
        Ok(match name.trim().to_ascii_lowercase().as_str() {
            "rotate" => Distortion::Rotate,
            "translate" => Distortion::Translate,
            "darken" | "brightness" => Distortion::Darken,
            "hue" | "color" => Distortion::Hue,
            "blur" => Distortion::Blur,
            "zoom" | "zoom_in" => Distortion::Zoom,
            other => bail!(
                "unknown distortion {other:?}; the six are rotate, translate, darken, hue, blur, zoom \
                 (the paper's code names brightness, color and zoom_in are accepted too)"
            ),
        })
    }

    pub fn name(self) -> &'static str {
        match self {
            Distortion::Rotate => "rotate",
            Distortion::Translate => "translate",
            Distortion::Darken => "darken",
            Distortion::Hue => "hue",
            Distortion::Blur => "blur",
            Distortion::Zoom => "zoom",
        }
    }
}

/// One distortion with its parameters: degrees counter-clockwise (rotate), whole pixels dx, dy (translate),
/// factor (darken), shift (hue), σ (blur), scale (zoom). Unused values are 0.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct DistortionParams {
    pub kind: Distortion,
    pub values: [f32; 2],
}

impl DistortionParams {
    /// Draws the parameters from Table 2's intervals for `size`×`size` images. Reproducibility depends on the
    /// exact stream, so: every value is one `rng.random_range(lo..hi)` over **f64** (one `u64` from `rng`),
    /// rounded to f32 afterwards, in this order: rotate angle U(30, 330)°; translate dx = round(U(−S/2, S/2))
    /// then dy likewise (round half to even, as Python's `round`); darken U(0.1, 0.5); hue U(−0.5, 0.5); blur
    /// σ U(4, 10); zoom U(1.1, 2.0). Rounding to f32 may land on an interval's upper end.
    pub fn draw(kind: Distortion, rng: &mut impl Rng, size: usize) -> DistortionParams {
        let half = 0.5 * size as f64;
        let values = match kind {
            Distortion::Rotate => [rng.random_range(30.0..330.0), 0.0],
            Distortion::Translate => {
                let dx = rng.random_range(-half..half).round_ties_even();
                let dy = rng.random_range(-half..half).round_ties_even();
                [dx, dy]
            }
            Distortion::Darken => [rng.random_range(0.1..0.5), 0.0],
            Distortion::Hue => [rng.random_range(-0.5..0.5), 0.0],
            Distortion::Blur => [rng.random_range(4.0..10.0), 0.0],
            Distortion::Zoom => [rng.random_range(1.1..2.0), 0.0],
        };
        DistortionParams {
            kind,
            values: [values[0] as f32, values[1] as f32],
        }
    }

    /// User-given parameters, checked: finite; whole-pixel translation; darken factor ≥ 0; hue shift in
    /// [−0.5, 0.5] (torchvision's own check); σ > 0; zoom scale > 0. Any angle. Values a distortion does not
    /// use must be 0.
    pub fn new(kind: Distortion, values: [f32; 2]) -> Result<DistortionParams> {
        let [v, w] = values;
        if !v.is_finite() || !w.is_finite() {
            bail!("{} parameters must be finite, got {values:?}", kind.name());
        }
        match kind {
            Distortion::Translate if v.fract() != 0.0 || w.fract() != 0.0 => {
                bail!("translate moves whole pixels, got dx = {v}, dy = {w}")
            }
            Distortion::Translate => {}
            _ if w != 0.0 => bail!("{} takes one parameter, got a second one ({w})", kind.name()),
            Distortion::Darken if v < 0.0 => bail!("the darken factor must be ≥ 0, got {v}"),
            Distortion::Hue if !(-0.5..=0.5).contains(&v) => bail!("the hue shift must be in [-0.5, 0.5], got {v}"),
            Distortion::Blur if v <= 0.0 => bail!("blur σ must be > 0, got {v}"),
            Distortion::Zoom if v <= 0.0 => bail!("the zoom scale must be > 0, got {v}"),
            _ => {}
        }
        Ok(DistortionParams { kind, values })
    }

    /// Parses `--param`: degrees (rotate), `DX,DY` whole pixels (translate), factor (darken), shift (hue),
    /// σ (blur) or scale (zoom).
    pub fn parse_param(kind: Distortion, text: &str) -> Result<DistortionParams> {
        let nums: Vec<f32> = text
            .split(',')
            .map(|t| t.trim().parse::<f32>())
            .collect::<std::result::Result<_, _>>()
            .map_err(|_| {
                Error::msg(format!(
                    "--param {text:?} for {}: expected {}",
                    kind.name(),
                    Self::param_help(kind)
                ))
            })?;
        let values = match (kind, nums.as_slice()) {
            (Distortion::Translate, [dx, dy]) => [*dx, *dy],
            (Distortion::Translate, _) => bail!("translate takes --param DX,DY (whole pixels), got {text:?}"),
            (_, [v]) => [*v, 0.0],
            _ => bail!(
                "{} takes one number ({}), got {text:?}",
                kind.name(),
                Self::param_help(kind)
            ),
        };
        Self::new(kind, values)
    }

    fn param_help(kind: Distortion) -> &'static str {
        match kind {
            Distortion::Rotate => "degrees counter-clockwise",
            Distortion::Translate => "DX,DY in whole pixels",
            Distortion::Darken => "the brightness factor",
            Distortion::Hue => "the hue shift in [-0.5, 0.5]",
            Distortion::Blur => "σ in pixels",
            Distortion::Zoom => "the scale",
        }
    }

    pub fn describe(&self) -> String {
        match self.kind {
            Distortion::Translate => format!("translate {},{}", self.values[0], self.values[1]),
            k => format!("{} {}", k.name(), self.values[0]),
        }
    }
}
