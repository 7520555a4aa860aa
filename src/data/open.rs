use std::path::Path;

use crate::Result;

use super::{open_images, sample_patches, ImageBank};

/// Opens an image dataset as a bank of `size`×`size` images: the bundled sample patches when `path` is None,
/// otherwise any layout [`open_images`] reads (SVHN .mat, STL-10, CIFAR-10, a folder), `split` choosing the
/// files of a dataset directory and `limit` keeping the first N images.
pub fn open_dataset(
    path: Option<&Path>,
    format: Option<&str>,
    split: &str,
    limit: Option<usize>,
    size: usize,
) -> Result<ImageBank> {
    let Some(path) = path else {
        let bank = sample_patches(size)?;
        return Ok(match limit {
            Some(n) if n < bank.len() => bank.truncated(n),
            _ => bank,
        });
    };
    let source = open_images(path, format, Some(split), limit)?;
    ImageBank::from_source(source.as_ref(), size)
}
