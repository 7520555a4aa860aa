use crate::{bail, Result};

use super::parallel::fill_items;
use super::resize::write_resized_chw;
use super::{ImageSource, RgbImage8};

/// Images resized once to the working size and kept as 8-bit CHW planes (a quarter of f32's memory: SVHN's
/// 73,257 training images take 900 MB at 64×64), converted to [0, 1] floats batch by batch.
pub struct ImageBank {
    pub size: usize,
    data: Vec<u8>,
    /// Where the images came from, for reports.
    pub source: String,
}

impl ImageBank {
    /// Resizes every image to `size`×`size` with PIL's bilinear filter.
    pub fn from_images(
        images: impl IntoIterator<Item = Result<RgbImage8>>,
        size: usize,
        source: &str,
    ) -> Result<ImageBank> {
        let mut data = Vec::new();
        for img in images {
            let start = data.len();
            data.resize(start + 3 * size * size, 0);
            write_resized_chw(&img?, size, &mut data[start..]);
        }
        ImageBank::new(data, size, source)
    }

    /// [`ImageBank::from_images`] of every image of `source`, decoded and resized on all cores (see
    /// `fill_items`: the bank, and which image's error is returned, do not depend on how many).
    pub fn from_source(source: &(dyn ImageSource + Sync), size: usize) -> Result<ImageBank> {
        let image_len = 3 * size * size;
        let mut data = vec![0u8; source.len() * image_len];
        fill_items(&mut data, image_len, 256, |i, slot| {
            write_resized_chw(&source.image(i)?, size, slot);
            Ok(())
        })?;
        ImageBank::new(data, size, &source.describe())
    }

    fn new(data: Vec<u8>, size: usize, source: &str) -> Result<ImageBank> {
        if data.is_empty() {
            bail!("{source}: no images");
        }
        Ok(ImageBank {
            size,
            data,
            source: source.to_string(),
        })
    }

    /// The first `n` images.
    pub fn truncated(mut self, n: usize) -> ImageBank {
        self.data.truncate(n.min(self.len()) * 3 * self.size * self.size);
        self
    }

    pub fn len(&self) -> usize {
        self.data.len() / (3 * self.size * self.size)
    }

    pub fn is_empty(&self) -> bool {
        self.data.is_empty()
    }

    /// Image `i`'s 8-bit values, [3, size, size].
    pub fn bytes(&self, i: usize) -> Result<&[u8]> {
        let n = 3 * self.size * self.size;
        if i >= self.len() {
            bail!("image {i} of {}", self.len());
        }
        Ok(&self.data[i * n..(i + 1) * n])
    }

    /// Writes image `i` as CHW floats in [0, 1] into `out` (3·size² values).
    pub fn write_unit(&self, i: usize, out: &mut [f32]) -> Result<()> {
        let bytes = self.bytes(i)?;
        if out.len() != bytes.len() {
            bail!("image {i}: a buffer of {} values for {}", out.len(), bytes.len());
        }
        for (o, &v) in out.iter_mut().zip(bytes) {
            *o = v as f32 / 255.0;
        }
        Ok(())
    }
}
