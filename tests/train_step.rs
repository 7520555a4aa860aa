//! One training step's kernels (pair profile with dropout, d = S·w, rank net and loss forward and backward,
//! ∂L/∂w, Adam with both clamp orders) against PyTorch autograd and torch.optim.Adam (fixtures written by
//! tools/make_train_fixtures.py), and the rank-net gradients against central finite differences.

mod common;

use std::path::Path;

use dps_gpu::gpu::Gpu;
use dps_gpu::kernels::adam::Clamp;
use dps_gpu::kernels::distance;
use dps_gpu::train::TrainState;

fn fixtures() -> (dps_gpu::tensor_file::TensorMap, serde_json::Value) {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/train");
    let meta = serde_json::from_str(&std::fs::read_to_string(dir.join("step.json")).unwrap()).unwrap();
    (common::read_tensors(&dir.join("step.safetensors")), meta)
}

fn close(got: &[f32], want: &[f32], rel: f32, abs: f32, what: &str) {
    assert_eq!(got.len(), want.len(), "{what}: length");
    for (i, (g, w)) in got.iter().zip(want).enumerate() {
        let tol = abs + rel * w.abs();
        assert!(
            (g - w).abs() <= tol,
            "{what}[{i}]: got {g}, PyTorch {w} (tolerance {tol})"
        );
    }
}

/// Builds the pair profile of the case on the GPU and a TrainState over it; returns both plus the w tensor.
fn setup(
    gpu: &Gpu,
    t: &std::collections::HashMap<String, (Vec<usize>, Vec<f32>)>,
    name: &str,
    meta: &serde_json::Value,
    clamp: Clamp,
) -> (TrainState, dps_gpu::gpu::Tensor) {
    let m = &meta["cases"][name];
    let (triplets, c, p) = (
        m["triplets"].as_u64().unwrap() as usize,
        m["c"].as_u64().unwrap() as usize,
        m["p"].as_u64().unwrap() as usize,
    );
    let g = gpu
        .upload("g", &[3 * triplets, c, p], &t[&format!("{name}.g")].1)
        .unwrap();
    let w = gpu.upload("w", &[c], &t[&format!("{name}.w0")].1).unwrap();
    let state = TrainState::new(gpu, &w, &t[&format!("{name}.theta0")].1, triplets, clamp).unwrap();
    let pairs: Vec<u32> = (0..triplets)
        .flat_map(|i| [i as u32, (triplets + i) as u32])
        .chain((0..triplets).flat_map(|i| [i as u32, (2 * triplets + i) as u32]))
        .collect();
    let pairs = gpu.upload_pod("pairs", &pairs).unwrap();
    let drop = m["drop"].as_f64().unwrap() as f32;
    let dropout = gpu
        .upload_pod(
            "state",
            &distance::dropout_state(m["step_seed"].as_u64().unwrap() as u32, 0, drop),
        )
        .unwrap();
    // g is unit-normalised already (tools/make_train_fixtures.py), so its columns' factors are 1.
    let ones = gpu
        .upload("r", &[3 * triplets, p], &vec![1.0; 3 * triplets * p])
        .unwrap();
    let profile = distance::pair_profile(
        gpu,
        &g,
        &ones,
        &pairs,
        2 * triplets,
        triplets,
        &dropout,
        &state.profile,
        0,
        0,
    )
    .unwrap();
    gpu.run(&[profile]).unwrap();
    (state, w)
}

#[test]
fn one_step_matches_pytorch_autograd_and_adam() {
    let (t, meta) = fixtures();
    let gpu = common::gpu();
    for name in ["plain", "sync", "dropout"] {
        let m = &meta["cases"][name];
        let lr = m["lr"].as_f64().unwrap() as f32;
        for (clamp, suffix) in [(Clamp::AfterStep, "after"), (Clamp::BeforeUpdate, "before")] {
            let (state, w) = setup(&gpu, &t, name, &meta, clamp);
            let profile = gpu.read(&state.profile, state.profile.numel()).unwrap();
            close(
                &profile,
                &t[&format!("{name}.profile")].1,
                1e-5,
                1e-7,
                &format!("{name} profile"),
            );
            let stats = state.step(&gpu, &t[&format!("{name}.h")].1, lr, 1, true).unwrap();
            let want = &t[&format!("{name}.stats")].1;
            close(
                &[stats.bce, stats.two_afc, stats.synced as u8 as f32, stats.sync_bce],
                want,
                1e-5,
                1e-6,
                &format!("{name} stats"),
            );
            assert_eq!(stats.synced, m["synced"].as_bool().unwrap(), "{name}: L_sync decision");
            let d = gpu.read(&state.d, state.d.numel()).unwrap();
            close(&d, &t[&format!("{name}.d")].1, 1e-5, 1e-7, &format!("{name} d"));
            let gw = gpu.read(&state.grad_w, state.grad_w.numel()).unwrap();
            close(
                &gw,
                &t[&format!("{name}.grad_w")].1,
                1e-4,
                1e-6,
                &format!("{name} grad w"),
            );
            let gt = gpu.read(&state.grad_theta, state.grad_theta.numel()).unwrap();
            close(
                &gt,
                &t[&format!("{name}.grad_theta")].1,
                1e-4,
                1e-6,
                &format!("{name} grad rank net"),
            );
            let w1 = gpu.read(&w, w.numel()).unwrap();
            close(
                &w1,
                &t[&format!("{name}.w_{suffix}")].1,
                1e-5,
                1e-7,
                &format!("{name} w after Adam, clamp {suffix}"),
            );
            let th = gpu.read(&state.theta, state.theta.numel()).unwrap();
            close(
                &th,
                &t[&format!("{name}.theta_{suffix}")].1,
                1e-5,
                1e-7,
                &format!("{name} rank net after Adam"),
            );
            if suffix == "after" {
                assert!(w1.iter().all(|v| *v >= 0.0), "intended clamp leaves no negative weight");
            }
        }
    }
}

#[test]
fn gradients_match_central_finite_differences() {
    let (t, meta) = fixtures();
    let gpu = common::gpu();
    for name in ["plain", "sync"] {
        let h = &t[&format!("{name}.h")].1;
        let (state, w) = setup(&gpu, &t, name, &meta, Clamp::AfterStep);
        state.step(&gpu, h, 0.0, 1, false).unwrap();
        let base_w = gpu.read(&w, w.numel()).unwrap();
        let base_theta = gpu.read(&state.theta, state.theta.numel()).unwrap();
        // The loss without the step: run forward only (update = false) and read the reported loss.
        let loss_at = |w_vals: &[f32], theta_vals: &[f32]| -> f64 {
            gpu.write(&w, 0, w_vals).unwrap();
            gpu.write(&state.theta, 0, theta_vals).unwrap();
            state.step(&gpu, h, 0.0, 1, false).unwrap().loss() as f64
        };
        let analytic_w = {
            loss_at(&base_w, &base_theta);
            gpu.read(&state.grad_w, base_w.len()).unwrap()
        };
        let analytic_t = gpu.read(&state.grad_theta, base_theta.len()).unwrap();
        // Small enough not to cross the LeakyReLU kinks for these inputs (1e-2 does, for w[0] of "plain").
        let eps = 1e-3f32;
        for i in 0..base_w.len() {
            let (mut a, mut b) = (base_w.clone(), base_w.clone());
            a[i] += eps;
            b[i] -= eps;
            let fd = (loss_at(&a, &base_theta) - loss_at(&b, &base_theta)) / (2.0 * eps as f64);
            assert!(
                (fd - analytic_w[i] as f64).abs() < 2e-3 + 2e-2 * fd.abs(),
                "{name} w[{i}]: finite difference {fd}, kernel {}",
                analytic_w[i]
            );
        }
        for i in [0usize, 7, 159, 160, 191, 192, 500, 1215, 1216, 1247, 1248, 1270, 1280] {
            let (mut a, mut b) = (base_theta.clone(), base_theta.clone());
            a[i] += eps;
            b[i] -= eps;
            let fd = (loss_at(&base_w, &a) - loss_at(&base_w, &b)) / (2.0 * eps as f64);
            assert!(
                (fd - analytic_t[i] as f64).abs() < 2e-3 + 2e-2 * fd.abs(),
                "{name} theta[{i}]: finite difference {fd}, kernel {}",
                analytic_t[i]
            );
        }
    }
}
