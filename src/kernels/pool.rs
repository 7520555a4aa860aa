use bytemuck::{Pod, Zeroable};

use crate::gpu::{linear_grid, Access, Dispatch, Gpu, Kernel, Tensor};
use crate::{bail, Result};

use super::conv::dims4;
use super::{to_u32, LINEAR_WORKGROUP, POOL_WGSL};

/// A max-pool window (no padding, as in the three nets).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PoolShape {
    pub kernel: usize,
    pub stride: usize,
    pub ceil_mode: bool,
}

impl PoolShape {
    /// PyTorch's output size: floor or ceil of (side - k)/s + 1, where in ceil mode the last window must start
    /// inside the input.
    pub fn output_side(&self, side: usize) -> Option<usize> {
        if side < self.kernel || self.stride == 0 {
            return None;
        }
        let span = side - self.kernel;
        let mut out = if self.ceil_mode {
            span.div_ceil(self.stride)
        } else {
            span / self.stride
        } + 1;
        if self.ceil_mode && (out - 1) * self.stride >= side {
            out -= 1;
        }
        Some(out)
    }
}

const MAXPOOL2D: Kernel = Kernel {
    family: "pool",
    source: POOL_WGSL,
    entry: "maxpool2d_forward",
    bindings: &[Access::Read, Access::ReadWrite],
};

#[repr(C)]
#[derive(Clone, Copy, Pod, Zeroable)]
struct PoolParams {
    planes: u32,
    h: u32,
    w: u32,
    ho: u32,
    wo: u32,
    kernel: u32,
    stride: u32,
    groups_x: u32,
    accumulate: u32,
    _pad: [u32; 3],
}

/// x, y and the argmax map.
const MAXPOOL2D_ARGMAX: Kernel = Kernel {
    family: "pool",
    source: POOL_WGSL,
    entry: "maxpool2d_forward_argmax",
    bindings: &[Access::Read, Access::ReadWrite, Access::ReadWrite],
};
/// The argmax map, gy and grad_x.
const MAXPOOL2D_BACKWARD: Kernel = Kernel {
    family: "pool",
    source: POOL_WGSL,
    entry: "maxpool2d_backward",
    bindings: &[Access::Read, Access::Read, Access::ReadWrite],
};
const MAXPOOL2D_PAIRS: Kernel = Kernel {
    entry: "maxpool2d_forward_pairs",
    ..MAXPOOL2D
};
const MAXPOOL2D_ARGMAX_PAIRS: Kernel = Kernel {
    entry: "maxpool2d_forward_argmax_pairs",
    ..MAXPOOL2D_ARGMAX
};
const MAXPOOL2D_BACKWARD_CELLS: Kernel = Kernel {
    entry: "maxpool2d_backward_cells",
    ..MAXPOOL2D_BACKWARD
};

/// What each thread of a max-pool kernel handles.
#[derive(Clone, Copy, PartialEq)]
enum Threads {
    /// An output value (the forward).
    Output,
    /// Two neighbouring output values of a row (the same, where their windows fit in 5 columns).
    OutputPair,
    /// An input value (the backward's gather).
    Input,
    /// A stride × stride cell of input values (the gather where windows are at most twice the stride).
    Cell,
}

/// Checks that x [B, C, H, W] and y [B, C, Ho, Wo] fit `shape`; the parameter block and grid for one thread per
/// `threads`.
fn params(gpu: &Gpu, shape: PoolShape, x: &Tensor, y: &Tensor, threads: Threads) -> Result<(PoolParams, [u32; 3])> {
    let [b, c, h, w] = dims4(x, "max-pool input")?;
    let [yb, yc, ho, wo] = dims4(y, "max-pool output")?;
    if yb != b || yc != c || Some(ho) != shape.output_side(h) || Some(wo) != shape.output_side(w) {
        bail!(
            "max-pool: output {:?} does not fit input {:?} and {shape:?}",
            y.shape,
            x.shape
        );
    }
    let count = to_u32(
        match threads {
            Threads::Output => b * c * ho * wo,
            Threads::OutputPair => b * c * ho * wo.div_ceil(2),
            Threads::Input => b * c * h * w,
            Threads::Cell => b * c * h.div_ceil(shape.stride) * w.div_ceil(shape.stride),
        },
        "max-pool values",
    )?;
    let (gx, gz) = linear_grid(gpu, count.div_ceil(LINEAR_WORKGROUP));
    let params = PoolParams {
        planes: (b * c) as u32,
        h: h as u32,
        w: w as u32,
        ho: ho as u32,
        wo: wo as u32,
        kernel: shape.kernel as u32,
        stride: shape.stride as u32,
        groups_x: gx,
        accumulate: 0,
        _pad: [0; 3],
    };
    Ok((params, [gx, 1, gz]))
}

/// The forward's kernel for `shape` (with `argmax`, the one that also records the maxima) and what its threads
/// compute: two neighbouring outputs where their windows fit in 5 columns, else one.
fn forward_kernel(shape: PoolShape, argmax: bool) -> (Kernel, Threads) {
    match (shape.stride + shape.kernel <= 5, argmax) {
        (true, false) => (MAXPOOL2D_PAIRS, Threads::OutputPair),
        (true, true) => (MAXPOOL2D_ARGMAX_PAIRS, Threads::OutputPair),
        (false, false) => (MAXPOOL2D, Threads::Output),
        (false, true) => (MAXPOOL2D_ARGMAX, Threads::Output),
    }
}

/// `y = maxpool(x)` for x [B, C, H, W], y [B, C, Ho, Wo]; with `argmax` (u32, y's shape) also where each window's
/// maximum is, for [`maxpool2d_backward`].
pub fn maxpool2d(gpu: &Gpu, shape: PoolShape, x: &Tensor, y: &Tensor, argmax: Option<&Tensor>) -> Result<Dispatch> {
    let (kernel, threads) = forward_kernel(shape, argmax.is_some());
    let (params, grid) = params(gpu, shape, x, y, threads)?;
    let mut resources = vec![x.binding(), y.binding()];
    if let Some(argmax) = argmax {
        if argmax.shape != y.shape {
            bail!(
                "max-pool: argmax map {:?} does not match the output {:?}",
                argmax.shape,
                y.shape
            );
        }
        resources.push(argmax.binding());
    }
    Dispatch::new(gpu, gpu.pipeline(&kernel)?, kernel.entry, &params, &resources, grid)
}

/// `grad_x (+)= ∂L/∂x` of `y = maxpool(x)` given `gy` = ∂L/∂y and the `argmax` map [`maxpool2d`] recorded: each
/// output's gradient goes to the first maximum of its window (row-major, or the last NaN, as PyTorch). With
/// `accumulate` it is added to what `grad_x` holds.
pub fn maxpool2d_backward(
    gpu: &Gpu,
    shape: PoolShape,
    argmax: &Tensor,
    gy: &Tensor,
    grad_x: &Tensor,
    accumulate: bool,
) -> Result<Dispatch> {
    let (kernel, threads) = if shape.kernel <= 2 * shape.stride {
        (MAXPOOL2D_BACKWARD_CELLS, Threads::Cell)
    } else {
        (MAXPOOL2D_BACKWARD, Threads::Input)
    };
    let (mut params, grid) = params(gpu, shape, grad_x, gy, threads)?;
    if argmax.shape != gy.shape {
        bail!(
            "max-pool backward: argmax map {:?} does not match the gradient {:?}",
            argmax.shape,
            gy.shape
        );
    }
    params.accumulate = accumulate as u32;
    Dispatch::new(
        gpu,
        gpu.pipeline(&kernel)?,
        kernel.entry,
        &params,
        &[argmax.binding(), gy.binding(), grad_x.binding()],
        grid,
    )
}
