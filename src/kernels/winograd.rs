//! 3×3 stride-1 convolutions as Winograd F(2×2, 3×3) (shaders/winograd.wgsl): the filters transformed by one
//! dispatch, then the tiles. kernels::conv routes eligible f32 convolutions here (forward and input gradient).

use crate::gpu::{linear_grid, Access, Dispatch, Gpu, Kernel, Precision, Tensor};
use crate::Result;

use super::conv::{replace_lines, shared_part, variant, ConvParams, ConvScratch};
use super::{to_u32, WINOGRAD_WGSL};

/// The line of winograd.wgsl that turns the forward's prefetch on; `bench --no-prefetch` compiles it off.
const PREFETCH_LINE: &str = "const PREFETCH: bool = true;";

/// `entry` of winograd.wgsl, compiled behind conv.wgsl's shared part (the parameter block, the tensors, the
/// output epilogue; its kernels share no loads between lanes, so one lane's lines), with or without the
/// forward's prefetch as the GPU says.
fn kernel(gpu: &Gpu, entry: &'static str, bindings: &'static [Access]) -> Kernel {
    let name = if gpu.prefetch {
        "winograd"
    } else {
        "winograd_noprefetch"
    };
    let (family, source) = variant(name.into(), || {
        let wanted = [format!("const PREFETCH: bool = {};", gpu.prefetch)];
        let file = replace_lines(WINOGRAD_WGSL.to_string(), "winograd.wgsl", &[PREFETCH_LINE], &wanted);
        format!("{}\n{file}", shared_part(1))
    });
    Kernel {
        family,
        source,
        entry,
        bindings,
    }
}

/// Output channels × tiles per workgroup of the forward (WT_K × WT_T in winograd.wgsl).
const TILED_CHANNELS: usize = 32;
const TILED_TILES: usize = 32;

/// Whether a convolution of `params` in `precision` runs here: on a GPU (CPU adapters run conv.wgsl's row
/// kernel, which on lavapipe beat both this file's barrier-free tile kernel, 2×, and Winograd as 16 GEMMs over
/// transformed patches, on every VGG-16 layer: BENCHMARKS.md, eleventh session), in f32 (the fast mode keeps its
/// f16 and tensor-core kernels, whose rounding the transforms would add to), 3×3, stride 1, the GPU not told
/// otherwise, and an output whose 2×2 tiles leave it at least 1.5× fewer multiplications (a 3×3 output takes
/// four tiles, 64 products per channel pair against the direct 81).
pub(super) fn applies(gpu: &Gpu, precision: Precision, params: &ConvParams) -> bool {
    let tiled_pixels = 4 * params.ho.div_ceil(2) as usize * params.wo.div_ceil(2) as usize;
    let saving = 2.25 * (params.ho * params.wo) as f64 / tiled_pixels as f64;
    gpu.uses_winograd()
        && precision == Precision::F32
        && params.kh == 3
        && params.kw == 3
        && params.stride == 1
        && saving >= 1.5
}

/// Records the convolution described by `params` over `[x, weight, bias, y]` (as conv::implicit_gemm's): the
/// filter transform into `scratch`, then the tiles.
pub(super) fn forward(
    gpu: &Gpu,
    mut params: ConvParams,
    tensors: [&Tensor; 4],
    scratch: &mut ConvScratch,
) -> Result<Vec<Dispatch>> {
    let [x, weight, bias, y] = tensors;
    let (cout, cin) = (params.cout as usize, params.cin as usize);
    let filters = scratch.filters(gpu, cout * cin * 16)?;

    let filter_kernel = kernel(gpu, "winograd_filters", &[Access::Read, Access::ReadWrite]);
    let (fx, fz) = linear_grid(gpu, to_u32((cout * cin).div_ceil(256), "winograd filters")?);
    let transform = Dispatch::new(
        gpu,
        gpu.pipeline(&filter_kernel)?,
        filter_kernel.entry,
        &ConvParams { groups_x: fx, ..params },
        &[weight.binding(), filters.binding()],
        [fx, 1, fz],
    )?;

    let tiles = params.batch as usize * (params.ho as usize).div_ceil(2) * (params.wo as usize).div_ceil(2);
    let tiles_kernel = kernel(
        gpu,
        "winograd_forward",
        &[Access::Read, Access::Read, Access::Read, Access::ReadWrite],
    );
    let (gx, gz) = linear_grid(gpu, to_u32(tiles.div_ceil(TILED_TILES), "winograd tiles")?);
    params.groups_x = gx;
    let tiles = Dispatch::new(
        gpu,
        gpu.pipeline(&tiles_kernel)?,
        tiles_kernel.entry,
        &params,
        &[x.binding(), filters.binding(), bias.binding(), y.binding()],
        [gx, to_u32(cout.div_ceil(TILED_CHANNELS), "winograd rows")?, gz],
    )?;
    Ok(vec![transform, tiles])
}
