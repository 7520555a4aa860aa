use std::io::IsTerminal;
use std::path::PathBuf;

use clap::Args;
use serde_json::json;

use dps_gpu::data::{is_bapps, open_bapps, open_dataset};
use dps_gpu::gpu::{AdapterChoice, Gpu};
use dps_gpu::metric::Method;
use dps_gpu::nets::NetKind;
use dps_gpu::progress::{format_duration, Bar, Progress, Silent};
use dps_gpu::sweep::{parse_list, parse_rankings, run_sweep, BappsSet, Shard, SweepConfig, TestSet};
use dps_gpu::train::Variant;
use dps_gpu::{bail, Result};

use super::print_json;

#[derive(Args)]
pub struct SweepArgs {
    /// Images to adapt on (SVHN .mat, CIFAR-10/STL-10 binaries, a folder); a CIFAR-10 directory gives its
    /// training batches.
    #[arg(long, value_name = "DATASET")]
    train: PathBuf,
    /// A test set as NAME=DATASET (repeat it); the first is in-distribution, the others out of distribution.
    /// A CIFAR-10 directory gives its test batch.
    #[arg(long = "test", value_name = "NAME=DATASET", required = true)]
    tests: Vec<String>,
    /// A BAPPS 2afc/<split> or jnd/<split> directory scored for every cell (at most one of each).
    #[arg(long, value_name = "DIR")]
    bapps: Vec<PathBuf>,
    /// Loss networks.
    #[arg(long, default_value = "alex,squeeze,vgg")]
    nets: String,
    /// Comparison methods.
    #[arg(long, default_value = "spatial,mean,sort,spatial+mean,spatial+sort")]
    methods: String,
    /// Paper contexts: numbers and ranges, e.g. 0-19 or 0,3,5-7.
    #[arg(long, default_value = "0-19")]
    rankings: String,
    /// Training seeds per cell: 0, 1, … N−1.
    #[arg(long, default_value_t = 4)]
    seeds: u64,
    /// What is adapted: the per-channel scalars (`scalars`; cells of a net and seed share the frozen network's
    /// features) or also the network's conv layers (`net`, the paper's "Adapted Net"; every cell trains alone).
    #[arg(long, default_value = "scalars")]
    variant: String,
    #[arg(long, default_value_t = 10)]
    epochs: usize,
    /// Triplets per training step.
    #[arg(long, default_value_t = 1024)]
    batch: usize,
    #[arg(long, default_value_t = 1e-3)]
    lr: f32,
    /// Use only the first N training images.
    #[arg(long)]
    limit: Option<usize>,
    /// Use only the first N images of each test set.
    #[arg(long)]
    test_limit: Option<usize>,
    /// Seed of the test triplets (as `eval --seed`).
    #[arg(long, default_value_t = 0)]
    eval_seed: u64,
    /// Side of the square images the networks see.
    #[arg(long, default_value_t = 64)]
    size: usize,
    /// The paper code's order of clamp and update, and references left in [0,1] (PROTOCOL.md §5–6).
    #[arg(long)]
    paper_faithful: bool,
    /// Run only shard K of N (K from 1) of the cells, e.g. from a Slurm array job; merge with `report`.
    #[arg(long, value_name = "K/N")]
    shard: Option<String>,
    /// Directory with the network weights (default: $DPS_WEIGHTS_DIR, then weights/).
    #[arg(long, value_name = "DIR")]
    weights_dir: Option<PathBuf>,
    /// Results directory: results.jsonl (one line per finished cell), sweep.json, metrics/.
    #[arg(long, short = 'o', value_name = "DIR")]
    out: PathBuf,
    /// Print a JSON summary at the end.
    #[arg(long)]
    json: bool,
}

pub fn run(choice: &AdapterChoice, a: SweepArgs) -> Result<()> {
    let variant = Variant::parse(&a.variant).map_err(|e| e.context("--variant"))?;
    if a.seeds == 0 || a.epochs == 0 || a.batch == 0 || !(a.lr > 0.0 && a.lr.is_finite()) {
        bail!("--seeds, --epochs and --batch must be at least 1 and --lr a positive number");
    }
    if !(16..=1024).contains(&a.size) {
        bail!("--size must be between 16 and 1024, got {}", a.size);
    }
    let config = SweepConfig {
        nets: parse_list(&a.nets, "--nets", NetKind::parse)?,
        methods: parse_list(&a.methods, "--methods", Method::parse)?,
        rankings: parse_rankings(&a.rankings)?,
        seeds: (0..a.seeds).collect(),
        variant,
        epochs: a.epochs,
        batch: a.batch,
        lr: a.lr,
        size: a.size,
        paper_faithful: a.paper_faithful,
        eval_seed: a.eval_seed,
        limit: a.limit,
        test_limit: a.test_limit,
        weights_dir: a.weights_dir.clone(),
        shard: a.shard.as_deref().map(Shard::parse).transpose()?.unwrap_or(Shard::ALL),
    };
    let mut tests = Vec::new();
    for spec in &a.tests {
        let Some((name, path)) = spec.split_once('=').filter(|(n, p)| !n.is_empty() && !p.is_empty()) else {
            bail!("--test takes NAME=DATASET, got {spec:?}");
        };
        if tests.iter().any(|t: &TestSet| t.name == name) {
            bail!("--test {name} is given twice");
        }
        let images = open_dataset(Some(path.as_ref()), None, "test", a.test_limit, a.size)?;
        tests.push(TestSet {
            name: name.to_string(),
            images,
        });
    }
    let mut bapps = Vec::new();
    for path in &a.bapps {
        if !is_bapps(path) {
            bail!(
                "--bapps {} is not a BAPPS 2afc/<split> or jnd/<split> directory",
                path.display()
            );
        }
        bapps.push(BappsSet {
            path: path.clone(),
            bapps: open_bapps(path, a.test_limit)?,
        });
    }
    let train = open_dataset(Some(&a.train), None, "train", a.limit, a.size)?;
    let gpu = Gpu::new(choice)?;
    let terminal = std::io::stderr().is_terminal() && !a.json;
    eprintln!(
        "sweep: {} nets × {} methods × {} contexts × {} seeds (+ baselines), shard {}/{}, {} training images of {} [{}]",
        config.nets.len(),
        config.methods.len(),
        config.rankings.len(),
        config.seeds.len(),
        config.shard.index,
        config.shard.count,
        train.len(),
        train.source,
        gpu.describe()
    );
    let mut bar: Box<dyn Progress> = if terminal {
        Box::new(Bar::new("triplets", a.batch as u64))
    } else {
        Box::new(Silent)
    };
    let summary = run_sweep(
        &gpu,
        &config,
        &train,
        &tests,
        &bapps,
        &a.out,
        bar.as_mut(),
        &mut |line| {
            if terminal {
                eprintln!("\r{line}\x1b[K");
            } else {
                eprintln!("{line}");
            }
        },
    )?;
    if a.json {
        print_json(&json!({
            "results": summary.results, "owned": summary.owned, "skipped": summary.skipped, "ran": summary.ran,
            "seconds": summary.seconds, "adapter": gpu.describe(),
        }));
    } else {
        println!("{}", summary.results.display());
    }
    eprintln!(
        "{} cells ran, {} were already done (of {} in this shard), in {}",
        summary.ran,
        summary.skipped,
        summary.owned,
        format_duration(summary.seconds)
    );
    Ok(())
}
