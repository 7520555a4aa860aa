use std::path::PathBuf;

use clap::{Args, Parser, Subcommand};

use dps_gpu::gpu::{memory, AdapterChoice, Gpu, Precision};
use dps_gpu::metric::{Method, WeightsChoice};
use dps_gpu::nets::NetKind;
use dps_gpu::{bail, Result};

mod bench;
mod dataset;
mod distance;
mod distort;
mod eval;
mod info;
mod report;
mod sweep;
mod train;

#[derive(Parser)]
#[command(
    name = "dps-gpu",
    version,
    about = "Deep perceptual similarity metrics, and their adaptation to contexts, in WGSL on any GPU"
)]
pub struct Cli {
    /// Use the GPU adapter whose name contains this text (case-insensitive); `dps-gpu info` lists them.
    /// The backend set follows WGPU_BACKEND (vulkan, metal, dx12, gl).
    #[arg(long, global = true, env = "DPS_ADAPTER")]
    adapter: Option<String>,

    /// Arithmetic of the convolutions: f32 (exact), or f16, the fast mode (f16 operands with f32 accumulation, on
    /// the adapter's cooperative matrices (tensor cores) where it has them; distances ~1e-3 relative from f32 on
    /// average, see BENCHMARKS.md). Falls back to f32, with a note, where the adapter has no f16.
    #[arg(long, global = true, env = "DPS_PRECISION", default_value = "f32", value_parser = ["f32", "f16"])]
    precision: String,

    /// GPU memory, in GiB, that the images of a batch may take at once (activations, and their gradients when
    /// the network trains); a batch runs in as many chunks as it needs. Default: three quarters of the
    /// device-local memory of a discrete GPU whose driver reports it (Vulkan), else 1 GiB. `dps-gpu info` shows it.
    #[arg(long, global = true, env = "DPS_GPU_MEMORY", value_name = "GiB")]
    gpu_memory: Option<String>,

    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Perceptual distance between two images (any size and format; resized like PIL's bilinear filter).
    Distance(distance::DistanceArgs),
    /// The GPU adapter, backend, driver, the limits that matter and the features found.
    Info(info::InfoArgs),
    /// Adapt a metric to a context: train per-channel weights and the rank net (PROTOCOL.md §6).
    Train(train::TrainArgs),
    /// Score a metric (baseline, LPIPS or adapted) on distortion-ranking triplets.
    Eval(eval::EvalArgs),
    /// Apply one distortion to an image and write the 8-bit result.
    Distort(distort::DistortArgs),
    /// Write sample distortion-ranking triplets as PNGs with their labels, to look at a context.
    Triplets(distort::TripletsArgs),
    /// Run the paper's grid (nets × methods × contexts × seeds, and baselines), resumably, into DIR/results.jsonl.
    Sweep(sweep::SweepArgs),
    /// Throughput in triplets per second: evaluation and scalars-training steps on random images.
    ///
    /// Each line gives triplets/s, the network's TFLOP/s at that rate, and the share of the time the host spent
    /// waiting for the GPU (batches are queued while the one before runs): near 0% on a GPU, the uploads and
    /// submissions rather than the kernels bound the rate (on lavapipe a submission runs its kernels before it
    /// returns, so it shows 0% there).
    Bench(bench::BenchArgs),
    /// Turn sweep results (DIR/results.jsonl) into report.md with the paper's Fig. 2, Fig. 3 and Table 3.
    Report(report::ReportArgs),
}

/// Options that pick a metric: the network, the comparison method and the channel weights.
#[derive(Args, Clone)]
pub struct MetricArgs {
    /// Loss network: alex, squeeze or vgg [default: the --scalars file's, else alex].
    #[arg(long)]
    net: Option<String>,
    /// Comparison method: spatial, mean, sort, spatial+mean or spatial+sort [default: the --scalars file's, else
    /// spatial].
    #[arg(long)]
    method: Option<String>,
    /// Use the LPIPS v0.1 channel weights of the net (spatial method only).
    #[arg(long, conflicts_with = "scalars")]
    lpips: bool,
    /// Channel weights from a scalars file (safetensors with keys `<part>.<tap>`, e.g. spatial.0 … spatial.4).
    /// A file written by `train --variant net` also holds the tuned network (`features.*`), which is then used.
    #[arg(long, value_name = "FILE")]
    pub scalars: Option<PathBuf>,
    /// Directory with the network weights (alexnet/vgg16/squeezenet1_1.safetensors, lpips_*_v0.1.safetensors).
    /// Without it: $DPS_WEIGHTS_DIR, then the embedded weights/ directory.
    #[arg(long, value_name = "DIR")]
    weights_dir: Option<PathBuf>,
    /// Side of the square images the network sees.
    #[arg(long, default_value_t = 64)]
    size: usize,
}

impl MetricArgs {
    fn parsed(&self) -> Result<(NetKind, Method, WeightsChoice)> {
        // A file written by `train` records its net and method: they are the defaults, and a flag that
        // contradicts them is refused when the weights are read.
        let recorded = match &self.scalars {
            Some(p) if self.net.is_none() || self.method.is_none() => dps_gpu::tensor_file::read_metadata(p)?,
            _ => Default::default(),
        };
        let pick = |flag: &Option<String>, key: &str, default: &str| -> String {
            flag.clone()
                .or_else(|| recorded.get(key).cloned())
                .unwrap_or_else(|| default.to_string())
        };
        let net = NetKind::parse(&pick(&self.net, "net", "alex"))?;
        let method = Method::parse(&pick(&self.method, "method", "spatial"))?;
        if !(16..=1024).contains(&self.size) {
            bail!("--size must be between 16 and 1024, got {}", self.size);
        }
        if let Some(d) = &self.weights_dir {
            if !d.is_dir() {
                bail!("--weights-dir {} is not a directory", d.display());
            }
        }
        let choice = match (&self.scalars, self.lpips) {
            (Some(p), _) => WeightsChoice::Scalars(p.clone()),
            (None, true) => WeightsChoice::Lpips,
            (None, false) => WeightsChoice::Baseline,
        };
        Ok((net, method, choice))
    }

    fn load(&self, gpu: &Gpu) -> Result<dps_gpu::metric::Metric> {
        let (net, method, choice) = self.parsed()?;
        dps_gpu::metric::Metric::load(gpu, net, method, &choice, self.weights_dir.as_deref(), self.size)
    }
}

pub fn run(cli: Cli) -> Result<()> {
    let mut choice = AdapterChoice::from_flag_or_env(cli.adapter);
    choice.precision = Precision::parse(&cli.precision)?;
    choice.chunk_budget = cli.gpu_memory.as_deref().map(memory::parse_gib).transpose()?;
    match cli.command {
        Command::Distance(a) => distance::run(&choice, a),
        Command::Info(a) => info::run(&choice, a),
        Command::Bench(a) => bench::run(&choice, a),
        Command::Train(a) => train::run(&choice, a),
        Command::Distort(a) => distort::run_distort(&choice, a),
        Command::Triplets(a) => distort::run_triplets(&choice, a),
        Command::Eval(a) => eval::run(&choice, a),
        Command::Sweep(a) => sweep::run(&choice, a),
        Command::Report(a) => report::run(a),
    }
}

/// Prints a JSON value on one line.
fn print_json(value: &serde_json::Value) {
    println!(
        "{}",
        serde_json::to_string(value).expect("JSON values always serialise")
    );
}
