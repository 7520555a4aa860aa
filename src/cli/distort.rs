use std::path::PathBuf;

use clap::Args;
use rand::SeedableRng;

use dps_gpu::context::{Ranking, TripletDraws};
use dps_gpu::data::{load_rgb8, resize_bilinear_pil, to_unit_chw, ImageBank};
use dps_gpu::distort::{Distortion, DistortionParams};
use dps_gpu::gpu::{AdapterChoice, Gpu};
use dps_gpu::kernels::distort::DistortPlan;
use dps_gpu::{bail, Context, Result};

use super::dataset::DatasetArgs;

#[derive(Args)]
pub struct DistortArgs {
    /// Image to distort (any format; resized to --size first).
    input: PathBuf,
    /// Where to write the 8-bit PNG.
    #[arg(short, long, value_name = "OUT.png")]
    out: PathBuf,
    /// rotate, translate, darken, hue, blur or zoom.
    #[arg(long)]
    kind: String,
    /// Degrees (rotate), DX,DY pixels (translate), factor (darken), shift (hue), sigma (blur), scale (zoom).
    /// Without it the parameter is drawn from the paper's Table 2 with --seed.
    #[arg(long, allow_hyphen_values = true)]
    param: Option<String>,
    #[arg(long, default_value_t = 0)]
    seed: u64,
    #[arg(long, default_value_t = 64)]
    size: usize,
}

#[derive(Args)]
pub struct TripletsArgs {
    /// Images (CIFAR-10/STL-10 binaries or a folder). Default: the bundled sample patches.
    dataset: Option<PathBuf>,
    #[command(flatten)]
    data: DatasetArgs,
    /// The context labelling the triplets: 0-19 or six names.
    #[arg(long, default_value = "0")]
    ranking: String,
    /// Output directory: <i>_ref.png, <i>_p0.png, <i>_p1.png and labels.json.
    #[arg(short, long, value_name = "DIR")]
    out: PathBuf,
    #[arg(long, default_value_t = 0)]
    seed: u64,
    #[arg(long, default_value_t = 64)]
    size: usize,
}

fn check_size(size: usize) -> Result<()> {
    if !(11..=1024).contains(&size) {
        bail!("--size must be between 11 and 1024, got {size}");
    }
    Ok(())
}

/// Distorts `images` ([n, 3, S, S] in [0,1]) on the GPU, one parameter set per image.
fn distort_on_gpu(gpu: &Gpu, images: &[f32], params: &[Option<DistortionParams>], size: usize) -> Result<Vec<f32>> {
    let plan = DistortPlan::new(gpu, params.len(), size)?;
    gpu.write(&plan.input, 0, images)?;
    plan.set_params(gpu, params)?;
    gpu.run(&plan.dispatches)?;
    gpu.read(&plan.output, plan.output.numel())
}

fn save_png(path: &PathBuf, chw: &[f32], size: usize) -> Result<()> {
    let plane = size * size;
    let img = image::RgbImage::from_fn(size as u32, size as u32, |x, y| {
        let i = y as usize * size + x as usize;
        image::Rgb([0, 1, 2].map(|c| (chw[c * plane + i].clamp(0.0, 1.0) * 255.0).round() as u8))
    });
    img.save(path).context(format!("writing {}", path.display()))
}

pub fn run_distort(choice: &AdapterChoice, a: DistortArgs) -> Result<()> {
    check_size(a.size)?;
    let kind = Distortion::parse(&a.kind)?;
    let params = match &a.param {
        Some(text) => DistortionParams::parse_param(kind, text)?,
        None => DistortionParams::draw(kind, &mut rand::rngs::StdRng::seed_from_u64(a.seed), a.size),
    };
    let image = to_unit_chw(&resize_bilinear_pil(&load_rgb8(&a.input)?, a.size, a.size));
    let gpu = Gpu::new(choice)?;
    let out = distort_on_gpu(&gpu, &image, &[Some(params)], a.size)?;
    save_png(&a.out, &out, a.size)?;
    println!(
        "{} ({}{})",
        a.out.display(),
        params.describe(),
        if a.param.is_none() {
            format!(", seed {}", a.seed)
        } else {
            String::new()
        }
    );
    Ok(())
}

pub fn run_triplets(choice: &AdapterChoice, a: TripletsArgs) -> Result<()> {
    check_size(a.size)?;
    let ranking = Ranking::parse(&a.ranking)?;
    let bank: ImageBank = a.data.open(a.dataset.as_ref(), "test", a.size)?;
    let n = bank.len().min(a.data.limit.unwrap_or(16));
    let order: Vec<usize> = (0..n).collect();
    let draws = TripletDraws::draw(&order, &ranking, &mut rand::rngs::StdRng::seed_from_u64(a.seed), a.size);
    let image_len = 3 * a.size * a.size;
    let mut clean = vec![0.0f32; 2 * n * image_len];
    for (g, &i) in order.iter().enumerate() {
        bank.write_unit(i, &mut clean[g * image_len..(g + 1) * image_len])?;
        bank.write_unit(i, &mut clean[(n + g) * image_len..(n + g + 1) * image_len])?;
    }
    let params: Vec<_> = draws
        .distortions
        .iter()
        .map(|d| Some(d.0))
        .chain(draws.distortions.iter().map(|d| Some(d.1)))
        .collect();
    let gpu = Gpu::new(choice)?;
    let out = distort_on_gpu(&gpu, &clean, &params, a.size)?;
    std::fs::create_dir_all(&a.out).context(format!("creating {}", a.out.display()))?;
    let mut labels = Vec::new();
    for g in 0..n {
        let stem = format!("{g:04}");
        save_png(
            &a.out.join(format!("{stem}_ref.png")),
            &clean[g * image_len..(g + 1) * image_len],
            a.size,
        )?;
        save_png(
            &a.out.join(format!("{stem}_p0.png")),
            &out[g * image_len..(g + 1) * image_len],
            a.size,
        )?;
        save_png(
            &a.out.join(format!("{stem}_p1.png")),
            &out[(n + g) * image_len..(n + g + 1) * image_len],
            a.size,
        )?;
        let (p0, p1) = draws.distortions[g];
        labels.push(
            serde_json::json!({"triplet": stem, "p0": p0.describe(), "p1": p1.describe(), "label": draws.labels[g],
            "closer": if draws.labels[g] == 0.0 { "p0" } else { "p1" }}),
        );
    }
    let manifest = serde_json::json!({"ranking": ranking.name, "ranking_order": ranking.describe(), "seed": a.seed,
        "dataset": bank.source, "size": a.size, "triplets": labels});
    let path = a.out.join("labels.json");
    std::fs::write(&path, serde_json::to_string_pretty(&manifest).expect("JSON"))
        .context(format!("writing {}", path.display()))?;
    println!("wrote {n} triplets to {} (labels in labels.json)", a.out.display());
    Ok(())
}
