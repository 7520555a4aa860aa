//! The file `dps-gpu train` writes: the adapted channel weights as a scalars file (keys `<part>.<tap>`, read by
//! `--scalars`), the rank net (keys `rank.<layer>.weight|bias`, layers 0, 2, 4 as in LPIPS's Dist2LogitLayer),
//! the tuned loss network under torchvision's key names (`features.<i>.weight|bias`) when it was trained too
//! (`--variant net`), and metadata describing the run.

use std::collections::HashMap;
use std::path::Path;

use crate::kernels::rank::RANK_PARAMS;
use crate::metric::Method;
use crate::tensor_file::NamedTensor;
use crate::{bail, Result};

/// Shapes of the rank net's tensors in the flat parameter vector, in order.
const RANK_LAYOUT: [(&str, &[usize]); 6] = [
    ("rank.0.weight", &[32, 5]),
    ("rank.0.bias", &[32]),
    ("rank.2.weight", &[32, 32]),
    ("rank.2.bias", &[32]),
    ("rank.4.weight", &[1, 32]),
    ("rank.4.bias", &[1]),
];

/// Writes an adapted metric: `w` laid out part-major then tap (as the pair profile's columns), `channels` per
/// tap, the rank net's flat parameters, the tuned network's tensors (`features.*`; none when only the scalars
/// were trained), and `metadata` (must name at least net and method).
pub fn save(
    path: &Path,
    method: Method,
    channels: &[usize],
    w: &[f32],
    rank_net: &[f32],
    network: &[NamedTensor],
    metadata: HashMap<String, String>,
) -> Result<()> {
    let total: usize = channels.iter().sum::<usize>() * method.parts().len();
    if w.len() != total || rank_net.len() != RANK_PARAMS {
        bail!(
            "saving: {} weights and {} rank-net parameters, expected {total} and {RANK_PARAMS}",
            w.len(),
            rank_net.len()
        );
    }
    if !metadata.contains_key("net") || !metadata.contains_key("method") {
        bail!("saving: the metadata must name the net and the method");
    }
    let mut tensors = Vec::new();
    let mut offset = 0;
    for part in method.parts() {
        for (l, &c) in channels.iter().enumerate() {
            tensors.push((format!("{}.{l}", part.name()), vec![c], w[offset..offset + c].to_vec()));
            offset += c;
        }
    }
    let mut offset = 0;
    for (name, shape) in RANK_LAYOUT {
        let n: usize = shape.iter().product();
        tensors.push((name.to_string(), shape.to_vec(), rank_net[offset..offset + n].to_vec()));
        offset += n;
    }
    for (name, shape, values) in network {
        if !name.starts_with("features.") {
            bail!("saving: network tensor {name} is not a features.* key");
        }
        tensors.push((name.clone(), shape.clone(), values.clone()));
    }
    crate::tensor_file::write(path, &tensors, metadata)
}

/// The rank net of a file written by [`save`], as a flat parameter vector.
pub fn load_rank_net(path: &Path) -> Result<Vec<f32>> {
    let file = crate::tensor_file::read(path)?;
    let mut theta = Vec::with_capacity(RANK_PARAMS);
    for (name, shape) in RANK_LAYOUT {
        match file.tensors.get(name) {
            Some((s, v)) if s.as_slice() == shape => theta.extend_from_slice(v),
            Some((s, _)) => bail!("{}: {name} has shape {s:?}, expected {shape:?}", path.display()),
            None => bail!(
                "{}: no rank net ({name} missing); was it written by dps-gpu train?",
                path.display()
            ),
        }
    }
    Ok(theta)
}
