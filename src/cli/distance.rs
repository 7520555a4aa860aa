use std::path::PathBuf;

use clap::Args;
use serde_json::json;

use dps_gpu::data::{load_rgb8, resize_bilinear_pil, to_chw_bytes};
use dps_gpu::gpu::{AdapterChoice, Gpu};
use dps_gpu::Result;

use super::{print_json, MetricArgs};

#[derive(Args)]
pub struct DistanceArgs {
    /// First image (PNG, JPEG, BMP, ...).
    a: PathBuf,
    /// Second image.
    b: PathBuf,
    #[command(flatten)]
    metric: MetricArgs,
    /// Print one JSON object instead of the bare number.
    #[arg(long)]
    json: bool,
}

pub fn run(choice: &AdapterChoice, args: DistanceArgs) -> Result<()> {
    // Everything that can fail without a GPU is checked before opening one.
    let (net, method, weights) = args.metric.parsed()?;
    let size = args.metric.size;
    let load = |p: &PathBuf| -> Result<Vec<u8>> { Ok(to_chw_bytes(&resize_bilinear_pil(&load_rgb8(p)?, size, size))) };
    let (a, b) = (load(&args.a)?, load(&args.b)?);
    let gpu = Gpu::new(choice)?;
    let mut metric = args.metric.load(&gpu)?;
    let d = metric.group_distances_of_bytes(&gpu, &[&a, &b], false)?[0][0];
    if args.json {
        print_json(&json!({
            "distance": d,
            "a": args.a, "b": args.b,
            "net": net.name(), "method": method.name(),
            "weights": metric.weights.source, "network_weights": metric.net.source,
            "size": size, "adapter": gpu.describe(),
            "weights_choice": format!("{weights:?}"),
        }));
    } else {
        println!("{d}");
    }
    Ok(())
}
