//! SVHN's cropped digits (`train_32x32.mat`, `test_32x32.mat`, `extra_32x32.mat`): a MATLAB 5 MAT-file with `X`,
//! uint8 32×32×3×N in MATLAB's column-major order, and `y`, N×1 labels 1..10 where **10 stands for the digit 0**
//! (labels are kept as stored, 10 included).

use std::path::{Path, PathBuf};

use crate::{bail, Result};

use super::mat::{read_mat, MatData, MatWant};
use super::{ImageSource, RgbImage8};

/// SVHN images held as the file's uint8 `X` (225 MB for the training split), converted one image at a time.
pub struct Svhn {
    path: PathBuf,
    height: usize,
    width: usize,
    x: Vec<u8>,
    labels: Option<Vec<u32>>,
}

/// Reads an SVHN `.mat` file (compressed or not); keeps the first `limit` images. `y` is optional.
pub fn open_svhn(path: &Path, limit: Option<usize>) -> Result<Svhn> {
    let mut mat = read_mat(path, &[("X", MatWant::Uint8), ("y", MatWant::Numeric)])?;
    let x = mat.require("X").map_err(|e| e.context(path.display()))?;
    let (height, width, count) = match x.dims[..] {
        [h, w, 3, n] => (h, w, n),
        [h, w, 3] => (h, w, 1), // MATLAB drops a trailing singleton dimension
        _ => bail!("{}: X is {:?}; expected height×width×3×N", path.display(), x.dims),
    };
    let MatData::U8(mut pixels) = x.data else {
        bail!("{}: X is not uint8", path.display())
    };
    let keep = count.min(limit.unwrap_or(usize::MAX));
    pixels.truncate(keep * height * width * 3);
    pixels.shrink_to_fit();
    let labels = match mat.take("y") {
        None => None,
        Some(y) => {
            let MatData::F64(values) = y.data else {
                bail!("{}: y is not numeric", path.display())
            };
            if values.len() != count || y.dims.iter().filter(|&&d| d != 1).count() > 1 {
                bail!(
                    "{}: y is {:?}; expected {count}×1 labels for the {count} images of X",
                    path.display(),
                    y.dims
                );
            }
            let labels = values[..keep]
                .iter()
                .enumerate()
                .map(|(i, &v)| {
                    if v.fract() != 0.0 || !(0.0..=u32::MAX as f64).contains(&v) {
                        bail!(
                            "{}: label {v} of image {i} is not a non-negative integer",
                            path.display()
                        );
                    }
                    Ok(v as u32)
                })
                .collect::<Result<Vec<u32>>>()?;
            Some(labels)
        }
    };
    Ok(Svhn {
        path: path.to_path_buf(),
        height,
        width,
        x: pixels,
        labels,
    })
}

impl ImageSource for Svhn {
    fn len(&self) -> usize {
        self.x.len() / (self.height * self.width * 3)
    }

    fn image(&self, i: usize) -> Result<RgbImage8> {
        let (h, w) = (self.height, self.width);
        if i >= self.len() {
            bail!("{}: image {i} of {}", self.path.display(), self.len());
        }
        // X(r, c, ch, i) is at r + h·c + h·w·ch + h·w·3·i.
        let src = &self.x[i * h * w * 3..(i + 1) * h * w * 3];
        let mut data = vec![0u8; h * w * 3];
        for ch in 0..3 {
            for c in 0..w {
                for r in 0..h {
                    data[(r * w + c) * 3 + ch] = src[ch * h * w + c * h + r];
                }
            }
        }
        RgbImage8::new(w, h, data)
    }

    fn label(&self, i: usize) -> Option<u32> {
        self.labels.as_ref()?.get(i).copied()
    }

    fn describe(&self) -> String {
        let labels = if self.labels.is_some() {
            "labels 1..10 (10 = digit 0)"
        } else {
            "no labels"
        };
        format!(
            "SVHN {}: {} images {}×{}, {labels}",
            self.path.display(),
            self.len(),
            self.width,
            self.height
        )
    }
}
