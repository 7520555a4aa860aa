use bytemuck::{Pod, Zeroable};

use crate::gpu::{linear_grid, Access, Dispatch, Gpu, Kernel, Tensor};
use crate::{bail, Result};

use super::{to_u32, LINEAR_WORKGROUP, RANK_WGSL};

/// Parameters of the rank net 5→32→32→1, flattened as the kernels read them.
pub const RANK_PARAMS: usize = 32 * 5 + 32 + 32 * 32 + 32 + 32 + 1;
/// Floats cached per triplet between the forward/backward kernel and the parameter-gradient kernel.
pub const CACHE_PER_TRIPLET: usize = 138;

/// theta, d, h (read); cache, stats, grad_d, grad_theta (written).
const RANK_BINDINGS: &[Access] = &[
    Access::Read,
    Access::Read,
    Access::Read,
    Access::ReadWrite,
    Access::ReadWrite,
    Access::ReadWrite,
    Access::ReadWrite,
];

#[repr(C)]
#[derive(Clone, Copy, Pod, Zeroable)]
struct RankParams {
    triplets: u32,
    groups_x: u32,
    sync_weight: f32,
    sync_threshold: f32,
}

/// The buffers of one batch's rank-net loss: inputs `theta`, `d` [2T], `h` [T]; outputs `stats` [4]
/// (mean BCE, batch 2AFC, whether L_sync applied, mean sync BCE), `grad_d` [2T], `grad_theta`.
pub struct RankBuffers<'a> {
    pub theta: &'a Tensor,
    pub d: &'a Tensor,
    pub h: &'a Tensor,
    pub cache: &'a Tensor,
    pub stats: &'a Tensor,
    pub grad_d: &'a Tensor,
    pub grad_theta: &'a Tensor,
}

/// The four dispatches of the rank-net loss, forward and backward, for `triplets` triplets:
/// per-triplet forward/backward, batch statistics (decides L_sync), distance gradients, parameter gradients.
pub fn rank_loss(gpu: &Gpu, b: &RankBuffers, triplets: usize, sync_weight: f32) -> Result<Vec<Dispatch>> {
    let t = triplets;
    if b.theta.numel() != RANK_PARAMS || b.grad_theta.numel() != RANK_PARAMS {
        bail!(
            "rank net: expected {RANK_PARAMS} parameters, got {} and {}",
            b.theta.numel(),
            b.grad_theta.numel()
        );
    }
    if t == 0 || b.d.numel() < 2 * t || b.grad_d.numel() < 2 * t || b.h.numel() < t || b.stats.numel() < 4 {
        bail!("rank net: buffers do not fit {t} triplets");
    }
    if b.cache.numel() < t * CACHE_PER_TRIPLET {
        bail!(
            "rank net: cache holds {} values, {t} triplets need {}",
            b.cache.numel(),
            t * CACHE_PER_TRIPLET
        );
    }
    let resources = || {
        [b.theta, b.d, b.h, b.cache, b.stats, b.grad_d, b.grad_theta]
            .map(|x| x.binding())
            .to_vec()
    };
    let mut out = Vec::new();
    for (entry, threads) in [
        ("rank_forward_backward", t),
        ("rank_batch_stats", 0),
        ("rank_distance_grad", t),
        ("rank_param_grad", RANK_PARAMS),
    ] {
        let (gx, gz) = if threads == 0 {
            (1, 1)
        } else {
            linear_grid(gpu, to_u32(threads.div_ceil(LINEAR_WORKGROUP as usize), entry)?)
        };
        let params = RankParams {
            triplets: to_u32(t, "triplets")?,
            groups_x: gx,
            sync_weight,
            sync_threshold: 0.5,
        };
        let kernel = Kernel {
            family: "rank",
            source: RANK_WGSL,
            entry,
            bindings: RANK_BINDINGS,
        };
        let pipeline = gpu.pipeline(&kernel)?;
        out.push(Dispatch::new(gpu, pipeline, entry, &params, &resources(), [gx, 1, gz])?);
    }
    Ok(out)
}
