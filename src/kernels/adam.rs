use bytemuck::{Pod, Zeroable};

use crate::gpu::{linear_grid, Access, Dispatch, Gpu, Kernel, Tensor};
use crate::{bail, Result};

use super::{to_u32, ADAM_WGSL, LINEAR_WORKGROUP};

/// When the channel weights are clamped to w ≥ 0 (PROTOCOL.md §6).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Clamp {
    /// Not at all (the rank net).
    None,
    /// After each step, as LPIPS intends.
    AfterStep,
    /// Before each step's update, as the paper's code does: the final weights are not clamped.
    BeforeUpdate,
}

const ADAM_STEP: Kernel = Kernel {
    family: "adam",
    source: ADAM_WGSL,
    entry: "adam_step",
    bindings: &[
        Access::Read,
        Access::Read,
        Access::ReadWrite,
        Access::ReadWrite,
        Access::ReadWrite,
    ],
};

#[repr(C)]
#[derive(Clone, Copy, Pod, Zeroable)]
struct AdamParams {
    n: u32,
    groups_x: u32,
    clamp: u32,
    _unused: u32,
    beta1: f32,
    beta2: f32,
    eps: f32,
    _unused2: f32,
}

/// Adam's fixed hyper-parameters.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct AdamConfig {
    pub beta1: f32,
    pub beta2: f32,
    pub eps: f32,
}

/// The per-step scalars `[lr, 1 − β1^t, 1 − β2^t]` the host writes into the step buffer before step `t` (from 1).
pub fn step_scalars(config: &AdamConfig, lr: f32, t: u32) -> [f32; 4] {
    let bc1 = 1.0 - (config.beta1 as f64).powi(t as i32);
    let bc2 = 1.0 - (config.beta2 as f64).powi(t as i32);
    [lr, bc1 as f32, bc2 as f32, 0.0]
}

/// One Adam step on `theta` with gradient `grad` and moments `m`, `v`; `step` holds [`step_scalars`].
#[allow(clippy::too_many_arguments)]
pub fn adam_step(
    gpu: &Gpu,
    config: &AdamConfig,
    clamp: Clamp,
    theta: &Tensor,
    grad: &Tensor,
    m: &Tensor,
    v: &Tensor,
    step: &wgpu::Buffer,
) -> Result<Dispatch> {
    let n = theta.numel();
    if grad.numel() != n || m.numel() != n || v.numel() != n || step.size() < 12 {
        bail!(
            "adam: parameter {:?}, gradient {:?} and moments must have the same size",
            theta.shape,
            grad.shape
        );
    }
    let (gx, gz) = linear_grid(gpu, to_u32(n.div_ceil(4 * LINEAR_WORKGROUP as usize), "adam")?);
    let params = AdamParams {
        n: n as u32,
        groups_x: gx,
        clamp: match clamp {
            Clamp::None => 0,
            Clamp::AfterStep => 1,
            Clamp::BeforeUpdate => 2,
        },
        _unused: 0,
        beta1: config.beta1,
        beta2: config.beta2,
        eps: config.eps,
        _unused2: 0.0,
    };
    let pipeline = gpu.pipeline(&ADAM_STEP)?;
    Dispatch::new(
        gpu,
        pipeline,
        "adam_step",
        &params,
        &[
            grad.binding(),
            step.as_entire_binding(),
            theta.binding(),
            m.binding(),
            v.binding(),
        ],
        [gx, 1, gz],
    )
}
