use bytemuck::{Pod, Zeroable};

use crate::gpu::{linear_grid, Access, Dispatch, Gpu, Kernel, Tensor};
use crate::{bail, Result};

use super::{to_u32, CHANNEL_WGSL, LINEAR_WORKGROUP};

/// Most positions per channel that `channel_sort` holds in workgroup memory.
pub const SORT_CAPACITY: usize = 4096;

#[repr(C)]
#[derive(Clone, Copy, Pod, Zeroable)]
struct ChannelParams {
    n: u32,
    c: u32,
    positions: u32,
    groups_x: u32,
    first: u32,
    last: u32,
    padded: u32,
    accumulate: u32,
}

/// Views a tensor as [N, C, P]: leading dim, second dim, and everything after it.
fn ncp(t: &Tensor, what: &str) -> Result<(usize, usize, usize)> {
    if t.shape.len() < 2 {
        bail!("{what}: expected at least [N, C], got {:?}", t.shape);
    }
    Ok((t.shape[0], t.shape[1], t.shape[2..].iter().product()))
}

/// Launches `entry` over `workgroups` linear workgroups. `tensors` are bound in order; the last is written and
/// the others read, except in `channel_sort_with_order`, whose last two (sorted values, order) are both written.
fn launch(
    gpu: &Gpu,
    entry: &'static str,
    mut params: ChannelParams,
    workgroups: usize,
    tensors: &[&Tensor],
) -> Result<Dispatch> {
    let (gx, gz) = linear_grid(gpu, to_u32(workgroups, entry)?);
    params.groups_x = gx;
    const R: Access = Access::Read;
    const W: Access = Access::ReadWrite;
    let bindings: &'static [Access] = match (entry, tensors.len()) {
        ("channel_sort_with_order", _) => &[R, W, W],
        (_, 2) => &[R, W],
        _ => &[R, R, W],
    };
    let kernel = Kernel {
        family: "channel",
        source: CHANNEL_WGSL,
        entry,
        bindings,
    };
    let pipeline = gpu.pipeline(&kernel)?;
    let resources: Vec<_> = tensors.iter().map(|t| t.binding()).collect();
    Dispatch::new(gpu, pipeline, entry, &params, &resources, [gx, 1, gz])
}

fn params(n: usize, c: usize, positions: usize) -> Result<ChannelParams> {
    Ok(ChannelParams {
        n: to_u32(n, "images")?,
        c: to_u32(c, "channels")?,
        positions: to_u32(positions, "positions")?,
        groups_x: 0,
        first: 0,
        last: 0,
        padded: 0,
        accumulate: 0,
    })
}

/// `y = (x - mean) / std` (ImageNet statistics) for images `first..last` of x [N, 3, H, W]; others are copied.
pub fn imagenet_normalize(gpu: &Gpu, x: &Tensor, y: &Tensor, first: usize, last: usize) -> Result<Dispatch> {
    let (n, c, hw) = ncp(x, "ImageNet normalisation")?;
    if c != 3 || y.shape != x.shape {
        bail!(
            "ImageNet normalisation needs matching [N, 3, H, W] tensors, got {:?} and {:?}",
            x.shape,
            y.shape
        );
    }
    let mut p = params(n, c, hw)?;
    p.first = first as u32;
    p.last = last.min(n) as u32;
    launch(
        gpu,
        "imagenet_normalize",
        p,
        (n * c * hw).div_ceil(4 * LINEAR_WORKGROUP as usize),
        &[x, y],
    )
}

/// `y[n, p] = 1 / max(‖x[n, :, p]‖₂, 1e-12)`: the factor that unit-normalises a column. `y` holds at
/// least N·P values.
pub fn inverse_norm(gpu: &Gpu, x: &Tensor, y: &Tensor) -> Result<Dispatch> {
    let (n, c, pos) = ncp(x, "inverse norm")?;
    if y.numel() < n * pos {
        bail!(
            "inverse norm: output {:?} holds fewer than the {n} × {pos} columns of {:?}",
            y.shape,
            x.shape
        );
    }
    launch(
        gpu,
        "inverse_norm",
        params(n, c, pos)?,
        (n * pos).div_ceil(LINEAR_WORKGROUP as usize),
        &[x, y],
    )
}

/// `y[n, c] = mean over positions of x[n, c, :]`.
pub fn channel_mean(gpu: &Gpu, x: &Tensor, y: &Tensor) -> Result<Dispatch> {
    let (n, c, pos) = ncp(x, "channel mean")?;
    if y.numel() < n * c {
        bail!("channel mean: output {:?} smaller than [{n}, {c}]", y.shape);
    }
    launch(
        gpu,
        "channel_mean",
        params(n, c, pos)?,
        (n * c).div_ceil(LINEAR_WORKGROUP as usize),
        &[x, y],
    )
}

/// `y[n, c, :] = sort ascending (x[n, c, :])`.
pub fn channel_sort(gpu: &Gpu, x: &Tensor, y: &Tensor) -> Result<Dispatch> {
    sort(gpu, x, y, None)
}

/// [`channel_sort`] that also writes `order[n, c, k]`: the position in `x[n, c, :]` of the value ranked k, as
/// u32 bits in an f32 tensor of x's size (for [`channel_sort_backward`]). Ties may be ordered either way.
pub fn channel_sort_with_order(gpu: &Gpu, x: &Tensor, y: &Tensor, order: &Tensor) -> Result<Dispatch> {
    if order.numel() < x.numel() {
        bail!("channel sort: order {:?} smaller than input {:?}", order.shape, x.shape);
    }
    sort(gpu, x, y, Some(order))
}

fn sort(gpu: &Gpu, x: &Tensor, y: &Tensor, order: Option<&Tensor>) -> Result<Dispatch> {
    let (n, c, pos) = ncp(x, "channel sort")?;
    if pos > SORT_CAPACITY {
        bail!("the sort method supports at most {SORT_CAPACITY} positions per feature map, this one has {pos}; use a smaller --size");
    }
    if y.numel() < x.numel() {
        bail!("channel sort: output {:?} smaller than input {:?}", y.shape, x.shape);
    }
    let mut p = params(n, c, pos)?;
    p.padded = pos.next_power_of_two() as u32;
    match order {
        None => launch(gpu, "channel_sort", p, n * c, &[x, y]),
        Some(order) => launch(gpu, "channel_sort_with_order", p, n * c, &[x, y, order]),
    }
}

fn backward_params(grad_x: &Tensor, accumulate: bool, what: &str) -> Result<(ChannelParams, usize)> {
    let (n, c, pos) = ncp(grad_x, what)?;
    let mut p = params(n, c, pos)?;
    p.accumulate = accumulate as u32;
    Ok((p, n * c * pos))
}

/// `grad_x[n, c, :] (+)= grad_mean[n, c] / P`: the backward of [`channel_mean`] for grad_x [N, C, ...].
pub fn channel_mean_backward(gpu: &Gpu, grad_mean: &Tensor, grad_x: &Tensor, accumulate: bool) -> Result<Dispatch> {
    let (p, count) = backward_params(grad_x, accumulate, "channel mean backward")?;
    if grad_mean.numel() != grad_x.shape[0] * grad_x.shape[1] {
        bail!(
            "channel mean backward: grad_mean {:?} does not fit grad_x {:?}",
            grad_mean.shape,
            grad_x.shape
        );
    }
    launch(
        gpu,
        "channel_mean_backward",
        p,
        count.div_ceil(LINEAR_WORKGROUP as usize),
        &[grad_mean, grad_x],
    )
}

/// `grad_x[n, c, order[n, c, k]] (+)= grad_sorted[n, c, k]`: the backward of [`channel_sort_with_order`].
pub fn channel_sort_backward(
    gpu: &Gpu,
    grad_sorted: &Tensor,
    order: &Tensor,
    grad_x: &Tensor,
    accumulate: bool,
) -> Result<Dispatch> {
    let (p, count) = backward_params(grad_x, accumulate, "channel sort backward")?;
    if grad_sorted.shape != grad_x.shape || order.numel() < count {
        bail!(
            "channel sort backward: grad_sorted {:?}, order {:?} and grad_x {:?} do not fit",
            grad_sorted.shape,
            order.shape,
            grad_x.shape
        );
    }
    launch(
        gpu,
        "channel_sort_backward",
        p,
        count.div_ceil(LINEAR_WORKGROUP as usize),
        &[grad_sorted, order, grad_x],
    )
}
