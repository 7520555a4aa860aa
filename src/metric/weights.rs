use std::collections::HashMap;
use std::path::Path;

use crate::nets::{find_weights_file, NetKind};
use crate::{bail, Result};

use super::{Method, Part};

/// Per-channel weights w ≥ 0 for every (part, tap) of a method: `vectors[part][tap]` has C_tap values.
#[derive(Clone, Debug, PartialEq)]
pub struct ChannelWeights {
    pub vectors: Vec<Vec<Vec<f32>>>,
    /// Where they came from, for reports: "baseline", "lpips v0.1 (path)", or the scalars file.
    pub source: String,
}

impl ChannelWeights {
    /// All weights 1: the untrained baseline metric.
    pub fn baseline(channels: &[usize], method: Method) -> ChannelWeights {
        let vectors = method
            .parts()
            .iter()
            .map(|_| channels.iter().map(|&c| vec![1.0; c]).collect())
            .collect();
        ChannelWeights {
            vectors,
            source: "baseline (all weights 1)".into(),
        }
    }

    /// Splits a flat vector laid out part-major then tap (as the pair profile's columns) into vectors.
    pub fn from_flat(flat: &[f32], channels: &[usize], method: Method, source: &str) -> ChannelWeights {
        let mut vectors = Vec::new();
        let mut offset = 0;
        for _ in method.parts() {
            let mut taps = Vec::new();
            for &c in channels {
                taps.push(flat[offset..offset + c].to_vec());
                offset += c;
            }
            vectors.push(taps);
        }
        ChannelWeights {
            vectors,
            source: source.to_string(),
        }
    }

    /// LPIPS v0.1 lin weights (`lin{l}.model.1.weight`, shape (1, C, 1, 1)); LPIPS is a spatial metric.
    pub fn lpips(net: NetKind, channels: &[usize], method: Method, dir: Option<&Path>) -> Result<ChannelWeights> {
        if method != Method::Spatial {
            bail!(
                "--lpips weights exist for the spatial method only (got {})",
                method.name()
            );
        }
        let path = find_weights_file(net.lpips_file(), dir)?;
        let tensors = crate::nets::read_safetensors_file(&path)?;
        let mut taps = Vec::new();
        for (l, &c) in channels.iter().enumerate() {
            taps.push(take_vector(&tensors, &format!("lin{l}.model.1.weight"), c, &path)?);
        }
        Ok(ChannelWeights {
            vectors: vec![taps],
            source: format!("lpips v0.1 ({})", path.display()),
        })
    }

    /// A scalars file: safetensors with one vector per part and tap, keys `<part>.<tap>` (e.g. `spatial.0`,
    /// `mean.4`), each of shape (C,) or (1, C, 1, 1).
    /// When the file's metadata names a net or method (files written by `dps-gpu train` do), it must match.
    pub fn from_scalars_file(path: &Path, net: NetKind, channels: &[usize], method: Method) -> Result<ChannelWeights> {
        let file = crate::tensor_file::read(path)?;
        for (key, want) in [("net", net.name()), ("method", method.name())] {
            if let Some(got) = file.metadata.get(key) {
                if got != want {
                    bail!(
                        "{} holds weights for {key} {got}, not {want}; pass --{key} {got} or another file",
                        path.display()
                    );
                }
            }
        }
        let tensors = file.tensors;
        let mut vectors = Vec::new();
        for part in method.parts() {
            let mut taps = Vec::new();
            for (l, &c) in channels.iter().enumerate() {
                taps.push(take_vector(&tensors, &format!("{}.{l}", part.name()), c, path)?);
            }
            vectors.push(taps);
        }
        let expected = method.parts().len() * channels.len();
        let extra: Vec<&String> = tensors
            .keys()
            .filter(|k| {
                let part_ok = method.parts().iter().any(|p| k.starts_with(&format!("{}.", p.name())));
                let is_weight = [Part::Spatial, Part::Mean, Part::Sort]
                    .iter()
                    .any(|p| k.starts_with(&format!("{}.", p.name())));
                is_weight && !part_ok
            })
            .collect();
        if !extra.is_empty() {
            bail!(
                "{}: holds weights for another method ({}); this method ({}) expects {expected} vectors",
                path.display(),
                extra.iter().map(|s| s.as_str()).collect::<Vec<_>>().join(", "),
                method.name()
            );
        }
        Ok(ChannelWeights {
            vectors,
            source: path.display().to_string(),
        })
    }
}

fn take_vector(
    tensors: &HashMap<String, (Vec<usize>, Vec<f32>)>,
    key: &str,
    channels: usize,
    path: &Path,
) -> Result<Vec<f32>> {
    let Some((shape, values)) = tensors.get(key) else {
        bail!("{}: missing tensor {key} ({channels} channel weights)", path.display());
    };
    let ok = shape[..] == [channels] || shape[..] == [1, channels, 1, 1];
    if !ok {
        bail!(
            "{}: tensor {key} has shape {shape:?}, expected [{channels}] (or [1, {channels}, 1, 1])",
            path.display()
        );
    }
    if let Some(v) = values.iter().find(|v| !v.is_finite()) {
        bail!("{}: tensor {key} has a non-finite weight ({v})", path.display());
    }
    Ok(values.clone())
}
