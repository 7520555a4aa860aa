//! The five DPS comparison methods (PROTOCOL.md §5) with per-channel weights, evaluated on the GPU over
//! batches of image groups (a reference and one or more images compared with it).

mod backward;
mod method;
mod plan;
mod triplets;
mod weights;

pub use backward::DistanceBackward;
pub use method::{Method, Part};
pub use plan::{
    balanced_chunk, check_method, groups_per_chunk, run_chunk, GroupDistances, GroupImages, GroupPlan, Metric,
    PendingDistances,
};
pub use triplets::TripletRunner;
pub use weights::ChannelWeights;

use std::path::{Path, PathBuf};

use crate::gpu::Gpu;
use crate::nets::{NetKind, Network};
use crate::Result;

/// Where a metric's channel weights come from.
#[derive(Clone, Debug, PartialEq)]
pub enum WeightsChoice {
    /// All ones: the untrained metric.
    Baseline,
    /// LPIPS v0.1 lin weights of the net.
    Lpips,
    /// A scalars file written by `dps-gpu train` (or by hand, see `ChannelWeights::from_scalars_file`).
    Scalars(PathBuf),
}

impl Metric {
    /// Loads the net's weights and the chosen channel weights and prepares the metric for `size`×`size` images.
    pub fn load(
        gpu: &Gpu,
        kind: NetKind,
        method: Method,
        choice: &WeightsChoice,
        weights_dir: Option<&Path>,
        size: usize,
    ) -> Result<Metric> {
        let channels: Vec<usize> = kind.tap_shapes(size)?.iter().map(|s| s.0).collect();
        let weights = match choice {
            WeightsChoice::Baseline => ChannelWeights::baseline(&channels, method),
            WeightsChoice::Lpips => ChannelWeights::lpips(kind, &channels, method, weights_dir)?,
            WeightsChoice::Scalars(path) => ChannelWeights::from_scalars_file(path, kind, &channels, method)?,
        };
        let net = match choice {
            // A file written by `train --variant net` carries its tuned network.
            WeightsChoice::Scalars(path) if holds_network(path)? => Network::from_file(gpu, kind, path)?,
            _ => Network::load(gpu, kind, weights_dir)?,
        };
        Metric::new(gpu, net, method, weights, size)
    }
}

/// Whether a scalars file also holds a network's `features.*` tensors.
pub fn holds_network(path: &Path) -> Result<bool> {
    Ok(crate::tensor_file::read(path)?
        .tensors
        .keys()
        .any(|k| k.starts_with("features.")))
}
