//! Reading and writing f32 safetensors files (weights, scalars files, fixtures) with their string metadata.

use std::collections::HashMap;
use std::path::Path;

use safetensors::tensor::TensorView;
use safetensors::{Dtype, SafeTensors};

use crate::{bail, Context, Result};

/// One tensor to write: name, shape and values.
pub type NamedTensor = (String, Vec<usize>, Vec<f32>);

/// Tensors by name: each one's shape and values.
pub type TensorMap = HashMap<String, (Vec<usize>, Vec<f32>)>;

/// The tensors of a file by name, each with its shape, and the file's metadata.
pub struct TensorFile {
    pub tensors: TensorMap,
    pub metadata: HashMap<String, String>,
}

/// Reads every tensor of a safetensors file as f32; any other dtype or a non-finite value is an error.
pub fn read(path: &Path) -> Result<TensorFile> {
    let bytes = std::fs::read(path).context(format!("reading {}", path.display()))?;
    let st = SafeTensors::deserialize(&bytes).context(format!("{} is not a valid safetensors file", path.display()))?;
    let (_, header) = SafeTensors::read_metadata(&bytes).context(format!("{}: bad header", path.display()))?;
    let mut tensors = HashMap::new();
    for (name, view) in st.tensors() {
        if view.dtype() != Dtype::F32 {
            bail!("{}: tensor {name} is {:?}, expected F32", path.display(), view.dtype());
        }
        let values: Vec<f32> = view
            .data()
            .chunks_exact(4)
            .map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]]))
            .collect();
        if let Some(bad) = values.iter().position(|v| !v.is_finite()) {
            bail!(
                "{}: tensor {name} has a non-finite value at index {bad}",
                path.display()
            );
        }
        tensors.insert(name, (view.shape().to_vec(), values));
    }
    Ok(TensorFile {
        tensors,
        metadata: header.metadata().clone().unwrap_or_default(),
    })
}

/// Only the string metadata of a safetensors file, from its header (the tensors are not read: a tuned VGG-16
/// file is ~60 MB, and the CLI consults the metadata before loading the metric).
pub fn read_metadata(path: &Path) -> Result<HashMap<String, String>> {
    use std::io::Read;
    let what = || format!("{} is not a valid safetensors file", path.display());
    let mut file = std::fs::File::open(path).context(format!("reading {}", path.display()))?;
    let mut len = [0u8; 8];
    file.read_exact(&mut len).context(what())?;
    let len = u64::from_le_bytes(len);
    if len > 100_000_000 {
        bail!("{}: header of {len} bytes", what());
    }
    let mut header = vec![0u8; len as usize];
    file.read_exact(&mut header).context(what())?;
    let header: serde_json::Value = serde_json::from_slice(&header).context(what())?;
    let mut out = HashMap::new();
    if let Some(meta) = header.get("__metadata__").and_then(|m| m.as_object()) {
        for (k, v) in meta {
            let Some(v) = v.as_str() else {
                bail!("{}: metadata {k} is not a string", what());
            };
            out.insert(k.clone(), v.to_string());
        }
    }
    Ok(out)
}

/// Writes f32 tensors `(name, shape, values)` and `metadata`, atomically (a temporary file renamed into place,
/// so an interrupted run never leaves a truncated file).
pub fn write(path: &Path, tensors: &[(String, Vec<usize>, Vec<f32>)], metadata: HashMap<String, String>) -> Result<()> {
    let mut bytes: Vec<Vec<u8>> = Vec::new();
    for (name, shape, values) in tensors {
        if shape.iter().product::<usize>() != values.len() {
            bail!("tensor {name}: shape {shape:?} does not hold {} values", values.len());
        }
        bytes.push(values.iter().flat_map(|v| v.to_le_bytes()).collect());
    }
    let mut views = Vec::new();
    for ((name, shape, _), data) in tensors.iter().zip(&bytes) {
        views.push((
            name.clone(),
            TensorView::new(Dtype::F32, shape.clone(), data).context(format!("tensor {name}"))?,
        ));
    }
    let serialized = safetensors::serialize(views, Some(metadata)).context("serialising tensors")?;
    let tmp = path.with_extension("safetensors.partial");
    std::fs::write(&tmp, serialized).context(format!("writing {}", tmp.display()))?;
    std::fs::rename(&tmp, path).context(format!("renaming {} to {}", tmp.display(), path.display()))
}
