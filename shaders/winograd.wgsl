// winograd.wgsl: 3×3 stride-1 convolutions (conv.wgsl's, with its options) by Winograd's minimal filtering
// F(2×2, 3×3) (Lavin & Gray 2016). Each 2×2 output tile is Aᵀ [Σ_c U_c ⊙ V_c] A, where U_c = G g_c Gᵀ is channel
// c's 3×3 filter transformed (winograd_filters, one dispatch per weights) and V_c = Bᵀ d_c B the tile's 4×4 input
// patch transformed: 16 products per tile and input channel where the direct convolution makes 36, 2.25× fewer.
// kernels::conv prepends conv.wgsl's shared part (ConvParams `p`, the tensors, `Column`, `store_output`), so
// bias, ReLU, the output channel slice, accumulate, the input channel slice and the input gradient's flipped
// weights (p.flip) behave as there. GPUs only: CPU adapters run conv.wgsl's conv2d_forward_rows, which on lavapipe
// beat a barrier-free form of this kernel 2× (its loads of the patches and filters cost more than the
// multiplications saved; kernels::winograd::applies).
//
// Layout: filters [Cout, Cin, 16] f32 as vec4 rows (filters[(m·Cin + c)·4 + i] is U's row i); x, bias, y as in
//         conv.wgsl. Tiles t = (b, ty, tx) over ceil(Ho/2) × ceil(Wo/2) per image; tile (ty, tx) writes outputs
//         (2ty.., 2tx..) that exist and reads the 4×4 input patch at (2ty − pad, 2tx − pad), zeros outside.
// Arithmetic: G, Bᵀ and Aᵀ hold only 0, ±1 and ½, so the transforms are additions; the products run in f32.

// ---- Filter transform ----
// winograd_filters: filters_out[m, c] = G g Gᵀ with g the 3×3 filter of output channel m and input channel c:
// weight[m, c] (OIHW), or with p.flip weight[c, m] rotated by 180° (the transposed convolution's).
// Dispatch: workgroup 256; linear index x + z·groups_x over Cout·Cin.
@group(0) @binding(1) var<storage, read> filter_weight: array<f32>;
@group(0) @binding(2) var<storage, read_write> filters_out: array<vec4<f32>>;

// One row (a, b, c) of G g times Gᵀ.
fn filter_row(r: vec3<f32>) -> vec4<f32> {
    return vec4<f32>(r.x, 0.5 * (r.x + r.y + r.z), 0.5 * (r.x - r.y + r.z), r.z);
}

@compute @workgroup_size(256, 1, 1)
fn winograd_filters(@builtin(workgroup_id) wid: vec3<u32>, @builtin(local_invocation_index) li: u32) {
    let idx = (wid.x + wid.z * p.groups_x) * 256u + li;
    if (idx >= p.cout * p.cin) {
        return;
    }
    let m = idx / p.cin;
    let c = idx % p.cin;
    var g: array<vec3<f32>, 3>;
    for (var r = 0u; r < 3u; r++) {
        for (var s = 0u; s < 3u; s++) {
            if (p.flip == 0u) {
                g[r][s] = filter_weight[(m * p.cin + c) * 9u + 3u * r + s];
            } else {
                g[r][s] = filter_weight[(c * p.cout + m) * 9u + 8u - (3u * r + s)];
            }
        }
    }
    let base = idx * 4u;
    filters_out[base] = filter_row(g[0]);
    filters_out[base + 1u] = filter_row(0.5 * (g[0] + g[1] + g[2]));
    filters_out[base + 2u] = filter_row(0.5 * (g[0] - g[1] + g[2]));
    filters_out[base + 3u] = filter_row(g[2]);
}

// ---- Patches and outputs ----
@group(0) @binding(2) var<storage, read> filters: array<vec4<f32>>;

// A tile t = (img, ty, tx): its image, the output pixel of its top-left corner, and its input patch's origin.
struct Tile {
    ok: bool,
    img: u32,
    oy: u32,
    ox: u32,
}

fn tile(t: u32) -> Tile {
    let tiles_x = (p.wo + 1u) / 2u;
    let per_image = tiles_x * ((p.ho + 1u) / 2u);
    let tiles = p.batch * per_image;
    let tt = min(t, tiles - 1u);
    let r = tt % per_image;
    return Tile(t < tiles, tt / per_image, 2u * (r / tiles_x), 2u * (r % tiles_x));
}

// V = Bᵀ d B for the tile's 4×4 patch d of input channel c (rows as vec4).
fn input_transform(t: Tile, c: u32) -> array<vec4<f32>, 4> {
    let plane = (t.img * p.x_ctot + p.x_coff + c) * p.h * p.w;
    let iy0 = i32(t.oy) - i32(p.pad);
    let ix0 = i32(t.ox) - i32(p.pad);
    var d: array<vec4<f32>, 4>;
    for (var r = 0u; r < 4u; r++) {
        let iy = iy0 + i32(r);
        for (var s = 0u; s < 4u; s++) {
            let ix = ix0 + i32(s);
            var v = 0.0;
            if (iy >= 0 && iy < i32(p.h) && ix >= 0 && ix < i32(p.w)) {
                v = x[plane + u32(iy) * p.w + u32(ix)];
            }
            d[r][s] = v;
        }
    }
    let w = array<vec4<f32>, 4>(d[0] - d[2], d[1] + d[2], d[2] - d[1], d[1] - d[3]);
    var v: array<vec4<f32>, 4>;
    for (var r = 0u; r < 4u; r++) {
        let a = w[r];
        v[r] = vec4<f32>(a.x - a.z, a.y + a.z, a.z - a.y, a.y - a.w);
    }
    return v;
}

// y[:, c_off + m] at the tile's outputs (+)= Aᵀ acc A + bias, then ReLU (store_output), for those that exist.
fn store_tile(t: Tile, m: u32, acc: array<vec4<f32>, 4>) {
    let s0 = acc[0] + acc[1] + acc[2];
    let s1 = acc[1] - acc[2] - acc[3];
    let out = array<vec2<f32>, 2>(
        vec2<f32>(s0.x + s0.y + s0.z, s0.y - s0.z - s0.w),
        vec2<f32>(s1.x + s1.y + s1.z, s1.y - s1.z - s1.w),
    );
    for (var dy = 0u; dy < 2u; dy++) {
        for (var dx = 0u; dx < 2u; dx++) {
            let oy = t.oy + dy;
            let ox = t.ox + dx;
            if (t.ok && oy < p.ho && ox < p.wo) {
                store_output(Column(true, t.img, oy * p.wo + ox, 0, 0, 0), m, out[dy][dx]);
            }
        }
    }
}

// ---- Forward tiled in workgroup memory (GPUs) ----
// winograd_forward: a workgroup computes 32 output channels × 32 tiles. Its 256 invocations are 16 groups, one
// per transform position ξ (4i + j of the 4×4 tile), each a 32 × 32 GEMM over the input channels for its ξ: every
// invocation holds an 8-channel × 8-tile block (64 accumulators). Input channels go 4 at a time: half the
// invocations transform one (channel, tile) patch each, the other half load one (channel, output channel)
// filter, all 16 positions into workgroup memory (values loaded during the slice before: PREFETCH); then each
// invocation multiplies its block (per channel, two vec4 of filters by two vec4 of patches, 64 products). At the end the blocks go through workgroup memory a
// quarter of the channels at a time, so each invocation can gather one (channel, tile)'s 16 positions and apply
// the output transform.
// Dispatch: workgroup 256; grid x*z covers ceil(tiles / 32), y covers ceil(Cout / 32).
// Workgroup memory: 16 KiB (WebGPU's guaranteed minimum): the slice's filters [ξ][c][k] in its first half and
// patches [ξ][c][t] in its second, then one quarter's products [ξ][k][t].
const WT_K: u32 = 32u;
const WT_T: u32 = 32u;
const WT_C: u32 = 4u;
// Where the patches start in smem (after the filters).
const PATCHES: u32 = 16u * WT_C * WT_K / 4u;
var<workgroup> smem: array<vec4<f32>, 1024>;
// Whether winograd_forward loads each slice's values during the slice before; kernels::winograd compiles a copy
// without it for `bench --no-prefetch`.
const PREFETCH: bool = true;

// What invocation li stages of the slice of input channels from c0: the transformed patch of channel
// c0 + stager / 32 of its tile (li < 128), or the transformed filter of output channel f_k and input channel
// c0 + stager % 4 (li ≥ 128); zeros past the channels or tiles.
fn slice_values(li: u32, c0: u32, my_tile: Tile, f_k: u32) -> array<vec4<f32>, 4> {
    let stager = li % 128u;
    var v: array<vec4<f32>, 4>;
    if (li < 128u) {
        let cc = stager / WT_T;
        if (my_tile.ok && c0 + cc < p.cin) {
            v = input_transform(my_tile, c0 + cc);
        }
    } else {
        let cc = stager % WT_C;
        if (f_k < p.cout && c0 + cc < p.cin) {
            let base = (f_k * p.cin + c0 + cc) * 4u;
            for (var r = 0u; r < 4u; r++) {
                v[r] = filters[base + r];
            }
        }
    }
    return v;
}

@compute @workgroup_size(256, 1, 1)
fn winograd_forward(@builtin(workgroup_id) wid: vec3<u32>, @builtin(local_invocation_index) li: u32) {
    let t0 = (wid.x + wid.z * p.groups_x) * WT_T;
    let k0 = wid.y * WT_K;
    let xi = li / 16u;
    let sk = (li % 16u) / 4u; // channels 8·sk .. 8·sk + 7 of the workgroup's 32
    let st = li % 4u; // tiles 8·st .. 8·st + 7
    let stager = li % 128u;
    // Patch stagers (li < 128): channel c0 + stager / 32 of tile t0 + stager % 32.
    let my_tile = tile(t0 + stager % WT_T);
    // Filter stagers (li ≥ 128): output channel k0 + stager / 4, input channel c0 + stager % 4, so neighbouring
    // invocations read neighbouring 64-byte filters.
    let f_k = k0 + stager / WT_C;
    // Each slice's 16 values (a transformed patch or a transformed filter) pass through registers; with
    // PREFETCH the next slice's are loaded between the barrier that publishes this slice and its products.
    var staged: array<vec4<f32>, 4>;
    if (PREFETCH) {
        staged = slice_values(li, 0u, my_tile, f_k);
    }
    var acc: array<array<vec4<f32>, 2>, 8>;
    for (var c0 = 0u; c0 < p.cin; c0 += WT_C) {
        if (!PREFETCH) {
            staged = slice_values(li, c0, my_tile, f_k);
        }
        if (li < 128u) {
            let cc = stager / WT_T;
            let t = stager % WT_T;
            for (var q = 0u; q < 16u; q++) {
                smem[PATCHES + q * (WT_C * WT_T / 4u) + cc * (WT_T / 4u) + t / 4u][t % 4u] = staged[q / 4u][q % 4u];
            }
        } else {
            let cc = stager % WT_C;
            let kk = stager / WT_C;
            for (var q = 0u; q < 16u; q++) {
                smem[q * (WT_C * WT_K / 4u) + cc * (WT_K / 4u) + kk / 4u][kk % 4u] = staged[q / 4u][q % 4u];
            }
        }
        workgroupBarrier();
        if (PREFETCH && c0 + WT_C < p.cin) {
            staged = slice_values(li, c0 + WT_C, my_tile, f_k);
        }
        for (var cc = 0u; cc < WT_C; cc++) {
            let fa = xi * (WT_C * WT_K / 4u) + cc * (WT_K / 4u) + 2u * sk;
            let pa = PATCHES + xi * (WT_C * WT_T / 4u) + cc * (WT_T / 4u) + 2u * st;
            let a = array<vec4<f32>, 2>(smem[fa], smem[fa + 1u]);
            let b = array<vec4<f32>, 2>(smem[pa], smem[pa + 1u]);
            for (var i = 0u; i < 8u; i++) {
                for (var h = 0u; h < 2u; h++) {
                    acc[i][h] = fma(vec4<f32>(a[i / 4u][i % 4u]), b[h], acc[i][h]);
                }
            }
        }
        workgroupBarrier();
    }

    // Quarter r: the invocations holding channels 8r .. 8r + 7 write their blocks as [ξ][k][t], then every
    // invocation transforms one (channel, tile).
    let out_k = li / WT_T;
    let out_t = tile(t0 + li % WT_T);
    for (var r = 0u; r < 4u; r++) {
        if (sk == r) {
            for (var i = 0u; i < 8u; i++) {
                for (var h = 0u; h < 2u; h++) {
                    smem[xi * (8u * WT_T / 4u) + i * (WT_T / 4u) + 2u * st + h] = acc[i][h];
                }
            }
        }
        workgroupBarrier();
        var m: array<vec4<f32>, 4>;
        let t = li % WT_T;
        for (var q = 0u; q < 16u; q++) {
            m[q / 4u][q % 4u] = smem[q * (8u * WT_T / 4u) + out_k * (WT_T / 4u) + t / 4u][t % 4u];
        }
        let k = k0 + 8u * r + out_k;
        if (k < p.cout) {
            store_tile(out_t, k, m);
        }
        workgroupBarrier();
    }
}
