use std::path::PathBuf;

use crate::{bail, Result};

use super::{load_rgb8, ImageBank, RgbImage8};

/// The repository's `samples/` photographs (public domain / CC0, see samples/README.md).
pub fn samples_dir() -> Result<PathBuf> {
    let mut candidates = vec![PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("samples")];
    if let Some(d) = std::env::current_exe().ok().as_ref().and_then(|e| e.parent()) {
        candidates.push(d.join("samples"));
    }
    match candidates.into_iter().find(|d| d.is_dir()) {
        Some(d) => Ok(d),
        None => bail!("the bundled samples/ directory was not found; pass a dataset path instead"),
    }
}

/// The bundled sample set: every photograph in samples/ cut into non-overlapping `size`×`size` patches at its
/// own resolution (row by row, files in name order), so training and evaluation run with nothing downloaded.
pub fn sample_patches(size: usize) -> Result<ImageBank> {
    let dir = samples_dir()?;
    let mut files: Vec<PathBuf> = std::fs::read_dir(&dir)
        .map_err(|e| crate::Error::msg(format!("{}: {e}", dir.display())))?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| matches!(p.extension().and_then(|e| e.to_str()), Some("png" | "jpg" | "jpeg")))
        .collect();
    files.sort();
    let mut patches = Vec::new();
    for f in &files {
        let img = load_rgb8(f)?;
        for y in 0..img.height / size {
            for x in 0..img.width / size {
                let mut data = Vec::with_capacity(size * size * 3);
                for row in y * size..(y + 1) * size {
                    let start = (row * img.width + x * size) * 3;
                    data.extend_from_slice(&img.data[start..start + size * 3]);
                }
                patches.push(RgbImage8::new(size, size, data));
            }
        }
    }
    let source = format!(
        "bundled samples ({} patches of {size}×{size} from {} photos)",
        patches.len(),
        files.len()
    );
    ImageBank::from_images(patches, size, &source)
}
