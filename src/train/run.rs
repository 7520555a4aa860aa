use std::collections::HashMap;
use std::path::PathBuf;

use rand::SeedableRng;

use crate::context::Ranking;
use crate::data::ImageBank;
use crate::gpu::Gpu;
use crate::metric::Method;
use crate::nets::NetKind;
use crate::progress::Progress;
use crate::Result;

use super::group::{Cell, CellGroup};

/// Dropout probability on the squared-difference maps during training (LPIPS's nn.Dropout default).
pub(super) const DROPOUT: f32 = 0.5;

/// Everything that defines one adaptation run (PROTOCOL.md §6).
#[derive(Clone, Debug)]
pub struct TrainConfig {
    pub net: NetKind,
    pub method: Method,
    pub ranking: Ranking,
    pub epochs: usize,
    pub batch: usize,
    pub lr: f32,
    pub seed: u64,
    pub size: usize,
    pub paper_faithful: bool,
    pub weights_dir: Option<PathBuf>,
    /// Describes the training images in the saved metadata.
    pub dataset: String,
    pub limit: Option<usize>,
}

/// What one epoch reports.
#[derive(Clone, Debug)]
pub struct EpochReport {
    pub epoch: usize,
    pub train_loss: f64,
    pub train_two_afc: f64,
    pub validation_two_afc: f64,
    pub seconds: f64,
    pub triplets_per_second: f64,
}

/// The trained metric's parameters, read back from the GPU.
pub struct TrainedMetric {
    pub w: Vec<f32>,
    pub rank_net: Vec<f32>,
    pub channels: Vec<usize>,
    pub epochs: Vec<EpochReport>,
    pub metadata: HashMap<String, String>,
}

/// Seeds of the independent random streams of a run, derived from the run's seed so each stream can change
/// (e.g. more epochs) without shifting the others.
pub(super) fn stream(seed: u64, name: &str) -> rand::rngs::StdRng {
    let mut h = seed ^ 0x9e37_79b9_7f4a_7c15;
    for b in name.bytes() {
        h = (h ^ b as u64).wrapping_mul(0x0000_0100_0000_01b3);
    }
    rand::rngs::StdRng::seed_from_u64(h)
}

/// Trains the channel weights and the rank net on `images` (80/20 train/validation split) and returns them.
/// `on_epoch` sees each epoch's report as soon as it is known.
pub fn train(
    gpu: &Gpu,
    config: &TrainConfig,
    images: &ImageBank,
    progress: &mut dyn Progress,
    on_epoch: &mut dyn FnMut(&EpochReport),
) -> Result<TrainedMetric> {
    let cell = Cell {
        method: config.method,
        ranking: config.ranking.clone(),
    };
    let mut group = CellGroup::new(gpu, config, &[cell], &[])?;
    group.train(gpu, images, progress, &mut |_, report| on_epoch(report))?;
    group.trained(gpu, 0)
}
