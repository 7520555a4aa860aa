//! `dps-gpu eval` on a BAPPS-layout tree (tests/fixtures/data/bapps, judge/same .npy files) against distances
//! from the plain CPU reference network of `common::cpu` with the embedded AlexNet weights.

mod common;

use std::path::{Path, PathBuf};
use std::process::Command;

use common::cpu::{self, Maps};
use dps_gpu::data::{load_rgb8, read_npy_scalar, resize_bilinear_pil, to_unit_chw};
use dps_gpu::metric::Method;
use dps_gpu::nets::NetKind;

fn fixture() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/data/bapps")
}

/// AlexNet taps of one image file on the CPU.
fn taps(params: &cpu::Params, file: &Path) -> Vec<Maps> {
    let x = to_unit_chw(&resize_bilinear_pil(&load_rgb8(file).unwrap(), 64, 64));
    let x = cpu::imagenet_normalize(&x, 1, 64 * 64, 0, 1);
    cpu::forward(NetKind::Alex, params, &Maps::new(1, 3, 64, 64, x))
}

fn sorted_files(dir: &Path) -> Vec<PathBuf> {
    let mut v: Vec<PathBuf> = std::fs::read_dir(dir).unwrap().map(|e| e.unwrap().path()).collect();
    v.sort();
    v
}

fn eval_json(path: &Path) -> serde_json::Value {
    let out = Command::new(env!("CARGO_BIN_EXE_dps-gpu"))
        .args(["eval", "--test", path.to_str().unwrap(), "--json", "--weights-dir"])
        .arg(Path::new(env!("CARGO_MANIFEST_DIR")).join("weights"))
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    serde_json::from_slice(&out.stdout).unwrap()
}

#[test]
fn bapps_two_afc_and_jnd_match_the_cpu_reference() {
    let params = common::read_tensors(&Path::new(env!("CARGO_MANIFEST_DIR")).join("weights/alexnet.safetensors"));
    let ones: Vec<Vec<Vec<f32>>> = vec![NetKind::Alex
        .tap_shapes(64)
        .unwrap()
        .iter()
        .map(|t| vec![1.0; t.0])
        .collect()];
    let d = |a: &[Maps], b: &[Maps]| cpu::dps_distance(Method::Spatial, &ones, a, b);

    let got = eval_json(&fixture().join("2afc/val"));
    let mut means = Vec::new();
    for subset in got["subsets"].as_array().unwrap() {
        let dir = fixture().join("2afc/val").join(subset["subset"].as_str().unwrap());
        let mut total = 0.0;
        let refs = sorted_files(&dir.join("ref"));
        for r in &refs {
            let name = r.file_name().unwrap();
            let (tr, t0, t1) = (
                taps(&params, r),
                taps(&params, &dir.join("p0").join(name)),
                taps(&params, &dir.join("p1").join(name)),
            );
            let h = read_npy_scalar(&dir.join("judge").join(name).with_extension("npy")).unwrap();
            let (d0, d1) = (d(&tr, &t0), d(&tr, &t1));
            total += if d0 < d1 {
                1.0 - h
            } else if d1 < d0 {
                h
            } else {
                0.5
            };
        }
        let want = total / refs.len() as f64;
        let score = subset["score"].as_f64().unwrap();
        assert!(
            (score - want).abs() < 1e-6,
            "2AFC {}: {score} vs CPU {want}",
            subset["subset"]
        );
        means.push(want);
    }
    let mean = means.iter().sum::<f64>() / means.len() as f64;
    assert!((got["mean"].as_f64().unwrap() - mean).abs() < 1e-6);

    let got = eval_json(&fixture().join("jnd/val"));
    for subset in got["subsets"].as_array().unwrap() {
        let dir = fixture().join("jnd/val").join(subset["subset"].as_str().unwrap());
        let (mut dist, mut same) = (Vec::new(), Vec::new());
        for p0 in sorted_files(&dir.join("p0")) {
            let name = p0.file_name().unwrap();
            dist.push(d(&taps(&params, &p0), &taps(&params, &dir.join("p1").join(name))) as f32);
            same.push(read_npy_scalar(&dir.join("same").join(name).with_extension("npy")).unwrap() as f32);
        }
        let want = dps_gpu::eval::jnd_map(&dist, &same).unwrap();
        let score = subset["score"].as_f64().unwrap();
        assert!(
            (score - want).abs() < 1e-6,
            "JND {}: {score} vs CPU {want}",
            subset["subset"]
        );
    }
    assert!(got["pooled"].as_f64().is_some());
}
