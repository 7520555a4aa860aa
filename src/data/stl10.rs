//! STL-10 binaries: `*_X.bin` holds 96×96 images as three planes R, G, B, each stored column-major (MATLAB
//! order, i.e. every plane transposed); `*_y.bin` beside it, when present, one label byte 1..10 per image.

use std::path::{Path, PathBuf};

use crate::{bail, Context, Result};

use super::dataset::RecordFiles;
use super::{ImageSource, RgbImage8};

const SIDE: usize = 96;
const PLANE: usize = SIDE * SIDE;
const RECORD: usize = 3 * PLANE;

/// STL-10 images read from `*_X.bin` on demand (the unlabeled split is 2.7 GB), labels read when opened.
pub struct Stl10 {
    records: RecordFiles,
    labels: Option<Vec<u8>>,
}

/// Opens an STL-10 `*_X.bin` and, when it exists, the `*_y.bin` beside it; keeps the first `limit` images.
pub fn open_stl10(x_path: &Path, limit: Option<usize>) -> Result<Stl10> {
    let records = RecordFiles::open(&[x_path.to_path_buf()], RECORD, "STL-10 images", limit)?;
    // The labels must match the whole file, not just the images kept.
    let total = std::fs::metadata(x_path).context(x_path.display())?.len() as usize / RECORD;
    let labels = match labels_path(x_path) {
        Some(y) if y.is_file() => {
            let bytes = std::fs::read(&y).context(format!("{}: cannot read", y.display()))?;
            if bytes.len() != total {
                bail!(
                    "{}: {} labels for the {total} images of {}",
                    y.display(),
                    bytes.len(),
                    x_path.display()
                );
            }
            if let Some(i) = bytes.iter().position(|&l| !(1..=10).contains(&l)) {
                bail!(
                    "{}: label {} of image {i} is not an STL-10 class (1..10)",
                    y.display(),
                    bytes[i]
                );
            }
            Some(bytes[..records.len()].to_vec())
        }
        _ => None,
    };
    Ok(Stl10 { records, labels })
}

/// `…_X.bin` → `…_y.bin`, as the STL-10 release names its label files.
fn labels_path(x_path: &Path) -> Option<PathBuf> {
    let name = x_path.file_name()?.to_str()?;
    let stem = name.strip_suffix("_X.bin").or_else(|| name.strip_suffix("_x.bin"))?;
    Some(x_path.with_file_name(format!("{stem}_y.bin")))
}

impl ImageSource for Stl10 {
    fn len(&self) -> usize {
        self.records.len()
    }

    fn image(&self, i: usize) -> Result<RgbImage8> {
        let mut rec = vec![0u8; RECORD];
        self.records.read(i, &mut rec)?;
        let mut data = vec![0u8; RECORD];
        for c in 0..3 {
            for x in 0..SIDE {
                for y in 0..SIDE {
                    data[(y * SIDE + x) * 3 + c] = rec[c * PLANE + x * SIDE + y];
                }
            }
        }
        RgbImage8::new(SIDE, SIDE, data)
    }

    fn label(&self, i: usize) -> Option<u32> {
        self.labels.as_ref()?.get(i).map(|&l| l as u32)
    }

    fn describe(&self) -> String {
        let labels = if self.labels.is_some() {
            "labels 1..10"
        } else {
            "no labels"
        };
        format!(
            "STL-10 {}: {} images 96×96, {labels}",
            self.records.paths()[0].display(),
            self.len()
        )
    }
}
