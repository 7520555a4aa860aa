use crate::{bail, Result};

use super::{resize_bilinear_pil, RgbImage8};

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
        let plane = size * size;
        let mut data = Vec::new();
        for img in images {
            let img = img?;
            let small = if img.width == size && img.height == size {
                img
            } else {
                resize_bilinear_pil(&img, size, size)
            };
            let start = data.len();
            data.resize(start + 3 * plane, 0);
            for (i, px) in small.data.chunks_exact(3).enumerate() {
                for ch in 0..3 {
                    data[start + ch * plane + i] = px[ch];
                }
            }
        }
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
