//! One adapted metric's training step, shared by `train` and `bench`: the metric, its optimisation state, the
//! triplet runner and, for the "Adapted Net" variant, the network's backward pass.

use crate::context::TripletDraws;
use crate::data::ImageBank;
use crate::gpu::Gpu;
use crate::kernels::adam::Clamp;
use crate::kernels::distance;
use crate::metric::{ChannelWeights, GroupPlan, Method, Metric, TripletRunner};
use crate::nets::Network;
use crate::Result;

use super::run::{Variant, DROPOUT};
use super::{NetTrainer, PendingStats, StepStats, TrainState};

pub struct Trainer {
    pub metric: Metric,
    pub state: TrainState,
    runner: TripletRunner,
    net: Option<NetTrainer>,
    /// Plans of chunks 1.. of the batch (chunk 0 runs on the metric's), when the network trains on a batch of
    /// several chunks and all their activations fit the chunk budget: then no forward is run twice.
    kept: Vec<GroupPlan>,
}

impl Trainer {
    /// Prepares training of `w0` (flat channel weights of `method`) and the rank net `theta0` on batches of
    /// `batch` triplets of `size`×`size` images; with [`Variant::Net`] the network's conv layers train too.
    /// `max_chunk` caps the triplets per forward chunk below what the adapter's memory allows (tests).
    #[allow(clippy::too_many_arguments)]
    pub fn new(
        gpu: &Gpu,
        network: Network,
        method: Method,
        w0: &[f32],
        theta0: &[f32],
        batch: usize,
        size: usize,
        paper_faithful: bool,
        variant: Variant,
        max_chunk: Option<usize>,
    ) -> Result<Trainer> {
        let channels: Vec<usize> = network.kind.tap_shapes(size)?.iter().map(|t| t.0).collect();
        let weights = ChannelWeights::from_flat(w0, &channels, method, "initialisation");
        let mut metric = Metric::new(gpu, network, method, weights, size)?;
        let clamp = if paper_faithful {
            Clamp::BeforeUpdate
        } else {
            Clamp::AfterStep
        };
        let state = TrainState::new(gpu, &metric.all_weights, theta0, batch, clamp)?;
        metric.set_keeps_gradients(variant == Variant::Net);
        metric.set_max_groups_per_chunk(max_chunk);
        let runner = TripletRunner::new(gpu, &mut metric, batch, paper_faithful)?;
        let chunk = runner.chunk();
        let chunks = batch.div_ceil(chunk);
        let mut kept = Vec::new();
        if variant == Variant::Net && chunks > 1 && metric.fits_budget(gpu, 3, chunks * chunk)? {
            for _ in 1..chunks {
                kept.push(GroupPlan::new(gpu, &metric, (chunk, 3, paper_faithful))?);
            }
        }
        let net = match variant {
            Variant::Net => {
                let plans = chunk_plans(&metric, &kept)?;
                Some(NetTrainer::new(gpu, &metric, &plans, &state)?)
            }
            Variant::Scalars => None,
        };
        Ok(Trainer {
            metric,
            state,
            runner,
            net,
            kept,
        })
    }

    /// Triplets per forward chunk.
    pub fn chunk(&self) -> usize {
        self.runner.chunk()
    }

    /// Whether a step runs each chunk's forward once: always for the scalars, and for the network when one
    /// chunk holds the batch or every chunk's activations are kept.
    pub fn forwards_once(&self, batch: usize) -> bool {
        self.net.is_none() || batch <= self.chunk() || !self.kept.is_empty()
    }

    /// One step on `draws` (a whole batch) as Adam step `t` (from 1) with learning rate `lr`; `step_seed` seeds
    /// the dropout masks.
    pub fn step(
        &mut self,
        gpu: &Gpu,
        images: &ImageBank,
        draws: &TripletDraws,
        step_seed: u32,
        lr: f32,
        t: u32,
    ) -> Result<StepStats> {
        self.queue_step(gpu, images, draws, step_seed, lr, t)?.wait(gpu)
    }

    /// [`Trainer::step`] queued on the GPU without waiting for it: the host can draw and upload the next batch
    /// while this one runs. Steps queued in turn run in turn.
    pub fn queue_step(
        &mut self,
        gpu: &Gpu,
        images: &ImageBank,
        draws: &TripletDraws,
        step_seed: u32,
        lr: f32,
        t: u32,
    ) -> Result<PendingStats> {
        let dropout = |start: usize| distance::dropout_state(step_seed, start as u32, DROPOUT);
        let state = &self.state;
        let gather =
            |plan: &GroupPlan, chunk, start, count| state.gather_profile(gpu, &plan.profile, chunk, start, count);
        if self.kept.is_empty() {
            self.runner
                .run_batch(gpu, &mut self.metric, images, draws, dropout, gather)?;
        } else {
            let plans = chunk_plans(&self.metric, &self.kept)?;
            self.runner.run_plans(gpu, &plans, images, draws, dropout, gather)?;
        }
        let stats = state.queue_step(gpu, &draws.labels, lr, t, self.net.is_none())?;
        if let Some(net) = &self.net {
            net.grads.zero(gpu)?;
            let chunk = self.runner.chunk();
            if draws.len() <= chunk || !self.kept.is_empty() {
                // Every chunk's activations are still in its plan (the step above only read them).
                for start in (0..draws.len()).step_by(chunk) {
                    net.backward_chunk(gpu, state, chunk, start, chunk.min(draws.len() - start))?;
                }
            } else {
                // ∂L/∂d needs the whole batch's distances, and only one chunk's activations are kept: every
                // chunk's forward runs again (same distortions and dropout) before its backward.
                self.runner.run_batch(
                    gpu,
                    &mut self.metric,
                    images,
                    draws,
                    dropout,
                    |_, chunk, start, count| net.backward_chunk(gpu, state, chunk, start, count),
                )?;
            }
            state.apply(gpu)?;
            net.apply(gpu)?;
        }
        Ok(stats)
    }

    /// The network's parameter gradients of the last step ([`Variant::Net`] only).
    pub fn net_grads(&self) -> Option<&crate::nets::NetGrads> {
        self.net.as_ref().map(|n| &n.grads)
    }

    /// Mean 2AFC of `draws` under the current parameters, without dropout.
    pub fn two_afc(&mut self, gpu: &Gpu, images: &ImageBank, draws: &TripletDraws) -> Result<f64> {
        self.runner.two_afc(gpu, &mut self.metric, images, draws)
    }
}

/// The metric's plan, then the kept ones: chunk k of a batch runs on the k-th.
fn chunk_plans<'a>(metric: &'a Metric, kept: &'a [GroupPlan]) -> Result<Vec<&'a GroupPlan>> {
    let Some(first) = metric.current_plan() else {
        crate::bail!("the trainer's plan is gone");
    };
    Ok(std::iter::once(first).chain(kept).collect())
}
