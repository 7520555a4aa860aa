// conv.wgsl: 2-D convolution (cross-correlation, as torch.nn.Conv2d) with bias and optional fused ReLU,
// computed as an implicit GEMM (no im2col buffer), and its backward (relu_backward, the conv2d_backward_params
// family; the input gradient is these same forward kernels run as a transposed convolution, see the section at
// the end).
// (kernels::conv runs GPUs' f32 3×3 stride-1 convolutions, forward and input gradient, as winograd.wgsl instead.)
//
// Layout: x [B, Xtot, H, W] of which channels x_coff .. x_coff+Cin are read, weight [Cout, Cin, KH, KW] (OIHW),
//         bias [Cout], all f32, row-major; window [Cin·KH·KW] (vec2<u32>, see its declaration) for the tiled
//         kernels; weight_rows (an rgba32float texture, 4 taps to a texel, written by pack_weight_rows) for
//         conv2d_forward_rows.
//         y [B, Ctot, Ho, Wo]; this kernel writes channels c_off .. c_off+Cout, so the fire module's two expand
//         convolutions write straight into their concatenation.
// Options (ConvParams): relu, has_bias, accumulate (add to what y holds), and flip: read the weights as those
//         of the transposed convolution, [Cin, Cout, KH, KW] flipped in space (the input gradient's).
// GEMM view: rows m = output channel (M = Cout), columns n = (b, oy, ox) (N = B*Ho*Wo), depth k = (ci, ky, kx).
// Dispatch: workgroup (16,16); grid x*z covers ceil(N/TILE_N) column tiles (z only when x would exceed the
//           device's per-dimension limit), y covers ceil(M/TILE_M) row tiles. Each thread accumulates a
//           BLOCK_M x BLOCK_N block (4 or 8 each) of the TILE_M x TILE_N = 16·BLOCK_M x 16·BLOCK_N tile, with
//           16-deep slices of A and B staged in workgroup memory (a slice's values are loaded into registers
//           while the slice before is multiplied: PREFETCH).
// Precision: `mul` is the type of the staged tiles and of the products. It is f32 here; the fast mode
//            (`--precision f16`) compiles this file with `alias mul = f16;` and SLICE_SUMS (kernels::conv), so the
//            tiles take half the workgroup memory and the products run in f16, each 16-deep slice's partial sums
//            then added into f32 accumulators, which keeps the error of a 4,608-deep VGG dot product near f16's
//            rounding of the operands rather than growing with the depth. Where the adapter has cooperative
//            matrices the fast mode runs conv_coop.wgsl instead.

// ---- shared with conv_coop.wgsl and winograd.wgsl (kernels::conv prepends these lines to them) ----
struct ConvParams {
    batch: u32, cin: u32, h: u32, w: u32,
    cout: u32, kh: u32, kw: u32, stride: u32,
    pad: u32, ho: u32, wo: u32, c_off: u32,
    ctot: u32, relu: u32, groups_x: u32, accumulate: u32,
    splits: u32, x_ctot: u32, x_coff: u32, flip: u32,
    has_bias: u32, _pad0: u32, _pad1: u32, _pad2: u32,
}

@group(0) @binding(0) var<uniform> p: ConvParams;
@group(0) @binding(1) var<storage, read> x: array<f32>;
@group(0) @binding(2) var<storage, read> weight: array<f32>;
@group(0) @binding(3) var<storage, read> bias: array<f32>;
@group(0) @binding(4) var<storage, read_write> y: array<f32>;
// Per depth index k = (ci, ky, kx), made by the host for the input's size: (ci·H·W + ky·W + kx, ky << 16 | kx).
// Staging a patch value then costs one load instead of four integer divisions, which GPUs do in software.
@group(0) @binding(5) var<storage, read> window: array<vec2<u32>>;

// Column n = (b, oy, ox) of the implicit GEMM, decoded once per invocation: its image, output pixel, the
// top-left input position of its window and that position's index in x (negative in the padding). A column past
// the end (ok false) reads as zeros.
struct Column {
    ok: bool,
    img: u32,
    pix: u32,
    iy0: i32,
    ix0: i32,
    base: i32,
}

fn column(n: u32) -> Column {
    let hw_out = p.ho * p.wo;
    let columns = p.batch * hw_out;
    let nn = min(n, columns - 1u);
    let img = nn / hw_out;
    let pix = nn % hw_out;
    let iy0 = i32((pix / p.wo) * p.stride) - i32(p.pad);
    let ix0 = i32((pix % p.wo) * p.stride) - i32(p.pad);
    let plane0 = (img * p.x_ctot + p.x_coff) * p.h * p.w;
    return Column(n < columns, img, pix, iy0, ix0, i32(plane0) + iy0 * i32(p.w) + ix0);
}

// B[k, column]: the input under weight k = (ci, ky, kx) of the column's window; 0 in the padding, past the
// depth, or for a column past the end.
fn patch_value(c: Column, k: u32) -> f32 {
    if (!c.ok || k >= p.cin * p.kh * p.kw) {
        return 0.0;
    }
    let t = window[k];
    let iy = c.iy0 + i32(t.y >> 16u);
    let ix = c.ix0 + i32(t.y & 0xffffu);
    if (iy < 0 || iy >= i32(p.h) || ix < 0 || ix >= i32(p.w)) {
        return 0.0;
    }
    return x[u32(c.base + i32(t.x))];
}

// A[m, k]: weight k = (ci, ky, kx) of output channel m; 0 outside the matrix. OIHW rows are contiguous in k.
// With p.flip the stored weights are [p.cin, p.cout, KH, KW]: the OIHW weights of the forward convolution whose
// input gradient this is (its output channels are this GEMM's depth channels, its input channels the rows m),
// read flipped in space.
fn weight_value(m: u32, k: u32) -> f32 {
    let khw = p.kh * p.kw;
    let depth = p.cin * khw;
    if (m >= p.cout || k >= depth) {
        return 0.0;
    }
    if (p.flip == 0u) {
        return weight[m * depth + k];
    }
    return weight[(k / khw) * p.cout * khw + m * khw + (khw - 1u - k % khw)];
}

// y[:, c_off + m] at the column's pixel (+)= acc + bias, then ReLU: the epilogue of every forward variant.
fn store_output(c: Column, m: u32, acc: f32) {
    var v = acc;
    if (p.has_bias != 0u) {
        v += bias[m];
    }
    store_biased(c, m, v);
}

// The bias this lane loads for a block of channels from m0 whose lanes share their loads (see from_lane below):
// that of channel m0 + LANES·q + lane (0 without biases). The barrier-free kernels add the block's biases to
// their sums and store them with store_biased, a bias load per LANES lanes and channels where store_output
// makes one per lane and output.
fn lane_bias(m0: u32, q: u32, lane: u32) -> f32 {
    return select(0.0, bias[min(m0 + LANES * q + lane, p.cout - 1u)], p.has_bias != 0u);
}

// store_output for a sum that has its bias already.
fn store_biased(c: Column, m: u32, sum: f32) {
    let o = (c.img * p.ctot + p.c_off + m) * p.ho * p.wo + c.pix;
    var v = sum;
    if (p.relu != 0u) {
        v = max(v, 0.0);
    }
    if (p.accumulate != 0u) {
        v += y[o];
    }
    y[o] = v;
}

// Loads shared by the lanes of a subgroup, for the barrier-free kernels (CPU adapters). A value that is the same
// for every lane (a weight, when the lanes hold different pixels) is, inside a loop, a gather of one address per
// lane on a SIMD rasteriser such as lavapipe, as costly as the gathers of the inputs. So LANES lanes share such
// loads: lane l loads the values l, l + LANES, ... of a block and from_lane(v, i) is lane i's v. As written here
// each lane loads every value itself (LANES 1); kernels::conv compiles these lines with subgroup operations where
// the adapter has them (Gpu::weight_lanes). Every lane must reach a from_lane call, so those kernels never return
// early. For the same reason every lane of a subgroup walks the same loop: lanes_min and lanes_max make a loop
// range the subgroup's (the smallest start and largest end of its lanes'), each lane masking what is outside its
// own.
const LANES: u32 = 1u;
fn lane_index() -> u32 { return 0u; }
fn from_lane(v: f32, lane: u32) -> f32 { return v; }
fn lanes_min(v: u32) -> u32 { return v; }
fn lanes_max(v: u32) -> u32 { return v; }

// Whether every lane of this invocation's subgroup is at or past `end` of the range it indexes. Such a subgroup
// leaves at once, its lanes together, so that no from_lane misses a lane (on a SIMD rasteriser it is a whole
// vector's work); the lanes of a subgroup that straddles the end compute copies and store nothing.
fn lanes_past(i: u32, end: u32) -> bool {
    return lanes_min(i) >= end;
}
// ---- end of the shared part ----

// Per-thread block of the tiled kernels: BLOCK_M rows × BLOCK_N columns, each 4 or 8 (groups of 4 consecutive
// rows or columns, read from workgroup memory as one vec4). kernels::conv compiles a copy of this file per block
// it uses (these two lines replaced) and picks one per convolution: larger blocks load less workgroup memory per
// product, smaller tiles leave less of a tile idle on small layers and spread small batches over more workgroups.
const BLOCK_M: u32 = 4u;
const BLOCK_N: u32 = 4u;
const TILE_M: u32 = 16u * BLOCK_M;
const TILE_N: u32 = 16u * BLOCK_N;
const TILE_K: u32 = 16u;
const GROUPS_M: u32 = BLOCK_M / 4u;
const GROUPS_N: u32 = BLOCK_N / 4u;

alias mul = f32;
// Whether each slice's products are summed in `mul` and then added to the f32 accumulators (the fast mode, see
// the header); in f32 the accumulators take the products directly.
const SLICE_SUMS: bool = false;
// Whether the tiled kernels (conv2d_forward, conv2d_backward_params_tiled) load each slice's values during the
// slice before (see conv2d_forward); kernels::conv compiles a copy without it for `bench --no-prefetch`.
const PREFETCH: bool = true;

// Staged slices, [TILE_K][TILE_M / 4] and [TILE_K][TILE_N / 4]: row m of slice row kk is a_tile[kk·TILE_M/4 +
// m/4][m % 4].
var<workgroup> a_tile: array<vec4<mul>, TILE_K * TILE_M / 4u>;
var<workgroup> b_tile: array<vec4<mul>, TILE_K * TILE_N / 4u>;

// A thread's block: rows 4·(16g + lid.y) + r as block[4g + r], its columns 4·(16h + lid.x) + c as [h][c].
alias Block = array<array<vec4<f32>, GROUPS_N>, BLOCK_M>;
alias SliceBlock = array<array<vec4<mul>, GROUPS_N>, BLOCK_M>;

fn tile_row(lid: vec3<u32>, i: u32) -> u32 {
    return 4u * (16u * (i / 4u) + lid.y) + i % 4u;
}

fn tile_column(lid: vec3<u32>, h: u32, c: u32) -> u32 {
    return 4u * (16u * h + lid.x) + c;
}

fn stage_a(m: u32, kk: u32, v: f32) {
    a_tile[kk * (TILE_M / 4u) + m / 4u][m % 4u] = mul(v);
}

fn stage_b(kk: u32, n: u32, v: f32) {
    b_tile[kk * (TILE_N / 4u) + n / 4u][n % 4u] = mul(v);
}

// part += the product of the staged slices a_tile · b_tile for this thread's block.
fn multiply_slice(lid: vec3<u32>, part: ptr<function, SliceBlock>) {
    for (var kk = 0u; kk < TILE_K; kk++) {
        var b: array<vec4<mul>, GROUPS_N>;
        for (var h = 0u; h < GROUPS_N; h++) {
            b[h] = b_tile[kk * (TILE_N / 4u) + 16u * h + lid.x];
        }
        for (var g = 0u; g < GROUPS_M; g++) {
            let a = a_tile[kk * (TILE_M / 4u) + 16u * g + lid.y];
            for (var r = 0u; r < 4u; r++) {
                for (var h = 0u; h < GROUPS_N; h++) {
                    (*part)[4u * g + r][h] = fma(vec4<mul>(a[r]), b[h], (*part)[4u * g + r][h]);
                }
            }
        }
    }
}

// acc += part; part = 0. With SLICE_SUMS after every slice, else once after the last (acc stays 0 until then, so
// in f32 the products go straight into `part`, which then is the accumulator).
fn flush_slices(acc: ptr<function, Block>, part: ptr<function, SliceBlock>) {
    for (var i = 0u; i < BLOCK_M; i++) {
        for (var h = 0u; h < GROUPS_N; h++) {
            (*acc)[i][h] += vec4<f32>((*part)[i][h]);
            (*part)[i][h] = vec4<mul>(0.0);
        }
    }
}

// The values of slice k0 that this thread stages for conv2d_forward: BLOCK_M consecutive k from a_k0 of weight
// row m, and rows b_row0 + (256 / TILE_N)·j of the B column `col`.
fn load_forward_slice(
    k0: u32,
    m: u32,
    a_k0: u32,
    col: Column,
    b_row0: u32,
    a: ptr<function, array<f32, BLOCK_M>>,
    b: ptr<function, array<f32, BLOCK_N>>,
) {
    for (var j = 0u; j < BLOCK_M; j++) {
        (*a)[j] = weight_value(m, k0 + a_k0 + j);
    }
    for (var j = 0u; j < BLOCK_N; j++) {
        (*b)[j] = patch_value(col, k0 + b_row0 + (256u / TILE_N) * j);
    }
}

@compute @workgroup_size(16, 16, 1)
fn conv2d_forward(
    @builtin(workgroup_id) wid: vec3<u32>,
    @builtin(local_invocation_id) lid: vec3<u32>,
    @builtin(local_invocation_index) li: u32,
) {
    let n0 = (wid.x + wid.z * p.groups_x) * TILE_N;
    let m0 = wid.y * TILE_M;
    let depth = p.cin * p.kh * p.kw;

    // Each thread stages BLOCK_N values of one B column, which never changes across the k loop: decode it once.
    let b_col = li % TILE_N;
    let col = column(n0 + b_col);
    let b_row0 = li / TILE_N; // rows b_row0 + (256 / TILE_N)·j

    // ... and BLOCK_M consecutive k of one A row (weights), so neighbouring threads read neighbouring k,
    // contiguous in OIHW.
    let a_row = li / (TILE_K / BLOCK_M);
    let a_k0 = (li % (TILE_K / BLOCK_M)) * BLOCK_M;

    // A slice's values pass through registers on their way to workgroup memory. With PREFETCH the next slice's
    // are loaded between the barrier that publishes this slice and its products, so their memory latency hides
    // behind the arithmetic instead of stalling the staging.
    var a_next: array<f32, BLOCK_M>;
    var b_next: array<f32, BLOCK_N>;
    if (PREFETCH) {
        load_forward_slice(0u, m0 + a_row, a_k0, col, b_row0, &a_next, &b_next);
    }
    var acc: Block;
    var part: SliceBlock;
    for (var k0 = 0u; k0 < depth; k0 += TILE_K) {
        if (!PREFETCH) {
            load_forward_slice(k0, m0 + a_row, a_k0, col, b_row0, &a_next, &b_next);
        }
        for (var j = 0u; j < BLOCK_M; j++) {
            stage_a(a_row, a_k0 + j, a_next[j]);
        }
        for (var j = 0u; j < BLOCK_N; j++) {
            stage_b(b_row0 + (256u / TILE_N) * j, b_col, b_next[j]);
        }
        workgroupBarrier();
        if (PREFETCH && k0 + TILE_K < depth) {
            load_forward_slice(k0 + TILE_K, m0 + a_row, a_k0, col, b_row0, &a_next, &b_next);
        }
        multiply_slice(lid, &part);
        workgroupBarrier();
        if (SLICE_SUMS) {
            flush_slices(&acc, &part);
        }
    }
    flush_slices(&acc, &part);

    for (var h = 0u; h < GROUPS_N; h++) {
        for (var c4 = 0u; c4 < 4u; c4++) {
            let c = column(n0 + tile_column(lid, h, c4));
            if (!c.ok) {
                continue;
            }
            for (var i = 0u; i < BLOCK_M; i++) {
                let m = m0 + tile_row(lid, i);
                if (m < p.cout) {
                    store_output(c, m, acc[i][h][c4]);
                }
            }
        }
    }
}

// conv2d_forward_direct: the same convolution without workgroup memory or barriers, for adapters where those
// are expensive (CPU rasterisers such as lavapipe run a workgroup's invocations as SIMD loops, and a barrier
// splits every loop). Each invocation accumulates DIRECT_M channels x DIRECT_N columns straight from memory,
// which the CPU's caches serve. The inputs differ between lanes (gathers); the weights are the workgroup's own,
// loaded once per LANES lanes (see from_lane), so the block is tall and narrow.
// Dispatch: workgroup 64; grid x*z covers ceil(N / DIRECT_N / 64) column groups, y covers ceil(Cout / DIRECT_M).
const DIRECT_M: u32 = 8u;
const DIRECT_N: u32 = 2u;

@compute @workgroup_size(64, 1, 1)
fn conv2d_forward_direct(@builtin(workgroup_id) wid: vec3<u32>, @builtin(local_invocation_index) li: u32) {
    let colg = (wid.x + wid.z * p.groups_x) * 64u + li;
    let m0 = wid.y * DIRECT_M;
    let khw = p.kh * p.kw;
    let depth = p.cin * khw;
    let hw_out = p.ho * p.wo;
    let columns = p.batch * hw_out;
    // Columns past the end compute a copy of the last one (every lane must reach from_lane) and store nothing.
    var x_img: array<u32, DIRECT_N>;
    var iy0: array<i32, DIRECT_N>;
    var ix0: array<i32, DIRECT_N>;
    for (var j = 0u; j < DIRECT_N; j++) {
        let nn = min(colg * DIRECT_N + j, columns - 1u);
        let pix = nn % hw_out;
        x_img[j] = ((nn / hw_out) * p.x_ctot + p.x_coff) * p.h * p.w;
        iy0[j] = i32((pix / p.wo) * p.stride) - i32(p.pad);
        ix0[j] = i32((pix % p.wo) * p.stride) - i32(p.pad);
    }
    // Weight (m, ci, tap) is at m·m_stride + ci·ci_stride + tap, the tap flipped with p.flip (see weight_value).
    // This lane loads rows m0 + LANES·q + lane of the block.
    let flip = p.flip != 0u;
    let m_stride = select(depth, khw, flip);
    let ci_stride = select(khw, p.cout * khw, flip);
    let lane = lane_index() % LANES;
    var mrow: array<u32, DIRECT_M / LANES>;
    for (var q = 0u; q < DIRECT_M / LANES; q++) {
        mrow[q] = min(m0 + LANES * q + lane, p.cout - 1u) * m_stride;
    }
    var acc: array<array<f32, DIRECT_N>, DIRECT_M>;
    for (var i = 0u; i < DIRECT_M; i++) {
        for (var j = 0u; j < DIRECT_N; j++) {
            acc[i][j] = 0.0;
        }
    }
    // One flat loop over the depth, (ci, ky, kx) stepped by selects: a SIMD rasteriser pays for entering and
    // leaving every loop (its lane masks), which 1×1 convolutions would pay twice per step in nested tap loops.
    var ci = 0u;
    var ky = 0u;
    var kx = 0u;
    var plane = 0u;
    for (var step = 0u; step < depth; step++) {
        let tap = ky * p.kw + kx;
        let k = ci * ci_stride + select(tap, khw - 1u - tap, flip);
        var b: array<f32, DIRECT_N>;
        for (var j = 0u; j < DIRECT_N; j++) {
            let iy = iy0[j] + i32(ky);
            let ix = ix0[j] + i32(kx);
            b[j] = 0.0;
            if (iy >= 0 && iy < i32(p.h) && ix >= 0 && ix < i32(p.w)) {
                b[j] = x[x_img[j] + plane + u32(iy) * p.w + u32(ix)];
            }
        }
        var mine: array<f32, DIRECT_M / LANES>;
        for (var q = 0u; q < DIRECT_M / LANES; q++) {
            mine[q] = weight[mrow[q] + k];
        }
        for (var i = 0u; i < DIRECT_M; i++) {
            let a = from_lane(mine[i / LANES], i % LANES);
            for (var j = 0u; j < DIRECT_N; j++) {
                acc[i][j] = fma(a, b[j], acc[i][j]);
            }
        }
        let row_done = kx + 1u == p.kw;
        let plane_done = row_done && ky + 1u == p.kh;
        kx = select(kx + 1u, 0u, row_done);
        ky = select(ky + u32(row_done), 0u, plane_done);
        ci += u32(plane_done);
        plane += select(0u, p.h * p.w, plane_done);
    }
    for (var j = 0u; j < DIRECT_N; j++) {
        let c = column(colg * DIRECT_N + j);
        if (!c.ok) {
            continue;
        }
        for (var i = 0u; i < DIRECT_M; i++) {
            let m = m0 + i;
            if (m < p.cout) {
                store_output(c, m, acc[i][j]);
            }
        }
    }
}

// conv2d_forward_pointwise: conv2d_forward_direct for 1×1 convolutions of stride 1 without padding (also their
// input gradients, with p.flip), each invocation PW_CO channels × 4 consecutive columns n = (b, pixel) of the
// batch — across rows and images, so that small maps leave no lane idle —, the columns' sums a vec4. The inputs
// are always inside the map: per input channel 4 loads without bounds checks, the weights loaded once per LANES
// lanes.
// Dispatch: workgroup 64; grid x*z covers ceil(ceil(B·H·W / 4) / 64), y covers ceil(Cout / PW_CO).
const PW_CO: u32 = 16u;
const PW_LOADS: u32 = (PW_CO + LANES - 1u) / LANES;

@compute @workgroup_size(64, 1, 1)
fn conv2d_forward_pointwise(@builtin(workgroup_id) wid: vec3<u32>, @builtin(local_invocation_index) li: u32) {
    let hw = p.h * p.w;
    let columns = p.batch * hw;
    let quads = (columns + 3u) / 4u;
    // Quads past the end compute a copy of the last one (every lane must reach from_lane) and store nothing.
    let quad = (wid.x + wid.z * p.groups_x) * 64u + li;
    if (lanes_past(quad, quads)) {
        return;
    }
    let qq = min(quad, quads - 1u);
    let m0 = wid.y * PW_CO;
    var src: array<u32, 4>;
    for (var j = 0u; j < 4u; j++) {
        let n = min(4u * qq + j, columns - 1u);
        src[j] = ((n / hw) * p.x_ctot + p.x_coff) * hw + n % hw;
    }
    // Weight (m, ci) is at m·m_stride + ci·ci_stride ([Cin, Cout] with p.flip, see weight_value).
    let flip = p.flip != 0u;
    let m_stride = select(p.cin, 1u, flip);
    let ci_stride = select(1u, p.cout, flip);
    let lane = lane_index() % LANES;
    var mrow: array<u32, PW_LOADS>;
    for (var q = 0u; q < PW_LOADS; q++) {
        mrow[q] = min(m0 + LANES * q + lane, p.cout - 1u) * m_stride;
    }
    var acc: array<vec4<f32>, PW_CO>;
    for (var i = 0u; i < PW_CO; i++) {
        acc[i] = vec4<f32>(0.0);
    }
    var plane = 0u;
    var k = 0u;
    for (var ci = 0u; ci < p.cin; ci++) {
        let v = vec4<f32>(x[src[0] + plane], x[src[1] + plane], x[src[2] + plane], x[src[3] + plane]);
        var mine: array<f32, PW_LOADS>;
        for (var q = 0u; q < PW_LOADS; q++) {
            mine[q] = weight[mrow[q] + k];
        }
        for (var i = 0u; i < PW_CO; i++) {
            acc[i] = fma(vec4<f32>(from_lane(mine[i / LANES], i % LANES)), v, acc[i]);
        }
        plane += hw;
        k += ci_stride;
    }
    var biases: array<f32, PW_LOADS>;
    for (var q = 0u; q < PW_LOADS; q++) {
        biases[q] = lane_bias(m0, q, lane);
    }
    for (var i = 0u; i < PW_CO; i++) {
        acc[i] += vec4<f32>(from_lane(biases[i / LANES], i % LANES));
    }
    if (quad >= quads) {
        return;
    }
    for (var j = 0u; j < 4u; j++) {
        let n = 4u * quad + j;
        if (n >= columns) {
            continue;
        }
        let c = Column(true, n / hw, n % hw, 0, 0, 0);
        for (var i = 0u; i < PW_CO; i++) {
            if (m0 + i < p.cout) {
                store_biased(c, m0 + i, acc[i][j]);
            }
        }
    }
}

// pack_input_rows: x_rows from the convolution's input (bound as vec4s; tensors are allocated in whole vec4s).
// Dispatch: workgroup 64, one invocation per texel, linear index x + z*groups_x.
@group(0) @binding(2) var<storage, read> pack_src: array<vec4<f32>>;

@compute @workgroup_size(64, 1, 1)
fn pack_input_rows(@builtin(workgroup_id) wid: vec3<u32>, @builtin(local_invocation_index) li: u32) {
    let t = (wid.x + wid.z * p.groups_x) * 64u + li;
    if (t >= arrayLength(&pack_src)) {
        return;
    }
    textureStore(packed_rows, packed_texel(t), pack_src[t]);
}

// conv2d_forward_rows: conv2d_forward_direct for convolutions of stride FWD_STRIDE whose kernels are FWD_TAPS
// wide (also the input gradients of stride-1 ones, with p.flip), each invocation FWD_CO channels × FWD_PIX
// neighbouring pixels of one output row, the pixels a vector: a vec4, or a vec3 where that takes as many
// invocations (rows 3 wide: a SIMD rasteriser computes each component apart, so a pixel past the row's end costs
// as much as one inside it). Along a kernel row (ci, ky) the pixels' windows span (FWD_PIX − 1)·FWD_STRIDE +
// FWD_TAPS inputs (they overlap for stride < taps), loaded once per row into registers as whole vec4s (a SIMD
// rasteriser such as lavapipe pays per load instruction and lane, whatever the width: loads, not arithmetic,
// bound these kernels), and the row's weights come from weight_rows, a texel fetch per 4 taps and channel. The
// sums are vectors so that the loops over channels stay small enough for the shader compiler to unroll:
// unrolled, every array index is a constant and the arrays live in registers. Pixels past the row's end are
// computed from clamped reads and not stored. The image varies fastest between invocations, so a
// subgroup's lanes share their output row and skip together the kernel rows that fall in the padding (on 3×3
// maps with a 3×3 kernel, 2 of 9 (oy, ky) rows).
// Dispatch: workgroup 64; grid x*z covers ceil(B·Ho·ceil(Wo / FWD_PIX) / 64), y covers ceil(Cout / FWD_CO).
const FWD_TAPS: u32 = 3u;
const FWD_STRIDE: u32 = 1u;
const FWD_CO: u32 = 8u;
const FWD_PIX: u32 = 4u;
alias FwdPixels = vec4<f32>;
const FWD_LOADS: u32 = (FWD_CO + LANES - 1u) / LANES;
// Inputs under a kernel row of the FWD_PIX pixels, and the whole vec4s that hold them wherever they start.
const FWD_SPAN: u32 = (FWD_PIX - 1u) * FWD_STRIDE + FWD_TAPS;
const FWD_VEC4S: u32 = (FWD_SPAN + 3u + 3u) / 4u;
// Texels of packed weights per kernel row (4 taps each).
const FWD_QUADS: u32 = (FWD_TAPS + 3u) / 4u;
// The convolution's input as pack_input_rows copies it: texel t holds x[4t .. 4t + 3], at packed_texel(t). Read
// through a texture for the reason the weights are (below): a fetch is one vector gather on lavapipe, where four
// lanes' storage loads are a loop over the lanes with a bounds test per component.
@group(0) @binding(1) var x_rows: texture_2d<f32>;

// The weights as conv2d_forward_rows reads them, written by pack_weight_rows: texel ((m·Cin + ci)·KH + ky)·quads +
// quad (quads = ceil(KW / 4)) holds taps 4·quad .. 4·quad + 3 of kernel row (m, ci, ky), flipped as weight_value
// flips them (0 past the row's end), at (texel % PACK_WIDTH, texel / PACK_WIDTH). A texture because on lavapipe a
// storage-buffer load whose address differs between lanes is a loop over the lanes (a bounds check, a mask test
// and a scalar load each), where a texel fetch is one vector gather, and brings 4 taps (BENCHMARKS.md).
const PACK_WIDTH: u32 = 4096u;
@group(0) @binding(2) var weight_rows: texture_2d<f32>;
@group(0) @binding(1) var packed_rows: texture_storage_2d<rgba32float, write>;

fn packed_texel(t: u32) -> vec2<u32> {
    return vec2<u32>(t % PACK_WIDTH, t / PACK_WIDTH);
}

// pack_weight_rows: weight_rows from the convolution's weights (p.cout, p.cin, p.kh, p.kw and p.flip as the
// convolution's). One invocation per kernel (m, ci), writing its KH·quads texels: the index arithmetic (integer
// divisions, which a SIMD rasteriser runs lane by lane) is paid once per kernel rather than per texel.
// Dispatch: workgroup 64, one invocation per kernel, linear index x + z*groups_x.
@compute @workgroup_size(64, 1, 1)
fn pack_weight_rows(@builtin(workgroup_id) wid: vec3<u32>, @builtin(local_invocation_index) li: u32) {
    let kernel = (wid.x + wid.z * p.groups_x) * 64u + li;
    if (kernel >= p.cout * p.cin) {
        return;
    }
    let quads = (p.kw + 3u) / 4u;
    let ci = kernel % p.cin;
    let m = kernel / p.cin;
    let khw = p.kh * p.kw;
    let flip = p.flip != 0u;
    let base = m * select(p.cin * khw, khw, flip) + ci * select(khw, p.cout * khw, flip);
    var t = kernel * p.kh * quads;
    for (var ky = 0u; ky < p.kh; ky++) {
        for (var quad = 0u; quad < quads; quad++) {
            var v = vec4<f32>(0.0);
            for (var j = 0u; j < 4u; j++) {
                let kx = 4u * quad + j;
                let tap = ky * p.kw + kx;
                if (kx < p.kw) {
                    v[j] = weight[base + select(tap, khw - 1u - tap, flip)];
                }
            }
            textureStore(packed_rows, packed_texel(t), v);
            t += 1u;
        }
    }
}

@compute @workgroup_size(64, 1, 1)
fn conv2d_forward_rows(@builtin(workgroup_id) wid: vec3<u32>, @builtin(local_invocation_index) li: u32) {
    let segs = (p.wo + FWD_PIX - 1u) / FWD_PIX;
    let groups = p.batch * p.ho * segs;
    // Groups past the end compute a copy of the last one (every lane must reach from_lane) and store nothing.
    let group = (wid.x + wid.z * p.groups_x) * 64u + li;
    if (lanes_past(group, groups)) {
        return;
    }
    let gg = min(group, groups - 1u);
    let img = gg % p.batch;
    let oy = gg / (p.batch * segs);
    let ox0 = ((gg / p.batch) % segs) * FWD_PIX;
    let m0 = wid.y * FWD_CO;
    // The kernel rows whose inputs iy = oy·stride + ky − pad lie inside the map, widened to the subgroup's.
    let top = i32(oy * FWD_STRIDE) - i32(p.pad);
    let ky0 = lanes_min(u32(clamp(-top, 0, i32(p.kh))));
    let ky1 = max(lanes_max(u32(clamp(i32(p.h) - top, 0, i32(p.kh)))), ky0);
    let x_img = (img * p.x_ctot + p.x_coff) * p.h * p.w;
    // This lane loads the weights of channels m0 + LANES·q + lane: kernel row (ci, ky) of channel m is texels
    // (m·Cin·KH + ci·KH + ky)·FWD_QUADS + quad of weight_rows.
    let lane = lane_index() % LANES;
    var mrow: array<u32, FWD_LOADS>;
    for (var q = 0u; q < FWD_LOADS; q++) {
        mrow[q] = min(m0 + LANES * q + lane, p.cout - 1u) * p.cin * p.kh * FWD_QUADS;
    }
    // Which of the window's inputs lie inside the row (the rest are padding): the same for every kernel row.
    var inside: array<bool, FWD_SPAN>;
    for (var u = 0u; u < FWD_SPAN; u++) {
        let ix = i32(ox0 * FWD_STRIDE + u) - i32(p.pad);
        inside[u] = ix >= 0 && ix < i32(p.w);
    }
    var acc: array<FwdPixels, FWD_CO>;
    for (var i = 0u; i < FWD_CO; i++) {
        acc[i] = FwdPixels(0.0);
    }
    // One flat loop over the kernel rows (ci, ky), stepped by selects (see conv2d_forward_direct).
    var ci = 0u;
    var ky = ky0;
    var plane = x_img;
    for (var step = 0u; step < p.cin * (ky1 - ky0); step++) {
        let iy = i32(oy * FWD_STRIDE + ky) - i32(p.pad);
        let row_inside = iy >= 0 && iy < i32(p.h);
        // flat[j]: the value at the vec4-aligned index 4·first + j; the window starts `shift` into it.
        let start = i32(plane + u32(clamp(iy, 0, i32(p.h) - 1)) * p.w + ox0 * FWD_STRIDE) - i32(p.pad);
        let first = start >> 2u;
        let shift = u32(start & 3);
        var flat: array<f32, 4u * FWD_VEC4S>;
        for (var b = 0u; b < FWD_VEC4S; b++) {
            let v = textureLoad(x_rows, packed_texel(u32(max(first + i32(b), 0))), 0);
            flat[4u * b] = v.x;
            flat[4u * b + 1u] = v.y;
            flat[4u * b + 2u] = v.z;
            flat[4u * b + 3u] = v.w;
        }
        var win: array<f32, FWD_SPAN>;
        for (var u = 0u; u < FWD_SPAN; u++) {
            var v = flat[u];
            v = select(v, flat[u + 1u], shift == 1u);
            v = select(v, flat[u + 2u], shift == 2u);
            v = select(v, flat[u + 3u], shift == 3u);
            win[u] = select(0.0, v, row_inside && inside[u]);
        }
        // The kernel row's taps, slid along as `win` is.
        var taps: array<array<f32, 4u * FWD_QUADS>, FWD_LOADS>;
        let row = (ci * p.kh + ky) * FWD_QUADS;
        for (var q = 0u; q < FWD_LOADS; q++) {
            for (var u = 0u; u < FWD_QUADS; u++) {
                let v = textureLoad(weight_rows, packed_texel(mrow[q] + row + u), 0);
                taps[q][4u * u] = v.x;
                taps[q][4u * u + 1u] = v.y;
                taps[q][4u * u + 2u] = v.z;
                taps[q][4u * u + 3u] = v.w;
            }
        }
        for (var t = 0u; t < FWD_TAPS; t++) {
            var mine: array<f32, FWD_LOADS>;
            for (var q = 0u; q < FWD_LOADS; q++) {
                mine[q] = taps[q][0];
                for (var u = 0u; u + 1u < 4u * FWD_QUADS; u++) {
                    taps[q][u] = taps[q][u + 1u];
                }
            }
            var pixels: FwdPixels;
            for (var j = 0u; j < FWD_PIX; j++) {
                pixels[j] = win[j * FWD_STRIDE];
            }
            for (var i = 0u; i < FWD_CO; i++) {
                acc[i] = fma(FwdPixels(from_lane(mine[i / LANES], i % LANES)), pixels, acc[i]);
            }
            // Slid by one for the next tap, so that every index into `win` is a constant: the tap loop may stay
            // a loop, and an array indexed by its counter would live in memory.
            for (var u = 0u; u + 1u < FWD_SPAN; u++) {
                win[u] = win[u + 1u];
            }
        }
        let plane_done = ky + 1u == ky1;
        ky = select(ky + 1u, ky0, plane_done);
        ci += u32(plane_done);
        plane += select(0u, p.h * p.w, plane_done);
    }
    var biases: array<f32, FWD_LOADS>;
    for (var q = 0u; q < FWD_LOADS; q++) {
        biases[q] = lane_bias(m0, q, lane);
    }
    for (var i = 0u; i < FWD_CO; i++) {
        acc[i] += FwdPixels(from_lane(biases[i / LANES], i % LANES));
    }
    if (group >= groups) {
        return;
    }
    for (var j = 0u; j < FWD_PIX; j++) {
        let ox = ox0 + j;
        if (ox >= p.wo) {
            continue;
        }
        let c = Column(true, img, oy * p.wo + ox, 0, 0, 0);
        for (var i = 0u; i < FWD_CO; i++) {
            let m = m0 + i;
            if (m < p.cout) {
                store_biased(c, m, acc[i][j]);
            }
        }
    }
}

// ---- Backward ----------------------------------------------------------------------------------------------
// The gradients of y[:, c_off..c_off+Cout] = relu(conv(x, weight) + bias) given gy, the gradient of the whole
// [B, Ctot, Ho, Wo] output; only the conv's channel slice is read (the fire module's concat backward).
// relu_backward first masks gy in place by the forward's output (PyTorch's threshold_backward), once for every
// convolution that reads it (both expands of a fire module share one map). Then:
// - the input gradient is the transposed convolution of the masked gy: for stride 1, conv2d_forward (or
//   _direct, _rows, _pointwise) with x = gy's channel slice (x_ctot = Ctot, x_coff = c_off), p.flip, padding
//   KH-1-pad, no bias, output grad_x [B, Cin, H, W] (kernels::conv::conv2d_backward_input), so it is tiled on
//   GPUs as the forward is (and on a GPU a 3×3 one runs as winograd.wgsl's Winograd transform, with the flipped
//   filters, as its forward does);
// - the weight and bias gradients are conv2d_backward_params (or _rows and _pointwise, on CPU adapters; _tiled on
//   GPUs) below.
// p.accumulate: add to the gradient buffer instead of overwriting it (a tap feeds both the distance and the next
// layer; the squeeze map feeds both expands; micro-batches sum their weight gradients).

// relu_backward: gy[i] = 0 where y[i] ≤ 0, over the whole [B, Ctot, Ho, Wo] map (p.batch, p.ctot, p.ho, p.wo),
// four values per invocation as vec4s (tensors are allocated in whole vec4s; values past the map keep theirs).
// Dispatch: workgroup 256, one invocation per vec4; linear index x + z*groups_x.
@group(0) @binding(1) var<storage, read> relu_y: array<vec4<f32>>;
@group(0) @binding(2) var<storage, read_write> relu_gy: array<vec4<f32>>;

@compute @workgroup_size(256, 1, 1)
fn relu_backward(@builtin(workgroup_id) wid: vec3<u32>, @builtin(local_invocation_index) li: u32) {
    let i = (wid.x + wid.z * p.groups_x) * 256u + li;
    let n = p.batch * p.ctot * p.ho * p.wo;
    if (4u * i >= n) {
        return;
    }
    let in_map = vec4<u32>(4u * i) + vec4<u32>(0u, 1u, 2u, 3u) < vec4<u32>(n);
    relu_gy[i] = select(relu_gy[i], vec4<f32>(0.0), in_map & !(relu_y[i] > vec4<f32>(0.0)));
}

@group(0) @binding(1) var<storage, read> gy: array<f32>;
@group(0) @binding(2) var<storage, read> x_fwd: array<f32>;
@group(0) @binding(3) var<storage, read_write> grad_w: array<f32>;
@group(0) @binding(4) var<storage, read_write> grad_b: array<f32>;

// conv2d_backward_params: grad_w[co, ci, ky, kx] = sum over (b, oy, ox) of gy[b, c_off+co, oy, ox] *
// x[b, ci, oy*stride - pad + ky, ox*stride - pad + kx], and grad_b[co] = sum of gy (the column k = depth,
// whose "input" is 1). Each invocation reduces over the whole batch for a block of BACK_CO output channels x
// BACK_K consecutive k = (ci, ky, kx), so every gy value serves BACK_K products and every x load BACK_CO; the gy
// values are the same for the workgroup's lanes, which share their loads (from_lane), and the x differ. Barrier-
// free, for CPU adapters, whose few cores one invocation per block already keeps busy; GPUs run
// conv2d_backward_params_tiled.
// Dispatch: workgroup 64; grid x*z covers ceil((depth + 1) / (64 * BACK_K)), y covers ceil(Cout / BACK_CO).
const BACK_CO: u32 = 8u;
const BACK_K: u32 = 2u;

@compute @workgroup_size(64, 1, 1)
fn conv2d_backward_params(@builtin(workgroup_id) wid: vec3<u32>, @builtin(local_invocation_index) li: u32) {
    // Blocks past the bias column compute and store nothing (but reach from_lane, as every lane must).
    let k0 = ((wid.x + wid.z * p.groups_x) * 64u + li) * BACK_K;
    let khw = p.kh * p.kw;
    let depth = p.cin * khw;
    let co0 = wid.y * BACK_CO;
    let hw_out = p.ho * p.wo;
    // Per k of the block: its input plane and kernel offset, and whether it is a weight, the bias or past the end.
    var plane: array<u32, BACK_K>;
    var dy: array<i32, BACK_K>;
    var dx: array<i32, BACK_K>;
    var is_weight: array<bool, BACK_K>;
    var is_bias: array<bool, BACK_K>;
    for (var j = 0u; j < BACK_K; j++) {
        let k = min(k0 + j, depth - 1u);
        plane[j] = (k / khw) * p.h * p.w;
        dy[j] = i32((k % khw) / p.kw) - i32(p.pad);
        dx[j] = i32(k % p.kw) - i32(p.pad);
        is_weight[j] = k0 + j < depth;
        is_bias[j] = k0 + j == depth;
    }
    // This lane loads the gy of channels co0 + LANES·q + lane.
    let lane = lane_index() % LANES;
    var gbase: array<u32, BACK_CO / LANES>;
    for (var q = 0u; q < BACK_CO / LANES; q++) {
        gbase[q] = (p.c_off + min(co0 + LANES * q + lane, p.cout - 1u)) * hw_out;
    }
    var acc: array<array<f32, BACK_K>, BACK_CO>;
    for (var i = 0u; i < BACK_CO; i++) {
        for (var j = 0u; j < BACK_K; j++) {
            acc[i][j] = 0.0;
        }
    }
    for (var b = 0u; b < p.batch; b++) {
        let x_img = b * p.cin * p.h * p.w;
        let g_img = b * p.ctot * hw_out;
        for (var oy = 0u; oy < p.ho; oy++) {
            for (var ox = 0u; ox < p.wo; ox++) {
                let out_pix = g_img + oy * p.wo + ox;
                var mine: array<f32, BACK_CO / LANES>;
                for (var q = 0u; q < BACK_CO / LANES; q++) {
                    mine[q] = gy[gbase[q] + out_pix];
                }
                var g: array<f32, BACK_CO>;
                for (var i = 0u; i < BACK_CO; i++) {
                    g[i] = from_lane(mine[i / LANES], i % LANES);
                }
                for (var j = 0u; j < BACK_K; j++) {
                    let iy = i32(oy * p.stride) + dy[j];
                    let ix = i32(ox * p.stride) + dx[j];
                    var xv = select(0.0, 1.0, is_bias[j]);
                    if (is_weight[j] && iy >= 0 && iy < i32(p.h) && ix >= 0 && ix < i32(p.w)) {
                        xv = x_fwd[x_img + plane[j] + u32(iy) * p.w + u32(ix)];
                    }
                    for (var i = 0u; i < BACK_CO; i++) {
                        acc[i][j] = fma(g[i], xv, acc[i][j]);
                    }
                }
            }
        }
    }
    for (var i = 0u; i < BACK_CO; i++) {
        let co = co0 + i;
        if (co >= p.cout) {
            continue;
        }
        for (var j = 0u; j < BACK_K; j++) {
            var v = acc[i][j];
            if (is_weight[j]) {
                let o = co * depth + k0 + j;
                if (p.accumulate != 0u) {
                    v += grad_w[o];
                }
                grad_w[o] = v;
            } else if (is_bias[j]) {
                if (p.accumulate != 0u) {
                    v += grad_b[co];
                }
                grad_b[co] = v;
            }
        }
    }
}

// conv2d_backward_params_rows: the same sums for convolutions of stride ROW_STRIDE whose kernels are ROW_TAPS
// wide, on CPU adapters, with an invocation per kernel row (ci, ky) — its ROW_TAPS weights kx — for ROW_CO output
// channels. Walking an output row left to right, the inputs under a row of taps slide along by the stride per
// pixel, so they stay in registers and each pixel loads min(stride, ROW_TAPS) new input values instead of
// ROW_TAPS (the loads, not the arithmetic, bound the barrier-free kernels). Invocation Cin·KH is the bias, whose
// inputs are all 1. gy is shared between lanes as in conv2d_backward_params. Invocation r takes kernel row
// ky = r / Cin of input channel r % Cin, so that a subgroup's lanes share ky and skip together the output rows
// whose inputs fall in the padding.
// Dispatch: workgroup 64; grid x*z covers ceil((Cin·KH + 1) / 64), y covers ceil(Cout / ROW_CO).
const ROW_TAPS: u32 = 3u;
const ROW_STRIDE: u32 = 1u;
const ROW_CO: u32 = 16u;
const ROW_LOADS: u32 = (ROW_CO + LANES - 1u) / LANES;

// The input at column ix of the row that starts at x_row (0 outside the input or the row, 1 for the bias).
// Read unconditionally at a clamped address: a load inside an `if` costs a SIMD rasteriser its lane masks.
fn row_input(x_row: u32, ix: i32, row_inside: bool, is_bias: bool) -> f32 {
    let inside = row_inside && ix >= 0 && ix < i32(p.w);
    let v = select(0.0, x_fwd[x_row + u32(clamp(ix, 0, i32(p.w) - 1))], inside);
    return select(v, 1.0, is_bias);
}

@compute @workgroup_size(64, 1, 1)
fn conv2d_backward_params_rows(@builtin(workgroup_id) wid: vec3<u32>, @builtin(local_invocation_index) li: u32) {
    // Invocations past the bias compute a copy of the last row and store nothing (every lane reaches from_lane);
    // AlexNet's conv1 has 34 rows for 64 invocations.
    let row = (wid.x + wid.z * p.groups_x) * 64u + li;
    let rows = p.cin * p.kh;
    if (lanes_past(row, rows + 1u)) {
        return;
    }
    let is_weight = row < rows;
    let is_bias = row == rows;
    let r = min(row, rows - 1u);
    let ci = r % p.cin;
    let ky = r / p.cin;
    let plane = ci * p.h * p.w;
    let dy = i32(ky) - i32(p.pad);
    // The output rows whose inputs iy = oy·stride + dy lie inside the map (all of them for the bias), widened to
    // the subgroup's.
    let first = select(u32(max(-dy, 0) + i32(ROW_STRIDE) - 1) / ROW_STRIDE, 0u, is_bias);
    let past = select(u32(max(i32(p.h) - dy + i32(ROW_STRIDE) - 1, 0)) / ROW_STRIDE, p.ho, is_bias);
    let oy0 = min(lanes_min(first), p.ho);
    let oy1 = max(min(lanes_max(past), p.ho), oy0);
    let co0 = wid.y * ROW_CO;
    let hw_out = p.ho * p.wo;
    // This lane loads the gy of channels co0 + LANES·q + lane.
    let lane = lane_index() % LANES;
    var gbase: array<u32, ROW_LOADS>;
    for (var q = 0u; q < ROW_LOADS; q++) {
        gbase[q] = (p.c_off + min(co0 + LANES * q + lane, p.cout - 1u)) * hw_out;
    }
    var acc: array<array<f32, ROW_TAPS>, ROW_CO>;
    for (var i = 0u; i < ROW_CO; i++) {
        for (var t = 0u; t < ROW_TAPS; t++) {
            acc[i][t] = 0.0;
        }
    }
    for (var b = 0u; b < p.batch; b++) {
        let x_img = b * p.cin * p.h * p.w + plane;
        let g_img = b * p.ctot * hw_out;
        for (var oy = oy0; oy < oy1; oy++) {
            let iy = i32(oy * ROW_STRIDE) + dy;
            let row_inside = is_weight && iy >= 0 && iy < i32(p.h);
            let x_row = x_img + u32(clamp(iy, 0, i32(p.h) - 1)) * p.w;
            // win[t]: the input under tap t at the current pixel, ix = ox·stride - pad + t. Each pixel slides the
            // window along by the stride and loads the taps that come new. Before the first pixel, taps stride..
            // hold what taps 0.. need there.
            var win: array<f32, ROW_TAPS>;
            for (var t = ROW_STRIDE; t < ROW_TAPS; t++) {
                win[t] = row_input(x_row, i32(t - ROW_STRIDE) - i32(p.pad), row_inside, is_bias);
            }
            for (var ox = 0u; ox < p.wo; ox++) {
                for (var t = 0u; t + ROW_STRIDE < ROW_TAPS; t++) {
                    win[t] = win[t + ROW_STRIDE];
                }
                for (var t = ROW_TAPS - min(ROW_STRIDE, ROW_TAPS); t < ROW_TAPS; t++) {
                    win[t] = row_input(x_row, i32(ox * ROW_STRIDE + t) - i32(p.pad), row_inside, is_bias);
                }
                let out_pix = g_img + oy * p.wo + ox;
                var mine: array<f32, ROW_LOADS>;
                for (var q = 0u; q < ROW_LOADS; q++) {
                    mine[q] = gy[gbase[q] + out_pix];
                }
                for (var i = 0u; i < ROW_CO; i++) {
                    let g = from_lane(mine[i / LANES], i % LANES);
                    for (var t = 0u; t < ROW_TAPS; t++) {
                        acc[i][t] = fma(g, win[t], acc[i][t]);
                    }
                }
            }
        }
    }
    let depth = rows * ROW_TAPS;
    for (var i = 0u; i < ROW_CO; i++) {
        let co = co0 + i;
        if (co >= p.cout) {
            continue;
        }
        if (is_weight) {
            for (var t = 0u; t < ROW_TAPS; t++) {
                let o = co * depth + (ci * p.kh + ky) * ROW_TAPS + t;
                var v = acc[i][t];
                if (p.accumulate != 0u) {
                    v += grad_w[o];
                }
                grad_w[o] = v;
            }
        } else if (is_bias) {
            var v = acc[i][0];
            if (p.accumulate != 0u) {
                v += grad_b[co];
            }
            grad_b[co] = v;
        }
    }
}

// conv2d_backward_params_pointwise: the same sums for 1×1 stride-1 unpadded convolutions on CPU adapters, as the
// partial sums of the split reduction below (partials [splits, Cout, Cin + 1] bound as grad_w, which
// conv2d_backward_params_reduce adds up): an invocation takes PW_CO output channels × 4 input channels (a
// channel's 4 sums a vec4) over split s's range of the batch's columns (b, pixel), per column 4 input loads
// without bounds checks and the gy shared between lanes as in conv2d_backward_params. Input-channel quad
// ceil(Cin / 4) is the bias, whose inputs are all 1. A squeeze layer has too few weights for one invocation per
// block to fill the grid, hence the splits.
// Dispatch: workgroup 64, as 8 units of 8 lanes (LANES divides 8; a unit's lanes share its split and columns);
// linear index x + z*groups_x over units (split, block of 8 quads, output-channel block), the last fastest.
const PWB_UNIT: u32 = 8u;

@compute @workgroup_size(64, 1, 1)
fn conv2d_backward_params_pointwise(@builtin(workgroup_id) wid: vec3<u32>, @builtin(local_invocation_index) li: u32) {
    let quads = (p.cin + 3u) / 4u + 1u;
    let quad_blocks = (quads + PWB_UNIT - 1u) / PWB_UNIT;
    let co_blocks = (p.cout + PW_CO - 1u) / PW_CO;
    let unit = (wid.x + wid.z * p.groups_x) * (64u / PWB_UNIT) + li / PWB_UNIT;
    let co0 = (unit % co_blocks) * PW_CO;
    let rest = unit / co_blocks;
    // Invocations past the last quad or split compute a copy and store nothing (every lane reaches from_lane).
    let quad = (rest % quad_blocks) * PWB_UNIT + li % PWB_UNIT;
    let split = rest / quad_blocks;
    let qq = min(quad, quads - 1u);
    let is_bias = qq + 1u == quads;
    let hw = p.ho * p.wo;
    let columns = p.batch * hw;
    let per_split = (columns + p.splits - 1u) / p.splits;
    let n0 = min(min(split, p.splits - 1u) * per_split, columns);
    let n1 = min(n0 + per_split, columns);
    var planes: array<u32, 4>;
    for (var j = 0u; j < 4u; j++) {
        planes[j] = min(4u * qq + j, p.cin - 1u) * hw;
    }
    let lane = lane_index() % LANES;
    var gbase: array<u32, PW_LOADS>;
    for (var q = 0u; q < PW_LOADS; q++) {
        gbase[q] = (p.c_off + min(co0 + LANES * q + lane, p.cout - 1u)) * hw;
    }
    var acc: array<vec4<f32>, PW_CO>;
    for (var i = 0u; i < PW_CO; i++) {
        acc[i] = vec4<f32>(0.0);
    }
    // Column n = (b, pix) at x_fwd[x_at + planes[j]] and gy[gbase[q] + g_at], stepped across images by selects.
    var pix = n0 % hw;
    var x_at = (n0 / hw) * p.cin * hw + pix;
    var g_at = (n0 / hw) * p.ctot * hw + pix;
    for (var n = n0; n < n1; n++) {
        var v = vec4<f32>(x_fwd[x_at + planes[0]], x_fwd[x_at + planes[1]], x_fwd[x_at + planes[2]],
            x_fwd[x_at + planes[3]]);
        v = select(v, vec4<f32>(1.0), is_bias);
        var mine: array<f32, PW_LOADS>;
        for (var q = 0u; q < PW_LOADS; q++) {
            mine[q] = gy[gbase[q] + g_at];
        }
        for (var i = 0u; i < PW_CO; i++) {
            acc[i] = fma(vec4<f32>(from_lane(mine[i / LANES], i % LANES)), v, acc[i]);
        }
        let wrap = pix + 1u == hw;
        pix = select(pix + 1u, 0u, wrap);
        x_at += select(1u, 1u + (p.cin - 1u) * hw, wrap);
        g_at += select(1u, 1u + (p.ctot - 1u) * hw, wrap);
    }
    if (quad >= quads || split >= p.splits) {
        return;
    }
    let row = p.cin + 1u;
    for (var i = 0u; i < PW_CO; i++) {
        let co = co0 + i;
        if (co >= p.cout) {
            continue;
        }
        let base = (split * p.cout + co) * row;
        if (is_bias) {
            grad_w[base + p.cin] = acc[i].x;
        } else {
            for (var j = 0u; j < 4u; j++) {
                if (4u * quad + j < p.cin) {
                    grad_w[base + 4u * quad + j] = acc[i][j];
                }
            }
        }
    }
}

// conv2d_backward_params_tiled: the same sums on GPUs, as a tiled GEMM like conv2d_forward's: rows m = output
// channel, columns k = (ci, ky, kx) and the bias column k = depth (whose "input" is 1), and the product's depth
// n = (b, oy, ox), the output columns of the batch. n is split into p.splits ranges of ceil(N / splits) (one
// invocation per block would leave most of a GPU idle): workgroups of split s reduce its range TILE_K columns at
// a time — the gy slice (A) and the patches (B) staged in workgroup memory, multiplied by multiply_slice — and
// write their sums to partials [splits, Cout, depth + 1] (bound as grad_w), which
// conv2d_backward_params_reduce adds up into grad_w and grad_b.
// Dispatch: workgroup (16,16); grid x*z covers ceil((depth + 1) / TILE_N) column tiles, y covers
// splits * ceil(Cout / TILE_M) row tiles.
// Per output pixel: (oy·stride) << 16 | ox·stride, made by the host (no division per staged value).
@group(0) @binding(6) var<storage, read> pixel_origin: array<u32>;

// A column n = (img, pix) of the product's depth, moved along without division.
struct Cursor {
    n: u32,
    img: u32,
    pix: u32,
}

fn cursor_at(n: u32, hw_out: u32) -> Cursor {
    return Cursor(n, n / hw_out, n % hw_out);
}

fn advance(c: Cursor, step: u32, hw_out: u32) -> Cursor {
    var r = Cursor(c.n + step, c.img, c.pix + step);
    while (r.pix >= hw_out) {
        r.pix -= hw_out;
        r.img += 1u;
    }
    return r;
}

// The values of the next slice that this thread stages for conv2d_backward_params_tiled, at its cursors (which
// it then moves on a slice): gy of channels m0 + a_row0 + 16·j at column a_at (A), and the input under weight k
// at columns b_at[j] (B; 1 for the bias column k = depth).
fn load_grad_slice(
    m0: u32,
    a_row0: u32,
    n_end: u32,
    k: u32,
    depth: u32,
    t: vec2<u32>,
    a_at: ptr<function, Cursor>,
    b_at: ptr<function, array<Cursor, BLOCK_N>>,
    a: ptr<function, array<f32, BLOCK_M>>,
    b: ptr<function, array<f32, BLOCK_N>>,
) {
    let hw_out = p.ho * p.wo;
    for (var j = 0u; j < BLOCK_M; j++) {
        let m = m0 + a_row0 + 16u * j;
        var g = 0.0;
        if (m < p.cout && (*a_at).n < n_end) {
            g = gy[(((*a_at).img * p.ctot + p.c_off + m) * hw_out) + (*a_at).pix];
        }
        (*a)[j] = g;
    }
    *a_at = advance(*a_at, TILE_K, hw_out);
    for (var j = 0u; j < BLOCK_N; j++) {
        let c = (*b_at)[j];
        var v = 0.0;
        if (c.n < n_end) {
            if (k == depth) {
                v = 1.0;
            } else if (k < depth) {
                let o = pixel_origin[c.pix];
                let iy0 = i32(o >> 16u) - i32(p.pad);
                let ix0 = i32(o & 0xffffu) - i32(p.pad);
                let iy = iy0 + i32(t.y >> 16u);
                let ix = ix0 + i32(t.y & 0xffffu);
                if (iy >= 0 && iy < i32(p.h) && ix >= 0 && ix < i32(p.w)) {
                    v = x_fwd[u32(i32(c.img * p.cin * p.h * p.w + t.x) + iy0 * i32(p.w) + ix0)];
                }
            }
        }
        (*b)[j] = v;
        (*b_at)[j] = advance(c, TILE_K, hw_out);
    }
}

@compute @workgroup_size(16, 16, 1)
fn conv2d_backward_params_tiled(
    @builtin(workgroup_id) wid: vec3<u32>,
    @builtin(local_invocation_id) lid: vec3<u32>,
    @builtin(local_invocation_index) li: u32,
) {
    let k_tile = (wid.x + wid.z * p.groups_x) * TILE_N;
    let m_tiles = (p.cout + TILE_M - 1u) / TILE_M;
    let m0 = (wid.y % m_tiles) * TILE_M;
    let split = wid.y / m_tiles;
    let depth = p.cin * p.kh * p.kw;
    let hw_out = p.ho * p.wo;
    let columns = p.batch * hw_out;
    let per = (columns + p.splits - 1u) / p.splits;
    let n_begin = min(split * per, columns);
    let n_end = min(n_begin + per, columns);

    // The B column (weight k) this thread stages never changes: its window entry, once. A is staged with
    // neighbouring threads on neighbouring output pixels, contiguous in gy.
    let b_col = li % TILE_N;
    let k = k_tile + b_col;
    var t = vec2<u32>(0u, 0u);
    if (k < depth) {
        t = window[k];
    }
    let b_row0 = li / TILE_N; // rows b_row0 + (256 / TILE_N)·j
    let a_kk = li % TILE_K;
    let a_row0 = li / TILE_K; // rows a_row0 + 16·j
    var a_at = cursor_at(n_begin + a_kk, hw_out);
    var b_at: array<Cursor, BLOCK_N>;
    for (var j = 0u; j < BLOCK_N; j++) {
        b_at[j] = cursor_at(n_begin + b_row0 + (256u / TILE_N) * j, hw_out);
    }

    // As in conv2d_forward, with PREFETCH each slice's values are loaded while the slice before is multiplied.
    var a_next: array<f32, BLOCK_M>;
    var b_next: array<f32, BLOCK_N>;
    if (PREFETCH) {
        load_grad_slice(m0, a_row0, n_end, k, depth, t, &a_at, &b_at, &a_next, &b_next);
    }
    var acc: Block;
    var part: SliceBlock;
    for (var n0 = n_begin; n0 < n_end; n0 += TILE_K) {
        if (!PREFETCH) {
            load_grad_slice(m0, a_row0, n_end, k, depth, t, &a_at, &b_at, &a_next, &b_next);
        }
        for (var j = 0u; j < BLOCK_M; j++) {
            stage_a(a_row0 + 16u * j, a_kk, a_next[j]);
        }
        for (var j = 0u; j < BLOCK_N; j++) {
            stage_b(b_row0 + (256u / TILE_N) * j, b_col, b_next[j]);
        }
        workgroupBarrier();
        if (PREFETCH && n0 + TILE_K < n_end) {
            load_grad_slice(m0, a_row0, n_end, k, depth, t, &a_at, &b_at, &a_next, &b_next);
        }
        multiply_slice(lid, &part);
        workgroupBarrier();
        if (SLICE_SUMS) {
            flush_slices(&acc, &part);
        }
    }
    flush_slices(&acc, &part);

    for (var h = 0u; h < GROUPS_N; h++) {
        for (var c4 = 0u; c4 < 4u; c4++) {
            let kc = k_tile + tile_column(lid, h, c4);
            if (kc > depth) {
                continue;
            }
            for (var i = 0u; i < BLOCK_M; i++) {
                let m = m0 + tile_row(lid, i);
                if (m < p.cout) {
                    grad_w[(split * p.cout + m) * (depth + 1u) + kc] = acc[i][h][c4];
                }
            }
        }
    }
}

// conv2d_backward_params_reduce: grad_w[co, k] (+)= sum over s of partials[s, co, k] for k < depth, and
// grad_b[co] (+)= the same at k = depth; the second step of the split reductions above (tiled, and pointwise).
// Dispatch: workgroup 256; linear index x + z*groups_x over Cout * (depth + 1).
@group(0) @binding(1) var<storage, read> partials: array<f32>;
@group(0) @binding(2) var<storage, read_write> grad_w_sum: array<f32>;
@group(0) @binding(3) var<storage, read_write> grad_b_sum: array<f32>;

@compute @workgroup_size(256, 1, 1)
fn conv2d_backward_params_reduce(@builtin(workgroup_id) wid: vec3<u32>, @builtin(local_invocation_index) li: u32) {
    let idx = (wid.x + wid.z * p.groups_x) * 256u + li;
    let row = p.cin * p.kh * p.kw + 1u;
    if (idx >= p.cout * row) {
        return;
    }
    let co = idx / row;
    let k = idx % row;
    var v = 0.0;
    for (var s = 0u; s < p.splits; s++) {
        v += partials[s * p.cout * row + idx];
    }
    if (k + 1u < row) {
        let o = co * (row - 1u) + k;
        if (p.accumulate != 0u) {
            v += grad_w_sum[o];
        }
        grad_w_sum[o] = v;
    } else {
        if (p.accumulate != 0u) {
            v += grad_b_sum[co];
        }
        grad_b_sum[co] = v;
    }
}
