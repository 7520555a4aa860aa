use std::path::PathBuf;

use clap::Args;
use rand::SeedableRng;
use serde_json::json;

use std::io::IsTerminal;

use dps_gpu::context::{Ranking, TripletDraws};
use dps_gpu::data::ImageBank;
use dps_gpu::data::{is_bapps, open_bapps};
use dps_gpu::eval::bapps::score_bapps;
use dps_gpu::gpu::{AdapterChoice, Gpu, Precision};
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
    /// Also run the test in the fast mode (f16 convolutions) and report how far its distances are from f32's
    /// and how many 2AFC decisions change (needs an adapter with f16; ignores --precision).
    #[arg(long)]
    compare_f16: bool,
    /// Print one JSON object.
    #[arg(long)]
    json: bool,
}

pub fn run(choice: &AdapterChoice, a: EvalArgs) -> Result<()> {
    let (net, method, weights) = a.metric.parsed()?;
    let file_meta = match &a.metric.scalars {
        Some(p) => dps_gpu::tensor_file::read_metadata(p)?,
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
        if a.compare_f16 {
            bail!("--compare-f16 compares distortion triplets; it does not score BAPPS (use --precision f16)");
        }
        return run_bapps(choice, &a, path, net.name(), method.name());
    }
    let images = a.dataset.open(a.test.as_ref(), "test", size)?;
    // --compare-f16 opens the device for the fast mode (its cooperative matrices are enabled only then); its
    // f32 run uses the same device.
    let mut gpu = Gpu::new(&AdapterChoice {
        precision: if a.compare_f16 {
            Precision::F16
        } else {
            choice.precision
        },
        ..choice.clone()
    })?;
    let order: Vec<usize> = (0..images.len()).collect();
    let draws = TripletDraws::draw(&order, &ranking, &mut rand::rngs::StdRng::seed_from_u64(a.seed), size);
    if a.compare_f16 {
        return run_compare_f16(&mut gpu, &a, &images, &draws, &ranking.name);
    }
    let started = std::time::Instant::now();
    let (metric, d0, d1) = distances(&gpu, &a, &images, &draws)?;
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

/// The metric of `a` and its distances (ref–p0, ref–p1) for every triplet of `draws`, at `gpu.precision`.
fn distances(
    gpu: &Gpu,
    a: &EvalArgs,
    images: &ImageBank,
    draws: &TripletDraws,
) -> Result<(Metric, Vec<f32>, Vec<f32>)> {
    let mut metric: Metric = a.metric.load(gpu)?;
    // A chunk never larger than the test: every chunk computes all its slots.
    let mut runner = TripletRunner::new(gpu, &mut metric, a.batch.min(draws.len().max(1)), a.paper_faithful)?;
    let (d0, d1) = runner.distances(gpu, &mut metric, images, draws)?;
    Ok((metric, d0, d1))
}

/// `--compare-f16`: the same test in f32 and in the fast mode, and how they differ.
fn run_compare_f16(gpu: &mut Gpu, a: &EvalArgs, images: &ImageBank, draws: &TripletDraws, ranking: &str) -> Result<()> {
    if gpu.precision != Precision::F16 {
        bail!(
            "--compare-f16: {} has no f16 shader support (SHADER_F16)",
            gpu.info.name
        );
    }
    let mut runs = Vec::new();
    for precision in [Precision::F32, Precision::F16] {
        gpu.precision = precision;
        let started = std::time::Instant::now();
        let (metric, d0, d1) = distances(gpu, a, images, draws)?;
        let score = dps_gpu::eval::two_afc_score(&d0, &d1, &draws.labels)?;
        runs.push((metric, d0, d1, score, started.elapsed().as_secs_f64()));
    }
    let (metric, e0, e1, score32, seconds32) = &runs[0];
    let (_, h0, h1, score16, seconds16) = &runs[1];
    let c = compare_distances(e0, e1, h0, h1)?;
    if a.json {
        print_json(&json!({
            "triplets": draws.len(), "dataset": images.source, "net": metric.net.kind.name(),
            "method": metric.method.name(), "weights": metric.weights.source, "ranking": ranking,
            "seed": a.seed, "size": a.metric.size, "paper_faithful": a.paper_faithful,
            "two_afc_f32": score32, "two_afc_f16": score16, "seconds_f32": seconds32, "seconds_f16": seconds16,
            "max_relative_error": c.max_relative, "max_relative_error_at_distance": c.max_relative_at,
            "median_distance": c.median_distance, "max_error_over_median": c.max_error_over_median,
            "mean_relative_error": c.mean_relative,
            "distances_within_1e-2": c.within_1e2,
            "decisions_changed": c.decisions_changed, "decisions_identical_fraction": c.identical_fraction(),
            "adapter": gpu.describe(),
        }));
    } else {
        println!(
            "f32 2AFC {score32:.4} ({seconds32:.1} s), f16 2AFC {score16:.4} ({seconds16:.1} s) on {} triplets of {}",
            draws.len(),
            images.source
        );
        println!(
            "distances: {:.3}% within 1e-2 relative; mean relative error {:.2e}, max {:.2e} (at distance {:.3e}; \
             median distance {:.3e}, largest error {:.2e} of it)",
            100.0 * c.within_1e2,
            c.mean_relative,
            c.max_relative,
            c.max_relative_at,
            c.median_distance,
            c.max_error_over_median
        );
        println!(
            "2AFC decisions identical on {} of {} triplets ({:.3}%)",
            draws.len() - c.decisions_changed,
            draws.len(),
            100.0 * c.identical_fraction()
        );
    }
    Ok(())
}

/// How far the fast mode's distances are from f32's, over every distance of a test.
struct PrecisionComparison {
    max_relative: f64,
    /// The f32 distance where the relative error is largest (near-identical images make it tiny).
    max_relative_at: f32,
    mean_relative: f64,
    /// Share of distances within 1e-2 relative of f32.
    within_1e2: f64,
    median_distance: f32,
    /// Largest |f16 − f32| over the median distance: the error on the scale the test's distances live on.
    max_error_over_median: f64,
    decisions_changed: usize,
    triplets: usize,
}

impl PrecisionComparison {
    fn identical_fraction(&self) -> f64 {
        1.0 - self.decisions_changed as f64 / self.triplets.max(1) as f64
    }
}

/// Relative error |f16 − f32| / |f32| of every distance (0 where both are equal), and the triplets whose 2AFC
/// decision (p0 closer, p1 closer, or a tie) differs.
fn compare_distances(e0: &[f32], e1: &[f32], h0: &[f32], h1: &[f32]) -> Result<PrecisionComparison> {
    let mut relative = Vec::with_capacity(2 * e0.len());
    let (mut max_relative, mut max_relative_at, mut max_error) = (0f64, 0f32, 0f64);
    for (e, h) in e0.iter().chain(e1).zip(h0.iter().chain(h1)) {
        if !e.is_finite() || !h.is_finite() {
            bail!("--compare-f16: a distance is not finite (f32 {e}, f16 {h})");
        }
        let err = (*h as f64 - *e as f64).abs();
        let rel = if err == 0.0 { 0.0 } else { err / (*e as f64).abs() };
        max_error = max_error.max(err);
        if rel > max_relative {
            (max_relative, max_relative_at) = (rel, *e);
        }
        relative.push(rel);
    }
    let mut sorted: Vec<f32> = e0.iter().chain(e1).copied().collect();
    sorted.sort_by(f32::total_cmp);
    let decisions_changed = (0..e0.len())
        .filter(|&i| e0[i].partial_cmp(&e1[i]) != h0[i].partial_cmp(&h1[i]))
        .count();
    let n = relative.len().max(1) as f64;
    let median_distance = sorted.get(sorted.len() / 2).copied().unwrap_or(0.0);
    Ok(PrecisionComparison {
        max_relative,
        max_relative_at,
        mean_relative: relative.iter().sum::<f64>() / n,
        within_1e2: relative.iter().filter(|&&r| r <= 1e-2).count() as f64 / n,
        median_distance,
        max_error_over_median: if median_distance > 0.0 {
            max_error / median_distance as f64
        } else {
            0.0
        },
        decisions_changed,
        triplets: e0.len(),
    })
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
