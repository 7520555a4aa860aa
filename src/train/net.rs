//! "Adapted Net" (the paper's Table 3): the loss network's convolutions trained with w and the rank net.

use crate::gpu::{Dispatch, Gpu, Tensor};
use crate::kernels::adam::{self, Clamp};
use crate::metric::{DistanceBackward, GroupPlan, Metric};
use crate::nets::{NetBackward, NetGrads};
use crate::{bail, Result};

use super::{TrainState, PAPER_ADAM};

/// The network's side of a training step over one recorded [`GroupPlan`] of triplets: per chunk, ∂L/∂d of the
/// chunk's pairs → taps ([`DistanceBackward`]) → conv parameters ([`NetBackward`], accumulated over the
/// chunks of a batch), then Adam on every conv weight and bias with the step scalars of the [`TrainState`].
pub struct NetTrainer {
    pub grads: NetGrads,
    distance: DistanceBackward,
    backward: NetBackward,
    adam: Vec<Dispatch>,
    _moments: Vec<Tensor>,
}

impl NetTrainer {
    /// `plan` must be the metric's current plan (the one the forward passes of the batch run through).
    pub fn new(gpu: &Gpu, metric: &Metric, plan: &GroupPlan, state: &TrainState) -> Result<NetTrainer> {
        let (_, group_len) = plan.chunk_shape();
        if group_len != 3 {
            bail!("training compares triplets; the plan holds groups of {group_len}");
        }
        let grads = NetGrads::new(gpu, &metric.net)?;
        let backward = NetBackward::new(gpu, &metric.net, &plan.forward, &grads)?;
        let distance = DistanceBackward::new(gpu, metric, plan, &backward.tap_grads)?;
        let mut adam = Vec::new();
        let mut moments = Vec::new();
        for (k, (_, p)) in metric.net.convs().into_iter().enumerate() {
            for (param, grad) in [(&p.weight, &grads.weights[k]), (&p.bias, &grads.biases[k])] {
                let m = gpu.zeros("adam m net", &param.shape)?;
                let v = gpu.zeros("adam v net", &param.shape)?;
                adam.push(adam::adam_step(
                    gpu,
                    &PAPER_ADAM,
                    Clamp::None,
                    param,
                    grad,
                    &m,
                    &v,
                    &state.step,
                )?);
                moments.extend([m, v]);
            }
        }
        Ok(NetTrainer {
            grads,
            distance,
            backward,
            adam,
            _moments: moments,
        })
    }

    /// Adds the parameter gradients of triplets `start..start + count` of the batch, whose forward pass (and
    /// dropout state) the plan has just run as a chunk of `chunk` groups; `state.grad_d` must hold the batch's
    /// ∂L/∂d (from `TrainState::step`).
    pub fn backward_chunk(
        &self,
        gpu: &Gpu,
        state: &TrainState,
        chunk: usize,
        start: usize,
        count: usize,
    ) -> Result<()> {
        let triplets = state.triplets;
        if count > chunk || start + count > triplets {
            bail!(
                "triplets {start}..{} do not fit a chunk of {chunk} in a batch of {triplets}",
                start + count
            );
        }
        for m in 0..2 {
            if count < chunk {
                gpu.write(&self.distance.grad_d, m * chunk + count, &vec![0.0; chunk - count])?;
            }
            gpu.copy(
                &state.grad_d,
                m * triplets + start,
                &self.distance.grad_d,
                m * chunk,
                count,
            )?;
        }
        gpu.run(&self.distance.dispatches)?;
        gpu.run(&self.backward.dispatches)
    }

    /// Applies Adam to every conv weight and bias (after `TrainState::step` wrote the step scalars).
    pub fn apply(&self, gpu: &Gpu) -> Result<()> {
        gpu.run(&self.adam)
    }
}
