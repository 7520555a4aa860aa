//! Helpers shared by the integration tests: the GPU, ../shared locations, and plain reference readers.
#![allow(dead_code)]

pub mod cpu;

use std::collections::HashMap;
use std::path::PathBuf;

use dps_gpu::gpu::{AdapterChoice, Gpu, Precision};

pub fn gpu() -> Gpu {
    gpu_for(Precision::F32)
}

/// The GPU opened for `precision`: for F16 the fast mode as a user gets it (on cooperative matrices where the
/// adapter offers them). The fast-mode tests need SHADER_F16, which lavapipe has.
pub fn gpu_for(precision: Precision) -> Gpu {
    let choice = AdapterChoice {
        precision,
        ..AdapterChoice::from_flag_or_env(None)
    };
    let gpu = Gpu::new(&choice).expect("a GPU adapter (lavapipe: apt-get install mesa-vulkan-drivers)");
    assert_eq!(
        gpu.precision, precision,
        "{} has no SHADER_F16, which the fast-mode tests need (lavapipe has it)",
        gpu.info.name
    );
    gpu
}

/// Which conv variant a GPU runs, for test messages.
pub fn conv_variant(gpu: &Gpu) -> String {
    match (gpu.precision, gpu.coop_tile) {
        (Precision::F16, Some(t)) => format!(
            "f16 on {0}x{0}x{0} cooperative matrices, prefetch {1}",
            t.side, gpu.prefetch
        ),
        // The fast mode's forward runs the tiled kernel even where barrier_free (which its f32 backward follows).
        (Precision::F32, _) if gpu.barrier_free => {
            format!("f32, barrier_free, {} lanes sharing loads", gpu.weight_lanes)
        }
        (p, _) => format!(
            "{}, tiled, block {}, prefetch {}, barrier_free {}{}",
            p.name(),
            gpu.conv_block.map_or("chosen per conv".into(), |b| b.name()),
            gpu.prefetch,
            gpu.barrier_free,
            if p == Precision::F32 {
                format!(", winograd {}", gpu.uses_winograd())
            } else {
                String::new()
            }
        ),
    }
}

/// The directory named by `var`, or None after printing that the test was skipped. A set variable that
/// points nowhere fails the test rather than skipping it.
pub fn shared_dir(var: &str, test: &str) -> Option<PathBuf> {
    match std::env::var(var) {
        Ok(d) if !d.is_empty() => {
            let p = PathBuf::from(d);
            assert!(p.is_dir(), "{var}={} is not a directory", p.display());
            Some(p)
        }
        _ => {
            println!(
                "skipped {test}: set {var} (e.g. {var}=../shared/{}) to run it",
                if var.contains("WEIGHTS") { "weights" } else { "data" }
            );
            None
        }
    }
}

/// ../shared/reference, found beside the data directory.
pub fn reference_dir(test: &str) -> Option<PathBuf> {
    let data = shared_dir("DPS_DATA_DIR", test)?;
    let r = data.join("../reference");
    assert!(
        r.join("bapps_example.json").is_file(),
        "{} lacks bapps_example.json",
        r.display()
    );
    Some(r)
}

/// Every f32 tensor of a safetensors file.
pub fn read_tensors(path: &std::path::Path) -> HashMap<String, (Vec<usize>, Vec<f32>)> {
    dps_gpu::nets::read_safetensors_file(path).unwrap_or_else(|e| panic!("{e}"))
}

/// A small deterministic generator so tests need no extra crates and their inputs never change.
pub struct Lcg(pub u64);

impl Lcg {
    pub fn uniform(&mut self) -> f32 {
        self.0 = self
            .0
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        ((self.0 >> 40) as f32) / ((1u64 << 24) as f32)
    }

    pub fn vec(&mut self, n: usize, lo: f32, hi: f32) -> Vec<f32> {
        (0..n).map(|_| lo + (hi - lo) * self.uniform()).collect()
    }
}

pub fn max_abs_diff(a: &[f32], b: &[f32]) -> f32 {
    assert_eq!(a.len(), b.len(), "length mismatch");
    a.iter().zip(b).map(|(x, y)| (x - y).abs()).fold(0.0, f32::max)
}
