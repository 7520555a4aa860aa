//! The `dps-gpu` binary as a user meets it: results on the example triplet, and one clear error line (never a
//! panic) for bad input.

mod common;

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

fn dps(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_dps-gpu"))
        .args(args)
        .output()
        .expect("the dps-gpu binary runs")
}

fn temp_dir(name: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("dps-gpu-cli-{name}-{}", std::process::id()));
    std::fs::create_dir_all(&d).unwrap();
    d
}

/// Asserts a failed run with exactly one `error:` line on stderr that mentions `needle`.
fn assert_clear_error(out: &Output, needle: &str) {
    let stderr = String::from_utf8_lossy(&out.stderr);
    let lines: Vec<&str> = stderr.lines().filter(|l| !l.contains("XDG_RUNTIME_DIR")).collect();
    assert!(!out.status.success(), "expected failure, got success; stderr: {stderr}");
    assert!(!stderr.contains("panicked"), "panicked: {stderr}");
    assert_eq!(lines.len(), 1, "expected one error line, got: {stderr}");
    assert!(lines[0].starts_with("error:"), "not an error line: {}", lines[0]);
    assert!(
        lines[0].to_lowercase().contains(&needle.to_lowercase()),
        "{:?} does not mention {needle:?}",
        lines[0]
    );
}

fn example(name: &str) -> Option<String> {
    let d = common::shared_dir("DPS_DATA_DIR", "cli example")?;
    let p = d.join("bapps-example").join(name);
    assert!(p.is_file(), "{} missing", p.display());
    Some(p.to_string_lossy().into_owned())
}

fn last_number(out: &Output) -> f64 {
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "failed: {}", String::from_utf8_lossy(&out.stderr));
    stdout
        .lines()
        .last()
        .unwrap()
        .trim()
        .parse()
        .expect("a number on the last line")
}

#[test]
fn distance_of_the_example_matches_pytorch_lpips_from_png_files() {
    let (Some(r), Some(p0), Some(wdir)) = (
        example("ex_ref.png"),
        example("ex_p0.png"),
        common::shared_dir("DPS_WEIGHTS_DIR", "cli lpips"),
    ) else {
        return;
    };
    let wdir = wdir.to_string_lossy().into_owned();
    // LPIPS-alex of the example pair, from ../shared/reference/bapps_example.json (PyTorch).
    let d = last_number(&dps(&["distance", &r, &p0, "--lpips", "--weights-dir", &wdir]));
    assert!(((d - 0.7218807339668274) / 0.7218807339668274).abs() < 1e-4, "got {d}");
    let vgg = last_number(&dps(&[
        "distance",
        &r,
        &p0,
        "--net",
        "vgg",
        "--method",
        "sort",
        "--weights-dir",
        &wdir,
    ]));
    assert!(((vgg - 5.4542236328125) / 5.4542236328125).abs() < 1e-4, "got {vgg}");
    let out = dps(&[
        "distance",
        &r,
        &p0,
        "--net",
        "squeeze",
        "--json",
        "--weights-dir",
        &wdir,
    ]);
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).expect("JSON on stdout");
    let got = v["distance"].as_f64().unwrap();
    assert!(
        ((got - 5.612356662750244) / 5.612356662750244).abs() < 1e-4,
        "got {got}"
    );
    assert_eq!(v["net"], "squeeze");
}

/// The fast mode (`--precision f16`) on the example pair against PyTorch's f32 LPIPS: within 1e-2, and the
/// adapter line says the f16 convolutions ran.
#[test]
fn fast_mode_distance_of_the_example_is_within_1e_2_of_pytorch_lpips() {
    let (Some(r), Some(p0)) = (example("ex_ref.png"), example("ex_p0.png")) else {
        return;
    };
    let out = dps(&["--precision", "f16", "distance", &r, &p0, "--lpips", "--json"]);
    assert!(out.status.success(), "failed: {}", String::from_utf8_lossy(&out.stderr));
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).expect("JSON on stdout");
    let got = v["distance"].as_f64().unwrap();
    let want = 0.7218807339668274;
    assert!(((got - want) / want).abs() < 1e-2, "got {got}, PyTorch {want}");
    assert!(
        v["adapter"].as_str().unwrap().contains("f16 convolutions"),
        "{}",
        v["adapter"]
    );
}

/// `eval --compare-f16` on the bundled samples: both precisions score the same triplets, the f16 distances
/// differ from f32 (it really ran in f16) but by far less than 1e-2 on average.
#[test]
fn eval_compare_f16_reports_both_precisions() {
    let out = dps(&["eval", "--limit", "12", "--compare-f16", "--json"]);
    assert!(out.status.success(), "failed: {}", String::from_utf8_lossy(&out.stderr));
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).expect("JSON on stdout");
    assert_eq!(v["triplets"], 12);
    let (max, mean) = (
        v["max_relative_error"].as_f64().unwrap(),
        v["mean_relative_error"].as_f64().unwrap(),
    );
    assert!(
        max > 0.0 && mean > 0.0 && mean < 1e-2 && mean <= max,
        "max {max}, mean {mean}"
    );
    let over_median = v["max_error_over_median"].as_f64().unwrap();
    assert!(
        over_median > 0.0 && over_median < 1e-2,
        "largest error {over_median} of the median distance"
    );
    let identical = v["decisions_identical_fraction"].as_f64().unwrap();
    let changed = v["decisions_changed"].as_u64().unwrap();
    assert!((identical - (1.0 - changed as f64 / 12.0)).abs() < 1e-12);
    for k in ["two_afc_f32", "two_afc_f16"] {
        let s = v[k].as_f64().unwrap();
        assert!((0.0..=1.0).contains(&s), "{k} = {s}");
    }
}

/// A machine without ../shared (a lent GPU) benchmarks every net on random weights of the right shapes; without
/// `--random-weights` the same run names the missing file.
#[test]
fn bench_runs_on_random_weights_without_weight_files() {
    let empty = temp_dir("no-weights");
    let bench = |random: bool| {
        let mut args = vec![
            "bench", "--net", "squeeze", "--what", "eval", "--batch", "2", "--iters", "1", "--json",
        ];
        if random {
            args.push("--random-weights");
        }
        Command::new(env!("CARGO_BIN_EXE_dps-gpu"))
            .args(&args)
            .env_remove("DPS_WEIGHTS_DIR")
            .current_dir(&empty)
            .output()
            .expect("the dps-gpu binary runs")
    };
    let out = bench(true);
    assert!(out.status.success(), "failed: {}", String::from_utf8_lossy(&out.stderr));
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).expect("one JSON object");
    assert_eq!(v["weights"], "random");
    assert_eq!(v["net"], "squeeze");
    let rate = v["triplets_per_s"].as_f64().unwrap();
    assert!(rate.is_finite() && rate > 0.0, "triplets/s {rate}");
    // The host's waits for the GPU are a part of the timed seconds.
    let (waited, seconds) = (v["gpu_wait_seconds"].as_f64().unwrap(), v["seconds"].as_f64().unwrap());
    assert!((0.0..=seconds).contains(&waited), "waited {waited} s of {seconds} s");
    let share = v["gpu_wait_share"].as_f64().unwrap();
    assert!((share - waited / seconds).abs() < 1e-9, "wait share {share}");
    assert_clear_error(&bench(false), "squeezenet1_1.safetensors");
    std::fs::remove_dir_all(&empty).unwrap();
}

/// `bench --what profile` times every dispatch of an eval chunk and sums them by kernel. SqueezeNet 1.1 at 64×64
/// (torchvision's layers) runs 25 convolutions: on a GPU the 3×3 expands of fire2–fire5 (15×15 and 7×7 maps) as
/// Winograd transforms, each with its filter transform, those of fire6–fire9 (3×3 maps, where 2×2 tiles save too
/// little) and the rest as implicit GEMMs (on CPU adapters all 25 as implicit GEMMs); and 7 taps, each
/// normalised as its pair profile reads it. A whole tune step is profiled too (counts below).
#[test]
fn bench_profile_accounts_for_every_dispatch_by_kernel() {
    let out = dps(&[
        "bench",
        "--net",
        "squeeze",
        "--what",
        "profile",
        "--batch",
        "1",
        "--iters",
        "2",
        "--json",
        "--random-weights",
    ]);
    assert!(out.status.success(), "failed: {}", String::from_utf8_lossy(&out.stderr));
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).expect("one JSON object");
    let kernels = v["kernels"].as_array().expect("a list of kernels");
    let count = |name: &str| -> u64 {
        kernels
            .iter()
            .filter(|k| k["kernel"].as_str().is_some_and(|n| n.starts_with(name)))
            .map(|k| k["dispatches"].as_u64().unwrap())
            .sum()
    };
    // SqueezeNet's four 3×3 expands at 15×15 and 7×7 run as Winograd transforms where the adapter uses them (not
    // on CPU adapters), as direct convolutions otherwise.
    let winograd = if v["winograd"].as_bool().expect("whether Winograd ran") {
        4
    } else {
        0
    };
    assert_eq!(count("winograd_forward"), winograd, "{kernels:?}");
    assert_eq!(count("winograd_filters"), winograd, "{kernels:?}");
    assert_eq!(count("conv2d_forward"), 25 - winograd, "{kernels:?}");
    // Per tap its columns' inverse norms and its pair profile (which normalises as it reads).
    assert_eq!(count("inverse_norm"), 7, "{kernels:?}");
    assert_eq!(count("pair_profile"), 7, "{kernels:?}");
    let each = v["dispatches"].as_array().expect("a list of dispatches");
    assert_eq!(
        each.len() as u64,
        kernels.iter().map(|k| k["dispatches"].as_u64().unwrap()).sum::<u64>()
    );
    let seconds: Vec<f64> = each.iter().map(|d| d["seconds"].as_f64().unwrap()).collect();
    assert!(seconds.iter().all(|s| s.is_finite() && *s > 0.0), "{seconds:?}");
    // The fastest of the two runs of each dispatch is positive and at most their mean.
    for d in each {
        let (mean, fastest) = (d["seconds"].as_f64().unwrap(), d["min_seconds"].as_f64().unwrap());
        assert!(fastest > 0.0 && fastest <= mean * (1.0 + 1e-12), "{d}");
    }
    let total = v["seconds"].as_f64().unwrap();
    assert!((seconds.iter().sum::<f64>() - total).abs() <= 1e-9 * total);
    let shares: f64 = kernels.iter().map(|k| k["share"].as_f64().unwrap()).sum();
    assert!((shares - 1.0).abs() < 1e-9, "shares sum to {shares}");

    // The network's packed weights are packed once, not by each pass; the row convolutions' inputs (conv1 and
    // the 3×3 expands, where the row kernels run: CPU adapters) are packed by each.
    assert_eq!(count("pack_weight_rows"), 0, "{kernels:?}");
    let rows = if count("conv2d_forward_rows") > 0 { 9 } else { 0 };
    assert_eq!(count("pack_input_rows"), rows, "{kernels:?}");

    // A whole tune step on that chunk: the forward again (25 convolutions, 3 max-pools recording their maxima)
    // with each tap's pair profile; per tap its distance's backward (the pair profile's through the unit
    // normalisation, one kernel: 7); per torchvision's SqueezeNet 1.1, a ReLU backward per conv map (conv1, and
    // each fire's squeeze map and expand concatenation: 1 + 8·2), a weight gradient per convolution (25; split
    // ones add a reduction), an input gradient for all but conv1 (24, the four 3×3 expands among them, Winograd
    // or not as in the forward) and 3 max-pools (each a gather of the maxima the forward recorded); Adam on the 25
    // weights and biases, the channel weights and the rank net (52). Where the row kernels run (CPU adapters),
    // the 9 convolutions they take (conv1 and the 3×3 expands) have their weights packed once per step, after
    // the last step's Adam, and the 8 input gradients of the expands pack their flipped weights as they run;
    // all 17 pack their inputs.
    let b = &v["tune"];
    let kernels = b["kernels"].as_array().expect("the tune step's kernels");
    let count = |names: &[&str]| -> u64 {
        kernels
            .iter()
            .filter(|k| names.contains(&k["kernel"].as_str().unwrap()))
            .map(|k| k["dispatches"].as_u64().unwrap())
            .sum()
    };
    assert_eq!(count(&["pair_profile_backward"]), 7, "{kernels:?}");
    assert_eq!(count(&["adam_step"]), 52, "{kernels:?}");
    assert_eq!(count(&["relu_backward"]), 17, "{kernels:?}");
    assert_eq!(
        count(&[
            "conv2d_backward_params",
            "conv2d_backward_params_rows",
            "conv2d_backward_params_tiled",
            "conv2d_backward_params_pointwise"
        ]),
        25,
        "{kernels:?}"
    );
    assert_eq!(count(&["winograd_forward"]), 2 * winograd, "{kernels:?}");
    assert_eq!(
        count(&[
            "conv2d_forward",
            "conv2d_forward_direct",
            "conv2d_forward_rows",
            "conv2d_forward_pointwise"
        ]),
        25 + 24 - 2 * winograd,
        "{kernels:?}"
    );
    let rows = if count(&["conv2d_forward_rows"]) > 0 { 9 + 8 } else { 0 };
    assert_eq!(count(&["pack_weight_rows"]), rows, "{kernels:?}");
    assert_eq!(count(&["pack_input_rows"]), rows, "{kernels:?}");
    assert_eq!(count(&["pair_profile"]), 7, "{kernels:?}");
    assert_eq!(count(&["maxpool2d_forward_argmax_pairs"]), 3, "{kernels:?}");
    assert_eq!(count(&["maxpool2d_backward_cells"]), 3, "{kernels:?}");
    let seconds: Vec<f64> = b["dispatches"]
        .as_array()
        .expect("the tune step's dispatches")
        .iter()
        .map(|d| d["seconds"].as_f64().unwrap())
        .collect();
    assert!(seconds.iter().all(|s| s.is_finite() && *s > 0.0), "{seconds:?}");
    let total = b["seconds"].as_f64().unwrap();
    assert!((seconds.iter().sum::<f64>() - total).abs() <= 1e-9 * total);
}

/// `--gpu-memory` sizes the chunks a batch runs in, and they come out even. One 64×64 AlexNet triplet's maps
/// take 1,084,416 bytes as chunks are sized (3 images × (every map + two of the largest, 57,600 bytes): torchvision's
/// layer shapes), twice that when the network trains; 0.02 GiB therefore holds 19 triplets, or 9 for tune.
#[test]
fn gpu_memory_sizes_chunks_evenly() {
    let chunks = |gib: Option<&str>, what: &str, batch: &str| -> u64 {
        let mut args = vec![];
        if let Some(g) = gib {
            args.extend(["--gpu-memory", g]);
        }
        args.extend([
            "bench",
            "--net",
            "alex",
            "--what",
            what,
            "--batch",
            batch,
            "--iters",
            "1",
            "--json",
            "--random-weights",
        ]);
        let out = dps(&args);
        assert!(out.status.success(), "failed: {}", String::from_utf8_lossy(&out.stderr));
        let v: serde_json::Value = serde_json::from_slice(&out.stdout).expect("one JSON object");
        v["chunk"].as_u64().expect("bench reports its chunk")
    };
    // 24 triplets in chunks of at most 19: two of 12, not 19 and 5 padded to 19.
    assert_eq!(chunks(Some("0.02"), "eval", "24"), 12);
    assert_eq!(chunks(None, "eval", "24"), 24);
    // Training the network: at most 9 per chunk, so 12 triplets run as two chunks of 6.
    assert_eq!(chunks(Some("0.02"), "tune", "12"), 6);
}

#[test]
fn embedded_default_weights_give_lpips_alex() {
    let (Some(r), Some(p1)) = (example("ex_ref.png"), example("ex_p1.png")) else {
        return;
    };
    let embedded = Path::new(env!("CARGO_MANIFEST_DIR")).join("weights");
    let d = last_number(&dps(&[
        "distance",
        &r,
        &p1,
        "--lpips",
        "--weights-dir",
        embedded.to_str().unwrap(),
    ]));
    assert!(
        ((d - 0.13756559789180756) / 0.13756559789180756).abs() < 1e-4,
        "got {d}"
    );
}

#[test]
fn bad_input_gives_one_clear_error_line() {
    let dir = temp_dir("bad");
    let good = dir.join("good.png");
    image::RgbImage::from_fn(20, 17, |x, y| image::Rgb([x as u8 * 9, y as u8 * 13, 77]))
        .save(&good)
        .unwrap();
    let good = good.to_str().unwrap();
    let text = dir.join("text.png");
    std::fs::write(&text, "this is not an image").unwrap();
    let bytes = std::fs::read(good).unwrap();
    let truncated = dir.join("truncated.png");
    std::fs::write(&truncated, &bytes[..bytes.len() / 2]).unwrap();
    let missing = dir.join("missing.png");
    let empty_dir = temp_dir("empty-weights");

    assert_clear_error(&dps(&["distance", missing.to_str().unwrap(), good]), "missing.png");
    assert_clear_error(&dps(&["distance", good, text.to_str().unwrap()]), "text.png");
    assert_clear_error(&dps(&["distance", truncated.to_str().unwrap(), good]), "truncated.png");
    assert_clear_error(&dps(&["distance", good, good, "--net", "resnet"]), "resnet");
    assert_clear_error(&dps(&["distance", good, good, "--method", "median"]), "median");
    assert_clear_error(&dps(&["distance", good, good, "--size", "4"]), "size");
    assert_clear_error(&dps(&["distance", good, good, "--gpu-memory", "0"]), "--gpu-memory");
    assert_clear_error(&dps(&["distance", good, good, "--gpu-memory", "NaN"]), "--gpu-memory");
    let bapps = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/data/bapps/2afc/val");
    assert_clear_error(
        &dps(&["eval", "--test", bapps.to_str().unwrap(), "--compare-f16"]),
        "--compare-f16",
    );
    assert_clear_error(
        &dps(&[
            "distance",
            good,
            good,
            "--net",
            "vgg",
            "--weights-dir",
            empty_dir.to_str().unwrap(),
        ]),
        "vgg16.safetensors",
    );
    assert_clear_error(
        &dps(&["distance", good, good, "--method", "mean", "--lpips"]),
        "spatial",
    );

    // A scalars file with AlexNet's tap 0 one channel short.
    let scalars = dir.join("short.safetensors");
    let mut owned: Vec<(String, Vec<u8>, usize)> = Vec::new();
    for (l, c) in [63usize, 192, 384, 256, 256].into_iter().enumerate() {
        owned.push((
            format!("spatial.{l}"),
            vec![0u8; c * 4]
                .iter()
                .enumerate()
                .map(|(i, _)| {
                    if i % 4 == 3 {
                        0x3f
                    } else if i % 4 == 2 {
                        0x80
                    } else {
                        0
                    }
                })
                .collect(),
            c,
        ));
    }
    let views: Vec<(String, safetensors::tensor::TensorView)> = owned
        .iter()
        .map(|(k, b, c)| {
            (
                k.clone(),
                safetensors::tensor::TensorView::new(safetensors::Dtype::F32, vec![*c], b).unwrap(),
            )
        })
        .collect();
    std::fs::write(&scalars, safetensors::serialize(views, None).unwrap()).unwrap();
    assert_clear_error(
        &dps(&["distance", good, good, "--scalars", scalars.to_str().unwrap()]),
        "spatial.0",
    );
    let corrupt = dir.join("corrupt.safetensors");
    std::fs::write(&corrupt, b"\x10\x00\x00\x00\x00\x00\x00\x00{not json at all").unwrap();
    assert_clear_error(
        &dps(&["distance", good, good, "--scalars", corrupt.to_str().unwrap()]),
        "corrupt.safetensors",
    );
}
