use bytemuck::{Pod, Zeroable};

use crate::distort::{gaussian_kernel1d, Distortion, DistortionParams, BLUR_HEIGHT, BLUR_WIDTH};
use crate::gpu::{linear_grid, Access, Dispatch, Gpu, Kernel, Tensor};
use crate::{bail, Result};

use super::{to_u32, DISTORT_WGSL, LINEAR_WORKGROUP};

const BINDINGS: &[Access] = &[Access::Read, Access::Read, Access::ReadWrite, Access::ReadWrite];

#[repr(C)]
#[derive(Clone, Copy, Pod, Zeroable)]
struct DistortParams {
    n: u32,
    h: u32,
    w: u32,
    groups_x: u32,
    /// Always 0: the shader ORs it into values to keep the compiler from fusing or re-associating them.
    zero: u32,
    _u: [u32; 3],
}

/// One image's record (shaders/distort.wgsl `Record`), 192 bytes.
#[repr(C)]
#[derive(Clone, Copy, Pod, Zeroable, Default)]
struct Record {
    /// 0 copy, 1 affine (rotate, translate, zoom), 2 darken, 3 hue, 4 blur.
    kind: u32,
    /// Darken factor or hue shift.
    value: f32,
    _u: [u32; 2],
    /// torchvision's rescaled theta: the inverse affine matrix rows divided by W/2 and H/2 in f32.
    theta: [f32; 8],
    blur_x: [f32; 12],
    blur_y: [f32; 24],
}

impl Record {
    /// The record of `p` for `size`×`size` images; None copies the image.
    fn new(p: Option<&DistortionParams>, size: usize) -> Result<Record> {
        let mut r = Record::default();
        let Some(p) = p else { return Ok(r) };
        // Records are written straight from the caller's values, so check them as user input.
        let p = DistortionParams::new(p.kind, p.values)?;
        match p.kind {
            Distortion::Rotate | Distortion::Translate | Distortion::Zoom => {
                r.kind = 1;
                let m = p.inverse_affine().expect("geometric distortions have a matrix");
                // _gen_affine_grid: theta.transpose(1, 2) / tensor([0.5 w, 0.5 h]), in f32.
                let half = (0.5 * size as f64) as f32;
                for i in 0..3 {
                    r.theta[i] = m[i] / half;
                    r.theta[3 + i] = m[3 + i] / half;
                }
            }
            Distortion::Darken => (r.kind, r.value) = (2, p.values[0]),
            Distortion::Hue => (r.kind, r.value) = (3, p.values[0]),
            Distortion::Blur => {
                // torch's reflect padding needs the pad (10 rows, 5 columns) to be smaller than the side.
                if size <= BLUR_HEIGHT / 2 {
                    bail!(
                        "blur needs images larger than {0}×{0} (its reflect padding is {0} rows), got {size}×{size}",
                        BLUR_HEIGHT / 2
                    );
                }
                r.kind = 4;
                r.blur_x[..BLUR_WIDTH].copy_from_slice(&gaussian_kernel1d(BLUR_WIDTH, p.values[0]));
                r.blur_y[..BLUR_HEIGHT].copy_from_slice(&gaussian_kernel1d(BLUR_HEIGHT, p.values[0]));
            }
        }
        Ok(r)
    }
}

/// A recorded distortion pass over `n` images of `size`×`size`: write the clean images into `input`, the
/// per-image parameters with [`DistortPlan::set_params`], run `dispatches` (two: the per-pixel kernel with the
/// blur's horizontal pass, then the blur's vertical pass), read `output`. Record once, reuse for every batch.
pub struct DistortPlan {
    pub n: usize,
    pub size: usize,
    pub input: Tensor,
    pub output: Tensor,
    pub dispatches: Vec<Dispatch>,
    records: wgpu::Buffer,
    _scratch: Tensor,
}

impl DistortPlan {
    pub fn new(gpu: &Gpu, n: usize, size: usize) -> Result<DistortPlan> {
        if size == 0 {
            bail!("distortions need images of at least 1×1");
        }
        let shape = [n, 3, size, size];
        let input = gpu.zeros("clean images", &shape)?;
        let output = gpu.zeros("distorted images", &shape)?;
        let scratch = gpu.zeros("blur scratch", &shape)?;
        // At least one record so the binding is never smaller than its element.
        let records = gpu.upload_pod("distortions", &vec![Record::default(); n.max(1)])?;
        let pixels = to_u32(n * size * size, "pixels")?;
        let (gx, gz) = linear_grid(gpu, pixels.div_ceil(LINEAR_WORKGROUP));
        let params = DistortParams {
            n: to_u32(n, "images")?,
            h: size as u32,
            w: size as u32,
            groups_x: gx,
            zero: 0,
            _u: [0; 3],
        };
        let resources = [
            input.binding(),
            records.as_entire_binding(),
            output.binding(),
            scratch.binding(),
        ];
        let mut dispatches = Vec::new();
        for entry in ["distort_pixel", "blur_vertical"] {
            let kernel = Kernel {
                family: "distort",
                source: DISTORT_WGSL,
                entry,
                bindings: BINDINGS,
            };
            dispatches.push(Dispatch::new(
                gpu,
                gpu.pipeline(&kernel)?,
                entry,
                &params,
                &resources,
                [gx, 1, gz],
            )?);
        }
        Ok(DistortPlan {
            n,
            size,
            input,
            output,
            dispatches,
            records,
            _scratch: scratch,
        })
    }

    /// One entry per image: its distortion, or None to copy it unchanged. Checks every entry first, so an
    /// error leaves the previous records in place.
    pub fn set_params(&self, gpu: &Gpu, params: &[Option<DistortionParams>]) -> Result<()> {
        if params.len() != self.n {
            bail!("{} distortion parameters for {} images", params.len(), self.n);
        }
        let records = params
            .iter()
            .enumerate()
            .map(|(i, p)| Record::new(p.as_ref(), self.size).map_err(|e| e.context(format!("image {i}"))))
            .collect::<Result<Vec<_>>>()?;
        gpu.write_pod(&self.records, &records)
    }
}
