use crate::{bail, Error, Result};

use super::{resize_bilinear_pil, ImageSource, RgbImage8};

/// `img` resized to `size`×`size` (PIL's bilinear filter, skipped when it has that size) into `out` as CHW bytes.
fn write_chw(img: &RgbImage8, size: usize, out: &mut [u8]) {
    let resized;
    let small = if img.width == size && img.height == size {
        img
    } else {
        resized = resize_bilinear_pil(img, size, size);
        &resized
    };
    let plane = size * size;
    for (i, px) in small.data.chunks_exact(3).enumerate() {
        for ch in 0..3 {
            out[ch * plane + i] = px[ch];
        }
    }
}

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
            write_chw(&img?, size, &mut data[start..]);
        }
        ImageBank::new(data, size, source)
    }

    /// [`ImageBank::from_images`] of every image of `source`, decoded and resized on all cores (contiguous runs
    /// of images, one per thread): the bank, and which image's error is returned (the first in order), do not
    /// depend on how many.
    pub fn from_source(source: &(dyn ImageSource + Sync), size: usize) -> Result<ImageBank> {
        let image_len = 3 * size * size;
        let n = source.len();
        let mut data = vec![0u8; n * image_len];
        // A thread per few hundred images at least: below that one costs more than it saves.
        let threads = std::thread::available_parallelism()
            .map_or(1, |t| t.get())
            .min(n.div_ceil(256))
            .max(1);
        let per = n.div_ceil(threads).max(1);
        std::thread::scope(|scope| {
            let runs: Vec<_> = data
                .chunks_mut(per * image_len)
                .enumerate()
                .map(|(r, out)| {
                    scope.spawn(move || -> Result<()> {
                        for (j, slot) in out.chunks_exact_mut(image_len).enumerate() {
                            write_chw(&source.image(r * per + j)?, size, slot);
                        }
                        Ok(())
                    })
                })
                .collect();
            runs.into_iter()
                .map(|run| {
                    run.join()
                        .unwrap_or_else(|_| Err(Error::msg("an image loading thread panicked")))
                })
                .collect::<Result<Vec<()>>>()
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
