//! Whole metrics on the GPU (`Metric::group_distances`: forward plan, taps, the five methods, chunking)
//! against the CPU reference of `common::cpu`, with random network and channel weights, so it runs anywhere
//! without the real weights.

mod common;

use std::path::PathBuf;
use std::time::Instant;

use common::cpu::{self, Maps, Params};
use common::Lcg;
use dps_gpu::gpu::Precision;
use dps_gpu::metric::{ChannelWeights, Method, Metric};
use dps_gpu::nets::{Layer, NetKind, Network};
use safetensors::tensor::TensorView;
use safetensors::Dtype;

/// A directory under the system temp dir, removed when dropped (also when the test fails).
struct TempDir(PathBuf);

impl TempDir {
    fn new(what: &str) -> TempDir {
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_nanos();
        let dir = std::env::temp_dir().join(format!("dps-gpu-test-{what}-{}-{nanos}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        TempDir(dir)
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// He-uniform weights (bound √(6 / fan_in)) and small biases for one conv, so activations stay O(1).
fn add_conv(params: &mut Params, rng: &mut Lcg, prefix: String, cin: usize, cout: usize, kernel: usize) {
    let fan_in = cin * kernel * kernel;
    let bound = (6.0 / fan_in as f32).sqrt();
    params.insert(
        format!("{prefix}.weight"),
        (vec![cout, cin, kernel, kernel], rng.vec(cout * fan_in, -bound, bound)),
    );
    params.insert(format!("{prefix}.bias"), (vec![cout], rng.vec(cout, -0.1, 0.1)));
}

/// Random parameters of every conv of `kind`, with torchvision's key names.
fn random_params(kind: NetKind, rng: &mut Lcg) -> Params {
    let mut params = Params::new();
    for layer in kind.layers() {
        match layer {
            Layer::Conv { index, shape } => add_conv(
                &mut params,
                rng,
                format!("features.{index}"),
                shape.cin,
                shape.cout,
                shape.kernel,
            ),
            Layer::Fire {
                index,
                cin,
                squeeze,
                expand1,
                expand3,
            } => {
                let p = format!("features.{index}");
                add_conv(&mut params, rng, format!("{p}.squeeze"), cin, squeeze, 1);
                add_conv(&mut params, rng, format!("{p}.expand1x1"), squeeze, expand1, 1);
                add_conv(&mut params, rng, format!("{p}.expand3x3"), squeeze, expand3, 3);
            }
            Layer::MaxPool { .. } => {}
        }
    }
    params
}

fn write_safetensors(path: &std::path::Path, params: &Params) {
    let bytes: Vec<(String, Vec<usize>, Vec<u8>)> = params
        .iter()
        .map(|(k, (shape, v))| {
            (
                k.clone(),
                shape.clone(),
                v.iter().flat_map(|x| x.to_le_bytes()).collect(),
            )
        })
        .collect();
    let views: Vec<(String, TensorView)> = bytes
        .iter()
        .map(|(k, shape, b)| (k.clone(), TensorView::new(Dtype::F32, shape.clone(), b).unwrap()))
        .collect();
    std::fs::write(path, safetensors::serialize(views, None).unwrap()).unwrap();
}

/// `count` images of [3, size, size] in [0, 1], each a random colour plus a gradient and noise of its own
/// strength, so images differ in their statistics and not only pixel by pixel.
fn images(rng: &mut Lcg, count: usize, size: usize) -> Vec<f32> {
    let mut out = Vec::with_capacity(count * 3 * size * size);
    for _ in 0..count {
        let noise = rng.uniform();
        for _ in 0..3 {
            let (base, gy, gx) = (rng.uniform(), rng.uniform() - 0.5, rng.uniform() - 0.5);
            for y in 0..size {
                for x in 0..size {
                    let ramp = (gy * y as f32 + gx * x as f32) / size as f32;
                    let v = base + ramp + noise * (rng.uniform() - 0.5);
                    out.push(v.clamp(0.0, 1.0));
                }
            }
        }
    }
    out
}

/// The CPU taps of every image of a member, one `Vec<Maps>` (tap order) per image.
fn cpu_taps(
    kind: NetKind,
    params: &Params,
    member: &[f32],
    count: usize,
    size: usize,
    normalize: bool,
) -> Vec<Vec<Maps>> {
    let data = if normalize {
        cpu::imagenet_normalize(member, count, size * size, 0, count)
    } else {
        member.to_vec()
    };
    let taps = cpu::forward(kind, params, &Maps::new(count, 3, size, size, data));
    (0..count).map(|i| taps.iter().map(|t| t.image(i)).collect()).collect()
}

/// Builds random weights for `kind`, runs every method (and the raw-reference variants in `raw_methods`) on
/// `groups` groups of 3 images at `size` with at most 2 groups per chunk, and compares each distance with
/// the CPU reference within 1e-4 relative (1e-2 in the fast mode). `barrier_free` picks the f32 conv variant
/// (None: the adapter's choice); `Precision::F16` runs the fast mode's f16 convolutions.
fn check_net(
    kind: NetKind,
    size: usize,
    groups: usize,
    raw_methods: &[Method],
    barrier_free: Option<bool>,
    precision: Precision,
    seed: u64,
) {
    let start = Instant::now();
    let mut gpu = common::gpu_for(precision);
    if precision == Precision::F16 && std::env::var_os("DPS_EXPECT_COOP").is_some() {
        assert!(
            gpu.coop_tile.is_some(),
            "DPS_EXPECT_COOP is set but the fast mode has no cooperative matrix"
        );
    }
    if let Some(b) = barrier_free {
        gpu.barrier_free = b;
    }
    let tolerance = match precision {
        Precision::F32 => 1e-4,
        Precision::F16 => 1e-2,
    };
    let mut rng = Lcg(seed);
    let params = random_params(kind, &mut rng);
    let dir = TempDir::new(kind.name());
    write_safetensors(&dir.0.join(kind.weights_file()), &params);
    let members: Vec<Vec<f32>> = (0..3).map(|_| images(&mut rng, groups, size)).collect();
    let member_refs: Vec<&[f32]> = members.iter().map(|m| m.as_slice()).collect();
    let shapes = kind.tap_shapes(size).unwrap();
    let channels: Vec<usize> = shapes.iter().map(|s| s.0).collect();

    let taps: Vec<Vec<Vec<Maps>>> = members
        .iter()
        .map(|m| cpu_taps(kind, &params, m, groups, size, true))
        .collect();
    let raw_ref_taps = cpu_taps(kind, &params, &members[0], groups, size, false);
    for (l, (t, &(c, side))) in taps[0][0].iter().zip(&shapes).enumerate() {
        assert_eq!((t.c, t.h, t.w), (c, side, side), "{} tap {l} shape", kind.name());
    }
    let cpu_secs = start.elapsed().as_secs_f64();

    let cases = Method::ALL
        .iter()
        .map(|&m| (m, false))
        .chain(raw_methods.iter().map(|&m| (m, true)));
    let mut worst_of_all = 0.0f64;
    for (method, raw) in cases {
        let vectors: Vec<Vec<Vec<f32>>> = cpu::parts(method)
            .iter()
            .map(|_| channels.iter().map(|&c| rng.vec(c, 0.1, 1.0)).collect())
            .collect();
        let weights = ChannelWeights {
            vectors: vectors.clone(),
            source: "random".into(),
        };
        let net = Network::load(&gpu, kind, Some(&dir.0)).unwrap();
        let mut metric = Metric::new(&gpu, net, method, weights, size).unwrap();
        metric.set_max_groups_per_chunk(Some(2));
        let got = metric.group_distances(&gpu, &member_refs, raw).unwrap();
        assert_eq!(got.len(), 2, "one row per compared member");
        let reference = if raw { &raw_ref_taps } else { &taps[0] };
        let mut worst = 0.0f64;
        for (m, row) in got.iter().enumerate() {
            assert_eq!(row.len(), groups, "one distance per group");
            for (g, &d) in row.iter().enumerate() {
                let want = cpu::dps_distance(method, &vectors, &reference[g], &taps[m + 1][g]);
                let rel = ((d as f64 - want) / want).abs();
                worst = worst.max(rel);
                assert!(
                    want > 0.0 && rel <= tolerance,
                    "{} {}{} ({}): d(ref, member {}) of group {g} = {d}, CPU {want}, relative error {rel:.2e}",
                    kind.name(),
                    method.name(),
                    if raw { " (raw reference)" } else { "" },
                    precision.name(),
                    m + 1
                );
            }
        }
        println!(
            "{} {}{} ({}): largest relative error {worst:.1e}",
            kind.name(),
            method.name(),
            if raw { " (raw reference)" } else { "" },
            precision.name()
        );
        worst_of_all = worst_of_all.max(worst);
    }
    if precision == Precision::F16 {
        // The fast mode must really round: an f32 result would pass the 1e-2 check and prove nothing.
        assert!(
            worst_of_all > 1e-6,
            "{}: f16 distances agree with the CPU to {worst_of_all:.1e}; the fast mode seems to run in f32",
            kind.name()
        );
    }
    println!(
        "{} at {size} ({}): CPU reference {cpu_secs:.2} s, total {:.2} s",
        kind.name(),
        common::conv_variant(&gpu),
        start.elapsed().as_secs_f64()
    );
}

// The three nets share the conv variants between them: the adapter's own choice, the tiled one with
// workgroup memory, and the barrier-free one.

#[test]
fn alexnet_distances_match_cpu_reference() {
    check_net(
        NetKind::Alex,
        64,
        5,
        &[Method::Spatial, Method::SpatialSort],
        None,
        Precision::F32,
        21,
    );
}

/// At 58 the first two ceil-mode pools get a partial last window (28 → 14 and 14 → 7, where floor gives 13
/// and 6), unlike at 64.
#[test]
fn squeezenet_distances_match_cpu_reference() {
    check_net(
        NetKind::Squeeze,
        58,
        5,
        &[Method::Spatial, Method::SpatialMean],
        Some(false),
        Precision::F32,
        22,
    );
}

/// At 20 the taps are 20×20, 10×10, 5×5, 2×2 (a floor pool dropping a row) and 1×1; 3 groups in chunks of 2.
#[test]
fn vgg_distances_match_cpu_reference() {
    check_net(NetKind::Vgg, 20, 3, &[Method::Sort], Some(true), Precision::F32, 23);
}

/// The fast mode (f16 tiles and products in every convolution) on all three nets, against the same f32 CPU
/// reference: the distances of independent random images within 1e-2 relative.
#[test]
fn f16_distances_stay_within_1e_2_of_the_cpu_reference() {
    check_net(NetKind::Alex, 64, 3, &[], None, Precision::F16, 31);
    check_net(NetKind::Squeeze, 58, 3, &[], None, Precision::F16, 32);
    check_net(NetKind::Vgg, 20, 3, &[], None, Precision::F16, 33);
}
