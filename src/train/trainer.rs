//! One adapted metric's training step, shared by `train` and `bench`: the metric, its optimisation state, the
//! triplet runner and, for the "Adapted Net" variant, the network's backward pass.

use crate::context::TripletDraws;
use crate::data::ImageBank;
use crate::gpu::Gpu;
use crate::kernels::adam::Clamp;
use crate::kernels::distance;
use crate::metric::{ChannelWeights, Method, Metric, TripletRunner};
use crate::nets::Network;
use crate::Result;

use super::run::{Variant, DROPOUT};
use super::{NetTrainer, StepStats, TrainState};

pub struct Trainer {
    pub metric: Metric,
    pub state: TrainState,
    runner: TripletRunner,
    net: Option<NetTrainer>,
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
        let by_memory = match variant {
            // The backward keeps a gradient beside every activation: about twice the forward's memory per group.
            Variant::Net => Some((metric.groups_per_chunk(gpu, 3)? / 2).max(1)),
            Variant::Scalars => None,
        };
        metric.set_max_groups_per_chunk(by_memory.into_iter().chain(max_chunk).min());
        let runner = TripletRunner::new(gpu, &mut metric, batch, paper_faithful)?;
        let net = match variant {
            Variant::Net => {
                let plan = metric.current_plan().expect("TripletRunner::new prepares the plan");
                Some(NetTrainer::new(gpu, &metric, plan, &state)?)
            }
            Variant::Scalars => None,
        };
        Ok(Trainer {
            metric,
            state,
            runner,
            net,
        })
    }

    /// Triplets per forward chunk.
    pub fn chunk(&self) -> usize {
        self.runner.chunk()
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
        let dropout = |start: usize| distance::dropout_state(step_seed, start as u32, DROPOUT);
        let state = &self.state;
        self.runner.run_batch(
            gpu,
            &mut self.metric,
            images,
            draws,
            dropout,
            |plan, chunk, start, count| state.gather_profile(gpu, &plan.profile, chunk, start, count),
        )?;
        let stats = state.step(gpu, &draws.labels, lr, t, self.net.is_none())?;
        if let Some(net) = &self.net {
            net.grads.zero(gpu)?;
            let chunk = self.runner.chunk();
            if draws.len() <= chunk {
                // One chunk holds the batch: the plan still has its activations (the step above only read them).
                net.backward_chunk(gpu, state, chunk, 0, draws.len())?;
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
