//! "Adapted Net" (the paper's Table 3): the loss network's convolutions trained with w and the rank net.

use crate::gpu::{Dispatch, Gpu, Tensor};
use crate::kernels::adam::{self, Clamp};
use crate::metric::{DistanceBackward, GroupPlan, Metric};
use crate::nets::{NetBackward, NetGrads, WeightPacks};
use crate::{bail, Result};
use std::sync::Arc;

use super::{TrainState, PAPER_ADAM};

/// The network's side of a training step over recorded [`GroupPlan`]s of triplets: per chunk, ∂L/∂d of the
/// chunk's pairs → taps ([`DistanceBackward`]) → conv parameters ([`NetBackward`], accumulated over the
/// chunks of a batch), then Adam on every conv weight and bias with the step scalars of the [`TrainState`].
pub struct NetTrainer {
    pub grads: NetGrads,
    /// One backward per plan, bound to its activations: chunk k of a batch runs on plan k % plans (as
    /// [`crate::metric::TripletRunner::run_plans`] runs them).
    slots: Vec<(DistanceBackward, NetBackward)>,
    adam: Vec<Dispatch>,
    _moments: Vec<Tensor>,
    /// The network's packed weights, which every Adam step leaves stale.
    packs: Arc<WeightPacks>,
}

impl NetTrainer {
    /// `plans` are the plans the forward passes of the batch's chunks run through, in order.
    pub fn new(gpu: &Gpu, metric: &Metric, plans: &[&GroupPlan], state: &TrainState) -> Result<NetTrainer> {
        let grads = NetGrads::new(gpu, &metric.net)?;
        let mut slots = Vec::new();
        for plan in plans {
            let (_, group_len) = plan.chunk_shape();
            if group_len != 3 {
                bail!("training compares triplets; the plan holds groups of {group_len}");
            }
            let backward = NetBackward::new(gpu, &metric.net, &plan.forward, &grads)?;
            let distance = DistanceBackward::new(gpu, metric, plan, &backward.tap_grads)?;
            slots.push((distance, backward));
        }
        if slots.is_empty() {
            bail!("the network's backward needs the plan of at least one chunk");
        }
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
            slots,
            adam,
            _moments: moments,
            packs: metric.net.packs.clone(),
        })
    }

    /// Adds the parameter gradients of triplets `start..start + count` of the batch, whose forward pass (and
    /// dropout state) is in place in its plan (chunk `start / chunk`); `state.grad_d` must hold the batch's ∂L/∂d
    /// (from `TrainState::step`).
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
        let (distance, backward) = &self.slots[(start / chunk) % self.slots.len()];
        for m in 0..2 {
            if count < chunk {
                gpu.write(&distance.grad_d, m * chunk + count, &vec![0.0; chunk - count])?;
            }
            gpu.copy(&state.grad_d, m * triplets + start, &distance.grad_d, m * chunk, count)?;
        }
        gpu.run(&distance.dispatches)?;
        gpu.run(&backward.dispatches)
    }

    /// The recorded backward of a chunk that ran on plan `slot` (the distances', then the network's) and the Adam
    /// steps of the conv parameters, in the order a step runs them (for timing: a step run this way does not
    /// mark the network's packed weights stale, as [`NetTrainer::apply`] does).
    pub fn step_dispatches(&self, slot: usize) -> impl Iterator<Item = &Dispatch> {
        let (distance, backward) = &self.slots[slot % self.slots.len()];
        distance.dispatches.iter().chain(&backward.dispatches).chain(&self.adam)
    }

    /// Applies Adam to every conv weight and bias (after `TrainState::step` wrote the step scalars); the next
    /// forward pass packs the new weights.
    pub fn apply(&self, gpu: &Gpu) -> Result<()> {
        gpu.run(&self.adam)?;
        self.packs.changed();
        Ok(())
    }
}
