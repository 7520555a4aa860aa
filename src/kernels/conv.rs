use bytemuck::{Pod, Zeroable};

use std::collections::HashMap;
use std::sync::{LazyLock, Mutex};

use crate::gpu::{linear_grid, Access, ConvBlock, CoopTile, Dispatch, Gpu, Kernel, Precision, Tensor};
use crate::{bail, Result};

use super::{to_u32, winograd, CONV_COOP_WGSL, CONV_WGSL};

/// Geometry of one convolution (square kernel, equal stride and padding on both axes, as in the three nets).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ConvShape {
    pub cin: usize,
    pub cout: usize,
    pub kernel: usize,
    pub stride: usize,
    pub pad: usize,
}

impl ConvShape {
    /// Output side for an input side, or None when the window does not fit.
    pub fn output_side(&self, side: usize) -> Option<usize> {
        let padded = side + 2 * self.pad;
        (padded >= self.kernel && self.stride > 0).then(|| (padded - self.kernel) / self.stride + 1)
    }
}

/// Block of the barrier-free variant: channels and columns per invocation (DIRECT_M, DIRECT_N in conv.wgsl).
const DIRECT_M: usize = 8;
const DIRECT_N: usize = 2;
/// x, weight, bias, y and the depth table `window` (which the barrier-free variant does not read).
const FORWARD_BINDINGS: &[Access] = &[
    Access::Read,
    Access::Read,
    Access::Read,
    Access::ReadWrite,
    Access::Read,
];
const CONV2D_DIRECT: Kernel = Kernel {
    family: "conv",
    source: CONV_WGSL,
    entry: "conv2d_forward_direct",
    bindings: FORWARD_BINDINGS,
};
const CONV2D_POINTWISE: Kernel = Kernel {
    entry: "conv2d_forward_pointwise",
    bindings: &[Access::Read, Access::Read, Access::Read, Access::ReadWrite],
    ..CONV2D_DIRECT
};
/// The packed input (pack_input_rows'), the packed weights (pack_weight_rows'), bias and y.
const CONV2D_ROWS: Kernel = Kernel {
    entry: "conv2d_forward_rows",
    bindings: &[Access::Texture, Access::Texture, Access::Read, Access::ReadWrite],
    ..CONV2D_DIRECT
};
/// The packed weights (written) and the weights.
const PACK_WEIGHT_ROWS: Kernel = Kernel {
    entry: "pack_weight_rows",
    bindings: &[Access::WriteTexture, Access::Read],
    ..CONV2D_DIRECT
};
/// The packed input (written) and the input.
const PACK_INPUT_ROWS: Kernel = Kernel {
    entry: "pack_input_rows",
    ..PACK_WEIGHT_ROWS
};
/// Texels per row of the packed weights' texture (PACK_WIDTH in conv.wgsl).
const PACK_WIDTH: u32 = 4096;

/// The lines of conv.wgsl that fix conv2d_forward_rows' kernel width, stride, channels and pixels per invocation.
const FORWARD_ROW_LINES: [&str; 5] = [
    "const FWD_TAPS: u32 = 3u;",
    "const FWD_STRIDE: u32 = 1u;",
    "const FWD_CO: u32 = 8u;",
    "const FWD_PIX: u32 = 4u;",
    "alias FwdPixels = vec4<f32>;",
];

/// Output pixels per invocation of conv2d_forward_rows for output rows `wo` wide: a vec4, or a vec3 where that
/// takes as many invocations (rows 1, 2, 3, 5, 6 or 9 wide). A SIMD rasteriser computes every component, so on
/// AlexNet's and SqueezeNet's 3×3 maps a vec4 wasted a quarter of the products; on 15-wide rows, five vec3s per
/// row ran slower than four vec4s (BENCHMARKS.md).
fn forward_row_pixels(wo: u32) -> u32 {
    if wo.div_ceil(3) == wo.div_ceil(4) {
        3
    } else {
        4
    }
}

/// Output channels per invocation of conv2d_forward_rows for a kernel `taps` wide at `stride`, where it runs on
/// CPU adapters: kernels at least 3 wide, strides up to 4. Measured on lavapipe (BENCHMARKS.md): with the 4
/// pixels' sums as vec4s, 16 channels beat 8, 12 and 20 for stride-1 kernels 3 and 5 wide, and 24 ran 4× slower
/// (96 sums; as scalars, 32 already ran 3× slower); AlexNet's first convolution (11 wide, stride 4) ran 2.5× and
/// SqueezeNet's (3 wide, stride 2) 1.6× faster than in conv2d_forward_direct. 1×1 convolutions gained nothing.
fn forward_row_channels(taps: usize, stride: usize) -> Option<u32> {
    (taps >= 3 && (1..=4).contains(&stride)).then_some(16)
}

/// conv2d_forward_rows specialised for kernels `taps` wide at `stride`, `channels` × `pixels` per invocation,
/// with the GPU's lanes.
fn forward_rows_kernel(gpu: &Gpu, taps: u32, stride: u32, channels: u32, pixels: u32) -> Kernel {
    let (family, source) = conv_specialised(
        gpu,
        format!("conv_forward_rows{taps}s{stride}x{channels}p{pixels}"),
        &FORWARD_ROW_LINES,
        vec![
            format!("const FWD_TAPS: u32 = {taps}u;"),
            format!("const FWD_STRIDE: u32 = {stride}u;"),
            format!("const FWD_CO: u32 = {channels}u;"),
            format!("const FWD_PIX: u32 = {pixels}u;"),
            format!("alias FwdPixels = vec{pixels}<f32>;"),
        ],
    );
    Kernel {
        family,
        source,
        ..CONV2D_ROWS
    }
}

/// Output channels per invocation of conv2d_forward_pointwise (PW_CO).
const POINTWISE_CHANNELS: usize = 16;

/// Records a 1×1 stride-1 unpadded convolution on a CPU adapter (as implicit_gemm's): conv2d_forward_pointwise
/// over the batch's columns in fours.
fn forward_pointwise(gpu: &Gpu, params: ConvParams, tensors: [&Tensor; 4]) -> Result<Dispatch> {
    let kernel = conv_kernel(gpu, CONV2D_POINTWISE, Precision::F32, PLAIN);
    let quads = (params.batch as usize * (params.h * params.w) as usize).div_ceil(4);
    let bindings: Vec<_> = tensors.iter().map(|t| t.binding()).collect();
    lane_blocks(gpu, &kernel, params, &bindings, quads, POINTWISE_CHANNELS)
}

/// Records a convolution that [`forward_row_channels`] takes on a CPU adapter (as implicit_gemm's): its weights
/// packed into `scratch`'s texture by pack_weight_rows, then conv2d_forward_rows over whole output rows in
/// segments of [`forward_row_pixels`], the columns (b, oy, segment). The packing runs with every pass, so a
/// recorded pass sees weights that training changed, unless `packed` holds them packed already (a network's,
/// which packs them when they change: [`pack_weights`]).
fn forward_rows(
    gpu: &Gpu,
    params: ConvParams,
    [x, weight, bias, y]: [&Tensor; 4],
    channels: u32,
    packed: Option<&PackedWeights>,
    scratch: &mut ConvScratch,
) -> Result<Vec<Dispatch>> {
    let pixels = forward_row_pixels(params.wo);
    let kernel = forward_rows_kernel(gpu, params.kw, params.stride, channels, pixels);
    let mut dispatches = Vec::new();
    let texture = match packed {
        Some(p) => {
            if (p.cout, p.cin, p.kernel, p.flip) != (params.cout, params.cin, params.kw, params.flip) {
                bail!(
                    "conv: weights packed for {} × {} × {}² (flip {}) do not fit this convolution's {} × {} × {}²",
                    p.cout,
                    p.cin,
                    p.kernel,
                    p.flip,
                    params.cout,
                    params.cin,
                    params.kw
                );
            }
            p.texture.clone()
        }
        None => {
            let texels = packed_texels(&params);
            let texture = scratch.packed_weights(gpu, texels)?;
            dispatches.push(pack_weights_dispatch(gpu, &kernel, params, weight, &texture)?);
            texture
        }
    };
    let inputs = x.numel().div_ceil(4);
    let input_texture = scratch.packed_inputs(gpu, inputs)?;
    dispatches.push(pack_input_dispatch(gpu, &kernel, params, x, &input_texture)?);
    let segments = (params.batch * params.ho * params.wo.div_ceil(pixels)) as usize;
    let bindings = [
        wgpu::BindingResource::TextureView(&input_texture),
        wgpu::BindingResource::TextureView(&texture),
        bias.binding(),
        y.binding(),
    ];
    dispatches.push(lane_blocks(
        gpu,
        &kernel,
        params,
        &bindings,
        segments,
        channels as usize,
    )?);
    Ok(dispatches)
}

/// Texels of pack_weight_rows' layout for the weights of `params`.
fn packed_texels(params: &ConvParams) -> usize {
    params.cout as usize * params.cin as usize * params.kh as usize * params.kw.div_ceil(4) as usize
}

/// One of the packing kernels (`pack`: PACK_WEIGHT_ROWS of the weights as `params` reads them, or PACK_INPUT_ROWS
/// of the input), `invocations` of it, from `source` into `texture`, compiled in the module of `beside`.
fn pack_dispatch(
    gpu: &Gpu,
    beside: &Kernel,
    pack: Kernel,
    invocations: usize,
    mut params: ConvParams,
    source: &Tensor,
    texture: &wgpu::TextureView,
) -> Result<Dispatch> {
    let kernel = Kernel {
        family: beside.family,
        source: beside.source,
        ..pack
    };
    let (gx, gz) = linear_grid(gpu, to_u32(invocations.div_ceil(64), kernel.entry)?);
    params.groups_x = gx;
    Dispatch::new(
        gpu,
        gpu.pipeline(&kernel)?,
        kernel.entry,
        &params,
        &[wgpu::BindingResource::TextureView(texture), source.binding()],
        [gx, 1, gz],
    )
}

/// pack_weight_rows of `weight`: one invocation per kernel (m, ci).
fn pack_weights_dispatch(
    gpu: &Gpu,
    beside: &Kernel,
    params: ConvParams,
    weight: &Tensor,
    texture: &wgpu::TextureView,
) -> Result<Dispatch> {
    let kernels = params.cout as usize * params.cin as usize;
    pack_dispatch(gpu, beside, PACK_WEIGHT_ROWS, kernels, params, weight, texture)
}

/// pack_input_rows of `x`: one invocation per texel.
fn pack_input_dispatch(
    gpu: &Gpu,
    beside: &Kernel,
    params: ConvParams,
    x: &Tensor,
    texture: &wgpu::TextureView,
) -> Result<Dispatch> {
    pack_dispatch(gpu, beside, PACK_INPUT_ROWS, x.numel().div_ceil(4), params, x, texture)
}

/// A convolution's weights packed for CPU adapters' row kernel in a texture of their own, for weights that change
/// only between passes (a network's): whoever changes them runs the pack again ([`pack_weights`]), and the passes
/// that read them ([`conv2d_prepacked`]) skip the packing.
pub struct PackedWeights {
    cout: u32,
    cin: u32,
    kernel: u32,
    flip: u32,
    texture: wgpu::TextureView,
}

/// Where the forward of a convolution of `shape` runs by rows on this adapter (CPU adapters, in f32): a texture
/// for its weights and the dispatch that packs `weight` into it (to run before the first pass that reads them
/// and after every change). `None` where the forward reads the weights as they are.
pub fn pack_weights(gpu: &Gpu, shape: ConvShape, weight: &Tensor) -> Result<Option<(PackedWeights, Dispatch)>> {
    let Some(channels) = forward_row_channels(shape.kernel, shape.stride) else {
        return Ok(None);
    };
    if !gpu.barrier_free || gpu.precision != Precision::F32 {
        return Ok(None);
    }
    let k = shape.kernel;
    if weight.shape != [shape.cout, shape.cin, k, k] {
        bail!("conv: weight {:?} does not fit {shape:?}", weight.shape);
    }
    let params = ConvParams {
        cin: to_u32(shape.cin, "conv input channels")?,
        cout: to_u32(shape.cout, "conv output channels")?,
        kh: k as u32,
        kw: k as u32,
        stride: shape.stride as u32,
        ..ConvParams::zeroed()
    };
    let texels = packed_texels(&params);
    let texture = rows_texture(gpu, texels, "packed weights")?;
    // Packing needs no particular variant of conv.wgsl: take the one most of these convolutions run in.
    let beside = forward_rows_kernel(gpu, params.kw, params.stride, channels, 4);
    let pack = pack_weights_dispatch(gpu, &beside, params, weight, &texture)?;
    let packed = PackedWeights {
        cout: params.cout,
        cin: params.cin,
        kernel: params.kw,
        flip: 0,
        texture,
    };
    Ok(Some((packed, pack)))
}

/// One dispatch of a barrier-free forward `kernel` over `bindings` (x, weight, bias, y): workgroups of 64
/// invocations, one per column block (`blocks` in all, linear over x and z), and a row of workgroups per
/// `channels` outputs.
fn lane_blocks(
    gpu: &Gpu,
    kernel: &Kernel,
    mut params: ConvParams,
    bindings: &[wgpu::BindingResource<'_>],
    blocks: usize,
    channels: usize,
) -> Result<Dispatch> {
    let (gx, gz) = linear_grid(gpu, to_u32(blocks.div_ceil(64), "conv column blocks")?);
    params.groups_x = gx;
    let channel_blocks = to_u32((params.cout as usize).div_ceil(channels), "conv channel blocks")?;
    Dispatch::new(
        gpu,
        gpu.pipeline(kernel)?,
        kernel.entry,
        &params,
        bindings,
        [gx, channel_blocks, gz],
    )
}

const CONV2D: Kernel = Kernel {
    family: "conv",
    source: CONV_WGSL,
    entry: "conv2d_forward",
    bindings: FORWARD_BINDINGS,
};

/// The lines of conv.wgsl that set the tiled kernels' block, the type of their tiles and products, and whether
/// each slice's products are summed apart (see its header); the variants replace them.
const TILED_LINES: [&str; 5] = [
    "const BLOCK_M: u32 = 4u;",
    "const BLOCK_N: u32 = 4u;",
    "alias mul = f32;",
    "const SLICE_SUMS: bool = false;",
    "const PREFETCH: bool = true;",
];

/// The lines of conv.wgsl's shared part that let the barrier-free kernels' lanes share loads, as written: one
/// lane, each loading every value itself. [`lane_lines`] has them for more.
const LANE_LINES: [&str; 5] = [
    "const LANES: u32 = 1u;",
    "fn lane_index() -> u32 { return 0u; }",
    "fn from_lane(v: f32, lane: u32) -> f32 { return v; }",
    "fn lanes_min(v: u32) -> u32 { return v; }",
    "fn lanes_max(v: u32) -> u32 { return v; }",
];

/// LANE_LINES for `lanes` lanes of a subgroup (the shared part's own lines for one).
fn lane_lines(lanes: u32) -> Vec<String> {
    if lanes == 1 {
        return LANE_LINES.map(String::from).to_vec();
    }
    vec![
        format!("const LANES: u32 = {lanes}u;"),
        // Every lane is active where these run (the kernels never return early), so the lanes below this one
        // are exactly its subgroup invocation id.
        "fn lane_index() -> u32 { return subgroupExclusiveAdd(1u); }".into(),
        "fn from_lane(v: f32, lane: u32) -> f32 { return subgroupShuffle(v, lane); }".into(),
        "fn lanes_min(v: u32) -> u32 { return subgroupMin(v); }".into(),
        "fn lanes_max(v: u32) -> u32 { return subgroupMax(v); }".into(),
    ]
}

/// `source` with each of `lines` (which `file` must declare) replaced by the matching `wanted` line.
pub(super) fn replace_lines(mut source: String, file: &str, lines: &[&str], wanted: &[String]) -> String {
    for (line, value) in lines.iter().zip(wanted) {
        assert!(source.contains(line), "{file} must declare `{line}`");
        source = source.replacen(line, value, 1);
    }
    source
}

/// The family named `name` and its source, made by `make` once per process and kept for its lifetime: a handful
/// of variants per adapter opened (blocks, precisions, lanes, cooperative tilings), so leaking them is bounded.
pub(super) fn variant(name: String, make: impl FnOnce() -> String) -> (&'static str, &'static str) {
    type Variants = HashMap<String, (&'static str, &'static str)>;
    static VARIANTS: LazyLock<Mutex<Variants>> = LazyLock::new(Default::default);
    if let Some(&found) = VARIANTS.lock().unwrap().get(&name) {
        return found;
    }
    // Made without the lock held: a variant may be made from another (winograd.wgsl behind conv.wgsl's shared part).
    let source = make();
    *VARIANTS.lock().unwrap().entry(name).or_insert_with_key(|name| {
        (
            Box::leak(name.clone().into_boxed_str()),
            Box::leak(source.into_boxed_str()),
        )
    })
}

/// conv.wgsl compiled for `block` and `precision` (the fast mode: f16 tiles and products, each slice summed
/// apart), with or without the tiled kernels' `prefetch`, and with `lanes` lanes sharing the barrier-free
/// kernels' loads: its family name and source. The file as it stands is f32, 4×4, prefetching, one lane.
fn conv_source(precision: Precision, block: ConvBlock, prefetch: bool, lanes: u32) -> (&'static str, &'static str) {
    if (precision, block, prefetch, lanes) == (Precision::F32, PLAIN, true, 1) {
        return ("conv", CONV_WGSL);
    }
    let mut name = String::from("conv");
    if (precision, block) != (Precision::F32, PLAIN) {
        name += &format!("_{}_{}", precision.name(), block.name());
    }
    if !prefetch {
        name += "_noprefetch";
    }
    if lanes > 1 {
        name += &format!("_lanes{lanes}");
    }
    variant(name, || {
        let f16 = precision == Precision::F16;
        let wanted = [
            format!("const BLOCK_M: u32 = {}u;", block.rows),
            format!("const BLOCK_N: u32 = {}u;", block.columns),
            format!("alias mul = {};", if f16 { "f16" } else { "f32" }),
            format!("const SLICE_SUMS: bool = {f16};"),
            format!("const PREFETCH: bool = {prefetch};"),
        ];
        let source = replace_lines(CONV_WGSL.to_string(), "conv.wgsl", &TILED_LINES, &wanted);
        let source = replace_lines(source, "conv.wgsl", &LANE_LINES, &lane_lines(lanes));
        if f16 {
            format!("enable f16;\n{source}")
        } else {
            source
        }
    })
}

/// `kernel` (an entry point of conv.wgsl) in the variant for `precision`, `block` and the GPU's lanes.
fn conv_kernel(gpu: &Gpu, kernel: Kernel, precision: Precision, block: ConvBlock) -> Kernel {
    let (family, source) = conv_source(precision, block, gpu.prefetch, gpu.weight_lanes);
    Kernel {
        family,
        source,
        ..kernel
    }
}

/// The block conv.wgsl declares, which the barrier-free kernels (which have their own) are compiled with.
const PLAIN: ConvBlock = ConvBlock { rows: 4, columns: 4 };

/// Fewest workgroups a tiled convolution keeps when its block grows: a few per multiprocessor of a large GPU (an
/// H100 has 132), so that larger tiles do not leave it idle on small layers or batches.
const MIN_TILED_WORKGROUPS: usize = 512;

/// The block of a tiled GEMM of `rows` × `columns` (unless the GPU forces one): see [`block_for`].
fn choose_block(gpu: &Gpu, precision: Precision, rows: usize, columns: usize, min_workgroups: usize) -> ConvBlock {
    let value_bytes = if precision == Precision::F16 { 2 } else { 4 };
    let memory = gpu.limits.max_compute_workgroup_storage_size;
    gpu.conv_block
        .unwrap_or_else(|| block_for(rows, columns, min_workgroups, value_bytes, memory))
}

/// The first of 8×8, 4×8, 8×4 whose tiles pad neither side by more than an eighth beyond 64-wide tiles, leave at
/// least `min_workgroups` workgroups and whose slices (of `value_bytes` values) fit `workgroup_memory` bytes;
/// else 4×4. Larger blocks read workgroup memory less often per product (twice the products per load at 8×8).
fn block_for(rows: usize, columns: usize, min_workgroups: usize, value_bytes: u32, workgroup_memory: u32) -> ConvBlock {
    let padded = |n: usize, tile: usize| n.div_ceil(tile) * tile;
    let side_fits = |block: u32, n: usize| padded(n, 16 * block as usize) * 8 <= padded(n, 64) * 9;
    ConvBlock::ALL
        .into_iter()
        .find(|b| {
            let workgroups = rows.div_ceil(16 * b.rows as usize) * columns.div_ceil(16 * b.columns as usize);
            let staged = 16 * 16 * (b.rows + b.columns) * value_bytes;
            side_fits(b.rows, rows)
                && side_fits(b.columns, columns)
                && workgroups >= min_workgroups
                && staged <= workgroup_memory
        })
        .unwrap_or(ConvBlock { rows: 4, columns: 4 })
}

/// The lines of conv_coop.wgsl that fix its matrix side and subgroup size (set there for 16 and 32).
const COOP_LINES: [&str; 6] = [
    "const S: u32 = 16u;",
    "alias TileA = coop_mat16x16<f16, A>;",
    "alias TileB = coop_mat16x16<f16, B>;",
    "alias TileC = coop_mat16x16<f32, C>;",
    "const SUBGROUP: u32 = 32u;",
    "const PREFETCH: bool = true;",
];

/// conv_coop.wgsl specialised for `tile`, with or without its `prefetch`, compiled once per variant in a process.
fn conv2d_coop(tile: CoopTile, prefetch: bool) -> Kernel {
    let s = tile.side;
    let name = format!(
        "conv_coop_{s}_{}{}",
        tile.subgroup,
        if prefetch { "" } else { "_noprefetch" }
    );
    let (family, source) = variant(name, || {
        let wanted = [
            format!("const S: u32 = {s}u;"),
            format!("alias TileA = coop_mat{s}x{s}<f16, A>;"),
            format!("alias TileB = coop_mat{s}x{s}<f16, B>;"),
            format!("alias TileC = coop_mat{s}x{s}<f32, C>;"),
            format!("const SUBGROUP: u32 = {}u;", tile.subgroup),
            format!("const PREFETCH: bool = {prefetch};"),
        ];
        // conv_coop.wgsl's `enable` lines, then conv.wgsl's shared part, then the rest of conv_coop.wgsl.
        let (enables, body): (Vec<&str>, Vec<&str>) = CONV_COOP_WGSL.lines().partition(|l| l.starts_with("enable "));
        let source = format!("{}\n{}\n{}\n", enables.join("\n"), shared_part(1), body.join("\n"));
        replace_lines(source, "conv_coop.wgsl", &COOP_LINES, &wanted)
    });
    Kernel {
        family,
        source,
        entry: "conv2d_forward_coop",
        bindings: FORWARD_BINDINGS,
    }
}

/// The lines of conv.wgsl between its "shared with" markers, for `lanes` lanes sharing loads: the parameter
/// block, the bindings, the implicit GEMM's helpers and the lanes' (WGSL has no includes); conv_coop.wgsl and
/// winograd.wgsl are compiled behind it.
pub(super) fn shared_part(lanes: u32) -> &'static str {
    const BEGIN: &str = "// ---- shared with conv_coop.wgsl and winograd.wgsl";
    const END: &str = "// ---- end of the shared part ----";
    let (_, source) = conv_source(Precision::F32, PLAIN, true, lanes);
    let start = source.find(BEGIN).expect("conv.wgsl marks its shared part");
    let end = source.find(END).expect("conv.wgsl marks the end of its shared part");
    &source[start..end]
}

/// conv.wgsl's parameter block (also winograd.wgsl's, which shares that part of conv.wgsl).
#[repr(C)]
#[derive(Clone, Copy, Pod, Zeroable)]
pub(super) struct ConvParams {
    pub(super) batch: u32,
    pub(super) cin: u32,
    pub(super) h: u32,
    pub(super) w: u32,
    pub(super) cout: u32,
    pub(super) kh: u32,
    pub(super) kw: u32,
    pub(super) stride: u32,
    pub(super) pad: u32,
    pub(super) ho: u32,
    pub(super) wo: u32,
    pub(super) c_off: u32,
    pub(super) ctot: u32,
    pub(super) relu: u32,
    pub(super) groups_x: u32,
    pub(super) accumulate: u32,
    pub(super) splits: u32,
    pub(super) x_ctot: u32,
    pub(super) x_coff: u32,
    pub(super) flip: u32,
    pub(super) has_bias: u32,
    pub(super) _pad: [u32; 3],
}

/// `y[:, c_off..c_off+cout] = conv(x, weight) + bias`, then ReLU when `relu`.
/// `x` is [B, cin, H, W]; `y` is [B, Ctot, Ho, Wo] with Ctot ≥ c_off + cout. `scratch` is shared by the
/// convolutions recorded in one command stream (see [`ConvScratch`]).
#[allow(clippy::too_many_arguments)]
pub fn conv2d(
    gpu: &Gpu,
    shape: ConvShape,
    x: &Tensor,
    weight: &Tensor,
    bias: &Tensor,
    y: &Tensor,
    c_off: usize,
    relu: bool,
    scratch: &mut ConvScratch,
) -> Result<Vec<Dispatch>> {
    conv2d_prepacked(gpu, shape, x, weight, None, bias, y, c_off, relu, scratch)
}

/// [`conv2d`] whose weights may come `packed` already ([`pack_weights`] of `weight`), so that the pass records no
/// packing of its own: the caller runs the pack before the pass whenever `weight` has changed.
#[allow(clippy::too_many_arguments)]
pub fn conv2d_prepacked(
    gpu: &Gpu,
    shape: ConvShape,
    x: &Tensor,
    weight: &Tensor,
    packed: Option<&PackedWeights>,
    bias: &Tensor,
    y: &Tensor,
    c_off: usize,
    relu: bool,
    scratch: &mut ConvScratch,
) -> Result<Vec<Dispatch>> {
    let params = check(shape, x, weight, bias, y, c_off, relu)?;
    implicit_gemm(gpu, gpu.precision, params, [x, weight, bias, y], packed, scratch)
}

/// Records one convolution described by `params` over `[x, weight, bias, y]` (conv.wgsl's bindings 1–4; `bias`
/// is not read without `has_bias`) in `precision`: the forward, and the input gradient as a transposed
/// convolution. On GPUs 3×3 stride-1 convolutions in f32 run as Winograd F(2×2, 3×3) (kernels::winograd), the
/// rest as an implicit GEMM; CPU adapters run kernels 3 or more wide by rows and 1×1 stride-1 ones by columns.
fn implicit_gemm(
    gpu: &Gpu,
    precision: Precision,
    mut params: ConvParams,
    tensors: [&Tensor; 4],
    packed: Option<&PackedWeights>,
    scratch: &mut ConvScratch,
) -> Result<Vec<Dispatch>> {
    if winograd::applies(gpu, precision, &params) {
        return winograd::forward(gpu, params, tensors, scratch);
    }
    let by_rows = forward_row_channels(params.kw as usize, params.stride as usize);
    if let (Precision::F32, true, Some(channels)) = (precision, gpu.barrier_free, by_rows) {
        return forward_rows(gpu, params, tensors, channels, packed, scratch);
    }
    let pointwise = params.kh == 1 && params.kw == 1 && params.stride == 1 && params.pad == 0;
    if precision == Precision::F32 && gpu.barrier_free && pointwise {
        return Ok(vec![forward_pointwise(gpu, params, tensors)?]);
    }
    let columns = (params.batch * params.ho * params.wo) as usize;
    // CPU adapters get the barrier-free variant (workgroup: 64 invocations × DIRECT_N columns, DIRECT_M channels)
    // in f32 (for kernels 3 or more wide its row form, for 1×1 stride-1 ones its pointwise form, above); the fast
    // mode runs on cooperative matrices (4S × 4S output tiles) where the adapter has them; everything else runs
    // the tiled kernel (in the fast mode with f16 tiles, which a GPU speeds up).
    let (kernel, rows_per_group, columns, cols_per_group) = match (precision, gpu.barrier_free, gpu.coop_tile) {
        (Precision::F16, _, Some(tile)) => {
            let side = 4 * tile.side as usize;
            (conv2d_coop(tile, gpu.prefetch), side, columns, side)
        }
        (Precision::F32, true, _) => (
            conv_kernel(gpu, CONV2D_DIRECT, precision, PLAIN),
            DIRECT_M,
            columns,
            64 * DIRECT_N,
        ),
        _ => {
            let block = choose_block(gpu, precision, params.cout as usize, columns, MIN_TILED_WORKGROUPS);
            let tile = |b: u32| 16 * b as usize;
            (
                conv_kernel(gpu, CONV2D, precision, block),
                tile(block.rows),
                columns,
                tile(block.columns),
            )
        }
    };
    let (gx, gz) = linear_grid(gpu, to_u32(columns.div_ceil(cols_per_group), "conv columns")?);
    let gy = to_u32((params.cout as usize).div_ceil(rows_per_group), "conv rows")?;
    params.groups_x = gx;
    let window = gpu.upload_pod("conv window", &window_table(&params))?;
    let pipeline = gpu.pipeline(&kernel)?;
    let mut bindings: Vec<_> = tensors.iter().map(|t| t.binding()).collect();
    bindings.push(window.as_entire_binding());
    Ok(vec![Dispatch::new(
        gpu,
        pipeline,
        kernel.entry,
        &params,
        &bindings,
        [gx, gy, gz],
    )?])
}

/// conv.wgsl's `window`: for each depth index k = (ci, ky, kx), the offset of its input within an image's
/// window (ci·H·W + ky·W + kx) and (ky << 16 | kx). `check` has bounded C·H·W to u32.
fn window_table(p: &ConvParams) -> Vec<[u32; 2]> {
    let (h, w, k) = (p.h, p.w, p.kh);
    let mut table = Vec::with_capacity((p.cin * p.kh * p.kw) as usize);
    for ci in 0..p.cin {
        for ky in 0..k {
            for kx in 0..k {
                table.push([ci * h * w + ky * w + kx, (ky << 16) | kx]);
            }
        }
    }
    table
}

/// Block per invocation of the weight gradient: output channels × depth (BACK_CO × BACK_K in conv.wgsl).
const BACK_CO: usize = 8;
const BACK_K: usize = 2;
const RELU_BACKWARD: Kernel = Kernel {
    family: "conv",
    source: CONV_WGSL,
    entry: "relu_backward",
    bindings: &[Access::Read, Access::ReadWrite],
};
const CONV2D_BACKWARD_PARAMS_REDUCE: Kernel = Kernel {
    family: "conv",
    source: CONV_WGSL,
    entry: "conv2d_backward_params_reduce",
    bindings: &[Access::Read, Access::ReadWrite, Access::ReadWrite],
};
/// Invocations the tiled weight gradient aims for on a GPU (an H100 keeps ~270,000 resident), the fewest output
/// columns a split reduces (four 16-deep slices before its partial tile is written), and the most memory
/// the partial sums (and any buffer of a [`ConvScratch`]) may take.
const PARAMS_TARGET_INVOCATIONS: usize = 1 << 18;
const MIN_SPLIT_COLUMNS: usize = 64;
const SCRATCH_BYTES: u64 = 256 << 20;
const CONV2D_BACKWARD_PARAMS: Kernel = Kernel {
    family: "conv",
    source: CONV_WGSL,
    entry: "conv2d_backward_params",
    bindings: &[Access::Read, Access::Read, Access::ReadWrite, Access::ReadWrite],
};
const CONV2D_BACKWARD_PARAMS_POINTWISE: Kernel = Kernel {
    entry: "conv2d_backward_params_pointwise",
    ..CONV2D_BACKWARD_PARAMS
};
const CONV2D_BACKWARD_PARAMS_ROWS: Kernel = Kernel {
    entry: "conv2d_backward_params_rows",
    ..CONV2D_BACKWARD_PARAMS
};
/// The lines of conv.wgsl that fix conv2d_backward_params_rows' kernel width and output channels per invocation.
const PARAMS_ROW_LINES: [&str; 3] = [
    "const ROW_TAPS: u32 = 3u;",
    "const ROW_STRIDE: u32 = 1u;",
    "const ROW_CO: u32 = 16u;",
];

/// Output channels per invocation of conv2d_backward_params_rows for a kernel `taps` wide at `stride`, where it
/// runs: kernels 3 to 11 wide, strides up to 4. Measured on lavapipe (AVX-512, BENCHMARKS.md): more accumulators
/// pay up to ~60 for stride-1 kernels (3 × 16, 5 × 12) and collapse at 96, where they no longer stay in
/// registers; AlexNet's first convolution (11 wide, stride 4) ran best with 8 channels (88 sums; 12 collapsed),
/// 2.5× faster than conv2d_backward_params, and SqueezeNet's (3 wide, stride 2) 2.2× faster with 16.
fn params_row_channels(taps: usize, stride: usize) -> Option<u32> {
    if !(1..=4).contains(&stride) {
        return None;
    }
    match taps {
        3 | 4 => Some(16),
        5 => Some(12),
        6..=11 => Some(8),
        _ => None,
    }
}

/// conv2d_backward_params_rows for kernels `taps` wide at `stride`, `channels` output channels per invocation,
/// with the GPU's lanes.
fn params_rows_kernel(gpu: &Gpu, taps: u32, stride: u32, channels: u32) -> Kernel {
    let (family, source) = conv_specialised(
        gpu,
        format!("conv_rows{taps}s{stride}x{channels}"),
        &PARAMS_ROW_LINES,
        vec![
            format!("const ROW_TAPS: u32 = {taps}u;"),
            format!("const ROW_STRIDE: u32 = {stride}u;"),
            format!("const ROW_CO: u32 = {channels}u;"),
        ],
    );
    Kernel {
        family,
        source,
        ..CONV2D_BACKWARD_PARAMS_ROWS
    }
}

/// conv.wgsl (f32) for the GPU's lanes with `lines` replaced by `wanted`: the family `name` and its source, made
/// once per process.
fn conv_specialised(gpu: &Gpu, name: String, lines: &[&str], wanted: Vec<String>) -> (&'static str, &'static str) {
    let lanes = gpu.weight_lanes;
    variant(format!("{name}_lanes{lanes}"), || {
        let (_, plain) = conv_source(Precision::F32, PLAIN, true, lanes);
        replace_lines(plain.to_string(), "conv.wgsl", lines, &wanted)
    })
}

/// gy, x, the partial sums, grad_bias (unused here: bound so that both weight-gradient kernels have bindings 1–4
/// in one order), the depth table and the pixel origins.
const CONV2D_BACKWARD_PARAMS_TILED: Kernel = Kernel {
    family: "conv",
    source: CONV_WGSL,
    entry: "conv2d_backward_params_tiled",
    bindings: &[
        Access::Read,
        Access::Read,
        Access::ReadWrite,
        Access::ReadWrite,
        Access::Read,
        Access::Read,
    ],
};

/// ReLU's backward in place: `gy = 0` wherever the forward's output `y` is not positive (PyTorch's
/// threshold_backward). A convolution's backward reads the masked gradient; run this once per map, before the
/// backward of every convolution that wrote it (a fire module's two expands share one).
pub fn relu_backward(gpu: &Gpu, y: &Tensor, gy: &Tensor) -> Result<Dispatch> {
    let [b, c, h, w] = dims4(y, "relu output")?;
    if gy.shape != y.shape {
        bail!(
            "relu backward: gradient {:?} does not match the output {:?}",
            gy.shape,
            y.shape
        );
    }
    let n = to_u32(y.numel(), "relu map")?;
    let (gx, gz) = linear_grid(gpu, n.div_ceil(4 * 256));
    let params = ConvParams {
        batch: b as u32,
        ctot: c as u32,
        ho: h as u32,
        wo: w as u32,
        groups_x: gx,
        ..ConvParams::zeroed()
    };
    let pipeline = gpu.pipeline(&RELU_BACKWARD)?;
    Dispatch::new(
        gpu,
        pipeline,
        RELU_BACKWARD.entry,
        &params,
        &[y.binding(), gy.binding()],
        [gx, 1, gz],
    )
}

/// The tensors of one convolution's backward pass: the forward's input, weights and bias, and the gradient `gy`
/// of the whole output it wrote its channels `c_off..c_off+cout` into (that slice is the part read), already
/// masked by the ReLU when the forward had one ([`relu_backward`]).
#[derive(Clone, Copy)]
pub struct ConvBackward<'a> {
    pub shape: ConvShape,
    pub x: &'a Tensor,
    pub weight: &'a Tensor,
    pub bias: &'a Tensor,
    pub gy: &'a Tensor,
    pub c_off: usize,
}

impl ConvBackward<'_> {
    fn params(&self, accumulate: bool) -> Result<ConvParams> {
        let mut p = check(self.shape, self.x, self.weight, self.bias, self.gy, self.c_off, false)?;
        p.accumulate = accumulate as u32;
        Ok(p)
    }
}

/// `grad_x (+)= ∂L/∂x` of the convolution described by `c`; `grad_x` has the shape of `c.x`. With `accumulate`
/// the gradient is added to what `grad_x` holds. It is the transposed convolution of `gy`, run on the forward's
/// implicit-GEMM kernels (tiled on GPUs) in f32: gy's channel slice is the input, the weights are read
/// transposed and flipped, the padding is kernel − 1 − pad. Stride 1 only: the three nets' strided convolutions
/// are their first layers, whose input (the images) gets no gradient.
pub fn conv2d_backward_input(
    gpu: &Gpu,
    c: &ConvBackward,
    grad_x: &Tensor,
    accumulate: bool,
    scratch: &mut ConvScratch,
) -> Result<Vec<Dispatch>> {
    let forward = c.params(accumulate)?;
    if grad_x.shape != c.x.shape {
        bail!(
            "conv backward: input gradient {:?} does not match the input {:?}",
            grad_x.shape,
            c.x.shape
        );
    }
    if c.shape.stride != 1 || c.shape.pad >= c.shape.kernel {
        bail!(
            "conv backward: the input gradient needs stride 1 and padding below the kernel size, not {:?}",
            c.shape
        );
    }
    let params = ConvParams {
        cin: forward.cout,
        h: forward.ho,
        w: forward.wo,
        cout: forward.cin,
        pad: forward.kh - 1 - forward.pad,
        ho: forward.h,
        wo: forward.w,
        c_off: 0,
        ctot: forward.cin,
        x_ctot: forward.ctot,
        x_coff: forward.c_off,
        flip: 1,
        has_bias: 0,
        ..forward
    };
    implicit_gemm(
        gpu,
        Precision::F32,
        params,
        [c.gy, c.weight, c.weight, grad_x],
        None,
        scratch,
    )
}

/// Scratch shared by the convolutions of a pass recorded in one command stream: the partial sums of split weight
/// gradients (GPUs' tiled ones, CPU adapters' 1×1 ones), the Winograd-transformed filters and CPU adapters'
/// packed row weights (a texture). Each convolution consumes its scratch (adds up its partials, reads its
/// filters or packed weights) before the next one's dispatches write over it, so one buffer of each serves all.
/// A buffer grows (to at least twice its size) when a convolution needs more; dispatches already recorded keep
/// the buffer they were bound to.
#[derive(Default)]
pub struct ConvScratch {
    partials: Option<Tensor>,
    filters: Option<Tensor>,
    /// CPU adapters' row convolutions' packed weights and packed inputs (rgba32float, PACK_WIDTH texels wide),
    /// each with its texels.
    packed: Option<(wgpu::TextureView, usize)>,
    inputs: Option<(wgpu::TextureView, usize)>,
}

impl ConvScratch {
    /// A [splits, rows, columns] view of the partial sums, grown to hold it.
    fn partials(&mut self, gpu: &Gpu, shape: [usize; 3]) -> Result<Tensor> {
        grown(gpu, &mut self.partials, "conv weight-gradient partials", &shape)
    }

    /// `len` values of the transformed filters, grown to hold them.
    pub(super) fn filters(&mut self, gpu: &Gpu, len: usize) -> Result<Tensor> {
        grown(gpu, &mut self.filters, "winograd filters", &[len])
    }

    /// The packed weights' texture, grown (to at least twice its texels) to hold `texels`.
    fn packed_weights(&mut self, gpu: &Gpu, texels: usize) -> Result<wgpu::TextureView> {
        grown_texture(gpu, &mut self.packed, texels, "packed conv weights")
    }

    /// The packed input's texture, grown as the weights' is.
    fn packed_inputs(&mut self, gpu: &Gpu, texels: usize) -> Result<wgpu::TextureView> {
        grown_texture(gpu, &mut self.inputs, texels, "packed conv input")
    }
}

/// The texture of `slot` (with its texels), replaced by one of at least twice its texels, where the adapter
/// allows, when it holds fewer than `texels`.
fn grown_texture(
    gpu: &Gpu,
    slot: &mut Option<(wgpu::TextureView, usize)>,
    texels: usize,
    label: &str,
) -> Result<wgpu::TextureView> {
    let held = slot.as_ref().map_or(0, |p| p.1);
    if held < texels {
        let most = PACK_WIDTH as usize * gpu.limits.max_texture_dimension_2d as usize;
        // Never below what this pass needs, which rows_texture refuses when it is beyond the adapter's textures.
        let texels = texels.max(2 * held).min(most).max(texels);
        let view = rows_texture(gpu, texels, label)?;
        *slot = Some((view, texels.div_ceil(PACK_WIDTH as usize) * PACK_WIDTH as usize));
    }
    Ok(slot.as_ref().expect("allocated above").0.clone())
}

/// An rgba32float texture PACK_WIDTH texels wide with room for `texels` (the texel at linear index t is at
/// (t % PACK_WIDTH, t / PACK_WIDTH)), for the row kernels' packed weights and inputs.
fn rows_texture(gpu: &Gpu, texels: usize, label: &str) -> Result<wgpu::TextureView> {
    let most = PACK_WIDTH as usize * gpu.limits.max_texture_dimension_2d as usize;
    if texels > most {
        bail!("{label}: {texels} texels needed, and this adapter's textures hold {most}");
    }
    let rows = to_u32(texels.div_ceil(PACK_WIDTH as usize).max(1), label)?;
    gpu.checked(&format!("allocating the {label}"), || {
        gpu.device
            .create_texture(&wgpu::TextureDescriptor {
                label: Some(label),
                size: wgpu::Extent3d {
                    width: PACK_WIDTH,
                    height: rows,
                    depth_or_array_layers: 1,
                },
                mip_level_count: 1,
                sample_count: 1,
                dimension: wgpu::TextureDimension::D2,
                format: wgpu::TextureFormat::Rgba32Float,
                usage: wgpu::TextureUsages::TEXTURE_BINDING | wgpu::TextureUsages::STORAGE_BINDING,
                view_formats: &[],
            })
            .create_view(&Default::default())
    })
}

/// A view of `shape` into `buffer`, which is replaced by a larger one (twice its size, up to 256 MiB) when too
/// small.
fn grown(gpu: &Gpu, buffer: &mut Option<Tensor>, label: &str, shape: &[usize]) -> Result<Tensor> {
    let numel: usize = shape.iter().product();
    let held = buffer.as_ref().map_or(0, |t| t.numel());
    if held < numel {
        let most = (SCRATCH_BYTES.min(gpu.max_binding_bytes()) / 4) as usize;
        *buffer = Some(gpu.zeros(label, &[numel.max((2 * held).min(most))])?);
    }
    buffer.as_ref().expect("allocated above").view(shape)
}

/// `grad_weight (+)= ∂L/∂weight` and `grad_bias (+)= ∂L/∂bias` of the convolution described by `c`, summed over
/// the batch. With `accumulate` the gradients are added to what the buffers hold (micro-batches). CPU adapters
/// reduce each block of gradients in one invocation; GPUs run a tiled GEMM whose depth (the batch's output
/// pixels) is split so the chip is busy, each split writing partial sums (into `partials`) that a second
/// dispatch adds up (both sharing `scratch`).
pub fn conv2d_backward_params(
    gpu: &Gpu,
    c: &ConvBackward,
    grad_weight: &Tensor,
    grad_bias: &Tensor,
    accumulate: bool,
    scratch: &mut ConvScratch,
) -> Result<Vec<Dispatch>> {
    let mut params = c.params(accumulate)?;
    if grad_weight.shape != c.weight.shape || grad_bias.shape != c.bias.shape {
        bail!(
            "conv backward: gradients {:?} and {:?} do not match the weights {:?} and bias {:?}",
            grad_weight.shape,
            grad_bias.shape,
            c.weight.shape,
            c.bias.shape
        );
    }
    let depth = c.shape.cin * c.shape.kernel * c.shape.kernel;
    let pointwise = c.shape.kernel == 1 && c.shape.stride == 1 && c.shape.pad == 0;
    if gpu.barrier_free && pointwise {
        return backward_params_pointwise(gpu, c, params, grad_weight, grad_bias, scratch);
    }
    if gpu.barrier_free {
        // Kernels 3 to 11 wide: an invocation per kernel row (and one for the bias), else per BACK_K depth
        // indices.
        let by_rows = params_row_channels(c.shape.kernel, c.shape.stride);
        let (invocations, per_invocation, channels, kernel) = match by_rows {
            Some(channels) => (
                c.shape.cin * c.shape.kernel + 1,
                1,
                channels as usize,
                params_rows_kernel(gpu, c.shape.kernel as u32, c.shape.stride as u32, channels),
            ),
            None => (
                depth + 1,
                BACK_K,
                BACK_CO,
                conv_kernel(gpu, CONV2D_BACKWARD_PARAMS, Precision::F32, PLAIN),
            ),
        };
        let (gx, gz) = linear_grid(
            gpu,
            to_u32(invocations.div_ceil(64 * per_invocation), "conv weight gradient")?,
        );
        params.groups_x = gx;
        let channel_blocks = to_u32(c.shape.cout.div_ceil(channels), "conv weight gradient rows")?;
        let sums = Dispatch::new(
            gpu,
            gpu.pipeline(&kernel)?,
            kernel.entry,
            &params,
            &[
                c.gy.binding(),
                c.x.binding(),
                grad_weight.binding(),
                grad_bias.binding(),
            ],
            [gx, channel_blocks, gz],
        )?;
        return Ok(vec![sums]);
    }
    // Splitting the depth supplies the parallelism, so the block need not leave many tiles.
    let block = choose_block(gpu, Precision::F32, c.shape.cout, depth + 1, 1);
    let kernel = conv_kernel(gpu, CONV2D_BACKWARD_PARAMS_TILED, Precision::F32, block);
    let row_tiles = c.shape.cout.div_ceil(16 * block.rows as usize);
    let column_tiles = (depth + 1).div_ceil(16 * block.columns as usize);
    let (gx, gz) = linear_grid(gpu, to_u32(column_tiles, "conv weight gradient")?);
    params.groups_x = gx;
    let columns = (params.batch * params.ho * params.wo) as usize;
    let partial_bytes = (c.shape.cout * (depth + 1) * 4) as u64;
    let splits = PARAMS_TARGET_INVOCATIONS
        .div_ceil(256 * row_tiles * column_tiles)
        .min(columns.div_ceil(MIN_SPLIT_COLUMNS))
        .min((SCRATCH_BYTES.min(gpu.max_binding_bytes()) / partial_bytes).max(1) as usize)
        .max(1);
    params.splits = to_u32(splits, "weight gradient splits")?;
    let partials = scratch.partials(gpu, [splits, c.shape.cout, depth + 1])?;
    let window = gpu.upload_pod("conv window", &window_table(&params))?;
    let pixels = gpu.upload_pod("conv pixel origins", &pixel_origins(&params)?)?;
    let sums = Dispatch::new(
        gpu,
        gpu.pipeline(&kernel)?,
        kernel.entry,
        &params,
        &[
            c.gy.binding(),
            c.x.binding(),
            partials.binding(),
            grad_bias.binding(),
            window.as_entire_binding(),
            pixels.as_entire_binding(),
        ],
        [gx, to_u32(row_tiles * splits, "conv weight gradient rows")?, gz],
    )?;
    let reduce = reduce_partials(gpu, params, &partials, grad_weight, grad_bias)?;
    Ok(vec![sums, reduce])
}

/// The second step of a split weight gradient: `grad_weight` and `grad_bias` (+)= the sum of `partials`
/// ([params.splits, Cout, depth + 1]) over the splits.
fn reduce_partials(
    gpu: &Gpu,
    mut params: ConvParams,
    partials: &Tensor,
    grad_weight: &Tensor,
    grad_bias: &Tensor,
) -> Result<Dispatch> {
    let sums = (params.cout * (params.cin * params.kh * params.kw + 1)) as usize;
    let (rx, rz) = linear_grid(gpu, to_u32(sums.div_ceil(256), "conv weight-gradient sum")?);
    params.groups_x = rx;
    Dispatch::new(
        gpu,
        gpu.pipeline(&CONV2D_BACKWARD_PARAMS_REDUCE)?,
        CONV2D_BACKWARD_PARAMS_REDUCE.entry,
        &params,
        &[partials.binding(), grad_weight.binding(), grad_bias.binding()],
        [rx, 1, rz],
    )
}

/// Units (8 lanes) that the CPU adapters' 1×1 weight gradient aims for, splitting the batch's columns until it
/// has them.
const POINTWISE_PARAMS_UNITS: usize = 128;
/// Fewest columns a split of the 1×1 weight gradient reduces.
const POINTWISE_MIN_SPLIT_COLUMNS: usize = 64;

/// The weight and bias gradients of a 1×1 stride-1 unpadded convolution on a CPU adapter (as
/// conv2d_backward_params'): conv2d_backward_params_pointwise's partial sums, then their reduction.
fn backward_params_pointwise(
    gpu: &Gpu,
    c: &ConvBackward,
    mut params: ConvParams,
    grad_weight: &Tensor,
    grad_bias: &Tensor,
    scratch: &mut ConvScratch,
) -> Result<Vec<Dispatch>> {
    let (cin, cout) = (c.shape.cin, c.shape.cout);
    let units_per_split = (cin.div_ceil(4) + 1).div_ceil(8) * cout.div_ceil(POINTWISE_CHANNELS);
    let columns = (params.batch * params.ho * params.wo) as usize;
    let partial_bytes = (cout * (cin + 1) * 4) as u64;
    let splits = POINTWISE_PARAMS_UNITS
        .div_ceil(units_per_split)
        .min(columns.div_ceil(POINTWISE_MIN_SPLIT_COLUMNS))
        .min((SCRATCH_BYTES.min(gpu.max_binding_bytes()) / partial_bytes).max(1) as usize)
        .max(1);
    params.splits = to_u32(splits, "weight gradient splits")?;
    let partials = scratch.partials(gpu, [splits, cout, cin + 1])?;
    let kernel = conv_kernel(gpu, CONV2D_BACKWARD_PARAMS_POINTWISE, Precision::F32, PLAIN);
    let (gx, gz) = linear_grid(
        gpu,
        to_u32((splits * units_per_split).div_ceil(8), "conv weight gradient")?,
    );
    let sums = Dispatch::new(
        gpu,
        gpu.pipeline(&kernel)?,
        kernel.entry,
        &ConvParams { groups_x: gx, ..params },
        &[c.gy.binding(), c.x.binding(), partials.binding(), grad_bias.binding()],
        [gx, 1, gz],
    )?;
    Ok(vec![
        sums,
        reduce_partials(gpu, params, &partials, grad_weight, grad_bias)?,
    ])
}

/// conv.wgsl's `pixel_origin`: for each output pixel, (oy·stride) << 16 | ox·stride.
fn pixel_origins(p: &ConvParams) -> Result<Vec<u32>> {
    if (p.ho.max(p.wo) - 1) * p.stride > 0xffff {
        bail!(
            "conv: output {}×{} at stride {} does not fit the 16-bit pixel origins",
            p.ho,
            p.wo,
            p.stride
        );
    }
    Ok((0..p.ho * p.wo)
        .map(|pix| ((pix / p.wo * p.stride) << 16) | (pix % p.wo * p.stride))
        .collect())
}

/// Checks that the tensors fit `shape` and fills the parameter block (groups_x and accumulate left 0).
fn check(
    shape: ConvShape,
    x: &Tensor,
    weight: &Tensor,
    bias: &Tensor,
    y: &Tensor,
    c_off: usize,
    relu: bool,
) -> Result<ConvParams> {
    let [b, cin, h, w] = dims4(x, "conv input")?;
    let [yb, ctot, ho, wo] = dims4(y, "conv output")?;
    let k = shape.kernel;
    if cin != shape.cin || weight.shape != [shape.cout, shape.cin, k, k] || bias.shape != [shape.cout] {
        bail!(
            "conv: input {:?}, weight {:?} and bias {:?} do not fit {shape:?}",
            x.shape,
            weight.shape,
            bias.shape
        );
    }
    if yb != b || Some(ho) != shape.output_side(h) || Some(wo) != shape.output_side(w) || c_off + shape.cout > ctot {
        bail!(
            "conv: output {:?} does not fit input {:?} and {shape:?} at channel {c_off}",
            y.shape,
            x.shape
        );
    }
    to_u32(b * ctot.max(cin) * (h * w).max(ho * wo), "conv tensor")?;
    if k > 0xffff {
        bail!("conv: kernel size {k} does not fit the 16-bit offsets of the depth table");
    }
    Ok(ConvParams {
        batch: to_u32(b, "batch")?,
        cin: cin as u32,
        h: h as u32,
        w: w as u32,
        cout: shape.cout as u32,
        kh: k as u32,
        kw: k as u32,
        stride: shape.stride as u32,
        pad: shape.pad as u32,
        ho: ho as u32,
        wo: wo as u32,
        c_off: c_off as u32,
        ctot: ctot as u32,
        relu: relu as u32,
        groups_x: 0,
        accumulate: 0,
        splits: 1,
        x_ctot: cin as u32,
        x_coff: 0,
        flip: 0,
        has_bias: 1,
        _pad: [0; 3],
    })
}

pub(crate) fn dims4(t: &Tensor, what: &str) -> Result<[usize; 4]> {
    match t.shape[..] {
        [a, b, c, d] => Ok([a, b, c, d]),
        _ => bail!("{what}: expected a 4-d tensor, got shape {:?}", t.shape),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn block(rows: u32, columns: u32) -> ConvBlock {
        ConvBlock { rows, columns }
    }

    /// The rule of `block_for` on the shapes it meets: a batch of 1,024 64×64 images through VGG-16 and
    /// SqueezeNet, small batches, and adapters with little workgroup memory.
    #[test]
    fn block_for_takes_the_largest_block_that_wastes_little_and_keeps_the_gpu_busy() {
        // Workgroup memory enough for any block (an H100's).
        let big = 1 << 16;
        // VGG-16's 512-channel 4×4 maps at batch 1,024: 4 × 128 = 512 workgroups at 8×8, just enough.
        assert_eq!(block_for(512, 1024 * 16, 512, 4, big), block(8, 8));
        // ... and at batch 512: 256 workgroups at 8×8, too few; 512 at 4×8 (8 × 64 tiles of 64 × 128).
        assert_eq!(block_for(512, 512 * 16, 512, 4, big), block(4, 8));
        // 64 output channels: 128-row tiles would be half empty.
        assert_eq!(block_for(64, 1 << 20, 512, 4, big), block(4, 8));
        // 192 (AlexNet's conv2): two 128-row tiles pad it by a third, three of 64 not at all.
        assert_eq!(block_for(192, 1 << 20, 512, 4, big), block(4, 8));
        // 130 columns pad to 256 at 128 wide, beyond an eighth more than 192 at 64 wide.
        assert_eq!(block_for(1 << 12, 130, 1, 4, big), block(8, 4));
        // A small batch: every larger block leaves too few workgroups.
        assert_eq!(block_for(256, 4 * 169, 512, 4, big), block(4, 4));
        // WebGPU's minimum 16 KiB of workgroup memory holds 8×8 in f32 exactly; 8 KiB holds it only in f16.
        assert_eq!(block_for(1024, 1 << 20, 1, 4, 16384), block(8, 8));
        assert_eq!(block_for(1024, 1 << 20, 1, 4, 8192), block(4, 4));
        assert_eq!(block_for(1024, 1 << 20, 1, 2, 8192), block(8, 8));
    }
}
