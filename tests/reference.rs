//! dps-gpu against the PyTorch/torchvision values in ../shared/reference (made by make_reference.py there).

mod common;

use std::path::Path;

use dps_gpu::metric::{ChannelWeights, Method, Metric};
use dps_gpu::nets::{ForwardPlan, NetKind, Network};

fn json(dir: &Path) -> serde_json::Value {
    serde_json::from_str(&std::fs::read_to_string(dir.join("bapps_example.json")).unwrap()).unwrap()
}

fn check_rel(got: f32, want: f64, what: &str) {
    let rel = ((got as f64 - want) / want).abs();
    println!("{what}: got {got:.7} want {want:.7} rel {rel:.2e}");
    assert!(
        rel <= 1e-4,
        "{what}: got {got}, PyTorch {want}, relative error {rel:.2e} > 1e-4"
    );
}

#[test]
fn distances_match_pytorch_for_every_net_and_method() {
    let (Some(wdir), Some(rdir)) = (
        common::shared_dir("DPS_WEIGHTS_DIR", "distances"),
        common::reference_dir("distances"),
    ) else {
        return;
    };
    let reference = json(&rdir);
    let t = common::read_tensors(&rdir.join("bapps_example.safetensors"));
    let (r, p0, p1) = (&t["ref_01"].1, &t["p0_01"].1, &t["p1_01"].1);
    let gpu = common::gpu();
    for kind in NetKind::ALL {
        let want = &reference["distances"][kind.name()];
        let channels: Vec<usize> = kind.tap_shapes(64).unwrap().iter().map(|s| s.0).collect();
        let mut cases: Vec<(String, Method, ChannelWeights, bool)> = Method::ALL
            .iter()
            .map(|&m| {
                (
                    format!("baseline/{}", m.name()),
                    m,
                    ChannelWeights::baseline(&channels, m),
                    false,
                )
            })
            .collect();
        let lpips = ChannelWeights::lpips(kind, &channels, Method::Spatial, Some(&wdir)).unwrap();
        cases.push(("lpips_v0.1/spatial".into(), Method::Spatial, lpips, false));
        cases.push((
            "paper_raw_reference/baseline/spatial".into(),
            Method::Spatial,
            ChannelWeights::baseline(&channels, Method::Spatial),
            true,
        ));
        for (name, method, weights, raw) in cases {
            let net = Network::load(&gpu, kind, Some(&wdir)).unwrap();
            let mut metric = Metric::new(&gpu, net, method, weights, 64).unwrap();
            let d = metric.group_distances(&gpu, &[r, p0, p1], raw).unwrap();
            for (k, got) in [d[0][0], d[1][0]].into_iter().enumerate() {
                check_rel(
                    got,
                    want[&name][k].as_f64().unwrap(),
                    &format!("{} {name} d(ref,p{k})", kind.name()),
                );
            }
        }
    }
}

#[test]
fn alexnet_taps_match_pytorch() {
    let (Some(wdir), Some(rdir)) = (
        common::shared_dir("DPS_WEIGHTS_DIR", "alex taps"),
        common::reference_dir("alex taps"),
    ) else {
        return;
    };
    let t = common::read_tensors(&rdir.join("bapps_example.safetensors"));
    let gpu = common::gpu();
    let net = Network::load(&gpu, NetKind::Alex, Some(&wdir)).unwrap();
    let plan = ForwardPlan::new(&gpu, &net, 1, 64, 0..1, false).unwrap();
    gpu.write(&plan.input, 0, &t["ref_01"].1).unwrap();
    plan.run(&gpu).unwrap();
    for (l, tap) in plan.taps.iter().enumerate() {
        let (shape, want) = &t[&format!("alex_ref_layer{l}")];
        assert_eq!(&tap.shape, shape, "tap {l} shape");
        let got = gpu.read(tap, tap.numel()).unwrap();
        let err = common::max_abs_diff(&got, want);
        println!("alex tap {l} {shape:?}: max abs error {err:.2e}");
        assert!(err <= 1e-4, "alex tap {l}: max abs error {err} > 1e-4");
    }
}

#[test]
fn feature_checksums_match_pytorch_for_squeeze_and_vgg() {
    let (Some(wdir), Some(rdir)) = (
        common::shared_dir("DPS_WEIGHTS_DIR", "checksums"),
        common::reference_dir("checksums"),
    ) else {
        return;
    };
    let reference = json(&rdir);
    let t = common::read_tensors(&rdir.join("bapps_example.safetensors"));
    let gpu = common::gpu();
    for kind in [NetKind::Squeeze, NetKind::Vgg] {
        let net = Network::load(&gpu, kind, Some(&wdir)).unwrap();
        let plan = ForwardPlan::new(&gpu, &net, 1, 64, 0..1, false).unwrap();
        gpu.write(&plan.input, 0, &t["ref_01"].1).unwrap();
        plan.run(&gpu).unwrap();
        for (l, tap) in plan.taps.iter().enumerate() {
            let want = &reference["feature_checksums"][kind.name()][l];
            let got = gpu.read(tap, tap.numel()).unwrap();
            let sum: f64 = got.iter().map(|&v| v as f64).sum();
            let sumsq: f64 = got.iter().map(|&v| (v as f64) * (v as f64)).sum();
            let shape: Vec<usize> = want["shape"]
                .as_array()
                .unwrap()
                .iter()
                .map(|v| v.as_u64().unwrap() as usize)
                .collect();
            assert_eq!(tap.shape, shape, "{} tap {l} shape", kind.name());
            for (name, g, w) in [
                ("sum", sum, want["sum"].as_f64().unwrap()),
                ("sumsq", sumsq, want["sumsq"].as_f64().unwrap()),
            ] {
                let rel = ((g - w) / w).abs();
                println!("{} tap {l} {name}: {g:.3} vs {w:.3} rel {rel:.1e}", kind.name());
                assert!(rel < 1e-4, "{} tap {l} {name}: {g} vs PyTorch {w}", kind.name());
            }
        }
    }
}

/// `bench --random-weights` stands in for the ImageNet files on machines without them: its tensors must carry
/// exactly torchvision's `features.*` names and shapes (the exported files), no more and no fewer, and draw
/// finite values with the stated variance 1/fan-in.
#[test]
fn random_weights_have_torchvisions_names_and_shapes() {
    let Some(wdir) = common::shared_dir("DPS_WEIGHTS_DIR", "random weights") else {
        return;
    };
    for kind in [NetKind::Alex, NetKind::Squeeze, NetKind::Vgg] {
        let file = dps_gpu::nets::read_safetensors_file(&wdir.join(kind.weights_file())).unwrap();
        let mut want: Vec<(String, Vec<usize>)> = file
            .into_iter()
            .filter(|(k, _)| k.starts_with("features."))
            .map(|(k, (shape, _))| (k, shape))
            .collect();
        want.sort();
        let random = dps_gpu::nets::random_weights(kind, 7);
        let mut got: Vec<(String, Vec<usize>)> = random.iter().map(|(k, s, _)| (k.clone(), s.clone())).collect();
        got.sort();
        assert_eq!(
            got,
            want,
            "{}: random weights differ from torchvision's tensors",
            kind.name()
        );
        for (name, shape, values) in &random {
            assert!(values.iter().all(|v| v.is_finite()), "{name}: non-finite value");
            if name.ends_with(".weight") {
                let fan_in: usize = shape[1..].iter().product();
                let var = values.iter().map(|v| (*v as f64).powi(2)).sum::<f64>() / values.len() as f64;
                let want = 1.0 / fan_in as f64;
                let tol = if values.len() >= 1000 { 0.2 } else { 0.6 };
                assert!(
                    (var / want - 1.0).abs() < tol,
                    "{name}: variance {var:.3e}, expected {want:.3e}"
                );
            }
        }
    }
}
