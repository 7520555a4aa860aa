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
    _unused: u32,
}

/// Views a tensor as [N, C, P]: leading dim, second dim, and everything after it.
fn ncp(t: &Tensor, what: &str) -> Result<(usize, usize, usize)> {
    if t.shape.len() < 2 {
        bail!("{what}: expected at least [N, C], got {:?}", t.shape);
    }
    Ok((t.shape[0], t.shape[1], t.shape[2..].iter().product()))
}

fn launch(
    gpu: &Gpu,
    entry: &'static str,
    mut params: ChannelParams,
    workgroups: usize,
    x: &Tensor,
    y: &Tensor,
) -> Result<Dispatch> {
    let (gx, gz) = linear_grid(gpu, to_u32(workgroups, entry)?);
    params.groups_x = gx;
    let kernel = Kernel {
        family: "channel",
        source: CHANNEL_WGSL,
        entry,
        bindings: &[Access::Read, Access::ReadWrite],
    };
    let pipeline = gpu.pipeline(&kernel)?;
    Dispatch::new(gpu, pipeline, entry, &params, &[x.binding(), y.binding()], [gx, 1, gz])
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
        _unused: 0,
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
        (n * c * hw).div_ceil(LINEAR_WORKGROUP as usize),
        x,
        y,
    )
}

/// `y[n, :, p] = x[n, :, p] / max(‖x[n, :, p]‖₂, 1e-12)`.
pub fn unit_normalize(gpu: &Gpu, x: &Tensor, y: &Tensor) -> Result<Dispatch> {
    let (n, c, pos) = ncp(x, "unit normalisation")?;
    if y.numel() < x.numel() {
        bail!(
            "unit normalisation: output {:?} smaller than input {:?}",
            y.shape,
            x.shape
        );
    }
    launch(
        gpu,
        "unit_normalize",
        params(n, c, pos)?,
        (n * pos).div_ceil(LINEAR_WORKGROUP as usize),
        x,
        y,
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
        x,
        y,
    )
}

/// `y[n, c, :] = sort ascending (x[n, c, :])`.
pub fn channel_sort(gpu: &Gpu, x: &Tensor, y: &Tensor) -> Result<Dispatch> {
    let (n, c, pos) = ncp(x, "channel sort")?;
    if pos > SORT_CAPACITY {
        bail!("the sort method supports at most {SORT_CAPACITY} positions per feature map, this one has {pos}; use a smaller --size");
    }
    if y.numel() < x.numel() {
        bail!("channel sort: output {:?} smaller than input {:?}", y.shape, x.shape);
    }
    let mut p = params(n, c, pos)?;
    p.padded = pos.next_power_of_two() as u32;
    launch(gpu, "channel_sort", p, n * c, x, y)
}
