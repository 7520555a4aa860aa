use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use crate::gpu::{Dispatch, Gpu, Tensor};
use crate::kernels::conv::{self, ConvShape, PackedWeights};
use crate::tensor_file::{NamedTensor, TensorMap};
use crate::{bail, Error, Result};

use super::{Layer, NetKind};

/// The convolutions of one layer under their torchvision key prefixes: `features.<i>` for a conv, and
/// `features.<i>.squeeze|expand1x1|expand3x3` for a fire module; none for a pool.
fn layer_convs(layer: &Layer) -> Vec<(String, ConvShape)> {
    let one_by_one = |cin, cout| ConvShape {
        cin,
        cout,
        kernel: 1,
        stride: 1,
        pad: 0,
    };
    match *layer {
        Layer::Conv { index, shape } => vec![(format!("features.{index}"), shape)],
        Layer::MaxPool { .. } => Vec::new(),
        Layer::Fire {
            index,
            cin,
            squeeze,
            expand1,
            expand3,
        } => vec![
            (format!("features.{index}.squeeze"), one_by_one(cin, squeeze)),
            (format!("features.{index}.expand1x1"), one_by_one(squeeze, expand1)),
            (
                format!("features.{index}.expand3x3"),
                ConvShape {
                    kernel: 3,
                    pad: 1,
                    ..one_by_one(squeeze, expand3)
                },
            ),
        ],
    }
}

/// Random weights of `kind`'s shapes under torchvision's key names, drawn from `seed`: uniform with variance
/// 1/fan-in (so activations stay finite through the layers) and zero biases. For benchmarks on machines
/// without the ImageNet files (speed does not depend on the values).
pub fn random_weights(kind: NetKind, seed: u64) -> Vec<NamedTensor> {
    use rand::{Rng, SeedableRng};
    let mut rng = rand::rngs::StdRng::seed_from_u64(seed);
    let mut out = Vec::new();
    for layer in kind.layers() {
        for (prefix, shape) in layer_convs(&layer) {
            let k = shape.kernel;
            let fan_in = shape.cin * k * k;
            let bound = (3.0 / fan_in as f32).sqrt();
            let weight = (0..shape.cout * fan_in)
                .map(|_| rng.random_range(-bound..bound))
                .collect();
            out.push((format!("{prefix}.weight"), vec![shape.cout, shape.cin, k, k], weight));
            out.push((format!("{prefix}.bias"), vec![shape.cout], vec![0.0; shape.cout]));
        }
    }
    out
}

/// Looks for `file` in `dir` (when given), then `$DPS_WEIGHTS_DIR`, then the repository's embedded `weights/`.
pub fn find_weights_file(file: &str, dir: Option<&Path>) -> Result<PathBuf> {
    let mut tried = Vec::new();
    let mut candidates: Vec<PathBuf> = Vec::new();
    if let Some(d) = dir {
        // An explicit directory is the only place looked at: a silent fallback would hide a typo.
        let p = d.join(file);
        if p.is_file() {
            return Ok(p);
        }
        bail!("{} not found (looked in --weights-dir {})", file, d.display());
    }
    if let Ok(d) = std::env::var("DPS_WEIGHTS_DIR") {
        candidates.push(PathBuf::from(d));
    }
    candidates.push(PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("weights"));
    if let Ok(exe) = std::env::current_exe() {
        if let Some(d) = exe.parent() {
            candidates.push(d.join("weights"));
        }
    }
    for d in candidates {
        let p = d.join(file);
        if p.is_file() {
            return Ok(p);
        }
        tried.push(d.display().to_string());
    }
    bail!(
        "{file} not found (looked in {}); pass --weights-dir DIR or set DPS_WEIGHTS_DIR, or write it with tools/export_weights.py",
        tried.join(", ")
    )
}

/// Reads every tensor of a safetensors file as f32 with its shape.
pub fn read_safetensors(path: &Path) -> Result<TensorMap> {
    Ok(crate::tensor_file::read(path)?.tensors)
}

/// One convolution's parameters on the GPU.
pub struct ConvParams {
    pub shape: ConvShape,
    pub weight: Tensor,
    pub bias: Tensor,
    /// The weights as CPU adapters' row kernel reads them, where it runs ([`conv::pack_weights`]); kept current
    /// by the network's [`WeightPacks`].
    pub packed: Option<PackedWeights>,
}

/// The dispatches that pack a network's conv weights for the row kernels, and whether they have run since the
/// weights last changed. Forward passes run [`WeightPacks::refresh`] first; whatever changes the weights on the
/// GPU (the tune step's Adam) calls [`WeightPacks::changed`]. Shared (an `Arc`) by the network and the plans and
/// trainers built on it.
pub struct WeightPacks {
    packs: Vec<Dispatch>,
    /// Times the weights changed, and the count the packs last ran at (`u64::MAX`: never).
    changes: AtomicU64,
    packed_at: AtomicU64,
}

impl WeightPacks {
    /// Runs the packs if the weights changed since they last ran (or they never ran).
    pub fn refresh(&self, gpu: &Gpu) -> Result<()> {
        let changes = self.changes.load(Ordering::Acquire);
        if self.packed_at.load(Ordering::Acquire) != changes && !self.packs.is_empty() {
            gpu.run(&self.packs)?;
        }
        self.packed_at.store(changes, Ordering::Release);
        Ok(())
    }

    /// Marks the weights changed: the next [`WeightPacks::refresh`] packs them again.
    pub fn changed(&self) {
        self.changes.fetch_add(1, Ordering::AcqRel);
    }

    /// The packing dispatches themselves (none on GPUs), for timing them.
    pub fn dispatches(&self) -> &[Dispatch] {
        &self.packs
    }
}

/// Parameters of one stage: a conv has one set, a fire module three (squeeze, expand 1×1, expand 3×3).
// A network holds a few dozen of these, built once: the fire variant's size does not matter.
#[allow(clippy::large_enum_variant)]
pub enum StageParams {
    Conv(ConvParams),
    Pool,
    Fire([ConvParams; 3]),
}

/// A loss network with its weights uploaded to the GPU.
pub struct Network {
    pub kind: NetKind,
    pub layers: Vec<Layer>,
    pub params: Vec<StageParams>,
    pub source: PathBuf,
    /// Keeps the convolutions' packed weights current (CPU adapters; no packs elsewhere).
    pub packs: Arc<WeightPacks>,
}

impl Network {
    /// Every conv weight and bias read back from the GPU under its torchvision key name, in layer order.
    pub fn read_params(&self, gpu: &Gpu) -> Result<Vec<NamedTensor>> {
        let mut out = Vec::new();
        for (name, p) in self.convs() {
            for (kind, t) in [("weight", &p.weight), ("bias", &p.bias)] {
                out.push((format!("{name}.{kind}"), t.shape.clone(), gpu.read(t, t.numel())?));
            }
        }
        Ok(out)
    }

    /// Every convolution with its torchvision key prefix (`features.<i>`, or `features.<i>.squeeze|expand1x1|
    /// expand3x3` in a fire module), in layer order.
    pub fn convs(&self) -> Vec<(String, &ConvParams)> {
        let mut out = Vec::new();
        for (layer, params) in self.layers.iter().zip(&self.params) {
            let index = match *layer {
                Layer::Conv { index, .. } | Layer::Fire { index, .. } | Layer::MaxPool { index, .. } => index,
            };
            match params {
                StageParams::Conv(p) => out.push((format!("features.{index}"), p)),
                StageParams::Fire([sq, e1, e3]) => {
                    for (name, p) in [("squeeze", sq), ("expand1x1", e1), ("expand3x3", e3)] {
                        out.push((format!("features.{index}.{name}"), p));
                    }
                }
                StageParams::Pool => {}
            }
        }
        out
    }

    pub fn load(gpu: &Gpu, kind: NetKind, weights_dir: Option<&Path>) -> Result<Network> {
        let path = find_weights_file(kind.weights_file(), weights_dir)?;
        Network::from_file(gpu, kind, &path)
    }

    /// The network with the `features.*` tensors of a safetensors file under torchvision's key names: the
    /// ImageNet weights, or a network tuned by `dps-gpu train --variant net`.
    pub fn from_file(gpu: &Gpu, kind: NetKind, path: &Path) -> Result<Network> {
        let path = path.to_path_buf();
        let tensors = read_safetensors(&path)?;
        let take = |key: String, shape: &[usize]| -> Result<Tensor> {
            let (got, values) = tensors
                .get(&key)
                .ok_or_else(|| Error::msg(format!("{}: missing tensor {key}", path.display())))?;
            if got != shape {
                bail!("{}: tensor {key} has shape {got:?}, expected {shape:?}", path.display());
            }
            gpu.upload(&key, shape, values)
        };
        let layers = kind.layers();
        let mut params = Vec::new();
        let mut packs = Vec::new();
        for layer in &layers {
            let mut convs = Vec::new();
            for (prefix, shape) in layer_convs(layer) {
                let k = shape.kernel;
                let weight = take(format!("{prefix}.weight"), &[shape.cout, shape.cin, k, k])?;
                let packed = match conv::pack_weights(gpu, shape, &weight)? {
                    Some((packed, pack)) => {
                        packs.push(pack);
                        Some(packed)
                    }
                    None => None,
                };
                convs.push(ConvParams {
                    shape,
                    weight,
                    bias: take(format!("{prefix}.bias"), &[shape.cout])?,
                    packed,
                });
            }
            params.push(match layer {
                Layer::Conv { .. } => StageParams::Conv(convs.pop().expect("a conv layer has one conv")),
                Layer::MaxPool { .. } => StageParams::Pool,
                Layer::Fire { .. } => StageParams::Fire(
                    convs
                        .try_into()
                        .map_err(|_| Error::msg("a fire module has three convs"))?,
                ),
            });
        }
        Ok(Network {
            kind,
            layers,
            params,
            source: path,
            packs: Arc::new(WeightPacks {
                packs,
                changes: AtomicU64::new(0),
                packed_at: AtomicU64::new(u64::MAX),
            }),
        })
    }
}
