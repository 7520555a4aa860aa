//! The two ways images reach the network. `metric::TripletRunner`, which feeds training and `eval`: per chunk it
//! uploads the clean images once, as bytes, copies them on the GPU to the distortion's input for p0 and p1,
//! distorts them and runs the network; its distances must be those of the metric on the same images distorted
//! separately (tests/distort.rs checks the distortions against torchvision), whatever the chunking. And
//! `Metric::group_distances_of_bytes` (BAPPS, `distance`, bench): exactly the distances of the same images given
//! as [0, 1] floats (metric_cpu.rs and reference.rs check those against a CPU reference and PyTorch), also when
//! batches are queued before the one before is collected.

mod common;

use dps_gpu::context::{Ranking, TripletDraws};
use dps_gpu::data::open_dataset;
use dps_gpu::kernels::distort::DistortPlan;
use dps_gpu::metric::Method;
use dps_gpu::metric::{Metric, TripletRunner, WeightsChoice};
use dps_gpu::nets::NetKind;
use rand::rngs::StdRng;
use rand::SeedableRng;

const SIZE: usize = 64;
const TRIPLETS: usize = 5;

#[test]
fn runner_distances_are_the_metrics_on_the_drawn_distorted_images() {
    let gpu = common::gpu();
    let images = open_dataset(None, None, "test", Some(8), SIZE).unwrap();
    let order: Vec<usize> = (0..TRIPLETS).collect();
    let draws = TripletDraws::draw(
        &order,
        &Ranking::parse("5").unwrap(),
        &mut StdRng::seed_from_u64(11),
        SIZE,
    );
    let mut metric = Metric::load(
        &gpu,
        NetKind::Alex,
        Method::Spatial,
        &WeightsChoice::Baseline,
        None,
        SIZE,
    )
    .unwrap();

    // The reference: every image written on the host, both distortions in one separate pass, then the metric.
    let image_len = 3 * SIZE * SIZE;
    let mut clean = vec![0f32; TRIPLETS * image_len];
    for (g, &i) in draws.images.iter().enumerate() {
        images
            .write_unit(i, &mut clean[g * image_len..(g + 1) * image_len])
            .unwrap();
    }
    let distort = DistortPlan::new(&gpu, 2 * TRIPLETS, SIZE).unwrap();
    gpu.write(&distort.input, 0, &clean).unwrap();
    gpu.write(&distort.input, TRIPLETS * image_len, &clean).unwrap();
    let mut params: Vec<_> = draws.distortions.iter().map(|d| Some(d.0)).collect();
    params.extend(draws.distortions.iter().map(|d| Some(d.1)));
    distort.set_params(&gpu, &params).unwrap();
    gpu.run(&distort.dispatches).unwrap();
    let distorted = gpu.read(&distort.output, 2 * TRIPLETS * image_len).unwrap();
    let (p0, p1) = distorted.split_at(TRIPLETS * image_len);
    let want = metric.group_distances(&gpu, &[&clean, p0, p1], false).unwrap();

    // Chunks of 5 (one), 2 (three, the last padded) and 1.
    for max_chunk in [None, Some(2), Some(1)] {
        metric.set_max_groups_per_chunk(max_chunk);
        let mut runner = TripletRunner::new(&gpu, &mut metric, TRIPLETS, false).unwrap();
        let (d0, d1) = runner.distances(&gpu, &mut metric, &images, &draws).unwrap();
        for (member, (got, want)) in [d0, d1].iter().zip(&want).enumerate() {
            for (g, (x, y)) in got.iter().zip(want).enumerate() {
                assert!(
                    (x - y).abs() <= 1e-5 * y.abs().max(1e-3),
                    "chunks of {max_chunk:?}: triplet {g} d(ref, p{member}) {x}, separately {y}"
                );
            }
        }
    }
}

#[test]
fn byte_images_give_exactly_the_distances_of_their_unit_values() {
    let gpu = common::gpu();
    let mut seed = 5u64;
    let mut byte = || {
        seed = seed.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
        (seed >> 56) as u8
    };
    // Side 63 makes odd byte counts (the last upload word is padded); chunks of 2 pad the last of 3 groups.
    for (size, groups, max_chunk) in [(64, 5, Some(2)), (63, 3, None)] {
        let mut metric = Metric::load(
            &gpu,
            NetKind::Alex,
            Method::SpatialMean,
            &WeightsChoice::Baseline,
            None,
            size,
        )
        .unwrap();
        metric.set_max_groups_per_chunk(max_chunk);
        let bytes: Vec<Vec<u8>> = (0..3)
            .map(|_| (0..groups * 3 * size * size).map(|_| byte()).collect())
            .collect();
        let unit: Vec<Vec<f32>> = bytes
            .iter()
            .map(|m| m.iter().map(|&b| b as f32 / 255.0).collect())
            .collect();
        let b: Vec<&[u8]> = bytes.iter().map(|m| m.as_slice()).collect();
        let u: Vec<&[f32]> = unit.iter().map(|m| m.as_slice()).collect();
        let from_bytes = metric.group_distances_of_bytes(&gpu, &b, false).unwrap();
        let from_unit = metric.group_distances(&gpu, &u, false).unwrap();
        assert_eq!(
            from_bytes, from_unit,
            "size {size}, {groups} groups in chunks of {max_chunk:?}"
        );
        // Queued back to back (the second batch, p0 and p1 swapped, is uploaded and run before the first is
        // collected): each keeps its own distances, though both run on the same plan and buffers.
        let swapped = [b[0], b[2], b[1]];
        let first = metric.queue_group_distances_of_bytes(&gpu, &b, false).unwrap();
        let second = metric.queue_group_distances_of_bytes(&gpu, &swapped, false).unwrap();
        let (second, first) = (second.wait(&gpu).unwrap(), first.wait(&gpu).unwrap());
        assert_eq!(first, from_unit, "size {size}: the first of two queued batches");
        assert_eq!(
            second,
            vec![from_unit[1].clone(), from_unit[0].clone()],
            "size {size}: the second of two queued batches"
        );
    }
}
