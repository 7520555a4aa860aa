use crate::gpu::{Dispatch, Gpu, Tensor};
use crate::kernels::{channel, distance};
use crate::{bail, Result};

use super::{GroupPlan, Metric, Part};

/// The recorded backward of a [`GroupPlan`]'s distances: from `grad_d` (∂L/∂d of the chunk's pairs, written by
/// the caller) to the gradient of every tap, through the pair profile (same dropout state as the forward),
/// the unit normalisation (one kernel for both) and the mean or sort of each part. The plan's transformed maps
/// (its scratch) are recomputed tap by tap, so the forward's dispatches must have run on the same chunk. The first
/// part of a tap writes its gradient and later parts add to it.
pub struct DistanceBackward {
    /// [pairs] of the chunk, member-major as the plan's pairs.
    pub grad_d: Tensor,
    pub dispatches: Vec<Dispatch>,
    _scratch: [Tensor; 2],
}

impl DistanceBackward {
    pub fn new(gpu: &Gpu, metric: &Metric, plan: &GroupPlan, tap_grads: &[Tensor]) -> Result<DistanceBackward> {
        let (chunk, group_len) = plan.chunk_shape();
        let n = chunk * group_len;
        let n_pairs = (group_len - 1) * chunk;
        if tap_grads.len() != metric.taps.len() {
            bail!(
                "{} tap gradients for the {} taps of the metric",
                tap_grads.len(),
                metric.taps.len()
            );
        }
        let largest = metric.taps.iter().map(|&(c, s)| c * s * s).max().unwrap_or(1);
        let grad_v = gpu.zeros("grad transformed taps", &[n * largest])?;
        let order = gpu.zeros("sort order", &[n * largest])?;
        let grad_d = gpu.zeros("grad d (chunk)", &[n_pairs])?;
        let mut dispatches = Vec::new();
        let mut written = vec![false; tap_grads.len()];
        let mut offset = 0;
        for part in metric.method.parts() {
            for (l, (tap, &(c, side))) in plan.forward.taps.iter().zip(&metric.taps).enumerate() {
                let hw = side * side;
                let tap = tap.view(&[n, c, hw])?;
                let tap_grad = tap_grads[l].view(&[n, c, hw])?;
                let accumulate = written[l];
                written[l] = true;
                let compared = match part {
                    Part::Spatial => tap.view(&tap.shape)?,
                    Part::Mean => {
                        let means = plan.transformed.view(&[n, c, 1])?;
                        dispatches.push(channel::channel_mean(gpu, &tap, &means)?);
                        means
                    }
                    Part::Sort => {
                        let sorted = plan.transformed.view(&[n, c, hw])?;
                        dispatches.push(channel::channel_sort_with_order(gpu, &tap, &sorted, &order)?);
                        sorted
                    }
                };
                // The spatial part's gradient goes straight into the tap's; the others' into the transformed
                // maps', then back through the mean or sort.
                let spatial = *part == Part::Spatial;
                let grad_compared = if spatial {
                    tap_grad.view(&tap_grad.shape)?
                } else {
                    grad_v.view(&compared.shape)?
                };
                dispatches.push(distance::pair_profile_backward(
                    gpu,
                    &compared,
                    n_pairs,
                    chunk,
                    &plan.state,
                    &grad_d,
                    &metric.all_weights,
                    offset,
                    0,
                    &grad_compared,
                    spatial && accumulate,
                )?);
                match part {
                    Part::Spatial => {}
                    Part::Mean => dispatches.push(channel::channel_mean_backward(
                        gpu,
                        &grad_compared,
                        &tap_grad,
                        accumulate,
                    )?),
                    Part::Sort => dispatches.push(channel::channel_sort_backward(
                        gpu,
                        &grad_compared,
                        &order,
                        &tap_grad,
                        accumulate,
                    )?),
                }
                offset += c;
            }
        }
        Ok(DistanceBackward {
            grad_d,
            dispatches,
            _scratch: [grad_v, order],
        })
    }
}
