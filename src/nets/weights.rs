use std::collections::HashMap;
use std::path::{Path, PathBuf};

use crate::gpu::{Gpu, Tensor};
use crate::kernels::conv::ConvShape;
use crate::tensor_file::NamedTensor;
use crate::{bail, Error, Result};

use super::{Layer, NetKind};

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
pub fn read_safetensors(path: &Path) -> Result<HashMap<String, (Vec<usize>, Vec<f32>)>> {
    Ok(crate::tensor_file::read(path)?.tensors)
}

/// One convolution's parameters on the GPU.
pub struct ConvParams {
    pub shape: ConvShape,
    pub weight: Tensor,
    pub bias: Tensor,
}

/// Parameters of one stage: a conv has one set, a fire module three (squeeze, expand 1×1, expand 3×3).
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
        let conv = |prefix: String, shape: ConvShape| -> Result<ConvParams> {
            let k = shape.kernel;
            Ok(ConvParams {
                shape,
                weight: take(format!("{prefix}.weight"), &[shape.cout, shape.cin, k, k])?,
                bias: take(format!("{prefix}.bias"), &[shape.cout])?,
            })
        };
        let layers = kind.layers();
        let mut params = Vec::new();
        for layer in &layers {
            params.push(match *layer {
                Layer::Conv { index, shape } => StageParams::Conv(conv(format!("features.{index}"), shape)?),
                Layer::MaxPool { .. } => StageParams::Pool,
                Layer::Fire {
                    index,
                    cin,
                    squeeze,
                    expand1,
                    expand3,
                } => {
                    let p = format!("features.{index}");
                    let sq = ConvShape {
                        cin,
                        cout: squeeze,
                        kernel: 1,
                        stride: 1,
                        pad: 0,
                    };
                    let e1 = ConvShape {
                        cin: squeeze,
                        cout: expand1,
                        kernel: 1,
                        stride: 1,
                        pad: 0,
                    };
                    let e3 = ConvShape {
                        cin: squeeze,
                        cout: expand3,
                        kernel: 3,
                        stride: 1,
                        pad: 1,
                    };
                    StageParams::Fire([
                        conv(format!("{p}.squeeze"), sq)?,
                        conv(format!("{p}.expand1x1"), e1)?,
                        conv(format!("{p}.expand3x3"), e3)?,
                    ])
                }
            });
        }
        Ok(Network {
            kind,
            layers,
            params,
            source: path,
        })
    }
}
