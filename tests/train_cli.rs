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
    for (out, seed) in [(&a, "3"), (&b, "3"), (&c, "4")] {
        let mut args = vec!["train", "--seed", seed, "-o", out.to_str().unwrap(), "--json"];
        args.extend(TINY);
        let o = dps(&args);
        assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
        let summary: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
        assert_eq!(summary["epochs"].as_array().unwrap().len(), 2);
    }
    let read = |p: &PathBuf| dps_gpu::tensor_file::read(p).unwrap();
    let (fa, fb, fc) = (read(&a), read(&b), read(&c));
    assert_eq!(fa.tensors, fb.tensors, "the same seed gives the same metric");
    assert_ne!(fa.tensors, fc.tensors, "another seed gives another metric");
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
