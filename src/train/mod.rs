//! Adapting a metric to a context (PROTOCOL.md §6): the per-channel weights and the rank net, trained with
//! Adam entirely in WGSL kernels.

pub mod checkpoint;
mod group;
mod net;
mod run;
mod step;
mod trainer;

pub use group::{Cell, CellGroup};
pub use net::NetTrainer;
pub use run::{train, EpochReport, TrainConfig, TrainedMetric, Variant, DROPOUT};
pub use step::{gather_profile, PendingStats, StepStats, TrainState, PAPER_ADAM, SYNC_WEIGHT};
pub use trainer::Trainer;

use rand::Rng;

use crate::kernels::rank::RANK_PARAMS;

/// PyTorch's default initialisation of the rank net's three nn.Linear layers: weights and biases
/// U(−1/√fan_in, 1/√fan_in), drawn layer by layer, weight before bias, in row-major order.
pub fn init_rank_net(rng: &mut impl Rng) -> Vec<f32> {
    let mut theta = Vec::with_capacity(RANK_PARAMS);
    for (fan_in, fan_out) in [(5usize, 32usize), (32, 32), (32, 1)] {
        let bound = 1.0 / (fan_in as f32).sqrt();
        for _ in 0..fan_in * fan_out + fan_out {
            theta.push(rng.random_range(-bound..bound));
        }
    }
    theta
}

/// PyTorch's default initialisation of a 1×1 convolution C→1 without bias, per tap: U(−1/√C, 1/√C).
/// Half the weights start negative, as in the paper.
pub fn init_channel_weights(rng: &mut impl Rng, channels: &[usize], parts: usize) -> Vec<f32> {
    let mut w = Vec::new();
    for _ in 0..parts {
        for &c in channels {
            let bound = 1.0 / (c as f32).sqrt();
            w.extend((0..c).map(|_| rng.random_range(-bound..bound)));
        }
    }
    w
}

/// The learning-rate multiplier of `epoch` (from 0) out of `epochs`: 1, then a linear decay over the last 40%
/// of the epochs — for the paper's 10 epochs exactly 1,1,1,1,1,1,0.8,0.6,0.4,0.2.
pub fn lr_multiplier(epoch: usize, epochs: usize) -> f32 {
    let decay = (epochs as f32 * 0.4).round() as usize;
    let constant = epochs - decay;
    if epoch < constant {
        1.0
    } else {
        1.0 - (epoch - constant + 1) as f32 / (decay + 1) as f32
    }
}
