use bytemuck::{Pod, Zeroable};

use crate::gpu::{linear_grid, Access, Dispatch, Gpu, Kernel, Tensor};
use crate::{bail, Result};

use super::{to_u32, DISTANCE_WGSL, LINEAR_WORKGROUP};

const PAIR_PROFILE: Kernel = Kernel {
    family: "distance",
    source: DISTANCE_WGSL,
    entry: "pair_profile",
    bindings: &[
        Access::Read,
        Access::Read,
        Access::Read,
        Access::ReadWrite,
        Access::Read,
    ],
};

/// Channels per invocation of pair_profile (PROFILE_CO).
const PROFILE_CHANNELS: usize = 4;

#[repr(C)]
#[derive(Clone, Copy, Pod, Zeroable)]
struct ProfileParams {
    n_pairs: u32,
    c: u32,
    positions: u32,
    groups_x: u32,
    offset: u32,
    columns: u32,
    seed: u32,
    chunk: u32,
    accumulate: u32,
    _pad: [u32; 3],
}

/// The dropout state a pair-profile dispatch reads: `[step seed, first group of the chunk, drop probability
/// (f32 bits)]`; drop 0 disables dropout (evaluation).
pub fn dropout_state(step_seed: u32, first_group: u32, drop: f32) -> [u32; 4] {
    [step_seed, first_group, drop.to_bits(), 0]
}

/// `s[k, offset + c] = (1/P) Σ_p mask · (u[i,c,p] − u[j,c,p])²` for each pair k = (i, j) of `pairs` (a buffer
/// of `n_pairs` u32 pairs, laid out member-major over `chunk` groups), where `u[n,c,p] = g[n,c,p] · r[n,p]` are
/// the unit-normalised maps: `g` is [N, C, ...] with P positions, `inv_norm` its [`channel::inverse_norm`]s
/// ([N, P]) and `s` is [n_pairs, columns]. `state` holds [`dropout_state`]; `seed` separates the hash streams of
/// metrics.
///
/// [`channel::inverse_norm`]: super::channel::inverse_norm
#[allow(clippy::too_many_arguments)]
pub fn pair_profile(
    gpu: &Gpu,
    g: &Tensor,
    inv_norm: &Tensor,
    pairs: &wgpu::Buffer,
    n_pairs: usize,
    chunk: usize,
    state: &wgpu::Buffer,
    s: &Tensor,
    offset: usize,
    seed: u32,
) -> Result<Dispatch> {
    if g.shape.len() < 2 || s.shape.len() != 2 {
        bail!(
            "pair profile: expected g [N, C, ...] and s [pairs, columns], got {:?} and {:?}",
            g.shape,
            s.shape
        );
    }
    let c = g.shape[1];
    let positions: usize = g.shape[2..].iter().product();
    if inv_norm.numel() < g.shape[0] * positions {
        bail!(
            "pair profile: inverse norms {:?} do not cover g {:?} ({} images × {positions} positions)",
            inv_norm.shape,
            g.shape,
            g.shape[0]
        );
    }
    let columns = s.shape[1];
    if chunk == 0 || !n_pairs.is_multiple_of(chunk) || state.size() < 12 {
        bail!("pair profile: {n_pairs} pairs are not whole members of {chunk} groups");
    }
    if s.shape[0] < n_pairs || offset + c > columns || (pairs.size() as usize) < n_pairs * 8 {
        bail!(
            "pair profile: {n_pairs} pairs × columns {offset}..{} do not fit s {:?}",
            offset + c,
            s.shape
        );
    }
    let (gx, gz) = linear_grid(
        gpu,
        to_u32(
            (n_pairs * c.div_ceil(PROFILE_CHANNELS)).div_ceil(LINEAR_WORKGROUP as usize),
            "pair profile",
        )?,
    );
    let params = ProfileParams {
        n_pairs: n_pairs as u32,
        c: c as u32,
        positions: to_u32(positions, "positions")?,
        groups_x: gx,
        offset: offset as u32,
        columns: columns as u32,
        seed,
        chunk: chunk as u32,
        accumulate: 0,
        _pad: [0; 3],
    };
    let pipeline = gpu.pipeline(&PAIR_PROFILE)?;
    Dispatch::new(
        gpu,
        pipeline,
        "pair_profile",
        &params,
        &[
            g.binding(),
            pairs.as_entire_binding(),
            state.as_entire_binding(),
            s.binding(),
            inv_norm.binding(),
        ],
        [gx, 1, gz],
    )
}

const PAIR_PROFILE_BACKWARD: Kernel = Kernel {
    family: "distance",
    source: DISTANCE_WGSL,
    entry: "pair_profile_backward",
    bindings: &[
        Access::Read,
        Access::Read,
        Access::Read,
        Access::Read,
        Access::ReadWrite,
    ],
};

/// The most images of a group [`pair_profile_backward`] takes (a reference and three compared members).
pub const BACKWARD_GROUP_MAX: usize = 4;

/// `grad_g (+)= ∂L/∂g` for L = Σ_k grad_d[k] d[k] restricted to the column block `offset..offset + C` of
/// [`pair_profile`] (d = s·w with `w` all the profile's weights): the gradient of the distances with respect
/// to the compared maps `g` [N, C, ...] through their unit normalisation and the pair profile, with the same
/// dropout `state`. The pairs are those the metric plans lay out member-major, which this kernel assumes rather
/// than reads: pair m·chunk + g compares image g (the reference of group g) with image (m+1)·chunk + g, in either
/// order; groups hold at most [`BACKWARD_GROUP_MAX`] images. `grad_g` has g's shape; `accumulate` adds to it.
#[allow(clippy::too_many_arguments)]
pub fn pair_profile_backward(
    gpu: &Gpu,
    g: &Tensor,
    n_pairs: usize,
    chunk: usize,
    state: &wgpu::Buffer,
    grad_d: &Tensor,
    w: &Tensor,
    offset: usize,
    seed: u32,
    grad_g: &Tensor,
    accumulate: bool,
) -> Result<Dispatch> {
    if g.shape.len() < 2 || grad_g.shape != g.shape {
        bail!(
            "pair profile backward: expected g [N, C, ...] and a gradient of its shape, got {:?} and {:?}",
            g.shape,
            grad_g.shape
        );
    }
    let c = g.shape[1];
    let positions: usize = g.shape[2..].iter().product();
    if chunk == 0 || !n_pairs.is_multiple_of(chunk) || state.size() < 12 {
        bail!("pair profile backward: {n_pairs} pairs are not whole members of {chunk} groups");
    }
    let group_len = n_pairs / chunk + 1;
    if group_len > BACKWARD_GROUP_MAX {
        bail!(
            "pair profile backward: groups of {group_len} images; the backward takes at most {BACKWARD_GROUP_MAX} \
             (a reference and {} compared)",
            BACKWARD_GROUP_MAX - 1
        );
    }
    if g.shape[0] != n_pairs + chunk || grad_d.numel() < n_pairs || offset + c > w.numel() {
        bail!(
            "pair profile backward: {} images, grad_d {:?} and weights {:?} do not fit {n_pairs} pairs of {chunk} \
             groups at columns {offset}..{}",
            g.shape[0],
            grad_d.shape,
            w.shape,
            offset + c
        );
    }
    let (gx, gz) = linear_grid(
        gpu,
        to_u32(
            (chunk * positions).div_ceil(LINEAR_WORKGROUP as usize),
            "pair profile backward",
        )?,
    );
    let params = ProfileParams {
        n_pairs: n_pairs as u32,
        c: c as u32,
        positions: to_u32(positions, "positions")?,
        groups_x: gx,
        offset: offset as u32,
        columns: w.numel() as u32,
        seed,
        chunk: chunk as u32,
        accumulate: accumulate as u32,
        _pad: [0; 3],
    };
    let pipeline = gpu.pipeline(&PAIR_PROFILE_BACKWARD)?;
    Dispatch::new(
        gpu,
        pipeline,
        PAIR_PROFILE_BACKWARD.entry,
        &params,
        &[
            g.binding(),
            grad_d.binding(),
            state.as_entire_binding(),
            w.binding(),
            grad_g.binding(),
        ],
        [gx, 1, gz],
    )
}

#[repr(C)]
#[derive(Clone, Copy, Pod, Zeroable)]
struct SumParams {
    n_pairs: u32,
    columns: u32,
    groups_x: u32,
    _unused: u32,
}

fn sum_launch(
    gpu: &Gpu,
    entry: &'static str,
    s: &Tensor,
    v: &Tensor,
    out: &Tensor,
    threads: usize,
) -> Result<Dispatch> {
    let [n_pairs, columns] = s.shape[..] else {
        bail!("{entry}: expected a [pairs, columns] profile, got {:?}", s.shape);
    };
    let (gx, gz) = linear_grid(gpu, to_u32(threads.div_ceil(LINEAR_WORKGROUP as usize), entry)?);
    let params = SumParams {
        n_pairs: to_u32(n_pairs, "pairs")?,
        columns: to_u32(columns, "columns")?,
        groups_x: gx,
        _unused: 0,
    };
    let kernel = Kernel {
        family: "distance",
        source: DISTANCE_WGSL,
        entry,
        bindings: &[Access::Read, Access::Read, Access::ReadWrite],
    };
    let pipeline = gpu.pipeline(&kernel)?;
    Dispatch::new(
        gpu,
        pipeline,
        entry,
        &params,
        &[s.binding(), v.binding(), out.binding()],
        [gx, 1, gz],
    )
}

/// `d[k] = Σ_c w[c] s[k, c]`: the distances from the profile `s` [pairs, columns] and weights `w` [columns].
pub fn weighted_sum(gpu: &Gpu, s: &Tensor, w: &Tensor, d: &Tensor) -> Result<Dispatch> {
    if s.shape.len() != 2 || w.numel() != s.shape[1] || d.numel() < s.shape[0] {
        bail!(
            "weighted sum: profile {:?}, weights {:?} and distances {:?} do not fit",
            s.shape,
            w.shape,
            d.shape
        );
    }
    sum_launch(gpu, "weighted_sum", s, w, d, s.shape[0])
}

/// `grad_w[c] = Σ_k grad_d[k] s[k, c]`: the gradient of the weights from the gradient of the distances.
pub fn weighted_sum_backward(gpu: &Gpu, s: &Tensor, grad_d: &Tensor, grad_w: &Tensor) -> Result<Dispatch> {
    if s.shape.len() != 2 || grad_d.numel() < s.shape[0] || grad_w.numel() != s.shape[1] {
        bail!(
            "weighted sum backward: profile {:?}, grad_d {:?} and grad_w {:?} do not fit",
            s.shape,
            grad_d.shape,
            grad_w.shape
        );
    }
    sum_launch(gpu, "weighted_sum_backward", s, grad_d, grad_w, s.shape[1])
}
