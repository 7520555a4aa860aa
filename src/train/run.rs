use std::collections::HashMap;
use std::path::PathBuf;
use std::time::Instant;

use rand::seq::SliceRandom;
use rand::SeedableRng;

use crate::context::Ranking;
use crate::context::TripletDraws;
use crate::data::ImageBank;
use crate::gpu::Gpu;
use crate::metric::Method;
use crate::nets::{NetKind, Network};
use crate::progress::Progress;
use crate::tensor_file::NamedTensor;
use crate::{bail, Result};

use super::{init_channel_weights, init_rank_net, lr_multiplier, PendingStats, Trainer};

/// Dropout probability on the squared-difference maps during training (LPIPS's nn.Dropout default).
pub const DROPOUT: f32 = 0.5;

/// What an adaptation run trains besides the rank net.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Variant {
    /// The per-channel weights w (the paper's adapted metrics).
    Scalars,
    /// w and every conv weight and bias of the loss network, from the ImageNet weights ("Adapted Net", the
    /// paper's Table 3).
    Net,
}

impl Variant {
    pub fn parse(name: &str) -> Result<Variant> {
        match name.to_ascii_lowercase().as_str() {
            "scalars" => Ok(Variant::Scalars),
            "net" => Ok(Variant::Net),
            _ => bail!("unknown variant {name:?}; choose scalars or net"),
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            Variant::Scalars => "scalars",
            Variant::Net => "net",
        }
    }
}

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
    pub variant: Variant,
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
    /// The tuned network's conv tensors under torchvision key names (empty unless [`Variant::Net`]).
    pub network: Vec<NamedTensor>,
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

/// The seeded 80/20 split of `n` images into (validation, training) indices, refused when the training part
/// holds less than one batch or nothing is left for validation.
pub(super) fn split(n: usize, seed: u64, batch: usize) -> Result<(Vec<usize>, Vec<usize>)> {
    let mut order: Vec<usize> = (0..n).collect();
    order.shuffle(&mut stream(seed, "split"));
    let train = order.split_off(n / 5);
    if train.len() < batch {
        bail!(
            "{} training images (80% of {n}) are fewer than one batch of {batch}; use a smaller --batch or more images",
            train.len()
        );
    }
    if order.is_empty() {
        bail!("{n} images leave none for validation (20%); use at least 5");
    }
    Ok((order, train))
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
    let c = config;
    if c.epochs == 0 || c.batch == 0 || !(c.lr > 0.0 && c.lr.is_finite()) {
        bail!("epochs and batch must be at least 1 and the learning rate positive");
    }
    let (val, train) = split(images.len(), c.seed, c.batch)?;
    let (val, train) = (&val[..], &train[..]);
    let taps = c.net.tap_shapes(c.size)?;
    let channels: Vec<usize> = taps.iter().map(|t| t.0).collect();
    let w0 = init_channel_weights(&mut stream(c.seed, "w"), &channels, c.method.parts().len());
    let theta0 = init_rank_net(&mut stream(c.seed, "rank net"));
    let net = Network::load(gpu, c.net, c.weights_dir.as_deref())?;
    let mut trainer = Trainer::new(
        gpu,
        net,
        c.method,
        &w0,
        &theta0,
        c.batch,
        c.size,
        c.paper_faithful,
        c.variant,
        None,
    )?;
    // Validation triplets are drawn once, so every epoch is scored on the same ones.
    let val_draws = TripletDraws::draw(val, &c.ranking, &mut stream(c.seed, "validation"), c.size);
    let mut draw_rng = stream(c.seed, "triplets");
    let mut shuffle_rng = stream(c.seed, "epochs");
    let steps_per_epoch = train.len() / c.batch;
    let mut reports = Vec::new();
    let mut t = 0u32;
    let mut order = train.to_vec();
    progress.start(
        &format!(
            "training {} {} on ranking {}",
            c.net.name(),
            c.method.name(),
            c.ranking.name
        ),
        (c.epochs * steps_per_epoch) as u64,
    );
    for epoch in 0..c.epochs {
        let started = Instant::now();
        let lr = c.lr * lr_multiplier(epoch, c.epochs);
        order.shuffle(&mut shuffle_rng);
        let (mut loss_sum, mut afc_sum) = (0.0f64, 0.0f64);
        let mut record = |(pending, step): (PendingStats, usize)| -> Result<()> {
            let stats = pending.wait(gpu)?;
            if !stats.loss().is_finite() {
                bail!(
                    "the loss became {} at epoch {} step {} (of {steps_per_epoch}); try a smaller --lr",
                    stats.loss(),
                    epoch + 1,
                    step + 1
                );
            }
            loss_sum += stats.loss() as f64;
            afc_sum += stats.two_afc as f64;
            progress.advance(1, &format!("epoch {}/{} loss {:.4}", epoch + 1, c.epochs, stats.loss()));
            Ok(())
        };
        // Each step's statistics are collected after the next step is queued, so the host draws and uploads a
        // batch while the GPU runs the one before (the steps themselves still run in turn).
        let mut queued = None;
        for step in 0..steps_per_epoch {
            let batch = &order[step * c.batch..(step + 1) * c.batch];
            let draws = TripletDraws::draw(batch, &c.ranking, &mut draw_rng, c.size);
            t += 1;
            let step_seed = (c.seed as u32) ^ t.wrapping_mul(0x9e37_79b9);
            let pending = trainer.queue_step(gpu, images, &draws, step_seed, lr, t)?;
            if let Some(previous) = queued.replace((pending, step)) {
                record(previous)?;
            }
        }
        if let Some(last) = queued {
            record(last)?;
        }
        let validation_two_afc = trainer.two_afc(gpu, images, &val_draws)?;
        let seconds = started.elapsed().as_secs_f64();
        let report = EpochReport {
            epoch: epoch + 1,
            train_loss: loss_sum / steps_per_epoch as f64,
            train_two_afc: afc_sum / steps_per_epoch as f64,
            validation_two_afc,
            seconds,
            triplets_per_second: (steps_per_epoch * c.batch) as f64 / seconds,
        };
        on_epoch(&report);
        reports.push(report);
    }
    progress.finish();
    let w = gpu.read(&trainer.metric.all_weights, trainer.metric.all_weights.numel())?;
    let rank_net = gpu.read(&trainer.state.theta, trainer.state.theta.numel())?;
    let network = match c.variant {
        Variant::Net => trainer.metric.net.read_params(gpu)?,
        Variant::Scalars => Vec::new(),
    };
    let metadata = run_metadata(gpu, c, c.method, &c.ranking, (train.len(), val.len()), &reports);
    Ok(TrainedMetric {
        w,
        rank_net,
        network,
        channels,
        epochs: reports,
        metadata,
    })
}

/// What a trained metric's file records about its run (read back by `eval`): `images` is (train, validation).
pub(super) fn run_metadata(
    gpu: &Gpu,
    c: &TrainConfig,
    method: Method,
    ranking: &Ranking,
    images: (usize, usize),
    reports: &[EpochReport],
) -> HashMap<String, String> {
    let mut metadata = HashMap::new();
    for (k, v) in [
        ("format", "dps-gpu adapted metric v1".to_string()),
        ("net", c.net.name().to_string()),
        ("method", method.name().to_string()),
        ("ranking", ranking.name.clone()),
        ("ranking_order", ranking.describe()),
        ("seed", c.seed.to_string()),
        ("epochs", c.epochs.to_string()),
        ("batch", c.batch.to_string()),
        ("lr", c.lr.to_string()),
        ("size", c.size.to_string()),
        ("dataset", c.dataset.clone()),
        ("limit", c.limit.map(|l| l.to_string()).unwrap_or_else(|| "none".into())),
        ("train_images", images.0.to_string()),
        ("validation_images", images.1.to_string()),
        ("paper_faithful", c.paper_faithful.to_string()),
        ("variant", c.variant.name().to_string()),
        ("dps_gpu_version", env!("CARGO_PKG_VERSION").to_string()),
        ("adapter", gpu.describe()),
        ("precision", gpu.precision.name().to_string()),
    ] {
        metadata.insert(k.to_string(), v);
    }
    if let Some(last) = reports.last() {
        metadata.insert(
            "final_validation_2afc".into(),
            format!("{:.6}", last.validation_two_afc),
        );
    }
    metadata
}
