use std::io::IsTerminal;
use std::path::PathBuf;

use clap::Args;
use serde_json::json;

use dps_gpu::context::Ranking;
use dps_gpu::gpu::{AdapterChoice, Gpu};
use dps_gpu::metric::Method;
use dps_gpu::nets::NetKind;
use dps_gpu::progress::{format_duration, Bar, Progress, Silent};
use dps_gpu::train::{checkpoint, train, TrainConfig, Variant};
use dps_gpu::{bail, Result};

use super::dataset::DatasetArgs;
use super::print_json;

#[derive(Args)]
pub struct TrainArgs {
    /// Images to adapt on (CIFAR-10/STL-10 binaries or a folder). Default: the bundled sample patches.
    #[arg(long, value_name = "DATASET")]
    train: Option<PathBuf>,
    #[command(flatten)]
    dataset: DatasetArgs,
    /// Loss network: alex, squeeze or vgg.
    #[arg(long, default_value = "alex")]
    net: String,
    /// Comparison method: spatial, mean, sort, spatial+mean or spatial+sort.
    #[arg(long, default_value = "spatial")]
    method: String,
    /// The context: a paper ranking 0-19, or six names most-similar first (e.g. blur,hue,zoom,rotate,translate,darken).
    #[arg(long, default_value = "0")]
    ranking: String,
    #[arg(long, default_value_t = 10)]
    epochs: usize,
    /// Triplets per step (the paper: 1024). Default: 1024, or 32 on the small bundled sample set.
    #[arg(long)]
    batch: Option<usize>,
    #[arg(long, default_value_t = 1e-3)]
    lr: f32,
    /// Seed of every random draw (split, initialisation, distortions, dropout).
    #[arg(long, default_value_t = 0)]
    seed: u64,
    /// Image side.
    #[arg(long, default_value_t = 64)]
    size: usize,
    /// The paper code's behaviour: reference images left in [0,1], and w clamped before each update.
    #[arg(long)]
    paper_faithful: bool,
    /// What is trained with the rank net: scalars (the per-channel weights w) or net (w and every conv of the
    /// loss network, from the ImageNet weights: the paper's "Adapted Net"; the tuned network is saved too).
    #[arg(long, default_value = "scalars")]
    variant: String,
    /// Directory with the network weights (see `dps-gpu distance --help`).
    #[arg(long, value_name = "DIR")]
    weights_dir: Option<PathBuf>,
    /// Where to write the adapted metric (channel weights + rank net + settings).
    #[arg(short, long, value_name = "OUT.safetensors", default_value = "adapted.safetensors")]
    out: PathBuf,
    /// Print a JSON summary on stdout.
    #[arg(long)]
    json: bool,
}

pub fn run(choice: &AdapterChoice, a: TrainArgs) -> Result<()> {
    let net = NetKind::parse(&a.net)?;
    let method = Method::parse(&a.method)?;
    let ranking = Ranking::parse(&a.ranking)?;
    let variant = Variant::parse(&a.variant)?;
    let batch = a.batch.unwrap_or(if a.train.is_some() { 1024 } else { 32 });
    if batch == 0 || a.epochs == 0 || !(a.lr > 0.0 && a.lr.is_finite()) {
        bail!("--batch and --epochs must be at least 1 and --lr a positive number");
    }
    if a.out.extension().and_then(|e| e.to_str()) != Some("safetensors") {
        bail!("--out must end in .safetensors, got {}", a.out.display());
    }
    let images = a.dataset.open(a.train.as_ref(), "train", a.size)?;
    let gpu = Gpu::new(choice)?;
    let config = TrainConfig {
        net,
        method,
        ranking: ranking.clone(),
        epochs: a.epochs,
        batch,
        lr: a.lr,
        seed: a.seed,
        size: a.size,
        paper_faithful: a.paper_faithful,
        variant,
        weights_dir: a.weights_dir.clone(),
        dataset: images.source.clone(),
        limit: a.dataset.limit,
    };
    eprintln!(
        "adapting {} {} (variant {}) to ranking {} ({}) on {} images of {} [{}]",
        net.name(),
        method.name(),
        variant.name(),
        ranking.name,
        ranking.describe(),
        images.len(),
        images.source,
        gpu.describe()
    );
    let terminal = std::io::stderr().is_terminal();
    let mut bar: Box<dyn Progress> = if terminal {
        Box::new(Bar::new("triplets", batch as u64))
    } else {
        Box::new(Silent)
    };
    let started = std::time::Instant::now();
    let mut lines = Vec::new();
    let trained = train(&gpu, &config, &images, bar.as_mut(), &mut |r| {
        let line = format!(
            "epoch {:>2}/{}  loss {:.4}  train 2AFC {:.4}  validation 2AFC {:.4}  {:.1} triplets/s  {}",
            r.epoch,
            a.epochs,
            r.train_loss,
            r.train_two_afc,
            r.validation_two_afc,
            r.triplets_per_second,
            format_duration(r.seconds)
        );
        if terminal {
            eprintln!("\r{line}\x1b[K"); // over the progress bar
        } else {
            eprintln!("{line}");
        }
        lines.push(line);
    })?;
    checkpoint::save(
        &a.out,
        method,
        &trained.channels,
        &trained.w,
        &trained.rank_net,
        &trained.network,
        trained.metadata.clone(),
    )?;
    let seconds = started.elapsed().as_secs_f64();
    if a.json {
        let epochs: Vec<_> = trained
            .epochs
            .iter()
            .map(|r| {
                json!({"epoch": r.epoch, "train_loss": r.train_loss, "train_2afc": r.train_two_afc,
                            "validation_2afc": r.validation_two_afc, "seconds": r.seconds,
                            "triplets_per_s": r.triplets_per_second})
            })
            .collect();
        print_json(&json!({"out": a.out, "seconds": seconds, "epochs": epochs, "settings": trained.metadata}));
    } else {
        println!("{}", a.out.display());
    }
    eprintln!("wrote {} in {}", a.out.display(), format_duration(seconds));
    Ok(())
}
