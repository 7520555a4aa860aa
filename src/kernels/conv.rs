use bytemuck::{Pod, Zeroable};

use crate::gpu::{linear_grid, Access, Dispatch, Gpu, Kernel, Tensor};
use crate::{bail, Result};

use super::{to_u32, CONV_WGSL};

/// Geometry of one convolution (square kernel, equal stride and padding on both axes, as in the three nets).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ConvShape {
    pub cin: usize,
    pub cout: usize,
    pub kernel: usize,
    pub stride: usize,
    pub pad: usize,
}

impl ConvShape {
    /// Output side for an input side, or None when the window does not fit.
    pub fn output_side(&self, side: usize) -> Option<usize> {
        let padded = side + 2 * self.pad;
        (padded >= self.kernel && self.stride > 0).then(|| (padded - self.kernel) / self.stride + 1)
    }
}

/// Block of the barrier-free variant: channels and columns per invocation (DIRECT_M, DIRECT_N in conv.wgsl).
const DIRECT_M: usize = 4;
const DIRECT_N: usize = 4;
const CONV2D_DIRECT: Kernel = Kernel {
    family: "conv",
    source: CONV_WGSL,
    entry: "conv2d_forward_direct",
    bindings: &[Access::Read, Access::Read, Access::Read, Access::ReadWrite],
};
const CONV2D: Kernel = Kernel {
    family: "conv",
    source: CONV_WGSL,
    entry: "conv2d_forward",
    bindings: &[Access::Read, Access::Read, Access::Read, Access::ReadWrite],
};

#[repr(C)]
#[derive(Clone, Copy, Pod, Zeroable)]
struct ConvParams {
    batch: u32,
    cin: u32,
    h: u32,
    w: u32,
    cout: u32,
    kh: u32,
    kw: u32,
    stride: u32,
    pad: u32,
    ho: u32,
    wo: u32,
    c_off: u32,
    ctot: u32,
    relu: u32,
    groups_x: u32,
    _unused: u32,
}

/// `y[:, c_off..c_off+cout] = conv(x, weight) + bias`, then ReLU when `relu`.
/// `x` is [B, cin, H, W]; `y` is [B, Ctot, Ho, Wo] with Ctot ≥ c_off + cout.
#[allow(clippy::too_many_arguments)]
pub fn conv2d(
    gpu: &Gpu,
    shape: ConvShape,
    x: &Tensor,
    weight: &Tensor,
    bias: &Tensor,
    y: &Tensor,
    c_off: usize,
    relu: bool,
) -> Result<Dispatch> {
    let [b, cin, h, w] = dims4(x, "conv input")?;
    let [yb, ctot, ho, wo] = dims4(y, "conv output")?;
    let k = shape.kernel;
    if cin != shape.cin || weight.shape != [shape.cout, shape.cin, k, k] || bias.shape != [shape.cout] {
        bail!(
            "conv: input {:?}, weight {:?} and bias {:?} do not fit {shape:?}",
            x.shape,
            weight.shape,
            bias.shape
        );
    }
    if yb != b || Some(ho) != shape.output_side(h) || Some(wo) != shape.output_side(w) || c_off + shape.cout > ctot {
        bail!(
            "conv: output {:?} does not fit input {:?} and {shape:?} at channel {c_off}",
            y.shape,
            x.shape
        );
    }
    let columns = b * ho * wo;
    // CPU adapters get the barrier-free variant (workgroup: 64 invocations × DIRECT_N columns, DIRECT_M channels).
    let (kernel, rows_per_group, cols_per_group) = if gpu.barrier_free {
        (&CONV2D_DIRECT, DIRECT_M, 64 * DIRECT_N)
    } else {
        (&CONV2D, 64, 64)
    };
    let (gx, gz) = linear_grid(gpu, to_u32(columns.div_ceil(cols_per_group), "conv columns")?);
    let gy = to_u32(shape.cout.div_ceil(rows_per_group), "conv rows")?;
    let params = ConvParams {
        batch: to_u32(b, "batch")?,
        cin: cin as u32,
        h: h as u32,
        w: w as u32,
        cout: shape.cout as u32,
        kh: k as u32,
        kw: k as u32,
        stride: shape.stride as u32,
        pad: shape.pad as u32,
        ho: ho as u32,
        wo: wo as u32,
        c_off: c_off as u32,
        ctot: ctot as u32,
        relu: relu as u32,
        groups_x: gx,
        _unused: 0,
    };
    let pipeline = gpu.pipeline(kernel)?;
    Dispatch::new(
        gpu,
        pipeline,
        kernel.entry,
        &params,
        &[x.binding(), weight.binding(), bias.binding(), y.binding()],
        [gx, gy, gz],
    )
}

pub(crate) fn dims4(t: &Tensor, what: &str) -> Result<[usize; 4]> {
    match t.shape[..] {
        [a, b, c, d] => Ok([a, b, c, d]),
        _ => bail!("{what}: expected a 4-d tensor, got shape {:?}", t.shape),
    }
}
