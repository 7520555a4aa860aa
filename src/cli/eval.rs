use std::path::PathBuf;

use clap::Args;
use rand::SeedableRng;
use serde_json::json;

use std::io::IsTerminal;

use dps_gpu::context::{Ranking, TripletDraws};
use dps_gpu::data::{is_bapps, open_bapps};
use dps_gpu::eval::bapps::score_bapps;
use dps_gpu::gpu::{AdapterChoice, Gpu};
use dps_gpu::metric::{Metric, TripletRunner};
use dps_gpu::progress::{Bar, Progress, Silent};
use dps_gpu::{bail, Result};

use super::dataset::DatasetArgs;
use super::{print_json, MetricArgs};

#[derive(Args)]
pub struct EvalArgs {
    /// Test images (SVHN .mat, CIFAR-10/STL-10 binaries, a folder), or a BAPPS 2afc/<split> or jnd/<split>
    /// directory (or one subset of it). Default: the bundled sample patches.
    #[arg(long, value_name = "DATASET")]
    test: Option<PathBuf>,
    #[command(flatten)]
    dataset: DatasetArgs,
    #[command(flatten)]
    metric: MetricArgs,
    /// The context the triplets are labelled by (default: the scalars file's, else 0).
    #[arg(long)]
    ranking: Option<String>,
    /// Seed of the test triplets' distortions.
    #[arg(long, default_value_t = 0)]
    seed: u64,
    /// Triplets per GPU batch.
    #[arg(long, default_value_t = 256)]
    batch: usize,
    /// Leave reference images in [0,1] (the paper code's behaviour).
    #[arg(long)]
    paper_faithful: bool,
    /// Print one JSON object.
    #[arg(long)]
    json: bool,
}

pub fn run(choice: &AdapterChoice, a: EvalArgs) -> Result<()> {
    let (net, method, weights) = a.metric.parsed()?;
    let file_meta = match &a.metric.scalars {
        Some(p) => dps_gpu::tensor_file::read(p)?.metadata,
        None => Default::default(),
    };
    let ranking = Ranking::parse(
        a.ranking
            .as_deref()
            .or(file_meta.get("ranking").map(|s| s.as_str()))
            .unwrap_or("0"),
    )?;
    if a.batch == 0 {
        bail!("--batch must be at least 1");
    }
    let size = a.metric.size;
    if let Some(path) = a.test.as_ref().filter(|p| is_bapps(p)) {
        return run_bapps(choice, &a, path, net.name(), method.name());
    }
    let images = a.dataset.open(a.test.as_ref(), "test", size)?;
    let gpu = Gpu::new(choice)?;
    let mut metric: Metric = a.metric.load(&gpu)?;
    let order: Vec<usize> = (0..images.len()).collect();
    let draws = TripletDraws::draw(&order, &ranking, &mut rand::rngs::StdRng::seed_from_u64(a.seed), size);
    let started = std::time::Instant::now();
    // A chunk never larger than the test: every chunk computes all its slots.
    let mut runner = TripletRunner::new(&gpu, &mut metric, a.batch.min(draws.len().max(1)), a.paper_faithful)?;
    let (d0, d1) = runner.distances(&gpu, &mut metric, &images, &draws)?;
    let score = dps_gpu::eval::two_afc_score(&d0, &d1, &draws.labels)?;
    let seconds = started.elapsed().as_secs_f64();
    if a.json {
        print_json(&json!({
            "two_afc": score, "triplets": draws.len(), "dataset": images.source, "net": net.name(),
            "method": method.name(), "weights": metric.weights.source, "ranking": ranking.name,
            "ranking_order": ranking.describe(), "seed": a.seed, "paper_faithful": a.paper_faithful,
            "size": size, "seconds": seconds, "adapter": gpu.describe(), "weights_choice": format!("{weights:?}"),
        }));
    } else {
        println!(
            "2AFC {score:.4} on {} triplets of {} (ranking {}, seed {}, {} {}, {})",
            draws.len(),
            images.source,
            ranking.name,
            a.seed,
            net.name(),
            method.name(),
            metric.weights.source
        );
    }
    Ok(())
}

/// BAPPS: 2AFC per subset and their mean, or JND mAP per subset and pooled.
fn run_bapps(choice: &AdapterChoice, a: &EvalArgs, path: &std::path::Path, net: &str, method: &str) -> Result<()> {
    let bapps = open_bapps(path, a.dataset.limit)?;
    let gpu = Gpu::new(choice)?;
    let mut metric = a.metric.load(&gpu)?;
    let mut bar: Box<dyn Progress> = if std::io::stderr().is_terminal() && !a.json {
        Box::new(Bar::new("images", 1))
    } else {
        Box::new(Silent)
    };
    let started = std::time::Instant::now();
    let score = score_bapps(&gpu, &mut metric, &bapps, bar.as_mut())?;
    let summary_name = if score.kind == "2afc" { "mean" } else { "pooled" };
    if a.json {
        let subsets: Vec<_> = score
            .subsets
            .iter()
            .map(|s| json!({"subset": s.subset, "count": s.count, "score": s.score}))
            .collect();
        print_json(&json!({
            "bapps": score.kind, "subsets": subsets, summary_name: score.summary, "dataset": path,
            "net": net, "method": method, "weights": metric.weights.source, "size": metric.size,
            "seconds": started.elapsed().as_secs_f64(), "adapter": gpu.describe(),
        }));
    } else {
        for s in &score.subsets {
            println!(
                "{} {:<14} {:.4}  ({} {})",
                score.kind,
                s.subset,
                s.score,
                s.count,
                if score.kind == "2afc" { "triplets" } else { "pairs" }
            );
        }
        println!("{} {:<14} {:.4}", score.kind, summary_name, score.summary);
    }
    Ok(())
}
