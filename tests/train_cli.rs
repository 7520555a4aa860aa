//! `dps-gpu train` and `dps-gpu eval` end to end on the bundled samples (tiny settings, so CI stays fast):
//! the file they write, reproducibility from the seed, and clear errors for bad input.

use std::path::PathBuf;
use std::process::{Command, Output};

fn dps(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_dps-gpu"))
        .args(args)
        .output()
        .expect("the dps-gpu binary runs")
}

fn temp(name: &str) -> PathBuf {
    std::env::temp_dir().join(format!("dps-gpu-train-{}-{name}", std::process::id()))
}

fn error_line(out: &Output) -> String {
    assert!(!out.status.success(), "expected a failure");
    let stderr = String::from_utf8_lossy(&out.stderr).to_string();
    assert!(!stderr.contains("panicked"), "{stderr}");
    stderr
        .lines()
        .filter(|l| l.starts_with("error:"))
        .collect::<Vec<_>>()
        .join("\n")
}

const TINY: [&str; 8] = ["--limit", "40", "--epochs", "2", "--batch", "8", "--ranking", "5"];

#[test]
fn train_writes_an_adapted_metric_that_eval_reads_and_seeds_repeat() {
    let (a, b, c) = (temp("a.safetensors"), temp("b.safetensors"), temp("c.safetensors"));
    for (out, seed, method) in [(&a, "3", "spatial"), (&b, "3", "spatial"), (&c, "4", "mean")] {
        let mut args = vec![
            "train",
            "--seed",
            seed,
            "--method",
            method,
            "-o",
            out.to_str().unwrap(),
            "--json",
        ];
        args.extend(TINY);
        let o = dps(&args);
        assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
        let summary: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
        assert_eq!(summary["epochs"].as_array().unwrap().len(), 2);
    }
    let read = |p: &PathBuf| dps_gpu::tensor_file::read(p).unwrap();
    let (fa, fb, fc) = (read(&a), read(&b), read(&c));
    assert_eq!(fa.tensors, fb.tensors, "the same seed gives the same metric");
    assert_ne!(fa.tensors, fc.tensors, "another seed and method give another metric");
    for (k, v) in [
        ("net", "alex"),
        ("method", "spatial"),
        ("ranking", "5"),
        ("seed", "3"),
        ("epochs", "2"),
        ("paper_faithful", "false"),
    ] {
        assert_eq!(fa.metadata.get(k).map(|s| s.as_str()), Some(v), "metadata {k}");
    }
    assert!(
        fa.tensors["spatial.0"].1.iter().all(|w| *w >= 0.0),
        "intended clamp keeps w ≥ 0"
    );
    assert_eq!(fa.tensors["rank.0.weight"].0, vec![32, 5]);
    let e = dps(&["eval", "--scalars", a.to_str().unwrap(), "--limit", "16", "--json"]);
    assert!(e.status.success(), "{}", String::from_utf8_lossy(&e.stderr));
    let v: serde_json::Value = serde_json::from_slice(&e.stdout).unwrap();
    assert_eq!(v["ranking"], "5", "eval takes the ranking from the file");
    assert_eq!(v["triplets"], 16);
    let score = v["two_afc"].as_f64().unwrap();
    assert!((0.0..=1.0).contains(&score));
    // without --net/--method, eval takes them from the file
    let e = dps(&["eval", "--scalars", c.to_str().unwrap(), "--limit", "4", "--json"]);
    assert!(e.status.success(), "{}", String::from_utf8_lossy(&e.stderr));
    let v: serde_json::Value = serde_json::from_slice(&e.stdout).unwrap();
    assert_eq!((v["net"].as_str(), v["method"].as_str()), (Some("alex"), Some("mean")));
    // the adapted file also drives `distance`
    let d = dps(&[
        "distance",
        "samples/chelsea.png",
        "samples/coffee.png",
        "--scalars",
        a.to_str().unwrap(),
    ]);
    assert!(d.status.success(), "{}", String::from_utf8_lossy(&d.stderr));
    let wrong_net = dps(&[
        "eval",
        "--scalars",
        a.to_str().unwrap(),
        "--net",
        "squeeze",
        "--limit",
        "4",
    ]);
    assert!(
        error_line(&wrong_net).contains("net alex"),
        "a file from another net is refused"
    );
    let wrong_method = dps(&[
        "eval",
        "--scalars",
        a.to_str().unwrap(),
        "--method",
        "mean",
        "--limit",
        "4",
    ]);
    assert!(error_line(&wrong_method).contains("method spatial"));
    for p in [a, b, c] {
        let _ = std::fs::remove_file(p);
    }
}

#[test]
fn net_variant_saves_a_tuned_network_that_distance_uses() {
    let (tuned, stripped) = (temp("net.safetensors"), temp("net-stripped.safetensors"));
    let mut args = vec![
        "train",
        "--variant",
        "net",
        "--epochs",
        "1",
        "-o",
        tuned.to_str().unwrap(),
    ];
    args.extend(&TINY[..2]);
    args.extend(&TINY[4..]);
    let o = dps(&args);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let file = dps_gpu::tensor_file::read(&tuned).unwrap();
    assert_eq!(file.metadata.get("variant").map(|s| s.as_str()), Some("net"));
    let imagenet =
        dps_gpu::tensor_file::read(&PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("weights/alexnet.safetensors"))
            .unwrap();
    // 32 training images in batches of 8: 4 Adam steps, each moving a parameter by at most about lr = 1e-3.
    for i in [0, 3, 6, 8, 10] {
        for kind in ["weight", "bias"] {
            let key = format!("features.{i}.{kind}");
            let (shape, tuned_values) = &file.tensors[&key];
            let (want_shape, start) = &imagenet.tensors[&key];
            assert_eq!(shape, want_shape, "{key} keeps torchvision's shape");
            let moved = tuned_values
                .iter()
                .zip(start)
                .map(|(a, b)| (a - b).abs())
                .fold(0.0f32, f32::max);
            assert!(moved > 1e-4 && moved < 4.5e-3, "{key} moved by at most {moved}");
        }
    }
    // The same scalars without the network fall back to the ImageNet weights and give another distance.
    let kept: Vec<(String, Vec<usize>, Vec<f32>)> = file
        .tensors
        .iter()
        .filter(|(k, _)| !k.starts_with("features."))
        .map(|(k, (s, v))| (k.clone(), s.clone(), v.clone()))
        .collect();
    dps_gpu::tensor_file::write(&stripped, &kept, file.metadata.clone()).unwrap();
    let distance = |p: &PathBuf| -> f64 {
        let d = dps(&[
            "distance",
            "samples/chelsea.png",
            "samples/coffee.png",
            "--scalars",
            p.to_str().unwrap(),
        ]);
        assert!(d.status.success(), "{}", String::from_utf8_lossy(&d.stderr));
        String::from_utf8_lossy(&d.stdout).trim().parse().unwrap()
    };
    let (with_net, without) = (distance(&tuned), distance(&stripped));
    assert!(
        (with_net - without).abs() > 1e-6,
        "the tuned network is used ({with_net} vs {without})"
    );
    assert!(error_line(&dps(&["train", "--variant", "all", "-o", "x.safetensors"])).contains("variant"));
    for p in [tuned, stripped] {
        let _ = std::fs::remove_file(p);
    }
}

#[test]
fn bad_training_input_is_refused_clearly() {
    let out = temp("never.safetensors");
    let o = out.to_str().unwrap();
    assert!(error_line(&dps(&["train", "--ranking", "blur,hue,zoom", "-o", o])).contains("ranking"));
    assert!(error_line(&dps(&["train", "--ranking", "21", "-o", o])).contains("0 to 19"));
    assert!(error_line(&dps(&["train", "--limit", "10", "--batch", "64", "-o", o])).contains("fewer than one batch"));
    assert!(error_line(&dps(&["train", "--train", "/nonexistent/data", "-o", o])).contains("/nonexistent/data"));
    assert!(error_line(&dps(&["train", "--lr=-1", "-o", o])).contains("--lr"));
    assert!(!out.exists());
}
