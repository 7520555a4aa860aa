use std::time::Instant;

use clap::Args;
use rand::{Rng, SeedableRng};
use serde_json::json;

use dps_gpu::context::{Ranking, TripletDraws};
use dps_gpu::data::{ImageBank, RgbImage8};
use dps_gpu::gpu::{AdapterChoice, ConvBlock, Dispatch, Gpu};
use dps_gpu::kernels::adam::Clamp;
use dps_gpu::kernels::distance;
use dps_gpu::kernels::distort::DistortPlan;
use dps_gpu::kernels::images::ByteImages;
use dps_gpu::metric::{Method, Metric, WeightsChoice};
use dps_gpu::nets::{random_weights, NetKind, Network};
use dps_gpu::train::{
    init_channel_weights, init_rank_net, NetTrainer, PendingStats, TrainState, Trainer, Variant, DROPOUT,
};
use dps_gpu::{bail, Result};

use super::print_json;

#[derive(Args)]
pub struct BenchArgs {
    /// Networks to measure, comma-separated: alex, squeeze, vgg.
    #[arg(long, default_value = "alex,squeeze,vgg")]
    net: String,
    /// Triplets per batch.
    #[arg(long, default_value_t = 64)]
    batch: usize,
    /// Timed batches after one warm-up batch.
    #[arg(long, default_value_t = 3)]
    iters: usize,
    /// Image side.
    #[arg(long, default_value_t = 64)]
    size: usize,
    /// Seed of the random images.
    #[arg(long, default_value_t = 0)]
    seed: u64,
    /// Directory with the network weights (default: $DPS_WEIGHTS_DIR, then the embedded weights/).
    #[arg(long, value_name = "DIR", conflicts_with = "random_weights")]
    weights_dir: Option<std::path::PathBuf>,
    /// Run on random weights of each net's shapes, drawn from --seed, instead of the ImageNet files: speed does
    /// not depend on the values, so a machine without ../shared (a lent GPU) can measure every net.
    #[arg(long)]
    random_weights: bool,
    /// What to measure, comma-separated: eval (features + distances), train (distortions on the GPU +
    /// features + pair profile + rank net + backward + Adam, the scalars variant), tune (the same step with the
    /// network's conv layers trained too: `train --variant net`) and triplets (drawing the parameters, uploading
    /// the clean images and distorting them into p0 and p1 on the GPU; no network), and profile (where the time of an
    /// eval chunk, and of a whole tune step on a chunk, goes: every dispatch timed on its own, summed by kernel;
    /// with --json each dispatch's mean and fastest of --iters runs).
    #[arg(long, default_value = "eval,train")]
    what: String,
    /// Force one block (outputs per invocation, rows x columns) on every tiled convolution, to compare them on
    /// one GPU: 8x8, 4x8, 8x4 or 4x4 (default: chosen per convolution). The tiled kernels run GPUs'
    /// convolutions and weight gradients, and the fast mode's where the adapter has no cooperative matrices.
    #[arg(long, value_name = "RxC", value_parser = ConvBlock::parse)]
    conv_block: Option<ConvBlock>,
    /// Run 3×3 stride-1 convolutions as implicit GEMMs like the others instead of Winograd F(2×2, 3×3), to
    /// compare the two (TFLOP/s counts the direct convolution's arithmetic either way). GPUs only: CPU adapters
    /// never use Winograd.
    #[arg(long)]
    no_winograd: bool,
    /// Run the GPU kernels that stage slices in workgroup memory (tiled convolutions and weight gradients,
    /// Winograd's tiles, the fast mode's tensor-core convolution) without loading each slice during the one
    /// before (their PREFETCH), to compare the two. GPUs only: CPU adapters run other kernels.
    #[arg(long)]
    no_prefetch: bool,
    /// Print one JSON object per net.
    #[arg(long)]
    json: bool,
}

pub fn run(choice: &AdapterChoice, mut args: BenchArgs) -> Result<()> {
    let nets = args.net.split(',').map(NetKind::parse).collect::<Result<Vec<_>>>()?;
    if args.batch == 0 || args.iters == 0 {
        bail!("--batch and --iters must be at least 1");
    }
    let _random_dir = if args.random_weights {
        let dir = RandomWeightsDir::write(&nets, args.seed)?;
        args.weights_dir = Some(dir.0.clone());
        Some(dir)
    } else {
        None
    };
    let mut gpu = Gpu::new(choice)?;
    gpu.conv_block = args.conv_block;
    gpu.winograd = !args.no_winograd;
    gpu.prefetch = !args.no_prefetch;
    let mut rng = rand::rngs::StdRng::seed_from_u64(args.seed);
    let image_len = 3 * args.size * args.size;
    // 8-bit, as decoded images are: eval uploads them as bytes.
    let images: Vec<Vec<u8>> = (0..3)
        .map(|_| (0..args.batch * image_len).map(|_| rng.random::<u8>()).collect())
        .collect();
    let members: Vec<&[u8]> = images.iter().map(|v| v.as_slice()).collect();
    let what: Vec<&str> = args.what.split(',').map(|w| w.trim()).collect();
    if let Some(bad) = what
        .iter()
        .find(|w| !matches!(**w, "eval" | "train" | "tune" | "triplets" | "profile"))
    {
        bail!("unknown --what {bad:?}; choose from eval, train, tune, triplets and profile");
    }
    let bank = ImageBank::from_images(
        (0..args.batch).map(|_| {
            RgbImage8::new(
                args.size,
                args.size,
                (0..3 * args.size * args.size).map(|_| rng.random::<u8>()).collect(),
            )
        }),
        args.size,
        "random images",
    )?;
    if what.contains(&"triplets") {
        let seconds = time_triplets(&gpu, &args, &bank)?;
        let rate = (args.batch * args.iters) as f64 / seconds;
        if args.json {
            print_json(&json!({
                "bench": "triplets", "batch": args.batch, "size": args.size, "iters": args.iters,
                "seconds": seconds, "triplets_per_s": rate, "adapter": gpu.describe(), "seed": args.seed,
            }));
        } else {
            println!(
                "triplets batch {:>5}  {rate:>10.1} triplets/s (draw + upload + 2 distortions on the GPU)  [{}]",
                args.batch,
                gpu.describe()
            );
        }
    }
    for kind in nets {
        for w in what.iter().filter(|w| **w != "triplets") {
            if *w == "profile" {
                profile_eval(&gpu, kind, &args, &members)?;
                continue;
            }
            let timing = match *w {
                "eval" => time_eval(&gpu, kind, &args, &members)?,
                "train" => time_train(&gpu, kind, &args, &bank, Variant::Scalars)?,
                _ => time_train(&gpu, kind, &args, &bank, Variant::Net)?,
            };
            report(&gpu, kind, w, &args, timing)?;
        }
    }
    Ok(())
}

/// A temporary directory of random weight files (removed when dropped).
struct RandomWeightsDir(std::path::PathBuf);

impl RandomWeightsDir {
    fn write(nets: &[NetKind], seed: u64) -> Result<RandomWeightsDir> {
        let dir = std::env::temp_dir().join(format!("dps-gpu-random-weights-{}", std::process::id()));
        std::fs::create_dir_all(&dir)
            .map_err(|e| dps_gpu::Error::msg(format!("cannot create {}: {e}", dir.display())))?;
        let dir = RandomWeightsDir(dir);
        for &kind in nets {
            let metadata = [("weights".to_string(), format!("random, seed {seed}"))].into();
            dps_gpu::tensor_file::write(&dir.0.join(kind.weights_file()), &random_weights(kind, seed), metadata)?;
        }
        Ok(dir)
    }
}

impl Drop for RandomWeightsDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// Seconds for the timed iterations, triplets per chunk, and whether each chunk's forward ran once per step.
struct Timing {
    seconds: f64,
    /// Of those, the seconds the host waited for the GPU.
    waited: f64,
    chunk: usize,
    forwards_once: bool,
}

/// The LPIPS-style metric of `kind` (spatial, baseline weights) after one batch of `members`, which builds its
/// plan and warms up pipelines and buffers.
fn warm_metric(gpu: &Gpu, kind: NetKind, args: &BenchArgs, members: &[&[u8]], gradients: bool) -> Result<Metric> {
    let mut metric = Metric::load(
        gpu,
        kind,
        Method::Spatial,
        &WeightsChoice::Baseline,
        args.weights_dir.as_deref(),
        args.size,
    )?;
    // Chunks sized as tune's, which keep every activation's gradient too.
    metric.set_keeps_gradients(gradients);
    metric.group_distances_of_bytes(gpu, members, false)?;
    Ok(metric)
}

fn time_eval(gpu: &Gpu, kind: NetKind, args: &BenchArgs, members: &[&[u8]]) -> Result<Timing> {
    let mut metric = warm_metric(gpu, kind, args, members, false)?;
    // Each batch is queued before the one before is collected, as a stream of batches would run: the host's
    // upload of a batch overlaps the GPU's work on the previous one.
    let (start, waited) = (Instant::now(), gpu.waited_seconds());
    let mut pending = None;
    for _ in 0..args.iters {
        let queued = metric.queue_group_distances_of_bytes(gpu, members, false)?;
        if let Some(previous) = pending.replace(queued) {
            previous.wait(gpu)?;
        }
    }
    if let Some(last) = pending {
        last.wait(gpu)?;
    }
    Ok(Timing {
        seconds: start.elapsed().as_secs_f64(),
        waited: gpu.waited_seconds() - waited,
        chunk: metric.current_plan().map_or(0, |p| p.chunk_shape().0),
        forwards_once: true,
    })
}

/// Seconds for `iters` training steps (after one warm-up step) of `variant`, with the step `train` runs.
fn time_train(gpu: &Gpu, kind: NetKind, args: &BenchArgs, bank: &ImageBank, variant: Variant) -> Result<Timing> {
    let channels: Vec<usize> = kind.tap_shapes(args.size)?.iter().map(|t| t.0).collect();
    let mut rng = rand::rngs::StdRng::seed_from_u64(args.seed);
    let w0 = init_channel_weights(&mut rng, &channels, 1);
    let theta0 = init_rank_net(&mut rng);
    let net = Network::load(gpu, kind, args.weights_dir.as_deref())?;
    let mut trainer = Trainer::new(
        gpu,
        net,
        Method::Spatial,
        &w0,
        &theta0,
        args.batch,
        args.size,
        false,
        variant,
        None,
    )?;
    let ranking = Ranking::parse("0")?;
    let images: Vec<usize> = (0..args.batch).collect();
    let check = |pending: PendingStats| -> Result<()> {
        let stats = pending.wait(gpu)?;
        if !stats.loss().is_finite() {
            bail!("the bench's training loss became {}", stats.loss());
        }
        Ok(())
    };
    let mut queue = |t: u32| -> Result<PendingStats> {
        let draws = TripletDraws::draw(&images, &ranking, &mut rng, args.size);
        trainer.queue_step(gpu, bank, &draws, t, 1e-3, t)
    };
    check(queue(1)?)?;
    // As `train` runs them: each step queued before the one before is collected.
    let (start, waited) = (Instant::now(), gpu.waited_seconds());
    let mut pending = None;
    for t in 0..args.iters {
        if let Some(previous) = pending.replace(queue(t as u32 + 2)?) {
            check(previous)?;
        }
    }
    if let Some(last) = pending {
        check(last)?;
    }
    Ok(Timing {
        seconds: start.elapsed().as_secs_f64(),
        waited: gpu.waited_seconds() - waited,
        chunk: trainer.chunk(),
        forwards_once: trainer.forwards_once(args.batch),
    })
}

/// Seconds for `iters` batches of triplet generation: Table 2 draws on the host, the clean images uploaded as
/// bytes (into both halves of the input: p0 and p1 are distorted from them), both distortions in one dispatch
/// set, waited for.
fn time_triplets(gpu: &Gpu, args: &BenchArgs, bank: &ImageBank) -> Result<f64> {
    let image_len = 3 * args.size * args.size;
    let plan = DistortPlan::new(gpu, 2 * args.batch, args.size)?;
    let upload = ByteImages::new(gpu, &plan.input, 2 * args.batch * image_len)?;
    let mut rng = rand::rngs::StdRng::seed_from_u64(args.seed);
    let ranking = Ranking::parse("0")?;
    let order: Vec<usize> = (0..args.batch).collect();
    let mut batch = || -> Result<()> {
        let draws = TripletDraws::draw(&order, &ranking, &mut rng, args.size);
        let clean = draws
            .images
            .iter()
            .map(|&i| bank.bytes(i))
            .collect::<Result<Vec<_>>>()?;
        let mut params = Vec::with_capacity(2 * args.batch);
        params.extend(draws.distortions.iter().map(|d| Some(d.0)));
        params.extend(draws.distortions.iter().map(|d| Some(d.1)));
        upload.write_parts(gpu, &[&clean[..], &clean[..]].concat())?;
        plan.set_params(gpu, &params)?;
        gpu.run(&plan.dispatches)?;
        gpu.read(&plan.output, 1).map(|_| ())
    };
    batch()?;
    let start = Instant::now();
    for _ in 0..args.iters {
        batch()?;
    }
    Ok(start.elapsed().as_secs_f64())
}

/// `figures` with what they were measured with, as every bench line records it: the adapter, the seed, the
/// weights and the kernel settings forced or left to the adapter.
fn with_settings(gpu: &Gpu, args: &BenchArgs, mut figures: serde_json::Value) -> serde_json::Value {
    let settings = json!({
        "adapter": gpu.describe(), "seed": args.seed,
        "weights": if args.random_weights { "random" } else { "files" },
        "conv_block": args.conv_block.map_or("auto".into(), |b| b.name()),
        "winograd": gpu.uses_winograd(),
        "prefetch": gpu.prefetch,
    });
    if let (Some(f), serde_json::Value::Object(s)) = (figures.as_object_mut(), settings) {
        f.extend(s);
    }
    figures
}

fn report(gpu: &Gpu, kind: NetKind, what: &str, args: &BenchArgs, timing: Timing) -> Result<()> {
    let Timing {
        seconds,
        waited,
        chunk,
        forwards_once,
    } = timing;
    // The share of the time the host spent waiting for results: near 0 on a GPU, the host (uploads, submissions)
    // and not the kernels bounds the rate. (On lavapipe a submission runs its kernels before it returns, so the
    // host hardly ever waits there.)
    let wait_share = (waited / seconds).clamp(0.0, 1.0);
    let triplets = (args.batch * args.iters) as f64 / seconds;
    // The network work the step performs, in forward passes of the three images: the backward of a tune step
    // (input and weight gradients) costs about two, and when the batch spans several chunks whose activations
    // do not all fit the chunk budget each chunk's forward runs twice (the batch's ∂L/∂d is needed before any
    // chunk's backward).
    let passes = match what {
        "tune" if !forwards_once => 4.0,
        "tune" => 3.0,
        _ => 1.0,
    };
    let flops = passes * 3.0 * kind.flops_per_image(args.size)? as f64 * triplets;
    if args.json {
        print_json(&with_settings(
            gpu,
            args,
            json!({
                "bench": what, "net": kind.name(), "method": "spatial", "batch": args.batch, "chunk": chunk,
                "forward_passes": passes, "chunk_budget_bytes": gpu.chunk_budget,
                "size": args.size, "iters": args.iters, "seconds": seconds, "triplets_per_s": triplets,
                "tflops": flops / 1e12, "gpu_wait_seconds": waited, "gpu_wait_share": wait_share,
            }),
        ));
    } else {
        println!(
            "{:<8} {what:<5} batch {:>5} (chunks of {chunk})  {triplets:>10.1} triplets/s  {:>8.3} TFLOP/s  waiting for the GPU {:>3.0}%  [{}]",
            kind.name(),
            args.batch,
            flops / 1e12,
            100.0 * wait_share,
            gpu.describe()
        );
    }
    Ok(())
}

/// Where the time goes: after a warm-up batch, every dispatch of an eval chunk (forward pass, per-tap transforms,
/// distances), then of a whole tune step on a chunk that holds its batch (the packing of the row kernels' weights
/// that the previous step's Adam left stale, on CPU adapters; the forward, recording the max-pools' maxima, and the
/// pair profile under training's dropout; the weighted sum, rank net and ∂L/∂w of the batch; the distances'
/// backward to the taps; the network's ReLU, max-pool and convolution gradients; Adam on w, the rank net and every
/// conv parameter), each submitted on its own and waited for, `--iters` times; the means summed by kernel (entry
/// point). Each lone submission adds its launch cost (tens of µs on a GPU), so
/// the figures are those of batches large enough for the kernels to dominate.
fn profile_eval(gpu: &Gpu, kind: NetKind, args: &BenchArgs, members: &[&[u8]]) -> Result<()> {
    let metric = warm_metric(gpu, kind, args, members, false)?;
    let plan = metric
        .current_plan()
        .ok_or_else(|| dps_gpu::Error::msg("the evaluation built no plan"))?;
    let forward: Vec<&Dispatch> = plan
        .forward
        .dispatches()
        .iter()
        .chain(&plan.dispatches)
        .chain(plan.sum.as_ref())
        .collect();
    let eval = Profile::measure(gpu, &forward, plan.chunk_shape().0, args.iters)?;

    // tune's chunks keep every activation and its gradient, so they may be smaller than eval's.
    let metric = warm_metric(gpu, kind, args, members, true)?;
    let plan = metric
        .current_plan()
        .ok_or_else(|| dps_gpu::Error::msg("the evaluation built no plan"))?;
    let chunk = plan.chunk_shape().0;
    let mut rng = rand::rngs::StdRng::seed_from_u64(args.seed);
    let state = TrainState::new(
        gpu,
        &metric.all_weights,
        &init_rank_net(&mut rng),
        chunk,
        Clamp::AfterStep,
    )?;
    let trainer = NetTrainer::new(gpu, &metric, &[plan], &state)?;
    gpu.write_pod(&plan.state, &distance::dropout_state(args.seed as u32, 0, DROPOUT))?;
    let step: Vec<&Dispatch> = metric
        .net
        .packs
        .dispatches()
        .iter()
        .chain(plan.forward.dispatches())
        .chain(&plan.dispatches)
        .chain(state.dispatches())
        .chain(trainer.step_dispatches(0))
        .collect();
    let tune = Profile::measure(gpu, &step, chunk, args.iters)?;

    if args.json {
        let mut line = eval.json();
        line["bench"] = json!("profile");
        line["net"] = json!(kind.name());
        line["method"] = json!("spatial");
        line["size"] = json!(args.size);
        line["iters"] = json!(args.iters);
        line["tune"] = tune.json();
        print_json(&with_settings(gpu, args, line));
    } else {
        let title = |what: &str, p: &Profile| {
            format!(
                "{} {what}: one chunk of {} triplets, each dispatch alone, mean of {} [{}]",
                kind.name(),
                p.chunk,
                args.iters,
                gpu.describe()
            )
        };
        eval.print(&title("eval profile", &eval));
        tune.print(&title(
            "tune step (packs, forward, pair profile, rank net, distances' and network's backward, Adam)",
            &tune,
        ));
    }
    Ok(())
}

/// The times of one chunk's dispatches, each run alone.
struct Profile<'a> {
    chunk: usize,
    /// Per dispatch: its kernel, mean seconds and fastest run's seconds (steadier on a shared machine).
    each: Vec<(&'a str, f64, f64)>,
}

impl<'a> Profile<'a> {
    fn measure(gpu: &Gpu, dispatches: &[&'a Dispatch], chunk: usize, iters: usize) -> Result<Profile<'a>> {
        let mut seconds = vec![(0.0, f64::INFINITY); dispatches.len()];
        for _ in 0..iters {
            for (d, (mean, fastest)) in dispatches.iter().zip(&mut seconds) {
                let start = Instant::now();
                gpu.run(std::slice::from_ref(*d))?;
                gpu.wait()?;
                let took = start.elapsed().as_secs_f64();
                *mean += took / iters as f64;
                *fastest = fastest.min(took);
            }
        }
        let each = dispatches
            .iter()
            .zip(seconds)
            .map(|(d, (mean, fastest))| (d.label(), mean, fastest))
            .collect();
        Ok(Profile { chunk, each })
    }

    fn total(&self) -> f64 {
        self.each.iter().map(|e| e.1).sum()
    }

    /// (kernel, dispatches, mean seconds, fastest seconds) in the order each kernel first runs.
    fn by_kernel(&self) -> Vec<(&'a str, usize, f64, f64)> {
        let mut kernels: Vec<(&'a str, usize, f64, f64)> = Vec::new();
        for &(label, s, fastest) in &self.each {
            match kernels.iter_mut().find(|k| k.0 == label) {
                Some(k) => (k.1, k.2, k.3) = (k.1 + 1, k.2 + s, k.3 + fastest),
                None => kernels.push((label, 1, s, fastest)),
            }
        }
        kernels
    }

    fn json(&self) -> serde_json::Value {
        let total = self.total();
        let by_kernel: Vec<_> = self
            .by_kernel()
            .iter()
            .map(|(k, n, s, fastest)| {
                json!({"kernel": k, "dispatches": n, "seconds": s, "min_seconds": fastest, "share": s / total})
            })
            .collect();
        let each: Vec<_> = self
            .each
            .iter()
            .map(|(k, s, fastest)| json!({"kernel": k, "seconds": s, "min_seconds": fastest}))
            .collect();
        json!({"chunk": self.chunk, "seconds": total, "kernels": by_kernel, "dispatches": each})
    }

    fn print(&self, title: &str) {
        let total = self.total();
        println!("{title}");
        println!(
            "  {:<36} {:>10} {:>12} {:>7}",
            "kernel", "dispatches", "ms / chunk", "share"
        );
        for (k, n, s, _) in self.by_kernel() {
            println!("  {k:<36} {n:>10} {:>12.3} {:>6.1}%", 1e3 * s, 100.0 * s / total);
        }
        println!("  {:<36} {:>10} {:>12.3}", "all", self.each.len(), 1e3 * total);
    }
}
