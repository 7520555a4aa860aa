//! `dps-gpu sweep` on a tiny grid over ../shared/data: cells trained together equal the same runs made alone
//! with `train` and `eval`; a sweep killed mid-way and rerun ends with the same results, each cell once; a
//! truncated last line is cut off; shards split the grid; a rerun with other settings is refused.

mod common;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;

fn dps(args: &[String]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_dps-gpu"))
        .args(args)
        .output()
        .expect("the dps-gpu binary runs")
}

fn ok(out: Output) -> Output {
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    out
}

fn temp(name: &str) -> PathBuf {
    let p = std::env::temp_dir().join(format!("dps-gpu-sweep-{}-{name}", std::process::id()));
    let _ = std::fs::remove_dir_all(&p);
    p
}

fn s(v: &[&str]) -> Vec<String> {
    v.iter().map(|x| x.to_string()).collect()
}

/// The tiny grid's arguments: 20 CIFAR-10 training images (2 steps of 8), 8 test images of each set.
fn grid_args(data: &Path, out: &Path, extra: &[&str]) -> Vec<String> {
    let cifar = data.join("cifar-10-batches-bin");
    let stl = data.join("stl10_binary/unlabeled_X.bin");
    let mut a = s(&["sweep", "--train"]);
    a.push(cifar.display().to_string());
    a.push("--test".into());
    a.push(format!("cifar={}", cifar.display()));
    a.push("--test".into());
    a.push(format!("stl={}", stl.display()));
    a.extend(s(&[
        "--nets",
        "alex",
        "--limit",
        "24",
        "--test-limit",
        "12",
        "--batch",
        "8",
        "--epochs",
        "1",
        "--json",
        "-o",
    ]));
    a.push(out.display().to_string());
    a.extend(s(extra));
    a
}

/// results.jsonl as cell id → line, asserting every line is whole JSON and every cell appears once.
fn results(dir: &Path) -> BTreeMap<String, Value> {
    let text = std::fs::read_to_string(dir.join("results.jsonl")).unwrap();
    assert!(text.is_empty() || text.ends_with('\n'), "a truncated last line");
    let mut out = BTreeMap::new();
    for line in text.lines() {
        let v: Value = serde_json::from_str(line).unwrap();
        let id = v["cell"].as_str().unwrap().to_string();
        assert!(out.insert(id.clone(), v).is_none(), "cell {id} appears twice");
    }
    out
}

/// The parts of a line that must not depend on how the cell was scheduled (not the timings).
fn scores(v: &Value) -> (Value, Value) {
    (v["tests"].clone(), v["train"]["final_validation_2afc"].clone())
}

#[test]
fn cells_in_a_sweep_equal_the_same_runs_alone() {
    let Some(data) = common::shared_dir("DPS_DATA_DIR", "cells_in_a_sweep_equal_the_same_runs_alone") else {
        return;
    };
    let dir = temp("equal");
    ok(dps(&grid_args(
        &data,
        &dir,
        &["--methods", "spatial,spatial+sort", "--rankings", "2,9", "--seeds", "2"],
    )));
    let lines = results(&dir);
    assert_eq!(lines.len(), 2 * 2 * 2 + 2 * 2, "8 adapted cells and 4 baselines");
    // A cell of the second group, with the combined method, run alone.
    assert_alone_equals_swept(&data, &dir, &lines, "spatial+sort", "9", "1", "scalars");
}

/// An "Adapted Net" cell trains alone inside the sweep too: the same seed gives the same tuned network, w, rank
/// net and scores as `train --variant net` and `eval` (the baseline comes from the shared forward).
#[test]
fn an_adapted_net_cell_in_a_sweep_equals_the_same_run_alone() {
    let Some(data) = common::shared_dir(
        "DPS_DATA_DIR",
        "an_adapted_net_cell_in_a_sweep_equals_the_same_run_alone",
    ) else {
        return;
    };
    let dir = temp("net");
    ok(dps(&grid_args(
        &data,
        &dir,
        &[
            "--methods",
            "spatial",
            "--rankings",
            "4",
            "--seeds",
            "1",
            "--variant",
            "net",
        ],
    )));
    let lines = results(&dir);
    assert_eq!(
        lines.len(),
        2,
        "1 adapted-net cell and its baseline: {:?}",
        lines.keys()
    );
    assert_eq!(lines["adapted-net/alex/spatial/r4/s0"]["variant"], "net");
    assert_alone_equals_swept(&data, &dir, &lines, "spatial", "4", "0", "net");
}

/// Trains the cell (method, ranking, seed) alone with `train --variant VARIANT`, and asserts its file and its
/// `eval` scores (and its baseline's) on both test sets equal the sweep's.
fn assert_alone_equals_swept(
    data: &Path,
    dir: &Path,
    lines: &BTreeMap<String, Value>,
    method: &str,
    ranking: &str,
    seed: &str,
    variant: &str,
) {
    let cifar = data.join("cifar-10-batches-bin");
    let stl = data.join("stl10_binary/unlabeled_X.bin");
    let file = dir.join(format!("alone-{method}-{ranking}-{seed}.safetensors"));
    let mut train = s(&["train", "--train"]);
    train.push(cifar.display().to_string());
    train.extend(s(&[
        "--limit",
        "24",
        "--batch",
        "8",
        "--epochs",
        "1",
        "--method",
        method,
        "--ranking",
        ranking,
        "--seed",
        seed,
        "--variant",
        variant,
        "--json",
        "-o",
    ]));
    train.push(file.display().to_string());
    let summary: Value = serde_json::from_slice(&ok(dps(&train)).stdout).unwrap();
    let prefix = if variant == "net" { "adapted-net" } else { "adapted" };
    let id = format!("{prefix}/alex/{method}/r{ranking}/s{seed}");
    let line = &lines[&id];
    let alone = dps_gpu::tensor_file::read(&file).unwrap();
    let swept = dps_gpu::tensor_file::read(&dir.join(line["train"]["metric_file"].as_str().unwrap())).unwrap();
    assert_eq!(
        alone.tensors.keys().any(|k| k.starts_with("features.")),
        variant == "net",
        "{id}: the file holds the tuned network exactly when the variant is net"
    );
    assert_eq!(alone.tensors, swept.tensors, "{id}: the trained parameters");
    assert_eq!(
        summary["epochs"][0]["validation_2afc"], line["train"]["final_validation_2afc"],
        "{id}: validation 2AFC"
    );
    for (name, path) in [("cifar", &cifar), ("stl", &stl)] {
        for (scalars, cell) in [
            (Some(&file), id.clone()),
            (None, format!("baseline/alex/{method}/r{ranking}")),
        ] {
            let mut eval = s(&["eval", "--test"]);
            eval.push(path.display().to_string());
            eval.extend(s(&[
                "--limit",
                "12",
                "--method",
                method,
                "--ranking",
                ranking,
                "--json",
            ]));
            if let Some(f) = scalars {
                eval.push("--scalars".into());
                eval.push(f.display().to_string());
            }
            let e: Value = serde_json::from_slice(&ok(dps(&eval)).stdout).unwrap();
            assert_eq!(e["two_afc"], lines[&cell]["tests"][name]["two_afc"], "{cell} on {name}");
            assert_eq!(
                e["triplets"], lines[&cell]["tests"][name]["triplets"],
                "{cell} on {name}"
            );
        }
    }
}

#[test]
fn a_killed_sweep_resumes_to_the_same_results() {
    let Some(data) = common::shared_dir("DPS_DATA_DIR", "a_killed_sweep_resumes_to_the_same_results") else {
        return;
    };
    let extra = ["--methods", "spatial", "--rankings", "0-1", "--seeds", "2"];
    let whole = temp("whole");
    ok(dps(&grid_args(&data, &whole, &extra)));
    let expected = results(&whole);
    assert_eq!(expected.len(), 2 * 2 + 2);

    // Kill -9 as soon as the first group's lines are out, then rerun.
    let dir = temp("killed");
    let mut child = Command::new(env!("CARGO_BIN_EXE_dps-gpu"))
        .args(grid_args(&data, &dir, &extra))
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let started = Instant::now();
    loop {
        let n = std::fs::read_to_string(dir.join("results.jsonl"))
            .map(|t| t.lines().count())
            .unwrap_or(0);
        if n > 0 || child.try_wait().unwrap().is_some() || started.elapsed() > Duration::from_secs(300) {
            break;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    child.kill().unwrap();
    child.wait().unwrap();
    let partial = results(&dir).len();
    assert!(
        partial < expected.len(),
        "the sweep was killed before it finished ({partial} lines)"
    );
    let rerun: Value = serde_json::from_slice(&ok(dps(&grid_args(&data, &dir, &extra))).stdout).unwrap();
    assert_eq!(rerun["skipped"].as_u64(), Some(partial as u64));
    assert_eq!(rerun["ran"].as_u64(), Some((expected.len() - partial) as u64));
    let resumed = results(&dir);
    assert_eq!(resumed.keys().collect::<Vec<_>>(), expected.keys().collect::<Vec<_>>());
    for (id, line) in &expected {
        assert_eq!(scores(line), scores(&resumed[id]), "{id}");
    }

    // A line cut mid-way by a crash is removed and its cell run again.
    let path = dir.join("results.jsonl");
    let text = std::fs::read_to_string(&path).unwrap();
    let last_start = text.trim_end().rfind('\n').unwrap() + 1;
    std::fs::write(&path, &text[..last_start + 40]).unwrap();
    let rerun: Value = serde_json::from_slice(&ok(dps(&grid_args(&data, &dir, &extra))).stdout).unwrap();
    assert_eq!(rerun["ran"].as_u64(), Some(1));
    let repaired = results(&dir);
    assert_eq!(repaired.len(), expected.len());
    for (id, line) in &expected {
        assert_eq!(scores(line), scores(&repaired[id]), "{id} after the repair");
    }

    // The same directory with other settings is refused.
    let other = dps(&grid_args(
        &data,
        &dir,
        &["--methods", "mean", "--rankings", "0-1", "--seeds", "2"],
    ));
    assert!(!other.status.success());
    let err = String::from_utf8_lossy(&other.stderr);
    assert!(err.contains("other settings") && err.contains("methods"), "{err}");
    assert!(!err.contains("panicked"), "{err}");
}

#[test]
fn shards_split_the_grid_without_overlap() {
    let Some(data) = common::shared_dir("DPS_DATA_DIR", "shards_split_the_grid_without_overlap") else {
        return;
    };
    let extra = ["--methods", "mean", "--rankings", "0-1", "--seeds", "1"];
    let mut all = BTreeMap::new();
    for k in 1..=2 {
        let dir = temp(&format!("shard{k}"));
        let shard = format!("{k}/2");
        ok(dps(&grid_args(
            &data,
            &dir,
            &[&extra[..], &["--shard", &shard]].concat(),
        )));
        for (id, line) in results(&dir) {
            assert!(all.insert(id.clone(), line).is_none(), "{id} is in both shards");
        }
    }
    let mut expected: Vec<String> = Vec::new();
    for r in 0..2 {
        expected.push(format!("baseline/alex/mean/r{r}"));
        expected.push(format!("adapted/alex/mean/r{r}/s0"));
    }
    expected.sort();
    assert_eq!(all.keys().cloned().collect::<Vec<_>>(), expected);
    for bad in ["0/2", "3/2", "x", "1/0"] {
        let o = dps(&grid_args(
            &data,
            &temp("bad"),
            &[&extra[..], &["--shard", bad]].concat(),
        ));
        assert!(!o.status.success(), "--shard {bad} accepted");
        assert!(String::from_utf8_lossy(&o.stderr).contains("--shard"), "--shard {bad}");
    }
}

#[test]
fn bad_sweep_arguments_are_clear_errors() {
    let out = temp("bad-args");
    let o = out.display().to_string();
    for (args, expect) in [
        (vec!["--test", "nameless"], "NAME=DATASET"),
        (vec!["--test", "a=x", "--rankings", "3-25"], "--rankings"),
        (vec!["--test", "a=x", "--rankings", "five"], "--rankings"),
        (vec!["--test", "a=x", "--nets", "resnet"], "resnet"),
        (vec!["--test", "a=x", "--methods", "spatial,median"], "median"),
        (vec!["--test", "a=x", "--variant", "everything"], "--variant"),
        (vec!["--test", "a=x", "--seeds", "0"], "--seeds"),
        (vec!["--test", "a=/nonexistent/test"], "/nonexistent/test"),
    ] {
        let mut a = s(&["sweep", "--train", "/nonexistent/train", "-o", &o]);
        a.extend(s(&args));
        let r = dps(&a);
        assert!(!r.status.success(), "{args:?} accepted");
        let err = String::from_utf8_lossy(&r.stderr);
        assert!(err.contains("error:") && err.contains(expect), "{args:?}: {err}");
        assert!(!err.contains("panicked"), "{err}");
    }
}
