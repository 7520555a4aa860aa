//! `train::Trainer::step` for "Adapted Net": when one chunk holds the whole batch the backward reuses the
//! forward's activations; when several chunks do and they all fit the chunk budget, each chunk runs on a plan
//! of its own and keeps its activations; otherwise every chunk's forward is replayed before its backward (the
//! path that tests/net_backward.rs checks against PyTorch). All three must give the same distances and
//! gradients.

mod common;

use dps_gpu::context::{Ranking, TripletDraws};
use dps_gpu::data::open_dataset;
use dps_gpu::metric::Method;
use dps_gpu::nets::{NetKind, Network};
use dps_gpu::train::{init_channel_weights, init_rank_net, Trainer, Variant};
use rand::rngs::StdRng;
use rand::SeedableRng;

const SIZE: usize = 64;
const BATCH: usize = 5;

/// One step with chunks of at most `max_chunk` triplets under a chunk budget of `budget` bytes: the chunk size,
/// whether each chunk's forward ran once, the batch's distances and every conv gradient (weights then biases,
/// layer by layer).
fn step(max_chunk: Option<usize>, budget: Option<u64>) -> (usize, bool, Vec<f32>, Vec<Vec<f32>>) {
    let mut gpu = common::gpu();
    if let Some(b) = budget {
        gpu.chunk_budget = b;
    }
    let kind = NetKind::Alex;
    let method = Method::SpatialMean;
    let images = open_dataset(None, None, "test", Some(8), SIZE).unwrap();
    let channels: Vec<usize> = kind.tap_shapes(SIZE).unwrap().iter().map(|t| t.0).collect();
    let w0 = init_channel_weights(&mut StdRng::seed_from_u64(1), &channels, method.parts().len());
    let theta0 = init_rank_net(&mut StdRng::seed_from_u64(2));
    let net = Network::load(&gpu, kind, None).unwrap();
    let mut trainer = Trainer::new(
        &gpu,
        net,
        method,
        &w0,
        &theta0,
        BATCH,
        SIZE,
        false,
        Variant::Net,
        max_chunk,
    )
    .unwrap();
    let order: Vec<usize> = (0..BATCH).collect();
    let draws = TripletDraws::draw(
        &order,
        &Ranking::parse("3").unwrap(),
        &mut StdRng::seed_from_u64(3),
        SIZE,
    );
    trainer.step(&gpu, &images, &draws, 7, 1e-4, 1).unwrap();
    let d = trainer.state.distances(&gpu).unwrap();
    let grads = trainer.net_grads().unwrap();
    let g = grads
        .weights
        .iter()
        .chain(&grads.biases)
        .map(|t| gpu.read(t, t.numel()).unwrap())
        .collect();
    (trainer.chunk(), trainer.forwards_once(BATCH), d, g)
}

#[test]
fn a_net_step_in_one_chunk_equals_the_step_in_several() {
    let (one, once1, d1, g1) = step(None, None);
    let (kept, once2, d2, g2) = step(Some(2), None);
    // One 64×64 AlexNet triplet with gradients takes 2 × 1,084,416 bytes as chunks are sized (see tests/cli.rs):
    // 8 MiB holds a chunk of 2 but not the 3 chunks of 2 that 5 triplets run in.
    let (replayed, once3, d3, g3) = step(Some(2), Some(8 << 20));
    assert_eq!((one, kept, replayed), (BATCH, 2, 2), "chunk sizes");
    assert_eq!((once1, once2, once3), (true, true, false), "forwards run once");
    // The same forward per triplet whatever the chunk: the distances agree exactly.
    assert_eq!(d1, d2, "distances, chunks kept");
    assert_eq!(d1, d3, "distances, chunks replayed");
    // Gradients are sums over the batch, added chunk by chunk in the chunked runs: equal up to f32 rounding of
    // that order, relative to each tensor's largest gradient.
    for (k, ((a, b), c)) in g1.iter().zip(&g2).zip(&g3).enumerate() {
        for (i, (y, z)) in b.iter().zip(c).enumerate() {
            assert_eq!(y, z, "gradient tensor {k}[{i}]: chunks kept {y}, chunks replayed {z}");
        }
        let scale = b.iter().fold(0f32, |m, v| m.max(v.abs()));
        assert!(scale > 0.0, "gradient tensor {k} is all zero");
        for (i, (x, y)) in a.iter().zip(b).enumerate() {
            assert!(
                (x - y).abs() <= 1e-4 * scale,
                "gradient tensor {k}[{i}]: one chunk {x}, chunks of 2 {y} (largest {scale})"
            );
        }
    }
}

/// CPU adapters' row convolutions read the network's weights packed into textures, packed again only when the
/// weights change. After an "Adapted Net" step the next forward must see the tuned weights: the distances of a
/// second step equal those of a trainer started afresh from the weights the first step left (read back and
/// loaded from a file), and differ from those of one started from the ImageNet weights with the same channel
/// weights (the conv weights moved enough to matter).
#[test]
fn the_step_after_a_net_step_sees_the_tuned_weights() {
    let gpu = common::gpu();
    let kind = NetKind::Alex;
    let method = Method::Spatial;
    let images = open_dataset(None, None, "test", Some(8), SIZE).unwrap();
    let channels: Vec<usize> = kind.tap_shapes(SIZE).unwrap().iter().map(|t| t.0).collect();
    let w0 = init_channel_weights(&mut StdRng::seed_from_u64(4), &channels, method.parts().len());
    let theta0 = init_rank_net(&mut StdRng::seed_from_u64(5));
    let order: Vec<usize> = (0..BATCH).collect();
    let draws = TripletDraws::draw(
        &order,
        &Ranking::parse("3").unwrap(),
        &mut StdRng::seed_from_u64(7),
        SIZE,
    );
    let trainer = |net: Network, w: &[f32]| {
        Trainer::new(&gpu, net, method, w, &theta0, BATCH, SIZE, false, Variant::Net, None).unwrap()
    };
    // Every trainer runs two steps on the same draws (the distortions of a step depend on the steps before it)
    // and the distances of the second are compared; only the tuned trainer's first step has a learning rate
    // (a large one, so that every conv weight moves visibly), so the second steps' distances come from each
    // trainer's conv weights and the same channel weights w1.
    let (lr, seed) = (1e-2, 11);
    let mut tuned = trainer(Network::load(&gpu, kind, None).unwrap(), &w0);
    tuned.step(&gpu, &images, &draws, 9, lr, 1).unwrap();
    let w1 = gpu
        .read(&tuned.metric.all_weights, tuned.metric.all_weights.numel())
        .unwrap();
    let dir = std::env::temp_dir().join(format!("dps-gpu-tuned-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("tuned.safetensors");
    let params = tuned.metric.net.read_params(&gpu).unwrap();
    dps_gpu::tensor_file::write(&path, &params, Default::default()).unwrap();
    tuned.step(&gpu, &images, &draws, seed, 0.0, 2).unwrap();
    let got = tuned.state.distances(&gpu).unwrap();

    let mut fresh = trainer(Network::from_file(&gpu, kind, &path).unwrap(), &w1);
    std::fs::remove_dir_all(&dir).unwrap();
    fresh.step(&gpu, &images, &draws, 9, 0.0, 1).unwrap();
    fresh.step(&gpu, &images, &draws, seed, 0.0, 2).unwrap();
    let want = fresh.state.distances(&gpu).unwrap();
    let mut untuned = trainer(Network::load(&gpu, kind, None).unwrap(), &w1);
    untuned.step(&gpu, &images, &draws, 9, 0.0, 1).unwrap();
    untuned.step(&gpu, &images, &draws, seed, 0.0, 2).unwrap();
    let imagenet = untuned.state.distances(&gpu).unwrap();

    for (i, (a, b)) in got.iter().zip(&want).enumerate() {
        assert!(
            (a - b).abs() <= 1e-5 * b.abs().max(1e-3),
            "distance {i}: after the step {a}, from the tuned weights afresh {b}"
        );
    }
    let moved = got.iter().zip(&imagenet).any(|(a, b)| (a - b).abs() > 1e-3 * b.abs());
    assert!(
        moved,
        "the step left the conv weights' distances as they were: {got:?} against {imagenet:?}"
    );
}
