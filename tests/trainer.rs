//! `train::Trainer::step` for "Adapted Net": when one chunk holds the whole batch the backward reuses the
//! forward's activations; otherwise every chunk's forward is replayed before its backward (the path that
//! tests/net_backward.rs checks against PyTorch). Both must give the same distances and gradients.

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

/// One step with chunks of at most `max_chunk` triplets: the chunk size, the batch's distances and every conv
/// gradient (weights then biases, layer by layer).
fn step(max_chunk: Option<usize>) -> (usize, Vec<f32>, Vec<Vec<f32>>) {
    let gpu = common::gpu();
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
    (trainer.chunk(), d, g)
}

#[test]
fn a_net_step_in_one_chunk_equals_the_step_in_several() {
    let (one, d1, g1) = step(None);
    let (several, d2, g2) = step(Some(2));
    assert_eq!((one, several), (BATCH, 2), "chunk sizes");
    // The same forward per triplet whatever the chunk: the distances agree exactly.
    assert_eq!(d1, d2, "distances");
    // Gradients are sums over the batch, added chunk by chunk in the second run: equal up to f32 rounding of
    // that order, relative to each tensor's largest gradient.
    for (k, (a, b)) in g1.iter().zip(&g2).enumerate() {
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
