use bytemuck::{Pod, Zeroable};

use crate::gpu::{linear_grid, Access, Dispatch, Gpu, Kernel, Tensor};
use crate::{bail, Result};

use super::{to_u32, IMAGES_WGSL, LINEAR_WORKGROUP};

#[repr(C)]
#[derive(Clone, Copy, Pod, Zeroable)]
struct ImagesParams {
    n: u32,
    groups_x: u32,
    pad: [u32; 2],
}

const UNIT_FROM_BYTES: Kernel = Kernel {
    family: "images",
    source: IMAGES_WGSL,
    entry: "unit_from_bytes",
    bindings: &[Access::Read, Access::Read, Access::ReadWrite],
};

/// An upload path for 8-bit images: [`ByteImages::write`] puts the bytes of images in tensor order on the GPU
/// and runs the kernel that turns them into [0, 1] values at the start of `target` (a quarter of the bytes an
/// f32 upload moves; the images' sources are all 8-bit).
pub struct ByteImages {
    /// Values converted per write.
    pub len: usize,
    words: wgpu::Buffer,
    unpack: Dispatch,
    _unit: Tensor,
}

impl ByteImages {
    /// Converts `len` values into the first `len` of `target`.
    pub fn new(gpu: &Gpu, target: &Tensor, len: usize) -> Result<ByteImages> {
        if len == 0 || len > target.numel() {
            bail!("{len} image values do not fit a target of shape {:?}", target.shape);
        }
        let words = gpu.upload_pod("image bytes", &vec![0u32; len.div_ceil(4)])?;
        let table: Vec<f32> = (0..=255u8).map(|b| b as f32 / 255.0).collect();
        let unit = gpu.upload("byte to unit value", &[256], &table)?;
        let (gx, gz) = linear_grid(gpu, to_u32(len.div_ceil(LINEAR_WORKGROUP as usize), "image bytes")?);
        let params = ImagesParams {
            n: to_u32(len, "image bytes")?,
            groups_x: gx,
            pad: [0; 2],
        };
        let unpack = Dispatch::new(
            gpu,
            gpu.pipeline(&UNIT_FROM_BYTES)?,
            UNIT_FROM_BYTES.entry,
            &params,
            &[words.as_entire_binding(), unit.binding(), target.binding()],
            [gx, 1, gz],
        )?;
        Ok(ByteImages {
            len,
            words,
            unpack,
            _unit: unit,
        })
    }

    /// Uploads `bytes` (exactly `len` values) and converts them into the target.
    pub fn write(&self, gpu: &Gpu, bytes: &[u8]) -> Result<()> {
        self.write_parts(gpu, &[bytes])
    }

    /// [`ByteImages::write`] of the concatenation of `parts`, assembled in the transfer's staging memory.
    pub fn write_parts(&self, gpu: &Gpu, parts: &[&[u8]]) -> Result<()> {
        let total: usize = parts.iter().map(|p| p.len()).sum();
        if total != self.len {
            bail!("{total} image bytes given for an upload of {}", self.len);
        }
        gpu.write_parts(&self.words, 0, parts)?;
        gpu.run(std::slice::from_ref(&self.unpack))
    }
}
